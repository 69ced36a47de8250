//! Secrets taken out of text before it is shown or stored.
//!
//! Error messages quote what they could not use: a configuration line, a URL, a command's
//! stderr. Any of these may hold a password, so every text that leaves coffer (the terminal,
//! `--json`, the run log, notification hooks) goes through [`redact`] as a last line of
//! defence. It masks:
//! - the password of a URL's user-info (`postgres://app:SECRET@db/portal`);
//! - the value of any `key=value` / `key: value` / `key = "value"` whose key names a secret
//!   (`password`, `sslpassword`, `PGPASSWORD`, `aws_secret_access_key`, `token`, …), quoted
//!   or not, as in URLs' query strings, libpq connection strings and TOML lines;
//! - age secret keys (`AGE-SECRET-KEY-1…`).
//!
//! It is deliberately greedy: masking a harmless value costs a less helpful message, leaking a
//! password costs a rotation.

use std::borrow::Cow;

/// What replaces a secret.
pub const MASK: &str = "***";

/// Key names (lower case, compared by suffix) whose values are secrets.
const SECRET_KEY_SUFFIXES: &[&str] = &[
    "password",
    "passwd",
    "secret",
    "secret_key",
    "secret_access_key",
    "token",
    "session_token",
    "private_key",
    "account_key",
    "api_key",
];

const AGE_SECRET_PREFIX: &str = "AGE-SECRET-KEY-";

/// Whether a parameter or variable of this name holds a secret (`password`, `sslpassword`,
/// `PGPASSWORD`, `aws_secret_access_key`, …).
pub fn is_secret_key(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    SECRET_KEY_SUFFIXES.iter().any(|s| name.ends_with(s))
}

/// `text` with every secret it recognises replaced by `MASK`.
pub fn redact(text: &str) -> Cow<'_, str> {
    let mut spans = Vec::new();
    url_passwords(text, &mut spans);
    keyed_values(text, &mut spans);
    age_keys(text, &mut spans);
    if spans.is_empty() {
        return Cow::Borrowed(text);
    }
    spans.sort_unstable();
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for (start, end) in spans {
        if end <= at {
            continue;
        }
        let start = start.max(at);
        out.push_str(&text[at..start]);
        out.push_str(MASK);
        at = end;
    }
    out.push_str(&text[at..]);
    Cow::Owned(out)
}

/// Whether a byte ends an unquoted value or a URL's authority. Greedy on purpose: a
/// password with a raw `/`, `&` or `@` in it is still masked whole.
fn is_value_end(b: u8) -> bool {
    b.is_ascii_whitespace() || matches!(b, b'"' | b'\'' | b'`' | b';' | b',' | b')' | b']')
}

/// The password spans of `scheme://user:password@host` user-infos.
fn url_passwords(text: &str, spans: &mut Vec<(usize, usize)>) {
    let bytes = text.as_bytes();
    let mut from = 0;
    while let Some(i) = text[from..].find("://") {
        let start = from + i + 3;
        // Up to the end of the word, not of the authority: a password that is not
        // percent-encoded may hold `/`, `?`, `#` or `@`, so the host starts after the last `@`.
        let end = bytes[start..]
            .iter()
            .position(|&b| is_value_end(b))
            .map_or(bytes.len(), |n| start + n);
        if let Some(at) = text[start..end].rfind('@') {
            let userinfo = &text[start..start + at];
            if let Some(colon) = userinfo.find(':') {
                spans.push((start + colon + 1, start + at));
            }
        }
        from = end.max(start);
    }
}

/// The value spans of `key=value`, `key: value` and `key = "value"` for secret keys.
fn keyed_values(text: &str, spans: &mut Vec<(usize, usize)>) {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if !is_key_byte(bytes[i]) || (i > 0 && is_key_byte(bytes[i - 1])) {
            i += 1;
            continue;
        }
        let key_start = i;
        while i < bytes.len() && is_key_byte(bytes[i]) {
            i += 1;
        }
        if !is_secret_key(&text[key_start..i]) {
            continue;
        }
        // Optional closing quote of a quoted key, blanks, then `=` or `:`.
        let mut j = i;
        if j < bytes.len() && bytes[j] == b'"' {
            j += 1;
        }
        while j < bytes.len() && (bytes[j] == b' ' || bytes[j] == b'\t') {
            j += 1;
        }
        if j >= bytes.len() || !matches!(bytes[j], b'=' | b':') {
            continue;
        }
        j += 1;
        while j < bytes.len() && (bytes[j] == b' ' || bytes[j] == b'\t') {
            j += 1;
        }
        let (start, end) = match bytes.get(j) {
            Some(&q @ (b'"' | b'\'')) => {
                let start = j + 1;
                let end = quoted_end(bytes, start, q);
                (start, end)
            }
            Some(_) => {
                // A colon before a blank ends it too: `…password=***: unsupported`.
                let end = (j..bytes.len())
                    .find(|&k| {
                        is_value_end(bytes[k])
                            || (bytes[k] == b':'
                                && bytes.get(k + 1).is_none_or(u8::is_ascii_whitespace))
                    })
                    .unwrap_or(bytes.len());
                (j, end)
            }
            None => (j, j),
        };
        if end > start {
            spans.push((start, end));
        }
        // Go on inside the value: a quoted value that was cut short may hold another key.
        i = start.max(key_start + 1);
    }
}

