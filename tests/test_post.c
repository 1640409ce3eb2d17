/* test_post.c — host/post (and the element functions of kernels/post_elem.h under it): channel
 * reductions on hand-made arrays, percentiles against numpy's 'linear' method computed by hand,
 * percentile clipping, normalization edge cases, colormap tables and names, the geometry of the
 * preprocessing crop, bilinear upsampling against OpenCV's INTER_LINEAR rule worked out by hand,
 * heatmaps and overlays. Expected values are written out here, never computed by the code
 * under test. */
#include <criterion/criterion.h>

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "post/post.h"

TestSuite(reduce);
TestSuite(percentile);
TestSuite(normalize);
TestSuite(colormap);
TestSuite(geometry);
TestSuite(upsample);
TestSuite(overlay);

/* ------------------------------------------------------------------------------------------------ */
/* Helpers                                                                                          */

static void expect_floats(const float *got, const float *want, size_t n, float tol, const char *what) {
    for (size_t i = 0; i < n; i++)
        cr_expect(fabsf(got[i] - want[i]) <= tol, "%s[%zu] = %.9g, expected %.9g", what, i,
                  (double)got[i], (double)want[i]);
}

static void expect_rgb(const uint8_t *got, int r, int g, int b, const char *what) {
    cr_expect(got[0] == r && got[1] == g && got[2] == b, "%s = (%d,%d,%d), expected (%d,%d,%d)", what,
              got[0], got[1], got[2], r, g, b);
}

/* round half up, the rule of the blend and darkening */
static int round_half_up(double v) { return (int)floor(v + 0.5); }

/* ------------------------------------------------------------------------------------------------ */
/* Channel reduction                                                                                */

/* (3,1,2): channel k holds two pixels */
static const float attr3[6] = {1.0f, -5.0f, /* c0 */ -3.0f, 2.0f, /* c1 */ 2.0f, 1.0f /* c2 */};

Test(reduce, abs_max) {
    float out[2];
    cr_assert_eq(sal_reduce_channels(attr3, 3, 1, 2, SAL_REDUCE_ABS_MAX, out, NULL), SAL_OK);
    const float want[2] = {3.0f, 5.0f};
    expect_floats(out, want, 2, 0.0f, "abs-max");
}

Test(reduce, abs_sum) {
    float out[2];
    cr_assert_eq(sal_reduce_channels(attr3, 3, 1, 2, SAL_REDUCE_ABS_SUM, out, NULL), SAL_OK);
    const float want[2] = {6.0f, 8.0f};
    expect_floats(out, want, 2, 0.0f, "abs-sum");
}

Test(reduce, signed_sum) {
    float out[2];
    cr_assert_eq(sal_reduce_channels(attr3, 3, 1, 2, SAL_REDUCE_SUM, out, NULL), SAL_OK);
    const float want[2] = {0.0f, -2.0f};
    expect_floats(out, want, 2, 0.0f, "sum");
}

Test(reduce, none_keeps_every_channel) {
    float out[6];
    cr_assert_eq(sal_reduce_channels(attr3, 3, 1, 2, SAL_REDUCE_NONE, out, NULL), SAL_OK);
    expect_floats(out, attr3, 6, 0.0f, "none");
}

Test(reduce, single_channel_and_2d_plane) {
    /* (1,2,2): abs-max of one channel is |a| */
    const float a[4] = {-1.5f, 2.0f, 0.0f, -0.25f};
    float out[4];
    cr_assert_eq(sal_reduce_channels(a, 1, 2, 2, SAL_REDUCE_ABS_MAX, out, NULL), SAL_OK);
    const float want[4] = {1.5f, 2.0f, 0.0f, 0.25f};
    expect_floats(out, want, 4, 0.0f, "abs-max c=1");
}

Test(reduce, abs_max_propagates_nan) {
    const float a[4] = {1.0f, 2.0f, /* c0 */ NAN, -7.0f /* c1 */};
    float out[2];
    cr_assert_eq(sal_reduce_channels(a, 2, 1, 2, SAL_REDUCE_ABS_MAX, out, NULL), SAL_OK);
    cr_expect(isnan(out[0]), "abs-max over a NaN channel gave %g", (double)out[0]);
    cr_expect_eq(out[1], 7.0f);
}

Test(reduce, bad_arguments_and_names) {
    float out[2];
    sal_error err;
    cr_expect_eq(sal_reduce_channels(attr3, 0, 1, 2, SAL_REDUCE_SUM, out, &err), SAL_ERR_INVALID_ARG);
    cr_expect_eq(sal_reduce_channels(NULL, 3, 1, 2, SAL_REDUCE_SUM, out, &err), SAL_ERR_INVALID_ARG);
    cr_expect_eq(sal_reduce_channels(attr3, 3, 1, 2, (sal_reduce)42, out, &err), SAL_ERR_INVALID_ARG);
    sal_reduce r;
    cr_expect_eq(sal_reduce_parse("abs-max", &r, NULL), SAL_OK);
    cr_expect_eq(r, SAL_REDUCE_ABS_MAX);
    cr_expect_eq(sal_reduce_parse("AbsSum", &r, NULL), SAL_OK);
    cr_expect_eq(r, SAL_REDUCE_ABS_SUM);
    cr_expect_eq(sal_reduce_parse("sum", &r, NULL), SAL_OK);
    cr_expect_eq(r, SAL_REDUCE_SUM);
    cr_expect_eq(sal_reduce_parse("none", &r, NULL), SAL_OK);
    cr_expect_eq(r, SAL_REDUCE_NONE);
    cr_expect_eq(sal_reduce_parse("mean", &r, &err), SAL_ERR_INVALID_ARG);
    cr_expect(strstr(err.msg, "'mean'") != NULL, "message does not name the value: %s", err.msg);
    cr_expect_str_eq(sal_reduce_name(SAL_REDUCE_ABS_SUM), "abs-sum");
}

