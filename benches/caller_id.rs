//! Caller-ID lookups in process, each beside what others do instead, in the same run:
//! - number reading: the plugin's reader against `phonenumber::parse` on the same inputs;
//! - lookup (number reading included) at 25,000 numbers (one Google account's maximum) and at
//!   1,000,000 (1,000 accounts of 1,000), hits and misses, against an indexed SQLite query with
//!   a prepared statement over the same data: what a per-call database lookup costs.
//!
//! `host-sim bench` measures the same through the C ABI, with percentiles, syncs, open time and
//! memory.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use google_integration::book::contact::{Contact, ContactNumber};
use google_integration::book::numbers::{AccountIndex, ContactIndex};
use google_integration::book::phone::RegionRules;
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
            built.push((account, AccountIndex::build(&contacts)));
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

criterion_group!(benches, number_reading, lookups, index_build);
criterion_main!(benches);
