//! End to end in a real headless Chromium, driven through chromedriver's WebDriver API: the
//! Google Integration page of `host-sim serve`, the popup to the fake Google's consent page,
//! the indicator turning green, contacts, an incoming call, the address book (text search with
//! groups, keypad search typed and on the on-screen keypad, a bad keypad query, paging), a
//! revoked grant (yellow !), Disable (red X), Deny, and a blocked pop-up. Screenshots of each
//! state go to `target/e2e-artifacts/`.
//!
//! Needs Debian's `chromium` and `chromium-driver` (CI installs them). Without them the test
//! fails and says so. Chromium runs with a dead proxy for every non-loopback host and with its
//! background networking off, so nothing leaves the machine.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_host-sim");
const PATIENCE: Duration = Duration::from_secs(30);

fn find_program(env_var: &str, names: &[&str]) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(env_var) {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path).chain([
        PathBuf::from("/usr/bin"),
        PathBuf::from("/usr/lib/chromium"),
    ]) {
        for name in names {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Some(candidate);
            }
        }
    }
    None
}

fn artifacts() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("the target directory")
        .join("e2e-artifacts");
    std::fs::create_dir_all(&dir).expect("create target/e2e-artifacts");
    dir
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// A child process stopped with SIGTERM (then killed) when dropped.
struct Proc {
    child: Child,
    name: &'static str,
    output: Arc<Mutex<String>>,
}

impl Proc {
    fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            // SAFETY: signalling our own child by its pid.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!("{} did not stop on SIGTERM; killing it", self.name);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `host-sim serve` on a free port; returns it and the page's URL.
fn start_host_sim(data_dir: &Path) -> (Proc, String) {
    let mut child = Command::new(BIN)
        .args(["serve", "--bind", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start host-sim serve");
    let output = Arc::new(Mutex::new(String::new()));
    let (url_tx, url_rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let out = output.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(url) = line.strip_prefix("Google Integration page: ") {
                let _ = url_tx.send(url.trim().to_string());
            }
            out.lock().unwrap().push_str(&format!("{line}\n"));
        }
    });
    let out = output.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            out.lock().unwrap().push_str(&format!("[stderr] {line}\n"));
        }
    });
    let proc = Proc {
        child,
        name: "host-sim",
        output,
    };
    let url = url_rx
        .recv_timeout(PATIENCE)
        .unwrap_or_else(|_| panic!("host-sim serve printed no URL:\n{}", proc.output()));
    (proc, url)
}

// ---------------------------------------------------------------------------------------------
// A small WebDriver client over std TcpStream (chromedriver on 127.0.0.1).
// ---------------------------------------------------------------------------------------------

struct Driver {
    port: u16,
    session: String,
    _process: Proc,
}

