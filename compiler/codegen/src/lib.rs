//! Native code for the cpu: LLVM IR (from `arch-mlir`'s pipeline) becomes
//! an object for the host CPU through inkwell (LLVM 22, the host's own CPU
//! name and features), then a shared library linked by the system's C
//! compiler driver, with the C header and manifest that describe its one
//! exported function ([`abi`]).
//!
//! Boundary: this crate does IO only where linking needs files (a temporary
//! object next to the library); the driver chooses every path.

pub mod abi;
pub mod blocks;
pub mod calibrate;
pub mod cpu;
pub mod stack;

use inkwell::{
    context::Context,
    memory_buffer::MemoryBuffer,
    passes::PassBuilderOptions,
    targets::{CodeModel, FileType, InitializationConfig, RelocMode, Target, TargetMachine},
    OptimizationLevel,
};
use std::path::Path;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodegenError {
    /// LLVM rejected the IR or could not make code for this machine.
    Llvm(String),
    /// The linker failed or could not start.
    Link(String),
}

impl std::fmt::Display for CodegenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CodegenError::Llvm(m) => write!(f, "LLVM: {m}"),
            CodegenError::Link(m) => write!(f, "linking: {m}"),
        }
    }
}

impl std::error::Error for CodegenError {}

/// The machine code is made for: the host's triple, CPU and features.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostTarget {
    pub triple: String,
    pub cpu: String,
    pub features: String,
}

impl HostTarget {
    /// The machine this process runs on, as LLVM detects it.
    pub fn detect() -> HostTarget {
        HostTarget {
            triple: TargetMachine::get_default_triple()
                .as_str()
                .to_string_lossy()
                .into_owned(),
            cpu: TargetMachine::get_host_cpu_name().to_string(),
            features: TargetMachine::get_host_cpu_features().to_string(),
        }
    }

    /// Whether the host has a feature (`avx2`, `fma`, `avx512f`).
    pub fn has(&self, feature: &str) -> bool {
        self.features
            .split(',')
            .any(|f| f.strip_prefix('+') == Some(feature))
    }

    /// The widest vector register in bytes.
    pub fn vector_bytes(&self) -> u64 {
        if self.has("avx512f") {
            64
        } else if self.has("avx") {
            32
        } else {
            16
        }
    }
}

/// An object file and the optimized LLVM IR it was made from.
pub struct Object {
    pub bytes: Vec<u8>,
    pub optimized_ir: String,
}

fn machine(host: &HostTarget) -> Result<TargetMachine, CodegenError> {
    Target::initialize_native(&InitializationConfig::default()).map_err(CodegenError::Llvm)?;
    let triple = inkwell::targets::TargetTriple::create(&host.triple);
    let target = Target::from_triple(&triple).map_err(|e| CodegenError::Llvm(e.to_string()))?;
    target
        .create_target_machine(
            &triple,
            &host.cpu,
            &host.features,
            OptimizationLevel::Aggressive,
            RelocMode::PIC,
            CodeModel::Default,
        )
        .ok_or_else(|| CodegenError::Llvm(format!("no target machine for {}", host.triple)))
}

/// f32 to bf16, rounding to nearest even (NaN stays NaN), for the calls
/// LLVM's x86 backend makes when it narrows to `bfloat`: older C runtimes
/// (libgcc before GCC 13) do not define it, so each library carries its own
/// (kept through optimization by `llvm.compiler.used`, since the calls only
/// appear during instruction selection).
const TRUNCSFBF2: &str = "
@llvm.compiler.used = appending global [1 x ptr] [ptr @__truncsfbf2], section \"llvm.metadata\"
define hidden bfloat @__truncsfbf2(float %x) {
  %bits = bitcast float %x to i32
  %high = lshr i32 %bits, 16
  %lsb = and i32 %high, 1
  %bias = add i32 %lsb, 32767
  %sum = add i32 %bits, %bias
  %rounded = lshr i32 %sum, 16
  %nan = fcmp uno float %x, %x
  %quiet = or i32 %high, 64
  %pick = select i1 %nan, i32 %quiet, i32 %rounded
  %short = trunc i32 %pick to i16
  %result = bitcast i16 %short to bfloat
  ret bfloat %result
}
";

