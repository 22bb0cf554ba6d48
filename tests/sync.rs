//! Contact sync through the C ABI against the fake People API: full and incremental syncs,
//! paging, expired sync tokens, token refresh, every failure the contract names, and the
//! guarantee that a failed sync changes nothing.

mod common;

use std::time::Duration;

use common::*;
use host_sim::fake_google::{Endpoint, Fault, Person};
use host_sim::plugin::{GiSearchMode, GiStatus, Plugin};
use serde_json::{json, Value};

const ACCOUNT: &str = "example.com";

fn people(prefix: &str, count: usize) -> Vec<Person> {
    (0..count)
        .map(|i| {
            Person::new(
                &format!("people/c{}", 1000 + i),
                prefix,
                &format!("Person{i:03}"),
            )
            .with_company("Example Corp")
            .with_phone(&format!("(212) 555-{:04}", 1000 + i), "mobile")
        })
        .collect()
}

fn number(i: usize) -> String {
    format!("+1212555{:04}", 1000 + i)
}

fn name(plugin: &host_sim::plugin::Plugin<'_>, account: &str, number: &str) -> Option<String> {
    plugin
        .lookup(account, number)
        .expect("lookup")
        .map(|c| c.name)
}

fn people_requests(h: &Harness) -> Vec<host_sim::fake_google::Request> {
    h.fake.requests_to(Endpoint::People)
}

#[test]
fn the_first_sync_follows_every_page_and_asks_for_a_sync_token() {
    let h = Harness::new();
    h.fake.set_contacts(ALICE, people("Alice's", 7));
    h.fake.set_page_size_cap(3);
    let plugin = h.open();
    h.connect_and_sync(&plugin, ACCOUNT, ALICE);
    let status = plugin.status_value(ACCOUNT);
    assert_eq!(status["contacts"], 7, "{status}");
    assert_eq!(status["numbers"], 7);
    assert_eq!(status["status"], "connected");
    assert!(
        status["last_sync"].as_str().unwrap().contains('T'),
        "RFC 3339: {status}"
    );
    let requests = people_requests(&h);
    assert_eq!(requests.len(), 3, "7 people in pages of 3");
    for r in &requests {
        assert_eq!(r.path, "/v1/people/me/connections");
        assert_eq!(
            r.query_param("personFields"),
            Some("names,phoneNumbers,organizations,emailAddresses,memberships,metadata")
        );
        assert_eq!(r.query_param("pageSize"), Some("1000"));
        assert_eq!(r.query_param("requestSyncToken"), Some("true"));
        assert_eq!(r.query_param("syncToken"), None);
    }
    assert!(requests[1].query_param("pageToken").is_some());
    for i in 0..7 {
        assert_eq!(
            name(&plugin, ACCOUNT, &number(i)),
            Some(format!("Alice's Person{i:03}"))
        );
    }
}

#[test]
fn an_incremental_sync_applies_changes_and_deletions_only() {
    let h = Harness::new();
    h.fake.set_contacts(ALICE, people("A", 5));
    let plugin = h.open();
    h.connect_and_sync(&plugin, ACCOUNT, ALICE);
    let before = people_requests(&h).len();

    h.fake.delete_contact(ALICE, "people/c1000");
    h.fake.upsert_contact(
        ALICE,
        Person::new("people/c1001", "Renamed", "One").with_phone("+1 212 555 9999", "work"),
    );
    h.fake.upsert_contact(
        ALICE,
        Person::new("people/c2000", "Brand", "New").with_phone("212.555.8888", "home"),
    );
    plugin.sync_now(ACCOUNT).unwrap();
    let status = wait_for_people_requests(&h, &plugin, ACCOUNT, before, 1);
    let incremental = &people_requests(&h)[before];
    assert!(
        incremental.query_param("syncToken").is_some(),
        "the stored sync token is sent"
    );

    assert_eq!(name(&plugin, ACCOUNT, &number(0)), None, "deleted");
    assert_eq!(
        name(&plugin, ACCOUNT, &number(1)),
        None,
        "its old number is gone"
    );
    assert_eq!(
        name(&plugin, ACCOUNT, "+12125559999").as_deref(),
        Some("Renamed One")
    );
    assert_eq!(
        name(&plugin, ACCOUNT, "+12125558888").as_deref(),
        Some("Brand New")
    );
    assert_eq!(
        name(&plugin, ACCOUNT, &number(4)).as_deref(),
        Some("A Person004"),
        "untouched"
    );
    assert_eq!(status["contacts"], 5, "{status}");
}

