//! The salsa front end of archc.
//!
//! Inputs are source files (and `--set` overrides); queries split files into
//! declarations, parse each, resolve names and imports, and build one
//! semantic model per declaration: [`workload::workload_model`],
//! [`hardware::hardware_model`], [`mapping::mapping_model`]. Every query
//! returns its diagnostics as values ([`diag::Diagnostic`]); nothing here
//! prints or touches the file system.

pub mod check;
pub mod consts;
pub mod db;
pub mod diag;
pub mod dtype;
pub(crate) mod expr;
pub mod hardware;
pub mod mapping;
pub mod model;
pub mod ops;
pub mod scope;
pub mod stdlib;
pub(crate) mod tensor_form;
pub mod units;
pub mod workload;

pub use check::{decl_diagnostics, file_diagnostics};
pub use db::{file_decls, parse_decl, Db, Decl, Project, RootDatabase, SourceFile};
pub use diag::{Diagnostic, Label, Location, Severity, CODES};
