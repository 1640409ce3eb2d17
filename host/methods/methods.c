/* methods.c — the attribution methods' common room: names and defaults, Integrated Gradients'
 * quadrature, the batched passes in the backend's memory that every method is written against
 * (sal_method_pass_dev, sal_method_passes, the method primitives' calls, progress), baselines,
 * and the entry points (sal_explain_impl: option checks, targets, dispatch to a family;
 * sal_explain_many_impl: methods sharing passes). The families have their own files:
 * gradient.c (saliency, input x gradient, guided backprop, IG, NoiseTunnel), occlusion.c, cam.c
 * (the CAM family and the one-pass sharing), perturb.c (RISE, GradientSHAP, KernelSHAP) and
 * attention.c (rollout, Chefer). Batches are built, gradients consumed and accumulators kept in
 * the session backend's memory: on a GPU only logits, scores and finished maps cross the bus; on
 * the CPU backend the same primitives run on host memory.
 *
 * Conventions (the field's, Captum's and pytorch-grad-cam's where they define one):
 *  - targets default to the top-1 class; logits are explained unless explain_prob is set;
 *  - input-space attributions are (C,H,W) per image, before any reduction or normalization;
 *  - CAM attributions are (h,w) at the layer's resolution, plus a bilinear upsampling to (H,W). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "methods.h"
#include "method_prims.h"

/* ------------------------------------------------------------------------------------------------ */
/* Names and defaults                                                                               */

static const char *method_names[SAL_M_COUNT] = {
    "saliency", "inputxgrad", "smoothgrad", "smoothgrad_sq", "vargrad", "ig", "guided",
    "occlusion", "gradcam", "gradcam++", "hirescam", "xgradcam", "layercam", "scorecam",
    "guided-gradcam", "rise", "gradshap", "kernelshap", "rollout", "chefer",
};

sal_status sal_method_parse(const char *name, sal_method *m) {
    for (int i = 0; i < SAL_M_COUNT; i++)
        if (name && strcasecmp(name, method_names[i]) == 0) { *m = (sal_method)i; return SAL_OK; }
    return SAL_ERR_INVALID_ARG;
}

const char *sal_method_name(sal_method m) {
    return m >= 0 && m < SAL_M_COUNT ? method_names[m] : "unknown";
}

int sal_method_is_cam(sal_method m) {
    return (m >= SAL_M_GRADCAM && m <= SAL_M_SCORECAM) || m == SAL_M_ROLLOUT || m == SAL_M_CHEFER;
}

sal_explain_opts sal_explain_opts_default(sal_method m) {
    sal_explain_opts o;
    memset(&o, 0, sizeof o);
    o.method = m;
    o.seed = 0;
    o.nt_inner = SAL_M_SALIENCY;
    o.nt_samples = 50;
    o.nt_sigma = 0.15f;
    o.ig_steps = 50;
    o.ig_rule = SAL_IG_GAUSSLEGENDRE;
    o.baseline = SAL_BASELINE_ZERO;
    o.black_value[0] = -0.485f / 0.229f;   /* ImageNet preprocessing of 0 */
    o.black_value[1] = -0.456f / 0.224f;
    o.black_value[2] = -0.406f / 0.225f;
    o.blur_radius = 10;
    o.occ_h = o.occ_w = 15;
    o.occ_stride_h = o.occ_stride_w = 8;
    o.cam_relu = 1;
    o.rise_masks = 4000;
    o.rise_grid = 7;
    o.rise_p = 0.5f;
    o.shap_samples = 50;
    o.kshap_grid = 8;
    o.kshap_coalitions = 1000;
    return o;
}

int64_t sal_maps_per_image(const sal_maps *m) {
    int64_t per = 1;
    for (int d = 0; d < m->ndim; d++) per *= m->dims[d];
    return per;
}

void sal_maps_free(sal_maps *m) {
    if (!m) return;
    free(m->attr);
    free(m->upsampled);
    free(m->targets);
    free(m->scores);
    free(m->completeness);
    free(m->delta);
    memset(m, 0, sizeof *m);
}

/* ------------------------------------------------------------------------------------------------ */
/* Quadrature for Integrated Gradients (Captum's rules)                                              */

