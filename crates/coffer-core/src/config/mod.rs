//! Configuration: a TOML file, overridden by the environment, overridden by flags.
//!
//! The file is `--config PATH`, else `$COFFER_CONFIG`, else `/etc/coffer/coffer.toml` when
//! it exists; with none, every setting has a default (libpq defaults for the database,
//! `./backups` for the backup root). Unknown keys and invalid values are rejected, naming
//! the file, the key and the reason, because a typo in a backup config must not silently
//! fall back to a default.
//!
//! Environment overrides (the shell-script-era names are kept so existing `.env` files work):
//!
//! | variable | setting |
//! |---|---|
//! | `BACKUP_DIR`, `COFFER_BACKUP_DIR` | `backup_dir` |
//! | `WORKSPACE_HOST_PATH`, `COFFER_WORKSPACE_PATH` | `workspace.path` |
//! | `BACKUP_RETENTION_DAYS`, `COFFER_RETENTION_KEEP_DAYS` | `retention.keep_days` |
//! | `COFFER_DATABASE_URL` | `database.url` |
//! | `COFFER_AGE_IDENTITY_FILE` | `encryption.identity_file` |
//! | `COFFER_REMOTE_URL` | `remote.url` |
//! | `COFFER_REMOTE_ENDPOINT` | `remote.endpoint` |
//!
//! Credentials for the remote are never part of the configuration: each object store reads
//! them from the environment the way its own tools do (`AWS_ACCESS_KEY_ID`, …).
//!
//! The `COFFER_*` name wins over the legacy one when both are set.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::format::manifest::Compression;
use crate::postgres::connection::{ConnectionParams, redact_url};
use crate::remote::location::RemoteUrl;
use crate::root::retention::RetentionPolicy;

/// Where the configuration file is looked for when neither `--config` nor
/// `COFFER_CONFIG` names one.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/coffer/coffer.toml";

/// The backup root used when nothing configures one.
pub const DEFAULT_BACKUP_DIR: &str = "./backups";

/// Default gzip level, the same as `gzip` and the shell scripts.
pub const DEFAULT_COMPRESSION_LEVEL: u32 = 6;
/// zstd level when `compression.level` is not set (the `zstd` CLI's default).
pub const DEFAULT_ZSTD_LEVEL: u32 = 3;

/// The whole configuration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The backup root: one directory per backup below it.
    pub backup_dir: Option<PathBuf>,
    /// Where the database is and how to reach it.
    pub database: DatabaseConfig,
    /// The workspace directory that is archived next to the database.
    pub workspace: WorkspaceConfig,
    /// age encryption of the artifacts.
    pub encryption: EncryptionConfig,
    /// Compression of the artifacts.
    pub compression: CompressionConfig,
    /// `[retention]`: which auto and legacy backups are kept (manual ones always are).
    pub retention: RetentionPolicy,
    /// Commands run around restores and after runs.
    pub hooks: HooksConfig,
    /// How the code's Alembic head is found before a restore.
    pub alembic: AlembicConfig,
    /// Prometheus textfile written after every run.
    pub metrics_file: Option<PathBuf>,
    /// The off-host copy: an object store that `coffer sync` uploads to.
    pub remote: RemoteConfig,
    /// `[signing]`: the key backups are signed with, and the keys they must be signed by.
    pub signing: crate::format::signing::SigningConfig,
    /// `[server]`: the HTTP admin API of `coffer serve`.
    pub server: ServerConfig,
}

/// Default number of parts one multipart upload may have (the S3 limit).
pub const DEFAULT_MAX_PARTS: u32 = 10_000;
/// Default number of parts of one file uploaded at the same time.
pub const DEFAULT_REMOTE_CONCURRENCY: usize = 4;
/// Default time limit of one request to the remote, body included, in seconds.
pub const DEFAULT_REMOTE_TIMEOUT: u64 = 600;
/// Default number of retries of a failed request to the remote.
pub const DEFAULT_REMOTE_MAX_RETRIES: usize = 10;
/// Default time after which a failing request is no longer retried, in seconds.
pub const DEFAULT_REMOTE_RETRY_TIMEOUT: u64 = 180;

