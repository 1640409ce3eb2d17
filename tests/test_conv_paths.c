/* test_conv_paths.c — the CPU backend's two convolution implementations, each forced
 * (sal_backend_cpu_set_conv_impl): cpu_nn.c's kernels (GEMM) and oneDNN's primitives
 * (cpu_conv_dnnl.c, DNNL), forward with bias and fused Relu/Clip and backward-data, against a
 * naive double-precision reference written here from the ONNX Conv definition, over geometries
 * that reach every branch (3x3 / 7x7 / strided 1x1 / dilated / grouped / padded asymmetrically,
 * batch 1 and 3). Backward-data must ADD into gin (the engine's contract): gin starts non-zero.
 * Also: the per-node choice (AUTO; the CPU default LAYOUT uses it for the convolutions its layout
 * pass leaves in NCHW) sends group-1 convolutions other than 1x1
 * stride 1 with constant weights to oneDNN, whatever their batch and plane size, and keeps
 * depthwise, 1x1 stride-1 and runtime-weight ones on our kernels; a plan's weights are reordered
 * once and reused. */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "backend/cpu/cpu_conv_dnnl.h"
#include "testutil.h"

typedef struct geo {
    int n, c, h, w, m, kh, kw, sh, sw, dh, dw, pt, pl, pb, pr, group, bias, act;   /* act: 0, 1 relu, 2 clip */
} geo;

static geo cases[] = {
    {1, 8, 12, 12, 16, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0},   /* 3x3 same */
    {3, 8, 13, 11, 16, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1},   /* 3x3 stride 2, ReLU, batch 3 */
    {2, 3, 23, 23, 8, 7, 7, 2, 2, 1, 1, 3, 3, 3, 3, 1, 1, 2},    /* 7x7 stem, Clip(0,6) */
    {1, 16, 10, 10, 24, 1, 1, 2, 2, 1, 1, 0, 0, 0, 0, 1, 0, 0},  /* 1x1 stride 2, no bias */
    {1, 16, 9, 9, 8, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1},     /* 1x1 stride 1 */
    {1, 6, 14, 14, 10, 3, 3, 1, 1, 2, 2, 2, 2, 2, 2, 1, 1, 0},   /* dilated */
    {2, 8, 10, 10, 12, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 2, 1, 1},   /* grouped (2) */
    {1, 4, 10, 9, 6, 3, 2, 1, 2, 1, 1, 0, 1, 2, 0, 1, 1, 0},     /* asymmetric pads, 3x2 kernel */
};

static int64_t out_dim(int in, int k, int s, int d, int p0, int p1) { return (in + p0 + p1 - ((k - 1) * d + 1)) / s + 1; }

static sal_conv_params params_of(const geo *g) {
    sal_conv_params p;
    memset(&p, 0, sizeof p);
    p.spatial = 2; p.n = g->n; p.c = g->c; p.h = g->h; p.w = g->w; p.m = g->m;
    p.kh = g->kh; p.kw = g->kw; p.sh = g->sh; p.sw = g->sw; p.dh = g->dh; p.dw = g->dw;
    p.pt = g->pt; p.pl = g->pl; p.pb = g->pb; p.pr = g->pr; p.group = g->group; p.has_bias = g->bias;
    p.oh = out_dim(g->h, g->kh, g->sh, g->dh, g->pt, g->pb);
    p.ow = out_dim(g->w, g->kw, g->sw, g->dw, g->pl, g->pr);
    p.const_wb = 1;
    p.act = g->act != 0;
    p.act_lo = 0.f;
    p.act_hi = g->act == 2 ? 6.f : INFINITY;
    return p;
}

/* y (N, M, OH, OW) in double, straight from the definition; act applied */
static void ref_forward(const sal_conv_params *p, const float *x, const float *w, const float *b, double *y) {
    const int64_t cg = p->c / p->group, mg = p->m / p->group;
    for (int64_t n = 0; n < p->n; n++)
        for (int64_t m = 0; m < p->m; m++)
            for (int64_t oy = 0; oy < p->oh; oy++)
                for (int64_t ox = 0; ox < p->ow; ox++) {
                    double s = b ? b[m] : 0.0;
                    const int64_t g = m / mg;
                    for (int64_t ci = 0; ci < cg; ci++)
                        for (int64_t ky = 0; ky < p->kh; ky++)
                            for (int64_t kx = 0; kx < p->kw; kx++) {
                                int64_t iy = oy * p->sh - p->pt + ky * p->dh, ix = ox * p->sw - p->pl + kx * p->dw;
                                if (iy < 0 || iy >= p->h || ix < 0 || ix >= p->w) continue;
                                s += (double)w[((m * cg + ci) * p->kh + ky) * p->kw + kx] *
                                     x[((n * p->c + g * cg + ci) * p->h + iy) * p->w + ix];
                            }
                    if (p->act) s = fmin(fmax(s, p->act_lo), p->act_hi);
                    y[((n * p->m + m) * p->oh + oy) * p->ow + ox] = s;
                }
}

