//! Background work for every connected account, on plain threads: syncing its contacts
//! (`account_sync`) and fetching its calendar's busy times (`presence_fetch`), both through
//! one `session` with Google. A scheduler queue hands due tasks to a few workers, so one slow
//! or failing account never holds up another; a sync fetches every page first and lands them
//! in one transaction and one index swap, so a sync that fails half-way (or a killed process)
//! leaves the last complete state.

mod account_sync;
mod follow;
mod presence_fetch;
mod schedule;
mod session;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::core::{unix_now, Core};
use crate::store::{Claim, Store, CONTACTS_JOB};
use account_sync::run_sync;
use presence_fetch::run_presence;
use schedule::Queue;
use session::SyncEnd;

/// Accounts synced at the same time. More only adds load on Google and the disk.
const WORKERS: usize = 4;
/// The most workers one job takes at once: the other job always has one (see
/// `Queue::take_ready`). With all four, contacts syncs stuck on a slow People API (minutes
/// each, with a thousand accounts due) held every worker, and every account's presence went
/// unknown after three intervals while the Calendar API answered at once.
const WORKERS_PER_JOB: usize = WORKERS - 1;
/// How soon a run asked for tries again when another node runs it or the store is away.
const ASK_AGAIN_AFTER: Duration = Duration::from_secs(2);
/// How often an idle worker wakes to finish what the store owes (see `Store::settle_owed`).
const SETTLE_EVERY: Duration = Duration::from_secs(5);
/// Retries of one request after a 429, a 5xx or a network failure, before the status turns
/// yellow (the contract's "past three retries").
const MAX_RETRIES: u32 = 3;

/// What a worker does for an account.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Job {
    /// Sync its contacts, every `sync_interval_secs`.
    Contacts,
    /// Fetch its calendar's busy times, every `presence_interval_secs`.
    Presence,
}

impl Job {
    fn interval(self, config: &Config) -> Duration {
        match self {
            Job::Contacts => config.sync_interval,
            Job::Presence => config.presence_interval,
        }
    }

    /// How long from now until the job's next regular run for `account`. A contacts sync
    /// runs in the account's own slot of the interval (see `next_slot`), at least half an
    /// interval after this one; a calendar fetch one interval from now.
    fn next_wait(self, config: &Config, account: &str) -> Duration {
        match self {
            Job::Contacts => {
                let interval = config.sync_interval.as_secs();
                let now = unix_now();
                // At least a second on: with an interval of 1 s, half of it was nothing, the
                // next run was due at once, and the account synced back to back while the
                // idle workers spun.
                let at = next_slot(account, interval, now + (interval / 2).max(1) as i64);
                Duration::from_secs((at - now).max(0) as u64)
            }
            Job::Presence => config.presence_interval,
        }
    }

    /// The job's name in the store's claims (see `Store::claim`).
    fn claim_name(self) -> &'static str {
        match self {
            Job::Contacts => CONTACTS_JOB,
            Job::Presence => "presence",
        }
    }

    /// A failure's message, naming the API this job is for when it does not already: a
    /// calendar fetch's yellow ! names the Calendar API (the contract), also when what failed
    /// was Google's token endpoint on the way to it.
    fn naming_its_api(self, message: String) -> String {
        match self {
            Job::Presence if !message.contains("Calendar API") => {
                format!("the calendar fetch (Google Calendar API) failed: {message}")
            }
            _ => message,
        }
    }

    /// The Google API the job calls, whose quota it spends, in messages to an administrator.
    fn api(self) -> &'static str {
        match self {
            Job::Contacts => "People API",
            Job::Presence => "Calendar API",
        }
    }

    /// The job's name in messages to an administrator.
    fn noun(self) -> &'static str {
        match self {
            Job::Contacts => "sync",
            Job::Presence => "calendar fetch",
        }
    }

    fn run(self, shared: &Shared, account: &str) -> SyncEnd {
        match self {
            Job::Contacts => run_sync(shared, account),
            Job::Presence => run_presence(shared, account),
        }
    }

    /// Records a problem an administrator must act on, where the status shows this job's.
    fn record_issue(self, core: &Core, account: &str, connection_id: i64, reason: &str) {
        match self {
            Job::Contacts => core.record_issue(account, connection_id, reason),
            Job::Presence => core.record_presence_issue(account, connection_id, reason),
        }
    }
}

