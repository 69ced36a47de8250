//! End-to-end benchmark: the release `coffer` binary against the shell script it replaces,
//! on a generated, realistic data set, measured per command (GitHub issue #6).
//!
//! Run (as root or as a user who may run `initdb`; no other setup):
//!
//! ```sh
//! cargo bench -p coffer-cli --bench e2e
//! cargo bench -p coffer-cli --bench e2e -- --scale 0.01 --rounds 1 --many-files 2000   # smoke run
//! ```
//!
//! Options after `--`: `--scale F` (default 1.0) multiplies the data set; `--rounds N` (3);
//! `--many-files N` (200000, 0 = off) sizes the many-small-files workspace; `--dir DIR`
//! (`<workspace root>/target/coffer-bench`) holds the generated data and the run's files;
//! `--out FILE` (`<dir>/results.md`) receives the table; `--only LIST` runs some of the
//! scenarios `baseline`, `coffer`, `age`, `zstd`, `remote`, `many-files` (e.g. `--only coffer` at `--scale 4` to
//! look at coffer's memory alone); `--keep` leaves the backups and restored copies in
//! `<dir>/run` instead of deleting them (each restored copy is dropped once checked, the
//! rest at the end); `--jobs LIST` (`1`) adds a `coffer restore
//! --jobs N` row per number (e.g. `--jobs 1,2,4`; the other restore rows use one session);
//! `--parts` also times the database and the workspace restores alone (the script runs them
//! one after the other, coffer at once), for projections to other core counts. Relative paths are taken from the workspace root, because
//! cargo runs benchmarks in the package's directory. Without cargo bench's `--bench`
//! argument (as `cargo test --all-targets` runs it) the binary does nothing.
//!
//! Data, reproducible (fixed seeds) and multiplied by the scale: a throw-away PostgreSQL
//! cluster (fsync, synchronous commit and full-page writes on, as in production) with database `portal` (users with jsonb profiles, documents with prose-like bodies,
//! many events with jsonb payloads, attachments with incompressible bytea, an
//! `alembic_version` row; primary keys, foreign keys and three secondary indexes), whose plain
//! `pg_dump` is about 585 MB at scale 1; a workspace of about 1.1 GB in about 26,000 files
//! (source-like text in nested directories plus incompressible uploads of 128 KiB–4 MiB). The
//! many-files workspace has N text files of 0.5–6 KB (not scaled) beside a tiny database.
//! Workspaces are cached under `<dir>` and reused; the database is generated on every run.
//!
//! Each round runs every row once, in the table's order, so slow drifts of the machine hit
//! every row alike: the shell script's backup (`pg_dump | gzip`, then `tar -czf`), coffer's
//! backup, plain, age-encrypted and with zstd; the script's restore (`CREATE DATABASE`, `gunzip | psql`,
//! `tar -xzf`), coffer's restore of its backups; `tar -czf` and `coffer backup` of the
//! many-files workspace; and disaster recovery from an S3-protocol server (`remote`, s3s-fs
//! on 127.0.0.1, which must be installed: `cargo install s3s-fs@0.14.1 --locked --features
//! binary`): coffer's backup synced (untimed), then `coffer pull` and `coffer restore` of the
//! pulled copy as two rows, against `coffer restore --from-remote`, which streams (issue #13:
//! it should take no longer than the slower of the two plus 10 %). Their `output MB` is what
//! the command left in its backup root: the pulled copy, or next to nothing for the stream;
//! the workspace's staging copy, the same for both, is not counted. Before every row: `sync`, a `CHECKPOINT`, and every input file read
//! once (this VM evicts page cache idle for a minute, so otherwise a "warm" figure is cold).
//! After each restore, the row counts, Alembic head and file count are compared with the
//! source (untimed). Restores go into fresh directories; everything the run wrote is deleted
//! only at the end (ext4 here creates files slowly for minutes after mass deletions). For the
//! same reason, wait a few minutes between two runs. Scale 1 with 3 rounds needs about 25 GB
//! free under `<dir>`. A failing command stops the benchmark with its command line and stderr
//! (logs and data are then kept in `<dir>/run`).
//!
//! Reading the table (medians over the rounds):
//! - `wall s`: elapsed time of the command.
//! - `client CPU s`: user + system time of the command and of every process it waited for
//!   (pg_dump, psql, gzip, tar), from `wait4`'s rusage.
//! - `server CPU s`: CPU time the PostgreSQL server (postmaster, backends, background
//!   processes) used while the command ran.
//! - `peak RSS MiB`: `ru_maxrss`, the largest resident set of any SINGLE process of the
//!   command's tree (not their sum).
//! - `output MB`: bytes written into the backup (MB = 10^6 bytes); `—` for restores.
//! - `ratio`: this row's wall time divided by the matching baseline row's (backup rows by
//!   `baseline backup`, restore rows by `baseline restore`, the many-files row by its `tar`);
//!   below 1 is faster than the script.
//! - `wall per round s`: every round's wall time, to judge the spread.
//!
//! A second table compares the size of coffer's gzip artifacts with the script's.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use coffer_core::sandbox::TempCluster;

#[path = "e2e/remote.rs"]
mod remote;

const COFFER: &str = env!("CARGO_BIN_EXE_coffer");

const USAGE: &str = "usage: cargo bench -p coffer-cli --bench e2e -- [--scale F] [--rounds N] \
[--many-files N] [--dir DIR] [--out FILE] [--only baseline,coffer,age,zstd,remote,many-files] [--keep] [--jobs 1,2,4] [--parts]";

/// What a restored `portal` must hold: row counts and the Alembic head.
const ROW_COUNTS: &str = "SELECT concat_ws(' ', (SELECT count(*) FROM users), \
    (SELECT count(*) FROM documents), (SELECT count(*) FROM events), \
    (SELECT count(*) FROM attachments), (SELECT version_num FROM alembic_version))";

/// Environment variables coffer reads as overrides: removed so the caller's environment cannot
/// change what is measured.
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

/// Changing the generators below must change these, so cached workspaces are regenerated.
const WORKSPACE_VERSION: &str = "coffer e2e workspace v1";
const MANY_FILES_VERSION: &str = "coffer e2e many-files v1";

fn main() -> ExitCode {
    // `cargo test --all-targets` runs bench targets too, without `--bench`: a benchmark of
    // half an hour must not start then.
    if !std::env::args().any(|a| a == "--bench") {
        eprintln!("e2e: not started (no --bench argument); run it with `cargo bench`\n{USAGE}");
        return ExitCode::SUCCESS;
    }
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("e2e benchmark failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Arguments

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scenario {
    Baseline,
    Coffer,
    Age,
    Zstd,
    Remote,
    ManyFiles,
}

impl Scenario {
    const ALL: [Scenario; 6] = [
        Scenario::Baseline,
        Scenario::Coffer,
        Scenario::Age,
        Scenario::Zstd,
        Scenario::Remote,
        Scenario::ManyFiles,
    ];

    fn name(self) -> &'static str {
        match self {
            Scenario::Baseline => "baseline",
            Scenario::Coffer => "coffer",
            Scenario::Age => "age",
            Scenario::Zstd => "zstd",
            Scenario::Remote => "remote",
            Scenario::ManyFiles => "many-files",
        }
    }
}

#[derive(Debug)]
struct Args {
    scale: f64,
    rounds: usize,
    many_files: usize,
    dir: PathBuf,
    out: PathBuf,
    only: Vec<Scenario>,
    /// Leave the run's backups and restored copies in `<dir>/run` for inspection.
    keep: bool,
    /// Sessions of the `coffer restore --jobs N` rows (the other restore rows use 1).
    jobs: Vec<usize>,
    /// Also time the database and the workspace restores alone (the script's and coffer's).
    parts: bool,
    /// As given, for the report.
    command_line: String,
}

impl Args {
    fn wants(&self, s: Scenario) -> bool {
        self.only.contains(&s)
    }
}

fn workspace_root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    root.canonicalize().unwrap_or(root)
}

