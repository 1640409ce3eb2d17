/* cpu_nn.c — CPU kernels for convolution, pooling, normalization and matrix products: Conv,
 * BatchNormalization, MaxPool, AveragePool, GlobalAveragePool, Gemm, MatMul, LRN; forward and
 * backward (gradients are ADDED into call->gin[i] where it is non-NULL).
 *
 * Layouts are row-major NCHW (1-D ops use H = 1). Matrix products go to OpenBLAS (cblas_sgemm),
 * always called from the calling thread, never inside an OpenMP region (OpenBLAS threads itself).
 * Loops that are not BLAS are parallelized with OpenMP over independent planes or rows.
 *
 * Convolution strategy (per image n and group g; Cg = C/group, Mg = M/group):
 *   1x1, stride 1, no padding:  Y_g (Mg, HW) = W_g (Mg, Cg) . X_g (Cg, HW)       one sgemm
 *   depthwise (group == C):     direct loops over (n, m) planes, tap by tap, with the valid
 *                               column range of each tap computed up front (no bounds checks in
 *                               the vectorized inner loop)
 *   general:                    im2col X_g -> col (Cg*kh*kw, OH*OW) in scratch, then
 *                               Y_g (Mg, OHW) = W_g (Mg, Cg*kh*kw) . col
 * Backward-data mirrors these: col = W_g^T . dY_g then col2im (scatter-add) into dX; 1x1 is one
 * sgemm accumulating into dX (beta = 1); depthwise is direct. Weight/bias gradients are computed
 * only when W/B are runtime inputs (gin[1]/gin[2] != NULL), which models normally never have.
 */
#include <cblas.h>
#include <math.h>
#include <string.h>

#include "../backend.h"
#include "../../ops/op_decls.h"

/* ------------------------------------------------------------------------------------------------ */
/* Helpers                                                                                          */

static int nthreads(const sal_op_call *c) { return c->threads > 0 ? c->threads : 1; }

/* Threads for a loop of about `work` element visits or multiply-adds: small loops stay on the
 * calling thread, where waking a team would cost more than it saves. */
#define SAL_PAR_MIN_WORK 32768
static int par(int threads, int64_t work) { return work < SAL_PAR_MIN_WORK ? 1 : threads; }

/* Output positions o in [*lo, *hi) with 0 <= o*step + off < in, clamped to [0, out). */
static void valid_range(int64_t off, int64_t step, int64_t in, int64_t out, int64_t *lo, int64_t *hi) {
    int64_t l = off >= 0 ? 0 : (-off + step - 1) / step;
    int64_t h = in - off <= 0 ? 0 : (in - off - 1) / step + 1;
    if (l > out) l = out;
    if (h > out) h = out;
    if (h < l) h = l;
    *lo = l;
    *hi = h;
}

static sal_status need_params(const sal_op_call *c, sal_error *err) {
    if (!c->params)
        return sal_fail(err, SAL_ERR_INTERNAL, "node '%s' (%s): kernel called without parameters",
                        c->node->name, c->node->op_type);
    return SAL_OK;
}

/* ------------------------------------------------------------------------------------------------ */
/* Conv: im2col / col2im                                                                            */

static int conv_pointwise(const sal_conv_params *p) {
    return p->kh == 1 && p->kw == 1 && p->sh == 1 && p->sw == 1 && p->pt == 0 && p->pl == 0 &&
           p->pb == 0 && p->pr == 0;
}
static int conv_depthwise(const sal_conv_params *p) { return p->group == p->c && p->c / p->group == 1; }

/* x (Cg, H, W) -> col (Cg*kh*kw, OH*OW); row r = (c*kh + ky)*kw + kx, zeros where the tap reads
 * padding. */
static void im2col(const sal_conv_params *p, int64_t cg, const float *restrict x, float *restrict col,
                   int threads) {
    const int64_t H = p->h, W = p->w, OH = p->oh, OW = p->ow, KH = p->kh, KW = p->kw;
    const int64_t rows = cg * KH * KW;
#pragma omp parallel for num_threads(par(threads, rows * OH * OW)) schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        int64_t ci = r / (KH * KW), ky = (r / KW) % KH, kx = r % KW;
        float *dst = col + r * OH * OW;
        const float *plane = x + ci * H * W;
        int64_t offx = kx * p->dw - p->pl, xlo, xhi, ylo, yhi;
        valid_range(offx, p->sw, W, OW, &xlo, &xhi);
        valid_range(ky * p->dh - p->pt, p->sh, H, OH, &ylo, &yhi);
        memset(dst, 0, sizeof(float) * (size_t)(ylo * OW));
        for (int64_t oy = ylo; oy < yhi; oy++) {
            float *d = dst + oy * OW;
            const float *src = plane + (oy * p->sh - p->pt + ky * p->dh) * W;
            for (int64_t ox = 0; ox < xlo; ox++) d[ox] = 0.f;
            if (p->sw == 1) {
                memcpy(d + xlo, src + xlo + offx, sizeof(float) * (size_t)(xhi - xlo));
            } else {
                const int64_t sw = p->sw;
#pragma omp simd
                for (int64_t ox = xlo; ox < xhi; ox++) d[ox] = src[ox * sw + offx];
            }
            for (int64_t ox = xhi; ox < OW; ox++) d[ox] = 0.f;
        }
        memset(dst + yhi * OW, 0, sizeof(float) * (size_t)((OH - yhi) * OW));
    }
}

/* col (Cg*kh*kw, OH*OW) scatter-added into gx (Cg, H, W); parallel over input channels, whose
 * rows of col touch only their own plane. */
static void col2im_add(const sal_conv_params *p, int64_t cg, const float *restrict col, float *restrict gx,
                       int threads) {
    const int64_t H = p->h, W = p->w, OH = p->oh, OW = p->ow, KH = p->kh, KW = p->kw;
#pragma omp parallel for num_threads(par(threads, cg * KH * KW * OH * OW)) schedule(static)
    for (int64_t ci = 0; ci < cg; ci++) {
        float *plane = gx + ci * H * W;
        for (int64_t ky = 0; ky < KH; ky++) {
            int64_t ylo, yhi;
            valid_range(ky * p->dh - p->pt, p->sh, H, OH, &ylo, &yhi);
            for (int64_t kx = 0; kx < KW; kx++) {
                const float *src = col + ((ci * KH + ky) * KW + kx) * OH * OW;
                int64_t offx = kx * p->dw - p->pl, xlo, xhi;
                valid_range(offx, p->sw, W, OW, &xlo, &xhi);
                const int64_t sw = p->sw;
                for (int64_t oy = ylo; oy < yhi; oy++) {
                    float *d = plane + (oy * p->sh - p->pt + ky * p->dh) * W;
                    const float *s = src + oy * OW;
#pragma omp simd
                    for (int64_t ox = xlo; ox < xhi; ox++) d[ox * sw + offx] += s[ox];
                }
            }
        }
    }
}

