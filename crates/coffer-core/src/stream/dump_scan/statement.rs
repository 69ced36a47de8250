//! Reading one top-level SQL statement (as the lexer gathered it, comments blanked out) or
//! one COPY data row: the COPY header, `ALTER … OWNER TO`, `SET standard_conforming_strings`,
//! identifiers and COPY text escapes. Pure functions of bytes.

/// Whether `b` may start an unquoted SQL identifier (PostgreSQL's `ident_start`).
pub(super) fn is_ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b >= 0x80
}

/// Whether `b` may continue an unquoted SQL identifier (PostgreSQL's `ident_cont`).
pub(super) fn is_ident_cont(b: u8) -> bool {
    is_ident_start(b) || b.is_ascii_digit() || b == b'$'
}

/// SQL whitespace as PostgreSQL's lexer sees it.
pub(super) fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0c | 0x0b)
}

fn skip_space(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|&&b| is_space(b)).count();
    &s[n..]
}

/// The first word of a statement, if it starts with one.
pub(super) fn first_word(stmt: &[u8]) -> &[u8] {
    let n = stmt.iter().take_while(|&&b| is_ident_cont(b)).count();
    &stmt[..n]
}

/// Parses one SQL identifier at the start of `s`, quoted (`"a ""b"""`, may hold newlines) or
/// bare (up to `.`, whitespace, `(`, `)`, `,`, `;` or `"`); returns it unquoted and the rest.
pub(super) fn identifier(s: &[u8]) -> Option<(String, &[u8])> {
    if let Some(mut rest) = s.strip_prefix(b"\"") {
        let mut out = Vec::new();
        loop {
            let i = rest.iter().position(|&b| b == b'"')?;
            out.extend_from_slice(&rest[..i]);
            if rest.get(i + 1) == Some(&b'"') {
                out.push(b'"');
                rest = &rest[i + 2..];
            } else {
                return Some((String::from_utf8_lossy(&out).into_owned(), &rest[i + 1..]));
            }
        }
    }
    let end = s
        .iter()
        .position(|&b| matches!(b, b'.' | b'(' | b')' | b',' | b';' | b'"') || is_space(b))
        .unwrap_or(s.len());
    (end > 0).then(|| (String::from_utf8_lossy(&s[..end]).into_owned(), &s[end..]))
}

/// Length of the qualified name (`a.b`, parts quoted or bare) at the start of `s`.
fn qualified_name_len(s: &[u8]) -> Option<usize> {
    let mut rest = identifier(s)?.1;
    while let Some(after_dot) = rest.strip_prefix(b".") {
        rest = identifier(after_dot)?.1;
    }
    Some(s.len() - rest.len())
}

/// The table of pg_dump's `COPY <name> (<columns>) FROM stdin` (the statement without its
/// `;`), as written (quoted as pg_dump quotes it). `None` for any other COPY: only this exact
/// shape is known to make psql read data lines from the stream.
///
/// `tail` is set when the statement was longer than what the lexer keeps: `head` is then
/// its start and `tail` its last bytes, and the column list in between is not parsed.
pub(super) fn copy_from_stdin(head: &[u8], tail: Option<&[u8]>) -> Option<String> {
    let rest = head.strip_prefix(b"COPY")?;
    if !rest.first().is_some_and(|&b| is_space(b)) {
        return None;
    }
    let rest = skip_space(rest);
    let len = qualified_name_len(rest)?;
    let table = String::from_utf8_lossy(&rest[..len]).into_owned();
    let mut rest = skip_space(&rest[len..]);
    if let Some(tail) = tail {
        // Too long to parse whole: a column list that starts here and `) FROM stdin` at the end.
        return (rest.starts_with(b"(") && trim_end(tail).ends_with(b") FROM stdin"))
            .then_some(table);
    }
    if let Some(mut cols) = rest.strip_prefix(b"(") {
        loop {
            cols = skip_space(cols);
            cols = identifier(cols)?.1;
            cols = skip_space(cols);
            if let Some(next) = cols.strip_prefix(b",") {
                cols = next;
            } else {
                rest = cols.strip_prefix(b")")?;
                break;
            }
        }
    }
    let rest = skip_space(rest).strip_prefix(b"FROM")?;
    if !rest.first().is_some_and(|&b| is_space(b)) {
        return None;
    }
    (skip_space(rest) == b"stdin" || trim_end(skip_space(rest)) == b"stdin").then_some(table)
}

