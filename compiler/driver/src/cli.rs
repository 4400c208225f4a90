//! Command-line interface.

use crate::load::{db_path, load_imports, read_text, LoadProblem, Loaded};
use crate::render::{to_json, write_text, Place, Rendered, TextOptions};
use crate::{EXIT_DIAGNOSTICS, EXIT_OK, EXIT_USAGE};
use arch_sema::db::RootDatabase;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::io::Write;
use std::path::PathBuf;

const ABOUT: &str =
    "archc compiles .arch programs: a workload (tensor algebra in index notation), \
the hardware it runs on, and the mapping between them.";

const AFTER_HELP: &str = "\
Exit status: 0 when there are no errors, 1 when diagnostics were reported,
2 when the command line is wrong.

Available now: check, fmt, tune and report (cpu, gpu, npu and neuromorphic
models; `--weights FILE.safetensors` measures quantization error on real
weights, otherwise it is estimated as half an ulp); build and run for cpu
targets, build and run --emulate for gpu targets (float types; see `archc
build --help` for what is not built yet).
`calibrate` measures this machine for the cpu model; `lsp` serves editors.

Every diagnostic has a stable code; spec/diagnostics.md explains each one.";

#[derive(Parser, Debug)]
#[command(name = "archc", version, about = ABOUT, after_help = AFTER_HELP, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Check programs for errors and print their diagnostics.
    #[command(
        after_help = "Checks every file named and the files it imports. Prints each error with its \
code, the source it points at and a help line; `--format json` prints one JSON document \
instead. Exits 1 if any file has an error."
    )]
    Check(CheckArgs),
    /// Format programs in place (or, with --check, report those that would change).
    #[command(
        after_help = "Formatting keeps every comment and line break (blank lines shrink to one), \
indents by two spaces per open bracket, and spaces tokens the same way everywhere. \
Formatting a formatted file changes nothing. Files with syntax errors are not touched: \
their errors are printed and the exit status is 1."
    )]
    Fmt(FmtArgs),
    /// Fill every `auto` knob with the cost model's search and print the report.
    #[command(
        after_help = "Picks the mapping of FILE that targets HW (with --workload when several do); \
a workload without one gets a mapping whose knobs are all `auto`. Fixed and constrained knobs are \
honoured. Prints the search summary to stderr and the report to stdout. The same seed and \
evaluation limit give the same result. Models: cpu, gpu, npu, neuromorphic. A progress bar shows \
on a terminal."
    )]
    Tune(crate::cost_cmd::TuneArgs),
    /// Print the predicted cost of a mapping (open knobs filled by the same search as tune and build).
    #[command(
        after_help = "Formats: text, json (the schema is in spec/report.md) and html (one self-contained file). \
Open knobs are filled by the search `archc tune` and `archc build` run (same flags, same defaults, \
same result); --first-guess skips the search and takes each tile as large as fits (what editors \
show). With --target host the numbers are this machine's calibration (measured once, cached; \
--uncalibrated for std.hw.host's published ones)."
    )]
    Report(crate::cost_cmd::ReportArgs),
    /// Build native code for a cpu target: lib<workload>.so, its C header, manifest and report.
    #[cfg(feature = "native")]
    #[command(
        after_help = "Tunes the open knobs (as `archc tune` does), lowers the workload through MLIR \
(linalg on tensors, bufferization, loops, the LLVM dialect; the verifier runs after every pass) and \
makes code for this machine's CPU with LLVM at -O3. `--emit mlir` prints the module after every \
stage; ARCH_DUMP_MLIR=DIR writes every stage to files. The exported C function is named after the \
workload, takes one pointer per input, weight and output in declaration order (row-major, dense, \
element type as declared) and returns 0. The tuned schedule is applied: tiles per level in its loop \
order, element-wise epilogues fused into contractions, the vector dimension, `parallel ... over \
cores` on OpenMP threads (--threads N overrides the target's cores, for the model too). f32 \
contractions of plain or window indexing (matrix products, batched and transposed products, \
convolutions) of two rows or more vectorized along the output's innermost dimension run as a \
packed kernel with their element-wise epilogue (a product of one row streams its matrix once on \
the transform path); reductions along rows vectorized along the reduced dimension run \
as a vector kernel; consecutive row reductions and element-wise ops over the same rows (softmax, \
layernorm) run as one row chain; exp, tanh, erf and sigmoid on f32 are polynomials that vectorize. \
Each op runs on as many threads as its parallel tiles ask for. Temporaries live on the heap; \
blocks of 64 KiB or more are kept for the next call. The buffers passed must not overlap. Not built yet: \
integer, fp8 and spike tensors and neuron models (an error says so), `precision` and `sparsity` \
choices in the generated code (it computes in the declared types), and npu and neuromorphic \
code (--emit npu|nir).\n\n\
gpu targets (h100, a100: PTX for their `chip`; mi300x: AMDGCN for gfx942): one kernel per op, \
each block a tile of the op's output (the schedule's innermost tile), blocks in the order of the \
`swizzle` knob; contractions stage depth slices in shared memory (double-buffered where two fit \
48 KiB; 8 x 8 outputs per thread, or on NVIDIA for f16 and bf16 operands tensor cores: mma.sync, \
a warp per 64 x 64 outputs; epilogue fused), reductions along rows reduce each row over a block, other ops compute one \
output per thread. -o DIR gets each kernel \
(`.ptx` and, where ptxas is found, `.cubin`; or `.s` and `.hsaco` through llvm-mc and ld.lld), \
`<workload>.manifest.json` (launch sequence, arguments, ptxas' registers and spills) and \
`report.json` (its occupancy from ptxas' registers); --emit ptx|amdgcn prints the kernels, \
--emit mlir every stage. ptxas: ARCHC_PTXAS, PATH, or ./.venv (PyPI nvidia-cuda-nvcc-cu12). Not \
built yet for gpus: ldmatrix, AMD tensor cores (mfma: AMD computes 16-bit products in f32 on FMA \
units), fusion across ops, f64 transcendental functions."
    )]
    Build(crate::build_cmd::BuildArgs),
    /// Build, run on this machine, check against the reference interpreter, time it.
    #[cfg(feature = "native")]
    #[command(
        after_help = "Inputs are random (uniform in [-1, 1), seeded by --input-seed) or read from \
DIR/<tensor>.npy with --inputs DIR. Every output is compared with the reference interpreter \
(tolerance by element type); a mismatch exits 1. The time is the median of --runs runs after a \
warm-up, printed beside the cost model's prediction and written into the report's total as \
`measured` (--report PATH, or report.json in --build-dir). gpu targets: running on a GPU is not \
built yet (without a driver, run says so and exits 1); --emulate runs the gpu kernels on this CPU, \
every block and thread in order, and checks them against the reference interpreter."
    )]
    Run(crate::build_cmd::RunArgs),
    /// Measure this machine and write a calibrated hardware description.
    #[cfg(feature = "native")]
    #[command(
        after_help = "Builds microbenchmarks the way `archc build` builds workloads and runs them on \
one core: FMA throughput per element type (f32, f64) and the read bandwidth of working sets sized \
to each cache level (from Linux's sysfs) and to memory, how much of L3 one core keeps at L3 \
speed (a shared cache), the latency of L3 and memory (dependent loads), and memory and a shared L3 read \
by every core at once (the chip's bandwidth, written beside one core's as `core_bandwidth` where all cores \
together get less than the sum of their rates alone). Without -o it replaces this machine's \
cached calibration (~/.cache/archc/calibration/, per CPU model and core count; $ARCHC_CACHE_DIR \
moves it), which `--target host` uses on tune, report, build and run; the first of those commands \
measures it when there is none. With -o FILE it writes a separate hardware description (named \
--name) for `--hardware FILE --target NAME`. Energies stay estimates. Takes about 14 s (--quick: \
about 2 s, -o only)."
    )]
    Calibrate(crate::calibrate_cmd::CalibrateArgs),
    /// Serve the language server on stdin/stdout (for editors).
    #[command(
        after_help = "Speaks the Language Server Protocol on stdin and stdout; editors start it \
(lsp/editors/vscode has a VS Code extension). Diagnostics on every change (the codes and messages \
of `archc check`), hover (tensors, units, hardware levels, a mapping's predicted cost), go to \
definition and references across imports and the standard library, completion, document symbols, \
semantic tokens, formatting (`archc fmt`), inlay hints with each op's predicted latency and \
bottleneck, and code actions that pin an `auto` knob (or all of a mapping's) to the tuned value. Logs go to \
stderr."
    )]
    Lsp,
}

