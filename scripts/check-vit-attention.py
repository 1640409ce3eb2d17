#!/usr/bin/env python3
"""check-vit-attention.py — by hand, not in CI: the transformer methods on a full-size ViT-B/16
(torchvision 0.14's vit_b_16 class at 224x224, seeded random weights: no pretrained weights are
downloaded), exported by Debian's python3-torch, against the same PyTorch references as
tests/test_attention.c uses on the small ViT (scripts/make-attention-fixtures.py): attention
rollout, Chefer's relevance and Grad-CAM on the default token layer (pytorch-grad-cam 1.5.7), and
the time salient takes per map.

    scripts/refenv && .venv-ref/bin/python scripts/check-vit-attention.py [BUILD_DIR] [OUT_DIR]

Writes OUT_DIR (default out/vit-b16/): the model, one random image as .npy, salient's maps, and
results.json; prints one line per method: the error relative to the map's largest value and the
seconds salient's explain reported per image.
"""
import os

os.environ.setdefault("OMP_NUM_THREADS", "2")

import importlib.util  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torchvision.models.vision_transformer import VisionTransformer  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build")
OUT = sys.argv[2] if len(sys.argv) > 2 else os.path.join(ROOT, "out", "vit-b16")

spec = importlib.util.spec_from_file_location("att", os.path.join(ROOT, "scripts", "make-attention-fixtures.py"))
att = importlib.util.module_from_spec(spec)
spec.loader.exec_module(att)


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(0)
    model = VisionTransformer(image_size=224, patch_size=16, num_layers=12, num_heads=12, hidden_dim=768,
                              mlp_dim=3072, num_classes=1000)
    model = att.zoo.seeded(model, 21)
    x = torch.randn((1, 3, 224, 224), generator=torch.Generator().manual_seed(5))
    onnx_path = os.path.join(OUT, "vit_b16.onnx")
    t0 = time.time()
    torch.onnx.export(model, x, onnx_path, opset_version=17, input_names=["input"], output_names=["logits"],
                      do_constant_folding=True, dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    export_s = time.time() - t0
    np.save(os.path.join(OUT, "image.npy"), x[0].numpy().astype(np.float32))
    # references, float64
    m64 = model.double().eval()
    xd = x.double()
    logits, attns = att.vit_forward_keep_attention(m64, xd)
    target = int(logits.argmax(1)[0])
    logits[0, target].backward()
    att.GRID = 14
    refs = {"rollout": att.rollout(attns, 0).detach().numpy(), "chefer": att.chefer(attns, 0).detach().numpy()}
    layer_map, _ = att.grad_cam(m64, m64.encoder.layers[-1].ln_1, xd, [target],
                                lambda t: att.vit_tokens_to_grid(t, 14, 14))
    refs["gradcam"] = layer_map[0]
    # salient
    cmd = [os.path.join(BUILD, "salient"), "explain", "-m", onnx_path, "-M", "rollout,chefer,gradcam",
           "--raw", "--image-batch", "1", "--json", os.path.join(OUT, "image.npy"), "-o", os.path.join(OUT, "maps")]
    t0 = time.time()
    p = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.time() - t0
    if p.returncode:
        sys.exit(f"salient failed ({p.returncode}): {p.stderr}")
    rows = [json.loads(line) for line in p.stdout.splitlines() if line.startswith("{")]
    res = {"torch": torch.__version__, "export_s": round(export_s, 1), "salient_wall_s": round(wall, 2),
           "target": target, "notes": p.stderr.strip().splitlines(), "load": os.getloadavg(), "methods": {}}
    for r in rows:
        m = r["method"]
        got = np.load(os.path.join(OUT, "maps", f"image.{m}.npy"))
        ref = refs[m]
        err = float(np.abs(got - ref).max() / np.abs(ref).max())
        res["methods"][m] = {"rel_err": err, "seconds": r["seconds"], "target": r["target"], "layer": r["layer"]}
        print(f"{m}: error {err:.3g} of the map's max, {r['seconds']:.3f} s/image, layer {r['layer']}")
    with open(os.path.join(OUT, "results.json"), "w") as f:
        json.dump(res, f, indent=1)
        f.write("\n")
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
