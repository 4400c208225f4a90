//! The differential suite: generated workloads (std.nn ops, odd sizes,
//! tiles that do not divide them, every float type the cpu path builds,
//! fused and unfused epilogues, random loop orders, vector dimensions and
//! threads; f32 matrix products vectorized along `j` take the packed kernel)
//! are built into native libraries and run; every output must match the
//! reference interpreter within its type's tolerance.
//!
//! `ARCH_DIFF_CASES=N` runs N cases (default 200); `ARCH_DIFF_SEED=S`
//! changes the seed. A failure prints the case's source and schedule.

use arch_codegen::{cpu::compile, HostTarget};
use arch_cost::cpu::LoopNest;
use arch_runtime::compare::{compare_within, output_tolerance};
use arch_runtime::elements::{decode, element_bytes, encode};
use arch_runtime::interp;
use arch_runtime::native::{Buffer, Library};
use arch_sema::db::{file_decls, RootDatabase};
use arch_sema::model::WorkloadModel;
use arch_sema::workload::workload_model;
use arch_syntax::ast::Role;
use std::fmt::Write;

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
    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len() as u64) as usize]
    }
}

const DTYPES: &[&str] = &["f32", "f64", "f16", "bf16"];

/// One generated program: its source and a description.
fn program(rng: &mut Rng, case: usize) -> (String, String) {
    let t = rng.pick(DTYPES);
    let odd = [1u64, 3, 7, 16, 33, 64, 123];
    let mut s = String::from("import std.nn.{relu, gelu, matmul, conv2d, softmax, layernorm}\n");
    let kind = case % 12;
    let desc;
    match kind {
        0 | 1 => {
            // GEMM, odd sizes; one dimension may be 1000.
            let (mut m, mut k, mut n) = (rng.pick(&odd), rng.pick(&odd), rng.pick(&odd));
            match rng.below(4) {
                0 => m = 1000,
                1 => n = 1000,
                2 => k = 1000,
                _ => {}
            }
            if m * k * n > 4_000_000 {
                k = 7;
            }
            let _ = write!(
                s,
                "workload w(M = {m}, K = {k}, N = {n}) {{\n  input a: {t}[M, K]\n  weight b: {t}[K, N]\n  output c: {t}[M, N]\n  c[i, j] = sum[k] a[i, k] * b[k, j]\n}}\n"
            );
            desc = format!("gemm {m}x{k}x{n} {t}");
        }
        2 => {
            // Fused: bias and ReLU in the contraction's op.
            let (m, k, n) = (
                rng.pick(&odd),
                rng.pick(&odd),
                rng.pick(&[17u64, 64, 123, 1000]),
            );
            let _ = write!(
                s,
                "workload w(B = {m}, K = {k}, N = {n}) {{\n  input x: {t}[B, K]\n  weight w: {t}[K, N]\n  weight bias: {t}[N]\n  output y: {t}[B, N]\n  y[i, j] = relu(sum[k] x[i, k] * w[k, j] + bias[j])\n}}\n"
            );
            desc = format!("fused mlp {m}x{k}x{n} {t}");
        }
        3 => {
            // Unfused: the contraction, then the epilogue as its own op.
            let (m, k, n) = (rng.pick(&odd), rng.pick(&odd), rng.pick(&odd));
            let _ = write!(
                s,
                "workload w(B = {m}, K = {k}, N = {n}) {{\n  input x: {t}[B, K]\n  weight w: {t}[K, N]\n  weight bias: {t}[N]\n  output y: {t}[B, N]\n  h = matmul(x, w)\n  y[i, j] = gelu(h[i, j] + bias[j])\n}}\n"
            );
            desc = format!("unfused mlp {m}x{k}x{n} {t}");
        }
        4 => {
            let (c, h, f) = (
                rng.pick(&[1u64, 3, 8]),
                rng.pick(&[5u64, 9, 12]),
                rng.pick(&[1u64, 4, 7]),
            );
            let (r, stride) = (rng.pick(&[1u64, 3]), rng.pick(&[1u64, 2]));
            let _ = write!(
                s,
                "workload w(N = 2, C = {c}, H = {h}, F = {f}, R = {r}) {{\n  input x: {t}[N, C, H, H]\n  weight k: {t}[F, C, R, R]\n  output y: {t}[N, F, (H - R) / {stride} + 1, (H - R) / {stride} + 1]\n  y = conv2d(x, k, stride: {stride})\n}}\n"
            );
            desc = format!("conv2d c{c} h{h} f{f} r{r} s{stride} {t}");
        }
        5 => {
            let (r, c) = (rng.pick(&odd), rng.pick(&[1u64, 7, 123, 1000]));
            let _ = write!(
                s,
                "workload w(R = {r}, C = {c}) {{\n  input x: {t}[R, C]\n  output y: {t}[R, C]\n  y = softmax(x)\n}}\n"
            );
            desc = format!("softmax {r}x{c} {t}");
        }
        6 => {
            let (r, c) = (rng.pick(&odd), rng.pick(&[7u64, 64, 123]));
            let _ = write!(
                s,
                "workload w(R = {r}, C = {c}) {{\n  input x: {t}[R, C]\n  weight g: {t}[C]\n  weight b: {t}[C]\n  output y: {t}[R, C]\n  y = layernorm(x, g, b)\n}}\n"
            );
            desc = format!("layernorm {r}x{c} {t}");
        }
        7 => {
            // A row chain: reductions and element-wise ops taken row by row
            // in one kernel; a row total that is an output, a per-row op, a
            // weight read along the columns, rows of two dimensions.
            let (h, r, c) = (
                rng.pick(&[1u64, 3]),
                rng.pick(&odd),
                rng.pick(&[2u64, 7, 64, 123, 1000]),
            );
            let _ = write!(
                s,
                "workload w(H = {h}, R = {r}, C = {c}) {{\n  input x: {t}[H, R, C]\n  weight g: {t}[C]\n  output y: {t}[H, R, C]\n  output s: {t}[H, R]\n  m[a, i] = max[j] x[a, i, j]\n  e[a, i, j] = exp(x[a, i, j] - m[a, i]) * g[j]\n  s[a, i] = sum[j] e[a, i, j]\n  n[a, i] = 1.0 / (s[a, i] * s[a, i] + 1.0)\n  y[a, i, j] = e[a, i, j] * n[a, i] + x[a, i, j]\n}}\n"
            );
            // The chain's ops are f32 (other types take the linalg path).
            if t != "f32" {
                s = s.replace(&format!(": {t}["), ": f32[");
            }
            desc = format!("row chain {h}x{r}x{c} f32");
        }
        8 => {
            // Both products of attention: a transposed operand, factors
            // outside the sums (one read per row), heads as a batch.
            let (h, q, d) = (
                rng.pick(&[1u64, 2, 3]),
                rng.pick(&[1u64, 7, 33, 123]),
                rng.pick(&[1u64, 8, 33]),
            );
            let _ = write!(
                s,
                "workload w(H = {h}, S = {q}, D = {d}) {{\n  input q: {t}[H, S, D]\n  input k: {t}[H, S, D]\n  input v: {t}[H, S, D]\n  output o: {t}[H, S, D]\n  s[h, i, j] = sum[d] q[h, i, d] * k[h, j, d] / sqrt(D)\n  z[h, i] = sum[j] s[h, i, j] * s[h, i, j] + 1.0\n  o[h, i, e] = sum[j] s[h, i, j] * v[h, j, e] / z[h, i]\n}}\n"
            );
            desc = format!("attention products {h}x{q}x{d} {t}");
        }
        9 => {
            // A 1x1 convolution (NCHW) with a bias per filter: filters are
            // rows, pixels columns, images a batch the weights do not have.
            let (c, hw, f) = (
                rng.pick(&[1u64, 3, 16, 33]),
                rng.pick(&[1u64, 5, 12]),
                rng.pick(&[1u64, 7, 16]),
            );
            let _ = write!(
                s,
                "workload w(N = 2, C = {c}, H = {hw}, F = {f}) {{\n  input x: {t}[N, C, H, H]\n  weight k: {t}[F, C]\n  weight b: {t}[F]\n  output y: {t}[N, F, H, H]\n  y[n, f, p, r] = relu(sum[c] k[f, c] * x[n, c, p, r] + b[f])\n}}\n"
            );
            desc = format!("conv1x1 c{c} h{hw} f{f} {t}");
        }
        10 => {
            // Transcendental functions over a wide range (the f32 ones are
            // polynomials in the generated code).
            let (r, c) = (rng.pick(&odd), rng.pick(&[1u64, 7, 64, 123]));
            let _ = write!(
                s,
                "workload w(R = {r}, C = {c}) {{\n  input x: {t}[R, C]\n  output y: {t}[R, C]\n  y[i, j] = tanh(9.0 * x[i, j]) + sigmoid(30.0 * x[i, j]) + exp(12.0 * x[i, j]) / 1000.0 + erf(3.0 * x[i, j]) + tanh(0.001 * x[i, j]) * 100.0\n}}\n"
            );
            desc = format!("transcendentals {r}x{c} {t}");
        }
        11 => {
            // A batch of products with a transposed operand and weights
            // shared by the batch, through an activation and a residual.
            let (b, m, k, n) = (
                rng.pick(&[1u64, 2, 3]),
                rng.pick(&odd),
                rng.pick(&odd),
                rng.pick(&[1u64, 16, 37, 123]),
            );
            let act = rng.pick(&["sigmoid", "tanh", "gelu", "relu"]);
            let _ = write!(
                s,
                "workload w(B = {b}, M = {m}, K = {k}, N = {n}) {{\n  input a: {t}[B, K, M]\n  weight u: {t}[K, N]\n  input r: {t}[B, M, N]\n  output c: {t}[B, M, N]\n  c[g, i, j] = {act}(sum[k] a[g, k, i] * u[k, j]) + r[g, i, j]\n}}\n"
            );
            desc = format!("batched {act} {b}x{m}x{k}x{n} {t}");
        }
        _ => {
            // Attention scores: a batched contraction over heads, scaled.
            let (h, q, d) = (
                rng.pick(&[1u64, 2, 3]),
                rng.pick(&odd),
                rng.pick(&[1u64, 8, 33]),
            );
            let _ = write!(
                s,
                "workload w(H = {h}, Q = {q}, D = {d}) {{\n  input a: {t}[H, Q, D]\n  input b: {t}[H, D, Q]\n  output s: {t}[H, Q, Q]\n  s[h, i, j] = sum[d] a[h, i, d] * b[h, d, j] * 0.125\n}}\n"
            );
            desc = format!("batched scores {h}x{q}x{d} {t}");
        }
    }
    (s, desc)
}

