/* cpu_backend.c — the CPU backend: host memory, OpenMP threads, OpenBLAS; dispatches each node to
 * its kernel pair in cpu_*.c. This backend is the specification the CUDA backend must match. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <string.h>
#include <omp.h>

#include <stdint.h>
#include <time.h>

#include "../backend.h"
#include "gemm.h"
#include "cpu_threads.h"
#include "cpu_conv_dnnl.h"
#include "cpu_conv_wino.h"
#include "cpu_mem.h"
#include "../../ops/op_decls.h"
#include "method_prims.h"

typedef struct cpu_kernel {
    sal_status (*fwd)(const sal_op_call *, sal_error *);
    sal_status (*bwd)(const sal_op_call *, sal_error *);
} cpu_kernel;

static const cpu_kernel *kernel_of(int kind) {
    static const cpu_kernel table[SAL_OP_COUNT] = {
#define K(op, KIND) [KIND] = {sal_cpu_##op##_fwd, sal_cpu_##op##_bwd},
        K(conv, SAL_OP_CONV) K(batchnorm, SAL_OP_BATCHNORM) K(maxpool, SAL_OP_MAXPOOL)
        K(avgpool, SAL_OP_AVGPOOL) K(globalavgpool, SAL_OP_GLOBALAVGPOOL) K(gemm, SAL_OP_GEMM)
        K(matmul, SAL_OP_MATMUL) K(lrn, SAL_OP_LRN) K(relu, SAL_OP_RELU)
        K(leakyrelu, SAL_OP_LEAKYRELU) K(clip, SAL_OP_CLIP) K(sigmoid, SAL_OP_SIGMOID)
        K(hardsigmoid, SAL_OP_HARDSIGMOID) K(hardswish, SAL_OP_HARDSWISH) K(tanh, SAL_OP_TANH)
        K(add, SAL_OP_ADD) K(sub, SAL_OP_SUB) K(mul, SAL_OP_MUL) K(div, SAL_OP_DIV)
        K(reducemean, SAL_OP_REDUCEMEAN) K(softmax, SAL_OP_SOFTMAX) K(concat, SAL_OP_CONCAT)
        K(transpose, SAL_OP_TRANSPOSE) K(pad, SAL_OP_PAD)
#undef K
#define T(KIND) [KIND] = {sal_cpu_twin_fwd, sal_cpu_twin_bwd},
        T(SAL_OP_POW) T(SAL_OP_SQRT) T(SAL_OP_ERF) T(SAL_OP_GELU) T(SAL_OP_SELU) T(SAL_OP_ELU)
        T(SAL_OP_SOFTPLUS) T(SAL_OP_LAYERNORM) T(SAL_OP_REDUCESUM) T(SAL_OP_REDUCEMAX)
        T(SAL_OP_GLOBALMAXPOOL) T(SAL_OP_SLICE) T(SAL_OP_GATHER) T(SAL_OP_EXPAND) T(SAL_OP_TILE)
        T(SAL_OP_WHERE) T(SAL_OP_DEPTHTOSPACE) T(SAL_OP_SPACETODEPTH) T(SAL_OP_CONVTRANSPOSE)
#undef T
    };
    if (kind < 0 || kind >= SAL_OP_COUNT || !table[kind].fwd) return NULL;
    return &table[kind];
}

int sal_cpu_supports(const sal_node *node) { return kernel_of(node->op) != NULL; }

sal_status sal_cpu_forward(const sal_op_call *call, sal_error *err) {
    const cpu_kernel *k = kernel_of(call->node->op);
    if (!k)
        return sal_fail(err, SAL_ERR_UNSUPPORTED, "node '%s': op %s has no CPU kernel",
                        call->node->name, call->node->op_type);
    /* the GEMM (oneDNN) sizes its OpenMP team from the calling thread's setting: give it the
     * session's thread count for this call, and restore the caller's */
    int saved = omp_get_max_threads();
    if (call->threads > 0) omp_set_num_threads(call->threads);
    sal_status st = k->fwd(call, err);
    omp_set_num_threads(saved);
    return st;
}

/* The gin_set bits (ops.h) kernel k writes itself: Relu's, and Add's and Sub's without
 * broadcasting (cpu_elem.c); every other kernel only adds. */
static unsigned bwd_sets(const sal_op_call *call) {
    switch (call->node->op) {
    case SAL_OP_RELU: return 1u;
    case SAL_OP_ADD:
    case SAL_OP_SUB:
        return call->params && ((const sal_bcast_params *)call->params)->mode == SAL_BC_SAME ? 3u : 0u;
    default: return 0u;
    }
}

