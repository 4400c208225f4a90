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

use crate::gemm::{gemm_view, GemmView};
use crate::report::{LevelTraffic, Predicted};
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

/// `(folds, compute cycles)` of a GEMM on a `rows x cols` array, memory
/// never stalling, counted as SCALE-Sim's "Total Cycles" (CALC bandwidth).
pub fn compute_cycles(g: &GemmView, rows: u64, cols: u64, dataflow: Dataflow) -> (u64, u64) {
    let (sr, sc, t) = spatial_temporal(g, dataflow);
    let folds = sr.div_ceil(rows) * sc.div_ceil(cols);
    let per_fold = match dataflow {
        Dataflow::OutputStationary => rows + cols + t - 2,
        Dataflow::WeightStationary | Dataflow::InputStationary => 2 * rows + cols + t - 2,
    };
    (folds, (folds * per_fold).saturating_sub(1))
}

/// Predicts one op on an npu.
pub fn evaluate(w: &WorkloadModel, op: &Op, p: &NpuParams) -> Predicted {
    let g = gemm_view(w, op);
    let (_, compute) = compute_cycles(&g, p.rows, p.cols, p.dataflow);
    let (sr, sc, _) = spatial_temporal(&g, p.dataflow);
    let row_folds = sr.div_ceil(p.rows) as f64;
    let col_folds = sc.div_ceil(p.cols) as f64;
    let a_bytes = (g.m * g.k) as f64 * p.in_bytes;
    let b_bytes = (g.k * g.n) as f64 * p.in_bytes;
    let c_bytes = (g.m * g.n) as f64 * p.in_bytes;
    let compulsory = a_bytes + b_bytes + c_bytes;
    // DRAM: every operand once when the working set fits half the
    // scratchpad (the other half is being filled); otherwise the streamed
    // operand comes again for every fold of the other array dimension.
    let scratchpad = p.levels.get(1).and_then(|l| l.1).unwrap_or(f64::INFINITY);
    let dram_bytes = if a_bytes + b_bytes <= scratchpad / 2.0 {
        compulsory
    } else {
        match p.dataflow {
            Dataflow::WeightStationary => a_bytes * col_folds + b_bytes + c_bytes,
            Dataflow::OutputStationary => a_bytes * col_folds + b_bytes * row_folds + c_bytes,
            Dataflow::InputStationary => a_bytes + b_bytes * col_folds + c_bytes,
        }
    };
    // Scratchpad reads feeding the array, and partial sums in the accumulator.
    let spad_bytes = match p.dataflow {
        Dataflow::WeightStationary => b_bytes + a_bytes * col_folds,
        Dataflow::OutputStationary => a_bytes * col_folds + b_bytes * row_folds,
        Dataflow::InputStationary => a_bytes + b_bytes * col_folds,
    };
    let acc_bytes = (g.m * g.n) as f64 * p.acc_bytes * 2.0 * row_folds;
    let per_level = [dram_bytes, spad_bytes, acc_bytes];
    let mut levels = Vec::new();
    let mut slowest = ("compute".to_string(), compute as f64 / p.clock_hz);
    let mut energy = g.macs() as f64 * p.energy_per_mac_j;
    for (i, (name, _, bw, e)) in p.levels.iter().enumerate() {
        let bytes = per_level.get(i).copied().unwrap_or(0.0);
        let time_s = bytes / bw;
        energy += bytes * e;
        if time_s > slowest.1 {
            slowest = (name.clone(), time_s);
        }
        levels.push(LevelTraffic {
            name: name.clone(),
            bytes,
            time_s,
        });
    }
    let latency_s = slowest.1;
    let dram_bw = p.levels.first().map_or(f64::INFINITY, |l| l.2);
    let peak_s = g.macs() as f64 / (p.rows * p.cols) as f64 / p.clock_hz;
    Predicted {
        cycles: (latency_s * p.clock_hz).ceil(),
        compute_cycles: compute as f64,
        latency_s,
        energy_j: energy,
        bottleneck: slowest.0,
        levels,
        utilization: g.macs() as f64 / (latency_s * p.clock_hz * (p.rows * p.cols) as f64),
        lower_bound_s: peak_s.max(compulsory / dram_bw),
    }
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
