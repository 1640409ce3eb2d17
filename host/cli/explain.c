/* explain.c — `salient explain -m MODEL -M METHOD[,METHOD...] INPUT... -o OUTDIR`: attribution
 * maps for each input and method, written as overlays (and optionally bare heatmaps and raw
 * arrays), with summary.csv / summary.jsonl rows per image, method and target. Methods of one
 * image share its forward pass (the targets are computed once). A bad input is reported and
 * skipped; files are written whole or not at all. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "post/post.h"

#include <omp.h>

static const char *help_head =
    "usage: salient explain -m MODEL.onnx -M METHOD[,METHOD...] [options] INPUT... -o OUTDIR\n"
    "Attribution maps for each input (an image, a .npy, or a folder: the images and .npy files\n"
    "under it, in path order). Methods: saliency, inputxgrad, smoothgrad, smoothgrad_sq,\n"
    "vargrad, ig, guided, occlusion, gradcam, gradcam++, hirescam, xgradcam, layercam, scorecam,\n"
    "guided-gradcam, rise, gradshap, kernelshap, rollout (attention rollout), chefer (gradient-\n"
    "weighted attention relevance; both for transformers with a class token).\n"
    "options:\n"
    "  -M, --methods LIST   comma-separated methods (default saliency)\n"
    "  -o, --out DIR        output directory (created if absent)\n"
    "  --target N|LABEL     class to explain (default: top-1)\n"
    "  --topk K             explain each of the top K classes (one map per class, in files\n"
    "                       <stem>.<method>.top1.png ... .topK.png; not with --target)\n"
    "  --output logit|prob  explain logits (default, the field's advice) or probabilities\n";

/* The options of the methods (explain and bench). */
static const char *method_help =
    "  --seed S             random seed (default 0): same seed, same maps\n"
    "  --samples N          noise tunnel samples (default 50)\n"
    "  --noise F            noise std as a fraction of the input's range (default 0.15)\n"
    "  --nt-inner M         method under the noise tunnel: saliency, inputxgrad, ig, guided\n"
    "  --steps N            IG steps (default 50)\n"
    "  --rule R             IG rule: gausslegendre (default), riemann_left, riemann_right,\n"
    "                       riemann_middle, riemann_trapezoid\n"
    "  --baseline B         IG baseline: zero (default), black, blur, uniform, or FILE.npy\n"
    "  --window HxW         occlusion window (default 15x15)\n"
    "  --stride HxW         occlusion stride (default 8x8)\n"
    "  --fill F             occlusion fill: zero (default), mean, blur\n"
    "  --layer NAME         CAM layer (default: the last feature map with both sides above 1, or a\n"
    "                       ViT's last token layer before its last attention; `salient info` names it)\n"
    "  --tokens HxW         the CAM layer's grid: (N, H*W [+1 class token], D) tokens, or which sides\n"
    "                       of a 4-D layer are H and W (default: from the layer's shape); rollout\n"
    "                       and chefer: the patch grid after the class token\n"
    "  --attention-layers L rollout and chefer: comma-separated attention layers (Softmax nodes;\n"
    "                       default: every Softmax over the last axis of (N,heads,T,T) values)\n"
    "  --head-fusion F      rollout: the heads' mean (default), max or min\n"
    "  --discard R          rollout: set the lowest fraction R of each layer's fused attention to 0\n"
    "                       (vit-explain's discard_ratio; default 0)\n"
    "  --no-relu            keep negative CAM values\n"
    "  --masks N            RISE masks (default 4000)\n"
    "  --grid N             RISE mask grid (default 7) and KernelSHAP feature grid (default 8)\n"
    "  --keep P             RISE probability of keeping a grid cell (default 0.5)\n"
    "  --stdev F            GradientSHAP noise std added to the input (default 0)\n"
    "  --coalitions N       KernelSHAP coalitions (default 1000)\n"
    "  --superpixels N      KernelSHAP features: about N superpixels instead of the grid\n"
    "  --method-batch N     images per internal batch (default: what fits in half the free\n"
    "                       memory, at most 16 on the CPU)\n";

/* What explain writes. */
static const char *output_help =
    "output options:\n"
    "  --reduce R           channel reduction: abs-max (default), abs-sum, sum (signed)\n"
    "  --clip P             clip at the P-th percentile (default 99 for gradient maps, 100 else)\n"
    "  --colormap C         jet (default), turbo, viridis, inferno, gray; bwr for signed maps\n"
    "  --alpha A            overlay weight of the colours (default 0.5; with --opacity map, the\n"
    "                       weight where the map is largest, default 0.8)\n"
    "  --opacity O          map: the colour's opacity follows the map's value (|value| for\n"
    "                       signed maps), so the photo shows through where the map is low\n"
    "                       (default for gradient methods and signed maps); constant: alpha\n"
    "                       everywhere (default for CAMs, occlusion's unsigned maps, RISE,\n"
    "                       KernelSHAP)\n"
    "  --heatmap            also write OUTDIR/<stem>.<method>.heatmap.png\n"
    "  --raw                also write OUTDIR/<stem>.<method>.npy (float32, before reduction)\n"
    "  --colorbar           a colour bar under each overlay and heatmap: the colormap and the\n"
    "                       values its ends stand for (after reduction and clipping)\n"
    "  --html               also write OUTDIR/index.html: every input's photo and overlays with\n"
    "                       targets, scores, IG gaps and times; opens offline (the photos are\n"
    "                       copied into OUTDIR/inputs/); turns --colorbar on\n"
    "  --image-batch N      inputs explained together (default 16): one-pass methods then fill\n"
    "                       the internal batch; files are written after each group. A record's\n"
    "                       seconds is its call's time / images_per_call (measured per image\n"
    "                       only with --image-batch 1)\n"
    "  --json               print each record of summary.jsonl on stdout as it is written: one\n"
    "                       object per input, method and target (progress stays on stderr)\n"
    "Output: OUTDIR is locked for the run (a second run into it is refused); summary.csv and\n"
    "summary.jsonl hold the same records (columns: see the README) and grow as maps are written.\n";

static const char *bench_help_head =
    "usage: salient bench -m MODEL.onnx [-M METHOD[,METHOD...]] [--images N] [--min-time S] [--max-time T]\n"
    "                     [options] [INPUT...]\n"
    "Throughput per method: images/s, ms/image and GFLOP/s (convolutions and matrix products, against\n"
    "the device's measured FP32 SGEMM rate) of sal_explain on N images (default 8 on the CPU, 64\n"
    "on a GPU, which 8 images leave mostly idle; the given inputs cycled, else fixed random images),\n"
    "each method timed for at least S seconds (default 2) after one untimed call on 1 image; a method\n"
    "whose call on N images would take more than T seconds (default 10) is timed on fewer images (said\n"
    "on stderr and in its row), so a method costs about its first call + max(S, T). Each method's row\n"
    "is printed when it is done, with progress on stderr; --json prints one\n"
    "object per method. Default methods: the fast ones (saliency, inputxgrad, smoothgrad, ig, guided,\n"
    "occlusion, gradcam, gradcam++, hirescam, xgradcam, layercam). explain's output options are\n"
    "accepted and ignored.\n"
    "options:\n"
    "  -M, --methods LIST   comma-separated methods (default: the fast ones above)\n"
    "  --images N           images per call (default 8 on the CPU, 64 on a GPU)\n"
    "  --min-time S         seconds each method is timed for, at least (default 2)\n"
    "  --output logit|prob  explain logits (default) or probabilities\n";

static const char *bench_default_methods =
    "saliency,inputxgrad,smoothgrad,ig,guided,occlusion,gradcam,gradcam++,hirescam,xgradcam,layercam";

typedef struct xopts {
    sal_method methods[SAL_M_COUNT];
    int n_methods;
    const char *out;
    const char *target;
    int topk;
    sal_explain_opts base;
    sal_reduce reduce;
    int have_reduce;
    double clip;
    int have_clip;
    sal_colormap cmap;
    int have_cmap;
    float alpha;
    int have_alpha;
    int opacity;       /* --opacity: -1 the method's default, 0 constant, 1 scaled by the map's value */
    int heatmap, raw;
    int html;          /* --html: OUTDIR/index.html after the run */
    int colorbar;      /* --colorbar: a colour bar with the value range under each picture */
    int image_batch;   /* images per sal_explain call (--image-batch); 0: EXPLAIN_IMAGE_BATCH */
    float *baseline_npy;
} xopts;

/* Images explained together by default: enough to fill a GPU's batch on one-pass methods, few
 * enough that the held maps stay small. */
#define EXPLAIN_IMAGE_BATCH 16
/* Maps rendered before their PNGs are written in parallel: at most this many, and the first map
 * past this many bytes of pixels ends the chunk. */
