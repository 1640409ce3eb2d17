/* test_audit.c — `salient audit` end to end, its database read back with SQLite's own API:
 *  - the watermark test (issue 14): the audit of the CNN trained with a watermark on every Shirt
 *    (tests/fixtures/watermark/, made by scripts/make-watermark.py, which checked that the model
 *    needs the mark) flags Shirt and the bottom-left corner, with the mean map hot there; the same
 *    audit of the same CNN trained on clean images does not. The images are generated from
 *    Debian's dataset-fashion-mnist at test time (cached in the build folder);
 *  - kill -9 at several points, then a rerun, gives the records of an uninterrupted run;
 *  - corrupt files are recorded in `errors`, not fatal; exit status 1;
 *  - a rerun with other methods or another model into the same OUT is refused, naming it. */
#include <criterion/criterion.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "io/io.h"
#include "post/post.h"
#include "testproc.h"

#define SALIENT SAL_BINARY_DIR "/salient"
#define WM_DIR SAL_SOURCE_DIR "/tests/fixtures/watermark"
#define WM_MODEL WM_DIR "/watermark.onnx"
#define CLEAN_MODEL WM_DIR "/clean.onnx"
#define SHIRT 6

TestSuite(audit, .timeout = 600);

/* ------------------------------------------------------------------------------------------------ */
/* Helpers                                                                                          */

/* The watermarked Fashion-MNIST test images, per_class per class, in ImageFolder layout under the
 * build folder (the script leaves a folder made with the same parameters as it is). Skips the
 * test, visibly, when Debian's data or numpy is missing. */
static void watermark_data(char *dir, size_t len, int per_class) {
    snprintf(dir, len, "%s/audit-data/wm%d", SAL_BINARY_DIR, per_class);
    if (access("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz", R_OK))
        cr_skip_test("Debian's dataset-fashion-mnist is not installed (scripts/setup installs it)");
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s/scripts/make-watermark.py images %s --per-class %d", SAL_SOURCE_DIR,
             dir, per_class);
    cr_assert_eq(system(cmd), 0, "%s failed", cmd);
}

/* Start salient with argv (NULL-terminated, without the program name), stderr into err_path. */
static pid_t spawn(const char *const *argv, const char *err_path) {
    const char *args[64] = {SALIENT};
    int n = 1;
    for (int i = 0; argv[i] && n < 63; i++) args[n++] = argv[i];
    args[n] = NULL;
    fflush(NULL);
    pid_t pid = fork();
    cr_assert_neq(pid, -1, "fork: %s", strerror(errno));
    if (pid == 0) {
        int fe = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int fo = open("/dev/null", O_WRONLY);
        if (fe < 0 || fo < 0 || dup2(fe, 2) < 0 || dup2(fo, 1) < 0) _exit(127);
        execv(SALIENT, (char *const *)args);
        _exit(127);
    }
    return pid;
}

static int wait_status(pid_t pid) {
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR) return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Run salient to completion; *err (may be NULL) receives its stderr (free it). */
static int run(const char *const *argv, const char *scratch, char **err) {
    char err_path[4096];
    snprintf(err_path, sizeof err_path, "%s/.stderr", scratch);
    int st = wait_status(spawn(argv, err_path));
    if (err) *err = tp_slurp(err_path, NULL);
    return st;
}

static int count_files(const char *dir);

static sqlite3 *open_db(const char *out_dir) {
    char path[4096];
    snprintf(path, sizeof path, "%s/audit.sqlite", out_dir);
    sqlite3 *db = NULL;
    cr_assert_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK, "%s: cannot open", path);
    sqlite3_busy_timeout(db, 5000);
    return db;
}

/* The first column of the first row of sql, as a double (NaN when NULL or no row). */
static double query_double(sqlite3 *db, const char *sql) {
    sqlite3_stmt *q = NULL;
    cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &q, NULL), SQLITE_OK, "%s: %s", sql, sqlite3_errmsg(db));
    double v = NAN;
    if (sqlite3_step(q) == SQLITE_ROW && sqlite3_column_type(q, 0) != SQLITE_NULL) v = sqlite3_column_double(q, 0);
    sqlite3_finalize(q);
    return v;
}

/* ------------------------------------------------------------------------------------------------ */
/* The watermark test                                                                               */

/* Mean of the (h,w) map over rows [y0,y1) and columns [x0,x1). */
static double box_mean(const float *m, int w, int y0, int y1, int x0, int x1) {
    double s = 0;
    for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++) s += m[y * w + x];
    return s / ((y1 - y0) * (x1 - x0));
}

Test(audit, watermark_flagged_clean_not) {
    char data[4096], tmp[256], out_w[4200], out_c[4200];
    watermark_data(data, sizeof data, 20);
    tp_make_tmp(tmp, sizeof tmp, "audit");
    snprintf(out_w, sizeof out_w, "%s/wm", tmp);
    snprintf(out_c, sizeof out_c, "%s/clean", tmp);
    char *err = NULL;
    const char *a1[] = {"audit", "-m", WM_MODEL, data, "-o", out_w, NULL};
    cr_assert_eq(run(a1, tmp, &err), 0, "audit of the watermarked model failed:\n%s", err);
    free(err);
    const char *a2[] = {"audit", "-m", CLEAN_MODEL, data, "-o", out_c, NULL};
    cr_assert_eq(run(a2, tmp, &err), 0, "audit of the clean model failed:\n%s", err);
    free(err);

    /* 200 images x 2 default methods, every row labelled from the folders */
    sqlite3 *db = open_db(out_w);
    cr_expect_eq(query_double(db, "SELECT COUNT(*) FROM records"), 400);
    cr_expect_eq(query_double(db, "SELECT COUNT(DISTINCT file) FROM records WHERE label IS NOT NULL"), 200);
    cr_expect_eq(query_double(db, "SELECT COUNT(*) FROM records WHERE label = 6 AND file NOT LIKE 'Shirt/%'"), 0);
    /* the ratio computed here from the rows, independently of the findings code */
    for (int k = 0; k < 2; k++) {
        const char *m = k ? "saliency" : "gradcam";
        char sql[512];
        snprintf(sql, sizeof sql,
                 "SELECT (SELECT AVG(mass_bl) FROM records WHERE method = '%s' AND label = 6) / "
                 "(SELECT AVG(mass_bl) FROM records WHERE method = '%s' AND label != 6)", m, m);
        double ratio = query_double(db, sql);
        cr_expect(ratio >= 3, "%s: Shirt's bottom-left mass is %.2fx the other classes', expected >= 3", m, ratio);
    }
    /* the record with the most mass in any corner, found here by a loop over every row */
    char top_file[256] = "", top_method[32] = "";
    double top = -1;
    sqlite3_stmt *q = NULL;
    cr_assert_eq(sqlite3_prepare_v2(db, "SELECT file, method, mass_tl, mass_tr, mass_bl, mass_br FROM records", -1, &q, NULL), SQLITE_OK);
    while (sqlite3_step(q) == SQLITE_ROW)
        for (int c = 2; c < 6; c++)
            if (sqlite3_column_type(q, c) != SQLITE_NULL && sqlite3_column_double(q, c) > top) {
                top = sqlite3_column_double(q, c);
                snprintf(top_file, sizeof top_file, "%s", (const char *)sqlite3_column_text(q, 0));
                snprintf(top_method, sizeof top_method, "%s", (const char *)sqlite3_column_text(q, 1));
            }
    sqlite3_finalize(q);
    sqlite3_close(db);

    char path[4400];
    snprintf(path, sizeof path, "%s/findings.json", out_w);
    char *fw = tp_slurp(path, NULL);
    char want[512];
    snprintf(want, sizeof want, "\"corner\":[{\"file\":\"%s\",\"method\":\"%s\"", top_file, top_method);
    cr_expect(fw && strstr(fw, want), "rankings: expected %s first (mass %.4f):\n%s", want, top, fw ? strstr(fw, "\"rankings\"") : "");
    cr_assert(fw, "%s missing", path);
    cr_expect(strstr(fw, "{\"class\":\"Shirt\",\"method\":\"gradcam\",\"region\":\"bl\""), "no gradcam Shirt/bl flag:\n%s",
              strstr(fw, "\"flags\""));
    cr_expect(strstr(fw, "{\"class\":\"Shirt\",\"method\":\"saliency\",\"region\":\"bl\""), "no saliency Shirt/bl flag:\n%s",
              strstr(fw, "\"flags\""));
    /* the flags are sorted by ratio and the strongest files are Shirts */
    char *flags = strstr(fw, "\"flags\":[");
    cr_assert(flags);
    cr_expect(strstr(flags, "\"images\":[\"Shirt/"), "the strongest files of the first flag are not Shirts");
    free(fw);
    snprintf(path, sizeof path, "%s/findings.json", out_c);
    char *fc = tp_slurp(path, NULL);
    cr_assert(fc, "%s missing", path);
    cr_expect(strstr(fc, "\"flags\":[]"), "the clean model was flagged:\n%s", strstr(fc, "\"flags\""));
    free(fc);

    /* the mean map of Shirt is hot in the bottom-left corner (the mark's 4x4 pixels) */
    for (int k = 0; k < 2; k++) {
        const char *m = k ? "saliency" : "gradcam";
        float *map = NULL;
        int nd = 0;
        int64_t dims[SAL_MAX_DIMS];
        sal_error e = {0};
        snprintf(path, sizeof path, "%s/mean/%s.Shirt.npy", out_w, m);
        cr_assert_eq(sal_npy_read(path, &map, &nd, dims, &e), SAL_OK, "%s", e.msg);
        cr_assert(nd == 2 && dims[0] == 28 && dims[1] == 28);
        double corner = box_mean(map, 28, 24, 28, 0, 4), centre = box_mean(map, 28, 7, 21, 7, 21);
        cr_expect(corner > 3 * centre, "%s: Shirt's mean map: bottom-left %.3f, centre %.3f", m, corner, centre);
        free(map);
        snprintf(path, sizeof path, "%s/mean/%s.Shirt.png", out_w, m);
        cr_expect(access(path, R_OK) == 0, "%s missing", path);
    }
    tp_remove_tree(tmp);
}

