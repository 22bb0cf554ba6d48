//! Contact sources through the C ABI: the account's own contacts, the Workspace directory and
//! "other contacts", each synced with its own requests and sync token and landing on its own.
//! The sync tests that matter per source (paging, incremental, expired token, 401/429/5xx,
//! a source that keeps failing) run for every source, with the other two configured beside it
//! and checked to stay current.

mod common;

use std::time::Duration;

use common::*;
use host_sim::fake_google::{Endpoint, Fault, Person};
use host_sim::plugin::{GiSearchMode, GiStatus, Plugin};
use serde_json::{json, Value};

const ACCOUNT: &str = "example.com";
/// Alice's organisation: her email's domain, a Workspace domain once it has a directory.
const ORG: &str = "example.com";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Src {
    Contacts,
    Directory,
    Other,
}

const ALL: [Src; 3] = [Src::Contacts, Src::Directory, Src::Other];

impl Src {
    fn name(self) -> &'static str {
        match self {
            Src::Contacts => "contacts",
            Src::Directory => "directory",
            Src::Other => "other_contacts",
        }
    }

    fn endpoint(self) -> Endpoint {
        match self {
            Src::Contacts => Endpoint::People,
            Src::Directory => Endpoint::Directory,
            Src::Other => Endpoint::OtherContacts,
        }
    }

    fn path(self) -> &'static str {
        match self {
            Src::Contacts => "/v1/people/me/connections",
            Src::Directory => "/v1/people:listDirectoryPeople",
            Src::Other => "/v1/otherContacts",
        }
    }

    /// Each source's numbers are its own: 212-555-1xxx, -2xxx, -3xxx.
    fn digit(self) -> usize {
        match self {
            Src::Contacts => 1,
            Src::Directory => 2,
            Src::Other => 3,
        }
    }

    fn resource(self, i: usize) -> String {
        match self {
            Src::Contacts => format!("people/c{}", 1000 + i),
            Src::Directory => format!("people/1{:05}", i),
            Src::Other => format!("otherContacts/c{}", 1000 + i),
        }
    }

    fn number(self, i: usize) -> String {
        format!("+1212555{}{:03}", self.digit(), i)
    }

    fn person(self, i: usize, version: &str) -> Person {
        let person = Person::new(
            &self.resource(i),
            &format!("{version}{}", self.digit()),
            &format!("Person{i:03}"),
        )
        .with_phone(&self.number(i), "mobile");
        match self {
            // Google allows no organizations among other contacts.
            Src::Other => person,
            _ => person.with_company("Example Corp"),
        }
    }

    fn seed(self, h: &Harness, people: Vec<Person>) {
        match self {
            Src::Contacts => h.fake.set_contacts(ALICE, people),
            Src::Directory => h.fake.set_directory(ORG, people),
            Src::Other => h.fake.set_other_contacts(ALICE, people),
        }
    }

    fn upsert(self, h: &Harness, person: Person) {
        match self {
            Src::Contacts => h.fake.upsert_contact(ALICE, person),
            Src::Directory => h.fake.upsert_directory_person(ORG, person),
            Src::Other => h.fake.upsert_other_contact(ALICE, person),
        }
    }

    fn delete(self, h: &Harness, resource: &str) {
        match self {
            Src::Contacts => h.fake.delete_contact(ALICE, resource),
            Src::Directory => h.fake.delete_directory_person(ORG, resource),
            Src::Other => h.fake.delete_other_contact(ALICE, resource),
        }
    }

    fn requests(self, h: &Harness) -> Vec<host_sim::fake_google::Request> {
        h.fake.requests_to(self.endpoint())
    }
}

fn all_sources(h: &Harness) -> Value {
    let mut config = h.config();
    config["sources"] = json!(["contacts", "directory", "other_contacts"]);
    config
}

/// Every source seeded with `count` people of version `version`.
fn seed_all(h: &Harness, count: usize, version: &str) {
    for src in ALL {
        src.seed(h, (0..count).map(|i| src.person(i, version)).collect());
    }
}

fn shown(plugin: &Plugin<'_>, account: &str, number: &str) -> Option<(String, String)> {
    plugin
        .lookup(account, number)
        .expect("lookup")
        .map(|c| (c.name, c.source))
}

/// Connected with every source, each holding 5 people ("A" version), first sync landed.
fn connected_with_all_sources() -> (Harness, Plugin<'static>) {
    let h = Harness::new();
    seed_all(&h, 5, "A");
    let plugin = h.open_with(&all_sources(&h));
    h.connect_and_sync(&plugin, ACCOUNT, ALICE);
    assert_landed(&plugin, "A", 5);
    (h, plugin)
}

/// Every source answers its people with the given version, and says which source it is.
fn assert_landed(plugin: &Plugin<'_>, version: &str, count: usize) {
    for src in ALL {
        for i in 0..count {
            assert_eq!(
                shown(plugin, ACCOUNT, &src.number(i)),
                Some((
                    format!("{version}{} Person{i:03}", src.digit()),
                    src.name().to_owned()
                )),
                "{src:?} #{i}"
            );
        }
    }
}

