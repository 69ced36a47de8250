//! The workspace as a tar stream, and safe extraction of one.
//!
//! # Layout written
//!
//! GNU tar format. The first entry is `./`, the workspace root itself (so `tar -xf` into an
//! empty directory also restores the root's mode, owner and mtime); every other entry is a
//! path relative to the root without a leading `./`, directories ending in `/`. Entries come
//! depth first, parents before children, siblings sorted by the bytes of their names, so the
//! same tree always gives the same entry order. Names of 100 bytes or more, and link targets
//! likewise, are written as GNU `././@LongLink` entries, byte for byte (non-UTF-8 names
//! included). Regular files, directories, symlinks (never followed, except the root) and hard
//! links are archived with mode, uid, gid and mtime (seconds); sockets, fifos and device
//! files are skipped and reported.
//!
//! # Reading
//!
//! [`list_tar`] and [`extract_tar`] read a stream to its end and insist on a complete archive:
//! every entry's data in full and the end-of-archive marker (two zero blocks), so a
//! truncated or corrupted stream is an error, never a short listing or a partial tree that
//! looks complete. [`extract_tar`] refuses anything that could write outside its destination.

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::fs::{self, File, Metadata, OpenOptions};
use std::hash::{BuildHasher, RandomState};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use serde::{Deserialize, Serialize};
use tar::{Builder, EntryType, Header};

/// Size of the buffer file data is streamed through, in both directions.
const BUF_SIZE: usize = 256 * 1024;
/// A tar block.
const BLOCK: usize = 512;
/// Width of the name and link-name fields of a tar header.
const NAME_FIELD: usize = 100;
/// The name GNU tar gives its long-name and long-link extension entries.
const LONG_LINK_NAME: &[u8] = b"././@LongLink";
const ZEROS: [u8; BLOCK] = [0; BLOCK];

/// Why archiving, listing or extracting failed.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// An exclude pattern is not a valid glob.
    #[error("invalid exclude pattern `{pattern}`: {reason}")]
    InvalidExclude {
        /// The pattern as configured.
        pattern: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The walk reached the backup root or a backup (through a bind mount or another
    /// alias): archiving it would put the backups inside the backup.
    #[error(
        "workspace directory {path} is the backup root or a backup in it (a bind mount or another path to it): backups would archive the backups and a workspace restore would delete them; unmount it, or exclude it in workspace.exclude"
    )]
    ContainsBackups {
        /// The directory reached.
        path: PathBuf,
    },
    /// The workspace root is not a directory.
    #[error("cannot archive workspace {path}: {reason}")]
    Root {
        /// The root as given.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A file, directory or symlink of the workspace could not be read.
    #[error("cannot read workspace {kind} {path}: {source}")]
    ReadWorkspace {
        /// `file`, `directory` or `symlink`.
        kind: &'static str,
        /// Absolute (or root-relative, as the root was given) path.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// The tar stream could not be written (the output failed, not the workspace).
    #[error("cannot write tar entry `{entry}`: {source}")]
    WriteTar {
        /// The entry being written (lossy UTF-8), or `end of archive`.
        entry: String,
        /// The I/O error.
        source: io::Error,
    },
    /// The tar stream could not be read, or is truncated or corrupt.
    #[error("cannot read tar stream {position}: {source}")]
    ReadTar {
        /// Where: `at the start`, `in entry `a/b``, `after entry `a/b``.
        position: String,
        /// The I/O error (`UnexpectedEof` for truncation, `InvalidData` for corruption, or
        /// whatever the underlying reader reported, e.g. a decryption failure).
        source: io::Error,
    },
    /// Extraction refused an entry that could write outside the destination, is not plain
    /// data (devices, fifos), or conflicts with an earlier entry.
    #[error("refusing unsafe tar entry `{entry}`: {reason}")]
    UnsafeEntry {
        /// The entry's path as stored (lossy UTF-8).
        entry: String,
        /// Why, e.g. `absolute path` or `would be written through symlink `a/link``.
        reason: String,
    },
    /// The extraction destination is not an existing, empty, real directory.
    #[error("cannot extract into {path}: {reason}")]
    Destination {
        /// The destination as given.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Creating an entry (or setting its metadata) in the destination failed.
    #[error("cannot extract tar entry `{entry}` to {path}: {source}")]
    Extract {
        /// The entry's path as stored (lossy UTF-8).
        entry: String,
        /// The path being created.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
}

// ---------------------------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------------------------

/// What to leave out of the workspace archive.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchiveOptions {
    /// Glob patterns (globset syntax, `*` does not cross `/`) matched against each path
    /// relative to the root, `.gitignore`-style:
    /// - a pattern without `/` matches a name at any depth (`*.tmp`, `node_modules`);
    /// - a pattern with `/` matches the whole relative path (`cache/**`, `logs/*.log`); a
    ///   leading `/` only anchors it, so `/build` is the top-level `build` alone;
    /// - a trailing `/` restricts it to directories (`tmp/`).
    ///
    /// An excluded directory is not read at all. `cache/**` excludes what is inside `cache`
    /// but keeps the (then empty) directory; `cache` excludes the directory too.
    pub exclude: Vec<String>,
    /// Directories that must never be archived, as (device, inode): the backup root and
    /// everything in it. Reaching one by any path (a bind mount, another alias) is refused
    /// with [`ArchiveError::ContainsBackups`]; comparing identities, not paths, sees them.
    #[serde(skip)]
    pub forbidden_dirs: Vec<(u64, u64)>,
}

/// What [`write_workspace_tar`] archived, skipped and saw change.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchiveStats {
    /// Regular files archived with their data (hard links to an earlier file not included).
    pub files: u64,
    /// Directories archived, the root (`./`) included.
    pub directories: u64,
    /// Symlinks archived.
    pub symlinks: u64,
    /// Hard-link entries (second and later names of a file).
    pub hardlinks: u64,
    /// Bytes of file data archived (before tar padding).
    pub file_bytes: u64,
    /// Special files left out (excluded paths are not listed).
    pub skipped: Vec<SkippedEntry>,
    /// Entries that changed while being archived.
    pub changed: Vec<ChangedEntry>,
}

/// A special file that was not archived.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedEntry {
    /// Path relative to the root (lossy UTF-8).
    pub path: String,
    /// `socket`, `fifo`, `block device`, `character device` or `unsupported file type`.
    pub reason: String,
}

/// An entry that changed while the workspace was archived. The archive stays well-formed;
/// the entry holds what was read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangedEntry {
    /// Path relative to the root (lossy UTF-8).
    pub path: String,
    /// `vanished` (gone before it was read: not archived), `replaced while archived` (became
    /// another type of file: not archived, or archived as first seen), `shrank while archived`
    /// (data padded with zeros to the size first seen), `grew while archived` (data cut at
    /// the size first seen), `modified while archived` (same size, new mtime) or
    /// `removed while archived` (deleted after it was read).
    pub change: String,
}

/// Writes the workspace under `root` to `out` as a tar stream (see the [module
/// documentation](self) for the layout) and returns `out` with what was archived.
///
/// `root` must be a directory, or a symlink to one (followed; no other symlink is). A
/// file or directory that cannot be read is an error (the backup must not silently miss
/// data); one that vanished or changed meanwhile is recorded in [`ArchiveStats::changed`].
/// File data is streamed, never held in memory; `out` gets large writes and need not be
/// buffered.
pub fn write_workspace_tar<W: Write>(
    root: &Path,
    options: &ArchiveOptions,
    out: W,
) -> Result<(W, ArchiveStats), ArchiveError> {
    let excludes = Excludes::new(&options.exclude)?;
    let root_meta = fs::metadata(root).map_err(|source| ArchiveError::ReadWorkspace {
        kind: "directory",
        path: root.to_path_buf(),
        source,
    })?;
    if !root_meta.is_dir() {
        return Err(ArchiveError::Root {
            path: root.to_path_buf(),
            reason: "not a directory".into(),
        });
    }
    forbid(&options.forbidden_dirs, root, &root_meta)?;
    let mut tar = TarWriter::new(out);
    tar.append_dir(Path::new(""), &root_meta)?;

    // Iterative depth-first walk: one sorted listing per open directory on the stack, and
    // one absolute and one relative path buffer pushed and popped as we go.
    let mut abs = root.to_path_buf();
    let mut rel = PathBuf::new();
    let mut stack = vec![list_dir(&abs, &rel)?.unwrap_or_default().into_iter()];
    while let Some(level) = stack.last_mut() {
        let Some(child) = level.next() else {
            stack.pop();
            abs.pop();
            rel.pop();
            continue;
        };
        abs.push(&child.name);
        rel.push(&child.name);
        let ft = child.file_type;
        let descend = if excludes.is_excluded(&rel, ft.is_dir()) {
            false
        } else if ft.is_dir() {
            if let Ok(meta) = fs::symlink_metadata(&abs) {
                forbid(&options.forbidden_dirs, &abs, &meta)?;
            }
            tar.append_dir_path(&abs, &rel)?
        } else if ft.is_file() {
            tar.append_path_file(&abs, &rel)?;
            false
        } else if ft.is_symlink() {
            tar.append_symlink_path(&abs, &rel)?;
            false
        } else {
            let reason = if ft.is_socket() {
                "socket"
            } else if ft.is_fifo() {
                "fifo"
            } else if ft.is_block_device() {
                "block device"
            } else if ft.is_char_device() {
                "character device"
            } else {
                "unsupported file type"
            };
            tar.stats.skipped.push(SkippedEntry {
                path: lossy(&rel),
                reason: reason.into(),
            });
            false
        };
        let listing = if descend { list_dir(&abs, &rel)? } else { None };
        match listing {
            Some(children) => stack.push(children.into_iter()),
            None => {
                if descend {
                    tar.record_change(&rel, "vanished");
                }
                abs.pop();
                rel.pop();
            }
        }
    }
    tar.finish()
}

