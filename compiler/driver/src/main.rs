//! `archc`: the .arch compiler.

use std::process::ExitCode;

fn main() -> ExitCode {
    arch_driver::install_panic_hook();
    arch_driver::bind_threads_by_default();
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let code = arch_driver::run(args, &mut std::io::stdout(), &mut std::io::stderr());
    ExitCode::from(code)
}
