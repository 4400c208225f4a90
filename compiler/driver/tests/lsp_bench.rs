//! Latency of `archc lsp` on a 5,000-line file (BENCHMARKS.md): how long
//! after a one-character edit the diagnostics arrive, and how long hover and
//! completion take. A benchmark, not a test: it prints and asserts nothing
//! about time.
//!
//!     cargo test --release -p arch-driver --test lsp_bench -- --ignored --nocapture

mod support;

use serde_json::json;
use std::time::{Duration, Instant};
use support::{position, Client};

/// About `lines` lines: blocks of a workload with two ops and its mapping.
fn big_file(lines: usize) -> String {
    let mut s = String::from("import std.hw.host\nimport std.nn.relu\n\n");
    let mut i = 0;
    while s.lines().count() < lines {
        s.push_str(&format!(
            "/// Layer {i}.\nworkload layer{i}(B = 64, K = 256, N = 512) {{\n  input x: f32[B, K]\n  weight w: f32[K, N]\n  weight b: f32[N]\n  output y: f32[B, N]\n\n  h[i, j] = sum[k] x[i, k] * w[k, j]\n  y[i, j] = relu(h[i, j] + b[j])\n}}\n\nmapping layer{i}_host for layer{i} on host {{\n  tile h {{ i: auto, j: auto, k: auto in 16..256 pow2 }}\n  order h: i, k, j\n  parallel h: i over cores\n  vectorize h: j\n}}\n\n"
        ));
        i += 1;
    }
    s
}

fn stats(name: &str, mut xs: Vec<Duration>) {
    xs.sort();
    let q = |p: f64| xs[((xs.len() as f64 - 1.0) * p).round() as usize].as_secs_f64() * 1e3;
    println!(
        "{name:<40} n={:<4} p50 {:7.2} ms  p99 {:7.2} ms  max {:7.2} ms",
        xs.len(),
        q(0.5),
        q(0.99),
        q(1.0)
    );
}

#[test]
#[ignore = "a benchmark: run with --ignored --nocapture (release)"]
fn latency_on_a_5000_line_file() {
    let rounds: usize = std::env::var("ARCH_LSP_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let mut text = big_file(5000);
    println!("file: {} lines, {} bytes", text.lines().count(), text.len());
    let uri = "file:///tmp/archc-lsp-bench/big.arch";
    let mut c = Client::start();
    let t = Instant::now();
    c.open(uri, &text);
    let first = c.diagnostics(uri, 0);
    println!(
        "open + first diagnostics: {:.1} ms ({} diagnostics)",
        t.elapsed().as_secs_f64() * 1e3,
        first.len()
    );
    assert!(first.is_empty(), "{first:?}");

    // One-character edits in the middle of the file: type a letter into a
    // tensor name, then take it out again (an error appears, then goes).
    let mut edit_times = Vec::new();
    let anchors: Vec<usize> = text
        .match_indices("  h[i, j] = sum")
        .map(|(i, _)| i + 2)
        .collect();
    let mut version = 0;
    for r in 0..rounds {
        let at = anchors[(r * 7919) % anchors.len()];
        let (line, col) = position(&text, at);
        for insert in [true, false] {
            version += 1;
            let change = if insert {
                text.insert(at, 'q');
                json!([{ "range": { "start": { "line": line, "character": col }, "end": { "line": line, "character": col } }, "text": "q" }])
            } else {
                text.remove(at);
                json!([{ "range": { "start": { "line": line, "character": col }, "end": { "line": line, "character": col + 1 } }, "text": "" }])
            };
            let t = Instant::now();
            c.change(uri, version, change);
            let d = c.diagnostics(uri, version);
            edit_times.push(t.elapsed());
            assert_eq!(d.is_empty(), !insert, "{d:?}");
        }
    }

    let mut hovers = Vec::new();
    let mut cost_hovers = Vec::new();
    let mut completions = Vec::new();
    let mappings: Vec<usize> = text
        .match_indices("_host for")
        .map(|(i, _)| i - 3)
        .collect();
    let tensors: Vec<usize> = text.match_indices("x[i, k]").map(|(i, _)| i).collect();
    let bodies: Vec<usize> = text.match_indices("  output y").map(|(i, _)| i).collect();
    for r in 0..rounds {
        let (l, ch) = position(&text, tensors[(r * 7919) % tensors.len()]);
        let t = Instant::now();
        let h = c.at("hover", uri, l, ch);
        hovers.push(t.elapsed());
        assert!(
            h["result"]["contents"]["value"]
                .as_str()
                .unwrap_or("")
                .contains("f32[64, 256]"),
            "{h}"
        );
        let (l, ch) = position(&text, mappings[(r * 7919) % mappings.len()]);
        let t = Instant::now();
        let h = c.at("hover", uri, l, ch);
        cost_hovers.push(t.elapsed());
        assert!(
            h["result"]["contents"]["value"]
                .as_str()
                .unwrap_or("")
                .contains("predicted"),
            "{h}"
        );
        let (l, ch) = position(&text, bodies[(r * 104729) % bodies.len()]);
        let t = Instant::now();
        let items = c.at("completion", uri, l, ch);
        completions.push(t.elapsed());
        assert!(
            items["result"].as_array().is_some_and(|a| a.len() > 10),
            "{items}"
        );
    }
    stats("diagnostics after a one-character edit", edit_times);
    stats("hover (tensor)", hovers);
    stats("hover (mapping: predicted cost)", cost_hovers);
    stats("completion (workload body)", completions);
    c.shutdown();
}
