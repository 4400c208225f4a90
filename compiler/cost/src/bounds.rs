//! Physical lower bounds that hold in every model, whatever its own analysis
//! of a schedule says. A model may miss traffic (a reduction seen through a
//! contraction view that has no operand B, say); no prediction may beat
//! physics:
//!
//! - every tensor an op touches crosses its *home* level once: the
//!   outermost level for the workload's inputs, weights and outputs, and for
//!   intermediates that no level kept between ops can hold; an intermediate
//!   that fits a cache that persists between ops (cpu caches, a gpu's L2)
//!   may stay there, and crosses that level instead. On a cpu, a workload
//!   whose tensors all fit a cache live there between calls
//!   ([`resident_level`]): its home is that cache;
//! - a level's bytes take at least bytes / (chip-wide bandwidth);
//! - an op takes at least its own speed-of-light bound (work over peak) and,
//!   on a gpu, one kernel launch.
//!
//! [`enforce`] raises a prediction to these bounds (adding the energy of the
//! bytes it adds); [`violations`] lists where a report breaks them (tests and
//! the cost fuzzer use it).
//!
//! Spiking chips keep weights and state on chip and have no such levels;
//! their bound is the floorline's own (`lower_bound_s <= latency_s`).

use crate::evaluate::CostReport;
use crate::report::{LevelTraffic, Predicted};
use arch_sema::hardware::{HardwareModel, HwClass};
use arch_sema::model::{Op, WorkloadModel};
use arch_syntax::ast::Role;

/// Time a gpu needs to start one kernel, back to back on a stream: an
/// estimate (CUDA's documented launch overhead is a few microseconds;
/// repeated launches measured with empty kernels run at about 2-4 us).
pub const GPU_LAUNCH_S: f64 = 2.5e-6;

/// Most threads in one gpu thread block (CUDA: 1024 per block on sm_70 and
/// later, CUDA C++ Programming Guide, compute capabilities table; HIP: 1024
/// work-items per workgroup on CDNA).
pub const GPU_MAX_BLOCK_THREADS: u64 = 1024;

/// Bytes one op must move through one level, with that level's chip-wide
/// bandwidth (B/s) and energy (J/B).
#[derive(Debug, Clone, PartialEq)]
pub struct Compulsory {
    pub level: String,
    pub bytes: f64,
    pub bandwidth: f64,
    pub energy_per_byte: f64,
    /// The outermost level (its time is part of the speed-of-light bound).
    pub outermost: bool,
}

/// What no schedule of one op can beat.
#[derive(Debug, Clone, PartialEq)]
pub struct Floor {
    pub levels: Vec<Compulsory>,
    /// A fixed cost per op (a gpu kernel launch).
    pub fixed_s: f64,
    pub clock_hz: f64,
}

/// Levels (indices into `hw.levels`) that keep data between ops, innermost
/// last: a cpu's caches; a gpu's caches between HBM and shared memory.
/// Scratchpads filled by explicit copies (npu scratchpads, shared memory)
/// start every op empty.
fn persistent_caches(hw: &HardwareModel) -> std::ops::Range<usize> {
    let n = hw.levels.len();
    match hw.class {
        HwClass::Cpu => 1.min(n)..n,
        HwClass::Gpu => 1.min(n)..n.saturating_sub(1).max(1.min(n)),
        HwClass::Npu | HwClass::Neuromorphic => 0..0,
    }
}

/// Bytes a level holds for data that stays there between ops or calls:
/// three quarters of its size (caches are not perfectly LRU, and code and
/// other data compete), one core's share of a per-core level.
fn holds(l: &arch_sema::hardware::Level) -> Option<f64> {
    l.size_bytes.map(|a| a.value.0 * 0.75)
}

/// Where a workload's inputs, weights and outputs live between calls of
/// its library on a cpu (the steady state that repeated calls, a serving
/// loop or a benchmark reach): the innermost cache that holds every tensor
/// of the workload, else the outermost level. On other classes each call
/// starts from the outermost level.
pub fn resident_level(w: &WorkloadModel, hw: &HardwareModel) -> usize {
    resident_level_except(w, hw, &[])
}

/// [`resident_level`] for a workload whose tensors in `never_stored` never
/// reach memory (a row chain's locals, [`crate::fusion`]).
pub fn resident_level_except(
    w: &WorkloadModel,
    hw: &HardwareModel,
    never_stored: &[usize],
) -> usize {
    if hw.class != HwClass::Cpu {
        return 0;
    }
    let footprint = stored_bytes(w, never_stored);
    persistent_caches(hw)
        .rev()
        .find(|&l| holds(&hw.levels[l]).is_some_and(|c| c >= footprint))
        .unwrap_or(0)
}

/// Bytes of every tensor of `w` but those in `never_stored`.
fn stored_bytes(w: &WorkloadModel, never_stored: &[usize]) -> f64 {
    w.tensors
        .iter()
        .enumerate()
        .filter(|(i, _)| !never_stored.contains(i))
        .map(|(_, t)| tensor_bytes(t))
        .sum()
}

