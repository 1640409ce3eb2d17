// cuda_twin.cu — the device launcher of the twin element functions (kernels/twin.h): one kernel per
// element function, one thread per element, launched on the backend's stream in plan order. The
// same functions run on the host in host/backend/twin/twin.c, where the tests check them.
#include <cuda_runtime.h>

extern "C" {
#include "twin_all.h"
}

#define SAL_TW_THREADS 256

#define SAL_TW_KERNEL(name)                                                                        \
    __global__ void __launch_bounds__(SAL_TW_THREADS) sal_twk_##name(int64_t n, sal_tw_args a) {   \
        int64_t i = (int64_t)blockIdx.x * SAL_TW_THREADS + threadIdx.x;                            \
        if (i < n) sal_tw_##name(i, &a);                                                           \
    }
SAL_TW_ELEM_FUNCS(SAL_TW_KERNEL)
SAL_TW_NN_FUNCS(SAL_TW_KERNEL)
#undef SAL_TW_KERNEL

typedef void (*sal_twk_fn)(int64_t, sal_tw_args);
struct sal_twk_entry { sal_twk_fn fn; const char *name; };

#define SAL_TW_ENTRY(name) {sal_twk_##name, #name},
static const sal_twk_entry twk_table[SAL_TW_NFUNCS + 1] = {
    SAL_TW_ELEM_FUNCS(SAL_TW_ENTRY) SAL_TW_NN_FUNCS(SAL_TW_ENTRY) {nullptr, "end"}};
#undef SAL_TW_ENTRY

// One launch as a kernel on the stream (ctx), asynchronously; a failed launch names the node and kernel.
static sal_status launch_on_stream(void *ctx, const sal_op_call *c, int backward, const sal_tw_launch *l,
                                   const sal_tw_args *a, sal_error *err) {
    int64_t blocks = (l->count + SAL_TW_THREADS - 1) / SAL_TW_THREADS;
    if (blocks > 2147483647LL)
        return sal_fail(err, SAL_ERR_UNSUPPORTED, "node '%s': %lld elements in one launch of %s",
                        c->node->name, (long long)l->count, twk_table[l->fn].name);
    twk_table[l->fn].fn<<<(unsigned)blocks, SAL_TW_THREADS, 0, (cudaStream_t)ctx>>>(l->count, *a);
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess)
        return sal_fail(err, SAL_ERR_DEVICE, "node '%s' (%s %s): launching kernel %s: %s", c->node->name,
                        c->node->op_type, backward ? "backward" : "forward", twk_table[l->fn].name,
                        cudaGetErrorString(e));
    return SAL_OK;
}

// Every launch of the pass, in plan order, on stream s.
extern "C" sal_status sal_cuda_twin_run(const sal_op_call *c, int backward, cudaStream_t s,
                                        sal_error *err) {
    return sal_tw_each_launch(c, backward, launch_on_stream, (void *)s, err);
}
