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

/// The workloads of a program and their size parameters, read from the
/// `workload name(P = v, ...)` headers.
fn workload_headers(text: &str) -> Vec<(String, Vec<String>)> {
    text.lines()
        .filter_map(|l| l.trim_start().strip_prefix("workload "))
        .filter_map(|rest| {
            let (name, params) = rest.split_once('(')?;
            let params = params.split_once(')')?.0;
            let names = params
                .split(',')
                .filter_map(|p| p.split_once('=').map(|(n, _)| n.trim().to_string()))
                .filter(|n| !n.is_empty())
                .collect();
            Some((name.trim().to_string(), names))
        })
        .collect()
}

/// `--set` on every size of every example, to sizes the mappings were not
/// written for (7, 12, 123), builds for host: mappings for other hardware
/// never block, and auto tile ranges past a dimension take all of it.
#[test]
fn every_example_builds_for_host_with_other_sizes() {
    let dir = std::env::temp_dir().join(format!("archc-set-builds-{}", std::process::id()));
    let mut built = 0;
    for f in arch_files(&root().join("examples")) {
        let path = f.to_string_lossy().to_string();
        let text = std::fs::read_to_string(&f).expect("example");
        for (workload, params) in workload_headers(&text) {
            for value in ["7", "12", "123"] {
                let mut args: Vec<String> = vec![
                    "build".into(),
                    path.clone(),
                    "--target".into(),
                    "host".into(),
                    "--workload".into(),
                    workload.clone(),
                    "--budget".into(),
                    "2s".into(),
                    "--color".into(),
                    "never".into(),
                    "-o".into(),
                    dir.join(&workload).to_string_lossy().to_string(),
                ];
                for p in &params {
                    args.push("--set".into());
                    args.push(format!("{p}={value}"));
                }
                // Sizes the workload itself rejects (a 2:4 group, a
                // window larger than its input) are not the point here.
                let mut check: Vec<&str> = vec!["check", &path, "--color", "never"];
                let sets: Vec<String> = params.iter().map(|p| format!("{p}={value}")).collect();
                for s in &sets {
                    check.push("--set");
                    check.push(s);
                }
                let checked = archc(&check);
                let own_errors = checked.stderr.lines().any(|l| {
                    l.contains("Error:")
                        && !["E0604", "E0605", "E0610"].iter().any(|c| l.contains(c))
                });
                if checked.code != 0 && own_errors {
                    continue;
                }
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                let out = archc(&args);
                let unsupported = out.stderr.contains("does not handle");
                assert!(
                    out.code == 0 || unsupported,
                    "{path} {workload} at {value}:\n{}",
                    out.stderr
                );
                built += usize::from(out.code == 0);
            }
        }
    }
    assert!(built >= 15, "only {built} builds");
    let _ = std::fs::remove_dir_all(&dir);
}
