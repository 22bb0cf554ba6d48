//! `gi_open`'s JSON configuration: parsed strictly (an unknown or missing field is an error
//! that names it), checked once, and resolved per domain so that every later call finds its
//! OAuth client and region without parsing anything.

use std::collections::HashMap;
use std::fmt;
use std::fs;
use std::ops::RangeInclusive;
use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use url::Url;

use crate::account::{self, domain_of};
use crate::book::contact::Source;
use crate::book::phone::RegionRules;
use crate::error::{Error, Result};

/// A secret from the configuration. Its `Debug` never shows the value, so no log line or
/// panic message can carry it by accident.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    client_id: String,
    client_secret: Secret,
    redirect_uri: String,
    data_dir: PathBuf,
    #[serde(default = "default_region")]
    default_region: String,
    #[serde(default = "default_sync_interval")]
    sync_interval_secs: u64,
    #[serde(default)]
    google: RawGoogle,
    #[serde(default)]
    domains: HashMap<String, RawDomain>,
    #[serde(default = "default_sources")]
    sources: Vec<String>,
    #[serde(default)]
    contact_groups: Option<Vec<String>>,
    #[serde(default)]
    calendar: bool,
    #[serde(default = "default_presence_interval")]
    presence_interval_secs: u64,
    #[serde(default = "default_store")]
    store: String,
    #[serde(default)]
    token_key_file: Option<PathBuf>,
    #[serde(default = "default_requests_per_minute")]
    google_requests_per_minute: u64,
    /// The first pause of the exponential backoff after a 429 or 5xx without `Retry-After`.
    /// Google recommends about a second; tests shorten it.
    #[serde(default = "default_retry_base_ms")]
    retry_base_ms: u64,
}

/// The contract's bounds. Sync tokens die after 7 days, so a longer interval would make
/// every sync a full one.
const SYNC_INTERVAL_SECS: RangeInclusive<u64> = 1..=604_800;
const PRESENCE_INTERVAL_SECS: RangeInclusive<u64> = 10..=3600;
const REQUESTS_PER_MINUTE: RangeInclusive<u64> = 1..=100_000;
/// Up to ten minutes: a longer first pause would outlast any sync.
const RETRY_BASE_MS: RangeInclusive<u64> = 1..=600_000;

