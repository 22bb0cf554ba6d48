//! The PBX's Google Integration page and its JSON API, on tiny_http.
//!
//! `GET /` is the page (plain HTML/CSS/JS from `static/`, no build step). The page talks to:
//!
//! | route | does |
//! | --- | --- |
//! | `GET /api/info` | plugin version, mode, accounts, the fake's users, the callback origin |
//! | `GET /api/status?account=A` | `gi_status_json(A)` as is |
//! | `POST /api/auth-url {account}` | `gi_auth_url`: the URL the popup opens |
//! | `GET /google/callback?…` | Google's redirect: the raw query goes to `gi_complete`; answers a page that tells its opener and closes |
//! | `POST /api/sync-now {account}` / `POST /api/disable {account}` | `gi_sync_now` / `gi_disable` |
//! | `POST /api/lookup {account, number}` | `gi_lookup_contact`, as on an incoming call, timed |
//! | `GET /api/search?account=A&q=Q&mode=text\|keypad&offset=N&limit=N` | `gi_search_contacts`: `{rows, total, offset, limit, took}`; a bad query is a 400 with the plugin's message |
//! | `POST /api/accounts {account}` | adds an account to the selector (checked by the plugin) |
//! | `GET /api/fake`, `POST /api/fault {action, …}` | the fake Google's faults and meetings (not with `--google`): `{done, queued_people_faults, sticky, meetings}` |
//!
//! POSTs must be `application/json` (a cross-site form cannot send that without CORS, which
//! this server never grants), and on a loopback bind the `Host` must be a loopback name, so a
//! DNS-rebinding page cannot drive it. Nothing logged or shown carries a token or a code: the
//! callback's query is handed to the plugin and never printed.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::net::{SocketAddr, TcpListener};
use std::panic::AssertUnwindSafe;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use host_sim::fake_google::{parse_rfc3339_ms, rfc3339_utc, Endpoint, FakeGoogle, Fault};
use host_sim::html_escape;
use host_sim::plugin::{GiResult, Plugin};
use parking_lot::Mutex;
use serde_json::{json, Value};
use tiny_http::{Header, Method, Request, Response, Server};

use crate::{seed, signal, sim};

const INDEX_HTML: &str = include_str!("../static/index.html");
const APP_JS: &str = include_str!("../static/app.js");
const APP_CSS: &str = include_str!("../static/app.css");
const CALLBACK_JS: &str = include_str!("../static/callback.js");

/// Rows on a page of the address book, unless the page asks for another `limit`.
const SEARCH_PAGE: usize = 20;
const MAX_SEARCH_PAGE: usize = 200;

const WORKERS: usize = 4;
const MAX_BODY: u64 = 64 * 1024;

/// The page's socket, bound before the plugin opens so the redirect URI names the real port.
pub struct Listener {
    server: Server,
    addr: SocketAddr,
}

impl Listener {
    pub fn bind(addr: SocketAddr) -> Result<Listener, String> {
        let tcp = TcpListener::bind(addr).map_err(|e| {
            let hint = if e.kind() == std::io::ErrorKind::AddrInUse {
                " (another program uses that port: pass --bind 127.0.0.1:0 for any free port)"
            } else {
                ""
            };
            format!("cannot listen on {addr}: {e}{hint}")
        })?;
        let addr = tcp.local_addr().map_err(|e| e.to_string())?;
        let server =
            Server::from_listener(tcp, None).map_err(|e| format!("cannot serve on {addr}: {e}"))?;
        Ok(Listener { server, addr })
    }

    /// Binds `addr`, or any free port of the same IP if that port is taken.
    pub fn bind_or_any(addr: SocketAddr) -> Result<Listener, String> {
        match Listener::bind(addr) {
            Ok(l) => Ok(l),
            Err(first) if addr.port() != 0 => {
                let l = Listener::bind(SocketAddr::new(addr.ip(), 0)).map_err(|_| first.clone())?;
                println!("   ({addr} is taken, so the page uses {} instead)", l.addr);
                Ok(l)
            }
            Err(e) => Err(e),
        }
    }

