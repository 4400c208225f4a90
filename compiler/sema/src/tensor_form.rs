//! Tensor-form statements (`h = lif(s @ w1, tau: 2 ms)`): whole-tensor
//! expressions with broadcasting, `@`, calls of tensor ops (expanded into
//! index-form ops) and of neuron models.

use crate::consts::{eval_int, eval_quantity, Quantity};
use crate::diag::{did_you_mean, Label};
use crate::dtype::DType;
use crate::expr::IndexCtx;
use crate::model::{Affine, IndexVar, Op, OpKind, Real, ScalarExpr, BUILTINS};
use crate::units::Dim;
use crate::workload::Lowerer;
use arch_syntax::ast::{
    Arg, Assign, BinOp, Expr, ExprKind, Item, Name, NeuronDecl, OpBody, OpDecl, Role, Span, Stmt,
};
use std::collections::HashMap;

/// An element-wise value: a scalar expression whose tensor accesses carry no
/// index yet (they are aligned to the result's axes, numpy-style, when the
/// value is stored).
#[derive(Clone)]
pub(crate) struct Elem {
    pub expr: ScalarExpr,
    pub shape: Vec<u64>,
    pub dtype: Option<DType>,
}

impl Lowerer<'_, '_> {
    pub(crate) fn tensor_assign(&mut self, a: &Assign) {
        if self.poisoned.contains(&a.target.text) {
            return;
        }
        let first_new = self.tensors.len();
        let Some(value) = self.tensor_expr(&a.value, &a.target.text) else {
            return;
        };
        let target = self.names.get(&a.target.text).copied();
        // The value is a tensor this statement just made: it becomes the target.
        if let ScalarExpr::Access { tensor: t, index } = &value.expr {
            let t = *t;
            let made_here =
                t >= first_new && index.is_empty() && self.slots[t].computed_at.is_some();
            if made_here {
                match target {
                    None => {
                        let name = format!("{}{}", self.prefix, a.target.text);
                        self.tensors[t].name = name;
                        self.tensors[t].span = a.target.span;
                        self.names.insert(a.target.text.clone(), t);
                    }
                    Some(dest) => {
                        if self.check_store(dest, &value, a)
                            && self.claim(dest, a.target.span, a.span)
                        {
                            // The temporary is left unreferenced and dropped at the end.
                            for op in self.ops.iter_mut().filter(|op| op.output == t) {
                                op.output = dest;
                            }
                        }
                    }
                }
                return;
            }
        }
        let dest = match target {
            Some(dest) => {
                if !self.check_store(dest, &value, a) {
                    return;
                }
                dest
            }
            None => {
                let dtype = value.dtype.unwrap_or(DType::F32);
                if !self.check_size(&a.target.text, &value.shape, dtype, a.target.span) {
                    return;
                }
                let name = format!("{}{}", self.prefix, a.target.text);
                let t = self.add_tensor(crate::model::Tensor {
                    name,
                    role: Role::Intermediate,
                    dtype,
                    shape: value.shape.clone(),
                    sparsity: None,
                    density: None,
                    span: a.target.span,
                });
                self.names.insert(a.target.text.clone(), t);
                t
            }
        };
        if self.claim(dest, a.target.span, a.span) {
            self.store(dest, value, a.span);
        }
    }

    fn check_store(&mut self, dest: usize, value: &Elem, a: &Assign) -> bool {
        let t = &self.tensors[dest];
        if t.shape != value.shape {
            let (name, shape, decl) = (t.name.clone(), t.shape.clone(), t.span);
            let label = self.loc(decl);
            self.error(
                "E0403",
                a.value.span,
                format!(
                    "this has shape {:?} but `{name}` has shape {:?}",
                    value.shape, shape
                ),
            )
            .labels
            .push(Label {
                location: label,
                message: "declared here".into(),
            });
            return false;
        }
        if let Some(d) = value.dtype {
            if !d.widens_to(t.dtype) && d.accumulator() != t.dtype {
                let (name, want) = (t.name.clone(), t.dtype);
                self.error(
                    "E0404",
                    a.value.span,
                    format!("`{name}` is {} but this is {}", want.name(), d.name()),
                )
                .help = Some(format!(
                    "declare `{name}` as {}, or convert: `{}(...)`",
                    d.name(),
                    want.name()
                ));
                return false;
            }
        }
        true
    }

