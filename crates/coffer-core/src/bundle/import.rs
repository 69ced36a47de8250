//! A bundle read into the backup root, all or nothing (see [`crate::bundle`]).
//!
//! The members are written into `<root>/.coffer-staging-import-<NAME>` (coffer's staging
//! convention: listings skip it, prune removes it once abandoned). Each is checked as it
//! arrives: its path (one backup directory, plain file names, no `..`, no absolute path),
//! its type (regular files only), that it is expected and not a duplicate, and, for a coffer
//! bundle, its size and SHA-256 against the manifest that came first. After the end marker
//! the staging directory is verified as `coffer verify` does (signatures, `SHA256SUMS`,
//! decoded hashes, dump completeness, tar listing), then renamed into place without
//! replacing anything. Any failure removes the staging directory.
//!
//! A gzip-compressed input is taken for a `.tar.gz` of a backup directory as the shell
//! scripts' admin page accepted them (`tar -czf B.tar.gz -C ROOT YYYY-MM-DD-HHMMSS`): its
//! members may come in any order, and before the manifest only the scripts' file names
//! are accepted.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::BundleError;
use super::peek::{Check, PeekWriter};
use super::ustar::{CopyError, Kind, Member, Reader};
use crate::check::verify::{self, Outcome};
use crate::context::RunContext;
use crate::format::manifest::{
    self, AnyManifest, LegacyManifest, MANIFEST_CAP, MANIFEST_FILE, SUMS_FILE,
};
use crate::format::names::{self, BackupKind, STAGING_PREFIX};
use crate::format::signing::{MAX_SIGNATURE_BYTES, SIGNED_FILES, SignaturePolicy};
use crate::root::catalog::{self, BackupEntry};
use crate::root::lock::RootLock;
use crate::stream::crypto::Identities;
use crate::util::fsutil;

/// What [`Coffer::import`](crate::Coffer::import) did.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct ImportReport {
    /// The backup's name.
    pub name: String,
    /// Where it is now.
    pub path: PathBuf,
    /// Whether it is a shell-script-era backup.
    pub legacy: bool,
    /// Whether the input was gzip-compressed (a `.tar.gz`).
    pub gzip: bool,
    /// Bytes of the (uncompressed) archive read.
    pub bytes: u64,
    /// Checks that could not be made (legacy hashes, encrypted content without identity).
    pub not_checked: Vec<String>,
}

/// The staging directory an import of `name` writes into.
pub fn staging_dir(root: &Path, name: &str) -> PathBuf {
    root.join(format!("{STAGING_PREFIX}import-{name}"))
}

/// Reads a bundle from `input` into `root` (created if missing), holding the root's lock.
/// `origin` names the input in messages (a path, or `standard input`). `identities` lets
/// verification check encrypted content; `signatures` says which signatures the backup
/// needs. Once the context's cancel flag is set, stops at the next chunk.
pub fn import(
    input: &mut dyn Read,
    origin: &str,
    root: &Path,
    identities: Option<&Identities>,
    signatures: &SignaturePolicy,
    ctx: &RunContext<'_>,
) -> Result<ImportReport, BundleError> {
    import_checked(
        input,
        origin,
        root,
        (identities, signatures),
        &mut |_| Ok(()),
        ctx,
    )
}

/// What [`import_checked`] shows its caller before reading on.
#[derive(Debug)]
pub enum Arrived<'a> {
    /// The manifest, before the first artifact's data: `staging` holds it (and its
    /// signature, when that followed it) and nothing else yet.
    Manifest {
        /// The backup's name.
        name: &'a str,
        /// The staging directory.
        staging: &'a Path,
    },
    /// The first bytes (its age header, and up to 64 KiB) of an artifact the manifest
    /// records as encrypted, before the rest of it is read.
    EncryptedStart {
        /// The artifact's file name.
        file: &'a str,
        /// Its first bytes.
        bytes: &'a [u8],
    },
}

/// What [`import_checked`] calls with each [`Arrived`]. An error stops the import there,
/// nothing more of the input read, and is returned as is.
pub type BeforeData<'f> = dyn FnMut(Arrived<'_>) -> Result<(), BundleError> + 'f;

