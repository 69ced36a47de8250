//! Throw-away PostgreSQL clusters, for the quick-start demo, the tests and the benchmarks.
//!
//! [`TempCluster::start`] runs `initdb` and `pg_ctl` in a fresh directory, with the socket in
//! that directory and a free TCP port on 127.0.0.1. PostgreSQL refuses to run as root, so
//! as root the cluster runs as the `postgres` OS user. A watchdog process stops the cluster
//! and removes its directory if this process dies without dropping it.
//!
//! Built only with the cargo feature `sandbox` (off by default): backups and restores never
//! start a cluster of their own.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::postgres::Database;

/// How to install the server binaries, said by every error about them.
pub const INSTALL_HINT: &str = "install the PostgreSQL server binaries (Debian/Ubuntu: apt-get install postgresql; they live in /usr/lib/postgresql/<version>/bin)";

/// Why a throw-away cluster could not be started or used.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// initdb / pg_ctl were not found.
    #[error(
        "PostgreSQL server binaries (initdb, pg_ctl) not found on PATH or in /usr/lib/postgresql/*/bin: {INSTALL_HINT}"
    )]
    NoServerBinaries,
    /// Running as root but no `postgres` user exists to run the server as.
    #[error(
        "running as root, but there is no `postgres` OS user to run the throw-away cluster as: {INSTALL_HINT} (it creates the user)"
    )]
    NoPostgresUser,
    /// A step failed.
    #[error("throw-away PostgreSQL cluster: {step} failed: {detail}")]
    Step {
        /// What was being done.
        step: String,
        /// Output or error.
        detail: String,
    },
}

fn step_err(step: &str, detail: impl ToString) -> SandboxError {
    SandboxError::Step {
        step: step.to_string(),
        detail: detail.to_string(),
    }
}

/// A running throw-away cluster. Dropping it stops the server and deletes its files.
#[derive(Debug)]
pub struct TempCluster {
    dir: PathBuf,
    data: PathBuf,
    bin: PathBuf,
    run_as: Option<String>,
    port: u16,
    stopped: bool,
    /// fsync, synchronous commit and full-page writes on, as in production (benchmarks);
    /// off for tests, which only need speed.
    durable: bool,
}

/// Finds the directory holding `initdb` and `pg_ctl`: PATH first, then Debian's layout
/// (newest version first).
pub fn server_bin_dir() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .find(|d| d.join("initdb").is_file() && d.join("pg_ctl").is_file())
    });
    on_path.or_else(|| {
        let mut versions: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(Result::ok)
            .filter_map(|e| {
                let v = e.file_name().to_string_lossy().parse().ok()?;
                let bin = e.path().join("bin");
                bin.join("initdb").is_file().then_some((v, bin))
            })
            .collect();
        versions.sort();
        versions.pop().map(|(_, b)| b)
    })
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

fn free_port() -> io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

impl TempCluster {
    /// Creates and starts a cluster in a new directory under the system temp directory,
    /// without fsync (for tests).
    pub fn start() -> Result<TempCluster, SandboxError> {
        TempCluster::start_with(false)
    }

    /// [`TempCluster::start`] with fsync, synchronous commit and full-page writes on, as a
    /// production server runs (for benchmarks).
    pub fn start_durable() -> Result<TempCluster, SandboxError> {
        TempCluster::start_with(true)
    }

