//! Which contractions archc's packed kernel computes (arch_mlir's `gemm`),
//! shared by the code generator and the cpu model so that both agree on
//! the code path an op takes, and how the kernel sees their
//! tensors: every f32 contraction `c[batch.., rows.., cols..] = sum[k..]
//! a * b` (times or divided by factors that do not depend on `k`, inside
//! an element-wise epilogue), where each operand is indexed by plain
//! variables in groups:
//!
//! - batch variables (in both operands and the output) lead the output,
//!   and lead each operand that has them (an operand without them is the
//!   same for every batch: a 1x1 convolution's weights);
//! - rows (in `a` and the output) and columns (in `b` and the output) follow
//!   in the output, each group contiguous;
//! - in each operand the reduced group and its rows (or columns) group are
//!   contiguous, in either order (a transposed operand: `q k^T`).
//!
//! Each tensor is then seen through a [`View`]: its groups of adjacent
//! dimensions collapsed into one (`memref.collapse_shape`, no copy), so the
//! kernel reads `a[batch][m][k]` (or `[k][m]`), `b[batch][k][n]` (or
//! `[n][k]`) and writes `c[batch][m][n]`. Matrix products, batched ones,
//! both products of attention, MLP layers and 1x1 convolutions (NCHW: rows
//! are filters, columns pixels) qualify; windows (`p + r`) do not.

use arch_sema::dtype::DType;
use arch_sema::model::{Affine, Op, ScalarExpr, WorkloadModel};
use arch_syntax::ast::{BinOp, ReduceOp};

/// What one collapsed dimension of a view stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coord {
    Batch,
    Row,
    Col,
    Depth,
}

/// A tensor seen by the kernel: dimensions grouped (`reassociation`, for
/// `memref.collapse_shape`), what each group is, the collapsed shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct View {
    pub tensor: usize,
    pub coords: Vec<Coord>,
    pub reassociation: Vec<Vec<usize>>,
    pub shape: Vec<u64>,
    /// The tensor's own shape.
    pub full: Vec<u64>,
    /// A tensor read through a window (`x[n, c, p + r, q + s]`): no
    /// collapsed view exists, and each element's index is computed from the
    /// group coordinates (`coords` is then empty and `shape` is `full`).
    pub gather: Option<Vec<Affine>>,
}

impl View {
    /// Whether the view is the tensor itself (nothing to collapse).
    pub fn is_identity(&self) -> bool {
        self.gather.is_some() || self.reassociation.iter().all(|g| g.len() == 1)
    }

    pub fn has(&self, c: Coord) -> bool {
        self.coords.contains(&c)
    }

    /// The MLIR type of the view's buffer: `memref<...xf32>`.
    pub fn memref(&self) -> String {
        let dims: Vec<String> = self.shape.iter().map(u64::to_string).collect();
        if dims.is_empty() {
            "memref<f32>".to_string()
        } else {
            format!("memref<{}xf32>", dims.join("x"))
        }
    }

