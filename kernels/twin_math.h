/* twin_math.h — twin element functions (kernels/twin.h) of issue 13's math ops: the unary functions
 * (Sqrt, Erf, Gelu, Selu, Elu, Softplus, Pow by a constant scalar), Pow of two broadcast tensors,
 * LayerNormalization and the reductions ReduceSum / ReduceMax (GlobalMaxPool is a ReduceMax).
 * Plans: host/backend/twin/plan_math.c. The CPU backend runs these same functions in OpenMP loops
 * (host/backend/cpu/cpu_twin_ops.c), so the two devices share one body of math.
 *
 * What each plan puts in sal_tw_args (besides in/out/gout/gin):
 *   un_*:    k0 = SAL_TW_UN_* code, p.s (Selu alpha/beta = alpha/gamma, Elu alpha, Pow alpha = e);
 *            un_bwd reads y = in[1]
 *   pow_*:   p.pw.b (general broadcast); pow_bwd: k1 = which input, gin[0] its gradient, one call
 *            per element of that input, summing every output position that read it (in double)
 *   ln_*:    p.ln; in[0..2] = x, Scale, B (B may be NULL); ln_fwd: one call per row, out[1] /
 *            out[2] (Mean, InvStdDev; may be NULL); ln_bwd_x: one call per row;
 *            ln_bwd_param: k1 = 0 (Scale) or 1 (B), one call per normalized position
 *   red_*:   p.ax (from ReduceMean's infer), k0 = 0 sum, 1 max; one call per output element; the
 *            backward scatters into that element's own group (groups are disjoint)
 *   convt_*: p.cv (x (n, c, h, w), W (c, m/group, kh, kw), y (n, m, oh, ow)); in[0..2] = x, W, B
 *            (B may be NULL); convt_fwd one call per output element, convt_bwd (backward-data,
 *            a convolution of gy with W) one call per input element
 */
#ifndef SAL_TWIN_MATH_H
#define SAL_TWIN_MATH_H

#include "twin.h"
#include "twin_elem.h"   /* sal_tw_bc_index */

#include <math.h>
#include <stdint.h>

#define SAL_TW_MATH_FUNCS(X)                                                                      \
    X(un_fwd) X(un_bwd) X(pow_fwd) X(pow_bwd) X(ln_fwd) X(ln_bwd_x) X(ln_bwd_param)             \
    X(red_fwd) X(red_bwd) X(convt_fwd) X(convt_bwd)

/* Unary codes (args k0). */
enum { SAL_TW_UN_SQRT = 0, SAL_TW_UN_ERF, SAL_TW_UN_GELU, SAL_TW_UN_GELU_TANH, SAL_TW_UN_SELU,
       SAL_TW_UN_ELU, SAL_TW_UN_SOFTPLUS, SAL_TW_UN_POWS };

/* ------------------------------------------------------------------------------------------------ */
/* Unary math: y = f(x) and dL/dx from x, y and g                                                   */

#define SAL_TW_SQRT_2_OVER_PI 0.7978845608028654f
#define SAL_TW_INV_SQRT_2 0.7071067811865476f
#define SAL_TW_INV_SQRT_2PI 0.3989422804014327f

SAL_HD float sal_un_f(int fn, float x, const sal_scalar_params *p) {
    switch (fn) {
    case SAL_TW_UN_SQRT: return sqrtf(x);
    case SAL_TW_UN_ERF: return erff(x);
    case SAL_TW_UN_GELU: return 0.5f * x * (1.f + erff(x * SAL_TW_INV_SQRT_2));
    case SAL_TW_UN_GELU_TANH:
        return 0.5f * x * (1.f + tanhf(SAL_TW_SQRT_2_OVER_PI * (x + 0.044715f * x * x * x)));
    case SAL_TW_UN_SELU: return p->beta * (x > 0.f ? x : p->alpha * (expf(x) - 1.f));
    case SAL_TW_UN_ELU: return x > 0.f ? x : p->alpha * (expf(x) - 1.f);
    case SAL_TW_UN_SOFTPLUS:   /* log(1 + e^x) without overflow */
        return x > 0.f ? x + log1pf(expf(-x)) : log1pf(expf(x));
    default: return powf(x, p->alpha);
    }
}