    /// Writes an element-wise value into `dest` (already claimed) as one op.
    fn store(&mut self, dest: usize, value: Elem, span: Span) {
        let rank = value.shape.len();
        let vars = value
            .shape
            .iter()
            .enumerate()
            .map(|(i, e)| IndexVar {
                name: format!("i{i}"),
                extent: *e,
            })
            .collect();
        let body = self.align(value.expr, &value.shape);
        self.compute_op(dest, vars, rank, body, span);
    }

    /// Gives every index-less access of a ranked tensor the result's axes,
    /// aligned to the right, with size-1 axes broadcast.
    fn align(&self, e: ScalarExpr, shape: &[u64]) -> ScalarExpr {
        match e {
            ScalarExpr::Access { tensor, index }
                if index.is_empty() && !self.tensors[tensor].shape.is_empty() =>
            {
                let ts = &self.tensors[tensor].shape;
                let lead = shape.len() - ts.len();
                let index = ts
                    .iter()
                    .enumerate()
                    .map(|(j, d)| {
                        if *d == 1 && shape[lead + j] != 1 {
                            Affine::constant(0)
                        } else {
                            Affine::var(lead + j)
                        }
                    })
                    .collect();
                ScalarExpr::Access { tensor, index }
            }
            ScalarExpr::Neg(x) => ScalarExpr::Neg(Box::new(self.align(*x, shape))),
            ScalarExpr::Cast { to, value } => ScalarExpr::Cast {
                to,
                value: Box::new(self.align(*value, shape)),
            },
            ScalarExpr::Binary { op, lhs, rhs } => ScalarExpr::Binary {
                op,
                lhs: Box::new(self.align(*lhs, shape)),
                rhs: Box::new(self.align(*rhs, shape)),
            },
            ScalarExpr::Call { func, args } => ScalarExpr::Call {
                func,
                args: args.into_iter().map(|a| self.align(a, shape)).collect(),
            },
            other => other,
        }
    }

    /// Stores a value in a fresh intermediate unless it already is a tensor.
    fn materialize(&mut self, value: Elem, base: &str, span: Span) -> usize {
        if let ScalarExpr::Access { tensor, index } = &value.expr {
            if index.is_empty() && self.tensors[*tensor].shape == value.shape {
                return *tensor;
            }
        }
        let t = self.temp(
            base,
            value.dtype.unwrap_or(DType::F32),
            value.shape.clone(),
            span,
        );
        self.slots[t].computed_at = Some(span);
        self.store(t, value, span);
        t
    }

    fn leaf(&self, t: usize) -> Elem {
        Elem {
            expr: ScalarExpr::Access {
                tensor: t,
                index: Vec::new(),
            },
            shape: self.tensors[t].shape.clone(),
            dtype: Some(self.tensors[t].dtype),
        }
    }

