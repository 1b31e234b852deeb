#!/usr/bin/env bash
# Sets everything up and runs the whole test suite (what CI runs via .ci/run).
#   scripts/test.sh              Release build in build/, then ctest
#   scripts/test.sh --sanitize   ASan+UBSan build in build/sanitize, then ctest
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/setup_ort.sh  # ONNX Runtime (npm onnxruntime-node) for the ONNX tests, in build/ort
# The ONNX Runtime tests must run here, not skip (tests/support/onnxruntime.h).
export DLTOOL_REQUIRE_ORT=1

BUILD_DIR=build
BUILD_TYPE=Release
if [ "${1:-}" = "--sanitize" ]; then
  BUILD_DIR=build/sanitize
  BUILD_TYPE=Sanitize
fi
JOBS=$(nproc)
# The CUDA backend is compiled (proving it builds) for one architecture only, to save CI time;
# real builds use the default (80;90).
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE="$BUILD_TYPE" -DDLTOOL_WERROR=ON -DCMAKE_CUDA_ARCHITECTURES=90
cmake --build "$BUILD_DIR" -j"$JOBS"
# Without a GPU the cuda-labelled tests report "Skipped" (exit code 4), never "Failed".
ctest --test-dir "$BUILD_DIR" --output-on-failure -j"$JOBS"