sal_status sal_ig_rule_points(sal_ig_rule rule, int n, double *alpha, double *weight) {
    if (n < 1 || (rule == SAL_IG_RIEMANN_TRAPEZOID && n < 2)) return SAL_ERR_INVALID_ARG;
    switch (rule) {
    case SAL_IG_GAUSSLEGENDRE:
        /* nodes of P_n by Newton's method from Chebyshev guesses, mapped from [-1,1] to [0,1] */
        for (int i = 0; i < n; i++) {
            double x = cos(3.14159265358979323846 * (i + 0.75) / (n + 0.5)), dp = 1;
            for (int it = 0; it < 100; it++) {
                double p0 = 1, p1 = x;
                for (int k = 2; k <= n; k++) {
                    double p2 = ((2.0 * k - 1) * x * p1 - (k - 1.0) * p0) / k;
                    p0 = p1;
                    p1 = p2;
                }
                if (n == 1) { p1 = x; p0 = 1; }
                dp = n * (x * p1 - p0) / (x * x - 1);
                double dx = p1 / dp;
                x -= dx;
                if (fabs(dx) < 1e-15) break;
            }
            {   /* recompute the derivative at the converged node */
                double p0 = 1, p1 = x;
                for (int k = 2; k <= n; k++) {
                    double p2 = ((2.0 * k - 1) * x * p1 - (k - 1.0) * p0) / k;
                    p0 = p1;
                    p1 = p2;
                }
                dp = n == 1 ? 1 : n * (x * p1 - p0) / (x * x - 1);
            }
            double w = 2 / ((1 - x * x) * dp * dp);
            alpha[n - 1 - i] = 0.5 * (1 + x);   /* ascending like numpy's leggauss */
            weight[n - 1 - i] = 0.5 * w;
        }
        return SAL_OK;
    case SAL_IG_RIEMANN_LEFT:
    case SAL_IG_RIEMANN_RIGHT:
    case SAL_IG_RIEMANN_MIDDLE:
        for (int i = 0; i < n; i++) {
            double off = rule == SAL_IG_RIEMANN_LEFT ? 0 : rule == SAL_IG_RIEMANN_RIGHT ? 1 : 0.5;
            alpha[i] = (i + off) / n;
            weight[i] = 1.0 / n;
        }
        return SAL_OK;
    case SAL_IG_RIEMANN_TRAPEZOID:
        /* Captum's weights: 1/n with the two ends halved (they sum to (n-1)/n, not 1) */
        for (int i = 0; i < n; i++) {
            alpha[i] = (double)i / (n - 1);
            weight[i] = (i == 0 || i == n - 1) ? 0.5 / n : 1.0 / n;
        }
        return SAL_OK;
    }
    return SAL_ERR_INVALID_ARG;
}

/* ------------------------------------------------------------------------------------------------ */
/* Batched passes                                                                                   */

/* Softmax probability p_t of class t from logits z (k), and, when seed is not NULL, the seed that
 * explains it: d p_t / d z = p_t (e_t - p). */
static float prob_seed(const float *z, int k, int t, float *seed) {
    double mx = z[0], sum = 0;
    for (int j = 1; j < k; j++) if (z[j] > mx) mx = z[j];
    for (int j = 0; j < k; j++) sum += exp(z[j] - mx);
    double pt = exp(z[t] - mx) / sum;
    if (seed) {
        for (int j = 0; j < k; j++) seed[j] = (float)(-pt * exp(z[j] - mx) / sum);
        seed[t] += (float)pt;
    }
    return (float)pt;
}

float sal_prob_seed(const float *z, int k, int t, float *seed) { return prob_seed(z, k, t, seed); }

/* ------------------------------------------------------------------------------------------------ */
/* Batches in the backend's memory                                                                  */


/* One method primitive (kernels/method_prims.h) on the session's backend. */
sal_status sal_mp(sal_method_ctx *cx, int fn, int64_t count, const sal_mp_args *a) {
    return bk(cx)->ops->prim(bk(cx), fn, count, a, serr(cx));
}

/* bytes of zeroed backend memory; NULL (and the session's error set) when there is none */
void *sal_dalloc(sal_method_ctx *cx, size_t bytes) {
    void *p = sal_session_scratch(cx->s, bytes);
    sal_error e = {0};
    if (p && bk(cx)->ops->zero(bk(cx), p, bytes ? bytes : 4, &e)) {
        sal_session_scratch_put(cx->s, p);
        sal_fail(serr(cx), SAL_ERR_DEVICE, "clearing a %zu-byte method buffer: %s", bytes,
                 e.msg[0] ? e.msg : sal_status_str(SAL_ERR_DEVICE));
        return NULL;
    }
    return p;
}
void sal_dfree(sal_method_ctx *cx, const void *p) { sal_session_scratch_put(cx->s, p); }
/* A backend copy's failure as the session's error, with what the method was doing. */
static sal_status dcopy_fail(sal_method_ctx *cx, sal_status st, const char *what, size_t bytes, const sal_error *e) {
    return sal_fail(serr(cx), st, "%s %zu bytes on the %s backend: %s", what, bytes, bk(cx)->ops->name,
                    e->msg[0] ? e->msg : sal_status_str(st));
}
sal_status sal_dput(sal_method_ctx *cx, void *dst, const void *src, size_t bytes) {
    sal_error e = {0};
    sal_status st = sal_backend_upload(bk(cx), dst, src, bytes, &e);
    return st ? dcopy_fail(cx, st, "copying in", bytes, &e) : SAL_OK;
}
sal_status sal_dget(sal_method_ctx *cx, void *dst, const void *src, size_t bytes) {
    sal_error e = {0};
    sal_status st = sal_backend_download(bk(cx), dst, src, bytes, &e);
    return st ? dcopy_fail(cx, st, "copying out", bytes, &e) : SAL_OK;
}
sal_status sal_dzero(sal_method_ctx *cx, void *dst, size_t bytes) {
    sal_error e = {0};
    sal_status st = bk(cx)->ops->zero(bk(cx), dst, bytes, &e);
    return st ? dcopy_fail(cx, st, "clearing", bytes, &e) : SAL_OK;
}

