//! Protocol tests of `archc lsp`: the real binary over stdio, driven by the
//! independent JSON-RPC client in `support/`.

mod support;

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use support::{apply, file_uri, position, Client};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

fn example(name: &str) -> (String, String) {
    let path = root().join("examples").join(name);
    let text = std::fs::read_to_string(&path).expect("example");
    (file_uri(&path), text)
}

type Terms = Vec<(String, (u32, u32), (u32, u32), String)>;

/// `archc check --format json` of `text` written to a scratch file: each
/// diagnostic's code, start and end (LSP line and UTF-16 column), message.
fn check_json(text: &str) -> Terms {
    let dir = std::env::temp_dir().join(format!("archc-lsp-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("scratch.arch");
    std::fs::write(&path, text).expect("write");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_archc"))
        .args(["check", "--format", "json"])
        .arg(&path)
        .output()
        .expect("archc check");
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    v["diagnostics"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|d| {
            let at = |k: &str| position(text, d["location"][k].as_u64().unwrap_or(0) as usize);
            (
                d["code"].as_str().unwrap_or_default().to_string(),
                at("start"),
                at("end"),
                d["message"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// The server's diagnostics in the same terms.
fn lsp_terms(diags: &[Value]) -> Terms {
    diags
        .iter()
        .map(|d| {
            let r = &d["range"];
            let at = |p: &Value| {
                (
                    p["line"].as_u64().unwrap_or(0) as u32,
                    p["character"].as_u64().unwrap_or(0) as u32,
                )
            };
            (
                d["code"].as_str().unwrap_or_default().to_string(),
                at(&r["start"]),
                at(&r["end"]),
                d["message"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn find(text: &str, needle: &str) -> (u32, u32) {
    position(
        text,
        text.find(needle)
            .unwrap_or_else(|| panic!("`{needle}` in text")),
    )
}

const BROKEN: &str = "import std.hw.host\n\nworkload w(N = 64) {\n  input a: f32[N, N]\n  output c: f32[N, N]\n  c[i, j] = a[i, j] * scale\n}\n";

#[test]
fn diagnostics_appear_with_code_and_range_then_clear_when_fixed() {
    let mut c = Client::start();
    let uri = "file:///tmp/archc-lsp-test/broken.arch";
    c.open(uri, BROKEN);
    let diags = c.diagnostics(uri, 0);
    assert_eq!(lsp_terms(&diags), check_json(BROKEN));
    assert_eq!(diags.len(), 1, "{diags:?}");
    assert_eq!(diags[0]["code"], "E0101");
    let (line, col) = find(BROKEN, "scale");
    assert_eq!(
        diags[0]["range"]["start"],
        json!({ "line": line, "character": col })
    );
    assert_eq!(
        diags[0]["range"]["end"],
        json!({ "line": line, "character": col + 5 })
    );
    // Replace `scale` by `2.0`: no error left.
    c.change(
        uri,
        1,
        json!([{ "range": { "start": { "line": line, "character": col },
                            "end": { "line": line, "character": col + 5 } }, "text": "2.0" }]),
    );
    assert_eq!(c.diagnostics(uri, 1), Vec::<Value>::new());
    c.shutdown();
}

#[test]
fn malformed_messages_get_protocol_errors_and_the_server_keeps_serving() {
    let mut c = Client::start();
    let error_code = |v: &Value| v["error"]["code"].as_i64();
    let is_error = |v: &Value| v.get("error").is_some() && v.get("method").is_none();
    // A body that is not JSON: parse error, id null.
    let garbage = b"{\"jsonrpc\": \"2.0\", \"id\": 7, \"method\": ";
    c.send_raw(format!("Content-Length: {}\r\n\r\n", garbage.len()).as_bytes());
    c.send_raw(garbage);
    let answer = c
        .next_matching(is_error)
        .expect("an answer to the bad body");
    assert_eq!(error_code(&answer), Some(-32700), "{answer}");
    assert_eq!(answer["id"], Value::Null);
    // JSON that is not a message: invalid request.
    let not_message = br#"[1, 2, 3]"#;
    c.send_raw(format!("Content-Length: {}\r\n\r\n", not_message.len()).as_bytes());
    c.send_raw(not_message);
    let answer = c.next_matching(is_error).expect("an answer to the array");
    assert_eq!(error_code(&answer), Some(-32600), "{answer}");
    // Headers without a length, then invalid UTF-8 in a body.
    c.send_raw(b"Content-Type: text/plain\r\n\r\n");
    let answer = c.next_matching(is_error).expect("an answer to the headers");
    assert_eq!(error_code(&answer), Some(-32700), "{answer}");
    c.send_raw(b"Content-Length: 3\r\n\r\n\xff\xfe{");
    let answer = c
        .next_matching(is_error)
        .expect("an answer to invalid UTF-8");
    assert_eq!(error_code(&answer), Some(-32700), "{answer}");
    // The server still answers requests and publishes diagnostics.
    let uri = "file:///tmp/archc-lsp-test/after-garbage.arch";
    c.open(uri, BROKEN);
    let diags = c.diagnostics(uri, 0);
    assert_eq!(diags.len(), 1, "{diags:?}");
    let (line, col) = find(BROKEN, "scale");
    let hover = c.at("hover", uri, line, col);
    assert!(hover.get("result").is_some(), "{hover}");
    c.shutdown();
}

#[test]
fn hover_shows_tensors_levels_units_and_predicted_cost() {
    let mut c = Client::start();
    let (uri, text) = example("mlp.arch");
    c.open(&uri, &text);
    c.diagnostics(&uri, 0);
    let hover = |c: &mut Client, needle: &str, skip: u32| -> String {
        let (l, ch) = find(&text, needle);
        let r = c.at("hover", &uri, l, ch + skip);
        r["result"]["contents"]["value"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let x = hover(&mut c, "input x", 6);
    assert!(x.contains("input x: f32[256, 1024]"), "{x}");
    assert!(x.contains("dense"), "{x}");
    let y = hover(&mut c, "y[i, j] =", 0);
    assert!(y.contains("output y: f32[256, 4096]"), "{y}");
    assert!(y.contains("mlp_host") && y.contains("bound by"), "{y}");
    let m = hover(&mut c, "mapping mlp_host", 8);
    assert!(m.contains("predicted") && m.contains("| `y` |"), "{m}");
    let host = hover(&mut c, "on host", 3);
    assert!(
        host.contains("class `cpu`") && host.contains("| `l2` |"),
        "{host}"
    );
    let level = hover(&mut c, "at l2", 3);
    assert!(
        level.contains("level `l2`") && level.contains("B/s"),
        "{level}"
    );
    c.shutdown();

    // A unit in a hardware declaration: its value in base units.
    let mut c = Client::start();
    let uri = "file:///tmp/archc-lsp-test/hw.arch";
    let hw = "hardware tiny : cpu {\n  clock 1.5 GHz\n  cores 1\n  level dram {\n    size 1 GiB\n    bandwidth 10 GB/s\n  }\n}\n";
    c.open(uri, hw);
    c.diagnostics(uri, 0);
    let (l, ch) = find(hw, "1 GiB");
    let r = c.at("hover", uri, l, ch + 3);
    let v = r["result"]["contents"]["value"]
        .as_str()
        .unwrap_or_default();
    assert!(
        v.contains("1073741824") || v.contains("1.073741824e9"),
        "{v}"
    );
    c.shutdown();
}

#[test]
fn definition_and_references_cross_into_the_standard_library() {
    let mut c = Client::start();
    let (uri, text) = example("mlp.arch");
    c.open(&uri, &text);
    c.diagnostics(&uri, 0);
    // `relu` is declared in std.nn.
    let (l, ch) = find(&text, "relu(sum");
    let r = c.at("definition", &uri, l, ch + 1);
    let target = r["result"]["uri"].as_str().unwrap_or_default().to_string();
    assert!(target.ends_with("/nn.arch"), "{r}");
    let path = target.trim_start_matches("file://");
    let std_text = std::fs::read_to_string(path).expect("the std module is on disk");
    let line = r["result"]["range"]["start"]["line"].as_u64().unwrap_or(0) as usize;
    assert!(
        std_text.lines().nth(line).unwrap_or("").contains("relu"),
        "{r}"
    );
    // `x` in the statement goes to its declaration.
    let (l, ch) = find(&text, "x[i, k]");
    let r = c.at("definition", &uri, l, ch);
    assert_eq!(r["result"]["uri"], json!(uri));
    assert_eq!(
        r["result"]["range"]["start"],
        json!({ "line": find(&text, "x: f32").0, "character": 8 })
    );
    // References of `w`: its declaration, its use, and the mapping's precision knob.
    let (l, ch) = find(&text, "weight w");
    let r = c.at("references", &uri, l, ch + 7);
    let refs = r["result"].as_array().cloned().unwrap_or_default();
    assert_eq!(refs.len(), 3, "{r}");
    c.shutdown();
}

#[test]
fn definition_follows_an_import_to_a_sibling_file_on_disk() {
    let dir = std::env::temp_dir().join(format!("archc-lsp-import-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let lib = "/// A small machine.\nhardware tiny : cpu {\n  clock 1 GHz\n  cores 1\n  level dram {\n    bandwidth 10 GB/s\n    energy 20 pJ/B\n  }\n  level l1 {\n    size 32 KiB\n    bandwidth 100 GB/s\n    energy 1 pJ/B\n  }\n  compute fma {\n    f32: 16 flop/cycle\n    vector 32 B\n    energy 1 pJ/flop\n  }\n}\n";
    std::fs::write(dir.join("machines.arch"), lib).expect("write");
    let main = "import machines.tiny\n\nworkload w(N = 64) {\n  input a: f32[N, N]\n  output c: f32[N, N]\n  c[i, j] = a[i, j] * 2.0\n}\n\nmapping m for w on tiny {\n  tile c at l1 { i: auto, j: auto }\n}\n";
    let main_path = dir.join("main.arch");
    std::fs::write(&main_path, main).expect("write");
    let uri = file_uri(&main_path);
    let mut c = Client::start();
    // The sibling is not open: the server reads it from disk.
    c.open(&uri, main);
    assert_eq!(c.diagnostics(&uri, 0), Vec::<Value>::new());
    let (l, ch) = find(main, "on tiny");
    let r = c.at("definition", &uri, l, ch + 4);
    assert_eq!(
        r["result"]["uri"],
        json!(file_uri(&dir.join("machines.arch"))),
        "{r}"
    );
    assert_eq!(
        r["result"]["range"]["start"],
        json!({ "line": 1, "character": 9 })
    );
    let h = c.at("hover", &uri, l, ch + 4);
    let text = h["result"]["contents"]["value"]
        .as_str()
        .unwrap_or_default();
    assert!(
        text.contains("A small machine.") && text.contains("| `l1` |"),
        "{text}"
    );
    // References of `tiny` from the importing file: the import, the use and the declaration.
    let r = c.at("references", &uri, l, ch + 4);
    assert_eq!(r["result"].as_array().map(Vec::len), Some(3), "{r}");
    c.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn completion_offers_keywords_knobs_and_fields() {
    let mut c = Client::start();
    let uri = "file:///tmp/archc-lsp-test/complete.arch";
    let text = "import std.hw.host\n\nworkload w(N = 64) {\n  input a: f32[N, N]\n  output c: f32[N, N]\n  c[i, j] = a[i, j] * 2.0\n}\n\nmapping m for w on host {\n  \n}\n\n";
    c.open(uri, text);
    c.diagnostics(uri, 0);
    let labels = |r: &Value| -> Vec<String> {
        r["result"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .filter_map(|i| i["label"].as_str().map(String::from))
            .collect()
    };
    let (l, _) = find(text, "  \n}");
    let r = c.at("completion", uri, l, 2);
    let in_mapping = labels(&r);
    assert!(r.get("error").is_none(), "{r}");
    for want in ["tile", "order", "vectorize", "precision", "c", "i", "l2"] {
        assert!(
            in_mapping.iter().any(|x| x == want),
            "{want} in {in_mapping:?}"
        );
    }
    let top = labels(&c.at("completion", uri, 12, 0));
    for want in ["workload", "hardware", "mapping", "host", "w"] {
        assert!(top.iter().any(|x| x == want), "{want} in {top:?}");
    }
    let (l, ch) = find(text, "f32[N, N]\n  output");
    let body = labels(&c.at("completion", uri, l, ch));
    for want in ["f32", "bf16", "sum", "a", "N"] {
        assert!(body.iter().any(|x| x == want), "{want} in {body:?}");
    }
    c.shutdown();
}

#[test]
fn formatting_symbols_tokens_hints_and_the_pin_action() {
    let mut c = Client::start();
    let (uri, text) = example("mlp.arch");
    // Formatting: a badly indented copy comes back as `archc fmt` writes it.
    let messy = text
        .replace("  input x", "input    x")
        .replace("  order i, j, k", "order   i,j,k");
    let muri = "file:///tmp/archc-lsp-test/messy.arch";
    c.open(muri, &messy);
    c.diagnostics(muri, 0);
    let r = c.request(
        "textDocument/formatting",
        json!({ "textDocument": { "uri": muri }, "options": { "tabSize": 2, "insertSpaces": true } }),
    );
    let edits = r["result"].as_array().cloned().unwrap_or_default();
    assert_eq!(edits.len(), 1, "{r}");
    let mut formatted = messy.clone();
    let p = |v: &Value| {
        (
            v["line"].as_u64().unwrap_or(0) as u32,
            v["character"].as_u64().unwrap_or(0) as u32,
        )
    };
    apply(
        &mut formatted,
        p(&edits[0]["range"]["start"]),
        p(&edits[0]["range"]["end"]),
        edits[0]["newText"].as_str().unwrap_or_default(),
    );
    assert_eq!(
        formatted, text,
        "formatting restores the example's own layout"
    );

    c.open(&uri, &text);
    c.diagnostics(&uri, 0);
    let r = c.request(
        "textDocument/documentSymbol",
        json!({ "textDocument": { "uri": uri } }),
    );
    let names: Vec<&str> = r["result"]
        .as_array()
        .map(|a| a.iter().filter_map(|s| s["name"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(names, ["mlp", "mlp_host", "mlp_h100"], "{r}");
    let tensors = r["result"][0]["children"]
        .as_array()
        .map(Vec::len)
        .unwrap_or(0);
    assert_eq!(tensors, 4, "{r}");

    let r = c.request(
        "textDocument/semanticTokens/full",
        json!({ "textDocument": { "uri": uri } }),
    );
    let data = r["result"]["data"].as_array().map(Vec::len).unwrap_or(0);
    assert!(data > 5 * 50, "{r}");
    assert_eq!(data % 5, 0);

    let end = position(&text, text.len());
    let r = c.request(
        "textDocument/inlayHint",
        json!({ "textDocument": { "uri": uri }, "range": { "start": { "line": 0, "character": 0 }, "end": { "line": end.0, "character": end.1 } } }),
    );
    let hints: Vec<String> = r["result"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter_map(|h| h["label"].as_str().map(String::from))
        .collect();
    let (yl, _) = find(&text, "y[i, j] =");
    let on_y = r["result"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .find(|h| {
            h["position"]["line"] == yl
                && h["label"].as_str().unwrap_or("").starts_with("mlp_host:")
        });
    assert!(on_y.is_some(), "{hints:?}");
    assert!(
        hints
            .iter()
            .any(|h| h.contains("(compute)") || h.contains("(dram)") || h.contains("(l")),
        "{hints:?}"
    );

    // The pin action: the mapping comes back with every knob fixed.
    let (l, ch) = find(&text, "mapping mlp_host");
    let r = c.request(
        "textDocument/codeAction",
        json!({ "textDocument": { "uri": uri }, "range": { "start": { "line": l, "character": ch }, "end": { "line": l, "character": ch } }, "context": { "diagnostics": [] } }),
    );
    let action = &r["result"][0];
    assert!(
        action["title"].as_str().unwrap_or("").contains("mlp_host"),
        "{r}"
    );
    let edit = &action["edit"]["changes"][uri.as_str()][0];
    let new_text = edit["newText"].as_str().unwrap_or_default();
    assert!(
        new_text.starts_with("mapping mlp_host for mlp on host {"),
        "{new_text}"
    );
    assert!(
        !new_text.contains("auto") && new_text.contains("tile y at l2 {"),
        "{new_text}"
    );
    let mut pinned = text.clone();
    apply(
        &mut pinned,
        p(&edit["range"]["start"]),
        p(&edit["range"]["end"]),
        new_text,
    );
    assert!(
        check_json(&pinned).is_empty(),
        "the pinned program checks: {pinned}"
    );
    // On one open knob: an action that pins it alone, first.
    let (l, ch) = find(&text, "k: auto in 256..1024 pow2");
    let r = c.request(
        "textDocument/codeAction",
        json!({ "textDocument": { "uri": uri }, "range": { "start": { "line": l, "character": ch + 4 }, "end": { "line": l, "character": ch + 4 } }, "context": { "diagnostics": [] } }),
    );
    let actions = r["result"].as_array().cloned().unwrap_or_default();
    assert_eq!(actions.len(), 2, "{r}");
    let title = actions[0]["title"].as_str().unwrap_or_default();
    assert!(title.contains("the tile of `k` of `y` at `l2`"), "{title}");
    let edit = &actions[0]["edit"]["changes"][uri.as_str()][0];
    let value = edit["newText"].as_str().unwrap_or_default();
    let k: u64 = value.parse().expect("a tile size");
    assert!([256, 512, 1024].contains(&k), "{value}");
    let mut one = text.clone();
    apply(
        &mut one,
        p(&edit["range"]["start"]),
        p(&edit["range"]["end"]),
        value,
    );
    assert!(one.contains(&format!("k: {k} }}")), "{one}");
    assert!(check_json(&one).is_empty(), "{one}");
    c.shutdown();
}

/// A seeded generator (xorshift): the same seed, the same edits.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

const PIECES: &[&str] = &[
    "workload",
    "mapping m for mlp on host {",
    "}",
    "{",
    "]",
    "[",
    "(",
    ")",
    "tile y { i: auto }",
    "input z: f32[B, K]\n",
    "sum[k]",
    " ",
    "\n",
    "// comment\n",
    "/* open",
    "*/",
    "\"str",
    "x",
    "y",
    "1e999",
    "99999999999999999999999",
    "2:4",
    "\u{1F600}",
    "é",
    "\u{FFFD}",
    "\t",
    "\r\n",
    "@#$",
    "import std.nn.{relu, gelu}\n",
    "hardware h : cpu { level dram { size: 1 GiB } }\n",
    "=",
    ",",
    "auto in 16..256 pow2",
    "precision w: bf16",
    "order i, j, k",
    "\u{0}",
    "ℝ",
    "output",
    "B",
    "512",
];

/// The final diagnostics of a long random editing session equal a
/// from-scratch `archc check` of the final text; the server never dies.
#[test]
fn ten_thousand_random_edits_leave_the_server_consistent() {
    let edits: u64 = std::env::var("ARCH_LSP_EDITS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let seed: u64 = std::env::var("ARCH_LSP_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(17);
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let (_, mut text) = example("mlp.arch");
    let uri = "file:///tmp/archc-lsp-test/random.arch";
    let mut c = Client::start();
    c.open(uri, &text);
    for version in 1..=edits as i64 {
        let lines = text.matches('\n').count() as u64 + 1;
        // Positions: mostly valid, some past the end of a line or the file,
        // some inside a surrogate pair.
        let pos = |rng: &mut Rng, text: &str| -> (u32, u32) {
            let line = match rng.below(20) {
                0 => lines + rng.below(5),
                _ => rng.below(lines),
            } as u32;
            let ch = match rng.below(10) {
                0 => rng.below(200),
                _ => rng.below(40),
            } as u32;
            let _ = text;
            (line, ch)
        };
        let a = pos(&mut rng, &text);
        // Mostly short deletions on one line; now and then across lines.
        let b = match rng.below(10) {
            0..=3 => a,
            4..=8 => (a.0, a.1 + rng.below(8) as u32),
            _ => (a.0 + rng.below(3) as u32, rng.below(30) as u32),
        };
        let insert = match rng.below(200) {
            // A whole example now and then keeps the text rich.
            0 => example("mlp.arch").1,
            1..=30 => String::new(),
            31..=90 => {
                let n = rng.below(3) as usize + 1;
                (0..n)
                    .map(|_| PIECES[rng.below(PIECES.len() as u64) as usize])
                    .collect()
            }
            _ => PIECES[rng.below(PIECES.len() as u64) as usize].to_string(),
        };
        // Keep the text from growing without bound.
        let (a, b) = if text.len() > 20_000 {
            ((0, 0), (lines as u32 / 2, 0))
        } else {
            (a, b)
        };
        apply(&mut text, a, b, &insert);
        c.change(
            uri,
            version,
            json!([{ "range": { "start": { "line": a.0, "character": a.1 }, "end": { "line": b.0, "character": b.1 } }, "text": insert }]),
        );
        // Now and then a request in the middle of the stream.
        if version % 500 == 0 {
            let r = c.at("hover", uri, a.0, a.1);
            assert!(r.get("result").is_some() || r.get("error").is_some(), "{r}");
        }
    }
    let diags = c.diagnostics(uri, edits as i64);
    let want = check_json(&text);
    eprintln!(
        "{edits} edits (seed {seed}): final text {} bytes, {} diagnostics",
        text.len(),
        want.len()
    );
    assert_eq!(lsp_terms(&diags), want, "final text:\n{text}");
    c.shutdown();
}
