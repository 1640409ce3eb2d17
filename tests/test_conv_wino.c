/* test_conv_wino.c — the CPU backend's Winograd F(2x2, 3x3) convolutions (cpu_conv_wino.c) on
 * channels-last activations, forward (bias, Relu, Clip) and backward-data (added into gin, or
 * written with gin_set), against a naive double-precision reference written here from the ONNX
 * Conv definition, over geometries that reach every branch: pads 0 and 1 on each side, odd planes
 * (a last row and column of half tiles), channel counts off the 64-channel blocks, batch 1-3, and
 * a plane whose tiles overflow one workspace chunk (runs of an image's tiles). Also: image k of a
 * batch gives bit for bit the image alone; which convolutions the rule takes; and a ResNet-shaped
 * model through the engine gives logits and gradients within 1e-5 of oneDNN's direct kernels (and
 * not bit for bit: Winograd did run). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "backend/cpu/cpu_conv_dnnl.h"
#include "backend/cpu/cpu_conv_wino.h"
#include "engine/engine.h"
#include "testgraph.h"
#include "testutil.h"

typedef struct geo {
    int n, c, h, w, m, pt, pl, pb, pr, bias, act;   /* act: 0, 1 relu, 2 clip [0, 0.7] */
} geo;

static sal_conv_params params_of(const geo *g) {
    sal_conv_params p;
    memset(&p, 0, sizeof p);
    p.spatial = 2; p.n = g->n; p.c = g->c; p.h = g->h; p.w = g->w; p.m = g->m;
    p.kh = p.kw = 3; p.sh = p.sw = p.dh = p.dw = 1;
    p.pt = g->pt; p.pl = g->pl; p.pb = g->pb; p.pr = g->pr; p.group = 1; p.has_bias = g->bias;
    p.oh = g->h + g->pt + g->pb - 2;
    p.ow = g->w + g->pl + g->pr - 2;
    p.const_wb = 1;
    p.act = g->act != 0;
    p.act_lo = 0.f;
    p.act_hi = g->act == 2 ? 0.7f : INFINITY;
    p.nhwc_x = p.nhwc_y = 1;
    return p;
}

/* y (N, OH, OW, M) in double from x (N, H, W, C), w (M, C, 3, 3); act applied */
static void ref_forward(const sal_conv_params *p, const float *x, const float *w, const float *b, double *y) {
    for (int64_t n = 0; n < p->n; n++)
        for (int64_t oy = 0; oy < p->oh; oy++)
            for (int64_t ox = 0; ox < p->ow; ox++)
                for (int64_t m = 0; m < p->m; m++) {
                    double s = b ? b[m] : 0.0;
                    for (int64_t ky = 0; ky < 3; ky++)
                        for (int64_t kx = 0; kx < 3; kx++) {
                            const int64_t iy = oy - p->pt + ky, ix = ox - p->pl + kx;
                            if (iy < 0 || iy >= p->h || ix < 0 || ix >= p->w) continue;
                            const float *xp = x + ((n * p->h + iy) * p->w + ix) * p->c;
                            for (int64_t ci = 0; ci < p->c; ci++) s += (double)w[((m * p->c + ci) * 3 + ky) * 3 + kx] * xp[ci];
                        }
                    if (p->act) s = fmin(fmax(s, p->act_lo), p->act_hi);
                    y[((n * p->oh + oy) * p->ow + ox) * p->m + m] = s;
                }
}

/* gx (N, H, W, C) = base + the transpose of ref_forward (no act) applied to gy (N, OH, OW, M) */
static void ref_backward(const sal_conv_params *p, const float *gy, const float *w, const float *base, double *gx) {
    const int64_t nx = p->n * p->h * p->w * p->c;
    for (int64_t i = 0; i < nx; i++) gx[i] = base ? base[i] : 0.0;
    for (int64_t n = 0; n < p->n; n++)
        for (int64_t oy = 0; oy < p->oh; oy++)
            for (int64_t ox = 0; ox < p->ow; ox++)
                for (int64_t m = 0; m < p->m; m++) {
                    const double g0 = gy[((n * p->oh + oy) * p->ow + ox) * p->m + m];
                    for (int64_t ky = 0; ky < 3; ky++)
                        for (int64_t kx = 0; kx < 3; kx++) {
                            const int64_t iy = oy - p->pt + ky, ix = ox - p->pl + kx;
                            if (iy < 0 || iy >= p->h || ix < 0 || ix >= p->w) continue;
                            double *gp = gx + ((n * p->h + iy) * p->w + ix) * p->c;
                            for (int64_t ci = 0; ci < p->c; ci++) gp[ci] += g0 * w[((m * p->c + ci) * 3 + ky) * 3 + kx];
                        }
                }
}