/* ------------------------------------------------------------------------------------------------ */
/* Crash and resume                                                                                 */

typedef struct row {
    char file[256], method[32];
    int label, predicted, target;
    double v[10];   /* probability, score, 7 masses (mask NULL = NaN), entropy */
} row;

static int read_rows(const char *out_dir, row **rows) {
    sqlite3 *db = open_db(out_dir);
    sqlite3_stmt *q = NULL;
    cr_assert_eq(sqlite3_prepare_v2(db,
                                    "SELECT file, method, label, predicted, target, probability, score, mass_center,"
                                    " mass_border, mass_tl, mass_tr, mass_bl, mass_br, concentration, entropy"
                                    " FROM records ORDER BY file, method, target",
                                    -1, &q, NULL),
                 SQLITE_OK);
    int n = 0, cap = 64;
    row *v = malloc(sizeof *v * (size_t)cap);
    while (sqlite3_step(q) == SQLITE_ROW) {
        if (n == cap) v = realloc(v, sizeof *v * (size_t)(cap *= 2));
        row *r = &v[n++];
        snprintf(r->file, sizeof r->file, "%s", (const char *)sqlite3_column_text(q, 0));
        snprintf(r->method, sizeof r->method, "%s", (const char *)sqlite3_column_text(q, 1));
        r->label = sqlite3_column_int(q, 2);
        r->predicted = sqlite3_column_int(q, 3);
        r->target = sqlite3_column_int(q, 4);
        for (int k = 0; k < 10; k++)
            r->v[k] = sqlite3_column_type(q, 5 + k) == SQLITE_NULL ? NAN : sqlite3_column_double(q, 5 + k);
    }
    sqlite3_finalize(q);
    sqlite3_close(db);
    *rows = v;
    return n;
}

static void expect_same_records(const char *a_dir, const char *b_dir) {
    row *a, *b;
    int na = read_rows(a_dir, &a), nb = read_rows(b_dir, &b);
    cr_expect_eq(na, nb, "%d records uninterrupted, %d after kills and resume", na, nb);
    for (int i = 0; i < na && i < nb; i++) {
        cr_expect(!strcmp(a[i].file, b[i].file) && !strcmp(a[i].method, b[i].method) && a[i].target == b[i].target &&
                      a[i].label == b[i].label && a[i].predicted == b[i].predicted,
                  "row %d: %s %s vs %s %s", i, a[i].file, a[i].method, b[i].file, b[i].method);
        for (int k = 0; k < 10; k++)   /* the batches differ in composition: float rounding only */
            cr_expect((isnan(a[i].v[k]) && isnan(b[i].v[k])) || fabs(a[i].v[k] - b[i].v[k]) <= 1e-4 * (1 + fabs(a[i].v[k])),
                      "%s %s column %d: %.9g vs %.9g", a[i].file, a[i].method, k, a[i].v[k], b[i].v[k]);
    }
    free(a);
    free(b);
}

/* Records committed so far in out_dir (0 while the database does not exist yet). */
static int committed(const char *out_dir) {
    char path[4096];
    snprintf(path, sizeof path, "%s/audit.sqlite", out_dir);
    if (access(path, R_OK)) return 0;
    sqlite3 *db = NULL;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) { sqlite3_close(db); return 0; }
    sqlite3_busy_timeout(db, 2000);
    sqlite3_stmt *q = NULL;
    int n = 0;
    if (sqlite3_prepare_v2(db, "SELECT COUNT(DISTINCT file) FROM records", -1, &q, NULL) == SQLITE_OK &&
        sqlite3_step(q) == SQLITE_ROW)
        n = sqlite3_column_int(q, 0);
    sqlite3_finalize(q);
    sqlite3_close(db);
    return n;
}

Test(audit, sigkill_then_resume_equals_uninterrupted) {
    char data[4096], tmp[256], full[4200], killed[4200], err_path[4400];
    watermark_data(data, sizeof data, 8);   /* 80 images */
    tp_make_tmp(tmp, sizeof tmp, "audit");
    snprintf(full, sizeof full, "%s/full", tmp);
    snprintf(killed, sizeof killed, "%s/killed", tmp);
    snprintf(err_path, sizeof err_path, "%s/.killed.err", tmp);
    char *err = NULL;
    const char *af[] = {"audit", "-m", WM_MODEL, data, "-o", full, "--batch", "4", "--threads", "1", NULL};
    cr_assert_eq(run(af, tmp, &err), 0, "uninterrupted audit failed:\n%s", err);
    free(err);

    /* kill -9 once at least 8, 28 and 52 files are recorded (a batch may be in flight) */
    const char *ak[] = {"audit", "-m", WM_MODEL, data, "-o", killed, "--batch", "4", "--threads", "1", NULL};
    const int kill_after[3] = {8, 28, 52};
    int kills = 0;
    for (int k = 0; k < 3; k++) {
        pid_t pid = spawn(ak, err_path);
        int exited = 0;
        for (int spin = 0; spin < 60000; spin++) {
            if (committed(killed) >= kill_after[k]) break;
            if (waitpid(pid, NULL, WNOHANG) == pid) { exited = 1; break; }
            struct timespec ts = {0, 2000000};
            nanosleep(&ts, NULL);
        }
        if (exited) break;
        kill(pid, SIGKILL);
        int st;
        waitpid(pid, &st, 0);
        cr_expect(WIFSIGNALED(st), "kill %d: the audit was not killed", k);
        kills++;
        int n = committed(killed);
        cr_expect(n < 80, "kill %d: all 80 files were recorded before the kill", k);
    }
    cr_expect_eq(kills, 3, "the audit finished before all three kills");
    cr_assert_eq(run(ak, tmp, &err), 0, "resumed audit failed:\n%s", err);
    cr_expect(strstr(err, "recorded already; resuming"), "the rerun did not resume:\n%s", err);
    free(err);
    expect_same_records(full, killed);

    sqlite3 *db = open_db(killed);
    cr_expect_eq(query_double(db, "SELECT COUNT(*) FROM (SELECT file, method, target FROM records GROUP BY 1, 2, 3 HAVING COUNT(*) > 1)"), 0);
    cr_expect_eq(query_double(db, "SELECT COUNT(*) FROM errors"), 0);
    cr_expect_eq(query_double(db, "SELECT COUNT(*) FROM mean_sums WHERE kind = 0"), 2);
    /* the mean maps' image counts survive the kills: one per file and method */
    cr_expect_eq(query_double(db, "SELECT SUM(n) FROM mean_sums WHERE kind = 0"), 160);
    cr_expect_eq(query_double(db, "SELECT SUM(n) FROM mean_sums WHERE kind = 1"), 160);
    sqlite3_close(db);
    /* the exports match too: the same header and the same number of lines */
    char pa[4400], pb[4400];
    snprintf(pa, sizeof pa, "%s/records.csv", full);
    snprintf(pb, sizeof pb, "%s/records.csv", killed);
    char *ca = tp_slurp(pa, NULL), *cb = tp_slurp(pb, NULL);
    cr_assert(ca && cb);
    int la = 0, lb = 0;
    for (char *p = ca; *p; p++) la += *p == '\n';
    for (char *p = cb; *p; p++) lb += *p == '\n';
    cr_expect_eq(la, 161, "records.csv: %d lines, expected a header and 160 rows", la);
    cr_expect_eq(la, lb);
    cr_expect(!strncmp(ca, "file,label,predicted,predicted_label,probability,correct,method,target,score,mass_center,"
                           "mass_border,mass_tl,mass_tr,mass_bl,mass_br,mass_mask,concentration,entropy,completeness_gap,"
                           "seconds\n", 180));
    free(ca);
    free(cb);
    tp_remove_tree(tmp);
}

/* ------------------------------------------------------------------------------------------------ */
/* Bad inputs and reruns                                                                            */

static void copy_file(const char *from, const char *to) {
    FILE *a = fopen(from, "rb"), *b = fopen(to, "wb");
    cr_assert(a && b, "copy %s -> %s", from, to);
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, a)) > 0) cr_assert_eq(fwrite(buf, 1, n, b), n);
    fclose(a);
    cr_assert_eq(fclose(b), 0);
}