#[derive(Args, Debug)]
pub(crate) struct Common {
    /// Override a workload size parameter, e.g. `--set B=512` (repeatable).
    #[arg(long = "set", value_name = "NAME=VALUE", value_parser = parse_set)]
    pub(crate) set: Vec<(String, i128)>,
    /// When to color diagnostics.
    #[arg(long, value_enum, default_value_t = Color::Auto)]
    pub(crate) color: Color,
}

#[derive(Args, Debug)]
struct CheckArgs {
    /// The .arch files to check.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// How to print diagnostics.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    #[command(flatten)]
    common: Common,
}

#[derive(Args, Debug)]
struct FmtArgs {
    /// The .arch files to format.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// Change nothing; list the files that are not formatted and exit 1 if any.
    #[arg(long)]
    check: bool,
    #[command(flatten)]
    common: Common,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub(crate) enum Format {
    Text,
    Json,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq)]
pub(crate) enum Color {
    Auto,
    Always,
    Never,
}

fn parse_set(s: &str) -> Result<(String, i128), String> {
    let (name, value) = s
        .split_once('=')
        .ok_or_else(|| format!("expected NAME=VALUE, got `{s}`"))?;
    let name = name.trim();
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!("`{name}` is not a parameter name"));
    }
    let digits: String = value.trim().chars().filter(|c| *c != '_').collect();
    let v: i128 = digits
        .parse()
        .map_err(|_| format!("`{value}` is not a whole number"))?;
    Ok((name.to_string(), v))
}

