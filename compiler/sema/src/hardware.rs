//! Hardware declarations: fields with units, checked against the schema of
//! their class, `extends` resolved.

use crate::consts::{eval_int, parse_real, unknown_unit};
use crate::db::{clean_item, parse_decl, Db, Decl};
use crate::diag::{did_you_mean, Diagnostic, Label, Location};
use crate::dtype::DType;
use crate::model::Real;
use crate::scope::file_scope;
use crate::units::{parse_unit, Dim};
use arch_syntax::ast::{Hardware, HwBlock, HwEntry, HwItem, HwValue, Item, Name, Span};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HwClass {
    Cpu,
    Gpu,
    Npu,
    Neuromorphic,
}

impl HwClass {
    pub const ALL: [(&'static str, HwClass); 4] = [
        ("cpu", HwClass::Cpu),
        ("gpu", HwClass::Gpu),
        ("npu", HwClass::Npu),
        ("neuromorphic", HwClass::Neuromorphic),
    ];

    pub fn name(self) -> &'static str {
        match self {
            HwClass::Cpu => "cpu",
            HwClass::Gpu => "gpu",
            HwClass::Npu => "npu",
            HwClass::Neuromorphic => "neuromorphic",
        }
    }
}

/// A number in base units; `per_core` when it is given for each core.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Amount {
    pub value: Real,
    pub per_core: bool,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Level {
    pub name: String,
    pub size_bytes: Option<Amount>,
    pub bandwidth_bytes_per_s: Option<Amount>,
    /// The most one core moves through the level (`core_bandwidth`), where
    /// `bandwidth` is the whole chip's and one core alone cannot reach it
    /// (a CPU's memory: one core's outstanding misses limit its stream).
    pub core_bandwidth_bytes_per_s: Option<Amount>,
    pub energy_j_per_byte: Option<Amount>,
    pub latency_s: Option<Amount>,
    pub banks: Option<Amount>,
    pub span: Span,
}

