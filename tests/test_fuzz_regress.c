/* test_fuzz_regress.c — the fuzzing regression corpus, replayed by the normal test suite (the
 * release build and, in scripts/test, the ASan+UBSan build with LeakSanitizer on): every file of
 * tests/fuzz/regress/{onnx,image,npy}/ goes through the same entry points as the libFuzzer
 * harnesses (tests/fuzz/fuzz_entry.c). A crash, a sanitizer report or a leak fails the test.
 *
 * The files named issue10-*.onnx (scripts/make-hostile-models.py) are the findings of issue 10,
 * one lie each; for them and for the fuzzers' own findings the table below also fixes the status
 * and a piece of the message each must give. Further tests: the plan cap without a session
 * limit, NaN weights carried through, sal_tw_exp on NaN, the image pixel limit. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fuzz/fuzz_entry.h"
#include "io/io.h"
#include "sal_hd.h"
#include "salient.h"
#include "twin_elem.h"

#define REGRESS SAL_SOURCE_DIR "/tests/fuzz/regress"

static uint8_t *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    uint8_t *buf = malloc(n > 0 ? (size_t)n : 1);
    cr_assert_not_null(buf);
    cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static int by_name(const struct dirent **a, const struct dirent **b) {
    return strcmp((*a)->d_name, (*b)->d_name);
}

/* Every regular file of REGRESS/dir through fn; returns how many ran. */
static int replay(const char *dir, int (*fn)(const uint8_t *, size_t)) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", REGRESS, dir);
    struct dirent **names;
    int n = scandir(path, &names, NULL, by_name);
    cr_assert_geq(n, 0, "cannot list %s", path);
    int ran = 0;
    for (int i = 0; i < n; i++) {
        if (names[i]->d_name[0] != '.') {
            char file[1400];
            snprintf(file, sizeof file, "%s/%s", path, names[i]->d_name);
            size_t len;
            uint8_t *buf = read_file(file, &len);
            fn(buf, len);   /* any status is fine: the finding was a crash, a report or a leak */
            free(buf);
            ran++;
        }
        free(names[i]);
    }
    free(names);
    return ran;
}

Test(fuzz_regress, onnx_corpus) { cr_expect_geq(replay("onnx", sal_fuzz_onnx_one), 19); }
Test(fuzz_regress, image_corpus) { replay("image", sal_fuzz_image_one); }
Test(fuzz_regress, npy_corpus) { replay("npy", sal_fuzz_npy_one); }

/* ------------------------------------------------------------------------------------------------ */
/* What each known finding must answer                                                              */

typedef struct expect {
    const char *file;
    sal_status status;
    const char *needle;   /* in the message */
} expect;

static const expect expected[] = {
    {"issue10-conv-pads-int64max.onnx", SAL_ERR_SHAPE, "pads[0] = 9223372036854775807 must be in 0..2^24"},
    {"issue10-conv-pads-huge.onnx", SAL_ERR_SHAPE, "pads[0] = 2147483648"},
    {"issue10-pool-stride-huge.onnx", SAL_ERR_SHAPE, "strides[0] = 1099511627776"},
    {"issue10-pad-int64max.onnx", SAL_ERR_SHAPE, "pads[2] = 9223372036854775807 is beyond +-2^32"},
    {"issue10-init-declares-2p40.onnx", SAL_ERR_PARSE, "tensor 'c' declares 1099511627776 elements but the file holds 1"},
    {"issue10-init-no-name.onnx", SAL_ERR_PARSE, "initializer 0 has no name"},
    {"issue10-input-100000x100000.onnx", SAL_ERR_NOMEM, "over the session's limit of 64 MiB"},
    {"issue10-dangling-input.onnx", SAL_ERR_PARSE, "reads 'ghost', which no node, initializer or graph input provides"},
    {"issue10-cycle.onnx", SAL_ERR_PARSE, "cycle"},
    {"issue10-opset-99.onnx", SAL_ERR_UNSUPPORTED, "opset 99"},
    {"issue10-external-data.onnx", SAL_ERR_UNSUPPORTED, "tensor 'c' keeps its data in an external file"},
    {"issue10-weights-nan.onnx", SAL_OK, ""},
    {"constant-unnamed-attribute.onnx", SAL_ERR_PARSE, "unnamed attribute"},
    {"constantofshape-3g-elements.onnx", SAL_ERR_UNSUPPORTED, "ConstantOfShape of shape"},
    {"constantofshape-slow-fill.onnx", SAL_ERR_UNSUPPORTED, "over 2^24 elements"},
    {"gather-missing-input.onnx", SAL_ERR_SHAPE, "node 'n' (Gather) has 1 inputs, needs 2"},
    {"pad-overflow.onnx", SAL_ERR_SHAPE, "(Pad): pads["},
    {"reshape-overflow.onnx", SAL_ERR_SHAPE, "(Reshape): shape"},
    {"output-not-per-image.onnx", SAL_ERR_SHAPE, "not 2 rows of classes (one per image of the batch)"},
};

