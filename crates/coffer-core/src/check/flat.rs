//! Flat dump files: the plain `pg_dump` output older cron scripts wrote
//! (`pg_dump DB | gzip > app_20250101_030000.sql.gz`, or `.sql`), recognised strictly and
//! checked end to end without restoring: the whole gzip stream (every member, nothing after
//! the last), the dump's own completion trailer and the dump gate's refusals.
//!
//! A file is taken for a flat dump only when its name ends in `.sql.gz` or `.sql` and it
//! is a regular file (not a backup directory); its content must then start with pg_dump's
//! header (after decompressing): anything else so named is refused, never guessed at.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;

use crate::format::manifest::{Artifact, ArtifactRole, Compression};
use crate::root::catalog::{BackupEntry, EntryStatus};
use crate::stream::artifact::{ArtifactDigests, ArtifactError, ArtifactReader};
use crate::stream::dump_scan::{DumpFacts, DumpScanner};
use crate::util::units;

use super::verify::{Check, Outcome, VerifyReport};

/// How every plain `pg_dump` output starts.
const HEADER: &[u8] = b"--\n-- PostgreSQL database dump\n";

/// A flat dump file, recognised by [`detect`].
#[derive(Debug, Clone)]
pub struct FlatDump {
    /// The file (symlinks on the way resolved: the file named is the one read).
    pub path: PathBuf,
    /// Its file name.
    pub name: String,
    /// Whether it is gzip-compressed (`.sql.gz`).
    pub gzip: bool,
}

/// Whether `given` (a backup reference as typed) names a flat dump file: `None` when it is
/// not one to consider (another name, a directory, nothing there), so that it is resolved
/// as a backup; `Some(Err(why))` when it is a file named like one whose content is not a
/// plain `pg_dump` dump.
pub fn detect(given: &str) -> Option<Result<FlatDump, String>> {
    let name = Path::new(given).file_name()?.to_str()?.to_string();
    let gzip = if name.ends_with(".sql.gz") {
        true
    } else if name.ends_with(".sql") {
        false
    } else {
        return None;
    };
    // Followed like a backup directory's path: the operator's choice.
    let meta = fs::metadata(given).ok()?;
    if meta.is_dir() {
        return None;
    }
    Some(recognise(Path::new(given), name, gzip, meta.is_file()))
}

fn recognise(given: &Path, name: String, gzip: bool, regular: bool) -> Result<FlatDump, String> {
    let shown = given.display();
    if !regular {
        return Err(format!(
            "{shown} is not a regular file: a flat dump is read from a file"
        ));
    }
    let path = fs::canonicalize(given).map_err(|e| format!("cannot resolve {shown}: {e}"))?;
    let file = crate::util::fsutil::open_regular(&path)
        .map_err(|e| format!("cannot open {shown}: it {e}"))?;
    let mut start = Vec::with_capacity(HEADER.len());
    let read = if gzip {
        let mut magic = [0u8; 2];
        let mut file = file;
        if file.read_exact(&mut magic).is_err() || magic != [0x1f, 0x8b] {
            return Err(format!(
                "{shown} is named like a gzip-compressed dump but is not gzip data"
            ));
        }
        let chained = std::io::Cursor::new(magic).chain(file);
        MultiGzDecoder::new(chained)
            .take(HEADER.len() as u64)
            .read_to_end(&mut start)
    } else {
        file.take(HEADER.len() as u64).read_to_end(&mut start)
    };
    if let Err(e) = read {
        return Err(format!("{shown} cannot be read as a dump: {e}"));
    }
    if start != HEADER {
        return Err(format!(
            "{shown} does not start with pg_dump's header (`-- PostgreSQL database dump`): it is not a plain-format pg_dump dump"
        ));
    }
    Ok(FlatDump { path, name, gzip })
}

impl FlatDump {
    /// The file as the run log and the restore plan name it.
    pub fn entry(&self) -> BackupEntry {
        BackupEntry {
            name: self.name.clone(),
            path: self.path.clone(),
            kind: None,
            created: None,
            // No manifest and no hashes, as a shell-script backup.
            status: EntryStatus::Legacy,
            manifest: None,
            alembic_head: None,
            label: None,
            size_bytes: fs::metadata(&self.path).map_or(0, |m| m.len()),
        }
    }
}

