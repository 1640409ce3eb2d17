/* blas_drive.c — Gemm and MatMul over a backend's matrix product (contract: blas_drive.h). */
#include <string.h>

#include "blas_drive.h"
#include "twin_all.h"

static sal_status one(const sal_blas *b, const char *nm, int ta, int tb, int64_t M, int64_t N, int64_t K,
                      float alpha, const float *A, int64_t lda, const float *B, int64_t ldb, float beta,
                      float *C, int64_t ldc, sal_error *err) {
    return b->gemm(b->ctx, nm, ta, tb, M, N, K, alpha, A, lda, 0, B, ldb, 0, beta, C, ldc, 0, 1, err);
}

static sal_status no_params(const sal_op_call *c, sal_error *err) {
    return sal_fail(err, SAL_ERR_INTERNAL, "node '%s' (%s): kernel called without parameters", c->node->name,
                    c->node->op_type);
}

/* ------------------------------------------------------------------------------------------------ */
/* Gemm: Y (M, N) = alpha * op(A) . op(B) + beta * C, op(A) (M, K), op(B) (K, N), C broadcast      */

static void gemmc_args(const sal_gemm_params *p, struct sal_tw_args *a) {
    memset(a, 0, sizeof *a);
    a->k0 = p->m;
    a->k1 = p->n;
    a->k2 = p->c.sb[0];
    a->k3 = p->c.sb[1];
    a->p.s.beta = p->beta;
}

static sal_status gemm_fwd(const sal_blas *b, const sal_op_call *c, sal_error *err) {
    const sal_gemm_params *p = c->params;
    const char *nm = c->node->name;
    const float *A = c->in[0], *B = c->in[1], *C = p->has_c && c->n_in > 2 ? c->in[2] : NULL;
    float *y = c->out[0];
    const int64_t M = p->m, N = p->n, K = p->k;
    if (M == 0 || N == 0) return SAL_OK;
    sal_status st;
    float beta = 0.f;
    if (C && p->beta != 0.f) {   /* Y = beta * C first; the product accumulates onto it */
        sal_tw_args a;
        gemmc_args(p, &a);
        a.in[0] = C;
        a.out[0] = y;
        if ((st = b->twin(b->ctx, nm, SAL_TW_gemmc_fwd, M * N, &a, err))) return st;
        beta = 1.f;
    }
    if (K == 0) return beta == 0.f ? b->zero(b->ctx, nm, y, M * N, err) : SAL_OK;
    return one(b, nm, p->trans_a, p->trans_b, M, N, K, p->alpha, A, p->trans_a ? M : K, B, p->trans_b ? K : N,
               beta, y, N, err);
}

static sal_status gemm_bwd(const sal_blas *b, const sal_op_call *c, sal_error *err) {
    const sal_gemm_params *p = c->params;
    const char *nm = c->node->name;
    const float *g = c->gout[0];
    if (!g) return SAL_OK;
    const float *A = c->in[0], *B = c->in[1];
    float *ga = c->gin[0], *gb = c->gin[1], *gc = p->has_c && c->n_in > 2 ? c->gin[2] : NULL;
    const int64_t M = p->m, N = p->n, K = p->k;
    if (M == 0 || N == 0) return SAL_OK;
    const int64_t lda = p->trans_a ? M : K, ldb = p->trans_b ? K : N;
    sal_status st;
    if (ga && K > 0) {
        if (!p->trans_a)   /* dA (M, K) = alpha * G (M, N) . op(B)^T (N, K) */
            st = one(b, nm, 0, p->trans_b ? 0 : 1, M, K, N, p->alpha, g, N, B, ldb, 1.f, ga, K, err);
        else               /* dA (K, M) = alpha * op(B) (K, N) . G^T (N, M) */
            st = one(b, nm, p->trans_b ? 1 : 0, 1, K, M, N, p->alpha, B, ldb, g, N, 1.f, ga, M, err);
        if (st) return st;
    }
    if (gb && K > 0) {
        if (!p->trans_b)   /* dB (K, N) = alpha * op(A)^T (K, M) . G (M, N) */
            st = one(b, nm, p->trans_a ? 0 : 1, 0, K, N, M, p->alpha, A, lda, g, N, 1.f, gb, N, err);
        else               /* dB (N, K) = alpha * G^T (N, M) . op(A) (M, K) */
            st = one(b, nm, 1, p->trans_a ? 1 : 0, N, K, M, p->alpha, g, N, A, lda, 1.f, gb, K, err);
        if (st) return st;
    }
    if (gc) {   /* dC = beta * G summed over C's broadcast dims: one gathering call per element of C */
        sal_tw_args a;
        gemmc_args(p, &a);
        a.gout[0] = g;
        a.gin[0] = gc;
        return b->twin(b->ctx, nm, SAL_TW_gemmc_bwd, (p->c.sb[0] ? M : 1) * (p->c.sb[1] ? N : 1), &a, err);
    }
    return SAL_OK;
}

