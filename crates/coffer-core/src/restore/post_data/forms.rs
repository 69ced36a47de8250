//! The few statement forms the post-data planner recognises, read from one whole top-level
//! statement (from its first significant byte to its `;`, as the scanner delimited it).
//! Pure functions of bytes; anything that is not exactly one of these forms is `None`, and
//! the statement then stays where the dump put it.

/// Whether `b` may start an unquoted SQL identifier (PostgreSQL's `ident_start`).
fn is_ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b >= 0x80
}

/// Whether `b` may continue an unquoted SQL identifier (PostgreSQL's `ident_cont`).
fn is_ident_cont(b: u8) -> bool {
    is_ident_start(b) || b.is_ascii_digit() || b == b'$'
}

/// SQL whitespace as PostgreSQL's lexer sees it.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0c | 0x0b)
}

/// Length of the blanks and comments at the start of `s` (what lies between one statement's
/// `;` and the next statement's first byte). Comments follow psql's rules, as the scanner
/// does: `--` up to a newline or carriage return, `/* */` nested.
pub(super) fn leading_blanks_and_comments(s: &[u8]) -> usize {
    let mut i = 0;
    while i < s.len() {
        let rest = &s[i..];
        if is_space(rest[0]) {
            i += 1;
        } else if rest.starts_with(b"--") {
            i += memchr::memchr2(b'\n', b'\r', rest).map_or(rest.len(), |j| j + 1);
        } else if rest.starts_with(b"/*") {
            let mut depth = 0u32;
            let mut j = 2;
            loop {
                match rest.get(j..j + 2) {
                    // Unterminated: no statement starts inside it.
                    None => return s.len(),
                    Some(b"/*") => {
                        depth += 1;
                        j += 2;
                    }
                    Some(b"*/") if depth == 0 => break,
                    Some(b"*/") => {
                        depth -= 1;
                        j += 2;
                    }
                    Some(_) => j += 1,
                }
            }
            i += j + 2;
        } else {
            break;
        }
    }
    i
}

/// A reader over one statement's bytes.
struct Cursor<'a> {
    s: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn new(s: &'a [u8]) -> Self {
        Cursor { s, at: 0 }
    }

    fn rest(&self) -> &'a [u8] {
        &self.s[self.at..]
    }

    /// The keyword exactly as pg_dump writes it (upper case), as a whole word.
    fn keyword(&mut self, kw: &[u8]) -> Option<()> {
        let rest = self.rest();
        (rest.starts_with(kw) && !rest.get(kw.len()).copied().is_some_and(is_ident_cont))
            .then(|| self.at += kw.len())
    }

    /// At least one blank.
    fn blank(&mut self) -> Option<()> {
        let n = self.blanks();
        (n > 0).then_some(())
    }

    /// Any blanks; how many.
    fn blanks(&mut self) -> usize {
        let n = self.rest().iter().take_while(|&&b| is_space(b)).count();
        self.at += n;
        n
    }

    fn byte(&mut self, b: u8) -> Option<()> {
        (self.rest().first() == Some(&b)).then(|| self.at += 1)
    }

    /// One identifier as written: `"…"` (`""` inside; anything else, `;` and newlines
    /// included, is part of the name) or a bare word.
    fn identifier(&mut self) -> Option<&'a [u8]> {
        let rest = self.rest();
        let len = if rest.first() == Some(&b'"') {
            let mut i = 1;
            loop {
                let q = i + memchr::memchr(b'"', &rest[i..])?;
                if rest.get(q + 1) == Some(&b'"') {
                    i = q + 2;
                } else {
                    break q + 1;
                }
            }
        } else if rest.first().copied().is_some_and(is_ident_start) {
            rest.iter().take_while(|&&b| is_ident_cont(b)).count()
        } else {
            return None;
        };
        if len <= 2 && rest[0] == b'"' {
            return None; // `""`: a zero-length name is no name
        }
        self.at += len;
        Some(&rest[..len])
    }

    /// A name with at most one qualifier, as written: `t`, `public.t`, `"s"."t"`.
    fn qualified(&mut self) -> Option<&'a [u8]> {
        let start = self.at;
        self.identifier()?;
        if self.byte(b'.').is_some() {
            self.identifier()?;
        }
        Some(&self.s[start..self.at])
    }

    /// The statement ends here: `;` (blanks before it allowed) and nothing after.
    fn end(&mut self) -> Option<()> {
        self.blanks();
        (self.rest() == b";").then_some(())
    }
}

/// `CREATE [UNIQUE] INDEX <name> ON <table> USING …;` (not `ON ONLY`): the table and the
/// index name, as written.
pub(super) fn index_build(stmt: &[u8]) -> Option<(&[u8], &[u8])> {
    let mut c = Cursor::new(stmt);
    c.keyword(b"CREATE")?;
    c.blank()?;
    if c.keyword(b"UNIQUE").is_some() {
        c.blank()?;
    }
    c.keyword(b"INDEX")?;
    c.blank()?;
    let name = c.identifier()?;
    c.blank()?;
    c.keyword(b"ON")?;
    c.blank()?;
    if c.keyword(b"ONLY").is_some() {
        // A partitioned table's own index: built empty, then its partitions' indexes are
        // attached to it, all in the dump's order.
        return None;
    }
    let table = c.qualified()?;
    c.blank()?;
    c.keyword(b"USING")?;
    c.blank()?;
    Some((table, name))
}

/// Which unique constraint a rewritable `ADD CONSTRAINT` adds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum UniqueKind {
    PrimaryKey,
    Unique,
}

