/* test_medical.c — medical-image inputs (tests/fixtures/medical/, written by
 * scripts/make-medical-fixtures.py):
 *  - 16-bit grayscale PNG read at full precision (the script's own PNG encoder; PIL decodes the
 *    same samples): the file's samples * 255/65535; a reduction to 8 bits would merge the column
 *    of samples 1000..1023 into one level;
 *  - DICOM through GDCM: the CT slice Debian's python3-pydicom ships, against pydicom's own
 *    modality values (exact: integers plus an intercept) and DICOM's linear VOI function written
 *    out in the script (1e-3 of 255: float32 against float64); a MONOCHROME1 file of ours with a
 *    rescale slope and two windows; predict on it against the library fed the expected levels. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "io/io.h"
#include "testutil.h"
#include "testproc.h"

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

/* ------------------------------------------------------------------------------------------------ */
/* DICOM: the CT slice of Debian's python3-pydicom, and a MONOCHROME1 file of our own               */

#define CT_SMALL "/usr/lib/python3/dist-packages/pydicom/data/test_files/CT_small.dcm"

static double max_abs_diff(const float *a, const float *b, int64_t n) {
    double m = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (!(d <= m)) m = d;   /* NaN counts */
    }
    return m;
}

Test(dicom, ct_small_matches_pydicom) {
    if (access(CT_SMALL, R_OK) != 0) cr_skip_test("%s absent (Debian's python3-pydicom)", CT_SMALL);
    sal_dicom d;
    sal_error err = {0};
    cr_assert_eq(sal_dicom_read(CT_SMALL, 0, &d, &err), SAL_OK, "%s", err.msg);
    cr_assert(d.w == 128 && d.h == 128, "128x128, got %dx%d", d.w, d.h);
    cr_expect(d.slope == 1 && d.intercept == -1024, "rescale 1, -1024: got %g, %g", d.slope, d.intercept);
    cr_expect(!d.has_window && !d.monochrome1, "no window, MONOCHROME2");
    float *v = tp_load_npy("tests/fixtures/medical/ct_small.values.npy", 128 * 128);
    double dv = max_abs_diff(d.values, v, 128 * 128);
    cr_expect(dv == 0, "Hounsfield values differ from pydicom's by %g", dv);
    float *g = tp_load_npy("tests/fixtures/medical/ct_small.gray.npy", 128 * 128);
    float *g40 = tp_load_npy("tests/fixtures/medical/ct_small.gray_40_400.npy", 128 * 128);
    float gray[128 * 128];
    uint8_t pix[128 * 128];
    cr_assert_eq(sal_dicom_to_gray(&d, 0, 0, gray, pix, &err), SAL_OK, "%s", err.msg);
    double dg = max_abs_diff(gray, g, 128 * 128);
    cr_expect(dg < 1e-3, "gray over the image's range differs by %g", dg);
    cr_assert_eq(sal_dicom_to_gray(&d, 40, 400, gray, pix, &err), SAL_OK, "%s", err.msg);
    double dg40 = max_abs_diff(gray, g40, 128 * 128);
    cr_expect(dg40 < 1e-3, "gray through window 40/400 differs by %g", dg40);
    int bad = 0;
    for (int i = 0; i < 128 * 128; i++) bad += pix[i] != (int)lround(g40[i]);
    cr_expect_eq(bad, 0, "%d rounded bytes wrong", bad);
    free(v); free(g); free(g40);
    sal_dicom_free(&d);
    cr_expect_null(d.values);
}