/// Refuses a directory whose identity is one of `forbidden`.
fn forbid(forbidden: &[(u64, u64)], path: &Path, meta: &fs::Metadata) -> Result<(), ArchiveError> {
    use std::os::unix::fs::MetadataExt;
    if forbidden.contains(&(meta.dev(), meta.ino())) {
        return Err(ArchiveError::ContainsBackups {
            path: path.to_path_buf(),
        });
    }
    Ok(())
}

/// A directory entry as listed: name and type (from `d_type`, so no stat per entry).
struct Child {
    name: std::ffi::OsString,
    file_type: fs::FileType,
}

/// Lists a directory sorted by name bytes; `None` if it vanished after it was seen.
fn list_dir(abs: &Path, rel: &Path) -> Result<Option<Vec<Child>>, ArchiveError> {
    let err = |source| ArchiveError::ReadWorkspace {
        kind: "directory",
        path: abs.to_path_buf(),
        source,
    };
    let read = match fs::read_dir(abs) {
        Ok(read) => read,
        Err(e) if e.kind() == io::ErrorKind::NotFound && !rel.as_os_str().is_empty() => {
            return Ok(None);
        }
        Err(e) => return Err(err(e)),
    };
    let mut children = Vec::new();
    for entry in read {
        let entry = entry.map_err(err)?;
        let file_type = match entry.file_type() {
            Ok(ft) => ft,
            // Only when d_type is unknown and the entry vanished before the fallback lstat.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(err(e)),
        };
        children.push(Child {
            name: entry.file_name(),
            file_type,
        });
    }
    children.sort_unstable_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
    Ok(Some(children))
}

/// Compiled [`ArchiveOptions::exclude`] patterns.
struct Excludes {
    by_name: GlobSet,
    by_path: GlobSet,
    dir_by_name: GlobSet,
    dir_by_path: GlobSet,
}

impl Excludes {
    fn new(patterns: &[String]) -> Result<Self, ArchiveError> {
        let mut sets: [GlobSetBuilder; 4] = std::array::from_fn(|_| GlobSetBuilder::new());
        for pattern in patterns {
            let invalid = |reason: String| ArchiveError::InvalidExclude {
                pattern: pattern.clone(),
                reason,
            };
            let (body, dir_only) = match pattern.strip_suffix('/') {
                Some(body) => (body, true),
                None => (pattern.as_str(), false),
            };
            let (body, anchored) = match body.strip_prefix('/') {
                Some(body) => (body, true),
                None => (body, body.contains('/')),
            };
            if body.is_empty() {
                return Err(invalid("empty pattern".into()));
            }
            let glob = GlobBuilder::new(body)
                .literal_separator(true)
                .backslash_escape(true)
                .build()
                .map_err(|e| invalid(e.kind().to_string()))?;
            sets[usize::from(anchored) + 2 * usize::from(dir_only)].add(glob);
        }
        let [by_name, by_path, dir_by_name, dir_by_path] = sets.map(|b| b.build());
        let built = |set: Result<GlobSet, globset::Error>| {
            set.map_err(|e| ArchiveError::InvalidExclude {
                pattern: e.glob().unwrap_or_default().to_string(),
                reason: e.kind().to_string(),
            })
        };
        Ok(Excludes {
            by_name: built(by_name)?,
            by_path: built(by_path)?,
            dir_by_name: built(dir_by_name)?,
            dir_by_path: built(dir_by_path)?,
        })
    }

    fn is_excluded(&self, rel: &Path, is_dir: bool) -> bool {
        let name = rel.file_name().map(Path::new).unwrap_or(rel);
        self.by_name.is_match(name)
            || self.by_path.is_match(rel)
            || (is_dir && (self.dir_by_name.is_match(name) || self.dir_by_path.is_match(rel)))
    }
}

/// The tar stream being written, and what went into it.
struct TarWriter<W: Write> {
    /// Builds nothing itself (headers are written raw, for byte-exact names); it owns the
    /// output and writes the end-of-archive blocks.
    builder: Builder<BufWriter<W>>,
    buf: Vec<u8>,
    /// (dev, inode) → archive name of the first name of each multiply-linked file.
    links: HashMap<(u64, u64), Vec<u8>>,
    stats: ArchiveStats,
}

impl<W: Write> TarWriter<W> {
    fn new(out: W) -> Self {
        // Batches the 512-byte headers and small files; chunks of BUF_SIZE pass straight
        // through BufWriter without a copy.
        TarWriter {
            builder: Builder::new(BufWriter::with_capacity(BUF_SIZE, out)),
            buf: vec![0; BUF_SIZE],
            links: HashMap::new(),
            stats: ArchiveStats::default(),
        }
    }

    fn finish(self) -> Result<(W, ArchiveStats), ArchiveError> {
        let end = |source| ArchiveError::WriteTar {
            entry: "end of archive".into(),
            source,
        };
        let buffered = self.builder.into_inner().map_err(end)?;
        let out = buffered.into_inner().map_err(|e| end(e.into_error()))?;
        Ok((out, self.stats))
    }

    fn out(&mut self) -> &mut BufWriter<W> {
        self.builder.get_mut()
    }

    fn record_change(&mut self, rel: &Path, change: &str) {
        self.stats.changed.push(ChangedEntry {
            path: lossy(rel),
            change: change.into(),
        });
    }

    /// Writes `header` named `name` (and its long-name entry first if needed).
    fn write_header(&mut self, name: &[u8], header: &mut Header) -> io::Result<()> {
        if name.len() >= NAME_FIELD {
            write_long_entry(self.out(), EntryType::GNULongName, name)?;
        }
        set_field(&mut header.as_old_mut().name, name);
        header.set_cksum();
        self.out().write_all(header.as_bytes())
    }

    /// Writes a data-less entry, with its link target if it has one.
    fn write_entry(
        &mut self,
        name: &[u8],
        header: &mut Header,
        link: Option<&[u8]>,
    ) -> io::Result<()> {
        if let Some(target) = link {
            if target.len() >= NAME_FIELD {
                write_long_entry(self.out(), EntryType::GNULongLink, target)?;
            }
            set_field(&mut header.as_old_mut().linkname, target);
        }
        self.write_header(name, header)
    }

    /// Appends a directory (`rel` empty: the root, as `./`).
    fn append_dir(&mut self, rel: &Path, meta: &Metadata) -> Result<(), ArchiveError> {
        let mut name = Vec::with_capacity(rel.as_os_str().len() + 2);
        if rel.as_os_str().is_empty() {
            name.push(b'.');
        } else {
            name.extend_from_slice(rel.as_os_str().as_bytes());
        }
        name.push(b'/');
        let mut header = header_for(meta, EntryType::Directory);
        self.write_entry(&name, &mut header, None)
            .map_err(|source| write_err(rel, source))?;
        self.stats.directories += 1;
        Ok(())
    }

    /// Appends the directory at `abs`; whether to descend into it.
    fn append_dir_path(&mut self, abs: &Path, rel: &Path) -> Result<bool, ArchiveError> {
        match fs::symlink_metadata(abs) {
            Ok(meta) if meta.is_dir() => self.append_dir(rel, &meta).map(|()| true),
            Ok(_) => {
                self.record_change(rel, "replaced while archived");
                Ok(false)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.record_change(rel, "vanished");
                Ok(false)
            }
            Err(source) => Err(ArchiveError::ReadWorkspace {
                kind: "directory",
                path: abs.to_path_buf(),
                source,
            }),
        }
    }

    /// Appends the symlink at `abs`, as a symlink.
    fn append_symlink_path(&mut self, abs: &Path, rel: &Path) -> Result<(), ArchiveError> {
        let err = |source| ArchiveError::ReadWorkspace {
            kind: "symlink",
            path: abs.to_path_buf(),
            source,
        };
        let gone = |e: &io::Error| e.kind() == io::ErrorKind::NotFound;
        let meta = match fs::symlink_metadata(abs) {
            Ok(meta) => meta,
            Err(e) if gone(&e) => {
                self.record_change(rel, "vanished");
                return Ok(());
            }
            Err(e) => return Err(err(e)),
        };
        let target = match fs::read_link(abs) {
            Ok(target) => target,
            Err(e) if gone(&e) => {
                self.record_change(rel, "vanished");
                return Ok(());
            }
            Err(e) if e.kind() == io::ErrorKind::InvalidInput => {
                self.record_change(rel, "replaced while archived");
                return Ok(());
            }
            Err(e) => return Err(err(e)),
        };
        let mut header = header_for(&meta, EntryType::Symlink);
        self.write_entry(
            rel.as_os_str().as_bytes(),
            &mut header,
            Some(target.as_os_str().as_bytes()),
        )
        .map_err(|source| write_err(rel, source))?;
        self.stats.symlinks += 1;
        Ok(())
    }

