//! What every exported function shares: the panic boundary, the thread's last error, and the
//! checks of pointers, strings and buffers from the host. The only raw pointers of the crate
//! are read here and in `ffi/mod.rs`.

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::ffi::CStr;
use std::ops::Deref;
use std::os::raw::c_char;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;
use std::sync::{Arc, Once};

use super::types::{GiContact, GiPlugin, GiResult, GiSearchMode, GiSearchModeArg, GiStatus};
use crate::account;
use crate::book::numbers::ContactMatch;
use crate::error::{Error, ErrorKind};
use crate::plugin::Plugin;

thread_local! {
    static LAST_ERROR: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Records this thread's last failure. As a thread ends (a host calling from a C++
/// `thread_local`'s destructor or a pthread key's), the slot may be gone already: the message
/// is dropped then. `with` would panic there, and the boundary's own record of that panic
/// would panic again outside it, aborting the PBX.
pub fn set_last_error(message: &str) {
    let _ = LAST_ERROR.try_with(|last| {
        let mut last = last.borrow_mut();
        last.clear();
        last.push_str(message);
    });
}

/// This thread's last failure; "" once its slot is gone (see `set_last_error`).
pub fn with_last_error<R>(f: impl FnOnce(&str) -> R) -> R {
    let mut f = Some(f);
    match LAST_ERROR.try_with(|last| (f.take().expect("called once"))(&last.borrow())) {
        Ok(value) => value,
        Err(_) => (f.take().expect("not called"))(""),
    }
}

/// Records the error for `gi_last_error` and returns its result code.
pub fn fail(error: &Error) -> GiResult {
    set_last_error(error.message());
    error.kind().into()
}

/// The value a function returns when its body panicked.
pub trait PanicValue {
    fn on_panic() -> Self;
}

impl PanicValue for GiResult {
    fn on_panic() -> Self {
        GiResult::GI_ERR_INTERNAL
    }
}
impl PanicValue for GiStatus {
    fn on_panic() -> Self {
        GiStatus::GI_STATUS_ISSUE
    }
}
impl PanicValue for *mut GiPlugin {
    fn on_panic() -> Self {
        ptr::null_mut()
    }
}
impl PanicValue for super::types::GiPresence {
    fn on_panic() -> Self {
        super::types::GiPresence::GI_PRESENCE_UNKNOWN
    }
}
impl PanicValue for usize {
    fn on_panic() -> Self {
        0
    }
}
impl PanicValue for () {
    fn on_panic() -> Self {}
}

thread_local! {
    /// Whether this thread is inside one of the plugin's exported functions.
    static IN_BOUNDARY: Cell<bool> = const { Cell::new(false) };
}
static PANIC_HOOK: Once = Once::new();

/// Threads the plugin starts (sync workers "gi-…", the HTTP client's runtime): a panic on
/// them is the plugin's too.
const OWN_THREAD_PREFIXES: [&str; 2] = ["gi-", "reqwest-internal"];

/// The panic hook is process-wide: this one sends the plugin's panics (inside an exported
/// function, or on the plugin's own threads) to the logger instead of the PBX's stderr, and
/// hands every other panic of the process to the hook that was there before.
fn install_panic_hook() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let ours = IN_BOUNDARY.try_with(Cell::get).unwrap_or(false)
            || std::thread::current()
                .name()
                .is_some_and(|name| OWN_THREAD_PREFIXES.iter().any(|p| name.starts_with(p)));
        if !ours {
            return previous(info);
        }
        // Where, not what: the payload may hold anything, a token included.
        let place = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        log::error!("the plugin panicked at {place} (a bug; the PBX goes on). Please report it with this log");
    }));
}

/// Runs an exported function's body; a panic becomes the function's failure value and a
/// last error, and never unwinds into the PBX.
pub fn guard<T: PanicValue>(function: &str, body: impl FnOnce() -> T) -> T {
    PANIC_HOOK.call_once(install_panic_hook);
    // One thread-local access, not two: in a library the PBX loads with dlopen, each costs a
    // call into the dynamic linker, on every lookup.
    let outcome = IN_BOUNDARY.with(|in_boundary| {
        let outer = in_boundary.replace(true);
        let outcome = catch_unwind(AssertUnwindSafe(body));
        in_boundary.set(outer);
        outcome
    });
    match outcome {
        Ok(value) => value,
        Err(_) => {
            // The payload is not quoted: the boundary cannot vouch that it holds no secret.
            let message = format!(
                "internal error in {function} (a bug in the plugin); the PBX may go on. Please report it with the plugin's log"
            );
            log::error!("{message}");
            set_last_error(&message);
            T::on_panic()
        }
    }
}

/// Wraps the body of an exported function in the panic boundary.
macro_rules! ffi_boundary {
    ($function:literal, $body:block) => {
        $crate::ffi::boundary::guard($function, move || $body)
    };
}
pub(crate) use ffi_boundary;

