//! Where the database is, and running `pg_dump` and `psql` against it.
//!
//! Two ways to reach the database:
//! - **direct**: `database.url` or the libpq `PG*` environment. The URL's parts are handed to
//!   the child as `PG*` variables, never as arguments, so the password is not in the process
//!   list, logs or errors.
//! - **exec**: `database.exec` is an argv prefix (`docker compose exec -T postgres`) under
//!   which `pg_dump` and `psql` run, for stacks whose PostgreSQL has no published port.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, ChildStderr, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crate::config::DatabaseConfig;
use crate::sandbox_exec::{ConfineError, Confinement, ExecConfinement};

/// Why talking to PostgreSQL failed.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    /// `database.url` is not a usable PostgreSQL URL.
    #[error("invalid database URL {url}: {reason}")]
    BadUrl {
        /// The URL with its password replaced by `***`.
        url: String,
        /// Why it was rejected.
        reason: String,
    },
    /// The configuration cannot be honoured (e.g. a password with `database.exec`).
    #[error("{0}")]
    Unsupported(String),
    /// A program could not be started at all.
    #[error(
        "cannot run `{program}`: {source}; install the PostgreSQL client (Debian: apt-get install postgresql-client) or check database.exec"
    )]
    Spawn {
        /// The program (first word of the command line).
        program: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A program ran and failed.
    #[error("{what} failed ({status}): {hint}\n{stderr}")]
    Failed {
        /// What was being done, e.g. `psql query` or `pg_dump`.
        what: String,
        /// The exit status.
        status: String,
        /// What to check.
        hint: String,
        /// The tail of the program's standard error.
        stderr: String,
    },
    /// Output could not be understood.
    #[error("unexpected output from {what}: {output}")]
    Parse {
        /// What produced it.
        what: String,
        /// The output.
        output: String,
    },
}

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
                    let v = if crate::redact::is_secret_key(&k) {
                        crate::redact::MASK.into()
                    } else {
                        v.into_owned()
                    };
                    (k.into_owned(), v)
                })
                .collect();
            if pairs.iter().any(|(k, _)| crate::redact::is_secret_key(k)) {
                url.query_pairs_mut().clear().extend_pairs(pairs);
            }
            url.to_string()
        }
        // Unparseable: show nothing that might be a secret.
        Err(_) => "(unparseable URL)".to_string(),
    }
}

/// [`redact_url`] without its query string: for a URL that was rejected, whose parameters
/// may hold a mistyped secret anywhere (`?ssl=assword=…`, `?sslpassword[…`).
fn redact_url_values(text: &str) -> String {
    // A mistyped URL may hold its password anywhere (`postgres:'/app:pw@db`,
    // `postgres://app'pw@db`): show the scheme and the host, never user-info, path or query.
    match url::Url::parse(text) {
        Ok(url) => {
            let mut shown = format!("{}:", url.scheme());
            match url.host_str().filter(|_| url.has_authority()) {
                Some(host) => {
                    shown.push_str("//");
                    if !url.username().is_empty() || url.password().is_some() {
                        shown.push_str("…@");
                    }
                    shown.push_str(host);
                    if let Some(port) = url.port() {
                        shown.push_str(&format!(":{port}"));
                    }
                    if !matches!(url.path(), "" | "/") || url.query().is_some() {
                        shown.push_str("/…");
                    }
                }
                None => shown.push('…'),
            }
            shown
        }
        Err(_) => "(unparseable URL)".to_string(),
    }
}

/// How to run PostgreSQL client programs against the configured database.
#[derive(Debug, Clone, Default)]
pub struct Database {
    exec: Option<Vec<String>>,
    env: Vec<(String, String)>,
    args: Vec<String>,
}

impl Database {
    /// Builds the runner from `[database]`.
    pub fn from_config(config: &DatabaseConfig) -> Result<Database, PgError> {
        let params = match &config.url {
            Some(url) => ConnectionParams::from_url(url)?,
            None => ConnectionParams::default(),
        };
        let mut db = Database {
            exec: config.exec.clone(),
            ..Database::default()
        };
        if db.exec.is_some() {
            if params.has_password() {
                return Err(PgError::Unsupported(
                    "database.url has a password but database.exec is set: a password cannot be \
                     passed into the container without putting it on a command line; remove it \
                     and rely on the container's local authentication"
                        .into(),
                ));
            }
            // Inside a container the PG* environment of this process does not apply, so the
            // (non-secret) settings travel as arguments.
            for (k, v) in &params.env {
                let flag = match k.as_str() {
                    "PGHOST" => "--host",
                    "PGPORT" => "--port",
                    "PGUSER" => "--username",
                    "PGDATABASE" => "--dbname",
                    _ => continue,
                };
                db.args.push(format!("{flag}={v}"));
            }
        } else {
            db.env = params.env;
        }
        if let Some(user) = &config.user {
            db.set_arg("--username", user);
        }
        if let Some(name) = &config.name {
            db.set_arg("--dbname", name);
        }
        Ok(db)
    }

