//! A fake Google for tests: the OAuth 2.0 web-server flow (authorization page, token and
//! revocation endpoints) and the People API's `people.connections.list`, served over plain
//! HTTP on loopback only, plus `contactGroups.list` for the user's contact groups (labels),
//! the other contact sources `otherContacts.list` and `people.listDirectoryPeople`, and the
//! Calendar API's `freebusy.query` for the user's busy times.
//!
//! It answers with the shapes Google uses, errors included, so that a client tested against it
//! meets the same bodies, status codes and quirks it will meet in production:
//!
//! * OAuth errors are `{"error": "...", "error_description": "..."}` (400 `invalid_grant`,
//!   401 `invalid_client`, `unsupported_grant_type`, `redirect_uri_mismatch`, ...).
//! * API errors are `{"error": {"code", "message", "status", "details": [ErrorInfo...]}}`.
//! * Empty repeated fields are left out (a user without contacts gets no `connections` key).
//! * The authorization code contains a `/` (`4/0...`) and the callback query leaves `/` and `:`
//!   unescaped, as Google's redirect does; it also carries `authuser=0&prompt=consent`.
//! * A refresh token is issued only with `access_type=offline`, and only on a user's first
//!   consent for a client unless `prompt=consent` is asked for; refreshing never sends a new one.
//! * Revoking any token of a grant (refresh or access) ends the user's authorization of that
//!   client: every refresh and access token of that user and client dies.
//! * `nextSyncToken` is sent only on the last page and only with `requestSyncToken=true`;
//!   page tokens require the other parameters to match the first call.
//!
//! Where Google is lenient the fake is stricter on purpose, to catch client mistakes: the
//! authorization request must carry `state`, PKCE with `code_challenge_method=S256` and the
//! `contacts.readonly` scope; the People API takes the access token only from the
//! `Authorization: Bearer` header.
//!
//! Nothing but loopback addresses is ever bound, and the fake never connects anywhere.
//!
//! The HTTP server is a small std one (`http.rs`): one request per connection, answered with
//! `Connection: close`, a thread per connection. Dropping [`FakeGoogle`] closes the listener and
//! cuts open connections, so a client then meets "connection refused" at once rather than a
//! hang on a pooled keep-alive connection. Layout: `oauth.rs` (consent page, token, revoke),
//! `people.rs` (API errors, `people.connections.list`), `groups.rs` (`contactGroups.list`),
//! `sources.rs` (`otherContacts.list`, `people.listDirectoryPeople`), `calendar.rs`
//! (`freebusy.query`, RFC 3339 times), `tests.rs`.
//!
//! Contact groups: a [`Person`] names its groups ([`Person::with_group`]); a name seen for the
//! first time creates the user's group with a stable `contactGroups/{hex id}`, which
//! [`FakeGoogle::rename_group`] keeps. Persons' `memberships` name the groups by id, plus the
//! system group `myContacts` for everyone; `contactGroups.list` lists the user's groups then
//! the eight system groups, and ends with a `nextSyncToken` whether asked for or not.
//!
//! Other contacts and the directory: a user's "Other contacts" are set with
//! [`FakeGoogle::set_other_contacts`] (`otherContacts/c…`); a Google Workspace domain and its
//! directory with [`FakeGoogle::set_directory`] (profiles `people/{digits}`, shared contacts
//! `people/c…`), seen by every user whose address is at that domain. Each list needs its own
//! scope ([`CONTACTS_OTHER_READONLY`], [`DIRECTORY_READONLY`]), has its own fault queue
//! ([`Endpoint::OtherContacts`], [`Endpoint::Directory`]) and its own sync tokens; a user of a
//! consumer domain asking for a directory gets Google's `FAILED_PRECONDITION`.
//!
//! Calendar: a user's busy periods are set with [`FakeGoogle::set_busy`] (Unix seconds,
//! `[start, end)`); `POST /calendar/v3/freeBusy` answers those overlapping the asked window,
//! clipped to it, sorted by start and never merged (overlapping or adjacent periods come back
//! as stored, as two events of a real calendar do), so a client's own merging is exercised.
//! It takes an access token whose grant has a calendar scope ([`CALENDAR_FREEBUSY`],
//! `calendar.events.freebusy`, `calendar.readonly` or `calendar`); [`FakeGoogle::approve_unticking`] grants less than was
//! asked, as a user who unticks a box on Google's consent screen.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read as _, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use parking_lot::Mutex;

use crate::html_escape;
use rand::Rng as _;
use serde_json::{json, Map, Value};
use sha2::{Digest as _, Sha256};

mod calendar;
mod groups;
mod http;
mod oauth;
mod people;
mod sources;
#[cfg(test)]
mod tests;

pub use calendar::{parse_rfc3339_ms, rfc3339_utc};

use calendar::*;
use groups::*;
use http::*;
use oauth::*;
use people::*;
use sources::*;

/// The scope the plugin must ask for.
pub const CONTACTS_READONLY: &str = "https://www.googleapis.com/auth/contacts.readonly";
const CONTACTS_FULL: &str = "https://www.googleapis.com/auth/contacts";
/// The scope the plugin asks for when `calendar` is on: free/busy times only.
pub const CALENDAR_FREEBUSY: &str = "https://www.googleapis.com/auth/calendar.freebusy";
/// Free/busy of events: Google's reference lists it among the four scopes `freebusy.query`
/// takes.
pub const CALENDAR_EVENTS_FREEBUSY: &str =
    "https://www.googleapis.com/auth/calendar.events.freebusy";
/// A broader scope that also lets `freebusy.query` through.
pub const CALENDAR_READONLY: &str = "https://www.googleapis.com/auth/calendar.readonly";
/// The broadest calendar scope; it lets `freebusy.query` through too.
pub const CALENDAR_FULL: &str = "https://www.googleapis.com/auth/calendar";
/// The scope `otherContacts.list` needs (the only one: `contacts.readonly` and even
/// `contacts` do not let that list through).
pub const CONTACTS_OTHER_READONLY: &str = "https://www.googleapis.com/auth/contacts.other.readonly";
/// The scope `people.listDirectoryPeople` needs (the only one).
pub const DIRECTORY_READONLY: &str = "https://www.googleapis.com/auth/directory.readonly";
/// The Google Cloud project number that error messages name.
pub const PROJECT_NUMBER: &str = "487325908013";
const PEOPLE_SERVICE: &str = "people.googleapis.com";
const LIST_METHOD: &str = "google.people.v1.PeopleService.ListConnections";
const GROUPS_METHOD: &str = "google.people.v1.ContactGroupService.ListContactGroups";
const OTHER_CONTACTS_METHOD: &str = "google.people.v1.OtherContacts.ListOtherContacts";
const DIRECTORY_METHOD: &str = "google.people.v1.PeopleService.ListDirectoryPeople";
const CALENDAR_SERVICE: &str = "calendar-json.googleapis.com";
const FREEBUSY_METHOD: &str = "calendar.v3.Freebusy.Query";

