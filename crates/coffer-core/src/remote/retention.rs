//! Remote retention: which local backups are worth uploading at all, which remote backups the
//! rules delete, and the deletions themselves.
//!
//! The rules are [`crate::root::retention::decide`]'s, the same as local pruning. Only complete
//! backups of coffer's are deleted, never manual ones, never the newest complete one, never
//! one dated in the future by its name or manifest, and only folders [`super::classify`]
//! knows as coffer's: every other folder is reported as unknown and left alone, and a
//! deletion removes only the objects coffer wrote, manifest first.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::error::{SYNC_STOPPED, check_cancel};
use super::{Remote, RemoteBackup, RemoteError};
use crate::context::RunContext;
use crate::root::catalog::BackupEntry;
use crate::root::retention::{self, Candidate, RetentionPolicy};

/// A folder under the remote prefix that coffer does not know, and why.
#[derive(Debug, Clone, Serialize)]
pub struct UnknownFolder {
    /// Its name under the prefix.
    pub name: String,
    /// Why coffer does not take it for its own.
    pub reason: String,
}

/// What [`apply`] did.
#[derive(Debug, Clone)]
pub struct RetentionOutcome {
    /// Remote backups deleted, in the order they went.
    pub deleted: Vec<String>,
    /// Backups the rules would delete that were left whole, and why (the folder holds
    /// objects coffer did not write).
    pub left: Vec<UnknownFolder>,
    /// The listing the rules were applied to, taken right before deleting.
    pub listing: Vec<RemoteBackup>,
}

/// Lists the remote again and deletes the backups `policy` does not keep at `now`
/// ([`remote_deletions`]), each manifest first. `ctx`'s cancel flag is checked before each backup: a
/// stop leaves at most one backup without its manifest, never one that looks complete.
pub async fn apply(
    remote: &Remote,
    policy: &RetentionPolicy,
    now: DateTime<Utc>,
    ctx: &RunContext<'_>,
) -> Result<RetentionOutcome, RemoteError> {
    let listing = remote.folders().await?;
    let mut deleted = Vec::new();
    let mut left = Vec::new();
    for doomed in remote_deletions(policy, &listing, now) {
        check_cancel(ctx.cancel(), "remote retention", SYNC_STOPPED)?;
        match remote.delete_backup(doomed).await? {
            Ok(()) => {
                ctx.transfer(&format!(
                    "{}: deleted from the remote (remote retention)",
                    doomed.name
                ));
                deleted.push(doomed.name.clone());
            }
            Err(reason) => left.push(UnknownFolder {
                name: doomed.name.clone(),
                reason,
            }),
        }
    }
    Ok(RetentionOutcome {
        deleted,
        left,
        listing,
    })
}

/// Names of the local backups the remote should hold: those remote retention (`policy` at
/// `now`) keeps when they are added to the remote's complete backups. Everything without a
/// policy.
pub(crate) fn wanted(
    policy: Option<&RetentionPolicy>,
    now: DateTime<Utc>,
    local: &[BackupEntry],
    remote: &[RemoteBackup],
) -> BTreeSet<String> {
    let Some(policy) = policy else {
        return local.iter().map(|e| e.name.clone()).collect();
    };
    let mut candidates: BTreeMap<String, Candidate> = BTreeMap::new();
    for b in remote.iter().filter(|b| b.is_deletable()) {
        if let (Some(kind), Some(time)) = (b.kind, b.created) {
            candidates.insert(
                b.name.clone(),
                Candidate {
                    name: b.name.clone(),
                    kind,
                    time,
                    complete: true,
                },
            );
        }
    }
    let mut unknown = BTreeSet::new();
    for e in local {
        match (e.kind, e.created) {
            (Some(kind), Some(time)) => {
                candidates.insert(
                    e.name.clone(),
                    Candidate {
                        name: e.name.clone(),
                        kind,
                        time,
                        complete: true,
                    },
                );
            }
            // Kind or time unknown: retention cannot judge it, so it is uploaded.
            _ => {
                unknown.insert(e.name.clone());
            }
        }
    }
    let candidates: Vec<Candidate> = candidates.into_values().collect();
    let mut keep: BTreeSet<String> = retention::decide(policy, &candidates, now, true)
        .into_iter()
        .filter(|d| d.keep)
        .map(|d| d.name)
        .collect();
    keep.extend(unknown);
    keep
}

