//! Hosted scale through the C ABI: syncs spread over the interval by account (stable across
//! restarts, so a restart does not sync every account at once), one request budget for every
//! call to Google, and a 429 that pauses every account of the OAuth client.

mod common;

use std::time::{Duration, SystemTime};

use common::*;
use host_sim::fake_google::{Endpoint, Fault};
use host_sim::plugin::{GiSearchMode, GiStatus, Plugin};
use serde_json::json;

const ACCOUNTS: usize = 12;

fn account(i: usize) -> String {
    format!("tenant{i}.example")
}

fn unix(text: &str) -> i64 {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|e| panic!("{text}: {e}"))
        .unix_timestamp()
}

fn next_syncs(plugin: &Plugin<'_>) -> Vec<i64> {
    (0..ACCOUNTS)
        .map(|i| {
            let status = plugin.status_value(&account(i));
            unix(
                status["next_sync"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{status}")),
            )
        })
        .collect()
}

fn connect_all(h: &Harness, plugin: &Plugin<'_>) {
    for i in 0..ACCOUNTS {
        h.connect(plugin, &account(i), ALICE);
    }
    for i in 0..ACCOUNTS {
        wait_for_sync(plugin, &account(i), 1);
    }
}

#[test]
fn syncs_are_spread_over_the_interval_and_keep_their_place_across_restarts() {
    let h = Harness::new();
    h.fake.set_contacts(ALICE, vec![]);
    let plugin = h.open(); // sync_interval_secs 3600
    connect_all(&h, &plugin);
    let now = common_now();
    let first = next_syncs(&plugin);
    // The next regular sync is in the account's slot, at least half an interval after the
    // first sync (so it does not run twice in a row), at most one and a half.
    for &at in &first {
        assert!(at >= now + 1790 && at <= now + 5400, "{at} vs now {now}");
    }
    // Connected within seconds of each other, they sync spread over the hour.
    let spread = first.iter().max().unwrap() - first.iter().min().unwrap();
    assert!(spread > 600, "next syncs {first:?}");
    drop(plugin);

    let plugin = h.open();
    let again = next_syncs(&plugin);
    for (a, b) in first.iter().zip(&again) {
        // The same place in the interval, to the second the status rounds to (an hour later
        // only if the slot fell in the second between the sync and its bookkeeping).
        let apart = (b - a).abs();
        assert!(
            apart <= 1 || (apart - 3600).abs() <= 1,
            "{first:?} then {again:?}"
        );
    }
}

/// Every account connected and synced, the plugin closed, and each last sync moved by
/// `seconds` in the store, as a restart finds it.
fn synced_then_last_sync_moved(h: &Harness, seconds: i64) {
    h.fake.set_contacts(ALICE, vec![]);
    let plugin = h.open();
    connect_all(h, &plugin);
    drop(plugin);
    read_db(h, |db| {
        db.execute("UPDATE accounts SET last_sync = last_sync + ?1", [seconds])
            .unwrap()
    });
}

#[test]
fn a_restart_after_a_long_stop_does_not_sync_every_account_at_once() {
    let h = Harness::new();
    // The PBX was down for a day: every account is overdue.
    synced_then_last_sync_moved(&h, -86400);
    let before = h.fake.requests_to(Endpoint::People).len();
    let plugin = h.open();
    std::thread::sleep(Duration::from_secs(3));
    let synced = h.fake.requests_to(Endpoint::People).len() - before;
    assert!(
        synced < 3,
        "{synced} of {ACCOUNTS} accounts synced within 3 s of the restart"
    );
    // Each is due within the hour, in its own place.
    let now = common_now();
    for at in next_syncs(&plugin) {
        assert!(at >= now - 1 && at <= now + 3600, "{at}");
    }
    // Sync now still runs at once.
    plugin.sync_now(&account(0)).unwrap();
    assert!(wait_until(PATIENCE, || h
        .fake
        .requests_to(Endpoint::People)
        .len()
        > before + synced));
}

#[test]
fn every_request_to_google_waits_for_the_budget_and_nobody_turns_yellow() {
    let h = Harness::new();
    h.fake.set_contacts(ALICE, vec![]);
    let mut config = h.config();
    config["google_requests_per_minute"] = json!(60); // one a second
    let plugin = h.open_with(&config);
    let before = h.fake.requests().len();
    h.connect(&plugin, "example.com", ALICE); // the token exchange
    h.connect(&plugin, "example.com/41", ALICE);
    wait_for_sync(&plugin, "example.com", 1); // connections and contact groups, each
    wait_for_sync(&plugin, "example.com/41", 1);
    let mut times: Vec<SystemTime> = h.fake.requests()[before..]
        .iter()
        .map(|r| r.received_at)
        .collect();
    times.sort();
    assert!(times.len() >= 6, "{} requests", times.len());
    for pair in times.windows(2) {
        let gap = pair[1].duration_since(pair[0]).unwrap_or_default();
        assert!(
            gap >= Duration::from_millis(900),
            "two requests {gap:?} apart at 60 a minute"
        );
    }
    for account in ["example.com", "example.com/41"] {
        assert_eq!(plugin.status(account), GiStatus::GI_STATUS_CONNECTED);
    }
}

/// `domain` and `domain`/41, both of the configuration's one OAuth client, connected and
/// synced. (Each test its own domain: the captured log is the test binary's, and a test
/// waiting for a line must not find another's.)
fn two_accounts_of_one_client(
    h: &Harness,
    config: serde_json::Value,
    domain: &str,
) -> Plugin<'static> {
    h.fake.set_contacts(ALICE, vec![]);
    h.fake.set_contacts(BOB, vec![]);
    let plugin = h.open_with(&config);
    h.connect_and_sync(&plugin, domain, ALICE);
    h.connect_and_sync(&plugin, &format!("{domain}/41"), BOB);
    plugin
}

