//! The host-sim command line, run as a user runs it: the built binary, its exit code and what
//! it prints. The plugin must be built (`cargo test --workspace` builds it with the workspace).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_host-sim");

/// Where host-sim looks for the plugin by default: beside its executable (or in `deps/`).
fn plugin_built() -> PathBuf {
    let dir = Path::new(BIN).parent().expect("the binary's directory");
    let candidates = [
        dir.join("libgoogle_integration.so"),
        dir.join("deps/libgoogle_integration.so"),
    ];
    candidates
        .iter()
        .find(|p| p.exists())
        .cloned()
        .unwrap_or_else(|| {
            panic!(
                "the plugin is not built next to {BIN}: run `cargo build --workspace` first \
                 (`cargo test --workspace` builds it)"
            )
        })
}

fn host_sim(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("GI_CLIENT_ID")
        .env_remove("GI_CLIENT_SECRET")
        .output()
        .expect("run host-sim")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn demo_once_connects_syncs_and_names_callers_then_call_works_offline() {
    plugin_built();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_arg = data.to_str().unwrap();
    let out = host_sim(&[
        "demo",
        "--once",
        "--bind",
        "127.0.0.1:0",
        "--data-dir",
        data_arg,
    ]);
    let stdout = text(&out.stdout);
    assert!(
        out.status.success(),
        "demo --once failed:\n{stdout}\n{}",
        text(&out.stderr)
    );
    for expected in [
        "example.com: alice@example.com allowed access ✓ connected",
        "example.com/40: bob@example.com allowed access ✓ connected",
        "Emma Thompson · Thompson & Lane Ltd",
        "mobile +447700900123",
        "Mom",
        "Liam O'Connor",
        "Jürgen Müller",
        "Camille Dubois",
        "Bay Area Plumbing Co.",
        "Aaron Fischer",
        "Klaus Becker",
        "unknown caller: +1 900 555 0100",
        // A contact with neither name nor company: its email address is its name.
        "orders@globex-freight.example",
        "µs",
    ] {
        assert!(stdout.contains(expected), "no `{expected}` in:\n{stdout}");
    }
    // The booked meeting turns Bob's phone busy, then free again after it.
    let busy = stdout
        .find("example.com/40: busy until ")
        .unwrap_or_else(|| panic!("the demo never showed the phone busy:\n{stdout}"));
    assert!(
        stdout[busy..].contains("example.com/40: free"),
        "the demo never showed the phone free after the meeting:\n{stdout}"
    );
    // Nothing secret on the screen.
    assert!(!stdout.contains("GOCSPX-"), "{stdout}");
    assert!(!stdout.contains("code="), "{stdout}");

    // The data_dir the demo left answers `call`, offline, from the stored contacts.
    let out = host_sim(&[
        "call",
        "example.com/40",
        "+44 7700 900123",
        "--data-dir",
        data_arg,
    ]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(stdout.contains("Emma Thompson"), "{stdout}");
    let out = host_sim(&[
        "call",
        "example.com",
        "+1 900 555 0100",
        "--data-dir",
        data_arg,
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("unknown caller"),
        "{}",
        text(&out.stdout)
    );
    // Opened offline twice by now, the data_dir still holds what the demo synced from every
    // source: `call` opens it with the demo's sources (a source left out would be erased).
    let out = host_sim(&[
        "call",
        "example.com/40",
        "303 555 0152",
        "--data-dir",
        data_arg,
    ]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(
        stdout.contains("Dana Whitfield"),
        "the directory's colleague is gone: {stdout}"
    );
}

/// The demo's lines from `header` up to the next blank line.
fn block<'a>(stdout: &'a str, header: &str) -> Vec<&'a str> {
    let start = stdout
        .find(header)
        .unwrap_or_else(|| panic!("no `{header}` in:\n{stdout}"));
    stdout[start..]
        .lines()
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .collect()
}

#[test]
fn demo_searches_the_address_book_by_text_keypad_and_group() {
    plugin_built();
    let out = host_sim(&["demo", "--once", "--bind", "127.0.0.1:0"]);
    let stdout = text(&out.stdout);
    assert!(
        out.status.success(),
        "demo --once failed:\n{stdout}\n{}",
        text(&out.stderr)
    );
    assert!(stdout.contains("The address book"), "{stdout}");

    let mul = block(&stdout, "example.com: text search \"mül\"");
    let jurgen = mul
        .iter()
        .find(|l| l.contains("Jürgen Müller · Müller Maschinenbau GmbH"))
        .unwrap_or_else(|| panic!("Jürgen Müller is not found by mül: {mul:#?}"));
    for part in ["work +498912345678", "Customers, Suppliers", "example.com"] {
        assert!(jurgen.contains(part), "no `{part}` in {jurgen}");
    }
    let last = mul.last().unwrap().trim();
    assert!(
        last.starts_with(&format!("{} of {}", mul.len() - 1, mul.len() - 1)),
        "{mul:#?}"
    );

    let keypad = block(&stdout, "example.com: keypad search \"6855\"");
    assert!(
        keypad.iter().any(|l| l.contains("Jürgen Müller")),
        "6855 dials Müller: {keypad:#?}"
    );
    assert!(keypad.last().unwrap().contains(" of "), "{keypad:#?}");

    let family = block(&stdout, "example.com/40: text search \"family\"");
    assert!(
        family
            .iter()
            .any(|l| l.contains("grandpa.joe@example.net") && l.contains("Family")),
        "Bob's family, with the email-only contact: {family:#?}"
    );
    assert!(
        family[..family.len() - 1]
            .iter()
            .all(|l| l.contains("Family")),
        "{family:#?}"
    );
}

#[test]
fn search_finds_by_text_keypad_and_group_and_pages_offline() {
    plugin_built();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_arg = data.to_str().unwrap();
    let out = host_sim(&[
        "demo",
        "--once",
        "--bind",
        "127.0.0.1:0",
        "--data-dir",
        data_arg,
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    let search = |args: &[&str]| {
        let mut all = vec!["search"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--data-dir", data_arg]);
        host_sim(&all)
    };

    // Text: a word's start, accents and case ignored; every row names its groups and account.
    for query in ["mül", "MUL", "müller maschinenbau"] {
        let out = search(&["example.com", query]);
        let stdout = text(&out.stdout);
        assert!(out.status.success(), "{query}: {}", text(&out.stderr));
        let row = stdout
            .lines()
            .find(|l| l.contains("Jürgen Müller · Müller Maschinenbau GmbH"))
            .unwrap_or_else(|| panic!("{query}: no Jürgen Müller in\n{stdout}"));
        for part in ["work +498912345678", "Customers, Suppliers", "example.com"] {
            assert!(row.contains(part), "{query}: no `{part}` in {row}");
        }
    }
    let out = search(&["example.com", "mül"]);
    let stdout = text(&out.stdout);
    let rows = stdout.lines().filter(|l| l.starts_with("  ")).count();
    assert_eq!(
        stdout.lines().last().unwrap(),
        format!("{rows} of {rows}"),
        "{stdout}"
    );

    // A group, and a contact with only an email address: the email is its name.
    let out = search(&["example.com", "suppliers", "--limit", "1000"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let rows: Vec<&str> = stdout.lines().filter(|l| l.starts_with("  ")).collect();
    assert!(rows.len() > 3, "{stdout}");
    assert!(rows.iter().all(|l| l.contains("Suppliers")), "{stdout}");
    assert!(
        rows.iter()
            .any(|l| l.contains("orders@globex-freight.example") && l.contains("+13035550123")),
        "{stdout}"
    );

    // Keypad: 6855 spells MULL, 587 JUR.
    for digits in ["6855", "587"] {
        let out = search(&["example.com", digits, "--keypad"]);
        let stdout = text(&out.stdout);
        assert!(out.status.success(), "{digits}: {}", text(&out.stderr));
        assert!(stdout.contains("keypad search"), "{stdout}");
        assert!(
            stdout.contains("Jürgen Müller · Müller Maschinenbau GmbH"),
            "{digits}:\n{stdout}"
        );
    }
    // The same digits as text are a number search, which finds no Müller.
    let out = search(&["example.com", "6855"]);
    assert!(out.status.success());
    assert!(
        !text(&out.stdout).contains("Jürgen"),
        "{}",
        text(&out.stdout)
    );

    // A bad keypad query: the plugin's message, and a failure.
    let out = search(&["example.com", "68a5", "--keypad"]);
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "{}", text(&out.stdout));
    assert!(stderr.contains("GI_ERR_INVALID_ARGUMENT"), "{stderr}");
    assert!(stderr.contains("2-9"), "{stderr}");

    // Paging: everything a user sees (own contacts, then the domain's), 5 from row 11.
    let out = search(&["example.com/40"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let last = stdout.lines().last().unwrap();
    let (shown, total) = last.split_once(" of ").unwrap();
    assert_eq!(shown, "20", "{stdout}");
    let total: usize = total.trim().parse().unwrap();
    assert!(total > 300, "the user's and the domain's contacts: {last}");
    // Rows compared by their words: the columns are padded to each page's widest cell.
    let rows = |stdout: &str| -> Vec<String> {
        stdout
            .lines()
            .filter(|l| l.starts_with("  "))
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect()
    };
    let first_page = rows(&stdout);
    let out = search(&["example.com/40", "", "--offset", "10", "--limit", "5"]);
    let stdout = text(&out.stdout);
    assert_eq!(rows(&stdout), first_page[10..15], "{stdout}");
    assert_eq!(
        stdout.lines().last().unwrap(),
        format!("5 of {total}   (rows 11-15)")
    );
    let out = search(&["example.com/40", "", "--limit", "1000"]);
    let all = rows(&text(&out.stdout));
    assert_eq!(all.len(), total);
    // A row's account, then its source unless it is the account's own contacts
    // ("example.com/40 (directory)"): every source the demo synced is still there.
    let of = |account: &str| {
        all.iter()
            .filter(|r| r.ends_with(&format!(" {account}")) || r.contains(&format!(" {account} (")))
            .count()
    };
    let (own, domain) = (of("example.com/40"), of("example.com"));
    assert!(
        all.iter().any(|r| r.ends_with("(directory)")),
        "the directory is searched too"
    );
    assert!(
        own > 0 && domain > 0 && own + domain == total,
        "{own} + {domain}"
    );

    // No match is not an error.
    let out = search(&["example.com", "zzzzqx"]);
    assert!(out.status.success());
    assert!(
        text(&out.stdout).ends_with("0 of 0\n"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn call_on_a_missing_data_dir_fails_and_says_what_to_do() {
    plugin_built();
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-dir");
    let out = host_sim(&[
        "call",
        "example.com",
        "+12125550142",
        "--data-dir",
        missing.to_str().unwrap(),
    ]);
    let stderr = text(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains(missing.to_str().unwrap()), "{stderr}");
    assert!(stderr.contains("does not exist"), "{stderr}");
    assert!(
        stderr.contains("--data-dir"),
        "says which option to fix: {stderr}"
    );
    assert!(!missing.exists(), "call must not create the data_dir");
}

#[test]
fn a_wrong_plugin_path_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let wrong = dir.path().join("nowhere/libgoogle_integration.so");
    let wrong = wrong.to_str().unwrap();
    for args in [
        vec![
            "--plugin",
            wrong,
            "call",
            "example.com",
            "123",
            "--data-dir",
            dir.path().to_str().unwrap(),
        ],
        vec!["demo", "--once", "--bind", "127.0.0.1:0", "--plugin", wrong],
    ] {
        let out = host_sim(&args);
        let stderr = text(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        assert!(stderr.contains(wrong), "{args:?}: {stderr}");
        assert!(
            stderr.contains("--plugin"),
            "{args:?} says how to fix it: {stderr}"
        );
    }
    // A file that is not a library is named too.
    let not_lib = dir.path().join("not-a-library.so");
    std::fs::write(&not_lib, b"hello").unwrap();
    let out = host_sim(&[
        "--plugin",
        not_lib.to_str().unwrap(),
        "call",
        "example.com",
        "123",
        "--data-dir",
        dir.path().to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains(not_lib.to_str().unwrap()),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn every_subcommand_has_help() {
    for sub in [
        vec![],
        vec!["demo"],
        vec!["serve"],
        vec!["call"],
        vec!["search"],
        vec!["cluster"],
        vec!["fault"],
        vec!["fault", "people"],
    ] {
        let mut args = sub.clone();
        args.push("--help");
        let out = host_sim(&args);
        let stdout = text(&out.stdout);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        assert!(stdout.contains("Usage: host-sim"), "{args:?}: {stdout}");
    }
    let out = host_sim(&["serve", "--help"]);
    assert!(text(&out.stdout).contains("GI_CLIENT_ID"));
}

#[test]
fn usage_errors_say_what_to_do() {
    // A missing argument: clap's usage error.
    let out = host_sim(&["call", "example.com"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("NUMBER"),
        "{}",
        text(&out.stderr)
    );

    // search needs the data_dir.
    let out = host_sim(&["search", "example.com", "mül"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("--data-dir"),
        "{}",
        text(&out.stderr)
    );

    // --google without the client's credentials.
    let out = host_sim(&["serve", "--google", "--bind", "127.0.0.1:0"]);
    let stderr = text(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("GI_CLIENT_ID") && stderr.contains("GI_CLIENT_SECRET"),
        "{stderr}"
    );

    // A bad --bind.
    let out = host_sim(&["serve", "--bind", "nonsense"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("127.0.0.1:8080"),
        "{}",
        text(&out.stderr)
    );

    // fault refuses to talk to anything but this machine.
    let out = host_sim(&["fault", "--server", "http://192.0.2.1:8080", "clear"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("this machine"),
        "{}",
        text(&out.stderr)
    );
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// GET `path` from host-sim's page at `url` (`http://127.0.0.1:PORT`), as JSON.
fn get_json(url: &str, path: &str) -> serde_json::Value {
    use std::io::{Read, Write};
    let address = url.strip_prefix("http://").expect("an http:// URL");
    let mut stream = std::net::TcpStream::connect(address).expect("connect to serve");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).unwrap();
    let (head, body) = reply.split_once("\r\n\r\n").expect("an HTTP reply");
    assert!(head.starts_with("HTTP/1.1 200"), "{path}: {head}");
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
}

/// `host-sim fault busy/free/calendar-disabled` against a running `serve`: the meeting shows
/// in the fake's state, and bad times are refused saying what is expected.
#[test]
fn fault_books_and_clears_meetings_in_the_fake_calendar() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;

    plugin_built();
    let dir = tempfile::tempdir().unwrap();
    /// Stops serve however the test ends: a failed assertion must not leave it running.
    struct Serve(std::process::Child);
    impl Drop for Serve {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut serve = Serve(
        Command::new(BIN)
            .args(["serve", "--bind", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path().join("data"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start host-sim serve"),
    );
    let mut lines = BufReader::new(serve.0.stdout.take().unwrap()).lines();
    let url = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|line| {
            line.strip_prefix("Google Integration page: ")
                .map(|u| u.trim().trim_end_matches('/').to_string())
        })
        .expect("serve printed its URL");
    // Keep reading what serve prints, so that it never writes into a closed pipe.
    std::thread::spawn(move || lines.for_each(drop));
    let fault = |args: &[&str]| {
        let mut all = vec!["fault", "--server", url.as_str()];
        all.extend_from_slice(args);
        host_sim(&all)
    };

    let before = now();
    let out = fault(&["busy", "alice@example.com", "+1", "+31"]);
    let said = text(&out.stdout) + &text(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("alice@example.com"), "{said}");
    // The fake's calendar holds that meeting: from a minute to 31 minutes from now.
    let meetings = &get_json(&url, "/api/fake")["meetings"]["alice@example.com"];
    let [meeting] = meetings.as_array().expect("alice has meetings").as_slice() else {
        panic!("one meeting booked, the fake holds {meetings}");
    };
    let minutes = |field: &str| {
        let at = meeting[field].as_str().expect("an RFC 3339 time");
        let at = host_sim::fake_google::parse_rfc3339_ms(at).expect(at);
        (at / 1000 - before) as f64 / 60.0
    };
    assert!((0.9..=1.6).contains(&minutes("start")), "{meeting}");
    assert!((30.9..=31.6).contains(&minutes("end")), "{meeting}");

    let out = fault(&["busy", "alice@example.com", "soon", "+31"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("RFC 3339") || text(&out.stderr).contains("+MIN"),
        "{}",
        text(&out.stderr)
    );

    let out = fault(&["calendar-disabled"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = fault(&["free", "alice@example.com"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        get_json(&url, "/api/fake")["meetings"]
            .get("alice@example.com")
            .is_none(),
        "`fault free` left alice's meetings"
    );
    let out = fault(&["clear"]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    drop(serve);
}

/// `host-sim cluster` on a PostgreSQL server of its own: node B (in host-sim) answers what
/// node A (a process of its own) connected and synced, and after node A is killed mid-sync,
/// syncs the account itself. The store's password is never printed.
#[test]
fn cluster_shows_a_connect_on_one_node_answering_on_the_other_and_the_takeover() {
    plugin_built();
    let out = host_sim(&["cluster", "--interval", "3"]);
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "cluster failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("node B answers"), "{stdout}");
    assert!(stdout.contains("node A killed mid-sync"), "{stdout}");
    assert!(
        stdout.contains("as Grace Brewster Hopper") && stdout.contains("after node A died"),
        "node B took the account over:\n{stdout}"
    );
    assert!(
        stdout.contains(":***@"),
        "the store URL, its password hidden:\n{stdout}"
    );
    assert!(!stdout.contains(host_sim::pg::PASSWORD) && !stderr.contains(host_sim::pg::PASSWORD));
}

/// `host-sim serve` survives hostile requests: a NUL byte in a parameter (which a C string
/// cannot carry) is refused with a 400, and not one of the page's four workers dies of it.
/// Four such requests used to leave no one to answer, from any web page's image tags.
#[test]
fn serve_answers_a_nul_in_a_parameter_with_400_and_keeps_answering() {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpStream;
    use std::time::Duration;

    let data = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .args(["serve", "--bind", "127.0.0.1:0", "--data-dir"])
        .arg(data.path().join("data"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start host-sim serve");
    let stdout = child.stdout.take().unwrap();
    let url = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find_map(|line| {
            line.strip_prefix("Google Integration page: ")
                .map(|u| u.trim().to_owned())
        })
        .expect("serve printed its URL");
    let addr = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let get = |path: &str| -> String {
        let mut stream = TcpStream::connect(&addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut reply = String::new();
        let _ = stream.read_to_string(&mut reply);
        reply
    };
    for _ in 0..6 {
        let reply = get("/api/status?account=%00");
        assert!(reply.starts_with("HTTP/1.1 400"), "{reply}");
        assert!(reply.contains("NUL"), "{reply}");
    }
    let reply = get("/api/status?account=example.com");
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        reply.starts_with("HTTP/1.1 200"),
        "still answering: {reply}"
    );
}
