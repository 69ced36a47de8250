//! The admin page (`/admin/backup`) in a real browser: headless Chromium driven through
//! WebDriver, against the real `coffer serve` and the real PostgreSQL cluster. Screenshots go
//! to `target/browser-screenshots/`.

use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::*;
use crate::serve::{Serve, blocking_hook, served_case};
use crate::webdriver::Browser;

/// A label written to become markup and run script if a page parsed it as HTML.
const HOSTILE_LABEL: &str =
    r#"<img src=x onerror="document.title='pwned'"><b id="injected">bold</b>"#;

/// How long the page may take to show any one state.
const UI_LIMIT: Duration = Duration::from_secs(60);

/// A script that is true when the element matching `css` is shown.
fn shown(css: &str) -> String {
    format!(
        "const e = document.querySelector({}); return !!e && !e.hidden && e.getClientRects().length > 0;",
        json!(css)
    )
}

/// A script that is true when the element matching `css` holds `text`.
fn holds(css: &str, text: &str) -> String {
    format!(
        "const e = document.querySelector({}); return !!e && e.textContent.includes({});",
        json!(css),
        json!(text)
    )
}

/// The table's rows of backups: name, kind, whether it has a Delete button, a lock, a badge.
fn rows(browser: &Browser) -> Vec<Value> {
    browser
        .execute(
            "return [...document.querySelectorAll('#rows tr[data-name]')].map(r => ({
                name: r.dataset.name,
                kind: r.cells[1].textContent,
                state: r.dataset.state || null,
                delete: !!r.querySelector('button.delete'),
                download: !!r.querySelector('button.download'),
                lock: !!r.querySelector('.lock'),
            }));",
            json!([]),
        )
        .as_array()
        .unwrap()
        .clone()
}

/// Signs in on a freshly opened page with `token` and waits for the list (the table or the
/// empty card), which also tells the page the token's role.
fn sign_in(browser: &Browser, page: &str, token: &str) {
    browser.goto(page);
    browser.wait_for("the sign-in form", UI_LIMIT, &shown("#login"));
    browser.type_into("#token", token);
    browser.click("#sign-in");
    browser.wait_for(
        "the backups",
        UI_LIMIT,
        "const app = document.getElementById('app');
         return !app.hidden
             && (!document.getElementById('backups').hidden
                 || !document.getElementById('empty').hidden);",
    );
}

#[test]
fn the_page_is_served_without_a_token_under_a_strict_policy() {
    let (case, _, _, _) = served_case("");
    let server = Serve::start(&case);
    for (path, kind) in [
        ("/admin/backup", "text/html; charset=utf-8"),
        ("/admin/backup.js", "text/javascript; charset=utf-8"),
        ("/admin/backup.css", "text/css; charset=utf-8"),
    ] {
        let mut resp = server
            .agent
            .get(format!("{}{path}", server.base))
            .call()
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200, "{path}");
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_string())
                .unwrap_or_default()
        };
        assert_eq!(header("content-type"), kind);
        assert_eq!(
            header("content-security-policy"),
            "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'; require-trusted-types-for 'script'; trusted-types 'none'"
        );
        assert_eq!(header("x-content-type-options"), "nosniff");
        assert_eq!(header("referrer-policy"), "no-referrer");
        assert_eq!(header("x-frame-options"), "DENY");
        let body = resp.body_mut().read_to_string().unwrap();
        assert!(!body.is_empty());
    }
    // The page holds no data: the API behind it still wants a token.
    let mut resp = server
        .agent
        .get(format!("{}/v1/admin/backup/list", server.base))
        .call()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    let _ = resp.body_mut().read_to_string();
}

