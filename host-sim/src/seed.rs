//! The address books the fake Google is seeded with for `demo` and `serve`: a few hundred
//! contacts across US, GB, DE, FR, IN, BR and AU numbers, written the ways people type them
//! (national, international, `00`, dots and dashes), some with Google's `canonicalForm` and some
//! without, some without a name but with a company, a few with neither name nor company but an
//! email address (shown as their name), and some numbers shared by two people. The people are
//! in contact groups (Google's labels): "Customers" and "Suppliers" in the company address
//! books (some in both), "Family" in Bob's.
//!
//! `example.com` is a Google Workspace organisation: its directory lists the colleagues (the
//! domain's users, with their desk and mobile numbers) and a shared contact, and Bob has a few
//! "other contacts" (people he wrote to but never saved).
//!
//! Generated from a fixed seed, so every run has the same people and the demo's calls always
//! find the same callers. The numbers are from ranges set aside for fiction where a country has
//! one (US 555-01xx, GB 020 7946 0xxx and 07700 900xxx, FR 01 99 00 xx xx, AU 0491 570 xxx).

use std::collections::HashSet;

use host_sim::fake_google::{FakeGoogle, Person};

/// A Google account that can consent on the fake's consent page.
pub struct GoogleUser {
    pub email: &'static str,
    pub name: &'static str,
    /// The PBX account the demo connects it to.
    pub account: &'static str,
}

/// The domain's admin: the shared company address book of `example.com`.
pub const ALICE: GoogleUser = GoogleUser {
    email: "alice@example.com",
    name: "Alice Admin",
    account: "example.com",
};
/// Extension 40 of `example.com`, with a personal address book.
pub const BOB: GoogleUser = GoogleUser {
    email: "bob@example.com",
    name: "Bob Baker",
    account: "example.com/40",
};
/// The admin of `acme.de`, a tenant configured with region DE.
pub const CAROL: GoogleUser = GoogleUser {
    email: "carol@acme.de",
    name: "Carol Krause",
    account: "acme.de",
};

pub const USERS: [GoogleUser; 3] = [ALICE, BOB, CAROL];

/// The accounts the page offers before any is typed in.
pub const ACCOUNTS: [&str; 4] = ["example.com", "example.com/40", "example.com/41", "acme.de"];

/// One simulated incoming call of the demo.
pub struct DemoCall {
    pub account: &'static str,
    pub number: &'static str,
    /// What the call shows off.
    pub what: &'static str,
}

pub const DEMO_CALLS: [DemoCall; 12] = [
    DemoCall {
        account: "example.com/40",
        number: "0044 7700 900123",
        what: "a UK mobile dialled with 00, found in the domain's address book",
    },
    DemoCall {
        account: "example.com/40",
        number: "tel:+1-212-555-0142",
        what: "a number in both books: the user's own contact wins",
    },
    DemoCall {
        account: "example.com",
        number: "(212) 555-0142",
        what: "the same number on the domain: the domain's contact",
    },
    DemoCall {
        account: "example.com",
        number: "sip:+498912345678@pbx.example.com;user=phone",
        what: "a SIP From header; the contact has no canonicalForm",
    },
    DemoCall {
        account: "example.com",
        number: "011 33 1 99 00 12 34",
        what: "a French number with the US international prefix",
    },
    DemoCall {
        account: "example.com",
        number: "4155550199",
        what: "ten US digits; the contact has a company but no name",
    },
    DemoCall {
        account: "example.com",
        number: "+1 303 555 0123",
        what: "a contact with neither name nor company: its email address is the name",
    },
    DemoCall {
        account: "example.com",
        number: "+1 646 555 0110",
        what: "an office line two contacts share: the name that sorts first",
    },
    DemoCall {
        account: "example.com/40",
        number: "303 555 0152",
        what: "a colleague's mobile, from the Google Workspace directory",
    },
    DemoCall {
        account: "example.com/40",
        number: "+1 303 555 0161",
        what: "someone Bob wrote to but never saved: one of his \"other contacts\"",
    },
    DemoCall {
        account: "acme.de",
        number: "030 12345678",
        what: "a German national number on a tenant with region DE",
    },
    DemoCall {
        account: "example.com",
        number: "+1 900 555 0100",
        what: "nobody has this number",
    },
];

