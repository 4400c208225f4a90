//! A workload as MLIR text: one `func.func` named after the workload whose
//! arguments are its inputs and weights and whose results are its outputs,
//! every compute op one or more `linalg.generic` ops on tensors.
//!
//! An op's index variables are the generic's dimensions (`d0`, `d1`, ...:
//! output variables first, then reduced ones); every tensor access becomes
//! an indexing map from its affine index (`x[n, c, p + r, q + s]` reads
//! `(d0, d4, d2 + d5, d3 + d6)`). A body that is one reduction (`sum[k] a *
//! b`) is one generic with `reduction` iterators accumulating into an output
//! filled with the reduction's identity. A reduction nested in element-wise
//! work (`relu(sum[k] ... + b[j])`) is computed first into a temporary, then
//! the element-wise rest reads it: fusing them again is the scheduler's job.
//!
//! Built so far: float element types (f64, f32, f16, bf16), with `extf` /
//! `truncf` where types meet. Integer, fp8 and spike tensors and neuron
//! models are refused with [`LowerError::Unsupported`].

use arch_sema::dtype::DType;
use arch_sema::model::{Affine, Builtin, Op, OpKind, ScalarExpr, WorkloadModel};
use arch_syntax::ast::{BinOp, ReduceOp, Role};
use std::fmt::Write;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LowerError {
    Unsupported(String),
}

impl std::fmt::Display for LowerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LowerError::Unsupported(what) => write!(f, "lowering does not handle {what} yet"),
        }
    }
}

impl std::error::Error for LowerError {}

/// The MLIR element type of a float dtype.
pub(crate) fn float_type(d: DType) -> Result<&'static str, LowerError> {
    match d {
        DType::F64 => Ok("f64"),
        DType::F32 => Ok("f32"),
        DType::F16 => Ok("f16"),
        DType::BF16 => Ok("bf16"),
        other => Err(LowerError::Unsupported(format!(
            "`{}` tensors (float types only so far)",
            other.name()
        ))),
    }
}

/// The lines computing builtin `func` of `xs` into `result`, on values of
/// type `ty` (a float, or a vector of floats); `one` is the constant 1 with
/// its type (`1.0 : f32`, `dense<1.0> : vector<8xf32>`).
pub(crate) fn builtin_call(
    func: Builtin,
    result: &str,
    xs: &[String],
    ty: &str,
    one: &str,
    fresh: &mut dyn FnMut(&str) -> String,
) -> Vec<String> {
    let x = xs.first().cloned().unwrap_or_default();
    let unary = |m: &str| vec![format!("{result} = {m} {x} : {ty}")];
    // f32 transcendental functions as arithmetic that vectorizes.
    let expanded = match func {
        Builtin::Exp => Some("exp"),
        Builtin::Tanh => Some("tanh"),
        Builtin::Erf => Some("erf"),
        Builtin::Sigmoid => Some("sigmoid"),
        _ => None,
    };
    if let Some(lines) = expanded.and_then(|f| crate::fastmath::expand(f, result, &x, ty, fresh)) {
        return lines;
    }
    match func {
        Builtin::Exp => unary("math.exp"),
        Builtin::Log => unary("math.log"),
        Builtin::Sqrt => unary("math.sqrt"),
        Builtin::Tanh => unary("math.tanh"),
        Builtin::Abs => unary("math.absf"),
        Builtin::Erf => unary("math.erf"),
        Builtin::Sigmoid => {
            let (n, e, c1, d) = (fresh("v"), fresh("v"), fresh("c"), fresh("v"));
            vec![
                format!("{n} = arith.negf {x} : {ty}"),
                format!("{e} = math.exp {n} : {ty}"),
                format!("{c1} = arith.constant {one}"),
                format!("{d} = arith.addf {c1}, {e} : {ty}"),
                format!("{result} = arith.divf {c1}, {d} : {ty}"),
            ]
        }
        Builtin::Max | Builtin::Min => {
            let y = xs.get(1).cloned().unwrap_or_default();
            let m = if func == Builtin::Max {
                "arith.maximumf"
            } else {
                "arith.minimumf"
            };
            vec![format!("{result} = {m} {x}, {y} : {ty}")]
        }
    }
}

/// The lines computing `v = a <op> b` on floats of type `t` (`flags`: a
/// fastmath attribute for the arithmetic ops, e.g. ` fastmath<contract>`);
/// a comparison gives 1.0 or 0.0.
pub(crate) fn binary_lines(
    op: BinOp,
    (v, a, b, t): (&str, &str, &str, &str),
    flags: &str,
    fresh: &mut dyn FnMut(&str) -> String,
) -> Result<Vec<String>, LowerError> {
    let arith = |m: &str| vec![format!("{v} = arith.{m} {a}, {b}{flags} : {t}")];
    Ok(match op {
        BinOp::Add => arith("addf"),
        BinOp::Sub => arith("subf"),
        BinOp::Mul => arith("mulf"),
        BinOp::Div => arith("divf"),
        BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge | BinOp::Eq => {
            let predicate = match op {
                BinOp::Lt => "olt",
                BinOp::Le => "ole",
                BinOp::Gt => "ogt",
                BinOp::Ge => "oge",
                _ => "oeq",
            };
            let c = fresh("b");
            vec![
                format!("{c} = arith.cmpf {predicate}, {a}, {b} : {t}"),
                format!("{v} = arith.uitofp {c} : i1 to {t}"),
            ]
        }
        BinOp::MatMul => return Err(LowerError::Unsupported("an unexpanded `@`".into())),
    })
}

