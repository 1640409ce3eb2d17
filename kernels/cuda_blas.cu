// cuda_blas.cu — the small kernels around cuBLAS and cuDNN: Gemm's C operand broadcast into Y, and
// its gradient summed back over C's broadcast dims (one thread per element of C, gathering:
// deterministic; matches sal_cpu_gemm_fwd/_bwd in host/backend/cpu/cpu_nn.c); and the zero-padded
// copy / interior gradient of convolutions with asymmetric pads.
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

// Convolutions with asymmetric pads (cuDNN's legacy descriptor pads symmetrically): the input is
// copied into a zero-padded buffer xp (planes, hp, wp) with the image at (pt, pl), and the
// gradient of that buffer's interior is added back. One thread per element written.
__global__ void sal_pad_copy_kernel(float *xp, const float *x, int64_t planes, int64_t h, int64_t w,
                                    int64_t hp, int64_t wp, int64_t pt, int64_t pl) {
    int64_t t = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= planes * hp * wp) return;
    int64_t q = t / (hp * wp), r = t % (hp * wp), y = r / wp - pt, xx = r % wp - pl;
    xp[t] = (y >= 0 && y < h && xx >= 0 && xx < w) ? x[(q * h + y) * w + xx] : 0.f;
}

__global__ void sal_crop_add_kernel(float *gx, const float *gxp, int64_t planes, int64_t h, int64_t w,
                                    int64_t hp, int64_t wp, int64_t pt, int64_t pl) {
    int64_t t = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= planes * h * w) return;
    int64_t q = t / (h * w), r = t % (h * w), y = r / w, xx = r % w;
    gx[t] += gxp[(q * hp + y + pt) * wp + xx + pl];
}

extern "C" int sal_cuda_pad_copy(float *xp, const float *x, int64_t planes, int64_t h, int64_t w,
                                 int64_t hp, int64_t wp, int64_t pt, int64_t pl, cudaStream_t s) {
    int64_t n = planes * hp * wp;
    if (n == 0) return 0;
    sal_pad_copy_kernel<<<(unsigned)((n + 255) / 256), 256, 0, s>>>(xp, x, planes, h, w, hp, wp, pt, pl);
    return (int)cudaGetLastError();
}

extern "C" int sal_cuda_crop_add(float *gx, const float *gxp, int64_t planes, int64_t h, int64_t w,
                                 int64_t hp, int64_t wp, int64_t pt, int64_t pl, cudaStream_t s) {
    int64_t n = planes * h * w;
    if (n == 0) return 0;
    sal_crop_add_kernel<<<(unsigned)((n + 255) / 256), 256, 0, s>>>(gx, gxp, planes, h, w, hp, wp, pt, pl);
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
