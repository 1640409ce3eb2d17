/* cpu_nn.c — CPU kernels for convolution, pooling, normalization and matrix products: Conv,
 * BatchNormalization, MaxPool, AveragePool, GlobalAveragePool, Gemm, MatMul, LRN; forward and
 * backward (gradients are ADDED into call->gin[i] where it is non-NULL).
 *
 * Layouts are row-major NCHW (1-D ops use H = 1). Matrix products go to sal_sgemm (oneDNN),
 * always called from the calling thread, never inside an OpenMP region (oneDNN threads itself).
 * Loops that are not BLAS are parallelized with OpenMP over independent planes or rows.
 *
 * Convolution strategy (per image n and group g; Cg = C/group, Mg = M/group):
 *   1x1, stride 1, no padding:  Y_g (Mg, HW) = W_g (Mg, Cg) . X_g (Cg, HW)       one sgemm
 *   depthwise (group == C):     direct, OpenMP over (n, m) planes: each plane is copied into a
 *                               zero-padded per-thread buffer so that no tap needs a bounds check;
 *                               stride 1 with 3x3/5x5 kernels is then one flat vectorized loop over
 *                               the padded grid, stride 2 the same over the plane's four phases
 *   general:                    im2col X_g -> col (Cg*kh*kw, OH*OW) in scratch, then
 *                               Y_g (Mg, OHW) = W_g (Mg, Cg*kh*kw) . col
 * The bias is written first and the sgemm accumulates onto it (beta = 1). Backward-data mirrors
 * these: col = W_g^T . dY_g then col2im (scatter-add) into dX; 1x1 is one sgemm accumulating into
 * dX; depthwise stride 1 is a depthwise conv of dY with the kernel flipped, stride 2 a phase-wise
 * stride-1 correlation, anything else a bounds-checked scatter. Weight/bias gradients are computed
 * only when W/B are runtime inputs (gin[1]/gin[2] != NULL), which models normally never have.
 */
#include "gemm.h"
#include <math.h>
#include <omp.h>
#include <string.h>

#include "../backend.h"
#include "../../ops/op_decls.h"
#include "twin_elem.h"
#include "twin_nn.h"
#include "twin_all.h"
#include "../blas_drive.h"

/* ------------------------------------------------------------------------------------------------ */
/* Helpers                                                                                          */

static int nthreads(const sal_op_call *c) { return c->threads > 0 ? c->threads : 1; }

/* Threads for a loop of about `work` element visits or multiply-adds: small loops stay on the
 * calling thread, where waking a team would cost more than it saves. */
#define SAL_PAR_MIN_WORK 32768
static int par(int threads, int64_t work) { return work < SAL_PAR_MIN_WORK ? 1 : threads; }

/* Output positions o in [*lo, *hi) with 0 <= o*step + off < in: the twins' (twin_nn.h). */
#define valid_range sal_tw__valid_range

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

/* The per-plane kernel is compiled for AVX-512, FMA (+AVX) and baseline x86-64 and picked at load
 * time by CPU features (GCC target_clones; not by CPU model, which virtual machines often hide),
 * since the library is not built with -march=native. Multiply-adds may be fused there. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && defined(__has_attribute)
#if __has_attribute(target_clones)
#define SAL_ISA_CLONES \
    __attribute__((target_clones("avx512f", "fma", "default"), optimize("fp-contract=fast")))
#endif
#endif
#ifndef SAL_ISA_CLONES
#define SAL_ISA_CLONES
#endif

#define ALWAYS_INLINE static inline __attribute__((always_inline))

/* Geometry of one depthwise plane: in (H, W) -> out (OH, OW), kernel (KH, KW). */
typedef struct dw_geom {
    int64_t H, W, OH, OW, KH, KW, sh, sw, dh, dw, pt, pl;
} dw_geom;

/* One output row from K consecutive rows of the padded plane (row stride W), K = 3 or 5, column
 * stride S, dilation 1: orow[ox] += sum_{ky,kx} w[ky*K+kx] * in[ky*W + ox*S + kx]. K and S are
 * constants at every call; the taps are spelled out so that the column loop vectorizes, one
 * partial sum per kernel row to keep dependency chains short. */
#define DW_TAPS3(r, w, b) ((w)[0] * (r)[b] + (w)[1] * (r)[(b) + 1] + (w)[2] * (r)[(b) + 2])
#define DW_TAPS5(r, w, b)                                                                          \
    ((w)[0] * (r)[b] + (w)[1] * (r)[(b) + 1] + (w)[2] * (r)[(b) + 2] + (w)[3] * (r)[(b) + 3] +     \
     (w)[4] * (r)[(b) + 4])
