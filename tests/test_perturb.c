/* test_perturb.c — RISE, GradientSHAP and KernelSHAP (host/methods/perturb.c) by their defining
 * properties rather than stored numbers:
 *  - RISE's mask generator (kernels/method_elem.h) keeps the fraction p of each mask, in its grid
 *    cells and in its upsampled values, within a stated statistical bound; its resize is the
 *    half-pixel, mirrored linear resize; the seed-only generator equals the grid-based one;
 *  - RISE on a linear model equals the formula sum_k f(x*m_k) m_k / (N p) recomputed here from
 *    the generator; with p = 1 the map is f(x) everywhere;
 *  - GradientSHAP on a linear model is exactly W * (x - b) with one baseline and no noise, and
 *    W * (x - E[b]) in expectation (bound from the sampling variance);
 *  - KernelSHAP is efficient (sum of values = f(x) - f(baseline)) and, on a linear model, gives
 *    the exact Shapley values (the sum of W * (x - b) over each grid cell or superpixel);
 *  - same seed => same maps whatever the internal batch, different seed => different maps;
 *  - bad options are refused with a message naming the option. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/io.h"
#include "methods/methods.h"
#include "testutil.h"
#include "../kernels/method_elem.h"

/* host/methods/perturb.c: SLIC-like superpixels used by KernelSHAP (not in a header). */

#define FIX "tests/fixtures/methods/"

/* ------------------------------------------------------------------------------------------------ */
/* Models                                                                                           */

/* y = W . flatten(x) + bias: one output (class 0). */
typedef struct linear_model {
    sal_graph *g;
    sal_session *s;
    sal_model m;
    const float *w;   /* (C*H*W) */
    float bias;
} linear_model;

static void linear_open(linear_model *lm, int C, int H, int W, uint64_t *rng, float bias) {
    sal_graph *g = sal_graph_new("");
    sal_shape xs = {4, {-1, C, H, W}};
    sal_graph_add_input(g, "x", &xs);
    sal_shape ws = {2, {1, C * H * W}};
    sal_tensor *wt = sal_tensor_new(SAL_F32, &ws);
    tu_fill(wt->data, C * H * W, rng, -1, 1);
    sal_graph_add_const(g, "w", wt);
    sal_shape bs = {1, {1}};
    sal_tensor *bt = sal_tensor_new(SAL_F32, &bs);
    ((float *)bt->data)[0] = bias;
    sal_graph_add_const(g, "b", bt);
    const char *fin[] = {"x"}, *fout[] = {"f"}, *gin[] = {"f", "w", "b"}, *gout[] = {"y"};
    sal_graph_add_node(g, "Flatten", "flat", 1, fin, 1, fout);
    int k = sal_graph_add_node(g, "Gemm", "fc", 3, gin, 1, gout);
    sal_node_attr_int(&g->nodes[k], "transB", 1);
    sal_graph_mark_output(g, "y");
    sal_error err = {0};
    cr_assert_eq(sal_graph_finalize(g, &err), SAL_OK, "%s", err.msg);
    lm->g = g;
    lm->m.g = g;
    lm->w = wt->data;
    lm->bias = bias;
    sal_session_opts so = sal_session_opts_default();
    so.device = SAL_DEVICE_CPU;
    cr_assert_eq(sal_session_create(&lm->m, &so, &lm->s, &err), SAL_OK, "%s", err.msg);
}

static void linear_close(linear_model *lm) {
    sal_session_free(lm->s);
    sal_graph_free(lm->g);
}

static double linear_f(const linear_model *lm, const float *x, int64_t per) {
    double y = lm->bias;
    for (int64_t j = 0; j < per; j++) y += (double)lm->w[j] * x[j];
    return y;
}

/* The tinycnn fixture (3,32,32) -> 10 classes and its two inputs. */
static sal_model *cnn;
static sal_session *cnn_s;
static float *cnn_x;   /* (2,3,32,32) */
static int cnn_t[2] = {0, 0};

static void cnn_open(void) {
    char path[1024];
    sal_error err = {0};
    cr_assert_eq(sal_model_load(tu_src_path(FIX "tinycnn.onnx", path, sizeof path), &cnn, &err), SAL_OK, "%s", err.msg);
    sal_session_opts o = sal_session_opts_default();
    o.device = SAL_DEVICE_CPU;
    cr_assert_eq(sal_session_create(cnn, &o, &cnn_s, &err), SAL_OK, "%s", err.msg);
    int nd;
    int64_t d[SAL_MAX_DIMS];
    cr_assert_eq(sal_npy_read(tu_src_path(FIX "input.npy", path, sizeof path), &cnn_x, &nd, d, &err), SAL_OK, "%s", err.msg);
    cr_assert(nd == 4 && d[0] == 2 && d[1] == 3 && d[2] == 32 && d[3] == 32);
    cnn_t[0] = 3;   /* any classes: the properties hold for every target */
    cnn_t[1] = 7;
}

