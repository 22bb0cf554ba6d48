//! Every bad input the contract names, through the raw C ABI: NULL pointers, invalid UTF-8,
//! bad accounts, buffers too small, and configurations that must fail naming their field.

mod common;

use std::ffi::{c_char, CString};
use std::ptr;

use common::*;
use host_sim::fake_google::Person;
use host_sim::plugin::{Caller, GiContact, GiResult, GiSearchMode, GiStatus, Plugin};
use serde_json::json;

fn cstr(s: &str) -> CString {
    CString::new(s).unwrap()
}

#[test]
fn version_is_a_static_semver_string() {
    let version = api().version();
    assert_eq!(version.split('.').count(), 3, "{version}");
}

#[test]
fn null_pointers_are_invalid_arguments() {
    let h = Harness::new();
    let plugin = h.open();
    let api = api();
    let p = plugin.raw();
    let account = cstr("example.com/40");
    let mut buf = [0 as c_char; 64];
    let mut len = 0usize;
    let mut contact = GiContact::default();
    unsafe {
        assert!((api.gi_open)(ptr::null()).is_null());
        assert!(api.last_error().contains("config_json"));
        assert_eq!(
            (api.gi_auth_url)(
                ptr::null_mut(),
                account.as_ptr(),
                buf.as_mut_ptr(),
                64,
                &mut len
            ),
            GiResult::GI_ERR_INVALID_ARGUMENT
        );
        assert!(
            api.last_error().contains("plugin is NULL"),
            "{}",
            api.last_error()
        );
        assert_eq!(
            (api.gi_auth_url)(p, ptr::null(), buf.as_mut_ptr(), 64, &mut len),
            GiResult::GI_ERR_INVALID_ARGUMENT
        );
        assert!(api.last_error().contains("account is NULL"));
        assert_eq!(
            (api.gi_complete)(p, ptr::null(), ptr::null_mut(), 0),
            GiResult::GI_ERR_INVALID_ARGUMENT
        );
        assert_eq!(
            (api.gi_complete)(ptr::null_mut(), account.as_ptr(), ptr::null_mut(), 0),
            GiResult::GI_ERR_INVALID_ARGUMENT
        );
        assert_eq!(
            (api.gi_status)(ptr::null_mut(), account.as_ptr()),
            GiStatus::GI_STATUS_DISCONNECTED
        );
        assert_eq!(
            (api.gi_status)(p, ptr::null()),
            GiStatus::GI_STATUS_DISCONNECTED
        );
        assert_eq!(
            (api.gi_status_json)(p, ptr::null(), buf.as_mut_ptr(), 64, &mut len),
            GiResult::GI_ERR_INVALID_ARGUMENT
        );
        assert_eq!(
            (api.gi_status_json)(
                ptr::null_mut(),
                account.as_ptr(),
                buf.as_mut_ptr(),
                64,
                &mut len
            ),
            GiResult::GI_ERR_INVALID_ARGUMENT
        );
        assert_eq!(
            (api.gi_disable)(ptr::null_mut(), account.as_ptr()),
            GiResult::GI_ERR_INVALID_ARGUMENT
        );
        assert_eq!(
            (api.gi_disable)(p, ptr::null()),
            GiResult::GI_ERR_INVALID_ARGUMENT
        );
        assert_eq!(
            (api.gi_sync_now)(ptr::null_mut(), account.as_ptr()),
            GiResult::GI_ERR_INVALID_ARGUMENT
        );
        assert_eq!(
            (api.gi_sync_now)(p, ptr::null()),
            GiResult::GI_ERR_INVALID_ARGUMENT
        );
        let number = cstr("+12125550199");
        assert_eq!(
            (api.gi_lookup_contact)(p, account.as_ptr(), number.as_ptr(), ptr::null_mut()),
            GiResult::GI_ERR_INVALID_ARGUMENT
        );
        assert_eq!(
            (api.gi_lookup_contact)(
                ptr::null_mut(),
                account.as_ptr(),
                number.as_ptr(),
                &mut contact
            ),
            GiResult::GI_ERR_INVALID_ARGUMENT
        );
        assert_eq!(
            (api.gi_lookup_contact)(p, ptr::null(), number.as_ptr(), &mut contact),
            GiResult::GI_ERR_INVALID_ARGUMENT
        );
        assert_eq!(
            (api.gi_lookup_contact)(p, account.as_ptr(), ptr::null(), &mut contact),
            GiResult::GI_ERR_INVALID_ARGUMENT
        );
        assert!(contact.is_zeroed());
        (api.gi_close)(ptr::null_mut());
        (api.gi_set_logger)(None, ptr::null_mut());
    }
}

