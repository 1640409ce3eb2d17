#!/usr/bin/env python3
"""Write tests/fixtures/effnet_lite0_ig_captum.txt: Captum's Integrated Gradients completeness gaps
on EfficientNet-Lite0 for the sample photos, the independent reference for salient's IG on a real
model (tests/test_model.c, ig_completeness_on_sample_photos).

For each photo (samples-npy/<stem>.npy, see scripts/fetch-models) and its top-1 class t, Captum 0.8's
IntegratedGradients (zero baseline, method='gausslegendre', the default) runs on the model converted
to torch by onnx2torch, at 50 and 256 steps, and reports its convergence delta
sum(attr) - (f(x)[t] - f(0)[t]). One '#' header line, then one line per photo:

    <stem> <target> <f(x)-f(0)> <|delta| at 50 steps> <|delta| at 256 steps>     (%.6g)

Usage: scripts/refenv && .venv-ref/bin/python scripts/make-ig-reference.py     (about 3 minutes on 2 cores)
"""
import argparse, importlib.metadata, os, sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLES = ["chelsea", "coffee", "astronaut", "rocket", "dog", "eagle", "giraffe"]
STEPS = (50, 256)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "efficientnet_lite0.onnx"))
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "fixtures", "effnet_lite0_ig_captum.txt"))
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()

    import torch, onnx
    from onnx2torch import convert
    from captum.attr import IntegratedGradients
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    if not os.path.exists(a.model):
        sys.exit(f"make-ig-reference: {a.model} missing (run scripts/fetch-models)")
    model = convert(onnx.load(a.model)).eval()
    ig = IntegratedGradients(model)
    lines = []
    for stem in SAMPLES:
        path = os.path.join(ROOT, "samples-npy", stem + ".npy")
        if not os.path.exists(path):
            sys.exit(f"make-ig-reference: {path} missing (run scripts/fetch-models)")
        x = torch.from_numpy(np.load(path).astype(np.float32)).reshape(1, 3, 224, 224)
        with torch.no_grad():
            logits = model(x)
            t = int(logits.argmax())
            delta_f = float(logits[0, t] - model(torch.zeros_like(x))[0, t])
        gaps = []
        for n in STEPS:
            _, d = ig.attribute(x, target=t, n_steps=n, method="gausslegendre", internal_batch_size=32,
                                return_convergence_delta=True)
            gaps.append(abs(float(d)))
        line = f"{stem} {t} {delta_f:.6g} {gaps[0]:.6g} {gaps[1]:.6g}"
        print(line + f"   ({100 * gaps[0] / abs(delta_f):.2f}% / {100 * gaps[1] / abs(delta_f):.2f}%)", flush=True)
        lines.append(line)
    v = importlib.metadata.version
    header = (f"# made by scripts/make-ig-reference.py: captum {v('captum')} IntegratedGradients (zero baseline, "
              f"gausslegendre, internal_batch_size 32), torch {torch.__version__} CPU, onnx2torch {v('onnx2torch')}, "
              f"on models/efficientnet_lite0.onnx ({os.path.getsize(a.model)} bytes), inputs samples-npy/<stem>.npy, "
              f"target = top-1; line: <stem> <target> <f(x)-f(0)> <|convergence delta| at {STEPS[0]} steps> "
              f"<at {STEPS[1]} steps>\n")
    tmp = a.out + ".tmp"
    with open(tmp, "w") as f:
        f.write(header + "".join(l + "\n" for l in lines))
    os.replace(tmp, a.out)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