static void cnn_close(void) {
    sal_session_free(cnn_s);
    sal_model_free(cnn);
    free(cnn_x);
}

#define CNN_PER (3 * 32 * 32)

static int64_t map_size(const sal_maps *m) { return m->dims[0] * m->dims[1] * m->dims[2]; }

/* Every channel of every image carries the same per-pixel map. */
static void expect_same_on_channels(const sal_maps *m) {
    int64_t C = m->dims[0], hw = m->dims[1] * m->dims[2];
    for (int i = 0; i < m->n; i++)
        for (int64_t c = 1; c < C; c++)
            cr_expect_eq(memcmp(m->attr + (i * C + c) * hw, m->attr + i * C * hw, sizeof(float) * (size_t)hw), 0,
                         "image %d channel %lld differs from channel 0", i, (long long)c);
}

/* Run o on the CNN's two images three ways: seed 11 batch 16, seed 11 batch 5, seed 12. */
static void check_determinism(sal_explain_opts o) {
    sal_maps a, b, c;
    o.seed = 11;
    o.batch = 16;
    cr_assert_eq(sal_explain(cnn_s, &o, cnn_x, 2, 0, 0, cnn_t, &a), SAL_OK, "%s", sal_session_error(cnn_s));
    o.batch = 5;
    cr_assert_eq(sal_explain(cnn_s, &o, cnn_x, 2, 0, 0, cnn_t, &b), SAL_OK, "%s", sal_session_error(cnn_s));
    o.seed = 12;
    cr_assert_eq(sal_explain(cnn_s, &o, cnn_x, 2, 0, 0, cnn_t, &c), SAL_OK, "%s", sal_session_error(cnn_s));
    int64_t per = map_size(&a);
    cr_expect_eq(per, CNN_PER);
    /* the internal batch changes nothing but the grouping of forward passes: equal to float noise */
    double d = 0, mx = 0;
    for (int64_t j = 0; j < 2 * per; j++) {
        d = fmax(d, fabs((double)a.attr[j] - b.attr[j]));
        mx = fmax(mx, fabs((double)a.attr[j]));
    }
    cr_expect_lt(d, 1e-5 * fmax(mx, 1e-6), "%s: same seed, batch 16 vs 5: maps differ by %g (max %g)",
                 sal_method_name(o.method), d, mx);
    cr_expect_neq(memcmp(a.attr, c.attr, sizeof(float) * 2 * (size_t)per), 0, "%s: seeds 11 and 12 give the same maps",
                  sal_method_name(o.method));
    /* scores are the unperturbed target scores */
    float lg[2 * 10];
    cr_assert_eq(sal_forward(cnn_s, cnn_x, 2, 32, 32, lg), SAL_OK);
    for (int i = 0; i < 2; i++)
        cr_expect_float_eq(a.scores[i], lg[i * 10 + cnn_t[i]], 1e-5 * fmax(1, fabsf(lg[i * 10 + cnn_t[i]])),
                           "%s: score of image %d", sal_method_name(o.method), i);
    sal_maps_free(&a);
    sal_maps_free(&b);
    sal_maps_free(&c);
}

/* ------------------------------------------------------------------------------------------------ */
/* RISE masks                                                                                       */

TestSuite(rise, .timeout = 120);

/* Each cell is Bernoulli(p) and independent: the kept fraction of nm*s*s cells has standard
 * deviation sqrt(p(1-p)/(nm s^2)). Each mask value is a convex combination of cells (weights sum
 * to 1, mirroring only picks other cells), so its mean is exactly p; the mean of one mask over
 * its pixels has variance <= p(1-p), and masks are independent: the grand mean over nm masks is
 * within 5 sqrt(p(1-p)/nm) of p (a conservative bound). */
