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

The input side (small CNNs of our own, 3x32x32, 10 classes, seeded; input3.npy (3,3,32,32)):

    cnn_dyn.onnx        conv-relu-pool x2, x.view(x.size(0), -1), linear: a dynamic batch (the
                        twin the two below are compared with; its logits against onnxruntime's)
    cnn_view1.onnx      the same weights, but x.view(1, -1): the batch is dynamic in the input's
                        declaration and hard-coded to 1 by a Reshape (an older script's export)
    cnn_static1.onnx    the same weights, exported without dynamic axes: the input declares (1,3,32,32)
    nhwc.onnx           a Keras-style channels-last model: input (N,32,32,3) permuted to channels
                        first, conv-GELU-pool x2, linear (smooth: no ReLU kinks), with
                        nhwc.logits.npy from onnxruntime on input3.npy transposed to (3,32,32,3)
                        and nhwc.grad.npy: torch autograd's gradient of each image's top-1 logit in
                        float64, transposed back to (3,3,32,32) (channels first, as salient's maps)
    bad_layout.onnx     input (N,8,8,5): neither layout has an image's channels
    runtime_mod.onnx    conv, then Mod (fmod=1) of its output: an op salient evaluates only on
                        constants, met on run-time data (`salient info` must say it cannot run)
    unknown_op.onnx     an op salient does not know (Det) after a conv (refused at load)

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


class SmallCNN(torch.nn.Module):
    """conv3x3(3->8)-act-maxpool, conv3x3(8->16)-act-maxpool, flatten, linear(1024->10)."""

    def __init__(self, view1=False, nhwc=False, act=torch.nn.ReLU):
        super().__init__()
        self.view1, self.nhwc = view1, nhwc
        self.c1 = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.c2 = torch.nn.Conv2d(8, 16, 3, padding=1)
        self.act = act()
        self.pool = torch.nn.MaxPool2d(2)
        self.fc = torch.nn.Linear(16 * 8 * 8, N_CLASSES)

    def forward(self, x):
        if self.nhwc:
            x = x.permute(0, 3, 1, 2)
        x = self.pool(self.act(self.c1(x)))
        x = self.pool(self.act(self.c2(x)))
        x = x.reshape(1, -1) if self.view1 else x.reshape(x.size(0), -1)   # torch's view, or reshape
        # where a channels-last input made the activations non-contiguous: the same ONNX Reshape
        return self.fc(x)


def onnx_helper_models():
    """The layout and unsupported-op fixtures, written with the onnx helper."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    g = np.random.default_rng(7)
    w = numpy_helper.from_array(g.standard_normal((4, 3, 3, 3)).astype(np.float32) / 5, "w")

    def save(name, nodes, inits, inp, out_shape):
        graph = helper.make_graph(nodes, name, [inp],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)], inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
        model.ir_version = 8
        onnx.save(model, os.path.join(OUT, name + ".onnx"))

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])
    conv = helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1])
    m = numpy_helper.from_array(np.array(0.5, np.float32), "m")
    save("runtime_mod", [conv, helper.make_node("Mod", ["c", "m"], ["r"], name="mod_on_activations", fmod=1),
                         helper.make_node("GlobalAveragePool", ["r"], ["p"], name="pool"),
                         helper.make_node("Flatten", ["p"], ["y"], name="flat")], [w, m], x, ["N", 4])
    save("unknown_op", [conv, helper.make_node("Reshape", ["c", "sh"], ["r"], name="square"),
                        helper.make_node("Det", ["r"], ["y"], name="det")],
         [w, numpy_helper.from_array(np.array([-1, 4, 64, 64][:2] + [8, 8], np.int64), "sh")], x, ["N", 4])
    bad = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 8, 8, 5])
    save("bad_layout", [helper.make_node("ReduceMean", ["x"], ["y"], name="mean", axes=[1, 2], keepdims=0)],
         [], bad, ["N", 5])


def input_side_models(manifest):
    g = torch.Generator().manual_seed(21)
    x3 = torch.randn((3, 3, 32, 32), generator=g)
    x3_path = os.path.join(OUT, "input3.npy")
    np.save(x3_path, x3.numpy().astype(np.float32))
    base = seeded(SmallCNN(), 22)
    for stem, model, dynamic in (("cnn_dyn", base, True), ("cnn_view1", SmallCNN(view1=True), True),
                                 ("cnn_static1", base, False)):
        if model is not base:
            model.load_state_dict(base.state_dict())
            model.eval()
        path = os.path.join(OUT, stem + ".onnx")
        torch.onnx.export(model, x3[:1], path, opset_version=13, input_names=["input"],
                          output_names=["logits"], do_constant_folding=True,
                          dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}} if dynamic else None)
        manifest["models"][stem] = {"opset": 13, "ops": ops_of(path)}
        print(f"{stem}: {manifest['models'][stem]['ops']}")
    with torch.no_grad():
        ref = base(x3).numpy()
    lo = ort_logits(os.path.join(OUT, "cnn_dyn.onnx"), x3_path)
    err = float(np.abs(lo - ref).max() / max(1.0, np.abs(ref).max()))
    if err > 1e-4:
        sys.exit(f"cnn_dyn: onnxruntime and torch logits differ by {err:.3g}")
    np.save(os.path.join(OUT, "cnn_dyn.logits.npy"), lo.astype(np.float32))
    manifest["models"]["cnn_dyn"]["ort_vs_torch_logits"] = err

    # channels last, smooth
    nhwc = seeded(SmallCNN(nhwc=True, act=torch.nn.GELU), 23)
    xl = x3.permute(0, 2, 3, 1).contiguous()
    xl_path = os.path.join(OUT, "input3_nhwc.npy")
    np.save(xl_path, xl.numpy().astype(np.float32))
    path = os.path.join(OUT, "nhwc.onnx")
    torch.onnx.export(nhwc, xl[:1], path, opset_version=13, input_names=["input_1"],
                      output_names=["logits"], do_constant_folding=True,
                      dynamic_axes={"input_1": {0: "batch"}, "logits": {0: "batch"}})
    with torch.no_grad():
        ref = nhwc(xl).numpy()
    lo = ort_logits(path, xl_path)
    err = float(np.abs(lo - ref).max() / max(1.0, np.abs(ref).max()))
    if err > 1e-4:
        sys.exit(f"nhwc: onnxruntime and torch logits differ by {err:.3g}")
    m64 = SmallCNN(nhwc=True, act=torch.nn.GELU)
    m64.load_state_dict(nhwc.state_dict())
    m64 = m64.double().eval()
    xd = xl.double().clone().requires_grad_(True)
    logits = m64(xd)
    targets = logits.argmax(1)
    logits.gather(1, targets[:, None]).sum().backward()
    np.save(os.path.join(OUT, "nhwc.logits.npy"), lo.astype(np.float32))
    np.save(os.path.join(OUT, "nhwc.grad.npy"), xd.grad.permute(0, 3, 1, 2).contiguous().numpy().astype(np.float32))
    manifest["models"]["nhwc"] = {"opset": 13, "ops": ops_of(path), "targets": targets.tolist(),
                                  "ort_vs_torch_logits": err}
    print(f"nhwc: {manifest['models']['nhwc']['ops']}, ort vs torch {err:.2g}")
    onnx_helper_models()


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
    input_side_models(manifest)
    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