    /// Opens and appends the regular file at `abs`.
    fn append_path_file(&mut self, abs: &Path, rel: &Path) -> Result<(), ArchiveError> {
        // O_NOFOLLOW: a file swapped for a symlink is not followed out of the workspace;
        // O_NONBLOCK: one swapped for a fifo does not hang the backup.
        let flags = (rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK).bits();
        let opened = OpenOptions::new()
            .read(true)
            .custom_flags(flags as i32)
            .open(abs);
        let mut file = match opened {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.record_change(rel, "vanished");
                return Ok(());
            }
            Err(e)
                if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error())
                    || e.raw_os_error() == Some(rustix::io::Errno::NXIO.raw_os_error()) =>
            {
                self.record_change(rel, "replaced while archived");
                return Ok(());
            }
            Err(source) => return Err(read_file_err(abs, source)),
        };
        let before = file.metadata().map_err(|e| read_file_err(abs, e))?;
        if !before.is_file() {
            self.record_change(rel, "replaced while archived");
            return Ok(());
        }
        self.append_open_file(abs, rel, &mut file, &before)
    }

    /// Appends `file` (opened from `abs`) with the size, mode and times of `before`, its
    /// stat taken when opened: exactly `before.len()` bytes of data are written whatever
    /// happens to the file meanwhile, so the archive stays well-formed.
    fn append_open_file(
        &mut self,
        abs: &Path,
        rel: &Path,
        file: &mut File,
        before: &Metadata,
    ) -> Result<(), ArchiveError> {
        let name = rel.as_os_str().as_bytes();
        if before.nlink() > 1 {
            let key = (before.dev(), before.ino());
            if let Some(first) = self.links.get(&key) {
                let first = first.clone();
                let mut header = header_for(before, EntryType::Link);
                self.write_entry(name, &mut header, Some(&first))
                    .map_err(|source| write_err(rel, source))?;
                self.stats.hardlinks += 1;
                return Ok(());
            }
            self.links.insert(key, name.to_vec());
        }

        let size = before.len();
        let mut header = header_for(before, EntryType::Regular);
        header.set_size(size);
        self.write_header(name, &mut header)
            .map_err(|source| write_err(rel, source))?;
        let mut remaining = size;
        while remaining > 0 {
            let want = remaining.min(BUF_SIZE as u64) as usize;
            let n = match file.read(&mut self.buf[..want]) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(read_file_err(abs, e)),
            };
            // Borrow the buffer and the output separately: no intermediate copy.
            let TarWriter { builder, buf, .. } = self;
            builder
                .get_mut()
                .write_all(&buf[..n])
                .map_err(|source| write_err(rel, source))?;
            remaining -= n as u64;
        }
        let shrank = remaining > 0;
        let padding = remaining + pad_len(size) as u64;
        io::copy(&mut io::repeat(0).take(padding), self.out())
            .map_err(|source| write_err(rel, source))?;
        self.stats.files += 1;
        self.stats.file_bytes += size;

        let after = file.metadata().map_err(|e| read_file_err(abs, e))?;
        let change = if shrank || after.len() < size {
            Some("shrank while archived")
        } else if after.len() > size {
            Some("grew while archived")
        } else if (after.mtime(), after.mtime_nsec()) != (before.mtime(), before.mtime_nsec()) {
            Some("modified while archived")
        } else {
            match fs::symlink_metadata(abs) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => Some("removed while archived"),
                Ok(now) if (now.dev(), now.ino()) != (before.dev(), before.ino()) => {
                    Some("replaced while archived")
                }
                _ => None,
            }
        };
        if let Some(change) = change {
            self.record_change(rel, change);
        }
        Ok(())
    }
}

/// A GNU header with the entry type and the metadata tar keeps (no atime/ctime, so the
/// same tree gives the same bytes).
fn header_for(meta: &Metadata, kind: EntryType) -> Header {
    let mut header = Header::new_gnu();
    header.set_entry_type(kind);
    header.set_mode(meta.mode() & 0o7777);
    header.set_uid(meta.uid().into());
    header.set_gid(meta.gid().into());
    // Pre-1970 mtimes are clamped: the tar crate has no negative time field.
    header.set_mtime(u64::try_from(meta.mtime()).unwrap_or(0));
    header.set_size(0);
    header
}

/// Writes a GNU `././@LongLink` entry holding `bytes` (a long name or link target).
fn write_long_entry(out: &mut impl Write, kind: EntryType, bytes: &[u8]) -> io::Result<()> {
    let mut header = Header::new_gnu();
    set_field(&mut header.as_old_mut().name, LONG_LINK_NAME);
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_size(bytes.len() as u64 + 1);
    header.set_entry_type(kind);
    header.set_cksum();
    out.write_all(header.as_bytes())?;
    out.write_all(bytes)?;
    // The NUL terminator GNU tar writes, then padding to the block.
    out.write_all(&ZEROS[..1 + pad_len(bytes.len() as u64 + 1)])
}

/// Copies as much of `value` as fits into a header field, NUL-padding the rest.
fn set_field(field: &mut [u8], value: &[u8]) {
    let n = value.len().min(field.len());
    field[..n].copy_from_slice(&value[..n]);
    field[n..].fill(0);
}

/// Zero bytes that follow `len` bytes of data to reach a block boundary.
fn pad_len(len: u64) -> usize {
    ((BLOCK as u64 - len % BLOCK as u64) % BLOCK as u64) as usize
}

fn write_err(rel: &Path, source: io::Error) -> ArchiveError {
    ArchiveError::WriteTar {
        entry: if rel.as_os_str().is_empty() {
            "./".into()
        } else {
            lossy(rel)
        },
        source,
    }
}

fn read_file_err(abs: &Path, source: io::Error) -> ArchiveError {
    ArchiveError::ReadWorkspace {
        kind: "file",
        path: abs.to_path_buf(),
        source,
    }
}

fn lossy(rel: &Path) -> String {
    String::from_utf8_lossy(rel.as_os_str().as_bytes()).into_owned()
}

fn lossy_bytes(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

// ---------------------------------------------------------------------------------------------
// Reading
// ---------------------------------------------------------------------------------------------

/// What a tar stream holds, counted while reading it to the end.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TarListing {
    /// Regular-file entries (hard links not included).
    pub files: u64,
    /// Directory entries (`./` included).
    pub directories: u64,
    /// Symlink entries.
    pub symlinks: u64,
    /// Hard-link entries.
    pub hardlinks: u64,
    /// Bytes of file data.
    pub file_bytes: u64,
    /// All entries, of any type (GNU long-name and pax extension records not counted).
    pub entries: u64,
}

/// Reads a whole tar stream, data included, and counts its entries.
///
/// Fails on a truncated stream (an entry's data cut short, a partial header, or the
/// end-of-archive marker missing), on a header whose checksum does not match, and on
/// non-zero bytes after the end-of-archive marker; the input is read to its end, so a
/// hashing reader underneath sees every byte.
pub fn list_tar<R: Read>(input: R) -> Result<TarListing, ArchiveError> {
    let mut listing = TarListing::default();
    read_entries(input, |entry, path, buf| {
        listing.entries += 1;
        let kind = entry.header().entry_type();
        match kind {
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                let size = entry.size();
                copy_entry_data(entry, size, buf, |_| Ok(()))
                    .map_err(|e| e.into_error(path, Path::new("")))?;
                listing.files += 1;
                listing.file_bytes += size;
            }
            EntryType::Directory => listing.directories += 1,
            EntryType::Symlink => listing.symlinks += 1,
            EntryType::Link => listing.hardlinks += 1,
            _ => {}
        }
        Ok(())
    })?;
    Ok(listing)
}

/// A reader that remembers whether it reached the end of its input.
struct EofTracker<R> {
    inner: R,
    hit_eof: bool,
}

impl<R: Read> Read for EofTracker<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() {
            self.hit_eof = true;
        }
        Ok(n)
    }
}

/// Calls `on_entry` for every entry (with its raw path and a scratch buffer), then checks
/// that the archive ended with its end-of-archive marker and reads the input to its end.
fn read_entries<R: Read>(
    input: R,
    mut on_entry: impl FnMut(
        &mut tar::Entry<'_, EofTracker<R>>,
        &[u8],
        &mut [u8],
    ) -> Result<(), ArchiveError>,
) -> Result<(), ArchiveError> {
    let mut archive = tar::Archive::new(EofTracker {
        inner: input,
        hit_eof: false,
    });
    let mut buf = vec![0u8; BUF_SIZE];
    // The last entry's path, reused so that reading costs no allocation per entry.
    let mut last: Vec<u8> = Vec::new();
    let mut seen = false;
    let position = |last: &[u8], seen: bool| {
        if seen {
            format!("after entry `{}`", lossy_bytes(last))
        } else {
            "at the start".to_string()
        }
    };
    {
        let entries = archive.entries().map_err(|source| ArchiveError::ReadTar {
            position: position(&last, seen),
            source,
        })?;
        for entry in entries {
            let mut entry = entry.map_err(|source| ArchiveError::ReadTar {
                position: position(&last, seen),
                source,
            })?;
            last.clear();
            last.extend_from_slice(&entry.path_bytes());
            seen = true;
            on_entry(&mut entry, &last, &mut buf)?;
        }
    }
    let mut tracker = archive.into_inner();
    // The tar crate ends at the first zero block or, silently, at EOF on a block boundary:
    // the latter is a truncated archive.
    if tracker.hit_eof {
        return Err(ArchiveError::ReadTar {
            position: position(&last, seen),
            source: io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the stream ends without the end-of-archive marker (truncated)",
            ),
        });
    }
    // The crate consumed one zero block; the format has two, and GNU tar pads the last
    // record with more zeros. Anything else after them is corruption.
    let mut trailing = 0u64;
    loop {
        let n = match tracker.inner.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(source) => {
                return Err(ArchiveError::ReadTar {
                    position: "in the end-of-archive marker".into(),
                    source,
                });
            }
        };
        if buf[..n].iter().any(|b| *b != 0) {
            return Err(ArchiveError::ReadTar {
                position: "after the end-of-archive marker".into(),
                source: io::Error::new(
                    io::ErrorKind::InvalidData,
                    "non-zero data after the end of the archive (corrupt)",
                ),
            });
        }
        trailing += n as u64;
    }
    if trailing < BLOCK as u64 {
        return Err(ArchiveError::ReadTar {
            position: "in the end-of-archive marker".into(),
            source: io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the second end-of-archive block is missing (truncated)",
            ),
        });
    }
    Ok(())
}

/// Why copying an entry's data failed: the archive side or the destination side.
enum CopyError {
    Read(io::Error),
    Write(io::Error),
}