Test(rise, masks_keep_the_fraction_p) {
    static const struct { int H, W, s; float p; } cases[] = {
        {32, 32, 7, 0.5f}, {32, 32, 7, 0.1f}, {30, 45, 7, 0.9f}, {17, 9, 4, 0.3f}, {16, 16, 1, 0.5f},
    };
    const int nm = 3000;
    for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
        int H = cases[t].H, W = cases[t].W, s = cases[t].s;
        float p = cases[t].p;
        int ch = sal_rise_cell_size(H, s), cw = sal_rise_cell_size(W, s);
        cr_expect(ch * s >= H && (ch - 1) * s < H && cw * s >= W && (cw - 1) * s < W, "cell sizes %d %d", ch, cw);
        double kept = 0, vsum = 0;
        float *grid = malloc(sizeof(float) * (size_t)s * s);
        for (int k = 0; k < nm; k++) {
            for (int gy = 0; gy < s; gy++)
                for (int gx = 0; gx < s; gx++) {
                    grid[gy * s + gx] = sal_rise_cell(77, (uint32_t)k, gy, gx, s, p);
                    cr_assert(grid[gy * s + gx] == 0.0f || grid[gy * s + gx] == 1.0f);
                    kept += grid[gy * s + gx];
                }
            int dy = sal_rise_shift(77, (uint32_t)k, 0, ch), dx = sal_rise_shift(77, (uint32_t)k, 1, cw);
            cr_assert(dy >= 0 && dy < ch && dx >= 0 && dx < cw, "shift (%d,%d) outside [0,%d)x[0,%d)", dy, dx, ch, cw);
            double msum = 0;
            for (int y = 0; y < H; y++)
                for (int x = 0; x < W; x++) {
                    float v = sal_rise_mask_from_grid(grid, s, H, W, dy, dx, y, x);
                    /* the seed-only generator (for device kernels) gives the very same value */
                    float v2 = sal_rise_mask_value(77, (uint32_t)k, y, x, H, W, s, p);
                    if (v != v2) cr_assert_fail("mask %d (%d,%d): grid %g vs seed-only %g", k, y, x, v, v2);
                    if (!(v >= 0.0f && v <= 1.0f)) cr_assert_fail("mask value %g outside [0,1]", v);
                    msum += v;
                }
            vsum += msum / ((double)H * W);
        }
        free(grid);
        double cells = (double)nm * s * s, frac = kept / cells, mean = vsum / nm;
        double sd_cells = sqrt(p * (1 - p) / cells), sd_mean = sqrt(p * (1 - p) / nm);
        cr_expect_lt(fabs(frac - p), 5 * sd_cells, "%dx%d s=%d p=%g: kept cells %.5f (bound %.5f)", H, W, s, p, frac, 5 * sd_cells);
        cr_expect_lt(fabs(mean - p), 5 * sd_mean, "%dx%d s=%d p=%g: mean mask value %.5f (bound %.5f)", H, W, s, p, mean, 5 * sd_mean);
    }
}

/* The resize is linear with half-pixel centres and mirrored edges: on a grid that is a ramp in
 * x (cell value = gx), the mask at column X = x + dx of the upsampled image is the mirrored
 * source coordinate src = (X + 0.5) s / up - 0.5 (linear interpolation of a linear function is
 * exact); constant grids give constant masks. */
Test(rise, resize_is_half_pixel_linear_with_mirrored_edges) {
    const int s = 5, H = 23, W = 23;
    int cw = sal_rise_cell_size(W, s), up = (s + 1) * cw;
    float ramp[25], ones[25], half[25];
    for (int j = 0; j < s * s; j++) { ramp[j] = (float)(j % s); ones[j] = 1; half[j] = 0.25f; }
    for (int dx = 0; dx < cw; dx++)
        for (int x = 0; x < W; x++) {
            double src = (x + dx + 0.5) * s / up - 0.5;
            double want = src < 0 ? -src : src > s - 1 ? 2.0 * (s - 1) - src : src;
            for (int y = 0; y < H; y += 7) {
                cr_expect_float_eq(sal_rise_mask_from_grid(ramp, s, H, W, 2, dx, y, x), want, 1e-5,
                                   "dx %d x %d", dx, x);
                cr_expect_float_eq(sal_rise_mask_from_grid(ones, s, H, W, 1, dx, y, x), 1.0f, 1e-6);
                cr_expect_float_eq(sal_rise_mask_from_grid(half, s, H, W, 0, dx, y, x), 0.25f, 1e-6);
            }
        }
}

/* The RISE loop (masking every channel, batching, accumulation, normalization) against the
 * formula evaluated here from the seed-only generator and the linear model in double. */
