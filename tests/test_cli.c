/* test_cli.c — the `salient` program against its command-line contract (DESIGN.md, "Command
 * line"): exit statuses (0 ok, 1 a failed input or file, 2 usage), messages on stderr that name the
 * option or file at fault, predict's text and JSON output, explain's files (overlays at the
 * original image's size, heatmaps at the model's, raw arrays with the documented shapes, the
 * summaries), seeds, and bad input that must leave no file behind. The program runs in a child
 * process (fork/exec) with stdout and stderr captured into files of a mkdtemp directory. The model
 * is the tiny fixture CNN of tests/fixtures/methods (input (N,3,32,32), 10 classes, no labels). */
#include <criterion/criterion.h>

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <fcntl.h>
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
#include "testutil.h"
#include "testproc.h"

#define SALIENT SAL_BINARY_DIR "/salient"
#define TINYCNN SAL_SOURCE_DIR "/tests/fixtures/methods/tinycnn.onnx"
#define IMG_W 50   /* the test PNG is 50 wide, 40 high: not the model's 32x32, not square */
#define IMG_H 40

/* ------------------------------------------------------------------------------------------------ */
/* Files and directories                                                                            */

static int write_bytes(const char *path, const void *data, size_t len) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = fwrite(data, 1, len, f);
    return fclose(f) == 0 && w == len ? 0 : -1;
}

/* Number of entries in a directory (-1 if it cannot be opened); names joined into list. */
static int dir_entries(const char *dir, char *list, size_t len) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    if (list && len) list[0] = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        n++;
        if (list) {
            size_t used = strlen(list);
            snprintf(list + used, len - used, "%s ", e->d_name);
        }
    }
    closedir(d);
    return n;
}

/* ------------------------------------------------------------------------------------------------ */
/* Running the program                                                                              */

static void run_argv(tp_run *r, const char *scratch, const char *const *argv) {
    tp_run_prog(r, scratch, SALIENT, NULL, argv);
}

/* run(r, scratch, "arg", ..., NULL) */
static void run(tp_run *r, const char *scratch, ...) {
    const char *argv[64];
    int n = 0;
    va_list ap;
    va_start(ap, scratch);
    const char *a;
    while ((a = va_arg(ap, const char *)) && n < 63) argv[n++] = a;
    va_end(ap);
    argv[n] = NULL;
    run_argv(r, scratch, argv);
}

static int count_lines(const char *s) {
    int n = 0;
    for (; *s; s++) n += *s == '\n';
    return n;
}

/* ------------------------------------------------------------------------------------------------ */
/* Inputs                                                                                           */

/* A (3,32,32) float32 .npy of smooth values in about [-2, 2], as preprocessed input. */
static void write_test_npy(const char *path) {
    static float x[3 * 32 * 32];
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < 32; y++)
            for (int xx = 0; xx < 32; xx++)
                x[(c * 32 + y) * 32 + xx] = 2.0f * sinf(0.3f * (float)(xx + 2 * c)) * cosf(0.2f * (float)(y - c));
    int64_t dims[3] = {3, 32, 32};
    sal_error err = {0};
    cr_assert_eq(sal_npy_write(path, x, 3, dims, &err), SAL_OK, "%s", err.msg);
}

/* A 50x40 (w x h) RGB PNG with gradients and a bright square; variant v moves the square and
 * shifts the colours, odd v inverted (v = 0: the test photo). */
static void write_test_png_v(const char *path, int v) {
    static uint8_t rgb[IMG_W * IMG_H * 3];
    for (int y = 0; y < IMG_H; y++)
        for (int x = 0; x < IMG_W; x++) {
            uint8_t *p = rgb + 3 * (y * IMG_W + x);
            int sq = x >= 20 - 3 * v && x < 32 - 3 * v && y >= 10 + 2 * v && y < 22 + 2 * v;
            p[0] = (uint8_t)(sq ? 250 : 5 * x + 20 * v);
            p[1] = (uint8_t)(sq ? 240 - 40 * v : 6 * y);
            p[2] = (uint8_t)(sq ? 30 : 128 + ((x * y + 7 * v) % 100));
            if (v % 2)
                for (int k = 0; k < 3; k++) p[k] = (uint8_t)(255 - p[k]);
        }
    sal_error err = {0};
    cr_assert_eq(sal_png_write_rgb(path, IMG_W, IMG_H, rgb, &err), SAL_OK, "%s", err.msg);
}

static void write_test_png(const char *path) { write_test_png_v(path, 0); }

/* Width and height from a PNG's IHDR; -1 when the file is not a PNG. */
static int png_size(const char *path, int *w, int *h) {
    size_t len = 0;
    unsigned char *b = (unsigned char *)tp_slurp(path, &len);
    static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    int ok = b && len >= 24 && !memcmp(b, sig, 8) && !memcmp(b + 12, "IHDR", 4);
    if (ok) {
        *w = (int)((uint32_t)b[16] << 24 | (uint32_t)b[17] << 16 | (uint32_t)b[18] << 8 | b[19]);
        *h = (int)((uint32_t)b[20] << 24 | (uint32_t)b[21] << 16 | (uint32_t)b[22] << 8 | b[23]);
    }
    free(b);
    return ok ? 0 : -1;
}

/* Shape of a little-endian float32 .npy from its header, checked against the file's size;
 * returns ndim, or -1 when the file is not such an array. */
static int npy_shape(const char *path, int64_t *dims, int max) {
    size_t len = 0;
    char *b = tp_slurp(path, &len);
    int ndim = -1;
    if (!b || len < 10 || memcmp(b, "\x93NUMPY", 6) || b[6] != 1) goto out;
    size_t hlen = (size_t)(unsigned char)b[8] | (size_t)(unsigned char)b[9] << 8;
    if (10 + hlen > len) goto out;
    char header[1024];
    snprintf(header, sizeof header, "%.*s", (int)(hlen < 1023 ? hlen : 1023), b + 10);
    if (!strstr(header, "'descr': '<f4'") || !strstr(header, "'fortran_order': False")) goto out;
    const char *p = strstr(header, "'shape': (");
    if (!p) goto out;
    p += strlen("'shape': (");
    int n = 0;
    int64_t count = 1;
    while (*p && *p != ')' && n < max) {
        char *end;
        long long v = strtoll(p, &end, 10);
        if (end == p) goto out;
        dims[n++] = v;
        count *= v;
        p = end;
        while (*p == ',' || *p == ' ') p++;
    }
    if (*p != ')') goto out;
    if ((size_t)count * 4 != len - 10 - hlen) goto out;
    ndim = n;
out:
    free(b);
    return ndim;
}

/* Split one CSV line into fields (double quotes protect commas); returns the field count. */
static int csv_fields(const char *line, char fields[][256], int max) {
    int n = 0, q = 0;
    size_t k = 0;
    for (const char *p = line;; p++) {
        if (*p == '"') { q = !q; continue; }
        if ((*p == ',' && !q) || *p == '\n' || *p == 0) {
            if (n < max) { fields[n][k < 255 ? k : 255] = 0; n++; }
            k = 0;
            if (*p != ',') break;
            continue;
        }
        if (n < max && k < 255) fields[n][k] = *p;
        k++;
    }
    return n;
}

/* ------------------------------------------------------------------------------------------------ */
/* Help, version, usage errors                                                                      */