/// The next People request answers 429 asking for `retry_after_secs`; Sync now on `account`
/// meets it. Returns how many People requests there were before.
fn meet_a_429(h: &Harness, plugin: &Plugin<'_>, account: &str, retry_after_secs: u64) -> usize {
    h.fake
        .inject(Endpoint::People, Fault::RateLimited { retry_after_secs });
    let before = h.fake.requests_to(Endpoint::People).len();
    plugin.sync_now(account).unwrap();
    before
}

#[test]
fn a_429_pauses_every_account_of_the_oauth_client() {
    capture_logs();
    let h = Harness::new();
    let plugin = two_accounts_of_one_client(&h, h.config(), "quota.example");
    let before = meet_a_429(&h, &plugin, "quota.example", 3);
    assert!(
        wait_until(PATIENCE, || logged_lines()
            .iter()
            .any(|l| l.contains("account quota.example:")
                && l.contains("every account of that client pauses"))),
        "the 429 was not taken as the client's"
    );
    let limited = h.fake.requests_to(Endpoint::People)[before..]
        .iter()
        .find(|r| r.status == 429)
        .map(|r| r.received_at)
        .expect("the 429 was served");
    // Another account of the same client waits out Google's Retry-After too.
    let bobs = h.fake.requests_to(Endpoint::People).len();
    plugin.sync_now("quota.example/41").unwrap();
    assert!(wait_until(PATIENCE, || h
        .fake
        .requests_to(Endpoint::People)
        .len()
        >= bobs + 2));
    let after: Vec<SystemTime> = h.fake.requests_to(Endpoint::People)[before..]
        .iter()
        .filter(|r| r.status != 429)
        .map(|r| r.received_at)
        .collect();
    for at in after {
        let waited = at.duration_since(limited).unwrap_or_default();
        assert!(
            waited >= Duration::from_millis(2900),
            "a People request {waited:?} after the 429 that asked for 3 s"
        );
    }
    for account in ["quota.example", "quota.example/41"] {
        wait_for_sync(&plugin, account, 1);
        assert_eq!(plugin.status(account), GiStatus::GI_STATUS_CONNECTED);
    }
}

/// An account waiting in line for a worker, or running, says its next sync is now: its due
/// time had already moved on to the run after, and `next_sync` showed that, half an interval
/// or more away.
#[test]
fn accounts_waiting_in_line_say_their_next_sync_is_now() {
    let h = Harness::new();
    h.fake.set_contacts(ALICE, vec![]);
    let plugin = h.open();
    connect_all(&h, &plugin);
    drop(plugin);
    // One request a minute: the first Sync now takes the budget's only token, and the rest
    // wait, four of them in workers and the others in line.
    let mut config = h.config();
    config["google_requests_per_minute"] = json!(1);
    let plugin = h.open_with(&config);
    for i in 0..ACCOUNTS {
        plugin.sync_now(&account(i)).unwrap();
    }
    let now = common_now();
    for (i, at) in next_syncs(&plugin).into_iter().enumerate() {
        assert!(
            at <= now + 2,
            "{} waits for its sync, yet says it is due {} s from now",
            account(i),
            at - now
        );
    }
}

