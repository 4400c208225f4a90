//! f32 contractions shaped like a matrix product (`c[i, j] = sum[k] a[i, k]
//! * b[k, j]`, with or without an element-wise epilogue such as bias and
//! ReLU) lowered to a packed, register-blocked kernel in the BLIS style,
//! written directly in `scf`, `memref` and `vector`:
//!
//! - one parallel region whose threads take a range of the rows (the
//!   schedule runs `i` over cores), of the columns (`j`) or of the batch's
//!   products (only the batch), or one thread; each thread packs what it
//!   uses into its own buffers, no barrier: BLIS's loops, `jc` over column
//!   blocks of `nc`, `pc` over depth blocks of `kc`, the `kc x nc` block
//!   of `b` packed into 16-column micro-panels (zero padded), row blocks of
//!   `mc` with each `mc x kc` block of `a` packed into 6-row micro-panels;
//!   when a thread's rows fit one row block (short, wide products such as
//!   an MLP layer), `a` is packed once per depth block and each panel of
//!   `b` just before the row panels use it, into one slot that stays in
//!   cache;
//! - the micro-kernel keeps a 6 x 16 tile of `c` in twelve 8-lane vector
//!   registers across the `kc` loop (one broadcast of `a`, two loads of `b`,
//!   twelve FMAs per step), then adds it into `c`; after the last depth
//!   block it applies the epilogue before storing. Edge tiles go through a
//!   small scratch tile with scalar loops.
//!
//! The blocks come from the tuned schedule (`nc`: the l3 tile of `j`,
//! `kc`: the l2 tile of `k`, `mc`: the l2 tile of `i`), rounded to the
//! micro-tile.

pub use arch_cost::kernel_shape::ThreadSplit;
use arch_cost::kernel_shape::{Contraction, Coord, View};
use arch_sema::dtype::DType;
use arch_sema::model::{Op, ScalarExpr, WorkloadModel};
use arch_syntax::ast::BinOp;
use std::fmt::Write;

/// Rows of the register tile (the cpu model pads rows to it too).
pub const MR: u64 = arch_cost::kernel_shape::PACKED_KERNEL_ROWS;
/// Columns of the register tile (two 8-lane f32 vectors).
pub const NR: u64 = 16;

/// Bytes of packed `b` panels the one-row-block kernel packs together
/// ([`b_group`]): 384 KiB: four panels of a depth block of 768 rows, leaving room in a
/// 1 MiB L2 for the packed rows of `a` (an estimate; measured on Zen 4:
/// a 128 x 768 by 768 x 3072 product 3.6 % faster with 8 panels a group
/// than with one).
const PACK_B_GROUP_BYTES: u64 = 384 * 1024;

/// A contraction the kernel computes ([`arch_cost::kernel_shape`]): its operands
/// as views, the sizes of the groups, and the epilogue.
#[derive(Debug, Clone, PartialEq)]
pub struct Gemm {
    pub a: usize,
    pub b: usize,
    /// Rows, columns and depth: the products of their groups' extents.
    pub m: u64,
    pub n: u64,
    pub k: u64,
    /// Independent products (the product of the batch group; 1 if none).
    pub batch: u64,
    pub shape: Contraction,
    /// The op's body with the contraction (times its factors) replaced by
    /// [`ScalarExpr::Index`] of a variable past the op's (`ACC`), and each
    /// read's `tensor` replaced by its slot in `epilogue_reads`; `None`
    /// when the op is the bare contraction.
    pub epilogue: Option<ScalarExpr>,
    /// The tensors the epilogue reads, as the kernel sees them, in argument
    /// order.
    pub epilogue_reads: Vec<View>,
}

/// The variable standing for the contraction's value in an epilogue.
pub(crate) const ACC: usize = usize::MAX;

/// What an epilogue puts in place of the reduction: its value times `num`,
/// divided by `den`; reads are seen through `groups`.
pub(crate) struct Scaled<'a> {
    pub groups: &'a arch_cost::kernel_shape::Groups,
    pub num: &'a [ScalarExpr],
    pub den: &'a [ScalarExpr],
}

pub(crate) use arch_cost::kernel_shape::the_reduction;

/// `e` with the contraction replaced by `ACC` times its factors and every
/// read replaced by its slot in `reads`; None when something is not
/// element-wise over the kernel's coordinates.
pub(crate) fn epilogue_of(
    w: &WorkloadModel,
    op: &Op,
    e: &ScalarExpr,
    c: &Scaled<'_>,
    reads: &mut Vec<View>,
) -> Option<ScalarExpr> {
    let rec = |x: &ScalarExpr, reads: &mut Vec<View>| epilogue_of(w, op, x, c, reads).map(Box::new);
    Some(match e {
        ScalarExpr::Reduce { .. } => {
            let mut acc = ScalarExpr::Index(ACC);
            for (factors, how) in [(c.num, BinOp::Mul), (c.den, BinOp::Div)] {
                for f in factors {
                    acc = ScalarExpr::Binary {
                        op: how,
                        lhs: Box::new(acc),
                        rhs: rec(f, reads)?,
                    };
                }
            }
            acc
        }
        ScalarExpr::Const(_) => e.clone(),
        ScalarExpr::Access { tensor, index } => {
            let view = arch_cost::kernel_shape::epilogue_view(w, op, *tensor, index, c.groups)?;
            let slot = match reads.iter().position(|r| *r == view) {
                Some(s) => s,
                None => {
                    reads.push(view);
                    reads.len() - 1
                }
            };
            ScalarExpr::Access {
                tensor: slot,
                index: Vec::new(),
            }
        }
        ScalarExpr::Neg(x) => ScalarExpr::Neg(rec(x, reads)?),
        ScalarExpr::Binary { op: b, lhs, rhs } if *b != BinOp::MatMul => ScalarExpr::Binary {
            op: *b,
            lhs: rec(lhs, reads)?,
            rhs: rec(rhs, reads)?,
        },
        ScalarExpr::Call { func, args } => ScalarExpr::Call {
            func: *func,
            args: args
                .iter()
                .map(|a| epilogue_of(w, op, a, c, reads))
                .collect::<Option<_>>()?,
        },
        ScalarExpr::Cast {
            to: DType::F32,
            value,
        } => return epilogue_of(w, op, value, c, reads),
        _ => return None,
    })
}

/// The contraction `op` computes, if it is one this kernel handles
/// ([`arch_cost::kernel_shape::packed_contraction`], which the cpu model
/// costs as this kernel too).
pub fn recognize(w: &WorkloadModel, op: &Op) -> Option<Gemm> {
    of_contraction(w, op, arch_cost::kernel_shape::packed_contraction(w, op)?)
}

