//! `status`: the health of the backup root against alert thresholds.

use std::path::PathBuf;

use chrono::Utc;
use serde::Serialize;

use crate::coffer::Coffer;
use crate::error::Error;
use crate::root::runlog::{self, Alert, Status, Thresholds};

/// Whether a threshold is crossed.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// No threshold crossed.
    Ok,
    /// A threshold crossed: see the alert.
    Critical,
}

/// The status of the root judged against thresholds.
#[non_exhaustive]
#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    /// Ok or critical.
    pub state: State,
    /// The threshold crossed, if any.
    pub alert: Option<Alert>,
    /// One line for monitoring plugins: `OK: …` or `CRITICAL: …`.
    pub headline: String,
    /// The age threshold, in seconds.
    pub max_age_seconds: u64,
    /// The consecutive-failures threshold (0: never).
    pub max_failures: u32,
    /// The backup root.
    pub backup_dir: PathBuf,
    /// What the run log and the root show.
    pub status: Status,
}

impl Coffer {
    /// The status of the root from its run log and listing, judged against `thresholds`.
    pub fn status(&self, thresholds: &Thresholds) -> Result<StatusReport, Error> {
        let status = runlog::status(self.root(), Utc::now())?;
        let alert = status.check(thresholds);
        Ok(StatusReport {
            state: if alert.is_some() {
                State::Critical
            } else {
                State::Ok
            },
            alert,
            headline: status.headline(thresholds),
            max_age_seconds: thresholds.max_age.as_secs(),
            max_failures: thresholds.max_failures,
            backup_dir: self.root().to_path_buf(),
            status,
        })
    }
}