/// Bits of an MLIR float type name (16 for `f16` and `bf16`).
pub(crate) fn float_bits(t: &str) -> u32 {
    match t {
        "f64" => 64,
        "f32" => 32,
        _ => 16,
    }
}

/// The type a reduction producing `elem` accumulates in: f32 for 16-bit
/// floats (as hardware does), else the type itself.
pub(crate) fn accumulator(elem: &'static str) -> &'static str {
    match elem {
        "f16" | "bf16" => "f32",
        other => other,
    }
}

/// A tensor name as an SSA name (`%x`): letters, digits, `_` and `.`.
fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// `memref<AxBxT>`: the buffer of a tensor of `shape` and `elem`.
pub(crate) fn memref_type(shape: &[u64], elem: &str) -> String {
    format!("memref{}", &tensor_type(shape, elem)["tensor".len()..])
}

fn tensor_type(shape: &[u64], elem: &str) -> String {
    let dims: Vec<String> = shape.iter().map(u64::to_string).collect();
    if dims.is_empty() {
        format!("tensor<{elem}>")
    } else {
        format!("tensor<{}x{elem}>", dims.join("x"))
    }
}

/// `(d0, d1, d2) -> (d0 + d2 * 2, d1)`.
fn affine_map(rank: usize, index: &[Affine]) -> String {
    let dims: Vec<String> = (0..rank).map(|d| format!("d{d}")).collect();
    let results: Vec<String> = index
        .iter()
        .map(|a| {
            let mut terms: Vec<String> = a
                .terms
                .iter()
                .filter(|(_, c)| *c != 0)
                .map(|(v, c)| match c {
                    1 => format!("d{v}"),
                    c => format!("d{v} * {c}"),
                })
                .collect();
            if a.offset != 0 || terms.is_empty() {
                terms.push(a.offset.to_string());
            }
            terms.join(" + ")
        })
        .collect();
    format!(
        "affine_map<({}) -> ({})>",
        dims.join(", "),
        results.join(", ")
    )
}

/// A float constant as MLIR writes it (`-inf` and `inf` in hex).
pub(crate) fn float_constant(x: f64, elem: &str) -> String {
    if x.is_finite() {
        // MLIR's float literals need a decimal point: `1.00000000000000000e0`.
        return format!("{x:.17e}");
    }
    let neg = x < 0.0;
    match (elem, neg) {
        ("f64", false) => "0x7FF0000000000000".into(),
        ("f64", true) => "0xFFF0000000000000".into(),
        ("f32", false) => "0x7F800000".into(),
        ("f32", true) => "0xFF800000".into(),
        ("f16", false) => "0x7C00".into(),
        ("f16", true) => "0xFC00".into(),
        (_, false) => "0x7F80".into(),
        (_, true) => "0xFF80".into(),
    }
}

/// Writes the text of one module.
struct Writer<'w> {
    w: &'w WorkloadModel,
    out: String,
    next: usize,
    /// The SSA value holding each tensor once it exists.
    values: Vec<Option<String>>,
    /// The argument an output is written into: its tensor value and the
    /// line that makes it, emitted where an op first writes it.
    destinations: Vec<Option<(String, String)>>,
    /// Outputs a kernel wrote straight into their argument.
    in_place: Vec<bool>,
    /// Memref arguments by tensor.
    arguments: Vec<Option<String>>,
    /// Kernel functions to add to the module.
    kernels: Vec<String>,
    /// The op being lowered, and every linalg op emitted so far.
    current_op: usize,
    parts: Vec<Part>,
}

/// One linalg op of the lowered module, in the order emitted (the order a
/// transform script's `structured.match` finds them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// The workload op (index into `WorkloadModel::ops`) it belongs to.
    pub op: usize,
    pub kind: PartKind,
    /// The generic's dimensions as the op's variables (empty for a fill).
    pub dims: Vec<usize>,
    /// Every access indexes with plain variables (`x[i, k]`, not
    /// `x[p + r]` or `x[2 * p]`): what masked vectorization needs.
    pub plain_indexing: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartKind {
    /// `linalg.fill` of a reduction's identity.
    Fill,
    /// A reducing `linalg.generic`.
    Reduce,
    /// An element-wise `linalg.generic`.
    Pointwise,
}

impl Writer<'_> {
    /// The tensor an op writes output `t` through (made here, once).
    fn destination(&mut self, t: usize) -> Option<String> {
        let (value, line) = self.destinations[t].take()?;
        let _ = writeln!(self.out, "{line}");
        Some(value)
    }

    fn fresh(&mut self, prefix: &str) -> String {
        self.next += 1;
        format!("%{prefix}{}", self.next)
    }

    fn elem(&self, t: usize) -> Result<&'static str, LowerError> {
        float_type(self.w.tensors[t].dtype)
    }
}

/// The tensors the exported function takes, in declaration order: every
/// input, weight and output (intermediates live inside it).
pub fn abi_tensors(w: &WorkloadModel) -> Vec<usize> {
    (0..w.tensors.len())
        .filter(|i| w.tensors[*i].role != Role::Intermediate)
        .collect()
}

