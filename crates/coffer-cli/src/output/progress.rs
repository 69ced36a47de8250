//! Progress on stderr while an operation runs: bars on a terminal, plain log lines for the
//! systemd journal, and the lines of steps, notes and warnings.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use coffer_core::manifest::ArtifactRole;
use coffer_core::progress::Silent;
use coffer_core::{Event, Progress};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use super::{bytes, errln, outln, print_warning};

/// Where the lines of completed steps and notes go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lines {
    /// On stdout, with the result.
    Stdout,
    /// On stderr (with `--json`, whose stdout is the JSON alone).
    Stderr,
    /// Nowhere (`--quiet`).
    Hidden,
}

impl Lines {
    /// Prints one line there.
    pub fn say(self, text: std::fmt::Arguments<'_>) {
        match self {
            Lines::Stdout => outln!("{text}"),
            Lines::Stderr => errln!("{text}"),
            Lines::Hidden => {}
        }
    }
}

/// The CLI's [`Progress`]: artifact streams and steps as bars or log lines, and remote
/// transfers as lines on stderr (none of them when quiet); completed steps, notes and
/// pruned backups as [`Lines`]; warnings on stderr always.
pub struct Reporter {
    streams: Box<dyn Progress>,
    quiet: bool,
    lines: Lines,
}

impl Reporter {
    /// Streams shown unless `quiet`, in the form that fits where stderr goes; other lines
    /// to `lines`.
    pub fn new(quiet: bool, lines: Lines) -> Reporter {
        let streams: Box<dyn Progress> = if quiet {
            Box::new(Silent)
        } else if std::io::stderr().is_terminal() {
            Box::new(Bars::default())
        } else {
            Box::new(LogLines::default())
        };
        Reporter {
            streams,
            quiet,
            lines,
        }
    }

    /// A line on stderr about a transfer, unless quiet.
    fn transfer(&self, text: std::fmt::Arguments<'_>) {
        if !self.quiet {
            errln!("{text}");
        }
    }
}

impl Progress for Reporter {
    fn event(&self, event: &Event<'_>) {
        match event {
            Event::Done(text) => self.lines.say(format_args!("✓ {text}")),
            Event::Note(text) => self.lines.say(format_args!("note: {text}")),
            Event::Hint(hint) => {
                for line in super::hint_lines([hint]) {
                    self.lines.say(format_args!("{line}"));
                }
            }
            Event::Pruned(name) => self.lines.say(format_args!("pruned {name}")),
            Event::Warning(w) => print_warning(w),
            Event::Transfer(text) => self.transfer(format_args!("{text}")),
            Event::Synced(report) => {
                self.transfer(format_args!(
                    "synced to {}: {}",
                    report.remote,
                    report.summary()
                ));
            }
            Event::Pulled(report) => self.transfer(format_args!(
                "✓ pulled {} from the remote and verified it: {}",
                report.name,
                report.path.display()
            )),
            Event::FoundInRoot(name) => self.transfer(format_args!(
                "note: {name} is already complete in the backup root; not pulling it"
            )),
            other => self.streams.event(other),
        }
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
}

impl Progress for Bars {
    fn event(&self, event: &Event<'_>) {
        match *event {
            Event::ArtifactStarted { role, file } => self.start(role, file),
            Event::ArtifactAdvanced { role, bytes } => {
                if let Some(b) = self.bar(role) {
                    b.inc(bytes);
                }
            }
            Event::ArtifactFinished { role, summary } => {
                if let Some(b) = self.bar(role) {
                    b.finish_with_message(summary.to_string());
                }
            }
            Event::Step(text) => {
                let _ = self.multi.println(format!("· {text}"));
            }
            _ => {}
        }
    }
}

/// Plain lines for logs: a start line, a line every 30 s per artifact, an end line.
#[derive(Default)]
struct LogLines {
    state: Mutex<Vec<(ArtifactRole, u64, Instant, Instant)>>,
}

impl LogLines {
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
}

impl Progress for LogLines {
    fn event(&self, event: &Event<'_>) {
        match *event {
            Event::ArtifactStarted { role, file } => {
                errln!("{}: {file} started", role.as_str());
                if let Ok(mut s) = self.state.lock() {
                    s.push((role, 0, Instant::now(), Instant::now()));
                }
            }
            Event::ArtifactAdvanced { role, bytes } => self.advance(role, bytes),
            Event::ArtifactFinished { role, summary } => {
                errln!("{}: done: {summary}", role.as_str());
            }
            Event::Step(text) => errln!("{text}"),
            _ => {}
        }
    }
}