    pub(crate) fn tensor_expr(&mut self, e: &Expr, base: &str) -> Option<Elem> {
        match &e.kind {
            ExprKind::Name(n) => {
                if let Some(&t) = self.names.get(&n.text) {
                    return Some(self.leaf(t));
                }
                if let Some(c) = self.consts.get(&n.text) {
                    return Some(Elem {
                        expr: ScalarExpr::Const(Real(*c as f64)),
                        shape: vec![],
                        dtype: None,
                    });
                }
                if let Some(s) = self.scalars.get(&n.text) {
                    return Some(Elem {
                        expr: ScalarExpr::Const(Real(*s)),
                        shape: vec![],
                        dtype: None,
                    });
                }
                if self.poisoned.contains(&n.text) {
                    return None;
                }
                if self.later_targets.contains(&n.text) {
                    self.error(
                        "E0101",
                        n.span,
                        format!("`{}` is used before the statement that computes it", n.text),
                    )
                    .help = Some(format!(
                        "move the statement computing `{}` above this one",
                        n.text
                    ));
                    return None;
                }
                let help = did_you_mean(
                    &n.text,
                    self.names.keys().map(String::as_str).collect::<Vec<_>>(),
                );
                self.error("E0101", n.span, format!("`{}` is not defined", n.text))
                    .help = help;
                None
            }
            ExprKind::Number { .. } => {
                let (expr, dtype) = self.lower_scalar(e, &mut IndexCtx::default())?;
                Some(Elem {
                    expr,
                    shape: vec![],
                    dtype,
                })
            }
            ExprKind::Paren(inner) => self.tensor_expr(inner, base),
            ExprKind::Neg(inner) => {
                let v = self.tensor_expr(inner, base)?;
                Some(Elem {
                    expr: ScalarExpr::Neg(Box::new(v.expr)),
                    ..v
                })
            }
            ExprKind::Access { tensor, .. } => {
                self.error("E0414", e.span, "a tensor statement works on whole tensors")
                    .help = Some(format!(
                    "write `{}` alone, or make the statement index-form: `{base}[i, ...] = ...`",
                    tensor.text
                ));
                None
            }
            ExprKind::Reduce { op, .. } => {
                self.error(
                    "E0414",
                    e.span,
                    format!("`{}[...]` needs index form", op.keyword()),
                )
                .help = Some(format!(
                    "write the statement as `{base}[i, ...] = {}[k] ...`",
                    op.keyword()
                ));
                None
            }
            ExprKind::Binary {
                op: BinOp::MatMul,
                lhs,
                rhs,
            } => {
                let a = self.tensor_expr(lhs, base)?;
                let b = self.tensor_expr(rhs, base)?;
                self.matmul(a, b, lhs.span, rhs.span, e.span, base)
            }
            ExprKind::Binary { op, lhs, rhs } => {
                let a = self.tensor_expr(lhs, base)?;
                let b = self.tensor_expr(rhs, base)?;
                let Some(shape) = broadcast(&a.shape, &b.shape) else {
                    self.error("E0403", e.span, format!("shapes {:?} and {:?} do not broadcast", a.shape, b.shape))
                        .help = Some("element-wise operands need equal sizes, or size 1, axis by axis from the right".into());
                    return None;
                };
                let dtype = match (a.dtype, b.dtype) {
                    (Some(x), Some(y)) => match DType::join(x, y) {
                        Some(d) => Some(d),
                        None => {
                            self.error(
                                "E0404",
                                e.span,
                                format!(
                                    "{} and {} have no common element type",
                                    x.name(),
                                    y.name()
                                ),
                            )
                            .help = Some("convert one side explicitly, e.g. `f32(x)`".into());
                            return None;
                        }
                    },
                    (x, y) => x.or(y),
                };
                Some(Elem {
                    expr: ScalarExpr::Binary {
                        op: *op,
                        lhs: Box::new(a.expr),
                        rhs: Box::new(b.expr),
                    },
                    shape,
                    dtype,
                })
            }
            ExprKind::Call { callee, args } => self.tensor_call(callee, args, e.span, base),
        }
    }

    fn matmul(
        &mut self,
        a: Elem,
        b: Elem,
        sa: Span,
        sb: Span,
        span: Span,
        base: &str,
    ) -> Option<Elem> {
        if a.shape.is_empty() || b.shape.is_empty() || b.shape.len() > 2 {
            self.error(
                "E0402",
                span,
                format!(
                    "`@` needs [.., K] @ [K, N] or [K]; got {:?} @ {:?}",
                    a.shape, b.shape
                ),
            );
            return None;
        }
        let k = a.shape[a.shape.len() - 1];
        if k != b.shape[0] {
            let label = self.loc(sa);
            self.error(
                "E0403",
                sb,
                format!("`@` contracts {} columns with {} rows", k, b.shape[0]),
            )
            .labels
            .push(Label {
                location: label,
                message: format!("this has shape {:?}", a.shape),
            });
            return None;
        }
        let dtype = match (a.dtype, b.dtype) {
            (Some(x), Some(y)) => match DType::join(x, y) {
                Some(d) => d.accumulator(),
                None => {
                    self.error(
                        "E0404",
                        span,
                        format!("{} and {} have no common element type", x.name(), y.name()),
                    );
                    return None;
                }
            },
            (x, y) => x.or(y).unwrap_or(DType::F32),
        };
        let ta = self.materialize(a, base, sa);
        let tb = self.materialize(b, base, sb);
        let a_shape = self.tensors[ta].shape.clone();
        let b_shape = self.tensors[tb].shape.clone();
        let mut shape: Vec<u64> = a_shape[..a_shape.len() - 1].to_vec();
        if b_shape.len() == 2 {
            shape.push(b_shape[1]);
        }
        let out = self.temp(base, dtype, shape.clone(), span);
        self.slots[out].computed_at = Some(span);
        let rank = shape.len();
        let mut vars: Vec<IndexVar> = shape
            .iter()
            .enumerate()
            .map(|(i, e)| IndexVar {
                name: format!("i{i}"),
                extent: *e,
            })
            .collect();
        vars.push(IndexVar {
            name: "k".into(),
            extent: k,
        });
        let kv = rank;
        let a_index: Vec<Affine> = (0..a_shape.len() - 1)
            .map(Affine::var)
            .chain([Affine::var(kv)])
            .collect();
        let mut b_index = vec![Affine::var(kv)];
        if b_shape.len() == 2 {
            b_index.push(Affine::var(rank - 1));
        }
        let product = ScalarExpr::Binary {
            op: BinOp::Mul,
            lhs: Box::new(ScalarExpr::Access {
                tensor: ta,
                index: a_index,
            }),
            rhs: Box::new(ScalarExpr::Access {
                tensor: tb,
                index: b_index,
            }),
        };
        let body = ScalarExpr::Reduce {
            op: arch_syntax::ast::ReduceOp::Sum,
            vars: vec![kv],
            body: Box::new(product),
        };
        self.push_op(Op {
            output: out,
            vars,
            output_rank: rank,
            body,
            kind: OpKind::Compute,
            span,
            origin: Some("@".into()),
        });
        Some(self.leaf(out))
    }