fn http(port: u16, method: &str, path: &str, body: Option<&Value>) -> Result<(u16, Value), String> {
    let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .map_err(|e| e.to_string())?;
    let body = body.map(Value::to_string).unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .map_err(|e| e.to_string())?;
    // chromedriver keeps the connection open whatever the request says: read the header, then
    // exactly Content-Length bytes (or chunks up to the last one).
    let mut raw = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let split = loop {
        if let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = stream.read(&mut buf).map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("chromedriver closed the connection without an answer".into());
        }
        raw.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    let length = head.lines().find_map(|l| {
        l.strip_prefix("content-length:")
            .and_then(|v| v.trim().parse::<usize>().ok())
    });
    let chunked =
        head.contains("transfer-encoding: chunked") || head.contains("transfer-encoding:chunked");
    let mut payload = raw[split + 4..].to_vec();
    loop {
        let complete = match length {
            Some(len) => payload.len() >= len,
            None if chunked => payload.windows(5).any(|w| w == b"0\r\n\r\n"),
            None => false,
        };
        if complete {
            break;
        }
        let n = stream.read(&mut buf).map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        payload.extend_from_slice(&buf[..n]);
    }
    if chunked {
        payload = dechunk(&payload);
    }
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let value = serde_json::from_slice(&payload).unwrap_or(Value::Null);
    Ok((status, value))
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(end) = data.windows(2).position(|w| w == b"\r\n") {
        let size =
            usize::from_str_radix(String::from_utf8_lossy(&data[..end]).trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = end + 2;
        out.extend_from_slice(&data[start..(start + size).min(data.len())]);
        data = &data[(start + size + 2).min(data.len())..];
    }
    out
}

impl Driver {
    fn start(chromium: &Path, chromedriver: &Path, profile: &Path) -> Driver {
        let port = free_port();
        let child = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", chromedriver.display()));
        let process = Proc {
            child,
            name: "chromedriver",
            output: Arc::default(),
        };
        let start = Instant::now();
        loop {
            if let Ok((200, v)) = http(port, "GET", "/status", None) {
                if v["value"]["ready"] == true {
                    break;
                }
            }
            assert!(
                start.elapsed() < PATIENCE,
                "chromedriver did not start on port {port}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let args = [
            "--headless=new".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-dev-shm-usage".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--no-default-browser-check".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--disable-extensions".into(),
            "--disable-default-apps".into(),
            "--disable-domain-reliability".into(),
            "--disable-client-side-phishing-detection".into(),
            "--metrics-recording-only".into(),
            // Every host but loopback goes to a proxy nobody runs: nothing leaves the machine.
            "--proxy-server=http://127.0.0.1:9".into(),
            "--window-size=1200,1000".into(),
            "--lang=en-US".into(),
            format!("--user-data-dir={}", profile.display()),
        ];
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium, "args": args},
        }}});
        let (status, v) = http(port, "POST", "/session", Some(&caps)).expect("new session");
        let session = v["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("chromedriver refused a session ({status}): {v}"))
            .to_string();
        Driver {
            port,
            session,
            _process: process,
        }
    }

    fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let full = format!("/session/{}{path}", self.session);
        let (status, v) = http(self.port, method, &full, body.as_ref())?;
        if status == 200 {
            Ok(v["value"].clone())
        } else {
            Err(format!("{method} {path}: {status} {}", v["value"]))
        }
    }

    fn ok(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.cmd(method, path, body)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn goto(&self, url: &str) {
        self.ok("POST", "/url", Some(json!({ "url": url })));
    }

    fn find(&self, css: &str) -> Result<String, String> {
        let v = self.cmd(
            "POST",
            "/element",
            Some(json!({"using": "css selector", "value": css})),
        )?;
        v.as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| format!("no element id for {css}: {v}"))
    }

    fn click(&self, css: &str) {
        let id = self.wait_for(css);
        self.ok("POST", &format!("/element/{id}/click"), Some(json!({})));
    }

    fn type_into(&self, css: &str, text: &str) {
        let id = self.wait_for(css);
        self.ok("POST", &format!("/element/{id}/clear"), Some(json!({})));
        self.ok(
            "POST",
            &format!("/element/{id}/value"),
            Some(json!({ "text": text })),
        );
    }

    fn wait_for(&self, css: &str) -> String {
        let start = Instant::now();
        loop {
            match self.find(css) {
                Ok(id) => return id,
                Err(e) if start.elapsed() > PATIENCE => panic!("{css} never appeared: {e}"),
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    fn js(&self, script: &str) -> Value {
        self.ok(
            "POST",
            "/execute/sync",
            Some(json!({ "script": script, "args": [] })),
        )
    }

    fn text(&self, id: &str) -> String {
        self.js(&format!(
            "const e = document.getElementById('{id}'); return e ? e.textContent : null;"
        ))
        .as_str()
        .unwrap_or_default()
        .to_string()
    }

    fn handles(&self) -> Vec<String> {
        self.ok("GET", "/window/handles", None)
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|h| h.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn switch_to(&self, handle: &str) {
        self.ok("POST", "/window", Some(json!({ "handle": handle })));
    }

    fn screenshot(&self, name: &str) {
        let data = self.ok("GET", "/screenshot", None);
        let png = base64::engine::general_purpose::STANDARD
            .decode(data.as_str().unwrap_or_default())
            .expect("a base64 PNG");
        let path = artifacts().join(format!("{name}.png"));
        std::fs::write(&path, png).expect("write the screenshot");
        eprintln!("screenshot: {}", path.display());
    }

    fn set_size(&self, width: u32, height: u32) {
        self.ok(
            "POST",
            "/window/rect",
            Some(json!({ "width": width, "height": height })),
        );
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = http(
            self.port,
            "DELETE",
            &format!("/session/{}", self.session),
            None,
        );
    }
}

/// Waits until `done` holds; on timeout fails with the page's state and host-sim's output.
fn wait(driver: &Driver, host: &Proc, what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < PATIENCE {
        if done() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    if let Ok(data) = driver.cmd("GET", "/screenshot", None) {
        if let Ok(png) =
            base64::engine::general_purpose::STANDARD.decode(data.as_str().unwrap_or_default())
        {
            let _ = std::fs::write(artifacts().join("failure.png"), png);
        }
    }
    panic!(
        "timed out waiting until {what}\nstatus: {:?} / {:?}\nmessage: {:?}\nreason: {:?}\nhost-sim:\n{}",
        driver.js("return document.getElementById('status').dataset.status"),
        driver.text("status-text"),
        driver.text("message"),
        driver.text("reason"),
        host.output()
    );
}

/// One row of the address book as the page shows it.
#[derive(Debug)]
struct BookRow {
    name: String,
    company: String,
    label: String,
    number: String,
    groups: Vec<String>,
    from: String,
}

fn book_rows(driver: &Driver) -> Vec<BookRow> {
    let rows = driver.js(
        "return [...document.querySelectorAll('#book-rows .contact')].map((li) => {
           const t = (sel) => li.querySelector(sel)?.textContent ?? '';
           return { name: t('.name'), company: t('.company'), label: t('.label'),
                    number: t('.number'), from: t('.from'),
                    groups: [...li.querySelectorAll('.chip')].map((c) => c.textContent) };
         });",
    );
    let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
    rows.as_array()
        .map(|rows| {
            rows.iter()
                .map(|r| BookRow {
                    name: s(&r["name"]),
                    company: s(&r["company"]),
                    label: s(&r["label"]),
                    number: s(&r["number"]),
                    from: s(&r["from"]),
                    groups: r["groups"]
                        .as_array()
                        .map(|g| g.iter().map(s).collect())
                        .unwrap_or_default(),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The address book's state: "rows", "empty" or "error" once a search has answered.
fn book_state(driver: &Driver) -> String {
    driver
        .js("return document.getElementById('book-card').dataset.state || ''")
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn status_is(driver: &Driver, status: &str) -> bool {
    driver.js("return document.getElementById('status').dataset.status") == status
}

/// Clicks "Get auth code", and in the popup picks `email` and clicks `button` (allow/deny).
fn consent(
    driver: &Driver,
    host: &Proc,
    main: &str,
    email: &str,
    button: &str,
    shot: Option<&str>,
) {
    driver.click("#get-auth-code");
    let mut popup = None;
    wait(driver, host, "the consent popup opens", || {
        popup = driver.handles().into_iter().find(|h| h != main);
        popup.is_some()
    });
    driver.switch_to(popup.as_deref().unwrap());
    driver.wait_for("#allow");
    driver.click(&format!("input[id=\"user-{email}\"]"));
    if let Some(name) = shot {
        driver.screenshot(name);
    }
    // The click navigates to host-sim's callback, whose page closes the popup: on a slow
    // machine that can happen before chromedriver answers the click, which is fine.
    let id = driver.wait_for(&format!("#{button}"));
    if let Err(e) = driver.cmd("POST", &format!("/element/{id}/click"), Some(json!({}))) {
        assert!(
            e.contains("no such window") || e.contains("target window already closed"),
            "{e}"
        );
    }
    driver.switch_to(main);
    // Headless Chromium once dropped that click in CI: the popup stayed on
    // the consent page and host-sim never saw the callback. A popup still showing the button
    // after a while gets the click again from the page's own script, and says so.
    let popup = popup.unwrap();
    let started = Instant::now();
    let mut clicked_again = false;
    wait(driver, host, "the popup closes itself", || {
        let handles = driver.handles();
        if handles.len() == 1 {
            return true;
        }
        if !clicked_again && started.elapsed() > CLICK_AGAIN_AFTER && handles.contains(&popup) {
            clicked_again = true;
            // The popup may close meanwhile: switching to it then fails, and that is fine.
            let switched = driver.cmd("POST", "/window", Some(json!({ "handle": popup })));
            if switched.is_ok() {
                // What the popup shows, for whoever reads a failure.
                let at = driver.cmd("GET", "/url", None).unwrap_or_default();
                eprintln!("the popup is still open after {CLICK_AGAIN_AFTER:?}, at {at}");
            }
            if switched.is_ok() && driver.find(&format!("#{button}")).is_ok() {
                eprintln!("the popup still shows #{button}: clicking it again from the page");
                let script = format!("document.getElementById('{button}').click()");
                let _ = driver.cmd(
                    "POST",
                    "/execute/sync",
                    Some(json!({ "script": script, "args": [] })),
                );
            }
            driver.switch_to(main);
        }
        false
    });
}

/// How long a popup may take to close after the consent click before the click is repeated.
const CLICK_AGAIN_AFTER: Duration = Duration::from_secs(10);

#[test]
fn the_google_integration_page_in_headless_chromium() {
    let chromium = find_program("CHROMIUM", &["chromium", "chromium-browser"]);
    let chromedriver = find_program("CHROMEDRIVER", &["chromedriver"]);
    let (Some(chromium), Some(chromedriver)) = (chromium, chromedriver) else {
        panic!(
            "this end-to-end test needs Chromium and its WebDriver: install them with\n  \
             apt-get install -y chromium chromium-driver\n(or point CHROMIUM and CHROMEDRIVER at them)"
        );
    };
    let dir = tempfile::tempdir().unwrap();
    let (host, url) = start_host_sim(&dir.path().join("data"));
    let driver = Driver::start(
        &chromium,
        &chromedriver,
        &dir.path().join("chromium-profile"),
    );
    driver.goto(&url);
    let main = driver
        .ok("GET", "/window", None)
        .as_str()
        .unwrap()
        .to_string();

    // Red X at first, for the default account example.com; Disable hidden.
    wait(
        &driver,
        &host,
        "the page shows example.com disconnected",
        || {
            status_is(&driver, "disconnected")
                && driver.js("return document.getElementById('account').value") == "example.com"
        },
    );
    assert_eq!(driver.text("status-icon"), "✗");
    assert_eq!(
        driver.js("return document.getElementById('disable').hidden"),
        true
    );
    wait(&driver, &host, "the address book says it is empty", || {
        book_state(&driver) == "empty"
    });
    assert!(
        driver.text("book-summary").contains("No contacts"),
        "{}",
        driver.text("book-summary")
    );
    driver.screenshot("01-disconnected");

    // Connect through the popup: Allow as alice.
    consent(
        &driver,
        &host,
        &main,
        "alice@example.com",
        "allow",
        Some("02-consent-page"),
    );
    wait(
        &driver,
        &host,
        "the indicator turns green with contacts",
        || {
            status_is(&driver, "connected")
                && driver
                    .text("contacts")
                    .replace(',', "")
                    .parse::<u32>()
                    .unwrap_or(0)
                    > 0
                && driver.text("last-sync") != "never"
        },
    );
    assert_eq!(driver.text("status-icon"), "✓");
    assert!(
        driver.text("message").contains("connected"),
        "{}",
        driver.text("message")
    );
    assert_eq!(
        driver.js("return document.getElementById('disable').hidden"),
        false
    );
    driver.screenshot("03-connected");
    // The address book searched again when the first sync came in.
    wait(
        &driver,
        &host,
        "the address book fills after the sync",
        || book_state(&driver) == "rows" && !book_rows(&driver).is_empty(),
    );

    // An incoming call, typed as a person would.
    driver.type_into("#call-number", "0044 7700 900123");
    driver.click("#call-ring");
    wait(&driver, &host, "the caller's name shows", || {
        driver.text("call-name") == "Emma Thompson"
    });
    let shown = driver.text("call-result");
    assert!(
        shown.contains("Thompson & Lane Ltd") && shown.contains("+447700900123"),
        "{shown}"
    );
    driver.screenshot("04-incoming-call");
    driver.type_into("#call-number", "+1 900 555 0100");
    driver.click("#call-ring");
    wait(&driver, &host, "an unknown caller shows", || {
        driver.text("call-name") == "Unknown caller"
    });

    // The same page at phone width.
    driver.type_into("#call-number", "tel:+1-212-555-0142");
    driver.click("#call-ring");
    wait(&driver, &host, "the caller's name shows", || {
        driver.text("call-name") == "Liam O'Connor"
    });
    driver.set_size(390, 1100);
    driver.screenshot("05-phone-width");
    let overflow =
        driver.js("return document.documentElement.scrollWidth <= window.innerWidth + 1");
    assert_eq!(
        overflow, true,
        "no sideways scrolling on a phone-sized screen"
    );
    driver.set_size(1200, 1000);

    address_book(&driver, &host);
    calendar_presence(&driver, &host);

    // Revoke alice's grant at the fake Google from the developer panel, then Sync now: yellow !.
    assert_eq!(
        driver.js("return document.getElementById('fault-user').value"),
        "alice@example.com"
    );
    driver.click("#fault-revoke");
    wait(&driver, &host, "the fake reports the revocation", || {
        driver
            .text("fault-state")
            .contains("removed this app's access")
    });
    driver.click("#sync-now");
    wait(&driver, &host, "the indicator turns yellow", || {
        status_is(&driver, "issue")
    });
    assert_eq!(driver.text("status-icon"), "!");
    let reason = driver.text("reason");
    let explained = reason.trim_start_matches("What happened, and what to do");
    assert!(
        explained.len() > 20,
        "the plugin's reason is shown: {reason}"
    );
    assert!(
        driver.text("contacts") != "0",
        "contacts stay while the issue is fixed"
    );
    driver.js("window.scrollTo(0, 0)");
    driver.screenshot("06-issue-revoked");

    // Disable: red X, Disable hidden again.
    driver.click("#disable");
    wait(
        &driver,
        &host,
        "the indicator turns red after Disable",
        || status_is(&driver, "disconnected") && driver.text("contacts") == "0",
    );
    assert_eq!(driver.text("status-icon"), "✗");
    assert_eq!(
        driver.js("return document.getElementById('disable').hidden"),
        true
    );
    // Its contacts left the address book too.
    wait(
        &driver,
        &host,
        "the address book empties after Disable",
        || book_state(&driver) == "empty" && book_rows(&driver).is_empty(),
    );
    driver.screenshot("07-disabled");

    // Deny: a message, and the indicator stays red.
    consent(&driver, &host, &main, "alice@example.com", "deny", None);
    wait(&driver, &host, "the page says access was denied", || {
        driver.text("message").contains("denied")
    });
    assert!(status_is(&driver, "disconnected"));
    assert_eq!(
        driver.js("return document.getElementById('message').className"),
        "message error"
    );
    driver.screenshot("08-denied");

    // A blocked pop-up is explained.
    driver.js("window.open = () => null;");
    driver.click("#get-auth-code");
    wait(
        &driver,
        &host,
        "the page explains the blocked pop-up",
        || driver.text("message").contains("blocked the pop-up"),
    );
    driver.screenshot("09-popup-blocked");

    // Nothing the page or host-sim showed carries a token or a code.
    let log = host.output();
    for secret in ["code=", "GOCSPX-", "ya29.", "1//0"] {
        assert!(!log.contains(secret), "host-sim printed `{secret}`:\n{log}");
    }
}

fn presence_of(driver: &Driver) -> String {
    driver
        .js("return document.getElementById('presence').dataset.presence")
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Calendar presence of example.com (alice's calendar, fetched since the connect): free with
/// nothing booked; a meeting booked from the developer panel turns it busy, clearing the
/// meetings frees it; the Calendar API disabled turns the account yellow naming the Calendar
/// API, and clearing the fault turns it green again. Leaves the developer panel open.
fn calendar_presence(driver: &Driver, host: &Proc) {
    driver.js("window.scrollTo(0, 0)");
    wait(driver, host, "the page shows alice free", || {
        presence_of(driver) == "free"
    });
    assert_eq!(driver.text("presence-text"), "free");
    driver.click("#dev-panel summary");
    driver.type_into("#meeting-start", "0");
    driver.type_into("#meeting-length", "30");
    driver.click("#fault-busy");
    wait(driver, host, "the fake books the meeting", || {
        driver.text("fault-state").contains("alice@example.com")
    });
    driver.click("#sync-now");
    wait(driver, host, "the page shows alice busy", || {
        presence_of(driver) == "busy"
    });
    let shown = driver.text("presence-text");
    assert!(shown.starts_with("busy until "), "{shown}");
    driver.js("window.scrollTo(0, 0)");
    driver.screenshot("05f-presence-busy");

    driver.click("#fault-free");
    driver.click("#sync-now");
    wait(driver, host, "the page shows alice free again", || {
        presence_of(driver) == "free"
    });

    contact_sources(driver, host);

    driver.click("#fault-calendar-disabled");
    driver.click("#sync-now");
    wait(
        driver,
        host,
        "the Calendar API's problem turns the indicator yellow",
        || status_is(driver, "issue") && driver.text("reason").contains("Google Calendar API"),
    );
    driver.js("window.scrollTo(0, 0)");
    driver.screenshot("05g-presence-calendar-disabled");
    driver.click("#fault-clear");
    driver.click("#sync-now");
    wait(driver, host, "the next good answer turns it green", || {
        status_is(driver, "connected")
    });
}

/// The contact sources of example.com (its contacts, its Workspace directory and its other
/// contacts, as the fake's configuration has it): a line each with its counts; a directory
/// that keeps failing turns the account yellow naming the directory, shows on its own line,
/// and leaves the contacts answering; clearing it turns the account green again.
fn contact_sources(driver: &Driver, host: &Proc) {
    let line = |source: &str| {
        driver
            .js(&format!(
                "const li = document.querySelector('#sources li[data-source=\"{source}\"]');
                 return li ? li.className + '|' + li.textContent : ''"
            ))
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    wait(driver, host, "a line for each contact source", || {
        line("directory").contains("29 contacts") && line("contacts").contains(" contacts")
    });
    assert!(
        line("other_contacts").contains("0 contacts"),
        "{}",
        line("other_contacts")
    );
    driver.click("#fault-directory-sticky");
    driver.click("#sync-now");
    wait(
        driver,
        host,
        "a failing directory turns the indicator yellow on its own line",
        || {
            status_is(driver, "issue")
                && driver.text("reason").contains("Workspace directory")
                && line("directory").starts_with("failed|")
        },
    );
    assert!(
        !line("contacts").starts_with("failed"),
        "{}",
        line("contacts")
    );
    assert!(
        line("directory").contains("29 contacts"),
        "its contacts stay"
    );
    driver.js("document.getElementById('sources').scrollIntoView()");
    driver.screenshot("05h-source-failing");
    driver.click("#fault-clear");
    driver.click("#sync-now");
    wait(driver, host, "the next good sync turns it green", || {
        status_is(driver, "connected") && !line("directory").starts_with("failed")
    });
}

/// The address book of example.com (alice's contacts, synced): text search as the user types,
/// with group chips; a group and an email-only contact; keypad digits typed and pressed on the
/// on-screen keypad; a bad keypad query; paging; the phone-sized screen.
fn address_book(driver: &Driver, host: &Proc) {
    let show_book = || driver.js("document.getElementById('book-card').scrollIntoView()");

    // Text: the start of a word, accents ignored; the groups show as chips.
    driver.type_into("#book-query", "mül");
    wait(
        driver,
        host,
        "the address book finds Jürgen Müller",
        || book_rows(driver).iter().any(|r| r.name == "Jürgen Müller"),
    );
    let rows = book_rows(driver);
    let jurgen = rows.iter().find(|r| r.name == "Jürgen Müller").unwrap();
    assert_eq!(jurgen.company, "Müller Maschinenbau GmbH");
    assert_eq!(jurgen.number, "+498912345678");
    assert_eq!(jurgen.label, "work");
    assert_eq!(jurgen.groups, ["Customers", "Suppliers"]);
    assert_eq!(
        jurgen.from, "",
        "example.com's own contact names no other account"
    );
    for r in &rows {
        let words = format!("{} {}", r.name, r.company).to_lowercase();
        assert!(words.contains("müller"), "{r:?} does not match mül");
    }
    assert!(
        driver.text("book-summary").contains("for “mül”"),
        "{}",
        driver.text("book-summary")
    );
    show_book();
    driver.screenshot("05a-address-book-text");

    // A group's name finds its members; a contact with only an email address shows it as its name.
    driver.type_into("#book-query", "suppliers");
    wait(driver, host, "the Suppliers group is listed", || {
        let rows = book_rows(driver);
        rows.len() > 1
            && rows
                .iter()
                .all(|r| r.groups.iter().any(|g| g == "Suppliers"))
    });
    driver.type_into("#book-query", "orders");
    wait(driver, host, "the email-only contact is found", || {
        book_rows(driver)
            .iter()
            .any(|r| r.name == "orders@globex-freight.example" && r.number == "+13035550123")
    });

    // Keypad: the toggle empties the box and shows the keypad; 6855 spells MULL.
    driver.click("#book-keypad");
    wait(driver, host, "the keypad shows", || {
        driver.js("return document.getElementById('keypad').hidden") == false
            && driver.js("return document.getElementById('book-query').value") == ""
    });
    assert_eq!(
        driver.js("return document.getElementById('book-keypad').getAttribute('aria-pressed')"),
        "true"
    );
    driver.type_into("#book-query", "6855");
    wait(driver, host, "keypad 6855 finds Jürgen Müller", || {
        let rows = book_rows(driver);
        rows.iter().any(|r| r.name == "Jürgen Müller")
            && driver.text("book-summary").contains("6855 on the keypad")
    });
    // Pressed on the on-screen keypad: clear with ⌫, then J-U-R (587).
    for _ in 0..4 {
        driver.click("#key-back");
    }
    for digit in ["5", "8", "7"] {
        driver.click(&format!("#keypad .key[data-digit=\"{digit}\"]"));
    }
    assert_eq!(
        driver.js("return document.getElementById('book-query').value"),
        "587"
    );
    wait(driver, host, "keypad 587 finds Jürgen Müller", || {
        book_rows(driver).iter().any(|r| r.name == "Jürgen Müller")
            && driver.text("book-summary").contains("587 on the keypad")
    });
    show_book();
    driver.screenshot("05b-address-book-keypad");

    // Anything but 2-9 on the keypad: the plugin's message, no rows.
    driver.type_into("#book-query", "5#1");
    wait(
        driver,
        host,
        "the page shows the plugin's keypad error",
        || book_state(driver) == "error",
    );
    let error = driver.text("book-error");
    assert!(error.contains("2-9"), "{error}");
    assert!(book_rows(driver).is_empty());
    show_book();
    driver.screenshot("05c-address-book-keypad-error");

    // Back to text, everything: 20 a page, then the next page and back.
    driver.click("#book-keypad");
    wait(driver, host, "the whole address book is listed", || {
        driver.js("return document.getElementById('keypad').hidden") == true
            && book_rows(driver).len() == 20
            && driver.text("book-page").starts_with("1–20 of ")
    });
    assert!(driver.js("return document.getElementById('book-prev').disabled") == true);
    let first_page: Vec<String> = book_rows(driver).into_iter().map(|r| r.number).collect();
    driver.click("#book-next");
    wait(driver, host, "the second page shows", || {
        driver.text("book-page").starts_with("21–40 of ")
    });
    let second_page: Vec<String> = book_rows(driver).into_iter().map(|r| r.number).collect();
    assert_eq!(second_page.len(), 20);
    assert!(
        second_page.iter().all(|n| !first_page.contains(n)),
        "page 2 repeats page 1: {first_page:?} / {second_page:?}"
    );
    assert!(driver.js("return document.getElementById('book-prev').disabled") == false);
    driver.js("document.getElementById('book-pager').scrollIntoView({ block: 'end' })");
    driver.screenshot("05d-address-book-page-2");

    // At phone width the rows wrap instead of scrolling sideways.
    driver.set_size(390, 1100);
    show_book();
    driver.screenshot("05e-address-book-phone-width");
    let fits = driver.js("return document.documentElement.scrollWidth <= window.innerWidth + 1");
    assert_eq!(fits, true, "no sideways scrolling on a phone-sized screen");
    driver.set_size(1200, 1000);

    driver.click("#book-prev");
    wait(driver, host, "back on the first page", || {
        driver.text("book-page").starts_with("1–20 of ")
    });
    driver.js("window.scrollTo(0, 0)");
}