Test(fuzz_regress, known_findings_give_their_status_and_message) {
    for (size_t i = 0; i < sizeof expected / sizeof expected[0]; i++) {
        char file[1200];
        snprintf(file, sizeof file, "%s/onnx/%s", REGRESS, expected[i].file);
        size_t len;
        uint8_t *buf = read_file(file, &len);
        sal_error err = {0};
        int st = sal_fuzz_onnx_run(buf, len, &err);
        free(buf);
        cr_expect_eq(st, (int)expected[i].status, "%s: status %s, expected %s (%s)", expected[i].file,
                     sal_status_str((sal_status)st), sal_status_str(expected[i].status), err.msg);
        cr_expect(strstr(err.msg, expected[i].needle) != NULL, "%s: message '%s' lacks '%s'",
                  expected[i].file, err.msg, expected[i].needle);
    }
}

/* ------------------------------------------------------------------------------------------------ */
/* Memory bounds, NaN                                                                               */

static sal_model *load_regress(const char *name) {
    char file[1200];
    snprintf(file, sizeof file, "%s/onnx/%s", REGRESS, name);
    sal_model *m = NULL;
    sal_error err = {0};
    cr_assert_eq(sal_model_load(file, &m, &err), SAL_OK, "%s", err.msg);
    return m;
}

/* No session limit: the cap is the device's total memory, checked before allocating (the
 * input alone is 3 x 100000 x 100000 floats, 112 GiB, more than this machine or CI has). */
Test(fuzz_regress, plan_over_the_device_total_is_refused_before_allocating) {
    sal_model *m = load_regress("issue10-input-100000x100000.onnx");
    sal_session_opts o = sal_session_opts_default();
    o.device = SAL_DEVICE_CPU;
    o.threads = 1;
    sal_session *s = NULL;
    cr_assert_eq(sal_session_create(m, &o, &s, NULL), SAL_OK);
    size_t avail = 0, total = 0;
    cr_assert_eq(sal_session_mem_info(s, &avail, &total), SAL_OK);
    cr_assert_lt(total, (size_t)3 * 100000 * 100000 * 4, "this machine has more memory than the test assumes");
    cr_expect_eq(sal_session_plan(s, 1, 0, 0), SAL_ERR_NOMEM);
    cr_expect(strstr(sal_session_error(s), "over the device's total") != NULL, "%s", sal_session_error(s));
    cr_expect(strstr(sal_session_error(s), "issue10-input-100000x100000.onnx") != NULL, "%s", sal_session_error(s));
    sal_session_free(s);
    sal_model_free(m);
}

/* NaN weights are carried through (no UB on the way, checked by UBSan in the sanitizer build):
 * Conv with NaN weights gives NaN everywhere, and Softmax (sal_tw_exp) of NaN is NaN. */
