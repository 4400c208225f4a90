//! GPU kernels for every compute op of a workload, written in the `gpu`,
//! `scf`, `memref` and `arith` dialects: one kernel per op, a grid of
//! thread blocks over the op's output seen as a matrix (the cost model's
//! GEMM view: `m` the rows, `n` the columns B alone indexes).
//!
//! - Each block computes one `bm x bn` tile of the output (the schedule's
//!   innermost tile, [`arch_cost::gpu::block_tile`]); which tile is the
//!   swizzle's answer for the block id ([`swizzle_lines`]), the same
//!   arithmetic the model replays ([`arch_cost::gpu::tile_of`]).
//! - The block's threads walk its tile's elements in row-major order, a
//!   block's width apart (consecutive threads, consecutive columns: loads
//!   and stores coalesce along the output's last index); each element is
//!   the op's whole expression, reductions as loops in the thread.
//!
//! The same body is emitted three ways: as a `gpu.func` kernel for NVIDIA
//! (`sm_80`, `sm_90`) or AMD (`gfx942`), and as a host function that the
//! functional check calls for every block and every thread in order
//! ([`host_module`]), so the tiling and the swizzle are checked against
//! the reference interpreter on any machine. Only the math functions
//! differ: NVIDIA's `sqrt`, `abs` and `log` are PTX instructions through
//! inline assembly (MLIR would call libdevice), AMD's and the host's are
//! the `math` dialect's; `exp`, `tanh`, `erf` and `sigmoid` are arithmetic
//! on f32 everywhere ([`crate::fastmath`]).
//!
//! Not built yet: shared-memory tiles, tensor cores (`mma.sync`, `mfma`),
//! block-level reductions, fused kernels across ops, stored precisions
//! other than the declared ones.

use crate::linalg::{
    accumulator, binary_lines, builtin_call, float_constant, float_type, memref_type, LowerError,
};
use arch_cost::cpu::LoopNest;
use arch_cost::gpu::Swizzle;
use arch_sema::model::{Affine, Builtin, Op, OpKind, ScalarExpr, WorkloadModel};
use arch_syntax::ast::{BinOp, ReduceOp, Role};
use std::fmt::Write;

/// The GPU vendors code is generated for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vendor {
    Nvidia,
    Amd,
}

/// Where a body runs: a GPU's kernel, or the host's functional check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flavor {
    Device(Vendor),
    Host,
}

/// Threads of a block at most (both vendors allow 1024).
pub const MAX_BLOCK_THREADS: u64 = 1024;

/// One kernel: the op it computes, its launch and its arguments.
#[derive(Debug, Clone, PartialEq)]
pub struct KernelPlan {
    pub op: usize,
    pub name: String,
    /// Blocks of the grid (one dimension).
    pub grid: u64,
    /// Threads of a block (one dimension).
    pub block: u64,
    /// The output tile of a block, `(bm, bn)`, and the tiles of the
    /// output, `(tiles_m, tiles_n)`.
    pub tile: (u64, u64),
    pub tiles: (u64, u64),
    pub swizzle: Swizzle,
    /// Tensors the kernel takes, in argument order: what it reads, then
    /// its output.
    pub args: Vec<usize>,
    pub shape: Shape,
    /// The op seen as a matrix product (`arch_cost::gemm::gemm_view`):
    /// rows, columns and depth, worked out once.
    pub view: arch_cost::gemm::GemmView,
}

/// How a kernel's threads compute its tile.
#[derive(Debug, Clone, PartialEq)]
pub enum Shape {
    /// Each thread computes outputs a block apart, reductions as loops.
    Simt,
    /// A contraction through shared memory ([`Staging`]).
    Staged(Staging),
    /// One output per block, its reduction split over the block's threads
    /// ([`RowReduction`]).
    RowReduced(RowReduction),
}

/// An op with one reduction (no contraction with columns of its own) along contiguous memory
/// (the innermost reduced variable is some access's last index): each
/// block computes one output; its threads take the reduced points a block
/// apart (consecutive threads, consecutive addresses), each folds its share
/// in a register, then a tree in shared memory (halving, a barrier per
/// step) leaves the block's value, which thread 0 puts through the rest of
/// the expression.
#[derive(Debug, Clone, PartialEq)]
pub struct RowReduction {
    /// The reduction (its operator and the body it folds), its variables
    /// and how many points they span.
    pub op: ReduceOp,
    pub body: ScalarExpr,
    pub vars: Vec<usize>,
    pub points: u64,
    pub elem: &'static str,
}

/// The row reduction of `op`, where its shape allows one.
fn row_reduction(
    w: &WorkloadModel,
    op: &Op,
    g: &arch_cost::gemm::GemmView,
) -> Option<RowReduction> {
    // Products with columns of their own (`n > 1`) take the staged
    // kernel or the simple one; a row's dot product with itself or with a
    // vector has none.
    if g.b.is_some() && g.n > 1 {
        return None;
    }
    let mut reductions = Vec::new();
    find_reductions(&op.body, &mut reductions);
    let [ScalarExpr::Reduce {
        op: rop,
        vars,
        body,
    }] = reductions.as_slice()
    else {
        return None;
    };
    let innermost = *vars.last()?;
    let mut along_rows = false;
    arch_sema::model::collect_accesses(body, &mut |_, index| {
        if index
            .last()
            .is_some_and(|a| a.terms.len() == 1 && a.terms[0] == (innermost, 1))
        {
            along_rows = true;
        }
    });
    let points = vars
        .iter()
        .map(|&v| op.vars[v].extent)
        .try_fold(1u64, |a, e| a.checked_mul(e))?;
    if !along_rows || points < 32 {
        return None;
    }
    Some(RowReduction {
        op: *rop,
        body: (**body).clone(),
        vars: vars.clone(),
        points,
        elem: accumulator(float_type(w.tensors[op.output].dtype).ok()?),
    })
}

/// A contraction `sum[k] a * b` (inside any element-wise epilogue) whose
/// `a` reads only row and depth variables and `b` only column and depth
/// ones: the block stages `bk`-deep slices of both in shared memory (all
/// threads load them, coalesced), then each thread accumulates a `tm x tn`
/// outer product in registers, rows `ty` apart and columns `tx` apart
/// (consecutive threads read consecutive columns of the slice); the
/// epilogue runs on each accumulator at the end.
#[derive(Debug, Clone, PartialEq)]
pub struct Staging {
    pub bk: u64,
    /// Slices held at once ([`arch_cost::gpu::slice_buffers`]): with two,
    /// the block loads the next slice into one while it multiplies the
    /// other, and waits at one barrier per slice instead of two.
    pub buffers: u64,
    pub tm: u64,
    pub tn: u64,
    /// Threads along the rows and the columns of the tile.
    pub ty: u64,
    pub tx: u64,
    /// The two operands' accesses.
    pub a: (usize, Vec<Affine>),
    pub b: (usize, Vec<Affine>),
    /// The element type the slices are held in (the accumulator's).
    pub elem: &'static str,
    /// Row variables `b` reads too (independent products: a batch), the
    /// other row variables, and their points. Tiles never span two
    /// products: each product's rows are padded to whole tiles
    /// (`rows_per_batch`).
    pub batch: Vec<usize>,
    pub m_inner: Vec<usize>,
    pub m_in: u64,
    pub rows_per_batch: u64,
    /// The block's rows (at most one product's).
    pub bm: u64,
    /// A factor outside the products: `sum(a * b) / f` or `* f`.
    pub factor: Option<(BinOp, ScalarExpr)>,
    /// Tensor cores (NVIDIA `mma.sync`), where both operands are f16 or
    /// both bf16: the warps' grid over the tile and each warp's fragments.
    pub mma: Option<Mma>,
}

/// A staged contraction on NVIDIA tensor cores: `wy x wx` warps, each
/// computing `fm x fn` fragments of 16 x 8 outputs (its tile is `16 fm x
/// 8 fn`) with `mma.sync.m16n8k16` over 16-deep steps of the slices, `a`
/// and `b` converted to `operand` (f16 or bf16) from the slices and the
/// products accumulated in f32. The block's tile is exactly the warps'.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mma {
    pub operand: &'static str,
    pub wy: u64,
    pub wx: u64,
    pub fm: u64,
    pub fn_: u64,
}

impl Mma {
    /// Fragments of one thread.
    fn fragments(&self) -> u64 {
        self.fm * self.fn_
    }
}

/// Rows, columns and depth of one `mma.sync` (f16 and bf16 operands).
const MMA_SHAPE: (u64, u64, u64) = (16, 8, arch_cost::gpu::MMA_DEPTH);

/// The warps' grid for a `bm x bn` tile computed by `warps` warps: the
/// grid whose fragments cover the tile with the least padding, at most 32
/// fragments (128 accumulators) per thread.
fn mma_grid(operand: &'static str, bm: u64, bn: u64, warps: u64) -> Option<Mma> {
    let (fr, fc, _) = MMA_SHAPE;
    (1..=warps)
        .filter(|wy| warps.is_multiple_of(*wy))
        .map(|wy| {
            let wx = warps / wy;
            Mma {
                operand,
                wy,
                wx,
                fm: bm.div_ceil(fr * wy).max(1),
                fn_: bn.div_ceil(fc * wx).max(1),
            }
        })
        .filter(|m| m.fragments() <= 32)
        .min_by_key(|m| (m.fm * m.wy * fr * m.fn_ * m.wx * fc, m.fm.abs_diff(m.fn_)))
}

use arch_cost::gpu::STATIC_SHARED_BYTES;

impl Staging {
    /// The type of a thread's accumulators: its `tm x tn` outputs, or on
    /// tensor cores its fragments' (four f32 each, as `mma.sync` holds
    /// them).
    pub fn acc_type(&self) -> String {
        match self.mma {
            Some(m) => format!("vector<{}x2x2xf32>", m.fragments()),
            None => format!("vector<{}x{}>", self.tm * self.tn, self.elem),
        }
    }

    /// The memref types of the `a` and `b` slices of a `(bm, bn)` tile
    /// (all buffers), in workgroup memory on the device.
    pub fn slice_types(&self, (bm, bn): (u64, u64), device: bool) -> (String, String) {
        let slots = if self.buffers == 2 { "2x" } else { "" };
        let space = if device {
            ", #gpu.address_space<workgroup>"
        } else {
            ""
        };
        let (bk, e) = (self.bk, self.elem);
        (
            format!("memref<{slots}{bm}x{bk}x{e}{space}>"),
            format!("memref<{slots}{bk}x{bn}x{e}{space}>"),
        )
    }
}
/// Accumulators a thread of a staged contraction keeps at most.
const THREAD_TILE: u64 = 64;