ALWAYS_INLINE void dw_rows_fixed(float *restrict orow, const float *restrict in, int64_t W,
                                 const float *restrict w, int64_t OW, const int K, const int S) {
    const float *restrict r0 = in, *restrict r1 = in + W, *restrict r2 = in + 2 * W;
    if (K == 3) {
#pragma omp simd
        for (int64_t ox = 0; ox < OW; ox++) {
            const int64_t b = ox * S;
            orow[ox] += (DW_TAPS3(r0, w, b) + DW_TAPS3(r1, w + 3, b)) + DW_TAPS3(r2, w + 6, b);
        }
    } else {
        const float *restrict r3 = in + 3 * W, *restrict r4 = in + 4 * W;
#pragma omp simd
        for (int64_t ox = 0; ox < OW; ox++) {
            const int64_t b = ox * S;
            orow[ox] += ((DW_TAPS5(r0, w, b) + DW_TAPS5(r1, w + 5, b)) +
                         (DW_TAPS5(r2, w + 10, b) + DW_TAPS5(r3, w + 15, b))) + DW_TAPS5(r4, w + 20, b);
        }
    }
}

/* Size (Hp, Wp) of the zero-padded copy of an input plane that holds every tap of every output:
 * the input sits at (pt, pl). Needs pt, pl >= 0. */
static void dw_pad_dims(const dw_geom *g, int64_t *hp, int64_t *wp) {
    int64_t h = g->pt + g->H, w = g->pl + g->W;
    int64_t need_h = (g->OH - 1) * g->sh + (g->KH - 1) * g->dh + 1;
    int64_t need_w = (g->OW - 1) * g->sw + (g->KW - 1) * g->dw + 1;
    *hp = need_h > h ? need_h : h;
    *wp = need_w > w ? need_w : w;
}

/* Stride 2, 3x3 or 5x5, dilation 1: the padded plane split into its four phases
 * P[a][b][i][j] = padded[2i+a][2j+b] (each (Hq, Wq) = half the padded size, rounded up), after
 * which every tap (ky, kx) reads phase (ky&1, kx&1) at the fixed offset (ky>>1)*Wq + (kx>>1)
 * from q = oy*Wq + ox: a flat stride-1 loop over acc (OH, Wq) as in dw_plane. Buffer: the four
 * phases then acc, inside one slot (borders zeroed by the caller, interiors rewritten). */
#define DW_PH(ky, kx) ((ky) & 1 ? ((kx) & 1 ? p11 : p10) : ((kx) & 1 ? p01 : p00))
#define DW_PT(ky, kx) (w[(ky) * K + (kx)] * DW_PH(ky, kx)[q + ((ky) >> 1) * Wq + ((kx) >> 1)])
#define DW_ROW3(ky) (DW_PT(ky, 0) + DW_PT(ky, 1) + DW_PT(ky, 2))
#define DW_ROW5(ky) (DW_PT(ky, 0) + DW_PT(ky, 1) + DW_PT(ky, 2) + DW_PT(ky, 3) + DW_PT(ky, 4))
/* The flat loops run over a whole number of 16-float vectors (no scalar tail): the extra
 * outputs are junk that is never copied out, their reads stay inside the buffer thanks to a gap
 * of DW_GAP floats between the input planes and acc, and acc has DW_TAIL floats to spare. */
#define DW_GAP 32
#define DW_TAIL 16
static int64_t dw_round_len(int64_t n) { return (n + 15) / 16 * 16; }

static void dw_phase_dims(int64_t hp, int64_t wp, int64_t *hq, int64_t *wq) {
    *hq = (hp + 1) / 2;
    *wq = (wp + 1) / 2;
}

ALWAYS_INLINE void dw_plane_s2(const dw_geom *g, int64_t Hp, int64_t Wp, const float *restrict in,
                               const float *restrict w, float bias, int accumulate, float *restrict out,
                               float *restrict buf) {
    const int64_t H = g->H, W = g->W, OH = g->OH, OW = g->OW, K = g->KW;
    int64_t Hq, Wq;
    dw_phase_dims(Hp, Wp, &Hq, &Wq);
    float *restrict p00 = buf, *restrict p01 = buf + Hq * Wq, *restrict p10 = buf + 2 * Hq * Wq;
    float *restrict p11 = buf + 3 * Hq * Wq, *restrict acc = buf + 4 * Hq * Wq + DW_GAP;
    /* input row y lands in padded row y + pt: phase row (y+pt)>>1 of phases a = (y+pt)&1; its
     * columns x go to column (x+pl)>>1 of phase b = (x+pl)&1 */
    const int64_t pt = g->pt, pl = g->pl;
    for (int64_t y = 0; y < H; y++) {
        const int64_t yy = y + pt;
        float *restrict even = ((yy & 1) ? p10 : p00) + (yy >> 1) * Wq;   /* padded columns 2j */
        float *restrict odd = ((yy & 1) ? p11 : p01) + (yy >> 1) * Wq;    /* padded columns 2j+1 */
        const float *restrict src = in + y * W;
        int64_t x = 0;
        if (pl & 1) {   /* x = 0 is an odd padded column: pair (x, x+1) = (odd j, even j+1) */
            const int64_t j0 = pl >> 1;
            for (; x + 1 < W; x += 2) {
                odd[j0 + x / 2] = src[x];
                even[j0 + 1 + x / 2] = src[x + 1];
            }
            if (x < W) odd[j0 + x / 2] = src[x];
        } else {
            const int64_t j0 = pl >> 1;
            const int64_t pairs = W / 2;
#pragma omp simd
            for (int64_t k = 0; k < pairs; k++) {
                even[j0 + k] = src[2 * k];
                odd[j0 + k] = src[2 * k + 1];
            }
            if (W & 1) even[j0 + pairs] = src[W - 1];
        }
    }
    const int64_t L = dw_round_len((OH - 1) * Wq + OW);
    if (K == 3) {
#pragma omp simd
        for (int64_t q = 0; q < L; q++) acc[q] = (DW_ROW3(0) + DW_ROW3(1)) + DW_ROW3(2);
    } else {
#pragma omp simd
        for (int64_t q = 0; q < L; q++)
            acc[q] = ((DW_ROW5(0) + DW_ROW5(1)) + (DW_ROW5(2) + DW_ROW5(3))) + DW_ROW5(4);
    }
    for (int64_t oy = 0; oy < OH; oy++) {
        float *restrict orow = out + oy * OW;
        const float *restrict arow = acc + oy * Wq;
        if (accumulate) {
#pragma omp simd
            for (int64_t ox = 0; ox < OW; ox++) orow[ox] += arow[ox];
        } else {
#pragma omp simd
            for (int64_t ox = 0; ox < OW; ox++) orow[ox] = bias + arow[ox];
        }
    }
}

