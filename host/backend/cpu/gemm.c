/* gemm.c — sal_sgemm over oneDNN (libdnnl), with results that do not depend on the batch size.
 *
 * dnnl_sgemm's value of one element of C depends on the matrix shape beyond its own row and
 * column: a single column (n = 1) takes a matrix-vector kernel whose sums differ in the last bits
 * from the GEMM kernel's, and the rows of C computed for m rows differ from those for another m
 * (measured with oneDNN 2.6 on AVX-512: 52 of 65 row counts from 3 to 67 changed row 0, no column
 * count from 2 to 67 changed column 0, for every transpose combination). So a column is computed
 * the same way for any number of columns >= 2, and sal_sgemm runs one column as two; callers whose
 * batch runs along the rows (Gemm and MatMul: images are rows of X) use sal_sgemm_rows, which
 * computes C^T so that the rows become columns. Then an image's result is the same at batch 1, 8 or
 * 32 (tests/test_batch_repro.c). */
#include "gemm.h"

#include <stdlib.h>

#include <oneapi/dnnl/dnnl.h>

void sal_sgemm(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, float alpha,
               const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c,
               int64_t ldc) {
    if (m <= 0 || n <= 0) return;
    if (k <= 0) {   /* C = beta * C (dnnl_sgemm refuses K = 0) */
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < n; j++) c[i * ldc + j] = beta == 0.f ? 0.f : beta * c[i * ldc + j];
        return;
    }
    if (n == 1) {
        /* one column as two (the second zero): the GEMM kernel, as for more columns */
        /* op(B) (k, 2) stored as B is (same transpose: the kernels differ between them too):
         * (k, 2) row-major, or (2, k) read transposed */
        float *b2 = calloc(2 * (size_t)k, sizeof(float));
        float *c2 = malloc(sizeof(float) * 2 * (size_t)m);   /* (m, 2) */
        if (b2 && c2) {
            for (int64_t q = 0; q < k; q++) {
                if (trans_b) b2[q] = b[q];
                else b2[2 * q] = b[q * ldb];
            }
            for (int64_t i = 0; i < m; i++) {
                c2[2 * i] = beta == 0.f ? 0.f : c[i * ldc];
                c2[2 * i + 1] = 0.f;
            }
            dnnl_sgemm(trans_a ? 'T' : 'N', trans_b ? 'T' : 'N', m, 2, k, alpha, a, lda, b2, trans_b ? k : 2, beta, c2, 2);
            for (int64_t i = 0; i < m; i++) c[i * ldc] = c2[2 * i];
            free(b2);
            free(c2);
            return;
        }
        free(b2);   /* no memory: the matrix-vector kernel (right, but not batch-independent) */
        free(c2);
    }
    dnnl_sgemm(trans_a ? 'T' : 'N', trans_b ? 'T' : 'N', m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

void sal_sgemm_rows(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                    const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c,
                    int64_t ldc) {
    if (m <= 0 || n <= 0) return;
    float *ct = malloc(sizeof(float) * (size_t)m * (size_t)n);   /* C^T (n, m) */
    if (!ct) {   /* no memory: straight (right, but rows depend on m) */
        sal_sgemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        return;
    }
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) ct[j * m + i] = beta == 0.f ? 0.f : c[i * ldc + j];
    /* C^T (n, m) = op(B)^T (n, k) op(A)^T (k, m): op(B)^T is B read with the other transpose */
    sal_sgemm(!trans_b, !trans_a, n, m, k, alpha, b, ldb, a, lda, beta, ct, m);
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) c[i * ldc + j] = ct[j * m + i];
    free(ct);
}
