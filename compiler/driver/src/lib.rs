//! The `archc` command line: argument parsing, loading files into the one
//! salsa database, running commands, rendering diagnostics. All IO of the
//! compiler happens here.

#[cfg(feature = "native")]
pub mod build_cmd;
#[cfg(feature = "native")]
pub mod calibrate_cmd;
#[cfg(feature = "native")]
pub mod calibration;
pub mod cli;
pub mod cost_cmd;
#[cfg(feature = "native")]
pub mod gpu_build;
pub mod harness;
pub mod html;
pub mod load;
pub mod render;
#[cfg(feature = "native")]
pub mod run_cmd;

use std::io::Write;

/// Exit status: success.
pub const EXIT_OK: u8 = 0;
/// Exit status: the program has errors (diagnostics were printed).
pub const EXIT_DIAGNOSTICS: u8 = 1;
/// Exit status: the command line is wrong.
pub const EXIT_USAGE: u8 = 2;
/// Exit status: archc itself failed (a bug; never expected).
pub const EXIT_INTERNAL: u8 = 70;

/// Runs `archc` with `args` (including the program name).
pub fn run(args: Vec<std::ffi::OsString>, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| cli::main(args, out, err))) {
        Ok(code) => code,
        Err(_) => EXIT_INTERNAL,
    }
}

/// Binds the OpenMP threads of the libraries this process runs (`archc
/// run`, `--profile`, `calibrate`) one to each core, unless the
/// environment already says how (`OMP_PROC_BIND`, `OMP_PLACES` or
/// `KMP_AFFINITY`). Unbound, a two-thread region on a 2-vCPU VM ran at
/// two speeds from one process to the next (a 128 x 768 layernorm: 10 us,
/// or 85-120 us in about 4 runs of 10); bound, always the first. Call it
/// before any thread starts.
pub fn bind_threads_by_default() {
    let said = ["OMP_PROC_BIND", "OMP_PLACES", "KMP_AFFINITY"]
        .iter()
        .any(|v| std::env::var_os(v).is_some());
    if !said {
        std::env::set_var("OMP_PROC_BIND", "true");
    }
}

/// Replaces Rust's panic message (and its exit status 101) with a bug
/// report request; `run` turns the unwinding into exit status 70.
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        eprintln!("error: internal compiler error{location}: {message}");
        eprintln!("note: this is a bug in archc; please report it with the input that caused it");
    }));
}