/* ------------------------------------------------------------------------------------------------ */
/* Percentile and clipping                                                                          */

static double pct(const float *x, size_t n, double q) {
    double p = -1.0;
    sal_error err;
    sal_status st = sal_percentile(x, n, q, &p, &err);
    cr_assert_eq(st, SAL_OK, "sal_percentile: %s", err.msg);
    return p;
}

Test(percentile, numpy_linear_by_hand) {
    const float a[4] = {1, 2, 3, 4};
    /* np.percentile([1,2,3,4], q): position q/100*3 */
    cr_expect(fabs(pct(a, 4, 99.0) - 3.97) < 1e-12, "q=99: %.17g", pct(a, 4, 99.0)); /* 2.97 */
    cr_expect(fabs(pct(a, 4, 50.0) - 2.5) < 1e-12);                                   /* 1.5 */
    cr_expect(fabs(pct(a, 4, 0.0) - 1.0) < 1e-12);
    cr_expect(fabs(pct(a, 4, 100.0) - 4.0) < 1e-12);
    cr_expect(fabs(pct(a, 4, 10.0) - 1.3) < 1e-12); /* 0.3 */
    const float b[5] = {50, 10, 40, 20, 30};        /* unsorted: sorted copy 10..50 */
    cr_expect(fabs(pct(b, 5, 90.0) - 46.0) < 1e-12); /* position 3.6: 40 + 0.6*10 */
    cr_expect(fabs(pct(b, 5, 25.0) - 20.0) < 1e-12); /* position 1 */
    cr_expect(fabs(pct(b, 5, 95.0) - 48.0) < 1e-12); /* position 3.8 */
    const float one[1] = {7};
    cr_expect(fabs(pct(one, 1, 99.0) - 7.0) < 1e-12);
    const float neg[3] = {-1, -3, -2}; /* sorted -3,-2,-1; q=75: position 1.5 */
    cr_expect(fabs(pct(neg, 3, 75.0) - (-1.5)) < 1e-12);
}

Test(percentile, ties_and_input_untouched) {
    float a[6] = {0, 0, 0, 0, 5, 5}; /* q=70: position 3.5 between 0 and 5 */
    cr_expect(fabs(pct(a, 6, 70.0) - 2.5) < 1e-12);
    cr_expect(a[4] == 5.0f && a[0] == 0.0f, "the input was modified");
}

Test(percentile, nan_is_ignored) {
    const float a[4] = {NAN, 1, NAN, 3}; /* like np.nanpercentile: [1,3] */
    cr_expect(fabs(pct(a, 4, 50.0) - 2.0) < 1e-12);
    const float all_nan[2] = {NAN, NAN};
    cr_expect(isnan(pct(all_nan, 2, 50.0)));
}

Test(percentile, bad_arguments) {
    const float a[2] = {1, 2};
    double p;
    sal_error err;
    cr_expect_eq(sal_percentile(a, 2, 100.5, &p, &err), SAL_ERR_INVALID_ARG);
    cr_expect(strstr(err.msg, "100.5") != NULL, "%s", err.msg);
    cr_expect_eq(sal_percentile(a, 2, -1.0, &p, &err), SAL_ERR_INVALID_ARG);
    cr_expect_eq(sal_percentile(a, 2, NAN, &p, &err), SAL_ERR_INVALID_ARG);
    cr_expect_eq(sal_percentile(a, 0, 50.0, &p, &err), SAL_ERR_INVALID_ARG);
    cr_expect_eq(sal_percentile(NULL, 2, 50.0, &p, &err), SAL_ERR_INVALID_ARG);
}

Test(percentile, clip_unsigned_keeps_the_minimum) {
    float m[100]; /* 0, 1, ..., 99: the 99th percentile is at position 98.01 -> 98.01 */
    for (int i = 0; i < 100; i++) m[i] = (float)i;
    float thr = 0.0f;
    cr_assert_eq(sal_clip_percentile(m, 100, 99.0, 0, &thr, NULL), SAL_OK);
    cr_expect(fabsf(thr - 98.01f) < 1e-4f, "threshold %g", (double)thr);
    cr_expect(fabsf(m[99] - 98.01f) < 1e-4f, "max became %g", (double)m[99]);
    cr_expect_eq(m[98], 98.0f);
    cr_expect_eq(m[0], 0.0f);
}

Test(percentile, clip_signed_is_symmetric) {
    float m[4] = {-10, 1, 2, 3}; /* |x| sorted 1,2,3,10; q=50: position 1.5 -> 2.5 */
    float thr = 0.0f;
    cr_assert_eq(sal_clip_percentile(m, 4, 50.0, 1, &thr, NULL), SAL_OK);
    cr_expect(fabsf(thr - 2.5f) < 1e-6f);
    const float want[4] = {-2.5f, 1.0f, 2.0f, 2.5f};
    expect_floats(m, want, 4, 1e-6f, "clipped");
}

Test(percentile, clip_all_nan_is_a_no_op) {
    float m[2] = {NAN, NAN};
    float thr = 0.0f;
    cr_assert_eq(sal_clip_percentile(m, 2, 99.0, 0, &thr, NULL), SAL_OK);
    cr_expect(isnan(thr) && isnan(m[0]) && isnan(m[1]));
}

/* ------------------------------------------------------------------------------------------------ */
/* Normalization                                                                                    */

static void expect_no_nan(const float *x, size_t n, const char *what) {
    for (size_t i = 0; i < n; i++) cr_expect(!isnan(x[i]), "%s[%zu] is NaN", what, i);
}

Test(normalize, unsigned_min_max) {
    const float in[3] = {2, 4, 6};
    float out[3];
    sal_normalize(in, 3, 0, out);
    const float want[3] = {0.0f, 0.5f, 1.0f};
    expect_floats(out, want, 3, 1e-7f, "minmax");
}

