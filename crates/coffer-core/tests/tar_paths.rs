//! The safe extractor's path checks against hostile archives: generated entry names and
//! types (proptest with a fixed case budget) and the regression corpus in
//! `fixtures/corpus/tar_paths/`. Whatever the archive, extraction never creates or changes
//! anything outside the destination, and it refuses every entry it should.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use coffer_core::internals::archive::extract_tar;
use proptest::prelude::*;
use tar::{EntryType, Header};

const CORPUS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../fixtures/corpus/tar_paths"
);

/// A destination and a watched sibling `outside/` holding `secret` and `sub/`.
struct Sandbox {
    _tmp: tempfile::TempDir,
    outer: PathBuf,
    dest: PathBuf,
    before: BTreeMap<PathBuf, String>,
}

impl Sandbox {
    fn new() -> Sandbox {
        let tmp = tempfile::tempdir().unwrap();
        let outer = std::fs::canonicalize(tmp.path()).unwrap();
        let dest = outer.join("dest");
        std::fs::create_dir(&dest).unwrap();
        std::fs::create_dir_all(outer.join("outside/sub")).unwrap();
        std::fs::write(outer.join("outside/secret"), "secret\n").unwrap();
        let before = state(&outer, &dest);
        Sandbox {
            _tmp: tmp,
            outer,
            dest,
            before,
        }
    }

    /// Nothing outside `dest` was created, changed, or hard-linked from inside it.
    fn assert_outside_untouched(&self, context: &str) {
        assert_eq!(state(&self.outer, &self.dest), self.before, "{context}");
        let secret = std::fs::metadata(self.outer.join("outside/secret")).unwrap();
        assert_eq!(
            secret.nlink(),
            1,
            "{context}: a hard link to a file outside"
        );
    }
}

/// Every path below `outer` except inside `dest`, with its type, size, mode and content.
fn state(outer: &Path, dest: &Path) -> BTreeMap<PathBuf, String> {
    let mut m = BTreeMap::new();
    for e in walkdir::WalkDir::new(outer).follow_links(false) {
        let e = e.unwrap();
        if e.path().starts_with(dest) {
            continue;
        }
        let meta = e.path().symlink_metadata().unwrap();
        let content = if meta.is_file() {
            String::from_utf8_lossy(&std::fs::read(e.path()).unwrap()).into_owned()
        } else {
            String::new()
        };
        m.insert(
            e.path().to_path_buf(),
            format!(
                "{:?} {:o} {} {content}",
                meta.file_type(),
                meta.mode(),
                meta.len()
            ),
        );
    }
    m
}

/// Appends one raw entry: the name and link bytes exactly as given (GNU long-name entries
/// above 99 bytes), so `..`, absolute and odd names reach the extractor unchanged.
fn push_entry(out: &mut Vec<u8>, name: &[u8], kind: EntryType, link: &[u8], data: &[u8]) {
    if name.len() > 99 {
        push_long(out, EntryType::GNULongName, name);
    }
    if link.len() > 99 {
        push_long(out, EntryType::GNULongLink, link);
    }
    let mut h = Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(if kind == EntryType::Directory {
        0o755
    } else {
        0o644
    });
    h.set_mtime(1_700_000_000);
    h.set_uid(0);
    h.set_gid(0);
    h.set_size(data.len() as u64);
    {
        let old = h.as_old_mut();
        let n = name.len().min(100);
        old.name[..n].copy_from_slice(&name[..n]);
        let l = link.len().min(100);
        old.linkname[..l].copy_from_slice(&link[..l]);
    }
    h.set_cksum();
    out.extend_from_slice(h.as_bytes());
    push_data(out, data);
}

fn push_long(out: &mut Vec<u8>, kind: EntryType, bytes: &[u8]) {
    let mut data = bytes.to_vec();
    data.push(0);
    let mut h = Header::new_gnu();
    h.set_entry_type(kind);
    h.set_size(data.len() as u64);
    h.as_old_mut().name[..13].copy_from_slice(b"././@LongLink");
    h.set_cksum();
    out.extend_from_slice(h.as_bytes());
    push_data(out, &data);
}

fn push_data(out: &mut Vec<u8>, data: &[u8]) {
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
}

/// One name component of a generated path.
fn component() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => prop::sample::select(vec![
            b"a".to_vec(), b"b".to_vec(), b"c".to_vec(), b"outside".to_vec(), b"secret".to_vec(),
        ]),
        2 => Just(b"..".to_vec()),
        1 => Just(b".".to_vec()),
        1 => Just(Vec::new()),
        1 => prop::sample::select(vec![
            b"new\nline".to_vec(), b"\xff\xfe".to_vec(), b" ".to_vec(), b"\\".to_vec(), b"-".to_vec(),
        ]),
        1 => (100usize..180).prop_map(|n| vec![b'L'; n]),
    ]
}

/// A generated path: absolute ones point into the sandbox (so an escape is caught there,
/// never written into the real filesystem).
#[derive(Debug, Clone)]
struct GenPath {
    absolute: bool,
    parts: Vec<Vec<u8>>,
    trailing_slash: bool,
}

impl GenPath {
    fn render(&self, outer: &Path) -> Vec<u8> {
        let mut out = Vec::new();
        if self.absolute {
            out.extend_from_slice(outer.as_os_str().as_bytes());
            out.extend_from_slice(b"/outside/");
        }
        out.extend_from_slice(&self.parts.join(&b'/'));
        if self.trailing_slash {
            out.push(b'/');
        }
        out
    }

    fn escapes(&self) -> bool {
        self.absolute || self.parts.iter().any(|p| p == b"..")
    }
}

