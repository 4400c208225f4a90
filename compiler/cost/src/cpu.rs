//! The cpu model: a roofline over every memory level, with the bytes each
//! level moves derived from the tile sizes and the loop order (Timeloop-style
//! reuse at the innermost boundary of each level).
//!
//! A schedule tiles the op's iteration space once per memory level: level 0
//! (DRAM) holds the whole space, level `l` holds a tile of it. Between level
//! `l - 1` and level `l` the loops step over the `l` tiles in `order`
//! (outermost first). A tensor's tile at level `l` is loaded once per
//! iteration of those loops, except that innermost loops over dimensions the
//! tensor does not use keep it resident (it is stationary there); every
//! iteration of an outer boundary reloads it. The output tile is read and
//! written back each time it is reloaded after its first visit (partial sums).

use crate::report::{Predicted, Roofline};
use arch_sema::hardware::HardwareModel;
use arch_sema::model::{collect_accesses, Op, ScalarExpr, WorkloadModel};

/// The concrete loop nest of one op.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoopNest {
    /// `tiles[l][v]`: tile size of variable `v` held at level `l`; level 0
    /// (the outermost memory) holds the full extents.
    pub tiles: Vec<Vec<u64>>,
    /// Variables outermost first; the same order at every boundary.
    pub order: Vec<usize>,
    /// Variables whose innermost tiles are split over cores.
    pub parallel: Vec<usize>,
    /// The variable mapped to vector lanes (`None`: scalar code).
    pub vector: Option<usize>,
}

impl LoopNest {
    /// No tiling: every level holds the full space (a naive loop nest).
    pub fn untiled(op: &Op, levels: usize) -> LoopNest {
        let full: Vec<u64> = op.vars.iter().map(|v| v.extent).collect();
        LoopNest {
            tiles: vec![full; levels],
            order: (0..op.vars.len()).collect(),
            parallel: Vec::new(),
            vector: None,
        }
    }

    /// Every level's tile divides its parent's: no remainder tiles.
    pub fn divides_evenly(&self) -> bool {
        self.tiles
            .windows(2)
            .all(|w| w[0].iter().zip(&w[1]).all(|(p, t)| *t > 0 && p % t == 0))
    }

    /// Trip count of variable `v` at the boundary into level `l` (l >= 1).
    pub fn trips(&self, l: usize, v: usize) -> u64 {
        self.tiles[l - 1][v].div_ceil(self.tiles[l][v].max(1))
    }
}

/// A compute op's machine: cores, clock, peak and levels, in base units.
#[derive(Debug, Clone, PartialEq)]
pub struct CpuParams {
    pub cores: u64,
    pub clock_hz: f64,
    /// Floating-point operations per cycle per core for the op's type.
    pub flops_per_cycle_per_core: f64,
    pub energy_per_flop_j: f64,
    /// `(name, bandwidth B/s for the whole chip, energy J/B)`, outermost first.
    pub levels: Vec<(String, f64, f64)>,
    /// The fraction of an op's dense work the unit does: below 1 for a
    /// contraction whose weight is pruned to a pattern the unit skips zeros
    /// of (see [`CpuParams::for_op`]).
    pub work_fraction: f64,
    /// Elements of the op's type per vector register (`None`: the rate is
    /// reached whatever the loop nest).
    pub lanes: Option<u64>,
}

impl CpuParams {
    /// Parameters for ops whose products are in `dtype`.
    pub fn from_hardware(hw: &HardwareModel, dtype: arch_sema::dtype::DType) -> Option<CpuParams> {
        let (unit, rate) = hw.compute_rate(dtype)?;
        Some(CpuParams {
            cores: hw.cores,
            clock_hz: hw.clock_hz?.0,
            flops_per_cycle_per_core: hw.for_one_core(rate),
            energy_per_flop_j: unit.energy_j_per_op.map_or(0.0, |e| e.value.0),
            levels: hw.levels.iter().map(|l| hw.level_costs(l)).collect(),
            work_fraction: 1.0,
            lanes: unit
                .vector_bytes
                .map(|v| ((v.value.0 * 8.0) as u64 / dtype.bits().max(1)).max(1)),
        })
    }

    /// Parameters for `op`: its compute type, and the work its unit skips
    /// when its weight is pruned.
    pub fn for_op(hw: &HardwareModel, w: &WorkloadModel, op: &Op) -> Option<CpuParams> {
        let dtype = w.compute_dtype(op);
        let sparse = hw.compute_rate(dtype)?.0.sparse;
        Some(CpuParams {
            work_fraction: crate::sparsity::gemm_work_fraction(
                &crate::gemm::gemm_view(w, op),
                sparse,
            ),
            ..CpuParams::from_hardware(hw, dtype)?
        })
    }
}

