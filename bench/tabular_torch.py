#!/usr/bin/python3
"""A tabular recipe (recipes/tabular/*.yaml, data.format csv) trained in PyTorch, for comparison.

Reads the recipe and runs the same thing in PyTorch: the CSV file(s) read with numpy, the same
train/val/test split (dltool's seeded permutation, reimplemented below: Philox-4x32-10 under
splitmix64 keys, datasets/format.cpp), the same normalize transform, model, loss, optimizer,
batch size and epochs. Initial weights and batch order come from torch's own generator (seeds
0..N-1), so the numbers agree in distribution, not bit for bit. Prints one JSON line per seed
and one with the mean; with --dltool it also trains the recipe with dltool for train.seed
0..N-1 (run dirs build/bench_tabular/) and prints `dltool eval --split test` beside them.

    OPENBLAS_NUM_THREADS=1 bench/tabular_torch.py recipes/tabular/diabetes.yaml [--seeds 5]
        [--dltool build/dltool]

Only the recipe keys the tabular recipes use are understood; anything else is an error.
"""
import argparse
import gzip
import json
import math
import os
import re
import subprocess
import sys

import torch_env  # noqa: E402,F401  (before torch: OpenBLAS core type and threads)
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import yaml  # noqa: E402

M32, M64 = 0xFFFFFFFF, 0xFFFFFFFFFFFFFFFF


# ---- dltool's split (datasets/format.cpp split_permutation, engine/ops/random randperm) -------
def splitmix64(x):
    x = (x + 0x9E3779B97F4A7C15) & M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & M64
    return x ^ (x >> 31)


def philox_u64(key, counter):
    """Generator::next_u64: words 0 and 1 of Philox-4x32-10(key, counter)."""
    c0, c1, c2, c3 = counter & M32, (counter >> 32) & M32, 0, 0
    k0, k1 = key & M32, key >> 32
    for _ in range(10):
        p0, p1 = 0xD2511F53 * c0, 0xCD9E8D57 * c2
        c0, c1, c2, c3 = (p1 >> 32) ^ c1 ^ k0, p1 & M32, (p0 >> 32) ^ c3 ^ k1, p0 & M32
        k0, k1 = (k0 + 0x9E3779B9) & M32, (k1 + 0xBB67AE85) & M32
    return (c0 << 32) | c1


def dltool_split(n, test_fraction, val_fraction, seed):
    """(test, val, train) index lists as dltool's data.test_fraction / val_fraction carve them."""
    key = splitmix64(splitmix64((seed ^ 0x53504C4954) ^ 0x53485546464C4500))  # epoch_key(seed ^ "SPLIT", 0)
    perm = list(range(n))
    for counter, i in enumerate(range(n - 1, 0, -1)):
        j = philox_u64(key, counter) % (i + 1)
        perm[i], perm[j] = perm[j], perm[i]
    n_test, n_val = math.floor(test_fraction * n), math.floor(val_fraction * n)
    return sorted(perm[:n_test]), sorted(perm[n_test:n_test + n_val]), sorted(perm[n_test + n_val:])


# ---- the recipe -------------------------------------------------------------------------------
def load_recipe(path):
    with open(path) as f:
        cfg = yaml.safe_load(f)
    if "extends" in cfg:
        sys.exit(f"{path}: extends: is not supported here")
    return cfg


def read_table(path, data):
    opener = gzip.open if open(path, "rb").read(2) == b"\x1f\x8b" else open
    with opener(path, "rt") as f:
        lines = f.read().splitlines()[int(data.get("skip_rows", 0)):]
    delim = data.get("delimiter", ",")
    split = (lambda s: s.split()) if delim == " " else (lambda s: [v.strip() for v in s.split(delim)])
    rows = [split(line) for line in lines if line.strip()]
    names = rows.pop(0) if data.get("header", True) else []
    return names, rows


def columns(specs, names, n):
    out = []
    for spec in specs if isinstance(specs, list) else [specs]:
        spec = str(spec)
        if spec in names:
            out.append(names.index(spec))
        elif re.fullmatch(r"-?\d+", spec):
            out.append(int(spec) % n)
        elif ":" in spec:
            a, b = spec.split(":")
            out.extend(range(n)[slice(int(a) if a else None, int(b) if b else None)])
        else:
            sys.exit(f"column '{spec}' not found")
    return out


def load_data(cfg):
    data = cfg["data"]
    if data.get("format") != "csv":
        sys.exit("only data.format csv recipes")
    root = data.get("root", "")
    train = data["train"]
    names, rows = read_table(os.path.join(root, train["file"]), data)
    n_cols = len(rows[0])
    if "target_file" in train:
        t_names, t_rows = read_table(os.path.join(root, train["target_file"]), data)
        t_cols = columns(data["target"], t_names, len(t_rows[0])) if "target" in data else list(range(len(t_rows[0])))
        feat = columns(data["features"], names, n_cols) if "features" in data else list(range(n_cols))
    else:
        t_names, t_rows = names, rows
        t_cols = columns(data["target"], names, n_cols)
        feat = columns(data["features"], names, n_cols) if "features" in data else [c for c in range(n_cols) if c not in t_cols]
    x = np.array([[float(r[c]) for c in feat] for r in rows], dtype=np.float64).astype(np.float32)
    kind = data.get("target_kind", "class")
    if kind == "class":
        raw = [r[t_cols[0]] for r in t_rows]
        classes = data.get("classes")
        if classes:
            y = np.array([classes.index(v) if v in classes else int(float(v)) for v in raw], dtype=np.int64)
        elif all(re.fullmatch(r"[+-]?\d+(\.0*)?", v) for v in raw):
            y = np.array([int(float(v)) for v in raw], dtype=np.int64)
        else:
            names_sorted = sorted(set(raw))
            y = np.array([names_sorted.index(v) for v in raw], dtype=np.int64)
    elif kind == "regression":
        y = np.array([[float(r[c]) for c in t_cols] for r in t_rows], dtype=np.float64).astype(np.float32)
    else:
        sys.exit(f"target_kind {kind} is not supported here")
    for t in data.get("transforms", []):
        if t["type"] != "normalize":
            sys.exit(f"transform {t['type']} is not supported here")
        x = (x - np.float32(t["mean"])) / np.float32(t["std"])  # float32, as dltool's normalize
    test, val, tr = dltool_split(len(x), data.get("test_fraction", 0.0), data.get("val_fraction", 0.0),
                                 int(data.get("split_seed", 0)))
    return torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(y), {"train": tr, "val": val, "test": test}, kind


