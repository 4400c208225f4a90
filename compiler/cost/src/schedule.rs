//! Concrete schedules: every knob of a mapping given a value. The initial
//! schedule honours every fixed knob and fills each open one with a feasible
//! first guess (the largest tiles that fit, the natural loop order); the
//! search improves on it.

use crate::cpu::LoopNest;
use arch_sema::dtype::DType;
use arch_sema::hardware::{HardwareModel, HwClass};
use arch_sema::mapping::{Domain, KnobTarget, KnobValue, MappingModel};
use arch_sema::model::{Op, OpKind, WorkloadModel};
use std::collections::BTreeMap;

/// One op's concrete schedule.
#[derive(Debug, Clone, PartialEq)]
pub struct OpSchedule {
    pub op: usize,
    pub nest: LoopNest,
    /// Cores a spiking layer is split over.
    pub partition: Option<u64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    pub ops: Vec<OpSchedule>,
    pub timestep_s: Option<f64>,
    /// The launch order of output tiles (gpu targets).
    pub swizzle: Option<crate::gpu::Swizzle>,
    /// Tensors stored in another element type than declared.
    pub precision: Vec<(usize, DType)>,
    /// Weights stored with another N:M pattern than declared (`None`: dense).
    pub sparsity: Vec<(usize, Option<(u32, u32)>)>,
}

/// Relative error of storing a value in `d` (round to nearest for floats,
/// symmetric max-abs scaling for integers): half a unit in the last place.
/// An estimate: with real weights the measured error can be used instead.
pub fn relative_error(d: DType) -> f64 {
    match d {
        DType::F64 => 1.1e-16,
        DType::F32 => 6.0e-8,
        DType::F16 => 4.9e-4,
        DType::BF16 => 3.9e-3,
        DType::Fp8 => 6.25e-2,
        DType::I32 => 2.3e-10,
        DType::I16 => 1.5e-5,
        DType::I8 | DType::U8 => 3.9e-3,
        DType::I4 => 6.25e-2,
        DType::Spike => 0.5,
    }
}

/// The element type a precision knob settles on: a fixed type as written;
/// with an error budget, the narrowest choice whose error (`error_of`:
/// measured on the weights when given, else [`relative_error`]) stays within it
/// (the declared type when none does); an open choice without a budget keeps
/// the declared type, since nothing says how much error is acceptable.
pub fn choose_precision(
    declared: DType,
    domain: &Domain,
    error_of: &dyn Fn(DType) -> f64,
) -> DType {
    let name_of = |v: &KnobValue| {
        if let KnobValue::Name(n) = v {
            DType::from_name(n)
        } else {
            None
        }
    };
    match domain {
        Domain::Fixed(v) => name_of(v).unwrap_or(declared),
        Domain::Budgeted { choices, max_error } => {
            let mut ok: Vec<DType> = choices
                .iter()
                .filter_map(name_of)
                .filter(|d| *d == declared || error_of(*d) <= max_error.0)
                .collect();
            ok.sort_by_key(|d| d.bits());
            ok.first().copied().unwrap_or(declared)
        }
        _ => declared,
    }
}

/// The workload as the schedule stores it: every precision and sparsity
/// override applied to its tensors. The models cost this workload.
pub fn stored(w: &WorkloadModel, s: &Schedule) -> WorkloadModel {
    let mut out = apply_precision(w, &s.precision);
    for (t, pattern) in &s.sparsity {
        if let Some(tensor) = out.tensors.get_mut(*t) {
            // The axis is kept when there was one; the models do not read it.
            let axis = tensor.sparsity.map_or(0, |s| s.axis);
            tensor.sparsity = pattern.map(|(n, m)| arch_sema::model::NmSparsity { n, m, axis });
        }
    }
    out
}

/// The N:M pattern a sparsity knob pins (`Some(None)`: dense), or `None`
/// when it is open.
pub fn sparsity_of(domain: &Domain) -> Option<Option<(u32, u32)>> {
    match domain {
        Domain::Fixed(KnobValue::Ratio(n, m)) => Some(Some((*n, *m))),
        Domain::Fixed(KnobValue::Name(n)) if n == "dense" => Some(None),
        _ => None,
    }
}