Test(rise, linear_model_matches_the_formula) {
    uint64_t rng = tu_fresh_seed();
    const int C = 2, H = 12, W = 10, N = 37;
    const int64_t hw = H * W, per = C * hw;
    linear_model lm;
    linear_open(&lm, C, H, W, &rng, 0.3f);
    float x[2 * 2 * 12 * 10];
    tu_fill(x, 2 * per, &rng, -1, 1);
    sal_explain_opts o = sal_explain_opts_default(SAL_M_RISE);
    o.rise_masks = N;
    o.rise_grid = 3;
    o.rise_p = 0.4f;
    o.seed = 5;
    o.batch = 6;
    int tg[2] = {0, 0};
    sal_maps m;
    cr_assert_eq(sal_explain(lm.s, &o, x, 2, 0, 0, tg, &m), SAL_OK, "%s", sal_session_error(lm.s));
    cr_assert(m.ndim == 3 && m.dims[0] == C && m.dims[1] == H && m.dims[2] == W);
    expect_same_on_channels(&m);
    float *mask = malloc(sizeof(float) * (size_t)N * hw);
    for (int k = 0; k < N; k++)
        for (int y = 0; y < H; y++)
            for (int xx = 0; xx < W; xx++)
                mask[k * hw + y * W + xx] = sal_rise_mask_value(o.seed, (uint32_t)k, y, xx, H, W, o.rise_grid, o.rise_p);
    for (int i = 0; i < 2; i++) {
        const float *xi = x + i * per;
        cr_expect_float_eq(m.scores[i], linear_f(&lm, xi, per), 1e-4, "score of image %d", i);
        double *want = calloc((size_t)hw, sizeof(double)), mx = 0, err = 0;
        float xm[2 * 12 * 10];
        for (int k = 0; k < N; k++) {
            for (int c = 0; c < C; c++)
                for (int64_t j = 0; j < hw; j++) xm[c * hw + j] = xi[c * hw + j] * mask[k * hw + j];
            double f = linear_f(&lm, xm, per);
            for (int64_t j = 0; j < hw; j++) want[j] += f * mask[k * hw + j] / ((double)N * o.rise_p);
        }
        for (int64_t j = 0; j < hw; j++) {
            mx = fmax(mx, fabs(want[j]));
            err = fmax(err, fabs(want[j] - m.attr[i * per + j]));
        }
        cr_expect_lt(err, 1e-5 * fmax(mx, 1), "image %d: max error %g (map max %g)", i, err, mx);
        free(want);
    }
    free(mask);
    sal_maps_free(&m);
    linear_close(&lm);
}

/* p = 1 keeps every cell: every mask is 1, every masked input is x, the map is f(x). */
Test(rise, p_one_gives_fx_everywhere) {
    cnn_open();
    sal_explain_opts o = sal_explain_opts_default(SAL_M_RISE);
    o.rise_masks = 10;
    o.rise_p = 1.0f;
    sal_maps m;
    cr_assert_eq(sal_explain(cnn_s, &o, cnn_x, 2, 0, 0, cnn_t, &m), SAL_OK, "%s", sal_session_error(cnn_s));
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < CNN_PER; j++)
            if (fabsf(m.attr[i * CNN_PER + j] - m.scores[i]) > 1e-5f * fmaxf(1, fabsf(m.scores[i])))
                cr_assert_fail("image %d element %d: %g, f(x) = %g", i, j, m.attr[i * CNN_PER + j], m.scores[i]);
    sal_maps_free(&m);
    cnn_close();
}

Test(rise, same_seed_same_map_different_seed_different) {
    cnn_open();
    sal_explain_opts o = sal_explain_opts_default(SAL_M_RISE);
    o.rise_masks = 40;
    check_determinism(o);
    sal_maps m;
    cr_assert_eq(sal_explain(cnn_s, &o, cnn_x, 2, 0, 0, cnn_t, &m), SAL_OK);
    expect_same_on_channels(&m);
    sal_maps_free(&m);
    cnn_close();
}

/* ------------------------------------------------------------------------------------------------ */
/* GradientSHAP                                                                                     */

TestSuite(gradshap, .timeout = 120);

/* One baseline and no noise: the gradient of a linear model is W at every point, so each sample
 * is W * (x - b) whatever alpha. */
Test(gradshap, linear_model_one_baseline_no_noise_is_exact) {
    uint64_t rng = tu_fresh_seed();
    const int C = 3, H = 9, W = 7;
    const int64_t per = C * H * W;
    linear_model lm;
    linear_open(&lm, C, H, W, &rng, -0.2f);
    float x[2 * 3 * 9 * 7], b[3 * 9 * 7];
    tu_fill(x, 2 * per, &rng, -2, 2);
    tu_fill(b, per, &rng, -1, 1);
    sal_explain_opts o = sal_explain_opts_default(SAL_M_GRADSHAP);
    o.shap_samples = 7;
    o.batch = 3;
    o.shap_baselines = b;
    o.shap_n_baselines = 1;
    int tg[2] = {0, 0};
    sal_maps m;
    cr_assert_eq(sal_explain(lm.s, &o, x, 2, 0, 0, tg, &m), SAL_OK, "%s", sal_session_error(lm.s));
    for (int i = 0; i < 2; i++) {
        cr_expect_float_eq(m.scores[i], linear_f(&lm, x + i * per, per), 1e-4);
        for (int64_t j = 0; j < per; j++) {
            double want = (double)lm.w[j] * (x[i * per + j] - b[j]);
            cr_expect_float_eq(m.attr[i * per + j], want, 1e-5 * fmax(1, fabs(want)), "image %d element %lld", i, (long long)j);
        }
    }
    sal_maps_free(&m);
    linear_close(&lm);
}

