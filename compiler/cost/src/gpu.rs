//! The gpu model: a roofline over HBM, L2 and shared memory against the
//! tensor/SIMT throughput, with occupancy and wave quantization, and the
//! swizzle/L2 model.
//!
//! A contraction runs as a grid of `BM x BN` output tiles (thread blocks),
//! each looping over K in steps of `BK` through shared memory. As many
//! blocks run at once as shared memory allows on every SM (a wave). The
//! order in which block ids become tiles (the swizzle) decides how many
//! distinct A row-panels and B column-panels a wave touches; on a chip with
//! several L2s (MI300X: one per XCD, blocks dealt round-robin) each L2 sees
//! only its own blocks. Each panel a wave touches in an L2 is read from HBM
//! once for that wave; every block reads its panels from L2.

use crate::gemm::GemmView;
use crate::report::{Predicted, Roofline};
use arch_sema::hardware::HardwareModel;

/// Launch orders of output tiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Swizzle {
    RowMajor,
    /// Triton's GROUP_SIZE_M: `m` tile rows are walked column by column.
    Grouped(u64),
    /// Block ids remapped so that consecutive ids land on one XCD
    /// (`pid' = (pid % X) * ceil(G / X) + pid / X`), then grouped by 8.
    Xcd(u64),
}

impl Swizzle {
    pub fn describe(self) -> String {
        match self {
            Swizzle::RowMajor => "row_major".into(),
            Swizzle::Grouped(m) => format!("grouped(m: {m})"),
            Swizzle::Xcd(g) => format!("xcd(groups: {g})"),
        }
    }
}

/// The output tile `(row, column)` that block `pid` computes.
pub fn tile_of(pid: u64, tiles_m: u64, tiles_n: u64, swizzle: Swizzle) -> (u64, u64) {
    let grouped = |pid: u64, g: u64| {
        let g = g.max(1);
        let width = g * tiles_n;
        let first_m = (pid / width) * g;
        let size = (tiles_m - first_m).min(g).max(1);
        (first_m + (pid % width) % size, (pid % width) / size)
    };
    match swizzle {
        Swizzle::RowMajor => (pid / tiles_n, pid % tiles_n),
        Swizzle::Grouped(g) => grouped(pid, g),
        Swizzle::Xcd(x) => grouped(
            xcd_remap(pid, tiles_m.saturating_mul(tiles_n), x),
            XCD_GROUP,
        ),
    }
}

/// Tile rows each group of the XCD swizzle spans (after the remap).
pub const XCD_GROUP: u64 = 8;

/// Block id `pid` of `total`, dealt round-robin to `x` L2 domains, as the
/// position it takes when each domain's ids are made consecutive: domain
/// `d = pid % x` holds `total / x` ids, one more for the first `total % x`
/// domains; its `pid / x`-th id goes after the domains before it. A
/// permutation of `0..total` for any `total` and `x`.
pub fn xcd_remap(pid: u64, total: u64, x: u64) -> u64 {
    let x = x.max(1);
    let (q, r) = (total / x, total % x);
    let (d, local) = (pid % x, pid / x);
    if d < r {
        d * (q + 1) + local
    } else {
        r * (q + 1) + (d - r) * q + local
    }
}

/// A gpu in base units.
#[derive(Debug, Clone, PartialEq)]
pub struct GpuParams {
    pub sms: u64,
    pub clock_hz: f64,
    pub flops_per_cycle_per_sm: f64,
    pub energy_per_flop_j: f64,
    /// `(name, chip-wide bandwidth B/s, energy J/B)` of HBM, L2, shared memory.
    pub hbm: (String, f64, f64),
    pub l2: (String, f64, f64),
    pub smem: (String, f64, f64),
    pub smem_bytes_per_sm: f64,
    /// L2 domains blocks are dealt to round-robin (XCDs); 1 for one L2.
    pub l2_domains: u64,
    /// The N:M pattern the compute unit skips zeros of.
    pub sparse: Option<(u32, u32)>,
    /// Registers one thread of the op's kernel uses, as the assembler
    /// reported them (`ptxas -v`, after `archc build`); `None`: the
    /// estimate of [`blocks_per_sm`].
    pub registers_per_thread: Option<u64>,
    /// Whether the op's kernel multiplies on tensor cores (a contraction
    /// of 16-bit or narrower operands, in fragments of 16 x 16 x (256 /
    /// bits), a warp per 64 x 64 outputs); see [`GpuOp::new`].
    pub tensor_cores: bool,
}

