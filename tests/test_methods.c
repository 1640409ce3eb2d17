/* test_methods.c — attribution methods against Captum and pytorch-grad-cam: the fixtures in
 * tests/fixtures/methods/ were written by scripts/make-method-fixtures.py from the same compact
 * CNN (tinycnn.onnx) and inputs, and the maps here must match them within the float32 noise the
 * script measured (README there). Also the methods' defining properties: IG completeness, the
 * noise tunnel's seed determinism and convergence, occlusion exactness on a linear model and
 * coverage for any window and stride, and bad options. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"
#include "io/io.h"
#include "method_elem.h"
#include "methods/methods.h"
#include "testutil.h"

#define FIX "tests/fixtures/methods/"

static sal_model *model;
static sal_session *sess;
static float *input;     /* (2,3,32,32) */
static int targets[2];

static void load(void) {
    char path[1024];
    sal_error err = {0};
    cr_assert_eq(sal_model_load(tu_src_path(FIX "tinycnn.onnx", path, sizeof path), &model, &err), SAL_OK, "%s", err.msg);
    sal_session_opts o = sal_session_opts_default();
    o.device = SAL_DEVICE_CPU;
    cr_assert_eq(sal_session_create(model, &o, &sess, &err), SAL_OK, "%s", err.msg);
    int nd;
    int64_t d[SAL_MAX_DIMS];
    cr_assert_eq(sal_npy_read(tu_src_path(FIX "input.npy", path, sizeof path), &input, &nd, d, &err), SAL_OK, "%s", err.msg);
    cr_assert(nd == 4 && d[0] == 2 && d[1] == 3 && d[2] == 32 && d[3] == 32);
    /* targets.npy is int64 (2,): the last 16 bytes of the file */
    FILE *f = fopen(tu_src_path(FIX "targets.npy", path, sizeof path), "rb");
    cr_assert(f);
    int64_t t[2];
    fseek(f, -16, SEEK_END);
    cr_assert_eq(fread(t, 8, 2, f), 2);
    fclose(f);
    targets[0] = (int)t[0];
    targets[1] = (int)t[1];
}

static void unload(void) {
    sal_session_free(sess);
    sal_model_free(model);
    free(input);
}

/* Max |a - b| over max |b| (relative to the reference map's scale). */
static double rel_err(const float *a, const float *b, int64_t n) { return tu_rel_diff(a, b, n, 1e-12); }

static float *fixture(const char *name, int64_t expect_n) {
    char rel[256], path[1024];
    snprintf(rel, sizeof rel, FIX "%s", name);
    float *data = NULL;
    int nd;
    int64_t d[SAL_MAX_DIMS];
    sal_error err = {0};
    cr_assert_eq(sal_npy_read(tu_src_path(rel, path, sizeof path), &data, &nd, d, &err), SAL_OK, "%s", err.msg);
    int64_t n = 1;
    for (int i = 0; i < nd; i++) n *= d[i];
    cr_assert_eq(n, expect_n, "%s has %lld elements, expected %lld", name, (long long)n, (long long)expect_n);
    return data;
}

/* Run a method on both images with the fixture targets; compare attr (and the CAM final map). */
static void check(sal_explain_opts o, const char *ref, const char *ref_final, double tol) {
    sal_maps m;
    cr_assert_eq(sal_explain(sess, &o, input, 2, 0, 0, targets, &m), SAL_OK, "%s", sal_session_error(sess));
    int64_t per = sal_maps_per_image(&m);
    float *want = fixture(ref, 2 * per);
    double e = rel_err(m.attr, want, 2 * per);
    cr_expect_lt(e, tol, "%s (%s): max error %.3g of the map's max (tolerance %.1g)",
                 sal_method_name(o.method), ref, e, tol);
    free(want);
    if (ref_final) {
        float *fin = fixture(ref_final, 2 * 32 * 32);
        double ef = rel_err(m.upsampled, fin, 2 * 32 * 32);
        cr_expect_lt(ef, 1e-4, "%s final map: max error %.3g", sal_method_name(o.method), ef);
        free(fin);
    }
    sal_maps_free(&m);
}

TestSuite(methods, .init = load, .fini = unload, .timeout = 300);

/* ------------------------------------------------------------------------------------------------ */
/* Against Captum                                                                                   */

Test(methods, saliency_matches_captum) { check(sal_explain_opts_default(SAL_M_SALIENCY), "saliency.npy", NULL, 1e-4); }
Test(methods, inputxgrad_matches_captum) { check(sal_explain_opts_default(SAL_M_INPUTXGRAD), "inputxgrad.npy", NULL, 1e-4); }
Test(methods, guided_backprop_matches_captum) { check(sal_explain_opts_default(SAL_M_GUIDED), "guided.npy", NULL, 1e-4); }

Test(methods, ig_rules_match_captum) {
    /* IG sums 50 float32 gradients along a path that crosses ReLU kinks: the script measured up
     * to 9e-4 of the max between float32 and float64 runs, hence 5e-3 */
    static const char *names[] = {"ig_gausslegendre_zero.npy", "ig_riemann_left_zero.npy",
                                  "ig_riemann_right_zero.npy", "ig_riemann_middle_zero.npy",
                                  "ig_riemann_trapezoid_zero.npy"};
    for (int r = 0; r < 5; r++) {
        sal_explain_opts o = sal_explain_opts_default(SAL_M_IG);
        o.ig_rule = (sal_ig_rule)r;
        check(o, names[r], NULL, 5e-3);
    }
}

Test(methods, ig_black_and_user_baselines_match_captum) {
    sal_explain_opts o = sal_explain_opts_default(SAL_M_IG);
    o.baseline = SAL_BASELINE_BLACK;   /* ImageNet preprocessing of black, as the script used */
    check(o, "ig_gausslegendre_black.npy", NULL, 5e-3);
    /* a user baseline per image: explain each image with its own */
    float *base = fixture("ig_baseline_uniform.npy", 2 * 3 * 32 * 32);
    float *want = fixture("ig_gausslegendre_uniform.npy", 2 * 3 * 32 * 32);
    for (int i = 0; i < 2; i++) {
        sal_explain_opts u = sal_explain_opts_default(SAL_M_IG);
        u.baseline = SAL_BASELINE_USER;
        u.baseline_data = base + i * 3 * 32 * 32;
        sal_maps m;
        cr_assert_eq(sal_explain(sess, &u, input + i * 3 * 32 * 32, 1, 0, 0, &targets[i], &m), SAL_OK, "%s", sal_session_error(sess));
        double e = rel_err(m.attr, want + i * 3 * 32 * 32, 3 * 32 * 32);
        cr_expect_lt(e, 5e-3, "ig user baseline, image %d: error %.3g", i, e);
        sal_maps_free(&m);
    }
    free(base);
    free(want);
}