fn model(text: &str) -> WorkloadModel {
    let mut db = RootDatabase::default();
    let file = db.set_file("/diff/case.arch", text.to_string());
    let diags = arch_sema::file_diagnostics(&db, file);
    assert!(diags.is_empty(), "{diags:?}\n{text}");
    file_decls(&db, file)
        .iter()
        .find(|d| d.kind(&db) == "workload")
        .and_then(|d| workload_model(&db, *d).model.clone())
        .expect("a workload model")
}

/// A random nest: four levels (full, l3, l2, l1), tiles that shrink and
/// often do not divide, a random order and vector dimension.
fn nest(rng: &mut Rng, op: &arch_sema::model::Op) -> LoopNest {
    let full: Vec<u64> = op.vars.iter().map(|v| v.extent).collect();
    let mut tiles = vec![full];
    for _ in 0..3 {
        let parent = tiles.last().cloned().unwrap_or_default();
        let level = parent
            .iter()
            .map(|&p| {
                let t = match rng.below(6) {
                    0 | 1 => p,
                    2 => p.div_ceil(2),
                    3 => rng.pick(&[1, 3, 7]),
                    _ => rng.pick(&[8, 16, 17, 32, 64]),
                };
                t.clamp(1, p)
            })
            .collect();
        tiles.push(level);
    }
    let mut order: Vec<usize> = (0..op.vars.len()).collect();
    for i in (1..order.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        order.swap(i, j);
    }
    // Mostly an output dimension; sometimes the last variable (a reduced
    // one: the row kernels).
    let vector = (rng.below(5) > 0).then(|| {
        if rng.below(3) == 0 {
            op.vars.len() - 1
        } else {
            rng.below(op.output_rank.max(1) as u64) as usize
        }
    });
    // A third of the nests run their first or second output dimension over
    // two cores (OpenMP threads; the packed kernel splits rows or columns).
    let parallel = if rng.below(3) == 0 {
        vec![rng.below(op.output_rank.clamp(1, 2) as u64) as usize]
    } else {
        Vec::new()
    };
    LoopNest {
        tiles,
        order,
        parallel,
        vector,
    }
}

