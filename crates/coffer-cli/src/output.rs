//! How results, progress and errors are shown: progress bars on a terminal, plain log lines
//! otherwise (the systemd journal), JSON on request.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use coffer_core::manifest::ArtifactRole;
use coffer_core::progress::Progress;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

/// Prints an error: the first line says what failed and what to do; details follow.
pub fn print_error(err: &anyhow::Error) {
    let text = err.to_string();
    let mut lines = text.lines();
    eprintln!("error: {}", lines.next().unwrap_or("unknown error"));
    for line in lines.filter(|l| !l.trim().is_empty()) {
        eprintln!("  {line}");
    }
    for cause in err.chain().skip(1) {
        eprintln!("  caused by: {cause}");
    }
    if text.contains(coffer_core::signing::UNSIGNED_REFUSED) {
        eprintln!("  hint: {}", crate::cmd::ALLOW_UNSIGNED_HINT);
    }
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
        eprintln!("{}: {file} started", role.as_str());
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
                eprintln!(
                    "{}: {} processed ({}/s)",
                    role.as_str(),
                    bytes(entry.1),
                    bytes((entry.1 as f64 / secs) as u64)
                );
            }
        }
    }

    fn finish(&self, role: ArtifactRole, summary: &str) {
        eprintln!("{}: done: {summary}", role.as_str());
    }

    fn step(&self, text: &str) {
        eprintln!("{text}");
    }
}