/// Lowers every compute op of `w` into one function: it takes a memref per
/// input, weight and output ([`abi_tensors`]; bare pointers once lowered,
/// the C ABI), computes on tensors (`bufferization.to_tensor` of each
/// argument), writes each output into its argument with
/// `bufferization.materialize_in_destination` and returns an `i32` status
/// (0). The tensor body is what bufferization later turns into in-place
/// memref code.
pub fn lower(w: &WorkloadModel) -> Result<String, LowerError> {
    lower_parts(w, &[]).map(|(text, _)| text)
}

/// An op computed by a hand-written kernel instead of linalg.
#[derive(Debug, Clone, PartialEq)]
pub enum Kernel {
    /// The packed matrix-product kernel ([`crate::gemm`]).
    Gemm(Box<crate::gemm::Gemm>, crate::gemm::Blocks),
    /// The one-row product kernel ([`crate::skinny`]).
    Skinny(Box<crate::gemm::Gemm>, arch_cost::kernel_shape::SkinnyPlan),
    /// The window kernel ([`crate::window`]) on this many threads, with
    /// vectors of this many lanes.
    Window(Box<arch_cost::kernel_shape::Window>, u64, u64),
    /// The row-reduction kernel ([`crate::rowreduce`]) on this many threads.
    RowReduce(Box<crate::rowreduce::RowReduce>, u64),
    /// A row chain's kernel ([`crate::rowchain`]) on this many threads, at
    /// the chain's first op.
    RowChain(Box<crate::rowchain::ChainKernel>, u64),
    /// Computed by the row chain of an earlier op.
    InChain,
}

/// [`lower`], with the ops in `kernels` (by op index) computed by their
/// kernel instead of linalg, and the linalg ops it emitted, in order.
pub fn lower_parts(
    w: &WorkloadModel,
    kernels: &[Option<Kernel>],
) -> Result<(String, Vec<Part>), LowerError> {
    let mut wr = Writer {
        w,
        out: String::new(),
        next: 0,
        values: vec![None; w.tensors.len()],
        destinations: vec![None; w.tensors.len()],
        in_place: vec![false; w.tensors.len()],
        arguments: vec![None; w.tensors.len()],
        kernels: Vec::new(),
        current_op: 0,
        parts: Vec::new(),
    };
    let mut args = Vec::new();
    let mut memrefs = Vec::new();
    for i in abi_tensors(w) {
        let t = &w.tensors[i];
        let arg = format!("%arg{}", args.len());
        let tensor = tensor_type(&t.shape, wr.elem(i)?);
        let memref = memref_type(&t.shape, wr.elem(i)?);
        // No `llvm.noalias` (the header's `restrict` allows it): with it,
        // LLVM made a depthwise convolution on two threads 3x slower.
        args.push(format!("{arg}: {memref}"));
        let value = format!("%t_{}", sanitize(&t.name));
        wr.arguments[i] = Some(arg.clone());
        if t.role == Role::Output {
            let line = format!(
                "    {value} = bufferization.to_tensor {arg} restrict writable : {memref} to {tensor}"
            );
            wr.destinations[i] = Some((value, line));
        } else {
            wr.values[i] = Some(value.clone());
            let _ = writeln!(
                wr.out,
                "    {value} = bufferization.to_tensor {arg} restrict : {memref} to {tensor}"
            );
        }
        memrefs.push((i, arg, memref, tensor));
    }
    for (i, op) in w.ops.iter().enumerate() {
        if let OpKind::Neuron { model, .. } = &op.kind {
            return Err(LowerError::Unsupported(format!(
                "neuron models (`{model}`)"
            )));
        }
        wr.current_op = i;
        match kernels.get(i).and_then(|k| k.as_ref()) {
            Some(Kernel::Gemm(g, blocks)) => lower_kernel(&mut wr, op, g, *blocks)?,
            Some(Kernel::Skinny(g, plan)) => {
                let name = format!("{}_kernel{}", wr.w.name, wr.current_op);
                let text = crate::skinny::kernel(g, &name, plan);
                let scratch = crate::skinny::scratch_types(g, plan);
                lower_contraction(&mut wr, op, g, (&name, text), &scratch)?
            }
            Some(Kernel::RowReduce(r, threads)) => lower_row_reduce(&mut wr, op, r, *threads)?,
            Some(Kernel::Window(win, threads, lanes)) => {
                lower_window(&mut wr, op, win, (*threads, *lanes))?
            }
            Some(Kernel::RowChain(c, threads)) => lower_row_chain(&mut wr, c, *threads)?,
            Some(Kernel::InChain) => {}
            None => lower_op(&mut wr, op)?,
        }
    }
    for (i, arg, memref, tensor) in &memrefs {
        if w.tensors[*i].role != Role::Output || wr.in_place[*i] {
            continue;
        }
        let value = wr.values[*i].clone().ok_or_else(|| {
            LowerError::Unsupported(format!(
                "output `{}` that no op computes",
                w.tensors[*i].name
            ))
        })?;
        let _ = writeln!(
            wr.out,
            "    bufferization.materialize_in_destination {value} in restrict writable {arg} : ({tensor}, {memref}) -> ()"
        );
    }
    let status = wr.fresh("status");
    let _ = writeln!(wr.out, "    {status} = arith.constant 0 : i32");
    let mut text = String::new();
    let _ = writeln!(text, "module {{");
    let _ = writeln!(
        text,
        "  func.func @{}({}) -> i32 {{",
        w.name,
        args.join(", "),
    );
    text.push_str(&wr.out);
    let _ = writeln!(text, "    func.return {status} : i32");
    let _ = writeln!(text, "  }}");
    for k in &wr.kernels {
        text.push_str(k);
    }
    let _ = writeln!(text, "}}");
    Ok((text, wr.parts))
}

