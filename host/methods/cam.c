/* cam.c — the CAM family (Grad-CAM, Grad-CAM++, HiResCAM, XGrad-CAM, LayerCAM, Score-CAM; with
 * pytorch-grad-cam's conventions: sal_cam_final) and the one-pass sharing of several methods: a
 * forward pass capturing the CAM layer and one backward pass per image give the gradient CAMs,
 * saliency and input x gradient together (one_pass_maps, sal_explain_shared). Channels-last CAM
 * layers (TF exports, transformer tokens) are read through planes (cam_as_planes). Entries:
 * sal_explain_cam and sal_explain_shared (methods.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "methods.h"
#include "method_prims.h"
#include "post/post.h"

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
    *t = cx->top1_out[i] = sal_top1_of(lg, cx->k);
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
        *t = sal_top1_of(lg, cx->k);
        if (cx->top1_out) cx->top1_out[i] = *t;
    }
    if (!st) st = sal_method_progress(cx, 1, 0);
    float score = 0;
    if (!st) {
        memset(seed, 0, sizeof(float) * (size_t)cx->k);
        if (o->explain_prob) score = sal_prob_seed(lg, cx->k, *t, seed);
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

sal_status sal_explain_cam(sal_method_ctx *cx, const sal_model *m, const float *x, int n, const int *tg,
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
            if (!st) out->scores[i] = cx->o->explain_prob ?sal_prob_seed(lg, cx->k, t, NULL) : lg[t];
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

/* Every method of ms (nm, each sal_method_shares_pass) on n images x, per image one forward pass
 * capturing the CAM layer and one backward pass (to the layer only when no input-space method is
 * asked), out[j] the maps of ms[j] as sal_explain makes them. */
sal_status sal_explain_shared(sal_method_ctx *cx, const sal_model *m, const sal_method *ms, int nm,
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
