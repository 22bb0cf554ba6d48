//! The state every part of the plugin shares: the configuration, the store, the HTTP client,
//! the caller-ID index, the calendars' busy times and what is known of each account. The façade (`plugin`) and the sync
//! workers (`sync`) both hold it; it knows neither of them.

use std::collections::HashMap;

use parking_lot::RwLock;

use crate::book::contact::Source;
use crate::book::numbers::ContactIndex;
use crate::config::Config;
use crate::google::calendar;
use crate::google::http::HttpClient;
use crate::presence::PresenceBook;
use crate::store::{CalendarOutcome, Store, StoredAccount, StoredSource};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Disconnected,
    Connected,
    Issue,
}

/// What the plugin knows of a connected account, kept in memory so that status calls never
/// touch the database. The store holds the same facts for restarts.
#[derive(Clone, Debug)]
pub struct AccountState {
    pub connection_id: i64,
    pub issue: Option<String>,
    pub syncing: bool,
    pub last_sync: Option<i64>,
    pub last_error: Option<String>,
    pub scopes: Vec<String>,
    /// A calendar presence problem an administrator must act on (the scope not granted, the
    /// Calendar API disabled): kept apart from the sync's, so that a good sync does not hide
    /// it, nor a good calendar fetch a sync's.
    pub presence_issue: Option<String>,
    /// Each contact source's last sync and last error, at `Source as usize`.
    pub sources: [SourceState; 3],
    /// Counts this node's changes to the state (in memory only): a reload of the account
    /// from a shared store that read the store before one of them must not undo it.
    pub revision: u64,
}

/// How an account's contact source last synced, for the status.
pub type SourceState = StoredSource;

/// A source's failure as the account's reason words it: named, unless it is the contacts'.
pub fn source_problem(source: Source, error: &str) -> String {
    match source {
        Source::Contacts => error.to_owned(),
        other => format!("{}: {error}", other.noun()),
    }
}

impl AccountState {
    /// Changes the state on this node's behalf, counting the change (see `revision`).
    pub fn update(&mut self, f: impl FnOnce(&mut AccountState)) {
        f(self);
        self.revision = self.revision.wrapping_add(1);
    }

    /// The sync's problem as its sources' last errors make it (see `source_problem`), in
    /// lookup order; None when none failed.
    pub fn sources_problem(&self) -> Option<String> {
        let problems: Vec<String> = Source::ALL
            .into_iter()
            .filter_map(|source| {
                let error = self.sources[source as usize].last_error.as_deref()?;
                Some(source_problem(source, error))
            })
            .collect();
        (!problems.is_empty()).then(|| problems.join("; "))
    }

    /// Why the account is yellow, if it is: the sync's problem, the calendar's, or both.
    pub fn reason(&self) -> Option<String> {
        match (&self.issue, &self.presence_issue) {
            (Some(sync), Some(calendar)) => Some(format!("{sync}; also: {calendar}")),
            (Some(one), None) | (None, Some(one)) => Some(one.clone()),
            (None, None) => None,
        }
    }
}

impl From<StoredAccount> for AccountState {
    fn from(stored: StoredAccount) -> AccountState {
        AccountState {
            connection_id: stored.connection_id,
            issue: stored.issue,
            syncing: false,
            last_sync: stored.last_sync,
            last_error: stored.last_error,
            scopes: stored.scopes,
            presence_issue: None,
            sources: Default::default(),
            revision: 0,
        }
    }
}

/// What every part of the plugin shares: the sync worker's threads hold it too.
pub struct Core {
    pub config: Config,
    pub store: Box<dyn Store>,
    pub http: HttpClient,
    pub index: ContactIndex,
    pub presence: PresenceBook,
    pub accounts: RwLock<HashMap<String, AccountState>>,
}

impl Core {
    /// The connection an account has now, if it is connected.
    pub fn connection_id(&self, account: &str) -> Option<i64> {
        self.accounts.read().get(account).map(|s| s.connection_id)
    }

    /// Updates the in-memory state of an account, if it still has that connection (a
    /// disable or reconnect meanwhile makes the update moot).
    pub fn update_state(
        &self,
        account: &str,
        connection_id: i64,
        f: impl FnOnce(&mut AccountState),
    ) {
        if let Some(state) = self.accounts.write().get_mut(account) {
            if state.connection_id == connection_id {
                state.update(f);
            }
        }
    }

    /// Clears the sync's problem (green again, unless the calendar has one), in the store and
    /// in memory, when there is one: a run of every source ended well. The last error stays,
    /// for the status.
    pub fn clear_issue(&self, account: &str, connection_id: i64) {
        let last_error = match self.accounts.read().get(account) {
            Some(state) if state.connection_id == connection_id && state.issue.is_some() => {
                state.last_error.clone()
            }
            _ => return,
        };
        if let Err(e) = self
            .store
            .set_health(account, connection_id, None, last_error.as_deref())
        {
            log::error!("account {account}: cannot store its status: {e}");
        }
        self.update_state(account, connection_id, |s| s.issue = None);
    }

