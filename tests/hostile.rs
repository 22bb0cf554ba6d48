//! Google as a hostile server: replies that trickle, never end, repeat, lie, or list nonsense.
//! Google's replies are untrusted input (contract, "Sync"): every request has an overall
//! deadline of 60 s, every body a cap of 32 MiB, a sync stops after 1,000 pages (100 of
//! contact groups) or at a page token that repeats, a person listed twice counts once (the
//! last listing wins), a malformed person is skipped, `Retry-After` may be an HTTP date (and is
//! read as an hour at most), the granted scopes are read from the token reply, and no message
//! carries a sync token or a page token.
//!
//! Some of these tests take a while by nature (the 60 s deadline is waited out once). Every
//! wait is bounded, and a call that could hang runs on its own thread so that a hang fails the
//! test instead of blocking it.

mod common;

use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use common::*;
use host_sim::fake_google::{Endpoint, Fault, Person};
use host_sim::plugin::{GiResult, GiStatus, Plugin};
use serde_json::{json, Value};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// Three contacts with numbers far from the ones `Fault::EndlessPages` hands out
/// (+1212555NNNN), so that a page of those landing by mistake cannot pass for one of these.
fn three_people() -> Vec<Person> {
    (0..3)
        .map(|i| {
            Person::new(
                &format!("people/c{}", 100 + i),
                "Known",
                &format!("Person{i}"),
            )
            .with_phone_canonical(
                &format!("(415) 555-01{i:02}"),
                &format!("+14155550{}", 100 + i),
                "mobile",
            )
        })
        .collect()
}

fn known_number(i: usize) -> String {
    format!("+14155550{}", 100 + i)
}

/// The three contacts of [`three_people`] still answer, with their names.
fn assert_known_people_answer(plugin: &Plugin<'_>, account: &str, when: &str) {
    for i in 0..3 {
        assert_eq!(
            name(plugin, account, &known_number(i)).as_deref(),
            Some(format!("Known Person{i}").as_str()),
            "{when}: the contacts of the last good sync must still answer lookups"
        );
    }
}

fn name(plugin: &Plugin<'_>, account: &str, number: &str) -> Option<String> {
    plugin
        .lookup(account, number)
        .unwrap_or_else(|e| panic!("gi_lookup_contact({account}, {number}) failed: {e}"))
        .map(|c| c.name)
}

/// A person as the People API lists it, with one number in E.164.
fn person_json(resource_name: &str, display_name: &str, e164: &str) -> Value {
    json!({
        "resourceName": resource_name,
        "names": [{"displayName": display_name}],
        "phoneNumbers": [{"value": e164, "canonicalForm": e164, "type": "mobile"}],
    })
}

/// A hand-made 200 reply of the People API.
fn page(body: Value) -> Fault {
    Fault::Raw {
        status: 200,
        headers: vec![],
        body: body.to_string(),
    }
}

/// A 503 `UNAVAILABLE` with `Retry-After: {retry_after}`: a wait this account alone honours
/// (a 429 would pause every account of the OAuth client).
fn unavailable_for(retry_after: &str) -> Fault {
    Fault::Raw {
        status: 503,
        headers: vec![("Retry-After".into(), retry_after.into())],
        body: json!({"error": {
            "code": 503,
            "message": "The service is currently unavailable.",
            "status": "UNAVAILABLE",
        }})
        .to_string(),
    }
}

fn people_requests(h: &Harness) -> usize {
    h.fake.requests_to(Endpoint::People).len()
}

/// Asks for a sync and waits until it made at least one People request and ended; returns
/// the status JSON.
fn sync_and_wait(h: &Harness, plugin: &Plugin<'_>, account: &str) -> Value {
    let before = people_requests(h);
    plugin.sync_now(account).expect("gi_sync_now");
    wait_for_people_requests(h, plugin, account, before, 1)
}

/// Waits (up to `timeout`) until the account is yellow and no longer syncing.
fn wait_for_issue(plugin: &Plugin<'_>, account: &str, timeout: Duration) -> Value {
    let mut status = Value::Null;
    let turned = wait_until(timeout, || {
        status = plugin.status_value(account);
        status["status"] == "issue" && status["syncing"] == false
    });
    assert!(
        turned,
        "{account} did not turn yellow (status \"issue\", not syncing) within {timeout:?}: {status}"
    );
    status
}

/// Waits (up to PATIENCE) until the account is green and no longer syncing.
fn wait_for_green(plugin: &Plugin<'_>, account: &str) -> Value {
    let mut status = Value::Null;
    let turned = wait_until(PATIENCE, || {
        status = plugin.status_value(account);
        status["status"] == "connected" && status["syncing"] == false
    });
    assert!(turned, "{account} did not turn green: {status}");
    status
}

fn reason(status: &Value) -> &str {
    status["reason"]
        .as_str()
        .unwrap_or_else(|| panic!("a yellow status must say why (reason): {status}"))
}