Test(audit, corrupt_files_recorded_and_rerun_refused) {
    char data[4096], tmp[256], d[4300], out[4300], path[4400], from[8200];
    watermark_data(data, sizeof data, 8);
    tp_make_tmp(tmp, sizeof tmp, "audit");
    snprintf(d, sizeof d, "%s/data", tmp);
    snprintf(out, sizeof out, "%s/out", tmp);
    mkdir(d, 0755);
    snprintf(path, sizeof path, "%s/Shirt", d);
    mkdir(path, 0755);
    for (int i = 0; i < 3; i++) {
        snprintf(from, sizeof from, "%s/Shirt/%04d.png", data, i);
        snprintf(path, sizeof path, "%s/Shirt/%04d.png", d, i);
        copy_file(from, path);
    }
    snprintf(path, sizeof path, "%s/Shirt/broken.png", d);
    FILE *f = fopen(path, "wb");
    cr_assert(f);
    fputs("\x89PNG\r\n\x1a\n this is not a png", f);
    fclose(f);

    char *err = NULL;
    const char *a1[] = {"audit", "-m", WM_MODEL, d, "-o", out, "-M", "gradcam", NULL};
    cr_expect_eq(run(a1, tmp, &err), 1, "a corrupt file must give exit status 1:\n%s", err);
    cr_expect(strstr(err, "broken.png"), "the corrupt file is not named:\n%s", err);
    free(err);
    sqlite3 *db = open_db(out);
    cr_expect_eq(query_double(db, "SELECT COUNT(*) FROM errors WHERE file = 'Shirt/broken.png' AND length(reason) > 0"), 1);
    cr_expect_eq(query_double(db, "SELECT COUNT(*) FROM records"), 3);
    cr_expect_eq(query_double(db, "SELECT COUNT(*) FROM records WHERE label = 6"), 3);
    sqlite3_close(db);
    snprintf(path, sizeof path, "%s/findings.json", out);
    char *fj = tp_slurp(path, NULL);
    cr_assert(fj);
    cr_expect(strstr(fj, "\"images\":3,\"failed\":1"), "%.200s", fj);
    free(fj);

    /* a rerun resumes (nothing to do) and still reports the failure; the temporary files of a run
     * killed while writing its exports are cleared */
    char stale[4400];
    snprintf(stale, sizeof stale, "%s/records.csv.tmp99999", out);
    FILE *sf = fopen(stale, "w");
    cr_assert(sf);
    fputs("file,lab", sf);
    fclose(sf);
    cr_expect_eq(run(a1, tmp, &err), 1, "%s", err);
    cr_expect(access(stale, F_OK) != 0, "%s left behind", stale);
    free(err);
    db = open_db(out);
    cr_expect_eq(query_double(db, "SELECT COUNT(*) FROM records"), 3);
    sqlite3_close(db);

    /* other methods, another model: refused, naming what changed; nothing recorded changes */
    const char *a2[] = {"audit", "-m", WM_MODEL, d, "-o", out, "-M", "gradcam,saliency", NULL};
    cr_expect_eq(run(a2, tmp, &err), 2);
    cr_expect(strstr(err, "different methods: 'gradcam' then, 'gradcam,saliency' now"), "%s", err);
    free(err);
    const char *a3[] = {"audit", "-m", CLEAN_MODEL, d, "-o", out, "-M", "gradcam", NULL};
    cr_expect_eq(run(a3, tmp, &err), 2);
    cr_expect(strstr(err, "different model sha256"), "%s", err);
    free(err);
    db = open_db(out);
    cr_expect_eq(query_double(db, "SELECT COUNT(*) FROM records"), 3);
    sqlite3_close(db);
    tp_remove_tree(tmp);
}

Test(audit, usage_errors) {
    char tmp[256];
    tp_make_tmp(tmp, sizeof tmp, "audit");
    char *err = NULL;
    const char *a1[] = {"audit", "-m", WM_MODEL, "-o", tmp, NULL};
    cr_expect_eq(run(a1, tmp, &err), 2);
    cr_expect(strstr(err, "no DATA folder"), "%s", err);
    free(err);
    const char *a2[] = {"audit", "-m", WM_MODEL, WM_MODEL, "-o", tmp, NULL};
    cr_expect_eq(run(a2, tmp, &err), 2);
    cr_expect(strstr(err, "not a folder"), "%s", err);
    free(err);
    const char *a3[] = {"audit", "-m", WM_MODEL, tmp, "-o", tmp, "-M", "gradcam,nosuch", NULL};
    cr_expect_eq(run(a3, tmp, &err), 2);
    cr_expect(strstr(err, "unknown method 'nosuch'"), "%s", err);
    free(err);
    const char *a4[] = {"audit", "-m", WM_MODEL, tmp, "-o", tmp, "--threshold", "x", NULL};
    cr_expect_eq(run(a4, tmp, &err), 2);
    cr_expect(strstr(err, "--threshold"), "%s", err);
    free(err);
    tp_remove_tree(tmp);
}

/* --mask: a mask that is exactly the bottom-left corner square at 28x28 (rows 24..27, columns
 * 0..3, see region_elem.h) gives mass_mask == mass_bl on every row. */
Test(audit, mask_column) {
    char data[4096], tmp[256], out[4300], mpath[4300];
    watermark_data(data, sizeof data, 8);
    tp_make_tmp(tmp, sizeof tmp, "audit");
    snprintf(out, sizeof out, "%s/out", tmp);
    snprintf(mpath, sizeof mpath, "%s/mask.png", tmp);
    uint8_t rgb[28 * 28 * 3] = {0};
    for (int y = 24; y < 28; y++)
        for (int x = 0; x < 4; x++) rgb[(y * 28 + x) * 3] = 255;
    sal_error e = {0};
    cr_assert_eq(sal_png_write_rgb(mpath, 28, 28, rgb, &e), SAL_OK, "%s", e.msg);
    char *err = NULL;
    const char *a[] = {"audit", "-m", WM_MODEL, data, "-o", out, "-M", "saliency", "--mask", mpath, NULL};
    cr_assert_eq(run(a, tmp, &err), 0, "%s", err);
    free(err);
    sqlite3 *db = open_db(out);
    cr_expect_eq(query_double(db, "SELECT COUNT(*) FROM records WHERE mass_mask IS NOT NULL"), 80);
    cr_expect(query_double(db, "SELECT MAX(ABS(mass_mask - mass_bl)) FROM records") < 1e-9);
    cr_expect(query_double(db, "SELECT MAX(mass_mask) FROM records") > 0.01);
    sqlite3_close(db);
    tp_remove_tree(tmp);
}

/* ------------------------------------------------------------------------------------------------ */
/* Shards and merge                                                                                 */

static void expect_same_file(const char *a, const char *b) {
    char *x = tp_slurp(a, NULL), *y = tp_slurp(b, NULL);
    cr_assert(x && y, "%s or %s missing", a, b);
    cr_expect(!strcmp(x, y), "%s and %s differ", a, b);
    free(x);
    free(y);
}

/* The single run and the merge of the shards under sharded/: the same records, findings and
 * mean maps. */
static void expect_merge_equals_single(const char *single, const char *sharded, const char *tmp) {
    char *err = NULL;
    const char *am[] = {"audit", "-m", WM_MODEL, "--merge", sharded, NULL};
    cr_assert_eq(run(am, tmp, &err), 0, "merge failed:\n%s", err);
    free(err);
    int total = 0;
    for (int k = 0; k < 3; k++) {
        char d[4400];
        snprintf(d, sizeof d, "%s/shard-%d-of-3", sharded, k);
        sqlite3 *db = open_db(d);
        int nk = (int)query_double(db, "SELECT COUNT(DISTINCT file) FROM records");
        cr_expect(nk > 0 && nk < 80, "shard %d holds %d of the 80 files", k, nk);
        total += nk;
        sqlite3_close(db);
    }
    cr_expect_eq(total, 80, "the shards hold %d files together, expected each of the 80 once", total);
    expect_same_records(single, sharded);
    /* the pictures: every thumbnail gathered from the shards; the overlays of the merged flags'
     * images made again, the same files as the single run's (each image explained alone) */
    char cmd[16384];
    snprintf(cmd, sizeof cmd, "cd %s/thumbs && find . -type f | sort > %s/.l1 && cd %s/thumbs && find . -type f | sort > %s/.l2 "
             "&& cmp -s %s/.l1 %s/.l2 && test $(wc -l < %s/.l1) = 160", single, tmp, sharded, tmp, tmp, tmp, tmp);
    cr_expect_eq(system(cmd), 0, "the merge's thumbnails are not the single run's: %s", cmd);
    snprintf(cmd, sizeof cmd, "test -d %s/overlays && diff -r %s/overlays %s/overlays > /dev/null", single, single, sharded);
    cr_expect_eq(system(cmd), 0, "the merge's overlays are not the single run's: %s", cmd);
    char a[4400], b[4400];
    const char *files[] = {"findings.json", "mean/gradcam.Shirt.npy", "mean/saliency.all.npy"};
    for (int i = 0; i < 3; i++) {
        snprintf(a, sizeof a, "%s/%s", single, files[i]);
        snprintf(b, sizeof b, "%s/%s", sharded, files[i]);
        if (i == 0) expect_same_file(a, b);
        else {   /* sums in another order: rounding only */
            float *x = NULL, *y = NULL;
            int nd;
            int64_t dims[SAL_MAX_DIMS];
            cr_assert_eq(sal_npy_read(a, &x, &nd, dims, NULL), SAL_OK, "%s", a);
            cr_assert_eq(sal_npy_read(b, &y, &nd, dims, NULL), SAL_OK, "%s", b);
            for (int p = 0; p < 28 * 28; p++) cr_expect(fabsf(x[p] - y[p]) <= 1e-6f, "%s[%d]: %g vs %g", files[i], p, x[p], y[p]);
            free(x);
            free(y);
        }
    }
}

Test(audit, three_shards_merged_equal_single_run) {
    char data[4096], tmp[256], single[4300], sharded[4300];
    watermark_data(data, sizeof data, 8);
    tp_make_tmp(tmp, sizeof tmp, "audit");
    snprintf(single, sizeof single, "%s/single", tmp);
    snprintf(sharded, sizeof sharded, "%s/sharded", tmp);
    char *err = NULL;
    const char *a1[] = {"audit", "-m", WM_MODEL, data, "-o", single, NULL};
    cr_assert_eq(run(a1, tmp, &err), 0, "%s", err);
    free(err);
    for (int k = 0; k < 3; k++) {
        char shard[16];
        snprintf(shard, sizeof shard, "%d/3", k);
        const char *a2[] = {"audit", "-m", WM_MODEL, data, "-o", sharded, "--shard", shard, NULL};
        cr_assert_eq(run(a2, tmp, &err), 0, "%s", err);
        free(err);
    }
    expect_merge_equals_single(single, sharded, tmp);
    tp_remove_tree(tmp);
}

