//! Signed backups: Ed25519 signatures in minisign's format, so that anyone can check a
//! backup with the standard `minisign -V` tool, without coffer.
//!
//! At backup time, when `signing.secret_key_file` is set, `manifest.json` and `SHA256SUMS`
//! are signed into `manifest.json.minisig` and `SHA256SUMS.minisig`, written into the
//! staging directory before it is renamed into place. The manifest holds every artifact's
//! size and SHA-256 (stored and uncompressed) and `SHA256SUMS` must agree with it, so the two
//! signatures cover every byte of the backup.
//!
//! Each signature's trusted comment (signed, shown by `minisign -V`) is
//! `coffer backup:<name> file:<file>`: a signature is valid only for the backup directory
//! and the file it was made for, so a signed manifest copied into another backup, or a whole
//! older backup renamed to look newer, is refused.
//!
//! When trusted public keys are configured, [`SignaturePolicy::judge`] refuses a backup that
//! is unsigned (unless unsigned backups are explicitly allowed for the run) or whose
//! signatures do not verify against a trusted key (always).
//!
//! The secret key file is minisign's unencrypted format (`minisign -G -W` writes the same):
//! the nightly timer cannot type a password. Its bytes never reach an error message.

use std::fmt;
use std::fs::OpenOptions;
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use minisign::{PublicKey, SignatureBox};
use serde::{Deserialize, Serialize};

use crate::format::manifest::{self, AnyManifest};

mod keys;

pub use keys::{GeneratedKey, SigningKey, generate};
use keys::{key_id, parse_public_key};

/// The signature of `manifest.json`, beside it.
pub const MANIFEST_SIGNATURE: &str = "manifest.json.minisig";
/// The signature of `SHA256SUMS`, beside it.
pub const SUMS_SIGNATURE: &str = "SHA256SUMS.minisig";
/// Each signed file and its signature file.
pub const SIGNED_FILES: [(&str, &str); 2] = [
    (manifest::MANIFEST_FILE, MANIFEST_SIGNATURE),
    (manifest::SUMS_FILE, SUMS_SIGNATURE),
];

/// The name of the signature file of `file`: `<file>.minisig`, where `minisign -V` looks.
pub fn signature_name(file: &str) -> String {
    format!("{file}{}", minisign::SIG_SUFFIX)
}

/// Largest signature file read: coffer's are about 350 bytes.
pub const MAX_SIGNATURE_BYTES: u64 = 4 << 10;
/// Largest key file read: minisign's are under 300 bytes.
const MAX_KEY_BYTES: u64 = 4 << 10;
/// Largest signed file (manifest, SHA256SUMS) read for checking its signature.
const MAX_SIGNED_BYTES: u64 = 16 << 20;

/// `[signing]`: the key backups are signed with, and the keys backups must be signed by.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SigningConfig {
    /// The minisign secret key (unencrypted, mode 0600) every backup is signed with, e.g.
    /// `/etc/coffer/signing.key` written by `coffer keygen --signing`. Unset: unsigned.
    pub secret_key_file: Option<PathBuf>,
    /// Public keys (minisign's `RW…` base64 strings) a backup must be signed by before
    /// `verify`, `pull` and `restore` accept it. Empty (and no file): not enforced.
    pub trusted_public_keys: Vec<String>,
    /// A minisign public key file (`.pub`) trusted like `trusted_public_keys`.
    pub trusted_public_key_file: Option<PathBuf>,
}

impl SigningConfig {
    /// Checks what can be checked without reading files: the listed public keys parse.
    pub fn validate(&self) -> Result<(), (String, String)> {
        for key in &self.trusted_public_keys {
            parse_public_key(key).map_err(|reason| {
                (
                    "signing.trusted_public_keys".to_string(),
                    format!("`{key}`: {reason}"),
                )
            })?;
        }
        Ok(())
    }

    /// Whether trusted keys are configured, so that signatures are enforced.
    pub fn enforced(&self) -> bool {
        !self.trusted_public_keys.is_empty() || self.trusted_public_key_file.is_some()
    }
}

