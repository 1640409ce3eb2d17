/* bench_conv_shapes.c — one convolution at a time through the CPU backend: ResNet-50's 3x3
 * stride-1 convolutions (56x56x64, 28x28x128, 14x14x256, 7x7x512, pad 1, bias, Relu) on
 * channels-last data, forward and backward-data, by Winograd F(2x2, 3x3)
 * (host/backend/cpu/cpu_conv_wino.c) and by oneDNN's direct kernels, alternated call by call in
 * one process. Prints the best time of each and GFLOP/s counted as a direct convolution's
 * (2 * N*OH*OW*M*C*9).
 *
 *   bench_conv_shapes [--batch 1] [--reps 30] [--threads 2]
 *
 * A shape sal_wino_choose does not take would be timed through the Winograd entry directly and
 * marked "(not taken)". */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend/backend.h"
#include "backend/cpu/cpu_conv_dnnl.h"
#include "backend/cpu/cpu_conv_wino.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static float *rand_buf(size_t n, unsigned *s, float scale) {
    float *p = malloc(sizeof(float) * (n ? n : 1));
    if (!p) { fprintf(stderr, "bench_conv_shapes: out of memory\n"); exit(1); }
    for (size_t i = 0; i < n; i++) {
        *s = *s * 1664525u + 1013904223u;
        p[i] = scale * ((float)(*s >> 8) / (float)(1u << 24) * 2.f - 1.f);
    }
    return p;
}

int main(int argc, char **argv) {
    int batch = 1, reps = 30, threads = 2;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--batch")) batch = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--reps")) reps = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--threads")) threads = atoi(argv[i + 1]);
        else { fprintf(stderr, "usage: bench_conv_shapes [--batch 1] [--reps 30] [--threads 2]\n"); return 2; }
    }
    if (batch < 1 || reps < 1 || threads < 1) { fprintf(stderr, "bench_conv_shapes: bad option value\n"); return 2; }
    static const int shapes[4][2] = {{56, 64}, {28, 128}, {14, 256}, {7, 512}};
    sal_error err = {0};
    printf("| shape (HxWxC, batch %d) | pass | Winograd ms | direct ms | direct / Winograd | Winograd GFLOP/s* | direct GFLOP/s |\n"
           "|---|---|---:|---:|---:|---:|---:|\n", batch);
    for (int s = 0; s < 4; s++) {
        const int H = shapes[s][0], C = shapes[s][1];
        sal_conv_params p;
        memset(&p, 0, sizeof p);
        p.spatial = 2; p.n = batch; p.c = C; p.h = H; p.w = H; p.m = C; p.oh = H; p.ow = H;
        p.kh = p.kw = 3; p.sh = p.sw = p.dh = p.dw = 1; p.pt = p.pl = p.pb = p.pr = 1; p.group = 1;
        p.has_bias = 1; p.const_wb = 1; p.act = 1; p.act_lo = 0.f; p.act_hi = INFINITY; p.nhwc_x = p.nhwc_y = 1;
        const size_t nx = (size_t)batch * C * H * H;
        unsigned seed = 7;
        float *x = rand_buf(nx, &seed, 1.f), *w = rand_buf((size_t)C * C * 9, &seed, 0.05f);
        float *b = rand_buf((size_t)C, &seed, 0.1f), *y = rand_buf(nx, &seed, 1.f), *gx = rand_buf(nx, &seed, 1.f);
        sal_backend *be[2];   /* 0: Winograd, 1: oneDNN direct */
        sal_wino_cache *wc = NULL;
        for (int k = 0; k < 2; k++) {
            if (sal_backend_cpu_create(threads, &be[k], &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
            sal_backend_cpu_set_conv_impl(be[k], SAL_CONV_IMPL_LAYOUT);
            sal_backend_cpu_set_winograd(be[k], k == 0);
        }
        if (sal_wino_cache_create(&wc, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
        int ins[3] = {0, 1, 2}, outs[1] = {3};
        sal_node node = {"conv", "Conv", SAL_OP_CONV, 3, 1, ins, outs, 0, NULL};
        sal_shape xs = {4, {batch, C, H, H}}, ws = {4, {C, C, 3, 3}}, bs = {1, {C}};
        const sal_shape *in_shape[3] = {&xs, &ws, &bs}, *out_shape[1] = {&xs};
        const double flops = 2.0 * batch * H * H * (double)C * C * 9;
        for (int pass = 0; pass < 2; pass++) {
            double best[2] = {1e30, 1e30};
            for (int r = 0; r < reps + 2; r++)
                for (int k = 0; k < 2; k++) {
                    const float *in[3] = {pass ? NULL : x, w, b};
                    float *out[1] = {pass ? NULL : y};
                    const float *gout[1] = {x};
                    float *gin[3] = {gx, NULL, NULL};
                    sal_op_call c;
                    memset(&c, 0, sizeof c);
                    c.node = &node; c.params = &p; c.n_in = 3; c.n_out = 1; c.in = in; c.in_shape = in_shape;
                    c.out = out; c.out_shape = out_shape; c.threads = threads;
                    if (pass) { c.gout = gout; c.gin = gin; c.gin_set = 1; p.act = 0; }
                    const double t0 = now();
                    sal_status st;
                    if (k == 0 && !sal_wino_choose(&p))   /* below the rule's floor: the entry itself */
                        st = pass ? sal_wino_conv_bwd_data(wc, &c, &err) : sal_wino_conv_fwd(wc, &c, &err);
                    else
                        st = pass ? be[k]->ops->backward(be[k], &c, &err) : be[k]->ops->forward(be[k], &c, &err);
                    const double t = now() - t0;
                    if (st) { fprintf(stderr, "%s\n", err.msg); return 1; }
                    if (r >= 2 && t < best[k]) best[k] = t;
                }
            printf("| %dx%dx%d%s | %s | %.3f | %.3f | %.2fx | %.0f | %.0f |\n", H, H, C,
                   sal_wino_choose(&p) ? "" : " (not taken)", pass ? "backward-data" : "forward", best[0] * 1e3,
                   best[1] * 1e3, best[1] / best[0], flops / best[0] * 1e-9, flops / best[1] * 1e-9);
            p.act = 1;
        }
        for (int k = 0; k < 2; k++) be[k]->ops->destroy(be[k]);
        sal_wino_cache_free(wc);
        free(x); free(w); free(b); free(y); free(gx);
    }
    printf("\n* counted as a direct convolution's multiply-adds (Winograd does 16 where it does 36 per tile and channel pair)\n");
    return 0;
}
