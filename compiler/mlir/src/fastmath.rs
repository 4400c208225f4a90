//! exp, tanh, erf and sigmoid on f32 (scalars or vectors) as straight-line
//! arithmetic: range reduction, a polynomial, and exponent bits put in
//! place. LLVM has no vector `expf` on x86 without a vector math library, so
//! `math.exp` on a vector becomes one libm call per lane; written out as
//! arithmetic the same code vectorizes with everything around it (linalg
//! bodies and the packed kernel's epilogues).
//!
//! Accuracy (f32): exp within about 2 ulp (Cephes' two-part range
//! reduction, a degree-6 minimax polynomial; 0 below -86, infinity above
//! ln of f32's largest value); tanh and erf within about 2e-7 absolute
//! (erf: Abramowitz & Stegun 7.1.26, 1.5e-7, with the Maclaurin series
//! below 0.5 where the relative error matters). A NaN passes through every
//! step of each (NaN-propagating clamps, compares that are false on NaN),
//! so no extra select keeps it. Other element types keep the math dialect.

/// 2 e^r for |r| <= ln2 / 2, highest power first: twice a degree-6
/// minimax polynomial for e^r (weighted least squares iterated to equal
/// ripple, fitted for this module; relative error 1.9e-9, 1.7e-8 with the
/// coefficients rounded to f32).
const EXP_TIMES_TWO: [f64; 7] = [
    0.002_767_369_6,
    0.016_749_632,
    0.083_336_45,
    0.333_328_4,
    0.999_999_8,
    2.0,
    2.0,
];

/// Emits MLIR lines on values of one type.
struct Emitter<'a> {
    ty: &'a str,
    int_ty: String,
    lines: Vec<String>,
    fresh: &'a mut dyn FnMut(&str) -> String,
}

