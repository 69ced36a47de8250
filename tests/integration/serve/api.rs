//! `coffer serve`: download lengths, unknown names, a root held by a command-line run.

use std::io::Read;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;

use super::{Serve, answer_of, assert_problem, served_case};
use crate::harness::*;

#[test]
fn download_announces_the_exact_content_length() {
    let (case, _, _, viewer) = served_case("");
    let backup = case.backup_ok(&[]);
    let name = backup.file_name().unwrap().to_string_lossy().into_owned();
    let server = Serve::start(&case);
    let mut resp = server.download(&name, &viewer);
    assert_eq!(resp.status().as_u16(), 200);
    let announced: u64 = resp
        .headers()
        .get("content-length")
        .expect("a Content-Length header")
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let mut body = Vec::new();
    resp.body_mut().as_reader().read_to_end(&mut body).unwrap();
    assert_eq!(announced, body.len() as u64);
    assert!(body.len() > 10_000, "{}", body.len());
}

#[test]
fn names_not_in_the_root_are_404_and_never_paths() {
    let (case, _, admin, viewer) = served_case("");
    let backup = case.backup_ok(&[]);
    // A plain dump named like one a restore by path would take, where the server runs.
    let dump = case.dir.path().join("dump.sql");
    std::fs::write(&dump, "-- PostgreSQL database dump\n").unwrap();
    let log_before = std::fs::read_to_string(case.root.join("coffer-runs.jsonl")).unwrap();
    let server = Serve::start_in(&case, case.dir.path());
    let not_found = "urn:coffer:problem:not_found";
    for name in [
        "2001-01-01-000000",
        "manual-20010101T000000Z",
        "no-such-backup",
        "dump.sql",
        "backups",
    ] {
        let (status, ct, json) =
            server.get(&format!("/v1/admin/backup/{name}/download"), Some(&viewer));
        assert_problem(status, &ct, &json, 404, not_found);
        let a = server.post(
            &format!("/v1/admin/backup/{name}/restore"),
            &admin,
            &[("X-Confirm-Restore", "yes")],
            "",
        );
        assert_problem(a.status, &a.content_type, &a.json, 404, not_found);
        let (status, ct, json) = server.delete(name, &admin);
        assert_problem(status, &ct, &json, 404, not_found);
    }
    // Nothing ran: no job, no new run-log line.
    let (_, _, list) = server.get("/v1/admin/backup/list", Some(&viewer));
    assert_eq!(list["running_job"], Value::Null, "{list}");
    let log = std::fs::read_to_string(case.root.join("coffer-runs.jsonl")).unwrap();
    assert_eq!(log, log_before);
    assert_eq!(case.backups(), vec![backup]);
}