/// [`import`], calling `before_data` once the manifest has arrived and before any artifact
/// byte is read (for a `.tar.gz` whose manifest comes after data, it is not called).
pub fn import_checked(
    input: &mut dyn Read,
    origin: &str,
    root: &Path,
    (identities, signatures): (Option<&Identities>, &SignaturePolicy),
    before_data: &mut BeforeData<'_>,
    ctx: &RunContext<'_>,
) -> Result<ImportReport, BundleError> {
    // A signal may surface as a read error of the input (it stops a wait for data): it is
    // still an interruption, whatever step noticed it.
    import_unless_stopped(
        input,
        origin,
        root,
        identities,
        signatures,
        before_data,
        ctx,
    )
    .map_err(|e| match (ctx.cancel().signal(), e) {
        (_, e @ BundleError::RefusedBeforeData(_)) => e,
        (Some(signal), _) => BundleError::Interrupted {
            operation: "import",
            signal,
        },
        (None, e) => e,
    })
}

fn import_unless_stopped(
    input: &mut dyn Read,
    origin: &str,
    root: &Path,
    identities: Option<&Identities>,
    signatures: &SignaturePolicy,
    before_data: &mut BeforeData<'_>,
    ctx: &RunContext<'_>,
) -> Result<ImportReport, BundleError> {
    fsutil::create_private_dir_all(root)
        .map_err(|e| BundleError::io("create the backup root", root, e))?;
    let _lock = RootLock::acquire(root, "import")?;
    let mut buffered = BufReader::with_capacity(1 << 20, input);
    let head = buffered
        .fill_buf()
        .map_err(|e| BundleError::io("read", origin, e))?;
    let gzip = head.starts_with(&[0x1f, 0x8b]);
    let source: Box<dyn Read + '_> = if gzip {
        Box::new(flate2::read::MultiGzDecoder::new(buffered))
    } else {
        Box::new(buffered)
    };
    let mut job = Import {
        origin: origin.to_string(),
        root: root.to_path_buf(),
        gzip,
        reader: Reader::new(source),
        ctx,
        name: None,
        staging: None,
        manifest: None,
        seen: BTreeSet::new(),
        received: BTreeMap::new(),
        data_started: false,
    };
    let result = job.run(identities, signatures, before_data);
    if result.is_err()
        && let Some(staging) = &job.staging
    {
        let _ = std::fs::remove_dir_all(staging);
    }
    result
}

struct Import<'a, 'c> {
    origin: String,
    root: PathBuf,
    gzip: bool,
    reader: Reader<Box<dyn Read + 'a>>,
    ctx: &'a RunContext<'c>,
    /// The backup directory, from the first member.
    name: Option<String>,
    /// Created once the name is known; removed on any failure.
    staging: Option<PathBuf>,
    manifest: Option<AnyManifest>,
    /// Every member path seen, to refuse duplicates.
    seen: BTreeSet<String>,
    /// Artifacts written: file → (size, SHA-256).
    received: BTreeMap<String, (u64, String)>,
    /// Whether an artifact member has been reached (the caller's check ran before it).
    data_started: bool,
}

impl Import<'_, '_> {
    fn damaged(&self, detail: impl Into<String>) -> BundleError {
        BundleError::Damaged {
            origin: self.origin.clone(),
            detail: detail.into(),
        }
    }

    fn run(
        &mut self,
        identities: Option<&Identities>,
        signatures: &SignaturePolicy,
        before_data: &mut BeforeData<'_>,
    ) -> Result<ImportReport, BundleError> {
        let mut first = true;
        while let Some(member) = self.reader.next().map_err(|e| self.damaged(e))? {
            self.member(member, first, before_data)?;
            first = false;
        }
        let (Some(name), Some(staging)) = (self.name.clone(), self.staging.clone()) else {
            return Err(self.damaged("it holds no backup (an empty archive)"));
        };
        let Some(manifest) = self.manifest.clone() else {
            return Err(self.damaged(format!("it has no {name}/{MANIFEST_FILE}")));
        };
        if let AnyManifest::Coffer(m) = &manifest {
            let missing: Vec<&str> = m
                .artifacts
                .iter()
                .filter(|a| !self.received.contains_key(&a.file))
                .map(|a| a.file.as_str())
                .collect();
            if !missing.is_empty() {
                return Err(self.damaged(format!(
                    "it lacks {} listed in its manifest",
                    missing.join(", ")
                )));
            }
        }
        fsutil::sync_dir(&staging).map_err(|e| BundleError::io("sync", &staging, e))?;
        self.ctx
            .transfer(&format!("{name}: verifying the imported copy"));
        let mut entry = BackupEntry::read(&staging);
        entry.name = name.clone();
        let report = verify::verify_signed(&entry, identities, signatures);
        let failed = report.failures();
        if !failed.is_empty() {
            return Err(self.damaged(format!(
                "the backup in it fails verification: {}",
                failed.join("; ")
            )));
        }
        if let Some(signal) = self.ctx.cancel().signal() {
            return Err(BundleError::Interrupted {
                operation: "import",
                signal,
            });
        }
        let target = self.root.join(&name);
        self.publish(&staging, &target, &name)?;
        Ok(ImportReport {
            name,
            path: target,
            legacy: matches!(manifest, AnyManifest::Legacy(_)),
            gzip: self.gzip,
            bytes: self.reader.offset(),
            not_checked: report
                .checks
                .iter()
                .filter(|c| c.outcome == Outcome::NotChecked)
                .map(|c| format!("{}: {}", c.subject, c.detail))
                .collect(),
        })
    }