/// Why a key could not be made, loaded or used.
#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    /// The secret key file cannot be used. Never carries the file's content.
    #[error(
        "cannot use the signing key {path}: {reason}; check signing.secret_key_file (a minisign secret key without password)"
    )]
    SecretKey {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A trusted public key file cannot be used.
    #[error(
        "cannot use the trusted public key file {path}: {reason}; check signing.trusted_public_key_file (a minisign .pub file)"
    )]
    PublicKey {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// `keygen` refuses to replace a file.
    #[error("{path} already exists: choose another path (coffer never overwrites a key)")]
    Exists {
        /// The file.
        path: PathBuf,
    },
    /// Writing a key or a signature failed.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// The signing itself failed (the key does not match its public half, no randomness).
    #[error("cannot sign {file} with {path}: {reason}")]
    Sign {
        /// The key file.
        path: PathBuf,
        /// The file being signed.
        file: String,
        /// Why.
        reason: String,
    },
}

/// Opens a file that must be a regular file without blocking (a fifo in its place is
/// refused, not waited on) and reads at most `cap` bytes; `follow` says whether a symlink
/// may be followed (configured key files: yes; files inside a backup: no).
fn read_bounded(path: &Path, cap: u64, follow: bool) -> io::Result<Vec<u8>> {
    let mut flags = rustix::fs::OFlags::NONBLOCK;
    if !follow {
        flags |= rustix::fs::OFlags::NOFOLLOW;
    }
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(flags.bits() as i32)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) {
                io::Error::other("is a symbolic link")
            } else {
                e
            }
        })?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::other("not a regular file"));
    }
    if meta.len() > cap {
        return Err(io::Error::other(format!(
            "{} bytes, more than the {cap} bytes such a file can have",
            meta.len()
        )));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(cap + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > cap {
        return Err(io::Error::other(format!(
            "more than the {cap} bytes such a file can have"
        )));
    }
    Ok(bytes)
}

/// The trusted comment of a backup's signature of `file`.
pub fn trusted_comment(backup: &str, file: &str) -> String {
    format!("coffer backup:{backup} file:{file}")
}

/// Whether signatures are required, by which keys, and whether an unsigned backup may pass.
#[derive(Clone, Default)]
pub struct SignaturePolicy {
    trusted: Vec<PublicKey>,
    /// Set when the configured trusted keys could not be loaded: everything is refused.
    broken: Option<String>,
    enforced: bool,
    signer: bool,
    allow_unsigned: bool,
}

impl fmt::Debug for SignaturePolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: Vec<String> = self.trusted.iter().map(|k| key_id(k.keynum())).collect();
        f.debug_struct("SignaturePolicy")
            .field("trusted", &ids)
            .field("broken", &self.broken)
            .field("enforced", &self.enforced)
            .field("allow_unsigned", &self.allow_unsigned)
            .finish()
    }
}

impl SignaturePolicy {
    /// Loads the trusted keys of `[signing]`; an unreadable or invalid key is an error.
    pub fn load(config: &SigningConfig) -> Result<SignaturePolicy, SigningError> {
        let mut trusted = Vec::new();
        for key in &config.trusted_public_keys {
            // Validated with the configuration; a failure here is still refused below.
            trusted.push(
                parse_public_key(key).map_err(|reason| SigningError::PublicKey {
                    path: PathBuf::from("signing.trusted_public_keys"),
                    reason,
                })?,
            );
        }
        if let Some(path) = &config.trusted_public_key_file {
            let bad = |reason: String| SigningError::PublicKey {
                path: path.clone(),
                reason,
            };
            let bytes = read_bounded(path, MAX_KEY_BYTES, true).map_err(|e| bad(e.to_string()))?;
            let text = String::from_utf8(bytes).map_err(|_| bad("not UTF-8 text".into()))?;
            let line = text
                .lines()
                .map(str::trim)
                .find(|l| !l.is_empty() && !l.starts_with("untrusted comment:"))
                .ok_or_else(|| bad("no key in it".into()))?;
            trusted.push(parse_public_key(line).map_err(bad)?);
        }
        Ok(SignaturePolicy {
            enforced: config.enforced(),
            signer: config.secret_key_file.is_some(),
            trusted,
            broken: None,
            allow_unsigned: false,
        })
    }

    /// Like [`SignaturePolicy::load`], but a key that cannot be loaded yields a policy that
    /// refuses every backup with that reason (fail closed), for callers without an error
    /// path.
    pub fn load_or_refuse_all(config: &SigningConfig) -> SignaturePolicy {
        SignaturePolicy::load(config).unwrap_or_else(|e| SignaturePolicy {
            trusted: Vec::new(),
            broken: Some(e.to_string()),
            enforced: true,
            signer: config.secret_key_file.is_some(),
            allow_unsigned: false,
        })
    }

