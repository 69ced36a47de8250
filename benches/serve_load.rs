//! Load benchmark of `coffer serve` (issue #14): many concurrent list/status clients while
//! backups run. It answers three questions: are there error responses under load, how much
//! longer does a backup take while the clients poll (the goal: within 10 % of an idle run),
//! and does the server's memory stay flat.
//!
//! Run (as root or as a user who may run `initdb`; loopback only, no other setup):
//!
//! ```sh
//! cargo bench -p coffer-cli --bench serve_load
//! cargo bench -p coffer-cli --bench serve_load -- --scale 0.25 --duration 15   # smoke run
//! ```
//!
//! Options after `--`: `--clients N` (50) concurrent clients; `--duration S` (30) seconds of
//! load; `--pause-ms MS` (0) each client's pause between two requests (0: as fast as the
//! server answers, the worst case); `--scale F` (1.0) multiplies the data (at 1: a plain dump
//! of about 100 MB and a workspace of about 60 MB); `--idle-runs N` (3) backups measured
//! without load; `--dir DIR` (`<workspace root>/target/coffer-bench-serve`); `--out FILE`
//! (`<dir>/serve-load.md`) receives the table; `--clients-nice N` (0) runs the client threads at
//! niceness N, standing in for clients on other machines (on the benchmark's 2 cores, 50
//! closed-loop clients at the backup's priority take a core's worth of CPU from it themselves). Without cargo bench's `--bench` argument (as
//! `cargo test --all-targets` runs it) the binary does nothing.
//!
//! What it does: a throw-away PostgreSQL cluster with a generated database, a generated
//! workspace, an admin token, and the release `coffer serve` on a free port of 127.0.0.1.
//! First `--idle-runs` backups are triggered one after the other through the API with no
//! other client. Then `--clients` threads, each with its own keep-alive connection, call
//! `GET /v1/admin/backup/list` and `GET /v1/admin/health` in turn, while backups are
//! triggered one after the other until `--duration` has passed (the clients stop once the
//! last backup ended, so every loaded backup ran entirely under load). A backup's time is
//! the job's own `started`→`finished`. The server's RSS is sampled from /proc every 250 ms.
//! Every wait is bounded; the server is stopped with SIGTERM (SIGKILL after 60 s) and the
//! run's files are deleted at the end.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use coffer_core::sandbox::TempCluster;
use serde_json::Value;

#[path = "serve_load/load.rs"]
mod load;
use load::{Results, RssSampler, Tally, client, report, rss_kib};

const COFFER: &str = env!("CARGO_BIN_EXE_coffer");

const USAGE: &str = "usage: cargo bench -p coffer-cli --bench serve_load -- [--clients N] \
[--duration S] [--pause-ms MS] [--scale F] [--idle-runs N] [--clients-nice N] [--dir DIR] \
[--out FILE]";

/// The longest one backup may take before the benchmark gives up.
const BACKUP_LIMIT: Duration = Duration::from_secs(900);

/// The longest one request may take (a client counts it as an error).
const REQUEST_LIMIT: Duration = Duration::from_secs(60);

/// Environment variables coffer reads as overrides: removed so the caller's environment
/// cannot change what is measured.
const COFFER_ENV: &[&str] = &[
    "COFFER_CONFIG",
    "COFFER_BACKUP_DIR",
    "BACKUP_DIR",
    "WORKSPACE_HOST_PATH",
    "COFFER_WORKSPACE_PATH",
    "BACKUP_RETENTION_DAYS",
    "COFFER_RETENTION_KEEP_DAYS",
    "COFFER_DATABASE_URL",
    "COFFER_AGE_IDENTITY_FILE",
    "COFFER_REMOTE_URL",
    "COFFER_REMOTE_ENDPOINT",
];