/* Floats of a dw_plane buffer for geometry g (padded plane or its phases, plus acc). */
static int64_t dw_buffer_floats(const dw_geom *g, int64_t hp, int64_t wp) {
    int64_t hq, wq;
    dw_phase_dims(hp, wp, &hq, &wq);
    int64_t a = hp * wp + DW_GAP + g->OH * wp + DW_TAIL, b = 4 * hq * wq + DW_GAP + g->OH * wq + DW_TAIL;
    return a > b ? a : b;
}

/* One depthwise plane, no bounds checks:
 *   out (OH, OW) = bias + taps over in (H, W)   (accumulate = 0)
 *   out (OH, OW) += taps over in (H, W)         (accumulate = 1)
 * out[oy][ox] sums wk[ky][kx] * in[oy*sh - pt + ky*dh][ox*sw - pl + kx*dw] (zero outside in).
 * The plane is first copied into pad (Hp, Wp), whose border the caller has zeroed (only the
 * interior is ever written). Stride 1 with a 3x3 or 5x5 kernel then runs as one flat loop over
 * acc (OH, Wp): acc[q] = sum_taps w * pad[q + ky*Wp + kx], columns ox >= OW of acc are junk and
 * dropped; other shapes run row by row over pad. */
SAL_ISA_CLONES
static void dw_plane(const dw_geom *g, int64_t Hp, int64_t Wp, const float *restrict in,
                     const float *restrict wk, float bias, int accumulate, float *restrict out,
                     float *restrict pad, float *restrict acc) {
    const int64_t H = g->H, W = g->W, OH = g->OH, OW = g->OW, KH = g->KH, KW = g->KW;
    const int64_t sh = g->sh, sw = g->sw, dh = g->dh, dw = g->dw;
    const int fixed = dh == 1 && dw == 1 && KH == KW && (KW == 3 || KW == 5);
    if (fixed && sh == 2 && sw == 2) {
        dw_plane_s2(g, Hp, Wp, in, wk, bias, accumulate, out, pad);
        return;
    }
    for (int64_t y = 0; y < H; y++)
        memcpy(pad + (g->pt + y) * Wp + g->pl, in + y * W, sizeof(float) * (size_t)W);
    if (fixed && sh == 1 && sw == 1) {
        const int64_t L = dw_round_len((OH - 1) * Wp + OW);
        const float *restrict r0 = pad, *restrict r1 = pad + Wp, *restrict r2 = pad + 2 * Wp;
        if (KW == 3) {
#pragma omp simd
            for (int64_t q = 0; q < L; q++)
                acc[q] = (DW_TAPS3(r0, wk, q) + DW_TAPS3(r1, wk + 3, q)) + DW_TAPS3(r2, wk + 6, q);
        } else {
            const float *restrict r3 = pad + 3 * Wp, *restrict r4 = pad + 4 * Wp;
#pragma omp simd
            for (int64_t q = 0; q < L; q++)
                acc[q] = ((DW_TAPS5(r0, wk, q) + DW_TAPS5(r1, wk + 5, q)) +
                          (DW_TAPS5(r2, wk + 10, q) + DW_TAPS5(r3, wk + 15, q))) + DW_TAPS5(r4, wk + 20, q);
        }
        for (int64_t oy = 0; oy < OH; oy++) {
            float *restrict orow = out + oy * OW;
            const float *restrict arow = acc + oy * Wp;
            if (accumulate) {
#pragma omp simd
                for (int64_t ox = 0; ox < OW; ox++) orow[ox] += arow[ox];
            } else {
#pragma omp simd
                for (int64_t ox = 0; ox < OW; ox++) orow[ox] = bias + arow[ox];
            }
        }
        return;
    }
    for (int64_t oy = 0; oy < OH; oy++) {
        float *restrict orow = out + oy * OW;
        if (!accumulate) {
#pragma omp simd
            for (int64_t ox = 0; ox < OW; ox++) orow[ox] = bias;
        }
        const float *rows = pad + oy * sh * Wp;
        if (fixed && sw == 2) {
            if (KW == 3) dw_rows_fixed(orow, rows, Wp, wk, OW, 3, 2);
            else dw_rows_fixed(orow, rows, Wp, wk, OW, 5, 2);
            continue;
        }
        for (int64_t ky = 0; ky < KH; ky++) {
            const float *restrict irow = rows + ky * dh * Wp;
            for (int64_t kx = 0; kx < KW; kx++) {
                const float wv = wk[ky * KW + kx];
                const int64_t off = kx * dw;
                if (sw == 1) {
#pragma omp simd
                    for (int64_t ox = 0; ox < OW; ox++) orow[ox] += wv * irow[ox + off];
                } else {
#pragma omp simd
                    for (int64_t ox = 0; ox < OW; ox++) orow[ox] += wv * irow[ox * sw + off];
                }
            }
        }
    }
}

