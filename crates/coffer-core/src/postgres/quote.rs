//! Quoting for SQL text coffer builds.

/// `text` as an SQL string literal. With a backslash in it, the escape-string form
/// (`E'…'`, backslashes doubled), as PostgreSQL's own `quote_literal` does: a plain `'…'`
/// would let a backslash escape the closing quote on a server with
/// `standard_conforming_strings = off`, and the names quoted here come from backups.
pub fn quote_literal(text: &str) -> String {
    let quoted = text.replace('\'', "''");
    if text.contains('\\') {
        format!("E'{}'", quoted.replace('\\', "\\\\"))
    } else {
        format!("'{quoted}'")
    }
}

/// `name` as a quoted SQL identifier.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(quote_literal("o'brien"), "'o''brien'");
        assert_eq!(quote_ident("My \"Db\""), "\"My \"\"Db\"\"\"");
    }

    #[test]
    fn a_backslash_cannot_end_a_literal_whatever_the_server_setting() {
        assert_eq!(quote_literal("a\\"), "E'a\\\\'");
        assert_eq!(
            quote_literal("x\\'; DROP ROLE y; --"),
            "E'x\\\\''; DROP ROLE y; --'"
        );
    }
}