/// A new 64-byte aligned buffer of memref type `ty`.
fn alloc(wr: &mut Writer<'_>, prefix: &str, ty: &str) -> String {
    let b = wr.fresh(prefix);
    let _ = writeln!(
        wr.out,
        "    {b} = memref.alloc() {{alignment = 64 : i64}} : {ty}"
    );
    b
}

/// `buffer` (of `v`'s tensor) as the kernel sees it: its groups of
/// dimensions collapsed (a view of the same buffer, no copy).
fn collapsed(wr: &mut Writer<'_>, buffer: String, v: &arch_cost::kernel_shape::View) -> String {
    if v.is_identity() {
        return buffer;
    }
    let groups: Vec<String> = v
        .reassociation
        .iter()
        .map(|g| {
            let dims: Vec<String> = g.iter().map(usize::to_string).collect();
            format!("[{}]", dims.join(", "))
        })
        .collect();
    let view = wr.fresh("view");
    let _ = writeln!(
        wr.out,
        "    {view} = memref.collapse_shape {buffer} [{}] : {} into {}",
        groups.join(", "),
        memref_type(&v.full, "f32"),
        v.memref()
    );
    view
}

/// `v`'s tensor as a kernel operand: its buffer read-only, seen through
/// the view; with the view's memref type.
fn read_view(
    wr: &mut Writer<'_>,
    v: &arch_cost::kernel_shape::View,
) -> Result<(String, String), LowerError> {
    let buffer = read_buffer(wr, v.tensor)?;
    Ok((collapsed(wr, buffer, v), v.memref()))
}

/// The buffer holding tensor `t`'s value, read-only.
fn read_buffer(wr: &mut Writer<'_>, t: usize) -> Result<String, LowerError> {
    let shape = wr.w.tensors[t].shape.clone();
    let tensor = tensor_type(&shape, "f32");
    let memref = memref_type(&shape, "f32");
    let value = wr.values[t].clone().ok_or_else(|| {
        LowerError::Unsupported(format!(
            "`{}` read before it is computed",
            wr.w.tensors[t].name
        ))
    })?;
    let buffer = wr.fresh("buf");
    let _ = writeln!(
        wr.out,
        "    {buffer} = bufferization.to_buffer {value} read_only : {tensor} to {memref}"
    );
    Ok(buffer)
}

/// Where a kernel writes `op`'s result: the output argument itself, else
/// a new buffer; and whether it is the argument.
fn kernel_target(wr: &mut Writer<'_>, op: &Op) -> (String, bool) {
    let out_shape = wr.w.tensors[op.output].shape.clone();
    let out_memref = memref_type(&out_shape, "f32");
    let in_place = wr.w.tensors[op.output].role == Role::Output;
    let target = match (&wr.arguments[op.output], in_place) {
        (Some(arg), true) => {
            wr.destinations[op.output] = None;
            arg.clone()
        }
        _ => alloc(wr, "buf", &out_memref),
    };
    (target, in_place)
}

/// Calls kernel `name` (its text `kernel`) with `operands` of `types`, then
/// sees its result in `target` as `op`'s tensor again.
fn call_kernel(
    wr: &mut Writer<'_>,
    op: &Op,
    name: &str,
    (operands, types): (&[String], &[String]),
    (target, in_place): (&str, bool),
    kernel: String,
) {
    let _ = writeln!(
        wr.out,
        "    func.call @{name}({}) : ({}) -> ()",
        operands.join(", "),
        types.join(", ")
    );
    kernel_result(wr, op, target, in_place);
    wr.kernels.push(kernel);
}

/// The kernel's result seen as a tensor again.
fn kernel_result(wr: &mut Writer<'_>, op: &Op, target: &str, in_place: bool) {
    let out_shape = wr.w.tensors[op.output].shape.clone();
    let out_tensor = tensor_type(&out_shape, "f32");
    let out_memref = memref_type(&out_shape, "f32");
    let value = wr.fresh("t");
    let _ = writeln!(
        wr.out,
        "    {value} = bufferization.to_tensor {target} restrict : {out_memref} to {out_tensor}"
    );
    wr.values[op.output] = Some(value);
    wr.in_place[op.output] = in_place;
}

/// `op` as a call of the row-reduction kernel.
fn lower_row_reduce(
    wr: &mut Writer<'_>,
    op: &Op,
    r: &crate::rowreduce::RowReduce,
    threads: u64,
) -> Result<(), LowerError> {
    let name = format!("{}_rows{}", wr.w.name, wr.current_op);
    let mut operands = Vec::new();
    let mut types = Vec::new();
    for v in &r.reads {
        let (operand, ty) = read_view(wr, v)?;
        operands.push(operand);
        types.push(ty);
    }
    let (target, in_place) = kernel_target(wr, op);
    operands.push(collapsed(wr, target.clone(), &r.output));
    types.push(r.output.memref());
    let text = crate::rowreduce::kernel(r, &name, threads);
    call_kernel(
        wr,
        op,
        &name,
        (&operands, &types),
        (&target, in_place),
        text,
    );
    Ok(())
}