#define EXPLAIN_WRITE_CHUNK 32
#define EXPLAIN_WRITE_BYTES ((size_t)256 << 20)

static int parse_hw(const char *opt, const char *v, int *h, int *w) {
    char *x;
    long a = strtol(v, &x, 10), b = a;
    if (*x == 'x' || *x == 'X') b = strtol(x + 1, &x, 10);
    if (*x || a < 1 || b < 1 || a > 16384 || b > 16384) {
        cli_error("%s: expected N or HxW with positive sizes, got '%s'", opt, v);
        return -1;
    }
    *h = (int)a;
    *w = (int)b;
    return 0;
}

static int parse_methods(xopts *xo, const char *list) {
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", list);
    xo->n_methods = 0;
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        sal_method m;
        if (sal_method_parse(tok, &m)) {
            const char *names[SAL_M_COUNT];
            for (int k = 0; k < SAL_M_COUNT; k++) names[k] = sal_method_name((sal_method)k);
            cli_unknown("method", tok, names, SAL_M_COUNT, NULL);
            return -1;
        }
        if (xo->n_methods < SAL_M_COUNT) xo->methods[xo->n_methods++] = m;
    }
    if (xo->n_methods == 0) { cli_error("-M: no method given"); return -1; }
    return 0;
}

static const char *stem_of(const char *path, char *buf, size_t len) {
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    snprintf(buf, len, "%s", b);
    char *dot = strrchr(buf, '.');
    if (dot && dot != buf) *dot = 0;
    return buf;
}

/* The stems of all inputs, unique within the run: an input whose stem an earlier input has (a/x.png
 * and b/x.png, or x.png and x.npy) is named <stem>-2, -3 ... instead, with a note on stderr, so no
 * input's files overwrite another's. Returns an array of n_inputs strings (freed by free_stems),
 * NULL when out of memory. */
