//! `archc tune` and `archc report`: the report contract, determinism, the
//! round trip of emitted mappings, and hand-computed npu cycles.

use arch_tests::{archc, root};

fn example(name: &str) -> String {
    root()
        .join("examples")
        .join(name)
        .to_string_lossy()
        .to_string()
}

fn json(stdout: &str) -> serde_json::Value {
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{stdout}"))
}

#[test]
fn report_json_has_the_contract_fields() {
    let out = archc(&[
        "report",
        &example("mlp.arch"),
        "--target",
        "host",
        "--format",
        "json",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let v = json(&out.stdout);
    assert_eq!(v["workload"], "mlp");
    assert_eq!(v["target"], "host");
    let op = &v["ops"][0];
    assert_eq!(op["name"], "y");
    assert!(op["mapping"]["order"].is_string());
    let p = &op["predicted"];
    for field in [
        "cycles",
        "compute_cycles",
        "latency_s",
        "energy_j",
        "lower_bound_s",
        "utilization",
    ] {
        assert!(p[field].as_f64().is_some_and(|x| x > 0.0), "{field}: {p}");
    }
    assert!(p["bottleneck"].is_string());
    let levels = p["levels"].as_array().expect("levels");
    assert_eq!(levels.len(), 4, "dram, l3, l2, l1");
    assert!(levels
        .iter()
        .all(|l| l["name"].is_string() && l["bytes"].is_number() && l["time_s"].is_number()));
    assert!(p["latency_s"].as_f64() >= p["lower_bound_s"].as_f64());
    assert!(v["total"]["latency_s"].as_f64().is_some_and(|x| x > 0.0));
}

#[test]
fn tune_is_deterministic_and_emits_a_mapping_that_round_trips() {
    let dir = std::env::temp_dir().join(format!("archc-tune-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::copy(example("gemm.arch"), dir.join("gemm.arch")).expect("copy");
    let src = dir.join("gemm.arch").to_string_lossy().to_string();
    let emitted = dir.join("gemm_tuned.arch").to_string_lossy().to_string();
    let args = [
        "tune",
        src.as_str(),
        "--target",
        "host",
        "--seed",
        "5",
        "--format",
        "json",
        "--emit-mapping",
        emitted.as_str(),
    ];
    let first = archc(&args);
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert!(first.stderr.contains("evaluated"), "{}", first.stderr);
    let second = archc(&args);
    assert_eq!(first.stdout, second.stdout, "same seed, same report");
    // The emitted mapping checks clean and reports the tuned cost.
    let check = archc(&["check", &emitted]);
    assert_eq!(check.code, 0, "{}", check.stderr);
    let text = std::fs::read_to_string(&emitted).expect("emitted mapping");
    assert!(!text.contains("auto"), "every knob is pinned:\n{text}");
    let again = archc(&["report", &emitted, "--target", "host", "--format", "json"]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(json(&again.stdout)["total"], json(&first.stdout)["total"]);
}

#[test]
fn npu_cycles_by_hand() {
    // gemm 1024^3 on npu16 (16 x 16, weight stationary). The first
    // schedule holds 64^3 tiles in the 64 KiB accumulator (64 * 64 * (1 + 1
    // + 4) B = 24 KiB; 128^3 would need 96 KiB), so the array runs 16^3 =
    // 4096 tiles, each Sr = K = 64 (4 folds) by Sc = N = 64 (4 folds) with
    // T = M = 64: 4096 * 16 * (32 + 16 + 64 - 2) - 1.
    let out = archc(&[
        "report",
        &example("gemm.arch"),
        "--target",
        "npu16",
        "--format",
        "json",
        "--first-guess",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let v = json(&out.stdout);
    assert_eq!(
        v["ops"][0]["predicted"]["compute_cycles"].as_f64(),
        Some(4096.0 * 16.0 * 110.0 - 1.0)
    );
}

#[test]
fn spiking_layers_on_loihi2() {
    let out = archc(&[
        "report",
        &example("snn.arch"),
        "--target",
        "loihi2",
        "--workload",
        "snn",
        "--format",
        "json",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let v = json(&out.stdout);
    let ops = v["ops"].as_array().expect("ops");
    assert_eq!(ops.len(), 2);
    assert_eq!(ops[1]["mapping"]["partition"], "1");
    assert!(ops[0]["predicted"]["bottleneck"]
        .as_str()
        .is_some_and(|b| b.contains("bound")));
}

#[test]
fn gpu_reports_and_swizzle_tuning() {
    // The mapping pins grouped(m: 8) on mi300x.
    let pinned = archc(&[
        "report",
        &example("gemm.arch"),
        "--target",
        "mi300x",
        "--format",
        "json",
    ]);
    assert_eq!(pinned.code, 0, "{}", pinned.stderr);
    let v = json(&pinned.stdout);
    assert_eq!(v["ops"][0]["mapping"]["swizzle"], "grouped(m: 8)");
    assert_eq!(v["ops"][0]["predicted"]["levels"][0]["name"], "hbm");
    // attention on h100 leaves the swizzle open: tune tries every choice.
    let tuned = archc(&[
        "tune",
        &example("attention.arch"),
        "--target",
        "h100",
        "--workload",
        "attention",
        "--format",
        "json",
    ]);
    assert_eq!(tuned.code, 0, "{}", tuned.stderr);
    // Every swizzle is tried (5 of them) on top of the block tiles.
    let evaluated: usize = tuned
        .stderr
        .split(" evaluated")
        .next()
        .and_then(|s| s.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(evaluated > 5, "{}", tuned.stderr);
    let v = json(&tuned.stdout);
    assert!(v["ops"][0]["mapping"]["swizzle"].is_string());
    assert!(v["total"]["latency_s"].as_f64().is_some_and(|x| x > 0.0));
}

#[test]
fn what_is_not_built_says_so() {
    let spiking = archc(&["report", &example("gemm.arch"), "--target", "loihi2"]);
    assert_eq!(spiking.code, 1);
    assert!(
        spiking.stderr.contains("spiking layers"),
        "{}",
        spiking.stderr
    );
    let unknown = archc(&["report", &example("gemm.arch"), "--target", "hots"]);
    assert_eq!(unknown.code, 2);
    assert!(
        unknown.stderr.contains("did you mean `host`"),
        "{}",
        unknown.stderr
    );
}

#[test]
fn html_reports_are_self_contained() {
    for (file, target, workload, chart) in [
        ("mlp.arch", "host", "mlp", "roofline"),
        ("snn.arch", "loihi2", "snn", "floorline"),
    ] {
        let path = arch_tests::temp_file("archc-html", &format!("{workload}.html"), b"");
        let out = archc(&[
            "report",
            &example(file),
            "--target",
            target,
            "--workload",
            workload,
            "--format",
            "html",
            "-o",
            &path,
        ]);
        assert_eq!(out.code, 0, "{}", out.stderr);
        let html = std::fs::read_to_string(&path).expect("html report");
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(
            html.contains("<svg") && html.contains(&format!("aria-label=\"{chart}\"")),
            "{chart}"
        );
        assert!(
            !html.contains("<script")
                && !html.contains("src=\"http")
                && !html.contains("href=\"http")
        );
        assert!(html.contains("<th>level</th>") && html.contains("energy"));
    }
}

#[test]
fn an_overfull_partition_is_explained() {
    let path = arch_tests::temp_file(
        "archc-partition",
        "part.arch",
        b"import std.hw.loihi2\nimport std.nn.lif\nworkload snn(T = 8) {\n  input s: spike[T, 784]\n  weight w: int8[784, 512]\n  output o: spike[T, 512]\n  o = lif(s @ w)\n}\nmapping m for snn on loihi2 {\n  partition o: 1\n}\n",
    );
    let out = archc(&["report", &path, "--target", "loihi2"]);
    assert_eq!(out.code, 1);
    // 784 x 512 int8 synapses = 401,408 B on one core of 128 KiB: four cores needed.
    assert!(out.stderr.contains("401408 bytes"), "{}", out.stderr);
    assert!(out.stderr.contains("at least 4 cores"), "{}", out.stderr);
}

/// Text and JSON reports of every workload of every example on every std
/// target (or the reason there is none), as insta snapshots: any change of a
/// model shows up in review.
#[test]
fn report_snapshots() {
    let targets = [
        "host", "h100", "mi300x", "npu16", "loihi2", "speck", "akd1000",
    ];
    for file in arch_tests::arch_files(&root().join("examples")) {
        let text = std::fs::read_to_string(&file).expect("example");
        let stem = file
            .file_stem()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_default();
        let path = file.to_string_lossy().to_string();
        let workloads: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("workload "))
            .filter_map(|l| l.split(|c: char| !(c.is_alphanumeric() || c == '_')).next())
            .collect();
        for w in &workloads {
            for t in targets {
                let json_out = archc(&[
                    "report",
                    &path,
                    "--target",
                    t,
                    "--workload",
                    w,
                    "--format",
                    "json",
                ]);
                let text_out = archc(&["report", &path, "--target", t, "--workload", w]);
                assert_eq!(json_out.code, text_out.code);
                let body = if json_out.code == 0 {
                    format!("{}\n{}", text_out.stdout, json_out.stdout)
                } else {
                    // Diagnostics show the path; the checkout may be anywhere.
                    let root = root().to_string_lossy().to_string();
                    format!("exit {}\n{}", json_out.code, json_out.stderr).replace(&root, "<root>")
                };
                insta::assert_snapshot!(format!("report_{stem}_{w}_{t}"), body);
            }
        }
    }
}

#[test]
fn precision_within_the_error_budget() {
    let program = |budget: &str| {
        format!(
            "import std.hw.host\nworkload p(B = 64, K = 512, N = 512) {{\n  input x: f32[B, K]\n  weight w: f32[K, N]\n  output y: f32[B, N]\n  y[i, j] = sum[k] x[i, k] * w[k, j]\n}}\nmapping ph for p on host {{\n  precision w: auto in {{f32, bf16, int8}} error <= {budget}\n}}\n"
        )
    };
    let report = |budget: &str| {
        let path = arch_tests::temp_file(
            "archc-precision",
            &format!("p{budget}.arch"),
            program(budget).as_bytes(),
        );
        let out = archc(&["report", &path, "--target", "host", "--format", "json"]);
        assert_eq!(out.code, 0, "{}", out.stderr);
        json(&out.stdout)
    };
    // bf16 and int8 both err by about 3.9e-3 (half a unit in the last place):
    // a budget of 1e-2 takes the narrowest, int8; 1e-4 keeps f32.
    let loose = report("1e-2");
    let tight = report("1e-4");
    assert_eq!(loose["ops"][0]["mapping"]["precision.w"], "int8");
    assert_eq!(tight["ops"][0]["mapping"]["precision.w"], "f32");
    // The weight moves a quarter of the bytes (the workload fits the
    // host's L3 between calls: count every level's traffic).
    let moved = |v: &serde_json::Value| -> f64 {
        v["ops"][0]["predicted"]["levels"]
            .as_array()
            .map_or(0.0, |ls| {
                ls.iter().filter_map(|l| l["bytes"].as_f64()).sum()
            })
    };
    assert!(
        moved(&loose) < moved(&tight),
        "{} < {}",
        moved(&loose),
        moved(&tight)
    );
}

/// Tunes `file`'s `workload` for `target`, emits the mapping, and checks
/// that re-reporting it gives the tuned report, op by op.
fn assert_round_trip(file: &str, workload: &str, target: &str) {
    let dir = std::env::temp_dir().join(format!(
        "archc-trip-{}-{workload}-{target}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::copy(example(file), dir.join(file)).expect("copy");
    let src = dir.join(file).to_string_lossy().to_string();
    let emitted = dir.join("tuned.arch").to_string_lossy().to_string();
    let tuned = archc(&[
        "tune",
        &src,
        "--workload",
        workload,
        "--target",
        target,
        "--max-evaluations",
        "2000",
        "--format",
        "json",
        "--emit-mapping",
        &emitted,
    ]);
    assert_eq!(tuned.code, 0, "{}", tuned.stderr);
    let again = archc(&["report", &emitted, "--target", target, "--format", "json"]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    let (a, b) = (json(&tuned.stdout), json(&again.stdout));
    assert_eq!(
        a["ops"],
        b["ops"],
        "{}",
        std::fs::read_to_string(&emitted).unwrap_or_default()
    );
    assert_eq!(a["total"], b["total"]);
}

#[test]
fn mappings_of_ops_sharing_dimension_names_round_trip() {
    // 21 convolutions and a GEMM whose loop orders differ but whose
    // dimensions share names: each op gets its own `order y: ...`.
    assert_round_trip("resnet18.arch", "resnet18", "npu16");
    // A convolution and the ReLU after it, and attention's five ops.
    assert_round_trip("conv2d.arch", "conv2d_relu", "host");
    assert_round_trip("attention.arch", "attention", "host");
    // Intermediates the front end made (`p.1.m` inside softmax, `h.1`
    // inside gelu(matmul(...))) are named quoted.
    assert_round_trip("attention.arch", "attention_head", "host");
    assert_round_trip("sparse_mlp.arch", "sparse_mlp", "h100");
}

/// Writes `text` to a fresh file and returns its path.
fn program(name: &str, text: &str) -> String {
    let dir = std::env::temp_dir().join(format!("archc-infeasible-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write");
    path.to_string_lossy().to_string()
}

#[test]
fn infeasible_constraints_point_at_their_statement() {
    // A spiking layer pinned to one core that cannot hold it: E0610 at the
    // `partition` statement, naming the limit and the fewest cores that fit.
    let snn = program(
        "snn.arch",
        "import std.hw.loihi2\nimport std.nn.lif\nworkload snn(T = 8) {\n  input s: spike[T, 784]\n  weight w: int8[784, 20000]\n  output o: spike[T, 20000]\n  o = lif(s @ w)\n}\nmapping m for snn on loihi2 {\n  partition o: 1\n}\n",
    );
    for command in ["tune", "report"] {
        let out = archc(&[command, &snn, "--target", "loihi2", "--color", "never"]);
        assert_eq!(out.code, 1, "{}", out.stderr);
        assert!(out.stdout.is_empty(), "{}", out.stdout);
        for want in [
            "[E0610]",
            "20000 neurons per core, but a core of `loihi2` holds 8192",
            "snn.arch:10:3",
            "partition o: 1",
            "split it over at least 120 cores",
        ] {
            assert!(out.stderr.contains(want), "{want}:\n{}", out.stderr);
        }
    }
    // A level too small for one element of each tensor, no size fixed: at
    // the mapping's name, by how much, with a help line.
    let tiny = program(
        "tiny.arch",
        "import std.hw.npu16\nhardware tiny extends npu16 {\n  level accumulator { size 4 B }\n}\nworkload g(M = 64, N = 64, K = 64) {\n  input a: int8[M, K]\n  weight b: int8[K, N]\n  output c: int32[M, N]\n  c[m, n] = sum[k] a[m, k] * b[k, n]\n}\nmapping gt for g on tiny {\n  order m, n, k\n}\n",
    );
    let out = archc(&["tune", &tiny, "--target", "tiny", "--color", "never"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    for want in [
        "[E0610]",
        "needs 6 B at `accumulator`, which holds 4 B (2 B too much)",
        "tiny.arch:11:9",
        "`accumulator` is too small for the smallest tiles",
    ] {
        assert!(out.stderr.contains(want), "{want}:\n{}", out.stderr);
    }
}

/// `report --format json` of `text` for `target`, as a JSON value.
fn report_json(name: &str, text: &str, target: &str) -> serde_json::Value {
    report_json_with(name, text, target, &[])
}

/// [`report_json`] with more arguments for `report`.
fn report_json_with(name: &str, text: &str, target: &str, more: &[&str]) -> serde_json::Value {
    let path = program(name, text);
    let mut args = vec!["report", &path, "--target", target, "--format", "json"];
    args.extend_from_slice(more);
    let out = archc(&args);
    assert_eq!(out.code, 0, "{}", out.stderr);
    json(&out.stdout)
}

#[test]
fn pruned_weights_change_work_only_on_units_that_skip_zeros() {
    // The same pinned tiles with the weight dense and pruned to 2:4.
    let program_for = |target: &str, tiles: &str, pattern: &str| {
        format!(
            "import std.hw.{target}\nworkload ffn(B = 1024, D = 1024, F = 1024) {{\n  input x: bf16[B, D]\n  weight w: bf16[D, F]\n  output y: bf16[B, F]\n  y[i, j] = sum[k] x[i, k] * w[k, j]\n}}\nmapping f for ffn on {target} {{\n  {tiles}\n  sparsity w: {pattern}\n}}\n"
        )
    };
    let predicted =
        |v: &serde_json::Value, field: &str| v["ops"][0]["predicted"][field].as_f64().expect(field);
    let dram = |v: &serde_json::Value| v["ops"][0]["predicted"]["levels"][0]["bytes"].as_f64();
    // h100's tensor cores skip 2:4 zeros: half the block work; the weight's
    // bytes shrink to 0.5 * (1 + 2 / 16) of dense.
    let tiles = "tile y at smem { i: 128, j: 128, k: 64 }";
    let dense = report_json("h_dense.arch", &program_for("h100", tiles, "dense"), "h100");
    let sparse = report_json("h_sparse.arch", &program_for("h100", tiles, "2:4"), "h100");
    assert_eq!(
        predicted(&sparse, "compute_cycles") * 2.0,
        predicted(&dense, "compute_cycles")
    );
    assert!(dram(&sparse) < dram(&dense));
    assert_eq!(sparse["ops"][0]["mapping"]["sparsity.w"], "2:4");
    // The host has no such unit: the same work, fewer bytes moved (the
    // workload fits the host's L3 between calls: every level's traffic).
    // Every knob pinned: the same schedule for both.
    let tiles = "tile y at l3 { i: 1024, j: 1024, k: 1024 }\n  tile y at l2 { i: 128, j: 128, k: 128 }\n  tile y at l1 { i: 16, j: 64, k: 128 }\n  order y: i, j, k\n  vectorize y: j\n  parallel y: none";
    let dense = report_json("c_dense.arch", &program_for("host", tiles, "dense"), "host");
    let sparse = report_json("c_sparse.arch", &program_for("host", tiles, "2:4"), "host");
    assert_eq!(
        predicted(&sparse, "compute_cycles"),
        predicted(&dense, "compute_cycles")
    );
    let moved = |v: &serde_json::Value| -> f64 {
        v["ops"][0]["predicted"]["levels"]
            .as_array()
            .map_or(0.0, |ls| {
                ls.iter().filter_map(|l| l["bytes"].as_f64()).sum()
            })
    };
    let (d, s) = (moved(&dense), moved(&sparse));
    assert!(s < d, "{s} < {d}");
}

/// A `.safetensors` file holding one F32 tensor.
fn safetensors(name: &str, shape: &[u64], values: &[f32]) -> Vec<u8> {
    let data: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    let header = serde_json::json!({
        name: {"dtype": "F32", "shape": shape, "data_offsets": [0, data.len()]}
    })
    .to_string();
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend(header.as_bytes());
    out.extend(data);
    out
}

#[test]
fn precision_is_measured_on_real_weights() {
    // w: 64 x 64 values near 1 and one outlier of 1000. The half-ulp
    // estimate lets int8 through a 1e-2 budget; measured, one scale for
    // the whole tensor sends the small values to 0 (error about 3e-2), so
    // bf16 is the narrowest type that fits.
    let text = "import std.hw.host\nworkload p(B = 64, K = 64, N = 64) {\n  input x: f32[B, K]\n  weight w: f32[K, N]\n  output y: f32[B, N]\n  y[i, j] = sum[k] x[i, k] * w[k, j]\n}\nmapping ph for p on host {\n  precision w: auto in {f32, bf16, int8} error <= 1e-2\n}\n";
    let arch = program("p.arch", text);
    let mut values: Vec<f32> = (0..4096).map(|i| 0.5 + (i % 7) as f32 * 0.1).collect();
    values[100] = 1000.0;
    let weights = program("w.arch", "");
    std::fs::write(&weights, safetensors("w", &[64, 64], &values)).expect("weights");
    let chosen = |extra: &[&str]| {
        let mut args = vec![
            "report",
            arch.as_str(),
            "--target",
            "host",
            "--format",
            "json",
        ];
        args.extend(extra);
        let out = archc(&args);
        assert_eq!(out.code, 0, "{}", out.stderr);
        (
            json(&out.stdout)["ops"][0]["mapping"]["precision.w"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            out.stderr,
        )
    };
    let (estimated, note) = chosen(&[]);
    assert_eq!(estimated, "int8", "{note}");
    assert!(note.contains("estimated"), "{note}");
    let (measured, note) = chosen(&["--weights", &weights]);
    assert_eq!(measured, "bf16", "{note}");
    assert!(note.contains("measured on"), "{note}");
    // A weights file without the tensor falls back to the estimate and says so.
    std::fs::write(&weights, safetensors("other", &[2], &[1.0, 2.0])).expect("weights");
    let (fallback, note) = chosen(&["--weights", &weights]);
    assert_eq!(fallback, "int8");
    assert!(note.contains("has no tensor `w`"), "{note}");
    // A file that is not safetensors is an error, not a panic.
    std::fs::write(&weights, b"not a weights file").expect("weights");
    let out = archc(&["report", &arch, "--target", "host", "--weights", &weights]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("is not a safetensors file"),
        "{}",
        out.stderr
    );
}

#[test]
fn neuromorphic_targets_cost_every_op_or_refuse() {
    // A spiking layer followed by a ReLU: the ReLU is no spiking layer, so
    // loihi2 refuses the workload rather than leave it out of the total.
    let path = program(
        "mixed.arch",
        "import std.hw.loihi2\nimport std.nn.{lif, relu}\nworkload mixed(T = 8) {\n  input s: spike[T, 64]\n  weight w: int8[64, 32]\n  output y: f32[T, 32]\n  h = lif(s @ w)\n  y = relu(h)\n}\n",
    );
    let out = archc(&["report", &path, "--target", "loihi2"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("`y` is neither a spiking layer nor the synapses of one"),
        "{}",
        out.stderr
    );
}

#[test]
fn iteration_spaces_beyond_u64_are_costed_not_wrapped() {
    // 10^20 multiply-accumulates: more than u64 holds. Every class reports
    // (or refuses) without overflowing; the debug build would panic on a
    // wrapped multiplication.
    let path = program(
        "big.arch",
        "workload big(A = 100000, B = 100000, C = 100000, D = 100000) {\n  input x: f32[A, B]\n  input y: f32[C, D]\n  output z: f32[A, D]\n  z[a, d] = sum[b, c] x[a, b] * y[c, d]\n}\n",
    );
    for target in ["host", "h100", "mi300x", "npu16"] {
        for command in ["report", "tune"] {
            let mut args = vec![command, &path, "--target", target, "--format", "json"];
            if command == "tune" {
                args.extend(["--budget", "1s", "--max-evaluations", "200"]);
            }
            let out = archc(&args);
            assert_eq!(out.code, 0, "{command} on {target}: {}", out.stderr);
            let latency = json(&out.stdout)["total"]["latency_s"]
                .as_f64()
                .unwrap_or(0.0);
            // At least 2e20 flops at well under 1e16 flop/s.
            assert!(latency > 1e4, "{command} on {target}: {latency}");
        }
    }
}

/// A row chain is one kernel on its first stage's threads: a later stage
/// whose own nest would split only its (whole) columns is predicted on the
/// chain's threads all the same, as the generated code runs it.
#[test]
fn a_row_chain_runs_on_its_first_stages_threads() {
    let predicted_y = |parallel: &str| {
        let text = format!(
            "import std.hw.host\nimport std.nn.softmax\nworkload sm(R = 4096, C = 512) {{\n  input x: f32[R, C]\n  output y: f32[R, C]\n  y = softmax(x)\n}}\nmapping m for sm on host {{\n  parallel y: {parallel}\n  tile y at l3 {{ r: 4096, c: 512 }}\n  tile y at l2 {{ r: 128, c: 512 }}\n  tile y at l1 {{ r: 4, c: 512 }}\n}}\n"
        );
        let v = report_json_with(
            &format!("softmax_{parallel}.arch"),
            &text,
            "host",
            &["--uncalibrated", "--threads", "2"],
        );
        let ops = v["ops"].as_array().expect("ops").clone();
        let y = ops.iter().find(|o| o["name"] == "y").expect("y");
        y["predicted"]["compute_cycles"].as_f64().expect("cycles")
    };
    let (rows, cols) = (predicted_y("r"), predicted_y("c"));
    assert!((cols / rows - 1.0).abs() < 0.01, "rows {rows} cols {cols}");
}

/// A row's sum and maximum run in one loop (the generated code loads each
/// vector once for both): the pair is predicted at the maximum's pace,
/// about what the maximum alone takes, not the two ops' times added; a
/// maximum and a minimum together take less than twice one of them (each
/// fills the gaps of the other's chains) but more than one alone.
#[test]
fn row_reductions_sharing_a_loop_overlap() {
    let total = |name: &str, body: &str| {
        let text = format!(
            "import std.hw.host\nworkload rr(R = 192, C = 1000) {{\n  input x: f32[R, C]\n{body}\n}}\n"
        );
        let v = report_json(name, &text, "host");
        v["total"]["latency_s"].as_f64().expect("total")
    };
    let s = "  output s: f32[R]\n  s[i] = sum[j] x[i, j]";
    let m = "  output m: f32[R]\n  m[i] = max[j] x[i, j]";
    let n = "  output n: f32[R]\n  n[i] = min[j] x[i, j]";
    let (sum, max, min) = (
        total("share_s.arch", s),
        total("share_m.arch", m),
        total("share_n.arch", n),
    );
    let sum_max = total("share_sm.arch", &format!("{s}\n{m}"));
    let max_min = total("share_mn.arch", &format!("{m}\n{n}"));
    assert!(
        sum_max < 0.8 * (sum + max),
        "sum {sum} max {max} both {sum_max}"
    );
    assert!(sum_max >= 0.99 * max, "max {max} both {sum_max}");
    assert!(
        max_min < 1.5 * max && max_min > 1.05 * max.max(min),
        "max {max} min {min} both {max_min}"
    );
}
