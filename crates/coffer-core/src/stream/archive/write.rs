//! Writing the workspace as a tar stream: the walk, hard links, GNU long names, and what
//! changed while it was read.

use std::collections::HashMap;
use std::fs::{self, File, Metadata, OpenOptions};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tar::{Builder, EntryType, Header};

use super::excludes::Excludes;
use super::{ArchiveError, BUF_SIZE, ZEROS, pad_len, set_field};

/// Width of the name and link-name fields of a tar header.
const NAME_FIELD: usize = 100;
/// The name GNU tar gives its long-name and long-link extension entries.
const LONG_LINK_NAME: &[u8] = b"././@LongLink";

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
/// documentation](super) for the layout) and returns `out` with what was archived.
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

#[cfg(test)]
mod tests;