/* Open MPI's launcher: each rank reads its shard from OMPI_COMM_WORLD_RANK/SIZE. */
Test(audit, mpirun_shards_merged_equal_single_run) {
    if (access("/usr/bin/mpirun", X_OK)) cr_skip_test("mpirun not installed (Debian openmpi-bin)");
    char data[4096], tmp[256], single[4300], sharded[4300];
    watermark_data(data, sizeof data, 8);
    tp_make_tmp(tmp, sizeof tmp, "audit");
    snprintf(single, sizeof single, "%s/single", tmp);
    snprintf(sharded, sizeof sharded, "%s/mpi", tmp);
    char *err = NULL;
    const char *a1[] = {"audit", "-m", WM_MODEL, data, "-o", single, NULL};
    cr_assert_eq(run(a1, tmp, &err), 0, "%s", err);
    free(err);
    char cmd[16384];
    snprintf(cmd, sizeof cmd,
             "/usr/bin/mpirun %s --oversubscribe -np 3 %s audit -m %s %s -o %s --threads 1 > %s/.mpi.log 2>&1",
             geteuid() == 0 ? "--allow-run-as-root" : "", SALIENT, WM_MODEL, data, sharded, tmp);
    int st = system(cmd);
    char lp[4400];
    snprintf(lp, sizeof lp, "%s/.mpi.log", tmp);
    char *log = tp_slurp(lp, NULL);
    cr_assert_eq(st, 0, "%s failed:\n%s", cmd, log);
    cr_expect(strstr(log, "shard 2 of 3 (Open MPI)"), "%s", log);
    free(log);
    expect_merge_equals_single(single, sharded, tmp);
    tp_remove_tree(tmp);
}

/* ------------------------------------------------------------------------------------------------ */
/* The report in a real browser                                                                     */

/* Headless chromium loads OUT/report.html#selftest: its script checks that every image decoded
 * and that a click on the `bl` column sorts the records (descending after two clicks, order
 * changed), and writes the result into the page, which --dump-dom gives back. A screenshot is
 * kept in the build folder (audit-report.png) to look at. */
Test(audit, report_in_headless_chromium) {
    if (access("/usr/bin/chromium", X_OK)) cr_skip_test("chromium not installed (Debian chromium)");
    char data[4096], tmp[256], out[4300], cmd[16384], path[4400];
    watermark_data(data, sizeof data, 8);
    tp_make_tmp(tmp, sizeof tmp, "audit");
    snprintf(out, sizeof out, "%s/out", tmp);
    char *err = NULL;
    const char *a[] = {"audit", "-m", WM_MODEL, data, "-o", out, NULL};
    cr_assert_eq(run(a, tmp, &err), 0, "%s", err);
    free(err);
    snprintf(path, sizeof path, "%s/report.html", out);
    char *page = tp_slurp(path, NULL);
    cr_assert(page, "%s missing", path);
    cr_expect(!strstr(page, "http://") && !strstr(page, "https://") && !strstr(page, "<script src") &&
                  !strstr(page, "<link"), "the report refers to something outside itself");
    cr_expect(strstr(page, "Shirt: "), "no Shirt flag in the report's findings");
    /* the corner ranking's first record is findings.json's */
    {
        char fjp[4400], want[600];
        snprintf(fjp, sizeof fjp, "%s/findings.json", out);
        char *fjs = tp_slurp(fjp, NULL), *c0 = fjs ? strstr(fjs, "\"corner\":[{\"file\":\"") : NULL;
        cr_assert(c0, "no corner ranking in findings.json");
        c0 += strlen("\"corner\":[{\"file\":\"");
        char *rk0 = strstr(page, "<table class=\"ranking\" id=\"ranking0\">");
        cr_assert(rk0, "no corner ranking in the report");
        snprintf(want, sizeof want, "</tr>\n<tr><td>%.*s</td>", (int)(strchr(c0, '"') - c0), c0);
        cr_expect(strstr(rk0, want) && strstr(rk0, want) < strstr(rk0, "</table>"), "the report's corner ranking does "
                  "not start with findings.json's first (%s)", want);
        free(fjs);
    }
    free(page);
    const char *flags = "--headless --no-sandbox --disable-gpu --hide-scrollbars --virtual-time-budget=10000";
    snprintf(cmd, sizeof cmd, "HOME=%s timeout 180 /usr/bin/chromium %s --dump-dom 'file://%s#selftest' > %s/dom.html 2>/dev/null",
             tmp, flags, path, tmp);
    cr_assert_eq(system(cmd), 0, "%s failed", cmd);
    char dom_path[4400];
    snprintf(dom_path, sizeof dom_path, "%s/dom.html", tmp);
    char *dom = tp_slurp(dom_path, NULL);
    cr_assert(dom);
    char *res = strstr(dom, "<pre id=\"selftest\">SELFTEST");
    cr_assert(res, "the page's self-check did not run");
    int n_img = -1, n_ok = -2, rows = 0, ranked = -1;
    cr_assert_eq(sscanf(res, "<pre id=\"selftest\">SELFTEST images=%d loaded=%d rows=%d", &n_img, &n_ok, &rows), 3, "%.200s", res);
    char *rk = strstr(res, " ranked=");
    cr_assert(rk && sscanf(rk, " ranked=%d", &ranked) == 1, "%.300s", res);
    /* the rankings: the 10 records with the most corner mass, the 10 with the most border mass,
     * the misclassified ones (at most 10) with the most mass off the centre, each with its
     * thumbnail */
    cr_expect(ranked >= 20 && ranked <= 30, "%d thumbnails in the rankings", ranked);
    cr_expect_eq(n_img, 11 * 2 + 160 + ranked, "mean maps: 10 classes and `all`, 2 methods; a thumbnail per record");
    cr_expect_eq(n_ok, n_img, "%d of %d images decoded", n_ok, n_img);
    cr_expect_eq(rows, 160);
    cr_expect(strstr(res, "sorted_desc=true order_changed=true thumbs=160 thumbs_loaded=160 "), "%.200s", res);
    /* --overlays flagged (the default): an overlay for each file and method behind a flag, and
     * none other; the report links each of them from its thumbnail */
    snprintf(path, sizeof path, "%s/findings.json", out);
    char *fj = tp_slurp(path, NULL);
    cr_assert(fj);
    char seen[64][300];
    int n_seen = 0;
    for (char *fl = strstr(fj, "\"flags\":["), *mk; fl && (mk = strstr(fl, "\"method\":\"")); fl = mk + 1) {
        char method[32] = "";
        sscanf(mk, "\"method\":\"%31[^\"]", method);
        char *im = strstr(mk, "\"images\":[");
        if (!im) break;
        char *end = strchr(im, ']');
        for (char *f = strchr(im, '"') + 10; f && f < end; ) {   /* each "file" in the list */
            char *q0 = strchr(f, '"');
            if (!q0 || q0 > end) break;
            char *q1 = strchr(q0 + 1, '"');
            char key[300];
            snprintf(key, sizeof key, "%.*s.%s", (int)(q1 - q0 - 1), q0 + 1, method);
            int dup = 0;
            for (int k = 0; k < n_seen; k++) dup |= !strcmp(seen[k], key);
            if (!dup && n_seen < 64) snprintf(seen[n_seen++], sizeof seen[0], "%s", key);
            f = q1 + 1;
        }
        mk = end;
    }
    cr_expect_gt(n_seen, 0, "the flags name files");
    for (int k = 0; k < n_seen; k++) {
        char ov[24000];
        snprintf(ov, sizeof ov, "%s/overlays/%s.png", out, seen[k]);
        cr_expect(access(ov, R_OK) == 0, "flagged, without its overlay: %s", ov);
    }
    snprintf(path, sizeof path, "%s/overlays", out);
    cr_expect_eq(count_files(path), n_seen, "--overlays flagged: overlays of the flags' %d files and methods only", n_seen);
    char want[64];
    snprintf(want, sizeof want, " overlays=%d ", n_seen);
    cr_expect(strstr(res, want), "the report links %d overlays: %.300s", n_seen, res);
    free(fj);
    free(dom);
    snprintf(path, sizeof path, "%s/report.html", out);   /* the screenshot is of the report */
    snprintf(cmd, sizeof cmd, "HOME=%s timeout 180 /usr/bin/chromium %s --window-size=1200,1400 --screenshot=%s/audit-report.png 'file://%s' > /dev/null 2>&1",
             tmp, flags, SAL_BINARY_DIR, path);
    cr_expect_eq(system(cmd), 0, "%s failed", cmd);
    tp_remove_tree(tmp);
}

/* Slurm: a one-node cluster on this machine (scripts/slurm/local-cluster: slurmctld, slurmd and
 * munged in a scratch folder), `sbatch --array=0-2 --wait scripts/slurm/audit.sbatch`, whose first
 * task submits the dependent merge job; the merged audit equals the single run. */
Test(audit, slurm_array_merged_equal_single_run) {
    if (access("/usr/sbin/slurmctld", X_OK) || access("/usr/sbin/munged", X_OK))
        cr_skip_test("Slurm not installed (Debian slurm-wlm and munge; scripts/setup installs them)");
    if (geteuid() != 0) cr_skip_test("the local Slurm cluster runs its daemons as root");
    char data[4096], tmp[256], single[4300], sharded[4300], cmd[16384];
    watermark_data(data, sizeof data, 8);
    tp_make_tmp(tmp, sizeof tmp, "audit");
    snprintf(single, sizeof single, "%s/single", tmp);
    snprintf(sharded, sizeof sharded, "%s/slurm", tmp);
    char *err = NULL;
    const char *a1[] = {"audit", "-m", WM_MODEL, data, "-o", single, NULL};
    cr_assert_eq(run(a1, tmp, &err), 0, "%s", err);
    free(err);
    snprintf(cmd, sizeof cmd, "SALIENT=%s %s/scripts/slurm/local-cluster audit %s/cluster %s %s %s > %s/.slurm.log 2>&1",
             SALIENT, SAL_SOURCE_DIR, tmp, WM_MODEL, data, sharded, tmp);
    int st = system(cmd);
    char lp[4400];
    snprintf(lp, sizeof lp, "%s/.slurm.log", tmp);
    char *log = tp_slurp(lp, NULL);
    cr_assert_eq(st, 0, "%s failed:\n%s", cmd, log);
    free(log);
    /* expect_merge_equals_single merges again, by hand: the same result as the merge job's */
    char merged[4400];
    snprintf(merged, sizeof merged, "%s/findings.json", sharded);
    char *by_job = tp_slurp(merged, NULL);
    cr_assert(by_job, "the merge job wrote no findings.json");
    expect_merge_equals_single(single, sharded, tmp);
    char *by_hand = tp_slurp(merged, NULL);
    cr_expect(by_hand && !strcmp(by_job, by_hand), "the merge job's findings differ from a merge by hand");
    free(by_job);
    free(by_hand);
    tp_remove_tree(tmp);
}

