//! PostgreSQL: the reply to a sync's COMMIT lost with the connection. The store has the sync
//! (and its sync token), the node's book does not, and the node hears no notice of its own
//! syncs: the next sync, incremental from that token, must rebuild the book from the store
//! rather than patch it, or what the lost sync brought never answers on this node. The loss
//! is injected through GI_DEBUG_LOSE_COMMIT_REPLY, which only debug builds read. (Its own
//! test binary: it sets an environment variable.)

mod common;

use common::*;
use host_sim::fake_google::Person;
use host_sim::plugin::Plugin;

const ACCOUNT: &str = "example.com/40";

fn name_on(plugin: &Plugin<'_>, number: &str) -> Option<String> {
    plugin.lookup(ACCOUNT, number).unwrap().map(|c| c.name)
}

#[test]
fn a_sync_whose_commit_reply_was_lost_is_followed_by_a_rebuild_not_a_patch() {
    // SAFETY: set before any plugin is open, and this binary has no other test.
    unsafe { std::env::set_var("GI_DEBUG_LOSE_COMMIT_REPLY", ACCOUNT) };
    let h = Harness::on_postgres();
    h.fake.set_contacts(
        ALICE,
        vec![Person::new("people/c1", "Carol", "Customer").with_phone("+1 212 555 0101", "work")],
    );
    let plugin = h.open();
    h.connect_and_sync(&plugin, ACCOUNT, ALICE);
    assert!(name_on(&plugin, "+12125550101").is_some());

    // The second sync commits Dan, but its reply is lost: the sync fails.
    h.fake.upsert_contact(
        ALICE,
        Person::new("people/c2", "Dan", "Dealer").with_phone("+1 212 555 0102", "work"),
    );
    plugin.sync_now(ACCOUNT).unwrap();
    assert!(
        wait_until(PATIENCE, || plugin.status_value(ACCOUNT)["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("COMMIT"))),
        "{}",
        plugin.status_value(ACCOUNT)
    );
    assert_eq!(
        store_number(&h, "SELECT count(*) FROM contacts"),
        2,
        "committed"
    );

    // The next sync brings Erin, incrementally from the token the lost sync stored.
    h.fake.upsert_contact(
        ALICE,
        Person::new("people/c3", "Erin", "Engineer").with_phone("+1 212 555 0103", "work"),
    );
    plugin.sync_now(ACCOUNT).unwrap();
    assert!(wait_until(PATIENCE, || name_on(&plugin, "+12125550103").is_some()));
    assert_eq!(
        name_on(&plugin, "+12125550102").as_deref(),
        Some("Dan Dealer"),
        "what the lost sync brought answers too"
    );
    assert_eq!(plugin.status_value(ACCOUNT)["contacts"], 3);
}