    fn tensor_call(&mut self, callee: &Name, args: &[Arg], span: Span, base: &str) -> Option<Elem> {
        let builtin = BUILTINS.iter().any(|(n, _, _)| *n == callee.text)
            || DType::from_name(&callee.text).is_some();
        let decl = if builtin {
            None
        } else {
            self.scope.get(&callee.text)
        };
        let parsed = decl.map(|d| crate::db::parse_decl(self.db, d));
        match parsed.map(|p| &p.item) {
            Some(Item::Op(op)) if matches!(op.body, OpBody::Tensor { .. }) => {
                self.expand_op(op, args, span, base)
            }
            Some(Item::Neuron(n)) => self.apply_neuron(n, args, span, base),
            None if !builtin => {
                self.unknown_function(callee);
                None
            }
            _ => {
                // Element-wise: lower the call with each argument standing for
                // its whole tensor.
                let mut shape: Vec<u64> = Vec::new();
                let mut values = HashMap::new();
                let mut synthetic = Vec::new();
                for (i, a) in args.iter().enumerate() {
                    let v = self.tensor_expr(&a.value, base)?;
                    let Some(s) = broadcast(&shape, &v.shape) else {
                        self.error(
                            "E0403",
                            a.value.span,
                            format!("shape {:?} does not broadcast with {:?}", v.shape, shape),
                        );
                        return None;
                    };
                    shape = s;
                    let key = format!("\u{0}arg{i}");
                    values.insert(key.clone(), (v.expr, v.dtype));
                    synthetic.push(Arg {
                        name: a.name.clone(),
                        value: Expr {
                            kind: ExprKind::Name(Name {
                                text: key,
                                span: a.value.span,
                            }),
                            span: a.value.span,
                        },
                        span: a.span,
                    });
                }
                let call = Expr {
                    kind: ExprKind::Call {
                        callee: callee.clone(),
                        args: synthetic,
                    },
                    span,
                };
                let mut ctx = IndexCtx {
                    values: vec![values],
                    ..IndexCtx::default()
                };
                let (expr, dtype) = self.lower_scalar(&call, &mut ctx)?;
                Some(Elem { expr, shape, dtype })
            }
        }
    }

