//! Workloads: from statements to the semantic model (tensors and a DAG of ops
//! in index form), with the checks on names, indices, shapes and types.

use crate::consts::{eval_int, ConstError, MAX_SIZE};
use crate::db::{clean_item, Db, Decl};
use crate::diag::{did_you_mean, Diagnostic, Location};
use crate::dtype::DType;
use crate::model::{Affine, Op, OpGraph, OpKind, ScalarExpr, Tensor, WorkloadModel};
use crate::scope::{file_scope, Scope};
use arch_syntax::ast::{Assign, Item, Role, Span, Stmt, TensorDecl, Workload};
use std::collections::HashMap;

/// Tensors above this many elements are refused (E0203).
pub const MAX_ELEMENTS: u64 = 1 << 48;

#[derive(Debug, Clone, PartialEq, Eq, Default, salsa::SalsaValue)]
pub struct WorkloadResult<'db> {
    /// `None` when the workload has syntax errors or errors that leave no
    /// consistent model.
    pub model: Option<WorkloadModel>,
    pub diagnostics: Vec<Diagnostic<'db>>,
}

/// A workload's size parameters after `--set`, or `None` when one of them
/// has no valid value.
#[derive(Debug, Clone, PartialEq, Eq, Default, salsa::SalsaValue)]
pub struct SizeParams<'db> {
    pub values: Option<Vec<(String, i64)>>,
    pub diagnostics: Vec<Diagnostic<'db>>,
}

/// Constant evaluation of a workload's size parameters. An override that
/// names none of them leaves the result equal, so the workload's model is not
/// re-run.
#[salsa::tracked(returns(ref))]
pub fn size_params<'db>(db: &'db dyn Db, decl: Decl<'db>) -> SizeParams<'db> {
    let Some(Item::Workload(w)) = clean_item(db, decl) else {
        return SizeParams::default();
    };
    let overrides = db.project().overrides(db);
    let mut diagnostics: Vec<Diagnostic<'db>> = Vec::new();
    let mut error = |code: &'static str, span: Span, message: String, help: Option<String>| {
        let mut d = Diagnostic::error(code, Location::new(decl, span), message);
        d.help = help;
        diagnostics.push(d);
    };
    let mut values: Vec<(String, i64)> = Vec::new();
    let mut seen: Vec<&str> = Vec::new();
    for p in &w.params {
        let name = &p.name.text;
        if seen.contains(&name.as_str()) {
            error(
                "E0102",
                p.name.span,
                format!("size parameter `{name}` is defined twice"),
                None,
            );
            continue;
        }
        seen.push(name);
        let value = if let Some((_, v)) = overrides.iter().find(|(n, _)| n == name) {
            if *v <= 0 || *v > MAX_SIZE as i128 {
                error(
                    "E0202",
                    p.name.span,
                    format!("`--set {name}={v}` is not a valid size"),
                    Some(format!("sizes are integers from 1 to 2^40 = {MAX_SIZE}")),
                );
                continue;
            }
            *v as i64
        } else if let Some(default) = &p.default {
            let known = values.clone();
            match eval_int(default, &|n| {
                known.iter().find(|(k, _)| k == n).map(|(_, v)| *v)
            }) {
                Ok(v) if v > 0 => v,
                Ok(v) => {
                    error(
                        "E0202",
                        default.span,
                        format!("size `{name}` is {v}; sizes must be positive"),
                        None,
                    );
                    continue;
                }
                Err(e) => {
                    error(e.code, e.span, e.message, e.help);
                    continue;
                }
            }
        } else {
            error(
                "E0202",
                p.name.span,
                format!("size parameter `{name}` has no value"),
                Some(format!(
                    "give it a default (`{name} = 128`) or set it with `--set {name}=128`"
                )),
            );
            continue;
        };
        values.push((name.clone(), value));
    }
    let ok = diagnostics.is_empty();
    SizeParams {
        values: ok.then_some(values),
        diagnostics,
    }
}

