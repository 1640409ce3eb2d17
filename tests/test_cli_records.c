/* test_cli_records.c — what `salient explain` tells while it runs and what it leaves behind when
 * things go wrong: the progress report (plain lines when stderr is not a terminal, a bar redrawn
 * in place on a terminal, nothing with --quiet, stdout untouched with --json); the one record per
 * map seen three ways (stdout's --json line, summary.jsonl, summary.csv) agreeing field by field,
 * its probabilities checked against a softmax of its own logits; and output that survives faults:
 * SIGKILL at random points leaves only whole files and rows that name them, a full filesystem
 * (a small tmpfs) stops the run naming the file and the reason with the finished outputs intact,
 * a second run into a folder in use is refused, and killed runs' temporary files are cleared. The
 * model is the tiny fixture CNN of tests/fixtures/methods (input (N,3,32,32), 10 classes). */
#define _DEFAULT_SOURCE   /* putenv, usleep */
#include <criterion/criterion.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "salient.h"
#include "io/io.h"
#include "testutil.h"
#include "testproc.h"

#define SALIENT SAL_BINARY_DIR "/salient"
#define TINYCNN SAL_SOURCE_DIR "/tests/fixtures/methods/tinycnn.onnx"

/* ------------------------------------------------------------------------------------------------ */
/* Files                                                                                            */

/* n (3,32,32) float32 inputs in dir: in0.npy ... (smooth, distinct), and one 50x40 PNG photo.png */
static void write_inputs(const char *dir, int n) {
    static float x[3 * 32 * 32];
    char p[512];
    for (int i = 0; i < n; i++) {
        for (int c = 0; c < 3; c++)
            for (int y = 0; y < 32; y++)
                for (int xx = 0; xx < 32; xx++)
                    x[(c * 32 + y) * 32 + xx] = 2.0f * sinf(0.3f * (float)(xx + 2 * c + i)) * cosf(0.2f * (float)(y - c * i));
        int64_t dims[3] = {3, 32, 32};
        char name[64];
        snprintf(name, sizeof name, "in%d.npy", i);
        sal_error err = {0};
        cr_assert_eq(sal_npy_write(tp_join(p, sizeof p, dir, name), x, 3, dims, &err), SAL_OK, "%s", err.msg);
    }
}

static void write_photo(const char *path) {
    static uint8_t rgb[50 * 40 * 3];
    for (int y = 0; y < 40; y++)
        for (int x = 0; x < 50; x++) {
            uint8_t *q = rgb + 3 * (y * 50 + x);
            q[0] = (uint8_t)(5 * x);
            q[1] = (uint8_t)(6 * y);
            q[2] = (uint8_t)(128 + (x * y) % 100);
        }
    sal_error err = {0};
    cr_assert_eq(sal_png_write_rgb(path, 50, 40, rgb, &err), SAL_OK, "%s", err.msg);
}

/* ------------------------------------------------------------------------------------------------ */
/* Running the program                                                                              */

/* Start salient with argv, one OpenMP thread and the default progress interval; env: NULL or one
 * more "NAME=VALUE" for the child. */
static pid_t start(tp_run *r, const char *scratch, const char *env, const char *const *argv) {
    const char *envs[] = {"OMP_NUM_THREADS=1", "SALIENT_PROGRESS_SECONDS", env, NULL};
    return tp_start(r, scratch, SALIENT, envs, NULL, argv);
}

#define RUN(r, scratch, env, ...)                                                                 \
    do {                                                                                          \
        const char *argv_[] = {__VA_ARGS__, NULL};                                                \
        tp_finish((r), start((r), (scratch), (env), argv_));                                      \
    } while (0)

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* ------------------------------------------------------------------------------------------------ */
/* Progress                                                                                         */

/* Slow enough to be seen running (a second or two per input on an idle 2-core machine): RISE with
 * 4000 masks, 4 per pass (occlusion was, until incremental occlusion made it 5x faster). */
#define SLOW "-M", "rise", "--masks", "4000", "--method-batch", "4"

