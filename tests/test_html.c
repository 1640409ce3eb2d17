/* test_html.c — `salient explain --html`: OUTDIR/index.html shows every input's photo (copied
 * into OUTDIR/inputs/) and every overlay the run wrote (the .topN names with --topk), with the
 * targets, the methods' times, IG's completeness gap relative to f(x) - f(baseline) (the numbers
 * of summary.jsonl, recomputed here), headings relative to the inputs' common folder, overlays
 * with their colour bars (--html turns --colorbar on), and nothing fetched from elsewhere (no
 * script, no http). Then Debian's headless
 * chromium loads it: its DOM has the figures, and its screenshot shows the photo (a magenta
 * square no overlay or bar could produce) and a bar's colours; skipped, visibly, without
 * chromium. The model is the tiny fixture CNN (32x32 inputs, 10 classes, no labels). */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "salient.h"
#include "io/io.h"
#include "post/post.h"
#include "testproc.h"

#define SALIENT SAL_BINARY_DIR "/salient"
#define TINYCNN SAL_SOURCE_DIR "/tests/fixtures/methods/tinycnn.onnx"
#define CHROMIUM "/usr/bin/chromium"

/* Run argv (argv[0] the program) with stdout into out_path (NULL: /dev/null), stderr into err_path;
 * returns the exit status (-1 when killed). */
static int run(const char *const *argv, const char *out_path, const char *err_path, const char *cwd) {
    fflush(NULL);
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        int fo = open(out_path ? out_path : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int fe = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fo < 0 || fe < 0 || dup2(fo, 1) < 0 || dup2(fe, 2) < 0) _exit(127);
        if (cwd && chdir(cwd)) _exit(127);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    int ws = 0;
    while (waitpid(pid, &ws, 0) < 0 && errno == EINTR) {}
    return WIFEXITED(ws) ? WEXITSTATUS(ws) : -1;
}

/* A 40x40 photo: a gradient with a magenta square in its middle. */
static void write_photo(const char *path) {
    static uint8_t rgb[40 * 40 * 3];
    for (int y = 0; y < 40; y++)
        for (int x = 0; x < 40; x++) {
            uint8_t *p = rgb + 3 * (y * 40 + x);
            int sq = x >= 10 && x < 30 && y >= 10 && y < 30;
            p[0] = (uint8_t)(sq ? 255 : 40 + 3 * x);
            p[1] = (uint8_t)(sq ? 0 : 60 + 2 * y);
            p[2] = (uint8_t)(sq ? 255 : 90);
        }
    sal_error err = {0};
    cr_assert_eq(sal_png_write_rgb(path, 40, 40, rgb, &err), SAL_OK, "%s", err.msg);
}

static void write_tensor(const char *path) {
    static float x[3 * 32 * 32];
    for (int i = 0; i < 3 * 32 * 32; i++) x[i] = (float)((i * 29) % 97) / 48.0f - 1.0f;
    int64_t dims[3] = {3, 32, 32};
    sal_error err = {0};
    cr_assert_eq(sal_npy_write(path, x, 3, dims, &err), SAL_OK, "%s", err.msg);
}

/* IG's completeness gap and delta of the first ig row of summary.jsonl */
static int ig_numbers(const char *jsonl, double *gap, double *delta) {
    const char *p = strstr(jsonl, "\"method\": \"ig\"");
    if (!p) return -1;
    const char *g = strstr(p, "\"completeness_gap\": "), *d = strstr(p, "\"delta\": ");
    if (!g || !d) return -1;
    *gap = strtod(g + strlen("\"completeness_gap\": "), NULL);
    *delta = strtod(d + strlen("\"delta\": "), NULL);
    return 0;
}

static char tmp[64], data[128], out[160];

static void setup(void) {
    snprintf(tmp, sizeof tmp, "/tmp/salient_html_XXXXXX");
    cr_assert_not_null(mkdtemp(tmp));
    snprintf(data, sizeof data, "%s/data", tmp);
    snprintf(out, sizeof out, "%s/out", tmp);
    cr_assert_eq(mkdir(data, 0777), 0);
    char p[256];
    snprintf(p, sizeof p, "%s/photo.png", data);
    write_photo(p);
    snprintf(p, sizeof p, "%s/tensor.npy", data);
    write_tensor(p);
}

static void teardown(void) {
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    if (system(cmd)) {}
}

TestSuite(html, .init = setup, .fini = teardown, .timeout = 180);

/* The run whose page the tests read: two inputs under data/, two methods, the top 2 classes. */
static char *explain_html(void) {
    char err[256], a[256], b[256];
    snprintf(err, sizeof err, "%s/explain.err", tmp);
    snprintf(a, sizeof a, "%s/photo.png", data);
    snprintf(b, sizeof b, "%s/tensor.npy", data);
    const char *argv[] = {SALIENT, "explain", "-m", TINYCNN, "-M", "saliency,ig", "--steps", "8", "--topk", "2",
                          "--html", a, b, "-o", out, NULL};
    int st = run(argv, NULL, err, NULL);
    char *e = tp_slurp(err, NULL);
    cr_assert_eq(st, 0, "explain --html: exit %d\n%s", st, e ? e : "");
    free(e);
    char p[256];
    snprintf(p, sizeof p, "%s/index.html", out);
    char *page = tp_slurp(p, NULL);
    cr_assert_not_null(page, "%s written", p);
    return page;
}