#[test]
fn bad_accounts_and_bad_utf8_are_invalid_arguments() {
    let h = Harness::new();
    let plugin = h.open();
    let api = api();
    let long = "a".repeat(256);
    for bad in [
        long.as_str(),
        "",
        "example.com/\n40",
        "tab\tin",
        "del\u{7f}",
    ] {
        let err = plugin.auth_url(bad).unwrap_err();
        assert_eq!(err.code, GiResult::GI_ERR_INVALID_ARGUMENT, "{bad:?}");
        assert_eq!(
            plugin.disable(bad).unwrap_err().code,
            GiResult::GI_ERR_INVALID_ARGUMENT
        );
        assert_eq!(
            plugin.sync_now(bad).unwrap_err().code,
            GiResult::GI_ERR_INVALID_ARGUMENT
        );
        assert_eq!(
            plugin.lookup(bad, "+12125550199").unwrap_err().code,
            GiResult::GI_ERR_INVALID_ARGUMENT
        );
        assert_eq!(plugin.status(bad), GiStatus::GI_STATUS_DISCONNECTED);
    }
    assert!(
        plugin.auth_url(&"a".repeat(255)).is_ok(),
        "255 bytes is allowed"
    );
    assert!(plugin.auth_url(&long).unwrap_err().message.contains("255"));

    let bad_utf8: &[u8] = b"example.com/\xff\xfe\0";
    let number_bad_utf8: &[u8] = b"+1212\xc3\x28\0";
    let good = cstr("example.com/40");
    let number = cstr("+12125550199");
    let mut contact = GiContact::default();
    unsafe {
        assert_eq!(
            (api.gi_status)(plugin.raw(), bad_utf8.as_ptr().cast()),
            GiStatus::GI_STATUS_DISCONNECTED
        );
        assert_eq!(
            (api.gi_disable)(plugin.raw(), bad_utf8.as_ptr().cast()),
            GiResult::GI_ERR_INVALID_ARGUMENT
        );
        assert!(api.last_error().contains("UTF-8"), "{}", api.last_error());
        assert_eq!(
            (api.gi_lookup_contact)(
                plugin.raw(),
                bad_utf8.as_ptr().cast(),
                number.as_ptr(),
                &mut contact
            ),
            GiResult::GI_ERR_INVALID_ARGUMENT
        );
        assert_eq!(
            (api.gi_lookup_contact)(
                plugin.raw(),
                good.as_ptr(),
                number_bad_utf8.as_ptr().cast(),
                &mut contact
            ),
            GiResult::GI_ERR_INVALID_ARGUMENT
        );
        assert_eq!(
            (api.gi_complete)(plugin.raw(), bad_utf8.as_ptr().cast(), ptr::null_mut(), 0),
            GiResult::GI_ERR_INVALID_ARGUMENT
        );
    }
}