/// One address-book search of the demo (`gi_search_contacts`).
pub struct DemoSearch {
    pub account: &'static str,
    pub query: &'static str,
    /// Keypad digits (dial by name) rather than text.
    pub keypad: bool,
    /// What the search shows off.
    pub what: &'static str,
}

pub const DEMO_SEARCHES: [DemoSearch; 3] = [
    DemoSearch {
        account: "example.com",
        query: "mül",
        keypad: false,
        what: "the start of a word, accents and case ignored",
    },
    DemoSearch {
        account: "example.com",
        query: "6855",
        keypad: true,
        what: "M-U-L-L on a phone keypad: dial by name",
    },
    DemoSearch {
        account: "example.com/40",
        query: "family",
        keypad: false,
        what: "a contact group of the user's own address book",
    },
];

/// The contact groups a generated person of `user` is in, by its id: the company books have
/// customers and suppliers (a few are both), Bob's personal book has family.
fn generated_groups(email: &str, id: u32) -> Vec<&'static str> {
    let mut groups = Vec::new();
    if email == BOB.email {
        if id % 6 == 1 {
            groups.push("Family");
        }
    } else {
        if id % 5 == 2 {
            groups.push("Customers");
        }
        if id % 9 == 4 {
            groups.push("Suppliers");
        }
    }
    groups
}

/// Adds the users and their contacts to the fake; returns how many contacts each got.
pub fn seed(fake: &FakeGoogle) -> Vec<(&'static str, usize)> {
    let mut used = HashSet::new();
    let mut rng = Rng(0x5eed_cafe_f00d_1234);
    let mut out = Vec::new();
    for user in USERS {
        fake.add_user(user.email, user.name);
        let (mut people, mix, count, id_base): (Vec<Person>, &[(Country, u32)], usize, u32) =
            match user.email {
                "alice@example.com" => (featured_alice(&mut used), MIX_ALICE, 290, 10_000),
                "bob@example.com" => (featured_bob(), MIX_BOB, 36, 20_000),
                _ => (featured_carol(), MIX_CAROL, 38, 30_000),
            };
        for i in 0..count {
            let id = id_base + u32::try_from(i).unwrap_or(0);
            let person = generated_groups(user.email, id)
                .into_iter()
                .fold(generated(&mut rng, &mut used, mix, id), Person::with_group);
            people.push(person);
        }
        out.push((user.email, people.len()));
        fake.set_contacts(user.email, people);
    }
    let mut colleagues = featured_directory();
    for i in 0..GENERATED_COLLEAGUES {
        let id = 40_000 + i;
        let mut person = generated(&mut rng, &mut used, MIX_BOB, id).with_company(ORGANISATION);
        // Directory profiles have numeric ids.
        person.resource_name = format!("people/1{:011}", u64::from(id) * 7919);
        colleagues.push(person);
    }
    fake.set_directory(WORKSPACE_DOMAIN, colleagues);
    fake.set_other_contacts(BOB.email, featured_other_contacts());
    out
}

/// The Google Workspace organisation of the seed, and its name in the directory.
pub const WORKSPACE_DOMAIN: &str = "example.com";
const ORGANISATION: &str = "Example Inc.";
/// Colleagues generated beside the featured ones.
const GENERATED_COLLEAGUES: u32 = 24;

/// The featured people of `example.com`'s directory: its users, a few colleagues and a shared
/// contact (a domain contact, `people/c…`). Area 303 is never generated, so these numbers are
/// nobody else's.
fn featured_directory() -> Vec<Person> {
    vec![
        Person::new("people/100000000001", "Alice", "Admin")
            .with_company(ORGANISATION)
            .with_email(ALICE.email)
            .with_phone_canonical("(303) 555-0140", "+13035550140", "work"),
        Person::new("people/100000000002", "Bob", "Baker")
            .with_company(ORGANISATION)
            .with_email(BOB.email)
            .with_phone_canonical("(303) 555-0141", "+13035550141", "work"),
        Person::new("people/100000000003", "Dana", "Whitfield")
            .with_company(ORGANISATION)
            .with_email("dana@example.com")
            .with_phone_canonical("(303) 555-0142", "+13035550142", "work")
            .with_phone_canonical("(303) 555-0152", "+13035550152", "mobile"),
        Person::new("people/100000000004", "Rafael", "Ortega")
            .with_company(ORGANISATION)
            .with_email("rafael@example.com")
            .with_phone_canonical("(303) 555-0143", "+13035550143", "work"),
        // A shared contact of the organisation, kept by its administrator.
        Person::new("people/c100000000005", "", "")
            .with_company("Example Inc. Facilities Hotline")
            .with_phone_canonical("(303) 555-0149", "+13035550149", "main"),
    ]
}