pub fn main(args: Vec<std::ffi::OsString>, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_USAGE } else { EXIT_OK };
            let text = if e.use_stderr() {
                e.render().ansi().to_string()
            } else {
                e.render().to_string()
            };
            if e.use_stderr() {
                let _ = write!(err, "{text}");
            } else {
                let _ = write!(out, "{text}");
            }
            return code;
        }
    };
    match cli.command {
        Command::Check(a) => check(a, out, err),
        Command::Fmt(a) => fmt(a, out, err),
        Command::Tune(a) => crate::cost_cmd::tune(a, out, err),
        Command::Report(a) => crate::cost_cmd::report(a, out, err),
        #[cfg(feature = "native")]
        Command::Build(a) => crate::build_cmd::build(a, out, err),
        #[cfg(feature = "native")]
        Command::Run(a) => crate::run_cmd::run(a, out, err),
        #[cfg(feature = "native")]
        Command::Calibrate(a) => crate::calibrate_cmd::calibrate(a, out, err),
        Command::Lsp => match arch_lsp::serve_stdio() {
            Ok(()) => crate::EXIT_OK,
            Err(e) => {
                let _ = writeln!(err, "error: cannot start the language server: {e}");
                crate::EXIT_USAGE
            }
        },
    }
}

pub(crate) fn color_enabled(c: Color) -> bool {
    match c {
        Color::Always => true,
        Color::Never => false,
        Color::Auto => {
            std::env::var_os("NO_COLOR").is_none()
                && std::io::IsTerminal::is_terminal(&std::io::stderr())
        }
    }
}

/// Loads the named files (and their imports); problems become diagnostics.
pub(crate) fn load(
    files: &[PathBuf],
    common: &Common,
    err: &mut dyn Write,
) -> Result<(RootDatabase, Loaded, Vec<String>, Vec<Rendered>), u8> {
    let mut db = RootDatabase::default();
    db.set_overrides(common.set.clone());
    let mut loaded = Loaded::default();
    let mut roots = Vec::new();
    let mut problems = Vec::new();
    for path in files {
        let key = db_path(path);
        let shown = path.display().to_string();
        match read_text(path) {
            Ok(text) => {
                loaded.display.insert(key.clone(), shown);
                let f = db.set_file(&key, text);
                load_imports(&mut db, f, &mut loaded);
                roots.push(key);
            }
            Err(LoadProblem::Io(message)) => {
                let _ = writeln!(err, "error: {message}");
                return Err(EXIT_USAGE);
            }
            Err(LoadProblem::TooLarge { bytes }) => {
                let (message, help) = arch_sema::db::too_large(&shown, bytes);
                problems.push(Rendered {
                    code: "E0008",
                    message,
                    place: None,
                    primary_label: String::new(),
                    labels: Vec::new(),
                    help: Some(help.into()),
                })
            }
            Err(LoadProblem::InvalidUtf8 { valid_up_to, lossy }) => {
                let end = lossy[valid_up_to..]
                    .chars()
                    .next()
                    .map_or(valid_up_to, |c| valid_up_to + c.len_utf8());
                problems.push(Rendered {
                    code: "E0009",
                    message: format!("{shown} is not valid UTF-8"),
                    place: Some(Place {
                        file: shown.clone(),
                        text: lossy.into(),
                        start: valid_up_to,
                        end,
                    }),
                    primary_label: format!("invalid byte at offset {valid_up_to}"),
                    labels: Vec::new(),
                    help: Some("save the file as UTF-8".into()),
                });
            }
        }
    }
    Ok((db, loaded, roots, problems))
}

