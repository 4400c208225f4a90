//! Hostile inputs get a diagnostic and exit status 1: never a panic, a hang
//! or a stack overflow.

use arch_tests::{archc, codes_in};

fn temp_file(name: &str, bytes: &[u8]) -> String {
    arch_tests::temp_file("archc-hostile", name, bytes)
}

fn expect_code(name: &str, bytes: &[u8], code: &str) {
    let path = temp_file(name, bytes);
    let out = archc(&["check", "--color", "never", &path]);
    assert_eq!(out.code, 1, "{name}: status {}\n{}", out.code, out.stderr);
    assert!(
        codes_in(&out.stderr).contains(&code.to_string()),
        "{name}: expected {code}:\n{}",
        out.stderr
    );
    let json = archc(&["check", "--format", "json", &path]);
    assert_eq!(json.code, 1);
    assert!(json.stdout.contains(code), "{name} (json)");
}

#[test]
fn invalid_utf8() {
    expect_code(
        "utf8.arch",
        b"workload w(N = 4) {\n  input a: f32[N] \xff\xfe\n}\n",
        "E0009",
    );
}

#[test]
fn ten_megabyte_file() {
    let mut text = String::from("workload w(N = 4) {\n");
    while text.len() < 10 * 1024 * 1024 {
        text.push_str("  // padding padding padding padding padding padding padding padding\n");
    }
    text.push_str("}\n");
    expect_code("big.arch", text.as_bytes(), "E0008");
    let path = temp_file("big.arch", text.as_bytes());
    let out = archc(&["check", "--color", "never", &path]);
    insta::assert_snapshot!(out.stderr.replace(&path, "big.arch"));
}

#[test]
fn nesting_one_hundred_thousand_deep() {
    let text = format!(
        "workload w(N = 4) {{\n  output b: f32[N]\n  b[i] = {}1.0{}\n}}\n",
        "(".repeat(100_000),
        ")".repeat(100_000)
    );
    expect_code("deep.arch", text.as_bytes(), "E0006");
    let brackets = format!("workload w {{ {} }}", "[".repeat(100_000));
    expect_code("deep2.arch", brackets.as_bytes(), "E0006");
    let braces = format!("hardware h : cpu {}", "{".repeat(100_000));
    expect_code("deep3.arch", braces.as_bytes(), "E0006");
}

#[test]
fn operator_chain_of_twenty_thousand() {
    let text = format!(
        "workload w(N = 4) {{\n  input a: f32[N]\n  output b: f32[N]\n  b[i] = {}a[i]\n}}\n",
        "a[i] + ".repeat(20_000)
    );
    expect_code("chain.arch", text.as_bytes(), "E0006");
    let unary = format!(
        "workload w(N = 4) {{\n  output b: f32[N]\n  b[i] = {}1.0\n}}\n",
        "-".repeat(20_000)
    );
    expect_code("unary.arch", unary.as_bytes(), "E0006");
}

#[test]
fn unterminated_comment_and_string() {
    expect_code(
        "comment.arch",
        b"workload w(N = 4) {\n  /* never closed\n  input a: f32[N]\n}\n",
        "E0004",
    );
    expect_code(
        "string.arch",
        b"hardware h : cpu {\n  vendor \"never closed\n}\n",
        "E0005",
    );
}

#[test]
fn size_parameter_of_ten_to_the_thirty() {
    expect_code("huge.arch", b"workload w(N = 1000000000000000000000000000000) {\n  input a: f32[N]\n  output b: f32[N]\n  b[i] = a[i]\n}\n", "E0201");
    expect_code(
        "huge_float.arch",
        b"workload w(N = 1e30) {\n  input a: f32[N]\n  output b: f32[N]\n  b[i] = a[i]\n}\n",
        "E0205",
    );
    // Sizes that fit alone but not together.
    expect_code(
        "product.arch",
        b"workload w(N = 1000000000) {\n  input a: f32[N, N, N]\n  output b: f32[N]\n  b[i] = sum[j, k] a[i, j, k]\n}\n",
        "E0203",
    );
    let set = archc(&[
        "check",
        "--color",
        "never",
        "--set",
        "N=1000000000000000000000000000000",
        &temp_file(
            "ok.arch",
            b"workload w(N = 4) {\n  input a: f32[N]\n  output b: f32[N]\n  b[i] = a[i]\n}\n",
        ),
    ]);
    assert_eq!(set.code, 1, "{}", set.stderr);
    assert!(set.stderr.contains("E0202"), "{}", set.stderr);
}

#[test]
fn garbage_and_empty_files() {
    expect_code("garbage.arch", b"\x01\x02 hello } { ] [ ) ( @@@", "E0003");
    let empty = temp_file("empty.arch", b"");
    assert_eq!(archc(&["check", &empty]).code, 0);
    let comments = temp_file("comments.arch", b"// only a comment\n/* and another */\n");
    assert_eq!(archc(&["check", &comments]).code, 0);
}

#[test]
fn one_long_line_is_shown_as_a_window() {
    let mut text = String::from("workload w(N = 4) { input a: f32[N] output b: f32[N] b[i] = ");
    text.push_str(&"a[i] + ".repeat(400));
    text.push_str("zz[i] }");
    let path = temp_file("long_line.arch", text.as_bytes());
    let out = archc(&["check", "--color", "never", &path]);
    assert_eq!(out.code, 1);
    assert_eq!(
        codes_in(&out.stderr),
        vec!["E0101".to_string()],
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.len() < 3_000,
        "the report shows a window, not the whole line ({} bytes)",
        out.stderr.len()
    );
    assert!(out.stderr.contains("zz[i]"));
}

#[test]
fn thousands_of_errors_are_capped_in_text() {
    let mut text = String::from("workload w(N = 4) {\n");
    for _ in 0..5_000 {
        text.push_str("  output b: f32[N]\n");
    }
    text.push_str("}\n");
    let path = temp_file("many.arch", text.as_bytes());
    let out = archc(&["check", "--color", "never", &path]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("showing the first 100"),
        "{}",
        &out.stderr[out.stderr.len().saturating_sub(300)..]
    );
    let json = archc(&["check", "--format", "json", &path]);
    let v: serde_json::Value = serde_json::from_str(&json.stdout).expect("json");
    assert!(v["errors"].as_u64().is_some_and(|n| n >= 4_999));
}