    /// `http://127.0.0.1:PORT` (loopback even when bound to every interface).
    pub fn base_url(&self) -> String {
        let ip = if self.addr.ip().is_unspecified() {
            "127.0.0.1".to_string()
        } else if self.addr.is_ipv6() {
            format!("[{}]", self.addr.ip())
        } else {
            self.addr.ip().to_string()
        };
        format!("http://{ip}:{}", self.addr.port())
    }

    pub fn callback_uri(&self) -> String {
        format!("{}/google/callback", self.base_url())
    }

    /// Serves until Ctrl-C or SIGTERM.
    pub fn serve(&self, app: &App<'_>) {
        std::thread::scope(|scope| {
            for n in 0..WORKERS {
                std::thread::Builder::new()
                    .name(format!("web-{n}"))
                    .spawn_scoped(scope, || loop {
                        if signal::stopping() {
                            return;
                        }
                        match self.server.recv_timeout(Duration::from_millis(200)) {
                            Ok(Some(rq)) => {
                                // A bug in one request's handling must not take this worker
                                // with it: four such requests would leave no one to answer.
                                let handled = std::panic::catch_unwind(AssertUnwindSafe(|| {
                                    app.handle(rq, self.addr)
                                }));
                                if handled.is_err() {
                                    eprintln!("web: a request's handling panicked; its connection is closed");
                                }
                            }
                            Ok(None) => {}
                            Err(e) => {
                                eprintln!("web: {e}");
                                std::thread::sleep(Duration::from_millis(50));
                            }
                        }
                    })
                    .expect("spawning a web thread");
            }
        });
    }
}

/// Whether the page runs against the fake Google or the real one.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Fake,
    Google,
}

/// What the page's handlers work on.
pub struct App<'a> {
    pub plugin: &'a Plugin<'static>,
    pub fake: Option<&'a FakeGoogle>,
    pub mode: Mode,
    pub callback_uri: String,
    pub data_dir: String,
    accounts: Mutex<Vec<String>>,
    /// What each API's sticky fault does ("People", "Calendar"), for the developer panel.
    sticky: Mutex<BTreeMap<&'static str, String>>,
}

struct Reply {
    status: u16,
    content_type: &'static str,
    body: Vec<u8>,
    headers: Vec<(&'static str, String)>,
}

impl Reply {
    fn json(status: u16, value: &Value) -> Reply {
        Reply {
            status,
            content_type: "application/json",
            body: value.to_string().into_bytes(),
            headers: Vec::new(),
        }
    }

    fn error(status: u16, message: impl Into<String>) -> Reply {
        Reply::json(status, &json!({ "error": message.into() }))
    }

    fn text(status: u16, content_type: &'static str, body: impl Into<Vec<u8>>) -> Reply {
        Reply {
            status,
            content_type,
            body: body.into(),
            headers: Vec::new(),
        }
    }
}

/// A failed plugin call as the page shows it.
fn plugin_error(what: &str, e: &host_sim::plugin::CallError) -> Reply {
    let status = match e.code {
        GiResult::GI_ERR_INVALID_ARGUMENT | GiResult::GI_ERR_STATE | GiResult::GI_ERR_DENIED => 400,
        GiResult::GI_ERR_GOOGLE | GiResult::GI_ERR_NETWORK => 502,
        _ => 500,
    };
    Reply::json(
        status,
        &json!({ "error": format!("{what}: {}", e.message), "code": format!("{:?}", e.code) }),
    )
}

impl<'a> App<'a> {
    pub fn new(
        plugin: &'a Plugin<'static>,
        fake: Option<&'a FakeGoogle>,
        mode: Mode,
        callback_uri: String,
        data_dir: String,
        accounts: &[&str],
    ) -> App<'a> {
        App {
            plugin,
            fake,
            mode,
            callback_uri,
            data_dir,
            accounts: Mutex::new(accounts.iter().map(|s| s.to_string()).collect()),
            sticky: Mutex::new(BTreeMap::new()),
        }
    }

