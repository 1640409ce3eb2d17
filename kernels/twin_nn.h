/* twin_nn.h — twin element functions (kernels/twin.h) of pooling, ReduceMean, LRN, Concat,
 * Transpose and Pad. Plans: host/backend/twin/plan_nn.c.
 *
 * Each function mirrors a CPU kernel (host/backend/cpu/cpu_nn.c, cpu_elem.c), the specification:
 * same window rules, same tie-breaking, same accumulation type and order wherever the CPU's order
 * is fixed (the CPU's `omp simd reduction` loops sum in an unspecified order: there the twins
 * agree to float rounding only). Backward functions are gathers: one call per input element,
 * which collects every contribution to that element in the order the CPU's scatter adds them,
 * then ADDS the total to gin once.
 *
 * What each plan puts in sal_tw_args (besides in/out/gout/gin):
 *   maxpool_*, avgpool_*, gavgpool_*:  p.pool
 *   reducemean_*:                      p.ax
 *   lrn_*:                             p.lrn
 *   concat_*:  one launch per input: k0 = the input's offset on the axis, k1 = its length on the
 *              axis, k2 = inner (elements after the axis), k3 = the output's length on the axis;
 *              in[0]/gin[0] are that input's data/gradient
 *   transpose_*:                       p.t, in_shape[0] (x), out_shape[0] (y)
 *   pad_*:                             p.pad, in_shape[0] (x), out_shape[0] (y)
 *   gemmc_*:   Gemm's C operand (host/backend/blas_drive.c, not a plan): k0 = M, k1 = N,
 *              k2, k3 = C's strides over Y's rows and columns (0 where C broadcasts), p.s.beta
 */
#ifndef SAL_TWIN_NN_H
#define SAL_TWIN_NN_H

#include "twin.h"

#include <math.h>
#include <stdint.h>

#define SAL_TW_NN_FUNCS(X)                                                                         \
    X(maxpool_fwd) X(maxpool_bwd) X(avgpool_fwd) X(avgpool_bwd) X(gavgpool_fwd) X(gavgpool_bwd)    \
    X(reducemean_fwd) X(reducemean_bwd) X(lrn_fwd) X(lrn_bwd) X(concat_fwd) X(concat_bwd)          \
    X(transpose_fwd) X(transpose_bwd) X(pad_fwd) X(pad_bwd) X(gemmc_fwd) X(gemmc_bwd)

/* ------------------------------------------------------------------------------------------------ */
/* Pooling: x (N, C, H, W) -> y (N, C, OH, OW) (cpu_nn.c: pool_run)                                 */

/* Output positions o in [*lo, *hi) with 0 <= o*step + off < in, clamped to [0, out). */
SAL_HD void sal_tw__valid_range(int64_t off, int64_t step, int64_t in, int64_t out, int64_t *lo,
                                int64_t *hi) {
    int64_t l = off >= 0 ? 0 : (-off + step - 1) / step;
    int64_t h = in - off <= 0 ? 0 : (in - off - 1) / step + 1;
    if (l > out) l = out;
    if (h > out) h = out;
    if (h < l) h = l;
    *lo = l;
    *hi = h;
}

/* Taps [*lo, *hi) of output o's window that fall inside the input, and *padded, the number that
 * fall inside the padded input [-pb, in + pe). */
SAL_HD void sal_tw__pool_span(int64_t o, int64_t s, int64_t d, int64_t k, int64_t pb, int64_t pe,
                              int64_t in, int64_t *lo, int64_t *hi, int64_t *padded) {
    sal_tw__valid_range(o * s - pb, d, in, k, lo, hi);
    int64_t plo, phi;
    sal_tw__valid_range(o * s, d, in + pb + pe, k, &plo, &phi);
    *padded = phi - plo;
}

/* Index within the plane (row width W) of the first maximum (row-major scan, strict >) over taps
 * [ylo, yhi) x [xlo, xhi) of the window at input (iy0, ix0) with dilations (dh, dw); -1 when the
 * window has no tap inside the input. The CPU's MaxPool runs it too (cpu_nn.c). */
