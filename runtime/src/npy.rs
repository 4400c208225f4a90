//! `.npy` files (NumPy's format, versions 1 to 3): C-order arrays of
//! little-endian floats and integers, read into f64 values with their shape,
//! and written back. Enough for `archc run --inputs DIR` and its outputs.

use arch_sema::dtype::DType;

#[derive(Debug, Clone, PartialEq)]
pub struct Array {
    pub shape: Vec<u64>,
    pub values: Vec<f64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NpyError(pub String);

impl std::fmt::Display for NpyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NpyError {}

fn err<T>(m: impl Into<String>) -> Result<T, NpyError> {
    Err(NpyError(m.into()))
}

/// The value of `key` in the header's Python dict literal.
fn field<'h>(header: &'h str, key: &str) -> Option<&'h str> {
    let at = header.find(&format!("'{key}'"))? + key.len() + 2;
    let rest = header[at..].trim_start().strip_prefix(':')?.trim_start();
    let end = if rest.starts_with('(') {
        rest.find(')')? + 1
    } else if let Some(r) = rest.strip_prefix('\'') {
        r.find('\'')? + 2
    } else {
        rest.find([',', '}']).unwrap_or(rest.len())
    };
    Some(rest[..end].trim())
}

/// Parses a `.npy` file.
pub fn read(bytes: &[u8]) -> Result<Array, NpyError> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return err("not a .npy file (no \\x93NUMPY magic)");
    }
    let (header_len, start): (usize, usize) = match bytes[6] {
        1 => (usize::from(u16::from_le_bytes([bytes[8], bytes[9]])), 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => return err(format!(".npy version {v} is not supported")),
    };
    let header = bytes
        .get(start..start.saturating_add(header_len))
        .ok_or_else(|| NpyError("the .npy header is cut short".into()))?;
    let header = std::str::from_utf8(header).map_err(|_| NpyError("header is not text".into()))?;
    let descr = field(header, "descr").ok_or_else(|| NpyError("no 'descr' in header".into()))?;
    if field(header, "fortran_order") != Some("False") {
        return err("only C-order (fortran_order: False) arrays are read");
    }
    let shape_text =
        field(header, "shape").ok_or_else(|| NpyError("no 'shape' in header".into()))?;
    let shape: Vec<u64> = shape_text
        .trim_matches(|c| c == '(' || c == ')')
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<u64>()
                .map_err(|_| NpyError(format!("bad shape {shape_text}")))
        })
        .collect::<Result<_, _>>()?;
    let count = shape
        .iter()
        .try_fold(1u64, |a, d| a.checked_mul(*d))
        .ok_or_else(|| NpyError("shape overflows".into()))?;
    let descr = descr.trim_matches('\'');
    let (dtype, size): (DType, usize) = match descr {
        "<f8" => (DType::F64, 8),
        "<f4" => (DType::F32, 4),
        "<f2" => (DType::F16, 2),
        "<i4" => (DType::I32, 4),
        "<i2" => (DType::I16, 2),
        "|i1" => (DType::I8, 1),
        "|u1" => (DType::U8, 1),
        "|b1" => (DType::U8, 1),
        other => {
            return err(format!(
                "element type {other} is not read (f8, f4, f2, i4, i2, i1, u1)"
            ))
        }
    };
    let data = &bytes[start + header_len..];
    let need = usize::try_from(count)
        .ok()
        .and_then(|c| c.checked_mul(size))
        .ok_or_else(|| NpyError("array too large".into()))?;
    if data.len() < need {
        return err(format!(
            "the array needs {need} bytes of data, the file has {}",
            data.len()
        ));
    }
    Ok(Array {
        shape,
        values: crate::elements::decode(dtype, &data[..need]),
    })
}

/// A `.npy` (version 1) file of `values` with `shape`, as f64 or f32.
pub fn write(shape: &[u64], values: &[f64], f32_values: bool) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(u64::to_string).collect();
    let shape_text = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let descr = if f32_values { "<f4" } else { "<f8" };
    let mut header =
        format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape_text}, }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    let d = if f32_values { DType::F32 } else { DType::F64 };
    out.extend_from_slice(&crate::elements::encode(d, values));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_hostile_input() {
        let bytes = write(&[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.5], true);
        let a = read(&bytes).expect("reads");
        assert_eq!(a.shape, vec![2, 3]);
        assert_eq!(a.values, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.5]);
        let v = read(&write(&[4], &[0.5; 4], false)).expect("1-d");
        assert_eq!(v.shape, vec![4]);
        for cut in 0..bytes.len() - 1 {
            assert!(read(&bytes[..cut]).is_err(), "prefix {cut} read");
        }
        let mut huge = bytes.clone();
        let text = String::from_utf8_lossy(&huge).replace("(2, 3)", "(99999999999, 99999999999)");
        huge = text.into_bytes();
        assert!(read(&huge).is_err());
    }
}
