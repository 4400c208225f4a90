//! `archc build` and `archc run`: tune the open knobs, lower the workload
//! through MLIR to LLVM IR (every stage kept: `--emit mlir`,
//! `ARCH_DUMP_MLIR=DIR`), make an object for this machine, link
//! `lib<workload>.so` with its header and manifest, and for `run` load it,
//! feed it inputs, check its outputs against the reference interpreter and
//! time it beside the cost model's prediction.

use crate::cli::Common;
use crate::cost_cmd::{select, tuned, with_threads, Selected, Selection, TuneKnobs};
use crate::{EXIT_DIAGNOSTICS, EXIT_OK, EXIT_USAGE};
use arch_codegen::{abi, HostTarget};
use arch_cost::evaluate::CostReport;
use arch_cost::schedule::Schedule;
use arch_sema::hardware::HwClass;
use clap::{Args, ValueEnum};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq)]
pub enum Emit {
    /// Print the MLIR module after every stage (linalg, scheduled, bufferized, loops, llvm).
    Mlir,
    /// Print the optimized LLVM IR.
    Llvm,
    /// Print the assembly for this machine.
    Asm,
    /// Write `<workload>.o` into DIR.
    Obj,
    /// Write `lib<workload>.so`, `<workload>.h`, `<workload>.manifest.json`, `report.json` into DIR.
    Lib,
    /// Print the PTX of every kernel (NVIDIA gpu targets).
    Ptx,
    /// Print the AMDGCN assembly of every kernel (AMD gpu targets).
    Amdgcn,
    /// NPU program (not built yet).
    Npu,
    /// NIR graph for neuromorphic targets (not built yet).
    Nir,
}

#[derive(Args, Debug)]
pub struct BuildArgs {
    #[command(flatten)]
    selection: Selection,
    /// The directory the artifacts go to (created if missing).
    #[arg(short = 'o', long = "out-dir", value_name = "DIR")]
    out_dir: Option<PathBuf>,
    /// What to produce.
    #[arg(long, value_enum, default_value_t = Emit::Lib)]
    emit: Emit,
    #[command(flatten)]
    tune: TuneKnobs,
    #[command(flatten)]
    common: Common,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub(crate) selection: Selection,
    /// Read inputs and weights from DIR/<name>.npy instead of random values.
    #[arg(long, value_name = "DIR")]
    pub(crate) inputs: Option<PathBuf>,
    /// Seed of the random inputs.
    #[arg(long, default_value_t = 0)]
    pub(crate) input_seed: u64,
    /// Timed runs (the median is reported) after one warm-up run.
    #[arg(long, default_value_t = 10)]
    pub(crate) runs: usize,
    /// Keep the built library here (default: a temporary directory, removed).
    #[arg(long, value_name = "DIR")]
    pub(crate) build_dir: Option<PathBuf>,
    /// Write the report with the measurement (JSON) here.
    #[arg(long, value_name = "PATH")]
    pub(crate) report: Option<PathBuf>,
    /// Skip the comparison with the reference interpreter.
    #[arg(long)]
    pub(crate) no_check: bool,
    /// gpu targets: run the kernels on this CPU instead of a GPU, every
    /// block and every thread in order (after tiling and swizzling, before
    /// GPU ids), and check them against the reference interpreter (its
    /// time is the emulation's, not the GPU's).
    #[arg(long)]
    pub(crate) emulate: bool,
    /// Also time every op alone (each built as its own library, fed the
    /// values the ops before it computed; the ops of a row chain, which run
    /// as one kernel, together) and print measured beside predicted per op;
    /// the report's ops carry `measured`.
    #[arg(long)]
    pub(crate) profile: bool,
    #[command(flatten)]
    pub(crate) tune: TuneKnobs,
    #[command(flatten)]
    pub(crate) common: Common,
}

pub(crate) use arch_codegen::cpu::Compiled;

/// Lowers `s.workload` under `schedule` and makes an object for this
/// machine. Errors are messages for the user (what is not supported, or
/// what MLIR or LLVM said); with `ARCH_DUMP_MLIR` the failing input is kept.
pub(crate) fn compile(s: &Selected, schedule: &Schedule) -> Result<Compiled, String> {
    let w = &s.workload;
    let mut nests = vec![None; w.ops.len()];
    for op in &schedule.ops {
        if let Some(slot) = nests.get_mut(op.op) {
            *slot = Some(op.nest.clone());
        }
    }
    let cores = s.hardware.cores.max(1);
    arch_codegen::cpu::compile(w, &nests, &HostTarget::detect(), cores).map_err(|e| {
        if let (Some(dir), Some(input)) = (std::env::var_os("ARCH_DUMP_MLIR"), &e.input) {
            let dir = PathBuf::from(dir);
            let _ = std::fs::create_dir_all(&dir)
                .and_then(|()| std::fs::write(dir.join(format!("{}.input.mlir", w.name)), input));
        }
        e.message
    })
}

