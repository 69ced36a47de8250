//! A new database made like an existing one: what `CREATE DATABASE` and a plain dump (made
//! without `--create`) do not carry over — owner, encoding, locale, tablespace, connection
//! limit, comment, the `ALTER DATABASE … SET` / `ALTER ROLE … IN DATABASE … SET` settings
//! and the database's grants — read from the catalog as a [`DatabaseProfile`] and applied
//! to a new database with statements coffer writes, every name and value quoted (nothing
//! read from the catalog is pasted into SQL as it is).

use serde_json::Value;

use super::quote::{quote_ident, quote_literal};
use super::{Database, PgError, Session};

/// The longest database name PostgreSQL keeps (`NAMEDATALEN - 1` bytes); a longer one is
/// truncated silently, so coffer refuses it instead.
pub const MAX_NAME_BYTES: usize = 63;

/// What `CREATE DATABASE` and a plain dump do not carry over, read from the catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseProfile {
    /// The database's OID.
    pub oid: u32,
    /// Its owner.
    pub owner: String,
    /// Its encoding, e.g. `UTF8`.
    pub encoding: String,
    /// `LC_COLLATE`.
    pub collate: String,
    /// `LC_CTYPE`.
    pub ctype: String,
    /// `libc`, `icu` or (PostgreSQL 17) `builtin`.
    pub locale_provider: String,
    /// The ICU (or builtin) locale, for those providers.
    pub icu_locale: Option<String>,
    /// The ICU collation rules (PostgreSQL 16), if any.
    pub icu_rules: Option<String>,
    /// The tablespace, `None` for `pg_default`.
    pub tablespace: Option<String>,
    /// `CONNECTION LIMIT` (-1: none).
    pub connection_limit: i32,
    /// Whether it accepts connections (`ALLOW_CONNECTIONS`); a new database always does
    /// until it is swapped in.
    pub allow_connections: bool,
    /// `COMMENT ON DATABASE`, if any.
    pub comment: Option<String>,
    /// `ALTER DATABASE … SET` settings of the database itself (pg_db_role_setting, setrole 0)
    /// and per role in it (setrole ≠ 0), as (role or None, "name=value" items).
    pub settings: Vec<(Option<String>, Vec<String>)>,
    /// The database ACL (datacl) as aclitem texts, None = default.
    pub acl: Option<Vec<String>>,
}

/// The catalog row of one database as one JSON object (names with newlines and quotes
/// survive psql's unaligned output); the locale columns differ between versions, so the
/// whole `pg_database` row is taken and read by name.
const PROFILE_QUERY: &str = "SELECT json_build_object(\
     'row', to_jsonb(d), 'oid', d.oid::int8, \
     'owner', pg_get_userbyid(d.datdba), \
     'encoding', pg_encoding_to_char(d.encoding), \
     'tablespace', t.spcname, \
     'comment', shobj_description(d.oid, 'pg_database'), \
     'acl', d.datacl::text[], \
     'settings', coalesce((SELECT json_agg(json_build_array(\
         CASE WHEN s.setrole = 0 THEN NULL ELSE pg_get_userbyid(s.setrole) END, s.setconfig) \
         ORDER BY s.setrole) FROM pg_db_role_setting s WHERE s.setdatabase = d.oid), '[]'::json)) \
     FROM pg_database d JOIN pg_tablespace t ON t.oid = d.dattablespace WHERE d.datname = ";

impl Database {
    /// The profile of database `name` (connect this runner to any database of the server).
    pub fn database_profile(&self, name: &str) -> Result<DatabaseProfile, PgError> {
        let out = self.query(&format!("{PROFILE_QUERY}{}", quote_literal(name)))?;
        if out.trim().is_empty() {
            return Err(PgError::Unsupported(format!(
                "database {name} does not exist"
            )));
        }
        parse_profile(&out).map_err(|e| PgError::Parse {
            what: format!("the catalog of database {name} ({e})"),
            output: out.clone(),
        })
    }

    /// `CREATE DATABASE new` (`TEMPLATE template0`, owner, encoding, locale and tablespace of
    /// the profile), then in one transaction its settings, connection limit, comment and
    /// grants. Returns the new database's OID. A failure after the `CREATE` drops it again.
    pub fn create_database_like(
        &self,
        profile: &DatabaseProfile,
        new: &str,
    ) -> Result<u32, PgError> {
        check_name(new)?;
        // Every statement is written before anything is created: a profile coffer cannot
        // express creates nothing.
        let create = create_statement(profile, new)?;
        let script = profile_script(profile, new)?;
        self.query(&create)?;
        let made = self.database_oid(new).and_then(|oid| {
            oid.ok_or_else(|| PgError::Unsupported(format!("database {new} vanished")))
        });
        let applied = made.and_then(|oid| {
            if !script.is_empty() {
                self.run_script(&script)?;
            }
            Ok(oid)
        });
        if applied.is_err() {
            let _ = self.drop_database(new);
        }
        applied
    }