    /// The indices of a load at the given coordinates, in the view's order.
    pub fn at(&self, batch: &str, row: &str, col: &str, depth: &str) -> String {
        self.coords
            .iter()
            .map(|c| match c {
                Coord::Batch => batch,
                Coord::Row => row,
                Coord::Col => col,
                Coord::Depth => depth,
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// How the packed kernel's threads share one call's work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThreadSplit {
    /// Each thread takes a range of the rows and packs all of `b`.
    Rows,
    /// Each thread takes a range of the columns and packs what it uses.
    Cols,
    /// Each thread takes whole products of the batch and packs what it
    /// uses: nothing crosses between cores.
    Batch,
}

impl ThreadSplit {
    /// The split of a nest that runs its variables `parallel` over
    /// threads: the batch where only batch variables are parallel and
    /// there are several products, columns where only columns (and
    /// perhaps the batch) are, else rows.
    pub fn of(groups: &Groups, parallel: &[usize]) -> ThreadSplit {
        let on = |vars: &[usize]| parallel.iter().any(|v| vars.contains(v));
        if on(&groups.batch)
            && !on(&groups.rows)
            && !on(&groups.cols)
            && groups.size(&groups.batch) > 1
        {
            ThreadSplit::Batch
        } else if on(&groups.cols) && !on(&groups.rows) {
            ThreadSplit::Cols
        } else {
            ThreadSplit::Rows
        }
    }
}

/// Variables (positions in the op's) of each group, and every variable's
/// extent (to split a group's flat index into its variables).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Groups {
    pub extents: Vec<u64>,
    pub batch: Vec<usize>,
    pub rows: Vec<usize>,
    pub cols: Vec<usize>,
    /// In the order `a` reads them (`b` reads them in the same order).
    pub depth: Vec<usize>,
}

impl Groups {
    /// Elements of a group of variables: the product of their extents.
    pub fn size(&self, vars: &[usize]) -> u64 {
        vars.iter().map(|&v| self.extents[v]).product()
    }
}

fn plain_var(a: &Affine) -> Option<usize> {
    match a.terms.as_slice() {
        [(v, 1)] if a.offset == 0 => Some(*v),
        _ => None,
    }
}

fn plain_vars(index: &[Affine]) -> Option<Vec<usize>> {
    index.iter().map(plain_var).collect()
}

/// `index` as a sequence of whole groups, each exactly as `groups` orders
/// it; `allowed` says which groups may appear.
pub fn view_of(
    w: &WorkloadModel,
    op: &Op,
    tensor: usize,
    index: &[usize],
    groups: &Groups,
    allowed: &[Coord],
) -> Option<View> {
    let table = [
        (Coord::Batch, &groups.batch),
        (Coord::Row, &groups.rows),
        (Coord::Col, &groups.cols),
        (Coord::Depth, &groups.depth),
    ];
    let mut coords = Vec::new();
    let mut reassociation = Vec::new();
    let mut shape = Vec::new();
    let mut at = 0;
    while at < index.len() {
        let (coord, vars) = table.iter().find(|(_, vars)| vars.contains(&index[at]))?;
        if !allowed.contains(coord) || coords.contains(coord) {
            return None;
        }
        let end = at + vars.len();
        if index.get(at..end)? != vars.as_slice() {
            return None;
        }
        coords.push(*coord);
        reassociation.push((at..end).collect());
        shape.push(vars.iter().map(|v| op.vars[*v].extent).product());
        at = end;
    }
    Some(View {
        tensor,
        coords,
        reassociation,
        shape,
        full: w.tensors[tensor].shape.clone(),
        gather: None,
    })
}

/// Rows of the packed kernel's register tile (`arch_mlir::gemm::MR`): it
/// computes whole tiles, so a product of `m` rows does the work of
/// `ceil(m / 6) * 6`.
pub const PACKED_KERNEL_ROWS: u64 = 6;

/// Rows of the transform path's register tile for ops with a reduction
/// (`arch_mlir::schedule`'s register tile: this many along the innermost
/// other output dimension of the order, the vector dimension's tile along
/// its own).
pub const TRANSFORM_TILE_ROWS: u64 = 8;

/// Elements of the transform path's register tile along its vector
/// dimension: two registers of `lanes`, at most the innermost tile `tile`,
/// whole registers when it holds one.
pub fn transform_tile_cols(lanes: u64, tile: u64) -> u64 {
    let nr = (2 * lanes).min(tile);
    if nr >= lanes {
        nr - nr % lanes
    } else {
        nr
    }
}

/// Whether the code generator runs the whole register tiles of `nr` along
/// a vector loop over `extent` (`None`: known at run time) in a loop of
/// their own, the partial one after it (`arch_mlir::schedule`): when the
/// loop is the innermost of the tile's (`innermost`) and leaves a partial
/// tile after at least two whole ones (one whole tile folds away, and MLIR
/// then hoists its accumulator out of loops that also hold the partial
/// tile's writes, which bufferization can only resolve with a copy).
pub fn peels_vector_loop(extent: Option<u64>, nr: u64, innermost: bool) -> bool {
    nr > 1 && innermost && extent.is_none_or(|e| e > 2 * nr && e % nr != 0)
}

/// The factors of a product (`x * y / z`): `(numerators, denominators)`.
pub fn factors(
    e: &ScalarExpr,
    num: &mut Vec<ScalarExpr>,
    den: &mut Vec<ScalarExpr>,
    inverted: bool,
) {
    match e {
        ScalarExpr::Binary {
            op: BinOp::Mul,
            lhs,
            rhs,
        } => {
            factors(lhs, num, den, inverted);
            factors(rhs, num, den, inverted);
        }
        ScalarExpr::Binary {
            op: BinOp::Div,
            lhs,
            rhs,
        } => {
            factors(lhs, num, den, inverted);
            factors(rhs, num, den, !inverted);
        }
        _ if inverted => den.push(e.clone()),
        _ => num.push(e.clone()),
    }
}

pub fn uses_any(e: &ScalarExpr, vars: &[usize]) -> bool {
    let mut found = false;
    arch_sema::model::collect_accesses(e, &mut |_, index| {
        found |= index
            .iter()
            .any(|a| a.terms.iter().any(|(v, _)| vars.contains(v)));
    });
    found || has_index_of(e, vars)
}

fn has_index_of(e: &ScalarExpr, vars: &[usize]) -> bool {
    match e {
        ScalarExpr::Index(v) => vars.contains(v),
        ScalarExpr::Const(_) | ScalarExpr::Access { .. } => false,
        ScalarExpr::Neg(x) | ScalarExpr::Cast { value: x, .. } => has_index_of(x, vars),
        ScalarExpr::Reduce { body, .. } => has_index_of(body, vars),
        ScalarExpr::Binary { lhs, rhs, .. } => has_index_of(lhs, vars) || has_index_of(rhs, vars),
        ScalarExpr::Call { args, .. } => args.iter().any(|a| has_index_of(a, vars)),
    }
}

/// A contraction found in an op's body.
#[derive(Debug, Clone, PartialEq)]
pub struct Contraction {
    pub a: View,
    pub b: View,
    pub c: View,
    pub groups: Groups,
    /// The factors that stay outside the sum, applied to its value.
    pub scale_num: Vec<ScalarExpr>,
    pub scale_den: Vec<ScalarExpr>,
}

/// `sum[k..] x * y (* or / factors without k)` as a kernel contraction.
pub fn contraction(w: &WorkloadModel, op: &Op, e: &ScalarExpr) -> Option<Contraction> {
    let ScalarExpr::Reduce {
        op: ReduceOp::Sum,
        vars: depth_vars,
        body,
    } = e
    else {
        return None;
    };
    let (mut num, mut den) = (Vec::new(), Vec::new());
    factors(body, &mut num, &mut den, false);
    if den.iter().any(|d| uses_any(d, depth_vars)) {
        return None;
    }
    let (reading, scale_num): (Vec<ScalarExpr>, Vec<ScalarExpr>) =
        num.into_iter().partition(|f| uses_any(f, depth_vars));
    let [x, y] = reading.as_slice() else {
        return None;
    };
    // Each operand: its tensor, the variables it uses in index order, and
    // its index when that is more than plain variables (a window).
    type Operand = (usize, Vec<usize>, Option<Vec<Affine>>);
    let access = |e: &ScalarExpr| -> Option<Operand> {
        match e {
            ScalarExpr::Access { tensor, index } if w.tensors[*tensor].dtype == DType::F32 => {
                match plain_vars(index) {
                    Some(vars) => Some((*tensor, vars, None)),
                    None => {
                        let mut vars: Vec<usize> = Vec::new();
                        for a in index {
                            // Non-negative strides and offsets only.
                            if a.offset < 0 || a.terms.iter().any(|(_, c)| *c <= 0) {
                                return None;
                            }
                            for (v, _) in &a.terms {
                                if !vars.contains(v) {
                                    vars.push(*v);
                                }
                            }
                        }
                        Some((*tensor, vars, Some(index.clone())))
                    }
                }
            }
            _ => None,
        }
    };
    let (a, b) = (access(x)?, access(y)?);
    if a.2.is_some() && b.2.is_some() {
        return None;
    }
    let outputs: Vec<usize> = (0..op.output_rank).collect();
    let in_a = |v: &usize, a: &Operand| a.1.contains(v);
    // The output's groups: batch, then rows (from `a`), then columns.
    // `leading`: output variables before the first that both operands or
    // `a` alone use may be a batch that one operand does not have (the
    // images of a 1x1 convolution, which its weights do not index).
    let split = |a: &Operand, b: &Operand, leading: usize| -> Option<Groups> {
        let mut g = Groups::default();
        let mut stage = 0; // 0 batch, 1 rows, 2 cols
        for (at, v) in outputs.iter().enumerate() {
            if at < leading {
                g.batch.push(*v);
                continue;
            }
            let group = match (in_a(v, a), in_a(v, b)) {
                (true, true) => 0,
                (true, false) => 1,
                (false, true) => 2,
                (false, false) => return None,
            };
            if group < stage {
                return None;
            }
            stage = group;
            match group {
                0 => g.batch.push(*v),
                1 => g.rows.push(*v),
                _ => g.cols.push(*v),
            }
        }
        // No rows (`y[j] = sum[k] x[k] * w[k, j]`) is one row, which only
        // the skinny kernel takes (the packed one needs two or more).
        (!g.cols.is_empty()).then_some(g)
    };
    // The groups and views with `a` and `b` in these roles, when both
    // operands and the output read whole groups in order.
    let finish = |a: &Operand, b: &Operand, mut groups: Groups| -> Option<Contraction> {
        groups.extents = op.vars.iter().map(|v| v.extent).collect();
        // The depth group in the order the plain operand reads it (a gathered
        // one computes its indices, in any order); two plain operands agree.
        let depth_of = |x: &Operand| -> Vec<usize> {
            x.1.iter()
                .copied()
                .filter(|v| depth_vars.contains(v))
                .collect()
        };
        let plain = if a.2.is_none() { a } else { b };
        groups.depth = depth_of(plain);
        if groups.depth.len() != depth_vars.len()
            || (a.2.is_none() && b.2.is_none() && depth_of(b) != groups.depth)
        {
            return None;
        }
        let operand_view = |x: &Operand, allowed: &[Coord]| -> Option<View> {
            match &x.2 {
                None => view_of(w, op, x.0, &x.1, &groups, allowed),
                Some(index) => {
                    // A window reads variables of the allowed groups only.
                    let group_of = |v: &usize| {
                        [
                            (Coord::Batch, &groups.batch),
                            (Coord::Row, &groups.rows),
                            (Coord::Col, &groups.cols),
                            (Coord::Depth, &groups.depth),
                        ]
                        .iter()
                        .find(|(_, vars)| vars.contains(v))
                        .map(|(c, _)| *c)
                    };
                    if !x
                        .1
                        .iter()
                        .all(|v| group_of(v).is_some_and(|c| allowed.contains(&c)))
                    {
                        return None;
                    }
                    // The whole batch group or none of it.
                    let batch_used = groups.batch.iter().filter(|v| x.1.contains(v)).count();
                    if batch_used != 0 && batch_used != groups.batch.len() {
                        return None;
                    }
                    Some(View {
                        tensor: x.0,
                        coords: if batch_used > 0 {
                            vec![Coord::Batch]
                        } else {
                            Vec::new()
                        },
                        reassociation: Vec::new(),
                        shape: w.tensors[x.0].shape.clone(),
                        full: w.tensors[x.0].shape.clone(),
                        gather: Some(index.clone()),
                    })
                }
            }
        };
        let a_view = operand_view(a, &[Coord::Batch, Coord::Row, Coord::Depth])?;
        let b_view = operand_view(b, &[Coord::Batch, Coord::Col, Coord::Depth])?;
        // Batch leads; an operand has all of it or none.
        for v in [&a_view, &b_view] {
            if v.has(Coord::Batch) && v.coords[0] != Coord::Batch {
                return None;
            }
        }
        let c_vars: Vec<usize> = outputs.clone();
        let c_view = view_of(
            w,
            op,
            op.output,
            &c_vars,
            &groups,
            &[Coord::Batch, Coord::Row, Coord::Col],
        )?;
        Some(Contraction {
            a: a_view,
            b: b_view,
            c: c_view,
            groups,
            scale_num: scale_num.clone(),
            scale_den: den.clone(),
        })
    };
    // The first split, with the fewest leading batch variables, whose
    // views hold (a batch the weights lack, `a[g, k, i]`, first looks
    // like rows `g, i` that `a` does not read together).
    for leading in 0..outputs.len() {
        // Leading batch variables are used by one operand or both.
        if leading > 0 && !(in_a(&outputs[leading - 1], &a) || in_a(&outputs[leading - 1], &b)) {
            break;
        }
        for (a, b) in [(&a, &b), (&b, &a)] {
            if let Some(c) = split(a, b, leading).and_then(|g| finish(a, b, g)) {
                return Some(c);
            }
        }
    }
    None
}

/// The view of an epilogue read: batch, rows and columns only, columns (if
/// any) last so that eight lanes along them are contiguous.
pub fn epilogue_view(
    w: &WorkloadModel,
    op: &Op,
    tensor: usize,
    index: &[Affine],
    groups: &Groups,
) -> Option<View> {
    if w.tensors[tensor].dtype != DType::F32 {
        return None;
    }
    let vars = plain_vars(index)?;
    let v = view_of(
        w,
        op,
        tensor,
        &vars,
        groups,
        &[Coord::Batch, Coord::Row, Coord::Col],
    )?;
    let cols_last = !v.has(Coord::Col) || v.coords.last() == Some(&Coord::Col);
    let batch_first = !v.has(Coord::Batch) || v.coords[0] == Coord::Batch;
    (cols_last && batch_first).then_some(v)
}

/// The one reduction of `e`, however often it appears (None for none or
/// several different ones): an operand used several times (an expanded
/// `gelu` reads its argument five times) repeats the same reduction, which
/// is computed once.
pub fn the_reduction(e: &ScalarExpr) -> Option<&ScalarExpr> {
    fn walk<'e>(e: &'e ScalarExpr, found: &mut Vec<&'e ScalarExpr>) {
        match e {
            ScalarExpr::Reduce { .. } => found.push(e),
            ScalarExpr::Const(_) | ScalarExpr::Index(_) | ScalarExpr::Access { .. } => {}
            ScalarExpr::Neg(x) | ScalarExpr::Cast { value: x, .. } => walk(x, found),
            ScalarExpr::Binary { lhs, rhs, .. } => {
                walk(lhs, found);
                walk(rhs, found);
            }
            ScalarExpr::Call { args, .. } => args.iter().for_each(|a| walk(a, found)),
        }
    }
    let mut found = Vec::new();
    walk(e, &mut found);
    let first = *found.first()?;
    found.iter().all(|r| *r == first).then_some(first)
}

/// For a window operand read along its columns: the extent of the column
/// group's last variable and the stride between consecutive columns when
/// consecutive columns are evenly spaced elements of the tensor's last
/// dimension (`q + s`: stride 1; `2 * q + s`: stride 2; in the last index
/// only), so that the packed kernel loads a panel's columns within one such
/// run as vectors (strided ones as wider loads whose every `stride`-th lane
/// is kept). None for strides above [`MAX_PACK_STRIDE`].
pub fn packed_run(view: &View, groups: &Groups) -> Option<(u64, u64)> {
    let index = view.gather.as_ref()?;
    let q = *groups.cols.last()?;
    let (last, others) = index.split_last()?;
    let stride = last
        .terms
        .iter()
        .find(|(v, _)| *v == q)
        .map(|(_, c)| *c)
        .filter(|c| (1..=MAX_PACK_STRIDE as i64).contains(c))?;
    let elsewhere = others.iter().any(|a| a.terms.iter().any(|(v, _)| *v == q));
    (!elsewhere).then(|| (groups.extents[q], stride as u64))
}

/// The widest column stride the packed kernel packs with vector loads: a
/// vector of packed columns then loads `stride` registers.
pub const MAX_PACK_STRIDE: u64 = 4;

/// Whether the packed kernel reads whole panels of `b` where it lies
/// instead of packing them: the rows fit one register tile (each element
/// of `b` is used once, so a copy buys no reuse) and `b`'s columns are
/// contiguous (a 3 x 1024 x 1024 product: 293 us packing `b`, 122 us
/// reading it in place).
pub fn reads_b_in_place(c: &Contraction) -> bool {
    let rows = c.groups.size(&c.groups.rows);
    rows <= PACKED_KERNEL_ROWS && c.b.gather.is_none() && c.b.coords.last() == Some(&Coord::Col)
}

/// The share of `b`'s elements the packed kernel copies one at a time
/// (panels `nr` columns wide): none when its columns are contiguous; all
/// of a transposed `b`; of a window, the panels that do not lie within one
/// run of [`packed_run`] (a panel straddling two output rows), all of them
/// without runs.
pub fn scalar_packed_share(c: &Contraction, nr: u64) -> f64 {
    if c.b.gather.is_none() {
        return if c.b.coords.last() == Some(&Coord::Col) {
            0.0
        } else {
            1.0
        };
    }
    let Some((run, _)) = packed_run(&c.b, &c.groups) else {
        return 1.0;
    };
    let cols = c.groups.size(&c.groups.cols);
    let panels = cols.div_ceil(nr.max(1));
    let scalar = (0..panels)
        .filter(|p| {
            let j0 = p * nr;
            j0 + nr > cols || j0 % run + nr > run
        })
        .count();
    scalar as f64 / panels.max(1) as f64
}

/// The contraction of `op` that the packed kernel takes, if it has one: an
/// f32 output of rank two or more, one reduction that [`contraction`]
/// accepts.
pub fn packed_contraction(w: &WorkloadModel, op: &Op) -> Option<Contraction> {
    if w.tensors[op.output].dtype != DType::F32 || op.output_rank < 2 {
        return None;
    }
    contraction(w, op, the_reduction(&op.body)?).filter(packed_pays)
}

/// Whether the packed kernel suits a contraction: the skinny kernel does
/// not take it. A product of one to four rows would pad each register tile
/// to six rows and pack `b` for no reuse; the skinny kernel streams `b`
/// once (one thread, 768 x 3072: 142-213 us for two to four rows against
/// 225-410 us packed; BENCHMARKS.md "One-row products and sliding windows").
fn packed_pays(c: &Contraction) -> bool {
    let rows = c.groups.size(&c.groups.rows);
    rows >= 2 && !skinny_fits(c)
}

/// Rows up to which a contraction runs on the skinny kernel (arch_mlir's
/// `skinny`) instead of the packed one: a matrix-vector product, whose
/// every element of `b` is used once, streams `b` where it lies with the
/// output row in registers.
pub const SKINNY_ROWS: u64 = 4;

/// The contraction of `op` that the skinny kernel takes, if it has one: an
/// f32 output with at most [`SKINNY_ROWS`] rows (none: a vector), plain
/// operands (no window), `b` with its columns innermost.
pub fn skinny_contraction(w: &WorkloadModel, op: &Op) -> Option<Contraction> {
    if w.tensors[op.output].dtype != DType::F32 || op.output_rank == 0 {
        return None;
    }
    contraction(w, op, the_reduction(&op.body)?).filter(skinny_fits)
}

/// Whether the skinny kernel takes contraction `c` (see
/// [`skinny_contraction`]).
fn skinny_fits(c: &Contraction) -> bool {
    c.groups.size(&c.groups.rows) <= SKINNY_ROWS
        && c.a.gather.is_none()
        && c.b.gather.is_none()
        && c.b.coords.last() == Some(&Coord::Col)
}

/// How the skinny kernel covers a product's columns: blocks of at most 16
/// whole vectors. A product whose row fits one block keeps it in registers
/// across the whole depth and reads `b` as one stream. Wider ones walk the
/// depth in blocks of [`SKINNY_DEPTH_BLOCK`] rows and, within each, every
/// column block in turn (its outputs loaded from `c`, updated, stored
/// back): that many rows of `b` are read side by side as streams the
/// prefetchers follow, where a column block's strided walk down the whole
/// depth would find every short segment of a row on a new page (2582 x 205
/// columns: 50 us in blocks of 12 vectors down the whole depth, 29 us in
/// 16, 26 us in 16 by depth blocks). `sets`
/// independent accumulators per vector keep enough FMAs in flight for
/// short blocks. The threads take contiguous runs of the `batch x blocks`
/// blocks. One product of enough depth (64 rows a thread), or of too few
/// columns to give each thread a kilobyte of every row of `b`, has them
/// split the depth instead, each streaming its own rows of `b` whole into
/// partial sums that one thread adds up after them (two threads, 205 x
/// 2582: 14.5-15 us against 16-19 us splitting the columns; 768 x 3072:
/// 61-63 us against 64-137 us).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SkinnyPlan {
    pub rows: u64,
    pub cols: u64,
    pub depth: u64,
    pub batch: u64,
    pub lanes: u64,
    /// Vectors across the columns (the last may be partial).
    pub vectors: u64,
    /// Vectors of every block but the last of each product.
    pub per_block: u64,
    pub blocks: u64,
    /// Rows of depth between visits of `c` (all of it for one block).
    pub depth_block: u64,
    /// Accumulator sets: the depth loop steps this many rows at a time.
    pub sets: u64,
    /// Threads with blocks to compute.
    pub threads: u64,
    /// The threads split the depth (each computes every block over its
    /// share of the rows).
    pub split_depth: bool,
}

