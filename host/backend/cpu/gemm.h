/* gemm.h — the CPU backend's matrix product: row-major single-precision GEMM,
 * C = alpha * op(A) * op(B) + beta * C, through oneDNN's dnnl_sgemm (see README, "CPU math
 * library", for the measurement behind the choice). Threads: oneDNN's OpenMP pool, the same
 * pool as salient's own kernels. Call it outside OpenMP parallel regions. Which product keeps an
 * image's result independent of its batch: gemm.c. */
#ifndef SAL_GEMM_H
#define SAL_GEMM_H

#include <stdint.h>

void sal_sgemm(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, float alpha,
               const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c,
               int64_t ldc);
/* The same product computed in chunks of exactly `width` columns (the last padded with zeros), for
 * a batch that runs along the columns of C: a column's value then depends only on m, k, width and
 * its own data, not on n nor on its place (gemm.c). */
void sal_sgemm_cols(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                    const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c,
                    int64_t ldc, int64_t width);
/* Chunk width for Gemm/MatMul rows (images, or a transformer's tokens) */
#define SAL_GEMM_ROWS_CHUNK 16
/* The same product for a batch that runs along the rows of C (Gemm, MatMul): computed as C^T in
 * chunks (sal_sgemm_cols), so that a row's value does not depend on how many rows there are. */
void sal_sgemm_rows(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                    const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c,
                    int64_t ldc);

#endif