/* ------------------------------------------------------------------------------------------------ */
/* Conv: depthwise (group == C, weights (M, 1, kh, kw), output channel m reads input m / (M/C))    */

/* The per-plane kernel is compiled for AVX-512, AVX2+FMA and baseline x86-64 and picked at load
 * time (GCC target_clones), since the library is not built with -march=native. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && defined(__has_attribute)
#if __has_attribute(target_clones)
#define SAL_ISA_CLONES __attribute__((target_clones("arch=skylake-avx512", "arch=haswell", "default")))
#endif
#endif
#ifndef SAL_ISA_CLONES
#define SAL_ISA_CLONES
#endif

/* Geometry of one depthwise plane: in (H, W) -> out (OH, OW), kernel (KH, KW). */
typedef struct dw_geom {
    int64_t H, W, OH, OW, KH, KW, sh, sw, dh, dw, pt, pl;
} dw_geom;

/* Interior columns, fused over a KxK kernel (K = 3 or 5) whose K input rows are all inside the
 * input: orow[ox] += sum_{ky,kx} w[ky*K+kx] * in[ky*W + ox*S + off + kx] for ox in [xa, xb).
 * K and S are constants at every call; the taps are spelled out so that the column loop
 * vectorizes, one partial sum per kernel row to keep dependency chains short. */
#define DW_TAPS3(r, w, b) ((w)[0] * (r)[b] + (w)[1] * (r)[(b) + 1] + (w)[2] * (r)[(b) + 2])
#define DW_TAPS5(r, w, b)                                                                          \
    ((w)[0] * (r)[b] + (w)[1] * (r)[(b) + 1] + (w)[2] * (r)[(b) + 2] + (w)[3] * (r)[(b) + 3] +     \
     (w)[4] * (r)[(b) + 4])
static inline __attribute__((always_inline)) void dw_rows_fixed(float *restrict orow, const float *restrict in,
                                                                int64_t W, const float *restrict w, int64_t xa,
                                                                int64_t xb, int64_t off, const int K, const int S) {
    const float *restrict r0 = in, *restrict r1 = in + W, *restrict r2 = in + 2 * W;
    if (K == 3) {
#pragma omp simd
        for (int64_t ox = xa; ox < xb; ox++) {
            const int64_t b = ox * S + off;
            orow[ox] += (DW_TAPS3(r0, w, b) + DW_TAPS3(r1, w + 3, b)) + DW_TAPS3(r2, w + 6, b);
        }
    } else {
        const float *restrict r3 = in + 3 * W, *restrict r4 = in + 4 * W;
#pragma omp simd
        for (int64_t ox = xa; ox < xb; ox++) {
            const int64_t b = ox * S + off;
            orow[ox] += ((DW_TAPS5(r0, w, b) + DW_TAPS5(r1, w + 5, b)) +
                         (DW_TAPS5(r2, w + 10, b) + DW_TAPS5(r3, w + 15, b))) + DW_TAPS5(r4, w + 20, b);
        }
    }
}

/* Interior columns of one kernel row (K = 3 or 5 taps, stride S, dilation 1). */
static inline __attribute__((always_inline)) void dw_row_fixed(float *restrict orow, const float *restrict irow,
                                                               const float *restrict w, int64_t xa, int64_t xb,
                                                               int64_t off, const int K, const int S) {
    if (K == 3) {
#pragma omp simd
        for (int64_t ox = xa; ox < xb; ox++) orow[ox] += DW_TAPS3(irow, w, ox * S + off);
    } else {
#pragma omp simd
        for (int64_t ox = xa; ox < xb; ox++) orow[ox] += DW_TAPS5(irow, w, ox * S + off);
    }
}

/* out (OH, OW) = bias + taps over in (H, W)   (accumulate = 0)
 * out (OH, OW) += taps over in (H, W)         (accumulate = 1)
 * with out[oy][ox] taking in[oy*sh - pt + ky*dh][ox*sw - pl + kx*dw] * wk[ky][kx]. Columns
 * [xa, xb) have every tap inside the input and run without bounds checks (fused over the whole
 * kernel for 3x3 and 5x5 rows away from the top and bottom edges); border columns are summed
 * tap by tap with checks. */
