//! `archc calibrate --target host`: measures this machine (FMA throughput
//! per element type on one core, read bandwidth of working sets sized to
//! each cache level and to memory, the part of L3 one core keeps at L3
//! speed, the latency of L3 and memory) with kernels built by archc itself, and
//! writes a hardware description with those numbers that `--hardware FILE
//! --target <name>` then uses.

use crate::{EXIT_DIAGNOSTICS, EXIT_OK, EXIT_USAGE};
use arch_codegen::calibrate::{module, FMA_CHAINS, FMA_TYPES};
use arch_codegen::HostTarget;
use arch_runtime::native::{Bench, Buffer};
use clap::Args;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Args, Debug)]
pub struct CalibrateArgs {
    /// The hardware to calibrate: `host`, the machine archc runs on.
    #[arg(long, value_name = "HW", default_value = "host")]
    target: String,
    /// Write the calibrated description here (declaring `--name`) instead
    /// of replacing the cached calibration that `--target host` uses.
    #[arg(short = 'o', long, value_name = "FILE.arch")]
    output: Option<PathBuf>,
    /// The name of the hardware declared in it.
    #[arg(long, default_value = "host_calibrated")]
    name: String,
    /// Shorter measurements (less stable numbers).
    #[arg(long)]
    quick: bool,
}

/// A cache level as Linux describes it.
struct Cache {
    level: u32,
    bytes: u64,
    shared: bool,
}

fn caches() -> Vec<Cache> {
    let mut out = Vec::new();
    let base = Path::new("/sys/devices/system/cpu/cpu0/cache");
    let Ok(entries) = std::fs::read_dir(base) else {
        return out;
    };
    for e in entries.flatten() {
        let read = |f: &str| std::fs::read_to_string(e.path().join(f)).unwrap_or_default();
        let kind = read("type");
        if kind.trim() == "Instruction" {
            continue;
        }
        let level: u32 = read("level").trim().parse().unwrap_or(0);
        let size = read("size");
        let size = size.trim();
        let bytes = match size.strip_suffix('K') {
            Some(k) => k.parse::<u64>().unwrap_or(0) << 10,
            None => match size.strip_suffix('M') {
                Some(m) => m.parse::<u64>().unwrap_or(0) << 20,
                None => size.parse().unwrap_or(0),
            },
        };
        let shared_list = read("shared_cpu_list");
        let shared = shared_list.contains(',') || shared_list.contains('-');
        if level > 0 && bytes > 0 {
            out.push(Cache {
                level,
                bytes,
                shared,
            });
        }
    }
    out.sort_by_key(|c| c.level);
    out
}

fn cpu_field(name: &str) -> Option<String> {
    let text = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    text.lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
}

/// Runs `f(count)` with counts growing until one call takes `target`,
/// then returns the median rate (work per second) of `runs` calls.
fn measure(
    mut f: impl FnMut(i64) -> Result<Duration, String>,
    work_per_count: f64,
    target: Duration,
    runs: usize,
) -> Result<f64, String> {
    let mut count: i64 = 1;
    loop {
        let t = f(count)?;
        if t >= target / 4 || count > (1 << 40) {
            let scale = (target.as_secs_f64() / t.as_secs_f64().max(1e-9)).clamp(1.0, 1e6);
            count = ((count as f64) * scale).ceil() as i64;
            break;
        }
        count *= 4;
    }
    let mut rates: Vec<f64> = (0..runs.max(1))
        .map(|_| f(count).map(|t| work_per_count * count as f64 / t.as_secs_f64().max(1e-12)))
        .collect::<Result<_, _>>()?;
    rates.sort_by(f64::total_cmp);
    Ok(rates[rates.len() / 2])
}