/// A row chain as one call: every op of it at once.
fn lower_row_chain(
    wr: &mut Writer<'_>,
    c: &crate::rowchain::ChainKernel,
    threads: u64,
) -> Result<(), LowerError> {
    let name = format!("{}_chain{}", wr.w.name, wr.current_op);
    let mut operands = Vec::new();
    let mut types = Vec::new();
    for slot in c.memory_slots() {
        let (operand, ty) = read_view(wr, &c.reads[slot])?;
        operands.push(operand);
        types.push(ty);
    }
    let mut targets = Vec::new();
    for s in c.stages.iter().filter(|s| s.written) {
        let op = &wr.w.ops[s.op];
        let (target, in_place) = kernel_target(wr, op);
        operands.push(collapsed(wr, target.clone(), &s.output));
        types.push(s.output.memref());
        targets.push((s.op, target, in_place));
    }
    for _ in c.buffered() {
        let ty = c.buffer_type(threads);
        operands.push(alloc(wr, "rows", &ty));
        types.push(ty);
    }
    let _ = writeln!(
        wr.out,
        "    func.call @{name}({}) : ({}) -> ()",
        operands.join(", "),
        types.join(", ")
    );
    for (op, target, in_place) in targets {
        kernel_result(wr, &wr.w.ops[op], &target, in_place);
    }
    wr.kernels.push(crate::rowchain::kernel(c, &name, threads));
    Ok(())
}

/// `op` as a call of a packed matrix-product kernel: operands as read-only
/// buffers, the result written straight into its argument when it is an
/// output (else into a new buffer), then seen as a tensor again.
fn lower_kernel(
    wr: &mut Writer<'_>,
    op: &Op,
    g: &crate::gemm::Gemm,
    blocks: crate::gemm::Blocks,
) -> Result<(), LowerError> {
    let name = format!("{}_kernel{}", wr.w.name, wr.current_op);
    let text = crate::gemm::kernel(wr.w, g, &name, blocks);
    lower_contraction(
        wr,
        op,
        g,
        (&name, text),
        &crate::gemm::scratch_types(g, blocks),
    )
}

/// `op` as a call of contraction kernel `name` (its text): `a`, `b`, the
/// result `c`, the epilogue's reads, then new buffers of the `scratch`
/// types.
fn lower_contraction(
    wr: &mut Writer<'_>,
    op: &Op,
    g: &crate::gemm::Gemm,
    (name, text): (&str, String),
    scratch: &[String],
) -> Result<(), LowerError> {
    let mut operands = Vec::new();
    let mut types = Vec::new();
    let c_slot = 2;
    let reads: Vec<&arch_cost::kernel_shape::View> = [&g.shape.a, &g.shape.b]
        .into_iter()
        .chain(g.epilogue_reads.iter())
        .collect();
    for (at, v) in reads.iter().enumerate() {
        let (viewed, ty) = read_view(wr, v)?;
        if at == c_slot {
            operands.push(String::new());
            types.push(String::new());
        }
        operands.push(viewed);
        types.push(ty);
    }
    if operands.len() == c_slot {
        operands.push(String::new());
        types.push(String::new());
    }
    let (target, in_place) = kernel_target(wr, op);
    operands[c_slot] = collapsed(wr, target.clone(), &g.shape.c);
    types[c_slot] = g.shape.c.memref();
    for ty in scratch {
        operands.push(alloc(wr, "scratch", ty));
        types.push(ty.clone());
    }
    call_kernel(wr, op, name, (&operands, &types), (&target, in_place), text);
    Ok(())
}

/// `op` as a call of the window kernel: its reads as read-only buffers,
/// the result written into its argument when it is an output.
fn lower_window(
    wr: &mut Writer<'_>,
    op: &Op,
    win: &arch_cost::kernel_shape::Window,
    (threads, lanes): (u64, u64),
) -> Result<(), LowerError> {
    let name = format!("{}_window{}", wr.w.name, wr.current_op);
    let mut operands = vec![read_buffer(wr, win.x)?];
    if let Some((t, _)) = &win.w {
        operands.push(read_buffer(wr, *t)?);
    }
    let (target, in_place) = kernel_target(wr, op);
    operands.push(target.clone());
    let types = crate::window::argument_types(wr.w, op, win);
    let text = crate::window::kernel(wr.w, op, win, &name, threads, lanes);
    call_kernel(
        wr,
        op,
        &name,
        (&operands, &types),
        (&target, in_place),
        text,
    );
    Ok(())
}

/// Where each reduction of a body lands: the reductions nested below the
/// top are computed first into temporaries.
fn lower_op(wr: &mut Writer<'_>, op: &Op) -> Result<(), LowerError> {
    let out_elem = wr.elem(op.output)?;
    let out_shape = wr.w.tensors[op.output].shape.clone();
    let out_type = tensor_type(&out_shape, out_elem);
    match &op.body {
        // 16-bit floats accumulate in f32 (a temporary), then round once.
        ScalarExpr::Reduce {
            op: rop,
            vars,
            body,
        } if accumulator(out_elem) == out_elem => {
            let dest = wr.destination(op.output);
            let value = generic(
                wr,
                op,
                vars,
                Some(*rop),
                body,
                out_elem,
                &out_type,
                &[],
                dest,
            )?;
            wr.values[op.output] = Some(value);
        }
        body => {
            // Nested reductions first, each into a temporary over the
            // output's variables.
            let mut temps = Vec::new();
            let rewritten = hoist_reductions(wr, op, body, accumulator(out_elem), &mut temps)?;
            let dest = wr.destination(op.output);
            let value = generic(
                wr,
                op,
                &[],
                None,
                &rewritten,
                out_elem,
                &out_type,
                &temps,
                dest,
            )?;
            wr.values[op.output] = Some(value);
        }
    }
    Ok(())
}