Test(dicom, monochrome1_rescale_and_the_files_window) {
    char path[1024];
    tu_src_path("tests/fixtures/medical/mono1.dcm", path, sizeof path);
    sal_dicom d;
    sal_error err = {0};
    cr_assert_eq(sal_dicom_read(path, 0, &d, &err), SAL_OK, "%s", err.msg);
    cr_assert(d.w == 10 && d.h == 12, "10 wide, 12 high: got %dx%d", d.w, d.h);
    cr_expect(d.slope == 0.5 && d.intercept == -100, "rescale 0.5, -100: got %g, %g", d.slope, d.intercept);
    cr_expect(d.has_window && d.window_center == 300 && d.window_width == 800, "the first window, 300/800: %d %g %g",
              d.has_window, d.window_center, d.window_width);
    cr_expect(d.monochrome1, "MONOCHROME1");
    float *v = tp_load_npy("tests/fixtures/medical/mono1.values.npy", 120);
    float *g = tp_load_npy("tests/fixtures/medical/mono1.gray.npy", 120);
    cr_expect(max_abs_diff(d.values, v, 120) == 0, "modality values differ from pydicom's");
    float gray[120];
    cr_assert_eq(sal_dicom_to_gray(&d, 0, 0, gray, NULL, &err), SAL_OK, "%s", err.msg);
    double dg = max_abs_diff(gray, g, 120);
    cr_expect(dg < 1e-3, "windowed, inverted gray differs by %g", dg);
    cr_expect_eq(sal_dicom_to_gray(&d, 40, 0.5, gray, NULL, &err), SAL_ERR_INVALID_ARG, "a width below 1 is refused");
    free(v); free(g);
    sal_dicom_free(&d);
    /* not DICOM, and absent */
    tu_src_path("tests/fixtures/medical/gray16.png", path, sizeof path);
    cr_expect_eq(sal_dicom_read(path, 0, &d, &err), SAL_ERR_PARSE, "a PNG is no DICOM file");
    cr_expect(strstr(err.msg, "gray16.png"), "the message names the file: %s", err.msg);
    cr_expect_eq(sal_dicom_read("/nonexistent/x.dcm", 0, &d, &err), SAL_ERR_IO);
    cr_assert_eq(sal_dicom_read(CT_SMALL, 100, &d, &err), access(CT_SMALL, R_OK) ? SAL_ERR_IO : SAL_ERR_UNSUPPORTED,
                 "128x128 over a 100-pixel limit: %s", err.msg);
}

/* salient predict on mono1.dcm with a one-channel model (the watermark fixture, 28x28, mean 0,
 * std 1; --crop 0 stretches it to 28x28): its logits are those of the expected gray levels preprocessed and run through the
 * library (the file's window, MONOCHROME1 inverted, kept as floats); --dicom-window changes them. */
Test(dicom, predict_reads_it_through_the_window) {
    char dcm[1024], model[1024];
    tu_src_path("tests/fixtures/medical/mono1.dcm", dcm, sizeof dcm);
    tu_src_path("tests/fixtures/watermark/clean.onnx", model, sizeof model);
    float *g = tp_load_npy("tests/fixtures/medical/mono1.gray.npy", 120);
    sal_image img = {10, 12, 1, calloc(120, 1)};
    sal_prep_opts p = sal_prep_opts_gray(28, 28);
    float x[28 * 28], ref[10];
    sal_error err = {0};
    cr_assert_eq(sal_preprocess_full(&img, g, &p, x, &err), SAL_OK, "%s", err.msg);
    sal_model *m;
    sal_session *s;
    cr_assert_eq(tu_open("tests/fixtures/watermark/clean.onnx", SAL_DEVICE_CPU, &m, &s, &err), SAL_OK, "%s", err.msg);
    cr_assert_eq(sal_forward(s, x, 1, 28, 28, ref), SAL_OK, "%s", sal_session_error(s));
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "%s/salient predict --device cpu --json --crop 0 -m '%s' '%s' 2>&1", SAL_BINARY_DIR, model, dcm);
    FILE *f = popen(cmd, "r");
    cr_assert_not_null(f);
    char out[8192];
    size_t n = fread(out, 1, sizeof out - 1, f);
    out[n] = 0;
    cr_expect_eq(pclose(f), 0, "predict: %s", out);
    const char *l = strstr(out, "\"logits\": [");
    cr_assert_not_null(l, "logits in: %s", out);
    l += 11;
    double worst = 0;
    for (int k = 0; k < 10; k++) {
        char *end;
        double z = strtod(l, &end);
        cr_assert(end != l, "10 logits: %s", out);
        if (fabs(z - ref[k]) > worst) worst = fabs(z - ref[k]);
        l = end + (*end == ',' ? 1 : 0);
    }
    cr_expect(worst < 1e-5, "predict's logits differ from the expected gray's by %g:\n%s", worst, out);
    snprintf(cmd, sizeof cmd, "%s/salient predict --device cpu --json --crop 0 --dicom-window 40,400 -m '%s' '%s' 2>&1",
             SAL_BINARY_DIR, model, dcm);
    f = popen(cmd, "r");
    n = fread(out, 1, sizeof out - 1, f);
    out[n] = 0;
    cr_expect_eq(pclose(f), 0, "predict --dicom-window: %s", out);
    l = strstr(out, "\"logits\": [");
    cr_assert_not_null(l, "%s", out);
    cr_expect(fabs(strtod(l + 11, NULL) - ref[0]) > 1e-3, "another window, other logits: %s", out);
    snprintf(cmd, sizeof cmd, "%s/salient predict --dicom-window 40 -m '%s' '%s' >/dev/null 2>&1", SAL_BINARY_DIR, model, dcm);
    int st = system(cmd);
    cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 2, "--dicom-window without a width: usage error (exit 2)");
    free(g);
    sal_image_free(&img);
    sal_session_free(s);
    sal_model_free(m);
}
