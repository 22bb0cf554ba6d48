//! What the plugin persists: pending authorizations, tokens, sync state and contacts of each
//! source, and calendar presence. `Store` is the one interface; `sqlite` (one node, the
//! default) and `postgres` (a cluster's shared store) implement it, and `seal` encrypts the
//! tokens of both. The types here are what crosses the interface.

mod book_change;
mod pg_copy;
mod pg_numbers;
mod postgres;
mod seal;
mod sqlite;
mod stored_rows;

use std::path::Path;
use std::sync::mpsc::Receiver;

use crate::book::contact::{Contact, Source};
use crate::book::numbers::GroupNames;
use crate::config::StoreKind;
use crate::error::Result;
use crate::presence::BusyTimes;

pub use book_change::{BookChange, Followed};

/// The claim a contacts sync runs under (see `Store::claim`); a shared store checks it is
/// still this node's when the sync lands.
pub const CONTACTS_JOB: &str = "contacts";
pub use postgres::PgStore;
pub use seal::{Sealer, KEY_FILE};
pub use sqlite::{Committed, Landing, Loaded, SqliteStore, DATABASE_FILE};

/// Opens the store the configuration names, in `data_dir` (whose lock it holds while open:
/// one plugin per data_dir, with either store).
pub fn open(kind: &StoreKind, data_dir: &Path, sealer: Sealer) -> Result<Box<dyn Store>> {
    Ok(match kind {
        StoreKind::Sqlite => Box::new(SqliteStore::open(data_dir, sealer)?),
        StoreKind::Postgres(url) => Box::new(PgStore::open(url, data_dir, sealer)?),
    })
}

/// Everything the plugin persists, whichever database holds it. Each method is one
/// transaction; a write for an account's connection that is no longer current changes nothing.
/// See `SqliteStore` for what each does; `PgStore` does the same on PostgreSQL, and also tells
/// the other nodes what changed (`changes`).
pub trait Store: Send + Sync {
    /// Stores a new pending authorization, and drops those created before `expired_before`.
    fn insert_pending(
        &self,
        state_hash: &[u8],
        pending: &PendingAuth,
        expired_before: i64,
    ) -> Result<()>;
    /// Removes and returns the pending authorization for a state (spent once).
    fn take_pending(&self, state_hash: &[u8], expired_before: i64) -> Result<Option<PendingAuth>>;
    /// Stores a new connection's tokens, replacing an older connection's.
    fn connect_account(
        &self,
        account: &str,
        tokens: &Tokens,
        scopes: &[String],
        now: i64,
    ) -> Result<StoredAccount>;
    fn account(&self, account: &str) -> Result<Option<StoredAccount>>;
    fn accounts(&self) -> Result<Vec<StoredAccount>>;
    fn tokens(&self, account: &str, connection_id: i64) -> Result<Option<Tokens>>;
    fn update_access_token(
        &self,
        account: &str,
        connection_id: i64,
        access_token: &str,
        expires_at: Option<i64>,
        new_refresh_token: Option<&str>,
    ) -> Result<()>;
    fn set_health(
        &self,
        account: &str,
        connection_id: i64,
        issue: Option<&str>,
        last_error: Option<&str>,
    ) -> Result<()>;
    /// Erases everything of the account's connection; false when it has another by now.
    fn delete_account(&self, account: &str, connection_id: i64) -> Result<bool>;
    /// Every stored calendar answer and problem (or one account's), of current connections.
    fn presences(&self, only: Option<&str>) -> Result<Vec<StoredPresence>>;
    /// Stores what a calendar fetch learnt, then runs `after_commit` while the store is still
    /// locked; false, changing nothing, when the connection is no longer current.
    fn save_presence(
        &self,
        account: &str,
        connection_id: i64,
        outcome: CalendarOutcome<'_>,
        after_commit: &mut dyn FnMut(),
    ) -> Result<bool>;
    fn set_presence_issue(
        &self,
        account: &str,
        connection_id: i64,
        issue: Option<&str>,
    ) -> Result<()>;
    fn delete_presence(&self, account: &str) -> Result<()>;
    fn sync_token(
        &self,
        account: &str,
        connection_id: i64,
        source: Source,
    ) -> Result<Option<StoredSyncToken>>;
    fn set_source_error(
        &self,
        account: &str,
        connection_id: i64,
        source: Source,
        error: Option<&str>,
    ) -> Result<()>;
    fn forget_older_source(
        &self,
        account: &str,
        connection_id: i64,
        source: Source,
    ) -> Result<bool>;
    fn source_states(&self, only: Option<&str>) -> Result<Vec<(String, Source, StoredSource)>>;
    fn forget_sources(&self, keep: &dyn Fn(&str) -> Vec<Source>) -> Result<Vec<(String, Source)>>;
    /// Lands a whole sync of one source in one transaction, then runs `after_commit` while
    /// the store is still locked (so memory changes in the order of the commits), with a
    /// reader of the committed state. false, changing nothing, when the connection is no
    /// longer current. `now` is the source's last sync, and the account's unless it holds a
    /// later one (the sources of one sync land side by side, in any order).
    fn commit_sync(
        &self,
        account: &str,
        connection_id: i64,
        landing: &Landing<'_>,
        now: i64,
        after_commit: &mut dyn FnMut(&dyn StoreRead, &Committed) -> Result<()>,
    ) -> Result<bool>;
    /// Hands every account's stored contacts and group names to `each`, a source at a time.
    fn for_each_book(&self, each: &mut dyn FnMut(String, Source, Loaded, GroupNames))
        -> Result<()>;
    /// One source's contacts of the account and the account's group names, as stored, with
    /// the mark of the store's latest change of that book (see `follow_book`; 0 in a store
    /// no other node writes).
    fn book(&self, account: &str, source: Source) -> Result<(Loaded, GroupNames, i64)>;
    /// For a node following a shared store: how one source's book changed since `mark` (from
    /// `book` or an earlier call). When the change since is exactly one incremental sync,
    /// `patch` gets it, read in one snapshot with what patching needs, and says whether it
    /// patched the node's book; a store no other node writes always says `Rebuild`.
    fn follow_book(
        &self,
        account: &str,
        source: Source,
        mark: i64,
        patch: &mut dyn FnMut(&dyn StoreRead, &BookChange) -> Result<bool>,
    ) -> Result<Followed>;
    /// A consistent copy of the store in a new file (SQLite only).
    fn backup(&self, target: &Path) -> Result<()>;
    /// Makes what was written durable in the store's own files (SQLite's WAL); on close too.
    fn checkpoint(&self) -> Result<()>;
    /// Claims the account's `job` for this node (see `Claim`); `fresh_within` seconds: a run
    /// another node claimed that recently makes this one unneeded. A single node's store
    /// always grants.
    fn claim(&self, account: &str, job: &str, fresh_within: Option<i64>) -> Result<Claim>;
    /// Gives a granted claim back.
    fn release(&self, account: &str, job: &str);
    /// What other nodes changed in a shared store, as it happens (taken once); None for a
    /// store no other node writes.
    fn changes(&self) -> Option<Receiver<Change>>;
    /// Finishes erasing what an erasure could not yet (SQLite: a checkpoint a reader held
    /// back), without waiting; nothing when nothing is owed. The sync workers call it every
    /// few seconds, so that it does not wait for a sync that may never come.
    fn settle_owed(&self) {}
}