#[test]
fn the_buffer_protocol_reports_the_length_and_writes_nothing_when_short() {
    let h = Harness::new();
    let plugin = h.open();
    let api = api();
    let account = cstr("example.com/40");
    let mut len = 0usize;
    unsafe {
        assert_eq!(
            (api.gi_status_json)(plugin.raw(), account.as_ptr(), ptr::null_mut(), 0, &mut len),
            GiResult::GI_ERR_BUFFER_TOO_SMALL
        );
        assert!(len > 10);
        // Exactly the length is one byte short (no room for the NUL): nothing is written.
        let mut buf = vec![b'#' as c_char; len];
        let mut len2 = 0usize;
        assert_eq!(
            (api.gi_status_json)(
                plugin.raw(),
                account.as_ptr(),
                buf.as_mut_ptr(),
                len,
                &mut len2
            ),
            GiResult::GI_ERR_BUFFER_TOO_SMALL
        );
        assert_eq!(len2, len);
        assert!(
            buf.iter().all(|&b| b == b'#' as c_char),
            "nothing written when too small"
        );
        let mut buf = vec![0 as c_char; len + 1];
        assert_eq!(
            (api.gi_status_json)(
                plugin.raw(),
                account.as_ptr(),
                buf.as_mut_ptr(),
                len + 1,
                &mut len2
            ),
            GiResult::GI_OK
        );
        assert_eq!(buf[len], 0);
        let text: Vec<u8> = buf[..len].iter().map(|&b| b as u8).collect();
        serde_json::from_slice::<serde_json::Value>(&text).expect("a whole JSON object");

        // len_out is not optional: without it a host learns nothing (and an auth URL asked
        // for so would store a state no one can use).
        for call in [api.gi_status_json, api.gi_auth_url] {
            assert_eq!(
                call(
                    plugin.raw(),
                    account.as_ptr(),
                    buf.as_mut_ptr(),
                    len + 1,
                    ptr::null_mut()
                ),
                GiResult::GI_ERR_INVALID_ARGUMENT
            );
            assert!(
                api.last_error().contains("len_out is NULL"),
                "{}",
                api.last_error()
            );
        }
    }
    drop(plugin);
    let pending = store_query(&h, "SELECT count(*) FROM pending_auth");
    assert_eq!(pending, [["0"]], "no state was stored for the refused call");
}

/// A call may be handed fields of the very struct it fills: legal C (the prototypes have no
/// `restrict`), as when a PBX re-resolves an earlier answer. The plugin zeroes and fills the
/// struct; it must read its arguments first.
#[test]
fn a_lookup_or_search_may_be_handed_fields_of_the_contacts_it_fills() {
    let h = Harness::new();
    h.fake.set_contacts(
        ALICE,
        vec![
            Person::new("people/c1", "Ada", "Lovelace").with_phone("+1 212 555 0100", "mobile"),
            Person::new("people/c2", "Bob", "Builder").with_phone("+1 212 555 0101", "work"),
        ],
    );
    let plugin = h.open();
    h.connect_and_sync(&plugin, "example.com/40", ALICE);
    let api = api();
    let account = cstr("example.com/40");
    let number = cstr("+12125550100");
    let mut answer = GiContact::default();
    unsafe {
        assert_eq!(
            (api.gi_lookup_contact)(plugin.raw(), account.as_ptr(), number.as_ptr(), &mut answer),
            GiResult::GI_OK
        );
        let first = Caller::from(&answer);
        assert_eq!(first.name, "Ada Lovelace");
        // Again, with the answer's own account and number.
        let out: *mut GiContact = &mut answer;
        assert_eq!(
            (api.gi_lookup_contact)(
                plugin.raw(),
                ptr::addr_of!((*out).account).cast(),
                ptr::addr_of!((*out).number).cast(),
                out
            ),
            GiResult::GI_OK,
            "{}",
            api.last_error()
        );
        assert_eq!(Caller::from(&answer), first);

        // A search for the first row's name, into the rows.
        let mut rows = [GiContact::default(); 4];
        let (mut count, mut total) = (0usize, 0usize);
        rows[0] = answer;
        let out = rows.as_mut_ptr();
        assert_eq!(
            (api.gi_search_contacts)(
                plugin.raw(),
                ptr::addr_of!((*out).account).cast(),
                ptr::addr_of!((*out).name).cast(),
                GiSearchMode::GI_SEARCH_TEXT,
                0,
                out,
                4,
                &mut count,
                &mut total
            ),
            GiResult::GI_OK,
            "{}",
            api.last_error()
        );
        assert_eq!((count, total), (1, 1), "only Ada Lovelace's row");
        assert_eq!(Caller::from(&rows[0]), first);
    }
}