/// The fewest bytes of each row of `b` a thread takes when threads split
/// the columns of a one-row product (else they split the depth).
pub const SKINNY_THREAD_ROW_BYTES: u64 = 1024;

/// FMAs a core needs in flight to keep its FMA units busy: their latency
/// (4 cycles) times their number (2).
const FMAS_IN_FLIGHT: u64 = 8;

/// Rows of `b` the skinny kernel reads side by side when a row of the
/// output takes several blocks (see [`SkinnyPlan`]). One thread, 1 x 768 x
/// 3072 (in L3) took 123 us in blocks of 8 rows, 118 in 16 or 32, 124 in
/// 1; 1 x 4096 x 4096 (64 MiB, from DRAM) took 2.5-2.9 ms in 4 or 8,
/// 3.5 ms in 16, 4.7 ms in 1 or 32.
pub const SKINNY_DEPTH_BLOCK: u64 = 8;

impl SkinnyPlan {
    pub fn new(
        rows: u64,
        cols: u64,
        depth: u64,
        batch: u64,
        lanes: u64,
        threads: u64,
    ) -> SkinnyPlan {
        let (rows, cols, depth, batch) = (rows.max(1), cols.max(1), depth.max(1), batch.max(1));
        let lanes = lanes.clamp(1, 16);
        // Accumulators: 24 of AVX-512's 32 registers, 12 of AVX2's 16.
        let budget = if lanes >= 16 { 24 } else { 12 };
        let vectors = cols.div_ceil(lanes);
        let widest = (budget / rows).clamp(1, 16);
        let threads = threads.clamp(1, 64);
        let split_depth = threads > 1
            && batch == 1
            && (cols * 4 < SKINNY_THREAD_ROW_BYTES * threads || depth >= 64 * threads)
            && depth >= 16 * threads;
        let mut blocks = vectors.div_ceil(widest);
        // Few blocks: as many as make whole rounds of the threads.
        while !split_depth
            && batch.saturating_mul(blocks) % threads != 0
            && batch.saturating_mul(blocks) < 4 * threads
            && blocks < vectors
        {
            blocks += 1;
        }
        let per_block = vectors.div_ceil(blocks);
        let blocks = vectors.div_ceil(per_block);
        let sets = FMAS_IN_FLIGHT
            .div_ceil(rows * per_block)
            .clamp(1, 4)
            .min((budget / (rows * per_block)).max(1));
        SkinnyPlan {
            rows,
            cols,
            depth,
            batch,
            lanes,
            vectors,
            per_block,
            blocks,
            depth_block: if blocks == 1 {
                depth
            } else {
                SKINNY_DEPTH_BLOCK.min(depth)
            },
            sets,
            threads: if split_depth {
                threads
            } else {
                threads.min(batch.saturating_mul(blocks))
            },
            split_depth,
        }
    }