fn parse_args() -> Result<Args> {
    let root = workspace_root();
    let mut scale = 1.0f64;
    let mut rounds = 3usize;
    let mut many_files = 200_000usize;
    let mut dir = None;
    let mut out = None;
    let mut only = Scenario::ALL.to_vec();
    let mut given = Vec::new();
    let mut keep = false;
    let mut parts = false;
    let mut jobs = vec![1usize];

    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        if arg == "--bench" {
            continue; // cargo adds it for harness = false benchmarks
        }
        if arg == "--keep" {
            keep = true;
            given.push(arg);
            continue;
        }
        if arg == "--parts" {
            parts = true;
            given.push(arg);
            continue;
        }
        if arg == "-h" || arg == "--help" {
            println!("{USAGE}");
            std::process::exit(0);
        }
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let value = match inline {
            Some(v) => v,
            None => it
                .next()
                .ok_or_else(|| anyhow!("{flag} needs a value\n{USAGE}"))?,
        };
        given.push(format!("{flag} {value}"));
        let bad = |what: &str| anyhow!("{flag} {value}: {what}\n{USAGE}");
        match flag.as_str() {
            "--scale" => {
                scale = value.parse().map_err(|_| bad("not a number"))?;
                if !(scale.is_finite() && scale > 0.0) {
                    return Err(bad("must be a positive number"));
                }
            }
            "--rounds" => {
                rounds = value.parse().map_err(|_| bad("not a whole number"))?;
                if rounds == 0 {
                    return Err(bad("must be at least 1"));
                }
            }
            "--many-files" => {
                many_files = value.parse().map_err(|_| bad("not a whole number"))?;
            }
            "--jobs" => {
                jobs = Vec::new();
                for n in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    let n: usize = n.parse().map_err(|_| bad("not a list of whole numbers"))?;
                    if n == 0 {
                        return Err(bad("sessions must be at least 1"));
                    }
                    jobs.push(n);
                }
            }
            "--dir" => dir = Some(root.join(&value)),
            "--out" => out = Some(root.join(&value)),
            "--only" => {
                only = Vec::new();
                for name in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    let s = Scenario::ALL
                        .into_iter()
                        .find(|s| s.name() == name)
                        .ok_or_else(|| bad(&format!("unknown scenario `{name}`")))?;
                    only.push(s);
                }
            }
            _ => bail!("unknown argument {arg}\n{USAGE}"),
        }
    }
    let dir = dir.unwrap_or_else(|| root.join("target/coffer-bench"));
    let out = out.unwrap_or_else(|| dir.join("results.md"));
    let mut command_line = "cargo bench -p coffer-cli --bench e2e".to_string();
    if !given.is_empty() {
        command_line.push_str(" -- ");
        command_line.push_str(&given.join(" "));
    }
    Ok(Args {
        scale,
        rounds,
        many_files,
        dir,
        out,
        only,
        keep,
        parts,
        jobs,
        command_line,
    })
}

// ---------------------------------------------------------------------------------------------
// The run

