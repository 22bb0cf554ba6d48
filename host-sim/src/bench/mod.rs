//! `host-sim bench`: the plugin measured the way the PBX uses it, through the C ABI, against
//! the fake Google on loopback, each figure beside its baseline from the same run:
//! - lookups (number reading included) at one account's 25,000 numbers and at 1,000 accounts
//!   of 1,000 numbers, hits and misses, against an indexed SQLite query (prepared statement,
//!   same data): what a per-call database lookup would cost;
//! - lookups from two threads while a third runs full syncs, against the same threads idle;
//! - a full sync of 25,000 contacts end to end, and an incremental sync of 10 changes;
//! - `gi_open` with 1,000,000 stored numbers until the first lookup answers;
//! - resident memory per indexed number;
//! - address book searches (text and keypad) against SQLite FTS5 over the same rows, and
//!   lookups beside a thread that searches;
//! - `gi_presence` at 10,000 accounts with 20 busy periods each, beside a lookup;
//! - the plugin's CPU for an interval's worth of no-change syncs of 10,000 accounts, and
//!   memory per account;
//! - a cluster on PostgreSQL (`cluster`): change propagation between two nodes, lookups on one
//!   node while the other syncs, and `gi_open` from PostgreSQL beside SQLite.
//!
//! Latencies go into HDR histograms (one clock read per call; the clock's own cost is measured
//! and shown). Nothing here is asserted: figures are for the report, on a shared machine.

mod cluster;

use std::ffi::CString;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde_json::{json, Value};

use crate::progress::Bar;
use host_sim::fake_google::{Client, Endpoint, FakeGoogle, Person};
use host_sim::plugin::{Api, GiContact, GiPresence, GiResult, GiSearchMode, Plugin};

#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    /// Small sizes for a quick smoke run (as CI does): 2,000 contacts, 20 accounts of 1,000
    /// numbers, 1-second measurements.
    #[arg(long)]
    pub small: bool,
    /// Also draw the lookup latency distributions (idle vs during syncs) into this SVG file.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,
    /// Seconds each latency measurement runs (default 3, or 1 with --small).
    #[arg(long)]
    pub seconds: Option<u64>,
    /// Only the calendar presence figures (for tuning gi_presence), beside a lookup of an
    /// account with no contacts instead of the million-number lookup.
    #[arg(long, hide = true)]
    pub presence_only: bool,
    /// Only the big account's sync figures (for tuning syncs and the index patch).
    #[arg(long, hide = true)]
    pub sync_only: bool,
    /// Only the cluster figures (PostgreSQL).
    #[arg(long, hide = true)]
    pub cluster_only: bool,
}

/// The hidden `open-probe` subcommand: opens a data_dir in a fresh process, so that open time
/// and resident memory are not flattered by caches and heap that earlier phases left behind.
#[derive(clap::Args, Debug, Clone)]
pub struct OpenProbeArgs {
    /// The configuration JSON file.
    #[arg(long)]
    pub config: PathBuf,
    #[arg(long)]
    pub account: String,
    /// A stored number the first lookup must find.
    #[arg(long)]
    pub number: String,
}

/// Prints one JSON line: open seconds, resident bytes before and after, and whether the
/// first lookup found the number.
pub fn open_probe(api: &Api, args: &OpenProbeArgs) -> Result<(), String> {
    let config = std::fs::read_to_string(&args.config)
        .map_err(|e| format!("cannot read {}: {e}", args.config.display()))?;
    let config: Value =
        serde_json::from_str(&config).map_err(|e| format!("{}: {e}", args.config.display()))?;
    let rss_before = resident_bytes();
    let started = Instant::now();
    let plugin = open(api, &config)?;
    let found = plugin
        .lookup(&args.account, &args.number)
        .map_err(|e| e.to_string())?
        .is_some();
    let open_secs = started.elapsed().as_secs_f64();
    let rss_after = resident_bytes();
    println!(
        "{}",
        json!({"open_secs": open_secs, "rss_before": rss_before, "rss_after": rss_after, "found": found})
    );
    drop(plugin);
    Ok(())
}

struct Sizes {
    sync_contacts: usize,
    tenants: usize,
    per_tenant: usize,
    /// Accounts with calendar presence on.
    presence_accounts: usize,
    /// Accounts of `SCALE_CONTACTS` contacts each, for the cost of an interval's syncs.
    scale_accounts: usize,
    measure: Duration,
}

const CLIENT_ID: &str = "bench.apps.googleusercontent.com";
const CLIENT_SECRET: &str = "GOCSPX-bench-secret";
const REDIRECT_URI: &str = "http://127.0.0.1:9/google/callback";
const BIG_ACCOUNT: &str = "big.example";
/// Syncs timed for each sync figure; the median is reported (this machine is shared).
const SYNC_ROUNDS: usize = 5;
/// Incremental syncs in each of the incremental rows.
const INCREMENTAL_ROUNDS: usize = 15;
const BIG_USER: &str = "big@example.com";
/// A Google Workspace organisation, and the account of one of its users, for the sources rows.
const WORKSPACE_DOMAIN: &str = "workspace.example";
const WORKSPACE_USER: &str = "boss@workspace.example";

/// One row of the report.
struct Row {
    what: String,
    value: String,
    baseline: String,
    ratio: String,
    target: &'static str,
}

fn row(
    what: impl Into<String>,
    value: impl Into<String>,
    baseline: impl Into<String>,
    ratio: impl Into<String>,
    target: &'static str,
) -> Row {
    Row {
        what: what.into(),
        value: value.into(),
        baseline: baseline.into(),
        ratio: ratio.into(),
        target,
    }
}

