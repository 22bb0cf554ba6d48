//! The schedule: when each connected account's jobs (its contacts sync, its calendar fetch)
//! are next due, which are ready to run, and which are running (a job of an account never
//! runs twice at once).

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use super::Job;

/// One job of one account.
pub type Task = (String, Job);

#[derive(Default)]
pub struct Queue {
    pub ready: VecDeque<Task>,
    pub queued: HashSet<Task>,
    pub running: HashSet<Task>,
    /// Asked for while running: run once more when the current run ends.
    pub again: HashSet<Task>,
    /// When each scheduled task is next due.
    pub due: HashMap<Task, Instant>,
    /// Asked for (a connect, Sync now) rather than due: run even when another node of a
    /// cluster ran it a moment ago.
    pub asked: HashSet<Task>,
    /// Runs in a row that ended with Google asking to wait longer than a run waits: each
    /// counts as a retry, so the account turns yellow only after three.
    pub deferrals: HashMap<Task, u32>,
}

impl Queue {
    pub fn push(&mut self, task: &Task) {
        if self.running.contains(task) {
            self.again.insert(task.clone());
        } else if self.queued.insert(task.clone()) {
            self.ready.push_back(task.clone());
        }
    }

    /// Takes the first ready task whose job runs on fewer than `per_job` workers, and marks it
    /// running: so a job that holds its workers long (contacts syncs while the People API is
    /// slow, each request up to its 60 s deadline, retried) leaves one to the other (calendar
    /// fetches, whose answers go stale in three intervals), and the other way round.
    pub fn take_ready(&mut self, per_job: usize) -> Option<Task> {
        // At most a few tasks run (the workers): counted for each ready task looked at.
        let has_room = |job: Job| self.running.iter().filter(|(_, j)| *j == job).count() < per_job;
        let at = self.ready.iter().position(|(_, job)| has_room(*job))?;
        let task = self.ready.remove(at)?;
        self.queued.remove(&task);
        self.running.insert(task.clone());
        Some(task)
    }

    /// Queues every task that is due by `now`, and puts it on the schedule again `next`
    /// from now (its job's next regular run; the run itself sets it again when it ends).
    pub fn promote_due(&mut self, now: Instant, next: impl Fn(&Task) -> Duration) {
        let mut due: Vec<(Instant, Task)> = self
            .due
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(task, at)| (*at, task.clone()))
            .collect();
        // In the order they fell due (the contract: due syncs wait in line in that order),
        // not the map's; the same moment by account, so that the line is the same every time.
        due.sort();
        for (_, task) in due {
            self.due.insert(task.clone(), now + next(&task));
            self.push(&task);
        }
    }

    /// Takes a task off the schedule.
    pub fn forget(&mut self, task: &Task) {
        self.due.remove(task);
        self.again.remove(task);
        self.asked.remove(task);
        self.deferrals.remove(task);
        if self.queued.remove(task) {
            self.ready.retain(|t| t != task);
        }
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.due.values().min().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_on_all_its_workers_leaves_the_next_ready_task_of_the_other_job_to_run() {
        let mut queue = Queue::default();
        for n in 0..5 {
            queue.push(&(format!("a{n}"), Job::Contacts));
        }
        queue.push(&("a0".to_owned(), Job::Presence));
        let took: Vec<Task> = std::iter::from_fn(|| queue.take_ready(3)).collect();
        let names: Vec<(&str, Job)> = took.iter().map(|(a, j)| (a.as_str(), *j)).collect();
        assert_eq!(
            names,
            [
                ("a0", Job::Contacts),
                ("a1", Job::Contacts),
                ("a2", Job::Contacts),
                ("a0", Job::Presence)
            ]
        );
        // A contacts sync ends: the next in line runs.
        queue.running.remove(&took[0]);
        assert_eq!(queue.take_ready(3), Some(("a3".to_owned(), Job::Contacts)));
        assert_eq!(queue.ready.len(), 1);
    }

    #[test]
    fn tasks_due_together_line_up_in_the_order_they_fell_due() {
        let now = Instant::now();
        let mut queue = Queue::default();
        // Fell due 1..=10 s ago, inserted in another order.
        for late in [3u64, 9, 1, 7, 5, 10, 2, 8, 6, 4] {
            let task = (format!("account{late:02}"), Job::Contacts);
            queue.due.insert(task, now - Duration::from_secs(late));
        }
        queue.promote_due(now, |_| Duration::from_secs(600));
        let line: Vec<&str> = queue.ready.iter().map(|(a, _)| a.as_str()).collect();
        let expected: Vec<String> = (1..=10)
            .rev()
            .map(|late| format!("account{late:02}"))
            .collect();
        assert_eq!(line, expected, "the longest overdue first");
    }
}