fn run() -> Result<()> {
    let args = parse_args()?;
    let main_rows = [
        Scenario::Baseline,
        Scenario::Coffer,
        Scenario::Age,
        Scenario::Zstd,
        Scenario::Remote,
    ]
    .into_iter()
    .any(|s| args.wants(s));
    let many = args.many_files > 0 && args.wants(Scenario::ManyFiles);
    if !main_rows && !many {
        bail!(
            "nothing to run: --only selects no scenario (or only many-files with --many-files 0)"
        );
    }
    fs::create_dir_all(&args.dir)
        .with_context(|| format!("cannot create {}", args.dir.display()))?;

    let run_dir = args.dir.join("run");
    if run_dir.exists() {
        eprintln!(
            "warning: removing {} left by an interrupted run; restores in the next minutes may be \
             slowed by ext4's handling of recently deleted inodes",
            run_dir.display()
        );
        fs::remove_dir_all(&run_dir)
            .with_context(|| format!("cannot remove {}", run_dir.display()))?;
    }
    fs::create_dir_all(run_dir.join("logs"))
        .with_context(|| format!("cannot create {}", run_dir.display()))?;

    let workspace = if main_rows {
        Some(ensure_workspace(&args.dir, args.scale)?)
    } else {
        None
    };
    let many_ws = if many {
        Some(ensure_many_files(&args.dir, args.many_files)?)
    } else {
        None
    };

    eprintln!("starting a throw-away PostgreSQL cluster…");
    // fsync on, as in production: a restore's speed is bound by the server's writes.
    let cluster = TempCluster::start_durable().context("cannot start the PostgreSQL cluster")?;
    // Autovacuum would analyze the freshly restored databases in the background, charging
    // CPU and I/O to whichever row runs next.
    cluster.psql("postgres", "ALTER SYSTEM SET autovacuum = off")?;
    cluster.psql("postgres", "SELECT pg_reload_conf()")?;
    let server = Server::new(&cluster)?;

    let mut dump_bytes = None;
    if main_rows {
        generate_database(&cluster, &run_dir, args.scale)?;
        let n = dump_size(&cluster, "portal")?;
        eprintln!(
            "plain pg_dump of `portal`: {} ({} bytes)",
            mb(n),
            thousands(n)
        );
        dump_bytes = Some(n);
    }
    if many {
        cluster.create_database("tiny")?;
        cluster.psql(
            "tiny",
            "CREATE TABLE alembic_version (version_num varchar(32) NOT NULL PRIMARY KEY); \
             INSERT INTO alembic_version VALUES ('3f2a9c1b7d4e')",
        )?;
    }

    let ws_stats = workspace.as_deref().map(dir_stats).transpose()?;
    // A restore that exits 0 must also have restored everything: compared after each one,
    // outside the timing, so a row never times a restore that did nothing.
    let expected_rows = if main_rows {
        cluster.psql("portal", ROW_COUNTS)?
    } else {
        String::new()
    };
    // Checked: dropped and removed (unless --keep), or the copies of every row would not fit
    // on the disk at scale 4. prepare() syncs before the next row.
    let check_db = |db: &str| -> Result<()> {
        let rows = cluster.psql(db, ROW_COUNTS)?;
        if rows != expected_rows {
            bail!("database {db} after the restore holds {rows}, expected {expected_rows}");
        }
        if !args.keep {
            cluster.psql("postgres", &format!("DROP DATABASE IF EXISTS {db}"))?;
        }
        Ok(())
    };
    let check_ws = |dir: &Path| -> Result<()> {
        let files = dir_stats(dir)?.files;
        let want = ws_stats.map_or(0, |s| s.files);
        if files != want {
            bail!(
                "{} after the restore holds {files} files, expected {want}",
                dir.display()
            );
        }
        if !args.keep {
            fs::remove_dir_all(dir).with_context(|| format!("cannot remove {}", dir.display()))?;
        }
        Ok(())
    };
    let check_restore = |db: &str, dir: &Path| -> Result<()> {
        check_db(db)?;
        check_ws(dir)
    };
    let many_stats = many_ws.as_deref().map(dir_stats).transpose()?;

    let mut bench = Bench {
        cluster: &cluster,
        server,
        run_dir: run_dir.clone(),
        rows: Vec::new(),
        artifacts: BTreeMap::new(),
        seq: 0,
    };

    // Configuration files; --backup-dir gives every backup a fresh root.
    let config = |name: &str, db: &str, ws: &Path, extra: &str| -> Result<PathBuf> {
        let mut toml = format!(
            "backup_dir = {}\n[database]\nurl = {}\n[workspace]\npath = {}\n",
            toml_str(&run_dir.join("unused-root"))?,
            // Over the Unix socket, like the baseline's pg_dump and psql (cluster.env).
            serde_json::to_string(&format!(
                "postgres:///{db}?host={}&port={}&user=postgres",
                cluster.socket_dir().display(),
                cluster.port()
            ))?,
            toml_str(ws)?,
        );
        toml.push_str(extra);
        let path = run_dir.join(name);
        fs::write(&path, toml).with_context(|| format!("cannot write {}", path.display()))?;
        Ok(path)
    };
    let identity = args.dir.join("id.txt");
    let mut plain_cfg = None;
    let mut age_cfg = None;
    let mut zstd_cfg = None;
    if let Some(ws) = &workspace {
        let cfg = config("coffer.toml", "portal", ws, "")?;
        if args.wants(Scenario::Age) {
            let public = age_public_key(&identity, &cfg)?;
            let extra = format!(
                "[encryption]\nrecipients = [{}]\n",
                serde_json::to_string(&public)?
            );
            age_cfg = Some(config("coffer-age.toml", "portal", ws, &extra)?);
        }
        if args.wants(Scenario::Zstd) {
            let extra = "[compression]\nalgorithm = \"zstd\"\n";
            zstd_cfg = Some(config("coffer-zstd.toml", "portal", ws, extra)?);
        }
        plain_cfg = Some(cfg);
    }
    let many_cfg = match &many_ws {
        Some(ws) => Some(config("coffer-many.toml", "tiny", ws, "")?),
        None => None,
    };
    let many_label = format!("({} files)", thousands(args.many_files as u64));
    let s3 = match &workspace {
        Some(_) if args.wants(Scenario::Remote) => Some(remote::S3::start(&run_dir.join("s3"))?),
        _ => None,
    };

    for r in 1..=args.rounds {
        eprintln!("round {r}/{}", args.rounds);
        let round = run_dir.join(format!("r{r}"));
        mkdir(&round)?;
        let data_dir = cluster.data_dir().to_path_buf();
        let mut coffer_backup = None;
        let mut age_backup = None;
        let mut zstd_backup = None;
        let mut base_backup = None;

        if let Some(ws) = &workspace {
            if args.wants(Scenario::Baseline) {
                let out = round.join("baseline-backup");
                mkdir(&out)?;
                let mut cmd = Command::new("sh");
                cmd.args([
                    "-c",
                    "pg_dump --clean --if-exists portal | gzip > \"$OUT/postgres.sql.gz\" \
                     && tar -czf \"$OUT/workspace.tar.gz\" -C \"$WS\" .",
                ])
                .env("OUT", &out)
                .env("WS", ws)
                .envs(cluster.env("portal"));
                bench.prepare(&[ws, &data_dir])?;
                // The pipeline's status is gzip's: a failing pg_dump shows only on stderr.
                bench.measure("baseline backup", None, cmd, Some(&out), true)?;
                bench.note_artifacts("baseline", &out);
                base_backup = Some(out);
            }
            let coffer_or_remote = args.wants(Scenario::Coffer) || s3.is_some();
            if let Some(cfg) = plain_cfg.as_ref().filter(|_| coffer_or_remote) {
                let root = round.join("coffer-backup");
                let cmd = coffer_backup_cmd(cfg, &root);
                bench.prepare(&[ws, &data_dir])?;
                bench.measure("coffer backup", Some("baseline backup"), cmd, None, false)?;
                let b = only_backup(&root)?;
                bench.set_output("coffer backup", &b)?;
                bench.note_artifacts("coffer", &b);
                coffer_backup = Some(b);
            }
            if let Some(cfg) = &age_cfg {
                let root = round.join("coffer-age-backup");
                let cmd = coffer_backup_cmd(cfg, &root);
                bench.prepare(&[ws, &data_dir])?;
                let row = "coffer backup (age)";
                bench.measure(row, Some("baseline backup"), cmd, None, false)?;
                let b = only_backup(&root)?;
                bench.set_output(row, &b)?;
                age_backup = Some(b);
            }
            if let Some(cfg) = &zstd_cfg {
                let root = round.join("coffer-zstd-backup");
                let cmd = coffer_backup_cmd(cfg, &root);
                bench.prepare(&[ws, &data_dir])?;
                let row = "coffer backup (zstd)";
                bench.measure(row, Some("baseline backup"), cmd, None, false)?;
                let b = only_backup(&root)?;
                bench.set_output(row, &b)?;
                zstd_backup = Some(b);
            }

            if let Some(backup) = &base_backup {
                let db = format!("r_base_{r}");
                let target = round.join("baseline-restored");
                let mut cmd = Command::new("sh");
                cmd.args([
                    "-c",
                    "psql -X -q -v ON_ERROR_STOP=1 -d postgres -c \"CREATE DATABASE $DB\" \
                     && gunzip -c \"$IN/postgres.sql.gz\" | psql -X -q -v ON_ERROR_STOP=1 -d \"$DB\" > /dev/null \
                     && mkdir \"$DIR\" && tar -xzf \"$IN/workspace.tar.gz\" -C \"$DIR\"",
                ])
                .env("IN", backup)
                .env("DB", &db)
                .env("DIR", &target)
                .envs(cluster.env("portal"));
                bench.prepare(&[backup, &data_dir])?;
                bench.measure("baseline restore", None, cmd, None, false)?;
                check_restore(&db, &target)?;
                if args.parts {
                    // The script's two halves alone: it runs them one after the other.
                    let halves = [
                        (
                            "baseline restore, database only",
                            "psql -X -q -v ON_ERROR_STOP=1 -d postgres -c \"CREATE DATABASE $DB\" \
                             && gunzip -c \"$IN/postgres.sql.gz\" | psql -X -q -v ON_ERROR_STOP=1 -d \"$DB\" > /dev/null",
                        ),
                        (
                            "baseline restore, workspace only",
                            "mkdir \"$DIR\" && tar -xzf \"$IN/workspace.tar.gz\" -C \"$DIR\"",
                        ),
                    ];
                    let (db, target) = (format!("{db}_half"), round.join("baseline-half"));
                    for (row, script) in halves {
                        let mut cmd = Command::new("sh");
                        cmd.args(["-c", script])
                            .env("IN", backup)
                            .env("DB", &db)
                            .env("DIR", &target)
                            .envs(cluster.env("portal"));
                        bench.prepare(&[backup, &data_dir])?;
                        bench.measure(row, Some("baseline restore"), cmd, None, false)?;
                    }
                    check_restore(&db, &target)?;
                }
            }
            if let (Some(cfg), Some(backup)) = (
                plain_cfg.as_ref().filter(|_| args.wants(Scenario::Coffer)),
                &coffer_backup,
            ) {
                for &jobs in &args.jobs {
                    let (db, target) = (
                        format!("r_coffer_{r}_j{jobs}"),
                        round.join(format!("coffer-restored-j{jobs}")),
                    );
                    let cmd = coffer_restore_cmd(cfg, backup, &db, &target, None, jobs);
                    bench.prepare(&[backup, &data_dir])?;
                    let row = if jobs == 1 {
                        "coffer restore".to_string()
                    } else {
                        format!("coffer restore --jobs {jobs}")
                    };
                    bench.measure(&row, Some("baseline restore"), cmd, None, false)?;
                    check_restore(&db, &target)?;
                    if args.parts {
                        let db = format!("{db}_db");
                        let mut cmd = coffer_restore_cmd(cfg, backup, &db, &target, None, jobs);
                        cmd.arg("--db-only");
                        bench.prepare(&[backup, &data_dir])?;
                        let row = row.replacen("restore", "restore --db-only", 1);
                        bench.measure(&row, Some("baseline restore"), cmd, None, false)?;
                        check_db(&db)?;
                    }
                }
                if args.parts {
                    let target = round.join("coffer-restored-ws");
                    let mut cmd = coffer_restore_cmd(cfg, backup, "unused", &target, None, 1);
                    cmd.arg("--workspace-only");
                    bench.prepare(&[backup, &data_dir])?;
                    let row = "coffer restore --workspace-only";
                    bench.measure(row, Some("baseline restore"), cmd, None, false)?;
                    check_ws(&target)?;
                }
            }
            if let (Some(cfg), Some(backup)) = (&age_cfg, &age_backup) {
                let (db, target) = (format!("r_age_{r}"), round.join("coffer-age-restored"));
                let cmd = coffer_restore_cmd(cfg, backup, &db, &target, Some(&identity), 1);
                bench.prepare(&[backup, &data_dir])?;
                let row = "coffer restore (age)";
                bench.measure(row, Some("baseline restore"), cmd, None, false)?;
                check_restore(&db, &target)?;
            }
            if let (Some(cfg), Some(backup)) = (&zstd_cfg, &zstd_backup) {
                let (db, target) = (format!("r_zstd_{r}"), round.join("coffer-zstd-restored"));
                let cmd = coffer_restore_cmd(cfg, backup, &db, &target, None, 1);
                bench.prepare(&[backup, &data_dir])?;
                let row = "coffer restore (zstd)";
                bench.measure(row, Some("baseline restore"), cmd, None, false)?;
                check_restore(&db, &target)?;
            }
            if let (Some(s3), Some(backup)) = (&s3, &coffer_backup) {
                let cfg = config(
                    &format!("coffer-remote-{r}.toml"),
                    "portal",
                    ws,
                    &s3.section(&format!("r{r}")),
                )?;
                let mut sync = coffer_cmd();
                sync.arg("sync")
                    .arg("--config")
                    .arg(&cfg)
                    .arg("--backup-dir");
                sync.arg(backup.parent().unwrap_or(backup)).arg("--quiet");
                remote::credentials(&mut sync);
                remote::run_ok(sync, "coffer sync (untimed)")?;

                let pulled_root = round.join("remote-pulled-root");
                let mut cmd = coffer_cmd();
                cmd.args(["pull", "--latest", "--quiet", "--config"])
                    .arg(&cfg);
                cmd.arg("--backup-dir").arg(&pulled_root);
                remote::credentials(&mut cmd);
                bench.prepare(&[&data_dir])?;
                bench.measure("remote: pull", None, cmd, Some(&pulled_root), false)?;
                let pulled = only_backup(&pulled_root)?;
                let (db, target) = (
                    format!("r_pulled_{r}"),
                    round.join("remote-pulled-restored"),
                );
                let cmd = coffer_restore_cmd(&cfg, &pulled, &db, &target, None, 1);
                bench.prepare(&[&pulled, &data_dir])?;
                let row = "remote: restore of the pulled copy";
                bench.measure(row, Some("baseline restore"), cmd, None, false)?;
                check_restore(&db, &target)?;

                let stream_root = remote::empty_root(&round)?;
                let (db, target) = (format!("r_stream_{r}"), round.join("remote-streamed"));
                let mut cmd = coffer_cmd();
                cmd.args([
                    "restore",
                    "--from-remote",
                    "--latest",
                    "--yes",
                    "--no-hooks",
                ])
                .args(["--quiet", "--target-db", &db, "--config"])
                .arg(&cfg)
                .arg("--backup-dir")
                .arg(&stream_root)
                .arg("--target-dir")
                .arg(&target);
                remote::credentials(&mut cmd);
                bench.prepare(&[&data_dir])?;
                let row = "remote: streamed restore";
                bench.measure(
                    row,
                    Some("baseline restore"),
                    cmd,
                    Some(&stream_root),
                    false,
                )?;
                check_restore(&db, &target)?;
            }
        }

        if let (Some(ws), Some(cfg)) = (&many_ws, &many_cfg) {
            let base_row = format!("baseline tar+gzip {many_label}");
            let out = round.join("many-baseline");
            mkdir(&out)?;
            let mut cmd = Command::new("tar");
            cmd.arg("-czf")
                .arg(out.join("workspace.tar.gz"))
                .arg("-C")
                .arg(ws)
                .arg(".");
            bench.prepare(&[ws, &data_dir])?;
            bench.measure(&base_row, None, cmd, Some(&out), false)?;
            bench.note_artifacts("many-baseline", &out);

            let row = format!("coffer backup {many_label}");
            let root = round.join("many-coffer");
            let cmd = coffer_backup_cmd(cfg, &root);
            bench.prepare(&[ws, &data_dir])?;
            bench.measure(&row, Some(&base_row), cmd, None, false)?;
            let b = only_backup(&root)?;
            bench.set_output(&row, &b)?;
            bench.note_artifacts("many-coffer", &b);
        }

        for db in ["r_base", "r_coffer", "r_age", "r_zstd"] {
            cluster.psql("postgres", &format!("DROP DATABASE IF EXISTS {db}_{r}"))?;
        }
    }

    let header = Header {
        scale: args.scale,
        rounds: args.rounds,
        dump_bytes,
        workspace: ws_stats,
        many_files: many_stats,
        command_line: args.command_line.clone(),
        cluster: &cluster,
    };
    let report = bench.report(&header);
    println!("\n{report}");
    if let Some(parent) = args.out.parent() {
        fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    fs::write(&args.out, &report)
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    eprintln!("results written to {}", args.out.display());

    drop(cluster);
    if args.keep {
        eprintln!("kept {} (backups and restored copies)", run_dir.display());
        return Ok(());
    }
    eprintln!(
        "removing {} (backups and restored copies)…",
        run_dir.display()
    );
    fs::remove_dir_all(&run_dir).with_context(|| format!("cannot remove {}", run_dir.display()))?;
    Ok(())
}

fn mkdir(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))
}

