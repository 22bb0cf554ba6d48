//! A large account's index built on two threads. The caller-ID part is one pass that one
//! thread makes; the address book is folded a block of contacts at a time, by either
//! thread, and laid out on the calling thread once every block is folded. How much of the
//! fold each thread takes is decided as they go, from how fast each turns out to be: on a
//! shared machine the second core is often slower or busy for a while, and the share fixed
//! in advance before (a third) made the build wait for it whenever it was. 25,000 contacts,
//! the two schemes alternating in one process on a loaded VM, 3 x 200 pairs: this one took
//! 0.95-0.96 of the fixed share's time at the median, 0.81-0.89 at the first quartile.
//!
//! The calling thread takes blocks from the front, the other from the back. The other
//! thread stops folding, and builds the caller-ID part, once what is left would keep the
//! calling thread (folding it, then laying the book out) about as long as the caller-ID
//! part keeps the other; and it helps again from the back if it then finishes first. When
//! the calling thread has laid the book out and the other has still not begun the
//! caller-ID part (it was never given a core), the calling thread builds it itself.

use std::ops::Range;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::Instant;

use super::helpers::{self, HelperPool, TakenHelper, HELPER_THREAD};
use super::names::{FoldedBook, Layout};

/// Contacts folded (those of a block, in order) and their rows' numbers: what `fold_book`
/// in `numbers` gives.
pub(super) type Fold = (FoldedBook, Vec<u64>);

/// How the two threads share a build: block sizes, and what the layout and the caller-ID
/// part cost against folding, which decides when the other thread turns to the caller-ID
/// part. Mistaken costs make one thread wait for the other, never a different index.
#[derive(Clone, Copy, Debug)]
pub(super) struct Schedule {
    /// Contacts the calling thread takes at a time: small, so that it stops within a
    /// moment of the other thread's last claim, and large enough that claiming is free.
    pub front_block: usize,
    /// The fewest contacts the other thread takes at a time; it takes an eighth of what is
    /// left when that is more, so that it folds a few blocks, each appended on its own.
    pub least_back_block: usize,
    /// The layout's time, as a share of the time folding the whole book takes.
    pub layout_share: f64,
    /// The caller-ID part's time, as a share of the time folding the whole book takes.
    pub caller_id_share: f64,
}

/// The schedule every build uses. Its costs were measured on 25,000 contacts, a fifth with
/// two numbers (the benchmark's address book), on one thread: fold 2.2 ms, layout 0.82,
/// caller-ID part with the book's rows 1.9. On two threads the other folds more slowly than
/// alone and the caller-ID part is 0.65-0.8 of its own fold's pace, not 0.86; those shares,
/// with its last block sized to even the threads out, took 0.99-1.00 of the time in one
/// process (see the README), so these stay.
pub(super) const SCHEDULE: Schedule = Schedule {
    front_block: 512,
    least_back_block: 512,
    layout_share: 0.37,
    caller_id_share: 0.86,
};

/// The contacts no thread has taken to fold yet: `front..back`, in one integer so that a
/// claim is one compare-and-swap.
struct Unclaimed(AtomicU64);

impl Unclaimed {
    fn new(count: usize) -> Unclaimed {
        Unclaimed(AtomicU64::new(count as u64))
    }

    fn range(&self) -> Range<usize> {
        let packed = self.0.load(Ordering::Relaxed);
        (packed >> 32) as usize..(packed as u32) as usize
    }

    /// Takes up to `size` contacts from the front (`front`) or the back; None when none is
    /// left.
    fn claim(&self, size: usize, front: bool) -> Option<Range<usize>> {
        let mut packed = self.0.load(Ordering::Relaxed);
        loop {
            let (from, to) = ((packed >> 32) as usize, (packed as u32) as usize);
            if from == to {
                return None;
            }
            let (taken, left) = if front {
                let end = (from + size).min(to);
                (from..end, end..to)
            } else {
                let start = to.saturating_sub(size).max(from);
                (start..to, from..start)
            };
            let next = ((left.start as u64) << 32) | left.end as u64;
            match self
                .0
                .compare_exchange_weak(packed, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return Some(taken),
                Err(now) => packed = now,
            }
        }
    }
}