/// People Bob wrote to but never saved: Google keeps them as "other contacts".
fn featured_other_contacts() -> Vec<Person> {
    vec![
        Person::new("otherContacts/c9300000001", "Noah", "Fischer")
            .with_email("noah.fischer@contoso.example")
            .with_phone_canonical("(303) 555-0161", "+13035550161", "mobile"),
        Person::new("otherContacts/c9300000002", "", "")
            .with_email("support@fabrikam.example")
            .with_phone_canonical("(303) 555-0162", "+13035550162", "work"),
        Person::new("otherContacts/c9300000003", "Mia", "Lang")
            .with_email("mia.lang@northwind.example"),
    ]
}

fn featured_alice(used: &mut HashSet<String>) -> Vec<Person> {
    let people = vec![
        Person::new("people/c9000000001", "Emma", "Thompson")
            .with_company("Thompson & Lane Ltd")
            .with_phone_canonical("07700 900123", "+447700900123", "mobile")
            .with_group("Customers"),
        Person::new("people/c9000000002", "Jürgen", "Müller")
            .with_company("Müller Maschinenbau GmbH")
            .with_phone("+49 89 12345678", "work")
            .with_group("Suppliers")
            .with_group("Customers"),
        Person::new("people/c9000000003", "Priya", "Sharma")
            .with_company("Sharma Textiles Pvt Ltd")
            .with_phone_canonical("+91 98765 43210", "+919876543210", "mobile")
            .with_group("Suppliers"),
        Person::new("people/c9000000004", "", "")
            .with_company("Bay Area Plumbing Co.")
            .with_phone("(415) 555-0199", "work")
            .with_group("Suppliers"),
        Person::new("people/c9000000005", "Liam", "O'Connor")
            .with_company("Gramercy Hotel")
            .with_phone_canonical("(212) 555-0142", "+12125550142", "main")
            .with_group("Customers"),
        Person::new("people/c9000000006", "Camille", "Dubois")
            .with_company("Boulangerie Dubois")
            .with_phone_canonical("01 99 00 12 34", "+33199001234", "work")
            .with_group("Customers")
            .with_group("Suppliers"),
        Person::new("people/c9000000007", "Ana", "Souza").with_phone_canonical(
            "+55 11 91234-5678",
            "+5511912345678",
            "mobile",
        ),
        Person::new("people/c9000000008", "Olivia", "Nguyen")
            .with_company("Southern Cross Surf Co.")
            .with_phone_canonical("0491 570 156", "+61491570156", "mobile")
            .with_group("Customers"),
        // Two partners on one office line: the name that sorts first answers.
        Person::new("people/c9000000009", "Zoe", "Adams")
            .with_company("Fischer & Adams LLP")
            .with_phone_canonical("+1 646-555-0110", "+16465550110", "work")
            .with_group("Customers"),
        Person::new("people/c9000000010", "Aaron", "Fischer")
            .with_company("Fischer & Adams LLP")
            .with_phone("646.555.0110", "work")
            .with_phone_canonical("+1 646 555 0111", "+16465550111", "mobile")
            .with_group("Customers"),
        // Neither a name nor a company: the plugin shows the first email address as the name.
        Person::new("people/c9000000011", "", "")
            .with_email("orders@globex-freight.example")
            .with_email("billing@globex-freight.example")
            .with_phone_canonical("(303) 555-0123", "+13035550123", "work")
            .with_group("Suppliers"),
        Person::new("people/c9000000012", "", "")
            .with_email("front.desk@harbourview-inn.example")
            .with_phone_canonical("+1 303 555 0177", "+13035550177", "main")
            .with_group("Customers"),
    ];
    for e164 in [
        "+447700900123",
        "+498912345678",
        "+919876543210",
        "+14155550199",
        "+12125550142",
        "+33199001234",
        "+5511912345678",
        "+61491570156",
        "+16465550110",
        "+16465550111",
        "+19005550100",
        "+493012345678",
        // Not in the generated ranges (area 303 never is), so the generated people stay the same.
        "+13035550123",
        "+13035550177",
    ] {
        used.insert(e164.to_string());
    }
    people
}

