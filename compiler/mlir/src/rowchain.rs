//! Row chains ([`arch_cost::fusion`]) as one kernel: each thread takes its
//! rows one at a time through every op of the chain. A row reduction runs
//! as in [`crate::rowreduce`] (four vector accumulators, narrower vectors
//! for the last columns) and leaves the row's value in a register; an
//! element-wise op over the row's columns runs a vector register (8 or 16
//! lanes) at a time, its last columns in narrower vectors, and stores into
//! its output row, which is the tensor itself when something outside the
//! chain reads it, else this thread's row
//! buffer (a heap buffer of `threads x len` the caller passes). Later ops
//! read what earlier ones computed from the register, the row buffer or the
//! output row, all still in L1.
//!
//! Kernel arguments: the memory views the chain reads (`%E{slot}`, by slot
//! of [`ChainKernel::reads`]), then each written stage's output view
//! (`%O{stage}`), then each row buffer (`%S{stage}`).

use crate::gemm::{emit_epilogue, epilogue_of, Emitter, EpilogueArgs, Lane, Local, Scaled};
use crate::rowreduce::{emit_reductions, full_groups, open_rows, reduction_parts, tail_pieces};
use arch_cost::fusion::RowChain;
use arch_cost::kernel_shape::View;
use arch_sema::model::{ScalarExpr, WorkloadModel};
use arch_syntax::ast::ReduceOp;

/// One op of the kernel.
#[derive(Debug, Clone, PartialEq)]
pub struct ChainStage {
    pub op: usize,
    /// `Some` for a row reduction: how it combines, and `body` is inside
    /// it while `outer` is the rest of the op (`ACC` for its value).
    pub reduce: Option<ReduceOp>,
    pub body: ScalarExpr,
    pub outer: ScalarExpr,
    /// Per row (one value) or per element of the row.
    pub per_row: bool,
    pub output: View,
    /// Written to its tensor (else kept in a register or a row buffer).
    pub written: bool,
    /// Runs in the loop of the stage before it (sibling reductions of the
    /// same row: [`RowChain::loop_leads`]).
    pub joins: bool,
}

/// A chain ready to emit.
#[derive(Debug, Clone, PartialEq)]
pub struct ChainKernel {
    pub rows: u64,
    pub len: u64,
    pub stages: Vec<ChainStage>,
    /// Every view any stage reads, by slot; those of tensors the chain
    /// computes are served locally.
    pub reads: Vec<View>,
    /// f32 lanes of a vector (the host's widest registers).
    pub lanes: u64,
}

impl ChainKernel {
    /// The stage that computes tensor `t`.
    fn producer(&self, t: usize) -> Option<usize> {
        self.stages.iter().position(|s| s.output.tensor == t)
    }

    /// Slots read from memory (the kernel's `%E` arguments).
    pub fn memory_slots(&self) -> Vec<usize> {
        (0..self.reads.len())
            .filter(|&s| self.producer(self.reads[s].tensor).is_none())
            .collect()
    }

    /// Stages whose row lives in a row buffer.
    pub fn buffered(&self) -> Vec<usize> {
        (0..self.stages.len())
            .filter(|&k| !self.stages[k].written && !self.stages[k].per_row)
            .collect()
    }

    /// Threads the kernel runs on for `threads` asked.
    pub fn threads(&self, threads: u64) -> u64 {
        threads.clamp(1, 64).min(self.rows.max(1))
    }

    /// The type of stage `k`'s row buffer on `threads` threads.
    pub fn buffer_type(&self, threads: u64) -> String {
        format!("memref<{}x{}xf32>", self.threads(threads), self.len)
    }
}

