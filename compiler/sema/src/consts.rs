//! Constant evaluation: size parameters, shapes, and quantities with units.

use crate::units::{parse_unit, Dim};
use arch_syntax::ast::{BinOp, Expr, ExprKind, Number, Span};

/// Sizes above this are refused (E0201): far beyond any memory, and small
/// enough that products of a few of them cannot overflow `i128`.
pub const MAX_SIZE: i64 = 1 << 40;

/// Why an expression has no constant value.
#[derive(Debug, Clone, PartialEq)]
pub struct ConstError {
    pub code: &'static str,
    pub span: Span,
    pub message: String,
    pub help: Option<String>,
}

impl ConstError {
    fn new(code: &'static str, span: Span, message: impl Into<String>) -> ConstError {
        ConstError {
            code,
            span,
            message: message.into(),
            help: None,
        }
    }
}

/// Reads an integer literal (`1_024`).
pub fn parse_int(n: &Number) -> Result<i64, ConstError> {
    if n.is_float {
        return Err(ConstError::new(
            "E0205",
            n.span,
            format!("`{}` is not an integer", n.text),
        ));
    }
    let digits: String = n.text.chars().filter(|c| *c != '_').collect();
    match digits.parse::<i64>() {
        Ok(v) if v <= MAX_SIZE => Ok(v),
        _ => Err(ConstError {
            code: "E0201",
            span: n.span,
            message: format!("`{}` is too large for a size", n.text),
            help: Some(format!("sizes are limited to 2^40 = {MAX_SIZE}")),
        }),
    }
}

/// Reads any number literal as `f64`.
pub fn parse_real(n: &Number) -> Result<f64, ConstError> {
    let digits: String = n.text.chars().filter(|c| *c != '_').collect();
    match digits.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        _ => Err(ConstError::new(
            "E0201",
            n.span,
            format!("`{}` is not a finite number", n.text),
        )),
    }
}

/// Evaluates an integer expression; `lookup` gives the value of a name.
pub fn eval_int(e: &Expr, lookup: &dyn Fn(&str) -> Option<i64>) -> Result<i64, ConstError> {
    match &e.kind {
        ExprKind::Number { value, unit } => {
            if let Some(u) = unit {
                return Err(ConstError::new(
                    "E0302",
                    u.span,
                    format!("a size has no unit, but this one is in `{}`", u.text),
                ));
            }
            parse_int(value)
        }
        ExprKind::Name(n) => lookup(&n.text).ok_or_else(|| ConstError {
            code: "E0101",
            span: n.span,
            message: format!("`{}` is not a size parameter", n.text),
            help: None,
        }),
        ExprKind::Paren(inner) => eval_int(inner, lookup),
        ExprKind::Neg(inner) => Ok(-eval_int(inner, lookup)?),
        ExprKind::Binary { op, lhs, rhs } => {
            let a = eval_int(lhs, lookup)? as i128;
            let b = eval_int(rhs, lookup)? as i128;
            let v = match op {
                BinOp::Add => a + b,
                BinOp::Sub => a - b,
                BinOp::Mul => a * b,
                BinOp::Div if b == 0 => {
                    return Err(ConstError::new("E0205", rhs.span, "division by zero"))
                }
                BinOp::Div => a.div_euclid(b),
                _ => {
                    return Err(ConstError::new(
                        "E0205",
                        e.span,
                        format!("`{}` has no meaning in a size", op.symbol()),
                    ))
                }
            };
            if v.abs() > MAX_SIZE as i128 {
                return Err(ConstError {
                    code: "E0201",
                    span: e.span,
                    message: format!("this size is {v}, too large"),
                    help: Some(format!("sizes are limited to 2^40 = {MAX_SIZE}")),
                });
            }
            Ok(v as i64)
        }
        _ => Err(ConstError::new(
            "E0205",
            e.span,
            "a size must be a constant integer expression",
        )),
    }
}

/// A value with a physical dimension, in base units.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quantity {
    pub value: f64,
    pub dim: Dim,
}

/// Evaluates a constant quantity (`2 ms`, `-1.5`, `2 * 1 ns`); `lookup` gives
/// named constants.
pub fn eval_quantity(
    e: &Expr,
    lookup: &dyn Fn(&str) -> Option<Quantity>,
) -> Result<Quantity, ConstError> {
    match &e.kind {
        ExprKind::Number { value, unit } => {
            let v = parse_real(value)?;
            match unit {
                None => Ok(Quantity {
                    value: v,
                    dim: Dim::COUNT,
                }),
                Some(u) => {
                    let (scale, dim) =
                        parse_unit(&u.text).map_err(|bad| unknown_unit(u.span, &bad))?;
                    Ok(Quantity {
                        value: v * scale,
                        dim,
                    })
                }
            }
        }
        ExprKind::Name(n) => lookup(&n.text).ok_or_else(|| {
            ConstError::new(
                "E0101",
                n.span,
                format!("`{}` is not a constant here", n.text),
            )
        }),
        ExprKind::Paren(inner) => eval_quantity(inner, lookup),
        ExprKind::Neg(inner) => {
            let q = eval_quantity(inner, lookup)?;
            Ok(Quantity {
                value: -q.value,
                dim: q.dim,
            })
        }
        ExprKind::Binary { op, lhs, rhs } => {
            let a = eval_quantity(lhs, lookup)?;
            let b = eval_quantity(rhs, lookup)?;
            match op {
                BinOp::Add | BinOp::Sub => {
                    if a.dim != b.dim {
                        return Err(ConstError::new(
                            "E0302",
                            e.span,
                            format!("cannot add {} and {}", a.dim.describe(), b.dim.describe()),
                        ));
                    }
                    let value = if *op == BinOp::Add {
                        a.value + b.value
                    } else {
                        a.value - b.value
                    };
                    Ok(Quantity { value, dim: a.dim })
                }
                BinOp::Mul => Ok(Quantity {
                    value: a.value * b.value,
                    dim: a.dim.times(b.dim),
                }),
                BinOp::Div if b.value == 0.0 => {
                    Err(ConstError::new("E0205", rhs.span, "division by zero"))
                }
                BinOp::Div => Ok(Quantity {
                    value: a.value / b.value,
                    dim: a.dim.per(b.dim),
                }),
                _ => Err(ConstError::new(
                    "E0205",
                    e.span,
                    format!("`{}` has no meaning in a constant", op.symbol()),
                )),
            }
        }
        _ => Err(ConstError::new("E0205", e.span, "expected a constant")),
    }
}

pub fn unknown_unit(span: Span, bad: &str) -> ConstError {
    ConstError {
        code: "E0301",
        span,
        message: format!("unknown unit `{bad}`"),
        help: crate::diag::did_you_mean(bad, crate::units::unit_names()).or_else(|| {
            Some(format!(
                "units: {}; compound units join them with `/`, e.g. `GB/s`",
                crate::units::unit_names().collect::<Vec<_>>().join(" ")
            ))
        }),
    }
}