/// Google serves a sync token only with the request that earned it, and people unchanged since
/// keep what they were fetched with. A token earned asking for other fields (an older
/// release's: 0.1 asked for no memberships or email addresses) is not sent: the source syncs
/// in full once, then incrementally again.
#[test]
fn a_sync_token_earned_asking_for_other_fields_is_not_sent_and_the_source_syncs_in_full_once() {
    // An account of its own: other tests of this binary wait for log lines naming theirs.
    const FIELDS_ACCOUNT: &str = "fields.example/40";
    let h = Harness::new();
    h.fake.set_contacts(ALICE, people("Fields", 3));
    let plugin = h.open();
    h.connect_and_sync(&plugin, FIELDS_ACCOUNT, ALICE);
    drop(plugin);
    // As an upgrade from 0.1 leaves the store: the token kept, what it was asked with unknown.
    store_query(&h, "UPDATE sources SET sync_asked = NULL");
    let plugin = h.open();
    let (incremental, status) = sync_now_and_see(&h, &plugin, FIELDS_ACCOUNT);
    assert!(!incremental, "a full sync");
    assert_eq!(status["last_error"], serde_json::Value::Null, "{status}");
    assert_eq!(status["contacts"], 3, "{status}");
    let (incremental, _) = sync_now_and_see(&h, &plugin, FIELDS_ACCOUNT);
    assert!(incremental, "incremental again");
}

/// Sync now and wait for its first People request: whether it sent a sync token (an
/// incremental sync), and the status once the account is idle.
fn sync_now_and_see(h: &Harness, plugin: &Plugin<'_>, account: &str) -> (bool, Value) {
    let before = people_requests(h).len();
    plugin.sync_now(account).unwrap();
    let status = wait_for_people_requests(h, plugin, account, before, 1);
    let incremental = people_requests(h)[before]
        .query_param("syncToken")
        .is_some();
    (incremental, status)
}

/// A number Google gave no `canonicalForm` is read in the account's region when it is synced,
/// and only its reading is stored. After the administrator corrects the region, an
/// incremental sync brings only changed people: the others would keep the old country's
/// reading for good, answering that country's calls and not the ones they make. The region is
/// kept with the sync token, and a change of it syncs the source in full once.
#[test]
fn a_changed_region_reads_every_stored_number_again_with_one_full_sync() {
    // An account of its own: other tests of this binary wait for log lines naming theirs.
    const REGION_ACCOUNT: &str = "region.example/40";
    let h = Harness::new();
    h.fake.set_contacts(
        ALICE,
        vec![Person::new("people/c1", "Sherlock", "Holmes").with_phone("2079460958", "home")],
    );
    let plugin = h.open();
    h.connect_and_sync(&plugin, REGION_ACCOUNT, ALICE);
    let name_of = |plugin: &Plugin<'_>, number: &str| {
        plugin
            .lookup(REGION_ACCOUNT, number)
            .unwrap()
            .map(|c| c.name)
    };
    // Read in the US (the configuration's mistake), 2079460958 is a number in Maine.
    assert_eq!(
        name_of(&plugin, "+12079460958").as_deref(),
        Some("Sherlock Holmes")
    );
    assert_eq!(name_of(&plugin, "+442079460958"), None);
    drop(plugin);

    let mut config = h.config();
    config["default_region"] = json!("GB");
    let plugin = h.open_with(&config);
    let (incremental, status) = sync_now_and_see(&h, &plugin, REGION_ACCOUNT);
    assert!(!incremental, "a full sync after the region changed");
    assert_eq!(status["last_error"], serde_json::Value::Null, "{status}");
    assert_eq!(
        name_of(&plugin, "+442079460958").as_deref(),
        Some("Sherlock Holmes"),
        "read in GB now"
    );
    assert_eq!(
        name_of(&plugin, "020 7946 0958").as_deref(),
        Some("Sherlock Holmes")
    );
    assert_eq!(
        name_of(&plugin, "+12079460958"),
        None,
        "Maine is not London"
    );

    // The same region again: incremental, as before.
    let (incremental, _) = sync_now_and_see(&h, &plugin, REGION_ACCOUNT);
    assert!(incremental, "incremental again");
    drop(plugin);
    // And after a restart with it: still read in GB, from the store.
    let plugin = h.open_with(&config);
    assert_eq!(
        name_of(&plugin, "+442079460958").as_deref(),
        Some("Sherlock Holmes")
    );
}

