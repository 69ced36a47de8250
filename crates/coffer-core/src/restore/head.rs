//! The Alembic check: the backup's head compared with the head the code expects, from
//! `--expect-head`, `alembic.expected_head_command` or `alembic.versions_dir`.

use crate::postgres::alembic::{self, HeadRelation, RevisionGraph};
use crate::report::hooks;

use super::{Plan, RestoreSettings, RestoreSteps};

/// Compares the backup's head with the code's into `plan.head`: a match is a check, an
/// unknown code head a note, a mismatch a problem (a note with `--allow-head-mismatch`).
pub(super) fn check_head(
    settings: &RestoreSettings,
    options: &RestoreSteps,
    plan: &mut Plan,
    problems: &mut Vec<String>,
) {
    let graph = match &settings.alembic.versions_dir {
        Some(dir) => match RevisionGraph::from_versions_dir(dir) {
            Ok(g) => Some(g),
            Err(e) => {
                problems.push(format!("cannot read alembic.versions_dir: {e}"));
                return;
            }
        },
        None => None,
    };
    let expected = if let Some(h) = &options.expect_heads {
        Some((h.clone(), "--expect-head".to_string()))
    } else if let Some(cmd) = &settings.alembic.expected_head_command {
        match hooks::capture(cmd, settings.hooks.timeout) {
            Ok((status, out)) if status.success() => {
                let heads = alembic::parse_heads_output(&out);
                if heads.is_empty() {
                    problems.push(format!(
                        "alembic.expected_head_command `{}` printed no revision id",
                        cmd.join(" ")
                    ));
                    return;
                }
                Some((heads, format!("`{}`", cmd.join(" "))))
            }
            Ok((status, _)) => {
                problems.push(format!(
                    "alembic.expected_head_command `{}` failed ({}); fix it or pass --expect-head",
                    cmd.join(" "),
                    crate::postgres::describe_status(status)
                ));
                return;
            }
            Err(e) => {
                problems.push(format!(
                    "cannot run alembic.expected_head_command `{}`: {e}",
                    cmd.join(" ")
                ));
                return;
            }
        }
    } else {
        graph.as_ref().map(|g| {
            (
                g.heads().into_iter().collect(),
                "alembic.versions_dir".to_string(),
            )
        })
    };
    let Some((expected, source)) = expected else {
        plan.notes.push(
            "the code's Alembic head is not known (set alembic.versions_dir or alembic.expected_head_command, or pass --expect-head): compatibility not checked"
                .into(),
        );
        return;
    };
    let backup = plan.head.backup.clone().unwrap_or_default();
    let relation = alembic::compare_heads(&backup, &expected, graph.as_ref());
    plan.head.expected = Some(expected.clone());
    plan.head.source = Some(source.clone());
    plan.head.relation = Some(relation);
    let shown = |h: &[String]| {
        if h.is_empty() {
            "none".to_string()
        } else {
            h.join(",")
        }
    };
    if relation == HeadRelation::Same {
        plan.checks.push(format!(
            "alembic head {} is the code's head (from {source})",
            shown(&backup)
        ));
        return;
    }
    let advice = match (relation, graph.is_some()) {
        (HeadRelation::BackupOlder, _) => {
            "the backup is OLDER than the code: restore it, then run `alembic upgrade head`"
        }
        (HeadRelation::BackupNewer, _) => {
            "the backup is NEWER than the code: it was written by a later release; roll the code forward to that release first"
        }
        (_, true) => {
            "the backup and the code are on unrelated Alembic branches: this backup may belong to another application or branch"
        }
        _ => "set alembic.versions_dir to learn whether the backup is older or newer than the code",
    };
    let text = format!(
        "alembic head mismatch: the backup is at {}, the code (from {source}) expects {}; {advice}",
        shown(&backup),
        shown(&expected)
    );
    if options.allow_head_mismatch {
        plan.notes
            .push(format!("{text} (--allow-head-mismatch given)"));
    } else {
        problems.push(format!(
            "{text}; pass --allow-head-mismatch to restore anyway"
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::restore::HeadCheck;

    fn settings() -> RestoreSettings {
        RestoreSettings {
            database: Default::default(),
            workspace: None,
            hooks: Default::default(),
            alembic: Default::default(),
            backup_root: "/var/backups/coffer".into(),
            metrics_file: None,
            signatures: Default::default(),
        }
    }

    fn plan(backup_head: Option<&[&str]>) -> Plan {
        Plan {
            backup: "b1".into(),
            backup_path: "/var/backups/coffer/b1".into(),
            created: None,
            database: None,
            workspace: None,
            head: HeadCheck {
                backup: backup_head.map(|h| h.iter().map(ToString::to_string).collect()),
                expected: None,
                source: None,
                relation: None,
            },
            sessions: Vec::new(),
            checks: Vec::new(),
            notes: Vec::new(),
        }
    }

    fn expecting(heads: &[&str]) -> RestoreSteps {
        RestoreSteps {
            expect_heads: Some(heads.iter().map(ToString::to_string).collect()),
            check_code_head: true,
            ..RestoreSteps::default()
        }
    }

    #[test]
    fn the_same_head_passes_as_a_check() {
        let mut plan = plan(Some(&["abc"]));
        let mut problems = Vec::new();
        check_head(&settings(), &expecting(&["abc"]), &mut plan, &mut problems);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(
            plan.checks,
            ["alembic head abc is the code's head (from --expect-head)"]
        );
        assert_eq!(plan.head.relation, Some(HeadRelation::Same));
        assert_eq!(plan.head.source.as_deref(), Some("--expect-head"));
    }

    #[test]
    fn a_different_head_is_refused_unless_allowed() {
        let mut refused = plan(Some(&["abc"]));
        let mut problems = Vec::new();
        check_head(
            &settings(),
            &expecting(&["def"]),
            &mut refused,
            &mut problems,
        );
        assert_eq!(
            problems,
            [
                "alembic head mismatch: the backup is at abc, the code (from --expect-head) expects def; \
                 set alembic.versions_dir to learn whether the backup is older or newer than the code; \
                 pass --allow-head-mismatch to restore anyway"
            ]
        );
        assert_eq!(refused.head.relation, Some(HeadRelation::Unrelated));

        let mut allowed = plan(Some(&["abc"]));
        let options = RestoreSteps {
            allow_head_mismatch: true,
            ..expecting(&["def"])
        };
        let mut problems = Vec::new();
        check_head(&settings(), &options, &mut allowed, &mut problems);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(allowed.notes.len(), 1);
        assert!(
            allowed.notes[0].ends_with("(--allow-head-mismatch given)"),
            "{:?}",
            allowed.notes
        );
    }

    #[test]
    fn a_backup_without_a_head_is_shown_as_none() {
        let mut plan = plan(None);
        let mut problems = Vec::new();
        check_head(&settings(), &expecting(&["def"]), &mut plan, &mut problems);
        assert!(
            problems[0].starts_with("alembic head mismatch: the backup is at none,"),
            "{problems:?}"
        );
    }

    #[test]
    fn an_unknown_code_head_is_a_note() {
        let mut plan = plan(Some(&["abc"]));
        let mut problems = Vec::new();
        let options = RestoreSteps {
            check_code_head: true,
            ..RestoreSteps::default()
        };
        check_head(&settings(), &options, &mut plan, &mut problems);
        assert!(problems.is_empty(), "{problems:?}");
        assert!(
            plan.notes[0].starts_with("the code's Alembic head is not known"),
            "{:?}",
            plan.notes
        );
        assert_eq!(plan.head.relation, None);
    }
}