impl UniqueKind {
    fn keywords(self) -> &'static str {
        match self {
            UniqueKind::PrimaryKey => "PRIMARY KEY",
            UniqueKind::Unique => "UNIQUE",
        }
    }
}

/// pg_dump's simple unique constraint, with every part as written.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct UniqueConstraint<'a> {
    pub table: &'a [u8],
    pub name: &'a [u8],
    pub kind: UniqueKind,
    pub columns: Vec<&'a [u8]>,
}

impl UniqueConstraint<'_> {
    /// The index behind the constraint, as the constraint would have built it.
    pub(super) fn index_statement(&self) -> Vec<u8> {
        let mut sql = b"CREATE UNIQUE INDEX ".to_vec();
        sql.extend_from_slice(self.name);
        sql.extend_from_slice(b" ON ");
        sql.extend_from_slice(self.table);
        sql.extend_from_slice(b" USING btree (");
        sql.extend_from_slice(&self.columns.join(&b", "[..]));
        sql.extend_from_slice(b");");
        sql
    }

    /// The constraint, attached to that index (which it takes over, keeping its name).
    pub(super) fn using_index_statement(&self) -> Vec<u8> {
        let mut sql = b"ALTER TABLE ONLY ".to_vec();
        sql.extend_from_slice(self.table);
        sql.extend_from_slice(b"\n    ADD CONSTRAINT ");
        sql.extend_from_slice(self.name);
        sql.push(b' ');
        sql.extend_from_slice(self.kind.keywords().as_bytes());
        sql.extend_from_slice(b" USING INDEX ");
        sql.extend_from_slice(self.name);
        sql.push(b';');
        sql
    }
}

/// `ALTER TABLE ONLY <table> ADD CONSTRAINT <name> PRIMARY KEY (<columns>);` or `… UNIQUE
/// (<columns>);` and nothing more: no `DEFERRABLE`, `INITIALLY`, `INCLUDE`, `WITH (…)`,
/// `USING INDEX TABLESPACE`, `NULLS NOT DISTINCT`, which an index built beforehand would
/// not carry (or `USING INDEX` refuses).
pub(super) fn unique_constraint(stmt: &[u8]) -> Option<UniqueConstraint<'_>> {
    let mut c = Cursor::new(stmt);
    c.keyword(b"ALTER")?;
    c.blank()?;
    c.keyword(b"TABLE")?;
    c.blank()?;
    c.keyword(b"ONLY")?;
    c.blank()?;
    let table = c.qualified()?;
    c.blank()?;
    c.keyword(b"ADD")?;
    c.blank()?;
    c.keyword(b"CONSTRAINT")?;
    c.blank()?;
    let name = c.identifier()?;
    c.blank()?;
    let kind = if c.keyword(b"PRIMARY").is_some() {
        c.blank()?;
        c.keyword(b"KEY")?;
        UniqueKind::PrimaryKey
    } else {
        c.keyword(b"UNIQUE")?;
        UniqueKind::Unique
    };
    c.blanks();
    c.byte(b'(')?;
    let mut columns = Vec::new();
    loop {
        c.blanks();
        columns.push(c.identifier()?);
        c.blanks();
        if c.byte(b',').is_none() {
            break;
        }
    }
    c.byte(b')')?;
    c.end()?;
    Some(UniqueConstraint {
        table,
        name,
        kind,
        columns,
    })
}

/// What a statement does to the session's settings.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Setting {
    /// Sets (or resets) the named parameter (lower case, as written otherwise).
    One(String),
    /// `RESET ALL`.
    All,
}

/// `SET [SESSION|LOCAL] name …`, `RESET name`, `RESET ALL`, and pg_dump's
/// `SELECT pg_catalog.set_config('name', 'value', false);` (how it sets `search_path`).
pub(super) fn setting(stmt: &[u8]) -> Option<Setting> {
    const SET_CONFIG: &[u8] = b"SELECT pg_catalog.set_config('";
    if let Some(rest) = stmt.strip_prefix(SET_CONFIG) {
        let name_len = rest.iter().position(|&b| b == b'\'')?;
        let name = &rest[..name_len];
        let mut c = Cursor::new(&rest[name_len + 1..]);
        c.byte(b',')?;
        c.blanks();
        // The value: one plain literal, without quotes or backslashes inside.
        c.byte(b'\'')?;
        let value_len = c.rest().iter().position(|&b| b == b'\'')?;
        if c.rest()[..value_len].contains(&b'\\') {
            return None;
        }
        c.at += value_len + 1;
        c.byte(b',')?;
        c.blanks();
        c.keyword(b"false")?;
        c.byte(b')')?;
        c.end()?;
        return name
            .iter()
            .all(|&b| is_ident_cont(b) || b == b'.')
            .then(|| Setting::One(String::from_utf8_lossy(name).to_ascii_lowercase()));
    }
    let mut c = Cursor::new(stmt);
    let word = c.identifier()?.to_ascii_lowercase();
    if word != b"set" && word != b"reset" {
        return None;
    }
    c.blank()?;
    let mut name = c.identifier()?.to_ascii_lowercase();
    if word == b"set" && (name == b"session" || name == b"local") {
        c.blank()?;
        name = c.identifier()?.to_ascii_lowercase();
    }
    if word == b"reset" && name == b"all" {
        return Some(Setting::All);
    }
    Some(Setting::One(String::from_utf8_lossy(&name).into_owned()))
}