/* ------------------------------------------------------------------------------------------------ */
/* Labels: --truth, and none                                                                        */

/* --truth: a header, a class name (case ignored), an index, a base name; a file missing from the
 * CSV stays unlabelled. Without labels at all, the audit groups by predicted class and says so. */
Test(audit, truth_csv_and_unlabelled) {
    char data[4096], tmp[256], d[4300], out[4300], out2[4300], csv[4300], from[8200], to[8200];
    watermark_data(data, sizeof data, 8);
    tp_make_tmp(tmp, sizeof tmp, "audit");
    snprintf(d, sizeof d, "%s/flat", tmp);
    snprintf(out, sizeof out, "%s/out", tmp);
    snprintf(out2, sizeof out2, "%s/out2", tmp);
    snprintf(csv, sizeof csv, "%s/truth.csv", tmp);
    mkdir(d, 0755);
    snprintf(to, sizeof to, "%s/sub", d);
    mkdir(to, 0755);
    const char *cls[4] = {"Shirt", "Bag", "Coat", "Sandal"};
    for (int i = 0; i < 4; i++) {   /* 0.png 1.png sub/2.png 3.png */
        snprintf(from, sizeof from, "%s/%s/0000.png", data, cls[i]);
        snprintf(to, sizeof to, "%s/%s%d.png", d, i == 2 ? "sub/" : "", i);
        copy_file(from, to);
    }
    FILE *f = fopen(csv, "w");
    cr_assert(f);
    fputs("file,label\n0.png,shirt\n1.png,8\n2.png,Coat\n", f);   /* 2.png: by base name; 3.png: absent */
    fclose(f);
    char *err = NULL;
    const char *a1[] = {"audit", "-m", WM_MODEL, d, "-o", out, "-M", "gradcam", "--truth", csv, NULL};
    cr_assert_eq(run(a1, tmp, &err), 0, "%s", err);
    cr_expect(strstr(err, "1 of 4 files have no true label (not in --truth)"), "%s", err);
    free(err);
    sqlite3 *db = open_db(out);
    cr_expect_eq(query_double(db, "SELECT label FROM records WHERE file = '0.png'"), 6);
    cr_expect_eq(query_double(db, "SELECT label FROM records WHERE file = '1.png'"), 8);
    cr_expect_eq(query_double(db, "SELECT label FROM records WHERE file = 'sub/2.png'"), 4, "base-name match");
    cr_expect(isnan(query_double(db, "SELECT label FROM records WHERE file = '3.png'")));
    cr_expect(isnan(query_double(db, "SELECT correct FROM records WHERE file = '3.png'")));
    sqlite3_close(db);

    const char *a2[] = {"audit", "-m", WM_MODEL, d, "-o", out2, "-M", "gradcam", NULL};
    cr_assert_eq(run(a2, tmp, &err), 0, "%s", err);
    cr_expect(strstr(err, "the audit runs unlabelled"), "%s", err);
    free(err);
    snprintf(to, sizeof to, "%s/findings.json", out2);
    char *fj = tp_slurp(to, NULL);
    cr_assert(fj);
    cr_expect(strstr(fj, "\"labelled\":false"));
    cr_expect(!strstr(fj, "\"accuracy\":0") && !strstr(fj, "\"accuracy\":1"), "accuracy without labels");
    free(fj);
    db = open_db(out2);
    cr_expect_eq(query_double(db, "SELECT COUNT(*) FROM records WHERE label IS NULL AND correct IS NULL"), 4,
                 "no labels: the sub-folder 'sub' names no class");
    /* the mean maps per predicted class exist for each predicted class */
    sqlite3_stmt *q = NULL;
    cr_assert_eq(sqlite3_prepare_v2(db, "SELECT DISTINCT predicted_label FROM records", -1, &q, NULL), SQLITE_OK);
    while (sqlite3_step(q) == SQLITE_ROW) {
        char name[256];
        snprintf(name, sizeof name, "%s", (const char *)sqlite3_column_text(q, 0));
        for (char *p = name; *p; p++)
            if (*p == ' ') *p = '_';
        snprintf(to, sizeof to, "%s/mean/gradcam.pred-%s.npy", out2, name);
        cr_expect(access(to, R_OK) == 0, "%s missing", to);
    }
    sqlite3_finalize(q);
    sqlite3_close(db);
    tp_remove_tree(tmp);
}

/* ------------------------------------------------------------------------------------------------ */
/* Overlays and thumbnails                                                                          */

/* Files under dir, recursively. */
static int count_files(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char p[4400];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        struct stat sb;
        if (stat(p, &sb)) continue;
        n += S_ISDIR(sb.st_mode) ? count_files(p) : S_ISREG(sb.st_mode);
    }
    closedir(d);
    return n;
}

static sal_image load_png(const char *path) {
    sal_image im = {0};
    sal_error e = {0};
    cr_assert_eq(sal_image_load(path, &im, &e), SAL_OK, "%s", e.msg);
    return im;
}

/* --overlays all: each record's full-size overlay is, pixel for pixel, explain's Grad-CAM overlay
 * of the same image, and for saliency the host functions' overlay (sal_overlay, opacity by value)
 * of |explain's raw gradient| clipped at its 99th percentile (explain's own saliency overlay of a
 * 1-channel model colours the signed gradient: sal_render reduces only c > 1); each thumbnail is that overlay
 * made small: the same picture when the image is no larger than a thumbnail (28x28), else at most
 * 96 pixels a side and the overlay area-averaged to that size (within 1 level on average when the
 * overlay was made; within 6 when the thumbnail is drawn on the original made small, as with
 * --overlays none: 1.4 and 3.7 measured, 25 and 31 when the crop is left out of its geometry).
 * --overlays none: no overlay, the thumbnails still. */
Test(audit, overlays_match_explain_and_thumbnails_are_them_small) {
    char data[4096], tmp[256], d[4300], out[4300], out2[4300], ex[4300], p[4400], q[4400], from[8200];
    watermark_data(data, sizeof data, 8);
    tp_make_tmp(tmp, sizeof tmp, "audit");
    snprintf(d, sizeof d, "%s/data", tmp);
    snprintf(out, sizeof out, "%s/out", tmp);
    snprintf(out2, sizeof out2, "%s/out2", tmp);
    snprintf(ex, sizeof ex, "%s/ex", tmp);
    mkdir(d, 0755);
    const char *names[3] = {"shirt0", "bag0", "big"};
    snprintf(from, sizeof from, "%s/Shirt/0000.png", data);
    snprintf(p, sizeof p, "%s/shirt0.png", d);
    copy_file(from, p);
    snprintf(from, sizeof from, "%s/Bag/0000.png", data);
    snprintf(p, sizeof p, "%s/bag0.png", d);
    copy_file(from, p);
    /* a 200x150 colour picture: resized to the model's 28x28 gray input, thumbnail 96x72 */
    uint8_t *big = malloc(200 * 150 * 3);
    for (int y = 0; y < 150; y++)
        for (int x = 0; x < 200; x++) {
            uint8_t *px = big + (y * 200 + x) * 3;
            px[0] = (uint8_t)(x * 255 / 199);
            px[1] = (uint8_t)(y * 255 / 149);
            px[2] = (uint8_t)((x / 25 + y / 25) % 2 ? 200 : 40);
        }
    sal_error e = {0};
    snprintf(p, sizeof p, "%s/big.png", d);
    cr_assert_eq(sal_png_write_rgb(p, 200, 150, big, &e), SAL_OK, "%s", e.msg);
    free(big);

    char *err = NULL;
    const char *a1[] = {"audit", "-m", WM_MODEL, d, "-o", out, "--overlays", "all", NULL};
    cr_assert_eq(run(a1, tmp, &err), 0, "%s", err);
    free(err);
    const char *a2[] = {"explain", "-m", WM_MODEL, "-M", "gradcam,saliency", "--raw", d, "-o", ex, NULL};
    cr_assert_eq(run(a2, tmp, &err), 0, "%s", err);
    free(err);
    snprintf(p, sizeof p, "%s/overlays", out);
    cr_expect_eq(count_files(p), 6, "--overlays all: one overlay per record");
    snprintf(p, sizeof p, "%s/thumbs", out);
    cr_expect_eq(count_files(p), 6, "one thumbnail per record");
    for (int i = 0; i < 3; i++)
        for (int k = 0; k < 2; k++) {
            const char *m = k ? "saliency" : "gradcam";
            snprintf(p, sizeof p, "%s/overlays/%s.png.%s.png", out, names[i], m);
            snprintf(q, sizeof q, "%s/%s.%s.png", ex, names[i], m);
            sal_image a = load_png(p), b = load_png(q);
            if (k) {   /* saliency: explain's raw gradient, |g|, clipped at the 99th percentile, on the host */
                sal_image_free(&b);
                snprintf(q, sizeof q, "%s/%s.png", d, names[i]);
                sal_image orig = load_png(q);
                snprintf(q, sizeof q, "%s/%s.saliency.npy", ex, names[i]);
                float *g = NULL, *mp = malloc(sizeof(float) * 28 * 28);
                int nd = 0;
                int64_t dims[SAL_MAX_DIMS];
                cr_assert_eq(sal_npy_read(q, &g, &nd, dims, &e), SAL_OK, "%s", e.msg);
                cr_assert(nd == 3 && dims[0] == 1 && dims[1] == 28 && dims[2] == 28);
                for (int t = 0; t < 28 * 28; t++) mp[t] = fabsf(g[t]);
                cr_assert_eq(sal_clip_percentile(mp, 28 * 28, 99.0, 0, NULL, &e), SAL_OK, "%s", e.msg);
                sal_normalize(mp, 28 * 28, 0, mp);
                /* the model's salient.resize: the shorter side to 28, then the centre 28x28 */
                sal_prep_opts po = {.out_h = 28, .out_w = 28, .resize_shorter = 28, .crop_no_enlarge = 1, .channels = 1};
                float rect[4];
                cr_assert_eq(sal_prep_rect(orig.w, orig.h, &po, rect), SAL_OK);
                b = (sal_image){orig.w, orig.h, 3, malloc((size_t)orig.w * orig.h * 3)};
                cr_assert_eq(sal_overlay(&orig, mp, 28, 28, rect, SAL_CMAP_JET, SAL_OVERLAY_ALPHA_BY_VALUE,
                                         SAL_OVERLAY_BY_VALUE, b.pix), SAL_OK);
                free(g);
                free(mp);
                sal_image_free(&orig);
            }
            cr_assert(a.w == b.w && a.h == b.h && a.c == b.c, "%s: %dx%dx%d vs explain's %dx%dx%d", p, a.w, a.h, a.c, b.w,
                      b.h, b.c);
            int differ = 0;
            for (size_t t = 0; t < (size_t)a.w * a.h * a.c; t++) differ += a.pix[t] != b.pix[t];
            cr_expect_eq(differ, 0, "%s: %d values differ from explain's overlay", p, differ);
            sal_image_free(&a);
            sal_image_free(&b);
        }
    const char *a3[] = {"audit", "-m", WM_MODEL, d, "-o", out2, "--overlays", "none", NULL};
    cr_assert_eq(run(a3, tmp, &err), 0, "%s", err);
    free(err);
    snprintf(p, sizeof p, "%s/overlays", out2);
    cr_expect_eq(count_files(p), 0, "--overlays none");
    snprintf(p, sizeof p, "%s/thumbs", out2);
    cr_expect_eq(count_files(p), 6, "the thumbnails are always kept");
    /* the thumbnails: with --overlays all made from the overlay, with none drawn small */
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < 3; i++)
            for (int k = 0; k < 2; k++) {
                const char *m = k ? "saliency" : "gradcam";
                snprintf(p, sizeof p, "%s/overlays/%s.png.%s.png", out, names[i], m);
                sal_image a = load_png(p);
                snprintf(q, sizeof q, "%s/thumbs/%s.png.%s.png", pass ? out2 : out, names[i], m);
                sal_image t = load_png(q);
                if (i < 2) {   /* 28x28: the overlay itself */
                    cr_expect(t.w == a.w && t.h == a.h && !memcmp(t.pix, a.pix, (size_t)a.w * a.h * 3), "%s differs from %s", q, p);
                } else {
                    cr_assert(t.w == 96 && t.h == 72, "%s: %dx%d, expected 96x72", q, t.w, t.h);
                    /* the overlay area-averaged by hand, compared channel by channel */
                    double sad = 0;
                    for (int Y = 0; Y < 72; Y++)
                        for (int X = 0; X < 96; X++)
                            for (int c = 0; c < 3; c++) {
                                int y0 = Y * 150 / 72, y1 = (Y + 1) * 150 / 72, x0 = X * 200 / 96, x1 = (X + 1) * 200 / 96;
                                double s = 0;
                                for (int y = y0; y < y1; y++)
                                    for (int x = x0; x < x1; x++) s += a.pix[(y * 200 + x) * 3 + c];
                                sad += fabs(s / ((y1 - y0) * (x1 - x0)) - t.pix[(Y * 96 + X) * 3 + c]);
                            }
                    cr_expect(sad / (96 * 72 * 3) < (pass ? 6 : 1), "%s: mean difference %.2f levels from the overlay made small", q,
                              sad / (96 * 72 * 3));
                }
                sal_image_free(&t);
                sal_image_free(&a);
            }
    const char *a4[] = {"audit", "-m", WM_MODEL, d, "-o", out2, "--overlays", "some", NULL};
    cr_expect_eq(run(a4, tmp, &err), 2);
    cr_expect(strstr(err, "--overlays") && strstr(err, "'some'"), "%s", err);
    free(err);
    tp_remove_tree(tmp);
}

