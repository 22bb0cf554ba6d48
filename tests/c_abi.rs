//! Compiles the C programs of tests/c against include/ with -Wall -Werror and the address and
//! undefined-behaviour sanitizers, links them to the built cdylib, and runs them.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Harness, ALICE};
use host_sim::fake_google::Person;

/// Builds `tests/c/{name}.c` into `work` and returns the executable.
fn compile(name: &str, work: &Path) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let lib = host_sim::plugin::default_library_path();
    let lib_dir = lib.parent().expect("library directory");
    assert!(lib.exists(), "the cdylib is not built at {}", lib.display());
    let exe = work.join(name);
    let compiled = Command::new("cc")
        .args([
            "-std=c11",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-pthread",
            "-fsanitize=address,undefined",
        ])
        .args(["-fno-omit-frame-pointer", "-fno-sanitize-recover=all"])
        .arg("-I")
        .arg(root.join("include"))
        .arg(root.join(format!("tests/c/{name}.c")))
        .arg("-L")
        .arg(lib_dir)
        .arg("-lgoogle_integration")
        .arg(format!("-Wl,-rpath,{}", lib_dir.display()))
        .arg("-o")
        .arg(&exe)
        .output()
        .expect("a C compiler (cc) is needed for this test: apt-get install gcc");
    assert!(
        compiled.status.success(),
        "{name}.c does not compile against the header:\n{}",
        String::from_utf8_lossy(&compiled.stderr)
    );
    exe
}

fn run_clean(name: &str, command: &mut Command) {
    // The library the program was linked against, found by its rpath: cargo runs tests with
    // LD_LIBRARY_PATH naming target/debug before target/debug/deps, and that path wins over
    // the rpath, so the program loaded whatever library the last `cargo build` left there,
    // an older one after `cargo test` alone rebuilt the plugin.
    let lib = host_sim::plugin::default_library_path();
    let ran = command
        .env("LD_LIBRARY_PATH", lib.parent().expect("library directory"))
        .env("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=1")
        .env("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
        .output()
        .expect("run the C program");
    let stdout = String::from_utf8_lossy(&ran.stdout);
    let stderr = String::from_utf8_lossy(&ran.stderr);
    assert!(
        ran.status.success() && stdout.contains("1 passed, 0 failed"),
        "{name} failed:\n{stdout}\n{stderr}"
    );
}

#[test]
fn c_program_against_the_header_runs_clean_under_sanitizers() {
    let work = tempfile::tempdir().expect("temp dir");
    let exe = compile("abi_smoke", work.path());
    run_clean(
        "abi_smoke",
        Command::new(&exe).arg(work.path().join("data")),
    );
}

#[test]
fn closing_under_threads_in_flight_and_calls_after_close_never_crash() {
    let h = Harness::new();
    h.fake.set_contacts(
        ALICE,
        vec![Person::new("people/c1", "Ada", "Lovelace").with_phone("+1 212-555-0100", "mobile")],
    );
    {
        let plugin = h.open();
        h.connect_and_sync(&plugin, "example.com/40", ALICE);
    }
    let work = tempfile::tempdir().expect("temp dir");
    let exe = compile("close_race", work.path());
    run_clean(
        "close_race",
        Command::new(&exe)
            .arg(h.data_dir().join("data"))
            .arg("example.com/40")
            .arg("+12125550100"),
    );
}