SAL_ISA_CLONES
static void dw_plane(const dw_geom *g, const float *restrict in, const float *restrict wk, float bias,
                     int accumulate, float *restrict out) {
    const int64_t H = g->H, W = g->W, OH = g->OH, OW = g->OW, KH = g->KH, KW = g->KW;
    const int64_t sh = g->sh, sw = g->sw, dh = g->dh, dw = g->dw, pt = g->pt, pl = g->pl;
    int64_t lo0, hi0, loK, hiK;
    valid_range(-pl, sw, W, OW, &lo0, &hi0);
    valid_range((KW - 1) * dw - pl, sw, W, OW, &loK, &hiK);
    const int64_t xa = lo0 > loK ? lo0 : loK;
    int64_t xb = hi0 < hiK ? hi0 : hiK;
    if (xb < xa) xb = xa;
    const int fixed = dh == 1 && dw == 1 && KH == KW && (KW == 3 || KW == 5) && (sw == 1 || sw == 2);
    for (int64_t oy = 0; oy < OH; oy++) {
        float *restrict orow = out + oy * OW;
        if (!accumulate)
            for (int64_t ox = 0; ox < OW; ox++) orow[ox] = bias;
        const int64_t iy0 = oy * sh - pt;
        /* border columns */
        for (int64_t ox = 0; ox < OW; ox++) {
            if (ox == xa) ox = xb;
            if (ox >= OW) break;
            float s = 0.f;
            for (int64_t ky = 0; ky < KH; ky++) {
                int64_t iy = iy0 + ky * dh;
                if (iy < 0 || iy >= H) continue;
                for (int64_t kx = 0; kx < KW; kx++) {
                    int64_t ix = ox * sw - pl + kx * dw;
                    if (ix >= 0 && ix < W) s += wk[ky * KW + kx] * in[iy * W + ix];
                }
            }
            orow[ox] += s;
        }
        if (xa >= xb) continue;
        /* interior columns */
        if (fixed && iy0 >= 0 && iy0 + KH - 1 < H) {
            const float *rows = in + iy0 * W;
            if (KW == 3 && sw == 1) dw_rows_fixed(orow, rows, W, wk, xa, xb, -pl, 3, 1);
            else if (KW == 3) dw_rows_fixed(orow, rows, W, wk, xa, xb, -pl, 3, 2);
            else if (sw == 1) dw_rows_fixed(orow, rows, W, wk, xa, xb, -pl, 5, 1);
            else dw_rows_fixed(orow, rows, W, wk, xa, xb, -pl, 5, 2);
            continue;
        }
        for (int64_t ky = 0; ky < KH; ky++) {
            int64_t iy = iy0 + ky * dh;
            if (iy < 0 || iy >= H) continue;
            const float *restrict irow = in + iy * W;
            const float *restrict wr = wk + ky * KW;
            if (fixed) {
                if (KW == 3 && sw == 1) dw_row_fixed(orow, irow, wr, xa, xb, -pl, 3, 1);
                else if (KW == 3) dw_row_fixed(orow, irow, wr, xa, xb, -pl, 3, 2);
                else if (sw == 1) dw_row_fixed(orow, irow, wr, xa, xb, -pl, 5, 1);
                else dw_row_fixed(orow, irow, wr, xa, xb, -pl, 5, 2);
                continue;
            }
            for (int64_t kx = 0; kx < KW; kx++) {
                const float wv = wr[kx];
                const int64_t off = kx * dw - pl;
                if (sw == 1) {
#pragma omp simd
                    for (int64_t ox = xa; ox < xb; ox++) orow[ox] += wv * irow[ox + off];
                } else {
#pragma omp simd
                    for (int64_t ox = xa; ox < xb; ox++) orow[ox] += wv * irow[ox * sw + off];
                }
            }
        }
    }
}

static dw_geom dw_geom_of(const sal_conv_params *p) {
    dw_geom g = {p->h, p->w, p->oh, p->ow, p->kh, p->kw, p->sh, p->sw, p->dh, p->dw, p->pt, p->pl};
    return g;
}

/* y (N, M, OH, OW) = bias + taps over x (N, C, H, W); one (n, m) plane per iteration. */
static void dw_forward(const sal_conv_params *p, const float *restrict x, const float *restrict w,
                       const float *restrict b, float *restrict y, int threads) {
    const int64_t C = p->c, M = p->m, H = p->h, W = p->w, OH = p->oh, OW = p->ow, KH = p->kh, KW = p->kw;
    const int64_t mult = M / C;
    const dw_geom g = dw_geom_of(p);
#pragma omp parallel for num_threads(par(threads, p->n * M * OH * OW * KH * KW)) schedule(static)
    for (int64_t nm = 0; nm < p->n * M; nm++) {
        int64_t n = nm / M, m = nm % M;
        dw_plane(&g, x + (n * C + m / mult) * H * W, w + m * KH * KW, b ? b[m] : 0.f, 0, y + nm * OH * OW);
    }
}

/* Stride 1: the gradient of a depthwise conv is a depthwise conv of gy with the kernel flipped,
 * gx[iy][ix] += sum wk[KH-1-ky][KW-1-kx] * gy[iy - pt' + ky*dh][ix - pl' + kx*dw] with
 * pt' = (KH-1)*dh - pt, pl' = (KW-1)*dw - pl: run dw_plane in accumulate mode on (gy -> gx).
 * One (n, c) input plane per iteration, over the mult output channels that read it. */
#define DW_MAX_TAPS 256
static void dw_backward_data_s1(const sal_conv_params *p, const float *restrict gy, const float *restrict w,
                                float *restrict gx, int threads) {
    const int64_t C = p->c, M = p->m, H = p->h, W = p->w, OH = p->oh, OW = p->ow, KH = p->kh, KW = p->kw;
    const int64_t mult = M / C;
    const dw_geom g = {OH, OW, H, W, KH, KW, 1, 1, p->dh, p->dw, (KH - 1) * p->dh - p->pt, (KW - 1) * p->dw - p->pl};
#pragma omp parallel for num_threads(par(threads, p->n * M * OH * OW * KH * KW)) schedule(static)
    for (int64_t nc = 0; nc < p->n * C; nc++) {
        int64_t n = nc / C, ci = nc % C;
        float wf[DW_MAX_TAPS];   /* (KH, KW) flipped */
        for (int64_t j = 0; j < mult; j++) {
            int64_t m = ci * mult + j;
            const float *wk = w + m * KH * KW;
            for (int64_t t = 0; t < KH * KW; t++) wf[t] = wk[KH * KW - 1 - t];
            dw_plane(&g, gy + (n * M + m) * OH * OW, wf, 0.f, 1, gx + nc * H * W);
        }
    }
}

/* gx (N, C, H, W) += taps^T gy (N, M, OH, OW); one (n, c) input plane per iteration, looping over
 * the mult output channels that read it (so planes are written by one thread only). */