SAL_HD int64_t sal_tw__window_argmax(const float *plane, int64_t W, int64_t ylo, int64_t yhi, int64_t xlo,
                                     int64_t xhi, int64_t iy0, int64_t ix0, int64_t dh, int64_t dw) {
    if (ylo >= yhi || xlo >= xhi) return -1;
    /* Two scans, the same answer as one scan keeping the first strictly greater tap: the maximum
     * (a select the compiler makes branch-free: a data-dependent branch mispredicted on most
     * windows), then the first tap equal to it (+0 and -0 compare equal, as under >). A NaN is
     * never greater, so it is skipped, unless it is the first tap: then no tap is greater and
     * none equal (NaN == NaN is false), and the first tap is returned after the scans. */
    const int64_t first = (iy0 + ylo * dh) * W + ix0 + xlo * dw;
    float m = plane[first];
    for (int64_t ky = ylo; ky < yhi; ky++) {
        const float *row = plane + (iy0 + ky * dh) * W + ix0;
        for (int64_t kx = xlo; kx < xhi; kx++) {
            const float v = row[kx * dw];
            m = v > m ? v : m;
        }
    }
    for (int64_t ky = ylo; ky < yhi; ky++) {
        const int64_t row = (iy0 + ky * dh) * W + ix0;
        for (int64_t kx = xlo; kx < xhi; kx++)
            if (plane[row + kx * dw] == m) return row + kx * dw;
    }
    return first;
}

/* The first maximum of window (oy, ox). */
SAL_HD int64_t sal_tw__pool_argmax(const sal_pool_params *p, const float *plane, int64_t oy,
                                   int64_t ox) {
    int64_t ylo, yhi, xlo, xhi, pad;
    sal_tw__pool_span(oy, p->sh, p->dh, p->kh, p->pt, p->pb, p->h, &ylo, &yhi, &pad);
    sal_tw__pool_span(ox, p->sw, p->dw, p->kw, p->pl, p->pr, p->w, &xlo, &xhi, &pad);
    return sal_tw__window_argmax(plane, p->w, ylo, yhi, xlo, xhi, oy * p->sh - p->pt, ox * p->sw - p->pl, p->dh,
                                 p->dw);
}

/* Averaging divisor of window (oy, ox); <= 0 when the window is empty. */
SAL_HD int64_t sal_tw__pool_count(const sal_pool_params *p, int64_t oy, int64_t ox) {
    int64_t ylo, yhi, xlo, xhi, ypad, xpad;
    sal_tw__pool_span(oy, p->sh, p->dh, p->kh, p->pt, p->pb, p->h, &ylo, &yhi, &ypad);
    sal_tw__pool_span(ox, p->sw, p->dw, p->kw, p->pl, p->pr, p->w, &xlo, &xhi, &xpad);
    return p->count_include_pad ? ypad * xpad : (yhi - ylo) * (xhi - xlo);
}

/* Scan for the output positions whose window has a tap on input position i (one spatial axis):
 * o*s - pb + k*d == i for a tap k in [0, kern). Distinct taps give distinct o, and o grows as k
 * falls, so starting from *k = kern - 1 successive calls return those o in increasing order, then
 * -1. Each returned o's window includes i among its valid taps. */
SAL_HD int64_t sal_tw__pool_next(int64_t i, int64_t s, int64_t d, int64_t pb, int64_t nout,
                                 int64_t *k) {
    for (; *k >= 0; (*k)--) {
        int64_t t = i + pb - *k * d;
        if (t < 0 || t % s) continue;   /* before output 0, or between two window starts */
        int64_t o = t / s;
        if (o >= nout) return -1;       /* smaller taps only give larger o */
        (*k)--;
        return o;
    }
    return -1;
}

/* MaxPool forward: element i of y. */
SAL_HD void sal_tw_maxpool_fwd(int64_t i, const sal_tw_args *a) {
    const sal_pool_params *p = &a->p.pool;
    const int64_t ox = i % p->ow, oy = (i / p->ow) % p->oh, nc = i / (p->ow * p->oh);
    const float *plane = a->in[0] + nc * p->h * p->w;
    int64_t at = sal_tw__pool_argmax(p, plane, oy, ox);
    a->out[0][i] = at >= 0 ? plane[at] : 0.f;
}

