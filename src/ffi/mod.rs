//! The C ABI of `../shared/contract.md`. Each function checks its arguments through
//! `boundary`, calls the safe core (`plugin`), and maps the outcome to a result code; its
//! body runs inside one panic boundary so no panic reaches the PBX.

// The exported functions take raw pointers by nature of the C ABI; each checks them (or
// documents the host's promise) before use, so they are not marked `unsafe` for Rust callers.
#![allow(clippy::not_unsafe_ptr_arg_deref)]

mod boundary;
mod logger;
pub mod types;

use std::os::raw::{c_char, c_int, c_void};
use std::ptr;

use arc_swap::ArcSwapOption;

use boundary::{ffi_boundary, try_ffi};
pub use types::{
    GiContact, GiPlugin, GiPresence, GiResult, GiSearchMode, GiSearchModeArg, GiStatus,
};

use crate::account::{self, MAX_ACCOUNT_BYTES};
use crate::error::Error;
use crate::plugin::Plugin;

/// Opens the plugin with the JSON configuration of the contract. Returns NULL on failure;
/// gi_last_error says why. Contacts stored by an earlier run answer lookups at once.
#[no_mangle]
pub extern "C" fn gi_open(config_json: *const c_char) -> *mut GiPlugin {
    ffi_boundary!("gi_open", {
        let opened = boundary::string(config_json, "config_json").and_then(Plugin::open);
        match opened {
            Ok(plugin) => Box::into_raw(Box::new(GiPlugin {
                plugin: ArcSwapOption::from_pointee(plugin),
            })),
            Err(error) => {
                log::error!("gi_open failed: {error}");
                boundary::fail(&error);
                ptr::null_mut()
            }
        }
    })
}

/// Waits for calls in flight on other threads to return (abandoning replies being read from
/// Google; a request whose reply has not begun is waited for, up to its 60 s deadline), then
/// stops the sync workers and closes the database. NULL is a no-op. Afterwards
/// every call with this pointer fails and never crashes: GI_ERR_INVALID_ARGUMENT
/// (gi_status: GI_STATUS_DISCONNECTED, gi_presence: GI_PRESENCE_UNKNOWN; a second gi_close
/// returns nothing), gi_last_error saying it is closed.
#[no_mangle]
pub extern "C" fn gi_close(plugin: *mut GiPlugin) {
    ffi_boundary!("gi_close", {
        if !plugin.is_null() && !boundary::close(plugin) {
            boundary::fail(&boundary::closed());
        }
    })
}

/// Copies this thread's last failure message into `buf` (cut to fit, NUL-terminated) and
/// returns its full length without the NUL, so a host can size a buffer. `buf` may be NULL.
#[no_mangle]
pub extern "C" fn gi_last_error(buf: *mut c_char, cap: usize) -> usize {
    ffi_boundary!("gi_last_error", {
        boundary::with_last_error(|message| {
            boundary::write_truncated(message, buf, cap);
            message.len()
        })
    })
}

/// The plugin's version, a static string such as "0.2.0".
#[no_mangle]
pub extern "C" fn gi_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// Google's authorization URL for `account`, for the consent popup.
#[no_mangle]
pub extern "C" fn gi_auth_url(
    plugin: *mut GiPlugin,
    account: *const c_char,
    buf: *mut c_char,
    cap: usize,
    len_out: *mut usize,
) -> GiResult {
    ffi_boundary!("gi_auth_url", {
        boundary::account_string(plugin, account, buf, cap, len_out, Plugin::auth_url)
    })
}

/// Completes a connection with the raw query string Google redirected to `redirect_uri`
/// with. Writes the connected account into `account_buf` (optional, cut to fit).
#[no_mangle]
pub extern "C" fn gi_complete(
    plugin: *mut GiPlugin,
    callback_query: *const c_char,
    account_buf: *mut c_char,
    account_cap: usize,
) -> GiResult {
    ffi_boundary!("gi_complete", {
        let plugin = try_ffi!(boundary::plugin(plugin));
        let query = try_ffi!(boundary::string(callback_query, "callback_query"));
        match plugin.complete(query) {
            Ok(account) => {
                boundary::write_truncated(&account, account_buf, account_cap);
                GiResult::GI_OK
            }
            Err(error) => {
                log::warn!("gi_complete failed: {error}");
                boundary::fail(&error)
            }
        }
    })
}

