//! Calendar presence through the C ABI: the freeBusy scope asked for, busy times fetched at
//! once after connect, Sync now and open, answered from memory with the exact flips between
//! fetches, unknown when off, not granted, not fetched or stale, yellow when an administrator
//! must act, kept across close/open, erased on disable, never another account's.

mod common;

use std::time::Duration;

use common::*;
use host_sim::fake_google::{Endpoint, Fault};
use host_sim::plugin::{GiPresence, GiStatus, Plugin};
use serde_json::{json, Value};

const ACCOUNT: &str = "example.com/40";
const CALENDAR_SCOPE: &str = "https://www.googleapis.com/auth/calendar.freebusy";
const BUSY: GiPresence = GiPresence::GI_PRESENCE_BUSY;
const FREE: GiPresence = GiPresence::GI_PRESENCE_FREE;
const UNKNOWN: GiPresence = GiPresence::GI_PRESENCE_UNKNOWN;

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// The harness's configuration with calendar presence on.
fn calendar_config(h: &Harness) -> Value {
    let mut config = h.config();
    config["calendar"] = json!(true);
    config
}

/// An RFC 3339 time as Unix seconds.
fn unix(text: &str) -> i64 {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|e| panic!("{text}: {e}"))
        .unix_timestamp()
}

fn calendar_requests(h: &Harness) -> usize {
    h.fake.requests_to(Endpoint::Calendar).len()
}

/// Waits until the account's presence is known (a calendar answer arrived).
fn wait_for_presence(plugin: &Plugin<'_>, account: &str) -> (GiPresence, i64) {
    let mut presence = (UNKNOWN, 0);
    assert!(
        wait_until(PATIENCE, || {
            presence = plugin.presence(account);
            presence.0 != UNKNOWN
        }),
        "no presence for {account}: {}",
        plugin.status_value(account)
    );
    presence
}

/// Waits until the account's status reason says `what`.
fn wait_for_reason(plugin: &Plugin<'_>, account: &str, what: &str) -> Value {
    let mut status = Value::Null;
    assert!(
        wait_until(PATIENCE, || {
            status = plugin.status_value(account);
            status["reason"].as_str().is_some_and(|r| r.contains(what))
        }),
        "no reason with {what:?}: {status}"
    );
    status
}

/// Opens with presence on and connects ACCOUNT as ALICE, who is in a meeting from a minute
/// ago to an hour from `t` (returned); waits until the plugin says so.
fn connected_in_a_meeting(h: &Harness) -> (Plugin<'static>, i64) {
    let t = now();
    h.fake.set_busy(ALICE, vec![(t - 60, t + 3600)]);
    let plugin = h.open_with(&calendar_config(h));
    h.connect(&plugin, ACCOUNT, ALICE);
    assert_eq!(wait_for_presence(&plugin, ACCOUNT), (BUSY, t + 3600));
    (plugin, t)
}

/// Runs the consent flow with the calendar box unticked on Google's consent screen.
fn connect_without_calendar(h: &Harness, plugin: &Plugin<'_>, account: &str, email: &str) {
    let url = plugin.auth_url(account).expect("gi_auth_url");
    let query = h
        .fake
        .approve_unticking(&url, email, &[CALENDAR_SCOPE])
        .expect("consent");
    plugin.complete(&query).expect("gi_complete");
}

/// Contacts syncs and calendar fetches share four workers. With the People API slow (each
/// request up to its 60 s deadline, retried: minutes a sync), syncs due in a row held all
/// four, and calendar fetches waited behind them until presence went unknown, though the
/// Calendar API answered at once. A job takes at most three workers: here four syncs stuck
/// on a slow People API leave a worker to a calendar fetch.
#[test]
fn contacts_syncs_stuck_on_a_slow_people_api_leave_a_worker_to_calendar_fetches() {
    let h = Harness::new();
    let mut config = h.config();
    config["domains"] = json!({"cal.example": {"calendar": true}});
    let plugin = h.open_with(&config);
    let stuck: Vec<String> = (1..=4).map(|n| format!("slow.example/{n}")).collect();
    for account in &stuck {
        h.connect_and_sync(&plugin, account, ALICE);
    }
    h.connect_and_sync(&plugin, "cal.example", BOB);
    wait_for_presence(&plugin, "cal.example");

    h.fake.set_sticky_fault(
        Endpoint::People,
        Some(Fault::Delay(Duration::from_secs(15))),
    );
    for account in &stuck {
        plugin.sync_now(account).unwrap();
    }
    let syncing = || {
        stuck
            .iter()
            .filter(|a| plugin.status_value(a)["syncing"] == true)
            .count()
    };
    assert!(wait_until(PATIENCE, || syncing() >= 3), "the syncs started");
    let before = calendar_requests(&h);
    plugin.sync_now("cal.example").unwrap();
    // Well within the People API's delay: the fetch does not wait for a sync to end.
    assert!(
        wait_until(Duration::from_secs(10), || calendar_requests(&h) > before),
        "no calendar fetch while {} contacts syncs were stuck",
        syncing()
    );
    h.fake.set_sticky_fault(Endpoint::People, None);
}