fn coffer_cmd() -> Command {
    let mut cmd = Command::new(COFFER);
    for var in COFFER_ENV {
        cmd.env_remove(var);
    }
    cmd
}

fn coffer_backup_cmd(config: &Path, root: &Path) -> Command {
    let mut cmd = coffer_cmd();
    cmd.arg("backup")
        .arg("--config")
        .arg(config)
        .arg("--backup-dir")
        .arg(root)
        .args(["--no-prune", "--quiet"]);
    cmd
}

fn coffer_restore_cmd(
    config: &Path,
    backup: &Path,
    db: &str,
    target: &Path,
    identity: Option<&Path>,
    jobs: usize,
) -> Command {
    let mut cmd = coffer_cmd();
    cmd.arg("restore")
        .args(["--jobs", &jobs.to_string()])
        .arg(backup)
        .arg("--config")
        .arg(config)
        .arg("--backup-dir")
        .arg(backup.parent().unwrap_or(backup))
        .args([
            "--yes",
            "--no-hooks",
            "--quiet",
            "--json",
            "--target-db",
            db,
        ])
        .arg("--target-dir")
        .arg(target);
    if let Some(id) = identity {
        cmd.arg("--identity").arg(id);
    }
    cmd
}

/// The one backup directory `coffer backup` wrote into a fresh root.
fn only_backup(root: &Path) -> Result<PathBuf> {
    let mut found = Vec::new();
    for e in fs::read_dir(root).with_context(|| format!("cannot list {}", root.display()))? {
        let e = e?;
        if e.file_type()?.is_dir() && !e.file_name().to_string_lossy().starts_with('.') {
            found.push(e.path());
        }
    }
    match <[PathBuf; 1]>::try_from(found) {
        Ok([one]) => Ok(one),
        Err(found) => bail!(
            "expected one backup in {}, found {}",
            root.display(),
            found.len()
        ),
    }
}

