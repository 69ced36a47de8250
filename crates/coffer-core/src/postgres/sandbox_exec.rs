//! Confining the psql that replays a dump with Landlock: it may run nothing but itself and
//! write no file.
//!
//! The dump scanner and psql's restricted mode keep a backup's meta-commands from psql, but
//! both rest on coffer and psql agreeing about where every string ends, and psql 15.18
//! expands backticks in `\unrestrict`'s argument before checking the key. This is the layer
//! that holds when they disagree: the kernel refuses the child every `execve` except the
//! programs psql needs to start (the `psql` found on `PATH`, the interpreter of its `#!` line
//! when it is a script such as Debian's `pg_wrapper`, `/usr/lib/postgresql`, the dynamic
//! loader), and every write-like file operation anywhere. So `\!`, `\o |cmd`, backticks and
//! `\copy … program` find no shell, and `\o file`, `\w`, `\copy … to 'file'` and
//! `\lo_export` cannot create or change a file. Reading stays allowed (libpq reads
//! `~/.pgpass`, certificates, service files); the inherited standard output and error pipes
//! are not opened by path, so Landlock does not restrict them.
//!
//! The ruleset is built in the parent ([`ExecConfinement::for_program`]); between fork and
//! exec the child only calls `prctl(PR_SET_NO_NEW_PRIVS)` and `landlock_restrict_self`, both
//! async-signal-safe. Raw system calls through `libc`: three calls and two structs do not
//! justify another crate.

use std::ffi::OsStr;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

// Access rights of `linux/landlock.h`, with the ABI version that introduced each.
const ACCESS_FS_EXECUTE: u64 = 1 << 0;
const ACCESS_FS_WRITE_FILE: u64 = 1 << 1;
const ACCESS_FS_REMOVE_DIR: u64 = 1 << 4;
const ACCESS_FS_REMOVE_FILE: u64 = 1 << 5;
const ACCESS_FS_MAKE_CHAR: u64 = 1 << 6;
const ACCESS_FS_MAKE_DIR: u64 = 1 << 7;
const ACCESS_FS_MAKE_REG: u64 = 1 << 8;
const ACCESS_FS_MAKE_SOCK: u64 = 1 << 9;
const ACCESS_FS_MAKE_FIFO: u64 = 1 << 10;
const ACCESS_FS_MAKE_BLOCK: u64 = 1 << 11;
const ACCESS_FS_MAKE_SYM: u64 = 1 << 12;
/// ABI 2: linking or renaming a file into another directory.
const ACCESS_FS_REFER: u64 = 1 << 13;
/// ABI 3: truncating a file.
const ACCESS_FS_TRUNCATE: u64 = 1 << 14;

const CREATE_RULESET_VERSION: u32 = 1 << 0;
const RULE_PATH_BENEATH: libc::c_int = 1;

/// `struct landlock_ruleset_attr` as of ABI 1; the kernel accepts this shorter form.
#[repr(C)]
struct RulesetAttr {
    handled_access_fs: u64,
}

/// `struct landlock_path_beneath_attr` (packed in the kernel's header).
#[repr(C, packed)]
struct PathBeneathAttr {
    allowed_access: u64,
    parent_fd: i32,
}

/// The dynamic loaders of the usual Linux architectures; the kernel opens the one named in an
/// ELF program's header for execution, so it needs the execute right too.
const DYNAMIC_LOADERS: &[&str] = &[
    "/lib64/ld-linux-x86-64.so.2",
    "/lib/ld-linux-aarch64.so.1",
    "/lib/ld-linux-armhf.so.3",
    "/lib/ld-linux.so.2",
    "/lib64/ld64.so.2",
    "/lib/ld-linux-riscv64-lp64d.so.1",
    "/lib/ld64.so.1",
    "/lib/ld-musl-x86_64.so.1",
    "/lib/ld-musl-aarch64.so.1",
];

/// Debian's versioned client programs, which `pg_wrapper` runs.
const POSTGRESQL_LIB_DIR: &str = "/usr/lib/postgresql";

/// How the psql that replays a dump was confined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Confinement {
    /// Landlock: no program but psql's own, no file written.
    Landlock {
        /// The kernel's Landlock ABI version.
        abi: u32,
        /// The shell psql may still run because the `psql` on `PATH` is a script for it.
        shell: Option<PathBuf>,
    },
    /// psql runs inside a container through `database.exec`: not confined by coffer.
    ExecPrefix,
    /// The kernel offers no Landlock: psql runs unconfined.
    Unavailable(String),
}

