#!/usr/bin/env bash
# Engine benchmark vs PyTorch on this machine, as ratios (higher = dltool faster).
#   bench/run_engine_bench.sh [build-dir]
# Needs build/bench_engine (cmake --build build --target bench_engine) and Debian's
# python3-torch with OpenBLAS (scripts/setup.sh --oracle). PyTorch runs at its best setting
# (bench/torch_env.py sets OpenBLAS's core type from the CPU flags: in VMs it detects "Prescott"):
# OPENBLAS_NUM_THREADS=1 and the faster of 1 and 2 torch threads per workload.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
ours=$("$BUILD/bench_engine" --threads "$(nproc)")
theirs=$(OPENBLAS_NUM_THREADS=1 /usr/bin/python3 bench/torch_engine_bench.py)
/usr/bin/python3 - "$ours" "$theirs" <<'PY'
import json, sys
ours, theirs = json.loads(sys.argv[1]), json.loads(sys.argv[2])["best"]
rows = [("sgemm 1024^3 GFLOP/s", "sgemm_1024_gflops", True),
        ("conv2d 32x16x28x28 3x3 fwd+bwd ms", "conv2d_fwd_bwd_ms", False),
        ("MLP 784-512-256-10 b128 step ms", "mlp_step_ms", False),
        ("LeNet-5 b64 step ms", "lenet_step_ms", False),
        ("batch_norm2d 128x16x28x28 fwd+bwd ms", "batch_norm2d_fwd_bwd_ms", False),
        ("row LSTM 28x28 h128 2 layers b64 step ms", "lstm_step_ms", False),
        ("cnn_bn b64 step ms", "cnn_bn_step_ms", False),
        ("ResNet-20 28x28 b128 step ms", "resnet20_step_ms", False),
        ("autoencoder (conv / ConvTranspose2d) b64 step ms", "autoencoder_step_ms", False)]
print(f"{'workload':48s} {'dltool':>10s} {'pytorch':>10s} {'speedup':>8s}")
for name, key, higher in rows:
    a, b = ours[key], theirs[key]
    ratio = a / b if higher else b / a
    print(f"{name:48s} {a:10.2f} {b:10.2f} {ratio:7.2f}x")
print(json.dumps({"dltool": ours, "pytorch_best": theirs}))
PY