/// The public key of the identity at `path`, made with `coffer keygen` when missing.
fn age_public_key(path: &Path, config: &Path) -> Result<String> {
    if !path.exists() {
        let out = coffer_cmd()
            .arg("keygen")
            .arg("--config")
            .arg(config)
            .arg("--output")
            .arg(path)
            .output()
            .context("cannot run coffer keygen")?;
        if !out.status.success() {
            bail!(
                "coffer keygen --output {} failed: {}",
                path.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    let text =
        fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    text.lines()
        .find_map(|l| l.strip_prefix("# public key: "))
        .map(|k| k.trim().to_string())
        .ok_or_else(|| anyhow!("no `# public key:` line in {}", path.display()))
}

fn toml_str(p: &Path) -> Result<String> {
    let s = p
        .to_str()
        .ok_or_else(|| anyhow!("{} is not UTF-8: choose another --dir", p.display()))?;
    // A JSON string is a valid TOML basic string.
    Ok(serde_json::to_string(s)?)
}

// ---------------------------------------------------------------------------------------------
// Measuring

#[derive(Clone, Copy, Debug)]
struct Sample {
    wall: f64,
    client_cpu: f64,
    server_cpu: f64,
    rss_mib: f64,
    output: Option<u64>,
    /// A parallel restore's own timings (`report.database.phases` of its `--json`).
    phases: Option<[f64; PHASES.len()]>,
}

/// The phases a parallel restore reports, as named in its JSON report and in the table.
const PHASES: [(&str, &str); 7] = [
    ("create", "new database"),
    ("prove", "proof"),
    ("pre_data", "schema"),
    ("data", "data"),
    ("indexes", "indexes after data"),
    ("post_data", "rest"),
    ("swap", "swap"),
];

/// The phases in a restore's `--json` output, if it reported them.
fn phases_in(stdout: &str) -> Option<[f64; PHASES.len()]> {
    let v: serde_json::Value = serde_json::from_str(stdout).ok()?;
    let p = &v["report"]["database"]["phases"];
    let mut out = [0.0; PHASES.len()];
    for (slot, (key, _)) in out.iter_mut().zip(PHASES) {
        *slot = p[key].as_f64()?;
    }
    Some(out)
}

struct Row {
    name: String,
    baseline: Option<String>,
    samples: Vec<Sample>,
}

struct Bench<'a> {
    cluster: &'a TempCluster,
    server: Server,
    run_dir: PathBuf,
    rows: Vec<Row>,
    /// Artifact sizes of the last round: (writer, file name) → bytes.
    artifacts: BTreeMap<(String, String), u64>,
    seq: usize,
}

impl Bench<'_> {
    /// Puts every row on the same footing: no dirty pages from the previous row waiting to be
    /// written back, no pending checkpoint, and the inputs in the page cache.
    fn prepare(&self, warm: &[&Path]) -> Result<()> {
        // SAFETY: sync(2) has no preconditions.
        unsafe { libc::sync() };
        self.cluster
            .psql("postgres", "CHECKPOINT")
            .context("CHECKPOINT before a timed row")?;
        let mut buf = vec![0u8; 1 << 20];
        for root in warm {
            walk(root, &mut |path, meta| {
                if !meta.is_file() {
                    return Ok(());
                }
                let mut f = match File::open(path) {
                    Ok(f) => f,
                    // The server removes temporary files at any time.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                    Err(e) => return Err(e).context(format!("cannot read {}", path.display())),
                };
                while f
                    .read(&mut buf)
                    .with_context(|| format!("cannot read {}", path.display()))?
                    > 0
                {}
                Ok(())
            })?;
        }
        Ok(())
    }

    /// Runs `cmd` timed and records a sample for `row`. `output`: the directory whose size is
    /// the row's output. `quiet_stderr`: any stderr output counts as a failure.
    fn measure(
        &mut self,
        row: &str,
        baseline: Option<&str>,
        mut cmd: Command,
        output: Option<&Path>,
        quiet_stderr: bool,
    ) -> Result<()> {
        self.seq += 1;
        let slug: String = row
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        let log = self
            .run_dir
            .join("logs")
            .join(format!("{:03}-{slug}", self.seq));
        let create =
            |p: PathBuf| File::create(&p).with_context(|| format!("cannot create {}", p.display()));
        let stdout = create(log.with_extension("stdout"))?;
        let stderr_path = log.with_extension("stderr");
        let stderr = create(stderr_path.clone())?;
        cmd.stdin(Stdio::null()).stdout(stdout).stderr(stderr);
        let shown = describe(&cmd);

        let server_before = self.server.cpu_seconds()?;
        let start = Instant::now();
        let child = cmd
            .spawn()
            .with_context(|| format!("{row}: cannot start {shown}"))?;
        let pid = child.id() as libc::pid_t;
        let (status, usage) = wait4(pid).with_context(|| format!("{row}: waiting for {shown}"))?;
        let wall = start.elapsed();
        // Reaped by wait4 already; dropping a Child neither waits nor kills.
        drop(child);
        // The postmaster reaps the command's backends moments after they exit.
        std::thread::sleep(Duration::from_millis(200));
        let server_after = self.server.cpu_seconds()?;

        let err_text = fs::read_to_string(&stderr_path).unwrap_or_default();
        let ok = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
        if !ok || (quiet_stderr && !err_text.trim().is_empty()) {
            let how = if ok {
                "it wrote to stderr".to_string()
            } else if libc::WIFEXITED(status) {
                format!("exit status {}", libc::WEXITSTATUS(status))
            } else if libc::WIFSIGNALED(status) {
                format!("killed by signal {}", libc::WTERMSIG(status))
            } else {
                format!("wait status {status}")
            };
            bail!(
                "{row} failed ({how}): {shown}\nstderr:\n{}\n(logs and data kept in {})",
                tail(&err_text, 40),
                self.run_dir.display()
            );
        }

        let sample = Sample {
            wall: wall.as_secs_f64(),
            client_cpu: timeval(usage.ru_utime) + timeval(usage.ru_stime),
            server_cpu: server_after - server_before,
            rss_mib: usage.ru_maxrss as f64 / 1024.0,
            output: output.map(|d| dir_stats(d).map(|s| s.bytes)).transpose()?,
            phases: phases_in(
                &fs::read_to_string(log.with_extension("stdout")).unwrap_or_default(),
            ),
        };
        eprintln!(
            "  {row:<34} {:>8.2} s  client CPU {:>7.2} s  server CPU {:>7.2} s  RSS {:>7.1} MiB",
            sample.wall, sample.client_cpu, sample.server_cpu, sample.rss_mib
        );
        match self.rows.iter_mut().find(|r| r.name == row) {
            Some(r) => r.samples.push(sample),
            None => self.rows.push(Row {
                name: row.to_string(),
                baseline: baseline.map(str::to_string),
                samples: vec![sample],
            }),
        }
        Ok(())
    }

    /// Sets the output size of the last sample of `row` (coffer names its backup directory
    /// itself, so it is known only afterwards).
    fn set_output(&mut self, row: &str, dir: &Path) -> Result<()> {
        let bytes = dir_stats(dir)?.bytes;
        if let Some(s) = self
            .rows
            .iter_mut()
            .find(|r| r.name == row)
            .and_then(|r| r.samples.last_mut())
        {
            s.output = Some(bytes);
        }
        Ok(())
    }

    /// Records the sizes of the gzip artifacts `writer` put into `dir`, for the size comparison.
    fn note_artifacts(&mut self, writer: &str, dir: &Path) {
        for name in ["postgres.sql.gz", "workspace.tar.gz"] {
            if let Ok(m) = fs::metadata(dir.join(name)) {
                self.artifacts
                    .insert((writer.to_string(), name.to_string()), m.len());
            }
        }
    }
}

fn wait4(pid: libc::pid_t) -> io::Result<(libc::c_int, libc::rusage)> {
    let mut status: libc::c_int = 0;
    // SAFETY: rusage is plain old data; all-zero is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: valid pointers to live locals; pid is our own unreaped child.
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if r == pid {
            return Ok((status, usage));
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

fn timeval(t: libc::timeval) -> f64 {
    t.tv_sec as f64 + t.tv_usec as f64 / 1e6
}

fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        let a = a.to_string_lossy();
        if a.contains(char::is_whitespace) {
            write!(s, " '{a}'").ok();
        } else {
            write!(s, " {a}").ok();
        }
    }
    s
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// CPU time of the PostgreSQL server: the postmaster, its reaped children (cutime, cstime:
/// backends that already exited) and its live children.
struct Server {
    postmaster: u32,
    ticks_per_second: f64,
}

impl Server {
    fn new(cluster: &TempCluster) -> Result<Server> {
        let pidfile = cluster.data_dir().join("postmaster.pid");
        let text = fs::read_to_string(&pidfile)
            .with_context(|| format!("cannot read {}", pidfile.display()))?;
        let postmaster = text
            .lines()
            .next()
            .and_then(|l| l.trim().parse().ok())
            .ok_or_else(|| anyhow!("no pid on the first line of {}", pidfile.display()))?;
        // SAFETY: sysconf has no preconditions.
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        Ok(Server {
            postmaster,
            ticks_per_second: if ticks > 0 { ticks as f64 } else { 100.0 },
        })
    }

    fn cpu_seconds(&self) -> Result<f64> {
        let mut ticks = 0u64;
        for entry in fs::read_dir("/proc").context("cannot list /proc")? {
            let Ok(entry) = entry else { continue };
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            if pid == self.postmaster {
                continue;
            }
            // Processes exit while /proc is listed: those are simply not counted here.
            if let Ok(t) = proc_stat(pid)
                && t.ppid == self.postmaster
            {
                ticks += t.utime + t.stime;
            }
        }
        let pm = proc_stat(self.postmaster)
            .with_context(|| format!("PostgreSQL server (pid {}) is gone", self.postmaster))?;
        ticks += pm.utime + pm.stime + pm.cutime + pm.cstime;
        Ok(ticks as f64 / self.ticks_per_second)
    }
}

struct ProcStat {
    ppid: u32,
    utime: u64,
    stime: u64,
    cutime: u64,
    cstime: u64,
}

fn proc_stat(pid: u32) -> Result<ProcStat> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name (field 2) is in parentheses and may hold spaces: count from the last ')'.
    let rest = text
        .rfind(')')
        .map(|i| &text[i + 1..])
        .ok_or_else(|| anyhow!("unexpected /proc/{pid}/stat"))?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // f[0] is field 3 (state): field n is f[n - 3].
    let num = |n: usize| -> Result<u64> {
        let v: i64 = f
            .get(n - 3)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| anyhow!("/proc/{pid}/stat: field {n} missing"))?;
        Ok(v.max(0) as u64)
    };
    Ok(ProcStat {
        ppid: num(4)? as u32,
        utime: num(14)?,
        stime: num(15)?,
        cutime: num(16)?,
        cstime: num(17)?,
    })
}

// ---------------------------------------------------------------------------------------------
// Files

#[derive(Clone, Copy, Debug)]
struct DirStats {
    bytes: u64,
    files: u64,
}