/// `--set` names that no workload of the given files has.
pub(crate) fn unknown_overrides(
    db: &RootDatabase,
    roots: &[String],
    loaded: &Loaded,
    common: &Common,
) -> Vec<Rendered> {
    use arch_sema::db::{file_decls, parse_decl};
    use arch_syntax::ast::Item;
    let mut params: Vec<String> = Vec::new();
    // The overrides reach every loaded file, imported ones included.
    let mut files: Vec<&String> = roots.iter().chain(loaded.display.keys()).collect();
    files.sort();
    files.dedup();
    for r in files {
        let Some(f) = db.file_by_path(r) else {
            continue;
        };
        for d in file_decls(db, f) {
            if let Item::Workload(w) = &parse_decl(db, *d).item {
                params.extend(w.params.iter().map(|p| p.name.text.clone()));
            }
        }
    }
    common
        .set
        .iter()
        .filter(|(name, _)| !params.contains(name))
        .map(|(name, value)| {
            let text = format!("--set {name}={value}");
            Rendered {
                code: "E0204",
                message: format!("`--set {name}` names no size parameter"),
                place: Some(Place {
                    file: "<command line>".into(),
                    text: text.clone().into(),
                    start: 6,
                    end: 6 + name.len(),
                }),
                primary_label: "no workload has this parameter".into(),
                labels: Vec::new(),
                help: arch_sema::diag::did_you_mean(name, params.iter().map(String::as_str))
                    .or_else(|| {
                        Some(format!(
                            "size parameters here: {}",
                            if params.is_empty() {
                                "none".to_string()
                            } else {
                                params.join(", ")
                            }
                        ))
                    }),
            }
        })
        .collect()
}

/// Text output stops after this many diagnostics.
const MAX_SHOWN: usize = 100;

pub(crate) fn report(
    diags: &[Rendered],
    format: Format,
    color: bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
) {
    match format {
        Format::Json => {
            let _ = writeln!(
                out,
                "{}",
                serde_json::to_string_pretty(&to_json(diags)).unwrap_or_default()
            );
        }
        Format::Text => {
            let opts = TextOptions { color };
            for d in diags.iter().take(MAX_SHOWN) {
                write_text(d, &opts, err);
            }
            if !diags.is_empty() {
                let n = diags.len();
                let _ = writeln!(
                    err,
                    "error: {n} error{} found",
                    if n == 1 { "" } else { "s" }
                );
            }
            if diags.len() > MAX_SHOWN {
                let _ = writeln!(
                    err,
                    "note: showing the first {MAX_SHOWN}; `--format json` lists them all"
                );
            }
        }
    }
}

/// Diagnostics of the named files and of the sibling files they import.
pub(crate) fn diagnostics(db: &RootDatabase, loaded: &Loaded, roots: &[String]) -> Vec<Rendered> {
    diagnostics_for(db, loaded, roots, None).0
}

/// The hardware a mapping declaration names, read from its tree (also when
/// the declaration has errors); None for other declarations.
fn mapping_hardware(db: &RootDatabase, decl: arch_sema::db::Decl<'_>) -> Option<String> {
    if decl.kind(db) != "mapping" {
        return None;
    }
    match &arch_sema::db::parse_decl(db, decl).item {
        arch_syntax::ast::Item::Mapping(m) => Some(m.hardware.text.clone()),
        _ => None,
    }
}

