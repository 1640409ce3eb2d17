#!/usr/bin/env python3
"""make-hostile-models.py — the hostile ONNX files of issue 10's findings, written into
tests/fuzz/regress/onnx/ as issue10-*.onnx. tests/test_fuzz_regress.c replays them (with every
other file of the regression corpus) and checks the status and message each one must give.

Each is a small valid model (x (N,3,8,8) -> op -> y) with one lie in it:
  conv-pads-int64max      Conv pads = INT64_MAX (signed overflow in the window arithmetic)
  conv-pads-huge          Conv pads = 2^31 (oh*ow wrapped past the 32-bit check; im2col overflow)
  pool-stride-huge        MaxPool strides = 2^40
  pad-int64max            Pad with a pad of INT64_MAX (signed overflow in the output size)
  init-declares-2p40      an initializer declaring 2^20 x 2^20 floats with 4 bytes present
  init-no-name            an initializer without a name (leaked its tensor)
  input-100000x100000     an input declared (1,3,100000,100000) (a 960 GB plan / malloc)
  dangling-input          a node reading a value nothing provides
  cycle                   two nodes feeding each other
  opset-99                an opset newer than any salient knows
  weights-nan             a Conv whose weights are NaN (carried through without UB)
  external-data           an initializer whose data lives in an external file ../../etc/passwd

Usage: .venv/bin/python scripts/make-hostile-models.py
"""
import os

import numpy as np
from onnx import TensorProto, helper, numpy_helper

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fuzz", "regress", "onnx")


def model(nodes, inits, in_shape=("N", 3, 8, 8), opset=13):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, list(in_shape))
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    g = helper.make_graph(nodes, "hostile", [x], [y], initializer=inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return m.SerializeToString()


def write(name, data):
    with open(os.path.join(OUT, "issue10-" + name + ".onnx"), "wb") as f:
        f.write(data)


def main():
    os.makedirs(OUT, exist_ok=True)
    N = helper.make_node
    w = numpy_helper.from_array(np.ones((4, 3, 3, 3), np.float32), "w")
    big = 2 ** 63 - 1
    write("conv-pads-int64max", model([N("Conv", ["x", "w"], ["y"], pads=[big, 0, big, 0])], [w]))
    write("conv-pads-huge", model([N("Conv", ["x", "w"], ["y"], pads=[2 ** 31] * 4)], [w]))
    write("pool-stride-huge", model([N("MaxPool", ["x"], ["y"], kernel_shape=[2, 2], strides=[2 ** 40, 1])], []))
    pads = numpy_helper.from_array(np.array([0, 0, big, 1, 0, 0, 1, 1], np.int64), "p")
    write("pad-int64max", model([N("Pad", ["x", "p"], ["y"], mode="constant")], [pads]))
    lie = TensorProto(name="c", data_type=TensorProto.FLOAT, dims=[2 ** 20, 2 ** 20], raw_data=b"\0\0\0\0")
    write("init-declares-2p40", model([N("Add", ["x", "c"], ["y"])], [lie]))
    noname = numpy_helper.from_array(np.ones((1, 3, 1, 1), np.float32))
    noname.name = ""
    write("init-no-name", model([N("Relu", ["x"], ["y"])], [noname]))
    write("input-100000x100000", model([N("Relu", ["x"], ["y"])], [], in_shape=(1, 3, 100000, 100000)))
    write("dangling-input", model([N("Add", ["x", "ghost"], ["y"])], []))
    write("cycle", model([N("Add", ["x", "b"], ["a"], name="first"), N("Relu", ["a"], ["b"], name="second"),
                          N("Identity", ["a"], ["y"])], []))
    write("opset-99", model([N("Relu", ["x"], ["y"])], [], opset=99))
    nan = numpy_helper.from_array(np.full((4, 3, 3, 3), np.nan, np.float32), "w")
    write("weights-nan", model([N("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]), N("Softmax", ["c"], ["y"], axis=1)],
                               [nan], in_shape=(1, 3, 8, 8)))
    ext = TensorProto(name="c", data_type=TensorProto.FLOAT, dims=[1, 3, 1, 1])
    ext.data_location = TensorProto.EXTERNAL
    ext.external_data.add(key="location", value="../../etc/passwd")
    write("external-data", model([N("Add", ["x", "c"], ["y"])], [ext]))


if __name__ == "__main__":
    main()
