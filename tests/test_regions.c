/* test_regions.c — the audit's region metrics (host/post/regions.c over kernels/region_elem.h)
 * on hand-made maps: a uniform map, one hot corner, a single pixel, a mask, ties and a
 * non-square map. Every expected value is counted by hand from the definitions in regions.h /
 * region_elem.h (pixel membership by pixel centre) and written out here. */
#include <criterion/criterion.h>

#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "post/regions.h"
#include "testutil.h"

TestSuite(regions);

#define TOL 1e-9

static float *filled(int h, int w, float v) {
    float *m = malloc(sizeof(float) * (size_t)h * (size_t)w);
    cr_assert(m);
    for (int i = 0; i < h * w; i++) m[i] = v;
    return m;
}

static void expect_near(double got, double want, const char *what) {
    cr_expect(fabs(got - want) <= TOL, "%s = %.12g, expected %.12g", what, got, want);
}

static sal_region_stats metrics(const float *m, int h, int w, const uint8_t *mask) {
    sal_region_stats st;
    sal_error err = {0};
    cr_assert_eq(sal_region_metrics(m, h, w, mask, &st, &err), SAL_OK, "%s", err.msg);
    return st;
}

/* 20x20: the centre box holds rows/cols 5..14 (100 pixels), the border band rows/cols 0,1,18,19
 * (400 - 16*16 = 144 pixels), each corner square rows/cols 0..2 or 17..19 (9 pixels). */
Test(regions, uniform_map) {
    float *m = filled(20, 20, 0.5f);
    sal_region_stats st = metrics(m, 20, 20, NULL);
    expect_near(st.mass[SAL_RM_CENTER], 100.0 / 400, "center");
    expect_near(st.mass[SAL_RM_BORDER], 144.0 / 400, "border");
    expect_near(st.mass[SAL_RM_TL], 9.0 / 400, "tl");
    expect_near(st.mass[SAL_RM_TR], 9.0 / 400, "tr");
    expect_near(st.mass[SAL_RM_BL], 9.0 / 400, "bl");
    expect_near(st.mass[SAL_RM_BR], 9.0 / 400, "br");
    cr_expect(isnan(st.mass[SAL_RM_MASK]), "no mask: mass_mask is NaN");
    expect_near(st.concentration, 20.0 / 400, "concentration (top 5% = 20 pixels)");
    expect_near(st.entropy, log2(400.0), "entropy");
    expect_near(st.total, 200.0, "total");
    free(m);
}

Test(regions, one_hot_corner) {
    float *m = filled(20, 20, 0.0f);
    for (int y = 0; y < 3; y++)
        for (int x = 0; x < 3; x++) m[y * 20 + x] = 2.0f;   /* the top-left corner square */
    sal_region_stats st = metrics(m, 20, 20, NULL);
    expect_near(st.mass[SAL_RM_TL], 1.0, "tl");
    expect_near(st.mass[SAL_RM_TR], 0.0, "tr");
    expect_near(st.mass[SAL_RM_BL], 0.0, "bl");
    expect_near(st.mass[SAL_RM_BR], 0.0, "br");
    expect_near(st.mass[SAL_RM_CENTER], 0.0, "center");
    expect_near(st.mass[SAL_RM_BORDER], 8.0 / 9, "border (all but pixel (2,2))");
    expect_near(st.concentration, 1.0, "concentration");
    expect_near(st.entropy, log2(9.0), "entropy");
    free(m);
}

Test(regions, one_hot_corner_each_side) {
    const int ys[4] = {0, 0, 19, 19}, xs[4] = {0, 19, 0, 19};
    const sal_region_metric want[4] = {SAL_RM_TL, SAL_RM_TR, SAL_RM_BL, SAL_RM_BR};
    for (int k = 0; k < 4; k++) {
        float *m = filled(20, 20, 0.0f);
        m[ys[k] * 20 + xs[k]] = 1.0f;
        sal_region_stats st = metrics(m, 20, 20, NULL);
        for (int r = SAL_RM_TL; r <= SAL_RM_BR; r++)
            expect_near(st.mass[r], r == (int)want[k] ? 1.0 : 0.0, sal_region_name((sal_region_metric)r));
        expect_near(st.mass[SAL_RM_BORDER], 1.0, "border");
        free(m);
    }
}

Test(regions, single_pixel) {
    float *m = filled(20, 20, 0.0f);
    m[10 * 20 + 10] = 5.0f;
    sal_region_stats st = metrics(m, 20, 20, NULL);
    expect_near(st.mass[SAL_RM_CENTER], 1.0, "center");
    expect_near(st.mass[SAL_RM_BORDER], 0.0, "border");
    for (int r = SAL_RM_TL; r <= SAL_RM_BR; r++) expect_near(st.mass[r], 0.0, sal_region_name((sal_region_metric)r));
    expect_near(st.concentration, 1.0, "concentration");
    expect_near(st.entropy, 0.0, "entropy");
    free(m);
}

/* 28x28, the watermark fixtures' size: box rows 7..20 (14*14 = 196), band rows 0..2 and 25..27
 * (784 - 22*22 = 300), corner squares rows 0..3 / 24..27 (16), top 5% = ceil(39.2) = 40. */
Test(regions, size_28) {
    float *m = filled(28, 28, 1.0f);
    sal_region_stats st = metrics(m, 28, 28, NULL);
    expect_near(st.mass[SAL_RM_CENTER], 196.0 / 784, "center");
    expect_near(st.mass[SAL_RM_BORDER], 300.0 / 784, "border");
    expect_near(st.mass[SAL_RM_BL], 16.0 / 784, "bl");
    expect_near(st.concentration, 40.0 / 784, "concentration");
    free(m);
}

