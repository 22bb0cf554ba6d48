//! Calendar presence in memory: each account's busy periods from its last good freeBusy
//! answer, merged, so that `gi_presence` answers at once from a map read, and changes at the
//! exact start and end of a meeting between fetches.

use parking_lot::RwLock;
use rustc_hash::FxHashMap;

/// An account's calendar presence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Presence {
    Unknown,
    Free,
    Busy,
}

/// One account's calendar as Google last told it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BusyTimes {
    /// Busy periods `[start, end)` in Unix seconds, sorted, none touching or overlapping
    /// another: a meeting that ends as the next begins is one busy stretch, so BUSY's `until`
    /// is when the person is really free again.
    periods: Box<[(i64, i64)]>,
    /// When Google gave this answer.
    pub fetched_at: i64,
    /// The end of the window asked for: beyond it nothing is known.
    pub window_end: i64,
}

impl BusyTimes {
    /// Sorts and merges `periods` as Google sent them (in any order, overlapping, adjacent,
    /// repeated); an empty or inverted period is dropped.
    pub fn new(mut periods: Vec<(i64, i64)>, fetched_at: i64, window_end: i64) -> BusyTimes {
        periods.retain(|(start, end)| start < end);
        periods.sort_unstable();
        let mut merged: Vec<(i64, i64)> = Vec::with_capacity(periods.len());
        for (start, end) in periods {
            match merged.last_mut() {
                Some(last) if start <= last.1 => last.1 = last.1.max(end),
                _ => merged.push((start, end)),
            }
        }
        BusyTimes {
            periods: merged.into_boxed_slice(),
            fetched_at,
            window_end,
        }
    }

    /// The merged busy periods.
    pub fn periods(&self) -> &[(i64, i64)] {
        &self.periods
    }

    /// Presence at `now`: BUSY until the end of the busy stretch `now` falls in, else FREE
    /// until the next one starts (0 when none is known).
    pub fn at(&self, now: i64) -> (Presence, i64) {
        let next = self.periods.partition_point(|&(_, end)| end <= now);
        match self.periods.get(next) {
            Some(&(start, end)) if start <= now => (Presence::Busy, end),
            Some(&(start, _)) => (Presence::Free, start),
            None => (Presence::Free, 0),
        }
    }
}

/// Every account's last good calendar answer. An account is here only while calendar
/// presence is on for it and its grant covers the calendar: the plugin removes it otherwise,
/// so that an answer needs one map read.
pub struct PresenceBook {
    calendars: RwLock<FxHashMap<String, BusyTimes>>,
    /// An answer older than this (three fetch intervals) is no longer told.
    stale_after_secs: i64,
}

impl PresenceBook {
    pub fn new(stale_after_secs: i64) -> PresenceBook {
        PresenceBook {
            calendars: RwLock::new(FxHashMap::default()),
            stale_after_secs,
        }
    }

    /// The account's presence at `now`, and when it changes (Unix seconds, or 0).
    pub fn answer(&self, account: &str, now: i64) -> (Presence, i64) {
        let calendars = self.calendars.read();
        match calendars.get(account) {
            Some(busy) if now - busy.fetched_at <= self.stale_after_secs => busy.at(now),
            _ => (Presence::Unknown, 0),
        }
    }

    /// When the account's last good answer came, if there is one.
    pub fn fetched_at(&self, account: &str) -> Option<i64> {
        self.calendars.read().get(account).map(|b| b.fetched_at)
    }

    pub fn set(&self, account: &str, busy: BusyTimes) {
        self.calendars.write().insert(account.to_owned(), busy);
    }

    pub fn remove(&self, account: &str) {
        self.calendars.write().remove(account);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_are_sorted_and_merged_and_empty_ones_dropped() {
        let busy = BusyTimes::new(
            vec![
                (50, 60),
                (10, 20),
                (20, 30),
                (15, 25),
                (40, 40),
                (45, 41),
                (55, 58),
            ],
            0,
            100,
        );
        assert_eq!(busy.periods(), [(10, 30), (50, 60)]);
    }

    #[test]
    fn presence_flips_at_the_exact_start_and_end() {
        let busy = BusyTimes::new(vec![(10, 20), (20, 30), (50, 60)], 0, 100);
        assert_eq!(busy.at(9), (Presence::Free, 10));
        assert_eq!(busy.at(10), (Presence::Busy, 30));
        assert_eq!(busy.at(29), (Presence::Busy, 30));
        assert_eq!(busy.at(30), (Presence::Free, 50));
        assert_eq!(busy.at(59), (Presence::Busy, 60));
        assert_eq!(busy.at(60), (Presence::Free, 0));
    }

    #[test]
    fn an_answer_older_than_three_intervals_is_unknown() {
        let book = PresenceBook::new(30);
        assert_eq!(book.answer("a", 0), (Presence::Unknown, 0));
        book.set("a", BusyTimes::new(vec![(100, 200)], 0, 1000));
        assert_eq!(book.answer("a", 30), (Presence::Free, 100));
        assert_eq!(book.answer("a", 31), (Presence::Unknown, 0));
        book.remove("a");
        assert_eq!(book.fetched_at("a"), None);
    }
}
