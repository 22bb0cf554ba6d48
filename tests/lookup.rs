//! Caller-ID lookups through the C ABI: number formats, international prefixes, tenants,
//! domain fallback, the national-number rule, tie-breaks, and the GiContact fields.

mod common;

use common::*;
use host_sim::fake_google::Person;
use serde_json::json;

fn address_book() -> Vec<Person> {
    vec![
        Person::new("people/c1", "Dana", "Scully")
            .with_company("FBI")
            .with_phone("(212) 555-0199", "mobile"),
        Person::new("people/c2", "Sherlock", "Holmes").with_phone_canonical(
            "020 7946 0958",
            "+442079460958",
            "home",
        ),
        Person::new("people/c3", "", "")
            .with_display("")
            .with_company("Acme Plumbing")
            .with_phone("+1 415 555 0132", "work"),
        Person::new("people/c4", "", "")
            .with_display("")
            .with_phone("+1 415 555 0177", ""),
        Person::new("people/c5", "Zed", "Shared").with_phone("+1 646 555 0100", "work"),
        Person::new("people/c6", "Abe", "Shared").with_phone("646-555-0100", "mobile"),
    ]
}

#[test]
fn every_way_of_writing_a_number_finds_the_contact() {
    let h = Harness::new();
    h.fake.set_contacts(ALICE, address_book());
    let plugin = h.open();
    h.connect_and_sync(&plugin, "example.com", ALICE);
    for input in [
        "+12125550199",
        "12125550199",
        "2125550199",
        "(212) 555-0199",
        "212.555.0199",
        "tel:+1-212-555-0199",
        "sip:+12125550199@pbx.example.com;user=phone",
        "sips:2125550199@pbx.example.com",
        "011 1 212 555 0199",
    ] {
        let caller = plugin
            .lookup("example.com", input)
            .unwrap()
            .unwrap_or_else(|| panic!("{input} not found"));
        assert_eq!(caller.name, "Dana Scully", "{input}");
        assert_eq!(caller.company, "FBI");
        assert_eq!(caller.label, "mobile");
        assert_eq!(
            caller.number, "+12125550199",
            "E.164 of the stored (212) 555-0199"
        );
        assert_eq!(caller.account, "example.com");
    }
    for input in [
        "011 44 20 7946 0958",
        "0044 20 7946 0958",
        "+44 20 7946 0958",
        "+442079460958",
    ] {
        let caller = plugin
            .lookup("example.com", input)
            .unwrap()
            .unwrap_or_else(|| panic!("{input} not found"));
        assert_eq!(caller.name, "Sherlock Holmes", "{input}");
        assert_eq!(caller.number, "+442079460958");
    }
    for missing in [
        "+12125550198",
        "anonymous",
        "sip:anonymous@anonymous.invalid",
        "",
        "+",
        "12345",
        "+442079460959",
    ] {
        assert_eq!(
            plugin.lookup("example.com", missing).unwrap(),
            None,
            "{missing:?}"
        );
    }
}

#[test]
fn a_contact_without_a_name_shows_its_company_or_its_email_or_nothing() {
    let h = Harness::new();
    let mut book = address_book();
    book.push(
        Person::new("people/c7", "", "")
            .with_display("")
            .with_email("jo@example.org")
            .with_email("jo.other@example.org")
            .with_phone("+1 415 555 0188", "mobile"),
    );
    h.fake.set_contacts(ALICE, book);
    let plugin = h.open();
    h.connect_and_sync(&plugin, "example.com", ALICE);
    let company = plugin
        .lookup("example.com", "+14155550132")
        .unwrap()
        .unwrap();
    assert_eq!(
        (company.name.as_str(), company.company.as_str()),
        ("Acme Plumbing", "Acme Plumbing")
    );
    let bare = plugin
        .lookup("example.com", "+14155550177")
        .unwrap()
        .unwrap();
    assert_eq!(bare.name, "", "the contract: else \"\"");
    assert_eq!(bare.label, "");
    let email = plugin
        .lookup("example.com", "+14155550188")
        .unwrap()
        .unwrap();
    assert_eq!(email.name, "jo@example.org", "the first email address");
}

#[test]
fn a_shared_number_resolves_the_same_way_every_time() {
    let h = Harness::new();
    h.fake.set_contacts(ALICE, address_book());
    let plugin = h.open();
    h.connect_and_sync(&plugin, "example.com", ALICE);
    for _ in 0..50 {
        let caller = plugin
            .lookup("example.com", "+16465550100")
            .unwrap()
            .unwrap();
        assert_eq!(caller.name, "Abe Shared", "the name that sorts first wins");
        assert_eq!(caller.label, "mobile");
    }
    drop(plugin);
    let plugin = h.open();
    assert_eq!(
        plugin
            .lookup("example.com", "+16465550100")
            .unwrap()
            .unwrap()
            .name,
        "Abe Shared",
        "and after a restart"
    );
}