    fn handle(&self, mut rq: Request, bound: SocketAddr) {
        let reply = if !host_allowed(&rq, bound) {
            Reply::error(
                421,
                "this page answers on 127.0.0.1 or localhost only; open it at the address host-sim printed",
            )
        } else {
            let method = rq.method().clone();
            let url = rq.url().to_string();
            let (path, query) = url.split_once('?').unwrap_or((url.as_str(), ""));
            if holds_nul(query) {
                // No account, number or query holds one, and a C string cannot carry it.
                Reply::error(400, "a query parameter holds a NUL byte (%00)")
            } else if method == Method::Post {
                match read_json(&mut rq) {
                    Ok(body) if holds_nul_json(&body) => {
                        Reply::error(400, "a value of the request holds a NUL byte (\\u0000)")
                    }
                    Ok(body) => self.post(path, &body),
                    Err(reply) => reply,
                }
            } else if method == Method::Get || method == Method::Head {
                self.get(path, query)
            } else {
                Reply::error(405, "use GET or POST")
            }
        };
        let mut response = Response::from_data(reply.body).with_status_code(reply.status);
        let mut headers = vec![
            ("Content-Type", reply.content_type.to_string()),
            ("Cache-Control", "no-store".to_string()),
            ("X-Content-Type-Options", "nosniff".to_string()),
            ("Referrer-Policy", "no-referrer".to_string()),
            (
                "Content-Security-Policy",
                "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'"
                    .to_string(),
            ),
        ];
        headers.extend(reply.headers);
        for (name, value) in headers {
            if let Ok(h) = Header::from_bytes(name.as_bytes(), value.as_bytes()) {
                response.add_header(h);
            }
        }
        let _ = rq.respond(response);
    }

    fn get(&self, path: &str, query: &str) -> Reply {
        match path {
            "/" | "/index.html" => Reply::text(200, "text/html; charset=utf-8", INDEX_HTML),
            "/app.js" => Reply::text(200, "text/javascript; charset=utf-8", APP_JS),
            "/app.css" => Reply::text(200, "text/css; charset=utf-8", APP_CSS),
            "/callback.js" => Reply::text(200, "text/javascript; charset=utf-8", CALLBACK_JS),
            "/favicon.ico" => Reply::text(204, "image/x-icon", Vec::new()),
            "/google/callback" => self.callback(query),
            "/api/info" => self.info(),
            "/api/status" => {
                let account = query_param(query, "account").unwrap_or_default();
                match self.plugin.status_json(&account) {
                    Ok(text) => Reply::text(200, "application/json", text),
                    Err(e) => plugin_error("status", &e),
                }
            }
            "/api/search" => self.search(query),
            "/api/fake" => self.fake_state(),
            _ => Reply::error(
                404,
                format!("no page at {path}: the Google Integration page is at /"),
            ),
        }
    }

    fn post(&self, path: &str, body: &Value) -> Reply {
        let account = body["account"].as_str().unwrap_or_default();
        match path {
            "/api/auth-url" => match self.plugin.auth_url(account) {
                Ok(url) => {
                    println!("  page: {account}: opening Google's consent page in a popup");
                    Reply::json(200, &json!({ "url": url }))
                }
                Err(e) => plugin_error("cannot start connecting", &e),
            },
            "/api/sync-now" => match self.plugin.sync_now(account) {
                Ok(()) => {
                    println!("  page: {account}: Sync now");
                    Reply::json(200, &json!({ "ok": true }))
                }
                Err(e) => plugin_error("Sync now failed", &e),
            },
            "/api/disable" => {
                match self.plugin.disable(account) {
                    Ok(()) => {
                        println!("  page: {account}: disabled (grant revoked at Google, contacts removed)");
                        Reply::json(200, &json!({ "ok": true }))
                    }
                    Err(e) => plugin_error("Disable failed", &e),
                }
            }
            "/api/lookup" => {
                let number = body["number"].as_str().unwrap_or_default();
                match sim::ring(self.plugin, account, number) {
                    Ok((caller, took)) => {
                        let micros = took.as_secs_f64() * 1e6;
                        let contact = caller.map(|c| {
                            json!({"name": c.name, "company": c.company, "label": c.label,
                                   "number": c.number, "account": c.account,
                                   "source": c.source, "groups": c.groups})
                        });
                        Reply::json(
                            200,
                            &json!({ "found": contact.is_some(), "contact": contact,
                                     "micros": micros, "took": sim::format_duration(took) }),
                        )
                    }
                    Err(e) => Reply::error(400, e),
                }
            }
            "/api/accounts" => self.add_account(account),
            "/api/fault" => self.fault(body),
            _ => Reply::error(404, format!("no API at {path}")),
        }
    }

