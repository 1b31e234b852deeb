#!/usr/bin/python3
"""PyTorch reference for the Fashion-MNIST recipes (the README's accuracy/time table).

Trains the same models as recipes/fashion_mnist/{mlp,lenet,cnn_bn}.yaml with the same data
(Debian's dataset-fashion-mnist, last 5000 training images held out), transforms, SGD
(momentum 0.9), per-step cosine schedule and batch 64, and prints one JSON line per recipe:
test accuracy, training wall time (excluding evaluation) and samples/s. The settings that
differ per recipe (epochs, lr, Nesterov, weight decay, label smoothing) are in SETTINGS:
mlp and lenet use base.yaml's (5 epochs, lr 0.01), cnn_bn those of cnn_bn.yaml.

    OPENBLAS_NUM_THREADS=1 bench/torch_recipes.py [mlp lenet cnn_bn] [--epochs N] [--threads T]
"""
import argparse
import gzip
import json
import os
import struct
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

ROOT = "/usr/share/datasets/fashion-mnist"


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load(split):
    prefix = "train" if split == "train" else "t10k"
    x = read_idx(f"{ROOT}/{prefix}-images-idx3-ubyte.gz").astype(np.float32) / 255.0
    y = read_idx(f"{ROOT}/{prefix}-labels-idx1-ubyte.gz").astype(np.int64)
    x = (x - 0.2860) / 0.3530
    return torch.from_numpy(x).unsqueeze(1), torch.from_numpy(y)


MODELS = {
    "mlp": lambda: nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(),
                                 nn.Linear(128, 10)),
    "lenet": lambda: nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 16, 5),
                                   nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(400, 120), nn.ReLU(),
                                   nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10)),
    "cnn_bn": lambda: nn.Sequential(nn.Conv2d(1, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
                                    nn.MaxPool2d(2), nn.Conv2d(32, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64),
                                    nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(3136, 256), nn.ReLU(),
                                    nn.Dropout(0.25), nn.Linear(256, 10)),
}

# base.yaml's settings, and each recipe's overrides of them (cnn_bn.yaml).
BASE = {"epochs": 5, "lr": 0.01, "momentum": 0.9, "nesterov": False, "weight_decay": 0.0, "label_smoothing": 0.0}
SETTINGS = {
    "mlp": BASE,
    "lenet": BASE,
    "cnn_bn": {**BASE, "epochs": 7, "lr": 0.05, "nesterov": True, "weight_decay": 5e-4, "label_smoothing": 0.1},
}


def evaluate(model, x, y):
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x), 1000):
            correct += (model(x[i:i + 1000]).argmax(1) == y[i:i + 1000]).sum().item()
    model.train()
    return correct / len(x)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("recipes", nargs="*", default=["mlp", "lenet", "cnn_bn"])
    ap.add_argument("--epochs", type=int, default=None, help="override every recipe's epochs")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=64)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    xtr, ytr = load("train")
    xtr, ytr = xtr[:-5000], ytr[:-5000]
    xte, yte = load("test")
    for name in args.recipes:
        cfg = SETTINGS[name]
        epochs = args.epochs or cfg["epochs"]
        torch.manual_seed(0)
        model = MODELS[name]()
        opt = torch.optim.SGD(model.parameters(), lr=cfg["lr"], momentum=cfg["momentum"], nesterov=cfg["nesterov"],
                              weight_decay=cfg["weight_decay"])
        steps_per_epoch = (len(xtr) + args.batch_size - 1) // args.batch_size
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps_per_epoch * epochs)
        train_time = 0.0
        for epoch in range(epochs):
            perm = torch.randperm(len(xtr))
            t0 = time.perf_counter()
            for i in range(0, len(xtr), args.batch_size):
                idx = perm[i:i + args.batch_size]
                opt.zero_grad(set_to_none=True)
                loss = F.cross_entropy(model(xtr[idx]), ytr[idx], label_smoothing=cfg["label_smoothing"])
                loss.backward()
                opt.step()
                sched.step()
            train_time += time.perf_counter() - t0
        acc = evaluate(model, xte, yte)
        print(json.dumps({"recipe": name, "epochs": epochs, "test_accuracy": round(acc, 4),
                          "train_seconds": round(train_time, 2),
                          "samples_per_s": round(len(xtr) * epochs / train_time, 1),
                          "torch": torch.__version__, "threads": args.threads}), flush=True)


if __name__ == "__main__":
    main()
