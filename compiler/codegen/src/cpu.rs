//! The whole cpu path from a workload and its loop nests to an object:
//! linalg ([`arch_mlir::linalg`]), the schedule as a transform script
//! ([`arch_mlir::schedule`]), MLIR's pipeline to LLVM IR
//! ([`arch_mlir::pipeline`]), then [`crate::object`].

use crate::{HostTarget, Object};
use arch_cost::cpu::LoopNest;
use arch_mlir::gemm::{Blocks, Gemm, ThreadSplit};
use arch_mlir::linalg::Kernel;
use arch_mlir::pipeline::Stage;
use arch_sema::model::WorkloadModel;

/// The module at every stage and the code made from it.
pub struct Compiled {
    /// The input module (linalg with its transform script attached).
    pub input: String,
    pub stages: Vec<Stage>,
    pub llvm_ir: String,
    pub object: Object,
    pub host: HostTarget,
    /// Threads the code runs on (more than one: linked against libomp).
    pub threads: u64,
}

impl Compiled {
    /// The libraries to link: libm, and libomp for threads.
    pub fn libraries(&self) -> Vec<&'static str> {
        if self.threads > 1 {
            vec!["m", "omp"]
        } else {
            vec!["m"]
        }
    }
}

/// Why a workload did not compile: a message for the user, and the stage
/// input so far (for `ARCH_DUMP_MLIR`).
#[derive(Debug, Clone)]
pub struct CompileError {
    pub message: String,
    pub input: Option<String>,
}

impl std::fmt::Display for CompileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// The packed kernel's blocks for an op under `nest`: `nc` from the l3
/// tile of `j`, `kc` and `mc` from the l2 tiles of `k` and `i`; as many
/// threads as the nest's parallel tiles ask for (`LoopNest::threads`, at
/// most `cores`), splitting what [`ThreadSplit::of`] says.
fn kernel_blocks(nest: &LoopNest, g: &Gemm, cores: u64, lanes: u64) -> Blocks {
    let level = |l: usize, v: usize, default: u64| {
        nest.tiles
            .get(l)
            .and_then(|t| t.get(v))
            .copied()
            .unwrap_or(default)
    };
    let group = |l: usize, vars: &[usize]| -> u64 {
        vars.iter()
            .map(|&v| level(l, v, g.shape.c.full.get(v).copied().unwrap_or(1)))
            .product::<u64>()
            .max(1)
    };
    let groups = &g.shape.groups;
    let depth_extent = |l: usize| {
        groups
            .depth
            .iter()
            .map(|&v| {
                nest.tiles
                    .get(l)
                    .and_then(|t| t.get(v))
                    .copied()
                    .unwrap_or(1)
            })
            .product::<u64>()
            .max(1)
    };
    Blocks {
        nc: group(1, &groups.cols),
        kc: depth_extent(2),
        mc: group(2, &groups.rows),
        threads: nest.threads(cores),
        split: ThreadSplit::of(groups, &nest.parallel),
        lanes,
    }
}

