//! The configuration's unit tests: parsing, environment overrides, validation.

use super::*;

fn err(text: &str) -> String {
    Config::from_toml(text, "/etc/coffer/coffer.toml")
        .unwrap_err()
        .to_string()
}

#[test]
fn parses_a_full_file() {
    let c = Config::from_toml(
        r#"
backup_dir = "/var/backups/portal"
metrics_file = "/var/lib/node_exporter/coffer.prom"
[database]
exec = ["docker", "compose", "-f", "/opt/app/docker-compose.yml", "exec", "-T", "postgres"]
name = "portal"
user = "portal"
[workspace]
path = "/srv/portal/workspace"
exclude = ["cache/**", "*.tmp"]
[encryption]
recipients = ["age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"]
identity_file = "/root/coffer.key"
[compression]
level = 3
[retention]
keep_days = 14
keep_weekly = 4
[hooks]
before_restore = [["docker", "compose", "stop", "backend"]]
timeout = "2m 30s"
[alembic]
versions_dir = "/opt/app/backend/alembic/versions"
"#,
        "t.toml",
    )
    .unwrap();
    assert_eq!(c.compression.effective_level(), 3);
    assert_eq!(c.hooks.timeout, std::time::Duration::from_secs(150));
    assert_eq!(
        Config::default().hooks.timeout,
        crate::report::hooks::DEFAULT_TIMEOUT
    );
    for (timeout, needle) in [
        ("\"soon\"", "write a duration such as"),
        ("\"0s\"", "hooks.timeout"),
        ("10", "hooks.timeout"),
    ] {
        let e = err(&format!("[hooks]\ntimeout = {timeout}\n"));
        assert!(e.contains(needle), "{timeout}: {e}");
    }
    assert_eq!(c.retention.keep_days, Some(14));
    assert_eq!(c.retention.keep_weekly, Some(4));
    assert!(c.encryption.enabled());
    assert_eq!(c.database.exec.as_ref().unwrap()[0], "docker");
}

#[test]
fn rejections_name_file_key_and_reason() {
    let cases: &[(&str, &str, &str)] = &[
        ("bakup_dir = \"/x\"", "key `bakup_dir`", "unknown field"),
        (
            "[database]\nhost = \"x\"",
            "key `database.host`",
            "unknown field",
        ),
        (
            "[compression]\nlevel = 12",
            "key `compression.level`",
            "out of range",
        ),
        (
            "[compression]\nlevel = \"fast\"",
            "key `compression.level`",
            "invalid type",
        ),
        (
            "[workspace]\nexclude = [\"a[\"]",
            "key `workspace.exclude`",
            "unclosed",
        ),
        (
            "[database]\nexec = []",
            "key `database.exec`",
            "must name a command",
        ),
        (
            "[database]\nurl = \"mysql://x\"",
            "key `database.url`",
            "postgres",
        ),
        ("backup_dir = ", "key `(syntax)`", "line 1, column 14"),
        ("backup_dir = \"\"", "key `backup_dir`", "is empty"),
        ("backup_dir = \" \\t \"", "key `backup_dir`", "is empty"),
        (
            "backup_dir = \"backups\"",
            "key `backup_dir`",
            "is relative",
        ),
        (
            "backup_dir = \"~/backups\"",
            "key `backup_dir`",
            "is relative",
        ),
        ("backup_dir = \"/a\\nb\"", "key `backup_dir`", "newline"),
        (
            "[workspace]\npath = \"./ws\"",
            "key `workspace.path`",
            "is relative",
        ),
        (
            "metrics_file = \"m.prom\"",
            "key `metrics_file`",
            "is relative",
        ),
        (
            "[remote]\nurl = \"ftp://host/x\"",
            "key `remote.url`",
            "s3://",
        ),
        (
            "[remote]\nurl = \"file://relative\"",
            "key `remote.url`",
            "absolute",
        ),
        (
            "[remote]\npart_size = \"64 parsecs\"",
            "key `remote.part_size`",
            "unknown unit",
        ),
        (
            "[remote]\npart_size = 1000",
            "key `remote.part_size`",
            "out of range",
        ),
        (
            "[remote]\nmax_parts = 1",
            "key `remote.max_parts`",
            "out of range",
        ),
        (
            "[remote]\nretention = { keep_dayz = 3 }",
            "key `remote.retention.keep_dayz`",
            "unknown field",
        ),
    ];
    for (text, key, reason) in cases {
        let e = err(text);
        assert!(
            e.starts_with("invalid configuration file /etc/coffer/coffer.toml"),
            "{e}"
        );
        assert!(e.contains(key), "{text}: {e}");
        assert!(e.contains(reason), "{text}: {e}");
    }
}