    /// Checks one member and writes it into the staging directory.
    fn member(
        &mut self,
        member: Member,
        first: bool,
        before_data: &mut BeforeData<'_>,
    ) -> Result<(), BundleError> {
        let (name, file) = split_path(&member.path).map_err(|e| self.damaged(e))?;
        match &self.name {
            Some(known) if *known != name => {
                return Err(self.damaged(format!(
                    "it holds more than one backup directory ({known} and {name}); a bundle holds one"
                )));
            }
            Some(_) => {}
            None => self.start(&name)?,
        }
        let shown = match &file {
            Some(f) => format!("{name}/{f}"),
            None => format!("{name}/"),
        };
        if !self.seen.insert(shown.clone()) {
            return Err(self.damaged(format!("member {shown} appears twice")));
        }
        let file = match (member.kind, file) {
            (Kind::Dir, None) if first => return Ok(()),
            (Kind::Dir, _) => {
                return Err(self.damaged(format!(
                    "member {shown} is a directory where a bundle has none (only {name}/, first)"
                )));
            }
            (Kind::File, None) => {
                return Err(self.damaged(format!(
                    "member {shown} is a file where the backup directory belongs"
                )));
            }
            (Kind::File, Some(f)) => f,
        };
        if self.manifest.is_none() && !self.gzip && file != MANIFEST_FILE {
            return Err(self.damaged(format!(
                "its first file is {shown}, not {name}/{MANIFEST_FILE}: a bundle starts with its manifest (is the manifest missing?)"
            )));
        }
        let staging = self.staging.clone().expect("staging exists once named");
        let dest = staging.join(&file);
        let small_cap = if file == MANIFEST_FILE {
            Some(MANIFEST_CAP)
        } else if file == SUMS_FILE {
            Some(crate::format::sums::SUMS_CAP)
        } else if SIGNED_FILES.iter().any(|(_, sig)| *sig == file) {
            Some(MAX_SIGNATURE_BYTES)
        } else {
            None
        };
        if let Some(cap) = small_cap {
            if member.size > cap {
                return Err(self.damaged(format!(
                    "member {shown} is {} bytes, more than the {cap} coffer reads",
                    member.size
                )));
            }
            let bytes = self
                .reader
                .read_small(member.size)
                .map_err(|e| self.damaged(e))?;
            if file == MANIFEST_FILE {
                let parsed = manifest::parse_bytes(&bytes, &shown)
                    .map_err(|e| self.damaged(e.to_string()))?;
                self.accept_manifest(&name, parsed)?;
            }
            write_file(&dest, &bytes).map_err(|e| BundleError::io("write", &dest, e))?;
            return Ok(());
        }
        // An artifact: the caller's check on the manifest comes first, then the manifest
        // (or, before it in a .tar.gz, the scripts' names) must expect it, at the size the
        // header gives, before any of it is read.
        if !std::mem::replace(&mut self.data_started, true) && self.manifest.is_some() {
            before_data(Arrived::Manifest {
                name: &name,
                staging: &staging,
            })?;
        }
        let expected = self.expected(&name, &file, member.size, &shown)?;
        self.check_space(member.size, &format!("member {shown}"))?;
        self.ctx.transfer(&format!("{name}: importing {file}"));
        let encrypted = match &self.manifest {
            Some(AnyManifest::Coffer(m)) => m
                .artifacts
                .iter()
                .any(|a| a.file == file && a.encryption.is_some()),
            _ => false,
        };
        let mut peek = |bytes: &[u8]| before_data(Arrived::EncryptedStart { file: &file, bytes });
        let check: Option<Check<'_>> = encrypted.then_some(&mut peek);
        let (size, sha256) = self.copy_artifact(&dest, member.size, check)?;
        if let Some(want) = expected
            && !want.eq_ignore_ascii_case(&sha256)
        {
            return Err(self.damaged(format!(
                "member {shown}: sha256 is {sha256}, the manifest says {want}"
            )));
        }
        self.received.insert(file, (size, sha256));
        Ok(())
    }