Test(cli, help_and_version) {
    char tmp[64];
    tp_make_tmp(tmp, sizeof tmp, "cli");
    tp_run r;
    run(&r, tmp, "--help", NULL);
    cr_expect_eq(r.status, 0, "%s: exit %d", r.cmd, r.status);
    cr_expect(strstr(r.out, "usage: salient"), "--help prints usage on stdout: %s", r.out);
    cr_expect(strstr(r.out, "explain"), "--help lists the explain command: %s", r.out);
    tp_run_free(&r);
    run(&r, tmp, "--version", NULL);
    cr_expect_eq(r.status, 0);
    cr_expect(strstr(r.out, SAL_VERSION_STRING), "--version: %s", r.out);
    tp_run_free(&r);
    const char *cmds[] = {"predict", "explain", "info"};
    for (int i = 0; i < 3; i++) {
        run(&r, tmp, cmds[i], "--help", NULL);
        cr_expect_eq(r.status, 0, "%s: exit %d", r.cmd, r.status);
        cr_expect(strstr(r.out, "usage: salient"), "%s: %s", r.cmd, r.out);
        cr_expect(strstr(r.out, cmds[i]), "%s: %s", r.cmd, r.out);
        tp_run_free(&r);
    }
    tp_remove_tree(tmp);
}

Test(cli, usage_errors_exit_2) {
    char tmp[64];
    tp_make_tmp(tmp, sizeof tmp, "cli");
    tp_run r;
    run(&r, tmp, NULL);
    cr_expect_eq(r.status, 2, "no arguments: exit %d", r.status);
    cr_expect(r.err[0], "no arguments: usage on stderr");
    tp_run_free(&r);
    run(&r, tmp, "frobnicate", NULL);
    cr_expect_eq(r.status, 2, "%s: exit %d", r.cmd, r.status);
    cr_expect(strstr(r.err, "frobnicate"), "%s: stderr names the command: %s", r.cmd, r.err);
    tp_run_free(&r);
    const char *cmds[] = {"predict", "explain", "info"};
    for (int i = 0; i < 3; i++) {
        /* an unknown option, alone (no value after it) and followed by something */
        run(&r, tmp, cmds[i], "--no-such-option", NULL);
        cr_expect_eq(r.status, 2, "%s: exit %d", r.cmd, r.status);
        cr_expect(strstr(r.err, "--no-such-option"), "%s: stderr names the option: %s", r.cmd, r.err);
        cr_expect(strstr(r.err, "unknown option"), "%s: says it is unknown: %s", r.cmd, r.err);
        tp_run_free(&r);
        run(&r, tmp, cmds[i], "-m", TINYCNN, "--no-such-option", "x.png", NULL);
        cr_expect_eq(r.status, 2, "%s: exit %d", r.cmd, r.status);
        cr_expect(strstr(r.err, "--no-such-option"), "%s: stderr names the option: %s", r.cmd, r.err);
        tp_run_free(&r);
    }
    /* a missing model or input is a usage error too */
    run(&r, tmp, "predict", "-m", TINYCNN, NULL);
    cr_expect_eq(r.status, 2, "%s: exit %d", r.cmd, r.status);
    cr_expect(r.err[0], "%s: message on stderr", r.cmd);
    tp_run_free(&r);
    run(&r, tmp, "explain", "-m", TINYCNN, "x.png", NULL);
    cr_expect_eq(r.status, 2, "%s (no -o): exit %d", r.cmd, r.status);
    cr_expect(strstr(r.err, "-o"), "%s: stderr mentions -o: %s", r.cmd, r.err);
    tp_run_free(&r);
    cr_expect_eq(dir_entries(tmp, NULL, 0), 0, "usage errors wrote files");
    tp_remove_tree(tmp);
}

/* ------------------------------------------------------------------------------------------------ */
/* info                                                                                             */

Test(cli, info_lists_layers_shapes_and_op_counts) {
    char tmp[64];
    tp_make_tmp(tmp, sizeof tmp, "cli");
    tp_run r;
    run(&r, tmp, "info", TINYCNN, NULL);
    cr_assert_eq(r.status, 0, "%s: exit %d\n%s", r.cmd, r.status, r.err);
    cr_expect(strstr(r.out, "input "), "inputs listed: %s", r.out);
    cr_expect(strstr(r.out, "(?,3,32,32)"), "input shape with a dynamic batch: %s", r.out);
    cr_expect(strstr(r.out, "(?,10)"), "output shape: %s", r.out);
    /* the CAM layer's line: name, op type, shape for one image */
    const char *line = strstr(r.out, " cam.relu ");
    cr_assert_not_null(line, "cam.relu listed: %s", r.out);
    const char *eol = strchr(line, '\n');
    char buf[256];
    snprintf(buf, sizeof buf, "%.*s", (int)(eol ? eol - line : (long)strlen(line)), line);
    cr_expect(strstr(buf, "Relu"), "cam.relu is a Relu: '%s'", buf);
    cr_expect(strstr(buf, "(1,32,16,16)"), "cam.relu shape (1,32,16,16): '%s'", buf);
    cr_expect(strstr(r.out, " head.fc "), "head.fc listed");
    const char *ops = strstr(r.out, "op counts:");
    cr_assert_not_null(ops, "op counts: %s", r.out);
    cr_expect(strstr(ops, "Conv="), "Conv counted: %s", ops);
    cr_expect(strstr(ops, "Relu=5"), "5 Relu: %s", ops);
    cr_expect(strstr(ops, "Gemm=1"), "1 Gemm: %s", ops);
    tp_run_free(&r);

    run(&r, tmp, "info", SAL_SOURCE_DIR "/tests/fixtures/methods/no-such-model.onnx", NULL);
    cr_expect_eq(r.status, 1, "%s: exit %d", r.cmd, r.status);
    cr_expect(strstr(r.err, "no-such-model.onnx"), "stderr names the file: %s", r.err);
    tp_run_free(&r);
    tp_remove_tree(tmp);
}

/* ------------------------------------------------------------------------------------------------ */
/* predict                                                                                          */

Test(cli, predict_text_and_json) {
    char tmp[64], npy[256], png[256];
    tp_make_tmp(tmp, sizeof tmp, "cli");
    write_test_npy(tp_join(npy, sizeof npy, tmp, "tensor.npy"));
    write_test_png(tp_join(png, sizeof png, tmp, "photo.png"));
    tp_run r;
    run(&r, tmp, "predict", "-m", TINYCNN, npy, png, NULL);
    cr_assert_eq(r.status, 0, "%s: exit %d\n%s", r.cmd, r.status, r.err);
    cr_expect(strstr(r.out, npy) && strstr(r.out, png), "both inputs reported: %s", r.out);
    cr_expect(strstr(r.out, npy) < strstr(r.out, png), "inputs in the order given");
    cr_expect_eq(tp_count_substr(r.out, "  1. "), 2, "one top-1 line per input: %s", r.out);
    cr_expect_eq(tp_count_substr(r.out, "  5. "), 2, "top-5 by default: %s", r.out);
    cr_expect_eq(tp_count_substr(r.out, "  6. "), 0, "no more than 5: %s", r.out);
    cr_expect_eq(tp_count_substr(r.out, "%"), 10, "a probability per line: %s", r.out);
    tp_run_free(&r);

    run(&r, tmp, "predict", "-m", TINYCNN, "--topk", "3", png, NULL);
    cr_expect_eq(r.status, 0);
    cr_expect_eq(count_lines(r.out), 4, "--topk 3: a name line and 3 classes: %s", r.out);
    tp_run_free(&r);

    run(&r, tmp, "predict", "-m", TINYCNN, "--json", npy, png, NULL);
    cr_assert_eq(r.status, 0, "%s: exit %d\n%s", r.cmd, r.status, r.err);
    cr_expect_eq(count_lines(r.out), 2, "one JSON object per input: %s", r.out);
    const char *line = r.out;
    for (int i = 0; i < 2 && line && *line; i++) {
        cr_expect_eq(line[0], '{', "object %d starts with '{': %s", i, line);
        const char *eol = strchr(line, '\n');
        cr_assert_not_null(eol);
        cr_expect_eq(eol[-1], '}', "object %d ends with '}'", i);
        const char *lg = strstr(line, "\"logits\": [");
        cr_assert(lg && lg < eol, "object %d has \"logits\": %s", i, line);
        const char *close = strchr(lg, ']');
        cr_assert(close && close < eol);
        int commas = 0, digits = 0;
        for (const char *p = lg; p < close; p++) { commas += *p == ','; digits += *p >= '0' && *p <= '9'; }
        cr_expect_eq(commas, 9, "object %d: 10 logits (9 commas), got %d", i, commas);
        cr_expect_gt(digits, 10, "object %d: logits are numbers", i);
        cr_expect(strstr(line, i == 0 ? "\"input\": \"" : "photo.png"), "object %d names its input", i);
        line = eol + 1;
    }
    tp_run_free(&r);
    tp_remove_tree(tmp);
}

