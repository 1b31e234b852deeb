#!/usr/bin/env python3
"""PyTorch eager side of the GPU benchmark (bench/gpu_bench.sh runs both sides).

Training steps (forward, cross-entropy, backward, SGD momentum step) of the models in
bench/bench_engine.cpp on one GPU, in fp32 and in bf16 autocast (torch.autocast("cuda",
torch.bfloat16): matmul/conv in bf16, the rest in f32, f32 master weights), with random
batches already on the device. Prints one JSON object: per model and precision the step time
(ms), samples/s and peak allocated GPU memory (MiB). Runs with any python3 that has a CUDA
PyTorch (the GPU machines' own, not Debian's CPU build).

    bench/torch_gpu_bench.py [--models lenet,cnn_bn,resnet20] [--precisions fp32,bf16] [--min-time 2]
"""
import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_env  # noqa: E402,F401
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from torch_engine_bench import lenet  # noqa: E402
from torch_recipes import MODELS  # noqa: E402

BATCH = {"lenet": 64, "cnn_bn": 64, "resnet20": 128, "lstm": 64}


def build(name):
    return lenet() if name == "lenet" else MODELS[name]()


def step_time(name, precision, min_time):
    dev = torch.device("cuda")
    torch.manual_seed(0)
    model = build(name).to(dev)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    batch = BATCH[name]
    x = torch.randn(batch, 1, 28, 28, device=dev)
    y = torch.randint(0, 10, (batch,), device=dev)
    torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"
    torch.backends.cudnn.allow_tf32 = precision == "tf32"
    low = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    scaler = torch.cuda.amp.GradScaler(enabled=precision == "fp16")

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=low or torch.float32, enabled=low is not None):
            loss = F.cross_entropy(model(x), y)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()

    for _ in range(5):
        step()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    n, t0 = 0, time.perf_counter()
    while True:
        step()
        n += 1
        torch.cuda.synchronize()
        el = time.perf_counter() - t0
        if el >= min_time and n >= 20:
            break
    s = el / n
    return {"step_ms": s * 1e3, "samples_per_s": batch / s,
            "peak_mib": torch.cuda.max_memory_allocated() / 2**20}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="lenet,cnn_bn,resnet20")
    ap.add_argument("--precisions", default="fp32,bf16")
    ap.add_argument("--min-time", type=float, default=2.0)
    a = ap.parse_args()
    if not torch.cuda.is_available():
        sys.exit("torch_gpu_bench: this PyTorch sees no CUDA device")
    torch.backends.cudnn.benchmark = False  # dltool picks algorithms by heuristics too
    out = {"torch_version": torch.__version__, "gpu": torch.cuda.get_device_name(0), "results": {}}
    for m in a.models.split(","):
        for p in a.precisions.split(","):
            out["results"][f"{m}_{p}"] = step_time(m, p, a.min_time)
    json.dump(out, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
