//! The keys: minisign key pairs made by `coffer keygen --signing`, the unencrypted secret
//! key backups are signed with, and public keys parsed from the configuration.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use minisign::{PublicKey, PublicKeyBox, SecretKey, SecretKeyBox};
use serde::Serialize;

use super::{MAX_KEY_BYTES, SigningError, read_bounded, trusted_comment};

/// A key id as minisign prints it: 16 upper-case hex digits of the little-endian keynum.
pub(super) fn key_id(keynum: &[u8]) -> String {
    let mut bytes = [0u8; 8];
    let n = keynum.len().min(8);
    bytes[..n].copy_from_slice(&keynum[..n]);
    format!("{:016X}", u64::from_le_bytes(bytes))
}

/// Parses a minisign public key (`RW…`, 56 base64 characters).
pub(super) fn parse_public_key(text: &str) -> Result<PublicKey, String> {
    let t = text.trim();
    if t.len() != 56 || !t.starts_with("RW") {
        return Err(
            "not a minisign public key (56 base64 characters starting with `RW`)".to_string(),
        );
    }
    PublicKey::from_base64(t).map_err(|_| "not a minisign public key (bad base64)".to_string())
}

/// The secret key backups are signed with.
pub struct SigningKey {
    secret: SecretKey,
    public: PublicKey,
    path: PathBuf,
}

impl fmt::Debug for SigningKey {
    // minisign's own Debug prints the secret bytes: show only what is public.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("path", &self.path)
            .field("key_id", &self.key_id())
            .finish()
    }
}

impl SigningKey {
    /// Loads an unencrypted minisign secret key file, which must be a regular file not
    /// readable by group or others.
    pub fn load(path: &Path) -> Result<SigningKey, SigningError> {
        let bad = |reason: String| SigningError::SecretKey {
            path: path.to_path_buf(),
            reason,
        };
        let meta = std::fs::metadata(path).map_err(|e| bad(e.to_string()))?;
        if meta.is_file() && meta.permissions().mode() & 0o077 != 0 {
            return Err(bad(format!(
                "it is readable or writable by group or others (mode {:04o}): chmod 600 {}",
                meta.permissions().mode() & 0o7777,
                path.display()
            )));
        }
        let bytes = read_bounded(path, MAX_KEY_BYTES, true).map_err(|e| bad(e.to_string()))?;
        let secret = parse_secret_key(&bytes).map_err(bad)?;
        let public = PublicKey::from_secret_key(&secret)
            .map_err(|_| bad("its public half cannot be derived".into()))?;
        Ok(SigningKey {
            secret,
            public,
            path: path.to_path_buf(),
        })
    }

    /// The public key, as minisign's `RW…` base64 string.
    #[cfg(test)]
    pub fn public_key(&self) -> String {
        self.public.to_base64()
    }

    /// The key id, as minisign prints it.
    pub fn key_id(&self) -> String {
        key_id(self.public.keynum())
    }

    /// Signs `bytes`, the content of `file` in backup `backup`, and returns the text of the
    /// `.minisig` file.
    pub fn sign(&self, backup: &str, file: &str, bytes: &[u8]) -> Result<String, SigningError> {
        let comment = trusted_comment(backup, file);
        let untrusted = format!("signature of {file} by coffer key {}", self.key_id());
        minisign::sign(
            Some(&self.public),
            &self.secret,
            bytes,
            Some(&comment),
            Some(&untrusted),
        )
        .map(|b| b.into_string())
        .map_err(|e| SigningError::Sign {
            path: self.path.clone(),
            file: file.to_string(),
            reason: e.to_string(),
        })
    }
}

/// Parses the text of an unencrypted minisign secret key file. The error never quotes it.
fn parse_secret_key(bytes: &[u8]) -> Result<SecretKey, String> {
    let not_a_key = || {
        "not a minisign secret key (two lines: `untrusted comment: …` and the base64 key)"
            .to_string()
    };
    let text = std::str::from_utf8(bytes).map_err(|_| not_a_key())?;
    let mut lines = text.lines();
    let comment = lines.next().ok_or_else(not_a_key)?;
    let key = lines.next().ok_or_else(not_a_key)?.trim();
    if !comment.starts_with("untrusted comment:") || key.is_empty() {
        return Err(not_a_key());
    }
    let boxed =
        SecretKeyBox::from_string(&format!("{comment}\n{key}\n")).map_err(|_| not_a_key())?;
    SecretKey::from_unencrypted_box(boxed).map_err(|e| {
        let e = e.to_string();
        if e.contains("encrypted") {
            "it is protected by a password: unattended backups need a key without one (minisign -G -W, or coffer keygen --signing)".to_string()
        } else if e.contains("Corrupted") {
            "the key is corrupted (its checksum does not match)".to_string()
        } else {
            not_a_key()
        }
    })
}

/// A new key pair on disk.
#[derive(Debug, Clone, Serialize)]
pub struct GeneratedKey {
    /// The secret key file (0600).
    pub secret_key_file: PathBuf,
    /// The public key file (`<secret>.pub`, 0644).
    pub public_key_file: PathBuf,
    /// The public key, minisign's `RW…` string.
    pub public_key: String,
    /// Its key id.
    pub key_id: String,
}

/// Writes a new unencrypted minisign key pair: `path` (secret, created 0600 with O_EXCL)
/// and `path.pub`. Never replaces an existing file.
pub fn generate(path: &Path) -> Result<GeneratedKey, SigningError> {
    let mut pub_name = path.as_os_str().to_owned();
    pub_name.push(".pub");
    let pub_path = PathBuf::from(pub_name);
    for p in [path, pub_path.as_path()] {
        if p.symlink_metadata().is_ok() {
            return Err(SigningError::Exists {
                path: p.to_path_buf(),
            });
        }
    }
    let pair =
        minisign::KeyPair::generate_unencrypted_keypair().map_err(|e| SigningError::Sign {
            path: path.to_path_buf(),
            file: "a new key".into(),
            reason: e.to_string(),
        })?;
    let id = key_id(pair.pk.keynum());
    let secret_text = pair
        .sk
        .to_box(Some(&format!("coffer signing secret key {id}")))
        .map_err(|e| SigningError::Sign {
            path: path.to_path_buf(),
            file: "a new key".into(),
            reason: e.to_string(),
        })?
        .into_string();
    let public_text = pair
        .pk
        .to_box()
        .map(PublicKeyBox::into_string)
        .map_err(|e| SigningError::Sign {
            path: pub_path.clone(),
            file: "a new key".into(),
            reason: e.to_string(),
        })?;
    write_new(path, secret_text.as_bytes(), 0o600)?;
    if let Err(e) = write_new(&pub_path, public_text.as_bytes(), 0o644) {
        // Only this call created the secret file (O_EXCL): remove it so a retry works.
        let _ = std::fs::remove_file(path);
        return Err(e);
    }
    Ok(GeneratedKey {
        secret_key_file: path.to_path_buf(),
        public_key_file: pub_path,
        public_key: pair.pk.to_base64(),
        key_id: id,
    })
}

/// Creates a new file (O_EXCL, no following a symlink) with `mode`, writes and fsyncs it.
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), SigningError> {
    let err = |source: io::Error| {
        if source.kind() == io::ErrorKind::AlreadyExists {
            SigningError::Exists {
                path: path.to_path_buf(),
            }
        } else {
            SigningError::Write {
                path: path.to_path_buf(),
                source,
            }
        }
    };
    let mut f: File = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(err)?;
    f.write_all(bytes).and_then(|()| f.sync_all()).map_err(err)
}