/// The semantic model of a workload declaration.
#[salsa::tracked(returns(ref))]
pub fn workload_model<'db>(db: &'db dyn Db, decl: Decl<'db>) -> WorkloadResult<'db> {
    // Syntax errors and bad sizes are reported by their own queries.
    let Some(Item::Workload(workload)) = clean_item(db, decl) else {
        return WorkloadResult::default();
    };
    let Some(params) = &size_params(db, decl).values else {
        return WorkloadResult::default();
    };
    let scope = file_scope(db, decl.file(db));
    let mut lowerer = Lowerer::new(db, decl, scope);
    let model = lowerer.workload(workload, params);
    let ok = lowerer.diags.is_empty();
    WorkloadResult {
        model: if ok { model } else { None },
        diagnostics: lowerer.diags,
    }
}

/// Per-statement bookkeeping of one tensor.
pub(crate) struct TensorSlot {
    /// Where it was computed, if it was.
    pub computed_at: Option<Span>,
}

/// Builds a workload model; also instantiates tensor ops called from it.
pub(crate) struct Lowerer<'a, 'db> {
    pub db: &'db dyn Db,
    pub decl: Decl<'db>,
    pub scope: &'a Scope<'db>,
    pub diags: Vec<Diagnostic<'db>>,
    /// Size parameters (or, inside an op, its bound sizes).
    pub consts: HashMap<String, i64>,
    /// Scalar parameters of the op being expanded (`stride`, `eps`).
    pub scalars: HashMap<String, f64>,
    pub tensors: Vec<Tensor>,
    pub slots: Vec<TensorSlot>,
    /// Visible tensor names.
    pub names: HashMap<String, usize>,
    pub ops: Vec<Op>,
    /// While expanding an op called from the workload, every diagnostic points
    /// at the call.
    pub call_site: Option<Span>,
    /// Prefix for tensors an expanded op creates.
    pub prefix: String,
    pub expansion_depth: usize,
    /// Counter for temporaries of the current statement.
    pub temps: usize,
    pub origin: Option<String>,
    /// Names whose declaration failed: uses of them report nothing more.
    pub poisoned: std::collections::HashSet<String>,
    /// Undeclared tensors that statements below the current one compute.
    pub later_targets: std::collections::HashSet<String>,
}

impl<'a, 'db> Lowerer<'a, 'db> {
    pub fn new(db: &'db dyn Db, decl: Decl<'db>, scope: &'a Scope<'db>) -> Self {
        Lowerer {
            db,
            decl,
            scope,
            diags: Vec::new(),
            consts: HashMap::new(),
            scalars: HashMap::new(),
            tensors: Vec::new(),
            slots: Vec::new(),
            names: HashMap::new(),
            ops: Vec::new(),
            call_site: None,
            prefix: String::new(),
            expansion_depth: 0,
            temps: 0,
            origin: None,
            poisoned: std::collections::HashSet::new(),
            later_targets: std::collections::HashSet::new(),
        }
    }

