//! The semantic model: what later stages (cost model, lowering, language
//! server) read. Plain data with sizes evaluated, names resolved and units in
//! base units.

use crate::dtype::DType;
use arch_syntax::ast::{BinOp, ReduceOp, Role, Span};
use petgraph::graph::DiGraph;

/// An `f64` with bitwise equality, so models can be salsa values.
#[derive(Debug, Clone, Copy, Default)]
pub struct Real(pub f64);

impl PartialEq for Real {
    fn eq(&self, other: &Real) -> bool {
        self.0.to_bits() == other.0.to_bits()
    }
}
impl Eq for Real {}
impl std::hash::Hash for Real {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.to_bits().hash(state);
    }
}

/// `N:M` structured sparsity along one dimension of a tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NmSparsity {
    pub n: u32,
    pub m: u32,
    /// Which dimension of the tensor the groups of M run along.
    pub axis: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Tensor {
    pub name: String,
    pub role: Role,
    pub dtype: DType,
    pub shape: Vec<u64>,
    pub sparsity: Option<NmSparsity>,
    /// Fraction of non-zeros, 0 < density <= 1.
    pub density: Option<Real>,
    /// The declaration, or the statement that made an intermediate.
    pub span: Span,
}

impl Tensor {
    pub fn elements(&self) -> u64 {
        self.shape.iter().product()
    }

    /// Bytes stored, compressed when the tensor is sparse (see
    /// [`Tensor::stored_fraction`]).
    pub fn bytes(&self) -> u64 {
        let dense = self.elements() * self.dtype.bits();
        if self.sparsity.is_none() && self.density.is_none() {
            return dense.div_ceil(8);
        }
        (dense as f64 * self.stored_fraction() / 8.0).ceil() as u64
    }

    /// The fraction of its dense size the tensor takes stored. An `N:M`
    /// tensor keeps N of every M values, each with a `ceil(log2 M)`-bit
    /// position in its group (2 bits for 2:4, as sparse tensor cores store
    /// it); a `@density(d)` tensor keeps the fraction d of its values and a
    /// one-bit mask per value. Never more than dense: a layout that would
    /// not pay is stored dense.
    pub fn stored_fraction(&self) -> f64 {
        let bits = self.dtype.bits().max(1) as f64;
        let nm = self.sparsity.map_or(1.0, |s| {
            let index_bits = (s.m.max(2) as f64).log2().ceil();
            s.n as f64 / s.m as f64 * (1.0 + index_bits / bits)
        });
        let density = self.density.map_or(1.0, |d| d.0 + 1.0 / bits);
        nm.min(density).min(1.0)
    }
}

/// `2 * p + r + 1`: index expressions are affine in the index variables.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Affine {
    /// `(variable, coefficient)`; variables are positions in `Op::vars`.
    pub terms: Vec<(usize, i64)>,
    pub offset: i64,
}

impl Affine {
    pub fn var(v: usize) -> Affine {
        Affine {
            terms: vec![(v, 1)],
            offset: 0,
        }
    }

    pub fn constant(c: i64) -> Affine {
        Affine {
            terms: Vec::new(),
            offset: c,
        }
    }

    /// How many positions the index covers when every variable `v` ranges
    /// over `tile[v]` values: `1 + Σ |c| (tile(v) - 1)` (so `p + r` covers
    /// `tile(p) + tile(r) - 1`).
    pub fn extent(&self, tile: &[u64]) -> u64 {
        1 + self
            .terms
            .iter()
            .map(|(v, c)| c.unsigned_abs() * tile[*v].saturating_sub(1))
            .sum::<u64>()
    }