    /// The first member names the backup: refuse a name taken in the root, then create
    /// the staging directory.
    fn start(&mut self, name: &str) -> Result<(), BundleError> {
        let target = self.root.join(name);
        if std::fs::symlink_metadata(&target).is_ok() {
            return Err(BundleError::Exists {
                origin: self.origin.clone(),
                name: name.to_string(),
                root: self.root.clone(),
            });
        }
        let staging = staging_dir(&self.root, name);
        if std::fs::symlink_metadata(&staging).is_ok() {
            // Left by an import that was killed (we hold the lock): removed only when it
            // carries coffer's marker; anything else is not ours to delete.
            if !std::fs::symlink_metadata(&staging).is_ok_and(|m| m.is_dir())
                || !fsutil::has_staging_marker(&staging)
            {
                return Err(BundleError::io(
                    "use (it exists and is not a staging directory coffer marked; move it away)",
                    &staging,
                    std::io::Error::from(std::io::ErrorKind::AlreadyExists),
                ));
            }
            std::fs::remove_dir_all(&staging)
                .map_err(|e| BundleError::io("remove", &staging, e))?;
        }
        fsutil::create_staging_dir(&staging).map_err(|e| BundleError::io("create", &staging, e))?;
        self.staging = Some(staging);
        self.name = Some(name.to_string());
        Ok(())
    }

    /// Takes the manifest: its artifacts must be ones coffer or the scripts write for a
    /// backup of this name, and what arrived before it (a .tar.gz) must match it.
    fn accept_manifest(&mut self, name: &str, m: AnyManifest) -> Result<(), BundleError> {
        let kind = names::parse_name(name).map_or(BackupKind::Legacy, |p| p.kind);
        let known = catalog::known_artifacts(kind, &m).map_err(|e| self.damaged(e))?;
        for (file, (size, sha)) in &self.received {
            if !known.contains(file) {
                return Err(self.damaged(format!(
                    "member {name}/{file} is not an artifact of its manifest"
                )));
            }
            if let AnyManifest::Coffer(c) = &m
                && let Some(a) = c.artifacts.iter().find(|a| a.file == *file)
                && (a.size != *size || !a.sha256.eq_ignore_ascii_case(sha))
            {
                return Err(self.damaged(format!(
                    "member {name}/{file} does not match its manifest's size and sha256"
                )));
            }
        }
        // The whole backup must fit before its first byte is written, not only each member.
        if let AnyManifest::Coffer(c) = &m {
            let total = c
                .artifacts
                .iter()
                .fold(0u64, |sum, a| sum.saturating_add(a.size));
            self.check_space(
                total,
                &format!("backup {name} (its artifacts, per its manifest)"),
            )?;
        }
        self.manifest = Some(m);
        Ok(())
    }

    /// The SHA-256 the manifest expects of an artifact (`None`: no hash to compare, a
    /// legacy backup or a .tar.gz before its manifest); refuses an unexpected one.
    fn expected(
        &self,
        name: &str,
        file: &str,
        size: u64,
        shown: &str,
    ) -> Result<Option<String>, BundleError> {
        let unexpected = || {
            self.damaged(format!(
                "member {shown} is not a file of a coffer or shell-script backup"
            ))
        };
        match &self.manifest {
            Some(AnyManifest::Coffer(m)) => {
                let a = m.artifacts.iter().find(|a| a.file == file).ok_or_else(|| {
                    self.damaged(format!(
                        "member {shown} is not listed in {name}/{MANIFEST_FILE}"
                    ))
                })?;
                if a.size != size {
                    return Err(self.damaged(format!(
                        "member {shown} is {size} bytes, the manifest says {}",
                        a.size
                    )));
                }
                Ok(Some(a.sha256.clone()))
            }
            Some(m @ AnyManifest::Legacy(_)) => {
                let kind = names::parse_name(name).map_or(BackupKind::Legacy, |p| p.kind);
                let known = catalog::known_artifacts(kind, m).map_err(|e| self.damaged(e))?;
                if known.iter().any(|k| k == file) {
                    Ok(None)
                } else {
                    Err(unexpected())
                }
            }
            None => {
                let scripts = AnyManifest::Legacy(LegacyManifest {
                    timestamp: None,
                    timestamp_raw: None,
                    alembic_head: None,
                    db_size: None,
                    workspace_path: None,
                });
                let known = catalog::known_artifacts(BackupKind::Legacy, &scripts)
                    .expect("legacy names are known");
                if known.iter().any(|k| k == file) {
                    Ok(None)
                } else {
                    Err(unexpected())
                }
            }
        }
    }