/// The staging of contraction `op` with block tile `(bm, bn)` and depth
/// step `bk`, where its shape allows one.
fn staging(
    w: &WorkloadModel,
    op: &Op,
    g: &arch_cost::gemm::GemmView,
    (bm, bn, bk): (u64, u64, u64),
    tensor_cores: bool,
) -> Option<Staging> {
    let mut reductions = Vec::new();
    find_reductions(&op.body, &mut reductions);
    let [ScalarExpr::Reduce {
        op: ReduceOp::Sum,
        vars,
        body,
    }] = reductions.as_slice()
    else {
        return None;
    };
    // `a * b`, or `(a * b) / f` and `(a * b) * f` with `f` the same for
    // every reduced point (a scale, attention's normalizer): the sum of
    // products, then the factor once.
    let reduced_vars = vars.clone();
    let free_of_reduced = |e: &ScalarExpr| {
        let mut free = true;
        let mut inner = Vec::new();
        find_reductions(e, &mut inner);
        arch_sema::model::collect_accesses(e, &mut |_, index| {
            if index
                .iter()
                .any(|a| a.terms.iter().any(|(v, _)| reduced_vars.contains(v)))
            {
                free = false;
            }
        });
        free && inner.is_empty() && !uses_index_of(e, &reduced_vars)
    };
    let (product, factor) = match &**body {
        ScalarExpr::Binary {
            op: f @ (BinOp::Div | BinOp::Mul),
            lhs,
            rhs,
        } if matches!(&**lhs, ScalarExpr::Binary { op: BinOp::Mul, .. })
            && free_of_reduced(rhs) =>
        {
            (&**lhs, Some((*f, (**rhs).clone())))
        }
        other => (other, None),
    };
    let ScalarExpr::Binary {
        op: BinOp::Mul,
        lhs,
        rhs,
    } = product
    else {
        return None;
    };
    let (
        ScalarExpr::Access {
            tensor: t1,
            index: i1,
        },
        ScalarExpr::Access {
            tensor: t2,
            index: i2,
        },
    ) = (&**lhs, &**rhs)
    else {
        return None;
    };
    let mut k_sorted = vars.clone();
    k_sorted.sort_unstable();
    let mut gk = g.k_vars.clone();
    gk.sort_unstable();
    if k_sorted != gk || t1 == t2 {
        return None;
    }
    let vars_of = |index: &[Affine]| -> Vec<usize> {
        index
            .iter()
            .flat_map(|a| a.terms.iter().map(|(v, _)| *v))
            .collect()
    };
    let within = |index: &[Affine], allowed: &[usize]| {
        vars_of(index)
            .iter()
            .all(|v| allowed.contains(v) || g.k_vars.contains(v))
    };
    // `a` reads rows and depth; `b` columns, depth, and the rows that make
    // a batch of independent products.
    let batch_of = |index: &[Affine]| -> Vec<usize> {
        let used = vars_of(index);
        g.m_vars
            .iter()
            .copied()
            .filter(|v| used.contains(v))
            .collect()
    };
    let fits = |ia: &[Affine], ib: &[Affine]| {
        let batch = batch_of(ib);
        let mut allowed = g.n_vars.clone();
        allowed.extend(&batch);
        within(ia, &g.m_vars) && within(ib, &allowed)
    };
    let (a, b) = if fits(i1, i2) {
        ((*t1, i1.clone()), (*t2, i2.clone()))
    } else if fits(i2, i1) {
        ((*t2, i2.clone()), (*t1, i1.clone()))
    } else {
        return None;
    };
    let batch = batch_of(&b.1);
    let m_inner: Vec<usize> = g
        .m_vars
        .iter()
        .copied()
        .filter(|v| !batch.contains(v))
        .collect();
    let m_in = m_inner
        .iter()
        .map(|&v| op.vars[v].extent)
        .product::<u64>()
        .max(1);
    let bm = bm.clamp(1, m_in);
    let elem = accumulator(float_type(w.tensors[op.output].dtype).ok()?);
    let bytes = if elem == "f64" { 8 } else { 4 };
    // Tensor cores: the model's threads for the tile (a warp per 64 x 64),
    // the tile padded to the warps' fragments, slices whole 16-deep steps.
    let operand = |t: usize| float_type(w.tensors[t].dtype).ok();
    let mma = match (operand(a.0), operand(b.0)) {
        (Some(x), Some(y)) if tensor_cores && x == y && matches!(x, "f16" | "bf16") => {
            let warps =
                arch_cost::gpu::block_threads_for(arch_cost::gpu::BlockTile { bm, bn, bk }, true)
                    / 32;
            mma_grid(x, bm, bn, warps)
        }
        _ => None,
    };
    let (fr, fc, fk) = MMA_SHAPE;
    let (bm, bn) = match mma {
        Some(m) => (fr * m.fm * m.wy, fc * m.fn_ * m.wx),
        None => (bm, bn),
    };
    let bk = arch_cost::gpu::slice_depth(bm, bn, bk, g.k, bytes, mma.is_some());
    let buffers = arch_cost::gpu::slice_buffers(bm, bn, bk, bytes);
    let (mut tm, mut tn) = (bm.min(8), bn.min(8));
    let threads = |tm: u64, tn: u64| bm.div_ceil(tm) * bn.div_ceil(tn);
    while threads(tm, tn) > MAX_BLOCK_THREADS && tm * tn < THREAD_TILE {
        if tm <= tn && tm < bm {
            tm *= 2;
        } else {
            tn *= 2;
        }
    }
    if threads(tm, tn) > MAX_BLOCK_THREADS
        || (bm + bn) * bytes * if mma.is_some() { fk } else { 1 } > STATIC_SHARED_BYTES
    {
        return None;
    }
    Some(Staging {
        bk,
        buffers,
        tm,
        tn,
        ty: bm.div_ceil(tm),
        tx: bn.div_ceil(tn),
        a,
        b,
        elem,
        rows_per_batch: m_in.div_ceil(bm) * bm,
        batch,
        m_inner,
        m_in,
        bm,
        factor,
        mma,
    })
}

/// Whether `e` reads the value of any of `vars` as a number (`Index`).
fn uses_index_of(e: &ScalarExpr, vars: &[usize]) -> bool {
    match e {
        ScalarExpr::Index(v) => vars.contains(v),
        ScalarExpr::Neg(x) | ScalarExpr::Cast { value: x, .. } => uses_index_of(x, vars),
        ScalarExpr::Binary { lhs, rhs, .. } => uses_index_of(lhs, vars) || uses_index_of(rhs, vars),
        ScalarExpr::Call { args, .. } => args.iter().any(|a| uses_index_of(a, vars)),
        ScalarExpr::Reduce { body, .. } => uses_index_of(body, vars),
        _ => false,
    }
}

/// Every reduction of `e` (outermost ones; a reduction's body is not
/// searched).
fn find_reductions<'e>(e: &'e ScalarExpr, out: &mut Vec<&'e ScalarExpr>) {
    match e {
        // The same reduction twice (an epilogue that uses the sum more than
        // once: gelu's `x * erf(x / sqrt 2)`) is one value.
        ScalarExpr::Reduce { .. } if out.contains(&e) => {}
        ScalarExpr::Reduce { .. } => out.push(e),
        ScalarExpr::Neg(x) | ScalarExpr::Cast { value: x, .. } => find_reductions(x, out),
        ScalarExpr::Binary { lhs, rhs, .. } => {
            find_reductions(lhs, out);
            find_reductions(rhs, out);
        }
        ScalarExpr::Call { args, .. } => args.iter().for_each(|a| find_reductions(a, out)),
        _ => {}
    }
}

/// The kernels of `w`, one per op, from each op's nest (`None`: a default
/// tile) and the schedule's swizzle.
///
/// With `tensor_cores` (NVIDIA targets), contractions of two f16 or two
/// bf16 operands run on tensor cores ([`Mma`]).
pub fn plan(
    w: &WorkloadModel,
    nests: &[Option<LoopNest>],
    swizzle: Option<Swizzle>,
    tensor_cores: bool,
) -> Result<Vec<KernelPlan>, LowerError> {
    let mut plans = Vec::new();
    for (i, op) in w.ops.iter().enumerate() {
        if !matches!(op.kind, OpKind::Compute) {
            return Err(LowerError::Unsupported(format!(
                "op `{}` on a gpu (only compute ops so far)",
                w.tensors[op.output].name
            )));
        }
        for t in op.inputs().into_iter().chain([op.output]) {
            float_type(w.tensors[t].dtype)?;
        }
        let g = arch_cost::gemm::gemm_view(w, op);
        let (bm, bn, bk) = match nests.get(i).and_then(|n| n.as_ref()) {
            Some(nest) => {
                let t = arch_cost::gpu::block_tile(&g, nest);
                (t.bm.clamp(1, g.m.max(1)), t.bn.clamp(1, g.n.max(1)), t.bk)
            }
            None => (g.m.clamp(1, 64), g.n.clamp(1, 64), 16),
        };
        let (mut bm, mut bn) = (bm, bn);
        let mut rows = g.m;
        let shape = match (
            staging(w, op, &g, (bm, bn, bk), tensor_cores),
            row_reduction(w, op, &g),
        ) {
            (Some(st), _) => {
                // Rows padded to whole tiles per product; tensor cores
                // pad columns to whole fragments too.
                bm = st.bm;
                if let Some(m) = st.mma {
                    bn = MMA_SHAPE.1 * m.fn_ * m.wx;
                }
                rows = (g.m / st.m_in) * st.rows_per_batch;
                Shape::Staged(st)
            }
            (None, Some(rr)) => {
                // One output per block: the tile is one point.
                (bm, bn) = (1, 1);
                Shape::RowReduced(rr)
            }
            _ => Shape::Simt,
        };
        // The model's threads for the tile: a staged contraction's, one per
        // `tm x tn` of the tile, or its warps on tensor cores.
        let block = match &shape {
            Shape::Staged(Staging { mma: Some(m), .. }) => m.wy * m.wx * 32,
            Shape::Staged(st) => (st.ty * st.tx).div_ceil(32) * 32,
            // A power of two (the tree halves it), a warp at least.
            Shape::RowReduced(rr) => rr.points.min(256).next_power_of_two().clamp(32, 256),
            Shape::Simt => arch_cost::gpu::block_threads_for(
                arch_cost::gpu::BlockTile { bm, bn, bk: 1 },
                false,
            ),
        }
        .min(MAX_BLOCK_THREADS);
        let tiles = (rows.div_ceil(bm), g.n.div_ceil(bn));
        let grid = tiles
            .0
            .checked_mul(tiles.1)
            .filter(|g| *g < 1 << 31)
            .ok_or_else(|| {
                LowerError::Unsupported(format!(
                    "op `{}`: a grid of more than 2^31 blocks",
                    w.tensors[op.output].name
                ))
            })?;
        let mut args = op.inputs();
        args.retain(|t| *t != op.output);
        args.push(op.output);
        plans.push(KernelPlan {
            op: i,
            name: format!("{}_{}", w.name, sanitize(&w.tensors[op.output].name)),
            grid,
            block,
            tile: (bm, bn),
            tiles,
            swizzle: swizzle.unwrap_or(Swizzle::RowMajor),
            args,
            shape,
            view: g,
        });
    }
    Ok(plans)
}

fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// The device module: one `gpu.module @kernels` holding every kernel, its
/// memref arguments static (bare pointers once lowered).
pub fn device_module(
    w: &WorkloadModel,
    plans: &[KernelPlan],
    vendor: Vendor,
) -> Result<String, LowerError> {
    let mut text =
        String::from("module attributes {gpu.container_module} {\n  gpu.module @kernels {\n");
    for p in plans {
        let args = arg_list(w, p)?;
        let _ = writeln!(
            text,
            "    gpu.func @{}({}) kernel attributes {{known_block_size = array<i32: {}, 1, 1>}} {{",
            p.name,
            args.join(", "),
            p.block
        );
        let mut em = Body::new(w, Flavor::Device(vendor), 6);
        em.line("%bid = gpu.block_id x");
        em.line("%tid = gpu.thread_id x");
        em.kernel(p)?;
        text.push_str(&em.out);
        text.push_str("      gpu.return\n    }\n");
        // Shared memory as workgroup attributions of the kernel.
        let space = "#gpu.address_space<workgroup>";
        let shared = match &p.shape {
            Shape::Staged(st) => {
                let (ta, tb) = st.slice_types(p.tile, true);
                Some(format!("%As: {ta}, %Bs: {tb}"))
            }
            Shape::RowReduced(rr) => Some(format!("%Rs: memref<{}x{}, {space}>", p.block, rr.elem)),
            Shape::Simt => None,
        };
        if let Some(shared) = shared {
            let header_end = text.rfind(") kernel attributes").unwrap_or(text.len());
            text.insert_str(header_end, &format!(") workgroup({shared}"));
        }
    }
    text.push_str("  }\n}\n");
    Ok(text)
}

/// The host module of the functional check: the function `@<workload>`
/// with the C ABI of `archc build` (a memref per input, weight and output
/// in declaration order; intermediates allocated inside) runs every
/// kernel's body for every block and every thread, in order.
pub fn host_module(w: &WorkloadModel, plans: &[KernelPlan]) -> Result<String, LowerError> {
    let mut text = String::from("module {\n");
    let abi = crate::linalg::abi_tensors(w);
    let mut params = Vec::new();
    let mut value = vec![String::new(); w.tensors.len()];
    for (k, &t) in abi.iter().enumerate() {
        let ty = tensor_memref(w, t)?;
        params.push(format!("%arg{k}: {ty}"));
        value[t] = format!("%arg{k}");
    }
    let _ = writeln!(
        text,
        "  func.func @{}({}) -> i32 {{",
        w.name,
        params.join(", ")
    );
    let mut temps = Vec::new();
    for (t, tensor) in w.tensors.iter().enumerate() {
        if tensor.role == Role::Intermediate {
            let ty = tensor_memref(w, t)?;
            value[t] = format!("%tmp{t}");
            let _ = writeln!(
                text,
                "    %tmp{t} = memref.alloc() {{alignment = 64 : i64}} : {ty}"
            );
            temps.push((t, ty));
        }
    }
    text.push_str("    %c0 = arith.constant 0 : index\n    %c1 = arith.constant 1 : index\n");
    for p in plans {
        let args: Vec<String> = p.args.iter().map(|t| value[*t].clone()).collect();
        let types: Vec<String> = p
            .args
            .iter()
            .map(|t| tensor_memref(w, *t))
            .collect::<Result<_, _>>()?;
        let _ = writeln!(
            text,
            "    %grid_{0} = arith.constant {1} : index\n    scf.for %b = %c0 to %grid_{0} step %c1 {{\n      func.call @{0}(%b, {2}) : (index, {3}) -> ()\n    }}",
            p.name,
            p.grid,
            args.join(", "),
            types.join(", ")
        );
    }
    for (t, ty) in &temps {
        let _ = writeln!(text, "    memref.dealloc %tmp{t} : {ty}");
    }
    text.push_str("    %status = arith.constant 0 : i32\n    func.return %status : i32\n  }\n");
    for p in plans {
        let args = arg_list(w, p)?;
        let _ = writeln!(
            text,
            "  func.func private @{}(%bid: index, {}) {{",
            p.name,
            args.join(", ")
        );
        let mut em = Body::new(w, Flavor::Host, 4);
        em.kernel(p)?;
        text.push_str(&em.out);
        text.push_str("    func.return\n  }\n");
    }
    text.push_str("}\n");
    Ok(text)
}

fn tensor_memref(w: &WorkloadModel, t: usize) -> Result<String, LowerError> {
    let tensor = &w.tensors[t];
    Ok(memref_type(&tensor.shape, float_type(tensor.dtype)?))
}

fn arg_list(w: &WorkloadModel, p: &KernelPlan) -> Result<Vec<String>, LowerError> {
    p.args
        .iter()
        .enumerate()
        .map(|(k, t)| Ok(format!("%a{k}: {}", tensor_memref(w, *t)?)))
        .collect()
}

/// The MLIR stages that turn [`device_module`] into assembly (the last
/// stage's `gpu.binary` holds it: [`binary_assembly`]).
pub fn device_stages(vendor: Vendor, chip: &str) -> Vec<crate::pipeline::StageSpec> {
    let (attach, convert) = match vendor {
        Vendor::Nvidia => (
            format!("nvvm-attach-target{{chip={chip} O=3}}"),
            "convert-nvgpu-to-nvvm, convert-gpu-to-nvvm{use-bare-ptr-memref-call-conv=1}"
                .to_string(),
        ),
        Vendor::Amd => (
            format!("rocdl-attach-target{{chip={chip} O=3}}"),
            format!("convert-gpu-to-rocdl{{use-bare-ptr-memref-call-conv=1 chipset={chip}}}"),
        ),
    };
    vec![
        crate::pipeline::StageSpec {
            name: "gpu",
            passes: format!(
                "builtin.module({attach}, gpu.module(lower-affine, convert-scf-to-cf, {convert}, canonicalize, cse, reconcile-unrealized-casts))"
            ),
            strip_transform_script: false,
        },
        crate::pipeline::StageSpec {
            name: "binary",
            passes: "builtin.module(gpu-module-to-binary{format=isa})".into(),
            strip_transform_script: false,
        },
    ]
}

/// The assembly (PTX or AMDGCN text) in the `gpu.binary` op of a module
/// printed after `gpu-module-to-binary{format=isa}`.
pub fn binary_assembly(module_text: &str) -> Option<String> {
    let start = module_text.find("assembly = \"")? + "assembly = \"".len();
    let bytes = module_text.as_bytes();
    let mut out = Vec::new();
    let mut i = start;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => return String::from_utf8(out).ok(),
            b'\\' if i + 1 < bytes.len() && bytes[i + 1] == b'\\' => {
                out.push(b'\\');
                i += 2;
            }
            b'\\' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    None
}

/// Emits one kernel's body.
struct Body<'w> {
    w: &'w WorkloadModel,
    flavor: Flavor,
    out: String,
    indent: usize,
    next: usize,
    /// The value the op's one reduction stands for (a staged contraction's
    /// accumulator), instead of a loop, and the factor it still takes.
    reduced: Option<String>,
    reduced_factor: Option<(BinOp, ScalarExpr)>,
}

impl<'w> Body<'w> {
    fn new(w: &'w WorkloadModel, flavor: Flavor, indent: usize) -> Self {
        Body {
            w,
            flavor,
            out: String::new(),
            indent,
            next: 0,
            reduced: None,
            reduced_factor: None,
        }
    }

    fn line(&mut self, s: impl AsRef<str>) {
        let s = s.as_ref();
        let s = match self.flavor {
            Flavor::Device(Vendor::Nvidia) => ptx_math(s).unwrap_or_else(|| s.to_string()),
            _ => s.to_string(),
        };
        let _ = writeln!(self.out, "{}{}", " ".repeat(self.indent), s);
    }

    fn fresh(&mut self, prefix: &str) -> String {
        self.next += 1;
        format!("%{prefix}{}", self.next)
    }

    fn index(&mut self, x: u64) -> String {
        let v = self.fresh("c");
        self.line(format!("{v} = arith.constant {x} : index"));
        v
    }

    fn op(&mut self, op: &str, a: &str, b: &str) -> String {
        let v = self.fresh("i");
        self.line(format!("{v} = arith.{op} {a}, {b} : index"));
        v
    }

    /// The body of kernel `p` with `%bid` and `%a0..` in scope (and, on a
    /// device, `%tid`; the host walks the threads itself).
    fn kernel(&mut self, p: &KernelPlan) -> Result<(), LowerError> {
        let (bm, bn) = p.tile;
        let (tile_r, tile_c) = self.swizzle_lines(p);
        let (bm_c, bn_c) = (self.index(bm), self.index(bn));
        let row0 = self.op("muli", &tile_r, &bm_c);
        let col0 = self.op("muli", &tile_c, &bn_c);
        match &p.shape {
            Shape::Simt => self.threads(p, &mut |em, tid| em.simt(p, tid, (&row0, &col0))),
            Shape::Staged(st) => self.staged(p, st, (&row0, &col0)),
            Shape::RowReduced(rr) => self.row_reduced(p, rr, (&row0, &col0)),
        }
    }

    /// Runs `f` for the block's thread: `%tid` on a device, every thread
    /// in order on the host.
    fn threads(
        &mut self,
        p: &KernelPlan,
        f: &mut dyn FnMut(&mut Self, &str) -> Result<(), LowerError>,
    ) -> Result<(), LowerError> {
        if matches!(self.flavor, Flavor::Device(_)) {
            return f(self, "%tid");
        }
        let (zero, one, block) = (self.index(0), self.index(1), self.index(p.block));
        let t = self.fresh("t");
        self.line(format!("scf.for {t} = {zero} to {block} step {one} {{"));
        self.indent += 2;
        f(self, &t)?;
        self.indent -= 2;
        self.line("}");
        Ok(())
    }

    /// The linear index `x` of the op's row (or column) space in range.
    fn below(&mut self, x: &str, n: u64) -> String {
        let n_c = self.index(n);
        let v = self.fresh("p");
        self.line(format!("{v} = arith.cmpi ult, {x}, {n_c} : index"));
        v
    }

    fn and(&mut self, a: &str, b: &str) -> String {
        let v = self.fresh("p");
        self.line(format!("{v} = arith.andi {a}, {b} : i1"));
        v
    }

