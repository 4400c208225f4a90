//! Diagnostics snapshots: every `tests/ui/*.arch` must fail `archc check`
//! with exit status 1, and its rendered diagnostics must match the insta
//! snapshot. Update snapshots with `cargo insta review`.
//!
//! A first line `// archc-args: ARGS` adds command-line arguments (for
//! diagnostics about the command line, such as `--set`); a first line
//! `// archc-command: COMMAND ARGS` runs that command instead of `check`
//! (for errors only the cost model finds).

use arch_tests::{arch_files, archc, codes_in, root, Outcome};

/// Checks one ui program as `archc check` would, with its extra arguments.
fn check_ui(rel: &str) -> Outcome {
    let bytes = std::fs::read(rel).unwrap_or_default();
    let first_line = String::from_utf8_lossy(&bytes)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string();
    let mut args: Vec<String> = vec!["check".into(), "--color".into(), "never".into()];
    if let Some(extra) = first_line.strip_prefix("// archc-args:") {
        args.extend(extra.split_whitespace().map(String::from));
    }
    if let Some(command) = first_line.strip_prefix("// archc-command:") {
        // Another command than `check` (errors that `tune` or `report` find).
        args = command.split_whitespace().map(String::from).collect();
        args.extend(["--color".into(), "never".into()]);
    }
    args.push(rel.to_string());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    archc(&refs)
}

#[test]
fn ui_snapshots() {
    let root = root();
    std::env::set_current_dir(&root).expect("repository root");
    insta::glob!("../ui", "*.arch", |path| {
        let rel = path
            .strip_prefix(&root)
            .unwrap_or(path)
            .to_string_lossy()
            .replace('\\', "/");
        let out = check_ui(&rel);
        assert_eq!(
            out.code, 1,
            "{rel} must fail with status 1, got {}:\n{}",
            out.code, out.stderr
        );
        assert!(
            !codes_in(&out.stderr).is_empty(),
            "{rel} printed no diagnostic code:\n{}",
            out.stderr
        );
        insta::assert_snapshot!(out.stderr);
    });
}

#[test]
fn every_code_has_a_ui_test() {
    let root = root();
    std::env::set_current_dir(&root).expect("repository root");
    let mut seen = std::collections::BTreeSet::new();
    for path in arch_files(&root.join("tests/ui")) {
        let rel = path
            .strip_prefix(&root)
            .unwrap_or(&path)
            .to_string_lossy()
            .replace('\\', "/");
        let out = check_ui(&rel);
        seen.extend(codes_in(&out.stderr));
    }
    // E0008 (file over 8 MiB) needs a file too large to keep here: its
    // snapshot is in hostile.rs (`ten_megabyte_file`).
    let outside = ["E0008"];
    let missing: Vec<&str> = arch_sema::CODES
        .iter()
        .map(|(c, _)| *c)
        .filter(|c| !seen.contains(*c) && !outside.contains(c))
        .collect();
    assert!(missing.is_empty(), "codes without a ui test: {missing:?}");
    let count = arch_files(&root.join("tests/ui")).len();
    assert!(
        count >= 60,
        "tests/ui has {count} programs; the suite keeps at least 60"
    );
}
