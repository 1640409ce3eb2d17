#!/usr/bin/env python3
"""make-attention-fixtures.py — reference maps on the model zoo's small ViT and Swin
(tests/fixtures/zoo/, made by scripts/make-zoo-models.py) for tests/test_attention.c:

    scripts/refenv && .venv-ref/bin/python scripts/make-attention-fixtures.py

Written to tests/fixtures/zoo/ (float32 .npy, two images: input.npy, each explained for its top-1
class as the zoo's manifest lists it):

    vit_gradcam_layer.npy (2,4,4), vit_gradcam.npy (2,32,32)
        pytorch-grad-cam 1.5.7's GradCAM on torchvision's ViT at encoder.layers[-1].ln_1 (the
        last block's first LayerNorm: the layer pytorch-grad-cam's ViT tutorial takes, since after
        the last attention only the class token reaches the head) with the tutorial's
        reshape_transform (drop the class token, tokens to a 4x4 grid, channels first): the layer
        map after ReLU, and the library's final map (min-max, resized to 32x32, min-max).
    swin_gradcam_layer.npy (2,4,4), swin_gradcam.npy (2,32,32)
        the same on the Swin's last block output features[3][1], (N,4,4,C) channels last, with the
        permute that pytorch-grad-cam's Swin tutorial uses.
    vit_rollout.npy (2,4,4), vit_rollout_max.npy, vit_rollout_min.npy, vit_rollout_max_discard09.npy,
    vit_chefer.npy (2,4,4)
        attention rollout (Abnar & Zuidema 2020: per layer the heads' mean attention A, then
        (A + I)/2 with rows renormalized, multiplied over the layers from the first; also with the
        heads' max and min instead of their mean, vit-explain's head fusions, and max with 90% of
        each layer's lowest attention discarded, vit-explain's defaults) and Chefer et
        al.'s relevance (Generic Attention-model Explainability, ICCV 2021, the rule their CVPR
        2021 paper's ViT code uses without LRP: R = I; per layer R += mean_heads((dy/dA * A)^+) R,
        y the target's logit), each the class token's row over the patch tokens. Computed by a
        small functional re-implementation of torchvision's ViT forward that keeps every
        attention's probabilities (checked against the module's logits first), in float64.
    attention.json: the layer names in the ONNX files, the targets, the checks' numbers.

Everything runs in float64 (the exported float32 weights, converted), so the references are free
of float32 rounding; pytorch-grad-cam's final maps pass through its float32 steps.
"""
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import importlib.util  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from pytorch_grad_cam import GradCAM  # noqa: E402
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ZOO = os.path.join(ROOT, "tests", "fixtures", "zoo")
GRID = 4   # 32x32 inputs, patch 8 (ViT); the Swin's last stage is 4x4 too

spec = importlib.util.spec_from_file_location("zoo", os.path.join(ROOT, "scripts", "make-zoo-models.py"))
zoo = importlib.util.module_from_spec(spec)
spec.loader.exec_module(zoo)


def die(msg):
    sys.exit("make-attention-fixtures: " + msg)


def load_model(make, seed, stem):
    """The zoo's model (same class, same seeded weights), checked against the zoo's logits."""
    model = zoo.seeded(make(), seed).double().eval()
    x = torch.from_numpy(np.load(os.path.join(ZOO, "input.npy"))).double()
    with torch.no_grad():
        logits = model(x).numpy()
    ref = np.load(os.path.join(ZOO, stem + ".logits.npy"))
    err = float(np.abs(logits - ref).max() / max(1.0, np.abs(ref).max()))
    if err > 1e-4:
        die(f"{stem}: the rebuilt model's logits differ from the zoo's by {err:.3g}")
    return model, x, logits.argmax(1), err


def grad_cam(model, layer, x, targets, reshape):
    cam = GradCAM(model=model, target_layers=[layer], reshape_transform=reshape)
    rec = {}
    orig = cam.get_cam_image

    def get_cam_image(*a, **k):
        r = orig(*a, **k)
        rec["image"] = np.array(r)
        return r

    cam.get_cam_image = get_cam_image
    final = cam(input_tensor=x, targets=[ClassifierOutputTarget(int(t)) for t in targets])
    cam.activations_and_grads.release()
    return np.maximum(rec["image"], 0), np.asarray(final)


def vit_tokens_to_grid(t, h=GRID, w=GRID):   # pytorch-grad-cam's ViT tutorial
    r = t[:, 1:, :].reshape(t.size(0), h, w, t.size(2))
    return r.transpose(2, 3).transpose(1, 2)


def swin_to_nchw(t):   # pytorch-grad-cam's Swin tutorial, for torchvision's (N,H,W,C) stages
    return t.permute(0, 3, 1, 2)