    /// The OID of a database by name, None when absent.
    pub fn database_oid(&self, name: &str) -> Result<Option<u32>, PgError> {
        let out = self.query(&format!(
            "SELECT oid FROM pg_database WHERE datname = {}",
            quote_literal(name)
        ))?;
        Ok(out.trim().parse().ok())
    }

    /// The client sessions connected to database `name` (not this runner's own).
    pub fn sessions_on(&self, name: &str) -> Result<Vec<Session>, PgError> {
        self.sessions_where(&format!("datname = {}", quote_literal(name)))
    }

    /// The client sessions (not this runner's own) holding a lock on one of the databases
    /// `names` as objects: a `COMMENT ON DATABASE`, `CREATE DATABASE … TEMPLATE` or rename
    /// in a transaction still open, which keeps a rename of that database waiting.
    pub fn sessions_locking(&self, names: &[&str]) -> Result<Vec<Session>, PgError> {
        let names = names
            .iter()
            .map(|n| quote_literal(n))
            .collect::<Vec<_>>()
            .join(", ");
        self.sessions_where(&format!(
            "pid IN (SELECT l.pid FROM pg_locks l JOIN pg_database d ON d.oid = l.objid \
             WHERE l.locktype = 'object' AND l.classid = 'pg_database'::regclass \
               AND l.granted AND d.datname IN ({names}))"
        ))
    }
}

/// Refuses a name PostgreSQL would truncate (or one it cannot hold at all).
pub fn check_name(name: &str) -> Result<(), PgError> {
    if name.is_empty() || name.len() > MAX_NAME_BYTES || name.contains('\0') {
        return Err(PgError::Unsupported(format!(
            "the database name {name:?} is {} bytes; PostgreSQL keeps at most {MAX_NAME_BYTES} (it would cut it silently): choose a shorter name",
            name.len()
        )));
    }
    Ok(())
}

fn parse_profile(out: &str) -> Result<DatabaseProfile, String> {
    let v: Value = serde_json::from_str(out.trim()).map_err(|e| e.to_string())?;
    let row = &v["row"];
    let text = |value: &Value, what: &str| -> Result<String, String> {
        value
            .as_str()
            .map(String::from)
            .ok_or_else(|| format!("no {what}"))
    };
    let opt_text = |value: &Value| value.as_str().map(String::from);
    // PostgreSQL 15 added the provider (before: libc); 17 renamed daticulocale to
    // datlocale and added the builtin provider.
    let locale_provider = match row.get("datlocprovider").and_then(Value::as_str) {
        None | Some("c") => "libc",
        Some("i") => "icu",
        Some("b") => "builtin",
        Some(other) => return Err(format!("unknown locale provider {other:?}")),
    };
    let icu_locale = opt_text(&row["daticulocale"])
        .or_else(|| opt_text(&row["datlocale"]))
        .filter(|_| locale_provider != "libc");
    let mut settings = Vec::new();
    for entry in v["settings"].as_array().ok_or("no settings")? {
        let role = opt_text(&entry[0]);
        let items = entry[1]
            .as_array()
            .ok_or("a setting that is not a list")?
            .iter()
            .map(|i| text(i, "setting"))
            .collect::<Result<Vec<_>, _>>()?;
        settings.push((role, items));
    }
    let acl = match &v["acl"] {
        Value::Null => None,
        list => Some(
            list.as_array()
                .ok_or("an ACL that is not a list")?
                .iter()
                .map(|i| text(i, "aclitem"))
                .collect::<Result<Vec<_>, _>>()?,
        ),
    };
    Ok(DatabaseProfile {
        oid: v["oid"]
            .as_u64()
            .and_then(|o| u32::try_from(o).ok())
            .ok_or("no oid")?,
        owner: text(&v["owner"], "owner")?,
        encoding: text(&v["encoding"], "encoding")?,
        collate: text(&row["datcollate"], "datcollate")?,
        ctype: text(&row["datctype"], "datctype")?,
        locale_provider: locale_provider.into(),
        icu_locale,
        icu_rules: opt_text(&row["daticurules"]),
        tablespace: opt_text(&v["tablespace"]).filter(|t| t != "pg_default"),
        connection_limit: row["datconnlimit"]
            .as_i64()
            .and_then(|n| i32::try_from(n).ok())
            .ok_or("no datconnlimit")?,
        allow_connections: row["datallowconn"].as_bool().ok_or("no datallowconn")?,
        comment: opt_text(&v["comment"]),
        settings,
        acl,
    })
}

