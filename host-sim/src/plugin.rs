//! Loads the plugin the way the PBX does: `dlopen` through `libloading`, every symbol of the
//! contract resolved up front (a missing one is named at once), and every call made through
//! the C ABI. The types mirror `include/google_integration.h`.

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::path::{Path, PathBuf};
use std::ptr;

use libloading::Library;

/// Mirrors `GiResult`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum GiResult {
    GI_OK = 0,
    GI_NOT_FOUND = 1,
    GI_ERR_INVALID_ARGUMENT = 2,
    GI_ERR_BUFFER_TOO_SMALL = 3,
    GI_ERR_STATE = 4,
    GI_ERR_DENIED = 5,
    GI_ERR_GOOGLE = 6,
    GI_ERR_NETWORK = 7,
    GI_ERR_STORAGE = 8,
    GI_ERR_CONFIG = 9,
    GI_ERR_INTERNAL = 10,
}

/// Mirrors `GiStatus`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum GiStatus {
    GI_STATUS_DISCONNECTED = 0,
    GI_STATUS_CONNECTED = 1,
    GI_STATUS_ISSUE = 2,
}

/// Mirrors `GiContact`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct GiContact {
    pub name: [c_char; 128],
    pub company: [c_char; 128],
    pub label: [c_char; 32],
    pub number: [c_char; 32],
    pub account: [c_char; 256],
    pub source: [c_char; 16],
    pub groups: [c_char; 128],
}

impl Default for GiContact {
    fn default() -> Self {
        GiContact {
            name: [0; 128],
            company: [0; 128],
            label: [0; 32],
            number: [0; 32],
            account: [0; 256],
            source: [0; 16],
            groups: [0; 128],
        }
    }
}

/// Mirrors `GiPresence`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum GiPresence {
    GI_PRESENCE_UNKNOWN = 0,
    GI_PRESENCE_FREE = 1,
    GI_PRESENCE_BUSY = 2,
}

/// Mirrors `GiSearchMode`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum GiSearchMode {
    GI_SEARCH_TEXT = 0,
    GI_SEARCH_KEYPAD = 1,
}

impl GiContact {
    pub fn is_zeroed(&self) -> bool {
        [
            &self.name[..],
            &self.company[..],
            &self.label[..],
            &self.number[..],
            &self.account[..],
            &self.source[..],
            &self.groups[..],
        ]
        .iter()
        .all(|field| field.iter().all(|&b| b == 0))
    }
}

/// Opaque `GiPlugin`.
#[repr(C)]
pub struct GiPlugin {
    _private: [u8; 0],
}

pub type LogCallback =
    unsafe extern "C" fn(level: c_int, message: *const c_char, user: *mut c_void);

/// Every function of the contract, resolved from the library.
#[allow(clippy::type_complexity)]
pub struct Api {
    pub gi_open: unsafe extern "C" fn(*const c_char) -> *mut GiPlugin,
    pub gi_close: unsafe extern "C" fn(*mut GiPlugin),
    pub gi_last_error: unsafe extern "C" fn(*mut c_char, usize) -> usize,
    pub gi_version: unsafe extern "C" fn() -> *const c_char,
    pub gi_auth_url: unsafe extern "C" fn(
        *mut GiPlugin,
        *const c_char,
        *mut c_char,
        usize,
        *mut usize,
    ) -> GiResult,
    pub gi_complete:
        unsafe extern "C" fn(*mut GiPlugin, *const c_char, *mut c_char, usize) -> GiResult,
    pub gi_status: unsafe extern "C" fn(*mut GiPlugin, *const c_char) -> GiStatus,
    pub gi_status_json: unsafe extern "C" fn(
        *mut GiPlugin,
        *const c_char,
        *mut c_char,
        usize,
        *mut usize,
    ) -> GiResult,
    pub gi_disable: unsafe extern "C" fn(*mut GiPlugin, *const c_char) -> GiResult,
    pub gi_sync_now: unsafe extern "C" fn(*mut GiPlugin, *const c_char) -> GiResult,
    pub gi_lookup_contact: unsafe extern "C" fn(
        *mut GiPlugin,
        *const c_char,
        *const c_char,
        *mut GiContact,
    ) -> GiResult,
    pub gi_search_contacts: unsafe extern "C" fn(
        *mut GiPlugin,
        *const c_char,
        *const c_char,
        GiSearchMode,
        usize,
        *mut GiContact,
        usize,
        *mut usize,
        *mut usize,
    ) -> GiResult,
    pub gi_presence: unsafe extern "C" fn(*mut GiPlugin, *const c_char, *mut i64) -> GiPresence,
    pub gi_backup: unsafe extern "C" fn(*mut GiPlugin, *const c_char) -> GiResult,
    pub gi_set_logger: unsafe extern "C" fn(Option<LogCallback>, *mut c_void),
    path: PathBuf,
    // Keeps the library loaded for as long as the function pointers above live.
    _library: Library,
}

