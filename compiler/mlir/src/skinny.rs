//! f32 contractions of one to four rows, or of none (`y[t, j] = sum[k]
//! x[t, k] * w[k, j]` for a few tokens, `y[j] = sum[k] x[k] * w[k, j]`:
//! matrix-vector products, with or without an element-wise epilogue)
//! lowered to a kernel that streams `b` where it lies, written directly in
//! `scf`, `memref` and `vector`.
//!
//! Each element of `b` is used by so few rows that packing it buys nothing,
//! and the packed kernel's six-row register tile would mostly be padding.
//! The columns are cut into blocks of whole vectors
//! ([`arch_cost::kernel_shape::SkinnyPlan`], shared with the cpu model);
//! a block's outputs stay in vector registers across the depth (per step,
//! one broadcast of each row's `a`, one load of `b` per vector and an FMA
//! per row and vector), with several independent sets of accumulators when
//! the block is too short to keep the FMA units busy, summed at the end. A
//! row wider than one block walks the depth in blocks of rows, the outputs
//! stored and reloaded between them, so that several rows of `b` stream
//! side by side. The epilogue is applied as the last visit stores a block;
//! the last vector of a row that the columns do not fill is loaded and
//! stored masked, its epilogue applied one element at a time. Threads take
//! contiguous runs of the blocks (of every product of a batch), or split
//! the depth of a single product into partial sums that one thread adds up
//! after them.

use crate::gemm::{
    emit_epilogue, vector_kernel_text, Emitter, EpilogueArgs, Gemm, IndexConstants, Lane,
};
use arch_cost::kernel_shape::{Coord, SkinnyPlan};