fn trim_end(s: &[u8]) -> &[u8] {
    let n = s.iter().rev().take_while(|&&b| is_space(b)).count();
    &s[..s.len() - n]
}

/// Whether a statement starting with this (lower-cased) word may control the transaction:
/// `BEGIN`, `COMMIT`, `END`, `ROLLBACK`, `ABORT`, `START TRANSACTION`, `SAVEPOINT`,
/// `RELEASE`, `PREPARE TRANSACTION` (and `COMMIT`/`ROLLBACK PREPARED`).
pub(super) fn is_transaction_word(word: &[u8]) -> bool {
    matches!(
        word,
        b"begin"
            | b"commit"
            | b"end"
            | b"rollback"
            | b"abort"
            | b"start"
            | b"savepoint"
            | b"release"
            | b"prepare"
    )
}

/// What a top-level statement does to the transaction coffer runs the dump in.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Transaction {
    /// Nothing: an ordinary statement.
    Untouched,
    /// pg_dump's own `BEGIN` (exactly that, upper case, nothing else) that opens its
    /// large-object section in plain format (`StartRestoreLOs`).
    LoBegin,
    /// pg_dump's own `COMMIT` that closes it (`EndRestoreLOs`).
    LoCommit,
    /// Any other statement that could end, split or prepare the transaction.
    Control,
}

/// Classifies one top-level statement (comments blanked, without its `;`); `overflow`:
/// it was longer than what the scanner keeps.
pub(super) fn transaction_control(stmt: &[u8], overflow: bool) -> Transaction {
    let lower = first_word(stmt).to_ascii_lowercase();
    if !is_transaction_word(&lower) {
        return Transaction::Untouched;
    }
    if lower == b"prepare" {
        // `PREPARE name AS …` is an ordinary statement; `PREPARE TRANSACTION 'id'` is not.
        let rest = skip_space(&stmt[lower.len()..]);
        if !first_word(rest).eq_ignore_ascii_case(b"transaction") {
            return Transaction::Untouched;
        }
    }
    match (stmt, overflow) {
        (b"BEGIN", false) => Transaction::LoBegin,
        (b"COMMIT", false) => Transaction::LoCommit,
        _ => Transaction::Control,
    }
}

/// The role of an `ALTER … OWNER TO role` statement (without its `;`). ` OWNER TO ` may
/// also occur inside a quoted name, so the last occurrence followed by exactly one
/// identifier wins.
pub(super) fn owner_of(stmt: &[u8]) -> Option<String> {
    const KEY: &[u8] = b" OWNER TO ";
    let body = trim_end(stmt);
    let mut end = body.len();
    while let Some(i) = body[..end].windows(KEY.len()).rposition(|w| w == KEY) {
        if let Some((role, rest)) = identifier(&body[i + KEY.len()..])
            && rest.is_empty()
        {
            return Some(role);
        }
        end = i;
    }
    None
}

/// What a `SET`/`RESET` statement does to `standard_conforming_strings`, which decides
/// whether a backslash escapes a quote in '…' strings (psql follows the server's setting).
#[derive(Debug, PartialEq, Eq)]
pub(super) enum StdStrings {
    /// The statement does not touch it.
    Untouched,
    /// It sets it on (or back to its default, on).
    On,
    /// It sets it off.
    Off,
}

/// Reads `SET [SESSION|LOCAL] standard_conforming_strings {=|TO} value`, `RESET
/// standard_conforming_strings` and `RESET ALL`.
pub(super) fn std_strings_change(stmt: &[u8]) -> StdStrings {
    let lower = stmt.to_ascii_lowercase();
    let words: Vec<&[u8]> = lower
        .split(|&b| is_space(b) || b == b'=')
        .filter(|w| !w.is_empty())
        .collect();
    match words.as_slice() {
        [b"reset", b"all"] | [b"reset", b"standard_conforming_strings"] => StdStrings::On,
        [b"set", rest @ ..] => {
            let rest = match rest {
                [b"session" | b"local", more @ ..] => more,
                _ => rest,
            };
            match rest {
                [b"standard_conforming_strings", value]
                | [b"standard_conforming_strings", b"to", value] => {
                    let value = value
                        .strip_prefix(b"'")
                        .and_then(|v| v.strip_suffix(b"'"))
                        .unwrap_or(value);
                    match value {
                        b"off" | b"false" | b"no" | b"0" | b"of" | b"f" | b"n" => StdStrings::Off,
                        _ => StdStrings::On,
                    }
                }
                _ => StdStrings::Untouched,
            }
        }
        _ => StdStrings::Untouched,
    }
}