Test(normalize, unsigned_negative_values_and_in_place) {
    float m[4] = {-4, -2, 0, 4}; /* min -4, range 8 */
    sal_normalize(m, 4, 0, m);
    const float want[4] = {0.0f, 0.25f, 0.5f, 1.0f};
    expect_floats(m, want, 4, 1e-7f, "minmax in place");
}

Test(normalize, constant_map_gives_zeros) {
    const float in[3] = {5, 5, 5};
    float out[3] = {9, 9, 9};
    sal_normalize(in, 3, 0, out);
    const float zeros[3] = {0, 0, 0};
    expect_floats(out, zeros, 3, 0.0f, "constant unsigned");
    expect_no_nan(out, 3, "constant unsigned");
    sal_normalize(in, 3, 1, out); /* signed: 5/5 = 1 */
    const float ones[3] = {1, 1, 1};
    expect_floats(out, ones, 3, 0.0f, "constant signed");
}

Test(normalize, zero_map_stays_zero) {
    const float in[4] = {0, 0, -0.0f, 0};
    float out[4] = {9, 9, 9, 9};
    const float zeros[4] = {0, 0, 0, 0};
    sal_normalize(in, 4, 1, out);
    expect_floats(out, zeros, 4, 0.0f, "zero signed");
    expect_no_nan(out, 4, "zero signed");
    sal_normalize(in, 4, 0, out);
    expect_floats(out, zeros, 4, 0.0f, "zero unsigned");
    expect_no_nan(out, 4, "zero unsigned");
}

Test(normalize, signed_divides_by_max_abs) {
    const float in[3] = {-2, 1, 4};
    float out[3];
    sal_normalize(in, 3, 1, out);
    const float want[3] = {-0.5f, 0.25f, 1.0f};
    expect_floats(out, want, 3, 1e-7f, "signed");
    const float in2[2] = {-8, 2}; /* the maximum magnitude is negative */
    sal_normalize(in2, 2, 1, out);
    const float want2[2] = {-1.0f, 0.25f};
    expect_floats(out, want2, 2, 1e-7f, "signed negative peak");
}

Test(normalize, nan_and_inf_never_leak) {
    const float in[5] = {NAN, 1, 3, INFINITY, -INFINITY};
    float out[5];
    sal_normalize(in, 5, 0, out); /* finite range [1,3] */
    const float want[5] = {0.0f, 0.0f, 1.0f, 1.0f, 0.0f};
    expect_floats(out, want, 5, 1e-7f, "unsigned with NaN/inf");
    sal_normalize(in, 5, 1, out); /* max |finite| = 3 */
    const float want_s[5] = {0.0f, 1.0f / 3.0f, 1.0f, 1.0f, -1.0f};
    expect_floats(out, want_s, 5, 1e-7f, "signed with NaN/inf");
    const float all_nan[2] = {NAN, NAN};
    sal_normalize(all_nan, 2, 0, out);
    expect_no_nan(out, 2, "all-NaN unsigned");
    sal_normalize(all_nan, 2, 1, out);
    expect_no_nan(out, 2, "all-NaN signed");
}

/* ------------------------------------------------------------------------------------------------ */
/* Colormaps                                                                                        */

static void cmap(sal_colormap cm, float t, uint8_t rgb[3]) { sal_colormap_rgb(cm, t, rgb); }

Test(colormap, jet_endpoints_and_definition) {
    uint8_t c[3];
    cmap(SAL_CMAP_JET, 0.0f, c);
    expect_rgb(c, 0, 0, 128, "jet(0)"); /* dark blue */
    cmap(SAL_CMAP_JET, 1.0f, c);
    expect_rgb(c, 128, 0, 0, "jet(1)"); /* dark red */
    /* Every entry against the definition r,g,b = clamp(1.5 - |4t - k|) for k = 3,2,1 at
     * t = i/255, in units of 1/255: 382.5 - |4i - 255k|, rounded half up. */
    const uint8_t *tab = sal_colormap_table(SAL_CMAP_JET);
    cr_assert_not_null(tab);
    for (int i = 0; i < 256; i++)
        for (int k = 0; k < 3; k++) {
            double v = 382.5 - fabs(4.0 * i - 255.0 * (3 - k));
            v = v < 0.0 ? 0.0 : (v > 255.0 ? 255.0 : v);
            cr_expect_eq(tab[3 * i + k], round_half_up(v), "jet[%d][%d] = %d, expected %d", i, k,
                         tab[3 * i + k], round_half_up(v));
        }
    cmap(SAL_CMAP_JET, 0.5f, c); /* index 128: (130,255,126) green-ish */
    expect_rgb(c, 130, 255, 126, "jet(0.5)");
}

Test(colormap, gray_is_t_times_255) {
    uint8_t c[3];
    for (int i = 0; i < 256; i++) {
        cmap(SAL_CMAP_GRAY, (float)i / 255.0f, c);
        expect_rgb(c, i, i, i, "gray(i/255)");
    }
    cmap(SAL_CMAP_GRAY, 0.3f, c); /* 76.5 -> 77 */
    expect_rgb(c, 77, 77, 77, "gray(0.3)");
}

