#!/usr/bin/env bash
# The GPU check: one script for a GPU machine that has nvcc, CMake and ninja (and PyTorch) but
# none of Debian's -dev packages and no network. It
#   1. unpacks the carried .deb files (scripts/fetch_gpu_debs.sh: oneDNN, its OpenCL loader,
#      Catch2) with `dpkg -x` into a private prefix (never into /),
#   2. configures the engine with the CUDA backend against that prefix and builds engine_tests,
#   3. runs the CUDA tests (ctest -L cuda) and then the CPU engine tests (ctest -L engine),
#   4. writes logs and summary.txt under the output folder.
#
#   scripts/gpu_check.sh [--debs DIR] [--build DIR] [--out DIR] [--jobs N] [--cuda-tests-only] [--bench]
#     --debs   folder of .deb files        (default build/gpu-debs)
#     --build  CMake build folder          (default build/gpu)
#     --out    logs + summary.txt          (default $OUT if set, else build/gpu-check-out)
#     --bench  also build bench_engine and run bench/gpu_bench.sh (dltool vs PyTorch eager on
#              this GPU, fp32 and bf16) into bench.txt
#   Environment: CUDA_ARCH (default 90: H100/H200), DLTOOL_BUILD_TYPE (default Release).
#
# Typical use: here `scripts/fetch_gpu_debs.sh`, then on the device machine run
#   bash scripts/gpu_check.sh        (carrying build/gpu-debs; logs land in $OUT)
# A cold build takes about 2-3 minutes on 16 cores (CUDA code for sm_90 only).
#
# Without a GPU (e.g. to test this script on a CPU-only machine) the CUDA tests report
# "Skipped" (exit code 4), which is not a failure. Exit status: 0 when nothing failed.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

DEBS=build/gpu-debs
BUILD=build/gpu
OUTDIR=${OUT:-build/gpu-check-out}
JOBS=$(nproc 2>/dev/null || echo 4)
ENGINE_TESTS=1
BENCH=0
while [ $# -gt 0 ]; do
  case "$1" in
    --debs) DEBS=$2; shift 2 ;;
    --build) BUILD=$2; shift 2 ;;
    --out) OUTDIR=$2; shift 2 ;;
    --jobs) JOBS=$2; shift 2 ;;
    --cuda-tests-only) ENGINE_TESTS=0; shift ;;
    --bench) BENCH=1; shift ;;
    *) echo "gpu_check: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
mkdir -p "$OUTDIR" "$BUILD"
OUTDIR=$(cd "$OUTDIR" && pwd)
BUILD=$(cd "$BUILD" && pwd)
PREFIX="$BUILD/prefix"
SUMMARY="$OUTDIR/summary.txt"
: >"$SUMMARY"
say() { echo "gpu_check: $*" | tee -a "$SUMMARY"; }
fail() { say "FAILED: $*"; exit 1; }
start=$(date +%s)

# ---- 0. what machine is this ------------------------------------------------------------
{
  echo "== date"; date -u
  echo "== uname"; uname -a
  echo "== nvidia-smi"; nvidia-smi -L 2>&1 || true
  echo "== nvcc"; (command -v nvcc || ls /usr/local/cuda/bin/nvcc) 2>&1; (nvcc --version || /usr/local/cuda/bin/nvcc --version) 2>&1 | tail -2
  echo "== cmake"; cmake --version | head -1
  echo "== ninja"; ninja --version 2>&1 || echo "no ninja"
  echo "== c++"; c++ --version 2>&1 | head -1
} >"$OUTDIR/env.txt" 2>&1
HAVE_GPU=0
if nvidia-smi -L >/dev/null 2>&1; then HAVE_GPU=1; fi
say "GPU visible: $([ $HAVE_GPU = 1 ] && nvidia-smi -L | head -1 || echo no)"

