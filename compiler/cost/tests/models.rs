//! Cost models on real semantic models, with hand-computed expectations.

use arch_cost::cpu::LoopNest;
use arch_cost::gemm::gemm_view;
use arch_cost::npu::{evaluate, tile_extents, NpuParams};
use arch_sema::db::RootDatabase;

mod common;

const PROGRAM: &str = "import std.hw.npu16
import std.nn.relu
workload gemm(M = 64, N = 64, K = 64) {
  input a: int8[M, K]
  weight b: int8[K, N]
  output c: int32[M, N]
  c[m, n] = sum[k] a[m, k] * b[k, n]
}
workload conv(N = 1, C = 64, H = 58, W = 58, F = 64, R = 3, S = 3) {
  input x: int8[N, C, H, W]
  weight w: int8[F, C, R, S]
  output y: int32[N, F, H - R + 1, W - S + 1]
  y[n, f, p, q] = sum[c, r, s] x[n, c, p + r, q + s] * w[f, c, r, s]
}
workload mlp(B = 32, K = 128, N = 256) {
  input x: f32[B, K]
  weight w: f32[K, N]
  weight b: f32[N]
  output y: f32[B, N]
  y[i, j] = relu(sum[k] x[i, k] * w[k, j] + b[j])
}
";

fn with_models(
    f: impl FnOnce(&RootDatabase, &dyn Fn(&str) -> arch_sema::model::WorkloadModel, NpuParams),
) {
    let mut db = RootDatabase::default();
    let file = common::checked_file(&mut db, "/cost/models.arch", PROGRAM);
    let hw = common::std_hardware(&db, "npu16");
    let params = NpuParams::from_hardware(&hw).expect("npu16 has an array");
    let workload = |name: &str| common::workload_in(&db, file, name);
    f(&db, &workload, params);
}

#[test]
fn contraction_views() {
    with_models(|_, workload, _| {
        let g = workload("gemm");
        let v = gemm_view(&g, &g.ops[0]);
        assert_eq!((v.m, v.n, v.k), (64, 64, 64));
        assert_eq!(v.b, g.tensor("b"));
        // Convolution: M = output pixels (n, p, q), N = filters, K = window (c, r, s).
        let c = workload("conv");
        let v = gemm_view(&c, &c.ops[0]);
        assert_eq!((v.m, v.n, v.k), (56 * 56, 64, 64 * 9));
        assert_eq!(v.b, c.tensor("w"));
        // The bias and ReLU around the contraction do not hide it.
        let m = workload("mlp");
        let v = gemm_view(&m, &m.ops[0]);
        assert_eq!((v.m, v.n, v.k), (32, 256, 128));
    });
}

#[test]
fn npu16_by_hand() {
    with_models(|_, workload, p| {
        assert_eq!((p.rows, p.cols), (16, 16));
        let g = workload("gemm");
        let pred = evaluate(&g, &g.ops[0], &p, &LoopNest::untiled(&g.ops[0], 3));
        // 16 folds of 2*16 + 16 + 64 - 2 = 110 cycles, less one (SCALE-Sim
        // counts the index of the last cycle).
        assert_eq!(pred.compute_cycles, 1759.0);
        assert_eq!(pred.utilization, pred.lower_bound_s / pred.latency_s);
        assert!(pred.latency_s >= pred.lower_bound_s);
        // Every operand crosses DRAM at least once: 3 * 64 * 64 int8 bytes.
        assert!(pred.levels[0].bytes >= 3.0 * 4096.0);
        let c = workload("conv");
        let pred = evaluate(&c, &c.ops[0], &p, &LoopNest::untiled(&c.ops[0], 3));
        // Sr = 576 (36 row folds), Sc = 64 (4), T = 3136: 144 * 3182 - 1
        // (SCALE-Sim 3.0.0 printed 458207 for this ResNet-18 layer).
        assert_eq!(pred.compute_cycles, 144.0 * 3182.0 - 1.0);
        assert!(pred.energy_j > 0.0);
    });
}