/// [`recognize`] for a contraction the caller found (the skinny kernel's,
/// [`arch_cost::kernel_shape::skinny_contraction`]).
pub fn of_contraction(
    w: &WorkloadModel,
    op: &Op,
    shape: arch_cost::kernel_shape::Contraction,
) -> Option<Gemm> {
    let mut reads = Vec::new();
    let scaled = Scaled {
        groups: &shape.groups,
        num: &shape.scale_num,
        den: &shape.scale_den,
    };
    let body = epilogue_of(w, op, &op.body, &scaled, &mut reads)?;
    let epilogue = (!matches!(body, ScalarExpr::Index(ACC))).then_some(body);
    let g = &shape.groups;
    Some(Gemm {
        a: shape.a.tensor,
        b: shape.b.tensor,
        m: g.size(&g.rows),
        n: g.size(&g.cols),
        k: g.size(&g.depth),
        batch: g.size(&g.batch),
        shape,
        epilogue,
        epilogue_reads: reads,
    })
}

/// Cache blocks and threads of one kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Blocks {
    pub mc: u64,
    pub kc: u64,
    pub nc: u64,
    pub threads: u64,
    /// What each thread takes: a range of rows (`i`), of columns (`j`) or
    /// of the batch's products.
    pub split: ThreadSplit,
    /// f32 lanes of the vector registers the kernel uses (8 for AVX2, 16
    /// for AVX-512); its register tile is 6 x (2 x lanes).
    pub lanes: u64,
}

impl Blocks {
    /// BLIS's defaults for Zen-class cores (mc 144, kc 256, nc 4080).
    pub const DEFAULT: Blocks = Blocks {
        mc: 144,
        kc: 256,
        nc: 4080,
        threads: 1,
        split: ThreadSplit::Rows,
        lanes: 8,
    };

    /// Columns of the register tile: two vectors.
    pub fn nr(self) -> u64 {
        2 * self.lanes.clamp(1, 16)
    }

    /// Rows and columns each thread owns, whole register tiles.
    fn spans(self, g: &Gemm) -> (u64, u64) {
        let t = self.threads.clamp(1, 64);
        match self.split {
            ThreadSplit::Cols => (g.m, g.n.div_ceil(self.nr() * t).max(1) * self.nr()),
            ThreadSplit::Rows => (g.m.div_ceil(MR * t).max(1) * MR, g.n),
            ThreadSplit::Batch => (g.m, g.n),
        }
    }

    /// The thread's rows fit one row block: A is packed once per depth
    /// block, each panel of B just before its use.
    fn a_once(self, g: &Gemm) -> bool {
        let f = self.fitted(g);
        f.mc >= f.spans(g).0.div_ceil(MR) * MR
    }

    /// Rounded to the register tile and clamped to one thread's span.
    fn fitted(self, g: &Gemm) -> Blocks {
        let round_up = |x: u64, to: u64| x.div_ceil(to).max(1) * to;
        // Threads beyond the batch's products would have none to take.
        let (split, threads) = match self.split {
            ThreadSplit::Batch if g.batch > 1 && g.shape.c.has(Coord::Batch) => {
                (self.split, self.threads.clamp(1, g.batch))
            }
            ThreadSplit::Batch => (ThreadSplit::Rows, self.threads),
            split => (split, self.threads),
        };
        let this = Blocks {
            split,
            threads,
            ..self
        };
        let (rows, cols) = this.spans(g);
        Blocks {
            mc: round_up(self.mc.max(1), MR).min(round_up(rows, MR)),
            kc: self.kc.clamp(1, g.k.max(1)),
            nc: round_up(self.nc.max(1), self.nr()).min(round_up(cols, self.nr())),
            threads: threads.clamp(1, 64),
            split,
            lanes: self.lanes.clamp(1, 16),
        }
    }
}

/// Writes MLIR text with fresh SSA names.
pub(crate) struct Emitter {
    out: String,
    indent: usize,
    next: usize,
}

impl Emitter {
    pub(crate) fn new() -> Emitter {
        Emitter {
            out: String::new(),
            indent: 1,
            next: 0,
        }
    }
    /// An emitter whose first line is indented `indent` levels.
    pub(crate) fn at_indent(indent: usize) -> Emitter {
        Emitter {
            indent,
            ..Emitter::new()
        }
    }
    /// Closes the `then` region of an `scf.if` and opens its `else`.
    pub(crate) fn otherwise(&mut self) {
        self.close("} else {");
        self.indent += 1;
    }
    pub(crate) fn text(self) -> String {
        self.out
    }
    pub(crate) fn line(&mut self, s: impl AsRef<str>) {
        for _ in 0..self.indent {
            self.out.push_str("  ");
        }
        self.out.push_str(s.as_ref());
        self.out.push('\n');
    }
    pub(crate) fn open(&mut self, s: impl AsRef<str>) {
        self.line(s);
        self.indent += 1;
    }
    pub(crate) fn close(&mut self, s: &str) {
        self.indent -= 1;
        self.line(s);
    }
    pub(crate) fn fresh(&mut self, prefix: &str) -> String {
        self.next += 1;
        format!("%{prefix}{}", self.next)
    }
    pub(crate) fn index_op(&mut self, op: &str, a: &str, b: &str) -> String {
        let r = self.fresh("i");
        self.line(format!("{r} = arith.{op} {a}, {b} : index"));
        r
    }
    /// Thread `%t`'s share of `n` things among `threads` (index values):
    /// `[t * n / threads, (t + 1) * n / threads)`; `one` is the constant 1.
    pub(crate) fn thread_share(&mut self, n: &str, threads: &str, one: &str) -> (String, String) {
        let a = self.index_op("muli", "%t", n);
        let lo = self.index_op("divui", &a, threads);
        let t1 = self.index_op("addi", "%t", one);
        let b = self.index_op("muli", &t1, n);
        let hi = self.index_op("divui", &b, threads);
        (lo, hi)
    }
    pub(crate) fn cmp(&mut self, pred: &str, a: &str, b: &str) -> String {
        let r = self.fresh("p");
        self.line(format!("{r} = arith.cmpi {pred}, {a}, {b} : index"));
        r
    }
}

/// The index constants a kernel uses (`%c{x}`), collected as its body is
/// emitted and declared at its entry ([`vector_kernel_text`]).
#[derive(Default)]
pub(crate) struct IndexConstants(std::cell::RefCell<std::collections::BTreeSet<u64>>);

impl IndexConstants {
    /// The constant `x`, declared with the others.
    pub(crate) fn get(&self, x: u64) -> String {
        self.0.borrow_mut().insert(x);
        format!("%c{x}")
    }
}

