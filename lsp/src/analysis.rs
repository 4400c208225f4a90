//! What the server answers, computed from a database snapshot: plain
//! functions of `(db, file, offset)` that know the front end and the cost
//! model. Offsets are bytes; `server.rs` converts to and from LSP positions.
//! Every query here may unwind with `salsa::Cancelled` when an edit arrives;
//! the server catches it.

use arch_cost::evaluate::{evaluate, CostReport};
use arch_cost::schedule::initial_schedule_with;
use arch_sema::db::{clean_item, file_decls, Db, Decl, RootDatabase, SourceFile};
use arch_sema::hardware::{hardware_model, HardwareModel, Level};
use arch_sema::mapping::{mapping_model, MappingModel};
use arch_sema::model::{Tensor, WorkloadModel};
use arch_sema::scope::file_scope;
use arch_sema::units::{format_quantity, parse_unit, Dim};
use arch_sema::workload::workload_model;
use arch_syntax::ast::{HwItem, Item, KnobKind, MapStmt, Span, Stmt};
use arch_syntax::lexer::{lex, Tok};

/// A range in a file of the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spot {
    pub path: String,
    pub start: usize,
    pub end: usize,
}

/// The declaration whose text holds byte `offset` (or ends at it).
pub fn decl_at(db: &RootDatabase, file: SourceFile, offset: usize) -> Option<Decl<'_>> {
    file_decls(db, file).iter().copied().find(|d| {
        let start = d.offset(db) as usize;
        let end = start + d.text(db).trim_end().len();
        (start..=end).contains(&offset) && !matches!(d.kind(db), "comment" | "error")
    })
}

/// The identifier at `offset` and its byte range.
fn word(db: &RootDatabase, file: SourceFile, offset: usize) -> Option<(String, usize, usize)> {
    let text = file.text(db);
    let (s, e) = crate::text::word_at(text, offset)?;
    let w = &text[s..e];
    let first = w.as_bytes()[0];
    (!first.is_ascii_digit()).then(|| (w.to_string(), s, e))
}

fn decl_name_spot(db: &RootDatabase, d: Decl<'_>) -> Spot {
    let base = d.offset(db) as usize;
    let span = clean_item(db, d)
        .and_then(|i| i.name().map(|n| n.span))
        .or_else(|| {
            let text = d.text(db);
            let name = d.name(db);
            text.find(name.as_str())
                .map(|i| Span::new(i, i + name.len()))
        })
        .unwrap_or(Span::new(0, 0));
    Spot {
        path: d.file(db).path(db).clone(),
        start: base + span.start as usize,
        end: base + span.end as usize,
    }
}

/// The workload a declaration talks about: itself, or a mapping's.
fn workload_of<'db>(db: &'db RootDatabase, d: Decl<'db>) -> Option<(Decl<'db>, WorkloadModel)> {
    match clean_item(db, d)? {
        Item::Workload(_) => Some((d, workload_model(db, d).model.clone()?)),
        Item::Mapping(m) => {
            let w = file_scope(db, d.file(db)).get(&m.workload.text)?;
            Some((w, workload_model(db, w).model.clone()?))
        }
        _ => None,
    }
}

fn hardware_of<'db>(db: &'db RootDatabase, d: Decl<'db>) -> Option<(Decl<'db>, HardwareModel)> {
    match clean_item(db, d)? {
        Item::Hardware(_) => Some((d, hardware_model(db, d).model.clone()?)),
        Item::Mapping(m) => {
            let h = file_scope(db, d.file(db)).get(&m.hardware.text)?;
            Some((h, hardware_model(db, h).model.clone()?))
        }
        _ => None,
    }
}

// ---------------------------------------------------------------- hover

fn quantity(value: Option<&arch_sema::hardware::Amount>, dim: Dim) -> String {
    value.map_or("-".to_string(), |a| {
        let q = format_quantity(a.value.0, dim);
        if a.per_core {
            format!("{q} per core")
        } else {
            q
        }
    })
}

fn level_markdown(hw: &HardwareModel, l: &Level) -> String {
    format!(
        "**level `{}`** of `{}`\n\n| size | bandwidth | energy | latency |\n|---|---|---|---|\n| {} | {} | {} | {} |",
        l.name,
        hw.name,
        quantity(l.size_bytes.as_ref(), Dim::BYTES),
        quantity(l.bandwidth_bytes_per_s.as_ref(), Dim::BANDWIDTH),
        quantity(l.energy_j_per_byte.as_ref(), Dim::ENERGY_PER_BYTE),
        quantity(l.latency_s.as_ref(), Dim::TIME),
    )
}

