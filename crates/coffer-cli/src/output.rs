//! How results, progress and errors are shown: progress bars on a terminal, plain log lines
//! otherwise (the systemd journal), JSON on request.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use coffer_core::manifest::ArtifactRole;
use coffer_core::progress::Progress;
use coffer_core::redact::redact;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

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
    if text.contains(coffer_core::signing::UNSIGNED_REFUSED) {
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

/// The `--json` form of a failure, printed on stdout (the human lines still go to stderr):
/// `{"error": {"message": "...", "details": "..." | null, "exit_code": N}}`.
pub fn error_json(err: &anyhow::Error, exit_code: u8) -> serde_json::Value {
    let (message, details) = error_parts(err);
    serde_json::json!({
        "error": {
            "message": message,
            "details": (!details.is_empty()).then(|| details.join("\n")),
            "exit_code": exit_code,
        }
    })
}

pub use coffer_core::units::bytes;

/// Creates the progress reporter that fits where stderr goes.
pub fn reporter(quiet: bool) -> Box<dyn Progress> {
    if quiet {
        Box::new(coffer_core::progress::Silent)
    } else if std::io::stderr().is_terminal() {
        Box::new(Bars::default())
    } else {
        Box::new(LogLines::default())
    }
}

/// One progress bar per artifact.
#[derive(Default)]
struct Bars {
    multi: MultiProgress,
    bars: Mutex<Vec<(ArtifactRole, ProgressBar)>>,
}

impl Bars {
    fn bar(&self, role: ArtifactRole) -> Option<ProgressBar> {
        let bars = self.bars.lock().ok()?;
        bars.iter()
            .find(|(r, _)| *r == role)
            .map(|(_, b)| b.clone())
    }
}

impl Progress for Bars {
    fn start(&self, role: ArtifactRole, file: &str) {
        let bar = self.multi.add(ProgressBar::new_spinner());
        bar.set_style(
            ProgressStyle::with_template("{spinner} {prefix:<10} {msg:<24} {bytes:>10} {binary_bytes_per_sec:>12} {elapsed:>4}")
                .expect("valid template"),
        );
        bar.set_prefix(role.as_str());
        bar.set_message(file.to_string());
        bar.enable_steady_tick(Duration::from_millis(120));
        if let Ok(mut bars) = self.bars.lock() {
            bars.push((role, bar));
        }
    }

    fn advance(&self, role: ArtifactRole, bytes: u64) {
        if let Some(b) = self.bar(role) {
            b.inc(bytes);
        }
    }

    fn finish(&self, role: ArtifactRole, summary: &str) {
        if let Some(b) = self.bar(role) {
            b.finish_with_message(summary.to_string());
        }
    }

    fn step(&self, text: &str) {
        let _ = self.multi.println(format!("· {text}"));
    }
}

/// Plain lines for logs: a start line, a line every 30 s per artifact, an end line.
#[derive(Default)]
struct LogLines {
    state: Mutex<Vec<(ArtifactRole, u64, Instant, Instant)>>,
}

impl Progress for LogLines {
    fn start(&self, role: ArtifactRole, file: &str) {
        errln!("{}: {file} started", role.as_str());
        if let Ok(mut s) = self.state.lock() {
            s.push((role, 0, Instant::now(), Instant::now()));
        }
    }

    fn advance(&self, role: ArtifactRole, n: u64) {
        if let Ok(mut s) = self.state.lock()
            && let Some(entry) = s.iter_mut().find(|e| e.0 == role)
        {
            entry.1 += n;
            if entry.3.elapsed() >= Duration::from_secs(30) {
                entry.3 = Instant::now();
                let secs = entry.2.elapsed().as_secs_f64().max(0.001);
                errln!(
                    "{}: {} processed ({}/s)",
                    role.as_str(),
                    bytes(entry.1),
                    bytes((entry.1 as f64 / secs) as u64)
                );
            }
        }
    }

    fn finish(&self, role: ArtifactRole, summary: &str) {
        errln!("{}: done: {summary}", role.as_str());
    }

    fn step(&self, text: &str) {
        errln!("{text}");
    }
}