/// Path of the authorization (consent) page.
pub const AUTH_PATH: &str = "/o/oauth2/v2/auth";
/// Path the consent page's form posts to.
pub const DECISION_PATH: &str = "/o/oauth2/v2/auth/decision";
/// Path of the token endpoint.
pub const TOKEN_PATH: &str = "/token";
/// Path of the revocation endpoint.
pub const REVOKE_PATH: &str = "/revoke";
/// Path of `people.connections.list`, under [`FakeGoogle::people_url`].
pub const CONNECTIONS_PATH: &str = "/v1/people/me/connections";
/// Path of `contactGroups.list`, under [`FakeGoogle::people_url`].
pub const CONTACT_GROUPS_PATH: &str = "/v1/contactGroups";
/// Path of `otherContacts.list`, under [`FakeGoogle::people_url`].
pub const OTHER_CONTACTS_PATH: &str = "/v1/otherContacts";
/// Path of `people.listDirectoryPeople`, under [`FakeGoogle::people_url`].
pub const DIRECTORY_PATH: &str = "/v1/people:listDirectoryPeople";
/// Path of the Calendar API's `freebusy.query`, under [`FakeGoogle::calendar_url`].
pub const FREEBUSY_PATH: &str = "/calendar/v3/freeBusy";

const MAX_BODY: usize = 1 << 20;
const MAX_PAGE_SIZE: usize = 1000;
const DEFAULT_PAGE_SIZE: usize = 100;
/// `contactGroups.list` without `pageSize` (or with 0).
const DEFAULT_GROUPS_PAGE_SIZE: usize = 30;
/// Google keeps at most this many live refresh tokens per user and client; the oldest dies.
const REFRESH_TOKENS_PER_USER_CLIENT: usize = 100;

const UNAUTHENTICATED_MESSAGE: &str = "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.";
const MISSING_CREDENTIALS_MESSAGE: &str = "Request is missing required authentication credential. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.";
const EXPIRED_SYNC_TOKEN_MESSAGE: &str =
    "Sync token is expired. Clear local cache and retry call without the sync token.";

const SCOPES_KNOWN: &[&str] = &[
    CONTACTS_READONLY,
    CONTACTS_FULL,
    CONTACTS_OTHER_READONLY,
    DIRECTORY_READONLY,
    CALENDAR_FREEBUSY,
    CALENDAR_EVENTS_FREEBUSY,
    CALENDAR_READONLY,
    CALENDAR_FULL,
    "https://www.googleapis.com/auth/userinfo.email",
    "https://www.googleapis.com/auth/userinfo.profile",
    "openid",
];

const AUTH_PARAMS: &[&str] = &[
    "client_id",
    "redirect_uri",
    "response_type",
    "scope",
    "state",
    "access_type",
    "prompt",
    "include_granted_scopes",
    "login_hint",
    "code_challenge",
    "code_challenge_method",
    "hd",
    "nonce",
    "enable_granular_consent",
    "authuser",
];

const PERSON_FIELDS: &[&str] = &[
    "addresses",
    "ageRanges",
    "biographies",
    "birthdays",
    "calendarUrls",
    "clientData",
    "coverPhotos",
    "emailAddresses",
    "events",
    "externalIds",
    "genders",
    "imClients",
    "interests",
    "locales",
    "locations",
    "memberships",
    "metadata",
    "miscKeywords",
    "names",
    "nicknames",
    "occupations",
    "organizations",
    "phoneNumbers",
    "photos",
    "relations",
    "sipAddresses",
    "skills",
    "urls",
    "userDefined",
];

// ---------------------------------------------------------------------------------------------
// Public types
// ---------------------------------------------------------------------------------------------

/// A registered OAuth client (a "Web application" client in the Google Cloud console).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    pub id: String,
    pub secret: String,
    pub redirect_uris: Vec<String>,
}

impl Client {
    /// A client with one or more registered redirect URIs.
    pub fn new(id: &str, secret: &str, redirect_uris: &[&str]) -> Client {
        Client {
            id: id.to_string(),
            secret: secret.to_string(),
            redirect_uris: redirect_uris.iter().map(|s| s.to_string()).collect(),
        }
    }
}

/// A contact of a user, as the fake stores it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Person {
    /// `people/c<digits>`.
    pub resource_name: String,
    pub given: String,
    pub family: String,
    /// May be "" (no name at all when `given` and `family` are empty too).
    pub display: String,
    pub company: Option<String>,
    pub phones: Vec<Phone>,
    /// Email addresses, the first one primary.
    pub emails: Vec<String>,
    /// Names of the user's contact groups (labels) the person belongs to. A name the user has
    /// no group of yet creates that group when the person is stored.
    pub groups: Vec<String>,
}

impl Person {
    /// A person whose display name is "given family".
    pub fn new(resource_name: &str, given: &str, family: &str) -> Person {
        Person {
            resource_name: resource_name.to_string(),
            given: given.to_string(),
            family: family.to_string(),
            display: format!("{given} {family}").trim().to_string(),
            company: None,
            phones: Vec::new(),
            emails: Vec::new(),
            groups: Vec::new(),
        }
    }

    /// Replaces the display name.
    pub fn with_display(mut self, display: &str) -> Person {
        self.display = display.to_string();
        self
    }

    /// Sets the organization.
    pub fn with_company(mut self, company: &str) -> Person {
        self.company = Some(company.to_string());
        self
    }

    /// Adds a phone number without a canonical form.
    pub fn with_phone(mut self, value: &str, kind: &str) -> Person {
        self.phones.push(Phone::new(value, kind));
        self
    }

    /// Adds a phone number with Google's `canonicalForm` (E.164).
    pub fn with_phone_canonical(mut self, value: &str, canonical: &str, kind: &str) -> Person {
        self.phones.push(Phone {
            value: value.to_string(),
            canonical: Some(canonical.to_string()),
            kind: kind.to_string(),
        });
        self
    }

    /// Adds an email address (rendered with type `work`; the first one is primary).
    pub fn with_email(mut self, address: &str) -> Person {
        self.emails.push(address.to_string());
        self
    }

    /// Adds the person to the user's contact group of that name (created when first seen).
    pub fn with_group(mut self, name: &str) -> Person {
        self.groups.push(name.to_string());
        self
    }
}

/// A phone number of a [`Person`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Phone {
    /// As the user typed it.
    pub value: String,
    /// Google's E.164 `canonicalForm`, present when Google could parse the number.
    pub canonical: Option<String>,
    /// "mobile", "work", "home", "main", "homeFax", "workFax", "pager", "other", a custom label, or "".
    pub kind: String,
}

impl Phone {
    pub fn new(value: &str, kind: &str) -> Phone {
        Phone {
            value: value.to_string(),
            canonical: None,
            kind: kind.to_string(),
        }
    }
}