/// The account's status. A NULL plugin or a bad account is disconnected.
#[no_mangle]
pub extern "C" fn gi_status(plugin: *mut GiPlugin, account: *const c_char) -> GiStatus {
    ffi_boundary!("gi_status", {
        let checked = boundary::plugin_and_account(plugin, account);
        match checked {
            Ok((plugin, account)) => plugin.status(&account).into(),
            Err(error) => {
                boundary::fail(&error);
                GiStatus::GI_STATUS_DISCONNECTED
            }
        }
    })
}

/// The account's status as one JSON object (see the contract for its fields).
#[no_mangle]
pub extern "C" fn gi_status_json(
    plugin: *mut GiPlugin,
    account: *const c_char,
    buf: *mut c_char,
    cap: usize,
    len_out: *mut usize,
) -> GiResult {
    ffi_boundary!("gi_status_json", {
        boundary::account_string(plugin, account, buf, cap, len_out, Plugin::status_json)
    })
}

/// Revokes the account's access at Google and erases its tokens and contacts, whether or
/// not Google answered. An account that is not connected is GI_OK.
#[no_mangle]
pub extern "C" fn gi_disable(plugin: *mut GiPlugin, account: *const c_char) -> GiResult {
    ffi_boundary!("gi_disable", {
        boundary::with_account(plugin, account, Plugin::disable)
    })
}

/// Starts a sync of the account in the background and returns at once.
#[no_mangle]
pub extern "C" fn gi_sync_now(plugin: *mut GiPlugin, account: *const c_char) -> GiResult {
    ffi_boundary!("gi_sync_now", {
        boundary::with_account(plugin, account, Plugin::sync_now)
    })
}

/// Who is calling `account` from `number`. Answers from memory, never waiting for the
/// network, a sync or the database. GI_NOT_FOUND leaves `*out` zeroed and sets no error.
/// `account` and `number` may be fields of `*out` (an earlier answer re-resolved).
#[no_mangle]
pub extern "C" fn gi_lookup_contact(
    plugin: *mut GiPlugin,
    account: *const c_char,
    number: *const c_char,
    out: *mut GiContact,
) -> GiResult {
    ffi_boundary!("gi_lookup_contact", {
        let (account, number) = (
            boundary::Apart::from(account, out, 1),
            boundary::Apart::from(number, out, 1),
        );
        let (account, number) = (account.ptr(), number.ptr());
        // SAFETY: a non-NULL out points to a GiContact the host owns for the call.
        let Some(out) = (unsafe { out.as_mut() }) else {
            return boundary::fail(&Error::invalid_argument(
                "out is NULL; pass a GiContact to fill",
            ));
        };
        // SAFETY: GiContact is plain bytes; all zeroes is a valid (empty) contact.
        *out = unsafe { std::mem::zeroed() };
        let plugin = try_ffi!(boundary::plugin(plugin));
        let given = try_ffi!(boundary::account_as_given(account));
        let mut canonical;
        let account = if account::is_canonical(given) {
            given
        } else {
            canonical = [0u8; MAX_ACCOUNT_BYTES];
            account::canonical_in(given, &mut canonical)
        };
        let number = try_ffi!(boundary::string(number, "number"));
        let found = plugin.lookup(account, number, |hit| boundary::fill_contact(out, hit));
        match found {
            Some(()) => GiResult::GI_OK,
            None => GiResult::GI_NOT_FOUND,
        }
    })
}