/* AveragePool forward: element i of y. */
SAL_HD void sal_tw_avgpool_fwd(int64_t i, const sal_tw_args *a) {
    const sal_pool_params *p = &a->p.pool;
    const int64_t ox = i % p->ow, oy = (i / p->ow) % p->oh, nc = i / (p->ow * p->oh);
    const float *plane = a->in[0] + nc * p->h * p->w;
    int64_t ylo, yhi, xlo, xhi, ypad, xpad;
    sal_tw__pool_span(oy, p->sh, p->dh, p->kh, p->pt, p->pb, p->h, &ylo, &yhi, &ypad);
    sal_tw__pool_span(ox, p->sw, p->dw, p->kw, p->pl, p->pr, p->w, &xlo, &xhi, &xpad);
    const int64_t count = p->count_include_pad ? ypad * xpad : (yhi - ylo) * (xhi - xlo);
    if (count <= 0) {
        a->out[0][i] = 0.f;
        return;
    }
    const int64_t iy0 = oy * p->sh - p->pt, ix0 = ox * p->sw - p->pl;
    float s = 0.f;
    for (int64_t ky = ylo; ky < yhi; ky++) {
        const float *row = plane + (iy0 + ky * p->dh) * p->w + ix0;
        for (int64_t kx = xlo; kx < xhi; kx++) s += row[kx * p->dw];
    }
    a->out[0][i] = s / (float)count;
}

/* Pool backward: element i of x gathers, over every window holding it (in y order), gy when it is
 * the window's first maximum (MaxPool, is_max) or gy / count (AveragePool). */
SAL_HD void sal_tw__pool_bwd(int64_t i, const sal_tw_args *a, int is_max) {
    const sal_pool_params *p = &a->p.pool;
    const int64_t ix = i % p->w, iy = (i / p->w) % p->h, nc = i / (p->w * p->h);
    const float *plane = a->in[0] + nc * p->h * p->w;
    const float *gy = a->gout[0] + nc * p->oh * p->ow;
    const int64_t me = iy * p->w + ix;
    float acc = a->gin[0][i];
    int64_t ky = p->kh - 1;
    for (;;) {
        int64_t oy = sal_tw__pool_next(iy, p->sh, p->dh, p->pt, p->oh, &ky);
        if (oy < 0) break;
        int64_t kx = p->kw - 1;
        for (;;) {
            int64_t ox = sal_tw__pool_next(ix, p->sw, p->dw, p->pl, p->ow, &kx);
            if (ox < 0) break;
            if (is_max) {
                if (sal_tw__pool_argmax(p, plane, oy, ox) == me) acc += gy[oy * p->ow + ox];
            } else {
                int64_t count = sal_tw__pool_count(p, oy, ox);
                if (count > 0) acc += gy[oy * p->ow + ox] / (float)count;
            }
        }
    }
    a->gin[0][i] = acc;
}

SAL_HD void sal_tw_maxpool_bwd(int64_t i, const sal_tw_args *a) { sal_tw__pool_bwd(i, a, 1); }
SAL_HD void sal_tw_avgpool_bwd(int64_t i, const sal_tw_args *a) { sal_tw__pool_bwd(i, a, 0); }

/* GlobalAveragePool forward: element i = (n, c) of y, S = p.h spatial elements. */
SAL_HD void sal_tw_gavgpool_fwd(int64_t i, const sal_tw_args *a) {
    const int64_t S = a->p.pool.h;
    const float *xs = a->in[0] + i * S;
    float s = 0.f;
    for (int64_t j = 0; j < S; j++) s += xs[j];
    a->out[0][i] = s / (float)S;
}

/* GlobalAveragePool backward: element i of x. */
SAL_HD void sal_tw_gavgpool_bwd(int64_t i, const sal_tw_args *a) {
    const int64_t S = a->p.pool.h;
    a->gin[0][i] += a->gout[0][i / S] / (float)S;
}

/* ------------------------------------------------------------------------------------------------ */
/* ReduceMean (cpu_elem.c): x as p.rdims (merged dims), reduced where p.rmask has a bit; with at   */
/* most one reduced merged dim, x is (outer, axis_len, inner) reduced over axis_len.               */