/// Calls `f` for everything under `root` that is not a directory (symlinks not followed).
/// Entries that vanish meanwhile are passed over.
fn walk(root: &Path, f: &mut dyn FnMut(&Path, &fs::Metadata) -> Result<()>) -> Result<()> {
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).with_context(|| format!("cannot list {}", dir.display())),
        };
        for entry in entries {
            let entry = entry.with_context(|| format!("cannot list {}", dir.display()))?;
            let path = entry.path();
            let meta = match entry.metadata() {
                Ok(m) => m,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e).with_context(|| format!("cannot stat {}", path.display())),
            };
            if meta.is_dir() {
                stack.push(path);
            } else {
                f(&path, &meta)?;
            }
        }
    }
    Ok(())
}

fn dir_stats(root: &Path) -> Result<DirStats> {
    let mut s = DirStats { bytes: 0, files: 0 };
    walk(root, &mut |_, meta| {
        if meta.is_file() {
            s.bytes += meta.len();
            s.files += 1;
        }
        Ok(())
    })?;
    Ok(s)
}

/// The size of a plain `pg_dump --clean --if-exists` of `db`, counted as it streams.
fn dump_size(cluster: &TempCluster, db: &str) -> Result<u64> {
    let mut child = Command::new("pg_dump")
        .args(["--clean", "--if-exists", db])
        .envs(cluster.env(db))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot run pg_dump (install postgresql-client)")?;
    let mut stdout = child
        .stdout
        .take()
        .ok_or_else(|| anyhow!("pg_dump: no stdout"))?;
    let n = io::copy(&mut stdout, &mut io::sink()).context("reading pg_dump's output")?;
    let out = child.wait_with_output().context("waiting for pg_dump")?;
    if !out.status.success() {
        bail!(
            "pg_dump {db} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(n)
}

// ---------------------------------------------------------------------------------------------
// Data generation

/// splitmix64: tiny, fast and good enough for test data; fixed seeds make the data the same
/// on every machine.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Skewed towards the front of the list, as word frequencies are.
    fn pick<'a>(&mut self, list: &[&'a str]) -> &'a str {
        let u = self.unit();
        list[((u * u * list.len() as f64) as usize).min(list.len() - 1)]
    }

    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

fn scaled(n: f64, scale: f64) -> u64 {
    ((n * scale).round() as u64).max(1)
}

/// Prose vocabulary for document bodies, profiles and code comments.
const VOCAB_TEXT: &str = concat!(
    "the of and to a in is that for it as with was on be by this are from at or an which ",
    "have not has but all were their can will one more other been into some its new than ",
    "then only also after these two first may such document report customer project meeting ",
    "review contract invoice payment account schedule delivery quality release version ",
    "update request approval budget quarter revenue market product service support team ",
    "manager department office process policy security access storage backup server ",
    "database network system application portal upload download analysis summary section ",
    "appendix figure table results method approach proposal decision deadline milestone ",
    "estimate resource capacity performance incident response recovery migration upgrade ",
    "maintenance configuration deployment environment production staging testing validation ",
    "requirement specification design architecture interface integration component module ",
    "feature issue ticket priority status progress agreement partner supplier vendor order ",
    "shipment warehouse inventory pricing discount region europe quarterly annual monthly ",
    "weekly daily pending approved rejected completed scheduled important critical minor ",
    "major significant however therefore moreover although because during between without ",
    "within under over before across through against towards about should would could must ",
    "might shall provide ensure include require improve reduce increase maintain prepare ",
    "confirm discuss consider describe identify implement evaluate deliver complete ",
    "continue receive submit approve customers users members stakeholders colleagues ",
    "documents reports changes costs risks benefits options questions answers comments ",
    "notes details figures numbers dates "
);

static VOCAB: LazyLock<Vec<&str>> = LazyLock::new(|| VOCAB_TEXT.split_whitespace().collect());

/// Tokens for source-like workspace files.
const TOKENS_TEXT: &str = concat!(
    "self return if def None in for import from not else True False data value result name ",
    "path user request response item items config session db query key index count error ",
    "status payload document user_id owner_id created_at updated_at logger json str int dict ",
    "list len get set append update delete commit filter order_by limit offset model schema ",
    "field validate raise ValueError HTTPException async await class with as try except ",
    "lambda yield os sys time datetime uuid settings router Depends current_user attachment ",
    "content_type size checksum token cache i x n 0 1 2 \"id\" \"name\" \"status\" 'utf-8' kwargs ",
    "args "
);

static TOKENS: LazyLock<Vec<&str>> = LazyLock::new(|| TOKENS_TEXT.split_whitespace().collect());

const PUNCT: &[&str] = &[
    " = ", "(", ")", ", ", ".", ": ", " == ", " + ", "[", "]", " and ", " or ", " -> ", " != ",
];

const SOURCE_TOP: &[&str] = &[
    "api", "core", "models", "services", "utils", "web", "workers", "tests",
];
const SOURCE_EXT: &[&str] = &["py", "ts", "py", "js", "py", "html", "py", "md"];

/// Source-like text: indented lines of identifiers and operators, some comment lines.
fn code_text(rng: &mut Rng, size: usize, out: &mut String) {
    out.clear();
    while out.len() < size {
        out.extend(std::iter::repeat_n(' ', 4 * rng.below(4) as usize));
        if rng.below(8) == 0 {
            out.push('#');
            for _ in 0..3 + rng.below(10) {
                out.push(' ');
                out.push_str(rng.pick(&VOCAB));
            }
        } else {
            for k in 0..2 + rng.below(9) {
                if k > 0 {
                    out.push_str(rng.pick(PUNCT));
                }
                out.push_str(rng.pick(&TOKENS));
            }
            if rng.below(3) == 0 {
                out.push(':');
            }
        }
        out.push('\n');
    }
    out.truncate(size);
}

/// Returns `<base>/workspace`, generating it with `generate` unless `<base>/workspace.ready`
/// says an identical one is there.
fn cached(base: &Path, stamp: &str, generate: impl FnOnce(&Path) -> Result<()>) -> Result<PathBuf> {
    let ws = base.join("workspace");
    let marker = base.join("workspace.ready");
    if ws.is_dir() && fs::read_to_string(&marker).ok().as_deref() == Some(stamp) {
        eprintln!("reusing {}", ws.display());
        return Ok(ws);
    }
    if ws.exists() {
        eprintln!(
            "warning: removing the incomplete or outdated {}; restores in the next minutes may \
             be slowed by ext4's handling of recently deleted inodes",
            ws.display()
        );
        fs::remove_dir_all(&ws).with_context(|| format!("cannot remove {}", ws.display()))?;
    }
    let _ = fs::remove_file(&marker);
    fs::create_dir_all(&ws).with_context(|| format!("cannot create {}", ws.display()))?;
    eprintln!("generating {}…", ws.display());
    let start = Instant::now();
    generate(&ws).with_context(|| format!("generating {}", ws.display()))?;
    fs::write(&marker, stamp).with_context(|| format!("cannot write {}", marker.display()))?;
    eprintln!("generated in {:.1} s", start.elapsed().as_secs_f64());
    Ok(ws)
}

/// The main workspace: ~26,000 source-like files (2–38 KB, 100 per directory, ~360 MB) and
/// ~720 MiB of incompressible uploads (128 KiB–4 MiB each), times the scale.
fn ensure_workspace(dir: &Path, scale: f64) -> Result<PathBuf> {
    let base = dir.join(format!("data-scale-{scale}"));
    cached(
        &base,
        &format!("{WORKSPACE_VERSION} scale={scale}\n"),
        |ws| {
            let mut rng = Rng(0x00C0_FFEE_0000_0001);
            let mut text = String::new();
            let sources = scaled(26_000.0, scale) as usize;
            for i in 0..sources {
                let d = i / 100;
                let dir = ws
                    .join("src")
                    .join(SOURCE_TOP[d % 8])
                    .join(format!("pkg_{:02}", (d / 8) % 8))
                    .join(format!("mod_{:03}", d / 64));
                if i.is_multiple_of(100) {
                    fs::create_dir_all(&dir)?;
                }
                let u = rng.unit();
                code_text(&mut rng, 2048 + (u * u * 36.0 * 1024.0) as usize, &mut text);
                let ext = SOURCE_EXT[i % SOURCE_EXT.len()];
                fs::write(dir.join(format!("file_{:03}.{ext}", i % 100)), &text)?;
            }
            let target = (720.0 * 1024.0 * 1024.0 * scale) as u64;
            let (min, max) = (128u64 << 10, 4u64 << 20);
            let mut buf = Vec::new();
            let mut total = 0u64;
            let mut i = 0usize;
            while total < target || i == 0 {
                let month = i / 12;
                let dir = ws
                    .join("uploads")
                    .join(format!("{}", 2020 + month / 12))
                    .join(format!("{:02}", 1 + month % 12));
                if i.is_multiple_of(12) {
                    fs::create_dir_all(&dir)?;
                }
                let size = min + rng.below(max - min + 1);
                buf.resize(size as usize, 0);
                rng.fill(&mut buf);
                fs::write(dir.join(format!("{i:06}.bin")), &buf)?;
                total += size;
                i += 1;
            }
            Ok(())
        },
    )
}

