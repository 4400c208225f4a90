//! Every example checks clean, and formatting is idempotent and lossless on
//! every example, ui program and stdlib module.

use arch_tests::{arch_files, archc, root};

#[test]
fn every_example_checks_clean() {
    let files = arch_files(&root().join("examples"));
    assert!(files.len() >= 7, "examples/ has {} programs", files.len());
    for f in files {
        let path = f.to_string_lossy().to_string();
        let out = archc(&["check", "--color", "never", &path]);
        assert_eq!(out.code, 0, "{path}:\n{}", out.stderr);
    }
}

#[test]
fn the_named_examples_exist() {
    for name in [
        "quickstart",
        "gemm",
        "mlp",
        "conv2d",
        "attention",
        "sparse_mlp",
        "snn",
    ] {
        let path = root().join("examples").join(format!("{name}.arch"));
        assert!(path.exists(), "{} is missing", path.display());
    }
    let gemm = std::fs::read_to_string(root().join("examples/gemm.arch")).expect("gemm.arch");
    assert!(gemm.contains("workload gemm(M = 1024, N = 1024, K = 1024)"));
}

#[test]
fn stdlib_checks_clean() {
    for (module, _, text) in arch_sema::stdlib::MODULES {
        let mut db = arch_sema::RootDatabase::default();
        let file = db.set_file(&format!("/std-copy/{module}.arch"), text.to_string());
        let diags = arch_sema::file_diagnostics(&db, file);
        assert!(diags.is_empty(), "{module}: {diags:?}");
    }
}

/// The tokens of a text, comments included, without their positions.
fn tokens(text: &str) -> Vec<String> {
    arch_syntax::lexer::lex(text)
        .0
        .iter()
        .map(|t| format!("{:?}", t.tok))
        .collect()
}

#[test]
fn fmt_is_idempotent_and_lossless() {
    let root = root();
    let mut files = arch_files(&root.join("examples"));
    files.extend(arch_files(&root.join("tests/ui")));
    files.extend(arch_files(&root.join("stdlib")));
    let mut formatted_count = 0;
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap_or_default();
        let Some(once) = arch_syntax::format::format(&text) else {
            continue;
        };
        formatted_count += 1;
        let twice = arch_syntax::format::format(&once).expect("formatted text lexes");
        assert_eq!(once, twice, "fmt is not idempotent on {}", f.display());
        assert_eq!(
            tokens(&text),
            tokens(&once),
            "fmt changed the tokens of {}",
            f.display()
        );
    }
    assert!(formatted_count >= 7);
}

#[test]
fn examples_are_formatted() {
    for f in arch_files(&root().join("examples")) {
        let path = f.to_string_lossy().to_string();
        let out = archc(&["fmt", "--check", &path]);
        assert_eq!(
            out.code, 0,
            "{path} is not formatted: {}{}",
            out.stdout, out.stderr
        );
    }
}
