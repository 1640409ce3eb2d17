#!/usr/bin/env python3
"""make-method-fixtures.py — regenerate tests/fixtures/methods/: a tiny CNN exported to ONNX, two
inputs, and reference attribution maps computed by Captum and pytorch-grad-cam on the same model.

    scripts/refenv && .venv-ref/bin/python scripts/make-method-fixtures.py

What it writes (all float32 .npy unless noted; see tests/fixtures/methods/README.md for the exact
semantics a C implementation must reproduce):

    tinycnn.onnx            the model (opset 13, dynamic batch, BatchNormalization kept)
    input.npy               (2,3,32,32) model-space inputs (already "preprocessed")
    targets.npy             (2,) int64 top-1 class per image
    saliency.npy ...        Captum maps, (2,3,32,32)
    gradcam.npy ...         pytorch-grad-cam final maps (2,32,32); *_layer.npy (2,16,16)
    manifest.json           versions, names, targets, logits, IG deltas, per-file parameters,
                            float32-vs-float64 discrepancies of every method

The script is deterministic (one thread, deterministic algorithms, seeded NumPy and torch RNGs):
running it twice gives byte-identical files. It also re-derives every library output with an
independent NumPy/torch formula and stops if one disagrees, so the README's semantics are checked
facts of the pinned library versions, not recollections.
"""
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import importlib.metadata as md  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import warnings  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import onnx  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import captum  # noqa: E402
from captum.attr import (  # noqa: E402
    GuidedBackprop,
    GuidedGradCam,
    InputXGradient,
    IntegratedGradients,
    Occlusion,
    Saliency,
)
from pytorch_grad_cam import (  # noqa: E402
    GradCAM,
    GradCAMPlusPlus,
    HiResCAM,
    LayerCAM,
    ScoreCAM,
    XGradCAM,
)
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget  # noqa: E402
import pytorch_grad_cam.score_cam  # noqa: E402

# ScoreCAM wraps its batches in tqdm progress bars; keep the output quiet.
pytorch_grad_cam.score_cam.tqdm = type("NoTqdm", (), {"tqdm": staticmethod(lambda it, **k: it)})

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
OUT = os.path.join(ROOT, "tests", "fixtures", "methods")

SEED = 20240611          # torch weights
INPUT_SEED = 8           # NumPy: images
BASELINE_SEED = 11       # NumPy: uniform IG baseline
CALIB_SEED = 3           # NumPy: calibration images that centre the classifier bias
FC_GAIN = 40.0           # classifier weight gain (spreads the logits)
N, C, H, W = 2, 3, 32, 32
NUM_CLASSES = 10
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IG_STEPS = 50
IG_RULES = ("gausslegendre", "riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid")
SCORECAM_BATCH = 8

torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)
cv2.setNumThreads(1)
warnings.filterwarnings("ignore", category=UserWarning)


def die(msg):
    sys.exit("make-method-fixtures: error: " + msg)


# ------------------------------------------------------------------------------------------------
# The model. Every op is its own module so the ONNX export scopes name each node by module path
# ("/cam/relu/Relu"), which we then shorten to "cam.relu". Every ReLU is an nn.ReLU (not F.relu)
# so Captum's guided backprop sees all of them.


class Add(nn.Module):
    def forward(self, a, b):
        return a + b


class Mul(nn.Module):
    def forward(self, a, b):
        return a * b


class ConvBNReLU(nn.Module):
    def __init__(self, cin, cout, groups=1):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, padding=1, groups=groups, bias=True)
        self.bn = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=False)

    def forward(self, x):
        return self.relu(self.bn(self.conv(x)))


class Block(nn.Module):
    """depthwise 3x3 + BN + ReLU, pointwise 1x1, residual add with the block input."""

    def __init__(self, c):
        super().__init__()
        self.dw = nn.Conv2d(c, c, 3, padding=1, groups=c, bias=False)
        self.bn = nn.BatchNorm2d(c)
        self.relu = nn.ReLU(inplace=False)
        self.pw = nn.Conv2d(c, c, 1, bias=True)
        self.add = Add()

    def forward(self, x):
        return self.add(self.pw(self.relu(self.bn(self.dw(x)))), x)