/// The `CREATE DATABASE` statement of a database like `profile` named `new`. Pure.
fn create_statement(profile: &DatabaseProfile, new: &str) -> Result<String, PgError> {
    let mut sql = format!(
        "CREATE DATABASE {} WITH TEMPLATE template0 OWNER {} ENCODING {} LC_COLLATE {} LC_CTYPE {}",
        quote_ident(new),
        quote_ident(&profile.owner),
        quote_literal(&profile.encoding),
        quote_literal(&profile.collate),
        quote_literal(&profile.ctype),
    );
    let locale = profile.icu_locale.as_deref().map(quote_literal);
    match (profile.locale_provider.as_str(), locale) {
        ("libc", _) => {}
        ("icu", Some(locale)) => {
            sql.push_str(&format!(" LOCALE_PROVIDER icu ICU_LOCALE {locale}"));
            if let Some(rules) = &profile.icu_rules {
                sql.push_str(&format!(" ICU_RULES {}", quote_literal(rules)));
            }
        }
        ("builtin", Some(locale)) => {
            sql.push_str(&format!(" LOCALE_PROVIDER builtin BUILTIN_LOCALE {locale}"));
        }
        (provider, _) => {
            return Err(PgError::Unsupported(format!(
                "cannot create a database like one with locale provider {provider:?} and locale {:?}",
                profile.icu_locale
            )));
        }
    }
    if let Some(space) = &profile.tablespace {
        sql.push_str(&format!(" TABLESPACE {}", quote_ident(space)));
    }
    Ok(sql)
}

/// The statements giving database `new` the profile's settings, connection limit, comment
/// and grants, as one script (empty when there is nothing to give). Pure.
fn profile_script(profile: &DatabaseProfile, new: &str) -> Result<String, PgError> {
    let db = quote_ident(new);
    let mut sql = String::new();
    for (role, items) in &profile.settings {
        let subject = match role {
            None => format!("DATABASE {db}"),
            Some(role) => format!("ROLE {} IN DATABASE {db}", quote_ident(role)),
        };
        for item in items {
            let assignment = setting_assignment(item).map_err(PgError::Unsupported)?;
            sql.push_str(&format!("ALTER {subject} SET {assignment};\n"));
        }
    }
    if profile.connection_limit != -1 {
        sql.push_str(&format!(
            "ALTER DATABASE {db} CONNECTION LIMIT {};\n",
            profile.connection_limit
        ));
    }
    if let Some(comment) = &profile.comment {
        sql.push_str(&format!(
            "COMMENT ON DATABASE {db} IS {};\n",
            quote_literal(comment)
        ));
    }
    if let Some(acl) = &profile.acl {
        sql.push_str(&grant_statements(acl, &profile.owner, &db).map_err(PgError::Unsupported)?);
    }
    Ok(sql)
}

/// Settings whose value is a list of names that PostgreSQL stores quoted as identifiers
/// (`search_path="$user", public`): they are split and given back element by element, as
/// pg_dump does (`variable_is_guc_list_quote`).
const LIST_QUOTE_SETTINGS: [&str; 6] = [
    "local_preload_libraries",
    "search_path",
    "session_preload_libraries",
    "shared_preload_libraries",
    "temp_tablespaces",
    "unix_socket_directories",
];

/// `name = value` for `ALTER … SET` from a `pg_db_role_setting` item `name=value`: the
/// name's parts quoted as identifiers, the value as literal(s). Pure.
fn setting_assignment(item: &str) -> Result<String, String> {
    let Some((name, value)) = item.split_once('=') else {
        return Err(format!("a database setting without a value: {item:?}"));
    };
    let name_ok = !name.is_empty()
        && name
            .split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
    if !name_ok {
        return Err(format!("a database setting with an unusual name: {name:?}"));
    }
    let quoted_name = name
        .split('.')
        .map(quote_ident)
        .collect::<Vec<_>>()
        .join(".");
    let value = if LIST_QUOTE_SETTINGS.contains(&name.to_ascii_lowercase().as_str()) {
        split_guc_list(value)
            .ok_or_else(|| format!("cannot read the list in the setting {item:?}"))?
            .iter()
            .map(|v| quote_literal(v))
            .collect::<Vec<_>>()
            .join(", ")
    } else {
        quote_literal(value)
    };
    Ok(format!("{quoted_name} = {value}"))
}

