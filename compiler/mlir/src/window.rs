//! Sliding windows along the output's contiguous dimension (a depthwise
//! convolution, a 1-d convolution along rows, a box filter:
//! [`arch_cost::kernel_shape::Window`]) as a vector kernel written in
//! `scf`, `memref` and `vector`.
//!
//! Every row of the output (each point of its other variables) is computed
//! in blocks of up to [`WINDOW_BLOCK_VECTORS`] vectors kept in registers
//! across the whole window: per window point one broadcast weight and, per
//! vector, one load of the windowed row shifted by the point's offset and
//! one FMA. The last vector of a row that the outputs do not fill is
//! loaded and stored masked. Rows are split over threads.

use crate::gemm::{vector_kernel_text, Emitter, IndexConstants};
use arch_cost::kernel_shape::{Window, WINDOW_BLOCK_VECTORS};
use arch_sema::model::{Affine, Op, WorkloadModel};

fn memref_of(w: &WorkloadModel, t: usize) -> String {
    let dims: Vec<String> = w.tensors[t].shape.iter().map(u64::to_string).collect();
    format!("memref<{}xf32>", dims.join("x"))
}

/// The memref types of the kernel's arguments, in order: `x`, `w` (if
/// any), the output.
pub fn argument_types(w: &WorkloadModel, op: &Op, win: &Window) -> Vec<String> {
    let mut types = vec![memref_of(w, win.x)];
    if let Some((t, _)) = &win.w {
        types.push(memref_of(w, *t));
    }
    types.push(memref_of(w, op.output));
    types
}

