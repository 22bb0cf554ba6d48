//! `host-sim demo`: the whole feature in one command, offline. A fake Google seeded with a few
//! hundred contacts, three accounts connected through its consent flow, the syncs watched with
//! a progress bar, a handful of incoming calls, a few address-book searches, a meeting that
//! turns a phone busy, then the Google Integration page.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::Args;
use host_sim::fake_google::{Endpoint, FakeGoogle};
use host_sim::plugin::{GiPresence, Plugin};

use crate::progress::Bar;
use crate::web::{App, Listener, Mode};
use crate::{parse_bind, seed, sim, DEFAULT_BIND};

/// Pages of this many people, so the sync takes several requests and its progress shows.
const PAGE: usize = 50;
const SYNC_PATIENCE: Duration = Duration::from_secs(60);
/// Rows shown of each demo search.
const SEARCH_ROWS: usize = 8;

#[derive(Args)]
pub struct DemoArgs {
    /// Exit (0) after the simulated calls instead of serving the page
    #[arg(long)]
    once: bool,
    /// Where the page listens, IP:PORT; if the default 127.0.0.1:8080 is taken, any free port
    #[arg(long, value_name = "IP:PORT")]
    bind: Option<String>,
    /// Keep the plugin's data in DIR (for `host-sim call` later) instead of a temporary
    /// directory removed at exit
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// ISO 3166 region for numbers written without a country code
    #[arg(long, default_value = "US")]
    region: String,
}

pub fn run(plugin_path: &Path, args: DemoArgs) -> Result<(), String> {
    let bind = parse_bind(args.bind.as_deref().unwrap_or(DEFAULT_BIND))?;
    println!("host-sim demo: the Google Contacts caller-ID plugin, as the Vodia PBX runs it.");
    println!("Everything runs on this machine, against a fake Google on 127.0.0.1.\n");

    println!("1. Loading the plugin {}", plugin_path.display());
    let api = sim::load(plugin_path)?;
    println!(
        "   version {}; every call below goes through its C ABI",
        api.version()
    );

    let listener = if args.bind.is_some() {
        Listener::bind(bind)?
    } else {
        Listener::bind_or_any(bind)?
    };
    let redirect_uri = listener.callback_uri();
    let (fake, secret) = sim::start_fake(&redirect_uri);
    fake.set_page_size_cap(PAGE);
    let books: Vec<(String, usize)> = seed::USERS
        .iter()
        .map(|u| (u.email.to_string(), fake.contacts(u.email).len()))
        .collect();
    let total: usize = books.iter().map(|(_, n)| n).sum();
    println!(
        "\n2. Fake Google on {} with {total} contacts:",
        fake.base_url()
    );
    for user in seed::USERS {
        let n = fake.contacts(user.email).len();
        let others = fake.other_contacts(user.email).len();
        let also = if others > 0 {
            format!(", and {others} \"other contacts\" (written to, never saved)")
        } else {
            String::new()
        };
        println!(
            "   {:<18} {:>4} contacts   ({}){also}",
            user.email, n, user.name
        );
    }
    println!(
        "   {} is a Google Workspace organisation: {} people in its directory",
        seed::WORKSPACE_DOMAIN,
        fake.directory(seed::WORKSPACE_DOMAIN).len()
    );

    let temp;
    let data_dir = match &args.data_dir {
        Some(dir) => dir.clone(),
        None => {
            temp = tempfile::Builder::new()
                .prefix("host-sim-demo-")
                .tempdir()
                .map_err(|e| format!("cannot make a temporary data_dir: {e}"))?;
            temp.path().join("data")
        }
    };
    let config = sim::fake_config(&fake, &secret, &redirect_uri, &data_dir, &args.region);
    let plugin = sim::open_remembering(api, &config)?;
    println!(
        "\n3. Opened the plugin: data_dir {}{}",
        data_dir.display(),
        if args.data_dir.is_none() {
            " (temporary)"
        } else {
            ""
        }
    );

    println!("\n4. Connecting accounts through Google's consent flow");
    println!("   (gi_auth_url -> consent page -> Allow -> redirect -> gi_complete)");
    for user in seed::USERS {
        connect(&plugin, &fake, user.account, user.email)?;
        wait_for_sync(
            &plugin,
            &fake,
            user.account,
            fake.contacts(user.email).len(),
        )?;
    }

    println!("\n5. Incoming calls: what the phone shows");
    println!(
        "   (each lookup time is one call on cold caches, between screens of output; warm, a\n    \
         lookup takes ~150 ns: see `host-sim bench`)"
    );
    for call in seed::DEMO_CALLS {
        println!("\n   {} <- {}   ({})", call.account, call.number, call.what);
        let (caller, took) = sim::ring(&plugin, call.account, call.number)?;
        println!("{}", sim::phone_display(caller.as_ref(), call.number, took));
    }

    println!("\n6. The address book: the phone's directory searches the same contacts");
    println!("   (gi_search_contacts: words of names, companies and groups, or keypad digits)");
    for search in seed::DEMO_SEARCHES {
        let mode = if search.keypad { "keypad" } else { "text" };
        println!(
            "\n   {}: {mode} search \"{}\"   ({})",
            search.account, search.query, search.what
        );
        let page = sim::search(
            &plugin,
            search.account,
            search.query,
            search.keypad,
            0,
            SEARCH_ROWS,
        )
        .map_err(|e| format!("the search of {} failed: {}", search.account, e.message))?;
        for line in sim::search_lines(&page.rows, "     ") {
            println!("{line}");
        }
        println!(
            "     {}   (search {})",
            sim::search_summary(page.rows.len(), page.total, 0),
            sim::format_duration(page.took)
        );
    }

    println!("\n7. Calendar presence: a meeting in Bob's Google Calendar makes his phone busy");
    println!("   (gi_presence, from memory; the busy times come from Calendar's freeBusy)");
    presence_demo(&plugin, &fake)?;

    if args.once {
        println!("\nDone (--once). Run `host-sim demo` without --once to try the web page.");
        return Ok(());
    }
    let app = App::new(
        &plugin,
        Some(&fake),
        Mode::Fake,
        redirect_uri,
        data_dir.display().to_string(),
        &seed::ACCOUNTS,
    );
    println!("\n8. The PBX's Google Integration page is up.");
    println!(
        "   Open it, pick an account, press \"Get auth code\", ring a number, or search the\n   \
         address book (Keypad dials by name)."
    );
    println!("   Its developer panel makes the fake Google fail on demand.\n");
    println!("Google Integration page: {}/", listener.base_url());
    println!("Press Ctrl-C to stop.");
    listener.serve(&app);
    println!("\nStopping: closing the plugin and removing the temporary data_dir.");
    Ok(())
}

