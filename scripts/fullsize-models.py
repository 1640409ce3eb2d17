#!/usr/bin/env python3
"""fullsize-models.py — run by hand (not in CI: minutes, and 400 MB of models): the full-size
transformer-era classifiers at 224x224 through salient, against onnxruntime and torch.

    scripts/build build && scripts/refenv && .venv-ref/bin/python scripts/fullsize-models.py [OUTDIR]

Models: torchvision 0.14's vit_b_16, swin_t and convnext_tiny classes (1000 classes), every parameter
re-drawn from a seeded normal (scripts/make-zoo-models.py's seeded(): pretrained weights cannot be
downloaded here, and torchvision's own init zeroes ViT's head, which would make every logit 0),
exported by Debian's python3-torch at opset 17 with a dynamic batch into OUTDIR (default
/tmp/salient-fullsize). One image (a seeded N(0,1) tensor, (3,224,224)) as a .npy input.

Per model: `salient info` (exit status: does it load and run?), `salient predict --json` logits
against onnxruntime's (relative: max |diff| / max(1, max |logit|)), `salient explain -M saliency
--raw` (the signed input gradient of the top-1 logit) against torch autograd's in float64 (max
|diff| / max |gradient|), and the seconds per saliency map: explain's own `seconds` field, and
the whole command's wall time (loading, planning, writing included). The results go to
benchmarks/results/fullsize-models.md with the machine's load (uptime) before each model.
"""
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")   # torch's side; salient uses its own threads

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torchvision  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SALIENT = os.path.join(ROOT, "build", "salient")
ORT_PY = os.path.join(ROOT, ".venv", "bin", "python")
RESULTS = os.path.join(ROOT, "benchmarks", "results", "fullsize-models.md")

spec = importlib.util.spec_from_file_location("zoo", os.path.join(ROOT, "scripts", "make-zoo-models.py"))
zoo = importlib.util.module_from_spec(spec)
spec.loader.exec_module(zoo)


def uptime():
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def run(cmd):
    t = time.monotonic()
    p = subprocess.run(cmd, capture_output=True, text=True)
    return p, time.monotonic() - t


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "/tmp/salient-fullsize"
    os.makedirs(out, exist_ok=True)
    torch.set_num_threads(2)
    x = torch.randn((1, 3, 224, 224), generator=torch.Generator().manual_seed(3))
    x_npy = os.path.join(out, "image.npy")
    np.save(x_npy, x[0].numpy().astype(np.float32))
    x_batch = os.path.join(out, "batch.npy")
    np.save(x_batch, x.numpy().astype(np.float32))
    rows = []
    for name, make, seed in (("vit_b_16", torchvision.models.vit_b_16, 31),
                             ("swin_t", torchvision.models.swin_t, 32),
                             ("convnext_tiny", torchvision.models.convnext_tiny, 33)):
        load = uptime()
        model = zoo.seeded(make(weights=None), seed)
        path = os.path.join(out, name + ".onnx")
        t0 = time.monotonic()
        torch.onnx.export(model, x, path, opset_version=17, input_names=["input"], output_names=["logits"],
                          do_constant_folding=True, dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
        t_export = time.monotonic() - t0
        ort = zoo.ort_logits(path, x_batch)[0]
        m64 = make(weights=None)
        m64.load_state_dict(model.state_dict())
        m64 = m64.double().eval()
        xd = x.double().clone().requires_grad_(True)
        z = m64(xd)
        target = int(z.argmax(1))
        z[0, target].backward()
        g_ref = xd.grad[0].numpy()
        row = {"model": name, "load": load, "export_s": t_export, "target_torch": target}
        info, t_info = run([SALIENT, "info", "--device", "cpu", path])
        row["info_exit"] = info.returncode
        row["info_runs"] = next((ln for ln in info.stdout.splitlines() if ln.startswith("runs:")), info.stderr.strip()[-300:])
        row["info_s"] = t_info
        pred, _ = run([SALIENT, "predict", "--device", "cpu", "--json", "-q", "-m", path, x_npy])
        if pred.returncode == 0:
            lg = np.array(json.loads(pred.stdout.splitlines()[0])["logits"], dtype=np.float64)
            row["logits_rel_err"] = float(np.abs(lg - ort).max() / max(1.0, np.abs(ort).max()))
            row["target_salient"] = int(lg.argmax())
        else:
            row["predict_error"] = pred.stderr.strip()[-300:]
        with tempfile.TemporaryDirectory() as od:
            ex, t_ex = run([SALIENT, "explain", "--device", "cpu", "-q", "-m", path, "-M", "saliency", "--raw",
                            "--target", str(target), x_npy, "-o", od])
            row["explain_wall_s"] = t_ex
            if ex.returncode == 0:
                g = np.load(os.path.join(od, "image.saliency.npy")).astype(np.float64)
                row["grad_rel_err"] = float(np.abs(g - g_ref).max() / np.abs(g_ref).max())
                with open(os.path.join(od, "summary.jsonl")) as f:
                    row["saliency_s"] = json.loads(f.readline())["seconds"]
            else:
                row["explain_error"] = ex.stderr.strip()[-300:]
        print(json.dumps(row), flush=True)
        rows.append(row)
    with open(RESULTS, "w") as f:
        f.write("# Full-size models through salient (scripts/fullsize-models.py, run by hand)\n\n")
        f.write(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, CPU backend, torch {torch.__version__}, "
                f"torchvision {torchvision.__version__}, opset 17, seeded random weights, one 224x224 "
                "image; `uptime` before each model (a shared 2-core machine: timings are noisy).\n\n")
        f.write("| model | info exit | logits vs onnxruntime | gradient vs torch (float64) | saliency s/map "
                "| explain wall s | load |\n|---|---|---|---|---|---|---|\n")
        for r in rows:
            le = f"{r['logits_rel_err']:.2g}" if "logits_rel_err" in r else "failed: " + r.get("predict_error", "")
            ge = f"{r['grad_rel_err']:.2g}" if "grad_rel_err" in r else "failed: " + r.get("explain_error", "")
            sal = f"{r['saliency_s']:.2f}" if "saliency_s" in r else "-"
            f.write(f"| {r['model']} | {r['info_exit']} ({r['info_runs']}) | {le} | {ge} | {sal} "
                    f"| {r['explain_wall_s']:.1f} | {r['load'].split('load average:')[-1].strip()} |\n")
        f.write("\nRaw rows:\n\n```\n" + "\n".join(json.dumps(r) for r in rows) + "\n```\n")
    print("wrote", RESULTS)


if __name__ == "__main__":
    main()