/// The workload with every precision override applied to its tensors.
pub fn apply_precision(w: &WorkloadModel, precision: &[(usize, DType)]) -> WorkloadModel {
    let mut out = w.clone();
    for (t, d) in precision {
        if let Some(tensor) = out.tensors.get_mut(*t) {
            tensor.dtype = *d;
        }
    }
    out
}

/// A swizzle knob value as the gpu model's swizzle.
pub fn swizzle_of(v: &KnobValue) -> Option<crate::gpu::Swizzle> {
    use crate::gpu::Swizzle;
    match v {
        KnobValue::Name(n) if n == "row_major" => Some(Swizzle::RowMajor),
        KnobValue::Call(f, args) => {
            let arg = args.first().map_or(1, |(_, v)| (*v).max(1) as u64);
            match f.as_str() {
                "grouped" => Some(Swizzle::Grouped(arg)),
                "xcd" => Some(Swizzle::Xcd(arg)),
                _ => None,
            }
        }
        _ => None,
    }
}

/// A tile that no choice of the open knobs can fit in its level.
#[derive(Debug, Clone, PartialEq)]
pub struct TileDoesNotFit {
    pub tensor: String,
    pub level: String,
    pub smallest_bytes: f64,
    pub capacity_bytes: f64,
}

impl TileDoesNotFit {
    /// As a diagnostic says it; the blamed knob is any tile of the tensor at
    /// the level (the driver points at the statement that fixed one).
    pub fn explain(&self) -> crate::evaluate::Infeasible {
        use arch_sema::units::{format_quantity, Dim};
        let bytes = |b: f64| format_quantity(b, Dim::BYTES);
        crate::evaluate::Infeasible {
            message: format!(
                "no mapping fits: the smallest tile of `{}` the knobs allow needs {} at `{}`, which holds {} ({} too much)",
                self.tensor,
                bytes(self.smallest_bytes),
                self.level,
                bytes(self.capacity_bytes),
                bytes(self.smallest_bytes - self.capacity_bytes)
            ),
            help: format!(
                "shrink the fixed sizes of `tile {} at {}`, lower a tensor's precision, or tile at a larger level",
                self.tensor, self.level
            ),
            knob: Some(KnobTarget::Tile {
                tensor: self.tensor.clone(),
                level: self.level.clone(),
                dim: String::new(),
            }),
        }
    }
}

/// Values a tile knob may take below a parent tile of size `parent`,
/// ascending.
pub fn tile_choices(domain: Option<&Domain>, parent: u64) -> Vec<u64> {
    let mut out: Vec<u64> = match domain {
        Some(Domain::Fixed(KnobValue::Int(v))) => vec![*v as u64],
        Some(Domain::Set(values)) => values
            .iter()
            .filter_map(|v| {
                if let KnobValue::Int(i) = v {
                    Some(*i as u64)
                } else {
                    None
                }
            })
            .collect(),
        Some(Domain::Ints { lo, hi, pow2 }) => {
            let (lo, hi) = (*lo as u64, (*hi as u64).min(parent));
            let mut v: Vec<u64> = (0..64)
                .map(|s| 1u64 << s)
                .filter(|x| *x >= lo && *x <= hi)
                .collect();
            if !pow2 && hi >= lo {
                v.push(hi);
            }
            v
        }
        _ => {
            let mut v: Vec<u64> = (0..64)
                .map(|s| 1u64 << s)
                .filter(|x| *x <= parent)
                .collect();
            v.push(parent);
            v
        }
    };
    out.retain(|x| *x >= 1 && *x <= parent);
    out.sort_unstable();
    out.dedup();
    if out.is_empty() {
        out.push(parent.max(1));
    }
    out
}

/// Bytes the tiles of every tensor of `op` take with variable tiles `tile`.
pub fn op_footprint(w: &WorkloadModel, op: &Op, tile: &[u64]) -> f64 {
    op.tile_bytes(&w.tensors, tile).iter().map(|(_, b)| b).sum()
}