/// Sync now, and wait until the sync has run and settled.
fn sync_now_and_wait(h: &Harness, plugin: &Plugin<'_>) -> Value {
    let before = h.fake.requests().len();
    let was_issue = plugin.status_value(ACCOUNT)["status"] == "issue";
    plugin.sync_now(ACCOUNT).expect("gi_sync_now");
    // Started: it asked Google something, or (a scope missing, asked nothing) turned yellow.
    // An account yellow already must ask: its status alone says nothing of this sync.
    assert!(
        wait_until(PATIENCE, || h.fake.requests().len() > before
            || (!was_issue
                && plugin.status_value(ACCOUNT)["status"] == "issue")),
        "the sync did not start"
    );
    let mut status = Value::Null;
    assert!(wait_until(PATIENCE, || {
        status = plugin.status_value(ACCOUNT);
        status["syncing"] == false
    }));
    status
}

/// Sync now, and wait until the given source's endpoint has answered `count` more requests
/// and the account is idle.
fn sync_and_wait_for(h: &Harness, plugin: &Plugin<'_>, src: Src, count: usize) -> Value {
    let before = src.requests(h).len();
    plugin.sync_now(ACCOUNT).expect("gi_sync_now");
    assert!(
        wait_until(PATIENCE, || src.requests(h).len() >= before + count),
        "{src:?}: expected {count} more requests"
    );
    let mut status = Value::Null;
    assert!(wait_until(PATIENCE, || {
        status = plugin.status_value(ACCOUNT);
        status["syncing"] == false
    }));
    status
}

#[test]
fn each_source_pages_to_the_end_with_its_own_request_and_asks_for_a_sync_token() {
    let h = Harness::new();
    seed_all(&h, 7, "A");
    h.fake.set_page_size_cap(3);
    let plugin = h.open_with(&all_sources(&h));
    h.connect_and_sync(&plugin, ACCOUNT, ALICE);
    assert_landed(&plugin, "A", 7);
    let status = plugin.status_value(ACCOUNT);
    assert_eq!(status["status"], "connected", "{status}");
    assert_eq!(
        (status["contacts"].as_u64(), status["numbers"].as_u64()),
        (Some(21), Some(21))
    );
    for src in ALL {
        let report = &status["sources"][src.name()];
        assert_eq!(report["contacts"], 7, "{src:?}: {status}");
        assert_eq!(report["numbers"], 7);
        assert!(report["last_sync"]
            .as_str()
            .is_some_and(|t| t.contains('T')));
        assert_eq!(report["last_error"], Value::Null);
        let requests = src.requests(&h);
        assert_eq!(requests.len(), 3, "{src:?}: 7 people in pages of 3");
        for r in &requests {
            assert_eq!(r.path, src.path());
            assert_eq!(r.query_param("pageSize"), Some("1000"));
            assert_eq!(r.query_param("requestSyncToken"), Some("true"));
            assert_eq!(r.query_param("syncToken"), None);
            match src {
                Src::Contacts => assert!(r.query_param("readMask").is_none()),
                Src::Other => assert_eq!(
                    r.query_param("readMask"),
                    Some("names,phoneNumbers,emailAddresses,metadata")
                ),
                Src::Directory => {
                    assert_eq!(
                        r.query_param("readMask"),
                        Some("names,phoneNumbers,organizations,emailAddresses,metadata")
                    );
                    let kinds: Vec<&str> = r
                        .query
                        .iter()
                        .filter(|(k, _)| k == "sources")
                        .map(|(_, v)| v.as_str())
                        .collect();
                    assert_eq!(
                        kinds,
                        [
                            "DIRECTORY_SOURCE_TYPE_DOMAIN_PROFILE",
                            "DIRECTORY_SOURCE_TYPE_DOMAIN_CONTACT"
                        ]
                    );
                }
            }
        }
        assert!(requests[1].query_param("pageToken").is_some());
    }
}

#[test]
fn an_incremental_sync_of_each_source_applies_its_changes_and_deletions_only() {
    for src in ALL {
        let (h, plugin) = connected_with_all_sources();
        src.upsert(&h, src.person(0, "B"));
        src.delete(&h, &src.resource(1));
        src.upsert(&h, src.person(7, "B"));
        h.fake.clear_requests();
        sync_now_and_wait(&h, &plugin);
        let incremental = src.requests(&h);
        assert_eq!(incremental.len(), 1, "{src:?}");
        assert!(incremental[0].query_param("syncToken").is_some(), "{src:?}");
        assert_eq!(
            shown(&plugin, ACCOUNT, &src.number(0)).map(|s| s.0),
            Some(format!("B{} Person000", src.digit()))
        );
        assert_eq!(
            shown(&plugin, ACCOUNT, &src.number(1)),
            None,
            "{src:?}: deleted"
        );
        assert_eq!(
            shown(&plugin, ACCOUNT, &src.number(7)),
            Some((format!("B{} Person007", src.digit()), src.name().into()))
        );
        for other in ALL.into_iter().filter(|o| *o != src) {
            for i in 0..5 {
                assert_eq!(
                    shown(&plugin, ACCOUNT, &other.number(i)).map(|s| s.0),
                    Some(format!("A{} Person{i:03}", other.digit())),
                    "{other:?} untouched by {src:?}'s changes"
                );
            }
        }
        let status = plugin.status_value(ACCOUNT);
        assert_eq!(status["sources"][src.name()]["contacts"], 5, "{status}");
        assert_eq!(status["contacts"], 15);
    }
}

