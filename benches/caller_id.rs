//! Caller-ID lookups in process, each beside what others do instead, in the same run:
//! - number reading: the plugin's reader against `phonenumber::parse` on the same inputs;
//! - lookup (number reading included) at 25,000 numbers (one Google account's maximum) and at
//!   1,000,000 (1,000 accounts of 1,000), hits and misses, against an indexed SQLite query with
//!   a prepared statement over the same data: what a per-call database lookup costs.
//!
//! `host-sim bench` measures the same through the C ABI, with percentiles, syncs, open time and
//! memory.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode};
use google_integration::book::contact::{Contact, ContactNumber, Source};
use google_integration::book::names::{Entry, NameIndex, Query, Row};
use google_integration::book::numbers::{AccountIndex, ContactIndex};
use google_integration::book::phone::RegionRules;
use google_integration::book::HelperThreads;
use rusqlite::{params, Connection};

const SHAPES: &[(&str, &str)] = &[
    ("e164", "+12125550199"),
    ("national", "(212) 555-0199"),
    ("idd_00", "0044 20 7946 0958"),
    ("idd_011", "011 44 20 7946 0958"),
    ("tel_uri", "tel:+1-212-555-0199"),
    ("sip_uri", "sip:+12125550199@pbx.example.com;user=phone"),
    ("punctuated", "+1 (212) 555-0199"),
];

fn number_reading(c: &mut Criterion) {
    let us = RegionRules::new("US").unwrap();
    let mut group = c.benchmark_group("number_reading");
    for (shape, input) in SHAPES {
        group.bench_with_input(BenchmarkId::new("plugin", shape), input, |b, input| {
            b.iter(|| us.read_incoming(black_box(input)))
        });
        group.bench_with_input(
            BenchmarkId::new("phonenumber_parse", shape),
            input,
            |b, input| {
                b.iter(|| {
                    phonenumber::parse(Some(phonenumber::country::Id::US), black_box(input)).ok()
                })
            },
        );
    }
    group.finish();
}

/// `accounts` accounts of `per_account` contacts with one number each: +1 200 nnn nnnn.
struct Dataset {
    index: ContactIndex,
    db: Connection,
    accounts: usize,
    per_account: usize,
}

fn e164_of(account: usize, i: usize, per_account: usize) -> u64 {
    12_000_000_000 + (account * per_account + i) as u64
}

fn dataset(accounts: usize, per_account: usize) -> Dataset {
    let us = RegionRules::new("US").unwrap();
    let index = ContactIndex::default();
    let db = Connection::open_in_memory().unwrap();
    db.execute_batch(
        "CREATE TABLE numbers (account TEXT NOT NULL, e164 INTEGER NOT NULL, name TEXT NOT NULL,
                               company TEXT NOT NULL, label TEXT NOT NULL);
         CREATE INDEX numbers_by_number ON numbers(account, e164);",
    )
    .unwrap();
    let tx = db.unchecked_transaction().unwrap();
    let mut built = Vec::with_capacity(accounts);
    {
        let mut insert = tx
            .prepare("INSERT INTO numbers VALUES (?1, ?2, ?3, ?4, ?5)")
            .unwrap();
        for a in 0..accounts {
            let account = format!("tenant{a}.example.com");
            let contacts: Vec<Contact> = (0..per_account)
                .map(|i| {
                    let e164 = e164_of(a, i, per_account);
                    let stored = us.normalise_stored(&format!("+{e164}"), None).unwrap();
                    let name = format!("Contact {i:05} of {a}");
                    insert
                        .execute(params![
                            account,
                            e164 as i64,
                            name,
                            "Example Corp",
                            "mobile"
                        ])
                        .unwrap();
                    Contact {
                        resource_name: format!("people/c{i}"),
                        name,
                        company: "Example Corp".into(),
                        numbers: vec![ContactNumber {
                            e164: stored.e164,
                            national: stored.national,
                            label: "mobile".into(),
                        }],
                        groups: Vec::new(),
                    }
                })
                .collect();
            built.push((account, Source::Contacts, AccountIndex::build(&contacts)));
        }
    }
    tx.commit().unwrap();
    index.replace_all(built);
    Dataset {
        index,
        db,
        accounts,
        per_account,
    }
}

