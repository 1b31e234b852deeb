#!/usr/bin/python3
"""PyTorch reference for the Fashion-MNIST recipes (the README's accuracy/time table).

Trains the same models as recipes/fashion_mnist/{mlp,lenet,cnn_bn,resnet20,lstm,stn}.yaml with the same data
(Debian's dataset-fashion-mnist, last 5000 training images held out), transforms, SGD
(momentum 0.9), per-step cosine schedule and batch 64, and prints one JSON line per recipe:
test accuracy, training wall time (excluding evaluation) and samples/s. The settings that
differ per recipe (epochs, lr, Nesterov, weight decay, label smoothing) are in SETTINGS:
mlp, lenet and stn use base.yaml's (5 epochs, lr 0.01), cnn_bn, resnet20 and lstm those of their recipes.

    OPENBLAS_NUM_THREADS=1 bench/torch_recipes.py [mlp lenet cnn_bn resnet20 lstm stn] [--epochs N] [--threads T]
"""
import argparse
import gzip
import json
import os
import struct
import time

import torch_env  # noqa: E402,F401  (before torch: OpenBLAS core type and threads)
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


class BasicBlock(nn.Module):
    """torchvision.models.resnet.BasicBlock (recipes/fashion_mnist/resnet20.yaml's basic_block)."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
                           if stride != 1 or cin != cout else None)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + (self.downsample(x) if self.downsample is not None else x))


class ResNet20(nn.Module):
    """He et al. 2016's CIFAR ResNet-20 (3 stages x 3 blocks, 16/32/64 channels), 1 input channel."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.layer1 = nn.Sequential(*[BasicBlock(16, 16, 1) for _ in range(3)])
        self.layer2 = nn.Sequential(BasicBlock(16, 32, 2), BasicBlock(32, 32, 1), BasicBlock(32, 32, 1))
        self.layer3 = nn.Sequential(BasicBlock(32, 64, 2), BasicBlock(64, 64, 1), BasicBlock(64, 64, 1))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(self.avgpool(x), 1))


class RowLSTM(nn.Module):
    """recipes/fashion_mnist/lstm.yaml: rows as a 28-step sequence, 2-layer LSTM, last step."""

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(28, 128, num_layers=2, batch_first=True)
        self.fc = nn.Linear(128, 10)

    def forward(self, x):
        out, _ = self.lstm(x.view(x.shape[0], 28, 28))
        return self.fc(out[:, -1])


class STN(nn.Module):
    """recipes/fashion_mnist/stn.yaml: PyTorch's spatial transformer tutorial's Net (dltool's recipe names localization[N] locN and fc_loc[N] fc_locN)."""

    def __init__(self):
        super().__init__()
        self.localization = nn.Sequential(nn.Conv2d(1, 8, kernel_size=7), nn.MaxPool2d(2, stride=2), nn.ReLU(True),
                                          nn.Conv2d(8, 10, kernel_size=5), nn.MaxPool2d(2, stride=2), nn.ReLU(True))
        self.fc_loc = nn.Sequential(nn.Linear(10 * 3 * 3, 32), nn.ReLU(True), nn.Linear(32, 3 * 2))
        self.fc_loc[2].weight.data.zero_()
        self.fc_loc[2].bias.data.copy_(torch.tensor([1, 0, 0, 0, 1, 0], dtype=torch.float))
        self.conv1 = nn.Conv2d(1, 10, kernel_size=5)
        self.conv2 = nn.Conv2d(10, 20, kernel_size=5)
        self.conv2_drop = nn.Dropout2d()
        self.fc1 = nn.Linear(320, 50)
        self.fc2 = nn.Linear(50, 10)

    def stn(self, x):
        theta = self.fc_loc(self.localization(x).flatten(1)).view(-1, 2, 3)
        grid = F.affine_grid(theta, x.size(), align_corners=False)
        return F.grid_sample(x, grid, align_corners=False)

    def forward(self, x):
        x = self.stn(x)
        x = F.relu(F.max_pool2d(self.conv1(x), 2))
        x = F.relu(F.max_pool2d(self.conv2_drop(self.conv2(x)), 2))
        x = F.relu(self.fc1(x.flatten(1)))
        return self.fc2(F.dropout(x, training=self.training))


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
    "resnet20": ResNet20,
    "lstm": RowLSTM,
    "stn": STN,
}

# base.yaml's settings, and each recipe's overrides of them (cnn_bn.yaml).
BASE = {"epochs": 5, "lr": 0.01, "momentum": 0.9, "nesterov": False, "weight_decay": 0.0, "label_smoothing": 0.0}
SETTINGS = {
    "mlp": BASE,
    "lenet": BASE,
    "cnn_bn": {**BASE, "epochs": 7, "lr": 0.05, "nesterov": True, "weight_decay": 5e-4, "label_smoothing": 0.1},
    "resnet20": {**BASE, "epochs": 10, "lr": 0.1, "weight_decay": 5e-4},
    "lstm": {**BASE, "optimizer": "adam", "lr": 0.002},
    "stn": BASE,
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
        if cfg.get("optimizer") == "adam":
            opt = torch.optim.Adam(model.parameters(), lr=cfg["lr"])
        else:
            opt = torch.optim.SGD(model.parameters(), lr=cfg["lr"], momentum=cfg["momentum"],
                                  nesterov=cfg["nesterov"], weight_decay=cfg["weight_decay"])
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
