//! Where the database is, and running `pg_dump` and `psql` against it.
//!
//! Two ways to reach the database:
//! - **direct**: `database.url` or the libpq `PG*` environment. The URL's parts are handed to
//!   the child as `PG*` variables, never as arguments, so the password is not in the process
//!   list, logs or errors.
//! - **exec**: `database.exec` is an argv prefix (`docker compose exec -T postgres`) under
//!   which `pg_dump` and `psql` run, for stacks whose PostgreSQL has no published port.
//!
//! Modules: `connection` parses and redacts `database.url` (a leaf, so [`crate::config`] can
//! validate URLs without depending on the rest); `database` is the [`Database`] runner and
//! its queries; `database_like` reads what a plain dump does not carry of a database
//! ([`DatabaseProfile`]) and creates a new database like it; `program` wraps a running child process; `version` reads server and client
//! versions; `quote` quotes SQL literals and identifiers; `sandbox_exec` confines the psql
//! that replays a dump; `psql_watch` reads its errors; `alembic` compares heads; `roles`
//! reads `pg_dumpall --roles-only` output strictly and regenerates the statements a restore
//! runs.

pub mod alembic;
pub(crate) mod connection;
mod database;
mod database_like;
mod program;
pub(crate) mod psql_watch;
mod quote;
pub mod roles;
pub mod sandbox_exec;
mod version;

pub use database::{Database, Session};
pub use database_like::{DatabaseProfile, MAX_NAME_BYTES, check_name};
pub use program::{RunningProgram, describe_status, kill_group};
// Only the sandbox's error text uses it outside this module.
#[cfg(feature = "sandbox")]
pub use program::tail_lines;
pub(crate) use quote::{quote_ident, quote_literal};
pub use version::{ClientVersion, ServerInfo};

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