Test(methods, occlusion_matches_captum) {
    sal_explain_opts o = sal_explain_opts_default(SAL_M_OCCLUSION);   /* 15x15, stride 8, fill 0 */
    check(o, "occlusion_w15_s8.npy", NULL, 1e-4);
    o.occ_h = o.occ_w = 5;
    o.occ_stride_h = o.occ_stride_w = 3;
    check(o, "occlusion_w5_s3.npy", NULL, 1e-4);
}

Test(methods, guided_gradcam_matches_captum) {
    sal_explain_opts o = sal_explain_opts_default(SAL_M_GUIDED_GRADCAM);
    o.layer = "cam.relu";
    check(o, "guided_gradcam.npy", NULL, 1e-4);
}

/* ------------------------------------------------------------------------------------------------ */
/* Against pytorch-grad-cam: the layer map (after ReLU) and the final normalized, upsampled map    */

Test(methods, cam_family_matches_pytorch_grad_cam) {
    static const struct { sal_method m; const char *layer_ref, *final_ref; } cases[] = {
        {SAL_M_GRADCAM, "gradcam_layer.npy", "gradcam.npy"},
        {SAL_M_GRADCAMPP, "gradcampp_layer.npy", "gradcampp.npy"},
        {SAL_M_HIRESCAM, "hirescam_layer.npy", "hirescam.npy"},
        {SAL_M_XGRADCAM, "xgradcam_layer.npy", "xgradcam.npy"},
        {SAL_M_LAYERCAM, "layercam_layer.npy", "layercam.npy"},
        {SAL_M_SCORECAM, "scorecam_layer.npy", "scorecam.npy"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        sal_explain_opts o = sal_explain_opts_default(cases[k].m);
        o.layer = "cam.relu";
        check(o, cases[k].layer_ref, cases[k].final_ref, 1e-4);
    }
}

Test(methods, default_cam_layer_is_last_spatial_layer) {
    sal_explain_opts o = sal_explain_opts_default(SAL_M_GRADCAM);
    sal_maps m;
    cr_assert_eq(sal_explain(sess, &o, input, 1, 0, 0, targets, &m), SAL_OK, "%s", sal_session_error(sess));
    /* head.relu is the last node with a 4-D output larger than 1x1 (16x16) */
    cr_expect_str_eq(m.layer, "head.relu");
    cr_expect(m.dims[0] == 16 && m.dims[1] == 16);
    sal_maps_free(&m);
}

/* ------------------------------------------------------------------------------------------------ */
/* Properties                                                                                       */

Test(methods, ig_completeness_and_reported_gap) {
    sal_explain_opts o = sal_explain_opts_default(SAL_M_IG);
    sal_maps m;
    cr_assert_eq(sal_explain(sess, &o, input, 2, 0, 0, targets, &m), SAL_OK, "%s", sal_session_error(sess));
    for (int i = 0; i < 2; i++) {
        double sum = 0;
        for (int j = 0; j < 3 * 32 * 32; j++) sum += m.attr[i * 3 * 32 * 32 + j];
        cr_expect_float_eq(m.completeness[i], fabs(sum - m.delta[i]), 1e-4 * fmax(1, fabs(m.delta[i])));
        cr_expect_lt(m.completeness[i], 0.05 * fabs(m.delta[i]), "image %d: gap %g of delta %g", i, m.completeness[i], m.delta[i]);
    }
    sal_maps_free(&m);
}

/* The automatic internal batch: as many images as the gradient plan's per-image memory allows in
 * the budget, capped, at least one; an explanation with it equals one with a fixed batch. */
Test(methods, auto_batch_fits_the_memory_budget) {
    int b = 0;
    size_t per = 0, fixed = 0;
    cr_assert_eq(sal_session_auto_batch(sess, 0, 0, (size_t)1 << 40, 0, &b, &per, &fixed), SAL_OK, "%s",
                 sal_session_error(sess));
    cr_expect_eq(b, 16, "CPU cap is 16, got %d", b);
    cr_expect_gt(per, 3 * 32 * 32 * sizeof(float), "a gradient plan needs more than the input: %zu bytes", per);
    cr_assert_eq(sal_session_auto_batch(sess, 0, 0, fixed + per * 7 / 2, 0, &b, NULL, NULL), SAL_OK);
    cr_expect_eq(b, 3, "3.5 images' worth of memory gave batch %d", b);
    cr_assert_eq(sal_session_auto_batch(sess, 0, 0, per / 2, 0, &b, NULL, NULL), SAL_OK);
    cr_expect_eq(b, 1, "less than one image's worth still runs one at a time, got %d", b);
    cr_assert_eq(sal_session_auto_batch(sess, 0, 0, (size_t)1 << 40, 5, &b, NULL, NULL), SAL_OK);
    cr_expect_eq(b, 5);
    /* with half the memory the backend reports free (plenty here): the cap or less */
    cr_assert_eq(sal_session_auto_batch(sess, 0, 0, 0, 0, &b, NULL, NULL), SAL_OK, "%s", sal_session_error(sess));
    cr_expect(b >= 1 && b <= 16);

    sal_explain_opts o = sal_explain_opts_default(SAL_M_IG);
    o.batch = 0;
    sal_maps a, c;
    cr_assert_eq(sal_explain(sess, &o, input, 2, 0, 0, targets, &a), SAL_OK, "%s", sal_session_error(sess));
    cr_expect_eq(a.batch, b, "explain used batch %d, auto batch says %d", a.batch, b);
    o.batch = 7;
    cr_assert_eq(sal_explain(sess, &o, input, 2, 0, 0, targets, &c), SAL_OK, "%s", sal_session_error(sess));
    cr_expect_eq(c.batch, 7);
    cr_expect_lt(rel_err(a.attr, c.attr, 2 * 3 * 32 * 32), 1e-5);
    sal_maps_free(&a);
    sal_maps_free(&c);
}

/* Out of memory (here: the session's mem_limit) mid-explanation: the internal batch halves until
 * it fits and the maps are the same; a limit that not even one image fits is a clear error. */
Test(methods, out_of_memory_retries_with_smaller_batches) {
    int b;
    size_t per = 0, fixed = 0;
    cr_assert_eq(sal_session_auto_batch(sess, 0, 0, (size_t)1 << 40, 0, &b, &per, &fixed), SAL_OK);
    sal_session_opts so = sal_session_opts_default();
    so.device = SAL_DEVICE_CPU;
    so.mem_limit = fixed + per * 7 / 2;   /* 3 images' gradient plan fits, 4 do not */
    sal_session *lim = NULL;
    sal_error err = {0};
    cr_assert_eq(sal_session_create(model, &so, &lim, &err), SAL_OK, "%s", err.msg);
    sal_explain_opts o = sal_explain_opts_default(SAL_M_IG);
    o.ig_steps = 20;
    o.batch = 16;
    sal_maps a, c;
    cr_assert_eq(sal_explain(lim, &o, input, 2, 0, 0, targets, &a), SAL_OK, "%s", sal_session_error(lim));
    cr_expect(a.batch >= 1 && a.batch <= 3, "batch after the retries: %d", a.batch);
    o.batch = 3;
    cr_assert_eq(sal_explain(sess, &o, input, 2, 0, 0, targets, &c), SAL_OK, "%s", sal_session_error(sess));
    cr_expect_lt(rel_err(a.attr, c.attr, 2 * 3 * 32 * 32), 1e-5);
    /* automatic batch under the limit: at most what fits */
    cr_assert_eq(sal_session_auto_batch(lim, 0, 0, 0, 0, &b, NULL, NULL), SAL_OK);
    cr_expect_eq(b, 3, "auto batch under a 3.5-image limit: %d", b);
    sal_maps_free(&a);
    sal_maps_free(&c);
    /* the top-1 pass halves too: 16 images' forward pass at o.batch 16 does not fit either */
    enum { N16 = 16, PER = 3 * 32 * 32 };
    float *x16 = malloc(sizeof(float) * N16 * PER);
    for (int k = 0; k < N16; k++)
        for (int j = 0; j < PER; j++) x16[k * PER + j] = (k % 4 < 2 ? 1.0f : -1.0f) * (1.0f + 0.1f * (float)(k / 4)) * input[(k % 2) * PER + j];
    o = sal_explain_opts_default(SAL_M_SALIENCY);
    o.batch = N16;
    cr_assert_eq(sal_explain(lim, &o, x16, N16, 0, 0, NULL, &a), SAL_OK, "%s", sal_session_error(lim));
    cr_assert_eq(sal_explain(sess, &o, x16, N16, 0, 0, NULL, &c), SAL_OK, "%s", sal_session_error(sess));
    for (int k = 0; k < N16; k++) cr_expect_eq(a.targets[k], c.targets[k], "image %d's top-1 under the limit", k);
    sal_maps_free(&a);
    sal_maps_free(&c);
    free(x16);
    sal_session_free(lim);

    so.mem_limit = fixed + per / 2;
    cr_assert_eq(sal_session_create(model, &so, &lim, &err), SAL_OK, "%s", err.msg);
    o = sal_explain_opts_default(SAL_M_SALIENCY);
    cr_expect_eq(sal_explain(lim, &o, input, 1, 0, 0, targets, &a), SAL_ERR_NOMEM);
    cr_expect(strstr(sal_session_error(lim), "limit"), "message: %s", sal_session_error(lim));
    sal_session_free(lim);
}

Test(methods, noise_tunnel_same_seed_same_maps_and_converges) {
    sal_explain_opts o = sal_explain_opts_default(SAL_M_SMOOTHGRAD);
    o.nt_samples = 8;
    o.seed = 1234;
    sal_maps a, b, c;
    cr_assert_eq(sal_explain(sess, &o, input, 1, 0, 0, targets, &a), SAL_OK, "%s", sal_session_error(sess));
    o.batch = 3;   /* another internal batching: same noise (counter-based) */
    cr_assert_eq(sal_explain(sess, &o, input, 1, 0, 0, targets, &b), SAL_OK, "%s", sal_session_error(sess));
    cr_expect_eq(memcmp(a.attr, b.attr, sizeof(float) * 3 * 32 * 32), 0, "same seed, different maps");
    o.seed = 99;
    cr_assert_eq(sal_explain(sess, &o, input, 1, 0, 0, targets, &c), SAL_OK, "%s", sal_session_error(sess));
    cr_expect_neq(memcmp(a.attr, c.attr, sizeof(float) * 3 * 32 * 32), 0, "different seeds, same maps");
    sal_maps_free(&a); sal_maps_free(&b); sal_maps_free(&c);

    /* with zero noise, SmoothGrad is the plain gradient and VarGrad is zero */
    o.nt_sigma = 0;
    o.nt_samples = 3;
    sal_explain_opts s = sal_explain_opts_default(SAL_M_SALIENCY);
    cr_assert_eq(sal_explain(sess, &o, input, 1, 0, 0, targets, &a), SAL_OK);
    cr_assert_eq(sal_explain(sess, &s, input, 1, 0, 0, targets, &b), SAL_OK);
    cr_expect_lt(rel_err(a.attr, b.attr, 3 * 32 * 32), 1e-6);
    o.method = SAL_M_VARGRAD;
    cr_assert_eq(sal_explain(sess, &o, input, 1, 0, 0, targets, &c), SAL_OK);
    for (int j = 0; j < 3 * 32 * 32; j++) cr_expect_lt(fabsf(c.attr[j]), 1e-10f);
    sal_maps_free(&a); sal_maps_free(&b); sal_maps_free(&c);

    /* the Monte-Carlo mean converges: the error against a 400-sample mean shrinks with samples */
    o.method = SAL_M_SMOOTHGRAD;
    o.nt_sigma = 0.15f;
    o.seed = 7;
    o.nt_samples = 400;
    o.batch = 32;
    sal_maps ref, few, many;
    cr_assert_eq(sal_explain(sess, &o, input, 1, 0, 0, targets, &ref), SAL_OK);
    o.seed = 8; o.nt_samples = 10;
    cr_assert_eq(sal_explain(sess, &o, input, 1, 0, 0, targets, &few), SAL_OK);
    o.seed = 9; o.nt_samples = 160;
    cr_assert_eq(sal_explain(sess, &o, input, 1, 0, 0, targets, &many), SAL_OK);
    double e_few = rel_err(few.attr, ref.attr, 3 * 32 * 32), e_many = rel_err(many.attr, ref.attr, 3 * 32 * 32);
    cr_expect_lt(e_many, e_few, "160 samples (%g) not closer to the mean than 10 (%g)", e_many, e_few);
    sal_maps_free(&ref); sal_maps_free(&few); sal_maps_free(&many);
}

/* The noise tunnel's moments against a loop written here: the same noisy copies of the image
 * (the documented Philox stream: x + sigma * sal_normal(seed, SMOOTHGRAD, image, sample, j) with
 * sigma = nt_sigma * (max - min)), each explained by the inner method on its own through the
 * public API, and the mean, mean of squares and variance taken in double. This checks the noise
 * tunnel's batch building and accumulation on the backend for every inner method and every
 * moment (Captum draws torch's noise, so its fixtures cannot check sample by sample). */
Test(methods, noise_tunnel_moments_match_a_loop_over_the_same_noisy_images) {
    enum { S = 5, PER = 3 * 32 * 32 };
    const uint64_t seed = 4242;
    static const sal_method inners[] = {SAL_M_SALIENCY, SAL_M_INPUTXGRAD, SAL_M_GUIDED, SAL_M_IG, SAL_M_IG};
    /* IG's baseline: zero (made once per image), then blur (made from each noisy sample) */
    static const sal_baseline bases[] = {SAL_BASELINE_ZERO, SAL_BASELINE_ZERO, SAL_BASELINE_ZERO, SAL_BASELINE_ZERO,
                                         SAL_BASELINE_BLUR};
    static const sal_method outers[] = {SAL_M_SMOOTHGRAD, SAL_M_SMOOTHGRAD_SQ, SAL_M_VARGRAD};
    float lo = input[0], hi = input[0];
    for (int j = 1; j < PER; j++) { lo = fminf(lo, input[j]); hi = fmaxf(hi, input[j]); }
    float sigma = sal_explain_opts_default(SAL_M_SMOOTHGRAD).nt_sigma * (hi - lo);
    static float noisy[PER], want[PER];
    static double sum[PER], sq[PER];
    for (size_t in = 0; in < sizeof inners / sizeof *inners; in++) {
        memset(sum, 0, sizeof sum);
        memset(sq, 0, sizeof sq);
        for (int s = 0; s < S; s++) {
            for (int j = 0; j < PER; j++)
                noisy[j] = input[j] + sigma * sal_normal(seed, SAL_RNG_SMOOTHGRAD, 0, (uint32_t)s, (uint64_t)j);
            sal_explain_opts io = sal_explain_opts_default(inners[in]);
            io.ig_steps = 6;
            io.baseline = bases[in];
            sal_maps m;
            cr_assert_eq(sal_explain(sess, &io, noisy, 1, 0, 0, targets, &m), SAL_OK, "%s", sal_session_error(sess));
            for (int j = 0; j < PER; j++) { sum[j] += m.attr[j]; sq[j] += (double)m.attr[j] * m.attr[j]; }
            sal_maps_free(&m);
        }
        for (size_t out = 0; out < sizeof outers / sizeof *outers; out++) {
            for (int j = 0; j < PER; j++) {
                double mean = sum[j] / S, msq = sq[j] / S;
                want[j] = (float)(out == 0 ? mean : out == 1 ? msq : msq - mean * mean);
            }
            sal_explain_opts o = sal_explain_opts_default(outers[out]);
            o.nt_inner = inners[in];
            o.baseline = bases[in];
            o.nt_samples = S;
            o.seed = seed;
            o.ig_steps = 6;
            o.batch = 2;   /* samples split over passes */
            sal_maps m;
            cr_assert_eq(sal_explain(sess, &o, input, 1, 0, 0, targets, &m), SAL_OK, "%s", sal_session_error(sess));
            double e = rel_err(m.attr, want, PER);
            cr_expect_lt(e, 1e-5, "%s with inner %s (baseline %d): relative error %g", sal_method_name(outers[out]),
                         sal_method_name(inners[in]), (int)bases[in], e);
            sal_maps_free(&m);
        }
    }
}

/* The session keeps the methods' device buffers for reuse between calls: a second call must not
 * see the first one's sums (every accumulator starts from zero) and must give the same maps. */
Test(methods, repeated_calls_give_the_same_maps) {
    static const sal_method ms[] = {SAL_M_IG, SAL_M_SMOOTHGRAD, SAL_M_OCCLUSION, SAL_M_GRADCAMPP,
                                    SAL_M_SCORECAM, SAL_M_RISE, SAL_M_GRADSHAP, SAL_M_KERNELSHAP};
    for (size_t i = 0; i < sizeof ms / sizeof *ms; i++) {
        sal_explain_opts o = tu_quick_opts(ms[i], 5);
        sal_maps a, b;
        cr_assert_eq(sal_explain(sess, &o, input, 2, 0, 0, targets, &a), SAL_OK, "%s", sal_session_error(sess));
        cr_assert_eq(sal_explain(sess, &o, input, 2, 0, 0, targets, &b), SAL_OK, "%s", sal_session_error(sess));
        int64_t n = sal_maps_per_image(&a);
        cr_expect_eq(memcmp(a.attr, b.attr, sizeof(float) * (size_t)(2 * n)), 0, "%s: the second call differs",
                     sal_method_name(ms[i]));
        sal_maps_free(&a);
        sal_maps_free(&b);
    }
}

/* Plain-gradient methods over several batches: the next batch's images are uploaded during the
 * current pass (staged, then copied into the input on the device); the maps and scores must be
 * those of one batch holding every image. */
Test(methods, images_over_several_batches_give_the_one_batch_maps) {
    static const sal_method ms[] = {SAL_M_SALIENCY, SAL_M_INPUTXGRAD, SAL_M_GUIDED};
    float *x4 = malloc(sizeof(float) * 4 * 3 * 32 * 32);
    for (int k = 0; k < 4; k++)   /* the two fixture images, then the two again negated */
        for (int j = 0; j < 3 * 32 * 32; j++) x4[k * 3 * 32 * 32 + j] = (k < 2 ? 1.0f : -1.0f) * input[(k % 2) * 3 * 32 * 32 + j];
    int top1[4];   /* each image's top-1 class from a pass of its own */
    cr_assert_eq(sal_session_plan(sess, 1, 32, 32), SAL_OK);
    const int K = sal_session_num_classes(sess);
    float *lg = malloc(sizeof(float) * (size_t)K);
    for (int k = 0; k < 4; k++) {
        cr_assert_eq(sal_forward(sess, x4 + k * 3 * 32 * 32, 1, 32, 32, lg), SAL_OK, "%s", sal_session_error(sess));
        top1[k] = 0;
        for (int j = 1; j < K; j++) if (lg[j] > lg[top1[k]]) top1[k] = j;
    }
    free(lg);
    for (size_t i = 0; i < sizeof ms / sizeof *ms; i++) {
        sal_explain_opts o = sal_explain_opts_default(ms[i]);
        sal_maps one;   /* all four in one batch: the reference */
        o.batch = 4;
        cr_assert_eq(sal_explain(sess, &o, x4, 4, 0, 0, NULL, &one), SAL_OK, "%s", sal_session_error(sess));
        for (int batch = 1; batch <= 3; batch++) {
            sal_maps many;
            o.batch = batch;
            cr_assert_eq(sal_explain(sess, &o, x4, 4, 0, 0, NULL, &many), SAL_OK, "%s", sal_session_error(sess));
            cr_expect_lt(rel_err(many.attr, one.attr, 4 * 3 * 32 * 32), 1e-6, "%s, batch %d: maps differ",
                         sal_method_name(ms[i]), batch);
            for (int k = 0; k < 4; k++)
                cr_expect(fabsf(many.scores[k] - one.scores[k]) <= 1e-5f * fmaxf(1.0f, fabsf(one.scores[k])),
                          "%s, batch %d: score %d", sal_method_name(ms[i]), batch, k);
            for (int k = 0; k < 4; k++)   /* the targets come from batched top-1 passes */
                cr_expect_eq(many.targets[k], top1[k], "%s, batch %d: image %d explained class %d, top-1 is %d",
                             sal_method_name(ms[i]), batch, k, many.targets[k], top1[k]);
            sal_maps_free(&many);
        }
        sal_maps_free(&one);
    }
    free(x4);
}

/* Top-1 targets without a separate forward pass: the methods whose first pass over an image is
 * its plain forward (the gradient ones and the CAM family) take the class from that pass's logits.
 * The reference: each image's top-1 class from sal_forward, given as targets. Maps, scores and
 * targets must be the same, and only one image's worth per image and pass may cross to the backend
 * (a separate top-1 pass uploads the image once more). Images over two batches (batch 3 of 4),
 * the last two negated, so that the classes differ. */
Test(methods, top1_targets_come_from_the_methods_own_pass) {
    static const sal_method ms[] = {SAL_M_SALIENCY, SAL_M_INPUTXGRAD, SAL_M_GUIDED, SAL_M_GRADCAM,
                                    SAL_M_GRADCAMPP, SAL_M_HIRESCAM, SAL_M_XGRADCAM, SAL_M_LAYERCAM,
                                    SAL_M_SCORECAM, SAL_M_GUIDED_GRADCAM};
    const int64_t per = 3 * 32 * 32;
    float *x4 = malloc(sizeof(float) * 4 * (size_t)per);
    for (int k = 0; k < 4; k++)
        for (int64_t j = 0; j < per; j++) x4[k * per + j] = (k < 2 ? 1.0f : -1.0f) * input[(k % 2) * per + j];
    int top1[4];
    cr_assert_eq(sal_session_plan(sess, 1, 32, 32), SAL_OK);
    const int K = sal_session_num_classes(sess);
    float *lg = malloc(sizeof(float) * (size_t)K);
    for (int k = 0; k < 4; k++) {
        cr_assert_eq(sal_forward(sess, x4 + k * per, 1, 32, 32, lg), SAL_OK, "%s", sal_session_error(sess));
        top1[k] = 0;
        for (int j = 1; j < K; j++) if (lg[j] > lg[top1[k]]) top1[k] = j;
    }
    free(lg);
    cr_assert(top1[0] != top1[2] || top1[1] != top1[3], "the negated images should change a class");
    for (size_t i = 0; i < sizeof ms / sizeof *ms; i++) {
        const char *nm = sal_method_name(ms[i]);
        sal_explain_opts o = sal_explain_opts_default(ms[i]);
        o.batch = 3;
        sal_maps given, own;
        cr_assert_eq(sal_explain(sess, &o, x4, 4, 0, 0, top1, &given), SAL_OK, "%s", sal_session_error(sess));
        uint64_t up0, down0, up1, down1;
        sal_session_transfers(sess, &up0, &down0);
        cr_assert_eq(sal_explain(sess, &o, x4, 4, 0, 0, NULL, &own), SAL_OK, "%s", sal_session_error(sess));
        sal_session_transfers(sess, &up1, &down1);
        const int64_t n = 4 * sal_maps_per_image(&given);
        for (int k = 0; k < 4; k++) {
            cr_expect_eq(own.targets[k], top1[k], "%s: image %d explained class %d, top-1 is %d", nm, k,
                         own.targets[k], top1[k]);
            cr_expect_eq(own.scores[k], given.scores[k], "%s: image %d's score %g, %g with the target given", nm,
                         k, (double)own.scores[k], (double)given.scores[k]);
        }
        cr_expect_eq(memcmp(own.attr, given.attr, sizeof(float) * (size_t)n), 0, "%s: maps differ", nm);
        double up = (double)(up1 - up0) / 4 / (double)(per * sizeof(float));
        const double passes = ms[i] == SAL_M_GUIDED_GRADCAM ? 2 : 1;   /* its CAM pass, then the guided one */
        cr_expect(up < passes + 0.5, "%s: %.2f images' worth uploaded per image for %g pass(es) (a separate top-1 pass?)",
                  nm, up, passes);
        sal_maps_free(&given);
        sal_maps_free(&own);
    }
    free(x4);
}

/* sal_explain_many: saliency, input x gradient and the gradient CAMs asked together share one
 * forward and one backward pass per image; each map must be the one sal_explain makes alone
 * (bit for bit: the same arithmetic on the same numbers), with the same targets and scores, and a
 * method that shares nothing (IG) rides along unchanged. Per image, the shared group uploads the
 * image once (separately: once per method). Targets given and top-1. */
Test(methods, methods_asked_together_share_passes_and_give_the_separate_maps) {
    static const sal_method ms[] = {SAL_M_GRADCAM, SAL_M_SALIENCY, SAL_M_IG, SAL_M_GRADCAMPP, SAL_M_INPUTXGRAD,
                                    SAL_M_HIRESCAM, SAL_M_XGRADCAM, SAL_M_LAYERCAM};
    const int nm = (int)(sizeof ms / sizeof *ms);
    const int64_t per = 3 * 32 * 32;
    float *x4 = malloc(sizeof(float) * 4 * (size_t)per);
    for (int k = 0; k < 4; k++)
        for (int64_t j = 0; j < per; j++) x4[k * per + j] = (k < 2 ? 1.0f : -1.0f) * input[(k % 2) * per + j];
    const int given[4] = {1, 4, 7, 9};
    for (int with_targets = 0; with_targets < 2; with_targets++) {
        sal_explain_opts o = tu_quick_opts(SAL_M_SALIENCY, 3);
        o.batch = 3;
        const int *tg = with_targets ? given : NULL;
        sal_maps many[8];
        cr_assert_eq(sal_explain_many(sess, &o, ms, nm, x4, 4, 0, 0, tg, many), SAL_OK, "%s", sal_session_error(sess));
        for (int j = 0; j < nm; j++) {
            const char *nmj = sal_method_name(ms[j]);
            sal_explain_opts oj = o;
            oj.method = ms[j];
            sal_maps one;
            cr_assert_eq(sal_explain(sess, &oj, x4, 4, 0, 0, tg, &one), SAL_OK, "%s", sal_session_error(sess));
            cr_assert_eq(many[j].ndim, one.ndim, "%s", nmj);
            const int64_t n = 4 * sal_maps_per_image(&one);
            cr_assert_eq(sal_maps_per_image(&many[j]), sal_maps_per_image(&one), "%s", nmj);
            cr_expect_eq(memcmp(many[j].attr, one.attr, sizeof(float) * (size_t)n), 0,
                         "%s (targets %s): maps differ from sal_explain's, max rel %.3g", nmj,
                         with_targets ? "given" : "top-1", rel_err(many[j].attr, one.attr, n));
            if (one.upsampled)
                cr_expect_eq(memcmp(many[j].upsampled, one.upsampled, sizeof(float) * 4 * 32 * 32), 0,
                             "%s: upsampled maps differ", nmj);
            cr_expect_str_eq(many[j].layer, one.layer, "%s", nmj);
            for (int k = 0; k < 4; k++) {
                cr_expect_eq(many[j].targets[k], one.targets[k], "%s: image %d's target", nmj, k);
                cr_expect_eq(many[j].scores[k], one.scores[k], "%s: image %d's score", nmj, k);
            }
            sal_maps_free(&one);
            sal_maps_free(&many[j]);
        }
    }
    /* the shared group alone: one upload of each image for all seven methods */
    static const sal_method grp[] = {SAL_M_GRADCAM, SAL_M_SALIENCY, SAL_M_GRADCAMPP, SAL_M_INPUTXGRAD,
                                     SAL_M_HIRESCAM, SAL_M_XGRADCAM, SAL_M_LAYERCAM};
    sal_explain_opts o = sal_explain_opts_default(SAL_M_SALIENCY);
    sal_maps mg[7];
    uint64_t up0, down0, up1, down1;
    sal_session_transfers(sess, &up0, &down0);
    cr_assert_eq(sal_explain_many(sess, &o, grp, 7, x4, 4, 0, 0, NULL, mg), SAL_OK, "%s", sal_session_error(sess));
    sal_session_transfers(sess, &up1, &down1);
    double up = (double)(up1 - up0) / 4 / (double)(per * sizeof(float));
    cr_expect(up < 1.5, "7 methods together uploaded %.2f images' worth per image (one shared pass: 1)", up);
    for (int j = 0; j < 7; j++) sal_maps_free(&mg[j]);
    /* refused: a method twice, none */
    const sal_method twice[] = {SAL_M_GRADCAM, SAL_M_GRADCAM};
    cr_expect_eq(sal_explain_many(sess, &o, twice, 2, x4, 4, 0, 0, NULL, mg), SAL_ERR_INVALID_ARG);
    cr_expect(strstr(sal_session_error(sess), "gradcam"), "%s", sal_session_error(sess));
    cr_expect_eq(sal_explain_many(sess, &o, grp, 0, x4, 4, 0, 0, NULL, mg), SAL_ERR_INVALID_ARG);
    free(x4);
}

/* A method called again on the same shapes finds its plans in the engine's cache: IG's path
 * batches (and its last, partial one), SmoothGrad's noisy batch, the top-1 and score passes and
 * the automatic batch size's measuring plans are made once, not per call (planning costs a
 * first touch of every arena: ~0.1 s per call on ResNet-50). */
Test(methods, repeated_calls_make_no_new_plans) {
    static const sal_method ms[] = {SAL_M_SALIENCY, SAL_M_IG, SAL_M_SMOOTHGRAD, SAL_M_GRADCAM};
    for (size_t i = 0; i < sizeof ms / sizeof *ms; i++)
        for (int autob = 0; autob < 2; autob++) {
            sal_explain_opts o = sal_explain_opts_default(ms[i]);
            o.batch = autob ? 0 : 16;   /* IG: 50 points = 16 + 16 + 16 + 2 */
            o.nt_samples = 16;
            sal_maps m;
            cr_assert_eq(sal_explain(sess, &o, input, 1, 0, 0, NULL, &m), SAL_OK, "%s", sal_session_error(sess));
            sal_maps_free(&m);
            const unsigned long made0 = sal_engine_plans_made(sal_session_engine(sess));
            cr_assert_eq(sal_explain(sess, &o, input, 1, 0, 0, NULL, &m), SAL_OK, "%s", sal_session_error(sess));
            sal_maps_free(&m);
            const unsigned long made = sal_engine_plans_made(sal_session_engine(sess)) - made0;
            cr_expect_eq(made, 0, "%s (batch %s): the second call made %lu plans", sal_method_name(ms[i]),
                         autob ? "automatic" : "16", made);
        }
}

/* The methods build their batches and keep their sums on the device: per image, what crosses the
 * bus is a few copies of the image (the image, a baseline or fill, the top-1 pass, the map coming
 * back) and small things (seeds, and the logits of every pass: 10 floats per item here), never
 * one image per pass. Host-built batches would move 50 images' worth for IG, 324 for occlusion,
 * 200 for RISE here. */
Test(methods, per_image_transfers_do_not_grow_with_the_passes) {
    static const sal_method ms[] = {SAL_M_SALIENCY, SAL_M_IG, SAL_M_SMOOTHGRAD, SAL_M_OCCLUSION, SAL_M_GRADCAM,
                                    SAL_M_SCORECAM, SAL_M_RISE, SAL_M_GRADSHAP, SAL_M_KERNELSHAP};
    const double img = 3 * 32 * 32 * sizeof(float);
    for (size_t i = 0; i < sizeof ms / sizeof *ms; i++) {
        sal_explain_opts o = sal_explain_opts_default(ms[i]);
        o.rise_masks = 200;
        o.kshap_coalitions = 200;
        o.kshap_grid = 4;
        o.batch = 8;
        o.occ_stride_h = o.occ_stride_w = 1;   /* 324 windows of 15x15 */
        uint64_t up0, down0, up1, down1;
        sal_session_transfers(sess, &up0, &down0);
        sal_maps m;
        cr_assert_eq(sal_explain(sess, &o, input, 2, 0, 0, NULL, &m), SAL_OK, "%s", sal_session_error(sess));
        sal_session_transfers(sess, &up1, &down1);
        double up = (double)(up1 - up0) / 2 / img, down = (double)(down1 - down0) / 2 / img;
        cr_log_info("%s: per image %.2f images to the device, %.2f back", sal_method_name(ms[i]), up, down);
        cr_expect(up > 0.9 && up < 6.0, "%s: %.2f images' worth uploaded per image", sal_method_name(ms[i]), up);
        cr_expect(down < 3.0, "%s: %.2f images' worth downloaded per image", sal_method_name(ms[i]), down);
        sal_maps_free(&m);
    }
}

/* The random numbers every noisy method draws. Philox4x32-10 against Random123's own known-answer
 * vectors (tests/kat_vectors of github.com/DEShawResearch/random123, the three "philox4x32 10"
 * lines: counter, key, result); then the normal numbers built on it: mean 0, variance 1, and no
 * correlation between samples or between neighbouring elements, over 2^18 draws (standard errors
 * about 0.002 for the mean and correlations, 0.003 for the variance). */
Test(random, philox_known_answers_and_normal_moments) {
    static const struct { uint32_t ctr[4], key[2], want[4]; } kat[] = {
        {{0, 0, 0, 0}, {0, 0}, {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
        {{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}, {0xffffffff, 0xffffffff},
         {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
        {{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}, {0xa4093822, 0x299f31d0},
         {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}},
    };
    for (int t = 0; t < 3; t++) {
        uint64_t seed = (uint64_t)kat[t].key[0] | (uint64_t)kat[t].key[1] << 32;
        philox4x32_ctr_t r = sal_philox(seed, kat[t].ctr[0], kat[t].ctr[1], kat[t].ctr[2], kat[t].ctr[3]);
        for (int j = 0; j < 4; j++)
            cr_expect_eq(r.v[j], kat[t].want[j], "vector %d word %d: %08x, Random123 says %08x", t, j, r.v[j], kat[t].want[j]);
    }
    enum { M = 1 << 18 };
    double s = 0, ss = 0, cross = 0, lag = 0, prev = 0;
    for (int j = 0; j < M; j++) {
        double z = sal_normal(99, SAL_RNG_SMOOTHGRAD, 3, 0, (uint64_t)j);
        double z2 = sal_normal(99, SAL_RNG_SMOOTHGRAD, 3, 1, (uint64_t)j);
        s += z;
        ss += z * z;
        cross += z * z2;
        if (j) lag += z * prev;
        prev = z;
    }
    double mean = s / M, var = ss / M - mean * mean;
    cr_expect(fabs(mean) < 0.01, "mean %g", mean);
    cr_expect(fabs(var - 1) < 0.015, "variance %g", var);
    cr_expect(fabs(cross / M) < 0.01, "samples 0 and 1 correlate: %g", cross / M);
    cr_expect(fabs(lag / (M - 1)) < 0.01, "neighbouring elements correlate: %g", lag / (M - 1));
}

Test(methods, bad_options_are_refused) {
    sal_maps m;
    sal_explain_opts o = sal_explain_opts_default(SAL_M_IG);
    o.ig_steps = 0;
    cr_expect_eq(sal_explain(sess, &o, input, 1, 0, 0, targets, &m), SAL_ERR_INVALID_ARG);
    cr_expect(strstr(sal_session_error(sess), "steps"));
    o = sal_explain_opts_default(SAL_M_SMOOTHGRAD);
    o.nt_samples = 0;
    cr_expect_eq(sal_explain(sess, &o, input, 1, 0, 0, targets, &m), SAL_ERR_INVALID_ARG);
    o = sal_explain_opts_default(SAL_M_OCCLUSION);
    o.occ_h = 40;
    cr_expect_eq(sal_explain(sess, &o, input, 1, 0, 0, targets, &m), SAL_ERR_INVALID_ARG);
    cr_expect(strstr(sal_session_error(sess), "window"));
    int bad = 10;
    o = sal_explain_opts_default(SAL_M_SALIENCY);
    cr_expect_eq(sal_explain(sess, &o, input, 1, 0, 0, &bad, &m), SAL_ERR_INVALID_ARG);
    cr_expect(strstr(sal_session_error(sess), "out of range"));
    o = sal_explain_opts_default(SAL_M_GRADCAM);
    o.layer = "no.such.layer";
    cr_expect_eq(sal_explain(sess, &o, input, 1, 0, 0, targets, &m), SAL_ERR_NOT_FOUND);
    cr_expect(strstr(sal_session_error(sess), "no.such.layer"));
    /* a NaN or infinity in an image would make every map NaN: refused, naming the image */
    float *x2 = malloc(sizeof(float) * 2 * 3 * 32 * 32);
    memcpy(x2, input, sizeof(float) * 2 * 3 * 32 * 32);
    x2[3 * 32 * 32 + 77] = INFINITY;
    o = sal_explain_opts_default(SAL_M_SALIENCY);
    cr_expect_eq(sal_explain(sess, &o, x2, 2, 0, 0, targets, &m), SAL_ERR_INVALID_ARG);
    cr_expect(strstr(sal_session_error(sess), "image 1"), "message: %s", sal_session_error(sess));
    x2[3 * 32 * 32 + 77] = NAN;
    cr_expect_eq(sal_explain(sess, &o, x2, 2, 0, 0, targets, &m), SAL_ERR_INVALID_ARG);
    o = sal_explain_opts_default(SAL_M_IG);   /* a user baseline with a NaN: refused too */
    o.baseline = SAL_BASELINE_USER;
    o.baseline_data = x2 + 3 * 32 * 32;
    cr_expect_eq(sal_explain(sess, &o, input, 1, 0, 0, targets, &m), SAL_ERR_INVALID_ARG);
    cr_expect(strstr(sal_session_error(sess), "baseline"), "message: %s", sal_session_error(sess));
    free(x2);
}

/* Occlusion on a linear model y = sum(W * x) is exact: with fill 0, the drop of a window is the
 * sum of W*x inside it, and a pixel's attribution is the mean over its windows. */
Test(occlusion, exact_on_linear_model_and_covers_every_pixel) {
    uint64_t s = tu_fresh_seed();
    int C = 2, H = 11, W = 13;
    sal_graph *g = sal_graph_new("");
    sal_shape xs = {4, {-1, C, H, W}};
    sal_graph_add_input(g, "x", &xs);
    sal_shape ws = {2, {1, C * H * W}};
    sal_tensor *wt = sal_tensor_new(SAL_F32, &ws);
    tu_fill(wt->data, C * H * W, &s, -1, 1);
    sal_graph_add_const(g, "w", wt);
    const char *fin[] = {"x"}, *fout[] = {"f"}, *gin[] = {"f", "w"}, *gout[] = {"y"};
    sal_graph_add_node(g, "Flatten", "flat", 1, fin, 1, fout);
    int k = sal_graph_add_node(g, "Gemm", "fc", 2, gin, 1, gout);
    sal_node_attr_int(&g->nodes[k], "transB", 1);
    sal_graph_mark_output(g, "y");
    sal_error err = {0};
    cr_assert_eq(sal_graph_finalize(g, &err), SAL_OK, "%s", err.msg);
    sal_model m = {g};
    sal_session_opts so = sal_session_opts_default();
    so.device = SAL_DEVICE_CPU;
    sal_session *ss;
    cr_assert_eq(sal_session_create(&m, &so, &ss, &err), SAL_OK, "%s", err.msg);
    float x[2 * 11 * 13];
    tu_fill(x, C * H * W, &s, -1, 1);
    const float *wv = wt->data;
    int windows[][4] = {{3, 3, 2, 2}, {5, 4, 3, 4}, {11, 13, 1, 1}, {4, 7, 4, 6}, {1, 1, 1, 1}, {6, 5, 5, 5}};
    for (size_t t = 0; t < sizeof windows / sizeof windows[0]; t++) {
        sal_explain_opts o = sal_explain_opts_default(SAL_M_OCCLUSION);
        o.occ_h = windows[t][0]; o.occ_w = windows[t][1];
        o.occ_stride_h = windows[t][2]; o.occ_stride_w = windows[t][3];
        int target = 0;
        sal_maps mp;
        cr_assert_eq(sal_explain(ss, &o, x, 1, 0, 0, &target, &mp), SAL_OK, "%s", sal_session_error(ss));
        int ny = (int)ceil((double)(H - o.occ_h) / o.occ_stride_h) + 1, nx = (int)ceil((double)(W - o.occ_w) / o.occ_stride_w) + 1;
        for (int y = 0; y < H; y++)
            for (int xx = 0; xx < W; xx++) {
                double sum = 0;
                int cnt = 0;
                for (int a = 0; a < ny; a++)
                    for (int b = 0; b < nx; b++) {
                        int y0 = a * o.occ_stride_h, x0 = b * o.occ_stride_w;
                        if (y < y0 || y >= y0 + o.occ_h || xx < x0 || xx >= x0 + o.occ_w) continue;
                        double drop = 0;
                        for (int c = 0; c < C; c++)
                            for (int yy = y0; yy < y0 + o.occ_h && yy < H; yy++)
                                for (int q = x0; q < x0 + o.occ_w && q < W; q++)
                                    drop += (double)wv[(c * H + yy) * W + q] * x[(c * H + yy) * W + q];
                        sum += drop;
                        cnt++;
                    }
                cr_assert_gt(cnt, 0, "pixel (%d,%d) not covered by window %dx%d stride %dx%d", y, xx, o.occ_h, o.occ_w, o.occ_stride_h, o.occ_stride_w);
                for (int c = 0; c < C; c++)
                    cr_expect_float_eq(mp.attr[(c * H + y) * W + xx], sum / cnt, 1e-4,
                                       "window %dx%d stride %dx%d pixel (%d,%d)", o.occ_h, o.occ_w, o.occ_stride_h, o.occ_stride_w, y, xx);
            }
        sal_maps_free(&mp);
    }
    /* a stride larger than the window would leave pixels unexplained: refused */
    sal_explain_opts o = sal_explain_opts_default(SAL_M_OCCLUSION);
    o.occ_h = o.occ_w = 3;
    o.occ_stride_h = 4;
    int target = 0;
    sal_maps mp;
    cr_expect_eq(sal_explain(ss, &o, x, 1, 0, 0, &target, &mp), SAL_ERR_INVALID_ARG);
    cr_expect(strstr(sal_session_error(ss), "stride"), "%s", sal_session_error(ss));
    sal_session_free(ss);
    sal_graph_free(g);
}

/* Explaining the probability: by the chain rule, d p_t/dx = p_t (d z_t/dx - sum_j p_j d z_j/dx),
 * assembled here from the ten logit saliency maps and the softmax of the logits. */
Test(methods, probability_saliency_is_the_softmax_chain_rule_of_logit_maps) {
    enum { K = 10, PER = 3 * 32 * 32 };
    float logits[K];
    cr_assert_eq(sal_forward(sess, input, 1, 0, 0, logits), SAL_OK, "%s", sal_session_error(sess));
    double mx = logits[0], sum = 0, p[K];
    for (int j = 1; j < K; j++) mx = fmax(mx, logits[j]);
    for (int j = 0; j < K; j++) sum += (p[j] = exp(logits[j] - mx));
    for (int j = 0; j < K; j++) p[j] /= sum;
    static float g[K][PER];
    for (int j = 0; j < K; j++) {
        sal_explain_opts o = sal_explain_opts_default(SAL_M_SALIENCY);
        sal_maps m;
        cr_assert_eq(sal_explain(sess, &o, input, 1, 0, 0, &j, &m), SAL_OK, "%s", sal_session_error(sess));
        memcpy(g[j], m.attr, sizeof g[j]);
        sal_maps_free(&m);
    }
    int t = targets[0];
    float want[PER];
    for (int i = 0; i < PER; i++) {
        double mix = 0;
        for (int j = 0; j < K; j++) mix += p[j] * g[j][i];
        want[i] = (float)(p[t] * (g[t][i] - mix));
    }
    sal_explain_opts o = sal_explain_opts_default(SAL_M_SALIENCY);
    o.explain_prob = 1;
    sal_maps m;
    cr_assert_eq(sal_explain(sess, &o, input, 1, 0, 0, &t, &m), SAL_OK, "%s", sal_session_error(sess));
    cr_expect_float_eq(m.scores[0], (float)p[t], 1e-6);
    double e = rel_err(m.attr, want, PER);
    cr_expect_lt(e, 1e-4, "probability saliency vs chain rule: %.3g", e);
    sal_maps_free(&m);
}
