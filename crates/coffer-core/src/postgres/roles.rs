//! The cluster's roles as `pg_dumpall --roles-only` writes them, read by a strict parser and
//! never replayed: a backup's content is never executed. Restore regenerates the few
//! statements it needs ([`render_creation`]) from what was parsed, quoting every name and
//! literal itself.
//!
//! Accepted, one statement per line, nothing else: blank lines, `--` comments, the `SET`
//! lines pg_dumpall writes, its `\restrict`/`\unrestrict` lines, `CREATE ROLE name;`,
//! `ALTER ROLE name WITH <attributes>;` (the attributes pg_dumpall writes, a password only as
//! a SCRAM or md5 verifier) and `GRANT role TO role [WITH …] [GRANTED BY role];`.

use std::collections::{BTreeMap, BTreeSet};

use super::quote::{quote_ident, quote_literal};

/// A role's attributes as the dump's `ALTER ROLE … WITH` sets them (`None`: not stated).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoleAttributes {
    /// `SUPERUSER` / `NOSUPERUSER`.
    pub superuser: Option<bool>,
    /// `INHERIT` / `NOINHERIT`.
    pub inherit: Option<bool>,
    /// `CREATEROLE` / `NOCREATEROLE`.
    pub createrole: Option<bool>,
    /// `CREATEDB` / `NOCREATEDB`.
    pub createdb: Option<bool>,
    /// `LOGIN` / `NOLOGIN`.
    pub login: Option<bool>,
    /// `REPLICATION` / `NOREPLICATION`.
    pub replication: Option<bool>,
    /// `BYPASSRLS` / `NOBYPASSRLS`.
    pub bypassrls: Option<bool>,
    /// `CONNECTION LIMIT n`.
    pub connection_limit: Option<i64>,
    /// `PASSWORD '…'`: a SCRAM-SHA-256 or md5 verifier, never a clear-text password.
    pub password: Option<String>,
    /// `VALID UNTIL '…'`.
    pub valid_until: Option<String>,
}

impl RoleAttributes {
    /// The privileged attributes the role has (`SUPERUSER`, `REPLICATION`, `BYPASSRLS`):
    /// coffer does not create such a role.
    pub fn privileged(&self) -> Vec<&'static str> {
        [
            (self.superuser, "SUPERUSER"),
            (self.replication, "REPLICATION"),
            (self.bypassrls, "BYPASSRLS"),
        ]
        .into_iter()
        .filter(|(on, _)| *on == Some(true))
        .map(|(_, name)| name)
        .collect()
    }
}

/// One `GRANT role TO member`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    /// The role granted.
    pub role: String,
    /// The role it is granted to.
    pub member: String,
    /// `WITH ADMIN OPTION` / `ADMIN TRUE`.
    pub admin: bool,
    /// `INHERIT TRUE|FALSE` (PostgreSQL 16 and later).
    pub inherit: Option<bool>,
    /// `SET TRUE|FALSE` (PostgreSQL 16 and later).
    pub set: Option<bool>,
}

/// What a roles file holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RolesFile {
    /// Each role and its attributes, by name.
    pub roles: BTreeMap<String, RoleAttributes>,
    /// The memberships, in the file's order.
    pub memberships: Vec<Membership>,
    /// Per-role settings (`ALTER ROLE … SET`) and comments (`COMMENT ON ROLE`): read past,
    /// never restored (a restored role gets the server's defaults): how many, by role.
    pub skipped: BTreeMap<String, usize>,
}

/// Reads a `pg_dumpall --roles-only` output; `Err` names the first line that is not one of
/// the accepted statements (see the module docs) and why.
pub fn parse(text: &str) -> Result<RolesFile, String> {
    let mut file = RolesFile::default();
    for (i, line) in text.split('\n').enumerate() {
        let at = |why: String| format!("line {}: {why}", i + 1);
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.trim().is_empty() || line.starts_with("--") {
            continue;
        }
        if let Some(key) = line
            .strip_prefix("\\restrict ")
            .or_else(|| line.strip_prefix("\\unrestrict "))
        {
            if !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric()) {
                continue;
            }
            return Err(at("a malformed \\restrict line".into()));
        }
        let tokens = tokenize(line).map_err(at)?;
        statement(&tokens, &mut file).map_err(|why| at(format!("{why}: {}", shown(line))))?;
    }
    Ok(file)
}

