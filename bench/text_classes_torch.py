#!/usr/bin/python3
"""PyTorch twin of recipes/text/fortune_classes.yaml (data.format text_classification): the same
records (datasets/formats/text_classes.cpp's rules, reimplemented in read_records), the same
seeded test/val/train split (tabular_torch.dltool_split), byte ids padded per batch with
pack_padded_sequence(enforce_sorted=False), Embedding -> LSTM -> h_n of every direction ->
Linear, cross_entropy, Adam with a per-step cosine schedule, clip_grad_norm_. Initial weights and
batch order come from torch's own generator, so the numbers agree in distribution, not bit for
bit. Prints one JSON line per epoch and one with the test metrics at the best val epoch and at
the end.

    OPENBLAS_NUM_THREADS=1 bench/text_classes_torch.py [recipes/text/fortune_classes.yaml] [--threads 2] [--seed S]

--parity DIR writes PyTorch parity fixtures instead (tests/app/test_parity.cpp): the recipe
trained from torch.manual_seed(0)'s init for --steps steps on the training split in order
(data.loader.shuffle=false), writing DIR/parity_NAME_init.h5 and _final.h5 (/model/<key>) and
DIR/parity_NAME.txt (each step's loss and lr), NAME = the recipe's file name.

Only the keys these recipes use are understood; anything else is an error.
"""
import argparse
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "tests", "fixtures"))
import torch_env  # noqa: E402,F401  (before torch: OpenBLAS core type and threads)
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import yaml  # noqa: E402
from torch.nn.utils.rnn import pack_padded_sequence  # noqa: E402
from tabular_torch import dltool_split  # noqa: E402


def load_recipe(path):
    """The recipe with its `extends:` chain merged (maps key by key, lists replaced)."""
    with open(path) as f:
        cfg = yaml.safe_load(f)
    base = cfg.pop("extends", None)
    if base is None:
        return cfg

    def merge(a, b):
        out = dict(a)
        for k, v in b.items():
            out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
        return out
    return merge(load_recipe(os.path.join(os.path.dirname(path), base)), cfg)


def read_records(path, separator, max_len, min_len):
    """The records of one file as text_classes.cpp cuts them: lines between separator lines (or
    every line), joined by newlines, shorter than min_len skipped, cut to max_len bytes."""
    data = open(path, "rb").read()
    if b"\0" in data:
        sys.exit(f"{path}: NUL byte")
    lines = data.split(b"\n")
    if separator == "":
        chunks = lines
    else:
        sep, chunks, cur = separator.encode(), [], []
        for line in lines:
            if line == sep:
                chunks.append(b"\n".join(cur))
                cur = []
            else:
                cur.append(line)
        tail = b"\n".join(cur)
        chunks.append(tail[:-1] if tail.endswith(b"\n") else tail)
    return [c[:max_len] for c in chunks if len(c) >= min_len]


def load_data(cfg):
    data = cfg["data"]
    if data.get("format") != "text_classification":
        sys.exit("only data.format text_classification recipes")
    sep, max_len, min_len = data.get("separator", ""), data.get("max_len", 256), data.get("min_len", 1)
    records, labels = [], []
    for c, name in enumerate(data["train"]["files"]):
        recs = read_records(os.path.join(data.get("root", ""), name), sep, max_len, min_len)
        records += recs
        labels += [c] * len(recs)
    test, val, train = dltool_split(len(records), data.get("test_fraction", 0.0), data.get("val_fraction", 0.0),
                                    int(data.get("split_seed", 0)))
    return records, torch.tensor(labels), {"train": train, "val": val, "test": test}, len(data["train"]["files"])


def collate(records, idx):
    """Byte ids padded with 0 to the longest record [N, T] and the lengths [N]."""
    lengths = torch.tensor([len(records[i]) for i in idx])
    x = torch.zeros(len(idx), int(lengths.max()), dtype=torch.long)
    for r, i in enumerate(idx):
        x[r, :len(records[i])] = torch.tensor(list(records[i]), dtype=torch.long)
    return x, lengths


class Net(nn.Module):
    """embed -> lstm (packed) -> flatten(h_n) -> fc, named like the recipe's nodes."""

    def __init__(self, cfg, num_classes):
        super().__init__()
        nodes = {n["name"]: n for n in cfg["model"]["nodes"]}
        e, r = nodes["embed"], nodes["lstm"]
        if list(nodes) != ["embed", "lstm", "h_n", "fc"] or r.get("num_layers", 1) != 1:
            sys.exit("the model must be embed -> lstm (1 layer) -> h_n -> fc")
        self.embed = nn.Embedding(e["num_embeddings"], e["embedding_dim"], padding_idx=e.get("padding_idx"))
        self.lstm = nn.LSTM(e["embedding_dim"], r["hidden_size"], batch_first=True,
                            bidirectional=r.get("bidirectional", False))
        dirs = 2 if r.get("bidirectional", False) else 1
        self.fc = nn.Linear(dirs * r["hidden_size"], num_classes)

    def forward(self, x, lengths):
        packed = pack_padded_sequence(self.embed(x), lengths, batch_first=True, enforce_sorted=False)
        _, (h, _) = self.lstm(packed)  # h: [L * D, N, H]
        return self.fc(h.transpose(0, 1).reshape(x.shape[0], -1))


