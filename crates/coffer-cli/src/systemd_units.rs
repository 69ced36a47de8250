//! The nightly timer's and the HTTP server's systemd units, rendered as text (pure
//! functions), and their installation. They live in the CLI because they run its command
//! lines (`coffer backup --kind auto --quiet`, `coffer systemd notify-failure`,
//! `coffer serve`); only `cmd::systemd` uses them.
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
//! - `coffer-serve.service`: `coffer serve`, long-running, `Restart=on-failure`, sandboxed
//!   like the backup service; it may also write the workspace's parent directory (a restore
//!   stages the new workspace and its journal there and swaps by rename). `SIGTERM` with a
//!   stop timeout longer than the server's own limit for a job to cancel or roll back.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use coffer_core::ErrorKind;
use coffer_core::config::Config;

/// The backup service's unit name.
pub const SERVICE: &str = "coffer-backup.service";
/// The timer's unit name.
pub const TIMER: &str = "coffer-backup.timer";
/// The `OnFailure=` unit's name.
pub const FAILURE_SERVICE: &str = "coffer-backup-failure.service";
/// The HTTP server's unit name.
pub const SERVE_SERVICE: &str = "coffer-serve.service";
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
    /// Directories only a restore writes (the workspace's parent: the staging directory
    /// and the journal sit beside the workspace), absolute; the server's unit only.
    pub restore_writable: Vec<PathBuf>,
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

impl From<SystemdError> for coffer_core::Error {
    /// A path or value that cannot go in a unit is the configuration's or the command
    /// line's fault (exit 2); a modified unit or a failed write is a failure (exit 1).
    fn from(e: SystemdError) -> coffer_core::Error {
        let kind = match e {
            SystemdError::RelativePath { .. } | SystemdError::BadValue { .. } => {
                ErrorKind::InvalidConfig
            }
            SystemdError::Modified { .. } | SystemdError::Io { .. } => ErrorKind::Failed,
        };
        coffer_core::Error::new(kind, e)
    }
}

/// The metrics file's directory, which the backup service must be able to write.
pub fn metrics_dir(config: &Config) -> Option<&Path> {
    config
        .metrics_file
        .as_deref()
        .and_then(Path::parent)
        .filter(|p| !p.as_os_str().is_empty())
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
    let writable = opts
        .writable
        .iter()
        .map(|p| ("metrics_file's directory", p))
        .chain(
            opts.restore_writable
                .iter()
                .map(|p| ("the workspace's parent directory", p)),
        );
    for (what, path) in paths.into_iter().chain(writable) {
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

/// How long systemd waits for `coffer serve` to exit after `SIGTERM`: the server's own
/// limit for a running job to cancel or roll back, plus time for open requests and slack.
/// Shorter, and systemd would `SIGKILL` a restore in the middle of its rollback.
fn serve_stop_timeout() -> u64 {
    coffer_server::JOB_STOP_LIMIT.as_secs() + 60
}

/// The sandbox the backup and the serve services share, after their `ReadWritePaths`.
const SANDBOX: &str = "\
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
";

/// Renders the four unit files: the backup service, its timer, its failure unit and the
/// server's service.
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
{sandbox}",
        exec = command(opts, &["backup", "--kind", "auto", "--quiet"]),
        writable = writable.join("\n"),
        sandbox = SANDBOX,
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
    // `-`: a missing directory (a bare host before its first restore) must not stop the
    // server from starting; only a restore into it would then fail.
    let mut serve_writable = writable.clone();
    serve_writable.extend(
        opts.restore_writable
            .iter()
            .map(|p| format!("ReadWritePaths={}", exec_word(&format!("-{}", p.display())))),
    );
    let serve = format!(
        "{header}\
[Unit]
Description=coffer: HTTP admin API for backups and restores (coffer serve)
Wants=network-online.target
After=network-online.target docker.service

[Service]
Type=exec
ExecStart={exec}
Restart=on-failure
RestartSec=5s
# SIGTERM cancels a running backup (nothing partial is left) or rolls a running restore
# back; only then does the server exit. The main process alone gets it (it stops its own
# pg_dump/psql/docker children); whatever is left gets SIGKILL after the timeout.
KillSignal=SIGTERM
KillMode=mixed
TimeoutStopSec={stop}
# Backups and restores it runs yield to the application.
Nice=10
IOSchedulingClass=best-effort
IOSchedulingPriority=7
UMask=0077
# Sandbox: everything read-only but the backup root and, for restores, the workspace's
# parent directory. The network and Unix sockets stay reachable (it listens on TCP;
# docker compose exec talks to /run/docker.sock; PostgreSQL may be remote).
ProtectSystem=strict
{writable}
{sandbox}
[Install]
WantedBy=multi-user.target
",
        exec = command(opts, &["serve"]),
        stop = serve_stop_timeout(),
        writable = serve_writable.join("\n"),
        sandbox = SANDBOX,
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
        UnitFile {
            name: SERVE_SERVICE,
            text: serve,
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
        // Atomic, 0644, nothing planted in the directory followed: what the metrics file needs too.
        coffer_core::metrics::write(&path, &unit.text).map_err(|e| match e {
            coffer_core::metrics::MetricsError::Write { source, .. } => SystemdError::Io {
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
            restore_writable: vec!["/srv/portal".into()],
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
            [SERVICE, TIMER, FAILURE_SERVICE, SERVE_SERVICE]
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
    fn the_server_unit_restarts_writes_restore_targets_and_waits_for_a_rollback() {
        let units = render(&UnitOptions {
            writable: vec!["/var/lib/node_exporter".into()],
            ..opts()
        })
        .unwrap();
        let key = |k| line(&units, SERVE_SERVICE, k);
        assert_eq!(key("ExecStart"), ["/usr/local/bin/coffer serve"]);
        assert_eq!(key("Type"), ["exec"]);
        assert_eq!(key("Restart"), ["on-failure"]);
        assert_eq!(key("KillSignal"), ["SIGTERM"]);
        assert_eq!(key("KillMode"), ["mixed"]);
        let stop: u64 = key("TimeoutStopSec")[0].parse().unwrap();
        assert!(stop > coffer_server::JOB_STOP_LIMIT.as_secs(), "{stop}");
        assert_eq!(
            key("ReadWritePaths"),
            [
                "/var/backups/coffer",
                "/var/lib/node_exporter",
                "-/srv/portal"
            ]
        );
        // Only the server restores: the backup service keeps the workspace read-only.
        assert_eq!(
            line(&units, SERVICE, "ReadWritePaths"),
            ["/var/backups/coffer", "/var/lib/node_exporter"]
        );
        for (k, v) in [
            ("ProtectSystem", "strict"),
            ("ProtectHome", "read-only"),
            ("PrivateTmp", "true"),
            ("NoNewPrivileges", "true"),
            ("RestrictAddressFamilies", "AF_UNIX AF_INET AF_INET6"),
            ("WantedBy", "multi-user.target"),
        ] {
            assert_eq!(key(k), [v], "{k}");
        }
        let e = render(&UnitOptions {
            restore_writable: vec!["srv".into()],
            ..opts()
        })
        .unwrap_err();
        assert!(matches!(e, SystemdError::RelativePath { .. }), "{e}");
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
