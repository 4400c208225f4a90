//! Op and neuron declarations checked on their own: names, indices and units
//! in their bodies. Calls expand them again with real sizes.

use crate::consts::{eval_int, eval_quantity};
use crate::db::{clean_item, Db, Decl};
use crate::diag::{did_you_mean, Diagnostic, Label, Location};
use crate::dtype::DType;
use crate::expr::IndexCtx;
use crate::model::{Real, ScalarExpr, Tensor, BUILTINS};
use crate::scope::file_scope;
use crate::units::{parse_unit, Dim};
use crate::workload::Lowerer;
use arch_syntax::ast::{
    BinOp, Expr, ExprKind, Item, NeuronDecl, NeuronStmt, OpBody, OpDecl, Role, Span, Stmt,
};
use std::collections::HashMap;

/// Diagnostics of an `op` declaration: its body is expanded once with every
/// size 1, which exercises names, ranks and index binding.
#[salsa::tracked(returns(ref))]
pub fn op_diagnostics<'db>(db: &'db dyn Db, decl: Decl<'db>) -> Vec<Diagnostic<'db>> {
    let Some(Item::Op(op)) = clean_item(db, decl) else {
        return Vec::new();
    };
    let scope = file_scope(db, decl.file(db));
    let mut l = Lowerer::new(db, decl, scope);
    check_op(&mut l, op);
    l.diags
}

fn check_op(l: &mut Lowerer<'_, '_>, op: &OpDecl) {
    for g in &op.generics {
        l.consts.insert(g.text.clone(), 1);
    }
    let mut values = HashMap::new();
    for p in &op.params {
        if p.dims.is_none() {
            let v = match &p.default {
                Some(d) => match eval_quantity(d, &|_| None) {
                    Ok(q) => q.value,
                    Err(e) => {
                        l.const_error(e);
                        return;
                    }
                },
                None => 1.0,
            };
            l.scalars.insert(p.name.text.clone(), v);
            values.insert(p.name.text.clone(), (ScalarExpr::Const(Real(v)), None));
        }
    }
    match &op.body {
        OpBody::Scalar(body) => {
            let mut ctx = IndexCtx {
                values: vec![values],
                ..IndexCtx::default()
            };
            l.scalars.clear();
            let _ = l.lower_scalar(body, &mut ctx);
        }
        OpBody::Tensor { result, dims, body } => {
            let consts = l.consts.clone();
            let scalars = l.scalars.clone();
            let env = move |n: &str| {
                consts
                    .get(n)
                    .copied()
                    .or_else(|| scalars.get(n).map(|v| *v as i64))
            };
            for p in &op.params {
                let Some(pdims) = &p.dims else { continue };
                for d in pdims {
                    if let Err(e) = eval_int(d, &env) {
                        l.const_error(e);
                        return;
                    }
                }
                l.add_tensor(Tensor {
                    name: p.name.text.clone(),
                    role: Role::Input,
                    dtype: DType::F32,
                    shape: vec![1; pdims.len()],
                    sparsity: None,
                    density: None,
                    span: p.name.span,
                });
            }
            for d in dims {
                if let Err(e) = eval_int(d, &env) {
                    l.const_error(e);
                    return;
                }
            }
            let out = l.add_tensor(Tensor {
                name: result.text.clone(),
                role: Role::Output,
                dtype: DType::F32,
                shape: vec![1; dims.len()],
                sparsity: None,
                density: None,
                span: result.span,
            });
            for stmt in body {
                match stmt {
                    Stmt::Assign(a) => {
                        l.temps = 0;
                        match &a.indices {
                            Some(idx) => l.index_assign(a, idx),
                            None => l.tensor_assign(a),
                        }
                    }
                    Stmt::Tensor(t) => {
                        l.error(
                            "E0414",
                            t.span,
                            "an op declares its tensors in its signature",
                        )
                        .help = Some(
                            "intermediates of an op are made by assigning them: `m[r] = ...`"
                                .into(),
                        );
                    }
                    Stmt::Error(_) => {}
                }
            }
            if l.diags.is_empty() && l.slots[out].computed_at.is_none() {
                l.error(
                    "E0408",
                    result.span,
                    format!(
                        "`{}` never computes its result `{}`",
                        op.name.text, result.text
                    ),
                );
            }
        }
    }
}

