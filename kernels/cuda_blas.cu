// cuda_blas.cu — the small kernels around cuBLAS and cuDNN: Gemm's C operand broadcast into Y, and
// its gradient summed back over C's broadcast dims (one thread per element of C, gathering:
// deterministic; matches sal_cpu_gemm_fwd/_bwd in host/backend/cpu/cpu_nn.c), and random operands
// for timing. (Convolutions with asymmetric pads use the twin Pad: sal_tw_pad_nchw_args.)
#include <cuda_runtime.h>
#include <stdint.h>

// y (M, N) = beta * C[i*s0 + j*s1]
__global__ void sal_gemm_fill_c_kernel(float *y, const float *c, int64_t M, int64_t N, int64_t s0,
                                       int64_t s1, float beta) {
    int64_t t = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= M * N) return;
    int64_t i = t / N, j = t % N;
    y[t] = beta * c[i * s0 + j * s1];
}

// gc[i0*s0 + j0*s1] += beta * sum over the (i, j) that read it of g[i*N + j]
__global__ void sal_gemm_grad_c_kernel(float *gc, const float *g, int64_t M, int64_t N, int64_t s0,
                                       int64_t s1, float beta) {
    int64_t cm = s0 ? M : 1, cn = s1 ? N : 1;
    int64_t t = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= cm * cn) return;
    int64_t i0 = t / cn, j0 = t % cn;
    int64_t ib = s0 ? i0 : 0, ie = s0 ? i0 + 1 : M, jb = s1 ? j0 : 0, je = s1 ? j0 + 1 : N;
    float acc = gc[i0 * s0 + j0 * s1];
    for (int64_t i = ib; i < ie; i++)
        for (int64_t j = jb; j < je; j++) acc += beta * g[i * N + j];
    gc[i0 * s0 + j0 * s1] = acc;
}

extern "C" int sal_cuda_gemm_fill_c(float *y, const float *c, int64_t M, int64_t N, int64_t s0,
                                    int64_t s1, float beta, cudaStream_t s) {
    int64_t n = M * N;
    if (n == 0) return 0;
    sal_gemm_fill_c_kernel<<<(unsigned)((n + 255) / 256), 256, 0, s>>>(y, c, M, N, s0, s1, beta);
    return (int)cudaGetLastError();
}

extern "C" int sal_cuda_gemm_grad_c(float *gc, const float *g, int64_t M, int64_t N, int64_t s0,
                                    int64_t s1, float beta, cudaStream_t s) {
    int64_t n = (s0 ? M : 1) * (s1 ? N : 1);
    if (n == 0) return 0;
    sal_gemm_grad_c_kernel<<<(unsigned)((n + 255) / 256), 256, 0, s>>>(gc, g, M, N, s0, s1, beta);
    return (int)cudaGetLastError();
}

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