    /// Records a problem an administrator must act on (the yellow !).
    pub fn record_issue(&self, account: &str, connection_id: i64, reason: &str) {
        log::warn!("account {account}: {reason}");
        if let Err(e) = self
            .store
            .set_health(account, connection_id, Some(reason), Some(reason))
        {
            log::error!("account {account}: cannot store its status: {e}");
        }
        self.update_state(account, connection_id, |s| {
            s.issue = Some(reason.to_owned());
            s.last_error = Some(reason.to_owned());
        });
    }
}

impl Core {
    /// Notes that a sync of one of the account's sources landed (the store noted it in the
    /// same transaction as the contacts).
    pub fn source_synced(&self, account: &str, connection_id: i64, source: Source, now: i64) {
        self.update_state(account, connection_id, |s| {
            s.sources[source as usize] = SourceState {
                last_sync: Some(now),
                last_error: None,
            }
        });
    }

    /// Erases a source's contacts that the account's previous connection synced, when this
    /// connection's sync of it fails (see `Store::forget_older_source`): they may be another
    /// Google user's, and must not answer for this one.
    pub fn forget_older_source(&self, account: &str, connection_id: i64, source: Source) {
        match self
            .store
            .forget_older_source(account, connection_id, source)
        {
            Ok(true) => {
                self.index.remove_source(account, source);
                log::info!(
                    "account {account}: {} synced under its previous connection are erased, since this connection cannot sync them",
                    source.noun()
                );
            }
            Ok(false) => {}
            // Perhaps erased all the same (PostgreSQL: the reply to COMMIT lost), and then no
            // later call finds anything to erase: this node would go on answering with what
            // may be another Google user's contacts. Memory lets them go either way; the
            // store's copy, if it stayed, is erased at the next sync that fails so.
            Err(e) => {
                self.index.remove_source(account, source);
                log::error!(
                    "account {account}: cannot erase {} of its previous connection: {e}; this node no longer shows them",
                    source.noun()
                )
            }
        }
    }

    /// Records why a sync of one of the account's sources failed; its contacts stay as they
    /// were, and the account's other sources are not touched.
    pub fn source_failed(&self, account: &str, connection_id: i64, source: Source, error: &str) {
        if let Err(e) = self
            .store
            .set_source_error(account, connection_id, source, Some(error))
        {
            log::error!(
                "account {account}: cannot store how its {} sync ended: {e}",
                source.name()
            );
        }
        self.update_state(account, connection_id, |s| {
            s.sources[source as usize].last_error = Some(error.to_owned())
        });
    }
}

impl Core {
    /// Records a calendar presence problem an administrator must act on (the yellow !). The
    /// busy times already known stay until they are stale.
    pub fn record_presence_issue(&self, account: &str, connection_id: i64, reason: &str) {
        log::warn!("account {account}: calendar presence: {reason}");
        if let Err(e) = self
            .store
            .set_presence_issue(account, connection_id, Some(reason))
        {
            log::error!("account {account}: cannot store its calendar status: {e}");
        }
        self.update_state(account, connection_id, |s| {
            s.presence_issue = Some(reason.to_owned())
        });
    }

    /// Forgets the account's busy times, in the store and then in memory, and records why
    /// (the yellow !): Google says its grant no longer covers them.
    pub fn forget_presence(&self, account: &str, connection_id: i64, reason: &str) {
        log::warn!("account {account}: calendar presence: {reason}");
        let forgotten = self.store.save_presence(
            account,
            connection_id,
            CalendarOutcome::NotGranted(reason),
            &mut || self.presence.remove(account),
        );
        match forgotten {
            Ok(true) => {}
            // Reconnected or disabled meanwhile: nothing of this grant is left to forget.
            Ok(false) => return,
            Err(e) => {
                // What this node tells must not wait for the store.
                log::error!("account {account}: cannot erase its calendar's busy times: {e}");
                self.presence.remove(account);
            }
        }
        self.update_state(account, connection_id, |s| {
            s.presence_issue = Some(reason.to_owned())
        });
    }
}

/// Whether the account's calendar is fetched: presence is on for its domain and its grant
/// covers free/busy times.
pub fn calendar_fetched(config: &Config, account: &str, state: &AccountState) -> bool {
    config.settings_for(account).calendar && calendar::grants_free_busy(&state.scopes)
}

/// The yellow ! of an account whose configuration wants its calendar but whose grant lacks it.
pub fn missing_calendar_scope(
    config: &Config,
    account: &str,
    state: &AccountState,
) -> Option<String> {
    (config.settings_for(account).calendar && !calendar::grants_free_busy(&state.scopes)).then(|| {
        format!("calendar presence is on, but Google did not grant {account} access to its calendar's free/busy times: click \"Get auth code\" to grant calendar access (keep the calendar box ticked on Google's consent screen)")
    })
}

pub use crate::clock::{rfc3339, unix_now};
