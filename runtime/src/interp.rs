//! The reference interpreter: evaluates every op of a workload's semantic
//! model ([`arch_sema::model::WorkloadModel`]) point by point, in f64, and
//! stores each result in its tensor's element type ([`DType::store`]: floats
//! round to nearest even, integers round and saturate, spikes are 0 or 1).
//! It is slow on purpose and simple enough to trust: code generation is
//! checked against it, with a tolerance by element type ([`tolerance`]).
//!
//! Not built yet: neuron models (stateful spiking layers) are refused with
//! [`InterpError::Unsupported`].

use arch_sema::dtype::DType;
use arch_sema::model::{Affine, Builtin, Op, OpKind, ScalarExpr, WorkloadModel};
use arch_syntax::ast::{BinOp, ReduceOp, Role};
use std::collections::BTreeMap;

/// Points one run may evaluate at most (iteration points summed over ops),
/// so that a huge workload is an error, not an endless run.
pub const MAX_POINTS: u64 = 1 << 32;

#[derive(Debug, Clone, PartialEq)]
pub enum InterpError {
    /// An input or weight the caller did not give, or gave the wrong number
    /// of values for.
    MissingInput {
        tensor: String,
    },
    WrongSize {
        tensor: String,
        expected: u64,
        got: usize,
    },
    /// An index outside its tensor (the checker proves most accesses in
    /// bounds; this catches the rest).
    OutOfBounds {
        tensor: String,
        op: String,
    },
    Unsupported(String),
    TooLarge {
        points: u64,
    },
}

impl std::fmt::Display for InterpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InterpError::MissingInput { tensor } => write!(f, "no values given for `{tensor}`"),
            InterpError::WrongSize {
                tensor,
                expected,
                got,
            } => write!(f, "`{tensor}` needs {expected} values, got {got}"),
            InterpError::OutOfBounds { tensor, op } => {
                write!(f, "op `{op}` reads `{tensor}` outside its shape")
            }
            InterpError::Unsupported(what) => write!(f, "the interpreter does not run {what} yet"),
            InterpError::TooLarge { points } => write!(
                f,
                "{points} iteration points are more than the interpreter runs ({MAX_POINTS})"
            ),
        }
    }
}

impl std::error::Error for InterpError {}

/// Values of every tensor by name, row-major, as f64.
pub type Values = BTreeMap<String, Vec<f64>>;

/// Runs `w` on `given` (every input and weight, by name) and returns every
/// tensor's values: the given ones, each intermediate and each output.
pub fn run(w: &WorkloadModel, given: &Values) -> Result<Values, InterpError> {
    let points: u64 = w
        .ops
        .iter()
        .map(|op| op.vars.iter().fold(1u64, |a, v| a.saturating_mul(v.extent)))
        .fold(0u64, |a, b| a.saturating_add(b));
    if points > MAX_POINTS {
        return Err(InterpError::TooLarge { points });
    }
    let mut data: Vec<Option<Vec<f64>>> = vec![None; w.tensors.len()];
    for (i, t) in w.tensors.iter().enumerate() {
        if matches!(t.role, Role::Input | Role::Weight) {
            let values = given
                .get(&t.name)
                .ok_or_else(|| InterpError::MissingInput {
                    tensor: t.name.clone(),
                })?;
            if values.len() as u64 != t.elements() {
                return Err(InterpError::WrongSize {
                    tensor: t.name.clone(),
                    expected: t.elements(),
                    got: values.len(),
                });
            }
            data[i] = Some(values.iter().map(|x| t.dtype.store(*x)).collect());
        }
    }
    for op in &w.ops {
        if let OpKind::Neuron { model, .. } = &op.kind {
            return Err(InterpError::Unsupported(format!(
                "neuron models (`{model}` computing `{}`)",
                w.tensors[op.output].name
            )));
        }
        let out = evaluate_op(w, op, &data)?;
        data[op.output] = Some(out);
    }
    Ok(w.tensors
        .iter()
        .zip(data)
        .filter_map(|(t, d)| d.map(|d| (t.name.clone(), d)))
        .collect())
}