class SE(nn.Module):
    def __init__(self, c, r):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(c, r, 1)
        self.relu = nn.ReLU(inplace=False)
        self.fc2 = nn.Conv2d(r, c, 1)
        self.gate = nn.Sigmoid()
        self.mul = Mul()

    def forward(self, x):
        return self.mul(x, self.gate(self.fc2(self.relu(self.fc1(self.pool(x))))))


class CamConv(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, padding=1)
        self.relu = nn.ReLU(inplace=False)

    def forward(self, x):
        return self.relu(self.conv(x))


class Head(nn.Module):
    """1x1 conv + ReLU, global average pool, flatten, linear.

    The 1x1 conv is not decoration: with global average pooling straight after the CAM layer the
    gradient at that layer would be W_fc[target]/(h*w) at every pixel, which makes HiResCAM
    identical to Grad-CAM and GradCAM++/LayerCAM degenerate. The ReLU masks of this conv make
    the gradient at cam.relu vary over space.
    """

    def __init__(self, c, k):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 1)
        self.relu = nn.ReLU(inplace=False)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(c, k)

    def forward(self, x):
        return self.fc(self.flatten(self.pool(self.relu(self.conv(x)))))


class TinyCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = ConvBNReLU(3, 16)
        self.block = Block(16)
        self.pool = nn.MaxPool2d(2)
        self.se = SE(16, 4)
        self.cam = CamConv(16, 32)
        self.head = Head(32, NUM_CLASSES)

    def forward(self, x):
        return self.head(self.cam(self.se(self.pool(self.block(self.stem(x))))))


def build_model():
    torch.manual_seed(SEED)
    m = TinyCNN()
    with torch.no_grad():
        for bn in (m.stem.bn, m.block.bn):
            c = bn.num_features
            bn.weight.copy_(torch.empty(c).uniform_(0.6, 1.4))
            bn.bias.copy_(0.2 * torch.randn(c))
            bn.running_mean.copy_(0.3 * torch.randn(c))
            bn.running_var.copy_(torch.empty(c).uniform_(0.4, 1.6))
        m.cam.conv.bias.add_(0.05)          # keep most of the CAM layer alive
        # Centre the classifier on a seeded calibration set so that logits follow the image
        # content rather than the common mean feature, and spread them out.
        m.eval()
        feats = m.head.flatten(m.head.pool(m.head.relu(m.head.conv(m.cam(m.se(m.pool(m.block(m.stem(
            torch.from_numpy(make_inputs(CALIB_SEED, 16)))))))))))
        m.head.fc.weight.mul_(FC_GAIN)
        m.head.fc.bias.copy_(-m.head.fc.weight @ feats.mean(0))
    return m.eval()


# ------------------------------------------------------------------------------------------------
# Inputs: smooth random patterns in model-input space (roughly ImageNet-normalized range).


def upsample_bilinear_np(img, h, w):
    """align_corners=True bilinear upsampling of a 2-D array (only used to make smooth inputs)."""
    gh, gw = img.shape
    ys = np.linspace(0, gh - 1, h)
    xs = np.linspace(0, gw - 1, w)
    rows = np.stack([np.interp(xs, np.arange(gw), r) for r in img])           # (gh,w)
    return np.stack([np.interp(ys, np.arange(gh), rows[:, j]) for j in range(w)], axis=1)


def make_inputs(seed=None, n=N):
    rng = np.random.default_rng(INPUT_SEED if seed is None else seed)
    x = np.zeros((n, C, H, W), np.float64)
    yy, xx = np.meshgrid(np.arange(H) / H, np.arange(W) / W, indexing="ij")
    for i in range(n):
        for c in range(C):
            coarse = rng.normal(0.0, 1.0, (5, 5))
            fx, fy, ph = rng.uniform(0.5, 2.5), rng.uniform(0.5, 2.5), rng.uniform(0, 2 * np.pi)
            wave = np.sin(2 * np.pi * (fx * xx + fy * yy) + ph)
            x[i, c] = 0.9 * upsample_bilinear_np(coarse, H, W) + 0.5 * wave + rng.normal(0, 0.4)
    return x.astype(np.float32)


# ------------------------------------------------------------------------------------------------
# ONNX export with stable names.


