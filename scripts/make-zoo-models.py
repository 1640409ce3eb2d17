#!/usr/bin/env python3
"""make-zoo-models.py — write tests/fixtures/zoo/: small vision transformers and ConvNeXts exported
to ONNX by torch's own exporter, with reference logits (onnxruntime) and input gradients (torch
autograd) for tests/test_zoo.c.

    scripts/refenv && .venv-ref/bin/python scripts/make-zoo-models.py

Models (torchvision 0.14's own classes, narrow and shallow, 32x32 inputs, 10 classes, every
parameter re-drawn from a seeded normal so no branch is a zero- or 1e-6-initialized no-op):

    vit_op13.onnx, vit_op17.onnx            VisionTransformer: patch 8, 2 layers, 2 heads, width 32,
                                            MLP 64 (class token, Erf-GELU, LayerNorm: decomposed
                                            into ReduceMean/Sub/Pow/Sqrt/Div at opset 13, the
                                            LayerNormalization op at 17)
    convnext_op13.onnx, convnext_op17.onnx  ConvNeXt: stages of widths 16 and 32, one block each
                                            (depthwise 7x7, LayerNorm over channels by permutes,
                                            GELU, layer scale)
    swin_op13.onnx, swin_op17.onnx          SwinTransformer: patch 4, width 16, depths 2,2, heads
                                            2,2, window 4 (shifted windows: the attention mask and
                                            relative position index computed by Range, Mod,
                                            ScatterND, Equal, Not, Where... on constants; torch's
                                            roll as Slice+Concat; a Dropout of ratio 0 in training
                                            mode, as torchvision 0.14 writes it)
    shufflenet_op13.onnx                    ShuffleNetV2, stages of 2 blocks, widths 16/32/64
                                            (chunk() as Slice on activations, channel shuffle by
                                            Reshape/Transpose; BatchNorm with seeded statistics)

Every model has a dynamic batch dimension (the exporter then computes the class token's expand
from the input's shape: Shape, Gather, Concat, Equal, Where, Expand on shapes).

Files: input.npy (2,3,32,32) float32; <model>.logits.npy (2,10) float32 from onnxruntime (the .venv
environment, run as a subprocess: .venv-ref has torch but not onnxruntime); <model>.grad.npy
(2,3,32,32) float32: torch autograd's gradient of each image's top-1 logit w.r.t. its input, in
float64 (the exported float32 weights, converted), so the reference is free of float32 rounding.
The script checks onnxruntime's logits against torch's (1e-4) before writing anything.

Deterministic: one thread, seeded generators; running it twice gives the same numbers.
"""
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torchvision.models.convnext import CNBlockConfig, ConvNeXt  # noqa: E402
from torchvision.models.shufflenetv2 import ShuffleNetV2  # noqa: E402
from torchvision.models.swin_transformer import SwinTransformer  # noqa: E402
from torchvision.models.vision_transformer import VisionTransformer  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "zoo")
ORT_PY = os.path.join(ROOT, ".venv", "bin", "python")
N_CLASSES = 10


def vit():
    return VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=32,
                             mlp_dim=64, num_classes=N_CLASSES)


def convnext():
    return ConvNeXt([CNBlockConfig(16, 32, 1), CNBlockConfig(32, None, 1)],
                    stochastic_depth_prob=0.0, num_classes=N_CLASSES)


def swin():
    return SwinTransformer(patch_size=[4, 4], embed_dim=16, depths=[2, 2], num_heads=[2, 2],
                           window_size=[4, 4], stochastic_depth_prob=0.0, num_classes=N_CLASSES)


def shufflenet():   # x0.5's structure (repeats 4, 8, 4 there), narrower: a 60 KB file
    return ShuffleNetV2([2, 2, 2], [8, 16, 32, 64, 128], num_classes=N_CLASSES)


def seeded(model, seed):
    """Every parameter from N(0, s^2) with s = 1/sqrt(fan-in) for matrices (scale parameters near
    1, shifts near 0), so activations stay O(1) through the blocks."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() >= 2:
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=g) / fan_in ** 0.5)
            elif name.endswith("weight") or "layer_scale" in name:
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.2 * torch.randn(p.shape, generator=g))
        for name, b in model.named_buffers():   # BatchNorm statistics
            if name.endswith("running_mean"):
                b.copy_(0.1 * torch.randn(b.shape, generator=g))
            elif name.endswith("running_var"):
                b.copy_(1.0 + 0.2 * torch.rand(b.shape, generator=g))
    return model.eval()


ORT_SCRIPT = """
import sys, numpy as np, onnxruntime as ort
so = ort.SessionOptions(); so.intra_op_num_threads = 1
s = ort.InferenceSession(sys.argv[1], so, providers=["CPUExecutionProvider"])
x = np.load(sys.argv[2])
np.save(sys.argv[3], s.run(None, {s.get_inputs()[0].name: x})[0].astype(np.float32))
"""


def ort_logits(path, x_path):
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "logits.npy")
        subprocess.run([ORT_PY, "-c", ORT_SCRIPT, path, x_path, out], check=True)
        return np.load(out)


def ops_of(path):
    import onnx
    m = onnx.load(path)
    return sorted({n.op_type for n in m.graph.node})


def main():
    torch.manual_seed(0)
    torch.set_num_threads(1)
    os.makedirs(OUT, exist_ok=True)
    x = torch.Generator().manual_seed(1)
    x = torch.randn((2, 3, 32, 32), generator=x)
    x_path = os.path.join(OUT, "input.npy")
    np.save(x_path, x.numpy().astype(np.float32))
    manifest = {"torch": torch.__version__, "models": {}}
    for name, make, seed, opsets in (("vit", vit, 11, (13, 17)), ("convnext", convnext, 12, (13, 17)),
                                     ("swin", swin, 13, (13, 17)), ("shufflenet", shufflenet, 14, (13,))):
        model = seeded(make(), seed)
        for opset in opsets:
            stem = f"{name}_op{opset}"
            path = os.path.join(OUT, stem + ".onnx")
            torch.onnx.export(model, x, path, opset_version=opset, input_names=["input"],
                              output_names=["logits"], do_constant_folding=True,
                              dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
            with torch.no_grad():
                ref = model(x).numpy()
            lo = ort_logits(path, x_path)
            err = float(np.abs(lo - ref).max() / max(1.0, np.abs(ref).max()))
            if err > 1e-4:
                sys.exit(f"{stem}: onnxruntime and torch logits differ by {err:.3g}")
            # the gradient of each image's top-1 logit, in float64
            m64 = make()
            m64.load_state_dict(model.state_dict())
            m64 = m64.double().eval()
            xd = x.double().clone().requires_grad_(True)
            logits = m64(xd)
            targets = logits.argmax(1)
            logits.gather(1, targets[:, None]).sum().backward()
            np.save(os.path.join(OUT, stem + ".logits.npy"), lo.astype(np.float32))
            np.save(os.path.join(OUT, stem + ".grad.npy"), xd.grad.numpy().astype(np.float32))
            manifest["models"][stem] = {
                "opset": opset, "ops": ops_of(path), "targets": targets.tolist(),
                "ort_vs_torch_logits": err,
                "logits": [[round(float(v), 5) for v in row] for row in lo],
            }
            print(f"{stem}: {len(manifest['models'][stem]['ops'])} op types, ort vs torch {err:.2g}")
    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
