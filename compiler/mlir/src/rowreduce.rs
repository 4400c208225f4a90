//! Reductions along rows (`m[h, i] = max[j] s[h, i, j]`, `z[i] = sum[j]
//! exp(x[i, j] - m[i])`, `mu[i] = sum[j] x[i, j] / C`) as a vector kernel:
//! every output element (a row) runs over its reduced, contiguous elements
//! a vector at a time into four independent vector accumulators (so the
//! adds do not wait on each other), whole vectors left over go into the
//! first, narrower vectors take the last elements, the lanes are combined,
//! and the element-wise rest of the op applies once per row. Rows are split
//! over threads. The element-wise work inside the sum (an `exp`, a
//! subtraction of the row's maximum) runs on the same vectors, so a
//! softmax's sum of exponentials is one pass over its row.
//!
//! Taken when every read inside the reduction is indexed by the output's
//! variables then the reduced ones (`[rows.., reduced..]`, each group
//! contiguous), or by either group alone, and every read outside it by the
//! output's variables: [`arch_cost::kernel_shape::view_of`] with rows and the
//! reduced group as the kernel's row and column coordinates.

use crate::gemm::{
    emit_epilogue, epilogue_of, f32_literal, Emitter, EpilogueArgs, Lane, Local, Scaled, ACC,
};
use arch_cost::kernel_shape::{Coord, Groups, View};
use arch_sema::dtype::DType;
use arch_sema::model::{Op, ScalarExpr, WorkloadModel};
use arch_syntax::ast::{BinOp, ReduceOp};

/// Vector accumulators per row.
const UNROLL: u64 = 4;
const LANES: u64 = 8;

/// A row reduction the kernel computes.
#[derive(Debug, Clone, PartialEq)]
pub struct RowReduce {
    pub op: ReduceOp,
    /// Rows (the output's elements) and the length of each.
    pub rows: u64,
    pub len: u64,
    /// The reduction's body, reads replaced by slots of `reads`.
    pub body: ScalarExpr,
    /// The rest of the op around the reduction (`ACC` for its value).
    pub outer: ScalarExpr,
    pub reads: Vec<View>,
    pub output: View,
}

/// The reduction `op` computes, if this kernel takes it.
pub fn recognize(w: &WorkloadModel, op: &Op) -> Option<RowReduce> {
    if w.tensors[op.output].dtype != DType::F32 || op.output_rank == 0 {
        return None;
    }
    let ScalarExpr::Reduce {
        op: rop,
        vars,
        body: _,
    } = crate::gemm::the_reduction(&op.body)?
    else {
        return None;
    };
    if !matches!(rop, ReduceOp::Sum | ReduceOp::Max | ReduceOp::Min) {
        return None;
    }
    // Reduced variables come after the output's; they must be the last.
    let mut sorted = vars.clone();
    sorted.sort_unstable();
    if sorted != (op.output_rank..op.vars.len()).collect::<Vec<_>>() || sorted != *vars {
        return None;
    }
    let groups = Groups {
        extents: op.vars.iter().map(|v| v.extent).collect(),
        batch: Vec::new(),
        rows: (0..op.output_rank).collect(),
        cols: vars.clone(),
        depth: Vec::new(),
    };
    let mut reads = Vec::new();
    let (_, body, outer) = reduction_parts(w, op, &groups, &mut reads)?;
    let output =
        arch_cost::kernel_shape::view_of(w, op, op.output, &groups.rows, &groups, &[Coord::Row])?;
    let extent = |vs: &[usize]| vs.iter().map(|v| op.vars[*v].extent).product::<u64>();
    Some(RowReduce {
        op: *rop,
        rows: extent(&groups.rows),
        len: extent(&groups.cols),
        body,
        outer,
        reads,
        output,
    })
}

