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

use crate::kernel_shape::ThreadSplit;
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

    /// Threads that run the op on `cores` cores: one per innermost tile
    /// of its parallel dimensions, at most `cores` (one without any). The
    /// code generator starts as many.
    pub fn threads(&self, cores: u64) -> u64 {
        let Some(last) = self.tiles.len().checked_sub(1) else {
            return 1;
        };
        let ways: u64 = self
            .parallel
            .iter()
            .map(|v| self.tiles[0][*v].div_ceil(self.tiles[last][*v].max(1)))
            .product::<u64>()
            .max(1);
        ways.min(cores).max(1)
    }

    /// The output dimension the code generator splits over threads: the
    /// first parallel one, when the nest runs on more than one thread of
    /// `cores`.
    pub fn thread_split(&self, output_rank: usize, cores: u64) -> Option<usize> {
        let split = self.parallel.iter().copied().find(|v| *v < output_rank);
        split.filter(|_| self.threads(cores) > 1)
    }

    /// The extent of variable `v` that the loops inside level `through`
    /// span once the thread split ([`LoopNest::thread_split`]) and levels
    /// 1..=`through` have tiled it; `None` when some tiling leaves a partial
    /// tile, so that the extent is only known at run time.
    pub fn tiled_extent(
        &self,
        v: usize,
        output_rank: usize,
        cores: u64,
        through: usize,
    ) -> Option<u64> {
        let mut extent = self.tiles.first()?[v];
        let threads = self.threads(cores);
        let thread_tile =
            (self.thread_split(output_rank, cores) == Some(v)).then(|| extent.div_ceil(threads));
        let level_tiles = (1..self.tiles.len().min(through + 1))
            .filter(|l| self.tiles[*l][v] < self.tiles[*l - 1][v])
            .map(|l| self.tiles[l][v]);
        for tile in thread_tile.into_iter().chain(level_tiles) {
            if tile == 0 || tile >= extent {
                continue;
            }
            if extent % tile != 0 {
                return None;
            }
            extent = tile;
        }
        Some(extent)
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
    /// Per level (outermost first), the most one core moves through it in
    /// B/s (the level's `core_bandwidth`; infinite without one): a level
    /// shared by the chip serves `k` cores at most `k` times this.
    pub core_bandwidth: Vec<f64>,
    /// The fraction of an op's dense work the unit does: below 1 for a
    /// contraction whose weight is pruned to a pattern the unit skips zeros
    /// of (see [`CpuParams::for_op`]).
    pub work_fraction: f64,
    /// Elements of the op's type per vector register (`None`: the rate is
    /// reached whatever the loop nest).
    pub lanes: Option<u64>,
    /// Elements of the op's type one vector register holds (the packed
    /// kernel's register tile is two registers wide); `lanes` may be fewer
    /// where the core splits its registers.
    pub register_lanes: Option<u64>,
    /// Bytes caches move at a time ([`CACHE_LINE_BYTES`]).
    pub line_bytes: f64,
    /// Per level (outermost first), what starting a new stream of reads
    /// from it costs in bytes: the level's latency times its bandwidth
    /// (the transfer a restart leaves idle), at least one line.
    pub restart_bytes: Vec<f64>,
    /// The level the workload's data comes from between calls
    /// ([`crate::bounds::resident_level`]): no traffic crosses the levels
    /// outside it.
    pub resident_level: usize,
    /// The workload's bytes over the size of the cache it lives in
    /// ([`crate::bounds::resident_fill`]; 0 in the outermost level).
    pub resident_fill: f64,
    /// The level each tensor comes from ([`crate::bounds::tensor_homes`]:
    /// an intermediate a cache still holds when it is read); empty: every
    /// tensor from `resident_level`.
    pub homes: Vec<usize>,
    /// Vector-unit slots per element of each builtin the hardware states
    /// (calibrated: what archc's own code for it took on this machine);
    /// the others count [`builtin_ops`].
    pub builtin_slots: Vec<(arch_sema::model::Builtin, f64)>,
}

/// The share of its measured rate a shared outermost cache delivers when
/// the data it serves fills `fill` of it. `archc calibrate` measures the
/// rate on a quarter of the cache and writes as its size 4/3 of the working
/// set whose reads still get 60 % of that rate (a victim cache shared with
/// other cores and neighbours loses lines long before it is full), and a
/// workload lives in it up to three quarters of that size
/// ([`crate::bounds::resident_level`]): the rate falls from all of it at a
/// quarter to 60 % at three quarters (here, 16 MiB of a calibrated 26.7 MiB
/// read at 71 % of the quarter's rate measured, 72 % by this line).
pub fn shared_cache_rate(fill: f64) -> f64 {
    1.0 - 0.4 * ((fill - 0.25) / 0.5).clamp(0.0, 1.0)
}

/// The rate (B/s) at which `cores` cores pack panels of a `b` that lives
/// in level `home`. A panel is one or two lines of each row of `b`, rows
/// apart by the row's length (usually more than a page), which hardware
/// prefetchers do not follow: each line waits for its level. A private
/// cache serves it at the level's rate; the shared outermost cache has
/// lost a growing share of its lines to other cores and neighbours by
/// the time they are read again ([`PACK_MISS_FILL`]), and those come at
/// DRAM's rate.
pub fn pack_read_rate(p: &CpuParams, home: usize, cores: f64) -> f64 {
    let level_rate = |l: usize| {
        let bw = p.levels.get(l).map_or(f64::INFINITY, |x| x.1);
        let bw = if l == 0 {
            bw
        } else {
            bw * cores / p.cores.max(1) as f64
        };
        bw.min(p.core_stream(l) * cores)
    };
    if home == 0 || p.levels.len() < 2 {
        return level_rate(0);
    }
    if home != 1 || home != p.resident_level {
        return level_rate(home);
    }
    let (from, to) = PACK_MISS_FILL;
    let missed = ((p.resident_fill - from) / (to - from)).clamp(0.0, 1.0);
    1.0 / ((1.0 - missed) / level_rate(1) + missed / level_rate(0))
}

/// The fills of the shared outermost cache (the workload's bytes over its
/// calibrated size) between which the packed kernel's panel reads of `b`
/// go from all hits to all misses ([`pack_read_rate`]). Measured here
/// (Zen 4 VM, 32 MiB L3 shared with neighbours, calibrated 26.7 MiB):
/// products of 128 x 768 by 768 x N, N from 768 to 6144, ran 0.99, 1.06,
/// 1.09, 1.10, 1.10 of the prediction without this term (fills 0.12, 0.22,
/// 0.32, 0.42, 0.83); their excess is B's bytes at 26, 20, 16, 17 GB/s
/// (DRAM: 24 GB/s).
pub const PACK_MISS_FILL: (f64, f64) = (0.125, 0.25);

impl CpuParams {
    /// The most one core moves through level `l` (B/s; infinite where the
    /// level has no `core_bandwidth`).
    pub fn core_stream(&self, l: usize) -> f64 {
        self.core_bandwidth.get(l).copied().unwrap_or(f64::INFINITY)
    }

    /// Columns of the packed kernel's register tile: two vector registers
    /// (`arch_mlir::gemm`'s `nr`).
    pub fn packed_panel_cols(&self) -> u64 {
        2 * self.register_lanes.unwrap_or(8).clamp(1, 16)
    }

