/* bench_engine.c — throughput of salient's forward pass and forward + input gradient (top-1 seed)
 * on one model, for a list of batch sizes. See benchmarks/README.md.
 *
 *   bench_engine [--model M.onnx] [--batch 1,8,32] [--modes forward,gradient] [--reps 5]
 *                [--min-time 3] [--max-reps 50] [--warmup 2] [--threads 0] [--device cpu]
 *                [--inputs a.npy,b.npy,...] [--json] [--conv auto|gemm|dnnl|layout] [--winograd 1|0]
 *   bench_engine --serve [--model ...] [--threads ...] [--inputs ...]
 *
 * Inputs: the (3,224,224) float32 .npy tensors of samples-npy/ (scripts/fetch-models), repeated in
 * order to fill a batch (image i of a batch is input i mod count).
 *
 * Standalone: per batch size and mode, --warmup untimed runs, then timed runs until at least
 * --reps runs AND --min-time seconds were measured (never more than --max-reps runs); one line
 * per (batch, mode): text, or with --json one JSON object per line:
 *   {"engine":"salient","mode":"forward","batch":8,"threads":2,"reps":7,"median_s":...,
 *    "min_s":...,"mean_s":...,"max_s":...,"images_per_s":...,"cpu_per_wall":...,"times_s":[...]}
 * (images_per_s = batch / median_s; cpu_per_wall = process CPU time (user + system, every thread)
 * over wall time during the timed runs: about 1.0 when one core works, about T with T busy cores.)
 *
 * --serve: a line protocol on stdin/stdout that lets benchmarks/ort_bench.py alternate salient
 * and onnxruntime runs in the same benchmark (each engine idles while the other is timed).
 * After the first line {"ready":true,...} it answers each command with one JSON line:
 *   time MODE BATCH REPS     REPS timed runs -> {"ok":true,"mode":..,"batch":..,"times_s":[..],
 *                                                "cpu_s":[..]}
 *   logits BATCH             one forward -> {"ok":true,"batch":..,"classes":K,"logits":[...]}
 *   quit                     exit 0
 * Errors are {"ok":false,"error":"..."}.
 *
 * Two sessions are used, one per mode, so that alternating forward and gradient runs never
 * re-plans (a session plans for one (batch, mode) at a time).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "backend/backend.h"
#include "backend/cpu/cpu_conv_dnnl.h"
#include "io/io.h"
#include "salient.h"

sal_backend *sal_session_backend(sal_session *s);   /* engine/session.c: the session's backend */

/* The CPU backend's GEMM is oneDNN's dnnl_sgemm (host/backend/cpu/gemm.c, CMakeLists.txt): report
 * its version and the instruction set it picked at run time (it dispatches on CPU features). */
#include <oneapi/dnnl/dnnl.h>
#include <oneapi/dnnl/dnnl_debug.h>

static void gemm_info(char *buf, size_t len) {
    const dnnl_version_t *v = dnnl_version();
    snprintf(buf, len, "\"gemm\":\"oneDNN %d.%d.%d dnnl_sgemm (%s runtime)\",\"gemm_isa\":\"%s\"", v->major,
             v->minor, v->patch, v->cpu_runtime == DNNL_RUNTIME_OMP ? "OpenMP" : "other",
             dnnl_cpu_isa2str(dnnl_get_effective_cpu_isa()));
}

enum { MODE_FORWARD = 0, MODE_GRADIENT = 1, N_MODES = 2 };
static const char *mode_names[N_MODES] = {"forward", "gradient"};

static const char *default_inputs =
    "samples-npy/chelsea.npy,samples-npy/coffee.npy,samples-npy/astronaut.npy,samples-npy/rocket.npy,"
    "samples-npy/dog.npy,samples-npy/eagle.npy,samples-npy/giraffe.npy";

typedef struct bench {
    sal_model *model;
    sal_session *sess[N_MODES];
    int threads;
    int c, h, w;          /* input image shape */
    int n_inputs;
    float **inputs;       /* (n_inputs) of (c*h*w) floats */
    float *x;             /* (cap, c, h, w) batch built from the inputs */
    float *logits, *grad; /* (cap, K), (cap, c, h, w) */
    int cap, k;
} bench;

