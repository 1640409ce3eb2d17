#!/usr/bin/env python3
"""methods_table.py — the compact table of a benchmarks/run-methods result (its .jsonl): per method,
median wall and median process-CPU milliseconds per call on each side and both ratios
(peer / salient), and, for runs beside a CPU hog (--load-methods), each side's slowdown. On a loaded
machine the CPU-time ratio is the steadier one (passive waiting: CPU time is work done).

  python3 benchmarks/methods_table.py benchmarks/results/cpu-methods-resnet50.jsonl
"""
import json, statistics, sys


def main():
    recs = [json.loads(l) for l in open(sys.argv[1]) if l.strip().startswith('{"method')]
    print("| method | salient wall ms | peer wall ms | wall ratio | salient CPU ms | peer CPU ms | CPU ratio | images |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    base = {}
    med = lambda v: statistics.median(v) if v else None
    for r in recs:
        sw, pw = med(r["salient_s"]), med(r["peer_s"])
        sc, pc = med(r["salient_cpu_s"]), med(r["peer_cpu_s"])
        if not r.get("load"):
            base[r["method"]] = (sw, pw)
        name = r["method"] + (" + CPU hog" if r.get("load") else "")
        f = lambda v: "—" if v is None else f"{1e3 * v:.0f}"
        ratio = lambda p, s: "—" if p is None or s is None else f"{p / s:.2f}x"
        print(f"| {name} | {f(sw)} | {f(pw)} | {ratio(pw, sw)} | {f(sc)} | {f(pc)} | {ratio(pc, sc)} | {len(r['salient_s'])} |")
    loaded = [r for r in recs if r.get("load") and r["method"] in base]
    if loaded:
        print("\n| beside a CPU hog | salient slowdown (wall) | peer slowdown (wall) |")
        print("|---|---:|---:|")
        for r in loaded:
            sw, pw = base[r["method"]]
            print(f"| {r['method']} | {med(r['salient_s']) / sw:.2f}x | "
                  f"{'—' if not r['peer_s'] else format(med(r['peer_s']) / pw, '.2f') + 'x'} |")


if __name__ == "__main__":
    main()