/// What reading a flat dump to its end found.
#[derive(Debug, Clone)]
pub struct FlatScan {
    /// The dump's facts (completeness, refusals, tables, head, roles, `DROP`s).
    pub facts: DumpFacts,
    /// The file's and the SQL's size and SHA-256.
    pub digests: ArtifactDigests,
}

impl FlatScan {
    /// The file as read, as a manifest would record it: a restore proves it is still the
    /// same file before a byte of it reaches psql.
    pub fn record(&self, flat: &FlatDump) -> Artifact {
        Artifact {
            role: ArtifactRole::Database,
            file: flat.name.clone(),
            size: self.digests.stored.size,
            sha256: self.digests.stored.sha256.clone(),
            uncompressed_size: self.digests.plain.size,
            uncompressed_sha256: self.digests.plain.sha256.clone(),
            compression: Compression::Gzip,
            encryption: None,
            pieces: None,
        }
    }

    /// One line for a plan or a report: what the file holds.
    pub fn summary(&self, flat: &FlatDump) -> String {
        let rows: u64 = self.facts.tables.values().sum();
        format!(
            "{} is a complete pg_dump dump{} ({} of SQL, {} tables, {rows} rows{}{})",
            flat.name,
            if flat.gzip {
                ", its gzip stream intact"
            } else {
                ""
            },
            units::bytes(self.digests.plain.size),
            self.facts.tables.len(),
            match &self.facts.alembic_heads {
                Some(h) if !h.is_empty() => format!(", alembic head {}", h.join(",")),
                _ => String::new(),
            },
            self.facts
                .dumped_by
                .as_ref()
                .map_or(String::new(), |v| format!(", by pg_dump {v}")),
        )
    }
}

/// Reads the whole file: decompresses every gzip member (a bad CRC, a cut stream or
/// anything after the last member fails) and scans the SQL as a restore's gate would.
pub fn scan(flat: &FlatDump) -> Result<FlatScan, ArtifactError> {
    let mut reader = ArtifactReader::open(&flat.path, false, None)?;
    let mut scanner = DumpScanner::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => scanner.feed(&buf[..n]),
            Err(e) => return Err(reader.damaged(e)),
        }
    }
    let digests = reader.finish()?;
    Ok(FlatScan {
        facts: scanner.finish(),
        digests,
    })
}