static double wall_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static double cpu_now(void) {   /* user + system time of every thread of this process */
    struct rusage r;
    getrusage(RUSAGE_SELF, &r);
    return (double)r.ru_utime.tv_sec + 1e-6 * (double)r.ru_utime.tv_usec + (double)r.ru_stime.tv_sec +
           1e-6 * (double)r.ru_stime.tv_usec;
}

static void die(const char *fmt, const char *a, const char *b) {
    fprintf(stderr, "bench_engine: ");
    fprintf(stderr, fmt, a, b);
    fprintf(stderr, "\n");
    exit(1);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(const double *v, int n) {
    double *s = malloc(sizeof(double) * (size_t)n);
    memcpy(s, v, sizeof(double) * (size_t)n);
    qsort(s, (size_t)n, sizeof(double), cmp_double);
    double m = n % 2 ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
    free(s);
    return m;
}

/* Split a comma-separated list in place; returns the count. */
static int split(char *s, char **out, int max) {
    int n = 0;
    for (char *tok = strtok(s, ","); tok && n < max; tok = strtok(NULL, ",")) out[n++] = tok;
    return n;
}

static void load_inputs(bench *b, const char *list) {
    char *copy = strdup(list);
    char *paths[64];
    int n = split(copy, paths, 64);
    if (n == 0) die("no inputs given%s%s", "", "");
    b->inputs = calloc((size_t)n, sizeof(float *));
    for (int i = 0; i < n; i++) {
        sal_error err = {0};
        int ndim = 0;
        int64_t dims[SAL_MAX_DIMS];
        if (sal_npy_read(paths[i], &b->inputs[i], &ndim, dims, &err))
            die("%s%s (run scripts/fetch-models)", err.msg, "");
        if (ndim == 4 && dims[0] == 1) {   /* accept (1,C,H,W) too */
            memmove(dims, dims + 1, sizeof(int64_t) * 3);
            ndim = 3;
        }
        if (ndim != 3 || dims[0] != b->c || dims[1] != b->h || dims[2] != b->w) {
            char want[64];
            snprintf(want, sizeof want, "(%d,%d,%d)", b->c, b->h, b->w);
            die("%s: not a %s float tensor", paths[i], want);
        }
    }
    b->n_inputs = n;
    free(copy);
}

static void ensure_capacity(bench *b, int n) {
    if (n <= b->cap) return;
    size_t img = (size_t)b->c * (size_t)b->h * (size_t)b->w;
    free(b->x);
    free(b->grad);
    free(b->logits);
    b->x = malloc(sizeof(float) * img * (size_t)n);
    b->grad = malloc(sizeof(float) * img * (size_t)n);
    b->logits = malloc(sizeof(float) * (size_t)n * (size_t)(b->k > 0 ? b->k : 1));
    if (!b->x || !b->grad || !b->logits) die("out of memory for batch buffers%s%s", "", "");
    for (int i = 0; i < n; i++) memcpy(b->x + (size_t)i * img, b->inputs[i % b->n_inputs], sizeof(float) * img);
    b->cap = n;
}

/* Plans session `mode` for batch n (so that the first timed run does not plan). */
static int prepare(bench *b, int mode, int n, char *msg, size_t len) {
    sal_session *s = b->sess[mode];
    if (sal_session_plan(s, n, b->h, b->w)) {
        snprintf(msg, len, "plan batch %d: %s", n, sal_session_error(s));
        return -1;
    }
    int k = sal_session_num_classes(s);
    if (k != b->k) {   /* first plan: learn K, reallocate the logits */
        b->k = k;
        b->cap = 0;
    }
    ensure_capacity(b, n);
    return 0;
}

static int run_once(bench *b, int mode, int n, char *msg, size_t len) {
    sal_session *s = b->sess[mode];
    sal_status st;
    if (mode == MODE_FORWARD) {
        st = sal_forward(s, b->x, n, b->h, b->w, b->logits);
    } else {
        sal_grad_opts o = sal_grad_opts_default();   /* top-1 seed, input gradient */
        sal_grad_out out = {0};
        out.logits = b->logits;
        out.input_grad = b->grad;
        st = sal_gradient(s, b->x, n, b->h, b->w, &o, &out);
    }
    if (st) {
        snprintf(msg, len, "%s batch %d: %s", mode_names[mode], n, sal_session_error(s));
        return -1;
    }
    return 0;
}

/* Timed runs until >= reps runs and >= min_time seconds (at most max_reps); fills times/cpus. */
static int measure(bench *b, int mode, int n, int reps, double min_time, int max_reps, double *times,
                   double *cpus, int *count, char *msg, size_t len) {
    double total = 0;
    int i = 0;
    while (i < max_reps && (i < reps || total < min_time)) {
        double c0 = cpu_now(), t0 = wall_now();
        if (run_once(b, mode, n, msg, len)) return -1;
        double t1 = wall_now(), c1 = cpu_now();
        times[i] = t1 - t0;
        cpus[i] = c1 - c0;
        total += times[i];
        i++;
    }
    *count = i;
    return 0;
}

static void print_array(const double *v, int n, const char *fmt) {
    putchar('[');
    for (int i = 0; i < n; i++) {
        if (i) putchar(',');
        printf(fmt, v[i]);
    }
    putchar(']');
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

static int parse_mode(const char *s) {
    for (int m = 0; m < N_MODES; m++)
        if (strcmp(s, mode_names[m]) == 0) return m;
    if (strcmp(s, "fwd") == 0) return MODE_FORWARD;
    if (strcmp(s, "grad") == 0) return MODE_GRADIENT;
    return -1;
}

static int serve(bench *b) {
    char line[512], msg[SAL_ERROR_LEN + 128];
    char gi[256];
    gemm_info(gi, sizeof gi);
    printf("{\"ready\":true,\"engine\":\"salient\",\"version\":\"%s\",\"threads\":%d,\"inputs\":%d,%s}\n",
           SAL_VERSION_STRING, b->threads, b->n_inputs, gi);
    fflush(stdout);
    int max_times = 0;
    double *times = NULL, *cpus = NULL;
    while (fgets(line, sizeof line, stdin)) {
        char cmd[32] = "", mode_s[32] = "";
        int n = 0, reps = 0;
        if (sscanf(line, "%31s", cmd) != 1) continue;
        if (strcmp(cmd, "quit") == 0) break;
        if (strcmp(cmd, "time") == 0) {
            int mode;
            if (sscanf(line, "%*s %31s %d %d", mode_s, &n, &reps) != 3 || (mode = parse_mode(mode_s)) < 0 ||
                n <= 0 || reps <= 0) {
                json_error("usage: time forward|gradient BATCH REPS");
                continue;
            }
            if (reps > max_times) {
                max_times = reps;
                times = realloc(times, sizeof(double) * (size_t)reps);
                cpus = realloc(cpus, sizeof(double) * (size_t)reps);
            }
            int count = 0;
            if (prepare(b, mode, n, msg, sizeof msg) ||
                measure(b, mode, n, reps, 0, reps, times, cpus, &count, msg, sizeof msg)) {
                json_error(msg);
                continue;
            }
            printf("{\"ok\":true,\"mode\":\"%s\",\"batch\":%d,\"times_s\":", mode_names[mode], n);
            print_array(times, count, "%.6f");
            printf(",\"cpu_s\":");
            print_array(cpus, count, "%.6f");
            printf("}\n");
        } else if (strcmp(cmd, "logits") == 0) {
            if (sscanf(line, "%*s %d", &n) != 1 || n <= 0) {
                json_error("usage: logits BATCH");
                continue;
            }
            if (prepare(b, MODE_FORWARD, n, msg, sizeof msg) || run_once(b, MODE_FORWARD, n, msg, sizeof msg)) {
                json_error(msg);
                continue;
            }
            printf("{\"ok\":true,\"batch\":%d,\"classes\":%d,\"logits\":[", n, b->k);
            for (int64_t i = 0; i < (int64_t)n * b->k; i++) printf(i ? ",%.7g" : "%.7g", b->logits[i]);
            printf("]}\n");
        } else {
            json_error("unknown command (time, logits, quit)");
            continue;
        }
        fflush(stdout);
    }
    free(times);
    free(cpus);
    return 0;
}

static void usage(FILE *f) {
    fprintf(f,
            "usage: bench_engine [--model M.onnx] [--batch 1,8,32] [--modes forward,gradient]\n"
            "                    [--reps 5] [--min-time 3] [--max-reps 50] [--warmup 2] [--threads 0]\n"
            "                    [--device cpu|auto|cuda] [--inputs a.npy,b.npy] [--json] [--serve]\n"
            "                    [--conv auto|gemm|dnnl|layout]   (CPU convolutions: per node, im2col+GEMM, oneDNN, per node + channels-last between oneDNN convolutions;\n"
            "                                                       default: the library's, layout)\n"
            "                    [--winograd 1|0]   (3x3 stride-1 convolutions on channels-last data by Winograd's\n"
            "                                        F(2x2,3x3), the default, or by oneDNN's direct kernels)\n");
}

int main(int argc, char **argv) {
    const char *model_path = "models/efficientnet_lite0.onnx", *inputs = default_inputs;
    char batch_list[256] = "1,8,32", mode_list[64] = "forward,gradient";
    int reps = 5, max_reps = 50, warmup = 2, threads = 0, json = 0, do_serve = 0,
        conv_impl = -1,   /* -1: the library's default (LAYOUT) */
        winograd = 1;
    double min_time = 3.0;
    sal_device device = SAL_DEVICE_CPU;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define NEED_VALUE() do { if (!v) die("%s needs a value%s", a, ""); i++; } while (0)
        if (strcmp(a, "--model") == 0) { NEED_VALUE(); model_path = v; }
        else if (strcmp(a, "--batch") == 0) { NEED_VALUE(); snprintf(batch_list, sizeof batch_list, "%s", v); }
        else if (strcmp(a, "--modes") == 0) { NEED_VALUE(); snprintf(mode_list, sizeof mode_list, "%s", v); }
        else if (strcmp(a, "--reps") == 0) { NEED_VALUE(); reps = atoi(v); }
        else if (strcmp(a, "--max-reps") == 0) { NEED_VALUE(); max_reps = atoi(v); }
        else if (strcmp(a, "--min-time") == 0) { NEED_VALUE(); min_time = atof(v); }
        else if (strcmp(a, "--warmup") == 0) { NEED_VALUE(); warmup = atoi(v); }
        else if (strcmp(a, "--threads") == 0) { NEED_VALUE(); threads = atoi(v); }
        else if (strcmp(a, "--inputs") == 0) { NEED_VALUE(); inputs = v; }
        else if (strcmp(a, "--conv") == 0) {
            NEED_VALUE();
            if (!strcmp(v, "auto")) conv_impl = SAL_CONV_IMPL_AUTO;
            else if (!strcmp(v, "gemm")) conv_impl = SAL_CONV_IMPL_GEMM;
            else if (!strcmp(v, "dnnl")) conv_impl = SAL_CONV_IMPL_DNNL;
            else if (!strcmp(v, "layout")) conv_impl = SAL_CONV_IMPL_LAYOUT;
            else die("--conv: auto, gemm, dnnl or layout, not '%s'%s", v, "");
        }
        else if (strcmp(a, "--winograd") == 0) { NEED_VALUE(); winograd = atoi(v) != 0; }
        else if (strcmp(a, "--device") == 0) {
            NEED_VALUE();
            if (strcmp(v, "cpu") == 0) device = SAL_DEVICE_CPU;
            else if (strcmp(v, "cuda") == 0) device = SAL_DEVICE_CUDA;
            else if (strcmp(v, "auto") == 0) device = SAL_DEVICE_AUTO;
            else die("--device: cpu, cuda or auto, not '%s'%s", v, "");
        }
        else if (strcmp(a, "--json") == 0) json = 1;
        else if (strcmp(a, "--serve") == 0) do_serve = 1;
        else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) { usage(stdout); return 0; }
        else { usage(stderr); die("unknown option '%s'%s", a, ""); }
#undef NEED_VALUE
    }
    if (reps < 1 || max_reps < reps || warmup < 0 || threads < 0)
        die("bad --reps/--max-reps/--warmup/--threads%s%s", "", "");

    bench b = {0};
    sal_error err = {0};
    if (sal_model_load(model_path, &b.model, &err)) die("%s%s", err.msg, "");
    sal_tensor_info in;
    sal_model_input(b.model, 0, &in);
    if (in.ndim != 4 || in.dims[1] <= 0 || in.dims[2] <= 0 || in.dims[3] <= 0)
        die("%s: needs a fixed (N,C,H,W) input%s", model_path, "");
    b.c = (int)in.dims[1];
    b.h = (int)in.dims[2];
    b.w = (int)in.dims[3];
    sal_session_opts o = sal_session_opts_default();
    o.device = device;
    o.threads = threads;
    for (int m = 0; m < N_MODES; m++)
        if (sal_session_create(b.model, &o, &b.sess[m], &err)) die("%s%s", err.msg, "");
        else {
            if (conv_impl >= 0) sal_backend_cpu_set_conv_impl(sal_session_backend(b.sess[m]), conv_impl);
            sal_backend_cpu_set_winograd(sal_session_backend(b.sess[m]), winograd);
        }
    b.threads = threads;
    if (threads == 0) {   /* what the CPU backend uses for 0: omp_get_num_procs() = usable CPUs */
        cpu_set_t set;
        b.threads = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : 0;
    }
    load_inputs(&b, inputs);

    int rc = 0;
    if (do_serve) {
        rc = serve(&b);
    } else {
        char *bl[32], *ml[N_MODES + 4];
        int nb = split(batch_list, bl, 32), nm = split(mode_list, ml, N_MODES + 4);
        double *times = malloc(sizeof(double) * (size_t)max_reps), *cpus = malloc(sizeof(double) * (size_t)max_reps);
        char msg[SAL_ERROR_LEN + 128];
        char gi[256];
        gemm_info(gi, sizeof gi);
        if (json)
            printf("{\"meta\":\"salient\",\"version\":\"%s\",\"device\":\"%s\",\"threads\":%d,\"inputs\":%d,%s}\n",
                   SAL_VERSION_STRING, sal_session_device(b.sess[0]), b.threads, b.n_inputs, gi);
        else
            printf("salient %s, device %s, threads %d, inputs %d, {%s}\n", SAL_VERSION_STRING,
                   sal_session_device(b.sess[0]), b.threads, b.n_inputs, gi);
        for (int i = 0; i < nb && !rc; i++) {
            int n = atoi(bl[i]);
            if (n <= 0) die("bad batch size '%s'%s", bl[i], "");
            for (int j = 0; j < nm && !rc; j++) {
                int mode = parse_mode(ml[j]);
                if (mode < 0) die("unknown mode '%s' (forward, gradient)%s", ml[j], "");
                int count = 0;
                if (prepare(&b, mode, n, msg, sizeof msg)) { rc = 1; break; }
                for (int w = 0; w < warmup && !rc; w++) rc = run_once(&b, mode, n, msg, sizeof msg) ? 1 : 0;
                if (!rc && measure(&b, mode, n, reps, min_time, max_reps, times, cpus, &count, msg, sizeof msg))
                    rc = 1;
                if (rc) break;
                double med = median(times, count), mn = times[0], mx = times[0], sum = 0, csum = 0;
                for (int r = 0; r < count; r++) {
                    if (times[r] < mn) mn = times[r];
                    if (times[r] > mx) mx = times[r];
                    sum += times[r];
                    csum += cpus[r];
                }
                if (json) {
                    printf("{\"engine\":\"salient\",\"mode\":\"%s\",\"batch\":%d,\"threads\":%d,\"reps\":%d,"
                           "\"median_s\":%.6f,\"min_s\":%.6f,\"mean_s\":%.6f,\"max_s\":%.6f,"
                           "\"images_per_s\":%.3f,\"cpu_per_wall\":%.3f,\"cpu_median_s\":%.6f,\"times_s\":",
                           mode_names[mode], n, b.threads, count, med, mn, sum / count, mx, n / med, csum / sum,
                           median(cpus, count));
                    print_array(times, count, "%.6f");
                    printf("}\n");
                } else {
                    printf("salient %-8s batch %3d: median %9.2f ms  (min %9.2f, max %9.2f, %d reps)  "
                           "%8.2f images/s  cpu/wall %.2f  cpu %9.2f ms\n",
                           mode_names[mode], n, 1e3 * med, 1e3 * mn, 1e3 * mx, count, n / med, csum / sum,
                           1e3 * median(cpus, count));
                }
                fflush(stdout);
            }
        }
        if (rc) fprintf(stderr, "bench_engine: %s\n", msg);
        free(times);
        free(cpus);
    }
    for (int m = 0; m < N_MODES; m++) sal_session_free(b.sess[m]);
    sal_model_free(b.model);
    for (int i = 0; i < b.n_inputs; i++) free(b.inputs[i]);
    free(b.inputs);
    free(b.x);
    free(b.grad);
    free(b.logits);
    return rc;
}
