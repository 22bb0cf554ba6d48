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
        "µs",
    ] {
        assert!(stdout.contains(expected), "no `{expected}` in:\n{stdout}");
    }
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