/* The class of the largest logit of z (k); ties: the lower class. */
int sal_top1_of(const float *z, int k) {
    int best = 0;
    for (int j = 1; j < k; j++) if (z[j] > z[best]) best = j;
    return best;
}

static sal_status pass_dev_once(sal_method_ctx *cx, int first, int nb, const int *tg, int guided,
                                const sal_dev_io *io, float *scores) {
    sal_session *s = cx->s;
    int k = cx->k, grad = io->take != NULL;
    float *din = NULL;
    sal_status st = sal_session_dev_plan(s, nb, cx->h, cx->w, grad, -1, &din);
    if (st) return st;
    float *logits = malloc(sizeof(float) * (size_t)nb * (size_t)k);
    float *seed = grad ? calloc((size_t)nb * (size_t)k, sizeof(float)) : NULL;
    if (!logits || (grad && !seed)) st = sal_fail(serr(cx), SAL_ERR_NOMEM, "out of host memory");
    if (!st) st = io->fill(io->ctx, din, first, nb);
    if (!st) st = sal_session_dev_launch(s);
    if (!st && io->launched) st = io->launched(io->ctx, first, nb);
    if (!st) st = sal_session_dev_logits(s, logits);
    for (int i = 0; !st && i < nb; i++) {
        const float *z = logits + (size_t)i * k;
        float *si = seed ? seed + (size_t)i * k : NULL;
        int t = tg[i];
        if (t < 0) {   /* deferred top-1 (cx->top1_out): this pass's own logits of the image */
            if (!cx->top1_out)
                st = sal_fail(serr(cx), SAL_ERR_INTERNAL, "item %d of a pass has no target", first + i);
            t = sal_top1_of(z, k);
            if (!st) cx->top1_out[first + i] = t;
        }
        if (st) break;
        scores[i] = cx->o->explain_prob ? prob_seed(z, k, t, si) : z[t];
        if (si && !cx->o->explain_prob) si[t] = 1.0f;
    }
    if (!st && grad) st = sal_session_dev_backward(s, seed, guided, 0);
    if (!st && grad) st = io->take(io->ctx, sal_session_dev_input_grad(s), din, first, nb);
    free(logits);
    free(seed);
    return st ? st : sal_method_progress(cx, nb, 0);
}

sal_status sal_method_pass_dev(sal_method_ctx *cx, int first, int nb, const int *tg, int guided,
                               const sal_dev_io *io, float *scores) {
    sal_status st = pass_dev_once(cx, first, nb, tg, guided, io, scores);
    if (st != SAL_ERR_NOMEM || nb < 2) return st;
    int h = nb / 2;
    if (cx->batch > h) cx->batch = h;
    st = sal_method_pass_dev(cx, first, h, tg, guided, io, scores);
    if (!st) st = sal_method_pass_dev(cx, first + h, nb - h, tg + h, guided, io, scores + h);
    return st;
}

static double mono_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static sal_status progress_report(sal_method_ctx *cx) {
    cx->prog_last = mono_s();
    if (cx->o->progress(&cx->prog, cx->o->progress_user))
        return sal_fail(serr(cx), SAL_ERR_CANCELLED, "%s: cancelled by the progress callback after %lld of %lld passes",
                        sal_method_name(cx->prog.method), (long long)cx->prog.done, (long long)cx->prog.total);
    return SAL_OK;
}

sal_status sal_method_progress_start(sal_method_ctx *cx, int64_t total) {
    if (!cx->o->progress || cx->prog.total > 0) return SAL_OK;
    cx->prog.total = total > 0 ? total : 1;
    cx->prog.done = 0;
    return progress_report(cx);
}

sal_status sal_method_progress(sal_method_ctx *cx, int64_t passes, int force) {
    if (!cx->o->progress || cx->prog.total <= 0) return SAL_OK;
    cx->prog.done += passes;
    if (!force && mono_s() - cx->prog_last < SAL_PROGRESS_INTERVAL_MS * 1e-3) return SAL_OK;
    return progress_report(cx);
}

/* Images already in the backend's memory, one after the other: item k is d + k*per. */
typedef struct items_io {
    sal_method_ctx *cx;
    const float *d;
} items_io;

static sal_status items_fill(void *ctx, float *din, int first, int nb) {
    items_io *it = ctx;
    sal_mp_args a = sal_mp_base(it->cx);
    a.in = it->d + (int64_t)first * it->cx->per;
    a.out = din;
    return sal_mp(it->cx, SAL_MP_copy, (int64_t)nb * it->cx->per, &a);
}

sal_status sal_method_scores(sal_method_ctx *cx, const float *d, int n, const int *tg, float *scores) {
    items_io it = {cx, d};
    sal_dev_io io = {items_fill, NULL, &it, NULL};
    return sal_method_passes(cx, n, tg, 0, &io, scores, 1);
}