sal_status sal_blas_gemm(const sal_blas *b, const sal_op_call *c, int backward, sal_error *err) {
    if (!c->params) return no_params(c, err);
    return backward ? gemm_bwd(b, c, err) : gemm_fwd(b, c, err);
}

/* ------------------------------------------------------------------------------------------------ */
/* MatMul (numpy): Y[batch] (M, N) = A[batch] (M, K) . B[batch] (K, N), batch dims broadcast       */

static sal_status matmul_fwd(const sal_blas *b, const sal_op_call *c, sal_error *err) {
    const sal_matmul_params *p = c->params;
    const char *nm = c->node->name;
    const float *A = c->in[0], *B = c->in[1];
    float *y = c->out[0];
    const int64_t M = p->m, N = p->n, K = p->k, MN = p->m * p->n;
    if (M == 0 || N == 0 || p->batch == 0) return SAL_OK;
    if (K == 0) return b->zero(b->ctx, nm, y, p->batch * MN, err);
    if (sal_matmul_foldable(p))   /* one B: A' (batch*M, K) . B */
        return one(b, nm, 0, 0, p->batch * M, N, K, 1.f, A, K, B, N, 0.f, y, N, err);
    if (!p->batch_general)        /* one stride per operand (0 where it broadcasts) */
        return b->gemm(b->ctx, nm, 0, 0, M, N, K, 1.f, A, K, p->a_batch_stride, B, N, p->b_batch_stride, 0.f,
                       y, N, MN, p->batch, err);
    for (int64_t bi = 0; bi < p->batch; bi++) {
        int64_t ao, bo;
        sal_matmul_offsets(p, bi, &ao, &bo);
        sal_status st = one(b, nm, 0, 0, M, N, K, 1.f, A + ao, K, B + bo, N, 0.f, y + bi * MN, N, err);
        if (st) return st;
    }
    return SAL_OK;
}

static sal_status matmul_bwd(const sal_blas *b, const sal_op_call *c, sal_error *err) {
    const sal_matmul_params *p = c->params;
    const char *nm = c->node->name;
    const float *g = c->gout[0];
    if (!g || p->k == 0) return SAL_OK;
    const float *A = c->in[0], *B = c->in[1];
    float *ga = c->gin[0], *gb = c->gin[1];
    const int64_t M = p->m, N = p->n, K = p->k, MN = p->m * p->n;
    if (M == 0 || N == 0 || p->batch == 0) return SAL_OK;
    sal_status st;
    if (sal_matmul_foldable(p)) {   /* A' (batch*M, K), G' (batch*M, N), B (K, N) */
        const int64_t BM = p->batch * M;
        if (ga && (st = one(b, nm, 0, 1, BM, K, N, 1.f, g, N, B, N, 1.f, ga, K, err))) return st;
        if (gb && (st = one(b, nm, 1, 0, K, N, BM, 1.f, A, K, g, N, 1.f, gb, N, err))) return st;
        return SAL_OK;
    }
    /* one batch after another: a broadcast operand's gradient receives several contributions */
    for (int64_t bi = 0; bi < p->batch; bi++) {
        int64_t ao, bo;
        sal_matmul_offsets(p, bi, &ao, &bo);
        const float *gbi = g + bi * MN;
        if (ga && (st = one(b, nm, 0, 1, M, K, N, 1.f, gbi, N, B + bo, N, 1.f, ga + ao, K, err))) return st;
        if (gb && (st = one(b, nm, 1, 0, K, N, M, 1.f, A + ao, K, gbi, N, 1.f, gb + bo, N, err))) return st;
    }
    return SAL_OK;
}

sal_status sal_blas_matmul(const sal_blas *b, const sal_op_call *c, int backward, sal_error *err) {
    if (!c->params) return no_params(c, err);
    return backward ? matmul_bwd(b, c, err) : matmul_fwd(b, c, err);
}
