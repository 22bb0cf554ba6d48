//! One request budget per plugin: every call to Google (token, People, Calendar) takes a
//! token from one bucket that refills at `google_requests_per_minute`, so the node stays
//! under its Google project's quota however many accounts it serves. A request waits for
//! its turn (an account waiting is slow, not failing). When Google answers 429
//! `RESOURCE_EXHAUSTED`, the quota is the OAuth client's (its project's, for that API), so
//! every account of that client pauses its requests to that API for a while, not just the one
//! that met it. A paused quota is named by the caller (see `Session::quota` in `sync`).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// The longest a waiting request sleeps before it checks again whether the plugin closes.
const NAP: Duration = Duration::from_millis(100);

pub struct Budget {
    per_second: f64,
    /// How many requests may go out at once after a quiet spell: one second's worth.
    burst: f64,
    state: Mutex<State>,
}

struct State {
    tokens: f64,
    refilled: Instant,
    /// Quotas (an OAuth client's, for one API) paused after a 429, until when.
    paused: HashMap<String, Instant>,
}

/// Why a request did not get its turn.
#[derive(Debug, PartialEq, Eq)]
pub struct Closing;

impl Budget {
    pub fn new(requests_per_minute: u64) -> Budget {
        let per_second = requests_per_minute.max(1) as f64 / 60.0;
        let burst = per_second.max(1.0);
        Budget {
            per_second,
            burst,
            state: Mutex::new(State {
                tokens: burst,
                refilled: Instant::now(),
                paused: HashMap::new(),
            }),
        }
    }

    /// Waits until a request may go out, and takes its token. Fails only when `closing` says
    /// the plugin is closing.
    pub fn take(&self, closing: impl Fn() -> bool) -> Result<(), Closing> {
        wait(closing, |now| self.try_take(now))
    }

    /// Waits while `quota` is paused after a 429 (no token is taken: `take` does that for
    /// each request).
    pub fn wait_for_quota(&self, quota: &str, closing: impl Fn() -> bool) -> Result<(), Closing> {
        wait(closing, |now| match self.pause_left(quota, now) {
            Some(left) => Err(left),
            None => Ok(()),
        })
    }

    /// Takes a token at `now`, or says how long to wait for one.
    fn try_take(&self, now: Instant) -> Result<(), Duration> {
        let mut state = self.state.lock();
        let elapsed = now.saturating_duration_since(state.refilled).as_secs_f64();
        state.tokens = (state.tokens + elapsed * self.per_second).min(self.burst);
        state.refilled = state.refilled.max(now);
        if state.tokens >= 1.0 {
            state.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64(
                (1.0 - state.tokens) / self.per_second,
            ))
        }
    }

    /// How long `quota` stays paused from now, if it is.
    pub fn quota_pause_left(&self, quota: &str) -> Option<Duration> {
        self.pause_left(quota, Instant::now())
    }

    /// How long `quota` stays paused after `now`, if it is.
    fn pause_left(&self, quota: &str, now: Instant) -> Option<Duration> {
        let until = self.state.lock().paused.get(quota).copied()?;
        (until > now).then(|| until - now)
    }

    /// Pauses every request on `quota` for `pause` (Google said it is spent).
    pub fn pause_quota(&self, quota: &str, pause: Duration) {
        let until = Instant::now() + pause;
        let mut state = self.state.lock();
        let entry = state.paused.entry(quota.to_owned()).or_insert(until);
        *entry = (*entry).max(until);
    }
}

/// Retries `ready` until it passes, sleeping as long as it says (in naps, so that a closing
/// plugin is noticed).
fn wait(
    closing: impl Fn() -> bool,
    mut ready: impl FnMut(Instant) -> Result<(), Duration>,
) -> Result<(), Closing> {
    loop {
        if closing() {
            return Err(Closing);
        }
        match ready(Instant::now()) {
            Ok(()) => return Ok(()),
            Err(left) => std::thread::sleep(left.min(NAP)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_beyond_the_burst_wait_for_the_refill() {
        let budget = Budget::new(600); // 10 a second
        let started = Instant::now();
        for _ in 0..15 {
            budget.take(|| false).unwrap();
        }
        // 10 at once, then 5 more at 10 a second: at least 0.5 s (never less; more on a
        // busy machine).
        assert!(
            started.elapsed() >= Duration::from_millis(450),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn a_paused_client_waits_and_others_do_not() {
        let budget = Budget::new(6000);
        budget.pause_quota("a", Duration::from_secs(30));
        let now = Instant::now();
        let left = budget.pause_left("a", now).expect("paused");
        assert!(left > Duration::from_secs(29) && left <= Duration::from_secs(30));
        assert_eq!(budget.pause_left("b", now), None);
        assert_eq!(budget.pause_left("a", now + Duration::from_secs(31)), None);
        assert_eq!(budget.wait_for_quota("b", || false), Ok(()));
    }

    #[test]
    fn closing_ends_the_wait() {
        let budget = Budget::new(1);
        budget.take(|| false).unwrap();
        assert_eq!(budget.take(|| true), Err(Closing));
        budget.pause_quota("a", Duration::from_secs(30));
        assert_eq!(budget.wait_for_quota("a", || true), Err(Closing));
    }
}