fn gen_path() -> impl Strategy<Value = GenPath> {
    (
        prop::bool::weighted(0.1),
        prop::collection::vec(component(), 1..4),
        prop::bool::weighted(0.15),
    )
        .prop_map(|(absolute, parts, trailing_slash)| GenPath {
            absolute,
            parts,
            trailing_slash,
        })
}

#[derive(Debug, Clone)]
enum GenKind {
    File(Vec<u8>),
    Dir,
    Symlink(GenPath),
    HardLink(GenPath),
    Fifo,
    Char,
    Block,
}

fn gen_kind() -> impl Strategy<Value = GenKind> {
    prop_oneof![
        5 => prop::collection::vec(any::<u8>(), 0..64).prop_map(GenKind::File),
        3 => Just(GenKind::Dir),
        3 => gen_path().prop_map(GenKind::Symlink),
        2 => gen_path().prop_map(GenKind::HardLink),
        1 => prop::sample::select(vec![GenKind::Fifo, GenKind::Char, GenKind::Block]),
    ]
}

/// Whether every ancestor of `rel` below `dest` is a real directory (not a symlink) and
/// `rel` itself is what `want` says, looked up without following symlinks.
fn is_real_below(dest: &Path, rel: &[u8], want_file: bool) -> bool {
    let parts: Vec<&[u8]> = rel
        .split(|b| *b == b'/')
        .filter(|p| !p.is_empty() && *p != b".")
        .collect();
    let mut at = dest.to_path_buf();
    for (i, part) in parts.iter().enumerate() {
        at.push(OsStr::from_bytes(part));
        let Ok(meta) = at.symlink_metadata() else {
            return false;
        };
        let last = i + 1 == parts.len();
        if (!last || !want_file) && !meta.is_dir() || last && want_file && !meta.is_file() {
            return false;
        }
    }
    true
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn hostile_archives_never_touch_anything_outside(
        entries in prop::collection::vec((gen_path(), gen_kind()), 1..8)
    ) {
        let sandbox = Sandbox::new();
        let mut tarball = Vec::new();
        let mut must_refuse = false;
        let mut files = Vec::new();
        for (name, kind) in &entries {
            let raw = name.render(&sandbox.outer);
            must_refuse |= name.escapes();
            match kind {
                GenKind::File(data) => {
                    push_entry(&mut tarball, &raw, EntryType::Regular, b"", data);
                    files.push(raw);
                }
                GenKind::Dir => push_entry(&mut tarball, &raw, EntryType::Directory, b"", b""),
                GenKind::Symlink(t) => {
                    push_entry(&mut tarball, &raw, EntryType::Symlink, &t.render(&sandbox.outer), b"")
                }
                GenKind::HardLink(t) => {
                    must_refuse |= t.escapes();
                    push_entry(&mut tarball, &raw, EntryType::Link, &t.render(&sandbox.outer), b"")
                }
                GenKind::Fifo | GenKind::Char | GenKind::Block => {
                    must_refuse = true;
                    let t = match kind {
                        GenKind::Fifo => EntryType::Fifo,
                        GenKind::Char => EntryType::Char,
                        _ => EntryType::Block,
                    };
                    push_entry(&mut tarball, &raw, t, b"", b"");
                }
            }
        }
        tarball.resize(tarball.len() + 1024, 0);
        let result = extract_tar(&tarball[..], &sandbox.dest);
        sandbox.assert_outside_untouched(&format!("{entries:?} -> {result:?}"));
        if must_refuse {
            prop_assert!(result.is_err(), "accepted: {:?}", entries);
        }
        if result.is_ok() {
            // Every file entry is a regular file below dest, reached through directories only
            // (a later entry may have legitimately replaced it with another file).
            for raw in &files {
                prop_assert!(is_real_below(&sandbox.dest, raw, true), "{:?}", String::from_utf8_lossy(raw));
            }
        }
    }
}

/// Replays `fixtures/corpus/tar_paths/`: `refuse-*.tar` are refused, `ok-*.tar` extracted,
/// and neither touches anything outside the destination.
#[test]
fn corpus_replays() {
    // Where the corpus's absolute entries aim; a leftover of a broken build is cleared so
    // each run checks its own writes.
    let absolute = ["/tmp/coffer-corpus-absolute", "/tmp/coffer-corpus-pwned"];
    for p in absolute {
        let _ = std::fs::remove_file(p);
    }
    let mut seen = 0;
    let passwd_links = std::fs::metadata("/etc/passwd").map(|m| m.nlink()).ok();
    for e in std::fs::read_dir(CORPUS).unwrap() {
        let path = e.unwrap().path();
        if path.extension() != Some(OsStr::new("tar")) {
            continue;
        }
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let bytes = std::fs::read(&path).unwrap();
        let sandbox = Sandbox::new();
        // The corpus names the sandbox's sibling `outside` relative to the destination.
        let result = extract_tar(&bytes[..], &sandbox.dest);
        sandbox.assert_outside_untouched(&name);
        for p in absolute {
            assert!(std::fs::symlink_metadata(p).is_err(), "{name}: {p} written");
        }
        assert_eq!(
            std::fs::metadata("/etc/passwd").map(|m| m.nlink()).ok(),
            passwd_links,
            "{name}"
        );
        if name.starts_with("refuse-") {
            assert!(result.is_err(), "{name} was accepted");
        } else {
            assert!(
                name.starts_with("ok-"),
                "{name}: corpus files are ok-* or refuse-*"
            );
            result.unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        seen += 1;
    }
    assert!(seen >= 20, "only {seen} corpus files in {CORPUS}");
}