/* max |a - ref| over max |ref|; infinite where a is not finite (NaN: a value never written) */
static double max_rel(const float *a, const double *ref, int64_t n) {
    double mx = 0, scale = 1e-3;
    for (int64_t i = 0; i < n; i++) scale = fmax(scale, fabs(ref[i]));
    for (int64_t i = 0; i < n; i++) mx = fmax(mx, isfinite(a[i]) ? fabs(a[i] - ref[i]) : INFINITY);
    return mx / scale;
}

typedef struct conv_run {
    sal_backend *b;
    sal_conv_params p;
    sal_node node;
    int ins[3], outs[1];
    sal_shape xs, ws, bs, ys;
    const float *w, *bias;
} conv_run;

static void call_conv(conv_run *r, int backward, const float *in, float *out, int set) {
    sal_error err = {0};
    const float *in3[3] = {backward ? NULL : in, r->w, r->bias};
    const sal_shape *in_shape[3] = {&r->xs, &r->ws, &r->bs}, *out_shape[1] = {&r->ys};
    float *outs[1] = {backward ? NULL : out};
    const float *gout[1] = {in};
    float *gin[3] = {out, NULL, NULL};
    sal_op_call c;
    memset(&c, 0, sizeof c);
    c.node = &r->node; c.params = &r->p; c.n_in = r->node.n_in; c.n_out = 1; c.in = in3; c.in_shape = in_shape;
    c.out = outs; c.out_shape = out_shape; c.threads = 2;
    if (backward) { c.gout = gout; c.gin = gin; c.gin_set = set ? 1u : 0u; }
    sal_status st = backward ? r->b->ops->backward(r->b, &c, &err) : r->b->ops->forward(r->b, &c, &err);
    cr_assert_eq(st, SAL_OK, "%s", err.msg);
}

static conv_run open_run(const geo *g, const float *w, const float *bias) {
    conv_run r;
    memset(&r, 0, sizeof r);
    sal_error err = {0};
    cr_assert_eq(sal_backend_cpu_create(2, &r.b, &err), SAL_OK, "%s", err.msg);
    sal_backend_cpu_set_conv_impl(r.b, SAL_CONV_IMPL_LAYOUT);
    r.p = params_of(g);
    cr_assert(sal_wino_choose(&r.p), "the rule takes %dx%d %dx%d", g->c, g->m, g->h, g->w);
    r.ins[0] = 0; r.ins[1] = 1; r.ins[2] = 2; r.outs[0] = 3;
    r.node = (sal_node){"conv_under_test", "Conv", SAL_OP_CONV, g->bias ? 3 : 2, 1, r.ins, r.outs, 0, NULL};
    r.xs = tu_shape(4, g->n, g->c, g->h, g->w);
    r.ws = tu_shape(4, g->m, g->c, 3, 3);
    r.bs = tu_shape(1, g->m);
    r.ys = tu_shape(4, g->n, g->m, (int)r.p.oh, (int)r.p.ow);
    r.w = w;
    r.bias = g->bias ? bias : NULL;
    return r;
}

static void check_geo(const geo *g) {
    sal_conv_params p = params_of(g);
    uint64_t seed = tu_fresh_seed(), st = seed;
    const int64_t nx = p.n * p.c * p.h * p.w, ny = p.n * p.m * p.oh * p.ow, nw = p.m * p.c * 9;
    float *x = tu_rand_buf(nx, &st, -1, 1), *w = tu_rand_buf(nw, &st, -0.3f, 0.3f), *bias = tu_rand_buf(p.m, &st, -1, 1);
    float *y = malloc(sizeof *y * (size_t)ny), *gy = tu_rand_buf(ny, &st, -1, 1), *gx = tu_rand_buf(nx, &st, -1, 1);
    float *gx0 = malloc(sizeof *gx0 * (size_t)nx);
    double *yref = malloc(sizeof *yref * (size_t)ny), *gref = malloc(sizeof *gref * (size_t)nx);
    cr_assert(x && w && bias && y && gy && gx && gx0 && yref && gref);
    memcpy(gx0, gx, sizeof *gx * (size_t)nx);
    for (int64_t i = 0; i < ny; i++) y[i] = NAN;   /* every output is written */
    conv_run r = open_run(g, w, bias);
    call_conv(&r, 0, x, y, 0);
    ref_forward(&p, x, w, g->bias ? bias : NULL, yref);
    const double ef = max_rel(y, yref, ny);
    /* backward-data, added into gin; then written over garbage with gin_set */
    r.p.act = 0;
    call_conv(&r, 1, gy, gx, 0);
    ref_backward(&p, gy, w, gx0, gref);
    const double eb = max_rel(gx, gref, nx);
    for (int64_t i = 0; i < nx; i++) gx[i] = NAN;
    call_conv(&r, 1, gy, gx, 1);
    ref_backward(&p, gy, w, NULL, gref);
    const double es = max_rel(gx, gref, nx);
    const char *what = "n%d c%d %dx%d m%d pads %d%d%d%d bias %d act %d (seed %llu)";
    cr_expect_lt(ef, 1e-5, "forward: max rel error %.3g", ef);
    cr_expect_lt(eb, 1e-5, "backward-data (added): max rel error %.3g", eb);
    cr_expect_lt(es, 1e-5, "backward-data (written): max rel error %.3g", es);
    if (!(ef < 1e-5 && eb < 1e-5 && es < 1e-5))
        cr_log_error(what, g->n, g->c, g->h, g->w, g->m, g->pt, g->pl, g->pb, g->pr, g->bias, g->act,
                     (unsigned long long)seed);
    r.b->ops->destroy(r.b);
    free(x); free(w); free(bias); free(y); free(gy); free(gx); free(gx0); free(yref); free(gref);
}

