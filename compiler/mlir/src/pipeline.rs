//! From the linalg module of [`crate::linalg::lower`] to LLVM IR text, one
//! named stage at a time, each stage's module kept so that `--emit mlir`
//! and `ARCH_DUMP_MLIR` can show every step. The verifier runs after every
//! pass; a failure names its stage and carries MLIR's messages.

use melior::{
    ir::{
        block::BlockLike, operation::OperationLike, operation::OperationMutLike, Module, RegionLike,
    },
    pass::PassManager,
    utility::{parse_pass_pipeline, register_all_llvm_translations, register_all_passes},
};
use std::{cell::RefCell, rc::Rc};

/// One step of the lowering: its name and the pass pipeline that produces it
/// from the previous stage's module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageSpec {
    pub name: &'static str,
    pub passes: String,
    /// Erase the transform script (`transform.named_sequence`) after the
    /// passes: the stage that runs `transform-interpreter`.
    pub strip_transform_script: bool,
}

/// A stage's name and the module text it produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    pub name: &'static str,
    pub text: String,
}

/// Every stage's module and the LLVM IR translated from the last one.
#[derive(Debug, Clone)]
pub struct Lowered {
    pub stages: Vec<Stage>,
    pub llvm_ir: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PipelineError {
    /// The input did not parse or verify.
    Parse(String),
    /// A stage's passes failed (or left a module the verifier rejects).
    Stage {
        stage: &'static str,
        message: String,
    },
    /// The LLVM dialect module did not translate to LLVM IR.
    Translate(String),
}

impl std::fmt::Display for PipelineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PipelineError::Parse(m) => write!(f, "the lowered module does not parse: {m}"),
            PipelineError::Stage { stage, message } => {
                write!(f, "MLIR stage `{stage}` failed: {message}")
            }
            PipelineError::Translate(m) => write!(f, "translation to LLVM IR failed: {m}"),
        }
    }
}

impl std::error::Error for PipelineError {}

/// The stages after `linalg`, for the cpu: the schedule (when the module
/// carries a transform script: tiling, fusion, vectorization, then the
/// accumulators hoisted out of reduction loops), bufferization (in place
/// into the arguments, temporaries freed), loops, then the LLVM dialect with
/// bare pointers for memrefs (the C ABI of `archc build`).
///
/// With `threads > 1`, `scf.parallel` loops run on that many OpenMP
/// threads (the library then links against libomp).
pub fn cpu_stages(scheduled: bool, threads: u64) -> Vec<StageSpec> {
    let stage = |name, passes: &str| StageSpec {
        name,
        passes: format!("builtin.module({passes})"),
        strip_transform_script: false,
    };
    let mut stages = Vec::new();
    if scheduled {
        stages.push(StageSpec {
            strip_transform_script: true,
            ..stage(
                "scheduled",
                "transform-interpreter, canonicalize, cse, loop-invariant-subset-hoisting, \
                 canonicalize, cse",
            )
        });
    }
    stages.extend([
        stage(
            "bufferized",
            "one-shot-bufferize, canonicalize, cse, buffer-deallocation-pipeline, \
             convert-bufferization-to-memref",
        ),
        stage(
            "loops",
            &if threads > 1 {
                // OpenMP before the vector and linalg loops: the parallel
                // body must hold no `memref.alloca` yet (masked transfers
                // lower to stack buffers), or its `alloca_scope` survives
                // into a region that control flow splits.
                format!(
                    "scf-forall-to-parallel, convert-scf-to-openmp{{num-threads={threads}}}, \
                     canonicalize, convert-linalg-to-loops, convert-vector-to-scf, canonicalize, cse"
                )
            } else {
                "convert-linalg-to-loops, convert-vector-to-scf, canonicalize, cse".to_string()
            },
        ),
        stage(
            "llvm",
            "convert-math-to-llvm, convert-math-to-libm, \
             arith-expand{include-bf16=true}, expand-strided-metadata, lower-affine, convert-scf-to-cf, convert-vector-to-llvm, \
             finalize-memref-to-llvm{use-generic-functions=1}, \
             convert-arith-to-llvm, convert-cf-to-llvm, convert-ub-to-llvm, \
             convert-func-to-llvm{use-bare-ptr-memref-call-conv=1}, convert-openmp-to-llvm, \
             reconcile-unrealized-casts",
        ),
    ]);
    stages
}

/// Runs `stages` on `linalg` (the first stage, named `linalg`) and
/// translates the result to LLVM IR.
pub fn run(linalg: &str, stages: &[StageSpec]) -> Result<Lowered, PipelineError> {
    run_inner(linalg, stages, true)
}

/// Runs `stages` on `text` and keeps every stage's module, without the
/// translation to LLVM IR (a GPU module ends as a `gpu.binary`).
pub fn run_stages(text: &str, stages: &[StageSpec]) -> Result<Vec<Stage>, PipelineError> {
    run_inner(text, stages, false).map(|l| l.stages)
}

