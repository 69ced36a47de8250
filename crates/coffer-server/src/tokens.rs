//! Bearer tokens: the tokens file (`server.tokens_file`), one `NAME ROLE SHA256-OF-TOKEN`
//! per line, mode 0600, and the check of a presented token against it.
//!
//! Only hashes are stored: a token is shown once, when [`add`] makes it. A presented token
//! is hashed and compared with every stored hash in constant time, so neither the timing
//! nor an early exit tells how much of a hash matched. Tokens are never logged and never
//! appear in an error message.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use coffer_core::{Error, ErrorKind};
use serde::Serialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The largest tokens file read: far above any real one, small enough to never matter.
const MAX_FILE_BYTES: u64 = 1 << 20;

/// The longest token name (names appear in the job records, so keep them short).
const MAX_NAME_CHARS: usize = 64;

/// The longest presented token hashed: real ones are 71 characters.
const MAX_TOKEN_BYTES: usize = 256;

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// List, read status and jobs, download.
    Viewer,
    /// Everything a viewer may, plus trigger, delete and restore.
    Admin,
}

impl Role {
    /// The role's name in the tokens file.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Role, String> {
        match s {
            "viewer" => Ok(Role::Viewer),
            "admin" => Ok(Role::Admin),
            other => Err(format!("unknown role `{other}`: use admin or viewer")),
        }
    }
}

/// One line of the tokens file.
#[derive(Clone)]
struct Entry {
    name: String,
    role: Role,
    hash: [u8; 32],
}

/// The tokens the server accepts.
#[derive(Clone)]
pub struct Tokens {
    entries: Vec<Entry>,
}

/// Names only: the hashes stay out of logs too.
impl fmt::Debug for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.entries.iter().map(|e| (&e.name, e.role)))
            .finish()
    }
}

/// Who presented a valid token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The token's name.
    pub name: String,
    /// What it may do.
    pub role: Role,
}

fn invalid(text: String) -> Error {
    Error::new(ErrorKind::InvalidConfig, std::io::Error::other(text))
}

impl Tokens {
    /// Reads the tokens file. Refuses a file that is missing, not a regular file (a symlink
    /// included), readable or writable by group or others, malformed, or without tokens.
    pub fn load(path: &Path) -> Result<Tokens, Error> {
        let text = read_private(path)?.ok_or_else(|| {
            invalid(format!(
                "tokens file {} does not exist: add a token first (server.tokens_file)",
                path.display()
            ))
        })?;
        let tokens = parse(&text).map_err(|r| {
            invalid(format!(
                "tokens file {}: {r}; fix or remove that line",
                path.display()
            ))
        })?;
        if tokens.entries.is_empty() {
            return Err(invalid(format!(
                "tokens file {} holds no token: the server would refuse every request; add a token first",
                path.display()
            )));
        }
        Ok(tokens)
    }

    /// A set of tokens from `(name, role, token)` triples, for tests and embedding.
    pub fn from_plain<'a>(tokens: impl IntoIterator<Item = (&'a str, Role, &'a str)>) -> Tokens {
        Tokens {
            entries: tokens
                .into_iter()
                .map(|(name, role, token)| Entry {
                    name: name.into(),
                    role,
                    hash: Sha256::digest(token.as_bytes()).into(),
                })
                .collect(),
        }
    }

    /// How many tokens there are.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Who `token` belongs to, if anyone. Every stored hash is compared, in constant time.
    pub fn authenticate(&self, token: &str) -> Option<Caller> {
        if token.is_empty() || token.len() > MAX_TOKEN_BYTES {
            return None;
        }
        let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let mut found = None;
        for entry in &self.entries {
            if bool::from(entry.hash.ct_eq(&hash)) && found.is_none() {
                found = Some(Caller {
                    name: entry.name.clone(),
                    role: entry.role,
                });
            }
        }
        found
    }
}

