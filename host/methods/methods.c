/* methods.c — the attribution methods, written once against the session's batched passes and the
 * method primitives of kernels/method_prims.h. Batches are built, gradients consumed and
 * accumulators kept in the session backend's memory (sal_method_pass_dev): on a GPU only logits,
 * scores and finished maps cross the bus; on the CPU backend the same primitives run on host
 * memory.
 *
 * Conventions (the field's, Captum's and pytorch-grad-cam's where they define one):
 *  - targets default to the top-1 class; logits are explained unless explain_prob is set;
 *  - input-space attributions are (C,H,W) per image, before any reduction or normalization;
 *  - CAM attributions are (h,w) at the layer's resolution, plus a bilinear upsampling to (H,W). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "methods.h"
#include "method_prims.h"
#include "engine/incremental.h"
#include "post/post.h"

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

static sal_backend *bk(sal_method_ctx *cx) { return sal_session_backend(cx->s); }
static sal_error *serr(sal_method_ctx *cx) { return sal_session_err(cx->s); }

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
static int top1_of(const float *z, int k) {
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
            t = top1_of(z, k);
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

/* Integrated Gradients of one image for target t, everything in the backend's memory: dx, db
 * (C,H,W) the image and its baseline, dattr (C,H,W) the attribution; *fx and *fb the scores of
 * the image and the baseline (fx NULL: not wanted, no pass for them). */