/// `[remote]`: the object store backups are copied to (`coffer sync`) and pulled from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RemoteConfig {
    /// `s3://bucket/prefix`, `gs://bucket/prefix`, `az://container/prefix` or
    /// `file:///absolute/path`. Without it there is no remote.
    pub url: Option<String>,
    /// The service endpoint, for S3-compatible stores (MinIO, Ceph, R2, …) and Azurite,
    /// e.g. `https://s3.eu-central-003.backblazeb2.com`.
    pub endpoint: Option<String>,
    /// The region (S3); default: `AWS_REGION`/`AWS_DEFAULT_REGION`, else `us-east-1`.
    pub region: Option<String>,
    /// Virtual-hosted-style requests (`bucket.endpoint`) instead of path style (S3).
    pub virtual_hosted_style: Option<bool>,
    /// Allow plain `http://` endpoints (local test servers only).
    pub allow_http: bool,
    /// Part size of multipart uploads (bytes, or `"64MiB"`); default chosen per artifact:
    /// at least 8 MiB, and large enough to stay within `max_parts`.
    pub part_size: Option<ByteSize>,
    /// Most parts one upload may have: 10000 for S3, 1000 for stricter providers.
    pub max_parts: u32,
    /// Parts of one file in flight at once (two files are uploaded at a time).
    pub concurrency: usize,
    /// Run `coffer sync` after every successful backup.
    pub sync_after_backup: bool,
    /// Which backups the remote keeps; default: the `[retention]` rules.
    pub retention: Option<RetentionPolicy>,
    /// Time limit of one request, body included, in seconds (default 600).
    pub timeout: u64,
    /// Retries of a request that failed for a transient reason (default 10, with backoff).
    pub max_retries: usize,
    /// No retry is started this many seconds after the first attempt (default 180).
    pub retry_timeout: u64,
}

impl Default for RemoteConfig {
    fn default() -> Self {
        RemoteConfig {
            url: None,
            endpoint: None,
            region: None,
            virtual_hosted_style: None,
            allow_http: false,
            part_size: None,
            max_parts: DEFAULT_MAX_PARTS,
            concurrency: DEFAULT_REMOTE_CONCURRENCY,
            sync_after_backup: false,
            retention: None,
            timeout: DEFAULT_REMOTE_TIMEOUT,
            max_retries: DEFAULT_REMOTE_MAX_RETRIES,
            retry_timeout: DEFAULT_REMOTE_RETRY_TIMEOUT,
        }
    }
}

/// A size in bytes, written in the configuration as a number or as text with a binary or
/// decimal unit: `8388608`, `"64MiB"`, `"1 GiB"`, `"100MB"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct ByteSize(pub u64);

impl std::str::FromStr for ByteSize {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let n: u64 = num
            .parse()
            .map_err(|_| format!("`{s}` is not a size (e.g. 67108864 or \"64MiB\")"))?;
        let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "k" | "kib" => 1 << 10,
            "m" | "mib" => 1 << 20,
            "g" | "gib" => 1 << 30,
            "kb" => 1_000,
            "mb" => 1_000_000,
            "gb" => 1_000_000_000,
            other => {
                return Err(format!(
                    "unknown unit `{other}` in `{s}` (use B, KiB, MiB, GiB)"
                ));
            }
        };
        n.checked_mul(mult)
            .map(ByteSize)
            .ok_or_else(|| format!("`{s}` is too large"))
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Number(n) => Ok(ByteSize(n)),
            Raw::Text(t) => t.parse().map_err(serde::de::Error::custom),
        }
    }
}

impl RemoteConfig {
    /// The retention rules for the remote: `remote.retention`, else the local ones.
    pub fn retention_or<'a>(&'a self, local: &'a RetentionPolicy) -> &'a RetentionPolicy {
        self.retention.as_ref().unwrap_or(local)
    }

