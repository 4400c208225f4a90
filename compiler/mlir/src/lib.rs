//! Lowering to MLIR: [`linalg`] writes each compute op of a workload as
//! `linalg.generic` on tensors inside one `func.func`, or as a call of a
//! hand-written kernel ([`gemm`]: packed contractions; [`rowreduce`]: row
//! reductions; [`rowchain`]: ops fused row by row); [`schedule`] writes the
//! transform script that tiles, fuses and vectorizes the rest;
//! [`pipeline`] lowers it all to LLVM IR; [`verify`] parses a module with
//! MLIR 22 (through melior) and runs its verifier.

pub mod fastmath;
pub mod gemm;
pub mod gpu;
pub mod linalg;
pub mod pipeline;
pub mod rowchain;
pub mod rowreduce;
pub mod schedule;
pub mod skinny;
pub mod window;

use melior::{
    dialect::DialectRegistry,
    ir::{operation::OperationLike, Module},
    utility::register_all_dialects,
    Context,
};

/// A context with every upstream dialect loaded.
pub fn context() -> Context {
    let registry = DialectRegistry::new();
    register_all_dialects(&registry);
    let context = Context::new();
    context.append_dialect_registry(&registry);
    context.load_all_available_dialects();
    context
}

/// Parses `text` as an MLIR module and runs the verifier; `Err` carries
/// MLIR's own messages.
pub fn verify(text: &str) -> Result<(), String> {
    if text.contains('\0') {
        return Err("the module text holds a NUL byte".into());
    }
    let context = context();
    let messages = std::rc::Rc::new(std::cell::RefCell::new(Vec::<String>::new()));
    let sink = messages.clone();
    let handler = context.attach_diagnostic_handler(move |d| {
        sink.borrow_mut().push(d.to_string());
        true
    });
    let result = match Module::parse(&context, text) {
        Some(module) if module.as_operation().verify() => Ok(()),
        Some(_) => Err(format!("verifier: {}", messages.borrow().join("; "))),
        None => Err(format!("parser: {}", messages.borrow().join("; "))),
    };
    context.detach_diagnostic_handler(handler);
    result
}
