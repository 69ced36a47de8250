//! How results, progress and errors are shown: progress bars on a terminal, plain log lines
//! otherwise (the systemd journal), JSON on request.

mod backup;
mod progress;

use std::io::Write;
use std::sync::Mutex;

use coffer_core::Warning;
use coffer_core::text::redact;
use serde::Serialize;

pub use backup::print_backup;
pub use progress::{Lines, Reporter};

/// Writes one line to stdout. A closed stdout (`coffer status | true`, `| head -0`) is not
/// a failure of the operation: the line is dropped and the operation's own exit code
/// stands. Any other write error (a full disk) is remembered and reported by
/// [`stdout_failure`] at the end.
macro_rules! outln {
    () => { $crate::output::write_stdout(format_args!("")) };
    ($($arg:tt)*) => { $crate::output::write_stdout(format_args!($($arg)*)) };
}
pub(crate) use outln;

/// Writes one line to stderr, ignoring errors: stderr is where failures are reported, so
/// there is nowhere left to report its own.
macro_rules! errln {
    () => { $crate::output::write_stderr(format_args!("")) };
    ($($arg:tt)*) => { $crate::output::write_stderr(format_args!($($arg)*)) };
}
pub(crate) use errln;

/// The first stdout write error other than a closed pipe.
static STDOUT_ERROR: Mutex<Option<std::io::Error>> = Mutex::new(None);

/// Implementation of [`outln!`].
pub fn write_stdout(line: std::fmt::Arguments<'_>) {
    let text = line.to_string();
    let line = without_controls(&text);
    let mut out = std::io::stdout().lock();
    let result = writeln!(out, "{line}").and_then(|()| out.flush());
    remember(result);
}

/// `text` with control characters other than newline and tab shown as `\u{1b}`: a file or
/// directory name from the workspace or the backup root must not be able to send escape
/// sequences to the operator's terminal or rewrite a line with `\r`.
fn without_controls(text: &str) -> std::borrow::Cow<'_, str> {
    if !text
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return std::borrow::Cow::Borrowed(text);
    }
    text.chars()
        .map(|c| {
            if c.is_control() && c != '\n' && c != '\t' {
                c.escape_unicode().to_string()
            } else {
                c.to_string()
            }
        })
        .collect::<String>()
        .into()
}

/// A name that came from outside (a workspace file, an entry of the backup root) as one
/// line: newlines and other control characters escaped, so it cannot fake a line of output.
pub fn shown(name: &str) -> String {
    name.chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

fn remember(result: std::io::Result<()>) {
    if let Err(e) = result
        && e.kind() != std::io::ErrorKind::BrokenPipe
        && let Ok(mut slot) = STDOUT_ERROR.lock()
        && slot.is_none()
    {
        *slot = Some(e);
    }
}

/// Implementation of [`errln!`].
pub fn write_stderr(line: std::fmt::Arguments<'_>) {
    let text = line.to_string();
    let line = without_controls(&text);
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// A stdout write error (not a closed pipe) seen during the run, if any.
pub fn stdout_failure() -> Option<std::io::Error> {
    remember(std::io::stdout().lock().flush());
    STDOUT_ERROR.lock().ok().and_then(|mut s| s.take())
}

/// An error split for display: the first line (what failed and what to do), and the
/// details (further lines, then the chain of causes). Every line is redacted: a cause may
/// quote a URL or a command's stderr.
pub fn error_parts(err: &anyhow::Error) -> (String, Vec<String>) {
    let text = err.to_string();
    let text = redact(&text);
    let mut lines = text.lines();
    let first = lines.next().unwrap_or("unknown error").to_string();
    let mut details: Vec<String> = lines
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect();
    for cause in err.chain().skip(1) {
        details.push(format!("caused by: {}", redact(&cause.to_string())));
    }
    // The library names no flags (issue #12): the CLI adds the flag that changes the outcome.
    if text.contains(coffer_core::UNSIGNED_REFUSED) {
        details.push(format!("hint: {}", crate::cmd::ALLOW_UNSIGNED_HINT));
    }
    (first, details)
}

/// Prints an error: the first line says what failed and what to do; details follow.
pub fn print_error(err: &anyhow::Error) {
    let (first, details) = error_parts(err);
    errln!("error: {first}");
    for line in details {
        errln!("  {line}");
    }
}

/// The `--json` form of a failure, printed on stdout (the human lines still go to stderr).
#[derive(Serialize)]
struct ErrorJson {
    error: ErrorFields,
}

#[derive(Serialize)]
struct ErrorFields {
    message: String,
    details: Option<String>,
    exit_code: u8,
}

/// The `--json` form of a failure, one line with sorted keys:
/// `{"error": {"details": "..." | null, "exit_code": N, "message": "..."}}`.
pub fn error_json(err: &anyhow::Error, exit_code: u8) -> serde_json::Value {
    let (message, details) = error_parts(err);
    let json = ErrorJson {
        error: ErrorFields {
            message,
            details: (!details.is_empty()).then(|| details.join("\n")),
            exit_code,
        },
    };
    serde_json::to_value(json).unwrap_or_default()
}

/// Prints `value` as pretty JSON on stdout, fields in their declared order.
pub fn print_json(value: &impl Serialize) -> anyhow::Result<()> {
    outln!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Prints `value` as pretty JSON on stdout with the keys of every object sorted: the
/// shape `list`, `status`, `verify`, `restore` and errors have always had.
pub fn print_json_sorted(value: &impl Serialize) -> anyhow::Result<()> {
    print_json(&serde_json::to_value(value)?)
}

/// Prints a warning on stderr, with the CLI's advice where it has some.
pub fn print_warning(warning: &Warning) {
    let text = match warning {
        Warning::RunLog(e) => format!("{e}; `coffer status` will not count this run"),
        w => w.to_string(),
    };
    errln!("warning: {}", redact(&text));
}

pub use coffer_core::text::bytes;
