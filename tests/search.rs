//! The address book through the C ABI (`gi_search_contacts`), against the fake Google:
//! text and keypad search, the order, paging and counting, own and domain books only,
//! contact groups, the contact_groups filter, and bad input.

mod common;

use std::ffi::CString;
use std::time::Duration;

use common::*;
use host_sim::fake_google::{Endpoint, Fault, Person};
use host_sim::plugin::{GiContact, GiResult, GiSearchMode, Plugin};
use serde_json::json;

const TEXT: GiSearchMode = GiSearchMode::GI_SEARCH_TEXT;
const KEYPAD: GiSearchMode = GiSearchMode::GI_SEARCH_KEYPAD;

fn book() -> Vec<Person> {
    vec![
        Person::new("people/c1", "Jürgen", "Müller")
            .with_company("Müller & Söhne GmbH")
            .with_phone("+49 30 1234567", "work")
            .with_phone("+49 170 1234567", "mobile")
            .with_group("Customers")
            .with_group("VIP"),
        Person::new("people/c2", "Anna", "Weiß")
            .with_phone("+49 40 7654321", "home")
            .with_group("customers-old"),
        Person::new("people/c3", "anna", "adams").with_phone("+1 212 555 0100", "mobile"),
        Person::new("people/c4", "No", "Number").with_email("no.number@example.org"),
        Person::new("people/c5", "", "")
            .with_display("")
            .with_email("only.mail@example.org")
            .with_phone("+44 20 7946 0958", ""),
    ]
}

/// Names of the rows, in order.
fn names(plugin: &Plugin<'_>, account: &str, query: &str, mode: GiSearchMode) -> Vec<String> {
    let (rows, total) = plugin.search(account, query, mode, 0, 50).unwrap();
    assert_eq!(rows.len(), total, "{query}: one page holds them all");
    rows.into_iter().map(|r| r.name).collect()
}

fn connected(h: &Harness) -> Plugin<'static> {
    h.fake.set_contacts(ALICE, book());
    let plugin = h.open();
    h.connect_and_sync(&plugin, "example.com/40", ALICE);
    plugin
}

#[test]
fn words_match_as_prefixes_in_any_order_without_case_or_accents() {
    let h = Harness::new();
    let plugin = connected(&h);
    let account = "example.com/40";
    for query in [
        "mül",
        "mul",
        "MUL",
        "müller jür",
        "JÜRGEN",
        "sohne",
        "söh",
        "gmbh mul",
    ] {
        let found = names(&plugin, account, query, TEXT);
        assert_eq!(found, ["Jürgen Müller", "Jürgen Müller"], "{query}");
    }
    assert_eq!(
        names(&plugin, account, "weiss", TEXT),
        ["Anna Weiß"],
        "ß matches ss"
    );
    assert_eq!(names(&plugin, account, "weiß", TEXT), ["Anna Weiß"]);
    assert_eq!(
        names(&plugin, account, "anna", TEXT),
        ["anna adams", "Anna Weiß"],
        "case ignored in the order too"
    );
    assert!(
        names(&plugin, account, "number", TEXT).is_empty(),
        "no number, no row"
    );
    assert!(
        names(&plugin, account, "müller zzz", TEXT).is_empty(),
        "every word must match"
    );
    let (rows, total) = plugin.search(account, "nobody", TEXT, 0, 10).unwrap();
    assert!(
        rows.is_empty() && total == 0,
        "no match is GI_OK with a total of 0"
    );
}

#[test]
fn digit_runs_match_part_of_the_e164_number() {
    let h = Harness::new();
    let plugin = connected(&h);
    let (rows, _) = plugin
        .search("example.com/40", "170-123", TEXT, 0, 10)
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0].name.as_str(), rows[0].number.as_str()),
        ("Jürgen Müller", "+491701234567")
    );
    assert_eq!(rows[0].label, "mobile");
    let (rows, _) = plugin
        .search("example.com/40", "(212) 555", TEXT, 0, 10)
        .unwrap();
    assert_eq!(
        rows.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
        ["anna adams"]
    );
    assert_eq!(
        names(&plugin, "example.com/40", "jür 4930", TEXT),
        ["Jürgen Müller"]
    );
}