Test(records, progress_lines_when_stderr_is_not_a_terminal, .timeout = 600) {
    char tmp[64], out[256], in[256];
    tp_make_tmp(tmp, sizeof tmp, "rec");
    tp_join(in, sizeof in, tmp, "in");
    mkdir(in, 0755);
    write_inputs(in, 3);
    tp_join(out, sizeof out, tmp, "out");
    tp_run r;
    /* SALIENT_PROGRESS_SECONDS (the test hook) makes the lines come every 0.05 s */
    RUN(&r, tmp, "SALIENT_PROGRESS_SECONDS=0.05", "explain", "-m", TINYCNN, SLOW, "--json", "--image-batch", "1", in,
        "-o", out);
    cr_assert_eq(r.status, 0, "%s: exit %d\n%s", r.cmd, r.status, r.err);
    cr_expect(!strchr(r.err, '\r'), "no carriage return when stderr is a file: %s", r.err);
    int lines = 0;
    long last = -1, shrank = 0;
    for (const char *l = strstr(r.err, "salient: explain: "); l; l = strstr(l + 1, "salient: explain: ")) {
        long done = strtol(l + 18, NULL, 10);
        if (done < last) shrank++;
        last = done;
        const char *eol = strchr(l, '\n');
        cr_assert(eol, "whole lines: %s", l);
        char line[512];
        snprintf(line, sizeof line, "%.*s", (int)(eol - l), l);
        cr_expect(strstr(line, "/3 inputs (") && (strstr(line, " inputs/s") || strstr(line, " s/input")) &&
                  strstr(line, "ETA"),
                  "done/total, rate, ETA: %s", line);
        lines++;
    }
    cr_expect_geq(lines, 3, "several lines during the run: %s", r.err);
    cr_expect_eq(shrank, 0, "the count never goes back: %s", r.err);
    cr_expect(strstr(r.err, ", rise\n"), "the method at work is named: %s", r.err);
    /* stdout stays JSON: one object per input and method, nothing else */
    int objects = 0;
    for (const char *l = r.out; *l; l = strchr(l, '\n') + 1) {
        cr_expect_eq(*l, '{', "stdout line is a JSON object: %.60s", l);
        objects++;
        if (!strchr(l, '\n')) break;
    }
    cr_expect_eq(objects, 3, "--json: 3 objects on stdout: %s", r.out);
    tp_run_free(&r);

    /* the default pace: at most a line every few seconds, so a short run prints none */
    tp_remove_tree(out);
    RUN(&r, tmp, NULL, "explain", "-m", TINYCNN, "-M", "saliency", in, "-o", out);
    cr_assert_eq(r.status, 0, "%s: exit %d\n%s", r.cmd, r.status, r.err);
    cr_expect_eq(tp_count_substr(r.err, "salient: explain: "), 0, "no progress line in a short run: %s", r.err);
    cr_expect(strstr(r.err, "explained 3 of 3 inputs"), "the run's one-line summary: %s", r.err);
    tp_run_free(&r);

    /* --quiet: nothing on stderr at all */
    tp_remove_tree(out);
    RUN(&r, tmp, "SALIENT_PROGRESS_SECONDS=0.05", "explain", "-m", TINYCNN, SLOW, "--quiet", in, "-o", out);
    cr_assert_eq(r.status, 0, "%s: exit %d\n%s", r.cmd, r.status, r.err);
    cr_expect_str_empty(r.err, "--quiet: stderr empty: %s", r.err);
    tp_run_free(&r);
    tp_remove_tree(tmp);
}

/* On a terminal (script(1) gives the program one): a bar redrawn in place with \r, the count, the
 * method, the rate and the ETA; none with --quiet. */
Test(records, progress_bar_on_a_terminal, .timeout = 600) {
    if (access("/usr/bin/script", X_OK)) cr_skip_test("no /usr/bin/script (util-linux) to give the program a terminal");
    char tmp[64], cmd[2048], log[512], in[256];
    tp_make_tmp(tmp, sizeof tmp, "rec");
    tp_join(in, sizeof in, tmp, "in");
    mkdir(in, 0755);
    write_inputs(in, 2);
    tp_join(log, sizeof log, tmp, "tty.log");
    for (int quiet = 0; quiet < 2; quiet++) {
        snprintf(cmd, sizeof cmd,
                 "cd %s && OMP_NUM_THREADS=1 SALIENT_PROGRESS_SECONDS=0.1 script -qec 'stty cols 200; %s explain -m %s "
                 "-M rise --masks 4000 --method-batch 4 --image-batch 1 %s in -o out%d' /dev/null > %s 2>&1",
                 tmp, SALIENT, TINYCNN, quiet ? "--quiet" : "", quiet, log);
        int rc = system(cmd);
        cr_assert_eq(rc, 0, "%s: status %d", cmd, rc);
        char *t = tp_slurp(log, NULL);
        cr_assert_not_null(t);
        if (!quiet) {
            cr_expect_geq(tp_count_substr(t, "\rsalient explain ["), 2, "a bar redrawn in place: %s", t);
            cr_expect(strstr(t, "/2 inputs (") && strstr(t, "rise") && strstr(t, "ETA"), "count, method, ETA: %s", t);
            cr_expect(strstr(t, "\033[K"), "each draw clears the rest of the line");
        } else {
            cr_expect(!strstr(t, "salient explain ["), "--quiet: no bar: %s", t);
        }
        free(t);
    }
    tp_remove_tree(tmp);
}