/// The first column of a COPY text row, unescaped; `None` for NULL (`\N`).
pub(super) fn first_column(row: &[u8]) -> Option<String> {
    let field = &row[..row.iter().position(|&b| b == b'\t').unwrap_or(row.len())];
    if field == b"\\N" {
        return None;
    }
    let mut out = Vec::with_capacity(field.len());
    let mut bytes = field.iter();
    while let Some(&b) = bytes.next() {
        if b != b'\\' {
            out.push(b);
            continue;
        }
        // Every escape COPY's text format reads, octal and hex included (pg_dump never
        // writes those, a forged dump may): the value must be the one the server loads.
        match bytes.next() {
            Some(&d @ b'0'..=b'7') => {
                let mut v = u32::from(d - b'0');
                for _ in 0..2 {
                    match bytes.clone().next() {
                        Some(&d @ b'0'..=b'7') => {
                            v = v * 8 + u32::from(d - b'0');
                            bytes.next();
                        }
                        _ => break,
                    }
                }
                out.push((v & 0xff) as u8);
            }
            Some(b'x') if bytes.clone().next().is_some_and(u8::is_ascii_hexdigit) => {
                let mut v = 0u8;
                for _ in 0..2 {
                    match bytes.clone().next() {
                        Some(&h) if h.is_ascii_hexdigit() => {
                            v = v * 16 + (h as char).to_digit(16).unwrap_or(0) as u8;
                            bytes.next();
                        }
                        _ => break,
                    }
                }
                out.push(v);
            }
            Some(b'n') => out.push(b'\n'),
            Some(b't') => out.push(b'\t'),
            Some(b'r') => out.push(b'\r'),
            Some(b'b') => out.push(0x08),
            Some(b'f') => out.push(0x0c),
            Some(b'v') => out.push(0x0b),
            Some(&other) => out.push(other),
            None => out.push(b'\\'),
        }
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}

/// Hostile bytes shown in an error message: printable, one line, at most 40 characters.
pub(super) fn shown(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out = String::new();
    for c in text.chars().take(40) {
        if c.is_control() {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    if text.chars().count() > 40 {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_headers() {
        let cases: &[(&str, Option<&str>)] = &[
            ("COPY public.t (a, b) FROM stdin", Some("public.t")),
            ("COPY public.t  FROM stdin", Some("public.t")),
            (
                "COPY public.\"a\nb\" (\"x,)\") FROM stdin",
                Some("public.\"a\nb\""),
            ),
            (
                "COPY \"s.\"\"c\".\"T\" (x) FROM stdin ",
                Some("\"s.\"\"c\".\"T\""),
            ),
            ("COPY t (x) FROM stdin", Some("t")),
            ("copy public.t (x) FROM stdin", None),
            ("COPY public.t (x) FROM STDIN", None),
            ("COPY public.t (x) FROM PROGRAM 'id'", None),
            ("COPY public.t (x) FROM '/etc/passwd'", None),
            ("COPY public.t (x) TO stdout", None),
            ("COPY public.t (x) FROM stdin WITH (FORMAT csv)", None),
            ("COPY (SELECT 1) TO stdout", None),
            ("COPY public.t (x FROM stdin", None),
            ("COPYpublic.t FROM stdin", None),
        ];
        for (stmt, want) in cases {
            assert_eq!(
                copy_from_stdin(stmt.as_bytes(), None).as_deref(),
                *want,
                "{stmt:?}"
            );
        }
        assert_eq!(
            copy_from_stdin(b"COPY public.w (a, b", Some(b"y, z) FROM stdin")).as_deref(),
            Some("public.w")
        );
        assert_eq!(
            copy_from_stdin(b"COPY public.w (a, b", Some(b"TO PROGRAM 'x'")),
            None
        );
    }

    #[test]
    fn transaction_control_statements() {
        use Transaction::*;
        let cases: &[(&str, Transaction)] = &[
            ("BEGIN", LoBegin),
            ("COMMIT", LoCommit),
            ("begin", Control),
            ("Commit", Control),
            ("BEGIN ", Control),
            ("BEGIN  ", Control),
            ("BEGIN TRANSACTION", Control),
            ("BEGIN ISOLATION LEVEL SERIALIZABLE", Control),
            ("BEGIN WORK", Control),
            ("COMMIT WORK", Control),
            ("COMMIT AND CHAIN", Control),
            ("COMMIT PREPARED 'x'", Control),
            ("END", Control),
            ("end transaction", Control),
            ("ROLLBACK", Control),
            ("rollback to savepoint a", Control),
            ("ROLLBACK PREPARED 'x'", Control),
            ("ABORT", Control),
            ("START TRANSACTION", Control),
            ("start\ttransaction read write", Control),
            ("SAVEPOINT a", Control),
            ("RELEASE SAVEPOINT a", Control),
            ("release a", Control),
            ("PREPARE TRANSACTION 'x'", Control),
            ("prepare  transaction 'x'", Control),
            ("PREPARE q AS SELECT 1", Untouched),
            ("PREPARE q (int) AS SELECT $1", Untouched),
            ("SELECT 'COMMIT'", Untouched),
            ("CREATE TABLE public.\"commit\" (a int)", Untouched),
            ("beginning", Untouched),
            ("committed", Untouched),
            ("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", Untouched),
            ("\"COMMIT\"", Untouched),
        ];
        for (stmt, want) in cases {
            assert_eq!(
                &transaction_control(stmt.as_bytes(), false),
                want,
                "{stmt:?}"
            );
        }
        assert_eq!(transaction_control(b"BEGIN", true), Control);
        assert_eq!(transaction_control(b"COMMIT", true), Control);
    }

    #[test]
    fn std_strings_statements() {
        let cases: &[(&str, StdStrings)] = &[
            ("SET standard_conforming_strings = on", StdStrings::On),
            ("SET standard_conforming_strings = off", StdStrings::Off),
            (
                "set LOCAL standard_conforming_strings TO 'off'",
                StdStrings::Off,
            ),
            (
                "SET SESSION standard_conforming_strings=false",
                StdStrings::Off,
            ),
            ("RESET ALL", StdStrings::On),
            ("SET client_encoding = 'UTF8'", StdStrings::Untouched),
            ("SELECT 1", StdStrings::Untouched),
        ];
        for (stmt, want) in cases {
            assert_eq!(&std_strings_change(stmt.as_bytes()), want, "{stmt}");
        }
    }
}

/// How a statement touches `client_encoding`.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum EncodingSetting {
    /// `SET client_encoding = 'x'` / `SET NAMES 'x'`: the normalised name (`sjis`, `utf8`).
    To(Vec<u8>),
    /// The word appears otherwise (`set_config('client_encoding', …)`, a function body).
    Elsewhere,
}

/// What `stmt` (whose lower-cased first word is `word`) does to `client_encoding`, if
/// anything. Names are normalised as PostgreSQL does: lower case, letters and digits only.
pub(super) fn client_encoding_value(word: &[u8], stmt: &[u8]) -> Option<EncodingSetting> {
    let lower = stmt.to_ascii_lowercase();
    let mentions = lower.windows(15).any(|w| w == b"client_encoding");
    let words: Vec<&[u8]> = lower
        .split(|&b| is_space(b) || b == b'=')
        .filter(|w| !w.is_empty())
        .collect();
    if word == b"set" {
        let rest = match &words[1..] {
            [b"session" | b"local", more @ ..] => more,
            rest => rest,
        };
        let value = match rest {
            [b"client_encoding", b"to", value] | [b"client_encoding", value] => Some(*value),
            [b"names", value] => Some(*value),
            _ => None,
        };
        if let Some(value) = value {
            let name: Vec<u8> = value
                .iter()
                .copied()
                .filter(u8::is_ascii_alphanumeric)
                .collect();
            return Some(EncodingSetting::To(name));
        }
        if rest.first() == Some(&&b"names"[..]) {
            return Some(EncodingSetting::Elsewhere);
        }
    }
    mentions.then_some(EncodingSetting::Elsewhere)
}

/// PostgreSQL's client-only encodings and their aliases (normalised): the ones whose
/// multi-byte characters may contain ASCII `\` or `'`.
pub(super) fn is_client_only_encoding(name: &[u8]) -> bool {
    matches!(
        name,
        b"sjis"
            | b"shiftjis"
            | b"mskanji"
            | b"win932"
            | b"windows932"
            | b"cp932"
            | b"shiftjis2004"
            | b"big5"
            | b"win950"
            | b"windows950"
            | b"cp950"
            | b"gbk"
            | b"win936"
            | b"windows936"
            | b"cp936"
            | b"gb18030"
            | b"uhc"
            | b"win949"
            | b"windows949"
            | b"cp949"
            | b"johab"
    )
}