    /// The plan for contraction `c` on vectors of `lanes` and `threads`.
    pub fn of(c: &Contraction, lanes: u64, threads: u64) -> SkinnyPlan {
        let g = &c.groups;
        SkinnyPlan::new(
            g.size(&g.rows),
            g.size(&g.cols),
            g.size(&g.depth),
            g.size(&g.batch),
            lanes,
            threads,
        )
    }

    /// Vectors of block `b` of a product.
    pub fn block_vectors(&self, b: u64) -> u64 {
        (self.vectors - b * self.per_block).min(self.per_block)
    }

    /// The first and one-past-last block (of all `batch x blocks`) thread
    /// `t` computes.
    pub fn span(&self, t: u64) -> (u64, u64) {
        let q = self.batch.saturating_mul(self.blocks) as u128;
        if self.split_depth {
            (0, q as u64)
        } else {
            let at = |t: u64| (t as u128 * q / self.threads as u128) as u64;
            (at(t), at(t + 1))
        }
    }

    /// The first and one-past-last row of depth thread `t` computes.
    pub fn depth_span(&self, t: u64) -> (u64, u64) {
        if self.split_depth {
            let at = |t: u64| (t as u128 * self.depth as u128 / self.threads as u128) as u64;
            (at(t), at(t + 1))
        } else {
            (0, self.depth)
        }
    }

