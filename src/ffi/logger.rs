//! Routes the `log` crate to the host's callback (`gi_set_logger`). The plugin's own records
//! go through at every level; those of the libraries beneath it only from warn up, so their
//! debug output (which could show HTTP details) never reaches the PBX log.

use std::cell::Cell;
use std::ffi::CString;
use std::os::raw::{c_char, c_int, c_void};
use std::sync::Once;

use parking_lot::{Mutex, RwLock};

pub type LogCallback =
    unsafe extern "C" fn(level: c_int, message: *const c_char, user: *mut c_void);

type Registered = Option<(LogCallback, usize)>;

/// The callback and the host's user pointer (kept as an address: the plugin never reads it,
/// only hands it back). Held for reading while the callback runs, so that `set` returns only
/// once no call of the previous callback is under way: after gi_set_logger returns, the
/// previous callback is never called again.
static CALLBACK: RwLock<Registered> = RwLock::new(None);
/// A callback set from inside a callback (that thread holds the read lock, so it cannot wait
/// for the write lock): calls that start from then on use it; it moves into CALLBACK as soon
/// as no callback runs.
static REPLACEMENT: Mutex<Option<Registered>> = Mutex::new(None);

thread_local! {
    static IN_CALLBACK: Cell<bool> = const { Cell::new(false) };
}
static INSTALL: Once = Once::new();

struct HostLogger;

static HOST_LOGGER: HostLogger = HostLogger;

const OWN_TARGET: &str = "google_integration";

impl log::Log for HostLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.target().starts_with(OWN_TARGET) || metadata.level() <= log::Level::Warn
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let text = record.args().to_string().replace('\0', " ");
        let Ok(message) = CString::new(text) else {
            return;
        };
        {
            // Recursive: the host may log through the plugin from inside its callback.
            let registered = CALLBACK.read_recursive();
            let current = REPLACEMENT.lock().unwrap_or(*registered);
            if let Some((callback, user)) = current {
                let outer = IN_CALLBACK.with(|c| c.replace(true));
                // SAFETY: the host registered this callback for exactly this call shape.
                unsafe {
                    callback(
                        record.level() as c_int,
                        message.as_ptr(),
                        user as *mut c_void,
                    )
                };
                IN_CALLBACK.with(|c| c.set(outer));
            }
        }
        settle_replacement();
    }

    fn flush(&self) {}
}

/// Moves a callback set from inside a callback into place, once no callback runs.
fn settle_replacement() {
    if REPLACEMENT.lock().is_none() || IN_CALLBACK.with(Cell::get) {
        return;
    }
    if let Some(mut registered) = CALLBACK.try_write() {
        if let Some(replacement) = REPLACEMENT.lock().take() {
            *registered = replacement;
        }
    }
}

/// Sets (or, with None, removes) the host's callback. Returns once no call of the previous
/// callback runs. Called from inside a callback, it cannot wait (this thread holds the lock a
/// setter waits for, and waiting for other threads' calls could deadlock on whatever the
/// host's callback waits for): calls that begin after it use the new callback, but one that
/// another thread began just before may still reach the previous one.
pub fn set(callback: Option<LogCallback>, user: *mut c_void) {
    INSTALL.call_once(|| {
        // Fails only if the host process installed another `log` logger; then that one gets
        // the records, which is the host's choice.
        let _ = log::set_logger(&HOST_LOGGER);
    });
    let registered = callback.map(|cb| (cb, user as usize));
    let level = if callback.is_some() {
        log::LevelFilter::Trace
    } else {
        log::LevelFilter::Off
    };
    // The level is set while REPLACEMENT is held, which every setter takes: set after it was
    // let go, a `set(None)` racing a `set(Some(..))` could leave the callback registered and
    // the level Off, so that it never heard a thing again.
    if IN_CALLBACK.with(Cell::get) {
        let mut replacement = REPLACEMENT.lock();
        *replacement = Some(registered);
        log::set_max_level(level);
    } else {
        let mut current = CALLBACK.write();
        *current = registered;
        let mut replacement = REPLACEMENT.lock();
        *replacement = None;
        log::set_max_level(level);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    unsafe extern "C" fn quiet(_level: c_int, _message: *const c_char, _user: *mut c_void) {}

    /// Two threads setting the callback at once: whichever set it last, the level filter is
    /// that one's (a callback with the records switched off would never hear a thing).
    #[test]
    fn racing_setters_leave_the_level_that_goes_with_the_callback() {
        let mut mismatched = 0;
        for _ in 0..20000 {
            let start = std::sync::Barrier::new(2);
            std::thread::scope(|s| {
                s.spawn(|| {
                    start.wait();
                    set(Some(quiet), std::ptr::null_mut())
                });
                s.spawn(|| {
                    start.wait();
                    set(None, std::ptr::null_mut())
                });
            });
            let registered = CALLBACK.read().is_some();
            if registered != (log::max_level() != log::LevelFilter::Off) {
                mismatched += 1;
            }
        }
        set(None, std::ptr::null_mut());
        assert_eq!(
            mismatched, 0,
            "rounds that left the level at odds with the callback"
        );
    }
}
