//! `coffer demo`: the quick start. A whole backup against a throw-away PostgreSQL cluster
//! loaded with the fixture database, and a copy of the fixture workspace.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context, bail};
use coffer_core::config::{Config, DatabaseConfig, WorkspaceConfig};
use coffer_core::sandbox::TempCluster;
use coffer_core::{BackupOptions, Coffer, RunContext};

use crate::output::{self, Lines, Reporter};

/// The fixture database, compiled in so the demo needs no checkout beside the binary.
const FIXTURE_SQL: &str = include_str!("../../../../fixtures/portal.sql");
/// The fixture workspace in the source tree.
const FIXTURE_WORKSPACE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/workspace");

/// Arguments of `coffer demo`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Directory for the demo's workspace copy and backups (created; reused if it exists)
    #[arg(long, default_value = "coffer-demo", value_name = "DIR")]
    dir: PathBuf,

    /// The workspace to copy and back up [default: the repository's fixtures/workspace]
    #[arg(long, value_name = "DIR")]
    fixture_workspace: Option<PathBuf>,
}

/// Runs the demo.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let dir = std::path::absolute(&args.dir)?;
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let source = args
        .fixture_workspace
        .clone()
        .unwrap_or_else(|| PathBuf::from(FIXTURE_WORKSPACE));
    let workspace = dir.join("workspace");
    if !workspace.exists() {
        copy_tree(&source, &workspace)?;
    }

    crate::output::errln!("starting a throw-away PostgreSQL cluster…");
    let cluster = TempCluster::start()?;
    cluster.create_database("portal")?;
    let sql = dir.join("portal.sql");
    std::fs::write(&sql, FIXTURE_SQL)?;
    cluster.psql_file("portal", &sql)?;
    crate::output::errln!(
        "loaded the fixture database `portal` (port {}, socket in {})",
        cluster.port(),
        cluster.socket_dir().display()
    );

    let config = Config {
        backup_dir: Some(dir.join("backups")),
        database: DatabaseConfig {
            url: Some(cluster.url("portal")),
            ..Default::default()
        },
        workspace: WorkspaceConfig {
            path: Some(workspace.clone()),
            exclude: vec!["cache/**".into()],
        },
        ..Default::default()
    };
    let coffer = Coffer::new(config)?;
    let reporter = Reporter::new(false, Lines::Stderr);
    let cancel = super::cancel_on_signals().context("cannot install signal handlers")?;
    let options = BackupOptions::default().label(Some("quick-start demo".into()));
    let report = coffer
        .backup(&options, &RunContext::new(&reporter).with_cancel(cancel))?
        .report;
    output::print_backup(&report, false)?;
    drop(cluster);

    let b = report.path.display();
    crate::output::outln!();
    crate::output::outln!("Look at it with standard tools, no coffer needed:");
    crate::output::outln!("  cat {b}/manifest.json");
    crate::output::outln!("  (cd {b} && sha256sum -c SHA256SUMS)");
    crate::output::outln!("  gunzip -c {b}/postgres.sql.gz | head -40");
    crate::output::outln!("  tar -tzvf {b}/workspace.tar.gz");
    crate::output::outln!(
        "  coffer --backup-dir {} list",
        dir.join("backups").display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Copies the fixture tree, keeping symlinks and modes (`cp -a`, present on every Linux).
fn copy_tree(from: &Path, to: &Path) -> anyhow::Result<()> {
    if !from.is_dir() {
        bail!(
            "fixture workspace {} not found: run the demo from a coffer checkout or pass --fixture-workspace DIR",
            from.display()
        );
    }
    let status = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .context("cannot run cp")?;
    if !status.success() {
        bail!("copying {} to {} failed", from.display(), to.display());
    }
    Ok(())
}