/// An account's place in the sync interval: seconds after each multiple of the interval (in
/// Unix time). Derived from the account (a hash), so it is the same at every restart and on
/// every node, and a thousand accounts connected or restarted together sync spread over the
/// interval instead of all at once.
fn slot_offset(account: &str, interval_secs: u64) -> u64 {
    let digest = Sha256::digest(account.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_le_bytes(first) % interval_secs.max(1)
}

/// The account's first sync slot at or after `not_before` (Unix seconds).
fn next_slot(account: &str, interval_secs: u64, not_before: i64) -> i64 {
    let interval = interval_secs.max(1) as i64;
    let offset = slot_offset(account, interval_secs) as i64;
    let phase = (not_before - offset).rem_euclid(interval);
    if phase == 0 {
        not_before
    } else {
        not_before - phase + interval
    }
}

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

impl SyncWorker {
    /// Starts the workers. `accounts` are the connected accounts with their last sync time:
    /// each is due in its slot of the interval (at least half an interval after its last
    /// sync), or at once if it never synced, so a restart does not sync every account at once.
    /// The calendars of `calendars` are fetched at once: presence must not wait for the
    /// interval after a restart.
    pub fn start(
        core: Arc<Core>,
        accounts: Vec<(String, Option<i64>)>,
        calendars: Vec<String>,
    ) -> SyncWorker {
        let interval = core.config.sync_interval.as_secs();
        let now = Instant::now();
        let unix = unix_now();
        let mut queue = Queue::default();
        for (account, last_sync) in accounts {
            let wait = last_sync.map_or(0, |at| {
                // A last sync in the future (written while the clock was wrong, kept since
                // as the store never lets it step back) counts as now: taken as it is, it held
                // the account's syncs back until then at every restart.
                let at = at.min(unix);
                let not_before = unix.max(at + (interval / 2) as i64);
                next_slot(&account, interval, not_before) - unix
            });
            queue.due.insert(
                (account, Job::Contacts),
                now + Duration::from_secs(wait as u64),
            );
        }
        for account in calendars {
            // Asked for, as the contract wants a fetch at open: even when another node (or
            // this one before a restart) fetched it a moment ago.
            queue.asked.insert((account.clone(), Job::Presence));
            queue.due.insert((account, Job::Presence), now);
        }
        let shared = Arc::new(Shared {
            core,
            queue: Mutex::new(queue),
            wake: Condvar::new(),
            stopping: AtomicBool::new(false),
            pause_lock: Mutex::new(()),
            pause_wake: Condvar::new(),
        });
        let mut threads: Vec<JoinHandle<()>> = (0..WORKERS)
            .map(|n| {
                let shared = shared.clone();
                std::thread::Builder::new()
                    .name(format!("gi-sync-{n}"))
                    .spawn(move || worker_loop(&shared))
                    .expect("spawning a sync thread")
            })
            .collect();
        // A shared store (a cluster's): what other nodes change reaches this one's memory.
        if let Some(changes) = shared.core.store.changes() {
            let shared = shared.clone();
            threads.push(
                std::thread::Builder::new()
                    .name("gi-store-follow".into())
                    .spawn(move || follow::follow(&shared, &changes))
                    .expect("spawning the store's follower"),
            );
        }
        SyncWorker { shared, threads }
    }

    /// Runs the job for the account as soon as a worker is free (once more if it runs now),
    /// and keeps it on the schedule from then on.
    pub fn request(&self, account: &str, job: Job) {
        let mut queue = self.shared.queue.lock();
        let next = Instant::now() + job.next_wait(&self.shared.core.config, account);
        let task = (account.to_owned(), job);
        queue.due.entry(task.clone()).or_insert(next);
        queue.asked.insert(task.clone());
        queue.push(&task);
        self.shared.wake.notify_one();
    }

    /// When the account's next sync is due (Unix time), if it is on the schedule: now when it
    /// waits in line or runs.
    pub fn next_due(&self, account: &str) -> Option<i64> {
        let queue = self.shared.queue.lock();
        let task = (account.to_owned(), Job::Contacts);
        let due = *queue.due.get(&task)?;
        // Queued, the task's due time is already the run after this one's.
        if queue.queued.contains(&task) || queue.running.contains(&task) {
            return Some(unix_now());
        }
        let wait = due.saturating_duration_since(Instant::now());
        Some(unix_now() + wait.as_secs() as i64)
    }

    /// Takes the account's job off the schedule. A run already going for it finds the
    /// account gone (or reconnected) when it tries to commit, and changes nothing.
    pub fn forget(&self, account: &str, job: Job) {
        self.shared.forget(account, job);
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

impl Shared {
    /// Puts the account's job on the schedule at its next regular run, unless it is on it.
    fn schedule(&self, account: &str, job: Job) {
        let mut queue = self.queue.lock();
        let next = Instant::now() + job.next_wait(&self.core.config, account);
        queue.due.entry((account.to_owned(), job)).or_insert(next);
        self.wake.notify_one();
    }

    fn forget(&self, account: &str, job: Job) {
        self.queue.lock().forget(&(account.to_owned(), job));
    }
}

impl Drop for SyncWorker {
    fn drop(&mut self) {
        self.stop();
    }
}

fn worker_loop(shared: &Shared) {
    let config = &shared.core.config;
    loop {
        // Outside the queue's lock: an erasure a reader held back (a disable's checkpoint) is
        // finished here too, not only at a later sync, which may never come (the last account
        // disabled, or Google down for all).
        shared.core.store.settle_owed();
        let task = {
            let mut queue = shared.queue.lock();
            loop {
                if shared.stopping.load(Ordering::SeqCst) {
                    return;
                }
                queue.promote_due(Instant::now(), |(account, job)| {
                    job.next_wait(config, account)
                });
                if let Some(task) = queue.take_ready(WORKERS_PER_JOB) {
                    let asked = queue.asked.remove(&task);
                    break Some((task, asked));
                }
                let settle_at = Instant::now() + SETTLE_EVERY;
                let at = queue
                    .next_deadline()
                    .map_or(settle_at, |due| due.min(settle_at));
                if shared.wake.wait_until(&mut queue, at).timed_out() && at == settle_at {
                    break None;
                }
            }
        };
        let Some((task, asked)) = task else {
            continue;
        };
        let (account, job) = (&task.0, task.1);

        // A panic in one run must not take the worker (or the PBX) down with it, nor leave
        // the account looking as if it were syncing still.
        let end = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            run_claimed(shared, account, job, asked)
        }))
        .unwrap_or_else(|_| {
            if let Some(connection_id) = shared.core.connection_id(account) {
                shared
                    .core
                    .update_state(account, connection_id, |s| s.syncing = false);
                job.record_issue(
                    &shared.core,
                    account,
                    connection_id,
                    &format!("the {} failed on an internal error (a bug in the plugin; please report it with the plugin's log); it is retried at the next interval or on Sync now", job.noun()),
                );
            }
            SyncEnd::Done
        });

        let mut queue = shared.queue.lock();
        queue.running.remove(&task);
        let next = match end {
            SyncEnd::AskAgain { wait } => {
                queue.asked.insert(task.clone());
                wait
            }
            SyncEnd::Done => {
                queue.deferrals.remove(&task);
                job.next_wait(config, account)
            }
            SyncEnd::Deferred { wait, reason } => {
                let deferred = queue.deferrals.entry(task.clone()).or_insert(0);
                if *deferred >= MAX_RETRIES {
                    *deferred = 0;
                    drop(queue);
                    if let Some(connection_id) = shared.core.connection_id(account) {
                        job.record_issue(
                            &shared.core,
                            account,
                            connection_id,
                            &format!("{reason}; still failing after {MAX_RETRIES} retries. The plugin tries again when Google allows"),
                        );
                    }
                    queue = shared.queue.lock();
                } else {
                    *deferred += 1;
                    log::warn!(
                        "account {account}: {reason}; retry {deferred} of {MAX_RETRIES} of the {} in {} s, as Google asked",
                        job.noun(),
                        wait.as_secs()
                    );
                }
                wait
            }
        };
        if let Some(at) = queue.due.get_mut(&task) {
            *at = Instant::now() + next;
        }
        if queue.again.remove(&task) {
            queue.push(&task);
            shared.wake.notify_one();
        }
    }
}

