//! Front-end benchmark: `archc check` of a generated 10,000-line program,
//! cold (a fresh database, and the whole `archc` process), and re-checking
//! after a one-character edit inside one workload through the same salsa
//! database (as the language server does).
//!
//! Run: cargo run --release -p arch-tests --bin bench-frontend [-- LINES RUNS]

use arch_sema::{file_diagnostics, RootDatabase};
use std::time::{Duration, Instant};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn percentile(mut v: Vec<Duration>, p: f64) -> Duration {
    v.sort();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i]
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let lines: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(10_000);
    let runs: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(20);
    let program = arch_tests::generated_program(lines);
    let n_lines = program.lines().count();
    if let Some(path) = std::env::var_os("ARCH_BENCH_WRITE") {
        std::fs::write(path, &program).expect("write program");
    }
    if std::env::var_os("ARCH_BENCH_PROBE").is_some() {
        probe(&program);
    }
    let workloads = program.matches("\nworkload ").count();

    // Cold, in process: a fresh database each time.
    let mut cold = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        let mut db = RootDatabase::default();
        let f = db.set_file("/bench/program.arch", program.clone());
        let n = file_diagnostics(&db, f).len();
        cold.push(t.elapsed());
        assert_eq!(n, 0, "the generated program checks clean");
    }

    // Cold, the whole `archc check` process (when the binary is built).
    let exe = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("archc")));
    let mut process = Vec::new();
    if let Some(exe) = exe.filter(|e| e.exists()) {
        let path = std::env::temp_dir().join(format!("archc-bench-{}.arch", std::process::id()));
        std::fs::write(&path, &program).expect("write program");
        for _ in 0..runs {
            let t = Instant::now();
            let status = std::process::Command::new(&exe)
                .arg("check")
                .arg(&path)
                .stderr(std::process::Stdio::null())
                .status()
                .expect("run archc");
            process.push(t.elapsed());
            assert!(status.success());
        }
        let _ = std::fs::remove_file(&path);
    }

    // Incremental: one-character edits inside one workload in the middle.
    let mut db = RootDatabase::default();
    let f = db.set_file("/bench/program.arch", program.clone());
    assert!(file_diagnostics(&db, f).is_empty());
    let target = format!("workload layer{}(B = 64", workloads / 2);
    let at = program.find(&target).expect("middle workload") + target.len() - 1;
    if std::env::var_os("ARCH_BENCH_PROBE").is_some() {
        probe_incremental(&program, at);
    }
    let edits = runs * 10;
    let mut incremental = Vec::new();
    let mut scratch = Vec::new();
    for i in 0..edits {
        let mut text = program.clone();
        // `B = 64` -> `B = 65`, `B = 66`, ...: one character changes.
        let digit = char::from(b'5' + (i % 4) as u8);
        text.replace_range(at..at + 1, &digit.to_string());
        let t = Instant::now();
        let f = db.set_file("/bench/program.arch", text.clone());
        let n = file_diagnostics(&db, f).len();
        incremental.push(t.elapsed());
        assert_eq!(n, 0);
        if i % 10 == 0 {
            // The reference: the same edited text checked from scratch.
            let t = Instant::now();
            let mut fresh = RootDatabase::default();
            let g = fresh.set_file("/bench/program.arch", text);
            let _ = file_diagnostics(&fresh, g).len();
            scratch.push(t.elapsed());
        }
    }

    let cold_m = median(cold.clone());
    let inc_m = median(incremental.clone());
    let scratch_m = median(scratch);
    println!("program: {n_lines} lines, {workloads} workloads and {workloads} mappings; {runs} cold runs, {edits} edits");
    println!();
    println!("| measurement | median | p99 | target |");
    println!("|---|---|---|---|");
    println!(
        "| cold check, in process (fresh database) | {} | {} | < 100 ms |",
        ms(cold_m),
        ms(percentile(cold, 0.99))
    );
    if !process.is_empty() {
        println!(
            "| cold `archc check`, whole process | {} | {} | < 100 ms |",
            ms(median(process.clone())),
            ms(percentile(process, 0.99))
        );
    }
    println!(
        "| re-check after a 1-character edit (salsa) | {} | {} | < 5 ms |",
        ms(inc_m),
        ms(percentile(incremental, 0.99))
    );
    println!(
        "| same edited text checked from scratch (reference) | {} | | |",
        ms(scratch_m)
    );
    println!();
    println!(
        "incremental speed-up over from-scratch: {:.0}x",
        scratch_m.as_secs_f64() / inc_m.as_secs_f64().max(1e-9)
    );
}

#[allow(dead_code)]
fn probe(program: &str) {
    let t = Instant::now();
    for _ in 0..20 {
        let _ = arch_syntax::split(program);
    }
    eprintln!("split: {:?}", t.elapsed() / 20);
    let t = Instant::now();
    for _ in 0..20 {
        let _ = arch_syntax::lexer::lex(program);
    }
    eprintln!("lex: {:?}", t.elapsed() / 20);
}

/// Where the time of one incremental edit goes (ARCH_BENCH_PROBE=1).
#[allow(dead_code)]
fn probe_incremental(program: &str, at: usize) {
    let mut db = RootDatabase::default();
    let f = db.set_file("/bench/program.arch", program.to_string());
    let _ = file_diagnostics(&db, f).len();
    let (mut t_set, mut t_split, mut t_diag) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    let n = 100;
    for i in 0..n {
        let mut text = program.to_string();
        let digit = char::from(b'5' + (i % 4) as u8);
        text.replace_range(at..at + 1, &digit.to_string());
        let t = Instant::now();
        let f = db.set_file("/bench/program.arch", text);
        t_set += t.elapsed();
        let t = Instant::now();
        let _ = arch_sema::file_decls(&db, f).len();
        t_split += t.elapsed();
        let t = Instant::now();
        let _ = file_diagnostics(&db, f).len();
        t_diag += t.elapsed();
    }
    eprintln!(
        "set_file {:?}, file_decls {:?}, file_diagnostics {:?}",
        t_set / n,
        t_split / n,
        t_diag / n
    );
}
