#!/usr/bin/env python3
"""Write a ResNet-50-shaped ONNX model with random weights (He-initialized, fixed seed): the
speed benchmarks' second model (scripts/gpu-check, salient bench). Same layer shapes as
torchvision's resnet50 (bottleneck blocks [3, 4, 6, 3], widths 64..2048, 1000 classes), with
BatchNorm already folded into the convolutions' bias. Its predictions mean nothing; its cost is
ResNet-50's: about 4.1 GFLOP multiply-adds per 224x224 image. numpy and onnx only.

Usage: python3 scripts/make-resnet50.py OUT.onnx [--seed 0]
"""
import argparse

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    rng = np.random.default_rng(a.seed)
    nodes, inits = [], []
    count = [0]

    def name(p):
        count[0] += 1
        return f"{p}{count[0]}"

    def conv(x, cin, cout, k, stride=1, relu=True):
        w, b, y = name("w"), name("b"), name("conv")
        std = np.sqrt(2.0 / (cin * k * k))
        inits.append(numpy_helper.from_array((rng.standard_normal((cout, cin, k, k)) * std).astype(np.float32), w))
        inits.append(numpy_helper.from_array((rng.standard_normal(cout) * 0.01).astype(np.float32), b))
        p = k // 2
        nodes.append(helper.make_node("Conv", [x, w, b], [y], name=y, kernel_shape=[k, k], strides=[stride, stride],
                                      pads=[p, p, p, p]))
        if not relu:
            return y
        r = name("relu")
        nodes.append(helper.make_node("Relu", [y], [r], name=r))
        return r

    x = conv("input", 3, 64, 7, 2)
    mp = name("maxpool")
    nodes.append(helper.make_node("MaxPool", [x], [mp], name=mp, kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]))
    x, cin = mp, 64
    for stage, (blocks, width) in enumerate(zip([3, 4, 6, 3], [64, 128, 256, 512])):
        for i in range(blocks):
            stride = 2 if i == 0 and stage > 0 else 1
            y = conv(x, cin, width, 1)
            y = conv(y, width, width, 3, stride)
            y = conv(y, width, width * 4, 1, relu=False)
            sc = conv(x, cin, width * 4, 1, stride, relu=False) if i == 0 else x
            s, r = name("add"), name("relu")
            nodes.append(helper.make_node("Add", [y, sc], [s], name=s))
            nodes.append(helper.make_node("Relu", [s], [r], name=r))
            x, cin = r, width * 4
    gp, fl = name("gap"), name("flatten")
    nodes.append(helper.make_node("GlobalAveragePool", [x], [gp], name=gp))
    nodes.append(helper.make_node("Flatten", [gp], [fl], name=fl, axis=1))
    w, b = "fc.weight", "fc.bias"
    inits.append(numpy_helper.from_array((rng.standard_normal((1000, 2048)) * np.sqrt(1.0 / 2048)).astype(np.float32), w))
    inits.append(numpy_helper.from_array(np.zeros(1000, np.float32), b))
    nodes.append(helper.make_node("Gemm", [fl, w, b], ["logits"], name="fc", transB=1))
    graph = helper.make_graph(nodes, "resnet50_random",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 224, 224])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 1000])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="salient make-resnet50.py")
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, a.out)
    print(f"wrote {a.out}: {sum(int(np.prod(t.dims)) for t in inits) / 1e6:.1f} M parameters, {len(nodes)} nodes")


if __name__ == "__main__":
    main()