/// Unwraps a `Result<T, Error>` inside a boundary body, or returns the failure's code.
macro_rules! try_ffi {
    ($result:expr) => {
        match $result {
            Ok(value) => value,
            Err(error) => return $crate::ffi::boundary::fail(&error),
        }
    };
}
pub(crate) use try_ffi;

/// The open plugin behind a handle, held for the call: `gi_close` waits until every such
/// hold is released before it tears the plugin down.
pub struct OpenPlugin(arc_swap::Guard<Option<Arc<Plugin>>>);

impl Deref for OpenPlugin {
    type Target = Plugin;
    fn deref(&self) -> &Plugin {
        self.0.as_deref().expect("checked open in plugin()")
    }
}

pub fn plugin(p: *const GiPlugin) -> Result<OpenPlugin, Error> {
    // SAFETY: the host passes NULL or a pointer from gi_open; handles are never freed, so
    // even one that was closed is still valid memory.
    let handle = unsafe { p.as_ref() }.ok_or_else(|| {
        Error::invalid_argument("the plugin is NULL; pass the pointer gi_open returned")
    })?;
    let open = handle.plugin.load();
    if open.is_none() {
        return Err(closed());
    }
    Ok(OpenPlugin(open))
}

pub fn closed() -> Error {
    Error::invalid_argument(
        "the plugin was closed with gi_close; call gi_open again before using it",
    )
}

/// Handles closed by `gi_close`, kept allocated (and reachable, so leak checkers do not
/// report them) for the life of the process: a stale pointer must find a closed handle.
static CLOSED_HANDLES: parking_lot::Mutex<Vec<usize>> = parking_lot::Mutex::new(Vec::new());

