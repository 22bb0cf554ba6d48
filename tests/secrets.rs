//! No token, client secret, authorization code or PKCE verifier may appear in any log line,
//! error text or status JSON. This runs a whole connect / sync / refresh / failure / disable
//! cycle with the logger at trace level, then searches everything the host saw for every
//! secret that crossed the wire.

mod common;

use common::*;
use host_sim::fake_google::{Endpoint, Fault, Person};

#[test]
fn no_secret_reaches_a_log_line_an_error_or_the_status() {
    let api = api();
    capture_logs();

    let h = Harness::new();
    h.fake.set_contacts(
        ALICE,
        vec![Person::new("people/c1", "Dana", "Scully").with_phone("+1 212 555 0199", "mobile")],
    );
    let plugin = h.open();
    let mut seen: Vec<String> = Vec::new(); // every error text and status JSON the host got
    let mut callbacks: Vec<String> = Vec::new();

    // Connect, sync, and refresh after a 401.
    let url = plugin.auth_url("example.com").unwrap();
    let callback = h.fake.approve(&url, ALICE).unwrap();
    callbacks.push(callback.clone());
    plugin.complete(&callback).unwrap();
    wait_for_sync(&plugin, "example.com", 1);
    seen.push(plugin.status_json("example.com").unwrap());
    h.fake.expire_access_tokens();
    let before = h.fake.requests_to(Endpoint::People).len();
    plugin.sync_now("example.com").unwrap();
    seen.push(wait_for_people_requests(&h, &plugin, "example.com", before, 2).to_string());

    // Failures: a replayed code, a refused exchange, a denial, a dead grant.
    seen.push(plugin.complete(&callback).unwrap_err().message);
    let url = plugin.auth_url("example.com/40").unwrap();
    let refused = h.fake.approve(&url, BOB).unwrap();
    callbacks.push(refused.clone());
    h.fake.inject(Endpoint::Token, Fault::InvalidGrant);
    seen.push(plugin.complete(&refused).unwrap_err().message);
    let url = plugin.auth_url("example.com/41").unwrap();
    seen.push(
        plugin
            .complete(&h.fake.deny(&url).unwrap())
            .unwrap_err()
            .message,
    );
    h.fake.revoke_grants(ALICE);
    plugin.sync_now("example.com").unwrap();
    assert!(wait_until(PATIENCE, || plugin.status_value("example.com")
        ["status"]
        == "issue"));
    seen.push(plugin.status_json("example.com").unwrap());

    // Reconnect and disable.
    let url = plugin.auth_url("example.com").unwrap();
    let callback = h.fake.approve(&url, ALICE).unwrap();
    callbacks.push(callback.clone());
    plugin.complete(&callback).unwrap();
    wait_for_sync(&plugin, "example.com", 1);
    plugin.disable("example.com").unwrap();
    seen.push(plugin.status_json("example.com").unwrap());
    drop(plugin);
    unsafe { (api.gi_set_logger)(None, std::ptr::null_mut()) };

    // Every secret that crossed the wire.
    let mut secrets: Vec<String> = vec![CLIENT_SECRET.to_owned()];
    secrets.extend(callbacks.iter().filter_map(|c| param(c, "code")));
    for request in h.fake.requests() {
        for field in [
            "code",
            "code_verifier",
            "client_secret",
            "refresh_token",
            "token",
        ] {
            secrets.extend(request.form_param(field).map(str::to_owned));
        }
        if let Some(bearer) = request
            .header("authorization")
            .and_then(|a| a.strip_prefix("Bearer "))
        {
            secrets.push(bearer.to_owned());
        }
    }
    secrets.sort();
    secrets.dedup();
    assert!(
        secrets.len() >= 8,
        "the run exchanged codes, tokens and verifiers: {}",
        secrets.len()
    );

    let lines = logged_lines();
    assert!(lines.len() > 10, "the logger captured the run: {lines:?}");
    assert!(
        lines.iter().any(|l| l.starts_with("3 ")),
        "info lines arrive"
    );
    assert!(
        lines.iter().any(|l| l.contains("refreshed")),
        "debug lines arrive too"
    );
    for secret in &secrets {
        for line in &lines {
            assert!(
                !line.contains(secret.as_str()),
                "a secret leaked into the log: {line}"
            );
        }
        for text in &seen {
            assert!(
                !text.contains(secret.as_str()),
                "a secret leaked into what the host saw: {text}"
            );
        }
    }
}