sal_status sal_method_passes(sal_method_ctx *cx, int n, const int *tg, int guided, const sal_dev_io *io,
                             float *scores, int per_item) {
    sal_status st = SAL_OK;
    for (int i0 = 0, nb = 0; !st && i0 < n; i0 += nb) {   /* nb: a retry may shrink cx->batch */
        nb = n - i0 < cx->batch ? n - i0 : cx->batch;
        st = sal_method_pass_dev(cx, i0, nb, per_item ? tg + i0 : tg, guided, io, per_item ? scores + i0 : scores);
    }
    return st;
}

/* The geometry every primitive reads. */
sal_mp_args sal_mp_base(const sal_method_ctx *cx) {
    sal_mp_args a;
    memset(&a, 0, sizeof a);
    a.per = cx->per;
    a.hw = (int64_t)cx->h * cx->w;
    a.c = cx->c;
    a.h = cx->h;
    a.w = cx->w;
    a.seed = cx->o->seed;
    return a;
}


sal_status sal_prim_fill(void *ctx, float *din, int first, int nb) {
    sal_prim_io *p = ctx;
    sal_mp_args a = p->a;
    a.out = din;
    a.k0 = first;
    a.nb = nb;
    return sal_mp(p->cx, p->fill_fn, (int64_t)nb * a.per, &a);
}

sal_status sal_prim_take(void *ctx, const float *grad, const float *din, int first, int nb) {
    sal_prim_io *p = ctx;
    if (!grad) return SAL_OK;   /* the score does not depend on the input: nothing to add */
    sal_mp_args a = p->a;
    a.in = grad;
    a.in2 = din;
    a.k0 = first;
    a.nb = nb;
    return sal_mp(p->cx, p->take_fn, a.per, &a);
}

/* ------------------------------------------------------------------------------------------------ */
/* Baselines                                                                                        */

void sal_box_blur(const float *x, int c, int h, int w, int r, float *out) {
    float *tmp = malloc(sizeof(float) * (size_t)h * w);
    if (!tmp) { memcpy(out, x, sizeof(float) * (size_t)c * h * w); return; }
    for (int ch = 0; ch < c; ch++) {
        const float *src = x + (size_t)ch * h * w;
        float *dst = out + (size_t)ch * h * w;
        for (int y = 0; y < h; y++)
            for (int i = 0; i < w; i++) {
                double s = 0;
                int lo = i - r < 0 ? 0 : i - r, hi = i + r >= w ? w - 1 : i + r;
                for (int j = lo; j <= hi; j++) s += src[y * w + j];
                tmp[y * w + i] = (float)(s / (hi - lo + 1));
            }
        for (int y = 0; y < h; y++)
            for (int i = 0; i < w; i++) {
                double s = 0;
                int lo = y - r < 0 ? 0 : y - r, hi = y + r >= h ? h - 1 : y + r;
                for (int j = lo; j <= hi; j++) s += tmp[j * w + i];
                dst[y * w + i] = (float)(s / (hi - lo + 1));
            }
    }
    free(tmp);
}

sal_status sal_method_baseline(sal_method_ctx *cx, const float *x, int image, float *b) {
    const sal_explain_opts *o = cx->o;
    int64_t per = cx->per, hw = (int64_t)cx->h * cx->w;
    switch (o->baseline) {
    case SAL_BASELINE_ZERO: memset(b, 0, sizeof(float) * (size_t)per); return SAL_OK;
    case SAL_BASELINE_BLACK:
        for (int64_t i = 0; i < per; i++) b[i] = o->black_value[cx->c == 3 ? i / hw : 0];
        return SAL_OK;
    case SAL_BASELINE_BLUR: sal_box_blur(x, cx->c, cx->h, cx->w, o->blur_radius, b); return SAL_OK;
    case SAL_BASELINE_UNIFORM: {
        float lo = x[0], hi = x[0];
        for (int64_t i = 1; i < per; i++) { if (x[i] < lo) lo = x[i]; if (x[i] > hi) hi = x[i]; }
        for (int64_t i = 0; i < per; i++)
            b[i] = lo + (hi - lo) * sal_uniform(o->seed, SAL_RNG_BASELINE, (uint32_t)image, 0, (uint64_t)i);
        return SAL_OK;
    }
    case SAL_BASELINE_USER:
        if (!o->baseline_data) return SAL_ERR_INVALID_ARG;
        memcpy(b, o->baseline_data, sizeof(float) * (size_t)per);
        return SAL_OK;
    }
    return SAL_ERR_INVALID_ARG;
}

/* ------------------------------------------------------------------------------------------------ */
/* Entry point                                                                                      */

/* INVALID_ARG, naming the array and the element, when one of n arrays of per floats at x holds a
 * NaN or an infinity. */
static sal_status check_finite(const float *x, int n, int64_t per, const char *what, sal_error *err) {
    for (int i = 0; i < n; i++)
        for (int64_t j = 0; j < per; j++)
            if (!isfinite(x[i * per + j]))
                return sal_fail(err, SAL_ERR_INVALID_ARG, "explain: %s %d has a non-finite value (%g at element %lld)",
                                what, i, (double)x[i * per + j], (long long)j);
    return SAL_OK;
}

/* The top-1 class of each image: forward passes at the internal batch (not one image at a time:
 * on a GPU a batch-1 pass costs about as much as a batched one; sal_forward halves a batch that
 * does not fit). */
