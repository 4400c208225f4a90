//! Physical units. A quantity is a value in base units (s, B, J, op, cycle)
//! and a dimension; a mismatch of dimensions is a diagnostic, never a silent
//! conversion.

/// Exponents of the base dimensions: time, bytes, energy, work (flop or op),
/// cycles. `[0; 5]` is a plain count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Dim(pub [i8; 5]);

impl Dim {
    pub const COUNT: Dim = Dim([0, 0, 0, 0, 0]);
    pub const TIME: Dim = Dim([1, 0, 0, 0, 0]);
    pub const FREQUENCY: Dim = Dim([-1, 0, 0, 0, 0]);
    pub const BYTES: Dim = Dim([0, 1, 0, 0, 0]);
    pub const BANDWIDTH: Dim = Dim([-1, 1, 0, 0, 0]);
    pub const ENERGY: Dim = Dim([0, 0, 1, 0, 0]);
    pub const ENERGY_PER_BYTE: Dim = Dim([0, -1, 1, 0, 0]);
    pub const ENERGY_PER_OP: Dim = Dim([0, 0, 1, -1, 0]);
    pub const WORK_PER_CYCLE: Dim = Dim([0, 0, 0, 1, -1]);
    pub const POWER: Dim = Dim([-1, 0, 1, 0, 0]);
    pub const WORK: Dim = Dim([0, 0, 0, 1, 0]);
    pub const CYCLES: Dim = Dim([0, 0, 0, 0, 1]);

    pub fn times(self, other: Dim) -> Dim {
        let mut out = [0i8; 5];
        for (i, o) in out.iter_mut().enumerate() {
            *o = self.0[i].saturating_add(other.0[i]);
        }
        Dim(out)
    }

    pub fn per(self, other: Dim) -> Dim {
        let mut out = [0i8; 5];
        for (i, o) in out.iter_mut().enumerate() {
            *o = self.0[i].saturating_sub(other.0[i]);
        }
        Dim(out)
    }

    /// What a user calls this dimension, with an example unit.
    pub fn describe(self) -> String {
        let named = [
            (Dim::COUNT, "a plain number"),
            (Dim::TIME, "a time (e.g. `4 ns`)"),
            (Dim::FREQUENCY, "a frequency (e.g. `1.8 GHz`)"),
            (Dim::BYTES, "a size (e.g. `48 KiB`)"),
            (Dim::BANDWIDTH, "a bandwidth (e.g. `20 GB/s`)"),
            (Dim::ENERGY, "an energy (e.g. `35.5 pJ`)"),
            (Dim::ENERGY_PER_BYTE, "an energy per byte (e.g. `20 pJ/B`)"),
            (
                Dim::ENERGY_PER_OP,
                "an energy per operation (e.g. `0.5 pJ/flop`)",
            ),
            (Dim::WORK_PER_CYCLE, "a throughput (e.g. `64 flop/cycle`)"),
            (Dim::POWER, "a power (e.g. `300 W`)"),
            (Dim::WORK, "an amount of work (e.g. `1 Gflop`)"),
            (Dim::CYCLES, "a number of cycles"),
        ];
        for (dim, name) in named {
            if dim == self {
                return name.to_string();
            }
        }
        let names = ["s", "B", "J", "op", "cycle"];
        let mut parts = Vec::new();
        for (i, e) in self.0.iter().enumerate() {
            if *e != 0 {
                parts.push(if *e == 1 {
                    names[i].to_string()
                } else {
                    format!("{}^{}", names[i], e)
                });
            }
        }
        format!("a quantity in {}", parts.join("·"))
    }
}

/// `(name, scale to base units, dimension)`.
const UNITS: &[(&str, f64, Dim)] = &[
    ("s", 1.0, Dim::TIME),
    ("ms", 1e-3, Dim::TIME),
    ("us", 1e-6, Dim::TIME),
    ("ns", 1e-9, Dim::TIME),
    ("ps", 1e-12, Dim::TIME),
    ("Hz", 1.0, Dim::FREQUENCY),
    ("kHz", 1e3, Dim::FREQUENCY),
    ("MHz", 1e6, Dim::FREQUENCY),
    ("GHz", 1e9, Dim::FREQUENCY),
    ("B", 1.0, Dim::BYTES),
    ("KB", 1e3, Dim::BYTES),
    ("MB", 1e6, Dim::BYTES),
    ("GB", 1e9, Dim::BYTES),
    ("TB", 1e12, Dim::BYTES),
    ("KiB", 1024.0, Dim::BYTES),
    ("MiB", 1048576.0, Dim::BYTES),
    ("GiB", 1073741824.0, Dim::BYTES),
    ("TiB", 1099511627776.0, Dim::BYTES),
    ("bit", 0.125, Dim::BYTES),
    ("J", 1.0, Dim::ENERGY),
    ("mJ", 1e-3, Dim::ENERGY),
    ("uJ", 1e-6, Dim::ENERGY),
    ("nJ", 1e-9, Dim::ENERGY),
    ("pJ", 1e-12, Dim::ENERGY),
    ("fJ", 1e-15, Dim::ENERGY),
    ("W", 1.0, Dim::POWER),
    ("mW", 1e-3, Dim::POWER),
    ("uW", 1e-6, Dim::POWER),
    ("flop", 1.0, Dim::WORK),
    ("Gflop", 1e9, Dim::WORK),
    ("Tflop", 1e12, Dim::WORK),
    ("op", 1.0, Dim::WORK),
    ("Gop", 1e9, Dim::WORK),
    ("Top", 1e12, Dim::WORK),
    ("cycle", 1.0, Dim::CYCLES),
];