static uint64_t stem_hash(const char *s) {
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static int stem_taken(char **table, size_t cap, const char *s, int add) {
    for (size_t i = stem_hash(s) & (cap - 1);; i = (i + 1) & (cap - 1)) {
        if (!table[i]) {
            if (add) table[i] = (char *)s;
            return 0;
        }
        if (!strcmp(table[i], s)) return 1;
    }
}

static char **unique_stems(char **inputs, int n) {
    char **stems = calloc((size_t)n, sizeof(char *));
    size_t cap = 16;
    while (cap < 4 * (size_t)n) cap *= 2;   /* at most a quarter full: short probes */
    char **table = calloc(cap, sizeof(char *));
    if (!stems || !table) { free(stems); free(table); return NULL; }
    int renamed = 0;
    for (int i = 0; i < n; i++) {
        char base[1024], name[1100];
        stem_of(inputs[i], base, sizeof base);
        snprintf(name, sizeof name, "%s", base);
        for (int k = 2; stem_taken(table, cap, name, 0); k++) snprintf(name, sizeof name, "%s-%d", base, k);
        if (!(stems[i] = strdup(name))) {
            for (int j = 0; j < i; j++) free(stems[j]);
            free(stems);
            free(table);
            return NULL;
        }
        stem_taken(table, cap, stems[i], 1);
        if (strcmp(name, base) && ++renamed <= 10)
            fprintf(stderr, "salient: note: %s: another input is also named '%s': its files are %s.*\n", inputs[i],
                    base, name);
    }
    if (renamed > 10)
        fprintf(stderr, "salient: note: ... and %d more inputs renamed so (summary.csv's stem column has every name)\n",
                renamed - 10);
    free(table);
    return stems;
}

static void free_stems(char **stems, int n) {
    for (int i = 0; stems && i < n; i++) free(stems[i]);
    free(stems);
}


/* How one image's attribution (mp: a one-image view) is post-processed: which array (and
 * channels) goes in, and sal_render's options (the field's defaults: gradient maps abs-max and clipped at the 99th percentile; CAMs
 * and occlusion unclipped; occlusion and signed reductions are signed maps). */
static void render_plan(const xopts *xo, sal_method m, const sal_maps *mp, const float **src, int *c,
                        sal_render_opts *ro) {
    int signed_map;
    sal_reduce reduce = SAL_REDUCE_ABS_MAX;
    if (sal_method_is_cam(m)) {
        *src = mp->upsampled;
        *c = 1;
        signed_map = !xo->base.cam_relu;
    } else {
        *c = (int)mp->dims[0];
        *src = mp->attr;
        sal_reduce r = xo->have_reduce ? xo->reduce : SAL_REDUCE_ABS_MAX;
        if (m == SAL_M_OCCLUSION && !xo->have_reduce) {
            *c = 1;   /* every channel holds the same drop */
            signed_map = 1;
        } else {
            reduce = r == SAL_REDUCE_NONE ? SAL_REDUCE_ABS_MAX : r;
            signed_map = reduce == SAL_REDUCE_SUM;
        }
    }
    cli_render_defaults(m, signed_map, ro);
    ro->reduce = reduce;
    if (xo->have_clip) ro->clip = xo->clip;
    if (xo->have_cmap) ro->cmap = xo->cmap;
    if (xo->opacity >= 0) ro->alpha_by_value = xo->opacity;
    ro->alpha = xo->have_alpha ? xo->alpha : ro->alpha_by_value ? SAL_OVERLAY_ALPHA_BY_VALUE : SAL_OVERLAY_ALPHA;
}

/* Method options checked against the model before any output exists. The library checks them
 * too, but only when a method runs, which is after earlier methods' files were written. */
static int check_methods(const xopts *xo, cli_model *cm, int quiet) {
    const sal_explain_opts *o = &xo->base;
    int cam_checked = 0, attn_checked = 0;
    for (int mi = 0; mi < xo->n_methods; mi++) {
        sal_method m = xo->methods[mi];
        int is_nt = m == SAL_M_SMOOTHGRAD || m == SAL_M_SMOOTHGRAD_SQ || m == SAL_M_VARGRAD;
        if (is_nt && o->nt_inner != SAL_M_SALIENCY && o->nt_inner != SAL_M_INPUTXGRAD &&
            o->nt_inner != SAL_M_IG && o->nt_inner != SAL_M_GUIDED) {
            cli_error("--nt-inner: expected saliency, inputxgrad, ig or guided, got '%s'", sal_method_name(o->nt_inner));
            return -1;
        }
        if ((m == SAL_M_IG || (is_nt && o->nt_inner == SAL_M_IG)) && o->ig_rule == SAL_IG_RIEMANN_TRAPEZOID &&
            o->ig_steps < 2) {
            cli_error("--steps: riemann_trapezoid needs at least 2 steps, got %d", o->ig_steps);
            return -1;
        }
        if (m == SAL_M_OCCLUSION) {
            if (o->occ_stride_h > o->occ_h || o->occ_stride_w > o->occ_w) {
                cli_error("--stride %dx%d is larger than --window %dx%d: pixels between windows would get no attribution",
                          o->occ_stride_h, o->occ_stride_w, o->occ_h, o->occ_w);
                return -1;
            }
            if (o->occ_h > cm->h || o->occ_w > cm->w) {
                cli_error("--window %dx%d is larger than the model's %dx%d input", o->occ_h, o->occ_w, cm->h, cm->w);
                return -1;
            }
        }
        int attn = m == SAL_M_ROLLOUT || m == SAL_M_CHEFER;
        if (m == SAL_M_CHEFER && (o->head_fusion != SAL_FUSE_MEAN || o->rollout_discard != 0.0f)) {
            cli_error("%s: chefer's rule averages the heads and discards nothing; it is rollout's option",
                      o->head_fusion != SAL_FUSE_MEAN ? "--head-fusion" : "--discard");
            return -1;
        }
        if (attn && !attn_checked) {   /* the attention layers, once; named on stderr when found */
            sal_attention_info ai;
            if (sal_session_attention(cm->s, cm->h, cm->w, o->attention_layers, o->tokens_h, o->tokens_w, &ai)) {
                if (o->attention_layers && *o->attention_layers)
                    cli_error("--attention-layers: %s", sal_session_error(cm->s));
                else cli_error("%s: %s", sal_method_name(m), sal_session_error(cm->s));
                return -1;
            }
            attn_checked = 1;
            if (!quiet && !(o->attention_layers && *o->attention_layers))
                fprintf(stderr, "salient: note: attention layers: %d (%s ... %s), %d heads over %d tokens, a %dx%d "
                        "grid after a class token (--attention-layers LIST for others)\n", ai.layers, ai.first,
                        ai.last, ai.heads, ai.tokens, ai.h, ai.w);
        }
        if ((sal_method_is_cam(m) || m == SAL_M_GUIDED_GRADCAM) && !attn && !cam_checked) {
            /* the layer and its grid, once for every CAM method; the default is named on stderr */
            sal_cam_layer cl;
            if (sal_session_cam_layer(cm->s, cm->h, cm->w, o->layer, o->tokens_h, o->tokens_w, &cl)) {
                if (o->layer && *o->layer) cli_error("--layer %s: %s", o->layer, sal_session_error(cm->s));
                else cli_error("%s: %s", sal_method_name(m), sal_session_error(cm->s));
                return -1;
            }
            cam_checked = 1;
            char desc[512];
            if (!quiet && cl.is_default)
                fprintf(stderr, "salient: note: CAM layer %s (the default; --layer NAME for another)\n",
                        cli_cam_layer_desc(cm->s, &cl, desc, sizeof desc));
        }
    }
    return 0;
}

/* Image j's maps of a call on several images, as a one-image sal_maps (a view: not freed). hw: the
 * input's plane, the size of each CAM method's upsampled map. */
static sal_maps maps_of_image(const sal_maps *m, int j, int64_t hw) {
    sal_maps v = *m;
    const int64_t per = sal_maps_per_image(m);
    v.n = 1;
    v.attr = m->attr ? m->attr + j * per : NULL;
    v.upsampled = m->upsampled ? m->upsampled + j * hw : NULL;
    v.targets = m->targets + j;
    v.scores = m->scores + j;
    v.completeness = m->completeness ? m->completeness + j : NULL;
    v.delta = m->delta ? m->delta + j : NULL;
    return v;
}

/* One input's state while its maps are written. */
typedef struct img_ctx {
    const char *in;
    const char *stem;
    int is_npy;
    sal_image orig;
    float rect[4];
    const float *logits;
    int pred, tk;
    double mx, zsum;
} img_ctx;

/* One map on its way to its files, in three steps: render_map on the session (one map after
 * another), write_map_pngs (several maps at once, on the CPU's threads), finish_map (its .npy and
 * summary rows, in order). */
typedef struct pending {
    const img_ctx *ic;
    sal_method m;
    int r;                 /* rank among the image's targets */
    sal_maps maps;         /* a view of the image's maps */
    double secs;
    uint8_t *rgb;          /* (orig h, orig w, 3) overlay; NULL for .npy inputs */
    uint8_t *heat;         /* (h, w, 3) bare heatmap, or NULL */
    int ok;                /* rendered, and every file so far written */
    int write_failed;      /* a file could not be written (disk full, folder gone...): the run stops */
    char err[4400];        /* write_map_pngs's failure, printed by finish_map */
    int bar_rgb, bar_heat; /* --colorbar: rows of colour bar under the overlay / heatmap (0: none) */
} pending;

static void map_path(char *path, size_t len, const xopts *xo, const pending *pd, const char *ext) {
    char suffix[32] = "";
    if (pd->ic->tk > 1) snprintf(suffix, sizeof suffix, ".top%d", pd->r + 1);
    snprintf(path, len, "%s/%s.%s%s%s", xo->out, pd->ic->stem, sal_method_name(pd->m), suffix, ext);
}

/* Reduction, clipping, normalization and colour on the session's device: pixels come back. map:
 * (h, w) scratch. */
static void render_map(const xopts *xo, const cli_model *cm, pending *pd, float *map) {
    const img_ctx *ic = pd->ic;
    int nc;
    const float *src;
    sal_render_opts ro;
    sal_error err = {0};
    render_plan(xo, pd->m, &pd->maps, &src, &nc, &ro);
    float range[2] = {0, 0};
    ro.range_out = range;
    pd->ok = 1;
    /* --colorbar: a strip under the picture (pictures narrower than 32 pixels go without) */
    pd->bar_rgb = xo->colorbar && !ic->is_npy && ic->orig.w >= 32 ? sal_colorbar_height(ic->orig.w) : 0;
    pd->bar_heat = xo->colorbar && cm->w >= 32 ? sal_colorbar_height(cm->w) : 0;
    if (xo->heatmap || ic->is_npy) pd->heat = malloc((size_t)cm->w * (cm->h + pd->bar_heat) * 3);
    if (!ic->is_npy) pd->rgb = malloc((size_t)ic->orig.w * (ic->orig.h + pd->bar_rgb) * 3);
    if ((!ic->is_npy && !pd->rgb) || ((xo->heatmap || ic->is_npy) && !pd->heat)) {
        cli_error("%s: out of memory for a %dx%d overlay", ic->in, ic->orig.w, ic->orig.h);
        pd->ok = 0;
    } else if (sal_render(cm->s, src, nc, cm->h, cm->w, &ro, ic->is_npy ? NULL : &ic->orig, ic->rect, map, pd->heat,
                          pd->rgb, &err)) {
        cli_error("%s: %s", ic->in, err.msg);
        pd->ok = 0;
    } else {
        if (pd->rgb && pd->bar_rgb)
            sal_colorbar(pd->rgb + (size_t)ic->orig.w * ic->orig.h * 3, ic->orig.w, ro.cmap, ro.signed_map, range[0], range[1]);
        if (pd->heat && pd->bar_heat)
            sal_colorbar(pd->heat + (size_t)cm->w * cm->h * 3, cm->w, ro.cmap, ro.signed_map, range[0], range[1]);
    }
}

/* The overlay and the bare heatmap (.npy inputs: the heatmap alone, as <stem>.<method>.png). */
static void write_map_pngs(const xopts *xo, const cli_model *cm, pending *pd) {
    char path[4200];
    sal_error err = {0};
    if (!pd->ok) return;
    if (pd->rgb) {
        map_path(path, sizeof path, xo, pd, ".png");
        if (sal_png_write_rgb(path, pd->ic->orig.w, pd->ic->orig.h + pd->bar_rgb, pd->rgb, &err)) goto failed;
    }
    if (pd->heat) {
        map_path(path, sizeof path, xo, pd, pd->ic->is_npy ? ".png" : ".heatmap.png");
        if (sal_png_write_rgb(path, cm->w, cm->h + pd->bar_heat, pd->heat, &err)) goto failed;
    }
    return;
failed:
    snprintf(pd->err, sizeof pd->err, "%s", err.msg);
    pd->ok = 0;
    pd->write_failed = 1;
}

/* ------------------------------------------------------------------------------------------------ */
/* The record of one map: summary.csv's row, summary.jsonl's line and --json's line are one record  */

/* summary.csv's columns, in the order of summary.jsonl's keys. seconds: the wall time of the
 * sal_explain call that made the map, divided by images_per_call, the images it explained
 * together (measured for this image alone when images_per_call is 1: --image-batch 1). file: the
 * overlay (for a .npy input the heatmap) under OUTDIR, empty when it was not written; status: ok,
 * or why not. logits: the model's outputs for the input, as a JSON array. */
static const char *record_header =
    "input,method,target,target_label,rank,predicted,predicted_label,probability,score,completeness_gap,seconds,"
    "stem,delta,layer,predicted_probability,images_per_call,file,status,logits\n";

typedef struct recw {
    FILE *csv, *js;
    int n;
} recw;

static void rec_key(recw *w, const char *key) {
    if (w->n++) { fputc(',', w->csv); fputs(", ", w->js); }
    else fputc('{', w->js);
    fprintf(w->js, "\"%s\": ", key);
}

/* a string: quoted in both (CSV doubles its quotes); NULL: an empty field, JSON null */
static void rec_str(recw *w, const char *key, const char *v) {
    rec_key(w, key);
    if (!v) { fputs("null", w->js); return; }
    cli_json_string(w->js, v);
    fputc('"', w->csv);
    for (const char *c = v; *c; c++) {
        if (*c == '"') fputc('"', w->csv);
        fputc(*c, w->csv);
    }
    fputc('"', w->csv);
}

/* a number, the same text in both; absent or not finite: an empty field, JSON null */
static void rec_num(recw *w, const char *key, const char *fmt, double v, int present) {
    rec_key(w, key);
    if (!present || !isfinite(v)) { fputs("null", w->js); return; }
    char t[64];
    snprintf(t, sizeof t, fmt, v);
    fputs(t, w->csv);
    fputs(t, w->js);
}

/* The raw array, then the record (into the chunk's csv and jsonl text); returns 0 when every file
 * was written. */
static int finish_map(const xopts *xo, const cli_model *cm, pending *pd, int K, int per_call, FILE *csv, FILE *jsonl) {
    char path[4200];
    sal_error err = {0};
    const img_ctx *ic = pd->ic;
    const sal_maps *mp = &pd->maps;
    const int r = pd->r, target = mp->targets[0];
    const sal_method m = pd->m;
    if (pd->err[0]) cli_error("%s", pd->err);
    if (pd->ok && xo->raw) {
        map_path(path, sizeof path, xo, pd, ".npy");
        if (sal_npy_write(path, mp->attr, mp->ndim, mp->dims, &err)) {
            cli_error("%s", err.msg);
            snprintf(pd->err, sizeof pd->err, "%s", err.msg);
            pd->ok = 0;
            pd->write_failed = 1;
        }
    }
    const double p_target = exp(ic->logits[target] - ic->mx) / ic->zsum, p_pred = exp(ic->logits[ic->pred] - ic->mx) / ic->zsum;
    const char *tl = cli_label(cm, target), *pl = cli_label(cm, ic->pred);
    char file[4200] = "", status[4500] = "ok";
    if (pd->ok) {
        map_path(path, sizeof path, xo, pd, ".png");   /* the overlay, or a .npy input's heatmap */
        snprintf(file, sizeof file, "%s", path + strlen(xo->out) + 1);
    } else {
        snprintf(status, sizeof status, "failed: %s", pd->err[0] ? pd->err : "not rendered (see the messages)");
    }
    recw w = {csv, jsonl, 0};
    rec_str(&w, "input", ic->in);
    rec_str(&w, "method", sal_method_name(m));
    rec_num(&w, "target", "%.0f", target, 1);
    rec_str(&w, "target_label", tl);
    rec_num(&w, "rank", "%.0f", r + 1, 1);
    rec_num(&w, "predicted", "%.0f", ic->pred, 1);
    rec_str(&w, "predicted_label", pl);
    rec_num(&w, "probability", "%.6g", p_target, 1);
    rec_num(&w, "score", "%.7g", mp->scores[0], 1);
    rec_num(&w, "completeness_gap", "%.6g", mp->completeness ? mp->completeness[0] : 0, mp->completeness != NULL);
    rec_num(&w, "seconds", "%.4f", pd->secs, 1);
    rec_str(&w, "stem", ic->stem);
    rec_num(&w, "delta", "%.7g", mp->delta ? mp->delta[0] : 0, mp->delta != NULL);
    rec_str(&w, "layer", mp->layer[0] ? mp->layer : NULL);
    rec_num(&w, "predicted_probability", "%.6g", p_pred, 1);
    rec_num(&w, "images_per_call", "%.0f", per_call, 1);
    rec_str(&w, "file", file[0] ? file : NULL);
    rec_str(&w, "status", status);
    rec_key(&w, "logits");   /* one JSON array, as the CSV's quoted text */
    fputs("\"[", csv);
    fputc('[', jsonl);
    for (int j = 0; j < K; j++) {
        char t[64];
        if (isfinite(ic->logits[j])) snprintf(t, sizeof t, "%s%.7g", j ? ", " : "", ic->logits[j]);
        else snprintf(t, sizeof t, "%snull", j ? ", " : "");
        fputs(t, csv);
        fputs(t, jsonl);
    }
    fputs("]\"\n", csv);
    fputs("]}\n", jsonl);
    return pd->ok ? 0 : -1;
}

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

static int run_bench(const xopts *xo, const cli_common *c, cli_model *cm, char **inputs, int n_inputs,
                     int n_images, double min_time, double max_time);

/* The explain run proper, once every option and the model have been checked: OUTDIR, the inputs
 * in groups, the files and the summaries. n_bad: inputs already reported as unusable. */
static int run_explain(const xopts *xo, const cli_common *c, cli_model *cm, char **inputs, int n_inputs, int n_bad,
                       int fixed_target) {
    const int per = cm->c * cm->h * cm->w, hw = cm->h * cm->w, K = sal_session_num_classes(cm->s);
    /* OUTDIR: created, locked for this run, cleared of what killed runs left; the summaries are
     * appended after each chunk of maps, once their files are in place */
    cli_outdir od;
    if (cli_outdir_open(&od, xo->out, c->quiet)) return EXIT_FAIL;
    char path[4200];
    cli_records csv_r, jl_r;
    snprintf(path, sizeof path, "%s/summary.csv", xo->out);
    cli_records_init(&csv_r, path, record_header);
    snprintf(path, sizeof path, "%s/summary.jsonl", xo->out);
    cli_records_init(&jl_r, path, NULL);
    /* Images are explained in groups (--image-batch): one forward pass gives the group's targets,
     * and each method and rank runs on the whole group in one sal_explain call, so one-pass
     * methods (saliency, the CAM family) fill the internal batch too. The group's maps are held
     * until every method has run on it, then written image by image; the held maps are kept under
     * about 1 GiB by shrinking the group. */
    const int tk = fixed_target >= 0 ? 1 : (xo->topk < K ? (xo->topk < 64 ? xo->topk : 64) : (K < 64 ? K : 64));
    const int n_held = xo->n_methods * tk;
    int G = xo->image_batch > 0 ? xo->image_batch : EXPLAIN_IMAGE_BATCH;
    const double held_bytes = (double)n_held * sizeof(float) * (double)(per + hw);
    if (G > 1 && G * held_bytes > (double)(1 << 30)) G = (int)((double)(1 << 30) / held_bytes) > 1 ? (int)((double)(1 << 30) / held_bytes) : 1;
    float *x = malloc(sizeof(float) * (size_t)per * (size_t)G), *logits = malloc(sizeof(float) * (size_t)K * (size_t)G);
    float *map = malloc(sizeof(float) * (size_t)hw);
    int *targets = malloc(sizeof(int) * (size_t)tk * (size_t)G), *tg = malloc(sizeof(int) * (size_t)G);
    img_ctx *ic = calloc((size_t)G, sizeof(img_ctx));
    int *loaded = calloc((size_t)G, sizeof(int));
    char (*load_msg)[4600] = calloc((size_t)G, sizeof *load_msg);
    char *wrote = calloc((size_t)G, 1);   /* the group's inputs with at least one map written */
    pending *pend = calloc(EXPLAIN_WRITE_CHUNK, sizeof(pending));
    const int io_threads = c->threads > 0 ? c->threads : sal_cpu_threads_default();
    char **stems = unique_stems(inputs, n_inputs);
    sal_maps *held = calloc((size_t)n_held, sizeof(sal_maps));
    double *held_secs = calloc((size_t)n_held, sizeof(double));
    int failed = n_bad, rows = 0, explained = 0, maps_written = 0, inputs_written = 0, stop = 0;
    const double t_start = now_s();
    cli_progress pg;
    cli_progress_start(&pg, "explain", "inputs", n_inputs, c->quiet);
    cli_interrupt_catch();   /* Ctrl-C: stop at the next pass, keep what is finished, release OUTDIR */
    if (n_bad) cli_progress_add(&pg, 0, n_bad);   /* folders that held no input */
    if (!x || !logits || !map || !targets || !tg || !ic || !loaded || !load_msg || !wrote || !pend || !stems || !held || !held_secs) {
        cli_error("out of memory");
        failed = 1;
        goto done;
    }
    for (int ii = 0; ii < n_inputs && !stop;) {
        /* the first image goes alone: a method that fails on it (an option the checks above do not
         * know) fails on every image, and the run then stops with no file written */
        const int first = explained == 0, gmax = first ? 1 : G;
        /* the next inputs, decoded and preprocessed in parallel, each into its own slot; the
         * ones that load are then packed to the front in input order */
        const int want = n_inputs - ii < gmax ? n_inputs - ii : gmax;
#pragma omp parallel for schedule(dynamic) num_threads(io_threads)
        for (int j = 0; j < want; j++) {
            memset(&ic[j], 0, sizeof ic[j]);
            loaded[j] = !cli_load_input(cm, inputs[ii + j], x + (size_t)j * per, &ic[j].orig, load_msg[j],
                                        sizeof load_msg[j]);
        }
        int g = 0;
        for (int j = 0; j < want; j++) {
            if (!loaded[j]) { cli_error("%s", load_msg[j]); failed++; continue; }   /* in input order */
            if (g != j) {
                memcpy(x + (size_t)g * per, x + (size_t)j * per, sizeof(float) * (size_t)per);
                ic[g] = ic[j];
                memset(&ic[j], 0, sizeof ic[j]);
            }
            img_ctx *c1 = &ic[g];
            c1->in = inputs[ii + j];
            c1->logits = logits + (size_t)g * K;
            c1->tk = tk;
            c1->is_npy = !c1->orig.pix;
            if (!c1->is_npy) sal_prep_rect(c1->orig.w, c1->orig.h, &cm->prep, c1->rect);
            c1->stem = stems[ii + j];
            g++;
        }
        ii += want;
        if (g == 0) { cli_progress_add(&pg, want, want); continue; }
        if (sal_forward(cm->s, x, g, cm->h, cm->w, logits)) {   /* in halves when g do not fit */
            cli_error("%s%s: %s", ic[0].in, g > 1 ? " and the other images of its group" : "", sal_session_error(cm->s));
            failed += g;
            for (int j = 0; j < g; j++) sal_image_free(&ic[j].orig);
            cli_progress_add(&pg, want, want);
            continue;
        }
        /* targets: fixed, or the top-k by logit */
        for (int j = 0; j < g; j++) {
            img_ctx *c1 = &ic[j];
            const float *lg = c1->logits;
            for (int k = 1; k < K; k++) if (lg[k] > lg[c1->pred]) c1->pred = k;
            c1->mx = lg[c1->pred];
            for (int k = 0; k < K; k++) c1->zsum += exp(lg[k] - c1->mx);
            int *t = targets + (size_t)j * tk;
            if (fixed_target >= 0) t[0] = fixed_target;
            else
                for (int r = 0; r < tk; r++) {   /* the r-th largest logit (ties: the lower class) */
                    int best = -1;
                    for (int k = 0; k < K; k++) {
                        int used = 0;
                        for (int q = 0; q < r && !used; q++) used = t[q] == k;
                        if (!used && (best < 0 || lg[k] > lg[best])) best = k;
                    }
                    t[r] = best;
                }
        }
        int fatal = 0;
        /* saliency, input x gradient and the gradient CAMs asked together: one forward and one
         * backward pass per image serve them all (sal_explain_many); each gets the time split */
        int shared_mi[SAL_M_COUNT], n_shared = 0;
        for (int mi = 0; mi < xo->n_methods && n_shared < SAL_M_COUNT; mi++)
            if (sal_method_shares_pass(xo->methods[mi])) shared_mi[n_shared++] = mi;
        if (n_shared < 2) n_shared = 0;
        for (int r = 0; r < tk && n_shared && !stop && !fatal; r++) {
            sal_method sm[SAL_M_COUNT];
            sal_maps sout[SAL_M_COUNT];
            for (int q = 0; q < n_shared; q++) sm[q] = xo->methods[shared_mi[q]];
            sal_explain_opts o = xo->base;
            o.progress = cli_progress_sal;
            o.progress_user = &pg;
            if (tk > 1) cli_progress_stage(&pg, "%d methods sharing passes, top %d", n_shared, r + 1);
            else cli_progress_stage(&pg, "%d methods sharing passes", n_shared);
            cli_progress_span(&pg, (double)g * (shared_mi[0] * tk + r) / n_held, (double)g * n_shared / n_held);
            for (int j = 0; j < g; j++) tg[j] = targets[(size_t)j * tk + r];
            double t0 = now_s();
            sal_status st = sal_explain_many(cm->s, &o, sm, n_shared, x, g, cm->h, cm->w, tg, sout);
            double secs = now_s() - t0;
            for (int q = 0; q < n_shared; q++) {
                sal_maps *mp = &held[shared_mi[q] * tk + r];
                if (st) memset(mp, 0, sizeof *mp);
                else *mp = sout[q];
                held_secs[shared_mi[q] * tk + r] = secs / g / n_shared;
            }
            if (st == SAL_ERR_CANCELLED && cli_interrupted()) { stop = 1; break; }
            if (st) {
                cli_error("%s%s: %s", ic[0].in, g > 1 ? " and the other images of its group" : "", sal_session_error(cm->s));
                failed += g * n_shared;
                if (first) { cli_error("explain: %s failed on the first image: stopping, no files written", sal_method_name(sm[0])); fatal = 1; }
            }
        }
        for (int mi = 0; mi < xo->n_methods && !fatal && !stop; mi++) {
            sal_method m = xo->methods[mi];
            if (n_shared && sal_method_shares_pass(m)) continue;   /* done above */
            for (int r = 0; r < tk; r++) {
                sal_explain_opts o = xo->base;
                o.method = m;
                o.progress = cli_progress_sal;   /* the bar moves inside the call */
                o.progress_user = &pg;
                if (tk > 1) cli_progress_stage(&pg, "%s top %d", sal_method_name(m), r + 1);
                else cli_progress_stage(&pg, "%s", sal_method_name(m));
                cli_progress_span(&pg, (double)g * (mi * tk + r) / n_held, (double)g / n_held);
                for (int j = 0; j < g; j++) tg[j] = targets[(size_t)j * tk + r];
                sal_maps *mp = &held[mi * tk + r];
                double t0 = now_s();
                sal_status st = sal_explain(cm->s, &o, x, g, cm->h, cm->w, tg, mp);
                double secs = now_s() - t0;
                held_secs[mi * tk + r] = secs / g;
                if (st == SAL_ERR_CANCELLED && cli_interrupted()) {   /* the group's maps are not written */
                    memset(mp, 0, sizeof *mp);
                    stop = 1;
                    break;
                }
                if (st) {
                    memset(mp, 0, sizeof *mp);
                    cli_error("%s%s: %s", ic[0].in, g > 1 ? " and the other images of its group" : "", sal_session_error(cm->s));
                    failed += g;
                    if (first) { cli_error("explain: %s failed on the first image: stopping, no files written", sal_method_name(m)); fatal = 1; break; }
                    continue;
                }
            }
        }
        cli_progress_stage(&pg, "writing files");
        /* the group's files, image by image, in chunks: rendered on the session one after
         * another, their PNGs encoded and written in parallel, then the rows in order */
        for (int at = 0; at < g * n_held && !fatal && !stop;) {
            int np = 0;
            size_t bytes = 0;
            for (; at < g * n_held && np < EXPLAIN_WRITE_CHUNK && bytes < EXPLAIN_WRITE_BYTES; at++) {
                const int j = at / n_held, k = at % n_held;
                if (!held[k].targets) continue;   /* that method failed on the group */
                pending *pd = &pend[np++];
                memset(pd, 0, sizeof *pd);
                pd->ic = &ic[j];
                pd->m = xo->methods[k / tk];
                pd->r = k % tk;
                pd->maps = maps_of_image(&held[k], j, hw);
                pd->secs = held_secs[k];
                render_map(xo, cm, pd, map);
                bytes += (size_t)ic[j].orig.w * ic[j].orig.h * 3 + (size_t)hw * 3;
            }
#pragma omp parallel for schedule(dynamic) num_threads(io_threads)
            for (int q = 0; q < np; q++) write_map_pngs(xo, cm, &pend[q]);
            /* the chunk's records, appended once its files are in place: a row never names a
             * file that is not there, and a killed run keeps the rows of every finished chunk */
            char *csv_text = NULL, *jl_text = NULL;
            size_t csv_len = 0, jl_len = 0;
            FILE *csv_f = open_memstream(&csv_text, &csv_len), *jl_f = open_memstream(&jl_text, &jl_len);
            if (!csv_f || !jl_f) {
                cli_error("out of memory for the summary rows");
                stop = 1;
            }
            int write_failed = 0;
            for (int q = 0; q < np; q++) {
                if (!stop && finish_map(xo, cm, &pend[q], K, g, csv_f, jl_f)) failed++;
                else if (!stop) {
                    maps_written++;
                    wrote[pend[q].ic - ic] = 1;
                }
                write_failed |= pend[q].write_failed;
                free(pend[q].rgb);
                free(pend[q].heat);
            }
            if (csv_f) fclose(csv_f);
            if (jl_f) fclose(jl_f);
            if (!stop) {
                int bad = cli_records_append(&csv_r, csv_text, csv_len) != 0;
                if (!bad && cli_records_append(&jl_r, jl_text, jl_len)) {
                    cli_records_undo(&csv_r);   /* the two summaries keep the same rows */
                    bad = 1;
                }
                if (bad) {
                    failed++;
                    stop = 1;
                    cli_error("explain: stopping: the summaries cannot be written in %s; the files and summary rows "
                              "written so far are complete", xo->out);
                } else {
                    rows += np;
                    if (c->json) {   /* the same records on stdout (off the bar's line, on a terminal) */
                        cli_progress_hold();
                        fwrite(jl_text, 1, jl_len, stdout);
                        fflush(stdout);
                        cli_progress_release();
                    }
                }
            }
            free(csv_text);
            free(jl_text);
            if (write_failed && !stop) {
                /* the next files would fail as well (a full disk, a folder that went away) */
                cli_error("explain: stopping: a file could not be written in %s (see above); the files written so far "
                          "and their summary rows are complete", xo->out);
                stop = 1;
            }
        }
        for (int k = 0; k < n_held; k++) sal_maps_free(&held[k]);
        memset(held, 0, sizeof(sal_maps) * (size_t)n_held);
        int group_written = 0;
        for (int j = 0; j < g; j++) {
            sal_image_free(&ic[j].orig);
            group_written += wrote[j];
            wrote[j] = 0;
        }
        inputs_written += group_written;
        cli_progress_add(&pg, want, want - group_written);
        explained += g;
        if (fatal) break;
    }
done:
    cli_progress_end(&pg);
    if (cli_interrupted())
        cli_error("explain: interrupted (signal %d): stopped after %d of %d inputs; the files and summary rows written "
                  "so far in %s are complete", cli_interrupted(), inputs_written, n_inputs, xo->out);
    cli_records_close(&csv_r);
    cli_records_close(&jl_r);
    /* a run that explained nothing leaves no files behind (and no directory it created) */
    cli_outdir_close(&od, rows == 0);
    if (!c->quiet && rows > 0) {   /* the run in one line: what a long job ends with */
        const double secs = now_s() - t_start;
        fprintf(stderr, "salient: explained %d of %d inputs with %d method%s in %.1f s (%.2f inputs/s)%s; %d map%s in %s\n",
                inputs_written, n_inputs, xo->n_methods, xo->n_methods > 1 ? "s" : "", secs,
                secs > 0 ? inputs_written / secs : 0.0, failed ? ", with failures (see above)" : "", maps_written,
                maps_written == 1 ? "" : "s", xo->out);
    }
    free(x);
    free(logits);
    free(map);
    free(targets);
    free(tg);
    free(ic);
    free(loaded);
    free(load_msg);
    free(wrote);
    free(pend);
    free_stems(stems, n_inputs);
    free(held);
    free(held_secs);
    if (cli_interrupted()) return 128 + cli_interrupted();   /* as a shell reports a signal */
    return failed ? EXIT_FAIL : EXIT_OK;
}

/* --html: the page of the run's maps (html.c), when the run wrote its summary. -1 when it failed. */
static int write_html(const xopts *xo) {
    char path[4200];
    snprintf(path, sizeof path, "%s/summary.jsonl", xo->out);
    if (access(path, F_OK)) return 0;   /* nothing was explained: reported already */
    if (cli_html_write(xo->out)) return -1;
    fprintf(stderr, "salient: wrote %s/index.html\n", xo->out);
    return 0;
}

static int explain_or_bench(int argc, char **argv, int bench) {
    cli_common c;
    cli_common_init(&c);
    xopts xo;
    memset(&xo, 0, sizeof xo);
    xo.base = sal_explain_opts_default(SAL_M_SALIENCY);
    xo.alpha = SAL_OVERLAY_ALPHA;
    xo.opacity = -1;
    xo.topk = 1;
    xo.methods[0] = SAL_M_SALIENCY;
    xo.n_methods = 1;
    const char *baseline_arg = NULL;
    char **inputs = calloc((size_t)argc, sizeof(char *));
    int n_inputs = 0, rc = EXIT_USAGE, methods_given = 0, topk_given = 0, bench_images = 0, n_bad = 0, expanded = 0;
    double bench_min_time = 2.0, bench_max_time = 10.0;
    if (!inputs) return EXIT_FAIL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(bench ? bench_help_head : help_head, stdout);
            fputs(method_help, stdout);
            if (!bench) fputs(output_help, stdout);
            fputs(cli_common_help, stdout);
            free(inputs);
            return EXIT_OK;
        }
        int r = cli_common_parse(&c, argc, argv, &i);
        if (r < 0) goto out;
        if (r > 0) continue;
        static const char *flags[] = {"--no-relu", "--heatmap", "--raw", "--html", "--colorbar"};
        int is_flag = 0;
        for (size_t k = 0; k < sizeof flags / sizeof flags[0]; k++) is_flag |= !strcmp(a, flags[k]);
        if (is_flag && !(bench && (!strcmp(a, "--html") || !strcmp(a, "--colorbar")))) {
            if (!strcmp(a, "--no-relu")) xo.base.cam_relu = 0;
            else if (!strcmp(a, "--heatmap")) xo.heatmap = 1;
            else if (!strcmp(a, "--html")) xo.html = xo.colorbar = 1;   /* the page shows the bars */
            else if (!strcmp(a, "--colorbar")) xo.colorbar = 1;
            else xo.raw = 1;
            continue;
        }
        if (a[0] == '-' && a[1]) {
            static const char *with_value[] = {"-M", "--methods", "-o", "--out", "--target", "--topk", "--output",
                "--seed", "--samples", "--steps", "--method-batch", "--image-batch", "--noise", "--nt-inner", "--rule", "--baseline",
                "--window", "--stride", "--fill", "--layer", "--tokens", "--attention-layers", "--head-fusion", "--discard", "--reduce", "--clip", "--colormap", "--alpha", "--opacity",
                "--masks", "--grid", "--keep", "--stdev", "--coalitions", "--superpixels"};
            int known = 0;
            for (size_t k = 0; k < sizeof with_value / sizeof with_value[0]; k++) known |= !strcmp(a, with_value[k]);
            if (bench && (!strcmp(a, "--images") || !strcmp(a, "--min-time") || !strcmp(a, "--max-time"))) {
                if (i + 1 >= argc) { cli_error("%s needs a value", a); goto out; }
                const char *v = argv[++i];
                char *end = NULL;
                if (!strcmp(a, "--images")) {
                    long n = strtol(v, &end, 10);
                    if (*end || !*v || n < 1 || n > 4096) { cli_error("--images: expected 1..4096, got '%s'", v); goto out; }
                    bench_images = (int)n;
                } else {
                    double *t = a[3] == 'i' ? &bench_min_time : &bench_max_time;
                    *t = strtod(v, &end);
                    if (*end || !*v || !(*t >= 0 && *t <= 3600)) {
                        cli_error("%s: expected seconds in [0, 3600], got '%s'", a, v);
                        goto out;
                    }
                }
                continue;
            }
            if (!known) {
                const char *own[64];
                int n_own = 0;
                for (size_t k = 0; k < sizeof with_value / sizeof with_value[0]; k++) own[n_own++] = with_value[k];
                for (size_t k = 0; k < sizeof flags / sizeof flags[0]; k++) own[n_own++] = flags[k];
                if (bench) { own[n_own++] = "--images"; own[n_own++] = "--min-time"; }
                own[n_own++] = "--help";
                cli_unknown_option(bench ? "bench" : "explain", a, own, n_own);
                goto out;
            }
            if (i + 1 >= argc) { cli_error("%s needs a value", a); goto out; }
            const char *v = argv[++i];
            char *end = NULL;
            sal_error err = {0};
            if (!strcmp(a, "-M") || !strcmp(a, "--methods")) { if (parse_methods(&xo, v)) goto out; methods_given = 1; }
            else if (!strcmp(a, "-o") || !strcmp(a, "--out")) xo.out = v;
            else if (!strcmp(a, "--target")) xo.target = v;
            else if (!strcmp(a, "--topk")) {
                xo.topk = (int)strtol(v, &end, 10);
                if (*end || xo.topk < 1) { cli_error("--topk: expected a positive integer, got '%s'", v); goto out; }
                topk_given = 1;
            } else if (!strcmp(a, "--output")) {
                if (!strcmp(v, "prob")) xo.base.explain_prob = 1;
                else if (!strcmp(v, "logit") || !strcmp(v, "logits")) xo.base.explain_prob = 0;
                else { cli_error("--output: expected logit or prob, got '%s'", v); goto out; }
            } else if (!strcmp(a, "--seed")) {
                xo.base.seed = strtoull(v, &end, 10);
                if (*end || !*v) { cli_error("--seed: expected a non-negative integer, got '%s'", v); goto out; }
            } else if (!strcmp(a, "--image-batch")) {
                long n = strtol(v, &end, 10);
                if (*end || !*v || n < 1 || n > 4096) { cli_error("--image-batch: expected 1..4096, got '%s'", v); goto out; }
                xo.image_batch = (int)n;
            } else if (!strcmp(a, "--samples") || !strcmp(a, "--steps") || !strcmp(a, "--method-batch")) {
                long n = strtol(v, &end, 10);
                if (*end || !*v || n < 1 || n > 1000000) { cli_error("%s: expected a positive integer, got '%s'", a, v); goto out; }
                if (a[2] == 's' && a[3] == 'a') xo.base.nt_samples = xo.base.shap_samples = (int)n;
                else if (a[2] == 's') xo.base.ig_steps = (int)n;
                else xo.base.batch = (int)n;
            } else if (!strcmp(a, "--masks") || !strcmp(a, "--grid") || !strcmp(a, "--coalitions") ||
                       !strcmp(a, "--superpixels")) {
                long n = strtol(v, &end, 10);
                int lo = !strcmp(a, "--superpixels") ? 0 : 1;
                if (*end || !*v || n < lo || n > 10000000) { cli_error("%s: expected an integer >= %d, got '%s'", a, lo, v); goto out; }
                if (!strcmp(a, "--masks")) xo.base.rise_masks = (int)n;
                else if (!strcmp(a, "--grid")) xo.base.rise_grid = xo.base.kshap_grid = (int)n;
                else if (!strcmp(a, "--coalitions")) xo.base.kshap_coalitions = (int)n;
                else xo.base.kshap_superpixels = (int)n;
            } else if (!strcmp(a, "--keep") || !strcmp(a, "--stdev")) {
                float f = strtof(v, &end);
                if (*end || !*v || !(f >= 0) || (a[2] == 'k' && !(f > 0 && f <= 1))) {
                    cli_error("%s: expected %s, got '%s'", a, a[2] == 'k' ? "a probability in (0,1]" : "a non-negative number", v);
                    goto out;
                }
                if (a[2] == 'k') xo.base.rise_p = f;
                else xo.base.shap_stdev = f;
            } else if (!strcmp(a, "--noise")) {
                xo.base.nt_sigma = strtof(v, &end);
                if (*end || !(xo.base.nt_sigma >= 0)) { cli_error("--noise: expected a non-negative number, got '%s'", v); goto out; }
            } else if (!strcmp(a, "--nt-inner")) {
                if (sal_method_parse(v, &xo.base.nt_inner)) {
                    static const char *const inner[] = {"saliency", "inputxgrad", "ig", "guided"};
                    cli_unknown("--nt-inner method", v, inner, 4, NULL);
                    goto out;
                }
            } else if (!strcmp(a, "--rule")) {
                static const char *rules[] = {"gausslegendre", "riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid"};
                int k = 0;
                while (k < 5 && strcmp(v, rules[k])) k++;
                if (k == 5) { cli_error("--rule: expected one of gausslegendre, riemann_left, riemann_right, riemann_middle, riemann_trapezoid; got '%s'", v); goto out; }
                xo.base.ig_rule = (sal_ig_rule)k;
            } else if (!strcmp(a, "--baseline")) {
                if (!strcmp(v, "zero")) xo.base.baseline = SAL_BASELINE_ZERO;
                else if (!strcmp(v, "black")) xo.base.baseline = SAL_BASELINE_BLACK;
                else if (!strcmp(v, "blur")) xo.base.baseline = SAL_BASELINE_BLUR;
                else if (!strcmp(v, "uniform")) xo.base.baseline = SAL_BASELINE_UNIFORM;
                else { xo.base.baseline = SAL_BASELINE_USER; baseline_arg = v; }
            } else if (!strcmp(a, "--window")) { if (parse_hw(a, v, &xo.base.occ_h, &xo.base.occ_w)) goto out; }
            else if (!strcmp(a, "--stride")) { if (parse_hw(a, v, &xo.base.occ_stride_h, &xo.base.occ_stride_w)) goto out; }
            else if (!strcmp(a, "--fill")) {
                if (!strcmp(v, "zero")) xo.base.occ_fill = 0;
                else if (!strcmp(v, "mean")) xo.base.occ_fill = 1;
                else if (!strcmp(v, "blur")) xo.base.occ_fill = 2;
                else { cli_error("--fill: expected zero, mean or blur, got '%s'", v); goto out; }
            } else if (!strcmp(a, "--layer")) xo.base.layer = v;
            else if (!strcmp(a, "--attention-layers")) xo.base.attention_layers = v;
            else if (!strcmp(a, "--discard")) {
                xo.base.rollout_discard = strtof(v, &end);
                if (*end || !*v || !(xo.base.rollout_discard >= 0.0f && xo.base.rollout_discard < 1.0f)) {
                    cli_error("--discard: expected a fraction in [0, 1), got '%s'", v);
                    goto out;
                }
            } else if (!strcmp(a, "--head-fusion")) {
                if (!strcmp(v, "mean")) xo.base.head_fusion = SAL_FUSE_MEAN;
                else if (!strcmp(v, "max")) xo.base.head_fusion = SAL_FUSE_MAX;
                else if (!strcmp(v, "min")) xo.base.head_fusion = SAL_FUSE_MIN;
                else { cli_error("--head-fusion: expected mean, max or min, got '%s'", v); goto out; }
            }
            else if (!strcmp(a, "--tokens")) { if (parse_hw(a, v, &xo.base.tokens_h, &xo.base.tokens_w)) goto out; }
            else if (!strcmp(a, "--reduce")) {
                if (sal_reduce_parse(v, &xo.reduce, &err)) { cli_error("--reduce: %s", err.msg); goto out; }
                xo.have_reduce = 1;
            } else if (!strcmp(a, "--clip")) {
                xo.clip = strtod(v, &end);
                if (*end || !(xo.clip > 0 && xo.clip <= 100)) { cli_error("--clip: expected a percentile in (0,100], got '%s'", v); goto out; }
                xo.have_clip = 1;
            } else if (!strcmp(a, "--colormap")) {
                if (sal_colormap_parse(v, &xo.cmap, &err)) { cli_error("--colormap: %s", err.msg); goto out; }
                xo.have_cmap = 1;
            } else if (!strcmp(a, "--opacity")) {
                if (!strcmp(v, "map")) xo.opacity = 1;
                else if (!strcmp(v, "constant")) xo.opacity = 0;
                else {
                    static const char *const modes[] = {"map", "constant"};
                    cli_unknown("--opacity mode", v, modes, 2, NULL);
                    goto out;
                }
            } else if (!strcmp(a, "--alpha")) {
                xo.alpha = strtof(v, &end);
                if (*end || !(xo.alpha >= 0 && xo.alpha <= 1)) { cli_error("--alpha: expected a number in [0,1], got '%s'", v); goto out; }
                xo.have_alpha = 1;
            } else { cli_error("explain: unknown option '%s'", a); goto out; }
            continue;
        }
        inputs[n_inputs++] = argv[i];
    }
    if (bench && !c.model) { cli_error("bench: needs -m MODEL.onnx (see salient bench --help)"); goto out; }
    if (!bench && (!c.model || !n_inputs || !xo.out)) {
        cli_error("explain: needs -m MODEL.onnx, at least one input and -o OUTDIR (see salient explain --help)");
        goto out;
    }
    if (!bench && cli_check_output(xo.out, inputs, n_inputs)) goto out;
    if (xo.target && topk_given) {
        cli_error("--target and --topk together: explain one given class (--target) or each of the top K (--topk), not both");
        goto out;
    }
    if (bench && !methods_given) parse_methods(&xo, bench_default_methods);
    /* Everything that can be checked is checked before OUTDIR or any file in it is created. */
    rc = EXIT_FAIL;
    {   /* folders stand for the inputs in them */
        char **files;
        int n_files;
        int r = cli_expand_inputs(inputs, n_inputs, bench ? NULL : xo.out, &files, &n_files, &n_bad);
        if (r == -2) rc = EXIT_USAGE;
        if (r) goto out;
        free(inputs);
        inputs = files;
        n_inputs = n_files;
        expanded = 1;
        if (bench && n_bad) { cli_error("bench: stopping: an input folder could not be used"); goto out; }
    }
    cli_model cm;
    if (cli_model_open(&cm, &c)) goto out;
    if (sal_session_plan(cm.s, 1, cm.h, cm.w)) { cli_error("%s", sal_session_error(cm.s)); cli_model_close(&cm); goto out; }
    int K = sal_session_num_classes(cm.s);
    int fixed_target = -1;
    if (xo.target) {
        char *end;
        long t = strtol(xo.target, &end, 10);
        int by_name = *end || !*xo.target;
        if (by_name) t = cm.labels ? sal_labels_find(cm.labels, cm.n_labels, xo.target) : -1;
        if (t < 0 || t >= K) {
            const char *near = by_name && cm.labels ? cli_closest(xo.target, (const char *const *)cm.labels, cm.n_labels) : NULL;
            if (near)
                cli_error("--target %s: no class has this name: did you mean '%s'? (class names: salient info, or the labels file)",
                          xo.target, near);
            else if (by_name)
                cli_error("--target %s: %s", xo.target, cm.labels ? "no class has this name (class names: the labels file)" : "no class has this name (the model has no labels: give --labels FILE)");
            else
                cli_error("--target %s: out of range: the model has %d classes (0..%d)", xo.target, K, K - 1);
            cli_model_close(&cm);
            rc = EXIT_USAGE;
            goto out;
        }
        fixed_target = (int)t;
    }
    if (check_methods(&xo, &cm, c.quiet)) { cli_model_close(&cm); rc = EXIT_USAGE; goto out; }
    if (baseline_arg) {
        float *data = NULL;
        int nd;
        int64_t d[SAL_MAX_DIMS];
        sal_error err = {0};
        if (sal_npy_read(baseline_arg, &data, &nd, d, &err)) { cli_error("--baseline: %s", err.msg); cli_model_close(&cm); goto out; }
        if (nd != 3 || d[0] != cm.c || d[1] != cm.h || d[2] != cm.w) {
            cli_error("--baseline %s: expected a (%d,%d,%d) float32 array", baseline_arg, cm.c, cm.h, cm.w);
            free(data);
            cli_model_close(&cm);
            goto out;
        }
        xo.baseline_npy = data;
        xo.base.baseline_data = data;
    }
    /* black baseline: the preprocessing of a black pixel */
    for (int k = 0; k < 3; k++) xo.base.black_value[k] = (0.0f - cm.prep.mean[k < cm.c ? k : 0]) / cm.prep.std[k < cm.c ? k : 0];
    cli_device_note(&cm);
    if (bench) {
        if (!bench_images) bench_images = strcmp(sal_session_device(cm.s), "cuda") ? 8 : 64;
        rc = run_bench(&xo, &c, &cm, inputs, n_inputs, bench_images, bench_min_time, bench_max_time);
        free(xo.baseline_npy);
        cli_model_close(&cm);
        goto out;
    }
    rc = run_explain(&xo, &c, &cm, inputs, n_inputs, n_bad, fixed_target);
    if (xo.html && write_html(&xo) && rc == EXIT_OK) rc = EXIT_FAIL;
    free(xo.baseline_npy);
    cli_model_close(&cm);