/// A last sync written while the clock was wrong (years ahead) does not hold the account's
/// syncs back until then after a restart.
#[test]
fn a_last_sync_in_the_future_does_not_hold_the_schedule_back() {
    let h = Harness::new();
    synced_then_last_sync_moved(&h, 10 * 365 * 86400);
    let plugin = h.open(); // sync_interval_secs 3600
    let now = common_now();
    for at in next_syncs(&plugin) {
        assert!(at <= now + 5400, "next sync {} s from now", at - now);
    }
}

/// Google asks the OAuth client to wait an hour: every account of it waits (its run deferred,
/// green, without a request: a worker does not sit out the hour, nor does each account spend a
/// request to meet the same 429), and calendar fetches, whose quota is the Calendar API's, go on.
#[test]
fn a_429_asking_for_an_hour_defers_every_account_of_the_client_without_a_request() {
    let h = Harness::new();
    let mut config = h.config();
    config["calendar"] = json!(true);
    let plugin = two_accounts_of_one_client(&h, config, "hour.example");
    let before = meet_a_429(&h, &plugin, "hour.example", 3600);
    assert!(wait_until(PATIENCE, || h
        .fake
        .requests_to(Endpoint::People)
        .len()
        > before));
    assert!(wait_until(PATIENCE, || plugin.status_value("hour.example")
        ["syncing"]
        == false));
    let calendar_before = h.fake.requests_to(Endpoint::Calendar).len();
    plugin.sync_now("hour.example/41").unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let people: Vec<u16> = h.fake.requests_to(Endpoint::People)[before..]
        .iter()
        .map(|r| r.status)
        .collect();
    assert_eq!(
        people,
        [429],
        "after Google asked the client to wait an hour, only the 429 itself reached the People API"
    );
    for account in ["hour.example", "hour.example/41"] {
        let status = plugin.status_value(account);
        assert_eq!(
            status["status"], "connected",
            "one deferral is no issue: {status}"
        );
        assert_eq!(
            status["syncing"], false,
            "deferred, not waiting in a worker: {status}"
        );
    }
    // Sync now fetches the calendar too: its quota is another API's.
    assert!(
        wait_until(PATIENCE, || h.fake.requests_to(Endpoint::Calendar).len()
            > calendar_before),
        "the People API's spent quota paused the calendar fetches"
    );
}

/// A spent Calendar API quota that keeps an account's calendar fetches deferred turns it
/// yellow naming the Calendar API, as the contract asks of a calendar problem: not a bare
/// "quota", which an administrator would look for among the People API's.
#[test]
fn calendar_fetches_deferred_by_a_spent_quota_turn_yellow_naming_the_calendar_api() {
    let h = Harness::new();
    let mut config = h.config();
    config["calendar"] = json!(true);
    let plugin = two_accounts_of_one_client(&h, config, "calquota.example");
    let other = "calquota.example/41";
    let before = h.fake.requests_to(Endpoint::Calendar).len();
    h.fake.inject(
        Endpoint::Calendar,
        Fault::RateLimited {
            retry_after_secs: 3600,
        },
    );
    plugin.sync_now("calquota.example").unwrap();
    assert!(wait_until(PATIENCE, || h
        .fake
        .requests_to(Endpoint::Calendar)[before..]
        .iter()
        .any(|r| r.status == 429)));
    let reason = || {
        plugin.status_value(other)["reason"]
            .as_str()
            .map(str::to_owned)
    };
    let yellow = wait_until(PATIENCE, || {
        if reason().is_none() {
            plugin.sync_now(other).unwrap();
            std::thread::sleep(Duration::from_millis(200));
        }
        reason().is_some()
    });
    assert!(yellow, "{}", plugin.status_value(other));
    let reason = reason().unwrap();
    assert!(reason.contains("Calendar API"), "{reason}");
    assert!(reason.contains("quota"), "{reason}");
}

