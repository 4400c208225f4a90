//! Index-form statements (`y[i, j] = ...`): index variables, their ranges,
//! affine indices, reductions, element types.

use crate::diag::{did_you_mean, Label};
use crate::dtype::DType;
use crate::model::{Affine, Builtin, IndexVar, Real, ScalarExpr, BUILTINS};
use crate::workload::Lowerer;
use arch_syntax::ast::{Assign, BinOp, Expr, ExprKind, Item, OpBody, Span};
use std::collections::HashMap;

/// The source text of an expression, rebuilt from its tree (for messages).
pub fn span_text(e: &Expr) -> String {
    match &e.kind {
        ExprKind::Number { value, unit } => match unit {
            Some(u) => format!("{} {}", value.text, u.text),
            None => value.text.clone(),
        },
        ExprKind::Name(n) => n.text.clone(),
        ExprKind::Access { tensor, indices } => {
            format!(
                "{}[{}]",
                tensor.text,
                indices.iter().map(span_text).collect::<Vec<_>>().join(", ")
            )
        }
        ExprKind::Call { callee, args } => format!(
            "{}({})",
            callee.text,
            args.iter()
                .map(|a| match &a.name {
                    Some(n) => format!("{}: {}", n.text, span_text(&a.value)),
                    None => span_text(&a.value),
                })
                .collect::<Vec<_>>()
                .join(", ")
        ),
        ExprKind::Binary { op, lhs, rhs } => {
            format!("{} {} {}", span_text(lhs), op.symbol(), span_text(rhs))
        }
        ExprKind::Neg(x) => format!("-{}", span_text(x)),
        ExprKind::Reduce { op, indices, body } => format!(
            "{}[{}] {}",
            op.keyword(),
            indices
                .iter()
                .map(|n| n.text.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            span_text(body)
        ),
        ExprKind::Paren(x) => format!("({})", span_text(x)),
    }
}

pub(crate) struct VarInfo {
    pub name: String,
    pub span: Span,
    /// `(size, where, what)`: each place the variable indexes a dimension directly.
    pub constraints: Vec<(u64, Span, String)>,
    pub uses: usize,
}

/// An affine index to bound-check once ranges are known.
pub(crate) struct PendingBound {
    pub affine: Affine,
    pub size: u64,
    pub what: String,
    pub span: Span,
}

/// State while lowering one index-form statement (or a scalar op body).
#[derive(Default)]
pub(crate) struct IndexCtx {
    pub vars: Vec<VarInfo>,
    /// Variables in scope, innermost last.
    pub bound: Vec<usize>,
    /// Scalar-op parameters being substituted.
    pub values: Vec<HashMap<String, (ScalarExpr, Option<DType>)>>,
    pub bounds: Vec<PendingBound>,
}

impl IndexCtx {
    fn lookup_var(&self, name: &str) -> Option<usize> {
        self.bound
            .iter()
            .rev()
            .copied()
            .find(|v| self.vars[*v].name == name)
    }

    fn lookup_value(&self, name: &str) -> Option<(ScalarExpr, Option<DType>)> {
        self.values.last().and_then(|m| m.get(name).cloned())
    }
}

pub(crate) type Typed = (ScalarExpr, Option<DType>);

impl Lowerer<'_, '_> {
    pub(crate) fn index_assign(&mut self, a: &Assign, indices: &[Expr]) {
        if self.poisoned.contains(&a.target.text) {
            return;
        }
        let mut ctx = IndexCtx::default();
        for e in indices {
            let ExprKind::Name(n) = &e.kind else {
                self.error(
                    "E0415",
                    e.span,
                    "indices on the left-hand side must be plain index names",
                )
                .help = Some(format!(
                    "write `{}[i, j] = ...` and shift indices on the right-hand side",
                    a.target.text
                ));
                return;
            };
            if ctx.vars.iter().any(|v| v.name == n.text) {
                self.error(
                    "E0405",
                    n.span,
                    format!("index `{}` appears twice on the left-hand side", n.text),
                );
                return;
            }
            if self.consts.contains_key(&n.text) {
                self.error(
                    "E0405",
                    n.span,
                    format!("`{}` is a size, not an index", n.text),
                )
                .help = Some("use a lower-case index name such as `i`".into());
                return;
            }
            ctx.vars.push(VarInfo {
                name: n.text.clone(),
                span: n.span,
                constraints: Vec::new(),
                uses: 0,
            });
            ctx.bound.push(ctx.vars.len() - 1);
        }
        let target = self.names.get(&a.target.text).copied();
        if let Some(t) = target {
            let shape = self.tensors[t].shape.clone();
            if shape.len() != indices.len() {
                let name = self.tensors[t].name.clone();
                self.error(
                    "E0402",
                    a.target.span,
                    format!(
                        "`{name}` has {} dimensions but is indexed with {}",
                        shape.len(),
                        indices.len()
                    ),
                );
                return;
            }
            let decl_span = self.tensors[t].span;
            for (i, size) in shape.iter().enumerate() {
                ctx.vars[i].constraints.push((
                    *size,
                    decl_span,
                    format!("dimension {i} of `{}`", a.target.text),
                ));
            }
        }
        let Some((body, dtype)) = self.lower_scalar(&a.value, &mut ctx) else {
            return;
        };
        let Some(vars) = self.resolve_ranges(&ctx, indices.len(), target.is_none()) else {
            return;
        };
        if !self.check_bounds(&ctx, &vars) {
            return;
        }
        let output = match target {
            Some(t) => {
                if let Some(d) = dtype {
                    let want = self.tensors[t].dtype;
                    if !d.widens_to(want) && d.accumulator() != want {
                        let name = self.tensors[t].name.clone();
                        self.error(
                            "E0404",
                            a.value.span,
                            format!(
                                "`{name}` is {} but this expression is {}",
                                want.name(),
                                d.name()
                            ),
                        )
                        .help = Some(format!(
                            "declare `{name}` as {}, or convert: `{}(...)`",
                            d.name(),
                            want.name()
                        ));
                        return;
                    }
                }
                t
            }
            None => {
                let shape: Vec<u64> = vars[..indices.len()].iter().map(|v| v.extent).collect();
                let dtype = dtype.unwrap_or(DType::F32);
                if !self.check_size(&a.target.text, &shape, dtype, a.target.span) {
                    return;
                }
                let name = format!("{}{}", self.prefix, a.target.text);
                let t = self.add_tensor(crate::model::Tensor {
                    name,
                    role: arch_syntax::ast::Role::Intermediate,
                    dtype,
                    shape,
                    sparsity: None,
                    density: None,
                    span: a.target.span,
                });
                self.names.insert(a.target.text.clone(), t);
                t
            }
        };
        if !self.claim(output, a.target.span, a.span) {
            return;
        }
        self.compute_op(output, vars, indices.len(), body, a.span);
    }

    /// Every variable gets exactly one range; the first `outputs` are the
    /// left-hand side's.
    fn resolve_ranges(
        &mut self,
        ctx: &IndexCtx,
        outputs: usize,
        target_is_new: bool,
    ) -> Option<Vec<IndexVar>> {
        let mut out = Vec::new();
        for (i, v) in ctx.vars.iter().enumerate() {
            let Some((size, span, what)) = v.constraints.first() else {
                let help = if i < outputs && target_is_new {
                    format!("index a tensor with `{}` on the right-hand side, or declare the result with its shape", v.name)
                } else {
                    format!(
                        "use `{}` alone as an index of some tensor, e.g. `x[{}]`",
                        v.name, v.name
                    )
                };
                self.error(
                    "E0405",
                    v.span,
                    format!("cannot tell the range of index `{}`", v.name),
                )
                .help = Some(help);
                return None;
            };
            for (other, other_span, other_what) in &v.constraints[1..] {
                if other != size {
                    let label = self.loc(*span);
                    let d = self.error(
                        "E0403",
                        *other_span,
                        format!(
                            "index `{}` ranges over {} here ({}) but over {} elsewhere",
                            v.name, other, other_what, size
                        ),
                    );
                    d.labels.push(Label {
                        location: label,
                        message: format!("{what} has size {size}"),
                    });
                    d.help = Some(
                        "make the sizes agree, or use different index names for different axes"
                            .into(),
                    );
                    return None;
                }
            }
            out.push(IndexVar {
                name: v.name.clone(),
                extent: *size,
            });
        }
        Some(out)
    }

    fn check_bounds(&mut self, ctx: &IndexCtx, vars: &[IndexVar]) -> bool {
        for b in &ctx.bounds {
            let mut hi = b.affine.offset;
            let mut lo = b.affine.offset;
            for (v, c) in &b.affine.terms {
                let reach = c.saturating_mul(vars[*v].extent as i64 - 1);
                if reach > 0 {
                    hi = hi.saturating_add(reach);
                } else {
                    lo = lo.saturating_add(reach);
                }
            }
            if lo < 0 || hi >= b.size as i64 {
                let reach = if lo < 0 {
                    format!("goes down to {lo}")
                } else {
                    format!("reaches {hi}")
                };
                let ranges: Vec<String> = b
                    .affine
                    .terms
                    .iter()
                    .map(|(v, _)| format!("`{}` runs to {}", vars[*v].name, vars[*v].extent - 1))
                    .collect();
                let d = self.error(
                    "E0413",
                    b.span,
                    format!("this index {reach}, but {} has size {}", b.what, b.size),
                );
                d.primary_label = ranges.join(", ");
                d.help = Some(
                    "valid indices run from 0 to size - 1: shrink the output or pad the input"
                        .into(),
                );
                return false;
            }
        }
        true
    }

    /// Lowers a scalar expression of an index-form statement.
    pub(crate) fn lower_scalar(&mut self, e: &Expr, ctx: &mut IndexCtx) -> Option<Typed> {
        match &e.kind {
            ExprKind::Number { value, unit } => {
                if let Some(u) = unit {
                    self.error(
                        "E0302",
                        u.span,
                        "units have no meaning in a tensor expression",
                    )
                    .help = Some(format!("write the plain number `{}`", value.text));
                    return None;
                }
                match crate::consts::parse_real(value) {
                    Ok(v) => Some((ScalarExpr::Const(Real(v)), None)),
                    Err(err) => {
                        self.const_error(err);
                        None
                    }
                }
            }
            ExprKind::Paren(inner) => self.lower_scalar(inner, ctx),
            ExprKind::Neg(inner) => {
                let (x, d) = self.lower_scalar(inner, ctx)?;
                Some((ScalarExpr::Neg(Box::new(x)), d))
            }
            ExprKind::Name(n) => {
                if let Some(v) = ctx.lookup_value(&n.text) {
                    return Some(v);
                }
                if let Some(v) = ctx.lookup_var(&n.text) {
                    ctx.vars[v].uses += 1;
                    return Some((ScalarExpr::Index(v), None));
                }
                if let Some(c) = self.consts.get(&n.text) {
                    return Some((ScalarExpr::Const(Real(*c as f64)), None));
                }
                if let Some(s) = self.scalars.get(&n.text) {
                    return Some((ScalarExpr::Const(Real(*s)), None));
                }
                if let Some(&t) = self.names.get(&n.text) {
                    if self.tensors[t].shape.is_empty() {
                        return Some((
                            ScalarExpr::Access {
                                tensor: t,
                                index: Vec::new(),
                            },
                            Some(self.tensors[t].dtype),
                        ));
                    }
                    let rank = self.tensors[t].shape.len();
                    let idx = ["i", "j", "k", "l", "m", "n", "p", "q"]
                        .iter()
                        .cycle()
                        .take(rank)
                        .copied()
                        .collect::<Vec<_>>()
                        .join(", ");
                    self.error(
                        "E0414",
                        n.span,
                        format!(
                            "`{}` is a tensor; index it here: `{}[{idx}]`",
                            n.text, n.text
                        ),
                    );
                    return None;
                }
                self.unknown_name(n.text.as_str(), n.span, ctx);
                None
            }
            ExprKind::Access { tensor, indices } => self.lower_access(tensor, indices, e.span, ctx),
            ExprKind::Binary { op, lhs, rhs } => {
                if *op == BinOp::MatMul {
                    self.error(
                        "E0414",
                        e.span,
                        "`@` multiplies whole tensors; in index form write the sum",
                    )
                    .help = Some("for example `sum[k] a[i, k] * b[k, j]`".into());
                    return None;
                }
                let (l, ld) = self.lower_scalar(lhs, ctx)?;
                let (r, rd) = self.lower_scalar(rhs, ctx)?;
                let d = self.join(ld, rd, lhs.span, rhs.span)?;
                Some((
                    ScalarExpr::Binary {
                        op: *op,
                        lhs: Box::new(l),
                        rhs: Box::new(r),
                    },
                    d,
                ))
            }
            ExprKind::Reduce { op, indices, body } => {
                let mut new_vars = Vec::new();
                for n in indices {
                    if self.consts.contains_key(&n.text) {
                        self.error(
                            "E0405",
                            n.span,
                            format!("`{}` is a size, not an index", n.text),
                        )
                        .help = Some("reduce over a lower-case index name, e.g. `sum[k]`".into());
                        return None;
                    }
                    if let Some(v) = ctx.lookup_var(&n.text) {
                        let label = self.loc(ctx.vars[v].span);
                        self.error(
                            "E0407",
                            n.span,
                            format!("index `{}` is already bound", n.text),
                        )
                        .labels
                        .push(Label {
                            location: label,
                            message: "bound here".into(),
                        });
                        return None;
                    }
                    ctx.vars.push(VarInfo {
                        name: n.text.clone(),
                        span: n.span,
                        constraints: Vec::new(),
                        uses: 0,
                    });
                    let v = ctx.vars.len() - 1;
                    ctx.bound.push(v);
                    new_vars.push(v);
                }
                let lowered = self.lower_scalar(body, ctx);
                ctx.bound.truncate(ctx.bound.len() - new_vars.len());
                let (b, d) = lowered?;
                for &v in &new_vars {
                    if ctx.vars[v].uses == 0 {
                        let name = ctx.vars[v].name.clone();
                        self.error(
                            "E0406",
                            ctx.vars[v].span,
                            format!("the reduced expression does not use index `{name}`"),
                        )
                        .help = Some(format!(
                            "remove `{name}` from the reduction, or index a tensor with it"
                        ));
                        return None;
                    }
                }
                let d = match op {
                    arch_syntax::ast::ReduceOp::Sum => d.map(DType::accumulator),
                    _ => d,
                };
                Some((
                    ScalarExpr::Reduce {
                        op: *op,
                        vars: new_vars,
                        body: Box::new(b),
                    },
                    d,
                ))
            }
            ExprKind::Call { callee, args } => self.lower_call(callee, args, e.span, ctx),
        }
    }

    fn unknown_name(&mut self, name: &str, span: Span, ctx: &IndexCtx) {
        if self.poisoned.contains(name) {
            return;
        }
        if self.later_targets.contains(name) {
            self.error("E0101", span, format!("`{name}` is used before the statement that computes it"))
                .help = Some(format!("move the statement computing `{name}` above this one, or declare `{name}` with its shape"));
            return;
        }
        let looks_like_index = name.len() <= 2
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        if looks_like_index {
            self.error("E0405", span, format!("index `{name}` is not bound"))
                .help = Some(format!(
                "put `{name}` on the left-hand side, or reduce over it: `sum[{name}] ...`"
            ));
            return;
        }
        let mut candidates: Vec<&str> = self.names.keys().map(String::as_str).collect();
        candidates.extend(self.consts.keys().map(String::as_str));
        candidates.extend(ctx.bound.iter().map(|v| ctx.vars[*v].name.as_str()));
        let help = did_you_mean(name, candidates);
        self.error("E0101", span, format!("`{name}` is not defined"))
            .help = help;
    }

    fn join(
        &mut self,
        a: Option<DType>,
        b: Option<DType>,
        sa: Span,
        sb: Span,
    ) -> Option<Option<DType>> {
        match (a, b) {
            (Some(x), Some(y)) => match DType::join(x, y) {
                Some(d) => Some(Some(d)),
                None => {
                    let label = self.loc(sa);
                    let d = self.error(
                        "E0404",
                        sb,
                        format!("{} and {} have no common element type", x.name(), y.name()),
                    );
                    d.labels.push(Label {
                        location: label,
                        message: format!("this is {}", x.name()),
                    });
                    d.primary_label = format!("this is {}", y.name());
                    d.help = Some("convert one side explicitly, e.g. `f32(...)`".to_string());
                    None
                }
            },
            (x, None) => Some(x),
            (None, y) => Some(y),
        }
    }

    fn lower_access(
        &mut self,
        tensor: &arch_syntax::ast::Name,
        indices: &[Expr],
        span: Span,
        ctx: &mut IndexCtx,
    ) -> Option<Typed> {
        let Some(&t) = self.names.get(&tensor.text) else {
            if self.poisoned.contains(&tensor.text) {
                return None;
            }
            if self.later_targets.contains(&tensor.text) {
                self.unknown_name(&tensor.text, tensor.span, ctx);
                return None;
            }
            if self.consts.contains_key(&tensor.text) {
                self.error(
                    "E0414",
                    tensor.span,
                    format!("`{}` is a size, not a tensor", tensor.text),
                );
            } else {
                let help = did_you_mean(
                    &tensor.text,
                    self.names.keys().map(String::as_str).collect::<Vec<_>>(),
                );
                self.error(
                    "E0101",
                    tensor.span,
                    format!("tensor `{}` is not defined", tensor.text),
                )
                .help = help;
            }
            return None;
        };
        let shape = self.tensors[t].shape.clone();
        if shape.len() != indices.len() {
            let name = self.tensors[t].name.clone();
            let label = self.loc(self.tensors[t].span);
            self.error(
                "E0402",
                span,
                format!(
                    "`{name}` has {} dimensions but is indexed with {}",
                    shape.len(),
                    indices.len()
                ),
            )
            .labels
            .push(Label {
                location: label,
                message: format!("declared with shape {:?}", shape),
            });
            return None;
        }
        let mut index = Vec::new();
        for (axis, e) in indices.iter().enumerate() {
            let affine = self.lower_affine(e, ctx)?;
            let what = format!("dimension {axis} of `{}`", tensor.text);
            match affine.as_var() {
                Some(v) => ctx.vars[v].constraints.push((shape[axis], e.span, what)),
                None => ctx.bounds.push(PendingBound {
                    affine: affine.clone(),
                    size: shape[axis],
                    what,
                    span: e.span,
                }),
            }
            index.push(affine);
        }
        Some((
            ScalarExpr::Access { tensor: t, index },
            Some(self.tensors[t].dtype),
        ))
    }

    fn lower_affine(&mut self, e: &Expr, ctx: &mut IndexCtx) -> Option<Affine> {
        let not_affine = |me: &mut Self| {
            me.error(
                "E0415",
                e.span,
                "an index must be affine: index names times constants, plus a constant",
            )
            .help = Some("for example `p * 2 + r`".into());
        };
        match &e.kind {
            ExprKind::Name(n) => {
                if let Some(v) = ctx.lookup_var(&n.text) {
                    ctx.vars[v].uses += 1;
                    return Some(Affine::var(v));
                }
                if let Some(c) = self.consts.get(&n.text) {
                    return Some(Affine::constant(*c));
                }
                if let Some(s) = self.scalars.get(&n.text) {
                    if s.fract() == 0.0 {
                        return Some(Affine::constant(*s as i64));
                    }
                }
                self.unknown_name(&n.text, n.span, ctx);
                None
            }
            ExprKind::Number { value, unit: None } => match crate::consts::parse_int(value) {
                Ok(v) => Some(Affine::constant(v)),
                Err(err) => {
                    self.const_error(err);
                    None
                }
            },
            ExprKind::Paren(inner) => self.lower_affine(inner, ctx),
            ExprKind::Neg(inner) => Some(scale(self.lower_affine(inner, ctx)?, -1)),
            ExprKind::Binary {
                op: op @ (BinOp::Add | BinOp::Sub),
                lhs,
                rhs,
            } => {
                let a = self.lower_affine(lhs, ctx)?;
                let mut b = self.lower_affine(rhs, ctx)?;
                if *op == BinOp::Sub {
                    b = scale(b, -1);
                }
                Some(add(a, b))
            }
            ExprKind::Binary {
                op: BinOp::Mul,
                lhs,
                rhs,
            } => {
                let a = self.lower_affine(lhs, ctx)?;
                let b = self.lower_affine(rhs, ctx)?;
                match (a.terms.is_empty(), b.terms.is_empty()) {
                    (true, _) => Some(scale(b, a.offset)),
                    (_, true) => Some(scale(a, b.offset)),
                    _ => {
                        not_affine(self);
                        None
                    }
                }
            }
            _ => {
                not_affine(self);
                None
            }
        }
    }

    fn lower_call(
        &mut self,
        callee: &arch_syntax::ast::Name,
        args: &[arch_syntax::ast::Arg],
        span: Span,
        ctx: &mut IndexCtx,
    ) -> Option<Typed> {
        if let Some(named) = args.iter().find_map(|a| a.name.as_ref()) {
            if BUILTINS.iter().any(|(n, _, _)| *n == callee.text)
                || DType::from_name(&callee.text).is_some()
            {
                self.error(
                    "E0411",
                    named.span,
                    format!("`{}` takes no named arguments", callee.text),
                );
                return None;
            }
        }
        if let Some(to) = DType::from_name(&callee.text) {
            let [arg] = args else {
                self.error(
                    "E0411",
                    span,
                    format!("`{}(...)` converts one value", callee.text),
                );
                return None;
            };
            let (x, _) = self.lower_scalar(&arg.value, ctx)?;
            return Some((
                ScalarExpr::Cast {
                    to,
                    value: Box::new(x),
                },
                Some(to),
            ));
        }
        if let Some((_, func, arity)) = BUILTINS.iter().find(|(n, _, _)| *n == callee.text) {
            if args.len() != *arity {
                self.error(
                    "E0411",
                    span,
                    format!(
                        "`{}` takes {arity} argument(s), got {}",
                        callee.text,
                        args.len()
                    ),
                );
                return None;
            }
            let mut lowered = Vec::new();
            let mut dtype = None;
            let mut prev_span = span;
            for a in args {
                let (x, d) = self.lower_scalar(&a.value, ctx)?;
                dtype = self.join(dtype, d, prev_span, a.value.span)?;
                prev_span = a.value.span;
                lowered.push(x);
            }
            let dtype = if matches!(func, Builtin::Max | Builtin::Min | Builtin::Abs) {
                dtype
            } else {
                dtype.map(float_of)
            };
            return Some((
                ScalarExpr::Call {
                    func: *func,
                    args: lowered,
                },
                dtype,
            ));
        }
        let Some(decl) = self.scope.get(&callee.text) else {
            self.unknown_function(callee);
            return None;
        };
        let parsed = crate::db::parse_decl(self.db, decl);
        match &parsed.item {
            Item::Op(op) => match &op.body {
                OpBody::Scalar(body) => {
                    if self.expansion_depth > 16 {
                        self.error(
                            "E0411",
                            span,
                            format!("`{}` expands too deeply; is it recursive?", callee.text),
                        );
                        return None;
                    }
                    // Positional arguments first, then named ones, then defaults.
                    let mut slots: Vec<Option<&Expr>> = vec![None; op.params.len()];
                    let mut next = 0;
                    for a in args {
                        let i = match &a.name {
                            None => {
                                next += 1;
                                next - 1
                            }
                            Some(n) => match op.params.iter().position(|p| p.name.text == n.text) {
                                Some(i) => i,
                                None => {
                                    let names: Vec<&str> =
                                        op.params.iter().map(|p| p.name.text.as_str()).collect();
                                    let help = did_you_mean(&n.text, names.iter().copied())
                                        .unwrap_or_else(|| {
                                            format!(
                                                "parameters of `{}`: {}",
                                                callee.text,
                                                names.join(", ")
                                            )
                                        });
                                    self.error(
                                        "E0411",
                                        n.span,
                                        format!("`{}` has no parameter `{}`", callee.text, n.text),
                                    )
                                    .help = Some(help);
                                    return None;
                                }
                            },
                        };
                        if i >= slots.len() {
                            self.error(
                                "E0411",
                                a.span,
                                format!(
                                    "`{}` takes {} argument(s), got {}",
                                    callee.text,
                                    op.params.len(),
                                    args.len()
                                ),
                            );
                            return None;
                        }
                        if slots[i].is_some() {
                            self.error(
                                "E0411",
                                a.span,
                                format!("`{}` is given twice", op.params[i].name.text),
                            );
                            return None;
                        }
                        slots[i] = Some(&a.value);
                    }
                    let mut values = HashMap::new();
                    for (p, slot) in op.params.iter().zip(slots) {
                        let v = match (slot, &p.default) {
                            (Some(e), _) => self.lower_scalar(e, ctx)?,
                            (None, Some(default)) => {
                                match crate::consts::eval_quantity(default, &|_| None) {
                                    Ok(q) => (ScalarExpr::Const(Real(q.value)), None),
                                    Err(e) => {
                                        self.const_error(e);
                                        return None;
                                    }
                                }
                            }
                            (None, None) => {
                                self.error(
                                    "E0411",
                                    span,
                                    format!(
                                        "`{}` needs an argument for `{}`",
                                        callee.text, p.name.text
                                    ),
                                );
                                return None;
                            }
                        };
                        values.insert(p.name.text.clone(), v);
                    }
                    // The body speaks only of its parameters and builtins.
                    let saved_bound = std::mem::take(&mut ctx.bound);
                    ctx.values.push(values);
                    let saved_site = self.call_site.replace(self.call_site.unwrap_or(span));
                    let saved_consts = std::mem::take(&mut self.consts);
                    let saved_scalars = std::mem::take(&mut self.scalars);
                    let saved_names = std::mem::take(&mut self.names);
                    self.expansion_depth += 1;
                    let result = self.lower_scalar(body, ctx);
                    self.expansion_depth -= 1;
                    self.names = saved_names;
                    self.scalars = saved_scalars;
                    self.consts = saved_consts;
                    self.call_site = saved_site;
                    ctx.values.pop();
                    ctx.bound = saved_bound;
                    result
                }
                OpBody::Tensor { .. } => {
                    self.error(
                        "E0414",
                        callee.span,
                        format!("`{}` is a tensor op; call it on whole tensors", callee.text),
                    )
                    .help = Some(format!(
                        "for example `h = {}(...)` as its own statement",
                        callee.text
                    ));
                    None
                }
            },
            Item::Neuron(_) => {
                self.error(
                    "E0414",
                    callee.span,
                    format!(
                        "`{}` is a neuron model; apply it to a whole tensor",
                        callee.text
                    ),
                )
                .help = Some(format!("for example `h = {}(x @ w)`", callee.text));
                None
            }
            _ => {
                self.error(
                    "E0105",
                    callee.span,
                    format!(
                        "`{}` is {}, not a function",
                        callee.text,
                        crate::diag::kind_phrase(decl.kind(self.db))
                    ),
                );
                None
            }
        }
    }
}

impl Lowerer<'_, '_> {
    /// E0101 for a call of something not in scope, pointing at std.nn when
    /// the function lives there.
    pub(crate) fn unknown_function(&mut self, callee: &arch_syntax::ast::Name) {
        if self.scope.unresolved.contains(&callee.text) {
            return;
        }
        let help = match crate::scope::std_module_of(self.db, &callee.text) {
            Some(module) => Some(format!(
                "`{}` is in {module}: add `import {module}.{}`",
                callee.text, callee.text
            )),
            None => {
                let mut candidates: Vec<&str> = BUILTINS.iter().map(|(n, _, _)| *n).collect();
                candidates.extend(self.scope.names_of_kind(self.db, "op"));
                candidates.extend(self.scope.names_of_kind(self.db, "neuron"));
                did_you_mean(&callee.text, candidates).or_else(|| {
                    Some(format!(
                        "define it (`op {}(x) = ...`) or import it",
                        callee.text
                    ))
                })
            }
        };
        self.error(
            "E0101",
            callee.span,
            format!("function `{}` is not defined", callee.text),
        )
        .help = help;
    }
}

fn float_of(d: DType) -> DType {
    if d.is_float() {
        d
    } else {
        DType::F32
    }
}

fn scale(mut a: Affine, by: i64) -> Affine {
    a.offset = a.offset.saturating_mul(by);
    for t in &mut a.terms {
        t.1 = t.1.saturating_mul(by);
    }
    a.terms.retain(|t| t.1 != 0);
    a
}

fn add(mut a: Affine, b: Affine) -> Affine {
    a.offset = a.offset.saturating_add(b.offset);
    for (v, c) in b.terms {
        match a.terms.iter_mut().find(|t| t.0 == v) {
            Some(t) => t.1 += c,
            None => a.terms.push((v, c)),
        }
    }
    a.terms.retain(|t| t.1 != 0);
    a
}