/// `n` text files of 0.5–6 KB, 200 per directory.
fn ensure_many_files(dir: &Path, n: usize) -> Result<PathBuf> {
    let base = dir.join(format!("many-files-{n}"));
    cached(&base, &format!("{MANY_FILES_VERSION} n={n}\n"), |ws| {
        let mut rng = Rng(0x00C0_FFEE_0000_0002);
        let mut text = String::new();
        for i in 0..n {
            let d = i / 200;
            let dir = ws.join(format!("g{:03}", d / 50)).join(format!("d{d:04}"));
            if i.is_multiple_of(200) {
                fs::create_dir_all(&dir)?;
            }
            let size = 512 + rng.below(6 * 1024 - 512 + 1) as usize;
            code_text(&mut rng, size, &mut text);
            fs::write(dir.join(format!("f{:03}.txt", i % 200)), &text)?;
        }
        Ok(())
    })
}

/// Generates database `portal` inside the server, with a fixed seed. Row counts at scale 1
/// give a plain dump of about 585 MB: documents ~40 %, events ~30 %, attachments ~20 % (bytea
/// dumps as hex, twice its size), users the rest.
fn generate_database(cluster: &TempCluster, run_dir: &Path, scale: f64) -> Result<()> {
    let users = scaled(140_000.0, scale);
    let documents = scaled(105_000.0, scale);
    let events = scaled(700_000.0, scale);
    let attachments = scaled(12_500.0, scale);
    let vocab = VOCAB
        .iter()
        .map(|w| format!("'{w}'"))
        .collect::<Vec<_>>()
        .join(",");
    let n_vocab = VOCAB.len();
    let sql = format!(
        r#"
SELECT setseed(0.42);

-- Word salad from a fixed vocabulary, skewed like word frequencies: compresses like prose.
CREATE FUNCTION pg_temp.words(n int) RETURNS text LANGUAGE sql VOLATILE AS $f$
  SELECT string_agg((ARRAY[{vocab}])[1 + floor(power(random(), 2) * {n_vocab})::int], ' ')
  FROM generate_series(1, n)
$f$;

CREATE TABLE alembic_version (
  version_num varchar(32) NOT NULL,
  CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num)
);
INSERT INTO alembic_version VALUES ('3f2a9c1b7d4e');

CREATE TABLE users (
  id uuid PRIMARY KEY,
  email text NOT NULL,
  name text NOT NULL,
  created_at timestamptz NOT NULL,
  profile jsonb NOT NULL
);
INSERT INTO users
SELECT md5('user-' || i)::uuid,
       'user' || i || '@' || (ARRAY['example.com','example.org','mail.example.net','corp.example'])[1 + i % 4],
       initcap(pg_temp.words(1)) || ' ' || initcap(pg_temp.words(1)),
       timestamptz '2019-01-01 00:00+00' + random() * interval '1800 days',
       jsonb_build_object(
         'locale', (ARRAY['en_US','de_DE','fr_FR','es_ES','it_IT'])[1 + floor(random() * 5)::int],
         'timezone', (ARRAY['UTC','Europe/Berlin','America/New_York','Asia/Tokyo'])[1 + floor(random() * 4)::int],
         'theme', CASE WHEN random() < 0.3 THEN 'dark' ELSE 'light' END,
         'bio', pg_temp.words(8 + floor(random() * 30)::int),
         'notifications', jsonb_build_object('email', random() < 0.7, 'push', random() < 0.4,
                                             'digest', (ARRAY['daily','weekly','never'])[1 + floor(random() * 3)::int]),
         'login_count', floor(random() * 500)::int)
FROM generate_series(1, {users}) AS i;

CREATE TABLE documents (
  id uuid PRIMARY KEY,
  owner_id uuid NOT NULL,
  title text NOT NULL,
  body text NOT NULL,
  metadata jsonb NOT NULL,
  created_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL
);
INSERT INTO documents
SELECT md5('doc-' || i)::uuid,
       md5('user-' || (1 + (i::bigint * 7919) % {users}))::uuid,
       initcap(pg_temp.words(3 + floor(random() * 8)::int)),
       pg_temp.words(150 + floor(random() * 330)::int),
       jsonb_build_object(
         'tags', jsonb_build_array(pg_temp.words(1), pg_temp.words(1)),
         'status', (ARRAY['draft','review','published','archived'])[1 + floor(random() * 4)::int],
         'version', 1 + floor(random() * 12)::int,
         'language', 'en'),
       ts, ts + random() * interval '90 days'
FROM (SELECT i, timestamptz '2020-01-01 00:00+00' + random() * interval '1500 days' AS ts
      FROM generate_series(1, {documents}) AS i) AS s;

CREATE TABLE events (
  id bigint PRIMARY KEY,
  user_id uuid NOT NULL,
  event_type text NOT NULL,
  payload jsonb NOT NULL,
  occurred_at timestamptz NOT NULL
);
INSERT INTO events
SELECT i,
       md5('user-' || (1 + floor(random() * {users})::int))::uuid,
       (ARRAY['login','logout','page_view','page_view','page_view','document.create',
              'document.update','attachment.upload','attachment.download','search'])[1 + floor(random() * 10)::int],
       jsonb_build_object(
         'ip', '10.' || floor(random() * 256)::int || '.' || floor(random() * 256)::int || '.' || floor(random() * 256)::int,
         'path', '/api/v1/' || (ARRAY['documents','users','attachments','search','settings'])[1 + floor(random() * 5)::int]
                 || '/' || floor(random() * 100000)::int,
         'status', (ARRAY[200,200,200,201,204,304,400,403,404,500])[1 + floor(random() * 10)::int],
         'duration_ms', round((random() * random() * 2000)::numeric, 1),
         'user_agent', (ARRAY['Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0',
                              'Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 Safari/605.1.15',
                              'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/126.0 Safari/537.36',
                              'portal-cli/1.4.2', 'python-requests/2.32.3'])[1 + floor(random() * 5)::int]),
       timestamptz '2023-01-01 00:00+00' + i * interval '15 seconds' + random() * interval '15 seconds'
FROM generate_series(1, {events}) AS i;

CREATE TABLE attachments (
  id uuid PRIMARY KEY,
  document_id uuid NOT NULL,
  name text NOT NULL,
  content_type text NOT NULL,
  content bytea NOT NULL,
  created_at timestamptz NOT NULL
);
-- 1–8 KB of md5 output per row: incompressible, like the PDFs and images it stands for.
INSERT INTO attachments
SELECT md5('att-' || i)::uuid,
       md5('doc-' || (1 + (i::bigint * 104729) % {documents}))::uuid,
       replace(pg_temp.words(2), ' ', '_') || (ARRAY['.pdf','.png','.docx','.xlsx','.zip'])[1 + i % 5],
       (ARRAY['application/pdf','image/png',
              'application/vnd.openxmlformats-officedocument.wordprocessingml.document',
              'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet',
              'application/zip'])[1 + i % 5],
       (SELECT string_agg(decode(md5(i || ':' || j), 'hex'), ''::bytea)
        FROM generate_series(1, chunks) AS j),
       timestamptz '2020-01-01 00:00+00' + random() * interval '1500 days'
-- The chunk count is drawn outside the subquery: a function scan whose arguments do not
-- depend on the outer row is evaluated only once.
FROM (SELECT i, 64 + floor(random() * 449)::int AS chunks
      FROM generate_series(1, {attachments}) AS i) AS s;

-- Constraints and indexes after loading, as a restore builds them.
ALTER TABLE documents ADD CONSTRAINT documents_owner_id_fkey FOREIGN KEY (owner_id) REFERENCES users (id);
ALTER TABLE attachments ADD CONSTRAINT attachments_document_id_fkey FOREIGN KEY (document_id) REFERENCES documents (id);
CREATE UNIQUE INDEX users_email_key ON users (email);
CREATE INDEX documents_owner_id_created_at_idx ON documents (owner_id, created_at);
CREATE INDEX events_user_id_occurred_at_idx ON events (user_id, occurred_at);

-- Set hint bits and the visibility map now, or the first timed pg_dump would write them.
VACUUM (FREEZE, ANALYZE);
CHECKPOINT;
"#
    );
    let file = run_dir.join("generate.sql");
    fs::write(&file, sql).with_context(|| format!("cannot write {}", file.display()))?;
    cluster.create_database("portal")?;
    eprintln!(
        "generating database `portal`: {} users, {} documents, {} events, {} attachments…",
        thousands(users),
        thousands(documents),
        thousands(events),
        thousands(attachments)
    );
    let start = Instant::now();
    // One psql session (setseed holds per session), not one transaction (VACUUM refuses it).
    let out = Command::new("psql")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-f"])
        .arg(&file)
        .envs(cluster.env("portal"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .context("cannot run psql (install postgresql-client)")?;
    if !out.status.success() {
        bail!(
            "generating database portal ({}) failed: {}",
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    eprintln!("generated in {:.1} s", start.elapsed().as_secs_f64());
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Report

struct Header<'a> {
    scale: f64,
    rounds: usize,
    dump_bytes: Option<u64>,
    workspace: Option<DirStats>,
    many_files: Option<DirStats>,
    command_line: String,
    cluster: &'a TempCluster,
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// First line of a command's output, or `unknown`.
fn first_line(program: &str, args: &[&str], dir: Option<&Path>) -> String {
    let mut cmd = Command::new(program);
    cmd.args(args).stdin(Stdio::null()).stderr(Stdio::null());
    if let Some(d) = dir {
        cmd.current_dir(d);
    }
    match cmd.output() {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout)
            .lines()
            .next()
            .unwrap_or("")
            .trim()
            .to_string(),
        _ => "unknown".to_string(),
    }
}

fn machine() -> String {
    let nproc = first_line("nproc", &[], None);
    let cpu = fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let ram = fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kib| kib.parse::<f64>().ok())
        })
        .map(|kib| format!("{:.1} GiB RAM", kib / (1024.0 * 1024.0)))
        .unwrap_or_else(|| "unknown RAM".into());
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    format!("{nproc} CPUs (nproc), {cpu}, {ram}, kernel {kernel}")
}

