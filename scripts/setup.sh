#!/usr/bin/env bash
# Installs what archc needs on Debian 12, idempotently: Debian packages (LLVM
# and MLIR 22 for the back ends, build tools), a Rust toolchain check, and the
# Python virtual environment for validation tools (.venv). Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."

# melior (MLIR bindings) builds mlir-sys with bindgen (libclang) and links
# LLVM's static libraries, which need Polly, zstd, z3, libxml2 and zlib.
# Built libraries that run on several cores link LLVM's OpenMP runtime
# (libomp-22-dev); `cc` links every built library. AMD GPU kernels are
# assembled with llvm-mc (llvm-22) and linked into code objects with ld.lld
# (lld-22).
APT_PACKAGES=(build-essential pkg-config llvm-22-dev libmlir-22-dev mlir-22-tools
  libclang-22-dev libpolly-22-dev libzstd-dev libz3-dev libxml2-dev zlib1g-dev
  libomp-22-dev lld-22 python3-venv)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1; then
  if [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
  else
    echo "setup: no Rust toolchain found (cargo); install one with rustup" >&2
    exit 1
  fi
fi

# Python is for validation only, in a venv the project makes itself.
PY=python3
if ! "$PY" -c 'import venv' >/dev/null 2>&1; then
  echo "setup: python3 has no venv module" >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv" >&2
  "$PY" -m venv .venv
fi
if ! cmp -s tests/validation/requirements.txt .venv/.requirements 2>/dev/null; then
  echo "setup: installing validation tools into .venv" >&2
  .venv/bin/python -m pip install -q --disable-pip-version-check -r tests/validation/requirements.txt
  cp tests/validation/requirements.txt .venv/.requirements
fi