#[test]
fn tenants_never_see_each_other_and_users_fall_back_to_their_domain() {
    let h = Harness::new();
    h.fake.set_contacts(
        ALICE,
        vec![Person::new("people/c1", "Domain", "Reception").with_phone("+1 212 555 0101", "work")],
    );
    h.fake.set_contacts(
        BOB,
        vec![
            Person::new("people/c9", "Other", "Tenant").with_phone("+1 212 555 0109", "work"),
            Person::new("people/c8", "Bobs", "Version").with_phone("+1 212 555 0101", "mobile"),
        ],
    );
    let plugin = h.open();
    h.connect_and_sync(&plugin, "example.com", ALICE);
    h.connect_and_sync(&plugin, "other.com", BOB);

    let user = plugin
        .lookup("example.com/40", "+12125550101")
        .unwrap()
        .unwrap();
    assert_eq!(
        (user.name.as_str(), user.account.as_str()),
        ("Domain Reception", "example.com")
    );
    assert_eq!(
        plugin.lookup("example.com/40", "+12125550109").unwrap(),
        None,
        "not another tenant's"
    );
    assert_eq!(plugin.lookup("example.com", "+12125550109").unwrap(), None);
    assert_eq!(
        plugin
            .lookup("other.com/7", "+12125550101")
            .unwrap()
            .unwrap()
            .name,
        "Bobs Version"
    );
    assert_eq!(plugin.lookup("examples.com", "+12125550101").unwrap(), None);

    // The user's own contacts beat the domain's.
    h.fake.set_contacts(
        BOB,
        vec![Person::new("people/c7", "Personal", "Friend").with_phone("212-555-0101", "mobile")],
    );
    h.connect_and_sync(&plugin, "example.com/40", BOB);
    let own = plugin
        .lookup("example.com/40", "+12125550101")
        .unwrap()
        .unwrap();
    assert_eq!(
        (own.name.as_str(), own.account.as_str()),
        ("Personal Friend", "example.com/40")
    );
    assert_eq!(
        plugin
            .lookup("example.com", "+12125550101")
            .unwrap()
            .unwrap()
            .name,
        "Domain Reception",
        "the domain keeps its own"
    );
    assert_eq!(
        plugin
            .lookup("example.com/41", "+12125550101")
            .unwrap()
            .unwrap()
            .name,
        "Domain Reception",
        "another user"
    );

    // Disabling one account removes exactly its numbers.
    plugin.disable("example.com/40").unwrap();
    assert_eq!(
        plugin
            .lookup("example.com/40", "+12125550101")
            .unwrap()
            .unwrap()
            .name,
        "Domain Reception"
    );
}

#[test]
fn international_digits_without_a_prefix_match_when_no_national_reading_does() {
    let h = Harness::new();
    h.fake.set_contacts(
        ALICE,
        vec![
            Person::new("people/c1", "London", "Office").with_phone("+44 20 7946 0958", "work"),
            Person::new("people/c2", "Berlin", "Office").with_phone("+49 30 123456", "work"),
            Person::new("people/c3", "Paris", "Office").with_phone("+33 1 42 68 53 00", "work"),
        ],
    );
    let plugin = h.open();
    h.connect_and_sync(&plugin, "example.com", ALICE);
    let name = |number: &str| {
        plugin
            .lookup("example.com/40", number)
            .unwrap()
            .map(|c| c.name)
    };
    // As many trunks send E.164: the digits without '+' or any prefix, at a US tenant.
    assert_eq!(name("442079460958").as_deref(), Some("London Office"));
    // 4930123456 is also a valid US national number (+1 493 012 3456): no one has that, so
    // the German reading answers.
    assert_eq!(name("4930123456").as_deref(), Some("Berlin Office"));
    assert_eq!(name("33142685300").as_deref(), Some("Paris Office"));
    // A US contact with the national reading wins over the international one.
    h.fake.upsert_contact(
        ALICE,
        Person::new("people/c4", "Local", "Number").with_phone("(493) 012-3456", "home"),
    );
    let before = h
        .fake
        .requests_to(host_sim::fake_google::Endpoint::People)
        .len();
    plugin.sync_now("example.com").unwrap();
    wait_for_people_requests(&h, &plugin, "example.com", before, 1);
    assert_eq!(name("4930123456").as_deref(), Some("Local Number"));
    assert_eq!(name("+4930123456").as_deref(), Some("Berlin Office"));
    // Digits that fit no country's numbers stay unknown.
    assert_eq!(name("99912345678").as_deref(), None);
}