pub fn run(api: &Api, args: &BenchArgs) -> Result<(), String> {
    let sizes = if args.small {
        Sizes {
            sync_contacts: 2_000,
            tenants: 20,
            per_tenant: 1_000,
            presence_accounts: 1_000,
            scale_accounts: 500,
            measure: Duration::from_secs(args.seconds.unwrap_or(1)),
        }
    } else {
        Sizes {
            sync_contacts: 25_000,
            tenants: 1_000,
            per_tenant: 1_000,
            presence_accounts: 10_000,
            scale_accounts: 10_000,
            measure: Duration::from_secs(args.seconds.unwrap_or(3)),
        }
    };
    println!(
        "host-sim bench{}: plugin {} through the C ABI, fake Google on loopback, {} core(s)",
        if args.small { " --small" } else { "" },
        api.version(),
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    // The Workspace organisation of the sources rows syncs every contact source.
    let (fake, dir, config) = bench_google(json!({
        "domains": { WORKSPACE_DOMAIN: { "sources": ["contacts", "directory", "other_contacts"] } }
    }))?;
    let mut rows = Vec::new();
    let clock = clock_cost();
    rows.push(row(
        "one clock read (included in every latency below)",
        ns(clock),
        "",
        "",
        "",
    ));
    if args.cluster_only {
        cluster::cluster_rows(api, &sizes, &mut rows)?;
        print_table(&rows);
        return Ok(());
    }
    if args.presence_only {
        let plugin = open(api, &config)?;
        let empty = [(c"nobody.example".to_owned(), c"+12125550100".to_owned())];
        let mut out = GiContact::default();
        let lookups = measure(&empty, sizes.measure, |(account, number)| {
            plugin.lookup_into(account, number, &mut out) == GiResult::GI_NOT_FOUND
        })?;
        drop(plugin);
        presence_rows(
            api,
            &sizes,
            (&lookups, "lookup on an account with no contacts"),
            &mut rows,
        )?;
        print_table(&rows);
        return Ok(());
    }

    // ---- reading numbers ---------------------------------------------------------------------
    {
        let plugin = open(api, &config)?;
        let mut bar = Bar::new("reading     ");
        bar.update(0, 1, "each input shape, plugin vs phonenumber::parse");
        number_reading_rows(&plugin, sizes.measure / 4, &mut rows)?;
        bar.finish(1, 1, "done");
    }

    // ---- one big account: sync, lookups, lookups during syncs ------------------------------
    let big = people(0, sizes.sync_contacts);
    let big_numbers: Vec<u64> = big.iter().map(|p| e164_of(&p.phones[0].value)).collect();
    fake.add_user(BIG_USER, "Big Account");
    fake.set_contacts(BIG_USER, big.clone());
    let plugin = open(api, &config)?;

    let mut bar = Bar::new("full sync   ");
    bar.update(0, 1, "connecting");
    let started = Instant::now();
    let cpu_before = sync_threads_cpu();
    host_sim::connect_through_fake(&plugin, &fake, BIG_ACCOUNT, BIG_USER)?;
    wait_synced(&plugin, &fake, BIG_ACCOUNT, 0)?;
    let mut full = vec![(
        started.elapsed(),
        sync_threads_cpu().saturating_sub(cpu_before),
    )];
    for round in 1..SYNC_ROUNDS {
        bar.update(round, SYNC_ROUNDS, "again, with an expired sync token");
        fake.expire_sync_tokens(BIG_USER);
        full.push(timed_sync(&plugin, &fake, BIG_ACCOUNT)?);
    }
    let (full_median, full_cpu) = medians(&full);
    bar.finish(
        SYNC_ROUNDS,
        SYNC_ROUNDS,
        &format!(
            "{} contacts in {:.2} s",
            sizes.sync_contacts,
            full_median.as_secs_f64()
        ),
    );

    // Incremental syncs patch the index: 10 changes a sync on a patch grown close to its
    // limit (a sixteenth of the account, see src/book/patch.rs), then the sync that crosses
    // it and builds in full from the store, then on a fresh patch (which stays for the
    // lookups below: the steady state).
    let changed = std::cell::Cell::new(0usize);
    let change = |count: usize, what: &str| {
        for _ in 0..count {
            let n = changed.get();
            let mut p = big[n % big.len()].clone();
            p.display = format!("Changed {n} {what}");
            fake.upsert_contact(BIG_USER, p);
            changed.set(n + 1);
        }
    };
    let patch_limit = (sizes.sync_contacts / 16).max(64);
    let mut bar = Bar::new("incremental ");
    bar.update(0, 1, "growing the patch close to its limit");
    // Rounds that stay under the limit (fewer with --small's smaller account), after a bulk
    // change that brings the patch close to it.
    let near_rounds = INCREMENTAL_ROUNDS.min(patch_limit / 20);
    change(patch_limit - 10 * near_rounds - 5, "bulk");
    timed_sync(&plugin, &fake, BIG_ACCOUNT)?;
    // `count` syncs of `changes` changes each: the medians of (end to end, plugin CPU).
    let rounds = |bar: &mut Bar, count: usize, changes: usize, what: &str| {
        let mut runs = Vec::new();
        for round in 0..count {
            bar.update(round, count, what);
            change(changes, what);
            runs.push(timed_sync(&plugin, &fake, BIG_ACCOUNT)?);
        }
        Ok::<_, String>(medians(&runs))
    };
    let (near_median, near_cpu) = rounds(
        &mut bar,
        near_rounds,
        10,
        "10 changes, patch near its limit",
    )?;
    change(10, "crossing");
    let crossing = timed_sync(&plugin, &fake, BIG_ACCOUNT)?;
    let (incremental_median, incremental_cpu) =
        rounds(&mut bar, INCREMENTAL_ROUNDS, 10, "10 changes, fresh patch")?;
    bar.finish(
        INCREMENTAL_ROUNDS,
        INCREMENTAL_ROUNDS,
        &format!("{:.1} ms", ms(incremental_median)),
    );
    let mut bar = Bar::new("no change   ");
    let (unchanged_median, unchanged_cpu) =
        rounds(&mut bar, INCREMENTAL_ROUNDS, 0, "nothing changed at Google")?;
    bar.finish(
        INCREMENTAL_ROUNDS,
        INCREMENTAL_ROUNDS,
        &format!("{:.1} ms", ms(unchanged_median)),
    );
    rows.push(row(
        format!(
            "full sync, {} contacts (median of {SYNC_ROUNDS})",
            sizes.sync_contacts
        ),
        format!(
            "{:.2} s, {:.0} contacts/s (the first, into an empty store: {:.2} s)",
            full_median.as_secs_f64(),
            sizes.sync_contacts as f64 / full_median.as_secs_f64(),
            full[0].0.as_secs_f64()
        ),
        format!("plugin CPU: {:.0} ms", ms(full_cpu)),
        "",
        "≤ 1 s",
    ));
    let of_full = |cpu: Duration| {
        format!(
            "{:.2}% of full",
            100.0 * cpu.as_secs_f64() / full_cpu.as_secs_f64()
        )
    };
    rows.push(row(
        format!(
            "incremental sync, 10 changes, index patched: plugin CPU (median of {INCREMENTAL_ROUNDS})"
        ),
        format!("{:.2} ms", ms(incremental_cpu)),
        format!(
            "full: {:.0} ms; end to end {:.1} ms",
            ms(full_cpu),
            ms(incremental_median)
        ),
        of_full(incremental_cpu),
        "≤ 5 ms, ≤ 2%",
    ));
    rows.push(row(
        format!("the same with the patch near its limit ({patch_limit} contacts)"),
        format!("{:.2} ms", ms(near_cpu)),
        format!("end to end {:.1} ms", ms(near_median)),
        of_full(near_cpu),
        "≤ 5 ms, ≤ 2%",
    ));
    // Over a cycle from one full build to the next, with the patch growing evenly: half
    // the syncs cost about the fresh figure, half about the near-limit one, and one builds.
    let cycle = (patch_limit / 10) as f64;
    let amortized = (ms(incremental_cpu) + ms(near_cpu)) / 2.0 + ms(crossing.1) / cycle;
    rows.push(row(
        "the 10-change sync that crosses the limit: a full build from the store",
        format!("{:.1} ms", ms(crossing.1)),
        format!(
            "end to end {:.0} ms; one in {cycle:.0} such syncs: {amortized:.2} ms a sync over the cycle",
            ms(crossing.0)
        ),
        of_full(crossing.1),
        "",
    ));
    rows.push(row(
        format!(
            "incremental sync, no change: plugin CPU (median of {INCREMENTAL_ROUNDS}; two requests to the fake, the token written)"
        ),
        format!("{:.2} ms", ms(unchanged_cpu)),
        format!("end to end {:.1} ms", ms(unchanged_median)),
        of_full(unchanged_cpu),
        "≤ 1 ms",
    ));

    sources_rows(
        &plugin,
        &fake,
        &sizes,
        (full_median, unchanged_median, full[0].0),
        &mut rows,
    )?;

    if args.sync_only {
        print_table(&rows);
        return Ok(());
    }

    let mut bar = Bar::new("lookups 25k ");
    bar.update(0, 2, "plugin vs SQLite");
    let big_set = vec![(BIG_ACCOUNT.to_owned(), big_numbers.clone())];
    let idle = lookup_rows(
        &plugin,
        &big_set,
        &format!("{} numbers", sizes.sync_contacts),
        sizes.measure,
        &mut rows,
    )?;
    bar.finish(2, 2, "done");

    let mut bar = Bar::new("during sync ");
    bar.update(0, 1, "two lookup threads, full syncs in a loop");
    let inputs = hit_inputs(&big_set);
    let (quiet, busy, syncs) =
        lookups_during_syncs([&plugin, &plugin], &fake, &inputs, sizes.measure, &|| {
            fake.expire_sync_tokens(BIG_USER)
        })?;
    bar.finish(1, 1, &format!("{syncs} full syncs ran"));
    for (label, q) in [("p50", 0.5), ("p99", 0.99), ("p99.9", 0.999)] {
        rows.push(row(
            format!("lookup {label} during full syncs ({syncs} ran)"),
            ns(busy.value_at_quantile(q) as f64),
            format!("idle: {}", ns(quiet.value_at_quantile(q) as f64)),
            ratio(
                busy.value_at_quantile(q) as f64,
                quiet.value_at_quantile(q) as f64,
            ),
            if label == "p99.9" { "≤ 5 µs" } else { "" },
        ));
    }
    rows.push(row(
        "lookup max during full syncs",
        ns(busy.max() as f64),
        format!("idle: {}", ns(quiet.max() as f64)),
        ratio(busy.max() as f64, quiet.max() as f64),
        "",
    ));
    drop(idle);
    if let Some(path) = &args.plot {
        std::fs::write(path, plot_svg(&quiet, &busy))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        println!("   plot written to {}", path.display());
    }
    // ---- the address book: searches through the C ABI against SQLite FTS5 -------------------
    let mut bar = Bar::new("search      ");
    bar.update(0, 2, "text and keypad, plugin vs FTS5");
    search_rows(&plugin, &fake.contacts(BIG_USER), sizes.measure, &mut rows)?;
    bar.update(1, 2, "lookups while another thread searches");
    let (alone, beside) = lookups_during_searches(&plugin, &inputs, sizes.measure)?;
    bar.finish(2, 2, "done");
    for (label, q) in [("p50", 0.5), ("p99", 0.99), ("p99.9", 0.999)] {
        rows.push(row(
            format!("lookup {label} while another thread searches"),
            ns(beside.value_at_quantile(q) as f64),
            format!("alone: {}", ns(alone.value_at_quantile(q) as f64)),
            ratio(
                beside.value_at_quantile(q) as f64,
                alone.value_at_quantile(q) as f64,
            ),
            if label == "p99.9" { "unchanged" } else { "" },
        ));
    }

    plugin
        .disable(BIG_ACCOUNT)
        .map_err(|e| format!("disable: {e}"))?;

    // ---- many tenants: seed, reopen, lookups, memory -----------------------------------------
    let total = sizes.tenants * sizes.per_tenant;
    let mut bar = Bar::new("seeding     ");
    let mut tenant_sets = Vec::with_capacity(sizes.tenants);
    for t in 0..sizes.tenants {
        let email = format!("tenant{t}@example.com");
        let contacts = people(t + 1, sizes.per_tenant);
        tenant_sets.push((
            format!("tenant{t}.example"),
            contacts
                .iter()
                .map(|p| e164_of(&p.phones[0].value))
                .collect::<Vec<_>>(),
        ));
        fake.add_user(&email, &email);
        fake.set_contacts(&email, contacts);
        host_sim::connect_through_fake(&plugin, &fake, &tenant_sets[t].0, &email)?;
        if t % 10 == 0 {
            bar.update(
                t,
                sizes.tenants,
                &format!("{t} of {} accounts connected", sizes.tenants),
            );
        }
    }
    let mut synced = 0;
    while synced < sizes.tenants {
        synced = tenant_sets
            .iter()
            .filter(|(account, _)| {
                status(&plugin, account)["contacts"].as_u64() == Some(sizes.per_tenant as u64)
            })
            .count();
        bar.update(
            synced,
            sizes.tenants,
            &format!("{synced} of {} accounts synced", sizes.tenants),
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    bar.finish(
        sizes.tenants,
        sizes.tenants,
        &format!("{total} numbers in {} accounts", sizes.tenants),
    );
    drop(plugin);
    drop(fake); // Google unreachable from here on: the opens below must not need it

    let mut bar = Bar::new("open        ");
    bar.update(
        0,
        1,
        "gi_open until the first lookup answers, in a fresh process",
    );
    let first_number = format!("+{}", tenant_sets[0].1[0]);
    let report = open_in_fresh_process(
        api,
        dir.path(),
        "full",
        &config,
        &tenant_sets[0].0,
        &first_number,
    )?;
    if report["found"] != true {
        return Err("the reopened plugin did not answer a stored number".into());
    }
    // The same with an empty data_dir: what an open plugin costs before any contact.
    let mut empty_config = config.clone();
    empty_config["data_dir"] = json!(dir.path().join("empty"));
    let empty = open_in_fresh_process(
        api,
        dir.path(),
        "empty",
        &empty_config,
        &tenant_sets[0].0,
        &first_number,
    )?;
    let open_time = report["open_secs"].as_f64().unwrap_or(0.0);
    bar.finish(1, 1, &format!("{open_time:.2} s"));
    rows.push(row(
        format!("gi_open with {total} numbers until the first lookup"),
        format!("{open_time:.2} s"),
        format!("empty: {:.2} s", empty["open_secs"].as_f64().unwrap_or(0.0)),
        "",
        "≤ 1.5 s",
    ));
    let grown = |r: &Value| {
        r["rss_after"]
            .as_u64()
            .unwrap_or(0)
            .saturating_sub(r["rss_before"].as_u64().unwrap_or(0))
    };
    let (with_numbers, fixed) = (grown(&report), grown(&empty));
    rows.push(row(
        format!("resident memory per indexed number ({total})"),
        format!(
            "{:.0} bytes",
            with_numbers.saturating_sub(fixed) as f64 / total as f64
        ),
        format!(
            "{:.1} MiB in all, {:.1} MiB of it fixed",
            with_numbers as f64 / 1048576.0,
            fixed as f64 / 1048576.0
        ),
        "",
        "≤ 100 bytes",
    ));
    let plugin = open(api, &config)?;
    let mut bar = Bar::new("lookups many");
    bar.update(0, 1, "plugin vs SQLite");
    let lookups = lookup_rows(
        &plugin,
        &tenant_sets,
        &format!("{total} numbers"),
        sizes.measure,
        &mut rows,
    )?;
    bar.finish(1, 1, "done");
    drop(plugin);

    presence_rows(
        api,
        &sizes,
        (&lookups, &format!("lookup hit median, {total} numbers")),
        &mut rows,
    )?;
    scale_rows(api, &sizes, &mut rows)?;
    cluster::cluster_rows(api, &sizes, &mut rows)?;

    print_table(&rows);
    Ok(())
}

// ---- calendar presence ----------------------------------------------------------------------

/// Busy periods each account's calendar holds in the next 24 hours.
const BUSY_PER_ACCOUNT: i64 = 20;

/// `gi_presence` with many accounts, each with `BUSY_PER_ACCOUNT` busy periods (half of them
/// in a meeting now), beside the median of the lookups `baseline` names, from the same run.
fn presence_rows(
    api: &Api,
    sizes: &Sizes,
    (lookups, baseline): (&Histogram<u64>, &str),
    rows: &mut Vec<Row>,
) -> Result<(), String> {
    let accounts = sizes.presence_accounts;
    let (fake, _dir, config) =
        bench_google(json!({ "calendar": true, "presence_interval_secs": 3600 }))?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let plugin = open(api, &config)?;
    let mut bar = Bar::new("presence    ");
    // The accounts' names made together, as the lookup rows' inputs are: made one by one
    // between the connects, they lay scattered across the megabytes the connects allocate,
    // and a third of each call was the first read of its name (a cache and TLB miss on the
    // host's memory, which a PBX formatting the name for a call does not have).
    let names = (0..accounts)
        .map(|i| CString::new(format!("presence.example/{i}")).map_err(|e| e.to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    for (i, name) in names.iter().enumerate() {
        let email = format!("calendar{i}@example.com");
        // Half the accounts are in a meeting now; each has 20 meetings of 30 minutes an hour
        // apart from then on.
        let first = if i % 2 == 0 { now - 600 } else { now + 600 };
        fake.add_user(&email, &email);
        fake.set_busy(
            &email,
            (0..BUSY_PER_ACCOUNT)
                .map(|k| (first + k * 3600, first + k * 3600 + 1800))
                .collect(),
        );
        let account = name.to_str().map_err(|e| e.to_string())?;
        host_sim::connect_through_fake(&plugin, &fake, account, &email)?;
        if i % 100 == 0 {
            bar.update(
                i,
                accounts,
                &format!("{i} of {accounts} accounts connected"),
            );
        }
    }
    let mut known = 0;
    while known < accounts {
        known = names
            .iter()
            .filter(|name| {
                plugin.presence(name.to_str().unwrap_or("")).0 != GiPresence::GI_PRESENCE_UNKNOWN
            })
            .count();
        bar.update(
            known,
            accounts,
            &format!("{known} of {accounts} calendars fetched"),
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // The connects' contact syncs run on the same two cores: measured while they still ran,
    // the figure was the machine's load more than the call's.
    let names_text: Vec<&str> = names.iter().map(|n| n.to_str().unwrap_or("")).collect();
    loop {
        let synced = names_text
            .iter()
            .filter(|a| {
                let s = status(&plugin, a);
                s["syncing"] == false && s["last_sync"].is_string()
            })
            .count();
        bar.update(
            synced,
            accounts,
            &format!("{synced} of {accounts} contact syncs done"),
        );
        if synced == accounts {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    bar.finish(accounts, accounts, "calendars fetched, contacts synced");
    let mut until = 0i64;
    let ours = measure(&names, sizes.measure, |account| {
        // SAFETY: the plugin is open and `account` a NUL-terminated string.
        let presence =
            unsafe { (plugin.api().gi_presence)(plugin.raw(), account.as_ptr(), &mut until) };
        presence != GiPresence::GI_PRESENCE_UNKNOWN && until != 0
    })?;
    // The same calls timed BATCH at a time, as criterion times them: the clock is read once
    // a batch rather than around every call, so its cost and its 10 ns steps leave the figure.
    let batched = measure_batched(&names, sizes.measure, |account| {
        // SAFETY: as above.
        let presence =
            unsafe { (plugin.api().gi_presence)(plugin.raw(), account.as_ptr(), &mut until) };
        presence != GiPresence::GI_PRESENCE_UNKNOWN && until != 0
    })?;
    let lookup = lookups.value_at_quantile(0.5) as f64;
    for (label, q) in [("median", 0.5), ("p99", 0.99)] {
        let a = ours.value_at_quantile(q) as f64;
        rows.push(row(
            format!(
                "gi_presence {label}, {accounts} accounts × {BUSY_PER_ACCOUNT} busy periods (C ABI), one clock read a call"
            ),
            ns(a),
            format!("{baseline}: {}", ns(lookup)),
            format!("{:.2}x a lookup", a / lookup),
            "",
        ));
    }
    let per_call = batched.value_at_quantile(0.5) as f64 / 100.0;
    let timed_alone = ours.value_at_quantile(0.5) as f64;
    rows.push(row(
        format!("gi_presence median, the same accounts, timed {BATCH} calls at a time (per call)"),
        ns(per_call),
        format!("timed one by one: {}", ns(timed_alone)),
        format!("{:.2}x", per_call / timed_alone),
        "≤ 100 ns",
    ));
    Ok(())
}

/// Calls timed in batches: the histogram holds each batch's time per call, in hundredths of
/// a nanosecond.
fn measure_batched<T>(
    inputs: &[T],
    duration: Duration,
    mut call: impl FnMut(&T) -> bool,
) -> Result<Histogram<u64>, String> {
    // The batch's inputs are picked (by `for_windows`) before the clock starts.
    for_windows(inputs, duration, BATCH, |h, [head, tail]| {
        let before = Instant::now();
        let mut ok = true;
        for input in head.iter().chain(tail) {
            ok &= call(input);
        }
        let took = before.elapsed();
        let calls = (head.len() + tail.len()) as u128;
        h.record((took.as_nanos() * 100 / calls).max(1) as u64)
            .map_err(|e| e.to_string())?;
        Ok(ok)
    })
}

/// Calls a batch of `measure_batched`.
const BATCH: usize = 32;

// ---- hosted scale ---------------------------------------------------------------------------

/// The request budget of every bench plugin: the fake Google has no quota, so only the
/// scale rows come near it.
const BENCH_REQUESTS_PER_MINUTE: u64 = 100_000;

/// Contacts in each account of the hosted-scale rows.
const SCALE_CONTACTS: usize = 100;

/// Many accounts on one node: what one interval's worth of syncs that bring no change costs
/// the plugin in CPU (its sync threads' time, read from /proc, so the fake Google's share is
/// not counted), and what each account costs in memory.
fn scale_rows(api: &Api, sizes: &Sizes, rows: &mut Vec<Row>) -> Result<(), String> {
    let accounts = sizes.scale_accounts;
    // The Workspace organisation of the sources rows syncs every contact source.
    let (fake, dir, config) = bench_google(json!({
        "domains": { WORKSPACE_DOMAIN: { "sources": ["contacts", "directory", "other_contacts"] } }
    }))?;
    let plugin = open(api, &config)?;
    let mut bar = Bar::new("scale       ");
    let names: Vec<String> = (0..accounts).map(|i| format!("host{i}.example")).collect();
    for (i, account) in names.iter().enumerate() {
        let email = format!("host{i}@example.com");
        fake.add_user(&email, &email);
        fake.set_contacts(&email, people(2_000 + i, SCALE_CONTACTS));
        host_sim::connect_through_fake(&plugin, &fake, account, &email)?;
        if i % 100 == 0 {
            bar.update(
                i,
                accounts,
                &format!("{i} of {accounts} accounts connected"),
            );
        }
    }
    let synced = |plugin: &Plugin<'_>| {
        names
            .iter()
            .filter(|a| {
                let s = status(plugin, a);
                s["syncing"] == false && s["last_sync"].is_string()
            })
            .count()
    };
    while synced(&plugin) < accounts {
        std::thread::sleep(Duration::from_millis(200));
    }

    bar.update(0, accounts, "an interval's worth of syncs, nothing changed");
    let requests_before = fake.requests().len();
    let people_before = fake.requests_to(Endpoint::People).len();
    let cpu_before = sync_threads_cpu();
    let started = Instant::now();
    for account in &names {
        plugin.sync_now(account).map_err(|e| e.to_string())?;
    }
    while fake.requests_to(Endpoint::People).len() < people_before + accounts
        || names.iter().any(|a| status(&plugin, a)["syncing"] == true)
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    let wall = started.elapsed();
    let cpu = sync_threads_cpu().saturating_sub(cpu_before);
    let requests = fake.requests().len() - requests_before;
    bar.finish(
        accounts,
        accounts,
        &format!("{accounts} syncs in {:.1} s", wall.as_secs_f64()),
    );
    rows.push(row(
        format!(
            "no-change syncs of {accounts} accounts of {SCALE_CONTACTS} contacts (one interval's worth): plugin CPU"
        ),
        format!(
            "{:.1} s in all, {:.2} ms an account",
            cpu.as_secs_f64(),
            cpu.as_secs_f64() * 1000.0 / accounts as f64
        ),
        format!(
            "wall: {:.1} s; {requests} requests to the fake Google ({:.1} an account); the budget allows {:.0} in that time",
            wall.as_secs_f64(),
            requests as f64 / accounts as f64,
            // The bucket: a second's worth at once, then the rate.
            BENCH_REQUESTS_PER_MINUTE as f64 / 60.0 * (1.0 + wall.as_secs_f64())
        ),
        "",
        "≤ 20 s of CPU for 10,000",
    ));
    drop(plugin);
    drop(fake);

    // Memory: the same data_dir opened in a fresh process, against an empty one.
    let first = people(2_000, 1)[0].phones[0].value.clone();
    let number = format!("+{}", e164_of(&first));
    let report = open_in_fresh_process(api, dir.path(), "scale", &config, &names[0], &number)?;
    let mut empty_config = config.clone();
    empty_config["data_dir"] = json!(dir.path().join("empty"));
    let empty = open_in_fresh_process(
        api,
        dir.path(),
        "scale-empty",
        &empty_config,
        &names[0],
        &number,
    )?;
    let grown = |r: &Value| {
        r["rss_after"]
            .as_u64()
            .unwrap_or(0)
            .saturating_sub(r["rss_before"].as_u64().unwrap_or(0))
    };
    let per_account = grown(&report).saturating_sub(grown(&empty)) as f64 / accounts as f64;
    rows.push(row(
        format!(
            "resident memory per account of {SCALE_CONTACTS} contacts ({accounts} accounts, fresh process)"
        ),
        format!("{:.1} KiB", per_account / 1024.0),
        format!("open: {:.2} s", report["open_secs"].as_f64().unwrap_or(0.0)),
        "",
        "",
    ));
    Ok(())
}

/// CPU time of the plugin's sync threads ("gi-sync-…"), from /proc: nanoseconds from
/// `schedstat` where the kernel keeps it, else user + system ticks from `stat` (10 ms).
/// Every contact source of an account of a Google Workspace organisation: a full sync of its
/// contacts and of the organisation's directory (the same size each), against the
/// contacts-only full sync of the same size measured before (`baseline.0`, its first
/// `baseline.2`); then syncs that bring no change, against the contacts-only ones
/// (`baseline.1`, end to end): one request
/// per source plus the contact groups, and every source's index kept, as the plugin's log
/// says. (No plugin CPU here: the sources sync on threads of their own that end with the
/// sync, and `/proc` forgets an ended thread's time.)
fn sources_rows(
    plugin: &Plugin<'_>,
    fake: &FakeGoogle,
    sizes: &Sizes,
    baseline: (Duration, Duration, Duration),
    rows: &mut Vec<Row>,
) -> Result<(), String> {
    let n = sizes.sync_contacts;
    fake.add_user(WORKSPACE_USER, "Workspace Account");
    fake.set_contacts(WORKSPACE_USER, people(1, n));
    fake.set_directory(WORKSPACE_DOMAIN, people(2, n));
    let others = people(3, n / 100).into_iter().map(|mut p| {
        p.resource_name = p.resource_name.replace("people/", "otherContacts/");
        p
    });
    fake.set_other_contacts(WORKSPACE_USER, others.collect());
    let mut bar = Bar::new("sources     ");
    bar.update(0, SYNC_ROUNDS, "connecting");
    let started = Instant::now();
    let cpu_before = sync_threads_cpu();
    host_sim::connect_through_fake(plugin, fake, WORKSPACE_DOMAIN, WORKSPACE_USER)?;
    wait_synced(plugin, fake, WORKSPACE_DOMAIN, 0)?;
    let mut full = vec![(
        started.elapsed(),
        sync_threads_cpu().saturating_sub(cpu_before),
    )];
    let counted = status(plugin, WORKSPACE_DOMAIN);
    let expected = 2 * n + n / 100;
    if counted["contacts"].as_u64() != Some(expected as u64) {
        return Err(format!(
            "the sources account synced {} contacts, not {expected}: {counted}",
            counted["contacts"]
        ));
    }
    for round in 1..SYNC_ROUNDS {
        bar.update(
            round,
            SYNC_ROUNDS,
            "every source again, sync tokens expired",
        );
        fake.expire_sync_tokens(WORKSPACE_USER);
        full.push(timed_sync(plugin, fake, WORKSPACE_DOMAIN)?);
    }
    let (full_median, _) = medians(&full);
    // The first sync fills an empty store; the others find it as Google has it (an expired
    // token's resync) and write little.
    let first = full[0].0;
    let endpoints = [
        Endpoint::People,
        Endpoint::Directory,
        Endpoint::OtherContacts,
        Endpoint::ContactGroups,
    ];
    let served = || endpoints.map(|e| fake.requests_to(e).len());
    let before = served();
    let outcomes_before = crate::sim::index_outcomes();
    let mut unchanged = Vec::new();
    for round in 0..INCREMENTAL_ROUNDS {
        bar.update(round, INCREMENTAL_ROUNDS, "nothing changed at Google");
        unchanged.push(timed_sync(plugin, fake, WORKSPACE_DOMAIN)?);
    }
    let after = served();
    let outcomes = crate::sim::index_outcomes();
    let [kept, patched, rebuilt] = [0, 1, 2].map(|i| outcomes[i] - outcomes_before[i]);
    let per_sync: Vec<f64> = (0..endpoints.len())
        .map(|i| (after[i] - before[i]) as f64 / INCREMENTAL_ROUNDS as f64)
        .collect();
    let (unchanged_median, unchanged_cpu) = medians(&unchanged);
    bar.finish(
        INCREMENTAL_ROUNDS,
        INCREMENTAL_ROUNDS,
        &format!(
            "{:.2} s full, {:.2} ms no change",
            full_median.as_secs_f64(),
            ms(unchanged_cpu)
        ),
    );
    rows.push(row(
        format!(
            "full sync, {n} contacts + {n} directory people + {} other contacts (median of {SYNC_ROUNDS})",
            n / 100
        ),
        format!(
            "{:.2} s (the first, into an empty store: {:.2} s)",
            full_median.as_secs_f64(),
            first.as_secs_f64()
        ),
        format!(
            "contacts only, {n}: {:.2} s (first: {:.2} s)",
            baseline.0.as_secs_f64(),
            baseline.2.as_secs_f64()
        ),
        ratio(full_median.as_secs_f64(), baseline.0.as_secs_f64()),
        "≤ 2 s",
    ));
    rows.push(row(
        format!(
            "the same, no change ({INCREMENTAL_ROUNDS} syncs): requests a sync (contacts, directory, other, groups); source indexes kept / patched / rebuilt"
        ),
        format!(
            "{} / {} / {} / {}; {kept} / {patched} / {rebuilt}; end to end {:.1} ms",
            per_sync[0],
            per_sync[1],
            per_sync[2],
            per_sync[3],
            ms(unchanged_median)
        ),
        format!("contacts only: {:.1} ms end to end", ms(baseline.1)),
        ratio(ms(unchanged_median), ms(baseline.1)),
        "1 / 1 / 1 / 1; all kept",
    ));
    Ok(())
}

fn sync_threads_cpu() -> Duration {
    let ticks_per_second = 100.0; // USER_HZ on Linux
    let mut ticks = 0u64;
    let mut nanos = 0u64;
    let mut precise = true;
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        for task in tasks.flatten() {
            let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
                continue;
            };
            // "tid (comm) state ..."; utime and stime are fields 14 and 15.
            let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
                continue;
            };
            if !stat[open + 1..close].starts_with("gi-sync") {
                continue;
            }
            let fields: Vec<&str> = stat[close + 2..].split_whitespace().collect();
            let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<u64>().ok());
            ticks += field(14).unwrap_or(0) + field(15).unwrap_or(0);
            // "time on CPU (ns) time waiting (ns) timeslices"
            match std::fs::read_to_string(task.path().join("schedstat"))
                .ok()
                .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
            {
                Some(on_cpu) => nanos += on_cpu,
                None => precise = false,
            }
        }
    }
    if precise {
        Duration::from_nanos(nanos)
    } else {
        Duration::from_secs_f64(ticks as f64 / ticks_per_second)
    }
}

// ---- data ---------------------------------------------------------------------------------

const GIVEN: &[&str] = &[
    "Anna", "Ben", "Chloé", "Dmitri", "Emma", "Farid", "Grace", "Hiro", "Ines", "Jonas", "Kavya",
    "Luis", "Mia", "Noah", "Olivia", "Priya",
];
/// Family names are two of these: 1,024 of them, a few with umlauts ("Müller"), so that a
/// search selects what an address book's search would.
const SYLLABLES: &[&str] = &[
    "Mül", "ler", "Schä", "fer", "Wei", "ß", "Ber", "gen", "Lin", "dqvist", "Ko", "wal", "ski",
    "Gar", "cía", "Ros", "si", "Ngu", "yen", "Sil", "va", "Du", "bois", "Ta", "na", "ka", "O",
    "ke", "for", "Shar", "ma", "Ha",
];

fn family(n: usize) -> String {
    format!(
        "{}{}",
        SYLLABLES[n % SYLLABLES.len()],
        SYLLABLES[(n / SYLLABLES.len()) % SYLLABLES.len()].to_lowercase()
    )
}

/// `count` people of dataset `set`, one US number each, unique across sets.
fn people(set: usize, count: usize) -> Vec<Person> {
    (0..count)
        .map(|i| {
            let n = set * 100_000 + i;
            Person::new(
                &format!("people/c{set}x{i}"),
                GIVEN[n % GIVEN.len()],
                &family(n / 7),
            )
            .with_company(if i % 3 == 0 { "Example Corp" } else { "" })
            .with_phone(
                &format!(
                    "+1 {} {:03} {:04}",
                    200 + set % 700,
                    (i / 10_000) % 1000 + 200,
                    i % 10_000
                ),
                if i % 2 == 0 { "mobile" } else { "work" },
            )
        })
        .map(|mut p| {
            if p.company.as_deref() == Some("") {
                p.company = None;
            }
            p
        })
        .collect()
}

fn e164_of(value: &str) -> u64 {
    value
        .chars()
        .filter(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .expect("digits")
}

// ---- plugin plumbing ----------------------------------------------------------------------

fn open<'a>(api: &'a Api, config: &Value) -> Result<Plugin<'a>, String> {
    Plugin::open(api, &config.to_string()).map_err(|e| format!("gi_open failed: {}", e.message))
}

fn status(plugin: &Plugin<'_>, account: &str) -> Value {
    plugin
        .status_json(account)
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or(Value::Null)
}

/// Waits until the fake has served more People requests than `before` and the account is
/// idle again.
fn wait_synced(
    plugin: &Plugin<'_>,
    fake: &FakeGoogle,
    account: &str,
    before: usize,
) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(600);
    while Instant::now() < deadline {
        if fake.requests_to(Endpoint::People).len() > before
            && status(plugin, account)["syncing"] == false
        {
            let s = status(plugin, account);
            if s["status"] != "connected" {
                return Err(format!("the sync of {account} failed: {s}"));
            }
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    Err(format!(
        "the sync of {account} did not finish in 10 minutes"
    ))
}

/// One sync of `account`: (end to end, the plugin's sync threads' CPU time). The CPU time is
/// the plugin's own work (reading replies, writing the store, the index), without the fake
/// Google's and without waiting.
fn timed_sync(
    plugin: &Plugin<'_>,
    fake: &FakeGoogle,
    account: &str,
) -> Result<(Duration, Duration), String> {
    let before = fake.requests_to(Endpoint::People).len();
    let started = Instant::now();
    let cpu_before = sync_threads_cpu();
    plugin.sync_now(account).map_err(|e| e.to_string())?;
    wait_synced(plugin, fake, account, before)?;
    let elapsed = started.elapsed();
    Ok((elapsed, sync_threads_cpu().saturating_sub(cpu_before)))
}

/// The medians of each half of (end to end, CPU) pairs.
fn medians(runs: &[(Duration, Duration)]) -> (Duration, Duration) {
    let mut wall: Vec<Duration> = runs.iter().map(|r| r.0).collect();
    let mut cpu: Vec<Duration> = runs.iter().map(|r| r.1).collect();
    wall.sort();
    cpu.sort();
    (wall[wall.len() / 2], cpu[cpu.len() / 2])
}

// ---- reading numbers ------------------------------------------------------------------------

/// The input shapes of the contract, as a SIP From header or a person gives them.
const SHAPES: &[(&str, &str)] = &[
    ("E.164", "+12125550199"),
    ("national", "(212) 555-0199"),
    ("00 prefix", "0044 20 7946 0958"),
    ("011 prefix", "011 44 20 7946 0958"),
    ("tel: URI", "tel:+1-212-555-0199"),
    ("sip: URI", "sip:+12125550199@pbx.example.com;user=phone"),
    ("punctuated", "+1 (212) 555-0199"),
];

/// The plugin's reading of each shape, seen through the C ABI as a lookup on an account with
/// no contacts (so: the boundary and the reader, no index), against `phonenumber::parse` on
/// the same input in this process.
fn number_reading_rows(
    plugin: &Plugin<'_>,
    duration: Duration,
    rows: &mut Vec<Row>,
) -> Result<(), String> {
    let account = CString::new("nobody.example").unwrap();
    let mut out = GiContact::default();
    for (shape, input) in SHAPES {
        let number = CString::new(*input).unwrap();
        let ours = measure(&[()], duration, |_| {
            plugin.lookup_into(&account, &number, &mut out) == GiResult::GI_NOT_FOUND
        })?;
        // Timed whatever it answers: the parser rejects the sip: form, after the same work.
        let theirs = measure(&[()], duration, |_| {
            let parsed = phonenumber::parse(
                Some(phonenumber::country::Id::US),
                std::hint::black_box(*input),
            );
            let _ = std::hint::black_box(parsed);
            true
        })?;
        let (a, b) = (
            ours.value_at_quantile(0.5) as f64,
            theirs.value_at_quantile(0.5) as f64,
        );
        rows.push(row(
            format!("reading a number: {shape} (C ABI lookup, empty account)"),
            ns(a),
            format!("phonenumber::parse: {}", ns(b)),
            format!("{:.1}x faster", b / a),
            "",
        ));
    }
    Ok(())
}

// ---- lookups --------------------------------------------------------------------------------

fn hit_inputs(sets: &[(String, Vec<u64>)]) -> Vec<(CString, CString)> {
    (0..4096)
        .map(|n| {
            let (account, numbers) = &sets[(n * 7919) % sets.len()];
            let number = numbers[(n * 104_729) % numbers.len()];
            // Users of the domain: the lookup tries the user, then falls back to the domain.
            (
                CString::new(format!("{account}/{}", 100 + n % 50)).unwrap(),
                CString::new(format!("+{number}")).unwrap(),
            )
        })
        .collect()
}

fn miss_inputs(sets: &[(String, Vec<u64>)]) -> Vec<(CString, CString)> {
    (0..4096)
        .map(|n| {
            let (account, _) = &sets[(n * 7919) % sets.len()];
            (
                CString::new(format!("{account}/{}", 100 + n % 50)).unwrap(),
                CString::new(format!("+1999{:07}", n)).unwrap(),
            )
        })
        .collect()
}

/// A fake Google with the bench's OAuth client, a temporary data_dir, and the plugin's
/// configuration for both, with the fields of `extra` added. The fake has no quota, so the
/// request budget is lifted: the plugin's own speed is measured, not the budget's.
fn bench_google(extra: Value) -> Result<(FakeGoogle, tempfile::TempDir, Value), String> {
    let fake = FakeGoogle::start();
    fake.add_client(Client::new(CLIENT_ID, CLIENT_SECRET, &[REDIRECT_URI]));
    let dir =
        tempfile::tempdir().map_err(|e| format!("cannot create a temporary data_dir: {e}"))?;
    let mut config = json!({
        "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "redirect_uri": REDIRECT_URI,
        "data_dir": dir.path().join("data"), "sync_interval_secs": 86_400, "retry_base_ms": 50,
        "google_requests_per_minute": BENCH_REQUESTS_PER_MINUTE,
        "google": fake.config_json(),
    });
    if let (Some(config), Value::Object(extra)) = (config.as_object_mut(), extra) {
        config.extend(extra);
    }
    Ok((fake, dir, config))
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("histogram bounds")
}

/// Times each `call` over `inputs` for `duration` (each figure includes one clock read).
fn measure<T>(
    inputs: &[T],
    duration: Duration,
    mut call: impl FnMut(&T) -> bool,
) -> Result<Histogram<u64>, String> {
    for_windows(inputs, duration, 256, |h, [head, tail]| {
        for input in head.iter().chain(tail) {
            let before = Instant::now();
            let ok = call(input);
            let took = before.elapsed();
            h.record(took.as_nanos().max(1) as u64)
                .map_err(|e| e.to_string())?;
            if !ok {
                return Ok(false);
            }
        }
        Ok(true)
    })
}

/// Hands `each` successive windows of `window` inputs (wrapping around `inputs`, as a head
/// and a tail) and a histogram to record into, for `duration`; fails when `each` says a call
/// answered wrongly.
fn for_windows<T>(
    inputs: &[T],
    duration: Duration,
    window: usize,
    mut each: impl FnMut(&mut Histogram<u64>, [&[T]; 2]) -> Result<bool, String>,
) -> Result<Histogram<u64>, String> {
    let mut h = histogram();
    let started = Instant::now();
    let mut n = 0usize;
    while started.elapsed() < duration {
        let from = n % inputs.len();
        let head = &inputs[from..(from + window).min(inputs.len())];
        let tail = &inputs[..window.min(inputs.len()) - head.len()];
        if !each(&mut h, [head, tail])? {
            return Err("a call answered wrongly during the benchmark".into());
        }
        n += window;
    }
    Ok(h)
}

/// The plugin through the C ABI against SQLite with the same data, hits and misses.
fn lookup_rows(
    plugin: &Plugin<'_>,
    sets: &[(String, Vec<u64>)],
    size: &str,
    duration: Duration,
    rows: &mut Vec<Row>,
) -> Result<Histogram<u64>, String> {
    let db = baseline_db(sets)?;
    let mut query = db
        .prepare_cached("SELECT name, company, label FROM numbers WHERE account = ?1 AND e164 = ?2")
        .map_err(|e| e.to_string())?;
    let mut hits_histogram = None;
    for (kind, inputs, expect) in [
        ("hit", hit_inputs(sets), true),
        ("miss", miss_inputs(sets), false),
    ] {
        let mut out = GiContact::default();
        let ours = measure(&inputs, duration, |(account, number)| {
            let code = plugin.lookup_into(account, number, &mut out);
            code == if expect {
                GiResult::GI_OK
            } else {
                GiResult::GI_NOT_FOUND
            }
        })?;
        let sqlite = measure(&inputs, duration, |(account, number)| {
            // The same question: read the number, ask for the user's account, then its domain.
            let account = account.to_str().unwrap_or("");
            let Ok(e164) = number
                .to_str()
                .unwrap_or("")
                .trim_start_matches('+')
                .parse::<i64>()
            else {
                return false;
            };
            let domain = account.split('/').next().unwrap_or(account);
            let found = [account, domain].into_iter().any(|scope| {
                query
                    .query(rusqlite::params![scope, e164])
                    .ok()
                    .and_then(|mut rows| {
                        rows.next()
                            .ok()
                            .flatten()
                            .map(|row| row.get::<_, String>(0).is_ok())
                    })
                    .unwrap_or(false)
            });
            found == expect
        })?;
        for (label, q) in [("median", 0.5), ("p99", 0.99)] {
            let a = ours.value_at_quantile(q) as f64;
            let b = sqlite.value_at_quantile(q) as f64;
            rows.push(row(
                format!("lookup {kind} {label}, {size} (C ABI)"),
                ns(a),
                format!("SQLite: {}", ns(b)),
                format!("{:.1}x faster", b / a),
                if kind == "hit" && label == "median" {
                    "≤ 150 ns, ≥ 20x"
                } else {
                    ""
                },
            ));
        }
        if expect {
            hits_histogram = Some(ours);
        }
    }
    Ok(hits_histogram.expect("measured"))
}

fn baseline_db(sets: &[(String, Vec<u64>)]) -> Result<rusqlite::Connection, String> {
    let db = rusqlite::Connection::open_in_memory().map_err(|e| e.to_string())?;
    db.execute_batch(
        "CREATE TABLE numbers (account TEXT NOT NULL, e164 INTEGER NOT NULL, name TEXT NOT NULL,
                               company TEXT NOT NULL, label TEXT NOT NULL);
         CREATE INDEX numbers_by_number ON numbers(account, e164);",
    )
    .map_err(|e| e.to_string())?;
    let tx = db.unchecked_transaction().map_err(|e| e.to_string())?;
    {
        let mut insert = tx
            .prepare("INSERT INTO numbers VALUES (?1, ?2, ?3, ?4, ?5)")
            .map_err(|e| e.to_string())?;
        for (account, numbers) in sets {
            for (i, number) in numbers.iter().enumerate() {
                insert
                    .execute(rusqlite::params![
                        account,
                        *number as i64,
                        format!("Contact {i}"),
                        "Example Corp",
                        "mobile"
                    ])
                    .map_err(|e| e.to_string())?;
            }
        }
    }
    tx.commit().map_err(|e| e.to_string())?;
    Ok(db)
}

/// Searches of the big account's address book through `gi_search_contacts` (10 rows and
/// the total), against the same question to SQLite's FTS5 over the same rows: a prefix
/// query with diacritics removed, ordered, and its count.
fn search_rows(
    plugin: &Plugin<'_>,
    people: &[Person],
    duration: Duration,
    rows: &mut Vec<Row>,
) -> Result<(), String> {
    let db = rusqlite::Connection::open_in_memory().map_err(|e| e.to_string())?;
    db.execute_batch(
        "CREATE VIRTUAL TABLE book USING fts5(name, company, number UNINDEXED,
                                               tokenize = 'unicode61 remove_diacritics 2');",
    )
    .map_err(|e| e.to_string())?;
    {
        let tx = db.unchecked_transaction().map_err(|e| e.to_string())?;
        let mut insert = tx
            .prepare("INSERT INTO book (name, company, number) VALUES (?1, ?2, ?3)")
            .map_err(|e| e.to_string())?;
        for p in people {
            for phone in &p.phones {
                insert
                    .execute(rusqlite::params![
                        p.display,
                        p.company.clone().unwrap_or_default(),
                        format!("+{}", e164_of(&phone.value))
                    ])
                    .map_err(|e| e.to_string())?;
            }
        }
        drop(insert);
        tx.commit().map_err(|e| e.to_string())?;
    }
    let mut fts_rows = db
        .prepare(
            "SELECT name, company, number FROM book WHERE book MATCH ?1
             ORDER BY name COLLATE NOCASE, company COLLATE NOCASE, number LIMIT 10",
        )
        .map_err(|e| e.to_string())?;
    let mut fts_count = db
        .prepare("SELECT count(*) FROM book WHERE book MATCH ?1")
        .map_err(|e| e.to_string())?;
    let account = CString::new(BIG_ACCOUNT).expect("no NUL");
    let mut out = vec![GiContact::default(); 10];
    for (label, text, keypad, fts, target) in [
        (
            "text, selective (\"jonas mül\")",
            "jonas mül",
            false,
            Some("jonas* mul*"),
            "≤ 5 µs, ≥ 20x",
        ),
        (
            "text, broad (\"mül\")",
            "mül",
            false,
            Some("mul*"),
            "≤ 5 µs, ≥ 20x",
        ),
        ("keypad (\"6855\")", "6855", true, None, "≤ 10 µs"),
    ] {
        let query = CString::new(text).expect("no NUL");
        let mode = if keypad {
            GiSearchMode::GI_SEARCH_KEYPAD
        } else {
            GiSearchMode::GI_SEARCH_TEXT
        };
        let (_, matched) = plugin
            .search(BIG_ACCOUNT, text, mode, 0, 0)
            .map_err(|e| format!("search: {e}"))?;
        let ours = measure(&[()], duration, |_| {
            let (code, written) = plugin.search_into(&account, &query, mode, &mut out);
            code == GiResult::GI_OK && written == matched.min(10)
        })?;
        let baseline = match fts {
            None => None,
            Some(fts) => Some({
                let total: i64 = fts_count.query_row([fts], |r| r.get(0)).unwrap_or(-1);
                if total as usize != matched {
                    return Err(format!(
                        "FTS5 counts {total} rows for {fts:?}, the plugin {matched} for {text:?}"
                    ));
                }
                measure(&[()], duration, |_| {
                    let names = fts_rows
                        .query_map([fts], |r| r.get::<_, String>(0))
                        .map(|rows| rows.filter_map(Result::ok).count())
                        .unwrap_or(0);
                    let total: i64 = fts_count.query_row([fts], |r| r.get(0)).unwrap_or(0);
                    names == matched.min(10) && total as usize == matched
                })?
            }),
        };
        let median = ours.value_at_quantile(0.5) as f64;
        let (base, speedup) = match &baseline {
            Some(b) => {
                let b = b.value_at_quantile(0.5) as f64;
                (
                    format!("SQLite FTS5: {}", ns(b)),
                    format!("{:.1}x faster", b / median),
                )
            }
            None => (String::new(), String::new()),
        };
        rows.push(row(
            format!(
                "search median / p99, {label}, 10 rows of {} contacts (C ABI)",
                people.len()
            ),
            format!(
                "{} / {}",
                ns(median),
                ns(ours.value_at_quantile(0.99) as f64)
            ),
            base,
            speedup,
            target,
        ));
    }
    Ok(())
}

/// One thread looks up alone, then beside a thread that searches the big account's book in a
/// loop (a page of 20 rows, the query changing as a user types).
fn lookups_during_searches(
    plugin: &Plugin<'_>,
    inputs: &[(CString, CString)],
    duration: Duration,
) -> Result<(Histogram<u64>, Histogram<u64>), String> {
    let lookups = |stop: &AtomicBool| lookups_until(plugin, inputs, 0, stop, "searches");
    let run = |search: bool| -> Result<Histogram<u64>, String> {
        let stop = AtomicBool::new(false);
        std::thread::scope(|s| {
            let measured = s.spawn(|| lookups(&stop));
            let started = Instant::now();
            let account = CString::new(BIG_ACCOUNT).expect("no NUL");
            let typed: Vec<CString> = ["m", "mü", "mül", "müll", "jo", "jon", "jonas"]
                .iter()
                .map(|q| CString::new(*q).expect("no NUL"))
                .collect();
            let mut page = vec![GiContact::default(); 20];
            let mut n = 0;
            while started.elapsed() < duration {
                if search {
                    let _ = plugin.search_into(
                        &account,
                        &typed[n % typed.len()],
                        GiSearchMode::GI_SEARCH_TEXT,
                        &mut page,
                    );
                    n += 1;
                } else {
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
            stop.store(true, Ordering::Relaxed);
            measured
                .join()
                .map_err(|_| "the lookup thread panicked".to_string())?
        })
    };
    let alone = run(false)?;
    let beside = run(true)?;
    Ok((alone, beside))
}

/// Looks up `inputs` (from `first` on, round and round) until `stop`, timing each call; every
/// one must find its number while `what` runs beside.
fn lookups_until(
    plugin: &Plugin<'_>,
    inputs: &[(CString, CString)],
    first: usize,
    stop: &AtomicBool,
    what: &str,
) -> Result<Histogram<u64>, String> {
    let mut h = histogram();
    let mut out = GiContact::default();
    let mut n = first;
    while !stop.load(Ordering::Relaxed) {
        let (account, number) = &inputs[n % inputs.len()];
        let before = Instant::now();
        let found = plugin.lookup_into(account, number, &mut out);
        let _ = h.record(before.elapsed().as_nanos().max(1) as u64);
        n += 1;
        if found != GiResult::GI_OK {
            return Err(format!("a lookup failed while {what} ran"));
        }
    }
    Ok(h)
}

/// Two threads look up on `looking` while the caller runs syncs of the big account on
/// `syncing` back to back (the same plugin, or another node of a cluster), each after
/// `before_each`; then the same two threads with nothing else running.
fn lookups_during_syncs(
    [looking, syncing]: [&Plugin<'_>; 2],
    fake: &FakeGoogle,
    inputs: &[(CString, CString)],
    duration: Duration,
    before_each: &dyn Fn(),
) -> Result<(Histogram<u64>, Histogram<u64>, usize), String> {
    let plugin = looking;
    let two_threads = |stop: &AtomicBool| -> Result<Histogram<u64>, String> {
        std::thread::scope(|s| {
            let workers: Vec<_> = (0..2)
                .map(|t| s.spawn(move || lookups_until(plugin, inputs, t * 1000, stop, "syncs")))
                .collect();
            let mut total = histogram();
            for w in workers {
                total
                    .add(
                        w.join()
                            .map_err(|_| "a lookup thread panicked".to_string())??,
                    )
                    .map_err(|e| e.to_string())?;
            }
            Ok(total)
        })
    };
    let stop = AtomicBool::new(false);
    let (busy, syncs) = std::thread::scope(|s| {
        let lookups = s.spawn(|| two_threads(&stop));
        let started = Instant::now();
        let mut syncs = 0;
        let mut failure = None;
        while started.elapsed() < duration || syncs == 0 {
            before_each();
            if let Err(e) = timed_sync(syncing, fake, BIG_ACCOUNT) {
                failure = Some(e);
                break;
            }
            syncs += 1;
        }
        stop.store(true, Ordering::Relaxed);
        let busy = lookups
            .join()
            .map_err(|_| "the lookup threads panicked".to_string());
        match failure {
            Some(e) => Err(e),
            None => busy.and_then(|b| b).map(|b| (b, syncs)),
        }
    })?;
    let stop = AtomicBool::new(false);
    let quiet = std::thread::scope(|s| {
        let lookups = s.spawn(|| two_threads(&stop));
        std::thread::sleep(duration);
        stop.store(true, Ordering::Relaxed);
        lookups
            .join()
            .map_err(|_| "the lookup threads panicked".to_string())?
    })?;
    Ok((quiet, busy, syncs))
}

// ---- helpers --------------------------------------------------------------------------------

/// Runs `host-sim open-probe` on `config` and returns its JSON report.
fn open_in_fresh_process(
    api: &Api,
    dir: &std::path::Path,
    name: &str,
    config: &Value,
    account: &str,
    number: &str,
) -> Result<Value, String> {
    let config_file = dir.join(format!("bench-config-{name}.json"));
    std::fs::write(&config_file, config.to_string()).map_err(|e| e.to_string())?;
    let probe = std::process::Command::new(std::env::current_exe().map_err(|e| e.to_string())?)
        .arg("--plugin")
        .arg(api.path())
        .args(["open-probe", "--account", account, "--number", number])
        .arg("--config")
        .arg(&config_file)
        .output()
        .map_err(|e| format!("cannot run the open probe: {e}"))?;
    serde_json::from_slice(&probe.stdout).map_err(|_| {
        format!(
            "the open probe failed: {}",
            String::from_utf8_lossy(&probe.stderr)
        )
    })
}

/// What one `Instant::now()` costs here, so the reader knows the floor of every latency.
fn clock_cost() -> f64 {
    let rounds = 1_000_000;
    let started = Instant::now();
    let mut last = started;
    for _ in 0..rounds {
        last = std::hint::black_box(Instant::now());
    }
    (last - started).as_nanos() as f64 / rounds as f64
}

fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn ns(value: f64) -> String {
    if value >= 1_000_000.0 {
        format!("{:.1} ms", value / 1_000_000.0)
    } else if value >= 1_000.0 {
        format!("{:.2} µs", value / 1_000.0)
    } else {
        format!("{value:.0} ns")
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 {
        format!("{:.2}x", a / b)
    } else {
        String::new()
    }
}

fn print_table(rows: &[Row]) {
    let headers = [
        "measurement",
        "value",
        "baseline (same run)",
        "ratio",
        "target",
    ];
    let cells: Vec<[&str; 5]> = rows
        .iter()
        .map(|r| {
            [
                r.what.as_str(),
                r.value.as_str(),
                r.baseline.as_str(),
                r.ratio.as_str(),
                r.target,
            ]
        })
        .collect();
    let widths: Vec<usize> = (0..5)
        .map(|c| {
            cells
                .iter()
                .map(|r| r[c].chars().count())
                .chain([headers[c].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cols: [&str; 5]| {
        let padded: Vec<String> = cols
            .iter()
            .zip(&widths)
            .map(|(s, w)| format!("{s}{}", " ".repeat(w - s.chars().count())))
            .collect();
        format!("| {} |", padded.join(" | "))
    };
    println!();
    println!("{}", line(headers));
    println!(
        "|{}|",
        widths
            .iter()
            .map(|w| "-".repeat(w + 2))
            .collect::<Vec<_>>()
            .join("|")
    );
    for r in cells {
        println!("{}", line(r));
    }
}

/// Latency against percentile ("nines" on the x axis, log latency on the y axis), idle and
/// during syncs, as a self-contained SVG.
fn plot_svg(idle: &Histogram<u64>, busy: &Histogram<u64>) -> String {
    let (w, h, left, bottom, top, right) = (720.0, 420.0, 70.0, 50.0, 40.0, 20.0);
    let quantiles: Vec<f64> = (0..=40)
        .map(|i| 1.0 - 0.5 * 10f64.powf(-(i as f64) / 10.0))
        .collect();
    let max_nines = 4.0f64;
    let x = |q: f64| left + (w - left - right) * ((-(1.0 - q).log10()).min(max_nines) / max_nines);
    let max_ns = busy.max().max(idle.max()).max(10) as f64;
    let min_ns = idle.min().max(1).min(busy.min().max(1)) as f64;
    let (lo, hi) = (min_ns.log10().floor(), max_ns.log10().ceil());
    let y =
        |v: f64| top + (h - top - bottom) * (1.0 - (v.max(1.0).log10() - lo) / (hi - lo).max(1.0));
    let line = |hist: &Histogram<u64>, colour: &str| {
        let points: Vec<String> = quantiles
            .iter()
            .map(|&q| format!("{:.1},{:.1}", x(q), y(hist.value_at_quantile(q) as f64)))
            .collect();
        format!(
            r#"<polyline fill="none" stroke="{colour}" stroke-width="2" points="{}"/>"#,
            points.join(" ")
        )
    };
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12"><rect width="100%" height="100%" fill="white"/><text x="{left}" y="24" font-size="15">Caller-ID lookup latency through the C ABI (two threads)</text>"#
    );
    for (nines, label) in [
        (0.3, "50%"),
        (1.0, "90%"),
        (2.0, "99%"),
        (3.0, "99.9%"),
        (4.0, "99.99%"),
    ] {
        let q = 1.0 - 10f64.powf(-nines);
        svg += &format!(
            r##"<line x1="{0:.1}" x2="{0:.1}" y1="{top}" y2="{1}" stroke="#ddd"/><text x="{0:.1}" y="{2}" text-anchor="middle">{label}</text>"##,
            x(q),
            h - bottom,
            h - bottom + 18.0
        );
    }
    let mut decade = lo;
    while decade <= hi {
        let v = 10f64.powf(decade);
        svg += &format!(
            r##"<line x1="{left}" x2="{0}" y1="{1:.1}" y2="{1:.1}" stroke="#ddd"/><text x="{2}" y="{3:.1}" text-anchor="end">{4}</text>"##,
            w - right,
            y(v),
            left - 6.0,
            y(v) + 4.0,
            ns(v)
        );
        decade += 1.0;
    }
    svg += &line(idle, "#2a7");
    svg += &line(busy, "#d52");
    svg += &format!(
        r##"<text x="{0}" y="{1}" fill="#2a7">idle</text><text x="{0}" y="{2}" fill="#d52">during full syncs</text><text x="{3}" y="{4}" text-anchor="middle">percentile</text></svg>"##,
        left + 12.0,
        top + 16.0,
        top + 32.0,
        (left + w - right) / 2.0,
        h - 8.0
    );
    svg
}