    /// The busiest thread's work over the average thread's.
    pub fn imbalance(&self) -> f64 {
        // Blocks in [0, x) that are the last of their product.
        let lasts = |x: u64| (x / self.blocks) as u128;
        let short = (self.per_block - self.block_vectors(self.blocks - 1)) as u128;
        let work = |t: u64| {
            let (lo, hi) = self.span(t);
            let vectors =
                (hi - lo) as u128 * self.per_block as u128 - (lasts(hi) - lasts(lo)) * short;
            let (k0, k1) = self.depth_span(t);
            vectors as f64 * (k1 - k0) as f64
        };
        let busiest = (0..self.threads).map(work).fold(0.0, f64::max);
        let all = self.batch as f64 * self.vectors as f64 * self.depth as f64;
        (busiest * self.threads as f64 / all.max(1.0)).max(1.0)
    }

    /// Lanes in the last vector of a row (all of them when the columns
    /// fill it).
    pub fn tail_lanes(&self) -> u64 {
        self.cols - (self.vectors - 1) * self.lanes
    }
}

/// A sliding window along the output's contiguous dimension (arch_mlir's
/// `window` kernel): `y[.., q] = sum[r..] x[.., q + s] * w[..]` where `q`
/// is the output's last variable, `x` reads it with unit stride in its
/// last index (plus at most one reduced variable: the window's offset
/// along the row), `w` (optional: a sum pool has none) does not read `q`,
/// and every other index is affine in the other variables (a depthwise
/// convolution, strided rows included; a 1-d convolution along rows; a
/// box filter).
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    /// The windowed tensor and its index.
    pub x: usize,
    pub x_index: Vec<Affine>,
    /// The tensor each window is weighted by, and its index.
    pub w: Option<(usize, Vec<Affine>)>,
    /// The output's last variable.
    pub q: usize,
    /// The reduced variables, in the op's order.
    pub reduced: Vec<usize>,
    /// Outputs per row (the extent of `q`) and rows (the other output
    /// variables' extents multiplied).
    pub row: u64,
    pub rows: u64,
}