pub fn calibrate(a: CalibrateArgs, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    if a.target != "host" {
        let _ = writeln!(
            err,
            "error: only `host` (the machine archc runs on) can be calibrated; got `{}`",
            a.target
        );
        return EXIT_USAGE;
    }
    if !a
        .name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_')
        || a.name.starts_with(|c: char| c.is_ascii_digit())
    {
        let _ = writeln!(err, "error: `{}` is not a name for hardware", a.name);
        return EXIT_USAGE;
    }
    let Some(output) = &a.output else {
        return match crate::calibration::refresh(err) {
            Ok((path, text)) => {
                let _ = write!(out, "{text}");
                let _ = writeln!(
                    err,
                    "wrote {}: `--target host` on tune, report, build and run uses it",
                    path.display()
                );
                EXIT_OK
            }
            Err(m) => {
                let _ = writeln!(err, "error: {m}");
                EXIT_DIAGNOSTICS
            }
        };
    };
    match measure_host(&a.name, a.quick, err) {
        Ok(text) => match std::fs::write(output, &text) {
            Ok(()) => {
                let _ = write!(out, "{text}");
                let _ = writeln!(
                    err,
                    "wrote {}; use it with `--hardware {} --target {}`",
                    output.display(),
                    output.display(),
                    a.name
                );
                EXIT_OK
            }
            Err(e) => {
                let _ = writeln!(err, "error: cannot write {}: {e}", output.display());
                EXIT_USAGE
            }
        },
        Err(m) => {
            let _ = writeln!(err, "error: {m}");
            EXIT_DIAGNOSTICS
        }
    }
}

