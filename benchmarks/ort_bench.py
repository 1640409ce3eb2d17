#!/usr/bin/env python3
"""ort_bench.py — onnxruntime (CPU execution provider) throughput on an ONNX image classifier,
optionally interleaved with salient's bench_engine so that both engines are measured in the same
run under the same machine noise. See benchmarks/README.md.

  ort_bench.py [--model M.onnx] [--batch 1,8,32] [--reps 5] [--min-time 3] [--max-reps 50]
               [--warmup 2] [--threads 2] [--inter-threads 1] [--inputs a.npy,...] [--json]
               [--salient build/bench_engine [--salient-modes forward,gradient]
                [--salient-threads N] [--gap 0.25]]

ORT session: CPUExecutionProvider, intra_op_num_threads = --threads, inter_op_num_threads =
--inter-threads, sequential execution, graph optimizations left at onnxruntime's default
(ORT_ENABLE_ALL). Inputs: the (3,224,224) float32 samples-npy/*.npy tensors repeated to fill a batch
(image i of a batch is input i mod count), exactly as bench_engine builds them.

Standalone (no --salient): per batch size, --warmup untimed runs, then timed runs until at least
--reps runs AND --min-time seconds (at most --max-reps runs).

Interleaved (--salient BIN): BIN --serve is started as a child process (it idles on a pipe while
onnxruntime runs, and the other way round). Per batch size: warm-up of every measurement, a logits
check (salient forward vs onnxruntime forward on the same batch: max |difference|, top-1
agreement), then rounds; one round times one run of each measurement: salient forward,
onnxruntime forward, salient gradient (the order is reversed every other round). Before each timed
run the script sleeps --gap seconds so that the other engine's worker threads, which spin for a
while after their last parallel region (OpenBLAS, libgomp, the onnxruntime thread pool), have gone
to sleep. Rounds go on until at least --reps rounds AND --min-time seconds of rounds (at most
--max-reps rounds; and once 3 rounds are done, no longer than --max-time seconds, so that a busy
machine cannot stretch the run without bound). Warm-up: --warmup onnxruntime runs and
--salient-warmup runs of each salient mode (the first salient run plans the session and touches
its memory for the first time; the later ones are steady state).

Output: one line per (engine, mode, batch); with --json one JSON object per line:
  {"engine":"onnxruntime","mode":"forward","batch":8,"threads":2,"reps":7,"median_s":...,
   "min_s":...,"mean_s":...,"max_s":...,"images_per_s":...,"cpu_per_wall":...,"times_s":[...]}
plus, when interleaved, {"check":"logits","batch":8,"max_abs_diff":...,"top1_agree":8} lines and
{"ratio":"salient_forward/ort_forward","batch":8,"value":...} lines (ratio of medians).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

DEFAULT_INPUTS = ",".join(
    f"samples-npy/{s}.npy" for s in ("chelsea", "coffee", "astronaut", "rocket", "dog", "eagle", "giraffe"))


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="models/efficientnet_lite0.onnx")
    p.add_argument("--batch", default="1,8,32", help="comma-separated batch sizes")
    p.add_argument("--reps", type=int, default=5, help="minimum timed runs (rounds) per measurement")
    p.add_argument("--min-time", type=float, default=3.0,
                   help="minimum seconds of timed runs (of rounds, when interleaved) per batch size")
    p.add_argument("--max-reps", type=int, default=50)
    p.add_argument("--max-time", type=float, default=150.0,
                   help="per batch size: stop after this many seconds of rounds once 3 are done")
    p.add_argument("--warmup", type=int, default=2, help="untimed onnxruntime runs per batch size")
    p.add_argument("--salient-warmup", type=int, default=1,
                   help="untimed salient runs per batch size and mode (the first one plans; >= 1)")
    p.add_argument("--threads", type=int, default=2, help="onnxruntime intra_op_num_threads")
    p.add_argument("--inter-threads", type=int, default=1, help="onnxruntime inter_op_num_threads")
    p.add_argument("--inputs", default=DEFAULT_INPUTS, help="comma-separated (3,H,W) float32 .npy files")
    p.add_argument("--json", action="store_true", help="JSON lines instead of text")
    p.add_argument("--salient", metavar="BIN", help="bench_engine binary: interleave salient's runs")
    p.add_argument("--salient-modes", default="forward,gradient")
    p.add_argument("--salient-threads", type=int, default=None, help="salient CPU threads (default --threads)")
    p.add_argument("--gap", type=float, default=0.25, help="seconds of idle before each interleaved timed run")
    a = p.parse_args(argv)
    a.batches = [int(b) for b in a.batch.split(",") if b]
    if (not a.batches or min(a.batches) <= 0 or a.reps < 1 or a.max_reps < a.reps or a.warmup < 0
            or a.salient_warmup < 1):
        p.error("bad --batch/--reps/--max-reps/--warmup/--salient-warmup")
    return a


def make_session(args):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = args.threads
    so.inter_op_num_threads = args.inter_threads
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # graph_optimization_level: left at the default, ORT_ENABLE_ALL
    sess = ort.InferenceSession(args.model, sess_options=so, providers=["CPUExecutionProvider"])
    return ort, so, sess


def load_inputs(paths):
    imgs = []
    for p in paths.split(","):
        x = np.load(p)
        if x.ndim == 4 and x.shape[0] == 1:
            x = x[0]
        if x.ndim != 3:
            sys.exit(f"ort_bench.py: {p}: expected a (C,H,W) tensor, got shape {x.shape}")
        imgs.append(np.ascontiguousarray(x, dtype=np.float32))
    return imgs


def make_batch(imgs, n):
    return np.ascontiguousarray(np.stack([imgs[i % len(imgs)] for i in range(n)]))


def summary(engine, mode, batch, threads, times, cpus):
    med = statistics.median(times)
    return {
        "engine": engine, "mode": mode, "batch": batch, "threads": threads, "reps": len(times),
        "median_s": round(med, 6), "min_s": round(min(times), 6), "mean_s": round(statistics.fmean(times), 6),
        "max_s": round(max(times), 6), "images_per_s": round(batch / med, 3),
        "cpu_per_wall": round(sum(cpus) / sum(times), 3) if cpus else None,
        "cpu_median_s": round(statistics.median(cpus), 6) if cpus else None,
        "times_s": [round(t, 6) for t in times],
    }


def emit(args, rec):
    if args.json:
        print(json.dumps(rec, separators=(",", ":")), flush=True)
        return
    if "engine" in rec:
        cw = rec["cpu_per_wall"]
        print(f"{rec['engine']:<11} {rec['mode']:<8} batch {rec['batch']:3d}: median {1e3 * rec['median_s']:9.2f} ms"
              f"  (min {1e3 * rec['min_s']:9.2f}, max {1e3 * rec['max_s']:9.2f}, {rec['reps']} reps)"
              f"  {rec['images_per_s']:8.2f} images/s  cpu/wall {cw if cw is not None else float('nan'):.2f}",
              flush=True)
    elif "check" in rec:
        print(f"check       logits   batch {rec['batch']:3d}: max |salient - ort| = {rec['max_abs_diff']:.3g}, "
              f"top-1 agrees on {rec['top1_agree']}/{rec['batch']}", flush=True)
    elif "ratio" in rec:
        print(f"ratio       {rec['ratio']} batch {rec['batch']:3d}: {rec['value']:.3f}", flush=True)
    else:
        print(json.dumps(rec), flush=True)


def ort_run(sess, in_name, x):
    c0, t0 = time.process_time(), time.perf_counter()
    out = sess.run(None, {in_name: x})
    t1, c1 = time.perf_counter(), time.process_time()
    return t1 - t0, c1 - c0, out[0]


class Salient:
    """bench_engine --serve as a child process."""

    def __init__(self, binary, args, threads):
        cmd = [binary, "--serve", "--model", args.model, "--threads", str(threads), "--inputs", args.inputs]
        self.p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        self.hello = self._read()
        if not self.hello.get("ready"):
            sys.exit(f"ort_bench.py: {binary} did not start: {self.hello}")

    def _read(self):
        line = self.p.stdout.readline()
        if not line:
            sys.exit("ort_bench.py: bench_engine --serve exited (see its message above)")
        return json.loads(line)

    def ask(self, cmd):
        self.p.stdin.write(cmd + "\n")
        self.p.stdin.flush()
        r = self._read()
        if not r.get("ok"):
            sys.exit(f"ort_bench.py: salient '{cmd}': {r.get('error')}")
        return r

    def time(self, mode, batch, reps=1):
        r = self.ask(f"time {mode} {batch} {reps}")
        return r["times_s"], r["cpu_s"]

    def close(self):
        try:
            self.p.stdin.write("quit\n")
            self.p.stdin.flush()
        except BrokenPipeError:
            pass
        self.p.wait(timeout=30)


def standalone(args, sess, in_name, imgs):
    for n in args.batches:
        x = make_batch(imgs, n)
        for _ in range(args.warmup):
            ort_run(sess, in_name, x)
        times, cpus = [], []
        while len(times) < args.max_reps and (len(times) < args.reps or sum(times) < args.min_time):
            t, c, _ = ort_run(sess, in_name, x)
            times.append(t)
            cpus.append(c)
        emit(args, summary("onnxruntime", "forward", n, args.threads, times, cpus))


def interleaved(args, sess, in_name, imgs):
    sal_threads = args.salient_threads if args.salient_threads is not None else args.threads
    modes = [m for m in args.salient_modes.split(",") if m]
    sal = Salient(args.salient, args, sal_threads)
    sal_threads_eff = sal.hello.get("threads", sal_threads)
    hello = {k: v for k, v in sal.hello.items() if k not in ("ready", "engine")}
    emit(args, {"meta": "salient", **hello}) if args.json else print(
        f"salient {hello.get('version')}, threads {sal_threads_eff}, GEMM {hello.get('gemm')} "
        f"ISA {hello.get('gemm_isa')}", flush=True)
    try:
        for n in args.batches:
            x = make_batch(imgs, n)
            # warm-up (also plans salient's sessions for this batch size)
            for m in modes:
                sal.time(m, n, args.salient_warmup)
            for _ in range(args.warmup):
                ort_run(sess, in_name, x)
            # same-batch logits check
            r = sal.ask(f"logits {n}")
            zs = np.asarray(r["logits"], dtype=np.float32).reshape(n, r["classes"])
            _, _, zo = ort_run(sess, in_name, x)
            emit(args, {"check": "logits", "batch": n, "max_abs_diff": float(np.max(np.abs(zs - zo))),
                        "top1_agree": int(np.sum(zs.argmax(1) == zo.argmax(1)))})
            # rounds
            jobs = [("salient", modes[0])] + [("onnxruntime", "forward")] + [("salient", m) for m in modes[1:]]
            res = {j: ([], []) for j in jobs}
            rounds, t_start = 0, time.perf_counter()
            def more():
                spent = time.perf_counter() - t_start
                if rounds >= args.max_reps or (rounds >= 3 and spent > args.max_time):
                    return False
                return rounds < args.reps or spent < args.min_time
            while more():
                for j in (jobs if rounds % 2 == 0 else jobs[::-1]):
                    if args.gap > 0:
                        time.sleep(args.gap)
                    if j[0] == "salient":
                        (t,), (c,) = sal.time(j[1], n, 1)
                    else:
                        t, c, _ = ort_run(sess, in_name, x)
                    res[j][0].append(t)
                    res[j][1].append(c)
                rounds += 1
            recs = {}
            for j in jobs:
                thr = sal_threads_eff if j[0] == "salient" else args.threads
                recs[j] = summary(j[0], j[1], n, thr, *res[j])
                emit(args, recs[j])
            if ("salient", "forward") in recs:
                emit(args, {"ratio": "salient_forward/ort_forward", "batch": n,
                            "value": round(recs[("salient", "forward")]["median_s"]
                                           / recs[("onnxruntime", "forward")]["median_s"], 4)})
            if ("salient", "gradient") in recs:
                emit(args, {"ratio": "salient_gradient/ort_forward", "batch": n,
                            "value": round(recs[("salient", "gradient")]["median_s"]
                                           / recs[("onnxruntime", "forward")]["median_s"], 4)})
    finally:
        sal.close()


def main(argv):
    args = parse_args(argv)
    ort, so, sess = make_session(args)
    in_name = sess.get_inputs()[0].name
    imgs = load_inputs(args.inputs)
    meta = {"meta": "onnxruntime", "version": ort.__version__, "numpy": np.__version__,
            "providers": sess.get_providers(), "intra_op_num_threads": so.intra_op_num_threads,
            "inter_op_num_threads": so.inter_op_num_threads,
            "graph_optimization_level": str(so.graph_optimization_level).split(".")[-1],
            "inputs": len(imgs), "pid": os.getpid()}
    emit(args, meta) if args.json else print(
        f"onnxruntime {meta['version']} {meta['providers'][0]}, intra {meta['intra_op_num_threads']}, "
        f"inter {meta['inter_op_num_threads']}, {meta['graph_optimization_level']}, inputs {len(imgs)}", flush=True)
    if args.salient:
        interleaved(args, sess, in_name, imgs)
    else:
        standalone(args, sess, in_name, imgs)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