Test(cli, predict_missing_file_among_good_ones) {
    char tmp[64], npy[256], png[256], missing[256];
    tp_make_tmp(tmp, sizeof tmp, "cli");
    write_test_npy(tp_join(npy, sizeof npy, tmp, "tensor.npy"));
    write_test_png(tp_join(png, sizeof png, tmp, "photo.png"));
    tp_join(missing, sizeof missing, tmp, "not-here.png");
    tp_run r;
    run(&r, tmp, "predict", "-m", TINYCNN, png, missing, npy, NULL);
    cr_expect_eq(r.status, 1, "%s: exit %d", r.cmd, r.status);
    cr_expect(strstr(r.out, png) && strstr(r.out, npy), "the good inputs are still predicted: %s", r.out);
    cr_expect(!strstr(r.out, "not-here.png"), "the missing one is not on stdout: %s", r.out);
    cr_expect(strstr(r.err, "not-here.png"), "stderr names the missing file: %s", r.err);
    tp_run_free(&r);

    run(&r, tmp, "predict", "-m", TINYCNN, "--json", missing, png, NULL);
    cr_expect_eq(r.status, 1, "%s: exit %d", r.cmd, r.status);
    cr_expect_eq(count_lines(r.out), 1, "--json: the good input's object only: %s", r.out);
    cr_expect(strstr(r.err, "not-here.png"), "stderr names the missing file: %s", r.err);
    tp_run_free(&r);

    /* an array of the wrong shape is named with its shape */
    char bad[256];
    float v[2 * 8 * 8] = {0};
    int64_t dims[3] = {2, 8, 8};
    cr_assert_eq(sal_npy_write(tp_join(bad, sizeof bad, tmp, "wrong.npy"), v, 3, dims, NULL), SAL_OK);
    run(&r, tmp, "predict", "-m", TINYCNN, bad, NULL);
    cr_expect_eq(r.status, 1, "%s: exit %d", r.cmd, r.status);
    cr_expect(strstr(r.err, "wrong.npy") && strstr(r.err, "(2,8,8)"), "stderr names file and shape: %s", r.err);
    tp_run_free(&r);
    tp_remove_tree(tmp);
}

/* ------------------------------------------------------------------------------------------------ */
/* explain: files and summaries                                                                     */

Test(cli, explain_writes_documented_files, .timeout = 120) {
    char tmp[64], png[256], out[256], p[512];
    tp_make_tmp(tmp, sizeof tmp, "cli");
    write_test_png(tp_join(png, sizeof png, tmp, "photo.png"));
    tp_join(out, sizeof out, tmp, "out/nested");   /* created with its parent */
    tp_run r;
    run(&r, tmp, "explain", "-m", TINYCNN, "-M", "saliency,gradcam,ig,occlusion", "--steps", "8",
        "--window", "8x8", "--stride", "4x4", "--layer", "cam.relu", png, "-o", out, "--raw", "--heatmap", NULL);
    cr_assert_eq(r.status, 0, "%s: exit %d\n%s", r.cmd, r.status, r.err);
    const char *methods[] = {"saliency", "gradcam", "ig", "occlusion"};
    for (int i = 0; i < 4; i++) {
        int w = 0, h = 0;
        snprintf(p, sizeof p, "%s/photo.%s.png", out, methods[i]);
        cr_expect_eq(png_size(p, &w, &h), 0, "%s: a PNG", p);
        cr_expect(w == IMG_W && h == IMG_H, "%s: overlay at the original size %dx%d, got %dx%d", p, IMG_W, IMG_H, w, h);
        snprintf(p, sizeof p, "%s/photo.%s.heatmap.png", out, methods[i]);
        cr_expect_eq(png_size(p, &w, &h), 0, "%s: a PNG", p);
        cr_expect(w == 32 && h == 32, "%s: heatmap at the model's 32x32, got %dx%d", p, w, h);
        snprintf(p, sizeof p, "%s/photo.%s.npy", out, methods[i]);
        int64_t d[8] = {0};
        int nd = npy_shape(p, d, 8);
        if (!strcmp(methods[i], "gradcam"))
            cr_expect(nd == 2 && d[0] == 16 && d[1] == 16, "%s: (16,16) at cam.relu's resolution, got ndim %d (%lld,%lld)",
                      p, nd, (long long)d[0], (long long)d[1]);
        else
            cr_expect(nd == 3 && d[0] == 3 && d[1] == 32 && d[2] == 32, "%s: (3,32,32), got ndim %d (%lld,%lld,%lld)",
                      p, nd, (long long)d[0], (long long)d[1], (long long)d[2]);
    }
    char list[4096];
    cr_expect_eq(dir_entries(out, list, sizeof list), 4 * 3 + 2, "4 methods x 3 files + 2 summaries: %s", list);
    cr_expect(!strstr(list, "tmp"), "no temporary file left: %s", list);

    /* summary.csv: a header and one row per method, ig's with a completeness gap */
    char *csv = tp_slurp(tp_join(p, sizeof p, out, "summary.csv"), NULL);
    cr_assert_not_null(csv, "summary.csv");
    cr_expect_eq(count_lines(csv), 5, "header + 4 rows: %s", csv);
    char f[16][256];
    int nh = csv_fields(csv, f, 16);
    int col_method = -1, col_gap = -1, col_input = -1;
    for (int k = 0; k < nh; k++) {
        if (!strcmp(f[k], "method")) col_method = k;
        if (!strcmp(f[k], "completeness_gap")) col_gap = k;
        if (!strcmp(f[k], "input")) col_input = k;
    }
    cr_assert(col_method >= 0 && col_gap >= 0 && col_input >= 0, "header has input, method, completeness_gap: %s", csv);
    int seen = 0;
    for (const char *line = strchr(csv, '\n') + 1; *line; line = strchr(line, '\n') + 1) {
        int nf = csv_fields(line, f, 16);
        cr_expect_eq(nf, nh, "row has as many fields as the header: %.80s", line);
        cr_expect_str_eq(f[col_input], png);
        for (int i = 0; i < 4; i++)
            if (!strcmp(f[col_method], methods[i])) seen |= 1 << i;
        if (!strcmp(f[col_method], "ig")) {
            char *end;
            double gap = strtod(f[col_gap], &end);
            cr_expect(f[col_gap][0] && !*end && gap >= 0, "ig row has a completeness gap: '%s'", f[col_gap]);
        } else {
            cr_expect_str_empty(f[col_gap], "%s row: no completeness gap", f[col_method]);
        }
    }
    cr_expect_eq(seen, 15, "one row per method");
    free(csv);

    char *jl = tp_slurp(tp_join(p, sizeof p, out, "summary.jsonl"), NULL);
    cr_assert_not_null(jl, "summary.jsonl");
    cr_expect_eq(count_lines(jl), 4, "4 lines: %s", jl);
    cr_expect_eq(tp_count_substr(jl, "\"method\""), 4, "each line has \"method\": %s", jl);
    cr_expect_eq(tp_count_substr(jl, "\"completeness_gap\""), 4, "every line has every key: %s", jl);
    cr_expect_eq(tp_count_substr(jl, "\"completeness_gap\": null"), 3, "ig's line alone has its gap: %s", jl);
    cr_expect(strstr(jl, "\"layer\": \"cam.relu\""), "gradcam's layer: %s", jl);
    free(jl);
    tp_run_free(&r);
    tp_remove_tree(tmp);
}

