//! A node rebuilding a book from the store after another node's change, while its own sync of
//! the same book lands: that sync patched the book this node had, which lacked the other
//! node's change. The rebuild must not then give way to it, or the other node's change never
//! shows on this node (it hears no notice of its own syncs). The rebuild is held between
//! noting the book it replaces and reading the store through GI_DEBUG_REBUILD_DELAY_MS, which
//! only debug builds read. (Its own test binary: it sets an environment variable.)

mod common;

use common::*;
use host_sim::fake_google::Person;
use host_sim::plugin::Plugin;

const ACCOUNT: &str = "example.com/40";

fn name_on(plugin: &Plugin<'_>, number: &str) -> Option<String> {
    plugin.lookup(ACCOUNT, number).unwrap().map(|c| c.name)
}

fn holds() -> usize {
    logged_lines()
        .iter()
        .filter(|l| l.contains("GI_DEBUG_REBUILD_DELAY_MS holds"))
        .count()
}

#[test]
fn a_rebuild_that_an_own_sync_overtook_reads_the_store_again() {
    capture_logs();
    // SAFETY: set before any plugin is open, and this binary has no other test.
    unsafe { std::env::set_var("GI_DEBUG_REBUILD_DELAY_MS", "3000") };
    let h = Harness::on_postgres();
    h.fake.set_contacts(
        ALICE,
        vec![Person::new("people/c1", "Carol", "Customer").with_phone("+1 212 555 0101", "work")],
    );
    let a = h.open_with(&h.node_config("a"));
    let b = h.open_with(&h.node_config("b"));
    h.connect_and_sync(&a, ACCOUNT, ALICE);
    assert!(wait_until(PATIENCE, || name_on(&b, "+12125550101").is_some()));

    // Node B syncs a new contact; node A starts rebuilding its copy for it, and is held.
    h.fake.upsert_contact(
        ALICE,
        Person::new("people/c2", "Dan", "Dealer").with_phone("+1 212 555 0102", "work"),
    );
    let before = holds();
    b.sync_now(ACCOUNT).unwrap();
    assert!(
        wait_until(PATIENCE, || holds() > before),
        "node A never rebuilt"
    );

    // Meanwhile node A syncs the account itself: another change, patched into A's copy,
    // which has not got Dan yet.
    h.fake.upsert_contact(
        ALICE,
        Person::new("people/c3", "Erin", "Engineer").with_phone("+1 212 555 0103", "work"),
    );
    a.sync_now(ACCOUNT).unwrap();
    assert!(wait_until(PATIENCE, || name_on(&a, "+12125550103").is_some()));

    // Once the rebuild goes on, node A answers for both.
    assert!(
        wait_until(PATIENCE, || name_on(&a, "+12125550102").is_some()),
        "node B's contact never reached node A"
    );
    assert_eq!(
        name_on(&a, "+12125550103").as_deref(),
        Some("Erin Engineer")
    );
    assert_eq!(name_on(&b, "+12125550102").as_deref(), Some("Dan Dealer"));
}