/// A vector kernel's text: `func.func private @name(params)`, its index
/// constants, `%vzero` (a vector of `lanes` zeros), `%mask` (its first
/// `tail` lanes) when `tail < lanes`, then `body` (emitted at indent 2,
/// ending with its return) and the closing brace.
pub(crate) fn vector_kernel_text(
    name: &str,
    params: &str,
    consts: &IndexConstants,
    (lanes, tail): (u64, u64),
    body: String,
) -> String {
    let mut head = Emitter::new();
    head.open(format!("func.func private @{name}({params}) {{"));
    for x in consts.0.borrow().iter() {
        head.line(format!("%c{x} = arith.constant {x} : index"));
    }
    head.line(format!(
        "%vzero = arith.constant dense<0.0> : vector<{lanes}xf32>"
    ));
    if tail < lanes {
        head.line(format!(
            "%mask = vector.constant_mask [{tail}] : vector<{lanes}xi1>"
        ));
    }
    let mut text = head.text();
    text.push_str(&body);
    text.push_str("  }\n");
    text
}

/// Element type of epilogue values: one f32, or a vector of f32.
#[derive(Clone, Copy)]
pub(crate) enum Lane {
    Scalar,
    /// A vector of this many f32 lanes.
    Vector(u64),
}

impl Lane {
    pub(crate) fn ty(self) -> String {
        match self {
            Lane::Scalar => "f32".to_string(),
            Lane::Vector(n) => format!("vector<{n}xf32>"),
        }
    }
}

/// The memref argument names and types of the epilogue's tensors, and the
/// batch index the kernel is at (empty without a batch).
pub(crate) struct EpilogueArgs<'a> {
    pub reads: &'a [View],
    pub h: &'a str,
    /// Slots whose value is not read from `%E{slot}` (indexed by slot;
    /// shorter than `reads` where the rest are plain reads).
    pub locals: &'a [Local],
}

/// Where a fused kernel finds the value of a read ([`crate::rowchain`]).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Local {
    /// `%E{slot}`, through the slot's view.
    Memory,
    /// This row's value, an SSA value of type f32.
    Scalar(String),
    /// This row's elements in a row buffer `name` of memref type `ty`,
    /// indexed `[prefix, column]`.
    Row {
        name: String,
        ty: String,
        prefix: String,
    },
    /// Another argument, through the slot's view (an output the kernel
    /// wrote earlier in the row).
    Arg(String),
    /// Exactly this value, of the lane type being emitted (computed just
    /// before, at the same columns).
    Value(String),
}

impl EpilogueArgs<'_> {
    fn name(&self, slot: usize) -> String {
        match self.locals.get(slot) {
            Some(Local::Arg(name)) => name.clone(),
            _ => format!("%E{slot}"),
        }
    }
    fn ty(&self, slot: usize) -> String {
        self.reads.get(slot).map(View::memref).unwrap_or_default()
    }
}

pub(crate) fn f32_literal(x: f64) -> String {
    if x.is_finite() {
        format!("{:.9e}", x as f32)
    } else if x > 0.0 {
        "0x7F800000".into()
    } else if x < 0.0 {
        "0xFF800000".into()
    } else {
        "0x7FC00000".into()
    }
}

/// Whether `e` reads anything that changes along a row's columns.
fn varies_along_columns(e: &ScalarExpr, args: &EpilogueArgs<'_>) -> bool {
    match e {
        ScalarExpr::Access { tensor: slot, .. } => match args.locals.get(*slot) {
            Some(Local::Scalar(_)) => false,
            Some(Local::Row { .. } | Local::Value(_)) => true,
            _ => args.reads.get(*slot).is_none_or(|v| v.has(Coord::Col)),
        },
        ScalarExpr::Const(_) => false,
        ScalarExpr::Neg(x) | ScalarExpr::Cast { value: x, .. } => varies_along_columns(x, args),
        ScalarExpr::Binary { lhs, rhs, .. } => {
            varies_along_columns(lhs, args) || varies_along_columns(rhs, args)
        }
        ScalarExpr::Call { args: xs, .. } => xs.iter().any(|x| varies_along_columns(x, args)),
        // The contraction's value and anything else: assume it does.
        _ => true,
    }
}

/// Emits the epilogue `e` at row `i`, column `j` (the first of 8 lanes for
/// vectors) with the contraction's value `acc`; returns its value.
pub(crate) fn emit_epilogue(
    em: &mut Emitter,
    e: &ScalarExpr,
    acc: &str,
    lane: Lane,
    i: &str,
    j: &str,
    args: &EpilogueArgs<'_>,
) -> String {
    let ty = lane.ty();
    let rec = |em: &mut Emitter, x: &ScalarExpr| emit_epilogue(em, x, acc, lane, i, j, args);
    match e {
        ScalarExpr::Index(ACC) => acc.to_string(),
        ScalarExpr::Const(r) => {
            let v = em.fresh("e");
            match lane {
                Lane::Scalar => em.line(format!("{v} = arith.constant {} : f32", f32_literal(r.0))),
                Lane::Vector(_) => em.line(format!(
                    "{v} = arith.constant dense<{}> : {ty}",
                    f32_literal(r.0)
                )),
            }
            v
        }
        ScalarExpr::Access { tensor: slot, .. } => {
            match args.locals.get(*slot) {
                Some(Local::Scalar(x)) => {
                    return match lane {
                        Lane::Scalar => x.clone(),
                        Lane::Vector(_) => {
                            let v = em.fresh("e");
                            em.line(format!("{v} = vector.broadcast {x} : f32 to {ty}"));
                            v
                        }
                    };
                }
                Some(Local::Value(x)) => return x.clone(),
                Some(Local::Row {
                    name,
                    ty: mty,
                    prefix,
                }) => {
                    let v = em.fresh("e");
                    match lane {
                        Lane::Scalar => {
                            em.line(format!("{v} = memref.load {name}[{prefix}, {j}] : {mty}"))
                        }
                        Lane::Vector(_) => em.line(format!(
                            "{v} = vector.load {name}[{prefix}, {j}] : {mty}, {ty}"
                        )),
                    }
                    return v;
                }
                _ => {}
            }
            let (name, mty) = (args.name(*slot), args.ty(*slot));
            let Some(view) = args.reads.get(*slot) else {
                return acc.to_string();
            };
            // Columns come last in an epilogue view (see `epilogue_view`).
            let along_j = view.has(Coord::Col);
            let at = view.at(args.h, i, j, "");
            let v = em.fresh("e");
            match (lane, along_j) {
                (Lane::Vector(_), true) => {
                    em.line(format!("{v} = vector.load {name}[{at}] : {mty}, {ty}"))
                }
                (Lane::Vector(_), false) => {
                    let s = em.fresh("e");
                    em.line(format!("{s} = memref.load {name}[{at}] : {mty}"));
                    em.line(format!("{v} = vector.broadcast {s} : f32 to {ty}"));
                }
                (Lane::Scalar, _) => em.line(format!("{v} = memref.load {name}[{at}] : {mty}")),
            }
            v
        }
        ScalarExpr::Neg(x) => {
            let x = rec(em, x);
            let v = em.fresh("e");
            em.line(format!("{v} = arith.negf {x} : {ty}"));
            v
        }
        // A divisor the same along the row's lanes (a row's sum, a
        // constant): one reciprocal, which the loop over columns hoists,
        // and a multiply per vector instead of a divide.
        ScalarExpr::Binary {
            op: BinOp::Div,
            lhs,
            rhs,
        } if matches!(lane, Lane::Vector(_)) && !varies_along_columns(rhs, args) => {
            let (a, b) = (rec(em, lhs), rec(em, rhs));
            let (one, r, v) = (em.fresh("e"), em.fresh("e"), em.fresh("e"));
            em.line(format!("{one} = arith.constant dense<1.0> : {ty}"));
            em.line(format!("{r} = arith.divf {one}, {b} : {ty}"));
            em.line(format!("{v} = arith.mulf {a}, {r} : {ty}"));
            v
        }
        ScalarExpr::Binary { op, lhs, rhs } => {
            let (a, b) = (rec(em, lhs), rec(em, rhs));
            let v = em.fresh("e");
            let arith = match op {
                BinOp::Add => Some("arith.addf"),
                BinOp::Sub => Some("arith.subf"),
                BinOp::Mul => Some("arith.mulf"),
                BinOp::Div => Some("arith.divf"),
                _ => None,
            };
            if let Some(m) = arith {
                em.line(format!("{v} = {m} {a}, {b} : {ty}"));
            } else {
                let pred = match op {
                    BinOp::Lt => "olt",
                    BinOp::Le => "ole",
                    BinOp::Gt => "ogt",
                    BinOp::Ge => "oge",
                    _ => "oeq",
                };
                let c = em.fresh("e");
                em.line(format!("{c} = arith.cmpf {pred}, {a}, {b} : {ty}"));
                let bool_ty = match lane {
                    Lane::Scalar => "i1".to_string(),
                    Lane::Vector(n) => format!("vector<{n}xi1>"),
                };
                em.line(format!("{v} = arith.uitofp {c} : {bool_ty} to {ty}"));
            }
            v
        }
        ScalarExpr::Call { func, args: xs } => {
            let xs: Vec<String> = xs.iter().map(|x| rec(em, x)).collect();
            let v = em.fresh("e");
            let one = match lane {
                Lane::Scalar => "1.0 : f32".to_string(),
                Lane::Vector(_) => format!("dense<1.0> : {ty}"),
            };
            let lines =
                crate::linalg::builtin_call(*func, &v, &xs, &ty, &one, &mut |p| em.fresh(p));
            for line in lines {
                em.line(line);
            }
            v
        }
        // `recognize` admits nothing else.
        _ => acc.to_string(),
    }
}

