//! The neuromorphic model: the floorline. Per timestep the busiest core sets
//! the pace, not the total work:
//!
//! `T_step = max over cores of max(S_c * t_synop, A_c * t_update, M_c * t_msg) + t_barrier`
//!
//! with `S_c` synaptic events, `A_c` neuron updates and `M_c` spike messages
//! of core `c`. The term that wins is the layer's bottleneck state:
//! memory-bound (synapses), compute-bound (updates) or traffic-bound
//! (messages). Splitting a layer over more cores shrinks `S_c` and `A_c`
//! until messages or the core count stop it. Per-core capacities (neurons,
//! synapse memory) are hard limits.

use crate::report::{LevelTraffic, Predicted};
use arch_sema::hardware::HardwareModel;

/// One spiking layer: `neurons` neurons fed by `fan_in` inputs over
/// `timesteps` steps.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpikingLayer {
    pub timesteps: u64,
    pub neurons: u64,
    pub fan_in: u64,
    /// Fraction of non-zero weights (from `@density` or N:M sparsity).
    pub weight_density: f64,
    pub weight_bits: u64,
    /// Fraction of input neurons that spike in a step.
    pub input_activity: f64,
    /// Fraction of this layer's neurons that spike in a step.
    pub output_activity: f64,
    /// Cores the next layer is spread over (each spike goes to each).
    pub fanout_cores: u64,
}

/// What one core holds.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct CoreLimits {
    pub neurons: Option<u64>,
    pub synapse_bytes: Option<f64>,
    /// Weights its kernel memory holds, stored dense (Speck).
    pub kernel_entries: Option<u64>,
    /// Distinct inputs (axons) it accepts.
    pub fan_in: Option<u64>,
}

impl CoreLimits {
    fn of(c: &arch_sema::hardware::NeuroCore) -> CoreLimits {
        CoreLimits {
            neurons: c.neurons,
            synapse_bytes: c.synapse_memory_bytes.map(|b| b.0),
            kernel_entries: c.kernel_entries,
            fan_in: c.fan_in,
        }
    }

    /// The first limit `neurons_here` neurons of `layer` break on this core.
    fn violation(&self, layer: &SpikingLayer, neurons_here: u64) -> Option<CapacityViolation> {
        if let Some(limit) = self.fan_in {
            if layer.fan_in > limit {
                return Some(CapacityViolation::FanIn {
                    fan_in: layer.fan_in,
                    limit,
                });
            }
        }
        if let Some(limit) = self.neurons {
            if neurons_here > limit {
                return Some(CapacityViolation::Neurons {
                    per_core: neurons_here,
                    limit,
                });
            }
        }
        if let Some(limit) = self.synapse_bytes {
            let bytes = layer.fan_in as f64
                * neurons_here as f64
                * layer.weight_density
                * layer.weight_bits as f64
                / 8.0;
            if bytes > limit {
                return Some(CapacityViolation::SynapseMemory {
                    per_core_bytes: bytes,
                    limit_bytes: limit,
                });
            }
        }
        if let Some(limit) = self.kernel_entries {
            let entries = layer.fan_in.saturating_mul(neurons_here);
            if entries > limit {
                return Some(CapacityViolation::KernelEntries {
                    per_core: entries,
                    limit,
                });
            }
        }
        None
    }
}

/// The per-event costs and limits of a neuromorphic chip, in base units.
#[derive(Debug, Clone, PartialEq)]
pub struct NeuroParams {
    pub cores: u64,
    /// Every core's limits (cores may differ, as Speck's do).
    pub core_limits: Vec<CoreLimits>,
    pub synop_time_s: f64,
    pub synop_energy_j: f64,
    pub update_time_s: f64,
    pub update_energy_j: f64,
    pub barrier_time_s: f64,
    pub hop_time_s: f64,
    pub hop_energy_j: f64,
    pub spike_energy_j: f64,
    /// Mean hops between two cores of the mesh.
    pub mean_hops: f64,
}