fn run_inner(
    linalg: &str,
    stages: &[StageSpec],
    translate_to_llvm: bool,
) -> Result<Lowered, PipelineError> {
    if linalg.contains('\0') {
        return Err(PipelineError::Parse(
            "the module text holds a NUL byte".into(),
        ));
    }
    register_all_passes();
    let context = crate::context();
    register_all_llvm_translations(&context);
    let messages = Rc::new(RefCell::new(Vec::<String>::new()));
    let sink = messages.clone();
    let handler = context.attach_diagnostic_handler(move |d| {
        sink.borrow_mut().push(d.to_string());
        true
    });
    let drain = || {
        messages
            .borrow_mut()
            .drain(..)
            .collect::<Vec<_>>()
            .join("; ")
    };
    let result = (|| {
        let mut module =
            Module::parse(&context, linalg).ok_or_else(|| PipelineError::Parse(drain()))?;
        if !module.as_operation().verify() {
            return Err(PipelineError::Parse(drain()));
        }
        let mut out = vec![Stage {
            name: "linalg",
            text: module.as_operation().to_string(),
        }];
        for spec in stages {
            let manager = PassManager::new(&context);
            manager.enable_verifier(true);
            parse_pass_pipeline(manager.as_operation_pass_manager(), &spec.passes).map_err(
                |e| PipelineError::Stage {
                    stage: spec.name,
                    message: e.to_string(),
                },
            )?;
            manager.run(&mut module).map_err(|e| PipelineError::Stage {
                stage: spec.name,
                message: {
                    let m = drain();
                    if m.is_empty() {
                        e.to_string()
                    } else {
                        m
                    }
                },
            })?;
            if spec.strip_transform_script {
                strip_transform_script(&mut module);
            }
            out.push(Stage {
                name: spec.name,
                text: module.as_operation().to_string(),
            });
        }
        if !translate_to_llvm {
            return Ok(Lowered {
                stages: out,
                llvm_ir: String::new(),
            });
        }
        // Translation would crash on an op the passes left unconverted.
        let mut left = Vec::new();
        not_llvm(&module.as_operation(), &mut left);
        if !left.is_empty() {
            left.sort();
            left.dedup();
            return Err(PipelineError::Translate(format!(
                "ops not lowered to the LLVM dialect: {}",
                left.join(", ")
            )));
        }
        let llvm_ir = translate(&module).ok_or_else(|| PipelineError::Translate(drain()))?;
        Ok(Lowered {
            stages: out,
            llvm_ir,
        })
    })();
    context.detach_diagnostic_handler(handler);
    result
}

extern "C" {
    fn free(ptr: *mut std::ffi::c_void);
}

/// Removes every `transform.named_sequence` from the module's body (and the
/// module attribute that announced them).
#[allow(unsafe_code)]
fn strip_transform_script(module: &mut Module) {
    let mut scripts = Vec::new();
    let mut op = module.body().first_operation();
    while let Some(o) = op {
        if o.name().as_string_ref().as_str() == Ok("transform.named_sequence") {
            scripts.push(o.to_raw());
        }
        op = o.next_in_block();
    }
    for raw in scripts {
        // SAFETY: `raw` is an operation of the module's body found just
        // above; it is unlinked from its block, which gives ownership to
        // us, and destroyed once. No handle to it outlives this loop.
        unsafe {
            mlir_sys::mlirOperationRemoveFromParent(raw);
            mlir_sys::mlirOperationDestroy(raw);
        }
    }
    let _ = module
        .as_operation_mut()
        .remove_attribute("transform.with_named_sequence");
}

/// Names of the ops under `op` that LLVM IR translation does not take (it
/// takes the LLVM and OpenMP dialects and the module).
fn not_llvm<'c: 'a, 'a>(op: &impl OperationLike<'c, 'a>, out: &mut Vec<String>) {
    for region in op.regions() {
        let mut block = region.first_block();
        while let Some(b) = block {
            let mut inner = b.first_operation();
            while let Some(o) = inner {
                let name = o.name().as_string_ref().as_str().unwrap_or("?").to_string();
                if !(name.starts_with("llvm.")
                    || name.starts_with("omp.")
                    || name == "builtin.module")
                {
                    out.push(name);
                }
                not_llvm(&o, out);
                inner = o.next_in_block();
            }
            block = b.next_in_region();
        }
    }
}

/// LLVM IR text of a module in the LLVM dialect.
#[allow(unsafe_code)]
fn translate(module: &Module) -> Option<String> {
    // SAFETY: the operation is a live module owned by `module`; MLIR returns
    // a NUL-terminated string it allocated with malloc (null on failure),
    // which is copied and then freed exactly once.
    unsafe {
        let raw = mlir_sys::mlirTranslateModuleToLLVMIRToString(module.as_operation().to_raw());
        if raw.is_null() {
            return None;
        }
        let text = std::ffi::CStr::from_ptr(raw).to_string_lossy().into_owned();
        free(raw.cast());
        Some(text)
    }
}