def onnx_short_name(scoped):
    """'/cam/relu/Relu' -> 'cam.relu'."""
    parts = scoped.strip("/").split("/")
    if len(parts) < 2:
        die(f"unexpected unscoped ONNX node name {scoped!r}")
    return ".".join(parts[:-1])


def export_onnx(model, path):
    buf = io.BytesIO()
    # TrainingMode.PRESERVE with the model in eval mode exports inference BatchNormalization and
    # skips torch's eval peephole pass, which would otherwise fold BN into the preceding Conv.
    torch.onnx.export(
        model, torch.zeros(1, C, H, W), buf, opset_version=13,
        input_names=["input"], output_names=["logits"],
        dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}},
        do_constant_folding=False, training=torch.onnx.TrainingMode.PRESERVE,
    )
    m = onnx.load_from_string(buf.getvalue())
    g = m.graph
    graph_outputs = {o.name for o in g.output}
    rename = {}
    seen = set()
    for node in g.node:
        if node.op_type in ("Identity", "Constant"):
            die(f"unexpected {node.op_type} node {node.name} in the export")
        short = onnx_short_name(node.name)
        if short in seen:
            die(f"two ONNX nodes shorten to {short!r}")
        seen.add(short)
        node.name = short
        if len(node.output) != 1:
            die(f"node {short} has {len(node.output)} outputs")
        if node.output[0] not in graph_outputs:
            rename[node.output[0]] = short
            node.output[0] = short
    for node in g.node:
        for i, name in enumerate(node.input):
            node.input[i] = rename.get(name, name)
    m.producer_name = "salient scripts/make-method-fixtures.py"
    m.producer_version = ""
    m.doc_string = ""
    onnx.checker.check_model(m)
    data = m.SerializeToString()
    with open(path, "wb") as f:
        f.write(data)
    nodes = [{"name": n.name, "op": n.op_type, "inputs": list(n.input), "outputs": list(n.output)}
             for n in g.node]
    return nodes


def check_with_onnxruntime(onnx_path, x, logits):
    """Optional: compare with onnxruntime from the repo's .venv (scripts/pyenv), if present."""
    py = os.path.join(ROOT, ".venv", "bin", "python")
    if not os.path.exists(py):
        print("  onnxruntime check skipped (no .venv; run scripts/pyenv)")
        return
    code = (
        "import sys, numpy as np, onnxruntime as ort\n"
        "s = ort.InferenceSession(sys.argv[1], providers=['CPUExecutionProvider'])\n"
        "x = np.load(sys.argv[2])\n"
        "np.save(sys.argv[3], s.run(['logits'], {'input': x})[0])\n"
    )
    import tempfile
    with tempfile.TemporaryDirectory() as td:
        xi, lo = os.path.join(td, "x.npy"), os.path.join(td, "l.npy")
        np.save(xi, x)
        r = subprocess.run([py, "-c", code, onnx_path, xi, lo], capture_output=True, text=True)
        if r.returncode != 0:
            print("  onnxruntime check skipped:", r.stderr.strip().splitlines()[-1:])
            return
        ort_logits = np.load(lo)
    diff = float(np.abs(ort_logits - logits).max())
    print(f"  onnxruntime vs torch logits: max |diff| = {diff:.3g}")
    if diff > 1e-4:
        die(f"onnxruntime disagrees with torch on the exported model (max diff {diff})")


# ------------------------------------------------------------------------------------------------
# Reference implementations used only to check our reading of the libraries.


def cv2_linear_resize_ref(img, oh, ow):
    """Half-pixel-centre bilinear with edge clamping (= torch bilinear, align_corners=False)."""
    ih, iw = img.shape

    def axis(o, i):
        s = (np.arange(o) + 0.5) * (i / o) - 0.5
        s = np.maximum(s, 0.0)
        i0 = np.minimum(np.floor(s).astype(int), i - 1)
        i1 = np.minimum(i0 + 1, i - 1)
        return i0, i1, s - i0

    y0, y1, fy = axis(oh, ih)
    x0, x1, fx = axis(ow, iw)
    top = img[y0][:, x0] * (1 - fx) + img[y0][:, x1] * fx
    bot = img[y1][:, x0] * (1 - fx) + img[y1][:, x1] * fx
    return top * (1 - fy)[:, None] + bot * fy[:, None]


