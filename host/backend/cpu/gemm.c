/* gemm.c — sal_sgemm over oneDNN (libdnnl), with results that do not depend on the batch size.
 *
 * dnnl_sgemm's value of one element of C depends on the matrix shape beyond its own row and
 * column, and how depends on the instruction set it dispatches to (oneDNN 2.6):
 *   - AVX-512: a single column (n = 1) takes a matrix-vector kernel whose sums differ in the last
 *     bits from the GEMM kernel's; the rows of C computed for m rows differ from those for another
 *     m (52 of 65 row counts from 3 to 67 changed row 0); no column count from 2 to 67 changed
 *     column 0.
 *   - AVX2 (measured on an AMD EPYC without AVX-512): columns change with the column count too:
 *     for m = 1000, k = 1152, every n from 2 to 64 gave column 0 other bits than n = 67; for
 *     m = 128, n <= 8 differed from n >= 9. Within one shape (m, n, k), a column's value does not
 *     depend on its position (checked for n = 16 and 64, every position, 84 shapes).
 * So where a batch runs along the columns of a product, sal_sgemm_cols computes them in chunks of
 * exactly `width` columns (the last one padded with zeros): every chunk has the same shape, and a
 * column's value depends only on (m, k, width) and its own data. Callers whose batch runs along
 * the rows (Gemm and MatMul: images are rows of X) use sal_sgemm_rows, which computes C^T in such
 * chunks. Products whose shape does not follow the batch (a convolution's per-image GEMM) use
 * sal_sgemm: a lone column is run as two there (the GEMM kernel rather than AVX-512's
 * matrix-vector one). Convolutions never gather several images into one GEMM (cpu_nn.c). Then an
 * image's result is the same at batch 1, 8 or 32 (tests/test_batch_repro.c). Chunking costs:
 * measured on ResNet-50's convolution GEMMs (2 threads, AVX2), chunks of 64 columns for every
 * product took 126 ms of CPU against 103 ms whole, hence only where the batch is in the shape. */
#include "gemm.h"

#include <stdlib.h>
#include <string.h>

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

void sal_sgemm_cols(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                    const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c,
                    int64_t ldc, int64_t width) {
    if (m <= 0 || n <= 0) return;
    if (k <= 0 || width < 2) {
        sal_sgemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        return;
    }
    /* every chunk through the same buffers, whatever its place: op(B)'s chunk (k, width) stored
     * as B is (row-major (k, width), or (width, k) read transposed), C's chunk (m, width) */
    float *bw = malloc(sizeof(float) * (size_t)k * (size_t)width);
    float *cw = malloc(sizeof(float) * (size_t)m * (size_t)width);
    if (!bw || !cw) {   /* no memory: whole (right, but columns depend on n) */
        free(bw);
        free(cw);
        sal_sgemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        return;
    }
    for (int64_t j0 = 0; j0 < n; j0 += width) {
        const int64_t w = n - j0 < width ? n - j0 : width;
        if (trans_b) {   /* B (n, k): rows j0 .. j0+w */
            for (int64_t j = 0; j < width; j++)
                if (j < w) memcpy(bw + j * k, b + (j0 + j) * ldb, sizeof(float) * (size_t)k);
                else memset(bw + j * k, 0, sizeof(float) * (size_t)k);
        } else {         /* B (k, n): columns j0 .. j0+w of every row */
            for (int64_t q = 0; q < k; q++) {
                memcpy(bw + q * width, b + q * ldb + j0, sizeof(float) * (size_t)w);
                if (w < width) memset(bw + q * width + w, 0, sizeof(float) * (size_t)(width - w));
            }
        }
        for (int64_t i = 0; i < m; i++) {
            float *ci = cw + i * width;
            if (beta == 0.f) memset(ci, 0, sizeof(float) * (size_t)width);
            else {
                memcpy(ci, c + i * ldc + j0, sizeof(float) * (size_t)w);
                if (w < width) memset(ci + w, 0, sizeof(float) * (size_t)(width - w));
            }
        }
        dnnl_sgemm(trans_a ? 'T' : 'N', trans_b ? 'T' : 'N', m, width, k, alpha, a, lda, bw,
                   trans_b ? k : width, beta, cw, width);
        for (int64_t i = 0; i < m; i++) memcpy(c + i * ldc + j0, cw + i * width, sizeof(float) * (size_t)w);
    }
    free(bw);
    free(cw);
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
    /* C^T (n, m) = op(B)^T (n, k) op(A)^T (k, m): op(B)^T is B read with the other transpose; the
     * batch (C's rows) runs along C^T's columns, in fixed chunks */
    sal_sgemm_cols(!trans_b, !trans_a, n, m, k, alpha, b, ldb, a, lda, beta, ct, m, SAL_GEMM_ROWS_CHUNK);
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) c[i * ldc + j] = ct[j * m + i];
    free(ct);
}