/// Replaces every reduction in `e` by a read of a temporary it computes
/// first (`temps`: the temporaries' SSA values and types, in order).
fn hoist_reductions(
    wr: &mut Writer<'_>,
    op: &Op,
    e: &ScalarExpr,
    elem: &'static str,
    temps: &mut Vec<(String, String, &'static str)>,
) -> Result<ScalarExpr, LowerError> {
    let mut rec = |x: &ScalarExpr, temps: &mut Vec<(String, String, &'static str)>| {
        hoist_reductions(wr, op, x, elem, temps).map(Box::new)
    };
    Ok(match e {
        ScalarExpr::Reduce {
            op: rop,
            vars,
            body,
        } => {
            let shape: Vec<u64> = op.vars[..op.output_rank].iter().map(|v| v.extent).collect();
            let ty = tensor_type(&shape, elem);
            let value = generic(wr, op, vars, Some(*rop), body, elem, &ty, &[], None)?;
            temps.push((value, ty, elem));
            // A pseudo-tensor index past the workload's tensors marks it.
            ScalarExpr::Access {
                tensor: usize::MAX - (temps.len() - 1),
                index: (0..op.output_rank).map(Affine::var).collect(),
            }
        }
        ScalarExpr::Neg(x) => ScalarExpr::Neg(rec(x, temps)?),
        ScalarExpr::Binary { op: b, lhs, rhs } => ScalarExpr::Binary {
            op: *b,
            lhs: rec(lhs, temps)?,
            rhs: rec(rhs, temps)?,
        },
        ScalarExpr::Call { func, args } => ScalarExpr::Call {
            func: *func,
            args: args
                .iter()
                .map(|a| hoist_reductions(wr, op, a, elem, temps))
                .collect::<Result<_, _>>()?,
        },
        ScalarExpr::Cast { to, value } => ScalarExpr::Cast {
            to: *to,
            value: rec(value, temps)?,
        },
        other => other.clone(),
    })
}

/// Every distinct access `(tensor, index)` of `e`, in order.
fn accesses(e: &ScalarExpr, out: &mut Vec<(usize, Vec<Affine>)>) {
    arch_sema::model::collect_accesses(e, &mut |tensor, index| {
        if !out.iter().any(|(t, i)| *t == tensor && i == index) {
            out.push((tensor, index.to_vec()));
        }
    });
}

/// One `linalg.generic` computing `body` over the output variables and
/// `reduced` (with `reduce`, accumulating into an output filled with its
/// identity). Returns the SSA value of the result.
#[allow(clippy::too_many_arguments)]
fn generic(
    wr: &mut Writer<'_>,
    op: &Op,
    reduced: &[usize],
    reduce: Option<ReduceOp>,
    body: &ScalarExpr,
    elem: &'static str,
    out_type: &str,
    temps: &[(String, String, &'static str)],
    destination: Option<String>,
) -> Result<String, LowerError> {
    // Dimensions: the output variables, then the reduced ones in order.
    let mut dims: Vec<usize> = (0..op.output_rank).collect();
    dims.extend(reduced.iter().copied());
    let position = |v: usize| dims.iter().position(|d| *d == v);
    let remap = |a: &Affine| -> Result<Affine, LowerError> {
        let terms = a
            .terms
            .iter()
            .map(|(v, c)| {
                position(*v).map(|p| (p, *c)).ok_or_else(|| {
                    LowerError::Unsupported("an index variable outside its reduction".into())
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Affine {
            terms,
            offset: a.offset,
        })
    };
    let mut reads = Vec::new();
    accesses(body, &mut reads);
    let mut ins = Vec::new();
    let mut in_types = Vec::new();
    let mut maps = Vec::new();
    let mut arg_elems = Vec::new();
    for (t, index) in &reads {
        let (value, ty, e) = if *t >= wr.w.tensors.len() {
            let k = usize::MAX - t;
            let (v, ty, e) = temps.get(k).cloned().ok_or_else(|| {
                LowerError::Unsupported("a temporary that was not computed".into())
            })?;
            (v, ty, e)
        } else {
            let e = wr.elem(*t)?;
            let v = wr.values[*t].clone().ok_or_else(|| {
                LowerError::Unsupported(format!(
                    "`{}` read before it is computed",
                    wr.w.tensors[*t].name
                ))
            })?;
            (v, tensor_type(&wr.w.tensors[*t].shape, e), e)
        };
        let remapped: Vec<Affine> = index.iter().map(remap).collect::<Result<_, _>>()?;
        maps.push(affine_map(dims.len(), &remapped));
        ins.push(value);
        in_types.push(ty);
        arg_elems.push(e);
    }
    let out_index: Vec<Affine> = (0..op.output_rank).map(Affine::var).collect();
    maps.push(affine_map(dims.len(), &out_index));
    // The output: its destination argument, or empty; filled with the
    // reduction's identity when reducing.
    let empty = match destination {
        Some(d) => d,
        None => {
            let empty = wr.fresh("empty");
            let _ = writeln!(wr.out, "    {empty} = tensor.empty() : {out_type}");
            empty
        }
    };
    let init = match reduce {
        Some(r) => {
            let identity = match r {
                ReduceOp::Sum => 0.0,
                ReduceOp::Max => f64::NEG_INFINITY,
                ReduceOp::Min => f64::INFINITY,
            };
            let c = wr.fresh("cst");
            let filled = wr.fresh("init");
            let _ = writeln!(
                wr.out,
                "    {c} = arith.constant {} : {elem}",
                float_constant(identity, elem)
            );
            let _ = writeln!(
                wr.out,
                "    {filled} = linalg.fill ins({c} : {elem}) outs({empty} : {out_type}) -> {out_type}"
            );
            wr.parts.push(Part {
                op: wr.current_op,
                kind: PartKind::Fill,
                dims: Vec::new(),
                plain_indexing: true,
            });
            filled
        }
        None => empty,
    };
    let iterators: Vec<&str> = (0..dims.len())
        .map(|i| {
            if i < op.output_rank {
                "\"parallel\""
            } else {
                "\"reduction\""
            }
        })
        .collect();
    let result = wr.fresh("r");
    wr.parts.push(Part {
        op: wr.current_op,
        kind: if reduce.is_some() {
            PartKind::Reduce
        } else {
            PartKind::Pointwise
        },
        dims: dims.clone(),
        plain_indexing: reads.iter().all(|(_, index)| {
            index
                .iter()
                .all(|a| a.offset == 0 && a.terms.len() == 1 && a.terms[0].1 == 1)
        }),
    });
    let ins_clause = if ins.is_empty() {
        String::new()
    } else {
        format!("ins({} : {}) ", ins.join(", "), in_types.join(", "))
    };
    let _ = writeln!(
        wr.out,
        "    {result} = linalg.generic {{indexing_maps = [{}], iterator_types = [{}]}} {ins_clause}outs({init} : {out_type}) {{",
        maps.join(", "),
        iterators.join(", ")
    );
    // The region: one block argument per read, then the accumulator.
    let mut block_args = Vec::new();
    let mut body_values = Vec::new();
    for e in &arg_elems {
        let a = wr.fresh("in");
        block_args.push(format!("{a}: {e}"));
        body_values.push(a);
    }
    let acc = wr.fresh("acc");
    block_args.push(format!("{acc}: {elem}"));
    let _ = writeln!(wr.out, "    ^bb0({}):", block_args.join(", "));
    let mut scalar = Scalar {
        wr,
        reads: &reads,
        values: &body_values,
        elems: &arg_elems,
        dims: &dims,
    };
    let (x, x_elem) = scalar.emit(body, elem)?;
    let x = scalar.convert(x, x_elem, elem);
    let combined = match reduce {
        None => x,
        Some(r) => {
            let c = scalar.wr.fresh("v");
            let mnemonic = match r {
                ReduceOp::Sum => "arith.addf",
                ReduceOp::Max => "arith.maximumf",
                ReduceOp::Min => "arith.minimumf",
            };
            let _ = writeln!(scalar.wr.out, "      {c} = {mnemonic} {acc}, {x} : {elem}");
            c
        }
    };
    let _ = writeln!(wr.out, "      linalg.yield {combined} : {elem}");
    let _ = writeln!(wr.out, "    }} -> {out_type}");
    Ok(result)
}

/// Emits the scalar operations of a generic's region.
struct Scalar<'a, 'w> {
    wr: &'a mut Writer<'w>,
    reads: &'a [(usize, Vec<Affine>)],
    values: &'a [String],
    elems: &'a [&'static str],
    dims: &'a [usize],
}

impl Scalar<'_, '_> {
    fn line(&mut self, text: String) {
        let _ = writeln!(self.wr.out, "      {text}");
    }

    /// `x` of type `from` as `to` (`extf` to wider floats, `truncf` to
    /// narrower).
    fn convert(&mut self, x: String, from: &'static str, to: &'static str) -> String {
        if from == to {
            return x;
        }
        let bits = float_bits;
        if to == "bf16" {
            // Rounded to nearest even with integer operations: LLVM would
            // call a runtime function (`__truncsfbf2`) that not every C
            // runtime has.
            let x = if from == "f32" {
                x
            } else {
                self.convert(x, from, "f32")
            };
            let (bits32, shifted, lsb, bias, rounded, high, nan, quiet, pick, short, v) = (
                self.wr.fresh("v"),
                self.wr.fresh("v"),
                self.wr.fresh("v"),
                self.wr.fresh("v"),
                self.wr.fresh("v"),
                self.wr.fresh("v"),
                self.wr.fresh("b"),
                self.wr.fresh("v"),
                self.wr.fresh("v"),
                self.wr.fresh("v"),
                self.wr.fresh("v"),
            );
            let (c1, c16, c7fff, c40) = (
                self.wr.fresh("c"),
                self.wr.fresh("c"),
                self.wr.fresh("c"),
                self.wr.fresh("c"),
            );
            self.line(format!("{c1} = arith.constant 1 : i32"));
            self.line(format!("{c16} = arith.constant 16 : i32"));
            self.line(format!("{c7fff} = arith.constant 32767 : i32"));
            self.line(format!("{c40} = arith.constant 64 : i32"));
            self.line(format!("{bits32} = arith.bitcast {x} : f32 to i32"));
            self.line(format!("{shifted} = arith.shrui {bits32}, {c16} : i32"));
            self.line(format!("{lsb} = arith.andi {shifted}, {c1} : i32"));
            self.line(format!("{bias} = arith.addi {lsb}, {c7fff} : i32"));
            self.line(format!("{rounded} = arith.addi {bits32}, {bias} : i32"));
            self.line(format!("{high} = arith.shrui {rounded}, {c16} : i32"));
            self.line(format!("{nan} = arith.cmpf uno, {x}, {x} : f32"));
            self.line(format!("{quiet} = arith.ori {shifted}, {c40} : i32"));
            self.line(format!(
                "{pick} = arith.select {nan}, {quiet}, {high} : i32"
            ));
            self.line(format!("{short} = arith.trunci {pick} : i32 to i16"));
            self.line(format!("{v} = arith.bitcast {short} : i16 to bf16"));
            return v;
        }
        let v = self.wr.fresh("v");
        let op = if bits(to) > bits(from) || (bits(to) == bits(from) && to == "f32") {
            "arith.extf"
        } else {
            "arith.truncf"
        };
        if bits(to) == bits(from) {
            // f16 <-> bf16: through f32.
            let mid = self.wr.fresh("v");
            self.line(format!("{mid} = arith.extf {x} : {from} to f32"));
            self.line(format!("{v} = arith.truncf {mid} : f32 to {to}"));
            return v;
        }
        self.line(format!("{v} = {op} {x} : {from} to {to}"));
        v
    }

    /// Emits `e`, computed in `elem` where it has no type of its own;
    /// returns the value and its type.
    fn emit(
        &mut self,
        e: &ScalarExpr,
        elem: &'static str,
    ) -> Result<(String, &'static str), LowerError> {
        // 16-bit floats are computed in f32 (loaded, widened, rounded once
        // when stored), as the interpreter computes in f64 and stores.
        let elem = accumulator(elem);
        Ok(match e {
            ScalarExpr::Const(r) => {
                let v = self.wr.fresh("c");
                self.line(format!(
                    "{v} = arith.constant {} : {elem}",
                    float_constant(r.0, elem)
                ));
                (v, elem)
            }
            ScalarExpr::Index(var) => {
                let dim = self.dims.iter().position(|d| d == var).ok_or_else(|| {
                    LowerError::Unsupported("an index variable outside its op".into())
                })?;
                let (i, n, f) = (self.wr.fresh("i"), self.wr.fresh("n"), self.wr.fresh("v"));
                self.line(format!("{i} = linalg.index {dim} : index"));
                self.line(format!("{n} = arith.index_cast {i} : index to i64"));
                self.line(format!("{f} = arith.sitofp {n} : i64 to {elem}"));
                (f, elem)
            }
            ScalarExpr::Access { tensor, index } => {
                let k = self
                    .reads
                    .iter()
                    .position(|(t, i)| t == tensor && i == index)
                    .ok_or_else(|| LowerError::Unsupported("an unlisted access".into()))?;
                let (v, t) = (self.values[k].clone(), self.elems[k]);
                let wide = accumulator(t);
                (self.convert(v, t, wide), wide)
            }
            ScalarExpr::Neg(x) => {
                let (x, t) = self.emit(x, elem)?;
                let v = self.wr.fresh("v");
                self.line(format!("{v} = arith.negf {x} : {t}"));
                (v, t)
            }
            ScalarExpr::Binary { op, lhs, rhs } => {
                let (a, ta) = self.emit(lhs, elem)?;
                let (b, tb) = self.emit(rhs, elem)?;
                // Mixed types meet in the computation type.
                let (a, b, t) = if ta == tb {
                    (a, b, ta)
                } else {
                    let a = self.convert(a, ta, elem);
                    let b = self.convert(b, tb, elem);
                    (a, b, elem)
                };
                let v = self.wr.fresh("v");
                let wr = &mut *self.wr;
                for line in binary_lines(*op, (&v, &a, &b, t), "", &mut |p| wr.fresh(p))? {
                    self.line(line);
                }
                (v, t)
            }
            ScalarExpr::Call { func, args } => {
                let mut xs = Vec::new();
                for a in args {
                    let (x, t) = self.emit(a, elem)?;
                    xs.push(self.convert(x, t, elem));
                }
                let v = self.wr.fresh("v");
                let one = format!("1.0 : {elem}");
                let wr = &mut *self.wr;
                for line in builtin_call(*func, &v, &xs, elem, &one, &mut |p| wr.fresh(p)) {
                    self.line(line);
                }
                (v, elem)
            }
            ScalarExpr::Cast { to, value } => {
                let target = float_type(*to)?;
                let (x, t) = self.emit(value, target)?;
                let rounded = self.convert(x, t, target);
                // A cast to a 16-bit type rounds, then computing goes on in f32.
                let wide = accumulator(target);
                (self.convert(rounded, target, wide), wide)
            }
            ScalarExpr::Reduce { .. } => {
                return Err(LowerError::Unsupported(
                    "a reduction inside a reduction".into(),
                ))
            }
        })
    }
}
