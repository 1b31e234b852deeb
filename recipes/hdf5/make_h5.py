#!/usr/bin/python3
"""Writes Fashion-MNIST (Debian's dataset-fashion-mnist IDX files) into one HDF5 file with h5py,
the layout recipes/hdf5/mlp.yaml reads (data.format hdf5):

    train/x  uint8 [60000, 1, 28, 28]   chunked 1000 images, gzip level 4
    train/y  int64 [60000]
    test/x   uint8 [10000, 1, 28, 28]
    test/y   int64 [10000]

    recipes/hdf5/make_h5.py [OUT]      # default build/data/fashion_mnist.h5 (run from the repo root)

The images keep their IDX order, so the recipe's val_size tail and shuffles see the same samples
as the IDX recipe's. The file is written to OUT.tmp and renamed when complete.
"""
import gzip
import os
import struct
import sys

import h5py
import numpy as np

SRC = "/usr/share/datasets/fashion-mnist"


def read_idx(name):
    with gzip.open(os.path.join(SRC, name), "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "build/data/fashion_mnist.h5"
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    tmp = out + ".tmp"
    with h5py.File(tmp, "w") as f:
        for split, prefix in (("train", "train"), ("test", "t10k")):
            x = read_idx(f"{prefix}-images-idx3-ubyte.gz")[:, None]  # [N, 1, 28, 28]
            y = read_idx(f"{prefix}-labels-idx1-ubyte.gz").astype(np.int64)
            f.create_dataset(f"{split}/x", data=x, chunks=(1000, 1, 28, 28), compression="gzip", compression_opts=4)
            f.create_dataset(f"{split}/y", data=y)
            print(f"{out}: {split}/x {x.dtype} {list(x.shape)}, {split}/y {y.dtype} {list(y.shape)}")
    os.replace(tmp, out)


if __name__ == "__main__":
    main()