/// Inputs spread over the data set, so caches see a realistic mix rather than one number.
fn inputs(d: &Dataset, hit: bool) -> Vec<(String, String)> {
    (0..1024)
        .map(|n| {
            let a = (n * 7919) % d.accounts;
            let i = (n * 104_729) % d.per_account;
            let account = format!("tenant{a}.example.com/{}", 100 + n % 50);
            let e164 = if hit {
                e164_of(a, i, d.per_account)
            } else {
                19_000_000_000 + n as u64
            };
            (account, format!("+{e164}"))
        })
        .collect()
}

fn lookups(c: &mut Criterion) {
    let us = RegionRules::new("US").unwrap();
    for (label, accounts, per_account) in [("25k", 1usize, 25_000usize), ("1m", 1000, 1000)] {
        let d = dataset(accounts, per_account);
        let mut group = c.benchmark_group(format!("lookup_{label}"));
        for hit in [true, false] {
            let inputs = inputs(&d, hit);
            let kind = if hit { "hit" } else { "miss" };
            let mut n = 0usize;
            group.bench_function(BenchmarkId::new("plugin_index", kind), |b| {
                b.iter(|| {
                    let (account, number) = &inputs[n % inputs.len()];
                    n += 1;
                    let incoming = us.read_incoming(number)?;
                    d.index.lookup(account, &incoming, |m| m.name.len())
                })
            });
            // The same question to SQLite: the user's account, then its domain.
            let mut query =
                d.db.prepare_cached(
                    "SELECT name, company, label FROM numbers WHERE account = ?1 AND e164 = ?2",
                )
                .unwrap();
            let mut n = 0usize;
            group.bench_function(BenchmarkId::new("sqlite_indexed", kind), |b| {
                b.iter(|| {
                    let (account, number) = &inputs[n % inputs.len()];
                    n += 1;
                    let incoming = us.read_incoming(number)?;
                    let domain = account.split('/').next().unwrap();
                    [account.as_str(), domain].into_iter().find_map(|scope| {
                        let mut rows = query.query(params![scope, incoming.e164.0 as i64]).ok()?;
                        let row = rows.next().ok()??;
                        Some(row.get::<_, String>(0).ok()?.len())
                    })
                })
            });
        }
        group.finish();
    }
}

/// Building one account's index from its contacts: what every sync pays after its commit.
fn index_build(c: &mut Criterion) {
    // As an open plugin holds them: its builds of large indexes run beside kept threads.
    let _helpers = HelperThreads::hold();
    let us = RegionRules::new("US").unwrap();
    let contacts: Vec<Contact> = (0..25_000usize)
        .map(|i| {
            let stored = us
                .normalise_stored(&format!("+1200{:07}", i * 13), None)
                .unwrap();
            Contact {
                resource_name: format!("people/c{:019}", i * 7919),
                name: format!(
                    "{} {}",
                    ["Anna", "Ben", "Chloé", "Dmitri"][i % 4],
                    i * 31 % 9973
                ),
                company: if i % 3 == 0 {
                    "Example Corp".into()
                } else {
                    String::new()
                },
                numbers: vec![ContactNumber {
                    e164: stored.e164,
                    national: stored.national,
                    label: "mobile".into(),
                }],
                groups: Vec::new(),
            }
        })
        .collect();
    c.bench_function("index_build/25k_contacts", |b| {
        b.iter(|| AccountIndex::build(black_box(&contacts)))
    });
}

