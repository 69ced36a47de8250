//! `[hooks]`: operator commands and how long each may run.

use serde::{Deserialize, Serialize};

/// `[hooks]`: commands (argv lists, no shell) run around restores and after runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HooksConfig {
    /// Run before a restore changes anything, e.g. `[["docker","compose","stop","backend"]]`.
    pub before_restore: Vec<Vec<String>>,
    /// Run after a restore, whether it succeeded or not, so the application comes back.
    pub after_restore: Vec<Vec<String>>,
    /// Run after a successful run.
    pub on_success: Vec<Vec<String>>,
    /// Run after a failed run.
    pub on_failure: Vec<Vec<String>>,
    /// How long one command (a hook, or `alembic.expected_head_command`) may run before it
    /// is stopped, as `"90s"`, `"10m"`, `"1h"`; default 10 minutes.
    #[serde(with = "duration_text")]
    pub timeout: std::time::Duration,
}

impl Default for HooksConfig {
    fn default() -> Self {
        HooksConfig {
            before_restore: Vec::new(),
            after_restore: Vec::new(),
            on_success: Vec::new(),
            on_failure: Vec::new(),
            timeout: crate::report::hooks::DEFAULT_TIMEOUT,
        }
    }
}

/// A duration written as people do (`"90s"`, `"10m"`, `"1h 30m"`).
mod duration_text {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_duration(*d))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text).map_err(|e| {
            serde::de::Error::custom(format!("{e}: write a duration such as \"90s\" or \"10m\""))
        })
    }
}
