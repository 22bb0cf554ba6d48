//! Calendar presence in memory: each account's busy periods from its last good freeBusy
//! answer, merged, so that `gi_presence` answers at once from a map read, and changes at the
//! exact start and end of a meeting between fetches.

use parking_lot::RwLock;
use rustc_hash::FxHashMap;

use crate::clock;

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
    calendars: RwLock<FxHashMap<Key, Entry>>,
    /// An answer older than this (three fetch intervals) is no longer told.
    stale_after_secs: i64,
}

/// One account's calendar, laid out for `answer`: with thousands of accounts asked in turn,
/// each answer is a few cache misses, so what it needs most of the time is in the map's own
/// slot (the key, the answer that holds from the fetch until the first start or end after
/// it, the staleness deadline), and the periods are read only after a meeting started or
/// ended since the fetch.
struct Entry {
    /// The answer at the fetch, and when it first changes (`i64::MAX`: never, in the window).
    settled: (Presence, i64),
    changes_at: i64,
    /// Past this, the answer is stale (unknown); and as long before the fetch (see `answer`).
    stale_at: i64,
    busy: BusyTimes,
}

impl Entry {
    fn new(busy: BusyTimes, stale_after_secs: i64) -> Entry {
        let settled = busy.at(busy.fetched_at);
        let changes_at = match settled {
            (Presence::Free, 0) => i64::MAX,
            (_, until) => until,
        };
        Entry {
            settled,
            changes_at,
            stale_at: busy.fetched_at.saturating_add(stale_after_secs),
            busy,
        }
    }

    /// The answer for every second from `earliest` to `latest` (at most one apart), if it is
    /// the same for both: answers change only at whole seconds, so then it is the answer.
    fn answer_within(&self, earliest: i64, latest: i64) -> Option<(Presence, i64)> {
        let answer = self.answer(earliest);
        (latest == earliest || self.answer(latest) == answer).then_some(answer)
    }

    fn answer(&self, now: i64) -> (Presence, i64) {
        // An answer is as old as the clock says either way: fetched while the clock ran ahead
        // (a wrong clock at boot, stepped back later), it was told for hours past three
        // intervals while every new fetch failed. (From the fetch's time, which the next
        // branch reads anyway, not a field of its own: the entry's hot part stays as it is.)
        let fetched_at = self.busy.fetched_at;
        if now > self.stale_at
            || now < fetched_at.saturating_sub(self.stale_at.saturating_sub(fetched_at))
        {
            (Presence::Unknown, 0)
        } else if now >= self.busy.fetched_at && now < self.changes_at {
            self.settled
        } else {
            self.busy.at(now)
        }
    }
}

/// An account as the map's key: inline when it fits (as PBX accounts like "example.com/40"
/// do), so that finding an entry does not read the key from elsewhere in memory. Hashed and
/// compared as its bytes.
#[derive(PartialEq, Eq)]
enum Key {
    Inline { len: u8, bytes: [u8; INLINE_KEY] },
    Heap(Box<[u8]>),
}

const INLINE_KEY: usize = 23;

impl Key {
    fn new(account: &str) -> Key {
        let given = account.as_bytes();
        if given.len() <= INLINE_KEY {
            let mut bytes = [0; INLINE_KEY];
            bytes[..given.len()].copy_from_slice(given);
            Key::Inline {
                len: given.len() as u8,
                bytes,
            }
        } else {
            Key::Heap(given.into())
        }
    }

    fn bytes(&self) -> &[u8] {
        match self {
            Key::Inline { len, bytes } => &bytes[..*len as usize],
            Key::Heap(bytes) => bytes,
        }
    }
}

impl std::hash::Hash for Key {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.bytes().hash(state)
    }
}

impl std::borrow::Borrow<[u8]> for Key {
    fn borrow(&self) -> &[u8] {
        self.bytes()
    }
}

impl PresenceBook {
    pub fn new(stale_after_secs: i64) -> PresenceBook {
        PresenceBook {
            calendars: RwLock::new(FxHashMap::default()),
            stale_after_secs,
        }
    }