impl GpuParams {
    pub fn from_hardware(hw: &HardwareModel, dtype: arch_sema::dtype::DType) -> Option<GpuParams> {
        let (unit, rate) = hw.compute_rate(dtype)?;
        let hbm = hw.levels.first()?;
        let smem = hw.levels.last()?;
        let l2 = hw
            .level("l2")
            .or_else(|| hw.levels.get(hw.levels.len().saturating_sub(2)))?;
        Some(GpuParams {
            sms: hw.cores,
            clock_hz: hw.clock_hz?.0,
            flops_per_cycle_per_sm: hw.for_one_core(rate),
            energy_per_flop_j: unit.energy_j_per_op.map_or(0.0, |e| e.value.0),
            hbm: hw.level_costs(hbm),
            l2: hw.level_costs(l2),
            smem: hw.level_costs(smem),
            smem_bytes_per_sm: smem.size_bytes.map_or(0.0, |s| hw.for_one_core(s)),
            l2_domains: if hw.dispatch.as_deref() == Some("linear") {
                1
            } else {
                hw.xcds.unwrap_or(1)
            },
            sparse: unit.sparse,
            registers_per_thread: None,
            tensor_cores: dtype.bits() <= 16,
        })
    }
}

/// A block tile `BM x BN` stepping `BK` through K.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockTile {
    pub bm: u64,
    pub bn: u64,
    pub bk: u64,
}

/// Waves simulated one by one at most; past that, an even sample of the
/// full waves stands for all of them (the launch order repeats with a
/// period of a few rows of tiles, so the sample's mean is the mean), which
/// keeps one evaluation bounded whatever the grid.
const SIMULATED_WAVES: u64 = 16;

/// Distinct A and B panels the blocks of each wave touch in each L2,
/// summed over waves: `(a_panels, b_panels)`. A search asks for the same
/// grid many times (tilings that differ only in depth), so answers are
/// remembered per thread.
pub fn panel_loads(
    tiles_m: u64,
    tiles_n: u64,
    wave: u64,
    domains: u64,
    swizzle: Swizzle,
) -> (u64, u64) {
    type Key = (u64, u64, u64, u64, Swizzle);
    thread_local! {
        static SEEN: std::cell::RefCell<std::collections::HashMap<Key, (u64, u64)>> =
            Default::default();
    }
    let key = (tiles_m, tiles_n, wave, domains, swizzle);
    if let Some(hit) = SEEN.with(|m| m.borrow().get(&key).copied()) {
        return hit;
    }
    let loads = simulate_panel_loads(tiles_m, tiles_n, wave, domains, swizzle);
    SEEN.with(|m| {
        let mut m = m.borrow_mut();
        if m.len() >= 4096 {
            m.clear();
        }
        m.insert(key, loads);
    });
    loads
}