    /// Thread `tid`'s outputs of the tile at `(row0, col0)`, a block apart.
    fn simt(
        &mut self,
        p: &KernelPlan,
        tid: &str,
        (row0, col0): (&str, &str),
    ) -> Result<(), LowerError> {
        let g = &p.view;
        let (bm, bn) = p.tile;
        let bn_c = self.index(bn);
        let elements = self.index(bm.saturating_mul(bn));
        let step = self.index(p.block);
        let e = self.fresh("e");
        self.line(format!("scf.for {e} = {tid} to {elements} step {step} {{"));
        self.indent += 2;
        let r = self.op("divui", &e, &bn_c);
        let c = self.op("remui", &e, &bn_c);
        let mi = self.op("addi", row0, &r);
        let ni = self.op("addi", col0, &c);
        let in_m = self.below(&mi, g.m);
        let in_n = self.below(&ni, g.n);
        let inside = self.and(&in_m, &in_n);
        self.line(format!("scf.if {inside} {{"));
        self.indent += 2;
        self.output(p, &mi, &ni)?;
        self.indent -= 2;
        self.line("}");
        self.indent -= 2;
        self.line("}");
        Ok(())
    }

    /// Computes and stores the op's output at row `mi`, column `ni`.
    fn output(&mut self, p: &KernelPlan, mi: &str, ni: &str) -> Result<(), LowerError> {
        let op = &self.w.ops[p.op];
        let g = &p.view;
        let mut env: Vec<Option<String>> = vec![None; op.vars.len()];
        self.unravel(mi, &g.m_vars, op, &mut env);
        self.unravel(ni, &g.n_vars, op, &mut env);
        self.output_at(p, env)
    }

    /// Computes and stores the op's output at the point `env` names.
    fn output_at(
        &mut self,
        p: &KernelPlan,
        mut env: Vec<Option<String>>,
    ) -> Result<(), LowerError> {
        let op = &self.w.ops[p.op];
        let out_elem = float_type(self.w.tensors[op.output].dtype)?;
        let (v, t) = self.emit(op, &op.body, out_elem, &mut env, p)?;
        let v = self.convert(v, t, out_elem);
        let out_arg = format!("%a{}", p.args.len() - 1);
        let at: Vec<String> = (0..op.output_rank)
            .map(|x| env[x].clone().unwrap_or_default())
            .collect();
        let ty = tensor_memref(self.w, op.output)?;
        self.line(format!(
            "memref.store {v}, {out_arg}[{}] : {ty}",
            at.join(", ")
        ));
        Ok(())
    }

    /// A staged contraction: the depth in slices through shared memory,
    /// each thread's `tm x tn` accumulators a vector carried across them.
    fn staged(
        &mut self,
        p: &KernelPlan,
        st: &Staging,
        origin: (&str, &str),
    ) -> Result<(), LowerError> {
        let g = &p.view;
        let acc_ty = st.acc_type();
        let zero = self.fresh("z");
        self.line(format!("{zero} = arith.constant dense<0.0> : {acc_ty}"));
        let c0 = self.index(0);
        let (k_c, bk_c) = (self.index(g.k), self.index(st.bk));
        let device = matches!(self.flavor, Flavor::Device(_));
        let double = st.buffers == 2;
        let (ta, tb) = st.slice_types(p.tile, device);
        let first = double.then(|| c0.clone());
        if device {
            // Double-buffered: slice 0 first; then each step loads the
            // next slice into the other buffer while it multiplies this
            // one, and one barrier ends the step.
            if double {
                self.load_slices(p, st, "%tid", &c0, origin, (&ta, &tb, first.as_deref()))?;
                self.line("gpu.barrier");
            }
            let (acc, k0, done) = (self.fresh("acc"), self.fresh("k"), self.fresh("acc"));
            self.line(format!(
                "{done} = scf.for {k0} = {c0} to {k_c} step {bk_c} iter_args({acc} = {zero}) -> ({acc_ty}) {{"
            ));
            self.indent += 2;
            let slot = if double {
                let (slot, other, next_k, more) = self.next_slice(&k0, st, g.k);
                self.line(format!("scf.if {more} {{"));
                self.indent += 2;
                self.load_slices(p, st, "%tid", &next_k, origin, (&ta, &tb, Some(&other)))?;
                self.indent -= 2;
                self.line("}");
                Some(slot)
            } else {
                self.load_slices(p, st, "%tid", &k0, origin, (&ta, &tb, None))?;
                self.line("gpu.barrier");
                None
            };
            let slices = (ta.as_str(), tb.as_str(), slot.as_deref());
            let next = match st.mma {
                Some(m) => self.mma_step(st, m, "%tid", &acc, slices),
                None => self.step_slices(p, st, "%tid", &acc, &acc_ty, slices),
            };
            self.line("gpu.barrier");
            self.line(format!("scf.yield {next} : {acc_ty}"));
            self.indent -= 2;
            self.line("}");
            return match st.mma {
                Some(m) => self.finish_mma(p, st, m, "%tid", &done, origin),
                None => self.finish(p, st, "%tid", &done, origin),
            };
        }
        let accs_ty = format!("memref<{}x{acc_ty}>", p.block);
        self.line(format!("%As = memref.alloc() : {ta}"));
        self.line(format!("%Bs = memref.alloc() : {tb}"));
        self.line(format!("%accs = memref.alloc() : {accs_ty}"));
        self.threads(p, &mut |em, t| {
            em.line(format!("memref.store {zero}, %accs[{t}] : {accs_ty}"));
            Ok(())
        })?;
        // The same phases, every thread in turn (a double-buffered step's
        // loads touch only the other buffer, so they may go first).
        if double {
            self.threads(p, &mut |em, t| {
                em.load_slices(p, st, t, &c0, origin, (&ta, &tb, first.as_deref()))
            })?;
        }
        let k0 = self.fresh("k");
        self.line(format!("scf.for {k0} = {c0} to {k_c} step {bk_c} {{"));
        self.indent += 2;
        let slot = if double {
            let (slot, other, next_k, more) = self.next_slice(&k0, st, g.k);
            self.line(format!("scf.if {more} {{"));
            self.indent += 2;
            self.threads(p, &mut |em, t| {
                em.load_slices(p, st, t, &next_k, origin, (&ta, &tb, Some(&other)))
            })?;
            self.indent -= 2;
            self.line("}");
            Some(slot)
        } else {
            self.threads(p, &mut |em, t| {
                em.load_slices(p, st, t, &k0, origin, (&ta, &tb, None))
            })?;
            None
        };
        let slices = (ta.as_str(), tb.as_str(), slot.as_deref());
        match st.mma {
            Some(m) => self.mma_step_emulated(p, st, m, &accs_ty, slices)?,
            None => self.threads(p, &mut |em, t| {
                let acc = em.fresh("acc");
                em.line(format!("{acc} = memref.load %accs[{t}] : {accs_ty}"));
                let next = em.step_slices(p, st, t, &acc, &acc_ty, slices);
                em.line(format!("memref.store {next}, %accs[{t}] : {accs_ty}"));
                Ok(())
            })?,
        }
        self.indent -= 2;
        self.line("}");
        self.threads(p, &mut |em, t| {
            let acc = em.fresh("acc");
            em.line(format!("{acc} = memref.load %accs[{t}] : {accs_ty}"));
            match st.mma {
                Some(m) => em.finish_mma(p, st, m, t, &acc, origin),
                None => em.finish(p, st, t, &acc, origin),
            }
        })?;
        self.line(format!("memref.dealloc %As : {ta}"));
        self.line(format!("memref.dealloc %Bs : {tb}"));
        self.line(format!("memref.dealloc %accs : {accs_ty}"));
        Ok(())
    }

    /// One output per block: the threads' strided partial reductions, a
    /// tree in shared memory, thread 0's epilogue.
    fn row_reduced(
        &mut self,
        p: &KernelPlan,
        rr: &RowReduction,
        (row0, col0): (&str, &str),
    ) -> Result<(), LowerError> {
        let (rop, body) = (rr.op, &rr.body);
        let e = rr.elem;
        let device = matches!(self.flavor, Flavor::Device(_));
        let ty = if device {
            format!("memref<{}x{e}, #gpu.address_space<workgroup>>", p.block)
        } else {
            format!("memref<{}x{e}>", p.block)
        };
        if !device {
            self.line(format!("%Rs = memref.alloc() : {ty}"));
        }
        let (identity, combine) = match rop {
            ReduceOp::Sum => (0.0, "addf"),
            ReduceOp::Max => (f64::NEG_INFINITY, "maximumf"),
            ReduceOp::Min => (f64::INFINITY, "minimumf"),
        };
        let flags = if combine == "addf" {
            " fastmath<contract>"
        } else {
            ""
        };
        // 1. Each thread folds the points `tid`, `tid + T`, ... .
        self.threads(p, &mut |em, tid| {
            let op = &em.w.ops[p.op];
            let g = &p.view;
            let init = em.fresh("f");
            em.line(format!("{init} = arith.constant {} : {e}", float_constant(identity, e)));
            let (points, step) = (em.index(rr.points), em.index(p.block));
            let (k, acc, out) = (em.fresh("k"), em.fresh("acc"), em.fresh("acc"));
            em.line(format!(
                "{out} = scf.for {k} = {tid} to {points} step {step} iter_args({acc} = {init}) -> ({e}) {{"
            ));
            em.indent += 2;
            let mut env: Vec<Option<String>> = vec![None; op.vars.len()];
            em.unravel(row0, &g.m_vars, op, &mut env);
            em.unravel(col0, &g.n_vars, op, &mut env);
            em.unravel(&k, &rr.vars, op, &mut env);
            let (x, t) = em.emit(op, body, e, &mut env, p)?;
            let x = em.convert(x, t, e);
            let v = em.fresh("v");
            em.line(format!("{v} = arith.{combine} {acc}, {x}{flags} : {e}"));
            em.line(format!("scf.yield {v} : {e}"));
            em.indent -= 2;
            em.line("}");
            em.line(format!("memref.store {out}, %Rs[{tid}] : {ty}"));
            Ok(())
        })?;
        // 2. Halving: threads below `s` fold in the value `s` above them.
        let mut s = p.block / 2;
        while s >= 1 {
            if device {
                self.line("gpu.barrier");
            }
            self.threads(p, &mut |em, tid| {
                let lower = em.below(tid, s);
                em.line(format!("scf.if {lower} {{"));
                em.indent += 2;
                let s_c = em.index(s);
                let other = em.op("addi", tid, &s_c);
                let (a, b, v) = (em.fresh("x"), em.fresh("x"), em.fresh("v"));
                em.line(format!("{a} = memref.load %Rs[{tid}] : {ty}"));
                em.line(format!("{b} = memref.load %Rs[{other}] : {ty}"));
                em.line(format!("{v} = arith.{combine} {a}, {b}{flags} : {e}"));
                em.line(format!("memref.store {v}, %Rs[{tid}] : {ty}"));
                em.indent -= 2;
                em.line("}");
                Ok(())
            })?;
            s /= 2;
        }
        if device {
            self.line("gpu.barrier");
        }
        // 3. Thread 0: the rest of the expression.
        self.threads(p, &mut |em, tid| {
            let first = em.below(tid, 1);
            let g = &p.view;
            let in_m = em.below(row0, g.m);
            let ok = em.and(&first, &in_m);
            em.line(format!("scf.if {ok} {{"));
            em.indent += 2;
            let c0 = em.index(0);
            let v = em.fresh("r");
            em.line(format!("{v} = memref.load %Rs[{c0}] : {ty}"));
            em.reduced = Some(v);
            let stored = em.output(p, row0, col0);
            em.reduced = None;
            stored?;
            em.indent -= 2;
            em.line("}");
            Ok(())
        })?;
        if !device {
            self.line(format!("memref.dealloc %Rs : {ty}"));
        }
        Ok(())
    }