/* Derivatives follow PyTorch's: Sqrt 0.5 / y (inf at 0); Selu/Elu take the x <= 0 branch at 0;
 * Pow e * x^(e-1), 0 when e == 0. */
SAL_HD float sal_un_d(int fn, float x, float y, float g, const sal_scalar_params *p) {
    switch (fn) {
    case SAL_TW_UN_SQRT: return g * 0.5f / y;
    case SAL_TW_UN_ERF: return g * 1.1283791670955126f * expf(-x * x);
    case SAL_TW_UN_GELU:
        return g * (0.5f * (1.f + erff(x * SAL_TW_INV_SQRT_2)) +
                    x * SAL_TW_INV_SQRT_2PI * expf(-0.5f * x * x));
    case SAL_TW_UN_GELU_TANH: {
        const float u = SAL_TW_SQRT_2_OVER_PI * (x + 0.044715f * x * x * x);
        const float t = tanhf(u);
        const float du = SAL_TW_SQRT_2_OVER_PI * (1.f + 3.f * 0.044715f * x * x);
        return g * (0.5f * (1.f + t) + 0.5f * x * (1.f - t * t) * du);
    }
    case SAL_TW_UN_SELU: return g * p->beta * (x > 0.f ? 1.f : p->alpha * expf(x));
    case SAL_TW_UN_ELU: return g * (x > 0.f ? 1.f : p->alpha * expf(x));
    case SAL_TW_UN_SOFTPLUS: {   /* sigmoid(x) */
        const float e = expf(-fabsf(x));
        return g * (x >= 0.f ? 1.f / (1.f + e) : e / (1.f + e));
    }
    default: return p->alpha == 0.f ? 0.f : g * p->alpha * powf(x, p->alpha - 1.f);
    }
}

SAL_HD void sal_tw_un_fwd(int64_t i, const sal_tw_args *a) {
    a->out[0][i] = sal_un_f((int)a->k0, a->in[0][i], &a->p.s);
}
SAL_HD void sal_tw_un_bwd(int64_t i, const sal_tw_args *a) {
    a->gin[0][i] += sal_un_d((int)a->k0, a->in[0][i], a->in[1][i], a->gout[0][i], &a->p.s);
}

/* ------------------------------------------------------------------------------------------------ */
/* Pow of two broadcast tensors                                                                     */

/* dL/dx (which 0) or dL/de (which 1) of y = x^e. The exponent's follows PyTorch: y * log(x),
 * 0 where x == 0 and e >= 0 (NaN for negative x). */
SAL_HD float sal_pow_d(int which, float x, float e, float g) {
    if (!which) return e == 0.f ? 0.f : g * e * powf(x, e - 1.f);
    if (x == 0.f && e >= 0.f) return 0.f;
    return g * powf(x, e) * logf(x);
}

SAL_HD void sal_tw_pow_fwd(int64_t i, const sal_tw_args *a) {
    int64_t ox, oe;
    sal_tw_bc_index(&a->p.pw.b, i, &ox, &oe);
    a->out[0][i] = powf(a->in[0][ox], a->in[1][oe]);
}

/* Input element j of x (k1 = 0) or e (k1 = 1): the sum over the output positions that read it,
 * by an odometer over the dims that input is broadcast on (row-major), in double. */