/// The kernel for `chain` with vectors of `lanes` f32, if every op of it
/// is one this emitter writes.
pub fn build(w: &WorkloadModel, chain: &RowChain, lanes: u64) -> Option<ChainKernel> {
    let mut reads: Vec<View> = Vec::new();
    let mut stages = Vec::new();
    let leads = chain.loop_leads();
    for (k, s) in chain.stages.iter().enumerate() {
        let op = &w.ops[s.op];
        let (reduce, body, outer) = if s.reduces {
            let (rop, body, outer) = reduction_parts(w, op, &s.groups, &mut reads)?;
            (Some(rop), body, outer)
        } else {
            let none: [ScalarExpr; 0] = [];
            let plain = Scaled {
                groups: &s.groups,
                num: &none,
                den: &none,
            };
            let body = epilogue_of(w, op, &op.body, &plain, &mut reads)?;
            (None, body, ScalarExpr::Index(crate::gemm::ACC))
        };
        stages.push(ChainStage {
            op: s.op,
            reduce,
            body,
            outer,
            per_row: s.reduces || s.groups.cols.is_empty(),
            output: s.output.clone(),
            written: !chain.local.contains(&s.output.tensor),
            joins: leads[k] != k,
        });
    }
    let kernel = ChainKernel {
        rows: chain.rows,
        len: chain.len,
        stages,
        reads,
        lanes: lanes.clamp(4, 16),
    };
    // A computed tensor is read as it was written (the analysis checked
    // the views; the epilogue's views must agree).
    let consistent = kernel.reads.iter().all(|v| {
        kernel
            .producer(v.tensor)
            .is_none_or(|k| kernel.stages[k].output == *v)
    });
    consistent.then_some(kernel)
}