fn tensor_markdown(w: &WorkloadModel, t: &Tensor) -> String {
    let shape: Vec<String> = t.shape.iter().map(u64::to_string).collect();
    let mut s = format!(
        "```arch\n{} {}: {}[{}]\n```\n{} elements, {} in `{}`",
        t.role.keyword(),
        t.name,
        t.dtype.name(),
        shape.join(", "),
        t.elements(),
        format_quantity(t.bytes() as f64, Dim::BYTES),
        w.name
    );
    match (&t.sparsity, &t.density) {
        (Some(nm), _) => s.push_str(&format!(
            "; sparsity {}:{} along dimension {}",
            nm.n, nm.m, nm.axis
        )),
        (None, Some(d)) => s.push_str(&format!("; density {}", d.0)),
        (None, None) => s.push_str("; dense"),
    }
    s
}

/// The cost model's prediction for `mapping` (open knobs take the search's
/// first guess, as `archc report` does: no search runs here).
pub fn predict(db: &RootDatabase, mapping: Decl<'_>) -> Option<(MappingModel, CostReport)> {
    let m = mapping_model(db, mapping).model.clone()?;
    let (_, w) = workload_of(db, mapping)?;
    let (_, hw) = hardware_of(db, mapping)?;
    let schedule = initial_schedule_with(&w, &hw, &m, None).ok()?;
    let report = evaluate(&w, &hw, &schedule).ok()?;
    Some((m, report))
}

fn seconds(s: f64) -> String {
    format_quantity(s, Dim::TIME)
}

fn report_markdown(m: &MappingModel, r: &CostReport) -> String {
    let mut s = format!(
        "**mapping `{}`**: `{}` on `{}`\n\npredicted {} and {} (open knobs at the search's first guess; `archc tune` searches)\n\n| op | latency | energy | bottleneck |\n|---|---|---|---|\n",
        m.name,
        m.workload,
        m.hardware,
        seconds(r.total.latency_s),
        format_quantity(r.total.energy_j, Dim::ENERGY)
    );
    for op in &r.ops {
        s.push_str(&format!(
            "| `{}` | {} | {} | {} |\n",
            op.name,
            seconds(op.predicted.latency_s),
            format_quantity(op.predicted.energy_j, Dim::ENERGY),
            op.predicted.bottleneck
        ));
    }
    s
}

/// Mappings of `file` for the workload named `workload`.
fn mappings_for<'db>(db: &'db RootDatabase, file: SourceFile, workload: &str) -> Vec<Decl<'db>> {
    file_decls(db, file)
        .iter()
        .copied()
        .filter(|d| match clean_item(db, *d) {
            Some(Item::Mapping(m)) => m.workload.text == workload,
            _ => false,
        })
        .collect()
}

fn decl_markdown(db: &RootDatabase, d: Decl<'_>) -> String {
    let kind = d.kind(db);
    let mut s = format!("**{kind} `{}`**", d.name(db));
    let doc = d.doc(db);
    if !doc.trim().is_empty() {
        s.push_str(&format!("\n\n{}", doc.trim()));
    }
    match kind {
        "workload" => {
            if let Some(w) = workload_model(db, d).model.as_ref() {
                let params: Vec<String> =
                    w.params.iter().map(|(n, v)| format!("{n} = {v}")).collect();
                s.push_str(&format!(
                    "\n\n{} tensors, {} ops; sizes {}",
                    w.tensors.len(),
                    w.ops.len(),
                    params.join(", ")
                ));
            }
        }
        "hardware" => {
            if let Some(hw) = hardware_model(db, d).model.as_ref() {
                let clock = hw
                    .clock_hz
                    .map_or("-".into(), |c| format_quantity(c.0, Dim::FREQUENCY));
                s.push_str(&format!(
                    "\n\nclass `{}`, {} cores, clock {clock}\n\n| level | size | bandwidth |\n|---|---|---|\n",
                    hw.class.name(),
                    hw.cores
                ));
                for l in &hw.levels {
                    s.push_str(&format!(
                        "| `{}` | {} | {} |\n",
                        l.name,
                        quantity(l.size_bytes.as_ref(), Dim::BYTES),
                        quantity(l.bandwidth_bytes_per_s.as_ref(), Dim::BANDWIDTH)
                    ));
                }
            }
        }
        "mapping" => {
            if let Some((m, r)) = predict(db, d) {
                s = format!("{s}\n\n{}", report_markdown(&m, &r));
            }
        }
        _ => {
            let text = d.text(db);
            let head = text.lines().find(|l| !l.trim_start().starts_with("//"));
            if let Some(h) = head {
                s.push_str(&format!(
                    "\n\n```arch\n{}\n```",
                    h.trim_end_matches('{').trim()
                ));
            }
        }
    }
    s
}

