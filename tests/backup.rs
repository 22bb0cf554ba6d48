//! gi_backup through the C ABI: a consistent copy while syncs go on, that another data_dir
//! opens (with the same key) with every account connected and every contact present; an
//! existing path refused; the copy private.

mod common;

use std::os::unix::fs::PermissionsExt;

use common::*;
use host_sim::fake_google::Person;
use host_sim::plugin::{GiResult, GiStatus};

fn book(count: usize) -> Vec<Person> {
    (0..count)
        .map(|i| {
            Person::new(&format!("people/c{i}"), "Person", &format!("{i:05}"))
                .with_phone(&format!("+1 212 555 {:04}", i % 10_000), "mobile")
        })
        .collect()
}

#[test]
fn a_backup_taken_while_syncs_run_opens_elsewhere_connected_with_every_contact() {
    let h = Harness::new();
    h.fake.set_contacts(ALICE, book(3000));
    h.fake.set_contacts(BOB, book(10));
    let plugin = h.open();
    h.connect_and_sync(&plugin, "example.com", ALICE);
    h.connect_and_sync(&plugin, "example.com/40", BOB);

    // Syncs run back to back while the backup is taken.
    let copy = h.data_dir().join("backup.sqlite3");
    std::thread::scope(|scope| {
        let syncing = scope.spawn(|| {
            for _ in 0..3 {
                h.fake.expire_sync_tokens(ALICE);
                plugin.sync_now("example.com").unwrap();
                wait_for_sync(&plugin, "example.com", 1);
            }
        });
        plugin.backup(&copy).expect("gi_backup");
        syncing.join().unwrap();
    });
    let mode = std::fs::metadata(&copy).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the copy holds sealed tokens: private");

    // An existing path is refused, and left as it was.
    let err = plugin.backup(&copy).unwrap_err();
    assert_eq!(err.code, GiResult::GI_ERR_STORAGE);
    assert!(err.message.contains("backup.sqlite3"), "{}", err.message);
    drop(plugin);

    // Another node: the copy as its database, the same key, Google unreachable.
    let (_node, other) = h.open_backup_elsewhere(&copy);
    for account in ["example.com", "example.com/40"] {
        assert_eq!(
            other.status(account),
            GiStatus::GI_STATUS_CONNECTED,
            "{account}"
        );
    }
    assert_eq!(other.status_value("example.com")["contacts"], 3000);
    assert_eq!(other.status_value("example.com/40")["contacts"], 10);
    let caller = other
        .lookup("example.com", "+12125552999")
        .unwrap()
        .unwrap();
    assert_eq!(caller.name, "Person 02999");
}

#[test]
fn backup_arguments_are_checked() {
    let h = Harness::new();
    let plugin = h.open();
    let err = plugin
        .backup(&h.data_dir().join("no/such/dir/copy"))
        .unwrap_err();
    assert_eq!(err.code, GiResult::GI_ERR_STORAGE);
    let code = unsafe { (plugin.api().gi_backup)(plugin.raw(), std::ptr::null()) };
    assert_eq!(code, GiResult::GI_ERR_INVALID_ARGUMENT);
    let code = unsafe { (plugin.api().gi_backup)(std::ptr::null_mut(), c"x".as_ptr()) };
    assert_eq!(code, GiResult::GI_ERR_INVALID_ARGUMENT);
}
