#!/usr/bin/python3
"""PyTorch side of the engine benchmark (bench/run_engine_bench.sh runs both sides).

Times, on this machine, the same workloads as bench/bench_engine.cpp and prints one JSON
object. PyTorch runs at its best thread setting: OPENBLAS_NUM_THREADS=1 (its default
OpenBLAS pthreads + OpenMP oversubscribe 2 cores) and the faster of 1 and 2 torch threads.
"""
import json
import os
import sys
import time

import torch_env  # noqa: E402,F401  (before torch: OpenBLAS core type and threads)
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_recipes import MODELS  # noqa: E402  (the recipes' lstm, cnn_bn and resnet20, as in PyTorch)
from autoencoder_torch import AutoEncoder  # noqa: E402  (recipes/fashion_mnist/autoencoder.yaml's model)


def timeit(fn, min_time=1.0, warmup=3):
    for _ in range(warmup):
        fn()
    n, t0 = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        el = time.perf_counter() - t0
        if el >= min_time and n >= 5:
            return el / n


def mlp():
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 256), nn.ReLU(),
                         nn.Linear(256, 10))


def lenet():
    return nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10))


def train_step_time(model, batch):
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(batch, 1, 28, 28)
    y = torch.randint(0, 10, (batch,))

    def step():
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
    return timeit(step)


def run(threads):
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    res = {}
    n = 1024
    a, b = torch.randn(n, n), torch.randn(n, n)
    t = timeit(lambda: torch.mm(a, b))
    res["sgemm_1024_gflops"] = 2 * n ** 3 / t / 1e9
    x = torch.randn(32, 16, 28, 28, requires_grad=True)
    conv = nn.Conv2d(16, 32, 3, padding=1)

    def conv_fb():
        out = conv(x)
        out.sum().backward()
    res["conv2d_fwd_bwd_ms"] = timeit(conv_fb) * 1e3
    xb = torch.randn(128, 16, 28, 28, requires_grad=True)
    gyb = torch.randn(128, 16, 28, 28)
    bn = nn.BatchNorm2d(16)
    res["batch_norm2d_fwd_bwd_ms"] = timeit(lambda: bn(xb).backward(gyb)) * 1e3
    t = train_step_time(mlp(), 128)
    res["mlp_step_ms"] = t * 1e3
    res["mlp_samples_per_s"] = 128 / t
    t = train_step_time(lenet(), 64)
    res["lenet_step_ms"] = t * 1e3
    res["lenet_samples_per_s"] = 64 / t
    # The recipes' models: lstm reads the [N, 1, 28, 28] batch as 28 rows of 28 features.
    for name, batch in (("lstm", 64), ("cnn_bn", 64), ("resnet20", 128)):
        t = train_step_time(MODELS[name](), batch)
        res[f"{name}_step_ms"] = t * 1e3
        res[f"{name}_samples_per_s"] = batch / t
    # recipes/fashion_mnist/autoencoder.yaml's model: MSE between the reconstruction and the input.
    model = AutoEncoder()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    xa = torch.rand(64, 1, 28, 28)

    def ae_step():
        opt.zero_grad(set_to_none=True)
        F.mse_loss(model(xa), xa).backward()
        opt.step()
    t = timeit(ae_step)
    res["autoencoder_step_ms"] = t * 1e3
    res["autoencoder_samples_per_s"] = 64 / t
    return res


def main():
    results = {t: run(t) for t in (1, 2)}
    best = {}
    for key in results[1]:
        hi = key.endswith("gflops") or key.endswith("per_s")
        vals = [results[t][key] for t in (1, 2)]
        best[key] = max(vals) if hi else min(vals)
    out = {"torch_version": torch.__version__, "by_threads": results, "best": best}
    json.dump(out, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