Test(cli, explain_npy_input_and_json, .timeout = 60) {
    char tmp[64], npy[256], out[256], p[512];
    tp_make_tmp(tmp, sizeof tmp, "cli");
    write_test_npy(tp_join(npy, sizeof npy, tmp, "tensor.npy"));
    tp_join(out, sizeof out, tmp, "out");
    tp_run r;
    run(&r, tmp, "explain", "-m", TINYCNN, "-M", "saliency,gradcam", "--json", "--target", "3", npy, "-o", out, NULL);
    cr_assert_eq(r.status, 0, "%s: exit %d\n%s", r.cmd, r.status, r.err);
    /* a .npy input has no original image: the map is written at the model's size */
    int w = 0, h = 0;
    cr_expect_eq(png_size(tp_join(p, sizeof p, out, "tensor.saliency.png"), &w, &h), 0);
    cr_expect(w == 32 && h == 32, "npy input: 32x32 map, got %dx%d", w, h);
    cr_expect_eq(count_lines(r.out), 2, "--json: one object per input and method: %s", r.out);
    cr_expect_eq(tp_count_substr(r.out, "\"target\": 3"), 2, "--target 3 explained: %s", r.out);
    cr_expect_eq(tp_count_substr(r.out, "\"logits\": ["), 2, "logits included: %s", r.out);
    tp_run_free(&r);
    tp_remove_tree(tmp);
}

/* salient bench: one JSON object per method with a positive rate, nothing written to disk; bad
 * options are usage errors. */
Test(cli, bench_reports_throughput_per_method, .timeout = 60) {
    char tmp[64], npy[256];
    tp_make_tmp(tmp, sizeof tmp, "cli");
    write_test_npy(tp_join(npy, sizeof npy, tmp, "tensor.npy"));
    tp_run r;
    run(&r, tmp, "bench", "-m", TINYCNN, "--device", "cpu", "-M", "saliency,gradcam,occlusion", "--images", "3",
        "--min-time", "0", "--json", NULL);
    cr_assert_eq(r.status, 0, "%s: exit %d\n%s", r.cmd, r.status, r.err);
    cr_expect_eq(count_lines(r.out), 4, "the device's rate, then one object per method: %s", r.out);
    static const char *ms[] = {"saliency", "gradcam", "occlusion"};
    for (int k = 0; k < 3; k++) {
        char needle[64];
        snprintf(needle, sizeof needle, "\"method\": \"%s\"", ms[k]);
        const char *line = strstr(r.out, needle);
        cr_expect(line, "no %s line: %s", ms[k], r.out);
        const char *ips = line ? strstr(line, "\"images_per_s\": ") : NULL;
        cr_expect(ips && strtod(ips + 16, NULL) > 0, "%s: images/s missing or not positive: %s", ms[k], r.out);
    }
    cr_expect_eq(tp_count_substr(r.out, "\"images\": 3"), 3, "%s", r.out);
    cr_expect_eq(tp_count_substr(r.out, "\"gflops\": "), 3, "GFLOP/s per method: %s", r.out);
    cr_expect_eq(tp_count_substr(r.out, "\"peak_sgemm_gflops\": "), 1, "the device's measured rate: %s", r.out);
    tp_run_free(&r);
    /* inputs are used when given; text output has a header and a row per method */
    run(&r, tmp, "bench", "-m", TINYCNN, "--device", "cpu", "-M", "ig", "--steps", "4", "--min-time", "0", npy, NULL);
    cr_assert_eq(r.status, 0, "%s: exit %d\n%s", r.cmd, r.status, r.err);
    cr_expect(strstr(r.out, "from the inputs") && strstr(r.out, "\nig "), "%s", r.out);
    tp_run_free(&r);
    run(&r, tmp, "bench", "-m", TINYCNN, "-M", "nosuch", NULL);
    cr_expect_eq(r.status, 2, "unknown method: exit %d", r.status);
    tp_run_free(&r);
    run(&r, tmp, "bench", "-m", TINYCNN, "--images", "0", NULL);
    cr_expect_eq(r.status, 2, "--images 0: exit %d", r.status);
    cr_expect(strstr(r.err, "--images"), "%s", r.err);
    tp_run_free(&r);
    char list[4096] = "";
    dir_entries(tmp, list, sizeof list);
    cr_expect_str_eq(list, "tensor.npy ", "bench wrote files: %s", list);
    tp_remove_tree(tmp);
}

/* A .npy with NaN or infinite values is reported and skipped (its maps would be NaN throughout). */
Test(cli, explain_non_finite_npy_among_good_ones, .timeout = 60) {
    char tmp[64], png[256], npy[256], out[256], p[512];
    tp_make_tmp(tmp, sizeof tmp, "cli");
    write_test_png(tp_join(png, sizeof png, tmp, "photo.png"));
    static float x[3 * 32 * 32];
    x[100] = NAN;
    x[200] = INFINITY;
    int64_t dims[3] = {3, 32, 32};
    sal_error err = {0};
    cr_assert_eq(sal_npy_write(tp_join(npy, sizeof npy, tmp, "holes.npy"), x, 3, dims, &err), SAL_OK, "%s", err.msg);
    tp_join(out, sizeof out, tmp, "out");
    tp_run r;
    run(&r, tmp, "explain", "-m", TINYCNN, "-M", "saliency", npy, png, "-o", out, NULL);
    cr_expect_eq(r.status, 1, "%s: exit %d", r.cmd, r.status);
    cr_expect(strstr(r.err, "holes.npy") && strstr(r.err, "2 of its 3072 values"), "stderr: %s", r.err);
    cr_expect(tp_exists(tp_join(p, sizeof p, out, "photo.saliency.png")), "the good input is explained");
    cr_expect(!tp_exists(tp_join(p, sizeof p, out, "holes.saliency.png")), "no map for the bad one");
    tp_run_free(&r);
    tp_remove_tree(tmp);
}

Test(cli, explain_missing_file_among_good_ones, .timeout = 60) {
    char tmp[64], png[256], out[256], missing[256], p[512];
    tp_make_tmp(tmp, sizeof tmp, "cli");
    write_test_png(tp_join(png, sizeof png, tmp, "photo.png"));
    tp_join(missing, sizeof missing, tmp, "not-here.png");
    tp_join(out, sizeof out, tmp, "out");
    tp_run r;
    run(&r, tmp, "explain", "-m", TINYCNN, "-M", "saliency", missing, png, "-o", out, NULL);
    cr_expect_eq(r.status, 1, "%s: exit %d", r.cmd, r.status);
    cr_expect(strstr(r.err, "not-here.png"), "stderr names the missing file: %s", r.err);
    cr_expect(tp_exists(tp_join(p, sizeof p, out, "photo.saliency.png")), "the good input is explained");
    char *csv = tp_slurp(tp_join(p, sizeof p, out, "summary.csv"), NULL);
    cr_assert_not_null(csv);
    cr_expect_eq(count_lines(csv), 2, "header + the good input's row: %s", csv);
    free(csv);
    tp_run_free(&r);
    tp_remove_tree(tmp);
}

/* tu_rel_diff (a NaN counts as the worst difference) of two float32 .npy files of the same shape;
 * -1 when either cannot be read or the shapes differ. */
static double npy_rel_diff(const char *pa, const char *pb) {
    float *a = NULL, *b = NULL;
    int na = 0, nb = 0;
    int64_t da[SAL_MAX_DIMS], db[SAL_MAX_DIMS];
    double r = -1;
    if (!sal_npy_read(pa, &a, &na, da, NULL) && !sal_npy_read(pb, &b, &nb, db, NULL) && na == nb &&
        !memcmp(da, db, sizeof(int64_t) * (size_t)na)) {
        int64_t n = 1;
        for (int k = 0; k < na; k++) n *= da[k];
        r = tu_rel_diff(a, b, n, 1e-12);
    }
    free(a);
    free(b);
    return r;
}

