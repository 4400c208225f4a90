//! exp, tanh, erf and sigmoid on f32 (scalars or vectors) as straight-line
//! arithmetic: range reduction, a polynomial, and exponent bits put in
//! place. LLVM has no vector `expf` on x86 without a vector math library, so
//! `math.exp` on a vector becomes one libm call per lane; written out as
//! arithmetic the same code vectorizes with everything around it (linalg
//! bodies and the packed kernel's epilogues).
//!
//! Accuracy (f32): exp within about 2 ulp (Cephes' `expf` reduction and
//! polynomial); tanh and erf within about 2e-7 absolute (erf: Abramowitz &
//! Stegun 7.1.26, 1.5e-7, with the Maclaurin series below 0.5 where the
//! relative error matters); each keeps NaN. Other element types keep the
//! math dialect.

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

    /// `x` where `x` is NaN, else `value`.
    fn keep_nan(&mut self, x: &str, value: &str) -> String {
        let nan = (self.fresh)("fmv");
        self.lines
            .push(format!("{nan} = arith.cmpf uno, {x}, {x} : {}", self.ty));
        let name = (self.fresh)("fmv");
        self.lines.push(format!(
            "{name} = arith.select {nan}, {x}, {value} : {}, {}",
            self.ty.replace("f32", "i1"),
            self.ty
        ));
        name
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
    fn exp(&mut self, x: &str) -> String {
        let original = x.to_string();
        let (lo, hi) = (self.constant(-86.0), self.constant(88.722_83));
        let x = self.op("arith.maximumf", &[x, &lo]);
        let x = self.op("arith.minimumf", &[&x, &hi]);
        // n = round(x / ln 2); r = x - n ln 2 in two parts (Cephes).
        let (log2e, half) = (self.constant(std::f64::consts::LOG2_E), self.constant(0.5));
        let t = self.mul_add(&x, &log2e, &half);
        let n = self.op("math.floor", &[&t]);
        let (c1, c2) = (self.constant(-0.693_359_375), self.constant(2.121_944_4e-4));
        let r = self.mul_add(&n, &c1, &x);
        let r = self.mul_add(&n, &c2, &r);
        // e^r = 1 + r + r^2 p(r) on [-ln2/2, ln2/2].
        let p = self.poly(
            &r,
            &[
                1.987_569_150_0e-4,
                1.398_199_950_7e-3,
                8.333_451_907_3e-3,
                4.166_579_589_4e-2,
                1.666_666_545_9e-1,
                5.000_000_120_1e-1,
            ],
        );
        let r2 = self.op("arith.mulf", &[&r, &r]);
        let one = self.constant(1.0);
        let r1 = self.op("arith.addf", &[&r, &one]);
        let y = self.mul_add(&p, &r2, &r1);
        // 2^n from the exponent bits.
        let ni = (self.fresh)("fmv");
        self.lines.push(format!(
            "{ni} = arith.fptosi {n} : {} to {}",
            self.ty, self.int_ty
        ));
        let bias = self.int_constant(127);
        let biased = (self.fresh)("fmv");
        self.lines.push(format!(
            "{biased} = arith.addi {ni}, {bias} : {}",
            self.int_ty
        ));
        let shift = self.int_constant(23);
        let bits = (self.fresh)("fmv");
        self.lines.push(format!(
            "{bits} = arith.shli {biased}, {shift} : {}",
            self.int_ty
        ));
        let scale = (self.fresh)("fmv");
        self.lines.push(format!(
            "{scale} = arith.bitcast {bits} : {} to {}",
            self.int_ty, self.ty
        ));
        let value = self.op("arith.mulf", &[&y, &scale]);
        let zero = self.constant(0.0);
        self.select_if_less(&original, &lo, &zero, &value)
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
        let signed = self.op("math.copysign", &[&magnitude, x]);
        self.keep_nan(x, &signed)
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
        // 2/sqrt(pi) (x - x^3/3 + x^5/10 - x^7/42 + x^9/216) below 0.5.
        let k = std::f64::consts::FRAC_2_SQRT_PI;
        let s = self.poly(&a2, &[k / 216.0, -k / 42.0, k / 10.0, -k / 3.0, k]);
        let small = self.op("arith.mulf", &[&s, &a]);
        let limit = self.constant(0.5);
        let magnitude = self.select_if_less(&a, &limit, &small, &large);
        let signed = self.op("math.copysign", &[&magnitude, x]);
        self.keep_nan(x, &signed)
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
        "exp" => {
            let y = e.exp(x);
            e.keep_nan(x, &y)
        }
        "tanh" => e.tanh(x),
        "erf" => e.erf(x),
        "sigmoid" => {
            let n = e.op("arith.negf", &[x]);
            let y = e.exp(&n);
            let one = e.constant(1.0);
            let d = e.op("arith.addf", &[&one, &y]);
            let s = e.op("arith.divf", &[&one, &d]);
            e.keep_nan(x, &s)
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
