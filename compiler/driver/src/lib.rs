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