/// Set in the child process of the test below.
const CALL_AT_THREAD_EXIT: &str = "GI_TEST_CALL_AT_THREAD_EXIT";

/// A host may call the plugin as a thread ends (from a C++ `thread_local`'s destructor or a
/// pthread key's), after the plugin's own thread-locals are gone. A failing call then panicked
/// where it records its message, and the panic boundary's own record of it panicked again
/// outside the boundary: the PBX process aborted. The message is dropped instead; the call
/// answers as it would.
#[test]
fn a_failing_call_as_a_thread_ends_does_not_abort_the_process() {
    if std::env::var_os(CALL_AT_THREAD_EXIT).is_some() {
        struct CallsAtExit;
        impl Drop for CallsAtExit {
            fn drop(&mut self) {
                let account = cstr("example.com");
                // SAFETY: a NULL plugin and a valid string, as the contract allows.
                let status = unsafe { (api().gi_status)(ptr::null_mut(), account.as_ptr()) };
                let mut buf = [0 as c_char; 16];
                // SAFETY: a buffer of 16 bytes.
                let len = unsafe { (api().gi_last_error)(buf.as_mut_ptr(), buf.len()) };
                use std::io::Write;
                let _ = writeln!(
                    std::io::stdout(),
                    "called as the thread ended: {status:?} {len}"
                );
            }
        }
        thread_local! { static AT_EXIT: CallsAtExit = const { CallsAtExit }; }
        std::thread::spawn(|| {
            // Registered before the plugin's thread-local message: destroyed after it.
            AT_EXIT.with(|_| {});
            let account = cstr("example.com");
            // SAFETY: as above.
            unsafe { (api().gi_status)(ptr::null_mut(), account.as_ptr()) };
        })
        .join()
        .unwrap();
        return;
    }
    let child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_failing_call_as_a_thread_ends_does_not_abort_the_process",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CALL_AT_THREAD_EXIT, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&child.stdout);
    assert!(
        child.status.success(),
        "{:?}\n{stdout}\n{}",
        child.status,
        String::from_utf8_lossy(&child.stderr)
    );
    assert!(
        stdout.contains("called as the thread ended: GI_STATUS_DISCONNECTED 0"),
        "{stdout}"
    );
}

#[test]
fn gi_complete_cuts_the_account_to_fit_and_last_error_is_per_thread() {
    let h = Harness::new();
    let plugin = h.open();
    let api = api();
    let url = plugin.auth_url("example.com/40").unwrap();
    let callback = cstr(&h.fake.approve(&url, ALICE).unwrap());
    let mut small = [b'#' as c_char; 8];
    unsafe {
        assert_eq!(
            (api.gi_complete)(
                plugin.raw(),
                callback.as_ptr(),
                small.as_mut_ptr(),
                small.len()
            ),
            GiResult::GI_OK
        );
    }
    let written: Vec<u8> = small
        .iter()
        .take_while(|&&b| b != 0)
        .map(|&b| b as u8)
        .collect();
    assert_eq!(written, b"example");

    // A failure on one thread does not show up as another thread's last error.
    assert_eq!(
        plugin.disable("bad\naccount").unwrap_err().code,
        GiResult::GI_ERR_INVALID_ARGUMENT
    );
    let mine = api.last_error();
    let theirs = std::thread::scope(|s| s.spawn(|| api.last_error()).join().unwrap());
    assert!(mine.contains("control character"), "{mine}");
    assert_eq!(theirs, "");
}