/// An address book of 25,000 people with realistic names: 1,600 family names (a few with
/// umlauts, like Müller), 32 given names, a company for a third, two numbers for a fifth.
pub fn address_book(count: usize) -> Vec<Contact> {
    const GIVEN: &[&str] = &[
        "Anna", "Ben", "Chloé", "Dmitri", "Emma", "Farid", "Grace", "Hiro", "Inès", "Jonas",
        "Kavya", "Luis", "Mia", "Noah", "Olivia", "Priya", "Quinn", "Rosa", "Sven", "Tomás", "Uma",
        "Viktor", "Wen", "Xavier", "Yara", "Zoë", "Jürgen", "Åsa", "Léa", "Marco", "Nadia", "Omar",
    ];
    const SYLLABLES: &[&str] = &[
        "Mül", "ler", "Schä", "fer", "Wei", "ß", "Ber", "gen", "Lin", "dqvist", "Ko", "wal", "ski",
        "Gar", "cía", "Ros", "si", "Ngu", "yen", "Sil", "va", "Du", "bois", "Ta", "na", "ka", "O",
        "ka", "for", "Shar", "ma", "Ha",
    ];
    let us = RegionRules::new("US").unwrap();
    (0..count)
        .map(|i| {
            // Given name, first and second syllable vary independently: 32,768 full names for
            // 25,000 people, so most names are unique and some repeat, as in a real book.
            let family = format!(
                "{}{}",
                SYLLABLES[(i / GIVEN.len()) % SYLLABLES.len()],
                SYLLABLES[(i / (GIVEN.len() * SYLLABLES.len()) + i * 7) % SYLLABLES.len()]
                    .to_lowercase()
            );
            let given = GIVEN[i % GIVEN.len()];
            let numbers = (0..if i % 5 == 0 { 2 } else { 1 })
                .map(|n| {
                    let stored = us
                        .normalise_stored(&format!("+1{}{:07}", 201 + n, i * 13 % 10_000_000), None)
                        .unwrap();
                    ContactNumber {
                        e164: stored.e164,
                        national: stored.national,
                        label: ["mobile", "work"][n].into(),
                    }
                })
                .collect();
            Contact {
                resource_name: format!("people/c{:019}", i * 7919),
                name: format!("{given} {family}"),
                company: if i % 3 == 0 {
                    format!("{} GmbH", SYLLABLES[(i / 3) % SYLLABLES.len()])
                } else {
                    String::new()
                },
                numbers,
                groups: Vec::new(),
            }
        })
        .collect()
}

/// The address book: a 10-row text search and a keypad search on 25,000 contacts against
/// the same question to SQLite's FTS5 (prefix query, ordered, with its count).
fn search(c: &mut Criterion) {
    let contacts = address_book(25_000);
    let index = ContactIndex::default();
    index.replace(
        "example.com",
        Source::Contacts,
        AccountIndex::build(&contacts),
    );
    let db = Connection::open_in_memory().unwrap();
    db.execute_batch(
        "CREATE VIRTUAL TABLE book USING fts5(name, company, number UNINDEXED,
                                               tokenize = 'unicode61 remove_diacritics 2');",
    )
    .unwrap();
    {
        let tx = db.unchecked_transaction().unwrap();
        let mut insert = tx
            .prepare("INSERT INTO book (name, company, number) VALUES (?1, ?2, ?3)")
            .unwrap();
        for contact in &contacts {
            for number in &contact.numbers {
                insert
                    .execute(params![
                        contact.name,
                        contact.company,
                        number.e164.to_string_e164()
                    ])
                    .unwrap();
            }
        }
        drop(insert);
        tx.commit().unwrap();
    }
    let mut group = c.benchmark_group("search_25k");
    for (label, text, fts) in [
        ("selective", "jonas mül", "jonas* mul*"),
        ("broad", "mül", "mul*"),
    ] {
        let query = Query::parse(text, false).unwrap();
        group.bench_function(BenchmarkId::new("plugin", label), |b| {
            b.iter(|| {
                let mut names = 0usize;
                let total = index.search("example.com/40", black_box(&query), 0, 10, |m| {
                    names += m.name.len()
                });
                (names, total)
            })
        });
        let mut rows = db
            .prepare_cached(
                "SELECT name, company, number FROM book WHERE book MATCH ?1
                 ORDER BY name COLLATE NOCASE, company COLLATE NOCASE, number LIMIT 10",
            )
            .unwrap();
        let mut count = db
            .prepare_cached("SELECT count(*) FROM book WHERE book MATCH ?1")
            .unwrap();
        group.bench_function(BenchmarkId::new("sqlite_fts5", label), |b| {
            b.iter(|| {
                let names: usize = rows
                    .query_map([black_box(fts)], |r| r.get::<_, String>(0))
                    .unwrap()
                    .map(|n| n.unwrap().len())
                    .sum();
                let total: i64 = count.query_row([fts], |r| r.get(0)).unwrap();
                (names, total)
            })
        });
    }
    let keypad = Query::parse("6855", true).unwrap();
    group.bench_function(BenchmarkId::new("plugin", "keypad"), |b| {
        b.iter(|| index.search("example.com/40", black_box(&keypad), 0, 10, |_| ()))
    });
    group.finish();
}

