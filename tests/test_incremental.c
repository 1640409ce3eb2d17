/* test_incremental.c — incremental inference (host/engine/incremental.c) against full passes.
 *
 * The reference is the engine's ordinary forward pass over the occluded images themselves, built
 * here on the host (each window's pixels replaced by the fill's). sal_inc_forward must give the
 * same outputs, within 1e-5 of the outputs' largest magnitude (the tile kernels may pick another
 * blocking than the full layer's; the report prints how many outputs are bit-identical), for
 * windows in the middle, at each corner, hanging over the border, empty, covering everything,
 * and mixed sizes in one batch, under thresholds 0 (every layer recomputed whole through the
 * patch machinery), 0.5 (the default) and 1 (patches as long as they fit). Models: the fixture
 * CNN, a narrow and shallow ResNet-shaped graph (testgraph.c: 7x7/2 stem, 3x3/2 max pool,
 * bottlenecks with strided 3x3 and strided 1x1 projection shortcuts that skip pixels, global
 * pool, Gemm), a graph of the other layer kinds the patches follow or give up on (dilated
 * depthwise, SAME padding, ceil-mode and padded pools, channel Concat, BatchNorm, x*sigmoid(x),
 * Sub, HardSwish), and EfficientNet-Lite0 (models/). The FLOP counts show the work saved, and
 * threshold 0's show that the whole-layer path does a full pass's work. Then occlusion maps with
 * and without incremental inference must agree, on the plain and the guarded backend. */
#include <criterion/criterion.h>
#include <float.h>
#include <math.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"
#include "engine/incremental.h"
#include "methods/methods.h"
#include "testgraph.h"
#include "testutil.h"

/* The other layer kinds: SAME-padded strided conv, BatchNorm, swish (x * sigmoid(x)), dilated
 * depthwise, ceil-mode max pool, padded average pools with and without the padding counted
 * (the latter recomputed whole), channel Concat, Sub, HardSwish. */
static sal_graph *zoo(int C) {
    tg_builder b = {sal_graph_new("zoo"), 11, 0};
    sal_shape xs = {4, {-1, C, -1, -1}};
    sal_graph_add_input(b.g, "x", &xs);
    char a[64], bn[64], sg[64], sw[64], dw[64], mp[64], ap[64], cat[64], sub[64], hs[64], ap2[64], c2[64];
    tg_conv(&b, "x", a, C, 6, 3, 2, -1, 1, 1, 0);
    char sc[64], bb[64], mn[64], vr[64];
    tg_nm(&b, "bns", sc); tg_nm(&b, "bnb", bb); tg_nm(&b, "bnm", mn); tg_nm(&b, "bnv", vr);
    tg_const(&b, sc, tu_shape(1, 6), 1.0f);
    tg_const(&b, bb, tu_shape(1, 6), 0.5f);
    tg_const(&b, mn, tu_shape(1, 6), 0.5f);
    sal_shape vs = tu_shape(1, 6);
    sal_tensor *vt = sal_tensor_new(SAL_F32, &vs);
    for (int i = 0; i < 6; i++) ((float *)vt->data)[i] = 0.5f + 0.1f * i;
    sal_graph_add_const(b.g, vr, vt);
    const char *bi[5] = {a, sc, bb, mn, vr};
    tg_op(&b, "BatchNormalization", 5, bi, bn);
    const char *si[1] = {bn};
    tg_op(&b, "Sigmoid", 1, si, sg);
    const char *mi[2] = {bn, sg};
    tg_op(&b, "Mul", 2, mi, sw);
    tg_conv(&b, sw, dw, 6, 6, 3, 1, 2, 2, 6, 0);            /* depthwise, dilation 2, no Relu */
    tg_pool(&b, "MaxPool", dw, mp, 3, 2, 0, 1, 0);          /* ceil mode: windows over the edge */
    tg_pool(&b, "AveragePool", mp, ap, 3, 1, 1, 0, 1);      /* padding counted */
    const char *ci[2] = {mp, ap};
    tg_op(&b, "Concat", 2, ci, cat);
    sal_node_attr_int(&b.g->nodes[b.g->n_nodes - 1], "axis", 1);
    tg_conv(&b, cat, c2, 12, 12, 1, 1, 0, 1, 1, 0);
    const char *di[2] = {c2, cat};
    tg_op(&b, "Sub", 2, di, sub);
    const char *hi[1] = {sub};
    tg_op(&b, "HardSwish", 1, hi, hs);
    tg_pool(&b, "AveragePool", hs, ap2, 3, 1, 1, 0, 0);     /* padding not counted: whole */
    tg_head(&b, ap2, 12, 7);
    return tg_finish(&b);
}

