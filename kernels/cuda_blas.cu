// cuda_blas.cu — random operands for timing cuBLAS (cu_peak_gflops). Gemm's C operand runs as twin
// kernels (kernels/twin_nn.h: gemmc_*), convolutions with asymmetric pads as the twin Pad.
#include <cuda_runtime.h>
#include <stdint.h>

// Uniform [-0.5, 0.5) pseudo-random floats (a hash of the index and seed): operands for timing.
__global__ void sal_fill_random_kernel(float *x, int64_t n, unsigned seed) {
    int64_t t = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= n) return;
    unsigned long long h = (unsigned long long)t * 0x9e3779b97f4a7c15ULL + seed;
    h ^= h >> 33; h *= 0xff51afd7ed558ccdULL; h ^= h >> 33;
    x[t] = (float)((h >> 40) * (1.0 / 16777216.0)) - 0.5f;
}

extern "C" int sal_cuda_fill_random(float *x, int64_t n, unsigned seed, cudaStream_t s) {
    if (n == 0) return 0;
    sal_fill_random_kernel<<<(unsigned)((n + 255) / 256), 256, 0, s>>>(x, n, seed);
    return (int)cudaGetLastError();
}