/// The file name of the plugin on this platform.
pub const LIBRARY_FILE: &str = "libgoogle_integration.so";

/// Where a workspace build puts the plugin: in this executable's target directory
/// (`target/<profile>/`), or in its `deps/`, where cargo leaves a plugin it built only as a
/// dependency of the tests. The newer of the two wins, so a test never loads a stale build.
pub fn default_library_path() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    let mut dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let candidates = [dir.join(LIBRARY_FILE), dir.join("deps").join(LIBRARY_FILE)];
    candidates
        .iter()
        .filter_map(|path| Some((std::fs::metadata(path).ok()?.modified().ok()?, path)))
        .max_by_key(|(modified, _)| *modified)
        .map(|(_, path)| path.clone())
        .unwrap_or_else(|| candidates[0].clone())
}

impl Api {
    /// Loads the plugin and resolves every symbol; the error names the path or the symbol.
    pub fn load(path: &Path) -> Result<Api, String> {
        if !path.exists() {
            return Err(format!(
                "plugin not found at {}: build it with `cargo build` or pass --plugin PATH",
                path.display()
            ));
        }
        // SAFETY: loading runs the library's initialisers; the plugin has none with effects.
        let library = unsafe { Library::new(path) }
            .map_err(|e| format!("cannot load the plugin {}: {e}", path.display()))?;
        macro_rules! symbol {
            ($name:ident) => {{
                // SAFETY: the type matches the contract's declaration of the symbol.
                let symbol = unsafe { library.get(concat!(stringify!($name), "\0").as_bytes()) }
                    .map_err(|e| {
                        format!(
                            "the plugin {} lacks the symbol {}: {e} (a build of an older contract? run `cargo build --workspace` first, with the same --release or not)",
                            path.display(),
                            stringify!($name)
                        )
                    })?;
                *symbol
            }};
        }
        Ok(Api {
            gi_open: symbol!(gi_open),
            gi_close: symbol!(gi_close),
            gi_last_error: symbol!(gi_last_error),
            gi_version: symbol!(gi_version),
            gi_auth_url: symbol!(gi_auth_url),
            gi_complete: symbol!(gi_complete),
            gi_status: symbol!(gi_status),
            gi_status_json: symbol!(gi_status_json),
            gi_disable: symbol!(gi_disable),
            gi_sync_now: symbol!(gi_sync_now),
            gi_lookup_contact: symbol!(gi_lookup_contact),
            gi_search_contacts: symbol!(gi_search_contacts),
            gi_presence: symbol!(gi_presence),
            gi_backup: symbol!(gi_backup),
            gi_set_logger: symbol!(gi_set_logger),
            path: path.to_path_buf(),
            _library: library,
        })
    }

    /// Where the plugin was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// This thread's last error from the plugin.
    pub fn last_error(&self) -> String {
        // SAFETY: NULL/0 asks for the length only.
        let len = unsafe { (self.gi_last_error)(ptr::null_mut(), 0) };
        let mut buf = vec![0u8; len + 1];
        // SAFETY: buf has len + 1 bytes.
        unsafe { (self.gi_last_error)(buf.as_mut_ptr().cast(), buf.len()) };
        buf.truncate(len);
        String::from_utf8_lossy(&buf).into_owned()
    }

    pub fn version(&self) -> String {
        // SAFETY: gi_version returns a static NUL-terminated string.
        unsafe { CStr::from_ptr((self.gi_version)()) }
            .to_string_lossy()
            .into_owned()
    }
}

/// A failed call: its result code and the plugin's last error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallError {
    pub code: GiResult,
    pub message: String,
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}: {}", self.code, self.message)
    }
}

/// What `gi_lookup_contact` found, as Rust strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub name: String,
    pub company: String,
    pub label: String,
    pub number: String,
    pub account: String,
    pub source: String,
    pub groups: String,
}

