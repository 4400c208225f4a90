//! Microbenchmarks for `archc calibrate`, made by the same path as built
//! workloads (MLIR, LLVM for this CPU): an FMA throughput kernel per
//! element type (twelve independent vector FMA chains, enough to cover the
//! FMA latency on two ports) and a read kernel per working-set size (eight
//! vector accumulators streaming a buffer that fits the level measured).
//!
//! Exported functions (C ABI):
//! - `fma_<t>(i64 steps) -> <t>`: `steps` x 12 vector FMAs;
//! - `read_<bytes>(ptr buffer, i64 passes) -> f32`: `passes` reads of
//!   `bytes` bytes.

use std::fmt::Write;

/// Independent accumulator chains of the FMA kernel.
pub const FMA_CHAINS: u64 = 12;

/// The element types the FMA kernel is made for, with their bytes.
pub const FMA_TYPES: &[(&str, u64)] = &[("f32", 4), ("f64", 8)];

/// MLIR for every microbenchmark: FMA kernels for `vector_bytes`-wide
/// registers and read kernels for each working set in `read_sizes` (bytes,
/// multiples of 256).
pub fn module(vector_bytes: u64, read_sizes: &[u64]) -> String {
    let mut s = String::from("module {\n");
    for (t, bytes) in FMA_TYPES {
        let lanes = vector_bytes / bytes;
        let v = format!("vector<{lanes}x{t}>");
        let _ = writeln!(s, "  func.func @fma_{t}(%steps: index) -> {t} {{");
        let _ = writeln!(
            s,
            "    %c0 = arith.constant 0 : index\n    %c1 = arith.constant 1 : index"
        );
        let _ = writeln!(s, "    %a = arith.constant dense<0.999> : {v}\n    %b = arith.constant dense<0.001> : {v}");
        let init: Vec<String> = (0..FMA_CHAINS).map(|i| format!("%x{i} = %b")).collect();
        let names: Vec<String> = (0..FMA_CHAINS).map(|i| format!("%x{i}")).collect();
        let types = vec![v.as_str(); FMA_CHAINS as usize].join(", ");
        let _ = writeln!(
            s,
            "    %r:{FMA_CHAINS} = scf.for %i = %c0 to %steps step %c1 iter_args({}) -> ({types}) {{",
            init.join(", ")
        );
        let mut next = Vec::new();
        for n in &names {
            let y = format!("{n}n");
            let _ = writeln!(s, "      {y} = vector.fma {n}, %a, %b : {v}");
            next.push(y);
        }
        let _ = writeln!(s, "      scf.yield {} : {types}", next.join(", "));
        let _ = writeln!(s, "    }}");
        let mut acc = "%r#0".to_string();
        for i in 1..FMA_CHAINS {
            let _ = writeln!(s, "    %s{i} = arith.addf {acc}, %r#{i} : {v}");
            acc = format!("%s{i}");
        }
        let _ = writeln!(s, "    %sum = vector.reduction <add>, {acc} : {v} into {t}");
        let _ = writeln!(s, "    func.return %sum : {t}\n  }}");
    }
    let lanes = vector_bytes / 4;
    let v = format!("vector<{lanes}xf32>");
    for bytes in read_sizes {
        let elems = bytes / 4;
        let step = lanes * 8;
        let m = format!("memref<{elems}xf32>");
        let _ = writeln!(
            s,
            "  func.func @read_{bytes}(%buf: {m}, %passes: index) -> f32 {{"
        );
        let _ = writeln!(
            s,
            "    %c0 = arith.constant 0 : index\n    %c1 = arith.constant 1 : index"
        );
        let _ = writeln!(
            s,
            "    %n = arith.constant {elems} : index\n    %step = arith.constant {step} : index"
        );
        let _ = writeln!(
            s,
            "    %z = arith.constant dense<0.0> : {v}\n    %f0 = arith.constant 0.0 : f32"
        );
        let names: Vec<String> = (0..8).map(|i| format!("%a{i}")).collect();
        let types = [v.as_str(); 8].join(", ");
        let init: Vec<String> = names.iter().map(|n| format!("{n} = %z")).collect();
        let _ = writeln!(
            s,
            "    %r:8 = scf.for %p = %c0 to %passes step %c1 iter_args({}) -> ({types}) {{",
            init.join(", ")
        );
        let inner: Vec<String> = (0..8).map(|i| format!("%b{i} = %a{i}")).collect();
        let _ = writeln!(
            s,
            "      %q:8 = scf.for %i = %c0 to %n step %step iter_args({}) -> ({types}) {{",
            inner.join(", ")
        );
        let mut next = Vec::new();
        for k in 0..8 {
            let _ = writeln!(s, "        %o{k} = arith.constant {} : index", k * lanes);
            let _ = writeln!(s, "        %j{k} = arith.addi %i, %o{k} : index");
            let _ = writeln!(s, "        %l{k} = vector.load %buf[%j{k}] : {m}, {v}");
            let _ = writeln!(s, "        %y{k} = arith.addf %b{k}, %l{k} : {v}");
            next.push(format!("%y{k}"));
        }
        let _ = writeln!(s, "        scf.yield {} : {types}", next.join(", "));
        let _ = writeln!(s, "      }}");
        let q: Vec<String> = (0..8).map(|i| format!("%q#{i}")).collect();
        let _ = writeln!(s, "      scf.yield {} : {types}", q.join(", "));
        let _ = writeln!(s, "    }}");
        let mut acc = "%r#0".to_string();
        for i in 1..8 {
            let _ = writeln!(s, "    %s{i} = arith.addf {acc}, %r#{i} : {v}");
            acc = format!("%s{i}");
        }
        let _ = writeln!(s, "    %sum = vector.reduction <add>, {acc} : {v} into f32");
        let _ = writeln!(s, "    %_unused = arith.addf %sum, %f0 : f32");
        let _ = writeln!(s, "    func.return %_unused : f32\n  }}");
    }
    s.push_str("}\n");
    s
}