Test(fuzz_regress, nan_weights_give_nan_logits) {
    sal_model *m = load_regress("issue10-weights-nan.onnx");
    sal_session_opts o = sal_session_opts_default();
    o.device = SAL_DEVICE_CPU;
    o.threads = 1;
    sal_session *s = NULL;
    cr_assert_eq(sal_session_create(m, &o, &s, NULL), SAL_OK);
    float x[3 * 8 * 8] = {0};   /* (1,3,8,8) */
    float y[4 * 8 * 8];         /* (1,4,8,8) */
    cr_assert_eq(sal_forward(s, x, 1, 8, 8, y), SAL_OK, "%s", sal_session_error(s));
    cr_assert_eq(sal_session_num_classes(s), 4 * 8 * 8);
    for (int i = 0; i < 4 * 8 * 8; i++) cr_expect(isnan(y[i]), "y[%d] = %g", i, (double)y[i]);
    sal_session_free(s);
    sal_model_free(m);
}

Test(fuzz_regress, tw_exp_of_nan_is_nan_and_of_numbers_unchanged) {
    cr_expect(isnan(sal_tw_exp(NAN)));
    cr_expect(isnan(sal_tw_exp(-NAN)));
    cr_expect_float_eq(sal_tw_exp(0.f), 1.f, 1e-7f);
    cr_expect_float_eq(sal_tw_exp(1.f), 2.71828182845904523536f, 2e-7f * 2.71828182845904523536f);   /* 2 ulp, as documented */
    cr_expect_float_eq(sal_tw_exp(INFINITY), sal_tw_exp(88.f), 0.f);       /* clamped, as documented */
}

/* The pixel limit: a 9x7 image (63 pixels) passes a limit of 63 and is refused by 62, with the
 * size and the limit named, from its header (the decoder never runs). */
Test(fuzz_regress, pixel_limit) {
    char dir[512], path[600];
    snprintf(dir, sizeof dir, "%s/salient-pixels-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    cr_assert_not_null(mkdtemp(dir));
    uint8_t rgb[7 * 9 * 3] = {0};   /* (7,9,3) */
    const char *ext[2] = {"png", "pgm"};
    for (int k = 0; k < 2; k++) {
        snprintf(path, sizeof path, "%s/small.%s", dir, ext[k]);
        if (k == 0) {
            cr_assert_eq(sal_png_write_rgb(path, 9, 7, rgb, NULL), SAL_OK);
        } else {   /* P5, 9x7, maxval 255 */
            FILE *f = fopen(path, "wb");
            cr_assert_not_null(f);
            fprintf(f, "P5\n9 7\n255\n");
            cr_assert_eq(fwrite(rgb, 1, 63, f), 63);
            fclose(f);
        }
        sal_image img;
        sal_error err = {0};
        cr_expect_eq(sal_image_load_limit(path, 63, &img, &err), SAL_OK, "%s", err.msg);
        sal_image_free(&img);
        cr_expect_eq(sal_image_load_limit(path, 62, &img, &err), SAL_ERR_UNSUPPORTED, "%s", ext[k]);
        cr_expect(strstr(err.msg, "9x7 = 63 pixels, over the limit of 62") != NULL, "%s", err.msg);
        cr_expect_null(img.pix);
        unlink(path);
    }
    rmdir(dir);
}

/* `predict` on a model declaring a 100000x100000 input: exit 1 with the input named, before any
 * allocation of its size (it mallocked 960 GB: host/cli/predict.c). */
Test(fuzz_regress, predict_refuses_a_huge_declared_input) {
    char cmd[2048], out[2048] = {0};
    snprintf(cmd, sizeof cmd, "'%s/salient' predict -m '%s/onnx/issue10-input-100000x100000.onnx' "
             "'%s/samples-npy/dog.npy' 2>&1", SAL_BINARY_DIR, REGRESS, SAL_SOURCE_DIR);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    size_t got = fread(out, 1, sizeof out - 1, p);
    out[got] = 0;
    int rc = pclose(p);
    cr_expect(WIFEXITED(rc) && WEXITSTATUS(rc) == 1, "exit status %d: %s", rc, out);
    cr_expect(strstr(out, "input 'x' is (N,3,100000,100000)") != NULL, "%s", out);
}