/// Variables a tensor's indices use (the output: the output variables).
fn used_vars(op: &Op, tensor: usize) -> Vec<usize> {
    if tensor == op.output {
        return (0..op.output_rank).collect();
    }
    let mut vars = Vec::new();
    collect_accesses(&op.body, &mut |t, index| {
        if t == tensor {
            vars.extend(index.iter().flat_map(|a| a.terms.iter().map(|(v, _)| *v)));
        }
    });
    vars.sort_unstable();
    vars.dedup();
    vars
}

/// How many times the tile of `tensor` at level `l` is filled.
pub fn fills(op: &Op, nest: &LoopNest, tensor: usize, l: usize) -> f64 {
    let used = used_vars(op, tensor);
    let mut count = 1.0;
    // Outer boundaries: every iteration evicts and reloads.
    for b in 1..l {
        for &v in &nest.order {
            count *= nest.trips(b, v) as f64;
        }
    }
    // The innermost boundary: trailing loops over unused variables keep the
    // tile resident.
    let relevant_end = nest
        .order
        .iter()
        .rposition(|v| used.contains(v) && nest.trips(l, *v) > 1);
    if let Some(end) = relevant_end {
        for &v in &nest.order[..=end] {
            count *= nest.trips(l, v) as f64;
        }
    }
    count
}

/// Every tensor of `op` moved once: the bytes no schedule can avoid.
pub fn compulsory_bytes(w: &WorkloadModel, op: &Op) -> f64 {
    let full: Vec<u64> = op.vars.iter().map(|v| v.extent).collect();
    op.tile_bytes(&w.tensors, &full)
        .iter()
        .map(|(_, b)| b)
        .sum()
}

/// Bytes that cross the boundary into level `l` (`1 <= l < tiles.len()`):
/// every tensor's tile at `l` times its fills, with the output's partial
/// sums read back in on every visit after the first.
pub fn fill_bytes(w: &WorkloadModel, op: &Op, nest: &LoopNest, l: usize) -> f64 {
    let tile_bytes = op.tile_bytes(&w.tensors, &nest.tiles[l]);
    tile_bytes
        .iter()
        .map(|&(t, once)| {
            let count = fills(op, nest, t, l);
            if t == op.output && count > 1.0 {
                let distinct: f64 = (0..op.output_rank)
                    .map(|v| nest.tiles[0][v].div_ceil(nest.tiles[l][v].max(1)) as f64)
                    .product();
                once * (2.0 * count - distinct)
            } else {
                once * count
            }
        })
        .sum()
}

/// Strided vector code (a vector dimension other than the output's
/// contiguous one) against scalar code, with static register tiles, on the
/// code archc generates (measured; see `evaluate`).
pub const STRIDED_STATIC_VS_SCALAR: f64 = 3.0;
/// The same when tile remainders make the register tiles masked.
pub const STRIDED_MASKED_VS_SCALAR: f64 = 1.0 / 3.0;

/// Vector-unit operations one builtin costs in archc's code, counted in
/// the instructions it emits for f32 (arch_mlir's `fastmath`: exp is a
/// range reduction, a degree-6 polynomial and the exponent bits, about 16
/// operations; tanh and sigmoid add a division and selects; erf a second
/// polynomial). A division or square root occupies the divider for about
/// four FMA slots (AMD and Intel optimization manuals: latency/throughput
/// tables). `log` is a libm call per element (about 20 scalar operations).
pub fn builtin_ops(f: arch_sema::model::Builtin) -> f64 {
    use arch_sema::model::Builtin;
    match f {
        Builtin::Exp => 16.0,
        Builtin::Sigmoid => 22.0,
        Builtin::Tanh => 30.0,
        Builtin::Erf => 36.0,
        Builtin::Log => 20.0,
        Builtin::Sqrt => 4.0,
        Builtin::Abs | Builtin::Max | Builtin::Min => 1.0,
    }
}