/// Runs the job when this node may: in a cluster, one node at a time runs an account's job,
/// and a due run that another node made a moment ago (within half an interval) is not made
/// again, so N nodes ask Google as often as one. A run asked for (a connect, Sync now) waits
/// only for one in flight, and then runs.
fn run_claimed(shared: &Shared, account: &str, job: Job, asked: bool) -> SyncEnd {
    let store = &shared.core.store;
    let fresh_within = (!asked).then(|| (job.interval(&shared.core.config).as_secs() / 2) as i64);
    match store.claim(account, job.claim_name(), fresh_within) {
        Ok(Claim::Granted) => {
            let _claimed = Claimed {
                store: &**store,
                account,
                job,
            };
            job.run(shared, account)
        }
        // Asked for, it must run: once the other node's run ends (it may have started before a
        // reconnect, whose first sync must not wait an interval) or the store is back.
        Ok(Claim::Busy) if asked => SyncEnd::AskAgain {
            wait: ASK_AGAIN_AFTER,
        },
        Ok(Claim::Busy) => {
            log::debug!(
                "account {account}: another node runs its {} now; this node waits for the next",
                job.noun()
            );
            SyncEnd::Done
        }
        Ok(Claim::Fresh(at)) => {
            log::debug!(
                "account {account}: another node ran its {} at {at}; this node waits for the next",
                job.noun()
            );
            SyncEnd::Done
        }
        Err(e) => {
            log::warn!(
                "account {account}: the {} waits for the store: {e}",
                job.noun()
            );
            if asked {
                SyncEnd::AskAgain {
                    wait: ASK_AGAIN_AFTER * 5,
                }
            } else {
                SyncEnd::Done
            }
        }
    }
}

