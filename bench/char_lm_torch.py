#!/usr/bin/python3
"""PyTorch twin of recipes/text/char_lstm.yaml: the same corpus windows (the fortunes text files
back to back in sorted order, *.dat/*.u8 skipped; UTF-8 code points; vocabulary = <unk> + the
sorted characters of the training part; the last 5% is val; 64-character windows at stride 64),
the same model (Embedding 32 -> 2-layer LSTM 128 -> Linear to the vocabulary, logits permuted
to [N, V, T] for cross_entropy), Adam lr 0.003 with a per-step cosine schedule, gradient-norm
clipping 5, batch 32 (shuffled, last incomplete batch dropped) and the same number of steps.
Prints one JSON line: val bits per character (mean next-character cross-entropy / ln 2),
val loss, steps, training time.

    bench/char_lm_torch.py [--steps 600] [--epochs 1] [--threads 2]
"""
import argparse
import glob
import json
import math
import os
import time

import torch_env  # noqa: E402,F401  (before torch: OpenBLAS core type and threads)
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

ROOT = "/usr/share/games/fortunes"


def corpus_ids(seq_len, holdout):
    """Token ids of the whole corpus, the train/val cut and the vocabulary size (text.cpp's rules)."""
    files, seen = [], set()
    for path in sorted(glob.glob(os.path.join(ROOT, "*"))):
        name = os.path.basename(path)
        if os.path.isdir(path) or name.endswith(".dat") or name.endswith(".u8"):
            continue
        real = os.path.realpath(path)
        if real in seen:
            continue
        seen.add(real)
        files.append(path)
    text = "".join(open(p, "rb").read().decode("utf-8") for p in files)
    total = len(text)
    val_tokens = math.floor(holdout * total + 0.5)  # llround
    cut = total - val_tokens
    vocab = sorted(set(text[:cut]))
    index = {c: i + 1 for i, c in enumerate(vocab)}  # 0 = <unk>
    ids = torch.tensor([index.get(c, 0) for c in text], dtype=torch.long)
    return ids, cut, len(vocab) + 1


def windows(ids, begin, end, seq_len):
    """Inputs and next-token targets [n, seq_len] of the windows at stride seq_len in [begin, end)."""
    n = (end - begin - seq_len - 1) // seq_len + 1
    starts = begin + torch.arange(n) * seq_len
    offs = torch.arange(seq_len)
    return ids[starts[:, None] + offs], ids[starts[:, None] + offs + 1]


class CharLSTM(nn.Module):
    def __init__(self, vocab):
        super().__init__()
        self.embed = nn.Embedding(vocab, 32)
        self.lstm = nn.LSTM(32, 128, num_layers=2, batch_first=True)
        self.fc = nn.Linear(128, vocab)

    def forward(self, x):
        return self.fc(self.lstm(self.embed(x))[0]).permute(0, 2, 1)  # [N, V, T]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seq-len", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    ids, cut, vocab = corpus_ids(args.seq_len, 0.05)
    xtr, ytr = windows(ids, 0, cut, args.seq_len)
    xva, yva = windows(ids, cut, len(ids), args.seq_len)
    model = CharLSTM(vocab)
    per_epoch = len(xtr) // args.batch_size
    steps = min(args.steps, per_epoch * args.epochs)
    opt = torch.optim.Adam(model.parameters(), lr=0.003)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    step, t0 = 0, time.time()
    while step < steps:
        perm = torch.randperm(len(xtr))
        for b in range(per_epoch):
            if step == steps:
                break
            idx = perm[b * args.batch_size:(b + 1) * args.batch_size]
            loss = F.cross_entropy(model(xtr[idx]), ytr[idx])
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            sched.step()
            step += 1
            if step % 100 == 0:
                print(f"step {step} loss {loss.item():.4f} ({time.time() - t0:.0f} s)", flush=True)
    train_s = time.time() - t0
    model.eval()
    nats, count = 0.0, 0
    with torch.no_grad():
        for b in range(0, len(xva), 256):
            out = model(xva[b:b + 256])
            nats += F.cross_entropy(out, yva[b:b + 256], reduction="sum").item()
            count += yva[b:b + 256].numel()
    print(json.dumps({"recipe": "char_lstm", "framework": "pytorch " + torch.__version__, "vocab": vocab,
                      "train_windows": len(xtr), "val_windows": len(xva), "steps": steps,
                      "val_loss": nats / count, "val_bits_per_char": nats / count / math.log(2),
                      "train_seconds": round(train_s, 1), "threads": args.threads}))


if __name__ == "__main__":
    main()
