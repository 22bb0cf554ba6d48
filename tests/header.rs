//! The committed header must be exactly what cbindgen generates from `src/ffi` now, with the
//! cbindgen version pinned in Cargo.toml. Run with `UPDATE_HEADER=1` to rewrite it.

use std::path::Path;

#[test]
fn committed_header_matches_cbindgen() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(root.join("cbindgen.toml")).expect("cbindgen.toml");
    let mut generated = Vec::new();
    cbindgen::Builder::new()
        .with_crate(root)
        .with_config(config)
        .generate()
        .expect("cbindgen generates the header")
        .write(&mut generated);
    let header_path = root.join("include/google_integration.h");
    if std::env::var_os("UPDATE_HEADER").is_some() {
        std::fs::write(&header_path, &generated).expect("write header");
    }
    let committed = std::fs::read(&header_path).unwrap_or_default();
    assert!(
        committed == generated,
        "include/google_integration.h differs from what cbindgen generates; run `UPDATE_HEADER=1 cargo test --test header` and commit it"
    );
}
