//! `archc tune` and `archc report`: pick the mapping for a target, run the
//! cost model (and the search), print the report, emit a pinned mapping.

use crate::cli::{
    color_enabled, diagnostics_for, load, report as report_diagnostics, unknown_overrides, Common,
    Format,
};
use crate::render::{Place, Rendered};
use crate::{EXIT_DIAGNOSTICS, EXIT_OK, EXIT_USAGE};
use arch_cost::evaluate::{evaluate, CostReport};
use arch_cost::schedule::{initial_schedule_with, precision_error, Schedule};
use arch_cost::search::{tune as search, SearchOptions, TuneError};
use arch_sema::db::{file_decls, RootDatabase};
use arch_sema::hardware::{hardware_model, HardwareModel};
use arch_sema::mapping::{default_mapping, mapping_model, KnobTarget, MappingModel};
use arch_sema::model::WorkloadModel;
use arch_sema::workload::workload_model;
use clap::{Args, ValueEnum};
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// What to cost: a file, a target and, when needed, a workload.
#[derive(Args, Debug)]
pub struct Selection {
    /// The .arch file.
    #[arg(value_name = "FILE")]
    pub(crate) file: PathBuf,
    /// The hardware (declared in or imported by FILE, in a --hardware file, or any of std.hw).
    #[arg(long, value_name = "HW")]
    target: String,
    /// More hardware descriptions to pick --target from, such as the one
    /// `archc calibrate` writes (repeatable).
    #[arg(long = "hardware", value_name = "FILE.arch")]
    hardware_files: Vec<PathBuf>,
    /// The workload, when FILE has several.
    #[arg(long, value_name = "NAME")]
    workload: Option<String>,
    /// Use std.hw.host's published numbers for `--target host` instead of
    /// this machine's calibration (also `ARCHC_CALIBRATION=off`).
    #[arg(long)]
    uncalibrated: bool,
    /// Real weights (.safetensors): a `precision w: auto in {...} error <= E`
    /// knob measures each choice's error on the tensor named `w` instead of
    /// estimating it.
    #[arg(long, value_name = "FILE.safetensors")]
    weights: Option<PathBuf>,
}

/// How the search fills open knobs; `tune`, `report`, `build` and `run`
/// share these flags and their defaults, so the four agree on a schedule.
#[derive(Args, Debug, Clone)]
pub struct TuneKnobs {
    /// Wall-clock limit of the search for open knobs, e.g. `10s`.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub(crate) budget: Duration,
    /// Seed of the search.
    #[arg(long, default_value_t = 1)]
    pub(crate) seed: u64,
    /// Evaluations per op at most.
    #[arg(long, default_value_t = 20_000)]
    pub(crate) max_evaluations: usize,
    /// Threads for ops the mapping runs `over cores` (default: the target's cores).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=256))]
    pub(crate) threads: Option<u64>,
}

#[derive(Args, Debug)]
pub struct TuneArgs {
    #[command(flatten)]
    selection: Selection,
    #[command(flatten)]
    tune: TuneKnobs,
    /// Write the tuned mapping, every knob pinned, as .arch text.
    #[arg(long, value_name = "OUT.arch")]
    emit_mapping: Option<PathBuf>,
    /// How to print the report.
    #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
    format: ReportFormat,
    #[command(flatten)]
    common: Common,
}

#[derive(Args, Debug)]
pub struct ReportArgs {
    #[command(flatten)]
    selection: Selection,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
    format: ReportFormat,
    /// Write the report here instead of to stdout.
    #[arg(short = 'o', long, value_name = "PATH")]
    output: Option<PathBuf>,
    #[command(flatten)]
    tune: TuneKnobs,
    /// Fill open knobs with the search's first guess (each tile as large as
    /// fits) instead of running the search: instant, as editors want, but
    /// not the schedule `tune` and `build` use.
    #[arg(long)]
    first_guess: bool,
    #[command(flatten)]
    common: Common,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq)]
pub enum ReportFormat {
    Text,
    Json,
    /// One self-contained file: a roofline (or floorline) chart, traffic and energy tables.
    Html,
}

pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{s}` is not a duration such as `10s`"))?;
    let seconds = match unit {
        "ms" => value / 1e3,
        "s" | "" => value,
        "m" | "min" => value * 60.0,
        _ => return Err(format!("unknown unit `{unit}`: use ms, s or m")),
    };
    if !(0.0..=86_400.0).contains(&seconds) {
        return Err("the budget must lie between 0 and 24 hours".into());
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// What a cost command works on.
pub(crate) struct Selected {
    pub(crate) workload: WorkloadModel,
    pub(crate) hardware: HardwareModel,
    pub(crate) mapping: MappingModel,
    /// Where the mapping's name is, and each knob the user constrained
    /// (none for a default mapping): what an infeasible schedule points at.
    mapping_place: Option<Place>,
    knob_places: Vec<(KnobTarget, Place)>,
    pub(crate) color: bool,
    pub(crate) weights: Option<std::sync::Arc<arch_cost::quantize::Weights>>,
    /// Set when `hardware` is this machine's calibration of std.hw.host.
    pub(crate) calibration: Option<arch_cost::evaluate::Calibration>,
}

/// The mapping declaration named `name` in `file`, resolved to places.
fn mapping_places(
    db: &RootDatabase,
    file: arch_sema::SourceFile,
    mapping: &MappingModel,
    display: &dyn Fn(&str) -> String,
) -> (Option<Place>, Vec<(KnobTarget, Place)>) {
    let Some(decl) = file_decls(db, file)
        .iter()
        .copied()
        .find(|d| d.kind(db) == "mapping" && *d.name(db) == mapping.name)
    else {
        return (None, Vec::new());
    };
    let text: std::sync::Arc<str> = std::sync::Arc::from(file.text(db).as_str());
    let offset = decl.offset(db) as usize;
    let place = |span: arch_syntax::ast::Span| Place {
        file: display(file.path(db)),
        text: text.clone(),
        start: offset + span.start as usize,
        end: offset + span.end as usize,
    };
    let name = match arch_sema::db::clean_item(db, decl) {
        Some(arch_syntax::ast::Item::Mapping(m)) => Some(place(m.name.span)),
        _ => None,
    };
    let knobs = mapping
        .knobs
        .iter()
        .filter_map(|k| k.span.map(|sp| (k.target.clone(), place(sp))))
        .collect();
    (name, knobs)
}

/// Loads and checks FILE, then finds the workload, hardware and mapping.
pub(crate) fn select(
    sel: &Selection,
    common: &Common,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<Selected, u8> {
    let (file, target, workload) = (&sel.file, sel.target.as_str(), sel.workload.as_deref());
    let color = color_enabled(common.color);
    let mut files = vec![file.clone()];
    files.extend(sel.hardware_files.iter().cloned());
    let (db, loaded, roots, mut diags) = load(&files, common, err)?;
    diags.extend(unknown_overrides(&db, &roots, &loaded, common));
    let (target_diags, skipped) = diagnostics_for(&db, &loaded, &roots, Some(target));
    diags.extend(target_diags);
    if skipped > 0 && diags.is_empty() {
        let _ = writeln!(
            err,
            "note: {skipped} error{} in mappings for other hardware skipped (`archc check` reports {})",
            if skipped == 1 { "" } else { "s" },
            if skipped == 1 { "it" } else { "them" }
        );
    }
    if !diags.is_empty() {
        report_diagnostics(&diags, Format::Text, color, out, err);
        return Err(EXIT_DIAGNOSTICS);
    }
    let usage = |err: &mut dyn Write, message: String| {
        let _ = writeln!(err, "error: {message}");
        EXIT_USAGE
    };
    let Some(root) = roots.first().and_then(|r| db.file_by_path(r)) else {
        return Err(usage(err, format!("cannot read {}", file.display())));
    };
    let extra: Vec<arch_sema::SourceFile> = roots[1..]
        .iter()
        .filter_map(|r| db.file_by_path(r))
        .collect();
    let hardware = find_hardware(&db, root, &extra, target).map_err(|m| usage(err, m))?;
    let (hardware, calibration) = calibrated(&db, hardware, sel.uncalibrated, err);
    let decls = file_decls(&db, root);
    let mappings: Vec<MappingModel> = decls
        .iter()
        .filter(|d| d.kind(&db) == "mapping")
        .filter_map(|d| mapping_model(&db, *d).model.clone())
        .filter(|m| m.hardware == hardware.name && workload.is_none_or(|w| m.workload == w))
        .collect();
    let workloads: Vec<WorkloadModel> = decls
        .iter()
        .filter(|d| d.kind(&db) == "workload")
        .filter_map(|d| workload_model(&db, *d).model.clone())
        .collect();
    let names: Vec<&str> = workloads.iter().map(|w| w.name.as_str()).collect();
    let mapping = match mappings.as_slice() {
        [one] => one.clone(),
        [] => {
            let w = match (workload, workloads.as_slice()) {
                (Some(name), _) => workloads.iter().find(|w| w.name == name).ok_or_else(|| {
                    usage(
                        err,
                        format!(
                            "{} has no workload `{name}`; it has: {}",
                            file.display(),
                            names.join(", ")
                        ),
                    )
                })?,
                (None, [only]) => only,
                (None, []) => {
                    return Err(usage(err, format!("{} has no workload", file.display())))
                }
                (None, _) => {
                    return Err(usage(
                        err,
                        format!(
                            "{} has several workloads ({}); choose one with --workload",
                            file.display(),
                            names.join(", ")
                        ),
                    ))
                }
            };
            default_mapping(&format!("{}_{}", w.name, hardware.name), w, &hardware)
        }
        several => {
            let which: Vec<String> = several
                .iter()
                .map(|m| format!("{} (for {})", m.name, m.workload))
                .collect();
            return Err(usage(
                err,
                format!(
                    "several mappings target {}: {}; choose with --workload",
                    hardware.name,
                    which.join(", ")
                ),
            ));
        }
    };
    // The workload may be imported (a mapping emitted by `tune` imports it).
    let scope = arch_sema::scope::file_scope(&db, root);
    let w = workloads
        .into_iter()
        .find(|w| w.name == mapping.workload)
        .or_else(|| {
            scope
                .get(&mapping.workload)
                .and_then(|d| workload_model(&db, d).model.clone())
        });
    let Some(w) = w else {
        return Err(usage(
            err,
            format!(
                "workload `{}` of mapping `{}` has no model",
                mapping.workload, mapping.name
            ),
        ));
    };
    let (mapping_place, knob_places) =
        mapping_places(&db, root, &mapping, &|p| loaded.display_name(p));
    let weights = match &sel.weights {
        Some(path) => match arch_cost::quantize::Weights::read(path) {
            Ok(ws) => Some(std::sync::Arc::new(ws)),
            Err(e) => {
                let _ = writeln!(err, "error: {e}");
                return Err(EXIT_DIAGNOSTICS);
            }
        },
        None => None,
    };
    Ok(Selected {
        workload: w,
        hardware,
        mapping,
        mapping_place,
        knob_places,
        color,
        weights,
        calibration,
    })
}

/// std.hw.host replaced by this machine's cached calibration (measured now
/// when there is none), unless the user opted out or declared their own
/// `host`. Without the native back end nothing can be measured.
fn calibrated(
    db: &RootDatabase,
    hardware: HardwareModel,
    opted_out: bool,
    err: &mut dyn Write,
) -> (HardwareModel, Option<arch_cost::evaluate::Calibration>) {
    let std_host = db.file_by_path("<std>/hw.arch").and_then(|f| {
        file_decls(db, f)
            .iter()
            .find(|d| d.kind(db) == "hardware" && d.name(db) == "host")
            .and_then(|d| hardware_model(db, *d).model.clone())
    });
    if opted_out || std_host.as_ref() != Some(&hardware) {
        return (hardware, None);
    }
    #[cfg(feature = "native")]
    if crate::calibration::enabled() {
        match crate::calibration::load_or_measure(err) {
            Ok(c) => {
                let mut hw = c.hardware;
                hw.name = hardware.name.clone();
                return (hw, Some(c.info));
            }
            Err(m) => {
                let _ = writeln!(
                    err,
                    "warning: cannot calibrate this machine ({m}); using std.hw.host's published numbers"
                );
            }
        }
    }
    let _ = err;
    (hardware, None)
}

/// The report of `s`, saying which calibration it used.
pub(crate) fn stamped(mut r: CostReport, s: &Selected) -> CostReport {
    r.calibration = s.calibration.clone();
    r
}

/// A hardware declaration in scope of FILE, or in std.hw.
fn find_hardware(
    db: &RootDatabase,
    root: arch_sema::SourceFile,
    extra: &[arch_sema::SourceFile],
    target: &str,
) -> Result<HardwareModel, String> {
    let scope = arch_sema::scope::file_scope(db, root);
    let std_hw = db.file_by_path("<std>/hw.arch");
    let in_extra = || {
        extra.iter().find_map(|f| {
            file_decls(db, *f)
                .iter()
                .copied()
                .find(|d| d.name(db) == target && d.kind(db) == "hardware")
        })
    };
    let decl = scope
        .get(target)
        .filter(|d| d.kind(db) == "hardware")
        .or_else(in_extra)
        .or_else(|| {
            std_hw.and_then(|f| {
                file_decls(db, f)
                    .iter()
                    .copied()
                    .find(|d| d.name(db) == target && d.kind(db) == "hardware")
            })
        });
    let Some(decl) = decl else {
        let mut known: Vec<String> = scope
            .names_of_kind(db, "hardware")
            .map(String::from)
            .collect();
        for f in std_hw.iter().chain(extra) {
            known.extend(
                file_decls(db, *f)
                    .iter()
                    .filter(|d| d.kind(db) == "hardware")
                    .map(|d| d.name(db).clone()),
            );
        }
        known.sort();
        known.dedup();
        let hint = arch_sema::diag::did_you_mean(target, known.iter().map(String::as_str))
            .map(|h| format!(" ({h})"))
            .unwrap_or_default();
        return Err(format!(
            "no hardware `{target}`{hint}; known: {}",
            known.join(", ")
        ));
    };
    hardware_model(db, decl)
        .model
        .clone()
        .ok_or_else(|| format!("hardware `{target}` has errors; run `archc check`"))
}

/// For every precision knob with an error budget: each choice's error,
/// measured on the weights or estimated, and the type chosen (stderr).
pub(crate) fn precision_notes(s: &Selected, schedule: &Schedule, err: &mut dyn Write) {
    for k in &s.mapping.knobs {
        let (
            KnobTarget::Precision { tensor },
            arch_sema::mapping::Domain::Budgeted { choices, max_error },
        ) = (&k.target, &k.domain)
        else {
            continue;
        };
        let Some(t) = s.workload.tensor(tensor) else {
            continue;
        };
        let declared = &s.workload.tensors[t];
        let chosen = schedule
            .precision
            .iter()
            .find(|(x, _)| *x == t)
            .map_or(declared.dtype, |(_, d)| *d);
        let mut measured_any = false;
        let errors: Vec<String> = choices
            .iter()
            .filter_map(|c| match c {
                arch_sema::mapping::KnobValue::Name(n) => arch_sema::dtype::DType::from_name(n),
                _ => None,
            })
            .map(|d| {
                let (e, measured) = precision_error(declared, d, s.weights.as_deref());
                measured_any |= measured;
                format!("{} {e:.2e}", d.name())
            })
            .collect();
        let how = match (&s.weights, measured_any) {
            (Some(ws), true) => format!("measured on {}", ws.source),
            (Some(ws), false) => format!(
                "estimated ({} has no tensor `{tensor}` of {} values)",
                ws.source,
                declared.elements()
            ),
            (None, _) => "estimated (half an ulp; --weights measures it)".to_string(),
        };
        let _ = writeln!(
            err,
            "precision of `{tensor}`, error <= {:e}, {how}: {} -> {}",
            max_error.0,
            errors.join(", "),
            chosen.name()
        );
    }
}

/// An error of the search or the model. Infeasible constraints are a
/// diagnostic (E0610) pointing at the statement that fixed them, with a help
/// line; a default mapping has no statement, so the message stands alone.
pub(crate) fn tune_error(e: TuneError, s: &Selected, err: &mut dyn Write) -> u8 {
    let why = match e {
        TuneError::DoesNotFit(f) => f.explain(),
        TuneError::Infeasible(i) => i,
        TuneError::Model(m) => {
            let _ = writeln!(err, "error: {m}");
            return EXIT_DIAGNOSTICS;
        }
    };
    let blamed = why.knob.as_ref().and_then(|target| {
        s.knob_places.iter().find_map(|(t, place)| {
            let same = match (t, target) {
                // Any fixed size of the tile at that level.
                (
                    KnobTarget::Tile { tensor, level, .. },
                    KnobTarget::Tile {
                        tensor: want,
                        level: at,
                        ..
                    },
                ) => tensor == want && level == at,
                _ => t == target,
            };
            same.then(|| place.clone())
        })
    });
    let mut help = why.help;
    let (place, label) = match blamed {
        Some(p) => (Some(p), "this constraint cannot be met"),
        None => {
            if let Some(KnobTarget::Tile { level, .. }) = &why.knob {
                // No size was fixed: the level cannot hold even the smallest tiles.
                help = format!(
                    "`{level}` is too small for the smallest tiles; lower a tensor's precision or use hardware with a larger `{level}`"
                );
            }
            (s.mapping_place.clone(), "no schedule of this mapping fits")
        }
    };
    let d = Rendered {
        code: "E0610",
        message: why.message,
        place,
        primary_label: label.into(),
        labels: Vec::new(),
        help: Some(help),
    };
    report_diagnostics(&[d], Format::Text, s.color, &mut std::io::sink(), err);
    EXIT_DIAGNOSTICS
}

pub fn tune(a: TuneArgs, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let s = match select(&a.selection, &a.common, out, err) {
        Ok(s) => with_threads(s, a.tune.threads),
        Err(code) => return code,
    };
    let max_evaluations = a.tune.max_evaluations;
    // A progress bar on a terminal only: nothing is drawn when stderr is
    // piped, and stdout carries only the report.
    let bar = if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        let bar = indicatif::ProgressBar::new((max_evaluations * s.workload.ops.len()) as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "tuning {msg} [{bar:30}] {pos}/{len} evaluations, {elapsed}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar.set_message(s.workload.name.clone());
        Some(bar)
    } else {
        None
    };
    let progress: Option<arch_cost::search::Progress> = bar.clone().map(|bar| {
        let per_op = max_evaluations as u64;
        std::sync::Arc::new(move |op: usize, done: usize| {
            bar.set_position(op as u64 * per_op + done as u64)
        }) as arch_cost::search::Progress
    });
    let opts = search_options(&a.tune, &s, progress);
    let started = Instant::now();
    let result = search(&s.workload, &s.hardware, &s.mapping, &opts);
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let outcome = match result {
        Ok(o) => o,
        Err(e) => return tune_error(e, &s, err),
    };
    precision_notes(&s, &outcome.schedule, err);
    let _ = writeln!(
        err,
        "tuned {} on {} in {:.2} s: space {} points, {} evaluated, {} pruned (do not fit), {:.2}x the speed-of-light bound{}",
        s.workload.name,
        s.hardware.name,
        started.elapsed().as_secs_f64(),
        if outcome.space_size.is_finite() {
            format!("{:.3e}", outcome.space_size)
        } else {
            "more than 1e308".to_string()
        },
        outcome.evaluated,
        outcome.pruned,
        outcome.gap_to_lower_bound,
        if outcome.stopped_by_budget { "; stopped by the time budget (results may differ between runs)" } else { "" }
    );
    if let Some(path) = &a.emit_mapping {
        let text = emit_mapping(
            &s.workload,
            &s.hardware,
            &format!("{}_tuned", s.mapping.name),
            &outcome.schedule,
            &a.selection.file,
        );
        if let Err(e) = std::fs::write(path, text) {
            let _ = writeln!(err, "error: cannot write {}: {e}", path.display());
            return EXIT_USAGE;
        }
    }
    write_report(&stamped(outcome.report, &s), a.format, &s, out)
}

pub fn report(a: ReportArgs, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let s = match select(&a.selection, &a.common, out, err) {
        Ok(s) => with_threads(s, a.tune.threads),
        Err(code) => return code,
    };
    let report = if a.first_guess {
        let schedule =
            match initial_schedule_with(&s.workload, &s.hardware, &s.mapping, s.weights.as_deref())
            {
                Ok(x) => x,
                Err(e) => return tune_error(TuneError::DoesNotFit(e), &s, err),
            };
        precision_notes(&s, &schedule, err);
        match evaluate(&s.workload, &s.hardware, &schedule) {
            Ok(r) => stamped(r, &s),
            Err(e) => return tune_error(e, &s, err),
        }
    } else {
        match tuned(&s, &a.tune, err) {
            Ok((schedule, report)) => {
                precision_notes(&s, &schedule, err);
                report
            }
            Err(code) => return code,
        }
    };
    match &a.output {
        Some(path) => {
            let mut buf = Vec::new();
            let code = write_report(&report, a.format, &s, &mut buf);
            if let Err(e) = std::fs::write(path, buf) {
                let _ = writeln!(err, "error: cannot write {}: {e}", path.display());
                return EXIT_USAGE;
            }
            code
        }
        None => write_report(&report, a.format, &s, out),
    }
}

pub(crate) fn write_report(
    r: &CostReport,
    format: ReportFormat,
    s: &Selected,
    out: &mut dyn Write,
) -> u8 {
    match format {
        ReportFormat::Html => {
            let _ = out.write_all(crate::html::render(&s.workload, &s.hardware, r).as_bytes());
        }
        ReportFormat::Json => {
            let _ = writeln!(
                out,
                "{}",
                serde_json::to_string_pretty(r).unwrap_or_default()
            );
        }
        _ => {
            let q = |v: f64, d| arch_sema::units::format_quantity(v, d);
            use arch_sema::units::Dim;
            let _ = writeln!(
                out,
                "{} on {}: {} and {} predicted",
                r.workload,
                r.target,
                q(r.total.latency_s, Dim::TIME),
                q(r.total.energy_j, Dim::ENERGY)
            );
            if let Some(c) = &r.calibration {
                let _ = writeln!(
                    out,
                    "  calibrated on this machine ({}): {}",
                    c.cpu, c.source
                );
            }
            for op in &r.ops {
                let p = &op.predicted;
                let _ = writeln!(
                    out,
                    "\n  {}: {} ({} cycles), {}, bound by {}; at {:.0}% of its speed-of-light bound ({})",
                    op.name,
                    q(p.latency_s, Dim::TIME),
                    p.cycles,
                    q(p.energy_j, Dim::ENERGY),
                    p.bottleneck,
                    p.utilization * 100.0,
                    q(p.lower_bound_s, Dim::TIME)
                );
                for l in &p.levels {
                    let _ = writeln!(
                        out,
                        "    {:<16} {:>12}  {:>10}",
                        l.name,
                        q(l.bytes, Dim::BYTES),
                        q(l.time_s, Dim::TIME)
                    );
                }
                for (k, v) in &op.mapping {
                    let _ = writeln!(out, "    {k} = {v}");
                }
            }
        }
    }
    EXIT_OK
}

/// A tensor as a mapping names it: intermediates the front end made
/// (`h.1`) are quoted.
/// The tuned schedule as a mapping with every knob pinned.
fn emit_mapping(
    w: &WorkloadModel,
    hw: &HardwareModel,
    name: &str,
    s: &Schedule,
    source: &std::path::Path,
) -> String {
    let module = source
        .file_stem()
        .map(|x| x.to_string_lossy().to_string())
        .unwrap_or_default();
    let mut text = format!(
        "// Tuned by `archc tune` for {} on {}. Every knob is pinned.\nimport {module}.{}\n",
        w.name, hw.name, w.name
    );
    if !hw.name.is_empty() {
        text.push_str(&format!("import std.hw.{}\n", hw.name));
    }
    text.push('\n');
    text.push_str(&arch_cost::schedule::pinned_mapping(w, hw, name, s));
    text
}

/// The schedule a build uses: the search's, every open knob filled.
pub(crate) fn tuned(
    s: &Selected,
    knobs: &TuneKnobs,
    err: &mut dyn Write,
) -> Result<(Schedule, CostReport), u8> {
    let opts = search_options(knobs, s, None);
    let started = Instant::now();
    let outcome =
        search(&s.workload, &s.hardware, &s.mapping, &opts).map_err(|e| tune_error(e, s, err))?;
    let _ = writeln!(
        err,
        "tuned {} on {} in {:.2} s",
        s.workload.name,
        s.hardware.name,
        started.elapsed().as_secs_f64()
    );
    let report = stamped(outcome.report, s);
    Ok((outcome.schedule, report))
}

/// `--threads N`: the cost model and the code use N cores.
pub(crate) fn with_threads(mut s: Selected, threads: Option<u64>) -> Selected {
    if let Some(t) = threads {
        s.hardware.cores = t;
    }
    s
}

fn search_options(
    knobs: &TuneKnobs,
    s: &Selected,
    progress: Option<arch_cost::search::Progress>,
) -> SearchOptions {
    SearchOptions {
        seed: knobs.seed,
        budget: knobs.budget,
        max_evaluations: knobs.max_evaluations,
        progress,
        weights: s.weights.clone(),
    }
}