/// A NUL in any text Google sends (JSON's `\u0000`: a hostile or broken reply). PostgreSQL's
/// text refuses it, so every commit of the account's sync failed, each time; SQLite kept it,
/// and the PBX's C strings ended there ("Ann" for "Ann\0a Lee"). It is read as U+FFFD.
#[test]
fn a_nul_in_the_text_google_sends_is_read_as_a_replacement_character() {
    // An account of its own: other tests of this binary wait for log lines naming theirs.
    const NUL_ACCOUNT: &str = "nul.example/40";
    let h = Harness::new();
    h.fake.set_contacts(
        ALICE,
        vec![
            Person::new("people/c1", "Ann\u{0}a", "Lee")
                .with_company("Acme\u{0}Corp")
                .with_phone("+1 212 555 0111", "mo\u{0}bile")
                .with_group("Cust\u{0}omers"),
            Person::new("people/c2", "Bob", "Two").with_phone("+1 212 555 0122", "work"),
        ],
    );
    let plugin = h.open();
    h.connect_and_sync(&plugin, NUL_ACCOUNT, ALICE);
    let check = |plugin: &Plugin<'_>| {
        let status = plugin.status_value(NUL_ACCOUNT);
        assert_eq!(status["last_error"], serde_json::Value::Null, "{status}");
        assert_eq!(status["contacts"], 2, "{status}");
        let caller = plugin.lookup(NUL_ACCOUNT, "+12125550111").unwrap().unwrap();
        assert_eq!(caller.name, "Ann\u{fffd}a Lee");
        assert_eq!(caller.company, "Acme\u{fffd}Corp");
        assert_eq!(caller.label, "mo\u{fffd}bile");
        assert_eq!(caller.groups, "Cust\u{fffd}omers");
    };
    check(&plugin);
    drop(plugin);
    let plugin = h.open();
    check(&plugin);
}

#[test]
fn an_incremental_sync_that_brings_nothing_writes_only_its_token_and_keeps_the_index() {
    capture_logs();
    let h = Harness::new();
    h.fake.set_contacts(ALICE, people("Quiet", 5));
    let plugin = h.open();
    h.connect_and_sync(&plugin, ACCOUNT, ALICE);
    let before = people_requests(&h).len();
    let first_sync = plugin.status_value(ACCOUNT)["last_sync"].clone();

    plugin.sync_now(ACCOUNT).unwrap();
    let status = wait_for_people_requests(&h, &plugin, ACCOUNT, before, 1);
    assert!(people_requests(&h)[before]
        .query_param("syncToken")
        .is_some());
    let kept = |lines: &[String]| {
        lines
            .iter()
            .any(|l| l.contains("incremental sync: 0 changed") && l.contains("the index is kept"))
    };
    assert!(
        wait_until(PATIENCE, || kept(&logged_lines())),
        "no sync said it kept the index: {:?}",
        logged_lines()
            .iter()
            .filter(|l| l.contains("sync"))
            .collect::<Vec<_>>()
    );
    // The state is the same, and the sync counts as one (its time and token are stored).
    assert_eq!(status["contacts"], 5, "{status}");
    assert_eq!(status["status"], "connected", "{status}");
    assert!(status["last_sync"].as_str() >= first_sync.as_str());
    assert_eq!(
        name(&plugin, ACCOUNT, &number(3)).as_deref(),
        Some("Quiet Person003")
    );
    // (A renamed group alone is a change, and rebuilds: tests/search.rs shows the new name.)
    drop(plugin);
    let plugin = h.open();
    assert_eq!(
        name(&plugin, ACCOUNT, &number(3)).as_deref(),
        Some("Quiet Person003"),
        "the token written alone leaves the stored contacts whole"
    );
}

#[test]
fn an_expired_sync_token_triggers_one_clean_full_sync() {
    // Google's documented message, without the ErrorInfo that names the reason: it was kept
    // and sent again at every sync, failing each time.
    let without_reason = Fault::Raw {
        status: 400,
        headers: Vec::new(),
        body: r#"{"error":{"code":400,"message":"Sync token is expired. Clear local cache and retry call without the sync token.","status":"FAILED_PRECONDITION"}}"#.into(),
    };
    for fault in [None, Some(Fault::Gone), Some(without_reason)] {
        let h = Harness::new();
        h.fake.set_contacts(ALICE, people("A", 3));
        let plugin = h.open();
        h.connect_and_sync(&plugin, ACCOUNT, ALICE);
        h.fake.set_contacts(ALICE, people("B", 2));
        match &fault {
            None => h.fake.expire_sync_tokens(ALICE),
            Some(f) => h.fake.inject(Endpoint::People, f.clone()),
        }
        let before = people_requests(&h).len();
        plugin.sync_now(ACCOUNT).unwrap();
        let status = wait_for_people_requests(&h, &plugin, ACCOUNT, before, 2);
        let requests = people_requests(&h);
        assert!(requests[before].query_param("syncToken").is_some());
        assert_eq!(
            requests[before].status,
            if matches!(fault, Some(Fault::Gone)) {
                410
            } else {
                400
            }
        );
        assert_eq!(
            requests[before + 1].query_param("syncToken"),
            None,
            "then a full sync"
        );
        assert_eq!(status["status"], "connected", "{status}");
        assert_eq!(status["contacts"], 2);
        assert_eq!(
            name(&plugin, ACCOUNT, &number(2)),
            None,
            "the full sync replaced everything"
        );
        assert_eq!(
            name(&plugin, ACCOUNT, &number(1)).as_deref(),
            Some("B Person001")
        );
    }
}

/// The store's contact ids by resource name (read with the plugin closed).
fn stored_ids(h: &Harness) -> Vec<(String, i64)> {
    store_query(
        h,
        "SELECT resource_name, id FROM contacts ORDER BY resource_name",
    )
    .into_iter()
    .map(|row| (row[0].clone(), row[1].parse().unwrap()))
    .collect()
}