/// The remote backups that retention deletes: complete ones of coffer's the rules do not
/// keep. Incomplete ones are left for the next sync to finish (or for a person to look at);
/// unknown folders are not even candidates (they neither count nor go), and one dated in the
/// future by its manifest is kept like one dated so by its name.
pub fn remote_deletions<'a>(
    policy: &RetentionPolicy,
    remote: &'a [RemoteBackup],
    now: DateTime<Utc>,
) -> Vec<&'a RemoteBackup> {
    let candidates: Vec<Candidate> = remote
        .iter()
        .filter(|b| b.unknown.is_none())
        .filter_map(|b| {
            Some(Candidate {
                name: b.name.clone(),
                kind: b.kind?,
                time: b.created?,
                complete: b.status.is_usable(),
            })
        })
        .collect();
    let doomed: BTreeSet<String> = retention::decide(policy, &candidates, now, true)
        .into_iter()
        .filter(|d| !d.keep)
        .map(|d| d.name)
        .collect();
    remote
        .iter()
        .filter(|b| doomed.contains(&b.name) && b.is_deletable() && !b.is_future(now))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::root::catalog::EntryStatus;

    /// A legacy-named remote folder with a scripts' manifest dated `stamp`.
    fn folder(name: &str, stamp: &str, status: EntryStatus, unknown: Option<&str>) -> RemoteBackup {
        let text = format!(r#"{{"timestamp":"{stamp}"}}"#);
        let manifest = crate::format::manifest::parse_bytes(text.as_bytes(), "test").unwrap();
        let parsed = crate::format::names::parse_name(name);
        RemoteBackup {
            name: name.into(),
            kind: parsed.map(|p| p.kind),
            created: parsed.map(|p| p.time),
            status,
            objects: BTreeMap::new(),
            manifest: Some(manifest),
            unknown: unknown.map(Into::into),
        }
    }

    /// Every rule off: only the newest complete backup of coffer's is kept, and only
    /// complete backups of coffer's not dated in the future are deleted. Unknown folders
    /// neither go nor count (an unknown newer one does not displace the newest).
    #[test]
    fn remote_deletions_table() {
        let now = DateTime::parse_from_rfc3339("2026-12-02T08:00:00Z")
            .unwrap()
            .to_utc();
        let policy = RetentionPolicy {
            keep_days: None,
            ..RetentionPolicy::default()
        };
        let foreign = Some("holds what coffer did not write: \"report.csv\"");
        let remote = vec![
            folder(
                "2026-12-01-120000",
                "2026-12-01-120000",
                EntryStatus::Legacy,
                foreign,
            ),
            folder(
                "2026-12-01-000000",
                "2026-12-01-000000",
                EntryStatus::Legacy,
                None,
            ),
            folder(
                "2020-01-04-000000",
                "2020-01-04-000000",
                EntryStatus::Incomplete("x".into()),
                None,
            ),
            folder(
                "2020-01-03-000000",
                "2099-01-01-000000",
                EntryStatus::Legacy,
                None,
            ),
            folder(
                "2020-01-02-000000",
                "2020-01-02-000000",
                EntryStatus::Legacy,
                foreign,
            ),
            folder(
                "2020-01-01-000000",
                "2020-01-01-000000",
                EntryStatus::Legacy,
                None,
            ),
            folder(
                "exports",
                "2020-01-01-000000",
                EntryStatus::Legacy,
                Some("folder not named like a backup"),
            ),
        ];
        let doomed: Vec<&str> = remote_deletions(&policy, &remote, now)
            .into_iter()
            .map(|b| b.name.as_str())
            .collect();
        assert_eq!(doomed, ["2020-01-01-000000"]);
    }
}