#[test]
fn an_expired_sync_token_runs_one_full_sync_of_that_source_only() {
    for src in ALL {
        let (h, plugin) = connected_with_all_sources();
        src.upsert(&h, src.person(0, "B"));
        h.fake.inject(src.endpoint(), Fault::ExpiredSyncToken);
        h.fake.clear_requests();
        let status = sync_now_and_wait(&h, &plugin);
        assert_eq!(status["status"], "connected", "{src:?}: {status}");
        let requests = src.requests(&h);
        assert_eq!(
            requests.len(),
            2,
            "{src:?}: the refused token, then one full sync"
        );
        assert!(requests[0].query_param("syncToken").is_some());
        assert!(requests[1].query_param("syncToken").is_none());
        for other in ALL.into_iter().filter(|o| *o != src) {
            let theirs = other.requests(&h);
            assert_eq!(theirs.len(), 1, "{other:?}: incremental only");
            assert!(theirs[0].query_param("syncToken").is_some());
        }
        assert_eq!(
            shown(&plugin, ACCOUNT, &src.number(0)).map(|s| s.0),
            Some(format!("B{} Person000", src.digit()))
        );
        assert_landed_except(&plugin, src, 0);
    }
}

/// Every source but `src`'s person `changed` answers with version "A".
fn assert_landed_except(plugin: &Plugin<'_>, src: Src, changed: usize) {
    for other in ALL {
        for i in (0..5).filter(|&i| other != src || i != changed) {
            assert_eq!(
                shown(plugin, ACCOUNT, &other.number(i)).map(|s| s.0),
                Some(format!("A{} Person{i:03}", other.digit())),
                "{other:?} #{i}"
            );
        }
    }
}

#[test]
fn a_401_a_429_and_a_503_on_a_source_are_retried_and_the_source_lands() {
    for src in ALL {
        let (h, plugin) = connected_with_all_sources();
        src.upsert(&h, src.person(0, "B"));
        h.fake.inject(src.endpoint(), Fault::Status(401));
        h.fake.inject(
            src.endpoint(),
            Fault::RateLimited {
                retry_after_secs: 1,
            },
        );
        h.fake.inject(src.endpoint(), Fault::Status(503));
        h.fake.clear_requests();
        let status = sync_now_and_wait(&h, &plugin);
        assert_eq!(status["status"], "connected", "{src:?}: {status}");
        assert_eq!(h.fake.pending_faults(src.endpoint()), 0);
        assert_eq!(
            src.requests(&h).len(),
            4,
            "{src:?}: 3 faults, then the page"
        );
        assert!(
            !h.fake.requests_to(Endpoint::Token).is_empty(),
            "the 401 refreshed the access token"
        );
        assert_eq!(
            shown(&plugin, ACCOUNT, &src.number(0)).map(|s| s.0),
            Some(format!("B{} Person000", src.digit()))
        );
        assert_landed_except(&plugin, src, 0);
    }
}

#[test]
fn a_source_that_keeps_failing_leaves_the_other_sources_current_and_then_recovers() {
    for (src, fault) in ALL
        .into_iter()
        .flat_map(|src| [(src, Fault::Status(500)), (src, Fault::WrongType)])
    {
        let (h, plugin) = connected_with_all_sources();
        for s in ALL {
            s.upsert(&h, s.person(0, "B"));
        }
        h.fake.set_sticky_fault(src.endpoint(), Some(fault.clone()));
        let status = sync_now_and_wait(&h, &plugin);
        assert_eq!(status["status"], "issue", "{src:?} {fault:?}: {status}");
        assert_eq!(plugin.status(ACCOUNT), GiStatus::GI_STATUS_ISSUE);
        let reason = status["reason"].as_str().unwrap();
        assert!(reason.contains("after 3 retries"), "{reason}");
        let error = status["sources"][src.name()]["last_error"].as_str();
        assert!(error.is_some_and(|e| e.contains("retries")), "{status}");
        for s in ALL {
            let expected = if s == src { "A" } else { "B" };
            assert_eq!(
                shown(&plugin, ACCOUNT, &s.number(0)).map(|s| s.0),
                Some(format!("{expected}{} Person000", s.digit())),
                "{s:?} while {src:?} fails with {fault:?}"
            );
            if s != src {
                assert_eq!(status["sources"][s.name()]["last_error"], Value::Null);
            }
        }
        // The failing source keeps every contact it had.
        assert_eq!(status["sources"][src.name()]["contacts"], 5);
        h.fake.set_sticky_fault(src.endpoint(), None);
        let status = sync_now_and_wait(&h, &plugin);
        assert_eq!(status["status"], "connected", "{status}");
        assert_eq!(status["sources"][src.name()]["last_error"], Value::Null);
        assert_eq!(
            shown(&plugin, ACCOUNT, &src.number(0)).map(|s| s.0),
            Some(format!("B{} Person000", src.digit()))
        );
    }
}

