#!/usr/bin/python3
"""Writes Fashion-MNIST (Debian's dataset-fashion-mnist, IDX files) as PNG files in class
folders, the layout torchvision's ImageFolder and dltool's data.format image_folder read:

    OUT/train/<class>/<index>.png    60,000 images (index = position in the IDX file, 5 digits)
    OUT/test/<class>/<index>.png     10,000 images

Class folders are "<label>_<name>" (0_T-shirt-top, 1_Trouser, ..., 9_Ankle-boot), so their
sorted order, and with it ImageFolder's class indices, is the IDX label order. Images are
8-bit grayscale PNGs written with PIL (python3-pil), or with zlib when PIL is missing; the
bytes are the same on every run. Idempotent: a complete tree (OUT/.complete, written last,
names the source files and counts) is left alone; anything else is rewritten.

    recipes/image_folder/make_folder.py [--src /usr/share/datasets/fashion-mnist] [--out build/data/fashion-mnist-png]
"""
import argparse
import gzip
import os
import struct
import sys
import zlib

CLASSES = ["T-shirt-top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle-boot"]
SPLITS = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
          "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}


def read_idx(path, rank):
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic, = struct.unpack(">I", data[:4])
    if magic != 0x800 + rank:
        sys.exit(f"{path}: not an IDX u8 file of rank {rank} (magic {magic:#x})")
    dims = struct.unpack(">" + "I" * rank, data[4:4 + 4 * rank])
    return dims, data[4 + 4 * rank:]


def png_zlib(pixels, h, w):
    """An 8-bit grayscale PNG: IHDR, one IDAT (filter 0 on every row), IEND."""
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
    raw = b"".join(b"\0" + pixels[y * w:(y + 1) * w] for y in range(h))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)) +
            chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def png_writer():
    try:
        import io

        from PIL import Image
    except ImportError:
        return "zlib", png_zlib

    def write(pixels, h, w):
        buf = io.BytesIO()
        Image.frombytes("L", (w, h), pixels).save(buf, "PNG")
        return buf.getvalue()
    return "PIL", write


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--src", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--out", default="build/data/fashion-mnist-png")
    a = ap.parse_args()
    stamp_path = os.path.join(a.out, ".complete")
    stamp = "".join(f"{s}: {os.path.join(a.src, f[0])} {os.path.join(a.src, f[1])}\n" for s, f in SPLITS.items())
    if os.path.exists(stamp_path) and open(stamp_path).read().startswith(stamp):
        print(f"{a.out}: already complete ({open(stamp_path).read().splitlines()[-1]}); nothing written")
        return
    if os.path.exists(stamp_path):
        os.remove(stamp_path)
    writer_name, encode = png_writer()
    counts = []
    for split, (images, labels) in SPLITS.items():
        (n, h, w), pixels = read_idx(os.path.join(a.src, images), 3)
        (nl,), labs = read_idx(os.path.join(a.src, labels), 1)
        if nl != n:
            sys.exit(f"{a.src}: {n} {split} images but {nl} labels")
        for c, name in enumerate(CLASSES):
            os.makedirs(os.path.join(a.out, split, f"{c}_{name}"), exist_ok=True)
        for i in range(n):
            path = os.path.join(a.out, split, f"{labs[i]}_{CLASSES[labs[i]]}", f"{i:05d}.png")
            with open(path, "wb") as f:
                f.write(encode(pixels[i * h * w:(i + 1) * h * w], h, w))
        counts.append(f"{split} {n}")
        print(f"wrote {n} {split} images ({h}x{w} gray PNG, {writer_name}) under {os.path.join(a.out, split)}/<class>/")
    with open(stamp_path, "w") as f:
        f.write(stamp + "images: " + ", ".join(counts) + "\n")


if __name__ == "__main__":
    main()