fn open_error(config: serde_json::Value) -> String {
    match Plugin::open(api(), &config.to_string()) {
        Ok(_) => panic!("gi_open accepted {config}"),
        Err(e) => e.message,
    }
}

#[test]
fn bad_configuration_fails_naming_the_field() {
    let h = Harness::new();
    let base = h.config();
    for field in ["client_id", "client_secret", "redirect_uri", "data_dir"] {
        let mut config = base.clone();
        config.as_object_mut().unwrap().remove(field);
        assert!(open_error(config).contains(field), "missing {field}");
    }
    let mut config = base.clone();
    config["colour"] = json!("blue");
    assert!(open_error(config).contains("colour"));
    let mut config = base.clone();
    config["google"]["token_url"] = json!("http://oauth2.example.com/token");
    let message = open_error(config);
    assert!(
        message.contains("google.token_url") && message.contains("https"),
        "{message}"
    );
    let mut config = base.clone();
    config["google"]["people_url"] = json!("not a url");
    assert!(open_error(config).contains("google.people_url"));
    let mut config = base.clone();
    config["redirect_uri"] = json!("ftp://pbx.example.com/cb");
    assert!(open_error(config).contains("redirect_uri"));
    let mut config = base.clone();
    config["default_region"] = json!("XX");
    assert!(open_error(config).contains("default_region"));
    let mut config = base.clone();
    config["domains"] = json!({"acme.de": {"region": "ZZ"}});
    assert!(open_error(config).contains("domains.acme.de.region"));
    let mut config = base.clone();
    config["domains"] = json!({"acme.de": {"client_secret": "x", "colour": 1}});
    assert!(open_error(config).contains("colour"));
    let mut config = base.clone();
    config["domains"] = json!({"acme.de": {}, "ACME.de.": {"region": "DE"}});
    assert!(open_error(config).contains("two sections name the domain acme.de"));
    let mut config = base.clone();
    config["client_id"] = json!("");
    assert!(open_error(config).contains("client_id"));
    let mut config = base.clone();
    config["sync_interval_secs"] = json!(0);
    assert!(open_error(config).contains("sync_interval_secs"));
    // The contract's bounds, each failing with the field named (a huge interval once made
    // every sync worker die on an overflow).
    for (field, value) in [
        ("sync_interval_secs", json!(18446744073709551615u64)),
        ("sync_interval_secs", json!(604801)),
        ("presence_interval_secs", json!(9)),
        ("presence_interval_secs", json!(3601)),
        ("google_requests_per_minute", json!(0)),
        ("google_requests_per_minute", json!(100001)),
        ("retry_base_ms", json!(0)),
        // Outside the bounds too, though not of the field's type: serde's message alone named
        // no field ("invalid value: integer `-1`, expected u64 at line 1 column 80").
        ("sync_interval_secs", json!(-1)),
        ("sync_interval_secs", json!("600")),
        ("presence_interval_secs", json!(1.5)),
        ("google_requests_per_minute", json!(-600)),
        ("retry_base_ms", json!(1e30)),
        ("calendar", json!("yes")),
        ("contact_groups", json!("Customers")),
    ] {
        let mut config = base.clone();
        config[field] = value.clone();
        let message = open_error(config);
        assert!(message.contains(field), "{field} = {value}: {message}");
    }
    let mut config = base.clone();
    config["domains"] = json!({"acme.de": {"calendar": "yes"}});
    let message = open_error(config);
    assert!(message.contains("domains.acme.de.calendar"), "{message}");
    assert!(
        open_error(json!({"client_id": 1})).contains("client_id"),
        "a required field of the wrong type"
    );
    match Plugin::open(api(), &format!("{} trailing", base)) {
        Ok(_) => panic!("accepted JSON followed by more"),
        Err(e) => assert!(e.message.contains("configuration"), "{}", e.message),
    }
    let mut config = base.clone();
    config["sources"] = json!(["contacts", "calendar"]);
    assert!(open_error(config).contains("\"calendar\""));
    let mut config = base.clone();
    config["sources"] = json!([]);
    assert!(open_error(config).contains("sources"));
    let mut config = base.clone();
    config["domains"] = json!({"acme.de": {"sources": ["nope"]}});
    assert!(open_error(config).contains("domains.acme.de.sources"));
    let mut config = base.clone();
    config["store"] = json!("postgresql://pbx:hunter2@db.example.com/pbx");
    let message = open_error(config);
    assert!(
        message.contains("store") && !message.contains("hunter2"),
        "{message}"
    );
    let mut config = base.clone();
    config["data_dir"] = json!("/proc/self/not-here");
    assert!(open_error(config).contains("data_dir"));
    let blocker = h.data_dir().join("a-file");
    std::fs::write(&blocker, b"").unwrap();
    let mut config = base.clone();
    config["data_dir"] = json!(blocker.join("sub"));
    assert!(open_error(config).contains("data_dir"));
    assert!(open_error(json!("not an object")).contains("configuration"));
    match Plugin::open(api(), "{ not json") {
        Ok(_) => panic!("accepted broken JSON"),
        Err(e) => assert!(e.message.contains("configuration"), "{}", e.message),
    }
}

