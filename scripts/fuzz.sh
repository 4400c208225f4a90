#!/usr/bin/env bash
# Builds both fuzz targets (front end; cost models and search) against the
# front end and the cost models alone, then fuzzes each for SECONDS seconds
# (default 5: CI proves each target starts and runs). Installs cargo-fuzz
# when missing. Corpus: the examples, the benchmark suite's workloads and
# the standard library.
#   bash scripts/fuzz.sh            # 5 s each
#   bash scripts/fuzz.sh 600        # 10 minutes each
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo >/dev/null 2>&1 || export PATH="$HOME/.cargo/bin:$PATH"
seconds="${1:-5}"
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz" >&2
  cargo install --locked cargo-fuzz >/dev/null
fi
for target in check cost; do
  mkdir -p "fuzz/corpus/$target"
  cp examples/*.arch bench/suite/*.arch "fuzz/corpus/$target/"
done
cp stdlib/*.arch fuzz/corpus/check/
cd fuzz
# The stable toolchain accepts the fuzzing flags with RUSTC_BOOTSTRAP=1;
# `--sanitizer none` because AddressSanitizer needs a nightly toolchain.
export RUSTC_BOOTSTRAP=1
cargo fuzz build --sanitizer none -O
for target in check cost; do
  echo "fuzz: $target for ${seconds} s" >&2
  cargo fuzz run "$target" --sanitizer none -O -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=4096 -print_final_stats=1 2>&1 |
    grep -E '^(stat::number_of_executed_units|stat::new_units_added|Done|==|SUMMARY|.*panicked)' || true
  # A crash leaves an artifact and a non-zero status above; check both.
  if compgen -G "artifacts/$target/crash-*" >/dev/null || compgen -G "artifacts/$target/timeout-*" >/dev/null; then
    echo "fuzz: $target found a failure: $(ls artifacts/$target)" >&2
    exit 1
  fi
done