static dw_geom dw_geom_of(const sal_conv_params *p) {
    dw_geom g = {p->h, p->w, p->oh, p->ow, p->kh, p->kw, p->sh, p->sw, p->dh, p->dw, p->pt, p->pl};
    return g;
}

/* Thread t's buffer in the scratch: floats [t*dw_slot, t*dw_slot + dw_buffer_floats), zeroed
 * once per call. */
static int dw_slot_ok(const sal_conv_params *p, const dw_geom *g, int64_t hp, int64_t wp,
                      const float *scratch) {
    return scratch && g->pt >= 0 && g->pl >= 0 && dw_buffer_floats(g, hp, wp) <= p->dw_slot;
}

/* dst = clamp(src + bias, lo, hi) (+-INFINITY: no clamp) on a span still in cache; dst may be src. */
static void bias_clamp_span(float *dst, const float *src, int64_t n, float bias, float lo, float hi) {
#pragma omp simd
    for (int64_t i = 0; i < n; i++) dst[i] = sal_act_clip(src[i] + bias, lo, hi);
}

/* y (N, M, OH, OW) = bias + taps over x (N, C, H, W); one (n, m) plane per iteration, output
 * channel m reading input channel m / (M/C). */
static void dw_forward(const sal_conv_params *p, const float *restrict x, const float *restrict w,
                       const float *restrict b, float *restrict y, float *scratch, int threads) {
    const int64_t C = p->c, M = p->m, H = p->h, W = p->w, OH = p->oh, OW = p->ow, KH = p->kh, KW = p->kw;
    const int64_t mult = M / C;
    const dw_geom g = dw_geom_of(p);
    int64_t hp, wp;
    dw_pad_dims(&g, &hp, &wp);
    int nt = par(threads, p->n * M * OH * OW * KH * KW);
    if (nt > SAL_CONV_DW_SLOTS) nt = SAL_CONV_DW_SLOTS;
#pragma omp parallel num_threads(nt)
    {
        float *pad = scratch + (int64_t)omp_get_thread_num() * p->dw_slot, *acc = pad + hp * wp + DW_GAP;
        memset(pad, 0, sizeof(float) * (size_t)dw_buffer_floats(&g, hp, wp));
#pragma omp for schedule(static)
        for (int64_t nm = 0; nm < p->n * M; nm++) {
            int64_t n = nm / M, m = nm % M;
            dw_plane(&g, hp, wp, x + (n * C + m / mult) * H * W, w + m * KH * KW, b ? b[m] : 0.f, 0,
                     y + nm * OH * OW, pad, acc);
            if (p->act) bias_clamp_span(y + nm * OH * OW, y + nm * OH * OW, OH * OW, 0.f, p->act_lo, p->act_hi);
        }
    }
}

/* Stride 1: the gradient of a depthwise conv is a depthwise conv of gy with the kernel flipped,
 * gx[iy][ix] += sum wk[KH-1-ky][KW-1-kx] * gy[iy - pt' + ky*dh][ix - pl' + kx*dw] with
 * pt' = (KH-1)*dh - pt, pl' = (KW-1)*dw - pl: dw_plane in accumulate mode on (gy -> gx).
 * One (n, c) input plane per iteration, over the mult output channels that read it. */
#define DW_MAX_TAPS 256
static dw_geom dw_geom_s1_backward(const sal_conv_params *p) {
    dw_geom g = {p->oh, p->ow, p->h, p->w, p->kh, p->kw, 1, 1, p->dh, p->dw,
                 (p->kh - 1) * p->dh - p->pt, (p->kw - 1) * p->dw - p->pl};
    return g;
}

