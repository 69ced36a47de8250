//! Settling a swap that a killed run left behind: undone, or finished when its restore
//! committed.

use std::fs;
use std::path::Path;

use chrono::Utc;

use super::*;

/// Undoes or finishes a swap of `target` that a killed run left behind. `None` when there
/// was nothing to do. Refuses ([`SwapError::Untrusted`], [`SwapError::SharedParent`]) and
/// touches nothing when what is there is not provably coffer's.
pub fn recover(target: &Path) -> Result<Option<Recovery>, SwapError> {
    let (staging, previous, journal_path) = helper_paths(target)?;
    let any = [&staging, &previous, &journal_path]
        .iter()
        .any(|p| fs::symlink_metadata(p).is_ok());
    if !any {
        return Ok(None);
    }
    check_parent(target)?;
    let Some(journal) = read_journal(&journal_path)? else {
        // Without a journal the swap never started: at most a staging directory is left.
        // A previous tree without a journal is not ours to judge.
        if fs::symlink_metadata(&previous).is_ok() {
            return Err(untrusted(&previous, "no restore journal says what it is"));
        }
        let had_staging = own_dir(&staging, None)?.is_some();
        remove_tree(&staging)?;
        return Ok(had_staging.then(|| Recovery::RemovedStaging {
            backup: "a backup".into(),
        }));
    };
    if let Some(kept) = &journal.keep_previous_as
        && !is_kept_name(target, kept)
    {
        return Err(untrusted(
            &journal_path,
            format!(
                "it names {} to keep the previous workspace, which is not a name coffer derives for {}",
                kept.display(),
                target.display()
            ),
        ));
    }
    if journal.had_previous != journal.previous_id.is_some() {
        return Err(untrusted(&journal_path, "it is inconsistent"));
    }
    // Every directory acted on must be the one the journal recorded.
    own_dir(&staging, Some(journal.staging_id))?;
    let previous_there = match journal.previous_id {
        Some(id) => own_dir(&previous, Some(id))?.is_some(),
        None if fs::symlink_metadata(&previous).is_ok() => {
            return Err(untrusted(
                &previous,
                "the restore journal says there was no previous workspace",
            ));
        }
        None => false,
    };
    let backup = journal.backup.clone();
    let outcome = match journal.phase {
        Phase::Staging => {
            remove_tree(&staging)?;
            Recovery::RemovedStaging { backup }
        }
        Phase::Swapped => {
            // The target is either the restored tree (the staging directory renamed) or,
            // killed before the first rename, the previous one: anything else is refused.
            let target_id = match fs::symlink_metadata(target) {
                Ok(m) if m.is_dir() => Some((m.dev(), m.ino())),
                Ok(m) => {
                    return Err(untrusted(
                        target,
                        format!("it is {}", fsutil::kind_of(m.file_type())),
                    ));
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => None,
                Err(e) => return Err(io_err("inspect", target)(e)),
            };
            let restored_in_place = target_id == Some(journal.staging_id);
            if target_id.is_some() && !restored_in_place && target_id != journal.previous_id {
                return Err(untrusted(
                    target,
                    "it is neither the restored nor the previous tree the restore journal recorded",
                ));
            }
            remove_tree(&staging)?;
            if restored_in_place {
                remove_tree(target)?;
            }
            if previous_there {
                fs::rename(&previous, target)
                    .map_err(io_err("put the previous workspace back to", target))?;
            }
            Recovery::PutBack { backup }
        }
        Phase::Committed => {
            let keep = journal.keep_previous_as.as_deref();
            if let Some(k) = keep
                && previous_there
                && fs::symlink_metadata(k).is_ok()
            {
                return Err(untrusted(
                    k,
                    "it exists, so the previous workspace cannot be kept there",
                ));
            }
            finish_previous(&previous, keep)?;
            remove_tree(&staging)?;
            Recovery::FinishedCleanup { backup }
        }
    };
    sync_parent(target);
    remove_file(&journal_path)?;
    Ok(Some(outcome))
}

/// Marks a swap of `target` that a killed run left in phase Swapped as committed, because
/// the restore it belongs to committed elsewhere (a database swapped in by rename): the
/// next [`recover`] then finishes it (the previous tree removed, or kept as
/// [`kept_name`] with `keep_previous`) instead of putting the previous tree back.
/// `Ok(false)` when there is no journal; `Ok(true)` when it is (now) committed. Refuses
/// when the restored tree is not in place (a journal in phase Staging, or a target that
/// is not the tree the journal recorded): then the workspace was never swapped in.
pub fn mark_committed(target: &Path, keep_previous: bool) -> Result<bool, SwapError> {
    let (staging, previous, journal_path) = helper_paths(target)?;
    check_parent(target)?;
    let Some(mut journal) = read_journal(&journal_path)? else {
        return Ok(false);
    };
    match journal.phase {
        Phase::Committed => return Ok(true),
        Phase::Staging => {
            return Err(untrusted(
                &journal_path,
                "the restore committed but this journal says its workspace was never swapped in",
            ));
        }
        Phase::Swapped => {}
    }
    if own_dir(target, Some(journal.staging_id))?.is_none() {
        return Err(untrusted(
            target,
            "the restore committed but the restored workspace is not in place",
        ));
    }
    journal.phase = Phase::Committed;
    journal.keep_previous_as =
        (keep_previous && journal.had_previous).then(|| kept_name(target, Utc::now()));
    let swap = Swap {
        target: target.to_path_buf(),
        staging,
        previous,
        journal_path,
        journal,
    };
    swap.write_journal()?;
    Ok(true)
}