/// What `Store::commit_sync` lets its callback read of the state it just committed.
pub trait StoreRead {
    /// One source's contacts of the account, as the store holds them.
    fn contacts_of(&self, account: &str, source: Source) -> Result<Loaded>;
    /// One source's contacts of the account that hold one of `e164s` or `nationals` (with
    /// their numbers in stored order), for patching the index.
    fn holders(
        &self,
        account: &str,
        source: Source,
        e164s: &[u64],
        nationals: &[u64],
    ) -> Result<Vec<Contact>>;
}

/// The answer to `Store::claim`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Claim {
    /// This node runs the job; `Store::release` when it ends. Dies with the node.
    Granted,
    /// Another node is running it now.
    Busy,
    /// Another node ran it within `fresh_within` seconds, at this Unix time.
    Fresh(i64),
}

/// What another node changed in a shared store: reload it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// The account's connection, tokens or status (or it is gone).
    Account(String),
    /// One source's contacts of the account.
    Contacts(String, Source),
    /// The account's calendar presence.
    Presence(String),
    /// Anything: changes may have been missed (the store was out of reach).
    Everything,
}

/// What the database remembers of a connected account besides its tokens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredAccount {
    pub account: String,
    /// Changes on every (re)connect, so that a sync started for an older connection cannot
    /// write into a newer one, or into an account disabled meanwhile.
    pub connection_id: i64,
    pub issue: Option<String>,
    pub last_sync: Option<i64>,
    pub last_error: Option<String>,
    /// The scopes Google granted at the last connect.
    pub scopes: Vec<String>,
}

impl StoredAccount {
    /// From the `accounts` columns as both stores keep them: `status` is "connected" or
    /// "issue" (with `reason`), `scopes` space-separated.
    pub(super) fn from_columns(
        account: String,
        connection_id: i64,
        status: &str,
        reason: Option<String>,
        last_sync: Option<i64>,
        last_error: Option<String>,
        scopes: &str,
    ) -> StoredAccount {
        StoredAccount {
            account,
            connection_id,
            issue: (status == "issue")
                .then(|| reason.unwrap_or_else(|| "a problem with Google needs attention".into())),
            last_sync,
            last_error,
            scopes: scopes.split_whitespace().map(str::to_owned).collect(),
        }
    }
}

/// What the store keeps of one contact source of an account.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoredSource {
    /// When a sync of it last landed.
    pub last_sync: Option<i64>,
    /// Why its last sync failed; None once one lands.
    pub last_error: Option<String>,
}

