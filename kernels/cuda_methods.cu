// cuda_methods.cu — the device launcher of the method primitives (kernels/method_prims.h): one
// kernel per element function, one thread per element, queued on the backend's stream in call
// order. The CPU backend runs the same functions in a host loop (host/backend/cpu/cpu_backend.c).
#include <cub/device/device_radix_sort.cuh>
#include <cuda_runtime.h>

extern "C" {
#include "ops/ops.h"
}
#include "method_prims.h"   // static inline functions only (Random123 needs C++ linkage under nvcc)

#define SAL_MP_THREADS 256

#define SAL_MP_KERNEL(name)                                                                        \
    __global__ void __launch_bounds__(SAL_MP_THREADS) sal_mpk_##name(int64_t n, sal_mp_args a) {   \
        int64_t i = (int64_t)blockIdx.x * SAL_MP_THREADS + threadIdx.x;                            \
        if (i < n) sal_mp_##name(i, &a);                                                           \
    }
SAL_MP_FUNCS(SAL_MP_KERNEL)
#undef SAL_MP_KERNEL

typedef void (*sal_mpk_fn)(int64_t, sal_mp_args);
struct sal_mpk_entry { sal_mpk_fn fn; const char *name; };

#define SAL_MP_ENTRY(name) {sal_mpk_##name, #name},
static const sal_mpk_entry mpk_table[SAL_MP_NFUNCS + 1] = {SAL_MP_FUNCS(SAL_MP_ENTRY) {nullptr, "end"}};
#undef SAL_MP_ENTRY

extern "C" sal_status sal_cuda_prim(int fn, int64_t count, const sal_mp_args *a, cudaStream_t s,
                                    sal_error *err) {
    if (fn < 0 || fn >= SAL_MP_NFUNCS || count < 0)
        return sal_fail(err, SAL_ERR_INTERNAL, "method primitive %d (count %lld) does not exist", fn,
                        (long long)count);
    if (count == 0) return SAL_OK;
    int64_t blocks = (count + SAL_MP_THREADS - 1) / SAL_MP_THREADS;
    if (blocks > 2147483647LL)
        return sal_fail(err, SAL_ERR_UNSUPPORTED, "method kernel %s: %lld elements in one launch",
                        mpk_table[fn].name, (long long)count);
    mpk_table[fn].fn<<<(unsigned)blocks, SAL_MP_THREADS, 0, s>>>(count, *a);
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess)
        return sal_fail(err, SAL_ERR_DEVICE, "launching method kernel %s (%lld elements): %s",
                        mpk_table[fn].name, (long long)count, cudaGetErrorString(e));
    return SAL_OK;
}

// Ascending sort of n floats in place (CUB radix sort from a copy: CUB does not sort in place).
// CUB orders floats by their bits with the sign flipped, so a positive NaN sorts after +inf:
// callers write NaNs as the positive quiet NaN (sal_mp_sort_keys) to have them last, as the CPU
// backend's sort does. Scratch: the copy (rounded up to 256 bytes), then CUB's temporary storage.
static size_t sort_copy_bytes(int64_t n) { return (sizeof(float) * (size_t)n + 255) & ~(size_t)255; }

extern "C" size_t sal_cuda_sort_scratch(int64_t n) {
    if (n < 2 || n > 2147483647LL) return 0;
    size_t temp = 0;
    if (cub::DeviceRadixSort::SortKeys(nullptr, temp, (const float *)nullptr, (float *)nullptr, (int)n, 0, 32) !=
        cudaSuccess)
        return 0;
    return sort_copy_bytes(n) + temp;
}

extern "C" sal_status sal_cuda_sort(float *data, int64_t n, void *scratch, cudaStream_t s, sal_error *err) {
    if (n < 2) return SAL_OK;
    if (n > 2147483647LL)
        return sal_fail(err, SAL_ERR_UNSUPPORTED, "sorting %lld values: more than 2^31", (long long)n);
    size_t temp = 0;
    cudaError_t e = cub::DeviceRadixSort::SortKeys(nullptr, temp, data, data, (int)n, 0, 32, s);
    if (e != cudaSuccess)
        return sal_fail(err, SAL_ERR_DEVICE, "cub::DeviceRadixSort::SortKeys (sizing): %s", cudaGetErrorString(e));
    if (!scratch) return sal_fail(err, SAL_ERR_INTERNAL, "sorting %lld values: no scratch buffer", (long long)n);
    float *copy = (float *)scratch;
    e = cudaMemcpyAsync(copy, data, sizeof(float) * (size_t)n, cudaMemcpyDeviceToDevice, s);
    if (e == cudaSuccess)
        e = cub::DeviceRadixSort::SortKeys((char *)scratch + sort_copy_bytes(n), temp, copy, data, (int)n, 0, 32, s);
    if (e != cudaSuccess)
        return sal_fail(err, SAL_ERR_DEVICE, "cub::DeviceRadixSort::SortKeys: %s", cudaGetErrorString(e));
    return SAL_OK;
}
