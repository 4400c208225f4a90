//! Mappings: every knob of a (workload, hardware) pair with its domain, the
//! user's choices applied, and the checks that need both sides (dimensions,
//! tensors, levels, capacities).

use crate::consts::{eval_int, eval_quantity};
use crate::db::{clean_item, Db, Decl};
use crate::diag::{did_you_mean, Diagnostic, Label, Location};
use crate::dtype::DType;
use crate::hardware::{hardware_model, HardwareModel, HwClass};
use crate::model::{Op, OpKind, Real, WorkloadModel};
use crate::scope::file_scope;
use crate::units::{format_quantity, Dim};
use crate::workload::workload_model;
use arch_syntax::ast::{Expr, ExprKind, Item, KnobKind, MapStmt, Mapping, Name, Span};

pub const KNOBS: &[&str] = &[
    "tile",
    "order",
    "parallel",
    "vectorize",
    "swizzle",
    "partition",
    "precision",
    "sparsity",
    "timestep",
];

/// What a knob decides.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum KnobTarget {
    /// Tile size of `dim` of the op computing `tensor`, at memory `level`.
    Tile {
        tensor: String,
        level: String,
        dim: String,
    },
    /// Loop order of the op computing `tensor`, outermost first.
    Order { tensor: String },
    /// Dimensions of `tensor`'s op split over cores.
    Parallel { tensor: String },
    /// The dimension of `tensor`'s op mapped to vector lanes.
    Vectorize { tensor: String },
    /// Order in which a GPU launches output tiles.
    Swizzle,
    /// Cores a spiking layer is split over.
    Partition { tensor: String },
    /// Element type `tensor` is stored in.
    Precision { tensor: String },
    /// N:M pattern `tensor` is pruned to.
    Sparsity { tensor: String },
    /// Simulation step of a spiking network.
    Timestep,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum KnobValue {
    Int(i64),
    Name(String),
    Names(Vec<String>),
    Seconds(Real),
    Ratio(u32, u32),
    /// `grouped(m: 8)`.
    Call(String, Vec<(String, i64)>),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Domain {
    Fixed(KnobValue),
    Ints {
        lo: i64,
        hi: i64,
        pow2: bool,
    },
    Set(Vec<KnobValue>),
    /// Any permutation of these names (loop orders).
    Permutations(Vec<String>),
    /// Any subset of these names (parallel dimensions).
    Subsets(Vec<String>),
    /// An error budget for a choice among `Set` precisions.
    Budgeted {
        choices: Vec<KnobValue>,
        max_error: Real,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Knob {
    pub target: KnobTarget,
    pub domain: Domain,
    /// Where the user constrained it; `None` for a default `auto`.
    pub span: Option<Span>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappingModel {
    pub name: String,
    pub workload: String,
    pub hardware: String,
    pub class: HwClass,
    pub knobs: Vec<Knob>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, salsa::SalsaValue)]
pub struct MappingResult<'db> {
    pub model: Option<MappingModel>,
    pub diagnostics: Vec<Diagnostic<'db>>,
}

#[salsa::tracked(returns(ref))]
pub fn mapping_model<'db>(db: &'db dyn Db, decl: Decl<'db>) -> MappingResult<'db> {
    let Some(Item::Mapping(m)) = clean_item(db, decl) else {
        return MappingResult::default();
    };
    let mut c = MapChecker {
        db,
        decl,
        diags: Vec::new(),
    };
    let model = c.mapping(m);
    let ok = c.diags.is_empty();
    MappingResult {
        model: if ok { model } else { None },
        diagnostics: c.diags,
    }
}

/// The mapping every knob `auto`: used for a workload without a mapping for
/// the chosen target.
pub fn default_mapping(name: &str, w: &WorkloadModel, hw: &HardwareModel) -> MappingModel {
    MappingModel {
        name: name.to_string(),
        workload: w.name.clone(),
        hardware: hw.name.clone(),
        class: hw.class,
        knobs: default_knobs(w, hw),
    }
}

fn default_knobs(w: &WorkloadModel, hw: &HardwareModel) -> Vec<Knob> {
    let mut knobs = Vec::new();
    let auto = |target, domain| Knob {
        target,
        domain,
        span: None,
    };
    for op in &w.ops {
        let tensor = w.tensors[op.output].name.clone();
        let names: Vec<String> = op.vars.iter().map(|v| v.name.clone()).collect();
        match &op.kind {
            OpKind::Compute => {
                if hw.class != HwClass::Neuromorphic {
                    for level in hw.levels.iter().skip(1) {
                        for v in &op.vars {
                            knobs.push(auto(
                                KnobTarget::Tile {
                                    tensor: tensor.clone(),
                                    level: level.name.clone(),
                                    dim: v.name.clone(),
                                },
                                Domain::Ints {
                                    lo: 1,
                                    hi: v.extent as i64,
                                    pow2: false,
                                },
                            ));
                        }
                    }
                    knobs.push(auto(
                        KnobTarget::Order {
                            tensor: tensor.clone(),
                        },
                        Domain::Permutations(names.clone()),
                    ));
                    let outputs: Vec<String> = names[..op.output_rank].to_vec();
                    knobs.push(auto(
                        KnobTarget::Parallel {
                            tensor: tensor.clone(),
                        },
                        Domain::Subsets(outputs),
                    ));
                    knobs.push(auto(
                        KnobTarget::Vectorize {
                            tensor: tensor.clone(),
                        },
                        Domain::Set(names.iter().map(|n| KnobValue::Name(n.clone())).collect()),
                    ));
                }
            }
            OpKind::Neuron { .. } => {
                if hw.class == HwClass::Neuromorphic {
                    knobs.push(auto(
                        KnobTarget::Partition { tensor },
                        Domain::Ints {
                            lo: 1,
                            hi: hw.cores as i64,
                            pow2: false,
                        },
                    ));
                }
            }
        }
    }
    if hw.class == HwClass::Gpu {
        let mut choices = vec![KnobValue::Name("row_major".into())];
        for m in [2, 4, 8, 16] {
            choices.push(KnobValue::Call("grouped".into(), vec![("m".into(), m)]));
        }
        if let Some(x) = hw.xcds {
            choices.push(KnobValue::Call(
                "xcd".into(),
                vec![("groups".into(), x as i64)],
            ));
        }
        knobs.push(auto(KnobTarget::Swizzle, Domain::Set(choices)));
    }
    for t in &w.tensors {
        if matches!(t.role, arch_syntax::ast::Role::Weight) {
            let mut choices = vec![KnobValue::Name(t.dtype.name().into())];
            for c in &hw.compute {
                for (d, _) in &c.rates {
                    if !choices.contains(&KnobValue::Name(d.name().into())) {
                        choices.push(KnobValue::Name(d.name().into()));
                    }
                }
            }
            knobs.push(auto(
                KnobTarget::Precision {
                    tensor: t.name.clone(),
                },
                Domain::Set(choices),
            ));
            let sparsity = match t.sparsity {
                Some(s) => Domain::Fixed(KnobValue::Ratio(s.n, s.m)),
                None => Domain::Set(vec![
                    KnobValue::Name("dense".into()),
                    KnobValue::Ratio(2, 4),
                ]),
            };
            knobs.push(auto(
                KnobTarget::Sparsity {
                    tensor: t.name.clone(),
                },
                sparsity,
            ));
        }
    }
    if hw.class == HwClass::Neuromorphic {
        knobs.push(auto(
            KnobTarget::Timestep,
            Domain::Fixed(KnobValue::Seconds(Real(1e-3))),
        ));
    }
    knobs
}

struct MapChecker<'db> {
    db: &'db dyn Db,
    decl: Decl<'db>,
    diags: Vec<Diagnostic<'db>>,
}

impl<'db> MapChecker<'db> {
    fn error(
        &mut self,
        code: &'static str,
        span: Span,
        message: impl Into<String>,
    ) -> &mut Diagnostic<'db> {
        crate::diag::push_error(&mut self.diags, self.decl, code, span, message)
    }

    /// Resolves a name to a declaration of `kind`.
    fn resolve(&mut self, name: &Name, kind: &str) -> Option<Decl<'db>> {
        let scope = file_scope(self.db, self.decl.file(self.db));
        match scope.get(&name.text) {
            Some(d) if d.kind(self.db) == kind => Some(d),
            Some(d) => {
                self.error(
                    "E0105",
                    name.span,
                    format!(
                        "`{}` is {}, not {}",
                        name.text,
                        crate::diag::kind_phrase(d.kind(self.db)),
                        crate::diag::kind_phrase(kind)
                    ),
                );
                None
            }
            None => {
                let mut help = did_you_mean(&name.text, scope.names_of_kind(self.db, kind));
                if help.is_none() && kind == "hardware" {
                    help = Some(format!("import it, e.g. `import std.hw.{}`", name.text));
                }
                self.error(
                    "E0101",
                    name.span,
                    format!("{kind} `{}` is not defined", name.text),
                )
                .help = help;
                None
            }
        }
    }

    fn mapping(&mut self, m: &Mapping) -> Option<MappingModel> {
        let wd = self.resolve(&m.workload, "workload");
        let hd = self.resolve(&m.hardware, "hardware");
        let (wd, hd) = (wd?, hd?);
        // Errors of the workload or hardware are reported there.
        let w = workload_model(self.db, wd).model.as_ref()?;
        let hw = hardware_model(self.db, hd).model.as_ref()?;
        self.memory_fits(m, w, hw);
        let mut knobs = default_knobs(w, hw);
        let mut given: Vec<(String, String, Span)> = Vec::new();
        for stmt in &m.body {
            let one_op_list = one_op_list(stmt);
            let stmt = one_op_list.as_ref().unwrap_or(stmt);
            let Some(knob) = stmt.knob() else { continue };
            if !KNOBS.contains(&knob.text.as_str()) {
                let help = did_you_mean(&knob.text, KNOBS.iter().copied())
                    .unwrap_or_else(|| format!("knobs: {}", KNOBS.join(", ")));
                self.error("E0601", knob.span, format!("unknown knob `{}`", knob.text))
                    .help = Some(help);
                continue;
            }
            let key = match stmt {
                MapStmt::Block { target, level, .. } => {
                    let default = hw.innermost_sized_level().map_or("", |l| l.name.as_str());
                    format!(
                        "{} {}",
                        target.text,
                        level.as_ref().map_or(default, |l| l.text.as_str())
                    )
                }
                MapStmt::Keyed { target, .. } => target.text.clone(),
                MapStmt::List { items, target, .. }
                    if matches!(knob.text.as_str(), "order" | "parallel" | "vectorize") =>
                {
                    let items = items
                        .iter()
                        .map(|i| i.text.as_str())
                        .collect::<Vec<_>>()
                        .join(",");
                    match target {
                        Some(t) => format!("{}: {items}", t.text),
                        None => items,
                    }
                }
                _ => String::new(),
            };
            if let Some((_, _, prev)) = given.iter().find(|(k, t, _)| *k == knob.text && *t == key)
            {
                let label = Location::new(self.decl, *prev);
                self.error(
                    "E0608",
                    knob.span,
                    format!("`{}` is given twice", knob.text),
                )
                .labels
                .push(Label {
                    location: label,
                    message: "first given here".into(),
                });
                continue;
            }
            given.push((knob.text.clone(), key, stmt.span()));
            self.statement(stmt, knob, w, hw, &mut knobs);
        }
        Some(MappingModel {
            name: m.name.text.clone(),
            workload: w.name.clone(),
            hardware: hw.name.clone(),
            class: hw.class,
            knobs,
        })
    }

    /// E0609 when the workload's tensors together exceed the outermost
    /// memory (when the hardware gives its size).
    fn memory_fits(&mut self, m: &Mapping, w: &WorkloadModel, hw: &HardwareModel) {
        let Some(outer) = hw.levels.first() else {
            return;
        };
        let Some(size) = outer.size_bytes else { return };
        let capacity = if size.per_core {
            size.value.0 * hw.cores as f64
        } else {
            size.value.0
        };
        let total: f64 = w.tensors.iter().map(|t| t.bytes() as f64).sum();
        if total > capacity {
            let mut largest: Vec<(&str, u64)> = w
                .tensors
                .iter()
                .map(|t| (t.name.as_str(), t.bytes()))
                .collect();
            largest.sort_by_key(|t| std::cmp::Reverse(t.1));
            let top: Vec<String> = largest
                .iter()
                .take(3)
                .map(|(n, b)| format!("{n} {}", format_quantity(*b as f64, Dim::BYTES)))
                .collect();
            let d = self.error(
                "E0609",
                m.hardware.span,
                format!(
                    "`{}` needs {} of tensors, but `{}` has {} of {}",
                    w.name,
                    format_quantity(total, Dim::BYTES),
                    hw.name,
                    format_quantity(capacity, Dim::BYTES),
                    outer.name
                ),
            );
            d.primary_label = format!("largest: {}", top.join(", "));
            d.help = Some(
                "use smaller sizes (`--set`), a lower precision, or hardware with more memory"
                    .into(),
            );
        }
    }

    fn wrong_form(&mut self, knob: &Name, span: Span, form: &str) {
        self.error(
            "E0607",
            span,
            format!("`{}` is written `{form}`", knob.text),
        );
    }

    fn statement(
        &mut self,
        stmt: &MapStmt,
        knob: &Name,
        w: &WorkloadModel,
        hw: &HardwareModel,
        knobs: &mut Vec<Knob>,
    ) {
        match (knob.text.as_str(), stmt) {
            (
                "tile",
                MapStmt::Block {
                    target,
                    level,
                    entries,
                    span,
                    ..
                },
            ) => {
                let Some(op) = self.computed_op(target, w) else {
                    return;
                };
                let level_name = match level {
                    Some(l) => {
                        if hw.level(&l.text).is_none() {
                            let help =
                                did_you_mean(&l.text, hw.levels.iter().map(|l| l.name.as_str()))
                                    .unwrap_or_else(|| {
                                        format!(
                                            "levels of `{}`: {}",
                                            hw.name,
                                            hw.levels
                                                .iter()
                                                .map(|l| l.name.as_str())
                                                .collect::<Vec<_>>()
                                                .join(", ")
                                        )
                                    });
                            self.error(
                                "E0606",
                                l.span,
                                format!("`{}` has no level `{}`", hw.name, l.text),
                            )
                            .help = Some(help);
                            return;
                        }
                        l.text.clone()
                    }
                    None => match hw.innermost_sized_level() {
                        Some(l) => l.name.clone(),
                        None => {
                            self.error(
                                "E0606",
                                target.span,
                                format!(
                                    "`{}` has no memory level with a size to hold tiles",
                                    hw.name
                                ),
                            );
                            return;
                        }
                    },
                };
                let errors_before = self.diags.len();
                let mut sizes: Vec<(usize, i64, Span)> = Vec::new();
                for e in entries {
                    let Some(v) = op.vars.iter().position(|v| v.name == e.dim.text) else {
                        self.unknown_dim(&e.dim, op, &target.text);
                        continue;
                    };
                    let extent = op.vars[v].extent as i64;
                    let Some((domain, min)) = self.int_knob(&e.value, extent, &e.dim.text) else {
                        continue;
                    };
                    sizes.push((v, min, e.span));
                    let t = KnobTarget::Tile {
                        tensor: target.text.clone(),
                        level: level_name.clone(),
                        dim: e.dim.text.clone(),
                    };
                    set(knobs, t, domain, e.span);
                }
                if self.diags.len() == errors_before {
                    self.capacity(op, w, hw, &level_name, &sizes, *span, &target.text);
                }
            }
            ("tile", other) => self.wrong_form(
                knob,
                other.span(),
                "tile TENSOR [at LEVEL] { DIM: SIZE, ... }",
            ),
            (
                "order" | "parallel" | "vectorize",
                MapStmt::List {
                    items,
                    over,
                    span,
                    target,
                    ..
                },
            ) => {
                if knob.text != "parallel" {
                    if let Some(o) = over {
                        self.error("E0607", o.span, format!("`{}` takes no `over`", knob.text));
                        return;
                    }
                }
                if knob.text == "vectorize" && items.len() != 1 {
                    self.error("E0607", *span, "`vectorize` takes one dimension");
                    return;
                }
                if hw.class == HwClass::Neuromorphic {
                    self.error(
                        "E0607",
                        knob.span,
                        format!("`{}` has no meaning on neuromorphic hardware", knob.text),
                    )
                    .help =
                        Some("spiking layers are mapped with `partition` and `timestep`".into());
                    return;
                }
                for (i, item) in items.iter().enumerate() {
                    if let Some(prev) = items[..i].iter().find(|p| p.text == item.text) {
                        let label = Location::new(self.decl, prev.span);
                        self.error(
                            "E0607",
                            item.span,
                            format!("`{}` is listed twice", item.text),
                        )
                        .labels
                        .push(Label {
                            location: label,
                            message: "first listed here".into(),
                        });
                        return;
                    }
                }
                if let Some(o) = over {
                    if o.text != "cores" {
                        self.error(
                            "E0607",
                            o.span,
                            format!("`parallel` splits over `cores`, not `{}`", o.text),
                        );
                        return;
                    }
                }
                let wanted: Vec<&str> = items.iter().map(|i| i.text.as_str()).collect();
                if let Some(target) = target {
                    // One op's list: its tensor, then each of its dimensions.
                    let Some(op) = self.computed_op(target, w) else {
                        return;
                    };
                    // `parallel T: none`: the op runs on one core (what
                    // `tune --emit-mapping` writes to pin that choice).
                    if knob.text == "parallel"
                        && wanted == ["none"]
                        && !op.vars.iter().any(|v| v.name == "none")
                    {
                        let (t, domain) = list_knob("parallel", target.text.clone(), Vec::new());
                        set(knobs, t, domain, *span);
                        return;
                    }
                    let mut ok = true;
                    for item in items {
                        if !op.vars.iter().any(|v| v.name == item.text) {
                            self.unknown_dim(item, op, &target.text);
                            ok = false;
                        }
                    }
                    if ok {
                        let tensor = target.text.clone();
                        let names: Vec<String> = wanted.iter().map(|s| s.to_string()).collect();
                        let (t, domain) = list_knob(&knob.text, tensor, names);
                        set(knobs, t, domain, *span);
                    }
                    return;
                }
                let ops: Vec<&Op> = w
                    .ops
                    .iter()
                    .filter(|op| matches!(op.kind, OpKind::Compute))
                    .filter(|op| wanted.iter().all(|n| op.vars.iter().any(|v| v.name == *n)))
                    .collect();
                if ops.is_empty() {
                    let missing = wanted
                        .iter()
                        .zip(items)
                        .find(|(n, _)| {
                            !w.ops.iter().any(|op| op.vars.iter().any(|v| v.name == **n))
                        })
                        .map(|(_, item)| item)
                        .unwrap_or(&items[0]);
                    let all: Vec<&str> = w
                        .ops
                        .iter()
                        .flat_map(|op| op.vars.iter().map(|v| v.name.as_str()))
                        .collect();
                    let help =
                        did_you_mean(&missing.text, all.iter().copied()).unwrap_or_else(|| {
                            format!(
                                "dimensions of `{}`'s ops: {}",
                                w.name,
                                dedup(all).join(", ")
                            )
                        });
                    let message = if w
                        .ops
                        .iter()
                        .any(|op| op.vars.iter().any(|v| v.name == missing.text))
                    {
                        format!(
                            "no op of `{}` has all of the dimensions {}",
                            w.name,
                            wanted.join(", ")
                        )
                    } else {
                        format!("no op of `{}` has a dimension `{}`", w.name, missing.text)
                    };
                    self.error("E0603", missing.span, message).help = Some(help);
                    return;
                }
                for op in ops {
                    let tensor = w.tensors[op.output].name.clone();
                    let names: Vec<String> = wanted.iter().map(|s| s.to_string()).collect();
                    let (t, domain) = list_knob(&knob.text, tensor, names);
                    set(knobs, t, domain, *span);
                }
            }
            ("order" | "parallel" | "vectorize", other) => {
                let form = match knob.text.as_str() {
                    "order" => "order DIM, DIM, ...",
                    "parallel" => "parallel DIM, ... over cores",
                    _ => "vectorize DIM",
                };
                self.wrong_form(knob, other.span(), form);
            }
            ("swizzle", _) => self.swizzle(stmt, knob, hw, knobs),
            (
                "partition",
                MapStmt::Keyed {
                    target,
                    value,
                    span,
                    ..
                },
            ) => {
                if hw.class != HwClass::Neuromorphic {
                    self.not_for_class(knob, hw, "neuromorphic");
                    return;
                }
                let Some(t) = w.tensor(&target.text) else {
                    self.unknown_tensor(target, w);
                    return;
                };
                if !w
                    .producer(t)
                    .is_some_and(|op| matches!(op.kind, OpKind::Neuron { .. }))
                {
                    self.error(
                        "E0602",
                        target.span,
                        format!("`{}` is not computed by a neuron model", target.text),
                    )
                    .help = Some(
                        "`partition` splits spiking layers (`h = lif(...)`) over cores".into(),
                    );
                    return;
                }
                let Some((domain, _)) = self.int_knob(value, hw.cores as i64, "cores") else {
                    return;
                };
                set(
                    knobs,
                    KnobTarget::Partition {
                        tensor: target.text.clone(),
                    },
                    domain,
                    *span,
                );
            }
            (
                "precision",
                MapStmt::Keyed {
                    target,
                    value,
                    error_bound,
                    span,
                    ..
                },
            ) => {
                if w.tensor(&target.text).is_none() {
                    self.unknown_tensor(target, w);
                    return;
                }
                let choices: Vec<KnobValue> = match &value.kind {
                    KnobKind::Fixed(e) => match self.dtype_of(e) {
                        Some(d) => vec![KnobValue::Name(d.name().into())],
                        None => return,
                    },
                    KnobKind::AutoSet(set) => {
                        let mut out = Vec::new();
                        for e in set {
                            let Some(d) = self.dtype_of(e) else { return };
                            out.push(KnobValue::Name(d.name().into()));
                        }
                        out
                    }
                    KnobKind::Auto => crate::dtype::ALL_DTYPES
                        .iter()
                        .filter(|d| **d != DType::Spike)
                        .map(|d| KnobValue::Name(d.name().into()))
                        .collect(),
                    _ => {
                        self.error(
                            "E0607",
                            value.span,
                            "`precision` takes an element type, or `auto in {f32, bf16}`",
                        );
                        return;
                    }
                };
                let domain = match error_bound {
                    None if choices.len() == 1 => Domain::Fixed(choices[0].clone()),
                    None => Domain::Set(choices),
                    Some(bound) => match eval_quantity(bound, &|_| None) {
                        Ok(q) if q.dim == Dim::COUNT && q.value > 0.0 => Domain::Budgeted {
                            choices,
                            max_error: Real(q.value),
                        },
                        _ => {
                            self.error(
                                "E0607",
                                bound.span,
                                "an error budget is a positive number, e.g. `error <= 1e-3`",
                            );
                            return;
                        }
                    },
                };
                set(
                    knobs,
                    KnobTarget::Precision {
                        tensor: target.text.clone(),
                    },
                    domain,
                    *span,
                );
            }
            (
                "sparsity",
                MapStmt::Keyed {
                    target,
                    value,
                    span,
                    ..
                },
            ) => {
                let Some(t) = w.tensor(&target.text) else {
                    self.unknown_tensor(target, w);
                    return;
                };
                if w.tensors[t].role != arch_syntax::ast::Role::Weight {
                    self.error(
                        "E0602",
                        target.span,
                        format!("`{}` is not a weight; only weights are pruned", target.text),
                    );
                    return;
                }
                let domain = match &value.kind {
                    KnobKind::Auto => Domain::Set(vec![
                        KnobValue::Name("dense".into()),
                        KnobValue::Ratio(2, 4),
                        KnobValue::Ratio(1, 4),
                    ]),
                    KnobKind::Ratio(n, m) => match (eval_int(n, &|_| None), eval_int(m, &|_| None))
                    {
                        (Ok(n), Ok(m)) if 0 < n && n < m && m <= 64 => {
                            Domain::Fixed(KnobValue::Ratio(n as u32, m as u32))
                        }
                        _ => {
                            self.error(
                                "E0607",
                                value.span,
                                "an N:M pattern keeps N of every M, 0 < N < M <= 64",
                            );
                            return;
                        }
                    },
                    KnobKind::Fixed(Expr {
                        kind: ExprKind::Name(n),
                        ..
                    }) if n.text == "dense" => Domain::Fixed(KnobValue::Name("dense".into())),
                    _ => {
                        self.error(
                            "E0607",
                            value.span,
                            "`sparsity` takes `dense`, a pattern such as `2:4`, or `auto`",
                        );
                        return;
                    }
                };
                set(
                    knobs,
                    KnobTarget::Sparsity {
                        tensor: target.text.clone(),
                    },
                    domain,
                    *span,
                );
            }
            ("partition" | "precision" | "sparsity", other) => {
                self.wrong_form(knob, other.span(), &format!("{} TENSOR: VALUE", knob.text));
            }
            ("timestep", MapStmt::Value { value, span, .. }) => {
                if hw.class != HwClass::Neuromorphic {
                    self.not_for_class(knob, hw, "neuromorphic");
                    return;
                }
                let KnobKind::Fixed(e) = &value.kind else {
                    self.error(
                        "E0607",
                        value.span,
                        "`timestep` takes a time such as `1 ms`",
                    );
                    return;
                };
                match eval_quantity(e, &|_| None) {
                    Ok(q) if q.dim == Dim::TIME && q.value > 0.0 => {
                        set(
                            knobs,
                            KnobTarget::Timestep,
                            Domain::Fixed(KnobValue::Seconds(Real(q.value))),
                            *span,
                        );
                    }
                    Ok(q) if q.dim == Dim::TIME => {
                        self.error("E0607", e.span, "`timestep` must be longer than zero");
                    }
                    Ok(q) => {
                        self.error(
                            "E0302",
                            e.span,
                            format!(
                                "`timestep` takes a positive time, e.g. `1 ms`; this is {}",
                                q.dim.describe()
                            ),
                        );
                    }
                    Err(err) => {
                        self.error(err.code, err.span, err.message).help = err.help;
                    }
                }
            }
            ("timestep", other) => self.wrong_form(knob, other.span(), "timestep TIME"),
            _ => {}
        }
    }

    fn swizzle(&mut self, stmt: &MapStmt, knob: &Name, hw: &HardwareModel, knobs: &mut Vec<Knob>) {
        if hw.class != HwClass::Gpu {
            self.not_for_class(knob, hw, "gpu");
            return;
        }
        let (value, span) = match stmt {
            MapStmt::List {
                items,
                span,
                over: None,
                ..
            } if items.len() == 1 => {
                let n = &items[0];
                if n.text != "row_major" {
                    let help = did_you_mean(&n.text, ["row_major", "grouped", "xcd"]);
                    self.error("E0607", n.span, format!("unknown swizzle `{}`", n.text))
                        .help = help.or_else(|| {
                        Some("swizzles: row_major, grouped(m: 8), xcd(groups: 8), auto".into())
                    });
                    return;
                }
                (Domain::Fixed(KnobValue::Name("row_major".into())), *span)
            }
            MapStmt::Value { value, span, .. } => match &value.kind {
                KnobKind::Auto => return,
                KnobKind::Fixed(Expr {
                    kind: ExprKind::Call { callee, args },
                    ..
                }) => {
                    let param = match callee.text.as_str() {
                        "grouped" => "m",
                        "xcd" if hw.xcds.is_none() => {
                            self.error("E0607", callee.span, format!("`xcd` swizzles need chiplets; `{}` has no `topology {{ xcds N }}`", hw.name))
                                .help = Some("use `grouped(m: 8)` or `row_major`".into());
                            return;
                        }
                        "xcd" => "groups",
                        other => {
                            let help = did_you_mean(other, ["row_major", "grouped", "xcd"]);
                            self.error(
                                "E0607",
                                callee.span,
                                format!("unknown swizzle `{other}`"),
                            )
                            .help = help.or_else(|| {
                                Some(
                                    "swizzles: row_major, grouped(m: 8), xcd(groups: 8), auto"
                                        .into(),
                                )
                            });
                            return;
                        }
                    };
                    let [arg] = args.as_slice() else {
                        self.error(
                            "E0607",
                            value.span,
                            format!(
                                "`{}` takes one argument: `{}({param}: 8)`",
                                callee.text, callee.text
                            ),
                        );
                        return;
                    };
                    if arg.name.as_ref().is_some_and(|n| n.text != param) {
                        self.error(
                            "E0607",
                            arg.span,
                            format!("`{}` takes `{param}`", callee.text),
                        );
                        return;
                    }
                    match eval_int(&arg.value, &|_| None) {
                        Ok(v) if (1..=1024).contains(&v) => (
                            Domain::Fixed(KnobValue::Call(
                                callee.text.clone(),
                                vec![(param.into(), v)],
                            )),
                            *span,
                        ),
                        _ => {
                            self.error(
                                "E0607",
                                arg.value.span,
                                "a group count is a whole number from 1 to 1024",
                            );
                            return;
                        }
                    }
                }
                _ => {
                    self.error(
                        "E0607",
                        value.span,
                        "swizzles: row_major, grouped(m: 8), xcd(groups: 8), auto",
                    );
                    return;
                }
            },
            other => {
                self.wrong_form(
                    knob,
                    other.span(),
                    "swizzle row_major | grouped(m: 8) | xcd(groups: 8) | auto",
                );
                return;
            }
        };
        set(knobs, KnobTarget::Swizzle, value, span);
    }

    fn not_for_class(&mut self, knob: &Name, hw: &HardwareModel, class: &str) {
        self.error(
            "E0607",
            knob.span,
            format!(
                "`{}` applies to {class} targets; `{}` is {}",
                knob.text,
                hw.name,
                hw.class.name()
            ),
        );
    }

    fn dtype_of(&mut self, e: &Expr) -> Option<DType> {
        if let ExprKind::Name(n) = &e.kind {
            if let Some(d) = DType::from_name(&n.text) {
                return Some(d);
            }
            let help = did_you_mean(&n.text, crate::dtype::ALL_DTYPES.iter().map(|d| d.name()));
            self.error(
                "E0401",
                n.span,
                format!("unknown element type `{}`", n.text),
            )
            .help = help;
            return None;
        }
        self.error("E0607", e.span, "expected an element type such as `bf16`");
        None
    }

    /// The op computing `target`.
    fn computed_op<'w>(&mut self, target: &Name, w: &'w WorkloadModel) -> Option<&'w Op> {
        let Some(t) = w.tensor(&target.text) else {
            self.unknown_computed(target, w);
            return None;
        };
        match w.producer(t) {
            Some(op) => Some(op),
            None => {
                let role = w.tensors[t].role.keyword();
                self.error(
                    "E0602",
                    target.span,
                    format!(
                        "`{}` is {}; no op computes it",
                        target.text,
                        crate::diag::article(role)
                    ),
                )
                .help = Some(
                    "name the tensor an op computes (the left-hand side of a statement)".into(),
                );
                None
            }
        }
    }

    fn unknown_tensor(&mut self, target: &Name, w: &WorkloadModel) {
        let names: Vec<&str> = w
            .tensors
            .iter()
            .map(|t| t.name.as_str())
            .filter(|n| !n.contains('.'))
            .collect();
        self.unknown_tensor_among(target, w, names);
    }

    /// E0602 for `tile`: only tensors that an op computes are candidates.
    fn unknown_computed(&mut self, target: &Name, w: &WorkloadModel) {
        let names: Vec<&str> = w
            .ops
            .iter()
            .map(|op| w.tensors[op.output].name.as_str())
            .filter(|n| !n.contains('.'))
            .collect();
        self.unknown_tensor_among(target, w, names);
    }

    fn unknown_tensor_among(&mut self, target: &Name, w: &WorkloadModel, names: Vec<&str>) {
        let help = did_you_mean(&target.text, names.iter().copied())
            .unwrap_or_else(|| format!("tensors of `{}`: {}", w.name, names.join(", ")));
        self.error(
            "E0602",
            target.span,
            format!("`{}` has no tensor `{}`", w.name, target.text),
        )
        .help = Some(help);
    }

    fn unknown_dim(&mut self, dim: &Name, op: &Op, tensor: &str) {
        let names: Vec<&str> = op.vars.iter().map(|v| v.name.as_str()).collect();
        let help = did_you_mean(&dim.text, names.iter().copied()).unwrap_or_else(|| {
            format!(
                "the op computing `{tensor}` has dimensions {}",
                names.join(", ")
            )
        });
        self.error(
            "E0603",
            dim.span,
            format!(
                "the op computing `{tensor}` has no dimension `{}`",
                dim.text
            ),
        )
        .help = Some(help);
    }

    /// An integer knob within `1..=extent`; returns its domain and its
    /// smallest value.
    fn int_knob(
        &mut self,
        k: &arch_syntax::ast::Knob,
        extent: i64,
        what: &str,
    ) -> Option<(Domain, i64)> {
        let value = |me: &mut Self, e: &Expr| -> Option<i64> {
            match eval_int(e, &|_| None) {
                Ok(v) if v >= 1 => Some(v),
                Ok(v) => {
                    me.error(
                        "E0607",
                        e.span,
                        format!("{v} is not a size; sizes start at 1"),
                    );
                    None
                }
                Err(err) => {
                    me.error(err.code, err.span, err.message).help = err.help;
                    None
                }
            }
        };
        let too_big = |me: &mut Self, v: i64, span: Span| {
            me.error(
                "E0604",
                span,
                format!("{v} is larger than `{what}`, which has size {extent}"),
            )
            .help = Some(format!("use at most {extent}"));
        };
        match &k.kind {
            KnobKind::Auto => Some((
                Domain::Ints {
                    lo: 1,
                    hi: extent,
                    pow2: false,
                },
                1,
            )),
            KnobKind::Fixed(e) => {
                let v = value(self, e)?;
                if v > extent {
                    too_big(self, v, e.span);
                    return None;
                }
                Some((Domain::Fixed(KnobValue::Int(v)), v))
            }
            KnobKind::AutoRange { lo, hi, pow2 } => {
                let l = value(self, lo)?;
                let h = value(self, hi)?;
                if l > h {
                    self.error("E0607", k.span, format!("the range {l}..{h} is empty"));
                    return None;
                }
                if l > extent {
                    // Every size the range allows covers the whole
                    // dimension (a smaller problem than the mapping was
                    // written for, as with `--set`): the tile is the
                    // dimension.
                    return Some((
                        Domain::Ints {
                            lo: extent,
                            hi: extent,
                            pow2: false,
                        },
                        extent,
                    ));
                }
                if *pow2 && (l..=h.min(extent)).all(|v| !(v as u64).is_power_of_two()) {
                    self.error(
                        "E0607",
                        k.span,
                        format!("no power of two lies in {l}..{}", h.min(extent)),
                    );
                    return None;
                }
                Some((
                    Domain::Ints {
                        lo: l,
                        hi: h.min(extent),
                        pow2: *pow2,
                    },
                    l,
                ))
            }
            KnobKind::AutoAtMost(e) => {
                let h = value(self, e)?;
                Some((
                    Domain::Ints {
                        lo: 1,
                        hi: h.min(extent),
                        pow2: false,
                    },
                    1,
                ))
            }
            KnobKind::AutoSet(set) => {
                let mut vals = Vec::new();
                for e in set {
                    // A choice past the dimension's size is the whole dimension.
                    let v = value(self, e)?.min(extent);
                    if !vals.contains(&v) {
                        vals.push(v);
                    }
                }
                let min = vals.iter().copied().min().unwrap_or(1);
                Some((
                    Domain::Set(vals.into_iter().map(KnobValue::Int).collect()),
                    min,
                ))
            }
            KnobKind::Ratio(..) => {
                self.error(
                    "E0607",
                    k.span,
                    format!("`{what}` takes a size, not a ratio"),
                );
                None
            }
        }
    }

    /// E0605 when the smallest tile the knobs allow cannot fit the level.
    #[allow(clippy::too_many_arguments)]
    fn capacity(
        &mut self,
        op: &Op,
        w: &WorkloadModel,
        hw: &HardwareModel,
        level: &str,
        sizes: &[(usize, i64, Span)],
        span: Span,
        tensor: &str,
    ) {
        let Some(l) = hw.level(level) else { return };
        let Some(capacity) = l.capacity_for_tile() else {
            return;
        };
        let tile: Vec<u64> = (0..op.vars.len())
            .map(|v| {
                sizes
                    .iter()
                    .find(|(x, _, _)| *x == v)
                    .map_or(1, |(_, s, _)| *s as u64)
            })
            .collect();
        let parts: Vec<(String, f64)> = op
            .tile_bytes(&w.tensors, &tile)
            .into_iter()
            .map(|(t, b)| (w.tensors[t].name.clone(), b))
            .collect();
        let total: f64 = parts.iter().map(|(_, b)| b).sum();
        if total > capacity {
            let per = if l.size_bytes.is_some_and(|s| s.per_core) {
                " per core"
            } else {
                ""
            };
            let breakdown: Vec<String> = parts
                .iter()
                .map(|(n, b)| format!("{n} {}", format_quantity(*b, Dim::BYTES)))
                .collect();
            let d = self.error(
                "E0605",
                span,
                format!(
                    "the tile of `{tensor}` needs {} at `{level}`, which holds {}{per}",
                    format_quantity(total, Dim::BYTES),
                    format_quantity(capacity, Dim::BYTES)
                ),
            );
            d.primary_label = format!(
                "needs {} ({})",
                format_quantity(total, Dim::BYTES),
                breakdown.join(" + ")
            );
            let bigger = hw
                .levels
                .iter()
                .rev()
                .find(|x| x.capacity_for_tile().is_some_and(|c| c >= total))
                .map(|x| x.name.clone());
            d.help = Some(match bigger {
                Some(b) if b != level => format!("shrink the tile, or place it at a larger level: `tile {tensor} at {b} {{ ... }}`"),
                _ => "shrink the tile".into(),
            });
        }
    }
}

