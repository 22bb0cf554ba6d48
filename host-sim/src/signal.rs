//! Ctrl-C and SIGTERM: the long-running commands stop serving, close the plugin (which stops
//! its sync workers) and remove a temporary data_dir, instead of dying mid-way.

use std::sync::atomic::{AtomicBool, Ordering};

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_signal: libc::c_int) {
    // Only an atomic store: async-signal-safe.
    STOP.store(true, Ordering::SeqCst);
}

pub fn install() {
    let handler = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
    // SAFETY: the handler only stores to an atomic.
    unsafe {
        libc::signal(libc::SIGINT, handler);
        libc::signal(libc::SIGTERM, handler);
    }
}

/// Whether Ctrl-C or SIGTERM arrived.
pub fn stopping() -> bool {
    STOP.load(Ordering::SeqCst)
}
