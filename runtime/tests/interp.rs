//! The reference interpreter against loops written out by hand.

use arch_runtime::interp::{erf, random_inputs, run, tolerance, InterpError, Values};
use arch_sema::db::{file_decls, RootDatabase};
use arch_sema::dtype::DType;
use arch_sema::model::WorkloadModel;
use arch_sema::workload::workload_model;

/// The model of workload `name` in `text`, which must check clean.
fn model(text: &str, name: &str) -> WorkloadModel {
    let mut db = RootDatabase::default();
    let file = db.set_file("/runtime/interp.arch", text.to_string());
    let diags = arch_sema::file_diagnostics(&db, file);
    assert!(diags.is_empty(), "{diags:?}");
    let decl = *file_decls(&db, file)
        .iter()
        .find(|d| d.name(&db) == name)
        .expect("workload");
    workload_model(&db, decl).model.clone().expect("model")
}

fn values(pairs: &[(&str, Vec<f64>)]) -> Values {
    pairs
        .iter()
        .map(|(n, v)| (n.to_string(), v.clone()))
        .collect()
}

#[test]
fn gemm_with_bias_and_relu() {
    let w = model(
        "import std.nn.relu\nworkload mlp(B = 2, K = 3, N = 2) {\n  input x: f64[B, K]\n  weight w: f64[K, N]\n  weight b: f64[N]\n  output y: f64[B, N]\n  y[i, j] = relu(sum[k] x[i, k] * w[k, j] + b[j])\n}\n",
        "mlp",
    );
    let given = values(&[
        ("x", vec![1.0, 2.0, 3.0, -1.0, 0.0, 1.0]),
        ("w", vec![1.0, -1.0, 0.5, 2.0, -1.0, 0.0]),
        ("b", vec![0.5, -10.0]),
    ]);
    let out = run(&w, &given).expect("run");
    // x w: row 0 [1 + 1 - 3, -1 + 4 + 0] = [-1, 3], row 1 [-1 + 0 - 1,
    // 1 + 0 + 0] = [-2, 1]; plus b: [-0.5, -7], [-1.5, -9]; relu: zeros.
    assert_eq!(out["y"], vec![0.0, 0.0, 0.0, 0.0]);
    let mut positive = given.clone();
    positive.insert("b".into(), vec![2.0, 0.0]);
    let out = run(&w, &positive).expect("run");
    assert_eq!(out["y"], vec![1.0, 3.0, 0.0, 1.0]);
    // Without the ReLU and bias, the products themselves.
    let w2 = model(
        "workload g(B = 2, K = 3, N = 2) {\n  input x: f64[B, K]\n  weight w: f64[K, N]\n  output y: f64[B, N]\n  y[i, j] = sum[k] x[i, k] * w[k, j]\n}\n",
        "g",
    );
    let out = run(&w2, &given).expect("run");
    assert_eq!(out["y"], vec![-1.0, 3.0, -2.0, 1.0]);
}

#[test]
fn std_nn_conv2d_matches_the_loops() {
    let w = model(
        "import std.nn.conv2d\nworkload c(N = 1, C = 2, H = 5, W = 4, F = 3, R = 2, S = 3) {\n  input x: f64[N, C, H, W]\n  weight k: f64[F, C, R, S]\n  output y: f64[N, F, (H - R) / 1 + 1, (W - S) / 1 + 1]\n  y = conv2d(x, k, stride: 1)\n}\n",
        "c",
    );
    let given = random_inputs(&w, 7);
    let out = run(&w, &given).expect("run");
    let (x, k) = (&given["x"], &given["k"]);
    let (c, h, wd, f, r, s) = (2, 5, 4, 3, 2, 3);
    let (ph, pw) = (h - r + 1, wd - s + 1);
    let mut expected = Vec::new();
    for fi in 0..f {
        for p in 0..ph {
            for q in 0..pw {
                let mut acc = 0.0;
                for ci in 0..c {
                    for ri in 0..r {
                        for si in 0..s {
                            acc += x[(ci * h + p + ri) * wd + q + si]
                                * k[((fi * c + ci) * r + ri) * s + si];
                        }
                    }
                }
                expected.push(acc);
            }
        }
    }
    let got = &out["y"];
    assert_eq!(got.len(), expected.len());
    for (a, b) in got.iter().zip(&expected) {
        assert!((a - b).abs() < 1e-12, "{a} vs {b}");
    }
}

