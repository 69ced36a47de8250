//! `restore --jobs N`: the dump restored by several sessions into a new database, which is
//! then swapped into place.
//!
//! The piece index (`artifacts[].pieces`, [`crate::format::pieces`]) says where the dump's
//! pre-data, its data pieces and its post-data start in the compressed stream. The new
//! database `<target>__coffer_new` is created like the target ([`DatabaseSwap`]); the
//! pre-data piece runs in one session; the data pieces in N sessions, largest first, each
//! as `BEGIN; COPY …; COMMIT` ([`schedule::data_order`]), with the post-data's index builds
//! among them, each as soon as its table is loaded ([`schedule::LoadQueue`]); then the rest
//! of the post-data in order in one session ([`super::post_data`]). Every session is a
//! psql in restricted mode fed only what the dump gate lets through, each piece read alone
//! ([`DumpScanner::resume`]) and checked against its size and SHA-256; the artifact's
//! stored size and SHA-256 are proven before the first piece is read (from the remote, each
//! piece is fetched with its own ranged reads and the whole object is hashed alongside, see
//! [`whole`]). Nothing touches the target until every piece matched, the whole artifact
//! matched, the merged facts equal the manifest's and every session ended; any failure
//! before the swap drops the new database.

mod load;
mod plan;
mod schedule;
mod sessions;
mod whole;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use serde::Serialize;

use crate::cancel::CancelFlag;
use crate::format::manifest::{Artifact, ArtifactRole};
use crate::format::pieces::{Piece, PieceKind};
use crate::postgres::sandbox_exec::Confinement;
use crate::progress::Progress;
use crate::stream::crypto::Identities;
use crate::stream::dump_scan::DumpFacts;
use crate::util::units;

use super::DatabaseTarget;
use super::database::check_facts;
use super::db_swap::{DatabaseSwap, admin_for};
use super::failure::StreamFailure;
pub(crate) use plan::plan_jobs;
use sessions::Run;
use whole::WholeCheck;

/// Where the time of a parallel restore went, in seconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct PhaseTimings {
    /// Sessions used for the data and the index builds.
    pub jobs: usize,
    /// Creating the new database like the target.
    pub create: f64,
    /// Proving the artifact's stored size and SHA-256 (from the remote: read on its own
    /// thread while the sessions run).
    pub prove: f64,
    /// The pre-data piece (schema), and the post-data piece read and planned.
    pub pre_data: f64,
    /// The data pieces, until the last one committed (index builds of the tables loaded
    /// by then run among them).
    pub data: f64,
    /// The post-data's index builds that went on after the last data piece.
    pub indexes: f64,
    /// The rest of the post-data in order (constraints, triggers, grants, …).
    pub post_data: f64,
    /// The swap of the new database into place (filled in by the commit).
    pub swap: f64,
}

/// A new database with the whole dump applied, waiting to be swapped into place. Dropped
/// without being swapped, the new database is dropped.
pub(super) struct ParallelPending {
    pub(super) swap: DatabaseSwap,
    pub(super) confinement: Confinement,
    pub(super) timings: PhaseTimings,
}

/// Whether a parallel restore can run for this artifact: its piece index, when it has one
/// with more than one data piece and ends with the post-data piece (the trailer and every
/// statement after the data then run last, in order, whatever the index says of the rest).
pub(super) fn pieces_of(artifact: Option<&Artifact>) -> Option<&[Piece]> {
    let pieces = artifact?.pieces.as_deref()?;
    let data = pieces.iter().filter(|p| p.kind == PieceKind::Data).count();
    let post_last = pieces.last().is_some_and(|p| p.kind == PieceKind::PostData);
    (data > 1 && post_last).then_some(pieces)
}

