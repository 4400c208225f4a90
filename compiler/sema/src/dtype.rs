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

impl DType {
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