/// Optimizes `llvm_ir` at -O3 for `host` and emits an object file.
pub fn object(llvm_ir: &str, name: &str, host: &HostTarget) -> Result<Object, CodegenError> {
    let context = Context::create();
    let with_blocks = blocks::with_kept_blocks(llvm_ir);
    let llvm_ir = with_blocks.as_deref().unwrap_or(llvm_ir);
    let with_support;
    let llvm_ir = if llvm_ir.contains("bfloat")
        && !llvm_ir.contains("@__truncsfbf2")
        && !llvm_ir.contains("@llvm.compiler.used")
    {
        with_support = format!("{llvm_ir}\n{TRUNCSFBF2}");
        with_support.as_str()
    } else {
        llvm_ir
    };
    let buffer = MemoryBuffer::create_from_memory_range_copy(llvm_ir.as_bytes(), name);
    let module = context
        .create_module_from_ir(buffer)
        .map_err(|e| CodegenError::Llvm(e.to_string()))?;
    module
        .verify()
        .map_err(|e| CodegenError::Llvm(e.to_string()))?;
    let tm = machine(host)?;
    module.set_triple(&tm.get_triple());
    module.set_data_layout(&tm.get_target_data().get_data_layout());
    stack::hoist_static_allocas(&module, &tm.get_target_data()).map_err(CodegenError::Llvm)?;
    module
        .run_passes("default<O3>", &tm, PassBuilderOptions::create())
        .map_err(|e| CodegenError::Llvm(e.to_string()))?;
    let optimized_ir = module.print_to_string().to_string();
    let bytes = tm
        .write_to_memory_buffer(&module, FileType::Object)
        .map_err(|e| CodegenError::Llvm(e.to_string()))?
        .as_slice()
        .to_vec();
    Ok(Object {
        bytes,
        optimized_ir,
    })
}

/// Assembly text for `llvm_ir` (what `object` would emit), for reading.
pub fn assembly(llvm_ir: &str, name: &str, host: &HostTarget) -> Result<String, CodegenError> {
    let context = Context::create();
    let buffer = MemoryBuffer::create_from_memory_range_copy(llvm_ir.as_bytes(), name);
    let module = context
        .create_module_from_ir(buffer)
        .map_err(|e| CodegenError::Llvm(e.to_string()))?;
    let tm = machine(host)?;
    let asm = tm
        .write_to_memory_buffer(&module, FileType::Assembly)
        .map_err(|e| CodegenError::Llvm(e.to_string()))?;
    Ok(String::from_utf8_lossy(asm.as_slice()).into_owned())
}

/// Links `object` (a file) into the shared library `library` with the
/// system's C compiler driver (`$CC`, else `cc`), adding `-l` for `libs`.
pub fn link_shared(object: &Path, library: &Path, libs: &[&str]) -> Result<(), CodegenError> {
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let mut cmd = std::process::Command::new(&cc);
    cmd.arg("-shared").arg("-o").arg(library).arg(object);
    // libomp lives with LLVM; the library finds it there at run time too.
    let llvm_lib = format!(
        "{}/lib",
        option_env!("LLVM_SYS_221_PREFIX").unwrap_or("/usr/lib/llvm-22")
    );
    if libs.contains(&"omp") {
        cmd.arg(format!("-L{llvm_lib}"))
            .arg(format!("-Wl,-rpath,{llvm_lib}"));
    }
    for l in libs {
        cmd.arg(format!("-l{l}"));
    }
    let out = cmd
        .output()
        .map_err(|e| CodegenError::Link(format!("could not run `{cc}`: {e}")))?;
    if !out.status.success() {
        return Err(CodegenError::Link(format!(
            "`{cc}` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}
