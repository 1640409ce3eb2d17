/* bench_methods.c — time salient's attribution methods (sal_explain) one image at a time, as a
 * line-protocol server that benchmarks/methods_peer.py drives so that salient and the Python peer
 * (Captum / pytorch-grad-cam) alternate in one run. See benchmarks/README.md ("Attribution methods").
 *
 *   bench_methods [--model M.onnx] [--threads 2] [--inputs a.npy,b.npy,...] [--batch 0]
 *                 [--ig-steps 50] [--nt-samples 16] [--nt-sigma 0.15] [--occ-window 15]
 *                 [--occ-stride 8] [--seed 1] [--shap-samples 50] [--kshap-grid 8]
 *                 [--kshap-coalitions 1000] [--rise-masks 4000] [--device cpu|cuda]
 *
 * After a first line {"ready":true,...} it reads commands on stdin and answers one JSON line each:
 *   time METHOD IMG   one sal_explain call (n = 1, target = top-1) on input IMG (0-based) ->
 *                     {"ok":true,"method":..,"img":..,"time_s":..,"cpu_s":..,"target":..,
 *                      "score":..,"layer":"..","dims":[..],"abs_sum":..,"map":[..]?}
 *   map METHOD IMG    the same, with the raw map (attr, or for CAMs the layer-resolution map) added
 *   logits IMG        one forward -> {"ok":true,"img":..,"classes":K,"logits":[...]}
 *   time A+B IMG      one sal_explain_many call of methods A, B, ... (shared passes where they can)
 *   time forwardN IMG one sal_forward of N images (IMG, IMG+1, ... cycling over the inputs), the
 *                     batch's plan made before the clock starts -> {"ok":true,"time_s":..,...}
 *   quit
 * Errors are {"ok":false,"error":"..."}. One CPU session serves every method (what a user of
 * sal_explain gets: switching methods may re-plan, which the peer's warm-up run per method absorbs).
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "io/io.h"
#include "salient.h"

#include <oneapi/dnnl/dnnl.h>
#include <oneapi/dnnl/dnnl_debug.h>

static const char *default_inputs =
    "samples-npy/chelsea.npy,samples-npy/coffee.npy,samples-npy/astronaut.npy,samples-npy/rocket.npy,"
    "samples-npy/dog.npy,samples-npy/eagle.npy,samples-npy/giraffe.npy";

static double wall_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static double cpu_now(void) {
    struct rusage r;
    getrusage(RUSAGE_SELF, &r);
    return (double)r.ru_utime.tv_sec + 1e-6 * (double)r.ru_utime.tv_usec + (double)r.ru_stime.tv_sec +
           1e-6 * (double)r.ru_stime.tv_usec;
}

static void json_error(const char *msg) {
    printf("{\"ok\":false,\"error\":\"");
    for (const char *p = msg; *p; p++) {
        if (*p == '"' || *p == '\\') putchar('\\');
        putchar((unsigned char)*p < 0x20 ? ' ' : *p);
    }
    printf("\"}\n");
    fflush(stdout);
}

int main(int argc, char **argv) {
    const char *model_path = "models/efficientnet_lite0.onnx", *inputs = default_inputs;
    int threads = 2, batch = 0, ig_steps = 50, nt_samples = 16, occ_window = 15, occ_stride = 8;
    int shap_samples = 50, kshap_grid = 8, kshap_coalitions = 1000, rise_masks = 4000;
    sal_device device = SAL_DEVICE_CPU;
    float nt_sigma = 0.15f;
    unsigned long long seed = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) { fprintf(stderr, "bench_methods: %s needs a value\n", a); return 2; }
        if (!strcmp(a, "--model")) model_path = v;
        else if (!strcmp(a, "--threads")) threads = atoi(v);
        else if (!strcmp(a, "--inputs")) inputs = v;
        else if (!strcmp(a, "--batch")) batch = atoi(v);
        else if (!strcmp(a, "--ig-steps")) ig_steps = atoi(v);
        else if (!strcmp(a, "--nt-samples")) nt_samples = atoi(v);
        else if (!strcmp(a, "--nt-sigma")) nt_sigma = (float)atof(v);
        else if (!strcmp(a, "--occ-window")) occ_window = atoi(v);
        else if (!strcmp(a, "--occ-stride")) occ_stride = atoi(v);
        else if (!strcmp(a, "--seed")) seed = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--shap-samples")) shap_samples = atoi(v);
        else if (!strcmp(a, "--kshap-grid")) kshap_grid = atoi(v);
        else if (!strcmp(a, "--kshap-coalitions")) kshap_coalitions = atoi(v);
        else if (!strcmp(a, "--rise-masks")) rise_masks = atoi(v);
        else if (!strcmp(a, "--device")) {
            if (!strcmp(v, "cpu")) device = SAL_DEVICE_CPU;
            else if (!strcmp(v, "cuda")) device = SAL_DEVICE_CUDA;
            else { fprintf(stderr, "bench_methods: --device cpu|cuda\n"); return 2; }
        }
        else { fprintf(stderr, "bench_methods: unknown option %s\n", a); return 2; }
        i++;
    }

    sal_error err = {0};
    sal_model *model = NULL;
    if (sal_model_load(model_path, &model, &err)) { fprintf(stderr, "bench_methods: %s\n", err.msg); return 1; }
    sal_tensor_info in;
    sal_model_input(model, 0, &in);
    int C = (int)in.dims[1], H = (int)in.dims[2], W = (int)in.dims[3];
    sal_session_opts so = sal_session_opts_default();
    so.device = device;
    so.threads = threads;
    sal_session *s = NULL;
    if (sal_session_create(model, &so, &s, &err)) { fprintf(stderr, "bench_methods: %s\n", err.msg); return 1; }

    /* inputs */
    char *copy = strdup(inputs);
    float *imgs[64];
    int n_imgs = 0;
    for (char *tok = strtok(copy, ","); tok && n_imgs < 64; tok = strtok(NULL, ",")) {
        int ndim = 0;
        int64_t dims[SAL_MAX_DIMS];
        if (sal_npy_read(tok, &imgs[n_imgs], &ndim, dims, &err)) {
            fprintf(stderr, "bench_methods: %s\n", err.msg);
            return 1;
        }
        int64_t tot = 1;
        for (int d = 0; d < ndim; d++) tot *= dims[d];
        if (tot != (int64_t)C * H * W) { fprintf(stderr, "bench_methods: %s: wrong size\n", tok); return 1; }
        n_imgs++;
    }
    free(copy);

    const dnnl_version_t *dv = dnnl_version();
    printf("{\"ready\":true,\"engine\":\"salient\",\"version\":\"%s\",\"threads\":%d,\"inputs\":%d,"
           "\"batch\":%d,\"ig_steps\":%d,\"nt_samples\":%d,\"nt_sigma\":%g,\"occ_window\":%d,\"occ_stride\":%d,"
           "\"shap_samples\":%d,\"kshap_grid\":%d,\"kshap_coalitions\":%d,\"rise_masks\":%d,"
           "\"gemm\":\"oneDNN %d.%d.%d dnnl_sgemm\",\"gemm_isa\":\"%s\",\"device\":\"%s\"}\n",
           SAL_VERSION_STRING, threads, n_imgs, batch, ig_steps, nt_samples, nt_sigma, occ_window, occ_stride,
           shap_samples, kshap_grid, kshap_coalitions, rise_masks,
           dv->major, dv->minor, dv->patch, dnnl_cpu_isa2str(dnnl_get_effective_cpu_isa()), sal_session_device(s));
    fflush(stdout);

    int K = 0;
    float *logits = NULL;
    char line[512];
    while (fgets(line, sizeof line, stdin)) {
        char cmd[32] = "", mname[64] = "";
        int img = -1;
        if (sscanf(line, "%31s", cmd) != 1) continue;
        if (!strcmp(cmd, "quit")) break;
        if (!strcmp(cmd, "logits")) {
            if (sscanf(line, "%*s %d", &img) != 1 || img < 0 || img >= n_imgs) { json_error("usage: logits IMG"); continue; }
            if (sal_session_plan(s, 1, H, W)) { json_error(sal_session_error(s)); continue; }
            K = sal_session_num_classes(s);
            logits = realloc(logits, sizeof(float) * (size_t)K);
            if (sal_forward(s, imgs[img], 1, H, W, logits)) { json_error(sal_session_error(s)); continue; }
            printf("{\"ok\":true,\"img\":%d,\"classes\":%d,\"logits\":[", img, K);
            for (int k = 0; k < K; k++) printf(k ? ",%.7g" : "%.7g", logits[k]);
            printf("]}\n");
            fflush(stdout);
            continue;
        }
        int want_map = !strcmp(cmd, "map");
        if (strcmp(cmd, "time") && !want_map) { json_error("unknown command (time, map, logits, quit)"); continue; }
        sal_method m;
        int fwd_n = 0;
        if (sscanf(line, "%*s %63s %d", mname, &img) == 2 && !strncmp(mname, "forward", 7) &&
            (fwd_n = atoi(mname + 7)) > 0 && img >= 0 && img < n_imgs) {
            /* forwardN: one sal_forward of N images (IMG, IMG+1, ... cycling over the inputs) */
            float *xb = malloc(sizeof(float) * (size_t)fwd_n * C * H * W);
            if (sal_session_plan(s, fwd_n, H, W) || !xb) { free(xb); json_error(sal_session_error(s)); continue; }
            K = sal_session_num_classes(s);
            float *lb = malloc(sizeof(float) * (size_t)fwd_n * K);
            for (int k = 0; k < fwd_n; k++)
                memcpy(xb + (size_t)k * C * H * W, imgs[(img + k) % n_imgs], sizeof(float) * (size_t)C * H * W);
            double c0 = cpu_now(), t0 = wall_now();
            sal_status st = lb ? sal_forward(s, xb, fwd_n, H, W, lb) : SAL_ERR_NOMEM;
            double t1 = wall_now(), c1 = cpu_now();
            int top = 0;
            for (int k = 1; lb && k < K; k++) if (lb[k] > lb[top]) top = k;
            free(xb);
            free(lb);
            if (st) { json_error(sal_session_error(s)); continue; }
            printf("{\"ok\":true,\"method\":\"%s\",\"img\":%d,\"time_s\":%.6f,\"cpu_s\":%.6f,\"target\":%d,"
                   "\"layer\":\"\",\"dims\":[%d,%d]}\n", mname, img, t1 - t0, c1 - c0, top, fwd_n, K);
            fflush(stdout);
            continue;
        }
        if (sscanf(line, "%*s %63s %d", mname, &img) == 2 && strchr(mname, '+') && img >= 0 && img < n_imgs) {
            /* A+B+...: one sal_explain_many call (the methods that can share their passes do) */
            sal_method ms[SAL_M_COUNT];
            int nm = 0, bad = 0;
            char list[64];
            snprintf(list, sizeof list, "%s", mname);
            for (char *tok = strtok(list, "+"); tok && !bad; tok = strtok(NULL, "+"))
                bad = nm == SAL_M_COUNT || sal_method_parse(tok, &ms[nm++]);
            if (bad) { json_error("usage: time A+B+... IMG (methods as in salient explain -M)"); continue; }
            sal_explain_opts o = sal_explain_opts_default(ms[0]);
            o.batch = batch;
            o.seed = seed;
            sal_maps mm[SAL_M_COUNT];
            double c0 = cpu_now(), t0 = wall_now();
            sal_status st = sal_explain_many(s, &o, ms, nm, imgs[img], 1, H, W, NULL, mm);
            double t1 = wall_now(), c1 = cpu_now();
            if (st) { json_error(sal_session_error(s)); continue; }
            printf("{\"ok\":true,\"method\":\"%s\",\"img\":%d,\"time_s\":%.6f,\"cpu_s\":%.6f,\"target\":%d,"
                   "\"layer\":\"%s\",\"dims\":[]}\n", mname, img, t1 - t0, c1 - c0, mm[0].targets[0], mm[0].layer);
            fflush(stdout);
            for (int k = 0; k < nm; k++) sal_maps_free(&mm[k]);
            continue;
        }
        if (sscanf(line, "%*s %63s %d", mname, &img) != 2 || img < 0 || img >= n_imgs ||
            sal_method_parse(mname, &m)) {
            json_error("usage: time|map METHOD IMG (METHOD as in salient explain -M)");
            continue;
        }
        sal_explain_opts o = sal_explain_opts_default(m);
        o.batch = batch;
        o.seed = seed;
        o.ig_steps = ig_steps;
        o.ig_rule = SAL_IG_GAUSSLEGENDRE;
        o.baseline = SAL_BASELINE_ZERO;
        o.nt_samples = nt_samples;
        o.nt_sigma = nt_sigma;
        o.occ_h = o.occ_w = occ_window;
        o.occ_stride_h = o.occ_stride_w = occ_stride;
        o.occ_fill = 0;
        o.shap_samples = shap_samples;
        o.kshap_grid = kshap_grid;
        o.kshap_coalitions = kshap_coalitions;
        o.rise_masks = rise_masks;
        sal_maps maps;
        memset(&maps, 0, sizeof maps);
        double c0 = cpu_now(), t0 = wall_now();
        sal_status st = sal_explain(s, &o, imgs[img], 1, H, W, NULL, &maps);
        double t1 = wall_now(), c1 = cpu_now();
        if (st) { json_error(sal_session_error(s)); sal_maps_free(&maps); continue; }
        int64_t per = 1;
        for (int d = 0; d < maps.ndim; d++) per *= maps.dims[d];
        double asum = 0;
        for (int64_t i = 0; i < per; i++) asum += maps.attr[i] < 0 ? -maps.attr[i] : maps.attr[i];
        printf("{\"ok\":true,\"method\":\"%s\",\"img\":%d,\"time_s\":%.6f,\"cpu_s\":%.6f,\"target\":%d,"
               "\"score\":%.7g,\"layer\":\"%s\",\"dims\":[",
               sal_method_name(m), img, t1 - t0, c1 - c0, maps.targets ? maps.targets[0] : -1,
               maps.scores ? maps.scores[0] : 0.f, maps.layer);
        for (int d = 0; d < maps.ndim; d++) printf(d ? ",%lld" : "%lld", (long long)maps.dims[d]);
        printf("],\"abs_sum\":%.7g", asum);
        if (want_map) {
            printf(",\"map\":[");
            for (int64_t i = 0; i < per; i++) printf(i ? ",%.7g" : "%.7g", maps.attr[i]);
            printf("]");
        }
        printf("}\n");
        fflush(stdout);
        sal_maps_free(&maps);
    }
    free(logits);
    for (int i = 0; i < n_imgs; i++) free(imgs[i]);
    sal_session_free(s);
    sal_model_free(model);
    return 0;
}
