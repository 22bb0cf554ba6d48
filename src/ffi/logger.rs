//! Routes the `log` crate to the host's callback (`gi_set_logger`). The plugin's own records
//! go through at every level; those of the libraries beneath it only from warn up, so their
//! debug output (which could show HTTP details) never reaches the PBX log.

use std::ffi::CString;
use std::os::raw::{c_char, c_int, c_void};
use std::sync::Once;

use parking_lot::RwLock;

pub type LogCallback =
    unsafe extern "C" fn(level: c_int, message: *const c_char, user: *mut c_void);

/// The callback and the host's user pointer (kept as an address: the plugin never reads it,
/// only hands it back).
static CALLBACK: RwLock<Option<(LogCallback, usize)>> = RwLock::new(None);
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
        // Copy the callback out: the host may log, or set another logger, from inside it.
        let Some((callback, user)) = *CALLBACK.read() else {
            return;
        };
        let text = record.args().to_string().replace('\0', " ");
        let Ok(message) = CString::new(text) else {
            return;
        };
        // SAFETY: the host registered this callback for exactly this call shape.
        unsafe {
            callback(
                record.level() as c_int,
                message.as_ptr(),
                user as *mut c_void,
            )
        };
    }

    fn flush(&self) {}
}

/// Sets (or, with None, removes) the host's callback.
pub fn set(callback: Option<LogCallback>, user: *mut c_void) {
    INSTALL.call_once(|| {
        // Fails only if the host process installed another `log` logger; then that one gets
        // the records, which is the host's choice.
        let _ = log::set_logger(&HOST_LOGGER);
    });
    *CALLBACK.write() = callback.map(|cb| (cb, user as usize));
    log::set_max_level(if callback.is_some() {
        log::LevelFilter::Trace
    } else {
        log::LevelFilter::Off
    });
}