#[test]
fn calendar_asks_for_the_free_busy_scope_only_where_it_is_on() {
    let h = Harness::new();
    let mut config = h.config();
    config["domains"] = json!({ "acme.de": { "calendar": true } });
    let plugin = h.open_with(&config);
    let scope = |account: &str| param(&plugin.auth_url(account).unwrap(), "scope").unwrap();
    assert!(scope("acme.de/40").contains(CALENDAR_SCOPE));
    assert!(scope("acme.de/40").contains("contacts.readonly"));
    assert!(!scope(ACCOUNT).contains("calendar"), "{}", scope(ACCOUNT));
    // Off by default, per domain or at the top level: no presence object, no fetch.
    h.connect_and_sync(&plugin, ACCOUNT, ALICE);
    assert_eq!(plugin.status_value(ACCOUNT)["presence"], Value::Null);
    assert_eq!(plugin.presence(ACCOUNT), (UNKNOWN, 0));
    assert_eq!(calendar_requests(&h), 0);
    drop(plugin);

    let plugin = h.open_with(&calendar_config(&h));
    assert!(param(&plugin.auth_url(ACCOUNT).unwrap(), "scope")
        .unwrap()
        .contains(CALENDAR_SCOPE));
}

#[test]
fn busy_while_a_meeting_runs_until_the_merged_end_and_free_until_the_next() {
    let h = Harness::new();
    let t = now();
    // Overlapping and adjacent periods, unmerged as Google may send them.
    h.fake.set_busy(
        ALICE,
        vec![
            (t - 600, t + 600),
            (t + 300, t + 900),
            (t + 900, t + 1200),
            (t + 7200, t + 9000),
        ],
    );
    let plugin = h.open_with(&calendar_config(&h));
    h.connect(&plugin, ACCOUNT, ALICE);
    let (presence, until) = wait_for_presence(&plugin, ACCOUNT);
    assert_eq!((presence, until), (BUSY, t + 1200));
    let status = plugin.status_value(ACCOUNT);
    assert_eq!(status["status"], "connected", "{status}");
    assert_eq!(status["presence"]["state"], "busy", "{status}");
    let time_of = |field: &str| unix(status["presence"][field].as_str().expect(field));
    assert_eq!(time_of("until"), t + 1200, "{status}");
    let updated = time_of("updated");
    assert!((t..=now()).contains(&updated), "{status}");
    assert!(status["scopes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s == CALENDAR_SCOPE));

    // The request: the primary calendar over the next 24 hours.
    let request = &h.fake.requests_to(Endpoint::Calendar)[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/calendar/v3/freeBusy");
    let body: Value = serde_json::from_str(&request.body).unwrap();
    assert_eq!(body["items"], json!([{ "id": "primary" }]), "{body}");
    let (min, max) = (
        body["timeMin"].as_str().unwrap(),
        body["timeMax"].as_str().unwrap(),
    );
    assert_eq!(unix(max) - unix(min), 24 * 3600, "{body}");

    // Free once the meeting is over, until the next one starts.
    h.fake.set_busy(ALICE, vec![(t + 7200, t + 9000)]);
    plugin.sync_now(ACCOUNT).unwrap();
    assert!(wait_until(PATIENCE, || plugin.presence(ACCOUNT) == (FREE, t + 7200)));
    let status = plugin.status_value(ACCOUNT);
    assert_eq!(status["presence"]["state"], "free", "{status}");
    assert_eq!(
        unix(status["presence"]["until"].as_str().expect("until")),
        t + 7200,
        "{status}"
    );
    // Nothing in the next day: free, until 0.
    h.fake.clear_busy(ALICE);
    plugin.sync_now(ACCOUNT).unwrap();
    assert!(wait_until(PATIENCE, || plugin.presence(ACCOUNT) == (FREE, 0)));
    let status = plugin.status_value(ACCOUNT);
    assert_eq!(status["presence"]["state"], "free", "{status}");
    assert_eq!(status["presence"]["until"], Value::Null, "{status}");
}

#[test]
fn presence_flips_at_the_exact_start_and_end_between_fetches() {
    let h = Harness::new();
    let t = now();
    let (start, end) = (t + 3, t + 5);
    h.fake.set_busy(ALICE, vec![(start, end)]);
    let plugin = h.open_with(&calendar_config(&h)); // fetched every 300 s: not again here
    h.connect(&plugin, ACCOUNT, ALICE);
    wait_for_presence(&plugin, ACCOUNT);
    let fetches = calendar_requests(&h);
    // Every answer is checked against the clock read around the call: FREE (until the
    // start) only before the start, BUSY (until the end) only within, FREE after.
    let mut seen = Vec::new();
    while now() <= end + 1 {
        let before = now();
        let presence = plugin.presence(ACCOUNT);
        let after = now();
        match presence {
            (FREE, until) if until == start => assert!(before < start, "free at {before}"),
            (BUSY, until) if until == end => {
                assert!(after >= start && before < end, "busy at {before}..{after}")
            }
            (FREE, 0) => assert!(after >= end, "free for good at {after}"),
            other => panic!("unexpected {other:?} at {before}"),
        }
        if seen.last() != Some(&presence.0) {
            seen.push(presence.0);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(seen.first(), Some(&FREE));
    assert!(seen.contains(&BUSY), "{seen:?}");
    assert_eq!(seen.last(), Some(&FREE));
    assert_eq!(calendar_requests(&h), fetches, "the flips came from memory");
}

#[test]
fn a_scope_unticked_at_consent_is_yellow_and_unknown_until_granted() {
    let h = Harness::new();
    h.fake.set_busy(ALICE, vec![(now() - 60, now() + 3600)]);
    h.fake.set_contacts(
        ALICE,
        vec![
            host_sim::fake_google::Person::new("people/c1", "Carol", "Jones")
                .with_phone("+1 212 555 0100", "mobile"),
        ],
    );
    let plugin = h.open_with(&calendar_config(&h));
    connect_without_calendar(&h, &plugin, ACCOUNT, ALICE);
    wait_for_sync(&plugin, ACCOUNT, 1);
    let status = plugin.status_value(ACCOUNT);
    assert_eq!(status["status"], "issue", "{status}");
    let reason = status["reason"].as_str().unwrap();
    assert!(
        reason.contains("Get auth code") && reason.contains("grant calendar access"),
        "{reason}"
    );
    assert_eq!(plugin.status(ACCOUNT), GiStatus::GI_STATUS_ISSUE);
    assert_eq!(status["presence"]["state"], "unknown", "{status}");
    assert_eq!(plugin.presence(ACCOUNT), (UNKNOWN, 0));
    // Contacts still sync: the missing scope only costs the feature that needs it. (The
    // status was yellow before the sync landed: wait for the contacts themselves.)
    assert!(wait_until(PATIENCE, || plugin
        .lookup(ACCOUNT, "+12125550100")
        .unwrap()
        .is_some()));
    assert_eq!(calendar_requests(&h), 0, "no request that must fail");
    // The yellow ! survives a restart, and so does the unknown presence.
    drop(plugin);
    let plugin = h.open_with(&calendar_config(&h));
    assert_eq!(plugin.status(ACCOUNT), GiStatus::GI_STATUS_ISSUE);

    // Granting it clears the ! and presence follows at once.
    h.connect(&plugin, ACCOUNT, ALICE);
    assert_eq!(wait_for_presence(&plugin, ACCOUNT).0, BUSY);
    let status = wait_for_sync(&plugin, ACCOUNT, 1);
    assert_eq!(status["status"], "connected", "{status}");
    assert_eq!(status["reason"], Value::Null, "{status}");
}

#[test]
fn a_grant_google_refuses_for_the_calendar_is_yellow_with_the_scope_fix() {
    // The token said the scope was granted, the Calendar API says it is not (a grant cut
    // down at Google afterwards): the same fix is named.
    let h = Harness::new();
    let plugin = h.open_with(&calendar_config(&h));
    h.fake
        .set_sticky_fault(Endpoint::Calendar, Some(Fault::Status(403)));
    h.connect(&plugin, ACCOUNT, ALICE);
    let status = wait_for_reason(&plugin, ACCOUNT, "grant calendar access");
    assert_eq!(status["status"], "issue", "{status}");
    assert_eq!(plugin.presence(ACCOUNT), (UNKNOWN, 0));
}

#[test]
fn a_grant_cut_down_after_a_good_answer_is_unknown_at_once_not_when_stale() {
    // The contract: unknown when the scope is not granted. Google saying so after busy
    // times were fetched under the grant makes them no longer the account's to tell, in
    // memory and in the store.
    let h = Harness::new();
    let (plugin, _) = connected_in_a_meeting(&h);
    h.fake
        .set_sticky_fault(Endpoint::Calendar, Some(Fault::Status(403)));
    plugin.sync_now(ACCOUNT).unwrap();
    let status = wait_for_reason(&plugin, ACCOUNT, "grant calendar access");
    assert_eq!(status["status"], "issue", "{status}");
    assert_eq!(plugin.presence(ACCOUNT), (UNKNOWN, 0));
    assert_eq!(status["presence"]["state"], "unknown", "{status}");
    // Not back from the store at the next open, before any fetch could answer.
    drop(plugin);
    let plugin = h.open_with(&calendar_config(&h));
    assert_eq!(plugin.presence(ACCOUNT), (UNKNOWN, 0));
    // Granted again (here: Google answers again), the busy times come back.
    h.fake.set_sticky_fault(Endpoint::Calendar, None);
    plugin.sync_now(ACCOUNT).unwrap();
    assert_eq!(wait_for_presence(&plugin, ACCOUNT).0, BUSY);
    assert!(wait_until(PATIENCE, || plugin.status(ACCOUNT)
        == GiStatus::GI_STATUS_CONNECTED));
}

/// Without Sync now, the calendar is fetched again every `presence_interval_secs`: a meeting
/// booked after the connect shows by itself, and the fetches keep coming at that pace.
#[test]
fn the_calendar_is_fetched_again_every_interval_by_itself() {
    let h = Harness::new();
    let mut config = calendar_config(&h);
    config["presence_interval_secs"] = json!(10); // the shortest the contract allows
    let plugin = h.open_with(&config);
    h.connect(&plugin, ACCOUNT, ALICE);
    assert_eq!(wait_for_presence(&plugin, ACCOUNT), (FREE, 0));
    // A meeting booked in Google Calendar; nothing is asked of the plugin.
    let t = now();
    h.fake.set_busy(ALICE, vec![(t - 60, t + 3600)]);
    let started = std::time::Instant::now();
    let before = calendar_requests(&h);
    let mut busy_at = None;
    while calendar_requests(&h) < before + 3 && started.elapsed() < Duration::from_secs(45) {
        if busy_at.is_none() && plugin.presence(ACCOUNT) == (BUSY, t + 3600) {
            busy_at = Some(std::time::Instant::now());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let fetched: Vec<std::time::Instant> = h.fake.requests_to(Endpoint::Calendar)[before..]
        .iter()
        .map(|r| r.received)
        .collect();
    let since_start: Vec<Duration> = fetched.iter().map(|at| *at - started).collect();
    assert!(fetched.len() >= 3, "fetches at {since_start:?}");
    // The next fetch is due an interval after the last one ended, which was just before
    // `started`; it turned the phone busy by itself, before the one after it.
    assert!(since_start[0] <= Duration::from_secs(15), "{since_start:?}");
    let busy_at = busy_at.expect("the booked meeting never showed");
    assert!(
        busy_at >= fetched[0] && busy_at <= fetched[1],
        "busy at {:?}, fetches at {since_start:?}",
        busy_at - started
    );
    // Then one an interval: not a loop, and not stopped.
    for pair in fetched.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            (Duration::from_secs(8)..=Duration::from_secs(20)).contains(&gap),
            "fetches at {since_start:?}"
        );
    }
    assert_eq!(plugin.status(ACCOUNT), GiStatus::GI_STATUS_CONNECTED);
}

#[test]
fn the_calendar_api_disabled_is_yellow_and_the_next_good_answer_clears_it() {
    let h = Harness::new();
    h.fake.set_busy(ALICE, vec![(now() - 60, now() + 3600)]);
    let plugin = h.open_with(&calendar_config(&h));
    h.fake
        .set_sticky_fault(Endpoint::Calendar, Some(Fault::CalendarDisabled));
    h.connect(&plugin, ACCOUNT, ALICE);
    let status = wait_for_reason(
        &plugin,
        ACCOUNT,
        "enable the Google Calendar API in the Google Cloud console",
    );
    assert_eq!(status["status"], "issue", "{status}");
    assert_eq!(plugin.presence(ACCOUNT), (UNKNOWN, 0), "never fetched");
    // Not retried: an administrator must act. One request, no backoff loop.
    assert_eq!(calendar_requests(&h), 1);
    // A good contacts sync does not hide the calendar's problem.
    let status = wait_for_sync(&plugin, ACCOUNT, 1);
    assert_eq!(status["status"], "issue", "{status}");

    h.fake.set_sticky_fault(Endpoint::Calendar, None);
    plugin.sync_now(ACCOUNT).unwrap();
    assert_eq!(wait_for_presence(&plugin, ACCOUNT).0, BUSY);
    assert!(wait_until(PATIENCE, || plugin.status(ACCOUNT)
        == GiStatus::GI_STATUS_CONNECTED));
    assert_eq!(plugin.status_value(ACCOUNT)["reason"], Value::Null);
}

#[test]
fn transient_failures_retry_and_never_blank_a_fresh_presence_which_goes_stale_after_three_intervals(
) {
    let h = Harness::new();
    let t = now();
    h.fake.set_busy(ALICE, vec![(t - 60, t + 3600)]);
    let mut config = calendar_config(&h);
    config["presence_interval_secs"] = json!(10); // the shortest the contract allows
    let plugin = h.open_with(&config);
    h.connect(&plugin, ACCOUNT, ALICE);
    assert_eq!(wait_for_presence(&plugin, ACCOUNT), (BUSY, t + 3600));

    // A 429 with Retry-After, a 503, a broken reply: retried within the fetch.
    let before = calendar_requests(&h);
    h.fake.inject(
        Endpoint::Calendar,
        Fault::RateLimited {
            retry_after_secs: 1,
        },
    );
    h.fake.inject(Endpoint::Calendar, Fault::Status(503));
    h.fake.inject(Endpoint::Calendar, Fault::TruncatedJson);
    plugin.sync_now(ACCOUNT).unwrap();
    assert!(wait_until(PATIENCE, || calendar_requests(&h) >= before + 4));
    assert_eq!(h.fake.pending_faults(Endpoint::Calendar), 0);
    assert_eq!(plugin.presence(ACCOUNT).0, BUSY);
    assert!(wait_until(PATIENCE, || plugin.status(ACCOUNT)
        == GiStatus::GI_STATUS_CONNECTED));

    // Google keeps failing: past three retries the account turns yellow naming the Calendar
    // API, and the presence already known stays while it is fresh (three intervals).
    h.fake
        .set_sticky_fault(Endpoint::Calendar, Some(Fault::Status(503)));
    plugin.sync_now(ACCOUNT).unwrap();
    wait_for_reason(&plugin, ACCOUNT, "Google Calendar API");
    // The last good answer (the retries above, or a periodic fetch before the fault) is
    // what the staleness counts from.
    let updated = plugin.status_value(ACCOUNT)["presence"]["updated"].clone();
    let fetched = unix(updated.as_str().expect("an answer came"));
    let mut went_unknown_at = None;
    while now() < fetched + 60 {
        let before = now();
        let presence = plugin.presence(ACCOUNT);
        let status = plugin.status_value(ACCOUNT);
        assert_eq!(
            status["presence"]["updated"], updated,
            "no good answer came"
        );
        if presence.0 == UNKNOWN {
            went_unknown_at = Some(now());
            break;
        }
        assert_eq!(presence, (BUSY, t + 3600));
        assert!(
            before <= fetched + 31,
            "still busy at {before}, fetched at {fetched}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let at = went_unknown_at.expect("the presence went stale");
    assert!(at >= fetched + 30, "unknown at {at}, fetched at {fetched}");
    assert_eq!(plugin.status_value(ACCOUNT)["presence"]["state"], "unknown");

    // The next good answer brings it back and clears the yellow !.
    h.fake.set_sticky_fault(Endpoint::Calendar, None);
    plugin.sync_now(ACCOUNT).unwrap();
    assert_eq!(wait_for_presence(&plugin, ACCOUNT).0, BUSY);
    assert!(wait_until(PATIENCE, || plugin.status(ACCOUNT)
        == GiStatus::GI_STATUS_CONNECTED));
}

/// Connects the account with a meeting on, closes the plugin, then expires its access token
/// at Google and clears the calendar; returns the configuration to reopen with. Reopened,
/// the plugin fetches the calendar at once with the stored access token, and the contacts
/// only at the account's slot (the interval is an hour): so the calendar's request is the
/// one that meets the expired token. (With `gi_sync_now` the contacts' request could meet
/// it first and refresh the token the calendar then used.)
fn closed_with_an_expired_token(h: &Harness) -> Value {
    h.fake.set_busy(ALICE, vec![(now() - 60, now() + 3600)]);
    let config = calendar_config(h);
    let plugin = h.open_with(&config);
    h.connect(&plugin, ACCOUNT, ALICE);
    wait_for_presence(&plugin, ACCOUNT);
    wait_for_sync(&plugin, ACCOUNT, 1);
    drop(plugin);
    h.fake.expire_access_tokens();
    h.fake.clear_busy(ALICE);
    config
}

#[test]
fn an_expired_access_token_is_refreshed_for_the_calendar() {
    let h = Harness::new();
    let config = closed_with_an_expired_token(&h);
    let plugin = h.open_with(&config);
    assert!(wait_until(PATIENCE, || plugin.presence(ACCOUNT) == (FREE, 0)));
    let statuses: Vec<u16> = h
        .fake
        .requests_to(Endpoint::Calendar)
        .iter()
        .map(|r| r.status)
        .collect();
    assert!(statuses.contains(&401), "{statuses:?}");
    assert_eq!(plugin.status(ACCOUNT), GiStatus::GI_STATUS_CONNECTED);
}

/// Google's token endpoint failing once (a 503 `temporarily_unavailable`) while the
/// calendar's 401 is answered by a refresh is retried like any transient failure: presence
/// arrives and the account stays green. It had turned the account yellow at once.
#[test]
fn a_token_endpoint_failing_once_during_a_refresh_is_retried() {
    let h = Harness::new();
    let config = closed_with_an_expired_token(&h);
    let refreshes = h.fake.requests_to(Endpoint::Token).len();
    h.fake.inject(Endpoint::Token, Fault::Status(503));
    let plugin = h.open_with(&config);
    assert!(
        wait_until(PATIENCE, || plugin.presence(ACCOUNT) == (FREE, 0)),
        "{}",
        plugin.status_value(ACCOUNT)
    );
    let tokens: Vec<u16> = h.fake.requests_to(Endpoint::Token)[refreshes..]
        .iter()
        .map(|r| r.status)
        .collect();
    assert_eq!(tokens.first(), Some(&503), "{tokens:?}");
    assert!(tokens.contains(&200), "refreshed on a retry: {tokens:?}");
    assert_eq!(plugin.status(ACCOUNT), GiStatus::GI_STATUS_CONNECTED);
}

#[test]
fn a_token_endpoint_that_keeps_failing_turns_the_calendar_yellow_naming_the_calendar_api() {
    // The contract: past three retries, the yellow ! names the Calendar API, also when what
    // fails is Google's token endpoint on the way to it.
    let h = Harness::new();
    let config = closed_with_an_expired_token(&h);
    h.fake
        .set_sticky_fault(Endpoint::Token, Some(Fault::Status(503)));
    let plugin = h.open_with(&config);
    let status = wait_for_reason(&plugin, ACCOUNT, "Google Calendar API");
    assert_eq!(status["status"], "issue", "{status}");
    let reason = status["reason"].as_str().unwrap();
    assert!(reason.contains("still failing after 3 retries"), "{reason}");
    // Google's 503, told as an OAuth error, is its failure, not a refusal.
    assert!(reason.contains("token endpoint failed"), "{reason}");
    assert!(!reason.contains("refused"), "{reason}");
    h.fake.set_sticky_fault(Endpoint::Token, None);
    plugin.sync_now(ACCOUNT).unwrap();
    assert!(wait_until(PATIENCE, || plugin.status(ACCOUNT)
        == GiStatus::GI_STATUS_CONNECTED));
}

#[test]
fn presence_is_fetched_at_once_after_open_and_survives_close_and_open() {
    let h = Harness::new();
    let t = now();
    h.fake.set_busy(ALICE, vec![(t - 60, t + 3600)]);
    let config = calendar_config(&h);
    let plugin = h.open_with(&config);
    h.connect(&plugin, ACCOUNT, ALICE);
    assert_eq!(wait_for_presence(&plugin, ACCOUNT), (BUSY, t + 3600));
    let updated = plugin.status_value(ACCOUNT)["presence"]["updated"].clone();
    drop(plugin);

    // Google down at the restart: the stored presence answers at once.
    h.fake
        .set_sticky_fault(Endpoint::Calendar, Some(Fault::Status(503)));
    let before = calendar_requests(&h);
    let plugin = h.open_with(&config);
    assert_eq!(plugin.presence(ACCOUNT), (BUSY, t + 3600));
    assert_eq!(plugin.status_value(ACCOUNT)["presence"]["updated"], updated);
    // ... and a fetch went out at open, without waiting for the interval.
    assert!(wait_until(PATIENCE, || calendar_requests(&h) > before));
    drop(plugin);

    h.fake.set_sticky_fault(Endpoint::Calendar, None);
    h.fake.clear_busy(ALICE);
    let plugin = h.open_with(&config);
    assert!(wait_until(PATIENCE, || plugin.presence(ACCOUNT) == (FREE, 0)));
}

#[test]
fn no_domain_fallback_and_never_another_accounts_calendar() {
    let h = Harness::new();
    let t = now();
    h.fake.set_busy(ALICE, vec![(t - 60, t + 3600)]);
    h.fake.set_busy(BOB, vec![(t + 600, t + 1200)]);
    let plugin = h.open_with(&calendar_config(&h));
    h.connect(&plugin, "example.com", ALICE); // the domain's own account
    h.connect(&plugin, "example.com/41", BOB);
    assert_eq!(wait_for_presence(&plugin, "example.com").0, BUSY);
    assert_eq!(
        wait_for_presence(&plugin, "example.com/41"),
        (FREE, t + 600)
    );
    // A user of the domain without a calendar of its own is unknown, not the domain's.
    assert_eq!(plugin.presence(ACCOUNT), (UNKNOWN, 0));
    assert_eq!(plugin.status_value(ACCOUNT)["presence"]["state"], "unknown");
}

#[test]
fn disabling_or_turning_calendar_off_erases_the_busy_times() {
    let h = Harness::new();
    h.fake.set_busy(ALICE, vec![(now() - 60, now() + 3600)]);
    h.fake.set_busy(BOB, vec![(now() - 60, now() + 3600)]);
    let config = calendar_config(&h);
    let plugin = h.open_with(&config);
    h.connect(&plugin, ACCOUNT, ALICE);
    h.connect(&plugin, "example.com/41", BOB);
    wait_for_presence(&plugin, ACCOUNT);
    wait_for_presence(&plugin, "example.com/41");
    plugin.disable(ACCOUNT).unwrap();
    assert_eq!(plugin.presence(ACCOUNT), (UNKNOWN, 0));
    drop(plugin);
    let rows = |h: &Harness| -> Vec<String> {
        store_query(h, "SELECT account FROM presence")
            .into_iter()
            .map(|row| row[0].clone())
            .collect()
    };
    assert_eq!(rows(&h), ["example.com/41"]);

    // Presence turned off: nothing of it is kept, nothing fetched.
    let plugin = h.open(); // calendar off
    assert_eq!(plugin.presence("example.com/41"), (UNKNOWN, 0));
    assert_eq!(
        plugin.status_value("example.com/41")["presence"],
        Value::Null
    );
    drop(plugin);
    assert!(rows(&h).is_empty());
}

/// A reconnect (perhaps as another Google user) erases the previous connection's busy times,
/// and no copy of them stays in the database's files, the write-ahead log included, while
/// the plugin runs on.
#[test]
fn a_reconnect_leaves_no_copy_of_the_previous_connections_busy_times_in_the_files() {
    let h = Harness::new();
    if !h.on_sqlite() {
        return; // PostgreSQL keeps no file of the plugin's
    }
    let meeting = (now() + 600, now() + 4207);
    h.fake.set_busy(ALICE, vec![meeting]);
    let plugin = h.open_with(&calendar_config(&h));
    h.connect(&plugin, ACCOUNT, ALICE);
    assert_eq!(wait_for_presence(&plugin, ACCOUNT), (FREE, meeting.0));
    let stored = format!("{} {}", meeting.0, meeting.1);
    let holding = || {
        files_under(&h.data_dir().join("data"))
            .into_iter()
            .filter(|(_, bytes)| contains(bytes, &stored))
            .map(|(path, _)| path.display().to_string())
            .collect::<Vec<_>>()
    };
    // The check below can fail: the busy times are in the files now.
    assert!(!holding().is_empty());
    h.connect(&plugin, ACCOUNT, BOB);
    assert!(
        holding().is_empty(),
        "{:?} still hold the previous connection's busy times",
        holding()
    );
}

#[test]
fn bad_input_is_unknown_and_says_why() {
    let h = Harness::new();
    let plugin = h.open_with(&calendar_config(&h));
    assert_eq!(plugin.presence(ACCOUNT), (UNKNOWN, 0));
    let api = plugin.api();
    // until_out may be NULL.
    let presence =
        unsafe { (api.gi_presence)(plugin.raw(), c"example.com".as_ptr(), std::ptr::null_mut()) };
    assert_eq!(presence, UNKNOWN);
    let mut until = 5i64;
    let presence =
        unsafe { (api.gi_presence)(std::ptr::null_mut(), c"example.com".as_ptr(), &mut until) };
    assert_eq!((presence, until), (UNKNOWN, 0));
    assert!(api.last_error().contains("NULL"));
    let presence = unsafe { (api.gi_presence)(plugin.raw(), std::ptr::null(), &mut until) };
    assert_eq!((presence, until), (UNKNOWN, 0));
    assert!(api.last_error().contains("NULL"));
    let presence = unsafe { (api.gi_presence)(plugin.raw(), c"bad\ncontrol".as_ptr(), &mut until) };
    assert_eq!(presence, UNKNOWN);
    assert!(api.last_error().contains("control"));
    let invalid = [0x61u8, 0xff, 0xfe, 0];
    let presence = unsafe { (api.gi_presence)(plugin.raw(), invalid.as_ptr().cast(), &mut until) };
    assert_eq!((presence, until), (UNKNOWN, 0));
    assert!(api.last_error().contains("UTF-8"), "{}", api.last_error());
}

#[test]
fn presence_answers_while_a_fetch_waits_on_google() {
    let h = Harness::new();
    let (plugin, t) = connected_in_a_meeting(&h);
    // Google hangs on the next fetch; presence answers from memory meanwhile.
    h.fake.set_sticky_fault(
        Endpoint::Calendar,
        Some(Fault::Delay(Duration::from_secs(5))),
    );
    let before = calendar_requests(&h);
    plugin.sync_now(ACCOUNT).unwrap();
    let in_flight = |h: &Harness| {
        h.fake
            .requests_to(Endpoint::Calendar)
            .iter()
            .skip(before)
            .any(|r| r.status == 0)
    };
    assert!(wait_until(PATIENCE, || in_flight(&h)), "no fetch went out");
    assert_eq!(plugin.presence(ACCOUNT), (BUSY, t + 3600));
    assert_eq!(plugin.status_value(ACCOUNT)["presence"]["state"], "busy");
    assert!(
        in_flight(&h),
        "the answers came while Google was still being asked"
    );
    h.fake.set_sticky_fault(Endpoint::Calendar, None);
}

#[test]
fn an_oversized_or_endless_calendar_reply_is_cut_off_and_named() {
    let h = Harness::new();
    let (plugin, t) = connected_in_a_meeting(&h);
    // 40 MiB of a JSON object that never closes, with no Content-Length: read to the 32 MiB
    // cap, refused, and the presence already known kept.
    h.fake.set_sticky_fault(
        Endpoint::Calendar,
        Some(Fault::Huge {
            bytes: 40 << 20,
            content_length: false,
        }),
    );
    plugin.sync_now(ACCOUNT).unwrap();
    let status = wait_for_reason(&plugin, ACCOUNT, "Google Calendar API");
    assert_eq!(status["status"], "issue", "{status}");
    assert_eq!(plugin.presence(ACCOUNT), (BUSY, t + 3600));
    h.fake.set_sticky_fault(Endpoint::Calendar, None);
    plugin.sync_now(ACCOUNT).unwrap();
    assert!(wait_until(PATIENCE, || plugin.status(ACCOUNT)
        == GiStatus::GI_STATUS_CONNECTED));
}

/// On a shared PostgreSQL store, a calendar answer that lands while another node deletes the
/// account (a disable or a reconnect there) must not outlive it: the write waits for the
/// delete and finds the account gone. A bare existence check took no lock, so the answer
/// was written after the delete had erased the busy times, and stayed (personal data of an
/// account that is gone, never cleaned up, as the account's other rows join on it).
///
/// The delete is held open only once the fetch is on its way to Google (whose answer is
/// slowed to land well after) and the contacts sync that "Sync now" also starts has landed:
/// held open before, the contacts sync reached the store first and waited there for the
/// delete with the node's one connection, and the fetch behind it never asked Google (CI,
/// a loaded machine: 30 s without a calendar request); landing after, it would hold the
/// answer's write back until the delete ends, and the write would not race the delete.
#[test]
fn a_calendar_answer_landing_while_another_node_deletes_the_account_leaves_nothing() {
    const ANSWER_AFTER: Duration = Duration::from_secs(3);
    let h = Harness::on_postgres();
    let (plugin, _) = connected_in_a_meeting(&h);
    let pg = h.pg.as_ref().expect("on PostgreSQL");
    let mut other_node = pg.server.client(&pg.url);
    h.fake
        .set_sticky_fault(Endpoint::Calendar, Some(Fault::Delay(ANSWER_AFTER)));
    let asked = calendar_requests(&h);
    let listed = h.fake.requests_to(Endpoint::People).len();
    plugin.sync_now(ACCOUNT).unwrap();
    assert!(wait_until(PATIENCE, || calendar_requests(&h) > asked));
    let asked_at = std::time::Instant::now();
    assert!(wait_until(PATIENCE, || {
        h.fake.requests_to(Endpoint::People).len() > listed
            && plugin.status_value(ACCOUNT)["syncing"] == false
    }));
    // The other node's delete, as `delete_account` makes it, held open.
    let mut delete = other_node.transaction().unwrap();
    delete
        .execute("DELETE FROM accounts WHERE account = $1", &[&ACCOUNT])
        .unwrap();
    delete
        .execute("DELETE FROM presence WHERE account = $1", &[&ACCOUNT])
        .unwrap();
    assert!(
        asked_at.elapsed() < ANSWER_AFTER,
        "the delete began after the answer was due: the test proves nothing on a machine this slow"
    );
    // Time for the answer to come and reach the store, where it waits for the delete.
    std::thread::sleep(ANSWER_AFTER + Duration::from_millis(500));
    delete.commit().unwrap();
    h.fake.set_sticky_fault(Endpoint::Calendar, None);
    drop(plugin); // waits for the fetch to end, one way or the other
    assert_eq!(
        store_query(&h, "SELECT account FROM presence"),
        Vec::<Vec<String>>::new()
    );
}