#[test]
fn a_command_line_run_holding_the_root_gets_409_at_once() {
    let (case, _, admin, viewer) = served_case("");
    let backup = case.backup_ok(&[]);
    let name = backup.file_name().unwrap().to_string_lossy().into_owned();
    // `coffer import -` with a silent standard input holds the root's lock.
    let mut import = case
        .coffer()
        .args(["import", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let upload = import.stdin.take().unwrap();
    let pid = import.id();
    wait_until(
        "the import holds the root's lock",
        Duration::from_secs(60),
        || {
            std::fs::read_to_string(case.root.join(".coffer.lock"))
                .is_ok_and(|holder| holder.contains(&format!("pid {pid}")))
        },
    );
    let server = Serve::start(&case);
    let locked = "urn:coffer:problem:locked";
    let a = server.post("/v1/admin/backup/trigger", &admin, &[], "");
    assert_problem(a.status, &a.content_type, &a.json, 409, locked);
    assert!(
        a.json["detail"]
            .as_str()
            .unwrap()
            .contains(&format!("pid {pid}")),
        "{}",
        a.json
    );
    let a = server.post(
        &format!("/v1/admin/backup/{name}/restore"),
        &admin,
        &[("X-Confirm-Restore", "yes")],
        "",
    );
    assert_problem(a.status, &a.content_type, &a.json, 409, locked);
    let a = server.post(
        "/v1/admin/backup/restore",
        &admin,
        &[("X-Confirm-Restore", "yes")],
        "",
    );
    assert_problem(a.status, &a.content_type, &a.json, 409, locked);
    let (status, ct, json) = server.delete(&name, &admin);
    assert_problem(status, &ct, &json, 409, locked);
    // None of them started a job.
    let (_, _, list) = server.get("/v1/admin/backup/list", Some(&viewer));
    assert_eq!(list["running_job"], Value::Null, "{list}");
    // Once the command-line run ends, a trigger is accepted.
    drop(upload);
    let out = wait_within(import, RUN_LIMIT, "coffer import -");
    assert!(!out.status.success());
    let a = server.post("/v1/admin/backup/trigger", &admin, &[], "");
    assert_eq!(a.status, 202, "{}", a.json);
    let job = server.outcome(a.json["id"].as_str().unwrap(), &admin);
    assert_eq!(job["state"], "succeeded", "{job}");
}

#[test]
fn health_is_200_when_all_is_well_and_503_when_the_database_is_unreachable() {
    let (case, tokens, _, viewer) = served_case("");
    case.backup_ok(&[]);
    {
        let server = Serve::start(&case);
        let (status, _, json) = server.get("/v1/admin/health", Some(&viewer));
        assert_eq!(status, 200, "{json}");
        for check in [
            "healthy",
            "config_valid",
            "root_writable",
            "database_reachable",
            "backups_fresh",
        ] {
            assert_eq!(json[check], true, "{check}: {json}");
        }
        assert!(
            json["last_backup_age_seconds"].as_i64().unwrap() < 600,
            "{json}"
        );
        assert_eq!(json["max_age_seconds"], 26 * 3600, "{json}");
        assert_eq!(json["problems"], serde_json::json!([]), "{json}");
    }
    let server_section = format!("[server]\ntokens_file = \"{}\"\n", tokens.display());
    // Nothing listens on the port: refused at once.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_port = closed.local_addr().unwrap().port();
    drop(closed);
    // Accepts connections and never answers: the attempt must be bounded.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    for port in [closed_port, silent_port] {
        case.write_config(
            &format!(
                "url = \"postgresql://coffer@127.0.0.1:{port}/{}\"\n",
                case.db
            ),
            &server_section,
        );
        let server = Serve::start(&case);
        let started = std::time::Instant::now();
        let (status, _, json) = server.get("/v1/admin/health", Some(&viewer));
        assert_eq!(status, 503, "{json}");
        assert_eq!(json["healthy"], false, "{json}");
        assert_eq!(json["database_reachable"], false, "{json}");
        assert_eq!(json["root_writable"], true, "{json}");
        assert_eq!(json["backups_fresh"], true, "{json}");
        assert!(
            json["problems"][0]
                .as_str()
                .unwrap()
                .starts_with("database: "),
            "{json}"
        );
        assert!(started.elapsed() < Duration::from_secs(30), "{json}");
    }
    drop(silent);
    // `coffer status` judges the backups only, as before.
    assert_success(&case.run(&["status"]));
}

/// A `database.exec` wrapper that appends a line to `pings` for every `psql … -c` it runs
/// and makes each take a second, so that concurrent health checks overlap.
fn counting_psql(case: &Case) -> (String, std::path::PathBuf) {
    let dir = case.dir.path();
    let pings = dir.join("pings");
    let wrapper = dir.join("count-psql.sh");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nprog=$1; shift\nif [ \"$prog\" = psql ]; then\n  case \" $* \" in\n    *\" -c \"*) echo ping >> '{p}'; sleep 1 ;;\n  esac\nfi\nexec \"$prog\" \"$@\"\n",
            p = pings.display()
        ),
    )
    .unwrap();
    make_executable(&wrapper);
    let section = format!(
        "url = \"{}\"\nexec = [\"{}\"]\n",
        cluster().url(&case.db),
        wrapper.display()
    );
    (section, pings)
}

#[test]
fn concurrent_health_requests_share_one_database_check() {
    let (case, tokens, _, viewer) = served_case("");
    case.backup_ok(&[]);
    let (db_section, pings) = counting_psql(&case);
    case.write_config(
        &db_section,
        &format!("[server]\ntokens_file = \"{}\"\n", tokens.display()),
    );
    let server = Serve::start(&case);
    let count = || {
        std::fs::read_to_string(&pings)
            .map(|t| t.lines().count())
            .unwrap_or(0)
    };
    let (status, _, json) = server.get("/v1/admin/health", Some(&viewer));
    assert_eq!(status, 200, "{json}");
    let one_check = count();
    assert!(one_check >= 1, "the health check ran no psql");
    // A viewer (or a dashboard gone wild) asking many times at once must not start a psql
    // per request: that would let any token holder flood the database and the server's
    // blocking pool.
    std::thread::sleep(Duration::from_secs(3));
    let before = count();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..12)
            .map(|_| s.spawn(|| server.get("/v1/admin/health", Some(&viewer))))
            .collect();
        for h in handles {
            let (status, _, json) = h.join().unwrap();
            assert_eq!(status, 200, "{json}");
            assert_eq!(json["database_reachable"], true, "{json}");
        }
    });
    let during = count() - before;
    assert!(
        during <= 2 * one_check,
        "12 concurrent health requests ran {during} database checks (one request runs {one_check})"
    );
}

