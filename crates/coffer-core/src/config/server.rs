//! `[server]`: where `coffer serve` listens and who may call it.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::ByteSize;

/// The address `coffer serve` listens on when neither the configuration nor the caller
/// names one: loopback only, behind the reverse proxy the stack already has.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8787";

/// The largest upload (a bundle to restore) the server accepts by default: 10 GB, the
/// limit the stacks' admin pages announce.
pub const DEFAULT_MAX_UPLOAD_BYTES: u64 = 10_000_000_000;

/// `[server]`: the HTTP admin API of `coffer serve`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// `ADDRESS:PORT` to listen on (default `127.0.0.1:8787`).
    pub listen: String,
    /// The bearer tokens: one `NAME ROLE SHA256-OF-TOKEN` per line, mode 0600. The server
    /// refuses to start without it or with no token in it.
    pub tokens_file: Option<PathBuf>,
    /// Allow listening on a non-loopback address although the server speaks plain HTTP
    /// (put it behind a TLS-terminating reverse proxy). Off by default.
    pub allow_plain_http: bool,
    /// Largest upload `POST /v1/admin/backup/restore` accepts (bytes, or `"10GB"`);
    /// default 10 GB. A larger body is refused with 413 and nothing is kept.
    pub max_upload_bytes: ByteSize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: DEFAULT_LISTEN.into(),
            tokens_file: None,
            allow_plain_http: false,
            max_upload_bytes: ByteSize(DEFAULT_MAX_UPLOAD_BYTES),
        }
    }
}

impl ServerConfig {
    /// The listening address, checked by validation.
    pub fn listen_addr(&self) -> Result<SocketAddr, String> {
        parse_listen(&self.listen)
    }

    pub(super) fn validate(&self) -> Result<(), (String, String)> {
        self.listen_addr()
            .map_err(|r| ("server.listen".to_string(), r))?;
        if let Some(p) = &self.tokens_file {
            super::usable_path(p).map_err(|r| ("server.tokens_file".to_string(), r))?;
            if !p.is_absolute() {
                return Err((
                    "server.tokens_file".into(),
                    format!("`{}` is relative: use an absolute path", p.display()),
                ));
            }
        }
        if self.max_upload_bytes.0 == 0 {
            return Err((
                "server.max_upload_bytes".into(),
                "must be at least 1 byte, e.g. \"10GB\"".into(),
            ));
        }
        Ok(())
    }
}

/// Parses `ADDRESS:PORT` (`[::1]:8787` for IPv6); `Err` says why not.
pub fn parse_listen(text: &str) -> Result<SocketAddr, String> {
    text.trim().parse().map_err(|_| {
        format!("`{text}` is not ADDRESS:PORT, e.g. \"127.0.0.1:8787\" or \"[::1]:8787\"")
    })
}