TestSuite(conv_wino, .timeout = 300);

Test(conv_wino, matches_reference) {
    static const geo cases[] = {
        {1, 16, 7, 7, 16, 1, 1, 1, 1, 1, 0},       /* the smallest plane the rule takes */
        {3, 24, 13, 11, 40, 1, 1, 1, 1, 1, 1},     /* odd plane: half tiles; ReLU; batch 3 */
        {2, 70, 11, 17, 20, 0, 0, 0, 0, 0, 2},     /* no padding, Clip; 70 channels: 64 + 6 */
        {1, 130, 14, 14, 72, 1, 0, 0, 1, 1, 1},    /* asymmetric pads */
        {2, 16, 184, 180, 16, 1, 1, 1, 1, 1, 0},   /* 8280 tiles an image: runs of 8192 */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) check_geo(&cases[i]);
}

/* Image 1 of a batch of 3 gives bit for bit what it gives alone, forward and backward: the
 * products never mix images (both chunk layouts: whole images and runs of an image's tiles). */
Test(conv_wino, batch_does_not_change_an_image) {
    static const geo cases[] = {{3, 32, 14, 14, 32, 1, 1, 1, 1, 1, 1}, {3, 16, 184, 180, 16, 1, 1, 1, 1, 0, 0}};
    for (int k = 0; k < 2; k++) {
        const geo *g = &cases[k];
        geo g1 = *g;
        g1.n = 1;
        sal_conv_params p = params_of(g);
        uint64_t st = 41;
        const int64_t per_x = p.c * p.h * p.w, per_y = p.m * p.oh * p.ow;
        float *x = tu_rand_buf(3 * per_x, &st, -1, 1), *w = tu_rand_buf(p.m * p.c * 9, &st, -0.3f, 0.3f);
        float *bias = tu_rand_buf(p.m, &st, -1, 1), *gy = tu_rand_buf(3 * per_y, &st, -1, 1);
        float *y3 = malloc(sizeof(float) * 3 * per_y), *y1 = malloc(sizeof(float) * per_y);
        float *gx3 = malloc(sizeof(float) * 3 * per_x), *gx1 = malloc(sizeof(float) * per_x);
        conv_run r3 = open_run(g, w, bias), r1 = open_run(&g1, w, bias);
        call_conv(&r3, 0, x, y3, 0);
        call_conv(&r1, 0, x + per_x, y1, 0);
        r3.p.act = r1.p.act = 0;
        call_conv(&r3, 1, gy, gx3, 1);
        call_conv(&r1, 1, gy + per_y, gx1, 1);
        cr_expect(!memcmp(y1, y3 + per_y, sizeof(float) * (size_t)per_y), "case %d: image 1's output differs", k);
        cr_expect(!memcmp(gx1, gx3 + per_x, sizeof(float) * (size_t)per_x), "case %d: image 1's dX differs", k);
        r3.b->ops->destroy(r3.b);
        r1.b->ops->destroy(r1.b);
        free(x); free(w); free(bias); free(gy); free(y3); free(y1); free(gx3); free(gx1);
    }
}

