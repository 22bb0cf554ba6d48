//! The lookup path allocates nothing: `gi_lookup_contact` (number reading, index, copying
//! into GiContact) is called in process through the Rust symbols of the C ABI, after a real
//! connect and sync against the fake Google, with a global allocator that counts this
//! thread's allocations. (The sync workers and the HTTP client allocate on their own
//! threads; only the calling thread is counted.)

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::ffi::{c_char, CString};
use std::time::{Duration, Instant};

use google_integration::ffi::{
    gi_auth_url, gi_close, gi_complete, gi_lookup_contact, gi_open, gi_status_json, GiContact,
    GiResult,
};
use host_sim::fake_google::{Client, FakeGoogle, Person};

struct CountingAllocator;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // try_with: thread-locals may be gone while a thread exits.
        let _ = COUNTING.try_with(|counting| {
            if counting.get() {
                let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
            }
        });
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

fn allocations_during(f: impl FnOnce()) -> usize {
    ALLOCATIONS.with(|n| n.set(0));
    COUNTING.with(|c| c.set(true));
    f();
    COUNTING.with(|c| c.set(false));
    ALLOCATIONS.with(|n| n.get())
}

fn read_string(call: impl Fn(*mut c_char, usize, *mut usize) -> GiResult) -> String {
    let mut buf = vec![0u8; 4096];
    let mut len = 0usize;
    assert_eq!(
        call(buf.as_mut_ptr().cast(), buf.len(), &mut len),
        GiResult::GI_OK
    );
    buf.truncate(len);
    String::from_utf8(buf).unwrap()
}

#[test]
fn gi_lookup_contact_allocates_nothing() {
    let fake = FakeGoogle::start();
    let redirect = "http://127.0.0.1:8080/google/callback";
    fake.add_client(Client::new(
        "c.apps.googleusercontent.com",
        "secret",
        &[redirect],
    ));
    fake.add_user("alice@example.com", "Alice");
    fake.set_contacts(
        "alice@example.com",
        (0..500)
            .map(|i| {
                Person::new(&format!("people/c{i}"), "Caller", &format!("{i}"))
                    .with_company("Example")
                    .with_phone(&format!("(212) 555-{:04}", i), "mobile")
            })
            .collect(),
    );
    let dir = tempfile::tempdir().unwrap();
    let config = serde_json::json!({
        "client_id": "c.apps.googleusercontent.com", "client_secret": "secret", "redirect_uri": redirect,
        "data_dir": dir.path(), "google": fake.config_json(), "sync_interval_secs": 3600,
    });
    let config = CString::new(config.to_string()).unwrap();
    let plugin = gi_open(config.as_ptr());
    assert!(!plugin.is_null());
    let account = CString::new("example.com").unwrap();
    let url = read_string(|buf, cap, len| gi_auth_url(plugin, account.as_ptr(), buf, cap, len));
    let callback = CString::new(fake.approve(&url, "alice@example.com").unwrap()).unwrap();
    assert_eq!(
        gi_complete(plugin, callback.as_ptr(), std::ptr::null_mut(), 0),
        GiResult::GI_OK
    );
    let started = Instant::now();
    loop {
        let status =
            read_string(|buf, cap, len| gi_status_json(plugin, account.as_ptr(), buf, cap, len));
        if status.contains("\"contacts\":500") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "sync did not finish: {status}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }

    let user = CString::new("example.com/40").unwrap();
    let inputs: Vec<CString> = [
        "+12125550042",
        "(212) 555-0042",
        "tel:+1-212-555-0042",
        "sip:+12125550042@pbx.example.com;user=phone",
        "011 1 212 555 0042",
        "2125550042",
        "+12125559999",
        "anonymous",
        "0044 20 7946 0958",
    ]
    .iter()
    .map(|s| CString::new(*s).unwrap())
    .collect();
    let mut out = GiContact {
        name: [0; 128],
        company: [0; 128],
        label: [0; 32],
        number: [0; 32],
        account: [0; 256],
        source: [0; 16],
        groups: [0; 128],
    };
    let mut found = 0;
    let allocations = allocations_during(|| {
        for _ in 0..100 {
            for input in &inputs {
                for who in [&account, &user] {
                    if gi_lookup_contact(plugin, who.as_ptr(), input.as_ptr(), &mut out)
                        == GiResult::GI_OK
                    {
                        found += 1;
                    }
                }
            }
        }
    });
    assert_eq!(
        found,
        100 * 2 * 6,
        "the six forms of +12125550042 are found for both accounts"
    );
    assert_eq!(allocations, 0, "the lookup path allocated");
    // The counter works: a plain allocation on this thread is seen.
    assert!(allocations_during(|| drop(std::hint::black_box(vec![1u8; 64]))) > 0);
    gi_close(plugin);
}