/// The window `op` computes, if the window kernel takes it: f32 tensors,
/// the whole body one sum of reads as [`Window`] says.
pub fn window_op(w: &WorkloadModel, op: &Op) -> Option<Window> {
    if op.output_rank == 0 || w.tensors[op.output].dtype != DType::F32 {
        return None;
    }
    let ScalarExpr::Reduce {
        op: ReduceOp::Sum,
        vars,
        body,
    } = &op.body
    else {
        return None;
    };
    let q = op.output_rank - 1;
    let access = |e: &ScalarExpr| match e {
        ScalarExpr::Access { tensor, index } if w.tensors[*tensor].dtype == DType::F32 => {
            Some((*tensor, index.clone()))
        }
        _ => None,
    };
    let uses_q = |index: &[Affine]| index.iter().any(|a| a.terms.iter().any(|(v, _)| *v == q));
    let reads: Vec<(usize, Vec<Affine>)> = match body.as_ref() {
        ScalarExpr::Binary {
            op: BinOp::Mul,
            lhs,
            rhs,
        } => vec![access(lhs)?, access(rhs)?],
        e => vec![access(e)?],
    };
    let (xs, ws): (Vec<_>, Vec<_>) = reads.into_iter().partition(|(_, i)| uses_q(i));
    let [(x, x_index)] = xs.as_slice() else {
        return None;
    };
    let (last, others) = x_index.split_last()?;
    // `q`, or `q + s`, in the last index only; non-negative coefficients
    // and offsets everywhere.
    let ok_last = last.offset >= 0
        && last.terms.contains(&(q, 1))
        && last
            .terms
            .iter()
            .all(|(v, c)| *c == 1 && (*v == q || vars.contains(v)))
        && last.terms.len() <= 2;
    let ok_affine = |a: &Affine| a.offset >= 0 && a.terms.iter().all(|(_, c)| *c >= 0);
    if !ok_last || uses_q(others) || !x_index.iter().all(ok_affine) {
        return None;
    }
    // Every output row reads rows of its own: `x` uses every other output
    // variable (a tensor shared by several output rows is a contraction's
    // operand, which the product kernels reuse across rows; a column sum
    // has no rows to split).
    let own_rows = (0..q).all(|v| others.iter().any(|a| a.terms.iter().any(|(x, _)| *x == v)));
    if q == 0 || !own_rows {
        return None;
    }
    let w_read = match ws.as_slice() {
        [] => None,
        [(t, index)] if index.iter().all(ok_affine) => Some((*t, index.clone())),
        _ => return None,
    };
    Some(Window {
        x: *x,
        x_index: x_index.clone(),
        w: w_read,
        q,
        reduced: vars.clone(),
        row: op.vars[q].extent,
        rows: op.vars[..q]
            .iter()
            .fold(1u64, |a, v| a.saturating_mul(v.extent)),
    })
}