    /// A runner for a local server reached through `PG*`-style settings, e.g. a sandbox cluster.
    pub fn from_env(env: Vec<(String, String)>) -> Database {
        Database {
            env,
            ..Database::default()
        }
    }

    fn set_arg(&mut self, flag: &str, value: &str) {
        self.args.retain(|a| !a.starts_with(&format!("{flag}=")));
        self.args.push(format!("{flag}={value}"));
    }

    /// The same runner aimed at another database on the same server.
    pub fn with_dbname(&self, name: &str) -> Database {
        let mut db = self.clone();
        db.set_arg("--dbname", name);
        db
    }

    /// A command running `program` (`pg_dump`, `psql`) with the connection settings applied.
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = self.bare_command(program);
        cmd.args(&self.args);
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd
    }

    /// `program` under the exec prefix, without connection settings.
    fn bare_command(&self, program: &str) -> Command {
        let mut cmd = match &self.exec {
            Some(prefix) => {
                let mut c = Command::new(&prefix[0]);
                c.args(&prefix[1..]).arg(program);
                c
            }
            None => Command::new(program),
        };
        cmd.stdin(Stdio::null());
        cmd
    }

    /// Runs one SQL statement with `psql` and returns its unaligned, tuples-only output.
    pub fn query(&self, sql: &str) -> Result<String, PgError> {
        let mut cmd = self.command("psql");
        cmd.args(["-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-c", sql]);
        let out = output(cmd, "psql")?;
        if !out.status.success() {
            return Err(PgError::Failed {
                what: "psql query".into(),
                status: out.status.to_string(),
                hint: "check that the database is running and the connection settings ([database] url/exec/name/user or PG* variables) are right".into(),
                stderr: tail_lines(&String::from_utf8_lossy(&out.stderr), 20),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim_end().to_string())
    }

    /// Facts about the server and the database, asked before a backup starts.
    pub fn server_info(&self) -> Result<ServerInfo, PgError> {
        let out = self.query(
            "SELECT current_database(), current_setting('server_version_num'), \
             current_setting('server_version'), pg_database_size(current_database())",
        )?;
        let fields: Vec<&str> = out.trim().split('|').collect();
        let parse_err = || PgError::Parse {
            what: "psql server query".into(),
            output: out.clone(),
        };
        if fields.len() != 4 {
            return Err(parse_err());
        }
        Ok(ServerInfo {
            database: fields[0].to_string(),
            version_num: fields[1].parse().map_err(|_| parse_err())?,
            version: fields[2].to_string(),
            size_bytes: fields[3].parse().map_err(|_| parse_err())?,
        })
    }

    /// The version of a client program, e.g. `pg_dump --version`.
    pub fn client_version(&self, program: &str) -> Result<ClientVersion, PgError> {
        // --version must come alone: connection arguments would be rejected.
        let mut cmd = self.bare_command(program);
        cmd.arg("--version");
        let out = output(cmd, program)?;
        let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if !out.status.success() {
            return Err(PgError::Failed {
                what: format!("{program} --version"),
                status: out.status.to_string(),
                hint: "check that the PostgreSQL client is installed where database.exec runs it"
                    .into(),
                stderr: tail_lines(&String::from_utf8_lossy(&out.stderr), 20),
            });
        }
        ClientVersion::parse(&text).ok_or(PgError::Parse {
            what: format!("{program} --version"),
            output: text,
        })
    }

    /// Starts `pg_dump` in plain format with `--clean --if-exists`, its output piped.
    pub fn spawn_pg_dump(&self) -> Result<RunningProgram, PgError> {
        let mut cmd = self.command("pg_dump");
        cmd.args(["--format=plain", "--clean", "--if-exists", "--no-password"]);
        // Its own process group, so cancelling can stop a wrapper (`docker compose exec`, a
        // script) together with everything it started.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        RunningProgram::spawn(cmd, "pg_dump", true)
    }
}

impl Database {
    /// The roles among `roles` that do not exist on the server.
    pub fn missing_roles(&self, roles: &[String]) -> Result<Vec<String>, PgError> {
        if roles.is_empty() {
            return Ok(Vec::new());
        }
        let list = roles.iter().map(|r| quote_literal(r)).collect::<Vec<_>>();
        let out = self.query(&format!(
            "SELECT r FROM unnest(ARRAY[{}]::text[]) AS r \
             WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) ORDER BY r",
            list.join(",")
        ))?;
        Ok(out
            .lines()
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect())
    }

    /// Other client sessions connected to this database (not this one).
    pub fn other_sessions(&self) -> Result<Vec<Session>, PgError> {
        let out = self.query(
            "SELECT pid, coalesce(usename, ''), coalesce(application_name, ''), \
             coalesce(client_addr::text, 'local socket'), coalesce(state, '') \
             FROM pg_stat_activity WHERE datname = current_database() \
             AND pid <> pg_backend_pid() AND backend_type = 'client backend' ORDER BY pid",
        )?;
        out.lines()
            .filter(|l| !l.is_empty())
            .map(|line| {
                let f: Vec<&str> = line.splitn(5, '|').collect();
                match (f.first().and_then(|p| p.parse().ok()), f.len()) {
                    (Some(pid), 5) => Ok(Session {
                        pid,
                        user: f[1].into(),
                        application: f[2].into(),
                        client: f[3].into(),
                        state: f[4].into(),
                    }),
                    _ => Err(PgError::Parse {
                        what: "pg_stat_activity".into(),
                        output: line.into(),
                    }),
                }
            })
            .collect()
    }

    /// Terminates the other client sessions connected to this database and waits (up to
    /// ten seconds) until they are gone; returns how many were asked to end.
    pub fn terminate_other_sessions(&self) -> Result<usize, PgError> {
        let out = self.query(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid() \
             AND backend_type = 'client backend'",
        )?;
        let n = out.trim().parse().unwrap_or(0);
        for _ in 0..100 {
            if self.other_sessions()?.is_empty() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        Ok(n)
    }

    /// Whether a database named `name` exists on the server.
    pub fn database_exists(&self, name: &str) -> Result<bool, PgError> {
        let out = self.query(&format!(
            "SELECT count(*) FROM pg_database WHERE datname = {}",
            quote_literal(name)
        ))?;
        Ok(out.trim() == "1")
    }

    /// Runs `CREATE DATABASE name` (connect this runner to a maintenance database).
    pub fn create_database(&self, name: &str) -> Result<(), PgError> {
        self.query(&format!("CREATE DATABASE {}", quote_ident(name)))
            .map(drop)
    }

    /// Runs `DROP DATABASE IF EXISTS name WITH (FORCE)` (from a maintenance database).
    pub fn drop_database(&self, name: &str) -> Result<(), PgError> {
        self.query(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            quote_ident(name)
        ))
        .map(drop)
    }

    /// The revisions in `public.alembic_version` (the same table the dump scan reads, see
    /// [`crate::dump_scan::ALEMBIC_SCHEMA`]), sorted; `None` when there is no such table.
    /// Tables of that name in other schemas are not Alembic's head.
    pub fn alembic_heads(&self) -> Result<Option<Vec<String>>, PgError> {
        let tables = self.query(&format!(
            "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relname = '{}' AND n.nspname = '{}' AND c.relkind IN ('r', 'p')",
            crate::dump_scan::ALEMBIC_TABLE,
            crate::dump_scan::ALEMBIC_SCHEMA
        ))?;
        let tables: Vec<&str> = tables.lines().filter(|l| !l.is_empty()).collect();
        if tables.is_empty() {
            return Ok(None);
        }
        let union = tables
            .iter()
            .map(|t| format!("SELECT version_num::text AS v FROM {t}"))
            .collect::<Vec<_>>()
            .join(" UNION ");
        let out = self.query(&format!(
            "SELECT v FROM ({union}) AS heads WHERE v IS NOT NULL ORDER BY v"
        ))?;
        Ok(Some(
            out.lines()
                .filter(|l| !l.is_empty())
                .map(String::from)
                .collect(),
        ))
    }

    /// `count(*)` of each table, in order; names are qualified and quoted as SQL needs
    /// (as [`crate::manifest::DatabaseFacts::tables`] holds them).
    pub fn row_counts(&self, tables: &[String]) -> Result<Vec<u64>, PgError> {
        if tables.is_empty() {
            return Ok(Vec::new());
        }
        let selects: Vec<String> = tables
            .iter()
            .map(|t| format!("(SELECT count(*) FROM {t})"))
            .collect();
        let out = self.query(&format!("SELECT {}", selects.join(", ")))?;
        out.trim()
            .split('|')
            .map(|n| {
                n.parse().map_err(|_| PgError::Parse {
                    what: "row counts".into(),
                    output: out.clone(),
                })
            })
            .collect()
    }

    /// Starts `psql` reading a script on its standard input (piped), stopping at the first
    /// error, printing query results unaligned without headers on its (piped) standard
    /// output, its standard error collected. It runs in its own process group, so a Ctrl-C
    /// at the terminal reaches only coffer, which then decides how the transaction ends.
    ///
    /// Without `database.exec` psql is confined with Landlock (see [`crate::sandbox_exec`]):
    /// it can run no other program and write no file, whatever the script makes it do. The
    /// returned [`Confinement`] says whether that happened; a kernel without Landlock is not
    /// an error (the caller tells the operator), any other failure to confine is.
    pub fn spawn_psql_script(&self) -> Result<(RunningProgram, Confinement), PgError> {
        let mut cmd = self.command("psql");
        cmd.args([
            "-X",
            "-q",
            "-t",
            "-A",
            "--no-password",
            "-v",
            "ON_ERROR_STOP=1",
        ]);
        cmd.stdin(Stdio::piped());
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let confinement = if self.exec.is_some() {
            Confinement::ExecPrefix
        } else {
            match ExecConfinement::for_program("psql") {
                Ok(rules) => {
                    let abi = rules.abi();
                    let shell = rules.shell().map(Path::to_path_buf);
                    rules.apply(&mut cmd);
                    Confinement::Landlock { abi, shell }
                }
                Err(ConfineError::Unavailable(e)) => Confinement::Unavailable(e.to_string()),
                Err(ConfineError::NotFound(program)) => {
                    return Err(PgError::Spawn {
                        program,
                        source: std::io::ErrorKind::NotFound.into(),
                    });
                }
                Err(e) => {
                    return Err(PgError::Unsupported(format!(
                        "cannot confine the psql that replays the dump: {e}"
                    )));
                }
            }
        };
        Ok((RunningProgram::spawn(cmd, "psql", true)?, confinement))
    }
}

/// A client session connected to a database.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Session {
    /// Backend process id.
    pub pid: u32,
    /// Role name.
    pub user: String,
    /// `application_name`.
    pub application: String,
    /// Client address, or `local socket`.
    pub client: String,
    /// `active`, `idle`, `idle in transaction`, …
    pub state: String,
}