def minmax_gradcam_lib(m):
    m = m - m.min()
    return m / (1e-7 + m.max())


def expect_close(name, got, want, tol):
    got = np.asarray(got, np.float64)
    want = np.asarray(want, np.float64)
    scale = max(1e-12, float(np.abs(want).max()))
    err = float(np.abs(got - want).max()) / scale
    if not err <= tol:
        die(f"self-check {name}: max|diff|/max|ref| = {err:.3g} > {tol}")
    return err


# ------------------------------------------------------------------------------------------------
# Methods. Each takes (model, x, targets) in one dtype and returns a NumPy array.


def run_captum(model, x, targets, baselines):
    t = torch.tensor(targets)
    out, deltas = {}, {}
    out["saliency"] = Saliency(model).attribute(x, target=t, abs=False)
    out["inputxgrad"] = InputXGradient(model).attribute(x, target=t)
    ig = IntegratedGradients(model)
    runs = [(rule, "zero") for rule in IG_RULES] + [("gausslegendre", "black"),
                                                    ("gausslegendre", "uniform")]
    for rule, bname in runs:
        a, d = ig.attribute(x, baselines=baselines[bname], target=t, n_steps=IG_STEPS,
                            method=rule, return_convergence_delta=True)
        out[f"ig_{rule}_{bname}"] = a
        deltas[f"ig_{rule}_{bname}"] = d
    out["guided"] = GuidedBackprop(model).attribute(x, target=t)
    occ = Occlusion(model)
    out["occlusion_w15_s8"] = occ.attribute(x, sliding_window_shapes=(3, 15, 15),
                                            strides=(3, 8, 8), baselines=0, target=t)
    out["occlusion_w5_s3"] = occ.attribute(x, sliding_window_shapes=(3, 5, 5),
                                           strides=(3, 3, 3), baselines=0, target=t)
    out["guided_gradcam"] = GuidedGradCam(model, model.cam.relu).attribute(x, target=t)
    out = {k: v.detach().cpu().numpy() for k, v in out.items()}
    deltas = {k: v.detach().cpu().numpy() for k, v in deltas.items()}
    return out, deltas


CAM_CLASSES = {
    "gradcam": GradCAM,
    "gradcampp": GradCAMPlusPlus,
    "hirescam": HiResCAM,
    "xgradcam": XGradCAM,
    "layercam": LayerCAM,
    "scorecam": ScoreCAM,
}


def run_cams(model, x, targets):
    out = {}
    acts = grads = None
    for name, cls in CAM_CLASSES.items():
        cam = cls(model=model, target_layers=[model.cam.relu])
        if name == "scorecam":
            cam.batch_size = SCORECAM_BATCH
        rec = {}
        orig_image, orig_weights = cam.get_cam_image, cam.get_cam_weights

        def get_cam_image(*a, _o=orig_image, _r=rec, **k):
            r = _o(*a, **k)
            _r["image"] = np.array(r)
            return r

        def get_cam_weights(*a, _o=orig_weights, _r=rec, **k):
            r = _o(*a, **k)
            _r["weights"] = np.array(r)
            return r

        cam.get_cam_image = get_cam_image
        cam.get_cam_weights = get_cam_weights
        final = cam(input_tensor=x, targets=[ClassifierOutputTarget(int(c)) for c in targets])
        out[name] = np.asarray(final)
        out[name + "_layer"] = np.maximum(rec["image"], 0)       # what BaseCAM does next
        if "weights" in rec:
            out[name + "_weights"] = rec["weights"]
        if name == "gradcam":
            acts = cam.activations_and_grads.activations[0].numpy().copy()
            grads = cam.activations_and_grads.gradients[0].numpy().copy()
        cam.activations_and_grads.release()
        del cam
    out["cam_activation"] = acts
    out["cam_gradient"] = grads
    return out


# ------------------------------------------------------------------------------------------------
# Self-checks: our formulas against the library outputs of the float64 run, so that a mismatch
# means a wrong formula rather than float32 rounding (a few library steps cast to float32:
# Occlusion's final division, ScoreCAM's scores, pytorch-grad-cam's normalization and resize).
SELF_TOL = 1e-6