/// Vectors of a window row the kernel keeps in registers at once.
pub const WINDOW_BLOCK_VECTORS: u64 = 12;

#[cfg(test)]
mod tests {
    use super::SkinnyPlan;

    /// The busiest thread's share, block by block.
    fn imbalance_by_blocks(p: &SkinnyPlan) -> f64 {
        let busiest = (0..p.threads)
            .map(|t| {
                let (lo, hi) = p.span(t);
                let (k0, k1) = p.depth_span(t);
                (lo..hi).map(|q| p.block_vectors(q % p.blocks)).sum::<u64>() * (k1 - k0)
            })
            .max()
            .unwrap_or(0);
        (busiest * p.threads) as f64 / (p.batch * p.vectors * p.depth) as f64
    }

    #[test]
    fn skinny_plans_cover_every_column_once_and_weigh_the_busiest_thread() {
        for rows in 1..=4 {
            for cols in [1, 7, 16, 123, 205, 1000, 2582] {
                for (batch, depth) in [(1, 1), (1, 300), (3, 77), (12, 256)] {
                    for lanes in [8, 16] {
                        for threads in [1, 2, 3] {
                            let p = SkinnyPlan::new(rows, cols, depth, batch, lanes, threads);
                            let covered: u64 = (0..p.blocks).map(|b| p.block_vectors(b)).sum();
                            assert_eq!(covered, p.vectors, "{p:?}");
                            assert!(p.block_vectors(p.blocks - 1) >= 1, "{p:?}");
                            assert!(p.rows * p.per_block * p.sets <= 24, "{p:?}");
                            let want = imbalance_by_blocks(&p).max(1.0);
                            assert!((p.imbalance() - want).abs() < 1e-9, "{p:?}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn skinny_plans_of_huge_products_are_computed_at_once() {
        let big = 1u64 << 40;
        let p = SkinnyPlan::new(1, big, big, big, 16, 2);
        assert!(p.imbalance() >= 1.0 && p.imbalance().is_finite());
    }
}