#[test]
fn defaults_and_loopback_http_are_accepted() {
    let h = Harness::new();
    let minimal = json!({
        "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
        "redirect_uri": "https://pbx.example.com/google/callback",
        "data_dir": h.data_dir().join("minimal"),
    });
    let plugin = Plugin::open(api(), &minimal.to_string()).expect("defaults suffice");
    let url = plugin.auth_url("example.com").unwrap();
    assert!(
        url.starts_with("https://accounts.google.com/o/oauth2/v2/auth?"),
        "{url}"
    );
    drop(plugin);
    let mut config = h.config();
    config["google"]["token_url"] = json!("http://localhost:1/token");
    Plugin::open(api(), &config.to_string()).expect("http on localhost is allowed");
    // Every field of the contract's example is known, with values at the bounds.
    let mut config = h.config();
    for (field, value) in [
        ("sync_interval_secs", json!(604800)),
        ("presence_interval_secs", json!(10)),
        ("google_requests_per_minute", json!(100000)),
        (
            "sources",
            json!(["contacts", "directory", "other_contacts"]),
        ),
        ("contact_groups", json!(["Customers"])),
        ("calendar", json!(true)),
        ("store", json!("sqlite")),
        ("token_key_file", json!(null)),
    ] {
        config[field] = value;
    }
    config["google"]["calendar_url"] = json!("http://127.0.0.1:1");
    config["domains"] =
        json!({"acme.de": {"sources": ["contacts"], "contact_groups": null, "calendar": false}});
    Plugin::open(api(), &config.to_string()).expect("the contract's fields are accepted");
}

#[test]
fn loading_a_library_without_the_contract_names_the_missing_symbol() {
    // The C library this process already has mapped: a real shared object, without gi_*.
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    let libc = maps
        .lines()
        .filter_map(|line| line.split_whitespace().nth(5))
        .find(|path| path.contains("/libc.so"))
        .expect("libc is mapped");
    let err = match host_sim::plugin::Api::load(std::path::Path::new(libc)) {
        Ok(_) => panic!("libc loaded as a plugin"),
        Err(e) => e,
    };
    assert!(
        err.contains("lacks the symbol gi_open") && err.contains(libc),
        "{err}"
    );
    let missing = host_sim::plugin::Api::load(std::path::Path::new("/nonexistent/libplugin.so"))
        .err()
        .unwrap();
    assert!(missing.contains("/nonexistent/libplugin.so"), "{missing}");
}