#[test]
fn npu16_tiles_by_hand() {
    with_models(|_, workload, p| {
        let g = workload("gemm");
        let op = &g.ops[0];
        // Scratchpad tiles of 32 x 64 x 64 (m, n, k), accumulator tiles of
        // 32 x 16 x 64, loop order m, n, k.
        let nest = LoopNest {
            tiles: vec![vec![64, 64, 64], vec![32, 64, 64], vec![32, 16, 64]],
            order: vec![0, 1, 2],
            parallel: vec![],
            vector: None,
        };
        // 2 * 4 = 8 accumulator tiles, each a pass of 4 row folds of
        // 2*16 + 16 + 32 - 2 = 78 cycles: 8 * 312 - 1.
        let pred = evaluate(&g, op, &p, &nest);
        assert_eq!(pred.compute_cycles, 8.0 * 4.0 * 78.0 - 1.0);
        // DRAM: a's 32 x 64 tile twice (4096 B); b's tile is all of b and
        // no loop that moves it has more than one trip, so it comes once
        // (4096 B); c written once (64 * 64 * 4 = 16384 B).
        assert_eq!(pred.levels[0].bytes, 4096.0 + 4096.0 + 16384.0);
        // With k split in two inside m, b's halves alternate and come for
        // every m tile: 4 fills of 2048 B.
        let k_split = LoopNest {
            tiles: vec![vec![64, 64, 64], vec![32, 64, 32], vec![32, 16, 32]],
            ..nest.clone()
        };
        let split = evaluate(&g, op, &p, &k_split);
        assert_eq!(split.levels[0].bytes, 4096.0 + 8192.0 + 16384.0);
        // Scratchpad to array per tile (weight stationary, one column fold):
        // b 64 x 16 once + a 32 x 64 once = 3072 B, 8 tiles.
        assert_eq!(pred.levels[1].bytes, 8.0 * 3072.0);
        // Accumulator: 32 x 16 int32 partial sums, in and out, per row fold.
        assert_eq!(pred.levels[2].bytes, 8.0 * 32.0 * 16.0 * 4.0 * 2.0 * 4.0);
        // A tile that does not divide its parent leaves a smaller one: 64
        // cut by 24 is 24, 24, 16; then by 16 is 16, 8, 16, 8, 16.
        let odd = LoopNest {
            tiles: vec![vec![64, 64, 64], vec![24, 64, 64], vec![16, 64, 64]],
            ..nest
        };
        let mut extents = tile_extents(&odd, 0);
        extents.sort_unstable();
        assert_eq!(extents, vec![(8, 2), (16, 3)]);
    });
}

#[test]
fn loihi2_parameters_come_from_the_stdlib() {
    let db = RootDatabase::default();
    let hw = common::std_hardware(&db, "loihi2");
    let p = arch_cost::neuro::NeuroParams::from_hardware(&hw).expect("neuromorphic parameters");
    assert_eq!(p.cores, 128);
    assert!((p.synop_time_s - 4.0e-9).abs() < 1e-18);
    assert!((p.synop_energy_j - 35.5e-12).abs() < 1e-21);
    assert!((p.barrier_time_s - 299e-9).abs() < 1e-15);
    // 8 x 16 mesh: mean distance (8 + 16) / 3 = 8 hops.
    assert!((p.mean_hops - 8.0).abs() < 1e-12);
    // The MNIST-sized hidden layer of examples/snn.arch, split over 8 cores.
    let layer = arch_cost::neuro::SpikingLayer {
        timesteps: 64,
        neurons: 512,
        fan_in: 784,
        weight_density: 0.25,
        weight_bits: 8,
        input_activity: 0.1,
        output_activity: 0.1,
        fanout_cores: 1,
    };
    assert_eq!(arch_cost::neuro::check_capacity(&layer, &p, 8), None);
    let pred = arch_cost::neuro::evaluate(&layer, &p, 8);
    assert!(pred.latency_s > 0.0 && pred.latency_s >= pred.lower_bound_s);
}
