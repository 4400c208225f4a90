//! The native commands' contracts (`archc build`, `run`, `calibrate`):
//! the files a build writes, the C interface they describe, run's check and
//! measurement, inputs from `.npy` files, and clear errors for what is not
//! built.

use arch_tests::{archc, root};
use std::path::PathBuf;

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("archc-native-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// Writes `text` to `dir/file` and returns that path as a string.
fn program(dir: &std::path::Path, file: &str, text: &str) -> String {
    let path = dir.join(file);
    std::fs::write(&path, text).expect("write");
    path.display().to_string()
}

const MLP: &str = "import std.hw.host\nimport std.nn.relu\nworkload mlp(B = 7, K = 33, N = 20) {\n  input x: f32[B, K]\n  weight w: f32[K, N]\n  weight b: f32[N]\n  output y: f32[B, N]\n  y[i, j] = relu(sum[k] x[i, k] * w[k, j] + b[j])\n}\n";

#[test]
fn build_writes_library_header_manifest_and_report() {
    let dir = temp("build");
    let src = program(&dir, "mlp.arch", MLP);
    let out = dir.join("out");
    let r = archc(&[
        "build",
        &src,
        "--target",
        "host",
        "-o",
        out.to_str().unwrap_or_default(),
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    for f in ["libmlp.so", "mlp.h", "mlp.manifest.json", "report.json"] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    let header = std::fs::read_to_string(out.join("mlp.h")).unwrap_or_default();
    assert!(
        header.contains(
            "int32_t mlp(const float *ARCHC_RESTRICT x, const float *ARCHC_RESTRICT w, const float *ARCHC_RESTRICT b, float *ARCHC_RESTRICT y);"
        ) && header.contains("#define ARCHC_RESTRICT restrict"),
        "{header}"
    );
    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("mlp.manifest.json")).unwrap_or_default(),
    )
    .expect("manifest is JSON");
    let args = manifest["arguments"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let names: Vec<&str> = args.iter().filter_map(|a| a["name"].as_str()).collect();
    assert_eq!(names, ["x", "w", "b", "y"]);
    assert_eq!(args[0]["role"], "input");
    assert_eq!(args[3]["role"], "output");
    assert_eq!(args[1]["shape"], serde_json::json!([33, 20]));
    assert_eq!(args[2]["dtype"], "f32");
    assert_eq!(manifest["function"], "mlp");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap_or_default())
            .expect("report is JSON");
    assert!(report["total"]["latency_s"].as_f64().unwrap_or(0.0) > 0.0);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn run_writes_the_measurement_into_the_report() {
    let dir = temp("run");
    let src = program(&dir, "mlp.arch", MLP);
    let report = dir.join("r.json");
    let r = archc(&[
        "run",
        &src,
        "--target",
        "host",
        "--runs",
        "3",
        "--report",
        report.to_str().unwrap_or_default(),
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("y matches the reference interpreter"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("measured/predicted"), "{}", r.stdout);
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap_or_default()).expect("JSON");
    let measured = json["total"]["measured"]["latency_s"]
        .as_f64()
        .unwrap_or(0.0);
    assert!(measured > 0.0 && measured < 1.0, "{json}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn run_reads_npy_inputs_and_checks_their_shapes() {
    let dir = temp("npy");
    let src = program(&dir, "mlp.arch", MLP);
    let inputs = dir.join("in");
    std::fs::create_dir_all(&inputs).expect("dir");
    let write = |name: &str, shape: &[u64]| {
        let n: u64 = shape.iter().product();
        let values: Vec<f64> = (0..n).map(|i| ((i % 7) as f64 - 3.0) / 4.0).collect();
        std::fs::write(
            inputs.join(format!("{name}.npy")),
            arch_runtime::npy::write(shape, &values, true),
        )
        .expect("npy");
    };
    write("x", &[7, 33]);
    write("w", &[33, 20]);
    write("b", &[20]);
    let args = |extra: &str| {
        vec![
            "run".to_string(),
            src.clone(),
            "--target".into(),
            "host".into(),
            "--runs".into(),
            "1".into(),
            "--inputs".into(),
            extra.to_string(),
        ]
    };
    let a = args(&inputs.display().to_string());
    let r = archc(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("matches"), "{}", r.stdout);
    write("b", &[21]);
    let r = archc(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("shape [21], but `b` is [20]"),
        "{}",
        r.stderr
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn what_is_not_built_says_so() {
    let root = root();
    let gemm = root.join("examples/gemm.arch").display().to_string();
    let r = archc(&[
        "build",
        &gemm,
        "--target",
        "npu16",
        "-o",
        "/tmp/archc-never",
    ]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr
            .contains("code generation for npu targets is not built yet"),
        "{}",
        r.stderr
    );
    let r = archc(&["build", &gemm, "--target", "host", "--emit", "ptx"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("`--emit ptx` is not built yet"),
        "{}",
        r.stderr
    );
    let r = archc(&["build", &gemm, "--target", "h100", "--emit", "amdgcn"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("`--emit amdgcn` is not for h100"),
        "{}",
        r.stderr
    );
    let r = archc(&["run", &gemm, "--target", "h100"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("--emulate"), "{}", r.stderr);
    assert_eq!(r.stderr.trim().lines().count(), 1, "{}", r.stderr);
    let r = archc(&[
        "build",
        &gemm,
        "--target",
        "host",
        "--threads",
        "0",
        "-o",
        "/tmp/x",
    ]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    let r = archc(&["build", &gemm, "--target", "host", "--emit", "lib"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("needs `-o DIR`"), "{}", r.stderr);
    let dir = temp("int8");
    let src = program(
        &dir,
        "q.arch",
        "workload q(N = 8) {\n  input a: int8[N]\n  output b: int8[N]\n  b[i] = a[i] * 2\n}\n",
    );
    let r = archc(&["run", &src, "--target", "host"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("lowering does not handle `int8`"),
        "{}",
        r.stderr
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn calibrate_writes_hardware_that_the_cost_commands_take() {
    let dir = temp("calibrate");
    let file = dir.join("hc.arch");
    let r = archc(&[
        "calibrate",
        "--quick",
        "-o",
        file.to_str().unwrap_or_default(),
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let text = std::fs::read_to_string(&file).unwrap_or_default();
    assert!(text.contains("hardware host_calibrated : cpu {"), "{text}");
    assert!(text.contains("// measured"), "{text}");
    let r = archc(&["check", file.to_str().unwrap_or_default()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let gemm = root()
        .join("examples/quickstart.arch")
        .display()
        .to_string();
    let r = archc(&[
        "report",
        &gemm,
        "--hardware",
        file.to_str().unwrap_or_default(),
        "--target",
        "host_calibrated",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("quickstart on host_calibrated"),
        "{}",
        r.stdout
    );
    let r = archc(&["calibrate", "--target", "h100"]);
    assert_eq!(r.code, 2);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_narrow_intermediate_widens_the_output_tolerance() {
    // h is stored in bf16 by both the library and the interpreter; summing
    // in another order can round an element of h the other way, which the
    // f32 output carries: run must judge y by bf16's tolerance, not f32's.
    let dir = temp("mixed");
    let src = program(
        &dir,
        "mixed.arch",
        "import std.nn.{gelu, matmul}\nworkload mixed(B = 16, D = 256, F = 512) {\n  input x: bf16[B, D]\n  weight w1: bf16[D, F]\n  weight w2: bf16[F, D]\n  output y: f32[B, D]\n  h = gelu(matmul(x, w1))\n  y = h @ w2\n}\n",
    );
    let r = archc(&["run", &src, "--target", "host", "--runs", "1"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("(tolerance 1.6e-2)"), "{}", r.stdout);
    let _ = std::fs::remove_dir_all(&dir);
}

/// One attention head (both products and a softmax) on one thread: its
/// vector code once took fresh stack on every loop iteration and overflowed.
#[test]
fn attention_head_runs_on_one_thread_without_growing_the_stack() {
    let dir = temp("attention-stack");
    let src = program(
        &dir,
        "att.arch",
        "import std.hw.host\nimport std.nn.softmax\nworkload att(S = 512, D = 64) {\n  input q: f32[S, D]\n  input k: f32[S, D]\n  input v: f32[S, D]\n  output o: f32[S, D]\n  s[i, j] = sum[d] q[i, d] * k[j, d] / sqrt(D)\n  p = softmax(s)\n  o[i, d] = sum[j] p[i, j] * v[j, d]\n}\n",
    );
    let r = archc(&[
        "run",
        &src,
        "--target",
        "host",
        "--threads",
        "1",
        "--runs",
        "1",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("matches the reference"), "{}", r.stdout);
}

/// A temporary of 70.6 MB (4200 x 4200 f32) from inputs of 33.6 KB: it
/// lives on the heap, and the run matches the interpreter on 1 and 2 threads.
#[test]
fn temporaries_over_64_mib_live_on_the_heap() {
    let dir = temp("big-temporary");
    let src = program(
        &dir,
        "outer.arch",
        "import std.hw.host\nworkload outer(N = 4200) {\n  input x: f32[N]\n  input y: f32[N]\n  output m: f32[N]\n  t[i, j] = x[i] * y[j] + 1.0\n  m[i] = max[j] t[i, j]\n}\n",
    );
    for threads in ["1", "2"] {
        let r = archc(&[
            "run",
            &src,
            "--target",
            "host",
            "--threads",
            threads,
            "--runs",
            "1",
        ]);
        assert_eq!(r.code, 0, "{threads} threads: {}", r.stderr);
        assert!(r.stdout.contains("matches the reference"), "{}", r.stdout);
    }
}

/// `archc build src --target host` with `extra` arguments into `dir/lib`;
/// returns that directory.
fn build_for_host(dir: &std::path::Path, src: &str, extra: &[&str]) -> PathBuf {
    let out = dir.join("lib");
    let out_text = out.display().to_string();
    let mut args = vec!["build", src, "--target", "host"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["-o", &out_text]);
    let r = archc(&args);
    assert_eq!(r.code, 0, "{}", r.stderr);
    out
}

/// Minor page faults of this thread so far (`/proc/thread-self/stat`,
/// field 10; other tests run on other threads of this process).
fn minor_faults() -> u64 {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap_or_default();
    // The command name (field 2) is in parentheses and may hold spaces.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    after
        .split_whitespace()
        .nth(7)
        .and_then(|f| f.parse().ok())
        .unwrap_or(0)
}

/// A 37.7 MB temporary (larger than any threshold under which glibc keeps
/// freed memory) is not mapped afresh on every call: the library keeps its
/// block for the next call (`arch_codegen::blocks`), which then touches no
/// new pages. Without the kept block each call faults in all 9216 pages.
#[test]
fn large_temporaries_are_kept_between_calls() {
    use arch_runtime::native::{Buffer, Library};
    let dir = temp("kept-blocks");
    let src = program(
        &dir,
        "wide.arch",
        "import std.hw.host\nworkload wide(M = 4096, K = 8, N = 2304) {\n  input x: f32[M, K]\n  weight w: f32[K, N]\n  output s: f32[M]\n  h[i, j] = sum[k] x[i, k] * w[k, j]\n  s[i] = sum[j] h[i, j] * h[i, j]\n}\n",
    );
    let out = build_for_host(&dir, &src, &["--threads", "1"]);
    let lib = Library::open(&out.join("libwide.so"), "wide", 3).expect("loads");
    let x: Vec<u8> = (0..4096 * 8)
        .flat_map(|i| ((i % 7) as f32 * 0.25).to_le_bytes())
        .collect();
    let w: Vec<u8> = (0..8 * 2304)
        .flat_map(|i| ((i % 5) as f32 - 2.0).to_le_bytes())
        .collect();
    let mut buffers = vec![Buffer::new(&x), Buffer::new(&w), Buffer::zeroed(4096 * 4)];
    lib.call(&mut buffers).expect("first call");
    let first = buffers[2].bytes().to_vec();
    for call in 2..=3 {
        let before = minor_faults();
        lib.call(&mut buffers).expect("call");
        let faults = minor_faults() - before;
        assert!(faults < 1000, "call {call}: {faults} page faults");
        assert_eq!(
            buffers[2].bytes(),
            &first[..],
            "call {call} computed something else"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// `run --profile` builds and times every op alone: a line per op with
/// measured beside predicted, and `measured` in each op of the report.
#[test]
fn profile_times_every_op_and_writes_them_into_the_report() {
    let dir = temp("profile");
    let src = program(
        &dir,
        "two.arch",
        "import std.hw.host\nimport std.nn.gelu\nworkload two(B = 33, K = 64, N = 70) {\n  input x: f32[B, K]\n  weight w: f32[K, N]\n  output y: f32[B, N]\n  h[i, j] = sum[k] x[i, k] * w[k, j]\n  y[i, j] = gelu(h[i, j]) + 1.0\n}\n",
    );
    let report = dir.join("r.json");
    // `run --profile` of `src`: what it printed, and the report it wrote.
    let profile = |src: &str| {
        let r = archc(&[
            "run",
            src,
            "--target",
            "host",
            "--runs",
            "3",
            "--profile",
            "--report",
            report.to_str().unwrap_or_default(),
        ]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&report).unwrap_or_default())
                .expect("JSON");
        (r, json)
    };
    let (r, json) = profile(&src);
    assert!(
        r.stdout
            .contains("profile: every op (or row chain) built and timed alone"),
        "{}",
        r.stdout
    );
    for op in ["h ", "y ", "(sum of ops)"] {
        assert!(
            r.stdout.lines().any(|l| l.trim_start().starts_with(op)),
            "no line for {op}:\n{}",
            r.stdout
        );
    }
    let ops = json["ops"].as_array().cloned().unwrap_or_default();
    assert_eq!(ops.len(), 2, "{json}");
    for op in ops {
        let m = op["measured"]["latency_s"].as_f64().unwrap_or(0.0);
        assert!(m > 0.0 && m < 1.0, "{op}");
        assert!(op["measured"].get("group").is_none(), "{op}");
    }
    // A softmax is one row chain: one line for its four ops, and each op
    // of the report names the others it was timed with.
    let src = program(
        &dir,
        "soft.arch",
        "import std.hw.host
import std.nn.softmax
workload soft(R = 64, C = 100) {
  input x: f32[R, C]
  output y: f32[R, C]
  y = softmax(x)
}
",
    );
    let (r, json) = profile(&src);
    assert!(
        r.stdout.lines().any(|l| l.contains("+y (fused)")),
        "{}",
        r.stdout
    );
    let ops = json["ops"].as_array().cloned().unwrap_or_default();
    assert_eq!(ops.len(), 4, "{json}");
    for op in &ops {
        let group = op["measured"]["group"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert_eq!(group.len(), 4, "{op}");
        assert_eq!(op["measured"]["latency_s"], ops[0]["measured"]["latency_s"]);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// exp, tanh, sigmoid and erf as the generated code computes them (vector
/// polynomials, `arch_mlir::fastmath`), element by element against f64 on
/// values that sweep every range the code treats apart (the polynomial's
/// reduction at both signs, exp's underflow to 0 below -86 and overflow to
/// infinity, the small-argument series of tanh and erf) and on NaN and the
/// infinities; scalar tails (an odd length) and vector bodies both run.
#[test]
fn builtins_match_f64_to_a_few_ulp_and_keep_nan() {
    let dir = temp("builtins");
    let src = program(
        &dir,
        "f.arch",
        "import std.hw.host\nworkload f(N = 4099) {\n  input x: f32[N]\n  output e: f32[N]\n  output t: f32[N]\n  output s: f32[N]\n  output g: f32[N]\n  e[i] = exp(x[i])\n  t[i] = tanh(x[i])\n  s[i] = sigmoid(x[i])\n  g[i] = erf(x[i])\n}\n",
    );
    let out = build_for_host(&dir, &src, &[]);
    let n = 4099usize;
    let mut xs: Vec<f32> = (0..4000)
        .map(|i| -100.0 + 200.0 * i as f32 / 3999.0)
        .chain((0..80).map(|i| (i as f32 - 40.0) / 100.0))
        .chain([
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            88.5,
            88.72,
            89.5,
            -85.9,
            -86.1,
            -87.5,
            0.0,
            -0.0,
            1e-6,
            -1e-6,
            0.3465,
            -0.3466,
            1e30,
            -1e30,
        ])
        .collect();
    xs.resize(n, 0.5);
    let bytes = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let mut buffers = vec![arch_runtime::native::Buffer::new(&bytes(&xs))];
    buffers.extend((0..4).map(|_| arch_runtime::native::Buffer::zeroed(4 * n)));
    let lib = arch_runtime::native::Library::open(&out.join("libf.so"), "f", 5).expect("load");
    lib.call(&mut buffers).expect("call");
    let values = |b: &arch_runtime::native::Buffer| -> Vec<f32> {
        b.bytes()
            .chunks(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    };
    let sigmoid = |x: f64| 1.0 / (1.0 + (-x).exp());
    let exp_ref = |x: f64| if x < -86.0 { 0.0 } else { x.exp() };
    type Check<'a> = (&'a str, &'a dyn Fn(f64) -> f64, f64, f64);
    let checks: [Check; 4] = [
        // (name, reference, ulps allowed beyond an absolute error; erf:
        // Abramowitz & Stegun 7.1.26 is within 1.5e-7)
        ("exp", &exp_ref, 3.0, 0.0),
        ("tanh", &f64::tanh, 4.0, 0.0),
        // Below -87 sigmoid is under f32's smallest normal: 0 is right.
        ("sigmoid", &sigmoid, 4.0, 1.2e-38),
        ("erf", &arch_runtime::interp::erf, 2.0, 1.5e-7),
    ];
    for ((name, reference, ulps, abs), b) in checks.iter().zip(&buffers[1..]) {
        let got = values(b);
        let mut worst = (0.0f64, 0.0f32);
        for (&x, &y) in xs.iter().zip(&got) {
            let want = reference(f64::from(x));
            if want.is_nan() {
                assert!(y.is_nan(), "{name}({x}) = {y}, want NaN");
                continue;
            }
            if want.is_infinite() || want as f32 == f32::INFINITY {
                assert_eq!(y, want as f32, "{name}({x})");
                continue;
            }
            let ulp = f64::from(f32::EPSILON) * want.abs().max(f64::from(f32::MIN_POSITIVE));
            let err = ((f64::from(y) - want).abs() - abs).max(0.0) / ulp;
            if err > worst.0 {
                worst = (err, x);
            }
        }
        assert!(
            worst.0 <= *ulps,
            "{name}: {:.2} ulp at x = {} (allowed {ulps})",
            worst.0,
            worst.1
        );
        eprintln!("{name}: worst {:.2} ulp at x = {}", worst.0, worst.1);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Convolutions of stride 2, 3 and 4 whose output rows are wider than a
/// panel of the packed kernel (37 pixels): panels within a row are packed
/// with strided vector loads, masked after their last element, the last of
/// which ends the image; the runs match the interpreter on 1 and 2 threads.
#[test]
fn strided_convolutions_pack_whole_panels_and_match() {
    let dir = temp("strided-panels");
    for stride in [2, 3, 4] {
        let h = 36 * stride + 3;
        let src = program(
            &dir,
            &format!("conv{stride}.arch"),
            &format!(
                "import std.hw.host\nimport std.nn.conv2d\nworkload conv(N = 1, C = 2, H = {h}, F = 5, R = 3) {{\n  input x: f32[N, C, H, H]\n  weight k: f32[F, C, R, R]\n  output y: f32[N, F, (H - R) / {stride} + 1, (H - R) / {stride} + 1]\n  y = conv2d(x, k, stride: {stride})\n}}\nmapping panels for conv on host {{\n  vectorize y: q\n}}\n"
            ),
        );
        runs_match_on_one_and_two_threads(&src, &format!("stride {stride}"));
        let mlir = archc(&["build", &src, "--target", "host", "--emit", "mlir"]);
        assert!(
            mlir.stdout.contains("vector.maskedload") && mlir.stdout.contains("vector.shuffle"),
            "stride {stride}: no strided panel loads"
        );
    }
}

/// Batches of products whose mapping runs only the batch over cores: the
/// packed kernel's threads take whole products (each packs its own
/// panels). Odd batches (3 products on 2 threads, 1 product), a transposed
/// operand, weights shared by the batch, an epilogue with a residual; on
/// 1 and 2 threads they match the interpreter.
#[test]
fn batches_split_over_threads_match() {
    let dir = temp("batch-split");
    for (b, m, k, n) in [
        (3, 7, 123, 37),
        (2, 33, 16, 100),
        (1, 13, 9, 40),
        (5, 64, 64, 64),
    ] {
        let src = program(
            &dir,
            &format!("bmm{b}.arch"),
            &format!(
                "import std.hw.host\nworkload w(B = {b}, M = {m}, K = {k}, N = {n}) {{\n  input a: f32[B, K, M]\n  weight u: f32[K, N]\n  input r: f32[B, M, N]\n  output c: f32[B, M, N]\n  c[g, i, j] = tanh(sum[k] a[g, k, i] * u[k, j]) + r[g, i, j]\n}}\nmapping split for w on host {{\n  tile c at l1 {{ g: 1 }}\n  parallel g over cores\n  vectorize j\n}}\n"
            ),
        );
        runs_match_on_one_and_two_threads(&src, &format!("{b} x {m} x {k} x {n}"));
        let mlir = archc(&[
            "build",
            &src,
            "--target",
            "host",
            "--threads",
            "2",
            "--emit",
            "mlir",
        ]);
        assert_eq!(mlir.code, 0, "{}", mlir.stderr);
        // The packed kernel, though the weights lack the batch and `a` is
        // read transposed.
        assert!(
            mlir.stdout.contains("func.func private @w_kernel0("),
            "{b} products: not packed"
        );
        // Threads over products: one parallel region whose body walks the
        // thread's share of the batch (when there are several products).
        let parallel_regions = mlir
            .stdout
            .split("----- stage: scheduled -----")
            .nth(1)
            .and_then(|s| s.split("----- stage: bufferized -----").next())
            .map(|s| s.matches("scf.parallel").count());
        // (One product runs on one thread: no region.)
        let expected = Some(usize::from(b > 1));
        assert_eq!(parallel_regions, expected, "{b} products: {}", mlir.stdout);
    }
}

/// Products of two to six rows read the whole panels of their weight where
/// it lies (only a partial last panel is packed): with odd widths, an
/// epilogue, and on 1 and 2 threads, they match the interpreter.
#[test]
fn few_row_products_read_the_weight_in_place_and_match() {
    let dir = temp("few-rows");
    for (rows, cols) in [(2, 37), (3, 200), (5, 64), (6, 123)] {
        let src = program(
            &dir,
            &format!("mlp{rows}.arch"),
            &format!(
                "import std.hw.host\nworkload mlp(B = {rows}, K = 77, N = {cols}) {{\n  input x: f32[B, K]\n  weight w: f32[K, N]\n  weight b: f32[N]\n  output y: f32[B, N]\n  y[i, j] = tanh(sum[k] x[i, k] * w[k, j] + b[j])\n}}\nmapping rows for mlp on host {{\n  vectorize y: j\n}}\n"
            ),
        );
        runs_match_on_one_and_two_threads(&src, &format!("{rows} x {cols}"));
    }
}

/// Products of one to four rows take the skinny kernel: widths 1, 7, 123,
/// 1000 and 2582 (one block, a masked last vector, several blocks walked
/// in depth blocks), depths 1, 7, 300 and 1000 (on two threads, depth
/// split into partial sums), a bias and tanh after; batches of one-row
/// products (threads split the blocks) and a transposed row; vector
/// outputs (no rows). On 1 and 2
/// threads (a tile of one column makes every product of two or more
/// columns take both) they match the interpreter.
#[test]
fn skinny_products_match() {
    let dir = temp("skinny");
    for (rows, depth, cols) in [
        (1, 7, 1),
        (1, 300, 7),
        (1, 1000, 123),
        (1, 1, 1000),
        (1, 300, 2582),
        (2, 1000, 37),
        (3, 300, 123),
        (4, 7, 1000),
    ] {
        let src = program(
            &dir,
            &format!("gemv{rows}x{depth}x{cols}.arch"),
            &format!(
                "import std.hw.host\nworkload gemv(M = {rows}, K = {depth}, N = {cols}) {{\n  input x: f32[M, K]\n  weight w: f32[K, N]\n  weight b: f32[N]\n  output y: f32[M, N]\n  y[i, j] = tanh(sum[k] x[i, k] * w[k, j] + b[j])\n}}\nmapping cols for gemv on host {{\n  tile y at l1 {{ j: 1 }}\n  parallel j over cores\n  vectorize y: j\n}}\n"
            ),
        );
        runs_match_on_one_and_two_threads(&src, &format!("{rows} x {depth} x {cols}"));
    }
    // A vector output (no rows at all), its product written either way round.
    for (depth, cols, product) in [(300, 123, "x[k] * w[k, j]"), (7, 1000, "w[k, j] * x[k]")] {
        let src = program(
            &dir,
            &format!("vec{depth}x{cols}.arch"),
            &format!(
                "import std.hw.host\nworkload gemv(K = {depth}, N = {cols}) {{\n  input x: f32[K]\n  weight w: f32[K, N]\n  weight b: f32[N]\n  output y: f32[N]\n  y[j] = tanh(sum[k] {product} + b[j])\n}}\nmapping cols for gemv on host {{\n  tile y at l1 {{ j: 1 }}\n  parallel j over cores\n  vectorize y: j\n}}\n"
            ),
        );
        runs_match_on_one_and_two_threads(&src, &format!("vector {depth} x {cols}"));
        let mlir = archc(&["build", &src, "--target", "host", "--emit", "mlir"]);
        assert!(
            mlir.stdout.contains("func.func private @gemv_kernel0("),
            "{}",
            mlir.stdout
        );
    }
    let src = program(
        &dir,
        "batched.arch",
        "import std.hw.host\nworkload bmm(B = 3, K = 123, N = 77) {\n  input x: f32[B, K, 1]\n  input w: f32[B, K, N]\n  output y: f32[B, 1, N]\n  y[h, i, j] = sum[k] x[h, k, i] * w[h, k, j] / 3.0\n}\nmapping cols for bmm on host {\n  tile y at l1 { h: 1 }\n  parallel h over cores\n  vectorize y: j\n}\n",
    );
    runs_match_on_one_and_two_threads(&src, "3 x 1 x 123 x 77");
    let mlir = archc(&["build", &src, "--target", "host", "--emit", "mlir"]);
    assert!(
        mlir.stdout.contains("func.func private @bmm_kernel0("),
        "{}",
        mlir.stdout
    );
}

/// Products whose rows fit one row block pack panels of `b` in groups,
/// walking each row of `b` once per group: several groups, a last partial
/// group, a last partial panel, depth blocks. On 1 and 2 threads (columns
/// split) they match the interpreter, and the grouped loop is in the code.
#[test]
fn grouped_b_panels_match() {
    let dir = temp("grouped");
    for (rows, depth, cols, kc) in [
        (7, 13, 357, 13),
        (20, 300, 1000, 128),
        (11, 1000, 123, 256),
        (64, 64, 1029, 64),
    ] {
        let src = program(
            &dir,
            &format!("mm{rows}x{depth}x{cols}.arch"),
            &format!(
                "import std.hw.host\nimport std.nn.relu\nworkload mm(M = {rows}, K = {depth}, N = {cols}) {{\n  input x: f32[M, K]\n  weight w: f32[K, N]\n  weight b: f32[N]\n  output y: f32[M, N]\n  y[i, j] = relu(sum[k] x[i, k] * w[k, j] + b[j])\n}}\nmapping cols for mm on host {{\n  tile y at l2 {{ i: {rows}, k: {kc} }}\n  parallel j over cores\n  vectorize y: j\n}}\n"
            ),
        );
        runs_match_on_one_and_two_threads(&src, &format!("{rows} x {depth} x {cols}"));
        let mlir = archc(&["build", &src, "--target", "host", "--emit", "mlir"]);
        // The packed `b` buffer (threads x slots x kc x nr) holds one
        // group: 2 to 8 panels, not one.
        let slots: Vec<u64> = mlir
            .stdout
            .split("memref<")
            .skip(1)
            .filter_map(|t| {
                let dims: Vec<&str> = t.split('>').next()?.split('x').collect();
                let panel = dims.len() == 5
                    && dims[2] == kc.to_string()
                    && (dims[3] == "16" || dims[3] == "32");
                panel.then(|| dims[1].parse().ok()).flatten()
            })
            .collect();
        assert!(
            !slots.is_empty() && slots.iter().all(|s| (2..=8).contains(s)),
            "{rows} x {depth} x {cols}: packed b slots {slots:?}\n{}",
            mlir.stdout
        );
    }
}

/// Sliding windows along rows take the window kernel: a depthwise 3 x 3
/// convolution at widths 1, 7, 79 and 201 (a masked last vector, blocks of
/// a long row), one with rows of stride 2, a 1-d convolution along rows, a
/// 2 x 5 filter of one channel. On 1 and 2 threads (a tile of one row
/// makes both take rows) they match the interpreter.
#[test]
fn windows_along_rows_match() {
    let dir = temp("window");
    let mut cases: Vec<(String, String)> = [1u64, 7, 79, 201]
        .iter()
        .map(|w| {
            (
                format!("dw{w}"),
                format!("workload dw(C = 5, H = 3, W = {w}) {{\n  input x: f32[1, C, H + 2, W + 2]\n  weight k: f32[C, 3, 3]\n  output y: f32[1, C, H, W]\n  y[n, c, p, q] = sum[r, s] x[n, c, p + r, q + s] * k[c, r, s]\n}}\nmapping m for dw on host {{\n  tile y at l1 {{ c: 1 }}\n  parallel c over cores\n  vectorize y: q\n}}\n"),
            )
        })
        .collect();
    cases.push((
        "rows2".into(),
        "workload dw(C = 3, H = 4, W = 37) {\n  input x: f32[C, 2 * H + 1, W + 2]\n  weight k: f32[C, 3, 3]\n  output y: f32[C, H, W]\n  y[c, p, q] = sum[r, s] x[c, 2 * p + r, q + s] * k[c, r, s]\n}\nmapping m for dw on host {\n  tile y at l1 { c: 1 }\n  parallel c over cores\n  vectorize y: q\n}\n".into(),
    ));
    cases.push((
        "conv1d".into(),
        "workload conv(R = 9, W = 123) {\n  input x: f32[R, W + 6]\n  weight k: f32[7]\n  output y: f32[R, W]\n  y[i, q] = sum[s] x[i, q + s] * k[s]\n}\nmapping m for conv on host {\n  tile y at l1 { i: 1 }\n  parallel i over cores\n  vectorize y: q\n}\n".into(),
    ));
    cases.push((
        "filter".into(),
        "workload filter(H = 6, W = 50) {\n  input x: f32[H + 1, W + 4]\n  weight k: f32[2, 5]\n  output y: f32[H, W]\n  y[p, q] = sum[r, s] x[p + r, q + s] * k[r, s]\n}\nmapping m for filter on host {\n  tile y at l1 { p: 1 }\n  parallel p over cores\n  vectorize y: q\n}\n".into(),
    ));
    for (name, text) in cases {
        let src = program(
            &dir,
            &format!("{name}.arch"),
            &format!("import std.hw.host\n{text}"),
        );
        runs_match_on_one_and_two_threads(&src, &name);
        let mlir = archc(&["build", &src, "--target", "host", "--emit", "mlir"]);
        assert!(mlir.stdout.contains("_window0("), "{name}: {}", mlir.stdout);
    }
}

/// Statistics of the same rows (a sum, a maximum, a minimum, a mean of
/// squares) run in one loop over each row; a reduction that reads them (a
/// variance around the mean, plus the range) starts a loop of its own.
/// Row lengths 1, 7, 123 and 1000 take every path of the loop (whole
/// groups, whole vectors, narrower vectors, single elements).
#[test]
fn row_statistics_share_one_loop_and_match() {
    let dir = temp("row-stats");
    for (rows, cols) in [(3, 1), (5, 7), (17, 123), (9, 1000)] {
        let src = program(
            &dir,
            &format!("stats{cols}.arch"),
            &format!(
                "import std.hw.host\nworkload stats(R = {rows}, C = {cols}) {{\n  input x: f32[R, C]\n  output s: f32[R]\n  output m: f32[R]\n  output n: f32[R]\n  output q: f32[R]\n  output v: f32[R]\n  s[i] = sum[j] x[i, j]\n  m[i] = max[j] x[i, j]\n  n[i] = min[j] x[i, j]\n  q[i] = sum[j] x[i, j] * x[i, j] / C\n  v[i] = sum[j] (x[i, j] - s[i] / C) * (x[i, j] - s[i] / C) + (m[i] - n[i])\n}}\n"
            ),
        );
        runs_match_on_one_and_two_threads(&src, &format!("{rows} x {cols}"));
    }
}

/// `archc run` of `src` on 1 and then 2 threads succeeds and matches the
/// reference interpreter.
fn runs_match_on_one_and_two_threads(src: &str, what: &str) {
    for threads in ["1", "2"] {
        let r = archc(&[
            "run",
            src,
            "--target",
            "host",
            "--threads",
            threads,
            "--runs",
            "1",
        ]);
        assert_eq!(r.code, 0, "{what}: {}", r.stderr);
        assert!(
            r.stdout.contains("matches the reference"),
            "{what}, {threads} threads: {}",
            r.stdout
        );
    }
}