/// A line as shown in a message: short, and without a password verifier.
fn shown(line: &str) -> String {
    let cut = match line.find("PASSWORD") {
        Some(i) => format!("{}PASSWORD …", &line[..i]),
        None => line.to_string(),
    };
    let mut s: String = cut.chars().take(120).collect();
    if s.len() < cut.len() {
        s.push('…');
    }
    s
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    /// An unquoted word, as written (keywords are matched case-insensitively).
    Word(String),
    /// A double-quoted identifier, unescaped.
    Quoted(String),
    /// A single-quoted string literal, unescaped.
    Literal(String),
    /// A number.
    Number(i64),
    /// `=`, `,` or `;`.
    Punct(char),
}

fn tokenize(line: &str) -> Result<Vec<Token>, String> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            ' ' | '\t' => {
                chars.next();
            }
            '=' | ',' | ';' => {
                chars.next();
                out.push(Token::Punct(c));
            }
            '"' | '\'' => {
                chars.next();
                let mut s = String::new();
                loop {
                    match chars.next() {
                        Some(q) if q == c && chars.peek() == Some(&c) => {
                            chars.next();
                            s.push(c);
                        }
                        Some(q) if q == c => break,
                        Some('\0') => return Err("a NUL character".into()),
                        Some(other) => s.push(other),
                        None => {
                            return Err("a quoted name or string is not closed on its line".into());
                        }
                    }
                }
                out.push(if c == '"' {
                    Token::Quoted(s)
                } else {
                    Token::Literal(s)
                });
            }
            '-' | '0'..='9' => {
                let mut s = String::new();
                s.push(c);
                chars.next();
                while let Some(&d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                    s.push(d);
                    chars.next();
                }
                out.push(Token::Number(
                    s.parse().map_err(|_| format!("not a number: {s}"))?,
                ));
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                let mut s = String::new();
                while let Some(&d) = chars
                    .peek()
                    .filter(|d| d.is_ascii_alphanumeric() || **d == '_' || **d == '$')
                {
                    s.push(d);
                    chars.next();
                }
                out.push(Token::Word(s));
            }
            other => return Err(format!("unexpected character {other:?}")),
        }
    }
    Ok(out)
}

/// A cursor over one statement's tokens.
struct Cursor<'a> {
    tokens: &'a [Token],
    at: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn next(&mut self) -> Option<&Token> {
        let t = self.tokens.get(self.at);
        self.at += 1;
        t
    }

    /// The next token is the keyword `kw` (consumed if so).
    fn keyword(&mut self, kw: &str) -> bool {
        match self.peek() {
            Some(Token::Word(w)) if w.eq_ignore_ascii_case(kw) => {
                self.at += 1;
                true
            }
            _ => false,
        }
    }

    fn expect(&mut self, kw: &str) -> Result<(), String> {
        if self.keyword(kw) {
            Ok(())
        } else {
            Err(format!("expected {kw}"))
        }
    }

    /// A role name: a quoted identifier, or an unquoted one as PostgreSQL folds it (pg_dumpall
    /// quotes every name that is not all lower case, so an upper-case bare word is refused).
    fn name(&mut self) -> Result<String, String> {
        match self.next() {
            Some(Token::Quoted(s)) if !s.is_empty() => Ok(s.clone()),
            Some(Token::Word(w))
                if w.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'$'
                }) =>
            {
                Ok(w.clone())
            }
            _ => Err("expected a role name".into()),
        }
    }

    fn literal(&mut self) -> Result<String, String> {
        match self.next() {
            Some(Token::Literal(s)) => Ok(s.clone()),
            _ => Err("expected a string literal".into()),
        }
    }

    fn boolean(&mut self) -> Result<bool, String> {
        if self.keyword("TRUE") {
            Ok(true)
        } else if self.keyword("FALSE") {
            Ok(false)
        } else {
            Err("expected TRUE or FALSE".into())
        }
    }

    /// The statement ends here with `;`.
    fn end(&mut self) -> Result<(), String> {
        let last = self.at + 1 == self.tokens.len();
        match self.next() {
            Some(Token::Punct(';')) if last => Ok(()),
            _ => Err("expected the end of the statement".into()),
        }
    }
}