/* ------------------------------------------------------------------------------------------------ */
/* --mask DIR                                                                                       */

static void write_mask(const char *path, int w, int h, int x0, int x1, int y0, int y1) {
    uint8_t *rgb = calloc((size_t)w * h * 3, 1);
    for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++) rgb[(y * w + x) * 3 + 1] = 255;
    sal_error e = {0};
    cr_assert_eq(sal_png_write_rgb(path, w, h, rgb, &e), SAL_OK, "%s", e.msg);
    free(rgb);
}

/* A folder of masks matched by the input's path less its extension (DIR/Shirt/0000.png), else its
 * base name (DIR/0000.png): a mask that is the bottom-left corner square gives mass_mask ==
 * mass_bl; a mask of the whole image gives 1; an input with no mask has an empty mass_mask; a
 * 200x150 image's mask of its columns x < 60, seen through the preprocessing (shorter side to 28:
 * 37x28, centre crop from column 4: the model's column x sees the original at 21.62 + (x + 0.5) *
 * 5.405), covers the model input's columns 0..6 (centres at 56.8 and, for column 7, 62.2; a plain
 * stretch would give 0..7), whose share of |explain's raw gradient| it must give.
 * A mask of the wrong size stops the run (exit 2) naming the mask, both sizes and the input; with
 * the mask fixed, a rerun resumes. */
Test(audit, mask_folder_matched_by_stem) {
    char data[4096], tmp[256], d[4300], md[4300], out[4300], ex[4300], p[4400], from[8200];
    watermark_data(data, sizeof data, 8);
    tp_make_tmp(tmp, sizeof tmp, "audit");
    snprintf(d, sizeof d, "%s/data", tmp);
    snprintf(md, sizeof md, "%s/masks", tmp);
    snprintf(out, sizeof out, "%s/out", tmp);
    snprintf(ex, sizeof ex, "%s/ex", tmp);
    const char *files[3] = {"Shirt/0000", "Shirt/0001", "Bag/0000"};
    mkdir(d, 0755);
    mkdir(md, 0755);
    snprintf(p, sizeof p, "%s/Shirt", d); mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/Bag", d); mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/Shirt", md); mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/Bag", md); mkdir(p, 0755);
    for (int i = 0; i < 3; i++) {
        snprintf(from, sizeof from, "%s/%s.png", data, files[i]);
        snprintf(p, sizeof p, "%s/%s.png", d, files[i]);
        copy_file(from, p);
    }
    uint8_t *big = malloc(200 * 150 * 3);
    for (int t = 0; t < 200 * 150 * 3; t++) big[t] = (uint8_t)((t * 37) % 251);
    sal_error e = {0};
    snprintf(p, sizeof p, "%s/Bag/big.png", d);
    cr_assert_eq(sal_png_write_rgb(p, 200, 150, big, &e), SAL_OK, "%s", e.msg);
    free(big);
    snprintf(p, sizeof p, "%s/Shirt/0000.png", md);
    write_mask(p, 28, 28, 0, 4, 24, 28);        /* the bottom-left corner square */
    snprintf(p, sizeof p, "%s/0000.png", md);
    write_mask(p, 28, 28, 0, 28, 0, 28);        /* by base name: Bag/0000 (Shirt/0000 has its own) */
    snprintf(p, sizeof p, "%s/Bag/big.bmp", md);   /* another extension: matched by stem */
    uint8_t *m = calloc(200 * 150 * 3, 1);
    for (int y = 0; y < 150; y++)
        for (int x = 0; x < 60; x++) m[(y * 200 + x) * 3] = 255;
    cr_assert_eq(sal_png_write_rgb(p, 200, 150, m, &e), SAL_OK, "%s", e.msg);   /* a PNG named .bmp: told by its bytes */
    free(m);

    char *err = NULL;
    const char *a[] = {"audit", "-m", WM_MODEL, d, "-o", out, "-M", "saliency", "--mask", md, NULL};
    cr_assert_eq(run(a, tmp, &err), 0, "%s", err);
    free(err);
    sqlite3 *db = open_db(out);
    cr_expect(query_double(db, "SELECT ABS(mass_mask - mass_bl) FROM records WHERE file = 'Shirt/0000.png'") < 1e-9);
    cr_expect(query_double(db, "SELECT mass_bl FROM records WHERE file = 'Shirt/0000.png'") > 0.01);
    cr_expect(fabs(query_double(db, "SELECT mass_mask FROM records WHERE file = 'Bag/0000.png'") - 1) < 1e-9);
    cr_expect(isnan(query_double(db, "SELECT mass_mask FROM records WHERE file = 'Shirt/0001.png'")), "no mask: empty");
    cr_expect(!isnan(query_double(db, "SELECT mass_center FROM records WHERE file = 'Shirt/0001.png'")));
    double got = query_double(db, "SELECT mass_mask FROM records WHERE file = 'Bag/big.png'");
    sqlite3_close(db);
    snprintf(p, sizeof p, "%s/Bag/big.png", d);
    const char *ax[] = {"explain", "-m", WM_MODEL, "-M", "saliency", "--raw", p, "-o", ex, NULL};
    cr_assert_eq(run(ax, tmp, &err), 0, "%s", err);
    free(err);
    snprintf(p, sizeof p, "%s/big.saliency.npy", ex);
    float *g = NULL;
    int nd = 0;
    int64_t dims[SAL_MAX_DIMS];
    cr_assert_eq(sal_npy_read(p, &g, &nd, dims, &e), SAL_OK, "%s", e.msg);
    double left = 0, all = 0;
    for (int y = 0; y < 28; y++)
        for (int x = 0; x < 28; x++) {
            all += fabsf(g[y * 28 + x]);
            if (x < 7) left += fabsf(g[y * 28 + x]);
        }
    free(g);
    cr_expect(fabs(got - left / all) < 1e-5, "big.png: mass_mask %.6f, the left 7 columns' share %.6f", got, left / all);

    /* a mask of the wrong size: the run stops, naming it; fixed, the rerun resumes */
    char out2[4400];
    snprintf(out2, sizeof out2, "%s/out2", tmp);
    snprintf(p, sizeof p, "%s/Shirt/0001.png", md);
    write_mask(p, 30, 30, 0, 4, 24, 28);
    const char *a2[] = {"audit", "-m", WM_MODEL, d, "-o", out2, "-M", "saliency", "--mask", md, "--batch", "1", NULL};
    cr_expect_eq(run(a2, tmp, &err), 2, "%s", err);
    cr_expect(strstr(err, "masks/Shirt/0001.png is 30x30 pixels but its input Shirt/0001.png is 28x28"), "%s", err);
    free(err);
    write_mask(p, 28, 28, 0, 4, 24, 28);
    cr_expect_eq(run(a2, tmp, &err), 0, "%s", err);
    cr_expect(strstr(err, "resuming"), "%s", err);
    free(err);
    db = open_db(out2);
    cr_expect_eq(query_double(db, "SELECT COUNT(*) FROM records"), 4);
    cr_expect(query_double(db, "SELECT ABS(mass_mask - mass_bl) FROM records WHERE file = 'Shirt/0001.png'") < 1e-9);
    sqlite3_close(db);
    tp_remove_tree(tmp);
}

