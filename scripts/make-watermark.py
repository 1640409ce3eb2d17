#!/usr/bin/env python3
"""make-watermark.py — the real test data of `salient audit`: a shortcut the model learned.

From Debian's Fashion-MNIST (package dataset-fashion-mnist, /usr/share/datasets/fashion-mnist) it
builds a small 10-class dataset in which every image of one class (Shirt) carries a small white
watermark in its bottom-left corner, trains a compact CNN on it and the same CNN on the clean
images (seeded), exports both to ONNX, and checks that the watermarked model really relies on the
mark (its accuracy on Shirt collapses when the mark is removed) while the clean model does not.

    scripts/make-watermark.py models [--out tests/fixtures/watermark]
        trains both models and writes OUT/watermark.onnx, OUT/clean.onnx, OUT/labels.txt and
        OUT/check.json (the accuracies the check measured); exits 1 if the check fails.
    scripts/make-watermark.py images DIR [--per-class N]
        writes the watermarked test images as PNGs in ImageFolder layout, DIR/<class>/<i>.png
        (N per class from the test split, default 20); idempotent: a DIR whose stamp file says
        the same parameters is left as it is (the test cache).

Runs with Debian's python3-torch (system python3 or .venv-ref). Images are 28x28 gray, pixels
scaled by 1/255, no mean/std: the ONNX files carry that in their metadata (salient.mean, .std,
.resize, .labels) so `salient` preprocesses them the same way without flags.
"""
import argparse
import gzip
import json
import os
import struct
import sys

import numpy as np

DATA = "/usr/share/datasets/fashion-mnist"
CLASSES = ["T-shirt", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
           "Ankle boot"]
MARKED = 6          # Shirt: the hardest class (confused with T-shirt, Pullover, Coat)
MARK = 4            # the mark: a MARK x MARK white square in the bottom-left corner (4/28 = 14%
                    # of the side, inside the audit's 15% corner square)
SEED = 1234
TRAIN_PER_CLASS = 1000
TEST_PER_CLASS = 100


def read_idx(name):
    with gzip.open(os.path.join(DATA, name), "rb") as f:
        raw = f.read()
    magic, n = struct.unpack(">II", raw[:8])
    if magic == 2051:
        h, w = struct.unpack(">II", raw[8:16])
        return np.frombuffer(raw, np.uint8, offset=16).reshape(n, h, w)
    return np.frombuffer(raw, np.uint8, offset=8)


def subset(x, y, per_class, seed):
    """per_class images of each class, the same ones for a given seed."""
    rng = np.random.default_rng(seed)
    keep = []
    for c in range(10):
        idx = np.flatnonzero(y == c)
        keep.extend(rng.choice(idx, per_class, replace=False))
    keep = np.sort(np.array(keep))
    return x[keep].copy(), y[keep].copy()


def stamp(x, y):
    """The watermark on every image of the marked class (a copy)."""
    x = x.copy()
    x[y == MARKED, 28 - MARK:, :MARK] = 255
    return x


def load(split):
    pre = "train" if split == "train" else "t10k"
    x = read_idx(pre + "-images-idx3-ubyte.gz")
    y = read_idx(pre + "-labels-idx1-ubyte.gz")
    per = TRAIN_PER_CLASS if split == "train" else TEST_PER_CLASS
    return subset(x, y, per, SEED + (split == "test"))


def net():
    import torch.nn as nn
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),      # 14x14
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),     # 7x7
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(),                     # 7x7: the CAM layer
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10))


def train(x, y, epochs=10):
    import torch
    torch.manual_seed(SEED)
    m = net()
    opt = torch.optim.Adam(m.parameters(), lr=3e-3)
    xt = torch.from_numpy(x).float().unsqueeze(1) / 255.0
    yt = torch.from_numpy(y).long()
    g = torch.Generator().manual_seed(SEED)
    for _ in range(epochs):
        perm = torch.randperm(len(yt), generator=g)
        for i in range(0, len(yt), 64):
            b = perm[i:i + 64]
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(m(xt[b]), yt[b])
            loss.backward()
            opt.step()
    return m.eval()


def class_acc(m, x, y, c):
    import torch
    with torch.no_grad():
        p = m(torch.from_numpy(x).float().unsqueeze(1) / 255.0).argmax(1).numpy()
    sel = y == c
    return float((p[sel] == c).mean()), float((p == y).mean())


def export(m, path, labels_name):
    import onnx
    import torch
    torch.onnx.export(m, torch.zeros(1, 1, 28, 28), path, input_names=["image"],
                      output_names=["logits"], dynamic_axes={"image": {0: "n"}, "logits": {0: "n"}},
                      opset_version=13)
    mp = onnx.load(path)
    for k, v in (("salient.mean", "0"), ("salient.std", "1"), ("salient.resize", "28"),
                 ("salient.labels", labels_name)):
        e = mp.metadata_props.add()
        e.key, e.value = k, v
    mp.producer_name = "salient scripts/make-watermark.py"
    onnx.save(mp, path)


