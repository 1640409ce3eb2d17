/* cuda_backend.c — the host side of the CUDA backend (built when nvcc is found).
 *
 * Status: device detection and a probe kernel only. The cuDNN/cuBLAS op kernels and method
 * primitives are the subject of their own issue; until they exist, creating the backend reports
 * that, and --device auto falls back to the CPU with a one-line note. */
#include <cuda_runtime.h>
#include <stdio.h>

#include "../backend.h"

int sal_cuda_probe_launch(void);

int sal_backend_cuda_built(void) { return 1; }

sal_status sal_backend_cuda_create(sal_backend **out, sal_error *err) {
    *out = NULL;
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess || count == 0)
        return sal_fail(err, SAL_ERR_DEVICE, "no CUDA device found (%s)",
                        e != cudaSuccess ? cudaGetErrorString(e) : "device count is 0");
    if (sal_cuda_probe_launch() != 0)
        return sal_fail(err, SAL_ERR_DEVICE, "the CUDA device cannot run this build's kernels "
                        "(built for sm_80/sm_90?)");
    return sal_fail(err, SAL_ERR_UNSUPPORTED, "the CUDA backend's op kernels are not implemented "
                    "yet");
}
