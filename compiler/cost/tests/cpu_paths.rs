//! The cpu model follows the code path each op takes: the packed kernel's
//! own loop nest, the threads a nest's parallel tiles ask for, the cache an
//! intermediate is still in when the next op reads it, and the register
//! tile of the transform path.

use arch_cost::cpu::{evaluate, CpuParams, LoopNest};
use arch_sema::db::RootDatabase;
use arch_sema::hardware::HardwareModel;
use arch_sema::model::WorkloadModel;

mod common;

/// The workload `name` of `program` and `std.hw.host`.
fn models(program: &str, name: &str) -> (WorkloadModel, HardwareModel) {
    let mut db = RootDatabase::default();
    let file = common::checked_file(&mut db, "/cost/cpu_paths.arch", program);
    (
        common::workload_in(&db, file, name),
        common::std_hardware(&db, "host"),
    )
}

const GEMM: &str = "import std.hw.host
workload gemm(M = 512, N = 512, K = 512) {
  input a: f32[M, K]
  input b: f32[K, N]
  output c: f32[M, N]
  c[i, j] = sum[k] a[i, k] * b[k, j]
}
";

fn nest(l1: [u64; 3], order: Vec<usize>, vector: usize, parallel: Vec<usize>) -> LoopNest {
    LoopNest {
        tiles: vec![
            vec![512, 512, 512],
            vec![512, 512, 512],
            vec![128, 128, 256],
            l1.to_vec(),
        ],
        order,
        parallel,
        vector: Some(vector),
    }
}

#[test]
fn the_packed_kernel_is_costed_on_its_own_loop_nest() {
    let (w, hw) = models(GEMM, "gemm");
    let op = &w.ops[0];
    let p = CpuParams::for_op(&hw, &w, op).expect("cpu params");
    // Vectors along j: the packed kernel, whose blocks come from the l3 and
    // l2 tiles; the l1 tiles and the order never reach it.
    let a = evaluate(&w, op, &p, &nest([16, 16, 64], vec![0, 1, 2], 1, vec![0]));
    let b = evaluate(&w, op, &p, &nest([4, 64, 16], vec![2, 0, 1], 1, vec![0]));
    assert_eq!(a.latency_s, b.latency_s);
    assert_eq!(a.levels, b.levels);
    // Vectors along i take the transform path, where they do matter: four
    // rows over 64 steps of k leave the FMA pipes waiting (measured 5.3-5.8
    // ms against 3.1 for sixteen rows).
    let c = evaluate(&w, op, &p, &nest([16, 16, 64], vec![0, 1, 2], 0, vec![0]));
    let d = evaluate(&w, op, &p, &nest([4, 16, 64], vec![0, 2, 1], 0, vec![0]));
    assert!(
        d.latency_s > 1.5 * c.latency_s,
        "{} vs {}",
        d.latency_s,
        c.latency_s
    );
}

#[test]
fn threads_follow_the_parallel_tiles() {
    let whole = nest([512, 16, 64], vec![0, 1, 2], 1, vec![0]);
    assert_eq!(whole.threads(2), 1);
    let split = nest([16, 16, 64], vec![0, 1, 2], 1, vec![0]);
    assert_eq!(split.threads(2), 2);
    assert_eq!(split.threads(64), 32);
    let serial = nest([16, 16, 64], vec![0, 1, 2], 1, vec![]);
    assert_eq!(serial.threads(2), 1);
    // The model runs the op on as many cores as the code does.
    let (w, hw) = models(GEMM, "gemm");
    let op = &w.ops[0];
    let p = CpuParams::for_op(&hw, &w, op).expect("cpu params");
    let one = evaluate(&w, op, &p, &whole);
    let two = evaluate(&w, op, &p, &split);
    assert!(
        one.compute_cycles > 1.8 * two.compute_cycles,
        "{} vs {}",
        one.compute_cycles,
        two.compute_cycles
    );
}

