//! The heap blocks of a generated library's temporaries, kept between
//! calls.
//!
//! MLIR's memref lowering (`finalize-memref-to-llvm` with generic
//! functions) allocates every temporary with `_mlir_memref_to_llvm_alloc`
//! (or `_aligned_alloc`) and releases it with `_mlir_memref_to_llvm_free`.
//! Each library defines the three itself (internal symbols, so libraries in
//! one process never share them): a freed block of 64 KiB or more goes into
//! one of [`SLOTS`] slots instead of back to `malloc`, and the next request
//! of the same size takes it. Without them, a temporary larger than glibc's
//! mmap threshold is mapped and unmapped on every call, and each call pays
//! a page fault per 4 KiB of it (measured: an attention head with two 8 MiB
//! temporaries ran 14 ms per call from Python against 6.7 ms with the
//! blocks kept). The slots are taken and filled with compare-and-swap, so
//! calls on several threads at once stay safe (a block is in at most one
//! place). At most [`SLOTS`] blocks stay allocated after a call: the
//! temporaries of the largest calls, like an inference runtime's arena.
//!
//! Every block carries its `malloc` pointer and its size in the 16 bytes
//! before the address handed out.

/// Slots of kept blocks per library.
pub const SLOTS: usize = 16;

/// Blocks smaller than this go straight back to `malloc` (glibc serves them
/// from its own free lists, without system calls).
pub const MIN_KEPT_BYTES: u64 = 64 * 1024;

/// The three functions and the slots, as LLVM IR.
fn definitions() -> String {
    format!(
        r#"
@archc.kept_blocks = internal global [{SLOTS} x ptr] zeroinitializer, align 8

define internal ptr @_mlir_memref_to_llvm_alloc(i64 %size) {{
  %p = call ptr @_mlir_memref_to_llvm_aligned_alloc(i64 16, i64 %size)
  ret ptr %p
}}

define internal ptr @_mlir_memref_to_llvm_aligned_alloc(i64 %align, i64 %size) {{
entry:
  %keep = icmp uge i64 %size, {MIN_KEPT_BYTES}
  br i1 %keep, label %scan, label %fresh
scan:
  %i = phi i64 [ 0, %entry ], [ %next, %skip ]
  %slot = getelementptr inbounds [{SLOTS} x ptr], ptr @archc.kept_blocks, i64 0, i64 %i
  %p = load atomic ptr, ptr %slot acquire, align 8
  %empty = icmp eq ptr %p, null
  br i1 %empty, label %skip, label %take
take:
  %taken = cmpxchg ptr %slot, ptr %p, ptr null acq_rel acquire
  %won = extractvalue {{ ptr, i1 }} %taken, 1
  br i1 %won, label %check, label %skip
check:
  %size_at = getelementptr inbounds i8, ptr %p, i64 -8
  %kept_size = load i64, ptr %size_at, align 8
  %same = icmp eq i64 %kept_size, %size
  %address = ptrtoint ptr %p to i64
  %align_mask = sub i64 %align, 1
  %misaligned = and i64 %address, %align_mask
  %aligned = icmp eq i64 %misaligned, 0
  %fits = and i1 %same, %aligned
  br i1 %fits, label %hit, label %put_back
hit:
  ret ptr %p
put_back:
  %returned = cmpxchg ptr %slot, ptr null, ptr %p acq_rel acquire
  %back = extractvalue {{ ptr, i1 }} %returned, 1
  br i1 %back, label %skip, label %drop
drop:
  %drop_at = getelementptr inbounds i8, ptr %p, i64 -16
  %drop_raw = load ptr, ptr %drop_at, align 8
  call void @free(ptr %drop_raw)
  br label %skip
skip:
  %next = add i64 %i, 1
  %more = icmp ult i64 %next, {SLOTS}
  br i1 %more, label %scan, label %fresh
fresh:
  %wide = icmp ugt i64 %align, 16
  %a = select i1 %wide, i64 %align, i64 16
  %extra = add i64 %a, 16
  %total = add i64 %size, %extra
  %raw = call ptr @malloc(i64 %total)
  %failed = icmp eq ptr %raw, null
  br i1 %failed, label %out_of_memory, label %place
out_of_memory:
  ret ptr null
place:
  %raw_address = ptrtoint ptr %raw to i64
  %past_header = add i64 %raw_address, 16
  %a_mask = sub i64 %a, 1
  %rounded_up = add i64 %past_header, %a_mask
  %keep_bits = xor i64 %a_mask, -1
  %user_address = and i64 %rounded_up, %keep_bits
  %offset = sub i64 %user_address, %raw_address
  %user = getelementptr inbounds i8, ptr %raw, i64 %offset
  %raw_at = getelementptr inbounds i8, ptr %user, i64 -16
  store ptr %raw, ptr %raw_at, align 8
  %user_size_at = getelementptr inbounds i8, ptr %user, i64 -8
  store i64 %size, ptr %user_size_at, align 8
  ret ptr %user
}}

define internal void @_mlir_memref_to_llvm_free(ptr %p) {{
entry:
  %none = icmp eq ptr %p, null
  br i1 %none, label %done, label %look
look:
  %size_at = getelementptr inbounds i8, ptr %p, i64 -8
  %size = load i64, ptr %size_at, align 8
  %keep = icmp uge i64 %size, {MIN_KEPT_BYTES}
  br i1 %keep, label %scan, label %release
scan:
  %i = phi i64 [ 0, %look ], [ %next, %occupied ]
  %slot = getelementptr inbounds [{SLOTS} x ptr], ptr @archc.kept_blocks, i64 0, i64 %i
  %stored = cmpxchg ptr %slot, ptr null, ptr %p acq_rel acquire
  %ok = extractvalue {{ ptr, i1 }} %stored, 1
  br i1 %ok, label %done, label %occupied
occupied:
  %next = add i64 %i, 1
  %more = icmp ult i64 %next, {SLOTS}
  br i1 %more, label %scan, label %release
release:
  %raw_at = getelementptr inbounds i8, ptr %p, i64 -16
  %raw = load ptr, ptr %raw_at, align 8
  call void @free(ptr %raw)
  br label %done
done:
  ret void
}}
"#
    )
}

/// `llvm_ir` with the allocation functions it declares defined (see the
/// module docs); unchanged when it allocates nothing.
pub fn with_kept_blocks(llvm_ir: &str) -> Option<String> {
    if !llvm_ir.contains("@_mlir_memref_to_llvm_") {
        return None;
    }
    let mut out = String::with_capacity(llvm_ir.len() + 4096);
    for line in llvm_ir.lines() {
        if line.starts_with("declare") && line.contains("@_mlir_memref_to_llvm_") {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    if !llvm_ir.contains("@malloc(i64") {
        out.push_str("declare ptr @malloc(i64)\n");
    }
    if !llvm_ir.contains("@free(ptr") {
        out.push_str("declare void @free(ptr)\n");
    }
    out.push_str(&definitions());
    Some(out)
}