/// Operations of `e` per evaluation, and those inside reductions per point
/// of the whole iteration space: `(outside, inside)`.
fn expr_ops(e: &ScalarExpr) -> (f64, f64) {
    // Arithmetic on constants only (`1 / sqrt(D)`) is folded by the compiler.
    let mut reads_data = false;
    collect_accesses(e, &mut |_, _| reads_data = true);
    if !reads_data && !has_index(e) {
        return (0.0, 0.0);
    }
    match e {
        ScalarExpr::Const(_) | ScalarExpr::Index(_) | ScalarExpr::Access { .. } => (0.0, 0.0),
        ScalarExpr::Neg(x) | ScalarExpr::Cast { value: x, .. } => {
            let (o, i) = expr_ops(x);
            (o + 1.0, i)
        }
        ScalarExpr::Binary { op, lhs, rhs } => {
            let (lo, li) = expr_ops(lhs);
            let (ro, ri) = expr_ops(rhs);
            let own = if *op == arch_syntax::ast::BinOp::Div {
                4.0
            } else {
                1.0
            };
            (lo + ro + own, li + ri)
        }
        ScalarExpr::Call { func, args } => args
            .iter()
            .map(expr_ops)
            .fold((builtin_ops(*func), 0.0), |(o, i), (ao, ai)| {
                (o + ao, i + ai)
            }),
        ScalarExpr::Reduce { body, .. } => {
            // The body and one combining step run at every point.
            let (o, i) = expr_ops(body);
            (0.0, o + i + 1.0)
        }
    }
}

fn has_index(e: &ScalarExpr) -> bool {
    match e {
        ScalarExpr::Index(_) => true,
        ScalarExpr::Const(_) | ScalarExpr::Access { .. } => false,
        ScalarExpr::Neg(x) | ScalarExpr::Cast { value: x, .. } => has_index(x),
        ScalarExpr::Reduce { body, .. } => has_index(body),
        ScalarExpr::Binary { lhs, rhs, .. } => has_index(lhs) || has_index(rhs),
        ScalarExpr::Call { args, .. } => args.iter().any(has_index),
    }
}

/// Scalar operations of `op` (a multiply and an add per point of a
/// contraction; each builtin as [`builtin_ops`]): element-wise work runs
/// once per output element, a reduction's body once per point.
pub fn op_flops(op: &Op) -> f64 {
    let all: f64 = op.vars.iter().map(|v| v.extent as f64).product();
    let outputs: f64 = op.vars[..op.output_rank]
        .iter()
        .map(|v| v.extent as f64)
        .product();
    let (outside, inside) = expr_ops(&op.body);
    // A copy still moves each element through the vector unit once.
    (outside * outputs + inside * all).max(outputs)
}