SAL_HD int sal_tw__popcount(unsigned m) {
    int n = 0;
    for (; m; m &= m - 1) n++;
    return n;
}

/* Strides (in x) of merged dim d. */
SAL_HD int64_t sal_tw__rstride(const sal_axis_params *p, int d) {
    int64_t s = 1;
    for (int e = p->rdim - 1; e > d; e--) s *= p->rdims[e];
    return s;
}

/* ReduceMean forward: element j of y. */
SAL_HD void sal_tw_reducemean_fwd(int64_t j, const sal_tw_args *a) {
    const sal_axis_params *p = &a->p.ax;
    const float *x = a->in[0];
    const float inv = p->count > 0 ? 1.f / (float)p->count : NAN;
    if (sal_tw__popcount(p->rmask) <= 1) {
        const int64_t len = p->axis_len, inner = p->inner, o = j / inner, ii = j - o * inner;
        const float *xr = x + o * len * inner + ii;
        float s = 0.f;
        for (int64_t k = 0; k < len; k++) s += xr[k * inner];
        a->out[0][j] = s * inv;
        return;
    }
    /* general: base offset of j over the kept dims, then the reduced dims in x order (last
     * fastest), summed in double as the CPU does */
    int64_t base = 0, r = j;
    int nr = 0;
    int64_t rd[SAL_MAX_DIMS], rs[SAL_MAX_DIMS], cr[SAL_MAX_DIMS];
    for (int d = p->rdim - 1; d >= 0; d--) {
        const int64_t st = sal_tw__rstride(p, d);
        if (p->rmask & (1u << d)) continue;
        int64_t q = r / p->rdims[d];
        base += (r - q * p->rdims[d]) * st;
        r = q;
    }
    int64_t total = 1;
    for (int d = 0; d < p->rdim; d++)
        if (p->rmask & (1u << d)) {
            rd[nr] = p->rdims[d];
            rs[nr] = sal_tw__rstride(p, d);
            cr[nr++] = 0;
            total *= p->rdims[d];
        }
    double s = 0;
    int64_t off = base;
    for (int64_t t = 0; t < total; t++) {
        s += x[off];
        for (int u = nr - 1; u >= 0; u--) {
            off += rs[u];
            if (++cr[u] < rd[u]) break;
            off -= rs[u] * rd[u];
            cr[u] = 0;
        }
    }
    a->out[0][j] = (float)s * inv;
}

/* ReduceMean backward: element e of x takes g of the one output it is reduced into. */
SAL_HD void sal_tw_reducemean_bwd(int64_t e, const sal_tw_args *a) {
    const sal_axis_params *p = &a->p.ax;
    const float inv = 1.f / (float)p->count;
    int64_t j;
    if (sal_tw__popcount(p->rmask) <= 1) {
        const int64_t inner = p->inner;
        j = e / (p->axis_len * inner) * inner + e % inner;
    } else {
        /* x coordinates over the merged dims; j = the kept ones raveled */
        int64_t r = e, c[SAL_MAX_DIMS];
        for (int d = p->rdim - 1; d >= 0; d--) {
            int64_t q = r / p->rdims[d];
            c[d] = r - q * p->rdims[d];
            r = q;
        }
        j = 0;
        for (int d = 0; d < p->rdim; d++)
            if (!(p->rmask & (1u << d))) j = j * p->rdims[d] + c[d];
    }
    a->gin[0][e] += a->gout[0][j] * inv;
}

/* ------------------------------------------------------------------------------------------------ */
/* LRN across channels (cpu_nn.c): x (N, C, S), window of channel c = [c - lo, c + hi] clipped,    */
/* lo = (size-1)/2, hi = size-1-lo; s_c = bias + alpha/size * sum_window x^2, y_c = x_c s_c^-beta  */