#[test]
fn a_full_sync_writes_only_what_differs_from_the_store() {
    capture_logs();
    let h = Harness::new();
    h.fake.set_contacts(ALICE, people("A", 5));
    let plugin = h.open();
    h.connect_and_sync(&plugin, ACCOUNT, ALICE);
    drop(plugin);
    let first = stored_ids(&h);
    assert_eq!(first.len(), 5);

    // Google expires the token and sends the same book in full: no contact row is touched,
    // and the index stays.
    let plugin = h.open();
    h.fake.expire_sync_tokens(ALICE);
    let logged = logged_lines().len();
    let before = people_requests(&h).len();
    plugin.sync_now(ACCOUNT).unwrap();
    wait_for_people_requests(&h, &plugin, ACCOUNT, before, 2);
    let said: Vec<String> = logged_lines()[logged..]
        .iter()
        .filter(|l| l.contains(&format!("account {ACCOUNT}: contacts: full sync")))
        .cloned()
        .collect();
    assert!(
        said.len() == 1 && said[0].contains("the index is kept"),
        "{said:#?}"
    );
    drop(plugin);
    assert_eq!(stored_ids(&h), first, "unchanged contacts keep their rows");

    // One changed and one gone at Google: only those rows change.
    let mut changed = people("A", 5);
    changed[2].display = "Changed Person".into();
    changed.remove(4);
    h.fake.set_contacts(ALICE, changed);
    h.fake.expire_sync_tokens(ALICE);
    let plugin = h.open();
    let before = people_requests(&h).len();
    plugin.sync_now(ACCOUNT).unwrap();
    wait_for_people_requests(&h, &plugin, ACCOUNT, before, 2);
    assert_eq!(
        name(&plugin, ACCOUNT, &number(2)).as_deref(),
        Some("Changed Person")
    );
    assert_eq!(name(&plugin, ACCOUNT, &number(4)), None);
    assert_eq!(
        name(&plugin, ACCOUNT, &number(1)).as_deref(),
        Some("A Person001")
    );
    drop(plugin);
    let after = stored_ids(&h);
    assert_eq!(after.len(), 4);
    for (resource, id) in &after {
        let was = first.iter().find(|(r, _)| r == resource).unwrap().1;
        if resource == &first[2].0 {
            assert_ne!(*id, was, "the changed contact was rewritten");
        } else {
            assert_eq!(*id, was, "{resource} kept its row");
        }
    }
}

#[test]
fn a_401_refreshes_the_access_token_once_and_keeps_the_refresh_token() {
    let h = Harness::new();
    h.fake.set_contacts(ALICE, people("A", 2));
    let plugin = h.open();
    h.connect_and_sync(&plugin, ACCOUNT, ALICE);
    drop(plugin);
    let (refresh_before, access_before) = stored_tokens(&h);
    let plugin = h.open();

    h.fake.expire_access_tokens();
    let before = people_requests(&h).len();
    plugin.sync_now(ACCOUNT).unwrap();
    let status = wait_for_people_requests(&h, &plugin, ACCOUNT, before, 2);
    assert_eq!(status["status"], "connected", "{status}");
    let refreshes: Vec<_> = h
        .fake
        .requests_to(Endpoint::Token)
        .into_iter()
        .filter(|r| r.form_param("grant_type") == Some("refresh_token"))
        .collect();
    assert_eq!(refreshes.len(), 1);
    assert_eq!(people_requests(&h)[before].status, 401);
    drop(plugin);
    let (refresh_after, access_after) = stored_tokens(&h);
    assert_eq!(
        refresh_after, refresh_before,
        "Google does not resend it: the old one is kept"
    );
    assert_ne!(
        access_after, access_before,
        "the new access token is stored"
    );
}

#[test]
fn a_revoked_grant_turns_the_status_yellow_and_keeps_the_contacts() {
    let h = Harness::new();
    h.fake.set_contacts(ALICE, people("A", 2));
    let plugin = h.open();
    h.connect_and_sync(&plugin, ACCOUNT, ALICE);
    h.fake.revoke_grants(ALICE);
    plugin.sync_now(ACCOUNT).unwrap();
    assert!(wait_until(PATIENCE, || plugin.status(ACCOUNT)
        == GiStatus::GI_STATUS_ISSUE));
    let status = plugin.status_value(ACCOUNT);
    let reason = status["reason"].as_str().unwrap();
    assert!(
        reason.contains("invalid_grant") && reason.contains("Get auth code"),
        "{reason}"
    );
    assert!(
        reason.contains("Testing"),
        "names the 7-day testing expiry: {reason}"
    );
    assert_eq!(
        name(&plugin, ACCOUNT, &number(1)).as_deref(),
        Some("A Person001"),
        "lookups go on"
    );

    // Reconnecting turns it green again.
    h.connect(&plugin, ACCOUNT, ALICE);
    assert_eq!(plugin.status(ACCOUNT), GiStatus::GI_STATUS_CONNECTED);
}

