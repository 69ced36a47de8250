//! `health`: whether this host can back up and restore right now, for a probe or a load
//! balancer: the configuration, the backup root, the database, and the age of the last
//! backup against the thresholds of `status`.

use std::time::Duration;

use serde::Serialize;

use super::status::StatusReport;
use crate::coffer::Coffer;
use crate::postgres::Database;
use crate::root::runlog::Thresholds;

/// How long the database may take to answer `SELECT 1` before it counts as unreachable.
pub const DATABASE_PING_LIMIT: Duration = Duration::from_secs(5);

/// What [`Coffer::health`] found. Healthy when every check passed.
#[non_exhaustive]
#[derive(Debug, Clone, Serialize)]
pub struct HealthReport {
    /// Every check below passed.
    pub healthy: bool,
    /// The configuration's paths still check out (see [`crate::config::Config::check_paths`]).
    pub config_valid: bool,
    /// The backup root exists and this user may write in it.
    pub root_writable: bool,
    /// The database answered within [`DATABASE_PING_LIMIT`].
    pub database_reachable: bool,
    /// The last successful backup is recent enough, and failures are below the threshold
    /// (the judgement of `coffer status`).
    pub backups_fresh: bool,
    /// Seconds since the last successful backup, when there is one.
    pub last_backup_age_seconds: Option<i64>,
    /// The age threshold, in seconds.
    pub max_age_seconds: u64,
    /// What failed, one line each (what is wrong and what to check).
    pub problems: Vec<String>,
    /// The full status, as `coffer status --json` shows it (absent when the run log could
    /// not be read).
    pub status: Option<StatusReport>,
}

impl Coffer {
    /// Checks what a backup or restore needs now: the configuration's paths, a writable
    /// root, a database that answers within [`DATABASE_PING_LIMIT`] (a bounded connection
    /// attempt: `psql` is killed at the deadline), and the last backup against
    /// `thresholds`. Never fails: what cannot be checked is a problem in the report.
    pub fn health(&self, thresholds: &Thresholds) -> HealthReport {
        let mut problems = Vec::new();
        let config_valid = match self.config().check_paths() {
            Ok(()) => true,
            Err(e) => {
                problems.push(format!("configuration: {e}"));
                false
            }
        };
        let root_writable = rustix::fs::access(self.root(), rustix::fs::Access::WRITE_OK).is_ok();
        if !root_writable {
            problems.push(format!(
                "the backup root {} is missing or not writable for this user",
                self.root().display()
            ));
        }
        let database_reachable = match Database::from_config(&self.config().database)
            .and_then(|db| db.ping(DATABASE_PING_LIMIT))
        {
            Ok(()) => true,
            Err(e) => {
                problems.push(format!("database: {e}"));
                false
            }
        };
        let status = match self.status(thresholds) {
            Ok(s) => Some(s),
            Err(e) => {
                problems.push(format!("run log: {e}"));
                None
            }
        };
        let backups_fresh = status
            .as_ref()
            .is_some_and(|s| s.state == super::status::State::Ok);
        if let Some(s) = status.as_ref().filter(|_| !backups_fresh) {
            problems.push(s.headline.clone());
        }
        HealthReport {
            healthy: config_valid && root_writable && database_reachable && backups_fresh,
            config_valid,
            root_writable,
            database_reachable,
            backups_fresh,
            last_backup_age_seconds: status
                .as_ref()
                .and_then(|s| s.status.last_success.as_ref())
                .map(|l| l.age_seconds),
            max_age_seconds: thresholds.max_age.as_secs(),
            problems,
            status,
        }
    }
}
