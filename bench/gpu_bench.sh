#!/usr/bin/env bash
# GPU benchmark: training samples/s of LeNet (batch 64), cnn_bn (64) and ResNet-20 (128) on one
# GPU, dltool (build/<dir>/bench_engine --device cuda) against PyTorch eager on the same GPU
# (bench/torch_gpu_bench.py), in fp32 and bf16, with peak GPU memory. Prints a table of ratios
# (higher = dltool faster) and one JSON line with every number.
#   bench/gpu_bench.sh [build-dir] [precisions]      defaults: build/gpu, "fp32 bf16"
# Then one line of optimizer step times (fused multi-tensor kernels vs engine ops).
# Runs on the GPU machine after scripts/gpu_check.sh built bench_engine (its --bench does both).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build/gpu}
PRECISIONS=${2:-fp32 bf16}
MODELS="lenet cnn_bn resnet20"
PY=${PYTHON:-python3}

ours="{"
for p in $PRECISIONS; do
  for m in $MODELS; do
    args=(--device cuda --only "$m")
    [ "$p" = fp32 ] || args+=(--precision "$p")
    if out=$("$BUILD/bench_engine" "${args[@]}" 2>&1); then
      ours+="\"${m}_${p}\": $out,"
    else
      echo "gpu_bench: dltool $m $p failed: $(echo "$out" | tail -3)" >&2
      ours+="\"${m}_${p}\": null,"
    fi
  done
done
ours="${ours%,}}"
theirs=$("$PY" bench/torch_gpu_bench.py --models "${MODELS// /,}" --precisions "${PRECISIONS// /,}")
"$PY" - "$ours" "$theirs" <<'PY'
import json, sys
ours, theirs = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print(f"GPU: {theirs['gpu']}, PyTorch {theirs['torch_version']}")
print(f"{'workload':22s} {'dltool/s':>10s} {'torch/s':>10s} {'ratio':>7s} {'dltool MiB':>11s} {'torch MiB':>10s}")
for key, t in theirs["results"].items():
    o = ours.get(key)
    model = key.rsplit("_", 1)[0]
    if not o:
        print(f"{key:22s} {'failed':>10s} {t['samples_per_s']:10.0f}")
        continue
    sps = o[f"{model}_samples_per_s"]
    mib = o.get(f"{model}_peak_mib", float("nan"))
    print(f"{key:22s} {sps:10.0f} {t['samples_per_s']:10.0f} {sps / t['samples_per_s']:6.2f}x {mib:11.1f} {t['peak_mib']:10.1f}")
print(json.dumps({"dltool": ours, "pytorch": theirs}))
PY
# One optimizer step over ResNet-20's parameters: the fused multi-tensor kernels (one launch per
# param group) against the engine-op path, every optimizer (milliseconds).
echo "optimizer steps, fused vs engine ops (ms): $("$BUILD/bench_engine" --device cuda --only optim 2>&1 | tail -1)"
