#!/usr/bin/python3
"""PyTorch twin of recipes/fashion_mnist/autoencoder.yaml: the conv encoder / ConvTranspose2d
decoder trained to reconstruct its input (MSE, sigmoid output, pixels in [0, 1]), Adam lr 1e-3,
batch 64, the last 5000 training images held out like the recipe. Prints one JSON line: test
reconstruction MSE, training time and samples/s.

    OPENBLAS_NUM_THREADS=1 bench/autoencoder_torch.py [--epochs 5] [--threads 2]
"""
import argparse
import json
import os
import sys
import time

import torch_env  # noqa: E402,F401  (before torch: OpenBLAS core type and threads)
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_recipes import ROOT, read_idx  # noqa: E402


class AutoEncoder(nn.Module):
    """state_dict keys as the recipe names its layers (encoder.0.weight, decoder.2.bias, ...)."""

    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(nn.Conv2d(1, 16, 3, stride=2, padding=1), nn.ReLU(),
                                     nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU())
        self.decoder = nn.Sequential(nn.ConvTranspose2d(32, 16, 3, stride=2, padding=1, output_padding=1), nn.ReLU(),
                                     nn.ConvTranspose2d(16, 1, 3, stride=2, padding=1, output_padding=1), nn.Sigmoid())

    def forward(self, x):
        return self.decoder(self.encoder(x))


def images(split):
    prefix = "train" if split == "train" else "t10k"
    x = read_idx(f"{ROOT}/{prefix}-images-idx3-ubyte.gz").astype(np.float32) / 255.0
    return torch.from_numpy(x).unsqueeze(1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--max-steps", type=int, default=0, help="stop each epoch after this many steps (0: all)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    xtr = images("train")[:-5000]
    xte = images("test")
    torch.manual_seed(0)
    model = AutoEncoder()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    train_time, samples = 0.0, 0
    for _ in range(args.epochs):
        perm = torch.randperm(len(xtr))
        t0 = time.perf_counter()
        for step, i in enumerate(range(0, len(xtr), args.batch_size)):
            if args.max_steps and step >= args.max_steps:
                break
            x = xtr[perm[i:i + args.batch_size]]
            opt.zero_grad(set_to_none=True)
            F.mse_loss(model(x), x).backward()
            opt.step()
            samples += len(x)
        train_time += time.perf_counter() - t0
    model.eval()
    with torch.no_grad():
        mse = sum(F.mse_loss(model(xte[i:i + 1000]), xte[i:i + 1000], reduction="sum").item()
                  for i in range(0, len(xte), 1000)) / xte.numel()
    print(json.dumps({"recipe": "autoencoder", "epochs": args.epochs, "test_mse": round(mse, 6),
                      "train_seconds": round(train_time, 2), "samples_per_s": round(samples / train_time, 1),
                      "torch": torch.__version__, "threads": args.threads}), flush=True)


if __name__ == "__main__":
    main()