/// Measures this machine; returns a hardware description named `name`.
pub(crate) fn measure_host(name: &str, quick: bool, err: &mut dyn Write) -> Result<String, String> {
    let host = HostTarget::detect();
    let vector_bytes = host.vector_bytes();
    let caches = caches();
    let cache_bytes = |level: u32, default: u64| {
        caches
            .iter()
            .find(|c| c.level == level)
            .map_or(default, |c| c.bytes)
    };
    let (l1, l2, l3) = (
        cache_bytes(1, 32 << 10),
        cache_bytes(2, 512 << 10),
        cache_bytes(3, 8 << 20),
    );
    let l3_shared = caches.iter().any(|c| c.level == 3 && c.shared);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    // Working sets well inside each level (and far beyond the last).
    let round = |x: u64| (x / 4096).max(1) * 4096;
    let sets = [
        ("l1", round(l1 / 2)),
        ("l2", round(l2 / 2)),
        ("l3", round((l3 / 4).min(16 << 20))),
        ("dram", round((l3 * 8).max(256 << 20))),
        // How much of L3 this core really gets (neighbours on a shared
        // cache take part of it): reads of half and three quarters of it.
        ("l3 half", round(l3 / 2)),
        ("l3 three quarters", round(l3 / 4 * 3)),
    ];
    // L3 read by every core at once, each from a buffer of its own: the
    // buffers together fill at most 3/4 of it, each at least twice L2 (on
    // a chip with too many cores for that, not measured).
    let l3_each = round(sets[2].1.min(l3 / 4 * 3 / cores as u64));
    let l3_each = (cores > 1 && l3_each >= 2 * l2).then_some(l3_each);
    let mut sizes: Vec<u64> = sets.iter().map(|s| s.1).collect();
    sizes.extend(l3_each);
    sizes.sort_unstable();
    sizes.dedup();
    let text = module(vector_bytes, &sizes);
    let lowered = arch_mlir::pipeline::run(&text, &arch_mlir::pipeline::cpu_stages(false, 1))
        .map_err(|e| e.to_string())?;
    let object =
        arch_codegen::object(&lowered.llvm_ir, "calibrate", &host).map_err(|e| e.to_string())?;
    let dir = std::env::temp_dir().join(format!("archc-calibrate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let (obj, lib) = (dir.join("calibrate.o"), dir.join("libcalibrate.so"));
    type Measured<'a> = (Vec<(&'a str, f64)>, Vec<(&'a str, f64)>);
    let result = (|| -> Result<Measured, String> {
        std::fs::write(&obj, &object.bytes).map_err(|e| e.to_string())?;
        arch_codegen::link_shared(&obj, &lib, &["m"]).map_err(|e| e.to_string())?;
        let bench = Bench::open(&lib).map_err(|e| e.to_string())?;
        let (target, runs) = if quick {
            (Duration::from_millis(20), 3)
        } else {
            (Duration::from_millis(150), 7)
        };
        let mut flops = Vec::new();
        for (t, bytes) in FMA_TYPES {
            let lanes = (vector_bytes / bytes) as f64;
            let name = format!("fma_{t}");
            let rate = measure(
                |n| {
                    bench
                        .count(&name, n, *t == "f64")
                        .map(|x| x.1)
                        .map_err(|e| e.to_string())
                },
                FMA_CHAINS as f64 * lanes * 2.0,
                target,
                runs,
            )?;
            let _ = writeln!(err, "fma {t}: {:.1} GFLOP/s on one core", rate / 1e9);
            flops.push((*t, rate));
        }
        let mut bandwidth = Vec::new();
        for (level, bytes) in sets {
            let mut buffer = Buffer::new(&vec![1u8; bytes as usize]);
            let name = format!("read_{bytes}");
            let rate = measure(
                |n| {
                    bench
                        .read(&name, &mut buffer, n)
                        .map(|x| x.1)
                        .map_err(|e| e.to_string())
                },
                bytes as f64,
                target,
                runs,
            )?;
            let _ = writeln!(
                err,
                "{level}: {:.1} GB/s reading {} KiB on one core",
                rate / 1e9,
                bytes >> 10
            );
            bandwidth.push((level, rate));
        }
        // A level streamed by every core at once: the chip's bandwidth,
        // which one core alone does not reach (its outstanding misses
        // limit it) and which the cores share. Each core reads a buffer of
        // its own of `bytes`.
        let all_cores = |bytes: u64| -> Result<f64, String> {
            let name = format!("read_{bytes}");
            let mut buffers: Vec<Buffer> = (0..cores)
                .map(|_| Buffer::new(&vec![1u8; bytes as usize]))
                .collect();
            measure(
                |n| {
                    let start = std::time::Instant::now();
                    std::thread::scope(|scope| {
                        let calls: Vec<_> = buffers
                            .iter_mut()
                            .map(|b| {
                                let (bench, name) = (&bench, &name);
                                scope.spawn(move || bench.read(name, b, n).map(|_| ()))
                            })
                            .collect();
                        calls.into_iter().try_for_each(|c| {
                            c.join()
                                .map_err(|_| "a calibration thread panicked".to_string())?
                                .map_err(|e| e.to_string())
                        })
                    })?;
                    Ok(start.elapsed())
                },
                (bytes * cores as u64) as f64,
                target,
                runs,
            )
        };
        let dram_each = (cores > 1).then(|| sets.iter().find(|s| s.0 == "dram").map_or(0, |s| s.1));
        for (level, each, key) in [
            ("dram", dram_each, "dram all cores"),
            ("l3", l3_each, "l3 all cores"),
        ] {
            let Some(bytes) = each else { continue };
            let rate = all_cores(bytes)?;
            let _ = writeln!(
                err,
                "{level}: {:.1} GB/s reading {} KiB on each of {cores} cores",
                rate / 1e9,
                bytes >> 10
            );
            bandwidth.push((key, rate));
        }
        Ok((flops, bandwidth))
    })();
    let _ = std::fs::remove_dir_all(&dir);
    let (flops, bandwidth) = result?;
    let gemm = measure_gemm(&host, if quick { 384 } else { 768 }, quick)?;
    // Each builtin as the work the product's rate does in its time: what
    // the cpu model charges per element (a Zen 4 core runs a polynomial's
    // additions and multiplications on pipes of their own, an Emerald
    // Rapids core on the same two: the same code costs them different
    // shares of their FMA rate).
    let mut builtins = Vec::new();
    for func in CALIBRATED_BUILTINS {
        let seconds = measure_builtin(&host, func, quick)?;
        let work = seconds * gemm;
        let _ = writeln!(
            err,
            "{func}: {:.2} ns per element on one core (as {work:.1} flops of the product's rate)",
            seconds * 1e9
        );
        builtins.push((func, work));
    }
    // Latencies: a chase of dependent loads through a working set inside
    // L3 and one far outside it.
    let hops = if quick { 200_000 } else { 1_000_000 };
    // The least of three: neighbours on a shared machine only add time.
    let least = |bytes: u64| {
        (0..3)
            .map(|_| chase_ns(bytes, hops))
            .fold(f64::INFINITY, f64::min)
    };
    let dram_latency = least(round((l3 * 4).max(128 << 20)));
    // A chase inside L3 that runs near DRAM's latency did not stay in L3
    // (a neighbour on a shared machine evicting it): measured again after
    // a pause, and if it never gets below half of DRAM's, written as an
    // estimate (a third of DRAM's; std.hw.host's ratio) with a warning.
    let mut l3_latency = f64::INFINITY;
    for attempt in 0..4 {
        if attempt > 0 {
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        l3_latency = l3_latency.min(least(round((l3 / 4).min(16 << 20))));
        if l3_latency < 0.5 * dram_latency {
            break;
        }
    }
    let l3_latency_note = if l3_latency < 0.5 * dram_latency {
        "measured, dependent loads"
    } else {
        let _ = writeln!(
            err,
            "warning: L3 latency measured {l3_latency:.1} ns, as slow as DRAM: the L3 was disturbed; using an estimate"
        );
        l3_latency = dram_latency * 0.3;
        "estimate: a third of DRAM's (the measurement was disturbed)"
    };
    let _ = writeln!(
        err,
        "latency: l3 {l3_latency:.1} ns, dram {dram_latency:.1} ns (dependent loads)"
    );
    let _ = writeln!(
        err,
        "f32 matrix product ({}^3, archc's packed kernel): {:.1} GFLOP/s on one core",
        if quick { 384 } else { 768 },
        gemm / 1e9
    );
    let ghz = cpu_field("cpu MHz")
        .and_then(|m| m.parse::<f64>().ok())
        .map_or(2.0, |m| m / 1000.0);
    let model = cpu_field("model name").unwrap_or_else(|| host.cpu.clone());
    let per_cycle = |rate: f64| rate / (ghz * 1e9);
    let bw = |level: &str| {
        bandwidth
            .iter()
            .find(|b| b.0 == level)
            .map_or(0.0, |b| b.1 / 1e9)
    };
    let flop = |t: &str| flops.iter().find(|f| f.0 == t).map_or(0.0, |f| f.1);
    let mut s = String::new();
    let when = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    s.push_str(&format!(
        "// Measured by `archc calibrate` on {model} ({}, {} B vectors), at unix time {when}.\n",
        host.cpu, vector_bytes
    ));
    s.push_str("// Rates are one core's: FMA chains in registers, and reads of a working set\n");
    s.push_str("// half the size of each cache (an eighth of L3; 8x L3 for dram), and L3's\n");
    s.push_str(
        "// and DRAM's also with every core reading at once. Energies are not measured: they\n",
    );
    s.push_str("// are std.hw.host's estimates.\n");
    s.push_str(&format!("hardware {name} : cpu {{\n"));
    s.push_str(&format!("  vendor \"{}\"\n", model.replace('"', "'")));
    s.push_str("  description \"this machine, calibrated by archc calibrate\"\n");
    s.push_str(&format!(
        "  clock {ghz:.3} GHz                      // /proc/cpuinfo `cpu MHz` while calibrating\n"
    ));
    s.push_str(&format!(
        "  cores {cores}                            // available parallelism\n"
    ));
    // The chip's rate when every core streaming beat one core (never
    // below one core's: a neighbour's noise only lowers it), and one core's
    // as `core_bandwidth`.
    let dram_line = if bw("dram all cores") > bw("dram") {
        format!(
            "bandwidth {:.2} GB/s                 // measured, all {cores} cores streaming\n    core_bandwidth {:.2} GB/s            // measured, one core streaming",
            bw("dram all cores"),
            bw("dram")
        )
    } else {
        format!(
            "bandwidth {:.2} GB/s                 // measured, one core streaming (no more with every core)",
            bw("dram")
        )
    };
    s.push_str(&format!(
        "\n  level dram {{\n    {dram_line}\n    latency {dram_latency:.1} ns                  // measured, dependent loads\n    energy 160 pJ/B                     // estimate (std.hw.host)\n  }}\n"
    ));
    let l3_scope = if l3_shared { "" } else { " per core" };
    // The L3 this core can use: the largest working set measured that
    // still reads at 60 % of L3's rate, over 3/4 (the fraction
    // the cpu model fills before it sends a workload's data to DRAM).
    // The edge lies between the largest set that passed and the next one
    // measured: halfway.
    let sets = [("l3", 1u64), ("l3 half", 2), ("l3 three quarters", 3)];
    let passed = sets
        .iter()
        .rposition(|(set, _)| bw(set) >= 0.6 * bw("l3"))
        .unwrap_or(0);
    let usable = match sets.get(passed + 1) {
        Some((_, next)) => l3 / 8 * (sets[passed].1 + next),
        None => l3,
    };
    let effective_l3 = usable / 3 * 4;
    let l3_note = if effective_l3 >= l3 {
        "sysfs cache size".to_string()
    } else {
        format!(
            "measured: sysfs says {} KiB; one core's reads keep 60 % of L3's rate up to about {} KiB (a shared cache)",
            l3 >> 10,
            usable >> 10
        )
    };
    let l3 = effective_l3.min(l3);
    // (level, size in bytes, size scope, energy pJ/B: std.hw.host's estimates)
    for (level, bytes, scope, energy) in [
        ("l3", l3, l3_scope, 25.0),
        ("l2", l2, " per core", 12.0),
        ("l1", l1, " per core", 2.5),
    ] {
        let latency = if level == "l3" {
            format!("\n    latency {l3_latency:.1} ns    // {l3_latency_note}")
        } else {
            String::new()
        };
        let rate = if level == "l3" && l3_shared {
            shared_bandwidth_lines(bw("l3"), bw("l3 all cores"), cores)
        } else {
            format!("bandwidth {:.2} GB/s per core    // measured", bw(level))
        };
        s.push_str(&format!(
            "  level {level} {{\n    size {} KiB{scope}    // {}\n    {rate}{latency}\n    energy {energy} pJ/B    // estimate (std.hw.host)\n  }}\n",
            bytes >> 10,
            if level == "l3" { l3_note.as_str() } else { "sysfs cache size" },
        ));
    }
    s.push_str(&format!(
        "  compute fma {{\n    f32: {:.2} flop/cycle per core       // measured: archc's packed f32 matrix product, one core (FMA peak {:.2})\n    f64: {:.2} flop/cycle per core       // measured\n    bf16: {:.2} flop/cycle per core      // archc computes 16-bit floats in f32: the f32 rate\n    vector {vector_bytes} B                         // widest vector register LLVM targets here\n    energy 2 pJ/flop                    // estimate (std.hw.host)\n{}  }}\n}}\n",
        per_cycle(gemm),
        per_cycle(flop("f32")),
        per_cycle(flop("f64")),
        per_cycle(gemm),
        builtins
            .iter()
            .map(|(func, work)| format!(
                "    {func} {work:.1} flop    // measured: archc's {func} over {} x {} f32 (in L2), one core, at the f32 rate above\n",
                BUILTIN_SHAPE.0, BUILTIN_SHAPE.1
            ))
            .collect::<String>(),
    ));
    Ok(s)
}

/// The bandwidth entries of a level the cores share, from one core's rate
/// and every core's at once (GB/s; 0 if not measured): the chip's rate and
/// one core's (`core_bandwidth`) where every core together got less than
/// the sum of their rates alone, else one core's rate per core.
fn shared_bandwidth_lines(one: f64, all: f64, cores: usize) -> String {
    if all <= 0.0 {
        return format!("bandwidth {one:.2} GB/s per core    // measured");
    }
    let all = all.max(one);
    if all < 0.95 * one * cores as f64 {
        format!(
            "bandwidth {all:.2} GB/s    // measured, all {cores} cores reading\n    core_bandwidth {one:.2} GB/s    // measured, one core reading"
        )
    } else {
        format!("bandwidth {one:.2} GB/s per core    // measured (every core reading at once too)")
    }
}

/// The rate of archc's own f32 matrix product (`n`^3, the packed kernel,
/// one thread): what the cpu model's f32 rate should be for the code archc
/// makes, as opposed to the FMA units' peak.
/// Nanoseconds per load when each load's address comes from the one
/// before, through `bytes` of memory visited in a random cycle of cache
/// lines (no prefetcher can follow it): the level's latency.
fn chase_ns(bytes: u64, hops: usize) -> f64 {
    let lines = (bytes / 64).max(2) as usize;
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut below = |n: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % n.max(1) as u64) as usize
    };
    // Lines in random order within chunks of 256 KiB (64 pages, which the
    // TLB holds: the chase measures the cache, not page walks), chunks in
    // random order.
    let per_chunk = 4096usize.min(lines);
    let mut chunks: Vec<usize> = (0..lines.div_ceil(per_chunk)).collect();
    for i in (1..chunks.len()).rev() {
        let j = below(i + 1);
        chunks.swap(i, j);
    }
    let mut order = Vec::with_capacity(lines);
    for c in chunks {
        let mut inside: Vec<usize> = (c * per_chunk..((c + 1) * per_chunk).min(lines)).collect();
        for i in (1..inside.len()).rev() {
            let j = below(i + 1);
            inside.swap(i, j);
        }
        order.extend(inside);
    }
    let mut next = vec![0usize; lines * 8];
    for w in 0..lines {
        next[order[w] * 8] = order[(w + 1) % lines] * 8;
    }
    let mut at = 0usize;
    // Once around (or the hops) to warm the page tables, then timed.
    for _ in 0..lines.min(hops) {
        at = next[at];
    }
    let started = std::time::Instant::now();
    for _ in 0..hops {
        at = next[at];
    }
    let elapsed = started.elapsed().as_secs_f64();
    std::hint::black_box(at);
    elapsed / hops as f64 * 1e9
}

fn measure_gemm(host: &HostTarget, n: u64, quick: bool) -> Result<f64, String> {
    let text = format!(
        "workload gemm(M = {n}, N = {n}, K = {n}) {{\n  input a: f32[M, K]\n  input b: f32[K, N]\n  output c: f32[M, N]\n  c[i, j] = sum[k] a[i, k] * b[k, j]\n}}\n"
    );
    let full = vec![n, n, n];
    let nest = arch_cost::cpu::LoopNest {
        tiles: vec![
            full.clone(),
            full,
            vec![144.min(n), 16, 256.min(n)],
            vec![6, 16, 256.min(n)],
        ],
        order: vec![0, 1, 2],
        parallel: Vec::new(),
        vector: Some(1),
    };
    // Five rounds 0.4 s apart: one round alone varied by 30 % on a shared
    // VM.
    let t = time_workload(
        host,
        "gemm",
        &text,
        nest,
        if quick { 3 } else { 7 },
        if quick { 1 } else { 5 },
        Duration::from_millis(400),
    )?;
    Ok(2.0 * (n * n * n) as f64 / t.max(1e-12))
}

/// The builtins whose cost `archc calibrate` measures (each unary one
/// archc writes as its own code or a libm call).
const CALIBRATED_BUILTINS: [&str; 6] = ["exp", "log", "sqrt", "tanh", "sigmoid", "erf"];

/// Rows and columns of the element-wise op each builtin is timed on: 256
/// KiB in and out, inside every L2 this runs on.
const BUILTIN_SHAPE: (u64, u64) = (16, 4096);

/// Seconds per element of archc's code for the unary builtin `func` on f32
/// (vectorized along rows of [`BUILTIN_SHAPE`], one core).
fn measure_builtin(host: &HostTarget, func: &str, quick: bool) -> Result<f64, String> {
    let (r, c) = BUILTIN_SHAPE;
    let text = format!(
        "workload builtin(R = {r}, C = {c}) {{\n  input x: f32[R, C]\n  output y: f32[R, C]\n  y[i, j] = {func}(x[i, j])\n}}\n"
    );
    let nest = arch_cost::cpu::LoopNest {
        tiles: vec![vec![r, c], vec![r, c], vec![r, c], vec![1, 256.min(c)]],
        order: vec![0, 1],
        parallel: Vec::new(),
        vector: Some(1),
    };
    // Three rounds a tenth of a second apart, as for the product whose
    // rate prices it.
    let t = time_workload(
        host,
        "builtin",
        &text,
        nest,
        if quick { 11 } else { 31 },
        3,
        Duration::from_millis(100),
    )?;
    Ok(t / (r * c) as f64)
}

/// Seconds of one call of archc's code for the one-op workload `text`
/// (named `name`) under `nest`, on one thread: the fastest of `rounds`
/// rounds' medians of `runs` calls, `gap` apart (on a shared VM neighbours
/// only add time, as for the latencies).
fn time_workload(
    host: &HostTarget,
    name: &str,
    text: &str,
    nest: arch_cost::cpu::LoopNest,
    runs: usize,
    rounds: usize,
    gap: Duration,
) -> Result<f64, String> {
    use arch_sema::db::{file_decls, RootDatabase};
    let mut db = RootDatabase::default();
    let file = db.set_file(&format!("<calibrate>/{name}.arch"), text.to_string());
    let w = file_decls(&db, file)
        .iter()
        .find(|d| d.kind(&db) == "workload")
        .and_then(|d| arch_sema::workload::workload_model(&db, *d).model.clone())
        .ok_or_else(|| format!("the calibration workload `{name}` has no model"))?;
    let compiled = arch_codegen::cpu::compile(&w, &[Some(nest)], host, 1).map_err(|e| e.message)?;
    let dir = std::env::temp_dir().join(format!("archc-calibrate-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let (obj, lib) = (
        dir.join(format!("{name}.o")),
        dir.join(format!("lib{name}.so")),
    );
    let result = (|| -> Result<f64, String> {
        std::fs::write(&obj, &compiled.object.bytes).map_err(|e| e.to_string())?;
        arch_codegen::link_shared(&obj, &lib, &compiled.libraries()).map_err(|e| e.to_string())?;
        let library = arch_runtime::native::Library::open(&lib, name, w.tensors.len())
            .map_err(|e| e.to_string())?;
        let mut buffers: Vec<Buffer> = w
            .tensors
            .iter()
            .map(|t| {
                let elements: u64 = t.shape.iter().product();
                let bytes = elements * t.dtype.bits().div_ceil(8);
                Buffer::new(&vec![0u8; bytes as usize])
            })
            .collect();
        let mut fastest = f64::INFINITY;
        for round in 0..rounds {
            if round > 0 {
                std::thread::sleep(gap);
            }
            let times = arch_runtime::native::time(&library, &mut buffers, 1, runs)
                .map_err(|e| e.to_string())?;
            fastest = fastest.min(arch_runtime::native::median(&times).as_secs_f64());
        }
        Ok(fastest)
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

#[cfg(test)]
mod tests {
    use super::shared_bandwidth_lines;

    /// A shared level whose cores together fall short of their sum says
    /// both rates; one that scales, or was not measured with every core,
    /// keeps one core's rate per core. Each form parses as a level.
    #[test]
    fn shared_levels_say_what_every_core_gets() {
        let short = shared_bandwidth_lines(100.0, 120.0, 4);
        assert!(short.starts_with("bandwidth 120.00 GB/s "), "{short}");
        assert!(short.contains("core_bandwidth 100.00 GB/s"), "{short}");
        let scales = shared_bandwidth_lines(97.0, 190.0, 2);
        assert!(
            scales.starts_with("bandwidth 97.00 GB/s per core"),
            "{scales}"
        );
        assert!(!scales.contains("core_bandwidth"), "{scales}");
        let alone = shared_bandwidth_lines(97.0, 0.0, 1);
        assert!(
            alone.starts_with("bandwidth 97.00 GB/s per core"),
            "{alone}"
        );
        for (lines, shared) in [(short, true), (scales, false), (alone, false)] {
            let text = format!(
                "hardware host : cpu {{\n  clock 2 GHz\n  cores 4\n  level dram {{\n    bandwidth 20 GB/s\n  }}\n  level l3 {{\n    size 8 MiB\n    {lines}\n  }}\n  compute fma {{\n    f32: 32 flop/cycle per core\n    vector 32 B\n  }}\n}}\n"
            );
            let hw = crate::calibration::parse(&text, "calibrated.arch")
                .unwrap_or_else(|| panic!("does not check:\n{text}"));
            let l3 = hw.levels.iter().find(|l| l.name == "l3").expect("l3");
            assert_eq!(l3.core_bandwidth_bytes_per_s.is_some(), shared, "{text}");
        }
    }
}