#[test]
fn a_domain_region_reads_national_numbers_and_the_unique_national_match() {
    let h = Harness::new();
    h.fake.set_contacts(
        ALICE,
        vec![
            Person::new("people/c1", "Berlin", "Office").with_phone("030 12345678", "work"),
            Person::new("people/c2", "New York", "Office").with_phone("+1 212 555 0142", "work"),
        ],
    );
    let mut config = h.config();
    config["domains"] = json!({"acme.de": {"region": "DE"}});
    let plugin = h.open_with(&config);
    h.connect_and_sync(&plugin, "acme.de", ALICE);
    for input in [
        "030 12345678",
        "+49 30 12345678",
        "0049 30 12345678",
        "03012345678",
    ] {
        assert_eq!(
            plugin
                .lookup("acme.de/10", input)
                .unwrap()
                .map(|c| c.name)
                .as_deref(),
            Some("Berlin Office"),
            "{input}"
        );
    }
    // Without a country code, a German PBX reads 2125550142 as +49…; only the national number
    // finds the New York office, and only because exactly one contact fits.
    let caller = plugin.lookup("acme.de", "2125550142").unwrap().unwrap();
    assert_eq!(
        (caller.name.as_str(), caller.number.as_str()),
        ("New York Office", "+12125550142")
    );
    assert_eq!(
        plugin.lookup("acme.de", "+492125550142").unwrap(),
        None,
        "with a country code it must match exactly"
    );
}

/// "A match on its national number counts only when exactly one contact fits": over all the
/// lookup sees, not book by book. The first book (own before domain, contacts before other
/// contacts) with one answered, though another book held a second contact with that
/// national number: a confident guess between countries, the very thing the rule refuses.
#[test]
fn the_national_match_needs_exactly_one_contact_over_every_source_and_the_domain() {
    let h = Harness::new();
    h.fake.set_contacts(
        ALICE,
        vec![Person::new("people/c1", "US", "Client").with_phone("+1 207 946 0958", "work")],
    );
    h.fake.set_other_contacts(
        ALICE,
        vec![
            Person::new("otherContacts/c1", "London", "Office")
                .with_phone("+44 20 7946 0958", "work"),
            Person::new("otherContacts/c2", "New York", "Office")
                .with_phone("+1 212 555 0142", "work"),
        ],
    );
    h.fake.set_contacts(
        BOB,
        vec![Person::new("people/c9", "Bobs", "Londoner").with_phone("+44 20 7946 0958", "home")],
    );
    let mut config = h.config();
    config["domains"] =
        json!({"acme.de": {"region": "DE", "sources": ["contacts", "other_contacts"]}});
    let plugin = h.open_with(&config);
    h.connect_and_sync(&plugin, "acme.de", ALICE);
    let name =
        |account: &str, number: &str| plugin.lookup(account, number).unwrap().map(|c| c.name);
    // Read in DE, 2079460958 is nobody's; nationally it is the US client's and the London
    // office's: two contacts, in two sources.
    assert_eq!(name("acme.de", "2079460958"), None);
    // One contact, in the other contacts: it answers.
    assert_eq!(
        name("acme.de", "2125550142").as_deref(),
        Some("New York Office")
    );

    // A user's own contact and its domain's: two as well.
    h.connect_and_sync(&plugin, "acme.de/40", BOB);
    assert_eq!(
        name("acme.de/40", "+442079460958").as_deref(),
        Some("Bobs Londoner"),
        "exactly: the user's own first"
    );
    assert_eq!(name("acme.de/40", "2079460958"), None);
    assert_eq!(
        name("acme.de/40", "2125550142").as_deref(),
        Some("New York Office")
    );
}

#[test]
fn long_fields_are_cut_at_a_character_boundary() {
    let h = Harness::new();
    let long_name = format!("{}é{}", "a".repeat(126), "b".repeat(50)); // 'é' straddles byte 127
    let long_company = "🦀".repeat(40);
    h.fake.set_contacts(
        ALICE,
        vec![Person::new("people/c1", "", "")
            .with_display(&long_name)
            .with_company(&long_company)
            .with_phone(
                "+1 212 555 0150",
                "a-very-long-custom-label-for-this-number",
            )],
    );
    let plugin = h.open();
    let account = format!("{}/{}", "d".repeat(200), "ü".repeat(27)); // 255 bytes
    assert_eq!(account.len(), 255);
    h.connect_and_sync(&plugin, &account, ALICE);
    let caller = plugin.lookup(&account, "+12125550150").unwrap().unwrap();
    assert_eq!(
        caller.name,
        "a".repeat(126),
        "the 'é' that does not fit is left out whole"
    );
    assert_eq!(
        caller.company,
        "🦀".repeat(31),
        "124 bytes of 4-byte characters fit in 127"
    );
    assert_eq!(caller.label.len(), 31);
    assert_eq!(caller.account, account, "255 bytes fit");
}