/// What the address book adds to building an account's index: the whole index, against the
/// same index built without its address book (the baseline), and the name index alone.
fn name_index_build(c: &mut Criterion) {
    // As an open plugin holds them (see `index_build`).
    let _helpers = HelperThreads::hold();
    let contacts = address_book(25_000);
    build_ratio_interleaved(&contacts);
    // The issue's measure: two rows timed one after the other, on a VM whose speed drifts in
    // spells of seconds. With criterion's default 5 s a row a spell often fell in one row and
    // not the other (the ratio +28..87% over eighteen runs); 20 s a row spans several, most
    // of the time (sixteen runs over four sessions: +35..58% in fourteen, +64 and +81% in two
    // where a spell lasted the build's whole row; median +50.6%). The build's row sits 3-11%
    // above its own back-to-back mean printed above, the baseline's within 2%: the build, on
    // two vCPUs, meets spells of the host not running both at once that the baseline, on one,
    // does not. Flat sampling, as criterion chose for 5 s, so that the estimator stays the
    // mean of batches.
    let mut group = c.benchmark_group("index_build");
    group
        .sampling_mode(SamplingMode::Flat)
        .measurement_time(Duration::from_secs(20));
    group.bench_function("25k_address_book", |b| {
        b.iter(|| AccountIndex::build(black_box(&contacts)))
    });
    group.bench_function("25k_address_book_without_it", |b| {
        b.iter(|| AccountIndex::build_caller_id_only(black_box(&contacts)))
    });
    group.finish();
    fn entries(contacts: &[Contact]) -> (Vec<Entry<'_>>, Vec<Row>) {
        let mut rows = Vec::new();
        let entries = contacts
            .iter()
            .map(|c| {
                let start = rows.len() as u32;
                rows.extend(c.numbers.iter().map(|n| Row {
                    e164: n.e164.0,
                    ..Row::default()
                }));
                Entry {
                    name: &c.name,
                    company: &c.company,
                    groups: &[],
                    rows: start..rows.len() as u32,
                }
            })
            .collect();
        (entries, rows)
    }
    // Not a timing: what the name index holds, per contact, for the README.
    let (entries_of_book, rows_of_book) = entries(&contacts);
    let bytes = NameIndex::build(&entries_of_book, &rows_of_book)
        .0
        .heap_bytes();
    println!(
        "name index: {bytes} heap bytes for {} contacts, {:.1} bytes a contact",
        contacts.len(),
        bytes as f64 / contacts.len() as f64
    );
    c.bench_function("name_index_build/25k_address_book", |b| {
        b.iter(|| NameIndex::build(black_box(&entries_of_book), &rows_of_book))
    });
}

/// What building the address book adds to the index build, measured interleaved: criterion
/// times the two rows below a few seconds apart, and on a shared VM the machine's speed
/// drifts more than that. Here each round builds the index with and without its address book
/// back to back (which goes first alternates), and the figure is the median of the rounds'
/// ratios: a drift slower than a round cancels out. Not a timing of its own: ratios, printed
/// for the README.
///
/// Measured twice, with glibc's malloc pinned in each of two states, because a build's time
/// depends on them more than on anything else (`perf stat`: up to 60% of the build without
/// its address book is page faults): memory freed by one build kept for the next, so that
/// none faults (the algorithm's own cost), and every large block returned to the system
/// when freed and faulted in anew, glibc's behaviour before its thresholds adapt. A PBX's
/// process is somewhere in between, and criterion's rows, timed after this, wherever the
/// earlier benchmarks left it (here: kept).
fn build_ratio_interleaved(contacts: &[Contact]) {
    for keep in [false, true] {
        let state = pin_allocator(keep);
        let (ratios, without) = ratios_interleaved(contacts);
        println!(
            "index build of 25,000 contacts, with its address book against without, interleaved 201 rounds, {state}: adds {:+.0}% (median of the rounds' ratios; quartiles {:+.0}% and {:+.0}%); without it {:.2} ms (median)",
            (ratios[0] - 1.0) * 100.0,
            (ratios[1] - 1.0) * 100.0,
            (ratios[2] - 1.0) * 100.0,
            without * 1e3,
        );
    }
    build_times_back_to_back(contacts);
}

