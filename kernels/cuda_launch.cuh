// cuda_launch.cuh — what the element-function launchers (cuda_twin.cu: model-op twins,
// cuda_methods.cu: method and post-processing primitives) share: the kernel that maps an element
// function f(i, &args) over i < n, one thread per element, its name table entry, and the launch
// with its grid-size check. One body, one launcher shape.
#ifndef SAL_CUDA_LAUNCH_CUH
#define SAL_CUDA_LAUNCH_CUH

#include <cuda_runtime.h>
#include <stdint.h>
#include <stdio.h>

#define SAL_CUDA_THREADS 256

// Kernel KPFX##name running element function FPFX##name(i, &a) with arguments of type ARGS.
#define SAL_CUDA_ELEM_KERNEL(KPFX, FPFX, ARGS, name)                                               \
    __global__ void __launch_bounds__(SAL_CUDA_THREADS) KPFX##name(int64_t n, ARGS a) {            \
        int64_t i = (int64_t)blockIdx.x * SAL_CUDA_THREADS + threadIdx.x;                          \
        if (i < n) FPFX##name(i, &a);                                                              \
    }

template <class A> struct sal_cuda_entry {
    void (*fn)(int64_t, A);
    const char *name;
};

// Launch e over n elements on stream s: cudaSuccess, cudaErrorInvalidConfiguration when n needs
// more than 2^31 - 1 blocks, or the launch's error.
template <class A>
static cudaError_t sal_cuda_elem_launch(const sal_cuda_entry<A> &e, int64_t n, const A &a, cudaStream_t s) {
    if (n <= 0) return cudaSuccess;
    int64_t blocks = (n + SAL_CUDA_THREADS - 1) / SAL_CUDA_THREADS;
    if (blocks > 2147483647LL) return cudaErrorInvalidConfiguration;
    e.fn<<<(unsigned)blocks, SAL_CUDA_THREADS, 0, s>>>(n, a);
    return cudaGetLastError();
}

// Launch table[fn] (one of nfn) over count elements on stream s. A failure is told as "<who>:
// launching kernel <name> (<count> elements): <CUDA's message>", who being "node 'N' (op pass)"
// for a node's pass, or N alone (op NULL) for the backend's own use. The message is formatted
// only then: launches are the hot path. Needs sal_fail (ops/ops.h) included before.
template <class A>
static sal_status sal_cuda_launch_checked(const sal_cuda_entry<A> *table, int nfn, int fn, int64_t count,
                                          const A &a, cudaStream_t s, const char *node, const char *op,
                                          const char *pass, sal_error *err) {
    char who[320];
    cudaError_t e = cudaSuccess;
    if (fn >= 0 && fn < nfn && count >= 0 && (e = sal_cuda_elem_launch(table[fn], count, a, s)) == cudaSuccess)
        return SAL_OK;
    if (op) snprintf(who, sizeof who, "node '%s' (%s %s)", node, op, pass);
    else snprintf(who, sizeof who, "%s", node);
    if (fn < 0 || fn >= nfn || count < 0)
        return sal_fail(err, SAL_ERR_INTERNAL, "%s: kernel %d (%lld elements) does not exist", who, fn, (long long)count);
    return sal_fail(err, e == cudaErrorInvalidConfiguration ? SAL_ERR_UNSUPPORTED : SAL_ERR_DEVICE,
                    "%s: launching kernel %s (%lld elements): %s", who, table[fn].name, (long long)count,
                    cudaGetErrorString(e));
}

#endif