fn simulate_panel_loads(
    tiles_m: u64,
    tiles_n: u64,
    wave: u64,
    domains: u64,
    swizzle: Swizzle,
) -> (u64, u64) {
    let total = tiles_m.saturating_mul(tiles_n);
    let wave = wave.max(1);
    let domains = domains.max(1);
    // One wave's blocks `[start, end)`: the panels each L2 domain loads
    // (block `pid` runs on domain `pid % domains`).
    let one_wave = |start: u64, end: u64| {
        let mut rows: Vec<(u64, u64)> = Vec::with_capacity((end - start) as usize);
        let mut cols = rows.clone();
        for pid in start..end {
            let (tm, tn) = tile_of(pid, tiles_m, tiles_n, swizzle);
            rows.push((pid % domains, tm));
            cols.push((pid % domains, tn));
        }
        let distinct = |mut v: Vec<(u64, u64)>| {
            v.sort_unstable();
            v.dedup();
            v.len() as u64
        };
        (distinct(rows), distinct(cols))
    };
    let full = total / wave;
    let (mut a, mut b) = if full <= SIMULATED_WAVES {
        (0..full).fold((0, 0), |(a, b), w| {
            let (x, y) = one_wave(w * wave, (w + 1) * wave);
            (a + x, b + y)
        })
    } else {
        let (mut sa, mut sb) = (0u64, 0u64);
        for i in 0..SIMULATED_WAVES {
            let w = (i as u128 * (full - 1) as u128 / (SIMULATED_WAVES - 1) as u128) as u64;
            let (x, y) = one_wave(w * wave, (w + 1) * wave);
            sa += x;
            sb += y;
        }
        let scale = |s: u64| (s as f64 / SIMULATED_WAVES as f64 * full as f64).round() as u64;
        (scale(sa), scale(sb))
    };
    if !total.is_multiple_of(wave) {
        let (x, y) = one_wave(full * wave, total);
        a = a.saturating_add(x);
        b = b.saturating_add(y);
    }
    (a, b)
}

/// Predicts a contraction on a gpu.
pub fn evaluate(
    g: &GemmView,
    in_bytes: f64,
    out_bytes: f64,
    p: &GpuParams,
    t: BlockTile,
    swizzle: Swizzle,
) -> Predicted {
    let tiles_m = g.m.div_ceil(t.bm);
    let tiles_n = g.n.div_ceil(t.bn);
    let blocks = tiles_m.saturating_mul(tiles_n);
    // Occupancy: A and B slices in shared memory, registers, threads.
    let per_sm = blocks_per_sm(g, t, p, in_bytes);
    let wave = p.sms * per_sm;
    // A wave takes as long as the busiest SM needs for its blocks; the last
    // wave may be partial. Sparse tensor cores skip the zeros of a weight
    // pruned to their pattern. Contractions in tensor-core types (16 bits
    // or fewer) compute in fragments of 16 x 16 x (256 / bits) (mma/wgmma shapes): a block
    // tile that is not a multiple pays for the padding.
    let work = crate::sparsity::gemm_work_fraction(g, p.sparse);
    let padded = |x: u64, step: u64| x.div_ceil(step) * step;
    let block_flops = if p.tensor_cores && g.b.is_some() {
        let k_step = (32.0 / in_bytes) as u64;
        let steps = g.k.div_ceil(t.bk.max(1)) as f64;
        2.0 * (padded(t.bm, 16) * padded(t.bn, 16)) as f64
            * steps
            * padded(t.bk.max(1), k_step) as f64
            * work
    } else {
        2.0 * t.bm as f64 * t.bn as f64 * g.k as f64 * work
    };
    let full_waves = blocks / wave;
    let rest = blocks % wave;
    let blocks_on_busiest = full_waves * per_sm + rest.div_ceil(p.sms);
    let compute_s = blocks_on_busiest as f64 * block_flops / p.flops_per_cycle_per_sm / p.clock_hz;
    // A staged contraction waits at two barriers per depth slice; the
    // blocks an SM holds at once hide each other's waits (added to the
    // latency after the roofline: it is neither work nor traffic).
    let barriers_s = if g.b.is_some() {
        let held = held_bytes(in_bytes);
        let depth = slice_depth(t.bm, t.bn, t.bk, g.k, held, p.tensor_cores);
        let slices = g.k.div_ceil(depth) as f64;
        let per_slice = if slice_buffers(t.bm, t.bn, depth, held) == 2 {
            1.0
        } else {
            2.0
        };
        blocks_on_busiest as f64 / per_sm as f64 * slices * per_slice * BARRIER_CYCLES / p.clock_hz
    } else {
        0.0
    };
    let (a_panels, b_panels) = panel_loads(tiles_m, tiles_n, wave, p.l2_domains, swizzle);
    let c_bytes = g.m as f64 * g.n as f64 * out_bytes;
    // B is stored compressed when it is sparse.
    let (a_row, b_col) = (in_bytes, in_bytes * g.b_stored);
    let panel_bytes = |a: f64, b: f64| (a * a_row + b * b_col) * g.k as f64;
    let hbm_bytes =
        panel_bytes(a_panels as f64 * t.bm as f64, b_panels as f64 * t.bn as f64) + c_bytes;
    let l2_bytes = blocks as f64 * panel_bytes(t.bm as f64, t.bn as f64) + c_bytes;
    let smem_bytes = blocks as f64 * panel_bytes(t.bm as f64, t.bn as f64);
    let flops = 2.0 * g.macs() * work;
    let peak_s = flops / (p.flops_per_cycle_per_sm * p.sms as f64 * p.clock_hz);
    let compulsory = g.m as f64 * g.k as f64 * a_row + g.k as f64 * g.n as f64 * b_col + c_bytes;
    let mut predicted = Roofline {
        clock_hz: p.clock_hz,
        compute_s,
        compute_energy_j: flops * p.energy_per_flop_j,
        lower_bound_s: peak_s.max(compulsory / p.hbm.1),
    }
    .finish(
        [
            (&p.hbm, hbm_bytes),
            (&p.l2, l2_bytes),
            (&p.smem, smem_bytes),
        ]
        .map(|((n, bw, e), bytes)| (n.clone(), bytes, *bw, *e)),
    );
    if barriers_s > 0.0 {
        predicted.latency_s += barriers_s;
        predicted.cycles = (predicted.latency_s * p.clock_hz).ceil();
        predicted.utilization = predicted.lower_bound_s / predicted.latency_s;
    }
    predicted
}