    /// The same policy, letting unsigned backups through (a bad signature never passes).
    pub fn allowing_unsigned(mut self, allow: bool) -> SignaturePolicy {
        self.allow_unsigned = allow;
        self
    }

    /// Whether trusted keys are configured.
    pub fn enforced(&self) -> bool {
        self.enforced
    }

    /// Whether signing is in use at all: trusted keys or a signing key configured.
    pub fn in_use(&self) -> bool {
        self.enforced || self.signer
    }

    /// Judges the signatures of the backup in `dir` named `name`. `manifest` is the
    /// manifest the caller is going to act on: it must be the one that was signed.
    pub fn judge(&self, dir: &Path, name: &str, manifest: Option<&AnyManifest>) -> Judgement {
        if let Some(reason) = &self.broken {
            return Judgement::refused(format!("signatures cannot be checked: {reason}"));
        }
        let found = inspect(dir, name, manifest, &self.trusted);
        let signed = found != Found::Unsigned;
        let mut judgement = self.decide(found, name);
        judgement.signed = signed;
        judgement
    }

    /// [`judge`](Self::judge) for a backup whose data and `SHA256SUMS` have not arrived yet
    /// (a bundle read in order): only `manifest.json.minisig` is judged. The manifest holds
    /// every artifact's size and SHA-256, so its verified signature already binds the data
    /// that follows; the caller judges the whole backup again once everything has arrived.
    pub fn judge_manifest(
        &self,
        dir: &Path,
        name: &str,
        manifest: Option<&AnyManifest>,
    ) -> Judgement {
        if let Some(reason) = &self.broken {
            return Judgement::refused(format!("signatures cannot be checked: {reason}"));
        }
        let found = if dir.join(MANIFEST_SIGNATURE).symlink_metadata().is_err() {
            Found::Unsigned
        } else {
            match check_one(
                dir,
                name,
                manifest::MANIFEST_FILE,
                MANIFEST_SIGNATURE,
                &self.trusted,
            )
            .and_then(|found| check_manifest(dir, name, manifest).map(|()| found))
            {
                Ok((key_id, trusted)) => Found::Signed {
                    key_id,
                    trusted: trusted && !self.trusted.is_empty(),
                },
                Err(reason) => Found::Bad(reason),
            }
        };
        let signed = found != Found::Unsigned;
        let mut judgement = match self.decide(found, name) {
            Judgement {
                verdict: Verdict::Verified,
                ..
            } => Judgement {
                verdict: Verdict::Verified,
                detail: format!(
                    "{} signed for {name} by a trusted key ({} is checked once it has arrived)",
                    manifest::MANIFEST_FILE,
                    manifest::SUMS_FILE
                ),
                signed,
            },
            Judgement {
                verdict: Verdict::Refused,
                detail,
                ..
            } if !signed => Judgement::refused(format!(
                "{detail} (no {MANIFEST_SIGNATURE} follows the manifest; a bundle that carries its signatures only at its end cannot be judged before its data: import it first, then restore it from the backup root)"
            )),
            other => other,
        };
        judgement.signed = signed;
        judgement
    }

    fn decide(&self, found: Found, name: &str) -> Judgement {
        match (found, self.enforced) {
            (Found::Bad(reason), true) => Judgement::refused(format!("bad signature: {reason}")),
            (Found::Bad(reason), false) => Judgement {
                signed: true,
                verdict: Verdict::NotChecked,
                detail: format!(
                    "no trusted key configured (signing.trusted_public_keys); the signature files are not usable: {reason}"
                ),
            },
            (Found::Unsigned, true) if self.allow_unsigned => Judgement {
                signed: false,
                verdict: Verdict::NotChecked,
                detail: "the backup is unsigned; accepted because unsigned backups are explicitly allowed for this run".into(),
            },
            (Found::Unsigned, true) => Judgement::refused(UNSIGNED_REFUSED.to_string()),
            (Found::Unsigned, false) => Judgement {
                signed: false,
                verdict: Verdict::NotChecked,
                detail: "no trusted key configured (signing.trusted_public_keys); the backup is unsigned".into(),
            },
            (Found::Signed { key_id, trusted: true }, _) => Judgement {
                signed: true,
                verdict: Verdict::Verified,
                detail: format!(
                    "{} and {} signed for {name} by trusted key {key_id}",
                    manifest::MANIFEST_FILE,
                    manifest::SUMS_FILE
                ),
            },
            (Found::Signed { key_id, trusted: false }, true) => Judgement::refused(format!(
                "bad signature: signed by key {key_id}, which is not a trusted key (signing.trusted_public_keys)"
            )),
            (Found::Signed { key_id, trusted: false }, false) => Judgement {
                signed: true,
                verdict: Verdict::NotChecked,
                detail: format!(
                    "no trusted key configured (signing.trusted_public_keys); signed by key {key_id}"
                ),
            },
        }
    }
}

