//! Checking a backup without restoring it: manifest, `SHA256SUMS`, each artifact's stored
//! and uncompressed size and SHA-256 (decrypting and decompressing to the end), the dump's
//! completeness and row counts, and a clean tar listing.
//!
//! Legacy shell-script backups have no hashes: they get every check that is possible (gzip
//! integrity, tar listing, dump completeness, manifest keys) and the report says, one line
//! each, what could not be checked.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::format::manifest::{self, AnyManifest, Artifact, ArtifactRole, Manifest};
use crate::format::signing::{SignaturePolicy, UNSIGNED_REFUSED, Verdict};
use crate::hint::Hint;
use crate::root::catalog::{self, BackupEntry, EntryStatus};
use crate::stream::archive::{self, TarListing};
use crate::stream::artifact::{ArtifactDigests, ArtifactError, ArtifactReader};
use crate::stream::crypto::Identities;
use crate::stream::digest::{self, StreamDigest};
use crate::stream::dump_scan::{DumpFacts, DumpScanner};
use crate::util::units;

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The check passed.
    Pass,
    /// The check failed: the backup cannot be trusted.
    Fail,
    /// The check could not be made (legacy backup, no identity); not a failure.
    NotChecked,
}

/// One line of a verification report.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct Check {
    /// What was checked, e.g. `postgres.sql.gz: stored size and sha256`.
    pub subject: String,
    /// Pass, fail or not checked.
    pub outcome: Outcome,
    /// What was found, or why it failed or could not be checked.
    pub detail: String,
    /// The caller's choice that would let this check pass or run (e.g. an identity for
    /// this run), for the front end to word. Not part of the JSON report.
    #[serde(skip)]
    pub hint: Option<Hint>,
}

impl Check {
    pub(crate) fn new(
        subject: impl Into<String>,
        outcome: Outcome,
        detail: impl Into<String>,
    ) -> Check {
        Check {
            subject: subject.into(),
            outcome,
            detail: detail.into(),
            hint: None,
        }
    }

    /// This check with `hint`.
    fn hinted(mut self, hint: Option<Hint>) -> Check {
        self.hint = hint;
        self
    }
}

/// Everything verification found about one backup.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct VerifyReport {
    /// The backup's directory name.
    pub name: String,
    /// Its directory.
    pub path: PathBuf,
    /// Whether it is a shell-script-era backup or a flat dump file (no hashes to check).
    pub legacy: bool,
    /// The checks, in order.
    pub checks: Vec<Check>,
}

impl VerifyReport {
    /// True when no check failed (checks that could not be made do not count).
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.outcome != Outcome::Fail)
    }

    /// The failed checks, one `subject: detail` line each.
    pub fn failures(&self) -> Vec<String> {
        self.checks
            .iter()
            .filter(|c| c.outcome == Outcome::Fail)
            .map(|c| format!("{}: {}", c.subject, c.detail))
            .collect()
    }
}

/// Verifies one backup. `identities` is needed to check the content of encrypted
/// artifacts; without it only their stored hashes are checked.
pub fn verify(entry: &BackupEntry, identities: Option<&Identities>) -> VerifyReport {
    let mut report = VerifyReport {
        name: entry.name.clone(),
        path: entry.path.clone(),
        legacy: matches!(entry.manifest, Some(AnyManifest::Legacy(_))),
        checks: Vec::new(),
    };
    match &entry.manifest {
        Some(AnyManifest::Coffer(m)) => verify_coffer(entry, m, identities, &mut report.checks),
        Some(AnyManifest::Legacy(_)) => verify_legacy(entry, identities, &mut report.checks),
        None => {
            let reason = match &entry.status {
                EntryStatus::Incomplete(r) | EntryStatus::Unreadable(r) => r.clone(),
                _ => "no manifest".into(),
            };
            report.checks.push(Check::new(
                manifest::MANIFEST_FILE,
                Outcome::Fail,
                format!("{reason}: this is not a complete backup"),
            ));
        }
    }
    report
}

