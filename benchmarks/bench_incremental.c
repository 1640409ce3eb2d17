/* bench_incremental.c — incremental inference (host/engine/incremental.c) against full passes, at
 * the engine level, on a busy machine's terms: batches of occlusion windows (15x15, stride 8, one
 * row of windows per batch, as `salient explain -M occlusion` batches them) run alternately as full
 * passes over the occluded images (the engine's forward) and as incremental passes, each timed in
 * wall and CPU seconds (CLOCK_PROCESS_CPUTIME_ID), with the FLOPs each ran and the largest output
 * difference. One JSON line per model and threshold on stdout.
 *
 * Usage: bench_incremental MODEL.onnx [--threads T] [--batch B] [--rounds R] [--threshold X]...
 *   (defaults: 2 threads, batch 16, 3 rounds, thresholds 0.5) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend/backend.h"
#include "engine/engine.h"
#include "engine/incremental.h"
#include "model/graph.h"
#include "salient.h"

static double now(clockid_t c) {
    struct timespec t;
    clock_gettime(c, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_d);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: bench_incremental MODEL.onnx [--threads T] [--batch B] [--rounds R] [--threshold X]...\n");
        return 2;
    }
    int threads = 2, nb = 16, rounds = 3, nthr = 0;
    double thr[8];
    for (int i = 2; i < argc; i++) {
        if (i + 1 >= argc) { fprintf(stderr, "bench_incremental: %s needs a value\n", argv[i]); return 2; }
        if (!strcmp(argv[i], "--threads")) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--batch")) nb = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--rounds")) rounds = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threshold") && nthr < 8) thr[nthr++] = atof(argv[++i]);
        else { fprintf(stderr, "bench_incremental: unknown option %s\n", argv[i]); return 2; }
    }
    if (!nthr) thr[nthr++] = 0.5;
    if (nb < 1 || rounds < 1 || threads < 1) { fprintf(stderr, "bench_incremental: bad option value\n"); return 2; }
    sal_model *m = NULL;
    sal_error err = {0};
    sal_backend *b = NULL;
    sal_engine *e = NULL;
    if (sal_model_load(argv[1], &m, &err) || sal_backend_cpu_create(threads, &b, &err) ||
        sal_engine_create(m->g, b, &e, &err)) {
        fprintf(stderr, "bench_incremental: %s\n", err.msg);
        return 1;
    }
    const sal_shape *decl = &m->g->values[m->g->inputs[0]].decl;
    int C = (int)decl->d[1], H = decl->d[2] > 0 ? (int)decl->d[2] : 224, W = decl->d[3] > 0 ? (int)decl->d[3] : 224;
    int64_t per = (int64_t)C * H * W;
    float *x = malloc(sizeof(float) * (size_t)per), *fill = calloc((size_t)per, sizeof(float));
    float *imgs = malloc(sizeof(float) * (size_t)per * (size_t)nb);
    int *rects = malloc(sizeof(int) * 4 * (size_t)nb);
    if (!x || !fill || !imgs || !rects) { fprintf(stderr, "bench_incremental: out of memory\n"); return 1; }
    for (int64_t j = 0; j < per; j++) x[j] = sinf(0.001f * (float)j) * 2.0f;   /* a smooth image */
    int row = (H - 15) / 8 / 2;   /* a row in the middle: nb windows from its left */
    for (int k = 0; k < nb; k++) {
        int *r = rects + 4 * k;
        r[0] = row * 8; r[1] = k * 8; r[2] = r[0] + 15; r[3] = r[1] + 15;
    }
    for (int k = 0; k < nb; k++)
        for (int64_t j = 0; j < per; j++) {
            int64_t p = j % ((int64_t)H * W);
            int y = (int)(p / W), xx = (int)(p % W);
            const int *r = rects + 4 * k;
            imgs[(int64_t)k * per + j] = y >= r[0] && y < r[2] && xx >= r[1] && xx < r[3] ? fill[j] : x[j];
        }
    sal_shape s1 = {4, {1, C, H, W}}, sb = {4, {nb, C, H, W}};
    for (int t = 0; t < nthr; t++) {
        sal_inc_opts o = sal_inc_opts_default();
        o.threshold = thr[t];
        sal_inc *inc = NULL;
        if (sal_inc_create(e, &o, &inc, &err) || sal_inc_base(inc, &s1, x, &err)) {
            fprintf(stderr, "bench_incremental: %s\n", err.msg);
            return 1;
        }
        const sal_shape *os = NULL;
        float *ref = NULL, *got = NULL;
        double *fw = malloc(sizeof(double) * (size_t)rounds), *fc = malloc(sizeof(double) * (size_t)rounds);
        double *iw = malloc(sizeof(double) * (size_t)rounds), *ic = malloc(sizeof(double) * (size_t)rounds);
        double maxdiff = 0;
        for (int r = 0; r < rounds; r++) {
            /* full passes: the plan is cached after the first round; the base plan stays */
            double w0 = now(CLOCK_MONOTONIC), c0 = now(CLOCK_PROCESS_CPUTIME_ID);
            const float *ins[1] = {imgs};
            if (sal_engine_plan(e, &sb, SAL_PLAN_FORWARD, -1, &err) || sal_engine_forward(e, ins, &err)) {
                fprintf(stderr, "bench_incremental: %s\n", err.msg);
                return 1;
            }
            if (!os) {
                os = sal_engine_shape(e, m->g->outputs[0]);
                ref = malloc(sizeof(float) * (size_t)sal_shape_numel(os));
                got = malloc(sizeof(float) * (size_t)sal_shape_numel(os));
            }
            int64_t no = sal_shape_numel(os);
            if (sal_engine_read(e, m->g->outputs[0], ref, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
            fw[r] = now(CLOCK_MONOTONIC) - w0;
            fc[r] = now(CLOCK_PROCESS_CPUTIME_ID) - c0;
            w0 = now(CLOCK_MONOTONIC);
            c0 = now(CLOCK_PROCESS_CPUTIME_ID);
            if (sal_inc_forward(inc, nb, rects, fill, got, &err)) { fprintf(stderr, "bench_incremental: %s\n", err.msg); return 1; }
            iw[r] = now(CLOCK_MONOTONIC) - w0;
            ic[r] = now(CLOCK_PROCESS_CPUTIME_ID) - c0;
            double mx = 1;
            for (int64_t j = 0; j < no; j++) if (fabs(ref[j]) > mx) mx = fabs(ref[j]);
            for (int64_t j = 0; j < no; j++) {
                double d = fabs((double)got[j] - ref[j]) / mx;
                if (!(d <= maxdiff)) maxdiff = d;
            }
        }
        double ran, full;
        sal_inc_flops(inc, &ran, &full);
        double l[3] = {0};
        FILE *f = fopen("/proc/loadavg", "r");
        if (f) { if (fscanf(f, "%lf %lf %lf", &l[0], &l[1], &l[2]) != 3) l[0] = -1; fclose(f); }
        double mfw = median(fw, rounds), mfc = median(fc, rounds), miw = median(iw, rounds), mic = median(ic, rounds);
        printf("{\"model\":\"%s\",\"threshold\":%.2f,\"threads\":%d,\"batch\":%d,\"rounds\":%d,"
               "\"full_wall_s\":%.3f,\"inc_wall_s\":%.3f,\"wall_ratio\":%.2f,\"full_cpu_s\":%.3f,\"inc_cpu_s\":%.3f,"
               "\"cpu_ratio\":%.2f,\"flops_ratio\":%.2f,\"max_rel_diff\":%.3g,\"load1\":%.2f}\n",
               argv[1], thr[t], threads, nb, rounds, mfw, miw, mfw / miw, mfc, mic, mfc / mic, full / ran, maxdiff, l[0]);
        fflush(stdout);
        free(fw); free(fc); free(iw); free(ic); free(ref); free(got);
        sal_inc_free(inc);
    }
    free(x); free(fill); free(imgs); free(rects);
    sal_engine_free(e);
    b->ops->destroy(b);
    sal_model_free(m);
    return 0;
}
