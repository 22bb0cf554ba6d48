//! Two connects of one account at once (an administrator who finished two consent popups, or
//! two administrators) must leave the plugin on one connection: the one the store holds. When
//! the first to be stored reached memory last, memory kept the replaced connection: syncs
//! found no tokens under it, and "Disable" found nothing to erase, so it neither revoked the
//! grant nor erased the tokens and contacts, yet returned GI_OK. The first connect is held
//! between the store and memory through GI_DEBUG_CONNECT_DELAY_MS, which only debug builds
//! read. (Its own test binary: it sets an environment variable.)

mod common;

use common::*;
use host_sim::fake_google::Person;
use host_sim::plugin::GiStatus;

const ACCOUNT: &str = "race.example/40";

#[test]
fn two_connects_at_once_leave_the_account_on_the_stored_connection_and_disable_erases_it() {
    capture_logs();
    // SAFETY: set before any plugin is open, and this binary has no other test.
    unsafe { std::env::set_var("GI_DEBUG_CONNECT_DELAY_MS", "1500") };
    let h = Harness::new();
    h.fake.set_contacts(
        ALICE,
        vec![Person::new("people/a1", "Ada", "Alice").with_phone("+1 212 555 0101", "work")],
    );
    h.fake.set_contacts(
        BOB,
        vec![Person::new("people/b1", "Ben", "Bob").with_phone("+1 212 555 0102", "work")],
    );
    let plugin = h.open();

    // Two popups: both consents given before either redirect reaches the plugin.
    let first = plugin.auth_url(ACCOUNT).unwrap();
    let second = plugin.auth_url(ACCOUNT).unwrap();
    let first = h.fake.approve(&first, ALICE).unwrap();
    let second = h.fake.approve(&second, BOB).unwrap();

    std::thread::scope(|scope| {
        let held = scope.spawn(|| plugin.complete(&first));
        // The first connect is stored and held before memory has it; the second runs now.
        assert!(
            wait_until(PATIENCE, || logged_lines()
                .iter()
                .any(|l| l.contains("GI_DEBUG_CONNECT_DELAY_MS holds"))),
            "the first connect never reached the hook: {:#?}",
            logged_lines()
        );
        plugin.complete(&second).unwrap();
        held.join().unwrap().unwrap();
    });

    // Whichever connection the store kept, memory and syncs are on it: its contact answers.
    let status = wait_for_sync(&plugin, ACCOUNT, 1);
    assert_eq!(status["last_error"], serde_json::Value::Null, "{status}");
    let answered = ["+12125550101", "+12125550102"]
        .iter()
        .filter(|n| plugin.lookup(ACCOUNT, n).unwrap().is_some())
        .count();
    assert_eq!(
        answered, 1,
        "the synced connection's contact answers: {status}"
    );

    // Disable revokes that connection's grant and erases what the plugin kept.
    let live = |email| h.fake.live_refresh_tokens(email);
    assert_eq!(live(ALICE) + live(BOB), 2);
    plugin.disable(ACCOUNT).unwrap();
    assert_eq!(plugin.status(ACCOUNT), GiStatus::GI_STATUS_DISCONNECTED);
    assert_eq!(
        h.fake.revoked_tokens().len(),
        1,
        "the stored connection's grant is revoked"
    );
    assert_eq!(plugin.lookup(ACCOUNT, "+12125550101").unwrap(), None);
    assert_eq!(plugin.lookup(ACCOUNT, "+12125550102").unwrap(), None);
    drop(plugin);
    let reopened = h.open();
    assert_eq!(
        reopened.status(ACCOUNT),
        GiStatus::GI_STATUS_DISCONNECTED,
        "nothing of the account is left in the store"
    );
}