/// Verifies one backup as [`verify`] does, plus its signatures under `signatures`: a line
/// `signature` right after the manifest's, failing when the policy refuses the backup
/// (unsigned while trusted keys are configured, or a signature that does not verify).
pub fn verify_signed(
    entry: &BackupEntry,
    identities: Option<&Identities>,
    signatures: &SignaturePolicy,
) -> VerifyReport {
    let mut report = verify(entry, identities);
    if let Some(check) = signature_check(entry, signatures) {
        let at = report.checks.len().min(1);
        report.checks.insert(at, check);
    }
    report
}

/// The `signature` line of a report: the policy's judgement of the backup's signatures.
/// `None` when signing is not in use at all (no key configured, no signature present).
pub fn signature_check(entry: &BackupEntry, signatures: &SignaturePolicy) -> Option<Check> {
    let judgement = signatures.judge(&entry.path, &entry.name, entry.manifest.as_ref());
    if !signatures.in_use() && !judgement.signed {
        return None;
    }
    let outcome = match judgement.verdict {
        Verdict::Verified => Outcome::Pass,
        Verdict::NotChecked => Outcome::NotChecked,
        Verdict::Refused => Outcome::Fail,
    };
    // Only an unsigned backup may be let through for one run; a bad signature never.
    let hint = (judgement.detail == UNSIGNED_REFUSED).then_some(Hint::AllowUnsigned);
    Some(Check::new("signature", outcome, judgement.detail).hinted(hint))
}