/// The block tile of an op's loop nest: its innermost (shared-memory) tile
/// seen as a GEMM.
pub fn block_tile(g: &GemmView, nest: &crate::cpu::LoopNest) -> BlockTile {
    let inner = nest.tiles.last().cloned().unwrap_or_default();
    let prod = |vars: &[usize]| {
        vars.iter()
            .map(|v| inner.get(*v).copied().unwrap_or(1))
            .product::<u64>()
            .max(1)
    };
    BlockTile {
        bm: prod(&g.m_vars),
        bn: prod(&g.n_vars),
        bk: prod(&g.k_vars),
    }
}

/// Threads of one block computing tile `t`: each thread owns 8 x 8
/// outputs on FMA units, a warp 64 x 64 (128 per thread) on tensor cores;
/// whole warps, at least one, at most 1024 (both vendors' limit).
pub fn block_threads_for(t: BlockTile, tensor_cores: bool) -> u64 {
    let per_thread = if tensor_cores { 128 } else { 64 };
    let threads = t.bm.saturating_mul(t.bn).div_ceil(per_thread);
    threads.div_ceil(32).clamp(1, 32).saturating_mul(32)
}

/// One op of a workload on a gpu, with what its predictions need worked out
/// once: its GEMM view, the parameters for its input type, element sizes.
pub struct GpuOp {
    pub g: GemmView,
    pub params: GpuParams,
    in_bytes: f64,
    out_bytes: f64,
}