/// Each source's last sync is when it landed, as the store wrote it, and the account's the
/// latest of them: not when the account's sync ended. A reload of the account from the store
/// (a restart, or the follower of a cluster's store, which hears this node's own notices)
/// must show what memory showed, or the status steps back, and whoever waits for the last
/// sync to change takes that step for a new sync.
#[test]
fn the_status_shows_the_last_syncs_the_store_wrote() {
    let h = Harness::new();
    seed_all(&h, 2, "A");
    // The directory lands a second and a half after the other two, and the account's sync
    // ends only then.
    h.fake.inject(
        Endpoint::Directory,
        Fault::Delay(std::time::Duration::from_millis(1500)),
    );
    let config = all_sources(&h);
    let plugin = h.open_with(&config);
    h.connect_and_sync(&plugin, ACCOUNT, ALICE);
    let shown = plugin.status_value(ACCOUNT);
    let at = |status: &Value, src: Src| status["sources"][src.name()]["last_sync"].clone();
    assert_ne!(
        at(&shown, Src::Contacts),
        at(&shown, Src::Directory),
        "the delay must part the sources' landings: {shown}"
    );
    drop(plugin);
    let reopened = h.open_with(&config);
    let stored = reopened.status_value(ACCOUNT);
    for src in ALL {
        assert_eq!(
            at(&shown, src),
            at(&stored, src),
            "{src:?}: {shown} then {stored}"
        );
    }
    assert_eq!(shown["last_sync"], stored["last_sync"]);
    assert_eq!(shown["last_sync"], at(&shown, Src::Directory));
}

#[test]
fn lookups_try_contacts_then_directory_then_other_contacts_then_the_domain() {
    let h = Harness::new();
    let shared = "+12125559000";
    let with =
        |src: Src, name: &str| Person::new(&src.resource(900), name, "").with_phone(shared, "work");
    h.fake
        .set_contacts(ALICE, vec![with(Src::Contacts, "Saved")]);
    h.fake
        .set_directory(ORG, vec![with(Src::Directory, "Colleague")]);
    h.fake
        .set_other_contacts(ALICE, vec![with(Src::Other, "Correspondent")]);
    h.fake
        .set_contacts(BOB, vec![with(Src::Contacts, "Domain")]);
    let plugin = h.open_with(&all_sources(&h));
    let user = "example.com/40";
    h.connect_and_sync(&plugin, user, ALICE);
    h.connect_and_sync(&plugin, ACCOUNT, BOB);
    let answer = || shown(&plugin, user, "(212) 555-9000");
    assert_eq!(answer(), Some(("Saved".into(), "contacts".into())));
    // A sync of the user asks each of its three sources again, and lands a second later
    // than the last one.
    let resync = |account: &str| {
        let before = plugin.status_value(account)["last_sync"].clone();
        let asked = |src: Src| src.requests(&h).len();
        let asked_before = ALL.map(asked);
        std::thread::sleep(std::time::Duration::from_millis(1100));
        plugin.sync_now(account).unwrap();
        assert!(wait_until(PATIENCE, || {
            let s = plugin.status_value(account);
            s["syncing"] == false
                && s["last_sync"] != before
                && ALL.iter().zip(asked_before).all(|(&src, n)| asked(src) > n)
        }));
    };
    h.fake.delete_contact(ALICE, &Src::Contacts.resource(900));
    resync(user);
    assert_eq!(answer(), Some(("Colleague".into(), "directory".into())));
    h.fake
        .delete_directory_person(ORG, &Src::Directory.resource(900));
    resync(user);
    assert_eq!(
        answer(),
        Some(("Correspondent".into(), "other_contacts".into()))
    );
    h.fake
        .delete_other_contact(ALICE, &Src::Other.resource(900));
    resync(user);
    let domain = plugin.lookup(user, shared).unwrap().expect("the domain's");
    assert_eq!(
        (
            domain.name.as_str(),
            domain.account.as_str(),
            domain.source.as_str()
        ),
        ("Domain", ACCOUNT, "contacts")
    );
}

#[test]
fn a_search_covers_every_source_and_names_each_rows_source() {
    let (_h, plugin) = connected_with_all_sources();
    // Everything, and on a keypad "2", which spells the "a" every source's names start with
    // ("A1", "A2", "A3"): each row names its source.
    for (query, mode) in [
        ("", GiSearchMode::GI_SEARCH_TEXT),
        ("2", GiSearchMode::GI_SEARCH_KEYPAD),
    ] {
        let (rows, total) = plugin.search(ACCOUNT, query, mode, 0, 100).expect("search");
        assert_eq!(total, 15, "{query:?}");
        for src in ALL {
            assert_eq!(
                rows.iter().filter(|r| r.source == src.name()).count(),
                5,
                "{query:?} {src:?}"
            );
        }
    }
    // "a2" is a word prefix of the directory's names only.
    let (rows, total) = plugin
        .search(ACCOUNT, "a2", GiSearchMode::GI_SEARCH_TEXT, 0, 10)
        .expect("search");
    assert_eq!(total, 5);
    assert!(rows.iter().all(|r| r.source == "directory"), "{rows:?}");
    // "23" spells nothing: the keypad spells letters only.
    let (_, total) = plugin
        .search(ACCOUNT, "23", GiSearchMode::GI_SEARCH_KEYPAD, 0, 10)
        .expect("keypad");
    assert_eq!(total, 0, "the 3 of \"A3\" is a digit");
}

