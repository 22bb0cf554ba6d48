//! The cluster's figures, on a PostgreSQL server of the bench's own (Debian's; without it the
//! rows say how to install it): how long a sync landing on node A takes to show on node B,
//! lookups on node B while node A syncs (beside node B idle), and `gi_open` from PostgreSQL
//! beside SQLite holding the same rows.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{
    bench_google, e164_of, hit_inputs, lookups_during_syncs, ms, ns, open, open_in_fresh_process,
    people, ratio, row, wait_synced, Row, Sizes, BIG_ACCOUNT, BIG_USER,
};
use crate::progress::Bar;
use host_sim::plugin::{Api, Plugin};

/// Syncs whose propagation is timed (the p99 of 40 is their second slowest).
const PROPAGATION_ROUNDS: usize = 40;
/// Fresh-process opens timed for each store; the median is reported.
const OPEN_ROUNDS: usize = 3;

pub(super) fn cluster_rows(api: &Api, sizes: &Sizes, rows: &mut Vec<Row>) -> Result<(), String> {
    let (server, url) = match host_sim::pg::private_server("skip these rows") {
        Ok(started) => started,
        Err(e) => {
            rows.push(row("cluster rows (PostgreSQL)", "skipped", e, "", ""));
            return Ok(());
        }
    };
    let small = sizes.sync_contacts < 25_000;
    let (fake, dir, base) = bench_google(json!({}))?;
    let key = dir.path().join("cluster.key");
    host_sim::pg::write_key(&key);
    let node = |name: &str, store: &str| -> Value {
        let mut config = base.clone();
        config["data_dir"] = json!(dir.path().join(name));
        config["store"] = json!(store);
        config["token_key_file"] = json!(key);
        config
    };

    // ---- two nodes, one account of sync_contacts contacts ----------------------------------
    let big = people(0, sizes.sync_contacts);
    let numbers: Vec<u64> = big.iter().map(|p| e164_of(&p.phones[0].value)).collect();
    fake.add_user(BIG_USER, "Big Account");
    fake.set_contacts(BIG_USER, big.clone());
    let a = open(api, &node("a", &url))?;
    let b = open(api, &node("b", &url))?;
    let mut bar = Bar::new("cluster     ");
    bar.update(0, 1, "node A connects and syncs; node B follows");
    host_sim::connect_through_fake(&a, &fake, BIG_ACCOUNT, BIG_USER)?;
    wait_synced(&a, &fake, BIG_ACCOUNT, 0)?;
    let first = &big[0].phones[0].value;
    wait_for(Duration::from_secs(120), || {
        b.lookup(BIG_ACCOUNT, first).ok().flatten().is_some()
    })
    .map_err(|()| "node B never answered the account node A synced".to_string())?;

    // A contact renamed, synced on node A: from node A answering the new name (its sync
    // landed) to node B answering it.
    let rounds = if small { 10 } else { PROPAGATION_ROUNDS };
    let mut own = Vec::with_capacity(rounds);
    let mut propagation = Vec::with_capacity(rounds);
    for (k, original) in big.iter().enumerate().take(rounds) {
        bar.update(
            k,
            rounds,
            "a change synced on node A, until node B answers it",
        );
        let mut person = original.clone();
        person.display = format!("Moved {k}");
        fake.upsert_contact(BIG_USER, person.clone());
        let number = &original.phones[0].value;
        let shows = |plugin: &Plugin<'_>| {
            plugin
                .lookup(BIG_ACCOUNT, number)
                .ok()
                .flatten()
                .is_some_and(|c| c.name == person.display)
        };
        let asked = Instant::now();
        a.sync_now(BIG_ACCOUNT).map_err(|e| e.to_string())?;
        wait_for(Duration::from_secs(120), || shows(&a))
            .map_err(|()| format!("node A never answered round {k}'s change"))?;
        let landed = Instant::now();
        wait_for(Duration::from_secs(120), || shows(&b))
            .map_err(|()| format!("node B never answered round {k}'s change"))?;
        own.push(landed - asked);
        propagation.push(landed.elapsed());
    }
    own.sort();
    propagation.sort();
    let quantile = |sorted: &[Duration], q: f64| {
        sorted[((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1]
    };
    bar.finish(
        rounds,
        rounds,
        &format!(
            "propagation median {:.0} ms",
            ms(quantile(&propagation, 0.5))
        ),
    );
    rows.push(row(
        format!(
            "cluster: a sync landing on node A until node B answers it ({} contacts, {rounds} rounds)",
            sizes.sync_contacts
        ),
        format!(
            "median {:.0} ms, p99 {:.0} ms",
            ms(quantile(&propagation, 0.5)),
            ms(quantile(&propagation, 0.99))
        ),
        format!(
            "node A's own sync: median {:.0} ms",
            ms(quantile(&own, 0.5))
        ),
        ratio(
            ms(quantile(&propagation, 0.5)),
            ms(quantile(&own, 0.5)),
        ),
        "≤ 2 s at p99",
    ));

    // Lookups on node B while node A syncs 10 changes at a time (each reloads the account's
    // book on node B), beside node B with nothing running.
    let mut bar = Bar::new("cluster     ");
    bar.update(0, 1, "lookups on node B while node A syncs");
    let inputs = hit_inputs(&[(BIG_ACCOUNT.to_owned(), numbers)]);
    let changed = std::cell::Cell::new(0usize);
    let (quiet, busy, syncs) =
        lookups_during_syncs([&b, &a], &fake, &inputs, sizes.measure, &|| {
            for _ in 0..10 {
                let n = changed.get();
                let mut person = big[n % big.len()].clone();
                person.display = format!("Changed {n}");
                fake.upsert_contact(BIG_USER, person);
                changed.set(n + 1);
            }
        })?;
    bar.finish(1, 1, &format!("{syncs} syncs ran on node A"));
    for (label, q) in [("p50", 0.5), ("p99.9", 0.999)] {
        rows.push(row(
            format!("cluster: lookup {label} on node B while node A syncs ({syncs} syncs)"),
            ns(busy.value_at_quantile(q) as f64),
            format!("node B idle: {}", ns(quiet.value_at_quantile(q) as f64)),
            ratio(
                busy.value_at_quantile(q) as f64,
                quiet.value_at_quantile(q) as f64,
            ),
            "as a single node",
        ));
    }

    drop((a, b));

    // ---- gi_open from PostgreSQL and from SQLite, the same rows ----------------------------
    // CI runs --small on a debug build: a smoke test of the path, kept short.
    let total = if small { 20_000 } else { 1_000_000 };
    let open_rounds = if small { 1 } else { OPEN_ROUNDS };
    let mut bar = Bar::new("cluster open");
    bar.update(0, 2, &format!("{total} numbers into PostgreSQL and SQLite"));
    let open_url = server.new_database();
    let pg_config = node("open-pg", &open_url);
    let sqlite_config = {
        let mut config = base.clone();
        config["data_dir"] = json!(dir.path().join("open-sqlite"));
        config
    };
    // Each store made by the plugin (its schema, its key), then filled by SQL: a million
    // numbers through the fake Google would take minutes and measure the sync, not the open.
    drop(open(api, &pg_config)?);
    drop(open(api, &sqlite_config)?);
    let mut db = server.client(&open_url);
    db.batch_execute(&format!(
        "INSERT INTO contacts (account, source, resource_name, name, company)
            SELECT 'tenant' || (g / 1000) || '.example', 'contacts', 'people/c' || g,
                   'Person ' || g, 'Company ' || (g % 97)
            FROM generate_series(0, {total} - 1) g;
         INSERT INTO numbers (contact_id, position, e164, national, label)
            SELECT id, 0, 12125550000 + id, 2125550000 + id, 'mobile' FROM contacts;
         -- Each row's copy of its numbers, as the plugin writes it (src/store/pg_numbers.rs).
         UPDATE contacts SET packed_numbers = int8send(12125550000 + id)
            || int8send(2125550000 + id) || int4send(6) || convert_to('mobile', 'UTF8');"
    ))
    .map_err(|e| format!("filling PostgreSQL: {e}"))?;
    // The update left a dead copy of every row, which a store the plugin wrote has not.
    db.batch_execute("VACUUM FULL contacts")
        .and_then(|()| db.batch_execute("ANALYZE"))
        .map_err(|e| format!("compacting PostgreSQL: {e}"))?;
    let probe = db
        .query_one(
            "SELECT c.account, n.e164 FROM contacts c JOIN numbers n ON n.contact_id = c.id
             ORDER BY c.id LIMIT 1",
            &[],
        )
        .map_err(|e| e.to_string())?;
    let (account, number): (String, i64) = (probe.get(0), probe.get(1));
    let number = format!("+{number}");
    drop(db);
    let sqlite =
        rusqlite::Connection::open(dir.path().join("open-sqlite/google-integration.sqlite3"))
            .map_err(|e| e.to_string())?;
    sqlite
        .execute_batch(&format!(
            "BEGIN;
             WITH RECURSIVE g(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM g WHERE x < {total} - 1)
             INSERT INTO contacts (id, account, source, resource_name, name, company, groups)
                SELECT x + 1, 'tenant' || (x / 1000) || '.example', 'contacts', 'people/c' || x,
                       'Person ' || x, 'Company ' || (x % 97), '' FROM g;
             INSERT INTO numbers (contact_id, e164, national, label)
                SELECT id, 12125550000 + id, 2125550000 + id, 'mobile' FROM contacts;
             COMMIT;"
        ))
        .map_err(|e| format!("filling SQLite: {e}"))?;
    drop(sqlite);
    let mut opens = |name: &str, config: &Value| -> Result<f64, String> {
        let mut secs = Vec::new();
        for round in 0..open_rounds {
            bar.update(round, open_rounds, &format!("gi_open from {name}"));
            let report = open_in_fresh_process(api, dir.path(), name, config, &account, &number)?;
            if report["found"] != true {
                return Err(format!("after gi_open from {name}, {number} was not found"));
            }
            secs.push(report["open_secs"].as_f64().unwrap_or(f64::NAN));
        }
        secs.sort_by(f64::total_cmp);
        Ok(secs[secs.len() / 2])
    };
    let pg_open = opens("postgresql", &pg_config)?;
    let sqlite_open = opens("sqlite", &sqlite_config)?;
    bar.finish(2, 2, &format!("{pg_open:.2} s from PostgreSQL"));
    rows.push(row(
        format!("cluster: gi_open from PostgreSQL, {total} numbers (median of {open_rounds})"),
        format!("{pg_open:.2} s"),
        format!("SQLite, same rows: {sqlite_open:.2} s"),
        ratio(pg_open, sqlite_open),
        "≤ 3 s",
    ));
    drop(server);
    Ok(())
}

/// Polls `done` every 200 µs until it holds, or fails after `limit`.
fn wait_for(limit: Duration, mut done: impl FnMut() -> bool) -> Result<(), ()> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if done() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    Err(())
}