    fn info(&self) -> Reply {
        let users: Vec<Value> = match self.fake {
            Some(fake) => fake
                .users()
                .into_iter()
                .map(|(email, name)| {
                    let account = seed::USERS
                        .iter()
                        .find(|u| u.email == email)
                        .map(|u| u.account);
                    json!({ "email": email, "name": name, "account": account })
                })
                .collect(),
            None => Vec::new(),
        };
        let origin = self
            .callback_uri
            .find("/google/callback")
            .map_or(self.callback_uri.as_str(), |i| &self.callback_uri[..i]);
        Reply::json(
            200,
            &json!({
                "version": self.plugin.api().version(),
                "mode": if self.mode == Mode::Fake { "fake" } else { "google" },
                "callback_origin": origin,
                "accounts": *self.accounts.lock(),
                "users": users,
                "data_dir": self.data_dir,
            }),
        )
    }

    /// The address book: one page of `gi_search_contacts`. Rows carry the plugin's fields as
    /// they are (the page puts them in with `textContent`, never as HTML); `groups` is split
    /// back into names at the ", " the plugin joins them with.
    fn search(&self, query: &str) -> Reply {
        let account = query_param(query, "account").unwrap_or_default();
        let q = query_param(query, "q").unwrap_or_default();
        let keypad = match query_param(query, "mode").as_deref() {
            None | Some("") | Some("text") => false,
            Some("keypad") => true,
            Some(other) => {
                return Reply::error(
                    400,
                    format!("unknown search mode `{other}`: use text or keypad"),
                )
            }
        };
        let number = |name: &str, default: usize, max: usize| -> Result<usize, Reply> {
            match query_param(query, name).filter(|v| !v.is_empty()) {
                None => Ok(default),
                Some(v) => match v.parse::<usize>() {
                    Ok(n) if n <= max => Ok(n),
                    _ if max == usize::MAX => Err(Reply::error(
                        400,
                        format!("{name} must be a whole number, 0 or more, not `{v}`"),
                    )),
                    _ => Err(Reply::error(
                        400,
                        format!("{name} must be a whole number from 0 to {max}, not `{v}`"),
                    )),
                },
            }
        };
        let offset = match number("offset", 0, usize::MAX) {
            Ok(n) => n,
            Err(r) => return r,
        };
        let limit = match number("limit", SEARCH_PAGE, MAX_SEARCH_PAGE) {
            Ok(n) => n,
            Err(r) => return r,
        };
        match sim::search(self.plugin, &account, &q, keypad, offset, limit) {
            Ok(page) => {
                let rows: Vec<Value> = page
                    .rows
                    .iter()
                    .map(|c| {
                        let groups: Vec<&str> =
                            c.groups.split(", ").filter(|g| !g.is_empty()).collect();
                        json!({"name": c.name, "company": c.company, "label": c.label,
                               "number": c.number, "account": c.account, "source": c.source,
                               "groups": groups})
                    })
                    .collect();
                Reply::json(
                    200,
                    &json!({ "rows": rows, "total": page.total, "offset": offset,
                             "limit": limit, "took": sim::format_duration(page.took) }),
                )
            }
            Err(e) => plugin_error("Cannot search", &e),
        }
    }

    fn add_account(&self, account: &str) -> Reply {
        let account = account.trim();
        if account.is_empty() {
            return Reply::error(
                400,
                "type an account: a domain such as example.com or a user such as example.com/42",
            );
        }
        // The plugin is the judge of what an account is.
        if let Err(e) = self.plugin.status_json(account) {
            return plugin_error(&format!("`{account}` is not an account"), &e);
        }
        self.remember(account);
        Reply::json(200, &json!({ "accounts": *self.accounts.lock() }))
    }