/// Parses the file's text; `Err` names the line and what is wrong with it (never its hash).
fn parse(text: &str) -> Result<Tokens, String> {
    let mut entries: Vec<Entry> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [name, role, hash] = fields[..] else {
            return Err(format!(
                "line {n} is not `NAME ROLE SHA256-OF-TOKEN` ({} fields)",
                fields.len()
            ));
        };
        check_name(name).map_err(|r| format!("line {n}: {r}"))?;
        let role: Role = role.parse().map_err(|r| format!("line {n}: {r}"))?;
        let mut bytes = [0u8; 32];
        if hash.len() != 64 || hex::decode_to_slice(hash, &mut bytes).is_err() {
            return Err(format!(
                "line {n}: the third field is not a SHA-256 in hex (64 characters)"
            ));
        }
        if entries.iter().any(|e| e.name == name) {
            return Err(format!("line {n}: the name `{name}` is used twice"));
        }
        entries.push(Entry {
            name: name.into(),
            role,
            hash: bytes,
        });
    }
    Ok(Tokens { entries })
}

/// A token name: letters, digits, `.`, `_`, `-`, at most 64, not starting with `-`.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.chars().count() <= MAX_NAME_CHARS
        && !name.starts_with('-')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "the token name {name:?} is not 1-{MAX_NAME_CHARS} letters, digits, `.`, `_` or `-`"
        ))
    }
}

/// The file's text, `None` when it does not exist. Refuses a symlink, a non-regular file and
/// one that group or others may read or write.
fn read_private(path: &Path) -> Result<Option<String>, Error> {
    // Opened without following a final symlink and without blocking on a fifo, then judged
    // by what was opened: a check on the path before opening it could be raced.
    let flags = rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK;
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags(flags.bits() as i32)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        // ELOOP: the final component is a symbolic link.
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) => {
            return Err(not_regular(path));
        }
        Err(e) => {
            return Err(invalid(format!(
                "cannot read tokens file {}: {e}",
                path.display()
            )));
        }
    };
    let meta = file
        .metadata()
        .map_err(|e| invalid(format!("cannot read tokens file {}: {e}", path.display())))?;
    if !meta.file_type().is_file() {
        return Err(not_regular(path));
    }
    if meta.mode() & 0o077 != 0 {
        return Err(invalid(format!(
            "tokens file {} is accessible by group or others (mode {:o}): run chmod 600 on it",
            path.display(),
            meta.mode() & 0o777
        )));
    }
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| invalid(format!("cannot read tokens file {}: {e}", path.display())))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(invalid(format!(
            "tokens file {} is larger than {} bytes: it holds one short line per token; check that server.tokens_file names the right file",
            path.display(),
            MAX_FILE_BYTES
        )));
    }
    let text = String::from_utf8(bytes).map_err(|_| {
        invalid(format!(
            "tokens file {} is not UTF-8 text: check that server.tokens_file names the right file",
            path.display()
        ))
    })?;
    Ok(Some(text))
}

fn not_regular(path: &Path) -> Error {
    invalid(format!(
        "tokens file {} is not a regular file (a symlink, directory or device): point server.tokens_file at the file itself",
        path.display()
    ))
}

/// A new random token: `coffer_` and 64 hex digits (256 bits from the kernel).
fn generate() -> Result<String, Error> {
    let mut bytes = [0u8; 32];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| {
            Error::new(
                ErrorKind::Failed,
                std::io::Error::other(format!("cannot read random bytes from /dev/urandom: {e}")),
            )
        })?;
    Ok(format!("coffer_{}", hex::encode(bytes)))
}