fn default_region() -> String {
    "US".into()
}
fn default_sync_interval() -> u64 {
    600
}
fn default_retry_base_ms() -> u64 {
    1000
}
fn default_sources() -> Vec<String> {
    vec!["contacts".into()]
}
fn default_presence_interval() -> u64 {
    300
}
fn default_store() -> String {
    "sqlite".into()
}
fn default_requests_per_minute() -> u64 {
    600
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGoogle {
    #[serde(default = "default_auth_url")]
    auth_url: String,
    #[serde(default = "default_token_url")]
    token_url: String,
    #[serde(default = "default_revoke_url")]
    revoke_url: String,
    #[serde(default = "default_people_url")]
    people_url: String,
    #[serde(default = "default_calendar_url")]
    calendar_url: String,
}

impl Default for RawGoogle {
    fn default() -> RawGoogle {
        RawGoogle {
            auth_url: default_auth_url(),
            token_url: default_token_url(),
            revoke_url: default_revoke_url(),
            people_url: default_people_url(),
            calendar_url: default_calendar_url(),
        }
    }
}

fn default_auth_url() -> String {
    "https://accounts.google.com/o/oauth2/v2/auth".into()
}
fn default_token_url() -> String {
    "https://oauth2.googleapis.com/token".into()
}
fn default_revoke_url() -> String {
    "https://oauth2.googleapis.com/revoke".into()
}
fn default_people_url() -> String {
    "https://people.googleapis.com".into()
}
fn default_calendar_url() -> String {
    "https://www.googleapis.com".into()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDomain {
    client_id: Option<String>,
    client_secret: Option<Secret>,
    redirect_uri: Option<String>,
    region: Option<String>,
    sources: Option<Vec<String>>,
    /// Absent: the top level's; null: no filter.
    #[serde(default, deserialize_with = "present")]
    contact_groups: Option<Option<Vec<String>>>,
    calendar: Option<bool>,
}

/// Tells a field given as null (`Some(None)`) from one left out (`None`).
fn present<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> std::result::Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(deserializer).map(Some)
}

/// Google's endpoints, checked to be absolute URLs that are https (or http on loopback).
#[derive(Clone, Debug)]
pub struct GoogleEndpoints {
    pub auth_url: Url,
    pub token_url: Url,
    pub revoke_url: Url,
    pub people_url: Url,
    pub calendar_url: Url,
}

/// Everything a call for one domain needs: its OAuth client and the region its numbers are
/// read in. Domains without an entry share the top-level settings.
#[derive(Debug)]
pub struct DomainSettings {
    pub client_id: String,
    pub client_secret: Secret,
    pub redirect_uri: Url,
    pub region: RegionRules,
    /// What the domain's accounts sync, in lookup order, each once.
    pub sources: Vec<Source>,
    /// Only contacts in one of these groups (case-insensitive), when set.
    pub contact_groups: Option<Vec<String>>,
    pub calendar: bool,
}

#[derive(Debug)]
pub struct Config {
    pub data_dir: PathBuf,
    pub sync_interval: Duration,
    pub presence_interval: Duration,
    pub retry_base: Duration,
    pub requests_per_minute: u64,
    /// Where tokens' key is, when the configuration names a file; else `data_dir/token.key`.
    pub token_key_file: Option<PathBuf>,
    /// Where the plugin's state lives.
    pub store: StoreKind,
    pub google: GoogleEndpoints,
    default_settings: Arc<DomainSettings>,
    /// Consulted on every lookup (for the region), so hashed with FxHash, not SipHash.
    domains: HashMap<String, Arc<DomainSettings>, rustc_hash::FxBuildHasher>,
}

impl Config {
    /// Parses and checks the configuration, and creates `data_dir` (mode 0700) if needed.
    pub fn parse(json: &str) -> Result<Config> {
        let raw = read_raw(json)?;

        let google = GoogleEndpoints {
            auth_url: parse_endpoint("google.auth_url", &raw.google.auth_url)?,
            token_url: parse_endpoint("google.token_url", &raw.google.token_url)?,
            revoke_url: parse_endpoint("google.revoke_url", &raw.google.revoke_url)?,
            people_url: parse_endpoint("google.people_url", &raw.google.people_url)?,
            calendar_url: parse_endpoint("google.calendar_url", &raw.google.calendar_url)?,
        };
        within(
            "sync_interval_secs",
            raw.sync_interval_secs,
            SYNC_INTERVAL_SECS,
            "600; Google's sync tokens die after 7 days",
        )?;
        within(
            "presence_interval_secs",
            raw.presence_interval_secs,
            PRESENCE_INTERVAL_SECS,
            "300",
        )?;
        within(
            "google_requests_per_minute",
            raw.google_requests_per_minute,
            REQUESTS_PER_MINUTE,
            "600",
        )?;
        within("retry_base_ms", raw.retry_base_ms, RETRY_BASE_MS, "1000")?;
        let store = parse_store(&raw.store)?;
        if matches!(store, StoreKind::Postgres(_)) && raw.token_key_file.is_none() {
            return Err(Error::config(
                "configuration: token_key_file: required with the PostgreSQL store; every node must seal tokens with the same key: create it once (head -c 32 /dev/urandom > FILE; chmod 600 FILE), copy it to each node and name it here",
            ));
        }

        let default_settings = Arc::new(DomainSettings {
            client_id: non_empty("client_id", raw.client_id)?,
            client_secret: non_empty_secret("client_secret", raw.client_secret)?,
            redirect_uri: parse_endpoint("redirect_uri", &raw.redirect_uri)?,
            region: parse_region("default_region", &raw.default_region)?,
            sources: parse_sources("sources", raw.sources)?,
            contact_groups: raw.contact_groups,
            calendar: raw.calendar,
        });

        let mut domains = HashMap::default();
        for (domain, over) in raw.domains {
            let field = |name: &str| format!("domains.{domain}.{name}");
            if domain.is_empty() || domain.contains('/') || account::validate(&domain).is_err() {
                return Err(Error::config(format!(
                    "configuration: domains: \"{domain}\" is not a domain; use the part of the account before '/'"
                )));
            }
            // Accounts are looked up by their canonical domain (`ACME.de.` is `acme.de`), so
            // the section is filed under it too, or its users would get the top level's.
            let canonical = account::canonical(&domain).into_owned();
            let settings = DomainSettings {
                client_id: match over.client_id {
                    Some(id) => non_empty(&field("client_id"), id)?,
                    None => default_settings.client_id.clone(),
                },
                client_secret: match over.client_secret {
                    Some(secret) => non_empty_secret(&field("client_secret"), secret)?,
                    None => default_settings.client_secret.clone(),
                },
                redirect_uri: match over.redirect_uri {
                    Some(uri) => parse_endpoint(&field("redirect_uri"), &uri)?,
                    None => default_settings.redirect_uri.clone(),
                },
                region: match over.region {
                    Some(region) => parse_region(&field("region"), &region)?,
                    None => default_settings.region.clone(),
                },
                sources: match over.sources {
                    Some(sources) => parse_sources(&field("sources"), sources)?,
                    None => default_settings.sources.clone(),
                },
                contact_groups: match over.contact_groups {
                    Some(groups) => groups,
                    None => default_settings.contact_groups.clone(),
                },
                calendar: over.calendar.unwrap_or(default_settings.calendar),
            };
            if domains
                .insert(canonical.clone(), Arc::new(settings))
                .is_some()
            {
                return Err(Error::config(format!(
                    "configuration: domains: two sections name the domain {canonical} (domains are compared without regard to case and trailing dots); keep one"
                )));
            }
        }

        create_data_dir(&raw.data_dir)?;

        Ok(Config {
            data_dir: raw.data_dir,
            sync_interval: Duration::from_secs(raw.sync_interval_secs),
            presence_interval: Duration::from_secs(raw.presence_interval_secs),
            retry_base: Duration::from_millis(raw.retry_base_ms),
            requests_per_minute: raw.google_requests_per_minute,
            token_key_file: raw.token_key_file,
            store,
            google,
            default_settings,
            domains,
        })
    }

    /// The OAuth client and region for an account, from its domain's entry or the top level.
    pub fn settings_for(&self, account: &str) -> &Arc<DomainSettings> {
        if self.domains.is_empty() {
            return &self.default_settings;
        }
        self.domains
            .get(domain_of(account))
            .unwrap_or(&self.default_settings)
    }
}

/// Where the plugin keeps its state: SQLite in data_dir (one node), or PostgreSQL (shared by a
/// cluster's nodes).
#[derive(Debug)]
pub enum StoreKind {
    Sqlite,
    Postgres(Box<PgUrl>),
}

/// A PostgreSQL store's connection settings, parsed from the configuration's URL. Its
/// password must never be shown: `Display` gives user, hosts and database only.
#[derive(Clone)]
pub struct PgUrl {
    pub settings: postgres::Config,
    /// The URL's `sslrootcert`: a PEM file of the certificate authorities (a private CA's, a
    /// self-signed server's) the server's TLS certificate may chain to, beside the web's.
    pub root_cert: Option<PathBuf>,
    described: String,
}

impl PgUrl {
    pub fn parse(url: &str) -> Result<PgUrl> {
        let malformed = || {
            Error::config(
                "configuration: store: the PostgreSQL URL is malformed; write it as postgresql://USER@HOST:PORT/DBNAME?sslmode=require (a password may follow the user as USER:PASSWORD)",
            )
        };
        // Only URLs: postgres::Config also takes "key=value" strings, which this field does
        // not document.
        if !(url.starts_with("postgresql://") || url.starts_with("postgres://")) {
            return Err(malformed());
        }
        // `sslrootcert` is libpq's, not the postgres crate's: taken out here and given to the
        // TLS setup.
        let (url, root_cert) = take_query_param(url, "sslrootcert");
        let root_cert = root_cert.map(PathBuf::from);
        if root_cert.as_ref().is_some_and(|path| !path.is_absolute()) {
            return Err(Error::config(
                "configuration: store: sslrootcert must be an absolute path to a PEM file of the CA certificates the PostgreSQL server's certificate chains to",
            ));
        }
        let mut settings: postgres::Config = url.parse().map_err(|_| malformed())?;
        let hosts: Vec<String> = settings
            .get_hosts()
            .iter()
            .zip(settings.get_ports().iter().chain(std::iter::repeat(&5432)))
            .map(|(host, port)| match host {
                postgres::config::Host::Tcp(name) => format!("{name}:{port}"),
                postgres::config::Host::Unix(path) => format!("{}:{port}", path.display()),
            })
            .collect();
        // An unescaped "@" in the password splits the URL at the wrong place (the first "@"
        // ends the password), and the rest of the password would be shown as the host or,
        // when a "/" follows in it, as the host and the database: `pbx:ab@cd/ef@db/pbx` is
        // host "cd" and database "ef@db/pbx". A URL's user, password and database name carry
        // an "@" percent-encoded, so more than one before the query is that mistake.
        let before_query = url.split('?').next().unwrap_or_default();
        if before_query.matches('@').count() > 1 {
            return Err(Error::config(
                "configuration: store: the PostgreSQL URL has an \"@\" in the wrong place; percent-encode \"@\" in the user or password as %40",
            ));
        }
        if hosts.is_empty() {
            return Err(Error::config(
                "configuration: store: the PostgreSQL URL names no host; write it as postgresql://USER@HOST:PORT/DBNAME",
            ));
        }
        if settings.get_connect_timeout().is_none() {
            // An unreachable server must fail an open (or a write) in seconds, not minutes.
            settings.connect_timeout(Duration::from_secs(5));
        }
        settings.application_name("google-integration");
        // A peer that vanished without a word (a crashed host, a NAT or load balancer dropping
        // an idle flow) must be noticed in about a minute, on both sides: here, so that a call
        // fails with GI_ERR_STORAGE instead of hanging and the listener reconnects; at the
        // server, so that a dead node's session ends and its claims (advisory locks) with it.
        // Keepalives also keep an idle listener's flow alive through NAT.
        settings
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(30))
            .keepalives_interval(Duration::from_secs(10))
            .keepalives_retries(3)
            .tcp_user_timeout(Duration::from_secs(60));
        // JIT compiling pays for long analytic queries; the plugin's are short, and the open's
        // scan of every contact streams rows rather than computing over them.
        let server_side = "-c jit=off -c tcp_keepalives_idle=30 -c tcp_keepalives_interval=10 -c tcp_keepalives_count=3";
        let options = match settings.get_options() {
            Some(given) => format!("{given} {server_side}"),
            None => server_side.to_owned(),
        };
        settings.options(&options);
        let described = format!(
            "{}@{}/{}",
            settings.get_user().unwrap_or("?"),
            hosts.join(","),
            settings.get_dbname().unwrap_or("?")
        );
        Ok(PgUrl {
            settings,
            root_cert,
            described,
        })
    }
}