    /// A staged contraction's padded row `x` into `env` (its product's
    /// batch variables and its row inside the product); returns whether the
    /// row exists.
    fn row_env(&mut self, st: &Staging, x: &str, op: &Op, env: &mut [Option<String>]) -> String {
        let per = self.index(st.rows_per_batch);
        let (product, inner) = if st.batch.is_empty() {
            (None, x.to_string())
        } else {
            (Some(self.op("divui", x, &per)), self.op("remui", x, &per))
        };
        if let Some(h) = product {
            self.unravel(&h, &st.batch, op, env);
        }
        self.unravel(&inner, &st.m_inner, op, env);
        self.below(&inner, st.m_in)
    }

    /// Thread `tid`'s share of loading the depth slice at `k0` of both
    /// operands into `%As` (`bm x bk`) and `%Bs` (`bk x bn`), zeros
    /// outside the op.
    fn load_slices(
        &mut self,
        p: &KernelPlan,
        st: &Staging,
        tid: &str,
        k0: &str,
        (row0, col0): (&str, &str),
        (ta, tb, slot): (&str, &str, Option<&str>),
    ) -> Result<(), LowerError> {
        let op = &self.w.ops[p.op];
        let g = &p.view;
        let (bm, bn) = p.tile;
        let step = self.index(p.block);
        for (operand, rows, cols) in [(&st.a, bm, st.bk), (&st.b, st.bk, bn)] {
            let is_a = std::ptr::eq(operand, &st.a);
            let (count, width) = (self.index(rows * cols), self.index(cols));
            let e = self.fresh("e");
            self.line(format!("scf.for {e} = {tid} to {count} step {step} {{"));
            self.indent += 2;
            let r = self.op("divui", &e, &width);
            let c = self.op("remui", &e, &width);
            // a: (row, depth); b: (depth, column), and the block's product
            // (its first row's batch variables).
            let mut env: Vec<Option<String>> = vec![None; op.vars.len()];
            let (in_outer, depth) = if is_a {
                let row = self.op("addi", row0, &r);
                (
                    self.row_env(st, &row, op, &mut env),
                    self.op("addi", k0, &c),
                )
            } else {
                let col = self.op("addi", col0, &c);
                self.unravel(&col, &g.n_vars, op, &mut env);
                let in_col = self.below(&col, g.n);
                self.row_env(st, row0, op, &mut env);
                (in_col, self.op("addi", k0, &r))
            };
            self.unravel(&depth, &g.k_vars, op, &mut env);
            let in_depth = self.below(&depth, g.k);
            let inside = self.and(&in_outer, &in_depth);
            let v = self.fresh("x");
            self.line(format!("{v} = scf.if {inside} -> ({}) {{", st.elem));
            self.indent += 2;
            let access = ScalarExpr::Access {
                tensor: operand.0,
                index: operand.1.clone(),
            };
            let (x, t) = self.emit(op, &access, st.elem, &mut env, p)?;
            let x = self.convert(x, t, st.elem);
            self.line(format!("scf.yield {x} : {}", st.elem));
            self.indent -= 2;
            self.line("} else {");
            self.indent += 2;
            let z = self.fresh("f");
            self.line(format!(
                "{z} = arith.constant {} : {}",
                float_constant(0.0, st.elem),
                st.elem
            ));
            self.line(format!("scf.yield {z} : {}", st.elem));
            self.indent -= 2;
            self.line("}");
            let (buffer, ty) = if is_a { ("%As", ta) } else { ("%Bs", tb) };
            let at = slot.map_or(String::new(), |x| format!("{x}, "));
            self.line(format!("memref.store {v}, {buffer}[{at}{r}, {c}] : {ty}"));
            self.indent -= 2;
            self.line("}");
        }
        Ok(())
    }

    /// For the step at depth `k0` of a double-buffered contraction of
    /// depth `k`: the buffer it multiplies, the other one, the next
    /// slice's depth and whether there is one.
    fn next_slice(&mut self, k0: &str, st: &Staging, k: u64) -> (String, String, String, String) {
        let (bk_c, two, one, k_c) = (
            self.index(st.bk),
            self.index(2),
            self.index(1),
            self.index(k),
        );
        let step = self.op("divui", k0, &bk_c);
        let slot = self.op("remui", &step, &two);
        let other = self.op("subi", &one, &slot);
        let next_k = self.op("addi", k0, &bk_c);
        let more = self.fresh("more");
        self.line(format!("{more} = arith.cmpi ult, {next_k}, {k_c} : index"));
        (slot, other, next_k, more)
    }

    /// Thread `tid`'s rows and columns of the tile: `(ty_i, tx_i)`.
    fn thread_origin(&mut self, st: &Staging, tid: &str) -> (String, String) {
        let tx_c = self.index(st.tx);
        (self.op("divui", tid, &tx_c), self.op("remui", tid, &tx_c))
    }

    /// Accumulates one depth slice into thread `tid`'s `acc`; returns the
    /// new vector.
    fn step_slices(
        &mut self,
        p: &KernelPlan,
        st: &Staging,
        tid: &str,
        acc: &str,
        acc_ty: &str,
        (ta, tb, slot): (&str, &str, Option<&str>),
    ) -> String {
        let (bm, bn) = p.tile;
        let e = st.elem;
        let (ty_i, tx_i) = self.thread_origin(st, tid);
        // Rows and columns past the tile (threads beyond `ty x tx`, or a
        // tile the thread grid overhangs) read its last row or column.
        let (last_r, last_c) = (self.index(bm - 1), self.index(bn - 1));
        let rows: Vec<String> = (0..st.tm)
            .map(|i| {
                let off = self.index(i * st.ty);
                let r = self.op("addi", &ty_i, &off);
                self.op("minui", &r, &last_r)
            })
            .collect();
        let cols: Vec<String> = (0..st.tn)
            .map(|j| {
                let off = self.index(j * st.tx);
                let c = self.op("addi", &tx_i, &off);
                self.op("minui", &c, &last_c)
            })
            .collect();
        let (c0, c1, bk_c) = (self.index(0), self.index(1), self.index(st.bk));
        let (kk, a, out) = (self.fresh("kk"), self.fresh("a"), self.fresh("acc"));
        self.line(format!(
            "{out} = scf.for {kk} = {c0} to {bk_c} step {c1} iter_args({a} = {acc}) -> ({acc_ty}) {{"
        ));
        self.indent += 2;
        let mut load = |at: &[String], what: &dyn Fn(&str) -> String| -> Vec<String> {
            at.iter()
                .map(|x| {
                    let v = self.fresh("s");
                    self.line(format!("{v} = {}", what(x)));
                    v
                })
                .collect()
        };
        let at = slot.map_or(String::new(), |x| format!("{x}, "));
        let av = load(&rows, &|r| format!("memref.load %As[{at}{r}, {kk}] : {ta}"));
        let bv = load(&cols, &|c| format!("memref.load %Bs[{at}{kk}, {c}] : {tb}"));
        let mut cur = a.clone();
        for (i, x) in av.iter().enumerate() {
            for (j, y) in bv.iter().enumerate() {
                let at = i as u64 * st.tn + j as u64;
                let (old, prod, sum, next) = (
                    self.fresh("o"),
                    self.fresh("m"),
                    self.fresh("s"),
                    self.fresh("acc"),
                );
                self.line(format!(
                    "{old} = vector.extract {cur}[{at}] : {e} from {acc_ty}"
                ));
                self.line(format!(
                    "{prod} = arith.mulf {x}, {y} fastmath<contract> : {e}"
                ));
                self.line(format!(
                    "{sum} = arith.addf {old}, {prod} fastmath<contract> : {e}"
                ));
                self.line(format!(
                    "{next} = vector.insert {sum}, {cur} [{at}] : {e} into {acc_ty}"
                ));
                cur = next;
            }
        }
        self.line(format!("scf.yield {cur} : {acc_ty}"));
        self.indent -= 2;
        self.line("}");
        out
    }

    /// Thread `tid`'s place on tensor cores: the first row and column of
    /// its warp's tile, and its lane's group (`lane / 4`) and place in the
    /// group (`lane % 4`), which say what it holds of each fragment (PTX
    /// ISA, "Matrix Fragments for mma.m16n8k16 with floating point type").
    fn lane_place(&mut self, m: Mma, tid: &str) -> (String, String, String, String) {
        let (warp_c, wx_c, four) = (self.index(32), self.index(m.wx), self.index(4));
        let warp = self.op("divui", tid, &warp_c);
        let lane = self.op("remui", tid, &warp_c);
        let (wr, wc) = (
            self.op("divui", &warp, &wx_c),
            self.op("remui", &warp, &wx_c),
        );
        let (rows, cols) = (
            self.index(MMA_SHAPE.0 * m.fm),
            self.index(MMA_SHAPE.1 * m.fn_),
        );
        let row = self.op("muli", &wr, &rows);
        let col = self.op("muli", &wc, &cols);
        let group = self.op("divui", &lane, &four);
        let in_group = self.op("remui", &lane, &four);
        (row, col, group, in_group)
    }

    /// The element of a slice at `(r, c)` (tile rows and depth for `a`,
    /// depth and tile columns for `b`), converted to the tensor cores'
    /// operand type.
    fn slice_operand(
        &mut self,
        slice: (&str, &str),
        slot: Option<&str>,
        (r, c): (&str, &str),
        m: Mma,
    ) -> String {
        let (buffer, ty) = slice;
        let at = slot.map_or(String::new(), |x| format!("{x}, "));
        let x = self.fresh("s");
        self.line(format!("{x} = memref.load {buffer}[{at}{r}, {c}] : {ty}"));
        let h = self.fresh("h");
        self.line(format!("{h} = arith.truncf {x} : f32 to {}", m.operand));
        h
    }