fn statement(tokens: &[Token], file: &mut RolesFile) -> Result<(), String> {
    let mut c = Cursor { tokens, at: 0 };
    if c.keyword("SET") {
        return set_line(&mut c);
    }
    if c.keyword("CREATE") {
        c.expect("ROLE")?;
        let name = c.name()?;
        c.end()?;
        if file
            .roles
            .insert(name.clone(), RoleAttributes::default())
            .is_some()
        {
            return Err(format!("role {name} is created twice"));
        }
        return Ok(());
    }
    if c.keyword("ALTER") {
        c.expect("ROLE")?;
        let name = c.name()?;
        // `ALTER ROLE x [IN DATABASE d] SET|RESET …;`: a setting, skipped (never run).
        if matches!(c.peek(), Some(Token::Word(w)) if ["SET", "RESET", "IN"].iter().any(|k| w.eq_ignore_ascii_case(k)))
        {
            return skip_statement(tokens, name, file);
        }
        c.expect("WITH")?;
        let Some(attrs) = file.roles.get_mut(&name) else {
            return Err(format!("role {name} is altered before it is created"));
        };
        if *attrs != RoleAttributes::default() {
            return Err(format!("role {name} is altered twice"));
        }
        *attrs = attributes(&mut c)?;
        return Ok(());
    }
    if c.keyword("COMMENT") {
        c.expect("ON")?;
        c.expect("ROLE")?;
        let name = c.name()?;
        c.expect("IS")?;
        c.literal()?;
        c.end()?;
        return skip_statement(tokens, name, file);
    }
    if c.keyword("GRANT") {
        let role = c.name()?;
        c.expect("TO")?;
        let member = c.name()?;
        let mut m = Membership {
            role,
            member,
            admin: false,
            inherit: None,
            set: None,
        };
        if c.keyword("WITH") {
            loop {
                if c.keyword("ADMIN") {
                    m.admin = if c.keyword("OPTION") {
                        true
                    } else {
                        c.boolean()?
                    };
                } else if c.keyword("INHERIT") {
                    m.inherit = Some(c.boolean()?);
                } else if c.keyword("SET") {
                    m.set = Some(c.boolean()?);
                } else {
                    return Err("expected ADMIN, INHERIT or SET".into());
                }
                if c.peek() != Some(&Token::Punct(',')) {
                    break;
                }
                c.next();
            }
        }
        if c.keyword("GRANTED") {
            c.expect("BY")?;
            // Whoever granted it then: the restore grants as itself.
            c.name()?;
        }
        c.end()?;
        file.memberships.push(m);
        return Ok(());
    }
    Err("not a statement coffer accepts in a roles file".into())
}

/// Reads past a statement coffer does not restore (it must end on its line with `;`).
fn skip_statement(tokens: &[Token], role: String, file: &mut RolesFile) -> Result<(), String> {
    if tokens.last() != Some(&Token::Punct(';')) {
        return Err("expected the end of the statement (;) on its line".into());
    }
    *file.skipped.entry(role).or_default() += 1;
    Ok(())
}

/// `SET name = value;` as pg_dumpall writes it, with the values coffer's reading assumes.
fn set_line(c: &mut Cursor<'_>) -> Result<(), String> {
    let name = match c.next() {
        Some(Token::Word(w)) => w.to_ascii_lowercase(),
        _ => return Err("expected a setting name".into()),
    };
    if c.next() != Some(&Token::Punct('=')) {
        return Err("expected =".into());
    }
    let value = match c.next() {
        Some(Token::Word(w)) => w.to_ascii_lowercase(),
        Some(Token::Literal(s)) => s.to_ascii_lowercase(),
        _ => return Err("expected a value".into()),
    };
    c.end()?;
    match (name.as_str(), value.as_str()) {
        ("default_transaction_read_only", "off")
        | ("standard_conforming_strings", "on")
        | ("client_encoding", "utf8") => Ok(()),
        _ => Err(format!(
            "the setting {name} = {value} is not one coffer reads roles under"
        )),
    }
}

/// The attributes that are on or off (`LOGIN` / `NOLOGIN`).
const FLAGS: [&str; 7] = [
    "SUPERUSER",
    "INHERIT",
    "CREATEROLE",
    "CREATEDB",
    "LOGIN",
    "REPLICATION",
    "BYPASSRLS",
];