impl std::fmt::Display for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "pid {} user {} from {}",
            self.pid, self.user, self.client
        )?;
        if !self.application.is_empty() {
            write!(f, " ({})", self.application)?;
        }
        if !self.state.is_empty() {
            write!(f, ", {}", self.state)?;
        }
        Ok(())
    }
}

/// `text` as an SQL string literal.
pub fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// `name` as a quoted SQL identifier.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

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

/// A child program whose standard error is collected (its last lines) in the background.
pub struct RunningProgram {
    /// The child process.
    pub child: Child,
    name: String,
    stderr_tail: Arc<Mutex<VecDeque<String>>>,
    stderr_thread: Option<JoinHandle<()>>,
}

impl RunningProgram {
    /// Spawns `cmd` with stderr captured and, if `pipe_stdout`, stdout piped.
    pub fn spawn(mut cmd: Command, name: &str, pipe_stdout: bool) -> Result<Self, PgError> {
        cmd.stderr(Stdio::piped());
        if pipe_stdout {
            cmd.stdout(Stdio::piped());
        }
        let program = cmd.get_program().to_string_lossy().into_owned();
        let mut child = cmd
            .spawn()
            .map_err(|source| PgError::Spawn { program, source })?;
        let stderr = child.stderr.take();
        let tail = Arc::new(Mutex::new(VecDeque::new()));
        let stderr_thread = stderr.map(|s| spawn_tail_collector(s, tail.clone()));
        Ok(RunningProgram {
            child,
            name: name.to_string(),
            stderr_tail: tail,
            stderr_thread,
        })
    }

