//! Splitting a dump's post-data part (everything after its last `COPY` block: sequence
//! values, large objects, indexes, constraints, triggers, foreign keys, ACLs, the trailer)
//! into index builds that may run in parallel sessions and the rest, which runs after them
//! in the dump's order. A pure decision over bytes: no I/O.
//!
//! The trick is pgcopydb's: a simple `PRIMARY KEY` or `UNIQUE` constraint is an index plus
//! a catalog entry, so its index is built on its own (`CREATE UNIQUE INDEX`, in parallel
//! with the others) and the constraint then takes it over (`ADD CONSTRAINT … USING INDEX`,
//! a catalog change). Foreign keys, which need those constraints, stay in the rest.
//!
//! Statements are cut where the dump scanner's lexical state ends them (never by what a
//! line looks like), so a name or a function body holding `;`, quotes, newlines or
//! `USING` cannot move a cut. Only the exact forms pg_dump writes are moved or rewritten
//! (see `forms.rs`); everything else stays in the rest, byte for byte, in order.
//!
//! How a restore uses the plan: run every [`IndexBuild::sql`] (in any order, each in a
//! session of its own) once its table is loaded, and when all have succeeded, run
//! [`PostDataPlan::rest`] in one session. Every one of these sessions must first get the
//! settings the pre-data left ([`settings_in_effect`] of the pre-data part): pg_dump writes
//! `SET default_tablespace` only when it changes, so the post-data's first statements may
//! rely on the pre-data's last one.

mod forms;
#[cfg(test)]
mod round_trip;
#[cfg(test)]
mod tests;

use std::collections::HashMap;

use crate::stream::dump_scan::{DumpScanner, Mark};
use forms::{Setting, leading_blanks_and_comments};

/// The post-data part split into parallel index builds and the ordered rest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PostDataPlan {
    /// Statements that may run in parallel, in any order, each alone in a session that has
    /// the dump's session settings: `CREATE [UNIQUE] INDEX … ON <table> …;` (not `ON ONLY`,
    /// which stays in order), and the unique index behind a simple `PRIMARY KEY` / `UNIQUE`
    /// constraint. In the dump's order.
    pub indexes: Vec<IndexBuild>,
    /// Everything else, in the dump's order, as one SQL text: each constraint whose index was
    /// moved into `indexes` rewritten as `ALTER TABLE ONLY t ADD CONSTRAINT c PRIMARY KEY
    /// USING INDEX c;` (`UNIQUE` likewise), and every `SET` statement kept in place. The
    /// comments before a moved statement are dropped; all else is the input's bytes.
    pub rest: Vec<u8>,
}

/// One index to build in a session of its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IndexBuild {
    /// The table, quoted as the dump wrote it (e.g. `public.t`).
    pub table: String,
    /// The index name as written (quoted when the dump quoted it).
    pub name: String,
    /// The statements to run: the settings in effect at that point of the post-data (`SET
    /// default_tablespace = '';`, …, see [`settings_in_effect`]), one per line, then the
    /// index statement.
    pub sql: Vec<u8>,
    /// Bytes of the dump's own statement (the index, or the constraint it came from).
    pub bytes: u64,
}

/// Splits `sql`, the post-data part of a plain dump after the gate
/// ([`DumpScanner::feed_filtered`]), into index builds and the rest (see the module docs).
///
/// `rewrite(table)` (the table as written, e.g. `public."My T"`): whether `table` is a table
/// or materialized view of the new database that is not partitioned (`relkind` `r` or `m`).
/// Indexes and constraints of any other relation (a partitioned table, whose index would
/// recurse into its partitions; a name the database does not know, e.g. one the post-data
/// itself creates) stay in the rest, in order. It is asked once per table.
///
/// Errors (the text says why) when the scanner refuses the text, or it holds a `COPY`
/// block (then it is not a post-data part).
pub(crate) fn plan_post_data(
    sql: &[u8],
    rewrite: &dyn Fn(&str) -> bool,
) -> Result<PostDataPlan, String> {
    let mut plan = PostDataPlan {
        indexes: Vec::new(),
        rest: Vec::with_capacity(sql.len()),
    };
    let mut settings = Settings::default();
    let mut answers = HashMap::new();
    let mut may_move = |table: &[u8]| movable(table, rewrite, &mut answers);
    let mut from = 0;
    for end in statement_ends(sql, false)? {
        let segment = &sql[from..end];
        from = end;
        let lead = leading_blanks_and_comments(segment);
        let stmt = &segment[lead..];
        if let Some(change) = forms::setting(stmt) {
            settings.change(change, stmt);
        } else if let Some((table, name)) = forms::index_build(stmt)
            && let Some(table) = may_move(table)
        {
            plan.indexes.push(IndexBuild {
                table,
                name: text(name),
                sql: settings.then(stmt),
                bytes: stmt.len() as u64,
            });
            continue;
        } else if let Some(constraint) = forms::unique_constraint(stmt)
            && let Some(table) = may_move(constraint.table)
        {
            plan.indexes.push(IndexBuild {
                table,
                name: text(constraint.name),
                sql: settings.then(&constraint.index_statement()),
                bytes: stmt.len() as u64,
            });
            plan.rest.extend_from_slice(&segment[..lead]);
            plan.rest
                .extend_from_slice(&constraint.using_index_statement());
            continue;
        }
        plan.rest.extend_from_slice(segment);
    }
    plan.rest.extend_from_slice(&sql[from..]);
    Ok(plan)
}

