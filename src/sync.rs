//! Background syncing of every connected account's contacts, on plain threads. A scheduler
//! queue hands due accounts to a few workers, so one slow or failing account never holds up
//! another; a sync fetches every page first and lands them in one transaction and one index
//! swap, so a sync that fails half-way (or a killed process) leaves the last complete state.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::config::DomainSettings;
use crate::contact::Contact;
use crate::index::AccountIndex;
use crate::oauth::{self, RefreshFailure};
use crate::people::{self, Change, PeopleError};
use crate::plugin::{unix_now, Core};
use crate::store::Store;

/// Accounts synced at the same time. More only adds load on Google and the disk.
const WORKERS: usize = 4;
/// Retries of one request after a 429, a 5xx or a network failure, before the status turns
/// yellow (the contract's "past three retries").
const MAX_RETRIES: u32 = 3;
/// The longest pause honoured from `Retry-After`; a longer one fails this sync and the next
/// scheduled sync tries again.
const MAX_PAUSE: Duration = Duration::from_secs(60);
/// Refresh an access token this long before Google says it expires.
const EXPIRY_MARGIN_SECS: i64 = 60;

pub struct SyncWorker {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

struct Shared {
    core: Arc<Core>,
    queue: Mutex<Queue>,
    wake: Condvar,
    stopping: AtomicBool,
    /// Wakes sleeping backoffs when the plugin closes.
    pause_lock: Mutex<()>,
    pause_wake: Condvar,
}

#[derive(Default)]
struct Queue {
    ready: VecDeque<String>,
    queued: HashSet<String>,
    running: HashSet<String>,
    /// Asked for while running: run once more when the current sync ends.
    again: HashSet<String>,
    /// When each connected account is next due.
    due: HashMap<String, Instant>,
}

impl Queue {
    fn push(&mut self, account: &str) {
        if self.running.contains(account) {
            self.again.insert(account.to_owned());
        } else if self.queued.insert(account.to_owned()) {
            self.ready.push_back(account.to_owned());
        }
    }

    fn promote_due(&mut self, now: Instant, interval: Duration) {
        let due: Vec<String> = self
            .due
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(account, _)| account.clone())
            .collect();
        for account in due {
            self.due.insert(account.clone(), now + interval);
            self.push(&account);
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.due.values().min().copied()
    }
}

impl SyncWorker {
    /// Starts the workers. `accounts` are the connected accounts with their last sync time:
    /// each is due one interval after it, or at once if it never synced.
    pub fn start(core: Arc<Core>, accounts: Vec<(String, Option<i64>)>) -> SyncWorker {
        let interval = core.config.sync_interval;
        let now = Instant::now();
        let unix = unix_now();
        let mut queue = Queue::default();
        for (account, last_sync) in accounts {
            let wait = last_sync
                .map(|at| {
                    (at + interval.as_secs() as i64 - unix).clamp(0, interval.as_secs() as i64)
                })
                .unwrap_or(0);
            queue
                .due
                .insert(account, now + Duration::from_secs(wait as u64));
        }
        let shared = Arc::new(Shared {
            core,
            queue: Mutex::new(queue),
            wake: Condvar::new(),
            stopping: AtomicBool::new(false),
            pause_lock: Mutex::new(()),
            pause_wake: Condvar::new(),
        });
        let threads = (0..WORKERS)
            .map(|n| {
                let shared = shared.clone();
                std::thread::Builder::new()
                    .name(format!("gi-sync-{n}"))
                    .spawn(move || worker_loop(&shared))
                    .expect("spawning a sync thread")
            })
            .collect();
        SyncWorker { shared, threads }
    }

    /// Syncs the account as soon as a worker is free (once more if it is syncing now), and
    /// keeps it on the schedule from then on.
    pub fn request(&self, account: &str) {
        let mut queue = self.shared.queue.lock();
        let next = Instant::now() + self.shared.core.config.sync_interval;
        queue.due.entry(account.to_owned()).or_insert(next);
        queue.push(account);
        self.shared.wake.notify_one();
    }

    /// Takes the account off the schedule (it was disabled). A sync already running for it
    /// finds the account gone when it tries to commit, and changes nothing.
    pub fn forget(&self, account: &str) {
        let mut queue = self.shared.queue.lock();
        queue.due.remove(account);
        queue.again.remove(account);
        if queue.queued.remove(account) {
            queue.ready.retain(|a| a != account);
        }
    }

    /// Stops every worker; a sync in flight stops at its next step without committing.
    pub fn stop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        {
            let _queue = self.shared.queue.lock();
            self.shared.wake.notify_all();
        }
        {
            let _pause = self.shared.pause_lock.lock();
            self.shared.pause_wake.notify_all();
        }
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

impl Drop for SyncWorker {
    fn drop(&mut self) {
        self.stop();
    }
}

fn worker_loop(shared: &Shared) {
    let interval = shared.core.config.sync_interval;
    loop {
        let account = {
            let mut queue = shared.queue.lock();
            loop {
                if shared.stopping.load(Ordering::SeqCst) {
                    return;
                }
                queue.promote_due(Instant::now(), interval);
                if let Some(account) = queue.ready.pop_front() {
                    queue.queued.remove(&account);
                    queue.running.insert(account.clone());
                    break account;
                }
                match queue.next_deadline() {
                    Some(at) => {
                        shared.wake.wait_until(&mut queue, at);
                    }
                    None => shared.wake.wait(&mut queue),
                }
            }
        };

        // A panic in one sync must not take the worker (or the PBX) down with it.
        let outcome =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_sync(shared, &account)));
        if outcome.is_err() {
            log::error!("account {account}: the sync panicked (a bug); it will be retried at the next interval");
        }

