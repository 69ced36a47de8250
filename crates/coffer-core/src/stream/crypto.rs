//! age encryption: recipients for backups, identities for restores, key generation.
//!
//! coffer writes the standard age format, so `age -d -i key.txt postgres.sql.gz.age` reads
//! any encrypted artifact without coffer. Backups need only public keys (recipients); the
//! identity (secret key) is needed only to verify or restore.

use std::fs;
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use age::secrecy::ExposeSecret;

/// Why an encryption setting or stream failed.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// A recipient string is not an age or SSH public key.
    #[error(
        "invalid age recipient `{recipient}` in {origin}: expected an age1… key or an SSH public key (ssh-ed25519/ssh-rsa)"
    )]
    BadRecipient {
        /// The offending text, shortened.
        recipient: String,
        /// `encryption.recipients` or the recipients file and line.
        origin: String,
    },
    /// A recipients file could not be read.
    #[error("cannot read age recipients file {path}: {source}; check encryption.recipients_file")]
    RecipientsFile {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// Encryption was configured but named no recipient.
    #[error(
        "encryption is configured but no recipient was found in {origin}: add an age1… key or an SSH public key"
    )]
    NoRecipients {
        /// Where recipients were looked for.
        origin: String,
    },
    /// The identity file could not be read or parsed.
    #[error(
        "cannot load age identity file {path}: {reason}; check encryption.identity_file (or --identity)"
    )]
    Identity {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// An encrypted artifact was given but no identity is configured.
    #[error(
        "{artifact} is age-encrypted but no identity file is configured: set encryption.identity_file or pass --identity"
    )]
    NoIdentity {
        /// The encrypted artifact.
        artifact: String,
    },
    /// The identity does not match any recipient of the artifact, or the header is damaged.
    #[error("cannot decrypt {artifact}: {reason}")]
    Decrypt {
        /// The artifact.
        artifact: String,
        /// Why (wrong identity, damaged header…).
        reason: String,
    },
    /// The key file to be written exists already.
    #[error("cannot write identity file {path}: {source}")]
    Keygen {
        /// The file.
        path: PathBuf,
        /// The I/O error (e.g. it exists: coffer never overwrites a key).
        source: io::Error,
    },
}

/// Parsed recipients, ready to encrypt to.
pub struct Recipients {
    keys: Vec<Box<dyn age::Recipient + Send + Sync>>,
}

impl std::fmt::Debug for Recipients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Recipients({})", self.keys.len())
    }
}

impl Recipients {
    /// Parses `encryption.recipients` and the lines of `encryption.recipients_file`.
    /// Any unreadable file or invalid line is an error: a backup must never silently go out
    /// encrypted to fewer keys than configured.
    pub fn load(inline: &[String], file: Option<&Path>) -> Result<Recipients, CryptoError> {
        let mut keys = Vec::new();
        for r in inline {
            keys.push(parse_recipient(r, "encryption.recipients")?);
        }
        let mut origin = "encryption.recipients".to_string();
        if let Some(path) = file {
            origin = path.display().to_string();
            let text = fs::read_to_string(path).map_err(|source| CryptoError::RecipientsFile {
                path: path.to_path_buf(),
                source,
            })?;
            for (i, line) in text.lines().enumerate() {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                keys.push(parse_recipient(
                    line,
                    &format!("{}:{}", path.display(), i + 1),
                )?);
            }
        }
        if keys.is_empty() {
            return Err(CryptoError::NoRecipients { origin });
        }
        Ok(Recipients { keys })
    }

    /// Wraps `output` in an age encryption stream. Call [`age::stream::StreamWriter::finish`]
    /// at the end, or the last chunk is never written.
    pub fn encrypt<W: Write>(&self, output: W) -> io::Result<age::stream::StreamWriter<W>> {
        let encryptor = age::Encryptor::with_recipients(
            self.keys.iter().map(|k| k.as_ref() as &dyn age::Recipient),
        )
        .map_err(io::Error::other)?;
        encryptor.wrap_output(output)
    }
}

fn parse_recipient(
    text: &str,
    origin: &str,
) -> Result<Box<dyn age::Recipient + Send + Sync>, CryptoError> {
    let text = text.trim();
    if text.starts_with("age1") {
        if let Ok(r) = age::x25519::Recipient::from_str(text) {
            return Ok(Box::new(r));
        }
    } else if text.starts_with("ssh-")
        && let Ok(r) = age::ssh::Recipient::from_str(text)
    {
        return Ok(Box::new(r));
    }
    Err(CryptoError::BadRecipient {
        recipient: text.chars().take(40).collect(),
        origin: origin.to_string(),
    })
}

/// Identities (secret keys) loaded from a file, to decrypt with. Cloning shares the keys
/// (a pull hands them to the thread that verifies the download).
#[derive(Clone)]
pub struct Identities {
    keys: std::sync::Arc<[Box<dyn age::Identity + Send + Sync>]>,
    path: PathBuf,
}

impl std::fmt::Debug for Identities {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        write!(f, "Identities({})", self.path.display())
    }
}