/* ------------------------------------------------------------------------------------------------ */
/* One record, three views                                                                          */

/* A flat JSON object's values as text, in order: strings unescaped (\" \\ \uXXXX below 0x80),
 * numbers as written, null as "" (flag is_null), arrays as written. Returns the number of keys. */
typedef struct jfield {
    char key[64];
    char val[2048];
    int is_null;
} jfield;

static int json_fields(const char *s, jfield *f, int max) {
    int n = 0;
    const char *p = strchr(s, '{');
    if (!p) return -1;
    p++;
    while (*p && *p != '}' && n < max) {
        while (*p == ' ' || *p == ',') p++;
        if (*p != '"') return -1;
        const char *k = ++p;
        while (*p && *p != '"') p++;
        snprintf(f[n].key, sizeof f[n].key, "%.*s", (int)(p - k), k);
        p++;
        if (*p++ != ':') return -1;
        while (*p == ' ') p++;
        f[n].is_null = 0;
        size_t o = 0;
        if (*p == '"') {
            for (p++; *p && *p != '"'; p++) {
                char ch = *p;
                if (ch == '\\') {
                    p++;
                    if (*p == 'u') { ch = (char)strtol((char[5]){p[1], p[2], p[3], p[4], 0}, NULL, 16); p += 4; }
                    else ch = *p;
                }
                if (o < sizeof f[n].val - 1) f[n].val[o++] = ch;
            }
            p++;
        } else if (*p == '[') {
            const char *a = p;
            while (*p && *p != ']') p++;
            p++;
            o = (size_t)(p - a) < sizeof f[n].val - 1 ? (size_t)(p - a) : sizeof f[n].val - 1;
            memcpy(f[n].val, a, o);
        } else if (!strncmp(p, "null", 4)) {
            f[n].is_null = 1;
            p += 4;
        } else {
            const char *a = p;
            while (*p && *p != ',' && *p != '}') p++;
            o = (size_t)(p - a) < sizeof f[n].val - 1 ? (size_t)(p - a) : sizeof f[n].val - 1;
            memcpy(f[n].val, a, o);
        }
        f[n].val[o] = 0;
        n++;
    }
    return n;
}

/* One CSV line's fields (RFC 4180 quoting, "" for a quote inside). */
static int csv_fields(const char *line, char f[][2048], int max) {
    int n = 0, q = 0;
    size_t k = 0;
    for (const char *p = line;; p++) {
        if (*p == '"') {
            if (q && p[1] == '"') { if (n < max && k < 2047) f[n][k++] = '"'; p++; continue; }
            q = !q;
            continue;
        }
        if ((*p == ',' && !q) || *p == '\n' || *p == 0) {
            if (n < max) f[n][k] = 0;
            n++;
            k = 0;
            if (*p != ',') break;
            continue;
        }
        if (n < max && k < 2047) f[n][k++] = *p;
    }
    return n;
}

static const char *field(const jfield *f, int n, const char *key) {
    for (int i = 0; i < n; i++)
        if (!strcmp(f[i].key, key)) return f[i].is_null ? NULL : f[i].val;
    return NULL;
}