#[test]
fn the_order_is_name_company_number_and_empty_queries_list_everything() {
    let h = Harness::new();
    let plugin = connected(&h);
    let (rows, total) = plugin.search("example.com/40", "  ", TEXT, 0, 50).unwrap();
    assert_eq!(
        total, 5,
        "one row per (contact, number); contacts without numbers have none"
    );
    let shown: Vec<(String, String)> = rows
        .iter()
        .map(|r| (r.name.clone(), r.number.clone()))
        .collect();
    assert_eq!(
        shown,
        [
            ("anna adams".to_string(), "+12125550100".to_string()),
            ("Anna Weiß".into(), "+49407654321".into()),
            // The same name and company: the number as text ("+4917…" before "+4930…").
            ("Jürgen Müller".into(), "+491701234567".into()),
            ("Jürgen Müller".into(), "+49301234567".into()),
            // Neither name nor company: its first email address is its name.
            ("only.mail@example.org".into(), "+442079460958".into()),
        ]
    );
}

#[test]
fn paging_counting_and_the_null_array() {
    let h = Harness::new();
    let plugin = connected(&h);
    let (all, total) = plugin.search("example.com/40", "", TEXT, 0, 10).unwrap();
    assert_eq!(total, 5);
    let (page, total) = plugin.search("example.com/40", "", TEXT, 1, 2).unwrap();
    assert_eq!(total, 5);
    assert_eq!(page, all[1..3].to_vec());
    let (past, total) = plugin.search("example.com/40", "", TEXT, 9, 2).unwrap();
    assert!(past.is_empty() && total == 5);
    // cap 0 with a NULL array counts.
    let (none, total) = plugin.search("example.com/40", "anna", TEXT, 0, 0).unwrap();
    assert!(none.is_empty() && total == 2);
    // Both count pointers may be NULL.
    let account = CString::new("example.com/40").unwrap();
    let query = CString::new("anna").unwrap();
    let mut rows = [GiContact::default(); 1];
    let (code, written) = plugin.search_into(&account, &query, TEXT, &mut rows);
    assert_eq!((code, written), (GiResult::GI_OK, 1));
    let code = unsafe {
        (plugin.api().gi_search_contacts)(
            plugin.raw(),
            account.as_ptr(),
            query.as_ptr(),
            TEXT,
            0,
            rows.as_mut_ptr(),
            1,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        )
    };
    assert_eq!(code, GiResult::GI_OK);
}

#[test]
fn the_keypad_spells_the_start_of_a_name_or_company_word() {
    let h = Harness::new();
    let plugin = connected(&h);
    let account = "example.com/40";
    assert_eq!(
        names(&plugin, account, "6855", KEYPAD),
        ["Jürgen Müller", "Jürgen Müller"]
    );
    assert_eq!(
        names(&plugin, account, "587", KEYPAD),
        ["Jürgen Müller", "Jürgen Müller"]
    );
    assert_eq!(
        names(&plugin, account, "7646", KEYPAD),
        ["Jürgen Müller", "Jürgen Müller"],
        "söhne"
    );
    assert_eq!(
        names(&plugin, account, "2662", KEYPAD),
        ["anna adams", "Anna Weiß"]
    );
    assert!(
        names(&plugin, account, "847", KEYPAD).is_empty(),
        "groups (VIP) are not dialled"
    );
    for bad in ["68a", "0", "1", "6 8", "*"] {
        let err = plugin.search(account, bad, KEYPAD, 0, 10).unwrap_err();
        assert_eq!(err.code, GiResult::GI_ERR_INVALID_ARGUMENT, "{bad}");
        assert!(err.message.contains("2-9"), "{}", err.message);
    }
}