#[test]
fn a_consumer_account_with_the_directory_configured_is_yellow_and_its_other_sources_sync() {
    let h = Harness::new();
    // No directory for gmail.com: it is not a Workspace domain.
    let carol = CONSUMER;
    h.fake.add_user(carol, "Carol Consumer");
    h.fake
        .set_contacts(carol, vec![Src::Contacts.person(0, "A")]);
    h.fake
        .set_other_contacts(carol, vec![Src::Other.person(0, "A")]);
    let plugin = h.open_with(&all_sources(&h));
    h.connect(&plugin, ACCOUNT, carol);
    let status = wait_for_sync(&plugin, ACCOUNT, 1);
    assert_eq!(status["status"], "issue", "{status}");
    let reason = status["reason"].as_str().unwrap();
    assert!(
        reason.contains("needs a Google Workspace account")
            && reason.contains("remove \"directory\" from sources"),
        "{reason}"
    );
    assert!(status["sources"]["directory"]["last_error"]
        .as_str()
        .is_some_and(|e| e.contains("Workspace")));
    assert_eq!(status["sources"]["contacts"]["contacts"], 1);
    assert_eq!(status["sources"]["other_contacts"]["contacts"], 1);
    assert!(shown(&plugin, ACCOUNT, &Src::Contacts.number(0)).is_some());
    assert!(shown(&plugin, ACCOUNT, &Src::Other.number(0)).is_some());
}

/// The reason above names the fix: remove "directory" from the domain's sources. Done, and
/// the PBX restarted, the account is green at once: it said "remove directory" until its
/// next sync, up to an interval later, while `sources` no longer even listed it.
#[test]
fn removing_the_failing_source_from_the_configuration_turns_the_account_green_at_the_next_open() {
    let h = Harness::new();
    let carol = CONSUMER;
    h.fake.add_user(carol, "Carol Consumer");
    h.fake
        .set_contacts(carol, vec![Src::Contacts.person(0, "A")]);
    let plugin = h.open_with(&all_sources(&h));
    h.connect(&plugin, ACCOUNT, carol);
    let status = wait_for_sync(&plugin, ACCOUNT, 1);
    assert_eq!(status["status"], "issue", "{status}");
    drop(plugin);

    // Still failing elsewhere: yellow, for what still fails only.
    h.fake
        .set_sticky_fault(Src::Other.endpoint(), Some(Fault::Status(500)));
    let plugin = h.open_with(&all_sources(&h));
    let status = sync_and_wait_for(&h, &plugin, Src::Other, 1);
    assert_eq!(status["status"], "issue", "{status}");
    drop(plugin);
    let mut config = h.config();
    config["sources"] = json!(["contacts", "other_contacts"]);
    let plugin = h.open_with(&config);
    let status = plugin.status_value(ACCOUNT);
    assert_eq!(status["status"], "issue", "{status}");
    let reason = status["reason"].as_str().unwrap_or_default();
    assert!(
        reason.starts_with("the other contacts:") && !reason.contains("directory"),
        "{status}"
    );
    drop(plugin);

    config["sources"] = json!(["contacts"]);
    let plugin = h.open_with(&config);
    let status = plugin.status_value(ACCOUNT);
    assert_eq!(status["status"], "connected", "{status}");
    assert_eq!(status["reason"], Value::Null, "{status}");
    assert_eq!(plugin.status(ACCOUNT), GiStatus::GI_STATUS_CONNECTED);
    drop(plugin);
    // Stored so: the next open says the same.
    let plugin = h.open_with(&config);
    assert_eq!(plugin.status(ACCOUNT), GiStatus::GI_STATUS_CONNECTED);
    assert!(shown(&plugin, ACCOUNT, &Src::Contacts.number(0)).is_some());
}