    fn validate(&self) -> Result<(), (String, String)> {
        if let Some(url) = &self.url {
            RemoteUrl::parse(url).map_err(|e| ("remote.url".to_string(), e))?;
        }
        if let Some(ep) = &self.endpoint {
            let u = url::Url::parse(ep)
                .map_err(|e| ("remote.endpoint".to_string(), format!("`{ep}`: {e}")))?;
            if !matches!(u.scheme(), "http" | "https") {
                return Err((
                    "remote.endpoint".into(),
                    format!("`{ep}` must be an http:// or https:// URL"),
                ));
            }
        }
        if let Some(ByteSize(p)) = self.part_size
            && !((1 << 20)..=(5u64 << 30)).contains(&p)
        {
            return Err((
                "remote.part_size".into(),
                format!("{p} bytes is out of range 1MiB..=5GiB (S3 needs at least 5MiB)"),
            ));
        }
        if !(2..=10_000).contains(&self.max_parts) {
            return Err((
                "remote.max_parts".into(),
                format!("{} is out of range 2..=10000", self.max_parts),
            ));
        }
        if !(1..=64).contains(&self.concurrency) {
            return Err((
                "remote.concurrency".into(),
                format!("{} is out of range 1..=64", self.concurrency),
            ));
        }
        if self.timeout == 0 {
            return Err(("remote.timeout".into(), "must be at least 1 second".into()));
        }
        Ok(())
    }
}

/// `[database]`: which database, and how to run `pg_dump` / `psql` against it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// A `postgres://user:password@host:port/dbname?sslmode=…` URL. Its parts are handed to
    /// `pg_dump` / `psql` as `PG*` environment variables, never as arguments, so the password
    /// does not show in the process list.
    pub url: Option<String>,
    /// An argv prefix under which `pg_dump` and `psql` run, e.g.
    /// `["docker", "compose", "-f", "/opt/app/docker-compose.yml", "exec", "-T", "postgres"]`.
    pub exec: Option<Vec<String>>,
    /// Database name (overrides the URL's; default: libpq's `PGDATABASE` or the user name).
    pub name: Option<String>,
    /// Role to connect as (overrides the URL's).
    pub user: Option<String>,
    /// Also back up the cluster's roles and memberships (`pg_dumpall --roles-only`, which
    /// needs a superuser), so a restore on a fresh server can create the missing roles the
    /// dump needs. Off by default.
    pub include_roles: bool,
}

/// `[workspace]`: the directory archived next to the database.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkspaceConfig {
    /// The workspace directory on the host. Without it only the database is backed up.
    pub path: Option<PathBuf>,
    /// Glob patterns, relative to the workspace, that are not archived
    /// (`cache/**`, `*.tmp`; a pattern without `/` matches at any depth).
    pub exclude: Vec<String>,
}

/// `[encryption]`: age recipients for backups, identity for restores.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EncryptionConfig {
    /// Recipients: `age1…` X25519 public keys or SSH public keys (`ssh-ed25519 …`, `ssh-rsa …`).
    pub recipients: Vec<String>,
    /// A file of recipients, one per line, `#` comments allowed (the `age -R` format).
    pub recipients_file: Option<PathBuf>,
    /// The identity file (`AGE-SECRET-KEY-…` or an SSH private key) used to decrypt.
    /// Only restores and verification need it; backups need only the recipients.
    pub identity_file: Option<PathBuf>,
}

impl EncryptionConfig {
    /// Whether backups are to be encrypted.
    pub fn enabled(&self) -> bool {
        !self.recipients.is_empty() || self.recipients_file.is_some()
    }
}

/// `[compression]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CompressionConfig {
    /// `gzip` (the default: the shell-script-compatible layout) or `zstd` (faster and
    /// smaller; `postgres.sql.zst`, `workspace.tar.zst`, read by the `zstd` CLI).
    pub algorithm: Compression,
    /// gzip 1 (fastest) to 9 (smallest), default 6 as `gzip`; zstd 1 to 19, default 3 as
    /// `zstd`.
    pub level: Option<u32>,
}