impl Confinement {
    /// What the operator should be told, if anything.
    pub fn note(&self) -> Option<String> {
        match self {
            Confinement::Unavailable(why) => Some(format!(
                "psql could not be confined: Landlock is not available on this kernel ({why}); \
                 coffer's scanner and psql's restricted mode still apply"
            )),
            Confinement::Landlock {
                shell: Some(shell), ..
            } => Some(format!(
                "the psql on PATH is a script run by {}, so the confined psql may still start that \
                 shell (it still cannot write files or run other programs); put the real psql \
                 first on PATH",
                shell.display()
            )),
            Confinement::Landlock { shell: None, .. } | Confinement::ExecPrefix => None,
        }
    }
}

/// Why a child could not be confined.
#[derive(Debug, thiserror::Error)]
pub enum ConfineError {
    /// The kernel has no Landlock (older than 5.13, or the LSM is not enabled).
    #[error("Landlock is not available on this kernel ({0})")]
    Unavailable(io::Error),
    /// The program is not on `PATH`.
    #[error("`{0}` is not on PATH")]
    NotFound(String),
    /// Building the ruleset failed for another reason.
    #[error("cannot build the Landlock ruleset for {path}: {source}")]
    Ruleset {
        /// The file or directory being added.
        path: PathBuf,
        /// The system error.
        source: io::Error,
    },
}

/// A Landlock ruleset, built in the parent, that [`ExecConfinement::apply`] makes the child
/// enforce on itself just before `exec`.
#[derive(Debug)]
pub struct ExecConfinement {
    ruleset: OwnedFd,
    abi: u32,
    shell: Option<PathBuf>,
}

impl ExecConfinement {
    /// A ruleset that lets a child run `program` (looked up on `PATH` like `Command` does)
    /// and what it needs to start, nothing else, and write no file.
    pub fn for_program(program: &str) -> Result<ExecConfinement, ConfineError> {
        let abi = abi_version().map_err(ConfineError::Unavailable)?;
        let resolved = find_on_path(OsStr::new(program), std::env::var_os("PATH").as_deref())
            .ok_or_else(|| ConfineError::NotFound(program.to_string()))?;
        let allowed = executables_for(&resolved);
        let handled = handled_access(abi);
        let attr = RulesetAttr {
            handled_access_fs: handled,
        };
        // SAFETY: the attribute is a valid, initialised struct of the size passed.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_landlock_create_ruleset,
                &attr as *const RulesetAttr,
                std::mem::size_of::<RulesetAttr>(),
                0u32,
            )
        };
        if fd < 0 {
            return Err(ConfineError::Ruleset {
                path: PathBuf::from("/"),
                source: io::Error::last_os_error(),
            });
        }
        // SAFETY: the kernel just returned this new descriptor; nothing else owns it.
        let ruleset = unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) };
        for path in &allowed {
            add_execute_rule(&ruleset, path)?;
        }
        let shell = allowed.iter().find(|p| is_shell(p)).cloned();
        Ok(ExecConfinement {
            ruleset,
            abi,
            shell,
        })
    }

    /// The Landlock ABI version the kernel offers.
    pub fn abi(&self) -> u32 {
        self.abi
    }

    /// A shell among the allowed files (the `psql` on `PATH` is a shell script): psql's
    /// `\!`, pipes and backticks could then start it.
    pub fn shell(&self) -> Option<&Path> {
        self.shell.as_deref()
    }

    /// Makes `cmd`'s child confine itself between fork and exec; a failure there makes the
    /// spawn fail rather than run the child unconfined.
    pub fn apply(self, cmd: &mut Command) {
        let ruleset = self.ruleset;
        // SAFETY: the closure only makes two system calls, both async-signal-safe, and
        // allocates nothing.
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                    return Err(io::Error::last_os_error());
                }
                if libc::syscall(libc::SYS_landlock_restrict_self, ruleset.as_raw_fd(), 0u32) != 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
}

/// Whether `path` (symlinks resolved) is a shell that `\!` and `popen` could use.
fn is_shell(path: &Path) -> bool {
    const SHELLS: &[&str] = &[
        "sh", "bash", "dash", "ash", "zsh", "ksh", "mksh", "busybox", "fish", "tcsh", "csh",
    ];
    let is = |p: &Path| {
        p.file_name()
            .and_then(OsStr::to_str)
            .is_some_and(|n| SHELLS.contains(&n))
    };
    path.is_file() && (is(path) || std::fs::canonicalize("/bin/sh").is_ok_and(|sh| sh == path))
}

