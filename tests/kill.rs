//! A PBX killed (SIGKILL) in the middle of a sync reopens with the last complete state: the
//! database never holds half a sync. The child process is this test binary run again with
//! `--ignored --exact child_process_syncs_until_killed`, so it loads the plugin through the C
//! ABI exactly like the parent; the fake Google lives in the parent and outlives the child.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use host_sim::fake_google::{Endpoint, Fault, Person};

const ACCOUNT: &str = "example.com";
const CHILD_ENV: &str = "GI_KILL_TEST_CONFIG";

fn people(version: &str, count: usize) -> Vec<Person> {
    (0..count)
        .map(|i| {
            Person::new(
                &format!("people/c{}", 5000 + i),
                version,
                &format!("Person{i:04}"),
            )
            .with_phone(&format!("+1 212 555 {:04}", i), "mobile")
        })
        .collect()
}

/// Which version every contact shows: the state must be wholly one or wholly the other.
fn versions_seen(h: &Harness, count: usize) -> Vec<String> {
    let plugin = h.open();
    let mut seen: Vec<String> = (0..count)
        .map(|i| {
            plugin
                .lookup(ACCOUNT, &format!("+1212555{i:04}"))
                .unwrap()
                .map_or("missing".into(), |c| {
                    c.name.split(' ').next().unwrap().to_owned()
                })
        })
        .collect();
    drop(plugin);
    seen.sort();
    seen.dedup();
    seen
}

fn integrity(h: &Harness) -> String {
    read_db(h, |db| {
        db.query_row("PRAGMA integrity_check", [], |r| r.get::<_, String>(0))
            .unwrap()
    })
}

fn spawn_child(h: &Harness) -> std::process::Child {
    spawn_child_with(&h.config())
}

fn spawn_child_with(config: &serde_json::Value) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "child_process_syncs_until_killed",
            "--nocapture",
        ])
        .env(CHILD_ENV, config.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the child")
}

