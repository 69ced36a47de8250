//! What pre-flight makes of other sessions connected to the target database.

use crate::hint::{Hint, Problems};
use crate::postgres::Session;

/// Other sessions on the target database: to be terminated, left to the before-restore
/// hooks, or a refusal (the caller's choice that resolves it is the hint).
pub(super) fn judge_sessions(
    found: &[Session],
    database: &str,
    terminate: bool,
    hooks_end_them: bool,
    notes: &mut Vec<String>,
    problems: &mut Problems,
) {
    let list = found
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ");
    if terminate {
        notes.push(format!(
            "{} other session(s) will be terminated: {list}",
            found.len()
        ));
    } else if hooks_end_them {
        notes.push(format!(
            "{} other session(s) connected now; hooks.before_restore should end them: {list}",
            found.len()
        ));
    } else {
        problems.push_hinted(
            format!(
                "{} other session(s) connected to {database}: {list}; stop the application or configure hooks.before_restore",
                found.len()
            ),
            [Hint::TerminateConnections],
        );
    }
}