    /// Thread `tid`'s operands for one 16-deep step at depth `kk` of the
    /// slices: per fragment row `i`, `a`'s eight values (registers of two:
    /// rows `g` and `g + 8`, then the same 8 deeper, columns `2q, 2q + 1`);
    /// per fragment column `j`, `b`'s four (depths `2q, 2q + 1`, then 8
    /// deeper, column `g`).
    fn mma_operands(
        &mut self,
        m: Mma,
        tid: &str,
        kk: &str,
        (ta, tb, slot): (&str, &str, Option<&str>),
    ) -> (Vec<Vec<String>>, Vec<Vec<String>>) {
        let (row, col, group, in_group) = self.lane_place(m, tid);
        let two = self.index(2);
        let pair = self.op("muli", &in_group, &two);
        let depth = self.op("addi", kk, &pair);
        let step = |em: &mut Self, x: &str, by: u64| {
            let c = em.index(by);
            em.op("addi", x, &c)
        };
        let a_rows = self.op("addi", &row, &group);
        let mut a = Vec::new();
        for i in 0..m.fm {
            let r0 = step(self, &a_rows, MMA_SHAPE.0 * i);
            let r1 = step(self, &r0, 8);
            let mut values = Vec::new();
            for (r, d) in [(&r0, 0), (&r1, 0), (&r0, 8), (&r1, 8)] {
                for half in 0..2 {
                    let k = step(self, &depth, d + half);
                    values.push(self.slice_operand(("%As", ta), slot, (r, &k), m));
                }
            }
            a.push(values);
        }
        let b_cols = self.op("addi", &col, &group);
        let mut b = Vec::new();
        for j in 0..m.fn_ {
            let c = step(self, &b_cols, MMA_SHAPE.1 * j);
            let mut values = Vec::new();
            for d in [0, 8] {
                for half in 0..2 {
                    let k = step(self, &depth, d + half);
                    values.push(self.slice_operand(("%Bs", tb), slot, (&k, &c), m));
                }
            }
            b.push(values);
        }
        (a, b)
    }

    /// One slice on tensor cores (a device's thread `tid`): every 16-deep
    /// step, each fragment's `mma.sync`; returns the new accumulators.
    fn mma_step(
        &mut self,
        st: &Staging,
        m: Mma,
        tid: &str,
        acc: &str,
        slices: (&str, &str, Option<&str>),
    ) -> String {
        let acc_ty = st.acc_type();
        let op_ty = m.operand;
        let (c0, bk_c, k_step) = (self.index(0), self.index(st.bk), self.index(MMA_SHAPE.2));
        let (kk, a, out) = (self.fresh("kk"), self.fresh("a"), self.fresh("acc"));
        self.line(format!(
            "{out} = scf.for {kk} = {c0} to {bk_c} step {k_step} iter_args({a} = {acc}) -> ({acc_ty}) {{"
        ));
        self.indent += 2;
        let (av, bv) = self.mma_operands(m, tid, &kk, slices);
        let cur = if op_ty == "bf16" {
            self.mma_bf16(m, &acc_ty, &a, (&av, &bv))
        } else {
            self.mma_f16(m, &acc_ty, &a, (&av, &bv))
        };
        self.line(format!("scf.yield {cur} : {acc_ty}"));
        self.indent -= 2;
        self.line("}");
        out
    }

    /// The `mma.sync`s of one 16-deep step for f16 operands, through
    /// nvgpu: each fragment's operands as one vector, the accumulators as
    /// `vector<2x2xf32>`. Returns the new accumulators.
    fn mma_f16(
        &mut self,
        m: Mma,
        acc_ty: &str,
        acc: &str,
        (av, bv): (&[Vec<String>], &[Vec<String>]),
    ) -> String {
        let op_ty = m.operand;
        let frag = |em: &mut Self, values: &[String], ty: &str| {
            let v = em.fresh("f");
            em.line(format!(
                "{v} = vector.from_elements {} : {ty}",
                values.join(", ")
            ));
            v
        };
        let a_frags: Vec<String> = av
            .iter()
            .map(|x| frag(self, x, &format!("vector<4x2x{op_ty}>")))
            .collect();
        let b_frags: Vec<String> = bv
            .iter()
            .map(|x| frag(self, x, &format!("vector<2x2x{op_ty}>")))
            .collect();
        let mut cur = acc.to_string();
        for (i, fa) in a_frags.iter().enumerate() {
            for (j, fb) in b_frags.iter().enumerate() {
                let at = i as u64 * m.fn_ + j as u64;
                let (c, d, next) = (self.fresh("c"), self.fresh("d"), self.fresh("acc"));
                self.line(format!(
                    "{c} = vector.extract {cur}[{at}] : vector<2x2xf32> from {acc_ty}"
                ));
                self.line(format!(
                    "{d} = nvgpu.mma.sync({fa}, {fb}, {c}) {{mmaShape = [16, 8, 16]}} : (vector<4x2x{op_ty}>, vector<2x2x{op_ty}>, vector<2x2xf32>) -> vector<2x2xf32>"
                ));
                self.line(format!(
                    "{next} = vector.insert {d}, {cur} [{at}] : vector<2x2xf32> into {acc_ty}"
                ));
                cur = next;
            }
        }
        cur
    }

    /// The `mma.sync`s of one 16-deep step for bf16 operands, through the
    /// NVVM op (MLIR's nvgpu lowering takes f16 only): each register packs
    /// two operands (`vector<2xbf16>` as an i32), the four accumulators go
    /// in and come out as scalars in the fragment's order (rows `g`, `g +
    /// 8`, two columns each). Returns the new accumulators.
    fn mma_bf16(
        &mut self,
        m: Mma,
        acc_ty: &str,
        acc: &str,
        (av, bv): (&[Vec<String>], &[Vec<String>]),
    ) -> String {
        let registers = |em: &mut Self, values: &[String]| -> Vec<String> {
            values
                .chunks(2)
                .map(|pair| {
                    let (v, r) = (em.fresh("p"), em.fresh("g"));
                    em.line(format!(
                        "{v} = vector.from_elements {} : vector<2xbf16>",
                        pair.join(", ")
                    ));
                    em.line(format!("{r} = llvm.bitcast {v} : vector<2xbf16> to i32"));
                    r
                })
                .collect()
        };
        let a_regs: Vec<Vec<String>> = av.iter().map(|x| registers(self, x)).collect();
        let b_regs: Vec<Vec<String>> = bv.iter().map(|x| registers(self, x)).collect();
        let result = "!llvm.struct<(f32, f32, f32, f32)>";
        let mut cur = acc.to_string();
        for (i, fa) in a_regs.iter().enumerate() {
            for (j, fb) in b_regs.iter().enumerate() {
                let at = i as u64 * m.fn_ + j as u64;
                let places = [(0, 0), (0, 1), (1, 0), (1, 1)];
                let c: Vec<String> = places
                    .iter()
                    .map(|(r, v)| {
                        let x = self.fresh("c");
                        self.line(format!(
                            "{x} = vector.extract {cur}[{at}, {r}, {v}] : f32 from {acc_ty}"
                        ));
                        x
                    })
                    .collect();
                let d = self.fresh("d");
                self.line(format!(
                    "{d} = nvvm.mma.sync A[{}] B[{}] C[{}] {{layoutA = #nvvm.mma_layout<row>, layoutB = #nvvm.mma_layout<col>, shape = #nvvm.shape<m = 16, n = 8, k = 16>, multiplicandAPtxType = #nvvm.mma_type<bf16>, multiplicandBPtxType = #nvvm.mma_type<bf16>}} : (i32, i32, f32) -> {result}",
                    fa.join(", "),
                    fb.join(", "),
                    c.join(", ")
                ));
                for (n, (r, v)) in places.iter().enumerate() {
                    let (x, next) = (self.fresh("e"), self.fresh("acc"));
                    self.line(format!("{x} = llvm.extractvalue {d}[{n}] : {result}"));
                    self.line(format!(
                        "{next} = vector.insert {x}, {cur} [{at}, {r}, {v}] : f32 into {acc_ty}"
                    ));
                    cur = next;
                }
            }
        }
        cur
    }