/// Diagnostics of a `neuron` declaration: states, updates, firing and units.
#[salsa::tracked(returns(ref))]
pub fn neuron_diagnostics<'db>(db: &'db dyn Db, decl: Decl<'db>) -> Vec<Diagnostic<'db>> {
    let Some(Item::Neuron(n)) = clean_item(db, decl) else {
        return Vec::new();
    };
    let mut c = NeuronChecker {
        decl,
        diags: Vec::new(),
        dims: HashMap::new(),
        states: Vec::new(),
        unknown_dims: false,
    };
    c.check(n);
    c.diags
}

struct NeuronChecker<'db> {
    decl: Decl<'db>,
    diags: Vec<Diagnostic<'db>>,
    dims: HashMap<String, Dim>,
    states: Vec<(String, Span)>,
    /// A parameter's unit is unknown (it has no default): skip unit checks.
    unknown_dims: bool,
}

impl<'db> NeuronChecker<'db> {
    fn error(
        &mut self,
        code: &'static str,
        span: Span,
        message: impl Into<String>,
    ) -> &mut Diagnostic<'db> {
        crate::diag::push_error(&mut self.diags, self.decl, code, span, message)
    }

    fn check(&mut self, n: &NeuronDecl) {
        self.dims.insert("input".into(), Dim::COUNT);
        self.dims.insert("dt".into(), Dim::TIME);
        for p in &n.params {
            let Some(default) = &p.default else {
                self.error(
                    "E0701",
                    p.name.span,
                    format!(
                        "parameter `{}` needs a default (`{} = 2 ms`)",
                        p.name.text, p.name.text
                    ),
                );
                self.dims.insert(p.name.text.clone(), Dim::COUNT);
                self.unknown_dims = true;
                continue;
            };
            match eval_quantity(default, &|_| None) {
                Ok(q) => {
                    self.dims.insert(p.name.text.clone(), q.dim);
                }
                Err(e) => {
                    self.error(e.code, e.span, e.message).help = e.help;
                }
            }
        }
        let mut fires = false;
        for stmt in &n.body {
            match stmt {
                NeuronStmt::State { name, init, .. } => {
                    if let Some((_, prev)) = self.states.iter().find(|(s, _)| *s == name.text) {
                        let label = Location::new(self.decl, *prev);
                        self.error(
                            "E0102",
                            name.span,
                            format!("state `{}` is declared twice", name.text),
                        )
                        .labels
                        .push(Label {
                            location: label,
                            message: "first declared here".into(),
                        });
                        continue;
                    }
                    self.expect_count(init, &format!("state `{}`", name.text));
                    self.states.push((name.text.clone(), name.span));
                    self.dims.insert(name.text.clone(), Dim::COUNT);
                }
                NeuronStmt::Update { name, value, .. } | NeuronStmt::Reset { name, value, .. } => {
                    if !self.states.iter().any(|(s, _)| *s == name.text) {
                        let help =
                            did_you_mean(&name.text, self.states.iter().map(|(s, _)| s.as_str()))
                                .unwrap_or_else(|| {
                                    format!("declare it first: `state {} = 0.0`", name.text)
                                });
                        self.error(
                            "E0701",
                            name.span,
                            format!("`{}` is not a state of this neuron", name.text),
                        )
                        .help = Some(help);
                        continue;
                    }
                    self.expect_count(value, &format!("state `{}`", name.text));
                }
                NeuronStmt::Fire { condition, .. } => {
                    fires = true;
                    match &condition.kind {
                        ExprKind::Binary { op, lhs, rhs } if op.is_comparison() => {
                            if let (Some(a), Some(b)) = (self.dim(lhs), self.dim(rhs)) {
                                if a != b {
                                    self.error(
                                        "E0302",
                                        condition.span,
                                        format!("compares {} with {}", a.describe(), b.describe()),
                                    );
                                }
                            }
                        }
                        _ => {
                            self.error(
                                "E0701",
                                condition.span,
                                "`fire` takes a comparison, e.g. `fire v >= threshold`",
                            );
                        }
                    }
                }
                NeuronStmt::Error(_) => {}
            }
        }
        if !fires && self.diags.is_empty() {
            self.error(
                "E0701",
                n.name.span,
                format!("neuron `{}` never fires", n.name.text),
            )
            .help = Some("add `fire v >= threshold`".into());
        }
    }

    fn expect_count(&mut self, e: &Expr, what: &str) {
        if self.unknown_dims {
            return;
        }
        if let Some(d) = self.dim(e) {
            if d != Dim::COUNT {
                self.error(
                    "E0302",
                    e.span,
                    format!("{what} is a plain number, but this is {}", d.describe()),
                );
            }
        }
    }

    /// The dimension of an expression, reporting mismatches.
    fn dim(&mut self, e: &Expr) -> Option<Dim> {
        if self.unknown_dims {
            return None;
        }
        match &e.kind {
            ExprKind::Number { unit: None, .. } => Some(Dim::COUNT),
            ExprKind::Number { unit: Some(u), .. } => match parse_unit(&u.text) {
                Ok((_, d)) => Some(d),
                Err(bad) => {
                    let err = crate::consts::unknown_unit(u.span, &bad);
                    self.error(err.code, err.span, err.message).help = err.help;
                    None
                }
            },
            ExprKind::Name(n) => match self.dims.get(&n.text) {
                Some(d) => Some(*d),
                None => {
                    let mut names: Vec<&str> = self.dims.keys().map(String::as_str).collect();
                    names.sort();
                    let help = did_you_mean(&n.text, names.iter().copied())
                        .unwrap_or_else(|| format!("names here: {}", names.join(", ")));
                    self.error(
                        "E0101",
                        n.span,
                        format!("`{}` is not defined in this neuron", n.text),
                    )
                    .help = Some(help);
                    None
                }
            },
            ExprKind::Paren(x) | ExprKind::Neg(x) => self.dim(x),
            ExprKind::Binary { op, lhs, rhs } => {
                let a = self.dim(lhs)?;
                let b = self.dim(rhs)?;
                match op {
                    BinOp::Mul => Some(a.times(b)),
                    BinOp::Div => Some(a.per(b)),
                    BinOp::MatMul => {
                        self.error("E0701", e.span, "`@` has no meaning for one neuron");
                        None
                    }
                    _ => {
                        if a != b {
                            self.error(
                                "E0302",
                                e.span,
                                format!(
                                    "`{}` of {} and {}",
                                    op.symbol(),
                                    a.describe(),
                                    b.describe()
                                ),
                            );
                            return None;
                        }
                        Some(if op.is_comparison() { Dim::COUNT } else { a })
                    }
                }
            }
            ExprKind::Call { callee, args } => {
                let Some((_, _, arity)) = BUILTINS.iter().find(|(n, _, _)| *n == callee.text)
                else {
                    self.error(
                        "E0101",
                        callee.span,
                        format!("`{}` is not a builtin function", callee.text),
                    )
                    .help = did_you_mean(&callee.text, BUILTINS.iter().map(|(n, _, _)| *n));
                    return None;
                };
                if args.len() != *arity {
                    self.error(
                        "E0411",
                        e.span,
                        format!("`{}` takes {arity} argument(s)", callee.text),
                    );
                    return None;
                }
                let mut dims = Vec::new();
                for a in args {
                    dims.push(self.dim(&a.value)?);
                }
                if matches!(callee.text.as_str(), "max" | "min" | "abs") {
                    if dims.windows(2).any(|w| w[0] != w[1]) {
                        self.error(
                            "E0302",
                            e.span,
                            format!("`{}` of values with different units", callee.text),
                        );
                        return None;
                    }
                    return dims.first().copied();
                }
                if dims[0] != Dim::COUNT {
                    self.error(
                        "E0302",
                        args[0].value.span,
                        format!(
                            "`{}` takes a plain number, but this is {}",
                            callee.text,
                            dims[0].describe()
                        ),
                    )
                    .help =
                        Some("divide by a quantity of the same kind, e.g. `exp(-dt / tau)`".into());
                    return None;
                }
                Some(Dim::COUNT)
            }
            ExprKind::Access { .. } | ExprKind::Reduce { .. } => {
                self.error(
                    "E0701",
                    e.span,
                    "a neuron model works on one neuron: no tensors or reductions",
                );
                None
            }
        }
    }
}