/// Restores the dump into `<target>__coffer_new` with `jobs` sessions and stops before the
/// swap, once the artifact as a whole matched the manifest ([`WholeCheck`]).
#[allow(clippy::too_many_arguments)]
pub(super) fn stream_database_parallel(
    db: &DatabaseTarget,
    jobs: usize,
    identities: Option<&Identities>,
    progress: &dyn Progress,
    cancel: &CancelFlag,
    abort: &Arc<AtomicBool>,
    (backup, root): (&str, &Path),
) -> Result<(ParallelPending, (DumpFacts, u64)), StreamFailure> {
    let artifact = db
        .source
        .expected
        .as_ref()
        .expect("a parallel restore is planned only for an artifact with a piece index");
    let whole = WholeCheck::start(&db.source, artifact, identities, (cancel, abort))?;
    let applied = apply_pieces(
        db,
        artifact,
        jobs,
        identities,
        progress,
        cancel,
        abort,
        (backup, root),
    );
    let ((mut pending, facts), prove_secs) = whole.settle(applied)?;
    pending.timings.prove = prove_secs;
    Ok((pending, facts))
}

/// Creates the new database and applies every piece, each read on its own (from the file
/// or with its own ranged reads from the remote).
#[allow(clippy::too_many_arguments)]
fn apply_pieces(
    db: &DatabaseTarget,
    artifact: &Artifact,
    jobs: usize,
    identities: Option<&Identities>,
    progress: &dyn Progress,
    cancel: &CancelFlag,
    abort: &AtomicBool,
    (backup, root): (&str, &Path),
) -> Result<(ParallelPending, (DumpFacts, u64)), StreamFailure> {
    let pieces = pieces_of(Some(artifact)).expect("planned only with data pieces");
    let mut timings = PhaseTimings {
        jobs,
        ..PhaseTimings::default()
    };
    let t = Instant::now();
    let admin = admin_for(&db.runner, &db.name);
    let swap = DatabaseSwap::begin(&admin, &db.name, false, root, backup).map_err(|e| {
        StreamFailure::Failed {
            what: "database",
            reason: e.to_string(),
        }
    })?;
    timings.create = t.elapsed().as_secs_f64();

    progress.start(ArtifactRole::Database, &db.source.file_name());
    let run = Run {
        path: &db.source.path,
        remote: db.source.remote.as_ref(),
        artifact,
        pieces,
        identities,
        runner: swap.new_runner(),
        progress,
        cancel,
        abort,
        jobs,
    };
    let mut facts: Vec<Option<DumpFacts>> = vec![None; pieces.len()];
    let t = Instant::now();
    let (resume, pre_facts, confinement) = run.pre_data()?;
    facts[0] = Some(pre_facts);
    // The post-data is read and planned before the data, so that each index is built as
    // soon as its table is loaded.
    let last = pieces.len() - 1;
    let post = run.post_data_plan(&resume, last)?;
    timings.pre_data = t.elapsed().as_secs_f64();

    let builds = post.as_ref().map_or(&[][..], |(plan, _)| &plan.indexes[..]);
    let loaded = run.load(&resume, builds)?;
    for (i, f) in loaded.facts {
        facts[i] = Some(f);
    }
    timings.data = loaded.data_secs;
    timings.indexes = loaded.index_secs;

    let t = Instant::now();
    facts[last] = Some(match post {
        Some((plan, post_facts)) => {
            run.post_data_rest(&resume, &plan, last)?;
            post_facts
        }
        None => run.post_data_streamed(&resume, last)?,
    });
    timings.post_data = t.elapsed().as_secs_f64();

    let facts = DumpFacts::merge(facts.into_iter().map(|f| f.unwrap_or_default()).collect());
    check_facts(db, &facts, backup)?;
    let sql_bytes = pieces.iter().map(|p| p.uncompressed_size).sum();
    progress.finish(
        ArtifactRole::Database,
        &format!(
            "{} of SQL applied by {jobs} sessions into {}, waiting to swap",
            units::bytes(sql_bytes),
            swap.new_name()
        ),
    );
    Ok((
        ParallelPending {
            swap,
            confinement,
            timings,
        },
        (facts, sql_bytes),
    ))
}
