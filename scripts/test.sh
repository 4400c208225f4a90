#!/usr/bin/env bash
# Sets up like the quick start, then runs every test: unit, property, ui
# snapshots, incrementality, CLI, examples, formatting, codegen CHECK tests
# the differential suite (200 generated workloads built and run against
# the reference interpreter) and the language server's protocol tests (the
# real `archc lsp` over stdio, 10,000 random edits); then the validations,
# native runs and the VS Code extension's build.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
command -v cargo >/dev/null 2>&1 || export PATH="$HOME/.cargo/bin:$PATH"
export CARGO_TERM_COLOR=never
cargo build --locked --workspace --all-targets
cargo test --locked --workspace --no-fail-fast

# Validation against a tool nobody here wrote: the npu model's cycles against
# SCALE-Sim on ResNet-18 convolutions and transformer GEMMs (about 4 minutes).
echo "validation: archc's npu model against SCALE-Sim (13 layers, weight stationary, 64x64 array)"
.venv/bin/python tests/validation/scalesim_compare.py target/debug/archc --dataflows ws

# ZigZag on the same TPU-like accelerator (std.hw.npu16 described in both
# tools), every ResNet-18 layer: latency, energy and mapper time side by side
# (about 9 minutes, nearly all of it ZigZag's mapper). Timed with the release
# build, as users run it. Fails if archc's mapper is not at least 10x faster
# or its total latency or energy is worse than ZigZag's.
echo "validation: archc's tuner against ZigZag's mapper (ResNet-18, npu16)"
cargo build --locked --release -p arch-driver
.venv/bin/python tests/validation/zigzag_compare.py target/release/archc --check

# The quick start's main job on the release build: calibrate this machine,
# build, run and check the quick-start example on it.
echo "native code: calibrate, build and run examples/quickstart.arch"
./target/release/archc calibrate --quick -o target/host_calibrated.arch >/dev/null
./target/release/archc run examples/quickstart.arch --hardware target/host_calibrated.arch --target host_calibrated
./target/release/archc run examples/mlp.arch --target host --set K=256 --runs 3

# Both fuzz targets build without the back ends and start: a few seconds
# of fuzzing each (`bash scripts/fuzz.sh 600` for ten minutes).
echo "fuzz: the front-end and cost-model targets start"
bash scripts/fuzz.sh 5

# The VS Code extension builds from the npm registry (manifest and grammar
# checks, then `vsce package`); the language server's protocol tests ran
# with the workspace's tests above.
echo "editor: build the VS Code extension"
bash scripts/vscode.sh
