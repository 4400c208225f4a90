//! `archc build` for gpu targets: the tuned schedule's kernels
//! ([`arch_mlir::gpu`]) through MLIR's gpu dialect to PTX (NVIDIA) or
//! AMDGCN assembly (AMD, assembled with `llvm-mc` and linked into a code
//! object with `ld.lld` where those tools are installed), one file per
//! kernel, with a manifest of the launch sequence and the cost report;
//! and the kernels' host emulation that `archc run --emulate` checks
//! against the reference interpreter.

use crate::cost_cmd::Selected;
use arch_cost::schedule::Schedule;
use arch_mlir::gpu::{KernelPlan, Vendor};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// The vendor and chip of a gpu hardware description.
pub(crate) fn target(s: &Selected) -> Result<(Vendor, String), String> {
    let vendor = s
        .hardware
        .vendor
        .as_deref()
        .unwrap_or("")
        .to_ascii_lowercase();
    let vendor = if vendor.contains("nvidia") {
        Vendor::Nvidia
    } else if vendor.contains("amd") {
        Vendor::Amd
    } else {
        return Err(format!(
            "gpu hardware `{}` needs `vendor \"NVIDIA\"` or `vendor \"AMD\"` to pick its code generator",
            s.hardware.name
        ));
    };
    let chip = match (&s.hardware.chip, vendor) {
        (Some(c), _) => c.clone(),
        (None, Vendor::Nvidia) => "sm_80".into(),
        (None, Vendor::Amd) => "gfx942".into(),
    };
    let valid = match vendor {
        Vendor::Nvidia => chip
            .strip_prefix("sm_")
            .is_some_and(|v| v.len() >= 2 && v.chars().all(|c| c.is_ascii_digit() || c == 'a')),
        Vendor::Amd => chip
            .strip_prefix("gfx")
            .is_some_and(|v| !v.is_empty() && v.chars().all(|c| c.is_ascii_hexdigit())),
    };
    if !valid {
        return Err(format!(
            "hardware `{}`: chip \"{chip}\" is not a {} target (e.g. {})",
            s.hardware.name,
            if vendor == Vendor::Nvidia {
                "CUDA"
            } else {
                "AMDGPU"
            },
            if vendor == Vendor::Nvidia {
                "\"sm_90\""
            } else {
                "\"gfx942\""
            }
        ));
    }
    Ok((vendor, chip))
}

/// Every op's nest of `schedule`, by op.
fn nests(s: &Selected, schedule: &Schedule) -> Vec<Option<arch_cost::cpu::LoopNest>> {
    let mut nests = vec![None; s.workload.ops.len()];
    for op in &schedule.ops {
        if let Some(slot) = nests.get_mut(op.op) {
            *slot = Some(op.nest.clone());
        }
    }
    nests
}

/// One kernel's code: the module it came from, every MLIR stage, and the
/// assembly.
pub(crate) struct GpuKernel {
    pub(crate) plan: KernelPlan,
    pub(crate) module: String,
    pub(crate) stages: Vec<arch_mlir::pipeline::Stage>,
    pub(crate) assembly: String,
}

/// The kernels of `s` under `schedule`, lowered to assembly one by one.
pub(crate) fn compile(
    s: &Selected,
    schedule: &Schedule,
    vendor: Vendor,
    chip: &str,
) -> Result<Vec<GpuKernel>, String> {
    let w = &s.workload;
    let plans = arch_mlir::gpu::plan(
        w,
        &nests(s, schedule),
        schedule.swizzle,
        vendor == Vendor::Nvidia,
    )
    .map_err(|e| e.to_string())?;
    let stages = arch_mlir::gpu::device_stages(vendor, chip);
    plans
        .into_iter()
        .map(|plan| {
            let module = arch_mlir::gpu::device_module(w, std::slice::from_ref(&plan), vendor)
                .map_err(|e| e.to_string())?;
            let done = arch_mlir::pipeline::run_stages(&module, &stages)
                .map_err(|e| format!("kernel `{}`: {e}", plan.name))?;
            let assembly = done
                .last()
                .and_then(|st| arch_mlir::gpu::binary_assembly(&st.text))
                .ok_or_else(|| format!("kernel `{}`: MLIR made no assembly", plan.name))?;
            Ok(GpuKernel {
                plan,
                module,
                stages: done,
                assembly,
            })
        })
        .collect()
}

