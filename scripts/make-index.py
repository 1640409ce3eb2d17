#!/usr/bin/env python3
"""make-index.py — a self-contained HTML page for a `salient explain` output directory.

    scripts/make-index.py OUTDIR [--base DIR] [--title TEXT]

Reads OUTDIR/summary.jsonl (one object per input, method and target, as `salient explain`
writes it) and writes OUTDIR/index.html: one row per input image, the original image first (copied
into OUTDIR/inputs/ so that the directory can be moved or served as it is), then every method's
overlay (OUTDIR/<stem>.<method>[.topN].png) captioned with the method, the target class and its
score (and IG's completeness gap, the CAM layer). Relative input paths in the summary are resolved
against --base (default: the current directory, where `salient explain` usually ran). Plain HTML
and CSS, no JavaScript; Python's standard library only.
"""
import argparse
import html
import json
import os
import shutil
import sys
import urllib.parse

BROWSER_IMAGES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")

CSS = """
body { font-family: system-ui, sans-serif; margin: 1.5em; background: #fafafa; color: #222; }
h1 { font-size: 1.4em; margin-bottom: 0.2em; }
p.note { color: #555; margin-top: 0; }
section.input { background: #fff; border: 1px solid #ddd; border-radius: 6px; padding: 0.8em 1em;
                margin: 1em 0; }
section.input h2 { font-size: 1.05em; margin: 0 0 0.6em 0; font-weight: 600; }
section.input h2 span.pred { font-weight: normal; color: #555; }
div.row { display: flex; flex-wrap: wrap; gap: 12px; align-items: flex-start; }
figure { margin: 0; width: 224px; }
figure img { width: 224px; height: auto; display: block; border: 1px solid #ccc;
             background: #eee; }
figure.original img { border-color: #333; }
figure div.missing { width: 222px; height: 160px; border: 1px dashed #bbb; color: #888;
                     display: flex; align-items: center; justify-content: center;
                     text-align: center; font-size: 0.85em; }
figcaption { font-size: 0.8em; line-height: 1.35; margin-top: 4px; word-break: break-word; }
figcaption b { font-size: 1.1em; }
figcaption span.extra { color: #666; }
"""


def stem_of(path):
    """The stem `salient explain` uses: the file name without its last extension."""
    base = os.path.basename(path)
    dot = base.rfind(".")
    return base[:dot] if dot > 0 else base


def read_rows(outdir):
    path = os.path.join(outdir, "summary.jsonl")
    rows = []
    try:
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                line = line.strip()
                if not line:
                    continue
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    sys.exit(f"make-index.py: {path}:{n}: not JSON: {e}")
    except OSError as e:
        sys.exit(f"make-index.py: {path}: {e.strerror} (run `salient explain ... -o {outdir}` first)")
    if not rows:
        sys.exit(f"make-index.py: {path}: no rows")
    return rows


def class_text(index, label):
    return f"{label} ({index})" if label else f"class {index}"


def url(rel):
    return urllib.parse.quote(rel.replace(os.sep, "/"))


def copy_input(src, outdir, used):
    """Copy an input image into OUTDIR/inputs/ under a unique name; returns its relative path."""
    os.makedirs(os.path.join(outdir, "inputs"), exist_ok=True)
    name = os.path.basename(src)
    cand, k = name, 1
    while cand in used and used[cand] != os.path.abspath(src):
        k += 1
        cand = f"{k}-{name}"
    used[cand] = os.path.abspath(src)
    dst = os.path.join(outdir, "inputs", cand)
    if not (os.path.exists(dst) and os.path.samefile(src, dst)):
        shutil.copyfile(src, dst)
    return os.path.join("inputs", cand)