static sal_status ig_dev(sal_method_ctx *cx, const float *dx, const float *db, int t, float *dattr,
                         float *fx, float *fb) {
    const sal_explain_opts *o = cx->o;
    int steps = o->ig_steps, B = cx->batch;
    int64_t per = cx->per;
    double *alpha = malloc(sizeof(double) * (size_t)steps), *wt = malloc(sizeof(double) * (size_t)steps);
    float *alpha_f = malloc(sizeof(float) * (size_t)steps);
    int n_tg = (B > steps ? B : steps) + 2;
    int *tg = malloc(sizeof(int) * (size_t)n_tg);
    float *sc = malloc(sizeof(float) * (size_t)n_tg);
    float *dalpha = sal_dalloc(cx, sizeof(float) * (size_t)steps);
    double *dwt = sal_dalloc(cx, sizeof(double) * (size_t)steps), *dacc = sal_dalloc(cx, sizeof(double) * (size_t)per);
    sal_status st = SAL_OK;
    if (!dalpha || !dwt || !dacc) st = SAL_ERR_NOMEM;
    else if (!alpha || !wt || !alpha_f || !tg || !sc) st = sal_fail(serr(cx), SAL_ERR_NOMEM, "out of host memory");
    if (!st) st = sal_ig_rule_points(o->ig_rule, steps, alpha, wt);
    for (int i = 0; !st && i < n_tg; i++) tg[i] = t;
    for (int k = 0; !st && k < steps; k++) alpha_f[k] = (float)alpha[k];
    if (!st) st = sal_dput(cx, dalpha, alpha_f, sizeof(float) * (size_t)steps);
    if (!st) st = sal_dput(cx, dwt, wt, sizeof(double) * (size_t)steps);
    sal_prim_io io = {cx, sal_mp_base(cx), SAL_MP_ig_path, SAL_MP_wsum};
    io.a.x = dx;
    io.a.b = db;
    io.a.wf = dalpha;
    io.a.wd = dwt;
    io.a.acc = dacc;
    sal_dev_io dio = {sal_prim_fill, sal_prim_take, &io, NULL};
    if (!st) st = sal_method_passes(cx, steps, tg, 0, &dio, sc, 0);
    if (!st) {
        sal_mp_args a = io.a;
        a.out = dattr;
        st = sal_mp(cx, SAL_MP_ig_final, per, &a);
    }
    /* the scores of the image and the baseline: items 0 and 1 of the pair primitive */
    io.fill_fn = SAL_MP_pair;
    dio.take = NULL;
    if (!st && fx) st = sal_method_passes(cx, 2, tg, 0, &dio, sc, 1);
    if (!st && fx) { *fx = sc[0]; *fb = sc[1]; }
    free(alpha); free(wt); free(alpha_f); free(tg); free(sc);
    sal_dfree(cx, dalpha); sal_dfree(cx, dwt); sal_dfree(cx, dacc);
    return st;
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
/* Input-space methods                                                                              */

/* Saliency, Input x Gradient, Guided Backprop over a batch of images: items are images. With more
 * than one batch, the next batch's images are uploaded (asynchronously, into one of two backend
 * buffers) while the current batch computes, and copied into the engine's input on the device. */
typedef struct grad_io {
    sal_method_ctx *cx;
    const float *x;   /* host images of this call (item 0 first) */
    int n;            /* how many */
    float *attr;      /* host attributions, same indexing */
    float *dtmp;      /* backend (batch, C,H,W) for the products: Input x Gradient, Guided Grad-CAM */
    float *stage[2];  /* backend (batch, C,H,W) each, NULL with a single batch */
    int staged_first, staged_nb, staged_slot;   /* what is on its way (staged_nb 0: nothing) */
    int read_slot;    /* the slot the current pass copied from */
} grad_io;

static sal_status grad_fill(void *ctx, float *din, int first, int nb) {
    grad_io *g = ctx;
    sal_method_ctx *cx = g->cx;
    if (g->staged_nb == nb && g->staged_first == first) {
        g->staged_nb = 0;
        g->read_slot = g->staged_slot;
        sal_backend *b = sal_session_backend(cx->s);
        sal_status st = b->ops->wait_uploads(b, serr(cx));
        sal_mp_args a = sal_mp_base(cx);
        a.in = g->stage[g->read_slot];
        a.out = din;
        return st ? st : sal_mp(cx, SAL_MP_copy, (int64_t)nb * cx->per, &a);
    }
    g->staged_nb = 0;   /* a retry split the batch: upload as is */
    return sal_dput(cx, din, g->x + (int64_t)first * cx->per, sizeof(float) * (size_t)nb * (size_t)cx->per);
}

/* The pass of [first, first + nb) is queued: start uploading the next batch into the slot this
 * pass did not read (the other one's last reader finished before the previous pass returned). */
static sal_status grad_launched(void *ctx, int first, int nb) {
    grad_io *g = ctx;
    sal_method_ctx *cx = g->cx;
    int next = first + nb;
    if (!g->stage[0] || next >= g->n) return SAL_OK;
    int nbn = g->n - next < cx->batch ? g->n - next : cx->batch;
    int slot = 1 - g->read_slot;
    sal_backend *b = sal_session_backend(cx->s);
    sal_status st = sal_backend_upload_async(b, g->stage[slot], g->x + (int64_t)next * cx->per,
                                         sizeof(float) * (size_t)nbn * (size_t)cx->per, serr(cx));
    if (st) return st;
    g->staged_first = next;
    g->staged_nb = nbn;
    g->staged_slot = slot;
    return SAL_OK;
}

static sal_status grad_take(void *ctx, const float *grad, const float *din, int first, int nb) {
    grad_io *g = ctx;
    int64_t n = (int64_t)nb * g->cx->per;
    float *dst = g->attr + (int64_t)first * g->cx->per;
    if (!grad) { memset(dst, 0, sizeof(float) * (size_t)n); return SAL_OK; }
    if (g->dtmp) {   /* times the input, or the image's CAM */
        sal_mp_args a = sal_mp_base(g->cx);
        a.in = grad;
        a.in2 = g->cx->cam ? g->cx->cam : din;
        a.out = g->dtmp;
        a.k0 = first;
        a.mode = g->cx->cam_lh;
        a.lhw = g->cx->cam_lhw;
        sal_status st = sal_mp(g->cx, g->cx->cam ? SAL_MP_cam_nearest_mul : SAL_MP_mul, n, &a);
        if (st) return st;
        grad = g->dtmp;
    }
    return sal_dget(g->cx, dst, grad, sizeof(float) * (size_t)n);
}

/* The IG baseline of image `image` (host x) into the backend buffer db; hb is host scratch. */
static sal_status put_baseline(sal_method_ctx *cx, const float *x, int image, float *hb, float *db) {
    sal_status st = sal_method_baseline(cx, x, image, hb);
    if (st) return sal_fail(serr(cx), st, "--baseline: no baseline data given");
    return sal_dput(cx, db, hb, sizeof(float) * (size_t)cx->per);
}

static sal_status explain_gradient(sal_method_ctx *cx, const float *x, int n, const int *tg, sal_maps *out) {
    const sal_explain_opts *o = cx->o;
    int64_t per = cx->per;
    size_t pbytes = sizeof(float) * (size_t)per;
    sal_status st = SAL_OK;
    switch (o->method) {
    case SAL_M_SALIENCY:
    case SAL_M_INPUTXGRAD:
    case SAL_M_GUIDED: {
        grad_io g = {cx, x, n, out->attr, NULL, {NULL, NULL}, 0, 0, 0, 1};
        if ((o->method == SAL_M_INPUTXGRAD || cx->cam) && !(g.dtmp = sal_dalloc(cx, pbytes * (size_t)cx->batch)))
            return SAL_ERR_NOMEM;
        if (n > cx->batch) {
            g.stage[0] = sal_dalloc(cx, pbytes * (size_t)cx->batch);
            g.stage[1] = g.stage[0] ? sal_dalloc(cx, pbytes * (size_t)cx->batch) : NULL;
            if (!g.stage[1]) { sal_dfree(cx, g.stage[0]); g.stage[0] = NULL; }   /* no room: plain uploads */
        }
        sal_dev_io io = {grad_fill, grad_take, &g, grad_launched};
        if (!st) st = sal_method_passes(cx, n, tg, o->method == SAL_M_GUIDED, &io, out->scores, 1);
        sal_dfree(cx, g.dtmp);
        sal_dfree(cx, g.stage[0]);
        sal_dfree(cx, g.stage[1]);
        return st;
    }
    case SAL_M_IG: {
        float *hb = malloc(pbytes);
        float *dx = sal_dalloc(cx, pbytes), *db = sal_dalloc(cx, pbytes), *dattr = sal_dalloc(cx, pbytes);
        out->completeness = calloc((size_t)n, sizeof(float));
        out->delta = calloc((size_t)n, sizeof(float));
        if (!dx || !db || !dattr) st = SAL_ERR_NOMEM;
        else if (!hb || !out->completeness || !out->delta) st = sal_fail(serr(cx), SAL_ERR_NOMEM, "out of host memory");
        for (int i = 0; !st && i < n; i++) {
            float fx, fb;
            st = sal_dput(cx, dx, x + i * per, pbytes);
            if (!st) st = put_baseline(cx, x + i * per, i, hb, db);
            if (!st) st = ig_dev(cx, dx, db, tg[i], dattr, &fx, &fb);
            if (!st) st = sal_dget(cx, out->attr + i * per, dattr, pbytes);
            if (st) break;
            double sum = 0;
            for (int64_t j = 0; j < per; j++) sum += out->attr[i * per + j];
            out->scores[i] = fx;
            out->delta[i] = fx - fb;
            out->completeness[i] = (float)fabs(sum - ((double)fx - fb));
        }
        free(hb);
        sal_dfree(cx, dx); sal_dfree(cx, db); sal_dfree(cx, dattr);
        return st;
    }
    case SAL_M_SMOOTHGRAD:
    case SAL_M_SMOOTHGRAD_SQ:
    case SAL_M_VARGRAD: {
        /* the noise tunnel: S noisy copies of the image (Philox, the same on every device), the
         * inner method's attribution of each, and their first two moments, all on the backend */
        sal_method inner = o->nt_inner;
        int S = o->nt_samples;
        float *hx = malloc(pbytes), *hb = malloc(pbytes);
        int *t1 = malloc(sizeof(int) * (size_t)(S > cx->batch ? S : cx->batch));
        float *sc = malloc(sizeof(float) * (size_t)(S > cx->batch ? S : cx->batch));
        float *dx = sal_dalloc(cx, pbytes), *dnoisy = sal_dalloc(cx, pbytes), *db = sal_dalloc(cx, pbytes);
        float *dattr = sal_dalloc(cx, pbytes);
        double *dsum = sal_dalloc(cx, sizeof(double) * (size_t)per), *dsq = sal_dalloc(cx, sizeof(double) * (size_t)per);
        if (!dx || !dnoisy || !db || !dattr || !dsum || !dsq) st = SAL_ERR_NOMEM;
        else if (!hx || !hb || !t1 || !sc) st = sal_fail(serr(cx), SAL_ERR_NOMEM, "out of host memory");
        sal_prim_io io = {cx, sal_mp_base(cx), SAL_MP_noise, SAL_MP_wsum};
        io.a.x = dx;
        io.a.acc = dsum;
        io.a.acc2 = dsq;
        io.a.mode = inner == SAL_M_INPUTXGRAD;   /* wsum: multiply by the noisy input */
        sal_dev_io dio = {sal_prim_fill, sal_prim_take, &io, NULL};
        for (int i = 0; !st && i < n; i++) {
            const float *xi = x + i * per;
            float lo = xi[0], hi = xi[0];
            for (int64_t j = 1; j < per; j++) { if (xi[j] < lo) lo = xi[j]; if (xi[j] > hi) hi = xi[j]; }
            io.a.f0 = o->nt_sigma * (hi - lo);
            io.a.image = (uint32_t)i;
            for (int k = 0; k < (S > cx->batch ? S : cx->batch); k++) t1[k] = tg[i];
            st = sal_dput(cx, dx, xi, pbytes);
            if (!st) st = sal_dzero(cx, dsum, sizeof(double) * (size_t)per);
            if (!st) st = sal_dzero(cx, dsq, sizeof(double) * (size_t)per);
            if (inner == SAL_M_IG) {
                /* one noisy sample at a time: IG batches its own path. A blurred or uniform
                 * baseline is made from each noisy sample; the others from nothing but options */
                const int of_sample = o->baseline == SAL_BASELINE_BLUR || o->baseline == SAL_BASELINE_UNIFORM;
                if (!st && !of_sample) st = put_baseline(cx, xi, i, hb, db);
                for (int s0 = 0; !st && s0 < S; s0++) {
                    sal_mp_args a = io.a;
                    a.out = dnoisy;
                    a.k0 = s0;
                    a.nb = 1;
                    st = sal_mp(cx, SAL_MP_noise, per, &a);
                    if (!st && of_sample) st = sal_dget(cx, hx, dnoisy, pbytes);
                    if (!st && of_sample) st = put_baseline(cx, hx, i, hb, db);
                    if (!st) st = ig_dev(cx, dnoisy, db, tg[i], dattr, NULL, NULL);
                    a = io.a;
                    a.mode = 0;
                    a.in = dattr;
                    a.nb = 1;
                    if (!st) st = sal_mp(cx, SAL_MP_wsum, per, &a);
                }
            } else {
                if (!st) st = sal_method_passes(cx, S, t1, inner == SAL_M_GUIDED, &dio, sc, 0);
            }
            if (!st) {
                sal_mp_args a = io.a;
                a.nb = S;
                a.mode = o->method == SAL_M_SMOOTHGRAD ? 0 : o->method == SAL_M_SMOOTHGRAD_SQ ? 1 : 2;
                a.out = dattr;
                st = sal_mp(cx, SAL_MP_moments_final, per, &a);
            }
            if (!st) st = sal_dget(cx, out->attr + i * per, dattr, pbytes);
            if (!st) st = sal_method_scores(cx, dx, 1, t1, out->scores + i);
        }
        free(hx); free(hb); free(t1); free(sc);
        sal_dfree(cx, dx); sal_dfree(cx, dnoisy); sal_dfree(cx, db); sal_dfree(cx, dattr); sal_dfree(cx, dsum); sal_dfree(cx, dsq);
        return st;
    }
    default: return SAL_ERR_INVALID_ARG;
    }
}

/* Occlusion with Captum's semantics: windows over all channels at starts 0, s, 2s... with
 * ceil((D - win) / s) + 1 positions per axis (the last may hang over the edge), attribution =
 * mean score drop over the windows covering each pixel. The occluded batches are built, and the
 * drops gathered into the map, on the backend.
 *
 * Where the backend has it (sal_backend.incremental: the CPU), a batch of windows runs by
 * incremental inference (engine/incremental.h, Krypton): one pass over the image keeps every
 * activation, and each window recomputes only the patch of each layer it can reach, until the
 * patch covers most of a layer. The scores are those of full passes (the same arithmetic on the
 * same numbers), so are the maps. occ_full, a backend without it (CUDA for now), a model whose
 * layers the patches cannot follow (SAL_ERR_UNSUPPORTED from the planner: e.g. a Reshape to a
 * fixed batch) or tiles that do not fit in memory run full passes. */
static sal_status explain_occlusion(sal_method_ctx *cx, const float *x, int n, const int *tg, sal_maps *out) {
    const sal_explain_opts *o = cx->o;
    int H = cx->h, W = cx->w, C = cx->c;
    int64_t per = cx->per, hw = (int64_t)H * W;
    size_t pbytes = sizeof(float) * (size_t)per;
    int ny = (int)ceil((double)(H - o->occ_h) / o->occ_stride_h) + 1;
    int nx = (int)ceil((double)(W - o->occ_w) / o->occ_stride_w) + 1;
    int nwin = ny * nx, B = cx->batch > nwin ? cx->batch : nwin;
    float *fill = malloc(pbytes);
    float *sc = malloc(sizeof(float) * (size_t)B);
    double *drop = malloc(sizeof(double) * (size_t)B);
    int *t1 = malloc(sizeof(int) * (size_t)B);
    int *rects = malloc(sizeof(int) * 4 * (size_t)B);                   /* (B, 4) windows */
    float *logits = malloc(sizeof(float) * (size_t)B * (size_t)cx->k);  /* (B, K) */
    float *dx = sal_dalloc(cx, pbytes), *dfill = sal_dalloc(cx, pbytes), *dattr = sal_dalloc(cx, pbytes);
    double *dacc = sal_dalloc(cx, sizeof(double) * (size_t)hw), *ddrop = sal_dalloc(cx, sizeof(double) * (size_t)B);
    sal_status st = SAL_OK;
    if (!dx || !dfill || !dattr || !dacc || !ddrop) st = SAL_ERR_NOMEM;
    else if (!fill || !sc || !drop || !t1 || !rects || !logits) st = sal_fail(serr(cx), SAL_ERR_NOMEM, "out of host memory");
    sal_inc *inc = NULL;
    if (!st && !o->occ_full && bk(cx)->incremental) {
        sal_error e2 = {0};
        sal_status s2 = sal_inc_create(sal_session_engine(cx->s), NULL, &inc, &e2);
        if (s2 && s2 != SAL_ERR_UNSUPPORTED) st = sal_fail(serr(cx), s2, "%s", e2.msg);
    }
    sal_prim_io io = {cx, sal_mp_base(cx), SAL_MP_occ_batch, -1};
    io.a.x = dx;
    io.a.b = dfill;
    io.a.oh = o->occ_h;
    io.a.ow = o->occ_w;
    io.a.osh = o->occ_stride_h;
    io.a.osw = o->occ_stride_w;
    io.a.onx = nx;
    io.a.ony = ny;
    sal_dev_io dio = {sal_prim_fill, NULL, &io, NULL};
    for (int i = 0; !st && i < n; i++) {
        const float *xi = x + i * per;
        for (int k = 0; k < B; k++) t1[k] = tg[i];
        if (o->occ_fill == 1) {
            for (int c = 0; c < C; c++) {
                double m = 0;
                for (int64_t j = 0; j < hw; j++) m += xi[c * hw + j];
                for (int64_t j = 0; j < hw; j++) fill[c * hw + j] = (float)(m / hw);
            }
        } else if (o->occ_fill == 2) {
            sal_box_blur(xi, C, H, W, o->blur_radius, fill);
        } else {
            memset(fill, 0, pbytes);
        }
        st = sal_dput(cx, dx, xi, pbytes);
        if (!st) st = sal_method_scores(cx, dx, 1, t1, &out->scores[i]);
        if (!st) st = sal_dput(cx, dfill, fill, pbytes);
        if (!st) st = sal_dzero(cx, dacc, sizeof(double) * (size_t)hw);
        if (!st && inc) {   /* the image's pass that every window starts from */
            sal_shape s1 = {4, {1, C, H, W}};
            st = sal_inc_base(inc, &s1, dx, serr(cx));
        }
        for (int w0 = 0, nb = 0; !st && w0 < nwin; w0 += nb) {
            nb = nwin - w0 < cx->batch ? nwin - w0 : cx->batch;
            if (inc) {
                for (int k = 0; k < nb; k++) {
                    int win = w0 + k, *r = rects + 4 * k;
                    r[0] = (win / nx) * o->occ_stride_h;
                    r[1] = (win % nx) * o->occ_stride_w;
                    r[2] = r[0] + o->occ_h;
                    r[3] = r[1] + o->occ_w;
                }
                st = sal_inc_forward(inc, nb, rects, dfill, logits, serr(cx));
                for (int k = 0; !st && k < nb; k++) {
                    const float *z = logits + (size_t)k * cx->k;
                    sc[k] = o->explain_prob ? prob_seed(z, cx->k, tg[i], NULL) : z[tg[i]];
                }
                if (!st) st = sal_method_progress(cx, nb, 0);   /* nb windows' passes, as full passes count */
                if (st == SAL_ERR_UNSUPPORTED || st == SAL_ERR_NOMEM) {
                    /* the patches cannot follow this model, or its tiles do not fit: full passes
                     * (planned within the session's memory limit, halving the batch if need be) */
                    sal_inc_free(inc);
                    inc = NULL;
                    st = SAL_OK;
                }
            }
            if (!st && !inc) st = sal_method_pass_dev(cx, w0, nb, t1, 0, &dio, sc);
            for (int k = 0; !st && k < nb; k++) drop[k] = (double)out->scores[i] - sc[k];
            if (!st) st = sal_dput(cx, ddrop, drop, sizeof(double) * (size_t)nb);
            sal_mp_args a = io.a;
            a.wd = ddrop;
            a.acc = dacc;
            a.k0 = w0;
            a.nb = nb;
            if (!st) st = sal_mp(cx, SAL_MP_occ_acc, hw, &a);
        }
        sal_mp_args a = io.a;
        a.acc = dacc;
        a.out = dattr;
        if (!st) st = sal_mp(cx, SAL_MP_occ_final, per, &a);
        if (!st) st = sal_dget(cx, out->attr + i * per, dattr, pbytes);
    }
    if (inc) {   /* the engine's current plan back to one the session knows */
        sal_inc_free(inc);
        sal_status s2 = sal_session_plan(cx->s, 1, H, W);
        if (!st) st = s2;
    }
    free(fill); free(sc); free(drop); free(t1); free(rects); free(logits);
    sal_dfree(cx, dx); sal_dfree(cx, dfill); sal_dfree(cx, dattr); sal_dfree(cx, dacc); sal_dfree(cx, ddrop);
    return st;
}

/* ------------------------------------------------------------------------------------------------ */
/* CAM family                                                                                       */

/* pytorch-grad-cam's presentation of a CAM: m = (L - min) / (1e-7 + max(L - min)), bilinear
 * (half-pixel, cv2's INTER_LINEAR) to the input size, ReLU, and the same scaling again. With
 * relu == 0 (signed maps) the map is instead upsampled and divided by max|L|. */
static sal_status cam_final(const float *L, int lh, int lw, float *out, int h, int w, int relu) {
    int64_t n = (int64_t)lh * lw, N = (int64_t)h * w;
    float *m = n > 0 ? calloc((size_t)n, sizeof(float)) : NULL;
    if (!m) return SAL_ERR_NOMEM;
    if (relu) {
        float mn = L[0], mx;
        for (int64_t j = 1; j < n; j++) if (L[j] < mn) mn = L[j];
        mx = L[0] - mn;
        for (int64_t j = 0; j < n; j++) { m[j] = L[j] - mn; if (m[j] > mx) mx = m[j]; }
        for (int64_t j = 0; j < n; j++) m[j] /= 1e-7f + mx;
    } else {
        memcpy(m, L, sizeof(float) * (size_t)n);
    }
    sal_upsample_bilinear(m, lh, lw, out, h, w);
    free(m);
    if (relu) {
        float mn, mx;
        for (int64_t j = 0; j < N; j++) if (out[j] < 0) out[j] = 0;
        mn = out[0];
        for (int64_t j = 1; j < N; j++) if (out[j] < mn) mn = out[j];
        mx = out[0] - mn;
        for (int64_t j = 0; j < N; j++) { out[j] -= mn; if (out[j] > mx) mx = out[j]; }
        for (int64_t j = 0; j < N; j++) out[j] /= 1e-7f + mx;
    } else {
        float mx = 0;
        for (int64_t j = 0; j < N; j++) if (fabsf(out[j]) > mx) mx = fabsf(out[j]);
        for (int64_t j = 0; mx > 0 && j < N; j++) out[j] /= mx;
    }
    return SAL_OK;
}

sal_status sal_cam_final(const float *L, int lh, int lw, float *out, int h, int w, int relu) {
    return cam_final(L, lh, lw, out, h, w, relu);
}

/* One image's forward pass in a gradient plan capturing value layer_v (so a backward pass to the
 * layer can follow): the image from the backend (dimg) or the host (himg); its logits into lg. */
static sal_status dev_forward_capture(sal_method_ctx *cx, const float *dimg, const float *himg, int layer_v,
                                      float *lg, const float **din_out) {
    float *din = NULL;
    sal_status st = sal_session_dev_plan(cx->s, 1, cx->h, cx->w, 1, layer_v, &din);
    if (din_out) *din_out = din;
    if (st) return st;
    if (dimg) {
        sal_mp_args a = sal_mp_base(cx);
        a.in = dimg;
        a.out = din;
        st = sal_mp(cx, SAL_MP_copy, cx->per, &a);
    } else {
        st = sal_dput(cx, din, himg, sizeof(float) * (size_t)cx->per);
    }
    return st ? st : sal_session_dev_forward(cx->s, lg);
}

/* Image i's target after its forward pass gave its logits lg: *t as given, or, deferred (-1), the
 * top-1 class of lg, written into the call's targets (cx->top1_out). */
static sal_status cam_target(sal_method_ctx *cx, const float *lg, int i, int *t) {
    if (*t >= 0) return SAL_OK;
    if (!cx->top1_out) return sal_fail(serr(cx), SAL_ERR_INTERNAL, "image %d has no target", i);
    *t = cx->top1_out[i] = top1_of(lg, cx->k);
    return SAL_OK;
}

/* Arguments of the CAM primitives: a layer activation of lc channels of lhw pixels. */
static sal_mp_args cam_args(const sal_method_ctx *cx, const float *dact, int64_t lc, int64_t lhw) {
    sal_mp_args a = sal_mp_base(cx);
    a.in = dact;
    a.lc = (int)lc;
    a.lhw = lhw;
    return a;
}

/* A gradient CAM's (lh, lw) map of one image into host cam (lhw), from the layer's activation and
 * gradient dact, dgrad (lc, lhw) in the backend's memory: the channel weights into dwts (lc), the
 * weighted sum (with the ReLU when asked) into dcam (lhw), then downloaded. */
static sal_status cam_map_of(sal_method_ctx *cx, sal_method method, const float *dact, const float *dgrad,
                             int64_t lc, int64_t lhw, float *dwts, float *dcam, float *cam) {
    sal_status st = SAL_OK;
    sal_mp_args a = cam_args(cx, dact, lc, lhw);
    a.in2 = dgrad;
    a.wf = dwts;
    a.out = dwts;
    a.mode = method == SAL_M_XGRADCAM ? SAL_CAM_W_X : method == SAL_M_GRADCAMPP ? SAL_CAM_W_PP
             : method == SAL_M_HIRESCAM || method == SAL_M_LAYERCAM ? SAL_CAM_W_NONE
             : SAL_CAM_W_MEAN;
    if (a.mode != SAL_CAM_W_NONE) st = sal_mp(cx, SAL_MP_cam_weights, lc, &a);
    a.mode = method == SAL_M_HIRESCAM ? SAL_CAM_S_HIRES : method == SAL_M_LAYERCAM ? SAL_CAM_S_LAYER
             : SAL_CAM_S_WEIGHTED;
    a.out = dcam;
    a.f0 = cx->o->cam_relu ? 1.0f : 0.0f;
    if (!st) st = sal_mp(cx, SAL_MP_cam_sum, lhw, &a);
    if (!st) st = sal_dget(cx, cam, dcam, sizeof(float) * (size_t)lhw);
    return st;
}

/* A channels-last CAM layer's captured activation and gradient (NHWC maps, tokens after cl->skip
 * leading ones) as planes (lc, lhw) in dpa and dpg; *dact and *dgrad then point at them. Nothing
 * to do for an NCHW layer or a value the score does not reach. */
static sal_status cam_as_planes(sal_method_ctx *cx, const sal_cam_layer *cl, const float **dact, const float **dgrad,
                                float *dpa, float *dpg) {
    if (cl->layout == SAL_LAYOUT_NCHW || !*dact || !*dgrad) return SAL_OK;
    const int64_t lc = cl->channels, lhw = (int64_t)cl->h * cl->w;
    sal_mp_args c = sal_mp_base(cx);
    c.lc = (int)lc;
    c.lhw = lhw;
    c.k0 = cl->skip;
    c.in = *dact;
    c.out = dpa;
    sal_status st = sal_mp(cx, SAL_MP_to_planes, lc * lhw, &c);
    c.in = *dgrad;
    c.out = dpg;
    if (!st) st = sal_mp(cx, SAL_MP_to_planes, lc * lhw, &c);
    *dact = dpa;
    *dgrad = dpg;
    return st;
}

/* Backend buffers of one-pass maps: a gradient CAM's channel weights (lc) and sum (lhw), a
 * channels-last layer's planes (lc, lhw) x2, input x gradient's product (per); NULL where unused. */
typedef struct pass_bufs {
    float *dwts, *dcam, *dpa, *dpg, *dxg;
} pass_bufs;

/* Image i (host xi) for the methods ms (nm, each sal_method_shares_pass): one forward pass
 * capturing the CAM layer layer_v, the target (*t as given, or the top-1 of this pass when -1,
 * written into cx->top1_out when there is one), one backward pass (to the layer only when no
 * input-space method is asked), then each method's map of the image into out[j]: a CAM's (lh, lw)
 * map and its upsampling, or the input gradient (times the input on the backend for input x
 * gradient). lg, seed: host (k) scratch. */
static sal_status one_pass_maps(sal_method_ctx *cx, const sal_cam_layer *cl, int layer_v, const sal_method *ms,
                                int nm, int i, const float *xi, int *t, float *lg, float *seed, const pass_bufs *b,
                                sal_maps *out) {
    const sal_explain_opts *o = cx->o;
    const int64_t lc = cl->channels, lhw = (int64_t)cl->h * cl->w;
    int need_input = 0, need_cam = 0;
    for (int j = 0; j < nm; j++) {
        if (sal_method_is_cam(ms[j])) need_cam = 1;
        else need_input = 1;
    }
    const float *din = NULL;
    sal_status st = dev_forward_capture(cx, NULL, xi, need_cam ? layer_v : -1, lg, &din);
    if (!st && *t < 0) {
        *t = top1_of(lg, cx->k);
        if (cx->top1_out) cx->top1_out[i] = *t;
    }
    if (!st) st = sal_method_progress(cx, 1, 0);
    float score = 0;
    if (!st) {
        memset(seed, 0, sizeof(float) * (size_t)cx->k);
        if (o->explain_prob) score = prob_seed(lg, cx->k, *t, seed);
        else { score = lg[*t]; seed[*t] = 1.0f; }
        st = sal_session_dev_backward(cx->s, seed, 0, !need_input);
    }
    const float *dact = st || !need_cam ? NULL : sal_session_dev_capture(cx->s, 0);
    const float *dgrad = st || !need_cam ? NULL : sal_session_dev_capture(cx->s, 1);
    const float *dgx = st || !need_input ? NULL : sal_session_dev_input_grad(cx->s);
    if (!st && need_cam) st = cam_as_planes(cx, cl, &dact, &dgrad, b->dpa, b->dpg);   /* (lc, lhw) */
    for (int j = 0; j < nm && !st; j++) {
        sal_maps *mp = &out[j];
        if (mp->targets) mp->targets[i] = *t;   /* (Guided Grad-CAM's inner Grad-CAM keeps none) */
        if (mp->scores) mp->scores[i] = score;
        if (sal_method_is_cam(ms[j])) {
            float *cam = mp->attr + i * lhw;
            if (dact && dgrad) st = cam_map_of(cx, ms[j], dact, dgrad, lc, lhw, b->dwts, b->dcam, cam);
            else memset(cam, 0, sizeof(float) * (size_t)lhw);   /* the score does not depend on the layer */
            if (!st) st = cam_final(cam, cl->h, cl->w, mp->upsampled + (int64_t)i * cx->h * cx->w, cx->h, cx->w,
                                    o->cam_relu);
        } else if (!dgx) {
            memset(mp->attr + i * cx->per, 0, sizeof(float) * (size_t)cx->per);
        } else {
            const float *g = dgx;
            if (ms[j] == SAL_M_INPUTXGRAD) {   /* the gradient times the input, on the backend */
                sal_mp_args a = sal_mp_base(cx);
                a.in = dgx;
                a.in2 = din;
                a.out = b->dxg;
                st = sal_mp(cx, SAL_MP_mul, cx->per, &a);
                g = b->dxg;
            }
            if (!st) st = sal_dget(cx, mp->attr + i * cx->per, g, sizeof(float) * (size_t)cx->per);
        }
    }
    return st;
}

static sal_status explain_cam(sal_method_ctx *cx, const sal_model *m, const float *x, int n, const int *tg,
                              sal_maps *out) {
    const sal_explain_opts *o = cx->o;
    sal_cam_layer cl;
    sal_status st = sal_cam_layer_resolve(cx->s, m, cx->h, cx->w, o->layer, o->tokens_h, o->tokens_w, &cl, serr(cx));
    if (st) return st;
    snprintf(out->layer, sizeof out->layer, "%s", cl.name);
    int64_t lc = cl.channels, lh = cl.h, lw = cl.w, lhw = lh * lw;
    /* a channels-last layer (NHWC, tokens) is read through planes (lc, lhw) made on the backend */
    int last = cl.layout != SAL_LAYOUT_NCHW;
    out->ndim = 2;
    out->dims[0] = lh;
    out->dims[1] = lw;
    out->dims[2] = 0;
    free(out->attr);
    out->attr = calloc((size_t)n * (size_t)lhw, sizeof(float));
    out->upsampled = calloc((size_t)n * (size_t)cx->h * cx->w, sizeof(float));
    int layer_v = sal_session_find_layer(cx->s, out->layer);
    int scorecam = o->method == SAL_M_SCORECAM;
    float *wts = malloc(sizeof(float) * (size_t)lc);
    float *lg = malloc(sizeof(float) * (size_t)cx->k), *seed = malloc(sizeof(float) * (size_t)cx->k);
    float *dwts = scorecam ? NULL : sal_dalloc(cx, sizeof(float) * (size_t)lc);
    float *dcam = scorecam ? NULL : sal_dalloc(cx, sizeof(float) * (size_t)lhw);
    float *dpa = last && !scorecam ? sal_dalloc(cx, sizeof(float) * (size_t)(lc * lhw)) : NULL;
    float *dpg = last && !scorecam ? sal_dalloc(cx, sizeof(float) * (size_t)(lc * lhw)) : NULL;
    if (!out->attr || !out->upsampled || !wts || !lg || !seed || (!scorecam && (!dwts || !dcam)) ||
        (last && !scorecam && (!dpa || !dpg)))
        st = SAL_ERR_NOMEM;
    /* passes: each image's own (capturing the layer), Score-CAM's one per channel, and Guided
     * Grad-CAM's guided backprop pass per image after this */
    if (!st) st = sal_method_progress_start(cx, (int64_t)n * (1 + (scorecam ? lc : 0) +
                                                              (cx->prog.method == SAL_M_GUIDED_GRADCAM)));
    for (int i = 0; i < n && !st; i++) {
        const float *xi = x + i * cx->per;
        float *cam = out->attr + i * lhw;
        if (o->method == SAL_M_SCORECAM) {
            /* the layer's activation (one forward pass capturing it, copied on the backend), then
             * the masked images: each channel upsampled (align_corners, as torch's
             * UpsamplingBilinear2d in pytorch-grad-cam) and scaled to [0,1] per channel, times the
             * image, built on the backend */
            int t = tg[i];
            int B = cx->batch;
            int64_t hw = (int64_t)cx->h * cx->w;
            float *sc = malloc(sizeof(float) * (size_t)B);
            int *t1 = malloc(sizeof(int) * (size_t)B);
            float *dx = sal_dalloc(cx, sizeof(float) * (size_t)cx->per);
            float *dact = sal_dalloc(cx, sizeof(float) * (size_t)lc * (size_t)lhw);
            float *dup = sal_dalloc(cx, sizeof(float) * (size_t)B * (size_t)hw);
            float *dmm = sal_dalloc(cx, sizeof(float) * 2 * (size_t)B);
            float *dparts = sal_dalloc(cx, sizeof(float) * 2 * SAL_MP_PARTS * (size_t)B);
            float *dw = sal_dalloc(cx, sizeof(float) * (size_t)lc), *dc = sal_dalloc(cx, sizeof(float) * (size_t)lhw);
            if (!sc || !t1 || !dx || !dact || !dup || !dmm || !dparts || !dw || !dc) st = SAL_ERR_NOMEM;
            /* the image's forward pass: its score (and its top-1 class when that is deferred),
             * and the layer's activation kept on the backend */
            if (!st) st = sal_dput(cx, dx, xi, sizeof(float) * (size_t)cx->per);
            if (!st) st = dev_forward_capture(cx, dx, NULL, layer_v, lg, NULL);
            if (!st) st = cam_target(cx, lg, i, &t);
            for (int k = 0; !st && k < B; k++) t1[k] = t;
            if (!st) out->scores[i] = cx->o->explain_prob ? prob_seed(lg, cx->k, t, NULL) : lg[t];
            if (!st) st = sal_method_progress(cx, 1, 0);
            if (!st) {
                sal_mp_args c = sal_mp_base(cx);
                c.in = sal_session_dev_capture(cx->s, 0);
                c.out = dact;
                c.lc = (int)lc;
                c.lhw = lhw;
                c.k0 = cl.skip;
                st = c.in ? sal_mp(cx, last ? SAL_MP_to_planes : SAL_MP_copy, lc * lhw, &c)
                          : sal_fail(serr(cx), SAL_ERR_INTERNAL, "layer '%s': no activation captured", out->layer);
            }
            sal_prim_io io = {cx, sal_mp_base(cx), SAL_MP_masked, -1};
            io.a.x = dx;
            io.a.in = dup;
            io.a.in2 = dmm;
            sal_dev_io dio = {sal_prim_fill, NULL, &io, NULL};
            for (int c0 = 0, NB = 0; !st && c0 < lc; c0 += NB) {
                NB = lc - c0 < cx->batch ? (int)(lc - c0) : cx->batch;
                sal_mp_args u = sal_mp_base(cx);
                u.in = dact;
                u.lhw = lhw;
                u.mode = (int)lh;
                u.k0 = c0;
                u.out = dup;
                st = sal_mp(cx, SAL_MP_cam_up_ac, (int64_t)NB * hw, &u);
                u.in = dup;
                u.out = dparts;
                u.mode = 0;   /* min and max of each mask */
                if (!st) st = sal_mp(cx, SAL_MP_range_part, (int64_t)NB * SAL_MP_PARTS, &u);
                u.in = dparts;
                u.out = dmm;
                if (!st) st = sal_mp(cx, SAL_MP_range_join, NB, &u);
                io.a.kb = c0;
                if (!st) st = sal_method_pass_dev(cx, c0, NB, t1, 0, &dio, sc);
                for (int k = 0; !st && k < NB; k++) wts[c0 + k] = sc[k];
            }
            if (!st) {   /* softmax over channels, then the weighted sum of the activations */
                float mx = wts[0];
                double sum = 0;
                for (int64_t c = 1; c < lc; c++) if (wts[c] > mx) mx = wts[c];
                for (int64_t c = 0; c < lc; c++) sum += exp(wts[c] - mx);
                for (int64_t c = 0; c < lc; c++) wts[c] = (float)(exp(wts[c] - mx) / sum);
                sal_mp_args a = cam_args(cx, dact, lc, lhw);
                a.wf = dw;
                a.mode = SAL_CAM_S_WEIGHTED;
                a.f0 = o->cam_relu ? 1.0f : 0.0f;
                a.out = dc;
                st = sal_dput(cx, dw, wts, sizeof(float) * (size_t)lc);
                if (!st) st = sal_mp(cx, SAL_MP_cam_sum, lhw, &a);
                if (!st) st = sal_dget(cx, cam, dc, sizeof(float) * (size_t)lhw);
            }
            free(sc); free(t1);
            sal_dfree(cx, dx); sal_dfree(cx, dact); sal_dfree(cx, dup); sal_dfree(cx, dmm); sal_dfree(cx, dparts); sal_dfree(cx, dw); sal_dfree(cx, dc);
            if (!st) st = cam_final(cam, (int)lh, (int)lw, out->upsampled + (int64_t)i * cx->h * cx->w, cx->h, cx->w,
                                    o->cam_relu);
        } else {
            /* one image forward, backward to the layer, then the channel weights and their
             * weighted sum (with the ReLU) on the backend: only the (lh, lw) map comes back */
            int t = tg[i];
            pass_bufs b = {dwts, dcam, dpa, dpg, NULL};
            st = one_pass_maps(cx, &cl, layer_v, &o->method, 1, i, xi, &t, lg, seed, &b, out);
        }
    }
    free(wts);
    free(lg);
    free(seed);
    sal_dfree(cx, dwts);
    sal_dfree(cx, dcam);
    sal_dfree(cx, dpa);
    sal_dfree(cx, dpg);
    return st;
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
    if (o->method == SAL_M_OCCLUSION) st = explain_occlusion(&cx, x, n, out->targets, out);
    else if (o->method == SAL_M_ROLLOUT || o->method == SAL_M_CHEFER)
        st = sal_explain_attention(&cx, m, x, n, out->targets, out);
    else if (sal_method_is_cam(o->method)) st = explain_cam(&cx, m, x, n, out->targets, out);
    else if (o->method == SAL_M_GUIDED_GRADCAM) {
        /* guided backprop times the Grad-CAM map upsampled to the input */
        sal_explain_opts o2 = *o;
        o2.method = SAL_M_GRADCAM;
        cx.o = &o2;
        sal_maps cam = {0};
        cam.scores = calloc((size_t)n, sizeof(float));
        st = cam.scores ? explain_cam(&cx, m, x, n, out->targets, &cam) : SAL_ERR_NOMEM;
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
        if (!st) st = explain_gradient(&cx, x, n, out->targets, out);
        cx.cam = NULL;
        sal_dfree(&cx, dcam);
        if (!st) snprintf(out->layer, sizeof out->layer, "%s", cam.layer);
        sal_maps_free(&cam);
        cx.o = o;   /* o2 ends here; the progress report below reads the options */
    } else if (o->method == SAL_M_RISE) st = sal_explain_rise(&cx, x, n, out->targets, out);
    else if (o->method == SAL_M_GRADSHAP) st = sal_explain_gradshap(&cx, x, n, out->targets, out);
    else if (o->method == SAL_M_KERNELSHAP) st = sal_explain_kernelshap(&cx, x, n, out->targets, out);
    else st = explain_gradient(&cx, x, n, out->targets, out);
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

/* Every method of ms (nm, each sal_method_shares_pass) on n images x, per image one forward pass
 * capturing the CAM layer and one backward pass (to the layer only when no input-space method is
 * asked), out[j] the maps of ms[j] as sal_explain makes them. */
static sal_status explain_shared(sal_method_ctx *cx, const sal_model *m, const sal_method *ms, int nm,
                                 const float *x, int n, int *tg, sal_maps *out) {
    const sal_explain_opts *o = cx->o;
    int need_cam = 0;
    for (int j = 0; j < nm; j++) need_cam |= sal_method_is_cam(ms[j]);
    sal_cam_layer cl;
    memset(&cl, 0, sizeof cl);
    sal_status st = SAL_OK;
    if (need_cam &&
        (st = sal_cam_layer_resolve(cx->s, m, cx->h, cx->w, o->layer, o->tokens_h, o->tokens_w, &cl, serr(cx))))
        return st;
    const int64_t lc = cl.channels, lhw = (int64_t)cl.h * cl.w;
    const int last = need_cam && cl.layout != SAL_LAYOUT_NCHW;   /* read through planes (cam_as_planes) */
    const int layer_v = need_cam ? sal_session_find_layer(cx->s, cl.name) : -1;
    int need_xg = 0;
    for (int j = 0; j < nm; j++) {
        sal_maps *mp = &out[j];
        mp->n = n;
        mp->batch = 1;
        mp->targets = malloc(sizeof(int) * (size_t)n);
        mp->scores = calloc((size_t)n, sizeof(float));
        if (sal_method_is_cam(ms[j])) {
            mp->ndim = 2;
            mp->dims[0] = cl.h;
            mp->dims[1] = cl.w;
            snprintf(mp->layer, sizeof mp->layer, "%s", cl.name);
            mp->attr = calloc((size_t)n * (size_t)lhw, sizeof(float));
            mp->upsampled = calloc((size_t)n * (size_t)cx->h * cx->w, sizeof(float));
            if (!mp->upsampled) st = SAL_ERR_NOMEM;
        } else {
            mp->ndim = 3;
            mp->dims[0] = cx->c;
            mp->dims[1] = cx->h;
            mp->dims[2] = cx->w;
            mp->attr = calloc((size_t)n * (size_t)cx->per, sizeof(float));
            need_xg |= ms[j] == SAL_M_INPUTXGRAD;
        }
        if (!mp->targets || !mp->scores || !mp->attr) st = SAL_ERR_NOMEM;
    }
    float *lg = malloc(sizeof(float) * (size_t)cx->k), *seed = malloc(sizeof(float) * (size_t)cx->k);
    pass_bufs b = {need_cam ? sal_dalloc(cx, sizeof(float) * (size_t)lc) : NULL,
                   need_cam ? sal_dalloc(cx, sizeof(float) * (size_t)lhw) : NULL,
                   last ? sal_dalloc(cx, sizeof(float) * (size_t)(lc * lhw)) : NULL,
                   last ? sal_dalloc(cx, sizeof(float) * (size_t)(lc * lhw)) : NULL,
                   need_xg ? sal_dalloc(cx, sizeof(float) * (size_t)cx->per) : NULL};
    if (!st && (!lg || !seed || (need_cam && (!b.dwts || !b.dcam || (last && (!b.dpa || !b.dpg)))) ||
                (need_xg && !b.dxg)))
        st = SAL_ERR_NOMEM;
    if (!st) st = sal_method_progress_start(cx, n);
    for (int i = 0; i < n && !st; i++) st = one_pass_maps(cx, &cl, layer_v, ms, nm, i, x + i * cx->per, &tg[i], lg, seed, &b, out);
    free(lg);
    free(seed);
    sal_dfree(cx, b.dwts);
    sal_dfree(cx, b.dcam);
    sal_dfree(cx, b.dpa);
    sal_dfree(cx, b.dpg);
    sal_dfree(cx, b.dxg);
    return st;
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
            st = explain_shared(&cx, m, group, ng, x, n, tg, gout);
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
