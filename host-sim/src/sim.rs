//! What the subcommands share: loading the plugin, its configuration for the fake Google, the
//! real Google or no Google at all, its log lines, and one simulated incoming call.

use std::ffi::{c_char, c_int, c_void, CStr};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::Path;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use host_sim::fake_google::{Client, FakeGoogle};
use host_sim::plugin::{Api, CallError, Caller, GiResult, GiSearchMode, Plugin};
use serde_json::{json, Value};

use crate::seed;

/// The OAuth client registered at the fake Google. The secret is made per run and never shown.
pub const FAKE_CLIENT_ID: &str = "487325908013-hostsim.apps.googleusercontent.com";

static LOG_LEVEL: AtomicI32 = AtomicI32::new(2);

pub fn set_log_level(level: i32) {
    LOG_LEVEL.store(level, Ordering::Relaxed);
}

/// How the syncs' index work ended, as the plugin logs it: (kept, patched, rebuilt). The
/// bench shows with it that a sync bringing no change rebuilds nothing.
static INDEX_OUTCOMES: [AtomicU64; 3] = [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)];

/// The syncs whose index was kept, patched and rebuilt since the plugin was loaded.
pub fn index_outcomes() -> [u64; 3] {
    INDEX_OUTCOMES.each_ref().map(|n| n.load(Ordering::Relaxed))
}

unsafe extern "C" fn log_line(level: c_int, message: *const c_char, _user: *mut c_void) {
    if message.is_null() {
        return;
    }
    // SAFETY: the plugin passes a NUL-terminated string valid for the call.
    let text = unsafe { CStr::from_ptr(message) }.to_string_lossy();
    if level == 3 {
        let outcome = ["the index is kept", "index patched", "index rebuilt"]
            .iter()
            .position(|said| text.contains(said));
        if let Some(at) = outcome {
            INDEX_OUTCOMES[at].fetch_add(1, Ordering::Relaxed);
        }
    }
    if level > LOG_LEVEL.load(Ordering::Relaxed) {
        return;
    }
    let name = match level {
        1 => "error",
        2 => "warn",
        3 => "info",
        4 => "debug",
        _ => "trace",
    };
    eprintln!("  plugin {name}: {text}");
}

/// Loads the plugin (once per process; it stays loaded until exit, as in the PBX) and routes
/// its log lines to stderr.
pub fn load(path: &Path) -> Result<&'static Api, String> {
    let api = Api::load(path)?;
    let api: &'static Api = Box::leak(Box::new(api));
    // SAFETY: a function that lives for the whole process, and no user pointer.
    unsafe { (api.gi_set_logger)(Some(log_line), std::ptr::null_mut()) };
    Ok(api)
}