def figure(img_rel, caption_html, cls="", missing_text="missing"):
    c = f' class="{cls}"' if cls else ""
    if img_rel:
        body = f'<img src="{url(img_rel)}" alt="" loading="lazy">'
    else:
        body = f'<div class="missing">{html.escape(missing_text)}</div>'
    return f"<figure{c}>{body}<figcaption>{caption_html}</figcaption></figure>"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("outdir", help="a `salient explain` output directory (has summary.jsonl)")
    ap.add_argument("--base", default=".", help="directory that relative input paths are relative to")
    ap.add_argument("--title", default=None, help="page title")
    a = ap.parse_args()
    outdir = a.outdir
    rows = read_rows(outdir)

    # group rows by input (and the stem its files have: an input given twice, or two inputs with
    # one name, get <stem>-2 ...), in the order of the summary
    inputs, by_input = [], {}
    for r in rows:
        key = (r.get("input", ""), r.get("stem") or stem_of(r.get("input", "")))
        if key not in by_input:
            by_input[key] = []
            inputs.append(key)
        by_input[key].append(r)

    used_names, sections, warnings = {}, [], []
    for key in inputs:
        rs = by_input[key]
        inp, stem = key
        top_suffix = max(int(r.get("rank", 1)) for r in rs) > 1   # --topk K > 1: <stem>.<m>.topN.png
        src = inp if os.path.isabs(inp) else os.path.join(a.base, inp)
        is_npy = inp.lower().endswith(".npy")
        orig_rel, why = None, "original not found"
        if is_npy:
            why = "preprocessed .npy input (no original image)"
        elif os.path.isfile(src):
            if os.path.splitext(src)[1].lower() in BROWSER_IMAGES:
                orig_rel = copy_input(src, outdir, used_names)
            else:
                why = "original is not a format browsers show"
        else:
            warnings.append(f"{inp}: not found (relative to {a.base}); the page shows the overlays only")
        r0 = rs[0]
        pred = class_text(r0.get("predicted", "?"), r0.get("predicted_label", ""))
        prob = r0.get("predicted_probability", r0.get("probability"))
        pred_txt = f"predicted {pred}" + (f", p = {prob:.3f}" if isinstance(prob, (int, float)) else "")
        figs = [figure(orig_rel, f"<b>input</b><br>{html.escape(os.path.basename(inp))}", "original", why)]
        for r in rs:
            method = r.get("method", "?")
            rank = int(r.get("rank", 1))
            name = f"{stem}.{method}" + (f".top{rank}" if top_suffix else "") + ".png"
            overlay = name if os.path.isfile(os.path.join(outdir, name)) else None
            if overlay is None:
                warnings.append(f"{inp}: {name} missing")
            cap = f"<b>{html.escape(method)}</b><br>target {html.escape(class_text(r.get('target', '?'), r.get('target_label', '')))}"
            score = r.get("score")
            if isinstance(score, (int, float)):
                cap += f"<br>score {score:.4g}"
            extra = []
            if r.get("completeness_gap") is not None:
                extra.append(f"completeness gap {r['completeness_gap']:.3g}")
            if r.get("layer"):
                extra.append(f"layer {html.escape(r['layer'])}")
            if isinstance(r.get("seconds"), (int, float)):
                extra.append(f"{r['seconds']:.2f} s")
            if extra:
                cap += f'<br><span class="extra">{", ".join(extra)}</span>'
            figs.append(figure(overlay, cap))
        sections.append(
            f'<section class="input"><h2>{html.escape(inp)} <span class="pred">— {html.escape(pred_txt)}</span></h2>\n'
            f'<div class="row">\n' + "\n".join(figs) + "\n</div></section>")

    title = a.title or f"salient explain — {os.path.basename(os.path.abspath(outdir))}"
    methods = []
    for r in rows:
        if r.get("method") not in methods:
            methods.append(r.get("method"))
    page = (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f"<title>{html.escape(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
        f"<h1>{html.escape(title)}</h1>\n"
        f'<p class="note">{len(inputs)} input(s), methods: {html.escape(", ".join(methods))}. '
        "Overlays: the attribution map over the image (jet: low to high; blue-white-red: signed). "
        "Raw numbers: summary.csv, summary.jsonl.</p>\n"
        + "\n".join(sections) + "\n</body>\n</html>\n")
    dst = os.path.join(outdir, "index.html")
    tmp = dst + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(page)
    os.replace(tmp, dst)
    for w in warnings:
        print(f"make-index.py: warning: {w}", file=sys.stderr)
    print(dst)


if __name__ == "__main__":
    main()