Test(records, json_jsonl_and_csv_agree_field_by_field, .timeout = 120) {
    char tmp[64], out[256], p[4200], photo[512], in[256];
    tp_make_tmp(tmp, sizeof tmp, "rec");
    tp_join(in, sizeof in, tmp, "in");
    mkdir(in, 0755);
    write_inputs(in, 1);
    write_photo(tp_join(photo, sizeof photo, in, "a \"quoted\", name.png"));   /* quotes and a comma */
    tp_join(out, sizeof out, tmp, "out");
    tp_run r;
    RUN(&r, tmp, NULL, "explain", "-m", TINYCNN, "-M", "saliency,ig,gradcam,kernelshap", "--steps", "4",
        "--coalitions", "80", "--topk", "2", "--json", tp_join(p, sizeof p, in, "in0.npy"), photo, "-o", out);
    cr_assert_eq(r.status, 0, "%s: exit %d\n%s", r.cmd, r.status, r.err);
    char *jl = tp_slurp(tp_join(p, sizeof p, out, "summary.jsonl"), NULL), *csv = tp_slurp(tp_join(p, sizeof p, out, "summary.csv"), NULL);
    cr_assert(jl && csv);
    cr_expect_str_eq(r.out, jl, "--json prints exactly summary.jsonl's lines");
    static char head[64][2048], row[64][2048];
    int nh = csv_fields(csv, head, 64);
    cr_assert_geq(nh, 19, "the header: %.300s", csv);
    static const char *want[] = {"input", "method", "target", "target_label", "rank", "predicted", "predicted_label",
                                 "probability", "score", "completeness_gap", "seconds", "stem", "delta", "layer",
                                 "predicted_probability", "images_per_call", "file", "status", "logits"};
    for (size_t k = 0; k < sizeof want / sizeof want[0]; k++) {
        int found = 0;
        for (int h = 0; h < nh; h++) found |= !strcmp(head[h], want[k]);
        cr_expect(found, "summary.csv has the column %s", want[k]);
    }
    const char *cl = strchr(csv, '\n') + 1, *jline = jl;
    int rows = 0;
    static jfield jf[64];
    while (*cl && *jline) {
        int nc = csv_fields(cl, row, 64);
        int nj = json_fields(jline, jf, 64);
        cr_assert_eq(nc, nh, "row %d: as many fields as the header", rows);
        cr_assert_eq(nj, nh, "line %d: as many keys as summary.csv has columns: %.200s", rows, jline);
        for (int k = 0; k < nh; k++) {
            cr_expect_str_eq(jf[k].key, head[k], "line %d key %d: the columns' order", rows, k);
            if (jf[k].is_null) cr_expect_str_empty(row[k], "row %d %s: empty where JSON has null", rows, head[k]);
            else cr_expect_str_eq(row[k], jf[k].val, "row %d %s: the same value", rows, head[k]);
        }
        /* the numbers mean what they say: probabilities from a softmax of the row's own logits */
        double lg[16];
        int K = 0;
        for (const char *q = field(jf, nj, "logits") + 1; K < 16;) {
            char *e;
            lg[K] = strtod(q, &e);
            if (e == q) break;
            K++;
            q = e + strspn(e, ", ");
        }
        cr_expect_eq(K, 10, "10 logits");
        double mx = lg[0], z = 0;
        int arg = 0;
        for (int k = 1; k < K; k++) if (lg[k] > lg[arg]) arg = k;
        mx = lg[arg];
        for (int k = 0; k < K; k++) z += exp(lg[k] - mx);
        int target = atoi(field(jf, nj, "target")), pred = atoi(field(jf, nj, "predicted"));
        cr_expect_eq(pred, arg, "predicted is the top logit");
        cr_expect(fabs(atof(field(jf, nj, "probability")) - exp(lg[target] - mx) / z) < 1e-5, "probability of the target");
        cr_expect(fabs(atof(field(jf, nj, "predicted_probability")) - 1 / z) < 1e-5, "probability of the prediction");
        int rank = atoi(field(jf, nj, "rank"));
        if (rank == 1) cr_expect_eq(target, pred, "rank 1 is the prediction");
        else cr_expect_neq(target, pred, "rank 2 is another class");
        const char *m = field(jf, nj, "method"), *file = field(jf, nj, "file");
        cr_expect_eq(!field(jf, nj, "completeness_gap"), strcmp(m, "ig") && strcmp(m, "kernelshap"), "%s: gap", m);
        cr_expect_eq(!field(jf, nj, "layer"), strcmp(m, "gradcam") != 0, "%s: layer", m);
        cr_expect_str_eq(field(jf, nj, "status"), "ok");
        cr_expect(file && tp_exists(tp_join(p, sizeof p, out, file)), "row %d names a file that exists: %s", rows, file);
        rows++;
        cl = strchr(cl, '\n') + 1;
        jline = strchr(jline, '\n') + 1;
    }
    cr_expect_eq(rows, 2 * 4 * 2, "2 inputs x 4 methods x 2 targets");
    cr_expect(!*cl && !*jline, "as many rows as lines");
    free(jl);
    free(csv);
    tp_run_free(&r);
    tp_remove_tree(tmp);
}

/* ------------------------------------------------------------------------------------------------ */
/* Output that survives faults                                                                      */

/* Every file in out is whole: PNGs decode, .npy arrays have their shape; every complete row of
 * both summaries names a file that exists; no line is cut. Returns the rows. */