#[test]
fn a_source_scope_unticked_at_consent_is_yellow_saying_get_auth_code_and_google_is_not_asked() {
    for (src, scope, words) in [
        (
            Src::Other,
            "contacts.other.readonly",
            "grant access to other contacts",
        ),
        (
            Src::Directory,
            "directory.readonly",
            "grant access to the directory",
        ),
    ] {
        let h = Harness::new();
        seed_all(&h, 2, "A");
        let plugin = h.open_with(&all_sources(&h));
        let url = plugin.auth_url(ACCOUNT).expect("gi_auth_url");
        let query = h
            .fake
            .approve_unticking(&url, ALICE, &[scope])
            .expect("consent");
        plugin
            .complete(&query)
            .expect("gi_complete connects without it");
        let status = wait_for_sync(&plugin, ACCOUNT, 1);
        assert_eq!(status["status"], "issue", "{status}");
        let reason = status["reason"].as_str().unwrap();
        assert!(
            reason.contains(words) && reason.contains("Get auth code"),
            "{reason}"
        );
        let scopes: Vec<&str> = status["scopes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap())
            .collect();
        assert!(!scopes.iter().any(|s| s.ends_with(scope)), "{scopes:?}");
        assert!(scopes.iter().any(|s| s.ends_with("contacts.readonly")));
        assert!(
            src.requests(&h).is_empty(),
            "{src:?}: never asked without its scope"
        );
        for other in ALL.into_iter().filter(|o| *o != src) {
            assert_eq!(status["sources"][other.name()]["contacts"], 2, "{status}");
        }
    }
}

#[test]
fn google_refusing_a_source_for_its_scope_names_the_source_and_the_fix() {
    let (h, plugin) = connected_with_all_sources();
    h.fake
        .set_sticky_fault(Endpoint::OtherContacts, Some(Fault::Status(403)));
    let status = sync_now_and_wait(&h, &plugin);
    assert_eq!(status["status"], "issue");
    let reason = status["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("the other contacts:") && reason.contains("Get auth code"),
        "{reason}"
    );
}

#[test]
fn the_auth_url_asks_for_exactly_the_scopes_of_the_accounts_sources() {
    let h = Harness::new();
    let mut config = h.config();
    config["domains"] = json!({
        "acme.de": { "sources": ["contacts", "directory"] },
        "other.de": { "sources": ["other_contacts"], "calendar": true },
    });
    let plugin = h.open_with(&config);
    let scopes = |account: &str| -> Vec<String> {
        let mut s: Vec<String> = param(&plugin.auth_url(account).unwrap(), "scope")
            .unwrap()
            .split(' ')
            .map(|s| {
                s.trim_start_matches("https://www.googleapis.com/auth/")
                    .to_owned()
            })
            .collect();
        s.sort();
        s
    };
    assert_eq!(scopes("example.com/1"), ["contacts.readonly"]);
    assert_eq!(
        scopes("acme.de/40"),
        ["contacts.readonly", "directory.readonly"]
    );
    assert_eq!(
        scopes("other.de"),
        [
            "calendar.freebusy",
            "contacts.other.readonly",
            "contacts.readonly"
        ]
    );
}

#[test]
fn a_source_removed_from_the_configuration_is_erased_at_the_next_open_and_back_it_syncs_in_full() {
    let h = Harness::new();
    seed_all(&h, 3, "A");
    h.fake.set_other_contacts(
        ALICE,
        vec![Person::new("otherContacts/c77", "Zebediah", "Quux")
            .with_phone("+12125553077", "mobile")],
    );
    let plugin = h.open_with(&all_sources(&h));
    h.connect_and_sync(&plugin, ACCOUNT, ALICE);
    assert!(shown(&plugin, ACCOUNT, "+12125553077").is_some());
    drop(plugin);

    let mut contacts_only = h.config();
    contacts_only["sources"] = json!(["contacts"]);
    let plugin = h.open_with(&contacts_only);
    assert_eq!(shown(&plugin, ACCOUNT, "+12125553077"), None);
    assert_eq!(shown(&plugin, ACCOUNT, &Src::Directory.number(0)), None);
    assert!(shown(&plugin, ACCOUNT, &Src::Contacts.number(0)).is_some());
    let status = plugin.status_value(ACCOUNT);
    let keys: Vec<&String> = status["sources"].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["contacts"], "{status}");
    assert_eq!(status["contacts"], 3);
    drop(plugin);
    // Nothing of it is left in any file of data_dir.
    for (path, bytes) in files_under(h.data_dir()) {
        assert!(
            !contains(&bytes, "Zebediah"),
            "{} still holds it",
            path.display()
        );
    }

    let plugin = h.open_with(&all_sources(&h));
    h.fake.clear_requests();
    sync_now_and_wait(&h, &plugin);
    for src in [Src::Directory, Src::Other] {
        let requests = src.requests(&h);
        assert!(!requests.is_empty(), "{src:?}");
        assert!(
            requests[0].query_param("syncToken").is_none(),
            "{src:?}: full"
        );
    }
    assert!(h.fake.requests_to(Endpoint::People)[0]
        .query_param("syncToken")
        .is_some());
    assert_eq!(
        shown(&plugin, ACCOUNT, "+12125553077"),
        Some(("Zebediah Quux".into(), "other_contacts".into()))
    );
}

#[test]
fn a_sync_of_every_source_that_brings_nothing_costs_a_request_each_and_rebuilds_nothing() {
    capture_logs();
    let (h, plugin) = connected_with_all_sources();
    h.fake.clear_requests();
    let logged = logged_lines().len();
    let status = sync_and_wait_for(&h, &plugin, Src::Other, 1);
    assert_eq!(status["status"], "connected");
    for src in ALL {
        assert_eq!(src.requests(&h).len(), 1, "{src:?}");
    }
    assert_eq!(h.fake.requests_to(Endpoint::ContactGroups).len(), 1);
    let lines: Vec<String> = logged_lines()[logged..]
        .iter()
        .filter(|l| l.contains(&format!("account {ACCOUNT}:")))
        .cloned()
        .collect();
    for src in ALL {
        assert!(
            lines
                .iter()
                .any(|l| l.contains(&format!("{}: incremental sync", src.name()))
                    && l.contains("the index is kept")),
            "{src:?}: {lines:#?}"
        );
    }
}