/// Like [`diagnostics`], for a command that works on one target: errors in
/// mappings for other hardware do not concern it and are left out; the
/// second value counts them (`archc check` still reports them).
pub(crate) fn diagnostics_for(
    db: &RootDatabase,
    loaded: &Loaded,
    roots: &[String],
    target: Option<&str>,
) -> (Vec<Rendered>, usize) {
    let mut skipped = 0;
    let mut out = Vec::new();
    let display = |p: &str| loaded.display_name(p);
    let mut cache = crate::render::TextCache::default();
    let mut files: Vec<String> = roots.to_vec();
    for p in loaded.display.keys() {
        if !files.contains(p) {
            files.push(p.clone());
        }
    }
    for path in files {
        let Some(f) = db.file_by_path(&path) else {
            continue;
        };
        for d in arch_sema::file_diagnostics(db, f) {
            if let Some(target) = target {
                if mapping_hardware(db, d.location.decl).is_some_and(|hw| hw != target) {
                    skipped += 1;
                    continue;
                }
            }
            out.push(Rendered::from_sema_cached(db, d, &display, &mut cache));
        }
    }
    (out, skipped)
}

fn check(a: CheckArgs, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let color = color_enabled(a.common.color);
    let (db, loaded, roots, mut diags) = match load(&a.files, &a.common, err) {
        Ok(x) => x,
        Err(code) => return code,
    };
    diags.extend(unknown_overrides(&db, &roots, &loaded, &a.common));
    diags.extend(diagnostics(&db, &loaded, &roots));
    report(&diags, a.format, color, out, err);
    if !diags.is_empty() {
        return EXIT_DIAGNOSTICS;
    }
    if matches!(a.format, Format::Text) {
        let _ = writeln!(err, "{}", summary(&db, &roots));
    }
    EXIT_OK
}

/// "checked 2 files: 3 workloads, 1 hardware, 4 mappings; no errors".
fn summary(db: &RootDatabase, roots: &[String]) -> String {
    let mut counts: Vec<(&'static str, usize)> = Vec::new();
    for r in roots {
        let Some(f) = db.file_by_path(r) else {
            continue;
        };
        for d in arch_sema::file_decls(db, f) {
            let kind = d.kind(db);
            if matches!(kind, "import" | "error" | "comment") {
                continue;
            }
            match counts.iter_mut().find(|(k, _)| *k == kind) {
                Some(c) => c.1 += 1,
                None => counts.push((kind, 1)),
            }
        }
    }
    let parts: Vec<String> = counts
        .iter()
        .map(|(k, n)| {
            if *n == 1 || *k == "hardware" {
                format!("{n} {k}")
            } else {
                format!("{n} {k}s")
            }
        })
        .collect();
    let files = if roots.len() == 1 {
        "1 file".to_string()
    } else {
        format!("{} files", roots.len())
    };
    if parts.is_empty() {
        format!("checked {files}: no declarations; no errors")
    } else {
        format!("checked {files}: {}; no errors", parts.join(", "))
    }
}

fn fmt(a: FmtArgs, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let color = color_enabled(a.common.color);
    let (db, loaded, roots, problems) = match load(&a.files, &a.common, err) {
        Ok(x) => x,
        Err(code) => return code,
    };
    if !problems.is_empty() {
        report(&problems, Format::Text, color, out, err);
        return EXIT_DIAGNOSTICS;
    }
    let mut status = EXIT_OK;
    for (path, key) in a.files.iter().zip(&roots) {
        let Some(f) = db.file_by_path(key) else {
            continue;
        };
        // Only syntax errors stop formatting; others are `archc check`'s business.
        let syntax: Vec<Rendered> = arch_sema::file_decls(&db, f)
            .iter()
            .filter(|d| !arch_sema::parse_decl(&db, **d).errors.is_empty())
            .flat_map(|d| arch_sema::decl_diagnostics(&db, *d).iter())
            .map(|d| Rendered::from_sema(&db, d, &|p| loaded.display_name(p)))
            .collect();
        if !syntax.is_empty() {
            report(&syntax, Format::Text, color, out, err);
            status = EXIT_DIAGNOSTICS;
            continue;
        }
        let text = f.text(&db);
        let Some(formatted) = arch_syntax::format::format(text) else {
            status = EXIT_DIAGNOSTICS;
            continue;
        };
        if &formatted == text {
            continue;
        }
        if a.check {
            let _ = writeln!(out, "{} is not formatted", path.display());
            status = EXIT_DIAGNOSTICS;
        } else if let Err(e) = std::fs::write(path, formatted) {
            let _ = writeln!(err, "error: cannot write {}: {e}", path.display());
            return EXIT_USAGE;
        }
    }
    status
}