fn main() -> ExitCode {
    if !std::env::args().any(|a| a == "--bench") {
        eprintln!(
            "serve_load: not started (no --bench argument); run it with `cargo bench`\n{USAGE}"
        );
        return ExitCode::SUCCESS;
    }
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("serve_load benchmark failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}

struct Args {
    clients: usize,
    duration: Duration,
    pause: Duration,
    scale: f64,
    idle_runs: usize,
    clients_nice: i32,
    dir: PathBuf,
    out: Option<PathBuf>,
}

fn workspace_root() -> PathBuf {
    // cargo runs benchmarks in the package's directory (crates/coffer-cli).
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        clients: 50,
        duration: Duration::from_secs(30),
        pause: Duration::ZERO,
        scale: 1.0,
        idle_runs: 3,
        clients_nice: 0,
        dir: workspace_root().join("target/coffer-bench-serve"),
        out: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || {
            it.next()
                .ok_or_else(|| anyhow!("{a} needs a value\n{USAGE}"))
        };
        match a.as_str() {
            "--bench" => {}
            "--clients" => args.clients = value()?.parse().context("--clients")?,
            "--duration" => args.duration = Duration::from_secs(value()?.parse()?),
            "--pause-ms" => args.pause = Duration::from_millis(value()?.parse()?),
            "--scale" => args.scale = value()?.parse().context("--scale")?,
            "--idle-runs" => args.idle_runs = value()?.parse().context("--idle-runs")?,
            "--clients-nice" => {
                args.clients_nice = value()?.parse().context("--clients-nice")?;
            }
            "--dir" => args.dir = workspace_root().join(value()?),
            "--out" => args.out = Some(workspace_root().join(value()?)),
            other => bail!("unknown argument {other:?}\n{USAGE}"),
        }
    }
    if args.clients == 0 || args.idle_runs == 0 || !(args.scale.is_finite() && args.scale > 0.0) {
        bail!("--clients, --idle-runs and --scale must be above 0\n{USAGE}");
    }
    Ok(args)
}

fn run() -> Result<()> {
    let args = parse_args()?;
    let run_dir = args.dir.join("run");
    if run_dir.exists() {
        fs::remove_dir_all(&run_dir)
            .with_context(|| format!("cannot remove {}", run_dir.display()))?;
    }
    fs::create_dir_all(&run_dir).with_context(|| format!("cannot create {}", run_dir.display()))?;
    let result = measure(&args, &run_dir);
    // Whatever happened: the run's data goes (the cluster and the server are gone by now).
    let _ = fs::remove_dir_all(&run_dir);
    let report = result?;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| args.dir.join("serve-load.md"));
    fs::write(&out, &report).with_context(|| format!("cannot write {}", out.display()))?;
    println!("{report}");
    eprintln!("written to {}", out.display());
    Ok(())
}

fn measure(args: &Args, run_dir: &Path) -> Result<String> {
    eprintln!("starting a throw-away PostgreSQL cluster…");
    let cluster = TempCluster::start().context("cannot start the PostgreSQL cluster")?;
    generate_database(&cluster, args.scale)?;
    let workspace = run_dir.join("workspace");
    generate_workspace(&workspace, args.scale)?;
    let config = write_config(&cluster, run_dir, &workspace)?;
    let token = add_token(&config)?;
    let server = Serve::start(&config)?;
    let api = Api::new(&server.base, &token);

    eprintln!("{} idle backup(s)…", args.idle_runs);
    let mut idle = Vec::new();
    for _ in 0..args.idle_runs {
        idle.push(api.backup()?);
    }

    eprintln!(
        "{} clients for {} s while backups run…",
        args.clients,
        args.duration.as_secs()
    );
    let rss_start = rss_kib(server.pid())?;
    let sampler = RssSampler::start(server.pid());
    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let clients: Vec<_> = (0..args.clients)
        .map(|i| {
            let (stop, tally) = (stop.clone(), tally.clone());
            let (base, token, pause) = (server.base.clone(), token.clone(), args.pause);
            let nice = args.clients_nice;
            std::thread::spawn(move || {
                // `setpriority(PRIO_PROCESS, 0, …)` sets the calling thread's niceness on Linux.
                if nice != 0 {
                    rustix::process::setpriority_process(None, nice)
                        .expect("cannot set the client thread's niceness");
                }
                client(i, &base, &token, pause, &stop, &tally)
            })
        })
        .collect();
    let load_start = Instant::now();
    let mut loaded = Vec::new();
    let mut backups = Ok(());
    while load_start.elapsed() < args.duration {
        match api.backup() {
            Ok(time) => loaded.push(time),
            Err(e) => {
                backups = Err(e);
                break;
            }
        }
    }
    stop.store(true, Ordering::SeqCst);
    for c in clients {
        let _ = c.join();
    }
    let load_time = load_start.elapsed();
    let samples = sampler.stop();
    backups?;
    let rss_end = rss_kib(server.pid())?;
    server.stop()?;
    drop(cluster);

    let tally = tally
        .lock()
        .map_err(|_| anyhow!("a client panicked"))?
        .clone();
    Ok(report(
        args,
        &Results {
            idle,
            loaded,
            load_time,
            tally,
            rss_start,
            rss_max: samples.iter().copied().max().unwrap_or(rss_start),
            rss_samples: samples,
            rss_end,
        },
    ))
}