Test(html, page_shows_every_map_and_the_run_numbers) {
    char *page = explain_html();
    char p[256];
    /* the photo, copied beside the page */
    snprintf(p, sizeof p, "%s/inputs/photo.png", out);
    cr_expect_eq(access(p, R_OK), 0, "the photo is copied to %s", p);
    cr_expect(strstr(page, "src=\"inputs/photo.png\""), "the photo is shown");
    /* every overlay, top-1 and top-2 */
    const char *imgs[] = {"photo.saliency.top1.png", "photo.saliency.top2.png", "photo.ig.top1.png",
                          "photo.ig.top2.png", "tensor.saliency.top1.png", "tensor.ig.top2.png"};
    for (int i = 0; i < 6; i++) {
        char needle[128];
        snprintf(needle, sizeof needle, "src=\"%s\"", imgs[i]);
        cr_expect(strstr(page, needle), "index.html shows %s", imgs[i]);
        snprintf(p, sizeof p, "%s/%s", out, imgs[i]);
        cr_expect_eq(access(p, R_OK), 0, "%s exists", p);
    }
    cr_expect_eq(tp_count_substr(page, "<section"), 2, "one section per input");
    cr_expect_eq(tp_count_substr(page, "<figure"), 2 * (1 + 4), "input + 2 methods x 2 targets per section");
    cr_expect(strstr(page, "no photo"), "the .npy input says it has no photo");
    /* the overlays carry their colour bars */
    sal_image ov;
    sal_error e = {0};
    snprintf(p, sizeof p, "%s/photo.saliency.top1.png", out);
    cr_assert_eq(sal_image_load(p, &ov, &e), SAL_OK, "%s", e.msg);
    cr_expect(ov.w == 40 && ov.h == 40 + sal_colorbar_height(40), "overlay with its bar: %dx%d", ov.w, ov.h);
    sal_image_free(&ov);
    /* headings relative to the inputs' common folder (data/), which the note names */
    cr_expect(strstr(page, "<h2>photo.png <span") && strstr(page, "<h2>tensor.npy <span"), "relative headings");
    cr_expect(!strstr(page, "<h2>/tmp/"), "no absolute path in headings");
    cr_expect(strstr(page, "/data/</code>"), "the common folder is named once");
    /* the methods' times */
    cr_expect(strstr(page, "<table class=\"times\">") && strstr(page, "<td>saliency</td><td>4</td>") &&
              strstr(page, "<td>ig</td><td>4</td>"), "a times table with 4 maps per method");
    /* IG's gap relative to f(x) - f(baseline), from the summary's own numbers */
    snprintf(p, sizeof p, "%s/summary.jsonl", out);
    char *jsonl = tp_slurp(p, NULL);
    double gap = 0, delta = 1;
    cr_assert(jsonl && ig_numbers(jsonl, &gap, &delta) == 0, "summary.jsonl has IG's gap and delta");
    char want[128];
    snprintf(want, sizeof want, "completeness gap %.3g (%.1f%% of f(x) − f(baseline) = %.4g)", gap,
             100.0 * fabs(gap / delta), delta);
    cr_expect(strstr(page, want), "the page says '%s'", want);
    free(jsonl);
    /* opens offline: nothing from elsewhere */
    cr_expect(!strstr(page, "<script") && !strstr(page, "http:") && !strstr(page, "https:") && !strstr(page, "<link"),
              "no script, no remote resource");
    free(page);
}

Test(html, chromium_renders_the_page) {
    if (access(CHROMIUM, X_OK)) cr_skip_test("no %s (Debian's chromium) to render the page", CHROMIUM);
    char *page = explain_html();
    free(page);
    char url[256], dom[256], shot[256], err[256], size[64], shot_arg[300];
    snprintf(url, sizeof url, "file://%s/index.html", out);
    snprintf(dom, sizeof dom, "%s/dom.html", tmp);
    snprintf(shot, sizeof shot, "%s/shot.png", tmp);
    snprintf(err, sizeof err, "%s/chromium.err", tmp);
    snprintf(size, sizeof size, "--window-size=%d,%d", 1200, 900);
    snprintf(shot_arg, sizeof shot_arg, "--screenshot=%s", shot);
    /* a profile of its own in the scratch folder: no state shared with other runs */
    char profile[300];
    snprintf(profile, sizeof profile, "--user-data-dir=%s/profile", tmp);
    const char *dump[] = {CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", profile, "--dump-dom", url, NULL};
    cr_assert_eq(run(dump, dom, err, tmp), 0, "chromium --dump-dom failed (see %s)", err);
    char *d = tp_slurp(dom, NULL);
    cr_assert_not_null(d);
    cr_expect_eq(tp_count_substr(d, "<figure"), 10, "the rendered DOM has every figure");
    cr_expect(strstr(d, "salient explain"), "the title is rendered");
    free(d);
    const char *snap[] = {CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", profile, size,
                          shot_arg, url, NULL};
    cr_assert_eq(run(snap, NULL, err, tmp), 0, "chromium --screenshot failed (see %s)", err);
    sal_image img;
    sal_error e = {0};
    cr_assert_eq(sal_image_load(shot, &img, &e), SAL_OK, "%s", e.msg);
    cr_expect(img.w == 1200 && img.h == 900, "screenshot %dx%d", img.w, img.h);
    /* the photo's magenta square (shown 224 px wide: the square is about 112 px) and the dark red
     * end (128,0,0 in the table) of the overlays' jet colour bars */
    long magenta = 0, dark_red = 0;
    for (int i = 0; i < img.w * img.h; i++) {
        const uint8_t *p = img.pix + (size_t)i * img.c;
        magenta += p[0] > 230 && p[1] < 30 && p[2] > 230;
        dark_red += p[0] > 110 && p[0] < 150 && p[1] < 20 && p[2] < 20;
    }
    cr_expect_gt(magenta, 5000, "the photo is shown (magenta pixels: %ld)", magenta);
    cr_expect_gt(dark_red, 10, "the colour bars are drawn (dark red pixels: %ld)", dark_red);
    sal_image_free(&img);
}