impl CompressionConfig {
    /// The level to use: the configured one or the algorithm's default.
    pub fn effective_level(&self) -> u32 {
        self.level.unwrap_or(match self.algorithm {
            Compression::Gzip => DEFAULT_COMPRESSION_LEVEL,
            Compression::Zstd => DEFAULT_ZSTD_LEVEL,
        })
    }
}

/// `[alembic]`: where the code's expected head comes from before a restore.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlembicConfig {
    /// argv whose output names the code's head(s), e.g.
    /// `["docker","compose","run","--rm","backend","alembic","heads"]`.
    pub expected_head_command: Option<Vec<String>>,
    /// The application's migration scripts (`alembic/versions`).
    pub versions_dir: Option<PathBuf>,
}

/// Why a configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read configuration file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML, or a key is unknown or has a value of the wrong type.
    #[error("invalid configuration file {path}: key `{key}`: {reason}")]
    Invalid {
        /// The file (or `environment` / `command line`).
        path: String,
        /// The dotted key, e.g. `compression.level`.
        key: String,
        /// Why it was rejected.
        reason: String,
    },
    /// The paths, taken together, would let coffer archive or delete its own files (see
    /// `crate::workspace::boundaries`); or a path is unusable wherever it came from.
    #[error("configuration refused: {0}")]
    Refused(String),
}

/// A TOML syntax error as `line L, column C: message`. toml's own rendering quotes the
/// offending line, which may be the `url` line with its password: never shown.
fn syntax_reason(text: &str, err: &toml::de::Error) -> String {
    let message = err.message().trim().replace('\n', " ");
    match err.span() {
        Some(span) => {
            let before = &text.as_bytes()[..span.start.min(text.len())];
            let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
            let column = before.iter().rev().take_while(|&&b| b != b'\n').count() + 1;
            format!("line {line}, column {column}: {message}")
        }
        None => message,
    }
}

/// Where a setting came from, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A configuration file.
    File(PathBuf),
    /// No file: defaults.
    Defaults,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::File(p) => write!(f, "{}", p.display()),
            Source::Defaults => f.write_str("(no configuration file)"),
        }
    }
}

/// A configuration and the file it came from.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    /// The settings, with environment overrides applied.
    pub config: Config,
    /// Where they came from.
    pub source: Source,
}