SAL_HD void sal_tw_pow_bwd(int64_t j, const sal_tw_args *a) {
    const sal_bcast_params *p = &a->p.pw.b;
    const int which = (int)a->k1;
    const int64_t *sw = which ? p->sb : p->sa;
    int64_t so[SAL_MAX_DIMS], cr[SAL_MAX_DIMS];
    int red[SAL_MAX_DIMS], nr = 0;
    int64_t s = 1, nred = 1;
    for (int d = p->ndim - 1; d >= 0; d--) { so[d] = s; s *= p->out[d]; }
    int64_t oo = 0, oa = 0, ob = 0, r = j;
    for (int d = p->ndim - 1; d >= 0; d--) {
        if (sw[d] == 0) continue;
        const int64_t q = r / p->out[d], c = r - q * p->out[d];
        oo += c * so[d];
        oa += c * p->sa[d];
        ob += c * p->sb[d];
        r = q;
    }
    for (int d = 0; d < p->ndim; d++)
        if (sw[d] == 0 && p->out[d] > 1) { red[nr++] = d; nred *= p->out[d]; }
    for (int u = 0; u < nr; u++) cr[u] = 0;
    double sum = 0;
    for (int64_t t = 0; t < nred; t++) {
        sum += sal_pow_d(which, a->in[0][oa], a->in[1][ob], a->gout[0][oo]);
        for (int u = nr - 1; u >= 0; u--) {
            const int d = red[u];
            oo += so[d];
            oa += p->sa[d];
            ob += p->sb[d];
            if (++cr[u] < p->out[d]) break;
            oo -= so[d] * p->out[d];
            oa -= p->sa[d] * p->out[d];
            ob -= p->sb[d] * p->out[d];
            cr[u] = 0;
        }
    }
    a->gin[0][j] += (float)sum;
}

/* ------------------------------------------------------------------------------------------------ */
/* LayerNormalization: x (rows, len); y = (x - mean) / sqrt(var + eps) * Scale + B                  */

/* Mean and 1/sqrt(var + eps) of row r, in double (two passes). */
SAL_HD void sal_ln__stats(const sal_ln_params *p, const float *xr, double *mean, double *inv) {
    double s = 0;
    for (int64_t k = 0; k < p->len; k++) s += xr[k];
    const double m = p->len > 0 ? s / (double)p->len : 0.0;
    double v = 0;
    for (int64_t k = 0; k < p->len; k++) v += ((double)xr[k] - m) * ((double)xr[k] - m);
    v = p->len > 0 ? v / (double)p->len : 0.0;
    *mean = m;
    *inv = 1.0 / sqrt(v + (double)p->epsilon);
}

SAL_HD float sal_ln__scale(const sal_tw_args *a, int64_t k) {
    return a->in[1][a->p.ln.scale_n == 1 ? 0 : k];
}
SAL_HD float sal_ln__bias(const sal_tw_args *a, int64_t k) {
    return a->p.ln.bias_n == 0 ? 0.f : a->in[2][a->p.ln.bias_n == 1 ? 0 : k];
}

SAL_HD void sal_tw_ln_fwd(int64_t r, const sal_tw_args *a) {
    const sal_ln_params *p = &a->p.ln;
    const float *xr = a->in[0] + r * p->len;
    float *yr = a->out[0] + r * p->len;
    double m, inv;
    sal_ln__stats(p, xr, &m, &inv);
    for (int64_t k = 0; k < p->len; k++)
        yr[k] = (float)(((double)xr[k] - m) * inv) * sal_ln__scale(a, k) + sal_ln__bias(a, k);
    if (a->out[1]) a->out[1][r] = (float)m;
    if (a->out[2]) a->out[2][r] = (float)inv;
}

/* dx = inv * (gs - mean(gs) - xhat * mean(gs * xhat)), gs = g * Scale, per row in double */
SAL_HD void sal_tw_ln_bwd_x(int64_t r, const sal_tw_args *a) {
    const sal_ln_params *p = &a->p.ln;
    const float *xr = a->in[0] + r * p->len, *gr = a->gout[0] + r * p->len;
    float *dx = a->gin[0] + r * p->len;
    double m, inv;
    sal_ln__stats(p, xr, &m, &inv);
    double sg = 0, sgx = 0;
    for (int64_t k = 0; k < p->len; k++) {
        const double gs = (double)gr[k] * sal_ln__scale(a, k), xh = ((double)xr[k] - m) * inv;
        sg += gs;
        sgx += gs * xh;
    }
    const double n = (double)p->len;
    for (int64_t k = 0; k < p->len; k++) {
        const double gs = (double)gr[k] * sal_ln__scale(a, k), xh = ((double)xr[k] - m) * inv;
        dx[k] += (float)(inv * (gs - sg / n - xh * sgx / n));
    }
}

