//! Threads kept, while a plugin is open, to build large indexes beside the thread that asks
//! (see `beside`). A thread started for each build cost the build its start and its end:
//! the calling thread waited 0.02-0.09 ms for the spawn to return and the new thread ran
//! 0.07-0.17 ms after it (a kept thread, woken: 0.01 and 0.04). 25,000 contacts, in one
//! process, the two alternating (three builds each way a round, 400 rounds, four runs): a
//! build on a kept thread took 0.966-0.987 of the time of one on a thread started for it
//! (medians; faster in all four runs).
//!
//! rayon's pool keeps the threads and runs a closure that borrows the caller's data on one
//! of them (its scope waits for the closure before the borrow ends), which std cannot do
//! without unsafe code. Its threads are started through this module, so that the last holder
//! of `HelperThreads` (the plugin, on `gi_close`) joins them: none is left running in the
//! PBX's process. A build that finds every helper busy, or none kept (nobody holds them),
//! starts a thread of its own, as before, rather than wait in line; on one core no build
//! goes beside.
//!
//! One helper a core but one (the calling thread's), none on one core (see
//! `core_to_spare`): a helper with no work waits for it spinning (rayon yields for a while
//! before it sleeps), and a helper more than the cores spare spins on the calling thread's
//! core. 25,000 contacts, 600 builds back to back on two cores (`perf sched`): with two
//! helpers, the helpers switched 32,161 times and the calling thread waited for its core
//! 1.3 ms on average at each of its 98 switches; with one, 43 and 0.05 ms at 16. In the
//! slowest tenth of the builds the helper that did the work started 0.53 ms after the build
//! began (median; 90th percentile 3.0 ms, at most 5.0), with one helper 0.045 (0.054; at
//! most 0.8 ms in 1,500 builds, 3.5 in another run of 3,000, a noisier spell). Criterion's
//! benchmark, back to back: the build's mean 1.75 of the build without its address book
//! with two helpers, 1.53 with one.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;

use parking_lot::Mutex;

/// The name of every thread that builds beside the calling one, kept or started for a
/// build.
pub(super) const HELPER_THREAD: &str = "gi-index-helper";

/// The most helper threads kept (fewer on fewer cores): a node runs only a few large builds
/// at once (4 sync workers, each syncing up to 3 sources; 4 builders at open), and past the
/// cores, more helpers would only take turns on them.
const MOST_HELPERS: usize = 8;

/// How many helper threads to keep on a machine of `cores`: one a core but the calling
/// thread's (see the module's doc), at most `MOST_HELPERS`; none on one core, where builds
/// do not go beside (see `core_to_spare`).
fn helpers_for(cores: usize) -> usize {
    cores.saturating_sub(1).min(MOST_HELPERS)
}

/// The cores this process may run on (its affinity and its cgroup's quota, as std reads
/// them), read once: std reads the cgroup's files each time.
fn cores() -> usize {
    static CORES: OnceLock<usize> = OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Whether a build may go beside at all: on one core the other thread only takes turns with
/// the calling one, and the build is slower than on one thread (25,000 contacts, the
/// process pinned to one core with `taskset`: medians of 5.4-6.1 ms beside, 5.1-5.2 on one
/// thread; 60 x 3 builds, six runs each way).
pub(super) fn core_to_spare() -> bool {
    cores() > 1
}

/// Kept helper threads, and how many of them a build has taken.
pub(super) struct HelperPool {
    /// None once dropping: taking it out ends the threads, which are then joined.
    pool: Option<rayon_core::ThreadPool>,
    threads: Vec<JoinHandle<()>>,
    /// How many of the threads have not yet returned from rayon's loop.
    running: Arc<AtomicUsize>,
    taken: AtomicUsize,
    size: usize,
}

impl HelperPool {
    /// Starts `size` helper threads.
    pub(super) fn start(size: usize) -> Result<HelperPool, String> {
        let mut threads = Vec::with_capacity(size);
        let running = Arc::new(AtomicUsize::new(0));
        let pool = rayon_core::ThreadPoolBuilder::new()
            .num_threads(size)
            .spawn_handler(|thread| {
                let running = running.clone();
                running.fetch_add(1, Ordering::Relaxed);
                threads.push(
                    std::thread::Builder::new()
                        .name(HELPER_THREAD.into())
                        .spawn(move || {
                            thread.run();
                            running.fetch_sub(1, Ordering::Release);
                        })?,
                );
                Ok(())
            })
            .build()
            .map_err(|e| e.to_string())?;
        Ok(HelperPool {
            pool: Some(pool),
            threads,
            running,
            taken: AtomicUsize::new(0),
            size,
        })
    }

    /// A helper for one build, unless every one is taken.
    pub(super) fn take(&self) -> Option<TakenHelper<'_>> {
        if self.taken.fetch_add(1, Ordering::Acquire) < self.size {
            Some(TakenHelper(self))
        } else {
            self.taken.fetch_sub(1, Ordering::Release);
            None
        }
    }
}