/// The reason an unsigned backup is refused ([`crate::Hint::AllowUnsigned`] says how to
/// allow it).
pub const UNSIGNED_REFUSED: &str = "the backup is unsigned and trusted signing keys are configured (signing.trusted_public_keys): only signed backups are accepted";

/// What [`SignaturePolicy::judge`] decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Judgement {
    /// Accepted with proof, accepted without, or refused.
    pub verdict: Verdict,
    /// What was found, for one report line.
    pub detail: String,
    /// Whether the backup carries signature files (valid or not).
    pub signed: bool,
}

impl Judgement {
    fn refused(detail: String) -> Judgement {
        Judgement {
            signed: false,
            verdict: Verdict::Refused,
            detail,
        }
    }
}

/// The decision about a backup's signatures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Signed by a trusted key, for this backup.
    Verified,
    /// Not proven, and allowed: no trusted key is configured, or unsigned backups are
    /// allowed for this run.
    NotChecked,
    /// Refused: unsigned while signatures are required, or a signature that does not
    /// verify against a trusted key.
    Refused,
}

/// What the signature files of a backup turned out to be.
#[derive(Debug, PartialEq, Eq)]
enum Found {
    /// Neither signature file exists.
    Unsigned,
    /// Both verify, bound to this backup; `trusted` when by a trusted key (without trusted
    /// keys only their form and binding can be checked, never their key).
    Signed { key_id: String, trusted: bool },
    /// Anything else: one missing, not a regular file, garbage, wrong key, wrong binding.
    Bad(String),
}

fn inspect(dir: &Path, name: &str, manifest: Option<&AnyManifest>, trusted: &[PublicKey]) -> Found {
    let present: Vec<bool> = SIGNED_FILES
        .iter()
        .map(|(_, sig)| dir.join(sig).symlink_metadata().is_ok())
        .collect();
    if present.iter().all(|p| !p) {
        return Found::Unsigned;
    }
    let mut ids = Vec::new();
    let mut all_trusted = true;
    for ((file, sig), present) in SIGNED_FILES.iter().zip(&present) {
        if !present {
            return Found::Bad(format!("{sig} is missing while the other file is signed"));
        }
        match check_one(dir, name, file, sig, trusted) {
            Ok((id, is_trusted)) => {
                all_trusted &= is_trusted;
                ids.push(id);
            }
            Err(reason) => return Found::Bad(reason),
        }
        if *file == manifest::MANIFEST_FILE
            && let Err(reason) = check_manifest(dir, name, manifest)
        {
            return Found::Bad(reason);
        }
    }
    ids.dedup();
    Found::Signed {
        key_id: ids.join(", "),
        trusted: all_trusted && !trusted.is_empty(),
    }
}

/// Verifies the signature of one file; returns the key id and whether it is trusted.
/// Without trusted keys the signature is parsed but cannot be verified.
fn check_one(
    dir: &Path,
    name: &str,
    file: &str,
    sig: &str,
    trusted: &[PublicKey],
) -> Result<(String, bool), String> {
    let sig_bytes = read_bounded(&dir.join(sig), MAX_SIGNATURE_BYTES, false)
        .map_err(|e| format!("{sig}: {e}"))?;
    let text = std::str::from_utf8(&sig_bytes)
        .map_err(|_| format!("{sig}: not a minisign signature (not text)"))?;
    if !well_formed_signature(text) {
        return Err(format!("{sig}: not a minisign signature"));
    }
    let signature =
        SignatureBox::from_string(text).map_err(|_| format!("{sig}: not a minisign signature"))?;
    let id = key_id(signature.keynum());
    let candidates: Vec<&PublicKey> = trusted
        .iter()
        .filter(|k| k.keynum() == signature.keynum())
        .collect();
    if candidates.is_empty() {
        return Ok((id, false));
    }
    let data = read_bounded(&dir.join(file), MAX_SIGNED_BYTES, false)
        .map_err(|e| format!("{file}: {e}"))?;
    let verified = candidates.iter().any(|k| {
        minisign::verify(k, &signature, io::Cursor::new(&data), true, false, false).is_ok()
    });
    if !verified {
        return Err(format!(
            "{sig} does not verify {file} with key {id}: the file was altered after signing, or the signature is forged"
        ));
    }
    let comment = signature
        .trusted_comment()
        .map_err(|_| format!("{sig}: no trusted comment"))?;
    let expected = trusted_comment(name, file);
    if comment != expected {
        return Err(format!(
            "{sig} was made for `{}`, not for `{expected}`: it belongs to another backup or file",
            comment.escape_debug()
        ));
    }
    Ok((id, true))
}

