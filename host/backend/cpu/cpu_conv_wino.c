/* cpu_conv_wino.c — the CPU backend's 3x3 stride-1 convolutions by Winograd's minimal filtering,
 * F(2x2, 3x3) (Lavin and Gray, "Fast Algorithms for Convolutional Neural Networks", CVPR 2016), on
 * channels-last activations (sal_conv_params.nhwc_x and nhwc_y, set by the engine's layout pass).
 *
 * Each 2x2 block of outputs ("tile") is computed from the 4x4 block of inputs around it: the input
 * block d of every channel is transformed, V = B^T d B, the 3x3 kernel g of every (input, output)
 * channel pair is transformed once, U = G g G^T, and the 16 elements of a tile are 16 independent
 * matrix products M[e] (tiles, K) = V[e] (tiles, C) . U[e] (C, K), run by oneDNN's sgemm; the
 * outputs are Y = A^T M A. That is 16 multiply-adds per tile and channel pair where a direct
 * convolution spends 36: oneDNN 2.6 has Winograd only for AVX-512, and on this project's AVX2 CPUs
 * its direct kernels run ResNet-50's 3x3 convolutions at 135-175 GFLOP/s against 200-340 effective
 * here (benchmarks/results/cpu-conv-winograd.md).
 *
 * The results differ from a direct convolution by rounding only (the transforms add and subtract
 * inputs before the products): tests/test_conv_wino.c bounds the difference against a
 * double-precision direct convolution. Backward-data is the same algorithm: dX is the 3x3
 * convolution of dY with the kernel flipped and its channels swapped, padded by 2 - pad.
 *
 * Weights are transformed at the first call of a weight tensor and direction, and kept with the
 * backend (one cache per CPU backend, keyed by the constant weights' address, like the oneDNN
 * path); the tiles run in chunks whose transformed inputs and products fit one growable workspace
 * of the cache. Calls on one backend are sequential. */
#include "cpu_conv_wino.h"
#include "cpu_mem.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include <oneapi/dnnl/dnnl.h>

#include "twin_elem.h"

typedef struct wentry {
    const float *w;   /* the model's (K, C, 3, 3) weights */
    int dir;          /* 0 forward, 1 backward-data */
    int64_t cin, cout;
    float *u;         /* (16, cin, cout): the transformed kernels of the direction's convolution */
} wentry;

struct sal_wino_cache {
    wentry *e;
    int n, cap;
    float *ws;        /* workspace: transformed inputs and products of one chunk of tiles */
    size_t ws_floats;
    float *zeros;     /* a row of zero channels, read for the padding */
    size_t zeros_floats;
};

/* Floats of transformed inputs and products one chunk may hold (16 MiB): 256 tiles of 512 + 512
 * channels, 1024 tiles of 64 + 64. */
enum { WS_CHUNK_FLOATS = 1 << 22, MIN_CHUNK_TILES = 64 };

sal_status sal_wino_cache_create(sal_wino_cache **out, sal_error *err) {
    *out = calloc(1, sizeof **out);
    return *out ? SAL_OK : sal_fail(err, SAL_ERR_NOMEM, "out of memory for the Winograd convolution cache");
}

void sal_wino_cache_free(sal_wino_cache *c) {
    if (!c) return;
    for (int i = 0; i < c->n; i++) free(c->e[i].u);
    free(c->e);
    free(c->ws);
    free(c->zeros);
    free(c);
}

size_t sal_wino_cache_weight_bytes(const sal_wino_cache *c) {
    size_t b = 0;
    for (int i = 0; c && i < c->n; i++) b += sizeof(float) * 16 * (size_t)c->e[i].cin * (size_t)c->e[i].cout;
    return b;
}

int sal_wino_choose(const sal_conv_params *p) {
    /* channels-last on both sides (the layout pass's interior convolutions), 3x3, stride 1,
     * dilation 1, pads of 0 or 1, at least 16 channels each side, and output planes of at least
     * 7x7: ResNet-50's smallest, 1.15-1.3x faster than oneDNN's direct kernels even though its 4x4
     * tiles cover an 8x8 plane (benchmarks/bench_conv_shapes.c); nothing smaller was measured */
    return p->spatial == 2 && p->group == 1 && p->const_wb && p->nhwc_x && p->nhwc_y && p->kh == 3 &&
           p->kw == 3 && p->sh == 1 && p->sw == 1 && p->dh == 1 && p->dw == 1 && p->pt >= 0 && p->pt <= 1 &&
           p->pl >= 0 && p->pl <= 1 && p->pb >= 0 && p->pb <= 1 && p->pr >= 0 && p->pr <= 1 && p->c >= 16 &&
           p->m >= 16 && p->oh >= 7 && p->ow >= 7;
}

/* ------------------------------------------------------------------------------------------------ */
/* Transforms                                                                                       */

