//! One sync of one account: every page fetched first (refreshing the access token and
//! retrying transient failures), then landed in one transaction and one index swap.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::{Shared, MAX_RETRIES};
use crate::book::contact::Contact;
use crate::book::numbers::{AccountIndex, GroupNames};
use crate::config::DomainSettings;
use crate::core::unix_now;
use crate::google::oauth::{self, RefreshFailure};
use crate::google::people::{self, Change, PeopleError};
use crate::store::{Landing, Store};

/// The longest pause honoured from `Retry-After` within one sync; a longer one ends the sync
/// and the next attempt is scheduled when Google asked (it still counts as a retry).
const MAX_PAUSE: Duration = Duration::from_secs(60);
/// Refresh an access token this long before Google says it expires.
const EXPIRY_MARGIN_SECS: i64 = 60;
/// The most pages one sync follows (the contract's 1,000: a million contacts at Google's
/// page size). A reply that keeps sending page tokens past it is not Google's.
pub const MAX_PAGES: usize = 1000;

/// How a sync ended, for the schedule.
pub enum SyncEnd {
    /// Landed, failed (the status says why) or abandoned: next one at the interval.
    Done,
    /// Google asked to wait longer than a sync waits: try again after `wait`.
    Deferred { wait: Duration, reason: String },
}

/// Why a sync ended without landing.
enum SyncFailure {
    /// An administrator must act (yellow !): the reason says what to do.
    Issue(String),
    /// The sync token expired: the caller runs one full sync instead.
    ExpiredSyncToken,
    /// The plugin is closing, or the account was disabled or reconnected meanwhile.
    Abandoned,
    /// Google asked (`Retry-After`) to wait longer than a sync waits.
    Deferred { wait: Duration, reason: String },
}

impl From<crate::error::Error> for SyncFailure {
    fn from(e: crate::error::Error) -> SyncFailure {
        SyncFailure::Issue(e.message().to_owned())
    }
}

pub(super) fn run_sync(shared: &Shared, account: &str) -> SyncEnd {
    let core = &shared.core;
    let Some(connection_id) = core.connection_id(account) else {
        return SyncEnd::Done;
    };
    core.update_state(account, connection_id, |s| s.syncing = true);
    let started = Instant::now();
    let mut sync = AccountSync {
        shared,
        account,
        connection_id,
        settings: core.config.settings_for(account),
        access_token: None,
    };
    let result = sync.run();
    core.update_state(account, connection_id, |s| s.syncing = false);
    match result {
        Ok(summary) => {
            log::info!(
                "account {account}: {summary} in {} ms",
                started.elapsed().as_millis()
            );
            let now = unix_now();
            core.update_state(account, connection_id, |s| {
                s.issue = None;
                s.last_sync = Some(now);
            });
        }
        Err(SyncFailure::Issue(reason)) => core.record_issue(account, connection_id, &reason),
        Err(SyncFailure::ExpiredSyncToken) => core.record_issue(
            account,
            connection_id,
            "Google expired the sync token again during a full sync; press Sync now to retry",
        ),
        Err(SyncFailure::Abandoned) => {
            log::debug!("account {account}: sync abandoned (closing, disabled or reconnected)")
        }
        Err(SyncFailure::Deferred { wait, reason }) => return SyncEnd::Deferred { wait, reason },
    }
    SyncEnd::Done
}

/// One sync of one account.
struct AccountSync<'a> {
    shared: &'a Shared,
    account: &'a str,
    connection_id: i64,
    settings: &'a DomainSettings,
    access_token: Option<String>,
}