fn featured_bob() -> Vec<Person> {
    vec![
        // The same number as the domain's Liam O'Connor: on example.com/40 Bob's own wins.
        Person::new("people/c9100000001", "Mom", "")
            .with_phone("212-555-0142", "home")
            .with_group("Family"),
        Person::new("people/c9100000002", "", "")
            .with_email("grandpa.joe@example.net")
            .with_phone_canonical("(202) 555-0147", "+12025550147", "home")
            .with_group("Family"),
    ]
}

fn featured_carol() -> Vec<Person> {
    vec![Person::new("people/c9200000001", "Klaus", "Becker")
        .with_company("Nordlicht Logistik GmbH")
        .with_phone_canonical("030 12345678", "+493012345678", "work")
        .with_group("Customers")]
}

#[derive(Clone, Copy)]
enum Country {
    Us,
    Gb,
    De,
    Fr,
    In,
    Br,
    Au,
}

const MIX_ALICE: &[(Country, u32)] = &[
    (Country::Us, 40),
    (Country::Gb, 14),
    (Country::De, 12),
    (Country::Fr, 10),
    (Country::In, 9),
    (Country::Br, 8),
    (Country::Au, 7),
];
const MIX_BOB: &[(Country, u32)] = &[(Country::Us, 8), (Country::Gb, 1), (Country::Au, 1)];
const MIX_CAROL: &[(Country, u32)] = &[(Country::De, 7), (Country::Fr, 2), (Country::Gb, 1)];

struct Names {
    first: &'static [&'static str],
    last: &'static [&'static str],
    companies: &'static [&'static str],
}

fn names(c: Country) -> Names {
    match c {
        Country::Us => Names {
            first: &[
                "James", "Mary", "Robert", "Patricia", "Michael", "Jennifer", "David", "Linda",
                "Daniel", "Sarah", "Chris", "Ashley",
            ],
            last: &[
                "Smith",
                "Johnson",
                "Williams",
                "Brown",
                "Jones",
                "Garcia",
                "Miller",
                "Davis",
                "Rodriguez",
                "Martinez",
                "Wilson",
                "Anderson",
            ],
            companies: &[
                "Initech",
                "Globex Corporation",
                "Acme Corp",
                "Umbrella Dental",
                "Pied Piper",
                "Vandelay Industries",
                "Dunder Mifflin",
            ],
        },
        Country::Gb => Names {
            first: &[
                "Oliver",
                "Amelia",
                "George",
                "Isla",
                "Harry",
                "Ava",
                "Jack",
                "Mia",
                "Charlotte",
                "Thomas",
            ],
            last: &[
                "Smith", "Jones", "Taylor", "Brown", "Davies", "Evans", "Wilson", "Thomas",
                "Roberts", "Walker",
            ],
            companies: &[
                "Brackenbury Lettings",
                "Thames Valley Joinery",
                "Hargreaves & Sons",
                "Camden Print Works",
            ],
        },
        Country::De => Names {
            first: &[
                "Lukas",
                "Anna",
                "Maximilian",
                "Sophie",
                "Felix",
                "Marie",
                "Jonas",
                "Lea",
                "Leon",
                "Hannah",
            ],
            last: &[
                "Müller",
                "Schmidt",
                "Schneider",
                "Fischer",
                "Weber",
                "Meyer",
                "Wagner",
                "Becker",
                "Schulz",
                "Hoffmann",
            ],
            companies: &[
                "Nordlicht Logistik GmbH",
                "Bäckerei Sonnenschein",
                "Rheintal Solar AG",
                "Weber & Partner Steuerberatung",
            ],
        },
        Country::Fr => Names {
            first: &[
                "Louis", "Chloé", "Gabriel", "Léa", "Raphaël", "Manon", "Arthur", "Inès", "Jules",
                "Camille",
            ],
            last: &[
                "Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand",
                "Leroy", "Moreau",
            ],
            companies: &[
                "Atelier Lumière SARL",
                "Transports Garnier",
                "Cabinet Moreau Avocats",
                "Fromagerie du Lac",
            ],
        },
        Country::In => Names {
            first: &[
                "Aarav", "Ananya", "Vihaan", "Diya", "Arjun", "Saanvi", "Rohan", "Isha", "Kabir",
                "Meera",
            ],
            last: &[
                "Sharma", "Patel", "Singh", "Kumar", "Gupta", "Reddy", "Iyer", "Nair", "Mehta",
                "Joshi",
            ],
            companies: &[
                "Ganges Software Pvt Ltd",
                "Deccan Spices",
                "Lotus Health Clinic",
                "Mumbai Freight Services",
            ],
        },
        Country::Br => Names {
            first: &[
                "João", "Maria", "Pedro", "Ana", "Lucas", "Beatriz", "Gabriel", "Júlia", "Mateus",
                "Larissa",
            ],
            last: &[
                "Silva",
                "Santos",
                "Oliveira",
                "Souza",
                "Pereira",
                "Costa",
                "Rodrigues",
                "Almeida",
                "Nascimento",
                "Lima",
            ],
            companies: &[
                "Café Paulista Ltda",
                "Rio Verde Engenharia",
                "Açaí Tropical",
                "Construtora Horizonte",
            ],
        },
        Country::Au => Names {
            first: &[
                "Jack",
                "Charlotte",
                "William",
                "Olivia",
                "Noah",
                "Matilda",
                "Lachlan",
                "Ruby",
                "Cooper",
                "Isla",
            ],
            last: &[
                "Smith", "Nguyen", "Williams", "Brown", "Wilson", "Taylor", "Kelly", "Ryan",
                "Campbell", "Walsh",
            ],
            companies: &[
                "Southern Cross Surf Co.",
                "Outback Freight",
                "Harbour Bridge Dental",
                "Koala Coffee Roasters",
            ],
        },
    }
}