/// `%XX` escapes decoded (a '+' stays a '+', as in a URL's path); a malformed escape is kept
/// as written.
fn percent_decoded(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The URL without its query parameter `name`, and that parameter's value (percent-decoded).
/// The other parameters are kept as written.
fn take_query_param(url: &str, name: &str) -> (String, Option<String>) {
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_owned(), None);
    };
    let mut value = None;
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| {
            let (key, raw) = pair.split_once('=').unwrap_or((pair, ""));
            if key != name {
                return true;
            }
            value = Some(percent_decoded(raw));
            false
        })
        .collect();
    let url = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    (url, value)
}

/// user@host:port/dbname: never the password.
impl fmt::Display for PgUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.described)
    }
}

impl fmt::Debug for PgUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PgUrl({})", self.described)
    }
}

fn parse_store(store: &str) -> Result<StoreKind> {
    if store == "sqlite" {
        return Ok(StoreKind::Sqlite);
    }
    if store.starts_with("postgres") {
        return Ok(StoreKind::Postgres(Box::new(PgUrl::parse(store)?)));
    }
    Err(Error::config(
        "configuration: store: give \"sqlite\" (the default) or a PostgreSQL URL, postgresql://USER@HOST:PORT/DBNAME",
    ))
}

/// The configuration's JSON as written, or an error naming the field that is not of its type
/// (`sync_interval_secs: invalid value: integer `-1`, expected u64`): serde's message alone
/// gives only a line and column.
fn read_raw(json: &str) -> Result<RawConfig> {
    let mut reader = serde_json::Deserializer::from_str(json);
    let raw: RawConfig = serde_path_to_error::deserialize(&mut reader).map_err(|e| {
        let path = e.path().to_string();
        match path.as_str() {
            "." => Error::config(format!("configuration: {}", e.inner())),
            _ => Error::config(format!("configuration: {path}: {}", e.inner())),
        }
    })?;
    reader
        .end()
        .map_err(|e| Error::config(format!("configuration: {e}")))?;
    Ok(raw)
}