#[test]
fn a_reconnect_that_cannot_sync_a_source_erases_what_the_previous_connection_synced_of_it() {
    // Reconnected without the box for other contacts, or as a Google account outside
    // Workspace: the previous user's other contacts and directory must not answer for the new
    // one; the contacts stay until the new connection's sync replaces them.
    for (src, how) in [(Src::Other, "unticked"), (Src::Directory, "consumer")] {
        let (h, plugin) = connected_with_all_sources();
        let url = plugin.auth_url(ACCOUNT).expect("gi_auth_url");
        let query = match how {
            "unticked" => h
                .fake
                .approve_unticking(&url, ALICE, &["contacts.other.readonly"]),
            _ => {
                h.fake.add_user(CONSUMER, "Carol Consumer");
                h.fake.approve(&url, CONSUMER)
            }
        }
        .expect("consent");
        plugin.complete(&query).expect("gi_complete");
        assert!(
            wait_until(PATIENCE, || {
                let s = plugin.status_value(ACCOUNT);
                s["status"] == "issue" && s["syncing"] == false
            }),
            "{src:?}: the new connection cannot sync it"
        );
        for i in 0..5 {
            assert_eq!(
                shown(&plugin, ACCOUNT, &src.number(i)),
                None,
                "{src:?} #{i}"
            );
        }
        let status = plugin.status_value(ACCOUNT);
        assert_eq!(status["sources"][src.name()]["contacts"], 0, "{status}");
        assert!(status["sources"][src.name()]["last_error"].is_string());
        drop(plugin);
        let left = store_number(
            &h,
            &format!(
                "SELECT count(*) FROM contacts WHERE source = '{}'",
                src.name()
            ),
        );
        assert_eq!(left, 0, "{src:?}: nothing of it in the store");
    }
}

/// The other side of the test above: a reconnect (the documented way out of `invalid_grant`,
/// which a consent screen in Testing brings every 7 days) whose first sync of a source fails
/// for a while (Google's 5xx, a malformed reply) must not erase that source's contacts: the
/// grant can read them, and a failed sync changes nothing. They erased every colleague's
/// number until the next good sync, up to an interval later.
#[test]
fn a_reconnect_whose_source_fails_for_a_while_keeps_that_sources_contacts() {
    let (h, plugin) = connected_with_all_sources();
    h.fake
        .set_sticky_fault(Src::Directory.endpoint(), Some(Fault::Status(503)));
    h.fake
        .set_sticky_fault(Src::Other.endpoint(), Some(Fault::WrongType));
    let url = plugin.auth_url(ACCOUNT).expect("gi_auth_url");
    let query = h.fake.approve(&url, ALICE).expect("consent");
    plugin.complete(&query).expect("gi_complete");
    let mut status = Value::Null;
    assert!(
        wait_until(PATIENCE, || {
            status = plugin.status_value(ACCOUNT);
            status["status"] == "issue" && status["syncing"] == false
        }),
        "the new connection's sync of two sources fails: {status}"
    );
    for src in [Src::Directory, Src::Other] {
        assert!(
            status["sources"][src.name()]["last_error"].is_string(),
            "{status}"
        );
        assert_eq!(status["sources"][src.name()]["contacts"], 5, "{status}");
    }
    assert_landed(&plugin, "A", 5);
    drop(plugin);
    for src in [Src::Directory, Src::Other] {
        let kept = store_number(
            &h,
            &format!(
                "SELECT count(*) FROM contacts WHERE source = '{}'",
                src.name()
            ),
        );
        assert_eq!(kept, 5, "{src:?}: kept in the store");
    }
    // Google back: the next sync lands every source under the new connection.
    h.fake.set_sticky_fault(Src::Directory.endpoint(), None);
    h.fake.set_sticky_fault(Src::Other.endpoint(), None);
    let plugin = h.open_with(&all_sources(&h));
    assert_landed(&plugin, "A", 5);
    let status = sync_now_and_wait(&h, &plugin);
    assert_eq!(status["status"], "connected", "{status}");
    assert_landed(&plugin, "A", 5);
}