/* 10x40: centre rows with |cy - 5| <= 2.5, rows 2..7 (ties count in), cols 10..29: 120 pixels;
 * band rows 0 and 9 (cy < 1) or cols 0..3 / 36..39 (cx < 4): 80 + 8*8 = 144; corner tl rows 0
 * (cy < 1.5), cols 0..5 (cx < 6): 6 pixels. */
Test(regions, non_square) {
    float *m = filled(10, 40, 1.0f);
    sal_region_stats st = metrics(m, 10, 40, NULL);
    expect_near(st.mass[SAL_RM_CENTER], 120.0 / 400, "center");
    expect_near(st.mass[SAL_RM_BORDER], 144.0 / 400, "border");
    expect_near(st.mass[SAL_RM_TL], 6.0 / 400, "tl");
    expect_near(st.mass[SAL_RM_BR], 6.0 / 400, "br");
    free(m);
}

Test(regions, mask) {
    float *m = filled(20, 20, 1.0f);
    m[0] = 101.0f;                       /* total 500: pixel (0,0) holds 101 */
    uint8_t mask[400] = {0};
    for (int y = 0; y < 20; y++)
        for (int x = 0; x < 10; x++) mask[y * 20 + x] = 255;   /* the left half */
    sal_region_stats st = metrics(m, 20, 20, mask);
    expect_near(st.mass[SAL_RM_MASK], (101.0 + 199.0) / 500, "mask");
    expect_near(st.mass[SAL_RM_TL], (101.0 + 8.0) / 500, "tl");
    free(m);
}

/* top 20 pixels hold 3 each, the other 380 hold 1: 60 of 440 */
Test(regions, concentration_two_levels) {
    float *m = filled(20, 20, 1.0f);
    for (int i = 0; i < 20; i++) m[i * 20 + (i * 7) % 20] = 3.0f;
    sal_region_stats st = metrics(m, 20, 20, NULL);
    expect_near(st.concentration, 60.0 / 440, "concentration");
    /* entropy: 20 pixels at p = 3/440, 380 at 1/440 */
    expect_near(st.entropy, -(20 * (3.0 / 440) * log2(3.0 / 440) + 380 * (1.0 / 440) * log2(1.0 / 440)), "entropy");
    free(m);
}

Test(regions, no_mass_is_nan) {
    float *m = filled(8, 8, -1.0f);   /* negatives count as 0 */
    sal_region_stats st = metrics(m, 8, 8, NULL);
    for (int r = 0; r < SAL_RM_COUNT; r++) cr_expect(isnan(st.mass[r]), "%s", sal_region_name((sal_region_metric)r));
    cr_expect(isnan(st.concentration) && isnan(st.entropy));
    m[3 * 8 + 3] = NAN;
    m[4 * 8 + 4] = 2.0f;               /* one pixel of mass among negatives and a NaN */
    st = metrics(m, 8, 8, NULL);
    expect_near(st.mass[SAL_RM_CENTER], 1.0, "center");
    expect_near(st.entropy, 0.0, "entropy");
    expect_near(st.total, 2.0, "total");
    free(m);
}

Test(regions, bad_arguments) {
    sal_region_stats st;
    sal_error err = {0};
    float v = 1;
    cr_expect_eq(sal_region_metrics(NULL, 1, 1, NULL, &st, &err), SAL_ERR_INVALID_ARG);
    cr_expect(err.msg[0]);
    cr_expect_eq(sal_region_metrics(&v, 0, 1, NULL, &st, NULL), SAL_ERR_INVALID_ARG);
    cr_expect_eq(sal_region_metrics(&v, 1, 1, NULL, NULL, NULL), SAL_ERR_INVALID_ARG);
    cr_expect_str_eq(sal_region_name(SAL_RM_BL), "bl");
    cr_expect_str_eq(sal_region_words(SAL_RM_BL), "bottom-left corner");
    cr_expect_str_eq(sal_region_name(SAL_RM_COUNT), "?");
}

/* The top 5% are selected (quickselect), not sorted: on random maps with many ties (values on a
 * grid of 8 levels, zeros included) and on distinct values, concentration equals the sum of the
 * k largest found by a full sort here, for sizes from 1x1 to 97x61. */
static int cmp_desc_ref(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x < y) - (x > y);
}

Test(regions, concentration_equals_a_full_sort) {
    uint64_t seed = tu_fresh_seed();
    const int sizes[][2] = {{1, 1}, {2, 3}, {7, 7}, {20, 20}, {28, 28}, {97, 61}, {224, 224}};
    for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++)
        for (int ties = 0; ties < 2; ties++) {
            const int h = sizes[s][0], w = sizes[s][1], n = h * w;
            float *m = malloc(sizeof(float) * n), *ref = malloc(sizeof(float) * n);
            for (int i = 0; i < n; i++) {
                float u = tu_uniform(&seed, 0, 1);
                m[i] = ties ? floorf(u * 8) / 8 : u;
                ref[i] = m[i];
            }
            m[0] = 0.5f;   /* at least one positive value */
            ref[0] = 0.5f;
            qsort(ref, (size_t)n, sizeof *ref, cmp_desc_ref);
            size_t k = (size_t)ceil(SAL_CONCENTRATION_TOP * n - 1e-9);
            if (k < 1) k = 1;
            double top = 0, total = 0;
            for (size_t i = 0; i < k; i++) top += ref[i];
            for (int i = 0; i < n; i++) total += ref[i];
            sal_region_stats st;
            cr_assert_eq(sal_region_metrics(m, h, w, NULL, &st, NULL), SAL_OK);
            cr_expect(fabs(st.concentration - top / total) <= 1e-12, "%dx%d ties=%d (seed %llu): %.15g vs %.15g", h, w,
                      ties, (unsigned long long)seed, st.concentration, top / total);
            free(m);
            free(ref);
        }
}
