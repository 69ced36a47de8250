//! `database.url` parsed into `PG*` settings, and URLs redacted for messages.
//!
//! A leaf: [`crate::config`] validates URLs with it, so it depends on nothing that depends
//! on the configuration.

use super::PgError;

/// Connection settings taken from a URL, to be passed as `PG*` environment variables.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectionParams {
    /// `PG*` variable name → value (`PGHOST`, `PGPORT`, `PGUSER`, `PGPASSWORD`, `PGDATABASE`,
    /// `PGSSLMODE`, …).
    pub env: Vec<(String, String)>,
}

impl ConnectionParams {
    /// Parses `postgres://user:password@host:port/dbname?sslmode=require`.
    pub fn from_url(text: &str) -> Result<Self, PgError> {
        // A rejected URL may be mistyped anywhere (`?ssl=assword=…`): show no parameter value.
        let bad = |reason: &str| PgError::BadUrl {
            url: redact_url_values(text),
            reason: reason.to_string(),
        };
        let url = url::Url::parse(text).map_err(|e| bad(&e.to_string()))?;
        if !matches!(url.scheme(), "postgres" | "postgresql") {
            return Err(bad("the scheme must be postgres:// or postgresql://"));
        }
        let decode = |s: &str| percent_decode(s).ok_or_else(|| bad("invalid percent-encoding"));
        let mut env = Vec::new();
        if let Some(host) = url.host_str().filter(|h| !h.is_empty()) {
            env.push(("PGHOST".to_string(), decode(host)?));
        }
        if let Some(port) = url.port() {
            env.push(("PGPORT".to_string(), port.to_string()));
        }
        if !url.username().is_empty() {
            env.push(("PGUSER".to_string(), decode(url.username())?));
        }
        if let Some(pw) = url.password() {
            env.push(("PGPASSWORD".to_string(), decode(pw)?));
        }
        let db = url.path().trim_start_matches('/');
        if !db.is_empty() {
            env.push(("PGDATABASE".to_string(), decode(db)?));
        }
        for (key, value) in url.query_pairs() {
            let var = match key.as_ref() {
                "host" => "PGHOST",
                "port" => "PGPORT",
                "user" => "PGUSER",
                "password" => "PGPASSWORD",
                "dbname" => "PGDATABASE",
                "sslmode" => "PGSSLMODE",
                "sslrootcert" => "PGSSLROOTCERT",
                "sslcert" => "PGSSLCERT",
                "sslkey" => "PGSSLKEY",
                "application_name" => "PGAPPNAME",
                "connect_timeout" => "PGCONNECT_TIMEOUT",
                "options" => "PGOPTIONS",
                "target_session_attrs" => "PGTARGETSESSIONATTRS",
                // Not quoted: a mistyped parameter may have swallowed the password.
                _ => {
                    return Err(bad(
                        "an unsupported URL parameter (coffer passes on host, port, user, password, dbname, sslmode, sslrootcert, sslcert, sslkey, application_name, connect_timeout, options, target_session_attrs)",
                    ));
                }
            };
            env.retain(|(k, _)| k != var);
            env.push((var.to_string(), value.into_owned()));
        }
        Ok(ConnectionParams { env })
    }

    /// Whether the URL carried a password.
    pub fn has_password(&self) -> bool {
        self.env.iter().any(|(k, _)| k == "PGPASSWORD")
    }
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// A URL with its password replaced by `***`, safe for logs and errors.
pub fn redact_url(text: &str) -> String {
    match url::Url::parse(text) {
        Ok(mut url) => {
            if url.password().is_some() {
                let _ = url.set_password(Some("***"));
            }
            let pairs: Vec<(String, String)> = url
                .query_pairs()
                .map(|(k, v)| {
                    let v = if crate::util::redact::is_secret_key(&k) {
                        crate::util::redact::MASK.into()
                    } else {
                        v.into_owned()
                    };
                    (k.into_owned(), v)
                })
                .collect();
            if pairs
                .iter()
                .any(|(k, _)| crate::util::redact::is_secret_key(k))
            {
                url.query_pairs_mut().clear().extend_pairs(pairs);
            }
            url.to_string()
        }
        // Unparseable: show nothing that might be a secret.
        Err(_) => "(unparseable URL)".to_string(),
    }
}

/// What is shown of a URL that was rejected: its scheme, and host and port only after a
/// user-info. A mistyped URL
/// may hold its password anywhere (`postgres:'/app:pw@db`, `postgres://app'pw@db`,
/// `?ssl=assword=…`), so user-info, path and query are never shown.
fn redact_url_values(text: &str) -> String {
    match url::Url::parse(text) {
        Ok(url) => {
            let mut shown = format!("{}:", url.scheme());
            // Without user-info, `host:port` may be a user and a password (`postgres://app:31337`).
            let user_info = !url.username().is_empty() || url.password().is_some();
            match url.host_str().filter(|_| url.has_authority()) {
                Some(host) if user_info => {
                    shown.push_str("//…@");
                    shown.push_str(host);
                    if let Some(port) = url.port() {
                        shown.push_str(&format!(":{port}"));
                    }
                    if !matches!(url.path(), "" | "/") || url.query().is_some() {
                        shown.push_str("/…");
                    }
                }
                Some(_) => shown.push_str("//…"),
                None => shown.push('…'),
            }
            shown
        }
        Err(_) => "(unparseable URL)".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_host_and_errors_are_redacted() {
        let p = ConnectionParams::from_url("postgresql://%2Fvar%2Frun%2Fpostgresql/app").unwrap();
        assert_eq!(p.env[0], ("PGHOST".into(), "/var/run/postgresql".into()));
        let e = ConnectionParams::from_url("postgres://u:hunter2@h/db?bogus=1")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("unsupported URL parameter")
                && !e.contains("hunter2")
                && !e.contains("bogus"),
            "{e}"
        );
        // A rejected URL shows its scheme and host only, wherever a typo put the password.
        for (text, shown) in [
            (
                "postgres://u:hunter2@h:5433/db?bogus=1",
                "postgres://…@h:5433/…",
            ),
            ("postgres:'/u:hunter2@h/db?bogus=1", "postgres:…"),
            ("postgres://u'hunter2@h/db?bogus=1", "postgres://…@h/…"),
            ("postgres://h?bogus=1", "postgres://…"),
            ("postgres://app:31337?ssl=require", "postgres://…"),
            ("postgres://u:hunter2#h/db", "(unparseable URL)"),
        ] {
            let e = ConnectionParams::from_url(text).unwrap_err().to_string();
            assert!(
                e.starts_with(&format!("invalid database URL {shown}: ")),
                "{text}: {e}"
            );
        }
        assert!(redact_url("postgres://u:hunter2@h/db").contains("***"));
        assert!(!redact_url("postgres://h/db?password=hunter2").contains("hunter2"));
        assert!(ConnectionParams::from_url("mysql://h/db").is_err());
    }
}