/* The fraction of pixels of two PNGs of one size that differ by more than 2 in some channel; -1
 * when either cannot be read or the sizes differ. */
static double png_differing_fraction(const char *pa, const char *pb) {
    sal_image a = {0}, b = {0};
    double f = -1;
    if (!sal_image_load(pa, &a, NULL) && !sal_image_load(pb, &b, NULL) && a.w == b.w && a.h == b.h && a.c == b.c) {
        int64_t n = (int64_t)a.w * a.h, bad = 0;
        for (int64_t i = 0; i < n; i++) {
            int off = 0;
            for (int k = 0; k < a.c; k++) off |= abs((int)a.pix[i * a.c + k] - (int)b.pix[i * a.c + k]) > 2;
            bad += off;
        }
        f = (double)bad / (double)n;
    }
    sal_image_free(&a);
    sal_image_free(&b);
    return f;
}

/* Two summary.csv files have the same rows in the same order: the same text columns, and numbers
 * (probability, score, completeness_gap) equal to float rounding; the seconds and the images per
 * call may differ. */
static void expect_same_summaries(const char *pa, const char *pb) {
    char *a = tp_slurp(pa, NULL), *b = tp_slurp(pb, NULL);
    cr_assert(a && b, "%s and %s written", pa, pb);
    cr_expect_eq(count_lines(a), count_lines(b), "as many rows:\n%s\n%s", a, b);
    static char fa[32][256], fb[32][256];
    const char *la = a, *lb = b;
    int secs = -1, per_call = -1;
    for (int row = 0; *la && *lb; row++) {
        int na = csv_fields(la, fa, 32), nb = csv_fields(lb, fb, 32);
        cr_expect_eq(na, nb, "row %d: as many fields", row);
        for (int k = 0; row == 0 && k < na && k < 32; k++) {
            if (!strcmp(fa[k], "seconds")) secs = k;
            if (!strcmp(fa[k], "images_per_call")) per_call = k;
        }
        cr_assert_geq(secs, 0, "a seconds column");
        for (int k = 0; k < na && k < 32; k++) {
            if (k == secs || k == per_call) continue;
            if (fa[k][0] == '[' && fb[k][0] == '[') {   /* logits: numbers to float rounding */
                const char *pa = fa[k] + 1, *pb = fb[k] + 1;
                for (int j = 0; *pa && *pa != ']' && *pb && *pb != ']'; j++) {
                    char *ea, *eb;
                    double va = strtod(pa, &ea), vb = strtod(pb, &eb);
                    cr_expect(ea != pa && eb != pb && fabs(va - vb) <= 1e-5 * fmax(1.0, fabs(va)),
                              "row %d field %d number %d: %.40s vs %.40s", row, k, j, pa, pb);
                    if (ea == pa || eb == pb) break;
                    pa = ea + strspn(ea, ", ");
                    pb = eb + strspn(eb, ", ");
                }
                continue;
            }
            char *ea, *eb;
            double va = strtod(fa[k], &ea), vb = strtod(fb[k], &eb);
            if (row > 0 && k >= 7 && fa[k][0] && !*ea && !*eb)
                cr_expect(fabs(va - vb) <= 1e-5 * fmax(1.0, fabs(va)), "row %d field %d: %s vs %s", row, k, fa[k], fb[k]);
            else
                cr_expect_str_eq(fa[k], fb[k], "row %d field %d", row, k);
        }
        la = strchr(la, '\n');
        lb = strchr(lb, '\n');
        if (!la || !lb) break;
        la++;
        lb++;
    }
    free(a);
    free(b);
}

/* Inputs explained in groups (--image-batch 3: the first image alone, then the rest three at a
 * time, a missing file skipped) give the files and rows of inputs explained one at a time, and
 * each image its own maps. */
Test(cli, explain_groups_of_images_give_the_one_image_maps, .timeout = 120) {
    char tmp[64], pngs[5][256], out[2][256], p[512], q[512];
    tp_make_tmp(tmp, sizeof tmp, "cli");
    for (int v = 0; v < 5; v++) {
        char name[32];
        snprintf(name, sizeof name, "im%d.png", v);
        tp_join(pngs[v], sizeof pngs[v], tmp, name);
        if (v != 2) write_test_png_v(pngs[v], v);   /* im2.png is missing */
    }
    const char *batch[2] = {"1", "3"};
    for (int k = 0; k < 2; k++) {
        tp_join(out[k], sizeof out[k], tmp, k ? "grouped" : "single");
        tp_run r;
        run(&r, tmp, "explain", "-m", TINYCNN, "-M", "saliency,gradcam,ig", "--steps", "4", "--topk", "2", "--raw",
            "--image-batch", batch[k], pngs[0], pngs[1], pngs[2], pngs[3], pngs[4], "-o", out[k], NULL);
        cr_expect_eq(r.status, 1, "%s: exit %d (one input is missing)\n%s", r.cmd, r.status, r.err);
        cr_expect(strstr(r.err, "im2.png"), "stderr names the missing file: %s", r.err);
        tp_run_free(&r);
    }
    char *csv = tp_slurp(tp_join(p, sizeof p, out[0], "summary.csv"), NULL);
    cr_assert_not_null(csv);
    cr_expect_eq(count_lines(csv), 1 + 4 * 3 * 2, "header + 4 images x 3 methods x 2 targets: %s", csv);
    free(csv);
    expect_same_summaries(p, tp_join(q, sizeof q, out[1], "summary.csv"));
    static const char *ms[] = {"saliency", "gradcam", "ig"};
    for (int v = 0; v < 5; v++)
        for (int m = 0; m < 3; m++)
            for (int t = 1; t <= 2; t++) {
                char name[64];
                snprintf(name, sizeof name, "im%d.%s.top%d.npy", v, ms[m], t);
                tp_join(p, sizeof p, out[0], name);
                tp_join(q, sizeof q, out[1], name);
                if (v == 2) { cr_expect(!tp_exists(p) && !tp_exists(q), "%s: no maps for the missing input", name); continue; }
                double d = npy_rel_diff(q, p);
                cr_expect(d >= 0 && d < 1e-5, "%s: grouped and single maps differ by %g of the map's max", name, d);
                /* the overlays, rendered one by one and written in parallel: the same picture (a
                 * colour step may differ where the maps differ by float rounding) */
                snprintf(name, sizeof name, "im%d.%s.top%d.png", v, ms[m], t);
                double f = png_differing_fraction(tp_join(p, sizeof p, out[0], name), tp_join(q, sizeof q, out[1], name));
                cr_expect(f >= 0 && f < 0.01, "%s: %.3g of the grouped overlay's pixels differ", name, f);
            }
    /* and the images' maps are their own: im3's saliency is not im1's */
    tp_join(p, sizeof p, out[1], "im1.saliency.top1.npy");
    tp_join(q, sizeof q, out[1], "im3.saliency.top1.npy");
    cr_expect_gt(npy_rel_diff(p, q), 1e-3, "two different images, two different maps");
    tp_join(p, sizeof p, out[1], "im1.saliency.top1.png");
    tp_join(q, sizeof q, out[1], "im3.saliency.top1.png");
    cr_expect_gt(png_differing_fraction(p, q), 0.1, "two different images, two different overlays");
    tp_remove_tree(tmp);
}

/* Saliency, input x gradient and the gradient CAMs asked together share their passes
 * (sal_explain_many): their raw maps are those of separate runs, bit for bit, top 1 and top 2. */