def self_checks(x_np, targets, baselines_np, maps, deltas):
    xs = torch.from_numpy(x_np.astype(np.float64))
    md64 = build_model().double()
    t = torch.tensor(targets)
    errs = {}

    def f(z):
        with torch.no_grad():
            return md64(z)[torch.arange(z.shape[0]), t].numpy()

    def grad_at(z):
        z = z.clone().requires_grad_(True)
        md64(z)[torch.arange(z.shape[0]), t].sum().backward()
        return z.grad.numpy()

    g = grad_at(xs)
    errs["saliency"] = expect_close("saliency", maps["saliency"], g, SELF_TOL)
    errs["inputxgrad"] = expect_close("inputxgrad", maps["inputxgrad"], x_np * g, SELF_TOL)

    # IG: alphas/weights as documented in the README.
    for rule in IG_RULES:
        for bname in ("zero", "black", "uniform"):
            key = f"ig_{rule}_{bname}"
            if key not in maps:
                continue
            n = IG_STEPS
            if rule == "gausslegendre":
                nodes, wts = np.polynomial.legendre.leggauss(n)
                alphas, steps = 0.5 * (nodes + 1), 0.5 * wts
            else:
                steps = np.full(n, 1.0 / n)
                if rule == "riemann_left":
                    alphas = np.arange(n) / n
                elif rule == "riemann_right":
                    alphas = np.arange(1, n + 1) / n
                elif rule == "riemann_middle":
                    alphas = (np.arange(n) + 0.5) / n
                else:
                    alphas = np.arange(n) / (n - 1)
                    steps[0] /= 2
                    steps[-1] /= 2
            b = torch.from_numpy(baselines_np[bname].astype(np.float64))
            total = np.zeros_like(x_np, np.float64)
            for a, s in zip(alphas, steps):
                total += s * grad_at(b + a * (xs - b))
            attr = total * (x_np - baselines_np[bname])
            errs[key] = expect_close(key, maps[key], attr, SELF_TOL)
            rise = f(xs) - f(b)
            gap = attr.reshape(N, -1).sum(1) - rise
            if np.abs(deltas[key] - gap).max() > SELF_TOL * np.abs(rise).max():
                die(f"self-check {key} delta: captum {deltas[key]} vs ours {gap}")

    # Guided backprop: every ReLU passes back relu(upstream grad) where its input was > 0.
    relus = [mod for mod in md64.modules() if isinstance(mod, nn.ReLU)]
    hooks = [r.register_full_backward_hook(lambda mod, gi, go: (F.relu(gi[0]),)) for r in relus]
    gb = grad_at(xs)
    for h in hooks:
        h.remove()
    errs["guided"] = expect_close("guided", maps["guided"], gb, SELF_TOL)

    # Occlusion: mean over covering windows of f(x) - f(x with window set to the baseline).
    for key, win, st in (("occlusion_w15_s8", 15, 8), ("occlusion_w5_s3", 5, 3)):
        tot = np.zeros_like(x_np, np.float64)
        cnt = np.zeros_like(x_np, np.float64)
        base = f(xs)
        npos = int(np.ceil((H - win) / st)) + 1
        for iy in range(npos):
            for ix in range(npos):
                y0, x0 = iy * st, ix * st
                z = xs.clone()
                z[:, :, y0:y0 + win, x0:x0 + win] = 0
                d = base - f(z)
                tot[:, :, y0:y0 + win, x0:x0 + win] += d[:, None, None, None]
                cnt[:, :, y0:y0 + win, x0:x0 + win] += 1
        errs[key] = expect_close(key, maps[key], tot / cnt, SELF_TOL)

    # CAM family from activations A (N,K,h,w) and gradients G at cam.relu.
    A = maps["cam_activation"].astype(np.float64)
    G = maps["cam_gradient"].astype(np.float64)
    sumA = A.sum(axis=(2, 3), keepdims=True)
    G2, G3 = G ** 2, G ** 3
    alpha = np.where(G != 0, G2 / (2 * G2 + sumA * G3 + 1e-6), 0)
    weights = {
        "gradcam": G.mean(axis=(2, 3)),
        "gradcampp": (np.maximum(G, 0) * alpha).sum(axis=(2, 3)),
        "xgradcam": (G * A / (sumA + 1e-7)).sum(axis=(2, 3)),
    }
    # ScoreCAM: channel masks upsampled with align_corners=True bilinear, min-max per channel,
    # multiplied into the input; weights = softmax over channels of the target logit.
    up = F.interpolate(torch.from_numpy(A), size=(H, W), mode="bilinear", align_corners=True)
    mn = up.amin(dim=(2, 3), keepdim=True)
    mx = up.amax(dim=(2, 3), keepdim=True)
    up = (up - mn) / (mx - mn + 1e-8)
    scores = np.stack([f_single(md64, xs[i] * up[i][:, None], int(targets[i])) for i in range(N)])
    weights["scorecam"] = np.exp(scores - scores.max(1, keepdims=True))
    weights["scorecam"] /= weights["scorecam"].sum(1, keepdims=True)
    layer = {k: np.maximum((w[:, :, None, None] * A).sum(1), 0) for k, w in weights.items()}
    layer["hirescam"] = np.maximum((G * A).sum(1), 0)
    layer["layercam"] = np.maximum((np.maximum(G, 0) * A).sum(1), 0)
    for k in CAM_CLASSES:
        if k + "_weights" in maps:
            errs[k + "_weights"] = expect_close(k + " weights", maps[k + "_weights"],
                                                weights[k], SELF_TOL)
        errs[k + "_layer"] = expect_close(k + " layer", maps[k + "_layer"], layer[k], SELF_TOL)
        # final = minmax(max(resize(minmax(layer)), 0)), resize = half-pixel bilinear
        fin = []
        for i in range(N):
            m1 = minmax_gradcam_lib(maps[k + "_layer"][i].astype(np.float32))
            r = np.maximum(cv2_linear_resize_ref(m1.astype(np.float64), H, W), 0)
            fin.append(minmax_gradcam_lib(r))
        errs[k] = expect_close(k + " final", maps[k], np.stack(fin), SELF_TOL)

    # Guided Grad-CAM: guided backprop times nearest-upsampled (x2) ReLU'd Grad-CAM layer map.
    ggc = maps["guided"] * np.repeat(np.repeat(maps["gradcam_layer"], 2, 1), 2, 2)[:, None]
    errs["guided_gradcam"] = expect_close("guided_gradcam", maps["guided_gradcam"], ggc, SELF_TOL)
    return errs