fn field(bytes: &[c_char]) -> String {
    let bytes: Vec<u8> = bytes
        .iter()
        .take_while(|&&b| b != 0)
        .map(|&b| b as u8)
        .collect();
    String::from_utf8(bytes).expect("the plugin writes UTF-8 fields")
}

impl From<&GiContact> for Caller {
    fn from(c: &GiContact) -> Caller {
        Caller {
            name: field(&c.name),
            company: field(&c.company),
            label: field(&c.label),
            number: field(&c.number),
            account: field(&c.account),
            source: field(&c.source),
            groups: field(&c.groups),
        }
    }
}

/// An open plugin, driven only through the C ABI. Closed on drop.
pub struct Plugin<'a> {
    api: &'a Api,
    raw: *mut GiPlugin,
}

// The contract makes the plugin thread-safe: every function may be called concurrently.
unsafe impl Send for Plugin<'_> {}
unsafe impl Sync for Plugin<'_> {}

fn c(s: &str) -> CString {
    CString::new(s).expect("no NUL inside")
}

impl<'a> Plugin<'a> {
    pub fn open(api: &'a Api, config_json: &str) -> Result<Plugin<'a>, CallError> {
        let config = c(config_json);
        // SAFETY: a NUL-terminated string for the call.
        let raw = unsafe { (api.gi_open)(config.as_ptr()) };
        if raw.is_null() {
            return Err(CallError {
                code: GiResult::GI_ERR_CONFIG,
                message: api.last_error(),
            });
        }
        Ok(Plugin { api, raw })
    }

    pub fn raw(&self) -> *mut GiPlugin {
        self.raw
    }

    pub fn api(&self) -> &'a Api {
        self.api
    }

    fn check(&self, code: GiResult) -> Result<(), CallError> {
        match code {
            GiResult::GI_OK => Ok(()),
            code => Err(CallError {
                code,
                message: self.api.last_error(),
            }),
        }
    }

    /// Calls a buffer-protocol function the way a careful host does: ask the length, allocate,
    /// ask again, and once more should the value have grown in between (a status changes
    /// while a sync runs).
    fn read_buffer(
        &self,
        call: impl Fn(*mut c_char, usize, *mut usize) -> GiResult,
    ) -> Result<String, CallError> {
        let mut len = 0usize;
        let first = call(ptr::null_mut(), 0, &mut len);
        if first != GiResult::GI_ERR_BUFFER_TOO_SMALL {
            self.check(first)?;
        }
        let mut attempts = 0;
        loop {
            let mut buf = vec![0u8; len + 1];
            let code = call(buf.as_mut_ptr().cast(), buf.len(), &mut len);
            attempts += 1;
            if code == GiResult::GI_ERR_BUFFER_TOO_SMALL && attempts < 5 {
                continue;
            }
            self.check(code)?;
            buf.truncate(len);
            return Ok(String::from_utf8(buf).expect("the plugin writes UTF-8"));
        }
    }

    pub fn auth_url(&self, account: &str) -> Result<String, CallError> {
        let account = c(account);
        // SAFETY: valid plugin, string and buffer for each call.
        self.read_buffer(|buf, cap, len| unsafe {
            (self.api.gi_auth_url)(self.raw, account.as_ptr(), buf, cap, len)
        })
    }

    pub fn complete(&self, callback_query: &str) -> Result<String, CallError> {
        let query = c(callback_query);
        let mut account = [0u8; 256];
        // SAFETY: valid plugin, string and a 256-byte buffer.
        let code = unsafe {
            (self.api.gi_complete)(
                self.raw,
                query.as_ptr(),
                account.as_mut_ptr().cast(),
                account.len(),
            )
        };
        self.check(code)?;
        let len = account
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(account.len());
        Ok(String::from_utf8_lossy(&account[..len]).into_owned())
    }

    pub fn status(&self, account: &str) -> GiStatus {
        let account = c(account);
        // SAFETY: valid plugin and string.
        unsafe { (self.api.gi_status)(self.raw, account.as_ptr()) }
    }

    pub fn status_json(&self, account: &str) -> Result<String, CallError> {
        let account = c(account);
        // SAFETY: valid plugin, string and buffer for each call.
        self.read_buffer(|buf, cap, len| unsafe {
            (self.api.gi_status_json)(self.raw, account.as_ptr(), buf, cap, len)
        })
    }

    pub fn status_value(&self, account: &str) -> serde_json::Value {
        serde_json::from_str(&self.status_json(account).expect("gi_status_json"))
            .expect("gi_status_json returns JSON")
    }

