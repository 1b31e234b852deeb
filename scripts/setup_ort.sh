#!/usr/bin/env bash
# Installs ONNX Runtime for the tests: npm's onnxruntime-node (its bundled CPU libonnxruntime)
# into build/ort/node_modules, where tests/onnx/ort_run.js loads it (tests/support/onnxruntime.h).
# A fast no-op when that version is installed already. Installs Debian's npm when npm is missing.
#   scripts/setup_ort.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ORT_VERSION=1.30.0
PREFIX=build/ort
PKG=$PREFIX/node_modules/onnxruntime-node
LIB=$PKG/bin/napi-v6/linux/x64/libonnxruntime.so.1

installed_version() {
  [ -f "$PKG/package.json" ] || return 0
  sed -n 's/^[[:space:]]*"version":[[:space:]]*"\([^"]*\)".*/\1/p' "$PKG/package.json" | head -n1
}

if [ "$(installed_version)" = "$ORT_VERSION" ] && [ -f "$LIB" ]; then
  echo "setup_ort: onnxruntime-node $ORT_VERSION already in $PREFIX"
  exit 0
fi

if ! command -v npm >/dev/null 2>&1; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q --no-install-recommends npm
fi

mkdir -p "$PREFIX"
# --ignore-scripts: the package's install script downloads extra (GPU) binaries from a host that
# may be unreachable; the CPU library ships in the package itself.
npm install --prefix "$PREFIX" --ignore-scripts --no-audit --no-fund --save-exact "onnxruntime-node@$ORT_VERSION"

if [ "$(installed_version)" != "$ORT_VERSION" ] || [ ! -f "$LIB" ]; then
  echo "setup_ort: npm finished but $PKG ($ORT_VERSION) or $LIB is missing" >&2
  exit 1
fi
echo "setup_ort: onnxruntime-node $ORT_VERSION installed in $PREFIX"
