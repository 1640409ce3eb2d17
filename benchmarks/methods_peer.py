#!/usr/bin/env python3
"""methods_peer.py — ms per image of each attribution method, salient (build/bench_methods --serve
protocol) against Captum 0.8 / pytorch-grad-cam 1.5.7 on CPU torch, on the same ONNX model (converted
to torch with onnx2torch), alternating the two in one run. Run with .venv-ref/bin/python (scripts/refenv,
which pins onnx2torch too). See benchmarks/README.md ("Attribution methods"); driven by
benchmarks/run-methods. Prints one JSON object per line.

  methods_peer.py --salient build/bench_methods [--model M] [--threads 2] [--images 3]
                  [--methods saliency,inputxgrad,ig,smoothgrad,guided,occlusion,gradcam,gradcam++,layercam]
                  [--ig-steps 50] [--nt-samples 16] [--occ-stride 8] [--batch 16]
                  [--torchvision resnet50 --state-dict M.pt] [--no-warmup occlusion,scorecam]
                  [--load-methods saliency,ig] [--image-counts occlusion=1,scorecam=1]

Methods also include forwardN (one forward pass of N images, e.g. forward1, forward32; no
gradients on either side). --torchvision NAME: the peer runs torchvision's own eager model with the
weights of --state-dict (scripts/make-torchvision-resnet50.py writes both the ONNX file and the
.pt), not an onnx2torch conversion; CAM layer: its layer4[-1] block (salient's default CAM layer
on that export is the same tensor, the block's last Relu). --load-methods: after the main pass,
those methods again while a CPU-bound process (one busy Python loop) runs beside both sides:
records "load": 1. --image-counts: fewer images for costly methods (ResNet-50's 2048-map
Score-CAM, occlusion at stride 8).

Per method: one warm-up call on each side (image 0, untimed), then for images 0..N-1 one timed call
of each side, the order reversed every other image, 0.25 s idle before each timed call. Target:
the top-1 logit (computed inside the timed call by both sides). Median over the images.
"""
import argparse, importlib.metadata, json, os, resource, statistics, subprocess, sys, time

import numpy as np

SAMPLES = ["chelsea", "coffee", "astronaut", "rocket", "dog", "eagle", "giraffe"]


def busy_jiffies():
    with open("/proc/stat") as f:
        v = f.readline().split()[1:]
    return sum(int(v[i]) for i in (0, 1, 2, 5, 6, 7))   # user nice system irq softirq steal


def proc_cpu(pid):   # user + system seconds of a process (all its threads)
    with open(f"/proc/{pid}/stat") as f:
        v = f.read().rsplit(")", 1)[1].split()
    return (int(v[11]) + int(v[12])) / os.sysconf("SC_CLK_TCK")


