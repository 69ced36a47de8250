//! A minimal WebDriver client (the W3C protocol over `ureq`) driving Debian's headless
//! Chromium through `chromedriver`: the few commands the page's test needs, every one
//! bounded. Smaller than fantoccini, which would bring an async runtime and a second HTTP
//! stack into the tests.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// How long one WebDriver command may take.
const COMMAND_LIMIT: Duration = Duration::from_secs(60);

/// The key under which WebDriver returns an element reference.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A headless Chromium session; chromedriver and the browser are ended on drop.
pub struct Browser {
    driver: Child,
    url: String,
    agent: ureq::Agent,
    /// The fresh, empty profile directory of this browser.
    _profile: tempfile::TempDir,
    screenshots: PathBuf,
}

/// A reference to an element of the current page.
#[derive(Clone)]
pub struct Element(String);

impl Browser {
    /// Starts chromedriver on a free loopback port and a headless Chromium through it.
    /// Fails with how to install them when they are missing.
    pub fn start() -> Browser {
        for file in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                Path::new(file).exists(),
                "{file} is missing: the admin page's test drives a real browser; install Debian's packages with `apt-get install -y chromium chromium-driver`"
            );
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group: the browser it starts is ended with it on drop.
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {CHROMEDRIVER}: {e}"));
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(COMMAND_LIMIT))
            .build()
            .into();
        let profile = tempfile::tempdir().unwrap();
        let screenshots = PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../target/browser-screenshots"
        ));
        std::fs::create_dir_all(&screenshots).unwrap();
        let mut browser = Browser {
            driver,
            url: format!("http://127.0.0.1:{port}"),
            agent,
            _profile: profile,
            screenshots,
        };
        browser.wait_for_driver();
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-breakpad",
            "--window-size=1280,900",
        ]
        .iter()
        .map(|a| a.to_string())
        .chain([format!(
            "--user-data-dir={}",
            browser._profile.path().display()
        )])
        .collect::<Vec<_>>();
        let session = browser.command(
            "POST",
            "/session",
            json!({"capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {"binary": CHROMIUM, "args": args},
                "timeouts": {"script": 30_000, "pageLoad": 30_000, "implicit": 0},
            }}}),
        );
        let id = session["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("chromedriver did not start a session: {session}"))
            .to_string();
        browser.url = format!("{}/session/{id}", browser.url);
        browser
    }

    fn wait_for_driver(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(mut resp) = self.agent.get(format!("{}/status", self.url)).call()
                && let Ok(body) = resp.body_mut().read_json::<Value>()
                && body["value"]["ready"] == true
            {
                return;
            }
            if let Ok(Some(status)) = self.driver.try_wait() {
                panic!("{CHROMEDRIVER} exited at start ({status})");
            }
            assert!(
                Instant::now() < deadline,
                "{CHROMEDRIVER} was not ready within 30s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// One WebDriver command: its `value`, or a panic with the driver's error.
    fn command(&self, method: &str, path: &str, body: Value) -> Value {
        let url = format!("{}{path}", self.url);
        let mut resp = match method {
            "GET" => self.agent.get(&url).call(),
            "DELETE" => self.agent.delete(&url).call(),
            _ => self.agent.post(&url).send_json(&body),
        }
        .unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}"));
        let status = resp.status().as_u16();
        let answer: Value = resp
            .body_mut()
            .with_config()
            .limit(64 << 20)
            .read_json()
            .unwrap_or_else(|e| panic!("WebDriver {method} {path}: unreadable answer: {e}"));
        assert!(
            status == 200,
            "WebDriver {method} {path} failed ({status}): {}",
            answer["value"]
        );
        answer["value"].clone()
    }

    /// Opens `url` and waits for it to load.
    pub fn goto(&self, url: &str) {
        self.command("POST", "/url", json!({ "url": url }));
    }

    /// Runs `script` (a function body; `arguments` holds `args`) in the page.
    pub fn execute(&self, script: &str, args: Value) -> Value {
        self.command(
            "POST",
            "/execute/sync",
            json!({ "script": script, "args": args }),
        )
    }

    /// The first element matching `css`.
    pub fn find(&self, css: &str) -> Element {
        let found = self.command(
            "POST",
            "/element",
            json!({ "using": "css selector", "value": css }),
        );
        Element(found[ELEMENT_KEY].as_str().unwrap().to_string())
    }

    /// Clicks the element matching `css`.
    pub fn click(&self, css: &str) {
        let Element(id) = self.find(css);
        self.command("POST", &format!("/element/{id}/click"), json!({}));
    }

    /// Types `text` into the element matching `css` (for a file input: the file's path).
    pub fn type_into(&self, css: &str, text: &str) {
        let Element(id) = self.find(css);
        self.command(
            "POST",
            &format!("/element/{id}/value"),
            json!({ "text": text }),
        );
    }

    /// Empties the input matching `css`.
    pub fn clear(&self, css: &str) {
        let Element(id) = self.find(css);
        self.command("POST", &format!("/element/{id}/clear"), json!({}));
    }

    /// The rendered text of the element matching `css`.
    pub fn text(&self, css: &str) -> String {
        let Element(id) = self.find(css);
        self.command("GET", &format!("/element/{id}/text"), Value::Null)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Polls `condition` (a script returning a boolean) until it holds, within `limit`.
    pub fn wait_for(&self, what: &str, limit: Duration, condition: &str) {
        let deadline = Instant::now() + limit;
        loop {
            if self.execute(condition, json!([])) == true {
                return;
            }
            if Instant::now() >= deadline {
                self.screenshot("timed-out");
                panic!(
                    "the page did not show {what} within {limit:?}; its text:\n{}",
                    self.execute("return document.body.innerText", json!([]))
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Resizes the window (e.g. to a phone's width).
    pub fn resize(&self, width: u32, height: u32) {
        self.command(
            "POST",
            "/window/rect",
            json!({ "width": width, "height": height }),
        );
    }

    /// Lets the page's downloads be saved into `dir` (Chromium's DevTools command; headless
    /// Chromium otherwise drops them).
    pub fn allow_downloads(&self, dir: &Path) {
        self.command(
            "POST",
            "/goog/cdp/execute",
            json!({"cmd": "Browser.setDownloadBehavior", "params": {
                "behavior": "allow", "downloadPath": dir, "eventsEnabled": false,
            }}),
        );
    }

    /// Saves a PNG of the viewport as `target/browser-screenshots/NAME.png`.
    pub fn screenshot(&self, name: &str) -> PathBuf {
        use ct_codecs::{Base64, Decoder};
        let encoded = self.command("GET", "/screenshot", Value::Null);
        let png = Base64::decode_to_vec(encoded.as_str().unwrap(), None).unwrap();
        let path = self.screenshots.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        path
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Ends the session (chromedriver quits Chromium), then the whole process group.
        if self.url.contains("/session/") {
            let _ = self
                .agent
                .delete(&self.url)
                .config()
                .timeout_global(Some(Duration::from_secs(10)))
                .build()
                .call();
        }
        let group = rustix::process::Pid::from_child(&self.driver);
        let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
        let _ = self.driver.wait();
    }
}
