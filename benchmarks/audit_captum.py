#!/usr/bin/env python3
"""audit_captum.py — the plain Captum loop that `salient audit -M gradcam` is measured against
(benchmarks/audit-vs-explain): a torch DataLoader over an ImageFolder-style folder, the ONNX model
converted with onnx2torch, Captum's LayerGradCam on salient's default CAM layer, each map upsampled
to the input (bilinear, half-pixel centres: salient's rule), ReLU, and the same per-image numbers
salient records (probability, score, the region masses, concentration, entropy) written to a CSV,
one row per image. Run with .venv-ref/bin/python (Debian's CPU torch, captum 0.8, onnx2torch).

  audit_captum.py --model M.onnx --labels labels.txt --data DIR --out records.csv
                  [--layer 7/Relu] [--size 28] [--rgb] [--resize 256 --mean 0.498 --std 0.502]
                  [--batch 32] [--threads 2] [--workers 0]

Preprocessing as salient's for the watermark models by default (28x28 gray, x/255, shorter side to
--size then centre crop: the identity on their 28x28 images); for EfficientNet-Lite0: --rgb --size
224 --resize 256 --mean 0.498039 --std 0.501961 --layer head/relu6 (torchvision's antialiased
resize, not salient's: its numbers are close to salient's, not equal). Prints one JSON line: images, seconds, and
where the time went (decode: waiting on the DataLoader; compute: forward + LayerGradCam + upsample;
write: metrics and CSV).
"""
import argparse, csv, json, math, os, time

import numpy as np


def region_masks(h, w):
    """Boolean (h,w) masks of kernels/region_elem.h's regions, by pixel centre."""
    cy = np.arange(h, dtype=np.float32)[:, None] + 0.5
    cx = np.arange(w, dtype=np.float32)[None, :] + 0.5
    fh, fw = np.float32(h), np.float32(w)
    center = (np.abs(cy - 0.5 * fh) <= 0.25 * fh) & (np.abs(cx - 0.5 * fw) <= 0.25 * fw)
    border = (np.minimum(cy, fh - cy) < 0.10 * fh) | (np.minimum(cx, fw - cx) < 0.10 * fw)
    top, bottom = cy < 0.15 * fh, (fh - cy) < 0.15 * fh
    left, right = cx < 0.15 * fw, (fw - cx) < 0.15 * fw
    return {"center": center, "border": border, "tl": top & left, "tr": top & right, "bl": bottom & left,
            "br": bottom & right}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--labels", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--layer", default="7/Relu")
    ap.add_argument("--size", type=int, default=28)
    ap.add_argument("--rgb", action="store_true", help="3-channel input (default: 1-channel gray, as the watermark models)")
    ap.add_argument("--resize", type=int, default=0, help="shorter side before the centre crop (default: --size)")
    ap.add_argument("--mean", type=float, default=0.0)
    ap.add_argument("--std", type=float, default=1.0)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--workers", type=int, default=0)
    a = ap.parse_args()

    t_start = time.perf_counter()
    import torch, onnx, onnx2torch
    from captum.attr import LayerGradCam, LayerAttribution
    from PIL import Image
    from torchvision import transforms
    torch.set_num_threads(a.threads)
    model = onnx2torch.convert(onnx.load(a.model)).eval()
    layer = dict(model.named_modules())[a.layer]
    labels = [l.rstrip("\n") for l in open(a.labels)]
    by_name = {l.lower(): i for i, l in enumerate(labels)}

    files = sorted(os.path.relpath(os.path.join(r, f), a.data) for r, _, fs in os.walk(a.data) for f in fs
                   if f.lower().endswith((".png", ".jpg", ".jpeg", ".bmp")))
    tf = transforms.Compose([transforms.Grayscale(1) if not a.rgb else transforms.Lambda(lambda x: x.convert("RGB")),
                             transforms.Resize(a.resize or a.size), transforms.CenterCrop(a.size), transforms.ToTensor(),
                             transforms.Normalize([a.mean] * (3 if a.rgb else 1), [a.std] * (3 if a.rgb else 1))])

    class Folder(torch.utils.data.Dataset):
        def __len__(self):
            return len(files)

        def __getitem__(self, i):
            rel = files[i]
            cls = by_name.get(rel.split("/")[0].lower(), -1) if "/" in rel else -1
            with Image.open(os.path.join(a.data, rel)) as im:
                return tf(im), cls, i

    loader = torch.utils.data.DataLoader(Folder(), batch_size=a.batch, shuffle=False, num_workers=a.workers)
    gc = LayerGradCam(model, layer)
    masks = region_masks(a.size, a.size)
    k_top = math.ceil(0.05 * a.size * a.size)
    t_decode = t_compute = t_write = 0.0
    n = 0
    with open(a.out, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["file", "label", "predicted", "probability", "correct", "method", "target", "score", "mass_center",
                    "mass_border", "mass_tl", "mass_tr", "mass_bl", "mass_br", "concentration", "entropy", "seconds"])
        t0 = time.perf_counter()
        for x, cls, idx in loader:
            t1 = time.perf_counter()
            t_decode += t1 - t0
            with torch.no_grad():
                logits = model(x)
            pred = logits.argmax(1)
            attr = gc.attribute(x, target=pred, relu_attributions=True)           # (B,1,h,w), ReLU first as salient
            up = LayerAttribution.interpolate(attr, (a.size, a.size), "bilinear")  # (B,1,H,W)
            maps = torch.relu(up)[:, 0].detach().numpy().astype(np.float64)       # (B,H,W)
            prob = torch.softmax(logits, 1).gather(1, pred[:, None])[:, 0].numpy()
            score = logits.gather(1, pred[:, None])[:, 0].numpy()
            t2 = time.perf_counter()
            t_compute += t2 - t1
            secs = (t2 - t1) / len(x)
            for j in range(len(x)):
                m = maps[j]
                tot = m.sum()
                row = [files[int(idx[j])], int(cls[j]) if cls[j] >= 0 else "", int(pred[j]), "%.6g" % prob[j],
                       int(cls[j] == pred[j]) if cls[j] >= 0 else "", "gradcam", int(pred[j]), "%.7g" % score[j]]
                if tot > 0:
                    row += ["%.6g" % (m[masks[r]].sum() / tot) for r in ("center", "border", "tl", "tr", "bl", "br")]
                    p = m.ravel() / tot
                    row += ["%.6g" % (np.sort(m.ravel())[-k_top:].sum() / tot),
                            "%.6g" % float(-(p[p > 0] * np.log2(p[p > 0])).sum())]
                else:
                    row += [""] * 8
                row.append("%.4f" % secs)
                w.writerow(row)
            n += len(x)
            t0 = time.perf_counter()
            t_write += t0 - t2
    print(json.dumps({"images": n, "seconds": round(time.perf_counter() - t_start, 3), "decode_s": round(t_decode, 3),
                      "compute_s": round(t_compute, 3), "write_s": round(t_write, 3),
                      "torch": torch.__version__, "threads": a.threads, "workers": a.workers, "batch": a.batch}))


if __name__ == "__main__":
    main()
