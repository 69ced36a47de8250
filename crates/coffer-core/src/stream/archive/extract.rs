//! Safe extraction of a tar stream into an empty staging directory.

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::fs::{self, OpenOptions};
use std::hash::{BuildHasher, RandomState};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use tar::{EntryType, Header};

use super::list::{copy_entry_data, read_entries};
use super::{ArchiveError, lossy_bytes};

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
/// [`list_tar`](super::list_tar), so truncation and corruption are errors too.
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
    crate::util::fsutil::create_private_dir(path)
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
mod tests;