    /// Waits for the program and returns an error carrying its stderr tail unless it exited 0.
    pub fn wait(mut self, hint: &str) -> Result<(), PgError> {
        let status = self.child.wait().map_err(|source| PgError::Spawn {
            program: self.name.clone(),
            source,
        })?;
        self.check(status, hint)
    }

    /// Kills the program and its process group (when a later stage failed) and reaps it.
    pub fn kill(mut self) {
        kill_group(self.child.id());
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(t) = self.stderr_thread.take() {
            let _ = t.join();
        }
    }

    fn check(&mut self, status: ExitStatus, hint: &str) -> Result<(), PgError> {
        if let Some(t) = self.stderr_thread.take() {
            let _ = t.join();
        }
        if status.success() {
            return Ok(());
        }
        let tail = self
            .stderr_tail
            .lock()
            .map(|t| t.iter().cloned().collect::<Vec<_>>().join("\n"))
            .unwrap_or_default();
        Err(PgError::Failed {
            what: self.name.clone(),
            status: describe_status(status),
            hint: hint.to_string(),
            stderr: tail,
        })
    }

    /// The last lines the program wrote to standard error so far.
    pub fn stderr_tail(&self) -> String {
        self.stderr_tail
            .lock()
            .map(|t| t.iter().cloned().collect::<Vec<_>>().join("\n"))
            .unwrap_or_default()
    }
}

