//! This machine's numbers for `std.hw.host`, measured once per CPU model and
//! kept in the user's cache directory: the first cost command that needs
//! them (`tune`, `report`, `build`, `run` with `--target host`) runs the
//! calibration (seconds; what it measures is printed as it goes) and every
//! later one reads the file. `archc calibrate` with no `-o` measures again
//! and replaces it; `--uncalibrated` (or `ARCHC_CALIBRATION=off`) uses the
//! published numbers of std.hw.host instead.
//!
//! The cache is `$ARCHC_CACHE_DIR`, else `$XDG_CACHE_HOME/archc`, else
//! `~/.cache/archc`; the file is `calibration/<cpu model>-<cores>c-<archc
//! version>-m<FORMAT>.arch`, a hardware description named `host` that
//! `archc check` accepts. A file that no longer checks (edited, truncated)
//! is measured again, and so is every machine when [`FORMAT`] changes (what
//! calibration measures grew).

use arch_cost::evaluate::Calibration;
use arch_sema::db::{file_decls, RootDatabase};
use arch_sema::hardware::{hardware_model, HardwareModel};
use std::io::Write;
use std::path::PathBuf;

/// A calibrated `host` and where it came from.
pub struct Calibrated {
    pub hardware: HardwareModel,
    pub info: Calibration,
}

/// Whether cost commands calibrate (`ARCHC_CALIBRATION=off` turns it off).
pub fn enabled() -> bool {
    !matches!(
        std::env::var("ARCHC_CALIBRATION").as_deref(),
        Ok("off" | "0" | "no" | "false")
    )
}

fn cache_dir() -> Option<PathBuf> {
    let non_empty = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    non_empty("ARCHC_CACHE_DIR")
        .or_else(|| non_empty("XDG_CACHE_HOME").map(|d| d.join("archc")))
        .or_else(|| non_empty("HOME").map(|d| d.join(".cache").join("archc")))
}

/// The CPU's model name as Linux reports it.
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| arch_codegen::HostTarget::detect().cpu)
}

/// What a calibration file holds; bumped when calibration measures more
/// (2: the latencies of L3 and DRAM; 3: DRAM streamed by every core; 4: a
/// shared L3 read by every core; 5: each builtin's code).
pub const FORMAT: u32 = 5;

/// The cache file for this machine's CPU model and core count.
pub fn cache_file() -> Option<PathBuf> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    // VMs often report only a family ("AMD EPYC"): LLVM's name for the
    // core (znver3, znver4) tells machines of one family apart.
    let mut slug: String = format!("{}-{}", cpu_model(), arch_codegen::HostTarget::detect().cpu)
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    while slug.contains("--") {
        slug = slug.replace("--", "-");
    }
    let slug = slug.trim_matches('-');
    let name = format!(
        "{slug}-{cores}c-{}-m{FORMAT}.arch",
        env!("CARGO_PKG_VERSION").replace('.', "_")
    );
    Some(cache_dir()?.join("calibration").join(name))
}

/// The hardware `host` in `text`, if the file checks clean.
pub(crate) fn parse(text: &str, path: &str) -> Option<HardwareModel> {
    let mut db = RootDatabase::default();
    let file = db.set_file(path, text.to_string());
    if !arch_sema::file_diagnostics(&db, file).is_empty() {
        return None;
    }
    file_decls(&db, file)
        .iter()
        .find(|d| d.kind(&db) == "hardware" && d.name(&db) == "host")
        .and_then(|d| hardware_model(&db, *d).model.clone())
}

/// Measures this machine and writes the cache file (atomically: several
/// archc processes may start at once); returns its path and text.
pub fn refresh(err: &mut dyn Write) -> Result<(PathBuf, String), String> {
    let path = cache_file().ok_or("no cache directory (set HOME or ARCHC_CACHE_DIR)")?;
    let text = crate::calibrate_cmd::measure_host("host", false, err)?;
    let dir = path.parent().ok_or("the cache path has no folder")?;
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let temporary = dir.join(format!(".{}.tmp", std::process::id()));
    std::fs::write(&temporary, &text)
        .and_then(|()| std::fs::rename(&temporary, &path))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok((path, text))
}

/// The cached calibration, measured now if there is none (or it is broken).
pub fn load_or_measure(err: &mut dyn Write) -> Result<Calibrated, String> {
    let path = cache_file().ok_or("no cache directory (set HOME or ARCHC_CACHE_DIR)")?;
    let shown = path.display().to_string();
    let cached = std::fs::read_to_string(&path)
        .ok()
        .and_then(|text| parse(&text, &shown));
    let hardware = match cached {
        Some(hw) => hw,
        None => {
            let _ = writeln!(
                err,
                "calibrating this machine for the cost model (once per CPU model, about 10 s; kept in {shown}; `archc calibrate` measures again)"
            );
            let (_, text) = refresh(err)?;
            parse(&text, &shown).ok_or("the calibration written does not check")?
        }
    };
    Ok(Calibrated {
        hardware,
        info: Calibration {
            source: shown,
            cpu: cpu_model(),
        },
    })
}