/// A misbehaviour of an endpoint, queued with [`FakeGoogle::inject`] and consumed one per
/// request, first in first out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Google-shaped error body for that status. On the People API (connections,
    /// contactGroups, otherContacts and the directory): 400 `INVALID_ARGUMENT`,
    /// 401 `UNAUTHENTICATED`, 403 `PERMISSION_DENIED` (`ACCESS_TOKEN_SCOPE_INSUFFICIENT`),
    /// 404 `NOT_FOUND`, 429 `RESOURCE_EXHAUSTED`, 500 `INTERNAL`, 502 (Google's HTML page),
    /// 503 `UNAVAILABLE`, 504 `DEADLINE_EXCEEDED`. On the Calendar API the same statuses in
    /// its shape, with an `errors` entry (`badRequest`, `insufficientPermissions`,
    /// `rateLimitExceeded`, `backendError`, ...). On the OAuth endpoints an OAuth error body.
    Status(u16),
    /// 403 `PERMISSION_DENIED` with reason `SERVICE_DISABLED`, as when the People API is not
    /// enabled for the project.
    PeopleDisabled,
    /// 403 `PERMISSION_DENIED` with reason `SERVICE_DISABLED` (and the older `errors` entry
    /// `accessNotConfigured`), as when the Google Calendar API is not enabled for the project.
    /// Meant for [`Endpoint::Calendar`]; on another endpoint it plays the same body.
    CalendarDisabled,
    /// 429 `RESOURCE_EXHAUSTED` with a `Retry-After` header (on the Calendar API with its
    /// `rateLimitExceeded` entry). Its ErrorInfo names the People API's read quota on every
    /// People endpoint, as Google's does: the quota is the project's, whatever the method.
    RateLimited { retry_after_secs: u64 },
    /// 400 `FAILED_PRECONDITION` with an ErrorInfo of reason `EXPIRED_SYNC_TOKEN` (its
    /// metadata naming the endpoint's method).
    ExpiredSyncToken,
    /// 410, the older form of an expired sync token (also names `EXPIRED_SYNC_TOKEN`).
    Gone,
    /// The request is handled (with its side effects), and the reply's body is cut in half.
    TruncatedJson,
    /// The request is handled, and the reply is valid JSON with a field of the wrong type
    /// (`"connections": "oops"`; on contactGroups `"contactGroups": "oops"`; on otherContacts
    /// `"otherContacts": "oops"`; on the directory `"people": "oops"`; on freeBusy
    /// `"calendars": "oops"`; on the token endpoint `"access_token": 12345`; on the revocation
    /// endpoint the JSON string `"oops"`).
    WrongType,
    /// Sleeps, then answers normally.
    Delay(Duration),
    /// 400 `{"error":"invalid_grant","error_description":"Token has been expired or revoked."}`.
    InvalidGrant,
    /// Exactly this status, these headers and this body, without handling the request: for
    /// hand-made pages (duplicate resource names, malformed persons, a repeated
    /// `nextPageToken`, a 429 with an HTTP-date `Retry-After`, ...). `Content-Type` is
    /// `application/json; charset=UTF-8` unless `headers` name one. A `Date`, `Server`,
    /// `Content-Length` or `Connection` among `headers` replaces the fake's own (so a lying
    /// `Content-Length` can be played too), and a `Transfer-Encoding` drops the fake's
    /// `Content-Length` (the body must then be encoded by the caller); whatever they say, the
    /// connection is closed after the body.
    Raw {
        status: u16,
        headers: Vec<(String, String)>,
        body: String,
    },
    /// The request is handled (with its side effects, e.g. a code exchange), the status line
    /// and headers (with the full `Content-Length`) go out at once, then the body one byte
    /// every `interval`: a server that is alive but slower than any sane timeout. Sending stops
    /// quietly when the client goes away or the fake is dropped.
    Trickle { interval: Duration },
    /// 200 `application/json` with a body of `bytes` bytes, `{"connections":[` (on
    /// contactGroups `{"contactGroups":[`, on otherContacts `{"otherContacts":[`, on the
    /// directory `{"people":[`, on freeBusy `{"calendars":{`) then spaces (a
    /// JSON prefix that never closes), generated chunk by chunk so that even hundreds of MB
    /// are never held in memory. With `content_length` it is announced by `Content-Length`;
    /// without, there is no `Content-Length` and the body ends when the fake closes the
    /// connection. The request is not handled. Sending stops quietly when the client goes
    /// away or the fake is dropped.
    Huge { bytes: u64, content_length: bool },
    /// For the People API: a 200 page with one new person (`people/endless{n}`, a name and a
    /// US phone number) and a `nextPageToken` different on every request (`endless-{n}`),
    /// never a `nextSyncToken`; `totalPeople` and `totalItems` always claim one more person
    /// than sent so far. The request is not handled (no authentication, no parameter checks)
    /// and the page tokens mean nothing to the real endpoint, so set it sticky: a client that
    /// follows `nextPageToken` then never reaches the end. On [`Endpoint::ContactGroups`] the
    /// same with one new user group (`contactGroups/e{n}`, "Endless {n}") per page and
    /// `endless-groups-{n}` page tokens. On [`Endpoint::OtherContacts`] one new other contact
    /// per page (`otherContacts/endless{n}`, a `+1212556…` number) with `endless-other-{n}`
    /// tokens and a `totalSize` one ahead; on [`Endpoint::Directory`] one new directory profile
    /// per page (`people/8800000{n}`, a `+1212557…` number) with `endless-directory-{n}` tokens
    /// (the directory reply has no total). The numbers differ per endpoint so that a client
    /// that merges its sources meets no accidental duplicates. freeBusy has no pages: on
    /// [`Endpoint::Calendar`] it answers normally.
    EndlessPages,
}

/// The endpoints faults can be injected into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    Token,
    Revoke,
    /// `people.connections.list` (and any other `/v1/` path but those of the endpoints below).
    People,
    /// `contactGroups.list` (`/v1/contactGroups...`): its own queue, so that a fault meant for
    /// the connections list is never eaten by a groups request, and the other way round.
    /// [`Fault::WrongType`] makes `"contactGroups": "oops"`; [`Fault::EndlessPages`] serves
    /// endless pages of new groups.
    ContactGroups,
    /// `otherContacts.list` (`/v1/otherContacts...`), with its own queue, so that each contact
    /// source of a client can be failed alone. People-shaped errors whose ErrorInfo names
    /// `google.people.v1.OtherContacts.ListOtherContacts`.
    OtherContacts,
    /// `people.listDirectoryPeople` (`/v1/people:listDirectoryPeople`, and
    /// `people:searchDirectoryPeople`, which the fake does not serve), with its own queue.
    /// People-shaped errors whose ErrorInfo names
    /// `google.people.v1.PeopleService.ListDirectoryPeople`.
    Directory,
    /// The Calendar API's `freebusy.query` (`/calendar/v3/...`), with its own queue. Its
    /// errors have the Calendar API's shape (an `errors` list beside `status` and `details`);
    /// [`Fault::CalendarDisabled`] is its disabled-API 403.
    Calendar,
}

/// One HTTP request the fake received.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// Path without the query.
    pub path: String,
    /// Decoded query parameters, in order.
    pub query: Vec<(String, String)>,
    /// Decoded form fields of the body (`application/x-www-form-urlencoded`, or the string
    /// fields of a JSON object body).
    pub form: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// When it was received (monotonic, for timing assertions).
    pub received: Instant,
    /// When it was received (wall clock).
    pub received_at: SystemTime,
    /// Which fault queue applies to it, if any.
    pub endpoint: Option<Endpoint>,
    /// The status the fake answered with (0 while it is being handled).
    pub status: u16,
}

impl Request {
    /// The first query parameter of that name.
    pub fn query_param(&self, name: &str) -> Option<&str> {
        first(&self.query, name)
    }

    /// The first form field of that name.
    pub fn form_param(&self, name: &str) -> Option<&str> {
        first(&self.form, name)
    }

