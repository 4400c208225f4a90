//! The language reference cites tests by path (and function name): every
//! citation must point at something that exists, every diagnostic code must
//! be documented, and no rule may be left untested.

use arch_tests::root;

fn spec_texts() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(root().join("spec"))
        .expect("spec/")
        .flatten()
    {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "md") {
            out.push((
                path.display().to_string(),
                std::fs::read_to_string(&path).unwrap_or_default(),
            ));
        }
    }
    out
}

/// Backticked references such as `tests/ui/E0101_x.arch` or `a/b.rs::name`.
fn citations(text: &str) -> Vec<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .filter(|s| {
            (s.starts_with("tests/") || s.starts_with("compiler/") || s.starts_with("examples/"))
                && !s.contains(' ')
        })
        .map(str::to_string)
        .collect()
}

#[test]
fn every_cited_test_exists() {
    let root = root();
    let mut checked = 0;
    for (file, text) in spec_texts() {
        for c in citations(&text) {
            let (path, function) = match c.split_once("::") {
                Some((p, f)) => (p.to_string(), Some(f.to_string())),
                None => (c.clone(), None),
            };
            if path.contains(['*', '<']) || path.ends_with('/') {
                continue;
            }
            let full = root.join(&path);
            assert!(full.exists(), "{file} cites {c}, which does not exist");
            if let Some(f) = function {
                let source = std::fs::read_to_string(&full).unwrap_or_default();
                assert!(
                    source.contains(&format!("fn {f}(")),
                    "{file} cites {c}: no function `{f}` in {path}"
                );
            }
            checked += 1;
        }
    }
    assert!(checked > 150, "only {checked} citations found");
}

#[test]
fn every_code_is_documented_and_no_rule_is_untested() {
    let diagnostics =
        std::fs::read_to_string(root().join("spec/diagnostics.md")).expect("spec/diagnostics.md");
    for (code, _) in arch_sema::CODES {
        assert!(
            diagnostics.contains(&format!("| {code} |")),
            "spec/diagnostics.md has no row for {code}"
        );
    }
    for (file, text) in spec_texts() {
        for line in text.lines() {
            assert!(
                !line.trim_start().starts_with("Untested:"),
                "{file}: {line}"
            );
        }
    }
}
