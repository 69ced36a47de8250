//! `POST /v1/admin/backup/restore`: upload and restore, against the real binary and the
//! real PostgreSQL cluster.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{Answer, Serve, answer_of, assert_problem, served_case};
use crate::harness::*;

const UPLOAD: &str = "/v1/admin/backup/restore";

/// Hands out `data` at most `chunk` bytes per read: ureq sends it chunked (no
/// `Content-Length`), as a browser streaming a file would arrive in pieces.
struct Chunks {
    data: Vec<u8>,
    at: usize,
    chunk: usize,
}

impl Read for Chunks {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(self.chunk).min(self.data.len() - self.at);
        buf[..n].copy_from_slice(&self.data[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

impl Serve {
    /// Uploads `body` (chunked when `chunk` is given, else with `Content-Length`).
    fn upload(&self, token: &str, confirm: bool, body: Vec<u8>, chunk: Option<usize>) -> Answer {
        let mut req = self
            .agent
            .post(format!("{}{UPLOAD}", self.base))
            .header("Authorization", format!("Bearer {token}"))
            .header("Content-Type", "application/octet-stream");
        if confirm {
            req = req.header("X-Confirm-Restore", "yes");
        }
        let mut resp = match chunk {
            Some(chunk) => {
                let mut reader = Chunks {
                    data: body,
                    at: 0,
                    chunk,
                };
                req.send(ureq::SendBody::from_reader(&mut reader)).unwrap()
            }
            None => req.send(&body[..]).unwrap(),
        };
        let location = resp
            .headers()
            .get("location")
            .map(|v| v.to_str().unwrap().to_string());
        let (status, content_type, json) = answer_of(&mut resp);
        Answer {
            status,
            content_type,
            location,
            json,
        }
    }

    /// Uploads `body` and follows the job to its end.
    fn upload_job(&self, token: &str, body: Vec<u8>, chunk: Option<usize>) -> Value {
        let a = self.upload(token, true, body, chunk);
        assert_eq!(a.status, 202, "{}", a.json);
        assert_eq!(a.json["operation"], "restore", "{}", a.json);
        let id = a.json["id"].as_str().unwrap();
        assert_eq!(a.location, Some(format!("/v1/admin/jobs/{id}")));
        self.outcome(id, token)
    }
}

/// `coffer export` of `backup` into a file beside the case, then the backup removed from
/// the root (an upload of a backup the root holds already is refused as a duplicate).
fn exported(case: &Case, backup: &Path) -> Vec<u8> {
    let name = backup.file_name().unwrap().to_string_lossy().into_owned();
    let file = case.dir.path().join(format!("{name}.tar"));
    assert_success(&case.run(&["export", &name, "--output", file.to_str().unwrap()]));
    std::fs::remove_dir_all(backup).unwrap();
    std::fs::read(&file).unwrap()
}

/// Changes the database and the workspace, so a restore has something to put back.
fn change_state(case: &Case) {
    cluster()
        .psql(
            &case.db,
            "UPDATE users SET display_name = 'changed' WHERE id <= 10",
        )
        .unwrap();
    std::fs::write(case.workspace.join("added-after-backup.txt"), b"new\n").unwrap();
}

/// The database and the archived part of the workspace (no excluded cache, no fifo or
/// socket) are as they were at the backup.
fn assert_restored(case: &Case, at_backup: &Before) {
    assert_eq!(table_fingerprints(&case.db), at_backup.tables);
    assert_eq!(
        archived_part(snapshot(&case.workspace)),
        archived_part(at_backup.workspace.clone())
    );
}

#[test]
fn an_uploaded_bundle_streamed_in_chunks_restores_and_a_damaged_one_changes_nothing() {
    let (case, _, admin, viewer) = served_case("");
    let backup = case.backup_ok(&[]);
    let name = backup.file_name().unwrap().to_string_lossy().into_owned();
    let at_backup = Before::take(&case);
    let bundle = exported(&case, &backup);
    change_state(&case);
    let changed = Before::take(&case);
    let server = Serve::start(&case);

    // The gate and the role, checked before the body is read (so none is sent: a client
    // still sending would see the connection closed under it).
    let a = server.upload(&admin, false, Vec::new(), None);
    assert_problem(
        a.status,
        &a.content_type,
        &a.json,
        412,
        "urn:trustedoss:problem:restore_confirmation_required",
    );
    assert_eq!(a.json["title"], "Restore confirmation header missing");
    let a = server.upload(&viewer, true, Vec::new(), None);
    assert_problem(
        a.status,
        &a.content_type,
        &a.json,
        403,
        "urn:coffer:problem:forbidden",
    );
    changed.assert_state_unchanged(&case, "refused uploads");
    assert!(case.root_entries().is_empty(), "{:?}", case.root_entries());
    let (_, _, list) = server.get("/v1/admin/backup/list", Some(&viewer));
    assert_eq!(list["max_upload_bytes"], 10_000_000_000u64, "{list}");

    // A damaged bundle (one byte flipped in the middle): the job fails, nothing changes,
    // nothing is left in the root.
    let mut damaged = bundle.clone();
    let middle = damaged.len() / 2;
    damaged[middle] ^= 0x55;
    let job = server.upload_job(&admin, damaged, Some(64 << 10));
    assert_eq!(job["state"], "failed", "{job}");
    assert_eq!(job["error"]["type"], "urn:coffer:problem:damaged", "{job}");
    changed.assert_unchanged(&case, "damaged upload");
    assert!(case.root_entries().is_empty(), "{:?}", case.root_entries());

    // The good bundle, in 64 KiB pieces: the backup's state comes back.
    let job = server.upload_job(&admin, bundle, Some(64 << 10));
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["result"]["report"]["backup"], name.as_str(), "{job}");
    assert_restored(&case, &at_backup);
    assert_eq!(case.root_entries(), vec![name]);
    assert_success(&case.run(&["verify", "--latest"]));
    let log = std::fs::read_to_string(case.root.join("coffer-runs.jsonl")).unwrap();
    let last: Value = serde_json::from_str(log.lines().last().unwrap()).unwrap();
    assert_eq!(
        (last["operation"].as_str(), last["outcome"].as_str()),
        (Some("restore"), Some("success")),
        "{last}"
    );
}

#[test]
fn an_uploaded_legacy_tar_gz_restores() {
    let (case, _, admin, _) = served_case("");
    // Fifos and sockets make GNU tar warn or archive them; the script's workspaces had none.
    std::fs::remove_file(case.workspace.join("run/app.fifo")).unwrap();
    std::fs::remove_file(case.workspace.join("run/app.sock")).unwrap();
    let at_backup = Before::take(&case);
    let scratch = case.dir.path().join("old-host");
    let dir = scratch.join("2025-06-01-030000");
    std::fs::create_dir_all(&dir).unwrap();
    let env: String = cluster()
        .env(&case.db)
        .iter()
        .map(|(k, v)| format!("{k}='{v}' "))
        .collect();
    sh(&format!(
        "cd {d} && {env} pg_dump --clean --if-exists {db} | gzip > postgres.sql.gz && \
         tar -czf workspace.tar.gz -C {ws} . && \
         printf '{{\"timestamp\": \"2025-06-01T03:00:00Z\", \"alembic_head\": \"{HEAD}\", \"db_size\": \"12 MB\", \"workspace_path\": \"{ws}\"}}' > manifest.json && \
         tar -czf {s}/upload.tar.gz -C {s} 2025-06-01-030000",
        d = dir.display(),
        s = scratch.display(),
        db = case.db,
        ws = case.workspace.display()
    ));
    let upload = std::fs::read(scratch.join("upload.tar.gz")).unwrap();
    change_state(&case);
    let server = Serve::start(&case);
    // With a Content-Length this time.
    let job = server.upload_job(&admin, upload, None);
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_restored(&case, &at_backup);
    assert_eq!(case.root_entries(), vec!["2025-06-01-030000".to_string()]);
}

/// Sends a request head announcing `length` bytes and no body; returns the answer's
/// status line and body. Raw, because a client that sends the body first would be cut
/// off when the server answers without reading it, which is the point.
fn announce_only(server: &Serve, token: &str, length: u64) -> (String, Value) {
    let addr = server.base.strip_prefix("http://").unwrap();
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(60)))
        .unwrap();
    write!(
        stream,
        "POST {UPLOAD} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nX-Confirm-Restore: yes\r\nContent-Type: application/octet-stream\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    (
        head.lines().next().unwrap().to_string(),
        serde_json::from_str(body).unwrap_or(Value::String(body.into())),
    )
}