/* ------------------------------------------------------------------------------------------------ */
/* The check                                                                                        */

typedef struct result {
    double err;          /* max |inc - full| / max(max |full|, 1) */
    int64_t identical, n;
    double ran, full;    /* FLOPs */
} result;

/* Variants of x (1,C,H,W): rects (nv, 4), run in batches of `batch` by sal_inc_forward with the
 * threshold, against full passes over the occluded images. */
static result check(const sal_graph *g, int C, int H, int W, const int *rects, int nv, int batch,
                    double threshold, uint64_t seed) {
    result res = {0};
    sal_error err = {0};
    sal_backend *be = NULL;
    sal_engine *e = NULL;
    sal_inc *inc = NULL;
    cr_assert_eq(sal_backend_cpu_create(2, &be, &err), SAL_OK, "%s", err.msg);
    cr_assert_eq(sal_engine_create(g, be, &e, &err), SAL_OK, "%s", err.msg);
    sal_inc_opts o = sal_inc_opts_default();
    o.threshold = threshold;
    cr_assert_eq(sal_inc_create(e, &o, &inc, &err), SAL_OK, "%s", err.msg);
    int64_t per = (int64_t)C * H * W;
    uint64_t rng = seed;
    float *x = tu_rand_buf(per, &rng, -2, 2), *fill = tu_rand_buf(per, &rng, -1, 1);
    float *imgs = malloc(sizeof(float) * (size_t)(batch * per));
    sal_shape s1 = {4, {1, C, H, W}};
    cr_assert_eq(sal_inc_base(inc, &s1, x, &err), SAL_OK, "%s", err.msg);   /* CPU: host memory */
    int K = 0;
    for (int v0 = 0; v0 < nv; v0 += batch) {
        int nb = nv - v0 < batch ? nv - v0 : batch;
        sal_shape sb = {4, {nb, C, H, W}};
        /* the reference: the occluded images, whole */
        for (int k = 0; k < nb; k++) {
            const int *r = rects + 4 * (v0 + k);
            float *im = imgs + k * per;
            for (int c = 0; c < C; c++)
                for (int y = 0; y < H; y++)
                    for (int xx = 0; xx < W; xx++) {
                        int64_t j = ((int64_t)c * H + y) * W + xx;
                        int in = y >= r[0] && y < r[2] && xx >= r[1] && xx < r[3];
                        im[j] = in ? fill[j] : x[j];
                    }
        }
        cr_assert_eq(sal_engine_plan(e, &sb, SAL_PLAN_FORWARD, -1, &err), SAL_OK, "%s", err.msg);
        const float *ins[1] = {imgs};
        cr_assert_eq(sal_engine_forward(e, ins, &err), SAL_OK, "%s", err.msg);
        const sal_shape *os = sal_engine_shape(e, g->outputs[0]);
        int64_t no = sal_shape_numel(os);
        K = (int)(no / nb);
        float *ref = malloc(sizeof(float) * (size_t)no), *got = malloc(sizeof(float) * (size_t)no);
        cr_assert_eq(sal_engine_read(e, g->outputs[0], ref, &err), SAL_OK, "%s", err.msg);
        float *fill_dev = fill;   /* the CPU backend's memory is host memory */
        cr_assert_eq(sal_inc_forward(inc, nb, rects + 4 * v0, fill_dev, got, &err), SAL_OK, "%s", err.msg);
        double mx = 1;
        for (int64_t j = 0; j < no; j++) if (fabs(ref[j]) > mx) mx = fabs(ref[j]);
        for (int64_t j = 0; j < no; j++) {
            double d = fabs((double)got[j] - ref[j]) / mx;
            if (!(d <= res.err)) res.err = d;   /* NaN counts as the worst */
            res.identical += got[j] == ref[j];
        }
        res.n += no;
        free(ref);
        free(got);
    }
    (void)K;
    sal_inc_flops(inc, &res.ran, &res.full);
    free(x); free(fill); free(imgs);
    sal_inc_free(inc);
    sal_engine_free(e);
    be->ops->destroy(be);
    return res;
}

