//! The command-line contract: exit statuses, `--help`, `--format json`,
//! `--set`, `fmt --check`.

use arch_tests::{archc, root};

fn example(name: &str) -> String {
    root()
        .join("examples")
        .join(name)
        .to_string_lossy()
        .to_string()
}

fn temp_file(name: &str, bytes: &[u8]) -> String {
    arch_tests::temp_file("archc-cli", name, bytes)
}

#[test]
fn help_for_every_command() {
    for args in [
        vec!["--help"],
        vec!["check", "--help"],
        vec!["fmt", "--help"],
        vec!["help", "check"],
    ] {
        let out = archc(&args);
        assert_eq!(out.code, 0, "{args:?}: {}", out.stderr);
        assert!(out.stdout.contains("Usage"), "{args:?}: {}", out.stdout);
    }
    let help = archc(&["--help"]).stdout;
    assert!(
        help.contains("not built yet"),
        "help says what is not built yet"
    );
    assert!(help.contains("lsp"), "help lists the language server");
    assert_eq!(archc(&["lsp", "--help"]).code, 0);
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(archc(&[]).code, 2);
    assert_eq!(archc(&["frobnicate"]).code, 2);
    assert_eq!(archc(&["check"]).code, 2);
    assert_eq!(archc(&["check", "/no/such/file.arch"]).code, 2);
    assert_eq!(
        archc(&["check", "--set", "B", &example("mlp.arch")]).code,
        2
    );
    assert_eq!(
        archc(&["check", "--format", "xml", &example("mlp.arch")]).code,
        2
    );
}

#[test]
fn json_diagnostics() {
    let path = temp_file(
        "bad.arch",
        b"workload w(N = 4) {\n  input a: f32[N]\n  output b: f32[N]\n  b[i] = a[j]\n}\n",
    );
    let out = archc(&["check", "--format", "json", &path]);
    assert_eq!(out.code, 1);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("json on stdout");
    let d = &v["diagnostics"][0];
    assert_eq!(d["code"], "E0405");
    assert_eq!(d["location"]["line"], 4);
    assert_eq!(d["location"]["column"], 12);
    assert!(d["help"].as_str().is_some_and(|h| h.contains("sum[j]")));
    assert_eq!(v["errors"], 1);

    let ok = archc(&["check", "--format", "json", &example("gemm.arch")]);
    assert_eq!(ok.code, 0);
    let v: serde_json::Value = serde_json::from_str(&ok.stdout).expect("json");
    assert_eq!(v["errors"], 0);
}

#[test]
fn set_overrides_sizes() {
    // 4096 is not a multiple of the 2:4 group... it is; 4097 is not.
    let ok = archc(&["check", "--set", "N=8192", &example("mlp.arch")]);
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    let path = temp_file(
        "set.arch",
        b"import std.hw.host\nworkload w(N = 64) {\n  input a: f32[N]\n  output b: f32[N]\n  b[i] = a[i]\n}\nmapping m for w on host {\n  tile b { i: 64 }\n}\n",
    );
    assert_eq!(archc(&["check", &path]).code, 0);
    let small = archc(&["check", "--color", "never", "--set", "N=32", &path]);
    assert_eq!(small.code, 1);
    assert!(small.stderr.contains("E0604"), "{}", small.stderr);
    let unknown = archc(&["check", "--color", "never", "--set", "Q=32", &path]);
    assert_eq!(unknown.code, 1);
    assert!(unknown.stderr.contains("E0204"), "{}", unknown.stderr);
    let zero = archc(&["check", "--color", "never", "--set", "N=0", &path]);
    assert_eq!(zero.code, 1);
    assert!(zero.stderr.contains("E0202"), "{}", zero.stderr);
}