/// Every unit name, for "did you mean" help.
pub fn unit_names() -> impl Iterator<Item = &'static str> {
    UNITS.iter().map(|(n, _, _)| *n)
}

fn base_unit(name: &str) -> Option<(f64, Dim)> {
    UNITS
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, s, d)| (*s, *d))
}

/// Reads a written unit such as `GB/s` or `pJ/B`. On failure returns the
/// part that is not a unit.
pub fn parse_unit(text: &str) -> Result<(f64, Dim), String> {
    let mut parts = text.split('/');
    let first = parts.next().unwrap_or_default();
    let (mut scale, mut dim) = base_unit(first).ok_or_else(|| first.to_string())?;
    for part in parts {
        let (s, d) = base_unit(part).ok_or_else(|| part.to_string())?;
        scale /= s;
        dim = dim.per(d);
    }
    Ok((scale, dim))
}

/// Writes a value in base units with a readable prefix, e.g. `2 MiB`, `4.1 ns`.
pub fn format_quantity(value: f64, dim: Dim) -> String {
    let (unit, steps): (&str, &[(f64, &str)]) = match dim {
        d if d == Dim::BYTES => (
            "B",
            &[
                (1099511627776.0, "TiB"),
                (1073741824.0, "GiB"),
                (1048576.0, "MiB"),
                (1024.0, "KiB"),
            ],
        ),
        d if d == Dim::TIME => (
            "s",
            &[
                (1.0, "s"),
                (1e-3, "ms"),
                (1e-6, "us"),
                (1e-9, "ns"),
                (1e-12, "ps"),
            ],
        ),
        d if d == Dim::FREQUENCY => ("Hz", &[(1e9, "GHz"), (1e6, "MHz"), (1e3, "kHz")]),
        d if d == Dim::BANDWIDTH => ("B/s", &[(1e12, "TB/s"), (1e9, "GB/s"), (1e6, "MB/s")]),
        d if d == Dim::ENERGY => (
            "J",
            &[
                (1.0, "J"),
                (1e-3, "mJ"),
                (1e-6, "uJ"),
                (1e-9, "nJ"),
                (1e-12, "pJ"),
                (1e-15, "fJ"),
            ],
        ),
        _ => ("", &[]),
    };
    for (scale, name) in steps {
        if value.abs() >= *scale {
            return format!("{} {}", trim_float(value / scale), name);
        }
    }
    if unit.is_empty() {
        trim_float(value)
    } else {
        format!("{} {}", trim_float(value), unit)
    }
}

fn trim_float(v: f64) -> String {
    // About four significant digits.
    let s = if v.abs() >= 100.0 {
        format!("{:.1}", v)
    } else if v.abs() >= 10.0 {
        format!("{:.2}", v)
    } else {
        format!("{:.3}", v)
    };
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compound_units() {
        let (s, d) = parse_unit("GB/s").expect("unit");
        assert_eq!(d, Dim::BANDWIDTH);
        assert!((s - 1e9).abs() < 1e-3);
        let (s, d) = parse_unit("pJ/B").expect("unit");
        assert_eq!(d, Dim::ENERGY_PER_BYTE);
        assert!((s - 1e-12).abs() < 1e-24);
        assert_eq!(
            parse_unit("flop/cycle").expect("unit").1,
            Dim::WORK_PER_CYCLE
        );
        assert_eq!(parse_unit("GB/fortnight"), Err("fortnight".to_string()));
    }

    #[test]
    fn formatting_picks_a_prefix() {
        assert_eq!(format_quantity(2.0 * 1048576.0, Dim::BYTES), "2 MiB");
        assert_eq!(format_quantity(4.1e-9, Dim::TIME), "4.1 ns");
        assert_eq!(format_quantity(300.0, Dim::BYTES), "300 B");
    }
}
