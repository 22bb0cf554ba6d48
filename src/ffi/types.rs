//! The C types of the contract, exactly as `include/google_integration.h` declares them.

#![allow(non_camel_case_types)]

use std::os::raw::c_char;

use arc_swap::ArcSwapOption;

use crate::core::Status;
use crate::error::ErrorKind;
use crate::plugin::Plugin;
use crate::presence::Presence;

/// The plugin. Opaque to the host; thread-safe; one per process is usual.
///
/// The handle outlives `gi_close`: closing takes the plugin out of it (waiting for calls in
/// flight), and the empty handle stays allocated, so a call with a stale pointer finds it
/// closed instead of freed memory.
pub struct GiPlugin {
    pub(crate) plugin: ArcSwapOption<Plugin>,
}

/// An account's connection, as the PBX page shows it.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GiStatus {
    /// Red X: no stored tokens.
    GI_STATUS_DISCONNECTED = 0,
    /// Green check: tokens stored and Google answering.
    GI_STATUS_CONNECTED = 1,
    /// Yellow !: a problem an administrator must act on; gi_status_json says which.
    GI_STATUS_ISSUE = 2,
}

/// The outcome of a call. Every failure also sets gi_last_error on the calling thread.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GiResult {
    GI_OK = 0,
    /// lookup: no contact for that number.
    GI_NOT_FOUND = 1,
    /// NULL where not allowed, bad UTF-8, bad account.
    GI_ERR_INVALID_ARGUMENT = 2,
    /// *len_out holds the length that is needed.
    GI_ERR_BUFFER_TOO_SMALL = 3,
    /// Unknown, expired, replayed or forged state.
    GI_ERR_STATE = 4,
    /// The user declined consent at Google.
    GI_ERR_DENIED = 5,
    /// Google refused (invalid_grant, 4xx, bad reply).
    GI_ERR_GOOGLE = 6,
    /// Google unreachable or timed out.
    GI_ERR_NETWORK = 7,
    /// The database failed.
    GI_ERR_STORAGE = 8,
    /// Bad configuration.
    GI_ERR_CONFIG = 9,
    /// A bug: a panic caught at the boundary.
    GI_ERR_INTERNAL = 10,
}

/// Who is calling. Every field is NUL-terminated and cut at a UTF-8 character boundary.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct GiContact {
    /// Display name.
    pub name: [c_char; 128],
    /// Organization, or "".
    pub company: [c_char; 128],
    /// Google's type of the number: "mobile", "work", ... or "".
    pub label: [c_char; 32],
    /// The stored number that matched, E.164 where known.
    pub number: [c_char; 32],
    /// The account whose contacts matched.
    pub account: [c_char; 256],
    /// "contacts", "directory" or "other_contacts".
    pub source: [c_char; 16],
    /// The contact's own Google labels (user contact groups), by name, sorted, joined with
    /// ", ", cut after a whole name; or "".
    pub groups: [c_char; 128],
}

/// An account's presence from its Google Calendar.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GiPresence {
    /// No calendar data, or too old.
    GI_PRESENCE_UNKNOWN = 0,
    GI_PRESENCE_FREE = 1,
    GI_PRESENCE_BUSY = 2,
}

impl From<Presence> for GiPresence {
    fn from(presence: Presence) -> GiPresence {
        match presence {
            Presence::Unknown => GiPresence::GI_PRESENCE_UNKNOWN,
            Presence::Free => GiPresence::GI_PRESENCE_FREE,
            Presence::Busy => GiPresence::GI_PRESENCE_BUSY,
        }
    }
}

/// `gi_search_contacts`' `mode` as the host passes it. A C enum may hold any value of its
/// integer type, and a Rust enum given a value it has no variant for is undefined behaviour:
/// so the function takes the integer and checks it. The header still declares the parameter
/// `GiSearchMode`, as the contract does (cbindgen.toml renames this type to it).
pub type GiSearchModeArg = std::os::raw::c_uint;

/// How gi_search_contacts reads its query.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GiSearchMode {
    /// Words (prefixes of the name, company or group words, case and accents ignored) and
    /// number digits.
    GI_SEARCH_TEXT = 0,
    /// Phone keypad digits 2-9 (ITU E.161): dial by name.
    GI_SEARCH_KEYPAD = 1,
}

impl From<ErrorKind> for GiResult {
    fn from(kind: ErrorKind) -> GiResult {
        match kind {
            ErrorKind::InvalidArgument => GiResult::GI_ERR_INVALID_ARGUMENT,
            ErrorKind::BufferTooSmall => GiResult::GI_ERR_BUFFER_TOO_SMALL,
            ErrorKind::State => GiResult::GI_ERR_STATE,
            ErrorKind::Denied => GiResult::GI_ERR_DENIED,
            ErrorKind::Google => GiResult::GI_ERR_GOOGLE,
            ErrorKind::Network => GiResult::GI_ERR_NETWORK,
            ErrorKind::Storage => GiResult::GI_ERR_STORAGE,
            ErrorKind::Config => GiResult::GI_ERR_CONFIG,
            ErrorKind::Internal => GiResult::GI_ERR_INTERNAL,
        }
    }
}

impl From<Status> for GiStatus {
    fn from(status: Status) -> GiStatus {
        match status {
            Status::Disconnected => GiStatus::GI_STATUS_DISCONNECTED,
            Status::Connected => GiStatus::GI_STATUS_CONNECTED,
            Status::Issue => GiStatus::GI_STATUS_ISSUE,
        }
    }
}
