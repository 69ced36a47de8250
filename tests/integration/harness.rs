//! Test harness: one throw-away PostgreSQL cluster per test binary (created with
//! initdb/pg_ctl; as root it runs as the `postgres` OS user), a fresh database per test
//! cloned from the loaded fixture, a copy of the fixture workspace with the awkward entries
//! git cannot store (hard links, fifos, sockets, non-UTF-8 names), and the real `coffer`
//! binary run with an isolated environment.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

use coffer_core::sandbox::TempCluster;

pub const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures");
pub const COFFER: &str = env!("CARGO_BIN_EXE_coffer");
pub const HEAD: &str = "9f1c8d2a3b4e";
const TEMPLATE: &str = "fixture_template";

static CLUSTER: OnceLock<TempCluster> = OnceLock::new();
static CREATE_DB: Mutex<()> = Mutex::new(());
static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// The shared cluster, with the fixture database loaded as a template.
pub fn cluster() -> &'static TempCluster {
    CLUSTER.get_or_init(|| {
        let c = TempCluster::start()
            .unwrap_or_else(|e| panic!("cannot start PostgreSQL for the tests: {e}"));
        c.create_database(TEMPLATE).unwrap();
        c.psql_file(TEMPLATE, &Path::new(FIXTURES).join("portal.sql"))
            .unwrap();
        c
    })
}

pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// A fresh database cloned from the fixture.
pub fn fresh_database() -> String {
    let c = cluster();
    let name = format!(
        "t{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    );
    // One failed CREATE must not poison the lock and fail every later test with it.
    let _guard = CREATE_DB.lock().unwrap_or_else(|p| p.into_inner());
    c.psql(
        "postgres",
        &format!("CREATE DATABASE {name} TEMPLATE {TEMPLATE}"),
    )
    .unwrap();
    name
}

/// An empty database.
pub fn empty_database() -> String {
    let c = cluster();
    let name = format!(
        "e{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    );
    c.create_database(&name).unwrap();
    name
}

/// One test's world: a database, a workspace, a backup root and a config file.
pub struct Case {
    pub dir: tempfile::TempDir,
    pub db: String,
    pub root: PathBuf,
    pub workspace: PathBuf,
    pub config: PathBuf,
}

/// The case's database goes with it: a run of the suite clones ~150 of them, and CI's disk
/// is not large.
impl Drop for Case {
    fn drop(&mut self) {
        let _ = cluster().psql(
            "postgres",
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.db),
        );
    }
}

impl Case {
    pub fn new() -> Case {
        let dir = tempfile::tempdir().unwrap();
        let workspace = dir.path().join("workspace");
        run_ok(
            Command::new("cp")
                .arg("-a")
                .arg(Path::new(FIXTURES).join("workspace"))
                .arg(&workspace),
        );
        add_awkward_entries(&workspace);
        let case = Case {
            db: fresh_database(),
            root: dir.path().join("backups"),
            config: dir.path().join("coffer.toml"),
            workspace,
            dir,
        };
        case.write_config(&case.db_section(), "");
        case
    }

    /// `[database]` body reaching this case's database directly.
    pub fn db_section(&self) -> String {
        format!("url = \"{}\"\n", cluster().url(&self.db))
    }

    /// Writes the config: backup root, `[database]` body, workspace with `cache/**`
    /// excluded, plus `extra` sections.
    pub fn write_config(&self, database: &str, extra: &str) {
        let text = format!(
            "backup_dir = \"{}\"\n{extra}\n[database]\n{database}\n[workspace]\npath = \"{}\"\nexclude = [\"cache/**\"]\n",
            self.root.display(),
            self.workspace.display()
        );
        std::fs::write(&self.config, text).unwrap();
    }

    /// The real binary, with an environment that cannot leak in from the developer's shell.
    pub fn coffer(&self) -> Command {
        let mut cmd = Command::new(COFFER);
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy();
            if k.starts_with("COFFER_")
                || k.starts_with("PG")
                || ["BACKUP_DIR", "WORKSPACE_HOST_PATH", "BACKUP_RETENTION_DAYS"]
                    .contains(&k.as_ref())
            {
                cmd.env_remove(k.as_ref());
            }
        }
        cmd.arg("--config").arg(&self.config);
        cmd.stdin(Stdio::null());
        cmd
    }

    /// Runs coffer to the end, within [`RUN_LIMIT`].
    pub fn run(&self, args: &[&str]) -> Output {
        output_within(self.coffer().args(args), RUN_LIMIT)
    }

    /// Backup directories in the root (complete ones: names not starting with a dot).
    pub fn backups(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(&self.root)
            .map(|rd| {
                rd.filter_map(Result::ok)
                    .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                    .map(|e| e.path())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    /// Every entry in the root except the lock file and the run log.
    pub fn root_entries(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(&self.root)
            .map(|rd| {
                rd.filter_map(Result::ok)
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n != ".coffer.lock" && n != "coffer-runs.jsonl")
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    /// Runs a backup that must succeed and returns its directory.
    pub fn backup_ok(&self, args: &[&str]) -> PathBuf {
        let mut all = vec!["backup"];
        all.extend_from_slice(args);
        let out = self.run(&all);
        assert_success(&out);
        let line = stdout(&out)
            .lines()
            .find(|l| l.starts_with("backup ") && l.contains(" complete in "))
            .unwrap_or_else(|| panic!("no completion line:\n{}", stdout(&out)))
            .to_string();
        PathBuf::from(line.rsplit(": ").next().unwrap())
    }

    /// A wrapper script used as `database.exec`: runs `psql` and `pg_dump --version`
    /// untouched, and a dumping `pg_dump` through `pg_dump_body` (a shell snippet; `"$@"`
    /// holds pg_dump's arguments).
    pub fn exec_wrapper(&self, pg_dump_body: &str) -> String {
        let script = self.dir.path().join("pg-wrapper.sh");
        std::fs::write(
            &script,
            format!("#!/bin/sh\nprog=$1; shift\nif [ \"$prog\" = pg_dump ] && [ \"$1\" != --version ]; then\n:\n{pg_dump_body}\nfi\nexec \"$prog\" \"$@\"\n"),
        )
        .unwrap();
        make_executable(&script);
        format!(
            "url = \"{}\"\nexec = [\"{}\"]\n",
            cluster().url(&self.db),
            script.display()
        )
    }
}

/// Entries git cannot hold, added to the workspace copy.
fn add_awkward_entries(ws: &Path) {
    std::fs::hard_link(
        ws.join("uploads/2025/06/report-1.txt"),
        ws.join("uploads/report-1-hardlink.txt"),
    )
    .unwrap();
    let deep = ws.join("deep").join("d".repeat(90));
    std::fs::create_dir_all(&deep).unwrap();
    std::fs::write(
        deep.join(format!("{}.txt", "long-name-".repeat(12))),
        b"long\n",
    )
    .unwrap();
    std::fs::write(
        ws.join(OsStr::from_bytes(b"bin\xffary-\xfe.dat")),
        b"\x00\x01\x02",
    )
    .unwrap();
    std::fs::create_dir_all(ws.join("run")).unwrap();
    run_ok(Command::new("mkfifo").arg(ws.join("run/app.fifo")));
    let sock = std::os::unix::net::UnixListener::bind(ws.join("run/app.sock")).unwrap();
    drop(sock);
    std::fs::create_dir_all(ws.join("empty-dir")).unwrap();
}

pub fn make_executable(p: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
}

pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs a shell pipeline of standard tools; must succeed.
pub fn sh(script: &str) -> String {
    let out = run_ok(Command::new("bash").args(["-c", &format!("set -euo pipefail; {script}")]));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The `error: …` line (progress lines may come before it on stderr).
pub fn error_line(out: &Output) -> String {
    let err = stderr(out);
    err.lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no error line in stderr:\n{err}"))
        .to_string()
}

pub fn assert_success(out: &Output) {
    assert!(
        out.status.success(),
        "coffer failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        stdout(out),
        stderr(out)
    );
}

pub fn assert_exit(out: &Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "expected exit {code}:\nstdout:\n{}\nstderr:\n{}",
        stdout(out),
        stderr(out)
    );
}

pub fn manifest(backup: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(backup.join("manifest.json")).unwrap()).unwrap()
}

/// Row count and content hash of every table in `db`, keyed `schema.table`.
pub fn table_fingerprints(db: &str) -> BTreeMap<String, String> {
    let c = cluster();
    let tables = c
        .psql(
            db,
            "SELECT format('%I.%I', schemaname, tablename) FROM pg_tables \
             WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1",
        )
        .unwrap();
    tables
        .lines()
        .map(|t| {
            let fp = c
                .psql(
                    db,
                    &format!(
                        "SELECT count(*) || ':' || md5(coalesce(string_agg(x::text, '|' ORDER BY x::text), '')) FROM {t} x"
                    ),
                )
                .unwrap();
            (t.to_string(), fp)
        })
        .collect()
}

/// Every path below `root`, relative, as bytes; directories included.
pub fn walk(root: &Path) -> Vec<Vec<u8>> {
    fn go(root: &Path, dir: &Path, out: &mut Vec<Vec<u8>>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            out.push(
                p.strip_prefix(root)
                    .unwrap()
                    .as_os_str()
                    .as_bytes()
                    .to_vec(),
            );
            if e.file_type().unwrap().is_dir() {
                go(root, &p, out);
            }
        }
    }
    let mut out = Vec::new();
    go(root, root, &mut out);
    out.sort();
    out
}

/// What a restore must reproduce of every entry below `root` (the root itself as `.`):
/// type, mode, mtime in seconds (not for symlinks), and content hash or link target.
pub fn snapshot(root: &Path) -> BTreeMap<Vec<u8>, String> {
    use sha2::Digest;
    use std::os::unix::fs::MetadataExt;
    let mut out = BTreeMap::new();
    let mut paths = walk(root);
    paths.push(b".".to_vec());
    for rel in paths {
        let p = root.join(OsStr::from_bytes(&rel));
        let m = std::fs::symlink_metadata(&p).unwrap();
        let ft = m.file_type();
        let desc = if ft.is_symlink() {
            format!("link -> {}", std::fs::read_link(&p).unwrap().display())
        } else if ft.is_dir() {
            format!("dir {:o} {}", m.mode() & 0o7777, m.mtime())
        } else if ft.is_file() {
            let bytes = std::fs::read(&p).unwrap();
            format!(
                "file {:o} {} {} {}",
                m.mode() & 0o7777,
                m.mtime(),
                bytes.len(),
                hex::encode(sha2::Sha256::digest(&bytes))
            )
        } else {
            format!("special {:o}", m.mode())
        };
        out.insert(rel, desc);
    }
    out
}

/// The snapshot of what a backup of the case workspace holds: without `cache/**` (the
/// configured exclude) and the fifo and socket (never archived).
pub fn archived_part(mut snap: BTreeMap<Vec<u8>, String>) -> BTreeMap<Vec<u8>, String> {
    snap.retain(|p, _| !p.starts_with(b"cache/") && p != b"run/app.fifo" && p != b"run/app.sock");
    snap
}

/// Access key of the test S3 servers.
pub const S3_KEY: &str = "cofferTestKey";
/// Secret key of the test S3 servers (must never appear in coffer's output).
pub const S3_SECRET: &str = "cofferTestSecret0123456789";
/// The bucket every test uses on the shared server.
pub const S3_BUCKET: &str = "coffer-tests";

static S3: OnceLock<S3Server> = OnceLock::new();

/// A real S3-protocol server (s3s-fs, which checks SigV4 signatures) on 127.0.0.1 over a
/// temporary directory; a bucket is a directory in it. A watchdog stops it when the test
/// process is gone.
pub struct S3Server {
    child: Mutex<Option<std::process::Child>>,
    pub port: u16,
    pub data: PathBuf,
    _dir: tempfile::TempDir,
}

/// The server shared by the tests of this binary.
pub fn s3() -> &'static S3Server {
    S3.get_or_init(|| {
        let s = S3Server::start();
        s.create_bucket(S3_BUCKET);
        s
    })
}

impl S3Server {
    /// Starts a server on a free port; fails the test when s3s-fs is not installed.
    pub fn start() -> S3Server {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let s = S3Server {
            child: Mutex::new(None),
            port,
            data,
            _dir: dir,
        };
        s.restart();
        s
    }

    /// (Re)starts the server process on the same port and data directory.
    pub fn restart(&self) {
        let child = Command::new("s3s-fs")
            .args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--access-key", S3_KEY, "--secret-key", S3_SECRET])
            .arg(&self.data)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start s3s-fs ({e}): the remote tests need it. Install it with \
                     `cargo install s3s-fs@0.14.1 --locked --features binary` (.ci/run does)"
                )
            });
        let script = format!(
            "while kill -0 {} 2>/dev/null; do sleep 1; done; kill {} 2>/dev/null",
            std::process::id(),
            child.id()
        );
        let _ = Command::new("setsid")
            .args(["sh", "-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        *self.child.lock().unwrap() = Some(child);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "s3s-fs did not listen on port {}",
                self.port
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    /// Stops the server process.
    pub fn stop(&self) {
        if let Some(mut c) = self.child.lock().unwrap().take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn create_bucket(&self, name: &str) {
        std::fs::create_dir_all(self.data.join(name)).unwrap();
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A `[remote]` section for this server, bucket and prefix, plus `extra` lines.
    pub fn remote_section(&self, bucket: &str, prefix: &str, extra: &str) -> String {
        format!(
            "[remote]\nurl = \"s3://{bucket}/{prefix}\"\nendpoint = \"{}\"\nallow_http = true\nregion = \"us-east-1\"\n{extra}\n",
            self.endpoint()
        )
    }

    /// Whether a multipart upload is in progress (s3s-fs keeps its parts at the top).
    pub fn upload_in_progress(&self) -> bool {
        std::fs::read_dir(&self.data)
            .map(|rd| {
                rd.filter_map(Result::ok)
                    .any(|e| e.file_name().to_string_lossy().starts_with(".upload_id-"))
            })
            .unwrap_or(false)
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Sets the S3 credentials on a command (and removes any inherited AWS_* settings).
pub fn with_s3_credentials(cmd: &mut Command, secret: &str) {
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("AWS_") {
            cmd.env_remove(&k);
        }
    }
    cmd.env("AWS_ACCESS_KEY_ID", S3_KEY)
        .env("AWS_SECRET_ACCESS_KEY", secret);
}

/// `size` bytes of random (incompressible) data in `path`.
pub fn random_file(path: &Path, size: usize) {
    sh(&format!(
        "head -c {size} /dev/urandom > '{}'",
        path.display()
    ));
}

/// Unmounts on drop.
pub struct Unmount(PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// Mounts a tmpfs of `size` (e.g. `256k`) on the existing directory `dir` (root only).
pub fn mount_tmpfs(dir: &Path, size: &str) -> Unmount {
    assert!(
        is_root(),
        "this test mounts a small tmpfs and must run as root (CI does)"
    );
    run_ok(
        Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(dir),
    );
    Unmount(dir.to_path_buf())
}

/// Bind-mounts the existing directory `source` on the existing directory `dir` (root only);
/// unmounted on drop, so declare it after what must outlive the mount (the `Case`).
pub fn bind_mount(source: &Path, dir: &Path) -> Unmount {
    assert!(
        is_root(),
        "this test bind-mounts a directory and must run as root (CI does)"
    );
    run_ok(Command::new("mount").arg("--bind").arg(source).arg(dir));
    Unmount(dir.to_path_buf())
}

/// Unmounts, on drop, every mount below a directory, deepest first: a test whose mount was
/// moved by a rename (when coffer misbehaves) still leaves nothing mounted behind. Declare
/// it right after the `Case` so it runs before the temporary directory is removed.
pub struct UnmountAllUnder(pub PathBuf);

impl Drop for UnmountAllUnder {
    fn drop(&mut self) {
        let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut points: Vec<&str> = info
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|p| Path::new(p).starts_with(&self.0) && Path::new(p) != self.0)
            .collect();
        points.sort_by_key(|p| std::cmp::Reverse(p.len()));
        for p in points {
            // Escaped names (`\040`) are the kernel's spelling; umount takes the real one.
            let real = p.replace("\\040", " ");
            let _ = Command::new("umount").arg(real).status();
        }
    }
}

/// Polls `ready` every 20 ms until it holds; panics naming `what` after `limit`.
pub fn wait_until(what: &str, limit: std::time::Duration, mut ready: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + limit;
    while !ready() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting: {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// The names in a directory, sorted.
pub fn file_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

impl Case {
    /// `coffer keygen` into this case's directory as `file`; the identity's path and its
    /// public key.
    pub fn keygen(&self, file: &str) -> (PathBuf, String) {
        let key = self.dir.path().join(file);
        let out = self.run(&["keygen", "--output", key.to_str().unwrap()]);
        assert_success(&out);
        (key, stdout(&out).trim().to_string())
    }
}

/// How long one coffer command in a test may take: far more than any needs, far less than
/// CI's limit, so a hang fails its test instead of the whole run.
pub const RUN_LIMIT: std::time::Duration = std::time::Duration::from_secs(600);

/// Runs `cmd` with stdout and stderr captured, killing it if it has not exited within
/// `limit`: a command that must never wait forever fails the test instead of hanging it.
/// Output is read while waiting, so a chatty command cannot block on a full pipe.
pub fn output_within(cmd: &mut Command, limit: std::time::Duration) -> Output {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    wait_within(child, limit, &format!("{cmd:?}"))
}

/// Waits for a spawned child (its stdout/stderr piped or not) and collects its output;
/// kills it and panics once `limit` has passed.
pub fn wait_within(child: std::process::Child, limit: std::time::Duration, what: &str) -> Output {
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            if let Some(pid) = rustix::process::Pid::from_raw(pid as i32) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            }
            let out = rx.recv().unwrap().unwrap();
            panic!(
                "{what} still running after {limit:?}: killed\nstdout:\n{}\nstderr:\n{}",
                stdout(&out),
                stderr(&out)
            );
        }
    }
}

/// `coffer FROM… | coffer INTO…`, both within [`RUN_LIMIT`]. The test keeps no copy of
/// the pipe, so a consumer that stops early makes the producer fail on a broken pipe
/// instead of blocking forever on a full one.
pub fn pipe_coffer(case: &Case, from: &[&str], into: &[&str]) -> (Output, Output) {
    let mut producer = case
        .coffer()
        .args(from)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pipe = producer.stdout.take().unwrap();
    let consumer = case
        .coffer()
        .args(into)
        .stdin(pipe)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let consumed = wait_within(consumer, RUN_LIMIT, &format!("coffer {into:?}"));
    let produced = wait_within(producer, RUN_LIMIT, &format!("coffer {from:?}"));
    (produced, consumed)
}

/// Runs coffer within `limit` (see [`output_within`]).
pub fn run_bounded(case: &Case, args: &[&str], limit: std::time::Duration) -> Output {
    output_within(case.coffer().args(args), limit)
}

/// `SHA256SUMS` rewritten from the manifest's artifacts, as a forger would.
pub fn write_sums_from_manifest(backup: &Path) {
    let m = manifest(backup);
    let sums: String = m["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            format!(
                "{}  {}\n",
                a["sha256"].as_str().unwrap(),
                a["file"].as_str().unwrap()
            )
        })
        .collect();
    std::fs::write(backup.join("SHA256SUMS"), sums).unwrap();
}

/// A `database.exec` wrapper that records every psql's standard input in
/// `<case>/psql-input/<pid>`; returns the wrapper.
pub fn tee_psql(case: &Case) -> PathBuf {
    let captures = case.dir.path().join("psql-input");
    std::fs::create_dir_all(&captures).unwrap();
    let wrapper = case.dir.path().join("tee-psql.sh");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nprog=$1; shift\nif [ \"$prog\" = psql ]; then\n  tee '{}/'$$ | psql \"$@\"\n  exit $?\nfi\nexec \"$prog\" \"$@\"\n",
            captures.display()
        ),
    )
    .unwrap();
    make_executable(&wrapper);
    wrapper
}

/// The database and workspace as they were, to prove a failed run changed nothing.
pub struct Before {
    pub tables: BTreeMap<String, String>,
    pub workspace: BTreeMap<Vec<u8>, String>,
}

impl Before {
    pub fn take(case: &Case) -> Before {
        Before {
            tables: table_fingerprints(&case.db),
            workspace: snapshot(&case.workspace),
        }
    }

    /// The database and workspace are as before.
    pub fn assert_state_unchanged(&self, case: &Case, context: &str) {
        assert_eq!(
            table_fingerprints(&case.db),
            self.tables,
            "{context}: database changed"
        );
        assert_eq!(
            snapshot(&case.workspace),
            self.workspace,
            "{context}: workspace changed"
        );
    }

    /// The database and workspace are as before, and nothing is left beside the workspace.
    pub fn assert_unchanged(&self, case: &Case, context: &str) {
        self.assert_state_unchanged(case, context);
        let parent = case.workspace.parent().unwrap();
        let leftovers: Vec<String> = std::fs::read_dir(parent)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains("coffer-"))
            .collect();
        assert!(leftovers.is_empty(), "{context}: left behind {leftovers:?}");
    }
}