/// A number as a person typed it, its E.164 form, and whether Google sends `canonicalForm`.
struct Number {
    typed: String,
    e164: String,
    canonical: bool,
}

fn number(rng: &mut Rng, c: Country, mobile: bool) -> Number {
    let canonical = rng.below(10) < 7;
    let (typed, e164) = match c {
        Country::Us => {
            const AREAS: [u32; 8] = [212, 312, 415, 617, 206, 305, 512, 720];
            let area = AREAS[rng.below(8) as usize];
            let line = 100 + rng.below(100);
            let e164 = format!("+1{area}5550{line}");
            let typed = match rng.below(4) {
                0 => format!("({area}) 555-0{line}"),
                1 => format!("{area}-555-0{line}"),
                2 => format!("+1 {area} 555 0{line}"),
                _ => format!("{area}.555.0{line}"),
            };
            (typed, e164)
        }
        Country::Gb => {
            let n = rng.below(1000);
            if mobile {
                (
                    national_or_plus(
                        rng,
                        canonical,
                        &format!("07700 900{n:03}"),
                        &format!("+44 7700 900{n:03}"),
                    ),
                    format!("+447700900{n:03}"),
                )
            } else {
                (
                    national_or_plus(
                        rng,
                        canonical,
                        &format!("020 7946 0{n:03}"),
                        &format!("+44 20 7946 0{n:03}"),
                    ),
                    format!("+442079460{n:03}"),
                )
            }
        }
        Country::De => {
            if mobile {
                let n = 1_000_000 + rng.below(8_999_999);
                (
                    national_or_plus(
                        rng,
                        canonical,
                        &format!("0151 {n}"),
                        &format!("+49 151 {n}"),
                    ),
                    format!("+49151{n}"),
                )
            } else {
                let (city, local) =
                    [("30", 8u32), ("89", 8), ("40", 7), ("221", 7)][rng.below(4) as usize];
                let n = 10u32.pow(local - 1) + rng.below(9 * 10u32.pow(local - 1));
                let typed = if rng.below(3) == 0 {
                    format!("0049 {city} {n}")
                } else {
                    national_or_plus(
                        rng,
                        canonical,
                        &format!("0{city} {n}"),
                        &format!("+49 {city} {n}"),
                    )
                };
                (typed, format!("+49{city}{n}"))
            }
        }
        Country::Fr => {
            let (a, b) = (rng.below(100), rng.below(100));
            if mobile {
                (
                    national_or_plus(
                        rng,
                        canonical,
                        &format!("06 39 98 {a:02} {b:02}"),
                        &format!("+33 6 39 98 {a:02} {b:02}"),
                    ),
                    format!("+3363998{a:02}{b:02}"),
                )
            } else {
                (
                    national_or_plus(
                        rng,
                        canonical,
                        &format!("01 99 00 {a:02} {b:02}"),
                        &format!("+33 1 99 00 {a:02} {b:02}"),
                    ),
                    format!("+3319900{a:02}{b:02}"),
                )
            }
        }
        Country::In => {
            let (a, b) = (10_000 + rng.below(90_000), 10_000 + rng.below(90_000));
            let lead = [98u32, 97, 99, 90][rng.below(4) as usize];
            let a = a % 1000 + lead * 1000;
            (format!("+91 {a} {b}"), format!("+91{a}{b}"))
        }
        Country::Br => {
            let city = [11u32, 21, 31, 61][rng.below(4) as usize];
            let (a, b) = (1000 + rng.below(9000), 1000 + rng.below(9000));
            (format!("+55 {city} 9{a}-{b}"), format!("+55{city}9{a}{b}"))
        }
        Country::Au => {
            if mobile {
                let n = rng.below(1000);
                (
                    national_or_plus(
                        rng,
                        canonical,
                        &format!("0491 570 {n:03}"),
                        &format!("+61 491 570 {n:03}"),
                    ),
                    format!("+61491570{n:03}"),
                )
            } else {
                let n = rng.below(10_000);
                (
                    national_or_plus(
                        rng,
                        canonical,
                        &format!("(02) 5550 {n:04}"),
                        &format!("+61 2 5550 {n:04}"),
                    ),
                    format!("+6125550{n:04}"),
                )
            }
        }
    };
    // A number written nationally for a country other than the default region only makes
    // sense with Google's canonical form; without it, write it internationally.
    let national_foreign =
        !matches!(c, Country::Us) && !typed.starts_with('+') && !typed.starts_with("00");
    Number {
        canonical: canonical || national_foreign,
        typed,
        e164,
    }
}