Test(conv_wino, rule) {
    const geo g = {1, 64, 28, 28, 64, 1, 1, 1, 1, 1, 1};
    sal_conv_params p = params_of(&g);
    cr_expect(sal_wino_choose(&p), "ResNet's 3x3 on channels-last data");
    p.nhwc_x = 0;
    cr_expect(!sal_wino_choose(&p), "an NCHW side: oneDNN's");
    p = params_of(&g);
    p.sh = p.sw = 2;
    cr_expect(!sal_wino_choose(&p), "stride 2");
    p = params_of(&g);
    p.const_wb = 0;
    cr_expect(!sal_wino_choose(&p), "run-time weights");
    p = params_of(&g);
    p.oh = p.ow = 7;
    cr_expect(sal_wino_choose(&p), "a 7x7 plane (ResNet-50's last stage)");
    p.oh = 6;
    cr_expect(!sal_wino_choose(&p), "a 6x7 plane: smaller than anything measured");
    p = params_of(&g);
    p.c = 8;
    cr_expect(!sal_wino_choose(&p), "8 input channels");
    p = params_of(&g);
    p.group = 2;
    cr_expect(!sal_wino_choose(&p), "grouped");
    p = params_of(&g);
    p.n = 32;
    cr_expect(sal_wino_choose(&p), "any batch");
}

/* A ResNet-shaped model through the engine, channels-last: logits and every value's gradient
 * within 1e-5 of the largest against oneDNN's direct kernels, and not all equal (Winograd ran). */
Test(conv_wino, resnet_shaped_model_against_direct) {
    static const int wide[3] = {16, 32, 32};
    sal_graph *g = tg_mini_resnet(3, wide);
    sal_backend *be[2];
    sal_engine *e[2];
    sal_error err = {0};
    sal_shape xs = {4, {2, 3, 64, 64}};
    uint64_t st = 9;
    float *x = tu_rand_buf(2 * 3 * 64 * 64, &st, -2, 2), *seed = tu_rand_buf(2 * 10, &st, -1, 1);
    for (int k = 0; k < 2; k++) {
        cr_assert_eq(sal_backend_cpu_create(2, &be[k], &err), SAL_OK, "%s", err.msg);
        sal_backend_cpu_set_conv_impl(be[k], SAL_CONV_IMPL_LAYOUT);
        sal_backend_cpu_set_winograd(be[k], k == 0);
        cr_assert_eq(sal_engine_create(g, be[k], &e[k], &err), SAL_OK, "%s", err.msg);
        cr_assert_eq(sal_engine_plan(e[k], &xs, SAL_PLAN_GRAD, -1, &err), SAL_OK, "%s", err.msg);
        cr_assert_gt(sal_engine_n_nhwc(e[k]), 0);
        const float *ins[1] = {x};
        cr_assert_eq(sal_engine_forward(e[k], ins, &err), SAL_OK, "%s", err.msg);
        cr_assert_eq(sal_engine_backward(e[k], seed, 0, 0, &err), SAL_OK, "%s", err.msg);
    }
    int differ = 0, compared = 0;
    for (int v = 0; v < g->n_values; v++) {
        if (!sal_engine_shape(e[0], v)) continue;
        const int64_t n = sal_shape_numel(sal_engine_shape(e[0], v));
        for (int gq = 0; gq < 2; gq++) {
            float *a = malloc(sizeof(float) * (size_t)n), *b = malloc(sizeof(float) * (size_t)n);
            cr_assert_eq(gq ? sal_engine_read_grad(e[0], v, a, &err) : sal_engine_read(e[0], v, a, &err), SAL_OK);
            cr_assert_eq(gq ? sal_engine_read_grad(e[1], v, b, &err) : sal_engine_read(e[1], v, b, &err), SAL_OK);
            double mx = 0, d = 0;
            for (int64_t i = 0; i < n; i++) {
                mx = fmax(mx, fabs(b[i]));
                d = fmax(d, fabs(a[i] - b[i]));
            }
            /* (measured: 6e-7 of the largest at most, values and gradients alike) */
            cr_expect_leq(d, 1e-5 * fmax(mx, 1e-30), "'%s' %s: %g of %g", g->values[v].name, gq ? "gradient" : "value",
                          d, mx);
            differ += memcmp(a, b, sizeof(float) * (size_t)n) != 0;
            compared++;
            free(a); free(b);
        }
    }
    cr_assert_gt(compared, 0);
    cr_expect_gt(differ, 0, "Winograd and the direct kernels agree bit for bit: did Winograd run?");
    for (int k = 0; k < 2; k++) {
        sal_engine_free(e[k]);
        be[k]->ops->destroy(be[k]);
    }
    free(x); free(seed);
    sal_graph_free(g);
}