sal_status sal_cpu_backward(const sal_op_call *call, sal_error *err) {
    const cpu_kernel *k = kernel_of(call->node->op);
    if (!k || !k->bwd)
        return sal_fail(err, SAL_ERR_UNSUPPORTED, "node '%s': op %s has no CPU backward",
                        call->node->name, call->node->op_type);
    int saved = omp_get_max_threads();
    if (call->threads > 0) omp_set_num_threads(call->threads);
    /* first contributions to a gradient that the kernel only adds: zeros under them first */
    sal_op_call c = *call;
    const unsigned zero = call->gin_set & ~bwd_sets(call);
    for (int i = 0; zero && i < call->n_in && i < 32; i++) {
        if (!(zero >> i & 1) || !call->gin[i]) continue;
        const int64_t n = sal_shape_numel(call->in_shape[i]), piece = 1 << 16;
        float *gx = call->gin[i];
#pragma omp parallel for schedule(static) if (n > 4 * piece)
        for (int64_t a = 0; a < n; a += piece) memset(gx + a, 0, sizeof(float) * (size_t)(n - a < piece ? n - a : piece));
    }
    c.gin_set &= ~zero;
    sal_status st = k->bwd(&c, err);
    omp_set_num_threads(saved);
    return st;
}

/* ------------------------------------------------------------------------------------------------ */
/* Backend table                                                                                    */

/* The backend's own state: the oneDNN convolution cache (made at the first convolution that
 * goes there) and which convolution implementation to use. */
typedef struct cpu_impl {
    sal_dnnl_conv_cache *dnnl;
    sal_wino_cache *wino;
    int conv_impl;   /* SAL_CONV_IMPL_* */
    int no_wino;     /* sal_backend_cpu_set_winograd(b, 0): those convolutions go to oneDNN too */
} cpu_impl;

static void cpu_destroy(sal_backend *b) {
    if (!b) return;
    cpu_impl *ci = b->impl;
    if (ci) sal_dnnl_conv_cache_free(ci->dnnl);
    if (ci) sal_wino_cache_free(ci->wino);
    free(ci);
    free(b);
}

void sal_backend_cpu_set_conv_impl(sal_backend *b, int impl) {
    if (b && b->ops && !strcmp(b->ops->name, "cpu") && b->impl) {
        ((cpu_impl *)b->impl)->conv_impl = impl;
        b->layout_nhwc = impl == SAL_CONV_IMPL_LAYOUT;
    }
}

static int cpu_conv_nhwc(sal_backend *b, const sal_conv_params *p) {
    const cpu_impl *ci = b->impl;
    return ci && sal_dnnl_conv_nhwc_ok(p, ci->conv_impl);
}

void sal_backend_cpu_set_winograd(sal_backend *b, int on) {
    if (b && b->ops && !strcmp(b->ops->name, "cpu") && b->impl) ((cpu_impl *)b->impl)->no_wino = !on;
}

/* The convolution through oneDNN (or, among those, Winograd's: cpu_conv_wino.c) when the choice
 * says so; 0 and *done = 0 otherwise. */
static sal_status cpu_conv_dnnl(sal_backend *b, const sal_op_call *c, int backward, int *done, sal_error *err) {
    *done = 0;
    cpu_impl *ci = b->impl;
    if (!ci || c->node->op != SAL_OP_CONV || !c->params ||
        !sal_dnnl_conv_choose((const sal_conv_params *)c->params, ci->conv_impl))
        return SAL_OK;
    if (backward && c->n_in > 1 && (c->gin[1] || (c->n_in > 2 && c->gin[2]))) return SAL_OK;
    sal_status st;
    if (!ci->no_wino && sal_wino_choose((const sal_conv_params *)c->params)) {
        if (!ci->wino && (st = sal_wino_cache_create(&ci->wino, err))) return st;
        *done = 1;
        return backward ? sal_wino_conv_bwd_data(ci->wino, c, err) : sal_wino_conv_fwd(ci->wino, c, err);
    }
    if (!ci->dnnl && (st = sal_dnnl_conv_cache_create(&ci->dnnl, err))) return st;
    *done = 1;
    /* oneDNN sizes its OpenMP team from the calling thread's setting, as the GEMM does */
    int saved = omp_get_max_threads();
    if (c->threads > 0) omp_set_num_threads(c->threads);
    st = backward ? sal_dnnl_conv_bwd_data(ci->dnnl, c, err) : sal_dnnl_conv_fwd(ci->dnnl, c, err);
    omp_set_num_threads(saved);
    return st;
}
static int cpu_supports(sal_backend *b, const sal_node *n) { (void)b; return sal_cpu_supports(n); }
static void *cpu_alloc(sal_backend *b, size_t bytes) {
    (void)b;
    return sal_cpu_alloc(bytes);   /* huge pages from 2 MiB up */
}
static void cpu_release(sal_backend *b, void *p) { (void)b; free(p); }
/* A copy (src) or a zero fill (src NULL) of bytes at dst. Large ones (the gradient arena before
 * each backward pass, a batch of images: megabytes) run on all the backend's threads in 256 KiB
 * pieces: 5-12% off a forward+gradient pass of EfficientNet-Lite0 at batch 8 on 2 cores
 * (bench_engine, old and new binaries alternated). */