/// `ARCH_DUMP_MLIR=DIR`: every stage (and the LLVM IR) as files.
fn dump_stages(c: &Compiled, workload: &str, err: &mut dyn Write) {
    let Some(dir) = std::env::var_os("ARCH_DUMP_MLIR") else {
        return;
    };
    let dir = PathBuf::from(dir);
    let write = |name: String, text: &str| -> std::io::Result<()> {
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join(name), text)
    };
    let mut result = write(format!("{workload}.input.mlir"), &c.input);
    for (i, stage) in c.stages.iter().enumerate() {
        result = result.and(write(
            format!("{workload}.{i}.{}.mlir", stage.name),
            &stage.text,
        ));
    }
    result = result.and(write(format!("{workload}.ll"), &c.llvm_ir));
    result = result.and(write(format!("{workload}.opt.ll"), &c.object.optimized_ir));
    match result {
        Ok(()) => {
            let _ = writeln!(err, "wrote every MLIR stage to {}", dir.display());
        }
        Err(e) => {
            let _ = writeln!(
                err,
                "warning: ARCH_DUMP_MLIR: cannot write {}: {e}",
                dir.display()
            );
        }
    }
}

/// The artifacts of a library build.
pub(crate) struct Library {
    pub(crate) path: PathBuf,
    pub(crate) manifest: abi::Manifest,
}

/// Writes the library, header, manifest and report into `dir`.
pub(crate) fn write_library(
    s: &Selected,
    c: &Compiled,
    report: &CostReport,
    dir: &Path,
) -> Result<Library, String> {
    let name = &s.workload.name;
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let object = dir.join(format!("{name}.o"));
    let library = dir.join(format!("lib{name}.so"));
    let header = dir.join(format!("{name}.h"));
    std::fs::write(&object, &c.object.bytes)
        .map_err(|e| format!("cannot write {}: {e}", object.display()))?;
    arch_codegen::link_shared(&object, &library, &c.libraries()).map_err(|e| e.to_string())?;
    let _ = std::fs::remove_file(&object);
    std::fs::write(&header, abi::header(&s.workload))
        .map_err(|e| format!("cannot write {}: {e}", header.display()))?;
    let manifest = abi::Manifest {
        workload: name.clone(),
        function: name.clone(),
        library: format!("lib{name}.so"),
        header: format!("{name}.h"),
        target: s.hardware.name.clone(),
        cpu: c.host.cpu.clone(),
        cpu_features: c.host.features.clone(),
        threads: c.threads,
        arguments: abi::arguments(&s.workload),
        returns: "int32_t: 0 on success",
    };
    let json = |v: &dyn erased::Json| v.to_pretty();
    std::fs::write(dir.join(format!("{name}.manifest.json")), json(&manifest))
        .map_err(|e| format!("cannot write the manifest: {e}"))?;
    std::fs::write(dir.join("report.json"), json(report))
        .map_err(|e| format!("cannot write report.json: {e}"))?;
    Ok(Library {
        path: library,
        manifest,
    })
}

pub(crate) mod erased {
    /// Pretty JSON of any serializable value, behind one object-safe trait.
    pub trait Json {
        fn to_pretty(&self) -> String;
    }
    impl<T: serde::Serialize> Json for T {
        fn to_pretty(&self) -> String {
            serde_json::to_string_pretty(self).unwrap_or_default() + "\n"
        }
    }
}

pub(crate) fn not_cpu(s: &Selected, err: &mut dyn Write) -> Option<u8> {
    if s.hardware.class == HwClass::Cpu {
        return None;
    }
    let _ = writeln!(
        err,
        "error: code generation for {} targets is not built yet; `{}` is one (cpu targets build: try `--target host`)",
        s.hardware.class.name(),
        s.hardware.name
    );
    Some(EXIT_DIAGNOSTICS)
}