#[test]
fn softmax_rows_sum_to_one_and_gelu_uses_erf() {
    let w = model(
        "import std.nn.{softmax, gelu}\nworkload s(R = 3, C = 5) {\n  input x: f32[R, C]\n  output y: f32[R, C]\n  output g: f32[R, C]\n  y = softmax(x)\n  g = gelu(x)\n}\n",
        "s",
    );
    let given = random_inputs(&w, 3);
    let out = run(&w, &given).expect("run");
    for row in out["y"].chunks(5) {
        let sum: f64 = row.iter().sum();
        assert!((sum - 1.0).abs() < 1e-6, "{sum}");
        assert!(row.iter().all(|v| *v > 0.0));
    }
    // Reference values to double precision (erf as tabulated by NIST DLMF).
    for (x, want) in [
        (0.5, 0.520_499_877_813_046_5),
        (-1.0, -0.842_700_792_949_714_9),
        (2.5, 0.999_593_047_982_555),
        (1e-8, 1.128_379_167_095_512_6e-8),
        (7.0, 1.0),
    ] {
        assert!(
            (erf(x) - want).abs() <= 4e-15 * want.abs(),
            "erf({x}) = {}",
            erf(x)
        );
    }
    assert!(erf(f64::NAN).is_nan());
}

#[test]
fn results_are_stored_in_their_element_type() {
    // int8 saturates; bf16 keeps 8 significant bits.
    let w = model(
        "workload q(N = 3) {\n  input a: f32[N]\n  output i: int8[N]\n  output h: bf16[N]\n  i[n] = int8(a[n] * 100.0)\n  h[n] = bf16(a[n] + 0.001)\n}\n",
        "q",
    );
    let out = run(&w, &values(&[("a", vec![1.0, -2.0, 0.004])])).expect("run");
    assert_eq!(out["i"], vec![100.0, -128.0, 0.0]);
    assert_eq!(out["h"][0], 1.0, "1.001 rounds to 1 in bf16");
    assert_eq!(DType::BF16.store(1.001), 1.0);
    assert_eq!(tolerance(DType::I8), 0.0);
}

#[test]
fn what_it_cannot_run_is_an_error() {
    let g = model(
        "workload g(N = 2) {\n  input a: f32[N]\n  output b: f32[N]\n  b[n] = a[n]\n}\n",
        "g",
    );
    assert_eq!(
        run(&g, &Values::new()),
        Err(InterpError::MissingInput { tensor: "a".into() })
    );
    assert!(matches!(
        run(&g, &values(&[("a", vec![1.0])])),
        Err(InterpError::WrongSize { .. })
    ));
    let snn = model(
        "import std.nn.lif\nworkload s(T = 2) {\n  input x: spike[T, 4]\n  weight w: int8[4, 2]\n  output o: spike[T, 2]\n  o = lif(x @ w)\n}\n",
        "s",
    );
    let given = random_inputs(&snn, 1);
    assert!(matches!(
        run(&snn, &given),
        Err(InterpError::Unsupported(_))
    ));
    let huge = model(
        "workload h(N = 100000) {\n  input a: f32[N, N]\n  input b: f32[N, N]\n  output c: f32[N, N]\n  c[i, j] = sum[k] a[i, k] * b[k, j]\n}\n",
        "h",
    );
    assert!(matches!(
        run(&huge, &Values::new()),
        Err(InterpError::TooLarge { .. })
    ));
}
