// cuda_methods.cu — the device launcher of the method primitives (kernels/method_prims.h): one
// kernel per element function, one thread per element, queued on the backend's stream in call
// order. The CPU backend runs the same functions in a host loop (host/backend/cpu/cpu_backend.c).
#include <cub/device/device_radix_sort.cuh>
#include <cuda_runtime.h>

extern "C" {
#include "ops/ops.h"
}
#include "method_prims.h"   // static inline functions only (Random123 needs C++ linkage under nvcc)

#include "cuda_launch.cuh"

#define SAL_MP_KERNEL(name) SAL_CUDA_ELEM_KERNEL(sal_mpk_, sal_mp_, sal_mp_args, name)
SAL_MP_FUNCS(SAL_MP_KERNEL)
#undef SAL_MP_KERNEL

#define SAL_MP_ENTRY(name) {sal_mpk_##name, #name},
static const sal_cuda_entry<sal_mp_args> mpk_table[SAL_MP_NFUNCS] = {SAL_MP_FUNCS(SAL_MP_ENTRY)};
#undef SAL_MP_ENTRY

extern "C" sal_status sal_cuda_prim(int fn, int64_t count, const sal_mp_args *a, cudaStream_t s,
                                    sal_error *err) {
    return sal_cuda_launch_checked(mpk_table, SAL_MP_NFUNCS, fn, count, *a, s, "method primitive", NULL, NULL, err);
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