/* s of channel ch at pixel px of image n (sum of squares in channel order, as the CPU). */
SAL_HD float sal_tw__lrn_s(const sal_lrn_params *p, const float *x, int64_t n, int64_t ch,
                           int64_t px) {
    const int64_t C = p->c, S = p->inner, lo = (p->size - 1) / 2, hi = p->size - 1 - lo;
    const int64_t c0 = ch - lo < 0 ? 0 : ch - lo, c1 = ch + hi > C - 1 ? C - 1 : ch + hi;
    const float as = p->alpha / (float)p->size;
    float acc = 0.f;
    for (int64_t j = c0; j <= c1; j++) {
        float v = x[(n * C + j) * S + px];
        acc += v * v;
    }
    return p->bias + as * acc;
}

/* LRN forward: element i of y. */
SAL_HD void sal_tw_lrn_fwd(int64_t i, const sal_tw_args *a) {
    const sal_lrn_params *p = &a->p.lrn;
    const int64_t C = p->c, S = p->inner, px = i % S, ch = (i / S) % C, n = i / (S * C);
    a->out[0][i] = a->in[0][i] * powf(sal_tw__lrn_s(p, a->in[0], n, ch, px), -p->beta);
}

/* LRN backward: element i of x,
 *   dx_i = g_i s_i^-beta - 2 beta alpha/size x_i sum_{c : i in window(c)} g_c x_c s_c^(-beta-1),
 * the channels c with i in their window being [i - hi, i + lo] clipped, added in channel order. */
SAL_HD void sal_tw_lrn_bwd(int64_t i, const sal_tw_args *a) {
    const sal_lrn_params *p = &a->p.lrn;
    const float *x = a->in[0], *gy = a->gout[0];
    const int64_t C = p->c, S = p->inner, px = i % S, ch = (i / S) % C, n = i / (S * C);
    const int64_t lo = (p->size - 1) / 2, hi = p->size - 1 - lo;
    const float as = p->alpha / (float)p->size, beta = p->beta, k2 = -2.f * beta * as;
    float acc = a->gin[0][i];
    acc += gy[i] * powf(sal_tw__lrn_s(p, x, n, ch, px), -beta);
    const int64_t c0 = ch - hi < 0 ? 0 : ch - hi, c1 = ch + lo > C - 1 ? C - 1 : ch + lo;
    for (int64_t j = c0; j <= c1; j++) {
        const int64_t at = (n * C + j) * S + px;
        float s = sal_tw__lrn_s(p, x, n, j, px);
        float sb = powf(s, -beta);
        float u = gy[at] * x[at] * sb / s;
        acc += k2 * x[i] * u;
    }
    a->gin[0][i] = acc;
}

/* ------------------------------------------------------------------------------------------------ */
/* Concat (cpu_elem.c): y (outer, k3, inner), this launch's input (outer, k1, inner) at axis       */
/* offset k0; k2 = inner.                                                                           */

SAL_HD int64_t sal_tw__concat_y(int64_t e, const sal_tw_args *a) {
    const int64_t blk = a->k1 * a->k2, o = e / blk;
    return (o * a->k3 + a->k0) * a->k2 + (e - o * blk);
}

/* Concat forward: element e of the launch's input. */
SAL_HD void sal_tw_concat_fwd(int64_t e, const sal_tw_args *a) {
    a->out[0][sal_tw__concat_y(e, a)] = a->in[0][e];
}

/* Concat backward: element e of the launch's input. */
SAL_HD void sal_tw_concat_bwd(int64_t e, const sal_tw_args *a) {
    a->gin[0][e] += a->gout[0][sal_tw__concat_y(e, a)];
}

/* ------------------------------------------------------------------------------------------------ */
/* Transpose (cpu_elem.c): y dim k is x dim perm[k]                                                 */

/* Transpose forward: element j of y reads x at coordinate perm[k] = y's coordinate k. */
SAL_HD void sal_tw_transpose_fwd(int64_t j, const sal_tw_args *a) {
    const sal_shape *xs = &a->in_shape[0], *ys = &a->out_shape[0];
    int64_t st[SAL_MAX_DIMS], s = 1, off = 0, r = j;
    for (int d = xs->ndim - 1; d >= 0; d--) {
        st[d] = s;
        s *= xs->d[d];
    }
    for (int k = ys->ndim - 1; k >= 0; k--) {
        int64_t q = r / ys->d[k];
        off += (r - q * ys->d[k]) * st[a->p.t.perm[k]];
        r = q;
    }
    a->out[0][j] = a->in[0][off];
}

