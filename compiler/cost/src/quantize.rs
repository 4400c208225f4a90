//! Quantization error measured on real weights: a `.safetensors` file's
//! tensors stored in each candidate element type, and the relative error
//! that costs, `||x - q(x)||_2 / ||x||_2`. The precision search uses these
//! numbers instead of its estimate when a weights file is given.
//!
//! Floating-point types round to nearest even (subnormals kept, values
//! beyond the largest finite saturate, as fp8 e4m3 does); integer types use
//! one symmetric scale per tensor (`max |x| / (2^(b-1) - 1)`), `uint8` an
//! affine min/max scale.

use arch_sema::dtype::DType;
use std::collections::BTreeMap;

/// Tensors read from a `.safetensors` file, as f32 values.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Weights {
    /// The file, as the user named it (for messages).
    pub source: String,
    pub tensors: BTreeMap<String, (Vec<u64>, Vec<f32>)>,
}

impl Weights {
    /// Reads a `.safetensors` file: an 8-byte little-endian header length,
    /// a JSON header naming each tensor's dtype, shape and byte range, then
    /// the data. F64, F32, F16 and BF16 tensors are read; others are skipped.
    pub fn read(path: &std::path::Path) -> Result<Weights, String> {
        let bytes =
            std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Weights::parse(&bytes, &path.display().to_string())
    }

    pub fn parse(bytes: &[u8], source: &str) -> Result<Weights, String> {
        let bad = |why: &str| format!("{source} is not a safetensors file: {why}");
        let len = bytes
            .get(..8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
            .ok_or_else(|| bad("shorter than its 8-byte header length"))?;
        let header_end = 8usize
            .checked_add(usize::try_from(len).map_err(|_| bad("header length too large"))?)
            .filter(|e| *e <= bytes.len())
            .ok_or_else(|| bad("the header runs past the end of the file"))?;
        let header: serde_json::Value = serde_json::from_slice(&bytes[8..header_end])
            .map_err(|e| bad(&format!("header is not JSON ({e})")))?;
        let entries = header
            .as_object()
            .ok_or_else(|| bad("header is not an object"))?;
        let data = &bytes[header_end..];
        let mut tensors = BTreeMap::new();
        for (name, info) in entries {
            if name == "__metadata__" {
                continue;
            }
            let dtype = info["dtype"].as_str().unwrap_or_default();
            let shape: Vec<u64> = info["shape"]
                .as_array()
                .map(|a| a.iter().filter_map(|d| d.as_u64()).collect())
                .unwrap_or_default();
            let offsets: Vec<usize> = info["data_offsets"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|d| d.as_u64().map(|x| x as usize))
                        .collect()
                })
                .unwrap_or_default();
            let [begin, end] = offsets[..] else {
                return Err(bad(&format!("`{name}` has no data_offsets")));
            };
            let raw = data
                .get(begin..end)
                .filter(|_| begin <= end)
                .ok_or_else(|| bad(&format!("`{name}`'s data lies outside the file")))?;
            let values: Vec<f32> = match dtype {
                "F32" => raw
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
                "F64" => raw
                    .chunks_exact(8)
                    .map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])) as f32)
                    .collect(),
                "BF16" => raw
                    .chunks_exact(2)
                    .map(|c| f32::from_bits((u16::from_le_bytes([c[0], c[1]]) as u32) << 16))
                    .collect(),
                "F16" => raw
                    .chunks_exact(2)
                    .map(|c| f16_to_f32(u16::from_le_bytes([c[0], c[1]])))
                    .collect(),
                _ => continue,
            };
            let elements = shape.iter().try_fold(1u64, |a, d| a.checked_mul(*d));
            if elements != Some(values.len() as u64) {
                return Err(bad(&format!(
                    "`{name}` has {} values for shape {shape:?}",
                    values.len()
                )));
            }
            tensors.insert(name.clone(), (shape, values));
        }
        Ok(Weights {
            source: source.to_string(),
            tensors,
        })
    }
}

fn f16_to_f32(h: u16) -> f32 {
    let sign = if h & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exp = ((h >> 10) & 0x1f) as i32;
    let mant = (h & 0x3ff) as f32;
    sign * match exp {
        0 => mant * 2f32.powi(-24),
        31 if mant == 0.0 => f32::INFINITY,
        31 => f32::NAN,
        _ => (1.0 + mant / 1024.0) * 2f32.powi(exp - 15),
    }
}

