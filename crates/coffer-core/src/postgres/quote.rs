//! Quoting for SQL text coffer builds.

/// `text` as an SQL string literal.
pub fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
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
}
