#!/usr/bin/env bash
# Image-folder input pipeline, dltool vs PyTorch: decode (PNG) + random crop 28 (padding 2) +
# horizontal flip + to_float/normalize + collate, batch 64, one epoch over the training folder
# (or --batches N), no model; each at its best number of loader workers of 0, 1, 2.
#   bench/image_folder_bench.sh [build-dir] [extra options for both, e.g. --batches 300]
# Needs BUILD/bench_image_pipeline (cmake --build BUILD --target bench_image_pipeline),
# Debian's python3-torch + python3-torchvision, and the PNG folders (written here first when
# missing: recipes/image_folder/make_folder.py, build/data/fashion-mnist-png).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
shift || true
ROOT=build/data/fashion-mnist-png
recipes/image_folder/make_folder.py --out "$ROOT" >&2
ours=$("$BUILD/bench_image_pipeline" --root "$ROOT" "$@")
theirs=$(OPENBLAS_NUM_THREADS=1 /usr/bin/python3 bench/torch_image_folder_bench.py --root "$ROOT" "$@")
/usr/bin/python3 - "$ours" "$theirs" <<'PY'
import json, sys
ours, theirs = json.loads(sys.argv[1]), json.loads(sys.argv[2])
a, b = ours["best_samples_per_s"], theirs["best_samples_per_s"]
print(f"{'image_folder pipeline (samples/s)':36s} {'dltool':>10s} {'pytorch':>10s} {'speedup':>8s}")
print(f"{'decode+crop+flip+normalize, b64':36s} {a:10.0f} {b:10.0f} {a / b:7.2f}x"
      f"   (best workers: dltool {ours['best_workers']}, pytorch {theirs['best_workers']})")
print(json.dumps({"dltool": ours, "pytorch": theirs, "ratio": round(a / b, 2)}))
PY
