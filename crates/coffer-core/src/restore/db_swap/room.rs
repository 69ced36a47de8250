//! Whether the database server has room for a second copy of the target.

use super::*;

/// Free space for one more copy of `target`, best effort: its size (or `needed_hint`, the
/// dump's uncompressed size, when larger) against the free space of the filesystem holding
/// the server's data directory (or the target's tablespace), when that directory is on
/// this host and readable. `Ok(None)`: there is room; `Ok(Some(note))`: it cannot be
/// checked, and why; `Err`: there is not enough.
pub(crate) fn check_room(
    admin: &Database,
    target: &str,
    needed_hint: u64,
) -> Result<Option<String>, RestoreError> {
    let sql = format!(
        "SELECT json_build_object('dir', current_setting('data_directory'), \
         'started', floor(extract(epoch FROM pg_postmaster_start_time()))::int8, \
         'size', (SELECT pg_database_size(oid) FROM pg_database WHERE datname = {t}), \
         'space', (SELECT pg_tablespace_location(dattablespace) FROM pg_database WHERE datname = {t}))",
        t = quote_literal(target)
    );
    let facts = match admin.query(&sql) {
        Ok(out) => match serde_json::from_str::<serde_json::Value>(out.trim()) {
            Ok(v) => v,
            Err(e) => {
                return Ok(Some(format!(
                    "cannot check the database server's free space: {e}"
                )));
            }
        },
        Err(e) => {
            return Ok(Some(format!(
                "cannot check the database server's free space (reading its data directory needs a superuser or pg_read_all_settings): {}",
                first_line(&e)
            )));
        }
    };
    let dir = facts["dir"].as_str().unwrap_or_default();
    let started = facts["started"].as_i64().unwrap_or_default();
    let needed = facts["size"].as_u64().unwrap_or(0).max(needed_hint);
    let pid_file = Path::new(dir).join("postmaster.pid");
    let local = match crate::util::fsutil::read_bounded(&pid_file, 4096) {
        Ok(bytes) => is_that_server(&String::from_utf8_lossy(&bytes), dir, started),
        Err(e) => {
            return Ok(Some(format!(
                "cannot check the database server's free space: its data directory {dir} is not readable on this host ({e})"
            )));
        }
    };
    if !local {
        return Ok(Some(format!(
            "cannot check the database server's free space: {dir} on this host belongs to another server"
        )));
    }
    let space = facts["space"]
        .as_str()
        .filter(|s| !s.is_empty())
        .unwrap_or(dir);
    let stat = match rustix::fs::statvfs(space) {
        Ok(st) => st,
        Err(e) => {
            return Ok(Some(format!("cannot check the free space in {space}: {e}")));
        }
    };
    let available = stat.f_bavail.saturating_mul(stat.f_frsize);
    if available < needed {
        return Err(refused(format!(
            "not enough free space for a second copy of database {target}: {} free in {space}, about {} needed (the restore builds the new database beside the current one until the swap); free space there, or restore in one session, which needs no second copy",
            units::bytes(available),
            units::bytes(needed)
        )));
    }
    Ok(None)
}

/// Whether `postmaster.pid` (its text) is that of the server whose data directory is `dir`
/// and that started at `started` (seconds since the epoch, give or take two): a directory of that name on
/// this host may belong to another server (a container's path). Pure.
pub(super) fn is_that_server(pid_file: &str, dir: &str, started: i64) -> bool {
    let mut lines = pid_file.lines();
    let _pid = lines.next();
    // The file's stamp and pg_postmaster_start_time() are taken moments apart.
    lines.next() == Some(dir)
        && lines
            .next()
            .and_then(|s| s.trim().parse::<i64>().ok())
            .is_some_and(|t| t.abs_diff(started) <= 2)
}