/* Transpose backward: element e of x takes g at y coordinate k = x's coordinate perm[k]. */
SAL_HD void sal_tw_transpose_bwd(int64_t e, const sal_tw_args *a) {
    const sal_shape *xs = &a->in_shape[0], *ys = &a->out_shape[0];
    int64_t c[SAL_MAX_DIMS], r = e, j = 0;
    for (int d = xs->ndim - 1; d >= 0; d--) {
        int64_t q = r / xs->d[d];
        c[d] = r - q * xs->d[d];
        r = q;
    }
    for (int k = 0; k < ys->ndim; k++) j = j * ys->d[k] + c[a->p.t.perm[k]];
    a->gin[0][e] += a->gout[0][j];
}

/* ------------------------------------------------------------------------------------------------ */
/* Pad (cpu_elem.c): per dim, crop (negative pads) then pad (constant, edge or reflect). On dim d, */
/* y index o reads kept index j = o - lo, lo = max(before, 0), of the L kept elements that start  */
/* at x index crop = max(-before, 0).                                                              */

typedef struct sal_tw__pad_dim {
    int64_t lo, crop, keep;
} sal_tw__pad_dim;

SAL_HD sal_tw__pad_dim sal_tw__pad_dim_of(const sal_pad_params *p, const sal_shape *xs, int d) {
    sal_tw__pad_dim r;
    r.lo = p->before[d] > 0 ? p->before[d] : 0;
    r.crop = p->before[d] < 0 ? -p->before[d] : 0;
    r.keep = xs->d[d] - r.crop - (p->after[d] < 0 ? -p->after[d] : 0);
    return r;
}

/* x index on a dim for y index o, or -1 for the constant (cpu_elem.c: pad_src). */
SAL_HD int64_t sal_tw__pad_src(int mode, const sal_tw__pad_dim *v, int64_t o) {
    int64_t j = o - v->lo, L = v->keep;
    if (j >= 0 && j < L) return v->crop + j;
    if (mode == SAL_PAD_CONSTANT) return -1;
    if (mode == SAL_PAD_EDGE) return v->crop + (j < 0 ? 0 : L - 1);
    if (L == 1) return v->crop;
    int64_t per = 2 * (L - 1);   /* reflect without repeating the edge */
    j %= per;
    if (j < 0) j += per;
    return v->crop + (j < L ? j : per - j);
}

/* Smallest y index o >= o0 (< ny) on a dim that reads kept index t (in [0, keep)); ny if none. */
SAL_HD int64_t sal_tw__pad_next(int mode, const sal_tw__pad_dim *v, int64_t ny, int64_t t,
                                int64_t o0) {
    const int64_t L = v->keep, inside = v->lo + t;
    int64_t o;
    if (o0 >= ny) return ny;
    if (mode == SAL_PAD_CONSTANT) {
        o = o0 <= inside ? inside : ny;
    } else if (L == 1) {
        o = o0;   /* every position copies the only element */
    } else if (mode == SAL_PAD_EDGE) {
        if (t == 0) o = o0 <= v->lo ? o0 : ny;                        /* [0, lo] */
        else if (t == L - 1) o = o0 <= inside ? inside : o0;           /* [lo + L - 1, ny) */
        else o = o0 <= inside ? inside : ny;
    } else {   /* reflect: j = o - lo with j mod per in {t, per - t} */
        const int64_t per = 2 * (L - 1), j0 = o0 - v->lo;
        int64_t m = j0 % per;
        if (m < 0) m += per;
        int64_t d1 = (t - m) % per, d2 = (per - t - m) % per;
        if (d1 < 0) d1 += per;
        if (d2 < 0) d2 += per;
        o = o0 + (d1 < d2 ? d1 : d2);
    }
    return o < ny ? o : ny;
}