    /// Refuses a member that would not fit in the root's filesystem with a reserve left
    /// (see [`fits`]): the size comes from the (hostile) header, and filling the disk the
    /// database may share is worse than refusing up front.
    fn check_space(&self, size: u64, what: &str) -> Result<(), BundleError> {
        let Ok(st) = rustix::fs::statvfs(&self.root) else {
            return Ok(());
        };
        let available = st.f_bavail.saturating_mul(st.f_frsize);
        let total = st.f_blocks.saturating_mul(st.f_frsize);
        if fits(size, available, total) {
            return Ok(());
        }
        Err(self.damaged(format!(
            "{what} is {}, more than the {} free in {} (keeping {} free); free space or import into another root",
            crate::util::units::bytes(size),
            crate::util::units::bytes(available),
            self.root.display(),
            crate::util::units::bytes(reserve(total))
        )))
    }

    /// Streams an artifact's data into a new 0600 file, hashing it, fsynced.
    fn copy_artifact(
        &mut self,
        dest: &Path,
        size: u64,
        check: Option<Check<'_>>,
    ) -> Result<(u64, String), BundleError> {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(fsutil::FILE_MODE)
            .open(dest)
            .map_err(|e| BundleError::io("create", dest, e))?;
        let mut sink = PeekWriter::new(
            HashingWriter {
                inner: std::io::BufWriter::with_capacity(1 << 20, file),
                hasher: Sha256::new(),
            },
            check,
        );
        match self.reader.copy_data(size, &mut sink, self.ctx.cancel()) {
            Ok(()) => {}
            Err(CopyError::Source(e)) => return Err(self.damaged(e)),
            Err(CopyError::Sink(e)) => {
                return Err(sink
                    .refusal()
                    .unwrap_or_else(|| BundleError::io("write", dest, e)));
            }
            Err(CopyError::Cancelled) => {
                return Err(BundleError::Interrupted {
                    operation: "import",
                    signal: self.ctx.cancel().signal().unwrap_or(0),
                });
            }
        }
        let sink = sink.finish().map_err(|e| match e {
            Ok(io) => BundleError::io("write", dest, io),
            Err(refusal) => refusal,
        })?;
        let file = sink
            .inner
            .into_inner()
            .map_err(|e| BundleError::io("write", dest, e.into_error()))?;
        file.sync_all()
            .map_err(|e| BundleError::io("sync", dest, e))?;
        Ok((size, hex::encode(sink.hasher.finalize())))
    }

    /// Renames the verified staging directory to `target` without replacing anything.
    fn publish(&self, staging: &Path, target: &Path, name: &str) -> Result<(), BundleError> {
        std::fs::remove_file(staging.join(fsutil::STAGING_MARKER))
            .map_err(|e| BundleError::io("remove the marker from", staging, e))?;
        let renamed = rustix::fs::renameat_with(
            rustix::fs::CWD,
            staging,
            rustix::fs::CWD,
            target,
            rustix::fs::RenameFlags::NOREPLACE,
        );
        match renamed {
            Ok(()) => {}
            Err(rustix::io::Errno::EXIST) => {
                return Err(BundleError::Exists {
                    origin: self.origin.clone(),
                    name: name.to_string(),
                    root: self.root.clone(),
                });
            }
            Err(e) => {
                return Err(BundleError::io(
                    "rename the imported backup to",
                    target,
                    e.into(),
                ));
            }
        }
        fsutil::sync_dir(&self.root).map_err(|e| BundleError::io("sync", &self.root, e))
    }
}