    fn remember(&self, account: &str) {
        let mut accounts = self.accounts.lock();
        if !accounts.iter().any(|a| a == account) {
            accounts.push(account.to_string());
        }
    }

    /// Google's redirect. The raw query goes to `gi_complete` as the contract asks; the answer
    /// is a page whose script tells the opener and closes the popup.
    fn callback(&self, query: &str) -> Reply {
        let (ok, account, code, title, message) = match self.plugin.complete(query) {
            Ok(account) => {
                println!("  page: {account}: connected to Google; first sync started");
                self.remember(&account);
                let msg =
                    format!("{account} is connected to Google. Its contacts are syncing now.");
                (
                    true,
                    account,
                    "GI_OK".to_string(),
                    "Connected".to_string(),
                    msg,
                )
            }
            Err(e) => {
                let title = match e.code {
                    GiResult::GI_ERR_DENIED => "Not connected: access was denied at Google",
                    GiResult::GI_ERR_STATE => "Not connected: this sign-in was not recognised",
                    GiResult::GI_ERR_GOOGLE => "Not connected: Google refused the authorization",
                    GiResult::GI_ERR_NETWORK => "Not connected: Google could not be reached",
                    _ => "Not connected",
                };
                println!("  page: connecting failed ({:?}): {}", e.code, e.message);
                (
                    false,
                    String::new(),
                    format!("{:?}", e.code),
                    title.to_string(),
                    e.message,
                )
            }
        };
        let page = format!(
            r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title><link rel="stylesheet" href="/app.css"></head>
<body class="callback">
<main class="card" id="callback-result" data-ok="{ok}" data-account="{account}" data-code="{code}" data-title="{title}" data-message="{message}">
<h1>{icon} {title}</h1>
<p>{message}</p>
<p class="hint" id="callback-hint">This window closes by itself. If it stays open, close it and go back to the <a href="/">Google Integration page</a>.</p>
</main>
<script src="/callback.js"></script>
</body></html>
"#,
            ok = ok,
            account = html_escape(&account),
            code = html_escape(&code),
            title = html_escape(&title),
            message = html_escape(&message),
            icon = if ok { "✓" } else { "✗" },
        );
        Reply::text(200, "text/html; charset=utf-8", page)
    }

    fn fake_state(&self) -> Reply {
        let Some(fake) = self.fake else {
            return Reply::error(404, "host-sim runs against the real Google (--google): there is no fake to inject faults into");
        };
        Reply::json(
            200,
            &json!({
                "queued_people_faults": fake.pending_faults(Endpoint::People),
                "sticky": self.sticky_text(),
                "meetings": meetings(fake),
            }),
        )
    }

    /// The sticky faults in words, `null` when there is none.
    fn sticky_text(&self) -> Value {
        let sticky = self.sticky.lock();
        if sticky.is_empty() {
            Value::Null
        } else {
            json!(sticky.values().cloned().collect::<Vec<_>>().join("; "))
        }
    }