    /// Binds an op's sizes from its arguments and expands its body.
    fn expand_op(&mut self, op: &OpDecl, args: &[Arg], span: Span, base: &str) -> Option<Elem> {
        let OpBody::Tensor { result, dims, body } = &op.body else {
            return None;
        };
        if self.expansion_depth > 16 {
            self.error(
                "E0411",
                span,
                format!("`{}` expands too deeply; is it recursive?", op.name.text),
            );
            return None;
        }
        let bound = self.bind_args(&op.name.text, &op.params, args, span)?;
        let mut sizes: HashMap<String, i64> = HashMap::new();
        let generics: Vec<&str> = op.generics.iter().map(|g| g.text.as_str()).collect();
        let mut tensor_args = HashMap::new();
        let mut scalars = HashMap::new();
        let mut dtype: Option<DType> = None;
        // Bind sizes named directly by a dimension first, then check the rest.
        let mut deferred = Vec::new();
        for (param, value, arg_span) in &bound {
            match (&param.dims, value) {
                (Some(pdims), BoundValue::Tensor(t)) => {
                    let shape = self.tensors[*t].shape.clone();
                    if pdims.len() != shape.len() {
                        self.error(
                            "E0402",
                            *arg_span,
                            format!(
                                "`{}` expects `{}` with {} dimensions; this has shape {:?}",
                                op.name.text,
                                param.name.text,
                                pdims.len(),
                                shape
                            ),
                        );
                        return None;
                    }
                    for (d, actual) in pdims.iter().zip(&shape) {
                        match &d.kind {
                            ExprKind::Name(n) if generics.contains(&n.text.as_str()) => {
                                match sizes.get(&n.text) {
                                    Some(prev) if *prev as u64 != *actual => {
                                        self.error(
                                        "E0403",
                                        *arg_span,
                                        format!("`{}`: size {} is {} from an earlier argument but {} from `{}`", op.name.text, n.text, prev, actual, param.name.text),
                                    );
                                        return None;
                                    }
                                    _ => {
                                        sizes.insert(n.text.clone(), *actual as i64);
                                    }
                                }
                            }
                            _ => deferred.push((d.clone(), *actual, *arg_span)),
                        }
                    }
                    let td = self.tensors[*t].dtype;
                    dtype = Some(match dtype {
                        None => td,
                        Some(prev) => match DType::join(prev, td) {
                            Some(j) => j,
                            None => {
                                self.error(
                                    "E0404",
                                    *arg_span,
                                    format!(
                                        "`{}`: {} and {} have no common element type",
                                        op.name.text,
                                        prev.name(),
                                        td.name()
                                    ),
                                );
                                return None;
                            }
                        },
                    });
                    tensor_args.insert(param.name.text.clone(), *t);
                }
                (None, BoundValue::Scalar(v)) => {
                    scalars.insert(param.name.text.clone(), *v);
                }
                (Some(_), BoundValue::Scalar(_)) => {
                    self.error(
                        "E0411",
                        *arg_span,
                        format!(
                            "`{}` expects a tensor for `{}`",
                            op.name.text, param.name.text
                        ),
                    );
                    return None;
                }
                (None, BoundValue::Tensor(_)) => {
                    self.error(
                        "E0411",
                        *arg_span,
                        format!(
                            "`{}` expects a constant for `{}`",
                            op.name.text, param.name.text
                        ),
                    );
                    return None;
                }
            }
        }
        let env = |n: &str| {
            sizes.get(n).copied().or_else(|| {
                scalars
                    .get(n)
                    .filter(|v| v.fract() == 0.0)
                    .map(|v| *v as i64)
            })
        };
        for (d, actual, arg_span) in &deferred {
            match eval_int(d, &env) {
                Ok(v) if v as u64 == *actual => {}
                Ok(v) => {
                    self.error(
                        "E0403",
                        *arg_span,
                        format!(
                            "`{}` needs size {} here, this argument has {}",
                            op.name.text, v, actual
                        ),
                    );
                    return None;
                }
                Err(_) => {
                    self.error(
                        "E0411",
                        *arg_span,
                        format!("`{}` has a dimension it cannot evaluate", op.name.text),
                    );
                    return None;
                }
            }
        }
        let mut shape = Vec::new();
        for d in dims {
            match eval_int(d, &env) {
                Ok(v) if v > 0 => shape.push(v as u64),
                Ok(v) => {
                    self.error("E0202", span, format!("`{}` would produce a dimension of size {v}", op.name.text))
                        .help = Some("the arguments are too small for this op (for a convolution: input smaller than the filter)".into());
                    return None;
                }
                Err(_) => {
                    self.error(
                        "E0411",
                        span,
                        format!(
                            "`{}` has a result dimension it cannot evaluate",
                            op.name.text
                        ),
                    );
                    return None;
                }
            }
        }
        let dtype = dtype.map(DType::accumulator).unwrap_or(DType::F32);
        if !self.check_size(base, &shape, dtype, span) {
            return None;
        }
        let out = self.temp(base, dtype, shape, span);
        // Expand the body in the op's own name space.
        let prefix = format!("{}.", self.tensors[out].name);
        let saved_names = std::mem::take(&mut self.names);
        let saved_consts = std::mem::replace(&mut self.consts, sizes.clone());
        let saved_scalars = std::mem::replace(&mut self.scalars, scalars);
        let saved_site = self.call_site.replace(self.call_site.unwrap_or(span));
        let saved_prefix = std::mem::replace(&mut self.prefix, prefix);
        let saved_origin = self.origin.replace(op.name.text.clone());
        let saved_temps = self.temps;
        self.names = tensor_args;
        self.names.insert(result.text.clone(), out);
        self.expansion_depth += 1;
        let errors_before = self.diags.len();
        for stmt in body {
            if let Stmt::Assign(a) = stmt {
                self.temps = 0;
                match &a.indices {
                    Some(idx) => self.index_assign(a, idx),
                    None => self.tensor_assign(a),
                }
            }
        }
        self.expansion_depth -= 1;
        self.temps = saved_temps;
        self.origin = saved_origin;
        self.prefix = saved_prefix;
        self.call_site = saved_site;
        self.scalars = saved_scalars;
        self.consts = saved_consts;
        self.names = saved_names;
        if self.diags.len() > errors_before {
            return None;
        }
        if self.slots[out].computed_at.is_none() {
            self.error(
                "E0408",
                span,
                format!(
                    "`{}` never computes its result `{}`",
                    op.name.text, result.text
                ),
            );
            return None;
        }
        Some(self.leaf(out))
    }