static void dw_backward_data(const sal_conv_params *p, const float *restrict gy, const float *restrict w,
                             float *restrict gx, int threads) {
    const int64_t C = p->c, M = p->m, H = p->h, W = p->w, OH = p->oh, OW = p->ow, KH = p->kh, KW = p->kw;
    const int64_t mult = M / C, sw = p->sw;
#pragma omp parallel for num_threads(par(threads, p->n * M * OH * OW * KH * KW)) schedule(static)
    for (int64_t nc = 0; nc < p->n * C; nc++) {
        int64_t n = nc / C, ci = nc % C;
        float *gplane = gx + nc * H * W;
        for (int64_t j = 0; j < mult; j++) {
            int64_t m = ci * mult + j;
            const float *gout = gy + (n * M + m) * OH * OW;
            const float *wk = w + m * KH * KW;
            for (int64_t oy = 0; oy < OH; oy++) {
                const float *restrict grow = gout + oy * OW;
                for (int64_t ky = 0; ky < KH; ky++) {
                    int64_t iy = oy * p->sh - p->pt + ky * p->dh;
                    if (iy < 0 || iy >= H) continue;
                    float *restrict xrow = gplane + iy * W;
                    for (int64_t kx = 0; kx < KW; kx++) {
                        const float wv = wk[ky * KW + kx];
                        int64_t off = kx * p->dw - p->pl, lo, hi;
                        valid_range(off, sw, W, OW, &lo, &hi);
                        if (sw == 1) {
#pragma omp simd
                            for (int64_t ox = lo; ox < hi; ox++) xrow[ox + off] += wv * grow[ox];
                        } else {
#pragma omp simd
                            for (int64_t ox = lo; ox < hi; ox++) xrow[ox * sw + off] += wv * grow[ox];
                        }
                    }
                }
            }
        }
    }
}

/* gw (M, 1, kh, kw) += sum over n, output positions of gy * x at the tap; one m per iteration. */
static void dw_backward_weight(const sal_conv_params *p, const float *restrict x, const float *restrict gy,
                               float *restrict gw, int threads) {
    const int64_t C = p->c, M = p->m, H = p->h, W = p->w, OH = p->oh, OW = p->ow, KH = p->kh, KW = p->kw;
    const int64_t mult = M / C, sw = p->sw;
#pragma omp parallel for num_threads(par(threads, p->n * M * OH * OW * KH * KW)) schedule(static)
    for (int64_t m = 0; m < M; m++) {
        for (int64_t ky = 0; ky < KH; ky++)
            for (int64_t kx = 0; kx < KW; kx++) {
                int64_t off = kx * p->dw - p->pl, lo, hi, ylo, yhi;
                valid_range(off, sw, W, OW, &lo, &hi);
                valid_range(ky * p->dh - p->pt, p->sh, H, OH, &ylo, &yhi);
                double acc = 0;
                for (int64_t n = 0; n < p->n; n++) {
                    const float *in = x + (n * C + m / mult) * H * W;
                    const float *g = gy + (n * M + m) * OH * OW;
                    for (int64_t oy = ylo; oy < yhi; oy++) {
                        const float *irow = in + (oy * p->sh - p->pt + ky * p->dh) * W;
                        const float *grow = g + oy * OW;
                        float s = 0.f;
#pragma omp simd reduction(+ : s)
                        for (int64_t ox = lo; ox < hi; ox++) s += grow[ox] * irow[ox * sw + off];
                        acc += s;
                    }
                }
                gw[(m * KH + ky) * KW + kx] += (float)acc;
            }
    }
}

/* ------------------------------------------------------------------------------------------------ */
/* Conv                                                                                             */

/* Rows of y_g (Mg, OHW) set to the bias of their channel. */
static void fill_bias(float *y, const float *b, int64_t rows, int64_t len, int threads) {
#pragma omp parallel for num_threads(par(threads, rows * len)) schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        float v = b[r];
        float *d = y + r * len;
        for (int64_t i = 0; i < len; i++) d[i] = v;
    }
}

sal_status sal_cpu_conv_fwd(const sal_op_call *c, sal_error *err) {
    sal_status st;
    if ((st = need_params(c, err))) return st;
    const sal_conv_params *p = c->params;
    const float *x = c->in[0], *w = c->in[1], *b = p->has_bias && c->n_in > 2 ? c->in[2] : NULL;
    float *y = c->out[0];
    const int t = nthreads(c);
    if (conv_depthwise(p)) {
        dw_forward(p, x, w, b, y, t);
        return SAL_OK;
    }
    const int64_t G = p->group, Cg = p->c / G, Mg = p->m / G, HW = p->h * p->w, OHW = p->oh * p->ow;
    const int64_t K = Cg * p->kh * p->kw;
    const int pointwise = conv_pointwise(p);
    if (!pointwise && !c->scratch)
        return sal_fail(err, SAL_ERR_INTERNAL, "node '%s' (Conv): no scratch for im2col", c->node->name);
    for (int64_t n = 0; n < p->n; n++)
        for (int64_t g = 0; g < G; g++) {
            const float *xg = x + (n * p->c + g * Cg) * HW;   /* (Cg, H, W) */
            const float *wg = w + g * Mg * K;                 /* (Mg, Cg*kh*kw) */
            float *yg = y + (n * p->m + g * Mg) * OHW;        /* (Mg, OH*OW) */
            float beta = 0.f;
            if (b) {
                fill_bias(yg, b + g * Mg, Mg, OHW, t);
                beta = 1.f;
            }
            if (pointwise) {
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)Mg, (int)OHW, (int)Cg, 1.f, wg,
                            (int)Cg, xg, (int)HW, beta, yg, (int)OHW);
            } else {
                im2col(p, Cg, xg, c->scratch, t);
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)Mg, (int)OHW, (int)K, 1.f, wg,
                            (int)K, c->scratch, (int)OHW, beta, yg, (int)OHW);
            }
        }
    return SAL_OK;
}