/// Searches what a lookup on `account` can see (its own contacts, then its domain's, all
/// sources): one row per (contact, number), ordered by name, company, number, own first.
/// Skips `offset` rows, writes up to `cap` rows to `out`, the number written to `*count_out`
/// and the number that match in all to `*total_out` (both may be NULL; `out` may be NULL when
/// `cap` is 0, to count). Answers from memory, never waiting for a sync or the network.
/// `account` and `query` may be fields of the rows at `out`. A query longer than 256 bytes
/// (white space around it aside) is GI_ERR_INVALID_ARGUMENT.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub extern "C" fn gi_search_contacts(
    plugin: *mut GiPlugin,
    account: *const c_char,
    query: *const c_char,
    mode: GiSearchModeArg,
    offset: usize,
    out: *mut GiContact,
    cap: usize,
    count_out: *mut usize,
    total_out: *mut usize,
) -> GiResult {
    ffi_boundary!("gi_search_contacts", {
        boundary::put(count_out, 0);
        boundary::put(total_out, 0);
        let (account, query) = (
            boundary::Apart::from(account, out, cap),
            boundary::Apart::from(query, out, cap),
        );
        let plugin = try_ffi!(boundary::plugin(plugin));
        let account = try_ffi!(boundary::account(account.ptr()));
        let query = try_ffi!(boundary::string(query.ptr(), "query"));
        let keypad = try_ffi!(boundary::search_mode(mode));
        let rows = try_ffi!(boundary::contacts_out(out, cap));
        let mut written = 0;
        let total = try_ffi!(plugin.search(&account, query, keypad, offset, cap, |hit| {
            boundary::fill_contact(&mut rows[written], hit);
            written += 1;
        }));
        boundary::put(count_out, written);
        boundary::put(total_out, total);
        GiResult::GI_OK
    })
}

/// The account's presence from its calendar, from memory, at once: BUSY (`*until_out` = when
/// the busy stretch ends) or FREE (`*until_out` = when the next one starts, or 0); UNKNOWN
/// (0) when presence is off, not granted, not fetched yet or stale. `until_out` may be NULL.
/// A NULL or closed plugin or a bad account is GI_PRESENCE_UNKNOWN too, with gi_last_error
/// saying why.
#[no_mangle]
pub extern "C" fn gi_presence(
    plugin: *mut GiPlugin,
    account: *const c_char,
    until_out: *mut i64,
) -> GiPresence {
    ffi_boundary!("gi_presence", {
        boundary::put(until_out, 0);
        let checked = boundary::plugin_and_account(plugin, account);
        match checked {
            Ok((plugin, account)) => {
                let (presence, until) = plugin.presence(&account);
                boundary::put(until_out, until);
                presence.into()
            }
            Err(error) => {
                boundary::fail(&error);
                GiPresence::GI_PRESENCE_UNKNOWN
            }
        }
    })
}

/// Writes a consistent copy of the SQLite store to `path`, a new file (0600), while lookups
/// and syncs go on. An existing `path` is GI_ERR_STORAGE. The copy, put in another data_dir as
/// google-integration.sqlite3 beside the same token key, opens with every account connected.
#[no_mangle]
pub extern "C" fn gi_backup(plugin: *mut GiPlugin, path: *const c_char) -> GiResult {
    ffi_boundary!("gi_backup", {
        let plugin = try_ffi!(boundary::plugin(plugin));
        let path = try_ffi!(boundary::string(path, "path"));
        match plugin.backup(path) {
            Ok(()) => GiResult::GI_OK,
            Err(error) => boundary::fail(&error),
        }
    })
}

/// Routes the plugin's log to `cb` (levels: 1 error, 2 warn, 3 info, 4 debug, 5 trace).
/// NULL stops logging. `user` is handed back to every call and never read.
#[no_mangle]
pub extern "C" fn gi_set_logger(
    cb: Option<unsafe extern "C" fn(level: c_int, message: *const c_char, user: *mut c_void)>,
    user: *mut c_void,
) {
    ffi_boundary!("gi_set_logger", {
        logger::set(cb, user);
    })
}