out:
    if (expanded) cli_free_inputs(inputs, n_inputs);
    else free(inputs);
    return rc;
}

int cmd_explain(int argc, char **argv) { return explain_or_bench(argc, argv, 0); }
int cmd_bench(int argc, char **argv) { return explain_or_bench(argc, argv, 1); }

/* ------------------------------------------------------------------------------------------------ */
/* salient bench                                                                                    */


/* Per method: one untimed call on one image (plans the session), then calls on all n_images
 * images at once (the library batches them internally) until min_time seconds and at least one
 * call were measured. Prints images/s, ms/image, the internal batch and, on a GPU, the device
 * memory in use. Inputs: the given files cycled to fill n_images, else fixed pseudo-random images
 * (uniform in [-2, 2], the scale of normalized pixels). */
static int run_bench(const xopts *xo, const cli_common *c, cli_model *cm, char **inputs, int n_inputs,
                     int n_images, double min_time, double max_time) {
    int64_t per = (int64_t)cm->c * cm->h * cm->w;
    float *x = malloc(sizeof(float) * (size_t)(per * n_images));
    if (!x) { cli_error("out of memory for %d images", n_images); return EXIT_FAIL; }
    if (n_inputs) {
        for (int i = 0; i < n_images; i++)
            if (i < n_inputs) { if (cli_load_input(cm, inputs[i], x + i * per, NULL, NULL, 0)) { free(x); return EXIT_FAIL; } }
            else memcpy(x + i * per, x + (int64_t)(i % n_inputs) * per, sizeof(float) * (size_t)per);
    } else {
        uint64_t st = 0x5a11e47ULL;
        for (int64_t j = 0; j < per * n_images; j++) {
            st = st * 6364136223846793005ULL + 1442695040888963407ULL;
            x[j] = -2.0f + 4.0f * (float)((st >> 40) * (1.0 / 16777216.0));
        }
    }
    const char *dev = sal_session_device(cm->s);
    int on_gpu = !strcmp(dev, "cuda");
    if (!c->json)
        printf("salient bench: %s on %s, %d images (%s), %dx%d input; per method: one untimed call on 1 image, then "
               "calls for at least %.1f s (a method slower than %.0f s per call is timed on fewer images)\n",
               c->model, dev, n_images, n_inputs ? "from the inputs" : "random", cm->h, cm->w, min_time, max_time);
    double peak = 0;   /* the device's FP32 GEMM rate, the yardstick for the conv-heavy methods */
    if (sal_session_peak_gflops(cm->s, 0, &peak)) peak = 0;
    if (!c->json) {
        if (peak > 0) printf("device FP32 SGEMM rate (measured): %.1f GFLOP/s\n", peak);
        printf("%-16s %12s %12s %8s %6s %10s %8s %9s %9s %s\n", "method", "images/s", "ms/image", "batch", "calls",
               "GFLOP/s", "of peak", "MB up/img", "MB dn/img", on_gpu ? "device MiB in use" : "");
    } else if (peak > 0) {
        printf("{\"device\": \"%s\", \"peak_sgemm_gflops\": %.4g}\n", dev, peak);
    }
    int failed = 0;
    cli_progress pg;
    cli_progress_start(&pg, "bench", "methods", xo->n_methods, c->quiet);
    for (int mi = 0; mi < xo->n_methods; mi++) {
        sal_explain_opts o = xo->base;
        o.method = xo->methods[mi];
        o.progress = cli_progress_sal;
        o.progress_user = &pg;
        cli_progress_stage(&pg, "%s (first call, 1 image)", sal_method_name(o.method));
        cli_progress_span(&pg, 0, 0.5);
        sal_maps mp;
        double t1 = now_s();
        if (sal_explain(cm->s, &o, x, 1, cm->h, cm->w, NULL, &mp)) {
            cli_error("bench: %s: %s", sal_method_name(o.method), sal_session_error(cm->s));
            failed++;
            cli_progress_add(&pg, 1, 1);
            continue;
        }
        t1 = now_s() - t1;
        sal_maps_free(&mp);
        /* a slow method is timed on fewer images, so that one call takes about max_time at most:
         * the whole bench stays bounded (the header says how) */
        int n_timed = n_images;
        if (t1 * n_images > max_time) n_timed = t1 > 0 && max_time / t1 >= 1 ? (int)(max_time / t1) : 1;
        if (n_timed < n_images && !c->quiet)
            cli_error("note: bench: %s takes %.1f s per image: timed on %d image%s instead of %d", sal_method_name(o.method),
                      t1, n_timed, n_timed == 1 ? "" : "s", n_images);
        double total = 0, f0 = sal_session_flops(cm->s);
        uint64_t up0, dn0, up1, dn1;
        sal_session_transfers(cm->s, &up0, &dn0);
        int calls = 0, batch = 0;
        sal_status st = SAL_OK;
        cli_progress_stage(&pg, "%s (timed, %d image%s)", sal_method_name(o.method), n_timed, n_timed == 1 ? "" : "s");
        while (!st && (calls == 0 || total < min_time)) {
            cli_progress_span(&pg, 0.5, 0.5);
            double t0 = now_s();
            st = sal_explain(cm->s, &o, x, n_timed, cm->h, cm->w, NULL, &mp);
            total += now_s() - t0;
            if (!st) { batch = mp.batch; sal_maps_free(&mp); calls++; }
        }
        cli_progress_add(&pg, 1, st != SAL_OK);
        if (st) {
            cli_error("bench: %s: %s", sal_method_name(o.method), sal_session_error(cm->s));
            failed++;
            continue;
        }
        double ips = calls * (double)n_timed / total;
        sal_session_transfers(cm->s, &up1, &dn1);
        double mb_up = (double)(up1 - up0) / (calls * (double)n_timed) * 1e-6;   /* to / from the device */
        double mb_dn = (double)(dn1 - dn0) / (calls * (double)n_timed) * 1e-6;
        double gfs = (sal_session_flops(cm->s) - f0) / total * 1e-9;   /* conv/matmul FLOPs only */
        size_t avail = 0, tot = 0;
        long used_mib = on_gpu && !sal_session_mem_info(cm->s, &avail, &tot) ? (long)((tot - avail) >> 20) : -1;
        cli_progress_hold();   /* the row goes where the bar was, on a terminal */
        if (c->json) {
            printf("{\"method\": \"%s\", \"device\": \"%s\", \"images\": %d, \"calls\": %d, \"seconds\": %.4f, "
                   "\"images_per_s\": %.4g, \"ms_per_image\": %.4g, \"batch\": %d, \"gflops\": %.4g",
                   sal_method_name(o.method), dev, n_timed, calls, total, ips, 1e3 / ips, batch, gfs);
            if (peak > 0) printf(", \"fraction_of_peak\": %.4g", gfs / peak);
            printf(", \"mb_to_device_per_image\": %.4g, \"mb_from_device_per_image\": %.4g", mb_up, mb_dn);
            if (used_mib >= 0) printf(", \"device_mib_in_use\": %ld", used_mib);
            printf("}\n");
        } else {
            printf("%-16s %12.2f %12.2f %8d %6d %10.1f", sal_method_name(o.method), ips, 1e3 / ips, batch, calls, gfs);
            if (peak > 0) printf(" %7.1f%%", 100 * gfs / peak);
            else printf(" %8s", "-");
            printf(" %9.2f %9.2f", mb_up, mb_dn);
            if (used_mib >= 0) printf(" %ld", used_mib);
            if (n_timed < n_images) printf("  (timed on %d image%s: slow)", n_timed, n_timed == 1 ? "" : "s");
            printf("\n");
        }
        fflush(stdout);
        cli_progress_release();
    }
    cli_progress_end(&pg);
    free(x);
    return failed ? EXIT_FAIL : EXIT_OK;
}