# ---- 1. unpack the .deb files into $PREFIX -------------------------------------------------
ls "$DEBS"/*.deb >/dev/null 2>&1 || fail "no .deb files in $DEBS (run scripts/fetch_gpu_debs.sh and carry the folder)"
DEBS=$(cd "$DEBS" && pwd)
rm -rf "$PREFIX"
mkdir -p "$PREFIX"
for deb in "$DEBS"/*.deb; do
  if command -v dpkg >/dev/null 2>&1; then
    dpkg -x "$deb" "$PREFIX" || fail "dpkg -x $deb"
  else  # no dpkg: a .deb is an ar archive holding data.tar.*
    tmp=$(mktemp -d)
    (cd "$tmp" && ar x "$deb") || fail "ar x $deb"
    tar -xf "$tmp"/data.tar.* -C "$PREFIX" || fail "unpacking $deb"
    rm -rf "$tmp"
  fi
done
LIBDIR="$PREFIX/usr/lib/x86_64-linux-gnu"
for f in usr/include/oneapi/dnnl/dnnl.h usr/lib/x86_64-linux-gnu/libdnnl.so usr/lib/x86_64-linux-gnu/libdnnl.so.2 \
         usr/lib/x86_64-linux-gnu/libOpenCL.so.1 usr/lib/cmake/Catch2/Catch2Config.cmake usr/include/catch2/catch.hpp; do
  [ -e "$PREFIX/$f" ] || fail "unpacked prefix lacks $f"
done
say "unpacked $(ls "$DEBS"/*.deb | wc -l) packages into $PREFIX"
# libdnnl.so.2 needs libOpenCL.so.1 at load time (test discovery runs the test binary at build
# time, so this must be set before building).
export LD_LIBRARY_PATH="$LIBDIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

# cuDNN: the CUDA toolkit may not ship it; PyTorch's pip wheel nvidia-cudnn does.
CUDNN_ARGS=()
if ! ls /usr/local/cuda/lib64/libcudnn.so* >/dev/null 2>&1; then
  CUDNN_DIR=$(python3 -c 'import nvidia.cudnn, os; print(os.path.dirname(nvidia.cudnn.__file__))' 2>/dev/null || true)
  if [ -z "$CUDNN_DIR" ]; then
    CUDNN_DIR=$(python3 -c 'import nvidia.cudnn, os; print(list(nvidia.cudnn.__path__)[0])' 2>/dev/null || true)
  fi
  if [ -n "$CUDNN_DIR" ] && ls "$CUDNN_DIR"/lib/libcudnn.so.* >/dev/null 2>&1; then
    CUDNN_LIB=$(ls "$CUDNN_DIR"/lib/libcudnn.so.[0-9]* | head -1)
    CUDNN_ARGS=(-DCUDNN_LIBRARY="$CUDNN_LIB")
    export CPATH="$CUDNN_DIR/include${CPATH:+:$CPATH}"
    export LD_LIBRARY_PATH="$CUDNN_DIR/lib:$LD_LIBRARY_PATH"
    say "cuDNN from the Python wheel: $CUDNN_LIB"
  fi
fi

# ---- 2. configure and build -------------------------------------------------------------------
GEN=()
if command -v ninja >/dev/null 2>&1; then GEN=(-G Ninja); fi
if [ -f "$BUILD/CMakeCache.txt" ] && ! grep -q "CMAKE_HOME_DIRECTORY:INTERNAL=$ROOT\$" "$BUILD/CMakeCache.txt"; then
  rm -rf "$BUILD/CMakeCache.txt" "$BUILD/CMakeFiles"  # a cache from another checkout
fi
cmake -S . -B "$BUILD" "${GEN[@]}" \
  -DCMAKE_BUILD_TYPE="${DLTOOL_BUILD_TYPE:-Release}" \
  -DDLTOOL_ENGINE_ONLY=ON -DDLTOOL_CUDA=ON \
  -DCMAKE_CUDA_ARCHITECTURES="${CUDA_ARCH:-90}" \
  -DDNNL_ROOT="$PREFIX" -DCMAKE_PREFIX_PATH="$PREFIX/usr" \
  -DCMAKE_POLICY_VERSION_MINIMUM=3.5 \
  "${CUDNN_ARGS[@]}" >"$OUTDIR/configure.log" 2>&1 || fail "configure (see configure.log)"
dnnl_found=$(grep -E '^DNNL_LIBRARY:' "$BUILD/CMakeCache.txt" | cut -d= -f2)
catch_found=$(grep -E '^Catch2_DIR:' "$BUILD/CMakeCache.txt" | cut -d= -f2)
say "configured: oneDNN $dnnl_found, Catch2 $catch_found"
case "$dnnl_found" in "$PREFIX"/*) ;; *) say "note: oneDNN was not taken from the unpacked prefix" ;; esac
grep -q "CUDA backend ON" "$OUTDIR/configure.log" || fail "the CUDA backend is not enabled (see configure.log)"

build_start=$(date +%s)
cmake --build "$BUILD" -j "$JOBS" --target engine_tests >"$OUTDIR/build.log" 2>&1 ||
  { tail -40 "$OUTDIR/build.log" | sed 's/^/  /' | tee -a "$SUMMARY"; fail "build (see build.log)"; }
say "built engine_tests in $(( $(date +%s) - build_start )) s"

# ---- 3. tests ---------------------------------------------------------------------------------
status=0
ctest --test-dir "$BUILD" -L cuda --output-on-failure --timeout 600 \
  --output-junit "$OUTDIR/ctest-cuda.xml" >"$OUTDIR/ctest-cuda.log" 2>&1 || status=1
say "cuda tests: $(grep -E 'tests passed|tests failed' "$OUTDIR/ctest-cuda.log" | tail -1)"
skipped=$(grep -c "\*\*\*Skipped" "$OUTDIR/ctest-cuda.log" || true)
if [ "$HAVE_GPU" = 1 ] && [ "$skipped" -gt 0 ]; then
  say "FAILED: a GPU is visible but $skipped cuda tests were skipped (the CUDA runtime found no usable device)"
  status=1
elif [ "$HAVE_GPU" = 0 ]; then
  say "no GPU: $skipped cuda tests reported as skipped (expected)"
fi
grep -E "\(Failed\)|\(SEGFAULT\)|\(Timeout\)|Exception" "$OUTDIR/ctest-cuda.log" | sed 's/^/  /' | tee -a "$SUMMARY"

if [ "$ENGINE_TESTS" = 1 ]; then
  ctest --test-dir "$BUILD" -L engine -j "$JOBS" --output-on-failure --timeout 600 \
    >"$OUTDIR/ctest-engine.log" 2>&1 || status=1
  say "engine tests: $(grep -E 'tests passed|tests failed' "$OUTDIR/ctest-engine.log" | tail -1)"
  grep -E "\(Failed\)|\(SEGFAULT\)|\(Timeout\)" "$OUTDIR/ctest-engine.log" | sed 's/^/  /' | tee -a "$SUMMARY"
fi

# ---- 4. benchmark (not a test: its numbers go to the README) ----------------------------------
if [ "$BENCH" = 1 ] && [ "$HAVE_GPU" = 1 ]; then
  if cmake --build "$BUILD" -j "$JOBS" --target bench_engine >>"$OUTDIR/build.log" 2>&1; then
    bench/gpu_bench.sh "$BUILD" >"$OUTDIR/bench.txt" 2>&1 || say "FAILED: gpu_bench.sh (see bench.txt)"
    sed -n '1,8p' "$OUTDIR/bench.txt" | sed 's/^/  /' | tee -a "$SUMMARY"
  else
    say "FAILED: building bench_engine (see build.log)"
  fi
fi

say "total $(( $(date +%s) - start )) s; result: $([ $status = 0 ] && echo PASS || echo FAIL)"
exit $status