fn verify_coffer(
    entry: &BackupEntry,
    m: &Manifest,
    identities: Option<&Identities>,
    checks: &mut Vec<Check>,
) {
    checks.push(Check::new(
        manifest::MANIFEST_FILE,
        Outcome::Pass,
        format!(
            "format {}, {} backup made {} by coffer {}, {} artifact(s)",
            m.format,
            m.kind,
            m.created_at.format("%Y-%m-%d %H:%M:%SZ"),
            m.coffer_version,
            m.artifacts.len()
        ),
    ));
    if let EntryStatus::Incomplete(reason) = &entry.status {
        checks.push(Check::new("artifacts", Outcome::Fail, reason.clone()));
    }
    checks.push(check_sums_file(&entry.path, m));

    let artifacts: Vec<&Artifact> = m
        .artifacts
        .iter()
        .filter(|a| {
            fs::symlink_metadata(entry.path.join(&a.file)).is_ok_and(|m| m.file_type().is_file())
        })
        .collect();
    let results: Vec<Vec<Check>> = std::thread::scope(|s| {
        let handles: Vec<_> = artifacts
            .iter()
            .map(|a| {
                let dir = &entry.path;
                s.spawn(move || {
                    let expected = Expected {
                        artifact: Some(a),
                        manifest: Some(m),
                        recorded: entry.manifest.as_ref(),
                    };
                    check_artifact(
                        dir,
                        &a.file,
                        a.role,
                        a.encryption.is_some(),
                        expected,
                        identities,
                    )
                    .0
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("verify thread"))
            .collect()
    });
    checks.extend(results.into_iter().flatten());
}

fn verify_legacy(entry: &BackupEntry, identities: Option<&Identities>, checks: &mut Vec<Check>) {
    checks.push(Check::new(
        manifest::MANIFEST_FILE,
        Outcome::Pass,
        "legacy shell-script manifest (timestamp, alembic_head, db_size, workspace_path)",
    ));
    let sums = match crate::format::sums::read(&entry.path) {
        Ok(sums) => Some(sums),
        Err(e) if e.is_not_found() => None,
        Err(e) => {
            checks.push(Check::new(
                manifest::SUMS_FILE,
                Outcome::Fail,
                e.to_string(),
            ));
            None
        }
    };
    if sums.is_none() {
        checks.push(Check::new(
            "hashes",
            Outcome::NotChecked,
            "legacy backup: no SHA256SUMS and no hashes in the manifest, so stored and uncompressed sha256 cannot be compared",
        ));
    }
    let found: Vec<(ArtifactRole, PathBuf)> = [ArtifactRole::Database, ArtifactRole::Workspace]
        .into_iter()
        .filter_map(|role| catalog::legacy_artifact(&entry.path, role).map(|p| (role, p)))
        .collect();
    if !found.iter().any(|(r, _)| *r == ArtifactRole::Database) {
        checks.push(Check::new(
            "postgres.sql.gz",
            Outcome::Fail,
            "missing: the backup has no database dump",
        ));
    }
    let results: Vec<(Vec<Check>, Option<StreamDigest>, String)> = std::thread::scope(|s| {
        let handles: Vec<_> = found
            .iter()
            .map(|(role, path)| {
                let dir = &entry.path;
                s.spawn(move || {
                    let file = path.file_name().unwrap().to_string_lossy().into_owned();
                    let encrypted = file.ends_with(".age");
                    let expected = Expected {
                        artifact: None,
                        manifest: None,
                        recorded: entry.manifest.as_ref(),
                    };
                    let (c, d) = check_artifact(dir, &file, *role, encrypted, expected, identities);
                    (c, d, file)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("verify thread"))
            .collect()
    });
    for (artifact_checks, digest, file) in results {
        checks.extend(artifact_checks);
        if let (Some(sums), Some(d)) = (&sums, digest) {
            checks.push(match sums.get(&file) {
                Some(h) if *h == d.sha256 => Check::new(
                    format!("{file}: sha256"),
                    Outcome::Pass,
                    "matches SHA256SUMS",
                ),
                Some(h) => Check::new(
                    format!("{file}: sha256"),
                    Outcome::Fail,
                    format!("is {}, SHA256SUMS says {h}", d.sha256),
                ),
                None => Check::new(
                    format!("{file}: sha256"),
                    Outcome::NotChecked,
                    "not listed in SHA256SUMS",
                ),
            });
        }
    }
}

fn check_sums_file(dir: &Path, m: &Manifest) -> Check {
    let subject = manifest::SUMS_FILE;
    let sums = match crate::format::sums::read(dir) {
        Ok(sums) => sums,
        Err(e) if e.is_not_found() => return Check::new(subject, Outcome::Fail, "missing"),
        Err(e) => return Check::new(subject, Outcome::Fail, e.to_string()),
    };
    let expected: BTreeMap<String, String> = m
        .artifacts
        .iter()
        .map(|a| (a.file.clone(), a.sha256.clone()))
        .collect();
    if sums == expected {
        Check::new(
            subject,
            Outcome::Pass,
            format!("agrees with the manifest ({} files)", sums.len()),
        )
    } else {
        Check::new(
            subject,
            Outcome::Fail,
            "disagrees with manifest.json: one of them was altered",
        )
    }
}

/// What the manifest says an artifact should be (nothing for legacy backups).
#[derive(Clone, Copy)]
struct Expected<'a> {
    artifact: Option<&'a Artifact>,
    manifest: Option<&'a Manifest>,
    /// The manifest of either generation, whose head (and tables) the dump must prove.
    recorded: Option<&'a AnyManifest>,
}

/// Reads one artifact to its end and returns its checks, and its stored digest when the
/// whole file was read.
fn check_artifact(
    dir: &Path,
    file: &str,
    role: ArtifactRole,
    encrypted: bool,
    expected: Expected<'_>,
    identities: Option<&Identities>,
) -> (Vec<Check>, Option<StreamDigest>) {
    let path = dir.join(file);
    let mut checks = Vec::new();
    if let Some(a) = expected.artifact {
        let actual = fs::symlink_metadata(&path).map(|m| m.len()).unwrap_or(0);
        if actual != a.size {
            checks.push(Check::new(
                format!("{file}: stored size"),
                Outcome::Fail,
                format!(
                    "is {actual} bytes, the manifest says {}: the file is truncated or altered",
                    a.size
                ),
            ));
            // Reading on would only repeat the failure in other words.
            return (checks, None);
        }
    }
    if encrypted && identities.is_none() {
        // The stored hash needs no key: check what can be checked.
        let digest = crate::util::fsutil::open_regular(&path)
            .map_err(|e| std::io::Error::other(format!("{}: it {e}", path.display())))
            .and_then(digest::digest_reader);
        match (digest, expected.artifact) {
            (Ok(d), Some(a)) => checks.push(stored_check(file, &d, a)),
            (Ok(_), None) => {}
            (Err(e), _) => checks.push(Check::new(
                format!("{file}: read"),
                Outcome::Fail,
                e.to_string(),
            )),
        }
        checks.push(
            Check::new(
                format!("{file}: decrypt and decompress"),
                Outcome::NotChecked,
                "encrypted and no identity given (encryption.identity_file or COFFER_AGE_IDENTITY_FILE)",
            )
            .hinted(Some(Hint::Identity)),
        );
        return (checks, None);
    }
    let mut reader = match ArtifactReader::open(&path, encrypted, identities) {
        Ok(r) => r,
        Err(e) => {
            checks.push(
                Check::new(format!("{file}: open"), Outcome::Fail, e.to_string()).hinted(e.hint()),
            );
            return (checks, None);
        }
    };
    if let Some(pieces) = expected.artifact.and_then(|a| a.pieces.clone()) {
        reader.check_pieces(pieces);
    }
    let (content, digests) = read_content(reader, role);
    let digests = match digests {
        Ok(d) => d,
        Err(e) => {
            checks.push(Check::new(
                format!("{file}: decrypt and decompress"),
                Outcome::Fail,
                e.to_string(),
            ));
            return (checks, None);
        }
    };
    match expected.artifact {
        Some(a) => {
            checks.push(stored_check(file, &digests.stored, a));
            let plain_ok = digests.plain.size == a.uncompressed_size
                && digests.plain.sha256 == a.uncompressed_sha256;
            checks.push(Check::new(
                format!("{file}: uncompressed size and sha256"),
                if plain_ok {
                    Outcome::Pass
                } else {
                    Outcome::Fail
                },
                if plain_ok {
                    format!(
                        "{} after decompressing{}",
                        units::bytes(a.uncompressed_size),
                        if encrypted { " and decrypting" } else { "" }
                    )
                } else {
                    format!(
                        "{} bytes with sha256 {}, the manifest says {} bytes with sha256 {}",
                        digests.plain.size,
                        digests.plain.sha256,
                        a.uncompressed_size,
                        a.uncompressed_sha256
                    )
                },
            ));
            if let Some(outcome) = &digests.pieces {
                checks.extend(super::pieces::pieces_check(
                    file, &path, a, outcome, identities,
                ));
            }
        }
        None => checks.push(Check::new(
            format!("{file}: gzip integrity"),
            Outcome::Pass,
            format!(
                "{} decompresses to {} with valid CRCs",
                units::bytes(digests.stored.size),
                units::bytes(digests.plain.size)
            ),
        )),
    }
    checks.push(match content {
        Content::Dump(facts) => dump_check(file, &facts, expected),
        Content::Tar(Ok(listing)) => tar_check(file, &listing, expected.manifest),
        Content::Tar(Err(e)) => Check::new(format!("{file}: tar listing"), Outcome::Fail, e),
        Content::Roles(Ok((roles, memberships))) => Check::new(
            format!("{file}: roles"),
            Outcome::Pass,
            format!("{roles} roles, {memberships} memberships, every line one coffer accepts"),
        ),
        Content::Roles(Err(e)) => Check::new(format!("{file}: roles"), Outcome::Fail, e),
    });
    (checks, Some(digests.stored))
}

fn stored_check(file: &str, d: &StreamDigest, a: &Artifact) -> Check {
    let subject = format!("{file}: stored size and sha256");
    if d.size == a.size && d.sha256 == a.sha256 {
        Check::new(
            subject,
            Outcome::Pass,
            format!("{}, sha256 {}", units::bytes(a.size), &a.sha256[..16]),
        )
    } else {
        Check::new(
            subject,
            Outcome::Fail,
            format!(
                "{} bytes with sha256 {}, the manifest says {} bytes with sha256 {}: the file was altered",
                d.size, d.sha256, a.size, a.sha256
            ),
        )
    }
}

/// What an artifact's content turned out to be.
enum Content {
    Dump(DumpFacts),
    Tar(Result<TarListing, String>),
    /// The roles file: how many roles and memberships, or why restore would refuse it.
    Roles(Result<(usize, usize), String>),
}

/// Reads the plain stream to its end, interpreting it by role, and returns the digests.
fn read_content(
    mut reader: ArtifactReader,
    role: ArtifactRole,
) -> (Content, Result<ArtifactDigests, ArtifactError>) {
    match role {
        ArtifactRole::Database => {
            let mut scanner = DumpScanner::new();
            let mut buf = vec![0u8; 1 << 20];
            loop {
                match reader.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => scanner.feed(&buf[..n]),
                    Err(e) => {
                        let err = reader.damaged(e);
                        return (Content::Dump(scanner.finish()), Err(err));
                    }
                }
            }
            (Content::Dump(scanner.finish()), reader.finish())
        }
        ArtifactRole::Workspace => {
            let listing = archive::list_tar(&mut reader).map_err(|e| e.to_string());
            // A listing failure from a decoder error is reported as damage, not as a tar
            // problem: finish() reads on and surfaces the decoder's error.
            let digests = reader.finish();
            (Content::Tar(listing), digests)
        }
        ArtifactRole::Roles => {
            let mut text = Vec::new();
            if let Err(e) = (&mut reader).take(ROLES_CAP).read_to_end(&mut text) {
                let err = reader.damaged(e);
                return (Content::Roles(Err(err.to_string())), Err(err));
            }
            let parsed = std::str::from_utf8(&text)
                .map_err(|e| format!("not UTF-8: {e}"))
                .and_then(crate::postgres::roles::parse)
                .map(|f| (f.roles.len(), f.memberships.len()));
            (Content::Roles(parsed), reader.finish())
        }
    }
}

/// The largest roles file read (real ones are a few KiB).
const ROLES_CAP: u64 = 64 << 20;

/// The dump's own verdict (complete, nothing psql must not run) and whether it proves the
/// manifest's head and table list.
fn dump_check(file: &str, facts: &DumpFacts, expected: Expected<'_>) -> Check {
    let subject = format!("{file}: database dump");
    if let Some(reason) = facts.unusable() {
        return Check::new(subject, Outcome::Fail, reason);
    }
    if let Some(m) = expected.recorded
        && let Err(reason) = facts.check_against(m)
    {
        return Check::new(subject, Outcome::Fail, reason);
    }
    let head = match &facts.alembic_heads {
        Some(h) if !h.is_empty() => format!(", alembic head {}", h.join(",")),
        _ => ", no alembic_version data".into(),
    };
    let rows: u64 = facts.tables.values().sum();
    Check::new(
        subject,
        Outcome::Pass,
        format!(
            "complete, {} tables, {rows} rows{head}{}",
            facts.tables.len(),
            match expected.recorded {
                Some(AnyManifest::Coffer(_)) => " (tables, rows and head as in the manifest)",
                Some(AnyManifest::Legacy(l)) if l.alembic_head.is_some() =>
                    " (head as in the manifest)",
                _ => "",
            }
        ),
    )
}

fn tar_check(file: &str, l: &TarListing, manifest: Option<&Manifest>) -> Check {
    let subject = format!("{file}: tar listing");
    let summary = format!(
        "{} files, {} directories, {} symlinks, {} hard links, {}",
        l.files,
        l.directories,
        l.symlinks,
        l.hardlinks,
        units::bytes(l.file_bytes)
    );
    if let Some(w) = manifest.and_then(|m| m.workspace.as_ref())
        && (
            l.files,
            l.directories,
            l.symlinks,
            l.hardlinks,
            l.file_bytes,
        ) != (
            w.files,
            w.directories,
            w.symlinks,
            w.hardlinks,
            w.file_bytes,
        )
    {
        return Check::new(
            subject,
            Outcome::Fail,
            format!(
                "lists {summary}; the manifest says {} files, {} directories, {} symlinks, {} hard links, {} bytes",
                w.files, w.directories, w.symlinks, w.hardlinks, w.file_bytes
            ),
        );
    }
    Check::new(subject, Outcome::Pass, format!("lists cleanly: {summary}"))
}
