//! Lowering to MLIR. Built so far: [`linalg`], each compute op of a
//! workload as `linalg.generic` on tensors inside one `func.func`, and
//! [`verify`], which parses the module with MLIR 22 (through melior) and
//! runs its verifier. Scheduling (tiling, fusion, vectorization),
//! bufferization and the lowering to LLVM come next (issue 4).

pub mod fastmath;
pub mod gemm;
pub mod linalg;
pub mod pipeline;
pub mod rowreduce;
pub mod schedule;

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
