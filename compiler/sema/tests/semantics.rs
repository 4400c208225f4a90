//! The semantic model itself: what the later stages will read.

use arch_sema::db::{file_decls, RootDatabase};
use arch_sema::hardware::{hardware_model, HwClass};
use arch_sema::mapping::{mapping_model, Domain, KnobTarget, KnobValue};
use arch_sema::model::OpKind;
use arch_sema::workload::workload_model;
use arch_sema::{file_diagnostics, Decl};

fn load(text: &str) -> (RootDatabase, arch_sema::SourceFile) {
    let mut db = RootDatabase::default();
    let file = db.set_file("/semantics/test.arch", text.to_string());
    (db, file)
}

fn decl<'db>(db: &'db RootDatabase, file: arch_sema::SourceFile, name: &str) -> Decl<'db> {
    *file_decls(db, file)
        .iter()
        .find(|d| d.name(db) == name)
        .expect("declaration")
}

#[test]
fn index_form_workload_model() {
    let (db, file) = load(
        "import std.nn.relu\nworkload mlp(B = 4, K = 8, N = 16) {\n  input x: f32[B, K]\n  weight w: bf16[K, N]\n  output y: f32[B, N]\n  y[i, j] = relu(sum[k] x[i, k] * w[k, j])\n}\n",
    );
    assert!(file_diagnostics(&db, file).is_empty());
    let m = workload_model(&db, decl(&db, file, "mlp"))
        .model
        .clone()
        .expect("model");
    assert_eq!(
        m.params,
        vec![("B".into(), 4), ("K".into(), 8), ("N".into(), 16)]
    );
    assert_eq!(m.ops.len(), 1);
    let op = &m.ops[0];
    let vars: Vec<(&str, u64)> = op
        .vars
        .iter()
        .map(|v| (v.name.as_str(), v.extent))
        .collect();
    assert_eq!(vars, vec![("i", 4), ("j", 16), ("k", 8)]);
    assert_eq!(op.output_rank, 2);
    assert_eq!(m.tensors[op.output].name, "y");
    assert_eq!(op.inputs().len(), 2);
    // bf16 widens into the f32 product.
    assert_eq!(m.tensors[m.tensor("w").expect("w")].bytes(), 8 * 16 * 2);
    assert_eq!(m.graph.0.node_count(), 1);
    assert_eq!(m.graph.0.edge_count(), 0);
}

#[test]
fn tensor_form_expands_into_a_dag() {
    let (db, file) = load(
        "import std.nn.{lif, conv2d, relu}\nworkload snn(T = 8) {\n  input s: spike[T, 64]\n  weight w1: int8[64, 32]\n  weight w2: int8[32, 10]\n  output o: spike[T, 10]\n  h = lif(s @ w1, tau: 4 ms)\n  o = lif(h @ w2)\n}\nworkload conv(N = 1, C = 3, H = 8, W = 8, F = 4) {\n  input x: f32[N, C, H, W]\n  weight k: f32[F, C, 3, 3]\n  output y: f32[N, F, 6, 6]\n  z = conv2d(x, k)\n  y = relu(z)\n}\n",
    );
    assert!(
        file_diagnostics(&db, file).is_empty(),
        "{:?}",
        file_diagnostics(&db, file)
    );
    let snn = workload_model(&db, decl(&db, file, "snn"))
        .model
        .clone()
        .expect("snn");
    // Two products and two neuron layers, in topological order.
    assert_eq!(snn.ops.len(), 4);
    let kinds: Vec<bool> = snn
        .ops
        .iter()
        .map(|op| matches!(op.kind, OpKind::Neuron { .. }))
        .collect();
    assert_eq!(kinds, vec![false, true, false, true]);
    assert_eq!(snn.graph.0.edge_count(), 3);
    let h = snn.tensor("h").expect("h");
    assert_eq!(snn.tensors[h].shape, vec![8, 32]);
    let OpKind::Neuron { model, params } = &snn.producer(h).expect("lif").kind else {
        panic!("neuron")
    };
    assert_eq!(model, "lif");
    let tau = params.iter().find(|(n, _)| n == "tau").expect("tau").1 .0;
    assert!((tau - 4e-3).abs() < 1e-12, "tau in seconds: {tau}");

    let conv = workload_model(&db, decl(&db, file, "conv"))
        .model
        .clone()
        .expect("conv");
    let z = conv.tensor("z").expect("z");
    assert_eq!(conv.tensors[z].shape, vec![1, 4, 6, 6]);
    let op = conv.producer(z).expect("conv op");
    assert_eq!(op.origin.as_deref(), Some("conv2d"));
    assert_eq!(op.iteration_points(), 4 * 6 * 6 * 3 * 3 * 3);
}

#[test]
fn hardware_extends_merges_and_overrides() {
    let (db, file) = load(
        "import std.hw.host\nhardware big extends host {\n  cores 8\n  level l2 { size 4 MiB per core }\n}\n",
    );
    assert!(
        file_diagnostics(&db, file).is_empty(),
        "{:?}",
        file_diagnostics(&db, file)
    );
    let hw = hardware_model(&db, decl(&db, file, "big"))
        .model
        .clone()
        .expect("model");
    assert_eq!(hw.class, HwClass::Cpu);
    assert_eq!(hw.cores, 8);
    assert_eq!(hw.base.as_deref(), Some("host"));
    let l2 = hw.level("l2").expect("l2");
    assert_eq!(l2.size_bytes.map(|a| a.value.0), Some(4.0 * 1048576.0));
    // Entries not overridden come from the base.
    assert!(l2.bandwidth_bytes_per_s.is_some());
    assert_eq!(hw.levels.first().map(|l| l.name.as_str()), Some("dram"));
}

