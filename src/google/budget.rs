//! One request budget per plugin: every call to Google (token, People, Calendar) takes a
//! token from one bucket that refills at `google_requests_per_minute`, so the node stays
//! under its Google project's quota however many accounts it serves. A request waits for
//! its turn (an account waiting is slow, not failing). When Google answers 429
//! `RESOURCE_EXHAUSTED`, the quota is the OAuth client's (its project's), so every account
//! of that client pauses for a while, not just the one that met it.

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
    /// OAuth clients paused after a 429, until when.
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

    /// Waits until a request of `client` (its OAuth client ID, when known) may go out, and
    /// takes its token. Fails only when `closing` says the plugin is closing.
    pub fn take(&self, client: Option<&str>, closing: impl Fn() -> bool) -> Result<(), Closing> {
        loop {
            if closing() {
                return Err(Closing);
            }
            match self.try_take(client, Instant::now()) {
                Ok(()) => return Ok(()),
                Err(wait) => std::thread::sleep(wait.min(NAP)),
            }
        }
    }

    /// Takes a token for a request of `client` at `now`, or says how long to wait first.
    fn try_take(&self, client: Option<&str>, now: Instant) -> Result<(), Duration> {
        let mut state = self.state.lock();
        if let Some(until) = client.and_then(|c| state.paused.get(c).copied()) {
            if until > now {
                return Err(until - now);
            }
        }
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

    /// Waits while `client` is paused (no token is taken: `take` does that per request).
    pub fn wait_for_client(&self, client: &str, closing: impl Fn() -> bool) -> Result<(), Closing> {
        loop {
            if closing() {
                return Err(Closing);
            }
            let until = self.state.lock().paused.get(client).copied();
            match until.map(|u| u.saturating_duration_since(Instant::now())) {
                Some(wait) if !wait.is_zero() => std::thread::sleep(wait.min(NAP)),
                _ => return Ok(()),
            }
        }
    }

    /// Pauses every request of `client` for `pause` (Google said its quota is spent).
    pub fn pause_client(&self, client: &str, pause: Duration) {
        let until = Instant::now() + pause;
        let mut state = self.state.lock();
        let entry = state.paused.entry(client.to_owned()).or_insert(until);
        *entry = (*entry).max(until);
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
            budget.take(None, || false).unwrap();
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
        budget.pause_client("a", Duration::from_secs(30));
        let now = Instant::now();
        let wait = budget.try_take(Some("a"), now).unwrap_err();
        assert!(wait > Duration::from_secs(29) && wait <= Duration::from_secs(30));
        assert_eq!(budget.try_take(Some("b"), now), Ok(()));
        assert_eq!(budget.try_take(None, now), Ok(()));
        assert_eq!(
            budget.try_take(Some("a"), now + Duration::from_secs(31)),
            Ok(())
        );
    }

    #[test]
    fn closing_ends_the_wait() {
        let budget = Budget::new(1);
        budget.take(None, || false).unwrap();
        assert_eq!(budget.take(None, || true), Err(Closing));
    }
}
