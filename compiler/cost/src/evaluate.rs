//! One evaluator for every class: a workload, a hardware description and a
//! concrete schedule in, a [`CostReport`] out. Callers never look at the
//! class; each model lives in its own module.

use crate::cpu::CpuParams;
use crate::gemm::gemm_view;
use crate::neuro::{NeuroParams, SpikingLayer};
use crate::npu::NpuParams;
use crate::report::Predicted;
use crate::schedule::{describe, Schedule};
use crate::search::TuneError;
use arch_sema::dtype::DType;
use arch_sema::hardware::{HardwareModel, HwClass};
use arch_sema::mapping::KnobTarget;
use arch_sema::model::{OpKind, WorkloadModel};
use serde::Serialize;
use std::collections::BTreeMap;

/// Fraction of neurons that spike in a step when nothing better is known.
/// An estimate: typical rate-coded SNNs run at 5-20 % activity.
pub const DEFAULT_ACTIVITY: f64 = 0.1;

/// Why no schedule can run, as a diagnostic would say it: the message, a
/// help line, and the knob whose statement is to blame when the mapping
/// fixed it.
#[derive(Debug, Clone, PartialEq)]
pub struct Infeasible {
    pub message: String,
    pub help: String,
    pub knob: Option<KnobTarget>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OpReport {
    /// The tensor the op computes.
    pub name: String,
    /// Every knob of the op with its value.
    pub mapping: BTreeMap<String, String>,
    pub predicted: Predicted,
    /// This op alone, built and timed (`archc run --profile`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub measured: Option<Measured>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Total {
    pub latency_s: f64,
    pub energy_j: f64,
    /// What a run of the built code took (`archc run`), beside the prediction.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub measured: Option<Measured>,
}

/// A measurement of built code: the median wall time of repeated runs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Measured {
    pub latency_s: f64,
    /// The ops timed together with this one (a row chain, which runs as
    /// one kernel; `latency_s` is then theirs together); empty: alone.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub group: Vec<String>,
}

/// Where a hardware description's numbers came from when they were
/// measured on this machine (`archc calibrate`) rather than published.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Calibration {
    /// The calibrated description used (a file in the user's cache).
    pub source: String,
    /// The CPU it was measured on.
    pub cpu: String,
}

/// The report contract of ARCHITECTURE.md.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CostReport {
    pub workload: String,
    pub target: String,
    /// Set when the target's numbers are this machine's calibration.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub calibration: Option<Calibration>,
    pub ops: Vec<OpReport>,
    pub total: Total,
}

/// Reductions of a row chain that share one loop over each row
/// ([`crate::fusion::RowChain::loop_leads`]) run at once: the first's
/// stream from memory, every one's vector work and the slowest one's chains
/// (`floors`, what each would take in its own loop) overlap, so the loop
/// takes the longest of the three. The loop's time is split by vector work
/// (the loop is one kernel: the bounds hold for it as a whole,
/// [`crate::bounds::violations`]).
fn share_loops(ops: &mut [OpReport], fused: &[crate::cpu::Fused], floors: &[f64]) {
    for span in crate::cpu::loops(fused).into_iter().filter(|r| r.len() > 1) {
        let (a, b) = (span.start, span.end);
        let clock = |p: &Predicted| {
            if p.latency_s > 0.0 {
                p.cycles / p.latency_s
            } else {
                1.0
            }
        };
        let compute_s = |p: &Predicted| p.compute_cycles / clock(p);
        let own_s = |p: &Predicted| {
            p.levels
                .iter()
                .map(|l| l.time_s)
                .fold(p.lower_bound_s, f64::max)
        };
        let lead = &ops[a].predicted;
        // Thread start and join, charged to the first op of the chain.
        let overhead = (lead.latency_s - compute_s(lead).max(own_s(lead))).max(0.0);
        let work: f64 = ops[a..b].iter().map(|o| compute_s(&o.predicted)).sum();
        let floor = floors[a..b].iter().copied().fold(0.0, f64::max);
        let group = (lead.latency_s - overhead).max(work).max(floor);
        for (k, o) in ops[a..b].iter_mut().enumerate() {
            let p = &mut o.predicted;
            let hz = clock(p);
            let share = if work > 0.0 {
                compute_s(p) / work
            } else {
                1.0 / (b - a) as f64
            };
            p.latency_s = group * share + if k == 0 { overhead } else { 0.0 };
            p.cycles = (p.latency_s * hz).ceil();
            p.utilization = if p.latency_s > 0.0 {
                (p.lower_bound_s / p.latency_s).min(1.0)
            } else {
                1.0
            };
        }
    }
}

