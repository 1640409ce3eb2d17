#!/usr/bin/env python3
"""Write tests/fixtures/effnet_lite0_ref.txt: onnxruntime's logits for the sample photos.

For each sample photo (samples/, see scripts/fetch-models) the preprocessed tensor is
written to samples-npy/<stem>.npy by scripts/salient_prep.py (the single implementation of
the preprocessing), read back, and run through models/efficientnet_lite0.onnx with
onnxruntime (CPU, one thread). The fixture has one '#' header line, then one line per photo:

    <stem> <top1> <logit_0> ... <logit_999>        (floats as %.6g)

Usage: .venv/bin/python scripts/make-reference-logits.py [--npy-only] [--out FILE]
  --npy-only   only (re)write samples-npy/<stem>.npy
"""
import argparse
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
import salient_prep as prep  # noqa: E402

MODEL = os.path.join(ROOT, "models", "efficientnet_lite0.onnx")
FIXTURE = os.path.join(ROOT, "tests", "fixtures", "effnet_lite0_ref.txt")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--npy-only", action="store_true")
    ap.add_argument("--model", default=MODEL)
    ap.add_argument("--samples", default=prep.SAMPLES_DIR)
    ap.add_argument("--out", default=FIXTURE)
    args = ap.parse_args()

    try:
        npys = prep.write_npys(args.samples)
    except FileNotFoundError as e:
        sys.exit(f"make-reference-logits: {e}")
    if args.npy_only:
        return
    if not os.path.isfile(args.model):
        sys.exit(f"make-reference-logits: {args.model} missing (run scripts/fetch-models)")

    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(args.model, so, providers=["CPUExecutionProvider"])

    lines = []
    for stem, npy in npys:
        x = np.load(npy, allow_pickle=False)
        assert x.dtype == np.float32 and x.shape == (3, prep.CROP, prep.CROP), (npy, x.dtype, x.shape)
        logits = sess.run(["logits"], {"input": x[None]})[0][0]
        top1 = int(np.argmax(logits))
        lines.append(f"{stem} {top1} " + " ".join("%.6g" % v for v in logits))
        print(f"make-reference-logits: {stem:10s} top1 {top1}")

    mean = ",".join("%.9g" % m for m in prep.MEAN)
    std = ",".join("%.9g" % s for s in prep.STD)
    header = (f"# made by scripts/make-reference-logits.py with onnxruntime {ort.__version__} (CPU, 1 thread) "
              f"on models/efficientnet_lite0.onnx ({os.path.getsize(args.model)} bytes); "
              f"inputs = samples-npy/<stem>.npy from scripts/salient_prep.py: skimage.io.imread RGB uint8, "
              f"bilinear half-pixel no-antialias resize of shorter side to {prep.RESIZE_SHORTER} "
              f"(other = floor(other*{prep.RESIZE_SHORTER}/shorter+0.5)), centre crop {prep.CROP}x{prep.CROP} "
              f"(top=(H-{prep.CROP})//2, left=(W-{prep.CROP})//2), x/255, (x-mean)/std with "
              f"mean={mean} std={std} (=(pixel-127)/128), CHW float32; "
              f"line: <stem> <top1> <logit_0..999> (%.6g)")
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out + ".tmp", "w") as f:
        f.write(header + "\n")
        f.write("\n".join(lines) + "\n")
    os.replace(args.out + ".tmp", args.out)
    print(f"make-reference-logits: wrote {args.out} ({os.path.getsize(args.out)} bytes)")


if __name__ == "__main__":
    main()