impl Identities {
    /// Loads an age identity file (`AGE-SECRET-KEY-…` lines) or an unencrypted SSH private key.
    pub fn load(path: &Path) -> Result<Identities, CryptoError> {
        let err = |reason: String| CryptoError::Identity {
            path: path.to_path_buf(),
            reason,
        };
        let bytes = fs::read(path).map_err(|e| err(e.to_string()))?;
        let text = String::from_utf8_lossy(&bytes);
        let mut keys: Vec<Box<dyn age::Identity + Send + Sync>> = Vec::new();
        if text.contains("-----BEGIN OPENSSH PRIVATE KEY-----")
            || text.contains("-----BEGIN RSA PRIVATE KEY-----")
        {
            let id = age::ssh::Identity::from_buffer(
                BufReader::new(&bytes[..]),
                Some(path.display().to_string()),
            )
            .map_err(|e| err(format!("not a usable SSH private key ({e})")))?;
            match id {
                age::ssh::Identity::Unencrypted(_) => keys.push(Box::new(id)),
                age::ssh::Identity::Encrypted(_) => {
                    return Err(err(
                        "passphrase-protected SSH keys are not supported; use an age identity or an unencrypted key file readable only by root".into(),
                    ));
                }
                age::ssh::Identity::Unsupported(k) => {
                    return Err(err(format!("unsupported SSH key type {k:?}")));
                }
            }
        } else {
            for (i, line) in text.lines().enumerate() {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                // Parse line by line so an error can name the line without echoing the key.
                let id = age::x25519::Identity::from_str(line).map_err(|_| {
                    err(format!(
                        "line {} is not an AGE-SECRET-KEY-… identity",
                        i + 1
                    ))
                })?;
                keys.push(Box::new(id));
            }
        }
        if keys.is_empty() {
            return Err(err("the file holds no identity".into()));
        }
        Ok(Identities {
            keys: keys.into(),
            path: path.to_path_buf(),
        })
    }

    /// The file the identities came from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Opens an age stream for reading; `artifact` names it in errors.
    pub fn decrypt<R: Read>(
        &self,
        input: R,
        artifact: &str,
    ) -> Result<age::stream::StreamReader<R>, CryptoError> {
        let err = |reason: String| CryptoError::Decrypt {
            artifact: artifact.to_string(),
            reason,
        };
        let decryptor = age::Decryptor::new(input)
            .map_err(|e| err(format!("not a readable age file ({e})")))?;
        decryptor
            .decrypt(self.keys.iter().map(|k| k.as_ref() as &dyn age::Identity))
            .map_err(|e| match e {
                age::DecryptError::NoMatchingKeys => err(format!(
                    "the identity in {} does not match any recipient of this backup; use the key the backup was encrypted to",
                    self.path.display()
                )),
                other => err(other.to_string()),
            })
    }
}

/// Generates a new X25519 identity, writes it to `path` (mode 0600, never overwriting an
/// existing file) in the format `age-keygen` writes, and returns the public key.
pub fn keygen(path: &Path) -> Result<String, CryptoError> {
    let identity = age::x25519::Identity::generate();
    let public = identity.to_public().to_string();
    let contents = format!(
        "# created: {}\n# public key: {public}\n{}\n",
        chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ"),
        identity.to_string().expose_secret()
    );
    let write = || -> io::Result<()> {
        let mut f = crate::util::fsutil::create_private(path)?;
        f.write_all(contents.as_bytes())?;
        f.sync_all()
    };
    write().map_err(|source| CryptoError::Keygen {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(public)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_wrong_key() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("key.txt");
        let public = keygen(&key).unwrap();
        assert!(public.starts_with("age1"));
        assert!(keygen(&key).is_err(), "must not overwrite");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );

        let recipients = Recipients::load(&[public], None).unwrap();
        let mut w = recipients.encrypt(Vec::new()).unwrap();
        w.write_all(b"hello coffer").unwrap();
        let sealed = w.finish().unwrap();

        let ids = Identities::load(&key).unwrap();
        let mut out = String::new();
        ids.decrypt(&sealed[..], "x")
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        assert_eq!(out, "hello coffer");

        let other = dir.path().join("other.txt");
        keygen(&other).unwrap();
        let e = Identities::load(&other)
            .unwrap()
            .decrypt(&sealed[..], "postgres.sql.gz.age")
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("postgres.sql.gz.age") && e.contains("does not match"),
            "{e}"
        );
        assert!(!e.contains("AGE-SECRET-KEY"), "{e}");
    }

    #[test]
    fn bad_recipients_are_rejected_before_anything_starts() {
        let e = Recipients::load(&["age1notakey".into()], None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("invalid age recipient"), "{e}");
        let e = Recipients::load(&[], Some(Path::new("/nonexistent/recipients.txt")))
            .unwrap_err()
            .to_string();
        assert!(e.contains("/nonexistent/recipients.txt"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("r.txt");
        fs::write(&f, "# only comments\n\n").unwrap();
        assert!(matches!(
            Recipients::load(&[], Some(&f)),
            Err(CryptoError::NoRecipients { .. })
        ));
        fs::write(&f, "# team\nssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHsKLqeplhpW+uObz5dvMgjz1OxfM/XXUB+VHtZ6isGN ops@host\n").unwrap();
        assert_eq!(Recipients::load(&[], Some(&f)).unwrap().keys.len(), 1);
        fs::write(&f, "ssh-ed25519 garbage\n").unwrap();
        let e = Recipients::load(&[], Some(&f)).unwrap_err().to_string();
        assert!(e.contains("r.txt:1"), "{e}");
    }

    #[test]
    fn identity_errors_never_echo_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("id.txt");
        fs::write(&f, "AGE-SECRET-KEY-1NOTVALIDBUTSECRETLOOKING\n").unwrap();
        let e = Identities::load(&f).unwrap_err().to_string();
        assert!(e.contains("line 1") && !e.contains("NOTVALID"), "{e}");
    }
}
