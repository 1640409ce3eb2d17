#!/usr/bin/env python3
"""make-fuzz-seeds.py — seed corpora for the fuzz harnesses (tests/fuzz/), written to OUTDIR/<target>/:

  onnx   one small valid model per supported op (built with the onnx Python helper), each with a
         (N,3,8,8) float input, plus a tiny CNN using Conv, BatchNormalization, pooling and Gemm;
  image  the sample photos (samples/*.png, *.jpg) reduced to 32 px, and small PNG/JPEG/BMP/PGM/PPM
         files written here;
  npy    small .npy files (float32 and float64, versions 1.0 and 2.0, scalars, (C,H,W));
  cli    command lines (first byte: subcommand; arguments separated by NUL bytes).

Usage: scripts/make-fuzz-seeds.py OUTDIR   (run with .venv/bin/python: needs onnx, numpy, PIL or skimage)
"""
import io
import os
import struct
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def model(nodes, inits, out_shape, name, opset=13, in_shape=("N", 3, 8, 8)):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, list(in_shape))
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)
    g = helper.make_graph(nodes, name, [x], [y], initializer=inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return m.SerializeToString()


def init(name, arr):
    return numpy_helper.from_array(np.asarray(arr), name)


def onnx_seeds(out):
    rng = np.random.default_rng(0)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    N = helper.make_node
    seeds = {}
    ew = lambda op, **kw: ([N(op, ["x"], ["y"], **kw)], [], None)
    for op in ["Relu", "Sigmoid", "Tanh", "HardSwish", "Identity"]:
        seeds[op] = ew(op)
    seeds["LeakyRelu"] = ew("LeakyRelu", alpha=0.1)
    seeds["HardSigmoid"] = ew("HardSigmoid", alpha=0.2, beta=0.5)
    seeds["Softmax"] = ew("Softmax", axis=1)
    seeds["LRN"] = ew("LRN", size=3)
    seeds["Dropout"] = ew("Dropout")
    seeds["Clip"] = ([N("Clip", ["x", "lo", "hi"], ["y"])],
                     [init("lo", np.float32(0)), init("hi", np.float32(6))], None)
    for op in ["Add", "Sub", "Mul", "Div"]:
        seeds[op] = ([N(op, ["x", "c"], ["y"])], [init("c", np.full((1, 3, 1, 1), 2, np.float32))], None)
    seeds["Conv"] = ([N("Conv", ["x", "w", "b"], ["y"], pads=[1, 1, 1, 1], strides=[2, 2],
                        dilations=[1, 1], group=1, kernel_shape=[3, 3])],
                     [init("w", w), init("b", b)], None)
    seeds["ConvDepthwise"] = ([N("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1], group=3)],
                              [init("w", rng.standard_normal((3, 1, 3, 3)).astype(np.float32))], None)
    seeds["BatchNormalization"] = ([N("BatchNormalization", ["x", "s", "bb", "m", "v"], ["y"])],
                                   [init("s", np.ones(3, np.float32)), init("bb", np.zeros(3, np.float32)),
                                    init("m", np.zeros(3, np.float32)), init("v", np.ones(3, np.float32))], None)
    seeds["MaxPool"] = ew("MaxPool", kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    seeds["AveragePool"] = ew("AveragePool", kernel_shape=[2, 2], strides=[2, 2], count_include_pad=1)
    seeds["GlobalAveragePool"] = ew("GlobalAveragePool")
    seeds["ReduceMean"] = ew("ReduceMean", axes=[2, 3], keepdims=0)
    seeds["Flatten"] = ew("Flatten", axis=1)
    seeds["Reshape"] = ([N("Reshape", ["x", "s"], ["y"])], [init("s", np.array([0, -1], np.int64))], None)
    seeds["Transpose"] = ew("Transpose", perm=[0, 2, 3, 1])
    seeds["Squeeze"] = ([N("GlobalAveragePool", ["x"], ["p"]), N("Squeeze", ["p", "a"], ["y"])],
                        [init("a", np.array([2, 3], np.int64))], None)
    seeds["Unsqueeze"] = ([N("Unsqueeze", ["x", "a"], ["y"])], [init("a", np.array([1], np.int64))], None)
    seeds["Gemm"] = ([N("Flatten", ["x"], ["f"]), N("Gemm", ["f", "gw", "gb"], ["y"], transB=1, alpha=1.0)],
                     [init("gw", rng.standard_normal((5, 192)).astype(np.float32)),
                      init("gb", np.zeros(5, np.float32))], None)
    seeds["MatMul"] = ([N("Flatten", ["x"], ["f"]), N("MatMul", ["f", "mw"], ["y"])],
                       [init("mw", rng.standard_normal((192, 5)).astype(np.float32))], None)
    seeds["Concat"] = ([N("Concat", ["x", "x"], ["y"], axis=1)], [], None)
    seeds["Pad"] = ([N("Pad", ["x", "p"], ["y"], mode="constant")],
                    [init("p", np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64))], None)
    seeds["Shape"] = ([N("Shape", ["x"], ["s"]), N("Gather", ["s", "i"], ["n"], axis=0),
                       N("Unsqueeze", ["n", "z"], ["n1"]),
                       N("Concat", ["n1", "m1"], ["s2"], axis=0), N("Reshape", ["x", "s2"], ["y"])],
                      [init("i", np.array(0, np.int64)), init("z", np.array([0], np.int64)),
                       init("m1", np.array([-1], np.int64))], None)
    seeds["Slice"] = ([N("Slice", ["x", "st", "en", "ax"], ["y"])],
                      [init("st", np.array([1], np.int64)), init("en", np.array([7], np.int64)),
                       init("ax", np.array([2], np.int64))], None)
    seeds["Cast"] = ([N("Cast", ["x"], ["y"], to=TensorProto.FLOAT)], [], None)
    seeds["ConstantOfShape"] = ([N("Constant", [], ["s"], value=numpy_helper.from_array(np.array([1, 3, 1, 1], np.int64))),
                                 N("ConstantOfShape", ["s"], ["c"], value=numpy_helper.from_array(np.array([0.5], np.float32))),
                                 N("Add", ["x", "c"], ["y"])], [], None)
    seeds["tinycnn"] = ([N("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
                         N("BatchNormalization", ["c", "s", "bb", "m", "v"], ["bn"]),
                         N("Relu", ["bn"], ["r"]), N("MaxPool", ["r"], ["mp"], kernel_shape=[2, 2], strides=[2, 2]),
                         N("GlobalAveragePool", ["mp"], ["g"]), N("Flatten", ["g"], ["f"]),
                         N("Gemm", ["f", "gw", "gb"], ["y"], transB=1)],
                        [init("w", w), init("b", b), init("s", np.ones(4, np.float32)),
                         init("bb", np.zeros(4, np.float32)), init("m", np.zeros(4, np.float32)),
                         init("v", np.ones(4, np.float32)),
                         init("gw", rng.standard_normal((10, 4)).astype(np.float32)),
                         init("gb", np.zeros(10, np.float32))], None)
    for name, (nodes, inits, _) in seeds.items():
        write(os.path.join(out, "onnx", name + ".onnx"), model(nodes, inits, None, name))
    # a fixed-size input and an explicit float_data initializer (not raw_data)
    t = helper.make_tensor("c", TensorProto.FLOAT, [1, 3, 1, 1], [1.0, 2.0, 3.0])
    write(os.path.join(out, "onnx", "fixed_float_data.onnx"),
          model([N("Mul", ["x", "c"], ["y"])], [t], None, "fixed", in_shape=(1, 3, 8, 8)))


def image_seeds(out):
    from PIL import Image
    d = os.path.join(out, "image")
    samples = os.path.join(ROOT, "samples")
    for f in sorted(os.listdir(samples)):
        if f.endswith((".png", ".jpg")):
            im = Image.open(os.path.join(samples, f)).convert("RGB")
            im.thumbnail((32, 32))
            b = io.BytesIO()
            im.save(b, "PNG" if f.endswith(".png") else "JPEG", quality=80)
            write(os.path.join(d, f), b.getvalue())
    rng = np.random.default_rng(1)
    rgb = Image.fromarray(rng.integers(0, 256, (7, 9, 3), dtype=np.uint8))
    for mode, fmt, ext in [("RGB", "BMP", "bmp"), ("L", "PPM", "pgm"), ("RGB", "PPM", "ppm"),
                           ("L", "PNG", "png"), ("LA", "PNG", "la.png"), ("RGBA", "PNG", "rgba.png"),
                           ("P", "PNG", "pal.png"), ("L", "JPEG", "gray.jpg")]:
        b = io.BytesIO()
        rgb.convert(mode).save(b, fmt)
        write(os.path.join(d, "small." + ext), b.getvalue())
    write(os.path.join(d, "ascii.pgm"), b"P2\n3 2\n255\n0 128 255\n10 20 30\n")
    write(os.path.join(d, "ascii.ppm"), b"P3\n1 1\n15\n1 2 3\n")


def npy_seeds(out):
    d = os.path.join(out, "npy")
    os.makedirs(d, exist_ok=True)
    rng = np.random.default_rng(2)
    np.save(os.path.join(d, "chw_f4.npy"), rng.standard_normal((3, 4, 5)).astype(np.float32))
    np.save(os.path.join(d, "chw_f8.npy"), rng.standard_normal((1, 2, 2)))
    np.save(os.path.join(d, "scalar.npy"), np.float32(1.5))
    np.save(os.path.join(d, "empty.npy"), np.zeros((0, 3), np.float32))
    b = io.BytesIO()
    np.lib.format.write_array(b, np.ones((2, 2), np.float32), version=(2, 0))
    write(os.path.join(d, "v2.npy"), b.getvalue())


def cli_seeds(out):
    d = os.path.join(out, "cli")
    lines = {
        "info": (0, ["model.onnx"]),
        "predict": (1, ["-m", "m.onnx", "--topk", "3", "--size", "224x224", "--mean", "0.5,0.5,0.5",
                        "--std", "0.2", "--crop", "0.875", "--batch", "4", "--json", "a.png"]),
        "explain": (2, ["-m", "m.onnx", "-M", "saliency,ig,gradcam", "--steps", "8", "--raw",
                        "--heatmap", "--device", "cpu", "--threads", "1", "--mem-limit", "512",
                        "-o", "out", "a.png", "b.npy"]),
        "bench": (3, ["-m", "m.onnx", "-M", "occlusion", "--images", "2"]),
        "help": (2, ["--help"]),
    }
    for name, (cmd, args) in lines.items():
        write(os.path.join(d, name), bytes([cmd]) + b"\0".join(a.encode() for a in args))


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = sys.argv[1]
    onnx_seeds(out)
    image_seeds(out)
    npy_seeds(out)
    cli_seeds(out)


if __name__ == "__main__":
    main()