/// Predicts every op of `w` on `hw` under `schedule`, in order; ops run one
/// after another.
pub fn evaluate(
    w: &WorkloadModel,
    hw: &HardwareModel,
    schedule: &Schedule,
) -> Result<CostReport, TuneError> {
    evaluate_built(w, hw, schedule, &[])
}

/// [`evaluate`] for kernels already built: `registers` gives, for some ops
/// (their index in `w.ops`), the registers per thread the assembler
/// reported for the op's gpu kernel, which the occupancy then uses instead
/// of the model's estimate (and which the op's mapping shows as
/// `registers`).
pub fn evaluate_built(
    w: &WorkloadModel,
    hw: &HardwareModel,
    schedule: &Schedule,
    registers: &[(usize, u64)],
) -> Result<CostReport, TuneError> {
    // Tensors stored in a chosen precision and N:M pattern move and compute so.
    let adjusted = crate::schedule::stored(w, schedule);
    let w = &adjusted;
    // Row chains (cpu only): what each op finds on chip.
    let (fused, never_stored) = crate::fusion::fused_ops(w, hw, schedule);
    let mut ops = Vec::new();
    // What each cpu op sharing a loop would take alone (see `share_loops`).
    let mut floors = vec![0.0; schedule.ops.len()];
    match hw.class {
        HwClass::Cpu => {
            let resident = crate::bounds::resident_level_except(w, hw, &never_stored);
            let fill = crate::bounds::resident_fill(w, hw, &never_stored);
            let homes = crate::bounds::tensor_homes(w, hw, &never_stored);
            for (s, fused) in schedule.ops.iter().zip(&fused) {
                let op = &w.ops[s.op];
                let params = CpuParams {
                    resident_level: resident,
                    resident_fill: fill,
                    homes: homes.clone(),
                    ..CpuParams::for_op(hw, w, op).ok_or_else(|| {
                        TuneError::Model("the cpu hardware has no compute rate".into())
                    })?
                };
                let predicted = crate::cpu::evaluate_fused(w, op, &params, &s.nest, fused);
                if fused.shares_loop {
                    floors[ops.len()] = crate::cpu::loop_floor_s(w, op, &params, &s.nest, fused);
                }
                ops.push(OpReport {
                    name: w.tensors[op.output].name.clone(),
                    mapping: describe(w, hw, s),
                    predicted,
                    measured: None,
                });
            }
        }
        HwClass::Npu => {
            let params = NpuParams::from_hardware(hw)
                .ok_or_else(|| TuneError::Model("the npu hardware has no array".into()))?;
            for s in &schedule.ops {
                let op = &w.ops[s.op];
                let predicted = crate::npu::evaluate(w, op, &params, &s.nest);
                ops.push(OpReport {
                    name: w.tensors[op.output].name.clone(),
                    mapping: describe(w, hw, s),
                    predicted,
                    measured: None,
                });
            }
        }
        HwClass::Neuromorphic => {
            let params = NeuroParams::from_hardware(hw).ok_or_else(|| {
                TuneError::Model("the neuromorphic hardware lacks costs or a noc".into())
            })?;
            if !w
                .ops
                .iter()
                .any(|op| matches!(op.kind, OpKind::Neuron { .. }))
            {
                return Err(TuneError::Model(format!(
                    "`{}` is neuromorphic hardware: it runs spiking layers (`h = lif(x @ w)`), and `{}` has none",
                    hw.name, w.name
                )));
            }
            // Every other op must be a spiking layer's synapses (the
            // contraction a neuron model reads): nothing is left uncosted.
            let feeds_a_neuron = |o: &arch_sema::model::Op| {
                w.ops.iter().any(|n| {
                    matches!(n.kind, OpKind::Neuron { .. }) && n.inputs().contains(&o.output)
                })
            };
            if let Some(o) = w
                .ops
                .iter()
                .find(|o| !matches!(o.kind, OpKind::Neuron { .. }) && !feeds_a_neuron(o))
            {
                return Err(TuneError::Model(format!(
                    "`{}` is neither a spiking layer nor the synapses of one; `{}` runs only spiking layers (`h = lif(x @ w)`): compute it elsewhere",
                    w.tensors[o.output].name, hw.name
                )));
            }
            for s in schedule
                .ops
                .iter()
                .filter(|s| matches!(w.ops[s.op].kind, OpKind::Neuron { .. }))
            {
                let layer = spiking_layer(w, s.op, schedule);
                // An open partition starts at the fewest cores that hold the layer.
                let fewest = crate::neuro::fewest_cores(&layer, &params);
                let cores = s.partition.unwrap_or(fewest.unwrap_or(params.cores));
                if let Some(v) = crate::neuro::check_capacity(&layer, &params, cores) {
                    let name = &w.tensors[w.ops[s.op].output].name;
                    let why = match v {
                        crate::neuro::CapacityViolation::Neurons { per_core, limit } => {
                            format!(
                                "{per_core} neurons per core, but a core of `{}` holds {limit}",
                                hw.name
                            )
                        }
                        crate::neuro::CapacityViolation::SynapseMemory {
                            per_core_bytes,
                            limit_bytes,
                        } => format!(
                            "{:.0} bytes of synapses per core, but a core of `{}` holds {:.0}",
                            per_core_bytes, hw.name, limit_bytes
                        ),
                        crate::neuro::CapacityViolation::Cores { wanted, available } => {
                            format!("{wanted} cores, but `{}` has {available}", hw.name)
                        }
                        crate::neuro::CapacityViolation::KernelEntries { per_core, limit } => {
                            format!(
                                "{per_core} weights in one core's kernel memory, but a core of `{}` holds {limit}",
                                hw.name
                            )
                        }
                        crate::neuro::CapacityViolation::FanIn { fan_in, limit } => format!(
                            "a fan-in of {fan_in} inputs per neuron, but a core of `{}` accepts {limit}",
                            hw.name
                        ),
                    };
                    let help = match fewest {
                        Some(f) => format!(
                            "split it over at least {f} cores (`partition {name}: {f}`, or `auto`)"
                        ),
                        None => match v {
                            crate::neuro::CapacityViolation::FanIn { limit, .. } => format!(
                                "splitting neurons over cores does not shrink the fan-in: give the layer at most {limit} inputs, or use hardware whose cores accept more"
                            ),
                            _ => "no split fits: the layer is too large for this chip".to_string(),
                        },
                    };
                    return Err(TuneError::Infeasible(Infeasible {
                        message: format!(
                            "spiking layer `{name}` split over {cores} core(s) needs {why}"
                        ),
                        help,
                        knob: s.partition.map(|_| KnobTarget::Partition {
                            tensor: name.clone(),
                        }),
                    }));
                }
                let predicted = crate::neuro::evaluate(&layer, &params, cores);
                let op = &w.ops[s.op];
                let mut mapping = describe(w, hw, s);
                mapping.insert("partition".into(), cores.to_string());
                ops.push(OpReport {
                    name: w.tensors[op.output].name.clone(),
                    mapping,
                    predicted,
                    measured: None,
                });
            }
        }
        HwClass::Gpu => {
            let swizzle = schedule.swizzle.unwrap_or(crate::gpu::Swizzle::RowMajor);
            for s in &schedule.ops {
                let op = &w.ops[s.op];
                let mut gop = crate::gpu::GpuOp::new(w, hw, op).ok_or_else(|| {
                    TuneError::Model(
                        "the gpu hardware lacks a compute rate, levels or a clock".into(),
                    )
                })?;
                let built = registers.iter().find(|r| r.0 == s.op).map(|r| r.1);
                gop.params.registers_per_thread = built;
                let (tile, predicted) = gop.predict(&s.nest, swizzle);
                let mut mapping = describe(w, hw, s);
                if let Some(r) = built {
                    mapping.insert("registers".into(), r.to_string());
                }
                mapping.insert("swizzle".into(), swizzle.describe());
                mapping.insert(
                    "block".into(),
                    format!("{} x {} x {}", tile.bm, tile.bn, tile.bk),
                );
                mapping.insert("threads".into(), gop.block_threads(tile).to_string());
                ops.push(OpReport {
                    name: w.tensors[op.output].name.clone(),
                    mapping,
                    predicted,
                    measured: None,
                });
            }
        }
    }
    // cpu, npu and gpu ops are reported one per scheduled op, in order.
    if hw.class != HwClass::Neuromorphic {
        for ((r, s), fused) in ops.iter_mut().zip(&schedule.ops).zip(&fused) {
            if let Some(f) =
                crate::bounds::floor(w, hw, &w.ops[s.op], (&fused.on_chip, &never_stored))
            {
                crate::bounds::enforce(&mut r.predicted, &f);
            }
        }
    }
    if hw.class == HwClass::Cpu {
        share_loops(&mut ops, &fused, &floors);
    }
    let total = Total {
        latency_s: ops.iter().map(|o| o.predicted.latency_s).sum(),
        energy_j: ops.iter().map(|o| o.predicted.energy_j).sum(),
        measured: None,
    };
    Ok(CostReport {
        workload: w.name.clone(),
        target: hw.name.clone(),
        calibration: None,
        ops,
        total,
    })
}