/// Sends SIGTERM to the process group led by `pid` (see [`Database::spawn_pg_dump`]).
pub fn kill_group(pid: u32) {
    if let Some(pid) = rustix::process::Pid::from_raw(pid as i32) {
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::TERM);
    }
}

/// Describes an exit status in words: `exit code 1`, `killed by signal 9`.
pub fn describe_status(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        _ => status.to_string(),
    }
}

const STDERR_TAIL_LINES: usize = 20;

fn spawn_tail_collector(stderr: ChildStderr, tail: Arc<Mutex<VecDeque<String>>>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        // Bounded: a chatty program cannot grow our memory.
        let reader = BufReader::new(stderr.take(16 * 1024 * 1024));
        for line in reader.split(b'\n').map_while(Result::ok) {
            let line = String::from_utf8_lossy(&line)
                .chars()
                .take(500)
                .collect::<String>();
            if let Ok(mut t) = tail.lock() {
                if t.len() == STDERR_TAIL_LINES {
                    t.pop_front();
                }
                t.push_back(line);
            }
        }
    })
}

fn output(mut cmd: Command, program: &str) -> Result<std::process::Output, PgError> {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.output().map_err(|source| PgError::Spawn {
        program: program.to_string(),
        source,
    })
}

/// The last `n` lines of `text`.
pub fn tail_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.trim_end().lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_becomes_environment_not_arguments() {
        let p = ConnectionParams::from_url(
            "postgres://app%40x:s3cr%2Ft@db.example:5433/portal?sslmode=require",
        )
        .unwrap();
        let get = |k: &str| p.env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("PGHOST"), Some("db.example"));
        assert_eq!(get("PGPORT"), Some("5433"));
        assert_eq!(get("PGUSER"), Some("app@x"));
        assert_eq!(get("PGPASSWORD"), Some("s3cr/t"));
        assert_eq!(get("PGDATABASE"), Some("portal"));
        assert_eq!(get("PGSSLMODE"), Some("require"));

        let db = Database::from_config(&DatabaseConfig {
            url: Some("postgres://u:hunter2@h/db".into()),
            ..Default::default()
        })
        .unwrap();
        let cmd = db.command("pg_dump");
        let argv: Vec<String> = cmd.get_args().map(|a| a.to_string_lossy().into()).collect();
        assert!(!argv.join(" ").contains("hunter2"), "{argv:?}");
    }

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
            ("postgres://h?bogus=1", "postgres://h/…"),
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

    #[test]
    fn exec_mode_refuses_passwords_and_passes_settings_as_arguments() {
        let cfg = DatabaseConfig {
            url: Some("postgres://u:pw@h/db".into()),
            exec: Some(vec!["docker".into(), "exec".into(), "pg".into()]),
            ..Default::default()
        };
        assert!(Database::from_config(&cfg).is_err());
        let cfg = DatabaseConfig {
            exec: Some(vec!["docker".into(), "exec".into(), "pg".into()]),
            name: Some("portal".into()),
            user: Some("postgres".into()),
            ..Default::default()
        };
        let cmd = Database::from_config(&cfg).unwrap().command("pg_dump");
        assert_eq!(cmd.get_program(), "docker");
        let argv: Vec<String> = cmd.get_args().map(|a| a.to_string_lossy().into()).collect();
        assert_eq!(
            argv,
            [
                "exec",
                "pg",
                "pg_dump",
                "--username=postgres",
                "--dbname=portal"
            ]
        );
    }

    #[test]
    fn quoting() {
        assert_eq!(quote_literal("o'brien"), "'o''brien'");
        assert_eq!(quote_ident("My \"Db\""), "\"My \"\"Db\"\"\"");
    }

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