/// A number followed by a unit (`32 KiB`, `1.5 GHz`, `10 GB/s`) touching
/// `offset`: its value in base units.
fn unit_hover(text: &str, offset: usize) -> Option<String> {
    let line_start = text[..offset.min(text.len())]
        .rfind('\n')
        .map_or(0, |i| i + 1);
    let line_end = text[line_start..]
        .find('\n')
        .map_or(text.len(), |i| line_start + i);
    let line = &text[line_start..line_end];
    let (tokens, _) = lex(line);
    let at = offset - line_start;
    for pair in tokens.windows(2) {
        let (num, unit) = (&pair[0], &pair[1]);
        let value = match num.tok {
            Tok::Int(t) | Tok::Float(t) => t.replace('_', "").parse::<f64>().ok(),
            _ => None,
        };
        let Tok::Unit(u) = unit.tok else { continue };
        let (Some(v), Ok((scale, dim))) = (value, parse_unit(u)) else {
            continue;
        };
        if (num.start..=unit.end).contains(&at) {
            return Some(format!(
                "`{} {u}` = {} ({:e} in base units: {})",
                &line[num.start..num.end],
                format_quantity(v * scale, dim),
                v * scale,
                dim.describe()
            ));
        }
    }
    None
}

pub fn hover(db: &RootDatabase, file: SourceFile, offset: usize) -> Option<String> {
    let text = file.text(db);
    if let Some(h) = unit_hover(text, offset) {
        return Some(h);
    }
    let (name, _, _) = word(db, file, offset)?;
    let here = decl_at(db, file, offset);
    if let Some(d) = here {
        if let Some((wd, w)) = workload_of(db, d) {
            if let Some(t) = w.tensors.iter().find(|t| t.name == name) {
                let mut s = tensor_markdown(&w, t);
                // A computed tensor names its op: its predicted cost.
                if w.ops.iter().any(|op| w.tensors[op.output].name == name) {
                    for m in mappings_for(db, wd.file(db), &w.name) {
                        if let Some((mm, r)) = predict(db, m) {
                            if let Some(op) = r.ops.iter().find(|o| o.name == name) {
                                s.push_str(&format!(
                                    "\n\n`{}` on `{}`: {}, {}, bound by {}",
                                    mm.name,
                                    mm.hardware,
                                    seconds(op.predicted.latency_s),
                                    format_quantity(op.predicted.energy_j, Dim::ENERGY),
                                    op.predicted.bottleneck
                                ));
                            }
                        }
                    }
                }
                return Some(s);
            }
            if let Some((_, v)) = w.params.iter().find(|(n, _)| *n == name) {
                return Some(format!("size parameter `{name}` = {v} in `{}`", w.name));
            }
        }
        if let Some((_, hw)) = hardware_of(db, d) {
            if let Some(l) = hw.level(&name) {
                return Some(level_markdown(&hw, l));
            }
        }
        if d.kind(db) == "mapping" && arch_sema::mapping::KNOBS.contains(&name.as_str()) {
            return Some(format!("mapping knob `{name}`: {}", knob_doc(&name)));
        }
    }
    let target = file_scope(db, file).get(&name)?;
    Some(decl_markdown(db, target))
}

pub fn knob_doc(knob: &str) -> &'static str {
    match knob {
        "tile" => "tile sizes of an op's dimensions at a memory level: `tile y at l2 { i: 64, k: auto in 16..256 pow2 }`",
        "order" => "loop order, outermost first: `order i, j, k`",
        "parallel" => "dimensions split over cores: `parallel i over cores`",
        "vectorize" => "the dimension mapped to vector lanes: `vectorize j`",
        "swizzle" => "launch order of GPU thread blocks: `swizzle grouped(m: 8)`",
        "partition" => "neurons of a layer per neuromorphic core: `partition h: 4`",
        "precision" => "stored element type of a tensor: `precision w: auto in {f32, bf16} error <= 1e-3`",
        "sparsity" => "an N:M pattern the hardware skips: `sparsity w: 2:4`",
        "timestep" => "the spiking network's time step: `timestep 1 ms`",
        _ => "",
    }
}

// ------------------------------------------------------- navigation

/// Where the name at `offset` is declared: a tensor or size parameter of the
/// workload in scope, or a declaration in scope (this file, an import, the
/// standard library).
pub fn definition(db: &RootDatabase, file: SourceFile, offset: usize) -> Option<Spot> {
    let (name, _, _) = word(db, file, offset)?;
    if let Some(d) = decl_at(db, file, offset) {
        if let Some(spot) = local_definition(db, d, &name) {
            return Some(spot);
        }
    }
    let target = file_scope(db, file).get(&name)?;
    Some(decl_name_spot(db, target))
}