impl AccountSync<'_> {
    fn run(&mut self) -> Result<String, SyncFailure> {
        // Debug builds only: lets a test make a sync panic, to show that a bug in a sync
        // leaves the account yellow and not "syncing" forever. Release builds have no hook.
        #[cfg(debug_assertions)]
        if std::env::var("GI_DEBUG_PANIC_IN_SYNC").is_ok_and(|account| account == self.account) {
            panic!("a panic injected by GI_DEBUG_PANIC_IN_SYNC");
        }
        let core = &self.shared.core;
        let stored_token = core.store.sync_token(self.account, self.connection_id)?;
        if let Some(token) = stored_token {
            match self.fetch_all(Some(&token)) {
                Ok((changes, next)) => {
                    let groups = self.fetch_group_names()?;
                    return self.commit(false, changes, next, groups);
                }
                Err(SyncFailure::ExpiredSyncToken) => log::info!(
                    "account {}: Google expired the sync token; running one full sync",
                    self.account
                ),
                Err(other) => return Err(other),
            }
        }
        let (changes, next) = self.fetch_all(None)?;
        let groups = self.fetch_group_names()?;
        self.commit(true, changes, next, groups)
    }

    /// Every page of the connections (all of them, or the changes since `sync_token`), in
    /// page order. Stops at `MAX_PAGES` pages or at a page token seen before: a reply that
    /// leads in circles or never ends is not Google's, and the account turns yellow.
    fn fetch_all(
        &mut self,
        sync_token: Option<&str>,
    ) -> Result<(Vec<Change>, Option<String>), SyncFailure> {
        let mut changes = Vec::new();
        let mut page_token: Option<String> = None;
        let mut seen_tokens: HashSet<String> = HashSet::new();
        for _ in 0..MAX_PAGES {
            let page = self.fetch_page(sync_token, page_token.as_deref())?;
            changes.extend(
                page.people
                    .into_iter()
                    .map(|person| person.into_change(&self.settings.region)),
            );
            match page.next_page_token {
                Some(next) => {
                    if !seen_tokens.insert(next.clone()) {
                        return Err(SyncFailure::Issue(format!(
                            "the People API sent a page token it had sent before, so its pages never end; the sync stopped after {} pages and nothing was changed. Press Sync now to retry; if it persists, something between the PBX and Google alters the replies",
                            seen_tokens.len() + 1
                        )));
                    }
                    page_token = Some(next);
                }
                None => return Ok((changes, page.next_sync_token)),
            }
        }
        Err(SyncFailure::Issue(format!(
            "the People API sent more than {MAX_PAGES} pages (over a million contacts), more than Google's contact limit allows; the sync stopped and nothing was changed. Press Sync now to retry; if it persists, something between the PBX and Google alters the replies"
        )))
    }

    /// One page of connections (see `call` for the retries).
    fn fetch_page(
        &mut self,
        sync_token: Option<&str>,
        page_token: Option<&str>,
    ) -> Result<people::Page, SyncFailure> {
        let core = &self.shared.core;
        self.call(|token| {
            people::fetch_page(
                &core.http,
                &core.config.google.people_url,
                token,
                sync_token,
                page_token,
            )
        })
    }

    /// The names of the account's contact groups, asked at every sync so that a renamed
    /// group shows its new name.
    fn fetch_group_names(&mut self) -> Result<GroupNames, SyncFailure> {
        let core = &self.shared.core;
        self.call(|token| {
            people::fetch_group_names(&core.http, &core.config.google.people_url, token)
        })
    }

    /// One request to the People API with the account's access token, refreshing the token
    /// once on a 401 and retrying transient failures with exponential backoff and jitter,
    /// honouring `Retry-After`.
    fn call<T>(
        &mut self,
        request: impl Fn(&str) -> Result<T, PeopleError>,
    ) -> Result<T, SyncFailure> {
        let core = &self.shared.core;
        let mut retries = 0;
        let mut refreshed_after_401 = false;
        loop {
            if self.shared.stopping.load(Ordering::SeqCst) {
                return Err(SyncFailure::Abandoned);
            }
            let outcome = match self.access_token(false) {
                Ok(token) => request(&token),
                Err(failure) => Err(failure),
            };
            let (message, retry_after) = match outcome {
                Ok(answer) => return Ok(answer),
                Err(PeopleError::Unauthorized) if !refreshed_after_401 => {
                    refreshed_after_401 = true;
                    log::debug!(
                        "account {}: access token rejected; refreshing it",
                        self.account
                    );
                    self.access_token = None;
                    self.access_token(true).map_err(|e| self.failure(e))?;
                    continue;
                }
                Err(PeopleError::Transient {
                    message,
                    retry_after,
                }) => (message, retry_after),
                Err(PeopleError::ExpiredSyncToken) => return Err(SyncFailure::ExpiredSyncToken),
                Err(other) => return Err(self.failure(other)),
            };
            if let Some(wait) = retry_after.filter(|wait| *wait > MAX_PAUSE) {
                // Not slept here (a worker would sit idle for it): the schedule runs the
                // account again when Google allows, and counts it as a retry.
                return Err(SyncFailure::Deferred {
                    wait,
                    reason: message,
                });
            }
            if retries == MAX_RETRIES {
                return Err(SyncFailure::Issue(format!(
                    "{message}; still failing after {MAX_RETRIES} retries. The plugin tries again at the next sync (every {} s) or on Sync now; if it persists, check the PBX's internet access and Google's status page",
                    core.config.sync_interval.as_secs()
                )));
            }
            let pause = backoff(core.config.retry_base, retries, retry_after);
            log::warn!(
                "account {}: {message}; retry {} of {MAX_RETRIES} in {} ms",
                self.account,
                retries + 1,
                pause.as_millis()
            );
            if !self.pause(pause) {
                return Err(SyncFailure::Abandoned);
            }
            retries += 1;
        }
    }

    fn failure(&self, error: PeopleError) -> SyncFailure {
        match error {
            PeopleError::ExpiredSyncToken => SyncFailure::ExpiredSyncToken,
            other => SyncFailure::Issue(other.message()),
        }
    }

    /// A usable access token: the stored one while it is valid, else a refreshed one (which
    /// is stored; the refresh token is kept, since Google does not resend it).
    fn access_token(&mut self, force_refresh: bool) -> Result<String, PeopleError> {
        if let (Some(token), false) = (&self.access_token, force_refresh) {
            return Ok(token.clone());
        }
        let core = &self.shared.core;
        let tokens = core
            .store
            .tokens(self.account, self.connection_id)
            .map_err(|e| PeopleError::Refused(e.message().to_owned()))?
            .ok_or_else(|| {
                PeopleError::Refused("the account was disconnected during the sync".into())
            })?;
        let now = unix_now();
        if !force_refresh {
            if let (Some(token), Some(expires)) = (&tokens.access_token, tokens.access_expires_at) {
                if expires - EXPIRY_MARGIN_SECS > now {
                    self.access_token = Some(token.clone());
                    return Ok(token.clone());
                }
            }
        }
        let granted = oauth::refresh(
            &core.http,
            self.settings,
            &core.config.google,
            &tokens.refresh_token,
            now,
        )
        .map_err(|failure| match failure {
            RefreshFailure::GrantDead(_) => PeopleError::Forbidden(
                "Google no longer accepts this account's authorization (invalid_grant): the user removed the PBX's access, the refresh token expired, or the OAuth consent screen is in \"Testing\", where tokens expire after 7 days. Click \"Get auth code\" to reconnect, and publish the consent screen to production so it does not recur".into(),
            ),
            RefreshFailure::Unreachable(e) => PeopleError::Transient {
                message: e.message().to_owned(),
                retry_after: None,
            },
            RefreshFailure::Refused(e) => PeopleError::Refused(e.message().to_owned()),
        })?;
        core.store
            .update_access_token(
                self.account,
                self.connection_id,
                &granted.access_token,
                granted.expires_at,
                granted.refresh_token.as_deref(),
            )
            .map_err(|e| PeopleError::Refused(e.message().to_owned()))?;
        log::debug!("account {}: access token refreshed", self.account);
        self.access_token = Some(granted.access_token.clone());
        Ok(granted.access_token)
    }

    /// Sleeps for a backoff; false when the plugin is closing.
    fn pause(&self, duration: Duration) -> bool {
        let mut guard = self.shared.pause_lock.lock();
        if self.shared.stopping.load(Ordering::SeqCst) {
            return false;
        }
        self.shared.pause_wake.wait_for(&mut guard, duration);
        !self.shared.stopping.load(Ordering::SeqCst)
    }

    /// Lands the fetched changes in one transaction and swaps the account's index in the
    /// same step.
    fn commit(
        &self,
        full: bool,
        changes: Vec<Change>,
        next_sync_token: Option<String>,
        group_names: GroupNames,
    ) -> Result<String, SyncFailure> {
        if self.shared.stopping.load(Ordering::SeqCst) {
            return Err(SyncFailure::Abandoned);
        }
        let (upserts, mut deletions) = last_change_of_each(changes);
        if full {
            deletions.clear(); // a full sync replaces everything: nothing to delete
        }
        let core = &self.shared.core;
        let account = self.account;
        let started = Instant::now();
        let landing = Landing {
            replace_all: full,
            upserts: &upserts,
            deletions: &deletions,
            sync_token: next_sync_token.as_deref(),
            group_names: &group_names,
        };
        let landed =
            core.store
                .commit_sync(account, self.connection_id, &landing, unix_now(), |conn| {
                    let written = started.elapsed();
                    let contacts = Store::contacts_of(conn, account)?;
                    let reloaded = started.elapsed();
                    let index = AccountIndex::build_with(
                        &contacts,
                        &group_names,
                        self.settings.contact_groups.as_deref(),
                    );
                    let counts = (index.contact_count(), index.number_count());
                    core.index.replace(account, index);
                    Ok((counts, [written, reloaded, started.elapsed()]))
                })?;
        let Some(((contacts, numbers), [written, reloaded, indexed])) = landed else {
            return Err(SyncFailure::Abandoned);
        };
        // Where the time went, for whoever tunes a slow sync: write, reload, index.
        let phases = format!(
            "written in {} ms, reloaded in {} ms, indexed in {} ms",
            written.as_millis(),
            (reloaded - written).as_millis(),
            (indexed - reloaded).as_millis()
        );
        Ok(if full {
            format!("full sync: {contacts} contacts, {numbers} numbers ({phases})")
        } else {
            format!(
                "incremental sync: {} changed, {} deleted; {contacts} contacts, {numbers} numbers ({phases})",
                upserts.len(),
                deletions.len()
            )
        })
    }
}