sal_status sal_cpu_conv_bwd(const sal_op_call *c, sal_error *err) {
    sal_status st;
    if ((st = need_params(c, err))) return st;
    const sal_conv_params *p = c->params;
    const float *gy = c->gout[0];
    if (!gy) return SAL_OK;
    const float *x = c->in[0], *w = c->in[1];
    float *gx = c->gin[0], *gw = c->n_in > 1 ? c->gin[1] : NULL;
    float *gb = p->has_bias && c->n_in > 2 ? c->gin[2] : NULL;
    const int t = nthreads(c);
    const int64_t G = p->group, Cg = p->c / G, Mg = p->m / G, HW = p->h * p->w, OHW = p->oh * p->ow;
    const int64_t K = Cg * p->kh * p->kw;
    const int pointwise = conv_pointwise(p), depthwise = conv_depthwise(p);
    if (!pointwise && !depthwise && (gx || gw) && !c->scratch)
        return sal_fail(err, SAL_ERR_INTERNAL, "node '%s' (Conv): no scratch for col2im", c->node->name);

    if (gx) {
        if (depthwise && p->sh == 1 && p->sw == 1 && p->kh * p->kw <= DW_MAX_TAPS) {
            dw_backward_data_s1(p, gy, w, gx, t);
        } else if (depthwise) {
            dw_backward_data(p, gy, w, gx, t);
        } else {
            for (int64_t n = 0; n < p->n; n++)
                for (int64_t g = 0; g < G; g++) {
                    const float *wg = w + g * Mg * K;                 /* (Mg, K) */
                    const float *gyg = gy + (n * p->m + g * Mg) * OHW; /* (Mg, OHW) */
                    float *gxg = gx + (n * p->c + g * Cg) * HW;        /* (Cg, H, W) */
                    if (pointwise) {   /* gx_g (Cg, HW) += W_g^T (Cg, Mg) . gy_g (Mg, HW) */
                        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)Cg, (int)HW, (int)Mg, 1.f, wg,
                                    (int)Cg, gyg, (int)OHW, 1.f, gxg, (int)HW);
                    } else {           /* col (K, OHW) = W_g^T . gy_g, then scatter-add */
                        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)K, (int)OHW, (int)Mg, 1.f, wg,
                                    (int)K, gyg, (int)OHW, 0.f, c->scratch, (int)OHW);
                        col2im_add(p, Cg, c->scratch, gxg, t);
                    }
                }
        }
    }
    if (gw) {   /* runtime weights only */
        if (depthwise) {
            dw_backward_weight(p, x, gy, gw, t);
        } else {
            for (int64_t n = 0; n < p->n; n++)
                for (int64_t g = 0; g < G; g++) {
                    const float *xg = x + (n * p->c + g * Cg) * HW;
                    const float *gyg = gy + (n * p->m + g * Mg) * OHW;
                    float *gwg = gw + g * Mg * K;                      /* (Mg, K) */
                    const float *col = xg;
                    if (!pointwise) {
                        im2col(p, Cg, xg, c->scratch, t);
                        col = c->scratch;
                    }
                    /* gw_g (Mg, K) += gy_g (Mg, OHW) . col^T (OHW, K) */
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)Mg, (int)K, (int)OHW, 1.f, gyg,
                                (int)OHW, col, (int)OHW, 1.f, gwg, (int)K);
                }
        }
    }
    if (gb) {   /* runtime bias only */
#pragma omp parallel for num_threads(par(t, p->n * p->m * OHW)) schedule(static)
        for (int64_t m = 0; m < p->m; m++) {
            double acc = 0;
            for (int64_t n = 0; n < p->n; n++) {
                const float *g = gy + (n * p->m + m) * OHW;
                for (int64_t i = 0; i < OHW; i++) acc += g[i];
            }
            gb[m] += (float)acc;
        }
    }
    return SAL_OK;
}

/* ------------------------------------------------------------------------------------------------ */
/* BatchNormalization (inference): y = x * a[c] + b[c], a = scale / sqrt(var + eps),              */
/* b = B - mean * a; x viewed as (N, C, inner)                                                      */

sal_status sal_cpu_batchnorm_fwd(const sal_op_call *c, sal_error *err) {
    sal_status st;
    if ((st = need_params(c, err))) return st;
    const sal_bn_params *p = c->params;
    const float *x = c->in[0], *scale = c->in[1], *bias = c->in[2], *mean = c->in[3], *var = c->in[4];
    float *y = c->out[0];
    const int64_t C = p->c, inner = p->inner;
#pragma omp parallel for num_threads(par(nthreads(c), p->n * C * inner)) schedule(static)
    for (int64_t nc = 0; nc < p->n * C; nc++) {
        int64_t ch = nc % C;
        float a = scale[ch] / sqrtf(var[ch] + p->epsilon);
        float b = bias[ch] - mean[ch] * a;
        const float *xs = x + nc * inner;
        float *ys = y + nc * inner;
#pragma omp simd
        for (int64_t i = 0; i < inner; i++) ys[i] = xs[i] * a + b;
    }
    return SAL_OK;
}

sal_status sal_cpu_batchnorm_bwd(const sal_op_call *c, sal_error *err) {
    sal_status st;
    if ((st = need_params(c, err))) return st;
    const sal_bn_params *p = c->params;
    const float *gy = c->gout[0];
    if (!gy) return SAL_OK;
    const float *x = c->in[0], *scale = c->in[1], *mean = c->in[3], *var = c->in[4];
    float *gx = c->gin[0];
    const int64_t C = p->c, inner = p->inner;
    if (gx) {
#pragma omp parallel for num_threads(par(nthreads(c), p->n * C * inner)) schedule(static)
        for (int64_t nc = 0; nc < p->n * C; nc++) {
            int64_t ch = nc % C;
            float a = scale[ch] / sqrtf(var[ch] + p->epsilon);
            const float *g = gy + nc * inner;
            float *d = gx + nc * inner;
#pragma omp simd
            for (int64_t i = 0; i < inner; i++) d[i] += g[i] * a;
        }
    }
    /* Runtime statistics or affine parameters (never the case in exported models): exact
     * per-channel gradients of y = (x - mean) * rsqrt(var + eps) * scale + B. */
    float *gs = c->gin[1], *gb = c->gin[2], *gm = c->gin[3], *gv = c->gin[4];
    if (gs || gb || gm || gv) {
#pragma omp parallel for num_threads(par(nthreads(c), p->n * C * inner)) schedule(static)
        for (int64_t ch = 0; ch < C; ch++) {
            double inv = 1.0 / sqrt((double)var[ch] + (double)p->epsilon);
            double sum_g = 0, sum_gxc = 0;   /* sum g, sum g * (x - mean) */
            for (int64_t n = 0; n < p->n; n++) {
                const float *g = gy + (n * C + ch) * inner, *xs = x + (n * C + ch) * inner;
                for (int64_t i = 0; i < inner; i++) {
                    sum_g += g[i];
                    sum_gxc += (double)g[i] * ((double)xs[i] - mean[ch]);
                }
            }
            if (gs) gs[ch] += (float)(sum_gxc * inv);
            if (gb) gb[ch] += (float)sum_g;
            if (gm) gm[ch] += (float)(-sum_g * scale[ch] * inv);
            if (gv) gv[ch] += (float)(-0.5 * sum_gxc * scale[ch] * inv * inv * inv);
        }
    }
    return SAL_OK;
}