Test(cli, explain_methods_sharing_passes_give_the_separate_maps, .timeout = 120) {
    char tmp[64], png[2][256], together[256], alone[256], p[512], q[512];
    tp_make_tmp(tmp, sizeof tmp, "cli");
    tp_join(png[0], sizeof png[0], tmp, "a.png");
    tp_join(png[1], sizeof png[1], tmp, "b.png");
    write_test_png_v(png[0], 1);
    write_test_png_v(png[1], 3);
    tp_join(together, sizeof together, tmp, "together");
    tp_run r;
    run(&r, tmp, "explain", "-m", TINYCNN, "-M", "gradcam,saliency,ig,layercam,inputxgrad", "--steps", "4", "--topk",
        "2", "--raw", png[0], png[1], "-o", together, NULL);
    cr_assert_eq(r.status, 0, "%s: exit %d\n%s", r.cmd, r.status, r.err);
    tp_run_free(&r);
    static const char *ms[] = {"gradcam", "saliency", "ig", "layercam", "inputxgrad"};
    for (int m = 0; m < 5; m++) {
        tp_join(alone, sizeof alone, tmp, ms[m]);
        run(&r, tmp, "explain", "-m", TINYCNN, "-M", ms[m], "--steps", "4", "--topk", "2", "--raw", png[0], png[1],
            "-o", alone, NULL);
        cr_assert_eq(r.status, 0, "%s: exit %d\n%s", r.cmd, r.status, r.err);
        tp_run_free(&r);
        for (int v = 0; v < 2; v++)
            for (int t = 1; t <= 2; t++) {
                char name[64];
                snprintf(name, sizeof name, "%c.%s.top%d.npy", v ? 'b' : 'a', ms[m], t);
                double d = npy_rel_diff(tp_join(p, sizeof p, together, name), tp_join(q, sizeof q, alone, name));
                cr_expect(d == 0, "%s: asked with the others, %s of the map's max from the map alone", name,
                          d < 0 ? "unreadable or another shape" : "differs by a fraction");
            }
    }
    tp_remove_tree(tmp);
}

/* Inputs with one name (a/photo.png, b/photo.png, photo.npy) each keep their files: the later ones
 * are photo-2, photo-3, said on stderr and in the summaries' stem column. */
Test(cli, explain_inputs_with_one_name_keep_their_files, .timeout = 60) {
    char tmp[64], da[128], db[128], pa[512], pb[512], npy[256], out[256], p[512], q[512];
    tp_make_tmp(tmp, sizeof tmp, "cli");
    tp_join(da, sizeof da, tmp, "a");
    tp_join(db, sizeof db, tmp, "b");
    cr_assert(mkdir(da, 0777) == 0 && mkdir(db, 0777) == 0);
    write_test_png_v(tp_join(pa, sizeof pa, da, "photo.png"), 0);
    write_test_png_v(tp_join(pb, sizeof pb, db, "photo.png"), 1);
    write_test_npy(tp_join(npy, sizeof npy, tmp, "photo.npy"));
    tp_join(out, sizeof out, tmp, "out");
    tp_run r;
    run(&r, tmp, "explain", "-m", TINYCNN, "-M", "saliency", "--raw", pa, pb, npy, "-o", out, NULL);
    cr_assert_eq(r.status, 0, "%s: exit %d\n%s", r.cmd, r.status, r.err);
    cr_expect(strstr(r.err, "photo-2") && strstr(r.err, "photo-3"), "stderr says which files are renamed: %s", r.err);
    const char *stems[3] = {"photo", "photo-2", "photo-3"};
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/%s.saliency.png", out, stems[i]);
        cr_expect(tp_exists(p), "%s written", p);
        snprintf(p, sizeof p, "%s/%s.saliency.npy", out, stems[i]);
        cr_expect(tp_exists(p), "%s written", p);
    }
    snprintf(p, sizeof p, "%s/photo.saliency.npy", out);
    snprintf(q, sizeof q, "%s/photo-2.saliency.npy", out);
    cr_expect_gt(npy_rel_diff(p, q), 1e-3, "a/photo.png and b/photo.png have their own maps");
    char *csv = tp_slurp(tp_join(p, sizeof p, out, "summary.csv"), NULL);
    cr_assert_not_null(csv);
    char f[16][256];
    int nh = csv_fields(csv, f, 16), col = -1;
    for (int k = 0; k < nh; k++)
        if (!strcmp(f[k], "stem")) col = k;
    cr_assert(col >= 0, "summary.csv has a stem column: %s", csv);
    int row = 0;
    for (const char *line = strchr(csv, '\n') + 1; *line && row < 3; line = strchr(line, '\n') + 1, row++) {
        csv_fields(line, f, 16);
        cr_expect_str_eq(f[col], stems[row], "row %d's stem", row);
    }
    free(csv);
    char *jl = tp_slurp(tp_join(p, sizeof p, out, "summary.jsonl"), NULL);
    cr_assert_not_null(jl);
    cr_expect(strstr(jl, "\"stem\": \"photo-3\""), "summary.jsonl has the stems: %s", jl);
    free(jl);
    tp_run_free(&r);
    tp_remove_tree(tmp);
}

/* A folder among the inputs stands for the images and .npy files under it, in path order (sub-
 * folders included, hidden entries and other files skipped); a folder with none is reported, the
 * rest still explained, and the exit status is 1. */