/// Row-major strides of a shape.
fn strides(shape: &[u64]) -> Vec<u64> {
    let mut s = vec![1u64; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

struct Frame<'a> {
    w: &'a WorkloadModel,
    op: &'a Op,
    data: &'a [Option<Vec<f64>>],
    /// Current value of every index variable of the op.
    vars: Vec<i64>,
}

fn evaluate_op(
    w: &WorkloadModel,
    op: &Op,
    data: &[Option<Vec<f64>>],
) -> Result<Vec<f64>, InterpError> {
    let out = &w.tensors[op.output];
    let extents: Vec<u64> = op.vars[..op.output_rank].iter().map(|v| v.extent).collect();
    let total: u64 = extents.iter().product();
    let mut frame = Frame {
        w,
        op,
        data,
        vars: vec![0; op.vars.len()],
    };
    let mut values = Vec::with_capacity(total as usize);
    for flat in 0..total {
        // The output point, last index fastest (row-major order).
        let mut rest = flat;
        for v in (0..op.output_rank).rev() {
            frame.vars[v] = (rest % extents[v]) as i64;
            rest /= extents[v];
        }
        values.push(out.dtype.store(frame.eval(&op.body)?));
    }
    Ok(values)
}

impl Frame<'_> {
    fn eval(&mut self, e: &ScalarExpr) -> Result<f64, InterpError> {
        Ok(match e {
            ScalarExpr::Const(r) => r.0,
            ScalarExpr::Index(v) => self.vars[*v] as f64,
            ScalarExpr::Access { tensor, index } => self.access(*tensor, index)?,
            ScalarExpr::Neg(x) => -self.eval(x)?,
            ScalarExpr::Binary { op, lhs, rhs } => {
                let (a, b) = (self.eval(lhs)?, self.eval(rhs)?);
                let truth = |c: bool| if c { 1.0 } else { 0.0 };
                match op {
                    BinOp::Add => a + b,
                    BinOp::Sub => a - b,
                    BinOp::Mul => a * b,
                    BinOp::Div => a / b,
                    BinOp::Lt => truth(a < b),
                    BinOp::Le => truth(a <= b),
                    BinOp::Gt => truth(a > b),
                    BinOp::Ge => truth(a >= b),
                    BinOp::Eq => truth(a == b),
                    BinOp::MatMul => {
                        return Err(InterpError::Unsupported(
                            "an unexpanded `@` (the front end rewrites it)".into(),
                        ))
                    }
                }
            }
            ScalarExpr::Call { func, args } => {
                let mut xs = Vec::with_capacity(args.len());
                for a in args {
                    xs.push(self.eval(a)?);
                }
                let x = xs.first().copied().unwrap_or(0.0);
                let y = xs.get(1).copied().unwrap_or(0.0);
                match func {
                    Builtin::Exp => x.exp(),
                    Builtin::Log => x.ln(),
                    Builtin::Sqrt => x.sqrt(),
                    Builtin::Tanh => x.tanh(),
                    Builtin::Abs => x.abs(),
                    Builtin::Sigmoid => 1.0 / (1.0 + (-x).exp()),
                    Builtin::Erf => erf(x),
                    Builtin::Max => x.max(y),
                    Builtin::Min => x.min(y),
                }
            }
            ScalarExpr::Cast { to, value } => to.store(self.eval(value)?),
            ScalarExpr::Reduce { op, vars, body } => {
                let extents: Vec<u64> = vars.iter().map(|v| self.op.vars[*v].extent).collect();
                let total: u64 = extents.iter().product();
                let mut acc = match op {
                    ReduceOp::Sum => 0.0,
                    ReduceOp::Max => f64::NEG_INFINITY,
                    ReduceOp::Min => f64::INFINITY,
                };
                for flat in 0..total {
                    let mut rest = flat;
                    for (k, v) in vars.iter().enumerate().rev() {
                        self.vars[*v] = (rest % extents[k]) as i64;
                        rest /= extents[k];
                    }
                    let x = self.eval(body)?;
                    acc = match op {
                        ReduceOp::Sum => acc + x,
                        ReduceOp::Max => acc.max(x),
                        ReduceOp::Min => acc.min(x),
                    };
                }
                acc
            }
        })
    }

    fn access(&self, tensor: usize, index: &[Affine]) -> Result<f64, InterpError> {
        let t = &self.w.tensors[tensor];
        let oob = || InterpError::OutOfBounds {
            tensor: t.name.clone(),
            op: self.w.tensors[self.op.output].name.clone(),
        };
        let values = self.data[tensor].as_ref().ok_or_else(|| {
            InterpError::Unsupported(format!("`{}` read before it is computed", t.name))
        })?;
        let strides = strides(&t.shape);
        let mut flat = 0u64;
        for ((a, extent), stride) in index.iter().zip(&t.shape).zip(&strides) {
            let i = a.offset + a.terms.iter().map(|(v, c)| self.vars[*v] * c).sum::<i64>();
            if i < 0 || i as u64 >= *extent {
                return Err(oob());
            }
            flat += i as u64 * stride;
        }
        values.get(flat as usize).copied().ok_or_else(oob)
    }
}

/// The error function to double precision: `2/sqrt(pi) e^(-x^2) sum_n
/// 2^n x^(2n+1) / (1 * 3 * ... * (2n+1))`, a series of positive terms (no
/// cancellation); |erf(x)| rounds to 1 in f64 from |x| = 5.93 on.
pub fn erf(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    let a = x.abs();
    if a >= 6.0 {
        return 1.0f64.copysign(x);
    }
    let (mut term, mut sum) = (a, a);
    let mut n = 0.0;
    while n < 400.0 {
        n += 1.0;
        term *= 2.0 * a * a / (2.0 * n + 1.0);
        sum += term;
        if term < sum * 1e-17 {
            break;
        }
    }
    let y = std::f64::consts::FRAC_2_SQRT_PI * (-a * a).exp() * sum;
    y.min(1.0).copysign(x)
}

/// How far a built library's result may be from the interpreter's, relative
/// to the result's magnitude, for a tensor of type `d`: a few units in the
/// last place of the type, since both sum in a different order.
pub fn tolerance(d: DType) -> f64 {
    match d {
        DType::F64 => 1e-12,
        DType::F32 => 1e-5,
        DType::F16 => 2e-3,
        DType::BF16 => 1.6e-2,
        DType::Fp8 => 1.3e-1,
        // Integers are exact; spikes too.
        _ => 0.0,
    }
}

/// Deterministic values for every input and weight of `w` (uniform in
/// [-1, 1), stored in each tensor's type; spikes 0 or 1), from `seed`.
pub fn random_inputs(w: &WorkloadModel, seed: u64) -> Values {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move || {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        (state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    };
    w.tensors
        .iter()
        .filter(|t| matches!(t.role, Role::Input | Role::Weight))
        .map(|t| {
            let scale = match t.dtype {
                DType::I32 | DType::I16 | DType::I8 => 100.0,
                DType::U8 => 200.0,
                DType::I4 => 7.0,
                _ => 1.0,
            };
            let values = (0..t.elements())
                .map(|_| {
                    let u = next();
                    match t.dtype {
                        DType::Spike => (u < 0.2) as u8 as f64,
                        DType::U8 => t.dtype.store(u * scale),
                        _ => t.dtype.store((2.0 * u - 1.0) * scale),
                    }
                })
                .collect();
            (t.name.clone(), values)
        })
        .collect()
}