/// The kernel for `g` as a private function `@name(%A, %B, %C, %E0, ...)`
/// over memrefs (`%E*`: the epilogue's tensors in `g.epilogue_reads`
/// order), computed as `plan` says.
pub fn kernel(g: &Gemm, name: &str, plan: &SkinnyPlan) -> String {
    let (va, vb, vc) = (&g.shape.a, &g.shape.b, &g.shape.c);
    let (ta, tb, tc) = (va.memref(), vb.memref(), vc.memref());
    let lanes = plan.lanes;
    let batched = vc.has(Coord::Batch);
    let h = if batched { "%h" } else { "" };
    let args = EpilogueArgs {
        reads: &g.epilogue_reads,
        h,
        locals: &[],
    };
    let consts = IndexConstants::default();
    let c = |x: u64| consts.get(x);
    let mut em = Emitter::at_indent(2);
    let masked = plan.tail_lanes() < lanes;
    let width = plan.per_block * lanes;
    let q_all = plan.batch.saturating_mul(plan.blocks);
    let share = |em: &mut Emitter, n: u64| em.thread_share(&c(n), &c(plan.threads), &c(1));
    let ((q0, q1), (k0, k1)) = if plan.threads > 1 {
        em.open(format!(
            "scf.parallel (%t) = ({}) to ({}) step ({}) {{",
            c(0),
            c(plan.threads),
            c(1)
        ));
        if plan.split_depth {
            ((c(0), c(q_all)), share(&mut em, plan.depth))
        } else {
            (share(&mut em, q_all), (c(0), c(plan.depth)))
        }
    } else {
        ((c(0), c(q_all)), (c(0), c(plan.depth)))
    };
    // The depth rows of one visit of the outputs: all of the thread's, or a
    // block of them.
    let depth = if plan.depth_block >= plan.depth {
        let count = if plan.split_depth {
            Count::Dynamic(em.index_op("subi", &k1, &k0))
        } else {
            Count::Static(plan.depth)
        };
        Depth {
            start: k0,
            count,
            first: None,
            last: None,
        }
    } else {
        em.open(format!(
            "scf.for %kb = {k0} to {k1} step {} {{",
            c(plan.depth_block)
        ));
        let left = em.index_op("subi", &k1, "%kb");
        let count = em.index_op("minsi", &c(plan.depth_block), &left);
        let first = em.cmp("eq", "%kb", &k0);
        let end = em.index_op("addi", "%kb", &count);
        let last = em.cmp("eq", &end, &k1);
        Depth {
            start: "%kb".into(),
            count: Count::Dynamic(count),
            first: Some(first),
            last: Some(last),
        }
    };
    // Threads that split the depth write partial sums, each its own slice
    // of `%S`, without the epilogue.
    let (c_view, s_type) = (vc.memref(), scratch_type(g, plan));
    let target = if plan.split_depth {
        Target {
            name: "%S",
            prefix: "%t, ",
            ty: &s_type,
            epilogue: false,
        }
    } else {
        Target {
            name: "%C",
            prefix: "",
            ty: &c_view,
            epilogue: true,
        }
    };
    em.open(format!("scf.for %q = {q0} to {q1} step {} {{", c(1)));
    let blk = if batched {
        em.line(format!("%h = arith.divui %q, {} : index", c(plan.blocks)));
        em.index_op("remui", "%q", &c(plan.blocks))
    } else {
        "%q".to_string()
    };
    let j0 = em.index_op("muli", &blk, &c(width));
    let last_vectors = plan.block_vectors(plan.blocks - 1);
    let block = |em: &mut Emitter, vectors: u64, masked: bool| {
        let at = Block {
            j0: &j0,
            vectors,
            masked,
            depth: &depth,
            target: &target,
        };
        emit_block(em, g, plan, &args, &c, &at);
    };
    if plan.blocks > 1 && (masked || last_vectors != plan.per_block) {
        let last = em.cmp("eq", &blk, &c(plan.blocks - 1));
        em.open(format!("scf.if {last} {{"));
        block(&mut em, last_vectors, masked);
        em.otherwise();
        block(&mut em, plan.per_block, false);
        em.close("}");
    } else {
        block(&mut em, plan.per_block, masked && plan.blocks == 1);
    }
    em.close("}");
    if depth.first.is_some() {
        em.close("}");
    }
    if plan.threads > 1 {
        em.line("scf.reduce");
        em.close("}");
    }
    if plan.split_depth {
        emit_partial_sums(&mut em, g, plan, &args, &c);
    }
    em.line("func.return");
    let mut params = format!("%A: {ta}, %B: {tb}, %C: {tc}");
    for (slot, read) in g.epilogue_reads.iter().enumerate() {
        params.push_str(&format!(", %E{slot}: {}", read.memref()));
    }
    for ty in scratch_types(g, plan) {
        params.push_str(&format!(", %S: {ty}"));
    }
    vector_kernel_text(
        name,
        &params,
        &consts,
        (lanes, plan.tail_lanes()),
        em.text(),
    )
}

/// The buffers the kernel takes from its caller after the epilogue's
/// reads: the threads' partial sums when they split the depth.
pub fn scratch_types(g: &Gemm, plan: &SkinnyPlan) -> Vec<String> {
    if plan.split_depth {
        vec![scratch_type(g, plan)]
    } else {
        Vec::new()
    }
}

/// One slice of the output's view per thread.
fn scratch_type(g: &Gemm, plan: &SkinnyPlan) -> String {
    let dims: Vec<String> = g.shape.c.shape.iter().map(u64::to_string).collect();
    format!("memref<{}x{}xf32>", plan.threads, dims.join("x"))
}

/// Where a block's outputs go: buffer `name` (of type `ty`) at `prefix`
/// then the output's indices; with the epilogue or without.
struct Target<'a> {
    name: &'a str,
    prefix: &'a str,
    ty: &'a str,
    epilogue: bool,
}