/// The indices of the element of `view` at flat coordinates (batch, row,
/// column, depth: index values, empty where unused). A collapsed view takes
/// them as they are; a window ([`View::gather`]) splits each flat
/// coordinate into its group's variables (the last fastest) and evaluates
/// every affine index.
fn index_of(
    em: &mut Emitter,
    view: &View,
    groups: &arch_cost::kernel_shape::Groups,
    at: [&str; 4],
) -> String {
    let [h, row, col, depth] = at;
    let Some(index) = &view.gather else {
        return view.at(h, row, col, depth);
    };
    let constant = |em: &mut Emitter, v: i64| {
        let name = em.fresh("gc");
        em.line(format!("{name} = arith.constant {v} : index"));
        name
    };
    let mut values: Vec<(usize, String)> = Vec::new();
    for (flat, vars) in [
        (h, &groups.batch),
        (row, &groups.rows),
        (col, &groups.cols),
        (depth, &groups.depth),
    ] {
        if flat.is_empty() || vars.is_empty() {
            continue;
        }
        let mut rest = flat.to_string();
        for (n, v) in vars.iter().enumerate().rev() {
            if n == 0 {
                values.push((*v, rest.clone()));
                break;
            }
            let extent = constant(em, groups.extents[*v] as i64);
            let value = em.index_op("remui", &rest, &extent);
            values.push((*v, value));
            rest = em.index_op("divui", &rest, &extent);
        }
    }
    let dims: Vec<String> = index
        .iter()
        .map(|a| {
            let mut acc = constant(em, a.offset);
            for (v, coefficient) in &a.terms {
                let value = values
                    .iter()
                    .find(|(x, _)| x == v)
                    .map(|(_, s)| s.clone())
                    .unwrap_or_else(|| "%c0".to_string());
                let scaled = if *coefficient == 1 {
                    value
                } else {
                    let k = constant(em, *coefficient);
                    em.index_op("muli", &value, &k)
                };
                acc = em.index_op("addi", &acc, &scaled);
            }
            acc
        })
        .collect();
    dims.join(", ")
}

/// The zero-padded edge of a packed panel: for each of `kcur` depth steps
/// (`%pc + p` in the source) and each of `width` slots, the source element
/// when the slot is below `valid`, else 0. `load(em, k, slot)` is the load
/// of the source element (its index arithmetic emitted first), `store(value,
/// p, slot)` the store into the panel.
fn pack_padded(
    em: &mut Emitter,
    kcur: &str,
    width: &str,
    valid: &str,
    load: &dyn Fn(&mut Emitter, &str, &str) -> String,
    store: &dyn Fn(&str, &str, &str) -> String,
) {
    let p = em.fresh("p");
    em.open(format!("scf.for {p} = %c0 to {kcur} step %c1 {{"));
    let k = em.index_op("addi", "%pc", &p);
    let slot = em.fresh("slot");
    em.open(format!("scf.for {slot} = %c0 to {width} step %c1 {{"));
    let inside = em.cmp("slt", &slot, valid);
    let val = em.fresh("x");
    em.open(format!("{val} = scf.if {inside} -> (f32) {{"));
    let x = em.fresh("x");
    let source = load(em, &k, &slot);
    em.line(format!("{x} = {source}"));
    em.line(format!("scf.yield {x} : f32"));
    em.close("} else {");
    em.indent += 1;
    em.line("scf.yield %zero : f32");
    em.close("}");
    em.line(store(&val, &p, &slot));
    em.close("}");
    em.close("}");
}

/// Where a result goes: `c[i, j]`, and the conditions of the depth block.
struct Store<'a> {
    i: &'a str,
    j: &'a str,
    /// The first depth block: `c` is written, not added to.
    first: &'a str,
    /// The last depth block: the epilogue applies.
    last: &'a str,
    c_type: &'a str,
}

