//! The nightly timer's systemd units, rendered as text (pure functions), and their
//! installation.
//!
//! - `coffer-backup.service`: `Type=oneshot`, runs `coffer backup --kind auto --quiet`
//!   at low CPU and I/O priority, sandboxed: the whole filesystem is read-only except the
//!   backup root (and the metrics file's directory); home directories are read-only; the
//!   network and Unix sockets stay reachable, so `docker compose exec` (through
//!   `/run/docker.sock`) and remote databases work.
//! - `coffer-backup.timer`: daily at 03:00 by default, `Persistent=true` (a run missed while
//!   the host was off happens at boot), `RandomizedDelaySec=15m`.
//! - `coffer-backup-failure.service`: the service's `OnFailure=` unit; it runs
//!   `coffer systemd notify-failure`, which runs `hooks.on_failure` when coffer could not
//!   (it was killed or timed out).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// The backup service's unit name.
pub const SERVICE: &str = "coffer-backup.service";
/// The timer's unit name.
pub const TIMER: &str = "coffer-backup.timer";
/// The `OnFailure=` unit's name.
pub const FAILURE_SERVICE: &str = "coffer-backup-failure.service";
/// Where `coffer systemd install` writes by default.
pub const DEFAULT_UNIT_DIR: &str = "/etc/systemd/system";
/// The timer's default schedule.
pub const DEFAULT_ON_CALENDAR: &str = "*-*-* 03:00:00";
/// The timer's default random delay.
pub const DEFAULT_RANDOMIZED_DELAY: &str = "15m";

/// What the units are rendered from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitOptions {
    /// The coffer binary (absolute).
    pub binary: PathBuf,
    /// Arguments placed before the subcommand, e.g. `["--config", "/etc/coffer/coffer.toml"]`.
    pub global_args: Vec<String>,
    /// The backup root (absolute): the one writable path.
    pub backup_dir: PathBuf,
    /// Other directories the backup must write (the metrics file's), absolute.
    pub writable: Vec<PathBuf>,
    /// The timer's `OnCalendar=` expression.
    pub on_calendar: String,
    /// The timer's `RandomizedDelaySec=`.
    pub randomized_delay: String,
}

/// Why units could not be rendered or installed.
#[derive(Debug, thiserror::Error)]
pub enum SystemdError {
    /// A path in a unit must be absolute.
    #[error("{what} {path} is not an absolute path; systemd units need absolute paths")]
    RelativePath {
        /// Which setting.
        what: &'static str,
        /// The path.
        path: PathBuf,
    },
    /// A value would break the unit file's syntax.
    #[error("{what} `{value}` cannot be put in a unit file (it contains a line break)")]
    BadValue {
        /// Which setting.
        what: &'static str,
        /// The value.
        value: String,
    },
    /// An installed unit differs from the one to write.
    #[error(
        "{path} exists and differs from what coffer would write: compare with `coffer systemd print`, then rerun with --force to overwrite it"
    )]
    Modified {
        /// The installed file.
        path: PathBuf,
    },
    /// Writing a unit file failed.
    #[error("cannot write {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
}

/// One unit file: its name and text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitFile {
    /// File name, e.g. `coffer-backup.service`.
    pub name: &'static str,
    /// Contents.
    pub text: String,
}

