//! Whole-pipeline checks on arbitrary text, shared by the fuzz targets
//! (`fuzz/`) and the property tests: they must never panic, and the cost
//! models must keep their physical bounds ([`arch_cost::bounds`]).
//!
//! Boundary: needs no back end (MLIR, LLVM), so the fuzz targets build
//! against the front end and the cost models alone.

use arch_cost::bounds::violations;
use arch_cost::evaluate::evaluate;
use arch_cost::schedule::{initial_schedule_with, stored, Schedule};
use arch_cost::search::{tune, SearchOptions};
use arch_sema::db::{file_decls, RootDatabase};
use arch_sema::hardware::{hardware_model, HardwareModel};
use arch_sema::mapping::{default_mapping, mapping_model, MappingModel};
use arch_sema::model::WorkloadModel;
use arch_sema::workload::workload_model;

/// Any text through the whole front end (split, parse, names, models,
/// mappings), the renderer and the formatter (idempotent).
pub fn front_end(text: &str) {
    let mut db = RootDatabase::default();
    let file = db.set_file("/fuzz/input.arch", text.to_string());
    let diags = arch_sema::file_diagnostics(&db, file).clone();
    for d in &diags {
        let r = crate::render::Rendered::from_sema(&db, d, &|p: &str| p.to_string());
        let mut sink = Vec::new();
        crate::render::write_text(&r, &crate::render::TextOptions { color: false }, &mut sink);
        assert!(!sink.is_empty());
    }
    if let Some(formatted) = arch_syntax::format::format(text) {
        let again = arch_syntax::format::format(&formatted);
        assert_eq!(
            again.as_deref(),
            Some(formatted.as_str()),
            "fmt is not idempotent on {text:?}"
        );
    }
}

/// The search as the fuzzer runs it: a few evaluations, deterministic.
pub fn small_search() -> SearchOptions {
    SearchOptions {
        seed: 1,
        budget: std::time::Duration::from_secs(2),
        max_evaluations: 48,
        progress: None,
        weights: None,
    }
}

/// Every std hardware description.
pub fn std_hardware(db: &RootDatabase) -> Vec<HardwareModel> {
    let Some(file) = db.file_by_path("<std>/hw.arch") else {
        return Vec::new();
    };
    file_decls(db, file)
        .iter()
        .filter(|d| d.kind(db) == "hardware")
        .filter_map(|d| hardware_model(db, *d).model.clone())
        .collect()
}

/// A program that checks clean through the cost models: each workload on
/// every std target (default mapping), and each mapping of the file on its
/// own hardware, at the search's first guess and after a small search.
/// Returns the bound violations found (empty when the models hold);
/// infeasible mappings are answers, not failures.
pub fn cost_models(text: &str, search: &SearchOptions) -> Vec<String> {
    let mut db = RootDatabase::default();
    let file = db.set_file("/fuzz/input.arch", text.to_string());
    if !arch_sema::file_diagnostics(&db, file).is_empty() {
        return Vec::new();
    }
    let decls = file_decls(&db, file);
    let workloads: Vec<WorkloadModel> = decls
        .iter()
        .filter(|d| d.kind(&db) == "workload")
        .filter_map(|d| workload_model(&db, *d).model.clone())
        .collect();
    let hardware = std_hardware(&db);
    let scope = arch_sema::scope::file_scope(&db, file);
    let mut pairs: Vec<(WorkloadModel, HardwareModel, MappingModel)> = Vec::new();
    for w in &workloads {
        for hw in &hardware {
            let m = default_mapping(&format!("{}_{}", w.name, hw.name), w, hw);
            pairs.push((w.clone(), hw.clone(), m));
        }
    }
    for d in decls.iter().filter(|d| d.kind(&db) == "mapping") {
        let Some(m) = mapping_model(&db, *d).model.clone() else {
            continue;
        };
        let w = workloads.iter().find(|w| w.name == m.workload).cloned();
        let hw = scope
            .get(&m.hardware)
            .filter(|d| d.kind(&db) == "hardware")
            .and_then(|d| hardware_model(&db, d).model.clone())
            .or_else(|| hardware.iter().find(|h| h.name == m.hardware).cloned());
        if let (Some(w), Some(hw)) = (w, hw) {
            pairs.push((w, hw, m));
        }
    }
    let mut found = Vec::new();
    for (w, hw, m) in &pairs {
        let mut check = |schedule: &Schedule, report: &arch_cost::evaluate::CostReport| {
            let adjusted = stored(w, schedule);
            for v in violations(&adjusted, hw, schedule, report) {
                found.push(format!("{} on {} ({}): {v}", w.name, hw.name, m.name));
            }
        };
        if let Ok(schedule) = initial_schedule_with(w, hw, m, None) {
            if let Ok(report) = evaluate(w, hw, &schedule) {
                check(&schedule, &report);
            }
        }
        if let Ok(outcome) = tune(w, hw, m, search) {
            check(&outcome.schedule, &outcome.report);
        }
    }
    found
}