#[test]
fn environment_overrides_file_and_legacy_names_work() {
    let mut c = Config::from_toml("backup_dir = \"/a\"", "t").unwrap();
    let env = |k: &str| match k {
        "BACKUP_DIR" => Some("/legacy".to_string()),
        "WORKSPACE_HOST_PATH" => Some("/ws".to_string()),
        "BACKUP_RETENTION_DAYS" => Some("30".to_string()),
        _ => None,
    };
    c.apply_env(&env).unwrap();
    assert_eq!(c.backup_dir(), PathBuf::from("/legacy"));
    assert_eq!(c.workspace.path, Some(PathBuf::from("/ws")));
    assert_eq!(c.retention.keep_days, Some(30));

    let env2 = |k: &str| match k {
        "BACKUP_DIR" => Some("/legacy".to_string()),
        "COFFER_BACKUP_DIR" => Some("/new".to_string()),
        "BACKUP_RETENTION_DAYS" => Some("week".to_string()),
        _ => None,
    };
    let e = c.apply_env(&env2).unwrap_err().to_string();
    assert!(
        e.contains("BACKUP_RETENTION_DAYS") && e.contains("week"),
        "{e}"
    );
    assert_eq!(c.backup_dir(), PathBuf::from("/new"));
}

#[test]
fn remote_section_parses_sizes_and_defaults_retention_to_local() {
    let c = Config::from_toml(
        "[retention]\nkeep_days = 3\n[remote]\nurl = \"s3://bucket/coffer/portal\"\npart_size = \"64MiB\"\nmax_parts = 1000\n",
        "t",
    )
    .unwrap();
    assert_eq!(c.remote.part_size, Some(ByteSize(64 << 20)));
    assert_eq!(c.remote.max_parts, 1000);
    assert_eq!(c.remote.concurrency, DEFAULT_REMOTE_CONCURRENCY);
    assert_eq!(c.remote.retention_or(&c.retention).keep_days, Some(3));
    let c = Config::from_toml(
        "[remote]\nurl = \"file:///srv/offsite\"\npart_size = 8388608\nretention = { keep_last = 2, keep_days = 0 }\n",
        "t",
    )
    .unwrap();
    assert_eq!(c.remote.part_size, Some(ByteSize(8 << 20)));
    let r = c.remote.retention_or(&c.retention);
    assert_eq!((r.keep_last, r.keep_days), (Some(2), Some(0)));
    for (text, n) in [
        ("1 GiB", 1u64 << 30),
        ("100MB", 100_000_000),
        ("5m", 5 << 20),
    ] {
        assert_eq!(text.parse::<ByteSize>().unwrap().0, n, "{text}");
    }
}

#[test]
fn check_paths_refuses_overlaps_after_overrides() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path().join("ws");
    std::fs::create_dir(&ws).unwrap();
    std::os::unix::fs::symlink(&ws, tmp.path().join("ws-link")).unwrap();
    let with = |root: &str, ws: &Path| Config {
        backup_dir: Some(PathBuf::from(root)),
        workspace: WorkspaceConfig {
            path: Some(ws.to_path_buf()),
            ..Default::default()
        },
        ..Default::default()
    };
    let t = tmp.path().display();
    for root in [
        format!("{t}/ws/backups"),
        format!("{t}/ws-link/backups"),
        format!("{t}/other/../ws/b"),
        format!("{t}/ws/"),
        format!("{t}"),
    ] {
        let e = with(&root, &ws).check_paths().unwrap_err().to_string();
        assert!(e.starts_with("configuration refused: "), "{root}: {e}");
    }
    with(&format!("{t}/backups"), &ws).check_paths().unwrap();
    let e = with(" ", &ws).check_paths().unwrap_err().to_string();
    assert!(e.contains("backup_dir is empty"), "{e}");
}

#[test]
fn defaults_match_the_documentation() {
    let c = Config::default();
    assert_eq!(c.backup_dir(), PathBuf::from("./backups"));
    assert_eq!(c.compression.effective_level(), 6);
    assert_eq!(c.retention.keep_days, Some(7));
    assert!(!c.encryption.enabled());
    let loaded = Config::load(Some(Path::new("/nonexistent/coffer.toml")), &|_| None);
    let e = loaded.unwrap_err().to_string();
    assert!(
        e.starts_with("cannot read configuration file /nonexistent/coffer.toml"),
        "{e}"
    );
}

#[test]
fn server_section_parses_and_is_checked() {
    let c = Config::from_toml(
        "[server]\nlisten = \"[::1]:9000\"\ntokens_file = \"/etc/coffer/tokens\"\nallow_plain_http = true\nmax_upload_bytes = \"1GiB\"\n",
        "t.toml",
    )
    .unwrap();
    assert_eq!(c.server.listen_addr().unwrap().port(), 9000);
    assert_eq!(c.server.max_upload_bytes, ByteSize(1 << 30));
    assert!(c.server.allow_plain_http);
    let d = Config::default().server;
    assert_eq!(d.listen, DEFAULT_LISTEN);
    assert_eq!(d.max_upload_bytes.0, DEFAULT_MAX_UPLOAD_BYTES);
    assert!(err("[server]\nlisten = \"localhost\"\n").contains("server.listen"));
    assert!(err("[server]\ntokens_file = \"tokens\"\n").contains("server.tokens_file"));
    assert!(err("[server]\nmax_upload_bytes = 0\n").contains("server.max_upload_bytes"));
    assert!(err("[server]\nport = 1\n").contains("port"));
}