/// Runs `f` on its own thread and waits at most `limit` for it: a hang fails the test (the
/// thread is left behind) instead of blocking it. Returns its result and how long it took.
fn within<T: Send + 'static>(
    limit: Duration,
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> (T, Duration) {
    let (tx, rx) = mpsc::channel();
    let started = Instant::now();
    std::thread::Builder::new()
        .name(what.to_owned())
        .spawn(move || {
            let out = f();
            let _ = tx.send(out);
        })
        .expect("spawn a thread");
    match rx.recv_timeout(limit) {
        Ok(out) => (out, started.elapsed()),
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("{what} did not return within {limit:?}: it hangs")
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            panic!("{what} panicked on its thread (see its output above)")
        }
    }
}

/// The test process's peak resident memory (VmHWM), in bytes. The plugin runs in this process.
fn peak_rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("/proc/self/status has VmHWM");
    let kib: u64 = line
        .trim_start_matches("VmHWM:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .expect("VmHWM in kB");
    kib * 1024
}

// ---------------------------------------------------------------------------------------------
// 1. The overall deadline
// ---------------------------------------------------------------------------------------------

#[test]
fn a_token_reply_trickled_a_byte_a_second_fails_complete_at_the_deadline() {
    const ACCOUNT: &str = "deadline.example";
    let h = Harness::new();
    let plugin = Arc::new(h.open());
    let url = plugin.auth_url(ACCOUNT).unwrap();
    let callback = h.fake.approve(&url, ALICE).unwrap();
    // The exchange is handled; the reply's head goes out at once, then one byte a second: every
    // read succeeds in time, so only an overall deadline ends it.
    h.fake.inject(
        Endpoint::Token,
        Fault::Trickle {
            interval: Duration::from_secs(1),
        },
    );
    let for_thread = Arc::clone(&plugin);
    let (result, took) = within(Duration::from_secs(120), "gi_complete", move || {
        for_thread.complete(&callback)
    });
    let err = result.expect_err("gi_complete must fail when the token reply never arrives whole");
    assert_eq!(
        err.code,
        GiResult::GI_ERR_NETWORK,
        "a token reply past the deadline is a network error: {err}"
    );
    assert!(
        took >= Duration::from_secs(50),
        "gi_complete failed after {took:?}, well before the 60 s deadline; so something other than the deadline failed it: {err}"
    );
    assert_eq!(
        h.fake.requests_to(Endpoint::Token).len(),
        1,
        "the code is exchanged once"
    );
    assert_eq!(
        plugin.status(ACCOUNT),
        GiStatus::GI_STATUS_DISCONNECTED,
        "a failed exchange connects nothing"
    );
    assert_eq!(plugin.status_value(ACCOUNT)["status"], "disconnected");
}

// ---------------------------------------------------------------------------------------------
// 2. gi_close abandons a reply being read
// ---------------------------------------------------------------------------------------------

#[test]
fn gi_close_returns_promptly_while_a_sync_reads_a_trickled_reply() {
    const ACCOUNT: &str = "close.example";
    let h = Harness::new();
    h.fake.set_contacts(ALICE, three_people());
    let plugin = h.open();
    h.connect_and_sync(&plugin, ACCOUNT, ALICE);
    // A change, so that the incremental reply is a few hundred bytes: minutes at a byte a second.
    h.fake.upsert_contact(
        ALICE,
        Person::new("people/c900", "Slow", "Change").with_phone_canonical(
            "(415) 555-0900",
            "+14155550900",
            "work",
        ),
    );

    h.fake.set_sticky_fault(
        Endpoint::People,
        Some(Fault::Trickle {
            interval: Duration::from_secs(1),
        }),
    );
    let before = people_requests(&h);
    plugin.sync_now(ACCOUNT).unwrap();
    assert!(
        wait_until(PATIENCE, || plugin.status_value(ACCOUNT)["syncing"] == true),
        "the sync did not start: {}",
        plugin.status_value(ACCOUNT)
    );
    assert!(
        wait_until(PATIENCE, || people_requests(&h) > before),
        "the sync sent no People request"
    );
    // Let the head arrive and the plugin settle into reading the body.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        plugin.status_value(ACCOUNT)["syncing"],
        true,
        "the sync is still reading the trickled reply"
    );

    let ((), took) = within(Duration::from_secs(20), "gi_close", move || drop(plugin));
    eprintln!("gi_close returned after {took:?}");
    h.fake.set_sticky_fault(Endpoint::People, None);
}

// ---------------------------------------------------------------------------------------------
// 3. The 32 MiB cap
// ---------------------------------------------------------------------------------------------

