//! What a cost model predicts, as the report contract of ARCHITECTURE.md
//! spells it (serde): per op `cycles`, `compute_cycles`, `latency_s`,
//! `energy_j`, `bottleneck`, `levels[] { name, bytes, time_s }`.

use serde::Serialize;

/// Bytes moved into or out of one memory level, and the time that takes at
/// the level's bandwidth.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LevelTraffic {
    pub name: String,
    pub bytes: f64,
    pub time_s: f64,
}

/// One op's prediction.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Predicted {
    /// Cycles including memory stalls.
    pub cycles: f64,
    /// Cycles the compute units are busy as if memory never stalled (what
    /// SCALE-Sim reports as total cycles with CALC bandwidth).
    pub compute_cycles: f64,
    pub latency_s: f64,
    pub energy_j: f64,
    /// `compute`, or the name of the memory level that limits the op.
    pub bottleneck: String,
    pub levels: Vec<LevelTraffic>,
    /// Useful operations over peak operations in the predicted time.
    pub utilization: f64,
    /// The fastest any schedule could run this op on this hardware (speed of
    /// light): max of work / peak and compulsory bytes / bandwidth.
    pub lower_bound_s: f64,
}
