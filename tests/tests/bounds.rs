//! Physical lower bounds hold in every model (arch_cost::bounds): every
//! example against every std target, and random workloads of each op family
//! against every std target, at the search's first guess and after a small
//! search. Each op moves at least its compulsory bytes, takes at least
//! those bytes over their level's bandwidth and its work over peak; a gpu op
//! pays a launch and its blocks stay within 1024 threads.

use arch_driver::harness::{cost_models, small_search};
use arch_tests::{arch_files, root};

#[test]
fn every_example_on_every_std_target_keeps_the_bounds() {
    let mut broken = Vec::new();
    let files = arch_files(&root().join("examples"));
    assert!(files.len() >= 5);
    for path in files {
        let text = std::fs::read_to_string(&path).expect("example");
        broken.extend(cost_models(&text, &small_search()));
    }
    assert!(broken.is_empty(), "{}", broken.join("\n"));
}

/// xorshift64*: deterministic random sizes.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn size(&mut self) -> u64 {
        const SIZES: [u64; 10] = [1, 3, 7, 16, 33, 64, 123, 256, 1000, 4096];
        SIZES[(self.next() % SIZES.len() as u64) as usize]
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }
}

/// A random workload of one family, written as a user would.
fn random_program(rng: &mut Rng) -> String {
    let dtype = rng.pick(&["f32", "f16", "bf16", "int8"]);
    let (a, b, c) = (rng.size(), rng.size(), rng.size());
    let body = match rng.next() % 6 {
        0 => format!(
            "workload w(M = {a}, K = {b}, N = {c}) {{\n  input x: {dtype}[M, K]\n  weight y: {dtype}[K, N]\n  output z: f32[M, N]\n  z[i, j] = sum[k] x[i, k] * y[k, j]\n}}\n"
        ),
        1 => format!(
            "import std.nn.{{softmax}}\nworkload w(R = {a}, C = {b}) {{\n  input x: f32[R, C]\n  output y: f32[R, C]\n  y = softmax(x)\n}}\n"
        ),
        2 => format!(
            "workload w(R = {a}, C = {b}) {{\n  input x: {dtype}[R, C]\n  output y: f32[R]\n  t[i, j] = x[i, j] * 2.0 + 1.0\n  y[i] = max[j] t[i, j]\n}}\n"
        ),
        3 => {
            let (ch, f) = (rng.size().min(64), rng.size().min(64));
            let hw = 2 + rng.size().min(56);
            format!(
                "workload w(N = 1, C = {ch}, H = {hw}, W = {hw}, F = {f}, R = 1, S = 1) {{\n  input x: f32[N, C, H, W]\n  weight k: f32[F, C, R, S]\n  output y: f32[N, F, H - R + 1, W - S + 1]\n  y[n, f, p, q] = sum[c, r, s] x[n, c, p + r, q + s] * k[f, c, r, s]\n}}\n"
            )
        }
        4 => format!(
            "workload w(B = {}, M = {a}, K = {b}, N = {c}) {{\n  input x: f32[B, M, K]\n  input y: f32[B, K, N]\n  output z: f32[B, M, N]\n  z[h, i, j] = sum[k] x[h, i, k] * y[h, k, j]\n}}\n",
            rng.size().min(16)
        ),
        _ => format!(
            "workload w(N = {a}, M = {b}) {{\n  input x: f32[N, M]\n  input y: f32[N, M]\n  output z: f32[N, M]\n  z[i, j] = tanh(x[i, j] * y[i, j]) + exp(x[i, j])\n}}\n"
        ),
    };
    format!("import std.hw.host\n{body}")
}

#[test]
fn random_workloads_on_every_std_target_keep_the_bounds() {
    let cases: u64 = std::env::var("ARCH_BOUNDS_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40);
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut broken = Vec::new();
    let mut checked = 0;
    for _ in 0..cases {
        let text = random_program(&mut rng);
        let found = cost_models(&text, &small_search());
        checked += 1;
        for f in found {
            broken.push(format!("{f}\n  in:\n{text}"));
        }
    }
    assert_eq!(checked, cases);
    assert!(broken.is_empty(), "{}", broken.join("\n"));
}