/// The knob an `order`, `parallel` or `vectorize` list sets for one op.
fn list_knob(knob: &str, tensor: String, names: Vec<String>) -> (KnobTarget, Domain) {
    match knob {
        "order" => (
            KnobTarget::Order { tensor },
            Domain::Fixed(KnobValue::Names(names)),
        ),
        "parallel" => (
            KnobTarget::Parallel { tensor },
            Domain::Fixed(KnobValue::Names(names)),
        ),
        _ => (
            KnobTarget::Vectorize { tensor },
            Domain::Fixed(KnobValue::Name(names[0].clone())),
        ),
    }
}

/// `order y: n` parses as a keyed knob (one name); it is the one-item list
/// `order y: n, ...` would be.
fn one_op_list(stmt: &MapStmt) -> Option<MapStmt> {
    let MapStmt::Keyed {
        knob,
        target,
        value,
        error_bound: None,
        span,
    } = stmt
    else {
        return None;
    };
    if !matches!(knob.text.as_str(), "order" | "parallel" | "vectorize") {
        return None;
    }
    let KnobKind::Fixed(Expr {
        kind: ExprKind::Name(name),
        ..
    }) = &value.kind
    else {
        return None;
    };
    Some(MapStmt::List {
        knob: knob.clone(),
        target: Some(target.clone()),
        items: vec![name.clone()],
        over: None,
        span: *span,
    })
}

fn set(knobs: &mut Vec<Knob>, target: KnobTarget, domain: Domain, span: Span) {
    match knobs.iter_mut().find(|k| k.target == target) {
        Some(k) => {
            k.domain = domain;
            k.span = Some(span);
        }
        None => knobs.push(Knob {
            target,
            domain,
            span: Some(span),
        }),
    }
}

fn dedup(mut v: Vec<&str>) -> Vec<&str> {
    let mut seen = Vec::new();
    v.retain(|x| {
        if seen.contains(x) {
            false
        } else {
            seen.push(*x);
            true
        }
    });
    v
}