/// The Landlock ABI version, or why there is none.
fn abi_version() -> io::Result<u32> {
    // SAFETY: a NULL attribute of size 0 with the VERSION flag only queries the version.
    let v = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<RulesetAttr>(),
            0usize,
            CREATE_RULESET_VERSION,
        )
    };
    if v < 1 {
        return Err(io::Error::last_os_error());
    }
    Ok(v as u32)
}

/// Execution plus every right that creates, changes or removes a file, as far as `abi` knows.
fn handled_access(abi: u32) -> u64 {
    let mut rights = ACCESS_FS_EXECUTE
        | ACCESS_FS_WRITE_FILE
        | ACCESS_FS_REMOVE_DIR
        | ACCESS_FS_REMOVE_FILE
        | ACCESS_FS_MAKE_CHAR
        | ACCESS_FS_MAKE_DIR
        | ACCESS_FS_MAKE_REG
        | ACCESS_FS_MAKE_SOCK
        | ACCESS_FS_MAKE_FIFO
        | ACCESS_FS_MAKE_BLOCK
        | ACCESS_FS_MAKE_SYM;
    if abi >= 2 {
        rights |= ACCESS_FS_REFER;
    }
    if abi >= 3 {
        rights |= ACCESS_FS_TRUNCATE;
    }
    rights
}

fn add_execute_rule(ruleset: &OwnedFd, path: &Path) -> Result<(), ConfineError> {
    let fail = |source| ConfineError::Ruleset {
        path: path.to_path_buf(),
        source,
    };
    let target = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_CLOEXEC)
        .open(path)
        .map_err(fail)?;
    let attr = PathBeneathAttr {
        allowed_access: ACCESS_FS_EXECUTE,
        parent_fd: target.as_raw_fd(),
    };
    // SAFETY: valid ruleset descriptor and a valid, initialised attribute.
    let r = unsafe {
        libc::syscall(
            libc::SYS_landlock_add_rule,
            ruleset.as_raw_fd(),
            RULE_PATH_BENEATH,
            &attr as *const PathBeneathAttr,
            0u32,
        )
    };
    if r != 0 {
        return Err(fail(io::Error::last_os_error()));
    }
    Ok(())
}

/// What starting `program` (already resolved) executes: itself, the interpreter of its `#!`
/// line, `/usr/lib/postgresql`, the dynamic loader; each that exists, symlinks resolved.
fn executables_for(program: &Path) -> Vec<PathBuf> {
    let mut wanted = vec![program.to_path_buf()];
    if let Some(line) = read_shebang(program) {
        wanted.extend(interpreters(&line, std::env::var_os("PATH").as_deref()));
    }
    wanted.push(PathBuf::from(POSTGRESQL_LIB_DIR));
    wanted.extend(DYNAMIC_LOADERS.iter().map(PathBuf::from));
    let mut allowed: Vec<PathBuf> = Vec::new();
    for path in wanted {
        if let Ok(real) = std::fs::canonicalize(&path)
            && !allowed.contains(&real)
        {
            allowed.push(real);
        }
    }
    allowed
}

/// The first line of `program` when it starts with `#!` (at most 256 bytes read).
fn read_shebang(program: &Path) -> Option<Vec<u8>> {
    let mut head = Vec::with_capacity(256);
    std::fs::File::open(program)
        .ok()?
        .take(256)
        .read_to_end(&mut head)
        .ok()?;
    let rest = head.strip_prefix(b"#!")?;
    let end = rest.iter().position(|&b| b == b'\n')?;
    Some(rest[..end].to_vec())
}

/// The programs a `#!` line (without `#!`) runs: its interpreter, and for `/usr/bin/env
/// NAME` also NAME looked up on `path`.
fn interpreters(line: &[u8], path: Option<&OsStr>) -> Vec<PathBuf> {
    let mut words = line
        .split(|b| b.is_ascii_whitespace())
        .filter(|w| !w.is_empty());
    let Some(first) = words.next() else {
        return Vec::new();
    };
    let interpreter = PathBuf::from(OsStr::from_bytes(first));
    let mut found = vec![interpreter.clone()];
    if interpreter.file_name() == Some(OsStr::new("env"))
        && let Some(name) = words.find(|w| !w.starts_with(b"-"))
        && let Some(p) = find_on_path(OsStr::from_bytes(name), path)
    {
        found.push(p);
    }
    found
}

