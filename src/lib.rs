//! Google Contacts caller ID for the Vodia PBX.
//!
//! The PBX loads this library and calls the C functions of `src/ffi` (declared in
//! `include/google_integration.h`). Behind them, plain safe Rust:
//! - `config`: the JSON configuration, resolved per domain;
//! - `oauth`: Google's OAuth 2.0 web-server flow with PKCE, refresh and revocation;
//! - `store`: the SQLite database of tokens, sync state and contacts;
//! - `people`: the People API's connections, and Google's person shape;
//! - `sync`: the background workers that keep every account's contacts current;
//! - `phone`: reading numbers (normalising stored ones, reading incoming ones fast);
//! - `index`: the in-memory caller-ID index that lookups read without locks;
//! - `plugin`: all of it together, as the host sees it.

pub mod account;
pub mod config;
pub mod contact;
pub mod error;
pub mod ffi;
pub mod index;
pub mod oauth;
pub mod people;
pub mod phone;
pub mod plugin;
pub mod store;
pub mod sync;