/// Stores `value` (one f32, or 8 lanes) into `c` at `at`: added to what is
/// there unless this is the first depth block, through the epilogue after
/// the last one.
fn write_back(
    em: &mut Emitter,
    g: &Gemm,
    args: &EpilogueArgs<'_>,
    lane: Lane,
    value: &str,
    at: &Store<'_>,
) {
    let (ty, tc, i, j) = (lane.ty(), at.c_type, at.i, at.j);
    let ij = g.shape.c.at(args.h, i, j, "");
    let (load, store) = match lane {
        Lane::Scalar => (
            format!("memref.load %C[{ij}] : {tc}"),
            format!("memref.store {{}}, %C[{ij}] : {tc}"),
        ),
        Lane::Vector(_) => (
            format!("vector.load %C[{ij}] : {tc}, {ty}"),
            format!("vector.store {{}}, %C[{ij}] : {tc}, {ty}"),
        ),
    };
    let sum = em.fresh("s");
    em.open(format!("{sum} = scf.if {} -> ({ty}) {{", at.first));
    em.line(format!("scf.yield {value} : {ty}"));
    em.close("} else {");
    em.indent += 1;
    let old = em.fresh("o");
    em.line(format!("{old} = {load}"));
    let added = em.fresh("s");
    em.line(format!("{added} = arith.addf {old}, {value} : {ty}"));
    em.line(format!("scf.yield {added} : {ty}"));
    em.close("}");
    let stored = match &g.epilogue {
        None => sum,
        Some(e) => {
            let out = em.fresh("s");
            em.open(format!("{out} = scf.if {} -> ({ty}) {{", at.last));
            let y = emit_epilogue(em, e, &sum, lane, i, j, args);
            em.line(format!("scf.yield {y} : {ty}"));
            em.close("} else {");
            em.indent += 1;
            em.line(format!("scf.yield {sum} : {ty}"));
            em.close("}");
            out
        }
    };
    em.line(store.replacen("{}", &stored, 1));
}

/// Panels of `b` the one-row-block kernel packs together, walking the
/// depth once for all of them so that each row of `b` is read as one run
/// of `g * nr` columns instead of `g` runs a row apart.
fn b_group(g: &Gemm, blocks: Blocks) -> u64 {
    let f = blocks.fitted(g);
    let b_rows = g.shape.b.coords.last() == Some(&Coord::Col);
    if !f.a_once(g)
        || !b_rows
        || g.shape.b.gather.is_some()
        || arch_cost::kernel_shape::reads_b_in_place(&g.shape)
    {
        return 1;
    }
    let panel = f.kc * f.nr() * 4;
    (PACK_B_GROUP_BYTES / panel.max(1))
        .clamp(1, 8)
        .min(f.nc / f.nr())
        .max(1)
}

/// The packing buffers a kernel takes from its caller (who allocates and
/// frees them), one slice per thread: packed `a`, packed `b`, the edge tile.
pub fn scratch_types(g: &Gemm, blocks: Blocks) -> [String; 3] {
    let Blocks {
        mc,
        kc,
        nc,
        threads,
        ..
    } = blocks.fitted(g);
    let nr = blocks.nr();
    let b_panels = if blocks.a_once(g) {
        b_group(g, blocks)
    } else {
        nc / nr
    };
    [
        format!("memref<{threads}x{}x{kc}x{MR}xf32>", mc / MR),
        format!("memref<{threads}x{b_panels}x{kc}x{nr}xf32>"),
        format!("memref<{threads}x{MR}x{nr}xf32>"),
    ]
}

