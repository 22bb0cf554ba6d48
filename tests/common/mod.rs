//! What the integration tests share: the plugin loaded through libloading (as the PBX loads
//! it), a fake Google on 127.0.0.1, a temporary data_dir, and the connect flow.
#![allow(dead_code)]

pub use host_sim::pg;

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
/// A Google account outside Workspace: asked for a directory, Google refuses.
pub const CONSUMER: &str = "carol@gmail.com";
/// Alice's colleague in example.com's Workspace directory (see `seed_a_colleague_and_a_consumer`).
pub const COLLEAGUE: &str = "+12125550122";
/// The contact of `CONSUMER`.
pub const CONSUMERS_CONTACT: &str = "+12125550199";

/// The plugin, loaded once per test binary.
pub fn api() -> &'static Api {
    static API: OnceLock<Api> = OnceLock::new();
    API.get_or_init(|| Api::load(&default_library_path()).expect("load the plugin"))
}

pub struct Harness {
    pub fake: FakeGoogle,
    pub dir: tempfile::TempDir,
    /// The PostgreSQL store the plugins of this test share, when it runs on one.
    pub pg: Option<SharedStore>,
}

/// A test's PostgreSQL server and the database its plugins share.
pub struct SharedStore {
    pub server: pg::PgServer,
    pub url: String,
}

/// Which store the tests of this run use: `GI_TEST_STORE=postgresql` runs them on a
/// PostgreSQL server each test starts (tests/run-all runs the store's tests both ways).
pub fn on_postgres() -> bool {
    std::env::var("GI_TEST_STORE").is_ok_and(|v| v == "postgresql")
}

impl Harness {
    /// A fake Google and a data_dir, on the store this run tests (see `on_postgres`).
    pub fn new() -> Harness {
        Harness::with_store(on_postgres())
    }

    /// The same, always on a PostgreSQL store of its own.
    pub fn on_postgres() -> Harness {
        Harness::with_store(true)
    }

    fn with_store(postgres: bool) -> Harness {
        let fake = FakeGoogle::start();
        fake.add_client(Client::new(CLIENT_ID, CLIENT_SECRET, &[REDIRECT_URI]));
        fake.add_user(ALICE, "Alice Example");
        fake.add_user(BOB, "Bob Example");
        let dir = tempfile::tempdir().expect("temp dir");
        let pg = postgres.then(|| {
            pg::write_key(&dir.path().join("cluster.key"));
            let server = pg::PgServer::start();
            let url = server.new_database();
            SharedStore { server, url }
        });
        Harness { fake, dir, pg }
    }

    /// Whether this test runs on SQLite: a test about SQLite's files says so and checks them
    /// only then.
    pub fn on_sqlite(&self) -> bool {
        self.pg.is_none()
    }

    /// Another node's configuration: its own data_dir, the same store and key.
    pub fn node_config(&self, node: &str) -> Value {
        let mut config = self.config();
        config["data_dir"] = json!(self.dir.path().join(node));
        config
    }

    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// A configuration pointing at the fake, with short retries, no periodic sync during a
    /// test unless it asks for one, and no request budget to wait for.
    pub fn config(&self) -> Value {
        let mut config = json!({
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
        });
        if let Some(pg) = &self.pg {
            config["store"] = json!(pg.url);
            config["token_key_file"] = json!(self.dir.path().join("cluster.key"));
        }
        config
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

/// For a reconnect whose new grant cannot read the directory: Alice (a Workspace user) has one
/// contact (+1 212 555 0121) and a colleague in example.com's directory (`COLLEAGUE`);
/// `CONSUMER`, outside Workspace, has one contact (`CONSUMERS_CONTACT`).
pub fn seed_a_colleague_and_a_consumer(h: &Harness) {
    use host_sim::fake_google::Person;
    h.fake.set_contacts(
        ALICE,
        vec![Person::new("people/c1", "Ann", "Alice").with_phone("+1 212 555 0121", "work")],
    );
    h.fake.set_directory(
        "example.com",
        vec![Person::new("people/d1", "Dan", "Colleague").with_phone(COLLEAGUE, "work")],
    );
    h.fake.add_user(CONSUMER, "Carol Consumer");
    h.fake.set_contacts(
        CONSUMER,
        vec![Person::new("people/c9", "Cid", "Carol").with_phone(CONSUMERS_CONTACT, "work")],
    );
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

/// Runs `sql` (no parameters; the same text on both stores) on the test's store, SQLite
/// (with the plugin closed: see `read_db`) or PostgreSQL, and returns each row's columns as
/// text, NULL as "NULL".
pub fn store_query(h: &Harness, sql: &str) -> Vec<Vec<String>> {
    store_query_at(h.data_dir(), h.pg.as_ref(), sql)
}

/// `store_query` on the store of a harness taken apart (its fake Google dropped).
pub fn store_query_at(dir: &Path, pg: Option<&SharedStore>, sql: &str) -> Vec<Vec<String>> {
    if let Some(pg) = pg {
        let mut client = pg.server.client(&pg.url);
        return client
            .simple_query(sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .into_iter()
            .filter_map(|message| match message {
                postgres::SimpleQueryMessage::Row(row) => Some(
                    (0..row.len())
                        .map(|i| row.get(i).unwrap_or("NULL").to_owned())
                        .collect(),
                ),
                _ => None,
            })
            .collect();
    }
    let db = rusqlite::Connection::open(dir.join("data/google-integration.sqlite3"))
        .expect("open the database");
    {
        let mut stmt = db.prepare(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
        let columns = stmt.column_count();
        let rows = stmt
            .query_map([], |row| {
                Ok((0..columns)
                    .map(|i| match row.get_ref(i).unwrap() {
                        rusqlite::types::ValueRef::Null => "NULL".to_owned(),
                        rusqlite::types::ValueRef::Integer(v) => v.to_string(),
                        rusqlite::types::ValueRef::Real(v) => v.to_string(),
                        rusqlite::types::ValueRef::Text(t) | rusqlite::types::ValueRef::Blob(t) => {
                            String::from_utf8_lossy(t).into_owned()
                        }
                    })
                    .collect())
            })
            .unwrap();
        rows.map(Result::unwrap).collect()
    }
}

/// One number from the test's store (see `store_query`), e.g. a count.
pub fn store_number(h: &Harness, sql: &str) -> i64 {
    store_query(h, sql)[0][0].parse().expect("a number")
}

/// (refresh token, access token) of the only account, as stored (sealed).
pub fn stored_tokens(h: &Harness) -> (String, String) {
    let rows = store_query(h, "SELECT refresh_token, access_token FROM accounts");
    assert_eq!(rows.len(), 1, "one account");
    (rows[0][0].clone(), rows[0][1].clone())
}

/// Where the test's token key is: the named key file with PostgreSQL, else data_dir's.
pub fn key_path(h: &Harness) -> std::path::PathBuf {
    match &h.pg {
        Some(_) => h.data_dir().join("cluster.key"),
        None => h.data_dir().join("data/token.key"),
    }
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
