//! Background syncing of every connected account's contacts, on plain threads. A scheduler
//! queue hands due accounts to a few workers, so one slow or failing account never holds up
//! another; a sync fetches every page first and lands them in one transaction and one index
//! swap, so a sync that fails half-way (or a killed process) leaves the last complete state.

mod account_sync;
mod schedule;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::core::{unix_now, Core};
use account_sync::{run_sync, SyncEnd};
use schedule::Queue;

/// Accounts synced at the same time. More only adds load on Google and the disk.
const WORKERS: usize = 4;
/// Retries of one request after a 429, a 5xx or a network failure, before the status turns
/// yellow (the contract's "past three retries").
const MAX_RETRIES: u32 = 3;

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

    /// When the account's next sync is due (Unix time), if it is on the schedule: now when it
    /// waits in line or runs.
    pub fn next_due(&self, account: &str) -> Option<i64> {
        let queue = self.shared.queue.lock();
        let due = *queue.due.get(account)?;
        let wait = due.saturating_duration_since(Instant::now());
        Some(unix_now() + wait.as_secs() as i64)
    }

    /// Takes the account off the schedule (it was disabled). A sync already running for it
    /// finds the account gone when it tries to commit, and changes nothing.
    pub fn forget(&self, account: &str) {
        self.shared.queue.lock().forget(account);
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

        // A panic in one sync must not take the worker (or the PBX) down with it, nor leave
        // the account looking as if it were syncing still.
        let end = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            run_sync(shared, &account)
        }))
        .unwrap_or_else(|_| {
            if let Some(connection_id) = shared.core.connection_id(&account) {
                shared
                    .core
                    .update_state(&account, connection_id, |s| s.syncing = false);
                shared.core.record_issue(
                    &account,
                    connection_id,
                    "the sync failed on an internal error (a bug in the plugin; please report it with the plugin's log); it is retried at the next interval or on Sync now",
                );
            }
            SyncEnd::Done
        });

        let mut queue = shared.queue.lock();
        queue.running.remove(&account);
        let next = match end {
            SyncEnd::Done => {
                queue.deferrals.remove(&account);
                interval
            }
            SyncEnd::Deferred { wait, reason } => {
                let deferred = queue.deferrals.entry(account.clone()).or_insert(0);
                if *deferred >= MAX_RETRIES {
                    *deferred = 0;
                    drop(queue);
                    if let Some(connection_id) = shared.core.connection_id(&account) {
                        shared.core.record_issue(
                            &account,
                            connection_id,
                            &format!("{reason}; still failing after {MAX_RETRIES} retries. The plugin tries again when Google allows"),
                        );
                    }
                    queue = shared.queue.lock();
                } else {
                    *deferred += 1;
                    log::warn!(
                        "account {account}: {reason}; retry {deferred} of {MAX_RETRIES} in {} s, as Google asked",
                        wait.as_secs()
                    );
                }
                wait
            }
        };
        if let Some(at) = queue.due.get_mut(&account) {
            *at = Instant::now() + next;
        }
        if queue.again.remove(&account) {
            queue.push(&account);
            shared.wake.notify_one();
        }
    }
}