/// What a calendar fetch leaves in the store.
#[derive(Clone, Copy)]
pub enum CalendarOutcome<'a> {
    /// A good answer: its busy times, and no problem.
    Answer(&'a BusyTimes),
    /// Google says the grant no longer covers free/busy times: none kept, and why.
    NotGranted(&'a str),
}

impl CalendarOutcome<'_> {
    /// The `presence` row's columns (both stores keep them alike): `fetched_at`,
    /// `window_end`, `busy` ("start end" pairs of Unix seconds, one a line) and `issue`.
    pub(super) fn columns(&self) -> (Option<i64>, Option<i64>, String, Option<&str>) {
        match self {
            CalendarOutcome::Answer(busy) => {
                let periods: Vec<String> = busy
                    .periods()
                    .iter()
                    .map(|(start, end)| format!("{start} {end}"))
                    .collect();
                (
                    Some(busy.fetched_at),
                    Some(busy.window_end),
                    periods.join("\n"),
                    None,
                )
            }
            CalendarOutcome::NotGranted(issue) => (None, None, String::new(), Some(issue)),
        }
    }
}

/// What the store keeps of an account's calendar presence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredPresence {
    pub account: String,
    /// The last good answer, if there was one.
    pub busy: Option<crate::presence::BusyTimes>,
    /// The calendar problem an administrator must act on, if any.
    pub issue: Option<String>,
}

impl StoredPresence {
    /// From the `presence` columns as both stores keep them: no `fetched_at`, no answer yet;
    /// `busy` holds "start end" pairs of Unix seconds, one a line (a line that is not two
    /// numbers is skipped).
    pub(super) fn from_columns(
        account: String,
        fetched_at: Option<i64>,
        window_end: Option<i64>,
        busy: &str,
        issue: Option<String>,
    ) -> StoredPresence {
        let periods = busy
            .lines()
            .filter_map(|line| {
                let (start, end) = line.split_once(' ')?;
                Some((start.parse().ok()?, end.parse().ok()?))
            })
            .collect();
        StoredPresence {
            account,
            busy: fetched_at.map(|fetched_at| {
                BusyTimes::new(periods, fetched_at, window_end.unwrap_or(fetched_at))
            }),
            issue,
        }
    }
}

/// The token columns, named as the sealing binds them.
pub(super) const REFRESH: &str = "refresh_token";
pub(super) const ACCESS: &str = "access_token";

/// A source's sync token as stored, with what the sync that earned it asked Google for
/// (`None`: a release that did not record it). Never printed: no `Debug`.
pub struct StoredSyncToken {
    pub token: String,
    pub asked: Option<String>,
}

impl StoredSyncToken {
    /// From the (sync_token, sync_asked) columns; none without a token.
    pub(super) fn from_columns((token, asked): (Option<String>, Option<String>)) -> Option<Self> {
        token.map(|token| StoredSyncToken { token, asked })
    }
}

/// The OAuth tokens of one account. No `Debug`: they must never be printed.
pub struct Tokens {
    pub refresh_token: String,
    pub access_token: Option<String>,
    pub access_expires_at: Option<i64>,
}

impl Tokens {
    /// Opens the sealed (refresh, access, expiry) columns of an account.
    pub(super) fn open_sealed(
        sealer: &Sealer,
        account: &str,
        (refresh, access, access_expires_at): (String, Option<String>, Option<i64>),
    ) -> Result<Tokens> {
        Ok(Tokens {
            refresh_token: sealer.open(account, REFRESH, &refresh)?,
            access_token: access
                .map(|t| sealer.open(account, ACCESS, &t))
                .transpose()?,
            access_expires_at,
        })
    }
}

/// A state handed out by `gi_auth_url`, waiting for Google's redirect.
pub struct PendingAuth {
    pub account: String,
    pub pkce_verifier: String,
    pub created_at: i64,
}

/// The PKCE verifier's column, named as the sealing binds it.
const PKCE_VERIFIER: &str = "pkce_verifier";

impl PendingAuth {
    /// The verifier as stored: sealed like the tokens, since with the code in Google's
    /// redirect and the client secret it redeems the account's tokens.
    pub(super) fn sealed_verifier(&self, sealer: &Sealer) -> String {
        sealer.seal(&self.account, PKCE_VERIFIER, &self.pkce_verifier)
    }

    /// A pending authorization from its stored (account, verifier, created_at), the verifier
    /// opened. One an older release stored in plain text (at most ten minutes before, or it
    /// has expired) is taken as it is.
    pub(super) fn open_stored(
        sealer: &Sealer,
        (account, verifier, created_at): (String, String, i64),
    ) -> Result<PendingAuth> {
        let pkce_verifier = if Sealer::is_sealed(&verifier) {
            sealer.open(&account, PKCE_VERIFIER, &verifier)?
        } else {
            verifier
        };
        Ok(PendingAuth {
            account,
            pkce_verifier,
            created_at,
        })
    }
}
