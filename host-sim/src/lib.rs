//! host-sim: the Vodia PBX's side of the Google Integration plugin, for integrators and tests.
//! `plugin` loads the cdylib exactly as the PBX does; `fake_google` is Google on loopback.

pub mod fake_google;
pub mod pg;
pub mod plugin;

use fake_google::FakeGoogle;
use plugin::Plugin;

/// Escapes text for HTML, for the pages host-sim and its fake Google serve.
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The consent flow as a browser runs it, with the fake Google's programmatic Allow in place
/// of the click (the callback query it returns is exactly what the redirect carries). Returns
/// the account `gi_complete` connected.
pub fn connect_through_fake(
    plugin: &Plugin<'_>,
    fake: &FakeGoogle,
    account: &str,
    email: &str,
) -> Result<String, String> {
    let url = plugin
        .auth_url(account)
        .map_err(|e| format!("gi_auth_url({account}) failed: {}", e.message))?;
    let query = fake
        .approve(&url, email)
        .map_err(|e| format!("the fake Google refused the authorization URL: {e}"))?;
    plugin.complete(&query).map_err(|e| {
        format!(
            "gi_complete for {account} failed ({:?}): {}",
            e.code, e.message
        )
    })
}
