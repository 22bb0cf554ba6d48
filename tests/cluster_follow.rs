//! A follower that reads another node's changes late (busy with a large book, or retrying
//! after the store was out of reach) sees several at once. An account disabled and connected
//! again meanwhile, to another Google user, must not keep the disabled connection's contacts
//! on that node. The delay is injected through GI_DEBUG_FOLLOW_DELAY_MS, which only debug
//! builds read. (Its own test binary: it sets an environment variable.)

mod common;

use common::*;
use host_sim::fake_google::Person;
use host_sim::plugin::{GiStatus, Plugin};

const ACCOUNT: &str = "example.com/40";
const CAROL: &str = "+12125550101";

fn name_on(plugin: &Plugin<'_>, number: &str) -> Option<String> {
    plugin.lookup(ACCOUNT, number).unwrap().map(|c| c.name)
}

#[test]
fn an_account_disabled_and_connected_again_while_a_follower_lags_drops_the_old_contacts() {
    // SAFETY: set before any plugin is open, and this binary has no other test.
    unsafe { std::env::set_var("GI_DEBUG_FOLLOW_DELAY_MS", "1500") };
    let h = Harness::on_postgres();
    h.fake.set_contacts(
        ALICE,
        vec![Person::new("people/c1", "Carol", "Customer").with_phone("+1 212 555 0101", "work")],
    );
    h.fake.set_contacts(BOB, Vec::new());
    let a = h.open_with(&h.node_config("a"));
    let b = h.open_with(&h.node_config("b"));
    h.connect_and_sync(&a, ACCOUNT, ALICE);
    assert!(wait_until(PATIENCE, || name_on(&b, CAROL).is_some()));

    // Within node B's delay: disabled, and connected again as a Google user with no contacts,
    // whose first sync lands nothing.
    a.disable(ACCOUNT).unwrap();
    h.connect_and_sync(&a, ACCOUNT, BOB);
    assert_eq!(name_on(&a, CAROL), None);

    // Node B learns of the new connection; Alice's contacts must not answer there.
    assert!(wait_until(PATIENCE, || {
        let status = b.status_value(ACCOUNT);
        b.status(ACCOUNT) == GiStatus::GI_STATUS_CONNECTED && status["last_sync"].is_string()
    }));
    assert!(
        wait_until(PATIENCE, || name_on(&b, CAROL).is_none()),
        "node B still answers with the disabled connection's contact: {:?}",
        name_on(&b, CAROL)
    );
    let (_, total) = b
        .search(
            ACCOUNT,
            "",
            host_sim::plugin::GiSearchMode::GI_SEARCH_TEXT,
            0,
            10,
        )
        .unwrap();
    assert_eq!(total, 0, "nor does its address book show them");
}