static void cpu_copy_or_zero(const sal_backend *b, void *dst, const void *src, size_t bytes) {
    const size_t piece = (size_t)1 << 18;
    const int nt = b->threads > 0 ? b->threads : sal_cpu_default_threads();
    if (bytes < 8 * piece || nt < 2) {
        if (bytes && src) memcpy(dst, src, bytes);
        else if (bytes) memset(dst, 0, bytes);
        return;
    }
    const int64_t n = (int64_t)((bytes + piece - 1) / piece);
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t k = 0; k < n; k++) {
        const size_t off = (size_t)k * piece, len = bytes - off < piece ? bytes - off : piece;
        if (src) memcpy((char *)dst + off, (const char *)src + off, len);
        else memset((char *)dst + off, 0, len);
    }
}

static sal_status cpu_copy(sal_backend *b, void *dst, const void *src, size_t bytes, sal_error *err) {
    (void)err;
    cpu_copy_or_zero(b, dst, src, bytes);
    return SAL_OK;
}
static sal_status cpu_zero(sal_backend *b, void *dst, size_t bytes, sal_error *err) {
    (void)err;
    cpu_copy_or_zero(b, dst, NULL, bytes);
    return SAL_OK;
}
static sal_status cpu_fwd(sal_backend *b, const sal_op_call *c, sal_error *err) {
    int done;
    sal_status st = cpu_conv_dnnl(b, c, 0, &done, err);
    return done || st ? st : sal_cpu_forward(c, err);
}
static sal_status cpu_bwd(sal_backend *b, const sal_op_call *c, sal_error *err) {
    int done;
    sal_status st = cpu_conv_dnnl(b, c, 1, &done, err);
    return done || st ? st : sal_cpu_backward(c, err);
}
static sal_status cpu_sync(sal_backend *b, sal_error *err) { (void)b; (void)err; return SAL_OK; }

/* MemAvailable and MemTotal from /proc/meminfo (Linux); sysconf's page counts elsewhere. */
static sal_status cpu_mem_info(sal_backend *b, size_t *avail, size_t *total) {
    (void)b;
    size_t a = 0, t = 0;
    FILE *f = fopen("/proc/meminfo", "r");
    if (f) {
        char line[256];
        unsigned long long kb;
        while (fgets(line, sizeof line, f)) {
            if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1) a = (size_t)kb * 1024;
            else if (sscanf(line, "MemTotal: %llu kB", &kb) == 1) t = (size_t)kb * 1024;
        }
        fclose(f);
    }
    long page = sysconf(_SC_PAGESIZE);
    if (!a && page > 0) a = (size_t)sysconf(_SC_AVPHYS_PAGES) * (size_t)page;
    if (!t && page > 0) t = (size_t)sysconf(_SC_PHYS_PAGES) * (size_t)page;
    if (!a || !t) return SAL_ERR_UNSUPPORTED;
    *avail = a;
    *total = t;
    return SAL_OK;
}

/* Square SGEMM of side n (default 2048) with the backend's threads on random data, best of 3. */
static sal_status cpu_peak_gflops(sal_backend *b, int n, double *gflops, sal_error *err) {
    if (n <= 0) n = 2048;
    size_t nn = (size_t)n * (size_t)n;
    float *a = malloc(sizeof(float) * nn), *m = malloc(sizeof(float) * nn), *c = malloc(sizeof(float) * nn);
    if (!a || !m || !c) {
        free(a); free(m); free(c);
        return sal_fail(err, SAL_ERR_NOMEM, "out of memory for a %dx%d SGEMM", n, n);
    }
    uint64_t st = 0x9e3779b97f4a7c15ULL;
    for (size_t i = 0; i < nn; i++) {
        st = st * 6364136223846793005ULL + 1442695040888963407ULL;
        a[i] = (float)((st >> 40) * (1.0 / 16777216.0)) - 0.5f;
        m[i] = -a[i];
    }
    int saved = omp_get_max_threads();
    omp_set_num_threads(b->threads);
    double best = 1e300;
    for (int r = 0; r < 4; r++) {   /* the first run warms up (JIT, pages) */
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        sal_sgemm(0, 0, n, n, n, 1.f, a, n, m, n, 0.f, c, n);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double dt = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
        if (r > 0 && dt < best) best = dt;
    }
    omp_set_num_threads(saved);
    free(a); free(m); free(c);
    *gflops = 2.0 * n * (double)n * n / best * 1e-9;
    return SAL_OK;
}