/// The spiking layer a neuron op forms with the contraction that feeds it.
pub fn spiking_layer(w: &WorkloadModel, op_index: usize, schedule: &Schedule) -> SpikingLayer {
    let op = &w.ops[op_index];
    let shape = &w.tensors[op.output].shape;
    let timesteps = shape.first().copied().unwrap_or(1);
    let neurons: u64 = shape.iter().skip(1).product();
    let input = op.inputs().first().copied();
    let synapses = input.and_then(|t| w.producer(t)).map(|p| gemm_view(w, p));
    let (fan_in, density, bits) = match synapses {
        Some(g) if g.k > 1 => {
            let weight = g.b.map(|b| &w.tensors[b]);
            let density = weight
                .map(|t| {
                    let d = t.density.map_or(1.0, |d| d.0);
                    let s = t.sparsity.map_or(1.0, |s| s.n as f64 / s.m as f64);
                    d * s
                })
                .unwrap_or(1.0);
            (g.k, density, weight.map_or(8, |t| t.dtype.bits()))
        }
        _ => (1, 1.0, DType::I8.bits()),
    };
    // Spikes of this layer go to every core of the next spiking layer.
    let fanout_cores = w
        .ops
        .iter()
        .enumerate()
        .filter(|(_, o)| o.inputs().contains(&op.output))
        .flat_map(|(i, _)| {
            let out = w.ops[i].output;
            w.ops.iter().enumerate().filter(move |(_, o)| {
                o.inputs().contains(&out) && matches!(o.kind, OpKind::Neuron { .. })
            })
        })
        .filter_map(|(i, _)| {
            schedule
                .ops
                .iter()
                .find(|s| s.op == i)
                .and_then(|s| s.partition)
        })
        .max()
        .unwrap_or(1);
    SpikingLayer {
        timesteps,
        neurons,
        fan_in,
        weight_density: density,
        weight_bits: bits,
        input_activity: DEFAULT_ACTIVITY,
        output_activity: DEFAULT_ACTIVITY,
        fanout_cores,
    }
}