static int check_outputs(const char *out, int photo_w, int photo_h) {
    char p[4200];
    DIR *d = opendir(out);
    if (!d) return 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        const char *nm = e->d_name;
        size_t L = strlen(nm);
        snprintf(p, sizeof p, "%s/%s", out, nm);
        if (strstr(nm, ".salient-tmp")) continue;   /* a killed run's temporary: cleared by the next */
        if (L > 4 && !strcmp(nm + L - 4, ".png")) {
            sal_image im = {0};
            sal_error err = {0};
            cr_expect_eq(sal_image_load(p, &im, &err), SAL_OK, "%s decodes: %s", p, err.msg);
            int is_photo = !strncmp(nm, "photo.", 6) && !strstr(nm, ".heatmap.");
            cr_expect(im.w == (is_photo ? photo_w : 32) && im.h == (is_photo ? photo_h : 32), "%s: size %dx%d", p, im.w, im.h);
            sal_image_free(&im);
        } else if (L > 4 && !strcmp(nm + L - 4, ".npy")) {
            float *x = NULL;
            int nd = 0;
            int64_t dims[SAL_MAX_DIMS];
            sal_error err = {0};
            cr_expect_eq(sal_npy_read(p, &x, &nd, dims, &err), SAL_OK, "%s reads whole: %s", p, err.msg);
            if (strstr(nm, "cam."))   /* at the layer's resolution: cam.relu's 16x16, head.relu's 8x8 */
                cr_expect(nd == 2 && dims[0] >= 1 && dims[0] <= 16 && dims[0] == dims[1], "%s: a CAM's (h,w)", p);
            else
                cr_expect(nd == 3 && dims[0] == 3 && dims[1] == 32 && dims[2] == 32, "%s: (3,32,32)", p);
            free(x);
        }
    }
    closedir(d);
    int rows = 0;
    static jfield jf[64];
    char *jl = tp_slurp(tp_join(p, sizeof p, out, "summary.jsonl"), NULL);
    if (jl) {
        size_t n = strlen(jl);
        cr_expect(n == 0 || jl[n - 1] == '\n', "summary.jsonl ends with a whole line: ...%s", jl + (n > 80 ? n - 80 : 0));
        for (char *l = jl; *l && strchr(l, '\n'); l = strchr(l, '\n') + 1) {
            int nj = json_fields(l, jf, 64);
            cr_expect_geq(nj, 19, "a whole object: %.100s", l);
            const char *file = field(jf, nj, "file");
            cr_expect(file && tp_exists(tp_join(p, sizeof p, out, file)), "row names a file that exists: %s", file ? file : "(none)");
            rows++;
        }
        free(jl);
    }
    /* summary.csv: the same rows, or (killed between the two appends) one chunk (<= 32 rows) more;
     * its rows, too, name files that exist */
    char *csv = tp_slurp(tp_join(p, sizeof p, out, "summary.csv"), NULL);
    if (csv) {
        static char f[64][2048];
        int nh = csv_fields(csv, f, 64), col = -1, lines = 0;
        for (int k = 0; k < nh && k < 64; k++)
            if (!strcmp(f[k], "file")) col = k;
        cr_expect_geq(col, 0, "summary.csv has a file column");
        size_t n = strlen(csv);
        cr_expect(csv[n - 1] == '\n', "summary.csv ends with a whole line");
        for (const char *l = strchr(csv, '\n') + 1; col >= 0 && *l && strchr(l, '\n'); l = strchr(l, '\n') + 1) {
            cr_expect_eq(csv_fields(l, f, 64), nh, "a whole row: %.100s", l);
            cr_expect(f[col][0] && tp_exists(tp_join(p, sizeof p, out, f[col])), "csv row names a file that exists: %s", f[col]);
            lines++;
        }
        cr_expect(lines >= rows && lines <= rows + 32, "summary.csv has the rows of summary.jsonl (%d vs %d)", lines, rows);
        free(csv);
    } else {
        cr_expect_eq(rows, 0, "no summary.csv beside a summary.jsonl");
    }
    return rows;
}

Test(records, sigkill_at_random_points_leaves_whole_files_and_true_rows, .timeout = 600) {
    char tmp[64], out[256], in[256];
    tp_make_tmp(tmp, sizeof tmp, "rec");
    tp_join(in, sizeof in, tmp, "in");
    mkdir(in, 0755);
    write_inputs(in, 8);
    char photo[512];
    write_photo(tp_join(photo, sizeof photo, in, "photo.png"));
    tp_join(out, sizeof out, tmp, "out");
    tp_run r;
    /* the whole run's length, to spread the kills over it */
    double t0 = now_s();
    RUN(&r, tmp, NULL, "explain", "-m", TINYCNN, "-M", "saliency,ig,occlusion", "--steps", "8", "--window", "4x4",
        "--stride", "2x2", "--raw", "--heatmap", "--image-batch", "2", in, "-o", out);
    double full = now_s() - t0;
    cr_assert_eq(r.status, 0, "%s: exit %d\n%s", r.cmd, r.status, r.err);
    cr_expect_eq(check_outputs(out, 50, 40), 9 * 3, "the full run's rows");
    tp_run_free(&r);
    const uint64_t seed0 = tu_fresh_seed();
    uint64_t seed = seed0;
    int killed_with_rows = 0;
    for (int k = 0; k < 6; k++) {
        tp_remove_tree(out);
        double at = tu_uniform(&seed, 0.05f, 0.95f) * full;
        const char *argv[] = {"explain", "-m", TINYCNN, "-M", "saliency,ig,occlusion", "--steps", "8", "--window", "4x4",
                              "--stride", "2x2", "--raw", "--heatmap", "--image-batch", "2", in, "-o", out, NULL};
        pid_t pid = start(&r, tmp, NULL, argv);
        usleep((useconds_t)(at * 1e6));
        kill(pid, SIGKILL);
        tp_finish(&r, pid);
        int rows = check_outputs(out, 50, 40);
        killed_with_rows += rows > 0 && rows < 27;
        cr_log_info("kill %d at %.2f s of %.2f s (seed %llu): %d rows kept", k, at, full, (unsigned long long)seed0, rows);
        tp_run_free(&r);
    }
    cr_expect_gt(killed_with_rows, 0, "some kill landed mid-run with rows kept (run of %.2f s)", full);
    /* a run into the killed run's folder clears its temporary files and completes */
    RUN(&r, tmp, NULL, "explain", "-m", TINYCNN, "-M", "saliency", in, "-o", out);
    cr_expect_eq(r.status, 0, "%s: exit %d\n%s", r.cmd, r.status, r.err);
    DIR *d = opendir(out);
    struct dirent *de;
    while (d && (de = readdir(d))) cr_expect(!strstr(de->d_name, ".salient-tmp"), "temporary file left: %s", de->d_name);
    if (d) closedir(d);
    tp_run_free(&r);
    tp_remove_tree(tmp);
}