    /// One slice on tensor cores, emulated on the host (every thread in
    /// turn): every 16-deep step, each thread leaves its operands in
    /// scratch memory as a warp's registers hold them; then each thread
    /// computes what `mma.sync` gives it, reading every operand from the
    /// lane and register that holds it (the same layout read backwards).
    fn mma_step_emulated(
        &mut self,
        p: &KernelPlan,
        st: &Staging,
        m: Mma,
        accs_ty: &str,
        slices: (&str, &str, Option<&str>),
    ) -> Result<(), LowerError> {
        let acc_ty = st.acc_type();
        let op_ty = m.operand;
        let (fa_ty, fb_ty) = (
            format!("memref<{}x{}x4x2x{op_ty}>", p.block, m.fm),
            format!("memref<{}x{}x2x2x{op_ty}>", p.block, m.fn_),
        );
        let (fa, fb) = (self.fresh("fa"), self.fresh("fb"));
        self.line(format!("{fa} = memref.alloc() : {fa_ty}"));
        self.line(format!("{fb} = memref.alloc() : {fb_ty}"));
        let (c0, bk_c, k_step) = (self.index(0), self.index(st.bk), self.index(MMA_SHAPE.2));
        let kk = self.fresh("kk");
        self.line(format!("scf.for {kk} = {c0} to {bk_c} step {k_step} {{"));
        self.indent += 2;
        self.threads(p, &mut |em, t| {
            let (av, bv) = em.mma_operands(m, t, &kk, slices);
            for (frags, buffer, ty) in [(&av, &fa, &fa_ty), (&bv, &fb, &fb_ty)] {
                for (i, values) in frags.iter().enumerate() {
                    for (n, v) in values.iter().enumerate() {
                        let (i_c, r_c, h_c) = (
                            em.index(i as u64),
                            em.index(n as u64 / 2),
                            em.index(n as u64 % 2),
                        );
                        em.line(format!(
                            "memref.store {v}, {buffer}[{t}, {i_c}, {r_c}, {h_c}] : {ty}"
                        ));
                    }
                }
            }
            Ok(())
        })?;
        self.threads(p, &mut |em, t| {
            let (warp_c, four, two, eight, sixteen) =
                (em.index(32), em.index(4), em.index(2), em.index(8), em.index(16));
            let (c0, c1) = (em.index(0), em.index(1));
            let warp = em.op("divui", t, &warp_c);
            let lane = em.op("remui", t, &warp_c);
            let base = em.op("muli", &warp, &warp_c);
            let group = em.op("divui", &lane, &four);
            let in_group = em.op("remui", &lane, &four);
            let acc = em.fresh("acc");
            em.line(format!("{acc} = memref.load %accs[{t}] : {accs_ty}"));
            let mut cur = acc;
            let pair = em.op("muli", &in_group, &two);
            let cols = [pair.clone(), em.op("addi", &pair, &c1)];
            for i in 0..m.fm {
                for j in 0..m.fn_ {
                    let at = i * m.fn_ + j;
                    let (i_c, j_c) = (em.index(i), em.index(j));
                    for r in 0..2u64 {
                        for v in 0..2u64 {
                            let old = em.fresh("o");
                            em.line(format!("{old} = vector.extract {cur}[{at}, {r}, {v}] : f32 from {acc_ty}"));
                            // Output row `g + 8r` of the fragment, column `2q + v`.
                            let col = &cols[v as usize];
                            let (k, sum, out) = (em.fresh("k"), em.fresh("y"), em.fresh("y"));
                            em.line(format!(
                                "{out} = scf.for {k} = {c0} to {sixteen} step {c1} iter_args({sum} = {old}) -> (f32) {{"
                            ));
                            em.indent += 2;
                            // a(row, k): lane 4 (row % 8) + (k % 8) / 2,
                            // register row / 8 + 2 (k / 8), half k % 2.
                            let k8 = em.op("remui", &k, &eight);
                            let k_pair = em.op("divui", &k8, &two);
                            let half = em.op("remui", &k, &two);
                            let k_hi = em.op("divui", &k, &eight);
                            let a_lane = em.op("muli", &group, &four);
                            let a_lane = em.op("addi", &a_lane, &k_pair);
                            let a_lane = em.op("addi", &base, &a_lane);
                            let r_c = em.index(r);
                            let a_reg = em.op("muli", &k_hi, &two);
                            let a_reg = em.op("addi", &a_reg, &r_c);
                            let x = em.fresh("x");
                            em.line(format!("{x} = memref.load {fa}[{a_lane}, {i_c}, {a_reg}, {half}] : {fa_ty}"));
                            // b(k, col): lane 4 col + (k % 8) / 2, register
                            // k / 8, half k % 2.
                            let b_lane = em.op("muli", col, &four);
                            let b_lane = em.op("addi", &b_lane, &k_pair);
                            let b_lane = em.op("addi", &base, &b_lane);
                            let y = em.fresh("x");
                            em.line(format!("{y} = memref.load {fb}[{b_lane}, {j_c}, {k_hi}, {half}] : {fb_ty}"));
                            let (xf, yf, prod, next) = (em.fresh("w"), em.fresh("w"), em.fresh("w"), em.fresh("y"));
                            em.line(format!("{xf} = arith.extf {x} : {op_ty} to f32"));
                            em.line(format!("{yf} = arith.extf {y} : {op_ty} to f32"));
                            em.line(format!("{prod} = arith.mulf {xf}, {yf} : f32"));
                            em.line(format!("{next} = arith.addf {sum}, {prod} : f32"));
                            em.line(format!("scf.yield {next} : f32"));
                            em.indent -= 2;
                            em.line("}");
                            let updated = em.fresh("acc");
                            em.line(format!("{updated} = vector.insert {out}, {cur} [{at}, {r}, {v}] : f32 into {acc_ty}"));
                            cur = updated;
                        }
                    }
                }
            }
            em.line(format!("memref.store {cur}, %accs[{t}] : {accs_ty}"));
            Ok(())
        })?;
        self.indent -= 2;
        self.line("}");
        self.line(format!("memref.dealloc {fa} : {fa_ty}"));
        self.line(format!("memref.dealloc {fb} : {fb_ty}"));
        Ok(())
    }