#[test]
fn people_api_disabled_is_an_issue_until_a_good_sync() {
    let h = Harness::new();
    h.fake.set_contacts(ALICE, people("A", 2));
    h.fake.inject(Endpoint::People, Fault::PeopleDisabled);
    let plugin = h.open();
    h.connect(&plugin, ACCOUNT, ALICE);
    assert!(wait_until(PATIENCE, || plugin.status(ACCOUNT)
        == GiStatus::GI_STATUS_ISSUE));
    let status = plugin.status_value(ACCOUNT);
    assert!(
        status["reason"].as_str().unwrap().contains("People API"),
        "{status}"
    );
    assert_eq!(people_requests(&h).len(), 1, "a 403 is not retried");

    plugin.sync_now(ACCOUNT).unwrap();
    assert!(wait_until(PATIENCE, || plugin.status(ACCOUNT)
        == GiStatus::GI_STATUS_CONNECTED));
    let status = wait_for_sync(&plugin, ACCOUNT, 1);
    assert_eq!(status["reason"], serde_json::Value::Null);
    assert_eq!(status["contacts"], 2);
    assert!(
        status["last_error"]
            .as_str()
            .unwrap()
            .contains("People API"),
        "the last error stays visible"
    );
}

#[test]
fn insufficient_scope_is_an_issue_that_says_to_tick_contacts() {
    let h = Harness::new();
    h.fake.inject(Endpoint::People, Fault::Status(403));
    let plugin = h.open();
    h.connect(&plugin, ACCOUNT, ALICE);
    assert!(wait_until(PATIENCE, || plugin.status(ACCOUNT)
        == GiStatus::GI_STATUS_ISSUE));
    let reason = plugin.status_value(ACCOUNT)["reason"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(reason.contains("contacts"), "{reason}");
}

#[test]
fn a_429_waits_as_long_as_retry_after_asks_then_succeeds() {
    let h = Harness::new();
    h.fake.set_contacts(ALICE, people("A", 2));
    h.fake.inject(
        Endpoint::People,
        Fault::RateLimited {
            retry_after_secs: 1,
        },
    );
    let plugin = h.open();
    h.connect_and_sync(&plugin, ACCOUNT, ALICE);
    let requests = people_requests(&h);
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].status, 429);
    let waited = requests[1].received - requests[0].received;
    // A lower bound only: Retry-After says at least one second; the backoff base is 20 ms.
    assert!(waited >= Duration::from_secs(1), "retried after {waited:?}");
    assert_eq!(plugin.status(ACCOUNT), GiStatus::GI_STATUS_CONNECTED);
}

#[test]
fn server_errors_are_retried_three_times_then_reported_and_recovered() {
    let h = Harness::new();
    h.fake.set_contacts(ALICE, people("A", 2));
    // Two failures: the retries absorb them.
    h.fake.inject(Endpoint::People, Fault::Status(503));
    h.fake.inject(Endpoint::People, Fault::Status(500));
    let plugin = h.open();
    h.connect_and_sync(&plugin, ACCOUNT, ALICE);
    assert_eq!(plugin.status(ACCOUNT), GiStatus::GI_STATUS_CONNECTED);
    assert_eq!(people_requests(&h).len(), 3);

    // Four failures: the first request and three retries fail, and the status says so.
    for _ in 0..4 {
        h.fake.inject(Endpoint::People, Fault::Status(503));
    }
    let before = people_requests(&h).len();
    plugin.sync_now(ACCOUNT).unwrap();
    assert!(wait_until(PATIENCE, || plugin.status(ACCOUNT)
        == GiStatus::GI_STATUS_ISSUE));
    assert_eq!(
        people_requests(&h).len(),
        before + 4,
        "one request and three retries"
    );
    let status = plugin.status_value(ACCOUNT);
    assert!(
        status["reason"].as_str().unwrap().contains("3 retries"),
        "{status}"
    );
    assert_eq!(
        name(&plugin, ACCOUNT, &number(0)).as_deref(),
        Some("A Person000")
    );

    // The next good sync turns it green.
    plugin.sync_now(ACCOUNT).unwrap();
    assert!(wait_until(PATIENCE, || plugin.status(ACCOUNT)
        == GiStatus::GI_STATUS_CONNECTED));
}

