/* backend.h — the backend interface: a table of function pointers that the engine drives.
 *
 * A backend owns memory (alloc/free/upload/download) and runs nodes forward and backward given a
 * sal_op_call (see ops/ops.h). The CPU backend (backend/cpu) is the specification; the CUDA
 * backend (backend/cuda) must match it. The engine never looks inside a backend's pointers.
 */
#ifndef SAL_BACKEND_H
#define SAL_BACKEND_H

#include "../ops/ops.h"

typedef struct sal_backend sal_backend;
struct sal_mp_args;   /* kernels/method_prims.h */

typedef struct sal_backend_ops {
    const char *name;                                         /* "cpu", "cuda" */
    void (*destroy)(sal_backend *b);
    int (*supports)(sal_backend *b, const sal_node *node);    /* forward and backward */
    void *(*alloc)(sal_backend *b, size_t bytes);             /* NULL on failure */
    void (*release)(sal_backend *b, void *p);
    /* copies that are over for the caller on return; a failure names the failing call in err */
    sal_status (*upload)(sal_backend *b, void *dst, const void *src, size_t bytes, sal_error *err);
    sal_status (*download)(sal_backend *b, void *dst, const void *src, size_t bytes, sal_error *err);
    sal_status (*zero)(sal_backend *b, void *dst, size_t bytes, sal_error *err);
    sal_status (*forward)(sal_backend *b, const sal_op_call *call, sal_error *err);
    sal_status (*backward)(sal_backend *b, const sal_op_call *call, sal_error *err);
    sal_status (*sync)(sal_backend *b, sal_error *err);
    /* memory this backend can still allocate, and its total (host RAM, or the GPU's memory) */
    sal_status (*mem_info)(sal_backend *b, size_t *avail, size_t *total);
    int max_batch;   /* the largest internal batch worth using (more stops paying off) */
    /* measured FP32 GEMM rate: square SGEMMs of side n (0: the backend's default size) */
    sal_status (*peak_gflops)(sal_backend *b, int n, double *gflops, sal_error *err);
    /* one method primitive (kernels/method_prims.h): element function fn (SAL_MP_<name>) for
     * i in [0, count) on this backend's memory, queued in order with the passes */
    sal_status (*prim)(sal_backend *b, int fn, int64_t count, const struct sal_mp_args *a, sal_error *err);
    /* sort n floats of this backend's memory in place, ascending, NaNs last, using scratch (this
     * backend's memory) of at least sort_scratch(n) bytes (NULL when that is 0) */
    size_t (*sort_scratch)(sal_backend *b, int64_t n);
    sal_status (*sort)(sal_backend *b, float *data, int64_t n, void *scratch, sal_error *err);
    /* upload that may overlap the compute already queued: returns once src has been read (the
     * copy may still be in flight); dst must not be in use by queued work. wait_uploads orders
     * the work queued after it behind every such upload (without blocking the host). */
    sal_status (*upload_async)(sal_backend *b, void *dst, const void *src, size_t bytes, sal_error *err);
    sal_status (*wait_uploads)(sal_backend *b, sal_error *err);
    /* 1 when this backend's Conv kernel takes convolution p with channels-last activations
     * (p->nhwc_x / nhwc_y: engine/layout_pass.c); NULL: never */
    int (*conv_nhwc)(sal_backend *b, const sal_conv_params *p);
} sal_backend_ops;

struct sal_backend {
    const sal_backend_ops *ops;
    int threads;
    int host_memory;   /* pointers are host memory: constants are used in place, not uploaded */
    int fuse_conv_act; /* its Conv kernels apply sal_conv_params.act (the engine may fuse) */
    int fuse_add_act;  /* its Add kernel applies sal_bcast_params.act to same-shape sums (the
                          engine may fuse a ResNet block's closing Relu into its residual Add) */
    int layout_nhwc;   /* the engine runs its layout pass (engine/layout_pass.c) in forward and
                          gradient plans: activations between convolutions that ops->conv_nhwc
                          accepts are held channels-last (the CPU under SAL_CONV_IMPL_LAYOUT; CUDA
                          never) */
    int grad_set;      /* its backward honours sal_op_call.gin_set (writes a gradient's first
                          contribution): the engine then zeroes only the gradients no step writes
                          first, not the whole gradient arena before each pass */
    int incremental;   /* incremental inference (engine/incremental.h) is enabled on it: its Conv
                          and pooling kernels take any tile shape the planner's infer accepts; 0
                          (CUDA for now: its descriptor cache keys a Conv by node and input
                          shape, not by the tile's padding) makes callers recompute whole passes */
    void *impl;
    /* bytes copied through sal_backend_upload / _upload_async and sal_backend_download (host
     * memory copies on the CPU): what crosses the bus on a GPU */
    uint64_t bytes_up, bytes_down;
};

/* Copies between host and backend memory, counted here (bytes_up, bytes_down) rather than in every
 * backend: callers go through these, not through the ops. */
static inline sal_status sal_backend_upload(sal_backend *b, void *dst, const void *src, size_t bytes, sal_error *err) {
    b->bytes_up += bytes;
    return b->ops->upload(b, dst, src, bytes, err);
}
static inline sal_status sal_backend_upload_async(sal_backend *b, void *dst, const void *src, size_t bytes,
                                                  sal_error *err) {
    b->bytes_up += bytes;
    return b->ops->upload_async(b, dst, src, bytes, err);
}
static inline sal_status sal_backend_download(sal_backend *b, void *dst, const void *src, size_t bytes, sal_error *err) {
    b->bytes_down += bytes;
    return b->ops->download(b, dst, src, bytes, err);
}

/* CPU backend: threads 0 = sal_cpu_default_threads() (the CPUs this process may use). */
sal_status sal_backend_cpu_create(int threads, sal_backend **out, sal_error *err);

/* Which convolution implementation a CPU backend uses: SAL_CONV_IMPL_AUTO (per node by shape),
 * _GEMM (cpu_nn.c's kernels only), _DNNL (oneDNN's primitives wherever they apply) or _LAYOUT
 * (AUTO plus the engine's channels-last layout pass); backend/cpu/cpu_conv_dnnl.h. Tests and
 * benchmarks force each path with it; plans made before a change keep their layouts. No effect
 * on other backends. */
void sal_backend_cpu_set_conv_impl(sal_backend *b, int impl);
/* 3x3 stride-1 convolutions on channels-last activations by Winograd's F(2x2, 3x3) (the default,
 * 1) or through oneDNN's direct kernels (0); host/backend/cpu/cpu_conv_wino.c. */
void sal_backend_cpu_set_winograd(sal_backend *b, int on);

/* The CPU backend dressed as a device, for tests (backend/cpu/cpu_guard.c): host_memory 0, and
 * its memory unreadable to the host outside its own operations. */
sal_status sal_backend_cpu_guarded_create(int threads, sal_backend **out, sal_error *err);

/* CUDA backend, when built (SAL_HAVE_CUDA). *note receives why it could not start. */
int sal_backend_cuda_built(void);
sal_status sal_backend_cuda_create(sal_backend **out, sal_error *err);

/* CPU kernels, also used by the constant folder on host data. */
sal_status sal_cpu_forward(const sal_op_call *call, sal_error *err);
sal_status sal_cpu_backward(const sal_op_call *call, sal_error *err);
int sal_cpu_supports(const sal_node *node);

#endif /* SAL_BACKEND_H */