fn attributes(c: &mut Cursor<'_>) -> Result<RoleAttributes, String> {
    let mut a = RoleAttributes::default();
    loop {
        if c.peek() == Some(&Token::Punct(';')) {
            c.end()?;
            return Ok(a);
        }
        let word = match c.next() {
            Some(Token::Word(w)) => w.to_ascii_uppercase(),
            _ => return Err("expected a role attribute".into()),
        };
        let (on, base) = match word.strip_prefix("NO") {
            Some(base) if FLAGS.contains(&base) => (false, base.to_string()),
            _ => (true, word.clone()),
        };
        let flag = match base.as_str() {
            "SUPERUSER" => Some(&mut a.superuser),
            "INHERIT" => Some(&mut a.inherit),
            "CREATEROLE" => Some(&mut a.createrole),
            "CREATEDB" => Some(&mut a.createdb),
            "LOGIN" => Some(&mut a.login),
            "REPLICATION" => Some(&mut a.replication),
            "BYPASSRLS" => Some(&mut a.bypassrls),
            _ => None,
        };
        if let Some(flag) = flag {
            if flag.replace(on).is_some() {
                return Err(format!("{base} is given twice"));
            }
            continue;
        }
        match word.as_str() {
            "CONNECTION" => {
                c.expect("LIMIT")?;
                match c.next() {
                    Some(Token::Number(n)) if *n >= -1 => a.connection_limit = Some(*n),
                    _ => return Err("expected a connection limit".into()),
                }
            }
            "PASSWORD" => {
                let p = c.literal()?;
                if !is_verifier(&p) {
                    return Err("a PASSWORD that is not a SCRAM-SHA-256 or md5 verifier".into());
                }
                a.password = Some(p);
            }
            "VALID" => {
                c.expect("UNTIL")?;
                let until = c.literal()?;
                if until.len() > 64
                    || !until
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b" :-+.".contains(&b))
                {
                    return Err("an unusual VALID UNTIL value".into());
                }
                a.valid_until = Some(until);
            }
            _ => return Err(format!("{word} is not a role attribute coffer accepts")),
        }
    }
}

/// A stored password verifier: `SCRAM-SHA-256$<iterations>:<salt>$<stored key>:<server key>`
/// or `md5` and 32 hex digits, as PostgreSQL stores them (never a clear-text password).
fn is_verifier(p: &str) -> bool {
    if let Some(hex) = p.strip_prefix("md5") {
        return hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit());
    }
    let Some(rest) = p.strip_prefix("SCRAM-SHA-256$") else {
        return false;
    };
    let b64 = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b))
    };
    let Some((iter_salt, keys)) = rest.split_once('$') else {
        return false;
    };
    let (Some((iter, salt)), Some((stored, server))) =
        (iter_salt.split_once(':'), keys.split_once(':'))
    else {
        return false;
    };
    !iter.is_empty()
        && iter.bytes().all(|b| b.is_ascii_digit())
        && b64(salt)
        && b64(stored)
        && b64(server)
}

/// What a restore creates: the roles, in an order that works, and the memberships among them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoleCreation {
    /// Roles to create, with their attributes.
    pub roles: Vec<(String, RoleAttributes)>,
    /// Memberships whose member is one of those roles.
    pub memberships: Vec<Membership>,
}

impl RoleCreation {
    /// The names of the roles to create.
    pub fn names(&self) -> Vec<String> {
        self.roles.iter().map(|(n, _)| n.clone()).collect()
    }
}

