//! Google Contacts caller ID for the Vodia PBX.
//!
//! The PBX loads this library and calls the C functions of `src/ffi` (declared in
//! `include/google_integration.h`). Behind them, plain safe Rust, each layer using only the
//! ones below it:
//! - `plugin`: the façade, as the host sees it;
//! - `sync`: the background workers that keep every account's contacts and calendar current;
//! - `core`: the state the façade and the workers share;
//! - `google`: the bounded HTTP client, OAuth 2.0, the People and Calendar APIs;
//! - `store`: what is persisted (SQLite, or PostgreSQL for a cluster), tokens sealed;
//! - `config`: the configuration, checked (with `book`'s sources and region rules);
//! - `book`: numbers, contacts and the in-memory caller-ID index lookups read;
//! - `presence`: each account's busy times from its calendar, in memory;
//! - `account`, `clock`, `error`: the words everything else uses.

pub mod account;
pub mod book;
pub mod clock;
pub mod config;
pub mod core;
pub mod error;
pub mod ffi;
pub mod google;
pub mod plugin;
pub mod presence;
pub mod store;
pub mod sync;