fn local_definition(db: &RootDatabase, d: Decl<'_>, name: &str) -> Option<Spot> {
    let (wd, _) = workload_of(db, d)?;
    let Some(Item::Workload(w)) = clean_item(db, wd) else {
        return None;
    };
    let base = wd.offset(db) as usize;
    let spot = |span: Span| Spot {
        path: wd.file(db).path(db).clone(),
        start: base + span.start as usize,
        end: base + span.end as usize,
    };
    if let Some(p) = w.params.iter().find(|p| p.name.text == name) {
        return Some(spot(p.name.span));
    }
    w.body.iter().find_map(|s| match s {
        Stmt::Tensor(t) if t.name.text == name => Some(spot(t.name.span)),
        _ => None,
    })
}

/// Every identifier token with `name`'s text in `file` that resolves to
/// the same place as `name` does.
fn uses_in(db: &RootDatabase, file: SourceFile, name: &str, want: &Spot, out: &mut Vec<Spot>) {
    let text = file.text(db);
    let (tokens, _) = lex(text);
    for t in tokens {
        if t.tok != Tok::Ident(name) {
            continue;
        }
        if definition(db, file, t.start).as_ref() == Some(want) {
            out.push(Spot {
                path: file.path(db).clone(),
                start: t.start,
                end: t.end,
            });
        }
    }
}

/// References of the name at `offset` in `files` (the open documents and
/// what they import), the declaration included when asked.
pub fn references(
    db: &RootDatabase,
    file: SourceFile,
    offset: usize,
    files: &[SourceFile],
    include_declaration: bool,
) -> Vec<Spot> {
    let Some((name, _, _)) = word(db, file, offset) else {
        return Vec::new();
    };
    let Some(def) = definition(db, file, offset) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut seen: Vec<SourceFile> = Vec::new();
    for f in files.iter().copied() {
        if seen.contains(&f) {
            continue;
        }
        seen.push(f);
        uses_in(db, f, &name, &def, &mut out);
    }
    if !include_declaration {
        out.retain(|s| *s != def);
    } else if !out.contains(&def) {
        out.insert(0, def);
    }
    out
}