/// A member path as `(backup name, file)`: `NAME`, `NAME/` or `NAME/FILE` (one leading
/// `./` allowed), where NAME is a backup name and FILE a plain file name.
fn split_path(path: &[u8]) -> Result<(String, Option<String>), String> {
    let text = std::str::from_utf8(path).map_err(|_| {
        format!(
            "member {:?} has a name that is not UTF-8",
            String::from_utf8_lossy(path)
        )
    })?;
    let shown = format!("{text:?}");
    if text.starts_with('/') {
        return Err(format!("member {shown} has an absolute path"));
    }
    let rel = text.strip_prefix("./").unwrap_or(text);
    let rel = rel.strip_suffix('/').unwrap_or(rel);
    let parts: Vec<&str> = rel.split('/').collect();
    if parts.contains(&"..") {
        return Err(format!("member {shown} has `..` in its path"));
    }
    if parts.iter().any(|p| p.is_empty() || *p == ".") {
        return Err(format!(
            "member {shown} is not inside one backup directory (NAME/FILE)"
        ));
    }
    let (name, file) = match parts.as_slice() {
        [name] => (*name, None),
        [name, file] => (*name, Some(*file)),
        _ => {
            return Err(format!(
                "member {shown} is nested deeper than NAME/FILE; a bundle holds one flat backup directory"
            ));
        }
    };
    if names::parse_name(name).is_none() {
        return Err(format!(
            "member {shown}: {name:?} is not a backup name (auto-…, manual-… or YYYY-MM-DD-HHMMSS)"
        ));
    }
    if let Some(f) = file
        && !names::RESERVED_FILES.contains(&f)
    {
        names::check_artifact_file_name(f).map_err(|e| format!("member {shown}: {e}"))?;
    }
    Ok((name.to_string(), file.map(str::to_string)))
}

/// What an import leaves free on the root's filesystem: 5 % of it, at most 1 GiB.
fn reserve(total: u64) -> u64 {
    (total / 20).min(1 << 30)
}

/// Whether `size` bytes fit in `available` with [`reserve`] of a `total`-byte filesystem
/// left over. Pure.
fn fits(size: u64, available: u64, total: u64) -> bool {
    size.saturating_add(reserve(total)) <= available
}

fn write_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut f = fsutil::create_private(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

struct HashingWriter<W: Write> {
    inner: W,
    hasher: Sha256,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_member_must_fit_with_a_reserve_left() {
        let gib = 1u64 << 30;
        assert!(fits(gib, 100 * gib, 200 * gib));
        assert!(fits(99 * gib, 100 * gib, 200 * gib));
        assert!(!fits(99 * gib + 1, 100 * gib, 200 * gib));
        assert!(!fits(u64::MAX, 100 * gib, 200 * gib));
        // A small filesystem keeps 5 %.
        assert!(fits(95, 100, 100) && !fits(96, 100, 100));
    }

    #[test]
    fn member_paths_table() {
        let ok = [
            ("auto-20261123T030000Z", ("auto-20261123T030000Z", None)),
            ("auto-20261123T030000Z/", ("auto-20261123T030000Z", None)),
            (
                "./2025-06-01-030000/postgres.sql.gz",
                ("2025-06-01-030000", Some("postgres.sql.gz")),
            ),
            (
                "manual-20261123T030000Z/manifest.json",
                ("manual-20261123T030000Z", Some("manifest.json")),
            ),
        ];
        for (path, (name, file)) in ok {
            assert_eq!(
                split_path(path.as_bytes()).unwrap(),
                (name.to_string(), file.map(String::from)),
                "{path}"
            );
        }
        let bad = [
            ("/auto-20261123T030000Z/x", "absolute"),
            ("auto-20261123T030000Z/../x", "`..`"),
            ("../auto-20261123T030000Z/x", "`..`"),
            ("auto-20261123T030000Z//x", "not inside"),
            ("auto-20261123T030000Z/a/b", "nested"),
            ("exports/x", "not a backup name"),
            ("auto-20261123T030000Z/x\ny", "control character"),
            (".", "not inside"),
        ];
        for (path, want) in bad {
            let e = split_path(path.as_bytes()).unwrap_err();
            assert!(e.contains(want), "{path}: {e}");
        }
        assert!(
            split_path(b"auto-20261123T030000Z/\xff")
                .unwrap_err()
                .contains("UTF-8")
        );
    }
}