    /// The account's presence at a given `now` (the tests' clock; the plugin asks
    /// `answer_now`).
    #[cfg(test)]
    pub fn answer(&self, account: &str, now: i64) -> (Presence, i64) {
        match self.calendars.read().get(account.as_bytes()) {
            Some(entry) => entry.answer(now),
            None => (Presence::Unknown, 0),
        }
    }

    /// The account's presence now, and when it changes: read with the cheap clock when the
    /// answer is the same across its window, else with the precise one (see `clock`).
    pub fn answer_now(&self, account: &str) -> (Presence, i64) {
        let (earliest, latest) = clock::now_window();
        match self.calendars.read().get(account.as_bytes()) {
            Some(entry) => entry
                .answer_within(earliest, latest)
                .unwrap_or_else(|| entry.answer(clock::unix_now())),
            None => (Presence::Unknown, 0),
        }
    }

    /// When the account's last good answer came, if there is one.
    pub fn fetched_at(&self, account: &str) -> Option<i64> {
        self.calendars
            .read()
            .get(account.as_bytes())
            .map(|e| e.busy.fetched_at)
    }

    pub fn set(&self, account: &str, busy: BusyTimes) {
        let entry = Entry::new(busy, self.stale_after_secs);
        self.calendars.write().insert(Key::new(account), entry);
    }

    pub fn remove(&self, account: &str) {
        self.calendars.write().remove(account.as_bytes());
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
        // Fetched "in the future" (the clock stepped back since): as stale, that far ahead.
        book.set("a", BusyTimes::new(vec![(100, 200)], 10_000, 20_000));
        assert_eq!(book.answer("a", 9_970), (Presence::Free, 0));
        assert_eq!(book.answer("a", 9_969), (Presence::Unknown, 0));
        assert_eq!(book.answer("a", 100), (Presence::Unknown, 0));
        book.remove("a");
        assert_eq!(book.fetched_at("a"), None);
    }

    #[test]
    fn the_answer_kept_from_the_fetch_agrees_with_the_periods_at_every_second() {
        let long = "a-domain-longer-than-the-inline-key.example/40";
        let book = PresenceBook::new(1000);
        for account in ["example.com/40", long] {
            book.set(
                account,
                BusyTimes::new(vec![(110, 120), (120, 130), (150, 160)], 100, 300),
            );
        }
        let busy = BusyTimes::new(vec![(110, 130), (150, 160)], 100, 300);
        for now in 90..=1101 {
            let expected = if now > 1100 {
                (Presence::Unknown, 0)
            } else {
                busy.at(now)
            };
            assert_eq!(book.answer("example.com/40", now), expected, "at {now}");
            assert_eq!(book.answer(long, now), expected, "at {now}");
        }
        // Fetched during a meeting, and with nothing booked.
        book.set("b", BusyTimes::new(vec![(90, 130)], 100, 300));
        assert_eq!(book.answer("b", 100), (Presence::Busy, 130));
        assert_eq!(book.answer("b", 130), (Presence::Free, 0));
        book.set("c", BusyTimes::new(vec![], 100, 300));
        assert_eq!(book.answer("c", 1100), (Presence::Free, 0));
        assert_eq!(book.answer("example.com/4", 100), (Presence::Unknown, 0));
    }

    #[test]
    fn a_window_across_a_change_has_no_answer_and_one_within_a_stretch_has() {
        let entry = Entry::new(BusyTimes::new(vec![(110, 120)], 100, 300), 30);
        assert_eq!(entry.answer_within(105, 106), Some((Presence::Free, 110)));
        assert_eq!(entry.answer_within(109, 110), None);
        assert_eq!(entry.answer_within(110, 111), Some((Presence::Busy, 120)));
        assert_eq!(entry.answer_within(119, 120), None);
        assert_eq!(entry.answer_within(130, 131), None); // stale from 131
        assert_eq!(entry.answer_within(131, 131), Some((Presence::Unknown, 0)));
    }
}