Test(colormap, matplotlib_endpoints) {
    uint8_t c[3];
    cmap(SAL_CMAP_VIRIDIS, 0.0f, c);
    expect_rgb(c, 68, 1, 84, "viridis(0)"); /* 0.267004, 0.004874, 0.329415 */
    cmap(SAL_CMAP_VIRIDIS, 1.0f, c);
    expect_rgb(c, 253, 231, 37, "viridis(1)"); /* 0.993248, 0.906157, 0.143936 */
    cmap(SAL_CMAP_INFERNO, 0.0f, c);
    expect_rgb(c, 0, 0, 4, "inferno(0)"); /* 0.001462, 0.000466, 0.013866 */
    cmap(SAL_CMAP_INFERNO, 1.0f, c);
    expect_rgb(c, 252, 255, 164, "inferno(1)"); /* 0.988362, 0.998364, 0.644924 */
    cmap(SAL_CMAP_TURBO, 0.0f, c);
    expect_rgb(c, 48, 18, 59, "turbo(0)"); /* 0.18995, 0.07176, 0.23217 */
    cmap(SAL_CMAP_TURBO, 1.0f, c);
    expect_rgb(c, 122, 4, 3, "turbo(1)"); /* 0.47960, 0.01583, 0.01055 */
}

Test(colormap, bwr_is_diverging) {
    uint8_t c[3];
    cmap(SAL_CMAP_BWR, 0.0f, c);
    expect_rgb(c, 0, 0, 255, "bwr(0)");
    cmap(SAL_CMAP_BWR, 1.0f, c);
    expect_rgb(c, 255, 0, 0, "bwr(1)");
    cmap(SAL_CMAP_BWR, 0.5f, c);
    cr_expect(c[0] >= 250 && c[1] >= 250 && c[2] >= 250, "bwr(0.5) = (%d,%d,%d), not white-ish",
              c[0], c[1], c[2]);
}

Test(colormap, lookup_clamps_and_nan_is_entry_0) {
    uint8_t c[3];
    cmap(SAL_CMAP_GRAY, -3.0f, c);
    expect_rgb(c, 0, 0, 0, "gray(-3)");
    cmap(SAL_CMAP_GRAY, 7.0f, c);
    expect_rgb(c, 255, 255, 255, "gray(7)");
    cmap(SAL_CMAP_GRAY, NAN, c);
    expect_rgb(c, 0, 0, 0, "gray(NaN)");
    cmap(SAL_CMAP_JET, NAN, c);
    expect_rgb(c, 0, 0, 128, "jet(NaN)");
    cmap(SAL_CMAP_GRAY, INFINITY, c);
    expect_rgb(c, 255, 255, 255, "gray(inf)");
}

Test(colormap, names) {
    const char *names[] = {"jet", "turbo", "viridis", "inferno", "gray", "bwr"};
    for (int i = 0; i < 6; i++) {
        sal_colormap cm = SAL_CMAP_COUNT;
        cr_expect_eq(sal_colormap_parse(names[i], &cm, NULL), SAL_OK, "%s", names[i]);
        cr_expect_str_eq(sal_colormap_name(cm), names[i]);
        cr_expect_not_null(sal_colormap_table(cm));
    }
    sal_colormap cm;
    cr_expect_eq(sal_colormap_parse("Viridis", &cm, NULL), SAL_OK);
    cr_expect_eq(cm, SAL_CMAP_VIRIDIS);
    sal_error err;
    memset(&err, 0, sizeof err);
    cr_expect_eq(sal_colormap_parse("hot", &cm, &err), SAL_ERR_INVALID_ARG);
    cr_expect_eq(err.status, SAL_ERR_INVALID_ARG);
    cr_expect(strstr(err.msg, "'hot'") != NULL, "message does not name the value: %s", err.msg);
    cr_expect_eq(sal_colormap_parse("", &cm, &err), SAL_ERR_INVALID_ARG);
    cr_expect_null(sal_colormap_table((sal_colormap)99));
    cr_expect_str_eq(sal_colormap_name((sal_colormap)-1), "?");
}

/* ------------------------------------------------------------------------------------------------ */
/* Geometry of the preprocessing crop                                                               */

static void expect_rect(const float *r, double x0, double y0, double x1, double y1) {
    const double want[4] = {x0, y0, x1, y1};
    for (int k = 0; k < 4; k++)
        cr_expect(fabs(r[k] - want[k]) < 1e-4, "rect[%d] = %.7g, expected %.7g", k, (double)r[k],
                  want[k]);
}

Test(geometry, square_image) {
    /* 500x500, ImageNet 224: resized 256x256, top = left = 16: edges 16 and 240 of 256 */
    sal_prep_opts o = sal_prep_opts_imagenet(224, 224);
    cr_assert_eq(o.resize_shorter, 256);
    float r[4];
    cr_assert_eq(sal_prep_rect(500, 500, &o, r), SAL_OK);
    expect_rect(r, 16.0 * 500 / 256, 16.0 * 500 / 256, 240.0 * 500 / 256, 240.0 * 500 / 256);
    expect_rect(r, 31.25, 31.25, 468.75, 468.75);
}

Test(geometry, wide_image) {
    /* w 640, h 480: RH = 256, RW = lround(640*256/480 = 341.33) = 341; top = (256-224)/2 = 16,
     * left = (341-224)/2 = 58; x: 58*640/341, 282*640/341; y: 16*480/256 = 30, 240*480/256 = 450 */
    sal_prep_opts o = sal_prep_opts_imagenet(224, 224);
    float r[4];
    cr_assert_eq(sal_prep_rect(640, 480, &o, r), SAL_OK);
    expect_rect(r, 108.856305, 30.0, 529.266862, 450.0);
}

Test(geometry, tall_image) {
    /* w 300, h 600: RW = 256, RH = lround(600*256/300) = 512; top = (512-224)/2 = 144,
     * left = 16; x: 16*300/256 = 18.75, 240*300/256 = 281.25;
     * y: 144*600/512 = 168.75, 368*600/512 = 431.25 */
    sal_prep_opts o = sal_prep_opts_imagenet(224, 224);
    float r[4];
    cr_assert_eq(sal_prep_rect(300, 600, &o, r), SAL_OK);
    expect_rect(r, 18.75, 168.75, 281.25, 431.25);
}