impl Drop for HelperPool {
    fn drop(&mut self) {
        // rayon ends its threads once its pool is dropped and they are idle; joined here so
        // that none outlives the plugin that held them.
        drop(self.pool.take());
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
        debug_assert_eq!(
            self.running.load(Ordering::Acquire),
            0,
            "every helper ended"
        );
    }
}

/// A helper thread taken for one build: given back when dropped.
pub(super) struct TakenHelper<'p>(&'p HelperPool);

impl TakenHelper<'_> {
    /// Runs `job` on the helper while `here` runs on this thread; returns what `here` gives,
    /// once `job` is done too. A panic in `job` is caught (and lost): `job` reports its own.
    pub(super) fn run<R>(self, job: impl FnOnce() + Send, here: impl FnOnce() -> R) -> R {
        let pool = self
            .0
            .pool
            .as_ref()
            .expect("a pool is dropped only by its last user");
        pool.in_place_scope(|scope| {
            scope.spawn(move |_| {
                let _ = catch_unwind(AssertUnwindSafe(job));
                drop(self);
            });
            here()
        })
    }
}

impl Drop for TakenHelper<'_> {
    fn drop(&mut self) {
        self.0.taken.fetch_sub(1, Ordering::Release);
    }
}

/// Who holds the helper threads, and the threads while anyone does.
struct Holders {
    count: usize,
    pool: Option<Arc<HelperPool>>,
}

static HOLDERS: Mutex<Holders> = Mutex::new(Holders {
    count: 0,
    pool: None,
});

/// Keeps helper threads for large builds while held; the last holder to drop it joins them.
/// An open plugin holds it. Builds while nobody does start a thread of their own.
pub struct HelperThreads(());

impl HelperThreads {
    /// Holds the helper threads, starting them (see `helpers_for`) if nobody holds them yet.
    pub fn hold() -> HelperThreads {
        let mut holders = HOLDERS.lock();
        holders.count += 1;
        let size = helpers_for(cores());
        if holders.pool.is_none() && size > 0 {
            match HelperPool::start(size) {
                Ok(pool) => holders.pool = Some(Arc::new(pool)),
                // Builds start their own threads, or build on one.
                Err(e) => log::warn!(
                    "no helper threads for building indexes ({e}); each large build starts a thread of its own"
                ),
            }
        }
        HelperThreads(())
    }
}

impl Drop for HelperThreads {
    fn drop(&mut self) {
        let last = {
            let mut holders = HOLDERS.lock();
            holders.count -= 1;
            if holders.count == 0 {
                holders.pool.take()
            } else {
                None
            }
        };
        // Joined outside the lock (a build in flight keeps the pool until it is done, and
        // joins the threads then).
        drop(last);
    }
}

/// The kept helper threads, if anyone holds them.
pub(super) fn kept() -> Option<Arc<HelperPool>> {
    HOLDERS.lock().pool.clone()
}