/// Closes the plugin behind a handle: takes it out so that new calls find it closed, waits
/// for the calls in flight to return, then stops it. False when it was closed already.
pub fn close(p: *mut GiPlugin) -> bool {
    // SAFETY: as in plugin(): NULL was checked by the caller, and handles are never freed.
    let Some(handle) = (unsafe { p.as_ref() }) else {
        return false;
    };
    let Some(open) = handle.plugin.swap(None) else {
        return false;
    };
    CLOSED_HANDLES.lock().push(p as usize);
    // Replies being read are abandoned, so a call reading from Google returns at its next
    // chunk (one waiting for a reply to begin, at most at its deadline: see `begin_close`).
    open.begin_close();
    // After the swap, every call still holding the plugin holds a counted reference.
    let mut open = open;
    loop {
        match Arc::try_unwrap(open) {
            Ok(plugin) => {
                drop(plugin); // stops the workers, closes the store
                return true;
            }
            Err(still_shared) => {
                open = still_shared;
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        }
    }
}

/// A NUL-terminated UTF-8 string from the host, borrowed for the call.
pub fn string<'a>(s: *const c_char, what: &str) -> Result<&'a str, Error> {
    if s.is_null() {
        return Err(Error::invalid_argument(format!("{what} is NULL")));
    }
    // SAFETY: the host passes a NUL-terminated string that lives for the call.
    let bytes = unsafe { CStr::from_ptr(s) }.to_bytes();
    std::str::from_utf8(bytes).map_err(|e| not_utf8(what, e))
}

#[cold]
#[inline(never)]
fn not_utf8(what: &str, e: std::str::Utf8Error) -> Error {
    Error::invalid_argument(format!(
        "{what} is not valid UTF-8 (bad byte at offset {})",
        e.valid_up_to()
    ))
}

/// An account string from the host, checked as the contract defines accounts.
/// In canonical form (`ACME.de./40` is `acme.de/40`).
pub fn account<'a>(s: *const c_char) -> Result<Cow<'a, str>, Error> {
    let account = string(s, "account")?;
    account::validate(account)?;
    Ok(account::canonical(account))
}

/// Checked, but as the host wrote it: for the lookup path, which makes the canonical form
/// on its stack only when it differs.
pub fn account_as_given<'a>(s: *const c_char) -> Result<&'a str, Error> {
    let account = string(s, "account")?;
    account::validate(account)?;
    Ok(account)
}

/// Writes `value` with the buffer protocol: the length (without NUL) into `*len_out`, and
/// the string only when `cap` exceeds it; otherwise nothing and `GI_ERR_BUFFER_TOO_SMALL`.
pub fn write_string(
    value: &str,
    buf: *mut c_char,
    cap: usize,
    len_out: *mut usize,
) -> Result<(), Error> {
    if !len_out.is_null() {
        // SAFETY: a non-NULL len_out points to a size_t the host owns.
        unsafe { *len_out = value.len() };
    }
    if buf.is_null() || cap <= value.len() {
        return Err(Error::new(
            ErrorKind::BufferTooSmall,
            format!(
                "the buffer holds {cap} bytes but {} are needed (with the NUL); *len_out has the length",
                value.len() + 1
            ),
        ));
    }
    // SAFETY: buf has room for cap > value.len() bytes.
    unsafe {
        ptr::copy_nonoverlapping(value.as_ptr(), buf.cast::<u8>(), value.len());
        *buf.add(value.len()) = 0;
    }
    Ok(())
}

/// Writes as much of `value` as fits in `cap` bytes with its NUL, cut at a character
/// boundary; nothing when `buf` is NULL or `cap` is 0.
pub fn write_truncated(value: &str, buf: *mut c_char, cap: usize) {
    if buf.is_null() || cap == 0 {
        return;
    }
    let fitting = &value[..value.floor_char_boundary(cap - 1)];
    // SAFETY: buf has room for cap bytes, and fitting.len() < cap.
    unsafe {
        ptr::copy_nonoverlapping(fitting.as_ptr(), buf.cast::<u8>(), fitting.len());
        *buf.add(fitting.len()) = 0;
    }
}

/// Copies `value` into a fixed field of `GiContact`, cut at a character boundary.
pub fn fill_field(field: &mut [c_char], value: &str) {
    let fitting = &value[..value.floor_char_boundary(field.len().saturating_sub(1))];
    // SAFETY: c_char and u8 have the same size and alignment; the slice is the field itself.
    let field: &mut [u8] =
        unsafe { std::slice::from_raw_parts_mut(field.as_mut_ptr().cast(), field.len()) };
    field[..fitting.len()].copy_from_slice(fitting.as_bytes());
    if let Some(end) = field.get_mut(fitting.len()) {
        *end = 0;
    }
}

/// Fills a `GiContact` (zeroed by the caller) with a match from the index.
pub fn fill_contact(out: &mut GiContact, hit: ContactMatch<'_>) {
    fill_field(&mut out.name, hit.name);
    fill_field(&mut out.company, hit.company);
    fill_field(&mut out.label, hit.label);
    let mut digits = [0u8; 20];
    fill_field(&mut out.number, hit.number.write(&mut digits));
    fill_field(&mut out.account, hit.account);
    fill_field(&mut out.source, hit.source);
    fill_field(&mut out.groups, hit.groups);
}

/// Whether a search's `mode` is GI_SEARCH_KEYPAD (else GI_SEARCH_TEXT); any other value is
/// an invalid argument.
pub fn search_mode(mode: GiSearchModeArg) -> Result<bool, Error> {
    match mode {
        m if m == GiSearchMode::GI_SEARCH_TEXT as GiSearchModeArg => Ok(false),
        m if m == GiSearchMode::GI_SEARCH_KEYPAD as GiSearchModeArg => Ok(true),
        other => Err(Error::invalid_argument(format!(
            "mode is {other}; pass GI_SEARCH_TEXT (0) or GI_SEARCH_KEYPAD (1)"
        ))),
    }
}

/// Writes `value` into `*out` when the host passed a place for it.
pub fn put<T>(out: *mut T, value: T) {
    // SAFETY: a non-NULL pointer from the host points to a T it owns for the call.
    if let Some(out) = unsafe { out.as_mut() } {
        *out = value;
    }
}

/// The host's array of `cap` contacts, zeroed; None when `out` is NULL (allowed with `cap`
/// 0 only, to count).
pub fn contacts_out<'a>(out: *mut GiContact, cap: usize) -> Result<&'a mut [GiContact], Error> {
    if out.is_null() {
        if cap > 0 {
            return Err(Error::invalid_argument(format!(
                "out is NULL but cap is {cap}; pass an array of cap GiContact, or cap 0 to count"
            )));
        }
        return Ok(&mut []);
    }
    // SAFETY: the host passes an array of `cap` GiContact it owns for the call.
    let rows = unsafe { std::slice::from_raw_parts_mut(out, cap) };
    for row in rows.iter_mut() {
        // SAFETY: GiContact is plain bytes; all zeroes is a valid (empty) contact.
        *row = unsafe { std::mem::zeroed() };
    }
    Ok(rows)
}

/// The open plugin and the canonical account of a call, checked in that order.
pub fn plugin_and_account<'a>(
    plugin: *mut GiPlugin,
    account: *const c_char,
) -> Result<(OpenPlugin, Cow<'a, str>), Error> {
    self::plugin(plugin).and_then(|p| self::account(account).map(|a| (p, a)))
}

/// The body of every call that takes (plugin, account) and does one thing with them.
pub fn with_account(
    plugin: *mut GiPlugin,
    account: *const c_char,
    act: impl FnOnce(&Plugin, &str) -> Result<(), Error>,
) -> GiResult {
    let checked = plugin_and_account(plugin, account);
    match checked.and_then(|(plugin, account)| act(&plugin, &account)) {
        Ok(()) => GiResult::GI_OK,
        Err(error) => fail(&error),
    }
}