/// After threads that split the depth: every output the sum of their
/// partial sums, through the epilogue (one thread, a vector at a time; the
/// last vector of a row masked, its epilogue one element at a time).
fn emit_partial_sums(
    em: &mut Emitter,
    g: &Gemm,
    plan: &SkinnyPlan,
    args: &EpilogueArgs<'_>,
    c: &dyn Fn(u64) -> String,
) {
    let vc = &g.shape.c;
    let tc = vc.memref();
    let ts = scratch_type(g, plan);
    let lanes = plan.lanes;
    let vty = format!("vector<{lanes}xf32>");
    let mask_ty = format!("vector<{lanes}xi1>");
    // Threads split the depth of a single product only.
    let h = if args.h.is_empty() { "" } else { "%c0" };
    let _ = c(0);
    let masked = plan.tail_lanes() < lanes;
    let whole = if masked {
        plan.vectors - 1
    } else {
        plan.vectors
    };
    for r in 0..plan.rows {
        let row = c(r);
        let sum = |em: &mut Emitter, j: &str, tail: bool| {
            let mut total = String::new();
            for t in 0..plan.threads {
                let x = em.fresh("x");
                let at = format!("{}, {}", c(t), vc.at(h, &row, j, ""));
                if tail {
                    em.line(format!(
                        "{x} = vector.maskedload %S[{at}], %mask, %vzero : {ts}, {mask_ty}, {vty} into {vty}"
                    ));
                } else {
                    em.line(format!("{x} = vector.load %S[{at}] : {ts}, {vty}"));
                }
                if t == 0 {
                    total = x;
                } else {
                    let y = em.fresh("s");
                    em.line(format!("{y} = arith.addf {total}, {x} : {vty}"));
                    total = y;
                }
            }
            total
        };
        if whole > 0 {
            em.open(format!(
                "scf.for %v = {} to {} step {} {{",
                c(0),
                c(whole * lanes),
                c(lanes)
            ));
            let total = sum(em, "%v", false);
            let y = match &g.epilogue {
                Some(e) => emit_epilogue(em, e, &total, Lane::Vector(lanes), &row, "%v", args),
                None => total,
            };
            em.line(format!(
                "vector.store {y}, %C[{}] : {tc}, {vty}",
                vc.at(h, &row, "%v", "")
            ));
            em.close("}");
        }
        if masked {
            let j = c(whole * lanes);
            let total = sum(em, &j, true);
            em.line(format!(
                "vector.maskedstore %C[{}], %mask, {total} : {tc}, {mask_ty}, {vty}",
                vc.at(h, &row, &j, "")
            ));
            tail_epilogue(em, g, plan, args, c, (&row, &j));
        }
    }
}

/// The epilogue of a row's last, partial vector from column `j`, one
/// element at a time, in place in `%C`.
fn tail_epilogue(
    em: &mut Emitter,
    g: &Gemm,
    plan: &SkinnyPlan,
    args: &EpilogueArgs<'_>,
    c: &dyn Fn(u64) -> String,
    (row, j): (&str, &str),
) {
    let Some(e) = &g.epilogue else { return };
    let vc = &g.shape.c;
    let tc = vc.memref();
    em.open(format!(
        "scf.for %l = {} to {} step {} {{",
        c(0),
        c(plan.tail_lanes()),
        c(1)
    ));
    let jl = em.index_op("addi", j, "%l");
    let at = vc.at(args.h, row, &jl, "");
    let x = em.fresh("x");
    em.line(format!("{x} = memref.load %C[{at}] : {tc}"));
    let y = emit_epilogue(em, e, &x, Lane::Scalar, row, &jl, args);
    em.line(format!("memref.store {y}, %C[{at}] : {tc}"));
    em.close("}");
}

/// A number of depth rows: known when the kernel is built, or an index value.
enum Count {
    Static(u64),
    Dynamic(String),
}

/// The depth rows a block's visit covers, and whether it is the first
/// (the outputs start at zero instead of from `c`) and the last (the
/// epilogue applies); `None`: always.
struct Depth {
    start: String,
    count: Count,
    first: Option<String>,
    last: Option<String>,
}

/// One block: from column `j0`, `vectors` vectors (the last masked when
/// `masked`), over `depth`.
struct Block<'a> {
    j0: &'a str,
    vectors: u64,
    masked: bool,
    depth: &'a Depth,
    target: &'a Target<'a>,
}