/// Each build timed alone, 600 back to back as criterion runs them, then 600 of the other:
/// median and mean of each. Criterion's row is a mean (of batches), and a two-threaded
/// build's slow tail on a shared VM (the host slowing a vCPU for a while) weighs in it more
/// than in the median. Printed for the README, beside criterion's rows.
fn build_times_back_to_back(contacts: &[Contact]) {
    // Pinned here, not left from the interleaved rounds, so that the label holds whatever
    // order those run in.
    let state = pin_allocator(true);
    let times = |build: &dyn Fn() -> AccountIndex| {
        let mut times: Vec<f64> = (0..600).map(|_| time_build(build)).collect();
        let mean = times.iter().sum::<f64>() / times.len() as f64;
        times.sort_by(f64::total_cmp);
        (times[times.len() / 2], mean, times[times.len() * 9 / 10])
    };
    let with = times(&|| AccountIndex::build(black_box(contacts)));
    let without = times(&|| AccountIndex::build_caller_id_only(black_box(contacts)));
    println!(
        "index build of 25,000 contacts, 600 back to back each, {state}: with its address book median {:.2} ms (mean {:.2}, p90 {:.2}), without median {:.2} ms (mean {:.2}): adds {:+.0}% by the medians, {:+.0}% by the means",
        with.0 * 1e3,
        with.1 * 1e3,
        with.2 * 1e3,
        without.0 * 1e3,
        without.1 * 1e3,
        (with.0 / without.0 - 1.0) * 100.0,
        (with.1 / without.1 - 1.0) * 100.0,
    );
}

/// Seconds one build takes, its index dropped after the clock stops.
fn time_build(build: &dyn Fn() -> AccountIndex) -> f64 {
    let started = std::time::Instant::now();
    let built = build();
    let took = started.elapsed().as_secs_f64();
    drop(black_box(built));
    took
}

/// The median ratio of 201 interleaved rounds with its quartiles, and the median time of
/// the build without the address book, in seconds.
fn ratios_interleaved(contacts: &[Contact]) -> ([f64; 3], f64) {
    let with = || AccountIndex::build(black_box(contacts));
    let without = || AccountIndex::build_caller_id_only(black_box(contacts));
    for _ in 0..5 {
        time_build(&with);
        time_build(&without);
    }
    let mut alone = Vec::with_capacity(201);
    let mut ratios: Vec<f64> = (0..201)
        .map(|round| {
            let (a, b) = if round % 2 == 0 {
                let a = time_build(&with);
                (a, time_build(&without))
            } else {
                let b = time_build(&without);
                (time_build(&with), b)
            };
            alone.push(b);
            a / b
        })
        .collect();
    ratios.sort_by(f64::total_cmp);
    alone.sort_by(f64::total_cmp);
    let at = |q: f64| ratios[((ratios.len() - 1) as f64 * q).round() as usize];
    ([at(0.5), at(0.25), at(0.75)], alone[alone.len() / 2])
}

/// Pins glibc's malloc thresholds (process-wide, so only in a benchmark): `keep` keeps freed
/// memory for reuse (nothing below 32 MiB is mapped alone or trimmed), otherwise every block
/// from 128 KiB up is mapped alone and unmapped when freed, and the heap trimmed past
/// 128 KiB (glibc's starting thresholds, without their adapting). Says which, for the row.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn pin_allocator(keep: bool) -> &'static str {
    use std::ffi::c_int;
    extern "C" {
        fn mallopt(param: c_int, value: c_int) -> c_int;
    }
    const M_TRIM_THRESHOLD: c_int = -1;
    const M_MMAP_THRESHOLD: c_int = -3;
    let (trim, mmap) = if keep {
        (c_int::MAX, 32 << 20)
    } else {
        (128 << 10, 128 << 10)
    };
    // SAFETY: mallopt takes two ints and only sets glibc's thresholds; this benchmark's
    // threads are not allocating meanwhile.
    let set =
        unsafe { mallopt(M_TRIM_THRESHOLD, trim) == 1 && mallopt(M_MMAP_THRESHOLD, mmap) == 1 };
    match (set, keep) {
        (false, _) => "glibc's malloc as it was (mallopt refused)",
        (true, true) => "freed memory kept (no page faults)",
        (true, false) => "freed memory returned at once (page faults)",
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn pin_allocator(_keep: bool) -> &'static str {
    "the system's allocator as it is"
}