static void dw_backward_data_s1(const sal_conv_params *p, const float *restrict gy, const float *restrict w,
                                float *restrict gx, float *scratch, int threads) {
    const int64_t C = p->c, M = p->m, H = p->h, W = p->w, OH = p->oh, OW = p->ow, KH = p->kh, KW = p->kw;
    const int64_t mult = M / C;
    const dw_geom g = dw_geom_s1_backward(p);
    int64_t hp, wp;
    dw_pad_dims(&g, &hp, &wp);
    int nt = par(threads, p->n * M * OH * OW * KH * KW);
    if (nt > SAL_CONV_DW_SLOTS) nt = SAL_CONV_DW_SLOTS;
#pragma omp parallel num_threads(nt)
    {
        float *pad = scratch + (int64_t)omp_get_thread_num() * p->dw_slot, *acc = pad + hp * wp + DW_GAP;
        float wf[DW_MAX_TAPS];   /* (KH, KW) flipped */
        memset(pad, 0, sizeof(float) * (size_t)dw_buffer_floats(&g, hp, wp));
#pragma omp for schedule(static)
        for (int64_t nc = 0; nc < p->n * C; nc++) {
            int64_t n = nc / C, ci = nc % C;
            for (int64_t j = 0; j < mult; j++) {
                int64_t m = ci * mult + j;
                const float *wk = w + m * KH * KW;
                for (int64_t t = 0; t < KH * KW; t++) wf[t] = wk[KH * KW - 1 - t];
                dw_plane(&g, hp, wp, gy + (n * M + m) * OH * OW, wf, 0.f, 1, gx + nc * H * W, pad, acc);
            }
        }
    }
}

/* Stride 2 (3x3 or 5x5, dilation 1), one (gy -> gx) plane pair. In the forward's padded
 * coordinates, gx's phase (a, b) at (i, j) (padded row 2i+a, column 2j+b) receives the taps
 * ky = a + 2u, kx = b + 2v from gy[i-u][j-v]: a stride-1 correlation of gy with a sub-kernel.
 * Buffer: gpad = gy zero-padded by U = (K-1)/2 on the top and left, row stride Wg = Wq + U,
 * (Hq + U, Wg); then the four phases, each flat (Hq, Wg) (columns >= Wq junk); then
 * gx[iy][ix] += phase[(iy+pt)&1][(ix+pl)&1][(iy+pt)>>1][(ix+pl)>>1]. */
typedef struct dw_s2b_dims {
    int64_t hq, wq, u, wg, len;   /* len: one phase's flat length, rounded to whole vectors */
} dw_s2b_dims;

static dw_s2b_dims dw_s2b_dims_of(const sal_conv_params *p) {
    const dw_geom g = dw_geom_of(p);
    int64_t hp, wp;
    dw_pad_dims(&g, &hp, &wp);
    dw_s2b_dims d;
    dw_phase_dims(hp, wp, &d.hq, &d.wq);
    d.u = (p->kw - 1) / 2;
    d.wg = d.wq + d.u;
    d.len = dw_round_len(d.hq * d.wg);
    return d;
}
static int64_t dw_s2b_floats(const dw_s2b_dims *d) { return (d->hq + d->u) * d->wg + DW_GAP + 4 * d->len; }

SAL_ISA_CLONES
static void dw_plane_s2_backward(const sal_conv_params *p, const dw_s2b_dims *d, const float *restrict gy,
                                 const float *restrict w, float *restrict gx, float *restrict buf) {
    const int64_t H = p->h, W = p->w, OH = p->oh, OW = p->ow, K = p->kw, U = d->u, Wg = d->wg, L = d->len;
    float *restrict gpad = buf;
    for (int64_t oy = 0; oy < OH; oy++)
        memcpy(gpad + (oy + U) * Wg + U, gy + oy * OW, sizeof(float) * (size_t)OW);
    float *restrict ph = buf + (d->hq + U) * Wg + DW_GAP;
    for (int a = 0; a < 2; a++)
        for (int b = 0; b < 2; b++) {
            float *restrict dst = ph + (a * 2 + b) * L;
            int first = 1;
            for (int64_t u = 0; a + 2 * u < K; u++)
                for (int64_t v = 0; b + 2 * v < K; v++) {
                    const float wv = w[(a + 2 * u) * K + b + 2 * v];
                    const float *restrict src = gpad + (U - u) * Wg + (U - v);
                    if (first) {
#pragma omp simd
                        for (int64_t r = 0; r < L; r++) dst[r] = wv * src[r];
                    } else {
#pragma omp simd
                        for (int64_t r = 0; r < L; r++) dst[r] += wv * src[r];
                    }
                    first = 0;
                }
        }
    for (int64_t iy = 0; iy < H; iy++) {
        const int64_t yy = iy + p->pt;
        const float *restrict even = ph + ((yy & 1) * 2) * L + (yy >> 1) * Wg;      /* padded columns 2j */
        const float *restrict odd = ph + ((yy & 1) * 2 + 1) * L + (yy >> 1) * Wg;   /* padded columns 2j+1 */
        float *restrict row = gx + iy * W;
        /* ix with ix + pl even: ix = e0 + 2k reads even[(e0 + pl)/2 + k]; the others read odd */
        const int64_t e0 = p->pl & 1, o0 = 1 - e0;
        const int64_t ne = (W - e0 + 1) / 2, no = (W - o0 + 1) / 2;
        const float *restrict es = even + (e0 + p->pl) / 2, *restrict os = odd + (o0 + p->pl) / 2;
#pragma omp simd
        for (int64_t k = 0; k < ne; k++) row[e0 + 2 * k] += es[k];
#pragma omp simd
        for (int64_t k = 0; k < no; k++) row[o0 + 2 * k] += os[k];
    }
}