def vit_forward_keep_attention(model, x):
    """torchvision 0.14's VisionTransformer.forward written out, returning the logits and every
    block's attention probabilities (N, heads, T, T) with their gradients retained."""
    n = x.shape[0]
    p = model.patch_size
    t = model.conv_proj(x).reshape(n, model.hidden_dim, -1).permute(0, 2, 1)
    t = torch.cat([model.class_token.expand(n, -1, -1), t], dim=1)
    t = t + model.encoder.pos_embedding
    attns = []
    for blk in model.encoder.layers:
        y = blk.ln_1(t)
        mha = blk.self_attention
        heads, d = mha.num_heads, model.hidden_dim
        hd = d // heads
        qkv = F.linear(y, mha.in_proj_weight, mha.in_proj_bias)
        q, k, v = qkv.split(d, dim=-1)
        q, k, v = (z.reshape(n, -1, heads, hd).transpose(1, 2) for z in (q, k, v))
        a = torch.softmax(q @ k.transpose(-2, -1) / hd ** 0.5, dim=-1)
        a.retain_grad()
        attns.append(a)
        o = (a @ v).transpose(1, 2).reshape(n, -1, d)
        o = F.linear(o, mha.out_proj.weight, mha.out_proj.bias)
        t = t + o
        t = t + blk.mlp(blk.ln_2(t))
    t = model.encoder.ln(t)
    del p
    return model.heads(t[:, 0]), attns


def rollout(attns, i, fusion="mean", discard=0.0):
    T = attns[0].shape[-1]
    eye = torch.eye(T, dtype=torch.float64)
    r = eye.clone()
    for a in attns:
        f = a[i].mean(0) if fusion == "mean" else a[i].max(0)[0] if fusion == "max" else a[i].min(0)[0]
        if discard:   # vit-explain's: the int(T*T*discard) smallest to 0, the [0,0] element kept
            f = f.detach().clone()
            flat = f.view(-1)
            _, idx = flat.topk(int(flat.numel() * discard), -1, False)
            flat[idx[idx != 0]] = 0
        f = (f + eye) / 2
        f = f / f.sum(-1, keepdim=True)
        r = f @ r
    return r[0, 1:].reshape(GRID, GRID)


def chefer(attns, i):
    T = attns[0].shape[-1]
    r = torch.eye(T, dtype=torch.float64)
    for a in attns:
        cam = (a.grad[i] * a[i]).clamp(min=0).mean(0)
        r = r + cam @ r
    return r[0, 1:].reshape(GRID, GRID)


def main():
    torch.set_num_threads(1)
    info = {"torch": torch.__version__}
    # --- ViT: Grad-CAM on tokens, rollout, Chefer
    vit, x, targets, err = load_model(zoo.vit, 11, "vit_op13")
    info["targets"] = targets.tolist()
    info["vit_rebuilt_vs_zoo_logits"] = err
    layer_map, final = grad_cam(vit, vit.encoder.layers[-1].ln_1, x, targets, vit_tokens_to_grid)
    np.save(os.path.join(ZOO, "vit_gradcam_layer.npy"), layer_map.astype(np.float32))
    np.save(os.path.join(ZOO, "vit_gradcam.npy"), final.astype(np.float32))
    info["vit_gradcam_layer"] = {"op13": "/encoder/layers/encoder_layer_1/ln_1/Add_1",
                                 "op17": "/encoder/layers/encoder_layer_1/ln_1/LayerNormalization"}
    logits, attns = vit_forward_keep_attention(vit, x)
    with torch.no_grad():
        ref = vit(x)
    ferr = float((logits - ref).abs().max())
    if ferr > 1e-10:
        die(f"the functional ViT forward differs from the module's by {ferr:.3g}")
    info["functional_vs_module_logits"] = ferr
    logits.gather(1, torch.from_numpy(targets)[:, None]).sum().backward()
    ro = np.stack([rollout(attns, i).detach().numpy() for i in range(x.shape[0])])
    ch = np.stack([chefer(attns, i).detach().numpy() for i in range(x.shape[0])])
    np.save(os.path.join(ZOO, "vit_rollout.npy"), ro.astype(np.float32))
    for fusion in ("max", "min"):
        rf = np.stack([rollout(attns, i, fusion).detach().numpy() for i in range(x.shape[0])])
        np.save(os.path.join(ZOO, f"vit_rollout_{fusion}.npy"), rf.astype(np.float32))
    rd = np.stack([rollout(attns, i, "max", 0.9).detach().numpy() for i in range(x.shape[0])])
    np.save(os.path.join(ZOO, "vit_rollout_max_discard09.npy"), rd.astype(np.float32))
    np.save(os.path.join(ZOO, "vit_chefer.npy"), ch.astype(np.float32))
    info["attention_layers"] = len(attns)
    info["heads"] = int(attns[0].shape[1])
    # --- Swin: Grad-CAM on a channels-last stage output
    swin, xs, st, err = load_model(zoo.swin, 13, "swin_op13")
    layer_map, final = grad_cam(swin, swin.features[3][1], xs, st, swin_to_nchw)
    np.save(os.path.join(ZOO, "swin_gradcam_layer.npy"), layer_map.astype(np.float32))
    np.save(os.path.join(ZOO, "swin_gradcam.npy"), final.astype(np.float32))
    info["swin_targets"] = st.tolist()
    info["swin_gradcam_layer"] = "/features/features.3/features.3.1/Add_1"
    with open(os.path.join(ZOO, "attention.json"), "w") as f:
        json.dump(info, f, indent=1)
        f.write("\n")
    print(json.dumps(info, indent=1))
    print("rollout", ro.round(4).tolist(), "\nchefer", ch.round(4).tolist())


if __name__ == "__main__":
    main()