/// A sync whose second page is broken changes nothing, on disk or in memory.
fn a_broken_second_page_changes_nothing(fault: Fault, expected: &str) {
    let h = Harness::new();
    h.fake.set_contacts(ALICE, people("Old", 4));
    h.fake.set_page_size_cap(2);
    let plugin = h.open();
    h.connect_and_sync(&plugin, ACCOUNT, ALICE);
    h.fake.set_contacts(ALICE, people("New", 4));
    h.fake.expire_sync_tokens(ALICE);
    // The expired-token reply and the first full page pass; the second page breaks every time.
    h.fake
        .inject(Endpoint::People, Fault::Delay(Duration::ZERO));
    h.fake
        .inject(Endpoint::People, Fault::Delay(Duration::ZERO));
    for _ in 0..4 {
        h.fake.inject(Endpoint::People, fault.clone());
    }
    plugin.sync_now(ACCOUNT).unwrap();
    assert!(wait_until(PATIENCE, || plugin.status(ACCOUNT)
        == GiStatus::GI_STATUS_ISSUE));
    let status = plugin.status_value(ACCOUNT);
    assert!(
        status["reason"].as_str().unwrap().contains(expected),
        "{status}"
    );
    for i in 0..4 {
        assert_eq!(
            name(&plugin, ACCOUNT, &number(i)),
            Some(format!("Old Person{i:03}"))
        );
    }
    drop(plugin);
    let reopened = h.open();
    for i in 0..4 {
        assert_eq!(
            name(&reopened, ACCOUNT, &number(i)),
            Some(format!("Old Person{i:03}")),
            "on disk too"
        );
    }
}

#[test]
fn truncated_json_fails_the_sync_and_changes_nothing() {
    a_broken_second_page_changes_nothing(Fault::TruncatedJson, "not the expected JSON");
}

#[test]
fn a_field_of_the_wrong_type_fails_the_sync_and_changes_nothing() {
    a_broken_second_page_changes_nothing(Fault::WrongType, "not the expected JSON");
}

#[test]
fn accounts_sync_on_their_interval_without_being_asked() {
    let h = Harness::new();
    h.fake.set_contacts(ALICE, people("A", 1));
    let mut config = h.config();
    config["sync_interval_secs"] = 1.into();
    let plugin = h.open_with(&config);
    h.connect(&plugin, ACCOUNT, ALICE);
    assert!(
        wait_until(PATIENCE, || people_requests(&h).len() >= 3),
        "periodic syncs: {} People requests",
        people_requests(&h).len()
    );
    // Once a second, not back to back: half of a 1 s interval once rounded to no wait at all.
    let before = people_requests(&h).len();
    std::thread::sleep(Duration::from_secs(4));
    let syncs = people_requests(&h).len() - before;
    assert!(
        (2..=6).contains(&syncs),
        "{syncs} syncs in 4 s at an interval of 1 s"
    );
}

#[test]
fn sync_now_returns_at_once_and_a_slow_account_holds_up_no_other() {
    let h = Harness::new();
    h.fake.set_contacts(ALICE, people("A", 1));
    h.fake.set_contacts(BOB, people("B", 1));
    let plugin = h.open();
    h.connect_and_sync(&plugin, "slow.example", ALICE);
    h.connect_and_sync(&plugin, "fast.example", BOB);
    let fast_before = plugin.status_value("fast.example")["last_sync"].clone();

    h.fake
        .inject(Endpoint::People, Fault::Delay(Duration::from_secs(4)));
    plugin.sync_now("slow.example").unwrap();
    // sync_now did not wait for the slow reply: the account is still syncing now.
    assert!(wait_until(PATIENCE, || people_requests(&h).len() >= 3));
    assert_eq!(plugin.status_value("slow.example")["syncing"], true);

    std::thread::sleep(Duration::from_millis(1100)); // last_sync has second resolution
    plugin.sync_now("fast.example").unwrap();
    assert!(wait_until(PATIENCE, || plugin.status_value("fast.example")
        ["last_sync"]
        != fast_before));
    assert_eq!(
        plugin.status_value("slow.example")["syncing"],
        true,
        "the fast account finished first"
    );
    assert_eq!(
        name(&plugin, "slow.example", &number(0)).as_deref(),
        Some("A Person000"),
        "lookups never wait"
    );
    wait_for_sync(&plugin, "slow.example", 1);
}

#[test]
fn lookups_from_several_threads_never_fail_while_syncs_run() {
    let h = Harness::new();
    const N: usize = 300;
    h.fake.set_contacts(ALICE, people("Even", N));
    h.fake.set_page_size_cap(100);
    let plugin = h.open();
    h.connect_and_sync(&plugin, ACCOUNT, ALICE);

    let stop = std::sync::atomic::AtomicBool::new(false);
    let looked_up = std::thread::scope(|s| {
        let readers: Vec<_> = (0..3)
            .map(|t| {
                let plugin = &plugin;
                let stop = &stop;
                s.spawn(move || {
                    let mut count = 0usize;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let i = (count * 7 + t) % N;
                        let found = name(plugin, ACCOUNT, &number(i))
                            .unwrap_or_else(|| panic!("number {i} vanished during a sync"));
                        assert!(
                            found == format!("Even Person{i:03}")
                                || found == format!("Odd Person{i:03}"),
                            "{found}"
                        );
                        count += 1;
                    }
                    count
                })
            })
            .collect();
        // Full syncs that rewrite every contact, again and again.
        for round in 0..6 {
            h.fake.set_contacts(
                ALICE,
                people(if round % 2 == 0 { "Odd" } else { "Even" }, N),
            );
            h.fake.expire_sync_tokens(ALICE);
            let before = people_requests(&h).len();
            plugin.sync_now(ACCOUNT).unwrap();
            wait_for_people_requests(&h, &plugin, ACCOUNT, before, 4);
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        readers
            .into_iter()
            .map(|r| r.join().unwrap())
            .sum::<usize>()
    });
    assert!(looked_up > 0);
    assert_eq!(plugin.status_value(ACCOUNT)["contacts"], N);
}