Test(cli, folders_stand_for_the_inputs_under_them, .timeout = 60) {
    char tmp[64], ds[128], sub[256], hid[256], empty[128], p[1024], out[256];
    tp_make_tmp(tmp, sizeof tmp, "cli");
    tp_join(ds, sizeof ds, tmp, "ds");
    tp_join(sub, sizeof sub, ds, "b-sub");
    tp_join(hid, sizeof hid, ds, ".hidden");
    tp_join(empty, sizeof empty, tmp, "empty");
    cr_assert(mkdir(ds, 0777) == 0 && mkdir(sub, 0777) == 0 && mkdir(hid, 0777) == 0 && mkdir(empty, 0777) == 0);
    write_test_png_v(tp_join(p, sizeof p, ds, "c.png"), 0);
    write_test_png_v(tp_join(p, sizeof p, ds, "a.PNG"), 1);
    write_test_npy(tp_join(p, sizeof p, sub, "z.npy"));
    write_test_png_v(tp_join(p, sizeof p, hid, "h.png"), 2);
    cr_assert_eq(write_bytes(tp_join(p, sizeof p, ds, "notes.txt"), "hi\n", 3), 0);
    tp_join(out, sizeof out, tmp, "out");
    tp_run r;
    run(&r, tmp, "explain", "-m", TINYCNN, "-M", "saliency", ds, empty, "-o", out, NULL);
    cr_expect_eq(r.status, 1, "%s: exit %d (an empty folder)\n%s", r.cmd, r.status, r.err);
    cr_expect(strstr(r.err, "empty") && strstr(r.err, "no images"), "stderr names the empty folder: %s", r.err);
    char *csv = tp_slurp(tp_join(p, sizeof p, out, "summary.csv"), NULL);
    cr_assert_not_null(csv, "the folder's inputs were explained");
    cr_expect_eq(count_lines(csv), 4, "header + a.PNG, b-sub/z.npy, c.png: %s", csv);
    const char *a = strstr(csv, "a.PNG"), *z = strstr(csv, "b-sub/z.npy"), *c = strstr(csv, "c.png");
    cr_expect(a && z && c && a < z && z < c, "in path order: %s", csv);
    cr_expect(!strstr(csv, "h.png") && !strstr(csv, "notes"), "hidden and other files skipped: %s", csv);
    free(csv);
    cr_expect(tp_exists(tp_join(p, sizeof p, out, "z.saliency.png")), "the .npy's map");
    tp_run_free(&r);
    run(&r, tmp, "predict", "-m", TINYCNN, ds, NULL);
    cr_expect_eq(r.status, 0, "%s: exit %d\n%s", r.cmd, r.status, r.err);
    cr_expect(strstr(r.out, "a.PNG") && strstr(r.out, "z.npy") && strstr(r.out, "c.png"), "predict lists the folder: %s", r.out);
    tp_run_free(&r);

    /* a link back to a folder above is not followed (each file once, and the walk ends) */
    cr_assert_eq(symlink("..", tp_join(p, sizeof p, sub, "up")), 0);
    run(&r, tmp, "predict", "-m", TINYCNN, ds, NULL);
    cr_expect_eq(r.status, 0, "%s: exit %d\n%s", r.cmd, r.status, r.err);
    cr_expect_eq(tp_count_substr(r.out, "a.PNG"), 1, "a.PNG once: %s", r.out);
    cr_expect(strstr(r.err, "not listed again"), "a note on the link: %s", r.err);
    tp_run_free(&r);
    /* nor a link to a sibling folder, nor a folder given twice */
    char side[512];
    cr_assert_eq(symlink(sub, tp_join(side, sizeof side, ds, "c-link")), 0);
    run(&r, tmp, "predict", "-m", TINYCNN, ds, sub, NULL);
    cr_expect_eq(r.status, 0, "%s: exit %d\n%s", r.cmd, r.status, r.err);
    cr_expect_eq(tp_count_substr(r.out, "z.npy"), 1, "z.npy once: %s", r.out);
    tp_run_free(&r);
    /* the output folder may not be an input folder, nor lie inside one, nor be the folder of an
     * input file: its maps would be mixed with the inputs (and be the next run's inputs); refused
     * as a usage error before anything is written */
    char inside[512], file_dir_out[512], before[1024], after[1024];
    tp_join(inside, sizeof inside, ds, "out");
    const char *dup_out[] = {ds, inside, sub};
    const char *dup_in[] = {ds, ds, p /* b-sub/z.npy: a file argument */};
    tp_join(p, sizeof p, sub, "z.npy");
    snprintf(file_dir_out, sizeof file_dir_out, "%s/./", sub);   /* the same folder, spelt otherwise */
    dup_out[2] = file_dir_out;
    dir_entries(ds, before, sizeof before);
    for (int k = 0; k < 3; k++) {
        run(&r, tmp, "explain", "-m", TINYCNN, "-M", "saliency", dup_in[k], "-o", dup_out[k], NULL);
        cr_expect_eq(r.status, 2, "%s: exit %d\n%s", r.cmd, r.status, r.err);
        cr_expect(strstr(r.err, "output folder") && strstr(r.err, dup_in[k]), "stderr names the input and says why: %s", r.err);
        tp_run_free(&r);
    }
    dir_entries(ds, after, sizeof after);
    cr_expect_str_eq(after, before, "nothing was written into the input folder");
    cr_expect(!tp_exists(inside), "%s was created", inside);

    /* bench does not swap a folder without inputs for random images */
    run(&r, tmp, "bench", "-m", TINYCNN, "-M", "saliency", "--images", "2", "--min-time", "0", empty, NULL);
    cr_expect_neq(r.status, 0, "%s: exit %d\n%s", r.cmd, r.status, r.out);
    tp_run_free(&r);
    tp_remove_tree(tmp);
}

/* A group (or predict's batch) whose forward pass does not fit the memory limit is run in smaller
 * forward passes (the methods batch on their own): every input is still explained. */
Test(cli, explain_group_larger_than_memory_is_split, .timeout = 60) {
    char tmp[64], ds[128], p[512], out[256];
    tp_make_tmp(tmp, sizeof tmp, "cli");
    tp_join(ds, sizeof ds, tmp, "ds");
    cr_assert(mkdir(ds, 0777) == 0);
    for (int i = 0; i < 60; i++) {
        char name[32];
        snprintf(name, sizeof name, "im%02d.png", i);
        write_test_png_v(tp_join(p, sizeof p, ds, name), i % 4);
    }
    tp_join(out, sizeof out, tmp, "out");
    tp_run r;
    run(&r, tmp, "explain", "-m", TINYCNN, "-M", "saliency", "--mem-limit", "2", "--image-batch", "60", ds, "-o", out,
        NULL);
    cr_expect_eq(r.status, 0, "%s: exit %d\n%s", r.cmd, r.status, r.err);
    char *csv = tp_slurp(tp_join(p, sizeof p, out, "summary.csv"), NULL);
    cr_expect(csv && count_lines(csv) == 61, "header + 60 rows: %s", csv ? csv : "(none)");
    free(csv);
    tp_run_free(&r);
    /* predict's batches too (sal_forward halves what does not fit) */
    run(&r, tmp, "predict", "-m", TINYCNN, "--mem-limit", "2", "--batch", "60", ds, NULL);
    cr_expect_eq(r.status, 0, "%s: exit %d\n%s", r.cmd, r.status, r.err);
    cr_expect_eq(tp_count_substr(r.out, "im"), 60, "60 inputs predicted");
    tp_run_free(&r);
    tp_remove_tree(tmp);
}

/* ------------------------------------------------------------------------------------------------ */
/* explain: seeds                                                                                   */

static char *smoothgrad_raw(const char *tmp, const char *png, const char *sub, const char *seed, size_t *len) {
    char out[256], p[512];
    tp_join(out, sizeof out, tmp, sub);
    tp_run r;
    run(&r, tmp, "explain", "-m", TINYCNN, "-M", "smoothgrad", "--samples", "4", "--seed", seed, "--raw", png,
        "-o", out, NULL);
    cr_assert_eq(r.status, 0, "%s: exit %d\n%s", r.cmd, r.status, r.err);
    tp_run_free(&r);
    char *b = tp_slurp(tp_join(p, sizeof p, out, "photo.smoothgrad.npy"), len);
    cr_assert_not_null(b, "%s written", p);
    return b;
}

Test(cli, explain_seed_reproducible, .timeout = 60) {
    char tmp[64], png[256];
    tp_make_tmp(tmp, sizeof tmp, "cli");
    write_test_png(tp_join(png, sizeof png, tmp, "photo.png"));
    size_t la, lb, lc;
    char *a = smoothgrad_raw(tmp, png, "a", "5", &la);
    char *b = smoothgrad_raw(tmp, png, "b", "5", &lb);
    char *c = smoothgrad_raw(tmp, png, "c", "6", &lc);
    cr_expect(la == lb && !memcmp(a, b, la), "same seed: byte-identical SmoothGrad arrays");
    cr_expect(la == lc && memcmp(a, c, la), "another seed: a different SmoothGrad array");
    free(a);
    free(b);
    free(c);
    tp_remove_tree(tmp);
}

/* ------------------------------------------------------------------------------------------------ */
/* explain: bad input leaves nothing behind                                                         */

/* Run explain with args + "-o DIR" twice: into a fresh empty directory (which must stay empty) and
 * into one that does not exist (which must not be created). The exit status must be `status` (or
 * any non-zero status when status < 0) and stderr must contain `needle`. */
static void expect_rejected(const char *tmp, const char *what, int status, const char *needle,
                            const char *const *args) {
    for (int variant = 0; variant < 2; variant++) {
        char out[256];
        snprintf(out, sizeof out, "%s/out-%s-%d", tmp, what, variant);
        if (variant == 0) cr_assert_eq(mkdir(out, 0755), 0);
        const char *argv[64];
        int n = 0;
        argv[n++] = "explain";
        argv[n++] = "-m";
        argv[n++] = TINYCNN;
        for (int i = 0; args[i] && n < 60; i++) argv[n++] = args[i];
        argv[n++] = "-o";
        argv[n++] = out;
        argv[n] = NULL;
        tp_run r;
        run_argv(&r, tmp, argv);
        if (status < 0) cr_expect_neq(r.status, 0, "%s: %s: exit 0", what, r.cmd);
        else cr_expect_eq(r.status, status, "%s: %s: exit %d, expected %d\n%s", what, r.cmd, r.status, status, r.err);
        cr_expect(strstr(r.err, needle), "%s: stderr should name '%s': %s", what, needle, r.err);
        cr_expect(!strstr(r.err, "target 0 (") && !strstr(r.err, " s\n"), "%s: no method ran: %s", what, r.err);
        char list[2048] = "";
        if (variant == 0)
            cr_expect_eq(dir_entries(out, list, sizeof list), 0, "%s: files left in the output directory: %s", what, list);
        else
            cr_expect(!tp_exists(out), "%s: the output directory was created", what);
        tp_run_free(&r);
    }
}