/// The host emulation of the kernels of `s` (every block and thread in
/// order), compiled for this machine with the C ABI of a cpu build.
pub(crate) fn emulation(
    s: &Selected,
    schedule: &Schedule,
) -> Result<arch_codegen::cpu::Compiled, String> {
    let w = &s.workload;
    // The same kernels the target gets: tensor cores on NVIDIA.
    let nvidia = matches!(target(s), Ok((Vendor::Nvidia, _)));
    let plans = arch_mlir::gpu::plan(w, &nests(s, schedule), schedule.swizzle, nvidia)
        .map_err(|e| e.to_string())?;
    let input = arch_mlir::gpu::host_module(w, &plans).map_err(|e| e.to_string())?;
    // Memrefs already: no bufferization.
    let stages: Vec<_> = arch_mlir::pipeline::cpu_stages(false, 1)
        .into_iter()
        .filter(|st| st.name != "bufferized")
        .collect();
    let lowered = arch_mlir::pipeline::run(&input, &stages)
        .map_err(|e| format!("the kernels' host emulation: {e}"))?;
    let host = arch_codegen::HostTarget::detect();
    let object =
        arch_codegen::object(&lowered.llvm_ir, &w.name, &host).map_err(|e| e.to_string())?;
    Ok(arch_codegen::cpu::Compiled {
        input,
        stages: lowered.stages,
        llvm_ir: lowered.llvm_ir,
        object,
        host,
        threads: 1,
    })
}

#[derive(Serialize)]
struct Manifest {
    workload: String,
    target: String,
    vendor: String,
    chip: String,
    /// Launched in this order, each after the one before finishes.
    kernels: Vec<KernelEntry>,
    /// Device buffers the runtime allocates: every tensor a kernel takes.
    buffers: Vec<BufferEntry>,
}

#[derive(Serialize)]
struct KernelEntry {
    name: String,
    file: String,
    /// The assembled kernel: `.cubin` (ptxas) or `.hsaco` (llvm-mc, ld.lld).
    object: Option<String>,
    grid: [u64; 3],
    block: [u64; 3],
    dynamic_shared_memory: u64,
    /// Buffers by name, in argument order (one pointer each).
    arguments: Vec<String>,
    /// What `ptxas -v` reported (NVIDIA, where ptxas was found).
    ptxas: Option<PtxasInfo>,
    tile: [u64; 2],
    tiles: [u64; 2],
    swizzle: String,
}

/// Resources of one kernel as `ptxas -v` reports them.
#[derive(Serialize, Debug, Clone, Default, PartialEq)]
pub(crate) struct PtxasInfo {
    pub(crate) registers: u64,
    pub(crate) spill_stores: u64,
    pub(crate) spill_loads: u64,
    pub(crate) shared_bytes: u64,
    pub(crate) stack_bytes: u64,
}

/// ptxas: `ARCHC_PTXAS`, else `ptxas` on PATH, else the one the project's
/// venv installs (PyPI `nvidia-cuda-nvcc-cu12`) under the current directory.
pub(crate) fn ptxas() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("ARCHC_PTXAS") {
        return Some(PathBuf::from(p));
    }
    tool(&["ptxas"]).or_else(|| {
        let lib = Path::new(".venv/lib");
        std::fs::read_dir(lib).ok()?.flatten().find_map(|d| {
            let p = d.path().join("site-packages/nvidia/cuda_nvcc/bin/ptxas");
            p.is_file().then_some(p)
        })
    })
}

/// Assembles `ptx` for `chip` with `ptxas -v` into `cubin`; the
/// resources it reports, or its error.
pub(crate) fn assemble_ptx(
    ptxas: &Path,
    ptx: &Path,
    cubin: &Path,
    chip: &str,
) -> Result<PtxasInfo, String> {
    let out = std::process::Command::new(ptxas)
        .arg(format!("-arch={chip}"))
        .arg("-v")
        .arg(ptx)
        .arg("-o")
        .arg(cubin)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", ptxas.display()))?;
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!("ptxas rejected {}: {}", ptx.display(), text.trim()));
    }
    Ok(parse_ptxas(&text))
}

