//! gi_set_logger: once it returns, the previous callback is never called again, even while
//! other threads are logging; and a callback may replace itself from inside.
//! (Its own test binary: the logger is process-wide.)

mod common;

use std::ffi::{c_char, c_int, c_void, CString};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use common::api;

static REPLACED: AtomicBool = AtomicBool::new(false);
static FIRST_CALLS: AtomicUsize = AtomicUsize::new(0);
static LATE_CALLS: AtomicUsize = AtomicUsize::new(0);
static SECOND_CALLS: AtomicUsize = AtomicUsize::new(0);

unsafe extern "C" fn first(_level: c_int, _message: *const c_char, _user: *mut c_void) {
    if REPLACED.load(Ordering::SeqCst) {
        LATE_CALLS.fetch_add(1, Ordering::SeqCst);
    }
    FIRST_CALLS.fetch_add(1, Ordering::SeqCst);
    std::thread::sleep(Duration::from_micros(20));
}

unsafe extern "C" fn second(_level: c_int, _message: *const c_char, _user: *mut c_void) {
    SECOND_CALLS.fetch_add(1, Ordering::SeqCst);
}

static SELF_REPLACING_CALLS: AtomicUsize = AtomicUsize::new(0);

unsafe extern "C" fn replaces_itself(_level: c_int, _message: *const c_char, _user: *mut c_void) {
    SELF_REPLACING_CALLS.fetch_add(1, Ordering::SeqCst);
    unsafe { (api().gi_set_logger)(Some(second), std::ptr::null_mut()) };
}

#[test]
fn a_replaced_callback_is_never_called_after_gi_set_logger_returns() {
    let api = api();
    let stop = AtomicBool::new(false);
    let broken = CString::new("{ not json").unwrap();
    std::thread::scope(|scope| {
        // Two threads that log all the time (a failing gi_open logs an error).
        for _ in 0..2 {
            scope.spawn(|| {
                while !stop.load(Ordering::SeqCst) {
                    let p = unsafe { (api.gi_open)(broken.as_ptr()) };
                    assert!(p.is_null());
                }
            });
        }
        for _ in 0..300 {
            REPLACED.store(false, Ordering::SeqCst);
            unsafe { (api.gi_set_logger)(Some(first), std::ptr::null_mut()) };
            let before = FIRST_CALLS.load(Ordering::SeqCst);
            while FIRST_CALLS.load(Ordering::SeqCst) == before {
                std::thread::yield_now();
            }
            unsafe { (api.gi_set_logger)(Some(second), std::ptr::null_mut()) };
            REPLACED.store(true, Ordering::SeqCst);
            std::thread::sleep(Duration::from_micros(50));
        }
        // A callback that replaces itself from inside does not deadlock, and its
        // replacement takes over.
        unsafe { (api.gi_set_logger)(Some(replaces_itself), std::ptr::null_mut()) };
        let before = SECOND_CALLS.load(Ordering::SeqCst);
        assert!(common::wait_until(common::PATIENCE, || {
            SECOND_CALLS.load(Ordering::SeqCst) > before + 10
        }));
        stop.store(true, Ordering::SeqCst);
    });
    unsafe { (api.gi_set_logger)(None, std::ptr::null_mut()) };
    assert!(SECOND_CALLS.load(Ordering::SeqCst) > 0);
    assert!(SELF_REPLACING_CALLS.load(Ordering::SeqCst) >= 1);
    assert_eq!(
        LATE_CALLS.load(Ordering::SeqCst),
        0,
        "the replaced callback ran after gi_set_logger returned"
    );
}