impl Config {
    /// Parses TOML text; `origin` names the file in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<Config, ConfigError> {
        // Reasons may quote a value (serde's "invalid type: string …"): redacted.
        let invalid = |key: String, reason: String| ConfigError::Invalid {
            path: origin.to_string(),
            key,
            reason: crate::util::redact::redact(&reason).into_owned(),
        };
        let table: toml::Table = toml::from_str(text)
            .map_err(|e| invalid("(syntax)".to_string(), syntax_reason(text, &e)))?;
        let config: Config =
            serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
                let key = e.path().to_string();
                invalid(key, e.into_inner().to_string())
            })?;
        config.validate().map_err(|(k, r)| invalid(k, r))?;
        Ok(config)
    }

    /// Checks values serde cannot: ranges, argv lists that are empty, globs that do not parse.
    fn validate(&self) -> Result<(), (String, String)> {
        let range = match self.compression.algorithm {
            Compression::Gzip => 1..=9,
            Compression::Zstd => 1..=19,
        };
        let level = self.compression.effective_level();
        if !range.contains(&level) {
            return Err((
                "compression.level".into(),
                format!(
                    "{level} is out of range {}..={} for {}",
                    range.start(),
                    range.end(),
                    self.compression.algorithm
                ),
            ));
        }
        if let Some(exec) = &self.database.exec
            && exec.is_empty()
        {
            return Err((
                "database.exec".into(),
                "must name a command, e.g. [\"docker\", \"compose\", \"exec\", \"-T\", \"postgres\"]".into(),
            ));
        }
        if let Some(url) = &self.database.url {
            ConnectionParams::from_url(url).map_err(|e| ("database.url".into(), e.to_string()))?;
        }
        for pattern in &self.workspace.exclude {
            globset::Glob::new(pattern)
                .map_err(|e| ("workspace.exclude".to_string(), e.to_string()))?;
        }
        let hooks = [
            ("hooks.before_restore", &self.hooks.before_restore),
            ("hooks.after_restore", &self.hooks.after_restore),
            ("hooks.on_success", &self.hooks.on_success),
            ("hooks.on_failure", &self.hooks.on_failure),
        ];
        for (key, list) in hooks {
            if list.iter().any(|argv| argv.is_empty()) {
                return Err((key.into(), "an empty command (argv list)".into()));
            }
        }
        if self.hooks.timeout.is_zero() {
            return Err((
                "hooks.timeout".into(),
                "must be longer than zero, e.g. \"10m\"".into(),
            ));
        }
        if let Some(cmd) = &self.alembic.expected_head_command
            && cmd.is_empty()
        {
            return Err((
                "alembic.expected_head_command".into(),
                "an empty command (argv list)".into(),
            ));
        }
        self.remote.validate()?;
        self.validate_paths()?;
        self.signing.validate()?;
        self.server.validate()?;
        Ok(())
    }

    /// Paths in a configuration file are absolute: a relative one would depend on the
    /// directory coffer is started from (`/` under systemd). Empty ones are refused.
    fn validate_paths(&self) -> Result<(), (String, String)> {
        let paths = [
            ("backup_dir", self.backup_dir.as_deref()),
            ("workspace.path", self.workspace.path.as_deref()),
            ("metrics_file", self.metrics_file.as_deref()),
        ];
        for (key, path) in paths {
            if let Some(p) = path {
                usable_path(p).map_err(|r| (key.to_string(), r))?;
                if !p.is_absolute() {
                    return Err((
                        key.into(),
                        format!(
                            "`{}` is relative: use an absolute path (a relative one would depend on the directory coffer is started from, / under systemd)",
                            p.display()
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Checks the paths as finally configured (file, environment and flags): none empty,
    /// coffer's own files (backup root, run log, lock, metrics file) neither inside the
    /// workspace nor containing it, and no key file inside it (see `crate::workspace::boundaries`). Resolves symlinks, so it
    /// reads the filesystem; call it once the flags are applied.
    pub fn check_paths(&self) -> Result<(), ConfigError> {
        let refused = |m: String| ConfigError::Refused(m);
        let root = self.backup_dir();
        for (key, path) in [
            ("backup_dir", Some(root.as_path())),
            ("workspace.path", self.workspace.path.as_deref()),
            ("metrics_file", self.metrics_file.as_deref()),
        ] {
            if let Some(p) = path {
                usable_path(p).map_err(|r| refused(format!("{key} {r}")))?;
            }
        }
        let keys: Vec<(&str, &Path)> = [
            ("signing.secret_key_file", &self.signing.secret_key_file),
            (
                "signing.trusted_public_key_file",
                &self.signing.trusted_public_key_file,
            ),
            ("encryption.identity_file", &self.encryption.identity_file),
            (
                "encryption.recipients_file",
                &self.encryption.recipients_file,
            ),
        ]
        .into_iter()
        .filter_map(|(key, path)| path.as_deref().map(|p| (key, p)))
        .collect();
        crate::workspace::boundaries::check_config_paths(
            &root,
            self.workspace.path.as_deref(),
            self.metrics_file.as_deref(),
            &keys,
        )
        .map_err(refused)
    }

    /// Finds and loads the configuration file, then applies environment overrides.
    ///
    /// `explicit` is `--config`; `env` looks a variable up (pass `|k| std::env::var(k).ok()`).
    pub fn load(
        explicit: Option<&Path>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<LoadedConfig, ConfigError> {
        let path = explicit
            .map(Path::to_path_buf)
            .or_else(|| {
                env("COFFER_CONFIG")
                    .filter(|s| !s.is_empty())
                    .map(PathBuf::from)
            })
            .or_else(|| {
                let default = Path::new(DEFAULT_CONFIG_PATH);
                default.exists().then(|| default.to_path_buf())
            });
        let (mut config, source) = match path {
            Some(path) => {
                let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
                    path: path.clone(),
                    source,
                })?;
                let config = Config::from_toml(&text, &path.display().to_string())?;
                (config, Source::File(path))
            }
            None => (Config::default(), Source::Defaults),
        };
        config.apply_env(env)?;
        Ok(LoadedConfig { config, source })
    }

    /// Applies the environment overrides listed in the module documentation.
    pub fn apply_env(&mut self, env: &dyn Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        fn get(
            env: &dyn Fn(&str) -> Option<String>,
            names: &[&'static str],
        ) -> Option<(&'static str, String)> {
            names
                .iter()
                .find_map(|n| env(n).filter(|v| !v.is_empty()).map(|v| (*n, v)))
        }
        if let Some((_, v)) = get(env, &["COFFER_BACKUP_DIR", "BACKUP_DIR"]) {
            self.backup_dir = Some(PathBuf::from(v));
        }
        if let Some((_, v)) = get(env, &["COFFER_WORKSPACE_PATH", "WORKSPACE_HOST_PATH"]) {
            self.workspace.path = Some(PathBuf::from(v));
        }
        if let Some((_, v)) = get(env, &["COFFER_DATABASE_URL"]) {
            ConnectionParams::from_url(&v).map_err(|e| ConfigError::Invalid {
                path: "environment".into(),
                key: "COFFER_DATABASE_URL".into(),
                reason: e.to_string(),
            })?;
            self.database.url = Some(v);
        }
        for (var, field) in [
            ("COFFER_REMOTE_URL", &mut self.remote.url),
            ("COFFER_REMOTE_ENDPOINT", &mut self.remote.endpoint),
        ] {
            if let Some((_, v)) = get(env, &[var]) {
                *field = Some(v);
            }
        }
        self.remote
            .validate()
            .map_err(|(key, reason)| ConfigError::Invalid {
                path: "environment".into(),
                key,
                reason,
            })?;
        if let Some((_, v)) = get(env, &["COFFER_AGE_IDENTITY_FILE"]) {
            self.encryption.identity_file = Some(PathBuf::from(v));
        }
        if let Some((name, v)) = get(
            env,
            &["COFFER_RETENTION_KEEP_DAYS", "BACKUP_RETENTION_DAYS"],
        ) {
            let days = v.trim().parse().map_err(|_| ConfigError::Invalid {
                path: "environment".into(),
                key: name.into(),
                reason: format!("`{v}` is not a whole number of days"),
            })?;
            self.retention.keep_days = Some(days);
        }
        Ok(())
    }

    /// The backup root, defaulting to `./backups`.
    pub fn backup_dir(&self) -> PathBuf {
        self.backup_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_BACKUP_DIR))
    }

    /// A short description of the settings, for `coffer config`-style output and logs.
    /// Never includes the database password.
    pub fn redacted(&self) -> BTreeMap<&'static str, String> {
        let mut m = BTreeMap::new();
        m.insert("backup_dir", self.backup_dir().display().to_string());
        if let Some(url) = &self.database.url {
            m.insert("database.url", redact_url(url));
        }
        m
    }
}

/// Refuses a path that is empty, blank or holds a NUL or newline (which no tool handles
/// safely); `Err` says why.
fn usable_path(p: &Path) -> Result<(), String> {
    let text = p.as_os_str().as_encoded_bytes();
    if text.iter().all(u8::is_ascii_whitespace) {
        return Err("is empty: set it to an absolute path".into());
    }
    if text.iter().any(|b| matches!(b, b'\0' | b'\n' | b'\r')) {
        return Err(format!(
            "{:?} contains a NUL, newline or carriage return: choose a plain path",
            p
        ));
    }
    Ok(())
}

mod hooks;
mod server;
#[cfg(test)]
mod tests;

pub use hooks::HooksConfig;
pub use server::{DEFAULT_LISTEN, DEFAULT_MAX_UPLOAD_BYTES, ServerConfig, parse_listen};