pub fn build(a: BuildArgs, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let s = match select(&a.selection, &a.common, out, err) {
        Ok(s) => with_threads(s, a.tune.threads),
        Err(code) => return code,
    };
    if s.hardware.class == HwClass::Gpu {
        return build_gpu(&s, &a, out, err);
    }
    if matches!(a.emit, Emit::Ptx | Emit::Amdgcn | Emit::Npu | Emit::Nir) {
        let _ = writeln!(
            err,
            "error: `--emit {}` is not built yet for {} targets; cpu targets emit mlir, llvm, asm, obj and lib",
            format!("{:?}", a.emit).to_lowercase(),
            s.hardware.class.name()
        );
        return EXIT_DIAGNOSTICS;
    }
    if let Some(code) = not_cpu(&s, err) {
        return code;
    }
    let needs_dir = matches!(a.emit, Emit::Obj | Emit::Lib);
    if needs_dir && a.out_dir.is_none() {
        let _ = writeln!(
            err,
            "error: `--emit {}` needs `-o DIR`",
            format!("{:?}", a.emit).to_lowercase()
        );
        return EXIT_USAGE;
    }
    let (schedule, report) = match tuned(&s, &a.tune, err) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let started = Instant::now();
    let compiled = match compile(&s, &schedule) {
        Ok(c) => c,
        Err(m) => {
            let _ = writeln!(err, "error: {m}");
            return EXIT_DIAGNOSTICS;
        }
    };
    dump_stages(&compiled, &s.workload.name, err);
    match a.emit {
        Emit::Mlir => {
            for stage in &compiled.stages {
                let _ = writeln!(out, "// ----- stage: {} -----\n{}", stage.name, stage.text);
            }
            EXIT_OK
        }
        Emit::Llvm => {
            let _ = write!(out, "{}", compiled.object.optimized_ir);
            EXIT_OK
        }
        Emit::Asm => match arch_codegen::assembly(
            &compiled.object.optimized_ir,
            &s.workload.name,
            &compiled.host,
        ) {
            Ok(asm) => {
                let _ = write!(out, "{asm}");
                EXIT_OK
            }
            Err(e) => {
                let _ = writeln!(err, "error: {e}");
                EXIT_DIAGNOSTICS
            }
        },
        Emit::Obj | Emit::Lib => {
            let Some(dir) = a.out_dir.as_deref() else {
                return EXIT_USAGE;
            };
            let result = if a.emit == Emit::Obj {
                let path = dir.join(format!("{}.o", s.workload.name));
                std::fs::create_dir_all(dir)
                    .and_then(|()| std::fs::write(&path, &compiled.object.bytes))
                    .map(|()| path)
                    .map_err(|e| format!("cannot write into {}: {e}", dir.display()))
            } else {
                write_library(&s, &compiled, &report, dir).map(|l| l.path)
            };
            match result {
                Ok(path) => {
                    let _ = writeln!(
                        err,
                        "built {} for {} ({}) in {:.2} s (tuning excluded)",
                        path.display(),
                        s.hardware.name,
                        compiled.host.cpu,
                        started.elapsed().as_secs_f64()
                    );
                    EXIT_OK
                }
                Err(m) => {
                    let _ = writeln!(err, "error: {m}");
                    EXIT_DIAGNOSTICS
                }
            }
        }
        Emit::Ptx | Emit::Amdgcn | Emit::Npu | Emit::Nir => EXIT_DIAGNOSTICS,
    }
}

/// `archc build` for a gpu target.
fn build_gpu(s: &Selected, a: &BuildArgs, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    use crate::gpu_build;
    let fail = |err: &mut dyn Write, m: String| {
        let _ = writeln!(err, "error: {m}");
        EXIT_DIAGNOSTICS
    };
    let (vendor, chip) = match gpu_build::target(s) {
        Ok(t) => t,
        Err(m) => return fail(err, m),
    };
    let asm_emit = if vendor == arch_mlir::gpu::Vendor::Nvidia {
        Emit::Ptx
    } else {
        Emit::Amdgcn
    };
    match a.emit {
        Emit::Lib | Emit::Mlir => {}
        e if e == asm_emit => {}
        e => {
            return fail(
                err,
                format!(
                    "`--emit {}` is not for {} ({chip}); gpu targets emit mlir, {} and lib (the default: kernels, manifest and report in -o DIR)",
                    format!("{e:?}").to_lowercase(),
                    s.hardware.name,
                    format!("{asm_emit:?}").to_lowercase()
                ),
            )
        }
    }
    if a.emit == Emit::Lib && a.out_dir.is_none() {
        let _ = writeln!(err, "error: `--emit lib` needs `-o DIR`");
        return EXIT_USAGE;
    }
    let (schedule, report) = match tuned(s, &a.tune, err) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let started = Instant::now();
    let kernels = match gpu_build::compile(s, &schedule, vendor, &chip) {
        Ok(k) => k,
        Err(m) => return fail(err, m),
    };
    match a.emit {
        Emit::Mlir => {
            for k in &kernels {
                let _ = writeln!(
                    out,
                    "// ----- kernel {}: stage: gpu-dialect -----\n{}",
                    k.plan.name, k.module
                );
                for st in &k.stages[1..] {
                    let _ = writeln!(
                        out,
                        "// ----- kernel {}: stage: {} -----\n{}",
                        k.plan.name, st.name, st.text
                    );
                }
            }
            EXIT_OK
        }
        Emit::Lib => {
            let Some(dir) = a.out_dir.as_deref() else {
                return EXIT_USAGE;
            };
            match gpu_build::write(s, &kernels, (vendor, &chip), (&schedule, &report), dir) {
                Ok(_) => {
                    let _ = writeln!(
                        err,
                        "built {} kernel{} for {} ({chip}) into {} in {:.2} s (tuning excluded)",
                        kernels.len(),
                        if kernels.len() == 1 { "" } else { "s" },
                        s.hardware.name,
                        dir.display(),
                        started.elapsed().as_secs_f64()
                    );
                    EXIT_OK
                }
                Err(m) => fail(err, m),
            }
        }
        _ => {
            for k in &kernels {
                let _ = writeln!(out, "// ----- kernel {} -----\n{}", k.plan.name, k.assembly);
            }
            EXIT_OK
        }
    }
}
