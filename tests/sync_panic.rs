//! A bug in a sync (a panic) must not leave the account "syncing" forever nor green: it
//! turns yellow with a reason, and the next good sync clears it. The panic is injected
//! through GI_DEBUG_PANIC_IN_SYNC, which only debug builds read. (Its own test binary: it
//! sets an environment variable.)

mod common;

use common::*;
use host_sim::fake_google::Person;

#[test]
fn a_panic_inside_a_sync_turns_the_account_yellow_and_clears_syncing() {
    let h = Harness::new();
    h.fake.set_contacts(
        ALICE,
        vec![Person::new("people/c1", "Ada", "Lovelace").with_phone("+1 212 555 0100", "mobile")],
    );
    let plugin = h.open();
    h.connect_and_sync(&plugin, "example.com", ALICE);
    // SAFETY: this test binary has no other test; the plugin reads the variable on its
    // sync threads, which are idle until sync_now below.
    unsafe { std::env::set_var("GI_DEBUG_PANIC_IN_SYNC", "example.com") };
    plugin.sync_now("example.com").unwrap();
    let mut status = serde_json::Value::Null;
    assert!(
        wait_until(PATIENCE, || {
            status = plugin.status_value("example.com");
            status["status"] == "issue"
        }),
        "the account turns yellow: {status}"
    );
    assert_eq!(status["syncing"], false, "{status}");
    assert!(
        status["reason"]
            .as_str()
            .unwrap_or("")
            .contains("internal error"),
        "{status}"
    );
    // The contacts of the last good sync still answer; the next sync turns it green.
    assert!(plugin
        .lookup("example.com", "+12125550100")
        .unwrap()
        .is_some());
    unsafe { std::env::remove_var("GI_DEBUG_PANIC_IN_SYNC") };
    plugin.sync_now("example.com").unwrap();
    assert!(wait_until(PATIENCE, || {
        plugin.status_value("example.com")["status"] == "connected"
    }));
}