/* Only salient's own temporary names of dead processes are removed, with a note. */
Test(records, stale_temporaries_of_killed_runs_are_removed) {
    char tmp[64], out[256], p[512], in[256];
    tp_make_tmp(tmp, sizeof tmp, "rec");
    tp_join(in, sizeof in, tmp, "in");
    mkdir(in, 0755);
    write_inputs(in, 1);
    tp_join(out, sizeof out, tmp, "out");
    mkdir(out, 0755);
    const char *stale = "in0.saliency.png.salient-tmp999999999.0", *foreign = "notes.txt.tmp999999999.0",
               *mine_like = "data.salient-tmpX.0";
    FILE *f;
    cr_assert((f = fopen(tp_join(p, sizeof p, out, stale), "w")) && fclose(f) == 0);
    cr_assert((f = fopen(tp_join(p, sizeof p, out, foreign), "w")) && fclose(f) == 0);
    cr_assert((f = fopen(tp_join(p, sizeof p, out, mine_like), "w")) && fclose(f) == 0);
    tp_run r;
    RUN(&r, tmp, NULL, "explain", "-m", TINYCNN, "-M", "saliency", in, "-o", out);
    cr_assert_eq(r.status, 0, "%s: exit %d\n%s", r.cmd, r.status, r.err);
    cr_expect(!tp_exists(tp_join(p, sizeof p, out, stale)), "a killed run's temporary is removed");
    cr_expect(tp_exists(tp_join(p, sizeof p, out, foreign)), "another program's file is kept");
    cr_expect(tp_exists(tp_join(p, sizeof p, out, mine_like)), "a name that only looks alike is kept");
    cr_expect(strstr(r.err, "removed 1 temporary file"), "a note says so: %s", r.err);
    tp_run_free(&r);
    tp_remove_tree(tmp);
}

/* A second run into a folder in use is refused, naming the folder and the first run's pid; the
 * first completes with all its rows; the folder is free again afterwards. */
Test(records, a_second_run_into_a_busy_folder_is_refused, .timeout = 600) {
    char tmp[64], out[256], lock[512], p[512], in[256];
    tp_make_tmp(tmp, sizeof tmp, "rec");
    tp_join(in, sizeof in, tmp, "in");
    mkdir(in, 0755);
    write_inputs(in, 6);
    tp_join(out, sizeof out, tmp, "out");
    tp_join(lock, sizeof lock, out, ".salient.lock");
    tp_run a, b;
    const char *argv[] = {"explain", "-m", TINYCNN, SLOW, "--image-batch", "1", in, "-o", out, NULL};
    pid_t pid = start(&a, tmp, NULL, argv);
    for (int k = 0; k < 3000 && !tp_exists(lock); k++) usleep(10000);
    cr_assert(tp_exists(lock), "the first run holds the folder's lock");
    RUN(&b, tmp, NULL, "explain", "-m", TINYCNN, "-M", "saliency", in, "-o", out);
    char want[64];
    snprintf(want, sizeof want, "(pid %ld)", (long)pid);
    cr_expect_eq(b.status, 1, "refused: exit %d", b.status);
    cr_expect(strstr(b.err, out) && strstr(b.err, "another salient run") && strstr(b.err, want),
              "names the folder and the other run: %s", b.err);
    tp_run_free(&b);
    tp_finish(&a, pid);
    cr_expect_eq(a.status, 0, "the first run completes: %s", a.err);
    cr_expect_eq(check_outputs(out, 50, 40), 6, "the first run's rows, all of them");
    char *csv = tp_slurp(tp_join(p, sizeof p, out, "summary.csv"), NULL);
    cr_expect(csv && !strstr(csv, "saliency"), "no row of the refused run");
    free(csv);
    tp_run_free(&a);
    cr_expect(!tp_exists(lock), "the lock file goes with the run");
    RUN(&b, tmp, NULL, "explain", "-m", TINYCNN, "-M", "saliency", in, "-o", out);
    cr_expect_eq(b.status, 0, "the folder is free again: %s", b.err);
    tp_run_free(&b);
    tp_remove_tree(tmp);
}

