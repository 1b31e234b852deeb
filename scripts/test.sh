#!/usr/bin/env bash
# Sets everything up and runs the whole test suite (what CI runs via .ci/run).
#   scripts/test.sh              both phases below, each timed
#   scripts/test.sh --release    Release build in build/, then ctest (engine tests at 1 and 2 threads)
#   scripts/test.sh --sanitize   one clang build with ASan + UBSan in build/sanitize (CUDA off):
#                                each libFuzzer target for 20 s over its seeds (scripts/fuzz.sh),
#                                then ctest once: engine tests at 1 thread only, tests labelled
#                                `stress` left out, and the multi-process ones (`dist`: mpirun,
#                                `slurm`: a SLURM cluster; OpenMPI's own allocations would be
#                                reported as leaks). The fuzz targets share this build (its
#                                libraries carry libFuzzer's coverage instrumentation too), which
#                                saves CI a third full build.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/setup_ort.sh  # ONNX Runtime (npm onnxruntime-node) for the ONNX tests, in build/ort
# The ONNX Runtime tests must run here, not skip (tests/support/onnxruntime.h).
export DLTOOL_REQUIRE_ORT=1

PHASE=${1:-all}
case "$PHASE" in all|--release|--sanitize) ;; *) echo "usage: scripts/test.sh [--release|--sanitize]" >&2; exit 2;; esac
JOBS=$(nproc)
TIMINGS=()
timed() {  # timed NAME CMD...: runs CMD, records its wall time
  local start=$SECONDS
  "${@:2}"
  TIMINGS+=("$1: $((SECONDS - start)) s")
  echo "== $1 done in $((SECONDS - start)) s"
}

release() {
  # The CUDA backend is compiled (proving it builds) for one architecture only, to save CI time;
  # real builds use the default (80;90).
  cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DDLTOOL_WERROR=ON -DCMAKE_CUDA_ARCHITECTURES=90
  cmake --build build -j"$JOBS"
  # Without a GPU the cuda-labelled tests report "Skipped" (exit code 4), never "Failed".
  ctest --test-dir build --output-on-failure -j"$JOBS"
}

sanitize() {
  # -DDLTOOL_WERROR=OFF: warnings are checked by the GCC Release build; clang's differ.
  cmake -S . -B build/sanitize -DCMAKE_BUILD_TYPE=Sanitize -DDLTOOL_FUZZ=ON -DDLTOOL_CUDA=OFF \
    -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DDLTOOL_WERROR=OFF
  cmake --build build/sanitize -j"$JOBS" --target all fuzz_targets
  timed "fuzz (7 x 20 s)" env DLTOOL_FUZZ_BUILD_DIR=build/sanitize bash scripts/fuzz.sh all 20
  # Stop at the first report and fail the test. Leaks are checked, minus HDF5's own leaks on
  # corrupt files (tests/sanitizer/lsan.supp says which and why). allocator_may_return_null:
  # an impossible allocation returns null, as malloc does without ASan, so the tests of
  # "out of memory names what it was allocating" run here too instead of ASan aborting.
  ASAN_OPTIONS="halt_on_error=1:abort_on_error=1:detect_leaks=1:allocator_may_return_null=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}" \
  UBSAN_OPTIONS="halt_on_error=1:abort_on_error=1:print_stacktrace=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}" \
  LSAN_OPTIONS="suppressions=$PWD/tests/sanitizer/lsan.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}" \
    ctest --test-dir build/sanitize --output-on-failure -j"$JOBS" -E '^t2:' -LE 'stress|cuda|dist|slurm'
}

if [ "$PHASE" = all ] || [ "$PHASE" = --release ]; then timed "release build + tests" release; fi
if [ "$PHASE" = all ] || [ "$PHASE" = --sanitize ]; then timed "ASan+UBSan build + fuzz + tests" sanitize; fi
printf '%s\n' "${TIMINGS[@]}"