/// The signed manifest must name this backup and be the one the caller acts on (read again
/// here, so a manifest swapped after the caller read it is caught).
fn check_manifest(dir: &Path, name: &str, manifest: Option<&AnyManifest>) -> Result<(), String> {
    let file = manifest::MANIFEST_FILE;
    let bytes = read_bounded(&dir.join(file), MAX_SIGNED_BYTES, false)
        .map_err(|e| format!("{file}: {e}"))?;
    let text = String::from_utf8(bytes).map_err(|_| format!("{file}: not UTF-8"))?;
    let parsed = manifest::parse(&text, file).map_err(|e| e.to_string())?;
    if let AnyManifest::Coffer(m) = &parsed
        && m.name != name
    {
        return Err(format!(
            "the signed manifest is that of backup {}, not {name}",
            m.name.escape_debug()
        ));
    }
    if let Some(m) = manifest
        && *m != parsed
    {
        return Err(format!("{file} changed while it was being checked"));
    }
    Ok(())
}

/// Whether a signature file has minisign's shape: its signature line decodes to 74 bytes
/// (algorithm, key id, signature) and its global signature line to 64. minisign 0.10 trusts
/// these lengths and panics on a short global signature, which anyone who can write the
/// backup root could plant.
fn well_formed_signature(text: &str) -> bool {
    use ct_codecs::{Base64, Decoder};
    let decoded_len = |line: Option<&str>| {
        line.and_then(|l| Base64::decode_to_vec(l.trim().as_bytes(), None).ok())
            .map(|v| v.len())
    };
    let mut lines = text.lines();
    let signature = decoded_len(lines.nth(1));
    let global = decoded_len(lines.nth(1));
    signature == Some(74) && global == Some(64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn key(dir: &Path) -> SigningKey {
        let g = generate(&dir.join("k")).unwrap();
        assert!(g.public_key.starts_with("RW"));
        SigningKey::load(&g.secret_key_file).unwrap()
    }

    #[test]
    fn generated_keys_load_sign_and_never_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let k = key(dir.path());
        let mode = std::fs::metadata(dir.path().join("k"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(matches!(
            generate(&dir.path().join("k")),
            Err(SigningError::Exists { .. })
        ));
        std::fs::write(dir.path().join("only.pub"), "x").unwrap();
        assert!(matches!(
            generate(&dir.path().join("only")),
            Err(SigningError::Exists { .. })
        ));
        assert!(!dir.path().join("only").exists());
        let sig = k.sign("auto-x", "manifest.json", b"{}").unwrap();
        assert!(sig.contains("trusted comment: coffer backup:auto-x file:manifest.json"));
        assert!(
            !format!("{k:?}").contains(&std::fs::read_to_string(dir.path().join("k")).unwrap())
        );
    }

    #[test]
    fn bad_secret_keys_are_refused_without_quoting_them() {
        let dir = tempfile::tempdir().unwrap();
        let good =
            std::fs::read_to_string(generate(&dir.path().join("g")).unwrap().secret_key_file)
                .unwrap();
        let b64 = good.lines().nth(1).unwrap().to_string();
        let mut flipped = b64.clone().into_bytes();
        flipped[100] = if flipped[100] == b'A' { b'B' } else { b'A' };
        let cases: Vec<(&str, Vec<u8>, &str)> = vec![
            ("empty", vec![], "not a minisign secret key"),
            (
                "garbage",
                b"SECRETGARBAGE123\n".to_vec(),
                "not a minisign secret key",
            ),
            (
                "binary",
                vec![0xff, 0xfe, 0x00, 0x41],
                "not a minisign secret key",
            ),
            (
                "no comment",
                format!("{b64}\n{b64}\n").into_bytes(),
                "not a minisign secret key",
            ),
            (
                "corrupted",
                format!(
                    "untrusted comment: x\n{}\n",
                    String::from_utf8(flipped).unwrap()
                )
                .into_bytes(),
                "corrupted",
            ),
            ("huge", vec![b'A'; 100_000], "more than"),
        ];
        for (what, bytes, reason) in cases {
            let p = dir.path().join(what);
            std::fs::write(&p, &bytes).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
            let e = SigningKey::load(&p).unwrap_err().to_string();
            assert!(e.contains(reason), "{what}: {e}");
            assert!(
                !e.contains("SECRETGARBAGE") && !e.contains(&b64[10..40]),
                "{what}: {e}"
            );
        }
        let p = dir.path().join("g");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(
            SigningKey::load(&p)
                .unwrap_err()
                .to_string()
                .contains("chmod 600")
        );
    }

    fn signed_backup(dir: &Path, k: &SigningKey, name: &str) -> PathBuf {
        let b = dir.join(name);
        std::fs::create_dir(&b).unwrap();
        let manifest = format!("{{\"timestamp\": \"2026-01-01T00:00:00Z\", \"name\": \"{name}\"}}");
        for (file, content) in [("manifest.json", manifest.as_str()), ("SHA256SUMS", "")] {
            std::fs::write(b.join(file), content).unwrap();
            let sig = k.sign(name, file, content.as_bytes()).unwrap();
            std::fs::write(b.join(format!("{file}.minisig")), sig).unwrap();
        }
        b
    }

    fn policy(keys: &[String]) -> SignaturePolicy {
        SignaturePolicy::load(&SigningConfig {
            trusted_public_keys: keys.to_vec(),
            ..SigningConfig::default()
        })
        .unwrap()
    }

    #[test]
    fn manifest_only_judgements_before_the_data() {
        let dir = tempfile::tempdir().unwrap();
        let k = key(dir.path());
        let trusting = policy(&[k.public_key()]);
        let name = "auto-20260101T000000Z";
        let good = signed_backup(dir.path(), &k, name);
        // Only the manifest and its signature have arrived.
        std::fs::remove_file(good.join("SHA256SUMS")).unwrap();
        std::fs::remove_file(good.join("SHA256SUMS.minisig")).unwrap();
        let j = trusting.judge_manifest(&good, name, None);
        assert_eq!(j.verdict, Verdict::Verified, "{j:?}");
        assert!(j.signed);
        // Bound to its backup's name.
        let j = trusting.judge_manifest(&good, "auto-20270101T000000Z", None);
        assert_eq!(j.verdict, Verdict::Refused, "{j:?}");
        // An altered manifest.
        std::fs::write(good.join("manifest.json"), "{}").unwrap();
        let j = trusting.judge_manifest(&good, name, None);
        assert_eq!(j.verdict, Verdict::Refused, "{j:?}");
        // No signature after the manifest: unsigned, with the way out.
        std::fs::remove_file(good.join("manifest.json.minisig")).unwrap();
        let j = trusting.judge_manifest(&good, name, None);
        assert_eq!((j.verdict, j.signed), (Verdict::Refused, false), "{j:?}");
        assert!(
            j.detail.contains(UNSIGNED_REFUSED) && j.detail.contains("import it first"),
            "{j:?}"
        );
        let j = trusting
            .clone()
            .allowing_unsigned(true)
            .judge_manifest(&good, name, None);
        assert_eq!(j.verdict, Verdict::NotChecked, "{j:?}");
        let j = policy(&[]).judge_manifest(&good, name, None);
        assert_eq!(j.verdict, Verdict::NotChecked, "{j:?}");
    }

    #[test]
    fn judgements() {
        let dir = tempfile::tempdir().unwrap();
        let k = key(dir.path());
        let other =
            SigningKey::load(&generate(&dir.path().join("o")).unwrap().secret_key_file).unwrap();
        let trusting = policy(&[k.public_key()]);
        let good = signed_backup(dir.path(), &k, "auto-20260101T000000Z");
        let j = trusting.judge(&good, "auto-20260101T000000Z", None);
        assert_eq!(j.verdict, Verdict::Verified, "{j:?}");
        // Renamed: bound to the old name.
        let j = trusting.judge(&good, "auto-20270101T000000Z", None);
        assert_eq!(j.verdict, Verdict::Refused, "{j:?}");
        // Another key.
        let foreign = signed_backup(dir.path(), &other, "auto-20260102T000000Z");
        let j = trusting.judge(&foreign, "auto-20260102T000000Z", None);
        assert!(j.detail.contains("not a trusted key"), "{j:?}");
        // Unsigned, allowed or not; no trusted key at all.
        let unsigned = dir.path().join("auto-20260103T000000Z");
        std::fs::create_dir(&unsigned).unwrap();
        let j = trusting.judge(&unsigned, "auto-20260103T000000Z", None);
        assert_eq!(
            (j.verdict, j.detail.as_str(), j.signed),
            (Verdict::Refused, UNSIGNED_REFUSED, false)
        );
        let j = trusting.clone().allowing_unsigned(true).judge(
            &unsigned,
            "auto-20260103T000000Z",
            None,
        );
        assert_eq!(j.verdict, Verdict::NotChecked);
        let j = policy(&[]).judge(&good, "auto-20260101T000000Z", None);
        assert_eq!(j.verdict, Verdict::NotChecked);
        // Altered content; a signature that is a symlink, garbage, huge or missing.
        std::fs::write(good.join("SHA256SUMS"), "x").unwrap();
        let j = trusting.judge(&good, "auto-20260101T000000Z", None);
        assert!(j.detail.contains("altered"), "{j:?}");
        std::fs::write(good.join("SHA256SUMS"), "").unwrap();
        let sig = good.join("SHA256SUMS.minisig");
        type Maker<'a> = Box<dyn Fn() + 'a>;
        let makers: [(&str, Maker); 4] = [
            (
                "symbolic link",
                Box::new(|| std::os::unix::fs::symlink("/dev/zero", &sig).unwrap()),
            ),
            (
                "not a minisign signature",
                Box::new(|| std::fs::write(&sig, "garbage").unwrap()),
            ),
            (
                "more than",
                Box::new(|| std::fs::write(&sig, vec![b'a'; 10_000]).unwrap()),
            ),
            ("missing", Box::new(|| ())),
        ];
        for (what, make) in makers {
            let _ = std::fs::remove_file(&sig);
            make();
            let j = trusting.judge(&good, "auto-20260101T000000Z", None);
            assert_eq!(j.verdict, Verdict::Refused, "{what}");
            assert!(j.detail.contains(what), "{what}: {j:?}");
        }
        // Unusable trusted keys refuse everything.
        let broken = SignaturePolicy::load_or_refuse_all(&SigningConfig {
            trusted_public_key_file: Some(dir.path().join("nope.pub")),
            ..SigningConfig::default()
        });
        assert_eq!(broken.judge(&unsigned, "x", None).verdict, Verdict::Refused);
    }

    #[test]
    fn public_keys_from_config_and_files() {
        let dir = tempfile::tempdir().unwrap();
        let g = generate(&dir.path().join("k")).unwrap();
        let p = SignaturePolicy::load(&SigningConfig {
            trusted_public_key_file: Some(g.public_key_file.clone()),
            ..SigningConfig::default()
        })
        .unwrap();
        assert!(p.enforced());
        for bad in [
            "",
            "RW",
            "age1xyz",
            &g.public_key[..55],
            &format!("{}A", g.public_key),
        ] {
            let c = SigningConfig {
                trusted_public_keys: vec![bad.to_string()],
                ..SigningConfig::default()
            };
            assert!(c.validate().is_err(), "{bad}");
        }
    }

    /// The crash/regression corpus of signature files: each one, in place of either
    /// signature of a correctly signed backup, is refused (and nothing panics).
    #[test]
    fn corpus_of_signature_files_is_refused() {
        let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/corpus/signature");
        let dir = tempfile::tempdir().unwrap();
        let k = key(dir.path());
        let trusting = policy(&[k.public_key()]);
        let name = "auto-20260101T000000Z";
        let b = signed_backup(dir.path(), &k, name);
        let mut cases = 0;
        for entry in std::fs::read_dir(&corpus).unwrap() {
            let bytes = std::fs::read(entry.unwrap().path()).unwrap();
            for (_, sig) in SIGNED_FILES {
                let good = std::fs::read(b.join(sig)).unwrap();
                std::fs::write(b.join(sig), &bytes).unwrap();
                let j = trusting.judge(&b, name, None);
                assert_eq!(j.verdict, Verdict::Refused, "{sig}: {j:?}");
                std::fs::write(b.join(sig), good).unwrap();
                cases += 1;
            }
        }
        assert!(cases >= 20, "corpus missing: {}", corpus.display());
        assert_eq!(trusting.judge(&b, name, None).verdict, Verdict::Verified);
    }

    /// A signature with the trusted key's id but a short global signature made minisign 0.10
    /// panic (found by the property test): refused, never a panic.
    #[test]
    fn a_short_global_signature_with_a_trusted_key_id_is_refused() {
        use ct_codecs::{Base64, Encoder};
        let dir = tempfile::tempdir().unwrap();
        let k = key(dir.path());
        let trusting = policy(&[k.public_key()]);
        let name = "auto-20260101T000000Z";
        let b = signed_backup(dir.path(), &k, name);
        for len in [0usize, 30, 63, 65, 200] {
            for (_, sig) in SIGNED_FILES {
                let good = std::fs::read_to_string(b.join(sig)).unwrap();
                let mut lines: Vec<String> = good.lines().map(str::to_string).collect();
                lines[3] = Base64::encode_to_string(vec![7u8; len]).unwrap();
                std::fs::write(b.join(sig), lines.join("\n") + "\n").unwrap();
                let j = trusting.judge(&b, name, None);
                assert_eq!(j.verdict, Verdict::Refused, "{sig} {len}: {j:?}");
                std::fs::write(b.join(sig), good).unwrap();
            }
        }
        assert_eq!(trusting.judge(&b, name, None).verdict, Verdict::Verified);
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// One key for every case: key generation fsyncs two files.
        static SHARED_KEY: std::sync::LazyLock<(tempfile::TempDir, SigningKey)> =
            std::sync::LazyLock::new(|| {
                let dir = tempfile::tempdir().unwrap();
                let k = key(dir.path());
                (dir, k)
            });

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            /// Any change to the signed lines of a signature (everything but the untrusted
            /// comment, which minisign does not sign) is refused unless it decodes to the very
            /// same signature; any bytes at all never panic and never verify.
            #[test]
            fn altered_signatures_never_verify(
                line in 1usize..4,
                at in any::<prop::sample::Index>(),
                byte in any::<u8>(),
                noise in prop::collection::vec(any::<u8>(), 0..600),
            ) {
                let (_, k) = &*SHARED_KEY;
                let dir = tempfile::tempdir().unwrap();
                let trusting = policy(&[k.public_key()]);
                let name = "auto-20260101T000000Z";
                let b = signed_backup(dir.path(), k, name);
                let sig_path = b.join(MANIFEST_SIGNATURE);
                let text = std::fs::read_to_string(&sig_path).unwrap();
                let mut lines: Vec<Vec<u8>> = text.lines().map(|l| l.as_bytes().to_vec()).collect();
                let target = &mut lines[line];
                let i = at.index(target.len());
                prop_assume!(target[i] != byte);
                target[i] = byte;
                let altered = lines.join(&b'\n');
                std::fs::write(&sig_path, &altered).unwrap();
                let j = trusting.judge(&b, name, None);
                if j.verdict != Verdict::Refused {
                    // Only another spelling of the same signature may pass: base64 with
                    // different unused low bits in its last character decodes identically.
                    let same = std::str::from_utf8(&altered)
                        .ok()
                        .and_then(|t| SignatureBox::from_string(t).ok())
                        .map(|s| s.into_string());
                    prop_assert_eq!(same.as_deref(), Some(text.as_str()), "{:?}", j);
                }
                std::fs::write(&sig_path, &noise).unwrap();
                prop_assert_eq!(trusting.judge(&b, name, None).verdict, Verdict::Refused);
            }
        }
    }

    #[test]
    fn the_configuration_names_a_bad_trusted_key() {
        let e = crate::config::Config::from_toml(
            "[signing]\ntrusted_public_keys = [\"RWnotakey\"]\n",
            "/etc/coffer/coffer.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("key `signing.trusted_public_keys`")
                && e.contains("not a minisign public key"),
            "{e}"
        );
        let e = crate::config::Config::from_toml("[signing]\nsecret_key = \"x\"\n", "t")
            .unwrap_err()
            .to_string();
        assert!(e.contains("signing.secret_key"), "{e}");
    }
}