#[test]
fn the_page_signs_in_runs_a_backup_live_and_deletes_with_confirmation() {
    let release = tempfile::tempdir().unwrap();
    let go = release.path().join("go");
    // The backup waits in its on_success hook until `go` exists: the running row is there to see.
    let (case, _, admin, _) = served_case(&format!(
        "[hooks]\non_success = [{}]\ntimeout = \"3m\"\n",
        blocking_hook(&go)
    ));
    let server = Serve::start(&case);
    let browser = Browser::start();
    let page = format!("{}/admin/backup", server.base);

    // A wrong token is refused and the form stays.
    browser.goto(&page);
    browser.wait_for("the sign-in form", UI_LIMIT, &shown("#login"));
    browser.type_into("#token", "coffer_not-a-token");
    browser.click("#sign-in");
    browser.wait_for("the 401 message", UI_LIMIT, &holds("#login-error", "401"));
    assert!(
        !browser
            .execute(&shown("#app"), json!([]))
            .as_bool()
            .unwrap()
    );
    assert_eq!(
        browser.execute("return sessionStorage.length", json!([])),
        0
    );

    // A fresh install: the empty card, and the six columns.
    // With the keyboard: Enter (WebDriver's key U+E007) submits the form.
    browser.type_into("#token", &format!("{admin}\u{E007}"));
    browser.wait_for("the empty card", UI_LIMIT, &shown("#empty"));
    assert!(browser.text("#empty").contains("No backups yet…"));
    assert_eq!(
        browser.execute(
            "return [...document.querySelectorAll('#backups thead th')].map(t => t.textContent)",
            json!([])
        ),
        json!(["NAME", "KIND", "CREATED", "SIZE", "DB REVISION", "ACTIONS"])
    );
    assert_eq!(
        browser.execute(
            "return sessionStorage.getItem('coffer.admin.token')",
            json!([])
        ),
        json!(admin)
    );
    browser.screenshot("1-empty");
    // The browser enforces the policy: Trusted Types refuse an HTML sink even to a script
    // that gets into the page.
    assert_eq!(
        browser.execute(
            "try { document.createElement('div').innerHTML = '<b>x</b>'; return 'parsed'; }
             catch (e) { return e.name; }",
            json!([])
        ),
        "TypeError"
    );

    // Run manual backup now: the row is there at once and goes running with live progress.
    browser.click("#run");
    browser.wait_for(
        "a running row with progress from the event stream",
        UI_LIMIT,
        "const r = document.querySelector('#rows tr.job');
         return !!r && r.dataset.state === 'running' && !!r.querySelector('progress')
             && r.querySelector('.progress-text').textContent.includes('database');",
    );
    assert!(
        !browser
            .execute(&shown("#empty"), json!([]))
            .as_bool()
            .unwrap()
    );
    browser.screenshot("2-running");

    // A second run while it runs: the 409's problem document is shown.
    browser.click("#run");
    browser.wait_for("the 409 problem", UI_LIMIT, &shown("#problem"));
    assert_eq!(
        browser.text("#problem-title"),
        "Another run holds the backup root"
    );
    assert!(browser.text("#problem-detail").contains("job"));
    browser.screenshot("3-conflict");
    browser.click("#problem-close");
    // Still held in its hook, both artifacts are finished and the step says what runs now:
    // later events reached the row too.
    browser.wait_for(
        "both artifacts finished and the hooks step in the running row",
        UI_LIMIT,
        "const r = document.querySelector('#rows tr.job');
         const text = !!r && r.querySelector('.progress-text').textContent;
         return !!r && r.dataset.state === 'running' && text.split('✓').length === 3
             && text.endsWith('running the on_success hooks…');",
    );
    browser.screenshot("3b-artifacts-done");

    // Let it finish: the row flips to succeeded.
    std::fs::write(&go, b"").unwrap();
    browser.wait_for(
        "the row flipped to succeeded",
        UI_LIMIT,
        "return !document.querySelector('#rows tr.job')
             && !!document.querySelector('#rows tr[data-name][data-state=\"succeeded\"]');",
    );
    let first = case.backups();
    assert_eq!(first.len(), 1);
    let first_name = first[0].file_name().unwrap().to_string_lossy().into_owned();
    assert_eq!(rows(&browser)[0]["name"], first_name.as_str());
    assert_eq!(rows(&browser)[0]["state"], "succeeded");
    browser.screenshot("4-succeeded");

    // A second manual backup from the page, and an automatic one by the timer's command.
    browser.click("#run");
    browser.wait_for(
        "two backups",
        UI_LIMIT,
        "return document.querySelectorAll('#rows tr[data-name]').length === 2
             && !document.querySelector('#rows tr.job');",
    );
    // A label is anyone's text: it must show as text, never become markup.
    assert_success(&case.run(&["backup", "--label", HOSTILE_LABEL]));
    assert_success(&case.run(&["backup", "--kind", "auto"]));
    browser.goto(&page);
    browser.wait_for(
        "four backups after a reload (the token kept in the tab)",
        UI_LIMIT,
        "return document.querySelectorAll('#rows tr[data-name]').length === 4;",
    );
    assert_eq!(
        browser.execute(
            "return [document.querySelector('#injected') === null, document.title,
                     [...document.querySelectorAll('#rows .label')].map(l => l.textContent)]",
            json!([])
        ),
        json!([true, "Admin · Backup", [HOSTILE_LABEL]])
    );
    let listed = rows(&browser);
    let (auto, manual): (Vec<_>, Vec<_>) = listed.iter().partition(|r| r["kind"] == "auto");
    assert_eq!((auto.len(), manual.len()), (1, 3), "{listed:?}");
    // Automatic rows carry the lock and no Delete; manual ones the reverse.
    assert_eq!(
        (&auto[0]["lock"], &auto[0]["delete"], &auto[0]["download"]),
        (&json!(true), &json!(false), &json!(true)),
        "{listed:?}"
    );
    for row in &manual {
        assert_eq!(row["kind"], "manual", "{listed:?}");
        assert_eq!(
            (&row["lock"], &row["delete"]),
            (&json!(false), &json!(true))
        );
    }
    assert!(listed.iter().any(|r| r["name"] == first_name.as_str()));

    // Delete asks first: Cancel keeps the backup, Delete removes it.
    let delete_button = format!("#rows tr[data-name=\"{first_name}\"] button.delete");
    browser.click(&delete_button);
    browser.wait_for(
        "the confirmation",
        UI_LIMIT,
        "return document.getElementById('delete-dialog').open;",
    );
    assert_eq!(browser.text("#delete-name"), first_name);
    // The safe choice has the focus.
    assert_eq!(
        browser.execute("return document.activeElement.id", json!([])),
        "delete-cancel"
    );
    browser.click("#delete-cancel");
    browser.wait_for(
        "the dialog closed",
        UI_LIMIT,
        "return !document.getElementById('delete-dialog').open;",
    );
    assert_eq!(case.backups().len(), 4);
    browser.click(&delete_button);
    browser.wait_for(
        "the confirmation",
        UI_LIMIT,
        "return document.getElementById('delete-dialog').open;",
    );
    browser.click("#delete-confirm");
    browser.wait_for(
        "the row gone",
        UI_LIMIT,
        "return document.querySelectorAll('#rows tr[data-name]').length === 3;",
    );
    assert_eq!(case.backups().len(), 3);
    assert!(!case.backups().contains(&first[0]));
    browser.screenshot("5-deleted");

    // Download saves the same bundle as `coffer export`.
    let auto_name = auto[0]["name"].as_str().unwrap().to_string();
    let exported = case.dir.path().join("exported.tar");
    assert_success(&case.run(&["export", &auto_name, "--output", exported.to_str().unwrap()]));
    let downloads = tempfile::tempdir().unwrap();
    browser.allow_downloads(downloads.path());
    browser.click(&format!(
        "#rows tr[data-name=\"{auto_name}\"] button.download"
    ));
    let saved = downloads.path().join(format!("{auto_name}.tar"));
    wait_until("the download saved", UI_LIMIT, || {
        saved.exists() && file_names(downloads.path()).len() == 1
    });
    assert_eq!(
        std::fs::read(&saved).unwrap(),
        std::fs::read(&exported).unwrap()
    );

    // On a phone's width every row is a card with its cells labelled.
    browser.resize(390, 844);
    browser.wait_for(
        "rows as cards",
        UI_LIMIT,
        "const td = document.querySelector('#rows td');
         return getComputedStyle(td).display === 'grid'
             && getComputedStyle(td, '::before').content.includes('NAME');",
    );
    browser.screenshot("6-phone");

    // Signing out forgets the token.
    browser.click("#sign-out");
    browser.wait_for("the sign-in form", UI_LIMIT, &shown("#login"));
    assert_eq!(
        browser.execute("return sessionStorage.length", json!([])),
        0
    );
}

