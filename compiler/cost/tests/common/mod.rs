//! Models the cost tests build from programs and the standard library.

use arch_sema::db::{file_decls, Decl, RootDatabase, SourceFile};
use arch_sema::hardware::{hardware_model, HardwareModel};
use arch_sema::model::WorkloadModel;
use arch_sema::workload::workload_model;

/// `program` as the file `path`, which must check clean.
pub fn checked_file(db: &mut RootDatabase, path: &str, program: &str) -> SourceFile {
    let file = db.set_file(path, program.to_string());
    let diagnostics = arch_sema::file_diagnostics(&*db, file);
    assert!(diagnostics.is_empty(), "{diagnostics:?}");
    file
}

/// The declaration `name` of `file`.
fn decl_in<'db>(db: &'db RootDatabase, file: SourceFile, name: &str) -> Decl<'db> {
    *file_decls(db, file)
        .iter()
        .find(|d| d.name(db) == name)
        .unwrap_or_else(|| panic!("no declaration `{name}`"))
}

/// The hardware `name` declared in `file`.
pub fn hardware_in(db: &RootDatabase, file: SourceFile, name: &str) -> HardwareModel {
    hardware_model(db, decl_in(db, file, name))
        .model
        .clone()
        .expect("hardware model")
}

/// The hardware `name` of `std.hw`.
pub fn std_hardware(db: &RootDatabase, name: &str) -> HardwareModel {
    let std_hw = db.file_by_path("<std>/hw.arch").expect("std.hw");
    hardware_in(db, std_hw, name)
}

/// The workload `name` declared in `file`.
pub fn workload_in(db: &RootDatabase, file: SourceFile, name: &str) -> WorkloadModel {
    workload_model(db, decl_in(db, file, name))
        .model
        .clone()
        .expect("workload model")
}