impl GpuOp {
    pub fn new(
        w: &arch_sema::model::WorkloadModel,
        hw: &HardwareModel,
        op: &arch_sema::model::Op,
    ) -> Option<GpuOp> {
        let g = crate::gemm::gemm_view(w, op);
        let in_dtype =
            g.a.map_or(w.tensors[op.output].dtype, |t| w.tensors[t].dtype);
        // archc's kernels multiply two f16 or two bf16 operands on tensor
        // cores on NVIDIA chips (`arch_mlir::gpu::Mma`); on AMD chips
        // (`gfx*`), or with one f16 and one bf16 operand, they compute in
        // f32 on FMA units, at the f32 rate.
        use arch_sema::dtype::DType;
        let half = matches!(in_dtype, DType::F16 | DType::BF16) && g.b.is_some();
        let same = g.b.map(|b| w.tensors[b].dtype) == Some(in_dtype);
        let amd = hw.chip.as_deref().is_some_and(|c| c.starts_with("gfx"));
        let on_fma = half && (amd || !same);
        // `from_hardware` derives `tensor_cores` from the type it prices.
        let params = GpuParams::from_hardware(hw, if on_fma { DType::F32 } else { in_dtype })?;
        Some(GpuOp {
            params,
            in_bytes: in_dtype.bits() as f64 / 8.0,
            out_bytes: w.tensors[op.output].dtype.bits() as f64 / 8.0,
            g,
        })
    }

    /// Threads of one block computing tile `t`: each thread owns 8 x 8
    /// outputs on FMA units, a warp 64 x 64 (128 per thread) on tensor cores
    /// (types of 16 bits or fewer with a B operand); whole warps, at least one.
    pub fn block_threads(&self, t: BlockTile) -> u64 {
        block_threads_for(t, self.params.tensor_cores && self.g.b.is_some())
    }

    /// The block tile of `nest` and the prediction under `swizzle`.
    pub fn predict(&self, nest: &crate::cpu::LoopNest, swizzle: Swizzle) -> (BlockTile, Predicted) {
        let tile = block_tile(&self.g, nest);
        let predicted = evaluate(
            &self.g,
            self.in_bytes,
            self.out_bytes,
            &self.params,
            tile,
            swizzle,
        );
        (tile, predicted)
    }
}

/// The depth of the slices a staged contraction moves through shared
/// memory (`arch_mlir::gpu`): the tile's, at least 8 (fewer rows per
/// slice pay a barrier pair for too little work), at most the depth.
pub fn staged_depth(bk: u64, k: u64) -> u64 {
    bk.max(MIN_STAGED_DEPTH).min(k.max(1))
}

/// Static shared memory a kernel may declare on both vendors (CUDA C++
/// Programming Guide: 48 KB without a dynamic opt-in; the same on AMD's
/// 64 KB LDS is left for the compiler).
pub const STATIC_SHARED_BYTES: u64 = 48 * 1024;

/// The depth of a staged contraction's slices for a `bm x bn` tile whose
/// slices hold elements of `held` bytes: [`staged_depth`], shallower
/// where one slice of both operands would not fit the static shared
/// memory; on tensor cores (`mma`) whole steps of [`MMA_DEPTH`], at least
/// one.
pub fn slice_depth(bm: u64, bn: u64, bk: u64, k: u64, held: u64, mma: bool) -> u64 {
    let depth = staged_depth(bk, k)
        .min(STATIC_SHARED_BYTES / (bm.saturating_add(bn).saturating_mul(held)).max(1))
        .max(1);
    if mma {
        (depth / MMA_DEPTH).max(1) * MMA_DEPTH
    } else {
        depth
    }
}

/// The depth of one tensor-core step of the generated kernels (PTX's
/// `mma.sync` m16n8k16 for f16 and bf16).
pub const MMA_DEPTH: u64 = 16;

/// Slices of a staged contraction in shared memory at once: two where two
/// fit the static shared memory (the block loads the next slice while it
/// multiplies the current one, one barrier per slice), else one (loads,
/// a barrier, the products, a barrier).
pub fn slice_buffers(bm: u64, bn: u64, depth: u64, held: u64) -> u64 {
    let slice = bm
        .saturating_add(bn)
        .saturating_mul(depth)
        .saturating_mul(held);
    if slice.saturating_mul(2) <= STATIC_SHARED_BYTES {
        2
    } else {
        1
    }
}

/// The shallowest slice a staged contraction takes.
pub const MIN_STAGED_DEPTH: u64 = 8;

/// Cycles a barrier holds a block (an estimate: a few tens of cycles on
/// current GPUs, not measured here).
pub const BARRIER_CYCLES: f64 = 40.0;