/// `gi_lookup_contact` itself, in process, on an account with no contacts: the C boundary's
/// share of a lookup (checks, the closable handle, zeroing and filling GiContact) beside the
/// number reading measured above.
fn boundary(c: &mut Criterion) {
    use google_integration::ffi::{gi_close, gi_lookup_contact, gi_open, GiContact};
    use std::ffi::CString;
    let dir = tempfile::tempdir().unwrap();
    let config = CString::new(format!(
        r#"{{"client_id":"c","client_secret":"s","redirect_uri":"https://pbx.example.com/cb","data_dir":"{}"}}"#,
        dir.path().join("data").display()
    ))
    .unwrap();
    let plugin = gi_open(config.as_ptr());
    assert!(!plugin.is_null());
    let account = CString::new("example.com/40").unwrap();
    let number = CString::new("+12125550199").unwrap();
    // SAFETY: GiContact is plain bytes.
    let mut out: GiContact = unsafe { std::mem::zeroed() };
    c.bench_function("boundary/gi_lookup_contact_miss", |b| {
        b.iter(|| {
            gi_lookup_contact(
                plugin,
                account.as_ptr(),
                black_box(number.as_ptr()),
                &mut out,
            )
        })
    });
    gi_close(plugin);
}

/// An incremental sync of 10 changes on 25,000 contacts lands as a patch: against rebuilding
/// the account's index from the same contacts (the baseline, what 0.2.0 did on every sync),
/// on a fresh patch and on one grown to 1,500 contacts (its limit is a sixteenth of the
/// account, 1,562). The store's part (who else holds a touched number) is an in-memory map
/// here. A book is patched once (the next patch takes what it carries), so each timed patch
/// starts from a book set up afresh, outside the timing.
fn index_patch(c: &mut Criterion) {
    use google_integration::book::numbers::GroupNames;
    use google_integration::book::patch::{AccountBook, Change, Replaced};
    use std::collections::HashMap;

    // As an open plugin holds them (see `index_build`).
    let _helpers = HelperThreads::hold();
    let contacts = address_book(25_000);
    let ids: Vec<u64> = (1..=contacts.len() as u64).collect();
    let names = GroupNames::new();
    let mut holders_of: HashMap<u64, Vec<usize>> = HashMap::new();
    for (i, contact) in contacts.iter().enumerate() {
        for number in &contact.numbers {
            holders_of.entry(number.e164.0).or_default().push(i);
            holders_of.entry(number.national.0).or_default().push(i);
        }
    }
    let holders = |e164s: &[u64], nationals: &[u64]| -> Result<Vec<Contact>, ()> {
        let mut found: Vec<usize> = e164s
            .iter()
            .chain(nationals)
            .flat_map(|key| holders_of.get(key).into_iter().flatten().copied())
            .collect();
        found.sort_unstable();
        found.dedup();
        Ok(found.into_iter().map(|i| contacts[i].clone()).collect())
    };
    // Renames of contacts `from..from + count`, as the store reports them.
    let renames = |from: usize, count: usize| -> (Vec<Replaced>, Vec<Contact>) {
        (from..from + count)
            .map(|i| {
                let old = &contacts[i];
                let replaced = Replaced {
                    id: ids[i],
                    numbers: old.numbers.iter().map(|n| (n.e164, n.national)).collect(),
                };
                let mut new = old.clone();
                new.name = format!("Renamed {i}");
                (replaced, new)
            })
            .unzip()
    };
    let base = AccountBook::new(AccountIndex::build_stored(&contacts, &ids, &names, None));
    let (bulk_replaced, bulk_upserts) = renames(10_000, 1_500);
    let bulk = Change {
        replaced: &bulk_replaced,
        upserts: &bulk_upserts,
        deletions: &[],
    };
    let grown = || {
        base.patched(&bulk, &names, None, holders)
            .unwrap()
            .expect("1,500 is under the limit")
    };
    let (replaced, upserts) = renames(0, 10);
    let change = Change {
        replaced: &replaced,
        upserts: &upserts,
        deletions: &[],
    };

    let mut group = c.benchmark_group("sync_index_25k");
    group.bench_function("rebuild", |b| {
        b.iter(|| AccountIndex::build_stored(black_box(&contacts), &ids, &names, None))
    });
    group.bench_function("patch_10_changes", |b| {
        b.iter(|| base.patched(black_box(&change), &names, None, holders))
    });
    group.bench_function("patch_10_changes_on_1500", |b| {
        b.iter_batched(
            grown,
            |book| book.patched(black_box(&change), &names, None, holders),
            criterion::BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group!(
    benches,
    boundary,
    number_reading,
    lookups,
    index_build,
    search,
    name_index_build,
    index_patch
);
criterion_main!(benches);
