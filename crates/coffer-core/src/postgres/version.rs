//! Server and client versions: what `server_info` and `--version` report.

/// What `server_info` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerInfo {
    /// `current_database()`.
    pub database: String,
    /// `server_version_num`, e.g. 150018.
    pub version_num: u32,
    /// `server_version`, e.g. `15.18 (Debian 15.18-0+deb12u1)`.
    pub version: String,
    /// `pg_database_size()` in bytes.
    pub size_bytes: u64,
}

impl ServerInfo {
    /// The major version: 15 for 150018 (9 for the 9.x series).
    pub fn major(&self) -> u32 {
        self.version_num / 10_000
    }
}

/// A client program's version, from `--version`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientVersion {
    /// The full text, e.g. `pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)`.
    pub text: String,
    /// Major version.
    pub major: u32,
    /// Minor version.
    pub minor: u32,
}

impl ClientVersion {
    /// Parses `pg_dump (PostgreSQL) 15.18 (Debian …)` or `psql (PostgreSQL) 16.4`.
    pub fn parse(text: &str) -> Option<ClientVersion> {
        let after = text.split(')').nth(1)?.trim();
        let number = after.split_whitespace().next()?;
        let leading = |s: &str| -> Option<u32> {
            s.chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
                .parse()
                .ok()
        };
        let mut parts = number.split('.');
        let major = leading(parts.next()?)?;
        // "18beta1" has no minor part; "9.6.24" reports 9.6.
        let minor = parts.next().and_then(leading).unwrap_or(0);
        Some(ClientVersion {
            text: text.to_string(),
            major,
            minor,
        })
    }

    /// `15.18`.
    pub fn short(&self) -> String {
        format!("{}.{}", self.major, self.minor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_versions_parse() {
        let cases = [
            (
                "pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)",
                Some((15, 18)),
            ),
            ("psql (PostgreSQL) 16.4", Some((16, 4))),
            ("pg_dump (PostgreSQL) 18beta1", Some((18, 0))),
            ("pg_dump (PostgreSQL) 9.6.24", Some((9, 6))),
            ("nonsense", None),
        ];
        for (text, want) in cases {
            assert_eq!(
                ClientVersion::parse(text).map(|v| (v.major, v.minor)),
                want,
                "{text}"
            );
        }
    }
}
