//! The load side of the serve_load benchmark: the list/status clients, the server's RSS
//! samples, and the report.

use std::fmt::Write as _;
use std::fs;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};

use crate::{Args, agent};

/// What the clients saw.
#[derive(Clone, Default)]
pub struct Tally {
    ok: u64,
    /// Non-2xx answers by status, and transport errors as status 0.
    errors: std::collections::BTreeMap<u16, u64>,
    latencies_us: Vec<u64>,
}

/// One list/status client: `list` and `health` in turn until `stop`.
pub fn client(
    i: usize,
    base: &str,
    token: &str,
    pause: Duration,
    stop: &AtomicBool,
    tally: &Mutex<Tally>,
) {
    let agent = agent();
    let auth = format!("Bearer {token}");
    let mut local = Tally::default();
    let mut n = i;
    while !stop.load(Ordering::SeqCst) {
        let path = if n.is_multiple_of(2) {
            "/v1/admin/backup/list"
        } else {
            "/v1/admin/health"
        };
        n += 1;
        let t = Instant::now();
        let status = match agent
            .get(format!("{base}{path}"))
            .header("Authorization", &auth)
            .call()
        {
            // The body is read so the connection is reused.
            Ok(mut resp) => match resp.body_mut().read_to_vec() {
                Ok(_) => resp.status().as_u16(),
                Err(_) => 0,
            },
            Err(_) => 0,
        };
        local.latencies_us.push(t.elapsed().as_micros() as u64);
        if (200..300).contains(&status) {
            local.ok += 1;
        } else {
            *local.errors.entry(status).or_default() += 1;
        }
        if !pause.is_zero() {
            std::thread::sleep(pause);
        }
    }
    if let Ok(mut t) = tally.lock() {
        t.ok += local.ok;
        for (k, v) in local.errors {
            *t.errors.entry(k).or_default() += v;
        }
        t.latencies_us.extend(local.latencies_us);
    }
}

/// The resident set of process `pid`, in KiB.
pub fn rss_kib(pid: u32) -> Result<u64> {
    let text = fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("coffer serve (pid {pid}) is gone"))?;
    text.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| anyhow!("no VmRSS in /proc/{pid}/status"))
}

/// Samples a process's RSS every 250 ms on its own thread.
pub struct RssSampler {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Vec<u64>>,
}

impl RssSampler {
    pub fn start(pid: u32) -> RssSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut samples = Vec::new();
            while !flag.load(Ordering::SeqCst) {
                if let Ok(kib) = rss_kib(pid) {
                    samples.push(kib);
                }
                std::thread::sleep(Duration::from_millis(250));
            }
            samples
        });
        RssSampler { stop, thread }
    }

    pub fn stop(self) -> Vec<u64> {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.join().unwrap_or_default()
    }
}

/// Everything the report shows.
pub struct Results {
    pub idle: Vec<Duration>,
    pub loaded: Vec<Duration>,
    pub load_time: Duration,
    pub tally: Tally,
    pub rss_start: u64,
    pub rss_max: u64,
    /// Every 250 ms sample of the loaded phase, in KiB.
    pub rss_samples: Vec<u64>,
    pub rss_end: u64,
}

fn median(v: &[Duration]) -> f64 {
    let mut s: Vec<f64> = v.iter().map(Duration::as_secs_f64).collect();
    s.sort_by(f64::total_cmp);
    match s.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

fn percentile_ms(sorted_us: &[u64], p: f64) -> f64 {
    if sorted_us.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted_us.len() - 1) as f64 * p).round() as usize;
    sorted_us[i] as f64 / 1000.0
}

fn secs(v: &[Duration]) -> String {
    v.iter()
        .map(|d| format!("{:.2}", d.as_secs_f64()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The Markdown table of a run.
pub fn report(args: &Args, r: &Results) -> String {
    let mut lat = r.tally.latencies_us.clone();
    lat.sort_unstable();
    let errors: u64 = r.tally.errors.values().sum();
    let (idle, loaded) = (median(&r.idle), median(&r.loaded));
    let mut out = String::new();
    let _ = writeln!(
        out,
        "## coffer serve under load\n\n{} clients (pause {} ms, nice {}) for {:.1} s, scale {}; {}\n",
        args.clients,
        args.pause.as_millis(),
        args.clients_nice,
        r.load_time.as_secs_f64(),
        args.scale,
        machine()
    );
    let _ = writeln!(out, "| measure | value |\n|---|---|");
    let _ = writeln!(
        out,
        "| requests served (2xx) | {} ({:.0}/s) |",
        r.tally.ok,
        r.tally.ok as f64 / r.load_time.as_secs_f64()
    );
    let _ = writeln!(out, "| error responses | {errors} {:?} |", r.tally.errors);
    let _ = writeln!(
        out,
        "| latency p50 / p99 / max ms | {:.1} / {:.1} / {:.1} |",
        percentile_ms(&lat, 0.5),
        percentile_ms(&lat, 0.99),
        percentile_ms(&lat, 1.0)
    );
    let _ = writeln!(
        out,
        "| backup idle s (median; runs) | {idle:.2}; {} |",
        secs(&r.idle)
    );
    let _ = writeln!(
        out,
        "| backup loaded s (median; runs) | {loaded:.2}; {} |",
        secs(&r.loaded)
    );
    let _ = writeln!(out, "| loaded / idle | {:.2} |", loaded / idle);
    let _ = writeln!(
        out,
        "| server RSS MiB start / max / end | {:.1} / {:.1} / {:.1} |",
        r.rss_start as f64 / 1024.0,
        r.rss_max as f64 / 1024.0,
        r.rss_end as f64 / 1024.0
    );
    // Growth that levels off is allocator arenas and pools; growth to the end is a leak.
    let n = r.rss_samples.len();
    let timeline: Vec<String> = (1..=10)
        .filter_map(|tenth| r.rss_samples.get((n * tenth / 10).saturating_sub(1)))
        .map(|kib| format!("{:.0}", *kib as f64 / 1024.0))
        .collect();
    let _ = writeln!(
        out,
        "| server RSS MiB at each tenth of the load | {} |",
        timeline.join(" ")
    );
    out
}

fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let load = fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    format!("{cpus} CPUs, load average {} at the end", load.join(" "))
}