/* ------------------------------------------------------------------------------------------------ */
/* Pooling: x (N, C, H, W) -> y (N, C, OH, OW); one (n, c) plane per iteration. The window of      */
/* output (oy, ox) covers taps ky in [ylo, yhi), kx in [xlo, xhi) that fall inside the input.      */

typedef struct pool_span {
    int64_t lo, hi;   /* valid taps */
    int64_t padded;   /* taps inside the padded input [-pad_begin, in + pad_end) */
} pool_span;

static void pool_span_of(int64_t o, int64_t s, int64_t d, int64_t k, int64_t pb, int64_t pe, int64_t in,
                         pool_span *sp) {
    valid_range(o * s - pb, d, in, k, &sp->lo, &sp->hi);
    int64_t plo, phi;
    valid_range(o * s, d, in + pb + pe, k, &plo, &phi);
    sp->padded = phi - plo;
}

/* Index (within the plane) of the first maximum of the window, -1 when it has no valid tap. */
static inline int64_t pool_argmax(const float *plane, int64_t W, const pool_span *ys, const pool_span *xs,
                                  int64_t iy0, int64_t ix0, int64_t dh, int64_t dw) {
    int64_t best = -1;
    float bv = 0.f;
    for (int64_t ky = ys->lo; ky < ys->hi; ky++) {
        const float *row = plane + (iy0 + ky * dh) * W;
        for (int64_t kx = xs->lo; kx < xs->hi; kx++) {
            float v = row[ix0 + kx * dw];
            if (best < 0 || v > bv) {
                bv = v;
                best = (iy0 + ky * dh) * W + ix0 + kx * dw;
            }
        }
    }
    return best;
}

static sal_status pool_run(const sal_op_call *c, sal_error *err, int is_max, int backward) {
    sal_status st;
    if ((st = need_params(c, err))) return st;
    const sal_pool_params *p = c->params;
    const float *x = c->in[0];
    float *y = c->out[0];
    const float *gy = backward ? c->gout[0] : NULL;
    float *gx = backward ? c->gin[0] : NULL;
    if (backward && (!gy || !gx)) return SAL_OK;
    const int64_t H = p->h, W = p->w, OH = p->oh, OW = p->ow;
#pragma omp parallel for num_threads(par(nthreads(c), p->n * p->c * OH * OW * p->kh * p->kw)) schedule(static)
    for (int64_t nc = 0; nc < p->n * p->c; nc++) {
        const float *plane = x + nc * H * W;
        float *gplane = gx ? gx + nc * H * W : NULL;
        for (int64_t oy = 0; oy < OH; oy++) {
            pool_span ys;
            pool_span_of(oy, p->sh, p->dh, p->kh, p->pt, p->pb, H, &ys);
            int64_t iy0 = oy * p->sh - p->pt;
            for (int64_t ox = 0; ox < OW; ox++) {
                pool_span xs;
                pool_span_of(ox, p->sw, p->dw, p->kw, p->pl, p->pr, W, &xs);
                int64_t ix0 = ox * p->sw - p->pl, o = (nc * OH + oy) * OW + ox;
                if (is_max) {
                    int64_t at = pool_argmax(plane, W, &ys, &xs, iy0, ix0, p->dh, p->dw);
                    if (!backward) y[o] = at >= 0 ? plane[at] : 0.f;
                    else if (at >= 0) gplane[at] += gy[o];
                    continue;
                }
                int64_t count = p->count_include_pad ? ys.padded * xs.padded
                                                     : (ys.hi - ys.lo) * (xs.hi - xs.lo);
                if (count <= 0) {
                    if (!backward) y[o] = 0.f;
                    continue;
                }
                if (!backward) {
                    float s = 0.f;
                    for (int64_t ky = ys.lo; ky < ys.hi; ky++) {
                        const float *row = plane + (iy0 + ky * p->dh) * W + ix0;
                        for (int64_t kx = xs.lo; kx < xs.hi; kx++) s += row[kx * p->dw];
                    }
                    y[o] = s / (float)count;
                } else {
                    float g = gy[o] / (float)count;
                    for (int64_t ky = ys.lo; ky < ys.hi; ky++) {
                        float *row = gplane + (iy0 + ky * p->dh) * W + ix0;
                        for (int64_t kx = xs.lo; kx < xs.hi; kx++) row[kx * p->dw] += g;
                    }
                }
            }
        }
    }
    return SAL_OK;
}

sal_status sal_cpu_maxpool_fwd(const sal_op_call *c, sal_error *err) { return pool_run(c, err, 1, 0); }
sal_status sal_cpu_maxpool_bwd(const sal_op_call *c, sal_error *err) { return pool_run(c, err, 1, 1); }
sal_status sal_cpu_avgpool_fwd(const sal_op_call *c, sal_error *err) { return pool_run(c, err, 0, 0); }
sal_status sal_cpu_avgpool_bwd(const sal_op_call *c, sal_error *err) { return pool_run(c, err, 0, 1); }

/* GlobalAveragePool: x (N, C, S) -> y (N, C), S = p->h (product of the spatial dims). */
sal_status sal_cpu_globalavgpool_fwd(const sal_op_call *c, sal_error *err) {
    sal_status st;
    if ((st = need_params(c, err))) return st;
    const sal_pool_params *p = c->params;
    const float *x = c->in[0];
    float *y = c->out[0];
    const int64_t S = p->h;
#pragma omp parallel for num_threads(par(nthreads(c), p->n * p->c * S)) schedule(static)
    for (int64_t nc = 0; nc < p->n * p->c; nc++) {
        const float *xs = x + nc * S;
        float s = 0.f;
#pragma omp simd reduction(+ : s)
        for (int64_t i = 0; i < S; i++) s += xs[i];
        y[nc] = s / (float)S;
    }
    return SAL_OK;
}

sal_status sal_cpu_globalavgpool_bwd(const sal_op_call *c, sal_error *err) {
    sal_status st;
    if ((st = need_params(c, err))) return st;
    const sal_pool_params *p = c->params;
    const float *gy = c->gout[0];
    float *gx = c->gin[0];
    if (!gy || !gx) return SAL_OK;
    const int64_t S = p->h;
#pragma omp parallel for num_threads(par(nthreads(c), p->n * p->c * S)) schedule(static)
    for (int64_t nc = 0; nc < p->n * p->c; nc++) {
        float g = gy[nc] / (float)S;
        float *d = gx + nc * S;
#pragma omp simd
        for (int64_t i = 0; i < S; i++) d[i] += g;
    }
    return SAL_OK;
}

