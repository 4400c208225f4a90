//! Tensor values as the bytes a built library reads and writes: each
//! element in its declared type, little-endian, row-major (the C ABI of
//! `archc build`). Values travel as f64 elsewhere in the runtime; encoding
//! rounds them as the type stores them ([`DType::store`]).

use arch_sema::dtype::DType;

/// Bytes of one stored element.
pub fn element_bytes(d: DType) -> usize {
    (d.bits() as usize).div_ceil(8)
}

/// The bits of `x` in a binary float format with `mantissa` stored bits and
/// `exponent` exponent bits, rounded to nearest even (x is first rounded
/// with [`DType::store`], so the conversion here is exact).
fn float_bits(x: f64, mantissa: u32, exponent: u32) -> u64 {
    let sign = u64::from(x.is_sign_negative());
    let bias = (1i64 << (exponent - 1)) - 1;
    let top = sign << (mantissa + exponent);
    if x.is_nan() {
        return top | (((1u64 << exponent) - 1) << mantissa) | (1 << (mantissa - 1));
    }
    let a = x.abs();
    if a == 0.0 {
        return top;
    }
    if a.is_infinite() {
        return top | (((1u64 << exponent) - 1) << mantissa);
    }
    let e = a.log2().floor() as i64;
    // log2 can be off by one near powers of two.
    let e = if 2f64.powi(e as i32) > a {
        e - 1
    } else if 2f64.powi(e as i32 + 1) <= a {
        e + 1
    } else {
        e
    };
    let min_normal = 1 - bias;
    if e < min_normal {
        let m = (a / 2f64.powi((min_normal - mantissa as i64) as i32)).round() as u64;
        return top | m;
    }
    let m = ((a / 2f64.powi(e as i32) - 1.0) * 2f64.powi(mantissa as i32)).round() as u64;
    top | (((e + bias) as u64) << mantissa) | (m & ((1 << mantissa) - 1))
}

fn float_value(bits: u64, mantissa: u32, exponent: u32) -> f64 {
    let sign = if bits >> (mantissa + exponent) & 1 == 1 {
        -1.0
    } else {
        1.0
    };
    let bias = (1i64 << (exponent - 1)) - 1;
    let e = ((bits >> mantissa) & ((1 << exponent) - 1)) as i64;
    let m = (bits & ((1 << mantissa) - 1)) as f64;
    let scale = 2f64.powi(mantissa as i32);
    if e == 0 {
        sign * m / scale * 2f64.powi((1 - bias) as i32)
    } else if e == (1 << exponent) - 1 && exponent != 4 {
        if m == 0.0 {
            sign * f64::INFINITY
        } else {
            f64::NAN
        }
    } else {
        sign * (1.0 + m / scale) * 2f64.powi((e - bias) as i32)
    }
}

/// `values` stored as `d`, little-endian.
pub fn encode(d: DType, values: &[f64]) -> Vec<u8> {
    let mut out = Vec::with_capacity(values.len() * element_bytes(d));
    for &x in values {
        let x = d.store(x);
        match d {
            DType::F64 => out.extend_from_slice(&x.to_le_bytes()),
            DType::F32 => out.extend_from_slice(&(x as f32).to_le_bytes()),
            DType::F16 => out.extend_from_slice(&(float_bits(x, 10, 5) as u16).to_le_bytes()),
            DType::BF16 => {
                out.extend_from_slice(&(((x as f32).to_bits() >> 16) as u16).to_le_bytes())
            }
            DType::Fp8 => out.push(float_bits(x, 3, 4) as u8),
            DType::I32 => out.extend_from_slice(&(x as i32).to_le_bytes()),
            DType::I16 => out.extend_from_slice(&(x as i16).to_le_bytes()),
            DType::I8 | DType::I4 => out.push(x as i8 as u8),
            DType::U8 | DType::Spike => out.push(x as u8),
        }
    }
    out
}

/// The values of `bytes` stored as `d`.
pub fn decode(d: DType, bytes: &[u8]) -> Vec<f64> {
    let n = element_bytes(d);
    bytes
        .chunks_exact(n)
        .map(|c| {
            let le = |k: usize| -> u64 {
                c[..k]
                    .iter()
                    .rev()
                    .fold(0u64, |acc, b| (acc << 8) | u64::from(*b))
            };
            match d {
                DType::F64 => f64::from_bits(le(8)),
                DType::F32 => f64::from(f32::from_bits(le(4) as u32)),
                DType::F16 => float_value(le(2), 10, 5),
                DType::BF16 => f64::from(f32::from_bits((le(2) as u32) << 16)),
                DType::Fp8 => float_value(le(1), 3, 4),
                DType::I32 => f64::from(le(4) as u32 as i32),
                DType::I16 => f64::from(le(2) as u16 as i16),
                DType::I8 | DType::I4 => f64::from(c[0] as i8),
                DType::U8 | DType::Spike => f64::from(c[0]),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_round_trips_its_stored_values() {
        let xs = [
            0.0, -0.0, 1.0, -2.5, 3.0e-5, 6.0e-8, 1.0e-40, 65504.0, 300.0, 0.1, -7.9,
        ];
        for d in arch_sema::dtype::ALL_DTYPES {
            let stored: Vec<f64> = xs.iter().map(|x| d.store(*x)).collect();
            let back = decode(*d, &encode(*d, &xs));
            assert_eq!(back.len(), xs.len(), "{d:?}");
            for (b, s) in back.iter().zip(&stored) {
                assert!(b == s || (b.is_nan() && s.is_nan()), "{d:?}: {b} != {s}");
            }
        }
    }

    #[test]
    fn known_bit_patterns() {
        assert_eq!(encode(DType::F16, &[1.0]), vec![0x00, 0x3c]);
        assert_eq!(encode(DType::F16, &[-2.0]), vec![0x00, 0xc0]);
        assert_eq!(encode(DType::BF16, &[1.0]), vec![0x80, 0x3f]);
        assert_eq!(encode(DType::Fp8, &[448.0]), vec![0x7e]);
        assert_eq!(encode(DType::I8, &[-1.0]), vec![0xff]);
        assert_eq!(decode(DType::F16, &[0x01, 0x00]), vec![2f64.powi(-24)]);
    }
}