def make_optimizer(cfg, model, total_steps):
    o = dict(cfg["optimizer"])
    if o.pop("type") != "adam":
        sys.exit("optimizer: only adam")
    opt = torch.optim.Adam(model.parameters(), **o)
    s = cfg.get("scheduler", {})
    if s.get("type") != "cosine_annealing" or s.get("interval") != "step" or s.get("T_max") != "auto":
        sys.exit("scheduler: only cosine_annealing, T_max: auto, interval: step")
    return opt, torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total_steps)


def evaluate(model, records, labels, idx, bs=500):
    model.eval()
    loss, correct = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(idx), bs):
            b = idx[i:i + bs]
            out = model(*collate(records, b))
            loss += F.cross_entropy(out, labels[b], reduction="sum").item()
            correct += (out.argmax(1) == labels[b]).sum().item()
    model.train()
    return {"loss": loss / len(idx), "accuracy": correct / len(idx)}


def train_step(model, opt, sched, clip, records, labels, b):
    """One optimizer step on the records `b` (cross_entropy, clip_grad_norm_, per-step schedule);
    returns the loss before the update."""
    loss = F.cross_entropy(model(*collate(records, b)), labels[b])
    opt.zero_grad()
    loss.backward()
    if clip:
        nn.utils.clip_grad_norm_(model.parameters(), clip)
    opt.step()
    sched.step()
    return loss.item()


def train(cfg, records, labels, split, num_classes):
    torch.manual_seed(int(cfg["train"].get("seed", 0)))
    model = Net(cfg, num_classes)
    bs = cfg["data"]["loader"]["batch_size"]
    tr = split["train"]
    steps_per_epoch = (len(tr) + bs - 1) // bs
    epochs = cfg["train"]["epochs"]
    opt, sched = make_optimizer(cfg, model, epochs * steps_per_epoch)
    clip = cfg["train"].get("clip_grad_norm")
    best, t0 = None, time.time()
    for epoch in range(epochs):
        order = torch.randperm(len(tr)).tolist()
        for i in range(0, len(tr), bs):
            train_step(model, opt, sched, clip, records, labels, [tr[k] for k in order[i:i + bs]])
        val = evaluate(model, records, labels, split["val"])
        row = {"epoch": epoch + 1, "val": val, "seconds": round(time.time() - t0, 1)}
        print(json.dumps(row), flush=True)
        if best is None or val["accuracy"] > best["val"]["accuracy"]:
            best = {"epoch": epoch + 1, "val": val, "test": evaluate(model, records, labels, split["test"])}
    return {"best_val_epoch": best, "final": {"test": evaluate(model, records, labels, split["test"])},
            "train_seconds": round(time.time() - t0, 1)}


def parity(cfg, records, labels, split, num_classes, steps, out_dir, name):
    from gen_parity import write_trajectory, write_weights
    torch.manual_seed(0)
    model = Net(cfg, num_classes)
    write_weights(os.path.join(out_dir, f"parity_{name}_init.h5"), model.state_dict())
    opt, sched = make_optimizer(cfg, model, steps)
    clip = cfg["train"].get("clip_grad_norm")
    bs, tr = cfg["data"]["loader"]["batch_size"], split["train"]
    losses, lrs = [], []
    for s in range(steps):
        losses.append(train_step(model, opt, sched, clip, records, labels, tr[s * bs:(s + 1) * bs]))
        lrs.append(opt.param_groups[0]["lr"])
    write_trajectory(out_dir, name, model.state_dict(), losses, lrs, "bench/text_classes_torch.py --parity")
    print(f"{name}: loss {losses[0]:.6f} -> {losses[-1]:.6f}, final lr {lrs[-1]:.3g}")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("recipe", nargs="?", default=os.path.join(HERE, "..", "recipes", "text", "fortune_classes.yaml"))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, help="torch seed (default: the recipe's train.seed)")
    p.add_argument("--parity", metavar="DIR", help="write parity fixtures into DIR instead of training")
    p.add_argument("--steps", type=int, default=20, help="--parity: training steps")
    a = p.parse_args()
    cfg = load_recipe(a.recipe)
    if a.seed is not None:
        cfg["train"]["seed"] = a.seed
    records, labels, split, num_classes = load_data(cfg)
    if a.parity:
        torch.set_num_threads(1)  # deterministic reductions
        name = os.path.splitext(os.path.basename(a.recipe))[0].removeprefix("parity_")
        parity(cfg, records, labels, split, num_classes, a.steps, a.parity, name)
        return
    torch.set_num_threads(a.threads)
    print(json.dumps({"recipe": a.recipe, "samples": {k: len(v) for k, v in split.items()}}), flush=True)
    print(json.dumps(train(cfg, records, labels, split, num_classes)))


if __name__ == "__main__":
    main()
