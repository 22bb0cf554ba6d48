//! A bug in building the stored accounts' indexes at gi_open (a panic) must fail the open with
//! a message, in the plugin's log and not the PBX's stderr, and must not hang it: with every
//! builder thread gone, the store's reader waited for ever on a full channel. The panic is
//! injected through GI_DEBUG_PANIC_IN_OPEN, which only debug builds read. (Its own test
//! binary: it sets an environment variable.)

mod common;

use std::time::Duration;

use common::*;
use host_sim::fake_google::Person;

/// More stored books than the builders (at most 4) and their channel (twice as many) hold.
const ACCOUNTS: usize = 16;

#[test]
fn a_panic_while_building_the_stored_indexes_fails_gi_open_without_hanging() {
    capture_logs();
    let h = Harness::new();
    h.fake.set_contacts(
        ALICE,
        vec![Person::new("people/c1", "Ada", "Lovelace").with_phone("+1 212 555 0100", "mobile")],
    );
    let config = h.config();
    let plugin = h.open_with(&config);
    for n in 0..ACCOUNTS {
        h.connect_and_sync(&plugin, &format!("example.com/{n}"), ALICE);
    }
    drop(plugin);

    // SAFETY: this test binary has no other test, and no plugin is open: nothing else reads
    // the environment meanwhile.
    unsafe { std::env::set_var("GI_DEBUG_PANIC_IN_OPEN", "*") };
    let (done, opened) = std::sync::mpsc::channel();
    let json = config.to_string();
    std::thread::spawn(move || {
        let outcome = host_sim::plugin::Plugin::open(api(), &json).map(drop);
        let _ = done.send(outcome);
    });
    let outcome = opened
        .recv_timeout(Duration::from_secs(60))
        .expect("gi_open hung after its index builders panicked");
    unsafe { std::env::remove_var("GI_DEBUG_PANIC_IN_OPEN") };
    let error = outcome.expect_err("gi_open must fail when an index cannot be built");
    assert!(
        error.message.contains("building the caller-ID index") && error.message.contains("bug"),
        "{}",
        error.message
    );
    assert!(
        logged_lines()
            .iter()
            .any(|l| l.contains("the plugin panicked at")),
        "the panic goes to the plugin's log, as the plugin's own: {:#?}",
        logged_lines()
    );

    // Without the bug the same store opens, and its contacts answer.
    let plugin = h.open_with(&config);
    for n in [0, ACCOUNTS - 1] {
        assert!(plugin
            .lookup(&format!("example.com/{n}"), "+12125550100")
            .unwrap()
            .is_some());
    }
}