    fn fault(&self, body: &Value) -> Reply {
        let Some(fake) = self.fake else {
            return Reply::error(404, "host-sim runs against the real Google (--google): there is no fake to inject faults into");
        };
        let email = body["email"].as_str().unwrap_or_default();
        let known = || fake.users().iter().any(|(e, _)| e == email);
        let status = body["status"].as_u64().unwrap_or(503);
        let count = body["count"].as_u64().unwrap_or(3).clamp(1, 100);
        let people_status = || -> Result<Fault, Reply> {
            match status {
                429 | 500 | 502 | 503 | 504 => Ok(Fault::Status(status as u16)),
                _ => Err(Reply::error(
                    400,
                    "status must be 429, 500, 502, 503 or 504",
                )),
            }
        };
        // Which People API list a people fault hits: a contact source's.
        let (endpoint, list) = match body["source"].as_str().unwrap_or("contacts") {
            "contacts" => (Endpoint::People, "People API"),
            "directory" => (Endpoint::Directory, "People API directory"),
            "other_contacts" => (Endpoint::OtherContacts, "People API other contacts"),
            other => {
                return Reply::error(
                    400,
                    format!("source `{other}` is not contacts, directory or other_contacts"),
                )
            }
        };
        let done = match body["action"].as_str().unwrap_or_default() {
            "revoke" => {
                if !known() {
                    return Reply::error(400, format!("no Google user `{email}` at the fake"));
                }
                fake.revoke_grants(email);
                format!("{email} removed this app's access at Google: its tokens are dead")
            }
            "people-status" => {
                let fault = match people_status() {
                    Ok(f) => f,
                    Err(r) => return r,
                };
                for _ in 0..count {
                    fake.inject(endpoint, fault.clone());
                }
                format!("the next {count} {list} calls answer {status}")
            }
            "people-sticky" => {
                let fault = match people_status() {
                    Ok(f) => f,
                    Err(r) => return r,
                };
                fake.set_sticky_fault(endpoint, Some(fault));
                self.sticky
                    .lock()
                    .insert(list, format!("every {list} call answers {status}"));
                format!("every {list} call answers {status} until faults are cleared")
            }
            "people-disabled" => {
                fake.set_sticky_fault(Endpoint::People, Some(Fault::PeopleDisabled));
                self.sticky.lock().insert(
                    "People",
                    "the People API is disabled for the project (403 SERVICE_DISABLED)".into(),
                );
                "the People API now answers 403 SERVICE_DISABLED until faults are cleared".into()
            }
            "expire-sync-tokens" => {
                if !known() {
                    return Reply::error(400, format!("no Google user `{email}` at the fake"));
                }
                fake.expire_sync_tokens(email);
                format!("the sync tokens of {email} expired: the next sync is a full one")
            }
            "expire-access-tokens" => {
                fake.expire_access_tokens();
                "every access token expired: the next call refreshes it".into()
            }
            "busy" => {
                if !known() {
                    return Reply::error(400, format!("no Google user `{email}` at the fake"));
                }
                let now = unix_now();
                let (start, end) =
                    match (meeting_time(&body["start"], now), meeting_time(&body["end"], now)) {
                        (Ok(s), Ok(e)) => (s, e),
                        (Err(e), _) => return Reply::error(400, format!("start: {e}")),
                        (_, Err(e)) => return Reply::error(400, format!("end: {e}")),
                    };
                if end <= start {
                    return Reply::error(
                        400,
                        format!(
                            "the meeting must end after it starts ({} is not after {})",
                            rfc3339_utc(end),
                            rfc3339_utc(start)
                        ),
                    );
                }
                fake.add_busy(email, start, end);
                format!(
                    "{email} has a meeting from {} to {}",
                    rfc3339_utc(start),
                    rfc3339_utc(end)
                )
            }
            "free" => {
                if !known() {
                    return Reply::error(400, format!("no Google user `{email}` at the fake"));
                }
                fake.clear_busy(email);
                format!("{email} has no meetings any more: their calendar is free")
            }
            "calendar-disabled" => {
                fake.set_sticky_fault(Endpoint::Calendar, Some(Fault::CalendarDisabled));
                self.sticky.lock().insert(
                    "Calendar",
                    "the Calendar API is disabled for the project (403 SERVICE_DISABLED)".into(),
                );
                "the Calendar API now answers 403 SERVICE_DISABLED until faults are cleared".into()
            }
            "clear" => {
                fake.clear_faults();
                self.sticky.lock().clear();
                "faults cleared: the fake Google answers normally".into()
            }
            other => {
                return Reply::error(
                    400,
                    format!("unknown fault `{other}`: use revoke, people-status, people-sticky, people-disabled, expire-sync-tokens, expire-access-tokens, busy, free, calendar-disabled or clear"),
                )
            }
        };
        println!("  fault: {done}");
        Reply::json(
            200,
            &json!({
                "done": done,
                "queued_people_faults": fake.pending_faults(Endpoint::People),
                "sticky": self.sticky_text(),
                "meetings": meetings(fake),
            }),
        )
    }
}