/// Threads one SM (CU) keeps resident: 2048 on H100 and A100 (CUDA C++
/// Programming Guide, compute capabilities 8.0 and 9.0) and on MI300X (32
/// wavefronts of 64 per CU: an estimate from the CDNA 3 ISA's 8 waves per
/// SIMD).
pub const THREADS_PER_SM: u64 = 2048;
/// 32-bit registers of one SM: 64 Ki on H100 and A100 (CUDA C++
/// Programming Guide); taken for MI300X too (an estimate: its CUs hold
/// more).
pub const REGISTERS_PER_SM: u64 = 65536;

/// Bytes of one element of a staged contraction's slices: f64 for f64
/// operands, else f32 (the accumulator's type).
pub fn held_bytes(in_bytes: f64) -> u64 {
    if in_bytes > 4.0 {
        8
    } else {
        4
    }
}

/// Occupancy of the code `arch_mlir::gpu` generates: blocks resident on
/// one SM, limited by shared memory (a contraction's A and B slices,
/// [`slice_buffers`] of them, held in f32, or f64 for f64 operands;
/// [`held_bytes`]), by threads
/// ([`block_threads_for`]: the kernels run on FMA units) and by
/// registers: what the assembler reported for the built kernel
/// ([`GpuParams::registers_per_thread`]) or else an estimate (a
/// contraction's thread: one per accumulator plus 64 for the operands it
/// reads, addresses and loop state, which is what ptxas reports for the
/// 8 x 8 tiles of `examples/gemm.arch`, 128; other kernels: 32), 16 at
/// most.
fn blocks_per_sm(g: &GemmView, t: BlockTile, p: &GpuParams, in_bytes: f64) -> u64 {
    let held = held_bytes(in_bytes);
    let by_smem = if g.b.is_some() {
        let depth = slice_depth(t.bm, t.bn, t.bk, g.k, held, p.tensor_cores);
        let slice = (t.bm as f64 + t.bn as f64 * g.b_stored) * depth as f64;
        let buffers = slice_buffers(t.bm, t.bn, depth, held) as f64;
        (p.smem_bytes_per_sm / (slice * held as f64 * buffers).max(1.0)).floor() as u64
    } else {
        u64::MAX
    };
    let threads = block_threads_for(t, p.tensor_cores && g.b.is_some());
    let per_thread_outputs = t.bm.saturating_mul(t.bn).div_ceil(threads).max(1);
    let registers = p.registers_per_thread.unwrap_or(if g.b.is_some() {
        per_thread_outputs + 64
    } else {
        32
    });
    let by_threads = THREADS_PER_SM / threads.max(1);
    let by_registers = REGISTERS_PER_SM / registers.saturating_mul(threads).max(1);
    by_smem.min(by_threads).min(by_registers).clamp(1, 16)
}