#[test]
fn a_local_declaration_shadows_a_glob_import() {
    let (db, file) = load(
        "import std.nn.*\nop relu(x) = x\nworkload w(N = 4) {\n  input a: f32[N]\n  output b: f32[N]\n  b[i] = relu(a[i])\n}\n",
    );
    assert!(
        file_diagnostics(&db, file).is_empty(),
        "{:?}",
        file_diagnostics(&db, file)
    );
}

/// The model of mapping `name`, after checking that the file is clean.
fn clean_mapping(
    db: &RootDatabase,
    file: arch_sema::SourceFile,
    name: &str,
) -> arch_sema::mapping::MappingModel {
    assert!(
        file_diagnostics(db, file).is_empty(),
        "{:?}",
        file_diagnostics(db, file)
    );
    mapping_model(db, decl(db, file, name))
        .model
        .clone()
        .expect("model")
}

fn domain_of(m: &arch_sema::mapping::MappingModel, target: KnobTarget) -> Option<Domain> {
    m.knobs
        .iter()
        .find(|k| k.target == target)
        .map(|k| k.domain.clone())
}

#[test]
fn mapping_knobs_and_domains() {
    let (db, file) = load(
        "import std.hw.host\nworkload g(M = 64, N = 32, K = 16) {\n  input a: f32[M, K]\n  input b: f32[K, N]\n  output c: f32[M, N]\n  c[m, n] = sum[k] a[m, k] * b[k, n]\n}\nmapping gm for g on host {\n  tile c at l2 { m: 32, n: auto in 8..64 pow2 }\n  tile c at dram { m: 64 }\n  order m, n, k\n}\n",
    );
    let m = clean_mapping(&db, file, "gm");
    let find = |t: KnobTarget| domain_of(&m, t);
    let tile = |level: &str, dim: &str| KnobTarget::Tile {
        tensor: "c".into(),
        level: level.into(),
        dim: dim.into(),
    };
    assert_eq!(
        find(tile("l2", "m")),
        Some(Domain::Fixed(KnobValue::Int(32)))
    );
    // The range is clipped to the dimension.
    assert_eq!(
        find(tile("l2", "n")),
        Some(Domain::Ints {
            lo: 8,
            hi: 32,
            pow2: true
        })
    );
    // Knobs the mapping does not name stay open over their whole domain.
    assert_eq!(
        find(tile("l1", "k")),
        Some(Domain::Ints {
            lo: 1,
            hi: 16,
            pow2: false
        })
    );
    assert_eq!(
        find(tile("dram", "m")),
        Some(Domain::Fixed(KnobValue::Int(64)))
    );
    assert_eq!(
        find(KnobTarget::Order { tensor: "c".into() }),
        Some(Domain::Fixed(KnobValue::Names(vec![
            "m".into(),
            "n".into(),
            "k".into()
        ])))
    );
    assert!(matches!(
        find(KnobTarget::Parallel { tensor: "c".into() }),
        Some(Domain::Subsets(_))
    ));
    // One tile knob per dimension per level below DRAM (l3, l2, l1), plus the
    // user's DRAM tile, order, parallel and vectorize.
    let tiles = m
        .knobs
        .iter()
        .filter(|k| matches!(k.target, KnobTarget::Tile { .. }))
        .count();
    assert_eq!(tiles, 3 * 3 + 1);
}

#[test]
fn lists_for_one_op() {
    // Two ops share the dimension names m, n, k; `order T: ...` sets one
    // op's order, `order ...` every op's, and the later statement wins.
    let (db, file) = load(
        "import std.hw.host\nworkload two(M = 64, N = 64, K = 64) {\n  input a: f32[M, K]\n  weight b: f32[K, N]\n  weight d: f32[N, N]\n  output c: f32[M, N]\n  t[m, n] = sum[k] a[m, k] * b[k, n]\n  c[m, n] = sum[k] t[m, k] * d[k, n]\n}\nmapping m for two on host {\n  order m, n, k\n  order t: k, m, n\n  parallel c: n over cores\n  parallel t: m, n over cores\n  vectorize t: m\n}\n",
    );
    let m = clean_mapping(&db, file, "m");
    let find = |t: KnobTarget| domain_of(&m, t);
    let names = |v: &[&str]| {
        Some(Domain::Fixed(KnobValue::Names(
            v.iter().map(|s| s.to_string()).collect(),
        )))
    };
    assert_eq!(
        find(KnobTarget::Order { tensor: "t".into() }),
        names(&["k", "m", "n"])
    );
    assert_eq!(
        find(KnobTarget::Order { tensor: "c".into() }),
        names(&["m", "n", "k"])
    );
    assert_eq!(
        find(KnobTarget::Parallel { tensor: "c".into() }),
        names(&["n"])
    );
    assert_eq!(
        find(KnobTarget::Parallel { tensor: "t".into() }),
        names(&["m", "n"])
    );
    assert_eq!(
        find(KnobTarget::Vectorize { tensor: "t".into() }),
        Some(Domain::Fixed(KnobValue::Name("m".into())))
    );
}