/// 4 MiB tensors passed from op to op next to a 64 MiB input that no cache
/// holds: the intermediate is still in L3 when the next op reads it, so
/// that op moves only its own output through DRAM.
#[test]
fn an_intermediate_is_read_from_the_cache_that_still_holds_it() {
    let program = "import std.hw.host
workload w(N = 1024, B = 4096) {
  input x: f32[N, N]
  input big: f32[B, B]
  output u: f32[N, N]
  output s: f32[B]
  t[i, j] = x[i, j] * 2.0
  u[i, j] = t[i, j] + 1.0
  s[r] = sum[c] big[r, c]
}
";
    let (w, hw) = models(program, "w");
    let index = |name: &str| {
        w.tensors
            .iter()
            .position(|t| t.name == name)
            .expect("tensor")
    };
    let homes = arch_cost::bounds::tensor_homes(&w, &hw, &[]);
    let l3 = hw.levels.iter().position(|l| l.name == "l3").expect("l3");
    assert_eq!(arch_cost::bounds::resident_level(&w, &hw), 0);
    assert_eq!(homes[index("x")], 0);
    assert_eq!(homes[index("t")], l3);
    assert_eq!(homes[index("u")], 0);
    let op = &w.ops[1];
    let p = CpuParams::for_op(&hw, &w, op).expect("cpu params");
    let nest = LoopNest {
        tiles: vec![vec![1024, 1024]; 4],
        order: vec![0, 1],
        parallel: vec![],
        vector: Some(1),
    };
    let predicted = evaluate(&w, op, &p, &nest);
    let mib = 4.0 * 1024.0 * 1024.0;
    let dram = predicted.levels[0].bytes;
    assert!(dram >= mib && dram < 1.1 * mib, "{dram}");
    // Everything from DRAM when the homes are not known.
    let flat = CpuParams {
        homes: Vec::new(),
        ..p
    };
    assert!(evaluate(&w, op, &flat, &nest).levels[0].bytes >= 2.0 * mib);
}

/// Vectors along the output's rows (strided): the transform path's
/// register tile is that many rows of 8-wide vectors along the columns. A
/// tile of 16 rows is about as fast as the vector unit allows; 32 rows need
/// more registers than there are and spill; 4 rows leave the FMA pipes
/// waiting on their latency.
#[test]
fn strided_vector_tiles_are_costed_by_their_registers() {
    let (w, hw) = models(GEMM, "gemm");
    let op = &w.ops[0];
    let p = CpuParams::for_op(&hw, &w, op).expect("cpu params");
    let rows = |ti: u64| {
        evaluate(&w, op, &p, &nest([ti, 16, 64], vec![0, 2, 1], 0, vec![])).compute_cycles
    };
    assert!(rows(32) > 3.0 * rows(16), "{} vs {}", rows(32), rows(16));
    assert!(rows(4) > 1.5 * rows(16), "{} vs {}", rows(4), rows(16));
    // Over 16 steps of k instead of 64, consecutive 4-row tiles overlap in
    // the out-of-order window and run about as fast as 16 rows.
    let short = |ti: u64| {
        evaluate(&w, op, &p, &nest([ti, 64, 16], vec![0, 2, 1], 0, vec![])).compute_cycles
    };
    assert!(short(4) < 1.2 * short(16), "{} vs {}", short(4), short(16));
}

