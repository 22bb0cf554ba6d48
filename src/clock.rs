//! The wall clock, as the plugin reads it. `gi_presence` must flip at the exact second a
//! meeting starts or ends, and must cost next to nothing: the precise clock costs ~30 ns on a
//! VM, the kernel's coarse one (the time at the last timer tick) a few. So presence reads the
//! coarse clock, knows the true second lies in a short window after it, and reads the
//! precise clock only when the answer differs across that window (near a change).

use std::time::{SystemTime, UNIX_EPOCH};

/// How far the coarse clock may lag the true one: one tick (1 to 10 ms), with room for a
/// timekeeping CPU the hypervisor paused. Within it an answer is exact; only a lag beyond it
/// (an overloaded host stalling the kernel's tick by a tenth of a second) could make an
/// answer late by the excess.
const COARSE_LAG_NS: i64 = 100_000_000;

/// The current Unix time in seconds, from the precise clock.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The earliest and latest Unix second the current time may be in, read cheaply.
#[cfg(target_os = "linux")]
pub fn now_window() -> (i64, i64) {
    let coarse = rustix::time::clock_gettime(rustix::time::ClockId::RealtimeCoarse);
    let earliest = coarse.tv_sec;
    (
        earliest,
        earliest + (coarse.tv_nsec + COARSE_LAG_NS) / 1_000_000_000,
    )
}

/// The earliest and latest Unix second the current time may be in (here: exactly now).
#[cfg(not(target_os = "linux"))]
pub fn now_window() -> (i64, i64) {
    let now = unix_now();
    (now, now)
}

/// Unix seconds as RFC 3339 in UTC ("2026-12-05T09:30:00Z"), as the status and Google's
/// APIs write times; "" for a time out of range.
pub fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_holds_the_precise_second() {
        for _ in 0..100_000 {
            let (earliest, _) = now_window();
            let precise = unix_now();
            let (after, latest) = now_window();
            assert!(
                earliest <= precise && precise <= latest,
                "{earliest} {precise} {latest}"
            );
            assert!(latest - after <= 1);
        }
    }
}
