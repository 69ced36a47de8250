//! How many sessions a restore uses: a pure decision over what pre-flight found, and the
//! pre-flight step that gathers it.

use crate::postgres::Database;

use crate::hint::Problems;

use super::super::db_swap::check_room;
use super::super::{DatabaseTarget, RestoreError};
use super::pieces_of;

/// What decides the number of sessions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct JobFacts {
    /// Sessions asked for (0 and 1: one transaction).
    pub requested: usize,
    /// Data pieces in the dump's index (0: no usable index).
    pub data_pieces: usize,
    /// The role may create databases (`None`: could not be asked).
    pub may_create: Option<bool>,
    /// `<target>__coffer_old` fits PostgreSQL's 63-byte names.
    pub name_fits: bool,
    /// Connections the server still accepts from this role (`None`: unknown).
    pub headroom: Option<usize>,
    /// The pre-data piece (the schema) is at most [`PRE_DATA_CAP`]: it is kept in memory
    /// for the settings it leaves in effect.
    pub schema_fits: bool,
}

/// Largest schema (pre-data piece, bytes of SQL) a parallel restore keeps in memory.
pub(crate) const PRE_DATA_CAP: u64 = 64 << 20;

/// Connections kept free for coffer's own checks and for the administrator.
const SPARE_CONNECTIONS: usize = 3;

/// The sessions to use, and why fewer than requested (`None` when as requested or when
/// one was requested).
pub(crate) fn decide_jobs(f: &JobFacts) -> (usize, Option<String>) {
    if f.requested <= 1 {
        return (1, None);
    }
    let single = |why: &str| (1, Some(format!("restored in one transaction: {why}")));
    if f.data_pieces < 2 {
        return single(
            "the dump has no piece index with two data pieces or more (small, or made by an older coffer)",
        );
    }
    match f.may_create {
        Some(true) => {}
        Some(false) => {
            return single(
                "the role coffer connects as may not create databases (several sessions restore into a new database)",
            );
        }
        None => return single("cannot tell whether the role may create databases"),
    }
    if !f.schema_fits {
        return single("the dump's schema part is larger than 64 MiB");
    }
    if !f.name_fits {
        return single("the database's name is too long for the temporary names a swap needs");
    }
    let mut jobs = f.requested.min(f.data_pieces);
    let mut why =
        (jobs < f.requested).then(|| format!("the dump has {} data pieces", f.data_pieces));
    if let Some(free) = f.headroom {
        let usable = free.saturating_sub(SPARE_CONNECTIONS);
        if usable < jobs {
            jobs = usable;
            why = Some(format!("the server accepts only {free} more connections"));
        }
    }
    if jobs < 2 {
        return single(why.as_deref().unwrap_or("too few sessions"));
    }
    (
        jobs,
        why.map(|w| format!("{jobs} sessions instead of {}: {w}", f.requested)),
    )
}

/// Decides the sessions for `target` (pre-flight): asks the server what [`decide_jobs`]
/// needs, puts the outcome into `checks` / `notes`, and with more than one session checks
/// the room for the new database beside the target (a lack of it goes into `problems`).
pub(crate) fn plan_jobs(
    requested: usize,
    target: &DatabaseTarget,
    server: &Database,
    (checks, notes): (&mut Vec<String>, &mut Vec<String>),
    problems: &mut Problems,
) -> usize {
    let jobs = sessions_for(requested, target, server, checks, notes);
    if jobs > 1 {
        // The new database is a second copy beside the target until the swap.
        let needed = target
            .source
            .expected
            .as_ref()
            .map_or(0, |a| a.uncompressed_size);
        match check_room(&server.with_dbname("postgres"), &target.name, needed) {
            Ok(Some(note)) => notes.push(note),
            Ok(None) => {}
            Err(RestoreError::Refused { problems: p, .. }) => {
                p.into_iter().for_each(|x| problems.push(x))
            }
            Err(e) => problems.push(e.to_string()),
        }
    }
    jobs
}

