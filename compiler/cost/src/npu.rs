//! The npu model: SCALE-Sim's analytic view of a weight-, output- or
//! input-stationary systolic array, with double-buffered DMA.
//!
//! Every contraction is a GEMM `C[M, N] += A[M, K] B[K, N]` (see
//! [`crate::gemm`]). The dataflow maps it onto the array's rows and columns
//! as SCALE-Sim does: weight stationary `(Sr, Sc, T) = (K, N, M)`, output
//! stationary `(M, N, K)`, input stationary `(K, M, N)`. An `R x C` array
//! runs `folds = ceil(Sr / R) * ceil(Sc / C)` folds. A weight- or
//! input-stationary fold takes `2R + C + T - 2` cycles (R to load the
//! stationary operand, R - 1 of skew, T streamed rows, C - 1 to drain); an
//! output-stationary fold loads nothing first: `R + C + T - 2`. SCALE-Sim
//! reports the index of the last cycle, so its "Total Cycles" is one less
//! than the count; this model reports the same number.

use crate::cpu::{compulsory_bytes, fill_bytes, LoopNest};
use crate::gemm::{gemm_view, GemmView};
use crate::report::{Predicted, Roofline};
use arch_sema::hardware::{Dataflow, HardwareModel};
use arch_sema::model::{Op, WorkloadModel};

/// The array and memories of an npu, in base units.
#[derive(Debug, Clone, PartialEq)]
pub struct NpuParams {
    pub rows: u64,
    pub cols: u64,
    pub dataflow: Dataflow,
    pub clock_hz: f64,
    pub in_bytes: f64,
    pub acc_bytes: f64,
    pub energy_per_mac_j: f64,
    /// `(name, size in bytes, bandwidth in B/s, energy in J/B)`, outermost first.
    pub levels: Vec<(String, Option<f64>, f64, f64)>,
}

impl NpuParams {
    pub fn from_hardware(hw: &HardwareModel) -> Option<NpuParams> {
        let array = hw.array.as_ref()?;
        Some(NpuParams {
            rows: array.rows,
            cols: array.cols,
            dataflow: array.dataflow,
            clock_hz: hw.clock_hz.map_or(1e9, |c| c.0),
            in_bytes: array.in_dtype.bits() as f64 / 8.0,
            acc_bytes: array.acc_dtype.bits() as f64 / 8.0,
            energy_per_mac_j: array.energy_j_per_op.map_or(0.0, |e| e.value.0),
            levels: hw
                .levels
                .iter()
                .map(|l| {
                    (
                        l.name.clone(),
                        l.size_bytes.map(|s| s.value.0),
                        l.bandwidth_bytes_per_s.map_or(f64::INFINITY, |b| b.value.0),
                        l.energy_j_per_byte.map_or(0.0, |e| e.value.0),
                    )
                })
                .collect(),
        })
    }
}

/// SCALE-Sim's `(Sr, Sc, T)` for a GEMM under a dataflow.
pub fn spatial_temporal(g: &GemmView, dataflow: Dataflow) -> (u64, u64, u64) {
    match dataflow {
        Dataflow::WeightStationary => (g.k, g.n, g.m),
        Dataflow::OutputStationary => (g.m, g.n, g.k),
        Dataflow::InputStationary => (g.k, g.m, g.n),
    }
}

/// `(folds, cycles)` of one GEMM pass through the array, counted in full
/// (SCALE-Sim's figure is one less: the index of the last cycle).
fn fold_cycles(g: &GemmView, rows: u64, cols: u64, dataflow: Dataflow) -> (u64, u64) {
    let (sr, sc, t) = spatial_temporal(g, dataflow);
    let folds = sr.div_ceil(rows) * sc.div_ceil(cols);
    let per_fold = match dataflow {
        Dataflow::OutputStationary => rows + cols + t - 2,
        Dataflow::WeightStationary | Dataflow::InputStationary => 2 * rows + cols + t - 2,
    };
    (folds, folds.saturating_mul(per_fold))
}