fn common_now() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Many incremental syncs of random changes (renames, moved and shared numbers, deletions,
/// new people, rounds with no change) leave what a plugin rebuilding from the same store
/// answers: the same caller for every number, the same address book, and the model's counts.
#[test]
fn many_incremental_syncs_leave_what_a_rebuild_from_the_store_gives() {
    use host_sim::fake_google::Person;
    use std::collections::BTreeMap;

    const ROUNDS: usize = 1000;
    const POOL: u64 = 40; // numbers shared among more people than that: ties happen
    let number = |n: u64| format!("+1 212 555 {:04}", 3000 + n);
    let e164 = |n: u64| format!("+12125553{:03}", n);
    let mut seed = 0x5eed_1234_u64;
    let mut next = move |below: u64| {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) % below
    };

    capture_logs();
    let h = Harness::new();
    let mut model: BTreeMap<String, (String, u64)> = BTreeMap::new();
    let mut people = Vec::new();
    for i in 0..60u64 {
        let (resource, name, n) = (format!("people/m{i}"), format!("Person{i}"), next(POOL));
        model.insert(resource.clone(), (name.clone(), n));
        people.push(Person::new(&resource, &name, "Model").with_phone(&number(n), "mobile"));
    }
    h.fake.set_contacts(ALICE, people);
    let plugin = h.open();
    h.connect_and_sync(&plugin, "model.example", ALICE);
    let mut fresh = 60u64;
    for round in 0..ROUNDS {
        let before = h.fake.requests_to(Endpoint::People).len();
        for _ in 0..next(4) {
            let keys: Vec<String> = model.keys().cloned().collect();
            match next(4) {
                0 if !keys.is_empty() => {
                    let resource = &keys[next(keys.len() as u64) as usize];
                    h.fake.delete_contact(ALICE, resource);
                    model.remove(resource);
                }
                1 => {
                    let (resource, n) = (format!("people/m{fresh}"), next(POOL));
                    fresh += 1;
                    let name = format!("New{round}");
                    h.fake.upsert_contact(
                        ALICE,
                        Person::new(&resource, &name, "Model").with_phone(&number(n), "work"),
                    );
                    model.insert(resource, (name, n));
                }
                _ if !keys.is_empty() => {
                    let resource = keys[next(keys.len() as u64) as usize].clone();
                    let (name, n) = (format!("Renamed{round}"), next(POOL));
                    h.fake.upsert_contact(
                        ALICE,
                        Person::new(&resource, &name, "Model").with_phone(&number(n), "home"),
                    );
                    model.insert(resource, (name, n));
                }
                _ => {}
            }
        }
        plugin.sync_now("model.example").unwrap();
        let status = wait_for_people_requests(&h, &plugin, "model.example", before, 1);
        assert_eq!(status["contacts"], model.len(), "round {round}: {status}");
        assert_eq!(status["status"], "connected", "round {round}: {status}");
    }

    // Every number answers a current holder of it; a number nobody holds answers nobody.
    let answers = |p: &Plugin<'_>| -> Vec<Option<String>> {
        (0..POOL)
            .map(|n| p.lookup("model.example", &e164(n)).unwrap().map(|c| c.name))
            .collect()
    };
    let live = answers(&plugin);
    for (n, answer) in live.iter().enumerate() {
        let holders: Vec<String> = model
            .values()
            .filter(|(_, m)| *m == n as u64)
            .map(|(name, _)| format!("{name} Model"))
            .collect();
        match answer {
            Some(name) => assert!(holders.contains(name), "{n}: {name} not in {holders:?}"),
            None => assert!(holders.is_empty(), "{n}: nobody answered for {holders:?}"),
        }
    }
    let book = |p: &Plugin<'_>| {
        let (rows, _) = p
            .search("model.example", "", GiSearchMode::GI_SEARCH_TEXT, 0, 1000)
            .expect("search");
        rows.iter()
            .map(|c| (c.name.clone(), c.number.clone()))
            .collect::<Vec<_>>()
    };
    let live_book = book(&plugin);

    // Both ways of landing a change ran: patches, and the rebuild once a patch outgrows its
    // limit (an eighth of the account, at least 64 contacts; shared numbers pull their
    // other holders into the patch, so it fills fast here).
    let landed = |how: &str| {
        logged_lines()
            .iter()
            .filter(|l| l.contains("model.example") && l.contains(how))
            .count()
    };
    let (patched, rebuilt) = (landed("index patched"), landed("rebuilt from the store"));
    assert!(
        patched > ROUNDS / 2 && rebuilt > 0,
        "{patched} patched, {rebuilt} rebuilt"
    );

    // A plugin rebuilding from the same store (a backup, Google unreachable) answers alike.
    let copy = h.data_dir().join("model.sqlite3");
    plugin.backup(&copy).unwrap();
    drop(plugin);
    let (_node, rebuilt) = h.open_backup_elsewhere(&copy);
    assert_eq!(answers(&rebuilt), live);
    assert_eq!(book(&rebuilt), live_book);
    assert_eq!(live_book.len(), model.len());
}