/// The fraction of L2 reads that hit, under the panel model.
pub fn l2_hit_rate(
    g: &GemmView,
    t: BlockTile,
    p: &GpuParams,
    in_bytes: f64,
    swizzle: Swizzle,
) -> f64 {
    let tiles_m = g.m.div_ceil(t.bm);
    let tiles_n = g.n.div_ceil(t.bn);
    let per_sm = blocks_per_sm(g, t, p, in_bytes);
    let (a, b) = panel_loads(tiles_m, tiles_n, p.sms * per_sm, p.l2_domains, swizzle);
    let misses = a as f64 * t.bm as f64 + b as f64 * t.bn as f64;
    let requests = tiles_m as f64 * tiles_n as f64 * (t.bm as f64 + t.bn as f64);
    1.0 - misses / requests
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tensor-core slices are whole 16-deep steps, as the kernels take
    /// them: the model's occupancy and barrier count see the same depth.
    #[test]
    fn tensor_core_slices_are_whole_steps() {
        for (bk, plain, mma) in [(8, 8, 16), (24, 24, 16), (40, 40, 32), (64, 64, 64)] {
            assert_eq!(slice_depth(64, 64, bk, 1024, 4, false), plain, "{bk}");
            assert_eq!(slice_depth(64, 64, bk, 1024, 4, true), mma, "{bk}");
        }
        // A tile too wide for even one 16-deep slice still gets one step.
        assert_eq!(slice_depth(512, 512, 32, 1024, 4, true), 16);
    }

    #[test]
    fn swizzles_by_hand() {
        // 4 x 4 tiles. Row major walks a row.
        assert_eq!(tile_of(5, 4, 4, Swizzle::RowMajor), (1, 1));
        // Grouped by 2: ids 0..3 cover rows 0-1 of columns 0-1.
        let first: Vec<_> = (0..4)
            .map(|p| tile_of(p, 4, 4, Swizzle::Grouped(2)))
            .collect();
        assert_eq!(first, vec![(0, 0), (1, 0), (0, 1), (1, 1)]);
        // The XCD remap is a permutation, whatever the count.
        for (total, x) in [(16, 2), (10, 4), (7, 8), (1, 8), (30, 8)] {
            let mut ids: Vec<u64> = (0..total).map(|p| xcd_remap(p, total, x)).collect();
            ids.sort_unstable();
            assert_eq!(ids, (0..total).collect::<Vec<_>>(), "{total} over {x}");
        }
        for (tm, tn) in [(5, 3), (2, 5), (9, 9)] {
            let mut seen: Vec<_> = (0..tm * tn)
                .map(|p| tile_of(p, tm, tn, Swizzle::Xcd(4)))
                .collect();
            seen.sort_unstable();
            seen.dedup();
            assert_eq!(seen.len() as u64, tm * tn, "{tm} x {tn}");
        }
        // Every tile is computed exactly once.
        for s in [
            Swizzle::RowMajor,
            Swizzle::Grouped(2),
            Swizzle::Grouped(3),
            Swizzle::Xcd(2),
        ] {
            let mut seen: Vec<_> = (0..16).map(|p| tile_of(p, 4, 4, s)).collect();
            seen.sort_unstable();
            seen.dedup();
            assert_eq!(seen.len(), 16, "{s:?}");
        }
    }

    #[test]
    fn panels_per_wave_by_hand() {
        // 4 x 4 tiles, waves of 4 blocks, one L2.
        // Row major: each wave is one tile row: 1 A panel + 4 B panels; 4 waves.
        assert_eq!(panel_loads(4, 4, 4, 1, Swizzle::RowMajor), (4, 16));
        // Grouped by 2: each wave is a 2 x 2 square: 2 + 2 panels.
        assert_eq!(panel_loads(4, 4, 4, 1, Swizzle::Grouped(2)), (8, 8));
        // Two L2s dealt round-robin split a row-major wave: ids 0, 2 and 1, 3
        // each need the row's A panel and two B panels.
        assert_eq!(panel_loads(4, 4, 4, 2, Swizzle::RowMajor), (8, 16));
    }

    /// Eight SMs of 1024 flop/cycle at 1 GHz, 64 KiB of shared memory each.
    fn small_gpu() -> GpuParams {
        GpuParams {
            sms: 8,
            clock_hz: 1e9,
            flops_per_cycle_per_sm: 1024.0,
            energy_per_flop_j: 0.0,
            hbm: ("hbm".into(), 1e12, 0.0),
            l2: ("l2".into(), 4e12, 0.0),
            smem: ("smem".into(), 1e14, 0.0),
            smem_bytes_per_sm: 64.0 * 1024.0,
            l2_domains: 1,
            sparse: None,
            registers_per_thread: None,
            tensor_cores: false,
        }
    }

    #[test]
    fn grouping_cuts_hbm_traffic() {
        let g = GemmView {
            m: 4096,
            n: 4096,
            k: 4096,
            ..GemmView::default()
        };
        let p = small_gpu();
        let t = BlockTile {
            bm: 128,
            bn: 128,
            bk: 32,
        };
        let row = evaluate(&g, 2.0, 4.0, &p, t, Swizzle::RowMajor);
        let grouped = evaluate(&g, 2.0, 4.0, &p, t, Swizzle::Grouped(4));
        assert!(grouped.levels[0].bytes < row.levels[0].bytes);
        assert!(
            l2_hit_rate(&g, t, &p, 2.0, Swizzle::Grouped(4))
                > l2_hit_rate(&g, t, &p, 2.0, Swizzle::RowMajor)
        );
        assert!(row.latency_s >= row.lower_bound_s);
        // 4096^3 at 8 SMs * 1024 flop/cycle * 1 GHz: 16.8 ms of compute at best.
        assert!((row.lower_bound_s - 2.0 * 4096f64.powi(3) / 8.192e12).abs() < 1e-9);
    }

    /// Registers the assembler reports replace the estimate: a kernel
    /// whose threads use 255 registers keeps one block of 256 threads per
    /// SM instead of two, and waits at its barriers without another block
    /// to hide them.
    #[test]
    fn reported_registers_set_the_occupancy() {
        let g = GemmView {
            m: 2048,
            n: 2048,
            k: 2048,
            a: Some(0),
            b: Some(1),
            b_stored: 1.0,
            ..GemmView::default()
        };
        let mut p = small_gpu();
        let t = BlockTile {
            bm: 128,
            bn: 128,
            bk: 32,
        };
        assert_eq!(blocks_per_sm(&g, t, &p, 4.0), 2);
        let estimated = evaluate(&g, 4.0, 4.0, &p, t, Swizzle::RowMajor);
        p.registers_per_thread = Some(255);
        assert_eq!(blocks_per_sm(&g, t, &p, 4.0), 1);
        let reported = evaluate(&g, 4.0, 4.0, &p, t, Swizzle::RowMajor);
        assert!(reported.latency_s > estimated.latency_s);
        p.registers_per_thread = Some(32);
        assert_eq!(
            blocks_per_sm(&g, t, &p, 4.0),
            2,
            "shared memory still limits"
        );
    }

    #[test]
    fn sparse_tensor_cores_halve_the_work_of_a_2_4_weight() {
        let mut g = GemmView {
            m: 4096,
            n: 4096,
            k: 4096,
            ..GemmView::default()
        };
        let mut p = GpuParams {
            energy_per_flop_j: 1e-12,
            hbm: ("hbm".into(), 1e15, 0.0),
            l2: ("l2".into(), 1e15, 0.0),
            smem: ("smem".into(), 1e15, 0.0),
            sparse: Some((2, 4)),
            tensor_cores: true,
            ..small_gpu()
        };
        let t = BlockTile {
            bm: 128,
            bn: 128,
            bk: 32,
        };
        let dense = evaluate(&g, 2.0, 4.0, &p, t, Swizzle::RowMajor);
        // B pruned to 2:4 and stored with 2 index bits per kept bf16 value:
        // 0.5 * (1 + 2 / 16) = 0.5625 of its dense bytes.
        g.b_sparsity = Some(arch_sema::model::NmSparsity {
            n: 2,
            m: 4,
            axis: 0,
        });
        g.b_stored = 0.5625;
        let sparse = evaluate(&g, 2.0, 4.0, &p, t, Swizzle::RowMajor);
        // Compute-bound either way (memory is nearly free here): half the time
        // and half the MAC energy.
        assert_eq!(sparse.compute_cycles * 2.0, dense.compute_cycles);
        assert!((sparse.energy_j * 2.0 - dense.energy_j).abs() < dense.energy_j * 1e-6);
        // Without sparse tensor cores the work stays dense; B's bytes still shrink.
        p.sparse = None;
        let plain = evaluate(&g, 2.0, 4.0, &p, t, Swizzle::RowMajor);
        assert_eq!(plain.compute_cycles, dense.compute_cycles);
        assert!(plain.levels[0].bytes < dense.levels[0].bytes);
    }
}