/// `(folds, compute cycles)` of a GEMM on a `rows x cols` array, memory
/// never stalling, counted as SCALE-Sim's "Total Cycles" (CALC bandwidth).
pub fn compute_cycles(g: &GemmView, rows: u64, cols: u64, dataflow: Dataflow) -> (u64, u64) {
    let (folds, cycles) = fold_cycles(g, rows, cols, dataflow);
    (folds, cycles.saturating_sub(1))
}

/// Adds `count` tiles of extent `extent` to a list of `(extent, count)`.
fn add_tiles(list: &mut Vec<(u64, u64)>, extent: u64, count: u64) {
    match list.iter_mut().find(|(e, _)| *e == extent) {
        Some(entry) => entry.1 += count,
        None => list.push((extent, count)),
    }
}

/// The innermost tiles along variable `v`, as `(extent, how many)`: the
/// extent is cut by the tile size at every level in turn, so a tile that
/// does not divide its parent leaves one smaller tile in each parent.
pub fn tile_extents(nest: &LoopNest, v: usize) -> Vec<(u64, u64)> {
    let mut tiles = vec![(nest.tiles[0][v], 1u64)];
    for level in &nest.tiles[1..] {
        let size = level[v].max(1);
        let mut next = Vec::new();
        for (extent, count) in tiles {
            if extent >= size {
                add_tiles(&mut next, size, count.saturating_mul(extent / size));
            }
            if extent % size > 0 {
                add_tiles(&mut next, extent % size, count);
            }
        }
        tiles = next;
    }
    tiles
}

/// The innermost tiles of a product of variables (a GEMM dimension), as
/// `(extent, how many)`.
fn role_extents(nest: &LoopNest, vars: &[usize]) -> Vec<(u64, u64)> {
    let mut out = vec![(1u64, 1u64)];
    for &v in vars {
        let mut next = Vec::new();
        for (e, c) in &out {
            for (te, tc) in tile_extents(nest, v) {
                add_tiles(&mut next, e.saturating_mul(te), c.saturating_mul(tc));
            }
        }
        out = next;
    }
    out
}

/// Predicts one op on an npu. The array runs the op one innermost tile at a
/// time, each tile a GEMM pass of SCALE-Sim's folds; untiled, that is
/// exactly SCALE-Sim's count. DRAM traffic follows from the scratchpad
/// tiles and the loop order (the reuse model of [`crate::cpu`]), with DMA
/// double-buffered so that it overlaps the array; the scratchpad feeds each
/// fold its streamed operand and each tile's stationary one; partial sums
/// go through the accumulator once per row fold.
pub fn evaluate(w: &WorkloadModel, op: &Op, p: &NpuParams, nest: &LoopNest) -> Predicted {
    evaluate_view(w, op, &gemm_view(w, op), p, nest)
}