/* u (4x4) = G g G^T for a 3x3 kernel g (row-major), in double, G = [1 0 0; 1/2 1/2 1/2;
 * 1/2 -1/2 1/2; 0 0 1]. */
static void kernel_transform(const double g[9], double u[16]) {
    double t[4][3];
    for (int j = 0; j < 3; j++) {
        t[0][j] = g[j];
        t[1][j] = 0.5 * (g[j] + g[3 + j] + g[6 + j]);
        t[2][j] = 0.5 * (g[j] - g[3 + j] + g[6 + j]);
        t[3][j] = g[6 + j];
    }
    for (int i = 0; i < 4; i++) {
        u[i * 4 + 0] = t[i][0];
        u[i * 4 + 1] = 0.5 * (t[i][0] + t[i][1] + t[i][2]);
        u[i * 4 + 2] = 0.5 * (t[i][0] - t[i][1] + t[i][2]);
        u[i * 4 + 3] = t[i][2];
    }
}

/* The direction's transformed kernels, made at the first call. Forward: in = C, out = K,
 * g = W[k][c]; backward-data: in = K, out = C, g = W[k][c] rotated by 180 degrees. */
static sal_status entry_get(sal_wino_cache *c, const float *w, int64_t K, int64_t C, int dir, const char *name,
                            const float **u, sal_error *err) {
    for (int i = 0; i < c->n; i++)
        if (c->e[i].w == w && c->e[i].dir == dir && c->e[i].cout * c->e[i].cin == K * C) {
            *u = c->e[i].u;
            return SAL_OK;
        }
    if (c->n == c->cap) {
        int nc = c->cap ? 2 * c->cap : 16;
        wentry *ne = realloc(c->e, sizeof *ne * (size_t)nc);
        if (!ne) return sal_fail(err, SAL_ERR_NOMEM, "node '%s' (Conv): out of memory for the Winograd cache", name);
        c->e = ne;
        c->cap = nc;
    }
    const int64_t cin = dir ? K : C, cout = dir ? C : K;
    float *U = sal_cpu_alloc(sizeof(float) * 16 * (size_t)cin * (size_t)cout);
    if (!U) return sal_fail(err, SAL_ERR_NOMEM, "node '%s' (Conv): out of memory for its Winograd kernels", name);
#pragma omp parallel for schedule(static)
    for (int64_t k = 0; k < K; k++)
        for (int64_t ch = 0; ch < C; ch++) {
            const float *g = w + (k * C + ch) * 9;
            double gd[9], ud[16];
            for (int i = 0; i < 9; i++) gd[i] = dir ? g[8 - i] : g[i];
            kernel_transform(gd, ud);
            const int64_t i_in = dir ? k : ch, i_out = dir ? ch : k;
            for (int e = 0; e < 16; e++) U[((int64_t)e * cin + i_in) * cout + i_out] = (float)ud[e];
        }
    c->e[c->n++] = (wentry){w, dir, cin, cout, U};
    *u = U;
    return SAL_OK;
}

static sal_status grow(float **p, size_t *have, size_t want, int zero, const char *name, sal_error *err) {
    if (*have >= want) return SAL_OK;
    float *n = zero ? calloc(want, sizeof(float)) : sal_cpu_alloc(sizeof(float) * want);
    if (!n) return sal_fail(err, SAL_ERR_NOMEM, "node '%s' (Conv): out of memory for the Winograd workspace", name);
    free(*p);
    *p = n;
    *have = want;
    return SAL_OK;
}

/* The convolution of x (N, IH, IW, CI) with the 3x3 kernels whose transforms are U (16, CI, CO),
 * padded by pt on top and pl on the left (zeros elsewhere outside x), into y (N, OH, OW, CO):
 * written (+ bias, then the activation, when given) or, with add, added. */
typedef struct wrun {
    int64_t n, ih, iw, ci, oh, ow, co, pt, pl;
    const float *x, *u, *bias;
    float *y;
    int add, act;
    float lo, hi;
} wrun;

/* Tiles of one chunk (the workspace's stride): whole images while an image's P tiles fit the
 * budget, else P is cut into runs of the budget's size. Each sgemm covers one image's tiles or
 * one run of them, never tiles of two images, so an image's results do not depend on the batch
 * it is in (its products always have the same shapes). */
static int64_t chunk_tiles(int64_t P, int64_t N, int64_t ci, int64_t co) {
    int64_t cap = WS_CHUNK_FLOATS / (16 * (ci + co));
    if (cap < MIN_CHUNK_TILES) cap = MIN_CHUNK_TILES;
    if (P > cap) return cap;
    int64_t imgs = cap / P;
    return (imgs < N ? imgs : N) * P;
}