    /// The first header of that name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

// ---------------------------------------------------------------------------------------------
// State
// ---------------------------------------------------------------------------------------------

struct User {
    display_name: String,
    /// resource name -> latest state (None: deleted, kept as a tombstone for incremental sync).
    contacts: BTreeMap<String, Entry>,
    /// The user's own contact groups, in order of creation.
    groups: Vec<Group>,
    /// Busy periods of the user's primary calendar, Unix seconds `[start, end)`, as set.
    busy: Vec<(i64, i64)>,
    /// The user's "Other contacts" (`otherContacts/c…`), tombstones kept as for `contacts`.
    other: BTreeMap<String, Entry>,
}

/// A user contact group (`USER_CONTACT_GROUP`).
struct Group {
    /// Hex id; the resource name is `contactGroups/{id}`. Never changes.
    id: String,
    name: String,
    /// Global change counter value of its last change (creation or rename).
    seq: u64,
    updated: SystemTime,
    /// Bumped on every change, for the etag.
    version: u64,
}

impl User {
    fn group_id(&self, name: &str) -> Option<&str> {
        self.groups
            .iter()
            .find(|g| g.name == name)
            .map(|g| g.id.as_str())
    }

    /// The ids of the person's groups, in the person's order, without repeats.
    fn group_ids(&self, person: &Person) -> Vec<String> {
        let mut ids: Vec<String> = Vec::new();
        for name in &person.groups {
            if let Some(id) = self.group_id(name) {
                if !ids.iter().any(|i| i == id) {
                    ids.push(id.to_string());
                }
            }
        }
        ids
    }

    fn live_people(&self) -> impl Iterator<Item = &Person> {
        self.contacts.values().filter_map(|e| e.person.as_ref())
    }

    /// How many live contacts are in the group of that name.
    fn member_count(&self, group_name: &str) -> usize {
        self.live_people()
            .filter(|p| p.groups.iter().any(|n| n == group_name))
            .count()
    }
}

#[derive(Clone)]
struct Entry {
    person: Option<Person>,
    seq: u64,
    updated: SystemTime,
}

struct CodeGrant {
    client_id: String,
    redirect_uri: String,
    email: String,
    scope: String,
    challenge: String,
    issued: Instant,
    used: bool,
    issue_refresh: bool,
}

struct Grant {
    email: String,
    client_id: String,
    scope: String,
    refresh_token: Option<String>,
    alive: bool,
}

struct AccessToken {
    grant: u64,
    expires: Instant,
    expired: bool,
}

struct SyncToken {
    email: String,
    seq: u64,
    expired: bool,
    /// The list that issued it: a token is good for that list only, as Google's are.
    kind: ListKind,
    /// The fields the request that earned it asked for (`personFields` or `readMask`):
    /// Google serves a token only with the parameters of the call that earned it.
    fields: Vec<String>,
}

/// The lists that issue sync tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ListKind {
    Connections,
    Groups,
    OtherContacts,
    Directory,
}

struct Item {
    resource_name: String,
    person: Option<Person>,
    /// The ids of the person's contact groups, resolved when the snapshot was taken.
    group_ids: Vec<String>,
    updated: SystemTime,
}

/// What a `contactGroups.list` call pages through.
struct GroupSnapshot {
    email: String,
    groups: Vec<Value>,
    seq: u64,
    sync_token: Option<String>,
}

struct Snapshot {
    email: String,
    items: Vec<Item>,
    seq: u64,
    person_fields: Vec<String>,
    sync_token: Option<String>,
    request_sync: bool,
}

/// What an `otherContacts.list` or `people.listDirectoryPeople` call pages through: the
/// items as they were at the first page, and the parameters later pages must repeat.
struct SourceSnapshot {
    kind: ListKind,
    email: String,
    items: Vec<Item>,
    seq: u64,
    read_mask: Vec<String>,
    /// The directory's `sources`, sorted, without repeats (empty for otherContacts).
    sources: Vec<String>,
    sync_token: Option<String>,
    request_sync: bool,
}

struct State {
    clients: BTreeMap<String, Client>,
    users: BTreeMap<String, User>,
    /// Global change counter; every contact change gets the next value.
    seq: u64,
    codes: HashMap<String, CodeGrant>,
    grants: BTreeMap<u64, Grant>,
    next_grant: u64,
    refresh_tokens: HashMap<String, u64>,
    access_tokens: HashMap<String, AccessToken>,
    sync_tokens: HashMap<String, SyncToken>,
    page_tokens: HashMap<String, (Arc<Snapshot>, usize)>,
    group_page_tokens: HashMap<String, (Arc<GroupSnapshot>, usize)>,
    faults: HashMap<Endpoint, VecDeque<Fault>>,
    sticky: HashMap<Endpoint, Fault>,
    requests: Vec<Request>,
    revoked: Vec<String>,
    page_size_cap: Option<usize>,
    access_lifetime: Duration,
    code_lifetime: Duration,
    /// Pages served by [`Fault::EndlessPages`] so far, which numbers their people and tokens.
    endless: u64,
    /// Likewise for [`Fault::EndlessPages`] on [`Endpoint::ContactGroups`].
    endless_groups: u64,
    /// Likewise on [`Endpoint::OtherContacts`].
    endless_other: u64,
    /// Likewise on [`Endpoint::Directory`].
    endless_directory: u64,
    /// Workspace domain (lowercase) -> its directory: profiles and shared contacts, by
    /// resource name, tombstones kept. A domain is a Workspace one when it has an entry here,
    /// even an empty one.
    directories: BTreeMap<String, BTreeMap<String, Entry>>,
    /// Page tokens of `otherContacts.list` and `people.listDirectoryPeople`.
    source_page_tokens: HashMap<String, (Arc<SourceSnapshot>, usize)>,
}

impl State {
    fn new() -> State {
        State {
            clients: BTreeMap::new(),
            users: BTreeMap::new(),
            seq: 0,
            codes: HashMap::new(),
            grants: BTreeMap::new(),
            next_grant: 1,
            refresh_tokens: HashMap::new(),
            access_tokens: HashMap::new(),
            sync_tokens: HashMap::new(),
            page_tokens: HashMap::new(),
            group_page_tokens: HashMap::new(),
            faults: HashMap::new(),
            sticky: HashMap::new(),
            requests: Vec::new(),
            revoked: Vec::new(),
            page_size_cap: None,
            access_lifetime: Duration::from_secs(3599),
            code_lifetime: Duration::from_secs(600),
            endless: 0,
            endless_groups: 0,
            endless_other: 0,
            endless_directory: 0,
            directories: BTreeMap::new(),
            source_page_tokens: HashMap::new(),
        }
    }

    fn user_mut(&mut self, email: &str) -> &mut User {
        self.users.entry(email.to_string()).or_insert_with(|| User {
            display_name: email.to_string(),
            contacts: BTreeMap::new(),
            groups: Vec::new(),
            busy: Vec::new(),
            other: BTreeMap::new(),
        })
    }

    /// Creates the user's groups of those names that do not exist yet. Creating a group is a
    /// change of the group (for `contactGroups.list` sync tokens), not of any person.
    fn ensure_groups(&mut self, email: &str, names: &[String]) {
        for name in names {
            if self.user_mut(email).group_id(name).is_some() {
                continue;
            }
            self.seq += 1;
            let seq = self.seq;
            let user = self.user_mut(email);
            // Derived from the name when first seen; a later group of the same name (after a
            // rename) gets another id, as the old id stays with the renamed group.
            let mut salt = 0u32;
            let id = loop {
                let d = digest(&format!("{email}|{name}|{salt}"));
                let mut b = [0u8; 8];
                b.copy_from_slice(&d[..8]);
                let id = format!("{:x}", u64::from_be_bytes(b));
                if id != "0" && !user.groups.iter().any(|g| g.id == id) {
                    break id;
                }
                salt += 1;
            };
            user.groups.push(Group {
                id,
                name: name.clone(),
                seq,
                updated: SystemTime::now(),
                version: 1,
            });
        }
    }