    /// Matches call arguments to parameters (positional, then named).
    fn bind_args<'p>(
        &mut self,
        callee: &str,
        params: &'p [arch_syntax::ast::OpParam],
        args: &[Arg],
        span: Span,
    ) -> Option<Vec<(&'p arch_syntax::ast::OpParam, BoundValue, Span)>> {
        let mut slots: Vec<Option<(&Arg, Span)>> = vec![None; params.len()];
        let mut positional = 0;
        for a in args {
            let i = match &a.name {
                None => {
                    if positional >= params.len() {
                        self.error(
                            "E0411",
                            a.span,
                            format!("`{callee}` takes {} argument(s)", params.len()),
                        );
                        return None;
                    }
                    positional += 1;
                    positional - 1
                }
                Some(n) => match params.iter().position(|p| p.name.text == n.text) {
                    Some(i) => i,
                    None => {
                        let help =
                            did_you_mean(&n.text, params.iter().map(|p| p.name.text.as_str()))
                                .unwrap_or_else(|| {
                                    format!(
                                        "parameters of `{callee}`: {}",
                                        params
                                            .iter()
                                            .map(|p| p.name.text.as_str())
                                            .collect::<Vec<_>>()
                                            .join(", ")
                                    )
                                });
                        self.error(
                            "E0411",
                            n.span,
                            format!("`{callee}` has no parameter `{}`", n.text),
                        )
                        .help = Some(help);
                        return None;
                    }
                },
            };
            if slots[i].is_some() {
                self.error(
                    "E0411",
                    a.span,
                    format!("`{}` is given twice", params[i].name.text),
                );
                return None;
            }
            slots[i] = Some((a, a.span));
        }
        let mut out = Vec::new();
        for (p, slot) in params.iter().zip(slots) {
            match (slot, &p.dims, &p.default) {
                (Some((a, s)), Some(_), _) => {
                    let v = self.tensor_expr(&a.value, callee)?;
                    let t = self.materialize(v, callee, a.value.span);
                    out.push((p, BoundValue::Tensor(t), s));
                }
                (Some((a, s)), None, _) => {
                    let consts = self.consts.clone();
                    let lookup = |n: &str| {
                        consts.get(n).map(|v| Quantity {
                            value: *v as f64,
                            dim: Dim::COUNT,
                        })
                    };
                    match eval_quantity(&a.value, &lookup) {
                        Ok(q) if q.dim == Dim::COUNT => {
                            out.push((p, BoundValue::Scalar(q.value), s))
                        }
                        Ok(q) => {
                            self.error(
                                "E0302",
                                a.value.span,
                                format!(
                                    "`{}` is a plain number, not {}",
                                    p.name.text,
                                    q.dim.describe()
                                ),
                            );
                            return None;
                        }
                        Err(e) => {
                            self.const_error(e);
                            return None;
                        }
                    }
                }
                (None, _, Some(default)) => match eval_quantity(default, &|_| None) {
                    Ok(q) => out.push((p, BoundValue::Scalar(q.value), span)),
                    Err(_) => {
                        self.error(
                            "E0411",
                            span,
                            format!(
                                "`{callee}`: the default of `{}` is not a constant",
                                p.name.text
                            ),
                        );
                        return None;
                    }
                },
                (None, _, None) => {
                    self.error(
                        "E0411",
                        span,
                        format!("`{callee}` needs an argument for `{}`", p.name.text),
                    );
                    return None;
                }
            }
        }
        Some(out)
    }

    fn apply_neuron(
        &mut self,
        n: &NeuronDecl,
        args: &[Arg],
        span: Span,
        base: &str,
    ) -> Option<Elem> {
        let Some(first) = args.first().filter(|a| a.name.is_none()) else {
            self.error(
                "E0411",
                span,
                format!(
                    "`{}` needs its input first: `{}(x @ w, ...)`",
                    n.name.text, n.name.text
                ),
            );
            return None;
        };
        let mut params: Vec<(String, Real)> = Vec::new();
        let mut dims: HashMap<String, Dim> = HashMap::new();
        for p in &n.params {
            let q = p
                .default
                .as_ref()
                .and_then(|d| eval_quantity(d, &|_| None).ok());
            let q = q.unwrap_or(Quantity {
                value: 0.0,
                dim: Dim::COUNT,
            });
            params.push((p.name.text.clone(), Real(q.value)));
            dims.insert(p.name.text.clone(), q.dim);
        }
        for a in &args[1..] {
            let Some(name) = &a.name else {
                self.error(
                    "E0411",
                    a.span,
                    format!(
                        "`{}` takes one input; name the other arguments (`tau: 2 ms`)",
                        n.name.text
                    ),
                );
                return None;
            };
            let Some(slot) = params.iter_mut().find(|(p, _)| *p == name.text) else {
                let help = did_you_mean(&name.text, n.params.iter().map(|p| p.name.text.as_str()))
                    .unwrap_or_else(|| {
                        format!(
                            "parameters of `{}`: {}",
                            n.name.text,
                            n.params
                                .iter()
                                .map(|p| p.name.text.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    });
                self.error(
                    "E0411",
                    name.span,
                    format!("`{}` has no parameter `{}`", n.name.text, name.text),
                )
                .help = Some(help);
                return None;
            };
            let q = match eval_quantity(&a.value, &|_| None) {
                Ok(q) => q,
                Err(e) => {
                    self.const_error(e);
                    return None;
                }
            };
            let want = dims[&name.text];
            if q.dim != want {
                self.error(
                    "E0302",
                    a.value.span,
                    format!(
                        "`{}` is {}, but this is {}",
                        name.text,
                        want.describe(),
                        q.dim.describe()
                    ),
                );
                return None;
            }
            slot.1 = Real(q.value);
        }
        let input = self.tensor_expr(&first.value, base)?;
        if input.shape.is_empty() {
            self.error(
                "E0402",
                first.value.span,
                format!(
                    "`{}` steps over time: its input needs a time dimension first",
                    n.name.text
                ),
            );
            return None;
        }
        let t = self.materialize(input, base, first.value.span);
        let shape = self.tensors[t].shape.clone();
        let out = self.temp(base, DType::Spike, shape.clone(), span);
        self.slots[out].computed_at = Some(span);
        let vars = shape
            .iter()
            .enumerate()
            .map(|(i, e)| IndexVar {
                name: format!("i{i}"),
                extent: *e,
            })
            .collect();
        self.push_op(Op {
            output: out,
            vars,
            output_rank: shape.len(),
            body: Self::identity_access(t, shape.len()),
            kind: OpKind::Neuron {
                model: n.name.text.clone(),
                params,
            },
            span,
            origin: Some(n.name.text.clone()),
        });
        Some(self.leaf(out))
    }
}

pub(crate) enum BoundValue {
    Tensor(usize),
    Scalar(f64),
}

/// numpy broadcasting of two shapes.
pub fn broadcast(a: &[u64], b: &[u64]) -> Option<Vec<u64>> {
    let n = a.len().max(b.len());
    let mut out = vec![0; n];
    for i in 0..n {
        let x = if i < n - a.len() {
            1
        } else {
            a[i - (n - a.len())]
        };
        let y = if i < n - b.len() {
            1
        } else {
            b[i - (n - b.len())]
        };
        out[i] = match (x, y) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => return None,
        };
    }
    Some(out)
}