#[test]
fn a_300_mb_page_is_refused_at_32_mib_without_being_held_in_memory() {
    const ACCOUNT: &str = "huge.example";
    let h = Harness::new();
    h.fake.set_contacts(ALICE, three_people());
    let plugin = h.open();
    h.connect_and_sync(&plugin, ACCOUNT, ALICE);
    let peak_before = peak_rss_bytes();

    for content_length in [false, true] {
        let how = if content_length {
            "announced by Content-Length"
        } else {
            "without Content-Length"
        };
        h.fake.set_sticky_fault(
            Endpoint::People,
            Some(Fault::Huge {
                bytes: 300_000_000,
                content_length,
            }),
        );
        let status = sync_and_wait(&h, &plugin, ACCOUNT);
        h.fake.set_sticky_fault(Endpoint::People, None);
        assert_eq!(
            status["status"], "issue",
            "a 300 MB page ({how}) must turn the account yellow: {status}"
        );
        assert!(
            reason(&status).contains("larger than 32 MiB"),
            "the reason must say the reply is larger than 32 MiB ({how}): {status}"
        );
        assert_eq!(status["contacts"], 3, "nothing changed ({how}): {status}");
        assert_known_people_answer(&plugin, ACCOUNT, how);

        // Green again before the next round, so that its yellow is its own.
        plugin.sync_now(ACCOUNT).unwrap();
        wait_for_green(&plugin, ACCOUNT);
    }

    let growth = peak_rss_bytes().saturating_sub(peak_before);
    assert!(
        growth < 150_000_000,
        "the peak resident memory grew by {} MB while refusing 300 MB pages: the reply was held in memory",
        growth / 1_000_000
    );
    eprintln!("peak resident memory grew by {} MB", growth / 1_000_000);
}

// ---------------------------------------------------------------------------------------------
// 4. At most 1,000 pages
// ---------------------------------------------------------------------------------------------