    fn record_change(&mut self, email: &str, resource_name: &str, person: Option<Person>) {
        if let Some(p) = &person {
            self.ensure_groups(email, &p.groups);
        }
        self.seq += 1;
        let seq = self.seq;
        self.user_mut(email).contacts.insert(
            resource_name.to_string(),
            Entry {
                person,
                seq,
                updated: SystemTime::now(),
            },
        );
    }

    /// One change of the user's other contacts (a person, or None for a deletion).
    fn record_other_change(&mut self, email: &str, resource_name: &str, person: Option<Person>) {
        self.seq += 1;
        let seq = self.seq;
        self.user_mut(email).other.insert(
            resource_name.to_string(),
            Entry {
                person,
                seq,
                updated: SystemTime::now(),
            },
        );
    }

    /// One change of a Workspace domain's directory (registering the domain if new).
    fn record_directory_change(
        &mut self,
        domain: &str,
        resource_name: &str,
        person: Option<Person>,
    ) {
        self.seq += 1;
        let seq = self.seq;
        self.directories
            .entry(domain_key(domain))
            .or_default()
            .insert(
                resource_name.to_string(),
                Entry {
                    person,
                    seq,
                    updated: SystemTime::now(),
                },
            );
    }

    fn take_fault(&mut self, endpoint: Endpoint) -> Option<Fault> {
        if let Some(f) = self.faults.get_mut(&endpoint).and_then(VecDeque::pop_front) {
            return Some(f);
        }
        self.sticky.get(&endpoint).cloned()
    }

    fn kill_grants(&mut self, email: &str, client_id: Option<&str>) {
        for g in self.grants.values_mut() {
            let client_matches = match client_id {
                None => true,
                Some(c) => c == g.client_id,
            };
            if g.email == email && client_matches {
                g.alive = false;
            }
        }
    }

    fn new_grant(&mut self, email: &str, client_id: &str, scope: &str, refresh: bool) -> u64 {
        let id = self.next_grant;
        self.next_grant += 1;
        let refresh_token = refresh.then(|| format!("1//0{}", random_token(100)));
        if let Some(rt) = &refresh_token {
            self.refresh_tokens.insert(rt.clone(), id);
            let live: Vec<u64> = self
                .grants
                .iter()
                .filter(|(_, g)| {
                    g.alive
                        && g.refresh_token.is_some()
                        && g.email == email
                        && g.client_id == client_id
                })
                .map(|(id, _)| *id)
                .collect();
            if live.len() >= REFRESH_TOKENS_PER_USER_CLIENT {
                for old in &live[..=live.len() - REFRESH_TOKENS_PER_USER_CLIENT] {
                    if let Some(g) = self.grants.get_mut(old) {
                        g.alive = false;
                    }
                }
            }
        }
        self.grants.insert(
            id,
            Grant {
                email: email.to_string(),
                client_id: client_id.to_string(),
                scope: scope.to_string(),
                refresh_token,
                alive: true,
            },
        );
        id
    }

    fn new_access_token(&mut self, grant: u64) -> String {
        let token = format!("ya29.a0{}", random_token(150));
        self.access_tokens.insert(
            token.clone(),
            AccessToken {
                grant,
                expires: Instant::now() + self.access_lifetime,
                expired: false,
            },
        );
        token
    }

    /// The live grant behind an access token.
    fn access_grant(&self, token: &str) -> Option<&Grant> {
        let at = self.access_tokens.get(token)?;
        if at.expired || Instant::now() >= at.expires {
            return None;
        }
        self.grants.get(&at.grant).filter(|g| g.alive)
    }

    fn new_sync_token(&mut self, email: &str, seq: u64, fields: Vec<String>) -> String {
        self.new_sync_token_for(ListKind::Connections, email, seq, fields)
    }

    fn new_groups_sync_token(&mut self, email: &str, seq: u64) -> String {
        self.new_sync_token_for(ListKind::Groups, email, seq, Vec::new())
    }

    /// A sync token of that list for the user, seeing changes after `seq`. The shapes differ
    /// per list only to help a human reading logs; the lists tell their tokens apart by
    /// `kind`, not by shape.
    fn new_sync_token_for(
        &mut self,
        kind: ListKind,
        email: &str,
        seq: u64,
        fields: Vec<String>,
    ) -> String {
        let token = match kind {
            ListKind::Connections => format!("EAEY{}", random_token(40)),
            ListKind::Groups => format!("EJ{}", random_token(12)),
            ListKind::OtherContacts => format!("EAIY{}", random_token(40)),
            ListKind::Directory => format!("CAES{}", random_token(40)),
        };
        self.sync_tokens.insert(
            token.clone(),
            SyncToken {
                email: email.to_string(),
                seq,
                expired: false,
                kind,
                fields,
            },
        );
        token
    }
}

#[derive(Default)]
struct Conns {
    next: u64,
    /// Clones of the open connections' sockets, to cut them on drop.
    open: HashMap<u64, TcpStream>,
    threads: Vec<JoinHandle<()>>,
}

struct Shared {
    state: Mutex<State>,
    stop: AtomicBool,
    addr: SocketAddr,
    conns: Mutex<Conns>,
}