#[test]
fn a_connection_that_never_completes_its_request_is_closed() {
    let (case, _, _, _) = served_case("");
    let server = Serve::start(&case);
    let addr = server.base.strip_prefix("http://").unwrap().to_string();
    // One connection sends nothing, one stops inside its request head (slowloris): without
    // a bound, anyone who can reach the port holds a connection (and a file descriptor) per
    // socket for ever, no token needed, until the server can accept no more.
    let bound = Duration::from_secs(90);
    let started = std::time::Instant::now();
    let closed_within = |head: &'static [u8]| {
        let addr = addr.clone();
        std::thread::spawn(move || {
            let mut stream = std::net::TcpStream::connect(&addr).unwrap();
            std::io::Write::write_all(&mut stream, head).unwrap();
            stream.set_read_timeout(Some(bound)).unwrap();
            let mut answer = Vec::new();
            // Ends (EOF, or a reset) when the server closes it; a read timeout is a failure.
            match stream.read_to_end(&mut answer) {
                Ok(_) => {}
                Err(e) => assert!(
                    !matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ),
                    "the server kept a connection that sent {:?} open for {bound:?}",
                    String::from_utf8_lossy(head)
                ),
            }
        })
    };
    let silent = closed_within(b"");
    let slow = closed_within(b"GET /v1/admin/health HTTP/1.1\r\nHost: x\r\n");
    silent.join().unwrap();
    slow.join().unwrap();
    assert!(started.elapsed() < bound);
}

#[test]
fn errors_of_the_http_layer_itself_are_problem_documents() {
    let (case, _, admin, viewer) = served_case("");
    case.backup_ok(&[]);
    let server = Serve::start(&case);
    let call = |method: &str, path: &str| {
        let req = ureq::http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", server.base))
            .header("Authorization", format!("Bearer {viewer}"))
            .body(())
            .unwrap();
        let mut resp = server.agent.run(req).unwrap();
        let allow = resp
            .headers()
            .get("allow")
            .map(|v| v.to_str().unwrap().to_string());
        let (status, content_type, json) = answer_of(&mut resp);
        (status, content_type, json, allow)
    };
    // A method the route does not have (OPTIONS, PUT): 405 naming the allowed ones.
    for (method, path) in [
        ("OPTIONS", "/v1/admin/backup/list"),
        ("PUT", "/v1/admin/health"),
    ] {
        let (status, content_type, json, allow) = call(method, path);
        assert_problem(
            status,
            &content_type,
            &json,
            405,
            "urn:coffer:problem:method_not_allowed",
        );
        assert!(allow.is_some_and(|a| a.contains("GET")), "{method} {path}");
    }
    // A name or job id that is not UTF-8 once percent-decoded: 400, as any bad name.
    for path in ["/v1/admin/backup/%FF%FE/download", "/v1/admin/jobs/%C0%AF"] {
        let (status, content_type, json, _) = call("GET", path);
        assert_problem(
            status,
            &content_type,
            &json,
            400,
            "urn:coffer:problem:bad_request",
        );
    }
    // A trigger body past axum's body limit (2 MiB): 413, not plain text. Raw, because the
    // server answers before the client has sent it all.
    let addr = server.base.strip_prefix("http://").unwrap().to_string();
    let mut stream = std::net::TcpStream::connect(&addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let body = format!("{{\"label\":\"{}\"}}", "x".repeat(3 << 20));
    let mut writer = stream.try_clone().unwrap();
    let head = format!(
        "POST /v1/admin/backup/trigger HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {admin}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let sender = std::thread::spawn(move || {
        // Cut off once the server has answered: that is expected.
        let _ = std::io::Write::write_all(&mut writer, head.as_bytes())
            .and_then(|()| std::io::Write::write_all(&mut writer, body.as_bytes()));
    });
    let mut text = Vec::new();
    let _ = stream.read_to_end(&mut text);
    sender.join().unwrap();
    let text = String::from_utf8_lossy(&text);
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/problem+json"),
        "{head}\n{body}"
    );
    let json: Value = serde_json::from_str(body).unwrap();
    assert_eq!(json["type"], "urn:coffer:problem:too_large", "{json}");
}