impl Level {
    /// Bytes one tile can use: per-core sizes are whole, shared ones whole too
    /// (a single tile may occupy all of a shared level).
    pub fn capacity_for_tile(&self) -> Option<f64> {
        self.size_bytes.map(|a| a.value.0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ComputeUnit {
    pub name: String,
    /// Operations per cycle by element type.
    pub rates: Vec<(DType, Amount)>,
    pub energy_j_per_op: Option<Amount>,
    /// The N:M pattern the unit skips zeros of (`sparse 2:4`): a weight
    /// pruned to it (or sparser) costs N/M of the dense work.
    pub sparse: Option<(u32, u32)>,
    /// Width of its vector registers (`vector 64 B` for AVX-512).
    pub vector_bytes: Option<Amount>,
    /// What one element of a builtin function costs on this unit, as the
    /// work (flops) its rate would do in the same time (`tanh 52 flop`):
    /// `archc calibrate` times the generated code of each; unset, the cost
    /// models count their own estimates.
    pub builtin_work: Vec<(crate::model::Builtin, Amount)>,
    pub span: Span,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dataflow {
    WeightStationary,
    OutputStationary,
    InputStationary,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SystolicArray {
    pub name: String,
    pub rows: u64,
    pub cols: u64,
    pub dataflow: Dataflow,
    pub in_dtype: DType,
    pub acc_dtype: DType,
    pub energy_j_per_op: Option<Amount>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct NeuroCore {
    pub label: Option<String>,
    pub neurons: Option<u64>,
    pub synapse_memory_bytes: Option<Real>,
    pub kernel_entries: Option<u64>,
    pub fan_in: Option<u64>,
    pub fan_out: Option<u64>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Noc {
    pub kind: String,
    pub rows: u64,
    pub cols: u64,
    pub hop_time_s: Option<Real>,
    pub hop_energy_j: Option<Real>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct NeuroCost {
    pub synop_time_s: Option<Real>,
    pub synop_energy_j: Option<Real>,
    pub update_time_s: Option<Real>,
    pub update_energy_j: Option<Real>,
    pub barrier_time_s: Option<Real>,
    pub spike_energy_j: Option<Real>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HardwareModel {
    pub name: String,
    pub class: HwClass,
    pub base: Option<String>,
    pub vendor: Option<String>,
    /// The instruction set a GPU's code targets (`sm_90`, `gfx942`).
    pub chip: Option<String>,
    pub description: Option<String>,
    pub clock_hz: Option<Real>,
    pub cores: u64,
    /// Outermost (DRAM) first, innermost last.
    pub levels: Vec<Level>,
    pub compute: Vec<ComputeUnit>,
    pub array: Option<SystolicArray>,
    pub neuro_cores: Vec<NeuroCore>,
    pub noc: Option<Noc>,
    pub cost: Option<NeuroCost>,
    pub xcds: Option<u64>,
    pub dispatch: Option<String>,
    pub weight_bits: Vec<u64>,
}

impl HardwareModel {
    pub fn level(&self, name: &str) -> Option<&Level> {
        self.levels.iter().find(|l| l.name == name)
    }

    /// A value for one core (a shared value is split evenly).
    pub fn for_one_core(&self, a: Amount) -> f64 {
        if a.per_core {
            a.value.0
        } else {
            a.value.0 / self.cores.max(1) as f64
        }
    }

    /// A value for the whole chip (a per-core value times the cores).
    pub fn for_chip(&self, a: Amount) -> f64 {
        if a.per_core {
            a.value.0 * self.cores as f64
        } else {
            a.value.0
        }
    }

    /// The compute unit and rate for `dtype`: a unit that has it, else the
    /// first unit and its first rate.
    pub fn compute_rate(&self, dtype: DType) -> Option<(&ComputeUnit, Amount)> {
        let unit = self
            .compute
            .iter()
            .find(|c| c.rates.iter().any(|(d, _)| *d == dtype))
            .or_else(|| self.compute.first())?;
        let rate = unit
            .rates
            .iter()
            .find(|(d, _)| *d == dtype)
            .or_else(|| unit.rates.first())?
            .1;
        Some((unit, rate))
    }

    /// `(name, chip-wide bandwidth in B/s, energy in J/B)` of a level; a level
    /// without a bandwidth never limits, one without an energy costs nothing.
    pub fn level_costs(&self, l: &Level) -> (String, f64, f64) {
        (
            l.name.clone(),
            l.bandwidth_bytes_per_s
                .map_or(f64::INFINITY, |b| self.for_chip(b)),
            l.energy_j_per_byte.map_or(0.0, |e| e.value.0),
        )
    }

    /// The innermost level that has a size: where tiles live by default.
    pub fn innermost_sized_level(&self) -> Option<&Level> {
        self.levels.iter().rev().find(|l| l.size_bytes.is_some())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default, salsa::SalsaValue)]
pub struct HardwareResult<'db> {
    pub model: Option<HardwareModel>,
    pub diagnostics: Vec<Diagnostic<'db>>,
}

/// The semantic model of a hardware declaration.
#[salsa::tracked(returns(ref))]
pub fn hardware_model<'db>(db: &'db dyn Db, decl: Decl<'db>) -> HardwareResult<'db> {
    let Some(Item::Hardware(hw)) = clean_item(db, decl) else {
        return HardwareResult::default();
    };
    let mut checker = HwChecker {
        db,
        decl,
        diags: Vec::new(),
        seen: Vec::new(),
    };
    let model = checker.hardware(hw);
    let ok = checker.diags.is_empty();
    HardwareResult {
        model: if ok { model } else { None },
        diagnostics: checker.diags,
    }
}

struct HwChecker<'db> {
    db: &'db dyn Db,
    decl: Decl<'db>,
    diags: Vec<Diagnostic<'db>>,
    /// `(block, label, key)` given in this declaration, for E0504.
    seen: Vec<(String, String, String, Span)>,
}

pub const LEVEL_KEYS: &[(&str, Dim)] = &[
    ("size", Dim::BYTES),
    ("bandwidth", Dim::BANDWIDTH),
    ("core_bandwidth", Dim::BANDWIDTH),
    ("energy", Dim::ENERGY_PER_BYTE),
    ("latency", Dim::TIME),
    ("banks", Dim::COUNT),
];
const CORE_KEYS: &[(&str, Dim)] = &[
    ("neurons", Dim::COUNT),
    ("synapse_memory", Dim::BYTES),
    ("kernel_entries", Dim::COUNT),
    ("fan_in", Dim::COUNT),
    ("fan_out", Dim::COUNT),
];
const NOC_KEYS: &[(&str, Dim)] = &[("hop_time", Dim::TIME), ("hop_energy", Dim::ENERGY)];
const COST_KEYS: &[(&str, Dim)] = &[
    ("synop_time", Dim::TIME),
    ("synop_energy", Dim::ENERGY),
    ("update_time", Dim::TIME),
    ("update_energy", Dim::ENERGY),
    ("barrier_time", Dim::TIME),
    ("spike_energy", Dim::ENERGY),
];
pub const FIELDS: &[&str] = &[
    "clock",
    "cores",
    "vendor",
    "chip",
    "description",
    "weight_bits",
];
pub const BLOCKS: &[&str] = &[
    "level", "compute", "array", "core", "noc", "cost", "topology",
];

impl<'db> HwChecker<'db> {
    fn loc(&self, span: Span) -> Location<'db> {
        Location::new(self.decl, span)
    }

    fn error(
        &mut self,
        code: &'static str,
        span: Span,
        message: impl Into<String>,
    ) -> &mut Diagnostic<'db> {
        crate::diag::push_error(&mut self.diags, self.decl, code, span, message)
    }

    fn hardware(&mut self, hw: &Hardware) -> Option<HardwareModel> {
        let mut model = match &hw.base {
            Some(base) => {
                let mut m = self.base_model(hw, base)?;
                m.name = hw.name.text.clone();
                m.base = Some(base.text.clone());
                if let Some(class) = &hw.class {
                    let c = self.class(class)?;
                    if c != m.class {
                        self.error(
                            "E0505",
                            class.span,
                            format!(
                                "`{}` is {} but extends `{}`, which is {}",
                                hw.name.text,
                                c.name(),
                                base.text,
                                m.class.name()
                            ),
                        );
                        return None;
                    }
                }
                m
            }
            None => {
                let Some(class) = &hw.class else {
                    self.error("E0502", hw.name.span, format!("hardware `{}` has no class", hw.name.text))
                        .help = Some(format!("write `hardware {} : cpu {{ ... }}` (classes: cpu, gpu, npu, neuromorphic)", hw.name.text));
                    return None;
                };
                let class = self.class(class)?;
                HardwareModel {
                    name: hw.name.text.clone(),
                    class,
                    base: None,
                    vendor: None,
                    chip: None,
                    description: None,
                    clock_hz: None,
                    cores: 1,
                    levels: Vec::new(),
                    compute: Vec::new(),
                    array: None,
                    neuro_cores: Vec::new(),
                    noc: None,
                    cost: None,
                    xcds: None,
                    dispatch: None,
                    weight_bits: Vec::new(),
                }
            }
        };
        for item in &hw.body {
            match item {
                HwItem::Field(e) => {
                    self.field(&mut model, e);
                }
                HwItem::Block(b) => self.block(&mut model, b),
                HwItem::Error(_) => {}
            }
        }
        if self.diags.is_empty() {
            self.required(&model, hw);
        }
        Some(model)
    }

    fn class(&mut self, class: &Name) -> Option<HwClass> {
        match HwClass::ALL.iter().find(|(n, _)| *n == class.text) {
            Some((_, c)) => Some(*c),
            None => {
                let help = did_you_mean(&class.text, HwClass::ALL.iter().map(|(n, _)| *n))
                    .unwrap_or_else(|| "classes: cpu, gpu, npu, neuromorphic".into());
                self.error(
                    "E0501",
                    class.span,
                    format!("unknown hardware class `{}`", class.text),
                )
                .help = Some(help);
                None
            }
        }
    }

    /// The model of the base, after checking that the `extends` chain ends.
    fn base_model(&mut self, hw: &Hardware, base: &Name) -> Option<HardwareModel> {
        let mut chain = vec![hw.name.text.clone()];
        let mut current = (self.decl, base.clone());
        loop {
            let (from, name) = &current;
            let scope = file_scope(self.db, from.file(self.db));
            let Some(decl) = scope.get(&name.text) else {
                let help = did_you_mean(&name.text, scope.names_of_kind(self.db, "hardware"));
                self.error(
                    "E0101",
                    base.span,
                    format!("hardware `{}` is not defined", name.text),
                )
                .help = help.or_else(|| Some(format!("import it: `import std.hw.{}`", name.text)));
                return None;
            };
            if decl.kind(self.db) != "hardware" {
                self.error(
                    "E0105",
                    base.span,
                    format!(
                        "`{}` is {}, not hardware",
                        name.text,
                        crate::diag::kind_phrase(decl.kind(self.db))
                    ),
                );
                return None;
            }
            if chain.contains(&name.text) {
                self.error(
                    "E0505",
                    base.span,
                    format!(
                        "`extends` goes round in a circle: {} -> {}",
                        chain.join(" -> "),
                        name.text
                    ),
                );
                return None;
            }
            chain.push(name.text.clone());
            if chain.len() > 32 {
                self.error(
                    "E0505",
                    base.span,
                    "`extends` chains are limited to 32 levels",
                );
                return None;
            }
            let Item::Hardware(next) = &parse_decl(self.db, decl).item else {
                return None;
            };
            match &next.base {
                Some(b) => current = (decl, b.clone()),
                None => break,
            }
        }
        let scope = file_scope(self.db, self.decl.file(self.db));
        let decl = scope.get(&base.text)?;
        let result = hardware_model(self.db, decl);
        match &result.model {
            Some(m) => Some(m.clone()),
            None => {
                self.error(
                    "E0505",
                    base.span,
                    format!("`{}` has errors of its own", base.text),
                );
                None
            }
        }
    }

    fn duplicate(&mut self, block: &str, label: &str, key: &Name) -> bool {
        if let Some((_, _, _, prev)) = self
            .seen
            .iter()
            .find(|(b, l, k, _)| b == block && l == label && *k == key.text)
        {
            let label = self.loc(*prev);
            self.error("E0504", key.span, format!("`{}` is given twice", key.text))
                .labels
                .push(Label {
                    location: label,
                    message: "first given here".into(),
                });
            return true;
        }
        self.seen.push((
            block.to_string(),
            label.to_string(),
            key.text.clone(),
            key.span,
        ));
        false
    }

    /// Reads a quantity and checks its dimension.
    fn amount(&mut self, key: &Name, value: &HwValue, want: Dim) -> Option<Amount> {
        let HwValue::Quantity {
            number,
            unit,
            per,
            span,
        } = value
        else {
            self.error(
                "E0302",
                value.span(),
                format!("`{}` takes {}", key.text, want.describe()),
            );
            return None;
        };
        let v = match parse_real(number) {
            Ok(v) => v,
            Err(e) => {
                self.error(e.code, e.span, e.message);
                return None;
            }
        };
        let (scale, dim) = match unit {
            None => (1.0, Dim::COUNT),
            Some(u) => match parse_unit(&u.text) {
                Ok(x) => x,
                Err(bad) => {
                    let e = unknown_unit(u.span, &bad);
                    self.error(e.code, e.span, e.message).help = e.help;
                    return None;
                }
            },
        };
        if dim != want {
            let got = if unit.is_none() {
                "a plain number".to_string()
            } else {
                dim.describe()
            };
            self.error(
                "E0302",
                *span,
                format!(
                    "`{}` takes {}, but this is {}",
                    key.text,
                    want.describe(),
                    got
                ),
            );
            return None;
        }
        if v < 0.0 {
            self.error("E0506", *span, format!("`{}` cannot be negative", key.text));
            return None;
        }
        let per_core = match per {
            None => false,
            Some(p)
                if p.text == "core"
                    && !matches!(want, d if d == Dim::BYTES || d == Dim::BANDWIDTH || d == Dim::WORK_PER_CYCLE) =>
            {
                self.error(
                    "E0506",
                    p.span,
                    format!("`{}` is not given per core", key.text),
                )
                .help = Some("`per core` applies to sizes, bandwidths and compute rates".into());
                return None;
            }
            Some(p) if p.text == "core" => true,
            Some(p) => {
                self.error(
                    "E0506",
                    p.span,
                    format!("`per {}`: only `per core` is known", p.text),
                );
                return None;
            }
        };
        Some(Amount {
            value: Real(v * scale),
            per_core,
            span: *span,
        })
    }

    fn count(&mut self, key: &Name, value: &HwValue) -> Option<u64> {
        let a = self.amount(key, value, Dim::COUNT)?;
        if a.value.0.fract() != 0.0 || a.value.0 < 1.0 {
            self.error(
                "E0506",
                a.span,
                format!("`{}` must be a positive whole number", key.text),
            );
            return None;
        }
        Some(a.value.0 as u64)
    }

    fn word<'v>(&mut self, key: &Name, value: &'v HwValue) -> Option<&'v Name> {
        match value {
            HwValue::Word(w) => Some(w),
            other => {
                self.error(
                    "E0506",
                    other.span(),
                    format!("`{}` takes a name", key.text),
                );
                None
            }
        }
    }

    fn unknown_key(&mut self, key: &Name, known: &[&str], context: &str) {
        let help = did_you_mean(&key.text, known.iter().copied())
            .unwrap_or_else(|| format!("{context} takes: {}", known.join(", ")));
        self.error(
            "E0503",
            key.span,
            format!("unknown field `{}` in {context}", key.text),
        )
        .help = Some(help);
    }

    fn field(&mut self, m: &mut HardwareModel, e: &HwEntry) {
        if self.duplicate("", "", &e.key) {
            return;
        }
        match e.key.text.as_str() {
            "clock" => {
                m.clock_hz = self
                    .amount(&e.key, &e.value, Dim::FREQUENCY)
                    .map(|a| a.value)
            }
            "cores" => {
                if let Some(c) = self.count(&e.key, &e.value) {
                    m.cores = c;
                }
            }
            "vendor" | "chip" | "description" => match &e.value {
                HwValue::Str { text, .. } => match e.key.text.as_str() {
                    "vendor" => m.vendor = Some(text.clone()),
                    "chip" => m.chip = Some(text.clone()),
                    _ => m.description = Some(text.clone()),
                },
                other => {
                    self.error(
                        "E0506",
                        other.span(),
                        format!("`{}` takes a string in double quotes", e.key.text),
                    );
                }
            },
            "weight_bits" => match &e.value {
                HwValue::Dims { dims, .. } => {
                    let mut bits = Vec::new();
                    for d in dims {
                        match eval_int(d, &|_| None) {
                            Ok(b) if (1..=32).contains(&b) => bits.push(b as u64),
                            _ => {
                                self.error(
                                    "E0506",
                                    d.span,
                                    "weight widths are whole numbers of bits from 1 to 32",
                                );
                                return;
                            }
                        }
                    }
                    m.weight_bits = bits;
                }
                other => {
                    self.error(
                        "E0506",
                        other.span(),
                        "`weight_bits` takes a list such as `[1, 2, 4, 8]`",
                    );
                }
            },
            _ if BLOCKS.contains(&e.key.text.as_str()) => {
                self.error(
                    "E0506",
                    e.span,
                    format!(
                        "`{}` is a block: `{} NAME {{ ... }}`",
                        e.key.text, e.key.text
                    ),
                );
            }
            _ => {
                let mut known: Vec<&str> = FIELDS.to_vec();
                known.extend(BLOCKS);
                self.unknown_key(&e.key, &known, "hardware");
            }
        }
    }

    fn block(&mut self, m: &mut HardwareModel, b: &HwBlock) {
        let label = b.label.as_ref().map(|l| l.text.clone()).unwrap_or_default();
        let kind = b.kind.text.as_str();
        let allowed: &[HwClass] = match kind {
            "array" => &[HwClass::Npu],
            "core" | "noc" | "cost" => &[HwClass::Neuromorphic],
            "topology" => &[HwClass::Gpu],
            "compute" => &[HwClass::Cpu, HwClass::Gpu, HwClass::Npu],
            _ => &[
                HwClass::Cpu,
                HwClass::Gpu,
                HwClass::Npu,
                HwClass::Neuromorphic,
            ],
        };
        if !allowed.contains(&m.class) {
            let classes: Vec<&str> = allowed.iter().map(|c| c.name()).collect();
            self.error(
                "E0503",
                b.kind.span,
                format!("{} hardware has no `{kind}` block", m.class.name()),
            )
            .help = Some(format!(
                "`{kind}` describes {} hardware",
                classes.join(" or ")
            ));
            return;
        }
        let needs_label = matches!(kind, "level" | "compute" | "array" | "noc");
        if needs_label && b.label.is_none() {
            self.error(
                "E0502",
                b.kind.span,
                format!("`{kind}` needs a name: `{kind} NAME {{ ... }}`"),
            );
            return;
        }
        match kind {
            "level" => {
                let pos = match m.levels.iter().position(|l| l.name == label) {
                    Some(p) => p,
                    None => {
                        m.levels.push(Level {
                            name: label.clone(),
                            size_bytes: None,
                            bandwidth_bytes_per_s: None,
                            core_bandwidth_bytes_per_s: None,
                            energy_j_per_byte: None,
                            latency_s: None,
                            banks: None,
                            span: b.span,
                        });
                        m.levels.len() - 1
                    }
                };
                for e in &b.entries {
                    if self.duplicate(kind, &label, &e.key) {
                        continue;
                    }
                    let Some((_, dim)) = LEVEL_KEYS.iter().find(|(k, _)| *k == e.key.text) else {
                        self.unknown_key(
                            &e.key,
                            &LEVEL_KEYS.iter().map(|(k, _)| *k).collect::<Vec<_>>(),
                            "a level",
                        );
                        continue;
                    };
                    let Some(a) = self.amount(&e.key, &e.value, *dim) else {
                        continue;
                    };
                    let l = &mut m.levels[pos];
                    match e.key.text.as_str() {
                        "size" => l.size_bytes = Some(a),
                        "bandwidth" => l.bandwidth_bytes_per_s = Some(a),
                        "core_bandwidth" => l.core_bandwidth_bytes_per_s = Some(a),
                        "energy" => l.energy_j_per_byte = Some(a),
                        "latency" => l.latency_s = Some(a),
                        _ => l.banks = Some(a),
                    }
                }
            }
            "compute" => {
                let pos = match m.compute.iter().position(|c| c.name == label) {
                    Some(p) => p,
                    None => {
                        m.compute.push(ComputeUnit {
                            name: label.clone(),
                            rates: Vec::new(),
                            energy_j_per_op: None,
                            sparse: None,
                            vector_bytes: None,
                            builtin_work: Vec::new(),
                            span: b.span,
                        });
                        m.compute.len() - 1
                    }
                };
                for e in &b.entries {
                    if self.duplicate(kind, &label, &e.key) {
                        continue;
                    }
                    if e.key.text == "energy" {
                        m.compute[pos].energy_j_per_op =
                            self.amount(&e.key, &e.value, Dim::ENERGY_PER_OP);
                        continue;
                    }
                    if e.key.text == "vector" {
                        m.compute[pos].vector_bytes = self.amount(&e.key, &e.value, Dim::BYTES);
                        continue;
                    }
                    if e.key.text == "sparse" {
                        let ratio = match &e.value {
                            HwValue::Ratio { n, m, .. } => n
                                .text
                                .parse::<u32>()
                                .ok()
                                .zip(m.text.parse::<u32>().ok())
                                .filter(|(n, m)| 0 < *n && n < m && *m <= 64),
                            _ => None,
                        };
                        match ratio {
                            Some(r) => m.compute[pos].sparse = Some(r),
                            None => {
                                self.error(
                                    "E0506",
                                    e.value.span(),
                                    "`sparse` takes an N:M pattern such as `2:4` (0 < N < M <= 64)",
                                );
                            }
                        }
                        continue;
                    }
                    let builtin = crate::model::BUILTINS
                        .iter()
                        .find(|(name, _, arity)| *arity == 1 && *name == e.key.text);
                    if let Some((_, builtin, _)) = builtin {
                        let Some(a) = self.amount(&e.key, &e.value, Dim::WORK) else {
                            continue;
                        };
                        let work = &mut m.compute[pos].builtin_work;
                        work.retain(|(b, _)| b != builtin);
                        work.push((*builtin, a));
                        continue;
                    }
                    let Some(dtype) = DType::from_name(&e.key.text) else {
                        let mut known: Vec<&str> =
                            crate::dtype::ALL_DTYPES.iter().map(|d| d.name()).collect();
                        known.extend(["energy", "sparse", "vector"]);
                        known.extend(
                            crate::model::BUILTINS
                                .iter()
                                .filter(|(_, _, arity)| *arity == 1)
                                .map(|(name, _, _)| *name),
                        );
                        self.unknown_key(&e.key, &known, "a compute unit");
                        continue;
                    };
                    let Some(a) = self.amount(&e.key, &e.value, Dim::WORK_PER_CYCLE) else {
                        continue;
                    };
                    let rates = &mut m.compute[pos].rates;
                    rates.retain(|(d, _)| *d != dtype);
                    rates.push((dtype, a));
                }
            }
            "array" => self.array(m, b, &label),
            "core" => {
                let pos = match m
                    .neuro_cores
                    .iter()
                    .position(|c| c.label.as_deref().unwrap_or("") == label)
                {
                    Some(p) => p,
                    None => {
                        m.neuro_cores.push(NeuroCore {
                            label: b.label.as_ref().map(|l| l.text.clone()),
                            span: b.span,
                            ..NeuroCore::default()
                        });
                        m.neuro_cores.len() - 1
                    }
                };
                for e in &b.entries {
                    if self.duplicate(kind, &label, &e.key) {
                        continue;
                    }
                    let Some((_, dim)) = CORE_KEYS.iter().find(|(k, _)| *k == e.key.text) else {
                        self.unknown_key(
                            &e.key,
                            &CORE_KEYS.iter().map(|(k, _)| *k).collect::<Vec<_>>(),
                            "a core",
                        );
                        continue;
                    };
                    if *dim == Dim::COUNT {
                        let Some(c) = self.count(&e.key, &e.value) else {
                            continue;
                        };
                        let core = &mut m.neuro_cores[pos];
                        match e.key.text.as_str() {
                            "neurons" => core.neurons = Some(c),
                            "kernel_entries" => core.kernel_entries = Some(c),
                            "fan_in" => core.fan_in = Some(c),
                            _ => core.fan_out = Some(c),
                        }
                    } else if let Some(a) = self.amount(&e.key, &e.value, *dim) {
                        m.neuro_cores[pos].synapse_memory_bytes = Some(a.value);
                    }
                }
            }
            "noc" => {
                let Some((rows, cols)) = self.grid(b) else {
                    return;
                };
                let mut noc = m.noc.clone().unwrap_or(Noc {
                    kind: label.clone(),
                    rows,
                    cols,
                    hop_time_s: None,
                    hop_energy_j: None,
                    span: b.span,
                });
                noc.kind = label.clone();
                noc.rows = rows;
                noc.cols = cols;
                for e in &b.entries {
                    if self.duplicate(kind, &label, &e.key) {
                        continue;
                    }
                    let Some((_, dim)) = NOC_KEYS.iter().find(|(k, _)| *k == e.key.text) else {
                        self.unknown_key(
                            &e.key,
                            &NOC_KEYS.iter().map(|(k, _)| *k).collect::<Vec<_>>(),
                            "a noc",
                        );
                        continue;
                    };
                    let Some(a) = self.amount(&e.key, &e.value, *dim) else {
                        continue;
                    };
                    if e.key.text == "hop_time" {
                        noc.hop_time_s = Some(a.value);
                    } else {
                        noc.hop_energy_j = Some(a.value);
                    }
                }
                m.noc = Some(noc);
            }
            "cost" => {
                let mut cost = m.cost.clone().unwrap_or(NeuroCost {
                    span: b.span,
                    ..NeuroCost::default()
                });
                for e in &b.entries {
                    if self.duplicate(kind, &label, &e.key) {
                        continue;
                    }
                    let Some((_, dim)) = COST_KEYS.iter().find(|(k, _)| *k == e.key.text) else {
                        self.unknown_key(
                            &e.key,
                            &COST_KEYS.iter().map(|(k, _)| *k).collect::<Vec<_>>(),
                            "cost",
                        );
                        continue;
                    };
                    let Some(a) = self.amount(&e.key, &e.value, *dim) else {
                        continue;
                    };
                    let slot = match e.key.text.as_str() {
                        "synop_time" => &mut cost.synop_time_s,
                        "synop_energy" => &mut cost.synop_energy_j,
                        "update_time" => &mut cost.update_time_s,
                        "update_energy" => &mut cost.update_energy_j,
                        "barrier_time" => &mut cost.barrier_time_s,
                        _ => &mut cost.spike_energy_j,
                    };
                    *slot = Some(a.value);
                }
                m.cost = Some(cost);
            }
            "topology" => {
                for e in &b.entries {
                    if self.duplicate(kind, &label, &e.key) {
                        continue;
                    }
                    match e.key.text.as_str() {
                        "xcds" => m.xcds = self.count(&e.key, &e.value),
                        "dispatch" => {
                            if let Some(w) = self.word(&e.key, &e.value) {
                                if !matches!(w.text.as_str(), "round_robin" | "linear") {
                                    let span = w.span;
                                    self.error(
                                        "E0506",
                                        span,
                                        format!("unknown dispatch policy `{}`", w.text),
                                    )
                                    .help = Some("policies: round_robin, linear".into());
                                } else {
                                    m.dispatch = Some(w.text.clone());
                                }
                            }
                        }
                        _ => self.unknown_key(&e.key, &["xcds", "dispatch"], "topology"),
                    }
                }
            }
            _ => {
                let mut known: Vec<&str> = BLOCKS.to_vec();
                known.extend(FIELDS);
                self.unknown_key(&b.kind, &known, "hardware");
            }
        }
    }

    fn grid(&mut self, b: &HwBlock) -> Option<(u64, u64)> {
        let dims = match &b.dims {
            Some(d) if d.len() == 2 => d,
            _ => {
                self.error(
                    "E0506",
                    b.kind.span,
                    format!(
                        "`{}` needs its size: `{} {} [ROWS, COLS] {{ ... }}`",
                        b.kind.text,
                        b.kind.text,
                        b.label.as_ref().map_or("NAME", |l| l.text.as_str())
                    ),
                );
                return None;
            }
        };
        let mut out = [0u64; 2];
        for (i, d) in dims.iter().enumerate() {
            match eval_int(d, &|_| None) {
                Ok(v) if (1..=1 << 20).contains(&v) => out[i] = v as u64,
                _ => {
                    self.error(
                        "E0506",
                        d.span,
                        "a grid size is a whole number from 1 to 2^20",
                    );
                    return None;
                }
            }
        }
        Some((out[0], out[1]))
    }

    fn array(&mut self, m: &mut HardwareModel, b: &HwBlock, label: &str) {
        let Some((rows, cols)) = self.grid(b) else {
            return;
        };
        let mut array = m.array.clone().unwrap_or(SystolicArray {
            name: label.to_string(),
            rows,
            cols,
            dataflow: Dataflow::WeightStationary,
            in_dtype: DType::I8,
            acc_dtype: DType::I32,
            energy_j_per_op: None,
            span: b.span,
        });
        array.rows = rows;
        array.cols = cols;
        for e in &b.entries {
            if self.duplicate("array", label, &e.key) {
                continue;
            }
            match e.key.text.as_str() {
                "dataflow" => {
                    let Some(w) = self.word(&e.key, &e.value) else {
                        continue;
                    };
                    array.dataflow = match w.text.as_str() {
                        "weight_stationary" | "ws" => Dataflow::WeightStationary,
                        "output_stationary" | "os" => Dataflow::OutputStationary,
                        "input_stationary" | "is" => Dataflow::InputStationary,
                        other => {
                            let help = did_you_mean(
                                other,
                                ["weight_stationary", "output_stationary", "input_stationary"],
                            );
                            let span = w.span;
                            self.error("E0506", span, format!("unknown dataflow `{other}`")).help =
                                help.or_else(|| Some("dataflows: weight_stationary, output_stationary, input_stationary".into()));
                            continue;
                        }
                    };
                }
                "in_dtype" | "acc_dtype" => {
                    let Some(w) = self.word(&e.key, &e.value) else {
                        continue;
                    };
                    let Some(d) = DType::from_name(&w.text) else {
                        let span = w.span;
                        let help = did_you_mean(
                            &w.text,
                            crate::dtype::ALL_DTYPES.iter().map(|d| d.name()),
                        );
                        self.error("E0401", span, format!("unknown element type `{}`", w.text))
                            .help = help;
                        continue;
                    };
                    if e.key.text == "in_dtype" {
                        array.in_dtype = d;
                    } else {
                        array.acc_dtype = d;
                    }
                }
                "energy" => {
                    array.energy_j_per_op = self.amount(&e.key, &e.value, Dim::ENERGY_PER_OP)
                }
                _ => self.unknown_key(
                    &e.key,
                    &["dataflow", "in_dtype", "acc_dtype", "energy"],
                    "an array",
                ),
            }
        }
        m.array = Some(array);
    }

    /// The fields each class needs; reported on the hardware's name.
    fn required(&mut self, m: &HardwareModel, hw: &Hardware) {
        let mut missing: Vec<String> = Vec::new();
        let needs_clock = m.class != HwClass::Neuromorphic;
        if needs_clock && m.clock_hz.is_none() {
            missing.push("`clock` (e.g. `clock 1.8 GHz`)".into());
        }
        match m.class {
            HwClass::Cpu | HwClass::Gpu | HwClass::Npu => {
                if m.levels.len() < 2 {
                    missing.push("at least two `level` blocks, outermost (DRAM) first".into());
                }
                for (i, l) in m.levels.iter().enumerate() {
                    if l.bandwidth_bytes_per_s.is_none() {
                        missing.push(format!("`bandwidth` in level `{}`", l.name));
                    }
                    if i > 0 && l.size_bytes.is_none() {
                        missing.push(format!("`size` in level `{}`", l.name));
                    }
                }
            }
            HwClass::Neuromorphic => {}
        }
        match m.class {
            HwClass::Cpu | HwClass::Gpu => {
                if m.compute.iter().all(|c| c.rates.is_empty()) {
                    missing.push("a `compute` block with a rate per element type (e.g. `f32: 64 flop/cycle per core`)".into());
                }
            }
            HwClass::Npu => {
                if m.array.is_none() {
                    missing.push("an `array NAME [ROWS, COLS] { ... }` block".into());
                }
            }
            HwClass::Neuromorphic => {
                if m.neuro_cores.is_empty() {
                    missing.push("a `core { neurons ..., synapse_memory ... }` block".into());
                }
                if m.noc.is_none() {
                    missing.push(
                        "a `noc mesh [ROWS, COLS] { hop_time ..., hop_energy ... }` block".into(),
                    );
                }
                match &m.cost {
                    None => missing.push(
                        "a `cost { synop_time ..., update_time ..., barrier_time ... }` block"
                            .into(),
                    ),
                    Some(c) => {
                        for (present, name) in [
                            (c.synop_time_s.is_some(), "synop_time"),
                            (c.synop_energy_j.is_some(), "synop_energy"),
                            (c.update_time_s.is_some(), "update_time"),
                            (c.update_energy_j.is_some(), "update_energy"),
                            (c.barrier_time_s.is_some(), "barrier_time"),
                        ] {
                            if !present {
                                missing.push(format!("`{name}` in `cost`"));
                            }
                        }
                    }
                }
            }
        }
        if let Some(first) = missing.first().cloned() {
            let more = if missing.len() > 1 {
                format!(" (and {} more)", missing.len() - 1)
            } else {
                String::new()
            };
            self.error(
                "E0502",
                hw.name.span,
                format!(
                    "{} hardware `{}` lacks {first}{more}",
                    m.class.name(),
                    hw.name.text
                ),
            )
            .help = Some(format!(
                "{} hardware needs: {}",
                m.class.name(),
                missing.join("; ")
            ));
        }
    }
}