// ------------------------------------------------------- completion

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemKind {
    Keyword,
    Declaration(&'static str),
    Tensor,
    Field,
    Knob,
    Value,
    Unit,
    Type,
}

#[derive(Debug, Clone)]
pub struct Completion {
    pub label: String,
    pub kind: ItemKind,
    pub detail: String,
}

const TOP_KEYWORDS: &[&str] = &["import", "workload", "hardware", "mapping", "op", "neuron"];
const BODY_KEYWORDS: &[&str] = &[
    "input", "weight", "output", "sum", "max", "min", "auto", "in", "pow2", "over", "along",
    "error", "at", "for", "on", "extends", "state", "fire", "reset", "per",
];

/// Names that fit at `offset`: after `tile`/`order`/... in a mapping its
/// values, in a hardware block its fields, else keywords and names in scope.
pub fn completion(db: &RootDatabase, file: SourceFile, offset: usize) -> Vec<Completion> {
    let text = file.text(db);
    let offset = offset.min(text.len());
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let before = text.get(line_start..offset).unwrap_or("");
    let mut out = Vec::new();
    let mut add = |label: &str, kind: ItemKind, detail: &str| {
        if !out.iter().any(|c: &Completion| c.label == label) {
            out.push(Completion {
                label: label.to_string(),
                kind,
                detail: detail.to_string(),
            });
        }
    };
    let here = decl_at(db, file, offset);
    let kind = here.map(|d| d.kind(db));
    let words: Vec<&str> = before
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .collect();
    // Inside a declaration: the innermost block decides.
    match kind {
        Some("mapping") => {
            let first = words.first().copied().unwrap_or("");
            if words.len() <= 1 && !before.contains(':') {
                for k in arch_sema::mapping::KNOBS {
                    add(k, ItemKind::Knob, knob_doc(k));
                }
            }
            if let Some(d) = here {
                if let Some((_, w)) = workload_of(db, d) {
                    for t in &w.tensors {
                        add(
                            &t.name,
                            ItemKind::Tensor,
                            &format!("{} {}", t.role.keyword(), t.dtype.name()),
                        );
                    }
                    for op in &w.ops {
                        for v in &op.vars {
                            add(
                                &v.name,
                                ItemKind::Value,
                                &format!(
                                    "dimension of {} ({})",
                                    w.tensors[op.output].name, v.extent
                                ),
                            );
                        }
                    }
                }
                if let Some((_, hw)) = hardware_of(db, d) {
                    for l in &hw.levels {
                        add(
                            &l.name,
                            ItemKind::Value,
                            &format!("memory level of {}", hw.name),
                        );
                    }
                }
            }
            match first {
                "precision" => {
                    for d in arch_sema::dtype::ALL_DTYPES {
                        add(d.name(), ItemKind::Type, "element type");
                    }
                }
                "parallel" => add("cores", ItemKind::Value, "split over the cores"),
                "swizzle" => {
                    for v in ["row_major", "grouped", "auto"] {
                        add(v, ItemKind::Value, "launch order");
                    }
                }
                _ => {}
            }
            for k in ["auto", "in", "pow2", "at", "over", "error"] {
                add(k, ItemKind::Keyword, "");
            }
        }
        Some("hardware") => {
            for f in arch_sema::hardware::FIELDS {
                add(f, ItemKind::Field, "hardware field");
            }
            for b in arch_sema::hardware::BLOCKS {
                add(b, ItemKind::Field, "hardware block");
            }
            for (k, dim) in arch_sema::hardware::LEVEL_KEYS {
                add(
                    k,
                    ItemKind::Field,
                    &format!("level field ({})", dim.describe()),
                );
            }
            for u in arch_sema::units::unit_names() {
                add(u, ItemKind::Unit, "unit");
            }
        }
        Some(_) => {
            for k in BODY_KEYWORDS {
                add(k, ItemKind::Keyword, "");
            }
            for d in arch_sema::dtype::ALL_DTYPES {
                add(d.name(), ItemKind::Type, "element type");
            }
            if let Some((_, w)) = here.and_then(|d| workload_of(db, d)) {
                for t in &w.tensors {
                    add(
                        &t.name,
                        ItemKind::Tensor,
                        &format!("{} {}", t.role.keyword(), t.dtype.name()),
                    );
                }
                for (p, v) in &w.params {
                    add(p, ItemKind::Value, &format!("size parameter = {v}"));
                }
            }
        }
        None => {
            for k in TOP_KEYWORDS {
                add(k, ItemKind::Keyword, "");
            }
        }
    }
    let scope = file_scope(db, file);
    for (name, decls) in &scope.names {
        if let Some(d) = decls.first() {
            add(name, ItemKind::Declaration(d.kind(db)), d.kind(db));
        }
    }
    // Modules after `import`.
    if before.trim_start().starts_with("import") {
        for (module, _, _) in arch_sema::stdlib::MODULES {
            add(module, ItemKind::Value, "standard library module");
        }
    }
    out
}

// ------------------------------------------------------- symbols, tokens

#[derive(Debug, Clone)]
pub struct Symbol {
    pub name: String,
    pub kind: &'static str,
    pub detail: String,
    pub start: usize,
    pub end: usize,
    pub name_start: usize,
    pub name_end: usize,
    pub children: Vec<Symbol>,
}

pub fn symbols(db: &RootDatabase, file: SourceFile) -> Vec<Symbol> {
    let mut out = Vec::new();
    for d in file_decls(db, file).iter().copied() {
        let kind = d.kind(db);
        if matches!(kind, "import" | "comment" | "error") || d.name(db).is_empty() {
            continue;
        }
        let base = d.offset(db) as usize;
        let name_spot = decl_name_spot(db, d);
        let mut children = Vec::new();
        let child =
            |name: &str, kind: &'static str, detail: String, span: Span, name_span: Span| Symbol {
                name: name.to_string(),
                kind,
                detail,
                start: base + span.start as usize,
                end: base + span.end as usize,
                name_start: base + name_span.start as usize,
                name_end: base + name_span.end as usize,
                children: Vec::new(),
            };
        match clean_item(db, d) {
            Some(Item::Workload(w)) => {
                for s in &w.body {
                    if let Stmt::Tensor(t) = s {
                        children.push(child(
                            &t.name.text,
                            "tensor",
                            format!("{} {}", t.role.keyword(), t.ty.dtype.text),
                            t.span,
                            t.name.span,
                        ));
                    }
                }
            }
            Some(Item::Hardware(h)) => {
                for item in &h.body {
                    if let HwItem::Block(b) = item {
                        let label = b.label.as_ref().unwrap_or(&b.kind);
                        children.push(child(
                            &label.text,
                            "level",
                            b.kind.text.clone(),
                            b.span,
                            label.span,
                        ));
                    }
                }
            }
            _ => {}
        }
        out.push(Symbol {
            name: d.name(db).clone(),
            kind,
            detail: String::new(),
            start: base,
            end: base + d.text(db).trim_end().len(),
            name_start: name_spot.start,
            name_end: name_spot.end,
            children,
        });
    }
    out
}