/// A level the chip shares (`bandwidth` for all cores, `core_bandwidth`
/// for one): a scaling of 64 MiB that no cache holds streams at one core's
/// rate on one thread and at the chip's on two, and without a
/// `core_bandwidth` the chip's rate is one core's too.
#[test]
fn shared_memory_serves_each_core_its_own_stream() {
    let program = "hardware two_cores : cpu {
  clock 2 GHz
  cores 2
  level dram { bandwidth 30 GB/s, core_bandwidth 20 GB/s }
  level l2 { size 1 MiB per core, bandwidth 1000 GB/s per core }
  compute fma { f32: 64 flop/cycle per core }
}
workload scale(N = 4096) {
  input x: f32[N, N]
  output y: f32[N, N]
  y[i, j] = x[i, j] * 2.0
}
";
    let mut db = RootDatabase::default();
    let file = common::checked_file(&mut db, "/cost/shared_memory.arch", program);
    let w = common::workload_in(&db, file, "scale");
    let hw = common::hardware_in(&db, file, "two_cores");
    let op = &w.ops[0];
    let p = CpuParams::for_op(&hw, &w, op).expect("cpu params");
    let nest = |parallel: Vec<usize>| LoopNest {
        tiles: vec![vec![4096, 4096], vec![4096, 4096], vec![16, 4096]],
        order: vec![0, 1],
        parallel,
        vector: Some(1),
    };
    // 128 MiB in and out (64 MiB each way).
    let bytes = 2.0 * 4096.0 * 4096.0 * 4.0;
    let one = evaluate(&w, op, &p, &nest(vec![]));
    let two = evaluate(&w, op, &p, &nest(vec![0]));
    let close = |got: f64, want: f64| (got / want - 1.0).abs() < 0.02;
    assert!(close(one.latency_s, bytes / 20e9), "{}", one.latency_s);
    assert!(close(two.latency_s, bytes / 30e9), "{}", two.latency_s);
    assert!(
        close(two.lower_bound_s, bytes / 30e9),
        "{}",
        two.lower_bound_s
    );
    let without = CpuParams {
        core_bandwidth: Vec::new(),
        ..p
    };
    let two_without = evaluate(&w, op, &without, &nest(vec![0]));
    assert!(close(two_without.latency_s, bytes / 30e9));
    assert!(close(
        evaluate(&w, op, &without, &nest(vec![])).latency_s,
        bytes / 30e9
    ));
}

/// The packed kernel copies `b` with vector loads where its columns are
/// contiguous, or a window's panel lies within one run of an image row
/// (stride 1 to 4); element by element for a transposed `b` and for the
/// panels (32 columns here) that straddle two output rows.
#[test]
fn elements_packed_one_at_a_time() {
    let share = |program: &str| {
        let (w, hw) = models(program, "k");
        let op = &w.ops[0];
        let c = arch_cost::kernel_shape::packed_contraction(&w, op).expect("packed");
        let p = CpuParams::for_op(&hw, &w, op).expect("cpu params");
        assert_eq!(p.packed_panel_cols(), 32);
        arch_cost::kernel_shape::scalar_packed_share(&c, p.packed_panel_cols())
    };
    let conv = |stride: u64, out: u64| {
        format!(
            "import std.hw.host
workload k(C = 3, F = 64, H = {out}) {{
  input x: f32[C, {stride} * H + 6, {stride} * H + 6]
  weight w: f32[F, C, 7, 7]
  output y: f32[F, H, H]
  y[f, p, q] = sum[c, r, s] x[c, {stride} * p + r, {stride} * q + s] * w[f, c, r, s]
}}
"
        )
    };
    // Rows of 112: of every 7 panels (224 columns), the one from 96 to 127
    // straddles.
    assert!((share(&conv(2, 112)) - 1.0 / 7.0).abs() < 1e-9);
    assert!((share(&conv(1, 112)) - 1.0 / 7.0).abs() < 1e-9);
    // Rows of 28 are narrower than a panel; stride 5 has no vector copy.
    assert_eq!(share(&conv(2, 28)), 1.0);
    assert_eq!(share(&conv(5, 112)), 1.0);
    assert_eq!(share(&GEMM.replace("gemm", "k")), 0.0);
    let transposed = GEMM
        .replace("gemm", "k")
        .replace("input b: f32[K, N]", "input b: f32[N, K]")
        .replace("b[k, j]", "b[j, k]");
    assert_eq!(share(&transposed), 1.0);
}