#[test]
fn the_page_uploads_a_bundle_and_restores_it_only_after_restore_is_typed() {
    let (case, _, admin, _) = served_case("");
    let backup = case.backup_ok(&[]);
    let name = backup.file_name().unwrap().to_string_lossy().into_owned();
    let bundle = case.dir.path().join("upload.tar");
    assert_success(&case.run(&["export", &name, "--output", bundle.to_str().unwrap()]));
    // As from another host: the root no longer has it (an import never replaces a backup).
    std::fs::remove_dir_all(&backup).unwrap();
    let tables = table_fingerprints(&case.db);
    cluster()
        .psql(
            &case.db,
            "UPDATE users SET display_name = 'changed' WHERE id <= 10",
        )
        .unwrap();
    assert_ne!(table_fingerprints(&case.db), tables);

    let server = Serve::start(&case);
    let browser = Browser::start();
    sign_in(&browser, &format!("{}/admin/backup", server.base), &admin);
    browser.click("#upload-open");
    browser.wait_for(
        "the upload dialog",
        UI_LIMIT,
        "return document.getElementById('upload-dialog').open;",
    );
    assert!(browser.text("#upload-limit").contains("10 GB"));
    assert!(
        browser
            .text(".warning")
            .contains("replaces the database and the workspace")
    );
    let restore_enabled = || {
        !browser
            .execute(
                "return document.getElementById('upload-restore').disabled",
                json!([]),
            )
            .as_bool()
            .unwrap()
    };
    assert!(!restore_enabled());
    browser.type_into("#upload-file", bundle.to_str().unwrap());
    assert!(!restore_enabled(), "enabled before `restore` was typed");
    for almost in ["Restore", "restor", "restore "] {
        browser.clear("#upload-confirm");
        browser.type_into("#upload-confirm", almost);
        assert!(!restore_enabled(), "enabled by {almost:?}");
    }
    browser.clear("#upload-confirm");
    browser.type_into("#upload-confirm", "restore");
    assert!(restore_enabled());
    browser.screenshot("7-upload-armed");
    browser.click("#upload-restore");
    browser.wait_for(
        "the restore's outcome",
        UI_LIMIT,
        "return !!document.getElementById('upload-dialog').dataset.outcome;",
    );
    browser.screenshot("8-restored");
    assert_eq!(
        browser.execute(
            "return document.getElementById('upload-dialog').dataset.outcome",
            json!([])
        ),
        "succeeded",
        "{}",
        browser.text("#upload-dialog")
    );
    assert_eq!(table_fingerprints(&case.db), tables);
    // The imported backup is listed again.
    browser.wait_for(
        "the imported backup in the table",
        UI_LIMIT,
        &format!("return !!document.querySelector('#rows tr[data-name=\"{name}\"]');"),
    );
}