/// Quotes one word of an `Exec*=` line (systemd's rules: `%` and `$` are special,
/// whitespace and quotes need double quotes).
fn exec_word(word: &str) -> String {
    let escaped = word.replace('%', "%%").replace('$', "$$");
    let plain = !escaped.is_empty()
        && escaped
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+=:,@%$".contains(c));
    if plain {
        escaped
    } else {
        format!("\"{}\"", escaped.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

/// A path in a path-list setting (`ReadWritePaths=`).
fn path_word(path: &Path) -> String {
    exec_word(&path.display().to_string())
}

fn check(opts: &UnitOptions) -> Result<(), SystemdError> {
    let paths = [
        ("the coffer binary", &opts.binary),
        ("backup_dir", &opts.backup_dir),
    ];
    for (what, path) in paths.into_iter().chain(
        opts.writable
            .iter()
            .map(|p| ("metrics_file's directory", p)),
    ) {
        if !path.is_absolute() {
            return Err(SystemdError::RelativePath {
                what,
                path: path.clone(),
            });
        }
    }
    let values = [
        ("--on-calendar", &opts.on_calendar),
        ("RandomizedDelaySec", &opts.randomized_delay),
    ];
    for (what, value) in values
        .into_iter()
        .chain(opts.global_args.iter().map(|a| ("an argument", a)))
    {
        if value.contains(['\n', '\r']) {
            return Err(SystemdError::BadValue {
                what,
                value: value.clone(),
            });
        }
    }
    Ok(())
}

fn command(opts: &UnitOptions, args: &[&str]) -> String {
    std::iter::once(opts.binary.display().to_string())
        .chain(opts.global_args.iter().cloned())
        .chain(args.iter().map(|s| s.to_string()))
        .map(|w| exec_word(&w))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Renders the three unit files.
pub fn render(opts: &UnitOptions) -> Result<Vec<UnitFile>, SystemdError> {
    check(opts)?;
    let header = "# Written by `coffer systemd`. Change settings with a drop-in (systemctl edit NAME)\n\
         # rather than here, so that `coffer systemd install` can update this file.\n";
    let mut writable = vec![format!("ReadWritePaths={}", path_word(&opts.backup_dir))];
    writable.extend(
        opts.writable
            .iter()
            .map(|p| format!("ReadWritePaths={}", path_word(p))),
    );
    let service = format!(
        "{header}\
[Unit]
Description=coffer: automatic backup of the database and the workspace
Wants=network-online.target
After=network-online.target docker.service
OnFailure={FAILURE_SERVICE}

[Service]
Type=oneshot
ExecStart={exec}
# A backup that hangs must end (and be reported) before the next night's run.
TimeoutStartSec=6h
# Low priority: the application keeps the CPU and the disk.
Nice=10
CPUSchedulingPolicy=batch
IOSchedulingClass=best-effort
IOSchedulingPriority=7
UMask=0077
# Sandbox: everything read-only but the backup root. The network and Unix sockets stay
# reachable (docker compose exec talks to /run/docker.sock; PostgreSQL may be remote).
ProtectSystem=strict
{writable}
ProtectHome=read-only
PrivateTmp=true
NoNewPrivileges=true
ProtectKernelTunables=true
ProtectKernelModules=true
ProtectKernelLogs=true
ProtectControlGroups=true
ProtectClock=true
ProtectHostname=true
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6
RestrictNamespaces=true
RestrictRealtime=true
RestrictSUIDSGID=true
LockPersonality=true
SystemCallArchitectures=native
",
        exec = command(opts, &["backup", "--kind", "auto", "--quiet"]),
        writable = writable.join("\n"),
    );
    let timer = format!(
        "{header}\
[Unit]
Description=coffer: nightly backup schedule

[Timer]
OnCalendar={calendar}
Persistent=true
RandomizedDelaySec={delay}
AccuracySec=1m
Unit={SERVICE}

[Install]
WantedBy=timers.target
",
        calendar = opts.on_calendar,
        delay = opts.randomized_delay,
    );
    let failure = format!(
        "{header}\
[Unit]
Description=coffer: report a failed automatic backup (runs hooks.on_failure)

[Service]
Type=oneshot
ExecStart={exec}
TimeoutStartSec=10min
ProtectSystem=strict
{writable}
PrivateTmp=true
NoNewPrivileges=true
",
        exec = command(opts, &["systemd", "notify-failure", SERVICE]),
        writable = writable.join("\n"),
    );
    Ok(vec![
        UnitFile {
            name: SERVICE,
            text: service,
        },
        UnitFile {
            name: TIMER,
            text: timer,
        },
        UnitFile {
            name: FAILURE_SERVICE,
            text: failure,
        },
    ])
}

/// What [`install`] did with one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Installed {
    /// Written (new, or overwritten with `force`).
    Written(PathBuf),
    /// Already identical.
    Unchanged(PathBuf),
}

/// Writes `units` into `dir` (0644; `dir` is created when missing). An existing file that differs is an error unless
/// `force`; nothing is written unless every file can be.
pub fn install(
    dir: &Path,
    units: &[UnitFile],
    force: bool,
) -> Result<Vec<Installed>, SystemdError> {
    let mut plan = Vec::new();
    for unit in units {
        let path = dir.join(unit.name);
        match fs::read_to_string(&path) {
            Ok(existing) if existing == unit.text => plan.push((path, unit, false)),
            Ok(_) if !force => return Err(SystemdError::Modified { path }),
            Ok(_) => plan.push((path, unit, true)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => plan.push((path, unit, true)),
            Err(source) => return Err(SystemdError::Io { path, source }),
        }
    }
    fs::create_dir_all(dir).map_err(|source| SystemdError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut done = Vec::new();
    for (path, unit, write) in plan {
        if !write {
            done.push(Installed::Unchanged(path));
            continue;
        }
        crate::report::metrics::write(&path, &unit.text).map_err(|e| match e {
            crate::report::metrics::MetricsError::Write { source, .. } => SystemdError::Io {
                path: path.clone(),
                source,
            },
        })?;
        done.push(Installed::Written(path));
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> UnitOptions {
        UnitOptions {
            binary: "/usr/local/bin/coffer".into(),
            global_args: vec![],
            backup_dir: "/var/backups/coffer".into(),
            writable: vec![],
            on_calendar: DEFAULT_ON_CALENDAR.into(),
            randomized_delay: DEFAULT_RANDOMIZED_DELAY.into(),
        }
    }

    fn line<'a>(units: &'a [UnitFile], name: &str, key: &str) -> Vec<&'a str> {
        units
            .iter()
            .find(|u| u.name == name)
            .unwrap()
            .text
            .lines()
            .filter_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .collect()
    }

    #[test]
    fn service_timer_and_failure_unit() {
        let units = render(&opts()).unwrap();
        assert_eq!(
            units.iter().map(|u| u.name).collect::<Vec<_>>(),
            [SERVICE, TIMER, FAILURE_SERVICE]
        );
        assert_eq!(
            line(&units, SERVICE, "ExecStart"),
            ["/usr/local/bin/coffer backup --kind auto --quiet"]
        );
        assert_eq!(line(&units, SERVICE, "Type"), ["oneshot"]);
        assert_eq!(line(&units, SERVICE, "OnFailure"), [FAILURE_SERVICE]);
        assert_eq!(
            line(&units, SERVICE, "ReadWritePaths"),
            ["/var/backups/coffer"]
        );
        assert_eq!(
            line(&units, SERVICE, "RestrictAddressFamilies"),
            ["AF_UNIX AF_INET AF_INET6"]
        );
        assert!(line(&units, SERVICE, "PrivateNetwork").is_empty());
        assert_eq!(line(&units, TIMER, "OnCalendar"), ["*-*-* 03:00:00"]);
        assert_eq!(line(&units, TIMER, "Persistent"), ["true"]);
        assert_eq!(line(&units, TIMER, "RandomizedDelaySec"), ["15m"]);
        assert_eq!(
            line(&units, FAILURE_SERVICE, "ExecStart"),
            ["/usr/local/bin/coffer systemd notify-failure coffer-backup.service"]
        );
    }

    #[test]
    fn odd_paths_are_quoted_and_relative_ones_refused() {
        let units = render(&UnitOptions {
            binary: "/opt/my tools/coffer".into(),
            global_args: vec!["--config".into(), "/etc/coffer/50%.toml".into()],
            backup_dir: "/srv/backups $x".into(),
            writable: vec!["/var/lib/node_exporter".into()],
            on_calendar: "Mon *-*-* 01:30".into(),
            ..opts()
        })
        .unwrap();
        assert_eq!(
            line(&units, SERVICE, "ExecStart"),
            ["\"/opt/my tools/coffer\" --config /etc/coffer/50%%.toml backup --kind auto --quiet"]
        );
        assert_eq!(
            line(&units, SERVICE, "ReadWritePaths"),
            ["\"/srv/backups $$x\"", "/var/lib/node_exporter"]
        );
        assert_eq!(line(&units, TIMER, "OnCalendar"), ["Mon *-*-* 01:30"]);
        let e = render(&UnitOptions {
            backup_dir: "backups".into(),
            ..opts()
        })
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("backup_dir backups is not an absolute path"),
            "{e}"
        );
        let e = render(&UnitOptions {
            on_calendar: "daily\nExecStart=/bin/sh".into(),
            ..opts()
        })
        .unwrap_err();
        assert!(matches!(e, SystemdError::BadValue { .. }), "{e}");
    }

    #[test]
    fn install_refuses_modified_files_unless_forced() {
        let dir = tempfile::tempdir().unwrap();
        let units = render(&opts()).unwrap();
        let done = install(dir.path(), &units, false).unwrap();
        assert!(done.iter().all(|d| matches!(d, Installed::Written(_))));
        let done = install(dir.path(), &units, false).unwrap();
        assert!(done.iter().all(|d| matches!(d, Installed::Unchanged(_))));
        let timer = dir.path().join(TIMER);
        fs::write(&timer, "[Timer]\nOnCalendar=hourly\n").unwrap();
        let e = install(dir.path(), &units, false).unwrap_err();
        assert!(matches!(e, SystemdError::Modified { .. }), "{e}");
        assert_eq!(
            fs::read_to_string(&timer).unwrap(),
            "[Timer]\nOnCalendar=hourly\n"
        );
        install(dir.path(), &units, true).unwrap();
        assert_eq!(fs::read_to_string(&timer).unwrap(), units[1].text);
    }
}