static void run_tiles(const wrun *r, float *ws, const float *zeros, int nt) {
    const int64_t TH = (r->oh + 1) / 2, TW = (r->ow + 1) / 2, P = TH * TW, T = r->n * P;
    const int64_t CI = r->ci, CO = r->co;
    const int64_t chunk = chunk_tiles(P, r->n, CI, CO);
    float *V = ws, *M = ws + 16 * chunk * CI;   /* (16, chunk, CI), (16, chunk, CO) */
    const int relu = r->act && r->lo == 0.f && isinf(r->hi) && r->hi > 0;
#pragma omp parallel num_threads(nt)
    for (int64_t t0 = 0, tn = 0; t0 < T; t0 += tn) {
        /* this chunk: whole images, or one run of an image's tiles; seg tiles per sgemm */
        int64_t seg;
        if (P <= chunk) {
            seg = P;
            tn = T - t0 < chunk ? T - t0 : chunk;
        } else {
            const int64_t left = P - t0 % P;
            seg = tn = left < chunk ? left : chunk;
        }
        const int64_t nseg = tn / seg;
        /* 1. V[e][t] = (B^T d B)[e] over the input channels, d the tile's 4x4 input block */
#pragma omp for schedule(static)
        for (int64_t t = 0; t < tn; t++) {
            const int64_t g = t0 + t, n = g / (TH * TW), rr = g % (TH * TW), ty = rr / TW, tx = rr % TW;
            const int64_t y0 = 2 * ty - r->pt, x0 = 2 * tx - r->pl;
            const float *d[4][4];
            for (int i = 0; i < 4; i++)
                for (int j = 0; j < 4; j++) {
                    const int64_t yy = y0 + i, xx = x0 + j;
                    d[i][j] = yy < 0 || yy >= r->ih || xx < 0 || xx >= r->iw ? zeros
                                                                           : r->x + ((n * r->ih + yy) * r->iw + xx) * CI;
                }
            for (int64_t c0 = 0; c0 < CI; c0 += 64) {
                const int64_t cn = CI - c0 < 64 ? CI - c0 : 64;
                float s[4][4][64];   /* B^T d: rows combined */
                for (int j = 0; j < 4; j++) {
                    const float *d0 = d[0][j] + c0, *d1 = d[1][j] + c0, *d2 = d[2][j] + c0, *d3 = d[3][j] + c0;
#pragma omp simd
                    for (int64_t c = 0; c < cn; c++) {
                        s[0][j][c] = d0[c] - d2[c];
                        s[1][j][c] = d1[c] + d2[c];
                        s[2][j][c] = d2[c] - d1[c];
                        s[3][j][c] = d1[c] - d3[c];
                    }
                }
                for (int i = 0; i < 4; i++) {
                    float *v0 = V + ((int64_t)(i * 4 + 0) * chunk + t) * CI + c0;
                    float *v1 = V + ((int64_t)(i * 4 + 1) * chunk + t) * CI + c0;
                    float *v2 = V + ((int64_t)(i * 4 + 2) * chunk + t) * CI + c0;
                    float *v3 = V + ((int64_t)(i * 4 + 3) * chunk + t) * CI + c0;
#pragma omp simd
                    for (int64_t c = 0; c < cn; c++) {
                        v0[c] = s[i][0][c] - s[i][2][c];
                        v1[c] = s[i][1][c] + s[i][2][c];
                        v2[c] = s[i][2][c] - s[i][1][c];
                        v3[c] = s[i][1][c] - s[i][3][c];
                    }
                }
            }
        }
        /* 2. M[e] (tn, CO) = V[e] (tn, CI) . U[e] (CI, CO): one sgemm per element, each on one
         * thread (oneDNN's sgemm runs single-threaded inside a parallel region) */
#pragma omp for schedule(static)
        for (int64_t q = 0; q < 16 * nseg; q++) {
            const int64_t e = q % 16, at = e * chunk + (q / 16) * seg;
            dnnl_sgemm('N', 'N', seg, CO, CI, 1.f, V + at * CI, CI, r->u + e * CI * CO, CO, 0.f, M + at * CO, CO);
        }
        /* 3. Y = A^T M A, A^T = [1 1 1 0; 0 1 -1 -1], per output channel */
#pragma omp for schedule(static)
        for (int64_t t = 0; t < tn; t++) {
            const int64_t g = t0 + t, n = g / (TH * TW), rr = g % (TH * TW), ty = rr / TW, tx = rr % TW;
            for (int64_t k0 = 0; k0 < CO; k0 += 64) {
                const int64_t kn = CO - k0 < 64 ? CO - k0 : 64;
                float s[2][4][64];   /* A^T M: rows combined */
                for (int j = 0; j < 4; j++) {
                    const float *m0 = M + ((int64_t)(0 * 4 + j) * chunk + t) * CO + k0;
                    const float *m1 = M + ((int64_t)(1 * 4 + j) * chunk + t) * CO + k0;
                    const float *m2 = M + ((int64_t)(2 * 4 + j) * chunk + t) * CO + k0;
                    const float *m3 = M + ((int64_t)(3 * 4 + j) * chunk + t) * CO + k0;
#pragma omp simd
                    for (int64_t k = 0; k < kn; k++) {
                        s[0][j][k] = m0[k] + m1[k] + m2[k];
                        s[1][j][k] = m1[k] - m2[k] - m3[k];
                    }
                }
                for (int i = 0; i < 2; i++) {
                    const int64_t yy = 2 * ty + i;
                    if (yy >= r->oh) continue;
                    for (int jj = 0; jj < 2; jj++) {
                        const int64_t xx = 2 * tx + jj;
                        if (xx >= r->ow) continue;
                        float *yo = r->y + ((n * r->oh + yy) * r->ow + xx) * CO + k0;
                        /* column 0: s0 + s1 + s2; column 1: s1 - s2 - s3 */
                        const float *a = s[i][jj], *b = s[i][jj + 1], *cc = s[i][jj + 2];
                        float v[64];
                        if (jj) {
#pragma omp simd
                            for (int64_t k = 0; k < kn; k++) v[k] = a[k] - b[k] - cc[k];
                        } else {
#pragma omp simd
                            for (int64_t k = 0; k < kn; k++) v[k] = a[k] + b[k] + cc[k];
                        }
                        if (r->add) {
#pragma omp simd
                            for (int64_t k = 0; k < kn; k++) yo[k] += v[k];
                        } else {
                            const float *bias = r->bias ? r->bias + k0 : NULL;
                            if (bias) {
#pragma omp simd
                                for (int64_t k = 0; k < kn; k++) v[k] += bias[k];
                            }
                            if (relu) {
#pragma omp simd
                                for (int64_t k = 0; k < kn; k++) v[k] = sal_act_relu(v[k]);
                            } else if (r->act) {
#pragma omp simd
                                for (int64_t k = 0; k < kn; k++) v[k] = sal_act_clip(v[k], r->lo, r->hi);
                            }
                            memcpy(yo, v, sizeof(float) * (size_t)kn);
                        }
                    }
                }
            }
        }
    }
}

