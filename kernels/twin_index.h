/* twin_index.h — twin element functions (kernels/twin.h) of issue 13's indexing and layout ops on
 * activations: gather views (Slice, Gather with constant indices, DepthToSpace, SpaceToDepth),
 * tile views (Expand, Tile) and Where. Plans: host/backend/twin/plan_index.c; the CPU backend runs
 * the same functions in OpenMP loops (host/backend/cpu/cpu_twin_ops.c).
 *
 * What each plan puts in sal_tw_args (besides in/out/gout/gin):
 *   view_*:   p.v; view_fwd and view_bwd one call per output element (view_bwd scatters: the view
 *             is injective); view_bwd_dup (Gather with repeated indices) one call per input
 *             element, summing the outputs that read it
 *   tile_*:   p.tile; tile_fwd per output element, tile_bwd per input element (sum, in double)
 *   where_*:  p.wh; in[0..2] = cond (0/1 floats), x, y; where_bwd: k1 = 0 (x) or 1 (y), gin[0]
 *             its gradient, one call per element of that input
 */
#ifndef SAL_TWIN_INDEX_H
#define SAL_TWIN_INDEX_H

#include "twin.h"

#include <stdint.h>

#define SAL_TW_INDEX_FUNCS(X)                                                                     \
    X(view_fwd) X(view_bwd) X(view_bwd_dup) X(tile_fwd) X(tile_bwd) X(where_fwd) X(where_bwd)

/* ------------------------------------------------------------------------------------------------ */
/* Gather views                                                                                     */

/* Input offset of output element i. */
SAL_HD int64_t sal_view__src(const sal_view_params *p, int64_t i) {
    int64_t off = p->base;
    for (int d = p->ndim - 1; d >= 0; d--) {
        const int64_t q = i / p->out[d], o = i - q * p->out[d];
        off += (d == p->idx_dim ? (int64_t)p->idx[o] : o) * p->stride[d];
        i = q;
    }
    return off;
}

SAL_HD void sal_tw_view_fwd(int64_t i, const sal_tw_args *a) {
    a->out[0][i] = a->in[0][sal_view__src(&a->p.v, i)];
}

SAL_HD void sal_tw_view_bwd(int64_t i, const sal_tw_args *a) {
    a->gin[0][sal_view__src(&a->p.v, i)] += a->gout[0][i];
}

/* Gather with repeated indices: input element j of data (outer, len, inner) collects every output
 * (outer, t, inner) with idx[t] == its position on the axis, in t order. */
SAL_HD void sal_tw_view_bwd_dup(int64_t j, const sal_tw_args *a) {
    const sal_view_params *p = &a->p.v;
    const int64_t inner = p->ginner, len = p->glen, n = p->out[1];
    const int64_t o = j / (len * inner), rem = j - o * len * inner, c = rem / inner,
                  w = rem - c * inner;
    float s = 0.f;
    for (int64_t t = 0; t < n; t++)
        if ((int64_t)p->idx[t] == c) s += a->gout[0][(o * n + t) * inner + w];
    a->gin[0][j] += s;
}

/* ------------------------------------------------------------------------------------------------ */
/* Tile views                                                                                       */

SAL_HD void sal_tw_tile_fwd(int64_t i, const sal_tw_args *a) {
    const sal_tile_params *p = &a->p.tile;
    int64_t off = 0, st = 1, r = i;
    for (int d = p->ndim - 1; d >= 0; d--) {
        const int64_t q = r / p->out[d], o = r - q * p->out[d];
        off += (o % p->in[d]) * st;
        st *= p->in[d];
        r = q;
    }
    a->out[0][i] = a->in[0][off];
}

/* Input element j: the sum over every output coordinate o with o_d = c_d + k_d * in[d], by an
 * odometer over the k_d (row-major), in double. */
SAL_HD void sal_tw_tile_bwd(int64_t j, const sal_tw_args *a) {
    const sal_tile_params *p = &a->p.tile;
    int64_t so[SAL_MAX_DIMS], kr[SAL_MAX_DIMS], nk[SAL_MAX_DIMS];
    int64_t s = 1, oo = 0, r = j, total = 1;
    for (int d = p->ndim - 1; d >= 0; d--) {
        so[d] = s;
        s *= p->out[d];
        const int64_t q = r / p->in[d], c = r - q * p->in[d];
        oo += c * so[d];
        r = q;
        nk[d] = p->in[d] > 0 ? p->out[d] / p->in[d] : 0;
        kr[d] = 0;
        total *= nk[d];
    }
    double sum = 0;
    for (int64_t t = 0; t < total; t++) {
        sum += a->gout[0][oo];
        for (int d = p->ndim - 1; d >= 0; d--) {
            oo += p->in[d] * so[d];
            if (++kr[d] < nk[d]) break;
            oo -= nk[d] * p->in[d] * so[d];
            kr[d] = 0;
        }
    }
    a->gin[0][j] += (float)sum;
}

/* ------------------------------------------------------------------------------------------------ */
/* Where(cond, x, y)                                                                                */

SAL_HD void sal_tw_where_fwd(int64_t i, const sal_tw_args *a) {
    const sal_where_params *p = &a->p.wh;
    int64_t oc = 0, ox = 0, oy = 0, r = i;
    for (int d = p->ndim - 1; d >= 0; d--) {
        const int64_t q = r / p->out[d], o = r - q * p->out[d];
        oc += o * p->sc[d];
        ox += o * p->sx[d];
        oy += o * p->sy[d];
        r = q;
    }
    a->out[0][i] = a->in[0][oc] != 0.f ? a->in[1][ox] : a->in[2][oy];
}

/* Element j of x (k1 = 0) or y (k1 = 1): the sum of the output gradients at the positions that
 * read it and where cond picks it, by an odometer over the dims it is broadcast on. */
SAL_HD void sal_tw_where_bwd(int64_t j, const sal_tw_args *a) {
    const sal_where_params *p = &a->p.wh;
    const int which = (int)a->k1;
    const int64_t *sw = which ? p->sy : p->sx;
    int64_t so[SAL_MAX_DIMS], cr[SAL_MAX_DIMS];
    int red[SAL_MAX_DIMS], nr = 0;
    int64_t s = 1, nred = 1, oo = 0, oc = 0, r = j;
    for (int d = p->ndim - 1; d >= 0; d--) { so[d] = s; s *= p->out[d]; }
    for (int d = p->ndim - 1; d >= 0; d--) {
        if (sw[d] == 0) continue;
        const int64_t q = r / p->out[d], c = r - q * p->out[d];
        oo += c * so[d];
        oc += c * p->sc[d];
        r = q;
    }
    for (int d = 0; d < p->ndim; d++)
        if (sw[d] == 0 && p->out[d] > 1) { red[nr++] = d; nred *= p->out[d]; }
    for (int u = 0; u < nr; u++) cr[u] = 0;
    double sum = 0;
    for (int64_t t = 0; t < nred; t++) {
        if ((a->in[0][oc] != 0.f) != which) sum += a->gout[0][oo];
        for (int u = nr - 1; u >= 0; u--) {
            const int d = red[u];
            oo += so[d];
            oc += p->sc[d];
            if (++cr[u] < p->out[d]) break;
            oo -= so[d] * p->out[d];
            oc -= p->sc[d] * p->out[d];
            cr[u] = 0;
        }
    }
    a->gin[0][j] += (float)sum;
}

#endif /* SAL_TWIN_INDEX_H */
