/* methods.c — the attribution methods, written once against the session's batched forward and
 * gradient passes and the shared element math of kernels/method_elem.h.
 *
 * Conventions (the field's, Captum's and pytorch-grad-cam's where they define one):
 *  - targets default to the top-1 class; logits are explained unless explain_prob is set;
 *  - input-space attributions are (C,H,W) per image, before any reduction or normalization;
 *  - CAM attributions are (h,w) at the layer's resolution, plus a bilinear upsampling to (H,W). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "methods.h"
#include "method_elem.h"
#include "post/post.h"

/* ------------------------------------------------------------------------------------------------ */
/* Names and defaults                                                                               */

static const char *method_names[SAL_M_COUNT] = {
    "saliency", "inputxgrad", "smoothgrad", "smoothgrad_sq", "vargrad", "ig", "guided",
    "occlusion", "gradcam", "gradcam++", "hirescam", "xgradcam", "layercam", "scorecam",
    "guided-gradcam", "rise", "gradshap", "kernelshap",
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
    return m >= SAL_M_GRADCAM && m <= SAL_M_SCORECAM;
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

static sal_status method_pass_once(sal_method_ctx *cx, const float *xb, int nb, const int *tg, int guided,
                                   float *grad, float *scores) {
    sal_session *s = cx->s;
    int k = cx->k;
    float *logits = malloc(sizeof(float) * (size_t)nb * (size_t)k);
    float *seed = NULL;
    sal_status st = logits ? SAL_OK : SAL_ERR_NOMEM;
    if (!st && (cx->o->explain_prob || !grad)) st = sal_forward(s, xb, nb, cx->h, cx->w, logits);
    if (!st && grad) {
        sal_grad_opts g = sal_grad_opts_default();
        g.guided_relu = guided;
        g.targets = tg;
        if (cx->o->explain_prob) {
            seed = calloc((size_t)nb * (size_t)k, sizeof(float));
            if (!seed) st = SAL_ERR_NOMEM;
            for (int i = 0; !st && i < nb; i++)
                prob_seed(logits + (size_t)i * k, k, tg[i], seed + (size_t)i * k);
            g.seed = seed;
        }
        sal_grad_out out = {0};
        out.logits = logits;
        out.input_grad = grad;
        if (!st) st = sal_gradient(s, xb, nb, cx->h, cx->w, &g, &out);
    }
    for (int i = 0; !st && i < nb; i++) {
        const float *z = logits + (size_t)i * k;
        scores[i] = cx->o->explain_prob ? prob_seed(z, k, tg[i], NULL) : z[tg[i]];
    }
    free(logits);
    free(seed);
    return st;
}

/* Out of memory (the device's, or the session's mem_limit) with more than one image: halve the
 * internal batch for the rest of this explanation and run this batch in two halves. */
sal_status sal_method_pass(sal_method_ctx *cx, const float *xb, int nb, const int *tg, int guided, float *grad,
                           float *scores) {
    sal_status st = method_pass_once(cx, xb, nb, tg, guided, grad, scores);
    if (st != SAL_ERR_NOMEM || nb < 2) return st;
    int h = nb / 2;
    if (cx->batch > h) cx->batch = h;
    st = sal_method_pass(cx, xb, h, tg, guided, grad, scores);
    if (!st)
        st = sal_method_pass(cx, xb + (int64_t)h * cx->per, nb - h, tg + h, guided,
                             grad ? grad + (int64_t)h * cx->per : NULL, scores + h);
    return st;
}

/* Gradient-type attribution of ONE image x for target t (saliency, inputxgrad, guided, ig),
 * with its own noise-free evaluation; used directly and as the noise tunnel's inner method. */
static sal_status ig_one(sal_method_ctx *cx, const float *x, const float *base, int t, float *attr,
                         float *fx, float *fb);

static sal_status grad_one_batch(sal_method_ctx *cx, sal_method m, const float *xb, int nb, int t, float *out) {
    int *tg = malloc(sizeof(int) * (size_t)nb);
    float *scores = malloc(sizeof(float) * (size_t)nb);
    sal_status st = tg && scores ? SAL_OK : SAL_ERR_NOMEM;
    for (int i = 0; !st && i < nb; i++) tg[i] = t;
    if (!st) st = sal_method_pass(cx, xb, nb, tg, m == SAL_M_GUIDED, out, scores);
    if (!st && m == SAL_M_INPUTXGRAD)
        for (int64_t i = 0; i < (int64_t)nb * cx->per; i++) out[i] *= xb[i];
    free(tg);
    free(scores);
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
/* Integrated Gradients                                                                             */

static sal_status ig_one(sal_method_ctx *cx, const float *x, const float *base, int t, float *attr,
                         float *fx, float *fb) {
    const sal_explain_opts *o = cx->o;
    int steps = o->ig_steps, B = cx->batch;
    int64_t per = cx->per;
    double *alpha = malloc(sizeof(double) * (size_t)steps), *wt = malloc(sizeof(double) * (size_t)steps);
    float *xb = malloc(sizeof(float) * (size_t)B * (size_t)per);
    float *gb = malloc(sizeof(float) * (size_t)B * (size_t)per);
    double *acc = calloc((size_t)per, sizeof(double));
    int *tg = malloc(sizeof(int) * (size_t)(B + 2));
    float *sc = malloc(sizeof(float) * (size_t)(B + 2));
    sal_status st = alpha && wt && xb && gb && acc && tg && sc ? SAL_OK : SAL_ERR_NOMEM;
    if (!st) st = sal_ig_rule_points(o->ig_rule, steps, alpha, wt);
    for (int i = 0; i < B + 2; i++) if (tg) tg[i] = t;
    for (int k0 = 0; !st && k0 < steps; k0 += B) {
        int nb = steps - k0 < B ? steps - k0 : B;
        for (int k = 0; k < nb; k++) {
            float a = (float)alpha[k0 + k];
            float *dst = xb + (size_t)k * per;
            for (int64_t i = 0; i < per; i++) dst[i] = sal_ig_point(x[i], base[i], a);
        }
        st = sal_method_pass(cx, xb, nb, tg, 0, gb, sc);
        for (int k = 0; !st && k < nb; k++) {
            const float *g = gb + (size_t)k * per;
            for (int64_t i = 0; i < per; i++) acc[i] += wt[k0 + k] * g[i];
        }
    }
    if (!st) {
        for (int64_t i = 0; i < per; i++) attr[i] = (float)((x[i] - base[i]) * acc[i]);
        memcpy(xb, x, sizeof(float) * (size_t)per);
        memcpy(xb + per, base, sizeof(float) * (size_t)per);
        if (B >= 2) st = sal_method_pass(cx, xb, 2, tg, 0, NULL, sc);
        else {
            st = sal_method_pass(cx, x, 1, tg, 0, NULL, sc);
            if (!st) st = sal_method_pass(cx, base, 1, tg, 0, NULL, sc + 1);
        }
        if (!st) { *fx = sc[0]; *fb = sc[1]; }
    }
    free(alpha); free(wt); free(xb); free(gb); free(acc); free(tg); free(sc);
    return st;
}

/* ------------------------------------------------------------------------------------------------ */
/* Input-space methods                                                                              */

static sal_status explain_gradient(sal_method_ctx *cx, const float *x, int n, const int *tg, sal_maps *out) {
    const sal_explain_opts *o = cx->o;
    int64_t per = cx->per;
    sal_status st = SAL_OK;
    switch (o->method) {
    case SAL_M_SALIENCY:
    case SAL_M_INPUTXGRAD:
    case SAL_M_GUIDED:
        for (int i0 = 0; !st && i0 < n; i0 += cx->batch) {
            int nb = n - i0 < cx->batch ? n - i0 : cx->batch;
            st = sal_method_pass(cx, x + i0 * per, nb, tg + i0, o->method == SAL_M_GUIDED, out->attr + i0 * per,
                      out->scores + i0);
            if (!st && o->method == SAL_M_INPUTXGRAD)
                for (int64_t i = 0; i < nb * per; i++) out->attr[i0 * per + i] *= x[i0 * per + i];
        }
        return st;
    case SAL_M_IG: {
        float *base = malloc(sizeof(float) * (size_t)per);
        out->completeness = calloc((size_t)n, sizeof(float));
        out->delta = calloc((size_t)n, sizeof(float));
        if (!base || !out->completeness || !out->delta) { free(base); return SAL_ERR_NOMEM; }
        for (int i = 0; !st && i < n; i++) {
            float fx, fb;
            st = sal_method_baseline(cx, x + i * per, i, base);
            if (!st) st = ig_one(cx, x + i * per, base, tg[i], out->attr + i * per, &fx, &fb);
            if (st) break;
            double sum = 0;
            for (int64_t j = 0; j < per; j++) sum += out->attr[i * per + j];
            out->scores[i] = fx;
            out->delta[i] = fx - fb;
            out->completeness[i] = (float)fabs(sum - ((double)fx - fb));
        }
        free(base);
        return st;
    }
    case SAL_M_SMOOTHGRAD:
    case SAL_M_SMOOTHGRAD_SQ:
    case SAL_M_VARGRAD: {
        sal_method inner = o->nt_inner;
        int S = o->nt_samples, B = inner == SAL_M_IG ? 1 : cx->batch;
        float *xb = malloc(sizeof(float) * (size_t)B * (size_t)per);
        float *gb = malloc(sizeof(float) * (size_t)B * (size_t)per);
        float *base = malloc(sizeof(float) * (size_t)per);
        double *sum = malloc(sizeof(double) * (size_t)per), *sq = malloc(sizeof(double) * (size_t)per);
        int *t1 = malloc(sizeof(int) * (size_t)B);
        float *sc = malloc(sizeof(float) * (size_t)B);
        if (!xb || !gb || !base || !sum || !sq || !t1 || !sc) st = SAL_ERR_NOMEM;
        for (int i = 0; !st && i < n; i++) {
            const float *xi = x + i * per;
            float lo = xi[0], hi = xi[0];
            for (int64_t j = 1; j < per; j++) { if (xi[j] < lo) lo = xi[j]; if (xi[j] > hi) hi = xi[j]; }
            float sigma = o->nt_sigma * (hi - lo);
            memset(sum, 0, sizeof(double) * (size_t)per);
            memset(sq, 0, sizeof(double) * (size_t)per);
            for (int s0 = 0; !st && s0 < S; s0 += B) {
                int nb = S - s0 < B ? S - s0 : B;
                for (int k = 0; k < nb; k++)
                    for (int64_t j = 0; j < per; j++)
                        xb[k * per + j] = xi[j] + sigma * sal_normal(o->seed, SAL_RNG_SMOOTHGRAD, (uint32_t)i,
                                                                     (uint32_t)(s0 + k), (uint64_t)j);
                if (inner == SAL_M_IG) {
                    float fx, fb;
                    st = sal_method_baseline(cx, xb, i, base);
                    if (!st) st = ig_one(cx, xb, base, tg[i], gb, &fx, &fb);
                } else {
                    st = grad_one_batch(cx, inner, xb, nb, tg[i], gb);
                }
                for (int k = 0; !st && k < nb; k++)
                    for (int64_t j = 0; j < per; j++) {
                        double v = gb[k * per + j];
                        sum[j] += v;
                        sq[j] += v * v;
                    }
            }
            for (int64_t j = 0; !st && j < per; j++) {
                double mean = sum[j] / S, msq = sq[j] / S;
                out->attr[i * per + j] = (float)(o->method == SAL_M_SMOOTHGRAD ? mean
                                                 : o->method == SAL_M_SMOOTHGRAD_SQ ? msq : msq - mean * mean);
            }
            for (int k = 0; k < B && t1; k++) t1[k] = tg[i];
            if (!st) st = sal_method_pass(cx, xi, 1, t1, 0, NULL, out->scores + i);
        }
        free(xb); free(gb); free(base); free(sum); free(sq); free(t1); free(sc);
        return st;
    }
    default: return SAL_ERR_INVALID_ARG;
    }
}

/* Occlusion with Captum's semantics: windows over all channels at starts 0, s, 2s... with
 * ceil((D - win) / s) + 1 positions per axis (the last may hang over the edge), attribution =
 * mean score drop over the windows covering each pixel. */
static sal_status explain_occlusion(sal_method_ctx *cx, const float *x, int n, const int *tg, sal_maps *out) {
    const sal_explain_opts *o = cx->o;
    int H = cx->h, W = cx->w, C = cx->c, B = cx->batch;
    int64_t per = cx->per, hw = (int64_t)H * W;
    int ny = (int)ceil((double)(H - o->occ_h) / o->occ_stride_h) + 1;
    int nx = (int)ceil((double)(W - o->occ_w) / o->occ_stride_w) + 1;
    int nwin = ny * nx;
    float *xb = malloc(sizeof(float) * (size_t)B * (size_t)per);
    float *fill = malloc(sizeof(float) * (size_t)per);
    float *sc = malloc(sizeof(float) * (size_t)(B + 1));
    int *t1 = malloc(sizeof(int) * (size_t)(B + 1));
    double *acc = malloc(sizeof(double) * (size_t)hw);
    int *cnt = malloc(sizeof(int) * (size_t)hw);
    sal_status st = xb && fill && sc && t1 && acc && cnt ? SAL_OK : SAL_ERR_NOMEM;
    for (int i = 0; !st && i < n; i++) {
        const float *xi = x + i * per;
        for (int k = 0; k <= B; k++) t1[k] = tg[i];
        if (o->occ_fill == 1) {
            for (int c = 0; c < C; c++) {
                double m = 0;
                for (int64_t j = 0; j < hw; j++) m += xi[c * hw + j];
                for (int64_t j = 0; j < hw; j++) fill[c * hw + j] = (float)(m / hw);
            }
        } else if (o->occ_fill == 2) {
            sal_box_blur(xi, C, H, W, o->blur_radius, fill);
        } else {
            memset(fill, 0, sizeof(float) * (size_t)per);
        }
        st = sal_method_pass(cx, xi, 1, t1, 0, NULL, &out->scores[i]);
        memset(acc, 0, sizeof(double) * (size_t)hw);
        memset(cnt, 0, sizeof(int) * (size_t)hw);
        for (int w0 = 0; !st && w0 < nwin; w0 += B) {
            int nb = nwin - w0 < B ? nwin - w0 : B;
            for (int k = 0; k < nb; k++) {
                int y0 = ((w0 + k) / nx) * o->occ_stride_h, x0 = ((w0 + k) % nx) * o->occ_stride_w;
                float *dst = xb + (size_t)k * per;
                /* the image, then the window's rows (clipped at the border) from the fill */
                memcpy(dst, xi, sizeof(float) * (size_t)per);
                int y1 = y0 + o->occ_h < H ? y0 + o->occ_h : H, x1 = x0 + o->occ_w < W ? x0 + o->occ_w : W;
                for (int c = 0; c < C; c++)
                    for (int y = y0; y < y1; y++) {
                        int64_t j = c * hw + (int64_t)y * W + x0;
                        memcpy(dst + j, fill + j, sizeof(float) * (size_t)(x1 - x0));
                    }
            }
            st = sal_method_pass(cx, xb, nb, t1, 0, NULL, sc);
            for (int k = 0; !st && k < nb; k++) {
                int y0 = ((w0 + k) / nx) * o->occ_stride_h, x0 = ((w0 + k) % nx) * o->occ_stride_w;
                double drop = (double)out->scores[i] - sc[k];
                for (int y = y0; y < y0 + o->occ_h && y < H; y++)
                    for (int xx = x0; xx < x0 + o->occ_w && xx < W; xx++) {
                        acc[(int64_t)y * W + xx] += drop;
                        cnt[(int64_t)y * W + xx]++;
                    }
            }
        }
        for (int c = 0; !st && c < C; c++)
            for (int64_t j = 0; j < hw; j++)
                out->attr[i * per + c * hw + j] = cnt[j] ? (float)(acc[j] / cnt[j]) : 0.f;
    }
    free(xb); free(fill); free(sc); free(t1); free(acc); free(cnt);
    return st;
}

/* ------------------------------------------------------------------------------------------------ */
/* CAM family                                                                                       */

/* The default CAM layer: the last node whose output is 4-D with spatial size above 1x1. */
static sal_status default_layer(sal_method_ctx *cx, const sal_model *m, char *name, size_t len) {
    int nl = sal_model_num_layers(m);
    for (int i = nl - 1; i >= 0; i--) {
        int nd;
        int64_t d[SAL_MAX_DIMS];
        if (sal_session_layer_shape(cx->s, i, &nd, d)) continue;
        if (nd == 4 && d[2] * d[3] > 1) {
            sal_layer_info L;
            sal_model_layer(m, i, &L);
            snprintf(name, len, "%s", L.name);
            return SAL_OK;
        }
    }
    return SAL_ERR_NOT_FOUND;
}

/* pytorch-grad-cam's presentation of a CAM: m = (L - min) / (1e-7 + max(L - min)), bilinear
 * (half-pixel, cv2's INTER_LINEAR) to the input size, ReLU, and the same scaling again. With
 * relu == 0 (signed maps) the map is instead upsampled and divided by max|L|. */
static sal_status cam_final(const float *L, int lh, int lw, float *out, int h, int w, int relu) {
    int64_t n = (int64_t)lh * lw, N = (int64_t)h * w;
    float *m = malloc(sizeof(float) * (size_t)n);
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

static sal_status explain_cam(sal_method_ctx *cx, const sal_model *m, const float *x, int n, const int *tg,
                              sal_maps *out) {
    const sal_explain_opts *o = cx->o;
    sal_status st;
    if (o->layer && *o->layer) snprintf(out->layer, sizeof out->layer, "%s", o->layer);
    else if ((st = default_layer(cx, m, out->layer, sizeof out->layer)))
        return st;
    int nd;
    int64_t d[SAL_MAX_DIMS];
    /* plan with capture to learn the layer's shape */
    sal_grad_opts g = sal_grad_opts_default();
    g.layer = out->layer;
    g.need_input_grad = 0;
    st = sal_session_plan(cx->s, 1, cx->h, cx->w);
    if (st) return st;
    st = sal_session_value_shape(cx->s, out->layer, &nd, d);
    if (st) return st;
    if (nd != 4) return SAL_ERR_SHAPE;
    int64_t lc = d[1], lh = d[2], lw = d[3], lhw = lh * lw;
    out->ndim = 2;
    out->dims[0] = lh;
    out->dims[1] = lw;
    out->dims[2] = 0;
    free(out->attr);
    out->attr = calloc((size_t)n * (size_t)lhw, sizeof(float));
    out->upsampled = calloc((size_t)n * (size_t)cx->h * cx->w, sizeof(float));
    float *act = malloc(sizeof(float) * (size_t)lc * (size_t)lhw);
    float *grad = malloc(sizeof(float) * (size_t)lc * (size_t)lhw);
    float *wts = malloc(sizeof(float) * (size_t)lc);
    if (!out->attr || !out->upsampled || !act || !grad || !wts) { free(act); free(grad); free(wts); return SAL_ERR_NOMEM; }
    for (int i = 0; i < n && !st; i++) {
        const float *xi = x + i * cx->per;
        float *cam = out->attr + i * lhw;
        if (o->method == SAL_M_SCORECAM) {
            /* activations only (forward with capture), then masked forward passes */
            sal_grad_out go = {0};
            go.layer_act = act;
            int t = tg[i];
            g.targets = &t;
            st = sal_gradient(cx->s, xi, 1, cx->h, cx->w, &g, &go);
            if (st) break;
            int B = cx->batch;
            float *xb = malloc(sizeof(float) * (size_t)B * (size_t)cx->per);
            float *up = malloc(sizeof(float) * (size_t)cx->h * cx->w);
            float *sc = malloc(sizeof(float) * (size_t)B);
            int *t1 = malloc(sizeof(int) * (size_t)B);
            if (!xb || !up || !sc || !t1) st = SAL_ERR_NOMEM;
            for (int k = 0; k < B && t1; k++) t1[k] = t;
            for (int64_t c0 = 0; !st && c0 < lc; c0 += B) {
                int nb = lc - c0 < B ? (int)(lc - c0) : B;
                for (int k = 0; k < nb; k++) {
                    /* pytorch-grad-cam: UpsamplingBilinear2d (align_corners=True), then
                     * (up - min) / (max - min + 1e-8) per channel */
                    for (int y = 0; y < cx->h; y++)
                        for (int xx = 0; xx < cx->w; xx++)
                            up[y * cx->w + xx] = sal_bilinear_ac(act + (c0 + k) * lhw, (int)lh, (int)lw, cx->h, cx->w, y, xx);
                    float mn = up[0], mx = up[0];
                    for (int64_t j = 1; j < (int64_t)cx->h * cx->w; j++) { if (up[j] < mn) mn = up[j]; if (up[j] > mx) mx = up[j]; }
                    for (int ch = 0; ch < cx->c; ch++)
                        for (int64_t j = 0; j < (int64_t)cx->h * cx->w; j++) {
                            float mask = (up[j] - mn) / (mx - mn + 1e-8f);
                            xb[k * cx->per + ch * (int64_t)cx->h * cx->w + j] = xi[ch * (int64_t)cx->h * cx->w + j] * mask;
                        }
                }
                st = sal_method_pass(cx, xb, nb, t1, 0, NULL, sc);
                for (int k = 0; !st && k < nb; k++) wts[c0 + k] = sc[k];
            }
            if (!st) {   /* softmax over channels */
                float mx = wts[0];
                double sum = 0;
                for (int64_t c = 1; c < lc; c++) if (wts[c] > mx) mx = wts[c];
                for (int64_t c = 0; c < lc; c++) sum += exp(wts[c] - mx);
                for (int64_t c = 0; c < lc; c++) wts[c] = (float)(exp(wts[c] - mx) / sum);
                for (int64_t c = 0; c < lc; c++)
                    for (int64_t j = 0; j < lhw; j++) cam[j] += wts[c] * act[c * lhw + j];
            }
            free(xb); free(up); free(sc); free(t1);
            if (!st) st = sal_method_pass(cx, xi, 1, &t, 0, NULL, out->scores + i);
        } else {
            sal_grad_out go = {0};
            go.layer_act = act;
            go.layer_grad = grad;
            int t = tg[i];
            g.targets = &t;
            g.need_input_grad = 0;
            if (o->explain_prob) {
                /* probability seed: the logits first, then the backward from d p_t / d z */
                float *lg = malloc(sizeof(float) * (size_t)cx->k);
                float *seed = calloc((size_t)cx->k, sizeof(float));
                if (!lg || !seed) st = SAL_ERR_NOMEM;
                if (!st) st = sal_forward(cx->s, xi, 1, cx->h, cx->w, lg);
                if (!st) {
                    out->scores[i] = prob_seed(lg, cx->k, t, seed);
                    g.seed = seed;
                    st = sal_gradient(cx->s, xi, 1, cx->h, cx->w, &g, &go);
                    g.seed = NULL;
                }
                free(lg);
                free(seed);
            } else {
                float *lg = malloc(sizeof(float) * (size_t)cx->k);
                go.logits = lg;
                st = lg ? sal_gradient(cx->s, xi, 1, cx->h, cx->w, &g, &go) : SAL_ERR_NOMEM;
                if (!st) out->scores[i] = lg[t];
                free(lg);
            }
            if (st) break;
            for (int64_t c = 0; c < lc; c++) {
                const float *A = act + c * lhw, *G = grad + c * lhw;
                double wsum = 0, asum = 0;
                switch (o->method) {
                case SAL_M_GRADCAM:
                case SAL_M_GUIDED_GRADCAM:
                    for (int64_t j = 0; j < lhw; j++) wsum += G[j];
                    wts[c] = (float)(wsum / lhw);
                    break;
                case SAL_M_XGRADCAM:
                    for (int64_t j = 0; j < lhw; j++) { wsum += (double)G[j] * A[j]; asum += A[j]; }
                    wts[c] = (float)(wsum / (asum + 1e-7));
                    break;
                case SAL_M_GRADCAMPP:
                    for (int64_t j = 0; j < lhw; j++) asum += A[j];
                    for (int64_t j = 0; j < lhw; j++) wsum += sal_gradcampp_elem(G[j], (float)asum);
                    wts[c] = (float)wsum;
                    break;
                default: wts[c] = 0; break;
                }
            }
            for (int64_t j = 0; j < lhw; j++) {
                double v = 0;
                for (int64_t c = 0; c < lc; c++) {
                    float A = act[c * lhw + j], G = grad[c * lhw + j];
                    if (o->method == SAL_M_HIRESCAM) v += (double)G * A;
                    else if (o->method == SAL_M_LAYERCAM) v += (double)(G > 0 ? G : 0) * A;
                    else v += (double)wts[c] * A;
                }
                cam[j] = (float)v;
            }
        }
        if (!st && o->cam_relu)
            for (int64_t j = 0; j < lhw; j++) if (cam[j] < 0) cam[j] = 0;
        if (!st) st = cam_final(cam, (int)lh, (int)lw, out->upsampled + (int64_t)i * cx->h * cx->w, cx->h, cx->w, o->cam_relu);
    }
    free(act);
    free(grad);
    free(wts);
    return st;
}

/* ------------------------------------------------------------------------------------------------ */
/* Entry point                                                                                      */

sal_status sal_explain_impl(sal_session *s, const sal_model *m, const sal_explain_opts *o,
                            const float *x, int n, int h, int w, const int *targets, sal_maps *out,
                            sal_error *err) {
    memset(out, 0, sizeof *out);
    if (!o || !x || n <= 0) return sal_fail(err, SAL_ERR_INVALID_ARG, "explain: no input");
    if (o->method < 0 || o->method >= SAL_M_COUNT)
        return sal_fail(err, SAL_ERR_INVALID_ARG, "explain: unknown method %d", (int)o->method);
    sal_method_ctx cx = {0};
    cx.s = s;
    cx.o = o;
    sal_tensor_info in;
    sal_model_input(m, 0, &in);
    cx.c = (int)in.dims[1];
    cx.h = in.dims[2] > 0 ? (int)in.dims[2] : h;
    cx.w = in.dims[3] > 0 ? (int)in.dims[3] : w;
    cx.per = (int64_t)cx.c * cx.h * cx.w;
    sal_status st = SAL_OK;
    cx.batch = o->batch;
    if (cx.batch <= 0 && (st = sal_session_auto_batch(s, cx.h, cx.w, 0, 0, &cx.batch, NULL, NULL)))
        return sal_fail(err, st, "%s", sal_session_error(s));
    st = sal_session_plan(s, 1, cx.h, cx.w);
    if (st) return sal_fail(err, st, "%s", sal_session_error(s));
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
    } else {
        float *lg = malloc(sizeof(float) * (size_t)cx.k);
        for (int i = 0; i < n && !st; i++) {
            st = lg ? sal_forward(s, x + i * cx.per, 1, cx.h, cx.w, lg) : SAL_ERR_NOMEM;
            int best = 0;
            for (int j = 1; !st && j < cx.k; j++) if (lg[j] > lg[best]) best = j;
            out->targets[i] = best;
        }
        free(lg);
        if (st) { sal_maps_free(out); return sal_fail(err, st, "%s", sal_session_error(s)); }
    }
    if (!sal_method_is_cam(o->method)) {
        out->ndim = 3;
        out->dims[0] = cx.c;
        out->dims[1] = cx.h;
        out->dims[2] = cx.w;
        out->attr = calloc((size_t)n * (size_t)cx.per, sizeof(float));
        if (!out->attr) { sal_maps_free(out); return sal_fail(err, SAL_ERR_NOMEM, "out of memory"); }
    }
    if (o->method == SAL_M_OCCLUSION) st = explain_occlusion(&cx, x, n, out->targets, out);
    else if (sal_method_is_cam(o->method)) st = explain_cam(&cx, m, x, n, out->targets, out);
    else if (o->method == SAL_M_GUIDED_GRADCAM) {
        /* guided backprop times the Grad-CAM map upsampled to the input */
        sal_explain_opts o2 = *o;
        o2.method = SAL_M_GRADCAM;
        cx.o = &o2;
        sal_maps cam = {0};
        cam.scores = calloc((size_t)n, sizeof(float));
        st = cam.scores ? explain_cam(&cx, m, x, n, out->targets, &cam) : SAL_ERR_NOMEM;
        o2.method = SAL_M_GUIDED;
        if (!st) st = explain_gradient(&cx, x, n, out->targets, out);
        if (!st) {
            /* Captum's GuidedGradCam: the ReLU'd Grad-CAM layer map, nearest-upsampled (source
             * pixel floor(y * lh / H)), times the guided backprop attribution */
            int64_t hw = (int64_t)cx.h * cx.w, lh = cam.dims[0], lw = cam.dims[1];
            for (int i = 0; i < n; i++)
                for (int c = 0; c < cx.c; c++)
                    for (int y = 0; y < cx.h; y++)
                        for (int xx = 0; xx < cx.w; xx++) {
                            float v = cam.attr[i * lh * lw + (y * lh / cx.h) * lw + (xx * lw / cx.w)];
                            out->attr[i * cx.per + c * hw + (int64_t)y * cx.w + xx] *= v;
                        }
            snprintf(out->layer, sizeof out->layer, "%s", cam.layer);
        }
        sal_maps_free(&cam);
    } else if (o->method == SAL_M_RISE) st = sal_explain_rise(&cx, x, n, out->targets, out);
    else if (o->method == SAL_M_GRADSHAP) st = sal_explain_gradshap(&cx, x, n, out->targets, out);
    else if (o->method == SAL_M_KERNELSHAP) st = sal_explain_kernelshap(&cx, x, n, out->targets, out);
    else st = explain_gradient(&cx, x, n, out->targets, out);
    if (st) {
        const char *why = sal_session_error(s);
        sal_maps_free(out);
        if (st == SAL_ERR_NOT_FOUND && !(o->layer && *o->layer))
            return sal_fail(err, st, "no layer with a 4-D output larger than 1x1 for a CAM method: give --layer");
        return sal_fail(err, st, "%s: %s", sal_method_name(o->method), why && *why ? why : sal_status_str(st));
    }
    out->batch = cx.batch;
    return SAL_OK;
}