static sal_status run(sal_wino_cache *c, const wrun *r, const char *name, int nt, sal_error *err) {
    const int64_t TH = (r->oh + 1) / 2, TW = (r->ow + 1) / 2;
    const int64_t chunk = chunk_tiles(TH * TW, r->n, r->ci, r->co);
    sal_status st = grow(&c->ws, &c->ws_floats, (size_t)(16 * chunk * (r->ci + r->co)) + 16, 0, name, err);
    if (!st) st = grow(&c->zeros, &c->zeros_floats, (size_t)r->ci + 16, 1, name, err);
    if (!st) {   /* (a team of one thread is not "in parallel": the sgemms would start their own) */
        const int saved = omp_get_max_threads();
        omp_set_num_threads(nt);
        run_tiles(r, c->ws, c->zeros, nt);
        omp_set_num_threads(saved);
    }
    return st;
}

static int threads_of(const sal_op_call *call) { return call->threads > 0 ? call->threads : omp_get_max_threads(); }

sal_status sal_wino_conv_fwd(sal_wino_cache *c, const sal_op_call *call, sal_error *err) {
    const sal_conv_params *p = call->params;
    const char *name = call->node->name;
    const float *u;
    sal_status st = entry_get(c, call->in[1], p->m, p->c, 0, name, &u, err);
    if (st) return st;
    wrun r = {p->n, p->h, p->w, p->c, p->oh, p->ow, p->m, p->pt, p->pl, call->in[0], u,
              p->has_bias && call->n_in > 2 ? call->in[2] : NULL, call->out[0], 0, p->act, p->act_lo, p->act_hi};
    return run(c, &r, name, threads_of(call), err);
}

sal_status sal_wino_conv_bwd_data(sal_wino_cache *c, const sal_op_call *call, sal_error *err) {
    const sal_conv_params *p = call->params;
    const char *name = call->node->name;
    if (!call->gout[0] || !call->gin[0]) return SAL_OK;
    const float *u;
    sal_status st = entry_get(c, call->in[1], p->m, p->c, 1, name, &u, err);
    if (st) return st;
    /* dX (N, H, W, C) = dY (N, OH, OW, K) convolved with the rotated kernels, padded by 2 - pad */
    wrun r = {p->n, p->oh, p->ow, p->m, p->h, p->w, p->c, 2 - p->pt, 2 - p->pl, call->gout[0], u, NULL,
              call->gin[0], !(call->gin_set & 1), 0, 0.f, 0.f};
    return run(c, &r, name, threads_of(call), err);
}
