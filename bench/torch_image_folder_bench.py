#!/usr/bin/python3
"""The image-folder input pipeline in PyTorch: torchvision ImageFolder (PIL decode, gray like
data.color gray) + RandomCrop(28, padding=2) + RandomHorizontalFlip() + ToTensor() +
Normalize, DataLoader(batch 64, shuffle) for each num_workers given; no model. The same
pipeline as bench/app/image_pipeline.cpp (bench/image_folder_bench.sh runs both).

    OPENBLAS_NUM_THREADS=1 bench/torch_image_folder_bench.py --root build/data/fashion-mnist-png
        [--dir train] [--workers 0,1,2] [--batch-size 64] [--batches 0 (= one epoch)]
    -> one JSON object on stdout (the same keys as bench_image_pipeline's)
"""
import argparse
import json
import os
import sys
import time

import torch_env  # noqa: F401  (before torch: OpenBLAS core type and threads)
import torch  # noqa: E402
from PIL import Image
from torchvision import datasets, transforms


def gray_loader(path):
    with open(path, "rb") as f:
        return Image.open(f).convert("L")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", required=True)
    ap.add_argument("--dir", default="train")
    ap.add_argument("--workers", default="0,1,2")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--batches", type=int, default=0)
    a = ap.parse_args()
    tf = transforms.Compose([transforms.RandomCrop(28, padding=2), transforms.RandomHorizontalFlip(),
                             transforms.ToTensor(), transforms.Normalize((0.2860,), (0.3530,))])
    data = datasets.ImageFolder(os.path.join(a.root, a.dir), transform=tf, loader=gray_loader)
    torch.manual_seed(1)
    runs = []
    for w in (int(x) for x in a.workers.split(",")):
        loader = torch.utils.data.DataLoader(data, batch_size=a.batch_size, shuffle=True, num_workers=w)
        t0 = time.perf_counter()
        n = 0
        for b, (x, _) in enumerate(loader):
            if a.batches and b >= a.batches:
                break
            n += x.shape[0]
        dt = time.perf_counter() - t0
        del loader  # stops its workers before the next configuration starts
        runs.append({"workers": w, "seconds": round(dt, 3), "samples_per_s": round(n / dt, 1), "samples": n})
        print(f"pytorch: num_workers {w}: {n} samples in {dt:.2f} s = {n / dt:.0f} samples/s", file=sys.stderr)
    best = max(runs, key=lambda r: r["samples_per_s"])
    print(json.dumps({"samples": best["samples"], "best_samples_per_s": best["samples_per_s"],
                      "best_workers": best["workers"], "torch_threads": torch.get_num_threads(), "runs": runs}))


if __name__ == "__main__":
    main()