    /// Parameters for ops whose products are in `dtype`.
    pub fn from_hardware(hw: &HardwareModel, dtype: arch_sema::dtype::DType) -> Option<CpuParams> {
        let (unit, rate) = hw.compute_rate(dtype)?;
        let register_lanes = unit
            .vector_bytes
            .map(|v| ((v.value.0 * 8.0) as u64 / dtype.bits().max(1)).max(1));
        Some(CpuParams {
            cores: hw.cores,
            clock_hz: hw.clock_hz?.0,
            flops_per_cycle_per_core: hw.for_one_core(rate),
            energy_per_flop_j: unit.energy_j_per_op.map_or(0.0, |e| e.value.0),
            levels: hw.levels.iter().map(|l| hw.level_costs(l)).collect(),
            core_bandwidth: hw
                .levels
                .iter()
                .map(|l| {
                    l.core_bandwidth_bytes_per_s
                        .map_or(f64::INFINITY, |b| b.value.0)
                })
                .collect(),
            work_fraction: 1.0,
            // Lanes the vector unit completes per instruction slot: the
            // register's lanes, unless the core's rate says it splits them
            // (Zen 4 runs 512-bit vectors as two 256-bit halves): with two
            // FMA pipes, rate / 4 lanes (f32 flops count an FMA as two).
            register_lanes,
            lanes: register_lanes.map(|register| {
                let per_slot = (hw.for_one_core(rate) / 4.0).max(1.0) as u64;
                let per_slot = 1u64 << (63 - per_slot.max(1).leading_zeros());
                register.min(per_slot).max(1)
            }),
            resident_level: 0,
            resident_fill: 0.0,
            homes: Vec::new(),
            line_bytes: CACHE_LINE_BYTES,
            restart_bytes: hw
                .levels
                .iter()
                .map(|l| {
                    let latency = l.latency_s.map_or(0.0, |a| a.value.0);
                    // One core's stream restarts.
                    let bandwidth = l.bandwidth_bytes_per_s.map_or(0.0, |a| a.value.0);
                    let bandwidth = l
                        .core_bandwidth_bytes_per_s
                        .map_or(bandwidth, |c| bandwidth.min(c.value.0));
                    (latency * bandwidth).max(CACHE_LINE_BYTES)
                })
                .collect(),
            // A builtin's work counts two flops a slot, as a multiply-add.
            builtin_slots: unit
                .builtin_work
                .iter()
                .map(|(b, work)| (*b, work.value.0 / 2.0))
                .collect(),
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
            resident_level: crate::bounds::resident_level(w, hw),
            resident_fill: crate::bounds::resident_fill(w, hw, &[]),
            homes: crate::bounds::tensor_homes(w, hw, &[]),
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
        .fold(0.0, |a, (_, b)| a + b)
}

/// Bytes a cache moves at a time: data travels in whole lines.
pub const CACHE_LINE_BYTES: f64 = 64.0;

/// [`Op::tile_bytes`] counted in whole cache lines: each tensor's tile is
/// runs of contiguous elements (its innermost index, and the next ones out
/// while the tile spans them whole), and a run shorter than a line, or not
/// a multiple of one, still moves whole lines, plus one line for starting
/// the run's stream.
pub fn line_tile_bytes(
    w: &WorkloadModel,
    op: &Op,
    tile: &[u64],
    line_bytes: f64,
) -> Vec<(usize, f64)> {
    let restart = if line_bytes > 1.0 { line_bytes } else { 0.0 };
    line_tile_bytes_with(w, op, tile, line_bytes, restart)
}

/// Elements in one contiguous run of tensor `t`'s tile of `extents` (per
/// index): its innermost extent, times the next ones out while the tile
/// spans them whole.
fn contiguous_run(w: &WorkloadModel, t: usize, extents: &[u64]) -> u64 {
    let shape = &w.tensors[t].shape;
    let mut run = 1u64;
    for (d, e) in extents.iter().enumerate().rev() {
        run = run.saturating_mul((*e).max(1));
        if shape.get(d) != Some(e) {
            break;
        }
    }
    run
}

/// Bytes of tensor `t` the code reads in one stream before it jumps: the
/// innermost tile's contiguous run, continued through the following
/// innermost tiles when the innermost loop steps along the tensor's
/// innermost index (the same rows go on).
fn stream_bytes(w: &WorkloadModel, op: &Op, nest: &LoopNest, t: usize) -> f64 {
    let inner = nest.tiles.len() - 1;
    let tile = &nest.tiles[inner];
    let index: Vec<arch_sema::model::Affine> = if t == op.output {
        (0..op.output_rank)
            .map(arch_sema::model::Affine::var)
            .collect()
    } else {
        let mut found = None;
        collect_accesses(&op.body, &mut |x, index| {
            if x == t && found.is_none() {
                found = Some(index.to_vec());
            }
        });
        found.unwrap_or_default()
    };
    let extents: Vec<u64> = index.iter().map(|a| a.extent(tile)).collect();
    let mut run = contiguous_run(w, t, &extents) as f64;
    let innermost_var = index.last().and_then(|a| match a.terms.as_slice() {
        [(v, 1)] => Some(*v),
        _ => None,
    });
    if inner > 0 && innermost_var.is_some() && nest.order.last().copied() == innermost_var {
        let v = innermost_var.unwrap_or_default();
        run *= nest.trips(inner, v) as f64;
    }
    let element = w.tensors[t].dtype.bits() as f64 / 8.0 * w.tensors[t].stored_fraction();
    (run * element).max(element)
}

/// [`line_tile_bytes`] with `restart` bytes for starting each run.
fn line_tile_bytes_with(
    w: &WorkloadModel,
    op: &Op,
    tile: &[u64],
    line_bytes: f64,
    restart: f64,
) -> Vec<(usize, f64)> {
    let run_of = |t: usize, extents: &[u64]| contiguous_run(w, t, extents);
    let out_extents: Vec<u64> = tile[..op.output_rank].to_vec();
    let mut runs: Vec<(usize, u64)> = vec![(op.output, run_of(op.output, &out_extents))];
    collect_accesses(&op.body, &mut |t, index| {
        if !runs.iter().any(|(seen, _)| *seen == t) {
            let extents: Vec<u64> = index.iter().map(|a| a.extent(tile)).collect();
            runs.push((t, run_of(t, &extents)));
        }
    });
    op.tile_bytes(&w.tensors, tile)
        .into_iter()
        .map(|(t, bytes)| {
            let run = runs
                .iter()
                .find(|(x, _)| *x == t)
                .map_or(1, |(_, r)| *r)
                .max(1) as f64;
            let element = w.tensors[t].dtype.bits() as f64 / 8.0 * w.tensors[t].stored_fraction();
            let run_bytes = (run * element).min(bytes.max(element));
            // A run that starts a new stream also loses the transfer a
            // restart leaves idle (one line inside the caches; a level's
            // latency times its bandwidth where its latency is known).
            let line = line_bytes.max(1.0);
            let lines = (run_bytes / line).ceil() * line + restart;
            (t, bytes / run_bytes.max(1e-30) * lines.max(run_bytes))
        })
        .collect()
}

/// Bytes that cross the boundary into level `l` (`1 <= l < tiles.len()`):
/// every tensor's tile at `l` times its fills, with the output's partial
/// sums read back in on every visit after the first.
pub fn fill_bytes(w: &WorkloadModel, op: &Op, nest: &LoopNest, l: usize, line_bytes: f64) -> f64 {
    let restart = if line_bytes > 1.0 { line_bytes } else { 0.0 };
    fill_bytes_except(w, op, nest, l, (line_bytes, restart), &[])
}

/// [`fill_bytes`] without the tensors in `skip` (kept on chip by fusion).
fn fill_bytes_except(
    w: &WorkloadModel,
    op: &Op,
    nest: &LoopNest,
    l: usize,
    (line_bytes, restart): (f64, f64),
    skip: &[usize],
) -> f64 {
    let line_restart = if line_bytes > 1.0 { line_bytes } else { 0.0 };
    let tile_bytes = line_tile_bytes_with(w, op, &nest.tiles[l], line_bytes, line_restart);
    // Starting a stream costs more than a line where the level has a
    // latency: charged once per stream the code's access order starts.
    let extra = (restart - line_restart).max(0.0);
    let raw = op.tile_bytes(&w.tensors, &nest.tiles[l]);
    tile_bytes
        .iter()
        .filter(|(t, _)| !skip.contains(t))
        .map(|&(t, once)| {
            let traffic = moved_bytes(op, nest, l, t, once);
            if extra > 0.0 {
                // Streams are counted in the tensor's own bytes (not the
                // whole lines they round up to).
                let exact = raw.iter().find(|(x, _)| *x == t).map_or(0.0, |r| r.1);
                let streams = moved_bytes(op, nest, l, t, exact) / stream_bytes(w, op, nest, t);
                traffic + streams * extra
            } else {
                traffic
            }
        })
        // (a sum of nothing is -0.0)
        .fold(0.0, |a, b| a + b)
}

/// Bytes tensor `t` moves at level `l` when its tile there holds `once`.
fn moved_bytes(op: &Op, nest: &LoopNest, l: usize, t: usize, once: f64) -> f64 {
    let count = fills(op, nest, t, l);
    if t == op.output && count > 1.0 {
        let distinct: f64 = (0..op.output_rank)
            .map(|v| nest.tiles[0][v].div_ceil(nest.tiles[l][v].max(1)) as f64)
            .product();
        once * (2.0 * count - distinct)
    } else {
        once * count
    }
}

/// Strided vector code (a vector dimension other than the output's
/// contiguous one) with static register tiles is scalar code: LLVM
/// splits the strided vector into one scalar chain per lane (`vmovss`,
/// `vmulss`, `vaddss`; checked in the assembly of `y[i, o] = sum[j] h[i,
/// j] * w2[j, o]` vectorized along `i`). A reduction's chains, one per
/// element of the tile along the vector dimension, each wait for their
/// adds ([`scalarized_chains`]). Fitted on Zen 4 at 3x scalar speed until
/// an Intel VM measured that product (100 x 200 x 37, tiles of 4 rows,
/// one thread) at 158 us against 30 us predicted (BENCHMARKS.md, the
/// suite of 2026-12-02).
pub const STRIDED_STATIC_VS_SCALAR: f64 = 1.0;
/// The same when tile remainders make the register tiles masked.
pub const STRIDED_MASKED_VS_SCALAR: f64 = 1.0 / 3.0;

/// The share of scalar speed the scalar chains of a strided register
/// tile keep: a reduction's `w` chains (its tile along `v`, at most a
/// register's lanes) each wait [`REDUCTION_CHAIN_CYCLES`] for their add;
/// an op without a reduction keeps scalar speed.
fn scalarized_chains(op: &Op, nest: &LoopNest, p: &CpuParams, v: usize) -> f64 {
    if op.vars.len() == op.output_rank {
        return 1.0;
    }
    let register = p.register_lanes.unwrap_or(8).max(1);
    let chains = nest.tiles.last().map_or(1, |t| t[v].clamp(1, register)) as f64;
    (chains / REDUCTION_CHAIN_CYCLES).min(1.0)
}

/// Cycles a row chain waits per row for each of its reductions: four
/// vector accumulators combined and reduced across lanes, a chain of about
/// seven dependent operations of three to four cycles (measured: layernorm
/// and softmax over 1.5 M elements took 40-54 and 63-75 cycles more per row
/// as rows got shorter, two reductions each).
pub const CHAIN_REDUCTION_CYCLES: f64 = 28.0;

/// Independent accumulators that keep two FMA pipes busy at a four-cycle
/// latency (Zen 4 and recent Intel cores).
const FMA_CHAINS: f64 = 2.0 * REDUCTION_CHAIN_CYCLES;

/// Instructions a core keeps in flight (Zen 4's reorder buffer holds 320,
/// AMD's software optimization guide; Intel's Golden Cove 512).
const OUT_OF_ORDER_WINDOW: f64 = 320.0;

/// The share of its rate a register tile keeps once it needs more vector
/// registers than the loads leave it (measured with `bench/cost_truth.py`:
/// a 32 x 8 tile of a 512^3 product ran at 0.21 of the rate of a 16 x 8 one).
pub const SPILLED_TILE_RATE: f64 = 0.2;

/// The rate of the transform path's register tiles against the packed
/// kernel's at the same lane use: operands read where they lie, not from
/// packed panels (measured with `bench/cost_truth.py`: 16 x 8 tiles of a
/// 512^3 product ran 3.1-3.4 ms against the packed kernel's 2.5).
pub const TRANSFORM_TILE_RATE: f64 = 0.75;

/// Lane use of a contraction on the transform path whose vector dimension
/// `v` is strided, where its register tile runs whole vectors along another
/// dimension: the tile is `nr` along `v` by `TRANSFORM_TILE_ROWS` along the
/// innermost other output dimension of the order, and MLIR makes a vector
/// of its innermost dimension. When that is a contiguous output dimension
/// after `v`, the code is `nr` accumulators of that width: full lanes if
/// the width fills the vector unit's slot, as fast as the FMA latency lets
/// `nr` chains go, and slow once they spill. None where the tile runs its
/// vectors along `v` itself (strided loads; see the constants above).
fn strided_tile_use(op: &Op, nest: &LoopNest, p: &CpuParams, v: usize) -> Option<f64> {
    if op.vars.len() == op.output_rank {
        return None;
    }
    let (register, slot) = (p.register_lanes?.max(1), p.lanes?.max(1));
    let last = nest.tiles.len().checked_sub(1)?;
    let tile = |x: usize| nest.tiles[last][x].max(1);
    let nr = crate::kernel_shape::transform_tile_cols(register, tile(v));
    let m = nest
        .order
        .iter()
        .rev()
        .copied()
        .find(|&x| x < op.output_rank && x != v)?;
    let width = crate::kernel_shape::TRANSFORM_TILE_ROWS.min(tile(m));
    if m < v || width < 2 || !runs_along_memory(op, m) {
        return None;
    }
    let registers = (nr * width.div_ceil(register)) as f64;
    // The loads and broadcasts need about a quarter of the register file
    // (32 vector registers with AVX-512, 16 with AVX2).
    let free = if register >= 16 { 24.0 } else { 12.0 };
    let fill = width as f64 / (width.div_ceil(slot) * slot) as f64;
    // Consecutive register tiles overlap in the out-of-order window when
    // a tile's reduction loop is short: each step is the tile's FMAs plus a
    // load and a broadcast, and as many tiles as the window holds keep
    // their chains in flight together (measured: 4 x 64 x 16 tiles, four
    // 8-lane accumulators over 16 steps, ran 3.7-4.1 ms, near the full
    // rate's 3.3; over 64 steps, 4 x 16 x 64, 5.8 ms, half of it).
    let steps: u64 = (op.output_rank..op.vars.len()).map(tile).product();
    let per_tile = steps as f64 * (registers + 2.0);
    let in_flight = (OUT_OF_ORDER_WINDOW / per_tile).floor().max(1.0);
    let chains = (registers * in_flight / FMA_CHAINS).min(1.0);
    let spill = if registers > free {
        SPILLED_TILE_RATE
    } else {
        1.0
    };
    Some(TRANSFORM_TILE_RATE * fill * chains * spill)
}

/// Vectors of `lanes` that `extent` elements take when `tiles` (outermost
/// first) tile them: each whole tile and the remainder at every level in
/// whole vectors at the innermost.
fn tiled_vectors(extent: u64, tiles: &[u64], lanes: u64) -> u64 {
    match tiles.split_first() {
        None => extent.div_ceil(lanes.max(1)),
        Some((t, inner)) => {
            let t = (*t).clamp(1, extent.max(1));
            let rest = extent % t;
            extent / t * tiled_vectors(t, inner, lanes)
                + if rest > 0 {
                    tiled_vectors(rest, inner, lanes)
                } else {
                    0
                }
        }
    }
}

/// Whether the transform path's register tiles of `op` (vectorized along
/// its contiguous output dimension `v`) run masked, as the code generator
/// (`arch_mlir::schedule`) lays them out: `nr` (two registers, at most the
/// innermost tile) along `v` and, for reductions, `TRANSFORM_TILE_ROWS`
/// rows along the innermost other output dimension of the order. A partial
/// tile along `v` is split off into a loop of its own (the whole tiles
/// stay unmasked) when `v` is the innermost output loop and at least two
/// whole tiles precede it; a partial row tile masks every tile. Masks
/// matter to reductions only: LLVM keeps a masked accumulator in memory.
fn transform_tile_masked(op: &Op, nest: &LoopNest, p: &CpuParams, v: usize) -> bool {
    let rank = op.output_rank;
    // Element-wise ops keep nothing in registers across iterations: a
    // masked load or store costs about what a plain one does.
    if op.vars.len() == rank {
        return false;
    }
    let Some(last) = nest.tiles.len().checked_sub(1) else {
        return false;
    };
    let tile = |x: usize| nest.tiles[last][x].max(1);
    let register = p.register_lanes.unwrap_or(8).max(1);
    let nr = crate::kernel_shape::transform_tile_cols(register, tile(v));
    let extent = |x: usize| nest.tiled_extent(x, rank, p.cores, last);
    let partial = |e: Option<u64>, t: u64| t > 1 && e.is_none_or(|e| e % t != 0);
    let outputs: Vec<usize> = nest.order.iter().copied().filter(|x| *x < rank).collect();
    let innermost = outputs.last() == Some(&v);
    let vector_masked =
        partial(extent(v), nr) && !crate::kernel_shape::peels_vector_loop(extent(v), nr, innermost);
    let rows_masked = outputs.iter().rev().find(|x| **x != v).is_some_and(|&m| {
        let mr = crate::kernel_shape::TRANSFORM_TILE_ROWS.min(tile(m));
        partial(extent(m), mr)
    });
    vector_masked || rows_masked
}

/// Vector-unit operations one builtin costs in archc's code, counted in
/// the instructions it emits for f32 (arch_mlir's `fastmath`: exp is a
/// clamp, a rounding add, a two-part range reduction, a degree-6
/// polynomial, a shift into the exponent, a scale and the underflow
/// select, 13 vector operations and a register copy; sigmoid adds a
/// division, tanh a division, a short series and selects; erf a second
/// polynomial and a division). A division or square root occupies the divider for about
/// four FMA slots (AMD and Intel optimization manuals: latency/throughput
/// tables). `log` is a libm call per element (about 20 scalar operations).
/// The polynomial builtins are counted at what they measured on a Zen 4
/// core, which issues additions and multiplications on separate pipes:
/// `y = f(x)` over 64 x 4096 f32 (L2-resident, one thread) ran at 0.80
/// (exp), 0.71 (sigmoid), 0.70 (tanh) and 0.81 (erf) of the time their
/// instruction counts (14, 20, 28 and 38) predicted.
pub fn builtin_ops(f: arch_sema::model::Builtin) -> f64 {
    builtin_ops_with(f, &[])
}

/// [`builtin_ops`], except where `stated` gives the builtin's slots.
fn builtin_ops_with(f: arch_sema::model::Builtin, stated: Costs) -> f64 {
    if let Some((_, slots)) = stated.iter().find(|(b, _)| *b == f) {
        return *slots;
    }
    use arch_sema::model::Builtin;
    match f {
        Builtin::Exp => 11.0,
        Builtin::Sigmoid => 14.0,
        Builtin::Tanh => 20.0,
        Builtin::Erf => 31.0,
        Builtin::Log => 20.0,
        Builtin::Sqrt => 4.0,
        Builtin::Abs => 1.0,
        // NaN-propagating maximum and minimum: a compare and a blend more.
        Builtin::Max | Builtin::Min => 3.0,
    }
}

/// Slots per element of the builtins a machine states ([`CpuParams::builtin_slots`]).
pub type Costs<'a> = &'a [(arch_sema::model::Builtin, f64)];

/// Vector-unit instruction slots of `e` per evaluation, and those inside
/// reductions per point of the whole iteration space: `(outside, inside)`.
/// A reduction that appears several times (an operand that an expanded
/// `gelu` uses five times) is computed once; in a sum, factors that do not
/// depend on the reduced variables (`/ C`) apply once to the total.
fn expr_ops(e: &ScalarExpr, seen: &mut Vec<ScalarExpr>, costs: Costs) -> (f64, f64) {
    expr_ops_hoisting(e, seen, None, costs)
}

/// Whether `e` (no reduction inside) is the same at every value of `v`:
/// computed once outside a loop over `v`.
fn invariant_in(e: &ScalarExpr, v: usize) -> bool {
    let mut uses = has_index(e);
    collect_accesses(e, &mut |_, index| {
        uses |= index.iter().any(|a| a.terms.iter().any(|(x, _)| *x == v));
    });
    let mut reduces = false;
    crate::kernel_shape::the_reduction(e).inspect(|_| reduces = true);
    !uses && !reduces
}

/// [`expr_ops`]; with `hoist = (v, ops)`, element-wise subexpressions the
/// same at every `v` add their work to `ops` instead (once per loop over
/// `v`, where the compiler hoists them).
fn expr_ops_hoisting(
    e: &ScalarExpr,
    seen: &mut Vec<ScalarExpr>,
    mut hoist: Option<(usize, &mut f64)>,
    costs: Costs,
) -> (f64, f64) {
    // Arithmetic on constants only (`1 / sqrt(D)`) is folded by the compiler.
    let mut reads_data = false;
    collect_accesses(e, &mut |_, _| reads_data = true);
    if !reads_data && !has_index(e) {
        return (0.0, 0.0);
    }
    if let Some((v, hoisted)) = hoist.as_mut() {
        let leaf = matches!(e, ScalarExpr::Access { .. } | ScalarExpr::Const(_));
        if !leaf && invariant_in(e, *v) {
            let (o, i) = expr_ops(e, seen, costs);
            **hoisted += o + i;
            return (0.0, 0.0);
        }
    }
    let mut rec = |x: &ScalarExpr, seen: &mut Vec<ScalarExpr>| match hoist.as_mut() {
        Some((v, hoisted)) => expr_ops_hoisting(x, seen, Some((*v, &mut **hoisted)), costs),
        None => expr_ops(x, seen, costs),
    };
    match e {
        ScalarExpr::Neg(x) | ScalarExpr::Cast { value: x, .. } => {
            let (o, i) = rec(x, seen);
            return (o + 1.0, i);
        }
        ScalarExpr::Binary { op, lhs, rhs } => {
            let (lo, li) = rec(lhs, seen);
            let (ro, ri) = rec(rhs, seen);
            // A divisor the same along the loop is one reciprocal (hoisted)
            // and a multiply.
            let reciprocal = hoist.as_ref().is_some_and(|(v, _)| invariant_in(rhs, *v));
            let own = if *op == arch_syntax::ast::BinOp::Div && !reciprocal {
                4.0
            } else {
                1.0
            };
            return (lo + ro + own, li + ri);
        }
        ScalarExpr::Call { func, args } => {
            let mut total = (builtin_ops_with(*func, costs), 0.0);
            for a in args {
                let (o, i) = rec(a, seen);
                total = (total.0 + o, total.1 + i);
            }
            return total;
        }
        _ => {}
    }
    match e {
        ScalarExpr::Reduce { op, vars, body } => {
            if seen.contains(e) {
                return (0.0, 0.0);
            }
            seen.push(e.clone());
            // The body and one combining step run at every point; a sum of
            // products is one fused multiply-add.
            let (mut inner, mut outer) = (0.0, 0.0);
            let mut reading = 0;
            // The same split into factors the kernels make
            // (`kernel_shape::factors`): a sum's invariant ones move out.
            let (mut num, mut den) = (Vec::new(), Vec::new());
            if *op == arch_syntax::ast::ReduceOp::Sum {
                crate::kernel_shape::factors(body, &mut num, &mut den, false);
            } else {
                num.push(body.as_ref().clone());
            }
            let factors = num
                .iter()
                .map(|f| (f, false))
                .chain(den.iter().map(|f| (f, true)));
            for (f, divides) in factors {
                let (o, i) = expr_ops(f, seen, costs);
                let own = if divides { 4.0 } else { 1.0 };
                if crate::kernel_shape::uses_any(f, vars) {
                    reading += 1;
                    inner += o + i + own;
                } else {
                    outer += o + i + own;
                }
            }
            // n factors take n - 1 multiplications, the first is free.
            inner -= 1.0;
            // A maximum keeps NaN (`arith.maximumf`, LLVM's `fmaximum`): on
            // x86-64 with AVX-512 a compare, a NaN compare, a mask or and a
            // masked move per vector (read in the generated code), a chain
            // whose latency bounds it ([`MAXMIN_CHAIN_SLOTS`]).
            let combine = match op {
                arch_syntax::ast::ReduceOp::Max | arch_syntax::ast::ReduceOp::Min => {
                    MAXMIN_CHAIN_SLOTS
                }
                arch_syntax::ast::ReduceOp::Sum if reading == 2 => 0.0,
                _ => 1.0,
            };
            (outer, (inner + combine).max(0.0))
        }
        // Leaves (the arms above took the rest).
        _ => (0.0, 0.0),
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

/// The work of `op` in flops of the rate a cpu declares (which counts a
/// fused multiply-add as two): every instruction slot of the vector unit
/// as two, a contraction's multiply-add as one slot, each builtin as
/// [`builtin_ops`] slots. Element-wise work runs once per output element, a
/// reduction's body once per point.
pub fn op_flops(op: &Op, costs: Costs) -> f64 {
    op_flops_along(op, false, costs)
}

/// [`op_flops`] for code whose innermost loop runs along the op's last
/// variable (`along_last`): in an element-wise op, work that does not
/// change along it runs once per row (`x / sqrt(var[r] + eps)`: one square
/// root and reciprocal per row, a multiply per element).
pub fn op_flops_along(op: &Op, along_last: bool, costs: Costs) -> f64 {
    let all: f64 = op.vars.iter().map(|v| v.extent as f64).product();
    let outputs: f64 = op.vars[..op.output_rank]
        .iter()
        .map(|v| v.extent as f64)
        .product();
    let elementwise = op.output_rank == op.vars.len() && op.output_rank > 0;
    let mut hoisted = 0.0;
    let (outside, inside) = if along_last && elementwise {
        let last = op.vars.len() - 1;
        expr_ops_hoisting(&op.body, &mut Vec::new(), Some((last, &mut hoisted)), costs)
    } else {
        expr_ops(&op.body, &mut Vec::new(), costs)
    };
    let rows = if elementwise {
        outputs / (op.vars[op.vars.len() - 1].extent.max(1) as f64)
    } else {
        0.0
    };
    // A copy still moves each element through the vector unit once.
    2.0 * (outside * outputs + inside * all + hoisted * rows).max(outputs)
}

/// Vector-unit slots per point of a sum's factors that do not depend on
/// its reduced variables (`/ z[h, i]` in `sum[j] e[h, i, j] * v[h, j, d] /
/// z[h, i]`): the kernels apply them once to the total ([`expr_ops`]), but
/// the transform path's loop body computes the whole product at every
/// point (measured: such an attention output took 14.4 ms with the
/// division against 3.6 without).
fn invariant_factor_ops(op: &Op, costs: Costs) -> f64 {
    let Some(ScalarExpr::Reduce {
        op: arch_syntax::ast::ReduceOp::Sum,
        vars,
        body,
    }) = crate::kernel_shape::the_reduction(&op.body)
    else {
        return 0.0;
    };
    let (mut num, mut den) = (Vec::new(), Vec::new());
    crate::kernel_shape::factors(body, &mut num, &mut den, false);
    let per = |f: &ScalarExpr, own: f64| {
        if crate::kernel_shape::uses_any(f, vars) {
            0.0
        } else {
            let (o, i) = expr_ops(f, &mut Vec::new(), costs);
            o + i + own
        }
    };
    num.iter().map(|f| per(f, 1.0)).sum::<f64>() + den.iter().map(|f| per(f, 4.0)).sum::<f64>()
}

/// Slots per vector a maximum or minimum costs when it runs alone: its
/// accumulators' dependency chains (compare, mask or, masked move) set the
/// pace. Measured on a Zen 4 core: a row maximum over 192 x 1000 f32
/// (L2-resident) took 17.0 us, 2.6 cycles per 8-lane vector.
pub const MAXMIN_CHAIN_SLOTS: f64 = 5.0;

/// Slots per vector a maximum or minimum takes from the vector unit when
/// other reductions of the same loop fill the gaps of its chains: measured
/// on a Zen 4 core, a row's maximum and minimum in one loop over 192 x 1000
/// f32 took 21.7 us (1.65 cycles each per vector against 2.6 alone), and a
/// sum beside a maximum cost nothing more (16.8 us against 17.0).
pub const MAXMIN_THROUGHPUT_SLOTS: f64 = 3.0;

/// The points of `op` a maximum or minimum reduction combines (0 if its
/// reduction is a sum or it has none).
fn maxmin_points(op: &Op) -> f64 {
    match crate::kernel_shape::the_reduction(&op.body) {
        Some(ScalarExpr::Reduce {
            op: arch_syntax::ast::ReduceOp::Max | arch_syntax::ast::ReduceOp::Min,
            ..
        }) => op.vars.iter().map(|v| v.extent as f64).product(),
        _ => 0.0,
    }
}

/// Cycles between dependent floating-point adds (AMD's Zen 4 software
/// optimization guide: FADD latency 3, FMA 4; Intel's cores are similar).
pub const REDUCTION_CHAIN_CYCLES: f64 = 4.0;

/// Whether archc's code generator runs `op` vectorized along `v` as one of
/// its kernels (packed contraction, row reduction) rather than through the
/// transform path: a contraction of two tensors vectorized along the
/// output's innermost variable, or a reduction along rows vectorized along
/// its innermost reduced variable.
pub fn takes_kernel(w: &WorkloadModel, op: &Op, v: usize) -> bool {
    let contraction = crate::kernel_shape::packed_contraction(w, op)
        .or_else(|| crate::kernel_shape::skinny_contraction(w, op));
    if contraction.is_some_and(|c| c.groups.cols.last() == Some(&v)) {
        return true;
    }
    if crate::kernel_shape::window_op(w, op).is_some_and(|win| win.q == v) {
        return true;
    }
    is_row_reduction(op) && v + 1 == op.vars.len() && runs_along_memory(op, v)
}

/// Whether every tensor of `op` that uses variable `v` (the output by its
/// first `output_rank` variables) has it alone as its innermost index.
pub fn runs_along_memory(op: &Op, v: usize) -> bool {
    let output_ok = v >= op.output_rank || v + 1 == op.output_rank;
    let mut ok = output_ok;
    collect_accesses(&op.body, &mut |_, index| {
        let uses = |a: &arch_sema::model::Affine| a.terms.iter().any(|(x, _)| *x == v);
        if let Some(at) = index.iter().position(uses) {
            let last = at + 1 == index.len();
            let plain = matches!(index[at].terms.as_slice(), [(x, 1)] if *x == v);
            ok &= last && plain && index.iter().filter(|a| uses(a)).count() == 1;
        }
    });
    ok
}

/// Whether `op` is a reduction along its innermost data that archc's
/// row-reduction kernel takes: its reduced variables are its last ones;
/// every read that uses them is indexed by the output's variables then the
/// reduced ones (`x[i, j]` for `s[i] = sum[j] ...`), or by the reduced ones
/// alone (`g[j]`); every other read by output variables only.
pub fn is_row_reduction(op: &Op) -> bool {
    let reduced: Vec<usize> = (op.output_rank..op.vars.len()).collect();
    if reduced.is_empty() || op.output_rank == 0 {
        return false;
    }
    let all: Vec<usize> = (0..op.vars.len()).collect();
    let mut ok = true;
    collect_accesses(&op.body, &mut |_, index| {
        let vars: Option<Vec<usize>> = index
            .iter()
            .map(|a| match a.terms.as_slice() {
                [(v, 1)] if a.offset == 0 => Some(*v),
                _ => None,
            })
            .collect();
        let Some(vars) = vars else {
            ok = false;
            return;
        };
        if vars.iter().any(|v| reduced.contains(v)) {
            ok &= vars == all || vars == reduced;
        } else {
            ok &= vars.iter().all(|v| *v < op.output_rank);
        }
    });
    ok
}

/// How an op runs inside a fused kernel ([`crate::fusion`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Fused {
    /// The op is a stage of a row chain: vector loops along its rows with
    /// a scalar remainder (never masked), one row at a time.
    pub in_chain: bool,
    /// The chain's parallel region is already open (every stage but the first).
    pub region_open: bool,
    /// A later stage of the chain reads what this one computes for the
    /// row, so it waits for it.
    pub read_later: bool,
    /// The threads the chain runs on: its first stage's, whatever a later
    /// stage's own nest says (the chain is one kernel).
    pub threads: Option<u64>,
    /// Tensors it finds in L1 or registers (nothing moves through the
    /// levels outside them).
    pub on_chip: Vec<usize>,
    /// Other row reductions run in the same loop over each row
    /// ([`crate::fusion::RowChain::loop_leads`]): a maximum's chains no
    /// longer set its pace alone; the loop's latency floor is charged once
    /// for all of them ([`loop_floor_s`]).
    pub shares_loop: bool,
    /// It runs in the loop of the stage before it.
    pub joins: bool,
}

/// The ops of a schedule grouped by the loop they run in, as index ranges
/// over `fused` (schedule order): each op with those after it that join
/// its loop ([`Fused::joins`]); most ranges hold one op.
pub fn loops(fused: &[Fused]) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut a = 0;
    while a < fused.len() {
        let mut b = a + 1;
        while b < fused.len() && fused[b].joins {
            b += 1;
        }
        out.push(a..b);
        a = b;
    }
    out
}

/// The time `op` would take in a loop of its own (its maximum's chains
/// setting the pace): the floor under a loop it shares with other
/// reductions of the row ([`Fused::shares_loop`]).
pub fn loop_floor_s(
    w: &WorkloadModel,
    op: &Op,
    p: &CpuParams,
    nest: &LoopNest,
    fused: &Fused,
) -> f64 {
    let alone = Fused {
        shares_loop: false,
        ..fused.clone()
    };
    evaluate_fused(w, op, p, nest, &alone).compute_cycles / p.clock_hz
}

/// Predicts one compute op under a loop nest.
pub fn evaluate(w: &WorkloadModel, op: &Op, p: &CpuParams, nest: &LoopNest) -> Predicted {
    evaluate_fused(w, op, p, nest, &Fused::default())
}

/// Spreads a block of `block` elements over a group's variables `vars`
/// in `tile`, innermost first, each at most its extent in `full`.
fn spread(full: &[u64], tile: &mut [u64], vars: &[usize], block: u64) {
    let mut left = block.max(1);
    for &v in vars.iter().rev() {
        let t = left.min(full[v]).max(1);
        tile[v] = t;
        left = left.div_ceil(t);
    }
}

/// The loop nest the packed kernel runs for a contraction `c` under `nest` (arch_mlir's
/// `gemm`): BLIS's blocks from the schedule (`nc` the l3 tile of the
/// columns, `kc` and `mc` the l2 tiles of the depth and the rows), rounded
/// to the register tile and kept within one thread's span as the code
/// generator does; the columns outermost, then the depth, then the rows;
/// at l1 one panel of `nr` columns (two vector registers wide) across an
/// `mc x kc` block of `a`. The schedule's l1 tiles and loop order do not
/// reach the kernel, so they do not reach its cost. A group of several
/// variables (a convolution's output pixels) takes a block innermost
/// variable first. None where the nest has fewer than four levels.
pub fn packed_nest(
    nest: &LoopNest,
    c: &crate::kernel_shape::Contraction,
    p: &CpuParams,
) -> Option<PackedNest> {
    if nest.tiles.len() < 4 {
        return None;
    }
    let full = &nest.tiles[0];
    let g = &c.groups;
    let extent = |vars: &[usize]| -> u64 { vars.iter().map(|&v| full[v]).product::<u64>().max(1) };
    let at = |l: usize, vars: &[usize]| -> u64 {
        vars.iter()
            .map(|&v| nest.tiles[l][v])
            .product::<u64>()
            .max(1)
    };
    let round_up = |x: u64, to: u64| x.div_ceil(to).max(1) * to;
    let mr = crate::kernel_shape::PACKED_KERNEL_ROWS;
    let nr = p.packed_panel_cols();
    let threads = nest.threads(p.cores);
    let split = ThreadSplit::of(g, &nest.parallel);
    let (rows, cols, depth) = (extent(&g.rows), extent(&g.cols), extent(&g.depth));
    let batches = extent(&g.batch);
    let (span_rows, span_cols) = match split {
        ThreadSplit::Cols => (rows, cols.div_ceil(nr * threads).max(1) * nr),
        ThreadSplit::Rows => (rows.div_ceil(mr * threads).max(1) * mr, cols),
        ThreadSplit::Batch => (rows, cols),
    };
    // Products each busy thread runs one after the other.
    let span_batches = match split {
        ThreadSplit::Batch => batches.div_ceil(threads),
        _ => batches,
    };
    let nc = round_up(at(1, &g.cols), nr).min(round_up(span_cols, nr));
    let kc = at(2, &g.depth).clamp(1, depth);
    let mc = round_up(at(2, &g.rows), mr).min(round_up(span_rows, mr));
    let level = |rows_block: u64, cols_block: u64| {
        let mut tile = full.clone();
        for &v in &g.batch {
            tile[v] = 1;
        }
        spread(full, &mut tile, &g.rows, rows_block);
        spread(full, &mut tile, &g.cols, cols_block);
        spread(full, &mut tile, &g.depth, kc);
        tile
    };
    let mut tiles = vec![full.clone(), level(rows, nc), level(mc, nc)];
    while tiles.len() < nest.tiles.len() {
        tiles.push(level(mc, nr));
    }
    let order = g
        .batch
        .iter()
        .chain(&g.cols)
        .chain(&g.depth)
        .chain(&g.rows)
        .copied()
        .collect();
    let busy = match split {
        ThreadSplit::Cols => cols.div_ceil(span_cols),
        ThreadSplit::Rows => rows.div_ceil(span_rows),
        ThreadSplit::Batch => batches.div_ceil(span_batches),
    }
    .clamp(1, threads);
    // The busiest thread's whole register tiles (or products) against the
    // average's.
    let imbalance = match split {
        ThreadSplit::Cols => (span_cols * busy) as f64 / round_up(cols, nr) as f64,
        ThreadSplit::Rows => (span_rows * busy) as f64 / round_up(rows, mr) as f64,
        ThreadSplit::Batch => (span_batches * busy) as f64 / batches as f64,
    }
    .max(1.0);
    Some(PackedNest {
        imbalance,
        nest: LoopNest {
            tiles,
            order,
            parallel: nest.parallel.clone(),
            vector: nest.vector,
        },
        busy,
        b_share: match split {
            ThreadSplit::Cols => span_cols.min(cols) as f64 / cols as f64,
            ThreadSplit::Rows => 1.0,
            ThreadSplit::Batch => span_batches as f64 / batches as f64,
        },
        a_elements_per_thread: (span_batches
            * span_rows.min(rows)
            * depth
            * span_cols.min(cols).div_ceil(nc)) as f64,
    })
}

/// The loop nest the skinny kernel runs for a one-row contraction `c`
/// (arch_mlir's `skinny`, blocks as [`crate::kernel_shape::SkinnyPlan`]
/// says): every tensor once through the outer levels; at l1, blocks of
/// the columns inside blocks of the depth, so that the output row is read
/// and written once per depth block; its threads split the blocks. None
/// where the nest has fewer than two levels.
pub fn skinny_nest(
    nest: &LoopNest,
    c: &crate::kernel_shape::Contraction,
    p: &CpuParams,
) -> Option<PackedNest> {
    if nest.tiles.len() < 2 {
        return None;
    }
    let full = &nest.tiles[0];
    let g = &c.groups;
    let plan = crate::kernel_shape::SkinnyPlan::of(
        c,
        p.register_lanes.unwrap_or(8),
        nest.threads(p.cores),
    );
    let mut inner = full.clone();
    for &v in &g.batch {
        inner[v] = 1;
    }
    spread(
        full,
        &mut inner,
        &g.cols,
        (plan.per_block * plan.lanes).min(plan.cols),
    );
    spread(full, &mut inner, &g.depth, plan.depth_block);
    let mut tiles = vec![full.clone(); nest.tiles.len() - 1];
    tiles.push(inner);
    let order = g
        .batch
        .iter()
        .chain(&g.depth)
        .chain(&g.cols)
        .chain(&g.rows)
        .copied()
        .collect();
    Some(PackedNest {
        nest: LoopNest {
            tiles,
            order,
            parallel: nest.parallel.clone(),
            vector: nest.vector,
        },
        busy: plan.threads,
        imbalance: plan.imbalance(),
        b_share: 1.0,
        a_elements_per_thread: 0.0,
    })
}

/// The loop nest the window kernel runs (arch_mlir's `window`): a row of
/// the output at a time, the whole window for each block of the row;
/// every tensor once through the outer levels, at l1 the rows of the
/// window each output row reads. Its threads split the rows.
pub fn window_nest(
    nest: &LoopNest,
    win: &crate::kernel_shape::Window,
    p: &CpuParams,
) -> Option<PackedNest> {
    if nest.tiles.len() < 2 {
        return None;
    }
    let full = &nest.tiles[0];
    let mut inner = full.clone();
    for t in inner.iter_mut().take(win.q) {
        *t = 1;
    }
    let mut tiles = vec![full.clone(); nest.tiles.len() - 1];
    tiles.push(inner);
    let threads = nest.threads(p.cores).clamp(1, win.rows.max(1));
    let busiest = win.rows.div_ceil(threads);
    Some(PackedNest {
        nest: LoopNest {
            tiles,
            order: (0..full.len()).collect(),
            parallel: nest.parallel.clone(),
            vector: nest.vector,
        },
        busy: threads,
        imbalance: busiest as f64 * threads as f64 / win.rows.max(1) as f64,
        b_share: 1.0,
        a_elements_per_thread: 0.0,
    })
}

/// The window kernel's time over its FMAs' (one vector load per FMA, at
/// an offset of any element): measured 1.57-1.93 (median 1.7) with 64-byte
/// vectors on Zen 4 (depthwise 3 x 3 at 7 x 7 to 112 x 112, 32 to 512
/// channels, 1 and 2 threads), where nearly every load straddles two
/// lines. Narrower vectors straddle fewer (32 bytes: 7 of 16 offsets); the
/// excess is scaled by that share (an estimate: not measured).
pub fn window_load_factor(vector_bytes: u64) -> f64 {
    let straddle = |bytes: u64| (bytes.saturating_sub(4)) as f64 / CACHE_LINE_BYTES;
    1.0 + (WINDOW_LOAD_EXCESS * straddle(vector_bytes) / straddle(64)).max(0.0)
}

/// The window kernel's excess over its FMAs with 64-byte vectors (see
/// [`window_load_factor`]).
pub const WINDOW_LOAD_EXCESS: f64 = 0.7;

/// The packed kernel's own loop nest ([`packed_nest`]) and how its threads
/// share the work.
pub struct PackedNest {
    pub nest: LoopNest,
    /// Threads with rows (or columns) to compute: a product shorter than
    /// the threads' register tiles leaves some idle.
    pub busy: u64,
    /// The busiest thread's work over the average busy thread's: each
    /// takes whole register tiles of a span rounded up to them (64 rows on
    /// two threads: 36 and 28, six blocks of six rows against five).
    pub imbalance: f64,
    /// The share of `b` each busy thread packs: all of it when threads
    /// split the rows, its columns or its products otherwise.
    pub b_share: f64,
    /// Elements of `a` each busy thread packs (one at a time) per call: its
    /// rows, once per block of `nc` columns of its span. Threads that split
    /// the columns each pack all the rows.
    pub a_elements_per_thread: f64,
}

/// [`evaluate`] for an op that runs as `fused` says.
pub fn evaluate_fused(
    w: &WorkloadModel,
    op: &Op,
    p: &CpuParams,
    nest: &LoopNest,
    fused: &Fused,
) -> Predicted {
    // A unit that skips the zeros of a pruned weight does part of the work.
    // The row-reduction kernel adds, per row, the combination of its
    // accumulators' lanes, its remainder loop and the rest of the op: about
    // eight instruction slots.
    let outputs: f64 = op.vars[..op.output_rank]
        .iter()
        .map(|v| v.extent as f64)
        .product();
    // The schedule's parallel tiles say how many threads run the op (the
    // kernels included: their own blocks do not change it).
    let threads = fused.threads.unwrap_or_else(|| nest.threads(p.cores));
    // The packed kernel runs its own loop nest, not the schedule's.
    let packed = match (nest.vector, crate::kernel_shape::packed_contraction(w, op)) {
        (Some(v), Some(c)) if c.groups.cols.last() == Some(&v) => Some(c),
        _ => None,
    };
    // A one-row product runs the skinny kernel, its own loop nest too.
    let skinny = match (nest.vector, crate::kernel_shape::skinny_contraction(w, op)) {
        (Some(v), Some(c)) if c.groups.cols.last() == Some(&v) => Some(c),
        _ => None,
    };
    // So does a sliding window along the output's rows.
    let window = crate::kernel_shape::window_op(w, op)
        .filter(|win| packed.is_none() && skinny.is_none() && nest.vector == Some(win.q));
    let kernel = match (&packed, &skinny, &window) {
        (Some(c), _, _) => packed_nest(nest, c, p),
        (None, Some(c), _) => skinny_nest(nest, c, p),
        (None, None, Some(win)) => window_nest(nest, win, p),
        (None, None, None) => None,
    };
    let kernel_nest = kernel.as_ref().map(|k| &k.nest);
    let nest = kernel_nest.unwrap_or(nest);
    let row_kernel = nest
        .vector
        .is_some_and(|v| v >= op.output_rank && (fused.in_chain || takes_kernel(w, op, v)));
    let along_last = fused.in_chain || nest.vector == Some(op.vars.len() - 1);
    // Elements of a group of the op's variables (its full extents).
    let extent = |vars: &[usize]| -> u64 {
        vars.iter()
            .map(|&x| op.vars[x].extent)
            .product::<u64>()
            .max(1)
    };
    // The packed kernel computes whole register tiles: a product of two
    // rows does six rows' work, and a thread's last columns fill a whole
    // panel of two vector registers.
    // The skinny kernel computes whole vectors of columns.
    let padded = |n: u64, tile: u64| (n.div_ceil(tile) * tile) as f64 / n as f64;
    let padding = match (&packed, &skinny) {
        (Some(c), _) => {
            padded(
                extent(&c.groups.rows),
                crate::kernel_shape::PACKED_KERNEL_ROWS,
            ) * padded(extent(&c.groups.cols), p.packed_panel_cols())
        }
        (None, Some(c)) => padded(extent(&c.groups.cols), p.register_lanes.unwrap_or(8)),
        (None, None) => window
            .as_ref()
            .map_or(1.0, |win| padded(win.row, p.register_lanes.unwrap_or(8))),
    };
    let all_points: f64 = op.vars.iter().map(|v| v.extent as f64).product();
    let flops = op_flops_along(op, along_last, &p.builtin_slots) * p.work_fraction * padding
        + if row_kernel { 16.0 * outputs } else { 0.0 }
        + if packed.is_none() && skinny.is_none() && window.is_none() && !row_kernel {
            2.0 * invariant_factor_ops(op, &p.builtin_slots) * all_points
        } else {
            0.0
        };
    // A row kernel's maximum takes the vector unit for its throughput; its
    // chains' latency is a floor under the loop it runs in: its own, or
    // one it shares ([`loop_floor_s`]).
    let chain_flops = flops;
    let flops = if row_kernel {
        flops
            - 2.0
                * (MAXMIN_CHAIN_SLOTS - MAXMIN_THROUGHPUT_SLOTS)
                * maxmin_points(op)
                * p.work_fraction
    } else {
        flops
    };
    // The packed kernel copies its operands into panels first: all of B
    // once per thread that uses all of it (per batch) unless it reads B in
    // place, A once per block of `nc` columns (the l3 tile of the
    // columns); each panel is written to and read back through L2.
    let b_copies = kernel
        .as_ref()
        .map_or(1.0, |k| k.b_share * k.busy as f64)
        .max(1.0);
    let packing_bytes = match &packed {
        Some(c) => {
            let (m, n, k) = (
                extent(&c.groups.rows) as f64,
                extent(&c.groups.cols) as f64,
                extent(&c.groups.depth) as f64,
            );
            let batches = extent(&c.groups.batch) as f64;
            let level = 1.min(nest.tiles.len() - 1);
            let nc: f64 = c
                .groups
                .cols
                .iter()
                .map(|&x| nest.tiles[level][x] as f64)
                .product::<f64>()
                .max(1.0);
            let element = |t: usize| w.tensors[t].dtype.bits() as f64 / 8.0;
            let b_packed = if crate::kernel_shape::reads_b_in_place(c) {
                0.0
            } else {
                k * n * element(c.b.tensor)
            };
            2.0 * batches * (b_packed * b_copies + m * k * element(c.a.tensor) * (n / nc).ceil())
        }
        None => 0.0,
    };
    let packing_level = p.levels.len().saturating_sub(2);
    let cores_used = kernel.as_ref().map_or(threads, |k| k.busy) as f64;
    // The peak needs full vector registers: the vector dimension's innermost
    // tile fills ceil(t / lanes) registers, and lanes left over idle; scalar
    // code uses one lane.
    // Lanes run along memory only when the vector dimension is the output's
    // innermost (contiguous) index. Another dimension gives archc's
    // transform-dialect path strided register tiles, which LLVM makes
    // scalar code (STRIDED_STATIC_VS_SCALAR, `scalarized_chains`) when
    // every tile divides its parent (static shapes), and about a third of
    // scalar code when remainders make every tile masked
    // (`bench/cost_truth.py --seed 2`, BENCHMARKS.md "Cost-model truth").
    // Lanes along a variable load whole vectors only where every tensor
    // that uses it has it innermost (a reduction along rows included:
    // archc's row-reduction kernel runs its lanes there).
    // The transform path vectorizes only parallel dimensions: lanes along
    // a reduced variable are scalar code unless a kernel takes the op.
    let in_kernel = |v: usize| takes_kernel(w, op, v) || (fused.in_chain && v + 1 == op.vars.len());
    let contiguous = |v: usize| in_kernel(v) || (runs_along_memory(op, v) && v < op.output_rank);
    // Scalar code whose innermost loop is a reduction waits for each add
    // before the next: one step per FP-add latency instead of one per cycle.
    // A vector dimension whose innermost tile is one element gives the
    // transform path vectors of one lane: scalar code.
    let vector = nest.vector.filter(|&v| {
        packed.is_some()
            || skinny.is_some()
            || window.is_some()
            || in_kernel(v)
            || nest.tiles.last().is_some_and(|t| t[v] > 1)
    });
    let chained = vector.is_none() && nest.order.last().is_some_and(|v| *v >= op.output_rank);
    let lane_use = match (p.lanes, vector) {
        // Contiguous lanes on the transform path (no kernel) whose register
        // tiles run masked: as slow as
        // strided masked code (measured: a column sum over 1000 columns
        // in tiles of 16 ran about 12x below its vector rate).
        (Some(lanes), Some(v))
            if contiguous(v) && !in_kernel(v) && transform_tile_masked(op, nest, p, v) =>
        {
            STRIDED_MASKED_VS_SCALAR / lanes as f64
        }
        (Some(lanes), Some(v)) if !contiguous(v) => {
            if transform_tile_masked(op, nest, p, v) {
                STRIDED_MASKED_VS_SCALAR / lanes as f64
            } else if let Some(u) = strided_tile_use(op, nest, p, v) {
                u
            } else {
                STRIDED_STATIC_VS_SCALAR * scalarized_chains(op, nest, p, v) / lanes as f64
            }
        }
        // Whole register tiles (their padding is in `flops`).
        (Some(_), Some(_)) if packed.is_some() || skinny.is_some() || window.is_some() => 1.0,
        // The row kernels (a row reduction's, a row chain's stages) run
        // whole registers along each row and its last elements one at a
        // time: a row of 56 is three registers of 16 and eight scalar
        // steps (measured: softmax's stages over rows of 56 took 1.6-2x the
        // time of seven full vectors).
        (Some(lanes), Some(v)) if in_kernel(v) && v + 1 == op.vars.len() => {
            let row = op.vars[v].extent.max(1);
            let register = p.register_lanes.unwrap_or(lanes).max(lanes);
            let slots = row / register * register.div_ceil(lanes) + row % register;
            row as f64 / (slots * lanes) as f64
        }
        // Lanes the vector dimension fills over its whole extent: every
        // innermost tile, remainders included, takes whole vectors.
        (Some(lanes), Some(v)) => {
            let tiles: Vec<u64> = nest.tiles.iter().map(|t| t[v]).collect();
            let extent = tiles[0].max(1);
            extent as f64 / (tiled_vectors(extent, &tiles[1..], lanes) * lanes) as f64
        }
        (Some(lanes), None) => 1.0 / lanes as f64,
        (None, _) => 1.0,
    } / if chained { REDUCTION_CHAIN_CYCLES } else { 1.0 };
    // The packed kernel's threads finish when its busiest one does.
    let rate = p.flops_per_cycle_per_core * cores_used * p.clock_hz * lane_use
        / kernel.as_ref().map_or(1.0, |k| k.imbalance);
    let compute_s = if fused.shares_loop {
        flops
    } else {
        chain_flops
    } / rate;
    // The window kernel's loads start wherever the window is: most of
    // them straddle two cache lines ([`window_load_factor`]).
    let compute_s = compute_s
        * window.as_ref().map_or(1.0, |_| {
            window_load_factor(p.register_lanes.unwrap_or(8) * 4)
        });
    // Elements of `b` the packed kernel copies one at a time (a transposed
    // `b`, a window's panels that straddle two output rows) take
    // PACK_ELEMENT_CYCLES each, each thread its share; so does every
    // element of `a` it packs (six rows' elements at a time, each from its
    // own row), per thread.
    let compute_s = compute_s
        + kernel.as_ref().map_or(0.0, |k| {
            k.a_elements_per_thread * PACK_ELEMENT_CYCLES / p.clock_hz
        })
        + packed.as_ref().map_or(0.0, |c| {
            let elements =
                (extent(&c.groups.batch) * extent(&c.groups.depth) * extent(&c.groups.cols)) as f64;
            crate::kernel_shape::scalar_packed_share(c, p.packed_panel_cols())
                * elements
                * PACK_ELEMENT_CYCLES
                * kernel.as_ref().map_or(1.0, |k| k.b_share)
                / p.clock_hz
        });
    // A reduction in a row chain hands its row's value to a later stage of
    // the same row, which waits for the horizontal reduction's latency once
    // per row (independent rows of a lone row reduction hide it, and so do
    // reductions of a chain that no later stage reads: a row's sum and
    // maximum side by side, 200 x 1000, measured 22 us for both against
    // 23 us for the maximum alone).
    let compute_s = compute_s
        + if row_kernel && fused.in_chain && fused.read_later {
            outputs * CHAIN_REDUCTION_CYCLES / (cores_used * p.clock_hz)
        } else {
            0.0
        };
    // Where each tensor comes from: the workload's resident level, or a
    // cache that still holds an intermediate when it is read.
    let home = |t: usize| p.homes.get(t).copied().unwrap_or(p.resident_level);
    let touched: Vec<(usize, f64)> = op
        .tile_bytes(&w.tensors, &nest.tiles[0])
        .into_iter()
        .filter(|(t, _)| !fused.on_chip.contains(t))
        .collect();
    let nearest_home = touched
        .iter()
        .map(|(t, _)| home(*t))
        .min()
        .unwrap_or(p.resident_level);
    let mut traffic = Vec::new();
    for (l, (name, bw, e)) in p.levels.iter().enumerate() {
        // Traffic across the boundary above level l (level 0: to and from
        // DRAM, counted as the fills of level 1's tiles).
        let bytes = if l < nearest_home {
            // The data stays in a level inside this one between calls.
            0.0
        } else if l + 1 < nest.tiles.len() {
            // Tensors that live inside this level do not cross it.
            let skip: Vec<usize> = fused
                .on_chip
                .iter()
                .copied()
                .chain(touched.iter().map(|(t, _)| *t).filter(|&t| home(t) > l))
                .collect();
            let restart = p.restart_bytes.get(l).copied().unwrap_or(p.line_bytes);
            // A row chain walks its rows in order: one stream per thread.
            // The packed kernel reads its panels from contiguous buffers
            // and packs them with strides the prefetchers follow.
            let restart = if fused.in_chain || kernel_nest.is_some() {
                p.line_bytes
            } else {
                restart
            };
            fill_bytes_except(w, op, nest, l + 1, (p.line_bytes, restart), &skip)
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
        // Caches serve each core separately: only the cores the op runs on
        // bring their share of a cache level's bandwidth.
        let bw = if l == 0 {
            *bw
        } else {
            *bw * cores_used / p.cores.max(1) as f64
        };
        // A level the chip shares serves each core at most its
        // `core_bandwidth`.
        let bw = bw.min(p.core_stream(l) * cores_used);
        // The outermost cache, where the workload lives, serves it more
        // slowly the fuller it is.
        let bw = if l == 1 && l == p.resident_level {
            bw * shared_cache_rate(p.resident_fill)
        } else {
            bw
        };
        let bytes = bytes
            + if l == packing_level {
                packing_bytes
            } else {
                0.0
            };
        traffic.push((name.clone(), bytes, bw, *e));
    }
    // Compulsory bytes come from where each tensor lives, at the whole
    // chip's bandwidth there.
    let mut at_home = vec![0.0; p.levels.len()];
    for (t, bytes) in &touched {
        if let Some(b) = at_home.get_mut(home(*t)) {
            *b += bytes;
        }
    }
    let memory_s = at_home
        .iter()
        .zip(&p.levels)
        .enumerate()
        .filter(|(_, (b, _))| **b > 0.0)
        .map(|(i, (b, l))| b / l.1.min(p.core_stream(i) * p.cores as f64))
        .fold(0.0, f64::max);
    // Packing B is a phase of its own: the micro-kernel waits for it.
    // Every busy thread packs its share of B at once, each at its part of
    // the cores' rate together (see BENCHMARKS.md "Rows or columns on two
    // threads").
    let compute_s = compute_s
        + match &packed {
            Some(c) if !crate::kernel_shape::reads_b_in_place(c) => {
                let elements =
                    extent(&c.groups.batch) * extent(&c.groups.depth) * extent(&c.groups.cols);
                let bytes = elements as f64 * w.tensors[c.b.tensor].dtype.bits() as f64 / 8.0;
                let share = kernel.as_ref().map_or(1.0, |k| k.b_share);
                bytes * share * cores_used / pack_read_rate(p, home(c.b.tensor), cores_used)
            }
            _ => 0.0,
        };
    let peak_s = flops / (p.flops_per_cycle_per_core * p.cores as f64 * p.clock_hz);
    let mut predicted = Roofline {
        clock_hz: p.clock_hz,
        compute_s,
        compute_energy_j: flops * p.energy_per_flop_j,
        lower_bound_s: peak_s.max(memory_s),
    }
    .finish(traffic);
    // Starting and joining the threads of a parallel region (not part of
    // the speed of light: one core needs none).
    if cores_used > 1.0 && !fused.region_open {
        predicted.latency_s += kernel
            .as_ref()
            .map_or(PARALLEL_REGION_S, |_| PACKED_REGION_S);
        predicted.cycles = (predicted.latency_s * p.clock_hz).ceil();
        predicted.utilization = predicted.lower_bound_s / predicted.latency_s;
    }
    predicted
}

/// Cycles the packed kernel spends on each element of `b` it copies one
/// at a time (a scalar load, its index arithmetic and a store), beyond what
/// vector copies cost: measured, a 7x7 convolution of stride 2 (3 -> 64
/// channels, 112 x 112 output; 1.84 M elements of `b`) packed element by
/// element ran 0.47 ms longer than the same of stride 1 packed with vector
/// loads, 0.66 cycles per element at 2.6 GHz.
pub const PACK_ELEMENT_CYCLES: f64 = 0.66;

/// Seconds an OpenMP parallel region adds (fork and join with the worker
/// threads still spinning): measured here, a 64 x 64 scaling took 1.32 us on
/// two threads and 0.37 us on one (`archc run --threads 1|2`, median of 200).
pub const PARALLEL_REGION_S: f64 = 1.0e-6;

/// Seconds the packed kernel's parallel region adds on two threads: its
/// threads also start on data the other core last touched. Measured on a
/// Zen 4 VM on a 100 x 200 x 37 product (`archc run --threads 2`, median
/// of 200): one thread 25.4 us, columns split 15.8 us, against 12.7 us of
/// perfect halving.
pub const PACKED_REGION_S: f64 = 3.0e-6;

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
            core_bandwidth: Vec::new(),
            work_fraction: 1.0,
            lanes: None,
            register_lanes: None,
            resident_level: 0,
            resident_fill: 0.0,
            homes: Vec::new(),
            // Element-granular traffic: these tests count reuse by hand.
            line_bytes: 1.0,
            restart_bytes: vec![0.0, 0.0],
            builtin_slots: Vec::new(),
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
        // 128 flops at 2 flop/cycle = 64 cycles, times 4: scalar code with
        // the reduction innermost waits for each add (REDUCTION_CHAIN_CYCLES);
        // DRAM 256 B at 1 GB/s = 256 ns.
        assert_eq!(p.compute_cycles, 64.0 * REDUCTION_CHAIN_CYCLES);
        // 256 ns of compute and 256 ns of DRAM: either bounds it.
        assert!(["dram", "compute"].contains(&p.bottleneck.as_str()));
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
        // 128 flops at 2 flop/cycle: 64 cycles with every lane busy. Four
        // rows take the skinny kernel (vectors along j), which computes
        // whole vectors of columns: 4 columns fill half of an 8-lane
        // register, 128 cycles; scalar code uses one lane of 8, each add of
        // the innermost reduction waiting for the last: 512 x 4. With
        // 4-lane registers every lane is busy: 64.
        m.register_lanes = Some(8);
        assert_eq!(evaluate(&w, &op, &m, &nest(Some(1))).compute_cycles, 128.0);
        assert_eq!(
            evaluate(&w, &op, &m, &nest(None)).compute_cycles,
            512.0 * REDUCTION_CHAIN_CYCLES
        );
        m.lanes = Some(4);
        m.register_lanes = Some(4);
        assert_eq!(evaluate(&w, &op, &m, &nest(Some(1))).compute_cycles, 64.0);
    }

    #[test]
    fn strided_vector_dimensions_cost_by_whether_tiles_divide() {
        let (w, op) = gemm4();
        let mut m = machine();
        m.lanes = Some(8);
        // Vectorizing i (not the output's contiguous j): 128 flops at 2
        // flop/cycle, scalar code when the tiles divide (one of 8 lanes),
        // its two chains (the tile of 2 along i, k innermost) each waiting
        // four cycles per add: 64 / (1/8 x 2/4) cycles; a third of scalar
        // (8 x 64 x 3) when they do not.
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
        assert_eq!(cycles(&even), 64.0 * 8.0 * 2.0);
        assert_eq!(cycles(&ragged), 64.0 * 8.0 * 3.0);
    }

    #[test]
    fn traffic_moves_whole_cache_lines() {
        let (w, op) = gemm4();
        let mut m = machine();
        m.line_bytes = 64.0;
        m.restart_bytes = vec![64.0, 64.0];
        // l1 tiles 2 x 2 x 4: a's tile is two whole rows of 4 floats, one
        // contiguous run of 32 B; rows of b and c are 2 floats (8 B); each
        // run moves one 64 B line. a: 1 run x 2 fills, b: 4 rows x 4 fills,
        // c: 2 rows x 4 tiles written once; starting each run's stream
        // costs one line more.
        let nest = LoopNest {
            tiles: vec![vec![4, 4, 4], vec![2, 2, 4]],
            order: vec![0, 1, 2],
            parallel: vec![],
            vector: None,
        };
        let p = evaluate(&w, &op, &m, &nest);
        assert_eq!(
            p.levels[0].bytes,
            2.0 * 64.0 * (2.0 + 4.0 * 4.0 + 2.0 * 4.0)
        );
        // Rows of 16 floats (wider than the 4 x 4 tensors: each row its own
        // run) move their bytes and one line per row (4 rows each); a's
        // tile is all of a, one contiguous run of 16 floats: one line and
        // one more for its stream.
        assert_eq!(
            line_tile_bytes(&w, &op, &[4, 16, 4], 64.0),
            op.tile_bytes(&w.tensors, &[4, 16, 4])
                .into_iter()
                .map(|(t, b)| (t, if t == 0 { 64.0 + 64.0 } else { b + 4.0 * 64.0 }))
                .collect::<Vec<_>>()
        );
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
        // Scalar code with the reduction innermost: 4 cycles per add.
        let chain = REDUCTION_CHAIN_CYCLES;
        assert_eq!(evaluate(&w, &op, &m, &serial).compute_cycles, 64.0 * chain);
        assert_eq!(evaluate(&w, &op, &m, &split).compute_cycles, 32.0 * chain);
    }
}
