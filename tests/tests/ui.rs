//! Diagnostics snapshots: every `tests/ui/*.arch` must fail `archc check`
//! with exit status 1, and its rendered diagnostics must match the insta
//! snapshot. Update snapshots with `cargo insta review`.

use arch_tests::{archc, arch_files, codes_in, root};

#[test]
fn ui_snapshots() {
    let root = root();
    std::env::set_current_dir(&root).expect("repository root");
    insta::glob!("../ui", "*.arch", |path| {
        let rel = path.strip_prefix(&root).unwrap_or(path).to_string_lossy().replace('\\', "/");
        let out = archc(&["check", "--color", "never", &rel]);
        assert_eq!(out.code, 1, "{rel} must fail with status 1, got {}:\n{}", out.code, out.stderr);
        assert!(!codes_in(&out.stderr).is_empty(), "{rel} printed no diagnostic code:\n{}", out.stderr);
        insta::assert_snapshot!(out.stderr);
    });
}

#[test]
fn every_code_has_a_ui_test() {
    let root = root();
    std::env::set_current_dir(&root).expect("repository root");
    let mut seen = std::collections::BTreeSet::new();
    for path in arch_files(&root.join("tests/ui")) {
        let rel = path.strip_prefix(&root).unwrap_or(&path).to_string_lossy().replace('\\', "/");
        let out = archc(&["check", "--color", "never", &rel]);
        seen.extend(codes_in(&out.stderr));
    }
    // Codes raised by the driver, outside .arch files, have their own tests
    // (cli.rs and hostile.rs): E0008 file too large, E0009 invalid UTF-8,
    // E0204 unknown `--set` name.
    let outside = ["E0008", "E0009", "E0204"];
    let missing: Vec<&str> = arch_sema::CODES
        .iter()
        .map(|(c, _)| *c)
        .filter(|c| !seen.contains(*c) && !outside.contains(c))
        .collect();
    assert!(missing.is_empty(), "codes without a ui test: {missing:?}");
    let count = arch_files(&root.join("tests/ui")).len();
    assert!(count >= 60, "tests/ui has {count} programs; the suite keeps at least 60");
}