def f_single(model, batch, target):
    with torch.no_grad():
        return model(batch)[:, target].numpy()


# ------------------------------------------------------------------------------------------------


def describe_files():
    d = {}
    d["input.npy"] = {"method": "input", "shape": [N, C, H, W], "dtype": "float32",
                      "params": {"seed": INPUT_SEED, "space": "model input (already normalized)"}}
    d["targets.npy"] = {"method": "targets", "shape": [N], "dtype": "int64",
                        "params": {"rule": "argmax of logits (top-1), no softmax"}}
    d["saliency.npy"] = {"method": "captum.attr.Saliency", "params": {"abs": False}}
    d["inputxgrad.npy"] = {"method": "captum.attr.InputXGradient", "params": {}}
    for rule in IG_RULES:
        d[f"ig_{rule}_zero.npy"] = {"method": "captum.attr.IntegratedGradients",
                                    "params": {"n_steps": IG_STEPS, "method": rule,
                                               "baseline": "zero"}}
    d["ig_gausslegendre_black.npy"] = {
        "method": "captum.attr.IntegratedGradients",
        "params": {"n_steps": IG_STEPS, "method": "gausslegendre",
                   "baseline": "black: per channel (0-mean)/std with ImageNet mean/std",
                   "mean": IMAGENET_MEAN, "std": IMAGENET_STD}}
    d["ig_gausslegendre_uniform.npy"] = {
        "method": "captum.attr.IntegratedGradients",
        "params": {"n_steps": IG_STEPS, "method": "gausslegendre",
                   "baseline": "ig_baseline_uniform.npy"}}
    d["ig_baseline_uniform.npy"] = {"method": "baseline", "params": {
        "distribution": "uniform [-1,1)", "generator": "numpy.random.default_rng",
        "seed": BASELINE_SEED}}
    d["guided.npy"] = {"method": "captum.attr.GuidedBackprop", "params": {}}
    d["occlusion_w15_s8.npy"] = {"method": "captum.attr.Occlusion", "params": {
        "sliding_window_shapes": [3, 15, 15], "strides": [3, 8, 8], "baselines": 0,
        "window_origins_yx": [0, 8, 16, 24], "note": "last window clipped to the image"}}
    d["occlusion_w5_s3.npy"] = {"method": "captum.attr.Occlusion", "params": {
        "sliding_window_shapes": [3, 5, 5], "strides": [3, 3, 3], "baselines": 0,
        "window_origins_yx": list(range(0, 28, 3)), "note": "pixels covered 1..4 times"}}
    d["guided_gradcam.npy"] = {"method": "captum.attr.GuidedGradCam", "params": {
        "layer": "cam.relu", "interpolate_mode": "nearest", "attribute_to_layer_input": False}}
    for k, cls in CAM_CLASSES.items():
        p = {"target_layer": "cam.relu", "targets": "ClassifierOutputTarget(top-1)",
             "aug_smooth": False, "eigen_smooth": False}
        if k == "scorecam":
            p["batch_size"] = SCORECAM_BATCH
        d[f"{k}.npy"] = {"method": f"pytorch_grad_cam.{cls.__name__}", "shape": [N, H, W],
                         "params": dict(p, output="library output of cam(input, targets)")}
        d[f"{k}_layer.npy"] = {"method": f"pytorch_grad_cam.{cls.__name__}",
                               "shape": [N, 16, 16],
                               "params": dict(p, output="np.maximum(get_cam_image(...), 0): "
                                                        "layer resolution, after ReLU, before "
                                                        "normalization and resize")}
        if k in ("gradcam", "gradcampp", "xgradcam", "scorecam"):
            d[f"{k}_weights.npy"] = {"method": f"pytorch_grad_cam.{cls.__name__}",
                                     "shape": [N, 32],
                                     "params": dict(p, output="get_cam_weights(...): one "
                                                              "weight per channel")}
    d["cam_activation.npy"] = {"method": "activation of cam.relu", "shape": [N, 32, 16, 16],
                               "params": {}}
    d["cam_gradient.npy"] = {"method": "d logit[target] / d cam.relu", "shape": [N, 32, 16, 16],
                             "params": {}}
    return d


