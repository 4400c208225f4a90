#!/usr/bin/env bash
# Quick start: set up, build archc, and run the main job on the quick-start
# example: check it, tune it and print its cost report. Building and running
# the tuned code arrive with the back ends (`archc build`, `archc run`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
command -v cargo >/dev/null 2>&1 || export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release --locked -p arch-driver
./target/release/archc check examples/quickstart.arch
# Tune its open knobs and print the cost report (building and running the
# code comes with `archc build`/`archc run`, not built yet).
./target/release/archc tune examples/quickstart.arch --target host