/// The semantic token types the server announces, in legend order.
pub const TOKEN_TYPES: &[&str] = &[
    "keyword",
    "comment",
    "string",
    "number",
    "type",
    "function",
    "class",
    "namespace",
    "variable",
    "property",
    "operator",
    "enumMember",
];

/// `(start, end, type index)` for every token worth colouring.
pub fn tokens(db: &RootDatabase, file: SourceFile) -> Vec<(usize, usize, u32)> {
    let text = file.text(db);
    let scope = file_scope(db, file);
    let (toks, _) = lex(text);
    let mut out = Vec::with_capacity(toks.len());
    let dtypes: Vec<&str> = arch_sema::dtype::ALL_DTYPES
        .iter()
        .map(|d| d.name())
        .collect();
    for t in toks {
        let ty = match t.tok {
            Tok::LineComment(_) | Tok::BlockComment(_) => 1,
            Tok::Str(_) => 2,
            Tok::Int(_) | Tok::Float(_) => 3,
            Tok::Unit(_) => 11,
            Tok::Ident(name) => {
                if dtypes.contains(&name) {
                    4
                } else {
                    match scope.get(name).map(|d| d.kind(db)) {
                        Some("workload") | Some("op") | Some("neuron") => 5,
                        Some("hardware") => 6,
                        Some("mapping") => 7,
                        _ => 8,
                    }
                }
            }
            ref k if k.starts_item() || is_keyword(k) => 0,
            _ => continue,
        };
        out.push((t.start, t.end, ty));
    }
    out
}

fn is_keyword(t: &Tok<'_>) -> bool {
    matches!(
        t,
        Tok::Import
            | Tok::Workload
            | Tok::Hardware
            | Tok::Mapping
            | Tok::Op
            | Tok::Neuron
            | Tok::For
            | Tok::On
            | Tok::Extends
            | Tok::Input
            | Tok::Weight
            | Tok::Output
            | Tok::Sum
            | Tok::Max
            | Tok::Min
            | Tok::Auto
            | Tok::In
            | Tok::Pow2
            | Tok::Per
            | Tok::Over
            | Tok::Along
            | Tok::ErrorKw
            | Tok::At
            | Tok::State
            | Tok::Fire
            | Tok::Reset
    )
}

// ------------------------------------------------------- cost in the editor

/// An inlay hint: text shown after byte `at`.
#[derive(Debug, Clone, PartialEq)]
pub struct Hint {
    pub at: usize,
    pub label: String,
}

/// For every mapping of `file` whose workload is declared in `file`: each
/// op's predicted latency and bottleneck at the end of the statement that
/// computes it, and the total after the mapping's header.
pub fn inlay_hints(db: &RootDatabase, file: SourceFile) -> Vec<Hint> {
    let mut out = Vec::new();
    for d in file_decls(db, file).iter().copied() {
        if d.kind(db) != "mapping" {
            continue;
        }
        let Some((m, r)) = predict(db, d) else {
            continue;
        };
        let header_end = d.offset(db) as usize + d.text(db).find('{').unwrap_or(0);
        out.push(Hint {
            at: header_end,
            label: format!(
                "{} predicted, {}",
                seconds(r.total.latency_s),
                format_quantity(r.total.energy_j, Dim::ENERGY)
            ),
        });
        let Some((wd, w)) = workload_of(db, d) else {
            continue;
        };
        if wd.file(db) != file {
            continue;
        }
        let base = wd.offset(db) as usize;
        let wtext = wd.text(db);
        for (op, rep) in w.ops.iter().zip(&r.ops) {
            let end = base + op.span.end as usize;
            // Ops expanded from one statement share its span: one hint each
            // line, the last op's.
            let line_end = wtext[..]
                .get(op.span.end as usize..)
                .and_then(|rest| rest.find('\n'))
                .map_or(end, |i| end + i);
            out.retain(|h: &Hint| {
                h.at != line_end || !h.label.starts_with(&format!("{}:", m.name))
            });
            out.push(Hint {
                at: line_end,
                label: format!(
                    "{}: {} ({})",
                    m.name,
                    seconds(rep.predicted.latency_s),
                    rep.predicted.bottleneck
                ),
            });
        }
    }
    out.sort_by_key(|h| h.at);
    out
}

