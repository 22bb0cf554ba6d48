//! host-sim: the Vodia PBX's side of the Google Integration plugin, for integrators and tests.
//! `plugin` loads the cdylib exactly as the PBX does; `fake_google` is Google on loopback.

pub mod fake_google;
pub mod plugin;
