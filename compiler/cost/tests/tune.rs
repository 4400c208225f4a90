//! The search: deterministic, never worse than its starting point, honours
//! fixed knobs.

use arch_cost::schedule::initial_schedule;
use arch_cost::search::{tune, SearchOptions};
use arch_sema::db::{file_decls, RootDatabase};
use arch_sema::mapping::mapping_model;

mod common;

const PROGRAM: &str = "import std.hw.{host, loihi2}
import std.nn.lif
workload gemm(M = 256, N = 256, K = 256) {
  input a: f32[M, K]
  input b: f32[K, N]
  output c: f32[M, N]
  c[m, n] = sum[k] a[m, k] * b[k, n]
}
mapping open for gemm on host {
  tile c at l2 { m: auto }
}
mapping pinned for gemm on host {
  tile c at l1 { m: 8, n: 64, k: auto in 16..128 pow2 }
  order m, k, n
}
workload snn(T = 16) {
  input s: spike[T, 784]
  weight w1: int8[784, 512] @density(0.25)
  weight w2: int8[512, 10]
  output o: spike[T, 10]
  h = lif(s @ w1)
  o = lif(h @ w2)
}
mapping snn_loihi for snn on loihi2 {
  partition h: 8
}
mapping snn_open for snn on loihi2 {
  partition h: auto
}
";

fn run(mapping: &str, seed: u64, evaluations: usize) -> (arch_cost::search::SearchOutcome, f64) {
    let mut db = RootDatabase::default();
    let file = common::checked_file(&mut db, "/cost/tune.arch", PROGRAM);
    let decl = *file_decls(&db, file)
        .iter()
        .find(|d| d.name(&db) == mapping)
        .expect("mapping");
    let m = mapping_model(&db, decl)
        .model
        .clone()
        .expect("mapping model");
    let w = common::workload_in(&db, file, &m.workload);
    let hw = common::std_hardware(&db, &m.hardware);
    let start = initial_schedule(&w, &hw, &m).expect("a first schedule");
    let start_latency = arch_cost::evaluate::evaluate(&w, &hw, &start)
        .expect("report")
        .total
        .latency_s;
    let opts = SearchOptions {
        seed,
        budget: std::time::Duration::from_secs(600),
        max_evaluations: evaluations,
        progress: None,
        weights: None,
    };
    (tune(&w, &hw, &m, &opts).expect("tuned"), start_latency)
}

#[test]
fn same_seed_same_report() {
    let (a, _) = run("open", 7, 4000);
    let (b, _) = run("open", 7, 4000);
    assert_eq!(a.report, b.report);
    assert_eq!(a.evaluated, b.evaluated);
    assert!(!a.stopped_by_budget);
}

#[test]
fn never_worse_than_the_first_schedule() {
    let (out, start) = run("open", 1, 4000);
    assert!(
        out.report.total.latency_s <= start,
        "{} > {start}",
        out.report.total.latency_s
    );
    assert!(out.evaluated > 100);
    assert!(out.space_size > out.evaluated as f64);
    assert!(out.gap_to_lower_bound >= 1.0);
}

#[test]
fn fixed_knobs_stay_fixed() {
    let (out, _) = run("pinned", 3, 4000);
    let op = &out.report.ops[0];
    let l1 = &op.mapping["tile.l1"];
    assert!(
        l1.starts_with("m: 8, n: 64, k: "),
        "{l1} in {:?}",
        op.mapping
    );
    let k: u64 = l1
        .rsplit(": ")
        .next()
        .and_then(|x| x.parse().ok())
        .expect("k tile");
    assert!((16..=128).contains(&k) && k.is_power_of_two());
    assert_eq!(op.mapping["order"], "m, k, n");
}

#[test]
fn spiking_layers_on_loihi() {
    let (out, _) = run("snn_loihi", 1, 100);
    assert_eq!(out.report.ops.len(), 2, "one entry per spiking layer");
    assert_eq!(out.report.ops[0].mapping["partition"], "8");
    assert!(out.report.total.latency_s > 0.0);
}

#[test]
fn open_partitions_spread_over_spare_cores() {
    // h starts on the fewest cores that hold it (1) and takes spare cores
    // while each saves time; o stays open too. Both fit the 128 cores.
    let (out, start) = run("snn_open", 1, 100);
    let cores = |name: &str| -> u64 {
        out.report
            .ops
            .iter()
            .find(|o| o.name == name)
            .and_then(|o| o.mapping["partition"].parse().ok())
            .expect("partition")
    };
    assert!(cores("h") > 1, "h on {} cores", cores("h"));
    assert!(cores("h") + cores("o") <= 128);
    assert!(
        out.report.total.latency_s < start,
        "{} >= {start}",
        out.report.total.latency_s
    );
    assert!(out.evaluated > 1);
}
