//! Compiles tests/c/abi_smoke.c against include/ with -Wall -Werror and the address and
//! undefined-behaviour sanitizers, links it to the built cdylib, and runs it.

use std::path::Path;
use std::process::Command;

#[test]
fn c_program_against_the_header_runs_clean_under_sanitizers() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let lib = host_sim::plugin::default_library_path();
    let lib_dir = lib.parent().expect("library directory");
    assert!(lib.exists(), "the cdylib is not built at {}", lib.display());
    let work = tempfile::tempdir().expect("temp dir");
    let exe = work.path().join("abi_smoke");

    let compiled = Command::new("cc")
        .args([
            "-std=c11",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-fsanitize=address,undefined",
        ])
        .args(["-fno-omit-frame-pointer", "-fno-sanitize-recover=all"])
        .arg("-I")
        .arg(root.join("include"))
        .arg(root.join("tests/c/abi_smoke.c"))
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
        "the C program does not compile against the header:\n{}",
        String::from_utf8_lossy(&compiled.stderr)
    );

    let ran = Command::new(&exe)
        .arg(work.path().join("data"))
        .env("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=1")
        .env("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
        .output()
        .expect("run the C program");
    let stdout = String::from_utf8_lossy(&ran.stdout);
    let stderr = String::from_utf8_lossy(&ran.stderr);
    assert!(
        ran.status.success() && stdout.contains("1 passed, 0 failed"),
        "the C program failed:\n{stdout}\n{stderr}"
    );
}
