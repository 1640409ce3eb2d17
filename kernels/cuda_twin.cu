// cuda_twin.cu — the device launcher of the twin element functions (kernels/twin.h): one kernel per
// element function, one thread per element, launched on the backend's stream in plan order. The
// same functions run on the host in host/backend/twin/twin.c, where the tests check them.
#include <cuda_runtime.h>

extern "C" {
#include "twin_all.h"
}

#include "cuda_launch.cuh"

#define SAL_TW_KERNEL(name) SAL_CUDA_ELEM_KERNEL(sal_twk_, sal_tw_, sal_tw_args, name)
SAL_TW_ELEM_FUNCS(SAL_TW_KERNEL)
SAL_TW_NN_FUNCS(SAL_TW_KERNEL)
SAL_TW_MATH_FUNCS(SAL_TW_KERNEL)
SAL_TW_INDEX_FUNCS(SAL_TW_KERNEL)
#undef SAL_TW_KERNEL

#define SAL_TW_ENTRY(name) {sal_twk_##name, #name},
static const sal_cuda_entry<sal_tw_args> twk_table[SAL_TW_NFUNCS] = {
    SAL_TW_ELEM_FUNCS(SAL_TW_ENTRY) SAL_TW_NN_FUNCS(SAL_TW_ENTRY)
    SAL_TW_MATH_FUNCS(SAL_TW_ENTRY) SAL_TW_INDEX_FUNCS(SAL_TW_ENTRY)};
#undef SAL_TW_ENTRY

// One launch of element function fn over count elements on stream s, asynchronously; node, op and
// pass name the caller in an error (sal_cuda_launch_checked).
extern "C" sal_status sal_cuda_twin_launch(int fn, int64_t count, const sal_tw_args *a, cudaStream_t s,
                                           const char *node, const char *op, const char *pass, sal_error *err) {
    return sal_cuda_launch_checked(twk_table, SAL_TW_NFUNCS, fn, count, *a, s, node, op, pass, err);
}

// One launch of a node's pass as a kernel on the stream (ctx).
static sal_status launch_on_stream(void *ctx, const sal_op_call *c, int backward, const sal_tw_launch *l,
                                   const sal_tw_args *a, sal_error *err) {
    return sal_cuda_twin_launch(l->fn, l->count, a, (cudaStream_t)ctx, c->node->name, c->node->op_type,
                                backward ? "backward" : "forward", err);
}

// Every launch of the pass, in plan order, on stream s.
extern "C" sal_status sal_cuda_twin_run(const sal_op_call *c, int backward, cudaStream_t s,
                                        sal_error *err) {
    return sal_tw_each_launch(c, backward, launch_on_stream, (void *)s, err);
}
