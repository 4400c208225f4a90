//! Codegen tests: every `tests/codegen/*.arch` names the command to run on
//! its first line (`// archc-command: build --target host --emit mlir`),
//! and its `// CHECK:` lines must appear in the output in order (each on one
//! line; `{{.*}}` matches anything within it). `// CHECK-NOT:` text must not
//! appear between the previous match and the next one (or the end).

use arch_tests::{arch_files, archc, root};

/// Finds a line at or after `from` holding `pattern`'s pieces in order;
/// returns the byte offset just past it.
fn find_line(text: &str, from: usize, pattern: &str) -> Option<(usize, usize)> {
    let pieces: Vec<&str> = pattern.split("{{.*}}").collect();
    let mut start = from;
    for line in text[from..].split_inclusive('\n') {
        let mut at = 0;
        let ok = pieces.iter().all(|p| match line[at..].find(p) {
            Some(i) => {
                at += i + p.len();
                true
            }
            None => false,
        });
        if ok {
            return Some((start, start + line.len()));
        }
        start += line.len();
    }
    None
}

fn check(name: &str, text: &str, directives: &[(bool, String)]) {
    let mut pos = 0;
    let mut pending_not: Vec<&str> = Vec::new();
    for (is_not, pattern) in directives {
        if *is_not {
            pending_not.push(pattern);
            continue;
        }
        let (line_start, next) = find_line(text, pos, pattern).unwrap_or_else(|| {
            panic!("{name}: `CHECK: {pattern}` not found after offset {pos}:\n{text}")
        });
        for n in pending_not.drain(..) {
            assert!(
                find_line(&text[..line_start], pos, n).is_none(),
                "{name}: `CHECK-NOT: {n}` found before `{pattern}`"
            );
        }
        pos = next;
    }
    for n in pending_not {
        assert!(
            find_line(text, pos, n).is_none(),
            "{name}: `CHECK-NOT: {n}` found after the last CHECK"
        );
    }
}

#[test]
fn codegen_checks() {
    let root = root();
    std::env::set_current_dir(&root).expect("repository root");
    let files = arch_files(&root.join("tests/codegen"));
    assert!(files.len() >= 6, "the codegen tests are missing");
    for path in files {
        let rel = path
            .strip_prefix(&root)
            .unwrap_or(&path)
            .to_string_lossy()
            .replace('\\', "/");
        let text = std::fs::read_to_string(&path).expect("readable");
        let command = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("// archc-command:"))
            .unwrap_or_else(|| panic!("{rel}: the first line must be `// archc-command: ...`"));
        let mut args: Vec<&str> = command.split_whitespace().collect();
        args.push(&rel);
        let directives: Vec<(bool, String)> = text
            .lines()
            .filter_map(|l| {
                l.strip_prefix("// CHECK-NOT:")
                    .map(|p| (true, p.trim().to_string()))
                    .or_else(|| {
                        l.strip_prefix("// CHECK:")
                            .map(|p| (false, p.trim().to_string()))
                    })
            })
            .collect();
        assert!(!directives.is_empty(), "{rel} has no CHECK lines");
        let out = archc(&args);
        assert_eq!(out.code, 0, "{rel}: archc failed:\n{}", out.stderr);
        check(&rel, &out.stdout, &directives);
    }
}