/* Pad forward: element j of y. */
SAL_HD void sal_tw_pad_fwd(int64_t j, const sal_tw_args *a) {
    const sal_pad_params *p = &a->p.pad;
    const sal_shape *xs = &a->in_shape[0], *ys = &a->out_shape[0];
    int64_t r = j, off = 0, s = 1;
    for (int d = ys->ndim - 1; d >= 0; d--) {
        int64_t q = r / ys->d[d];
        sal_tw__pad_dim v = sal_tw__pad_dim_of(p, xs, d);
        int64_t src = sal_tw__pad_src(p->mode, &v, r - q * ys->d[d]);
        if (src < 0) {
            a->out[0][j] = p->value;
            return;
        }
        off += src * s;
        s *= xs->d[d];
        r = q;
    }
    a->out[0][j] = a->in[0][off];
}

/* Pad backward: element e of x gathers g at every y position that copies it (with edge/reflect,
 * possibly many), in increasing y order as the CPU's row-by-row scatter adds them. */
SAL_HD void sal_tw_pad_bwd(int64_t e, const sal_tw_args *a) {
    const sal_pad_params *p = &a->p.pad;
    const sal_shape *xs = &a->in_shape[0], *ys = &a->out_shape[0];
    const int nd = ys->ndim;
    sal_tw__pad_dim v[SAL_MAX_DIMS];
    int64_t t[SAL_MAX_DIMS], o[SAL_MAX_DIMS], r = e;
    for (int d = nd - 1; d >= 0; d--) {
        int64_t q = r / xs->d[d];
        v[d] = sal_tw__pad_dim_of(p, xs, d);
        t[d] = r - q * xs->d[d] - v[d].crop;
        r = q;
        if (t[d] < 0 || t[d] >= v[d].keep) return;   /* cropped away: no gradient */
    }
    for (int d = 0; d < nd; d++) {
        o[d] = sal_tw__pad_next(p->mode, &v[d], ys->d[d], t[d], 0);
        if (o[d] >= ys->d[d]) return;
    }
    const float *g = a->gout[0];
    float acc = a->gin[0][e];
    for (;;) {
        int64_t at = 0;
        for (int d = 0; d < nd; d++) at = at * ys->d[d] + o[d];
        acc += g[at];
        int d = nd - 1;
        for (; d >= 0; d--) {
            o[d] = sal_tw__pad_next(p->mode, &v[d], ys->d[d], t[d], o[d] + 1);
            if (o[d] < ys->d[d]) break;
            o[d] = sal_tw__pad_next(p->mode, &v[d], ys->d[d], t[d], 0);
        }
        if (d < 0) break;
    }
    a->gin[0][e] = acc;
}

/* ------------------------------------------------------------------------------------------------ */
/* Gemm's C operand: Y (M, N) = beta * C broadcast, before the matrix product accumulates onto it, */
/* and its gradient dC = beta * G summed over C's broadcast dims (host/backend/blas_drive.c)        */

/* Element t of Y (M, N): beta * C[i * s0 + j * s1]. */
SAL_HD void sal_tw_gemmc_fwd(int64_t t, const sal_tw_args *a) {
    const int64_t N = a->k1, i = t / N, j = t - i * N;
    a->out[0][t] = a->p.s.beta * a->in[0][i * a->k2 + j * a->k3];
}

/* Element t of C, (cm, cn) = (s0 ? M : 1, s1 ? N : 1): adds beta * g at every (i, j) of Y that
 * reads it, row by row (the order of a serial scatter over Y). */
SAL_HD void sal_tw_gemmc_bwd(int64_t t, const sal_tw_args *a) {
    const int64_t M = a->k0, N = a->k1, s0 = a->k2, s1 = a->k3, cn = s1 ? N : 1;
    const int64_t i0 = t / cn, j0 = t - i0 * cn;
    const int64_t ib = s0 ? i0 : 0, ie = s0 ? i0 + 1 : M, jb = s1 ? j0 : 0, je = s1 ? j0 + 1 : N;
    const float beta = a->p.s.beta;
    float acc = a->gin[0][i0 * s0 + j0 * s1];
    for (int64_t i = ib; i < ie; i++)
        for (int64_t j = jb; j < je; j++) acc += beta * a->gout[0][i * N + j];
    a->gin[0][i0 * s0 + j0 * s1] = acc;
}

#endif
