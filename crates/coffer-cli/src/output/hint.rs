//! The CLI's words for the library's [`Hint`]s: the flag or subcommand that applies. The
//! one place where a remedy named by the library becomes command-line advice.

use coffer_core::Hint;

/// The advice for `hint`, as shown after `hint: `; `None` for a hint this CLI does not
/// know (the library's message already says what to change in the configuration).
pub fn advice(hint: Hint) -> Option<&'static str> {
    Some(match hint {
        Hint::Identity => "to use another age identity for this run, pass --identity PATH",
        Hint::AllowUnsigned => {
            "to accept an unsigned backup for this run only, pass --allow-unsigned (a bad signature is never accepted)"
        }
        Hint::ExpectHead => "to give the code's Alembic head for this run, pass --expect-head REV",
        Hint::AllowHeadMismatch => "to restore anyway, pass --allow-head-mismatch",
        Hint::TerminateConnections => {
            "to end the other sessions instead of refusing, pass --terminate-connections"
        }
        Hint::TargetDir => "to restore the workspace into another directory, pass --target-dir DIR",
        Hint::TargetDb => "to restore into a new database instead, pass --target-db NAME",
        Hint::DatabaseOnly => "to restore only the database, pass --db-only",
        Hint::WorkspaceOnly => "to restore only the workspace, pass --workspace-only",
        Hint::AnotherBackup => "`coffer list` shows the backups, `coffer verify --all` checks them",
        Hint::ListBackups => "`coffer list` shows the backups there",
        Hint::VerifyBackup => "`coffer verify PATH` checks it end to end",
        Hint::ListRemote => "`coffer list --remote` shows the remote's backups",
        Hint::Sync => "`coffer sync` on the host that has the backups uploads them",
        Hint::SigningKeygen => "`coffer keygen --signing PATH` writes a key without password",
        _ => return None,
    })
}

/// The `hint: …` lines for `hints`, each once, in order.
pub fn hint_lines<'h>(hints: impl IntoIterator<Item = &'h Hint>) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for text in hints.into_iter().filter_map(|h| advice(*h)) {
        let line = format!("hint: {text}");
        if !lines.contains(&line) {
            lines.push(line);
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every hint the library has today, so a new one without words fails here.
    const ALL: [Hint; 15] = [
        Hint::Identity,
        Hint::AllowUnsigned,
        Hint::ExpectHead,
        Hint::AllowHeadMismatch,
        Hint::TerminateConnections,
        Hint::TargetDir,
        Hint::TargetDb,
        Hint::DatabaseOnly,
        Hint::WorkspaceOnly,
        Hint::AnotherBackup,
        Hint::ListBackups,
        Hint::VerifyBackup,
        Hint::ListRemote,
        Hint::Sync,
        Hint::SigningKeygen,
    ];

    #[test]
    fn every_hint_has_advice_naming_a_flag_or_a_subcommand() {
        for hint in ALL {
            let text = advice(hint).unwrap_or_else(|| panic!("{hint:?} has no advice"));
            assert!(
                text.contains(" --") || text.contains("`coffer "),
                "{hint:?}: {text}"
            );
        }
    }

    #[test]
    fn the_flags_are_the_ones_the_commands_take() {
        assert!(
            advice(Hint::TerminateConnections)
                .unwrap()
                .contains("--terminate-connections")
        );
        assert!(
            advice(Hint::AllowHeadMismatch)
                .unwrap()
                .contains("--allow-head-mismatch")
        );
        assert!(advice(Hint::Identity).unwrap().contains("--identity"));
        assert!(advice(Hint::ExpectHead).unwrap().contains("--expect-head"));
        assert!(advice(Hint::TargetDir).unwrap().contains("--target-dir"));
        assert!(advice(Hint::DatabaseOnly).unwrap().contains("--db-only"));
        assert!(
            advice(Hint::WorkspaceOnly)
                .unwrap()
                .contains("--workspace-only")
        );
    }

    #[test]
    fn the_unsigned_advice_is_the_documented_line() {
        assert_eq!(
            hint_lines(&[Hint::AllowUnsigned]),
            [
                "hint: to accept an unsigned backup for this run only, pass --allow-unsigned (a bad signature is never accepted)"
            ]
        );
    }

    #[test]
    fn lines_come_once_each_in_order() {
        let lines = hint_lines(&[Hint::DatabaseOnly, Hint::TargetDir, Hint::DatabaseOnly]);
        assert_eq!(
            lines,
            [
                "hint: to restore only the database, pass --db-only",
                "hint: to restore the workspace into another directory, pass --target-dir DIR",
            ]
        );
    }
}