def cpu_now():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--salient", required=True)
    ap.add_argument("--model", default="models/efficientnet_lite0.onnx")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--images", type=int, default=3)
    ap.add_argument("--methods", default="saliency,inputxgrad,ig,smoothgrad,guided,occlusion,gradcam,gradcam++,layercam")
    ap.add_argument("--ig-steps", type=int, default=50)
    ap.add_argument("--nt-samples", type=int, default=16)
    ap.add_argument("--nt-sigma", type=float, default=0.15)
    ap.add_argument("--occ-window", type=int, default=15)
    ap.add_argument("--occ-stride", type=int, default=8)
    ap.add_argument("--shap-samples", type=int, default=50)
    ap.add_argument("--kshap-grid", type=int, default=8)
    ap.add_argument("--kshap-coalitions", type=int, default=1000)
    ap.add_argument("--rise-masks", type=int, default=4000)
    ap.add_argument("--batch", type=int, default=16, help="internal batch of both sides (Captum "
                    "internal_batch_size / perturbations_per_eval / nt_samples_batch_size; salient sal_explain_opts.batch)")
    ap.add_argument("--pause", type=float, default=0.25)
    ap.add_argument("--torchvision", default=None, help="peer: torchvision.models.NAME (eager) instead of onnx2torch")
    ap.add_argument("--state-dict", default=None, help="weights for --torchvision (a torch.save'd state dict)")
    ap.add_argument("--no-warmup", default="", help="methods without the untimed warm-up call (costly ones)")
    ap.add_argument("--load-methods", default="", help="methods timed again beside a CPU-bound process")
    ap.add_argument("--image-counts", default="", help="METHOD=N,...: fewer images for those methods")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"],
                    help="both sides: salient's session device and torch's (a GPU peer run: scripts/gpu-check)")
    a = ap.parse_args()

    import torch
    torch.set_num_threads(a.threads)
    torch.set_num_interop_threads(1)
    import cv2
    cv2.setNumThreads(a.threads)
    import onnx, onnx2torch, captum, pytorch_grad_cam
    from onnx2torch import convert
    from captum.attr import (Saliency, InputXGradient, IntegratedGradients, NoiseTunnel,
                             GuidedBackprop, Occlusion, GuidedGradCam, GradientShap, KernelShap)
    from pytorch_grad_cam import GradCAM, GradCAMPlusPlus, LayerCAM, HiResCAM, XGradCAM, ScoreCAM

    dev = torch.device(a.device)
    if a.device == "cuda":   # FP32 like salient: no TF32 tensor-core shortcuts on the peer either
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    if a.torchvision:
        import torchvision
        model = getattr(torchvision.models, a.torchvision)(weights=None)
        model.load_state_dict(torch.load(a.state_dict, map_location="cpu"))
        model = model.eval().to(dev)
        cam_layer_name = "layer4[-1]"   # the last bottleneck's output = salient's /layer4/layer4.2/relu_2/Relu
        cam_layer = model.layer4[-1]
    else:
        model = convert(onnx.load(a.model)).eval().to(dev)
        mods = dict(model.named_modules())
        cam_layer_name = "head/relu6"   # onnx2torch's name of the node 'head.relu6' (salient's default CAM layer)
        cam_layer = mods[cam_layer_name]
    n_relu = sum(isinstance(m, torch.nn.ReLU) for m in model.modules())
    n_relu6 = sum(isinstance(m, torch.nn.ReLU6) for m in model.modules())

    imgs = [torch.from_numpy(np.load(f"samples-npy/{s}.npy").astype(np.float32)).reshape(1, 3, 224, 224)
            for s in SAMPLES[:a.images]]
    imgs = [x.to(dev) for x in imgs]

    sal = subprocess.Popen([a.salient, "--model", a.model, "--threads", str(a.threads), "--batch", str(a.batch),
                            "--ig-steps", str(a.ig_steps), "--nt-samples", str(a.nt_samples),
                            "--nt-sigma", str(a.nt_sigma), "--occ-window", str(a.occ_window),
                            "--occ-stride", str(a.occ_stride), "--shap-samples", str(a.shap_samples),
                            "--kshap-grid", str(a.kshap_grid), "--kshap-coalitions", str(a.kshap_coalitions),
                            "--rise-masks", str(a.rise_masks), "--device", a.device,
                            "--inputs", ",".join(f"samples-npy/{s}.npy" for s in SAMPLES[:a.images])],
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)

    def ask(cmd):
        sal.stdin.write(cmd + "\n"); sal.stdin.flush()
        r = json.loads(sal.stdout.readline())
        if not r.get("ok", True):
            raise SystemExit(f"salient: {cmd}: {r['error']}")
        return r

    ready = json.loads(sal.stdout.readline())
    print(json.dumps({"meta": "salient", **ready}), flush=True)
    print(json.dumps({"meta": "peer", "torch": torch.__version__, "captum": captum.__version__,
                      "grad_cam": "1.5.7", "onnx2torch": importlib.metadata.version("onnx2torch"),
                      "peer_model": f"torchvision.models.{a.torchvision} (eager)" if a.torchvision else "onnx2torch",
                      "numpy": np.__version__, "torch_threads": torch.get_num_threads(),
                      "torch_interop_threads": torch.get_num_interop_threads(), "device": a.device,
                      "cuda_device": torch.cuda.get_device_name(0) if a.device == "cuda" else None,
                      "cudnn": torch.backends.cudnn.version() if a.device == "cuda" else None,
                      "allow_tf32": [torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32]
                      if a.device == "cuda" else None,
                      "torch_config_parallel": torch.__config__.parallel_info().splitlines()[:6],
                      "cam_layer": cam_layer_name, "nn_relu_modules": n_relu, "nn_relu6_modules": n_relu6}),
          flush=True)

    # logits check: onnx2torch model vs salient
    for i, x in enumerate(imgs):
        with torch.no_grad():
            lt = model(x)[0].cpu().numpy()
        ls = np.array(ask(f"logits {i}")["logits"], dtype=np.float32)
        print(json.dumps({"check": "logits", "img": i, "max_abs_diff": float(np.abs(lt - ls).max()),
                          "top1_torch": int(lt.argmax()), "top1_salient": int(ls.argmax())}), flush=True)

    def top1(x):
        with torch.no_grad():
            return int(model(x).argmax(1)[0])

    W, S = a.occ_window, a.occ_stride
    nonlocal_ix = [0]   # the image index time_peer was called with (forwardN batches start there)

    def peer(method, x):
        if "+" in method:   # several methods on one image: one after the other (each its own passes)
            for m in method.split("+"):
                r = peer(m, x)
            return r
        if method.startswith("forward"):
            n = int(method[7:])
            ix = nonlocal_ix[0]
            xb = torch.cat([imgs[(ix + k) % len(imgs)] for k in range(n)]) if n > 1 else x
            with torch.no_grad():
                return model(xb)
        if method in ("gradcam", "gradcam++", "layercam", "hirescam", "xgradcam", "scorecam"):
            cls = {"gradcam": GradCAM, "gradcam++": GradCAMPlusPlus, "layercam": LayerCAM, "hirescam": HiResCAM,
                   "xgradcam": XGradCAM, "scorecam": ScoreCAM}[method]
            with cls(model=model, target_layers=[cam_layer]) as cam:
                cam.batch_size = a.batch   # ScoreCAM's masked forward passes per batch
                m = cam(input_tensor=x, targets=None)   # targets=None: top-1 of the forward pass
            return m
        if method == "rise":
            return None   # neither Captum nor pytorch-grad-cam has RISE: salient is timed alone
        t = top1(x)
        xi = x.clone().requires_grad_(True)
        if method == "saliency":
            return Saliency(model).attribute(xi, target=t, abs=False)
        if method == "inputxgrad":
            return InputXGradient(model).attribute(xi, target=t)
        if method == "ig":
            return IntegratedGradients(model).attribute(xi, baselines=0.0, target=t, n_steps=a.ig_steps,
                                                        method="gausslegendre", internal_batch_size=a.batch)
        if method == "smoothgrad":
            sd = a.nt_sigma * float(x.max() - x.min())
            return NoiseTunnel(Saliency(model)).attribute(xi, nt_type="smoothgrad", nt_samples=a.nt_samples,
                                                          nt_samples_batch_size=a.batch, stdevs=sd, target=t,
                                                          abs=False)
        if method == "guided":
            return GuidedBackprop(model).attribute(xi, target=t)
        if method == "occlusion":
            with torch.no_grad():
                return Occlusion(model).attribute(x, sliding_window_shapes=(3, W, W), strides=(3, S, S),
                                                  baselines=0.0, target=t, perturbations_per_eval=a.batch)
        if method == "guided-gradcam":
            return GuidedGradCam(model, cam_layer).attribute(xi, target=t)
        if method == "gradshap":
            # salient's defaults: two baselines (zeros, a preprocessed black image), no noise
            black = torch.tensor(black_value, dtype=torch.float32, device=dev).reshape(1, 3, 1, 1).expand(1, 3, 224, 224)
            bases = torch.cat([torch.zeros(1, 3, 224, 224, device=dev), black])
            return GradientShap(model).attribute(xi, baselines=bases, n_samples=a.shap_samples, stdevs=0.0,
                                                 target=t)
        if method == "kernelshap":
            cell = 224 // a.kshap_grid   # features: a kshap_grid x kshap_grid grid of cells
            mask = (torch.arange(224, device=dev) // cell).clamp(max=a.kshap_grid - 1)
            fm = (mask.reshape(224, 1) * a.kshap_grid + mask.reshape(1, 224)).expand(1, 3, 224, 224)
            with torch.no_grad():
                return KernelShap(model).attribute(x, baselines=0.0, target=t, feature_mask=fm,
                                                   n_samples=a.kshap_coalitions, perturbations_per_eval=a.batch)
        raise SystemExit(f"unknown method {method}")

    black_value = [-0.485 / 0.229, -0.456 / 0.224, -0.406 / 0.225]   # sal_explain_opts_default's black

    def sync():
        if a.device == "cuda":
            torch.cuda.synchronize()

    def time_peer(method, x):
        nonlocal_ix[0] = next((k for k, y in enumerate(imgs) if y is x), 0)
        sync()
        c0, t0 = cpu_now(), time.perf_counter()
        peer(method, x)
        sync()
        t1, c1 = time.perf_counter(), cpu_now()
        return t1 - t0, c1 - c0

    no_warm = set(m for m in a.no_warmup.split(",") if m)
    counts = dict((kv.split("=")[0], int(kv.split("=")[1])) for kv in a.image_counts.split(",") if kv)
    runs = [(m, 0) for m in a.methods.split(",") if m] + [(m, 1) for m in a.load_methods.split(",") if m]
    hog = None
    for method, loaded in runs:
        if loaded and hog is None:   # one CPU-bound process beside both sides from here on
            hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
            time.sleep(1.0)
        hz = os.sysconf("SC_CLK_TCK")
        b0, o0, m0 = busy_jiffies(), proc_cpu(os.getpid()) + proc_cpu(sal.pid), time.perf_counter()
        # warm-up (untimed): plans salient's session, builds torch's caches
        ws = wp = None
        if method not in no_warm:
            w0 = time.perf_counter(); ask(f"time {method} 0"); ws = time.perf_counter() - w0
            w0 = time.perf_counter(); time_peer(method, imgs[0]); wp = time.perf_counter() - w0
        rec = {"method": method, "load": loaded, "salient_s": [], "peer_s": [], "salient_cpu_s": [], "peer_cpu_s": [],
               "warmup_s": [ws, wp], "targets_salient": [], "targets_peer": []}
        for i, x in enumerate(imgs[:counts.get(method, len(imgs))]):
            order = ("salient", "peer") if i % 2 == 0 else ("peer", "salient")
            for side in order:
                time.sleep(a.pause)
                if side == "salient":
                    r = ask(f"time {method} {i}")
                    rec["salient_s"].append(r["time_s"]); rec["salient_cpu_s"].append(r["cpu_s"])
                    rec["targets_salient"].append(r["target"]); rec["layer_salient"] = r["layer"]
                else:
                    if method == "rise":
                        continue
                    t, c = time_peer(method, x)
                    rec["peer_s"].append(t); rec["peer_cpu_s"].append(c)
                    if not method.startswith("forward"):
                        rec["targets_peer"].append(top1(x))
        b1, o1, m1 = busy_jiffies(), proc_cpu(os.getpid()) + proc_cpu(sal.pid), time.perf_counter()
        rec["block_wall_s"] = m1 - m0
        # CPUs used by other processes during the block (in load runs, the hog counts: about 1)
        rec["other_cpus"] = max(0.0, ((b1 - b0) / hz - (o1 - o0)) / (m1 - m0))
        rec["salient_median_s"] = statistics.median(rec["salient_s"])
        rec["peer_median_s"] = statistics.median(rec["peer_s"]) if rec["peer_s"] else None
        rec["ratio_peer_over_salient"] = (rec["peer_median_s"] / rec["salient_median_s"]
                                          if rec["peer_s"] else None)
        print(json.dumps(rec), flush=True)
    if hog is not None:
        hog.kill(); hog.wait()
    sal.stdin.write("quit\n"); sal.stdin.flush(); sal.wait(timeout=30)


if __name__ == "__main__":
    main()
