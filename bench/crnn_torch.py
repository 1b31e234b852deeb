#!/usr/bin/python3
"""PyTorch twin of recipes/fashion_mnist/crnn.yaml: the same fashion_strips strips (built with
tests/fixtures/gen_strips.py's plan_strips, which dltool's loader is pinned to), transforms,
CRNN (conv 32/64/128 + pools -> permute + flatten -> bidirectional LSTM 128 -> linear 11 ->
log_softmax), CTC loss (blank 10, mean, zero_infinity), Adam lr 1e-3 and per-step cosine
schedule, batch 64. The training strips are built from the training file's images but its last
--holdout (data.holdout: dltool's val strips come from those). Prints one JSON line: test CTC loss and sequence accuracy (greedy CTC decoding
equal to the strip's classes), training time.

    OPENBLAS_NUM_THREADS=1 bench/crnn_torch.py [--epochs 10] [--train-strips 55000]
        [--holdout 5000] [--test-strips 10000] [--threads 2]
"""
import argparse
import json
import os
import sys
import time

import torch_env  # noqa: E402,F401  (before torch: OpenBLAS core type and threads)
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "tests", "fixtures"))
from gen_strips import plan_strips  # noqa: E402
from torch_recipes import ROOT, read_idx  # noqa: E402

MAX_LEN, BLANK, MEAN, STD = 5, 10, 0.1702, 0.3068


def strips(split, num_strips, stream, seed=0, holdout=0):
    """u8 images -> normalised strips [S, 1, 28, 28 * MAX_LEN], padded targets [S, MAX_LEN], lengths [S].
    holdout: the training file's last `holdout` images are left out (data.holdout)."""
    prefix = "train" if split == "train" else "t10k"
    images = torch.from_numpy(read_idx(f"{ROOT}/{prefix}-images-idx3-ubyte.gz").copy())
    labels = torch.from_numpy(read_idx(f"{ROOT}/{prefix}-labels-idx1-ubyte.gz").astype("int64"))
    if holdout:
        images, labels = images[:len(images) - holdout], labels[:len(labels) - holdout]
    plan = plan_strips(len(images), num_strips, MAX_LEN, seed, stream)
    x = torch.zeros(num_strips, 1, 28, 28 * MAX_LEN, dtype=torch.uint8)
    y = torch.zeros(num_strips, MAX_LEN, dtype=torch.int64)
    lengths = torch.zeros(num_strips, dtype=torch.int64)
    for i in range(num_strips):
        idx = plan.images[plan.offsets[i]:plan.offsets[i + 1]]
        for k, j in enumerate(idx):
            x[i, 0, :, 28 * k:28 * (k + 1)] = images[j]
        y[i, :len(idx)] = labels[idx]
        lengths[i] = len(idx)
    return (x.float() / 255.0 - MEAN) / STD, y, lengths


class CRNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, padding=1)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1)
        self.conv3 = nn.Conv2d(64, 128, 3, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(128)
        self.rnn = nn.LSTM(384, 128, batch_first=True, bidirectional=True)
        self.fc = nn.Linear(256, 11)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)                # [N, 32, 14, 70]
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)                # [N, 64, 7, 35]
        x = F.max_pool2d(F.relu(self.bn3(self.conv3(x))), (2, 1))  # [N, 128, 3, 35]
        x = x.permute(0, 3, 1, 2).flatten(2)                       # [N, 35, 384]
        return self.fc(self.rnn(x)[0]).log_softmax(2)              # [N, 35, 11]


def ctc(out, y, lengths):
    n, t = out.shape[:2]
    return F.ctc_loss(out.transpose(0, 1), y, torch.full((n,), t, dtype=torch.int64), lengths, blank=BLANK,
                      reduction="mean", zero_infinity=True)


def evaluate(model, x, y, lengths):
    """(mean CTC loss per strip, sequence accuracy) over x."""
    model.eval()
    right, loss = 0, 0.0
    with torch.no_grad():
        for i in range(0, len(x), 500):
            out = model(x[i:i + 500])
            loss += ctc(out, y[i:i + 500], lengths[i:i + 500]).item() * len(out)
            best = out.argmax(2)
            for b, path in enumerate(best.tolist()):
                seq, prev = [], BLANK
                for p in path:
                    if p != BLANK and p != prev:
                        seq.append(p)
                    prev = p
                right += seq == y[i + b, :lengths[i + b]].tolist()
    model.train()
    return loss / len(x), right / len(x)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--train-strips", type=int, default=55000)
    ap.add_argument("--holdout", type=int, default=5000)
    ap.add_argument("--test-strips", type=int, default=10000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=64)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    xtr, ytr, ltr = strips("train", args.train_strips, stream=0, holdout=args.holdout)
    xte, yte, lte = strips("test", args.test_strips, stream=2)
    torch.manual_seed(0)
    model = CRNN()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    steps_per_epoch = (len(xtr) + args.batch_size - 1) // args.batch_size
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps_per_epoch * args.epochs)
    train_time = 0.0
    for _ in range(args.epochs):
        perm = torch.randperm(len(xtr))
        t0 = time.perf_counter()
        for i in range(0, len(xtr), args.batch_size):
            idx = perm[i:i + args.batch_size]
            lengths = ltr[idx]
            opt.zero_grad(set_to_none=True)
            ctc(model(xtr[idx]), ytr[idx, :int(lengths.max())], lengths).backward()
            opt.step()
            sched.step()
        train_time += time.perf_counter() - t0
    test_loss, test_accuracy = evaluate(model, xte, yte, lte)
    print(json.dumps({"recipe": "crnn", "epochs": args.epochs, "train_strips": len(xtr),
                      "test_strips": len(xte), "test_loss": round(test_loss, 4),
                      "test_sequence_accuracy": round(test_accuracy, 4),
                      "train_seconds": round(train_time, 2),
                      "samples_per_s": round(len(xtr) * args.epochs / train_time, 1),
                      "torch": torch.__version__, "threads": args.threads}), flush=True)


if __name__ == "__main__":
    main()