/* ------------------------------------------------------------------------------------------------ */
/* Gemm: Y (M, N) = alpha * op(A) . op(B) + beta * C, op(A) (M, K), op(B) (K, N), C broadcast      */

sal_status sal_cpu_gemm_fwd(const sal_op_call *c, sal_error *err) {
    sal_status st;
    if ((st = need_params(c, err))) return st;
    const sal_gemm_params *p = c->params;
    const float *a = c->in[0], *b = c->in[1], *cc = p->has_c && c->n_in > 2 ? c->in[2] : NULL;
    float *y = c->out[0];
    const int64_t M = p->m, N = p->n, K = p->k;
    float beta = 0.f;
    if (cc && p->beta != 0.f) {
        const int64_t s0 = p->c.sb[0], s1 = p->c.sb[1];
#pragma omp parallel for num_threads(par(nthreads(c), M * N)) schedule(static)
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++) y[i * N + j] = p->beta * cc[i * s0 + j * s1];
        beta = 1.f;
    }
    if (K == 0) {
        if (beta == 0.f) memset(y, 0, sizeof(float) * (size_t)(M * N));
        return SAL_OK;
    }
    cblas_sgemm(CblasRowMajor, p->trans_a ? CblasTrans : CblasNoTrans, p->trans_b ? CblasTrans : CblasNoTrans,
                (int)M, (int)N, (int)K, p->alpha, a, p->trans_a ? (int)M : (int)K, b,
                p->trans_b ? (int)K : (int)N, beta, y, (int)N);
    return SAL_OK;
}

sal_status sal_cpu_gemm_bwd(const sal_op_call *c, sal_error *err) {
    sal_status st;
    if ((st = need_params(c, err))) return st;
    const sal_gemm_params *p = c->params;
    const float *g = c->gout[0];
    if (!g) return SAL_OK;
    const float *a = c->in[0], *b = c->in[1];
    float *ga = c->gin[0], *gb = c->gin[1], *gc = p->has_c && c->n_in > 2 ? c->gin[2] : NULL;
    const int M = (int)p->m, N = (int)p->n, K = (int)p->k;
    const int lda = p->trans_a ? M : K, ldb = p->trans_b ? K : N;
    if (ga && K > 0) {
        if (!p->trans_a)   /* dA (M, K) = alpha * G (M, N) . op(B)^T (N, K) */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, p->trans_b ? CblasNoTrans : CblasTrans, M, K, N, p->alpha,
                        g, N, b, ldb, 1.f, ga, K);
        else               /* dA (K, M) = alpha * op(B) (K, N) . G^T (N, M) */
            cblas_sgemm(CblasRowMajor, p->trans_b ? CblasTrans : CblasNoTrans, CblasTrans, K, M, N, p->alpha,
                        b, ldb, g, N, 1.f, ga, M);
    }
    if (gb && K > 0) {
        if (!p->trans_b)   /* dB (K, N) = alpha * op(A)^T (K, M) . G (M, N) */
            cblas_sgemm(CblasRowMajor, p->trans_a ? CblasNoTrans : CblasTrans, CblasNoTrans, K, N, M, p->alpha,
                        a, lda, g, N, 1.f, gb, N);
        else               /* dB (N, K) = alpha * G^T (N, M) . op(A) (M, K) */
            cblas_sgemm(CblasRowMajor, CblasTrans, p->trans_a ? CblasTrans : CblasNoTrans, N, K, M, p->alpha,
                        g, N, a, lda, 1.f, gb, K);
    }
    if (gc) {   /* dC = beta * G summed over C's broadcast dims (serial: several (i,j) share one C) */
        const int64_t s0 = p->c.sb[0], s1 = p->c.sb[1];
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++) gc[i * s0 + j * s1] += p->beta * g[i * N + j];
    }
    return SAL_OK;
}

/* ------------------------------------------------------------------------------------------------ */
/* MatMul (numpy): Y[batch] (M, N) = A[batch] (M, K) . B[batch] (K, N), batch dims broadcast       */

static void matmul_offsets(const sal_matmul_params *p, int64_t bi, int64_t *ao, int64_t *bo) {
    if (!p->batch_general) {
        *ao = bi * p->a_batch_stride;
        *bo = bi * p->b_batch_stride;
        return;
    }
    int64_t ia = 0, ib = 0, r = bi;
    for (int d = p->batch_ndim - 1; d >= 0; d--) {
        int64_t idx = r % p->batch_shape[d];
        r /= p->batch_shape[d];
        ia += idx * p->a_bstride[d];
        ib += idx * p->b_bstride[d];
    }
    *ao = ia * p->m * p->k;
    *bo = ib * p->k * p->n;
}

sal_status sal_cpu_matmul_fwd(const sal_op_call *c, sal_error *err) {
    sal_status st;
    if ((st = need_params(c, err))) return st;
    const sal_matmul_params *p = c->params;
    const float *a = c->in[0], *b = c->in[1];
    float *y = c->out[0];
    const int M = (int)p->m, N = (int)p->n, K = (int)p->k;
    if (K == 0) {
        memset(y, 0, sizeof(float) * (size_t)(p->batch * p->m * p->n));
        return SAL_OK;
    }
    /* B shared by every batch and A contiguous: fold the batch into M, one sgemm */
    if (!p->batch_general && p->b_batch_stride == 0 && (p->a_batch_stride != 0 || p->batch == 1) &&
        p->batch * p->m <= 0x7fffffff) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)(p->batch * M), N, K, 1.f, a, K, b, N, 0.f,
                    y, N);
        return SAL_OK;
    }
    for (int64_t bi = 0; bi < p->batch; bi++) {
        int64_t ao, bo;
        matmul_offsets(p, bi, &ao, &bo);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1.f, a + ao, K, b + bo, N, 0.f,
                    y + bi * p->m * p->n, N);
    }
    return SAL_OK;
}