/// The numbers of `ptxas -v`'s report (`Used 31 registers, used 0 barriers,
/// 8192 bytes smem`, `0 bytes stack frame, 0 bytes spill stores, 0 bytes
/// spill loads`).
pub(crate) fn parse_ptxas(text: &str) -> PtxasInfo {
    let mut info = PtxasInfo::default();
    let number_before = |line: &str, what: &str| -> Option<u64> {
        let at = line.find(what)?;
        line[..at].split_whitespace().last()?.parse().ok()
    };
    for line in text.lines() {
        for part in line.split(',') {
            if let Some(n) = number_before(part, " registers") {
                info.registers = n;
            }
            if let Some(n) = number_before(part, " bytes smem") {
                info.shared_bytes = n;
            }
            if let Some(n) = number_before(part, " bytes spill stores") {
                info.spill_stores = n;
            }
            if let Some(n) = number_before(part, " bytes spill loads") {
                info.spill_loads = n;
            }
            if let Some(n) = number_before(part, " bytes stack frame") {
                info.stack_bytes = n;
            }
        }
    }
    info
}

#[derive(Serialize)]
struct BufferEntry {
    name: String,
    role: String,
    dtype: String,
    shape: Vec<u64>,
}

/// Writes every kernel (`.ptx`, or `.s` and `.hsaco`), the manifest and
/// the report into `dir`; returns what was written.
///
/// Where ptxas assembled the kernels, the report is predicted again with
/// the registers per thread it reported (the occupancy it allows) in
/// place of the model's estimate.
pub(crate) fn write(
    s: &Selected,
    kernels: &[GpuKernel],
    (vendor, chip): (Vendor, &str),
    (schedule, report): (&Schedule, &arch_cost::evaluate::CostReport),
    dir: &Path,
) -> Result<Vec<PathBuf>, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let w = &s.workload;
    let mut written = Vec::new();
    let mut entries = Vec::new();
    let mut registers = Vec::new();
    let ptxas = if vendor == Vendor::Nvidia {
        ptxas()
    } else {
        None
    };
    for k in kernels {
        let ext = if vendor == Vendor::Nvidia { "ptx" } else { "s" };
        let file = format!("{}.{ext}", k.plan.name);
        let path = dir.join(&file);
        std::fs::write(&path, &k.assembly)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        written.push(path.clone());
        let info = match &ptxas {
            Some(tool) => {
                let cubin = dir.join(format!("{}.cubin", k.plan.name));
                let info = assemble_ptx(tool, &path, &cubin, chip)?;
                written.push(cubin);
                Some(info)
            }
            None => None,
        };
        let object = if vendor == Vendor::Amd {
            let hsaco = dir.join(format!("{}.hsaco", k.plan.name));
            code_object(&path, &hsaco, chip)?;
            written.push(hsaco.clone());
            Some(format!("{}.hsaco", k.plan.name))
        } else {
            None
        };
        if let Some(i) = &info {
            registers.push((k.plan.op, i.registers));
        }
        entries.push(KernelEntry {
            name: k.plan.name.clone(),
            file,
            object: object.or_else(|| info.as_ref().map(|_| format!("{}.cubin", k.plan.name))),
            ptxas: info,
            grid: [k.plan.grid, 1, 1],
            block: [k.plan.block, 1, 1],
            dynamic_shared_memory: 0,
            arguments: k
                .plan
                .args
                .iter()
                .map(|t| w.tensors[*t].name.clone())
                .collect(),
            tile: [k.plan.tile.0, k.plan.tile.1],
            tiles: [k.plan.tiles.0, k.plan.tiles.1],
            swizzle: k.plan.swizzle.describe(),
        });
    }
    let manifest = Manifest {
        workload: w.name.clone(),
        target: s.hardware.name.clone(),
        vendor: format!("{vendor:?}").to_lowercase(),
        chip: chip.to_string(),
        kernels: entries,
        buffers: w
            .tensors
            .iter()
            .map(|t| BufferEntry {
                name: t.name.clone(),
                role: format!("{:?}", t.role).to_lowercase(),
                dtype: t.dtype.name().to_string(),
                shape: t.shape.clone(),
            })
            .collect(),
    };
    let json = |v: &dyn crate::build_cmd::erased::Json| v.to_pretty();
    let manifest_path = dir.join(format!("{}.manifest.json", w.name));
    std::fs::write(&manifest_path, json(&manifest))
        .map_err(|e| format!("cannot write the manifest: {e}"))?;
    written.push(manifest_path);
    let report = if registers.is_empty() {
        report.clone()
    } else {
        arch_cost::evaluate::CostReport {
            calibration: report.calibration.clone(),
            ..arch_cost::evaluate::evaluate_built(w, &s.hardware, schedule, &registers)
                .map_err(|e| format!("predicting the built kernels: {e:?}"))?
        }
    };
    std::fs::write(dir.join("report.json"), json(&report))
        .map_err(|e| format!("cannot write report.json: {e}"))?;
    written.push(dir.join("report.json"));
    Ok(written)
}