    pub fn disable(&self, account: &str) -> Result<(), CallError> {
        let account = c(account);
        // SAFETY: valid plugin and string.
        self.check(unsafe { (self.api.gi_disable)(self.raw, account.as_ptr()) })
    }

    pub fn sync_now(&self, account: &str) -> Result<(), CallError> {
        let account = c(account);
        // SAFETY: valid plugin and string.
        self.check(unsafe { (self.api.gi_sync_now)(self.raw, account.as_ptr()) })
    }

    /// `Ok(None)` for GI_NOT_FOUND.
    pub fn lookup(&self, account: &str, number: &str) -> Result<Option<Caller>, CallError> {
        let account = c(account);
        let number = c(number);
        self.lookup_raw(&account, &number)
    }

    /// The account's calendar presence and when it changes (Unix time, or 0).
    pub fn presence(&self, account: &str) -> (GiPresence, i64) {
        let account = c(account);
        let mut until = -1i64;
        // SAFETY: valid plugin, string and output.
        let presence = unsafe { (self.api.gi_presence)(self.raw, account.as_ptr(), &mut until) };
        (presence, until)
    }

    /// A consistent copy of the store at `path` (a new file).
    pub fn backup(&self, path: &std::path::Path) -> Result<(), CallError> {
        let path = c(&path.to_string_lossy());
        // SAFETY: valid plugin and string.
        self.check(unsafe { (self.api.gi_backup)(self.raw, path.as_ptr()) })
    }

    /// One page of the address book: rows `offset..offset + cap` and the total that match.
    pub fn search(
        &self,
        account: &str,
        query: &str,
        mode: GiSearchMode,
        offset: usize,
        cap: usize,
    ) -> Result<(Vec<Caller>, usize), CallError> {
        let account = c(account);
        let query = c(query);
        let mut rows = vec![GiContact::default(); cap];
        let (mut count, mut total) = (0usize, 0usize);
        // SAFETY: valid plugin, strings, and an array of cap contacts.
        let code = unsafe {
            (self.api.gi_search_contacts)(
                self.raw,
                account.as_ptr(),
                query.as_ptr(),
                mode,
                offset,
                if cap == 0 {
                    ptr::null_mut()
                } else {
                    rows.as_mut_ptr()
                },
                cap,
                &mut count,
                &mut total,
            )
        };
        self.check(code)?;
        Ok((rows[..count].iter().map(Caller::from).collect(), total))
    }

    /// One `gi_search_contacts` into the caller's array, nothing else: what a benchmark
    /// times. Returns the rows written.
    pub fn search_into(
        &self,
        account: &CStr,
        query: &CStr,
        mode: GiSearchMode,
        rows: &mut [GiContact],
    ) -> (GiResult, usize) {
        let mut count = 0usize;
        // SAFETY: valid plugin, strings, and an array of rows.len() contacts.
        let code = unsafe {
            (self.api.gi_search_contacts)(
                self.raw,
                account.as_ptr(),
                query.as_ptr(),
                mode,
                0,
                rows.as_mut_ptr(),
                rows.len(),
                &mut count,
                ptr::null_mut(),
            )
        };
        (code, count)
    }

    /// One `gi_lookup_contact` into the caller's GiContact, nothing else: what a benchmark
    /// times.
    pub fn lookup_into(&self, account: &CStr, number: &CStr, out: &mut GiContact) -> GiResult {
        // SAFETY: valid plugin, strings and output struct.
        unsafe { (self.api.gi_lookup_contact)(self.raw, account.as_ptr(), number.as_ptr(), out) }
    }

    /// The same with C strings made by the caller.
    pub fn lookup_raw(&self, account: &CStr, number: &CStr) -> Result<Option<Caller>, CallError> {
        let mut out = GiContact::default();
        // SAFETY: valid plugin, strings and output struct.
        let code = unsafe {
            (self.api.gi_lookup_contact)(self.raw, account.as_ptr(), number.as_ptr(), &mut out)
        };
        match code {
            GiResult::GI_OK => Ok(Some(Caller::from(&out))),
            GiResult::GI_NOT_FOUND => Ok(None),
            code => Err(CallError {
                code,
                message: self.api.last_error(),
            }),
        }
    }
}

impl Drop for Plugin<'_> {
    fn drop(&mut self) {
        // SAFETY: opened by gi_open and closed once, here.
        unsafe { (self.api.gi_close)(self.raw) };
    }
}