#[test]
fn a_restarted_plugin_answers_from_the_store_with_google_unreachable() {
    let h = Harness::new();
    h.fake.set_contacts(ALICE, people("A", 3));
    let config = h.config();
    {
        let plugin = h.open();
        h.connect_and_sync(&plugin, ACCOUNT, ALICE);
    }
    let Harness {
        fake,
        dir: _dir,
        pg: _pg,
    } = h;
    drop(fake);
    let plugin = Harness::open_config(&config);
    assert_eq!(
        name(&plugin, ACCOUNT, &number(2)).as_deref(),
        Some("A Person002")
    );
    let status = plugin.status_value(ACCOUNT);
    assert_eq!(status["contacts"], 3);
    assert_eq!(status["status"], "connected");
}

#[test]
fn sync_now_on_an_account_that_is_not_connected_says_so() {
    let h = Harness::new();
    let plugin = h.open();
    let err = plugin.sync_now("nobody.example").unwrap_err();
    assert_eq!(
        err.code,
        host_sim::plugin::GiResult::GI_ERR_INVALID_ARGUMENT
    );
    assert!(err.message.contains("not connected"), "{err}");
}

#[test]
fn the_sync_token_and_a_yellow_status_survive_a_restart() {
    let h = Harness::new();
    h.fake.set_contacts(ALICE, people("A", 2));
    {
        let plugin = h.open();
        h.connect_and_sync(&plugin, ACCOUNT, ALICE);
    }
    // After a restart the next sync is incremental: the stored sync token is sent.
    let plugin = h.open();
    let before = people_requests(&h).len();
    plugin.sync_now(ACCOUNT).unwrap();
    wait_for_people_requests(&h, &plugin, ACCOUNT, before, 1);
    assert!(people_requests(&h)[before]
        .query_param("syncToken")
        .is_some());

    // A yellow ! and its reason survive too.
    h.fake.revoke_grants(ALICE);
    plugin.sync_now(ACCOUNT).unwrap();
    assert!(wait_until(PATIENCE, || plugin.status(ACCOUNT)
        == GiStatus::GI_STATUS_ISSUE));
    let reason = plugin.status_value(ACCOUNT)["reason"].clone();
    drop(plugin);
    let plugin = h.open();
    assert_eq!(plugin.status(ACCOUNT), GiStatus::GI_STATUS_ISSUE);
    assert_eq!(plugin.status_value(ACCOUNT)["reason"], reason);
}

#[test]
fn an_access_token_about_to_expire_is_refreshed_before_the_call() {
    let h = Harness::new();
    h.fake.set_contacts(ALICE, people("A", 2));
    // Google says the token lives 30 s; the plugin refreshes within 60 s of the end.
    h.fake.set_access_token_lifetime(Duration::from_secs(30));
    let plugin = h.open();
    h.connect_and_sync(&plugin, ACCOUNT, ALICE);
    let refreshes = h
        .fake
        .requests_to(Endpoint::Token)
        .into_iter()
        .filter(|r| r.form_param("grant_type") == Some("refresh_token"))
        .count();
    assert_eq!(refreshes, 1, "refreshed before the first People call");
    assert!(
        people_requests(&h).iter().all(|r| r.status == 200),
        "no 401 was needed"
    );
}