#[test]
fn auto_ranges_past_a_dimension_take_the_whole_dimension() {
    // `k: auto in 2048..4096 pow2` with K = 1024 (or after `--set`): every
    // size the range allows covers k, so the tile is all of k.
    let path = temp_file(
        "range.arch",
        b"import std.hw.host\nworkload gemm(M = 64, N = 64, K = 1024) {\n  input a: f32[M, K]\n  input b: f32[K, N]\n  output c: f32[M, N]\n  c[m, n] = sum[k] a[m, k] * b[k, n]\n}\nmapping g for gemm on host {\n  tile c at l2 { m: auto, n: auto in {16, 128}, k: auto in 2048..4096 pow2 }\n}\n",
    );
    assert_eq!(archc(&["check", &path]).code, 0);
    for (set, k) in [("K=1024", "1024"), ("K=7", "7")] {
        let out = archc(&[
            "report", &path, "--target", "host", "--format", "json", "--set", set,
        ]);
        assert_eq!(out.code, 0, "{}", out.stderr);
        let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
        let tiles = v["ops"][0]["mapping"].to_string();
        assert!(
            tiles.contains(&format!("k: {k}")) || tiles.contains(&format!("k={k}")),
            "{set}: {tiles}"
        );
    }
}

#[test]
fn fmt_formats_in_place_and_checks() {
    let path = temp_file(
        "fmt.arch",
        b"workload w(N=4){\n input a:f32[N]\n output b:f32[N]\n b[i]=a[i]*2.0\n}\n",
    );
    let out = archc(&["fmt", "--check", &path]);
    assert_eq!(out.code, 1);
    assert!(out.stdout.contains("is not formatted"));
    assert_eq!(archc(&["fmt", &path]).code, 0);
    let text = std::fs::read_to_string(&path).expect("formatted file");
    assert_eq!(
        text,
        "workload w(N = 4) {\n  input a: f32[N]\n  output b: f32[N]\n  b[i] = a[i] * 2.0\n}\n"
    );
    assert_eq!(archc(&["fmt", "--check", &path]).code, 0);
    // Syntax errors: reported, file untouched.
    let broken = temp_file("broken.arch", b"workload w { input a f32 }\n");
    let out = archc(&["fmt", "--color", "never", &broken]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("E0001"), "{}", out.stderr);
    assert_eq!(
        std::fs::read_to_string(&broken).expect("file"),
        "workload w { input a f32 }\n"
    );
}

#[test]
fn sibling_imports() {
    let dir = std::env::temp_dir().join(format!("archc-imports-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("lib")).expect("dir");
    std::fs::write(dir.join("lib/layers.arch"), "op double(x) = 2.0 * x\n").expect("write");
    std::fs::write(
        dir.join("model.arch"),
        "import lib.layers.double\nworkload w(N = 4) {\n  input a: f32[N]\n  output b: f32[N]\n  b[i] = double(a[i])\n}\n",
    )
    .expect("write");
    let ok = archc(&[
        "check",
        "--color",
        "never",
        &dir.join("model.arch").to_string_lossy(),
    ]);
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    std::fs::write(dir.join("lib/layers.arch"), "op twice(x) = 2.0 * x\n").expect("write");
    let bad = archc(&[
        "check",
        "--color",
        "never",
        &dir.join("model.arch").to_string_lossy(),
    ]);
    assert_eq!(bad.code, 1);
    assert!(bad.stderr.contains("E0104"), "{}", bad.stderr);
}

#[test]
fn other_hardwares_mappings_do_not_block_a_target() {
    // With M = 7 the h100 and mi300x mappings' fixed tiles do not fit:
    // `check` reports them, `report --target host` skips them and says so.
    let gemm = root().join("examples").join("gemm.arch");
    let gemm = gemm.to_string_lossy();
    let checked = archc(&["check", "--color", "never", "--set", "M=7", &gemm]);
    assert_eq!(checked.code, 1);
    assert!(checked.stderr.contains("E0604"), "{}", checked.stderr);
    let reported = archc(&["report", &gemm, "--target", "host", "--set", "M=7"]);
    assert_eq!(reported.code, 0, "{}", reported.stderr);
    assert!(
        reported
            .stderr
            .contains("in mappings for other hardware skipped"),
        "{}",
        reported.stderr
    );
    assert!(
        reported.stdout.contains("gemm on host"),
        "{}",
        reported.stdout
    );
}