/* max_batch 16: on this design's CPUs (benchmarks/README.md) larger batches add no speed */
/* Method primitives: the element functions in a loop over the backend's threads (the calls are
 * independent, so the split does not change any result). */
typedef void (*mp_fn)(int64_t i, const sal_mp_args *a);
#define MP_FN(name) [SAL_MP_##name] = sal_mp_##name,
static const mp_fn mp_fns[SAL_MP_NFUNCS] = {SAL_MP_FUNCS(MP_FN)};
#undef MP_FN

static sal_status cpu_prim(sal_backend *b, int fn, int64_t count, const struct sal_mp_args *a,
                           sal_error *err) {
    if (fn < 0 || fn >= SAL_MP_NFUNCS || count < 0)
        return sal_fail(err, SAL_ERR_INTERNAL, "method primitive %d (count %lld) does not exist", fn,
                        (long long)count);
    mp_fn f = mp_fns[fn];
#pragma omp parallel for num_threads(b->threads) schedule(static) if (count >= 4096)
    for (int64_t i = 0; i < count; i++) f(i, a);
    return SAL_OK;
}

static int cmp_nan_last(const void *pa, const void *pb) {
    float a = *(const float *)pa, b = *(const float *)pb;
    int na = a != a, nb = b != b;
    if (na || nb) return na - nb;
    return (a > b) - (a < b);
}

static size_t cpu_sort_scratch(sal_backend *b, int64_t n) { (void)b; (void)n; return 0; }

static sal_status cpu_sort(sal_backend *b, float *data, int64_t n, void *scratch, sal_error *err) {
    (void)b; (void)err; (void)scratch;
    if (n > 1) qsort(data, (size_t)n, sizeof(float), cmp_nan_last);
    return SAL_OK;
}

/* host memory: every copy is over on return (upload, download, and the "asynchronous" upload) */
static sal_status cpu_wait_uploads(sal_backend *b, sal_error *err) { (void)b; (void)err; return SAL_OK; }

static const sal_backend_ops cpu_ops = {
    "cpu", cpu_destroy, cpu_supports, cpu_alloc, cpu_release, cpu_copy, cpu_copy, cpu_zero,
    cpu_fwd, cpu_bwd, cpu_sync, cpu_mem_info, 16, cpu_peak_gflops, cpu_prim, cpu_sort_scratch, cpu_sort, cpu_copy, cpu_wait_uploads,
    cpu_conv_nhwc,
};

sal_status sal_backend_cpu_create(int threads, sal_backend **out, sal_error *err) {
    sal_backend *b = calloc(1, sizeof *b);
    if (!b) return sal_fail(err, SAL_ERR_NOMEM, "out of memory creating the CPU backend");
    cpu_impl *ci = calloc(1, sizeof *ci);
    if (!ci) {
        free(b);
        return sal_fail(err, SAL_ERR_NOMEM, "out of memory creating the CPU backend");
    }
    /* Convolutions by LAYOUT: the engine's layout pass holds the activations between group-1
     * convolutions channels-last in forward and gradient plans, and those convolutions run on
     * them in place in oneDNN's primitives; the others by AUTO's per-node rule
     * (sal_dnnl_conv_choose): group-1 ones other than 1x1 stride 1 through oneDNN's primitives,
     * the rest on cpu_nn.c's kernels. The rule reads neither the batch nor the plane's size (a
     * rule that did gave a window's patch or another internal batch another summation order:
     * test_batch_repro, test_conv_paths). Measured on ResNet-50 (README, "CPU math library"):
     * AUTO 5-10% less time per pass than our kernels alone, the layout pass another 5-8%. */
    ci->conv_impl = SAL_CONV_IMPL_LAYOUT;
    b->layout_nhwc = 1;
    b->impl = ci;
    b->ops = &cpu_ops;
    b->host_memory = 1;
    b->fuse_conv_act = 1;
    b->fuse_add_act = 1;
    b->grad_set = 1;
    b->incremental = 1;
    b->threads = threads > 0 ? threads : sal_cpu_default_threads();
    *out = b;
    return SAL_OK;
}
