#!/usr/bin/env python3
"""Write torchvision's ResNet-50 with seeded random weights as a user would export it: the eager
model (torchvision.models.resnet50, weights=None, torch.manual_seed(SEED)), its BatchNorm
running statistics and affine parameters set to seeded non-trivial values (so the exported
BatchNormalization nodes are real, as in a trained model), exported to ONNX by torch's own
exporter (opset 13, batch dimension dynamic, eval mode). Also writes the state dict (.pt) so that
the peer benchmark (benchmarks/methods_peer.py --torchvision resnet50) runs the same weights in
eager PyTorch. No pretrained weights are downloaded (none can be, here).

Usage: .venv-ref/bin/python scripts/make-torchvision-resnet50.py OUT.onnx [--seed 0]
       (writes OUT.onnx and OUT.pt; prints the max |ONNX - eager| logit difference when
       onnxruntime is importable)
"""
import argparse
import os

import torch
import torchvision


def build(seed):
    torch.manual_seed(seed)
    model = torchvision.models.resnet50(weights=None)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                c = m.num_features
                m.running_mean.copy_(torch.randn(c, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(c, generator=g) * 0.5 + 0.75)
                m.weight.copy_(torch.rand(c, generator=g) * 0.5 + 0.75)
                m.bias.copy_(torch.randn(c, generator=g) * 0.1)
    return model.eval()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    model = build(a.seed)
    pt = os.path.splitext(a.out)[0] + ".pt"
    torch.save(model.state_dict(), pt)
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(a.seed + 2))
    torch.onnx.export(model, x, a.out, opset_version=13, input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}}, do_constant_folding=True,
                      training=torch.onnx.TrainingMode.EVAL)
    with torch.no_grad():
        ref = model(x)
    print(f"wrote {a.out} and {pt} (seed {a.seed}); eager logits std {ref.std().item():.3f}")
    try:
        import onnxruntime as ort
        sess = ort.InferenceSession(a.out, providers=["CPUExecutionProvider"])
        got = torch.from_numpy(sess.run(None, {"input": x.numpy()})[0])
        print(f"onnxruntime vs eager: max |diff| {(got - ref).abs().max().item():.2e}")
    except ImportError:
        pass


if __name__ == "__main__":
    main()