/* Windows of a H x W input: corners, over the border, the middle, a strip, empty, everything. */
static int border_rects(int H, int W, int win, int *r) {
    int v[][4] = {
        {0, 0, win, win},                       /* top-left corner */
        {H - win, W - win, H, W},               /* bottom-right corner */
        {0, W - win, win, W},                   /* top-right */
        {H - win, 0, H, win},                   /* bottom-left */
        {H - win / 2, W - win / 2, H - win / 2 + win, W - win / 2 + win},   /* hanging over */
        {H / 2 - win / 2, W / 2 - win / 2, H / 2 - win / 2 + win, W / 2 - win / 2 + win},
        {3, 5, 3 + win, 5 + win},
        {0, W / 3, H, W / 3 + 1},               /* a full-height one-pixel strip */
        {5, 5, 5, 5},                           /* empty: the base itself */
        {0, 0, H, W},                           /* everything */
        {H / 2, 1, H / 2 + 2, 3},               /* small */
    };
    int n = (int)(sizeof v / sizeof v[0]);
    memcpy(r, v, sizeof v);
    return n;
}

/* Occlusion's own windows: a row of windows at stride s, as a batch sees them. */
static int row_rects(int H, int W, int win, int s, int row, int *r) {
    int nx = (W - win + s - 1) / s + 1, n = 0;
    for (int q = 0; q < nx; q++, n++) {
        int *p = r + 4 * n;
        p[0] = row * s; p[1] = q * s; p[2] = p[0] + win; p[3] = p[1] + win;
    }
    (void)H;
    return n;
}

static void report(const char *what, double thr, result r, double tol) {
    cr_log_info("%s, threshold %.2f: max rel err %.3g, %lld of %lld outputs bit-identical, FLOPs %.3g of %.3g (%.1f%%)",
                what, thr, r.err, (long long)r.identical, (long long)r.n, r.ran, r.full, 100.0 * r.ran / r.full);
    cr_expect_leq(r.err, tol, "%s, threshold %.2f: incremental differs from full passes by %g", what, thr, r.err);
}

static void check_model(const char *what, const sal_graph *g, int C, int H, int W, int win, int stride) {
    int rects[4 * 64];
    int nb = border_rects(H, W, win, rects);
    int nr = row_rects(H, W, win, stride, 1, rects + 4 * nb);
    double thr[3] = {0.0, 0.5, 1.0};
    for (int t = 0; t < 3; t++) {
        /* mixed sizes in one batch, then one at a time, then a row of windows as occlusion batches */
        result a = check(g, C, H, W, rects, nb, nb, thr[t], 1 + t);
        result b = check(g, C, H, W, rects, nb, 1, thr[t], 1 + t);
        result c = check(g, C, H, W, rects + 4 * nb, nr, 8, thr[t], 5 + t);
        char buf[128];
        snprintf(buf, sizeof buf, "%s: border windows in one batch", what);
        report(buf, thr[t], a, 1e-5);
        snprintf(buf, sizeof buf, "%s: border windows one by one", what);
        report(buf, thr[t], b, 1e-5);
        snprintf(buf, sizeof buf, "%s: a row of %dx%d windows at stride %d", what, win, win, stride);
        report(buf, thr[t], c, 1e-5);
        if (thr[t] == 0.0)   /* every layer whole: a full pass's work, through the patch code */
            cr_expect_eq(c.ran, c.full, "%s: threshold 0 ran %g FLOPs, full passes %g", what, c.ran, c.full);
        else                 /* small windows: less work than full passes */
            cr_expect_lt(c.ran, 0.8 * c.full, "%s: threshold %.2f ran %g of %g FLOPs", what, thr[t], c.ran, c.full);
    }
}

TestSuite(incremental, .timeout = 600);

Test(incremental, fixture_cnn_matches_full_passes) {
    char path[1024];
    sal_model *m = NULL;
    sal_error err = {0};
    cr_assert_eq(sal_model_load(tu_src_path("tests/fixtures/methods/tinycnn.onnx", path, sizeof path), &m, &err),
                 SAL_OK, "%s", err.msg);
    check_model("fixture CNN", m->g, 3, 32, 32, 5, 3);
    check_model("fixture CNN", m->g, 3, 32, 32, 15, 8);
    sal_model_free(m);
}

Test(incremental, resnet_shaped_model_matches_full_passes) {
    sal_graph *g = tg_mini_resnet(3, NULL);
    check_model("mini ResNet", g, 3, 64, 64, 15, 8);
    check_model("mini ResNet", g, 3, 64, 64, 4, 2);
    sal_graph_free(g);
}

