//! Row chains: consecutive ops that all work one row at a time over the
//! same rows (a softmax's maximum, exponentials, sum and scaling; a
//! layernorm's mean, centring, variance and scaling) run as one kernel
//! that takes each row through every op in turn while it is in the L1
//! cache. What one op of the chain computes and only later ops of the chain
//! read never goes to memory: a row's values live in a per-thread row
//! buffer, a row's scalar in a register.
//!
//! The chain is decided here, from the workload and the schedule, and used
//! by both the code generator (`arch_mlir::rowchain`) and the cpu model, so
//! the two agree on what is fused.
//!
//! A chain starts at a row reduction (`m[r] = max[c] x[r, c]`: the reduced
//! variables are the op's last, see [`crate::cpu::is_row_reduction`]) and
//! takes each following op that is a row reduction over the same rows and
//! row length, or element-wise over `[rows.., cols..]` or over the rows
//! alone. Every read is a whole group of rows then a whole group of columns
//! (or either alone); a tensor that an earlier op of the chain computed is
//! read exactly as that op wrote it (the same element at each row and
//! column). Every op's nest vectorizes its last variable, and all run on
//! threads or none do.

use crate::cpu::{is_row_reduction, LoopNest};
use crate::kernel_shape::{view_of, Coord, Groups, View};
use arch_sema::dtype::DType;
use arch_sema::model::{collect_accesses, Op, OpKind, ScalarExpr, WorkloadModel};
use arch_syntax::ast::{BinOp, ReduceOp, Role};

/// One op of a chain.
#[derive(Debug, Clone, PartialEq)]
pub struct Stage {
    pub op: usize,
    /// Its variables as rows and columns (columns empty: a per-row op).
    pub groups: Groups,
    /// A row reduction (else element-wise).
    pub reduces: bool,
    /// Each tensor it reads, as it reads it.
    pub reads: Vec<View>,
    pub output: View,
}

/// Ops fused into one row-by-row kernel.
#[derive(Debug, Clone, PartialEq)]
pub struct RowChain {
    pub rows: u64,
    /// Elements per row.
    pub len: u64,
    pub stages: Vec<Stage>,
    /// Tensors the chain computes that nothing outside it reads: they never
    /// reach memory.
    pub local: Vec<usize>,
}

impl RowChain {
    pub fn contains(&self, op: usize) -> bool {
        self.stages.iter().any(|s| s.op == op)
    }