/// The positions of the contacts one fold takes, in order: a block, and for the calling
/// thread every block it can then claim from the front, until no contact is left.
pub(super) struct Claimed<'u> {
    block: Range<usize>,
    more: Option<(&'u Unclaimed, usize, &'u FrontPace)>,
}

impl Claimed<'_> {
    /// Just these positions.
    pub fn block(block: Range<usize>) -> Claimed<'static> {
        Claimed { block, more: None }
    }

    /// The positions, when they are one block and no more will be claimed; None for the
    /// calling thread's fold, which claims as it goes.
    pub fn only(&self) -> Option<Range<usize>> {
        self.more.is_none().then(|| self.block.clone())
    }
}

impl Iterator for Claimed<'_> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        if let Some(position) = self.block.next() {
            return Some(position);
        }
        let (unclaimed, size, pace) = self.more?;
        self.block = unclaimed.claim(size, true)?;
        pace.claimed(&self.block);
        self.block.next()
    }
}

/// How fast the calling thread folds, for the other thread to read: times in nanoseconds
/// after the build began (0: not yet).
struct FrontPace {
    began: Instant,
    /// When it began folding.
    folding_since: AtomicU64,
    /// When it last claimed a block, and where that block starts: how far it had folded
    /// then (but for the few contacts it reads ahead).
    claimed_at: AtomicU64,
    claimed_from: AtomicU64,
}

impl FrontPace {
    fn new() -> FrontPace {
        FrontPace {
            began: Instant::now(),
            folding_since: AtomicU64::new(0),
            claimed_at: AtomicU64::new(0),
            claimed_from: AtomicU64::new(0),
        }
    }

    fn now(&self) -> u64 {
        self.began.elapsed().as_nanos().max(1) as u64
    }

    fn start(&self) {
        self.folding_since.store(self.now(), Ordering::Relaxed);
    }

    fn claimed(&self, block: &Range<usize>) {
        self.claimed_from
            .store(block.start as u64, Ordering::Relaxed);
        self.claimed_at.store(self.now(), Ordering::Relaxed);
    }

    /// Seconds a contact, as of its last claim; or as of now, counting the block it is on
    /// as done, when that says slower (it was stopped, or slowed, since).
    fn per_contact(&self, block: usize) -> Option<f64> {
        let since = self.folding_since.load(Ordering::Relaxed);
        let at = self.claimed_at.load(Ordering::Relaxed);
        let from = self.claimed_from.load(Ordering::Relaxed) as f64;
        if since == 0 || at <= since || from == 0.0 {
            return None;
        }
        let as_of_claim = (at - since) as f64 / from;
        let as_of_now = (self.now() - since) as f64 / (from + block as f64);
        Some(as_of_claim.max(as_of_now) * 1e-9)
    }
}

impl Schedule {
    /// Whether the other thread should build the caller-ID part now rather than fold more:
    /// once the `left` contacts, folded and then laid out with the rest of the `count`,
    /// would keep the calling thread (at `front` seconds a contact) no longer than the
    /// caller-ID part keeps the other one (at `back`). A pace not known yet is taken to be
    /// the other's; neither known, the two alike.
    fn time_for_caller_id(
        self,
        left: usize,
        count: usize,
        front: Option<f64>,
        back: Option<f64>,
    ) -> bool {
        let (front, back) = match (front, back) {
            (Some(f), Some(b)) => (f, b),
            (Some(pace), None) | (None, Some(pace)) => (pace, pace),
            (None, None) => (1.0, 1.0),
        };
        let calling = (left as f64 + self.layout_share * count as f64) * front;
        let other = self.caller_id_share * count as f64 * back;
        calling <= other
    }

    fn back_block(self, left: usize) -> usize {
        (left / 8).max(self.least_back_block)
    }
}