fn run_case(
    case: usize,
    seed: u64,
    host: &HostTarget,
    dir: &std::path::Path,
) -> Result<(), String> {
    let mut rng = Rng(seed
        .wrapping_add(case as u64)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        | 1);
    let (text, desc) = program(&mut rng, case);
    let w = model(&text);
    let mut nests: Vec<Option<LoopNest>> =
        w.ops.iter().map(|op| Some(nest(&mut rng, op))).collect();
    // Row-wise families: half the time every op vectorizes its last
    // variable and all run on threads or none do, as the tuner's nests
    // usually are (the row chains of `arch_cost::fusion`).
    let row_family = ["softmax", "layernorm", "row chain"]
        .iter()
        .any(|f| desc.starts_with(f));
    if row_family && rng.below(2) == 0 {
        let threads = rng.below(2) == 0;
        for (op, n) in w.ops.iter().zip(nests.iter_mut().flatten()) {
            n.vector = Some(op.vars.len() - 1);
            n.parallel = if threads { vec![0] } else { Vec::new() };
        }
    }
    // Batched products: half the time as the tuner runs them, the batch
    // over threads and the columns in vectors (the packed kernel's threads
    // take whole products).
    let batched = ["batched", "attention products", "conv1x1"]
        .iter()
        .any(|f| desc.starts_with(f));
    if batched && rng.below(2) == 0 {
        for (op, n) in w.ops.iter().zip(nests.iter_mut().flatten()) {
            if op.output_rank >= 3 {
                n.parallel = vec![0];
                n.vector = Some(op.output_rank - 1);
                if let Some(last) = n.tiles.last_mut() {
                    last[0] = 1;
                }
            }
        }
    }
    let context = || format!("case {case}: {desc}\n{text}nests: {nests:?}");
    let compiled = compile(&w, &nests, host, 2).map_err(|e| format!("{}\n{e}", context()))?;
    runs_match(
        case,
        &w,
        &compiled.object.bytes,
        &compiled.libraries(),
        dir,
        &context,
    )?;
    if compiled.input.contains("_chain") {
        CHAINS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    Ok(())
}

/// Links `bytes` (an object with the C ABI of `archc build` for `w`),
/// runs it on case `case`'s random inputs and compares every output with
/// the reference interpreter.
fn runs_match(
    case: usize,
    w: &WorkloadModel,
    bytes: &[u8],
    libs: &[&str],
    dir: &std::path::Path,
    context: &dyn Fn() -> String,
) -> Result<(), String> {
    let object = dir.join(format!("case{case}.o"));
    let library = dir.join(format!("libcase{case}.so"));
    std::fs::write(&object, bytes).map_err(|e| e.to_string())?;
    arch_codegen::link_shared(&object, &library, libs).map_err(|e| e.to_string())?;
    let abi = arch_mlir::linalg::abi_tensors(w);
    let lib =
        Library::open(&library, &w.name, abi.len()).map_err(|e| format!("{}\n{e}", context()))?;
    let given = interp::random_inputs(w, case as u64);
    let mut buffers: Vec<Buffer> = abi
        .iter()
        .map(|&t| {
            let tensor = &w.tensors[t];
            match given.get(&tensor.name) {
                Some(v) => Buffer::new(&encode(tensor.dtype, v)),
                // Outputs start as garbage, so that unwritten elements show.
                None => Buffer::new(&encode(
                    tensor.dtype,
                    &vec![1234.5; tensor.elements() as usize],
                )),
            }
        })
        .collect();
    lib.call(&mut buffers).map_err(|e| e.to_string())?;
    let want = interp::run(w, &given).map_err(|e| format!("{}\n{e}", context()))?;
    for (&t, b) in abi.iter().zip(&buffers) {
        let tensor = &w.tensors[t];
        if tensor.role != Role::Output {
            continue;
        }
        assert_eq!(
            b.bytes().len(),
            tensor.elements() as usize * element_bytes(tensor.dtype)
        );
        let got = decode(tensor.dtype, b.bytes());
        let c = compare_within(
            &tensor.name,
            output_tolerance(w, t),
            &got,
            &want[&tensor.name],
        );
        if !c.ok() {
            return Err(format!(
                "{}\n{}: max relative error {:.3e} > {:.1e} (first at {:?}: got {}, want {})",
                context(),
                tensor.name,
                c.max_rel_error,
                c.tolerance,
                c.first_bad,
                c.first_bad.map_or(f64::NAN, |i| got[i]),
                c.first_bad.map_or(f64::NAN, |i| want[&tensor.name][i]),
            ));
        }
    }
    let _ = std::fs::remove_file(&object);
    let _ = std::fs::remove_file(&library);
    Ok(())
}

/// Cases whose library ran a row chain's kernel.
static CHAINS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

#[test]
fn built_libraries_match_the_reference_interpreter() {
    let cases: usize = std::env::var("ARCH_DIFF_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let seed: u64 = std::env::var("ARCH_DIFF_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(7);
    // ARCH_DIFF_ONLY=N runs case N alone (to look at one failure).
    let only: Option<usize> = std::env::var("ARCH_DIFF_ONLY")
        .ok()
        .and_then(|v| v.parse().ok());
    let host = HostTarget::detect();
    let dir = std::env::temp_dir().join(format!("archc-diff-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let failures: Vec<String> = std::thread::scope(|scope| {
        let workers = 2;
        let handles: Vec<_> = (0..workers)
            .map(|k| {
                let (host, dir) = (&host, &dir);
                // MLIR and LLVM recurse deeply on big functions: the
                // driver's main thread has 8 MiB, so give workers as much.
                std::thread::Builder::new()
                    .stack_size(64 << 20)
                    .spawn_scoped(scope, move || {
                        (k..cases)
                            .step_by(workers)
                            .filter(|case| only.is_none_or(|o| o == *case))
                            .filter_map(|case| {
                                std::panic::catch_unwind(|| run_case(case, seed, host, dir))
                                    .unwrap_or_else(|p| {
                                        let m = p
                                            .downcast_ref::<String>()
                                            .cloned()
                                            .or_else(|| {
                                                p.downcast_ref::<&str>().map(|s| s.to_string())
                                            })
                                            .unwrap_or_default();
                                        Err(format!("case {case} panicked: {m}"))
                                    })
                                    .err()
                            })
                            .collect::<Vec<_>>()
                    })
                    .expect("spawn a worker")
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| {
                h.join()
                    .unwrap_or_else(|_| vec!["a worker panicked".into()])
            })
            .collect()
    });
    let _ = std::fs::remove_dir_all(&dir);
    let chains = CHAINS.load(std::sync::atomic::Ordering::Relaxed);
    eprintln!("{chains} cases ran a row chain");
    assert!(
        only.is_some() || cases < 100 || chains >= 3,
        "only {chains} cases ran a row chain's kernel"
    );
    assert!(
        failures.is_empty(),
        "{} of {cases} cases failed:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

/// The gpu kernels of the same generated workloads, built as their host
/// emulation (every block and every thread in order, after block tiling
/// and swizzling): a random nest's innermost tile as each op's block tile,
/// a random swizzle (row major, grouped by 1 to 5 tile rows, an XCD remap
/// over 2 to 8 domains; contractions stage their operands in shared
/// memory and reductions along rows split over a block, each at least
/// one kernel in ten cases). Every output must match the reference
/// interpreter. `ARCH_DIFF_GPU_CASES=N` runs N cases (default 60).
#[test]
fn gpu_kernels_emulated_match_the_reference_interpreter() {
    use arch_cost::gpu::Swizzle;
    let cases: usize = std::env::var("ARCH_DIFF_GPU_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    let seed: u64 = std::env::var("ARCH_DIFF_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(7);
    let host = HostTarget::detect();
    let dir = std::env::temp_dir().join(format!("archc-diff-gpu-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let stages: Vec<_> = arch_mlir::pipeline::cpu_stages(false, 1)
        .into_iter()
        .filter(|s| s.name != "bufferized")
        .collect();
    let mut failures = Vec::new();
    let (mut staged, mut double, mut mma, mut row_reduced) = (0, 0, 0, 0);
    for case in 0..cases {
        let mut rng = Rng(seed
            .wrapping_add(1000 + case as u64)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            | 1);
        let (text, desc) = program(&mut rng, case);
        let w = model(&text);
        let nests: Vec<Option<LoopNest>> =
            w.ops.iter().map(|op| Some(nest(&mut rng, op))).collect();
        let swizzle = match rng.below(3) {
            0 => Swizzle::RowMajor,
            1 => Swizzle::Grouped(1 + rng.below(5)),
            _ => Swizzle::Xcd(2 + rng.below(7)),
        };
        let context = || format!("case {case}: {desc} ({swizzle:?})\n{text}nests: {nests:?}");
        let result = (|| -> Result<(), String> {
            let plans = arch_mlir::gpu::plan(&w, &nests, Some(swizzle), case % 2 == 0)
                .map_err(|e| format!("{}\n{e}", context()))?;
            staged += plans
                .iter()
                .filter(|p| matches!(p.shape, arch_mlir::gpu::Shape::Staged(_)))
                .count();
            mma += plans
                .iter()
                .filter(
                    |p| matches!(&p.shape, arch_mlir::gpu::Shape::Staged(st) if st.mma.is_some()),
                )
                .count();
            double += plans
                .iter()
                .filter(
                    |p| matches!(&p.shape, arch_mlir::gpu::Shape::Staged(st) if st.buffers == 2),
                )
                .count();
            row_reduced += plans
                .iter()
                .filter(|p| matches!(p.shape, arch_mlir::gpu::Shape::RowReduced(_)))
                .count();
            let module = arch_mlir::gpu::host_module(&w, &plans).map_err(|e| e.to_string())?;
            let lowered = arch_mlir::pipeline::run(&module, &stages)
                .map_err(|e| format!("{}\n{e}", context()))?;
            let object = arch_codegen::object(&lowered.llvm_ir, &w.name, &host)
                .map_err(|e| e.to_string())?;
            runs_match(case, &w, &object.bytes, &[], &dir, &context)
        })();
        if let Err(e) = result {
            failures.push(e);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        failures.is_empty(),
        "{} of {cases} gpu cases failed:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
    eprintln!(
        "{staged} kernels staged their operands in shared memory ({double} double-buffered, {mma} on tensor cores), {row_reduced} reduced rows over a block"
    );
    assert!(
        cases < 30
            || (staged * 10 >= cases
                && double * 20 >= cases
                && mma * 20 >= cases
                && row_reduced * 10 >= cases),
        "only {staged} staged ({double} double-buffered, {mma} on tensor cores) and {row_reduced} row-reducing kernels in {cases} cases"
    );
}