    /// Tensors op `op` of the chain finds in the L1 cache or a register:
    /// those the chain keeps local, and what an earlier op of the chain
    /// already read or wrote for the same row.
    pub fn on_chip(&self, op: usize) -> Vec<usize> {
        let Some(at) = self.stages.iter().position(|s| s.op == op) else {
            return Vec::new();
        };
        let mut seen: Vec<usize> = Vec::new();
        for s in &self.stages[..at] {
            seen.extend(s.reads.iter().map(|v| v.tensor));
            seen.push(s.output.tensor);
        }
        let stage = &self.stages[at];
        let mut out: Vec<usize> = stage
            .reads
            .iter()
            .map(|v| v.tensor)
            .filter(|t| seen.contains(t) || self.local.contains(t))
            .collect();
        if self.local.contains(&stage.output.tensor) {
            out.push(stage.output.tensor);
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    /// For each stage, the first stage of the loop over the row it runs in.
    /// Consecutive row reductions that read nothing the reductions of that
    /// loop compute share one loop (a row's sum and maximum: one load per
    /// vector, both accumulators updated from it), unless the first is fed
    /// by a column map fused into its loop (a softmax's exponentials and
    /// their sum).
    pub fn loop_leads(&self) -> Vec<usize> {
        let is_map = |k: usize| {
            let s = &self.stages[k];
            !s.reduces && s.output.has(Coord::Col)
        };
        let mut leads: Vec<usize> = Vec::with_capacity(self.stages.len());
        for (k, s) in self.stages.iter().enumerate() {
            let joins = k > 0 && s.reduces && self.stages[k - 1].reduces && {
                let lead = leads[k - 1];
                let map_fed = lead > 0 && is_map(lead - 1);
                let computed: Vec<usize> = self.stages[lead..k]
                    .iter()
                    .map(|p| p.output.tensor)
                    .collect();
                !map_fed && s.reads.iter().all(|v| !computed.contains(&v.tensor))
            };
            leads.push(if joins { leads[k - 1] } else { k });
        }
        leads
    }
}

/// Whether `e` is built only of what a row kernel computes: f32 reads by
/// plain variables, constants, arithmetic, comparisons, builtins, and (if
/// `reduction` is allowed) one sum, max or min.
fn computable(w: &WorkloadModel, e: &ScalarExpr, reduction: bool) -> bool {
    match e {
        ScalarExpr::Const(_) => true,
        ScalarExpr::Access { tensor, index } => {
            w.tensors[*tensor].dtype == DType::F32
                && index
                    .iter()
                    .all(|a| a.offset == 0 && matches!(a.terms.as_slice(), [(_, 1)]))
        }
        ScalarExpr::Neg(x) => computable(w, x, reduction),
        ScalarExpr::Cast { to, value } => *to == DType::F32 && computable(w, value, reduction),
        ScalarExpr::Binary { op, lhs, rhs } => {
            *op != BinOp::MatMul && computable(w, lhs, reduction) && computable(w, rhs, reduction)
        }
        ScalarExpr::Call { args, .. } => args.iter().all(|a| computable(w, a, reduction)),
        ScalarExpr::Reduce { op, body, .. } => {
            reduction
                && matches!(op, ReduceOp::Sum | ReduceOp::Max | ReduceOp::Min)
                && computable(w, body, false)
        }
        ScalarExpr::Index(_) => false,
    }
}

/// Op `i` as a stage over `rows` rows of `len` (`None`: take its own, for a
/// row reduction that starts a chain).
fn stage_of(w: &WorkloadModel, i: usize, shape: Option<(u64, u64)>) -> Option<Stage> {
    let op = &w.ops[i];
    if !matches!(op.kind, OpKind::Compute) || w.tensors[op.output].dtype != DType::F32 {
        return None;
    }
    let extents: Vec<u64> = op.vars.iter().map(|v| v.extent).collect();
    let product = |r: std::ops::Range<usize>| extents[r].iter().product::<u64>();
    let n = op.vars.len();
    let reduction = crate::kernel_shape::the_reduction(&op.body);
    let split = if reduction.is_some() {
        if !is_row_reduction(op) || !computable(w, &op.body, true) {
            return None;
        }
        let ScalarExpr::Reduce { vars, .. } = reduction? else {
            return None;
        };
        if *vars != (op.output_rank..n).collect::<Vec<_>>() {
            return None;
        }
        op.output_rank
    } else {
        if op.output_rank != n || !computable(w, &op.body, false) {
            return None;
        }
        let (rows, len) = shape?;
        // Element-wise over [rows.., cols..], or over the rows alone.
        (0..=n).find(|&k| {
            product(0..k) == rows && (product(k..n) == len || (k == n && product(k..n) == 1))
        })?
    };
    let groups = Groups {
        extents: extents.clone(),
        batch: Vec::new(),
        rows: (0..split).collect(),
        cols: (split..n).collect(),
        depth: Vec::new(),
    };
    let reduces = reduction.is_some();
    let (rows, len) = (product(0..split), product(split..n));
    if let Some((r, l)) = shape {
        if rows != r || (reduces && len != l) || rows == 0 || l <= 1 {
            return None;
        }
    } else if len <= 1 || rows == 0 {
        return None;
    }
    let allowed = [Coord::Row, Coord::Col];
    let mut reads = Vec::new();
    let mut ok = true;
    collect_accesses(&op.body, &mut |t, index| {
        let vars: Vec<usize> = index
            .iter()
            .filter_map(|a| a.terms.first().map(|x| x.0))
            .collect();
        match view_of(w, op, t, &vars, &groups, &allowed) {
            Some(v) if !v.has(Coord::Col) || v.coords.last() == Some(&Coord::Col) => {
                if !reads.contains(&v) {
                    reads.push(v);
                }
            }
            _ => ok = false,
        }
    });
    let out_vars: Vec<usize> = (0..op.output_rank).collect();
    let output = view_of(w, op, op.output, &out_vars, &groups, &allowed)?;
    ok.then_some(Stage {
        op: i,
        groups,
        reduces,
        reads,
        output,
    })
}

/// The nest the code generator needs of an op in a chain: vectorized along
/// its last variable.
fn vectorized(op: &Op, nest: &LoopNest) -> bool {
    nest.vector == Some(op.vars.len() - 1)
}

/// The row chains of `w` under the nests `nest_of(op)` gives, in op order;
/// no op is in two.
pub fn row_chains<'n>(
    w: &WorkloadModel,
    nest_of: impl Fn(usize) -> Option<&'n LoopNest>,
) -> Vec<RowChain> {
    let mut chains = Vec::new();
    let mut i = 0;
    while i < w.ops.len() {
        let Some(first) = nest_of(i)
            .filter(|n| vectorized(&w.ops[i], n))
            .and_then(|_| stage_of(w, i, None))
            .filter(|s| s.reduces)
        else {
            i += 1;
            continue;
        };
        let parallel = nest_of(i).is_some_and(|n| !n.parallel.is_empty());
        let size = |vars: &[usize]| vars.iter().map(|v| first.groups.extents[*v]).product();
        let (rows, len) = (size(&first.groups.rows), size(&first.groups.cols));
        let mut stages = vec![first];
        let mut j = i + 1;
        while j < w.ops.len() {
            let Some(nest) = nest_of(j) else { break };
            if !vectorized(&w.ops[j], nest) || nest.parallel.is_empty() == parallel {
                break;
            }
            let Some(s) = stage_of(w, j, Some((rows, len))) else {
                break;
            };
            // What the chain computed is read as it was written.
            let consistent = s.reads.iter().all(|v| {
                stages
                    .iter()
                    .find(|p| p.output.tensor == v.tensor)
                    .is_none_or(|p| p.output == *v)
            });
            if !consistent {
                break;
            }
            stages.push(s);
            j += 1;
        }
        if stages.len() < 2 {
            i += 1;
            continue;
        }
        let inside = |o: usize| stages.iter().any(|s| s.op == o);
        let local = stages
            .iter()
            .map(|s| s.output.tensor)
            .filter(|&t| {
                w.tensors[t].role == Role::Intermediate
                    && !w
                        .ops
                        .iter()
                        .enumerate()
                        .any(|(o, op)| !inside(o) && op.inputs().contains(&t))
            })
            .collect();
        chains.push(RowChain {
            rows,
            len,
            stages,
            local,
        });
        i = j;
    }
    chains
}

/// How each op of `schedule` (in its order) runs on a cpu `hw` (the row
/// chains its nests allow, with what each stage finds on chip), and the
/// tensors no memory ever holds (the chains' locals). A chain's rows stay
/// in L1 while the row vectors one row needs (each tensor a stage reads or
/// writes along the columns) fill at most half of it; past that the stages
/// still run as one kernel, but the model lets their rows come from the
/// next level as separate ops' would.
pub fn fused_ops(
    w: &WorkloadModel,
    hw: &arch_sema::hardware::HardwareModel,
    schedule: &crate::schedule::Schedule,
) -> (Vec<crate::cpu::Fused>, Vec<usize>) {
    let mut fused = vec![crate::cpu::Fused::default(); schedule.ops.len()];
    let mut never_stored = Vec::new();
    if hw.class != arch_sema::hardware::HwClass::Cpu {
        return (fused, never_stored);
    }
    let nest_of = |op: usize| schedule.ops.iter().find(|s| s.op == op).map(|s| &s.nest);
    let l1 = hw
        .levels
        .last()
        .and_then(|l| l.size_bytes)
        .map_or(0.0, |a| hw.for_one_core(a));
    for chain in row_chains(w, nest_of) {
        let mut row_vectors: Vec<usize> = Vec::new();
        for s in &chain.stages {
            for v in s.reads.iter().chain(std::iter::once(&s.output)) {
                if v.has(Coord::Col) && !row_vectors.contains(&v.tensor) {
                    row_vectors.push(v.tensor);
                }
            }
        }
        let fits = (row_vectors.len() as f64) * chain.len as f64 * 4.0 <= l1 / 2.0;
        // The chain's kernel runs on its first stage's threads, at most one
        // per row (`arch_mlir::rowchain`).
        let threads =
            nest_of(chain.stages[0].op).map(|n| n.threads(hw.cores).min(chain.rows.max(1)));
        let leads = chain.loop_leads();
        for (k, s) in chain.stages.iter().enumerate() {
            let Some(at) = schedule.ops.iter().position(|x| x.op == s.op) else {
                continue;
            };
            let shares_loop = leads.iter().filter(|&&l| l == leads[k]).count() > 1;
            let read_later = chain.stages[k + 1..]
                .iter()
                .any(|later| later.reads.iter().any(|v| v.tensor == s.output.tensor));
            fused[at] = crate::cpu::Fused {
                in_chain: true,
                region_open: k > 0,
                read_later,
                threads,
                on_chip: if fits {
                    chain.on_chip(s.op)
                } else {
                    Vec::new()
                },
                shares_loop,
                joins: leads[k] != k,
            };
        }
        never_stored.extend(chain.local);
    }
    (fused, never_stored)
}