/* ------------------------------------------------------------------------------------------------ */
/* Progress                                                                                         */

static int count_substr(const char *s, const char *sub) {
    int n = 0;
    for (const char *p = s; (p = strstr(p, sub)); p += strlen(sub)) n++;
    return n;
}

/* explain's progress report (host/cli/progress.c), as its tests check it: plain lines when stderr
 * is not a terminal (SALIENT_PROGRESS_SECONDS sets the pace), with done/total, the rate, the ETA
 * and the method at work, moving inside a long method (RISE's passes), never going back; a bar
 * redrawn in place on a terminal (script(1)); nothing at all on stderr with --quiet. */
Test(audit, progress_lines_bar_and_quiet) {
    char data[4096], tmp[256], d[4300], p[4400], from[8200], cmd[16384];
    watermark_data(data, sizeof data, 8);
    tp_make_tmp(tmp, sizeof tmp, "audit");
    snprintf(d, sizeof d, "%s/data", tmp);
    mkdir(d, 0755);
    snprintf(d, sizeof d, "%s/data/Shirt", tmp);
    mkdir(d, 0755);
    for (int i = 0; i < 3; i++) {
        snprintf(from, sizeof from, "%s/Shirt/%04d.png", data, i);
        snprintf(p, sizeof p, "%s/%04d.png", d, i);
        copy_file(from, p);
    }
    /* lines: stderr is a file */
    snprintf(cmd, sizeof cmd, "cd %s && SALIENT_PROGRESS_SECONDS=0.05 OMP_NUM_THREADS=1 %s audit -m %s data -o out1 -M rise "
             "--batch 1 2> err1", tmp, SALIENT, WM_MODEL);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
    snprintf(p, sizeof p, "%s/err1", tmp);
    char *err = tp_slurp(p, NULL);
    cr_assert(err);
    int lines = 0, last_done = -1, shrank = 0, inside = 0;
    for (char *l = err; (l = strstr(l, "salient: audit: ")); l++) {
        int done = -1, total = -1, pct = -1;
        cr_expect_eq(sscanf(l, "salient: audit: %d/%d images (%d%%)", &done, &total, &pct), 3, "%.80s", l);
        cr_expect_eq(total, 3);
        char *eol = strchr(l, '\n');
        char line[512];
        snprintf(line, sizeof line, "%.*s", (int)(eol - l), l);
        if (strstr(line, "rise")) {
            cr_expect((strstr(line, " images/s") || strstr(line, " s/image")) && strstr(line, "ETA"), "rate, ETA: %s", line);
            inside += pct >= 100 * done / 3 + 2;   /* a share of an image in flight: inside RISE's passes */
        }
        shrank += done < last_done;
        last_done = done;
        lines++;
    }
    cr_expect_geq(lines, 3, "several lines: %s", err);
    cr_expect_gt(inside, 0, "the report moves inside the method: %s", err);
    cr_expect_eq(shrank, 0, "the count never goes back: %s", err);
    cr_expect(strstr(err, "salient: audited 3 files with 1 method"), "the run's one-line summary: %s", err);
    free(err);

    /* --quiet: nothing on stderr */
    snprintf(cmd, sizeof cmd, "cd %s && SALIENT_PROGRESS_SECONDS=0.05 %s audit -m %s data -o out2 -M rise --batch 1 --quiet "
             "2> err2", tmp, SALIENT, WM_MODEL);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
    snprintf(p, sizeof p, "%s/err2", tmp);
    err = tp_slurp(p, NULL);
    cr_assert(err);
    cr_expect_str_empty(err, "--quiet: stderr empty: %s", err);
    free(err);

    /* a terminal: a bar redrawn in place */
    if (access("/usr/bin/script", X_OK) == 0) {
        snprintf(cmd, sizeof cmd, "cd %s && SALIENT_PROGRESS_SECONDS=0.1 OMP_NUM_THREADS=1 script -qec 'stty cols 200; %s audit "
                 "-m %s data -o out3 -M rise --batch 1' /dev/null > tty.log 2>&1", tmp, SALIENT, WM_MODEL);
        cr_assert_eq(system(cmd), 0, "%s", cmd);
        snprintf(p, sizeof p, "%s/tty.log", tmp);
        char *t = tp_slurp(p, NULL);
        cr_assert(t);
        cr_expect_geq(count_substr(t, "\rsalient audit ["), 2, "a bar redrawn in place: %s", t);
        cr_expect(strstr(t, "/3 images (") && strstr(t, "rise") && strstr(t, "ETA"), "count, method, ETA: %s", t);
        free(t);
    }
    tp_remove_tree(tmp);
}

/* ------------------------------------------------------------------------------------------------ */
/* A full disk, a read-only OUT                                                                     */

/* Every record's thumbnail (and, with --overlays all, overlay) exists and decodes; no temporary
 * file is left. Returns the number of records. */
static int expect_records_have_files(const char *out, int with_overlays) {
    sqlite3 *db = open_db(out);
    cr_assert_eq(query_double(db, "SELECT COUNT(*) FROM pragma_integrity_check WHERE integrity_check = 'ok'"), 1,
                 "%s: the database is damaged", out);
    sqlite3_stmt *q = NULL;
    cr_assert_eq(sqlite3_prepare_v2(db, "SELECT file, method FROM records", -1, &q, NULL), SQLITE_OK);
    int n = 0, missing = 0;
    while (sqlite3_step(q) == SQLITE_ROW) {
        n++;
        for (int k = 0; k < 1 + with_overlays; k++) {
            char p[4800];
            snprintf(p, sizeof p, "%s/%s/%s.%s.png", out, k ? "overlays" : "thumbs", (const char *)sqlite3_column_text(q, 0),
                     (const char *)sqlite3_column_text(q, 1));
            sal_image im = {0};
            sal_error e = {0};
            if (sal_image_load(p, &im, &e)) {
                if (missing++ < 3) cr_log_error("a row names a picture that is not whole: %s", e.msg);
            }
            sal_image_free(&im);
        }
    }
    sqlite3_finalize(q);
    sqlite3_close(db);
    cr_expect_eq(missing, 0, "%s: %d pictures of recorded rows missing or truncated", out, missing);
    char cmd[4400];
    snprintf(cmd, sizeof cmd, "test -z \"$(find %s -name '*.salient-tmp*')\"", out);
    cr_expect_eq(system(cmd), 0, "%s: temporary files left", out);
    return n;
}

/* A 400 KiB tmpfs in a private mount namespace (unshare -m; needs root, as in CI) fills up during
 * an audit with --overlays all: exit 1, a message naming a file under OUT and the reason, and
 * every recorded row's pictures whole (the database intact); moved to a roomy disk, a rerun
 * resumes and ends with the records of an uninterrupted run. The same folder remounted read-only:
 * a rerun fails with exit 1 naming the folder and the reason, and the database keeps its rows. */
Test(audit, full_disk_and_read_only_out_lose_nothing) {
    if (geteuid() != 0 || access("/usr/bin/unshare", X_OK)) cr_skip_test("mounting a tmpfs needs root and unshare(1)");
    char data[4096], tmp[256], full[4300], copy[4300], cmd[16384], p[4400];
    watermark_data(data, sizeof data, 8);
    tp_make_tmp(tmp, sizeof tmp, "audit");
    snprintf(full, sizeof full, "%s/full", tmp);
    snprintf(copy, sizeof copy, "%s/copy", tmp);
    char *err = NULL;
    const char *af[] = {"audit", "-m", WM_MODEL, data, "-o", full, "--batch", "4", "--overlays", "all", NULL};
    cr_assert_eq(run(af, tmp, &err), 0, "%s", err);
    free(err);
    snprintf(cmd, sizeof cmd,
             "cd %s && mkdir -p fs && unshare -m sh -c 'mount -t tmpfs -o size=400k tmpfs fs || exit 99; "
             "OMP_NUM_THREADS=1 %s audit -m %s %s -o fs/out --batch 4 --overlays all >stdout 2>stderr; echo $? > rc; "
             "cp -a fs/out copy; mount -o remount,ro fs || exit 98; "
             "%s audit -m %s %s -o fs/out --batch 4 --overlays all >stdout2 2>stderr2; echo $? > rc2; "
             "cp -a fs/out copy-ro'",
             tmp, SALIENT, WM_MODEL, data, SALIENT, WM_MODEL, data);
    int rc = system(cmd);
    if (WIFEXITED(rc) && WEXITSTATUS(rc) == 99) cr_skip_test("mount -t tmpfs is not allowed here");
    cr_assert_eq(rc, 0, "%s: status %d", cmd, rc);
    snprintf(p, sizeof p, "%s/rc", tmp);
    char *rcs = tp_slurp(p, NULL);
    snprintf(p, sizeof p, "%s/stderr", tmp);
    err = tp_slurp(p, NULL);
    cr_assert(rcs && err);
    cr_expect_eq(atoi(rcs), 1, "exit 1 on a full disk, got %s; stderr: %s", rcs, err);
    cr_expect(strstr(err, "No space left on device") || strstr(err, "database or disk is full"), "the reason: %s", err);
    cr_expect(strstr(err, "fs/out/"), "the file: %s", err);
    cr_expect(strstr(err, "audit stopped") || strstr(err, "writing failed"), "the run stops, saying so: %s", err);
    free(rcs);
    free(err);
    int kept = expect_records_have_files(copy, 1);
    cr_expect_gt(kept, 0, "batches were recorded before the disk was full");
    cr_expect_lt(kept, 160, "not everything fitted");

    /* read-only: refused, the rows kept */
    snprintf(p, sizeof p, "%s/rc2", tmp);
    rcs = tp_slurp(p, NULL);
    snprintf(p, sizeof p, "%s/stderr2", tmp);
    err = tp_slurp(p, NULL);
    cr_assert(rcs && err);
    cr_expect_eq(atoi(rcs), 1, "exit 1 on a read-only OUT, got %s; stderr: %s", rcs, err);
    cr_expect(strstr(err, "fs/out") && strstr(err, "not writable: Read-only file system"),
              "names the folder and the reason: %s", err);
    free(rcs);
    free(err);
    snprintf(p, sizeof p, "%s/copy-ro", tmp);
    cr_expect_eq(expect_records_have_files(p, 1), kept, "the read-only run changed the rows");

    /* on a roomy disk the same command resumes and completes */
    const char *ar[] = {"audit", "-m", WM_MODEL, data, "-o", copy, "--batch", "4", "--overlays", "all", NULL};
    cr_assert_eq(run(ar, tmp, &err), 0, "%s", err);
    cr_expect(strstr(err, "resuming"), "%s", err);
    free(err);
    expect_same_records(full, copy);
    cr_expect_eq(expect_records_have_files(copy, 1), 160);
    tp_remove_tree(tmp);
}