/// `program` as `execvp` finds it: a name with a `/` as is, else the first executable regular
/// file of that name in a `PATH` directory.
fn find_on_path(program: &OsStr, path: Option<&OsStr>) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    if program.as_bytes().contains(&b'/') {
        return Some(PathBuf::from(program));
    }
    std::env::split_paths(path?)
        .map(|dir| dir.join(program))
        .find(|candidate| {
            std::fs::metadata(candidate)
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shebang_interpreters() {
        let dir = tempfile::tempdir().unwrap();
        let perl = dir.path().join("perl");
        std::fs::write(&perl, "").unwrap();
        std::fs::set_permissions(&perl, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let path = Some(dir.path().as_os_str());
        let cases: &[(&[u8], Vec<PathBuf>)] = &[
            (b"/usr/bin/perl", vec!["/usr/bin/perl".into()]),
            (b" /usr/bin/perl -w", vec!["/usr/bin/perl".into()]),
            (b"/bin/sh\r", vec!["/bin/sh".into()]),
            (
                b"/usr/bin/env perl",
                vec!["/usr/bin/env".into(), perl.clone()],
            ),
            (
                b"/usr/bin/env -S perl -w",
                vec!["/usr/bin/env".into(), perl.clone()],
            ),
            (b"/usr/bin/env nosuch", vec!["/usr/bin/env".into()]),
            (b"", vec![]),
            (b"   ", vec![]),
        ];
        for (line, want) in cases {
            assert_eq!(&interpreters(line, path), want, "{line:?}");
        }
    }

    #[test]
    fn shebang_is_read_from_the_first_256_bytes_only() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("s");
        std::fs::write(&script, b"#!/usr/bin/perl\nexec ...\n").unwrap();
        assert_eq!(read_shebang(&script), Some(b"/usr/bin/perl".to_vec()));
        let long = [b"#!/".as_slice(), &[b'a'; 300], b"\n"].concat();
        std::fs::write(&script, long).unwrap();
        assert_eq!(read_shebang(&script), None);
        std::fs::write(&script, b"\x7fELF....").unwrap();
        assert_eq!(read_shebang(&script), None);
    }

    #[test]
    fn only_a_kernel_without_landlock_is_worth_a_note() {
        let note = Confinement::Unavailable("Function not implemented".into())
            .note()
            .unwrap();
        assert!(note.starts_with("psql could not be confined: Landlock is not available"));
        assert!(note.ends_with("coffer's scanner and psql's restricted mode still apply"));
        let plain = Confinement::Landlock {
            abi: 7,
            shell: None,
        };
        assert_eq!(plain.note(), None);
        let shell = Confinement::Landlock {
            abi: 7,
            shell: Some("/usr/bin/dash".into()),
        };
        assert!(shell.note().unwrap().contains("/usr/bin/dash"));
        assert_eq!(Confinement::ExecPrefix.note(), None);
    }

    #[test]
    fn a_shell_script_psql_allows_its_shell_and_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("psql");
        std::fs::write(
            &script,
            "#!/bin/sh\nexec /usr/lib/postgresql/15/bin/psql \"$@\"\n",
        )
        .unwrap();
        let allowed = executables_for(&script);
        let sh = std::fs::canonicalize("/bin/sh").unwrap();
        assert!(allowed.contains(&sh), "{allowed:?}");
        assert!(allowed.iter().any(|p| is_shell(p)));
        let perl = dir.path().join("psql2");
        std::fs::write(&perl, "#!/usr/bin/perl\n").unwrap();
        assert!(!executables_for(&perl).iter().any(|p| is_shell(p)));
    }

    #[test]
    fn shells_are_recognised() {
        let sh = std::fs::canonicalize("/bin/sh").unwrap();
        assert!(is_shell(&sh));
        assert!(is_shell(Path::new("/bin/sh")));
        assert!(!is_shell(Path::new("/usr/bin/perl")));
        assert!(!is_shell(Path::new("/usr/lib/postgresql")));
    }

    #[test]
    fn newer_abis_handle_more_write_rights() {
        assert_eq!(
            handled_access(1) & (ACCESS_FS_REFER | ACCESS_FS_TRUNCATE),
            0
        );
        assert_eq!(handled_access(2) & ACCESS_FS_REFER, ACCESS_FS_REFER);
        assert_eq!(handled_access(3) & ACCESS_FS_TRUNCATE, ACCESS_FS_TRUNCATE);
        assert_eq!(handled_access(7), handled_access(3));
        for abi in 1..=7 {
            assert_ne!(handled_access(abi) & ACCESS_FS_EXECUTE, 0);
            assert_ne!(handled_access(abi) & ACCESS_FS_WRITE_FILE, 0);
        }
    }
}