impl Shared {
    fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn sleep(&self, d: Duration) {
        let end = Instant::now() + d;
        while !self.stop.load(Ordering::SeqCst) {
            let now = Instant::now();
            if now >= end {
                break;
            }
            std::thread::sleep((end - now).min(Duration::from_millis(20)));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// FakeGoogle
// ---------------------------------------------------------------------------------------------

/// The fake Google server. Dropping it stops its threads, closes the port and cuts every open
/// connection, so a client then meets "connection refused" at once.
pub struct FakeGoogle {
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for FakeGoogle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeGoogle")
            .field("addr", &self.shared.addr)
            .finish_non_exhaustive()
    }
}

impl FakeGoogle {
    /// Starts on 127.0.0.1 with an ephemeral port. Panics if that fails.
    pub fn start() -> FakeGoogle {
        FakeGoogle::start_on(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
            .expect("fake Google: cannot listen on 127.0.0.1")
    }

    /// Starts on that address, which must be a loopback one (127.0.0.0/8 or ::1).
    pub fn start_on(addr: SocketAddr) -> std::io::Result<FakeGoogle> {
        if !addr.ip().is_loopback() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("fake Google listens on loopback only, not on {addr}"),
            ));
        }
        let listener = TcpListener::bind(addr)?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State::new()),
            stop: AtomicBool::new(false),
            addr: listener.local_addr()?,
            conns: Mutex::new(Conns::default()),
        });
        let for_thread = Arc::clone(&shared);
        let accept = std::thread::Builder::new()
            .name("fake-google-accept".into())
            .spawn(move || accept_loop(&listener, &for_thread))?;
        Ok(FakeGoogle {
            shared,
            accept: Some(accept),
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        self.shared.base_url()
    }

    /// The authorization endpoint (`{base}/o/oauth2/v2/auth`).
    pub fn auth_url(&self) -> String {
        format!("{}{AUTH_PATH}", self.base_url())
    }

    /// The token endpoint (`{base}/token`).
    pub fn token_url(&self) -> String {
        format!("{}{TOKEN_PATH}", self.base_url())
    }

    /// The revocation endpoint (`{base}/revoke`).
    pub fn revoke_url(&self) -> String {
        format!("{}{REVOKE_PATH}", self.base_url())
    }

    /// The People API base; the API is at `{people_url}/v1/people/me/connections`,
    /// `{people_url}/v1/contactGroups`, `{people_url}/v1/otherContacts` and
    /// `{people_url}/v1/people:listDirectoryPeople`.
    pub fn people_url(&self) -> String {
        self.base_url()
    }

    /// The Calendar API base (the same server); `freebusy.query` is at
    /// `{calendar_url}/calendar/v3/freeBusy`, as at `https://www.googleapis.com`.
    pub fn calendar_url(&self) -> String {
        self.base_url()
    }

    /// The `google` object of the plugin's configuration, pointing at this fake.
    pub fn config_json(&self) -> Value {
        json!({
            "auth_url": self.auth_url(),
            "token_url": self.token_url(),
            "revoke_url": self.revoke_url(),
            "people_url": self.people_url(),
            "calendar_url": self.calendar_url(),
        })
    }

    /// Registers (or replaces) an OAuth client.
    pub fn add_client(&self, client: Client) {
        self.shared
            .state
            .lock()
            .clients
            .insert(client.id.clone(), client);
    }

    /// Adds a Google account (or renames an existing one) that can consent.
    pub fn add_user(&self, email: &str, display_name: &str) {
        let mut st = self.shared.state.lock();
        st.user_mut(email).display_name = display_name.to_string();
    }

    /// The accounts, as (email, display name), sorted by email.
    pub fn users(&self) -> Vec<(String, String)> {
        let st = self.shared.state.lock();
        st.users
            .iter()
            .map(|(e, u)| (e.clone(), u.display_name.clone()))
            .collect()
    }

    /// Replaces the user's contacts (adding the user if unknown). People added, changed or
    /// missing compared to before (emails and groups included) are changes that incremental
    /// sync reports. Group names not seen before create the user's groups of those names.
    pub fn set_contacts(&self, email: &str, people: Vec<Person>) {
        let mut st = self.shared.state.lock();
        for (name, person) in changes(&st.user_mut(email).contacts, people) {
            st.record_change(email, &name, person);
        }
    }

    /// Adds or changes one contact (creating the groups it names that do not exist yet).
    pub fn upsert_contact(&self, email: &str, person: Person) {
        let mut st = self.shared.state.lock();
        let name = person.resource_name.clone();
        st.record_change(email, &name, Some(person));
    }

    /// Deletes one contact; incremental sync reports it with `metadata.deleted = true`.
    pub fn delete_contact(&self, email: &str, resource_name: &str) {
        let mut st = self.shared.state.lock();
        let live = st
            .users
            .get(email)
            .and_then(|u| u.contacts.get(resource_name))
            .is_some_and(|e| e.person.is_some());
        if live {
            st.record_change(email, resource_name, None);
        }
    }

    /// The user's current contacts, oldest change first.
    pub fn contacts(&self, email: &str) -> Vec<Person> {
        let st = self.shared.state.lock();
        st.users
            .get(email)
            .map_or_else(Vec::new, |u| live_by_change(&u.contacts))
    }

    /// Replaces the user's "Other contacts" (adding the user if unknown): the people Google
    /// saved from the user's interactions, listed by `otherContacts.list`. Resource names are
    /// `otherContacts/c…`. As with [`FakeGoogle::set_contacts`], only people added, changed or
    /// missing compared to before are changes for incremental sync. Groups and companies are
    /// stored but never shown: other contacts are in no group, and their list has no
    /// `organizations`.
    pub fn set_other_contacts(&self, email: &str, people: Vec<Person>) {
        let mut st = self.shared.state.lock();
        for (name, person) in changes(&st.user_mut(email).other, people) {
            st.record_other_change(email, &name, person);
        }
    }

    /// Adds or changes one of the user's other contacts (adding the user if unknown).
    pub fn upsert_other_contact(&self, email: &str, person: Person) {
        let mut st = self.shared.state.lock();
        let name = person.resource_name.clone();
        st.record_other_change(email, &name, Some(person));
    }

    /// Deletes one of the user's other contacts (as when the user adds it to their contacts,
    /// which moves it out of "Other contacts"); incremental sync reports it with
    /// `metadata.deleted = true`. Unknown names change nothing.
    pub fn delete_other_contact(&self, email: &str, resource_name: &str) {
        let mut st = self.shared.state.lock();
        let live = st
            .users
            .get(email)
            .and_then(|u| u.other.get(resource_name))
            .is_some_and(|e| e.person.is_some());
        if live {
            st.record_other_change(email, resource_name, None);
        }
    }

    /// The user's current other contacts, oldest change first.
    pub fn other_contacts(&self, email: &str) -> Vec<Person> {
        let st = self.shared.state.lock();
        st.users
            .get(email)
            .map_or_else(Vec::new, |u| live_by_change(&u.other))
    }

    /// Makes `domain` a Google Workspace domain (even with an empty directory) and replaces its
    /// directory, which `people.listDirectoryPeople` lists to every user whose address is at
    /// that domain (case-insensitive). Resource names are `people/` and a number for domain
    /// profiles (the organisation's users, `DIRECTORY_SOURCE_TYPE_DOMAIN_PROFILE`, e.g.
    /// `people/112836365740133940917`) and `people/c…` for the domain's shared contacts
    /// (`DIRECTORY_SOURCE_TYPE_DOMAIN_CONTACT`); the `sources` of a request pick among them.
    /// Only real changes are changes for incremental sync, as with
    /// [`FakeGoogle::set_contacts`]. A domain never registered is a consumer one (gmail.com,
    /// ...): its users get Google's `FAILED_PRECONDITION`.
    pub fn set_directory(&self, domain: &str, people: Vec<Person>) {
        let mut st = self.shared.state.lock();
        let old = st.directories.entry(domain_key(domain)).or_default();
        for (name, person) in changes(old, people) {
            st.record_directory_change(domain, &name, person);
        }
    }

    /// Adds or changes one person of the domain's directory (making it a Workspace domain if
    /// it was not one).
    pub fn upsert_directory_person(&self, domain: &str, person: Person) {
        let mut st = self.shared.state.lock();
        let name = person.resource_name.clone();
        st.record_directory_change(domain, &name, Some(person));
    }

    /// Removes one person from the domain's directory (a user deleted, a shared contact
    /// removed); incremental sync reports it with `metadata.deleted = true`. Unknown names and
    /// domains change nothing.
    pub fn delete_directory_person(&self, domain: &str, resource_name: &str) {
        let mut st = self.shared.state.lock();
        let live = st
            .directories
            .get(&domain_key(domain))
            .and_then(|d| d.get(resource_name))
            .is_some_and(|e| e.person.is_some());
        if live {
            st.record_directory_change(domain, resource_name, None);
        }
    }

    /// The domain's current directory, oldest change first (empty for a consumer domain).
    pub fn directory(&self, domain: &str) -> Vec<Person> {
        let st = self.shared.state.lock();
        st.directories
            .get(&domain_key(domain))
            .map_or_else(Vec::new, live_by_change)
    }

    /// The user's own contact groups (no system groups), oldest first, as
    /// (`contactGroups/{id}`, name).
    pub fn groups(&self, email: &str) -> Vec<(String, String)> {
        let st = self.shared.state.lock();
        st.users.get(email).map_or_else(Vec::new, |u| {
            u.groups
                .iter()
                .map(|g| (format!("contactGroups/{}", g.id), g.name.clone()))
                .collect()
        })
    }

    /// Renames one of the user's contact groups, as the user does in Google Contacts: the
    /// resource name stays, the name changes, the group's etag and `updateTime` change. The
    /// stored persons of that group now name the new one ([`FakeGoogle::contacts`]), but, as
    /// with Google, none of them counts as changed for incremental sync (their memberships
    /// name the group by id, which did not change). Fails for an unknown group, an empty name
    /// or a name another of the user's groups has (Google's 409).
    pub fn rename_group(&self, email: &str, old_name: &str, new_name: &str) -> Result<(), String> {
        let mut st = self.shared.state.lock();
        let Some(user) = st.users.get(email) else {
            return Err(format!("no user {email}"));
        };
        if user.group_id(old_name).is_none() {
            return Err(format!("{email} has no contact group named {old_name:?}"));
        }
        if old_name == new_name {
            return Ok(());
        }
        if new_name.trim().is_empty() {
            return Err("a contact group name cannot be empty".into());
        }
        if user.group_id(new_name).is_some() {
            return Err(format!(
                "{email} already has a contact group named {new_name:?}"
            ));
        }
        st.seq += 1;
        let seq = st.seq;
        let user = st.user_mut(email);
        for g in user.groups.iter_mut().filter(|g| g.name == old_name) {
            g.name = new_name.to_string();
            g.seq = seq;
            g.version += 1;
            g.updated = SystemTime::now();
        }
        for p in user.contacts.values_mut().filter_map(|e| e.person.as_mut()) {
            for n in p.groups.iter_mut().filter(|n| *n == old_name) {
                *n = new_name.to_string();
            }
        }
        Ok(())
    }

    /// Replaces the busy periods of the user's primary calendar (adding the user if unknown):
    /// Unix seconds, `[start, end)`, in any order, overlapping or not. `freebusy.query`
    /// answers them as they are (clipped to its window), never merged. A period that does not
    /// end after it starts is kept but never answered, as it overlaps no window.
    pub fn set_busy(&self, email: &str, periods: Vec<(i64, i64)>) {
        self.shared.state.lock().user_mut(email).busy = periods;
    }

    /// Adds one busy period `[start, end)` (Unix seconds) to the user's primary calendar, as
    /// when someone books a meeting with them.
    pub fn add_busy(&self, email: &str, start: i64, end: i64) {
        self.shared
            .state
            .lock()
            .user_mut(email)
            .busy
            .push((start, end));
    }

    /// The user's busy periods, as set and added (not sorted, not merged).
    pub fn busy(&self, email: &str) -> Vec<(i64, i64)> {
        let st = self.shared.state.lock();
        st.users
            .get(email)
            .map_or_else(Vec::new, |u| u.busy.clone())
    }

    /// Removes every busy period of the user: the calendar is free.
    pub fn clear_busy(&self, email: &str) {
        if let Some(u) = self.shared.state.lock().users.get_mut(email) {
            u.busy.clear();
        }
    }

    /// Makes every page (of connections, contactGroups, otherContacts and the directory) at
    /// most `n` items long, whatever `pageSize` asks for (0: no cap).
    pub fn set_page_size_cap(&self, n: usize) {
        self.shared.state.lock().page_size_cap = (n > 0).then_some(n);
    }

    /// How long new access tokens live (default 3599 s, which `expires_in` reports).
    pub fn set_access_token_lifetime(&self, d: Duration) {
        self.shared.state.lock().access_lifetime = d;
    }

    /// How long authorization codes can be exchanged (default 10 minutes).
    pub fn set_code_lifetime(&self, d: Duration) {
        self.shared.state.lock().code_lifetime = d;
    }

    /// Programmatic consent: validates `auth_url` as Google would and returns the raw query
    /// Google would redirect with: `state=...&code=...&scope=...&authuser=0&prompt=consent`.
    pub fn approve(&self, auth_url: &str, email: &str) -> Result<String, String> {
        let pairs = self.auth_pairs(auth_url)?;
        let mut st = self.shared.state.lock();
        approve_locked(&mut st, &pairs, email, &|_| true).map(|(_, q)| q)
    }

    /// Programmatic consent by a user who unticks some of the requested scopes on Google's
    /// consent screen (granular consent): like [`FakeGoogle::approve`], but the grant has the
    /// requested scopes minus `unticked`, in the redirect's `scope=`, in the token endpoint's
    /// `scope` (at the exchange and at every refresh) and for the APIs' scope checks.
    /// `unticked` names scopes in full or after `https://www.googleapis.com/auth/`
    /// (`"calendar.freebusy"`); one that was not requested is an error (a typo would
    /// otherwise untick nothing). Unticking `contacts.readonly` is allowed here, though the
    /// consent page offers no box for it, so that a client's refusal of such a grant can be
    /// tested. `contacts.other.readonly` and `directory.readonly` untick like the calendar
    /// scopes, so a grant without a contact source can be tested too.
    pub fn approve_unticking(
        &self,
        auth_url: &str,
        email: &str,
        unticked: &[&str],
    ) -> Result<String, String> {
        let pairs = self.auth_pairs(auth_url)?;
        let mut st = self.shared.state.lock();
        let requested = validate_auth(&st, &pairs)
            .map_err(|e| e.to_string())?
            .scopes();
        let unticked: Vec<String> = unticked.iter().map(|s| full_scope(s)).collect();
        if let Some(s) = unticked.iter().find(|s| !requested.contains(s)) {
            return Err(format!(
                "{s} cannot be unticked: it was not requested (requested: {})",
                requested.join(" ")
            ));
        }
        approve_locked(&mut st, &pairs, email, &|s| {
            !unticked.iter().any(|u| u == s)
        })
        .map(|(_, q)| q)
    }

    /// Programmatic refusal: same checks; returns `state=...&error=access_denied`.
    pub fn deny(&self, auth_url: &str) -> Result<String, String> {
        let pairs = self.auth_pairs(auth_url)?;
        let st = self.shared.state.lock();
        deny_locked(&st, &pairs).map(|(_, q)| q)
    }

    /// The user removes the app's access: all of that user's refresh and access tokens die.
    pub fn revoke_grants(&self, email: &str) {
        self.shared.state.lock().kill_grants(email, None);
    }

    /// Every access token issued so far now gets 401 `UNAUTHENTICATED`.
    pub fn expire_access_tokens(&self) {
        for t in self.shared.state.lock().access_tokens.values_mut() {
            t.expired = true;
        }
    }

    /// Every sync token issued so far for that user now gets the expired-sync-token error:
    /// those of connections, contactGroups, otherContacts and the directory alike.
    pub fn expire_sync_tokens(&self, email: &str) {
        for t in self.shared.state.lock().sync_tokens.values_mut() {
            if t.email == email {
                t.expired = true;
            }
        }
    }

    /// Queues a fault for the next request to that endpoint.
    pub fn inject(&self, endpoint: Endpoint, fault: Fault) {
        self.shared
            .state
            .lock()
            .faults
            .entry(endpoint)
            .or_default()
            .push_back(fault);
    }

    /// A fault applied to every request of that endpoint while its queue is empty (None: off).
    pub fn set_sticky_fault(&self, endpoint: Endpoint, fault: Option<Fault>) {
        let mut st = self.shared.state.lock();
        match fault {
            Some(f) => st.sticky.insert(endpoint, f),
            None => st.sticky.remove(&endpoint),
        };
    }

    /// Faults still queued for that endpoint.
    pub fn pending_faults(&self, endpoint: Endpoint) -> usize {
        self.shared
            .state
            .lock()
            .faults
            .get(&endpoint)
            .map_or(0, VecDeque::len)
    }

    /// Drops queued and sticky faults.
    pub fn clear_faults(&self) {
        let mut st = self.shared.state.lock();
        st.faults.clear();
        st.sticky.clear();
    }

    /// Every request received so far, in order of arrival.
    pub fn requests(&self) -> Vec<Request> {
        self.shared.state.lock().requests.clone()
    }

    /// The requests received so far at one endpoint.
    pub fn requests_to(&self, endpoint: Endpoint) -> Vec<Request> {
        let st = self.shared.state.lock();
        st.requests
            .iter()
            .filter(|r| r.endpoint == Some(endpoint))
            .cloned()
            .collect()
    }

    /// Forgets the recorded requests.
    pub fn clear_requests(&self) {
        self.shared.state.lock().requests.clear();
    }

    /// Tokens successfully revoked at the revocation endpoint, in order.
    pub fn revoked_tokens(&self) -> Vec<String> {
        self.shared.state.lock().revoked.clone()
    }

    /// Every refresh and access token the fake has issued (live or not), for tests that
    /// search files and logs for them.
    pub fn issued_tokens(&self) -> Vec<String> {
        let st = self.shared.state.lock();
        st.refresh_tokens
            .keys()
            .chain(st.access_tokens.keys())
            .cloned()
            .collect()
    }

    /// How many of the user's refresh tokens still work.
    pub fn live_refresh_tokens(&self, email: &str) -> usize {
        let st = self.shared.state.lock();
        st.grants
            .values()
            .filter(|g| g.alive && g.email == email && g.refresh_token.is_some())
            .count()
    }

    /// How many of the user's access tokens still work.
    pub fn live_access_tokens(&self, email: &str) -> usize {
        let st = self.shared.state.lock();
        st.access_tokens
            .keys()
            .filter(|t| st.access_grant(t).is_some_and(|g| g.email == email))
            .count()
    }

    fn auth_pairs(&self, auth_url: &str) -> Result<Vec<(String, String)>, String> {
        let url = url::Url::parse(auth_url).map_err(|e| format!("not a URL: {e}"))?;
        let host_ok = match url.host_str() {
            Some("localhost") => true,
            Some(h) => {
                h.trim_start_matches('[').trim_end_matches(']') == self.shared.addr.ip().to_string()
            }
            None => false,
        };
        if url.scheme() != "http"
            || !host_ok
            || url.port() != Some(self.shared.addr.port())
            || url.path() != AUTH_PATH
        {
            return Err(format!(
                "{auth_url} is not this fake Google's authorization endpoint {}",
                self.auth_url()
            ));
        }
        Ok(url.query_pairs().into_owned().collect())
    }
}