/* A full filesystem: a 160 KiB tmpfs in a private mount namespace (unshare -m; needs root, as in
 * CI). The run stops with exit 1 naming a file and the reason; what it finished is whole and
 * listed. */
Test(records, a_full_filesystem_stops_the_run_cleanly, .timeout = 120) {
    if (geteuid() != 0 || access("/usr/bin/unshare", X_OK)) cr_skip_test("mounting a tmpfs needs root and unshare(1)");
    char tmp[64], in[256], cmd[4096], p[512], copy[256];
    tp_make_tmp(tmp, sizeof tmp, "rec");
    tp_join(in, sizeof in, tmp, "in");
    mkdir(in, 0755);
    write_inputs(in, 30);
    tp_join(copy, sizeof copy, tmp, "copy");
    snprintf(cmd, sizeof cmd,
             "cd %s && mkdir -p fs && unshare -m sh -c 'mount -t tmpfs -o size=160k tmpfs fs || exit 99; "
             "OMP_NUM_THREADS=1 %s explain -m %s -M saliency,gradcam --raw --heatmap --image-batch 4 in -o fs/out "
             ">stdout 2>stderr; echo $? > rc; cp -a fs/out copy'",
             tmp, SALIENT, TINYCNN);
    int rc = system(cmd);
    if (WIFEXITED(rc) && WEXITSTATUS(rc) == 99) cr_skip_test("mount -t tmpfs is not allowed here");
    cr_assert_eq(rc, 0, "%s: status %d", cmd, rc);
    char *rcs = tp_slurp(tp_join(p, sizeof p, tmp, "rc"), NULL), *err = tp_slurp(tp_join(p, sizeof p, tmp, "stderr"), NULL);
    cr_assert(rcs && err);
    cr_expect_eq(atoi(rcs), 1, "exit 1 on a full disk, got %s; stderr: %s", rcs, err);
    cr_expect(strstr(err, "No space left on device"), "the reason: %s", err);
    cr_expect(strstr(err, "fs/out/"), "the file: %s", err);
    cr_expect(strstr(err, "stopping"), "the run stops: %s", err);
    int rows = check_outputs(copy, 50, 40);
    /* the maps written at once (a chunk) may fail together; the run does not go on to fail the rest */
    cr_expect_lt(tp_count_substr(err, "No space left"), 60 - rows, "stops at the first failures: %s", err);
    cr_expect_gt(rows, 0, "the finished maps are kept and listed");
    cr_expect_lt(rows, 60, "not every map fitted");
    free(rcs);
    free(err);
    tp_remove_tree(tmp);
}

/* A map whose file cannot be put in place (a folder holds its name) gets a row that says so and
 * names no file; the run stops with exit 1 and the rows before it stay. */