impl Bench<'_> {
    fn report(&self, h: &Header) -> String {
        let root = workspace_root();
        let mut commit = first_line("git", &["rev-parse", "--short", "HEAD"], Some(&root));
        if commit != "unknown"
            && !first_line(
                "git",
                &["status", "--porcelain", "--untracked-files=no"],
                Some(&root),
            )
            .is_empty()
        {
            commit.push_str(" (with uncommitted changes)");
        }
        let server = h
            .cluster
            .psql("postgres", "SHOW server_version")
            .unwrap_or_else(|_| "unknown".into());

        let mut s = String::new();
        let _ = writeln!(s, "# coffer end-to-end benchmark\n");
        let _ = writeln!(
            s,
            "- date: {}",
            chrono::Utc::now().format("%Y-%m-%d %H:%M UTC")
        );
        let _ = writeln!(s, "- machine: {}", machine());
        let _ = writeln!(
            s,
            "- versions: {}; server {server}; {}; {}; {}; commit {commit}",
            first_line("pg_dump", &["--version"], None),
            first_line("gzip", &["--version"], None),
            first_line("tar", &["--version"], None),
            first_line(COFFER, &["--version"], None),
        );
        let _ = writeln!(s, "- command: `{}`", h.command_line);
        let _ = writeln!(s, "- scale {}, rounds {}", h.scale, h.rounds);
        if let Some(d) = h.dump_bytes {
            let _ = writeln!(s, "- database: plain pg_dump {}", mb(d));
        }
        if let Some(w) = h.workspace {
            let _ = writeln!(
                s,
                "- workspace: {} in {} files",
                mb(w.bytes),
                thousands(w.files)
            );
        }
        if let Some(w) = h.many_files {
            let _ = writeln!(
                s,
                "- many-files workspace: {} in {} files",
                mb(w.bytes),
                thousands(w.files)
            );
        }
        let _ = writeln!(
            s,
            "\nMedians over {} round(s). Client CPU includes every process the command waited for \
             (pg_dump, psql, gzip, tar); server CPU is PostgreSQL's; peak RSS is the largest single \
             process of the command's tree; ratio = wall / wall of the matching baseline row.\n",
            h.rounds
        );
        let _ = writeln!(
            s,
            "| row | wall s | client CPU s | server CPU s | peak RSS MiB | output MB | ratio | wall per round s |"
        );
        let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---|");
        let wall_of = |name: &str| {
            self.rows
                .iter()
                .find(|r| r.name == name)
                .and_then(|r| median(r.samples.iter().map(|x| x.wall).collect()))
        };
        for row in &self.rows {
            let m = |f: fn(&Sample) -> f64| median(row.samples.iter().map(f).collect());
            let wall = m(|x| x.wall);
            let output = median(
                row.samples
                    .iter()
                    .filter_map(|x| x.output.map(|b| b as f64))
                    .collect(),
            );
            let base = match &row.baseline {
                None => wall,
                Some(b) => wall_of(b),
            };
            let ratio = match (wall, base) {
                (Some(w), Some(b)) if b > 0.0 => format!("{:.2}", w / b),
                _ => "—".into(),
            };
            let per_round = row
                .samples
                .iter()
                .map(|x| format!("{:.2}", x.wall))
                .collect::<Vec<_>>()
                .join(", ");
            let f = |v: Option<f64>, digits: usize| match v {
                Some(v) => format!("{v:.digits$}"),
                None => "—".into(),
            };
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {ratio} | {per_round} |",
                row.name,
                f(wall, 2),
                f(m(|x| x.client_cpu), 2),
                f(m(|x| x.server_cpu), 2),
                f(m(|x| x.rss_mib), 1),
                f(output.map(|b| b / 1e6), 2),
            );
        }

        let phased: Vec<_> = self
            .rows
            .iter()
            .filter(|r| r.samples.iter().any(|x| x.phases.is_some()))
            .collect();
        if !phased.is_empty() {
            let names: Vec<&str> = PHASES.iter().map(|(_, n)| *n).collect();
            let _ = writeln!(
                s,
                "\nWhere the parallel restores' database time went (medians, s; the workspace is restored alongside):\n"
            );
            let _ = writeln!(s, "| row | {} | sum | wall |", names.join(" | "));
            let _ = writeln!(s, "|---|{}---:|---:|", "---:|".repeat(PHASES.len()));
            for row in phased {
                let mut cells = Vec::new();
                let mut sum = 0.0;
                for k in 0..PHASES.len() {
                    let v = median(
                        row.samples
                            .iter()
                            .filter_map(|x| x.phases.map(|p| p[k]))
                            .collect(),
                    )
                    .unwrap_or(0.0);
                    sum += v;
                    cells.push(format!("{v:.2}"));
                }
                let wall = median(row.samples.iter().map(|x| x.wall).collect()).unwrap_or(0.0);
                let _ = writeln!(
                    s,
                    "| {} | {} | {sum:.2} | {wall:.2} |",
                    row.name,
                    cells.join(" | ")
                );
            }
        }

        let pairs = [
            ("baseline", "coffer", "postgres.sql.gz", ""),
            ("baseline", "coffer", "workspace.tar.gz", ""),
            (
                "many-baseline",
                "many-coffer",
                "workspace.tar.gz",
                " (many files)",
            ),
        ];
        let mut compared = String::new();
        for (base, coffer, file, what) in pairs {
            let get = |w: &str| self.artifacts.get(&(w.to_string(), file.to_string()));
            if let (Some(&b), Some(&c)) = (get(base), get(coffer)) {
                let pct = (c as f64 - b as f64) / b.max(1) as f64 * 100.0;
                // Rounded first, so a tiny difference does not print as "-0.0 %".
                let diff = match (pct * 10.0).round() / 10.0 {
                    0.0 => "0.0 %".to_string(),
                    p => format!("{p:+.1} %"),
                };
                let _ = writeln!(
                    compared,
                    "| {file}{what} | {:.2} | {:.2} | {diff} |",
                    b as f64 / 1e6,
                    c as f64 / 1e6
                );
            }
        }
        if !compared.is_empty() {
            let _ = writeln!(
                s,
                "\nCompressed artifacts (last round), coffer's gzip against the script's:\n"
            );
            let _ = writeln!(
                s,
                "| artifact | baseline MB | coffer MB | coffer vs baseline |"
            );
            let _ = writeln!(s, "|---|---:|---:|---:|");
            s.push_str(&compared);
        }
        s
    }
}