/// Predicts one compute op under a loop nest.
pub fn evaluate(w: &WorkloadModel, op: &Op, p: &CpuParams, nest: &LoopNest) -> Predicted {
    // A unit that skips the zeros of a pruned weight does part of the work.
    let flops = op_flops(op) * p.work_fraction;
    // A parallel dimension splits its innermost tiles over the cores.
    let last = nest.tiles.len() - 1;
    let parallel_ways: u64 = nest
        .parallel
        .iter()
        .map(|v| nest.tiles[0][*v].div_ceil(nest.tiles[last][*v].max(1)))
        .product::<u64>()
        .max(1);
    let cores_used = parallel_ways.min(p.cores).max(1) as f64;
    // The peak needs full vector registers: the vector dimension's innermost
    // tile fills ceil(t / lanes) registers, and lanes left over idle; scalar
    // code uses one lane.
    // Lanes run along memory only when the vector dimension is the output's
    // innermost (contiguous) index. Another dimension gives archc's
    // transform-dialect path strided register tiles: measured at about 3x
    // scalar code when every tile divides its parent (static shapes), and
    // about a third of scalar code when remainders make every tile masked
    // (`bench/cost_truth.py --seed 2`, BENCHMARKS.md "Cost-model truth").
    let contiguous = |v: usize| op.output_rank > 0 && v == op.output_rank - 1;
    let lane_use = match (p.lanes, nest.vector) {
        (Some(lanes), Some(v)) if !contiguous(v) => {
            let factor = if nest.divides_evenly() {
                STRIDED_STATIC_VS_SCALAR
            } else {
                STRIDED_MASKED_VS_SCALAR
            };
            factor / lanes as f64
        }
        (Some(lanes), Some(v)) => {
            let t = nest.tiles[last][v].max(1);
            t as f64 / (t.div_ceil(lanes) * lanes) as f64
        }
        (Some(lanes), None) => 1.0 / lanes as f64,
        (None, _) => 1.0,
    };
    let compute_s = flops / (p.flops_per_cycle_per_core * cores_used * p.clock_hz * lane_use);
    let compulsory = compulsory_bytes(w, op);
    let mut traffic = Vec::new();
    for (l, (name, bw, e)) in p.levels.iter().enumerate() {
        // Traffic across the boundary above level l (level 0: to and from
        // DRAM, counted as the fills of level 1's tiles).
        let bytes = if l + 1 < nest.tiles.len() {
            fill_bytes(w, op, nest, l + 1)
        } else {
            // The innermost level feeds the registers: each of its tiles is
            // read once per visit (perfect reuse inside a tile; the register
            // tile itself comes with code generation).
            let inner = nest.tiles.len() - 1;
            let visits: f64 = (0..op.vars.len())
                .map(|v| nest.tiles[0][v].div_ceil(nest.tiles[inner][v].max(1)) as f64)
                .product();
            let once: f64 = op
                .tile_bytes(&w.tensors, &nest.tiles[inner])
                .iter()
                .map(|(_, b)| b)
                .sum();
            once * visits
        };
        traffic.push((name.clone(), bytes, *bw, *e));
    }
    let dram_bw = p.levels.first().map_or(f64::INFINITY, |l| l.1);
    let peak_s = flops / (p.flops_per_cycle_per_core * p.cores as f64 * p.clock_hz);
    Roofline {
        clock_hz: p.clock_hz,
        compute_s,
        compute_energy_j: flops * p.energy_per_flop_j,
        lower_bound_s: peak_s.max(compulsory / dram_bw),
    }
    .finish(traffic)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arch_sema::dtype::DType;
    use arch_sema::model::{Affine, IndexVar, OpKind, ScalarExpr, Tensor};
    use arch_syntax::ast::{BinOp, ReduceOp, Role, Span};

    /// `c[i, j] = sum[k] a[i, k] * b[k, j]`, all 4 x 4 f32.
    fn gemm4() -> (WorkloadModel, Op) {
        let t = |name: &str, role| Tensor {
            name: name.into(),
            role,
            dtype: DType::F32,
            shape: vec![4, 4],
            sparsity: None,
            density: None,
            span: Span::default(),
        };
        let access = |tensor, a: usize, b: usize| ScalarExpr::Access {
            tensor,
            index: vec![Affine::var(a), Affine::var(b)],
        };
        let op = Op {
            output: 2,
            vars: ["i", "j", "k"]
                .iter()
                .map(|n| IndexVar {
                    name: n.to_string(),
                    extent: 4,
                })
                .collect(),
            output_rank: 2,
            body: ScalarExpr::Reduce {
                op: ReduceOp::Sum,
                vars: vec![2],
                body: Box::new(ScalarExpr::Binary {
                    op: BinOp::Mul,
                    lhs: Box::new(access(0, 0, 2)),
                    rhs: Box::new(access(1, 2, 1)),
                }),
            },
            kind: OpKind::Compute,
            span: Span::default(),
            origin: None,
        };
        let w = WorkloadModel {
            name: "g".into(),
            params: vec![],
            tensors: vec![
                t("a", Role::Input),
                t("b", Role::Input),
                t("c", Role::Output),
            ],
            ops: vec![op.clone()],
            graph: Default::default(),
        };
        (w, op)
    }

    fn machine() -> CpuParams {
        CpuParams {
            cores: 1,
            clock_hz: 1e9,
            flops_per_cycle_per_core: 2.0,
            energy_per_flop_j: 1e-12,
            levels: vec![("dram".into(), 1e9, 10e-12), ("l1".into(), 1e10, 1e-12)],
            work_fraction: 1.0,
            lanes: None,
        }
    }

    #[test]
    fn reuse_by_hand() {
        let (w, op) = gemm4();
        // l1 holds 2 x 2 output tiles with the whole k: order i, j, k.
        let nest = LoopNest {
            tiles: vec![vec![4, 4, 4], vec![2, 2, 4]],
            order: vec![0, 1, 2],
            parallel: vec![],
            vector: None,
        };
        // a[i, k] is reused across j (innermost unused loop): 2 fills.
        assert_eq!(fills(&op, &nest, 0, 1), 2.0);
        // b[k, j] changes with j and is reloaded for every i: 4 fills.
        assert_eq!(fills(&op, &nest, 1, 1), 4.0);
        let p = evaluate(&w, &op, &machine(), &nest);
        // DRAM: a once (64 B), b twice (128 B), c written once (64 B).
        assert_eq!(p.levels[0].bytes, 256.0);
        // l1 feeds 4 tiles of (a 32 B + b 32 B + c 16 B).
        assert_eq!(p.levels[1].bytes, 320.0);
        // 128 flops at 2 flop/cycle = 64 cycles = 64 ns; DRAM 256 B at 1 GB/s = 256 ns.
        assert_eq!(p.compute_cycles, 64.0);
        assert_eq!(p.bottleneck, "dram");
        assert!((p.latency_s - 256e-9).abs() < 1e-15);
        // Speed of light: 192 compulsory bytes at 1 GB/s.
        assert!((p.lower_bound_s - 192e-9).abs() < 1e-15);
        // Energy: 128 flops * 1 pJ + 256 B * 10 pJ + 320 B * 1 pJ.
        assert!((p.energy_j - (128e-12 + 2560e-12 + 320e-12)).abs() < 1e-18);
    }

    #[test]
    fn the_loop_order_changes_reuse() {
        let (w, op) = gemm4();
        // k outermost: the output tile is revisited and its partial sums
        // travel twice.
        let nest = LoopNest {
            tiles: vec![vec![4, 4, 4], vec![2, 2, 2]],
            order: vec![2, 0, 1],
            parallel: vec![],
            vector: None,
        };
        assert_eq!(fills(&op, &nest, 2, 1), 8.0);
        let p = evaluate(&w, &op, &machine(), &nest);
        // a[i, k] stays across the innermost j: 4 fills of 16 B = 64;
        // b[k, j]: 8 fills = 128; c: 16 B * (2 * 8 - 4 distinct) = 192.
        assert_eq!(fills(&op, &nest, 0, 1), 4.0);
        assert_eq!(p.levels[0].bytes, 384.0);
        // With k innermost the output stays and its sums never travel back,
        // but a is reloaded for every j: a 8 fills (128), b 8 (128), c 4
        // fills written once (64).
        let better = LoopNest {
            order: vec![0, 1, 2],
            ..nest
        };
        assert_eq!(
            evaluate(&w, &op, &machine(), &better).levels[0].bytes,
            320.0
        );
    }

    #[test]
    fn short_vector_tiles_leave_lanes_idle() {
        let (w, op) = gemm4();
        let mut m = machine();
        m.lanes = Some(8);
        let nest = |vector| LoopNest {
            tiles: vec![vec![4, 4, 4], vec![4, 4, 4]],
            order: vec![0, 1, 2],
            parallel: vec![],
            vector,
        };
        // 128 flops at 2 flop/cycle: 64 cycles with every lane busy. A
        // 4-wide innermost tile fills half of 8 lanes: 128 cycles; scalar
        // code one lane of 8: 512.
        assert_eq!(evaluate(&w, &op, &m, &nest(Some(1))).compute_cycles, 128.0);
        assert_eq!(evaluate(&w, &op, &m, &nest(None)).compute_cycles, 512.0);
        m.lanes = Some(4);
        assert_eq!(evaluate(&w, &op, &m, &nest(Some(1))).compute_cycles, 64.0);
    }

    #[test]
    fn strided_vector_dimensions_cost_by_whether_tiles_divide() {
        let (w, op) = gemm4();
        let mut m = machine();
        m.lanes = Some(8);
        // Vectorizing i (not the output's contiguous j): 128 flops at 2
        // flop/cycle with 3/8 of the lanes' worth when the tiles divide:
        // 64 / (3/8) cycles; a third of scalar (8 x 64 x 3) when they do not.
        let even = LoopNest {
            tiles: vec![vec![4, 4, 4], vec![2, 4, 4]],
            order: vec![0, 1, 2],
            parallel: vec![],
            vector: Some(0),
        };
        let ragged = LoopNest {
            tiles: vec![vec![4, 4, 4], vec![3, 4, 4]],
            ..even.clone()
        };
        assert!(even.divides_evenly() && !ragged.divides_evenly());
        let cycles = |n: &LoopNest| evaluate(&w, &op, &m, n).compute_cycles;
        // (cycles are whole: rounded up)
        assert_eq!(cycles(&even), (64.0f64 * 8.0 / 3.0).ceil());
        assert_eq!(cycles(&ragged), 64.0 * 8.0 * 3.0);
    }

    #[test]
    fn parallel_loops_use_more_cores() {
        let (w, op) = gemm4();
        let mut m = machine();
        m.cores = 2;
        let serial = LoopNest {
            tiles: vec![vec![4, 4, 4], vec![2, 4, 4]],
            order: vec![0, 1, 2],
            parallel: vec![],
            vector: None,
        };
        let split = LoopNest {
            parallel: vec![0],
            ..serial.clone()
        };
        assert_eq!(evaluate(&w, &op, &m, &serial).compute_cycles, 64.0);
        assert_eq!(evaluate(&w, &op, &m, &split).compute_cycles, 32.0);
    }
}