/// The settings a session must have to run a statement that follows `sql` (a dump's
/// pre-data part, say) as if it ran in the same session: its `SET`/`RESET` statements and
/// pg_dump's `SELECT pg_catalog.set_config(…)` ones, the last of each parameter, in the
/// order they last changed, one per line. `sql` may hold COPY blocks.
#[cfg(test)]
pub(crate) fn settings_in_effect(sql: &[u8]) -> Result<Vec<u8>, String> {
    let mut settings = Settings::default();
    let mut from = 0;
    for end in statement_ends(sql, true)? {
        let segment = &sql[from..end];
        from = end;
        let stmt = &segment[leading_blanks_and_comments(segment)..];
        if let Some(change) = forms::setting(stmt) {
            settings.change(change, stmt);
        }
    }
    Ok(settings.then(b""))
}

/// Offsets right after each top-level statement's `;`, as the scanner reads the text, and
/// with `copy_blocks`, right after each COPY block (which is an error without it).
fn statement_ends(sql: &[u8], copy_blocks: bool) -> Result<Vec<usize>, String> {
    let mut scanner = DumpScanner::with_marks();
    scanner.feed(sql);
    let marks = scanner.take_marks();
    if let Some(problem) = scanner.finish().problem {
        return Err(problem);
    }
    marks
        .into_iter()
        .filter(|mark| !(copy_blocks && matches!(mark, Mark::CopyStart { .. })))
        .map(|mark| match mark {
            Mark::Statement { end } => Ok(end as usize),
            Mark::CopyEnd { at, .. } if copy_blocks => Ok(at as usize),
            _ => Err(
                "the text holds a COPY block: it is not the post-data part of a dump (which follows the last COPY block)"
                    .to_string(),
            ),
        })
        .collect()
}

/// The table as text, when its index may be built on its own (`answers`: what `rewrite`
/// said so far).
fn movable(
    table: &[u8],
    rewrite: &dyn Fn(&str) -> bool,
    answers: &mut HashMap<String, bool>,
) -> Option<String> {
    // Names come from the dump: a byte sequence that is not UTF-8 is left alone rather
    // than asked about under another spelling.
    let table = std::str::from_utf8(table).ok()?;
    let yes = *answers
        .entry(table.to_string())
        .or_insert_with(|| rewrite(table));
    yes.then(|| table.to_string())
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The setting statements seen so far: the last one of each parameter, in the order they
/// last changed.
#[derive(Debug, Default)]
struct Settings {
    statements: Vec<(Setting, Vec<u8>)>,
}

impl Settings {
    fn change(&mut self, change: Setting, stmt: &[u8]) {
        match &change {
            Setting::All => self.statements.clear(),
            Setting::One(name) => self
                .statements
                .retain(|(s, _)| !matches!(s, Setting::One(n) if n == name)),
        }
        self.statements.push((change, stmt.to_vec()));
    }

    /// The settings, one per line, then `stmt` (when not empty) on its own line.
    fn then(&self, stmt: &[u8]) -> Vec<u8> {
        let mut sql = Vec::new();
        for (_, s) in &self.statements {
            sql.extend_from_slice(s);
            sql.push(b'\n');
        }
        if !stmt.is_empty() {
            sql.extend_from_slice(stmt);
            sql.push(b'\n');
        }
        sql
    }
}