/// The body of every call that takes (plugin, account) and answers with a string through
/// the buffer protocol.
pub fn account_string(
    plugin: *mut GiPlugin,
    account: *const c_char,
    buf: *mut c_char,
    cap: usize,
    len_out: *mut usize,
    produce: impl FnOnce(&Plugin, &str) -> Result<String, Error>,
) -> GiResult {
    if len_out.is_null() {
        // Checked before anything is made: a URL asked for with nowhere to put its length
        // would store a state no one can use.
        return fail(&Error::invalid_argument(
            "len_out is NULL; pass a size_t for the length the buffer needs",
        ));
    }
    with_account(plugin, account, |plugin, account| {
        write_string(&produce(plugin, account)?, buf, cap, len_out)
    })
}

/// A string from the host held apart from the `GiContact`s the call fills. Legal C may hand
/// a call a field of the very struct it fills (`gi_lookup_contact(p, c.account, c.number,
/// &c)`, re-resolving an earlier answer; a search for `rows[0].name` into `rows`), and the
/// call zeroes and fills them before it is done reading its arguments: such a string is
/// copied first. One that starts elsewhere is used in place (the only cost: two compares).
pub struct Apart {
    copy: Option<std::ffi::CString>,
    given: *const c_char,
}

impl Apart {
    /// Checks `s` against the `count` contacts at `out`, before anything writes to them.
    pub fn from(s: *const c_char, out: *const GiContact, count: usize) -> Apart {
        let start = out as usize;
        let end = start.saturating_add(count.saturating_mul(std::mem::size_of::<GiContact>()));
        let inside = !s.is_null() && (start..end).contains(&(s as usize));
        Apart {
            // SAFETY: a non-NULL string from the host is NUL-terminated and lives for the call.
            copy: inside.then(|| unsafe { CStr::from_ptr(s) }.to_owned()),
            given: s,
        }
    }

    /// The string to read: the copy, or the host's own.
    pub fn ptr(&self) -> *const c_char {
        self.copy.as_ref().map_or(self.given, |copy| copy.as_ptr())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs in a child process (the panic hook is process-wide): a panic inside the boundary
    /// and one on a plugin thread print nothing to stderr; one elsewhere reaches the host's
    /// hook as before.
    #[test]
    fn a_panic_in_the_plugin_never_reaches_stderr() {
        if std::env::var_os("GI_PANIC_CHILD").is_some() {
            let _: GiResult = guard("gi_test", || panic!("SECRET-PAYLOAD inside"));
            std::thread::Builder::new()
                .name("gi-sync-test".into())
                .spawn(|| {
                    let _ = catch_unwind(|| panic!("SECRET-PAYLOAD on a worker"));
                })
                .unwrap()
                .join()
                .unwrap();
            let _ = catch_unwind(|| panic!("the host's own panic"));
            return;
        }
        let child = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "ffi::boundary::tests::a_panic_in_the_plugin_never_reaches_stderr",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("GI_PANIC_CHILD", "1")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&child.stderr);
        assert!(child.status.success(), "{stderr}");
        assert!(!stderr.contains("SECRET-PAYLOAD"), "{stderr}");
        assert!(stderr.contains("the host's own panic"), "{stderr}");
    }

    #[test]
    fn a_panic_becomes_the_failure_value_and_a_last_error() {
        let quiet = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let result: GiResult = guard("gi_test", || panic!("boom"));
        let status: GiStatus = guard("gi_test", || panic!("boom"));
        let plugin: *mut GiPlugin = guard("gi_test", || panic!("boom"));
        let length: usize = guard("gi_test", || panic!("boom"));
        std::panic::set_hook(quiet);
        assert_eq!(result, GiResult::GI_ERR_INTERNAL);
        assert_eq!(status, GiStatus::GI_STATUS_ISSUE);
        assert!(plugin.is_null());
        assert_eq!(length, 0);
        with_last_error(|message| {
            assert!(
                message.contains("gi_test") && message.contains("bug"),
                "{message}"
            );
            assert!(
                !message.contains("boom"),
                "the payload is not quoted: {message}"
            );
        });
        // Without a panic, the body's value passes through.
        assert_eq!(guard("gi_test", || GiResult::GI_OK), GiResult::GI_OK);
    }

    #[test]
    fn fields_are_cut_at_a_character_boundary_and_terminated() {
        let mut field = [0x55 as c_char; 4];
        fill_field(&mut field, "aé€");
        assert_eq!(field.map(|b| b as u8), [b'a', 0xc3, 0xa9, 0]);
        let mut small = [0x55 as c_char; 1];
        fill_field(&mut small, "abc");
        assert_eq!(small[0], 0);
    }
}
