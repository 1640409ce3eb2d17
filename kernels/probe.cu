/* probe.cu — a one-thread kernel that proves the device runs code built for it (catches a
 * binary built for the wrong architecture before any real work). */
#include <cuda_runtime.h>

__global__ static void sal_probe_kernel(int *out) { *out = 0x5a17; }

extern "C" int sal_cuda_probe_launch(void) {
    int *d = NULL, h = 0;
    if (cudaMalloc((void **)&d, sizeof(int)) != cudaSuccess) return -1;
    sal_probe_kernel<<<1, 1>>>(d);
    cudaError_t e = cudaMemcpy(&h, d, sizeof(int), cudaMemcpyDeviceToHost);
    cudaFree(d);
    return e == cudaSuccess && h == 0x5a17 ? 0 : -2;
}
