//! The contraction view of an op: which of its index variables are output
//! rows (M), output columns (N) and reduced (K). Systolic and tensor-core
//! models map every contraction to this GEMM form, as SCALE-Sim does for
//! convolutions (M = output pixels, N = filters, K = window).

use arch_sema::model::{Op, ScalarExpr, WorkloadModel};
use arch_syntax::ast::{BinOp, ReduceOp, Role};

/// Extents of an op seen as `C[M, N] += A[M, K] * B[K, N]`.
#[derive(Debug, Clone, PartialEq)]
pub struct GemmView {
    pub m: u64,
    pub n: u64,
    pub k: u64,
    /// The op's variables in each role.
    pub m_vars: Vec<usize>,
    pub n_vars: Vec<usize>,
    pub k_vars: Vec<usize>,
    /// The tensors playing A (streamed input) and B (weights, if any).
    pub a: Option<usize>,
    pub b: Option<usize>,
    /// B's N:M pattern, and the fraction of its dense size it is stored in.
    pub b_sparsity: Option<arch_sema::model::NmSparsity>,
    pub b_stored: f64,
}

impl Default for GemmView {
    /// A dense 1 x 1 x 1 view.
    fn default() -> Self {
        GemmView {
            m: 1,
            n: 1,
            k: 1,
            m_vars: Vec::new(),
            n_vars: Vec::new(),
            k_vars: Vec::new(),
            a: None,
            b: None,
            b_sparsity: None,
            b_stored: 1.0,
        }
    }
}

impl GemmView {
    /// Multiply-accumulates (in f64: huge workloads overflow u64).
    pub fn macs(&self) -> f64 {
        self.m as f64 * self.n as f64 * self.k as f64
    }
}

/// Finds the product of two accesses under a sum reduction, and splits the
/// op's variables by where they occur. An op without such a contraction is
/// element-wise: M = its points, N = K = 1.
pub fn gemm_view(w: &WorkloadModel, op: &Op) -> GemmView {
    // Extents multiply saturating: a huge workload is costed as huge, never
    // wrapped around.
    let product = |vars: &mut dyn Iterator<Item = usize>| {
        vars.fold(1u64, |a, v| a.saturating_mul(op.vars[v].extent))
    };
    let points = product(&mut (0..op.output_rank));
    let Some((reduced, lhs, rhs)) = find_contraction(&op.body) else {
        return GemmView {
            m: points,
            n: 1,
            k: 1,
            m_vars: (0..op.output_rank).collect(),
            ..GemmView::default()
        };
    };
    // B is the weight if there is one, else the right operand.
    let (a, b) = if w.tensors[lhs.0].role == Role::Weight && w.tensors[rhs.0].role != Role::Weight {
        (rhs, lhs)
    } else {
        (lhs, rhs)
    };
    let uses = |acc: &Operand, v: usize| acc.1.contains(&v);
    let mut m = 1u64;
    let mut n = 1u64;
    let (mut m_vars, mut n_vars) = (Vec::new(), Vec::new());
    for v in 0..op.output_rank {
        let extent = op.vars[v].extent;
        if uses(&b, v) && !uses(&a, v) {
            n = n.saturating_mul(extent);
            n_vars.push(v);
        } else {
            m = m.saturating_mul(extent);
            m_vars.push(v);
        }
    }
    let k = product(&mut reduced.iter().copied());
    GemmView {
        m,
        n,
        k,
        m_vars,
        n_vars,
        k_vars: reduced,
        a: Some(a.0),
        b: Some(b.0),
        b_sparsity: w.tensors[b.0].sparsity,
        b_stored: w.tensors[b.0].stored_fraction(),
    }
}

/// A tensor and the variables its indices use.
type Operand = (usize, Vec<usize>);

/// `(reduced vars, each operand)`.
type Contraction = (Vec<usize>, Operand, Operand);

fn find_contraction(e: &ScalarExpr) -> Option<Contraction> {
    match e {
        ScalarExpr::Reduce {
            op: ReduceOp::Sum,
            vars,
            body,
        } => {
            let (l, r) = product_operands(body)?;
            Some((vars.clone(), l, r))
        }
        ScalarExpr::Neg(x) | ScalarExpr::Cast { value: x, .. } => find_contraction(x),
        ScalarExpr::Binary { lhs, rhs, .. } => {
            find_contraction(lhs).or_else(|| find_contraction(rhs))
        }
        ScalarExpr::Call { args, .. } => args.iter().find_map(find_contraction),
        _ => None,
    }
}

/// The two accessed tensors of `x * y` (through scaling by constants and
/// conversions), with the variables their indices use.
fn product_operands(e: &ScalarExpr) -> Option<(Operand, Operand)> {
    match e {
        ScalarExpr::Binary {
            op: BinOp::Mul,
            lhs,
            rhs,
        } => match (access(lhs), access(rhs)) {
            (Some(l), Some(r)) => Some((l, r)),
            _ => product_operands(lhs).or_else(|| product_operands(rhs)),
        },
        ScalarExpr::Binary {
            op: BinOp::Div,
            lhs,
            ..
        } => product_operands(lhs),
        ScalarExpr::Cast { value, .. } => product_operands(value),
        _ => None,
    }
}

fn access(e: &ScalarExpr) -> Option<Operand> {
    match e {
        ScalarExpr::Access { tensor, index } => {
            let mut vars: Vec<usize> = index
                .iter()
                .flat_map(|a| a.terms.iter().map(|(v, _)| *v))
                .collect();
            vars.sort_unstable();
            vars.dedup();
            Some((*tensor, vars))
        }
        ScalarExpr::Cast { value, .. } => access(value),
        _ => None,
    }
}