/// The mapping declaration at `offset` if it leaves a knob `auto`: its
/// range, and the models a tune needs (owned, so that no snapshot is held
/// while the search runs).
pub struct PinRequest {
    pub start: usize,
    pub end: usize,
    pub name: String,
    /// The open knob under the cursor, if any: what it decides and the
    /// byte range of its value (`auto in 16..256 pow2`).
    pub knob: Option<(OpenKnob, usize, usize)>,
    pub workload: WorkloadModel,
    pub hardware: HardwareModel,
    pub mapping: MappingModel,
}

pub fn pin_request(db: &RootDatabase, file: SourceFile, offset: usize) -> Option<PinRequest> {
    let d = decl_at(db, file, offset)?;
    let Some(Item::Mapping(m)) = clean_item(db, d) else {
        return None;
    };
    let has_auto = m.body.iter().any(|s| match s {
        MapStmt::Block { entries, .. } => entries.iter().any(|e| is_auto(&e.value.kind)),
        MapStmt::Keyed { value, .. } | MapStmt::Value { value, .. } => is_auto(&value.kind),
        MapStmt::List { .. } | MapStmt::Error(_) => false,
    });
    if !has_auto {
        return None;
    }
    let mapping = mapping_model(db, d).model.clone()?;
    let (_, workload) = workload_of(db, d)?;
    let (_, hardware) = hardware_of(db, d)?;
    let start = d.offset(db) as usize;
    let local = offset.saturating_sub(start);
    let inside = |sp: Span| (sp.start as usize..=sp.end as usize).contains(&local);
    let knob = m.body.iter().find_map(|st| match st {
        MapStmt::Block {
            knob,
            target,
            level: Some(level),
            entries,
            ..
        } if knob.text == "tile" => entries.iter().find_map(|e| {
            (inside(e.span) && is_auto(&e.value.kind)).then(|| {
                let k = OpenKnob::Tile {
                    tensor: target.text.clone(),
                    level: level.text.clone(),
                    dim: e.dim.text.clone(),
                };
                (
                    k,
                    start + e.value.span.start as usize,
                    start + e.value.span.end as usize,
                )
            })
        }),
        MapStmt::Keyed {
            knob,
            target,
            value,
            span,
            ..
        } if knob.text == "precision" && inside(*span) && is_auto(&value.kind) => Some((
            OpenKnob::Precision {
                tensor: target.text.clone(),
            },
            start + value.span.start as usize,
            start + value.span.end as usize,
        )),
        _ => None,
    });
    // Keep the doc comment and the text's trailing blank lines.
    let body_start = d.text(db).find("mapping").unwrap_or(0);
    Some(PinRequest {
        start: start + body_start,
        end: start + d.text(db).trim_end().len(),
        name: m.name.text.clone(),
        knob,
        workload,
        hardware,
        mapping,
    })
}

fn is_auto(k: &KnobKind) -> bool {
    matches!(
        k,
        KnobKind::Auto
            | KnobKind::AutoRange { .. }
            | KnobKind::AutoSet(_)
            | KnobKind::AutoAtMost(_)
    )
}

/// An open knob the "pin" action can fix on its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenKnob {
    /// One size of `tile <tensor> at <level> { <dim>: auto ... }`.
    Tile {
        tensor: String,
        level: String,
        dim: String,
    },
    /// `precision <tensor>: auto in {...}`.
    Precision { tensor: String },
}

/// What the search chose: the whole mapping with every knob pinned, and the
/// value of the knob under the cursor (if it asked about one).
pub struct Pinned {
    pub mapping: String,
    pub knob: Option<String>,
}

/// Tunes `req` (bounded by `budget`), or says why it could not.
pub fn pinned_text(req: &PinRequest, budget: std::time::Duration) -> Result<Pinned, String> {
    let opts = arch_cost::search::SearchOptions {
        seed: 1,
        budget,
        max_evaluations: 20_000,
        progress: None,
        weights: None,
    };
    let (w, hw) = (&req.workload, &req.hardware);
    let outcome =
        arch_cost::search::tune(w, hw, &req.mapping, &opts).map_err(|e| format!("{e:?}"))?;
    let s = &outcome.schedule;
    let mapping = arch_cost::schedule::pinned_mapping(w, hw, &req.name, s);
    let knob = req.knob.as_ref().and_then(|(k, _, _)| match k {
        OpenKnob::Tile { tensor, level, dim } => {
            let t = w.tensor(tensor)?;
            let os = s.ops.iter().find(|os| w.ops[os.op].output == t)?;
            let l = hw.levels.iter().position(|x| x.name == *level)?;
            let v = w.ops[os.op].vars.iter().position(|x| x.name == *dim)?;
            os.nest.tiles.get(l)?.get(v).map(u64::to_string)
        }
        OpenKnob::Precision { tensor } => {
            let t = w.tensor(tensor)?;
            let chosen = s.precision.iter().find(|(x, _)| *x == t).map(|(_, d)| *d);
            Some(chosen.unwrap_or(w.tensors[t].dtype).name().to_string())
        }
    });
    Ok(Pinned {
        mapping: mapping.trim_end().to_string(),
        knob,
    })
}