Test(records, a_row_whose_file_failed_says_so, .timeout = 60) {
    char tmp[64], out[256], p[4200], in[256];
    tp_make_tmp(tmp, sizeof tmp, "rec");
    tp_join(in, sizeof in, tmp, "in");
    mkdir(in, 0755);
    write_inputs(in, 3);
    tp_join(out, sizeof out, tmp, "out");
    mkdir(out, 0755);
    cr_assert_eq(mkdir(tp_join(p, sizeof p, out, "in1.gradcam.png"), 0755), 0);
    tp_run r;
    RUN(&r, tmp, NULL, "explain", "-m", TINYCNN, "-M", "saliency,gradcam", "--image-batch", "1", in, "-o", out);
    cr_expect_eq(r.status, 1, "%s: exit %d\n%s", r.cmd, r.status, r.err);
    cr_expect(strstr(r.err, "in1.gradcam.png") && strstr(r.err, "Is a directory") && strstr(r.err, "stopping"),
              "names the file, the reason, and stops: %s", r.err);
    char *jl = tp_slurp(tp_join(p, sizeof p, out, "summary.jsonl"), NULL);
    cr_assert_not_null(jl);
    static jfield jf[64];
    int rows = 0, failed_rows = 0;
    for (char *l = jl; *l && strchr(l, '\n'); l = strchr(l, '\n') + 1, rows++) {
        int nj = json_fields(l, jf, 64);
        const char *file = field(jf, nj, "file"), *status = field(jf, nj, "status");
        if (!strcmp(field(jf, nj, "stem"), "in1") && !strcmp(field(jf, nj, "method"), "gradcam")) {
            failed_rows++;
            cr_expect(!file, "the failed map's row names no file: %s", file);
            cr_expect(status && !strncmp(status, "failed: ", 8) && strstr(status, "Is a directory"), "status: %s", status);
        } else {
            cr_expect(file && tp_exists(tp_join(p, sizeof p, out, file)), "row names a file that exists: %s", file);
            cr_expect_str_eq(status, "ok");
        }
    }
    cr_expect_eq(failed_rows, 1, "the failed map has its row");
    cr_expect_eq(rows, 4, "in0's two rows, in1's two, then the run stopped: %s", jl);
    free(jl);
    tp_run_free(&r);
    tp_remove_tree(tmp);
}

/* Ctrl-C (SIGINT) stops the run at the next pass: exit 130, a message, the finished rows and files
 * whole, the folder's lock released. */
Test(records, sigint_stops_cleanly, .timeout = 600) {
    char tmp[64], out[256], in[256], p[512];
    tp_make_tmp(tmp, sizeof tmp, "rec");
    tp_join(in, sizeof in, tmp, "in");
    mkdir(in, 0755);
    write_inputs(in, 8);
    tp_join(out, sizeof out, tmp, "out");
    tp_run r;
    const char *argv[] = {"explain", "-m", TINYCNN, SLOW, "--image-batch", "1", in, "-o", out, NULL};
    pid_t pid = start(&r, tmp, NULL, argv);
    /* once the first rows are in */
    for (int k = 0; k < 6000 && !tp_exists(tp_join(p, sizeof p, out, "summary.jsonl")); k++) usleep(10000);
    kill(pid, SIGINT);
    double t0 = now_s();
    tp_finish(&r, pid);
    cr_expect_eq(r.status, 130, "exit 128 + SIGINT: %d\n%s", r.status, r.err);
    cr_expect(strstr(r.err, "interrupted (signal 2)") && strstr(r.err, "are complete"), "says so: %s", r.err);
    cr_expect_lt(now_s() - t0, 30, "stops at the next pass, not after the run");
    int rows = check_outputs(out, 50, 40);
    cr_expect(rows >= 1 && rows < 8, "the rows before the signal: %d", rows);
    cr_expect(!tp_exists(tp_join(p, sizeof p, out, ".salient.lock")), "the lock is released");
    tp_run_free(&r);
    tp_remove_tree(tmp);
}

/* salient bench bounds each method: a method whose call on N images would take more than
 * --max-time is timed on fewer images (said on stderr and in its row); every method's row comes. */
Test(records, bench_times_slow_methods_on_fewer_images, .timeout = 600) {
    char tmp[64];
    tp_make_tmp(tmp, sizeof tmp, "rec");
    tp_run r;
    RUN(&r, tmp, NULL, "bench", "-m", TINYCNN, "--device", "cpu", "-M", "occlusion,saliency", "--window", "4x4",
        "--stride", "2x2", "--images", "4", "--min-time", "0", "--max-time", "0.000001");
    cr_assert_eq(r.status, 0, "%s: exit %d\n%s", r.cmd, r.status, r.err);
    cr_expect(strstr(r.err, "note: bench: occlusion takes") && strstr(r.err, "timed on 1 image instead of 4"),
              "the slow method is announced: %s", r.err);
    cr_expect(strstr(r.out, "\nocclusion ") && strstr(r.out, "(timed on 1 image: slow)"), "its row says so: %s", r.out);
    cr_expect(strstr(r.out, "\nsaliency "), "every method's row: %s", r.out);
    cr_expect(strstr(r.out, "a method slower than 0 s per call is timed on fewer images"), "the header: %s", r.out);
    tp_run_free(&r);
    RUN(&r, tmp, NULL, "bench", "-m", TINYCNN, "--device", "cpu", "-M", "occlusion", "--window", "4x4", "--stride", "2x2",
        "--images", "4", "--min-time", "0", "--max-time", "1000", "--json");
    cr_assert_eq(r.status, 0, "%s: exit %d\n%s", r.cmd, r.status, r.err);
    cr_expect(strstr(r.out, "\"images\": 4"), "a fast enough method is timed on all images: %s", r.out);
    tp_run_free(&r);
    tp_remove_tree(tmp);
}