/* gx (N, C, H, W) = base + sum over taps of w * gy (the transpose of ref_forward without act) */
static void ref_backward(const sal_conv_params *p, const float *gy, const float *w, const float *base, double *gx) {
    const int64_t cg = p->c / p->group, mg = p->m / p->group, nx = p->n * p->c * p->h * p->w;
    for (int64_t i = 0; i < nx; i++) gx[i] = base[i];
    for (int64_t n = 0; n < p->n; n++)
        for (int64_t m = 0; m < p->m; m++)
            for (int64_t oy = 0; oy < p->oh; oy++)
                for (int64_t ox = 0; ox < p->ow; ox++) {
                    const double g0 = gy[((n * p->m + m) * p->oh + oy) * p->ow + ox];
                    const int64_t g = m / mg;
                    for (int64_t ci = 0; ci < cg; ci++)
                        for (int64_t ky = 0; ky < p->kh; ky++)
                            for (int64_t kx = 0; kx < p->kw; kx++) {
                                int64_t iy = oy * p->sh - p->pt + ky * p->dh, ix = ox * p->sw - p->pl + kx * p->dw;
                                if (iy < 0 || iy >= p->h || ix < 0 || ix >= p->w) continue;
                                gx[((n * p->c + g * cg + ci) * p->h + iy) * p->w + ix] +=
                                    g0 * w[((m * cg + ci) * p->kh + ky) * p->kw + kx];
                            }
                }
}

static double max_rel(const float *a, const double *ref, int64_t n) {
    double mx = 0, scale = 1e-3;
    for (int64_t i = 0; i < n; i++) scale = fmax(scale, fabs(ref[i]));
    for (int64_t i = 0; i < n; i++) mx = fmax(mx, fabs(a[i] - ref[i]));
    return mx / scale;
}

/* Runs the conv through backend b forward and backward; returns the relative errors. */
/* shared: an existing backend (NULL: a fresh one); keep_w: receives the weights instead of
 * freeing them (a model's constants stay where they are while its backend lives) */
static void run_case(const geo *g, int impl, sal_backend *shared, float **keep_w, double *ef, double *eb) {
    sal_conv_params p = params_of(g);
    uint64_t seed = tu_fresh_seed(), st = seed;
    const int64_t nx = p.n * p.c * p.h * p.w, ny = p.n * p.m * p.oh * p.ow, nw = p.m * (p.c / p.group) * p.kh * p.kw;
    float *x = tu_rand_buf(nx, &st, -1, 1), *w = tu_rand_buf(nw, &st, -1, 1), *bias = tu_rand_buf(p.m, &st, -1, 1);
    float *y = calloc((size_t)ny, sizeof *y), *gy = tu_rand_buf(ny, &st, -1, 1), *gx = tu_rand_buf(nx, &st, -1, 1);
    float *gx0 = malloc(sizeof *gx0 * (size_t)nx);
    double *yref = malloc(sizeof *yref * (size_t)ny), *gref = malloc(sizeof *gref * (size_t)nx);
    const int64_t cg = p.c / p.group, kk = cg * p.kh * p.kw, ohw = p.oh * p.ow;
    float *scratch = calloc((size_t)(kk * ohw + 64), sizeof(float));
    cr_assert(x && w && bias && y && gy && gx && gx0 && yref && gref && scratch);
    memcpy(gx0, gx, sizeof *gx * (size_t)nx);

    sal_backend *b = shared;
    sal_error err = {0};
    if (!b) cr_assert_eq(sal_backend_cpu_create(2, &b, &err), SAL_OK, "%s", err.msg);
    sal_backend_cpu_set_conv_impl(b, impl);
    int ins[3] = {0, 1, 2}, outs[1] = {3};
    sal_node node = {"conv_under_test", "Conv", SAL_OP_CONV, g->bias ? 3 : 2, 1, ins, outs, 0, NULL};
    sal_shape xs = tu_shape(4, p.n, p.c, p.h, p.w), ws = tu_shape(4, p.m, cg, p.kh, p.kw), bs = tu_shape(1, p.m);
    sal_shape ys = tu_shape(4, p.n, p.m, p.oh, p.ow);
    const float *in[3] = {x, w, bias};
    const sal_shape *in_shape[3] = {&xs, &ws, &bs}, *out_shape[1] = {&ys};
    float *out[1] = {y};
    sal_op_call c;
    memset(&c, 0, sizeof c);
    c.node = &node; c.params = &p; c.n_in = node.n_in; c.n_out = 1; c.in = in; c.in_shape = in_shape;
    c.out = out; c.out_shape = out_shape; c.scratch = scratch; c.threads = 2;
    cr_assert_eq(b->ops->forward(b, &c, &err), SAL_OK, "%s", err.msg);
    ref_forward(&p, x, w, g->bias ? bias : NULL, yref);
    *ef = max_rel(y, yref, ny);

    /* backward-data without the activation (the engine runs the activation's own backward) */
    p.act = 0;
    const float *gout[1] = {gy};
    float *gin[3] = {gx, NULL, NULL};
    c.gout = gout;
    c.gin = gin;
    cr_assert_eq(b->ops->backward(b, &c, &err), SAL_OK, "%s", err.msg);
    ref_backward(&p, gy, w, gx0, gref);
    *eb = max_rel(gx, gref, nx);
    if (*ef > 1e-5 || *eb > 1e-5) cr_log_error("seed %llu", (unsigned long long)seed);
    if (!shared) b->ops->destroy(b);
    if (keep_w) *keep_w = w;
    else free(w);
    free(x); free(bias); free(y); free(gy); free(gx); free(gx0); free(yref); free(gref); free(scratch);
}