impl CopyError {
    fn into_error(self, entry: &[u8], dest: &Path) -> ArchiveError {
        match self {
            CopyError::Read(source) => ArchiveError::ReadTar {
                position: format!("in entry `{}`", lossy_bytes(entry)),
                source,
            },
            CopyError::Write(source) => ArchiveError::Extract {
                entry: lossy_bytes(entry),
                path: dest.to_path_buf(),
                source,
            },
        }
    }
}

/// Streams an entry's data through `buf` into `sink`, requiring exactly `expected` bytes.
fn copy_entry_data(
    entry: &mut impl Read,
    expected: u64,
    buf: &mut [u8],
    mut sink: impl FnMut(&[u8]) -> io::Result<()>,
) -> Result<(), CopyError> {
    let mut total = 0u64;
    loop {
        let n = match entry.read(buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(CopyError::Read(e)),
        };
        sink(&buf[..n]).map_err(CopyError::Write)?;
        total += n as u64;
    }
    if total != expected {
        return Err(CopyError::Read(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("the entry's data ends after {total} of {expected} bytes (truncated)"),
        )));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Extraction
// ---------------------------------------------------------------------------------------------

/// What [`extract_tar`] created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtractStats {
    /// Regular files written (a file replaced by a later entry counts twice).
    pub files: u64,
    /// Directory entries applied (`./`, applied to `dest` itself, included).
    pub directories: u64,
    /// Symlinks created.
    pub symlinks: u64,
    /// Hard links created.
    pub hardlinks: u64,
    /// Bytes of file data written.
    pub file_bytes: u64,
}

/// Extracts a tar stream into `dest`, an existing empty directory (a staging directory the
/// caller renames into place; on `Err` the caller deletes it).
///
/// Restores regular files (streamed), directories, symlinks and hard links, with modes
/// (`& 0o7777`), mtimes (seconds), and, when running as root, owners. A `./` entry's
/// metadata is applied to `dest` itself. Directories implied by an entry but absent from
/// the archive are created with mode 0700.
///
/// Refuses, with [`ArchiveError::UnsafeEntry`], before writing anything for that entry:
/// absolute paths, `..` components, anything whose parent is a symlink (symlinks may point
/// anywhere, but nothing is ever written through one), hard links whose target is absolute,
/// has `..` or is not a regular file extracted earlier, device files, fifos, unknown entry
/// types, and duplicates other than a regular file (or hard link) replacing a regular file
/// or a directory entry repeating a directory. The input is read to its end as by
/// [`list_tar`], so truncation and corruption are errors too.
///
/// Safety rests on `dest` starting empty and on this function being its only writer: the
/// extracted tree is tracked in memory, so each parent is checked without a syscall, and
/// files are still created with `O_CREAT|O_EXCL|O_NOFOLLOW`, links and directories with
/// calls that never follow or replace an existing name.
pub fn extract_tar<R: Read>(input: R, dest: &Path) -> Result<ExtractStats, ArchiveError> {
    let bad_dest = |reason: String| ArchiveError::Destination {
        path: dest.to_path_buf(),
        reason,
    };
    match fs::symlink_metadata(dest) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => return Err(bad_dest("not a directory (or a symlink)".into())),
        Err(e) => return Err(bad_dest(e.to_string())),
    }
    match fs::read_dir(dest) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(bad_dest("not empty".into()));
            }
        }
        Err(e) => return Err(bad_dest(e.to_string())),
    }

    let mut ex = Extractor {
        dest,
        as_root: rustix::process::geteuid().is_root(),
        nodes: HashMap::new(),
        files: HashSet::new(),
        file_keys: RandomState::new(),
        root_meta: None,
        stats: ExtractStats::default(),
    };
    read_entries(input, |entry, raw, buf| ex.entry(entry, raw, buf))?;
    ex.finish_dirs()?;
    Ok(ex.stats)
}

/// Metadata applied to a directory after everything inside it is written.
#[derive(Debug, Clone, Copy)]
struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: u64,
}

/// What extraction created at a path.
#[derive(Debug, Clone, Copy)]
enum Node {
    /// A directory; `None` when created as a parent without an entry of its own.
    Dir(Option<Meta>),
    /// A regular file (hard links included).
    File,
    Symlink,
}

impl Node {
    fn describe(self) -> &'static str {
        match self {
            Node::Dir(_) => "a directory",
            Node::File => "a regular file",
            Node::Symlink => "a symlink",
        }
    }
}

/// What an entry will create.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    File,
    Dir,
    Symlink,
    HardLink,
}

struct Extractor<'d> {
    dest: &'d Path,
    as_root: bool,
    /// Every directory and symlink created under `dest`, relative, normalized (`a/b`).
    /// Invariant: all ancestors of a path in the map, or in `files`, are in it as directories.
    nodes: HashMap<Vec<u8>, Node>,
    /// Regular files (hard links included) created under `dest`, as keyed hashes of their
    /// relative paths: memory stays small however many files a workspace holds (a few
    /// bytes per file instead of the path). The per-process random key means an archive
    /// cannot be crafted to collide; a collision could only make extraction fail.
    files: HashSet<u64>,
    file_keys: RandomState,
    root_meta: Option<Meta>,
    stats: ExtractStats,
}

impl Extractor<'_> {
    /// What extraction created at `rel`, if anything.
    fn node(&self, rel: &[u8]) -> Option<Node> {
        match self.nodes.get(rel) {
            Some(node) => Some(*node),
            None => self
                .files
                .contains(&self.file_keys.hash_one(rel))
                .then_some(Node::File),
        }
    }

    fn insert(&mut self, rel: Vec<u8>, node: Node) {
        match node {
            Node::File => {
                self.files.insert(self.file_keys.hash_one(rel.as_slice()));
            }
            _ => {
                self.nodes.insert(rel, node);
            }
        }
    }

    fn entry<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        raw: &[u8],
        buf: &mut [u8],
    ) -> Result<(), ArchiveError> {
        let unsafe_entry = |reason: String| ArchiveError::UnsafeEntry {
            entry: lossy_bytes(raw),
            reason,
        };
        let rel = normalize(raw).map_err(|r| unsafe_entry(r.into()))?;
        let header = entry.header();
        let kind = match header.entry_type() {
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => Kind::File,
            EntryType::Directory => Kind::Dir,
            EntryType::Symlink => Kind::Symlink,
            EntryType::Link => Kind::HardLink,
            // Global pax headers only carry comments or defaults (e.g. git archive's commit).
            EntryType::XGlobalHeader => return Ok(()),
            EntryType::Char | EntryType::Block => return Err(unsafe_entry("device file".into())),
            EntryType::Fifo => return Err(unsafe_entry("fifo".into())),
            other => {
                return Err(unsafe_entry(format!(
                    "unsupported entry type `{}`",
                    (other.as_byte() as char).escape_default()
                )));
            }
        };
        if rel.is_empty() {
            // `./`: the root, i.e. dest itself.
            if kind != Kind::Dir {
                return Err(unsafe_entry("the archive root is not a directory".into()));
            }
            self.root_meta = Some(meta_of(header, raw)?);
            self.stats.directories += 1;
            return Ok(());
        }
        if kind != Kind::Dir && raw.ends_with(b"/") {
            return Err(unsafe_entry(
                "a non-directory entry with a trailing `/`".into(),
            ));
        }

        // What already exists at this path decides whether the entry may proceed.
        let replace = match (self.node(&rel), kind) {
            (None, _) => false,
            (Some(Node::File), Kind::File | Kind::HardLink) => true,
            (Some(Node::Dir(_)), Kind::Dir) => false,
            (Some(node), _) => {
                return Err(unsafe_entry(format!(
                    "duplicate entry: `{}` was already extracted as {}",
                    lossy_bytes(&rel),
                    node.describe()
                )));
            }
        };
        self.make_parents(&rel, raw)?;
        let path = self.dest.join(OsStr::from_bytes(&rel));
        let fail = |source| ArchiveError::Extract {
            entry: lossy_bytes(raw),
            path: path.clone(),
            source,
        };
        if replace {
            fs::remove_file(&path).map_err(fail)?;
        }

        match kind {
            Kind::File => {
                let meta = meta_of(header, raw)?;
                let size = entry.size();
                let flags = rustix::fs::OFlags::NOFOLLOW.bits();
                let mut file = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .custom_flags(flags as i32)
                    .open(&path)
                    .map_err(fail)?;
                copy_entry_data(entry, size, buf, |chunk| file.write_all(chunk))
                    .map_err(|e| e.into_error(raw, &path))?;
                // chown first: it clears setuid/setgid bits that chmod then sets.
                if self.as_root {
                    std::os::unix::fs::fchown(&file, Some(meta.uid), Some(meta.gid))
                        .map_err(fail)?;
                }
                file.set_permissions(fs::Permissions::from_mode(meta.mode))
                    .map_err(fail)?;
                if let Some(time) = system_time(meta.mtime) {
                    file.set_modified(time).map_err(fail)?;
                }
                self.insert(rel, Node::File);
                self.stats.files += 1;
                self.stats.file_bytes += size;
            }
            Kind::Dir => {
                let meta = meta_of(header, raw)?;
                if !matches!(self.node(&rel), Some(Node::Dir(_))) {
                    create_dir(&path).map_err(fail)?;
                }
                self.insert(rel, Node::Dir(Some(meta)));
                self.stats.directories += 1;
            }
            Kind::Symlink => {
                let meta = meta_of(header, raw)?;
                let target = entry
                    .link_name_bytes()
                    .filter(|t| !t.is_empty())
                    .ok_or_else(|| unsafe_entry("a symlink without a target".into()))?;
                std::os::unix::fs::symlink(OsStr::from_bytes(&target), &path).map_err(fail)?;
                if self.as_root {
                    std::os::unix::fs::lchown(&path, Some(meta.uid), Some(meta.gid))
                        .map_err(fail)?;
                }
                if let Ok(secs) = i64::try_from(meta.mtime) {
                    let times = rustix::fs::Timestamps {
                        last_access: rustix::fs::Timespec {
                            tv_sec: 0,
                            tv_nsec: rustix::fs::UTIME_OMIT,
                        },
                        last_modification: rustix::fs::Timespec {
                            tv_sec: secs,
                            tv_nsec: 0,
                        },
                    };
                    rustix::fs::utimensat(
                        rustix::fs::CWD,
                        &path,
                        &times,
                        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
                    )
                    .map_err(|e| fail(e.into()))?;
                }
                self.insert(rel, Node::Symlink);
                self.stats.symlinks += 1;
            }
            Kind::HardLink => {
                let raw_target = entry
                    .link_name_bytes()
                    .ok_or_else(|| unsafe_entry("a hard link without a target".into()))?;
                let target = normalize(&raw_target).map_err(|r| {
                    unsafe_entry(format!(
                        "hard link target `{}` outside the archive ({r})",
                        lossy_bytes(&raw_target)
                    ))
                })?;
                // The target's parent must be a directory extracted here too, so the link is
                // never made through a symlink whatever the file lookup answered.
                let parent_is_dir = match target.iter().rposition(|b| *b == b'/') {
                    Some(slash) => matches!(self.node(&target[..slash]), Some(Node::Dir(_))),
                    None => true,
                };
                if target == rel
                    || !parent_is_dir
                    || !matches!(self.node(&target), Some(Node::File))
                {
                    return Err(unsafe_entry(format!(
                        "hard link target `{}` is not a regular file extracted earlier",
                        lossy_bytes(&raw_target)
                    )));
                }
                let from = self.dest.join(OsStr::from_bytes(&target));
                // linkat without AT_SYMLINK_FOLLOW: links the target itself, never through it.
                fs::hard_link(&from, &path).map_err(fail)?;
                self.insert(rel, Node::File);
                self.stats.hardlinks += 1;
            }
        }
        Ok(())
    }

    /// Ensures every ancestor of `rel` is a directory extracted here, creating missing ones.
    fn make_parents(&mut self, rel: &[u8], raw: &[u8]) -> Result<(), ArchiveError> {
        let Some(slash) = rel.iter().rposition(|b| *b == b'/') else {
            return Ok(());
        };
        let parent = &rel[..slash];
        match self.node(parent) {
            Some(Node::Dir(_)) => Ok(()),
            Some(Node::Symlink) => Err(ArchiveError::UnsafeEntry {
                entry: lossy_bytes(raw),
                reason: format!("would be written through symlink `{}`", lossy_bytes(parent)),
            }),
            Some(Node::File) => Err(ArchiveError::UnsafeEntry {
                entry: lossy_bytes(raw),
                reason: format!("its parent `{}` is a regular file", lossy_bytes(parent)),
            }),
            None => {
                self.make_parents(parent, raw)?;
                let path = self.dest.join(OsStr::from_bytes(parent));
                create_dir(&path).map_err(|source| ArchiveError::Extract {
                    entry: lossy_bytes(raw),
                    path,
                    source,
                })?;
                self.insert(parent.to_vec(), Node::Dir(None));
                Ok(())
            }
        }
    }

    /// Applies directory metadata, deepest first (writing into a directory changes its
    /// mtime, and a read-only parent would block changing its children), `dest` last.
    fn finish_dirs(&mut self) -> Result<(), ArchiveError> {
        let mut dirs: Vec<(&[u8], Meta)> = self
            .nodes
            .iter()
            .filter_map(|(rel, node)| match node {
                Node::Dir(Some(meta)) => Some((rel.as_slice(), *meta)),
                _ => None,
            })
            .collect();
        let depth = |rel: &[u8]| rel.iter().filter(|b| **b == b'/').count();
        dirs.sort_unstable_by(|a, b| depth(b.0).cmp(&depth(a.0)).then(a.0.cmp(b.0)));
        for (rel, meta) in dirs {
            let path = self.dest.join(OsStr::from_bytes(rel));
            apply_dir_meta(&path, meta, self.as_root).map_err(|source| ArchiveError::Extract {
                entry: format!("{}/", lossy_bytes(rel)),
                path: path.clone(),
                source,
            })?;
        }
        if let Some(meta) = self.root_meta {
            apply_dir_meta(self.dest, meta, self.as_root).map_err(|source| {
                ArchiveError::Extract {
                    entry: "./".into(),
                    path: self.dest.to_path_buf(),
                    source,
                }
            })?;
        }
        Ok(())
    }
}