def main():
    os.makedirs(OUT, exist_ok=True)
    model = build_model()

    x_np = make_inputs()
    x = torch.from_numpy(x_np)
    with torch.no_grad():
        logits = model(x).numpy()
    targets = logits.argmax(1).astype(np.int64)

    # Sanity: distinct top-1 classes with a clear margin, no max-pool ties, live CAM layer.
    srt = np.sort(logits, 1)
    margin = srt[:, -1] - srt[:, -2]
    if len(set(targets.tolist())) != N or margin.min() < 0.05:
        die(f"degenerate targets {targets} (margins {margin})")
    with torch.no_grad():
        pre = model.block(model.stem(x))
        win = pre.unfold(2, 2, 2).unfold(3, 2, 2).reshape(N, 16, 16, 16, 4)
        s = win.sort(-1).values
        if (s[..., -1] - s[..., -2]).min() <= 1e-6:
            die("max-pool window with a tie (gradient routing would be ambiguous)")
        camact = model.cam(model.se(model.pool(pre)))
    live = float((camact > 0).float().mean())

    black = np.broadcast_to((-np.array(IMAGENET_MEAN) / np.array(IMAGENET_STD))
                            .astype(np.float32)[None, :, None, None], x_np.shape).copy()
    uniform = np.random.default_rng(BASELINE_SEED).uniform(-1, 1, x_np.shape).astype(np.float32)
    baselines_np = {"zero": np.zeros_like(x_np), "black": black, "uniform": uniform}

    print("exporting tinycnn.onnx")
    onnx_path = os.path.join(OUT, "tinycnn.onnx")
    nodes = export_onnx(model, onnx_path)
    check_with_onnxruntime(onnx_path, x_np, logits)

    def run_all(dtype):
        m = build_model().to(dtype)
        xx = torch.from_numpy(x_np).to(dtype)
        bl = {k: torch.from_numpy(v).to(dtype) for k, v in baselines_np.items()}
        maps, deltas = run_captum(m, xx, targets, bl)
        maps.update(run_cams(m, xx, targets))
        return maps, deltas

    print("float32 run")
    maps, deltas = run_all(torch.float32)
    print("float64 run (to measure float32 noise)")
    maps64, deltas64 = run_all(torch.float64)

    print("self-checks (float64 library outputs vs our formulas)")
    errs = self_checks(x_np, targets, baselines_np, maps64, deltas64)

    noise = {}
    for k, v in maps.items():
        ref = np.asarray(maps64[k], np.float64)
        diff = np.abs(np.asarray(v, np.float64) - ref)
        scale = max(float(np.abs(ref).max()), 1e-30)
        noise[k] = {"max_abs": float(f"{diff.max():.3g}"),
                    "max_abs_over_max_ref": float(f"{diff.max() / scale:.3g}"),
                    "count_over_1e-5_of_max_ref": int((diff > 1e-5 * scale).sum()),
                    "count_over_1e-6_of_max_ref": int((diff > 1e-6 * scale).sum())}

    # Write fixtures.
    def save(name, arr, dtype=np.float32):
        np.save(os.path.join(OUT, name), np.ascontiguousarray(np.asarray(arr, dtype)))

    save("input.npy", x_np)
    save("targets.npy", targets, np.int64)
    save("ig_baseline_uniform.npy", uniform)
    for k, v in maps.items():
        save(k + ".npy", v)

    files = describe_files()
    for fname, entry in files.items():
        arr = np.load(os.path.join(OUT, fname))
        entry["shape"] = list(arr.shape)
        entry["dtype"] = str(arr.dtype)
        key = fname[:-4]
        if key in noise:
            entry["f32_vs_f64"] = noise[key]
        if key in errs:
            entry["selfcheck_rel_err"] = float(f"{errs[key]:.3g}")
    missing = sorted(set(k + ".npy" for k in maps) - set(files))
    if missing:
        die(f"files without a manifest entry: {missing}")

    cam_nodes = {n["name"]: n for n in nodes if n["name"].startswith("cam.")}
    manifest = {
        "generator": "scripts/make-method-fixtures.py",
        "versions": {"torch": torch.__version__, "captum": captum.__version__,
                     "grad-cam": md.version("grad-cam"), "ttach": md.version("ttach"),
                     "numpy": np.__version__, "opencv": cv2.__version__,
                     "onnx": onnx.__version__},
        "seeds": {"torch_weights": SEED, "inputs": INPUT_SEED, "uniform_baseline": BASELINE_SEED},
        "model": {
            "file": "tinycnn.onnx", "opset": 13, "input": "input", "output": "logits",
            "input_shape": ["N", C, H, W], "output_shape": ["N", NUM_CLASSES],
            "cam_layer": {"node": "cam.relu", "output": cam_nodes["cam.relu"]["outputs"][0],
                          "conv_node": "cam.conv",
                          "conv_output": cam_nodes["cam.conv"]["outputs"][0],
                          "shape": [N, 32, 16, 16]},
            "nodes": nodes,
            "cam_layer_fraction_positive": float(f"{live:.4g}"),
        },
        "targets": targets.tolist(),
        "logits": [[float(v) for v in row] for row in logits],
        "top1_margin": [float(v) for v in margin],
        "ig_convergence_delta": {k: [float(v) for v in d] for k, d in deltas.items()},
        "files": files,
    }
    with open(os.path.join(OUT, "manifest.json"), "w") as fh:
        json.dump(manifest, fh, indent=1, sort_keys=False)
        fh.write("\n")

    # Remove .npy files an older version of this script may have left behind.
    written = set(files) | {"manifest.json", "tinycnn.onnx"}
    for fname in sorted(os.listdir(OUT)):
        if fname.endswith(".npy") and fname not in written:
            print(f"  removing stale {fname}")
            os.remove(os.path.join(OUT, fname))

    total = sum(os.path.getsize(os.path.join(OUT, f)) for f in written)
    print(f"targets {targets.tolist()}, margins {margin}, cam layer {live:.0%} positive")
    print(f"wrote {len(written)} files, {total / 1024:.0f} KiB, to {OUT}")


if __name__ == "__main__":
    main()