/// Relative error `||x - q(x)|| / ||x||` of storing `values` in `d`
/// (`None` for types weights are not stored in, such as `spike`).
pub fn relative_error(values: &[f32], d: DType) -> Option<f64> {
    let max_abs = values.iter().fold(0f64, |m, v| m.max((*v as f64).abs()));
    let (lo, hi) = values
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| {
            (l.min(*v as f64), h.max(*v as f64))
        });
    let symmetric = |levels: f64| {
        let scale = if max_abs > 0.0 { max_abs / levels } else { 1.0 };
        move |x: f64| (x / scale).round().clamp(-levels, levels) * scale
    };
    let q: Box<dyn Fn(f64) -> f64> = match d {
        DType::F64 | DType::F32 | DType::F16 | DType::BF16 | DType::Fp8 => {
            Box::new(move |x| d.store(x))
        }
        DType::I32 => Box::new(symmetric(2_147_483_647.0)),
        DType::I16 => Box::new(symmetric(32767.0)),
        DType::I8 => Box::new(symmetric(127.0)),
        DType::I4 => Box::new(symmetric(7.0)),
        DType::U8 => {
            let scale = if hi > lo { (hi - lo) / 255.0 } else { 1.0 };
            Box::new(move |x| ((x - lo) / scale).round().clamp(0.0, 255.0) * scale + lo)
        }
        DType::Spike => return None,
    };
    let (mut err, mut norm) = (0f64, 0f64);
    for v in values {
        let x = *v as f64;
        let e = x - q(x);
        err += e * e;
        norm += x * x;
    }
    Some(if norm > 0.0 { (err / norm).sqrt() } else { 0.0 })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A safetensors file holding `tensors` as F32.
    pub fn file(tensors: &[(&str, Vec<u64>, Vec<f32>)]) -> Vec<u8> {
        let mut header = serde_json::Map::new();
        let mut data = Vec::new();
        for (name, shape, values) in tensors {
            let begin = data.len();
            for v in values {
                data.extend_from_slice(&v.to_le_bytes());
            }
            header.insert(
                name.to_string(),
                serde_json::json!({"dtype": "F32", "shape": shape, "data_offsets": [begin, data.len()]}),
            );
        }
        let header = serde_json::to_vec(&header).unwrap_or_default();
        let mut out = (header.len() as u64).to_le_bytes().to_vec();
        out.extend(header);
        out.extend(data);
        out
    }

    #[test]
    fn reads_what_it_wrote() {
        let bytes = file(&[("w", vec![2, 2], vec![1.0, -2.0, 0.5, 3.0])]);
        let w = Weights::parse(&bytes, "t.safetensors").expect("parse");
        assert_eq!(w.tensors["w"], (vec![2, 2], vec![1.0, -2.0, 0.5, 3.0]));
        assert!(Weights::parse(&bytes[..10], "t").is_err());
        assert!(Weights::parse(b"\x02\0\0\0\0\0\0\0{}", "t").is_ok());
        assert!(Weights::parse(b"\xff\0\0\0\0\0\0\0{}", "t").is_err());
        // A shape whose product overflows is an error, not a panic.
        let huge = br#"{"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,0]}}"#;
        let mut bytes = (huge.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(huge);
        assert!(Weights::parse(&bytes, "t").is_err());
    }

    #[test]
    fn hostile_files_are_errors_not_panics() {
        // Every prefix and many one-byte mutations of a valid file, and
        // random bytes: parse returns (Ok or Err) every time.
        let good = file(&[
            ("w", vec![2, 3], vec![1.0; 6]),
            ("b", vec![3], vec![0.5; 3]),
        ]);
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for end in 0..good.len() {
            let _ = Weights::parse(&good[..end], "t");
        }
        for _ in 0..5000 {
            let mut bytes = good.clone();
            let i = next() as usize % bytes.len();
            bytes[i] = next() as u8;
            let _ = Weights::parse(&bytes, "t");
            let random: Vec<u8> = (0..next() % 64).map(|_| next() as u8).collect();
            let _ = Weights::parse(&random, "t");
        }
    }

    #[test]
    fn errors_by_hand() {
        // Exactly representable in every float type: no error.
        let exact = [1.0, -0.5, 0.25, 2.0];
        for d in [DType::F32, DType::F16, DType::BF16, DType::Fp8] {
            assert_eq!(relative_error(&exact, d), Some(0.0), "{d:?}");
        }
        // int8 with scale 2/127: 1.0 -> round(63.5) = 64 -> 1.00787...
        let e = relative_error(&[2.0, 1.0], DType::I8).expect("int8");
        let q1 = 64.0 * 2.0 / 127.0;
        let expected = ((1.0f64 - q1).powi(2) / 5.0).sqrt();
        assert!((e - expected).abs() < 1e-12, "{e} vs {expected}");
        // bf16 keeps 8 significant bits: 1 + 2^-9 rounds to 1 (ties to even).
        let e = relative_error(&[1.0 + 2f32.powi(-9)], DType::BF16).expect("bf16");
        assert!((e - 2f64.powi(-9) / (1.0 + 2f64.powi(-9))).abs() < 1e-12);
        // fp8 e4m3 saturates at 448.
        let e = relative_error(&[1000.0], DType::Fp8).expect("fp8");
        assert!((e - 0.552).abs() < 1e-12);
        assert_eq!(relative_error(&[1.0], DType::Spike), None);
    }
}