Test(geometry, straight_resize_covers_everything) {
    sal_prep_opts o = sal_prep_opts_gray(28, 28);
    float r[4];
    cr_assert_eq(sal_prep_rect(100, 50, &o, r), SAL_OK);
    expect_rect(r, 0, 0, 100, 50);
}

Test(geometry, non_square_crop) {
    /* out 224x160 (h x w), resize_shorter 256 on w 400 x h 300: RH = 256,
     * RW = lround(400*256/300 = 341.33) = 341; top = 16, left = (341-160)/2 = 90;
     * x: 90*400/341, 250*400/341; y: 16*300/256 = 18.75, 240*300/256 = 281.25 */
    sal_prep_opts o = sal_prep_opts_imagenet(224, 160);
    o.resize_shorter = 256;
    float r[4];
    cr_assert_eq(sal_prep_rect(400, 300, &o, r), SAL_OK);
    expect_rect(r, 105.571848, 18.75, 293.255132, 281.25);
}

Test(geometry, errors) {
    sal_prep_opts o = sal_prep_opts_imagenet(224, 224);
    o.resize_shorter = 100; /* smaller than the crop */
    float r[4];
    cr_expect_eq(sal_prep_rect(500, 500, &o, r), SAL_ERR_SHAPE);
    o = sal_prep_opts_imagenet(224, 224);
    cr_expect_eq(sal_prep_rect(0, 500, &o, r), SAL_ERR_INVALID_ARG);
    o.out_h = 0;
    cr_expect_eq(sal_prep_rect(500, 500, &o, r), SAL_ERR_INVALID_ARG);
    cr_expect_eq(sal_prep_rect(500, 500, NULL, r), SAL_ERR_INVALID_ARG);
}

/* ------------------------------------------------------------------------------------------------ */
/* Upsampling (cv2.resize INTER_LINEAR: s = (d+0.5)*in/out - 0.5, clamped to [0, in-1])            */

Test(upsample, two_by_two_to_four_by_four) {
    /* 2 -> 4 samples at s = -0.25 -> 0, 0.25, 0.75, 1.25 -> 1: weights of the second sample
     * 0, 0.25, 0.75, 1 along each axis. in = [[0,4],[8,12]]:
     * row 0 [0,1,3,4], row 3 [8,9,11,12], row 1 = 0.75*row0 + 0.25*row3, row 2 = 0.25/0.75. */
    const float in[4] = {0, 4, 8, 12};
    float out[16];
    cr_assert_eq(sal_upsample_bilinear(in, 2, 2, out, 4, 4), SAL_OK);
    const float want[16] = {0, 1, 3, 4, 2, 3, 5, 6, 6, 7, 9, 10, 8, 9, 11, 12};
    expect_floats(out, want, 16, 1e-6f, "2x2->4x4");
}

Test(upsample, non_square_and_downsampling) {
    /* 1x2 -> 1x3: s = (x+0.5)*2/3 - 0.5 = -1/6 -> 0, 0.5, 7/6 -> 1: [0,6] -> [0,3,6] */
    const float a[2] = {0, 6};
    float out[3];
    cr_assert_eq(sal_upsample_bilinear(a, 1, 2, out, 1, 3), SAL_OK);
    const float want[3] = {0, 3, 6};
    expect_floats(out, want, 3, 1e-6f, "1x2->1x3");
    /* 1x3 -> 1x2: s = (x+0.5)*1.5 - 0.5 = 0.25, 1.75: [0,10,20] -> [2.5, 17.5] */
    const float b[3] = {0, 10, 20};
    float o2[2];
    cr_assert_eq(sal_upsample_bilinear(b, 1, 3, o2, 1, 2), SAL_OK);
    const float want2[2] = {2.5f, 17.5f};
    expect_floats(o2, want2, 2, 1e-5f, "1x3->1x2");
    /* 1x1 -> 3x2: a constant */
    const float c[1] = {4.5f};
    float o3[6];
    cr_assert_eq(sal_upsample_bilinear(c, 1, 1, o3, 3, 2), SAL_OK);
    const float want3[6] = {4.5f, 4.5f, 4.5f, 4.5f, 4.5f, 4.5f};
    expect_floats(o3, want3, 6, 0.0f, "1x1->3x2");
}

Test(upsample, same_size_is_a_copy) {
    const float in[6] = {1, -2, 3, 4, 5.5f, 6};
    float out[6];
    cr_assert_eq(sal_upsample_bilinear(in, 2, 3, out, 2, 3), SAL_OK);
    expect_floats(out, in, 6, 0.0f, "identity");
    cr_expect_eq(sal_upsample_bilinear(in, 0, 3, out, 2, 3), SAL_ERR_INVALID_ARG);
    cr_expect_eq(sal_upsample_bilinear(in, 2, 3, NULL, 2, 3), SAL_ERR_INVALID_ARG);
}

/* ------------------------------------------------------------------------------------------------ */
/* Heatmaps and overlays                                                                            */

Test(overlay, heatmap_unsigned_and_signed) {
    const float m[3] = {0.0f, 1.0f, 0.6f};
    uint8_t out[9];
    cr_assert_eq(sal_heatmap_rgb(m, 1, 3, SAL_CMAP_GRAY, 0, out), SAL_OK);
    expect_rgb(out, 0, 0, 0, "gray heat 0");
    expect_rgb(out + 3, 255, 255, 255, "gray heat 1");
    expect_rgb(out + 6, 153, 153, 153, "gray heat 0.6");
    const float s[3] = {-1.0f, 1.0f, 0.0f}; /* t = (v+1)/2 */
    cr_assert_eq(sal_heatmap_rgb(s, 3, 1, SAL_CMAP_BWR, 1, out), SAL_OK);
    expect_rgb(out, 0, 0, 255, "bwr heat -1");
    expect_rgb(out + 3, 255, 0, 0, "bwr heat +1");
    cr_expect(out[6] >= 250 && out[7] >= 250 && out[8] >= 250, "bwr heat 0 = (%d,%d,%d)", out[6],
              out[7], out[8]);
    cr_expect_eq(sal_heatmap_rgb(m, 1, 3, (sal_colormap)17, 0, out), SAL_ERR_INVALID_ARG);
}