/// Builds a large book's parts on two threads (see the module's doc): `fold` folds the
/// contacts at the positions it is given (of `count`), `buffers` makes what the caller-ID
/// part is built in and `caller_id` builds it. The other thread is a kept helper when one
/// is free (see `helpers`). None on one core (see `helpers::core_to_spare`), or when no
/// thread can be had.
///
/// The buffers are made on this thread, whose allocator is warm: on a new thread fresh
/// memory costs page faults, and made on a kept helper the build took 1.05 times as long
/// under glibc's default thresholds (alternating with this, in one process).
pub(super) fn build_beside<B: Send, P: Send>(
    count: usize,
    fold: impl Fn(Claimed<'_>) -> Fold + Sync,
    buffers: impl Fn() -> B,
    caller_id: impl Fn(B) -> P + Sync,
) -> Option<(Layout, P)> {
    if !helpers::core_to_spare() {
        return None;
    }
    let kept = helpers::kept();
    let helper = kept.as_deref().and_then(HelperPool::take);
    build_beside_as(count, SCHEDULE, helper, fold, buffers, caller_id, || ())
}

/// `build_beside` on a given schedule, with `helper` as the other thread (None: a thread
/// started for it); the other thread calls `beside_starts` first (the tests hold it there,
/// as a machine with no core to spare would).
fn build_beside_as<B: Send, P: Send>(
    count: usize,
    schedule: Schedule,
    helper: Option<TakenHelper<'_>>,
    fold: impl Fn(Claimed<'_>) -> Fold + Sync,
    buffers: impl Fn() -> B,
    caller_id: impl Fn(B) -> P + Sync,
    beside_starts: impl Fn() + Sync,
) -> Option<(Layout, P)> {
    let unclaimed = Unclaimed::new(count);
    let caller_id_taken = AtomicBool::new(false);
    let take_caller_id = || !caller_id_taken.swap(true, Ordering::Relaxed);
    let front_pace = FrontPace::new();
    let (unclaimed, take_caller_id, front_pace) = (&unclaimed, &take_caller_id, &front_pace);
    let (fold, caller_id, beside_starts) = (&fold, &caller_id, &beside_starts);
    // Each dropped when its thread panics, so that the other stops waiting for it: the
    // other thread's ends are moved into its job, this one's into its part.
    let (send_block, blocks) = mpsc::channel::<(Range<usize>, Fold)>();
    let (send_buffers, buffers_sent) = mpsc::sync_channel(1);
    // What the other thread ends with: its caller-ID part (None if this thread took it),
    // or its panic.
    let (send_end, end_sent) = mpsc::sync_channel::<std::thread::Result<Option<P>>>(1);
    let beside = move || {
        // Moved in, as this thread's ends are into `here`.
        let (send_block, buffers_sent) = (send_block, buffers_sent);
        let built = catch_unwind(AssertUnwindSafe(|| {
            beside_starts();
            // Contacts this thread has folded, and the seconds it took.
            let mut pace = (0usize, 0f64);
            let fold_back = |block: Range<usize>, pace: &mut (usize, f64)| {
                let started = Instant::now();
                let book = fold(Claimed::block(block.clone()));
                pace.0 += block.len();
                pace.1 += started.elapsed().as_secs_f64();
                // The receiver is gone only if the calling thread panicked.
                send_block.send((block, book)).is_ok()
            };
            loop {
                let left = unclaimed.range();
                let back = (pace.0 > 0).then(|| pace.1 / pace.0 as f64);
                let front = front_pace.per_contact(schedule.front_block);
                if schedule.time_for_caller_id(left.len(), count, front, back) {
                    break;
                }
                let Some(block) = unclaimed.claim(schedule.back_block(left.len()), false) else {
                    break;
                };
                if !fold_back(block, &mut pace) {
                    return None;
                }
            }
            // None if the calling thread took it, or panicked before handing the buffers
            // over.
            let part = if take_caller_id() {
                buffers_sent.recv().ok().map(caller_id)
            } else {
                None
            };
            while let Some(block) = unclaimed.claim(schedule.least_back_block, false) {
                if !fold_back(block, &mut pace) {
                    break;
                }
            }
            part
        }));
        // Its blocks' sender goes first: the calling thread, waiting for a block from a
        // thread that panicked, then asks for its end.
        drop(send_block);
        // The receiver is gone only if the calling thread panicked.
        let _ = send_end.send(built);
    };
    let here = move || {
        // Moved in, not borrowed: should this thread panic, they are dropped before anything
        // waits for the other thread.
        let (send_buffers, blocks, end_sent) = (send_buffers, blocks, end_sent);
        // The other thread's end: its part, or its panic raised here.
        let end_of_beside = || match end_sent.recv() {
            Ok(Ok(part)) => part,
            Ok(Err(panic)) => std::panic::resume_unwind(panic),
            Err(_) => unreachable!("the other thread sends how it ended"),
        };
        // Made while the other thread starts: made before it was started, they kept it from
        // starting for as long as they took. The receiver is gone only if the other thread
        // panicked, which its end reports.
        let _ = send_buffers.send(buffers());
        front_pace.start();
        let (mut book, mut e164s) = fold(Claimed {
            block: 0..0,
            more: Some((unclaimed, schedule.front_block, front_pace)),
        });
        // Nothing is left to claim: the other thread's blocks are what this fold ended at
        // to the end, each on its way or being folded.
        let mut from_beside = Vec::new();
        let mut waiting_for = count - unclaimed.range().start;
        while waiting_for > 0 {
            match blocks.recv() {
                Ok((block, folded)) => {
                    waiting_for -= block.len();
                    from_beside.push((block.start, folded));
                }
                // The other thread panicked folding.
                Err(_) => {
                    end_of_beside();
                    unreachable!("the other thread sends what it claims or panics")
                }
            }
        }
        from_beside.sort_unstable_by_key(|&(start, _)| start);
        for (_, (later, later_e164s)) in from_beside {
            book.append(later, e164s.len() as u32);
            e164s.extend(later_e164s);
        }
        let layout = book.lay_out(&e164s);
        let here = take_caller_id().then(|| caller_id(buffers()));
        let beside = end_of_beside();
        let part = here
            .or(beside)
            .expect("one thread or the other built the part");
        (layout, part)
    };
    match helper {
        Some(helper) => Some(helper.run(beside, here)),
        None => std::thread::scope(|scope| {
            std::thread::Builder::new()
                .name(HELPER_THREAD.into())
                .spawn_scoped(scope, beside)
                .ok()?;
            Some(here())
        }),
    }
}

#[cfg(test)]
mod tests {
    use std::any::Any;
    use std::panic::{catch_unwind, AssertUnwindSafe};
    use std::sync::atomic::AtomicUsize;
    use std::thread::{self, ThreadId};
    use std::time::Duration;

    use super::*;
    use crate::book::names::{Entry, NameIndex, Row};

    /// Whether this is the build's other thread.
    fn beside() -> bool {
        thread::current().name() == Some(HELPER_THREAD)
    }

    /// Runs `test` with the other thread started for the build, then with one kept (see
    /// `helpers`), with the threads the other may be (none: any but the calling one).
    fn on_either_thread(test: impl Fn(Option<TakenHelper<'_>>, &[ThreadId])) {
        test(None, &[]);
        let kept = HelperPool::start(2).expect("helper threads");
        test(
            Some(kept.take().expect("a free helper")),
            &kept.thread_ids(),
        );
    }

    /// A book of `count` contacts, one number each, whose names share words and starts
    /// across any split.
    fn names(count: usize) -> Vec<String> {
        (0..count)
            .map(|i| {
                format!(
                    "{} {} {}",
                    ["Anna", "Jürgen", "Zoë", "Straße"][i % 4],
                    ["Müller", "Ngu", "Extraordinarilylongfamilyname"][i % 3],
                    i % 37
                )
            })
            .collect()
    }

    fn e164(position: usize) -> u64 {
        12_125_550_000 + (position as u64 * 7919) % 10_000
    }

    /// Folds the contacts at `positions`, as `fold_book` does.
    fn fold(names: &[String], positions: impl Iterator<Item = usize>, room: usize) -> Fold {
        let positions: Vec<usize> = positions.collect();
        let entries = positions.iter().enumerate().map(|(row, &i)| Entry {
            name: &names[i],
            company: "",
            groups: &[],
            rows: row as u32..row as u32 + 1,
        });
        let book = FoldedBook::new(entries, room);
        (book, positions.iter().map(|&i| e164(i)).collect())
    }

    fn rows(count: usize) -> Vec<Row> {
        (0..count)
            .map(|i| Row {
                e164: e164(i),
                ..Row::default()
            })
            .collect()
    }

    /// The book as one pass on one thread makes it.
    fn one_pass(names: &[String]) -> (NameIndex, Vec<u32>) {
        let (book, e164s) = fold(names, 0..names.len(), names.len());
        book.lay_out(&e164s).index(rows(names.len()))
    }

    /// The other thread folds for as long as anything is left.
    const FOLD_ALL_BESIDE: Schedule = Schedule {
        front_block: 5,
        least_back_block: 3,
        layout_share: 0.0,
        caller_id_share: 0.0,
    };

    /// The other thread turns to the caller-ID part at once.
    const NOTHING_BESIDE: Schedule = Schedule {
        layout_share: 0.0,
        caller_id_share: 1e9,
        ..FOLD_ALL_BESIDE
    };

    /// Waits (at most 10 s, for a machine too busy to run the other thread) until `done`.
    fn wait_for(done: impl Fn() -> bool) {
        let waiting = Instant::now();
        while !done() && waiting.elapsed() < Duration::from_secs(10) {
            thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn claims_from_both_ends_take_every_contact_once() {
        let unclaimed = Unclaimed::new(10);
        assert_eq!(unclaimed.claim(3, true), Some(0..3));
        assert_eq!(unclaimed.claim(4, false), Some(6..10));
        assert_eq!(unclaimed.range(), 3..6);
        assert_eq!(unclaimed.claim(5, false), Some(3..6));
        assert_eq!(unclaimed.claim(1, true), None);
        assert_eq!(unclaimed.claim(1, false), None);
        let unclaimed = Unclaimed::new(4);
        assert_eq!(unclaimed.claim(9, true), Some(0..4));
        assert_eq!(unclaimed.claim(1, false), None);
    }

    #[test]
    fn the_other_thread_folds_while_the_calling_one_would_finish_later_than_it() {
        let s = SCHEDULE;
        // 25,000 contacts, both alike: fold while more than half is left.
        assert!(!s.time_for_caller_id(20_000, 25_000, None, None));
        assert!(s.time_for_caller_id(12_000, 25_000, None, None));
        assert!(!s.time_for_caller_id(13_000, 25_000, Some(1e-7), Some(1e-7)));
        // The other thread twice as slow: its caller-ID part takes twice as long, so it
        // leaves more of the fold to the calling thread.
        assert!(s.time_for_caller_id(20_000, 25_000, Some(1e-7), Some(2e-7)));
        // The calling thread twice as slow: fold on.
        assert!(!s.time_for_caller_id(6_000, 25_000, Some(2e-7), Some(1e-7)));
        // Nothing left: the caller-ID part, whatever the paces.
        assert!(FOLD_ALL_BESIDE.time_for_caller_id(0, 25_000, Some(1.0), Some(1e-9)));
        assert!(!FOLD_ALL_BESIDE.time_for_caller_id(1, 25_000, None, None));
    }

    /// Blocks folded by both threads, from both ends, and appended in order: the address
    /// book is the very one a single pass makes, and the caller-ID part is built once.
    #[test]
    fn a_book_folded_in_blocks_on_two_threads_is_the_book_folded_in_one_pass() {
        on_either_thread(a_book_folded_in_blocks_on_two_threads_is_the_book_folded_in_one_pass_on);
    }

    fn a_book_folded_in_blocks_on_two_threads_is_the_book_folded_in_one_pass_on(
        helper: Option<TakenHelper<'_>>,
        helper_threads: &[ThreadId],
    ) {
        let names = names(400);
        let expected = one_pass(&names);
        let calling = thread::current().id();
        let folded_on = parking_lot::Mutex::new(Vec::new());
        let folded_beside = AtomicUsize::new(0);
        let parts_built = AtomicUsize::new(0);
        let (layout, part) = build_beside_as(
            names.len(),
            FOLD_ALL_BESIDE,
            helper,
            |claimed| {
                let room = claimed.only().map_or(names.len(), |b| b.len());
                if beside() {
                    folded_on.lock().push(thread::current().id());
                    let folded = fold(&names, claimed, room);
                    folded_beside.fetch_add(1, Ordering::Relaxed);
                    return folded;
                }
                // This thread waits for the other one to fold a few blocks first.
                let positions = claimed.inspect(|_| {
                    if folded_beside.load(Ordering::Relaxed) < 3 {
                        wait_for(|| folded_beside.load(Ordering::Relaxed) >= 3);
                    }
                });
                fold(&names, positions, room)
            },
            || 7,
            |buffers: i32| {
                parts_built.fetch_add(1, Ordering::Relaxed);
                buffers * 6
            },
            || (),
        )
        .expect("a thread");
        assert_eq!(part, 42);
        assert_eq!(parts_built.load(Ordering::Relaxed), 1);
        assert!(
            folded_beside.load(Ordering::Relaxed) >= 3,
            "the other thread folded blocks"
        );
        // On the helper given, when one is.
        assert!(folded_on.lock().iter().all(|&thread| thread != calling
            && (helper_threads.is_empty() || helper_threads.contains(&thread))));
        let built = layout.index(rows(names.len()));
        assert!(built == expected, "the address books differ");
    }

    /// While the helper threads are held (an open plugin holds them), a large build's other
    /// thread is one of them.
    #[test]
    fn a_build_runs_beside_a_kept_helper_while_they_are_held() {
        if !helpers::core_to_spare() {
            // Nothing is kept on one core (see the test below).
            return;
        }
        let _alone = helpers::HOLDING_IN_TESTS.lock();
        let _held = helpers::HelperThreads::hold();
        let kept = helpers::kept().expect("kept while held");
        let helper_threads = kept.thread_ids();
        let names = names(400);
        let calling = thread::current().id();
        let other = parking_lot::Mutex::new(None);
        let (layout, part) = build_beside(
            names.len(),
            |claimed| {
                let here = thread::current().id();
                if here == calling {
                    // So that the other thread has done something first.
                    wait_for(|| other.lock().is_some());
                } else {
                    *other.lock() = Some(here);
                }
                let room = claimed.only().map_or(names.len(), |b| b.len());
                fold(&names, claimed, room)
            },
            || 7,
            |buffers: i32| {
                let here = thread::current().id();
                if here != calling {
                    *other.lock() = Some(here);
                }
                buffers * 6
            },
        )
        .expect("a thread");
        assert_eq!(part, 42);
        let other = other.lock().expect("the other thread did its share");
        assert!(
            helper_threads.contains(&other),
            "{other:?} is a kept helper"
        );
        assert!(layout.index(rows(names.len())) == one_pass(&names));
    }

    /// On a machine (or in a cgroup) of one core no helper is kept and a build stays on the
    /// calling thread: the other would only take turns with it. Run again pinned to one core
    /// when the machine has more, as a PBX on one core runs (with `taskset`: Linux).
    #[cfg(target_os = "linux")]
    #[test]
    fn on_one_core_nothing_is_kept_and_a_build_stays_on_the_calling_thread() {
        const THIS_TEST: &str =
            "book::beside::tests::on_one_core_nothing_is_kept_and_a_build_stays_on_the_calling_thread";
        if helpers::core_to_spare() {
            // The first core this process may run on (not always core 0 in a container).
            let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
            let first_core: String = status
                .lines()
                .find_map(|line| line.strip_prefix("Cpus_allowed_list:"))
                .expect("the cores this process may run on")
                .trim()
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            let run = std::process::Command::new("taskset")
                .args(["--cpu-list", &first_core])
                .arg(std::env::current_exe().expect("this test's binary"))
                .args(["--exact", THIS_TEST, "--test-threads", "1"])
                .output()
                .expect("taskset runs this test on one core (Debian: apt-get install util-linux)");
            let said = String::from_utf8_lossy(&run.stdout);
            assert!(
                run.status.success() && said.contains("1 passed"),
                "on one core: {said}{}",
                String::from_utf8_lossy(&run.stderr)
            );
            return;
        }
        let _alone = helpers::HOLDING_IN_TESTS.lock();
        let _held = helpers::HelperThreads::hold();
        assert!(helpers::kept().is_none(), "no helper kept on one core");
        let names = names(400);
        let built = build_beside(
            names.len(),
            |claimed| {
                let room = claimed.only().map_or(names.len(), |b| b.len());
                fold(&names, claimed, room)
            },
            || 7,
            |buffers: i32| buffers * 6,
        );
        assert!(built.is_none(), "the build stays on the calling thread");
    }

    /// When the other thread gets no core, the calling thread folds every contact and
    /// builds the caller-ID part itself instead of waiting for it.
    #[test]
    fn the_calling_thread_builds_the_caller_id_part_when_the_other_has_not_begun_it() {
        on_either_thread(
            the_calling_thread_builds_the_caller_id_part_when_the_other_has_not_begun_it_on,
        );
    }

    fn the_calling_thread_builds_the_caller_id_part_when_the_other_has_not_begun_it_on(
        helper: Option<TakenHelper<'_>>,
        _: &[ThreadId],
    ) {
        let names = names(300);
        let released = AtomicBool::new(false);
        let (layout, part) = build_beside_as(
            names.len(),
            NOTHING_BESIDE,
            helper,
            |claimed| {
                assert!(!beside(), "the held thread folds nothing");
                let room = claimed.only().map_or(names.len(), |b| b.len());
                fold(&names, claimed, room)
            },
            || 7,
            |buffers: i32| {
                // Built here: the other thread is still held. Released now, it finds
                // nothing left to do.
                assert!(!beside());
                released.store(true, Ordering::Relaxed);
                buffers * 6
            },
            || wait_for(|| released.load(Ordering::Relaxed)),
        )
        .expect("a thread");
        assert_eq!(part, 42);
        assert!(layout.index(rows(names.len())) == one_pass(&names));
    }

    /// A panic on either thread of a large build reaches the caller (as a panic in a sync,
    /// which the worker reports), and neither thread is left running or waiting.
    #[test]
    fn a_panic_on_either_thread_of_a_build_reaches_the_caller_and_nothing_waits() {
        let kept = HelperPool::start(2).expect("helper threads");
        for kept in [None, Some(&kept)] {
            a_panic_on_either_thread_of_a_build_reaches_the_caller_and_nothing_waits_on(kept);
        }
        // The helpers are free again: every build gave its helper back.
        assert!(kept.take().is_some() && kept.take().is_some());
    }

    fn a_panic_on_either_thread_of_a_build_reaches_the_caller_and_nothing_waits_on(
        kept: Option<&HelperPool>,
    ) {
        let names = names(200);
        let message = |panic: Box<dyn Any + Send>| {
            panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
        };
        // `fold_panics` says which thread's fold panics (`Some(true)`: the other one's).
        let build = |schedule: Schedule,
                     fold_panics: Option<bool>,
                     buffers_panic: bool,
                     part_panics: bool| {
            let folding_beside = AtomicBool::new(false);
            let build = || {
                build_beside_as(
                    names.len(),
                    schedule,
                    kept.map(|kept| kept.take().expect("a free helper")),
                    |claimed| {
                        let room = claimed.only().map_or(names.len(), |b| b.len());
                        if beside() {
                            folding_beside.store(true, Ordering::Relaxed);
                        } else if fold_panics == Some(true) {
                            // So that the other thread has a block to fold.
                            wait_for(|| folding_beside.load(Ordering::Relaxed));
                        }
                        if fold_panics == Some(beside()) {
                            panic!("fold");
                        }
                        fold(&names, claimed, room)
                    },
                    || {
                        if buffers_panic {
                            panic!("buffers");
                        }
                        7
                    },
                    |buffers: i32| {
                        if part_panics {
                            panic!("caller-ID part");
                        }
                        buffers * 6
                    },
                    || (),
                )
            };
            catch_unwind(AssertUnwindSafe(build))
                .map(|built| built.map(|(_, part)| part))
                .map_err(message)
        };
        let panicked = |what: &str| Err(Some(what.to_string()));
        assert_eq!(
            build(FOLD_ALL_BESIDE, Some(true), false, false),
            panicked("fold")
        );
        assert_eq!(
            build(FOLD_ALL_BESIDE, Some(false), false, false),
            panicked("fold")
        );
        assert_eq!(
            build(NOTHING_BESIDE, None, true, false),
            panicked("buffers")
        );
        assert_eq!(
            build(NOTHING_BESIDE, None, false, true),
            panicked("caller-ID part")
        );
        assert_eq!(
            build(FOLD_ALL_BESIDE, None, false, true),
            panicked("caller-ID part")
        );
        assert_eq!(build(FOLD_ALL_BESIDE, None, false, false), Ok(Some(42)));
    }
}