Test(cli, explain_rejects_bad_options_before_writing, .timeout = 120) {
    char tmp[64], png[256];
    tp_make_tmp(tmp, sizeof tmp, "cli");
    write_test_png(tp_join(png, sizeof png, tmp, "photo.png"));
    const char *const a1[] = {"-M", "nosuch", png, NULL};
    expect_rejected(tmp, "method", 2, "nosuch", a1);
    const char *const a1b[] = {"-M", "saliency,nosuch", png, NULL};
    expect_rejected(tmp, "method2", 2, "nosuch", a1b);
    const char *const a2[] = {"--target", "99", png, NULL};
    expect_rejected(tmp, "target", 2, "--target 99", a2);
    const char *const a2b[] = {"--target", "-1", png, NULL};
    expect_rejected(tmp, "target-neg", 2, "--target -1", a2b);
    const char *const a3[] = {"--target", "nosuchlabel", png, NULL};
    expect_rejected(tmp, "label", 2, "nosuchlabel", a3);
    const char *const a4[] = {"-M", "gradcam", "--layer", "nope", png, NULL};
    expect_rejected(tmp, "layer", 2, "nope", a4);
    /* a bad option of a later method must not let an earlier one write its files */
    const char *const a4b[] = {"-M", "saliency,gradcam", "--layer", "nope", png, NULL};
    expect_rejected(tmp, "layer2", 2, "--layer nope", a4b);
    const char *const a4c[] = {"-M", "gradcam", "--layer", "head.fc", png, NULL};   /* 2-D output */
    expect_rejected(tmp, "layer2d", 2, "head.fc", a4c);
    const char *const a5[] = {"-M", "occlusion", "--window", "64x64", png, NULL};
    expect_rejected(tmp, "window", 2, "--window", a5);
    const char *const a5b[] = {"-M", "saliency,occlusion", "--window", "64x64", png, NULL};
    expect_rejected(tmp, "window2", 2, "--window", a5b);
    const char *const a5c[] = {"-M", "occlusion", "--window", "4x4", "--stride", "8x8", png, NULL};
    expect_rejected(tmp, "stride", 2, "--stride", a5c);
    const char *const a6[] = {"-M", "ig", "--steps", "0", png, NULL};
    expect_rejected(tmp, "steps", 2, "--steps", a6);
    const char *const a7[] = {"-M", "smoothgrad", "--samples", "0", png, NULL};
    expect_rejected(tmp, "samples", 2, "--samples", a7);
    const char *const a8[] = {"-M", "smoothgrad", "--nt-inner", "gradcam", png, NULL};
    expect_rejected(tmp, "nt-inner", 2, "--nt-inner", a8);
    const char *const a9[] = {"-M", "ig", "--baseline", "/nonexistent/baseline.npy", png, NULL};
    expect_rejected(tmp, "baseline", 1, "baseline.npy", a9);
    tp_remove_tree(tmp);
}

Test(cli, explain_rejects_bad_inputs_before_writing, .timeout = 120) {
    char tmp[64], png[256], junk[256], trunc[256], missing[256];
    tp_make_tmp(tmp, sizeof tmp, "cli");
    write_test_png(tp_join(png, sizeof png, tmp, "photo.png"));
    /* random bytes under a .png name, and a PNG cut after its header */
    unsigned char noise[300];
    for (int i = 0; i < 300; i++) noise[i] = (unsigned char)(i * 151 + 7);
    cr_assert_eq(write_bytes(tp_join(junk, sizeof junk, tmp, "junk.png"), noise, sizeof noise), 0);
    size_t len = 0;
    char *good = tp_slurp(png, &len);
    cr_assert(good && len > 60);
    cr_assert_eq(write_bytes(tp_join(trunc, sizeof trunc, tmp, "truncated.png"), good, 60), 0);
    free(good);
    tp_join(missing, sizeof missing, tmp, "not-here.png");
    const char *const a1[] = {"-M", "saliency,gradcam", junk, NULL};
    expect_rejected(tmp, "junk", 1, "junk.png", a1);
    const char *const a2[] = {"-M", "saliency", trunc, NULL};
    expect_rejected(tmp, "truncated", 1, "truncated.png", a2);
    const char *const a3[] = {"-M", "saliency", missing, junk, NULL};
    expect_rejected(tmp, "missing", 1, "not-here.png", a3);
    const char *const a4[] = {"-M", "saliency", png, NULL};
    /* a model that is not one */
    char badmodel[256];
    cr_assert_eq(write_bytes(tp_join(badmodel, sizeof badmodel, tmp, "model.onnx"), noise, sizeof noise), 0);
    for (int variant = 0; variant < 2; variant++) {
        char out[256];
        snprintf(out, sizeof out, "%s/out-model-%d", tmp, variant);
        if (variant == 0) mkdir(out, 0755);
        tp_run r;
        run(&r, tmp, "explain", "-m", badmodel, a4[0], a4[1], a4[2], "-o", out, NULL);
        cr_expect_eq(r.status, 1, "%s: exit %d", r.cmd, r.status);
        cr_expect(strstr(r.err, "model.onnx"), "stderr names the model: %s", r.err);
        if (variant == 0) cr_expect_eq(dir_entries(out, NULL, 0), 0, "bad model: files left");
        else cr_expect(!tp_exists(out), "bad model: output directory created");
        tp_run_free(&r);
    }
    tp_remove_tree(tmp);
}

Test(cli, explain_unwritable_output_dir) {
    char tmp[64], png[256], parent[256], out[512];
    tp_make_tmp(tmp, sizeof tmp, "cli");
    write_test_png(tp_join(png, sizeof png, tmp, "photo.png"));
    if (geteuid() == 0) {
        /* root ignores permissions: a path under a regular file can never be created */
        cr_assert_eq(write_bytes(tp_join(parent, sizeof parent, tmp, "a-file"), "x", 1), 0);
    } else {
        cr_assert_eq(mkdir(tp_join(parent, sizeof parent, tmp, "read-only"), 0500), 0);
    }
    snprintf(out, sizeof out, "%s/sub", parent);
    tp_run r;
    run(&r, tmp, "explain", "-m", TINYCNN, "-M", "saliency", png, "-o", out, NULL);
    cr_expect_eq(r.status, 1, "%s: exit %d", r.cmd, r.status);
    cr_expect(strstr(r.err, parent), "stderr names the directory: %s", r.err);
    cr_expect(!strstr(r.err, " s\n"), "no method ran before the directory was checked: %s", r.err);
    cr_expect(!tp_exists(out), "%s was created", out);
    if (geteuid() != 0) cr_expect_eq(dir_entries(parent, NULL, 0), 0, "files left in %s", parent);
    tp_run_free(&r);
    /* an output "directory" that is a file */
    run(&r, tmp, "explain", "-m", TINYCNN, "-M", "saliency", png, "-o", png, NULL);
    cr_expect_eq(r.status, 1, "%s: exit %d", r.cmd, r.status);
    cr_expect(strstr(r.err, "photo.png") && strstr(r.err, "not a directory"), "stderr: %s", r.err);
    tp_run_free(&r);
    tp_remove_tree(tmp);
}