fn within(field: &str, value: u64, bounds: RangeInclusive<u64>, default: &str) -> Result<()> {
    if bounds.contains(&value) {
        return Ok(());
    }
    Err(Error::config(format!(
        "configuration: {field} is {value}; it must be from {} to {} (the default is {default})",
        bounds.start(),
        bounds.end()
    )))
}

fn parse_sources(field: &str, sources: Vec<String>) -> Result<Vec<Source>> {
    if sources.is_empty() {
        return Err(Error::config(format!(
            "configuration: {field} is empty; list at least one of {:?}",
            Source::ALL.map(Source::name)
        )));
    }
    if let Some(unknown) = sources.iter().find(|s| Source::from_name(s).is_none()) {
        return Err(Error::config(format!(
            "configuration: {field}: \"{unknown}\" is not a contact source; use {:?}",
            Source::ALL.map(Source::name)
        )));
    }
    // In the contract's lookup order, each once.
    Ok(Source::ALL
        .into_iter()
        .filter(|known| sources.iter().any(|s| s == known.name()))
        .collect())
}

fn non_empty(field: &str, value: String) -> Result<String> {
    if value.trim().is_empty() {
        return Err(Error::config(format!(
            "configuration: {field} is empty; copy it from the Google Cloud console (APIs & Services > Credentials)"
        )));
    }
    Ok(value)
}