/// Which ops run as kernels: f32 contractions the packed kernel takes
/// (`arch_cost::kernel_shape`, with element-wise epilogues) whose nest
/// vectorizes the output's innermost column variable; row reductions
/// (`arch_mlir::rowreduce`) whose nest vectorizes the innermost reduced
/// variable. Each runs on the threads its nest's parallel tiles ask for
/// (at most `cores`; the cpu model counts the same).
pub fn kernels(
    w: &WorkloadModel,
    nests: &[Option<LoopNest>],
    cores: u64,
    host: &HostTarget,
) -> Vec<Option<Kernel>> {
    // The packed kernel's vectors: the widest registers (16 f32 lanes with
    // AVX-512, 8 with AVX2).
    let lanes = (host.vector_bytes() / 4).clamp(4, 16);
    let threads_of = |nest: Option<&LoopNest>| nest.map_or(1, |n| n.threads(cores));
    // Row chains first (the cpu model fuses the same ones).
    let mut chosen: Vec<Option<Kernel>> = vec![None; w.ops.len()];
    for chain in arch_cost::fusion::row_chains(w, |o| nests.get(o)?.as_ref()) {
        let Some(k) = arch_mlir::rowchain::build(w, &chain, lanes) else {
            continue;
        };
        let first = chain.stages[0].op;
        let threads = threads_of(nests.get(first).and_then(|n| n.as_ref()));
        for s in &chain.stages[1..] {
            chosen[s.op] = Some(Kernel::InChain);
        }
        chosen[first] = Some(Kernel::RowChain(Box::new(k), threads));
    }
    w.ops
        .iter()
        .enumerate()
        .map(|(i, op)| {
            if chosen[i].is_some() {
                return chosen[i].take();
            }
            let nest = nests.get(i)?.as_ref()?;
            nest.vector?;
            if let Some(g) = arch_mlir::gemm::recognize(w, op) {
                // The kernel's vectors run along the output's columns;
                // along the reduced ones a contraction is row reductions
                // (dot products).
                if nest.vector == g.shape.groups.cols.last().copied() {
                    let blocks = kernel_blocks(nest, &g, cores, lanes);
                    return Some(Kernel::Gemm(Box::new(g), blocks));
                }
            }
            if let Some(shape) = arch_cost::kernel_shape::skinny_contraction(w, op) {
                if nest.vector == shape.groups.cols.last().copied() {
                    let plan =
                        arch_cost::kernel_shape::SkinnyPlan::of(&shape, lanes, nest.threads(cores));
                    if let Some(g) = arch_mlir::gemm::of_contraction(w, op, shape) {
                        return Some(Kernel::Skinny(Box::new(g), plan));
                    }
                }
            }
            if let Some(win) = arch_cost::kernel_shape::window_op(w, op) {
                if nest.vector == Some(win.q) {
                    return Some(Kernel::Window(Box::new(win), nest.threads(cores), lanes));
                }
            }
            let r = arch_mlir::rowreduce::recognize(w, op)?;
            if nest.vector != Some(op.vars.len() - 1) {
                return None;
            }
            Some(Kernel::RowReduce(Box::new(r), nest.threads(cores)))
        })
        .collect()
}

/// Compiles `w` with `nests[op]` for each op (`None`: untiled, scalar);
/// `cores` threads run the ops whose nest is parallel.
pub fn compile(
    w: &WorkloadModel,
    nests: &[Option<LoopNest>],
    host: &HostTarget,
    cores: u64,
) -> Result<Compiled, CompileError> {
    let fail = |message: String, input: Option<&String>| CompileError {
        message,
        input: input.cloned(),
    };
    let kernels = kernels(w, nests, cores, host);
    // Threads: the kernels', and the cores for any other op whose nest is
    // parallel.
    let transform_threads = w
        .ops
        .iter()
        .enumerate()
        .filter(|(i, _)| kernels.get(*i).is_none_or(|k| k.is_none()))
        .filter_map(|(i, _)| nests.get(i)?.as_ref())
        .any(|n| !n.parallel.is_empty());
    let threads = kernels
        .iter()
        .flatten()
        .map(|k| match k {
            Kernel::Gemm(_, b) => b.threads,
            Kernel::Skinny(_, plan) => plan.threads,
            Kernel::Window(_, t, _) => *t,
            Kernel::RowReduce(_, t) | Kernel::RowChain(_, t) => *t,
            Kernel::InChain => 1,
        })
        .chain(transform_threads.then_some(cores.max(1)))
        .max()
        .unwrap_or(1);
    let (linalg, parts) =
        arch_mlir::linalg::lower_parts(w, &kernels).map_err(|e| fail(e.to_string(), None))?;
    let elem_bytes: Vec<u64> = w
        .ops
        .iter()
        .map(|op| w.compute_dtype(op).bits().div_ceil(8))
        .collect();
    let machine = arch_mlir::schedule::Machine {
        vector_bytes: host.vector_bytes(),
        threads: cores.max(1),
        ..Default::default()
    };
    let script = arch_mlir::schedule::transform_script(w, &parts, nests, &elem_bytes, &machine);
    let input = arch_mlir::schedule::attach(&linalg, &script);
    let lowered = arch_mlir::pipeline::run(&input, &arch_mlir::pipeline::cpu_stages(true, threads))
        .map_err(|e| fail(e.to_string(), Some(&input)))?;
    let object = crate::object(&lowered.llvm_ir, &w.name, host)
        .map_err(|e| fail(e.to_string(), Some(&input)))?;
    Ok(Compiled {
        input,
        stages: lowered.stages,
        llvm_ir: lowered.llvm_ir,
        object,
        host: host.clone(),
        threads,
    })
}