static void dw_backward_data_s2(const sal_conv_params *p, const dw_s2b_dims *d, const float *restrict gy,
                                const float *restrict w, float *restrict gx, float *scratch, int threads) {
    const int64_t C = p->c, M = p->m, H = p->h, W = p->w, OH = p->oh, OW = p->ow, KH = p->kh, KW = p->kw;
    const int64_t mult = M / C;
    int nt = par(threads, p->n * M * OH * OW * KH * KW);
    if (nt > SAL_CONV_DW_SLOTS) nt = SAL_CONV_DW_SLOTS;
#pragma omp parallel num_threads(nt)
    {
        float *buf = scratch + (int64_t)omp_get_thread_num() * p->dw_slot;
        memset(buf, 0, sizeof(float) * (size_t)dw_s2b_floats(d));
#pragma omp for schedule(static)
        for (int64_t nc = 0; nc < p->n * C; nc++) {
            int64_t n = nc / C, ci = nc % C;
            for (int64_t j = 0; j < mult; j++) {
                int64_t m = ci * mult + j;
                dw_plane_s2_backward(p, d, gy + (n * M + m) * OH * OW, w + m * KH * KW, gx + nc * H * W, buf);
            }
        }
    }
}

/* Any other depthwise geometry: gx (N, C, H, W) += taps^T gy (N, M, OH, OW) scattered tap by tap
 * over each tap's valid column range; one (n, c) input plane per iteration, looping over the mult
 * output channels that read it (so planes are written by one thread only). */
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

