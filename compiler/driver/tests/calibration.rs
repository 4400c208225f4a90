//! Calibrated out of the box: the first cost command for `--target host`
//! measures this machine into the cache directory, later ones read it, the
//! report names it, `archc calibrate` measures again, and `--uncalibrated`
//! uses std.hw.host's published numbers. Runs the real binary with its own
//! cache directory.

#![cfg(feature = "native")]

use std::path::{Path, PathBuf};
use std::process::Command;

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .map(Path::to_path_buf)
        .unwrap_or_default()
        .join("examples")
        .join(name)
}

fn archc(cache: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_archc"))
        .args(args)
        .env("ARCHC_CACHE_DIR", cache)
        .env_remove("ARCHC_CALIBRATION")
        .output()
        .expect("archc runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn cached_files(cache: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(cache.join("calibration"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

#[test]
fn first_use_measures_later_uses_read_the_cache() {
    let cache = std::env::temp_dir().join(format!("archc-calibration-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&cache);
    let gemm = example("gemm.arch");
    let gemm = gemm.to_str().unwrap_or_default();
    let report = ["report", gemm, "--target", "host", "--format", "json"];

    let (code, stdout, stderr) = archc(&cache, &report);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("calibrating this machine"), "{stderr}");
    let files = cached_files(&cache);
    assert_eq!(files.len(), 1, "{files:?}");
    let v: serde_json::Value = serde_json::from_str(&stdout).expect("json");
    assert_eq!(v["calibration"]["source"], files[0].display().to_string());
    let calibrated = v["total"]["latency_s"].as_f64().unwrap_or(0.0);

    // The second use reads the file: no measurement, the same prediction.
    let (code, stdout, stderr) = archc(&cache, &report);
    assert_eq!(code, 0, "{stderr}");
    assert!(!stderr.contains("calibrating"), "{stderr}");
    let again: serde_json::Value = serde_json::from_str(&stdout).expect("json");
    assert_eq!(again["total"]["latency_s"].as_f64(), Some(calibrated));

    // Published numbers on request; the report then names no calibration.
    let mut uncalibrated = report.to_vec();
    uncalibrated.push("--uncalibrated");
    let (code, stdout, _) = archc(&cache, &uncalibrated);
    assert_eq!(code, 0);
    let published: serde_json::Value = serde_json::from_str(&stdout).expect("json");
    assert!(published.get("calibration").is_none(), "{published}");

    // A broken cache file is measured again; `archc calibrate` rewrites it.
    std::fs::write(&files[0], "hardware host : cpu {").expect("write");
    let (code, _, stderr) = archc(&cache, &report);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("calibrating this machine"), "{stderr}");
    let before = std::fs::read_to_string(&files[0]).unwrap_or_default();
    assert!(before.contains("hardware host : cpu"), "{before}");
    let (code, stdout, stderr) = archc(&cache, &["calibrate"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("hardware host : cpu"));
    assert!(stderr.contains(&files[0].display().to_string()), "{stderr}");
    let _ = std::fs::remove_dir_all(&cache);
}
