//! N:M structured sparsity and density: what a pruned weight changes.
//!
//! Bytes: a sparse tensor is stored compressed
//! ([`arch_sema::model::Tensor::stored_fraction`]), so every model moves
//! fewer bytes of it and tiles of it take less room. Work: only a compute
//! unit that declares the pattern it skips (`sparse 2:4`, as sparse tensor
//! cores do) runs a contraction with a pruned weight at N/M of the dense
//! work; other units decompress and do the dense work.

use crate::gemm::GemmView;
use arch_sema::model::NmSparsity;

/// The fraction of the dense work a contraction costs when its weight has
/// `pattern` and the unit skips zeros of `unit` (both `(n, m)`). The unit's
/// groups must hold no more non-zeros than it skips: every group of `M_u`
/// inside a group of `M` (M a multiple of `M_u`) has at most `min(N, M_u)`
/// of them, which must not exceed `N_u`.
pub fn work_fraction(pattern: Option<(u32, u32)>, unit: Option<(u32, u32)>) -> f64 {
    match (pattern, unit) {
        (Some((n, m)), Some((nu, mu))) if m % mu == 0 && n.min(mu) <= nu => nu as f64 / mu as f64,
        _ => 1.0,
    }
}

/// The work fraction of a contraction seen as a GEMM on a unit.
pub fn gemm_work_fraction(g: &GemmView, unit: Option<(u32, u32)>) -> f64 {
    work_fraction(g.b_sparsity.map(|s: NmSparsity| (s.n, s.m)), unit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_patterns_the_unit_skips_save_work() {
        // 2:4 weights on a 2:4 unit: half the work.
        assert_eq!(work_fraction(Some((2, 4)), Some((2, 4))), 0.5);
        // 1:4 is also at most 2 of every 4: still half (the unit skips no more).
        assert_eq!(work_fraction(Some((1, 4)), Some((2, 4))), 0.5);
        // 2:8 has at most 2 non-zeros in any aligned 4: half.
        assert_eq!(work_fraction(Some((2, 8)), Some((2, 4))), 0.5);
        // 4:8 may put 3 or 4 in one group of 4: dense work.
        assert_eq!(work_fraction(Some((4, 8)), Some((2, 4))), 1.0);
        // 2:6 groups do not align with groups of 4.
        assert_eq!(work_fraction(Some((2, 6)), Some((2, 4))), 1.0);
        // No support, or a dense weight: dense work.
        assert_eq!(work_fraction(Some((2, 4)), None), 1.0);
        assert_eq!(work_fraction(None, Some((2, 4))), 1.0);
    }
}
