#!/usr/bin/env bash
# Runs the libFuzzer targets (tests/fuzz/README.md) for a bounded time.
#   scripts/fuzz.sh TARGET SECONDS   TARGET: config | idx | checkpoint | image | csv | strips | text | all (each for SECONDS)
#   scripts/fuzz.sh TARGET FILE...   re-runs saved inputs (a crash file) once each
# Builds build/fuzz first (clang, ASan + UBSan + libFuzzer instrumentation, CUDA off), or the
# build named by DLTOOL_FUZZ_BUILD_DIR (scripts/test.sh reuses its sanitizer build).
# The seed corpus tests/fuzz/TARGET/ is only read; new interesting inputs go to
# build/fuzz/corpus/TARGET/ (kept between runs, so longer runs build on earlier ones) and
# crashes to build/fuzz/crashes/TARGET/. Exits non-zero when any target crashes.
set -euo pipefail
cd "$(dirname "$0")/.."
TARGETS=(config idx checkpoint image csv strips text)
target=${1:?usage: scripts/fuzz.sh config|idx|checkpoint|image|csv|strips|text|all SECONDS|FILE...}
shift
if [ "$target" = all ]; then selected=("${TARGETS[@]}"); else selected=("$target"); fi
for t in "${selected[@]}"; do
  [[ " ${TARGETS[*]} " == *" $t "* ]] || { echo "fuzz.sh: unknown target '$t' (config, idx, checkpoint, image, csv, strips, text, all)" >&2; exit 2; }
done

BUILD_DIR=${DLTOOL_FUZZ_BUILD_DIR:-build/fuzz}
# -DDLTOOL_WERROR=OFF: warnings are checked by the GCC Release build; clang's differ.
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Sanitize -DDLTOOL_FUZZ=ON -DDLTOOL_CUDA=OFF \
  -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DDLTOOL_WERROR=OFF >/dev/null
cmake --build "$BUILD_DIR" -j"$(nproc)" --target fuzz_targets

# Loud failures: stop at the first report. Leak checking is on (libFuzzer checks every input),
# minus HDF5's own leaks on corrupt files (tests/sanitizer/lsan.supp).
ASAN_BASE="halt_on_error=1:abort_on_error=1:detect_leaks=1:symbolize=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="halt_on_error=1:abort_on_error=1:print_stacktrace=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
export LSAN_OPTIONS="suppressions=$PWD/tests/sanitizer/lsan.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
export OMP_NUM_THREADS=1  # one input at a time; threads only add noise to coverage
# OpenCV reads this once at load: without it an image header claiming up to 2^30 pixels makes
# the decoder allocate gigabytes (beyond -rss_limit_mb) before finding the data missing.
export OPENCV_IO_MAX_IMAGE_PIXELS=${OPENCV_IO_MAX_IMAGE_PIXELS:-16777216}

failed=()
for t in "${selected[@]}"; do
  bin="$BUILD_DIR/fuzz_$t"
  crashes="$BUILD_DIR/crashes/$t"
  export ASAN_OPTIONS=$ASAN_BASE
  # libhdf5 has no frame pointers: only the slow unwinder sees the HDF5 function names the
  # suppressions match (about 3x slower, so only for the target that reaches HDF5).
  extra=()
  if [ "$t" = checkpoint ]; then
    export ASAN_OPTIONS="$ASAN_BASE:fast_unwind_on_malloc=0"
    # HDF5 1.10 can loop forever in its (unchecksummed) global heap on a crafted file
    # (tests/fuzz/hdf5_known/README.md): timeouts are recorded in $crashes, not fatal; crashes are.
    extra=(-fork=1 -ignore_timeouts=1)
  fi
  mkdir -p "$crashes"
  if [[ "${1:-}" =~ ^[0-9]+$ ]]; then
    corpus="$BUILD_DIR/corpus/$t"
    mkdir -p "$corpus"
    dict=(); [ -f "tests/fuzz/$t.dict" ] && dict=(-dict="tests/fuzz/$t.dict")
    echo "== fuzz_$t: $1 s over tests/fuzz/$t/ (+ $corpus); crashes -> $crashes/"
    # -rss_limit_mb: a run that needs more is a bug (every size is validated before allocating).
    # -timeout: any single input taking longer is a hang.
    rc=0
    "$bin" "$corpus" "tests/fuzz/$t" "${dict[@]}" "${extra[@]}" -max_total_time="$1" -rss_limit_mb=2048 \
      -timeout=20 -artifact_prefix="$crashes/" -print_final_stats=1 2>"$crashes/last.log" || rc=$?
    # With -ignore_timeouts, fork mode still exits with libFuzzer's timeout code (70) when its
    # last job hit a timeout; that is a pass when the final counts say 0 ooms and 0 crashes.
    counts=$( (grep -o 'oom/timeout/crash: [0-9]*/[0-9]*/[0-9]*' "$crashes/last.log" || true) | tail -n 1 | awk '{print $2}')
    if [ "$rc" = 70 ] && [ ${#extra[@]} -gt 0 ] && [[ "$counts" =~ ^0/[0-9]+/0$ ]]; then
      echo "fuzz_$t: HDF5 timeouts only (oom/timeout/crash $counts), saved under $crashes/ (tests/fuzz/hdf5_known/)"
      rc=0
    fi
    if [ "$rc" != 0 ]; then
      tail -n 60 "$crashes/last.log" >&2
      failed+=("$t")
    else
      grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb|#[0-9]+ *DONE)' "$crashes/last.log" || true
    fi
  else
    "$bin" -rss_limit_mb=2048 -timeout=20 "$@" || failed+=("$t")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz.sh: crash in: ${failed[*]} (inputs under $BUILD_DIR/crashes/; re-run one with" \
       "scripts/fuzz.sh TARGET FILE; see tests/fuzz/README.md)" >&2
  exit 1
fi