/// One block's visit: its outputs from `c` (or zero), the depth loop, the
/// sets summed, the stores (with the epilogue after the last rows).
fn emit_block(
    em: &mut Emitter,
    g: &Gemm,
    plan: &SkinnyPlan,
    args: &EpilogueArgs<'_>,
    c: &dyn Fn(u64) -> String,
    at: &Block<'_>,
) {
    let (va, vb, vc) = (&g.shape.a, &g.shape.b, &g.shape.c);
    let (ta, tb) = (va.memref(), vb.memref());
    let (vectors, masked, depth) = (at.vectors, at.masked, at.depth);
    let (out, tc) = (at.target.name, at.target.ty);
    let epilogue = g.epilogue.as_ref().filter(|_| at.target.epilogue);
    let lanes = plan.lanes;
    let vty = format!("vector<{lanes}xf32>");
    let mask_ty = format!("vector<{lanes}xi1>");
    let (rows, sets) = (plan.rows, plan.sets);
    let per_set = (rows * vectors) as usize;
    let count = sets as usize * per_set;
    let h = args.h;
    let row = |r: u64| c(r);
    let tail = |v: u64| masked && v + 1 == vectors;
    let cols: Vec<String> = (0..vectors)
        .map(|v| em.index_op("addi", at.j0, &c(v * lanes)))
        .collect();
    let prefix = at.target.prefix;
    let c_at = |r: u64, v: u64| format!("{prefix}{}", vc.at(h, &row(r), &cols[v as usize], ""));
    // One step of depth `kk` into accumulators `acc` (rows x vectors).
    let step = |em: &mut Emitter, kk: &str, acc: &[String]| -> Vec<String> {
        let bs: Vec<String> = (0..vectors)
            .map(|v| {
                let x = em.fresh("b");
                let at = vb.at(h, "", &cols[v as usize], kk);
                if tail(v) {
                    em.line(format!(
                        "{x} = vector.maskedload %B[{at}], %mask, %vzero : {tb}, {mask_ty}, {vty} into {vty}"
                    ));
                } else {
                    em.line(format!("{x} = vector.load %B[{at}] : {tb}, {vty}"));
                }
                x
            })
            .collect();
        let mut next = Vec::with_capacity(acc.len());
        for r in 0..rows {
            let s = em.fresh("a");
            em.line(format!(
                "{s} = memref.load %A[{}] : {ta}",
                va.at(h, &row(r), "", kk)
            ));
            let sv = em.fresh("av");
            em.line(format!("{sv} = vector.broadcast {s} : f32 to {vty}"));
            for (v, b) in bs.iter().enumerate() {
                let y = em.fresh("y");
                let old = &acc[r as usize * vectors as usize + v];
                em.line(format!("{y} = vector.fma {sv}, {b}, {old} : {vty}"));
                next.push(y);
            }
        }
        next
    };
    // The first set starts from what earlier depth blocks left in `c`.
    let mut init: Vec<String> = vec!["%vzero".to_string(); count];
    if let Some(first) = &depth.first {
        for r in 0..rows {
            for v in 0..vectors {
                let x = em.fresh("o");
                em.open(format!("{x} = scf.if {first} -> ({vty}) {{"));
                em.line(format!("scf.yield %vzero : {vty}"));
                em.otherwise();
                let y = em.fresh("o");
                if tail(v) {
                    em.line(format!(
                        "{y} = vector.maskedload {out}[{}], %mask, %vzero : {tc}, {mask_ty}, {vty} into {vty}",
                        c_at(r, v)
                    ));
                } else {
                    em.line(format!(
                        "{y} = vector.load {out}[{}] : {tc}, {vty}",
                        c_at(r, v)
                    ));
                }
                em.line(format!("scf.yield {y} : {vty}"));
                em.close("}");
                init[(r * vectors + v) as usize] = x;
            }
        }
    }
    // The depth rows in whole steps of `sets`, then the rest into the first set.
    let (whole_end, end) = match &depth.count {
        Count::Static(n) => (c(n / sets * sets), c(*n)),
        Count::Dynamic(n) => {
            let end = em.index_op("addi", &depth.start, n);
            if sets > 1 {
                let rest = em.index_op("remui", n, &c(sets));
                (em.index_op("subi", &end, &rest), end)
            } else {
                (end.clone(), end)
            }
        }
    };
    let acc_types = vec![vty.as_str(); count].join(", ");
    let loop_accs: Vec<String> = (0..count).map(|_| em.fresh("acc")).collect();
    let r = em.fresh("r");
    em.open(format!(
        "{r}:{count} = scf.for %p = {} to {whole_end} step {} iter_args({}) -> ({acc_types}) {{",
        depth.start,
        c(sets),
        loop_accs
            .iter()
            .zip(&init)
            .map(|(a, i)| format!("{a} = {i}"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    let mut next = Vec::with_capacity(count);
    for s in 0..sets as usize {
        let kk = if s == 0 {
            "%p".to_string()
        } else {
            em.index_op("addi", "%p", &c(s as u64))
        };
        next.extend(step(em, &kk, &loop_accs[s * per_set..(s + 1) * per_set]));
    }
    em.line(format!("scf.yield {} : {acc_types}", next.join(", ")));
    em.close("}");
    let mut sums: Vec<String> = (0..per_set).map(|x| format!("{r}#{x}")).collect();
    if sets > 1 {
        match &depth.count {
            Count::Static(n) => {
                for kk in n / sets * sets..*n {
                    sums = step(em, &c(kk), &sums);
                }
            }
            Count::Dynamic(_) => {
                let types = vec![vty.as_str(); per_set].join(", ");
                let inner: Vec<String> = (0..per_set).map(|_| em.fresh("acc")).collect();
                let rest = em.fresh("r");
                em.open(format!(
                    "{rest}:{per_set} = scf.for %pr = {whole_end} to {end} step {} iter_args({}) -> ({types}) {{",
                    c(1),
                    inner
                        .iter()
                        .zip(&sums)
                        .map(|(a, i)| format!("{a} = {i}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
                let next = step(em, "%pr", &inner);
                em.line(format!("scf.yield {} : {types}", next.join(", ")));
                em.close("}");
                sums = (0..per_set).map(|x| format!("{rest}#{x}")).collect();
            }
        }
    }
    for s in 1..sets as usize {
        for (x, total) in sums.iter_mut().enumerate() {
            let y = em.fresh("s");
            em.line(format!(
                "{y} = arith.addf {total}, {r}#{} : {vty}",
                s * per_set + x
            ));
            *total = y;
        }
    }
    for rr in 0..rows {
        for v in 0..vectors {
            let acc = &sums[(rr * vectors + v) as usize];
            let j = &cols[v as usize];
            let at = c_at(rr, v);
            if tail(v) {
                em.line(format!(
                    "vector.maskedstore {out}[{at}], %mask, {acc} : {tc}, {mask_ty}, {vty}"
                ));
                if epilogue.is_none() {
                    continue;
                }
                // The epilogue of the lanes the columns fill, one at a time.
                if let Some(last) = &depth.last {
                    em.open(format!("scf.if {last} {{"));
                }
                tail_epilogue(em, g, plan, args, c, (&row(rr), j));
                if depth.last.is_some() {
                    em.close("}");
                }
            } else {
                let y = match (epilogue, &depth.last) {
                    (None, _) => acc.clone(),
                    (Some(e), None) => {
                        emit_epilogue(em, e, acc, Lane::Vector(lanes), &row(rr), j, args)
                    }
                    (Some(e), Some(last)) => {
                        let y = em.fresh("s");
                        em.open(format!("{y} = scf.if {last} -> ({vty}) {{"));
                        let z = emit_epilogue(em, e, acc, Lane::Vector(lanes), &row(rr), j, args);
                        em.line(format!("scf.yield {z} : {vty}"));
                        em.otherwise();
                        em.line(format!("scf.yield {acc} : {vty}"));
                        em.close("}");
                        y
                    }
                };
                em.line(format!("vector.store {y}, {out}[{at}] : {tc}, {vty}"));
            }
        }
    }
}