/// The kernel `@name` on `threads` threads (arguments as the module doc says).
pub fn kernel(c: &ChainKernel, name: &str, threads: u64) -> String {
    let threads = c.threads(threads);
    let per_thread = c.rows.div_ceil(threads);
    let lanes = c.lanes;
    let full = full_groups(c.len, lanes);
    let full8 = c.len - c.len % lanes;
    let mut em = Emitter::new();
    let mut params: Vec<String> = c
        .memory_slots()
        .into_iter()
        .map(|s| format!("%E{s}: {}", c.reads[s].memref()))
        .collect();
    for (k, s) in c.stages.iter().enumerate() {
        if s.written {
            params.push(format!("%O{k}: {}", s.output.memref()));
        }
    }
    for k in c.buffered() {
        params.push(format!("%S{k}: {}", c.buffer_type(threads)));
    }
    em.open(format!(
        "func.func private @{name}({}) {{",
        params.join(", ")
    ));
    let constants = vec![
        0,
        1,
        lanes,
        4 * lanes,
        threads,
        per_thread,
        c.rows,
        full,
        full8,
        c.len,
    ];
    open_rows(&mut em, constants, (threads, per_thread, c.rows));
    let mut locals = vec![Local::Memory; c.reads.len()];
    // Where each stage's elements go (column maps): the argument or the
    // row buffer, its type, and the indices of column `j`.
    let dest = |k: usize, j: &str| -> (String, String, String) {
        let s = &c.stages[k];
        if s.written {
            (
                format!("%O{k}"),
                s.output.memref(),
                s.output.at("", "%row", j, ""),
            )
        } else {
            (format!("%S{k}"), c.buffer_type(threads), format!("%t, {j}"))
        }
    };
    // Computes stage `k` at column `j` and stores it; returns the value.
    let map_at = |em: &mut Emitter, locals: &[Local], k: usize, lane: Lane, j: &str| {
        let args = EpilogueArgs {
            reads: &c.reads,
            h: "",
            locals,
        };
        let v = emit_epilogue(em, &c.stages[k].body, "", lane, "%row", j, &args);
        let (name, ty, at) = dest(k, j);
        match lane {
            Lane::Vector(_) => em.line(format!(
                "vector.store {v}, {name}[{at}] : {ty}, {}",
                lane.ty()
            )),
            Lane::Scalar => em.line(format!("memref.store {v}, {name}[{at}] : {ty}")),
        }
        v
    };
    // How later stages read stage `k`'s row.
    let row_local = |k: usize| {
        let (name, ty, _) = dest(k, "");
        if c.stages[k].written {
            Local::Arg(name)
        } else {
            Local::Row {
                name,
                ty,
                prefix: "%t".into(),
            }
        }
    };
    let mut k = 0;
    while k < c.stages.len() {
        let s = &c.stages[k];
        // A column map followed by a reduction: one loop over the row, the
        // reduction reading the map's values as they are computed.
        let fused_into_next = !s.per_row && c.stages.get(k + 1).is_some_and(|n| n.reduce.is_some());
        if !s.per_row && !fused_into_next {
            em.open(format!("scf.for %j = %k0 to %k{full8} step %k{lanes} {{"));
            map_at(&mut em, &locals, k, Lane::Vector(lanes), "%j");
            em.close("}");
            for (at, lane) in tail_pieces(full8, c.len, lanes) {
                let j = em.fresh("j");
                em.line(format!("{j} = arith.constant {at} : index"));
                map_at(&mut em, &locals, k, lane, &j);
            }
        }
        let reducing = if fused_into_next { k + 1 } else { k };
        // The stages that share the reducing stage's loop.
        let mut last = reducing;
        while c.stages.get(last + 1).is_some_and(|n| n.joins) {
            last += 1;
        }
        let r = &c.stages[reducing];
        let mut produced: Vec<(usize, Local)> = Vec::new();
        if r.per_row {
            let args = EpilogueArgs {
                reads: &c.reads,
                h: "",
                locals: &locals,
            };
            let values: Vec<String> = match r.reduce {
                Some(rop) => {
                    let snapshot = locals.clone();
                    let mut before = |em: &mut Emitter, lane: Lane, j: &str| {
                        let v = map_at(em, &snapshot, k, lane, j);
                        let mut seen = snapshot.clone();
                        for (slot, view) in c.reads.iter().enumerate() {
                            if view.tensor == c.stages[k].output.tensor {
                                seen[slot] = Local::Value(v.clone());
                            }
                        }
                        seen
                    };
                    let hook: Option<crate::rowreduce::Before<'_>> = if fused_into_next {
                        Some(&mut before)
                    } else {
                        None
                    };
                    let mut parts = vec![(rop, &r.body)];
                    parts.extend(
                        c.stages[reducing + 1..=last]
                            .iter()
                            .filter_map(|m| Some((m.reduce?, &m.body))),
                    );
                    let totals =
                        emit_reductions(&mut em, &parts, (full, c.len, lanes), "%row", &args, hook);
                    (reducing..=last)
                        .zip(&totals)
                        .map(|(m, total)| {
                            emit_epilogue(
                                &mut em,
                                &c.stages[m].outer,
                                total,
                                Lane::Scalar,
                                "%row",
                                "",
                                &args,
                            )
                        })
                        .collect()
                }
                None => vec![emit_epilogue(
                    &mut em,
                    &r.body,
                    "",
                    Lane::Scalar,
                    "%row",
                    "",
                    &args,
                )],
            };
            for (m, value) in (reducing..).zip(values) {
                let stage = &c.stages[m];
                if stage.written {
                    em.line(format!(
                        "memref.store {value}, %O{m}[{}] : {}",
                        stage.output.at("", "%row", "", ""),
                        stage.output.memref()
                    ));
                }
                produced.push((m, Local::Scalar(value)));
            }
        }
        let mut publish = |stage: usize, local: Local| {
            for (slot, v) in c.reads.iter().enumerate() {
                if v.tensor == c.stages[stage].output.tensor {
                    locals[slot] = local.clone();
                }
            }
        };
        if !s.per_row {
            publish(k, row_local(k));
        }
        for (m, local) in produced {
            publish(m, local);
        }
        k = last + 1;
    }
    em.close("}");
    em.line("scf.reduce");
    em.close("}");
    em.line("func.return");
    em.close("}");
    em.text()
}