#[test]
fn an_upload_past_the_limit_gets_413_and_leaves_nothing() {
    let limit: u64 = 64 << 10;
    let (case, _, admin, viewer) = served_case(&format!("max_upload_bytes = {limit}\n"));
    let backup = case.backup_ok(&[]);
    let bundle = exported(&case, &backup);
    assert!(bundle.len() as u64 > 2 * limit, "{}", bundle.len());
    change_state(&case);
    let changed = Before::take(&case);
    let server = Serve::start(&case);
    let (_, _, list) = server.get("/v1/admin/backup/list", Some(&viewer));
    assert_eq!(list["max_upload_bytes"], limit, "{list}");

    // Announced too large: refused before reading, no job started.
    let (status, json) = announce_only(&server, &admin, limit + 1);
    assert!(status.contains(" 413 "), "{status}: {json}");
    assert_eq!(json["type"], "urn:coffer:problem:too_large", "{json}");
    let (_, _, list) = server.get("/v1/admin/backup/list", Some(&viewer));
    assert_eq!(list["running_job"], Value::Null, "{list}");

    // Chunked, so the size shows only on the way: the job fails, nothing is kept.
    let a = server.upload(&admin, true, bundle, Some(16 << 10));
    assert_problem(
        a.status,
        &a.content_type,
        &a.json,
        413,
        "urn:coffer:problem:too_large",
    );
    // The job it started failed with the same problem.
    let id = a.location.unwrap().rsplit('/').next().unwrap().to_string();
    let job = server.outcome(&id, &viewer);
    assert_eq!(job["state"], "failed", "{job}");
    assert_eq!(
        job["error"]["type"], "urn:coffer:problem:too_large",
        "{job}"
    );
    assert_eq!(job["error"]["status"], 413, "{job}");
    let root_entries = || case.root_entries();
    changed.assert_unchanged(&case, "too large an upload");
    assert!(root_entries().is_empty(), "{:?}", root_entries());
    let staged: Vec<PathBuf> = std::fs::read_dir(&case.root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    assert!(staged.is_empty(), "{staged:?}");
}