fn knob<'m>(m: &'m MappingModel, target: &KnobTarget) -> Option<&'m Domain> {
    m.knobs
        .iter()
        .find(|k| &k.target == target)
        .map(|k| &k.domain)
}

/// The first feasible schedule: fixed knobs as given, open tiles as large as
/// fits (shrinking the largest open tile first), the natural loop order.
pub fn initial_schedule(
    w: &WorkloadModel,
    hw: &HardwareModel,
    m: &MappingModel,
) -> Result<Schedule, TileDoesNotFit> {
    initial_schedule_with(w, hw, m, None)
}

/// The quantization error of storing tensor `t` in `d`: measured on the
/// weights file when it holds `t` with `t`'s number of elements, else the
/// half-ulp estimate.
pub fn precision_error(
    t: &arch_sema::model::Tensor,
    d: DType,
    weights: Option<&crate::quantize::Weights>,
) -> (f64, bool) {
    let measured = weights
        .and_then(|ws| ws.tensors.get(&t.name))
        .filter(|(shape, _)| shape.iter().product::<u64>() == t.elements())
        .and_then(|(_, values)| crate::quantize::relative_error(values, d));
    match measured {
        Some(e) => (e, true),
        None => (relative_error(d), false),
    }
}

/// [`initial_schedule`], with budgeted precision choices decided on the
/// errors measured on `weights` where it holds the tensor.
pub fn initial_schedule_with(
    w: &WorkloadModel,
    hw: &HardwareModel,
    m: &MappingModel,
    weights: Option<&crate::quantize::Weights>,
) -> Result<Schedule, TileDoesNotFit> {
    let mut ops = Vec::new();
    for (i, op) in w.ops.iter().enumerate() {
        let tensor = w.tensors[op.output].name.clone();
        let names: Vec<&str> = op.vars.iter().map(|v| v.name.as_str()).collect();
        let index_of = |n: &str| names.iter().position(|x| *x == n);
        let full: Vec<u64> = op.vars.iter().map(|v| v.extent).collect();
        let mut tiles = vec![full];
        for level in hw.levels.iter().skip(1) {
            let parent = tiles.last().cloned().unwrap_or_default();
            let domains: Vec<Option<&Domain>> = names
                .iter()
                .map(|n| {
                    knob(
                        m,
                        &KnobTarget::Tile {
                            tensor: tensor.clone(),
                            level: level.name.clone(),
                            dim: n.to_string(),
                        },
                    )
                })
                .collect();
            let choices: Vec<Vec<u64>> = domains
                .iter()
                .zip(&parent)
                .map(|(d, p)| tile_choices(*d, *p))
                .collect();
            let mut pick: Vec<usize> = choices.iter().map(|c| c.len() - 1).collect();
            let capacity = level.capacity_for_tile().unwrap_or(f64::INFINITY);
            let current = |pick: &[usize]| -> Vec<u64> {
                pick.iter().zip(&choices).map(|(p, c)| c[*p]).collect()
            };
            while op_footprint(w, op, &current(&pick)) > capacity {
                // Shrink the largest tile that still can.
                let tile = current(&pick);
                let Some(v) = (0..pick.len())
                    .filter(|v| pick[*v] > 0)
                    .max_by_key(|v| (tile[*v], usize::MAX - v))
                else {
                    return Err(TileDoesNotFit {
                        tensor,
                        level: level.name.clone(),
                        smallest_bytes: op_footprint(w, op, &tile),
                        capacity_bytes: capacity,
                    });
                };
                pick[v] -= 1;
            }
            tiles.push(current(&pick));
        }
        let order = match knob(
            m,
            &KnobTarget::Order {
                tensor: tensor.clone(),
            },
        ) {
            Some(Domain::Fixed(KnobValue::Names(list))) => {
                let mut order: Vec<usize> = list.iter().filter_map(|n| index_of(n)).collect();
                let rest: Vec<usize> = (0..names.len()).filter(|v| !order.contains(v)).collect();
                order.extend(rest);
                order
            }
            _ => (0..names.len()).collect(),
        };
        let parallel = match knob(
            m,
            &KnobTarget::Parallel {
                tensor: tensor.clone(),
            },
        ) {
            Some(Domain::Fixed(KnobValue::Names(list))) => {
                list.iter().filter_map(|n| index_of(n)).collect()
            }
            _ => (0..op.output_rank)
                .find(|v| {
                    tiles
                        .get(1)
                        .is_some_and(|t| op.vars[*v].extent / t[*v].max(1) >= hw.cores)
                })
                .into_iter()
                .collect(),
        };
        let vector = match knob(
            m,
            &KnobTarget::Vectorize {
                tensor: tensor.clone(),
            },
        ) {
            Some(Domain::Fixed(KnobValue::Name(n))) => index_of(n),
            _ => op.output_rank.checked_sub(1),
        };
        let partition = match (&op.kind, hw.class) {
            (OpKind::Neuron { .. }, HwClass::Neuromorphic) => {
                match knob(m, &KnobTarget::Partition { tensor }) {
                    Some(Domain::Fixed(KnobValue::Int(n))) => Some(*n as u64),
                    _ => None,
                }
            }
            _ => None,
        };
        ops.push(OpSchedule {
            op: i,
            nest: LoopNest {
                tiles,
                order,
                parallel,
                vector,
            },
            partition,
        });
    }
    let timestep_s = match knob(m, &KnobTarget::Timestep) {
        Some(Domain::Fixed(KnobValue::Seconds(s))) => Some(s.0),
        _ => None,
    };
    let swizzle = match knob(m, &KnobTarget::Swizzle) {
        Some(Domain::Fixed(v)) => swizzle_of(v),
        _ if hw.class == HwClass::Gpu => Some(crate::gpu::Swizzle::RowMajor),
        _ => None,
    };
    let precision = per_tensor(
        w,
        m,
        |tensor| KnobTarget::Precision { tensor },
        |t, domain| {
            let d = choose_precision(t.dtype, domain, &|d| precision_error(t, d, weights).0);
            (d != t.dtype).then_some(d)
        },
    );
    // Pinned patterns that differ from the declaration; open ones keep it
    // until the search (pruning changes the numbers, so only an explicit
    // `sparsity w: auto` lets the tuner choose).
    let sparsity = per_tensor(
        w,
        m,
        |tensor| KnobTarget::Sparsity { tensor },
        |t, domain| {
            let pattern = sparsity_of(domain)?;
            (pattern != t.sparsity.map(|s| (s.n, s.m))).then_some(pattern)
        },
    );
    Ok(Schedule {
        ops,
        timestep_s,
        swizzle,
        precision,
        sparsity,
    })
}

