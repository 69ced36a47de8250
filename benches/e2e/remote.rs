//! The remote rows of the e2e benchmark (issue #13): disaster recovery from an S3-protocol
//! server (s3s-fs on 127.0.0.1 over a directory of the run), `coffer pull` then `coffer
//! restore` against `coffer restore --from-remote`, which streams.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

const KEY: &str = "coffer-bench";
const SECRET: &str = "coffer-bench-secret-0123456789";
const BUCKET: &str = "bench";

/// A running s3s-fs, stopped when dropped.
pub struct S3 {
    child: Child,
    port: u16,
}

impl S3 {
    /// Starts s3s-fs over `dir/data` on a free port; fails with how to install it.
    pub fn start(dir: &Path) -> Result<S3> {
        let data = dir.join("data");
        std::fs::create_dir_all(data.join(BUCKET))
            .with_context(|| format!("cannot create {}", data.display()))?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let child = Command::new("s3s-fs")
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", KEY, "--secret-key", SECRET])
            .arg(&data)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context(
                "cannot start s3s-fs, which the `remote` rows need: install it with \
                 `cargo install s3s-fs@0.14.1 --locked --features binary`, or leave `remote` \
                 out of --only",
            )?;
        let s3 = S3 { child, port };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                bail!("s3s-fs did not listen on port {port} within 20 s");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(s3)
    }

    /// The `[remote]` section for backups under `prefix`.
    pub fn section(&self, prefix: &str) -> String {
        format!(
            "[remote]\nurl = \"s3://{BUCKET}/{prefix}\"\nendpoint = \"http://127.0.0.1:{}\"\n\
             allow_http = true\nregion = \"us-east-1\"\n",
            self.port
        )
    }
}

impl Drop for S3 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Gives a coffer command the server's credentials.
pub fn credentials(cmd: &mut Command) -> &mut Command {
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("AWS_") {
            cmd.env_remove(&k);
        }
    }
    cmd.env("AWS_ACCESS_KEY_ID", KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET)
}

/// Runs an untimed preparation step, failing with its stderr.
pub fn run_ok(mut cmd: Command, what: &str) -> Result<()> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {what}"))?;
    if !out.status.success() {
        bail!(
            "{what} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim_end()
        );
    }
    Ok(())
}

/// A fresh, empty backup root for a streamed restore: it must stay (nearly) empty.
pub fn empty_root(round: &Path) -> Result<PathBuf> {
    let root = round.join("remote-stream-root");
    std::fs::create_dir_all(&root).with_context(|| format!("cannot create {}", root.display()))?;
    Ok(root)
}