/// Each word of a query costs a pass over the contacts it starts, each digit word a look at
/// every candidate row: a megabyte of "491 " held the caller's thread (and gi_close, which
/// waits for it) for tens of seconds. A query is at most 256 bytes; past that the search is
/// refused, saying so, and a word given twice is searched once.
#[test]
fn a_query_past_256_bytes_is_refused_saying_so() {
    let h = Harness::new();
    let plugin = connected(&h);
    let account = "example.com/40";
    for (query, mode) in [
        ("491 ".repeat(250_000), TEXT),
        ("a ".repeat(129), TEXT),
        ("6".repeat(257), KEYPAD),
    ] {
        let err = plugin.search(account, &query, mode, 0, 10).unwrap_err();
        assert_eq!(err.code, GiResult::GI_ERR_INVALID_ARGUMENT);
        assert!(err.message.contains("at most 256"), "{}", err.message);
    }
    // At the limit, and with white space around it, it searches.
    let at_limit = format!("  {}mül  ", "mül ".repeat(50));
    assert_eq!(at_limit.trim().len(), 254);
    assert_eq!(
        names(&plugin, account, &at_limit, TEXT),
        names(&plugin, account, "mül", TEXT)
    );
    assert!(!names(&plugin, account, "mül", TEXT).is_empty());
}

#[test]
fn groups_show_on_lookups_and_rows_are_searched_and_follow_a_rename() {
    let h = Harness::new();
    let plugin = connected(&h);
    let caller = plugin
        .lookup("example.com/40", "+49301234567")
        .unwrap()
        .unwrap();
    assert_eq!(
        caller.groups, "Customers, VIP",
        "by name, sorted; myContacts hidden"
    );
    assert_eq!(caller.source, "contacts");
    let (rows, _) = plugin.search("example.com/40", "vip", TEXT, 0, 10).unwrap();
    assert_eq!(rows.len(), 2);
    assert!(rows
        .iter()
        .all(|r| r.groups == "Customers, VIP" && r.source == "contacts"));
    assert_eq!(
        names(&plugin, "example.com/40", "customers", TEXT).len(),
        3,
        "customers-old too"
    );

    // A renamed group: no person changes, yet the next sync shows the new name.
    h.fake.rename_group(ALICE, "VIP", "Key accounts").unwrap();
    let before = h.fake.requests_to(Endpoint::People).len();
    plugin.sync_now("example.com/40").unwrap();
    wait_for_people_requests(&h, &plugin, "example.com/40", before, 1);
    assert!(wait_until(PATIENCE, || {
        plugin
            .lookup("example.com/40", "+49301234567")
            .unwrap()
            .is_some_and(|c| c.groups == "Customers, Key accounts")
    }));
    assert_eq!(names(&plugin, "example.com/40", "key acc", TEXT).len(), 2);
    assert!(names(&plugin, "example.com/40", "vip", TEXT).is_empty());
}

#[test]
fn contact_groups_keeps_only_the_contacts_of_the_named_groups() {
    let h = Harness::new();
    h.fake.set_contacts(ALICE, book());
    h.fake.set_contacts(BOB, book());
    let mut config = h.config();
    config["contact_groups"] = json!(["customers"]);
    // The section's domain as an administrator may write it: case and a trailing dot ignored.
    config["domains"] = json!({"ACME.de.": {"contact_groups": ["Customers-Old", "Nobody"]}, "open.org": {"contact_groups": null}});
    let plugin = h.open_with(&config);
    h.connect_and_sync(&plugin, "example.com", ALICE);
    h.connect_and_sync(&plugin, "acme.de", BOB);
    assert_eq!(
        names(&plugin, "example.com", "", TEXT),
        ["Jürgen Müller", "Jürgen Müller"],
        "case ignored"
    );
    assert!(
        plugin
            .lookup("example.com", "+49407654321")
            .unwrap()
            .is_none(),
        "customers-old is another group"
    );
    assert_eq!(plugin.status_value("example.com")["contacts"], 1);
    assert_eq!(
        names(&plugin, "acme.de", "", TEXT),
        ["Anna Weiß"],
        "the domain's own filter"
    );
    // The groups shown are the contact's, whatever the filter.
    let caller = plugin
        .lookup("example.com", "+49301234567")
        .unwrap()
        .unwrap();
    assert_eq!(caller.groups, "Customers, VIP");
    let url_account = "open.org";
    h.connect_and_sync(&plugin, url_account, ALICE);
    assert_eq!(
        names(&plugin, url_account, "", TEXT).len(),
        5,
        "null: no filter"
    );
    drop(plugin);
    // The filter is applied when the index is built: a restart keeps it.
    let plugin = h.open_with(&config);
    assert_eq!(names(&plugin, "example.com", "", TEXT).len(), 2);
}

