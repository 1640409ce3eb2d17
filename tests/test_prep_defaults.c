/* test_prep_defaults.c — the default preprocessing never enlarges an image in order to crop it
 * (sal_prep_opts.crop_no_enlarge, set by the CLI unless --crop is given): an image already at the
 * model's input size is taken whole, pixel for pixel; a smaller one is stretched; larger ones get
 * the usual resize-then-centre-crop. Geometry against hand-computed sizes, and the program's
 * logits for a 32x32 photo into the 32x32 fixture CNN against those of the same pixels normalized
 * by hand ((p/255 - mean)/std, ImageNet's mean and std: the fixture has no metadata). */
#include <criterion/criterion.h>

#include <errno.h>
#include <math.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "salient.h"
#include "io/io.h"

#define SALIENT SAL_BINARY_DIR "/salient"
#define TINYCNN SAL_SOURCE_DIR "/tests/fixtures/methods/tinycnn.onnx"

static void geometry(int img_w, int img_h, const sal_prep_opts *o, int want_rh, int want_rw, int want_top,
                     int want_left) {
    int rh, rw, top, left;
    cr_assert_eq(sal_prep_geometry(img_w, img_h, o, &rh, &rw, &top, &left), SAL_OK, "%dx%d", img_w, img_h);
    cr_expect(rh == want_rh && rw == want_rw && top == want_top && left == want_left,
              "%dx%d image (w x h), resize_shorter %d, no_enlarge %d: resized %dx%d crop at (%d,%d), expected "
              "%dx%d at (%d,%d)", img_w, img_h, o->resize_shorter, o->crop_no_enlarge, rh, rw, top, left,
              want_rh, want_rw, want_top, want_left);
}

Test(prep_defaults, geometry_never_enlarges_to_crop) {
    sal_prep_opts o = sal_prep_opts_imagenet(224, 224);   /* shorter side to 256, crop 224 */
    cr_assert_eq(o.resize_shorter, 256);
    /* the plain convention: every image goes to 256 and is cropped */
    geometry(224, 224, &o, 256, 256, 16, 16);
    /* never enlarging to crop */
    o.crop_no_enlarge = 1;
    geometry(224, 224, &o, 224, 224, 0, 0);      /* at the input size: taken whole */
    geometry(100, 100, &o, 224, 224, 0, 0);      /* smaller: stretched */
    geometry(240, 240, &o, 240, 240, 8, 8);      /* a little larger: cropped, not resized */
    geometry(640, 480, &o, 256, 341, 16, 58);    /* larger than 256: the usual 256 then crop */
    geometry(300, 200, &o, 224, 336, 0, 56);     /* 200 < 224: shorter side raised to 224, 300*224/200 = 336 */
    geometry(230, 224, &o, 224, 230, 0, 3);      /* the shorter side already 224 */
    /* a non-square input: 224x320 (h x w) from a 320x224 image is exact */
    sal_prep_opts r = sal_prep_opts_imagenet(224, 320);
    r.crop_no_enlarge = 1;
    geometry(320, 224, &r, 224, 320, 0, 0);
    geometry(200, 224, &r, 358, 320, 67, 0);     /* 200 wide < 320: raised to 320 wide, 224*320/200 = 358.4 -> 358 high */
}

/* ------------------------------------------------------------------------------------------------ */

static int run_capture(const char *const *argv, char *out, size_t len) {
    char path[] = "/tmp/salient_prep_XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fd, 1);
        int dn = open("/dev/null", O_WRONLY);
        dup2(dn, 2);
        execv(SALIENT, (char *const *)argv);
        _exit(127);
    }
    int ws = 0;
    while (waitpid(pid, &ws, 0) < 0 && errno == EINTR) {}
    FILE *f = fopen(path, "rb");
    size_t n = f ? fread(out, 1, len - 1, f) : 0;
    out[n] = 0;
    if (f) fclose(f);
    close(fd);
    unlink(path);
    return WIFEXITED(ws) ? WEXITSTATUS(ws) : -1;
}

/* The logits of predict --json's first line. */
static int json_logits(const char *json, float *z, int max) {
    const char *p = strstr(json, "\"logits\": [");
    if (!p) return 0;
    p += strlen("\"logits\": [");
    int n = 0;
    while (n < max) {
        char *end;
        z[n] = strtof(p, &end);
        if (end == p) break;
        n++;
        p = end;
        while (*p == ',' || *p == ' ') p++;
    }
    return n;
}

Test(prep_defaults, image_at_input_size_is_taken_whole, .timeout = 60) {
    char dir[] = "/tmp/salient_prep_dir_XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char png[256], npy[256];
    snprintf(png, sizeof png, "%s/photo.png", dir);
    snprintf(npy, sizeof npy, "%s/by_hand.npy", dir);
    /* a 32x32 photo with detail up to its border (where a crop would cut) */
    static uint8_t rgb[32 * 32 * 3];
    static float x[3 * 32 * 32];
    for (int y = 0; y < 32; y++)
        for (int xx = 0; xx < 32; xx++)
            for (int c = 0; c < 3; c++) {
                int v = (xx * 7 + y * 13 + c * 50 + (xx == 0 || y == 31 ? 120 : 0)) % 256;
                rgb[(y * 32 + xx) * 3 + c] = (uint8_t)v;
            }
    const float mean[3] = {0.485f, 0.456f, 0.406f}, std[3] = {0.229f, 0.224f, 0.225f};
    for (int c = 0; c < 3; c++)
        for (int i = 0; i < 32 * 32; i++) x[c * 1024 + i] = (float)((rgb[i * 3 + c] / 255.0 - mean[c]) / std[c]);
    sal_error err = {0};
    cr_assert_eq(sal_png_write_rgb(png, 32, 32, rgb, &err), SAL_OK, "%s", err.msg);
    int64_t dims[3] = {3, 32, 32};
    cr_assert_eq(sal_npy_write(npy, x, 3, dims, &err), SAL_OK, "%s", err.msg);
    static char a[65536], b[65536], c[65536];
    const char *pa[] = {SALIENT, "predict", "--json", "-m", TINYCNN, png, NULL};
    const char *pb[] = {SALIENT, "predict", "--json", "-m", TINYCNN, npy, NULL};
    const char *pc[] = {SALIENT, "predict", "--json", "-m", TINYCNN, "--crop", "0.875", png, NULL};
    cr_assert_eq(run_capture(pa, a, sizeof a), 0, "%s", a);
    cr_assert_eq(run_capture(pb, b, sizeof b), 0, "%s", b);
    cr_assert_eq(run_capture(pc, c, sizeof c), 0, "%s", c);
    float za[10], zb[10], zc[10];
    cr_assert_eq(json_logits(a, za, 10), 10, "%s", a);
    cr_assert_eq(json_logits(b, zb, 10), 10, "%s", b);
    cr_assert_eq(json_logits(c, zc, 10), 10, "%s", c);
    double d_default = 0, d_crop = 0;
    for (int k = 0; k < 10; k++) {
        d_default = fmax(d_default, fabs(za[k] - zb[k]));
        d_crop = fmax(d_crop, fabs(zc[k] - zb[k]));
    }
    cr_expect_lt(d_default, 1e-4, "a 32x32 photo into a 32x32 model is taken whole: logits differ by %g", d_default);
    /* the explicit crop enlarges to 37 and cuts the border: the test can tell the difference */
    cr_expect_gt(d_crop, 1e-3, "--crop 0.875 still enlarges and crops: logits differ by only %g", d_crop);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}