/// The kernel for `op` as a private function `@name(%X, [%W,] %Y)` on
/// `threads` threads with vectors of `lanes`.
pub fn kernel(
    w: &WorkloadModel,
    op: &Op,
    win: &Window,
    name: &str,
    threads: u64,
    lanes: u64,
) -> String {
    let consts = IndexConstants::default();
    let c = |x: u64| consts.get(x);
    let lanes = lanes.clamp(1, 16);
    let threads = threads.clamp(1, win.rows.max(1));
    let types = argument_types(w, op, win);
    let (tx, ty) = (&types[0], &types[types.len() - 1]);
    let tw = win.w.as_ref().map(|_| types[1].clone());
    let vty = format!("vector<{lanes}xf32>");
    let mask_ty = format!("vector<{lanes}xi1>");
    let vectors = win.row.div_ceil(lanes);
    let tail = win.row - (vectors - 1) * lanes;
    let masked = tail < lanes;
    let nblocks = vectors.div_ceil(WINDOW_BLOCK_VECTORS);
    let per_block = vectors.div_ceil(nblocks);
    let nblocks = vectors.div_ceil(per_block);
    let last_vectors = vectors - (nblocks - 1) * per_block;
    let mut em = Emitter::at_indent(2);
    let (lo, hi) = if threads > 1 {
        em.open(format!(
            "scf.parallel (%t) = ({}) to ({}) step ({}) {{",
            c(0),
            c(threads),
            c(1)
        ));
        em.thread_share(&c(win.rows), &c(threads), &c(1))
    } else {
        (c(0), c(win.rows))
    };
    em.open(format!("scf.for %o = {lo} to {hi} step {} {{", c(1)));
    // The row's variables, from the flat row index (the last fastest).
    let mut values: Vec<Option<String>> = vec![None; op.vars.len()];
    let mut rest = "%o".to_string();
    for v in (0..win.q).rev() {
        if v == 0 {
            values[v] = Some(rest.clone());
            break;
        }
        let extent = c(op.vars[v].extent);
        values[v] = Some(em.index_op("remui", &rest, &extent));
        rest = em.index_op("divui", &rest, &extent);
    }
    let row_at: Vec<String> = (0..win.q)
        .map(|v| values[v].clone().unwrap_or_else(|| c(0)))
        .collect();
    let block = |em: &mut Emitter, q0: &str, n: u64, masked: bool| {
        let accs: Vec<String> = (0..n).map(|_| em.fresh("acc")).collect();
        let acc_types = vec![vty.as_str(); n as usize].join(", ");
        // The window's loops, outermost first, each carrying the block.
        let mut results = Vec::new();
        let mut carried: Vec<String> = vec!["%vzero".to_string(); n as usize];
        let mut values = values.clone();
        for (depth, &v) in win.reduced.iter().enumerate() {
            let r = em.fresh("r");
            let iv = format!("%w{depth}");
            em.open(format!(
                "{r}:{n} = scf.for {iv} = {} to {} step {} iter_args({}) -> ({acc_types}) {{",
                c(0),
                c(op.vars[v].extent),
                c(1),
                accs.iter()
                    .zip(&carried)
                    .map(|(a, i)| format!("{a}_{depth} = {i}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            carried = accs.iter().map(|a| format!("{a}_{depth}")).collect();
            values[v] = Some(iv);
            results.push(r);
        }
        let weight = win.w.as_ref().map(|(_, index)| {
            let at: Vec<String> = index.iter().map(|a| affine(em, a, &values, &c)).collect();
            let s = em.fresh("wt");
            em.line(format!(
                "{s} = memref.load %W[{}] : {}",
                at.join(", "),
                tw.clone().unwrap_or_default()
            ));
            let b = em.fresh("wb");
            em.line(format!("{b} = vector.broadcast {s} : f32 to {vty}"));
            b
        });
        let (last, others) = win.x_index.split_last().expect("x has an index");
        let head: Vec<String> = others.iter().map(|a| affine(em, a, &values, &c)).collect();
        let shift = affine(em, last, &values, &c);
        let start = em.index_op("addi", &shift, q0);
        let mut next = Vec::new();
        for v in 0..n {
            let col = em.index_op("addi", &start, &c(v * lanes));
            let mut at = head.clone();
            at.push(col);
            let at = at.join(", ");
            let x = em.fresh("x");
            if masked && v + 1 == n {
                em.line(format!(
                    "{x} = vector.maskedload %X[{at}], %mask, %vzero : {tx}, {mask_ty}, {vty} into {vty}"
                ));
            } else {
                em.line(format!("{x} = vector.load %X[{at}] : {tx}, {vty}"));
            }
            let y = em.fresh("y");
            let acc = &carried[v as usize];
            match &weight {
                Some(b) => em.line(format!("{y} = vector.fma {x}, {b}, {acc} : {vty}")),
                None => em.line(format!("{y} = arith.addf {acc}, {x} : {vty}")),
            }
            next.push(y);
        }
        em.line(format!("scf.yield {} : {acc_types}", next.join(", ")));
        for depth in (0..results.len()).rev() {
            em.close("}");
            if depth > 0 {
                let r = &results[depth];
                let all: Vec<String> = (0..n).map(|x| format!("{r}#{x}")).collect();
                em.line(format!("scf.yield {} : {acc_types}", all.join(", ")));
            }
        }
        let outer = results.first().cloned().unwrap_or_default();
        for v in 0..n {
            let col = em.index_op("addi", q0, &c(v * lanes));
            let mut at = row_at.clone();
            at.push(col);
            let at = at.join(", ");
            let value = if outer.is_empty() {
                carried[v as usize].clone()
            } else {
                format!("{outer}#{v}")
            };
            if masked && v + 1 == n {
                em.line(format!(
                    "vector.maskedstore %Y[{at}], %mask, {value} : {ty}, {mask_ty}, {vty}"
                ));
            } else {
                em.line(format!("vector.store {value}, %Y[{at}] : {ty}, {vty}"));
            }
        }
    };
    if nblocks > 1 {
        em.open(format!(
            "scf.for %qb = {} to {} step {} {{",
            c(0),
            c((nblocks - 1) * per_block * lanes),
            c(per_block * lanes)
        ));
        block(&mut em, "%qb", per_block, false);
        em.close("}");
    }
    let last_q0 = c((nblocks - 1) * per_block * lanes);
    block(&mut em, &last_q0, last_vectors, masked);
    em.close("}");
    if threads > 1 {
        em.line("scf.reduce");
        em.close("}");
    }
    em.line("func.return");
    let mut params = vec![format!("%X: {tx}")];
    if let Some(tw) = &tw {
        params.push(format!("%W: {tw}"));
    }
    params.push(format!("%Y: {ty}"));
    vector_kernel_text(name, &params.join(", "), &consts, (lanes, tail), em.text())
}

/// The index value of `a` with the variables' `values` (a variable
/// without one, the row's `q`, counts as zero: the caller adds it).
fn affine(
    em: &mut Emitter,
    a: &Affine,
    values: &[Option<String>],
    c: &dyn Fn(u64) -> String,
) -> String {
    let mut acc = c(a.offset.max(0) as u64);
    for (v, coefficient) in &a.terms {
        let Some(value) = values.get(*v).and_then(|x| x.clone()) else {
            continue;
        };
        let scaled = if *coefficient == 1 {
            value
        } else {
            em.index_op("muli", &value, &c(*coefficient as u64))
        };
        acc = em.index_op("addi", &acc, &scaled);
    }
    acc
}
