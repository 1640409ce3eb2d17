/* test_prep_reference.c — salient's image preprocessing (decode, shorter-side bilinear resize,
 * centre crop, normalization) against the independent numpy implementation in
 * scripts/salient_prep.py, whose output scripts/fetch-models saves as samples-npy/<stem>.npy.
 * Only the lossless PNG samples are compared: JPEG decoders may differ by a level. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "io/io.h"
#include "testutil.h"

static void compare(const char *stem) {
    char png[1024], npy[1024], rel[256];
    snprintf(rel, sizeof rel, "samples/%s.png", stem);
    tu_src_path(rel, png, sizeof png);
    snprintf(rel, sizeof rel, "samples-npy/%s.npy", stem);
    tu_src_path(rel, npy, sizeof npy);
    FILE *f = fopen(npy, "rb");
    if (!f) cr_skip_test("%s missing: run scripts/fetch-models", npy);
    fclose(f);
    sal_error err = {0};
    float *ref = NULL;
    int ndim = 0;
    int64_t dims[SAL_MAX_DIMS];
    cr_assert_eq(sal_npy_read(npy, &ref, &ndim, dims, &err), SAL_OK, "%s", err.msg);
    cr_assert(ndim == 3 && dims[0] == 3 && dims[1] == 224 && dims[2] == 224);
    sal_image img = {0};
    cr_assert_eq(sal_image_load(png, &img, &err), SAL_OK, "%s", err.msg);
    sal_prep_opts p = sal_prep_opts_imagenet(224, 224);
    p.resize_shorter = 256;                      /* salient_prep.py: RESIZE = 256, CROP = 224 */
    for (int c = 0; c < 3; c++) { p.mean[c] = 127.f / 255.f; p.std[c] = 128.f / 255.f; }
    float *x = malloc(sizeof(float) * 3 * 224 * 224);
    cr_assert_eq(sal_preprocess(&img, &p, x, &err), SAL_OK, "%s", err.msg);
    double worst = 0;
    for (int i = 0; i < 3 * 224 * 224; i++) worst = fmax(worst, fabs((double)x[i] - ref[i]));
    /* both compute in double and round once to float32: values are within ~2 units of float32
     * rounding of numbers of magnitude ~1 */
    cr_expect_lt(worst, 1e-5, "%s: max |salient - numpy| = %g", stem, worst);
    free(x);
    free(ref);
    sal_image_free(&img);
}

Test(prep_reference, chelsea_png_matches_numpy) { compare("chelsea"); }
Test(prep_reference, coffee_png_matches_numpy) { compare("coffee"); }
Test(prep_reference, astronaut_png_matches_numpy) { compare("astronaut"); }
