//! Lowering examples to linalg, checked by MLIR's own parser and verifier,
//! with `CHECK`-style expectations on the text.

use arch_mlir::linalg::{lower, LowerError};
use arch_mlir::verify;
use arch_sema::db::{file_decls, RootDatabase};
use arch_sema::model::WorkloadModel;
use arch_sema::workload::workload_model;

/// Every workload of `text`, which must check clean.
fn models(text: &str) -> Vec<WorkloadModel> {
    let mut db = RootDatabase::default();
    let file = db.set_file("/mlir/lower.arch", text.to_string());
    let diags = arch_sema::file_diagnostics(&db, file);
    assert!(diags.is_empty(), "{diags:?}");
    file_decls(&db, file)
        .iter()
        .filter(|d| d.kind(&db) == "workload")
        .map(|d| workload_model(&db, *d).model.clone().expect("model"))
        .collect()
}

fn lowered(text: &str) -> String {
    let w = models(text).remove(0);
    let mlir = lower(&w).expect("lowers");
    verify(&mlir).unwrap_or_else(|e| panic!("{e}\n{mlir}"));
    mlir
}

/// The lines of `text` contain `wanted`, in order (FileCheck's CHECK).
fn check(text: &str, wanted: &[&str]) {
    let mut rest = text;
    for w in wanted {
        match rest.find(w) {
            Some(at) => rest = &rest[at + w.len()..],
            None => panic!("`{w}` not found in order in:\n{text}"),
        }
    }
}

#[test]
fn gemm_is_one_reducing_generic() {
    let mlir = lowered(
        "workload gemm(M = 64, N = 16, K = 32) {\n  input a: f32[M, K]\n  weight b: f32[K, N]\n  output c: f32[M, N]\n  c[m, n] = sum[k] a[m, k] * b[k, n]\n}\n",
    );
    check(
        &mlir,
        &[
            "func.func @gemm(%arg0: memref<64x32xf32>, %arg1: memref<32x16xf32>, %arg2: memref<64x16xf32>) -> i32",
            "bufferization.to_tensor %arg0 restrict",
            "bufferization.to_tensor %arg2 restrict writable",
            "linalg.fill",
            "affine_map<(d0, d1, d2) -> (d0, d2)>, affine_map<(d0, d1, d2) -> (d2, d1)>, affine_map<(d0, d1, d2) -> (d0, d1)>",
            "iterator_types = [\"parallel\", \"parallel\", \"reduction\"]",
            "arith.mulf",
            "arith.addf",
            "linalg.yield",
            "bufferization.materialize_in_destination",
            "in restrict writable %arg2",
            "func.return",
        ],
    );
}

#[test]
fn a_reduction_inside_elementwise_work_is_computed_first() {
    // relu(x w + b): the sum into a temporary, then bias and ReLU read it.
    let mlir = lowered(
        "import std.nn.relu\nworkload mlp(B = 8, K = 16, N = 4) {\n  input x: f32[B, K]\n  weight w: f32[K, N]\n  weight b: f32[N]\n  output y: f32[B, N]\n  y[i, j] = relu(sum[k] x[i, k] * w[k, j] + b[j])\n}\n",
    );
    check(
        &mlir,
        &[
            "iterator_types = [\"parallel\", \"parallel\", \"reduction\"]",
            "arith.addf",
            "affine_map<(d0, d1) -> (d1)>",
            "iterator_types = [\"parallel\", \"parallel\"]",
            "arith.maximumf",
        ],
    );
}

#[test]
fn convolution_windows_are_affine_maps() {
    let mlir = lowered(
        "import std.nn.conv2d\nworkload c(N = 1, C = 4, H = 10, W = 10, F = 8, R = 3, S = 3) {\n  input x: f32[N, C, H, W]\n  weight k: f32[F, C, R, S]\n  output y: f32[N, F, (H - R) / 2 + 1, (W - S) / 2 + 1]\n  y = conv2d(x, k, stride: 2)\n}\n",
    );
    check(
        &mlir,
        &["(d0, d4, d2 * 2 + d5, d3 * 2 + d6)", "tensor<1x8x4x4xf32>"],
    );
}

#[test]
fn softmax_attention_and_mixed_float_types_verify() {
    lowered(
        "import std.nn.softmax\nworkload att(S = 16, D = 8) {\n  input q: f32[S, D]\n  input k: f32[S, D]\n  input v: f32[S, D]\n  output o: f32[S, D]\n  s[i, j] = sum[d] q[i, d] * k[j, d] / sqrt(D)\n  p = softmax(s)\n  o[i, d] = sum[j] p[i, j] * v[j, d]\n}\n",
    );
    let mlir = lowered(
        "workload mixed(N = 4) {\n  input a: bf16[N]\n  input b: f32[N]\n  output c: f32[N]\n  c[n] = f32(a[n]) * b[n] + exp(b[n])\n}\n",
    );
    // f32 exp is written out (arch_mlir::fastmath): a clamp, range
    // reduction, polynomial, exponent bits, no libm call.
    assert!(!mlir.contains("math.exp"), "{mlir}");
    check(
        &mlir,
        &[
            "arith.extf",
            "bf16 to f32",
            "arith.minimumf",
            "math.fma",
            "arith.shli",
            "arith.bitcast",
        ],
    );
}

#[test]
fn what_is_not_lowered_yet_says_so() {
    let w =
        models("workload q(N = 4) {\n  input a: int8[N]\n  output b: int8[N]\n  b[n] = a[n]\n}\n")
            .remove(0);
    assert!(matches!(lower(&w), Err(LowerError::Unsupported(_))));
    assert!(verify("module { this is not mlir }").is_err());
}

#[test]
fn every_float_example_lowers_and_verifies() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let mut lowered_count = 0;
    for entry in std::fs::read_dir(&root).expect("examples") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|e| e != "arch") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("example");
        for w in models(&text) {
            let float_only = w
                .tensors
                .iter()
                .all(|t| matches!(t.dtype.name(), "f64" | "f32" | "f16" | "bf16"));
            match lower(&w) {
                Ok(mlir) => {
                    verify(&mlir).unwrap_or_else(|e| panic!("{}: {e}\n{mlir}", w.name));
                    lowered_count += 1;
                }
                Err(LowerError::Unsupported(why)) => {
                    assert!(!float_only, "{} is all floats but: {why}", w.name)
                }
            }
        }
    }
    assert!(lowered_count >= 8, "only {lowered_count} workloads lowered");
}