sal_status sal_cpu_matmul_bwd(const sal_op_call *c, sal_error *err) {
    sal_status st;
    if ((st = need_params(c, err))) return st;
    const sal_matmul_params *p = c->params;
    const float *g = c->gout[0];
    if (!g || p->k == 0) return SAL_OK;
    const float *a = c->in[0], *b = c->in[1];
    float *ga = c->gin[0], *gb = c->gin[1];
    const int M = (int)p->m, N = (int)p->n, K = (int)p->k;
    const int fold = !p->batch_general && p->b_batch_stride == 0 && (p->a_batch_stride != 0 || p->batch == 1) &&
                     p->batch * p->m <= 0x7fffffff;
    if (fold) {   /* A' (batch*M, K), G' (batch*M, N), B (K, N) */
        const int BM = (int)(p->batch * p->m);
        if (ga) cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, BM, K, N, 1.f, g, N, b, N, 1.f, ga, K);
        if (gb) cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, K, N, BM, 1.f, a, K, g, N, 1.f, gb, N);
        return SAL_OK;
    }
    /* serial over batches: broadcast operands receive several contributions */
    for (int64_t bi = 0; bi < p->batch; bi++) {
        int64_t ao, bo;
        matmul_offsets(p, bi, &ao, &bo);
        const float *gbi = g + bi * p->m * p->n;
        if (ga)   /* dA (M, K) += G (M, N) . B^T (N, K) */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, K, N, 1.f, gbi, N, b + bo, N, 1.f, ga + ao, K);
        if (gb)   /* dB (K, N) += A^T (K, M) . G (M, N) */
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, K, N, M, 1.f, a + ao, K, gbi, N, 1.f, gb + bo, N);
    }
    return SAL_OK;
}

/* ------------------------------------------------------------------------------------------------ */
/* LRN across channels: x (N, C, S), window of channel c = [c - floor((size-1)/2),                 */
/* c + ceil((size-1)/2)] clipped; s_c = bias + alpha/size * sum_window x^2, y_c = x_c * s_c^-beta  */
/* One (n, c) row of S pixels per iteration, vectorized over pixels.                                */

static void lrn_sumsq(const float *x, int64_t C, int64_t S, int64_t ch, int64_t lo, int64_t hi, float *restrict acc) {
    int64_t c0 = ch - lo < 0 ? 0 : ch - lo, c1 = ch + hi > C - 1 ? C - 1 : ch + hi;
    for (int64_t i = 0; i < S; i++) acc[i] = 0.f;
    for (int64_t j = c0; j <= c1; j++) {
        const float *restrict xr = x + j * S;
#pragma omp simd
        for (int64_t i = 0; i < S; i++) acc[i] += xr[i] * xr[i];
    }
}

sal_status sal_cpu_lrn_fwd(const sal_op_call *c, sal_error *err) {
    sal_status st;
    if ((st = need_params(c, err))) return st;
    const sal_lrn_params *p = c->params;
    const float *x = c->in[0];
    float *y = c->out[0];
    const int64_t C = p->c, S = p->inner, lo = (p->size - 1) / 2, hi = p->size - 1 - lo;
    const float as = p->alpha / (float)p->size, beta = p->beta, bias = p->bias;
#pragma omp parallel for num_threads(par(nthreads(c), p->n * C * S * p->size)) schedule(static)
    for (int64_t nc = 0; nc < p->n * C; nc++) {
        int64_t n = nc / C, ch = nc % C;
        float *yr = y + nc * S;   /* sum of squares accumulated in place, then replaced by y */
        lrn_sumsq(x + n * C * S, C, S, ch, lo, hi, yr);
        const float *xr = x + nc * S;
        for (int64_t i = 0; i < S; i++) yr[i] = xr[i] * powf(bias + as * yr[i], -beta);
    }
    return SAL_OK;
}

/* dx_i = g_i s_i^-beta - 2 beta alpha/size x_i sum_{c : i in window(c)} g_c x_c s_c^(-beta-1);
 * the scratch (N, C, S) holds u_c = g_c x_c s_c^(-beta-1). */
sal_status sal_cpu_lrn_bwd(const sal_op_call *c, sal_error *err) {
    sal_status st;
    if ((st = need_params(c, err))) return st;
    const sal_lrn_params *p = c->params;
    const float *gy = c->gout[0], *x = c->in[0];
    float *gx = c->gin[0], *u = c->scratch;
    if (!gy || !gx) return SAL_OK;
    if (!u) return sal_fail(err, SAL_ERR_INTERNAL, "node '%s' (LRN): no scratch", c->node->name);
    const int64_t C = p->c, S = p->inner, lo = (p->size - 1) / 2, hi = p->size - 1 - lo;
    const float as = p->alpha / (float)p->size, beta = p->beta, bias = p->bias;
    const int t = nthreads(c);
#pragma omp parallel for num_threads(par(t, p->n * C * S * p->size)) schedule(static)
    for (int64_t nc = 0; nc < p->n * C; nc++) {
        int64_t n = nc / C, ch = nc % C;
        float *ur = u + nc * S;
        lrn_sumsq(x + n * C * S, C, S, ch, lo, hi, ur);
        const float *xr = x + nc * S, *gr = gy + nc * S;
        float *dr = gx + nc * S;
        for (int64_t i = 0; i < S; i++) {
            float s = bias + as * ur[i];
            float sb = powf(s, -beta);
            dr[i] += gr[i] * sb;
            ur[i] = gr[i] * xr[i] * sb / s;
        }
    }
    /* channel i receives from the channels c with c - lo <= i <= c + hi, i.e. c in [i - hi, i + lo] */
    const float k2 = -2.f * beta * as;
#pragma omp parallel for num_threads(par(t, p->n * C * S * p->size)) schedule(static)
    for (int64_t ni = 0; ni < p->n * C; ni++) {
        int64_t n = ni / C, i = ni % C;
        int64_t c0 = i - hi < 0 ? 0 : i - hi, c1 = i + lo > C - 1 ? C - 1 : i + lo;
        const float *xr = x + ni * S;
        float *dr = gx + ni * S;
        for (int64_t j = c0; j <= c1; j++) {
            const float *restrict ur = u + (n * C + j) * S;
#pragma omp simd
            for (int64_t k = 0; k < S; k++) dr[k] += k2 * xr[k] * ur[k];
        }
    }
    return SAL_OK;
}