/// Every user's busy periods at the fake, sorted:
/// `{"alice@example.com": [{"start": RFC 3339, "end": RFC 3339}, …], …}` (users without any
/// left out).
fn meetings(fake: &FakeGoogle) -> Value {
    let mut out = serde_json::Map::new();
    for (email, _) in fake.users() {
        let mut busy = fake.busy(&email);
        if busy.is_empty() {
            continue;
        }
        busy.sort_unstable();
        let periods: Vec<Value> = busy
            .into_iter()
            .map(|(s, e)| json!({"start": rfc3339_utc(s), "end": rfc3339_utc(e)}))
            .collect();
        out.insert(email, Value::Array(periods));
    }
    Value::Object(out)
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// A meeting's start or end as Unix seconds: an RFC 3339 time, `+MINUTES` or `-MINUTES` from
/// `now` (a whole or decimal number; a JSON number is minutes from now too).
fn meeting_time(v: &Value, now: i64) -> Result<i64, String> {
    let minutes = match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) if s.starts_with(['+', '-']) => s.parse::<f64>().ok(),
        Value::String(s) => {
            return parse_rfc3339_ms(s).map(|ms| ms.div_euclid(1000)).ok_or_else(|| {
                format!(
                    "`{s}` is neither an RFC 3339 time (2026-11-29T20:00:00Z) nor minutes from now (+1, -5)"
                )
            })
        }
        Value::Null => return Err("missing: give an RFC 3339 time or +MINUTES".into()),
        other => {
            return Err(format!(
                "`{other}` is neither an RFC 3339 time nor minutes from now"
            ))
        }
    };
    // A year either way is plenty, and keeps the arithmetic far from overflow.
    match minutes {
        Some(m) if m.is_finite() && m.abs() <= 525_600.0 => Ok(now + (m * 60.0).round() as i64),
        _ => Err(format!(
            "`{v}` is not a number of minutes from now within a year (+1, -5, +90)"
        )),
    }
}

/// On a loopback bind, only loopback host names: a page on another site that rebinds its
/// own name to 127.0.0.1 gets nothing.
fn host_allowed(rq: &Request, bound: SocketAddr) -> bool {
    if !bound.ip().is_loopback() {
        return true;
    }
    let Some(host) = rq
        .headers()
        .iter()
        .find(|h| h.field.equiv("Host"))
        .map(|h| h.value.as_str().to_ascii_lowercase())
    else {
        return false;
    };
    let name = match host.rsplit_once(':') {
        Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) => name,
        _ => host.as_str(),
    };
    name == "localhost"
        || name == "[::1]"
        || name
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn read_json(rq: &mut Request) -> Result<Value, Reply> {
    let json_type = rq
        .headers()
        .iter()
        .find(|h| h.field.equiv("Content-Type"))
        .is_some_and(|h| h.value.as_str().starts_with("application/json"));
    if !json_type {
        return Err(Reply::error(
            415,
            "send JSON with Content-Type: application/json",
        ));
    }
    let mut body = String::new();
    rq.as_reader()
        .take(MAX_BODY)
        .read_to_string(&mut body)
        .map_err(|e| Reply::error(400, format!("cannot read the request: {e}")))?;
    if body.trim().is_empty() {
        return Ok(json!({}));
    }
    serde_json::from_str(&body).map_err(|e| Reply::error(400, format!("the body is not JSON: {e}")))
}

/// Whether a decoded parameter of `query` holds a NUL byte.
fn holds_nul(query: &str) -> bool {
    url::form_urlencoded::parse(query.as_bytes()).any(|(k, v)| k.contains('\0') || v.contains('\0'))
}

/// Whether a string anywhere in a JSON value holds a NUL byte.
fn holds_nul_json(value: &Value) -> bool {
    match value {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(holds_nul_json),
        Value::Object(map) => map
            .iter()
            .any(|(k, v)| k.contains('\0') || holds_nul_json(v)),
        _ => false,
    }
}

fn query_param(query: &str, name: &str) -> Option<String> {
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}
