//! `archc run`: build for this machine, run on random (seeded) or given
//! inputs, check every output against the reference interpreter, and time
//! the library (median of repeated runs after a warm-up) beside the cost
//! model's prediction; the measurement goes into the report.

use crate::build_cmd::{compile, not_cpu, write_library, RunArgs};
use crate::cost_cmd::tuned;
use crate::cost_cmd::{select, Selected};
use crate::{EXIT_DIAGNOSTICS, EXIT_OK};
use arch_runtime::compare::{compare_within, output_tolerance, Comparison};
use arch_runtime::interp::{self, Values};
use arch_runtime::native::{median, time, Buffer, Library};
use arch_syntax::ast::Role;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Inputs and weights from DIR/<name>.npy, each checked against its shape.
fn read_inputs(s: &Selected, dir: &Path) -> Result<Values, String> {
    let mut values = Values::new();
    for t in &s.workload.tensors {
        if !matches!(t.role, Role::Input | Role::Weight) {
            continue;
        }
        let path = dir.join(format!("{}.npy", t.name));
        let bytes =
            std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let array =
            arch_runtime::npy::read(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
        if array.shape != t.shape {
            return Err(format!(
                "{}: shape {:?}, but `{}` is {:?}",
                path.display(),
                array.shape,
                t.name,
                t.shape
            ));
        }
        values.insert(t.name.clone(), array.values);
    }
    Ok(values)
}

/// A directory for a build that is removed when dropped (unless kept).
struct BuildDir {
    path: PathBuf,
    keep: bool,
}

impl Drop for BuildDir {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

fn temporary_dir() -> BuildDir {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    BuildDir {
        path: std::env::temp_dir().join(format!("archc-run-{}-{nanos}", std::process::id())),
        keep: false,
    }
}

pub fn run(a: RunArgs, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let s = match select(&a.selection, &a.common, out, err) {
        Ok(s) => crate::cost_cmd::with_threads(s, a.tune.threads),
        Err(code) => return code,
    };
    let fail = |err: &mut dyn Write, m: String| {
        let _ = writeln!(err, "error: {m}");
        EXIT_DIAGNOSTICS
    };
    let gpu = s.hardware.class == arch_sema::hardware::HwClass::Gpu;
    if gpu && !a.emulate {
        return fail(err, crate::gpu_build::no_device_message(&s));
    }
    if gpu && a.profile {
        return fail(
            err,
            "`--profile` times ops on a GPU, which `--emulate` does not use".into(),
        );
    }
    if a.emulate && !gpu {
        return fail(
            err,
            format!(
                "`--emulate` runs gpu kernels on this CPU; `{}` is not a gpu target",
                s.hardware.name
            ),
        );
    }
    if !gpu {
        if let Some(code) = not_cpu(&s, err) {
            return code;
        }
    }
    let given = match &a.inputs {
        Some(dir) => match read_inputs(&s, dir) {
            Ok(v) => v,
            Err(m) => return fail(err, m),
        },
        None => interp::random_inputs(&s.workload, a.input_seed),
    };
    let (schedule, mut report) = match tuned(&s, &a.tune, err) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let compiled = match if gpu {
        crate::gpu_build::emulation(&s, &schedule)
    } else {
        compile(&s, &schedule)
    } {
        Ok(c) => c,
        Err(m) => return fail(err, m),
    };
    let dir = match &a.build_dir {
        Some(p) => BuildDir {
            path: p.clone(),
            keep: true,
        },
        None => temporary_dir(),
    };
    let built = match write_library(&s, &compiled, &report, &dir.path) {
        Ok(l) => l,
        Err(m) => return fail(err, m),
    };
    let library = match Library::open(
        &built.path,
        &built.manifest.function,
        built.manifest.arguments.len(),
    ) {
        Ok(l) => l,
        Err(e) => return fail(err, e.to_string()),
    };
    let abi: Vec<usize> = arch_mlir::linalg::abi_tensors(&s.workload);
    let mut buffers: Vec<Buffer> = abi
        .iter()
        .map(|&t| {
            let tensor = &s.workload.tensors[t];
            match given.get(&tensor.name) {
                Some(v) => Buffer::new(&arch_runtime::elements::encode(tensor.dtype, v)),
                None => Buffer::zeroed(
                    tensor.elements() as usize
                        * arch_runtime::elements::element_bytes(tensor.dtype),
                ),
            }
        })
        .collect();
    if let Err(e) = library.call(&mut buffers) {
        return fail(err, e.to_string());
    }
    let mut status = EXIT_OK;
    if !a.no_check {
        let reference = match interp::run(&s.workload, &given) {
            Ok(v) => v,
            Err(e) => return fail(err, format!("reference interpreter: {e}")),
        };
        let comparisons: Vec<Comparison> = abi
            .iter()
            .zip(&buffers)
            .filter(|(t, _)| s.workload.tensors[**t].role == Role::Output)
            .map(|(&t, b)| {
                let tensor = &s.workload.tensors[t];
                let got = arch_runtime::elements::decode(tensor.dtype, b.bytes());
                let want = reference.get(&tensor.name).cloned().unwrap_or_default();
                let tolerance = output_tolerance(&s.workload, t);
                compare_within(&tensor.name, tolerance, &got, &want)
            })
            .collect();
        for c in &comparisons {
            let verdict = if c.ok() { "matches" } else { "DIFFERS from" };
            let _ = writeln!(
                out,
                "{} {verdict} the reference interpreter: max abs error {:.3e}, max relative error {:.3e} (tolerance {:.1e}){}",
                c.tensor,
                c.max_abs_error,
                c.max_rel_error,
                c.tolerance,
                c.first_bad.map(|i| format!(", first at element {i}")).unwrap_or_default()
            );
        }
        if comparisons.iter().any(|c| !c.ok()) {
            status = EXIT_DIAGNOSTICS;
        }
    }
    let times = match time(&library, &mut buffers, 1, a.runs) {
        Ok(t) => t,
        Err(e) => return fail(err, e.to_string()),
    };
    let measured = median(&times).as_secs_f64();
    let predicted = report.total.latency_s;
    if gpu {
        let _ = writeln!(
            out,
            "{} on {}: emulated on this CPU in {} (median of {} runs; not a GPU time, so no measured/predicted: the model predicts {} on the GPU)",
            s.workload.name,
            s.hardware.name,
            seconds(measured),
            times.len(),
            seconds(predicted)
        );
    } else {
        record_measured(&s, &mut report, (measured, predicted, times.len()), out);
    }
    if a.profile {
        if let Err(m) = profile(&s, &schedule, &given, &mut report, a.runs, &dir.path, out) {
            return fail(err, m);
        }
    }
    let json = serde_json::to_string_pretty(&report).unwrap_or_default() + "\n";
    let report_path = a
        .report
        .clone()
        .or_else(|| dir.keep.then(|| dir.path.join("report.json")));
    if let Some(path) = report_path {
        if let Err(e) = std::fs::write(&path, json) {
            return fail(err, format!("cannot write {}: {e}", path.display()));
        }
    }
    status
}

/// Prints measured beside predicted and puts the measurement into the
/// report's total.
fn record_measured(
    s: &crate::cost_cmd::Selected,
    report: &mut arch_cost::evaluate::CostReport,
    (measured, predicted, runs): (f64, f64, usize),
    out: &mut dyn Write,
) {
    let _ = writeln!(
        out,
        "{} on {}: measured {} (median of {} runs), predicted {}, measured/predicted {:.2}",
        s.workload.name,
        s.hardware.name,
        seconds(measured),
        runs,
        seconds(predicted),
        if predicted > 0.0 {
            measured / predicted
        } else {
            f64::NAN
        }
    );
    report.total.measured = Some(arch_cost::evaluate::Measured {
        latency_s: measured,
        group: Vec::new(),
    });
}

/// `1.234 ms`.
fn seconds(s: f64) -> String {
    if s >= 1.0 {
        format!("{s:.3} s")
    } else if s >= 1e-3 {
        format!("{:.3} ms", s * 1e3)
    } else {
        format!("{:.3} us", s * 1e6)
    }
}

/// `--profile`: each op built alone ([`WorkloadModel::ops_alone`]) with its
/// tuned nest, fed the inputs and what the ops before it computed, timed
/// (median of `runs`); printed beside its prediction and stored in the
/// report's op. The ops of a row chain ([`arch_cost::fusion`]) run as one
/// kernel: they are built and timed together, as one row, and each of them
/// carries the chain's time and the names of the others (`measured.group`).
///
/// [`WorkloadModel::ops_alone`]: arch_sema::model::WorkloadModel::ops_alone
fn profile(
    s: &Selected,
    schedule: &arch_cost::schedule::Schedule,
    given: &Values,
    report: &mut arch_cost::evaluate::CostReport,
    runs: usize,
    dir: &Path,
    out: &mut dyn Write,
) -> Result<(), String> {
    let host = arch_codegen::HostTarget::detect();
    let cores = s.hardware.cores.max(1);
    let mut values = given.clone();
    let _ = writeln!(
        out,
        "profile: every op (or row chain) built and timed alone (median of {runs} runs)\n  {:<16} {:>12} {:>12} {:>10}",
        "op", "measured", "predicted", "meas/pred"
    );
    // Units of work in schedule order: a row chain's ops together, every
    // other op alone (positions in `schedule.ops`).
    let nest_of = |o: usize| schedule.ops.iter().find(|x| x.op == o).map(|x| &x.nest);
    let chains = arch_cost::fusion::row_chains(&s.workload, nest_of);
    let mut units: Vec<Vec<usize>> = Vec::new();
    for (at, op) in schedule.ops.iter().enumerate() {
        let chain = chains.iter().position(|c| c.contains(op.op));
        let joins = chain.is_some()
            && units.last().is_some_and(|u| {
                chains
                    .iter()
                    .position(|c| c.contains(schedule.ops[u[0]].op))
                    == chain
            });
        match units.last_mut() {
            Some(u) if joins => u.push(at),
            _ => units.push(vec![at]),
        }
    }
    let (mut total_measured, mut total_predicted) = (0.0, 0.0);
    for unit in units {
        let ops: Vec<usize> = unit.iter().map(|&at| schedule.ops[at].op).collect();
        let alone = s
            .workload
            .ops_alone(&ops)
            .ok_or_else(|| format!("op {ops:?} has no model"))?;
        let nests: Vec<Option<arch_cost::cpu::LoopNest>> = unit
            .iter()
            .map(|&at| Some(schedule.ops[at].nest.clone()))
            .collect();
        let compiled = arch_codegen::cpu::compile(&alone, &nests, &host, cores)
            .map_err(|e| format!("profiling `{}`: {e}", alone.name))?;
        let object = dir.join(format!("{}.o", alone.name));
        let library = dir.join(format!("lib{}.so", alone.name));
        std::fs::create_dir_all(dir)
            .and_then(|()| std::fs::write(&object, &compiled.object.bytes))
            .map_err(|e| format!("cannot write {}: {e}", object.display()))?;
        arch_codegen::link_shared(&object, &library, &compiled.libraries())
            .map_err(|e| e.to_string())?;
        let _ = std::fs::remove_file(&object);
        let abi = arch_mlir::linalg::abi_tensors(&alone);
        let loaded = Library::open(&library, &alone.name, abi.len()).map_err(|e| e.to_string())?;
        let mut buffers: Vec<Buffer> = abi
            .iter()
            .map(|&t| {
                let tensor = &alone.tensors[t];
                match values.get(&tensor.name) {
                    Some(v) => Buffer::new(&arch_runtime::elements::encode(tensor.dtype, v)),
                    None => Buffer::zeroed(
                        tensor.elements() as usize
                            * arch_runtime::elements::element_bytes(tensor.dtype),
                    ),
                }
            })
            .collect();
        loaded.call(&mut buffers).map_err(|e| e.to_string())?;
        for (&t, b) in abi.iter().zip(&buffers) {
            let tensor = &alone.tensors[t];
            if tensor.role == Role::Output {
                values.insert(
                    tensor.name.clone(),
                    arch_runtime::elements::decode(tensor.dtype, b.bytes()),
                );
            }
        }
        let times = time(&loaded, &mut buffers, 1, runs).map_err(|e| e.to_string())?;
        let measured = median(&times).as_secs_f64();
        let names: Vec<String> = unit
            .iter()
            .filter_map(|&at| report.ops.get(at).map(|o| o.name.clone()))
            .collect();
        let predicted: f64 = unit
            .iter()
            .filter_map(|&at| report.ops.get(at).map(|o| o.predicted.latency_s))
            .sum();
        total_measured += measured;
        total_predicted += predicted;
        let label = if names.len() > 1 {
            format!("{} (fused)", names.join("+"))
        } else {
            names.join("")
        };
        let _ = writeln!(
            out,
            "  {:<16} {:>12} {:>12} {:>10.2}",
            label,
            seconds(measured),
            seconds(predicted),
            measured / predicted.max(1e-15)
        );
        for &at in &unit {
            if let Some(entry) = report.ops.get_mut(at) {
                entry.measured = Some(arch_cost::evaluate::Measured {
                    latency_s: measured,
                    group: if names.len() > 1 {
                        names.clone()
                    } else {
                        Vec::new()
                    },
                });
            }
        }
    }
    let _ = writeln!(
        out,
        "  {:<16} {:>12} {:>12} {:>10.2}",
        "(sum of ops)",
        seconds(total_measured),
        seconds(total_predicted),
        total_measured / total_predicted.max(1e-15)
    );
    Ok(())
}