/// Books a short meeting in Bob's calendar and prints his extension's presence as it turns
/// busy at the meeting's start and free again at its end, from memory between fetches.
fn presence_demo(plugin: &Plugin<'_>, fake: &FakeGoogle) -> Result<(), String> {
    let account = seed::BOB.account;
    let now = unix_now();
    // Long enough that the fetch Sync now asks for lands within it on a loaded machine.
    let (start, end) = (now + 3, now + 10);
    fake.add_busy(seed::BOB.email, start, end);
    println!(
        "\n   booked for {}: a meeting {} to {} (UTC)",
        seed::BOB.email,
        clock(start),
        clock(end)
    );
    plugin
        .sync_now(account)
        .map_err(|e| format!("gi_sync_now({account}) failed: {}", e.message))?;
    let deadline = Instant::now() + SYNC_PATIENCE;
    let mut shown = String::new();
    // Free after the meeting proves nothing unless the phone was busy during it: the fetch
    // at connect already said free.
    let mut was_busy = false;
    loop {
        let (presence, until) = plugin.presence(account);
        let line = match presence {
            GiPresence::GI_PRESENCE_BUSY => format!("busy until {}", clock(until)),
            GiPresence::GI_PRESENCE_FREE if until != 0 => {
                format!("free (meeting at {})", clock(until))
            }
            GiPresence::GI_PRESENCE_FREE => "free".to_owned(),
            GiPresence::GI_PRESENCE_UNKNOWN => "unknown (fetching the calendar)".to_owned(),
        };
        if line != shown {
            println!("   {}  {account}: {line}", clock(unix_now()));
            shown = line;
        }
        was_busy |= presence == GiPresence::GI_PRESENCE_BUSY;
        if was_busy && presence == GiPresence::GI_PRESENCE_FREE && unix_now() >= end {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "the presence of {account} did not follow the meeting: {}",
                sim::status(plugin, account)?
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// HH:MM:SS (UTC) of a Unix time.
fn clock(unix: i64) -> String {
    let text = host_sim::fake_google::rfc3339_utc(unix);
    text.get(11..19).unwrap_or(&text).to_owned()
}

/// Connects through the fake consent flow and says so.
fn connect(
    plugin: &Plugin<'_>,
    fake: &FakeGoogle,
    account: &str,
    email: &str,
) -> Result<(), String> {
    let connected = host_sim::connect_through_fake(plugin, fake, account, email)?;
    println!("\n   {connected}: {email} allowed access ✓ connected");
    Ok(())
}

/// Polls `gi_status_json` until the first sync is in; the bar counts the People API pages
/// the fake has served since.
fn wait_for_sync(
    plugin: &Plugin<'_>,
    fake: &FakeGoogle,
    account: &str,
    expected: usize,
) -> Result<(), String> {
    let pages_before = fake.requests_to(Endpoint::People).len();
    let pages = expected.div_ceil(PAGE).max(1);
    let mut bar = Bar::new(&format!("syncing {account:<15}"));
    let start = Instant::now();
    loop {
        let status = sim::status(plugin, account)?;
        let served = fake.requests_to(Endpoint::People).len() - pages_before;
        let done = status["syncing"] == false && status["last_sync"].is_string();
        if done {
            let contacts = status["contacts"].as_u64().unwrap_or(0);
            let numbers = status["numbers"].as_u64().unwrap_or(0);
            bar.finish(
                1,
                1,
                &format!(
                    "{contacts} contacts, {numbers} numbers in {:.1} s ({served} {})",
                    start.elapsed().as_secs_f64(),
                    if served == 1 { "page" } else { "pages" }
                ),
            );
            return Ok(());
        }
        if status["status"] == "issue" {
            bar.abandon();
            return Err(format!(
                "the sync of {account} failed: {}",
                status["reason"].as_str().unwrap_or("no reason given")
            ));
        }
        if start.elapsed() > SYNC_PATIENCE {
            bar.abandon();
            return Err(format!(
                "the sync of {account} did not finish in {} s: {status}",
                SYNC_PATIENCE.as_secs()
            ));
        }
        let fetched = (served * PAGE).min(expected);
        bar.update(
            served.min(pages),
            pages,
            &format!(
                "page {}/{pages}, {fetched}/{expected} contacts",
                served.min(pages)
            ),
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