/// Bytes `t` takes stored (compressed when sparse), unrounded.
fn tensor_bytes(t: &arch_sema::model::Tensor) -> f64 {
    t.elements() as f64 * t.dtype.bits() as f64 / 8.0 * t.stored_fraction()
}

/// The level each tensor of `w` comes from on a cpu: the workload's
/// resident level ([`resident_level_except`]), or for an intermediate the
/// innermost cache that holds everything the ops from its producer to its
/// last reader touch (it is still there when they read it, and its lines
/// go back to memory while later ops work). Tensors in `never_stored` keep
/// the resident level (they never reach memory at all).
pub fn tensor_homes(w: &WorkloadModel, hw: &HardwareModel, never_stored: &[usize]) -> Vec<usize> {
    let resident = resident_level_except(w, hw, never_stored);
    let mut homes = vec![resident; w.tensors.len()];
    if hw.class != HwClass::Cpu {
        return homes;
    }
    let reads = |o: &Op, t: usize| {
        let mut found = false;
        arch_sema::model::collect_accesses(&o.body, &mut |x, _| found |= x == t);
        found
    };
    for (t, home) in homes.iter_mut().enumerate() {
        if w.tensors[t].role != Role::Intermediate || never_stored.contains(&t) {
            continue;
        }
        let Some(first) = w.ops.iter().position(|o| o.output == t) else {
            continue;
        };
        let Some(last) = w.ops.iter().rposition(|o| reads(o, t)) else {
            continue;
        };
        let mut touched = vec![false; w.tensors.len()];
        for o in &w.ops[first..=last.max(first)] {
            touched[o.output] = true;
            arch_sema::model::collect_accesses(&o.body, &mut |x, _| touched[x] = true);
        }
        let distance: f64 = (0..w.tensors.len())
            .filter(|&x| touched[x] && !never_stored.contains(&x))
            .map(|x| tensor_bytes(&w.tensors[x]))
            .sum();
        let level = persistent_caches(hw)
            .rev()
            .find(|&l| holds(&hw.levels[l]).is_some_and(|c| c >= distance))
            .unwrap_or(0);
        *home = level.max(resident);
    }
    homes
}

/// How full the workload's data keeps the cache it lives in between calls
/// ([`resident_level_except`]): its bytes over the level's size; 0 where
/// it lives in the outermost level.
pub fn resident_fill(w: &WorkloadModel, hw: &HardwareModel, never_stored: &[usize]) -> f64 {
    let level = resident_level_except(w, hw, never_stored);
    match hw.levels.get(level).and_then(|l| l.size_bytes) {
        Some(size) if level > 0 && size.value.0 > 0.0 => {
            stored_bytes(w, never_stored) / size.value.0
        }
        _ => 0.0,
    }
}

/// The floor of `op` (of the stored workload `w`) on `hw`; None for classes
/// without memory levels (spiking chips).
pub fn floor(
    w: &WorkloadModel,
    hw: &HardwareModel,
    op: &Op,
    (on_chip, never_stored): (&[usize], &[usize]),
) -> Option<Floor> {
    if hw.class == HwClass::Neuromorphic || hw.levels.is_empty() {
        return None;
    }
    let full: Vec<u64> = op.vars.iter().map(|v| v.extent).collect();
    let caches = persistent_caches(hw);
    let resident = resident_level_except(w, hw, never_stored);
    let mut per_level = vec![0.0; hw.levels.len()];
    for (t, bytes) in op.tile_bytes(&w.tensors, &full) {
        if on_chip.contains(&t) {
            continue;
        }
        let home = if w.tensors[t].role == Role::Intermediate {
            // The innermost persistent cache that holds all of it.
            caches
                .clone()
                .rev()
                .find(|&l| {
                    hw.levels[l]
                        .size_bytes
                        .is_some_and(|c| hw.for_chip(c) >= bytes)
                })
                .unwrap_or(0)
                .max(resident)
        } else {
            resident
        };
        per_level[home] += bytes;
    }
    let levels = hw
        .levels
        .iter()
        .zip(per_level)
        .enumerate()
        .filter(|(_, (_, bytes))| *bytes > 0.0)
        .filter_map(|(at, (l, bytes))| {
            Some(Compulsory {
                level: l.name.clone(),
                bytes,
                bandwidth: hw.for_chip(l.bandwidth_bytes_per_s?),
                energy_per_byte: l.energy_j_per_byte.map_or(0.0, |a| a.value.0),
                outermost: at == 0,
            })
        })
        .collect();
    Some(Floor {
        levels,
        fixed_s: if hw.class == HwClass::Gpu {
            GPU_LAUNCH_S
        } else {
            0.0
        },
        clock_hz: hw.clock_hz.map_or(1e9, |c| c.0),
    })
}