/* Gradient of Scale (k1 = 0) or B (k1 = 1) at normalized position k (k = 0 only when it has one
 * element: then summed over the row too): the sum over rows, in double. */
SAL_HD void sal_tw_ln_bwd_param(int64_t k, const sal_tw_args *a) {
    const sal_ln_params *p = &a->p.ln;
    const int which = (int)a->k1;
    const int64_t n = which ? p->bias_n : p->scale_n;
    const int64_t k0 = n == 1 ? 0 : k, k1 = n == 1 ? p->len : k + 1;
    double s = 0;
    for (int64_t r = 0; r < p->rows; r++) {
        const float *xr = a->in[0] + r * p->len, *gr = a->gout[0] + r * p->len;
        double m = 0, inv = 0;
        if (!which) sal_ln__stats(p, xr, &m, &inv);
        for (int64_t q = k0; q < k1; q++)
            s += which ? (double)gr[q] : (double)gr[q] * (((double)xr[q] - m) * inv);
    }
    a->gin[0][k] += (float)s;
}

/* ------------------------------------------------------------------------------------------------ */
/* ReduceSum / ReduceMax over sal_axis_params' merged dims (rdims, rmask)                          */

/* Offset in x of output element j's first reduced element, and the reduced dims' sizes and
 * strides (x order, last fastest). */
SAL_HD int sal_red__setup(const sal_axis_params *p, int64_t j, int64_t *base, int64_t *rd, int64_t *rs) {
    int64_t st[SAL_MAX_DIMS], s = 1;
    for (int d = p->rdim - 1; d >= 0; d--) { st[d] = s; s *= p->rdims[d]; }
    int64_t b = 0, r = j;
    for (int d = p->rdim - 1; d >= 0; d--) {
        if (p->rmask & (1u << d)) continue;
        const int64_t q = r / p->rdims[d];
        b += (r - q * p->rdims[d]) * st[d];
        r = q;
    }
    int nr = 0;
    for (int d = 0; d < p->rdim; d++)
        if (p->rmask & (1u << d)) { rd[nr] = p->rdims[d]; rs[nr] = st[d]; nr++; }
    *base = b;
    return nr;
}

/* Offset of reduced element t (row-major over rd) from the base. */
SAL_HD int64_t sal_red__off(int nr, const int64_t *rd, const int64_t *rs, int64_t t) {
    int64_t o = 0;
    for (int u = nr - 1; u >= 0; u--) {
        const int64_t q = t / rd[u];
        o += (t - q * rd[u]) * rs[u];
        t = q;
    }
    return o;
}

/* Offset of the first maximum (NaN wins, as in PyTorch's max) of output j's group; -1 if empty. */
SAL_HD int64_t sal_red__argmax(const sal_axis_params *p, const float *x, int64_t j) {
    int64_t base, rd[SAL_MAX_DIMS], rs[SAL_MAX_DIMS];
    const int nr = sal_red__setup(p, j, &base, rd, rs);
    int64_t best = -1;
    float bv = 0.f;
    for (int64_t t = 0; t < p->count; t++) {
        const int64_t o = base + sal_red__off(nr, rd, rs, t);
        const float v = x[o];
        if (best < 0 || v > bv || (v != v && bv == bv)) { best = o; bv = v; }
    }
    return best;
}

SAL_HD void sal_tw_red_fwd(int64_t j, const sal_tw_args *a) {
    const sal_axis_params *p = &a->p.ax;
    const float *x = a->in[0];
    if (a->k0) {
        const int64_t o = sal_red__argmax(p, x, j);
        a->out[0][j] = o < 0 ? -INFINITY : x[o];
        return;
    }
    int64_t base, rd[SAL_MAX_DIMS], rs[SAL_MAX_DIMS];
    const int nr = sal_red__setup(p, j, &base, rd, rs);
    double s = 0;
    for (int64_t t = 0; t < p->count; t++) s += x[base + sal_red__off(nr, rd, rs, t)];
    a->out[0][j] = (float)s;
}

