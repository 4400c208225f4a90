//! Element types and the widening rules between them.

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DType {
    F64,
    F32,
    F16,
    BF16,
    Fp8,
    I32,
    I16,
    I8,
    U8,
    I4,
    Spike,
}

pub const ALL_DTYPES: &[DType] = &[
    DType::F64,
    DType::F32,
    DType::F16,
    DType::BF16,
    DType::Fp8,
    DType::I32,
    DType::I16,
    DType::I8,
    DType::U8,
    DType::I4,
    DType::Spike,
];

/// `x` rounded to nearest even in a binary float format with `mantissa`
/// stored bits, `min_exp` the exponent of its smallest normal number, and
/// `max` its largest finite value (larger magnitudes saturate).
pub fn round_float(x: f64, mantissa: i32, min_exp: i32, max: f64) -> f64 {
    let a = x.abs();
    if a == 0.0 || !a.is_finite() {
        return x;
    }
    let e = (a.log2().floor() as i32).max(min_exp);
    let step = 2f64.powi(e - mantissa);
    let q = ((a / step).round_ties_even() * step).min(max);
    q.copysign(x)
}

impl DType {
    /// The value a tensor of this type stores for `x`: floats round to
    /// nearest even (fp8 is e4m3 and saturates at 448), integers round to
    /// nearest and saturate to their range, a spike is 1 for any non-zero.
    pub fn store(self, x: f64) -> f64 {
        let int = |lo: f64, hi: f64| {
            if x.is_nan() {
                0.0
            } else {
                x.round().clamp(lo, hi)
            }
        };
        match self {
            DType::F64 => x,
            DType::F32 => x as f32 as f64,
            DType::F16 => round_float(x, 10, -14, 65504.0),
            DType::BF16 => round_float(x, 7, -126, 3.389_531_389_251_535e38),
            DType::Fp8 => round_float(x, 3, -6, 448.0),
            DType::I32 => int(i32::MIN as f64, i32::MAX as f64),
            DType::I16 => int(i16::MIN as f64, i16::MAX as f64),
            DType::I8 => int(-128.0, 127.0),
            DType::U8 => int(0.0, 255.0),
            DType::I4 => int(-8.0, 7.0),
            DType::Spike => {
                if x != 0.0 && !x.is_nan() {
                    1.0
                } else {
                    0.0
                }
            }
        }
    }

    pub fn from_name(name: &str) -> Option<DType> {
        ALL_DTYPES.iter().copied().find(|d| d.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            DType::F64 => "f64",
            DType::F32 => "f32",
            DType::F16 => "f16",
            DType::BF16 => "bf16",
            DType::Fp8 => "fp8",
            DType::I32 => "int32",
            DType::I16 => "int16",
            DType::I8 => "int8",
            DType::U8 => "uint8",
            DType::I4 => "int4",
            DType::Spike => "spike",
        }
    }

    /// Storage size in bits (a spike is one bit).
    pub fn bits(self) -> u64 {
        match self {
            DType::F64 => 64,
            DType::F32 | DType::I32 => 32,
            DType::F16 | DType::BF16 | DType::I16 => 16,
            DType::Fp8 | DType::I8 | DType::U8 => 8,
            DType::I4 => 4,
            DType::Spike => 1,
        }
    }

    pub fn is_float(self) -> bool {
        matches!(
            self,
            DType::F64 | DType::F32 | DType::F16 | DType::BF16 | DType::Fp8
        )
    }

    /// Whether every value of `self` is exactly a value of `to`.
    pub fn widens_to(self, to: DType) -> bool {
        use DType::*;
        if self == to || self == Spike {
            return true;
        }
        matches!(
            (self, to),
            (F32 | I32, F64)
                | (F16, F32 | F64)
                | (BF16, F32 | F64)
                | (Fp8, F16 | BF16 | F32 | F64)
                | (I16, I32 | F32 | F64)
                | (I8, I16 | I32 | F16 | BF16 | F32 | F64)
                | (U8, I16 | I32 | F16 | BF16 | F32 | F64)
                | (I4, I8 | I16 | I32 | F16 | BF16 | F32 | F64)
        )
    }

    /// The type of `a op b`: the narrower one widened to the wider one.
    /// `None` when neither widens to the other (`int8` and `f16`... do; `f16`
    /// and `bf16` do not).
    pub fn join(a: DType, b: DType) -> Option<DType> {
        if a.widens_to(b) {
            Some(b)
        } else if b.widens_to(a) {
            Some(a)
        } else {
            None
        }
    }

    /// Products of narrow integers accumulate in int32, as every integer
    /// datapath does.
    pub fn accumulator(self) -> DType {
        match self {
            DType::I4 | DType::I8 | DType::U8 | DType::I16 => DType::I32,
            DType::Spike => DType::I32,
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_widens() {
        assert_eq!(DType::join(DType::BF16, DType::F32), Some(DType::F32));
        assert_eq!(DType::join(DType::F16, DType::BF16), None);
        assert_eq!(DType::join(DType::Spike, DType::I8), Some(DType::I8));
        assert!(!DType::F32.widens_to(DType::F16));
    }
}