/// Raises `p` to `floor`: each level carries at least its compulsory bytes
/// (their energy added), the time is at least every level's time, the op's
/// speed-of-light bound and its fixed cost.
pub fn enforce(p: &mut Predicted, floor: &Floor) {
    for c in &floor.levels {
        let at = match p.levels.iter().position(|l| l.name == c.level) {
            Some(i) => i,
            None => {
                p.levels.push(LevelTraffic {
                    name: c.level.clone(),
                    bytes: 0.0,
                    time_s: 0.0,
                });
                p.levels.len() - 1
            }
        };
        let l = &mut p.levels[at];
        if l.bytes < c.bytes {
            p.energy_j += (c.bytes - l.bytes) * c.energy_per_byte;
            l.bytes = c.bytes;
            l.time_s = l.time_s.max(c.bytes / c.bandwidth);
        }
        if c.outermost {
            p.lower_bound_s = p.lower_bound_s.max(c.bytes / c.bandwidth);
        }
    }
    p.lower_bound_s = p.lower_bound_s.max(floor.fixed_s);
    let mut latency = p.latency_s.max(p.lower_bound_s);
    let mut bottleneck = p.bottleneck.clone();
    for l in &p.levels {
        if l.time_s > latency {
            latency = l.time_s;
            bottleneck = l.name.clone();
        }
    }
    if latency > p.latency_s {
        if p.latency_s < floor.fixed_s && latency == floor.fixed_s {
            bottleneck = "launch".into();
        }
        p.latency_s = latency;
        p.bottleneck = bottleneck;
        p.cycles = p.cycles.max((latency * floor.clock_hz).ceil());
    }
    p.utilization = if p.latency_s > 0.0 {
        (p.lower_bound_s / p.latency_s).min(1.0)
    } else {
        1.0
    };
}

/// Where `report` (for the stored workload `w` on `hw` under `schedule`)
/// breaks a bound, one line each; empty when it holds.
pub fn violations(
    w: &WorkloadModel,
    hw: &HardwareModel,
    schedule: &crate::schedule::Schedule,
    report: &CostReport,
) -> Vec<String> {
    let (fused, locals) = crate::fusion::fused_ops(w, hw, schedule);
    let ops: Vec<usize> = schedule.ops.iter().map(|s| s.op).collect();
    let mut out = Vec::new();
    let close = |a: f64, b: f64| a >= b * (1.0 - 1e-9) - 1e-30;
    // Row reductions that share one loop are one kernel: the bounds hold
    // for the loop's time (the sum of theirs), each op's own included.
    let mut loop_s: Vec<f64> = report.ops.iter().map(|r| r.predicted.latency_s).collect();
    // (A neuromorphic report has fewer ops than the schedule; none share.)
    for span in crate::cpu::loops(&fused[..fused.len().min(loop_s.len())]) {
        let total: f64 = loop_s[span.clone()].iter().sum();
        loop_s[span].iter_mut().for_each(|t| *t = total);
    }
    for (((r, &i), fused), &loop_s) in report.ops.iter().zip(&ops).zip(&fused).zip(&loop_s) {
        let p = &r.predicted;
        let name = &r.name;
        if !(p.latency_s.is_finite() && p.latency_s > 0.0) {
            out.push(format!(
                "{name}: latency {} is not a positive time",
                p.latency_s
            ));
        }
        if !(p.energy_j.is_finite() && p.energy_j >= 0.0) {
            out.push(format!(
                "{name}: energy {} is not a positive energy",
                p.energy_j
            ));
        }
        if !close(loop_s, p.lower_bound_s) {
            out.push(format!(
                "{name}: latency {:e} s is below its own bound {:e} s",
                loop_s, p.lower_bound_s
            ));
        }
        for l in &p.levels {
            if !close(loop_s, l.time_s) {
                out.push(format!(
                    "{name}: {} moves {} B in {:e} s, longer than the op's {:e} s",
                    l.name, l.bytes, l.time_s, loop_s
                ));
            }
        }
        let Some(op) = w.ops.get(i) else { continue };
        let Some(f) = floor(w, hw, op, (&fused.on_chip, &locals)) else {
            continue;
        };
        for c in &f.levels {
            let bytes = p
                .levels
                .iter()
                .find(|l| l.name == c.level)
                .map_or(0.0, |l| l.bytes);
            if !close(bytes, c.bytes) {
                out.push(format!(
                    "{name}: {} carries {bytes} B, less than the {} B its tensors must cross there",
                    c.level, c.bytes
                ));
            }
            if !close(loop_s, c.bytes / c.bandwidth) {
                out.push(format!(
                    "{name}: {:e} s is less than {} B over {}'s {:e} B/s",
                    loop_s, c.bytes, c.level, c.bandwidth
                ));
            }
        }
        if !close(p.latency_s, f.fixed_s) {
            out.push(format!(
                "{name}: {:e} s is less than a kernel launch ({:e} s)",
                p.latency_s, f.fixed_s
            ));
        }
        if let Some(threads) = r.mapping.get("threads").and_then(|t| t.parse::<u64>().ok()) {
            if threads == 0 || threads > GPU_MAX_BLOCK_THREADS {
                out.push(format!(
                    "{name}: a block of {threads} threads (at most {GPU_MAX_BLOCK_THREADS})"
                ));
            }
        }
    }
    out
}
