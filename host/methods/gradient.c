/* gradient.c — the input-space gradient methods, written once against the session's batched
 * passes (sal_method_pass_dev) and the method primitives (kernels/method_prims.h): Saliency
 * (Simonyan et al. 2014, |gradient| reduced later), Input x Gradient, Guided Backprop (Springenberg
 * et al. 2015; guided ReLU backward in the engine), Integrated Gradients (Sundararajan et al. 2017;
 * Captum's quadrature rules, sal_ig_rule_points, path points batched on the backend: ig_dev) and
 * the NoiseTunnel family over any of them (SmoothGrad, SmoothGrad-squared, VarGrad; Captum's
 * NoiseTunnel semantics). Guided Grad-CAM's multiply by the CAM rides on the guided pass
 * (sal_method_ctx.cam). Entry: sal_explain_gradient (methods.h), called by sal_explain_impl. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "methods.h"
#include "method_prims.h"

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

sal_status sal_explain_gradient(sal_method_ctx *cx, const float *x, int n, const int *tg, sal_maps *out) {
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