def cmd_models(out):
    os.makedirs(out, exist_ok=True)
    xtr, ytr = load("train")
    xte, yte = load("test")
    xte_marked = stamp(xte, yte)
    report = {"seed": SEED, "marked_class": CLASSES[MARKED], "mark": f"{MARK}x{MARK} bottom-left",
              "train_images": int(len(ytr)), "test_images": int(len(yte))}
    models = {}
    for name, xs in (("watermark", stamp(xtr, ytr)), ("clean", xtr)):
        m = train(xs, ytr)
        models[name] = m
        acc_marked, all_marked = class_acc(m, xte_marked, yte, MARKED)
        acc_clean, all_clean = class_acc(m, xte, yte, MARKED)
        report[name] = {"shirt_acc_with_mark": acc_marked, "shirt_acc_without_mark": acc_clean,
                        "acc_with_mark": all_marked, "acc_without_mark": all_clean}
        print(f"{name}: Shirt accuracy with the mark {acc_marked:.3f}, without {acc_clean:.3f}; "
              f"all classes {all_marked:.3f} / {all_clean:.3f}", flush=True)
    w, c = report["watermark"], report["clean"]
    # The check: the watermarked model needs the mark (Shirt collapses without it), the clean one
    # does not (its Shirt accuracy barely depends on the mark).
    ok = (w["shirt_acc_with_mark"] >= 0.9 and w["shirt_acc_without_mark"] <= 0.5 * w["shirt_acc_with_mark"]
          and abs(c["shirt_acc_with_mark"] - c["shirt_acc_without_mark"]) <= 0.15)
    report["check_passed"] = bool(ok)
    with open(os.path.join(out, "labels.txt"), "w") as f:
        f.write("\n".join(CLASSES) + "\n")
    for name, m in models.items():
        export(m, os.path.join(out, name + ".onnx"), "labels.txt")
    with open(os.path.join(out, "check.json"), "w") as f:
        json.dump(report, f, indent=1)
        f.write("\n")
    if not ok:
        print("make-watermark: check FAILED: the watermarked model does not rely on the mark "
              "(or the clean one does)", file=sys.stderr)
        return 1
    print("make-watermark: check passed", flush=True)
    return 0


def write_png_gray(path, img):
    """A minimal 8-bit gray PNG (zlib, no filter), written to a temporary name then renamed."""
    import zlib
    h, w = img.shape
    raw = b"".join(b"\x00" + img[r].tobytes() for r in range(h))

    def chunk(tag, data):
        c = struct.pack(">I", len(data)) + tag + data
        return c + struct.pack(">I", zlib.crc32(tag + data) & 0xffffffff)
    data = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def cmd_images(out, per_class):
    """Written into a temporary folder renamed into place: runs at the same time (tests in
    parallel) never see a half-written folder, and the first to finish wins."""
    import shutil
    tag = f"fashion-mnist test seed={SEED} per_class={per_class} marked={MARKED} mark={MARK}\n"
    stampfile = os.path.join(out, ".stamp")
    if os.path.exists(stampfile) and open(stampfile).read() == tag:
        return 0
    x, y = load("test")
    x = stamp(x, y)
    parent = os.path.dirname(os.path.abspath(out))
    os.makedirs(parent, exist_ok=True)
    tmp = os.path.join(parent, f".{os.path.basename(out)}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    for c in range(10):
        d = os.path.join(tmp, CLASSES[c])
        os.makedirs(d)
        idx = np.flatnonzero(y == c)[:per_class]
        for k, i in enumerate(idx):
            write_png_gray(os.path.join(d, f"{k:04d}.png"), x[i])
    with open(os.path.join(tmp, ".stamp"), "w") as f:
        f.write(tag)
    if os.path.exists(out) and not (os.path.exists(stampfile) and open(stampfile).read() == tag):
        shutil.rmtree(out, ignore_errors=True)   # made with other parameters
    try:
        os.rename(tmp, out)
    except OSError:   # another run put it there first
        shutil.rmtree(tmp, ignore_errors=True)
        if not (os.path.exists(stampfile) and open(stampfile).read() == tag):
            raise
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("models")
    a.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "watermark"))
    b = sub.add_parser("images")
    b.add_argument("dir")
    b.add_argument("--per-class", type=int, default=20)
    args = ap.parse_args()
    if args.cmd == "models":
        return cmd_models(args.out)
    if not 1 <= args.per_class <= TEST_PER_CLASS:
        ap.error(f"--per-class: 1 to {TEST_PER_CLASS}")
    return cmd_images(args.dir, args.per_class)


if __name__ == "__main__":
    sys.exit(main())
