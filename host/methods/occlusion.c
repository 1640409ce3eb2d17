/* occlusion.c — occlusion (Zeiler & Fergus 2014) with Captum's semantics, its batches of windows
 * built and their score drops gathered on the backend, by incremental inference where the
 * backend has it (engine/incremental.h, Krypton) and by full passes otherwise. Entry:
 * sal_explain_occlusion (methods.h), called by sal_explain_impl. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "methods.h"
#include "method_prims.h"
#include "engine/incremental.h"

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
sal_status sal_explain_occlusion(sal_method_ctx *cx, const float *x, int n, const int *tg, sal_maps *out) {
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
                    sc[k] = o->explain_prob ? sal_prob_seed(z, cx->k, tg[i], NULL) : z[tg[i]];
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