/* Captum's GradientShap multiplies by (x_noisy - b), x_noisy being NoiseTunnel's noisy input:
 * on a linear model with one baseline each sample is W * (x + noise_j - b), so the map is
 * W * (x - b + mean_j noise_j) with the noise recomputed here from the shared generator. */
Test(gradshap, linear_model_uses_the_noisy_input) {
    uint64_t rng = tu_fresh_seed();
    const int C = 1, H = 8, W = 8, S = 9;
    const int64_t per = C * H * W;
    linear_model lm;
    linear_open(&lm, C, H, W, &rng, 0.0f);
    float x[2 * 8 * 8], b[8 * 8];
    tu_fill(x, 2 * per, &rng, -1, 1);
    tu_fill(b, per, &rng, -1, 1);
    sal_explain_opts o = sal_explain_opts_default(SAL_M_GRADSHAP);
    o.shap_samples = S;
    o.shap_stdev = 0.5f;
    o.shap_baselines = b;
    o.shap_n_baselines = 1;
    o.seed = 21;
    o.batch = 4;
    int tg[2] = {0, 0};
    sal_maps m;
    cr_assert_eq(sal_explain(lm.s, &o, x, 2, 0, 0, tg, &m), SAL_OK, "%s", sal_session_error(lm.s));
    double noise_effect = 0;
    for (int i = 0; i < 2; i++)
        for (int64_t j = 0; j < per; j++) {
            double diff = 0;
            for (int k = 0; k < S; k++)
                diff += (double)sal_gradshap_noisy(o.seed, (uint32_t)i, (uint32_t)k, (uint64_t)j, x[i * per + j], o.shap_stdev) - b[j];
            double want = lm.w[j] * diff / S;
            noise_effect = fmax(noise_effect, fabs(want - (double)lm.w[j] * (x[i * per + j] - b[j])));
            cr_expect_float_eq(m.attr[i * per + j], want, 1e-5 * fmax(1, fabs(want)), "image %d element %lld", i, (long long)j);
        }
    cr_expect_gt(noise_effect, 1e-3, "the noise had no effect");
    sal_maps_free(&m);
    linear_close(&lm);
}

/* Default baselines (zeros and the preprocessed black), noise stdev sd: one sample is
 * W * (x + noise - b) with b uniform over the two, so its mean is W * (x - black/2) and its
 * standard deviation |W| sqrt(black^2/4 + sd^2); the mean of S samples is within 6 of those
 * over sqrt(S) of the expectation. */
Test(gradshap, linear_model_expectation_with_noise_and_two_baselines) {
    uint64_t rng = tu_fresh_seed();
    const int C = 3, H = 6, W = 5, S = 600;
    const int64_t hw = H * W, per = C * hw;
    const float sd = 0.4f;
    linear_model lm;
    linear_open(&lm, C, H, W, &rng, 0.0f);
    float x[3 * 6 * 5];
    tu_fill(x, per, &rng, -2, 2);
    sal_explain_opts o = sal_explain_opts_default(SAL_M_GRADSHAP);
    o.shap_samples = S;
    o.shap_stdev = sd;
    o.batch = 64;
    o.seed = 3;
    int tg = 0;
    sal_maps m;
    cr_assert_eq(sal_explain(lm.s, &o, x, 1, 0, 0, &tg, &m), SAL_OK, "%s", sal_session_error(lm.s));
    for (int64_t j = 0; j < per; j++) {
        double blk = o.black_value[j / hw];
        double want = lm.w[j] * (x[j] - blk / 2);
        double bound = 6 * fabs(lm.w[j]) * sqrt(blk * blk / 4 + (double)sd * sd) / sqrt((double)S) + 1e-6;
        cr_expect_lt(fabs(m.attr[j] - want), bound, "element %lld: %g, expected %g within %g", (long long)j, m.attr[j], want, bound);
    }
    sal_maps_free(&m);
    linear_close(&lm);
}

Test(gradshap, same_seed_same_map_different_seed_different) {
    cnn_open();
    sal_explain_opts o = sal_explain_opts_default(SAL_M_GRADSHAP);
    o.shap_samples = 12;
    o.shap_stdev = 0.1f;
    check_determinism(o);
    cnn_close();
}

/* ------------------------------------------------------------------------------------------------ */
/* KernelSHAP                                                                                       */

TestSuite(kernelshap, .timeout = 120);

/* Coalition sizes follow the Shapley kernel's size distribution (M-1)/(k(M-k)) normalized, and
 * each coalition has exactly k distinct features. */