impl Drop for FakeGoogle {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop; it sees `stop` and returns, closing the listener.
        let woke = TcpStream::connect_timeout(&self.shared.addr, Duration::from_secs(2)).is_ok();
        if let Some(h) = self.accept.take() {
            if woke {
                let _ = h.join();
            }
        }
        let threads = {
            let mut conns = self.shared.conns.lock();
            for s in conns.open.values() {
                let _ = s.shutdown(Shutdown::Both);
            }
            std::mem::take(&mut conns.threads)
        };
        for t in threads {
            let _ = t.join();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// What replacing the stored `old` entries by `people` changes, as (resource name, new state):
/// deletions of people now missing (in name order), then people added or changed (in name
/// order). People stored as they were are no change.
fn changes(old: &BTreeMap<String, Entry>, people: Vec<Person>) -> Vec<(String, Option<Person>)> {
    let mut new: BTreeMap<String, Person> = BTreeMap::new();
    for p in people {
        new.insert(p.resource_name.clone(), p);
    }
    let mut out: Vec<(String, Option<Person>)> = old
        .iter()
        .filter(|(name, e)| e.person.is_some() && !new.contains_key(*name))
        .map(|(name, _)| (name.clone(), None))
        .collect();
    for (name, person) in new {
        let unchanged = old
            .get(&name)
            .is_some_and(|e| e.person.as_ref() == Some(&person));
        if !unchanged {
            out.push((name, Some(person)));
        }
    }
    out
}

/// The live people of a store, oldest change first.
fn live_by_change(entries: &BTreeMap<String, Entry>) -> Vec<Person> {
    let mut live: Vec<&Entry> = entries.values().filter(|e| e.person.is_some()).collect();
    live.sort_by_key(|e| e.seq);
    live.into_iter().filter_map(|e| e.person.clone()).collect()
}

/// A domain as the directories are keyed: lowercase, without a leading `@`.
fn domain_key(domain: &str) -> String {
    domain.trim().trim_start_matches('@').to_ascii_lowercase()
}

fn first<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn first_ci<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn parse_query(q: &str) -> Vec<(String, String)> {
    url::form_urlencoded::parse(q.as_bytes())
        .into_owned()
        .collect()
}

fn form_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// Percent-encodes as Google's redirects do: `/` and `:` stay, a space is `%20`.
fn google_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' | b':' => {
                out.push(b as char)
            }
            _ => {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    out
}

fn pkce_shaped(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// `BASE64URL-NOPAD(SHA256(verifier))`, the S256 code challenge.
pub fn s256(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

fn random_token(n: usize) -> String {
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut rng = rand::rng();
    (0..n)
        .map(|_| CHARS[rng.random_range(0..CHARS.len())] as char)
        .collect()
}

/// An IMF-fixdate, as in HTTP's `Date` header.
fn http_date(t: SystemTime) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    let days = secs / 86_400;
    let (y, m, d) = civil_from_days(i64::try_from(days).unwrap_or(0));
    let rem = secs % 86_400;
    format!(
        "{}, {d:02} {} {y:04} {:02}:{:02}:{:02} GMT",
        DAYS[usize::try_from(days % 7).unwrap_or(0)],
        MONTHS[usize::try_from(m - 1).unwrap_or(0)],
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (y, m, day) = civil_from_days(i64::try_from(secs / 86_400).unwrap_or(0));
    let rem = secs % 86_400;
    format!(
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_millis()
    )
}

/// A scope as Google spells it in full: `calendar.freebusy` is
/// `https://www.googleapis.com/auth/calendar.freebusy`; `openid` and full URLs stay.
fn full_scope(s: &str) -> String {
    match s {
        "openid" => s.to_string(),
        "email" => "https://www.googleapis.com/auth/userinfo.email".to_string(),
        "profile" => "https://www.googleapis.com/auth/userinfo.profile".to_string(),
        s if s.contains("://") => s.to_string(),
        s => format!("https://www.googleapis.com/auth/{s}"),
    }
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let m = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// (year, month, day), proleptic Gregorian, to days since 1970-01-01: the inverse of
/// [`civil_from_days`].
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}