/// `(tensor, value)` for every tensor whose knob `target(name)` the mapping
/// has and `pick` settles on a value for.
fn per_tensor<T>(
    w: &WorkloadModel,
    m: &MappingModel,
    target: impl Fn(String) -> KnobTarget,
    pick: impl Fn(&arch_sema::model::Tensor, &Domain) -> Option<T>,
) -> Vec<(usize, T)> {
    w.tensors
        .iter()
        .enumerate()
        .filter_map(|(i, t)| Some((i, pick(t, knob(m, &target(t.name.clone()))?)?)))
        .collect()
}

/// The knob values of one op's schedule as report entries.
pub fn describe(w: &WorkloadModel, hw: &HardwareModel, s: &OpSchedule) -> BTreeMap<String, String> {
    let op = &w.ops[s.op];
    let name = |v: usize| op.vars[v].name.clone();
    let mut out = BTreeMap::new();
    for (l, level) in hw.levels.iter().enumerate().skip(1) {
        if let Some(tile) = s.nest.tiles.get(l) {
            let entries: Vec<String> = tile
                .iter()
                .enumerate()
                .map(|(v, t)| format!("{}: {t}", name(v)))
                .collect();
            out.insert(format!("tile.{}", level.name), entries.join(", "));
        }
    }
    if !matches!(hw.class, HwClass::Neuromorphic | HwClass::Gpu) {
        out.insert(
            "order".into(),
            s.nest
                .order
                .iter()
                .map(|v| name(*v))
                .collect::<Vec<_>>()
                .join(", "),
        );
        out.insert(
            "parallel".into(),
            s.nest
                .parallel
                .iter()
                .map(|v| name(*v))
                .collect::<Vec<_>>()
                .join(", "),
        );
        if let Some(v) = s.nest.vector {
            out.insert("vectorize".into(), name(v));
        }
    }
    if let Some(p) = s.partition {
        out.insert("partition".into(), p.to_string());
    }
    let mut touched = op.inputs();
    touched.push(op.output);
    for t in touched {
        out.insert(
            format!("precision.{}", w.tensors[t].name),
            w.tensors[t].dtype.name().to_string(),
        );
        if let Some(sp) = w.tensors[t].sparsity {
            out.insert(
                format!("sparsity.{}", w.tensors[t].name),
                format!("{}:{}", sp.n, sp.m),
            );
        }
    }
    out
}