static sal_status top1_targets(sal_method_ctx *cx, const float *x, int n, int *targets) {
    const int chunk = n < cx->batch ? n : cx->batch > 0 ? cx->batch : 1;
    float *lg = malloc(sizeof(float) * (size_t)chunk * (size_t)cx->k);
    if (!lg) return sal_fail(serr(cx), SAL_ERR_NOMEM, "top-1 targets: out of memory for %d x %d logits", chunk, cx->k);
    sal_status st = SAL_OK;
    for (int i = 0, nb = 0; !st && i < n; i += nb) {
        nb = n - i < chunk ? n - i : chunk;
        st = sal_forward(cx->s, x + (int64_t)i * cx->per, nb, cx->h, cx->w, lg);
        for (int b = 0; !st && b < nb; b++) {
            const float *l = lg + (int64_t)b * cx->k;
            int best = 0;
            for (int j = 1; j < cx->k; j++) if (l[j] > l[best]) best = j;
            targets[i + b] = best;
        }
    }
    free(lg);
    return st;
}

/* Methods whose first model pass over each image is a plain forward of that image (then backward):
 * with no targets given, that pass's logits pick the top-1 class (pass_dev_once, cam_target), the
 * same class a separate forward would pick, one forward pass per image fewer. */
static int top1_in_pass(sal_method m) {
    switch (m) {
    case SAL_M_SALIENCY: case SAL_M_INPUTXGRAD: case SAL_M_GUIDED:
    case SAL_M_GRADCAM: case SAL_M_GRADCAMPP: case SAL_M_HIRESCAM: case SAL_M_XGRADCAM: case SAL_M_LAYERCAM:
    case SAL_M_SCORECAM: case SAL_M_GUIDED_GRADCAM:
        return 1;
    default: return 0;
    }
}

/* Model passes per image of the methods outside the CAM family (see each method's loops). */
static int64_t method_passes_per_image(const sal_method_ctx *cx) {
    const sal_explain_opts *o = cx->o;
    switch (o->method) {
    case SAL_M_IG: return (int64_t)o->ig_steps + 2;   /* the path, then f(x) and f(baseline) */
    case SAL_M_SMOOTHGRAD:
    case SAL_M_SMOOTHGRAD_SQ:
    case SAL_M_VARGRAD:   /* the samples (IG inside: its path each), then the image's score */
        return (int64_t)o->nt_samples * (o->nt_inner == SAL_M_IG ? o->ig_steps : 1) + 1;
    case SAL_M_OCCLUSION: {
        int64_t ny = (int64_t)ceil((double)(cx->h - o->occ_h) / o->occ_stride_h) + 1;
        int64_t nx = (int64_t)ceil((double)(cx->w - o->occ_w) / o->occ_stride_w) + 1;
        return ny * nx + 1;   /* the windows and the image's score */
    }
    case SAL_M_RISE: return (int64_t)o->rise_masks + 1;
    case SAL_M_GRADSHAP: return (int64_t)o->shap_samples + 1;
    case SAL_M_KERNELSHAP: return (int64_t)o->kshap_coalitions + 2;
    default: return 1;   /* saliency, input x gradient, guided backprop */
    }
}

/* A method call's context: the session, the options, and the image geometry (the model's fixed
 * sides, else h and w). */
static sal_method_ctx ctx_of(sal_session *s, const sal_model *m, const sal_explain_opts *o, int h, int w) {
    sal_method_ctx cx = {0};
    cx.s = s;
    cx.o = o;
    sal_tensor_info in;
    sal_model_input(m, 0, &in);
    cx.c = (int)in.dims[1];
    cx.h = in.dims[2] > 0 ? (int)in.dims[2] : h;
    cx.w = in.dims[3] > 0 ? (int)in.dims[3] : w;
    cx.per = (int64_t)cx.c * cx.h * cx.w;
    return cx;
}