/// The reduction of `op` over `groups` (rows: the output's variables,
/// columns: the reduced ones): how it combines, its body (reads as slots
/// of `reads`, added there) and the rest of the op around it (`ACC` for
/// the reduction's value).
pub(crate) fn reduction_parts(
    w: &WorkloadModel,
    op: &Op,
    groups: &Groups,
    reads: &mut Vec<View>,
) -> Option<(ReduceOp, ScalarExpr, ScalarExpr)> {
    let ScalarExpr::Reduce {
        op: rop,
        vars,
        body,
    } = crate::gemm::the_reduction(&op.body)?
    else {
        return None;
    };
    // A sum is linear: factors that do not depend on the reduced
    // variables (`/ C`) apply once to the total.
    let (mut num, mut den) = (Vec::new(), Vec::new());
    let (mut out_num, mut out_den) = (Vec::new(), Vec::new());
    if *rop == ReduceOp::Sum {
        arch_cost::kernel_shape::factors(body, &mut num, &mut den, false);
        let (keep, moved): (Vec<_>, Vec<_>) = num
            .into_iter()
            .partition(|f| arch_cost::kernel_shape::uses_any(f, vars));
        num = keep;
        out_num = moved;
        let (keep, moved): (Vec<_>, Vec<_>) = den
            .into_iter()
            .partition(|f| arch_cost::kernel_shape::uses_any(f, vars));
        den = keep;
        out_den = moved;
    } else {
        num.push(body.as_ref().clone());
    }
    let mut inner = num
        .pop()
        .unwrap_or(ScalarExpr::Const(arch_sema::model::Real(1.0)));
    for (factors, how) in [(num, BinOp::Mul), (den, BinOp::Div)] {
        for f in factors {
            inner = ScalarExpr::Binary {
                op: how,
                lhs: Box::new(inner),
                rhs: Box::new(f),
            };
        }
    }
    let none: [ScalarExpr; 0] = [];
    let plain = Scaled {
        groups,
        num: &none,
        den: &none,
    };
    let scaled = Scaled {
        groups,
        num: &out_num,
        den: &out_den,
    };
    let body = epilogue_of(w, op, &inner, &plain, reads)?;
    let inner_reads = reads.len();
    let outer = epilogue_of(w, op, &op.body, &scaled, reads)?;
    // Outside the reduction only whole rows' values can be read.
    if reads[inner_reads..].iter().any(|v| v.has(Coord::Col)) {
        return None;
    }
    Some((*rop, body, outer))
}

fn identity(op: ReduceOp) -> f64 {
    match op {
        ReduceOp::Max => f64::NEG_INFINITY,
        ReduceOp::Min => f64::INFINITY,
        _ => 0.0,
    }
}

fn combine(op: ReduceOp) -> &'static str {
    match op {
        ReduceOp::Max => "arith.maximumf",
        ReduceOp::Min => "arith.minimumf",
        _ => "arith.addf",
    }
}

fn horizontal(op: ReduceOp) -> &'static str {
    match op {
        ReduceOp::Max => "maximumf",
        ReduceOp::Min => "minimumf",
        _ => "add",
    }
}

/// Emits the reduction `op` of `body` over the row `row` (`len` elements,
/// the first `full` of them in whole groups of `UNROLL * lanes`; the index
/// constants `%k0`, `%k1`, `%k{UNROLL * lanes}`, `%k{full}` and `%k{len}`
/// defined by the caller); returns the total.
/// `before`, when given, runs at each column (or vector of columns) ahead
/// of the body and returns the reads the body then sees (an element-wise
/// op fused into the reduction's loop).
pub(crate) fn emit_reduction(
    em: &mut Emitter,
    op: ReduceOp,
    body: &ScalarExpr,
    shape: (u64, u64, u64),
    row: &str,
    args: &EpilogueArgs<'_>,
    before: Option<Before<'_>>,
) -> String {
    let mut totals = emit_reductions(em, &[(op, body)], shape, row, args, before);
    totals.remove(0)
}

/// Accumulators each of `n` reductions sharing one loop keeps: four for up
/// to three (twelve vector registers), fewer past that.
fn accumulators(n: usize) -> usize {
    (12 / n.max(1)).clamp(1, UNROLL as usize)
}