impl NeuroParams {
    pub fn from_hardware(hw: &HardwareModel) -> Option<NeuroParams> {
        let cost = hw.cost.as_ref()?;
        let noc = hw.noc.as_ref()?;
        let core = hw.neuro_cores.first();
        let get = |x: Option<arch_sema::model::Real>| x.map_or(0.0, |r| r.0);
        Some(NeuroParams {
            cores: hw.cores,
            // A labeled `core` block is one core; an unlabeled one (or else
            // the first) describes every core not listed.
            core_limits: {
                let labeled: Vec<CoreLimits> = hw
                    .neuro_cores
                    .iter()
                    .filter(|c| c.label.is_some())
                    .map(CoreLimits::of)
                    .collect();
                let rest = hw
                    .neuro_cores
                    .iter()
                    .find(|c| c.label.is_none())
                    .or(core)
                    .map(CoreLimits::of)
                    .unwrap_or_default();
                let mut all: Vec<CoreLimits> =
                    labeled.into_iter().take(hw.cores as usize).collect();
                all.resize(hw.cores as usize, rest);
                all
            },
            synop_time_s: get(cost.synop_time_s),
            synop_energy_j: get(cost.synop_energy_j),
            update_time_s: get(cost.update_time_s),
            update_energy_j: get(cost.update_energy_j),
            barrier_time_s: get(cost.barrier_time_s),
            hop_time_s: get(noc.hop_time_s),
            hop_energy_j: get(noc.hop_energy_j),
            spike_energy_j: get(cost.spike_energy_j),
            // Mean Manhattan distance between two random nodes of a
            // rows x cols mesh is (rows + cols) / 3 (for large meshes).
            mean_hops: ((noc.rows + noc.cols) as f64 / 3.0).max(1.0),
        })
    }
}

/// Which term of the floorline sets a step's time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FloorlineState {
    /// Synaptic events (weight memory reads) dominate.
    MemoryBound,
    /// Neuron updates dominate.
    ComputeBound,
    /// Spike messages over the mesh dominate.
    TrafficBound,
}

impl FloorlineState {
    pub fn name(self) -> &'static str {
        match self {
            FloorlineState::MemoryBound => "synapses (memory-bound)",
            FloorlineState::ComputeBound => "neuron updates (compute-bound)",
            FloorlineState::TrafficBound => "spike traffic (traffic-bound)",
        }
    }
}

/// A layer split over `cores` cores that breaks a hard per-core limit.
#[derive(Debug, Clone, PartialEq)]
pub enum CapacityViolation {
    Neurons {
        per_core: u64,
        limit: u64,
    },
    SynapseMemory {
        per_core_bytes: f64,
        limit_bytes: f64,
    },
    Cores {
        wanted: u64,
        available: u64,
    },
    KernelEntries {
        per_core: u64,
        limit: u64,
    },
    /// Splitting neurons over cores does not shrink a layer's fan-in.
    FanIn {
        fan_in: u64,
        limit: u64,
    },
}

impl CapacityViolation {
    /// How far over its limit, as a ratio (1.0 is at the limit).
    fn excess(&self) -> f64 {
        match self {
            CapacityViolation::Neurons { per_core, limit }
            | CapacityViolation::KernelEntries { per_core, limit } => {
                *per_core as f64 / (*limit).max(1) as f64
            }
            CapacityViolation::SynapseMemory {
                per_core_bytes,
                limit_bytes,
            } => per_core_bytes / limit_bytes.max(1.0),
            CapacityViolation::Cores { wanted, available } => {
                *wanted as f64 / (*available).max(1) as f64
            }
            CapacityViolation::FanIn { fan_in, limit } => *fan_in as f64 / (*limit).max(1) as f64,
        }
    }
}

/// One step of a layer split evenly over `cores` cores.
pub fn floorline_step_time(
    layer: &SpikingLayer,
    p: &NeuroParams,
    cores: u64,
) -> (f64, FloorlineState) {
    let cores = cores.max(1) as f64;
    let synops =
        layer.input_activity * layer.fan_in as f64 * layer.neurons as f64 * layer.weight_density;
    let updates = layer.neurons as f64;
    let messages = layer.output_activity * layer.neurons as f64 * layer.fanout_cores.max(1) as f64;
    let s = synops / cores * p.synop_time_s;
    let a = (updates / cores).ceil() * p.update_time_s;
    let m = messages / cores * p.mean_hops * p.hop_time_s;
    let (busiest, state) = if s >= a && s >= m {
        (s, FloorlineState::MemoryBound)
    } else if a >= m {
        (a, FloorlineState::ComputeBound)
    } else {
        (m, FloorlineState::TrafficBound)
    };
    (busiest + p.barrier_time_s, state)
}