sal_status sal_explain_impl(sal_session *s, const sal_model *m, const sal_explain_opts *o,
                            const float *x, int n, int h, int w, const int *targets, sal_maps *out,
                            sal_error *err) {
    memset(out, 0, sizeof *out);
    if (!o || !x || n <= 0) return sal_fail(err, SAL_ERR_INVALID_ARG, "explain: no input");
    if (o->method < 0 || o->method >= SAL_M_COUNT)
        return sal_fail(err, SAL_ERR_INVALID_ARG, "explain: unknown method %d", (int)o->method);
    sal_method_ctx cx = ctx_of(s, m, o, h, w);
    sal_status st = SAL_OK;
    cx.batch = o->batch;
    if (cx.batch <= 0 && (st = sal_session_auto_batch(s, cx.h, cx.w, 0, 0, &cx.batch, NULL, NULL)))
        return sal_fail(err, st, "%s", sal_session_error(s));
    /* a model of fixed batch (sal_model_max_batch): every internal batch within it */
    if (sal_session_max_batch(s) > 0 && cx.batch > sal_session_max_batch(s)) cx.batch = sal_session_max_batch(s);
    st = sal_session_plan(s, 1, cx.h, cx.w);
    if (st) return sal_fail(err, st, "%s", sal_session_error(s));
    /* (the plan has checked h and w) NaN or infinity would run through every pass into the maps */
    if ((st = check_finite(x, n, cx.per, "image", err))) return st;
    if (o->baseline == SAL_BASELINE_USER && o->baseline_data &&
        (st = check_finite(o->baseline_data, 1, cx.per, "the baseline", err)))
        return st;
    if (o->shap_baselines && o->shap_n_baselines > 0 &&
        (st = check_finite(o->shap_baselines, o->shap_n_baselines, cx.per, "GradientSHAP baseline", err)))
        return st;
    cx.k = sal_session_num_classes(s);
    /* option checks */
    int is_nt = o->method == SAL_M_SMOOTHGRAD || o->method == SAL_M_SMOOTHGRAD_SQ || o->method == SAL_M_VARGRAD;
    if (is_nt && o->nt_samples < 1) return sal_fail(err, SAL_ERR_INVALID_ARG, "--samples must be at least 1 (got %d)", o->nt_samples);
    if (is_nt && o->nt_inner != SAL_M_SALIENCY && o->nt_inner != SAL_M_INPUTXGRAD && o->nt_inner != SAL_M_IG && o->nt_inner != SAL_M_GUIDED)
        return sal_fail(err, SAL_ERR_INVALID_ARG, "--nt-inner must be saliency, inputxgrad, ig or guided (got %s)", sal_method_name(o->nt_inner));
    if ((o->method == SAL_M_IG || (is_nt && o->nt_inner == SAL_M_IG)) &&
        (o->ig_steps < 1 || (o->ig_rule == SAL_IG_RIEMANN_TRAPEZOID && o->ig_steps < 2)))
        return sal_fail(err, SAL_ERR_INVALID_ARG, "--steps must be at least 1 (2 for riemann_trapezoid), got %d", o->ig_steps);
    if (o->method == SAL_M_IG && o->baseline == SAL_BASELINE_USER && !o->baseline_data)
        return sal_fail(err, SAL_ERR_INVALID_ARG, "--baseline: no baseline data given");
    if (o->method == SAL_M_OCCLUSION) {
        if (o->occ_h < 1 || o->occ_w < 1 || o->occ_stride_h < 1 || o->occ_stride_w < 1)
            return sal_fail(err, SAL_ERR_INVALID_ARG, "--window and --stride must be positive");
        if (o->occ_stride_h > o->occ_h || o->occ_stride_w > o->occ_w)
            return sal_fail(err, SAL_ERR_INVALID_ARG, "--stride %dx%d is larger than --window %dx%d: "
                            "pixels between windows would get no attribution", o->occ_stride_h,
                            o->occ_stride_w, o->occ_h, o->occ_w);
        if (o->occ_h > cx.h || o->occ_w > cx.w)
            return sal_fail(err, SAL_ERR_INVALID_ARG, "--window %dx%d is larger than the %dx%d input",
                            o->occ_h, o->occ_w, cx.h, cx.w);
    }
    /* --- RISE / GradientSHAP / KernelSHAP option checks (host/methods/perturb.c) --- */
    if (o->method == SAL_M_RISE) {
        if (o->rise_masks < 1)
            return sal_fail(err, SAL_ERR_INVALID_ARG, "rise: --masks (rise_masks) must be at least 1 (got %d)", o->rise_masks);
        if (o->rise_grid < 1)
            return sal_fail(err, SAL_ERR_INVALID_ARG, "rise: --grid (rise_grid) must be at least 1 (got %d)", o->rise_grid);
        if (!(o->rise_p > 0.0f && o->rise_p <= 1.0f))
            return sal_fail(err, SAL_ERR_INVALID_ARG, "rise: --p (rise_p, the kept fraction) must be in (0,1] (got %g)", (double)o->rise_p);
    }
    if (o->method == SAL_M_GRADSHAP) {
        if (o->shap_samples < 1)
            return sal_fail(err, SAL_ERR_INVALID_ARG, "gradshap: --samples (shap_samples) must be at least 1 (got %d)", o->shap_samples);
        if (!(o->shap_stdev >= 0.0f) || isinf(o->shap_stdev))
            return sal_fail(err, SAL_ERR_INVALID_ARG, "gradshap: --stdev (shap_stdev) must be a finite number >= 0 (got %g)", (double)o->shap_stdev);
        if (o->shap_baselines && o->shap_n_baselines < 1)
            return sal_fail(err, SAL_ERR_INVALID_ARG, "gradshap: shap_n_baselines must be at least 1 when shap_baselines is given (got %d)", o->shap_n_baselines);
    }
    if (o->method == SAL_M_KERNELSHAP) {
        if (o->kshap_superpixels < 0)
            return sal_fail(err, SAL_ERR_INVALID_ARG, "kernelshap: --superpixels (kshap_superpixels) must be >= 0 (got %d)", o->kshap_superpixels);
        if (o->kshap_superpixels == 0 && (o->kshap_grid < 1 || o->kshap_grid > cx.h || o->kshap_grid > cx.w))
            return sal_fail(err, SAL_ERR_INVALID_ARG, "kernelshap: --grid (kshap_grid) must be in 1..%d for a %dx%d input (got %d)",
                            cx.h < cx.w ? cx.h : cx.w, cx.h, cx.w, o->kshap_grid);
        int nfeat = o->kshap_superpixels > 0 ? o->kshap_superpixels : o->kshap_grid * o->kshap_grid;
        if (o->kshap_coalitions < nfeat)
            return sal_fail(err, SAL_ERR_INVALID_ARG, "kernelshap: --coalitions (kshap_coalitions) must be at least the number of features, %d (got %d)",
                            nfeat, o->kshap_coalitions);
        if (o->baseline == SAL_BASELINE_USER && !o->baseline_data)
            return sal_fail(err, SAL_ERR_INVALID_ARG, "--baseline: no baseline data given");
    }
    /* --- end of RISE / SHAP option checks --- */
    out->n = n;
    out->targets = malloc(sizeof(int) * (size_t)n);
    out->scores = calloc((size_t)n, sizeof(float));
    if (!out->targets || !out->scores) { sal_maps_free(out); return sal_fail(err, SAL_ERR_NOMEM, "out of memory"); }
    /* targets: given, else top-1 */
    if (targets) {
        for (int i = 0; i < n; i++) {
            if (targets[i] < 0 || targets[i] >= cx.k) {
                sal_maps_free(out);
                return sal_fail(err, SAL_ERR_INVALID_ARG, "--target %d is out of range: the model has %d classes", targets[i], cx.k);
            }
            out->targets[i] = targets[i];
        }
    } else if (top1_in_pass(o->method)) {
        /* the method's first pass over each image computes its logits: it picks the class there */
        for (int i = 0; i < n; i++) out->targets[i] = -1;
        cx.top1_out = out->targets;
    } else if ((st = top1_targets(&cx, x, n, out->targets))) {
        sal_maps_free(out);
        return sal_fail(err, st, "%s", sal_session_error(s));
    }
    if (!sal_method_is_cam(o->method)) {
        out->ndim = 3;
        out->dims[0] = cx.c;
        out->dims[1] = cx.h;
        out->dims[2] = cx.w;
        out->attr = calloc((size_t)n * (size_t)cx.per, sizeof(float));
        if (!out->attr) { sal_maps_free(out); return sal_fail(err, SAL_ERR_NOMEM, "out of memory"); }
    }
    /* progress: the model passes each method makes (the CAM family counts its own, once its layer
     * is known) */
    cx.prog.method = o->method;
    cx.prog.n_images = n;
    if (!sal_method_is_cam(o->method) && o->method != SAL_M_GUIDED_GRADCAM &&
        (st = sal_method_progress_start(&cx, (int64_t)n * method_passes_per_image(&cx)))) {
        sal_maps_free(out);
        return sal_fail(err, st, "%s", sal_session_error(s));
    }
    if (o->method == SAL_M_OCCLUSION) st = sal_explain_occlusion(&cx, x, n, out->targets, out);
    else if (o->method == SAL_M_ROLLOUT || o->method == SAL_M_CHEFER)
        st = sal_explain_attention(&cx, m, x, n, out->targets, out);
    else if (sal_method_is_cam(o->method)) st = sal_explain_cam(&cx, m, x, n, out->targets, out);
    else if (o->method == SAL_M_GUIDED_GRADCAM) {
        /* guided backprop times the Grad-CAM map upsampled to the input */
        sal_explain_opts o2 = *o;
        o2.method = SAL_M_GRADCAM;
        cx.o = &o2;
        sal_maps cam = {0};
        cam.scores = calloc((size_t)n, sizeof(float));
        st = cam.scores ? sal_explain_cam(&cx, m, x, n, out->targets, &cam) : SAL_ERR_NOMEM;
        /* Captum's GuidedGradCam: the guided backprop gradients times the ReLU'd Grad-CAM layer
         * maps, nearest-upsampled, on the backend as each batch's gradients are taken */
        o2.method = SAL_M_GUIDED;
        float *dcam = NULL;
        if (!st) {
            cx.cam_lh = (int)cam.dims[0];
            cx.cam_lhw = cam.dims[0] * cam.dims[1];
            const size_t bytes = sizeof(float) * (size_t)n * (size_t)cx.cam_lhw;
            st = (dcam = sal_dalloc(&cx, bytes)) ? sal_dput(&cx, dcam, cam.attr, bytes) : SAL_ERR_NOMEM;
        }
        cx.cam = dcam;
        if (!st) st = sal_explain_gradient(&cx, x, n, out->targets, out);
        cx.cam = NULL;
        sal_dfree(&cx, dcam);
        if (!st) snprintf(out->layer, sizeof out->layer, "%s", cam.layer);
        sal_maps_free(&cam);
        cx.o = o;   /* o2 ends here; the progress report below reads the options */
    } else if (o->method == SAL_M_RISE) st = sal_explain_rise(&cx, x, n, out->targets, out);
    else if (o->method == SAL_M_GRADSHAP) st = sal_explain_gradshap(&cx, x, n, out->targets, out);
    else if (o->method == SAL_M_KERNELSHAP) st = sal_explain_kernelshap(&cx, x, n, out->targets, out);
    else st = sal_explain_gradient(&cx, x, n, out->targets, out);
    for (int i = 0; !st && i < n; i++)
        if (out->targets[i] < 0) st = sal_fail(sal_session_err(s), SAL_ERR_INTERNAL, "image %d got no top-1 target", i);
    if (!st) st = sal_method_progress(&cx, 0, 1);   /* the end: done == total */
    if (st) {
        const char *why = sal_session_error(s);
        sal_maps_free(out);
        if (st == SAL_ERR_CANCELLED) return sal_fail(err, st, "%s", why);
        return sal_fail(err, st, "%s: %s", sal_method_name(o->method), why && *why ? why : sal_status_str(st));
    }
    out->batch = cx.batch;
    return SAL_OK;
}