sal_status sal_cpu_conv_fwd(const sal_op_call *c, sal_error *err) {
    sal_status st;
    if ((st = need_params(c, err))) return st;
    const sal_conv_params *p = c->params;
    const float *x = c->in[0], *w = c->in[1], *b = p->has_bias && c->n_in > 2 ? c->in[2] : NULL;
    float *y = c->out[0];
    const int t = nthreads(c);
    if (conv_depthwise(p)) {
        const dw_geom g = dw_geom_of(p);
        int64_t hp, wp;
        dw_pad_dims(&g, &hp, &wp);
        if (!dw_slot_ok(p, &g, hp, wp, c->scratch))
            return sal_fail(err, SAL_ERR_INTERNAL, "node '%s' (Conv): depthwise scratch too small",
                            c->node->name);
        dw_forward(p, x, w, b, y, c->scratch, t);
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
            const float beta = 0.f;   /* bias and the fused activation: one pass after the GEMM */
            if (pointwise) {
                sal_sgemm(0, 0, (int)Mg, (int)OHW, (int)Cg, 1.f, wg,
                            (int)Cg, xg, (int)HW, beta, yg, (int)OHW);
            } else {
                im2col(p, Cg, xg, c->scratch, t);
                sal_sgemm(0, 0, (int)Mg, (int)OHW, (int)K, 1.f, wg,
                            (int)K, c->scratch, (int)OHW, beta, yg, (int)OHW);
            }
            if (b || p->act) {
                const float lo = p->act ? p->act_lo : -INFINITY, hi = p->act ? p->act_hi : INFINITY;
                const float *bg = b ? b + g * Mg : NULL;
#pragma omp parallel for num_threads(par(t, Mg * OHW)) schedule(static)
                for (int64_t r = 0; r < Mg; r++) bias_clamp_span(yg + r * OHW, yg + r * OHW, OHW, bg ? bg[r] : 0.f, lo, hi);
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
        const dw_geom g1 = dw_geom_s1_backward(p);
        int64_t hp = 0, wp = 0;
        if (depthwise) dw_pad_dims(&g1, &hp, &wp);
        const int fixed = p->kh == p->kw && (p->kw == 3 || p->kw == 5) && p->dh == 1 && p->dw == 1;
        const dw_s2b_dims d2 = dw_s2b_dims_of(p);
        if (depthwise && p->sh == 1 && p->sw == 1 && p->kh * p->kw <= DW_MAX_TAPS &&
            dw_slot_ok(p, &g1, hp, wp, c->scratch)) {
            dw_backward_data_s1(p, gy, w, gx, c->scratch, t);
        } else if (depthwise && p->sh == 2 && p->sw == 2 && fixed && c->scratch &&
                   dw_s2b_floats(&d2) <= p->dw_slot) {
            dw_backward_data_s2(p, &d2, gy, w, gx, c->scratch, t);
        } else if (depthwise) {
            dw_backward_data(p, gy, w, gx, t);
        } else {
            for (int64_t n = 0; n < p->n; n++)
                for (int64_t g = 0; g < G; g++) {
                    const float *wg = w + g * Mg * K;                 /* (Mg, K) */
                    const float *gyg = gy + (n * p->m + g * Mg) * OHW; /* (Mg, OHW) */
                    float *gxg = gx + (n * p->c + g * Cg) * HW;        /* (Cg, H, W) */
                    if (pointwise) {   /* gx_g (Cg, HW) += W_g^T (Cg, Mg) . gy_g (Mg, HW) */
                        sal_sgemm(1, 0, (int)Cg, (int)HW, (int)Mg, 1.f,
                                    wg, (int)Cg, gyg, (int)OHW, 1.f, gxg, (int)HW);
                    } else {           /* col (K, OHW) = W_g^T . gy_g, then scatter-add */
                        sal_sgemm(1, 0, (int)K, (int)OHW, (int)Mg, 1.f,
                                    wg, (int)K, gyg, (int)OHW, 0.f, c->scratch, (int)OHW);
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
                    sal_sgemm(0, 1, (int)Mg, (int)K, (int)OHW, 1.f, gyg,
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
    const float *scale = c->in[1], *var = c->in[4];
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
     * per-channel gradients, the element function the CUDA backend runs (kernels/twin_elem.h) */
    float *gs = c->gin[1], *gb = c->gin[2], *gm = c->gin[3], *gv = c->gin[4];
    if (gs || gb || gm || gv) {
        sal_tw_args ta;
        memset(&ta, 0, sizeof ta);
        ta.p.bn = *p;
        for (int i = 0; i < 5; i++) ta.in[i] = c->in[i];
        ta.gout[0] = gy;
        ta.gin[0] = gs; ta.gin[1] = gb; ta.gin[2] = gm; ta.gin[3] = gv;
#pragma omp parallel for num_threads(par(nthreads(c), p->n * C * inner)) schedule(static)
        for (int64_t ch = 0; ch < C; ch++) sal_tw_bn_bwd_stats(ch, &ta);
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
    sal_tw__pool_span(o, s, d, k, pb, pe, in, &sp->lo, &sp->hi, &sp->padded);
}

/* Index (within the plane) of the first maximum of the window, -1 when it has no valid tap. */
static inline int64_t pool_argmax(const float *plane, int64_t W, const pool_span *ys, const pool_span *xs,
                                  int64_t iy0, int64_t ix0, int64_t dh, int64_t dw) {
    return sal_tw__window_argmax(plane, W, ys->lo, ys->hi, xs->lo, xs->hi, iy0, ix0, dh, dw);
}

/* MaxPool over windows [a, a + nj) of one output row (nj <= POOL_CHUNK), each with all kw taps
 * inside the input in x: window j starts at input column a * sw - pl + j * sw. ys: its valid rows,
 * at input row iy0 + ky * dh. Forward: the maximum of each window, scanned tap by tap in
 * row-major window order over all the windows at once (vectorized across windows), the same
 * select as sal_tw__window_argmax's first scan, whose value is its first maximum's (a NaN first tap
 * stays: nothing compares greater). Backward: the first tap equal to it, found scanning the taps
 * backwards (none equal, a NaN maximum: the first tap, as there), credited with gy in window order. */
enum { POOL_CHUNK = 64 };

static inline __attribute__((always_inline)) void
maxpool_chunk_s(const int64_t sw, const float *plane, float *gplane, const sal_pool_params *p, const pool_span *ys,
                int64_t iy0, int64_t a, int64_t nj, float *y, const float *gy) {
    const int64_t W = p->w, dw = p->dw, dh = p->dh, kw = p->kw;
    const float *r0 = plane + (iy0 + ys->lo * dh) * W + a * sw - p->pl;   /* window 0's first tap */
    float m[POOL_CHUNK];
#pragma omp simd
    for (int64_t j = 0; j < nj; j++) m[j] = r0[j * sw];
    for (int64_t ky = ys->lo; ky < ys->hi; ky++)
        for (int64_t kx = 0; kx < kw; kx++) {
            const float *t = r0 + (ky - ys->lo) * dh * W + kx * dw;
#pragma omp simd
            for (int64_t j = 0; j < nj; j++) {
                const float v = t[j * sw];
                m[j] = v > m[j] ? v : m[j];
            }
        }
    if (!gplane) {
#pragma omp simd
        for (int64_t j = 0; j < nj; j++) y[j] = m[j];
        return;
    }
    int32_t at[POOL_CHUNK];   /* tap offset from the window's first tap */
    for (int64_t j = 0; j < nj; j++) at[j] = 0;
    for (int64_t ky = ys->hi - 1; ky >= ys->lo; ky--)
        for (int64_t kx = kw - 1; kx >= 0; kx--) {
            const int32_t off = (int32_t)((ky - ys->lo) * dh * W + kx * dw);
            const float *t = r0 + off;
#pragma omp simd
            for (int64_t j = 0; j < nj; j++) at[j] = t[j * sw] == m[j] ? off : at[j];
        }
    float *g0 = gplane + (r0 - plane);
    for (int64_t j = 0; j < nj; j++) g0[j * sw + at[j]] += gy[j];
}

/* the stride as a constant where it is 1 or 2 (most models' pools): the loops vectorize */
static void maxpool_chunk(const float *plane, float *gplane, const sal_pool_params *p, const pool_span *ys,
                          int64_t iy0, int64_t a, int64_t nj, float *y, const float *gy) {
    if (p->sw == 2) maxpool_chunk_s(2, plane, gplane, p, ys, iy0, a, nj, y, gy);
    else if (p->sw == 1) maxpool_chunk_s(1, plane, gplane, p, ys, iy0, a, nj, y, gy);
    else maxpool_chunk_s(p->sw, plane, gplane, p, ys, iy0, a, nj, y, gy);
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
    /* MaxPool's windows with every tap inside the input in x: ox in [xa, xb), by chunks */
    int64_t xa = (p->pl + p->sw - 1) / p->sw, xb = (W - 1 - (p->kw - 1) * p->dw + p->pl) / p->sw + 1;
    if (W - 1 - (p->kw - 1) * p->dw + p->pl < 0) xb = 0;
    if (xb > OW) xb = OW;
    if (!is_max || xb <= xa) xa = xb = -1;
#pragma omp parallel for num_threads(par(nthreads(c), p->n * p->c * OH * OW * p->kh * p->kw)) schedule(static)
    for (int64_t nc = 0; nc < p->n * p->c; nc++) {
        const float *plane = x + nc * H * W;
        float *gplane = gx ? gx + nc * H * W : NULL;
        for (int64_t oy = 0; oy < OH; oy++) {
            pool_span ys;
            pool_span_of(oy, p->sh, p->dh, p->kh, p->pt, p->pb, H, &ys);
            int64_t iy0 = oy * p->sh - p->pt;
            for (int64_t ox = 0; ox < OW; ox++) {
                if (ox == xa && ys.lo < ys.hi) {   /* windows in order: the scatter's order too */
                    for (int64_t a = xa; a < xb; a += POOL_CHUNK) {
                        const int64_t nj = xb - a < POOL_CHUNK ? xb - a : POOL_CHUNK, o = (nc * OH + oy) * OW + a;
                        maxpool_chunk(plane, gplane, p, &ys, iy0, a, nj, backward ? NULL : y + o,
                                      backward ? gy + o : NULL);
                    }
                    ox = xb - 1;
                    continue;
                }
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
/* Gemm and MatMul: host/backend/blas_drive.c over oneDNN's sgemm (the CUDA backend drives cuBLAS  */
/* through the same code)                                                                           */

static sal_status cpu_gemm(void *ctx, const char *nm, int ta, int tb, int64_t M, int64_t N, int64_t K,
                           float alpha, const float *A, int64_t lda, int64_t sa, const float *B, int64_t ldb,
                           int64_t sb, float beta, float *C, int64_t ldc, int64_t sc, int64_t count,
                           sal_error *err) {
    (void)ctx; (void)nm; (void)err;
    for (int64_t i = 0; i < count; i++)
        sal_sgemm_rows(ta, tb, M, N, K, alpha, A + i * sa, lda, B + i * sb, ldb, beta, C + i * sc, ldc);
    return SAL_OK;
}

static sal_status cpu_twin(void *ctx, const char *nm, int fn, int64_t count, const sal_tw_args *a,
                           sal_error *err) {
    (void)ctx; (void)nm; (void)err;
    sal_twin_run_one(fn, count, a);
    return SAL_OK;
}

static sal_status cpu_zero(void *ctx, const char *nm, float *p, int64_t n, sal_error *err) {
    (void)ctx; (void)nm; (void)err;
    memset(p, 0, sizeof(float) * (size_t)n);
    return SAL_OK;
}

static const sal_blas cpu_blas = {NULL, cpu_gemm, cpu_twin, cpu_zero};

sal_status sal_cpu_gemm_fwd(const sal_op_call *c, sal_error *err) { return sal_blas_gemm(&cpu_blas, c, 0, err); }
sal_status sal_cpu_gemm_bwd(const sal_op_call *c, sal_error *err) { return sal_blas_gemm(&cpu_blas, c, 1, err); }
sal_status sal_cpu_matmul_fwd(const sal_op_call *c, sal_error *err) { return sal_blas_matmul(&cpu_blas, c, 0, err); }
sal_status sal_cpu_matmul_bwd(const sal_op_call *c, sal_error *err) { return sal_blas_matmul(&cpu_blas, c, 1, err); }

/* ------------------------------------------------------------------------------------------------ */
/* LRN across channels: x (N, C, S), window of channel c = [c - floor((size-1)/2),                 */
/* c + ceil((size-1)/2)] clipped; s_c = bias + alpha/size * sum_window x^2, y_c = x_c * s_c^-beta  */
/* One (n, c) row of S pixels per iteration, vectorized over pixels.                                */

static void lrn_sumsq(const float *x, int64_t C, int64_t S, int64_t ch, int64_t lo, int64_t hi,
                      float *restrict acc) {
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