    /// The single variable, if this index is exactly one variable.
    pub fn as_var(&self) -> Option<usize> {
        match self.terms.as_slice() {
            [(v, 1)] if self.offset == 0 => Some(*v),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Builtin {
    Exp,
    Log,
    Sqrt,
    Tanh,
    Abs,
    Sigmoid,
    Erf,
    Max,
    Min,
}

pub const BUILTINS: &[(&str, Builtin, usize)] = &[
    ("exp", Builtin::Exp, 1),
    ("log", Builtin::Log, 1),
    ("sqrt", Builtin::Sqrt, 1),
    ("tanh", Builtin::Tanh, 1),
    ("abs", Builtin::Abs, 1),
    ("sigmoid", Builtin::Sigmoid, 1),
    ("erf", Builtin::Erf, 1),
    ("max", Builtin::Max, 2),
    ("min", Builtin::Min, 2),
];

/// A scalar expression at one point of an op's iteration space.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ScalarExpr {
    Const(Real),
    /// The value of an index variable.
    Index(usize),
    Access {
        tensor: usize,
        index: Vec<Affine>,
    },
    Neg(Box<ScalarExpr>),
    Binary {
        op: BinOp,
        lhs: Box<ScalarExpr>,
        rhs: Box<ScalarExpr>,
    },
    Call {
        func: Builtin,
        args: Vec<ScalarExpr>,
    },
    Cast {
        to: DType,
        value: Box<ScalarExpr>,
    },
    /// Reduces over `vars` (positions in `Op::vars`).
    Reduce {
        op: ReduceOp,
        vars: Vec<usize>,
        body: Box<ScalarExpr>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IndexVar {
    pub name: String,
    pub extent: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum OpKind {
    /// `output[vars[..rank]] = body`, with the other vars reduced.
    Compute,
    /// A neuron model stepped over time: `output[t, ...] = model(input[t, ...])`.
    Neuron {
        model: String,
        params: Vec<(String, Real)>,
    },
}

/// One node of the workload graph: a tensor op in index form.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Op {
    /// The computed tensor (its name names the op in mappings and reports).
    pub output: usize,
    /// The output's index variables first, then the reduced ones.
    pub vars: Vec<IndexVar>,
    /// How many of `vars` index the output.
    pub output_rank: usize,
    pub body: ScalarExpr,
    pub kind: OpKind,
    /// The statement that produced this op.
    pub span: Span,
    /// The std.nn (or user) op it was expanded from, if any.
    pub origin: Option<String>,
}

impl Op {
    /// Tensors the op reads, without repeats, in first-use order.
    pub fn inputs(&self) -> Vec<usize> {
        let mut out = Vec::new();
        collect_accesses(&self.body, &mut |t, _| {
            if !out.contains(&t) {
                out.push(t);
            }
        });
        out
    }

    /// Bytes of each tensor the op touches when every variable `v` takes
    /// `tile[v]` values: the output tile first, then every tensor it reads,
    /// once, as the slice its first access covers.
    pub fn tile_bytes(&self, tensors: &[Tensor], tile: &[u64]) -> Vec<(usize, f64)> {
        let bytes = |t: usize, elements: f64| {
            elements * tensors[t].dtype.bits() as f64 / 8.0 * tensors[t].stored_fraction()
        };
        let output: f64 = tile[..self.output_rank].iter().map(|x| *x as f64).product();
        let mut out = vec![(self.output, bytes(self.output, output))];
        collect_accesses(&self.body, &mut |t, index| {
            if !out.iter().any(|(seen, _)| *seen == t) {
                let elements: f64 = index.iter().map(|a| a.extent(tile) as f64).product();
                out.push((t, bytes(t, elements)));
            }
        });
        out
    }

    /// Multiply-accumulate-like scalar operations per point of the space.
    pub fn iteration_points(&self) -> u64 {
        self.vars.iter().map(|v| v.extent).product()
    }
}

/// Calls `f(tensor, index)` for every access in `e`.
pub fn collect_accesses(e: &ScalarExpr, f: &mut dyn FnMut(usize, &[Affine])) {
    match e {
        ScalarExpr::Access { tensor, index } => f(*tensor, index),
        ScalarExpr::Neg(x)
        | ScalarExpr::Cast { value: x, .. }
        | ScalarExpr::Reduce { body: x, .. } => collect_accesses(x, f),
        ScalarExpr::Binary { lhs, rhs, .. } => {
            collect_accesses(lhs, f);
            collect_accesses(rhs, f);
        }
        ScalarExpr::Call { args, .. } => args.iter().for_each(|a| collect_accesses(a, f)),
        ScalarExpr::Const(_) | ScalarExpr::Index(_) => {}
    }
}

/// The workload graph: a petgraph DAG whose nodes are op positions and whose
/// edges carry the tensor flowing from producer to consumer.
#[derive(Debug, Clone, Default)]
pub struct OpGraph(pub DiGraph<usize, usize>);

impl PartialEq for OpGraph {
    fn eq(&self, other: &OpGraph) -> bool {
        let a = &self.0;
        let b = &other.0;
        a.node_count() == b.node_count()
            && a.raw_nodes()
                .iter()
                .zip(b.raw_nodes())
                .all(|(x, y)| x.weight == y.weight)
            && a.edge_count() == b.edge_count()
            && a.raw_edges().iter().zip(b.raw_edges()).all(|(x, y)| {
                x.weight == y.weight && x.source() == y.source() && x.target() == y.target()
            })
    }
}
impl Eq for OpGraph {}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadModel {
    pub name: String,
    /// Size parameters after `--set`.
    pub params: Vec<(String, i64)>,
    pub tensors: Vec<Tensor>,
    /// In a topological order of the graph.
    pub ops: Vec<Op>,
    pub graph: OpGraph,
}

impl WorkloadModel {
    pub fn tensor(&self, name: &str) -> Option<usize> {
        self.tensors.iter().position(|t| t.name == name)
    }

    /// The element type an op computes in: its first operand's, else its
    /// output's.
    pub fn compute_dtype(&self, op: &Op) -> DType {
        op.inputs()
            .first()
            .map_or(self.tensors[op.output].dtype, |t| self.tensors[*t].dtype)
    }

    /// The op computing `tensor`, if one does.
    pub fn producer(&self, tensor: usize) -> Option<&Op> {
        self.ops.iter().find(|op| op.output == tensor)
    }

    /// Op `i` as a workload of its own (what a per-op profile builds and
    /// times): the tensors it reads become inputs (weights stay weights),
    /// the one it computes the output; named `<workload>__<tensor>` with
    /// characters a C symbol cannot hold replaced by `_`.
    pub fn op_alone(&self, i: usize) -> Option<WorkloadModel> {
        self.ops_alone(&[i])
    }

    /// Ops `group` (in order) as a workload of their own: what they read
    /// and nothing in the group computes becomes an input (weights stay
    /// weights); what they compute is an output when it is one here or an
    /// op outside the group reads it, else it stays intermediate. Named
    /// after the last op's tensor, as [`WorkloadModel::op_alone`].
    pub fn ops_alone(&self, group: &[usize]) -> Option<WorkloadModel> {
        let ops: Vec<&Op> = group
            .iter()
            .map(|&i| self.ops.get(i))
            .collect::<Option<_>>()?;
        let computed: Vec<usize> = ops.iter().map(|op| op.output).collect();
        let mut keep: Vec<usize> = Vec::new();
        for op in &ops {
            for t in op.inputs() {
                if !computed.contains(&t) && !keep.contains(&t) {
                    keep.push(t);
                }
            }
        }
        keep.extend(computed.iter().copied());
        let read_outside = |t: usize| {
            self.ops
                .iter()
                .enumerate()
                .any(|(i, op)| !group.contains(&i) && op.inputs().contains(&t))
        };
        let tensors = keep
            .iter()
            .map(|&t| {
                let mut tensor = self.tensors[t].clone();
                tensor.role = if computed.contains(&t) {
                    if tensor.role == Role::Output || read_outside(t) || group.len() == 1 {
                        Role::Output
                    } else {
                        Role::Intermediate
                    }
                } else if tensor.role == Role::Weight {
                    Role::Weight
                } else {
                    Role::Input
                };
                tensor
            })
            .collect();
        let index = |t: usize| keep.iter().position(|k| *k == t).unwrap_or(0);
        let mut graph = DiGraph::new();
        let mut alone_ops = Vec::new();
        for op in &ops {
            let mut alone = (*op).clone();
            alone.output = index(op.output);
            renumber_tensors(&mut alone.body, &index);
            graph.add_node(alone_ops.len());
            alone_ops.push(alone);
        }
        let symbol: String = self.tensors[ops.last()?.output]
            .name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        Some(WorkloadModel {
            name: format!("{}__{symbol}", self.name),
            params: self.params.clone(),
            tensors,
            ops: alone_ops,
            graph: OpGraph(graph),
        })
    }
}

fn renumber_tensors(e: &mut ScalarExpr, index: &dyn Fn(usize) -> usize) {
    match e {
        ScalarExpr::Const(_) | ScalarExpr::Index(_) => {}
        ScalarExpr::Access { tensor, .. } => *tensor = index(*tensor),
        ScalarExpr::Neg(x) => renumber_tensors(x, index),
        ScalarExpr::Binary { lhs, rhs, .. } => {
            renumber_tensors(lhs, index);
            renumber_tensors(rhs, index);
        }
        ScalarExpr::Call { args, .. } => args.iter_mut().for_each(|a| renumber_tensors(a, index)),
        ScalarExpr::Cast { value, .. } => renumber_tensors(value, index),
        ScalarExpr::Reduce { body, .. } => renumber_tensors(body, index),
    }
}