/// Held by every test that holds `HelperThreads`: the holders are the process's, and a test
/// that counts them must not see another test's.
#[cfg(test)]
pub(super) static HOLDING_IN_TESTS: Mutex<()> = Mutex::new(());

#[cfg(test)]
impl HelperPool {
    /// The threads that run its helpers.
    pub(super) fn thread_ids(&self) -> Vec<std::thread::ThreadId> {
        let pool = self.pool.as_ref().expect("running");
        pool.broadcast(|_| std::thread::current().id())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kernel's threads that run `pool`'s helpers, by their /proc paths.
    fn helper_tasks(pool: &HelperPool) -> Vec<std::path::PathBuf> {
        let pool = pool.pool.as_ref().expect("running");
        pool.broadcast(|_| this_task())
    }

    /// This thread's directory in /proc.
    fn this_task() -> std::path::PathBuf {
        // The link is relative ("<pid>/task/<tid>").
        let task = std::fs::read_link("/proc/thread-self").expect("/proc");
        std::path::Path::new("/proc").join(task)
    }

    #[test]
    fn a_build_takes_a_free_helper_or_none() {
        let pool = HelperPool::start(2).expect("helper threads");
        let first = pool.take().expect("two free");
        let second = pool.take().expect("one free");
        assert!(pool.take().is_none(), "both taken");
        drop(first);
        let third = pool.take().expect("one given back");
        drop((second, third));
    }

    #[test]
    fn helper_threads_run_on_their_own_threads_and_are_joined_when_dropped() {
        let pool = HelperPool::start(3).expect("helper threads");
        let tasks = helper_tasks(&pool);
        assert_eq!(tasks.len(), 3);
        let here = this_task();
        let ran_on = parking_lot::Mutex::new(None);
        let answer = pool.take().expect("free").run(
            || {
                *ran_on.lock() = Some(std::thread::current().name().map(str::to_owned));
            },
            || 42,
        );
        assert_eq!(answer, 42);
        assert_eq!(*ran_on.lock(), Some(Some(HELPER_THREAD.to_owned())));
        assert!(!tasks.contains(&here));
        let running = pool.running.clone();
        assert_eq!(running.load(Ordering::Acquire), 3);
        drop(pool);
        assert_eq!(running.load(Ordering::Acquire), 0, "every helper ended");
    }

    #[test]
    fn one_helper_is_kept_a_core_but_the_calling_threads() {
        // Two cores: one helper, not two (a second spun on the calling thread's core).
        assert_eq!(helpers_for(2), 1);
        assert_eq!(helpers_for(1), 0, "one core: builds do not go beside");
        assert_eq!(helpers_for(4), 3);
        assert_eq!(helpers_for(64), MOST_HELPERS);
        let _alone = HOLDING_IN_TESTS.lock();
        let held = HelperThreads::hold();
        let kept_threads = kept().map_or(0, |pool| pool.running.load(Ordering::Acquire));
        assert_eq!(kept_threads, helpers_for(cores()));
        assert_eq!(core_to_spare(), kept_threads > 0);
        drop(held);
    }

    #[test]
    fn the_last_holder_joins_the_kept_threads() {
        let _alone = HOLDING_IN_TESTS.lock();
        if !core_to_spare() {
            // Nothing is kept on one core (see the test above), so nothing to join.
            let held = HelperThreads::hold();
            assert!(kept().is_none());
            drop(held);
            return;
        }
        let first = HelperThreads::hold();
        let second = HelperThreads::hold();
        let pool = kept().expect("kept while held");
        let running = pool.running.clone();
        drop(pool);
        drop(first);
        assert!(kept().is_some(), "still held");
        assert!(running.load(Ordering::Acquire) > 0);
        drop(second);
        assert!(kept().is_none());
        assert_eq!(running.load(Ordering::Acquire), 0, "every helper ended");
        // Held again, they start again.
        let again = HelperThreads::hold();
        assert!(kept().is_some());
        drop(again);
    }
}