/// [`emit_reduction`] for several reductions of the same row in one loop:
/// each vector of the row is loaded once (the bodies' reads of the same
/// element are one load after LLVM's value numbering) and feeds every
/// reduction's accumulators. Returns the totals in order.
pub(crate) fn emit_reductions(
    em: &mut Emitter,
    reductions: &[(ReduceOp, &ScalarExpr)],
    (full, len, lanes): (u64, u64, u64),
    row: &str,
    args: &EpilogueArgs<'_>,
    mut before: Option<Before<'_>>,
) -> Vec<String> {
    let mut body_at =
        |em: &mut Emitter, body: &ScalarExpr, lane: Lane, j: &str| match before.as_mut() {
            Some(f) => {
                let locals = f(em, lane, j);
                let args = EpilogueArgs {
                    reads: args.reads,
                    h: args.h,
                    locals: &locals,
                };
                emit_epilogue(em, body, "", lane, row, j, &args)
            }
            None => emit_epilogue(em, body, "", lane, row, j, args),
        };
    let v8 = &format!("vector<{lanes}xf32>");
    let per = accumulators(reductions.len());
    let mut ids = Vec::new();
    let mut accs: Vec<Vec<String>> = Vec::new();
    let mut inits = Vec::new();
    for &(op, _) in reductions {
        let (id, vid) = (em.fresh("id"), em.fresh("vid"));
        let identity = f32_literal(identity(op));
        em.line(format!("{id} = arith.constant {identity} : f32"));
        em.line(format!("{vid} = arith.constant dense<{identity}> : {v8}"));
        let these: Vec<String> = (0..per).map(|_| em.fresh("acc")).collect();
        inits.extend(these.iter().map(|a| format!("{a} = {vid}")));
        accs.push(these);
        ids.push(id);
    }
    let count = per * reductions.len();
    let types = vec![v8.as_str(); count].join(", ");
    // Whole groups of UNROLL vectors; vector u goes to accumulator u % per.
    let vs = em.fresh("vs");
    em.open(format!(
        "{vs}:{count} = scf.for %j = %k0 to %k{full} step %k{} iter_args({}) -> ({types}) {{",
        UNROLL * lanes,
        inits.join(", ")
    ));
    let mut next = accs.clone();
    for u in 0..UNROLL {
        let offset = em.fresh("off");
        em.line(format!("{offset} = arith.constant {} : index", u * lanes));
        let j = em.index_op("addi", "%j", &offset);
        for (r, &(op, body)) in reductions.iter().enumerate() {
            let x = body_at(em, body, Lane::Vector(lanes), &j);
            let y = em.fresh("y");
            let slot = u as usize % per;
            em.line(format!(
                "{y} = {} {}, {x} : {v8}",
                combine(op),
                next[r][slot]
            ));
            next[r][slot] = y;
        }
    }
    em.line(format!("scf.yield {} : {types}", next.concat().join(", ")));
    em.close("}");
    // Whole vectors left over, into each reduction's first accumulator.
    let whole = len - len % lanes;
    let (from, to, step) = (em.fresh("from"), em.fresh("to"), em.fresh("step"));
    em.line(format!("{from} = arith.constant {full} : index"));
    em.line(format!("{to} = arith.constant {whole} : index"));
    em.line(format!("{step} = arith.constant {lanes} : index"));
    let n = reductions.len();
    let single = em.fresh("single");
    let firsts: Vec<String> = (0..n).map(|_| em.fresh("a")).collect();
    let one_types = vec![v8.as_str(); n].join(", ");
    em.open(format!(
        "{single}:{n} = scf.for %j = {from} to {to} step {step} iter_args({}) -> ({one_types}) {{",
        firsts
            .iter()
            .enumerate()
            .map(|(r, a)| format!("{a} = {vs}#{}", r * per))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    let mut ys = Vec::new();
    for (r, &(op, body)) in reductions.iter().enumerate() {
        let x = body_at(em, body, Lane::Vector(lanes), "%j");
        let y = em.fresh("y");
        em.line(format!("{y} = {} {}, {x} : {v8}", combine(op), firsts[r]));
        ys.push(y);
    }
    em.line(format!("scf.yield {} : {one_types}", ys.join(", ")));
    em.close("}");
    // The last elements (fewer than a vector; the length is known) in
    // narrower vectors, then at most one alone.
    let mut tails = ids;
    for (at, lane) in tail_pieces(whole, len, lanes) {
        let j = em.fresh("j");
        em.line(format!("{j} = arith.constant {at} : index"));
        for (r, &(op, body)) in reductions.iter().enumerate() {
            let x = body_at(em, body, lane, &j);
            let x = match lane {
                Lane::Scalar => x,
                Lane::Vector(_) => {
                    let h = em.fresh("h");
                    em.line(format!(
                        "{h} = vector.reduction <{}>, {x} : {} into f32",
                        horizontal(op),
                        lane.ty()
                    ));
                    h
                }
            };
            let y = em.fresh("y");
            em.line(format!("{y} = {} {}, {x} : f32", combine(op), tails[r]));
            tails[r] = y;
        }
    }
    let mut totals = Vec::new();
    for (r, &(op, _)) in reductions.iter().enumerate() {
        let mut lanes = format!("{single}#{r}");
        for u in 1..per {
            let y = em.fresh("y");
            em.line(format!(
                "{y} = {} {lanes}, {vs}#{} : {v8}",
                combine(op),
                r * per + u
            ));
            lanes = y;
        }
        let h = em.fresh("h");
        em.line(format!(
            "{h} = vector.reduction <{}>, {lanes} : {v8} into f32",
            horizontal(op)
        ));
        let total = em.fresh("total");
        em.line(format!("{total} = {} {h}, {} : f32", combine(op), tails[r]));
        totals.push(total);
    }
    totals
}

/// Emits what runs ahead of a reduction's body at a column; returns the
/// reads the body sees there ([`emit_reduction`]).
pub(crate) type Before<'a> = &'a mut dyn FnMut(&mut Emitter, Lane, &str) -> Vec<Local>;

/// The columns from `from` to `len` (fewer than `lanes`) as pieces:
/// vectors of half, a quarter, ... of `lanes` (at least two lanes) while
/// that many are left, then single elements. Each piece: its first column
/// and its lane.
pub(crate) fn tail_pieces(from: u64, len: u64, lanes: u64) -> Vec<(u64, Lane)> {
    let mut pieces = Vec::new();
    let mut at = from;
    let mut width = lanes / 2;
    while width >= 2 {
        if len - at >= width {
            pieces.push((at, Lane::Vector(width)));
            at += width;
        }
        width /= 2;
    }
    pieces.extend((at..len).map(|j| (j, Lane::Scalar)));
    pieces
}

/// The elements of a row in whole groups of `UNROLL * lanes`.
pub(crate) fn full_groups(len: u64, lanes: u64) -> u64 {
    len - len % (UNROLL * lanes)
}

/// Defines the index constants `%k{c}` (`constants` must hold 0, 1,
/// `threads`, `per_thread` and `rows`), then opens the loops of a row
/// kernel: `threads` threads (`%t`), each over its `per_thread` rows
/// (`%row`). The caller closes both.
pub(crate) fn open_rows(
    em: &mut Emitter,
    mut constants: Vec<u64>,
    (threads, per_thread, rows): (u64, u64, u64),
) {
    constants.sort_unstable();
    constants.dedup();
    for c in constants {
        em.line(format!("%k{c} = arith.constant {c} : index"));
    }
    em.open(format!(
        "scf.parallel (%t) = (%k0) to (%k{threads}) step (%k1) {{"
    ));
    em.line(format!("%r0 = arith.muli %t, %k{per_thread} : index"));
    em.line(format!("%r_hi = arith.addi %r0, %k{per_thread} : index"));
    em.line(format!("%r_end = arith.minsi %k{rows}, %r_hi : index"));
    em.open("scf.for %row = %r0 to %r_end step %k1 {");
}

/// The kernel `@name(%E0, ..., %C)` (reads in `r.reads` order, then the
/// output's view), on `threads` threads.
pub fn kernel(r: &RowReduce, name: &str, threads: u64) -> String {
    let threads = threads.clamp(1, 64).min(r.rows.max(1));
    let per_thread = r.rows.div_ceil(threads);
    let full = full_groups(r.len, LANES);
    let args = EpilogueArgs {
        reads: &r.reads,
        h: "",
        locals: &[],
    };
    let mut em = Emitter::new();
    let params: Vec<String> = r
        .reads
        .iter()
        .enumerate()
        .map(|(slot, v)| format!("%E{slot}: {}", v.memref()))
        .chain(std::iter::once(format!("%C: {}", r.output.memref())))
        .collect();
    em.open(format!(
        "func.func private @{name}({}) {{",
        params.join(", ")
    ));
    let constants = vec![
        0,
        1,
        LANES,
        UNROLL * LANES,
        threads,
        per_thread,
        r.rows,
        full,
        r.len,
    ];
    open_rows(&mut em, constants, (threads, per_thread, r.rows));
    let total = emit_reduction(
        &mut em,
        r.op,
        &r.body,
        (full, r.len, LANES),
        "%row",
        &args,
        None,
    );
    let value = emit_epilogue(&mut em, &r.outer, &total, Lane::Scalar, "%row", "", &args);
    em.line(format!(
        "memref.store {value}, %C[{}] : {}",
        r.output.at("", "%row", "", ""),
        r.output.memref()
    ));
    em.close("}");
    em.line("scf.reduce");
    em.close("}");
    em.line("func.return");
    em.close("}");
    let _ = ACC;
    em.text()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_pieces_cover_the_last_columns_in_narrowing_vectors() {
        let widths = |from, len, lanes| -> Vec<(u64, Option<u64>)> {
            tail_pieces(from, len, lanes)
                .into_iter()
                .map(|(at, lane)| match lane {
                    Lane::Vector(n) => (at, Some(n)),
                    Lane::Scalar => (at, None),
                })
                .collect()
        };
        // 56 columns on 16 lanes: three vectors, then 8.
        assert_eq!(widths(48, 56, 16), vec![(48, Some(8))]);
        // 15 left: 8, 4, 2, then one alone.
        assert_eq!(
            widths(0, 15, 16),
            vec![(0, Some(8)), (8, Some(4)), (12, Some(2)), (14, None)]
        );
        assert!(widths(64, 64, 16).is_empty());
        // Every column exactly once, for every remainder and lane count.
        for lanes in [4u64, 8, 16] {
            for left in 0..lanes {
                let mut next = 100;
                for (at, lane) in tail_pieces(100, 100 + left, lanes) {
                    assert_eq!(at, next);
                    next += match lane {
                        Lane::Vector(n) => n,
                        Lane::Scalar => 1,
                    };
                }
                assert_eq!(next, 100 + left);
            }
        }
    }
}
