/* blas_drive.h — Gemm and MatMul written once, over a backend's matrix product.
 *
 * The transposes, leading dimensions, batch folding, strided batches, broadcast batch offsets and
 * Gemm's C operand (forward and gradient) of every backend come from blas_drive.c; a backend
 * supplies only the row-major product (oneDNN's sgemm on the CPU, cuBLAS on CUDA, which flips it
 * to column-major), the twin launch for Gemm's C (kernels/twin_nn.h: gemmc_*) and a zero fill.
 * So the CPU tests (tests/test_ops_nn.c, ONNX's Gemm conformance data) check the very arguments
 * the CUDA backend hands cuBLAS. */
#ifndef SAL_BLAS_DRIVE_H
#define SAL_BLAS_DRIVE_H

#include "../ops/ops.h"

struct sal_tw_args;

typedef struct sal_blas {
    void *ctx;
    /* count row-major products C_i (M, N) = alpha op(A_i) op(B_i) + beta C_i, i in [0, count),
     * with A_i = A + i * sa (likewise B, C); M, N, K > 0 */
    sal_status (*gemm)(void *ctx, const char *nm, int ta, int tb, int64_t M, int64_t N, int64_t K,
                       float alpha, const float *A, int64_t lda, int64_t sa, const float *B, int64_t ldb,
                       int64_t sb, float beta, float *C, int64_t ldc, int64_t sc, int64_t count,
                       sal_error *err);
    /* one twin launch: element function fn (SAL_TW_<name>) for i in [0, count) */
    sal_status (*twin)(void *ctx, const char *nm, int fn, int64_t count, const struct sal_tw_args *a,
                       sal_error *err);
    sal_status (*zero)(void *ctx, const char *nm, float *p, int64_t n, sal_error *err);
} sal_blas;

/* One Gemm or MatMul pass (forward, or backward: gradients ADDED to gin) of call c. */
sal_status sal_blas_gemm(const sal_blas *b, const sal_op_call *c, int backward, sal_error *err);
sal_status sal_blas_matmul(const sal_blas *b, const sal_op_call *c, int backward, sal_error *err);

#endif /* SAL_BLAS_DRIVE_H */