Test(kernelshap, coalition_sizes_follow_the_shapley_kernel) {
    const int M = 10, L = 20000;
    int perm[10], count[10] = {0};
    unsigned char z[10];
    double total = 0;
    for (int k = 1; k < M; k++) total += 1.0 / (k * (M - k));
    for (int l = 0; l < L; l++) {
        int k = sal_kshap_coalition(9, 1, (uint32_t)l, M, perm, z);
        int ones = 0;
        for (int j = 0; j < M; j++) ones += z[j];
        cr_assert(k >= 1 && k <= M - 1 && ones == k, "coalition %d: size %d, %d present", l, k, ones);
        count[k]++;
    }
    for (int k = 1; k < M; k++) {
        double p = 1.0 / (k * (M - k)) / total, sdv = sqrt(p * (1 - p) / L);
        cr_expect_lt(fabs((double)count[k] / L - p), 5 * sdv, "size %d: %g, expected %g", k, (double)count[k] / L, p);
    }
}

/* Efficiency on the CNN for each baseline: sum of the feature values = f(x) - f(baseline), as
 * delta and completeness report; each grid cell carries one value on every channel. */
Test(kernelshap, efficiency_on_the_cnn) {
    cnn_open();
    static const sal_baseline bases[] = {SAL_BASELINE_ZERO, SAL_BASELINE_BLACK, SAL_BASELINE_BLUR};
    for (size_t t = 0; t < 3; t++) {
        sal_explain_opts o = sal_explain_opts_default(SAL_M_KERNELSHAP);
        o.baseline = bases[t];
        o.kshap_grid = 4;
        o.kshap_coalitions = 100;
        o.blur_radius = 3;
        sal_maps m;
        cr_assert_eq(sal_explain(cnn_s, &o, cnn_x, 2, 0, 0, cnn_t, &m), SAL_OK, "%s", sal_session_error(cnn_s));
        cr_assert(m.delta && m.completeness);
        expect_same_on_channels(&m);
        for (int i = 0; i < 2; i++) {
            /* f(baseline) from the model directly */
            float b[CNN_PER], lg[10], lx[10];
            const float *xi = cnn_x + i * CNN_PER;
            if (bases[t] == SAL_BASELINE_ZERO) memset(b, 0, sizeof b);
            else if (bases[t] == SAL_BASELINE_BLACK) for (int j = 0; j < CNN_PER; j++) b[j] = o.black_value[j / 1024];
            else sal_box_blur(xi, 3, 32, 32, 3, b);
            cr_assert_eq(sal_forward(cnn_s, b, 1, 32, 32, lg), SAL_OK);
            cr_assert_eq(sal_forward(cnn_s, xi, 1, 32, 32, lx), SAL_OK);
            double delta = (double)lx[cnn_t[i]] - lg[cnn_t[i]], sum = 0;
            cr_expect_float_eq(m.delta[i], delta, 1e-4 * fmax(1, fabs(delta)), "baseline %d image %d", bases[t], i);
            /* 4x4 cells of 8x8 pixels: one value per cell */
            for (int gy = 0; gy < 4; gy++)
                for (int gx = 0; gx < 4; gx++) {
                    float v = m.attr[i * CNN_PER + gy * 8 * 32 + gx * 8];
                    for (int y = gy * 8; y < gy * 8 + 8; y++)
                        for (int x = gx * 8; x < gx * 8 + 8; x++)
                            cr_assert(m.attr[i * CNN_PER + y * 32 + x] == v, "cell (%d,%d) not constant", gy, gx);
                    sum += v;
                }
            cr_expect_lt(fabs(sum - delta), 1e-4 * fmax(1, fabs(delta)), "baseline %d image %d: sum %g, delta %g", bases[t], i, sum, delta);
            cr_expect_lt(m.completeness[i], 1e-4 * fmax(1, fabs(delta)));
        }
        sal_maps_free(&m);
    }
    cnn_close();
}

/* Exact Shapley values of an additive model with grid features of uneven sizes (13x11 on a
 * 4x4 grid: the last row/column of cells absorbs the remainders). */