/// The fewest cores a balanced split of `layer` fits on, if any.
pub fn fewest_cores(layer: &SpikingLayer, p: &NeuroParams) -> Option<u64> {
    (1..=p.cores).find(|c| check_capacity(layer, p, *c).is_none())
}

/// The hard limits a split must respect, smallest violation first.
pub fn check_capacity(
    layer: &SpikingLayer,
    p: &NeuroParams,
    cores: u64,
) -> Option<CapacityViolation> {
    if cores > p.cores || cores == 0 {
        return Some(CapacityViolation::Cores {
            wanted: cores,
            available: p.cores,
        });
    }
    // A balanced split needs `cores` cores that each hold their share; when
    // too few do, the failing core that comes closest explains why.
    let per_core = layer.neurons.div_ceil(cores);
    let mut fitting = 0;
    let mut closest: Option<CapacityViolation> = None;
    for limits in &p.core_limits {
        match limits.violation(layer, per_core) {
            None => fitting += 1,
            Some(v) => {
                if closest.as_ref().is_none_or(|c| v.excess() < c.excess()) {
                    closest = Some(v);
                }
            }
        }
    }
    if fitting >= cores as usize || p.core_limits.is_empty() {
        None
    } else {
        closest
    }
}

/// Predicts a layer split over `cores` cores.
pub fn evaluate(layer: &SpikingLayer, p: &NeuroParams, cores: u64) -> Predicted {
    let (step_s, state) = floorline_step_time(layer, p, cores);
    let steps = layer.timesteps as f64;
    let synops =
        layer.input_activity * layer.fan_in as f64 * layer.neurons as f64 * layer.weight_density;
    let messages = layer.output_activity * layer.neurons as f64 * layer.fanout_cores.max(1) as f64;
    let energy_step = synops * p.synop_energy_j
        + layer.neurons as f64 * p.update_energy_j
        + messages * (p.mean_hops * p.hop_energy_j + p.spike_energy_j);
    let latency_s = steps * step_s;
    // Speed of light: the whole chip shares the work and messages are free.
    let best_cores = p.cores as f64;
    let lower_step = (synops / best_cores * p.synop_time_s)
        .max((layer.neurons as f64 / best_cores).ceil() * p.update_time_s)
        + p.barrier_time_s;
    let synapse_bytes = synops * layer.weight_bits as f64 / 8.0 * steps;
    Predicted {
        cycles: steps,
        compute_cycles: steps,
        latency_s,
        energy_j: steps * energy_step,
        bottleneck: state.name().to_string(),
        levels: vec![LevelTraffic {
            name: "synapse_memory".into(),
            bytes: synapse_bytes,
            time_s: steps * synops / cores.max(1) as f64 * p.synop_time_s,
        }],
        utilization: lower_step / step_s,
        lower_bound_s: steps * lower_step,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loihi_like() -> NeuroParams {
        NeuroParams {
            cores: 128,
            core_limits: vec![
                CoreLimits {
                    neurons: Some(8192),
                    synapse_bytes: Some(128.0 * 1024.0),
                    kernel_entries: None,
                    fan_in: Some(4096),
                };
                128
            ],
            synop_time_s: 4.0e-9,
            synop_energy_j: 35.5e-12,
            update_time_s: 9.7e-9,
            update_energy_j: 72.8e-12,
            barrier_time_s: 299e-9,
            hop_time_s: 4.1e-9,
            hop_energy_j: 3.0e-12,
            spike_energy_j: 0.0,
            mean_hops: 8.0,
        }
    }

    fn layer() -> SpikingLayer {
        SpikingLayer {
            timesteps: 10,
            neurons: 512,
            fan_in: 784,
            weight_density: 0.25,
            weight_bits: 8,
            input_activity: 0.1,
            output_activity: 0.1,
            fanout_cores: 1,
        }
    }

    #[test]
    fn one_core_is_memory_bound_by_hand() {
        // synops = 0.1 * 784 * 512 * 0.25 = 10035.2 -> 40.14 us on one core;
        // updates 512 * 9.7 ns = 4.97 us; messages 51.2 * 8 * 4.1 ns = 1.68 us.
        let (t, state) = floorline_step_time(&layer(), &loihi_like(), 1);
        assert_eq!(state, FloorlineState::MemoryBound);
        let expected = 10035.2 * 4.0e-9 + 299e-9;
        assert!((t - expected).abs() < 1e-12, "{t} vs {expected}");
    }

    #[test]
    fn splitting_moves_the_floor() {
        let p = loihi_like();
        // 16 cores: synops 627.2 * 4 ns = 2.51 us, updates 32 * 9.7 = 0.31 us,
        // messages 3.2 * 8 * 4.1 ns = 0.105 us: still memory-bound, 16x faster.
        let (t1, _) = floorline_step_time(&layer(), &p, 1);
        let (t16, state) = floorline_step_time(&layer(), &p, 16);
        assert_eq!(state, FloorlineState::MemoryBound);
        assert!(((t1 - 299e-9) / (t16 - 299e-9) - 16.0).abs() < 1e-9);
        // With dense, busy spikes to many cores, traffic wins.
        let chatty = SpikingLayer {
            output_activity: 1.0,
            fanout_cores: 64,
            input_activity: 0.001,
            ..layer()
        };
        assert_eq!(
            floorline_step_time(&chatty, &p, 16).1,
            FloorlineState::TrafficBound
        );
    }

    #[test]
    fn capacity_limits() {
        let p = loihi_like();
        // 784 * 512 * 0.25 bytes = 100,352 B on one core fits 128 KiB ...
        assert_eq!(check_capacity(&layer(), &p, 1), None);
        // ... dense it does not: 401,408 B.
        let dense = SpikingLayer {
            weight_density: 1.0,
            ..layer()
        };
        assert!(matches!(
            check_capacity(&dense, &p, 1),
            Some(CapacityViolation::SynapseMemory { .. })
        ));
        assert_eq!(check_capacity(&dense, &p, 4), None);
        assert!(matches!(
            check_capacity(&layer(), &p, 200),
            Some(CapacityViolation::Cores { .. })
        ));
        let big = SpikingLayer {
            neurons: 10_000,
            ..layer()
        };
        assert!(matches!(
            check_capacity(&big, &p, 1),
            Some(CapacityViolation::Neurons {
                per_core: 10_000,
                limit: 8192
            })
        ));
        // Splitting neurons does not shrink a fan-in over a core's 4096.
        let wide = SpikingLayer {
            fan_in: 5000,
            ..layer()
        };
        assert_eq!(
            check_capacity(&wide, &p, 128),
            Some(CapacityViolation::FanIn {
                fan_in: 5000,
                limit: 4096
            })
        );
    }

    #[test]
    fn kernel_memory_limits_by_hand() {
        // Speck-like: 16 Ki kernel entries per core, no byte limit; weights
        // are stored dense. Over 25 cores each holds ceil(512 / 25) = 21
        // neurons, 784 x 21 = 16,464 entries: over. Over 26, 20 neurons,
        // 15,680 entries: fits.
        let speck_like = |entries: &[u64]| NeuroParams {
            cores: entries.len() as u64,
            core_limits: entries
                .iter()
                .map(|e| CoreLimits {
                    kernel_entries: Some(*e),
                    ..CoreLimits::default()
                })
                .collect(),
            ..loihi_like()
        };
        let p = speck_like(&[16 * 1024; 32]);
        assert_eq!(
            check_capacity(&layer(), &p, 25),
            Some(CapacityViolation::KernelEntries {
                per_core: 784 * 21,
                limit: 16384
            })
        );
        assert_eq!(check_capacity(&layer(), &p, 26), None);
        // Cores that differ: a split over 2 cores needs 784 x 256 = 200,704
        // entries on each; one core of 256 Ki and one of 16 Ki do not
        // suffice (the 16 Ki one is 12x over), two of 256 Ki do.
        let mixed = speck_like(&[256 * 1024, 16 * 1024]);
        assert_eq!(
            check_capacity(&layer(), &mixed, 2),
            Some(CapacityViolation::KernelEntries {
                per_core: 784 * 256,
                limit: 16384
            })
        );
        let big = speck_like(&[256 * 1024, 256 * 1024, 16 * 1024]);
        assert_eq!(check_capacity(&layer(), &big, 2), None);
    }

    #[test]
    fn prediction_is_consistent() {
        let p = loihi_like();
        let pred = evaluate(&layer(), &p, 8);
        assert!(pred.latency_s >= pred.lower_bound_s);
        assert!(pred.utilization > 0.0 && pred.utilization <= 1.0);
        assert_eq!(pred.cycles, 10.0);
        assert!(pred.energy_j > 0.0);
    }
}