/// The files a request may need: `file` and those it imports, transitively.
pub fn imported_files(db: &dyn Db, file: SourceFile) -> Vec<SourceFile> {
    let mut out = vec![file];
    let mut i = 0;
    while i < out.len() && out.len() < 1000 {
        let f = out[i];
        i += 1;
        for d in file_decls(db, f) {
            if let Some(Item::Import(imp)) = clean_item(db, *d) {
                let module: Vec<&str> = imp.module.iter().map(|n| n.text.as_str()).collect();
                if let Some(m) = arch_sema::scope::find_module(db, f, &module) {
                    if !out.contains(&m) {
                        out.push(m);
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: &str = "import std.hw.host\n\nworkload w(N = 64) {\n  input a: f32[N, N]\n  output c: f32[N, N]\n  c[i, j] = a[i, j] * 2.0\n}\n\nmapping m for w on host {\n  tile c at l1 { i: auto, j: auto }\n}\n";

    /// A snapshot answering queries is cancelled by an edit to the database
    /// it was cloned from: the edit does not wait for it to finish its work.
    #[test]
    fn an_edit_cancels_the_snapshots_in_flight() {
        let mut db = RootDatabase::default();
        let file = db.set_file("/t/a.arch", SRC.to_string());
        let snapshot = db.clone();
        let (started_tx, started) = std::sync::mpsc::channel();
        let worker = std::thread::spawn(move || {
            let r = salsa::Cancelled::catch(std::panic::AssertUnwindSafe(|| {
                let mut rounds = 0u64;
                loop {
                    let _ = arch_sema::file_diagnostics(&snapshot, file);
                    let _ = hover(&snapshot, file, SRC.find("a[i").unwrap_or(0));
                    rounds += 1;
                    if rounds == 1 {
                        let _ = started_tx.send(());
                    }
                }
            }));
            drop(snapshot);
            r.is_err()
        });
        started.recv().ok();
        // Blocks until the snapshot is dropped, which cancellation brings.
        db.set_file("/t/a.arch", SRC.replace("2.0", "3.0"));
        assert!(worker.join().unwrap_or(false), "the snapshot was cancelled");
        assert!(arch_sema::file_diagnostics(&db, file).is_empty());
    }

    #[test]
    fn hover_and_definition_on_a_small_program() {
        let mut db = RootDatabase::default();
        let file = db.set_file("/t/a.arch", SRC.to_string());
        let at = SRC.find("a[i, j] *").unwrap_or(0);
        let h = hover(&db, file, at).unwrap_or_default();
        assert!(h.contains("input a: f32[64, 64]"), "{h}");
        let d = definition(&db, file, at).expect("a definition");
        assert_eq!(&SRC[d.start..d.end], "a");
        assert_eq!(d.start, SRC.find("a: f32").unwrap_or(0));
        let host = definition(&db, file, SRC.find("on host").unwrap_or(0) + 3).expect("std");
        assert_eq!(host.path, "<std>/hw.arch");
        assert!(inlay_hints(&db, file)
            .iter()
            .any(|h| h.label.starts_with("m: ")));
        let pin = pin_request(&db, file, SRC.find("mapping").unwrap_or(0)).expect("autos left");
        assert!(pin.knob.is_none(), "no knob under the mapping's keyword");
        let text = pinned_text(&pin, std::time::Duration::from_secs(2))
            .expect("tuned")
            .mapping;
        assert!(
            text.starts_with("mapping m for w on host {") && !text.contains("auto"),
            "{text}"
        );
        // On one knob: its value alone.
        let pin = pin_request(&db, file, SRC.find("j: auto").unwrap_or(0)).expect("autos left");
        let (k, a, b) = pin.knob.clone().expect("the knob under the cursor");
        let want = OpenKnob::Tile {
            tensor: "c".into(),
            level: "l1".into(),
            dim: "j".into(),
        };
        assert_eq!(k, want);
        assert_eq!(&SRC[a..b], "auto");
        let value = pinned_text(&pin, std::time::Duration::from_secs(2))
            .expect("tuned")
            .knob;
        assert!(
            value
                .as_deref()
                .and_then(|v| v.parse::<u64>().ok())
                .is_some_and(|n| (1..=64).contains(&n)),
            "{value:?}"
        );
    }
}