/// The path relative to the destination, `/`-joined without `.` or empty components;
/// empty for the root. Refuses absolute paths and `..`.
fn normalize(raw: &[u8]) -> Result<Vec<u8>, &'static str> {
    if raw.is_empty() {
        return Err("empty path");
    }
    if raw[0] == b'/' {
        return Err("absolute path");
    }
    let mut out = Vec::with_capacity(raw.len());
    for component in raw.split(|b| *b == b'/') {
        match component {
            b"" | b"." => {}
            b".." => return Err("parent directory (..) component"),
            name => {
                if !out.is_empty() {
                    out.push(b'/');
                }
                out.extend_from_slice(name);
            }
        }
    }
    Ok(out)
}

fn meta_of(header: &Header, raw: &[u8]) -> Result<Meta, ArchiveError> {
    let corrupt = |source: io::Error| ArchiveError::ReadTar {
        position: format!("in entry `{}`", lossy_bytes(raw)),
        source,
    };
    let id = |value: u64| {
        u32::try_from(value).map_err(|_| {
            corrupt(io::Error::new(
                io::ErrorKind::InvalidData,
                "uid or gid out of range",
            ))
        })
    };
    Ok(Meta {
        mode: header.mode().map_err(corrupt)? & 0o7777,
        uid: id(header.uid().map_err(corrupt)?)?,
        gid: id(header.gid().map_err(corrupt)?)?,
        mtime: header.mtime().map_err(corrupt)?,
    })
}

fn system_time(secs: u64) -> Option<SystemTime> {
    SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(secs))
}

/// Creates one directory, private until its own entry's metadata is applied at the end.
fn create_dir(path: &Path) -> io::Result<()> {
    crate::fsutil::create_private_dir(path)
}