#[test]
fn a_viewer_sees_the_backups_and_download_but_no_admin_action() {
    let (case, _, admin, viewer) = served_case("");
    let manual = case.backup_ok(&[]);
    let manual = manual.file_name().unwrap().to_string_lossy().into_owned();
    assert_success(&case.run(&["backup", "--kind", "auto"]));
    let server = Serve::start(&case);
    let browser = Browser::start();
    let page = format!("{}/admin/backup", server.base);
    // What an element looks like: absent, present but hidden, or shown.
    let admin_controls = |browser: &Browser| {
        browser.execute(
            "const seen = (e) => e === null ? 'absent'
                 : (!e.hidden && e.getClientRects().length > 0 ? 'shown' : 'hidden');
             return {
                 run: seen(document.getElementById('run')),
                 upload: seen(document.getElementById('upload-open')),
                 deletes: document.querySelectorAll('#rows button.delete').length,
             };",
            json!([]),
        )
    };

    sign_in(&browser, &page, &viewer);
    let listed = rows(&browser);
    assert_eq!(listed.len(), 2, "{listed:?}");
    for row in &listed {
        assert_eq!(
            (&row["download"], &row["delete"]),
            (&json!(true), &json!(false)),
            "{listed:?}"
        );
    }
    assert!(listed.iter().any(|r| r["name"] == manual.as_str()));
    // Hidden, not merely disabled: a viewer is not offered what would answer 403.
    assert_eq!(
        admin_controls(&browser),
        json!({"run": "hidden", "upload": "hidden", "deletes": 0})
    );
    browser.screenshot("9-viewer");

    // The same tab signed in again with an admin token gets every action back, and a viewer
    // after it loses them again.
    browser.click("#sign-out");
    sign_in(&browser, &page, &admin);
    assert_eq!(
        admin_controls(&browser),
        json!({"run": "shown", "upload": "shown", "deletes": 1})
    );
    browser.click("#sign-out");
    sign_in(&browser, &page, &viewer);
    assert_eq!(
        admin_controls(&browser),
        json!({"run": "hidden", "upload": "hidden", "deletes": 0})
    );
}

#[test]
fn the_page_with_a_trailing_slash_redirects_to_the_page() {
    let (case, _, _, _) = served_case("");
    let server = Serve::start(&case);
    // Not followed: the redirect itself, relative so that it works under a proxy's prefix.
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(UI_LIMIT))
        .build()
        .into();
    let mut resp = agent
        .get(format!("{}/admin/backup/", server.base))
        .call()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 308);
    assert_eq!(
        resp.headers()
            .get("location")
            .map(|v| v.to_str().unwrap().to_string()),
        Some("../backup".to_string())
    );
    let _ = resp.body_mut().read_to_string();

    // A browser lands on the page, its script and style loaded (the sign-in form is shown by
    // the script).
    let browser = Browser::start();
    browser.goto(&format!("{}/admin/backup/", server.base));
    browser.wait_for("the sign-in form", UI_LIMIT, &shown("#login"));
    assert_eq!(
        browser.execute("return location.pathname", json!([])),
        "/admin/backup"
    );
    assert_eq!(
        browser.execute(
            "return getComputedStyle(document.querySelector('.toolbar .actions')).display",
            json!([])
        ),
        "flex",
        "the style sheet did not load"
    );
}