    pub fn loc(&self, span: Span) -> Location<'db> {
        Location::new(self.decl, self.call_site.unwrap_or(span))
    }

    pub fn error(
        &mut self,
        code: &'static str,
        span: Span,
        message: impl Into<String>,
    ) -> &mut Diagnostic<'db> {
        let d = Diagnostic::error(code, self.loc(span), message);
        self.diags.push(d);
        let last = self.diags.len() - 1;
        &mut self.diags[last]
    }

    pub fn const_error(&mut self, e: ConstError) {
        let mut d = Diagnostic::error(e.code, self.loc(e.span), e.message);
        d.help = e.help;
        self.diags.push(d);
    }

    fn workload(&mut self, w: &Workload, params: &[(String, i64)]) -> Option<WorkloadModel> {
        self.consts = params.iter().cloned().collect();
        let params = params.to_vec();
        if !self.diags.is_empty() {
            // Shapes depend on the sizes: nothing more can be said.
            return None;
        }
        for stmt in &w.body {
            if let Stmt::Tensor(t) = stmt {
                let before = self.diags.len();
                self.declare(t);
                if self.diags.len() > before {
                    self.poisoned.insert(t.name.text.clone());
                }
            }
        }
        let assigns: Vec<&Assign> = w
            .body
            .iter()
            .filter_map(|s| {
                if let Stmt::Assign(a) = s {
                    Some(a)
                } else {
                    None
                }
            })
            .collect();
        for (i, a) in assigns.iter().enumerate() {
            self.later_targets = assigns[i..]
                .iter()
                .map(|b| b.target.text.clone())
                .filter(|n| !self.names.contains_key(n))
                .collect();
            self.temps = 0;
            self.assign(a);
        }
        self.later_targets.clear();
        for (i, t) in self.tensors.iter().enumerate() {
            // After an error, a statement that failed leaves its tensor unset.
            if !self.diags.is_empty() {
                break;
            }
            if self.slots[i].computed_at.is_none()
                && matches!(t.role, Role::Output | Role::Intermediate)
            {
                let (role, name, span) = (t.role, t.name.clone(), t.span);
                self.error(
                    "E0408",
                    span,
                    format!("{} `{}` is never computed", role.keyword(), name),
                )
                .help = Some(format!(
                    "add a statement `{name}[...] = ...` or `{name} = ...`"
                ));
                break;
            }
        }
        self.drop_unused_temporaries();
        let graph = self.graph()?;
        if !self.diags.is_empty() {
            return None;
        }
        Some(WorkloadModel {
            name: w.name.text.clone(),
            params,
            tensors: std::mem::take(&mut self.tensors),
            ops: std::mem::take(&mut self.ops),
            graph,
        })
    }

    /// Removes intermediates no op reads or writes (left by statements that
    /// redirected an op into a declared tensor), renumbering the rest.
    fn drop_unused_temporaries(&mut self) {
        let mut used = vec![false; self.tensors.len()];
        for op in &self.ops {
            used[op.output] = true;
            crate::model::collect_accesses(&op.body, &mut |t, _| used[t] = true);
        }
        for (i, t) in self.tensors.iter().enumerate() {
            if t.role != Role::Intermediate || self.slots[i].computed_at.is_none() {
                used[i] = true;
            }
        }
        if used.iter().all(|u| *u) {
            return;
        }
        let mut new_index = vec![usize::MAX; self.tensors.len()];
        let mut next = 0;
        for (i, u) in used.iter().enumerate() {
            if *u {
                new_index[i] = next;
                next += 1;
            }
        }
        let mut i = 0;
        self.tensors.retain(|_| {
            i += 1;
            used[i - 1]
        });
        for op in &mut self.ops {
            op.output = new_index[op.output];
            remap(&mut op.body, &new_index);
        }
    }

    /// Builds the DAG, orders the ops topologically, reports a cycle.
    fn graph(&mut self) -> Option<OpGraph> {
        use petgraph::algo::toposort;
        use petgraph::graph::DiGraph;
        let mut g: DiGraph<usize, usize> = DiGraph::new();
        let nodes: Vec<_> = (0..self.ops.len()).map(|i| g.add_node(i)).collect();
        let producer: HashMap<usize, usize> = self
            .ops
            .iter()
            .enumerate()
            .map(|(i, op)| (op.output, i))
            .collect();
        for (i, op) in self.ops.iter().enumerate() {
            for t in op.inputs() {
                if let Some(&p) = producer.get(&t) {
                    g.add_edge(nodes[p], nodes[i], t);
                }
            }
        }
        match toposort(&g, None) {
            Ok(order) => {
                // Re-number the ops in topological order.
                let order: Vec<usize> = order.iter().map(|n| g[*n]).collect();
                let old = std::mem::take(&mut self.ops);
                let mut slots: Vec<Option<Op>> = old.into_iter().map(Some).collect();
                self.ops = order.iter().filter_map(|&i| slots[i].take()).collect();
                let mut sorted: DiGraph<usize, usize> = DiGraph::new();
                let ns: Vec<_> = (0..self.ops.len()).map(|i| sorted.add_node(i)).collect();
                let producer: HashMap<usize, usize> = self
                    .ops
                    .iter()
                    .enumerate()
                    .map(|(i, op)| (op.output, i))
                    .collect();
                for (i, op) in self.ops.iter().enumerate() {
                    for t in op.inputs() {
                        if let Some(&p) = producer.get(&t) {
                            sorted.add_edge(ns[p], ns[i], t);
                        }
                    }
                }
                Some(OpGraph(sorted))
            }
            Err(cycle) => {
                // Name every tensor of the strongly connected part.
                let sccs = petgraph::algo::kosaraju_scc(&g);
                let members = sccs
                    .iter()
                    .find(|c| c.contains(&cycle.node_id()))
                    .cloned()
                    .unwrap_or_default();
                let mut names: Vec<String> = members
                    .iter()
                    .map(|n| self.tensors[self.ops[g[*n]].output].name.clone())
                    .collect();
                names.sort();
                let op = &self.ops[g[cycle.node_id()]];
                let span = op.span;
                let message = if names.len() <= 1 {
                    format!("`{}` depends on itself", self.tensors[op.output].name)
                } else {
                    format!(
                        "{} depend on each other",
                        names
                            .iter()
                            .map(|n| format!("`{n}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                };
                let others: Vec<Span> = members
                    .iter()
                    .map(|n| self.ops[g[*n]].span)
                    .filter(|s| *s != span)
                    .collect();
                let labels: Vec<crate::diag::Label<'_>> = others
                    .iter()
                    .map(|s| crate::diag::Label {
                        location: self.loc(*s),
                        message: "part of the cycle".into(),
                    })
                    .collect();
                let d = self.error("E0410", span, message);
                d.labels = labels;
                d.help = Some(
                    "a workload is a DAG: compute each tensor from tensors computed before it"
                        .into(),
                );
                None
            }
        }
    }

    fn declare(&mut self, t: &TensorDecl) {
        if let Some(&prev) = self.names.get(&t.name.text) {
            let prev_span = self.tensors[prev].span;
            let label = self.loc(prev_span);
            self.error(
                "E0102",
                t.name.span,
                format!("tensor `{}` is declared twice", t.name.text),
            )
            .labels
            .push(crate::diag::Label {
                location: label,
                message: "first declared here".into(),
            });
            return;
        }
        let Some(dtype) = self.dtype(&t.ty.dtype) else {
            return;
        };
        let mut shape = Vec::new();
        for d in &t.ty.dims {
            let consts = self.consts.clone();
            match eval_int(d, &|n| consts.get(n).copied()) {
                Ok(v) if v > 0 => shape.push(v as u64),
                Ok(v) => {
                    self.error(
                        "E0202",
                        d.span,
                        format!("dimension is {v}; dimensions must be positive"),
                    );
                    return;
                }
                Err(mut e) => {
                    if e.code == "E0101" {
                        e.help = did_you_mean(
                            &crate::expr::span_text(d),
                            self.consts.keys().map(String::as_str).collect::<Vec<_>>(),
                        )
                        .or_else(|| {
                            Some("declare it as a size parameter: `workload w(N = 128)`".into())
                        });
                        e.message = format!(
                            "unknown size {}",
                            e.message.trim_end_matches(" is not a size parameter")
                        );
                    }
                    self.const_error(e);
                    return;
                }
            }
        }
        if !self.check_size(&t.name.text, &shape, dtype, t.ty.span) {
            return;
        }
        let mut tensor = Tensor {
            name: t.name.text.clone(),
            role: t.role,
            dtype,
            shape,
            sparsity: None,
            density: None,
            span: t.name.span,
        };
        for a in &t.annotations {
            self.annotation(&mut tensor, a, &t.ty);
        }
        self.add_tensor(tensor);
    }

    pub fn dtype(&mut self, name: &arch_syntax::ast::Name) -> Option<DType> {
        let d = DType::from_name(&name.text);
        if d.is_none() {
            let help = did_you_mean(
                &name.text,
                crate::dtype::ALL_DTYPES.iter().map(|d| d.name()),
            )
            .unwrap_or_else(|| {
                "element types: f64 f32 f16 bf16 fp8 int32 int16 int8 uint8 int4 spike".into()
            });
            self.error(
                "E0401",
                name.span,
                format!("unknown element type `{}`", name.text),
            )
            .help = Some(help);
        }
        d
    }

    /// E0203 for tensors that no memory could hold.
    pub fn check_size(&mut self, name: &str, shape: &[u64], dtype: DType, span: Span) -> bool {
        let elements = shape.iter().try_fold(1u64, |acc, d| acc.checked_mul(*d));
        match elements {
            Some(e) if e <= MAX_ELEMENTS && e.checked_mul(dtype.bits()).is_some() => true,
            _ => {
                let approx: f64 = shape.iter().map(|d| *d as f64).product();
                self.error(
                    "E0203",
                    span,
                    format!("tensor `{name}` would have {approx:.3e} elements"),
                )
                .help = Some(format!(
                    "tensors are limited to 2^48 elements ({} TiB of f32)",
                    (MAX_ELEMENTS * 4) >> 40
                ));
                false
            }
        }
    }

    fn annotation(
        &mut self,
        tensor: &mut Tensor,
        a: &arch_syntax::ast::Annotation,
        ty: &arch_syntax::ast::TypeExpr,
    ) {
        match a.name.text.as_str() {
            "sparse" if tensor.shape.is_empty() => {
                self.error(
                    "E0412",
                    a.span,
                    format!("`{}` is a scalar; only tensors can be sparse", tensor.name),
                );
            }
            "sparse" => {
                let [arg] = a.args.as_slice() else {
                    self.error(
                        "E0412",
                        a.span,
                        "`@sparse` takes one pattern: `@sparse(2:4 along K)`",
                    );
                    return;
                };
                let consts = self.consts.clone();
                let lookup = |n: &str| consts.get(n).copied();
                let (Some(m_expr), Ok(n)) = (&arg.ratio_of, eval_int(&arg.value, &lookup)) else {
                    self.error("E0412", arg.span, "expected an N:M pattern such as `2:4`");
                    return;
                };
                let Ok(m) = eval_int(m_expr, &lookup) else {
                    self.error(
                        "E0412",
                        m_expr.span,
                        "expected an N:M pattern such as `2:4`",
                    );
                    return;
                };
                if n <= 0 || m <= 0 || n >= m || m > 64 {
                    self.error(
                        "E0412",
                        arg.span,
                        format!("{n}:{m} is not a sparsity pattern"),
                    )
                    .help = Some(
                        "N:M keeps N non-zeros in every group of M, with 0 < N < M <= 64".into(),
                    );
                    return;
                }
                // The axis: named by the size written in the type (`along K`),
                // else the last one.
                let axis = match &arg.along {
                    None => tensor.shape.len().saturating_sub(1),
                    Some(dim) => {
                        let pos = ty.dims.iter().position(|d| {
                            matches!(&d.kind, arch_syntax::ast::ExprKind::Name(n) if n.text == dim.text)
                        });
                        match pos {
                            Some(p) => p,
                            None => {
                                let names: Vec<String> =
                                    ty.dims.iter().map(crate::expr::span_text).collect();
                                self.error(
                                    "E0412",
                                    dim.span,
                                    format!(
                                        "`{}` is not a dimension of `{}`",
                                        dim.text, tensor.name
                                    ),
                                )
                                .help = Some(format!("its dimensions are [{}]", names.join(", ")));
                                return;
                            }
                        }
                    }
                };
                if tensor.shape.get(axis).is_some_and(|d| *d % (m as u64) != 0) {
                    self.error(
                        "E0412",
                        arg.span,
                        format!(
                            "dimension {} of `{}` has size {}, not a multiple of {m}",
                            axis, tensor.name, tensor.shape[axis]
                        ),
                    );
                    return;
                }
                tensor.sparsity = Some(crate::model::NmSparsity {
                    n: n as u32,
                    m: m as u32,
                    axis,
                });
            }
            "density" => {
                let value = match a.args.as_slice() {
                    [arg] if arg.ratio_of.is_none() && arg.along.is_none() => {
                        crate::consts::eval_quantity(&arg.value, &|_| None)
                            .ok()
                            .filter(|q| q.dim == crate::units::Dim::COUNT)
                    }
                    _ => None,
                };
                match value {
                    Some(q) if q.value > 0.0 && q.value <= 1.0 => {
                        tensor.density = Some(crate::model::Real(q.value))
                    }
                    _ => {
                        self.error(
                            "E0412",
                            a.span,
                            "`@density` takes the fraction of non-zeros, in (0, 1]",
                        )
                        .help = Some("for example `@density(0.25)`".into());
                    }
                }
            }
            other => {
                let help = did_you_mean(other, ["sparse", "density"]).unwrap_or_else(|| {
                    "annotations: @sparse(N:M along DIM), @density(FRACTION)".into()
                });
                self.error(
                    "E0412",
                    a.name.span,
                    format!("unknown annotation `@{other}`"),
                )
                .help = Some(help);
            }
        }
    }

    pub fn add_tensor(&mut self, tensor: Tensor) -> usize {
        let i = self.tensors.len();
        self.names.insert(tensor.name.clone(), i);
        self.tensors.push(tensor);
        self.slots.push(TensorSlot { computed_at: None });
        i
    }

    /// A fresh intermediate for part of a statement whose result is `base`.
    pub fn temp(&mut self, base: &str, dtype: DType, shape: Vec<u64>, span: Span) -> usize {
        self.temps += 1;
        let mut name = format!("{}{}.{}", self.prefix, base, self.temps);
        while self.tensors.iter().any(|t| t.name == name) {
            self.temps += 1;
            name = format!("{}{}.{}", self.prefix, base, self.temps);
        }
        let i = self.tensors.len();
        self.tensors.push(Tensor {
            name,
            role: Role::Intermediate,
            dtype,
            shape,
            sparsity: None,
            density: None,
            span,
        });
        self.slots.push(TensorSlot { computed_at: None });
        i
    }

    fn assign(&mut self, a: &Assign) {
        match &a.indices {
            Some(indices) => self.index_assign(a, indices),
            None => self.tensor_assign(a),
        }
    }

    /// Checks that `tensor` may be computed by the statement at `span`.
    pub fn claim(&mut self, tensor: usize, name_span: Span, stmt_span: Span) -> bool {
        let t = &self.tensors[tensor];
        if matches!(t.role, Role::Input | Role::Weight) {
            let (role, name, decl) = (t.role, t.name.clone(), t.span);
            let label = self.loc(decl);
            self.error(
                "E0409",
                name_span,
                format!(
                    "`{name}` is {} and cannot be assigned",
                    crate::diag::article(role.keyword())
                ),
            )
            .labels
            .push(crate::diag::Label {
                location: label,
                message: format!("declared as {} here", crate::diag::article(role.keyword())),
            });
            return false;
        }
        if let Some(prev) = self.slots[tensor].computed_at {
            let name = t.name.clone();
            let label = self.loc(prev);
            self.error("E0408", name_span, format!("`{name}` is computed twice"))
                .labels
                .push(crate::diag::Label {
                    location: label,
                    message: "first computed here".into(),
                });
            return false;
        }
        self.slots[tensor].computed_at = Some(stmt_span);
        true
    }

    /// Records an op; `output` must already be claimed.
    pub fn push_op(&mut self, mut op: Op) {
        if op.origin.is_none() {
            op.origin.clone_from(&self.origin);
        }
        self.ops.push(op);
    }

    pub fn compute_op(
        &mut self,
        output: usize,
        vars: Vec<crate::model::IndexVar>,
        output_rank: usize,
        body: ScalarExpr,
        span: Span,
    ) {
        self.push_op(Op {
            output,
            vars,
            output_rank,
            body,
            kind: OpKind::Compute,
            span,
            origin: None,
        });
    }

    /// The identity access of `tensor` at positions `vars[offset..]`.
    pub fn identity_access(tensor: usize, rank: usize) -> ScalarExpr {
        ScalarExpr::Access {
            tensor,
            index: (0..rank).map(Affine::var).collect(),
        }
    }
}

fn remap(e: &mut ScalarExpr, new_index: &[usize]) {
    match e {
        ScalarExpr::Access { tensor, .. } => *tensor = new_index[*tensor],
        ScalarExpr::Neg(x)
        | ScalarExpr::Cast { value: x, .. }
        | ScalarExpr::Reduce { body: x, .. } => remap(x, new_index),
        ScalarExpr::Binary { lhs, rhs, .. } => {
            remap(lhs, new_index);
            remap(rhs, new_index);
        }
        ScalarExpr::Call { args, .. } => args.iter_mut().for_each(|a| remap(a, new_index)),
        ScalarExpr::Const(_) | ScalarExpr::Index(_) => {}
    }
}
