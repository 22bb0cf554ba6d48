//! Everything that speaks to Google: one bounded HTTP client (`http`: every reply capped in
//! size and every request in time, since Google's replies are untrusted input, and every
//! request within the plugin's request `budget`), OAuth 2.0
//! (`oauth`), the People API (`people`) and the Calendar API (`calendar`), whose failures `api`
//! sorts alike. Stateless: what must be kept goes to the store.

pub mod api;
pub mod budget;
pub mod calendar;
pub mod http;
pub mod oauth;
pub mod people;
