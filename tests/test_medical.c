/* test_medical.c — medical-image inputs: 16-bit grayscale PNG read at full precision
 * (tests/fixtures/medical/, written by scripts/make-medical-fixtures.py with its own PNG encoder;
 * PIL decodes the same samples). The expected values are the file's samples * 255/65535, from
 * the script; a reduction to 8 bits would merge the column of samples 1000..1023 into one level. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "io/io.h"
#include "testutil.h"

Test(png16, read_at_full_precision_until_preprocessing) {
    char path[1024], vpath[1024];
    tu_src_path("tests/fixtures/medical/gray16.png", path, sizeof path);
    tu_src_path("tests/fixtures/medical/gray16.values.npy", vpath, sizeof vpath);
    sal_image img = {0};
    sal_error err = {0};
    float *fpix = NULL;
    cr_assert_eq(sal_image_load_full(path, 0, &img, &fpix, &err), SAL_OK, "%s", err.msg);
    cr_assert(img.w == 20 && img.h == 24 && img.c == 1, "20x24 gray, got %dx%d c=%d", img.w, img.h, img.c);
    cr_assert_not_null(fpix, "a 16-bit PNG keeps its samples at full precision");
    /* the reference: float64 .npy from the script (a 10-byte preamble, then the header) */
    FILE *f = fopen(vpath, "rb");
    cr_assert_not_null(f);
    unsigned char hdr[10];
    cr_assert_eq(fread(hdr, 1, 10, f), 10u);
    unsigned hlen = hdr[8] | (unsigned)hdr[9] << 8;
    cr_assert_eq(fseek(f, 10 + (long)hlen, SEEK_SET), 0);
    double ref[24 * 20];
    cr_assert_eq(fread(ref, sizeof(double), 24 * 20, f), (size_t)(24 * 20));
    fclose(f);
    double worst = 0;
    int pix_bad = 0;
    for (int i = 0; i < 24 * 20; i++) {
        double d = fabs(fpix[i] - ref[i]);
        if (d > worst) worst = d;
        pix_bad += img.pix[i] != (int)lround(ref[i]);
    }
    cr_expect(worst < 1e-4, "samples differ from v*255/65535 by up to %g", worst);
    cr_expect_eq(pix_bad, 0, "8-bit copy (for overlays): %d samples not rounded", pix_bad);
    /* preprocessing at the image's own size (stretch: identity geometry), scale 1/255, mean 0,
     * std 1: out = sample / 65535, and the column 1000..1023 stays 24 distinct values */
    sal_prep_opts o = sal_prep_opts_gray(24, 20);
    float out[24 * 20];
    cr_assert_eq(sal_preprocess_full(&img, fpix, &o, out, &err), SAL_OK, "%s", err.msg);
    double pw = 0;
    for (int i = 0; i < 24 * 20; i++) {
        double d = fabs(out[i] - ref[i] / 255.0);
        if (d > pw) pw = d;
    }
    cr_expect(pw < 1e-6, "preprocessed values differ from sample/65535 by %g", pw);
    int distinct = 1;
    for (int y = 1; y < 24; y++) distinct += out[y * 20] != out[(y - 1) * 20];
    cr_expect_eq(distinct, 24, "samples 1000..1023 stay distinct after preprocessing (%d levels)", distinct);
    /* the 8-bit path (sal_preprocess) merges that column: what full precision is for */
    float out8[24 * 20];
    cr_assert_eq(sal_preprocess(&img, &o, out8, &err), SAL_OK, "%s", err.msg);
    int distinct8 = 1;
    for (int y = 1; y < 24; y++) distinct8 += out8[y * 20] != out8[(y - 1) * 20];
    cr_expect_lt(distinct8, 24, "the 8-bit copy has fewer levels (%d)", distinct8);
    sal_image_free(&img);
    free(fpix);
}