#[test]
fn the_status_json_has_every_field_of_the_contract() {
    let h = Harness::new();
    h.fake.set_contacts(ALICE, people("A", 3));
    let mut config = h.config();
    config["sources"] = serde_json::json!(["contacts", "directory"]);
    config["domains"] = serde_json::json!({"cal.example": {"calendar": true}});
    let plugin = h.open_with(&config);
    h.connect_and_sync(&plugin, ACCOUNT, ALICE);
    let status = plugin.status_value(ACCOUNT);
    for field in [
        "account",
        "status",
        "reason",
        "syncing",
        "contacts",
        "numbers",
        "last_sync",
        "last_error",
        "next_sync",
        "scopes",
        "sources",
        "presence",
    ] {
        assert!(status.get(field).is_some(), "no {field} in {status}");
    }
    assert!(
        status["scopes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s == "https://www.googleapis.com/auth/contacts.readonly"),
        "{status}"
    );
    // The next periodic sync, one interval (3600 s) from the one that just ran.
    let next = status["next_sync"].as_str().expect("a time");
    assert!(
        next.contains('T') && next > status["last_sync"].as_str().unwrap(),
        "{status}"
    );
    assert_eq!(status["sources"]["contacts"]["contacts"], 3, "{status}");
    assert_eq!(status["sources"]["contacts"]["numbers"], 3, "{status}");
    assert!(
        status["sources"]["directory"]["last_error"].is_string(),
        "{status}"
    );
    assert_eq!(
        status["presence"],
        serde_json::Value::Null,
        "calendar is off here"
    );
    let other = plugin.status_value("cal.example/7");
    assert_eq!(other["presence"]["state"], "unknown", "{other}");
    assert_eq!(other["scopes"], serde_json::json!([]));
    // The scopes survive a restart.
    drop(plugin);
    let plugin = h.open_with(&config);
    assert_eq!(plugin.status_value(ACCOUNT)["scopes"], status["scopes"]);
}

/// Google resends a person in an incremental sync when a field the plugin does not keep
/// changed (a photo, an address): with another contact changed beside it, the index is
/// patched, and the resent contact must count and show once, as a rebuild from the store
/// has it (on either store: tests/run-all runs this on PostgreSQL too).
#[test]
fn an_incremental_sync_resending_an_unchanged_contact_counts_it_once() {
    let h = Harness::new();
    h.fake.set_contacts(ALICE, people("A", 5));
    let plugin = h.open();
    h.connect_and_sync(&plugin, ACCOUNT, ALICE);
    let unchanged = people("A", 5).remove(1);
    let mut changed = people("A", 5).remove(2);
    changed.display = "Changed Person".into();
    h.fake.upsert_contact(ALICE, unchanged);
    h.fake.upsert_contact(ALICE, changed);
    let before = people_requests(&h).len();
    plugin.sync_now(ACCOUNT).unwrap();
    let status = wait_for_people_requests(&h, &plugin, ACCOUNT, before, 1);
    assert_eq!(
        name(&plugin, ACCOUNT, &number(2)).as_deref(),
        Some("Changed Person")
    );
    assert_eq!(
        (status["contacts"].clone(), status["numbers"].clone()),
        (5.into(), 5.into()),
        "{status}"
    );
    let (rows, total) = plugin
        .search(ACCOUNT, "person001", GiSearchMode::GI_SEARCH_TEXT, 0, 10)
        .unwrap();
    assert_eq!((rows.len(), total), (1, 1), "{rows:?}");
    // And a node opened now (a rebuild from the store) agrees.
    drop(plugin);
    let plugin = h.open();
    assert_eq!(plugin.status_value(ACCOUNT)["contacts"], 5);
}

/// Google gives a contact a new resource name when it links it to a profile, and lists it in
/// the next incremental sync under the new name with the old one in
/// `metadata.previousResourceNames` (no tombstone under the old name is documented). The old
/// row goes: it stayed, answering its old number and showing twice in the address book, until
/// the next full sync (a week later, when the sync token expired).
#[test]
fn a_contact_listed_under_a_new_resource_name_replaces_its_old_row() {
    let h = Harness::new();
    h.fake.set_contacts(
        ALICE,
        vec![Person::new("people/c1", "Carol", "Customer").with_phone("+1 212 555 0101", "work")],
    );
    let plugin = h.open();
    h.connect_and_sync(&plugin, "example.com", ALICE);
    assert!(plugin
        .lookup("example.com", "+12125550101")
        .unwrap()
        .is_some());

    h.fake.inject(
        Endpoint::People,
        Fault::Raw {
            status: 200,
            headers: vec![],
            body: serde_json::json!({
                "connections": [{
                    "resourceName": "people/c99",
                    "metadata": {"previousResourceNames": ["people/c1"]},
                    "names": [{"displayName": "Carol Customer"}],
                    "phoneNumbers": [{"value": "+1 212 555 0109", "canonicalForm": "+12125550109", "type": "work"}],
                }],
                "nextSyncToken": "after-the-link",
            })
            .to_string(),
        },
    );
    let before = h.fake.requests_to(Endpoint::People).len();
    plugin.sync_now("example.com").unwrap();
    wait_for_people_requests(&h, &plugin, "example.com", before, 1);
    assert!(wait_until(PATIENCE, || plugin
        .lookup("example.com", "+12125550109")
        .unwrap()
        .is_some()));
    assert_eq!(
        plugin
            .lookup("example.com", "+12125550101")
            .unwrap()
            .map(|c| c.name),
        None,
        "the old resource name's number still answers"
    );
    let (rows, total) = plugin
        .search("example.com", "carol", GiSearchMode::GI_SEARCH_TEXT, 0, 10)
        .unwrap();
    assert_eq!(
        total,
        1,
        "Carol once, not under both names: {:?}",
        rows.iter().map(|r| &r.number).collect::<Vec<_>>()
    );
    assert_eq!(plugin.status_value("example.com")["contacts"], 1);
}
