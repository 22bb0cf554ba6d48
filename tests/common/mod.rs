//! What the integration tests share: the plugin loaded through libloading (as the PBX loads
//! it), a fake Google on 127.0.0.1, a temporary data_dir, and the connect flow.
#![allow(dead_code)]

use std::ffi::{c_char, c_int, c_void, CStr};
use std::path::Path;
use std::sync::{Mutex, Once, OnceLock};
use std::time::{Duration, Instant};

use host_sim::fake_google::{Client, FakeGoogle};
use host_sim::plugin::{default_library_path, Api, Plugin};
use serde_json::{json, Value};

pub const CLIENT_ID: &str = "1234-test.apps.googleusercontent.com";
pub const CLIENT_SECRET: &str = "GOCSPX-test-client-secret-0123456789";
pub const REDIRECT_URI: &str = "http://127.0.0.1:8080/google/callback";
pub const ALICE: &str = "alice@example.com";
pub const BOB: &str = "bob@example.com";

/// The plugin, loaded once per test binary.
pub fn api() -> &'static Api {
    static API: OnceLock<Api> = OnceLock::new();
    API.get_or_init(|| Api::load(&default_library_path()).expect("load the plugin"))
}

pub struct Harness {
    pub fake: FakeGoogle,
    pub dir: tempfile::TempDir,
}

impl Harness {
    pub fn new() -> Harness {
        let fake = FakeGoogle::start();
        fake.add_client(Client::new(CLIENT_ID, CLIENT_SECRET, &[REDIRECT_URI]));
        fake.add_user(ALICE, "Alice Example");
        fake.add_user(BOB, "Bob Example");
        Harness {
            fake,
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// A configuration pointing at the fake, with short retries, no periodic sync during a
    /// test unless it asks for one, and no request budget to wait for.
    pub fn config(&self) -> Value {
        json!({
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "redirect_uri": REDIRECT_URI,
            "data_dir": self.dir.path().join("data"),
            "default_region": "US",
            "sync_interval_secs": 3600,
            "retry_base_ms": 20,
            // No request budget to speak of: tests that are about the budget set their own.
            "google_requests_per_minute": 100000,
            "google": self.fake.config_json(),
        })
    }

    pub fn open(&self) -> Plugin<'static> {
        self.open_with(&self.config())
    }

    pub fn open_with(&self, config: &Value) -> Plugin<'static> {
        Harness::open_config(config)
    }

    pub fn open_config(config: &Value) -> Plugin<'static> {
        Plugin::open(api(), &config.to_string()).unwrap_or_else(|e| panic!("gi_open: {e}"))
    }

    /// Another node: a plugin on a new data_dir whose database is the backup `copy` (with this
    /// harness's token key), and whose Google is unreachable. Keep the directory while the
    /// plugin is open.
    pub fn open_backup_elsewhere(&self, copy: &Path) -> (tempfile::TempDir, Plugin<'static>) {
        use std::os::unix::fs::PermissionsExt;
        let node = tempfile::tempdir().expect("temp dir");
        let data = node.path().join("data");
        std::fs::create_dir(&data).unwrap();
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700)).unwrap();
        std::fs::copy(copy, data.join("google-integration.sqlite3")).unwrap();
        let key = data.join("token.key");
        std::fs::copy(self.data_dir().join("data/token.key"), &key).unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        let mut config = self.config();
        config["data_dir"] = json!(data);
        config["google"]["people_url"] = json!("http://127.0.0.1:9");
        config["google"]["token_url"] = json!("http://127.0.0.1:9/token");
        let plugin = self.open_with(&config);
        (node, plugin)
    }

    /// Runs the whole consent flow for `account` as `email` and returns the connected account.
    pub fn connect(&self, plugin: &Plugin<'_>, account: &str, email: &str) -> String {
        host_sim::connect_through_fake(plugin, &self.fake, account, email)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Connects and waits for the first sync to land.
    pub fn connect_and_sync(&self, plugin: &Plugin<'_>, account: &str, email: &str) {
        self.connect(plugin, account, email);
        wait_for_sync(plugin, account, 1);
    }
}