/// Makes a token for `name` with `role`, stores its hash in the tokens file (created 0600
/// when missing) and returns the token: it cannot be shown again.
pub fn add(path: &Path, name: &str, role: Role) -> Result<String, Error> {
    check_name(name).map_err(invalid)?;
    let existing = read_private(path)?;
    if let Some(text) = &existing {
        let tokens = parse(text)
            .map_err(|r| invalid(format!("tokens file {}: {r}; fix it first", path.display())))?;
        if tokens.entries.iter().any(|e| e.name == name) {
            return Err(invalid(format!(
                "tokens file {} already has a token named `{name}`: choose another name, or remove its line first",
                path.display()
            )));
        }
    }
    let token = generate()?;
    let hash = hex::encode(Sha256::digest(token.as_bytes()));
    let mut line = format!("{name} {role} {hash}\n");
    if existing
        .as_deref()
        .is_some_and(|t| !t.is_empty() && !t.ends_with('\n'))
    {
        line.insert(0, '\n');
    }
    let mut options = OpenOptions::new();
    options
        .append(true)
        .mode(0o600)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32);
    if existing.is_none() {
        options.create_new(true);
    }
    let mut file = options
        .open(path)
        .map_err(|e| invalid(format!("cannot write tokens file {}: {e}", path.display())))?;
    file.write_all(line.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| {
            Error::new(
                ErrorKind::Failed,
                std::io::Error::other(format!("cannot write tokens file {}: {e}", path.display())),
            )
        })?;
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn added_tokens_authenticate_with_their_role_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens");
        let admin = add(&path, "ops", Role::Admin).unwrap();
        let viewer = add(&path, "grafana", Role::Viewer).unwrap();
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let text = fs::read_to_string(&path).unwrap();
        assert!(!text.contains(&admin[7..]), "the token itself is stored");
        let tokens = Tokens::load(&path).unwrap();
        assert_eq!(tokens.authenticate(&admin).unwrap().role, Role::Admin);
        let who = tokens.authenticate(&viewer).unwrap();
        assert_eq!((who.name.as_str(), who.role), ("grafana", Role::Viewer));
        assert_eq!(tokens.authenticate("coffer_00"), None);
        assert_eq!(tokens.authenticate(""), None);
        assert!(
            add(&path, "ops", Role::Viewer)
                .unwrap_err()
                .to_string()
                .contains("already")
        );
    }

    #[test]
    fn unsafe_or_malformed_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens");
        let msg = |p: &Path| Tokens::load(p).unwrap_err().to_string();
        assert!(msg(&path).contains("does not exist"));
        fs::write(&path, "# nothing yet\n").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        assert!(msg(&path).contains("holds no token"));
        let hash = "a".repeat(64);
        for (text, why) in [
            (format!("ops admin {hash} extra\n"), "4 fields"),
            (format!("ops root {hash}\n"), "unknown role"),
            ("ops admin abc\n".to_string(), "not a SHA-256"),
            (format!("o/ps admin {hash}\n"), "token name"),
            (
                format!("ops admin {hash}\nops viewer {hash}\n"),
                "used twice",
            ),
        ] {
            fs::write(&path, text).unwrap();
            assert!(msg(&path).contains(why), "{why}: {}", msg(&path));
        }
        fs::write(&path, format!("ops admin {hash}\n")).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        assert!(msg(&path).contains("chmod 600"));
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        assert!(msg(&link).contains("not a regular file"));
        assert!(add(&link, "x", Role::Admin).is_err());
        // A fifo is judged, not waited on; a directory is not a file either.
        let fifo = dir.path().join("fifo");
        rustix::fs::mkfifoat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
        )
        .unwrap();
        assert!(msg(&fifo).contains("not a regular file"));
        assert!(msg(dir.path()).contains("not a regular file"));
        // Too large is refused whole, never read as its first megabyte.
        let big = dir.path().join("big");
        let line = format!("ops admin {hash}\n");
        let copies = (MAX_FILE_BYTES as usize) / line.len() + 1;
        fs::write(&big, line.repeat(copies)).unwrap();
        fs::set_permissions(&big, fs::Permissions::from_mode(0o600)).unwrap();
        assert!(msg(&big).contains("larger than"), "{}", msg(&big));
    }
}