    /// Thread `tid`'s outputs from its fragments `acc` (row `g + 8r`,
    /// column `2q + v` of each): the op's whole expression with the
    /// contraction's value in place of the sum.
    fn finish_mma(
        &mut self,
        p: &KernelPlan,
        st: &Staging,
        m: Mma,
        tid: &str,
        acc: &str,
        origin: (&str, &str),
    ) -> Result<(), LowerError> {
        let acc_ty = st.acc_type();
        let (row, col, group, in_group) = self.lane_place(m, tid);
        let two = self.index(2);
        let pair = self.op("muli", &in_group, &two);
        let rows = self.op("addi", &row, &group);
        let cols = self.op("addi", &col, &pair);
        for i in 0..m.fm {
            for j in 0..m.fn_ {
                for r in 0..2u64 {
                    for v in 0..2u64 {
                        let (dr, dc) = (
                            self.index(MMA_SHAPE.0 * i + 8 * r),
                            self.index(MMA_SHAPE.1 * j + v),
                        );
                        let tr = self.op("addi", &rows, &dr);
                        let tc = self.op("addi", &cols, &dc);
                        let x = self.fresh("r");
                        self.line(format!(
                            "{x} = vector.extract {acc}[{}, {r}, {v}] : f32 from {acc_ty}",
                            i * m.fn_ + j
                        ));
                        self.store_output(p, st, (&tr, &tc), &x, None, origin)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Thread `tid`'s outputs from its accumulators `acc`: the op's whole
    /// expression with the contraction's value in place of the sum.
    fn finish(
        &mut self,
        p: &KernelPlan,
        st: &Staging,
        tid: &str,
        acc: &str,
        origin: (&str, &str),
    ) -> Result<(), LowerError> {
        let acc_ty = st.acc_type();
        let (ty_i, tx_i) = self.thread_origin(st, tid);
        let active = self.below(&ty_i, st.ty);
        for i in 0..st.tm {
            for j in 0..st.tn {
                let (off_r, off_c) = (self.index(i * st.ty), self.index(j * st.tx));
                let r = self.op("addi", &ty_i, &off_r);
                let c = self.op("addi", &tx_i, &off_c);
                let v = self.fresh("r");
                self.line(format!(
                    "{v} = vector.extract {acc}[{}] : {} from {acc_ty}",
                    i * st.tn + j,
                    st.elem
                ));
                self.store_output(p, st, (&r, &c), &v, Some(&active), origin)?;
            }
        }
        Ok(())
    }

    /// The output at row `r` and column `c` of the block's tile from the
    /// contraction's value `value` (where the point is inside the tile and
    /// the op's space, and `active` holds): the op's whole expression with
    /// the value in place of the sum.
    fn store_output(
        &mut self,
        p: &KernelPlan,
        st: &Staging,
        (r, c): (&str, &str),
        value: &str,
        active: Option<&str>,
        (row0, col0): (&str, &str),
    ) -> Result<(), LowerError> {
        let op = &self.w.ops[p.op];
        let g = &p.view;
        let (bm, bn) = p.tile;
        let mi = self.op("addi", row0, r);
        let ni = self.op("addi", col0, c);
        let in_r = self.below(r, bm);
        let in_c = self.below(c, bn);
        let mut env: Vec<Option<String>> = vec![None; op.vars.len()];
        let in_m = self.row_env(st, &mi, op, &mut env);
        self.unravel(&ni, &g.n_vars, op, &mut env);
        let in_n = self.below(&ni, g.n);
        let mut ok = self.and(&in_r, &in_c);
        for x in [Some(in_m.as_str()), Some(in_n.as_str()), active]
            .into_iter()
            .flatten()
        {
            ok = self.and(&ok, x);
        }
        self.line(format!("scf.if {ok} {{"));
        self.indent += 2;
        self.reduced = Some(value.to_string());
        self.reduced_factor = st.factor.clone();
        let stored = self.output_at(p, env);
        self.reduced = None;
        self.reduced_factor = None;
        stored?;
        self.indent -= 2;
        self.line("}");
        Ok(())
    }

    /// `(tile row, tile column)` of block `%bid` under the plan's swizzle,
    /// as [`arch_cost::gpu::tile_of`] computes it.
    fn swizzle_lines(&mut self, p: &KernelPlan) -> (String, String) {
        let (tiles_m, tiles_n) = p.tiles;
        let tn_c = self.index(tiles_n);
        let grouped = |em: &mut Body, pid: &str, g: u64| {
            let g = g.max(1);
            let (g_c, tm_c) = (em.index(g), em.index(tiles_m));
            let width = em.index(g.saturating_mul(tiles_n));
            let group = em.op("divui", pid, &width);
            let first = em.op("muli", &group, &g_c);
            let left = em.op("subi", &tm_c, &first);
            let size = em.op("minui", &left, &g_c);
            let within = em.op("remui", pid, &width);
            let r = em.op("remui", &within, &size);
            let row = em.op("addi", &first, &r);
            let col = em.op("divui", &within, &size);
            (row, col)
        };
        match p.swizzle {
            Swizzle::RowMajor => {
                let row = self.op("divui", "%bid", &tn_c);
                let col = self.op("remui", "%bid", &tn_c);
                (row, col)
            }
            Swizzle::Grouped(g) => grouped(self, "%bid", g),
            Swizzle::Xcd(x) => {
                // Block ids dealt round-robin to `x` L2 domains: the ids one
                // domain gets become consecutive ([`arch_cost::gpu::xcd_remap`]).
                let total = tiles_m * tiles_n;
                let x = x.max(1);
                let (q, rem) = (total / x, total % x);
                let (x_c, q_c, q1_c, rem_c) = (
                    self.index(x),
                    self.index(q),
                    self.index(q + 1),
                    self.index(rem),
                );
                let xcd = self.op("remui", "%bid", &x_c);
                let local = self.op("divui", "%bid", &x_c);
                let early = self.fresh("p");
                self.line(format!("{early} = arith.cmpi ult, {xcd}, {rem_c} : index"));
                let a = self.op("muli", &xcd, &q1_c);
                let a = self.op("addi", &a, &local);
                let base = self.op("muli", &rem_c, &q1_c);
                let late = self.op("subi", &xcd, &rem_c);
                let late = self.op("muli", &late, &q_c);
                let b = self.op("addi", &base, &late);
                let b = self.op("addi", &b, &local);
                let pid = self.fresh("i");
                self.line(format!("{pid} = arith.select {early}, {a}, {b} : index"));
                grouped(self, &pid, arch_cost::gpu::XCD_GROUP)
            }
        }
    }

    /// Splits linear index `x` over `vars` (the last fastest) into `env`.
    fn unravel(&mut self, x: &str, vars: &[usize], op: &Op, env: &mut [Option<String>]) {
        let mut rest = x.to_string();
        for (k, &v) in vars.iter().enumerate().rev() {
            if k == 0 {
                env[v] = Some(rest.clone());
                break;
            }
            let extent = self.index(op.vars[v].extent);
            env[v] = Some(self.op("remui", &rest, &extent));
            rest = self.op("divui", &rest, &extent);
        }
    }

    fn affine(&mut self, a: &Affine, env: &[Option<String>]) -> Result<String, LowerError> {
        let mut acc: Option<String> = None;
        for &(v, coef) in &a.terms {
            let var = env.get(v).cloned().flatten().ok_or_else(|| {
                LowerError::Unsupported("an index variable outside its op".into())
            })?;
            let term = if coef == 1 {
                var
            } else {
                let c = self.fresh("c");
                self.line(format!("{c} = arith.constant {coef} : index"));
                self.op("muli", &var, &c)
            };
            acc = Some(match acc {
                None => term,
                Some(s) => self.op("addi", &s, &term),
            });
        }
        let c = self.fresh("c");
        self.line(format!("{c} = arith.constant {} : index", a.offset));
        Ok(match acc {
            None => c,
            Some(s) if a.offset != 0 => self.op("addi", &s, &c),
            Some(s) => s,
        })
    }

    fn convert(&mut self, x: String, from: &'static str, to: &'static str) -> String {
        if from == to {
            return x;
        }
        let bits = crate::linalg::float_bits;
        if bits(from) == bits(to) {
            let mid = self.convert(x, from, "f32");
            return self.convert(mid, "f32", to);
        }
        let v = self.fresh("v");
        let op = if bits(to) > bits(from) {
            "extf"
        } else {
            "truncf"
        };
        self.line(format!("{v} = arith.{op} {x} : {from} to {to}"));
        v
    }

    /// Emits `e` (computed in `elem`'s accumulator type where it has no
    /// type of its own); returns the value and its type.
    fn emit(
        &mut self,
        op: &Op,
        e: &ScalarExpr,
        elem: &'static str,
        env: &mut Vec<Option<String>>,
        p: &KernelPlan,
    ) -> Result<(String, &'static str), LowerError> {
        let elem = accumulator(elem);
        Ok(match e {
            ScalarExpr::Const(r) => {
                let v = self.fresh("f");
                self.line(format!(
                    "{v} = arith.constant {} : {elem}",
                    float_constant(r.0, elem)
                ));
                (v, elem)
            }
            ScalarExpr::Index(var) => {
                let i = env.get(*var).cloned().flatten().ok_or_else(|| {
                    LowerError::Unsupported("an index variable outside its op".into())
                })?;
                let (n, f) = (self.fresh("v"), self.fresh("v"));
                self.line(format!("{n} = arith.index_cast {i} : index to i64"));
                self.line(format!("{f} = arith.sitofp {n} : i64 to {elem}"));
                (f, elem)
            }
            ScalarExpr::Access { tensor, index } => {
                let k = p.args.iter().position(|t| t == tensor).ok_or_else(|| {
                    LowerError::Unsupported("a read of a tensor the kernel does not take".into())
                })?;
                let at: Vec<String> = index
                    .iter()
                    .map(|a| self.affine(a, env))
                    .collect::<Result<_, _>>()?;
                let t = float_type(self.w.tensors[*tensor].dtype)?;
                let ty = tensor_memref(self.w, *tensor)?;
                let v = self.fresh("x");
                self.line(format!("{v} = memref.load %a{k}[{}] : {ty}", at.join(", ")));
                let wide = accumulator(t);
                (self.convert(v, t, wide), wide)
            }
            ScalarExpr::Neg(x) => {
                let (x, t) = self.emit(op, x, elem, env, p)?;
                let v = self.fresh("v");
                self.line(format!("{v} = arith.negf {x} : {t}"));
                (v, t)
            }
            ScalarExpr::Binary { op: b, lhs, rhs } => {
                let (x, tx) = self.emit(op, lhs, elem, env, p)?;
                let (y, ty) = self.emit(op, rhs, elem, env, p)?;
                let (x, y, t) = if tx == ty {
                    (x, y, tx)
                } else {
                    let x = self.convert(x, tx, elem);
                    let y = self.convert(y, ty, elem);
                    (x, y, elem)
                };
                let v = self.fresh("v");
                // `contract`: a product feeding a sum becomes one FMA.
                let mut next = self.next;
                let lines = binary_lines(*b, (&v, &x, &y, t), " fastmath<contract>", &mut |p| {
                    next += 1;
                    format!("%{p}{next}")
                })?;
                self.next = next;
                for l in lines {
                    self.line(l);
                }
                (v, t)
            }
            ScalarExpr::Call { func, args } => {
                let mut xs = Vec::new();
                for a in args {
                    let (x, t) = self.emit(op, a, elem, env, p)?;
                    xs.push(self.convert(x, t, elem));
                }
                let v = self.fresh("v");
                self.call(*func, &v, &xs, elem)?;
                (v, elem)
            }
            ScalarExpr::Cast { to, value } => {
                let target = float_type(*to)?;
                let (x, t) = self.emit(op, value, target, env, p)?;
                let rounded = self.convert(x, t, target);
                let wide = accumulator(target);
                (self.convert(rounded, target, wide), wide)
            }
            ScalarExpr::Reduce {
                op: rop,
                vars,
                body,
            } => {
                if let Some(v) = self.reduced.clone() {
                    let held = accumulator(float_type(self.w.tensors[op.output].dtype)?);
                    let Some((f, factor)) = self.reduced_factor.clone() else {
                        return Ok((v, held));
                    };
                    let (x, t) = self.emit(op, &factor, held, env, p)?;
                    let x = self.convert(x, t, held);
                    let out = self.fresh("v");
                    let mut next = self.next;
                    let lines = binary_lines(f, (&out, &v, &x, held), "", &mut |q| {
                        next += 1;
                        format!("%{q}{next}")
                    })?;
                    self.next = next;
                    for l in lines {
                        self.line(l);
                    }
                    return Ok((out, held));
                }
                let identity = match rop {
                    ReduceOp::Sum => 0.0,
                    ReduceOp::Max => f64::NEG_INFINITY,
                    ReduceOp::Min => f64::INFINITY,
                };
                let init = self.fresh("f");
                self.line(format!(
                    "{init} = arith.constant {} : {elem}",
                    float_constant(identity, elem)
                ));
                let (zero, one) = (self.index(0), self.index(1));
                // One loop per reduced variable, the accumulator carried.
                let mut results = Vec::new();
                let mut acc = init.clone();
                for &v in vars {
                    let extent = self.index(op.vars[v].extent);
                    let (iv, a, r) = (self.fresh("k"), self.fresh("acc"), self.fresh("r"));
                    self.line(format!(
                        "{r} = scf.for {iv} = {zero} to {extent} step {one} iter_args({a} = {acc}) -> ({elem}) {{"
                    ));
                    self.indent += 2;
                    env[v] = Some(iv);
                    results.push(r);
                    acc = a;
                }
                let (x, t) = self.emit(op, body, elem, env, p)?;
                let x = self.convert(x, t, elem);
                let combined = self.fresh("v");
                let m = match rop {
                    ReduceOp::Sum => "addf",
                    ReduceOp::Max => "maximumf",
                    ReduceOp::Min => "minimumf",
                };
                let flags = if m == "addf" {
                    " fastmath<contract>"
                } else {
                    ""
                };
                self.line(format!("{combined} = arith.{m} {acc}, {x}{flags} : {elem}"));
                let mut carried = combined;
                for (&v, r) in vars.iter().zip(&results).rev() {
                    self.line(format!("scf.yield {carried} : {elem}"));
                    self.indent -= 2;
                    self.line("}");
                    env[v] = None;
                    carried = r.clone();
                }
                (carried, elem)
            }
        })
    }

    /// Builtin `func` of `xs` into `v`: the shared expansions (whose `math`
    /// ops [`Body::line`] turns into PTX instructions on NVIDIA), and `log`
    /// through PTX's `lg2` there.
    fn call(
        &mut self,
        func: Builtin,
        v: &str,
        xs: &[String],
        ty: &'static str,
    ) -> Result<(), LowerError> {
        let x = xs.first().cloned().unwrap_or_default();
        if self.flavor == Flavor::Device(Vendor::Nvidia) && func == Builtin::Log && ty == "f32" {
            // log2 then times ln 2 (`lg2.approx`: about 2^-22 relative).
            let l2 = self.fresh("v");
            self.line(format!(
                "{l2} = llvm.inline_asm \"lg2.approx.f32 $0, $1;\", \"=f,f\" {x} : (f32) -> f32"
            ));
            let ln2 = self.fresh("f");
            self.line(format!(
                "{ln2} = arith.constant {} : f32",
                float_constant(std::f64::consts::LN_2, "f32")
            ));
            self.line(format!("{v} = arith.mulf {l2}, {ln2} : f32"));
            return Ok(());
        }
        let transcendental = matches!(
            func,
            Builtin::Exp | Builtin::Tanh | Builtin::Erf | Builtin::Sigmoid | Builtin::Log
        );
        if let Flavor::Device(vendor) = self.flavor {
            if transcendental && ty != "f32" {
                return Err(LowerError::Unsupported(format!(
                    "`{}` on {ty} for {vendor:?} GPUs (it needs the vendor's math library)",
                    format!("{func:?}").to_lowercase()
                )));
            }
        }
        let one = format!("1.0 : {ty}");
        let mut next = self.next;
        let lines = builtin_call(func, v, xs, ty, &one, &mut |p| {
            next += 1;
            format!("%{p}{next}g")
        });
        self.next = next;
        for l in lines {
            self.line(l);
        }
        Ok(())
    }
}

/// `%v = math.<op> <args> : <f32|f64>` as the PTX instruction that
/// computes it (inline assembly), for the `math` ops that NVIDIA's lowering
/// would turn into libdevice calls; None for any other line.
fn ptx_math(line: &str) -> Option<String> {
    let (result, rest) = line.split_once(" = math.")?;
    let (op, rest) = rest.split_once(' ')?;
    let (args, ty) = rest.rsplit_once(" : ")?;
    let (suffix, reg) = match ty.trim() {
        "f32" => ("f32", "f"),
        "f64" => ("f64", "d"),
        _ => return None,
    };
    let args: Vec<&str> = args.split(", ").map(str::trim).collect();
    // PTX operand order: `$0` the result, then the arguments in `order`.
    let (inst, order): (String, Vec<usize>) = match (op, args.len()) {
        ("absf", 1) => (format!("abs.{suffix} $0, $1;"), vec![0]),
        ("sqrt", 1) => (format!("sqrt.rn.{suffix} $0, $1;"), vec![0]),
        ("fma", 3) => (format!("fma.rn.{suffix} $0, $1, $2, $3;"), vec![0, 1, 2]),
        // copysign(a, b): a's magnitude, b's sign; PTX takes the sign first.
        ("copysign", 2) => (format!("copysign.{suffix} $0, $1, $2;"), vec![1, 0]),
        _ => return None,
    };
    let operands: Vec<&str> = order.iter().map(|&k| args[k]).collect();
    let constraints = std::iter::once(format!("={reg}"))
        .chain(operands.iter().map(|_| reg.to_string()))
        .collect::<Vec<_>>()
        .join(",");
    let types = vec![ty.trim(); operands.len()].join(", ");
    Some(format!(
        "{result} = llvm.inline_asm \"{inst}\", \"{constraints}\" {} : ({types}) -> {}",
        operands.join(", "),
        ty.trim()
    ))
}