/// Sets owner (as root), mode and mtime of a directory through a descriptor opened without
/// following symlinks.
fn apply_dir_meta(path: &Path, meta: Meta, as_root: bool) -> io::Result<()> {
    let flags = (rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::DIRECTORY).bits();
    let dir = OpenOptions::new()
        .read(true)
        .custom_flags(flags as i32)
        .open(path)?;
    if as_root {
        std::os::unix::fs::fchown(&dir, Some(meta.uid), Some(meta.gid))?;
    }
    dir.set_permissions(fs::Permissions::from_mode(meta.mode))?;
    if let Some(time) = system_time(meta.mtime) {
        dir.set_modified(time)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::process::Command;

    use proptest::prelude::*;
    use rustix::fs::{AtFlags, CWD, Timespec, Timestamps};

    fn path(bytes: &[u8]) -> &Path {
        Path::new(OsStr::from_bytes(bytes))
    }

    #[derive(Debug, Clone, PartialEq, Eq)]
    enum SnapKind {
        Dir,
        File(Vec<u8>),
        Symlink(Vec<u8>),
    }

    #[derive(Debug, Clone, PartialEq, Eq)]
    struct Snap {
        kind: SnapKind,
        mode: u32,
        mtime: i64,
        owner: (u32, u32),
    }

    /// Every directory, file and symlink under `root` (the root itself as `b""`), by relative
    /// path; special files are left out.
    fn snapshot(root: &Path) -> BTreeMap<Vec<u8>, Snap> {
        let mut out = BTreeMap::new();
        for entry in walkdir::WalkDir::new(root).sort_by_file_name() {
            let entry = entry.unwrap();
            let rel = entry.path().strip_prefix(root).unwrap();
            let meta = fs::symlink_metadata(entry.path()).unwrap();
            let ft = meta.file_type();
            let (kind, mode) = if ft.is_dir() {
                (SnapKind::Dir, meta.mode() & 0o7777)
            } else if ft.is_symlink() {
                let target = fs::read_link(entry.path()).unwrap();
                (SnapKind::Symlink(target.as_os_str().as_bytes().to_vec()), 0)
            } else if ft.is_file() {
                (
                    SnapKind::File(fs::read(entry.path()).unwrap()),
                    meta.mode() & 0o7777,
                )
            } else {
                continue;
            };
            let snap = Snap {
                kind,
                mode,
                mtime: meta.mtime(),
                owner: (meta.uid(), meta.gid()),
            };
            out.insert(rel.as_os_str().as_bytes().to_vec(), snap);
        }
        out
    }

    /// The entry names a correct archive of `root` lists, in order.
    fn expected_names(root: &Path) -> Vec<Vec<u8>> {
        let mut names = Vec::new();
        for entry in walkdir::WalkDir::new(root).sort_by_file_name() {
            let entry = entry.unwrap();
            let rel = entry
                .path()
                .strip_prefix(root)
                .unwrap()
                .as_os_str()
                .as_bytes();
            let ft = entry.file_type();
            if entry.depth() == 0 {
                names.push(b"./".to_vec());
            } else if ft.is_dir() {
                names.push([rel, b"/"].concat());
            } else if ft.is_file() || ft.is_symlink() {
                names.push(rel.to_vec());
            }
        }
        names
    }

    fn set_mtime(path: &Path, secs: i64) {
        let time = Timespec {
            tv_sec: secs,
            tv_nsec: 0,
        };
        let times = Timestamps {
            last_access: time,
            last_modification: time,
        };
        rustix::fs::utimensat(CWD, path, &times, AtFlags::SYMLINK_NOFOLLOW).unwrap();
    }

    /// Gives every entry a distinct old mtime, so restoring them is actually checked.
    fn age_tree(root: &Path) {
        let all = walkdir::WalkDir::new(root).sort_by_file_name();
        for (i, entry) in all.into_iter().enumerate() {
            set_mtime(entry.unwrap().path(), 1_500_000_000 + i as i64 * 7919);
        }
    }

    fn write_file(path: &Path, data: &[u8], mode: u32) {
        fs::write(path, data).unwrap();
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    }

    fn archive(root: &Path, exclude: &[&str]) -> (Vec<u8>, ArchiveStats) {
        let options = ArchiveOptions {
            exclude: exclude.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        };
        write_workspace_tar(root, &options, Vec::new()).unwrap()
    }

    /// Entry names as the tar crate reads them.
    fn tar_names(archive: &[u8]) -> Vec<Vec<u8>> {
        let mut ar = tar::Archive::new(archive);
        ar.entries()
            .unwrap()
            .map(|e| e.unwrap().path_bytes().into_owned())
            .collect()
    }

    /// Runs GNU tar on `archive` with `args`; asserts it succeeds without a warning.
    fn gnu_tar(archive: &[u8], args: &[&OsStr]) -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.tar");
        fs::write(&file, archive).unwrap();
        let out = Command::new("tar")
            .arg("-f")
            .arg(&file)
            .args(args)
            .output()
            .expect("GNU tar on PATH");
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "tar {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    fn gnu_list(archive: &[u8]) -> Vec<Vec<u8>> {
        let out = gnu_tar(
            archive,
            &["--quoting-style=literal".as_ref(), "-t".as_ref()],
        );
        out.split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(<[u8]>::to_vec)
            .collect()
    }

    fn fresh_dest(parent: &Path, name: &str) -> PathBuf {
        let dest = parent.join(name);
        fs::create_dir(&dest).unwrap();
        dest
    }

    #[test]
    fn round_trip_keeps_every_kind_of_entry() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("ws");
        fs::create_dir(&root).unwrap();
        fs::create_dir_all(root.join("a/b/c")).unwrap();
        write_file(&root.join("a/b/c/deep.txt"), b"deep\n", 0o644);
        fs::create_dir(root.join("empty_dir")).unwrap();
        fs::set_permissions(root.join("empty_dir"), fs::Permissions::from_mode(0o750)).unwrap();
        write_file(&root.join("empty.txt"), b"", 0o644);
        let big: Vec<u8> = (0..1u32 << 20)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        write_file(&root.join("big.bin"), &big, 0o644);
        write_file(&root.join("secret.txt"), b"s3cret", 0o640);
        write_file(&root.join("run.sh"), b"#!/bin/sh\necho hi\n", 0o755);
        std::os::unix::fs::symlink("big.bin", root.join("link_to_file")).unwrap();
        std::os::unix::fs::symlink("does/not/exist", root.join("dangling")).unwrap();
        std::os::unix::fs::symlink("a/b", root.join("link_to_dir")).unwrap();
        let long_target = "t".repeat(150);
        std::os::unix::fs::symlink(&long_target, root.join("long_target")).unwrap();
        write_file(&root.join("hard1"), b"shared inode", 0o600);
        fs::hard_link(root.join("hard1"), root.join("hard2")).unwrap();
        // A >100-byte name inside a >100-byte path.
        let long_dir = root.join("d".repeat(60));
        fs::create_dir(&long_dir).unwrap();
        write_file(&long_dir.join("n".repeat(120)), b"long name", 0o644);
        // Non-UTF-8 names, one of them starting a long path (its first 100 bytes are not
        // UTF-8 at all).
        write_file(&root.join(path(b"caf\xe9.txt")), b"latin-1", 0o644);
        let odd_dir = root.join(path(b"\xff\xfe"));
        fs::create_dir(&odd_dir).unwrap();
        write_file(&odd_dir.join(path(&[0xe9; 110])), b"odd long", 0o644);
        rustix::fs::mknodat(
            CWD,
            root.join("pipe"),
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
        age_tree(&root);
        if rustix::process::geteuid().is_root() {
            // Owners are restored (as root): give a file, a symlink and a directory others.
            let owner = |p: &str, uid, gid| {
                std::os::unix::fs::lchown(root.join(p), Some(uid), Some(gid)).unwrap()
            };
            owner("secret.txt", 1234, 5678);
            owner("dangling", 4321, 8765);
            owner("empty_dir", 1111, 2222);
        }
        let source = snapshot(&root);

        let (tarball, stats) = archive(&root, &[]);
        assert_eq!(
            stats.skipped,
            vec![SkippedEntry {
                path: "pipe".into(),
                reason: "fifo".into()
            }]
        );
        assert!(stats.changed.is_empty(), "{:?}", stats.changed);
        assert_eq!(stats.hardlinks, 1);
        assert_eq!(stats.symlinks, 4);
        // ./ a a/b a/b/c empty_dir ddd… \xff\xfe
        assert_eq!(stats.directories, 7);
        // deep.txt empty.txt big.bin secret.txt run.sh hard1 nnn… café.txt ééé…
        assert_eq!(stats.files, 9);
        assert_eq!(stats.file_bytes, (1 << 20) + 5 + 6 + 18 + 12 + 9 + 7 + 8);

        // The same tree gives the same bytes.
        assert_eq!(archive(&root, &[]).0, tarball);

        let expected = expected_names(&root);
        assert_eq!(tar_names(&tarball), expected);
        assert_eq!(gnu_list(&tarball), expected);

        let listing = list_tar(&tarball[..]).unwrap();
        assert_eq!(
            listing,
            TarListing {
                files: stats.files,
                directories: stats.directories,
                symlinks: stats.symlinks,
                hardlinks: stats.hardlinks,
                file_bytes: stats.file_bytes,
                entries: expected.len() as u64,
            }
        );

        let dest = fresh_dest(tmp.path(), "restored");
        let extracted = extract_tar(&tarball[..], &dest).unwrap();
        assert_eq!(
            extracted,
            ExtractStats {
                files: stats.files,
                directories: stats.directories,
                symlinks: stats.symlinks,
                hardlinks: stats.hardlinks,
                file_bytes: stats.file_bytes,
            }
        );
        assert_eq!(snapshot(&dest), source);
        assert!(fs::symlink_metadata(dest.join("pipe")).is_err());
        let ino = |p: &Path| fs::metadata(p).unwrap().ino();
        assert_eq!(ino(&dest.join("hard1")), ino(&dest.join("hard2")));
        assert_ne!(ino(&dest.join("hard1")), ino(&root.join("hard1")));

        // GNU tar reproduces the same tree from it.
        let gnu_dest = fresh_dest(tmp.path(), "gnu");
        gnu_tar(
            &tarball,
            &["-x".as_ref(), "-C".as_ref(), gnu_dest.as_os_str()],
        );
        assert_eq!(snapshot(&gnu_dest), source);
        assert_eq!(ino(&gnu_dest.join("hard1")), ino(&gnu_dest.join("hard2")));
    }

    #[test]
    fn a_symlinked_root_is_followed_and_nothing_else() {
        let tmp = tempfile::tempdir().unwrap();
        let real = tmp.path().join("real");
        fs::create_dir(&real).unwrap();
        write_file(&real.join("f"), b"data", 0o644);
        std::os::unix::fs::symlink(tmp.path(), real.join("up")).unwrap();
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let (via_link, stats) = archive(&link, &[]);
        assert_eq!(via_link, archive(&real, &[]).0);
        assert_eq!(tar_names(&via_link), [&b"./"[..], b"f", b"up"]);
        assert_eq!(stats.symlinks, 1);

        let file_root =
            write_workspace_tar(&real.join("f"), &ArchiveOptions::default(), Vec::new());
        assert!(
            matches!(file_root, Err(ArchiveError::Root { .. })),
            "{file_root:?}"
        );
    }

    /// A directory whose (device, inode) is forbidden (the backup root, a backup) is
    /// refused wherever the walk meets it: as the root, nested, or under another name.
    #[test]
    fn forbidden_directories_are_refused_by_identity() {
        use std::os::unix::fs::MetadataExt;
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("ws");
        fs::create_dir_all(root.join("a/b/backups")).unwrap();
        fs::write(root.join("a/file"), "x").unwrap();
        let id = |p: &Path| {
            let m = fs::metadata(p).unwrap();
            (m.dev(), m.ino())
        };
        for (forbidden, reached) in [
            (root.join("a/b/backups"), root.join("a/b/backups")),
            (root.join("a"), root.join("a")),
            (root.clone(), root.clone()),
        ] {
            let options = ArchiveOptions {
                forbidden_dirs: vec![(1, 1), id(&forbidden)],
                ..Default::default()
            };
            match write_workspace_tar(&root, &options, Vec::new()) {
                Err(ArchiveError::ContainsBackups { path }) => assert_eq!(path, reached),
                other => panic!("{}: {:?}", forbidden.display(), other.map(|_| ())),
            }
        }
        // Excluded, it is never reached.
        let options = ArchiveOptions {
            exclude: vec!["backups".into()],
            forbidden_dirs: vec![id(&root.join("a/b/backups"))],
        };
        assert!(write_workspace_tar(&root, &options, Vec::new()).is_ok());
    }

    #[test]
    fn excludes_match_names_anywhere_and_paths_from_the_root() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        for dir in [
            "cache/y",
            "sub/cache",
            "sub/node_modules",
            "node_modules/pkg",
            "build/x",
        ] {
            fs::create_dir_all(root.join(dir)).unwrap();
        }
        for file in [
            "a.tmp",
            "keep.tmpx",
            "tmp.txt",
            "cache/x",
            "cache/y/z",
            "sub/b.tmp",
            "sub/keep.txt",
            "sub/cache/keep",
            "sub/node_modules/m.js",
            "node_modules/pkg/index.js",
            "build/x/out",
            "sub/build",
        ] {
            write_file(&root.join(file), file.as_bytes(), 0o644);
        }
        let (tarball, stats) = archive(root, &["*.tmp", "cache/**", "node_modules", "/build/"]);
        let names: Vec<String> = tar_names(&tarball)
            .into_iter()
            .map(|n| String::from_utf8(n).unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "./",
                "cache/",
                "keep.tmpx",
                "sub/",
                "sub/build",
                "sub/cache/",
                "sub/cache/keep",
                "sub/keep.txt",
                "tmp.txt",
            ]
        );
        assert!(stats.skipped.is_empty());

        for bad in ["a[", ""] {
            let options = ArchiveOptions {
                exclude: vec![bad.into()],
                ..Default::default()
            };
            let err = write_workspace_tar(root, &options, Vec::new()).unwrap_err();
            assert!(matches!(err, ArchiveError::InvalidExclude { .. }), "{err}");
            assert!(
                err.to_string().starts_with("invalid exclude pattern"),
                "{err}"
            );
        }
    }

    #[test]
    fn excluded_directories_are_not_read() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        // The unprivileged thread must reach the root.
        fs::set_permissions(root, fs::Permissions::from_mode(0o755)).unwrap();
        fs::create_dir_all(root.join("private/inner")).unwrap();
        write_file(&root.join("ok"), b"ok", 0o644);
        fs::set_permissions(root.join("private"), fs::Permissions::from_mode(0o000)).unwrap();
        let root_buf = root.to_path_buf();
        // Without the exclude, listing `private` fails when not root; with it, nothing
        // tries. Run as an unprivileged thread so the permission check is real.
        let result = as_unprivileged(move || {
            let options = ArchiveOptions {
                exclude: vec!["private".into()],
                ..Default::default()
            };
            let excluded =
                write_workspace_tar(&root_buf, &options, Vec::new()).map(|r| tar_names(&r.0));
            let included = write_workspace_tar(&root_buf, &ArchiveOptions::default(), Vec::new())
                .map(|_| ())
                .map_err(|e| e.to_string());
            (excluded.map_err(|e| e.to_string()), included)
        });
        fs::set_permissions(root.join("private"), fs::Permissions::from_mode(0o755)).unwrap();
        let (excluded, included) = result;
        assert_eq!(excluded.unwrap(), [&b"./"[..], b"ok"]);
        let err = included.unwrap_err();
        assert!(err.starts_with("cannot read workspace directory "), "{err}");
        assert!(err.contains("private: Permission denied"), "{err}");
    }

    /// Runs `f` on a thread without root's privileges: as root, the thread (only) switches
    /// to uid 65534, which drops its capabilities, so permission checks apply to it.
    fn as_unprivileged<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        std::thread::spawn(move || {
            if rustix::process::geteuid().is_root() {
                rustix::thread::set_thread_uid(rustix::process::Uid::from_raw(65534)).unwrap();
            }
            assert!(!rustix::process::geteuid().is_root());
            f()
        })
        .join()
        .unwrap()
    }

    #[test]
    fn an_unreadable_file_fails_the_archive() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("ws");
        fs::create_dir(&root).unwrap();
        // The unprivileged thread must reach the file.
        fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755)).unwrap();
        fs::set_permissions(&root, fs::Permissions::from_mode(0o755)).unwrap();
        write_file(&root.join("a.txt"), b"readable", 0o644);
        // Owned by root (mode 0600) when root, or by us with mode 0000 otherwise.
        let secret_mode = if rustix::process::geteuid().is_root() {
            0o600
        } else {
            0o000
        };
        write_file(&root.join("secret"), b"hidden", secret_mode);
        let root_buf = root.clone();
        let err = as_unprivileged(move || {
            write_workspace_tar(&root_buf, &ArchiveOptions::default(), Vec::new())
                .map(|_| ())
                .unwrap_err()
        });
        match &err {
            ArchiveError::ReadWorkspace { kind, path, source } => {
                assert_eq!(*kind, "file");
                assert_eq!(path, &root.join("secret"));
                assert_eq!(source.kind(), io::ErrorKind::PermissionDenied);
            }
            other => panic!("unexpected error {other:?}"),
        }
        let message = err.to_string();
        let want = format!(
            "cannot read workspace file {}: Permission denied",
            root.join("secret").display()
        );
        assert!(message.starts_with(&want), "{message}");
    }

    /// A tar writer over the root of `root`, ready for one more entry.
    fn writer_with_root(root: &Path) -> TarWriter<Vec<u8>> {
        let mut tar = TarWriter::new(Vec::new());
        tar.append_dir(Path::new(""), &fs::metadata(root).unwrap())
            .unwrap();
        tar
    }

    #[test]
    fn files_changing_while_archived_keep_the_archive_valid() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("ws");
        fs::create_dir(&root).unwrap();
        let abs = root.join("f");
        let change = |before: &[u8], after: &[u8], touch: bool| {
            write_file(&abs, before, 0o644);
            let mut file = File::open(&abs).unwrap();
            let stale = file.metadata().unwrap();
            fs::write(&abs, after).unwrap();
            if touch {
                set_mtime(&abs, 1_000_000_000);
            }
            let mut tar = writer_with_root(&root);
            tar.append_open_file(&abs, Path::new("f"), &mut file, &stale)
                .unwrap();
            let (out, stats) = tar.finish().unwrap();
            let listing = list_tar(&out[..]).unwrap();
            assert_eq!(
                (listing.files, listing.file_bytes),
                (1, before.len() as u64)
            );
            assert_eq!(gnu_list(&out), [&b"./"[..], b"f"]);
            let dest = tempfile::tempdir().unwrap();
            extract_tar(&out[..], dest.path()).unwrap();
            (fs::read(dest.path().join("f")).unwrap(), stats.changed)
        };
        let changed = |what: &str| {
            vec![ChangedEntry {
                path: "f".into(),
                change: what.into(),
            }]
        };

        let (data, report) = change(&[b'x'; 10_000], &[b'y'; 100], false);
        assert_eq!(report, changed("shrank while archived"));
        assert_eq!(&data[..100], &[b'y'; 100]);
        assert!(data[100..].iter().all(|b| *b == 0) && data.len() == 10_000);

        let (data, report) = change(&[b'x'; 100], &[b'y'; 10_000], false);
        assert_eq!(report, changed("grew while archived"));
        assert_eq!(data, [b'y'; 100]);

        let (data, report) = change(b"same size", b"SAME SIZE", true);
        assert_eq!(report, changed("modified while archived"));
        assert_eq!(data, b"SAME SIZE");

        // Gone between listing and opening: recorded, not archived.
        let mut tar = writer_with_root(&root);
        tar.append_path_file(&root.join("gone"), Path::new("gone"))
            .unwrap();
        let (out, stats) = tar.finish().unwrap();
        assert_eq!(
            stats.changed,
            vec![ChangedEntry {
                path: "gone".into(),
                change: "vanished".into()
            }]
        );
        assert_eq!(stats.files, 0);
        assert_eq!(tar_names(&out), [b"./"]);
    }

    /// A tar stream built header by header, with names written raw to bypass any checks.
    #[derive(Default)]
    struct Raw(Vec<u8>);

    impl Raw {
        fn entry(mut self, name: &[u8], kind: EntryType, link: &[u8], data: &[u8]) -> Self {
            let mut header = Header::new_gnu();
            set_field(&mut header.as_old_mut().name, name);
            set_field(&mut header.as_old_mut().linkname, link);
            header.set_mode(if kind == EntryType::Directory {
                0o755
            } else {
                0o644
            });
            header.set_uid(0);
            header.set_gid(0);
            header.set_mtime(1_600_000_000);
            header.set_size(data.len() as u64);
            header.set_entry_type(kind);
            header.set_cksum();
            self.0.extend_from_slice(header.as_bytes());
            self.0.extend_from_slice(data);
            self.0
                .extend_from_slice(&ZEROS[..pad_len(data.len() as u64)]);
            self
        }
        fn file(self, name: &[u8], data: &[u8]) -> Self {
            self.entry(name, EntryType::Regular, b"", data)
        }
        fn end(mut self) -> Vec<u8> {
            self.0.extend_from_slice(&[0; 1024]);
            self.0
        }
    }

    #[test]
    fn malicious_archives_are_refused_and_write_nothing_outside() {
        let outer = tempfile::tempdir().unwrap();
        let mut case = 0;
        let mut refuse = |build: &dyn Fn(&Path) -> Raw, reason: &str, outside: &[&str]| {
            case += 1;
            let base = outer.path().join(format!("case{case}"));
            fs::create_dir_all(base.join("outside")).unwrap();
            let dest = fresh_dest(&base, "dest");
            let tarball = build(&base).end();
            assert!(
                list_tar(&tarball[..]).is_ok(),
                "case {case} is a well-formed archive"
            );
            match extract_tar(&tarball[..], &dest) {
                Err(ArchiveError::UnsafeEntry { reason: got, .. }) => {
                    assert!(
                        got.contains(reason),
                        "case {case}: `{got}` lacks `{reason}`"
                    )
                }
                other => panic!("case {case}: {other:?}"),
            }
            for p in outside {
                assert!(
                    fs::symlink_metadata(base.join(p)).is_err(),
                    "case {case}: {p} exists"
                );
            }
            let mut left: Vec<_> = fs::read_dir(&base)
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            left.sort();
            assert_eq!(left, ["dest", "outside"], "case {case}");
            assert_eq!(
                fs::read_dir(base.join("outside")).unwrap().count(),
                0,
                "case {case}"
            );
        };

        refuse(
            &|_| Raw::default().file(b"../evil", b"x"),
            "parent directory (..)",
            &["evil"],
        );
        refuse(
            &|_| Raw::default().file(b"a/../../evil", b"x"),
            "parent directory (..)",
            &["evil"],
        );
        refuse(
            &|base| Raw::default().file(base.join("abs-evil").as_os_str().as_bytes(), b"x"),
            "absolute path",
            &["abs-evil"],
        );
        refuse(
            &|base| {
                Raw::default()
                    .entry(
                        b"link",
                        EntryType::Symlink,
                        base.join("outside").as_os_str().as_bytes(),
                        b"",
                    )
                    .file(b"link/pwned", b"x")
            },
            "would be written through symlink `link`",
            &["outside/pwned"],
        );
        refuse(
            &|_| {
                Raw::default()
                    .entry(b"l", EntryType::Symlink, b"..", b"")
                    .file(b"l/evil", b"x")
            },
            "would be written through symlink `l`",
            &["evil"],
        );
        refuse(
            &|base| {
                Raw::default()
                    .entry(b"a/", EntryType::Directory, b"", b"")
                    .entry(
                        b"a/l",
                        EntryType::Symlink,
                        base.join("outside").as_os_str().as_bytes(),
                        b"",
                    )
                    .entry(b"a/l/x/", EntryType::Directory, b"", b"")
            },
            "would be written through symlink `a/l`",
            &["outside/x"],
        );
        refuse(
            &|_| Raw::default().entry(b"h", EntryType::Link, b"../../etc/passwd", b""),
            "outside the archive",
            &[],
        );
        refuse(
            &|_| Raw::default().entry(b"h", EntryType::Link, b"/etc/passwd", b""),
            "outside the archive",
            &[],
        );
        refuse(
            &|_| Raw::default().entry(b"h", EntryType::Link, b"missing", b""),
            "not a regular file extracted earlier",
            &[],
        );
        refuse(
            &|_| {
                Raw::default()
                    .entry(b"s", EntryType::Symlink, b"/etc/passwd", b"")
                    .entry(b"h", EntryType::Link, b"s", b"")
            },
            "not a regular file extracted earlier",
            &[],
        );
        refuse(
            &|_| Raw::default().entry(b"dev", EntryType::Char, b"", b""),
            "device file",
            &[],
        );
        refuse(
            &|_| Raw::default().entry(b"blk", EntryType::Block, b"", b""),
            "device file",
            &[],
        );
        refuse(
            &|_| Raw::default().entry(b"fifo", EntryType::Fifo, b"", b""),
            "fifo",
            &[],
        );
        refuse(
            &|_| {
                Raw::default()
                    .entry(b"d/", EntryType::Directory, b"", b"")
                    .file(b"d", b"x")
            },
            "duplicate entry",
            &[],
        );
        refuse(
            &|_| {
                Raw::default()
                    .file(b"f", b"x")
                    .entry(b"f/", EntryType::Directory, b"", b"")
            },
            "duplicate entry",
            &[],
        );
        refuse(
            &|_| {
                Raw::default()
                    .entry(b"s", EntryType::Symlink, b"t", b"")
                    .file(b"s", b"x")
            },
            "duplicate entry",
            &[],
        );
        refuse(
            &|_| Raw::default().file(b"f", b"x").file(b"f/g", b"x"),
            "is a regular file",
            &[],
        );
    }

    #[test]
    fn benign_duplicates_and_implied_directories_extract() {
        let tarball = Raw::default()
            .file(b"./f", b"one")
            .file(b"f", b"two")
            .entry(b"d/", EntryType::Directory, b"", b"")
            .entry(b"d", EntryType::Directory, b"", b"")
            .file(b"x/y//z", b"implied parents")
            .entry(b"x/link", EntryType::Link, b"./x/y/z", b"")
            .end();
        let dest = tempfile::tempdir().unwrap();
        let stats = extract_tar(&tarball[..], dest.path()).unwrap();
        assert_eq!(fs::read(dest.path().join("f")).unwrap(), b"two");
        assert_eq!(
            fs::read(dest.path().join("x/link")).unwrap(),
            b"implied parents"
        );
        assert_eq!(
            fs::metadata(dest.path().join("x")).unwrap().mode() & 0o7777,
            0o700
        );
        assert_eq!(
            fs::metadata(dest.path().join("d")).unwrap().mode() & 0o7777,
            0o755
        );
        assert_eq!((stats.files, stats.directories, stats.hardlinks), (3, 2, 1));

        // The destination must be an empty real directory.
        let err = extract_tar(&tarball[..], dest.path()).unwrap_err();
        assert!(matches!(err, ArchiveError::Destination { .. }), "{err}");
    }

    #[test]
    fn truncated_or_corrupt_archives_are_errors() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("ws");
        fs::create_dir(&root).unwrap();
        write_file(&root.join("f"), &[7; 1000], 0o644);
        let (tarball, _) = archive(&root, &[]);
        // ./ header, f header, 1000 bytes of data padded to 1024, two zero blocks.
        assert_eq!(tarball.len(), 512 + 512 + 1024 + 1024);
        assert_eq!(list_tar(&tarball[..]).unwrap().file_bytes, 1000);

        let check = |bad: &[u8], what: &str| {
            let err = list_tar(bad).unwrap_err();
            assert!(matches!(err, ArchiveError::ReadTar { .. }), "{what}: {err}");
            let dest = tempfile::tempdir().unwrap();
            let err = extract_tar(bad, dest.path()).unwrap_err();
            assert!(matches!(err, ArchiveError::ReadTar { .. }), "{what}: {err}");
            err.to_string()
        };
        let msg = check(&tarball[..1024 + 500], "cut in the data");
        assert!(
            msg.starts_with("cannot read tar stream in entry `f`"),
            "{msg}"
        );
        check(&tarball[..1024 + 1000], "cut in the padding");
        check(&tarball[..512 + 200], "cut in a header");
        let msg = check(&tarball[..2048], "no end-of-archive marker");
        assert!(msg.contains("without the end-of-archive marker"), "{msg}");
        check(&tarball[..2048 + 512], "one zero block");
        check(&tarball[..0], "empty");

        let mut flipped = tarball.clone();
        flipped[512 + 3] ^= 0x20;
        let msg = check(&flipped, "flipped header byte");
        assert!(msg.contains("checksum"), "{msg}");

        let mut trailing = tarball.clone();
        trailing.extend_from_slice(b"garbage");
        check(&trailing, "data after the end");

        // GNU tar's record padding after the marker is fine.
        let mut padded = tarball.clone();
        padded.resize(10_240, 0);
        assert_eq!(list_tar(&padded[..]).unwrap().files, 1);
    }

    fn name_strategy() -> impl Strategy<Value = Vec<u8>> {
        let byte =
            prop::sample::select(vec![b'a', b'b', b'.', b'-', b' ', b'\\', 0xff, 0xc3, 0xa9]);
        prop_oneof![
            8 => prop::collection::vec(byte, 1..8),
            1 => (95usize..130).prop_map(|n| vec![b'L'; n]),
        ]
        .prop_filter("not . or ..", |n| n != b"." && n != b"..")
    }

    #[derive(Debug, Clone)]
    enum GenKind {
        Dir(u32),
        File(usize, u8, u32),
        Symlink(Vec<u8>),
        HardLink(prop::sample::Index),
    }

    fn kind_strategy() -> impl Strategy<Value = GenKind> {
        let mode = prop::sample::select(vec![0o644u32, 0o600, 0o755, 0o640, 0o750, 0o4755]);
        prop_oneof![
            2 => mode.clone().prop_map(|m| GenKind::Dir(m | 0o700)),
            4 => (0usize..70_000, any::<u8>(), mode).prop_map(|(n, seed, m)| GenKind::File(n, seed, m)),
            1 => prop::collection::vec(prop::sample::select(vec![b'a', b'/', b'.', 0xfe]), 1..120)
                .prop_map(GenKind::Symlink),
            1 => any::<prop::sample::Index>().prop_map(GenKind::HardLink),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        #[test]
        fn random_trees_round_trip(
            spec in prop::collection::vec((any::<prop::sample::Index>(), name_strategy(), kind_strategy()), 0..20)
        ) {
            let tmp = tempfile::tempdir().unwrap();
            let root = tmp.path().join("ws");
            fs::create_dir(&root).unwrap();
            let mut dirs = vec![root.clone()];
            let mut files: Vec<PathBuf> = Vec::new();
            for (parent, name, kind) in spec {
                let p = parent.get(&dirs).join(OsStr::from_bytes(&name));
                if fs::symlink_metadata(&p).is_ok() {
                    continue;
                }
                match kind {
                    GenKind::Dir(mode) => {
                        fs::create_dir(&p).unwrap();
                        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
                        dirs.push(p);
                    }
                    GenKind::File(len, seed, mode) => {
                        let data: Vec<u8> = (0..len).map(|i| seed.wrapping_add((i % 251) as u8)).collect();
                        write_file(&p, &data, mode);
                        files.push(p);
                    }
                    GenKind::Symlink(target) => {
                        std::os::unix::fs::symlink(OsStr::from_bytes(&target), &p).unwrap();
                    }
                    GenKind::HardLink(which) if !files.is_empty() => {
                        fs::hard_link(which.get(&files), &p).unwrap();
                    }
                    GenKind::HardLink(_) => {}
                }
            }
            age_tree(&root);
            let source = snapshot(&root);
            let (tarball, stats) = archive(&root, &[]);
            prop_assert!(stats.changed.is_empty() && stats.skipped.is_empty());
            prop_assert_eq!(tar_names(&tarball), expected_names(&root));
            let dest = fresh_dest(tmp.path(), "dest");
            extract_tar(&tarball[..], &dest).unwrap();
            prop_assert_eq!(snapshot(&dest), source);
        }
    }
}