/// Why `archc run` cannot run on `s`'s GPU here: one line.
pub(crate) fn no_device_message(s: &Selected) -> String {
    let (driver, lib) = match target(s) {
        Ok((Vendor::Amd, _)) => ("ROCm", "libamdhip64.so"),
        _ => ("CUDA", "libcuda.so.1"),
    };
    let found = [
        "/usr/lib/x86_64-linux-gnu",
        "/usr/lib64",
        "/usr/local/cuda/lib64",
        "/opt/rocm/lib",
    ]
    .iter()
    .any(|d| Path::new(d).join(lib).exists());
    if found {
        format!(
            "running kernels on a {} GPU is not built yet ({lib} is here); `--emulate` runs them on this CPU",
            s.hardware.name
        )
    } else {
        format!(
            "no {driver} driver on this machine ({lib} not found), so nothing runs on a GPU; `--emulate` runs {}'s kernels on this CPU",
            s.hardware.name
        )
    }
}

/// The first of `names` found on PATH.
pub(crate) fn tool(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    names.iter().find_map(|n| {
        std::env::split_paths(&path)
            .map(|d| d.join(n))
            .find(|p| p.is_file())
    })
}

/// Assembles AMDGCN text `asm` with `llvm-mc` and links it with `ld.lld`
/// into the code object `hsaco`.
pub(crate) fn code_object(asm: &Path, hsaco: &Path, chip: &str) -> Result<(), String> {
    let mc = tool(&["llvm-mc-22", "llvm-mc"]).ok_or("no `llvm-mc` on PATH (Debian: llvm-22)")?;
    let lld = tool(&["ld.lld-22", "ld.lld"]).ok_or("no `ld.lld` on PATH (Debian: lld-22)")?;
    let obj = hsaco.with_extension("o");
    let run = |cmd: &mut std::process::Command, what: &str| -> Result<(), String> {
        let out = cmd
            .output()
            .map_err(|e| format!("cannot run {what}: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{what} failed on {}: {}",
                asm.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    };
    run(
        std::process::Command::new(&mc)
            .args([
                "-triple=amdgcn-amd-amdhsa",
                &format!("-mcpu={chip}"),
                "-filetype=obj",
                "-o",
            ])
            .arg(&obj)
            .arg(asm),
        "llvm-mc",
    )?;
    let linked = run(
        std::process::Command::new(&lld)
            .args(["-shared", "-o"])
            .arg(hsaco)
            .arg(&obj),
        "ld.lld",
    );
    let _ = std::fs::remove_file(&obj);
    linked
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ptxas_report_parses() {
        let text = "ptxas info    : Compiling entry function 'k' for 'sm_90'\nptxas info    : Function properties for k\n    8 bytes stack frame, 4 bytes spill stores, 12 bytes spill loads\nptxas info    : Used 31 registers, used 1 barriers, 8192 bytes smem\n";
        let info = parse_ptxas(text);
        assert_eq!(
            info,
            PtxasInfo {
                registers: 31,
                spill_stores: 4,
                spill_loads: 12,
                shared_bytes: 8192,
                stack_bytes: 8,
            }
        );
    }
}