/* An 8x4 (w x h) RGB image with distinct pixel values. */
static void make_image(sal_image *img, uint8_t *pix, int w, int h, int c) {
    img->w = w;
    img->h = h;
    img->c = c;
    img->pix = pix;
    for (int i = 0; i < w * h * c; i++) pix[i] = (uint8_t)((i * 37 + 11) % 256);
}

Test(overlay, constant_map_inside_darkened_outside) {
    /* The model saw a 4x4 crop of an 8x4 image: resize_shorter 4 keeps the size (RH 4, RW 8),
     * left = 2: rect = (2,0,6,4), so columns 2..5 are inside and 0,1,6,7 outside. */
    sal_prep_opts o = sal_prep_opts_imagenet(4, 4);
    o.resize_shorter = 4;
    float rect[4];
    cr_assert_eq(sal_prep_rect(8, 4, &o, rect), SAL_OK);
    expect_rect(rect, 2, 0, 6, 4);
    uint8_t pix[8 * 4 * 3], out[8 * 4 * 3];
    sal_image img;
    make_image(&img, pix, 8, 4, 3);
    const float map[4] = {0.25f, 0.25f, 0.25f, 0.25f}; /* jet index round(63.75) = 64 */
    uint8_t col[3];
    sal_colormap_rgb(SAL_CMAP_JET, 0.25f, col);
    expect_rgb(col, 0, 129, 255, "jet(0.25)"); /* 382.5 - |256 - k*255| for k = 3, 2, 1 */
    cr_assert_eq(sal_overlay(&img, map, 2, 2, rect, SAL_CMAP_JET, 0.5f, 0, out), SAL_OK);
    for (int y = 0; y < 4; y++)
        for (int x = 0; x < 8; x++)
            for (int k = 0; k < 3; k++) {
                const int i = (y * 8 + x) * 3 + k, orig = pix[i];
                const int want = (x >= 2 && x < 6) ? round_half_up(0.5 * orig + 0.5 * col[k])
                                                   : round_half_up(0.5 * orig);
                cr_expect_eq(out[i], want, "(%d,%d)[%d] = %d, expected %d (orig %d)", x, y, k,
                             out[i], want, orig);
            }
}

Test(overlay, gray_original_is_expanded) {
    uint8_t pix[3 * 2], out[3 * 2 * 3];
    sal_image img;
    make_image(&img, pix, 3, 2, 1);
    const float rect[4] = {0, 0, 2, 2}; /* column 2 is outside */
    const float map[1] = {1.0f};        /* gray colour 255 */
    cr_assert_eq(sal_overlay(&img, map, 1, 1, rect, SAL_CMAP_GRAY, 0.25f, 0, out), SAL_OK);
    for (int y = 0; y < 2; y++)
        for (int x = 0; x < 3; x++) {
            const int g = pix[y * 3 + x];
            const int want = x < 2 ? round_half_up(0.75 * g + 0.25 * 255) : round_half_up(0.5 * g);
            const uint8_t *d = out + (y * 3 + x) * 3;
            expect_rgb(d, want, want, want, "gray original");
        }
}

Test(overlay, samples_the_map_bilinearly) {
    /* rect = the whole 4x4 image, map 2x2 [[0,1],[0,1]], alpha 1, gray: the colour is the map
     * upsampled 2 -> 4 along x, [0, 0.25, 0.75, 1] -> gray 0, 64, 191, 255 on every row */
    uint8_t pix[4 * 4 * 3], out[4 * 4 * 3];
    sal_image img;
    make_image(&img, pix, 4, 4, 3);
    const float rect[4] = {0, 0, 4, 4};
    const float map[4] = {0, 1, 0, 1};
    cr_assert_eq(sal_overlay(&img, map, 2, 2, rect, SAL_CMAP_GRAY, 1.0f, 0, out), SAL_OK);
    const int want[4] = {0, 64, 191, 255};
    for (int y = 0; y < 4; y++)
        for (int x = 0; x < 4; x++) {
            const uint8_t *d = out + (y * 4 + x) * 3;
            expect_rgb(d, want[x], want[x], want[x], "bilinear overlay");
        }
}

Test(overlay, signed_map_uses_the_middle_for_zero) {
    uint8_t pix[2 * 1 * 3], out[2 * 1 * 3];
    sal_image img;
    make_image(&img, pix, 2, 1, 3);
    const float rect[4] = {0, 0, 2, 1};
    const float map[2] = {-1.0f, 1.0f}; /* sampled at the centres: exact */
    cr_assert_eq(sal_overlay(&img, map, 1, 2, rect, SAL_CMAP_BWR, 1.0f, 1, out), SAL_OK);
    expect_rgb(out, 0, 0, 255, "signed -1");
    expect_rgb(out + 3, 255, 0, 0, "signed +1");
}

/* SAL_OVERLAY_BY_VALUE: the colour's weight is alpha * |value|, so the photo shows through where
 * the map is low, and a signed map's zero is the photo, not bwr's white. Hand-computed: a gray
 * photo of 100, the gray colormap (entry k = k) and bwr's ends (blue (0,0,255), red (255,0,0)),
 * values sampled at the pixel centres (exact). */