/* Output element j's gradient into its group: every element (sum) or the first maximum (max). */
SAL_HD void sal_tw_red_bwd(int64_t j, const sal_tw_args *a) {
    const sal_axis_params *p = &a->p.ax;
    const float g = a->gout[0][j];
    if (a->k0) {
        const int64_t o = sal_red__argmax(p, a->in[0], j);
        if (o >= 0) a->gin[0][o] += g;
        return;
    }
    int64_t base, rd[SAL_MAX_DIMS], rs[SAL_MAX_DIMS];
    const int nr = sal_red__setup(p, j, &base, rd, rs);
    for (int64_t t = 0; t < p->count; t++) a->gin[0][base + sal_red__off(nr, rd, rs, t)] += g;
}

/* ------------------------------------------------------------------------------------------------ */
/* ConvTranspose: y[n, m, oy, ox] = B[m] + sum over c of m's group and taps (ky, kx) with          */
/* oy = iy*sh - pt + ky*dh, ox = ix*sw - pl + kx*dw of x[n, c, iy, ix] * W[c, m % mg, ky, kx]         */

/* The input position i along one axis that tap k feeds output o from, or -1. */
SAL_HD int64_t sal_convt__src(int64_t o, int64_t k, int64_t s, int64_t d, int64_t p, int64_t in) {
    const int64_t t = o + p - k * d;
    if (t < 0 || t % s != 0) return -1;
    const int64_t i = t / s;
    return i < in ? i : -1;
}

SAL_HD void sal_tw_convt_fwd(int64_t j, const sal_tw_args *a) {
    const sal_conv_params *p = &a->p.cv;
    const int64_t ox = j % p->ow, oy = (j / p->ow) % p->oh, m = (j / (p->ow * p->oh)) % p->m,
                  n = j / (p->ow * p->oh * p->m);
    const int64_t cg = p->c / p->group, mg = p->m / p->group, g = m / mg, ml = m - g * mg;
    const float *x = a->in[0], *w = a->in[1];
    double s = 0;
    for (int64_t c = g * cg; c < (g + 1) * cg; c++) {
        const float *xc = x + (n * p->c + c) * p->h * p->w, *wc = w + (c * mg + ml) * p->kh * p->kw;
        for (int64_t ky = 0; ky < p->kh; ky++) {
            const int64_t iy = sal_convt__src(oy, ky, p->sh, p->dh, p->pt, p->h);
            if (iy < 0) continue;
            for (int64_t kx = 0; kx < p->kw; kx++) {
                const int64_t ix = sal_convt__src(ox, kx, p->sw, p->dw, p->pl, p->w);
                if (ix >= 0) s += (double)xc[iy * p->w + ix] * wc[ky * p->kw + kx];
            }
        }
    }
    a->out[0][j] = (float)s + (p->has_bias ? a->in[2][m] : 0.f);
}

/* gx[n, c, iy, ix] = sum over m of c's group and taps of gy[n, m, iy*sh - pt + ky*dh, ...] * W */
SAL_HD void sal_tw_convt_bwd(int64_t j, const sal_tw_args *a) {
    const sal_conv_params *p = &a->p.cv;
    const int64_t ix = j % p->w, iy = (j / p->w) % p->h, c = (j / (p->w * p->h)) % p->c,
                  n = j / (p->w * p->h * p->c);
    const int64_t cg = p->c / p->group, mg = p->m / p->group, g = c / cg;
    const float *gy = a->gout[0], *w = a->in[1];
    double s = 0;
    for (int64_t ml = 0; ml < mg; ml++) {
        const float *gm = gy + (n * p->m + g * mg + ml) * p->oh * p->ow, *wc = w + (c * mg + ml) * p->kh * p->kw;
        for (int64_t ky = 0; ky < p->kh; ky++) {
            const int64_t oy = iy * p->sh - p->pt + ky * p->dh;
            if (oy < 0 || oy >= p->oh) continue;
            for (int64_t kx = 0; kx < p->kw; kx++) {
                const int64_t ox = ix * p->sw - p->pl + kx * p->dw;
                if (ox >= 0 && ox < p->ow) s += (double)gm[oy * p->ow + ox] * wc[ky * p->kw + kx];
            }
        }
    }
    a->gin[0][j] += (float)s;
}

#endif /* SAL_TWIN_MATH_H */