pub fn open(api: &'static Api, config: &Value) -> Result<Plugin<'static>, String> {
    Plugin::open(api, &config.to_string())
        .map_err(|e| format!("the plugin refused to open: {}", e.message))
}

/// The status JSON of an account, or the plugin's message (a bad account name, say).
pub fn status(plugin: &Plugin<'_>, account: &str) -> Result<Value, String> {
    let text = plugin.status_json(account).map_err(|e| e.message)?;
    serde_json::from_str(&text).map_err(|e| format!("gi_status_json returned bad JSON: {e}"))
}

/// Starts the fake Google on 127.0.0.1 with the demo's users and address books, and registers
/// host-sim's client with its redirect URI. Returns the client secret with it.
pub fn start_fake(redirect_uri: &str) -> (FakeGoogle, String) {
    let fake = FakeGoogle::start();
    let secret = format!("GOCSPX-{}", random_hex(16));
    let mut uris = vec![redirect_uri.to_string()];
    // The page may be opened as localhost too; register both spellings, as one would at Google.
    if let Some(alt) = redirect_uri
        .strip_prefix("http://127.0.0.1:")
        .map(|rest| format!("http://localhost:{rest}"))
    {
        uris.push(alt);
    }
    let uris: Vec<&str> = uris.iter().map(String::as_str).collect();
    fake.add_client(Client::new(FAKE_CLIENT_ID, &secret, &uris));
    seed::seed(&fake);
    (fake, secret)
}

/// The plugin's configuration against the fake Google. `example.com` syncs every contact
/// source, and `acme.de` is a tenant with region DE, as Vodia lets each domain have its own
/// settings.
pub fn fake_config(
    fake: &FakeGoogle,
    secret: &str,
    redirect_uri: &str,
    data_dir: &Path,
    region: &str,
) -> Value {
    json!({
        "client_id": FAKE_CLIENT_ID,
        "client_secret": secret,
        "redirect_uri": redirect_uri,
        "data_dir": data_dir,
        "default_region": region,
        "sync_interval_secs": 600,
        // Short backoff, so a 429/503 fault and its recovery show within seconds.
        "retry_base_ms": 250,
        // Calendar presence on, fetched every 15 s, so a meeting booked from the developer
        // panel shows within seconds (Google's default would be 300 s).
        "calendar": true,
        "presence_interval_secs": 15,
        "google": fake.config_json(),
        // example.com is a Google Workspace organisation in the seed: its accounts sync the
        // directory and their other contacts too.
        "domains": {
            "example.com": { "sources": ["contacts", "directory", "other_contacts"] },
            "acme.de": { "region": "DE" },
        },
    })
}

/// The configuration for real Google: its default endpoints, the integrator's own client.
pub fn google_config(
    client_id: &str,
    secret: &str,
    redirect_uri: &str,
    data_dir: &Path,
    region: &str,
) -> Value {
    json!({
        "client_id": client_id,
        "client_secret": secret,
        "redirect_uri": redirect_uri,
        "data_dir": data_dir,
        "default_region": region,
    })
}

/// Where `demo` and `serve` leave the settings they opened the plugin with, for `call` and
/// `search` (see `offline_config`). No secret: only what the plugin keeps or erases by.
const SETTINGS_FILE: &str = "host-sim-settings.json";

/// The settings that decide what the plugin keeps of a data_dir at `gi_open`: the sources
/// it syncs (a source left out is erased), calendar presence (off, the busy times are
/// erased) and the domains' own settings (acme.de's region).
const KEPT_BY: [&str; 4] = ["sources", "calendar", "presence_interval_secs", "domains"];

/// Opens the plugin, and leaves beside its data the settings that `call` and `search` must
/// open it with again so as to erase nothing.
pub fn open_remembering(api: &'static Api, config: &Value) -> Result<Plugin<'static>, String> {
    let plugin = open(api, config)?;
    let data_dir = Path::new(config["data_dir"].as_str().unwrap_or_default());
    let kept: serde_json::Map<String, Value> = KEPT_BY
        .iter()
        .filter_map(|key| Some((key.to_string(), config.get(*key)?.clone())))
        .collect();
    let path = data_dir.join(SETTINGS_FILE);
    let text = serde_json::to_string_pretty(&kept).expect("JSON values serialize");
    if let Err(e) = std::fs::write(&path, text) {
        eprintln!(
            "warning: cannot write {} ({e}): `host-sim call` and `search` on this data_dir would open it with the default sources and erase the others",
            path.display()
        );
    }
    Ok(plugin)
}

/// A configuration whose Google endpoints are a loopback port nobody listens on: lookups are
/// answered from the stored contacts, and any sync fails at once without leaving the machine.
/// The longest interval (7 days) keeps recently synced accounts from syncing while `call` runs.
/// The sources, calendar and domains are those `demo` or `serve` left in the data_dir (see
/// `open_remembering`): opened with the defaults instead, the plugin would erase the
/// directory, the other contacts and the busy times a demo synced.
pub fn offline_config(data_dir: &Path, region: &str) -> Result<Value, String> {
    let mut config = offline_endpoints(data_dir, region, dead_port()?);
    let path = data_dir.join(SETTINGS_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let kept: serde_json::Map<String, Value> = serde_json::from_str(&text)
                .map_err(|e| format!("{} is not host-sim's settings ({e}): remove it, or run `host-sim serve` on this data_dir once", path.display()))?;
            for (key, value) in kept {
                if KEPT_BY.contains(&key.as_str()) {
                    config[key] = value;
                }
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    }
    Ok(config)
}

/// The plugin's settings with every Google endpoint at `dead`.
fn offline_endpoints(data_dir: &Path, region: &str, dead: SocketAddr) -> Value {
    let base = format!("http://{dead}");
    json!({
        "client_id": "host-sim-offline.apps.googleusercontent.com",
        "client_secret": "offline",
        "redirect_uri": format!("http://{dead}/google/callback"),
        "data_dir": data_dir,
        "default_region": region,
        "sync_interval_secs": 604_800,
        "google": {
            "auth_url": format!("{base}/o/oauth2/v2/auth"),
            "token_url": format!("{base}/token"),
            "revoke_url": format!("{base}/revoke"),
            "people_url": base,
            // Left out, it was Google's: `call` and `search` on a demo's data_dir (calendar
            // on) fetched presence at open from www.googleapis.com with the stored token.
            "calendar_url": base,
        },
    })
}

/// A loopback port that was free a moment ago and is closed now.
fn dead_port() -> Result<SocketAddr, String> {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .map_err(|e| format!("cannot find a free loopback port: {e}"))?;
    l.local_addr().map_err(|e| e.to_string())
}

/// One incoming call: the lookup as the PBX makes it, and how long it took.
pub fn ring(
    plugin: &Plugin<'_>,
    account: &str,
    number: &str,
) -> Result<(Option<Caller>, Duration), String> {
    if account.contains('\0') || number.contains('\0') {
        return Err("an account or number cannot contain a NUL character".into());
    }
    // Only the gi_lookup_contact call is timed: the strings are made first, as a PBX has
    // them already, and the answer is turned into Rust strings after.
    let account_c = std::ffi::CString::new(account).map_err(|e| e.to_string())?;
    let number_c = std::ffi::CString::new(number).map_err(|e| e.to_string())?;
    let mut out = host_sim::plugin::GiContact::default();
    let start = Instant::now();
    let code = plugin.lookup_into(&account_c, &number_c, &mut out);
    let took = start.elapsed();
    match code {
        GiResult::GI_OK => Ok((Some(Caller::from(&out)), took)),
        GiResult::GI_NOT_FOUND => Ok((None, took)),
        code => Err(format!(
            "lookup failed ({code:?}): {}",
            plugin.api().last_error()
        )),
    }
}

/// The most rows one search asks for (`host-sim search --limit`, the page's `limit`): the
/// host makes an array of that many `GiContact`s.
pub const MAX_SEARCH_ROWS: usize = 1000;

/// One page of an address-book search: the rows, how many match in all, how long the call took.
pub struct SearchPage {
    pub rows: Vec<Caller>,
    pub total: usize,
    pub took: Duration,
}

/// `gi_search_contacts` as the PBX's phone directory calls it: a page of `limit` rows from
/// `offset`. A failed search returns the plugin's code and message (a bad keypad query is
/// `GI_ERR_INVALID_ARGUMENT`).
pub fn search(
    plugin: &Plugin<'_>,
    account: &str,
    query: &str,
    keypad: bool,
    offset: usize,
    limit: usize,
) -> Result<SearchPage, CallError> {
    if account.contains('\0') || query.contains('\0') {
        return Err(CallError {
            code: GiResult::GI_ERR_INVALID_ARGUMENT,
            message: "an account or a search cannot contain a NUL character".into(),
        });
    }
    let mode = if keypad {
        GiSearchMode::GI_SEARCH_KEYPAD
    } else {
        GiSearchMode::GI_SEARCH_TEXT
    };
    let start = Instant::now();
    let (rows, total) = plugin.search(account, query, mode, offset, limit.min(MAX_SEARCH_ROWS))?;
    Ok(SearchPage {
        rows,
        total,
        took: start.elapsed(),
    })
}

/// A search row's name as a phone directory shows it: "name · company" (the plugin has already
/// put the company, or else the email address, in `name` when the contact has no name).
pub fn row_title(c: &Caller) -> String {
    let name = if c.name.is_empty() {
        "(no name)"
    } else {
        &c.name
    };
    if !c.company.is_empty() && c.company != name {
        format!("{name} · {}", c.company)
    } else {
        name.to_string()
    }
}

/// Search rows as aligned lines: name · company, label and number, groups, account (and the
/// source when it is not the account's own contacts). Each line starts with `indent`.
pub fn search_lines(rows: &[Caller], indent: &str) -> Vec<String> {
    let cells: Vec<[String; 4]> = rows
        .iter()
        .map(|c| {
            let label = if c.label.is_empty() {
                "phone"
            } else {
                &c.label
            };
            let groups = if c.groups.is_empty() {
                "-".to_string()
            } else {
                c.groups.clone()
            };
            let account = if c.source.is_empty() || c.source == "contacts" {
                c.account.clone()
            } else {
                format!("{} ({})", c.account, c.source)
            };
            [
                row_title(c),
                format!("{label} {}", c.number),
                groups,
                account,
            ]
        })
        .collect();
    let width = |i: usize, cap: usize| {
        cells
            .iter()
            .map(|c| c[i].chars().count())
            .max()
            .unwrap_or(0)
            .min(cap)
    };
    let widths = [width(0, 48), width(1, 24), width(2, 28)];
    cells
        .iter()
        .map(|c| {
            let mut line = indent.to_string();
            for (cell, w) in c[..3].iter().zip(widths) {
                line.push_str(cell);
                let pad = w.saturating_sub(cell.chars().count()) + 3;
                line.extend(std::iter::repeat_n(' ', pad));
            }
            line.push_str(&c[3]);
            line
        })
        .collect()
}

/// The last line of a search: "N of TOTAL", with the rows' place when it is not the first page.
pub fn search_summary(shown: usize, total: usize, offset: usize) -> String {
    if shown > 0 && offset > 0 {
        format!(
            "{shown} of {total}   (rows {}-{})",
            offset + 1,
            offset + shown
        )
    } else {
        format!("{shown} of {total}")
    }
}

/// What the phone shows, on one or two lines.
pub fn phone_display(caller: Option<&Caller>, number: &str, took: Duration) -> String {
    let took = format_duration(took);
    match caller {
        Some(c) => {
            let name = if c.name.is_empty() {
                &c.company
            } else {
                &c.name
            };
            let mut line = format!("  ☎  {name}");
            if !c.company.is_empty() && c.company != *name {
                line.push_str(&format!(" · {}", c.company));
            }
            let label = if c.label.is_empty() {
                "phone"
            } else {
                &c.label
            };
            let from = match c.source.as_str() {
                "directory" => "Workspace directory",
                "other_contacts" => "other contacts",
                _ => "contacts",
            };
            line.push_str(&format!(
                "\n     {label} {}   ({from} of {}; lookup {took})",
                c.number, c.account
            ));
            line
        }
        None => format!("  ☎  unknown caller: {number}   (lookup {took})"),
    }
}

pub fn format_duration(d: Duration) -> String {
    let micros = d.as_secs_f64() * 1e6;
    if micros < 1000.0 {
        format!("{micros:.1} µs")
    } else {
        format!("{:.2} ms", micros / 1000.0)
    }
}

pub fn random_hex(bytes: usize) -> String {
    use rand::Rng as _;
    let mut rng = rand::rng();
    (0..bytes)
        .map(|_| format!("{:02x}", rng.random::<u8>()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `call` and `search` never leave the machine: every endpoint the plugin's `google`
    /// settings name is the dead loopback port.
    #[test]
    fn the_offline_configuration_points_every_google_endpoint_at_loopback() {
        let dir = tempfile::tempdir().unwrap();
        let config = offline_config(dir.path(), "US").unwrap();
        let google = config["google"].as_object().unwrap();
        for key in [
            "auth_url",
            "token_url",
            "revoke_url",
            "people_url",
            "calendar_url",
        ] {
            let url = google
                .get(key)
                .and_then(Value::as_str)
                .unwrap_or_else(|| panic!("{key} is left to its default: Google's"));
            assert!(url.starts_with("http://127.0.0.1:"), "{key}: {url}");
        }
        assert_eq!(google.len(), 5, "{google:?}");
    }
}