fn non_empty_secret(field: &str, value: Secret) -> Result<Secret> {
    if value.expose().trim().is_empty() {
        return Err(Error::config(format!(
            "configuration: {field} is empty; copy it from the Google Cloud console (APIs & Services > Credentials)"
        )));
    }
    Ok(value)
}

fn parse_region(field: &str, region: &str) -> Result<RegionRules> {
    RegionRules::new(region).ok_or_else(|| {
        Error::config(format!(
            "configuration: {field} \"{region}\" is not an ISO 3166 country code known to the number metadata (e.g. \"US\", \"GB\", \"DE\")"
        ))
    })
}

/// An endpoint must be an absolute https URL; plain http only to a loopback host, where the
/// host simulator and tests run their fake Google. Anything else would send tokens in clear.
fn parse_endpoint(field: &str, value: &str) -> Result<Url> {
    let url = Url::parse(value).map_err(|e| {
        Error::config(format!(
            "configuration: {field} \"{value}\" is not a valid absolute URL ({e})"
        ))
    })?;
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(&url) => {}
        "http" => {
            return Err(Error::config(format!(
                "configuration: {field} must use https (plain http is allowed only for 127.0.0.1, [::1] or localhost)"
            )))
        }
        other => {
            return Err(Error::config(format!(
                "configuration: {field} has scheme \"{other}\"; use an https URL"
            )))
        }
    }
    if url.host().is_none() {
        return Err(Error::config(format!(
            "configuration: {field} \"{value}\" has no host"
        )));
    }
    Ok(url)
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