// ---------------------------------------------------------------------------------------------
// Data

/// A small, fast, deterministic generator (splitmix64).
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

fn scaled(n: f64, scale: f64) -> u64 {
    ((n * scale).round() as u64).max(1)
}

/// Database `portal`: an events table of hex payloads (about 100 MB of dump at scale 1,
/// compressing about 2:1) and an `alembic_version` row.
fn generate_database(cluster: &TempCluster, scale: f64) -> Result<()> {
    eprintln!("generating the database…");
    cluster.create_database("portal")?;
    let rows = scaled(400_000.0, scale);
    cluster.psql(
        "portal",
        &format!(
            "CREATE TABLE alembic_version (version_num varchar(32) NOT NULL PRIMARY KEY); \
             INSERT INTO alembic_version VALUES ('3f2a9c1b7d4e'); \
             CREATE TABLE events (id bigint PRIMARY KEY, at timestamptz NOT NULL, kind text, \
               payload text NOT NULL); \
             INSERT INTO events SELECT i, timestamptz '2026-01-01' + i * interval '1 second', \
               (ARRAY['login','upload','export','delete'])[1 + i % 4], \
               md5(i::text) || md5((i * 7)::text) || md5((i * 13)::text) || md5((i * 31)::text) \
               || md5((i * 61)::text) || md5((i * 127)::text) || md5((i * 251)::text) \
             FROM generate_series(1, {rows}) AS i; \
             CREATE INDEX events_at ON events (at);"
        ),
    )?;
    Ok(())
}

/// About 60 MB at scale 1: 2,000 text files of 2–10 KB and 48 incompressible 1 MiB uploads.
fn generate_workspace(dir: &Path, scale: f64) -> Result<()> {
    eprintln!("generating the workspace…");
    let mut rng = Rng(0x5EED);
    let text_files = scaled(2_000.0, scale);
    for i in 0..text_files {
        let sub = dir.join(format!("src/m{:02}", i % 40));
        fs::create_dir_all(&sub).with_context(|| format!("cannot create {}", sub.display()))?;
        let len = 2_000 + (rng.next_u64() % 8_000) as usize;
        let mut text = String::with_capacity(len + 64);
        while text.len() < len {
            let word = rng.next_u64() % 500;
            text.push_str(&format!(
                "def handler_{word}(request): return render(request, {word})\n"
            ));
        }
        fs::write(sub.join(format!("f{i}.py")), text)?;
    }
    let uploads = dir.join("uploads");
    fs::create_dir_all(&uploads)?;
    let mut buf = vec![0u8; 1 << 20];
    for i in 0..scaled(48.0, scale) {
        for chunk in buf.chunks_mut(8) {
            chunk.copy_from_slice(&rng.next_u64().to_le_bytes()[..chunk.len()]);
        }
        fs::write(uploads.join(format!("u{i}.bin")), &buf)?;
    }
    Ok(())
}

fn toml_str(p: &Path) -> Result<String> {
    let s = p
        .to_str()
        .ok_or_else(|| anyhow!("{} is not UTF-8: choose another --dir", p.display()))?;
    Ok(serde_json::to_string(s)?)
}

