#!/usr/bin/env bash
# Quick start: set up, build archc, and run the main job on the quick-start
# example: check it, tune it, build it into a native library for this
# machine, run it (checked against the reference interpreter, timed beside
# the prediction) and print its cost report with the measurement.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
command -v cargo >/dev/null 2>&1 || export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release --locked -p arch-driver
./target/release/archc check examples/quickstart.arch
# Tune the open knobs, build lib<workload>.so, run it and compare.
out=target/quickstart
./target/release/archc run examples/quickstart.arch --target host --build-dir "$out" --report "$out/report.json"
echo "built into $out: $(cd "$out" && ls | tr '\n' ' ')"
# The cost report, with the measured latency beside the predicted one.
./target/release/archc report examples/quickstart.arch --target host
echo "measured (from $out/report.json):"
grep -A2 '"measured"' "$out/report.json"