def build_model(cfg, in_features):
    layers, d = [], in_features
    for layer in cfg["model"]["layers"]:
        t = layer if isinstance(layer, str) else layer["type"]
        if t == "linear":
            layers.append(nn.Linear(d, layer["out_features"], bias=layer.get("bias", True)))
            d = layer["out_features"]
        elif t in ("relu", "tanh", "sigmoid"):
            layers.append({"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}[t]())
        elif t == "dropout":
            layers.append(nn.Dropout(layer.get("p", 0.5)))
        else:
            sys.exit(f"layer {t} is not supported here")
    return nn.Sequential(*layers)


def build_optimizer(cfg, params):
    o = dict(cfg["optimizer"])
    t = o.pop("type")
    if t == "adam":
        return torch.optim.Adam(params, **o)
    if t == "adamw":
        return torch.optim.AdamW(params, **o)
    if t == "sgd":
        return torch.optim.SGD(params, **o)
    sys.exit(f"optimizer {t} is not supported here")


def metrics(out, y, kind):
    if kind == "class":
        return {"loss": nn.functional.cross_entropy(out, y).item(), "accuracy": (out.argmax(1) == y).double().mean().item()}
    err = (out.double() - y.double())
    sst = ((y.double() - y.double().mean(0)) ** 2).sum(0)
    return {"mse": (err ** 2).mean().item(), "mae": err.abs().mean().item(), "rmse": math.sqrt((err ** 2).mean().item()),
            "r2": (1 - (err ** 2).sum(0) / sst).mean().item()}


def train_torch(cfg, x, y, split, kind, seed):
    if cfg.get("scheduler", {"type": "none"}).get("type", "none") != "none":
        sys.exit("schedulers are not supported here")
    loss_type = cfg["loss"]["type"]
    loss_fn = {"cross_entropy": nn.CrossEntropyLoss(), "mse_loss": nn.MSELoss(), "l1_loss": nn.L1Loss()}[loss_type]
    torch.manual_seed(seed)
    model = build_model(cfg, x.shape[1])
    opt = build_optimizer(cfg, model.parameters())
    loader = cfg["data"].get("loader", {})
    bs, shuffle, drop_last = loader.get("batch_size", 64), loader.get("shuffle", False), loader.get("drop_last", False)
    train_idx = torch.tensor(split["train"])
    for _ in range(cfg["train"]["epochs"]):
        model.train()
        order = train_idx[torch.randperm(len(train_idx))] if shuffle else train_idx
        for i in range(0, len(order), bs):
            b = order[i:i + bs]
            if drop_last and len(b) < bs:
                break
            opt.zero_grad()
            loss_fn(model(x[b]), y[b]).backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        return {name: metrics(model(x[torch.tensor(idx)]), y[torch.tensor(idx)], kind)
                for name, idx in split.items() if idx and name != "train"}


def run_dltool(binary, recipe, seed):
    """dltool's test metrics for train.seed=SEED: `dltool train`, then `dltool eval --split test --json`."""
    name = os.path.splitext(os.path.basename(recipe))[0]
    run_dir = os.path.join("build", "bench_tabular", f"{name}_seed{seed}")
    subprocess.run([binary, "train", recipe, f"train.seed={seed}", "--run-dir", run_dir], capture_output=True, text=True,
                   check=True)
    out = subprocess.run([binary, "eval", run_dir, "--split", "test", "--json"], capture_output=True, text=True,
                         check=True).stdout
    r = json.loads(out)
    keep = ("loss", "accuracy", "mae", "rmse", "r2")
    return {("mse" if k == "loss" and "r2" in r else k): r[k] for k in keep if k in r}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("recipe")
    p.add_argument("--seeds", type=int, default=5, help="torch seeds 0..N-1 (default 5)")
    p.add_argument("--dltool", help="also train the recipe with this dltool binary (same seeds) and evaluate it")
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    cfg = load_recipe(a.recipe)
    x, y, split, kind = load_data(cfg)
    print(json.dumps({"recipe": a.recipe, "samples": {k: len(v) for k, v in split.items()}}))
    runs = []
    for seed in range(a.seeds):
        r = train_torch(cfg, x, y, split, kind, seed)
        runs.append(r)
        print(json.dumps({"torch_seed": seed, **r}))
    mean = {s: {k: float(np.mean([r[s][k] for r in runs])) for k in runs[0][s]} for s in runs[0]}
    print(json.dumps({"torch_mean_of_seeds": a.seeds, **mean}))
    if a.dltool:
        dl_runs = []
        for seed in range(a.seeds):
            dl_runs.append(run_dltool(a.dltool, a.recipe, seed))
            print(json.dumps({"dltool_seed": seed, "test": dl_runs[-1]}))
        print(json.dumps({"dltool_mean_of_seeds": a.seeds,
                          "test": {k: float(np.mean([r[k] for r in dl_runs])) for k in dl_runs[0]}}))

if __name__ == "__main__":
    main()
