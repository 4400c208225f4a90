//! Comparing a built library's outputs with the reference interpreter's.

use arch_sema::dtype::DType;

/// How far one output is from the reference.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    pub tensor: String,
    /// Largest |got - want|.
    pub max_abs_error: f64,
    /// Largest |got - want| / (|want| + rms(want)): an error relative to
    /// the element, floored by the tensor's typical magnitude so that sums
    /// that cancel to near zero are not judged by their tiny value.
    pub max_rel_error: f64,
    pub tolerance: f64,
    /// The first element past the tolerance (flat index), if any.
    pub first_bad: Option<usize>,
}

impl Comparison {
    pub fn ok(&self) -> bool {
        self.first_bad.is_none()
    }
}

/// The tolerance for output `output` of `w`: its type's, or a wider one when
/// an intermediate is stored in a narrower type (both sides round it, and
/// summing in another order can round an element the other way: one unit
/// of that type, carried into the output).
pub fn output_tolerance(w: &arch_sema::model::WorkloadModel, output: usize) -> f64 {
    w.tensors
        .iter()
        .filter(|t| t.role == arch_syntax::ast::Role::Intermediate)
        .map(|t| crate::interp::tolerance(t.dtype))
        .fold(crate::interp::tolerance(w.tensors[output].dtype), f64::max)
}

/// Compares `got` with `want` (both as f64) for a tensor of type `d`.
pub fn compare(tensor: &str, d: DType, got: &[f64], want: &[f64]) -> Comparison {
    compare_within(tensor, crate::interp::tolerance(d), got, want)
}

/// Compares `got` with `want` within `tolerance` (relative, see
/// [`Comparison::max_rel_error`]).
pub fn compare_within(tensor: &str, tolerance: f64, got: &[f64], want: &[f64]) -> Comparison {
    let rms = if want.is_empty() {
        0.0
    } else {
        (want.iter().map(|x| x * x).sum::<f64>() / want.len() as f64).sqrt()
    };
    let mut c = Comparison {
        tensor: tensor.to_string(),
        max_abs_error: 0.0,
        max_rel_error: 0.0,
        tolerance,
        first_bad: if got.len() == want.len() {
            None
        } else {
            Some(got.len().min(want.len()))
        },
    };
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let abs = if g == w || (g.is_nan() && w.is_nan()) {
            0.0
        } else {
            (g - w).abs()
        };
        let scale = w.abs() + rms;
        let rel = if abs == 0.0 {
            0.0
        } else if scale > 0.0 {
            abs / scale
        } else {
            f64::INFINITY
        };
        c.max_abs_error = c.max_abs_error.max(abs);
        c.max_rel_error = c.max_rel_error.max(rel);
        if (rel > tolerance || rel.is_nan()) && c.first_bad.is_none() {
            c.first_bad = Some(i);
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_passes_and_a_wrong_element_is_found() {
        let want = [1.0, -2.0, 3.0, 0.0];
        assert!(compare("y", DType::F32, &want, &want).ok());
        let got = [1.0, -2.0, 3.1, 0.0];
        let c = compare("y", DType::F32, &got, &want);
        assert_eq!(c.first_bad, Some(2));
        assert!((c.max_abs_error - 0.1).abs() < 1e-12);
        // Near-zero results of cancelling sums are judged by the rms.
        let tiny = [1.0, 1e-9];
        assert!(compare("y", DType::F32, &[1.0, 2e-9], &tiny).ok());
        assert!(!compare("y", DType::F32, &[1.0], &tiny).ok());
        assert!(!compare("y", DType::I8, &[1.0, 2.0], &[1.0, 3.0]).ok());
        assert!(compare_within("y", 1e-2, &[1.001], &[1.0]).ok());
        assert!(!compare_within("y", 1e-4, &[1.001], &[1.0]).ok());
    }
}
