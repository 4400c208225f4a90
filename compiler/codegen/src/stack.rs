//! Stack frames that do not grow with the workload.
//!
//! MLIR's vector lowering puts small scratch buffers (`memref.alloca`) where
//! the transfer happens, which after scheduling is often inside a loop. An
//! LLVM `alloca` outside the entry block takes fresh stack on every
//! execution, so a loop of a few hundred thousand iterations overflows the
//! stack (a crash of the generated code). Every alloca whose size is a
//! constant moves into its function's entry block, where it is allocated
//! once per call (and SROA can then keep it in registers). Each of these
//! buffers is written before it is read within one iteration, so sharing one
//! slot between iterations changes nothing.
//!
//! **Invariant:** after [`hoist_static_allocas`], a function's stack frame
//! is the sum of its allocas' sizes, independent of trip counts; an alloca
//! of a size known only at run time, or a frame over [`MAX_FRAME_BYTES`],
//! is an error (large temporaries belong on the heap: `memref.alloc`).

use inkwell::module::Module;
use inkwell::targets::TargetData;
use inkwell::values::{AnyValue, InstructionOpcode, InstructionValue};

/// The most stack one generated function may use; worker threads of the
/// OpenMP runtime start with a few MiB of stack.
pub const MAX_FRAME_BYTES: u64 = 256 * 1024;

/// Moves constant-size allocas into entry blocks; returns each function's
/// frame size, or what is wrong.
pub fn hoist_static_allocas(module: &Module<'_>, data: &TargetData) -> Result<(), String> {
    let builder = module.get_context().create_builder();
    for function in module.get_functions() {
        let Some(entry) = function.get_first_basic_block() else {
            continue;
        };
        let mut moved: Vec<InstructionValue<'_>> = Vec::new();
        let mut frame_bytes = 0u64;
        for block in function.get_basic_blocks() {
            for inst in block.get_instructions() {
                if inst.get_opcode() != InstructionOpcode::Alloca {
                    continue;
                }
                let count = inst
                    .get_operand(0)
                    .and_then(|o| o.value())
                    .and_then(|v| match v {
                        inkwell::values::BasicValueEnum::IntValue(i) => {
                            i.get_zero_extended_constant()
                        }
                        _ => None,
                    });
                let Some(count) = count else {
                    return Err(format!(
                        "`{}` allocates stack of a size known only at run time: {}",
                        function.get_name().to_string_lossy(),
                        inst.print_to_string()
                    ));
                };
                let element = inst
                    .get_allocated_type()
                    .map(|t| data.get_abi_size(&t))
                    .unwrap_or(0);
                frame_bytes = frame_bytes.saturating_add(element.saturating_mul(count));
                if block != entry {
                    moved.push(inst);
                }
            }
        }
        if frame_bytes > MAX_FRAME_BYTES {
            return Err(format!(
                "`{}` needs {frame_bytes} bytes of stack (at most {MAX_FRAME_BYTES}); its temporaries belong on the heap",
                function.get_name().to_string_lossy()
            ));
        }
        let Some(first) = entry.get_first_instruction() else {
            continue;
        };
        for inst in moved {
            inst.remove_from_basic_block();
            builder.position_before(&first);
            builder.insert_instruction(&inst, None);
        }
    }
    Ok(())
}
