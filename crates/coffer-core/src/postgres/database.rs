//! The [`Database`] runner: `pg_dump` and `psql` with the connection settings applied,
//! and the queries coffer asks before and during a restore.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::PgError;
use super::connection::ConnectionParams;
use super::program::{RunningProgram, output, tail_lines};
use super::quote::{quote_ident, quote_literal};
use super::version::{ClientVersion, ServerInfo};
use crate::config::DatabaseConfig;
use crate::postgres::sandbox_exec::{ConfineError, Confinement, ExecConfinement};

/// How to run PostgreSQL client programs against the configured database.
#[derive(Clone, Default)]
pub struct Database {
    exec: Option<Vec<String>>,
    env: Vec<(String, String)>,
    args: Vec<String>,
    /// How long a statement of [`Database::query`] or [`Database::run_script`] may wait for
    /// a lock (PostgreSQL's `lock_timeout`); `None` leaves the server's setting.
    lock_timeout: Option<Duration>,
}

/// The environment's names only: `PGPASSWORD`'s value must not reach a log.
impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let env: Vec<&str> = self.env.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("Database")
            .field("exec", &self.exec)
            .field("env", &env)
            .field("args", &self.args)
            .field("lock_timeout", &self.lock_timeout)
            .finish()
    }
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

    /// The same runner, its queries and scripts waiting at most `limit` for any one lock
    /// (`None`: as long as the server's `lock_timeout` says). Set through `-c` and the
    /// script itself, so it holds with an exec prefix too, where no environment passes.
    pub fn with_lock_timeout(&self, limit: Option<Duration>) -> Database {
        let mut db = self.clone();
        db.lock_timeout = limit;
        db
    }

    /// `SET lock_timeout …` for this runner's statements, when it has a limit.
    fn lock_timeout_statement(&self) -> Option<String> {
        self.lock_timeout
            .map(|t| format!("SET lock_timeout = '{}ms'", t.as_millis().max(1)))
    }

    /// The database name this runner connects to, when the configuration says it
    /// (`database.name`, the URL's path or `dbname`); `None` leaves it to libpq's default.
    pub fn configured_dbname(&self) -> Option<String> {
        let from_args = self
            .args
            .iter()
            .rev()
            .find_map(|a| a.strip_prefix("--dbname="));
        let from_env = || {
            self.env
                .iter()
                .rev()
                .find(|(k, _)| k == "PGDATABASE")
                .map(|(_, v)| v.as_str())
        };
        from_args
            .or_else(from_env)
            .filter(|n| !n.is_empty())
            .map(String::from)
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
        cmd.args(["-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1"]);
        if let Some(set) = self.lock_timeout_statement() {
            cmd.args(["-c", &set]);
        }
        cmd.args(["-c", sql]);
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

    /// Whether the server answers `SELECT 1` within `limit`: the connection attempt is
    /// bounded by `PGCONNECT_TIMEOUT` (unless the configuration sets it) and the whole run
    /// by killing `psql` (its process group) at the deadline, so a server that accepts the
    /// connection and never answers cannot hold the caller.
    pub fn ping(&self, limit: Duration) -> Result<(), PgError> {
        let mut cmd = self.command("psql");
        if !self.env.iter().any(|(k, _)| k == "PGCONNECT_TIMEOUT") {
            cmd.env("PGCONNECT_TIMEOUT", limit.as_secs().max(2).to_string());
        }
        cmd.args(["-X", "-A", "-t", "-q", "--no-password", "-c", "SELECT 1"]);
        cmd.stdout(Stdio::null());
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let hint = "check that the database is running and the connection settings ([database] url/exec/name/user or PG* variables) are right";
        let mut psql = RunningProgram::spawn(cmd, "psql", false)?;
        let deadline = Instant::now() + limit;
        loop {
            let exited = psql.try_wait().map_err(|source| PgError::Spawn {
                program: "psql".into(),
                source,
            })?;
            if exited.is_some() {
                return psql.wait(hint);
            }
            if Instant::now() >= deadline {
                // Dropping it kills and reaps it.
                return Err(PgError::Failed {
                    what: "psql".into(),
                    status: format!("no answer within {}s", limit.as_secs()),
                    hint: hint.into(),
                    stderr: psql.stderr_tail(),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
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

    /// Starts `pg_dumpall --roles-only` (the cluster's roles and memberships; reading
    /// their password verifiers needs a superuser), its output piped.
    pub fn spawn_pg_dumpall_roles(&self) -> Result<RunningProgram, PgError> {
        let mut cmd = self.command("pg_dumpall");
        cmd.args(["--roles-only", "--no-password"]);
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        RunningProgram::spawn(cmd, "pg_dumpall", true)
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

    /// The roles among `roles` that exist and are privileged, or a member (directly or
    /// through other roles) of one that is: superuser, `CREATEROLE`, `REPLICATION`,
    /// `BYPASSRLS`, or one of the server's own roles (`postgres`, `pg_execute_server_program`,
    /// `pg_read_server_files`, `pg_read_all_data`, …: every role the server created at
    /// `initdb`). Membership in any of them gives its powers, so a restore never grants one.
    pub fn privileged_roles(&self, roles: &[String]) -> Result<Vec<String>, PgError> {
        if roles.is_empty() {
            return Ok(Vec::new());
        }
        let list = roles.iter().map(|r| quote_literal(r)).collect::<Vec<_>>();
        // 16384 is FirstNormalObjectId: every role below it was made by initdb.
        // pg_database_owner's membership is implicit (the current database's owner).
        let privileged = |r: &str| {
            format!(
                "(({r}.rolsuper OR {r}.rolcreaterole OR {r}.rolreplication OR {r}.rolbypassrls \
                 OR {r}.oid < 16384) AND {r}.rolname <> 'pg_database_owner')"
            )
        };
        // Ordinals, not names, come back: a name cannot be mistaken for another in the output.
        let out = self.query(&format!(
            "SELECT t.i FROM unnest(ARRAY[{}]::text[]) WITH ORDINALITY AS t(name, i) \
             JOIN pg_roles r ON r.rolname = t.name \
             WHERE {} OR EXISTS (SELECT 1 FROM pg_roles p WHERE p.oid <> r.oid AND {} \
             AND pg_has_role(r.oid, p.oid, 'MEMBER')) ORDER BY t.i",
            list.join(","),
            privileged("r"),
            privileged("p")
        ))?;
        out.lines()
            .filter(|l| !l.is_empty())
            .map(|l| {
                l.trim()
                    .parse::<usize>()
                    .ok()
                    .and_then(|i| roles.get(i.wrapping_sub(1)))
                    .cloned()
                    .ok_or_else(|| PgError::Parse {
                        what: "psql role query".into(),
                        output: out.clone(),
                    })
            })
            .collect()
    }

    /// Other client sessions connected to this database (not this one).
    pub fn other_sessions(&self) -> Result<Vec<Session>, PgError> {
        self.sessions_where("datname = current_database()")
    }

    /// The client sessions (not this one) of `pg_stat_activity` rows matching `condition`.
    pub(super) fn sessions_where(&self, condition: &str) -> Result<Vec<Session>, PgError> {
        let out = self.query(&format!(
            "SELECT pid, coalesce(usename, ''), coalesce(application_name, ''), \
             coalesce(client_addr::text, 'local socket'), coalesce(state, '') \
             FROM pg_stat_activity WHERE {condition} \
             AND pid <> pg_backend_pid() AND backend_type = 'client backend' ORDER BY pid"
        ))?;
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

    /// Whether the role this runner logs in as may run `CREATE DATABASE` (superuser or
    /// `CREATEDB`).
    pub fn may_create_databases(&self) -> Result<bool, PgError> {
        let out = self
            .query("SELECT rolsuper OR rolcreatedb FROM pg_roles WHERE rolname = current_user")?;
        Ok(out.trim() == "t")
    }

    /// Whether the role this runner logs in as may create roles (superuser or `CREATEROLE`).
    pub fn may_create_roles(&self) -> Result<bool, PgError> {
        let out = self
            .query("SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user")?;
        Ok(out.trim() == "t")
    }

    /// Runs `sql` (statements coffer wrote) in one transaction, given on psql's standard
    /// input so nothing of it (a password verifier) shows in the process list, with terse
    /// errors so none is echoed back either.
    pub fn run_script(&self, sql: &str) -> Result<(), PgError> {
        use std::io::Write;
        let mut cmd = self.command("psql");
        cmd.args([
            "-X",
            "-q",
            "-1",
            "--no-password",
            "-v",
            "ON_ERROR_STOP=1",
            "-v",
            "VERBOSITY=terse",
        ]);
        cmd.stdin(Stdio::piped()).stdout(Stdio::null());
        let mut psql = RunningProgram::spawn(cmd, "psql", false)?;
        let written = psql.child.stdin.take().map(|mut stdin| {
            if let Some(set) = self.lock_timeout_statement() {
                stdin.write_all(format!("{set};\n").as_bytes())?;
            }
            stdin.write_all(sql.as_bytes())
        });
        psql.wait("nothing of it was committed; check the error above")?;
        match written {
            Some(Err(e)) => Err(PgError::Unsupported(format!(
                "psql stopped reading its input: {e}"
            ))),
            _ => Ok(()),
        }
    }

    /// Drops the roles `names` (which a restore created, empty), in one transaction.
    pub fn drop_roles(&self, names: &[String]) -> Result<(), PgError> {
        if names.is_empty() {
            return Ok(());
        }
        let list: Vec<String> = names.iter().map(|n| quote_ident(n)).collect();
        self.run_script(&format!("DROP ROLE IF EXISTS {};\n", list.join(", ")))
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
    /// [`crate::stream::dump_scan::ALEMBIC_SCHEMA`]), sorted; `None` when there is no such table.
    /// Tables of that name in other schemas are not Alembic's head.
    pub fn alembic_heads(&self) -> Result<Option<Vec<String>>, PgError> {
        let tables = self.query(&format!(
            "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relname = '{}' AND n.nspname = '{}' AND c.relkind IN ('r', 'p')",
            crate::stream::dump_scan::ALEMBIC_TABLE,
            crate::stream::dump_scan::ALEMBIC_SCHEMA
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
    /// (as [`crate::format::manifest::DatabaseFacts::tables`] holds them).
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
    /// Without `database.exec` psql is confined with Landlock (see [`crate::postgres::sandbox_exec`]):
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
        let shown = format!("{db:?}");
        assert!(
            shown.contains("PGPASSWORD") && !shown.contains("hunter2"),
            "{shown}"
        );
    }

    #[test]
    fn configured_dbname_comes_from_name_url_or_nothing() {
        let db = |url: Option<&str>, name: Option<&str>, exec: bool| {
            Database::from_config(&DatabaseConfig {
                url: url.map(String::from),
                name: name.map(String::from),
                exec: exec.then(|| vec!["docker".into()]),
                ..Default::default()
            })
            .unwrap()
            .configured_dbname()
        };
        assert_eq!(
            db(Some("postgres://h/portal"), None, false),
            Some("portal".into())
        );
        assert_eq!(
            db(Some("postgres://h/portal"), Some("other"), false),
            Some("other".into())
        );
        assert_eq!(
            db(Some("postgres://h/portal"), None, true),
            Some("portal".into())
        );
        assert_eq!(db(None, Some("portal"), true), Some("portal".into()));
        assert_eq!(db(Some("postgres://h"), None, false), None);
        assert_eq!(db(None, None, false), None);
        let aimed = Database::default().with_dbname("postgres");
        assert_eq!(aimed.configured_dbname(), Some("postgres".into()));
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
    fn dbname_is_the_argument_else_the_url_s_database() {
        let from_url = Database::from_config(&DatabaseConfig {
            url: Some("postgresql://u@h:5432/portal".into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(from_url.configured_dbname().as_deref(), Some("portal"));
        assert_eq!(
            from_url.with_dbname("other").configured_dbname().as_deref(),
            Some("other")
        );
        assert_eq!(Database::default().configured_dbname(), None);
    }
}