    fn start_with(durable: bool) -> Result<TempCluster, SandboxError> {
        let bin = server_bin_dir().ok_or(SandboxError::NoServerBinaries)?;
        let run_as = if is_root() {
            let ok = Command::new("id")
                .args(["-u", "postgres"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            if !ok {
                return Err(SandboxError::NoPostgresUser);
            }
            Some("postgres".to_string())
        } else {
            None
        };
        let dir = tempfile::Builder::new()
            .prefix("coffer-pg-")
            .tempdir()
            .map_err(|e| step_err("create directory", e))?
            .keep();
        let mut cluster = TempCluster {
            data: dir.join("data"),
            dir,
            bin,
            run_as,
            port: 0,
            stopped: true,
            durable,
        };
        cluster.init_and_start()?;
        Ok(cluster)
    }

    fn init_and_start(&mut self) -> Result<(), SandboxError> {
        if let Some(user) = &self.run_as {
            let out = Command::new("chown")
                .args([user, &self.dir.display().to_string()])
                .output()
                .map_err(|e| step_err("chown", e))?;
            if !out.status.success() {
                return Err(step_err("chown", String::from_utf8_lossy(&out.stderr)));
            }
            // The server user must be able to reach its directory under /tmp.
            let _ = fs::set_permissions(&self.dir, fs::Permissions::from_mode(0o700));
        }
        self.run(
            "initdb",
            &[
                "-D",
                &self.data.display().to_string(),
                "--auth=trust",
                "--username=postgres",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ],
        )?;
        self.port = free_port().map_err(|e| step_err("find a free port", e))?;
        let durability = if self.durable {
            ""
        } else {
            " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        };
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {}{durability}",
            self.port,
            self.dir.display()
        );
        self.run(
            "pg_ctl",
            &[
                "start",
                "-w",
                "-t",
                "60",
                "-D",
                &self.data.display().to_string(),
                "-l",
                &self.dir.join("server.log").display().to_string(),
                "-o",
                &options,
            ],
        )
        .map_err(|e| {
            let log = fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
            step_err(
                "pg_ctl start",
                format!("{e}\n{}", crate::postgres::tail_lines(&log, 20)),
            )
        })?;
        self.stopped = false;
        self.spawn_watchdog();
        Ok(())
    }

    /// A background shell that stops the cluster once this process is gone, so a crashed
    /// test run or demo does not leave a server behind.
    fn spawn_watchdog(&self) {
        let pg_ctl = self.bin.join("pg_ctl");
        let stop = match &self.run_as {
            Some(u) => format!(
                "runuser -u {u} -- {} stop -m immediate -D {}",
                pg_ctl.display(),
                self.data.display()
            ),
            None => format!(
                "{} stop -m immediate -D {}",
                pg_ctl.display(),
                self.data.display()
            ),
        };
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; {stop} >/dev/null 2>&1; rm -rf {dir}",
            pid = std::process::id(),
            dir = self.dir.display()
        );
        let _ = Command::new("setsid")
            .args(["sh", "-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
    }

    fn run(&self, program: &str, args: &[&str]) -> Result<String, SandboxError> {
        let exe = self.bin.join(program);
        let mut cmd = match &self.run_as {
            Some(u) => {
                let mut c = Command::new("runuser");
                c.args(["-u", u, "--"]).arg(&exe);
                c
            }
            None => Command::new(&exe),
        };
        cmd.args(args).stdin(Stdio::null());
        let out = cmd.output().map_err(|e| step_err(program, e))?;
        if !out.status.success() {
            return Err(step_err(
                program,
                format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ),
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The directory holding the socket (use as `PGHOST`).
    pub fn socket_dir(&self) -> &Path {
        &self.dir
    }

    /// The cluster's data directory (`PGDATA`). Its `postmaster.pid` names the server process,
    /// which the end-to-end benchmark reads to measure the server's CPU time.
    pub fn data_dir(&self) -> &Path {
        &self.data
    }

    /// `PG*` variables that reach database `db` on this cluster as the `postgres` superuser.
    pub fn env(&self, db: &str) -> Vec<(String, String)> {
        vec![
            ("PGHOST".into(), self.dir.display().to_string()),
            ("PGPORT".into(), self.port.to_string()),
            ("PGUSER".into(), "postgres".into()),
            ("PGDATABASE".into(), db.into()),
        ]
    }

    /// A `postgres://` URL for database `db` over TCP.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// A [`Database`] runner aimed at database `db`.
    pub fn database(&self, db: &str) -> Database {
        Database::from_env(self.env(db))
    }

    /// Runs SQL with psql against `db` (stops at the first error) and returns the output.
    pub fn psql(&self, db: &str, sql: &str) -> Result<String, SandboxError> {
        let out = Command::new("psql")
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .envs(self.env(db))
            .stdin(Stdio::null())
            .output()
            .map_err(|e| {
                step_err(
                    "psql",
                    format!(
                        "{e}; install the PostgreSQL client (apt-get install postgresql-client)"
                    ),
                )
            })?;
        if !out.status.success() {
            return Err(step_err("psql", String::from_utf8_lossy(&out.stderr)));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim_end().to_string())
    }

    /// Runs a SQL file with psql against `db`, in one transaction, stopping at the first error.
    pub fn psql_file(&self, db: &str, file: &Path) -> Result<(), SandboxError> {
        let out = Command::new("psql")
            .args(["-X", "-q", "-1", "-v", "ON_ERROR_STOP=1", "-f"])
            .arg(file)
            .envs(self.env(db))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .output()
            .map_err(|e| step_err("psql", e))?;
        if !out.status.success() {
            return Err(step_err(
                &format!("loading {}", file.display()),
                String::from_utf8_lossy(&out.stderr),
            ));
        }
        Ok(())
    }

    /// Creates database `name`.
    pub fn create_database(&self, name: &str) -> Result<(), SandboxError> {
        self.psql("postgres", &format!("CREATE DATABASE \"{name}\""))
            .map(drop)
    }

    /// Stops the server now (also done on drop).
    pub fn stop(&mut self) {
        if !self.stopped {
            let _ = self.run(
                "pg_ctl",
                &[
                    "stop",
                    "-m",
                    "fast",
                    "-w",
                    "-D",
                    &self.data.display().to_string(),
                ],
            );
            self.stopped = true;
        }
    }
}

impl Drop for TempCluster {
    fn drop(&mut self) {
        self.stop();
        let _ = fs::remove_dir_all(&self.dir);
    }
}
