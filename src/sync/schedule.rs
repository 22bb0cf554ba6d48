//! The sync schedule: when each connected account is next due, which are ready to run, and
//! which are running (an account is never synced twice at once).

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

#[derive(Default)]
pub struct Queue {
    pub ready: VecDeque<String>,
    pub queued: HashSet<String>,
    pub running: HashSet<String>,
    /// Asked for while running: run once more when the current sync ends.
    pub again: HashSet<String>,
    /// When each connected account is next due.
    pub due: HashMap<String, Instant>,
    /// Syncs in a row that ended with Google asking to wait longer than a sync waits: each
    /// counts as a retry, so the account turns yellow only after three.
    pub deferrals: HashMap<String, u32>,
}

impl Queue {
    pub fn push(&mut self, account: &str) {
        if self.running.contains(account) {
            self.again.insert(account.to_owned());
        } else if self.queued.insert(account.to_owned()) {
            self.ready.push_back(account.to_owned());
        }
    }

    pub fn promote_due(&mut self, now: Instant, interval: Duration) {
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

    /// Takes the account off the schedule.
    pub fn forget(&mut self, account: &str) {
        self.due.remove(account);
        self.again.remove(account);
        self.deferrals.remove(account);
        if self.queued.remove(account) {
            self.ready.retain(|a| a != account);
        }
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.due.values().min().copied()
    }
}