        let mut queue = shared.queue.lock();
        queue.running.remove(&account);
        if let Some(at) = queue.due.get_mut(&account) {
            *at = Instant::now() + interval;
        }
        if queue.again.remove(&account) {
            queue.push(&account);
            shared.wake.notify_one();
        }
    }
}

/// Why a sync ended without landing.
enum SyncFailure {
    /// An administrator must act (yellow !): the reason says what to do.
    Issue(String),
    /// The sync token expired: the caller runs one full sync instead.
    ExpiredSyncToken,
    /// The plugin is closing, or the account was disabled or reconnected meanwhile.
    Abandoned,
}

impl From<crate::error::Error> for SyncFailure {
    fn from(e: crate::error::Error) -> SyncFailure {
        SyncFailure::Issue(e.message().to_owned())
    }
}

fn run_sync(shared: &Shared, account: &str) {
    let core = &shared.core;
    let Some(connection_id) = core.connection_id(account) else {
        return;
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
    }
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
        let core = &self.shared.core;
        let stored_token = core.store.sync_token(self.account, self.connection_id)?;
        if let Some(token) = stored_token {
            match self.fetch_all(Some(&token)) {
                Ok((changes, next)) => return self.commit(false, changes, next),
                Err(SyncFailure::ExpiredSyncToken) => log::info!(
                    "account {}: Google expired the sync token; running one full sync",
                    self.account
                ),
                Err(other) => return Err(other),
            }
        }
        let (changes, next) = self.fetch_all(None)?;
        self.commit(true, changes, next)
    }

    /// Every page of the connections (all of them, or the changes since `sync_token`).
    fn fetch_all(
        &mut self,
        sync_token: Option<&str>,
    ) -> Result<(Vec<Change>, Option<String>), SyncFailure> {
        let mut changes = Vec::new();
        let mut page_token: Option<String> = None;
        loop {
            let page = self.fetch_page(sync_token, page_token.as_deref())?;
            changes.extend(
                page.people
                    .into_iter()
                    .map(|person| person.into_change(&self.settings.region)),
            );
            match page.next_page_token {
                Some(next) => page_token = Some(next),
                None => return Ok((changes, page.next_sync_token)),
            }
        }
    }

    /// One page, refreshing the access token once on a 401 and retrying transient failures
    /// with exponential backoff and jitter, honouring `Retry-After`.
    fn fetch_page(
        &mut self,
        sync_token: Option<&str>,
        page_token: Option<&str>,
    ) -> Result<people::Page, SyncFailure> {
        let core = &self.shared.core;
        let mut retries = 0;
        let mut refreshed_after_401 = false;
        loop {
            if self.shared.stopping.load(Ordering::SeqCst) {
                return Err(SyncFailure::Abandoned);
            }
            let outcome = match self.access_token(false) {
                Ok(token) => people::fetch_page(
                    &core.http,
                    &core.config.google.people_url,
                    &token,
                    sync_token,
                    page_token,
                ),
                Err(failure) => Err(failure),
            };
            let (message, retry_after) = match outcome {
                Ok(page) => return Ok(page),
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
            if retry_after.is_some_and(|wait| wait > MAX_PAUSE) {
                return Err(SyncFailure::Issue(format!(
                    "{message}; Google asked to wait {} s, longer than the plugin waits within one sync. The next sync tries again",
                    retry_after.unwrap_or_default().as_secs()
                )));
            }
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
    ) -> Result<String, SyncFailure> {
        if self.shared.stopping.load(Ordering::SeqCst) {
            return Err(SyncFailure::Abandoned);
        }
        let mut upserts: Vec<Contact> = Vec::new();
        let mut deletions: Vec<String> = Vec::new();
        for change in changes {
            match change {
                Change::Upsert(contact) => upserts.push(contact),
                Change::Delete(resource_name) if !full => deletions.push(resource_name),
                Change::Delete(_) => {}
            }
        }
        let core = &self.shared.core;
        let account = self.account;
        let started = Instant::now();
        let landed = core.store.commit_sync(
            account,
            self.connection_id,
            full,
            &upserts,
            &deletions,
            next_sync_token.as_deref(),
            unix_now(),
            |conn| {
                let written = started.elapsed();
                let contacts = Store::contacts_of(conn, account)?;
                let reloaded = started.elapsed();
                let index = AccountIndex::build(&contacts);
                let counts = (index.contact_count(), index.number_count());
                core.index.replace(account, index);
                Ok((counts, [written, reloaded, started.elapsed()]))
            },
        )?;
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