ParameterizedTestParameters(conv_paths, match_reference) {
    return cr_make_param_array(geo, cases, sizeof cases / sizeof *cases);
}

ParameterizedTest(geo *g, conv_paths, match_reference) {
    for (int impl = SAL_CONV_IMPL_GEMM; impl <= SAL_CONV_IMPL_DNNL; impl++) {
        double ef, eb;
        run_case(g, impl, NULL, NULL, &ef, &eb);
        const char *name = impl == SAL_CONV_IMPL_GEMM ? "gemm" : "onednn";
        cr_expect_lt(ef, 1e-5, "%s forward: max rel error %.3g (%dx%d k%dx%d s%d g%d)", name, ef, g->c, g->m,
                     g->kh, g->kw, g->sh, g->group);
        cr_expect_lt(eb, 1e-5, "%s backward-data: max rel error %.3g (%dx%d k%dx%d s%d g%d)", name, eb, g->c,
                     g->m, g->kh, g->kw, g->sh, g->group);
    }
}

Test(conv_paths, auto_choice_by_shape) {
    geo g3 = {1, 32, 28, 28, 32, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0};
    sal_conv_params p = params_of(&g3);
    cr_expect(sal_dnnl_conv_choose(&p, SAL_CONV_IMPL_AUTO), "3x3, 7 MMAC: oneDNN");
    cr_expect(!sal_dnnl_conv_choose(&p, SAL_CONV_IMPL_GEMM), "forced GEMM");
    p.const_wb = 0;
    cr_expect(!sal_dnnl_conv_choose(&p, SAL_CONV_IMPL_DNNL), "runtime weights never go to the cache");
    geo g1 = {1, 32, 28, 28, 32, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 0};
    p = params_of(&g1);
    cr_expect(!sal_dnnl_conv_choose(&p, SAL_CONV_IMPL_AUTO), "1x1 stride 1: one GEMM, ours");
    cr_expect(sal_dnnl_conv_choose(&p, SAL_CONV_IMPL_DNNL), "forced oneDNN");
    geo gd = {1, 32, 28, 28, 32, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 32, 1, 0};
    p = params_of(&gd);
    cr_expect(!sal_dnnl_conv_choose(&p, SAL_CONV_IMPL_AUTO), "depthwise: ours");
    /* the choice reads neither the batch nor the plane's size: an image's convolution runs the
     * same code alone, in a batch of 32, and on an incremental occlusion tile (a tiny plane) */
    geo gt = {1, 32, 3, 5, 32, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0};
    p = params_of(&gt);
    cr_expect(sal_dnnl_conv_choose(&p, SAL_CONV_IMPL_AUTO), "the 3x3 on a 3x5 tile: oneDNN as on 28x28");
    geo gb = g3;
    gb.n = 32;
    p = params_of(&gb);
    cr_expect(sal_dnnl_conv_choose(&p, SAL_CONV_IMPL_AUTO), "the 3x3 at batch 32: oneDNN as at batch 1");
    p = params_of(&g1);
    p.n = 32;
    p.h = p.w = p.oh = p.ow = 2;
    cr_expect(!sal_dnnl_conv_choose(&p, SAL_CONV_IMPL_AUTO), "the 1x1 at batch 32 on 2x2: ours as alone");
}

/* One backend, the same geometry with fresh weights (and inputs) three times: the cache must key
 * its primitives and reordered weights on the weight tensor, not on the shape alone. The weights
 * stay alive (as a model's constants do), so each call's are at a new address. */
Test(conv_paths, cache_keys_on_weights) {
    sal_backend *b = NULL;
    sal_error err = {0};
    cr_assert_eq(sal_backend_cpu_create(2, &b, &err), SAL_OK, "%s", err.msg);
    float *hold[3] = {0};
    for (int rep = 0; rep < 3; rep++) {
        double ef, eb;
        run_case(&cases[1], SAL_CONV_IMPL_DNNL, b, &hold[rep], &ef, &eb);
        cr_expect_lt(ef, 1e-5, "call %d forward: max rel error %.3g", rep, ef);
        cr_expect_lt(eb, 1e-5, "call %d backward-data: max rel error %.3g", rep, eb);
    }
    for (int i = 0; i < 3; i++) free(hold[i]);
    b->ops->destroy(b);
}