/// Where a quoted value that starts at `start` ends: at its closing quote (a backslash
/// escapes one), else at the end of the line.
fn quoted_end(bytes: &[u8], start: usize, quote: u8) -> usize {
    let mut k = start;
    while k < bytes.len() {
        match bytes[k] {
            b'\\' => k += 2,
            b'\n' => return k,
            b if b == quote => return k,
            _ => k += 1,
        }
    }
    bytes.len()
}

fn is_key_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.'
}

/// The key material of `AGE-SECRET-KEY-1…`.
fn age_keys(text: &str, spans: &mut Vec<(usize, usize)>) {
    let upper = text.to_ascii_uppercase();
    let mut from = 0;
    while let Some(i) = upper[from..].find(AGE_SECRET_PREFIX) {
        let start = from + i + AGE_SECRET_PREFIX.len();
        let end = upper.as_bytes()[start..]
            .iter()
            .position(|b| !b.is_ascii_alphanumeric())
            .map_or(text.len(), |n| start + n);
        if end > start {
            spans.push((start, end));
        }
        from = end.max(start);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn masks_each_form_of_secret() {
        let cases = [
            (
                "postgres://app:s3cret@db:5432/portal",
                "postgres://app:***@db:5432/portal",
            ),
            (
                "postgres://app:p@ss@db/portal?sslmode=require",
                "postgres://app:***@db/portal?sslmode=require",
            ),
            (
                "postgres://db/portal?sslpassword=k3y&sslmode=require",
                // Greedy: a raw `&` may belong to the password.
                "postgres://db/portal?sslpassword=***",
            ),
            (
                "postgres://db/portal?password=pw",
                "postgres://db/portal?password=***",
            ),
            (
                "host=db password=pw dbname=portal",
                "host=db password=*** dbname=portal",
            ),
            (
                "host=db password='p w' dbname=portal",
                "host=db password='***' dbname=portal",
            ),
            (
                r#"url = "postgres://u:pw@h/d""#,
                r#"url = "postgres://u:***@h/d""#,
            ),
            (r#"password = "pw""#, r#"password = "***""#),
            ("PGPASSWORD=pw psql", "PGPASSWORD=*** psql"),
            (
                "invalid URL h?sslpassword=pw&x=1: unsupported",
                "invalid URL h?sslpassword=***: unsupported",
            ),
            (
                "aws_secret_access_key: AbC/123+x",
                "aws_secret_access_key: ***",
            ),
            (
                "identity AGE-SECRET-KEY-1QQQQ is bad",
                "identity AGE-SECRET-KEY-*** is bad",
            ),
            ("https://user@host/path", "https://user@host/path"),
            ("no secrets here: 12:30", "no secrets here: 12:30"),
            ("password reset", "password reset"),
        ];
        for (input, want) in cases {
            assert_eq!(redact(input), want, "input {input:?}");
        }
    }

    #[test]
    fn text_without_secrets_is_not_copied() {
        assert!(matches!(
            redact("cannot open /srv/ws: denied"),
            Cow::Borrowed(_)
        ));
    }

    fn secret() -> impl Strategy<Value = String> {
        "[A-Za-z0-9!#$%*+/=~^-]{4,24}"
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Whatever surrounds it, a password in any of the recognised places never survives.
        #[test]
        fn a_password_never_survives(
            pw in secret(),
            before in "[ -~\n]{0,40}",
            after in "[ -~\n]{0,40}",
            form in 0usize..6,
        ) {
            let embedded = match form {
                0 => format!("postgres://user:{pw}@host/db"),
                1 => format!("postgres://host/db?sslpassword={pw}"),
                2 => format!("password={pw}"),
                3 => format!("password = \"{pw}\""),
                4 => format!("url = 'postgresql://u:{pw}@h:5432/d?sslmode=require'"),
                _ => format!("PGPASSWORD={pw}"),
            };
            // Separate the secret from arbitrary neighbours the way a message would.
            let text = format!("{before} {embedded} {after}");
            let out = redact(&text);
            prop_assert!(
                out.matches(pw.as_str()).count() < text.matches(pw.as_str()).count(),
                "{text:?} -> {out:?}"
            );
        }

        /// Redaction never panics and never makes text longer than masking every byte would.
        #[test]
        fn any_text_is_handled(text in "\\PC{0,200}") {
            let out = redact(&text);
            prop_assert!(out.len() <= text.len() + MASK.len() * text.len().max(1));
        }
    }
}