/// Which roles to create so that the roles in `needed` exist: each missing one (`exists`
/// says which do) and, through its memberships, each missing role it is a member of. Never
/// anything about a role that exists. `Err` lists, one line each, the needed roles the file
/// does not define and those coffer does not create (privileged), with what to do.
pub fn plan_creation(
    file: &RolesFile,
    needed: &[String],
    exists: &dyn Fn(&str) -> bool,
) -> Result<RoleCreation, Vec<String>> {
    let mut problems = Vec::new();
    let mut chosen: BTreeSet<String> = BTreeSet::new();
    let mut queue: Vec<String> = needed.iter().filter(|r| !exists(r)).cloned().collect();
    while let Some(name) = queue.pop() {
        if !chosen.insert(name.clone()) {
            continue;
        }
        match file.roles.get(&name) {
            None => problems.push(format!(
                "role {name} is missing and not in the backup's roles file: create it first ({})",
                suggested_create(&name)
            )),
            Some(attrs) => {
                let privileged = attrs.privileged();
                if !privileged.is_empty() {
                    problems.push(format!(
                        "role {name} is missing and has {} in the backup: coffer does not create privileged roles; create it yourself as a superuser (CREATE ROLE {} {};) and restore again",
                        privileged.join(", "),
                        quote_ident(&name),
                        privileged.join(" ")
                    ));
                } else if attrs.createrole == Some(true) {
                    // Up to PostgreSQL 15 a CREATEROLE role may grant itself any role but a
                    // superuser, pg_execute_server_program included: almost a superuser.
                    problems.push(format!(
                        "role {name} is missing and has CREATEROLE in the backup: coffer does not create a role that may grant itself other roles; create it yourself (CREATE ROLE {} CREATEROLE LOGIN;) and restore again",
                        quote_ident(&name)
                    ));
                }
            }
        }
        for m in file.memberships.iter().filter(|m| m.member == name) {
            if !exists(&m.role) {
                queue.push(m.role.clone());
            }
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    // Memberships are granted after every role exists, so the order of roles is free.
    let roles = chosen
        .iter()
        .map(|n| (n.clone(), file.roles[n].clone()))
        .collect();
    let memberships = file
        .memberships
        .iter()
        .filter(|m| chosen.contains(&m.member))
        .cloned()
        .collect();
    Ok(RoleCreation { roles, memberships })
}

impl RoleCreation {
    /// The roles the plan's memberships grant that the plan does not create: they exist.
    pub fn granted_existing(&self) -> Vec<String> {
        let created: BTreeSet<&str> = self.roles.iter().map(|(n, _)| n.as_str()).collect();
        let granted: BTreeSet<&str> = self
            .memberships
            .iter()
            .map(|m| m.role.as_str())
            .filter(|r| !created.contains(r))
            .collect();
        granted.into_iter().map(str::to_string).collect()
    }
}

/// One line per membership of `plan` in an existing role that `privileged` says is
/// privileged (see [`super::Database::privileged_roles`]): a role created from a backup,
/// with the backup's password, must never gain such powers. Empty: nothing to refuse.
pub fn privileged_memberships(
    plan: &RoleCreation,
    privileged: &dyn Fn(&str) -> bool,
) -> Vec<String> {
    let created: BTreeSet<&str> = plan.roles.iter().map(|(n, _)| n.as_str()).collect();
    plan.memberships
        .iter()
        .filter(|m| !created.contains(m.role.as_str()) && privileged(&m.role))
        .map(|m| {
            format!(
                "the backup's roles file makes the missing role {member} a member of {role}, which exists and is privileged (a superuser, CREATEROLE, REPLICATION or BYPASSRLS role, one of the server's own roles, or a member of one): coffer does not grant it and created nothing; create {member} yourself ({}) and grant it what it needs, then restore again",
                suggested_create(&m.member),
                member = m.member,
                role = m.role,
            )
        })
        .collect()
}

/// What an operator runs to create a role by hand: `CREATE ROLE "x" LOGIN;`.
pub fn suggested_create(name: &str) -> String {
    format!("CREATE ROLE {} LOGIN;", quote_ident(name))
}

/// The SQL that creates `plan`'s roles and memberships, regenerated from the parsed facts
/// with coffer's own quoting (nothing of the file's text is passed on).
pub fn render_creation(plan: &RoleCreation) -> String {
    let mut sql = String::new();
    for (name, a) in &plan.roles {
        sql.push_str("CREATE ROLE ");
        sql.push_str(&quote_ident(name));
        let flags = [
            (a.inherit, "INHERIT"),
            (a.createrole, "CREATEROLE"),
            (a.createdb, "CREATEDB"),
            (a.login, "LOGIN"),
        ];
        // Privileged roles are never planned; the NO forms are the defaults anyway.
        sql.push_str(" WITH NOSUPERUSER NOREPLICATION NOBYPASSRLS");
        for (value, word) in flags {
            match value {
                Some(true) => sql.push_str(&format!(" {word}")),
                Some(false) => sql.push_str(&format!(" NO{word}")),
                None => {}
            }
        }
        if let Some(n) = a.connection_limit {
            sql.push_str(&format!(" CONNECTION LIMIT {n}"));
        }
        if let Some(p) = &a.password {
            sql.push_str(&format!(" PASSWORD {}", quote_literal(p)));
        }
        if let Some(v) = &a.valid_until {
            sql.push_str(&format!(" VALID UNTIL {}", quote_literal(v)));
        }
        sql.push_str(";\n");
    }
    for m in &plan.memberships {
        sql.push_str(&format!(
            "GRANT {} TO {}",
            quote_ident(&m.role),
            quote_ident(&m.member)
        ));
        let mut with = Vec::new();
        if m.admin {
            with.push("ADMIN OPTION".to_string());
        }
        if let Some(i) = m.inherit {
            with.push(format!("INHERIT {}", if i { "TRUE" } else { "FALSE" }));
        }
        if let Some(s) = m.set {
            with.push(format!("SET {}", if s { "TRUE" } else { "FALSE" }));
        }
        if !with.is_empty() {
            sql.push_str(" WITH ");
            sql.push_str(&with.join(", "));
        }
        sql.push_str(";\n");
    }
    sql
}

#[cfg(test)]
mod tests;
