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
    /// The speed-of-light time over the predicted time (1.0 is the best the
    /// hardware allows).
    pub utilization: f64,
    /// The fastest any schedule could run this op on this hardware (speed of
    /// light): max of work / peak and compulsory bytes / bandwidth.
    pub lower_bound_s: f64,
}

/// A roofline prediction: compute and every level's transfers overlap, the
/// slowest sets the time.
pub struct Roofline {
    pub clock_hz: f64,
    /// Seconds the compute units need.
    pub compute_s: f64,
    pub compute_energy_j: f64,
    pub lower_bound_s: f64,
}

impl Roofline {
    /// `levels`: `(name, bytes, bandwidth in B/s, energy in J/B)`.
    pub fn finish(self, levels: impl IntoIterator<Item = (String, f64, f64, f64)>) -> Predicted {
        let mut slowest = ("compute".to_string(), self.compute_s);
        let mut energy = self.compute_energy_j;
        let mut traffic = Vec::new();
        for (name, bytes, bw, e) in levels {
            let time_s = bytes / bw;
            energy += bytes * e;
            if time_s > slowest.1 {
                slowest = (name.clone(), time_s);
            }
            traffic.push(LevelTraffic {
                name,
                bytes,
                time_s,
            });
        }
        let latency_s = slowest.1;
        Predicted {
            cycles: (latency_s * self.clock_hz).ceil(),
            compute_cycles: (self.compute_s * self.clock_hz).ceil(),
            latency_s,
            energy_j: energy,
            bottleneck: slowest.0,
            levels: traffic,
            utilization: if latency_s > 0.0 {
                self.lower_bound_s / latency_s
            } else {
                1.0
            },
            lower_bound_s: self.lower_bound_s,
        }
    }
}