/// A granted claim, given back when the run ends, a panic included.
struct Claimed<'a> {
    store: &'a dyn Store,
    account: &'a str,
    job: Job,
}

impl Drop for Claimed<'_> {
    fn drop(&mut self) {
        self.store.release(self.account, self.job.claim_name());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_account_has_its_own_stable_slot_in_the_interval() {
        let interval = 3600;
        let slots: Vec<i64> = (0..1000)
            .map(|i| next_slot(&format!("tenant{i}.example"), interval, 1_000_000))
            .collect();
        for &slot in &slots {
            assert!((1_000_000..1_000_000 + interval as i64).contains(&slot));
        }
        // Spread: no ten-second stretch of the hour holds more than a few of 1,000 accounts.
        let mut per_ten_seconds = std::collections::HashMap::new();
        for slot in &slots {
            *per_ten_seconds.entry(slot / 10).or_insert(0) += 1;
        }
        assert!(
            per_ten_seconds.values().all(|&n| n <= 12),
            "{per_ten_seconds:?}"
        );
        // Stable: the same account, the same place in every interval.
        let a = next_slot("example.com/40", interval, 1_000_000);
        assert_eq!(next_slot("example.com/40", interval, a), a);
        assert_eq!(
            next_slot("example.com/40", interval, a + 1),
            a + interval as i64
        );
        assert_eq!(next_slot("example.com/40", 1, 77), 77);
    }
}
