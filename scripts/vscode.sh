#!/usr/bin/env bash
# Builds the VS Code extension (lsp/editors/vscode/archc.vsix) from the npm
# registry: installs Node.js and npm from Debian when they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v npm >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq nodejs npm >/dev/null
fi
cd lsp/editors/vscode
npm ci --no-audit --no-fund
npm test
npm run package
echo "built lsp/editors/vscode/archc.vsix; install with: code --install-extension lsp/editors/vscode/archc.vsix"
