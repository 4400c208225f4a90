//! The whole cpu path from a workload and its loop nests to an object:
//! linalg ([`arch_mlir::linalg`]), the schedule as a transform script
//! ([`arch_mlir::schedule`]), MLIR's pipeline to LLVM IR
//! ([`arch_mlir::pipeline`]), then [`crate::object`].

use crate::{HostTarget, Object};
use arch_cost::cpu::LoopNest;
use arch_mlir::pipeline::Stage;
use arch_sema::model::WorkloadModel;

/// The module at every stage and the code made from it.
pub struct Compiled {
    /// The input module (linalg with its transform script attached).
    pub input: String,
    pub stages: Vec<Stage>,
    pub llvm_ir: String,
    pub object: Object,
    pub host: HostTarget,
}

/// Why a workload did not compile: a message for the user, and the stage
/// input so far (for `ARCH_DUMP_MLIR`).
#[derive(Debug, Clone)]
pub struct CompileError {
    pub message: String,
    pub input: Option<String>,
}

impl std::fmt::Display for CompileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// Compiles `w` with `nests[op]` for each op (`None`: untiled, scalar).
pub fn compile(
    w: &WorkloadModel,
    nests: &[Option<LoopNest>],
    host: &HostTarget,
) -> Result<Compiled, CompileError> {
    let fail = |message: String, input: Option<&String>| CompileError {
        message,
        input: input.cloned(),
    };
    let (linalg, parts) =
        arch_mlir::linalg::lower_parts(w).map_err(|e| fail(e.to_string(), None))?;
    let elem_bytes: Vec<u64> = w
        .ops
        .iter()
        .map(|op| w.compute_dtype(op).bits().div_ceil(8))
        .collect();
    let machine = arch_mlir::schedule::Machine {
        vector_bytes: host.vector_bytes(),
        ..Default::default()
    };
    let script = arch_mlir::schedule::transform_script(w, &parts, nests, &elem_bytes, &machine);
    let input = arch_mlir::schedule::attach(&linalg, &script);
    let lowered = arch_mlir::pipeline::run(&input, &arch_mlir::pipeline::cpu_stages(true))
        .map_err(|e| fail(e.to_string(), Some(&input)))?;
    let object = crate::object(&lowered.llvm_ir, &w.name, host)
        .map_err(|e| fail(e.to_string(), Some(&input)))?;
    Ok(Compiled {
        input,
        stages: lowered.stages,
        llvm_ir: lowered.llvm_ir,
        object,
        host: host.clone(),
    })
}