#[test]
fn a_sync_stops_after_1000_pages_and_changes_nothing() {
    const ACCOUNT: &str = "endless.example";
    let h = Harness::new();
    h.fake.set_contacts(ALICE, three_people());
    let plugin = h.open();
    h.connect_and_sync(&plugin, ACCOUNT, ALICE);

    h.fake
        .set_sticky_fault(Endpoint::People, Some(Fault::EndlessPages));
    let before = people_requests(&h);
    plugin.sync_now(ACCOUNT).unwrap();
    let status = wait_for_issue(&plugin, ACCOUNT, Duration::from_secs(240));
    h.fake.set_sticky_fault(Endpoint::People, None);
    let made = people_requests(&h) - before;

    assert!(
        reason(&status).contains("1000 pages"),
        "the reason must name the 1000-page limit: {status}"
    );
    assert!(
        made <= 1000,
        "the sync made {made} People requests: no more than 1,000 pages may be fetched"
    );
    assert_eq!(
        made, 1000,
        "the sync stops after 1,000 pages, not before (a real address book may have hundreds)"
    );
    assert_eq!(status["contacts"], 3, "nothing changed: {status}");
    assert_known_people_answer(&plugin, ACCOUNT, "after 1,000 endless pages");
    for n in [1, 2, 500, 1000] {
        let number = format!("+1212555{n:04}");
        assert_eq!(
            name(&plugin, ACCOUNT, &number),
            None,
            "the endless pages' person {n} ({number}) must not have landed"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 5. A page token that repeats
// ---------------------------------------------------------------------------------------------

#[test]
fn a_repeated_page_token_stops_the_sync_and_changes_nothing() {
    const ACCOUNT: &str = "loop.example";
    let h = Harness::new();
    h.fake.set_contacts(ALICE, three_people());
    let plugin = h.open();
    h.connect_and_sync(&plugin, ACCOUNT, ALICE);

    // Every page says the next one is "same": a loop.
    h.fake.set_sticky_fault(
        Endpoint::People,
        Some(page(json!({
            "connections": [person_json("people/loop", "Loop Person", "+14155550199")],
            "nextPageToken": "same",
            "totalPeople": 4,
            "totalItems": 4,
        }))),
    );
    let before = people_requests(&h);
    plugin.sync_now(ACCOUNT).unwrap();
    let status = wait_for_issue(&plugin, ACCOUNT, PATIENCE);
    h.fake.set_sticky_fault(Endpoint::People, None);

    assert!(
        reason(&status).contains("page token"),
        "the reason must name the repeated page token: {status}"
    );
    let requests = h.fake.requests_to(Endpoint::People);
    assert_eq!(
        requests.len() - before,
        2,
        "the second page repeats the token the first gave: the sync stops there"
    );
    assert_eq!(
        requests[before + 1].query_param("pageToken"),
        Some("same"),
        "the token was followed once"
    );
    assert_eq!(status["contacts"], 3, "nothing changed: {status}");
    assert_eq!(
        name(&plugin, ACCOUNT, "+14155550199"),
        None,
        "the looping page's person must not have landed"
    );
    assert_known_people_answer(&plugin, ACCOUNT, "after a looping page token");
}

/// The known people, each in the contact group "Customers", on an account that keeps only
/// that group's contacts: a sync that lost the group's name would drop them all.
fn customers_account(h: &Harness, account: &str) -> Plugin<'static> {
    h.fake.set_contacts(
        ALICE,
        three_people()
            .into_iter()
            .map(|p| p.with_group("Customers"))
            .collect(),
    );
    let mut config = h.config();
    config["contact_groups"] = json!(["Customers"]);
    let plugin = h.open_with(&config);
    h.connect_and_sync(&plugin, account, ALICE);
    assert_known_people_answer(&plugin, account, "after the first sync");
    plugin
}

fn groups_of(plugin: &Plugin<'_>, account: &str) -> String {
    plugin
        .lookup(account, &known_number(0))
        .unwrap()
        .map(|c| c.groups)
        .unwrap_or_default()
}

#[test]
fn contact_group_pages_that_repeat_a_token_stop_the_sync_and_keep_the_groups() {
    const ACCOUNT: &str = "group-loop.example";
    let h = Harness::new();
    let plugin = customers_account(&h, ACCOUNT);
    assert_eq!(groups_of(&plugin, ACCOUNT), "Customers");

    // Every page of groups (none of them "Customers") says the next one is "same".
    h.fake.set_sticky_fault(
        Endpoint::ContactGroups,
        Some(page(json!({
            "contactGroups": [{
                "resourceName": "contactGroups/loop",
                "name": "Loop",
                "groupType": "USER_CONTACT_GROUP",
            }],
            "nextPageToken": "same",
        }))),
    );
    let groups_before = h.fake.requests_to(Endpoint::ContactGroups).len();
    plugin.sync_now(ACCOUNT).unwrap();
    let status = wait_for_issue(&plugin, ACCOUNT, PATIENCE);
    h.fake.set_sticky_fault(Endpoint::ContactGroups, None);

    assert!(
        reason(&status).contains("contact-groups page token"),
        "the reason must name the groups' repeated page token: {status}"
    );
    assert_eq!(
        h.fake.requests_to(Endpoint::ContactGroups).len() - groups_before,
        2,
        "the second page repeats the token the first gave: the sync stops there"
    );
    // Taking the pages so far as all the groups lost "Customers", and with it, through the
    // account's contact_groups, every contact.
    assert_known_people_answer(&plugin, ACCOUNT, "after looping pages of contact groups");
    assert_eq!(groups_of(&plugin, ACCOUNT), "Customers", "nothing changed");
    assert_eq!(status["contacts"], 3, "nothing changed: {status}");

    // Google answers properly again: green, with the groups as they are.
    sync_and_wait(&h, &plugin, ACCOUNT);
    wait_for_green(&plugin, ACCOUNT);
    assert_known_people_answer(&plugin, ACCOUNT, "after a good sync");
}

#[test]
fn contact_group_pages_that_never_end_stop_the_sync_after_100_pages() {
    const ACCOUNT: &str = "group-endless.example";
    let h = Harness::new();
    let plugin = customers_account(&h, ACCOUNT);

    h.fake
        .set_sticky_fault(Endpoint::ContactGroups, Some(Fault::EndlessPages));
    let groups_before = h.fake.requests_to(Endpoint::ContactGroups).len();
    plugin.sync_now(ACCOUNT).unwrap();
    let status = wait_for_issue(&plugin, ACCOUNT, PATIENCE);
    h.fake.set_sticky_fault(Endpoint::ContactGroups, None);

    assert!(
        reason(&status).contains("100 pages of contact groups"),
        "the reason must name the limit: {status}"
    );
    assert_eq!(
        h.fake.requests_to(Endpoint::ContactGroups).len() - groups_before,
        100,
        "the sync stops after 100 pages of groups, not before"
    );
    assert_known_people_answer(&plugin, ACCOUNT, "after endless pages of contact groups");
    assert_eq!(groups_of(&plugin, ACCOUNT), "Customers", "nothing changed");
}

// ---------------------------------------------------------------------------------------------
// 6. A person listed twice counts once, the last listing winning
// ---------------------------------------------------------------------------------------------

#[test]
fn a_person_listed_twice_in_a_full_sync_counts_once_and_the_last_listing_wins() {
    const ACCOUNT: &str = "twice.example";
    let h = Harness::new();
    h.fake.inject(
        Endpoint::People,
        page(json!({
            "connections": [
                person_json("people/c1", "First", "+12125550101"),
                person_json("people/c1", "Second", "+12125550101"),
            ],
            "nextSyncToken": "t1",
            "totalPeople": 2,
        })),
    );
    let plugin = h.open();
    h.connect(&plugin, ACCOUNT, ALICE);
    let status = wait_for_sync(&plugin, ACCOUNT, 1);
    assert_eq!(
        status["status"], "connected",
        "a duplicate is no reason to fail the sync: {status}"
    );
    assert_eq!(
        status["contacts"], 1,
        "people/c1 listed twice is one contact: {status}"
    );
    assert_eq!(
        name(&plugin, ACCOUNT, "+12125550101").as_deref(),
        Some("Second"),
        "the last listing wins"
    );
}

#[test]
fn within_an_incremental_sync_the_last_change_of_a_person_wins() {
    const ACCOUNT: &str = "changes.example";
    let h = Harness::new();
    let mut people = three_people();
    people.push(
        Person::new("people/c9", "Old", "Nine").with_phone_canonical(
            "(212) 555-0109",
            "+12125550109",
            "mobile",
        ),
    );
    h.fake.set_contacts(ALICE, people);
    let plugin = h.open();
    h.connect_and_sync(&plugin, ACCOUNT, ALICE);
    assert_eq!(
        name(&plugin, ACCOUNT, "+12125550109").as_deref(),
        Some("Old Nine")
    );
    let deleted = json!({"resourceName": "people/c9", "metadata": {"deleted": true}});

    // Changed, then deleted: deleted.
    h.fake.inject(
        Endpoint::People,
        page(json!({
            "connections": [person_json("people/c9", "New Nine", "+12125550109"), deleted],
            "nextSyncToken": "t2",
        })),
    );
    let before = people_requests(&h);
    let status = sync_and_wait(&h, &plugin, ACCOUNT);
    assert!(
        h.fake.requests_to(Endpoint::People)[before]
            .query_param("syncToken")
            .is_some(),
        "the second sync is incremental (carries the sync token)"
    );
    assert_eq!(status["status"], "connected", "{status}");
    assert_eq!(
        name(&plugin, ACCOUNT, "+12125550109"),
        None,
        "an upsert then a deletion of people/c9 in one sync leaves it deleted"
    );
    assert_eq!(status["contacts"], 3, "{status}");

    // Deleted, then listed again: there.
    h.fake.inject(
        Endpoint::People,
        page(json!({
            "connections": [deleted, person_json("people/c9", "Back Nine", "+12125550109")],
            "nextSyncToken": "t3",
        })),
    );
    let before = people_requests(&h);
    let status = sync_and_wait(&h, &plugin, ACCOUNT);
    assert_eq!(
        h.fake.requests_to(Endpoint::People)[before].query_param("syncToken"),
        Some("t2"),
        "the third sync is incremental too, from the token the second stored"
    );
    assert_eq!(status["status"], "connected", "{status}");
    assert_eq!(
        name(&plugin, ACCOUNT, "+12125550109").as_deref(),
        Some("Back Nine"),
        "a deletion then an upsert of people/c9 in one sync leaves it there"
    );
    assert_eq!(status["contacts"], 4, "{status}");
    assert_known_people_answer(&plugin, ACCOUNT, "after the incremental syncs");
}

// ---------------------------------------------------------------------------------------------
// 7. A malformed person is skipped
// ---------------------------------------------------------------------------------------------

#[test]
fn malformed_people_are_skipped_and_the_good_ones_land() {
    const ACCOUNT: &str = "malformed.example";
    capture_logs();
    let h = Harness::new();
    h.fake.inject(
        Endpoint::People,
        page(json!({
            "connections": [
                person_json("people/c1", "Good One", "+12125550101"),
                {"names": []},
                7,
                {"resourceName": "people/x", "names": "oops",
                 "phoneNumbers": [{"value": "+12125550177", "canonicalForm": "+12125550177"}]},
                "a string",
                null,
                {"resourceName": "people/y", "phoneNumbers": {"value": "+12125550178"}},
                {"resourceName": "people/z", "names": "Private Person"},
                {"resourceName": "people/w", "phoneNumbers": [{"value": 12125550179_u64}]},
                person_json("people/c2", "Good Two", "+12125550102"),
            ],
            "nextSyncToken": "t1",
            "totalPeople": 8,
        })),
    );
    let plugin = h.open();
    h.connect(&plugin, ACCOUNT, ALICE);
    let status = wait_for_sync(&plugin, ACCOUNT, 1);
    assert_eq!(
        status["status"], "connected",
        "a malformed person is skipped, not fatal: {status}"
    );
    assert_eq!(
        name(&plugin, ACCOUNT, "+12125550101").as_deref(),
        Some("Good One")
    );
    assert_eq!(
        name(&plugin, ACCOUNT, "+12125550102").as_deref(),
        Some("Good Two")
    );
    assert_eq!(
        name(&plugin, ACCOUNT, "+12125550177"),
        None,
        "the person whose names are not a list is skipped"
    );
    assert_eq!(
        status["contacts"], 2,
        "only the two well-formed people count: {status}"
    );
    // What is logged of a malformed person says where it is wrong, not what it holds.
    let lines = logged_lines();
    assert!(
        lines.iter().any(|l| l.contains("malformed person")),
        "the skipped people are logged: {lines:#?}"
    );
    for private in ["Private Person", "12125550179", "oops"] {
        assert!(
            !lines.iter().any(|l| l.contains(private)),
            "a malformed person's data ({private}) reached the log: {lines:#?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 8. The granted scopes come from the token reply
// ---------------------------------------------------------------------------------------------

/// The callback query without its `scope` parameter, the rest untouched.
fn without_scope(callback: &str) -> String {
    let kept: Vec<&str> = callback
        .split('&')
        .filter(|pair| !pair.starts_with("scope="))
        .collect();
    let stripped = kept.join("&");
    assert!(param(&stripped, "scope").is_none() && param(&stripped, "code").is_some());
    stripped
}

#[test]
fn a_token_reply_without_the_contacts_scope_is_a_denial_even_when_the_redirect_says_nothing() {
    const ACCOUNT: &str = "scopes.example";
    let h = Harness::new();
    let plugin = h.open();

    let url = plugin.auth_url(ACCOUNT).unwrap();
    let callback = without_scope(&h.fake.approve(&url, ALICE).unwrap());
    h.fake.inject(
        Endpoint::Token,
        Fault::Raw {
            status: 200,
            headers: vec![],
            body: json!({
                "access_token": "ya29.x",
                "expires_in": 3599,
                "refresh_token": "1//r",
                "scope": "openid https://www.googleapis.com/auth/userinfo.email",
                "token_type": "Bearer",
            })
            .to_string(),
        },
    );
    let err = plugin
        .complete(&callback)
        .expect_err("a grant without contacts.readonly must not connect");
    assert_eq!(
        err.code,
        GiResult::GI_ERR_DENIED,
        "the token reply's scope lacks contacts.readonly: {err}"
    );
    assert!(
        err.message.contains("contacts"),
        "the message says to tick the contacts permission: {err}"
    );
    assert!(
        !err.message.contains("ya29.x") && !err.message.contains("1//r"),
        "no token in the message: {err}"
    );
    assert_eq!(plugin.status(ACCOUNT), GiStatus::GI_STATUS_DISCONNECTED);
    assert_eq!(plugin.status_value(ACCOUNT)["status"], "disconnected");

    // Control: the same stripped redirect with Google's real token reply (which grants
    // contacts.readonly) connects, so the denial above came from the token reply.
    let url = plugin.auth_url(ACCOUNT).unwrap();
    let callback = without_scope(&h.fake.approve(&url, ALICE).unwrap());
    assert_eq!(
        plugin.complete(&callback).map_err(|e| e.to_string()),
        Ok(ACCOUNT.to_owned()),
        "a redirect without scope= and a token reply granting contacts.readonly connects"
    );
    assert_eq!(plugin.status(ACCOUNT), GiStatus::GI_STATUS_CONNECTED);
}

// ---------------------------------------------------------------------------------------------
// 9. Retry-After as an HTTP date
// ---------------------------------------------------------------------------------------------

#[test]
fn a_retry_after_http_date_is_honoured() {
    const ACCOUNT: &str = "httpdate.example";
    let h = Harness::new();
    h.fake.set_contacts(ALICE, three_people());
    // Two seconds from now, rounded up to a whole second (HTTP dates have no fractions), so
    // that it is at least 2 s away when it is made.
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap();
    let at = SystemTime::UNIX_EPOCH + Duration::from_secs(now.as_secs() + 3);
    let date = httpdate::fmt_http_date(at);
    h.fake.inject(
        Endpoint::People,
        Fault::Raw {
            status: 429,
            headers: vec![("Retry-After".into(), date.clone())],
            body: json!({"error": {
                "code": 429,
                "message": "Quota exceeded for quota metric 'Read requests' and limit 'Read requests per minute per user' of service 'people.googleapis.com'.",
                "status": "RESOURCE_EXHAUSTED",
            }})
            .to_string(),
        },
    );
    let plugin = h.open();
    h.connect_and_sync(&plugin, ACCOUNT, ALICE);

    let requests = h.fake.requests_to(Endpoint::People);
    assert_eq!(
        requests.len(),
        2,
        "one 429, then one retry that succeeds ({} People requests)",
        requests.len()
    );
    assert_eq!(requests[0].status, 429);
    let waited = requests[1].received - requests[0].received;
    assert!(
        waited >= Duration::from_millis(1500),
        "Retry-After: {date} (about 2 s away) asked for a wait, but the retry came after {waited:?}"
    );
    assert!(
        waited < Duration::from_secs(10),
        "Retry-After: {date} asked for about 2 s, but the retry came after {waited:?}"
    );
    let status = plugin.status_value(ACCOUNT);
    assert_eq!(status["status"], "connected", "{status}");
    assert_eq!(status["contacts"], 3, "{status}");
}

// ---------------------------------------------------------------------------------------------
// 10. A Retry-After longer than a sync waits
// ---------------------------------------------------------------------------------------------

#[test]
fn a_retry_after_of_an_hour_defers_the_sync_without_turning_yellow() {
    const ACCOUNT: &str = "deferred.example";
    capture_logs();
    let h = Harness::new();
    h.fake.set_contacts(ALICE, three_people());
    let plugin = h.open();
    h.connect_and_sync(&plugin, ACCOUNT, ALICE);

    h.fake.inject(
        Endpoint::People,
        Fault::RateLimited {
            retry_after_secs: 3600,
        },
    );
    let before = people_requests(&h);
    plugin.sync_now(ACCOUNT).unwrap();
    // The sync must end (not sleep for an hour) ...
    let status = wait_for_people_requests(&h, &plugin, ACCOUNT, before, 1);
    // ... and not retry at once against Google's wish.
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        people_requests(&h),
        before + 1,
        "Google asked to wait an hour: no retry now"
    );
    assert_eq!(
        h.fake.requests_to(Endpoint::People)[before].status,
        429,
        "the request met the 429"
    );
    let status_now = plugin.status_value(ACCOUNT);
    assert_eq!(status_now["syncing"], false, "{status_now}");
    assert_eq!(
        status_now["status"], "connected",
        "one 429 is a retry, not an issue: {status_now} (at the end of the sync: {status})"
    );
    assert_eq!(plugin.status(ACCOUNT), GiStatus::GI_STATUS_CONNECTED);
    assert_eq!(
        status_now["reason"],
        Value::Null,
        "no yellow reason for one deferred retry: {status_now}"
    );
    assert_known_people_answer(&plugin, ACCOUNT, "while the sync is deferred");

    let lines: Vec<String> = logged_lines()
        .into_iter()
        .filter(|l| l.contains(ACCOUNT))
        .collect();
    assert!(
        lines.iter().any(|l| l.to_lowercase().contains("retry")),
        "the deferral is logged as a retry; the account's lines were: {lines:#?}"
    );
}

#[test]
fn long_retry_afters_count_as_retries_and_the_fourth_turns_the_account_yellow() {
    const ACCOUNT: &str = "deferred-often.example";
    let h = Harness::new();
    h.fake.set_contacts(ALICE, three_people());
    let plugin = h.open();
    h.connect_and_sync(&plugin, ACCOUNT, ALICE);
    // A 503 asking for an hour (a 429 would pause the whole OAuth client: see tests/scale.rs).
    h.fake
        .set_sticky_fault(Endpoint::People, Some(unavailable_for("3600")));
    // The first attempt and three retries (Sync now stands in for the hour Google asked).
    for attempt in 1..=4 {
        let before = people_requests(&h);
        plugin.sync_now(ACCOUNT).unwrap();
        let status = wait_for_people_requests(&h, &plugin, ACCOUNT, before, 1);
        if attempt < 4 {
            assert_eq!(
                status["status"], "connected",
                "after attempt {attempt}: {status}"
            );
        } else {
            assert!(
                wait_until(PATIENCE, || plugin.status_value(ACCOUNT)["status"]
                    == "issue"),
                "yellow after the third retry: {status}"
            );
        }
    }
    let status = plugin.status_value(ACCOUNT);
    assert!(
        status["reason"]
            .as_str()
            .is_some_and(|r| r.contains("3 retries")),
        "{status}"
    );
    // Google answers again: green.
    h.fake.set_sticky_fault(Endpoint::People, None);
    let before = people_requests(&h);
    plugin.sync_now(ACCOUNT).unwrap();
    let status = wait_for_people_requests(&h, &plugin, ACCOUNT, before, 1);
    assert!(
        wait_until(PATIENCE, || plugin.status_value(ACCOUNT)["status"]
            == "connected"),
        "{status}"
    );
}

#[test]
fn a_retry_after_past_the_end_of_the_clock_defers_the_sync_and_every_worker_lives_on() {
    const ACCOUNT: &str = "deferred-forever.example";
    let h = Harness::new();
    h.fake.set_contacts(ALICE, three_people());
    let plugin = h.open();
    h.connect_and_sync(&plugin, ACCOUNT, ALICE);
    // u64::MAX seconds: read as is, the account's next run is past what the clock can
    // hold, and the sync worker that computed it panicked and was gone. The plugin has four.
    // (A 503: a 429 would pause the whole OAuth client, and the attempts after the first
    // would be deferred without a request.)
    h.fake.set_sticky_fault(
        Endpoint::People,
        Some(unavailable_for(&u64::MAX.to_string())),
    );
    for attempt in 1..=6 {
        let before = people_requests(&h);
        plugin.sync_now(ACCOUNT).unwrap();
        let people = || people_requests(&h);
        assert!(
            wait_until(PATIENCE, || people() > before),
            "attempt {attempt}: Sync now made no request (no sync worker left to run it)"
        );
        wait_for_people_requests(&h, &plugin, ACCOUNT, before, 1);
    }
    let status = plugin.status_value(ACCOUNT);
    assert_eq!(status["status"], "issue", "past three retries: {status}");
    assert!(
        status["next_sync"].is_string(),
        "the account stays on the schedule: {status}"
    );

    h.fake.set_sticky_fault(Endpoint::People, None);
    h.fake.set_contacts(
        ALICE,
        three_people()
            .into_iter()
            .chain([
                Person::new("people/c200", "Later", "Person").with_phone_canonical(
                    "(415) 555-0200",
                    "+14155550200",
                    "mobile",
                ),
            ])
            .collect(),
    );
    sync_and_wait(&h, &plugin, ACCOUNT);
    wait_for_green(&plugin, ACCOUNT);
    assert_eq!(
        name(&plugin, ACCOUNT, "+14155550200").as_deref(),
        Some("Later Person"),
        "syncs run again once Google answers"
    );
}

// ---------------------------------------------------------------------------------------------
// 11. No sync token or page token in any message
// ---------------------------------------------------------------------------------------------

#[test]
fn no_sync_token_or_page_token_reaches_the_status_or_the_log() {
    const ACCOUNT: &str = "tokens.example";
    const PAGE_TOKEN_1: &str = "PAGETOKEN-SECRET-1";
    const PAGE_TOKEN_2: &str = "PAGETOKEN-SECRET-2";
    capture_logs();
    let h = Harness::new();
    h.fake.set_contacts(ALICE, three_people());
    let plugin = h.open();
    h.connect_and_sync(&plugin, ACCOUNT, ALICE);
    let mut seen: Vec<String> = Vec::new(); // every status JSON the host got

    let first_page = |token: &str| {
        page(json!({
            "connections": [person_json("people/c500", "Paged Person", "+14155550500")],
            "nextPageToken": token,
        }))
    };

    // A: Google answers the first page of an incremental sync, then only 503s.
    let before = people_requests(&h);
    h.fake.inject(Endpoint::People, first_page(PAGE_TOKEN_1));
    h.fake
        .set_sticky_fault(Endpoint::People, Some(Fault::Status(503)));
    plugin.sync_now(ACCOUNT).unwrap();
    let status = wait_for_issue(&plugin, ACCOUNT, PATIENCE);
    h.fake.set_sticky_fault(Endpoint::People, None);
    seen.push(status.to_string());
    seen.push(plugin.status_json(ACCOUNT).unwrap());
    let requests = h.fake.requests_to(Endpoint::People);
    let sync_token = requests[before]
        .query_param("syncToken")
        .expect("the incremental sync sends the stored sync token")
        .to_owned();
    assert!(sync_token.len() >= 8, "a real sync token: {sync_token}");
    assert_eq!(
        requests[before + 1].query_param("pageToken"),
        Some(PAGE_TOKEN_1),
        "the page token was followed, so it was in the URL of the failing requests"
    );
    assert!(
        requests.len() - before >= 2,
        "the page token's request failed (and was retried)"
    );

    // B: Google goes away while the second page is in flight: the connection is cut, then
    // refused. Network errors are where a URL (with its tokens) slips into a message.
    let before = people_requests(&h);
    h.fake.inject(Endpoint::People, first_page(PAGE_TOKEN_2));
    h.fake
        .inject(Endpoint::People, Fault::Delay(Duration::from_secs(20)));
    plugin.sync_now(ACCOUNT).unwrap();
    assert!(
        wait_until(PATIENCE, || people_requests(&h) >= before + 2),
        "the second page was not asked for"
    );
    let requests = h.fake.requests_to(Endpoint::People);
    assert_eq!(
        requests[before + 1].query_param("pageToken"),
        Some(PAGE_TOKEN_2)
    );
    assert_eq!(
        requests[before].query_param("syncToken"),
        Some(sync_token.as_str())
    );
    let Harness {
        fake,
        dir: _dir,
        pg: _pg,
    } = h;
    drop(fake);
    let status = wait_for_issue(&plugin, ACCOUNT, PATIENCE);
    seen.push(status.to_string());
    seen.push(plugin.status_json(ACCOUNT).unwrap());
    assert_known_people_answer(&plugin, ACCOUNT, "after the failed syncs");
    drop(plugin);

    let lines = logged_lines();
    assert!(
        lines.iter().any(|l| l.contains(ACCOUNT)),
        "the logger captured this test's run: {} lines",
        lines.len()
    );
    for secret in [PAGE_TOKEN_1, PAGE_TOKEN_2, sync_token.as_str()] {
        for text in &seen {
            assert!(
                !text.contains(secret),
                "a sync or page token ({secret}) leaked into gi_status_json: {text}"
            );
        }
        for line in &lines {
            assert!(
                !line.contains(secret),
                "a sync or page token ({secret}) leaked into the log: {line}"
            );
        }
    }
}