/// The sources land one by one, and the account's status is summed up when they all ended.
/// A landing turned the stored status green while another source was still failing: a
/// restart then (or another node of a cluster, which reloads the account at every landing)
/// showed the account green, the yellow ! and its reason gone while the fault persisted.
#[test]
fn a_source_landing_beside_a_failing_one_leaves_the_stored_status_yellow() {
    let (h, plugin) = connected_with_all_sources();
    h.fake
        .set_sticky_fault(Src::Directory.endpoint(), Some(Fault::Status(500)));
    let status = sync_now_and_wait(&h, &plugin);
    assert_eq!(status["status"], "issue", "{status}");
    // The next sync: the contacts land while the directory's reply is still on its way
    // (long enough for this test to see them land and close; gi_close waits for the reply's
    // headers, and then abandons it).
    h.fake.set_sticky_fault(
        Src::Directory.endpoint(),
        Some(Fault::Delay(Duration::from_secs(10))),
    );
    Src::Contacts.upsert(&h, Src::Contacts.person(0, "B"));
    plugin.sync_now(ACCOUNT).expect("gi_sync_now");
    assert!(
        wait_until(PATIENCE, || shown(
            &plugin,
            ACCOUNT,
            &Src::Contacts.number(0)
        )
        .is_some_and(|(name, _)| name.starts_with('B'))),
        "the contacts landed"
    );
    assert_eq!(plugin.status(ACCOUNT), GiStatus::GI_STATUS_ISSUE);
    // Closed before the directory answers (gi_close abandons the reply): what the store
    // holds is what a restart shows.
    drop(plugin);
    h.fake.set_sticky_fault(Src::Directory.endpoint(), None);
    let plugin = h.open_with(&all_sources(&h));
    let status = plugin.status_value(ACCOUNT);
    assert_eq!(status["status"], "issue", "{status}");
    let reason = status["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("directory"), "{status}");
    // And a sync in which every source lands turns it green.
    let status = sync_now_and_wait(&h, &plugin);
    assert_eq!(status["status"], "connected", "{status}");
    drop(plugin);
    let plugin = h.open_with(&all_sources(&h));
    assert_eq!(plugin.status(ACCOUNT), GiStatus::GI_STATUS_CONNECTED);
}

/// The same with a source Google keeps deferring (a 503 asking for an hour, counted as a
/// retry each time): yellow after the fourth, and a landing of the contacts beside the fifth
/// must not turn the stored status green (a deferral records no error of its source).
#[test]
fn a_source_deferred_past_its_retries_stays_yellow_in_the_store_while_another_lands() {
    let h = Harness::new();
    seed_all(&h, 5, "A");
    let mut config = h.config();
    config["sources"] = json!(["contacts", "other_contacts"]);
    let plugin = h.open_with(&config);
    h.connect_and_sync(&plugin, ACCOUNT, ALICE);
    h.fake.set_sticky_fault(
        Src::Other.endpoint(),
        Some(Fault::Raw {
            status: 503,
            headers: vec![("Retry-After".into(), "3600".into())],
            body: json!({"error": {"code": 503, "message": "The service is currently unavailable.", "status": "UNAVAILABLE"}})
                .to_string(),
        }),
    );
    // The first attempt and three retries (Sync now stands in for the hour Google asked).
    for _ in 0..4 {
        sync_and_wait_for(&h, &plugin, Src::Other, 1);
    }
    assert!(
        wait_until(PATIENCE, || plugin.status_value(ACCOUNT)["status"]
            == "issue"),
        "yellow after the third retry: {}",
        plugin.status_value(ACCOUNT)
    );
    Src::Contacts.upsert(&h, Src::Contacts.person(0, "B"));
    sync_and_wait_for(&h, &plugin, Src::Other, 1);
    assert_eq!(
        shown(&plugin, ACCOUNT, &Src::Contacts.number(0)).map(|s| s.0),
        Some("B1 Person000".to_owned()),
        "the contacts landed"
    );
    assert_eq!(plugin.status(ACCOUNT), GiStatus::GI_STATUS_ISSUE);
    drop(plugin);
    let plugin = h.open_with(&config);
    let status = plugin.status_value(ACCOUNT);
    assert_eq!(status["status"], "issue", "{status}");
    // Google answers again: every source lands, green, in the store too.
    h.fake.set_sticky_fault(Src::Other.endpoint(), None);
    sync_and_wait_for(&h, &plugin, Src::Other, 1);
    assert!(wait_until(PATIENCE, || plugin.status(ACCOUNT)
        == GiStatus::GI_STATUS_CONNECTED));
    drop(plugin);
    let plugin = h.open_with(&config);
    assert_eq!(plugin.status(ACCOUNT), GiStatus::GI_STATUS_CONNECTED);
}

#[test]
fn gi_open_refuses_an_unknown_or_empty_list_of_sources_naming_the_field() {
    let h = Harness::new();
    for (sources, field, says) in [
        (
            json!(["contacts", "calendar"]),
            "sources",
            "\"calendar\" is not a contact source",
        ),
        (json!([]), "sources", "is empty"),
        (
            json!(["gmail"]),
            "domains.acme.de.sources",
            "\"gmail\" is not a contact source",
        ),
    ] {
        let mut config = h.config();
        if field == "sources" {
            config["sources"] = sources;
        } else {
            config["domains"] = json!({ "acme.de": { "sources": sources } });
        }
        let error = Plugin::open(api(), &config.to_string())
            .err()
            .expect("gi_open refuses it");
        assert!(
            error.message.contains(field)
                && error.message.contains(says)
                && error.message.contains("other_contacts"),
            "{}",
            error.message
        );
    }
}