Test(overlay, opacity_by_value) {
    uint8_t pix[3 * 1 * 3], out[3 * 1 * 3];
    sal_image img = {3, 1, 3, pix};
    memset(pix, 100, sizeof pix);
    const float rect[4] = {0, 0, 3, 1};
    const float map[3] = {0.0f, 0.5f, 1.0f};
    cr_assert_eq(sal_overlay(&img, map, 1, 3, rect, SAL_CMAP_GRAY, 1.0f, SAL_OVERLAY_BY_VALUE, out), SAL_OK);
    expect_rgb(out, 100, 100, 100, "value 0: the photo");
    /* 0.5: colour round(0.5*255) = 128 at weight 0.5: 0.5*100 + 0.5*128 = 114 */
    expect_rgb(out + 3, 114, 114, 114, "value 0.5: half the colour");
    expect_rgb(out + 6, 255, 255, 255, "value 1: the colour at alpha");
    /* alpha 0.6 at value 0.5: weight 0.3: 0.7*100 + 0.3*128 = 108.4 -> 108 */
    cr_assert_eq(sal_overlay(&img, map, 1, 3, rect, SAL_CMAP_GRAY, 0.6f, SAL_OVERLAY_BY_VALUE, out), SAL_OK);
    expect_rgb(out + 3, 108, 108, 108, "alpha scales the weight");
    /* signed: -1 blue, 0 the photo (without by-value: bwr's white, blended), +1 red */
    const float smap[3] = {-1.0f, 0.0f, 1.0f};
    cr_assert_eq(sal_overlay(&img, smap, 1, 3, rect, SAL_CMAP_BWR, 1.0f, SAL_OVERLAY_SIGNED | SAL_OVERLAY_BY_VALUE, out),
                 SAL_OK);
    expect_rgb(out, 0, 0, 255, "signed -1");
    expect_rgb(out + 3, 100, 100, 100, "signed 0: the photo, not washed out");
    expect_rgb(out + 6, 255, 0, 0, "signed +1");
    cr_assert_eq(sal_overlay(&img, smap, 1, 3, rect, SAL_CMAP_BWR, 0.5f, SAL_OVERLAY_SIGNED, out), SAL_OK);
    const uint8_t *white = sal_colormap_table(SAL_CMAP_BWR) + 3 * 128;   /* t = 0.5: entry 128 */
    expect_rgb(out + 3, round_half_up(0.5 * 100 + 0.5 * white[0]), round_half_up(0.5 * 100 + 0.5 * white[1]),
               round_half_up(0.5 * 100 + 0.5 * white[2]), "signed 0 without by-value: half bwr's middle");
    cr_expect(white[0] > 200 && white[1] > 200 && white[2] > 200, "bwr's middle is near white");
}

/* The geometry of sal_prep_rect + sal_overlay inverts sal_preprocess: an image whose red channel
 * is X and green channel is Y (both exact in uint8) is preprocessed to [0,1] (scale 1/255, mean 0,
 * std 1), and each model-input channel, used as the map, is drawn in gray with alpha 1. Bilinear
 * resizing reproduces linear functions exactly, so away from the crop's edges (where sampling
 * clamps, half a map pixel) the overlay must give back X and Y. Outside the rect: darkened. */
Test(overlay, round_trip_through_preprocess) {
    enum { W = 200, H = 150, S = 64 };
    static uint8_t pix[H * W * 3], out[H * W * 3];
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            uint8_t *p = pix + ((size_t)y * W + x) * 3;
            p[0] = (uint8_t)x;
            p[1] = (uint8_t)y;
            p[2] = 0;
        }
    sal_image img = {W, H, 3, pix};
    sal_prep_opts o = sal_prep_opts_imagenet(S, S); /* resize_shorter lround(64*256/224) = 73 */
    for (int c = 0; c < 3; c++) o.mean[c] = 0.0f, o.std[c] = 1.0f;
    static float x[3 * S * S]; /* (3,S,S) */
    sal_error err;
    cr_assert_eq(sal_preprocess(&img, &o, x, &err), SAL_OK, "%s", err.msg);
    float rect[4];
    cr_assert_eq(sal_prep_rect(W, H, &o, rect), SAL_OK);
    /* RH 73, RW lround(200*73/150) = 97, top 4, left 16 */
    expect_rect(rect, 16.0 * W / 97, 4.0 * H / 73, 80.0 * W / 97, 68.0 * H / 73);
    const float mx = 0.5f * (rect[2] - rect[0]) / S + 1.0f, my = 0.5f * (rect[3] - rect[1]) / S + 1.0f;
    for (int c = 0; c < 2; c++) {
        cr_assert_eq(sal_overlay(&img, x + (size_t)c * S * S, S, S, rect, SAL_CMAP_GRAY, 1.0f, 0, out),
                     SAL_OK);
        int checked = 0;
        for (int Y = 0; Y < H; Y++)
            for (int X = 0; X < W; X++) {
                const float cx = X + 0.5f, cy = Y + 0.5f;
                const uint8_t *d = out + ((size_t)Y * W + X) * 3;
                const uint8_t *p = pix + ((size_t)Y * W + X) * 3;
                if (cx < rect[0] || cx >= rect[2] || cy < rect[1] || cy >= rect[3]) {
                    cr_expect_eq(d[0], round_half_up(0.5 * p[0]), "outside (%d,%d)", X, Y);
                    continue;
                }
                const int interior = c == 0 ? (cx > rect[0] + mx && cx < rect[2] - mx)
                                            : (cy > rect[1] + my && cy < rect[3] - my);
                if (!interior) continue;
                const int want = c == 0 ? X : Y;
                /* exact on x86-64; one level of slack for float rounding elsewhere */
                cr_expect(abs((int)d[0] - want) <= 1, "channel %d at (%d,%d): %d, expected %d", c, X,
                          Y, d[0], want);
                checked++;
            }
        cr_expect(checked > 1000, "only %d pixels checked", checked);
    }
}