/// [`evaluate`] with the op's GEMM view worked out already (the search
/// scores many nests of one op).
pub fn evaluate_view(
    w: &WorkloadModel,
    op: &Op,
    g: &GemmView,
    p: &NpuParams,
    nest: &LoopNest,
) -> Predicted {
    let (ms, ns, ks) = (
        role_extents(nest, &g.m_vars),
        role_extents(nest, &g.n_vars),
        role_extents(nest, &g.k_vars),
    );
    let mut cycles = 0u64;
    let (mut spad_bytes, mut acc_bytes) = (0.0, 0.0);
    for &(m, cm) in &ms {
        for &(n, cn) in &ns {
            for &(k, ck) in &ks {
                let tile = GemmView {
                    m,
                    n,
                    k,
                    ..GemmView::default()
                };
                let count = cm.saturating_mul(cn).saturating_mul(ck);
                cycles = cycles.saturating_add(
                    count.saturating_mul(fold_cycles(&tile, p.rows, p.cols, p.dataflow).1),
                );
                let (sr, sc, _) = spatial_temporal(&tile, p.dataflow);
                let row_folds = sr.div_ceil(p.rows) as f64;
                let col_folds = sc.div_ceil(p.cols) as f64;
                let a = m as f64 * k as f64 * p.in_bytes;
                let b = k as f64 * n as f64 * p.in_bytes;
                let fed = match p.dataflow {
                    Dataflow::WeightStationary => b + a * col_folds,
                    Dataflow::OutputStationary => a * col_folds + b * row_folds,
                    Dataflow::InputStationary => a + b * col_folds,
                };
                spad_bytes += count as f64 * fed;
                acc_bytes += count as f64 * m as f64 * n as f64 * p.acc_bytes * 2.0 * row_folds;
            }
        }
    }
    let compute = cycles.saturating_sub(1);
    let dram_bytes = if nest.tiles.len() > 1 {
        fill_bytes(w, op, nest, 1, 1.0)
    } else {
        compulsory_bytes(w, op)
    };
    let per_level = [dram_bytes, spad_bytes, acc_bytes];
    let levels = p.levels.iter().enumerate().map(|(i, (name, _, bw, e))| {
        (
            name.clone(),
            per_level.get(i).copied().unwrap_or(0.0),
            *bw,
            *e,
        )
    });
    let dram_bw = p.levels.first().map_or(f64::INFINITY, |l| l.2);
    let peak_s = g.macs() / (p.rows * p.cols) as f64 / p.clock_hz;
    let mut predicted = Roofline {
        clock_hz: p.clock_hz,
        compute_s: compute as f64 / p.clock_hz,
        compute_energy_j: g.macs() * p.energy_per_mac_j,
        lower_bound_s: peak_s.max(compulsory_bytes(w, op) / dram_bw),
    }
    .finish(levels);
    // Exact, not through seconds and back.
    predicted.compute_cycles = compute as f64;
    predicted
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gemm(m: u64, n: u64, k: u64) -> GemmView {
        GemmView {
            m,
            n,
            k,
            ..GemmView::default()
        }
    }

    // The expected numbers are worked by hand, and each equals what
    // SCALE-Sim 3.0.0 (PyPI `scalesim`, CALC bandwidth, 16 x 16) printed as
    // "Total Cycles" for the same GEMM when run on this project's machine.

    #[test]
    fn weight_stationary_by_hand() {
        // 64^3 on 16x16: Sr = K = 64, Sc = N = 64, T = M = 64.
        // folds = 4 * 4 = 16; per fold 2*16 + 16 + 64 - 2 = 110; 1760 - 1.
        assert_eq!(
            compute_cycles(&gemm(64, 64, 64), 16, 16, Dataflow::WeightStationary),
            (16, 1759)
        );
        // M = 128, N = 64, K = 256: Sr = 256 (16 folds), Sc = 64 (4), T = 128.
        // 64 folds * (32 + 16 + 128 - 2 = 174) - 1 = 11135.
        assert_eq!(
            compute_cycles(&gemm(128, 64, 256), 16, 16, Dataflow::WeightStationary),
            (64, 11135)
        );
    }

    #[test]
    fn output_and_input_stationary_by_hand() {
        // OS: Sr = M = 128 (8 folds), Sc = N = 64 (4), T = K = 256; no
        // weight load: 32 folds * (16 + 16 + 256 - 2 = 286) - 1 = 9151.
        assert_eq!(
            compute_cycles(&gemm(128, 64, 256), 16, 16, Dataflow::OutputStationary),
            (32, 9151)
        );
        // 64^3: 16 folds * (16 + 16 + 64 - 2 = 94) - 1 = 1503.
        assert_eq!(
            compute_cycles(&gemm(64, 64, 64), 16, 16, Dataflow::OutputStationary),
            (16, 1503)
        );
        // IS: Sr = K = 256 (16), Sc = M = 128 (8), T = N = 64.
        // 128 folds * (32 + 16 + 64 - 2 = 110) - 1 = 14079.
        assert_eq!(
            compute_cycles(&gemm(128, 64, 256), 16, 16, Dataflow::InputStationary),
            (128, 14079)
        );
    }

    #[test]
    fn partial_folds_count_whole() {
        // K = 17 needs two row folds even though the second holds one row.
        assert_eq!(
            compute_cycles(&gemm(1, 1, 17), 16, 16, Dataflow::WeightStationary).0,
            2
        );
    }
}