impl Emitter<'_> {
    fn constant(&mut self, v: f64) -> String {
        let name = (self.fresh)("fmc");
        let value = format!("{v:.10e}");
        let literal = if self.ty.starts_with("vector") {
            format!("dense<{value}> : {}", self.ty)
        } else {
            format!("{value} : {}", self.ty)
        };
        self.lines
            .push(format!("{name} = arith.constant {literal}"));
        name
    }

    fn int_constant(&mut self, v: i64) -> String {
        let name = (self.fresh)("fmc");
        let literal = if self.ty.starts_with("vector") {
            format!("dense<{v}> : {}", self.int_ty)
        } else {
            format!("{v} : {}", self.int_ty)
        };
        self.lines
            .push(format!("{name} = arith.constant {literal}"));
        name
    }

    /// `result = op a, b` (or `op a` for one operand) on the float type.
    fn op(&mut self, op: &str, args: &[&str]) -> String {
        let name = (self.fresh)("fmv");
        self.lines
            .push(format!("{name} = {op} {} : {}", args.join(", "), self.ty));
        name
    }

    fn mul_add(&mut self, a: &str, b: &str, c: &str) -> String {
        let name = (self.fresh)("fmv");
        self.lines
            .push(format!("{name} = math.fma {a}, {b}, {c} : {}", self.ty));
        name
    }

    /// Horner's rule: coefficients from the highest power down.
    fn poly(&mut self, x: &str, coefficients: &[f64]) -> String {
        let mut acc = self.constant(coefficients[0]);
        for c in &coefficients[1..] {
            let c = self.constant(*c);
            acc = self.mul_add(&acc, x, &c);
        }
        acc
    }

    fn select_if_less(&mut self, a: &str, b: &str, then: &str, otherwise: &str) -> String {
        let less = (self.fresh)("fmv");
        self.lines
            .push(format!("{less} = arith.cmpf olt, {a}, {b} : {}", self.ty));
        let name = (self.fresh)("fmv");
        self.lines.push(format!(
            "{name} = arith.select {less}, {then}, {otherwise} : {}, {}",
            self.ty.replace("f32", "i1"),
            self.ty
        ));
        name
    }

    /// e^x without the NaN check. Below -86 the result is 0: e^-86 is
    /// near the smallest normal f32, and denormal results would slow every
    /// operation that reads them by two orders of magnitude.
    ///
    /// n = round(x / ln 2) comes from adding 1.5 * 2^23 (the sum's low
    /// mantissa bits are n itself), so one shift puts 2^(n-1) in place; the
    /// polynomial returns 2 e^r, so that n = 128 (x up to ln of f32's
    /// largest value) needs no exponent above 254. A NaN passes through
    /// every step (the clamp is NaN-propagating and the zero select
    /// compares false). Above 89 the clamp keeps n at 128: the product
    /// overflows to infinity as it should.
    fn exp(&mut self, x: &str) -> String {
        let (lo, hi) = (self.constant(-86.0), self.constant(89.0));
        let clamped = self.op("arith.minimumf", &[x, &hi]);
        // t = x / ln 2 + 1.5 * 2^23 + 126, rounded to an integer by the add.
        let (log2e, magic) = (
            self.constant(std::f64::consts::LOG2_E),
            self.constant(12_582_912.0 + 126.0),
        );
        let t = self.mul_add(&clamped, &log2e, &magic);
        let n = self.op("arith.subf", &[&t, &magic]);
        // r = x - n ln 2 in two parts (Cephes' constants: the first has few
        // bits, so n times it is exact).
        let (c1, c2) = (self.constant(-0.693_359_375), self.constant(2.121_944_4e-4));
        let r = self.mul_add(&n, &c1, &clamped);
        let r = self.mul_add(&n, &c2, &r);
        // 2 e^r on [-ln2/2, ln2/2]: a degree-6 minimax fit of e^r (relative
        // error 2e-9 before the coefficients are rounded to f32), doubled.
        let y = self.poly(&r, &EXP_TIMES_TWO);
        // 2^(n-1): the integer in t's low bits, shifted into the exponent.
        let bits = (self.fresh)("fmv");
        self.lines.push(format!(
            "{bits} = arith.bitcast {t} : {} to {}",
            self.ty, self.int_ty
        ));
        let shift = self.int_constant(23);
        let shifted = (self.fresh)("fmv");
        self.lines.push(format!(
            "{shifted} = arith.shli {bits}, {shift} : {}",
            self.int_ty
        ));
        let scale = (self.fresh)("fmv");
        self.lines.push(format!(
            "{scale} = arith.bitcast {shifted} : {} to {}",
            self.int_ty, self.ty
        ));
        let value = self.op("arith.mulf", &[&y, &scale]);
        let zero = self.constant(0.0);
        self.select_if_less(x, &lo, &zero, &value)
    }

    fn tanh(&mut self, x: &str) -> String {
        // tanh|x| = (1 - e^-2|x|) / (1 + e^-2|x|); x - x^3/3 + 2x^5/15
        // below 0.1, where the quotient loses digits.
        let a = self.op("math.absf", &[x]);
        let m2 = self.constant(-2.0);
        let t = self.op("arith.mulf", &[&a, &m2]);
        let e = self.exp(&t);
        let one = self.constant(1.0);
        let num = self.op("arith.subf", &[&one, &e]);
        let den = self.op("arith.addf", &[&one, &e]);
        let large = self.op("arith.divf", &[&num, &den]);
        let a2 = self.op("arith.mulf", &[&a, &a]);
        let p = self.poly(&a2, &[2.0 / 15.0, -1.0 / 3.0, 1.0]);
        let small = self.op("arith.mulf", &[&p, &a]);
        let limit = self.constant(0.1);
        let magnitude = self.select_if_less(&a, &limit, &small, &large);
        self.op("math.copysign", &[&magnitude, x])
    }

    fn erf(&mut self, x: &str) -> String {
        let a = self.op("math.absf", &[x]);
        // A&S 7.1.26: 1 - t (a1 + t (a2 + ...)) e^-x^2, t = 1 / (1 + p x).
        let (one, p) = (self.constant(1.0), self.constant(0.327_591_1));
        let d = self.mul_add(&a, &p, &one);
        let t = self.op("arith.divf", &[&one, &d]);
        let q = self.poly(
            &t,
            &[
                1.061_405_429,
                -1.453_152_027,
                1.421_413_741,
                -0.284_496_736,
                0.254_829_592,
            ],
        );
        let q = self.op("arith.mulf", &[&q, &t]);
        let a2 = self.op("arith.mulf", &[&a, &a]);
        let na2 = self.op("arith.negf", &[&a2]);
        let e = self.exp(&na2);
        let qe = self.op("arith.mulf", &[&q, &e]);
        let large = self.op("arith.subf", &[&one, &qe]);
        // 2/sqrt(pi) (x - x^3/3 + x^5/10 - x^7/42 + x^9/216 - x^11/1320)
        // below 0.5 (the next term is under 1.5e-8 there).
        let k = std::f64::consts::FRAC_2_SQRT_PI;
        let s = self.poly(
            &a2,
            &[-k / 1320.0, k / 216.0, -k / 42.0, k / 10.0, -k / 3.0, k],
        );
        let small = self.op("arith.mulf", &[&s, &a]);
        let limit = self.constant(0.5);
        let magnitude = self.select_if_less(&a, &limit, &small, &large);
        self.op("math.copysign", &[&magnitude, x])
    }
}

/// The lines computing `func` (`exp`, `tanh`, `erf`, `sigmoid`) of `x`
/// into `result` on `ty` (`f32` or `vector<...xf32>`); None for other
/// functions or types.
pub fn expand(
    func: &str,
    result: &str,
    x: &str,
    ty: &str,
    fresh: &mut dyn FnMut(&str) -> String,
) -> Option<Vec<String>> {
    if !(ty == "f32" || (ty.starts_with("vector<") && ty.ends_with("xf32>"))) {
        return None;
    }
    let mut e = Emitter {
        ty,
        int_ty: ty.replace("f32", "i32"),
        lines: Vec::new(),
        fresh,
    };
    let value = match func {
        "exp" => e.exp(x),
        "tanh" => e.tanh(x),
        "erf" => e.erf(x),
        "sigmoid" => {
            let n = e.op("arith.negf", &[x]);
            let y = e.exp(&n);
            let one = e.constant(1.0);
            let d = e.op("arith.addf", &[&one, &y]);
            e.op("arith.divf", &[&one, &d])
        }
        _ => return None,
    };
    let mut lines = e.lines;
    // The last value is the result: rename by a copy-free select-less move.
    let last = lines.pop()?;
    let renamed = last.replacen(&value, result, 1);
    lines.push(renamed);
    Some(lines)
}