Test(kernelshap, linear_model_gives_exact_shapley_values_on_the_grid) {
    uint64_t rng = tu_fresh_seed();
    const int C = 2, H = 13, W = 11, g = 4;
    const int64_t hw = H * W, per = C * hw;
    linear_model lm;
    linear_open(&lm, C, H, W, &rng, 0.7f);
    float x[2 * 13 * 11];
    tu_fill(x, per, &rng, -1, 1);
    static const sal_baseline bases[] = {SAL_BASELINE_ZERO, SAL_BASELINE_BLUR, SAL_BASELINE_USER};
    float user[2 * 13 * 11];
    tu_fill(user, per, &rng, -1, 1);
    for (size_t t = 0; t < 3; t++) {
        sal_explain_opts o = sal_explain_opts_default(SAL_M_KERNELSHAP);
        o.kshap_grid = g;
        o.kshap_coalitions = 60;
        o.baseline = bases[t];
        o.baseline_data = user;
        o.blur_radius = 2;
        o.batch = 7;
        int tg = 0;
        sal_maps m;
        cr_assert_eq(sal_explain(lm.s, &o, x, 1, 0, 0, &tg, &m), SAL_OK, "%s", sal_session_error(lm.s));
        float b[2 * 13 * 11];
        if (bases[t] == SAL_BASELINE_ZERO) memset(b, 0, sizeof b);
        else if (bases[t] == SAL_BASELINE_BLUR) sal_box_blur(x, C, H, W, 2, b);
        else memcpy(b, user, sizeof b);
        double want[16] = {0}, mx = 0;
        for (int c = 0; c < C; c++)
            for (int y = 0; y < H; y++)
                for (int xx = 0; xx < W; xx++) {
                    int gy = y / (H / g), gx = xx / (W / g);
                    if (gy > g - 1) gy = g - 1;
                    if (gx > g - 1) gx = g - 1;
                    int64_t j = c * hw + y * W + xx;
                    want[gy * g + gx] += (double)lm.w[j] * (x[j] - b[j]);
                }
        for (int f = 0; f < 16; f++) mx = fmax(mx, fabs(want[f]));
        for (int c = 0; c < C; c++)
            for (int y = 0; y < H; y++)
                for (int xx = 0; xx < W; xx++) {
                    int gy = y / (H / g), gx = xx / (W / g);
                    if (gy > g - 1) gy = g - 1;
                    if (gx > g - 1) gx = g - 1;
                    double got = m.attr[c * hw + y * W + xx];
                    cr_expect_lt(fabs(got - want[gy * g + gx]), 1e-4 * fmax(mx, 1), "baseline %d pixel (%d,%d) cell (%d,%d): %g vs %g",
                                 bases[t], y, xx, gy, gx, got, want[gy * g + gx]);
                }
        sal_maps_free(&m);
    }
    linear_close(&lm);
}

/* Superpixels: a partition of the image into 1..K labels that follows a sharp colour edge; on an
 * additive model KernelSHAP over them gives the sum of W * (x - b) over each superpixel. */
Test(kernelshap, superpixels_partition_follow_edges_and_give_exact_values) {
    uint64_t rng = tu_fresh_seed();
    const int C = 3, H = 24, W = 20, K = 12;
    const int64_t hw = H * W;
    /* two flat halves (left 0.1, right 0.9 on every channel) plus small noise */
    float x[3 * 24 * 20];
    for (int c = 0; c < C; c++)
        for (int y = 0; y < H; y++)
            for (int xx = 0; xx < W; xx++)
                x[c * hw + y * W + xx] = (xx < 9 ? 0.1f : 0.9f) + tu_uniform(&rng, -0.02f, 0.02f);
    int labels[24 * 20], M = 0;
    cr_assert_eq(sal_kshap_superpixels(x, C, H, W, K, labels, &M), SAL_OK);
    cr_expect(M >= 2 && M <= K, "M = %d", M);
    int *seen = calloc((size_t)M, sizeof(int)), side[64];
    for (int f = 0; f < 64; f++) side[f] = -1;
    for (int64_t j = 0; j < hw; j++) {
        cr_assert(labels[j] >= 0 && labels[j] < M);
        seen[labels[j]] = 1;
        int sd = (j % W) < 9;
        if (side[labels[j]] < 0) side[labels[j]] = sd;
        cr_expect_eq(side[labels[j]], sd, "superpixel %d straddles the edge", labels[j]);
    }
    for (int f = 0; f < M; f++) cr_expect(seen[f], "label %d unused", f);
    free(seen);

    linear_model lm;
    linear_open(&lm, C, H, W, &rng, 0.0f);
    sal_explain_opts o = sal_explain_opts_default(SAL_M_KERNELSHAP);
    o.kshap_superpixels = K;
    o.kshap_coalitions = 50;
    int tg = 0;
    sal_maps m;
    cr_assert_eq(sal_explain(lm.s, &o, x, 1, 0, 0, &tg, &m), SAL_OK, "%s", sal_session_error(lm.s));
    double want[64] = {0}, mx = 0;
    for (int c = 0; c < C; c++)
        for (int64_t j = 0; j < hw; j++) want[labels[j]] += (double)lm.w[c * hw + j] * x[c * hw + j];   /* zero baseline */
    for (int f = 0; f < M; f++) mx = fmax(mx, fabs(want[f]));
    for (int c = 0; c < C; c++)
        for (int64_t j = 0; j < hw; j++)
            cr_expect_lt(fabs(m.attr[c * hw + j] - want[labels[j]]), 1e-4 * fmax(mx, 1), "pixel %lld", (long long)j);
    cr_expect_lt(m.completeness[0], 1e-4 * fmax(1, fabs(m.delta[0])));
    sal_maps_free(&m);
    linear_close(&lm);
}