Test(overlay, alpha_zero_returns_the_original) {
    uint8_t pix[5 * 3 * 3], out[5 * 3 * 3];
    sal_image img;
    make_image(&img, pix, 5, 3, 3);
    const float rect[4] = {0, 0, 5, 3};
    const float map[4] = {0.1f, 0.9f, 0.4f, 0.7f};
    cr_assert_eq(sal_overlay(&img, map, 2, 2, rect, SAL_CMAP_TURBO, 0.0f, 0, out), SAL_OK);
    cr_expect(memcmp(out, pix, sizeof pix) == 0, "alpha 0 changed the image");
}

Test(overlay, bad_arguments) {
    uint8_t pix[2 * 2 * 3], out[2 * 2 * 3];
    sal_image img;
    make_image(&img, pix, 2, 2, 3);
    const float map[1] = {0.5f};
    const float rect[4] = {0, 0, 2, 2};
    cr_expect_eq(sal_overlay(&img, map, 1, 1, rect, SAL_CMAP_JET, 1.5f, 0, out),
                 SAL_ERR_INVALID_ARG);
    cr_expect_eq(sal_overlay(&img, map, 1, 1, rect, SAL_CMAP_JET, NAN, 0, out),
                 SAL_ERR_INVALID_ARG);
    const float empty[4] = {1, 0, 1, 2};
    cr_expect_eq(sal_overlay(&img, map, 1, 1, empty, SAL_CMAP_JET, 0.5f, 0, out),
                 SAL_ERR_INVALID_ARG);
    const float nan_rect[4] = {0, 0, NAN, 2};
    cr_expect_eq(sal_overlay(&img, map, 1, 1, nan_rect, SAL_CMAP_JET, 0.5f, 0, out),
                 SAL_ERR_INVALID_ARG);
    cr_expect_eq(sal_overlay(&img, map, 0, 1, rect, SAL_CMAP_JET, 0.5f, 0, out),
                 SAL_ERR_INVALID_ARG);
    img.c = 2;
    cr_expect_eq(sal_overlay(&img, map, 1, 1, rect, SAL_CMAP_JET, 0.5f, 0, out),
                 SAL_ERR_INVALID_ARG);
}

/* ------------------------------------------------------------------------------------------------ */
/* Colour bar                                                                                       */

/* sal_colorbar on a 100-wide strip (font scale 1): white, the bar 4..13 rows high from x = 4 to
 * 95 (t = (x - 4 + 0.5) / 92, so the ends are table entries round(0.5/92*255) = 1 and
 * round(91.5/92*255) = 254), and the labels' glyphs from row 17: "-1" at the left ('-' is row 3 of
 * its glyph, all 5 pixels), "+1" right-aligned to x = 96 ('+'s vertical stroke at its column 2),
 * "0" centred (its glyph's top row 0x0e: columns 1..3). */
Test(colorbar, bar_and_labels_by_hand) {
    const int w = 100, h = sal_colorbar_height(w);
    cr_assert_eq(h, 28, "4 + 10 + 3 + 7 + 4 rows");
    uint8_t *out = malloc((size_t)w * h * 3);
    cr_assert_eq(sal_colorbar(out, w, SAL_CMAP_GRAY, 1, -1.0f, 1.0f), SAL_OK);
#define PX(x, y) (out + 3 * ((size_t)(y) * w + (x)))
    expect_rgb(PX(0, 0), 255, 255, 255, "background");
    expect_rgb(PX(2, 8), 255, 255, 255, "margin left of the bar");
    expect_rgb(PX(4, 4), 1, 1, 1, "bar's left end (gray entry 1)");
    expect_rgb(PX(95, 13), 254, 254, 254, "bar's right end (gray entry 254)");
    expect_rgb(PX(50, 8), 129, 129, 129, "bar's x = 50: t = 46.5/92, entry round(128.89) = 129");
    /* "-1" from x = 4: '-' fills row 20 (17 + 3) at x = 4..8; '1' (from x = 10) has column 2 at row 17 */
    for (int x = 4; x <= 8; x++) expect_rgb(PX(x, 20), 0, 0, 0, "'-' of -1");
    expect_rgb(PX(4, 19), 255, 255, 255, "above '-'");
    expect_rgb(PX(12, 17), 0, 0, 0, "top of '1' of -1");
    /* "+1" ends at 96: 11 pixels wide from x = 85; '+' is a cross at (87, 18..22) and (85..89, 20) */
    for (int y = 18; y <= 22; y++) expect_rgb(PX(87, y), 0, 0, 0, "'+' stroke");
    for (int x = 85; x <= 89; x++) expect_rgb(PX(x, 20), 0, 0, 0, "'+' bar");
    expect_rgb(PX(87, 17), 255, 255, 255, "above '+'");
    for (int x = 92; x <= 94; x++) expect_rgb(PX(x, 23), 0, 0, 0, "foot of '1' of +1");
    /* "0" at 50 - 5/2 = 48: its top row is x = 49..51 */
    for (int x = 49; x <= 51; x++) expect_rgb(PX(x, 17), 0, 0, 0, "top of '0'");
    expect_rgb(PX(48, 17), 255, 255, 255, "corner of '0'");
    /* an unsigned bar has no middle label */
    cr_assert_eq(sal_colorbar(out, w, SAL_CMAP_GRAY, 0, 0.0f, 1.0f), SAL_OK);
    for (int x = 40; x < 60; x++)
        for (int y = 17; y < 24; y++) expect_rgb(PX(x, y), 255, 255, 255, "no middle label");
    cr_expect_eq(sal_colorbar(out, 31, SAL_CMAP_GRAY, 0, 0.0f, 1.0f), SAL_ERR_INVALID_ARG, "too narrow");
    cr_expect_eq(sal_colorbar(out, w, (sal_colormap)99, 0, 0.0f, 1.0f), SAL_ERR_INVALID_ARG, "bad colormap");
#undef PX
    free(out);
}