/// A factor of a sum that its reduced variable does not touch (`/ z[i]`):
/// the packed kernel applies it once to each total, the transform path's
/// loop body at every point of the product.
#[test]
fn an_invariant_factor_costs_every_point_on_the_transform_path() {
    let scaled = "import std.hw.host
workload gemm(M = 512, N = 512, K = 512) {
  input a: f32[M, K]
  input b: f32[K, N]
  input z: f32[M]
  output c: f32[M, N]
  c[i, j] = sum[k] a[i, k] * b[k, j] / z[i]
}
";
    let (plain_w, hw) = models(GEMM, "gemm");
    let (scaled_w, _) = models(scaled, "gemm");
    let predict = |w: &arch_sema::model::WorkloadModel, vector: usize| {
        let op = &w.ops[0];
        let p = CpuParams::for_op(&hw, w, op).expect("cpu params");
        evaluate(
            w,
            op,
            &p,
            &nest([16, 16, 64], vec![0, 2, 1], vector, vec![0]),
        )
        .compute_cycles
    };
    // Vectors along j: the packed kernel, the division once per output.
    let (packed_plain, packed_scaled) = (predict(&plain_w, 1), predict(&scaled_w, 1));
    assert!(
        packed_scaled < 1.01 * packed_plain,
        "{packed_scaled} vs {packed_plain}"
    );
    // Vectors along i: the transform path divides at every point.
    let (path_plain, path_scaled) = (predict(&plain_w, 0), predict(&scaled_w, 0));
    assert!(
        path_scaled > 2.0 * path_plain,
        "{path_scaled} vs {path_plain}"
    );
}

/// A builtin's cost that the hardware states (as `archc calibrate` writes
/// it) replaces the model's estimate: an element-wise tanh whose compute
/// is that builtin costs, per element, what the stated work takes at the
/// unit's rate.
#[test]
fn a_stated_builtin_cost_prices_its_elements() {
    let program = |stated: &str| {
        format!(
            "hardware m : cpu {{
  clock 1 GHz
  cores 1
  level dram {{ bandwidth 1000 GB/s }}
  level l1 {{ size 1 MiB per core  bandwidth 1000 GB/s per core }}
  compute fma {{
    f32: 32 flop/cycle per core
    vector 64 B
    {stated}
  }}
}}
workload t(R = 64, C = 4096) {{
  input x: f32[R, C]
  output y: f32[R, C]
  y[i, j] = tanh(x[i, j])
}}
"
        )
    };
    let compute_s = |stated: &str| {
        let mut db = RootDatabase::default();
        let file = common::checked_file(&mut db, "/cost/stated.arch", &program(stated));
        let (w, hw) = (
            common::workload_in(&db, file, "t"),
            common::hardware_in(&db, file, "m"),
        );
        let op = &w.ops[0];
        let p = CpuParams::for_op(&hw, &w, op).expect("cpu params");
        let nest = LoopNest {
            tiles: vec![vec![64, 4096], vec![64, 4096], vec![1, 256]],
            order: vec![0, 1],
            parallel: Vec::new(),
            vector: Some(1),
        };
        evaluate(&w, op, &p, &nest).compute_cycles
    };
    let (estimated, cheap, dear) = (
        compute_s(""),
        compute_s("tanh 20 flop"),
        compute_s("tanh 200 flop"),
    );
    // 64 x 4096 elements at 32 flops a cycle: 200 flops each take 1.64 M
    // cycles, 20 flops 164 k (a copy's slot besides: within 10 %).
    let elements = 64.0 * 4096.0;
    assert!(
        (dear - elements * 200.0 / 32.0).abs() < 0.1 * dear,
        "{dear}"
    );
    assert!(cheap < dear / 5.0, "{cheap} vs {dear}");
    assert!(estimated != dear, "the estimate is not the stated cost");
}