/* A feature equal to the baseline cannot change f: it gets exactly 0 (shap's varying features). */
Test(kernelshap, features_equal_to_the_baseline_get_zero) {
    cnn_open();
    float x[CNN_PER];
    memcpy(x, cnn_x, sizeof x);
    for (int c = 0; c < 3; c++)   /* zero the top-left 16x16 cell of a 2x2 grid */
        for (int y = 0; y < 16; y++)
            for (int xx = 0; xx < 16; xx++) x[c * 1024 + y * 32 + xx] = 0;
    sal_explain_opts o = sal_explain_opts_default(SAL_M_KERNELSHAP);
    o.kshap_grid = 2;
    o.kshap_coalitions = 20;
    sal_maps m;
    cr_assert_eq(sal_explain(cnn_s, &o, x, 1, 0, 0, cnn_t, &m), SAL_OK, "%s", sal_session_error(cnn_s));
    cr_expect(m.attr[0] == 0.0f, "the cell equal to the baseline got %g", m.attr[0]);
    cr_expect_lt(m.completeness[0], 1e-4 * fmax(1, fabs(m.delta[0])));
    sal_maps_free(&m);
    cnn_close();
}

Test(kernelshap, same_seed_same_map_different_seed_different) {
    cnn_open();
    sal_explain_opts o = sal_explain_opts_default(SAL_M_KERNELSHAP);
    o.kshap_grid = 4;
    o.kshap_coalitions = 40;
    check_determinism(o);
    o.kshap_superpixels = 16;
    check_determinism(o);
    cnn_close();
}

/* ------------------------------------------------------------------------------------------------ */
/* Options                                                                                          */

static void expect_refused(sal_explain_opts o, const char *word) {
    sal_maps m;
    sal_status st = sal_explain(cnn_s, &o, cnn_x, 1, 0, 0, cnn_t, &m);
    cr_expect_eq(st, SAL_ERR_INVALID_ARG, "%s: expected a refusal naming '%s', got %s", sal_method_name(o.method), word,
                 sal_status_str(st));
    if (st == SAL_OK) sal_maps_free(&m);
    else cr_expect(strstr(sal_session_error(cnn_s), word), "message '%s' does not name '%s'", sal_session_error(cnn_s), word);
}

Test(options, bad_options_are_refused_with_the_option_named) {
    cnn_open();
    sal_explain_opts o = sal_explain_opts_default(SAL_M_RISE);
    o.rise_masks = 0;
    expect_refused(o, "masks");
    o = sal_explain_opts_default(SAL_M_RISE);
    o.rise_grid = 0;
    expect_refused(o, "grid");
    o = sal_explain_opts_default(SAL_M_RISE);
    o.rise_p = 0;
    expect_refused(o, "rise_p");
    o.rise_p = 1.5f;
    expect_refused(o, "rise_p");
    o = sal_explain_opts_default(SAL_M_GRADSHAP);
    o.shap_samples = 0;
    expect_refused(o, "samples");
    o = sal_explain_opts_default(SAL_M_GRADSHAP);
    o.shap_stdev = -1;
    expect_refused(o, "stdev");
    o = sal_explain_opts_default(SAL_M_GRADSHAP);
    o.shap_baselines = cnn_x;
    o.shap_n_baselines = 0;
    expect_refused(o, "shap_n_baselines");
    o = sal_explain_opts_default(SAL_M_KERNELSHAP);
    o.kshap_grid = 0;
    expect_refused(o, "grid");
    o.kshap_grid = 33;   /* larger than the 32x32 input */
    expect_refused(o, "grid");
    o = sal_explain_opts_default(SAL_M_KERNELSHAP);
    o.kshap_coalitions = 63;   /* 8x8 = 64 features */
    expect_refused(o, "coalitions");
    o = sal_explain_opts_default(SAL_M_KERNELSHAP);
    o.kshap_superpixels = 50;
    o.kshap_coalitions = 20;
    expect_refused(o, "coalitions");
    o.kshap_superpixels = -1;
    expect_refused(o, "superpixels");
    o = sal_explain_opts_default(SAL_M_KERNELSHAP);
    o.baseline = SAL_BASELINE_USER;
    expect_refused(o, "baseline");
    cnn_close();
}
