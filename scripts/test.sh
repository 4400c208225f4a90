#!/usr/bin/env bash
# Sets up like the quick start, then runs every test: unit, property, ui
# snapshots, incrementality, CLI, examples and formatting.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
command -v cargo >/dev/null 2>&1 || export PATH="$HOME/.cargo/bin:$PATH"
export CARGO_TERM_COLOR=never
cargo build --locked --workspace --all-targets
cargo test --locked --workspace --no-fail-fast