/// What a sync's changes come to, person by person: a person listed more than once counts
/// once, as its last listing in page order says (an upsert then a delete is a delete; a delete
/// then an upsert is an upsert). Each resource name is then in at most one of the two lists,
/// so the store may apply them in any order.
fn last_change_of_each(changes: Vec<Change>) -> (Vec<Contact>, Vec<String>) {
    let mut seen: HashSet<String> = HashSet::with_capacity(changes.len());
    let mut upserts = Vec::new();
    let mut deletions = Vec::new();
    for change in changes.into_iter().rev() {
        let resource_name = match &change {
            Change::Upsert(contact) => &contact.resource_name,
            Change::Delete(resource_name) => resource_name,
        };
        if !seen.insert(resource_name.clone()) {
            continue; // an earlier listing of someone listed again later
        }
        match change {
            Change::Upsert(contact) => upserts.push(contact),
            Change::Delete(resource_name) => deletions.push(resource_name),
        }
    }
    upserts.reverse();
    deletions.reverse();
    (upserts, deletions)
}

/// The pause before retry `retry` (0-based): `base · 2^retry` with up to 50% random jitter,
/// so many PBXs hit by the same outage do not retry in step, but never less than what
/// Google asked for in `Retry-After`.
fn backoff(base: Duration, retry: u32, retry_after: Option<Duration>) -> Duration {
    let exponential = base.saturating_mul(1 << retry.min(16));
    let jitter = exponential.mul_f64(rand::random::<f64>() * 0.5);
    let pause = exponential + jitter;
    match retry_after {
        Some(asked) => pause.max(asked),
        None => pause,
    }
    .min(MAX_PAUSE)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upsert(resource_name: &str, name: &str) -> Change {
        Change::Upsert(Contact {
            resource_name: resource_name.into(),
            name: name.into(),
            company: String::new(),
            numbers: vec![],
            groups: vec![],
        })
    }

    #[test]
    fn the_last_listing_of_a_person_wins() {
        let (upserts, deletions) = last_change_of_each(vec![
            upsert("people/a", "first"),
            upsert("people/b", "b"),
            upsert("people/a", "second"),
            upsert("people/c", "c"),
            Change::Delete("people/c".into()),
            Change::Delete("people/d".into()),
            upsert("people/d", "back"),
        ]);
        let names: Vec<(&str, &str)> = upserts
            .iter()
            .map(|c| (c.resource_name.as_str(), c.name.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("people/b", "b"),
                ("people/a", "second"),
                ("people/d", "back")
            ]
        );
        assert_eq!(deletions, ["people/c"]);
    }

    #[test]
    fn backoff_doubles_with_jitter_and_honours_retry_after() {
        let base = Duration::from_millis(100);
        for retry in 0..3 {
            let pause = backoff(base, retry, None);
            let floor = base * (1 << retry);
            assert!(pause >= floor && pause <= floor.mul_f64(1.5), "{pause:?}");
        }
        assert!(backoff(base, 0, Some(Duration::from_secs(7))) >= Duration::from_secs(7));
        assert_eq!(backoff(base, 0, Some(Duration::from_secs(600))), MAX_PAUSE);
    }
}