fn quoted(name: &str) -> String {
    if name.contains('.') {
        format!("\"{name}\"")
    } else {
        name.to_string()
    }
}

/// `schedule` as a mapping declaration named `name` with every knob pinned
/// (what `archc tune --emit-mapping` writes and the language server's "pin"
/// action inserts).
pub fn pinned_mapping(w: &WorkloadModel, hw: &HardwareModel, name: &str, s: &Schedule) -> String {
    let mut text = String::new();
    text.push_str(&format!(
        "mapping {name} for {} on {} {{\n",
        w.name, hw.name
    ));
    for os in &s.ops {
        let op = &w.ops[os.op];
        let tensor = &quoted(&w.tensors[op.output].name);
        match (&op.kind, hw.class) {
            (OpKind::Neuron { .. }, HwClass::Neuromorphic) => {
                if let Some(p) = os.partition {
                    text.push_str(&format!("  partition {tensor}: {p}\n"));
                }
            }
            (_, HwClass::Neuromorphic) => {}
            _ => {
                for (l, level) in hw.levels.iter().enumerate().skip(1) {
                    let entries: Vec<String> = op
                        .vars
                        .iter()
                        .enumerate()
                        .map(|(v, var)| format!("{}: {}", var.name, os.nest.tiles[l][v]))
                        .collect();
                    text.push_str(&format!(
                        "  tile {tensor} at {} {{ {} }}\n",
                        level.name,
                        entries.join(", ")
                    ));
                }
                // Each op's own loop order, parallel and vector dimensions
                // (`order y: ...`): ops may share dimension names. The gpu
                // model does not read them.
                if hw.class != HwClass::Gpu {
                    let names = |vars: &[usize]| {
                        vars.iter()
                            .map(|v| op.vars[*v].name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    };
                    text.push_str(&format!("  order {tensor}: {}\n", names(&os.nest.order)));
                    if os.nest.parallel.is_empty() {
                        text.push_str(&format!("  parallel {tensor}: none\n"));
                    } else {
                        text.push_str(&format!(
                            "  parallel {tensor}: {} over cores\n",
                            names(&os.nest.parallel)
                        ));
                    }
                    if let Some(v) = os.nest.vector {
                        text.push_str(&format!("  vectorize {tensor}: {}\n", op.vars[v].name));
                    }
                }
            }
        }
    }
    for (t, d) in &s.precision {
        text.push_str(&format!(
            "  precision {}: {}\n",
            quoted(&w.tensors[*t].name),
            d.name()
        ));
    }
    for (t, pattern) in &s.sparsity {
        let value = pattern.map_or("dense".to_string(), |(n, m)| format!("{n}:{m}"));
        text.push_str(&format!(
            "  sparsity {}: {value}\n",
            quoted(&w.tensors[*t].name)
        ));
    }
    if hw.class == HwClass::Gpu {
        if let Some(sw) = s.swizzle {
            text.push_str(&format!("  swizzle {}\n", sw.describe()));
        }
    }
    if let Some(t) = s.timestep_s {
        text.push_str(&format!("  timestep {} ms\n", t * 1e3));
    }
    text.push_str("}\n");
    text
}