fn write_config(cluster: &TempCluster, run_dir: &Path, workspace: &Path) -> Result<PathBuf> {
    let url = format!(
        "postgres:///portal?host={}&port={}&user=postgres",
        cluster.socket_dir().display(),
        cluster.port()
    );
    let toml = format!(
        "backup_dir = {}\n[database]\nurl = {}\n[workspace]\npath = {}\n\
         [server]\ntokens_file = {}\n",
        toml_str(&run_dir.join("root"))?,
        serde_json::to_string(&url)?,
        toml_str(workspace)?,
        toml_str(&run_dir.join("tokens"))?,
    );
    let path = run_dir.join("coffer.toml");
    fs::write(&path, toml).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

fn coffer_cmd(config: &Path) -> Command {
    let mut cmd = Command::new(COFFER);
    for var in COFFER_ENV {
        cmd.env_remove(var);
    }
    cmd.arg("--config").arg(config);
    cmd
}

fn add_token(config: &Path) -> Result<String> {
    let out = coffer_cmd(config)
        .args(["serve", "token", "add", "bench", "--role", "admin"])
        .stdin(Stdio::null())
        .output()
        .context("cannot run coffer serve token add")?;
    if !out.status.success() {
        bail!(
            "coffer serve token add failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

// ---------------------------------------------------------------------------------------------
// The server and its API

/// A running `coffer serve`, stopped with SIGTERM when dropped.
struct Serve {
    child: Option<Child>,
    base: String,
}

impl Serve {
    fn start(config: &Path) -> Result<Serve> {
        let mut child = coffer_cmd(config)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            // Its few lines (start-up refusals, `stopped`) explain a failed run.
            .stderr(Stdio::inherit())
            .spawn()
            .context("cannot start coffer serve")?;
        let stdout = child.stdout.take().context("no stdout")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let mut serve = Serve {
            child: Some(child),
            base: String::new(),
        };
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .map_err(|_| anyhow!("coffer serve did not announce its address within 60 s"))?;
        serve.base = line
            .trim()
            .strip_prefix("listening on ")
            .ok_or_else(|| anyhow!("coffer serve did not start: {line:?}"))?
            .to_string();
        Ok(serve)
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// SIGTERM, then SIGKILL if it has not exited within 60 s.
    fn stop(mut self) -> Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = child.try_wait()? {
                return if status.success() {
                    Ok(())
                } else {
                    Err(anyhow!("coffer serve exited with {status} on SIGTERM"))
                };
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!("coffer serve did not stop within 60 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(REQUEST_LIMIT))
        .build()
        .into()
}

/// The admin client that triggers backups and follows their jobs.
struct Api {
    agent: ureq::Agent,
    base: String,
    auth: String,
}

impl Api {
    fn new(base: &str, token: &str) -> Api {
        Api {
            agent: agent(),
            base: base.to_string(),
            auth: format!("Bearer {token}"),
        }
    }

    fn json(&self, mut resp: ureq::http::Response<ureq::Body>, what: &str) -> Result<Value> {
        let status = resp.status().as_u16();
        let text = resp.body_mut().read_to_string()?;
        if !(200..300).contains(&status) {
            bail!("{what}: HTTP {status}: {text}");
        }
        Ok(serde_json::from_str(&text)?)
    }

    /// Triggers a manual backup and waits for its job; its `started`→`finished` time.
    fn backup(&self) -> Result<Duration> {
        let resp = self
            .agent
            .post(format!("{}/v1/admin/backup/trigger", self.base))
            .header("Authorization", &self.auth)
            .send_empty()?;
        let job = self.json(resp, "trigger")?;
        let id = job["id"].as_str().context("no job id")?.to_string();
        let deadline = Instant::now() + BACKUP_LIMIT;
        loop {
            std::thread::sleep(Duration::from_millis(100));
            let resp = self
                .agent
                .get(format!("{}/v1/admin/jobs/{id}", self.base))
                .header("Authorization", &self.auth)
                .call()?;
            let view = self.json(resp, "job")?;
            match view["state"].as_str() {
                Some("succeeded") => return job_time(&view),
                Some("failed") => bail!("backup job {id} failed: {}", view["error"]),
                _ if Instant::now() > deadline => {
                    bail!("backup job {id} did not end within {BACKUP_LIMIT:?}")
                }
                _ => {}
            }
        }
    }
}

fn job_time(view: &Value) -> Result<Duration> {
    let at = |k: &str| -> Result<chrono::DateTime<chrono::FixedOffset>> {
        let s = view[k]
            .as_str()
            .with_context(|| format!("job without {k}"))?;
        Ok(chrono::DateTime::parse_from_rfc3339(s)?)
    };
    Ok((at("finished")? - at("started")?).to_std()?)
}