#[test]
fn a_search_sees_its_own_and_its_domains_books_never_another_tenants() {
    let h = Harness::new();
    h.fake.set_contacts(
        ALICE,
        vec![Person::new("people/d1", "Desk", "Domain").with_phone("+1 212 555 0101", "work")],
    );
    h.fake.set_contacts(
        BOB,
        vec![Person::new("people/o1", "Desk", "Own").with_phone("+1 212 555 0102", "work")],
    );
    let plugin = h.open();
    h.connect_and_sync(&plugin, "example.com", ALICE);
    h.connect_and_sync(&plugin, "example.com/40", BOB);
    let (rows, total) = plugin
        .search("example.com/40", "desk", TEXT, 0, 10)
        .unwrap();
    assert_eq!(total, 2);
    assert_eq!(
        rows.iter()
            .map(|r| (r.name.as_str(), r.account.as_str()))
            .collect::<Vec<_>>(),
        [
            ("Desk Domain", "example.com"),
            ("Desk Own", "example.com/40")
        ]
    );
    assert_eq!(
        names(&plugin, "example.com", "desk", TEXT),
        ["Desk Domain"],
        "a domain does not see its users"
    );
    assert!(names(&plugin, "other.com/40", "desk", TEXT).is_empty());
    assert!(
        names(&plugin, "EXAMPLE.com./40", "own", TEXT).len() == 1,
        "canonical accounts"
    );
}

#[test]
fn a_search_answers_while_a_sync_is_stuck() {
    let h = Harness::new();
    let plugin = connected(&h);
    h.fake
        .inject(Endpoint::People, Fault::Delay(Duration::from_secs(3)));
    plugin.sync_now("example.com/40").unwrap();
    assert!(wait_until(PATIENCE, || plugin
        .status_value("example.com/40")["syncing"]
        == true));
    assert_eq!(names(&plugin, "example.com/40", "mül", TEXT).len(), 2);
    assert_eq!(
        plugin.status_value("example.com/40")["syncing"],
        true,
        "the search did not wait for the sync"
    );
}

#[test]
fn bad_arguments_are_named() {
    let h = Harness::new();
    let plugin = connected(&h);
    let api = plugin.api();
    let account = CString::new("example.com/40").unwrap();
    let query = CString::new("x").unwrap();
    let bad_utf8 = b"m\xffl\0";
    let mut rows = [GiContact::default(); 2];
    let null = std::ptr::null::<std::ffi::c_char>();
    let cases: [(
        &str,
        *const std::ffi::c_char,
        *const std::ffi::c_char,
        *mut GiContact,
    ); 4] = [
        ("account", null, query.as_ptr(), rows.as_mut_ptr()),
        ("query", account.as_ptr(), null, rows.as_mut_ptr()),
        (
            "UTF-8",
            account.as_ptr(),
            bad_utf8.as_ptr().cast(),
            rows.as_mut_ptr(),
        ),
        (
            "out",
            account.as_ptr(),
            query.as_ptr(),
            std::ptr::null_mut(),
        ),
    ];
    let (mut count, mut total) = (7usize, 7usize);
    for (what, account, query, out) in cases {
        // SAFETY: NULL or valid strings, an array of 2 contacts or NULL.
        let code = unsafe {
            (api.gi_search_contacts)(
                plugin.raw(),
                account,
                query,
                TEXT,
                0,
                out,
                2,
                &mut count,
                &mut total,
            )
        };
        assert_eq!(code, GiResult::GI_ERR_INVALID_ARGUMENT, "{what}");
        let message = api.last_error();
        assert!(message.contains(what), "{what}: {message}");
        assert_eq!(
            (count, total),
            (0, 0),
            "{what}: the counts say nothing was found"
        );
    }
    let code = unsafe {
        (api.gi_search_contacts)(
            std::ptr::null_mut(),
            account.as_ptr(),
            query.as_ptr(),
            TEXT,
            0,
            rows.as_mut_ptr(),
            2,
            &mut count,
            &mut total,
        )
    };
    assert_eq!(code, GiResult::GI_ERR_INVALID_ARGUMENT);
}