fn create_data_dir(dir: &PathBuf) -> Result<()> {
    if dir.as_os_str().is_empty() {
        return Err(Error::config(
            "configuration: data_dir is empty; give a directory the PBX may write, e.g. /var/lib/pbx/google",
        ));
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| {
            Error::config(format!(
                "configuration: data_dir \"{}\" cannot be created ({e}); create it or choose a writable directory",
                dir.display()
            ))
        })?;
    // Tokens live here: a directory others can read (made by hand, or by an older release)
    // is tightened, and the administrator told.
    if let Ok(meta) = fs::metadata(dir) {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(|e| {
                Error::config(format!(
                    "configuration: data_dir \"{}\" is readable by others (mode {mode:o}) and cannot be made private ({e}); chmod 700 it",
                    dir.display()
                ))
            })?;
            log::warn!(
                "data_dir {} was readable by others (mode {mode:o}); it is now 700, since it holds tokens",
                dir.display()
            );
        }
    }
    // Prove now that the directory is writable, rather than failing on the first token. A
    // name of its own: two opens probing one name at once failed the one whose removal found
    // the file gone ("not writable"), where one of them should have found data_dir in use.
    let probe = dir.join(format!(".write-test.{:016x}", rand::random::<u64>()));
    fs::write(&probe, b"")
        .and_then(|()| fs::remove_file(&probe))
        .map_err(|e| {
            Error::config(format!(
                "configuration: data_dir \"{}\" is not writable ({e}); give the PBX user write access",
                dir.display()
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sslrootcert_is_taken_out_of_the_url_decoded_and_the_rest_kept_as_written() {
        let (url, value) = take_query_param(
            "postgresql://u:p%40ss@h:5432/db?sslmode=require&sslrootcert=/etc/pbx/my%20ca+1.pem&options=-c%20x",
            "sslrootcert",
        );
        assert_eq!(
            url,
            "postgresql://u:p%40ss@h:5432/db?sslmode=require&options=-c%20x"
        );
        assert_eq!(value.as_deref(), Some("/etc/pbx/my ca+1.pem"));
        let (url, value) = take_query_param("postgresql://h/db?sslrootcert=/ca.pem", "sslrootcert");
        assert_eq!(
            (url.as_str(), value.as_deref()),
            ("postgresql://h/db", Some("/ca.pem"))
        );
        let (url, value) = take_query_param("postgresql://h/db", "sslrootcert");
        assert_eq!((url.as_str(), value), ("postgresql://h/db", None));
        assert_eq!(percent_decoded("%zz%+1%4"), "%zz%+1%4");
    }

    #[test]
    fn a_pg_url_with_sslrootcert_parses_and_never_shows_the_password() {
        let url = PgUrl::parse(
            "postgresql://gi:secret@db:5433/pbx?sslmode=require&sslrootcert=/etc/ca.pem",
        )
        .unwrap();
        assert_eq!(
            url.root_cert.as_deref(),
            Some(std::path::Path::new("/etc/ca.pem"))
        );
        assert_eq!(url.to_string(), "gi@db:5433/pbx");
        let err = PgUrl::parse("postgresql://gi:secret@db/pbx?sslrootcert=ca.pem").unwrap_err();
        assert!(err.message().contains("absolute path"), "{}", err.message());
    }

    #[test]
    fn an_unescaped_at_in_the_password_is_refused_without_showing_any_of_it() {
        for url in [
            "postgresql://pbx:ab@cd@db.example.com/pbx",
            // The rest of the password would have been the host "cd" and the database
            // "ef@db.example.com/pbx", shown in every error and log line naming the store.
            "postgresql://pbx:ab@cd/ef@db.example.com/pbx",
            "postgresql://pbx:ab@cd/ef@db.example.com/pbx?sslmode=require",
        ] {
            let err = PgUrl::parse(url).unwrap_err();
            let message = err.message();
            assert!(message.contains("%40"), "{url}: {message}");
            assert!(
                !message.contains("ab") && !message.contains("cd") && !message.contains("ef"),
                "{url}: {message}"
            );
        }
        // Encoded, it is the password's, and the URL parses.
        let url = PgUrl::parse("postgresql://pbx:ab%40cd%2Fef@db.example.com/pbx").unwrap();
        assert_eq!(url.to_string(), "pbx@db.example.com:5432/pbx");
        // An "@" in the query (an option's value) is not the authority's.
        PgUrl::parse("postgresql://pbx@db.example.com/pbx?application_name=a@b").unwrap();
    }
}