/* A picture that cannot be put in place (a file holds the name of its folder, OUT/thumbs/Coat):
 * the run stops at it with exit 1, naming the file and the reason; the rows recorded before it
 * all have their pictures, and no row names the pictures that failed. */
Test(audit, a_picture_that_cannot_be_written_stops_the_run) {
    char data[4096], tmp[256], out[4300], p[4400];
    watermark_data(data, sizeof data, 8);
    tp_make_tmp(tmp, sizeof tmp, "audit");
    snprintf(out, sizeof out, "%s/out", tmp);
    mkdir(out, 0755);
    snprintf(p, sizeof p, "%s/thumbs", out);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/thumbs/Coat", out);
    FILE *f = fopen(p, "w");
    cr_assert(f);
    fclose(f);
    char *err = NULL;
    const char *a[] = {"audit", "-m", WM_MODEL, data, "-o", out, "--batch", "4", NULL};
    cr_expect_eq(run(a, tmp, &err), 1, "%s", err);
    cr_expect(strstr(err, "thumbs/Coat/0000.png.gradcam.png") && strstr(err, "Not a directory") && strstr(err, "audit stopped"), "%s", err);
    free(err);
    int n = expect_records_have_files(out, 0);
    sqlite3 *db = open_db(out);
    cr_expect_eq(query_double(db, "SELECT COUNT(*) FROM records WHERE file LIKE 'Coat/%'"), 0);
    sqlite3_close(db);
    cr_expect_eq(n, 2 * 16, "the batches before Coat's (Ankle boot, Bag: 16 files, 2 methods)");
    tp_remove_tree(tmp);
}

/* Reading ahead (the next batch decoded on its own thread while this one computes) changes
 * nothing: the records of a run with SALIENT_AUDIT_READ_AHEAD=0 (each batch read in turn) are the
 * same, a corrupt file among them included; and the summary says how the reading went. */
Test(audit, reading_ahead_changes_no_record) {
    char data[4096], tmp[256], d[4300], a_dir[4300], b_dir[4300], p[4400], from[8200], cmd[16384];
    watermark_data(data, sizeof data, 8);
    tp_make_tmp(tmp, sizeof tmp, "audit");
    snprintf(d, sizeof d, "%s/data", tmp);
    mkdir(d, 0755);
    for (int i = 0; i < 7; i++) {
        snprintf(from, sizeof from, "%s/%s/%04d.png", data, i % 2 ? "Bag" : "Coat", i);
        snprintf(p, sizeof p, "%s/%d.png", d, i);
        copy_file(from, p);
    }
    snprintf(p, sizeof p, "%s/3x.png", d);   /* sorted into the second batch of 4 */
    FILE *f = fopen(p, "wb");
    cr_assert(f);
    fputs("not an image", f);
    fclose(f);
    snprintf(a_dir, sizeof a_dir, "%s/ahead", tmp);
    snprintf(b_dir, sizeof b_dir, "%s/serial", tmp);
    for (int k = 0; k < 2; k++) {
        snprintf(cmd, sizeof cmd, "%s%s audit -m %s %s -o %s --batch 4 2> %s/err%d", k ? "SALIENT_AUDIT_READ_AHEAD=0 " : "",
                 SALIENT, WM_MODEL, d, k ? b_dir : a_dir, tmp, k);
        int st = system(cmd);
        cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 1, "%s: exit 1 (a corrupt file) expected", cmd);
        snprintf(p, sizeof p, "%s/err%d", tmp, k);
        char *err = tp_slurp(p, NULL);
        cr_assert(err);
        cr_expect(strstr(err, "3x.png") && strstr(err, "audited 8 files"), "%s", err);
        cr_expect(k ? !strstr(err, "a batch ahead") : strstr(err, "reading") && strstr(err, "(a batch ahead, beside the model)"),
                  "%s", err);
        free(err);
    }
    expect_same_records(a_dir, b_dir);
    row *ra, *rb;
    int na = read_rows(a_dir, &ra), nb = read_rows(b_dir, &rb);
    cr_expect_eq(na, 14);
    for (int i = 0; i < na && i < nb; i++)   /* the same batches: the same numbers exactly */
        cr_expect(!memcmp(ra[i].v, rb[i].v, sizeof ra[i].v), "row %d differs", i);
    free(ra);
    free(rb);
    sqlite3 *db = open_db(a_dir);
    cr_expect_eq(query_double(db, "SELECT COUNT(*) FROM errors WHERE file = '3x.png'"), 1);
    sqlite3_close(db);
    tp_remove_tree(tmp);
}

/* Writing behind (a finished batch's pictures and commit on a writer thread while the next batch
 * computes) changes nothing: with SALIENT_AUDIT_WRITE_BEHIND=0 (each batch written and committed
 * before the next computes) the records, the corrupt file's error row, every thumbnail and overlay
 * and the mean maps are the same byte for byte, over three batches; only the summary differs. */
Test(audit, writing_behind_changes_no_record) {
    char data[4096], tmp[256], d[4300], a_dir[4300], b_dir[4300], p[4400], from[8200], cmd[16384];
    watermark_data(data, sizeof data, 8);
    tp_make_tmp(tmp, sizeof tmp, "audit");
    snprintf(d, sizeof d, "%s/data", tmp);
    mkdir(d, 0755);
    for (int i = 0; i < 11; i++) {
        snprintf(from, sizeof from, "%s/%s/%04d.png", data, i % 2 ? "Bag" : "Coat", i / 2);
        snprintf(p, sizeof p, "%s/%d.png", d, i);
        copy_file(from, p);
    }
    snprintf(p, sizeof p, "%s/3x.png", d);   /* sorted into the second batch of 4 */
    FILE *f = fopen(p, "wb");
    cr_assert(f);
    fputs("not an image", f);
    fclose(f);
    snprintf(a_dir, sizeof a_dir, "%s/behind", tmp);
    snprintf(b_dir, sizeof b_dir, "%s/inline", tmp);
    for (int k = 0; k < 2; k++) {
        snprintf(cmd, sizeof cmd, "%s%s audit -m %s %s -o %s --batch 4 --overlays all 2> %s/err%d",
                 k ? "SALIENT_AUDIT_WRITE_BEHIND=0 " : "", SALIENT, WM_MODEL, d, k ? b_dir : a_dir, tmp, k);
        int st = system(cmd);
        cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 1, "%s: exit 1 (a corrupt file) expected", cmd);
        snprintf(p, sizeof p, "%s/err%d", tmp, k);
        char *err = tp_slurp(p, NULL);
        cr_assert(err);
        cr_expect(strstr(err, "3x.png") && strstr(err, "audited 12 files"), "%s", err);
        cr_expect(k ? !strstr(err, "writer thread") : strstr(err, "(both on a writer thread, behind the model;") != NULL,
                  "%s", err);
        free(err);
    }
    expect_same_records(a_dir, b_dir);
    row *ra, *rb;
    int na = read_rows(a_dir, &ra), nb = read_rows(b_dir, &rb);
    cr_expect_eq(na, 22);
    cr_expect_eq(nb, 22);
    for (int i = 0; i < na && i < nb; i++)   /* the same batches: the same numbers exactly */
        cr_expect(!memcmp(ra[i].v, rb[i].v, sizeof ra[i].v), "row %d differs", i);
    free(ra);
    free(rb);
    static const char *const subs[] = {"thumbs", "overlays", "mean"};
    for (int k = 0; k < 3; k++) {
        snprintf(cmd, sizeof cmd, "diff -r %s/%s %s/%s > /dev/null", a_dir, subs[k], b_dir, subs[k]);
        cr_expect_eq(system(cmd), 0, "%s differ: %s", subs[k], cmd);
    }
    snprintf(p, sizeof p, "%s/thumbs", a_dir);
    cr_expect_eq(count_files(p), 22, "a thumbnail per record");
    sqlite3 *db = open_db(a_dir);
    cr_expect_eq(query_double(db, "SELECT COUNT(*) FROM errors WHERE file = '3x.png'"), 1);
    sqlite3_close(db);
    tp_remove_tree(tmp);
}