/// Polls `done` until it holds or `timeout` passes; returns whether it held. Waiting on an
/// outcome, not asserting a duration: the timeout is only a safety net for a hung test.
pub fn wait_until(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    done()
}

pub const PATIENCE: Duration = Duration::from_secs(30);

/// Waits until the account is not syncing and has synced at least once since `last_sync`
/// changed; returns the status JSON.
pub fn wait_for_sync(plugin: &Plugin<'_>, account: &str, _min_syncs: usize) -> Value {
    let mut status = Value::Null;
    let settled = wait_until(PATIENCE, || {
        status = plugin.status_value(account);
        status["syncing"] == false
            && (status["last_sync"].is_string() || status["status"] == "issue")
    });
    assert!(settled, "the sync of {account} did not finish: {status}");
    status
}

/// Waits until the fake has answered `count` People requests more than `before`, then until
/// the account is idle again.
pub fn wait_for_people_requests(
    h: &Harness,
    plugin: &Plugin<'_>,
    account: &str,
    before: usize,
    count: usize,
) -> Value {
    let people = || {
        h.fake
            .requests_to(host_sim::fake_google::Endpoint::People)
            .len()
    };
    assert!(
        wait_until(PATIENCE, || people() >= before + count),
        "expected {count} more People requests"
    );
    let mut status = Value::Null;
    assert!(wait_until(PATIENCE, || {
        status = plugin.status_value(account);
        status["syncing"] == false
    }));
    status
}

/// Reads the plugin's database. Only while no plugin has it open: the test process links its
/// own copy of SQLite, and two copies in one process do not share their POSIX locks, so
/// reading beside an open plugin can see stale pages (or worse). Close the plugin first.
pub fn read_db<T>(h: &Harness, query: impl FnOnce(&rusqlite::Connection) -> T) -> T {
    let db = rusqlite::Connection::open(h.data_dir().join("data/google-integration.sqlite3"))
        .expect("open the database");
    query(&db)
}

/// (refresh token, access token) of the only account.
pub fn stored_tokens(h: &Harness) -> (String, String) {
    read_db(h, |db| {
        db.query_row(
            "SELECT refresh_token, access_token FROM accounts",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("one account")
    })
}

/// Every file under `dir`, read whole.
pub fn files_under(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push((path.clone(), std::fs::read(&path).unwrap_or_default()));
            }
        }
    }
    out
}

pub fn contains(haystack: &[u8], needle: &str) -> bool {
    !needle.is_empty()
        && haystack
            .windows(needle.len())
            .any(|w| w == needle.as_bytes())
}

/// The value of one query parameter of a URL or query string.
pub fn param(url_or_query: &str, name: &str) -> Option<String> {
    let query = url_or_query
        .split_once('?')
        .map_or(url_or_query, |(_, q)| q);
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

// The host's logger, captured. `gi_set_logger` is process-global and the tests of a binary run
// in parallel, so the capture is installed once, for the whole run, and never removed (no
// set/unset race between tests). A test that reads it picks its own lines by its own account
// name, or (for secrets) searches all of them, which only makes the search wider.

static LINES: Mutex<Vec<String>> = Mutex::new(Vec::new());

unsafe extern "C" fn capture(level: c_int, message: *const c_char, _user: *mut c_void) {
    let text = unsafe { CStr::from_ptr(message) }
        .to_string_lossy()
        .into_owned();
    LINES.lock().unwrap().push(format!("{level} {text}"));
}

/// Sends the plugin's log, at every level, to `logged_lines`.
pub fn capture_logs() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| unsafe { (api().gi_set_logger)(Some(capture), std::ptr::null_mut()) });
}

/// Every line logged since `capture_logs`, as "LEVEL message".
pub fn logged_lines() -> Vec<String> {
    LINES.lock().unwrap().clone()
}