/// Splits a list setting as PostgreSQL's `SplitGUCList` does: elements separated by commas
/// and white space, an element in double quotes may hold anything (`""` is one quote). `None`
/// when it is malformed. Pure.
fn split_guc_list(text: &str) -> Option<Vec<String>> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    let skip_space = |c: &mut std::iter::Peekable<std::str::Chars>| {
        while c.peek().is_some_and(|ch| ch.is_whitespace()) {
            c.next();
        }
    };
    skip_space(&mut chars);
    if chars.peek().is_none() {
        return Some(out);
    }
    loop {
        let mut element = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next()? {
                    '"' if chars.peek() == Some(&'"') => {
                        chars.next();
                        element.push('"');
                    }
                    '"' => break,
                    ch => element.push(ch),
                }
            }
        } else {
            while let Some(&ch) = chars.peek() {
                if ch == ',' || ch.is_whitespace() {
                    break;
                }
                element.push(ch);
                chars.next();
            }
            if element.is_empty() {
                return None;
            }
        }
        out.push(element);
        skip_space(&mut chars);
        match chars.next() {
            None => return Some(out),
            Some(',') => skip_space(&mut chars),
            Some(_) => return None,
        }
    }
}

/// One entry of a database ACL: `grantee=privileges/grantor`.
#[derive(Debug, PartialEq, Eq)]
struct AclItem {
    /// `None`: PUBLIC.
    grantee: Option<String>,
    grantor: String,
    /// `CREATE`, `TEMPORARY`, `CONNECT`, each with whether it may be granted on.
    privileges: Vec<(&'static str, bool)>,
}

/// Reads an aclitem's text as PostgreSQL writes it (`putid`: a name that is not all
/// letters, digits and underscores is double-quoted, `""` inside). Only database
/// privileges are accepted. Pure.
fn parse_aclitem(text: &str) -> Result<AclItem, String> {
    let bad = |why: &str| format!("cannot read the database grant {text:?}: {why}");
    let (grantee, rest) = read_acl_name(text).ok_or_else(|| bad("grantee"))?;
    let rest = rest.strip_prefix('=').ok_or_else(|| bad("no '='"))?;
    let (letters, grantor) = rest.split_once('/').ok_or_else(|| bad("no grantor"))?;
    let (grantor, tail) = read_acl_name(grantor).ok_or_else(|| bad("grantor"))?;
    if grantor.is_empty() || !tail.is_empty() {
        return Err(bad("grantor"));
    }
    let mut privileges: Vec<(&'static str, bool)> = Vec::new();
    for letter in letters.chars() {
        let privilege = match letter {
            'C' => "CREATE",
            'T' => "TEMPORARY",
            'c' => "CONNECT",
            '*' => match privileges.last_mut() {
                Some(last) if !last.1 => {
                    last.1 = true;
                    continue;
                }
                _ => return Err(bad("misplaced '*'")),
            },
            other => {
                return Err(bad(&format!(
                    "privilege {other:?} is not one of a database"
                )));
            }
        };
        privileges.push((privilege, false));
    }
    Ok(AclItem {
        grantee: (!grantee.is_empty()).then_some(grantee),
        grantor,
        privileges,
    })
}

/// A role name at the start of `text` as an aclitem writes it, and what follows.
fn read_acl_name(text: &str) -> Option<(String, &str)> {
    let Some(quoted) = text.strip_prefix('"') else {
        let end = text
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(text.len());
        return Some((text[..end].to_string(), &text[end..]));
    };
    let mut name = String::new();
    let mut chars = quoted.char_indices().peekable();
    while let Some((i, ch)) = chars.next() {
        if ch == '"' {
            if chars.peek().map(|&(_, c)| c) == Some('"') {
                chars.next();
                name.push('"');
            } else {
                return Some((name, &quoted[i + 1..]));
            }
        } else {
            name.push(ch);
        }
    }
    None
}

/// The statements that give database `db` (quoted) exactly the ACL `acl` (aclitem texts,
/// in order) from the default a new database has: everything revoked, then each entry
/// granted as its grantor (`SET ROLE` when that is not the owner). Pure.
fn grant_statements(acl: &[String], owner: &str, db: &str) -> Result<String, String> {
    let mut sql = format!(
        "REVOKE ALL ON DATABASE {db} FROM PUBLIC;\nREVOKE ALL ON DATABASE {db} FROM {};\n",
        quote_ident(owner)
    );
    for text in acl {
        let item = parse_aclitem(text)?;
        let grantee = item
            .grantee
            .as_deref()
            .map_or_else(|| "PUBLIC".to_string(), quote_ident);
        let as_grantor = item.grantor != owner;
        if as_grantor {
            sql.push_str(&format!("SET ROLE {};\n", quote_ident(&item.grantor)));
        }
        for grantable in [false, true] {
            let list: Vec<&str> = item
                .privileges
                .iter()
                .filter(|(_, g)| *g == grantable)
                .map(|(p, _)| *p)
                .collect();
            if !list.is_empty() {
                sql.push_str(&format!(
                    "GRANT {} ON DATABASE {db} TO {grantee}{};\n",
                    list.join(", "),
                    if grantable { " WITH GRANT OPTION" } else { "" }
                ));
            }
        }
        if as_grantor {
            sql.push_str("RESET ROLE;\n");
        }
    }
    Ok(sql)
}

#[cfg(test)]
mod tests;