/// With a canonical form people write numbers nationally; without one, as `+CC …`.
fn national_or_plus(rng: &mut Rng, canonical: bool, national: &str, plus: &str) -> String {
    if canonical && rng.below(3) > 0 {
        national.to_string()
    } else {
        plus.to_string()
    }
}

fn generated(rng: &mut Rng, used: &mut HashSet<String>, mix: &[(Country, u32)], id: u32) -> Person {
    let country = pick(rng, mix);
    let n = names(country);
    let first = n.first[rng.below(n.first.len() as u32) as usize];
    let last = n.last[rng.below(n.last.len() as u32) as usize];
    let company = n.companies[rng.below(n.companies.len() as u32) as usize];
    let resource = format!("people/c{}", 7_000_000_000u64 + u64::from(id) * 7919);
    let mut person = if id % 29 == 3 {
        // A business card without a person's name.
        Person::new(&resource, "", "").with_company(company)
    } else {
        let p = Person::new(&resource, first, last);
        if rng.below(3) == 0 {
            p.with_company(company)
        } else {
            p
        }
    };
    let phones = 1 + u32::from(rng.below(4) == 0);
    for k in 0..phones {
        let mobile = k == 0 && rng.below(2) == 0;
        let num = loop {
            let num = number(rng, country, mobile);
            if used.insert(num.e164.clone()) {
                break num;
            }
        };
        let label = if mobile {
            "mobile"
        } else {
            ["work", "home", "main", "other", "workFax", "Assistant"][rng.below(6) as usize]
        };
        person = if num.canonical {
            person.with_phone_canonical(&num.typed, &num.e164, label)
        } else {
            person.with_phone(&num.typed, label)
        };
    }
    person
}

fn pick(rng: &mut Rng, mix: &[(Country, u32)]) -> Country {
    let total: u32 = mix.iter().map(|(_, w)| w).sum();
    let mut r = rng.below(total);
    for (c, w) in mix {
        if r < *w {
            return *c;
        }
        r -= w;
    }
    mix[0].0
}

/// xorshift64*: a fixed sequence, so every run seeds the same address book.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u32) -> u32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let x = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d);
        u32::try_from((x >> 32) % u64::from(n.max(1))).unwrap_or(0)
    }
}