/// The sessions [`decide_jobs`] gives, with what it needs asked of the server.
fn sessions_for(
    requested: usize,
    target: &DatabaseTarget,
    server: &Database,
    checks: &mut Vec<String>,
    notes: &mut Vec<String>,
) -> usize {
    if requested <= 1 {
        return 1;
    }
    let maintenance = server.with_dbname("postgres");
    let data_pieces = pieces_of(target.source.expected.as_ref()).map_or(0, |p| {
        p.iter()
            .filter(|p| p.kind == crate::format::pieces::PieceKind::Data)
            .count()
    });
    let facts = JobFacts {
        requested,
        data_pieces,
        may_create: maintenance.may_create_databases().ok(),
        name_fits: format!("{}__coffer_old", target.name).len() <= 63,
        headroom: connection_headroom(&maintenance),
        schema_fits: pieces_of(target.source.expected.as_ref())
            .and_then(|p| p.first())
            .is_some_and(|p| p.uncompressed_size <= PRE_DATA_CAP),
    };
    let (jobs, why) = decide_jobs(&facts);
    match (jobs, why) {
        (1, Some(why)) => notes.push(why),
        (1, None) => {}
        (n, why) => {
            checks.push(format!(
                "database restored by {n} sessions into {}__coffer_new, then swapped into place",
                target.name
            ));
            if let Some(w) = why {
                notes.push(w);
            }
            notes.push(format!(
                "the database {} is replaced as a whole: objects that are not in the backup go with the previous database, which is dropped after the swap unless it is kept",
                target.name
            ));
        }
    }
    jobs
}

/// Connections the server still accepts for an ordinary role.
fn connection_headroom(db: &Database) -> Option<usize> {
    let out = db
        .query(
            "SELECT current_setting('max_connections')::int \
             - current_setting('superuser_reserved_connections')::int \
             - (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')",
        )
        .ok()?;
    out.trim().parse::<i64>().ok().map(|n| n.max(0) as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> JobFacts {
        JobFacts {
            requested: 4,
            data_pieces: 10,
            may_create: Some(true),
            name_fits: true,
            headroom: Some(100),
            schema_fits: true,
        }
    }

    #[test]
    fn sessions_as_asked_or_fewer_with_the_reason() {
        let cases: Vec<(JobFacts, usize, Option<&str>)> = vec![
            (facts(), 4, None),
            (
                JobFacts {
                    requested: 1,
                    ..facts()
                },
                1,
                None,
            ),
            (
                JobFacts {
                    requested: 0,
                    ..facts()
                },
                1,
                None,
            ),
            (
                JobFacts {
                    data_pieces: 3,
                    ..facts()
                },
                3,
                Some("3 sessions instead of 4: the dump has 3 data pieces"),
            ),
            (
                JobFacts {
                    data_pieces: 1,
                    ..facts()
                },
                1,
                Some("restored in one transaction: the dump has no piece index"),
            ),
            (
                JobFacts {
                    data_pieces: 0,
                    ..facts()
                },
                1,
                Some("restored in one transaction: the dump has no piece index"),
            ),
            (
                JobFacts {
                    may_create: Some(false),
                    ..facts()
                },
                1,
                Some("restored in one transaction: the role coffer connects as may not create"),
            ),
            (
                JobFacts {
                    may_create: None,
                    ..facts()
                },
                1,
                Some("restored in one transaction: cannot tell"),
            ),
            (
                JobFacts {
                    name_fits: false,
                    ..facts()
                },
                1,
                Some("restored in one transaction: the database's name is too long"),
            ),
            (
                JobFacts {
                    headroom: Some(5),
                    ..facts()
                },
                2,
                Some("2 sessions instead of 4: the server accepts only 5 more connections"),
            ),
            (
                JobFacts {
                    headroom: Some(4),
                    ..facts()
                },
                1,
                Some("restored in one transaction: the server accepts only 4 more"),
            ),
            (
                JobFacts {
                    headroom: None,
                    ..facts()
                },
                4,
                None,
            ),
            (
                JobFacts {
                    schema_fits: false,
                    ..facts()
                },
                1,
                Some("restored in one transaction: the dump's schema part"),
            ),
        ];
        for (f, jobs, why) in cases {
            let (got, reason) = decide_jobs(&f);
            assert_eq!(got, jobs, "{f:?}");
            match why {
                None => assert_eq!(reason, None, "{f:?}"),
                Some(w) => assert!(
                    reason.as_deref().is_some_and(|r| r.starts_with(w)),
                    "{f:?}: {reason:?}"
                ),
            }
        }
    }
}
