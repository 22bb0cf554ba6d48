//! PostgreSQL: the reply to a sync's COMMIT lost with the connection. The store has the sync
//! (and its sync token), the node's book does not, and the node hears no notice of its own
//! syncs: the next sync, incremental from that token, must rebuild the book from the store
//! rather than patch it, or what the lost sync brought never answers on this node. The loss
//! is injected through GI_DEBUG_LOSE_COMMIT_REPLY, which only debug builds read. (Its own
//! test binary: it sets an environment variable.)

mod common;

use serde_json::json;

use common::*;
use host_sim::fake_google::Person;
use host_sim::plugin::Plugin;

const ACCOUNT: &str = "example.com/40";
/// Its first landing's reply is lost: the source has no book yet.
const FIRST: &str = "first.example/40";
/// Its fourth commit's reply is lost: erasing the previous connection's directory.
const FORGET: &str = "forget.example/40";

/// Every test of this binary calls this first, before any plugin is open.
fn lose_commit_replies() {
    static SET: std::sync::Once = std::sync::Once::new();
    SET.call_once(|| {
        // SAFETY: set once, before any plugin of this process reads it (every test calls this
        // first, and the others wait here until it is set).
        unsafe {
            std::env::set_var(
                "GI_DEBUG_LOSE_COMMIT_REPLY",
                format!("{ACCOUNT}:2,{FIRST}:1,{FORGET}:4"),
            )
        };
    });
}

fn name_on(plugin: &Plugin<'_>, number: &str) -> Option<String> {
    plugin.lookup(ACCOUNT, number).unwrap().map(|c| c.name)
}

#[test]
fn a_sync_whose_commit_reply_was_lost_is_followed_by_a_rebuild_not_a_patch() {
    lose_commit_replies();
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

/// The same for a source's first landing: there is no book to mark, and the next sync, with
/// nothing new at Google, found nothing changed and kept "the index in memory", which was
/// none: every number of that source was not found on this node until a contact of it
/// changed at Google or the plugin restarted.
#[test]
fn a_first_landing_whose_commit_reply_was_lost_is_followed_by_a_build() {
    lose_commit_replies();
    let h = Harness::on_postgres();
    h.fake.set_contacts(
        ALICE,
        vec![Person::new("people/c1", "Carol", "Customer").with_phone("+1 212 555 0111", "work")],
    );
    h.fake.set_other_contacts(
        ALICE,
        vec![
            Person::new("otherContacts/c1", "Oscar", "Other").with_phone("+1 212 555 0112", "work")
        ],
    );
    let mut config = h.config();
    config["sources"] = json!(["contacts", "other_contacts"]);
    let plugin = h.open_with(&config);
    h.connect(&plugin, FIRST, ALICE);
    let status = wait_for_sync(&plugin, FIRST, 1);
    assert!(
        status["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("COMMIT")),
        "one source's first landing lost its reply: {status}"
    );
    assert_eq!(
        store_number(&h, "SELECT count(*) FROM contacts"),
        2,
        "both committed"
    );
    // Nothing new at Google: both sources' syncs are incremental and bring nothing.
    plugin.sync_now(FIRST).unwrap();
    let answers = |number: &str| plugin.lookup(FIRST, number).unwrap().is_some();
    assert!(
        wait_until(PATIENCE, || answers("+12125550111")
            && answers("+12125550112")),
        "{}",
        plugin.status_value(FIRST)
    );
}

/// A reconnect as a Google account outside Workspace erases the directory the previous one
/// synced; the reply to that erasure's COMMIT lost, no later call found anything to erase,
/// and this node went on answering with the previous user's colleagues.
#[test]
fn an_erasure_whose_commit_reply_was_lost_still_leaves_memory() {
    lose_commit_replies();
    let h = Harness::on_postgres();
    seed_a_colleague_and_a_consumer(&h);
    let mut config = h.config();
    config["sources"] = json!(["contacts", "directory"]);
    let plugin = h.open_with(&config);
    // Commits 1 and 2: the contacts and the directory.
    h.connect_and_sync(&plugin, FORGET, ALICE);
    assert!(plugin.lookup(FORGET, COLLEAGUE).unwrap().is_some());
    // Commit 3: Carol's contacts; 4: the erasure of Alice's directory, its reply lost.
    let url = plugin.auth_url(FORGET).unwrap();
    plugin
        .complete(&h.fake.approve(&url, CONSUMER).unwrap())
        .unwrap();
    assert!(
        wait_until(PATIENCE, || {
            let status = plugin.status_value(FORGET);
            status["status"] == "issue" && status["syncing"] == false
        }),
        "{}",
        plugin.status_value(FORGET)
    );
    assert_eq!(
        plugin.lookup(FORGET, COLLEAGUE).unwrap().map(|c| c.name),
        None,
        "the previous user's colleague"
    );
}