Test(incremental, other_layer_kinds_match_full_passes) {
    sal_graph *g = zoo(3);
    check_model("layer zoo", g, 3, 40, 36, 7, 4);
    sal_graph_free(g);
}

Test(incremental, efficientnet_lite0_matches_full_passes) {
    char path[1024];
    sal_model *m = NULL;
    sal_error err = {0};
    tu_src_path("models/efficientnet_lite0.onnx", path, sizeof path);
    FILE *f = fopen(path, "rb");
    if (!f) cr_skip_test("%s is missing (scripts/fetch-models)", path);
    fclose(f);
    cr_assert_eq(sal_model_load(path, &m, &err), SAL_OK, "%s", err.msg);
    int rects[4 * 64];   /* the border windows, then a whole row at stride 8 (28 windows; 8 are used) */
    int nb = border_rects(224, 224, 15, rects);
    int nr = row_rects(224, 224, 15, 8, 13, rects + 4 * nb);
    double thr[2] = {0.5, 1.0};
    for (int t = 0; t < 2; t++) {
        result a = check(m->g, 3, 224, 224, rects, nb, nb, thr[t], 3);
        report("EfficientNet-Lite0: border windows in one batch", thr[t], a, 1e-5);
        result b = check(m->g, 3, 224, 224, rects, nb, 1, thr[t], 3);
        report("EfficientNet-Lite0: border windows one by one", thr[t], b, 1e-5);
    }
    result c = check(m->g, 3, 224, 224, rects + 4 * nb, 8, 8, 0.5, 4);
    report("EfficientNet-Lite0: 8 windows of a row at stride 8", 0.5, c, 1e-5);
    cr_expect_lt(c.ran, 0.8 * c.full);
    (void)nr;
    sal_model_free(m);
}

/* ------------------------------------------------------------------------------------------------ */
/* Occlusion maps                                                                                   */

/* The first `configs` of: 15x15/8 zero fill, 5x5/3 mean fill, 4x7/2x5 blur fill, each with logits
 * and with probabilities. */
static void occlusion_maps_agree(sal_session *s, const char *what, int configs) {
    uint64_t rng = 99;
    float *x = tu_rand_buf(2 * 3 * 32 * 32, &rng, -2, 2);
    int wins[3][4] = {{15, 15, 8, 8}, {5, 5, 3, 3}, {4, 7, 2, 5}};
    for (int t = 0; t < 3; t++)
        for (int prob = 0; prob < 2 && 2 * t + prob < configs; prob++) {
            sal_explain_opts o = sal_explain_opts_default(SAL_M_OCCLUSION);
            o.occ_h = wins[t][0]; o.occ_w = wins[t][1]; o.occ_stride_h = wins[t][2]; o.occ_stride_w = wins[t][3];
            o.occ_fill = t;   /* zero, mean, blur */
            o.explain_prob = prob;
            sal_maps full = {0}, inc = {0};
            o.occ_full = 1;
            cr_assert_eq(sal_explain(s, &o, x, 2, 32, 32, NULL, &full), SAL_OK, "%s", sal_session_error(s));
            o.occ_full = 0;
            cr_assert_eq(sal_explain(s, &o, x, 2, 32, 32, NULL, &inc), SAL_OK, "%s", sal_session_error(s));
            int64_t n = 2 * sal_maps_per_image(&full);
            /* A map value is f(x) - f(occluded x) (or divided by the window's size): a difference
             * of two float32 outputs. The incremental pass runs the same arithmetic on tiles, but
             * oneDNN's GEMM may sum a tile's columns in another order than the whole plane's
             * (host/backend/cpu/gemm.c; seen on AVX2), so each output can move by a few of its
             * ulps, and where f(x) is large against the map (probabilities near 0.5, maps near
             * 1e-3) that alone is > 1e-5 of the map. Budget: 1e-5 of the map's largest value plus
             * 16 float32 ulps of the largest score. A wrong patch moves outputs by far more
             * (incremental_forward_matches_full_passes checks the outputs themselves). */
            double dmax = 0, mmax = 0, smax = 0;
            for (int64_t i = 0; i < n; i++) {
                const double e = fabs((double)inc.attr[i] - (double)full.attr[i]);
                if (!(e <= dmax)) dmax = e;
                if (fabs((double)full.attr[i]) > mmax) mmax = fabs((double)full.attr[i]);
            }
            for (int i = 0; i < 2; i++)
                if (fabs((double)full.scores[i]) > smax) smax = fabs((double)full.scores[i]);
            const double budget = 1e-5 * mmax + 16 * FLT_EPSILON * smax;
            cr_expect_leq(dmax, budget, "%s: window %dx%d stride %dx%d prob %d: incremental map differs by %g "
                          "(map max %g, score max %g, budget %g)", what, o.occ_h, o.occ_w, o.occ_stride_h,
                          o.occ_stride_w, prob, dmax, mmax, smax, budget);
            cr_log_info("%s: window %dx%d prob %d: diff %g, map max %g, score max %g", what, o.occ_h, o.occ_w,
                        prob, dmax, mmax, smax);
            sal_maps_free(&full);
            sal_maps_free(&inc);
        }
    free(x);
}