/// Verifies a flat dump (or reports why `given` is not one) without restoring it.
pub fn verify(given: &str, detected: Result<FlatDump, String>) -> VerifyReport {
    let mut report = VerifyReport {
        name: Path::new(given)
            .file_name()
            .map_or_else(|| given.to_string(), |n| n.to_string_lossy().into_owned()),
        path: PathBuf::from(given),
        legacy: true,
        checks: Vec::new(),
    };
    let flat = match detected {
        Ok(f) => f,
        Err(why) => {
            report.checks.push(Check::new("file", Outcome::Fail, why));
            return report;
        }
    };
    report.path = flat.path.clone();
    let file = flat.name.as_str();
    report.checks.push(Check::new(
        "file",
        Outcome::Pass,
        format!(
            "a flat pg_dump dump{}",
            if flat.gzip { " (gzip)" } else { " (plain SQL)" }
        ),
    ));
    report.checks.push(Check::new(
        "hashes",
        Outcome::NotChecked,
        "a flat dump has no manifest and no SHA256SUMS: only its gzip integrity and its own completeness can be checked",
    ));
    let scan = match scan(&flat) {
        Ok(s) => s,
        Err(e) => {
            let subject = if flat.gzip { "gzip integrity" } else { "read" };
            report.checks.push(Check::new(
                format!("{file}: {subject}"),
                Outcome::Fail,
                e.to_string(),
            ));
            return report;
        }
    };
    report.checks.push(if flat.gzip {
        Check::new(
            format!("{file}: gzip integrity"),
            Outcome::Pass,
            format!(
                "{} decompresses to {} with valid CRCs, nothing after the last member",
                units::bytes(scan.digests.stored.size),
                units::bytes(scan.digests.plain.size)
            ),
        )
    } else {
        Check::new(
            format!("{file}: read"),
            Outcome::Pass,
            format!("{} of plain SQL", units::bytes(scan.digests.plain.size)),
        )
    });
    let subject = format!("{file}: database dump");
    report.checks.push(match scan.facts.unusable() {
        Some(reason) => Check::new(subject, Outcome::Fail, reason),
        None => {
            let f = &scan.facts;
            let rows: u64 = f.tables.values().sum();
            Check::new(
                subject,
                Outcome::Pass,
                format!(
                    "complete, {} tables, {rows} rows{}{}",
                    f.tables.len(),
                    match &f.alembic_heads {
                        Some(h) if !h.is_empty() => format!(", alembic head {}", h.join(",")),
                        _ => ", no alembic_version data".into(),
                    },
                    if f.drops {
                        ", drops each object before creating it (pg_dump --clean)"
                    } else {
                        ", made without --clean: it restores only into an empty or new database"
                    }
                ),
            )
        }
    });
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::GzEncoder;
    use std::io::Write;

    const DUMP: &str = "--\n-- PostgreSQL database dump\n--\n\n\
        -- Dumped by pg_dump version 15.18\n\n\
        CREATE TABLE public.t (x integer);\n\
        COPY public.t (x) FROM stdin;\n1\n2\n\\.\n\n\
        --\n-- PostgreSQL database dump complete\n--\n\n";

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), flate2::Compression::new(6));
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn file(dir: &Path, name: &str, bytes: &[u8]) -> String {
        let p = dir.join(name);
        fs::write(&p, bytes).unwrap();
        p.display().to_string()
    }

    #[test]
    fn only_files_named_and_starting_like_a_dump_are_flat_dumps() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let gz = file(d, "app_20250101_030000.sql.gz", &gzip(DUMP.as_bytes()));
        let flat = detect(&gz).unwrap().unwrap();
        assert!(flat.gzip);
        assert_eq!(flat.name, "app_20250101_030000.sql.gz");
        let sql = file(d, "app.sql", DUMP.as_bytes());
        assert!(!detect(&sql).unwrap().unwrap().gzip);

        // Other names, directories and missing paths are resolved as backups.
        assert!(detect(&file(d, "app.tar", DUMP.as_bytes())).is_none());
        assert!(detect(&file(d, "app.sql.gz.bak", DUMP.as_bytes())).is_none());
        fs::create_dir(d.join("dir.sql")).unwrap();
        assert!(detect(&d.join("dir.sql").display().to_string()).is_none());
        assert!(detect(&d.join("missing.sql.gz").display().to_string()).is_none());

        // Named like one, but not one: refused, never guessed at.
        for (name, bytes) in [
            ("plain-in-gz.sql.gz", DUMP.as_bytes().to_vec()),
            ("tar.sql.gz", gzip(b"portal/manifest.json\0\0\0")),
            (
                "cluster.sql",
                b"--\n-- PostgreSQL database cluster dump\n--\n".to_vec(),
            ),
            ("empty.sql", Vec::new()),
            ("empty.sql.gz", Vec::new()),
            ("gz-in-sql.sql", gzip(DUMP.as_bytes())),
        ] {
            let err = detect(&file(d, name, &bytes)).unwrap().unwrap_err();
            assert!(err.contains(name), "{name}: {err}");
        }
    }

    #[test]
    fn a_complete_dump_verifies_and_a_cut_one_fails() {
        let dir = tempfile::tempdir().unwrap();
        let gz = file(dir.path(), "a.sql.gz", &gzip(DUMP.as_bytes()));
        let report = verify(&gz, detect(&gz).unwrap());
        assert!(report.passed(), "{report:?}");
        let last = report.checks.last().unwrap();
        assert!(last.detail.contains("1 tables, 2 rows"), "{last:?}");
        assert!(last.detail.contains("without --clean"), "{last:?}");

        let whole = gzip(DUMP.as_bytes());
        let cut = file(dir.path(), "cut.sql.gz", &whole[..whole.len() - 10]);
        assert!(!verify(&cut, detect(&cut).unwrap()).passed());
        let no_trailer = DUMP
            .split("--\n-- PostgreSQL database dump complete")
            .next()
            .unwrap();
        let sql = file(dir.path(), "cut.sql", no_trailer.as_bytes());
        let report = verify(&sql, detect(&sql).unwrap());
        assert!(!report.passed());
        assert!(
            report.checks.last().unwrap().detail.contains("cut short"),
            "{report:?}"
        );
        let meta = DUMP.replace("CREATE TABLE", "\\! touch /tmp/x\nCREATE TABLE");
        let sql = file(dir.path(), "meta.sql", meta.as_bytes());
        let scan = scan(&detect(&sql).unwrap().unwrap()).unwrap();
        assert!(
            scan.facts
                .unusable()
                .is_some_and(|p| p.contains("meta-command")),
            "{:?}",
            scan.facts
        );
    }
}
