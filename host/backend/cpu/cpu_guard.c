/* cpu_guard.c — the CPU backend dressed as a device, for tests: host_memory is 0 (weights are
 * uploaded, as on a GPU) and every byte it allocates is mapped PROT_NONE except while one of its
 * own operations runs. Host code that reads or writes a backend pointer outside the backend —
 * which on a GPU would crash or read garbage — faults at once, on machines without a GPU
 * (tests/test_guarded.c runs every method and the post-processing this way). Slow: every
 * operation changes the protection of every allocation twice. */
#define _DEFAULT_SOURCE 1   /* MAP_ANONYMOUS */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../backend.h"

typedef struct region { void *p; size_t len; } region;

typedef struct guard {
    sal_backend *cpu;   /* the real CPU backend, which does the work */
    region *r;
    int n, cap;
} guard;

static guard *gd(sal_backend *b) { return (guard *)b->impl; }

static void protect_all(guard *g, int prot) {
    for (int i = 0; i < g->n; i++) mprotect(g->r[i].p, g->r[i].len, prot);
}
static void open_all(guard *g) { protect_all(g, PROT_READ | PROT_WRITE); }
static void close_all(guard *g) { protect_all(g, PROT_NONE); }

static void g_destroy(sal_backend *b) {
    guard *g = gd(b);
    for (int i = 0; i < g->n; i++) munmap(g->r[i].p, g->r[i].len);
    free(g->r);
    g->cpu->ops->destroy(g->cpu);
    free(g);
    free(b);
}

static int g_supports(sal_backend *b, const sal_node *n) { return gd(b)->cpu->ops->supports(gd(b)->cpu, n); }

static void *g_alloc(sal_backend *b, size_t bytes) {
    guard *g = gd(b);
    size_t page = (size_t)sysconf(_SC_PAGESIZE), len = ((bytes ? bytes : 1) + page - 1) / page * page;
    if (g->n == g->cap) {
        int cap = g->cap ? 2 * g->cap : 64;
        region *r = realloc(g->r, sizeof *r * (size_t)cap);
        if (!r) return NULL;
        g->r = r;
        g->cap = cap;
    }
    void *p = mmap(NULL, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return NULL;
    g->r[g->n].p = p;
    g->r[g->n].len = len;
    g->n++;
    return p;
}

static void g_release(sal_backend *b, void *p) {
    guard *g = gd(b);
    for (int i = 0; p && i < g->n; i++)
        if (g->r[i].p == p) {
            munmap(p, g->r[i].len);
            g->r[i] = g->r[--g->n];
            return;
        }
}

/* Each operation: open every region, run the CPU backend's operation, close them again. */
#define GUARDED(call)                                                                              \
    do {                                                                                           \
        guard *g_ = gd(b);                                                                         \
        open_all(g_);                                                                              \
        sal_status st_ = (call);                                                                   \
        close_all(g_);                                                                             \
        return st_;                                                                                \
    } while (0)

static sal_status g_upload(sal_backend *b, void *dst, const void *src, size_t bytes, sal_error *err) {
    GUARDED(gd(b)->cpu->ops->upload(gd(b)->cpu, dst, src, bytes, err));
}
static sal_status g_download(sal_backend *b, void *dst, const void *src, size_t bytes, sal_error *err) {
    GUARDED(gd(b)->cpu->ops->download(gd(b)->cpu, dst, src, bytes, err));
}
static sal_status g_zero(sal_backend *b, void *dst, size_t bytes, sal_error *err) {
    GUARDED(gd(b)->cpu->ops->zero(gd(b)->cpu, dst, bytes, err));
}
static sal_status g_fwd(sal_backend *b, const sal_op_call *c, sal_error *err) {
    GUARDED(gd(b)->cpu->ops->forward(gd(b)->cpu, c, err));
}
static sal_status g_bwd(sal_backend *b, const sal_op_call *c, sal_error *err) {
    GUARDED(gd(b)->cpu->ops->backward(gd(b)->cpu, c, err));
}
static sal_status g_sync(sal_backend *b, sal_error *err) { return gd(b)->cpu->ops->sync(gd(b)->cpu, err); }
static sal_status g_mem_info(sal_backend *b, size_t *avail, size_t *total) {
    return gd(b)->cpu->ops->mem_info(gd(b)->cpu, avail, total);
}
static sal_status g_peak(sal_backend *b, int n, double *gflops, sal_error *err) {
    return gd(b)->cpu->ops->peak_gflops(gd(b)->cpu, n, gflops, err);
}
static sal_status g_prim(sal_backend *b, int fn, int64_t count, const struct sal_mp_args *a, sal_error *err) {
    GUARDED(gd(b)->cpu->ops->prim(gd(b)->cpu, fn, count, a, err));
}
static size_t g_sort_scratch(sal_backend *b, int64_t n) { return gd(b)->cpu->ops->sort_scratch(gd(b)->cpu, n); }
static sal_status g_sort(sal_backend *b, float *data, int64_t n, void *scratch, sal_error *err) {
    GUARDED(gd(b)->cpu->ops->sort(gd(b)->cpu, data, n, scratch, err));
}

static sal_status g_upload_async(sal_backend *b, void *dst, const void *src, size_t bytes, sal_error *err) {
    GUARDED(gd(b)->cpu->ops->upload_async(gd(b)->cpu, dst, src, bytes, err));
}
static sal_status g_wait_uploads(sal_backend *b, sal_error *err) { return gd(b)->cpu->ops->wait_uploads(gd(b)->cpu, err); }

static const sal_backend_ops guard_ops = {
    "cpu-guarded", g_destroy, g_supports, g_alloc, g_release, g_upload, g_download, g_zero,
    g_fwd, g_bwd, g_sync, g_mem_info, 16, g_peak, g_prim, g_sort_scratch, g_sort, g_upload_async, g_wait_uploads,
    NULL,
};

sal_status sal_backend_cpu_guarded_create(int threads, sal_backend **out, sal_error *err) {
    *out = NULL;
    sal_backend *b = calloc(1, sizeof *b);
    guard *g = calloc(1, sizeof *g);
    if (!b || !g) { free(b); free(g); return sal_fail(err, SAL_ERR_NOMEM, "out of memory creating the guarded CPU backend"); }
    sal_status st = sal_backend_cpu_create(threads, &g->cpu, err);
    if (st) { free(b); free(g); return st; }
    b->ops = &guard_ops;
    b->impl = g;
    b->threads = g->cpu->threads;
    b->host_memory = 0;
    b->fuse_conv_act = g->cpu->fuse_conv_act;
    b->fuse_add_act = g->cpu->fuse_add_act;
    b->grad_set = g->cpu->grad_set;
    b->incremental = g->cpu->incremental;
    *out = b;
    return SAL_OK;
}
