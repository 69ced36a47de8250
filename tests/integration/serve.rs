//! `coffer serve`: the HTTP admin API of the real binary, on a free loopback port, against
//! the real PostgreSQL cluster, called with a real HTTP client.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::*;

mod api;
mod priority;
mod shutdown;
mod upload;

/// How long any one request or event stream may take before the test fails.
const REQUEST_LIMIT: Duration = Duration::from_secs(180);

/// A running `coffer serve`, stopped with SIGTERM when dropped.
pub(crate) struct Serve {
    child: Child,
    pub(crate) base: String,
    pub(crate) agent: ureq::Agent,
}

impl Serve {
    /// Starts the server on a port the kernel picks and waits for its `listening on` line.
    pub(crate) fn start(case: &Case) -> Serve {
        Serve::spawn(case.coffer())
    }

    /// [`Serve::start`] with `dir` as the server's working directory.
    fn start_in(case: &Case, dir: &Path) -> Serve {
        let mut cmd = case.coffer();
        cmd.current_dir(dir);
        Serve::spawn(cmd)
    }

    fn spawn(mut cmd: std::process::Command) -> Serve {
        let mut child = cmd
            .args(["serve", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("coffer serve did not announce its address in 60s"));
        let base = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| {
                let status = child.wait().unwrap();
                panic!("coffer serve did not start ({status}): {line:?}")
            })
            .to_string();
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(REQUEST_LIMIT))
            .build()
            .into();
        Serve { child, base, agent }
    }

    fn get(&self, path: &str, token: Option<&str>) -> (u16, String, Value) {
        let mut req = self.agent.get(format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        answer(req.call().unwrap())
    }

    /// `DELETE /v1/admin/backup/{name}` with `token`.
    pub(crate) fn delete(&self, name: &str, token: &str) -> (u16, String, Value) {
        let mut resp = self
            .agent
            .delete(format!("{}/v1/admin/backup/{name}", self.base))
            .header("Authorization", format!("Bearer {token}"))
            .call()
            .unwrap();
        answer_of(&mut resp)
    }

    /// `GET /v1/admin/backup/{name}/download` with `token`, the body not read yet.
    pub(crate) fn download(&self, name: &str, token: &str) -> ureq::http::Response<ureq::Body> {
        self.agent
            .get(format!("{}/v1/admin/backup/{name}/download", self.base))
            .header("Authorization", format!("Bearer {token}"))
            .call()
            .unwrap()
    }

    fn post(&self, path: &str, token: &str, headers: &[(&str, &str)], body: &str) -> Answer {
        let mut req = self
            .agent
            .post(format!("{}{path}", self.base))
            .header("Authorization", format!("Bearer {token}"));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let mut resp = if body.is_empty() {
            req.send_empty().unwrap()
        } else {
            req.header("Content-Type", "application/json")
                .send(body)
                .unwrap()
        };
        let location = resp
            .headers()
            .get("location")
            .map(|v| v.to_str().unwrap().to_string());
        let content_type = content_type(&resp);
        let status = resp.status().as_u16();
        let text = resp.body_mut().read_to_string().unwrap();
        Answer {
            status,
            content_type,
            location,
            json: serde_json::from_str(&text).unwrap_or(Value::Null),
        }
    }

    /// Reads the job's event stream to its end: the names and data of its events.
    fn events(&self, job: &str, token: &str) -> Vec<(String, Value)> {
        let mut resp = self
            .agent
            .get(format!("{}/v1/admin/jobs/{job}/events", self.base))
            .header("Authorization", format!("Bearer {token}"))
            .call()
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        assert_eq!(content_type(&resp), "text/event-stream");
        let mut events = Vec::new();
        let mut name = String::new();
        for line in BufReader::new(resp.body_mut().as_reader()).lines() {
            let line = line.unwrap();
            if let Some(n) = line.strip_prefix("event: ") {
                name = n.to_string();
            } else if let Some(d) = line.strip_prefix("data: ") {
                events.push((name.clone(), serde_json::from_str(d).unwrap()));
            }
        }
        events
    }

    /// Follows a job's events until its outcome; returns the final job.
    fn outcome(&self, job: &str, token: &str) -> Value {
        let events = self.events(job, token);
        let (name, last) = events.last().expect("no event at all").clone();
        assert_eq!(name, "outcome", "{events:?}");
        last
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let pid = rustix::process::Pid::from_child(&self.child);
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Answer {
    status: u16,
    content_type: String,
    location: Option<String>,
    json: Value,
}

fn content_type(resp: &ureq::http::Response<ureq::Body>) -> String {
    resp.headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

fn answer(mut resp: ureq::http::Response<ureq::Body>) -> (u16, String, Value) {
    let status = resp.status().as_u16();
    let ct = content_type(&resp);
    let text = resp.body_mut().read_to_string().unwrap();
    (
        status,
        ct,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// `coffer serve token add NAME --role ROLE`: the token printed.
fn add_token(case: &Case, name: &str, role: &str) -> String {
    let out = case.run(&["serve", "token", "add", name, "--role", role]);
    assert_success(&out);
    let token = stdout(&out).trim().to_string();
    assert!(
        token.starts_with("coffer_") && token.len() == 71,
        "{token:?}"
    );
    token
}

/// A case whose config names a tokens file, with an admin and a viewer token.
pub(crate) fn served_case(extra: &str) -> (Case, PathBuf, String, String) {
    let case = Case::new();
    let tokens = case.dir.path().join("tokens");
    let config = format!("[server]\ntokens_file = \"{}\"\n{extra}", tokens.display());
    case.write_config(&case.db_section(), &config);
    let admin = add_token(&case, "ops", "admin");
    let viewer = add_token(&case, "grafana", "viewer");
    (case, tokens, admin, viewer)
}

fn assert_problem(status: u16, content_type: &str, json: &Value, want: u16, kind: &str) {
    assert_eq!(status, want, "{json}");
    assert_eq!(content_type, "application/problem+json", "{json}");
    assert_eq!(json["type"], kind, "{json}");
    assert_eq!(json["status"], want, "{json}");
}

#[test]
fn refuses_to_start_without_tokens_or_on_a_public_address() {
    let case = Case::new();
    // No tokens file configured.
    let out = case.run(&["serve", "--listen", "127.0.0.1:0"]);
    assert_exit(&out, 2);
    assert!(
        error_line(&out).contains("server.tokens_file is not set"),
        "{}",
        stderr(&out)
    );

    let tokens = case.dir.path().join("tokens");
    let config = format!("[server]\ntokens_file = \"{}\"\n", tokens.display());
    case.write_config(&case.db_section(), &config);
    // The file does not exist.
    let out = case.run(&["serve", "--listen", "127.0.0.1:0"]);
    assert_exit(&out, 2);
    assert!(stderr(&out).contains("does not exist"), "{}", stderr(&out));
    // It exists but holds no token.
    std::fs::write(&tokens, "# no tokens yet\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&tokens, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = case.run(&["serve", "--listen", "127.0.0.1:0"]);
    assert_exit(&out, 2);
    assert!(stderr(&out).contains("holds no token"), "{}", stderr(&out));
    // A token, but a file others may read.
    add_token(&case, "ops", "admin");
    std::fs::set_permissions(&tokens, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = case.run(&["serve", "--listen", "127.0.0.1:0"]);
    assert_exit(&out, 2);
    assert!(stderr(&out).contains("chmod 600"), "{}", stderr(&out));
    std::fs::set_permissions(&tokens, std::fs::Permissions::from_mode(0o600)).unwrap();
    // Plain HTTP on a non-loopback address.
    let out = case.run(&["serve", "--listen", "0.0.0.0:0"]);
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("refusing to listen on 0.0.0.0:0"),
        "{}",
        stderr(&out)
    );
    // A bad role or name for a new token.
    let out = case.run(&["serve", "token", "add", "x", "--role", "root"]);
    assert_exit(&out, 2);
    let out = case.run(&["serve", "token", "add", "../x", "--role", "admin"]);
    assert_exit(&out, 2);
    let out = case.run(&["serve", "token", "add", "ops", "--role", "viewer"]);
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("already has a token named `ops`"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn tokens_and_roles_decide_401_403_200_and_an_empty_root_lists_nothing() {
    let (case, tokens_file, admin, viewer) = served_case("");
    let server = Serve::start(&case);
    let unauthorized = "urn:coffer:problem:unauthorized";
    for token in [None, Some("coffer_0000"), Some(""), Some(&admin[..70])] {
        let (status, ct, json) = server.get("/v1/admin/backup/list", token);
        assert_problem(status, &ct, &json, 401, unauthorized);
    }
    // The scheme must be Bearer.
    let mut resp = server
        .agent
        .get(format!("{}/v1/admin/backup/list", server.base))
        .header("Authorization", format!("Basic {admin}"))
        .call()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    let _ = resp.body_mut().read_to_string();

    for (token, role) in [(&viewer, "viewer"), (&admin, "admin")] {
        let (status, ct, json) = server.get("/v1/admin/backup/list", Some(token));
        assert_eq!((status, ct.as_str()), (200, "application/json"), "{json}");
        // The caller's role, so that a client shows only what the token may do.
        assert_eq!(json["role"], role, "{json}");
        assert_eq!(json["backups"], serde_json::json!([]), "{json}");
        assert_eq!(json["last_attempt"], Value::Null);
        assert_eq!(json["running_job"], Value::Null);
        let (status, _, json) = server.get("/metrics", Some(token));
        assert_eq!(status, 200, "{json}");
        assert!(
            json.as_str()
                .unwrap()
                .contains("coffer_consecutive_failures 0"),
            "{json}"
        );
        // No backup yet: unhealthy (too old), with the reason.
        let (status, _, json) = server.get("/v1/admin/health", Some(token));
        assert_eq!(status, 503, "{json}");
        assert_eq!(
            json["root_writable"], false,
            "the root does not exist yet: {json}"
        );
    }
    // A viewer may not trigger or restore.
    let forbidden = "urn:coffer:problem:forbidden";
    let a = server.post("/v1/admin/backup/trigger", &viewer, &[], "");
    assert_problem(a.status, &a.content_type, &a.json, 403, forbidden);
    let a = server.post(
        "/v1/admin/backup/anything/restore",
        &viewer,
        &[("X-Confirm-Restore", "yes")],
        "",
    );
    assert_problem(a.status, &a.content_type, &a.json, 403, forbidden);
    // Unknown routes and jobs are problems too.
    let (status, ct, json) = server.get("/v1/admin/jobs/0123456789abcdef", Some(&viewer));
    assert_problem(status, &ct, &json, 404, "urn:coffer:problem:not_found");
    let (status, ct, json) = server.get("/v1/nothing", Some(&viewer));
    assert_problem(status, &ct, &json, 404, "urn:coffer:problem:not_found");
    // A malformed trigger body changes nothing.
    let a = server.post(
        "/v1/admin/backup/trigger",
        &admin,
        &[],
        r#"{"kind":"legacy"}"#,
    );
    assert_problem(
        a.status,
        &a.content_type,
        &a.json,
        400,
        "urn:coffer:problem:bad_request",
    );
    assert!(case.backups().is_empty());
    // The tokens never reach the file in clear.
    let text = std::fs::read_to_string(&tokens_file).unwrap();
    assert!(!text.contains(&admin) && !text.contains(&viewer));
}

/// A hook that blocks until `release` exists: the job stays running, deterministically,
/// until the test lets it go.
pub(crate) fn blocking_hook(release: &Path) -> String {
    format!(
        "[\"sh\", \"-c\", \"while [ ! -e {} ]; do sleep 0.05; done\"]",
        release.display()
    )
}

#[test]
fn trigger_follows_events_to_a_verified_backup_conflicts_while_running_and_restores() {
    let release = tempfile::tempdir().unwrap();
    let go = release.path().join("go");
    let (case, _, admin, viewer) = served_case(&format!(
        "[hooks]\non_success = [{}]\ntimeout = \"3m\"\n",
        blocking_hook(&go)
    ));
    let tables = table_fingerprints(&case.db);
    let server = Serve::start(&case);

    let a = server.post(
        "/v1/admin/backup/trigger",
        &admin,
        &[],
        r#"{"kind":"manual","label":"from-the-api"}"#,
    );
    assert_eq!(a.status, 202, "{}", a.json);
    let id = a.json["id"].as_str().unwrap().to_string();
    assert_eq!(
        a.location.as_deref(),
        Some(format!("/v1/admin/jobs/{id}").as_str())
    );
    assert_eq!(a.json["operation"], "backup");
    assert_eq!(a.json["requested_by"], "ops");

    // While it runs (held in its on_success hook), another backup or a restore is refused.
    let second = server.post("/v1/admin/backup/trigger", &admin, &[], "");
    assert_problem(
        second.status,
        &second.content_type,
        &second.json,
        409,
        "urn:coffer:problem:locked",
    );
    assert!(second.json["detail"].as_str().unwrap().contains(&id));
    let r = server.post(
        "/v1/admin/backup/x/restore",
        &admin,
        &[("X-Confirm-Restore", "yes")],
        "",
    );
    assert_eq!(r.status, 409, "{}", r.json);
    // The listing shows the running job.
    let (_, _, list) = server.get("/v1/admin/backup/list", Some(&viewer));
    assert_eq!(list["running_job"]["id"], id.as_str(), "{list}");
    // The job's step follows the run past its first check: held in the hook, it says so
    // (the artifacts, manifest and rename are done by then).
    wait_until("the job's step at the hooks", RUN_LIMIT, || {
        let (_, _, job) = server.get(&format!("/v1/admin/jobs/{id}"), Some(&viewer));
        job["step"] == "running the on_success hooks"
    });

    std::fs::write(&go, b"").unwrap();
    let events = server.events(&id, &viewer);
    let (last_name, job) = events.last().unwrap().clone();
    assert_eq!(last_name, "outcome", "{events:?}");
    assert!(
        events[..events.len() - 1]
            .iter()
            .all(|(n, _)| n == "progress")
    );
    assert_eq!(job["state"], "succeeded", "{job}");
    // A finished job runs no step.
    assert_eq!(job["step"], Value::Null, "{job}");
    for role in ["database", "workspace"] {
        assert_eq!(job["artifacts"][role]["done"], true, "{job}");
        assert!(
            job["artifacts"][role]["bytes"].as_u64().unwrap() > 0,
            "{job}"
        );
    }
    let path = PathBuf::from(job["result"]["report"]["path"].as_str().unwrap());
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    assert_eq!(case.backups(), vec![path.clone()]);
    assert_eq!(manifest(&path)["label"], "from-the-api");
    assert_success(&case.run(&["verify", &name]));
    // A reconnecting client gets the outcome at once; the job stays readable.
    assert_eq!(server.outcome(&id, &viewer)["state"], "succeeded");
    let (status, _, again) = server.get(&format!("/v1/admin/jobs/{id}"), Some(&viewer));
    assert_eq!((status, &again["state"]), (200, &Value::from("succeeded")));

    // The listing has it, in `coffer list --json`'s shape, and the attempt.
    let (_, _, list) = server.get("/v1/admin/backup/list", Some(&viewer));
    let out = case.run(&["list", "--json"]);
    assert_success(&out);
    let cli: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(list["backups"], cli, "{list}");
    assert_eq!(list["last_attempt"]["outcome"], "success", "{list}");
    assert_eq!(list["running_job"], Value::Null);

    // A restore without the confirmation header: 412, exactly the runbook's problem.
    cluster()
        .psql(
            &case.db,
            "UPDATE users SET display_name = 'changed' WHERE id <= 10",
        )
        .unwrap();
    for headers in [&[][..], &[("X-Confirm-Restore", "no")][..]] {
        let r = server.post(
            &format!("/v1/admin/backup/{name}/restore"),
            &admin,
            headers,
            "",
        );
        assert_problem(
            r.status,
            &r.content_type,
            &r.json,
            412,
            "urn:trustedoss:problem:restore_confirmation_required",
        );
        assert_eq!(r.json["title"], "Restore confirmation header missing");
    }
    assert_ne!(table_fingerprints(&case.db), tables);
    // A name that is a path is refused before anything runs.
    let r = server.post(
        "/v1/admin/backup/..%2F..%2Fetc/restore",
        &admin,
        &[("X-Confirm-Restore", "yes")],
        "",
    );
    assert_problem(
        r.status,
        &r.content_type,
        &r.json,
        400,
        "urn:coffer:problem:bad_request",
    );

    // With it: the restore runs as a job and puts the backup's state back.
    let r = server.post(
        &format!("/v1/admin/backup/{name}/restore"),
        &admin,
        &[("X-Confirm-Restore", "yes")],
        "",
    );
    assert_eq!(r.status, 202, "{}", r.json);
    assert_eq!(r.json["operation"], "restore");
    assert_eq!(r.json["backup"], name.as_str());
    let job = server.outcome(r.json["id"].as_str().unwrap(), &admin);
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(table_fingerprints(&case.db), tables);
    let log = std::fs::read_to_string(case.root.join("coffer-runs.jsonl")).unwrap();
    let last: Value = serde_json::from_str(log.lines().last().unwrap()).unwrap();
    assert_eq!(
        (last["operation"].as_str(), last["outcome"].as_str()),
        (Some("restore"), Some("success")),
        "{last}"
    );
}

#[test]
fn a_refused_restore_job_carries_the_reasons_and_changes_nothing() {
    let (case, _, admin, _) = served_case("");
    let backup = case.backup_ok(&[]);
    let name = backup.file_name().unwrap().to_string_lossy().into_owned();
    // A session connected to the database: pre-flight refuses (the API does not end it).
    let mut session = std::process::Command::new("psql")
        .args(["-X", "-q", "-d", &cluster().url(&case.db)])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    use std::io::Write;
    let mut stdin = session.stdin.take().unwrap();
    writeln!(stdin, "SELECT 1;").unwrap();
    wait_until("the session is connected", Duration::from_secs(30), || {
        let n = cluster()
            .psql(
                "postgres",
                &format!(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = '{}'",
                    case.db
                ),
            )
            .unwrap();
        n.trim() != "0"
    });
    let before = table_fingerprints(&case.db);
    let server = Serve::start(&case);
    let r = server.post(
        &format!("/v1/admin/backup/{name}/restore"),
        &admin,
        &[("X-Confirm-Restore", "yes")],
        "",
    );
    assert_eq!(r.status, 202, "{}", r.json);
    let job = server.outcome(r.json["id"].as_str().unwrap(), &admin);
    assert_eq!(job["state"], "failed", "{job}");
    let problem = &job["error"];
    assert_eq!(problem["type"], "urn:coffer:problem:refused", "{job}");
    assert_eq!(problem["status"], 422, "{job}");
    let reasons = problem["reasons"].as_array().unwrap();
    assert!(!reasons.is_empty(), "{job}");
    assert!(
        problem["hints"]
            .as_array()
            .unwrap()
            .contains(&Value::from("terminate_connections")),
        "{job}"
    );
    drop(stdin);
    let _ = session.wait();
    assert_eq!(table_fingerprints(&case.db), before);
}

#[test]
fn sigterm_during_a_triggered_backup_cancels_it_and_leaves_nothing_partial() {
    let (case, tokens, admin, viewer) = served_case("");
    // pg_dump stalls after some output: the backup is mid-write until cancelled.
    case.write_config(
        &case.exec_wrapper("pg_dump \"$@\" | { head -c 200000; sleep 120; }\nexit 0"),
        &format!("[server]\ntokens_file = \"{}\"\n", tokens.display()),
    );
    let mut server = Serve::start(&case);
    let a = server.post("/v1/admin/backup/trigger", &admin, &[], "");
    assert_eq!(a.status, 202, "{}", a.json);
    let id = a.json["id"].as_str().unwrap().to_string();
    wait_until(
        "the backup writes its dump",
        Duration::from_secs(60),
        || {
            let (_, _, job) = server.get(&format!("/v1/admin/jobs/{id}"), Some(&viewer));
            job["artifacts"]["database"]["bytes"].as_u64().unwrap_or(0) > 0
        },
    );
    assert!(
        case.root_entries()
            .iter()
            .any(|n| n.starts_with(".coffer-staging-")),
        "{:?}",
        case.root_entries()
    );
    let pid = rustix::process::Pid::from_child(&server.child);
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = server.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "coffer serve did not stop within 60s"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}");
    assert!(case.root_entries().is_empty(), "{:?}", case.root_entries());
    // The cancelled attempt is in the run log like a CLI run's.
    let log = std::fs::read_to_string(case.root.join("coffer-runs.jsonl")).unwrap();
    let last: Value = serde_json::from_str(log.lines().last().unwrap()).unwrap();
    assert_eq!(
        (last["operation"].as_str(), last["outcome"].as_str()),
        (Some("backup"), Some("failure")),
        "{last}"
    );
}

#[test]
fn download_streams_the_same_bundle_as_coffer_export() {
    let (case, _, _, viewer) = served_case("");
    let backup = case.backup_ok(&[]);
    let name = backup.file_name().unwrap().to_string_lossy().into_owned();
    let exported = case.dir.path().join("exported.tar");
    assert_success(&case.run(&["export", &name, "--output", exported.to_str().unwrap()]));
    let server = Serve::start(&case);
    let mut resp = server.download(&name, &viewer);
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(content_type(&resp), "application/x-tar");
    assert_eq!(
        resp.headers().get("content-disposition").unwrap(),
        format!("attachment; filename=\"{name}.tar\"").as_str()
    );
    let mut body = Vec::new();
    std::io::Read::read_to_end(&mut resp.body_mut().as_reader(), &mut body).unwrap();
    assert_eq!(body, std::fs::read(&exported).unwrap());
    // Unknown backups and names that are paths get problems, not bytes.
    let (status, ct, json) = server.get("/v1/admin/backup/no-such-backup/download", Some(&viewer));
    assert!(status >= 400, "{json}");
    assert_eq!(ct, "application/problem+json", "{json}");
    let (status, ct, json) = server.get("/v1/admin/backup/..%2Fbackups/download", Some(&viewer));
    assert_problem(status, &ct, &json, 400, "urn:coffer:problem:bad_request");
    let (status, ct, json) = server.get(&format!("/v1/admin/backup/{name}/download"), None);
    assert_problem(status, &ct, &json, 401, "urn:coffer:problem:unauthorized");
}

#[test]
fn delete_removes_an_older_backup_and_refuses_the_newest() {
    let (case, _, admin, viewer) = served_case("");
    let older = case.backup_ok(&["--no-prune"]);
    let newest = case.backup_ok(&["--no-prune"]);
    let name = |p: &Path| p.file_name().unwrap().to_string_lossy().into_owned();
    let server = Serve::start(&case);
    let delete = |backup: &str, token: &str| server.delete(backup, token);
    let (status, ct, json) = delete(&name(&older), &viewer);
    assert_problem(status, &ct, &json, 403, "urn:coffer:problem:forbidden");
    let (status, ct, json) = delete(&name(&newest), &admin);
    assert_problem(status, &ct, &json, 422, "urn:coffer:problem:refused");
    let (status, ct, json) = delete("no-such-backup", &admin);
    assert_problem(status, &ct, &json, 404, "urn:coffer:problem:not_found");
    let (status, ct, json) = delete("..%2Fworkspace", &admin);
    assert_problem(status, &ct, &json, 400, "urn:coffer:problem:bad_request");
    assert_eq!(case.backups(), vec![older.clone(), newest.clone()]);
    let listed = || {
        let (_, _, list) = server.get("/v1/admin/backup/list", Some(&viewer));
        list["backups"].as_array().unwrap().len()
    };
    // A listing is reused for a moment, but never past a delete through the server.
    assert_eq!(listed(), 2);
    let (status, _, json) = delete(&name(&older), &admin);
    assert_eq!(status, 200, "{json}");
    assert_eq!(json["deleted"], serde_json::json!([name(&older)]));
    assert_eq!(listed(), 1);
    assert_eq!(case.backups(), vec![newest]);
    assert!(
        case.root_entries().iter().all(|n| !n.starts_with('.')),
        "{:?}",
        case.root_entries()
    );
}

fn answer_of(resp: &mut ureq::http::Response<ureq::Body>) -> (u16, String, Value) {
    let status = resp.status().as_u16();
    let ct = content_type(resp);
    let text = resp.body_mut().read_to_string().unwrap();
    (
        status,
        ct,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}
