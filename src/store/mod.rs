//! What the plugin persists: pending authorizations, tokens, sync state and contacts of each
//! source, and calendar presence. The
//! plugin uses the `Store` of `sqlite`, whose tokens `seal` encrypts; the types here are what
//! crosses the interface.

mod seal;
mod sqlite;

pub use seal::{Sealer, KEY_FILE};
pub use sqlite::{Committed, Landing, Loaded, Store, DATABASE_FILE};

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

/// What the store keeps of one contact source of an account.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoredSource {
    /// When a sync of it last landed.
    pub last_sync: Option<i64>,
    /// Why its last sync failed; None once one lands.
    pub last_error: Option<String>,
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

/// The OAuth tokens of one account. No `Debug`: they must never be printed.
pub struct Tokens {
    pub refresh_token: String,
    pub access_token: Option<String>,
    pub access_expires_at: Option<i64>,
}

/// A state handed out by `gi_auth_url`, waiting for Google's redirect.
pub struct PendingAuth {
    pub account: String,
    pub pkce_verifier: String,
    pub created_at: i64,
}