#[test]
#[ignore = "not a test: the child process of the kill tests"]
fn child_process_syncs_until_killed() {
    let Ok(config) = std::env::var(CHILD_ENV) else {
        return;
    };
    let plugin = Harness::open_config(&serde_json::from_str(&config).unwrap());
    plugin.sync_now(ACCOUNT).unwrap();
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

#[test]
fn a_process_killed_while_fetching_pages_reopens_with_the_previous_sync() {
    let h = Harness::new();
    const N: usize = 200;
    h.fake.set_contacts(ALICE, people("Old", N));
    h.fake.set_page_size_cap(40);
    {
        let plugin = h.open();
        h.connect_and_sync(&plugin, ACCOUNT, ALICE);
    }
    h.fake.set_contacts(ALICE, people("New", N));
    h.fake.expire_sync_tokens(ALICE);
    for _ in 0..8 {
        h.fake
            .inject(Endpoint::People, Fault::Delay(Duration::from_millis(300)));
    }
    let before = h.fake.requests_to(Endpoint::People).len();
    let mut child = spawn_child(&h);
    assert!(
        wait_until(PATIENCE, || h.fake.requests_to(Endpoint::People).len()
            >= before + 3),
        "the child started syncing"
    );
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    assert_eq!(integrity(&h), "ok");
    assert_eq!(
        versions_seen(&h, N),
        vec!["Old".to_owned()],
        "the killed sync left nothing behind"
    );

    // The next sync completes and lands whole.
    h.fake.clear_faults();
    let plugin = h.open();
    let before = h.fake.requests_to(Endpoint::People).len();
    plugin.sync_now(ACCOUNT).unwrap();
    wait_for_people_requests(&h, &plugin, ACCOUNT, before, 2);
    drop(plugin);
    assert_eq!(versions_seen(&h, N), vec!["New".to_owned()]);
}

#[test]
fn a_process_killed_at_any_moment_of_a_large_sync_leaves_one_whole_state() {
    let h = Harness::new();
    const N: usize = 2000;
    h.fake.set_contacts(ALICE, people("V0", N));
    {
        let plugin = h.open();
        h.connect_and_sync(&plugin, ACCOUNT, ALICE);
    }
    // Kill at spread-out moments, so some kills land while fetching and some while committing.
    let mut outcomes = Vec::new();
    for (round, delay_ms) in [20u64, 60, 120, 200, 350, 600].into_iter().enumerate() {
        h.fake
            .set_contacts(ALICE, people(&format!("V{}", round + 1), N));
        h.fake.expire_sync_tokens(ALICE);
        let before = h.fake.requests_to(Endpoint::People).len();
        let mut child = spawn_child(&h);
        wait_until(PATIENCE, || {
            h.fake.requests_to(Endpoint::People).len() > before
        });
        std::thread::sleep(Duration::from_millis(delay_ms));
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(integrity(&h), "ok", "round {round}");
        let seen = versions_seen(&h, N);
        assert_eq!(seen.len(), 1, "round {round}: a mix of versions {seen:?}");
        outcomes.push(seen[0].clone());
    }
    eprintln!("state after each kill: {outcomes:?}");
}

/// The three contact sources of Alice (her organisation's directory for `directory`): where
/// each is seeded, which endpoint serves it, and the first digit of its numbers.
const SOURCES: [(&str, Endpoint, usize); 3] = [
    ("contacts", Endpoint::People, 1),
    ("directory", Endpoint::Directory, 2),
    ("other_contacts", Endpoint::OtherContacts, 3),
];

fn seed_source(h: &Harness, source: &str, version: &str, count: usize) {
    let digit = SOURCES.iter().find(|s| s.0 == source).unwrap().2;
    let people: Vec<Person> = (0..count)
        .map(|i| {
            let resource = match source {
                "contacts" => format!("people/c{}", 5000 + i),
                "directory" => format!("people/1{i:06}"),
                _ => format!("otherContacts/c{}", 5000 + i),
            };
            Person::new(&resource, version, &format!("Person{i:04}"))
                .with_phone(&format!("+1 212 55{digit} {i:04}"), "mobile")
        })
        .collect();
    match source {
        "contacts" => h.fake.set_contacts(ALICE, people),
        "directory" => h.fake.set_directory("example.com", people),
        _ => h.fake.set_other_contacts(ALICE, people),
    }
}

/// Which versions each source shows, in `SOURCES` order.
fn versions_by_source(h: &Harness, config: &serde_json::Value, count: usize) -> Vec<Vec<String>> {
    let plugin = h.open_with(config);
    let seen = SOURCES
        .iter()
        .map(|&(source, _, digit)| {
            let mut seen: Vec<String> = (0..count)
                .map(|i| {
                    let found = plugin
                        .lookup(ACCOUNT, &format!("+121255{digit}{i:04}"))
                        .unwrap();
                    found.map_or("missing".into(), |c| {
                        assert_eq!(c.source, source);
                        c.name.split(' ').next().unwrap().to_owned()
                    })
                })
                .collect();
            seen.sort();
            seen.dedup();
            seen
        })
        .collect();
    drop(plugin);
    seen
}

#[test]
fn a_process_killed_while_fetching_any_source_leaves_every_source_whole() {
    const N: usize = 120;
    for (target, (name, endpoint, _)) in SOURCES.into_iter().enumerate() {
        let h = Harness::new();
        let mut config = h.config();
        config["sources"] = serde_json::json!(["contacts", "directory", "other_contacts"]);
        for (source, _, _) in SOURCES {
            seed_source(&h, source, "Old", N);
        }
        h.fake.set_page_size_cap(30);
        {
            let plugin = h.open_with(&config);
            h.connect_and_sync(&plugin, ACCOUNT, ALICE);
        }
        for (source, _, _) in SOURCES {
            seed_source(&h, source, "New", N);
        }
        h.fake.expire_sync_tokens(ALICE);
        for _ in 0..6 {
            h.fake
                .inject(endpoint, Fault::Delay(Duration::from_millis(300)));
        }
        let before = h.fake.requests_to(endpoint).len();
        let mut child = spawn_child_with(&config);
        assert!(
            wait_until(PATIENCE, || h.fake.requests_to(endpoint).len()
                >= before + 3),
            "{name}: the child started fetching it"
        );
        child.kill().unwrap(); // SIGKILL, while the target source's pages come in
        child.wait().unwrap();
        assert_eq!(integrity(&h), "ok");
        let seen = versions_by_source(&h, &config, N);
        // The killed source is untouched; the others (syncing beside it) landed whole or
        // not at all.
        for (at, versions) in seen.iter().enumerate() {
            if at == target {
                assert_eq!(
                    versions,
                    &["Old".to_owned()],
                    "killed while fetching {name}"
                );
            } else {
                assert_eq!(
                    versions.len(),
                    1,
                    "killed while fetching {name}: source #{at} {versions:?}"
                );
            }
        }

        // The next sync completes every source and lands each whole.
        h.fake.clear_faults();
        let plugin = h.open_with(&config);
        plugin.sync_now(ACCOUNT).unwrap();
        assert!(wait_until(PATIENCE, || {
            let s = plugin.status_value(ACCOUNT);
            s["syncing"] == false
                && SOURCES
                    .iter()
                    .all(|(source, _, _)| s["sources"][source]["last_error"].is_null())
                && SOURCES.iter().all(|&(_, _, digit)| {
                    plugin
                        .lookup(ACCOUNT, &format!("+121255{digit}0000"))
                        .unwrap()
                        .is_some_and(|c| c.name.starts_with("New"))
                })
        }));
        drop(plugin);
        assert_eq!(
            versions_by_source(&h, &config, N),
            vec![vec!["New".to_owned()]; 3],
            "{name}"
        );
    }
}

#[test]
fn a_data_dir_in_use_by_another_process_is_refused_until_that_process_dies() {
    let h = Harness::new();
    h.fake.set_contacts(ALICE, people("Old", 10));
    {
        let plugin = h.open();
        h.connect_and_sync(&plugin, ACCOUNT, ALICE);
    }
    // The child keeps the plugin open (and a sync stuck in a slow reply) until it is killed.
    h.fake
        .inject(Endpoint::People, Fault::Delay(Duration::from_secs(30)));
    let before = h.fake.requests_to(Endpoint::People).len();
    let mut child = spawn_child(&h);
    assert!(
        wait_until(PATIENCE, || h.fake.requests_to(Endpoint::People).len()
            > before),
        "the child opened the plugin and started syncing"
    );
    let err = host_sim::plugin::Plugin::open(api(), &h.config().to_string())
        .err()
        .expect("the data_dir is another process's");
    assert!(err.message.contains("in use"), "{}", err.message);
    child.kill().unwrap(); // SIGKILL: the OS lets go of the lock with the process
    child.wait().unwrap();
    let plugin = h.open();
    assert!(plugin.lookup(ACCOUNT, "+12125550001").unwrap().is_some());
}
