//! Helpers shared by the integration tests: run `archc` in-process and
//! collect what it prints.

use std::path::{Path, PathBuf};

/// What one `archc` invocation did.
pub struct Outcome {
    pub code: u8,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `archc ARGS...` in this process. Cost commands use std.hw.host's
/// published numbers (`ARCHC_CALIBRATION=off`), and commands that search
/// get a wall-clock budget that never binds unless the test sets one (the
/// evaluation limit then ends every search): what the tests assert does not
/// depend on the machine they run on, nor on how fast a debug build is.
pub fn archc(args: &[&str]) -> Outcome {
    static UNCALIBRATED: std::sync::Once = std::sync::Once::new();
    UNCALIBRATED.call_once(|| std::env::set_var("ARCHC_CALIBRATION", "off"));
    let mut argv: Vec<std::ffi::OsString> = vec!["archc".into()];
    argv.extend(args.iter().map(|a| a.into()));
    let searches = matches!(args.first(), Some(&("tune" | "report" | "build" | "run")));
    if searches && !args.contains(&"--budget") {
        argv.extend(["--budget".into(), "60m".into()]);
    }
    let mut out = Vec::new();
    let mut err = Vec::new();
    let code = arch_driver::run(argv, &mut out, &mut err);
    Outcome {
        code,
        stdout: String::from_utf8_lossy(&out).into_owned(),
        stderr: String::from_utf8_lossy(&err).into_owned(),
    }
}

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// `.arch` files directly in `dir`, sorted.
pub fn arch_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "arch"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// The diagnostic codes (`E0123`) that appear in rendered output.
pub fn codes_in(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i + 7 <= bytes.len() {
        if bytes[i] == b'['
            && bytes[i + 1] == b'E'
            && bytes[i + 6] == b']'
            && bytes[i + 2..i + 6].iter().all(u8::is_ascii_digit)
        {
            out.push(text[i + 1..i + 6].to_string());
            i += 7;
        } else {
            i += 1;
        }
    }
    out
}

/// A synthetic program of about `lines` lines: many workloads and mappings
/// over one hardware description (for benchmarks and scale tests).
pub fn generated_program(lines: usize) -> String {
    let mut s = String::from("import std.hw.host\nimport std.nn.{relu, gelu}\n\n");
    let mut i = 0;
    while s.lines().count() < lines {
        s.push_str(&format!(
            "/// Layer {i}.\nworkload layer{i}(B = 64, K = {k}, N = 256) {{\n  input x: f32[B, K]\n  weight w: f32[K, N]\n  weight b: f32[N]\n  output y: f32[B, N]\n\n  h[i, j] = sum[k] x[i, k] * w[k, j] + b[j]\n  y[i, j] = relu(h[i, j])\n}}\n\nmapping layer{i}_host for layer{i} on host {{\n  tile h {{ i: auto, j: 64, k: auto in 16..256 pow2 }}\n  order i, j, k\n  parallel i over cores\n  vectorize j\n}}\n\n",
            k = 128 + 16 * (i % 8)
        ));
        i += 1;
    }
    s
}

/// Writes `bytes` to a fresh file in a per-process temporary folder.
pub fn temp_file(folder: &str, name: &str, bytes: &[u8]) -> String {
    let dir = std::env::temp_dir().join(format!("{folder}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("write temp file");
    path.to_string_lossy().to_string()
}

/// Runs the whole front end on `text` (split, parse, names, models,
/// mappings), renders every diagnostic, and checks that formatting is
/// idempotent. Used by the property tests and the fuzz target: it must never
/// panic.
pub fn front_end(text: &str) {
    arch_driver::harness::front_end(text);
}