/// The kernel for `g` as a private function `@name(%A, %B, %C, %E0, ...,
/// %Ap, %Bp, %Tb)` over memrefs (`%E*`: the epilogue's tensors in
/// `g.epilogue_reads` order; the last three: [`scratch_types`]).
pub fn kernel(w: &WorkloadModel, g: &Gemm, name: &str, blocks: Blocks) -> String {
    let fitted = blocks.fitted(g);
    let Blocks {
        mc,
        kc,
        nc,
        threads,
        split,
        lanes,
    } = fitted;
    let nr = fitted.nr();
    let (m, n, k) = (g.m, g.n, g.k);
    let lanes_per_tile = nr / lanes;
    let (rows_per_thread, cols_per_thread) = fitted.spans(g);
    let batch_per_thread = g.batch.div_ceil(threads).max(1);
    let _ = w;
    let (va, vb, vc) = (&g.shape.a, &g.shape.b, &g.shape.c);
    let (ta, tb, tc) = (va.memref(), vb.memref(), vc.memref());
    let [tap, tbp, tt] = scratch_types(g, blocks);
    let v8 = format!("vector<{lanes}xf32>");
    let v8 = v8.as_str();
    // Independent products run one after the other, at batch index %h.
    let batched = vc.has(Coord::Batch);
    let h = if batched { "%h" } else { "" };
    let args = EpilogueArgs {
        reads: &g.epilogue_reads,
        h,
        locals: &[],
    };
    // `b` with its columns innermost packs eight columns per load.
    let b_rows = vb.coords.last() == Some(&Coord::Col);
    // Rows that fit one register tile use each element of `b` once: the
    // micro-kernel reads whole panels of such a `b` where it lies (only a
    // last, partial panel is packed, zero padded).
    let direct_b = arch_cost::kernel_shape::reads_b_in_place(&g.shape);
    let groups = &g.shape.groups;
    let mut em = Emitter {
        out: String::new(),
        indent: 1,
        next: 0,
    };
    let extra: Vec<String> = (0..g.epilogue_reads.len())
        .map(|slot| format!(", {}: {}", args.name(slot), args.ty(slot)))
        .collect();
    em.open(format!(
        "func.func private @{name}(%A: {ta}, %B: {tb}, %C: {tc}{}, %Ap: {tap}, %Bp: {tbp}, %Tb: {tt}) {{",
        extra.concat()
    ));
    let mut constants: Vec<u64> = vec![
        0,
        1,
        MR - 1,
        MR,
        nr - 1,
        nr,
        m,
        n,
        k,
        mc,
        kc,
        nc,
        threads,
        rows_per_thread,
        cols_per_thread,
        batch_per_thread,
        g.batch,
        b_group(g, blocks),
        b_group(g, blocks) - 1,
    ];
    constants.extend(0..MR);
    if !b_rows || vb.gather.is_some() {
        constants.extend(0..nr);
    }
    constants.extend((0..lanes_per_tile).map(|v| v * lanes));
    constants.sort_unstable();
    constants.dedup();
    for c in &constants {
        em.line(format!("%c{c} = arith.constant {c} : index"));
    }
    let c = |x: u64| format!("%c{x}");
    em.line("%zero = arith.constant 0.0 : f32");
    em.line(format!("%vzero = arith.constant dense<0.0> : {v8}"));
    // The batch loop: inside the one parallel region (one per call), over
    // the thread's products when threads split the batch.
    let open_batch = |em: &mut Emitter| {
        if split == ThreadSplit::Batch {
            em.open("scf.for %h = %h0 to %h_end step %c1 {");
        } else if batched {
            em.open(format!("scf.for %h = %c0 to {} step %c1 {{", c(g.batch)));
        }
    };

    // One parallel region; each thread packs what it uses, whatever it
    // splits (`t`, `jc`, `pc`, pack B, `ic`): threads that split the rows
    // each pack all of B rather than one shared copy, which would cost a
    // barrier per block and a pass over the other threads' panels from
    // their caches (on two threads, 1.3-1.8x slower for 128 x 576 by
    // 576 x 784; BENCHMARKS.md "One copy of `b` per thread"). When a
    // thread's rows fit one row block, A is packed once per depth block
    // and each panel of B just before the row panels use it, in one slot
    // that stays in cache (`t`, `pc`, `ic`, `jc`, `jr`: pack B).
    let a_once = blocks.a_once(g);
    let span = |em: &mut Emitter, name: &str, per: u64, end: u64| {
        em.line(format!("%{name}0 = arith.muli %t, {} : index", c(per)));
        em.line(format!(
            "%{name}_hi = arith.addi %{name}0, {} : index",
            c(per)
        ));
        em.line(format!(
            "%{name}_end = arith.minsi {}, %{name}_hi : index",
            c(end)
        ));
    };
    // The thread's span (see `open_threads`), or the whole dimension.
    let (row0, row_end, col0, col_end) = match split {
        ThreadSplit::Cols => (c(0), c(m), "%col0".into(), "%col_end".into()),
        ThreadSplit::Rows => ("%row0".into(), "%row_end".into(), c(0), c(n)),
        ThreadSplit::Batch => (c(0), c(m), c(0), c(n)),
    };
    let open_threads = |em: &mut Emitter| {
        em.open(format!(
            "scf.parallel (%t) = (%c0) to ({}) step (%c1) {{",
            c(threads)
        ));
        match split {
            ThreadSplit::Cols => span(em, "col", cols_per_thread, n),
            ThreadSplit::Rows => span(em, "row", rows_per_thread, m),
            ThreadSplit::Batch => span(em, "h", batch_per_thread, g.batch),
        }
    };
    let open_jc = |em: &mut Emitter| {
        em.open(format!(
            "scf.for %jc = {col0} to {col_end} step {} {{",
            c(nc)
        ));
        let n_left = em.index_op("subi", &col_end, "%jc");
        let ncur = em.index_op("minsi", &c(nc), &n_left);
        let ncur_up = em.index_op("addi", &ncur, &c(nr - 1));
        em.index_op("divui", &ncur_up, &c(nr))
    };
    let open_pc = |em: &mut Emitter| {
        em.open(format!("scf.for %pc = %c0 to {} step {} {{", c(k), c(kc)));
        let k_left = em.index_op("subi", &c(k), "%pc");
        let kcur = em.index_op("minsi", &c(kc), &k_left);
        let first = em.cmp("eq", "%pc", "%c0");
        let k_end = em.index_op("addi", "%pc", &kcur);
        let last = em.cmp("eq", &k_end, &c(k));
        (kcur, first, last)
    };
    // Copies the panel's row `kk` of a row-major `b` (from column `j0`,
    // whole vectors) into row `%pb` of slot `slot` of the thread's buffer.
    let copy_row = |em: &mut Emitter, j0: &str, kk: &str, slot: &str| {
        for v in 0..lanes_per_tile {
            let jj = em.index_op("addi", j0, &c(v * lanes));
            let x = em.fresh("x");
            let at = vb.at(h, "", &jj, kk);
            em.line(format!("{x} = vector.load %B[{at}] : {tb}, {v8}"));
            em.line(format!(
                "vector.store {x}, %Bp[%t, {slot}, %pb, {}] : {tbp}, {v8}",
                c(v * lanes)
            ));
        }
    };
    // Packs panel `jp` of the kc x nc block of B (16 columns, zero padded)
    // into slot `slot` of the thread's buffer.
    let pack_b = |em: &mut Emitter, kcur: &str, jp: &str, slot: &str| {
        let jp16 = em.index_op("muli", jp, &c(nr));
        let j0 = em.index_op("addi", "%jc", &jp16);
        let j_left = em.index_op("subi", &col_end, &j0);
        let ncols = em.index_op("minsi", &c(nr), &j_left);
        let full_b = em.cmp("eq", &ncols, &c(nr));
        // The last, partial panel: zero padded, an element at a time.
        let pack_edge = |em: &mut Emitter| {
            pack_padded(
                em,
                kcur,
                &c(nr),
                &ncols,
                &|em, k, s| {
                    let jj = em.index_op("addi", &j0, s);
                    let at = index_of(em, vb, groups, [h, "", &jj, k]);
                    format!("memref.load %B[{at}] : {tb}")
                },
                &|val, k, s| format!("memref.store {val}, %Bp[%t, {slot}, {k}, {s}] : {tbp}"),
            )
        };
        if direct_b {
            let partial = em.fresh("p");
            em.line(format!(
                "{partial} = arith.cmpi ne, {ncols}, {} : index",
                c(nr)
            ));
            em.open(format!("scf.if {partial} {{"));
            pack_edge(em);
            em.close("}");
            return;
        }
        em.open(format!("scf.if {full_b} {{"));
        em.open(format!("scf.for %pb = %c0 to {kcur} step %c1 {{"));
        let kk = em.index_op("addi", "%pc", "%pb");
        if vb.gather.is_some() {
            // A window: whole vectors where the panel's columns lie in one
            // run of the last dimension, else one load per column.
            let scalar = |em: &mut Emitter| {
                for x in 0..nr {
                    let jj = em.index_op("addi", &j0, &c(x));
                    let v = em.fresh("x");
                    let at = index_of(em, vb, groups, [h, "", &jj, &kk]);
                    em.line(format!("{v} = memref.load %B[{at}] : {tb}"));
                    em.line(format!(
                        "memref.store {v}, %Bp[%t, {slot}, %pb, {}] : {tbp}",
                        c(x)
                    ));
                }
            };
            match arch_cost::kernel_shape::packed_run(vb, groups) {
                Some((run, stride)) => {
                    let run_c = em.fresh("gc");
                    em.line(format!("{run_c} = arith.constant {run} : index"));
                    let within = em.index_op("remui", &j0, &run_c);
                    let end = em.index_op("addi", &within, &c(nr));
                    let fits = em.cmp("ule", &end, &run_c);
                    em.open(format!("scf.if {fits} {{"));
                    let at = index_of(em, vb, groups, [h, "", &j0, &kk]);
                    // `at` ends with the last dimension's index.
                    let (head, last) = at.rsplit_once(", ").unwrap_or(("", at.as_str()));
                    // A strided run: `stride` registers from the first
                    // column's element, every `stride`-th lane kept; the
                    // lanes after the last column's element are masked off
                    // (they may lie past the tensor's end).
                    let wide = stride * lanes;
                    let (mask, pad) = (em.fresh("m"), em.fresh("pad"));
                    let wide_ty = format!("vector<{wide}xf32>");
                    if stride > 1 {
                        em.line(format!(
                            "{mask} = vector.constant_mask [{}] : vector<{wide}xi1>",
                            stride * (lanes - 1) + 1
                        ));
                        em.line(format!("{pad} = arith.constant dense<0.0> : {wide_ty}"));
                    }
                    let keep: Vec<String> = (0..lanes).map(|l| (l * stride).to_string()).collect();
                    for v in 0..lanes_per_tile {
                        let offset = em.fresh("gc");
                        em.line(format!(
                            "{offset} = arith.constant {} : index",
                            v * lanes * stride
                        ));
                        let lane0 = em.index_op("addi", last, &offset);
                        let x = em.fresh("x");
                        let idx = if head.is_empty() {
                            lane0
                        } else {
                            format!("{head}, {lane0}")
                        };
                        if stride == 1 {
                            em.line(format!("{x} = vector.load %B[{idx}] : {tb}, {v8}"));
                        } else {
                            let loaded = em.fresh("w");
                            em.line(format!(
                                "{loaded} = vector.maskedload %B[{idx}], {mask}, {pad} : {tb}, vector<{wide}xi1>, {wide_ty} into {wide_ty}"
                            ));
                            em.line(format!(
                                "{x} = vector.shuffle {loaded}, {loaded} [{}] : {wide_ty}, {wide_ty}",
                                keep.join(", ")
                            ));
                        }
                        em.line(format!(
                            "vector.store {x}, %Bp[%t, {slot}, %pb, {}] : {tbp}, {v8}",
                            c(v * lanes)
                        ));
                    }
                    em.close("} else {");
                    em.indent += 1;
                    scalar(em);
                    em.close("}");
                }
                None => scalar(em),
            }
        } else if b_rows {
            copy_row(em, &j0, &kk, slot);
        } else {
            // Columns of a transposed `b` are rows in memory: one load each.
            for x in 0..nr {
                let jj = em.index_op("addi", &j0, &c(x));
                let v = em.fresh("x");
                let at = vb.at(h, "", &jj, &kk);
                em.line(format!("{v} = memref.load %B[{at}] : {tb}"));
                em.line(format!(
                    "memref.store {v}, %Bp[%t, {slot}, %pb, {}] : {tbp}",
                    c(x)
                ));
            }
        }
        em.close("}");
        em.close("} else {");
        em.indent += 1;
        pack_edge(em);
        em.close("}");
    };
    let open_ic = |em: &mut Emitter, kcur: &str| {
        em.open(format!(
            "scf.for %ic = {row0} to {row_end} step {} {{",
            c(mc)
        ));
        let rows_left = em.index_op("subi", &row_end, "%ic");
        let mcur = em.index_op("minsi", &c(mc), &rows_left);
        let mcur_up = em.index_op("addi", &mcur, &c(MR - 1));
        let row_panels = em.index_op("divui", &mcur_up, &c(MR));
        // Pack the mc x kc block of A into 6-row micro-panels.
        em.open(format!("scf.for %ia = %c0 to {row_panels} step %c1 {{"));
        let ia6 = em.index_op("muli", "%ia", &c(MR));
        let i0 = em.index_op("addi", "%ic", &ia6);
        let i_left = em.index_op("subi", &row_end, &i0);
        let nrows = em.index_op("minsi", &c(MR), &i_left);
        let full_a = em.cmp("eq", &nrows, &c(MR));
        em.open(format!("scf.if {full_a} {{"));
        em.open(format!("scf.for %pa = %c0 to {kcur} step %c1 {{"));
        let kk = em.index_op("addi", "%pc", "%pa");
        for r in 0..MR {
            let ii = em.index_op("addi", &i0, &c(r));
            let x = em.fresh("x");
            let at = index_of(em, va, groups, [h, &ii, "", &kk]);
            em.line(format!("{x} = memref.load %A[{at}] : {ta}"));
            em.line(format!(
                "memref.store {x}, %Ap[%t, %ia, %pa, {}] : {tap}",
                c(r)
            ));
        }
        em.close("}");
        em.close("} else {");
        em.indent += 1;
        pack_padded(
            em,
            kcur,
            &c(MR),
            &nrows,
            &|em, k, slot| {
                let ii = em.index_op("addi", &i0, slot);
                let at = index_of(em, va, groups, [h, &ii, "", k]);
                format!("memref.load %A[{at}] : {ta}")
            },
            &|val, k, slot| format!("memref.store {val}, %Ap[%t, %ia, {k}, {slot}] : {tap}"),
        );
        em.close("}");
        em.close("}");
        row_panels
    };
    let (panels, (kcur, first, last), row_panels) = if a_once {
        open_threads(&mut em);
        open_batch(&mut em);
        let depth = open_pc(&mut em);
        let row_panels = open_ic(&mut em, &depth.0);
        let panels = open_jc(&mut em);
        (panels, depth, row_panels)
    } else {
        open_threads(&mut em);
        open_batch(&mut em);
        let panels = open_jc(&mut em);
        let depth = open_pc(&mut em);
        em.open(format!("scf.for %jp = %c0 to {panels} step %c1 {{"));
        pack_b(&mut em, &depth.0, "%jp", "%jp");
        em.close("}");
        let row_panels = open_ic(&mut em, &depth.0);
        (panels, depth, row_panels)
    };
    let group = b_group(g, blocks);
    let b_slot = if !a_once {
        "%jr".to_string()
    } else if group > 1 {
        "%jq".to_string()
    } else {
        c(0)
    };
    // The macro-kernel: every 6 x 16 tile of the block.
    if a_once && group > 1 {
        // Groups of `group` panels: the full ones packed row by row, a
        // last partial one on its own.
        let groups_n = em.index_op("addi", &panels, &c(group - 1));
        let groups_n = em.index_op("divui", &groups_n, &c(group));
        em.open(format!("scf.for %jg = %c0 to {groups_n} step %c1 {{"));
        let p0 = em.index_op("muli", "%jg", &c(group));
        let left = em.index_op("subi", &panels, &p0);
        let count = em.index_op("minsi", &left, &c(group));
        let cols_left = em.index_op("subi", &col_end, "%jc");
        let whole = em.index_op("divui", &cols_left, &c(nr));
        let whole_left = em.index_op("subi", &whole, &p0);
        let nfull = em.index_op("minsi", &whole_left, &count);
        em.open(format!("scf.for %pb = %c0 to {kcur} step %c1 {{"));
        let kk = em.index_op("addi", "%pc", "%pb");
        em.open(format!("scf.for %gq = %c0 to {nfull} step %c1 {{"));
        let jp = em.index_op("addi", &p0, "%gq");
        let jp16 = em.index_op("muli", &jp, &c(nr));
        let j0 = em.index_op("addi", "%jc", &jp16);
        copy_row(&mut em, &j0, &kk, "%gq");
        em.close("}");
        em.close("}");
        let partial = em.cmp("ult", &nfull, &count);
        em.open(format!("scf.if {partial} {{"));
        let jp = em.index_op("addi", &p0, &nfull);
        pack_b(&mut em, &kcur, &jp, &nfull);
        em.close("}");
        em.open(format!("scf.for %jq = %c0 to {count} step %c1 {{"));
        em.line(format!("%jr = arith.addi {p0}, %jq : index"));
    } else {
        em.open(format!("scf.for %jr = %c0 to {panels} step %c1 {{"));
    }
    if a_once && group == 1 {
        pack_b(&mut em, &kcur, "%jr", &b_slot);
    }
    em.open(format!("scf.for %ir = %c0 to {row_panels} step %c1 {{"));
    let ir6 = em.index_op("muli", "%ir", &c(MR));
    let ci = em.index_op("addi", "%ic", &ir6);
    let jr16 = em.index_op("muli", "%jr", &c(nr));
    let cj = em.index_op("addi", "%jc", &jr16);
    let ci_left = em.index_op("subi", &row_end, &ci);
    let tile_rows = em.index_op("minsi", &c(MR), &ci_left);
    let cj_left = em.index_op("subi", &col_end, &cj);
    let tile_cols = em.index_op("minsi", &c(nr), &cj_left);
    let rows_full = em.cmp("eq", &tile_rows, &c(MR));
    let cols_full = em.cmp("eq", &tile_cols, &c(nr));
    let full = em.fresh("p");
    em.line(format!("{full} = arith.andi {rows_full}, {cols_full} : i1"));
    // Prefetch the tile of C it will write.
    em.open(format!("scf.if {full} {{"));
    for r in 0..MR {
        let ii = em.index_op("addi", &ci, &c(r));
        em.line(format!(
            "memref.prefetch %C[{}], write, locality<3>, data : {tc}",
            vc.at(h, &ii, &cj, "")
        ));
    }
    em.close("}");
    let accs: Vec<String> = (0..MR * lanes_per_tile)
        .map(|x| format!("%acc{x}"))
        .collect();
    let acc_types = vec![v8; accs.len()].join(", ");
    // The k loop of one tile, its `b` vectors from `load_b(em, v)`.
    let k_loop = |em: &mut Emitter, load_b: &dyn Fn(&mut Emitter, u64) -> String| {
        let result = em.fresh("r");
        em.open(format!(
            "{result}:{} = scf.for %p = %c0 to {kcur} step %c1 iter_args({}) -> ({acc_types}) {{",
            accs.len(),
            accs.iter()
                .map(|a| format!("{a} = %vzero"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        let bv: Vec<String> = (0..lanes_per_tile).map(|v| load_b(em, v)).collect();
        let mut next = Vec::new();
        for r in 0..MR {
            let s = em.fresh("a");
            em.line(format!(
                "{s} = memref.load %Ap[%t, %ir, %p, {}] : {tap}",
                c(r)
            ));
            let sv = em.fresh("av");
            em.line(format!("{sv} = vector.broadcast {s} : f32 to {v8}"));
            for (v, b) in bv.iter().enumerate() {
                let y = em.fresh("y");
                let acc = &accs[r as usize * lanes_per_tile as usize + v];
                em.line(format!("{y} = vector.fma {sv}, {b}, {acc} : {v8}"));
                next.push(y);
            }
        }
        em.line(format!("scf.yield {} : {acc_types}", next.join(", ")));
        em.close("}");
        result
    };
    let packed_b = |em: &mut Emitter, v: u64| {
        let x = em.fresh("b");
        em.line(format!(
            "{x} = vector.load %Bp[%t, {b_slot}, %p, {}] : {tbp}, {v8}",
            c(v * lanes)
        ));
        x
    };
    let result = if direct_b {
        // Whole panels straight from `b`; the partial one from its packed copy.
        let result = em.fresh("r");
        em.open(format!(
            "{result}:{} = scf.if {cols_full} -> ({acc_types}) {{",
            accs.len()
        ));
        let direct = k_loop(&mut em, &|em: &mut Emitter, v: u64| {
            let kk = em.index_op("addi", "%pc", "%p");
            let jj = em.index_op("addi", &cj, &c(v * lanes));
            let x = em.fresh("b");
            em.line(format!(
                "{x} = vector.load %B[{}] : {tb}, {v8}",
                vb.at(h, "", &jj, &kk)
            ));
            x
        });
        let all = |r: &str| {
            (0..accs.len())
                .map(|x| format!("{r}#{x}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        em.line(format!("scf.yield {} : {acc_types}", all(&direct)));
        em.close("} else {");
        em.indent += 1;
        let packed = k_loop(&mut em, &packed_b);
        em.line(format!("scf.yield {} : {acc_types}", all(&packed)));
        em.close("}");
        result
    } else {
        k_loop(&mut em, &packed_b)
    };
    // Write back: add into C (unless first), the epilogue after the last block.
    em.open(format!("scf.if {full} {{"));
    for r in 0..MR {
        let ii = em.index_op("addi", &ci, &c(r));
        for v in 0..lanes_per_tile {
            let jj = em.index_op("addi", &cj, &c(v * lanes));
            let acc = format!("{result}#{}", r * lanes_per_tile + v);
            let at = Store {
                i: &ii,
                j: &jj,
                first: &first,
                last: &last,
                c_type: &tc,
            };
            write_back(&mut em, g, &args, Lane::Vector(lanes), &acc, &at);
        }
    }
    em.close("} else {");
    em.indent += 1;
    for r in 0..MR {
        for v in 0..lanes_per_tile {
            let acc = format!("{result}#{}", r * lanes_per_tile + v);
            em.line(format!(
                "vector.store {acc}, %Tb[%t, {}, {}] : {tt}, {v8}",
                c(r),
                c(v * lanes)
            ));
        }
    }
    em.open(format!("scf.for %re = %c0 to {tile_rows} step %c1 {{"));
    em.open(format!("scf.for %ce = %c0 to {tile_cols} step %c1 {{"));
    let ii = em.index_op("addi", &ci, "%re");
    let jj = em.index_op("addi", &cj, "%ce");
    let part = em.fresh("x");
    em.line(format!("{part} = memref.load %Tb[%t, %re, %ce] : {tt}"));
    let at = Store {
        i: &ii,
        j: &jj,
        first: &first,
        last: &last,
        c_type: &tc,
    };
    write_back(&mut em, g, &args, Lane::Scalar, &part, &at);
    em.close("}");
    em.close("}");
    em.close("}");
    em.close("}"); // ir
    em.close("}"); // jr
    if a_once && group > 1 {
        em.close("}"); // jg
    }
    em.close("}"); // ic
    em.close("}"); // jc or pc
    em.close("}"); // pc or jc
    if batched {
        em.close("}"); // h
    }
    em.line("scf.reduce");
    em.close("}"); // threads
    em.line("func.return");
    em.close("}");
    let _ = write!(em.out, "");
    em.out
}