Test(incremental, occlusion_maps_equal_full_passes) {
    sal_model *m = NULL;
    sal_session *s = NULL;
    sal_error err = {0};
    cr_assert_eq(tu_open("tests/fixtures/methods/tinycnn.onnx", SAL_DEVICE_CPU, &m, &s, &err), SAL_OK, "%s", err.msg);
    occlusion_maps_agree(s, "cpu", 6);
    sal_session_free(s);
    sal_backend *b = NULL;
    cr_assert_eq(sal_backend_cpu_guarded_create(0, &b, &err), SAL_OK, "%s", err.msg);
    cr_assert_eq(sal_session_create_on(m, b, NULL, &s, &err), SAL_OK, "%s", err.msg);
    occlusion_maps_agree(s, "guarded cpu", 1);   /* slow: every backend call reprotects memory */
    sal_session_free(s);
    sal_model_free(m);
}

/* The base activations are the engine's: a forward pass over another image on the same plan
 * replaces them, and the next batch must be refused rather than computed on the wrong image. */
Test(incremental, stale_base_and_misuse_are_refused) {
    char path[1024];
    sal_model *m = NULL;
    sal_error err = {0};
    cr_assert_eq(sal_model_load(tu_src_path("tests/fixtures/methods/tinycnn.onnx", path, sizeof path), &m, &err),
                 SAL_OK, "%s", err.msg);
    sal_backend *be = NULL;
    sal_engine *e = NULL;
    sal_inc *inc = NULL;
    cr_assert_eq(sal_backend_cpu_create(2, &be, &err), SAL_OK, "%s", err.msg);
    cr_assert_eq(sal_engine_create(m->g, be, &e, &err), SAL_OK, "%s", err.msg);
    cr_assert_eq(sal_inc_create(e, NULL, &inc, &err), SAL_OK, "%s", err.msg);
    uint64_t rng = 5;
    float *x = tu_rand_buf(3 * 32 * 32, &rng, -1, 1), *y = tu_rand_buf(3 * 32 * 32, &rng, -1, 1);
    float out[10];
    int rect[4] = {2, 2, 9, 9};
    sal_shape s1 = {4, {1, 3, 32, 32}};
    cr_expect_eq(sal_inc_forward(inc, 1, rect, y, out, &err), SAL_ERR_INVALID_ARG, "a batch before any base pass");
    sal_shape s2 = {4, {2, 3, 32, 32}};
    cr_expect_eq(sal_inc_base(inc, &s2, x, &err), SAL_ERR_INVALID_ARG, "a base of two images");
    cr_assert_eq(sal_inc_base(inc, &s1, x, &err), SAL_OK, "%s", err.msg);
    cr_expect_eq(sal_inc_forward(inc, 0, rect, y, out, &err), SAL_ERR_INVALID_ARG, "an empty batch");
    cr_assert_eq(sal_inc_forward(inc, 1, rect, y, out, &err), SAL_OK, "%s", err.msg);
    const float *ins[1] = {y};
    cr_assert_eq(sal_engine_plan(e, &s1, SAL_PLAN_KEEP, -1, &err), SAL_OK, "%s", err.msg);
    cr_assert_eq(sal_engine_forward(e, ins, &err), SAL_OK, "%s", err.msg);
    cr_expect_eq(sal_inc_forward(inc, 1, rect, y, out, &err), SAL_ERR_INTERNAL, "a base pass another image replaced");
    cr_expect(strstr(err.msg, "replaced") != NULL, "the message says why: %s", err.msg);
    free(x); free(y);
    sal_inc_free(inc);
    sal_inc_free(NULL);
    sal_engine_free(e);
    be->ops->destroy(be);
    sal_model_free(m);
}