/* ------------------------------------------------------------------------------------------------ */
/* Several methods sharing passes                                                                   */

/* Methods whose map of an image comes from one forward pass capturing the CAM layer and one
 * backward pass of the target's score: the input gradient (saliency, input x gradient) and the
 * layer's activation and gradient (the gradient CAM family). */
int sal_method_shares_pass(sal_method m) {
    switch (m) {
    case SAL_M_SALIENCY: case SAL_M_INPUTXGRAD:
    case SAL_M_GRADCAM: case SAL_M_GRADCAMPP: case SAL_M_HIRESCAM: case SAL_M_XGRADCAM: case SAL_M_LAYERCAM:
        return 1;
    default: return 0;
    }
}

sal_status sal_explain_many_impl(sal_session *s, const sal_model *m, const sal_explain_opts *o,
                                 const sal_method *ms, int nm, const float *x, int n, int h, int w,
                                 const int *targets, sal_maps *out, sal_error *err) {
    if (!out || nm <= 0 || !ms) return sal_fail(err, SAL_ERR_INVALID_ARG, "explain: no methods");
    for (int j = 0; j < nm; j++) memset(&out[j], 0, sizeof out[j]);
    if (!o || !x || n <= 0) return sal_fail(err, SAL_ERR_INVALID_ARG, "explain: no input");
    int shared = 0;
    for (int j = 0; j < nm; j++) {
        if (ms[j] < 0 || ms[j] >= SAL_M_COUNT)
            return sal_fail(err, SAL_ERR_INVALID_ARG, "explain: unknown method %d", (int)ms[j]);
        shared += sal_method_shares_pass(ms[j]);
        for (int q = 0; q < j; q++)
            if (ms[q] == ms[j])
                return sal_fail(err, SAL_ERR_INVALID_ARG, "explain: method %s is asked twice", sal_method_name(ms[j]));
    }
    sal_status st = SAL_OK;
    /* the methods that share nothing (or a single sharer): one sal_explain each */
    for (int j = 0; j < nm && !st; j++) {
        if (shared >= 2 && sal_method_shares_pass(ms[j])) continue;
        sal_explain_opts oj = *o;
        oj.method = ms[j];
        st = sal_explain_impl(s, m, &oj, x, n, h, w, targets, &out[j], err);
    }
    if (!st && shared >= 2) {
        sal_method group[SAL_M_COUNT];
        sal_maps gout[SAL_M_COUNT];
        int ng = 0;
        for (int j = 0; j < nm; j++)
            if (sal_method_shares_pass(ms[j])) group[ng++] = ms[j];
        sal_explain_opts og = *o;
        og.method = group[0];
        sal_method_ctx cx = ctx_of(s, m, &og, h, w);
        cx.batch = 1;
        cx.prog.method = group[0];
        cx.prog.n_images = n;
        int *tg = malloc(sizeof(int) * (size_t)n);
        if (!tg) st = sal_fail(err, SAL_ERR_NOMEM, "out of memory");
        if (!st && (st = sal_session_plan(s, 1, cx.h, cx.w))) st = sal_fail(err, st, "%s", sal_session_error(s));
        if (!st) st = check_finite(x, n, cx.per, "image", err);
        cx.k = st ? 0 : sal_session_num_classes(s);
        for (int i = 0; !st && i < n; i++) {
            tg[i] = targets ? targets[i] : -1;
            if (targets && (targets[i] < 0 || targets[i] >= cx.k))
                st = sal_fail(err, SAL_ERR_INVALID_ARG, "--target %d is out of range: the model has %d classes",
                              targets[i], cx.k);
        }
        memset(gout, 0, sizeof gout);
        if (!st) {
            st = sal_explain_shared(&cx, m, group, ng, x, n, tg, gout);
            if (!st) st = sal_method_progress(&cx, 0, 1);
            if (st) {
                const char *why = sal_session_error(s);
                if (st == SAL_ERR_CANCELLED) st = sal_fail(err, st, "%s", why);
                else st = sal_fail(err, st, "%s: %s", sal_method_name(group[0]), why && *why ? why : sal_status_str(st));
            }
        }
        for (int j = 0, g = 0; j < nm; j++)
            if (sal_method_shares_pass(ms[j])) out[j] = gout[g++];
        free(tg);
    }
    if (st)
        for (int j = 0; j < nm; j++) sal_maps_free(&out[j]);
    return st;
}
