//! Editing one declaration re-runs only the queries that depend on it. These
//! tests read salsa's event log (`WillExecute` events) through
//! `RootDatabase::take_log`.

use arch_sema::db::RootDatabase;
use arch_sema::file_diagnostics;

const PROGRAM: &str = "import std.hw.host
import std.nn.relu

workload first(B = 64, K = 128, N = 256) {
  input x: f32[B, K]
  weight w: f32[K, N]
  output y: f32[B, N]
  y[i, j] = relu(sum[k] x[i, k] * w[k, j])
}

workload second(M = 32, N = 16) {
  input a: f32[M, N]
  output b: f32[M, N]
  b[i, j] = a[i, j] * 2.0
}

mapping first_host for first on host {
  tile y { i: 16, j: 64, k: auto }
}
";

/// How many executions of `query` the log holds.
fn runs(log: &[String], query: &str) -> usize {
    log.iter()
        .filter(|e| e.starts_with(&format!("{query}(")))
        .count()
}

fn setup() -> (RootDatabase, arch_sema::SourceFile) {
    let mut db = RootDatabase::default();
    let file = db.set_file("/project/model.arch", PROGRAM.to_string());
    assert!(
        file_diagnostics(&db, file).is_empty(),
        "{:?}",
        file_diagnostics(&db, file)
    );
    db.start_logging();
    (db, file)
}

#[test]
fn editing_one_workload_reruns_only_its_queries() {
    let (mut db, _) = setup();
    // A one-character edit inside `second`: 2.0 becomes 3.0.
    let edited = PROGRAM.replace("a[i, j] * 2.0", "a[i, j] * 3.0");
    let file = db.set_file("/project/model.arch", edited);
    assert!(file_diagnostics(&db, file).is_empty());
    let log = db.take_log();
    // The file is split again (cheap), and only `second` is parsed and lowered.
    assert_eq!(runs(&log, "file_decls"), 1, "{log:#?}");
    assert_eq!(runs(&log, "parse_decl"), 1, "{log:#?}");
    assert_eq!(runs(&log, "workload_model"), 1, "{log:#?}");
    // `first`, its mapping, the hardware and the stdlib are not touched.
    assert_eq!(runs(&log, "mapping_model"), 0, "{log:#?}");
    assert_eq!(runs(&log, "hardware_model"), 0, "{log:#?}");
    assert_eq!(runs(&log, "op_diagnostics"), 0, "{log:#?}");
    // The names in scope did not change.
    assert_eq!(runs(&log, "file_scope"), 0, "{log:#?}");
}

#[test]
fn editing_a_workload_reruns_the_mapping_that_uses_it() {
    let (mut db, _) = setup();
    // A blank before `first`'s closing brace changes its text but not its model.
    let edited = PROGRAM.replace("w[k, j])\n}", "w[k, j])\n }");
    assert_ne!(edited, PROGRAM);
    let file = db.set_file("/project/model.arch", edited.clone());
    assert!(file_diagnostics(&db, file).is_empty());
    let log = db.take_log();
    assert_eq!(runs(&log, "workload_model"), 1, "{log:#?}");
    // `first`'s model is equal to before, so salsa backdates it and the
    // mapping is not re-run.
    assert_eq!(runs(&log, "mapping_model"), 0, "{log:#?}");

    // A real change to `first` re-runs its mapping too.
    let edited = edited.replace("K = 128", "K = 256");
    let file = db.set_file("/project/model.arch", edited);
    assert!(file_diagnostics(&db, file).is_empty());
    let log = db.take_log();
    assert_eq!(runs(&log, "workload_model"), 1, "{log:#?}");
    assert_eq!(runs(&log, "mapping_model"), 1, "{log:#?}");
    assert_eq!(
        runs(&log, "workload_model") + runs(&log, "parse_decl"),
        2,
        "{log:#?}"
    );
}

#[test]
fn diagnostics_move_with_their_declaration() {
    let (mut db, _) = setup();
    let broken = PROGRAM.replace("b[i, j] = a[i, j] * 2.0", "b[i, j] = a[i, q] * 2.0");
    let file = db.set_file("/project/model.arch", broken.clone());
    let first = file_diagnostics(&db, file).clone();
    assert_eq!(first.len(), 1);
    let (_, span) = first[0].location.resolve(&db);
    assert_eq!(&broken[span.start as usize..span.end as usize], "q");
    db.take_log();
    // Insert lines above: the error moves, nothing but the split re-runs.
    let shifted = format!("// a comment\n// another\n{broken}");
    let file = db.set_file("/project/model.arch", shifted.clone());
    let again = file_diagnostics(&db, file).clone();
    let (_, span) = again[0].location.resolve(&db);
    assert_eq!(&shifted[span.start as usize..span.end as usize], "q");
    let log = db.take_log();
    assert_eq!(runs(&log, "workload_model"), 0, "{log:#?}");
    // The import keeps its identity but absorbs the new leading comment.
    assert!(runs(&log, "parse_decl") <= 1, "{log:#?}");
}

#[test]
fn overrides_rerun_workloads_not_parsing() {
    let (mut db, file) = setup();
    db.set_overrides(vec![("N".to_string(), 512)]);
    assert!(file_diagnostics(&db, file).is_empty());
    let log = db.take_log();
    assert_eq!(runs(&log, "parse_decl"), 0, "{log:#?}");
    assert_eq!(runs(&log, "workload_model"), 2, "{log:#?}");
}

#[test]
fn an_override_no_workload_uses_reruns_only_size_evaluation() {
    let (mut db, file) = setup();
    db.set_overrides(vec![("Q".to_string(), 8)]);
    assert!(file_diagnostics(&db, file).is_empty());
    let log = db.take_log();
    assert_eq!(runs(&log, "size_params"), 2, "{log:#?}");
    assert_eq!(runs(&log, "workload_model"), 0, "{log:#?}");
    assert_eq!(runs(&log, "parse_decl"), 0, "{log:#?}");
}
