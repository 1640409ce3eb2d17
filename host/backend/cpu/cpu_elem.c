/* cpu_elem.c — CPU kernels of the element-wise, broadcasting and layout ops: activations,
 * Add/Sub/Mul/Div, ReduceMean, Softmax, Concat, Transpose, Pad (parameters from infer_elem.c).
 *
 * Forward kernels write every element of out[0]; backward kernels ADD dL/dx_i into gin[i] where
 * gin[i] != NULL. Loops are OpenMP-parallel over the outer dimension (small tensors stay on one
 * thread) with contiguous inner loops; the fast paths never divide by a shape per element.
 *
 * Gradient conventions at kinks: Relu passes where x > 0; Clip passes where lo < x < hi strictly
 * (PyTorch's hardtanh); HardSigmoid where 0 < alpha*x + beta < 1; HardSwish uses PyTorch's
 * hardswish_backward (0 for x < -3, x/3 + 1/2 for -3 <= x <= 3, 1 above). Guided Backprop
 * (call->guided) further zeroes negative incoming gradients in Relu and in Clip with lo >= 0.
 */
/* We never use floating-point exceptions; without them GCC can if-convert the clamps and
 * selects below into vector code (with -ftrapping-math it keeps branches and scalar loops). */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math")
#endif

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "../backend.h"
#include "../../ops/op_decls.h"
#include "twin_elem.h"
#include "twin_nn.h"

enum { PAR_MIN = 1 << 15 };   /* elements below which a loop stays on one thread */

static int nthreads(const sal_op_call *c) { return c->threads > 0 ? c->threads : 1; }

static int64_t numel(const sal_shape *s) { return sal_shape_numel(s); }

#define NEED_PARAMS(c, err)                                                                       \
    do {                                                                                          \
        if (!(c)->params)                                                                         \
            return sal_fail(err, SAL_ERR_INTERNAL, "node '%s' (%s): no parameters from infer",   \
                            (c)->node->name, (c)->node->op_type);                                 \
    } while (0)

/* e^x, the binary ops and their derivatives: the element functions shared with the CUDA
 * backend (kernels/twin_elem.h: sal_tw_exp vectorizes, unlike libm's expf without -ffast-math) */
#define exp_fast sal_tw_exp

/* ------------------------------------------------------------------------------------------------ */
/* Activations                                                                                      */

sal_status sal_cpu_relu_fwd(const sal_op_call *c, sal_error *err) {
    (void)err;
    const float *x = c->in[0];
    float *y = c->out[0];
    int64_t n = numel(c->out_shape[0]);
    int nt = nthreads(c);
#pragma omp parallel for simd num_threads(nt) if (parallel : n > PAR_MIN) schedule(static)
    for (int64_t i = 0; i < n; i++) y[i] = sal_act_relu(x[i]);
    return SAL_OK;
}

sal_status sal_cpu_relu_bwd(const sal_op_call *c, sal_error *err) {
    (void)err;
    const float *x = c->in[0], *g = c->gout[0];
    float *gx = c->gin[0];
    if (!gx || !g) return SAL_OK;
    int64_t n = numel(c->in_shape[0]);
    int nt = nthreads(c);
    const int guided = c->guided != 0;
    if (c->gin_set & 1) {   /* the first contribution (ops.h) */
#pragma omp parallel for simd num_threads(nt) if (parallel : n > PAR_MIN) schedule(static)
        for (int64_t i = 0; i < n; i++) gx[i] = sal_act_relu_d(x[i], g[i], guided);
    } else if (guided) {
#pragma omp parallel for simd num_threads(nt) if (parallel : n > PAR_MIN) schedule(static)
        for (int64_t i = 0; i < n; i++) gx[i] += sal_act_relu_d(x[i], g[i], 1);
    } else {
#pragma omp parallel for simd num_threads(nt) if (parallel : n > PAR_MIN) schedule(static)
        for (int64_t i = 0; i < n; i++) gx[i] += sal_act_relu_d(x[i], g[i], 0);
    }
    return SAL_OK;
}

sal_status sal_cpu_leakyrelu_fwd(const sal_op_call *c, sal_error *err) {
    NEED_PARAMS(c, err);
    const sal_scalar_params *p = c->params;
    const float *x = c->in[0];
    float *y = c->out[0];
    const float alpha = p->alpha;
    int64_t n = numel(c->out_shape[0]);
    int nt = nthreads(c);
#pragma omp parallel for simd num_threads(nt) if (parallel : n > PAR_MIN) schedule(static)
    for (int64_t i = 0; i < n; i++) y[i] = sal_act_leaky(x[i], alpha);
    return SAL_OK;
}

sal_status sal_cpu_leakyrelu_bwd(const sal_op_call *c, sal_error *err) {
    NEED_PARAMS(c, err);
    const sal_scalar_params *p = c->params;
    const float *x = c->in[0], *g = c->gout[0];
    float *gx = c->gin[0];
    if (!gx || !g) return SAL_OK;
    const float alpha = p->alpha;
    int64_t n = numel(c->in_shape[0]);
    int nt = nthreads(c);
#pragma omp parallel for simd num_threads(nt) if (parallel : n > PAR_MIN) schedule(static)
    for (int64_t i = 0; i < n; i++) gx[i] += sal_act_leaky_d(x[i], g[i], alpha);
    return SAL_OK;
}

sal_status sal_cpu_clip_fwd(const sal_op_call *c, sal_error *err) {
    NEED_PARAMS(c, err);
    const sal_scalar_params *p = c->params;
    const float *x = c->in[0];
    float *y = c->out[0];
    const float lo = p->lo, hi = p->hi;
    int64_t n = numel(c->out_shape[0]);
    int nt = nthreads(c);
#pragma omp parallel for simd num_threads(nt) if (parallel : n > PAR_MIN) schedule(static)
    for (int64_t i = 0; i < n; i++) y[i] = sal_act_clip(x[i], lo, hi);
    return SAL_OK;
}

sal_status sal_cpu_clip_bwd(const sal_op_call *c, sal_error *err) {
    NEED_PARAMS(c, err);
    const sal_scalar_params *p = c->params;
    const float *x = c->in[0], *g = c->gout[0];
    float *gx = c->gin[0];
    if (!gx || !g) return SAL_OK;
    const float lo = p->lo, hi = p->hi;
    int64_t n = numel(c->in_shape[0]);
    int nt = nthreads(c);
    if (c->guided && lo >= 0.f) {
#pragma omp parallel for simd num_threads(nt) if (parallel : n > PAR_MIN) schedule(static)
        for (int64_t i = 0; i < n; i++) gx[i] += sal_act_clip_d(x[i], g[i], lo, hi, 1);
    } else {
#pragma omp parallel for simd num_threads(nt) if (parallel : n > PAR_MIN) schedule(static)
        for (int64_t i = 0; i < n; i++) gx[i] += sal_act_clip_d(x[i], g[i], lo, hi, 0);
    }
    return SAL_OK;
}

sal_status sal_cpu_sigmoid_fwd(const sal_op_call *c, sal_error *err) {
    (void)err;
    const float *x = c->in[0];
    float *y = c->out[0];
    int64_t n = numel(c->out_shape[0]);
    int nt = nthreads(c);
#pragma omp parallel for simd num_threads(nt) if (parallel : n > PAR_MIN) schedule(static)
    for (int64_t i = 0; i < n; i++) y[i] = sal_act_sigmoid(x[i]);
    return SAL_OK;
}

sal_status sal_cpu_sigmoid_bwd(const sal_op_call *c, sal_error *err) {
    (void)err;
    const float *y = c->out[0], *g = c->gout[0];
    float *gx = c->gin[0];
    if (!gx || !g) return SAL_OK;
    int64_t n = numel(c->in_shape[0]);
    int nt = nthreads(c);
#pragma omp parallel for simd num_threads(nt) if (parallel : n > PAR_MIN) schedule(static)
    for (int64_t i = 0; i < n; i++) gx[i] += sal_act_sigmoid_d(y[i], g[i]);
    return SAL_OK;
}

sal_status sal_cpu_hardsigmoid_fwd(const sal_op_call *c, sal_error *err) {
    NEED_PARAMS(c, err);
    const sal_scalar_params *p = c->params;
    const float *x = c->in[0];
    float *y = c->out[0];
    const float alpha = p->alpha, beta = p->beta;
    int64_t n = numel(c->out_shape[0]);
    int nt = nthreads(c);
#pragma omp parallel for simd num_threads(nt) if (parallel : n > PAR_MIN) schedule(static)
    for (int64_t i = 0; i < n; i++) y[i] = sal_act_hardsigmoid(x[i], alpha, beta);
    return SAL_OK;
}

sal_status sal_cpu_hardsigmoid_bwd(const sal_op_call *c, sal_error *err) {
    NEED_PARAMS(c, err);
    const sal_scalar_params *p = c->params;
    const float *x = c->in[0], *g = c->gout[0];
    float *gx = c->gin[0];
    if (!gx || !g) return SAL_OK;
    const float alpha = p->alpha, beta = p->beta;
    int64_t n = numel(c->in_shape[0]);
    int nt = nthreads(c);
#pragma omp parallel for simd num_threads(nt) if (parallel : n > PAR_MIN) schedule(static)
    for (int64_t i = 0; i < n; i++) gx[i] += sal_act_hardsigmoid_d(x[i], g[i], alpha, beta);
    return SAL_OK;
}

sal_status sal_cpu_hardswish_fwd(const sal_op_call *c, sal_error *err) {
    (void)err;
    const float *x = c->in[0];
    float *y = c->out[0];
    int64_t n = numel(c->out_shape[0]);
    int nt = nthreads(c);
#pragma omp parallel for simd num_threads(nt) if (parallel : n > PAR_MIN) schedule(static)
    for (int64_t i = 0; i < n; i++) y[i] = sal_act_hardswish(x[i]);
    return SAL_OK;
}

sal_status sal_cpu_hardswish_bwd(const sal_op_call *c, sal_error *err) {
    (void)err;
    const float *x = c->in[0], *g = c->gout[0];
    float *gx = c->gin[0];
    if (!gx || !g) return SAL_OK;
    int64_t n = numel(c->in_shape[0]);
    int nt = nthreads(c);
#pragma omp parallel for simd num_threads(nt) if (parallel : n > PAR_MIN) schedule(static)
    for (int64_t i = 0; i < n; i++) gx[i] += sal_act_hardswish_d(x[i], g[i]);
    return SAL_OK;
}

sal_status sal_cpu_tanh_fwd(const sal_op_call *c, sal_error *err) {
    (void)err;
    const float *x = c->in[0];
    float *y = c->out[0];
    int64_t n = numel(c->out_shape[0]);
    int nt = nthreads(c);
#pragma omp parallel for simd num_threads(nt) if (parallel : n > PAR_MIN) schedule(static)
    for (int64_t i = 0; i < n; i++) y[i] = tanhf(x[i]);
    return SAL_OK;
}

sal_status sal_cpu_tanh_bwd(const sal_op_call *c, sal_error *err) {
    (void)err;
    const float *y = c->out[0], *g = c->gout[0];
    float *gx = c->gin[0];
    if (!gx || !g) return SAL_OK;
    int64_t n = numel(c->in_shape[0]);
    int nt = nthreads(c);
#pragma omp parallel for simd num_threads(nt) if (parallel : n > PAR_MIN) schedule(static)
    for (int64_t i = 0; i < n; i++) gx[i] += sal_act_tanh_d(y[i], g[i]);
    return SAL_OK;
}

/* ------------------------------------------------------------------------------------------------ */
/* Broadcasting binary ops                                                                          */
/* The inner loops are row kernels (always_inline) whose op code and broadcast pattern are literal
 * constants at every call site: BIN_CALL switches on the op inside the parallel body, so each case
 * inlines a specialized, vectorizable loop. (A switch on a runtime op inside the loop would not
 * vectorize: OpenMP outlines the parallel body before inlining could propagate the constant.) */

enum { BIN_ADD = SAL_TW_BIN_ADD, BIN_SUB = SAL_TW_BIN_SUB, BIN_MUL = SAL_TW_BIN_MUL, BIN_DIV = SAL_TW_BIN_DIV };
enum { BCHUNK = SAL_TW_BCHUNK };   /* elements per task in the flat loops */

#define ALWAYS_INLINE static inline __attribute__((always_inline))

ALWAYS_INLINE float bin_f(int op, float a, float b) { return sal_tw_bin_f(op, a, b); }
/* dL/da (which = 0) or dL/db (which = 1) of y = a op b for incoming gradient g. */
ALWAYS_INLINE float bin_d(int op, int which, float a, float b, float g) { return sal_tw_bin_d(op, which, a, b, g); }

#define BIN_CALL(op, fn, ...)                                                                     \
    do {                                                                                          \
        switch (op) {                                                                             \
        case BIN_ADD: fn(BIN_ADD, __VA_ARGS__); break;                                            \
        case BIN_SUB: fn(BIN_SUB, __VA_ARGS__); break;                                            \
        case BIN_MUL: fn(BIN_MUL, __VA_ARGS__); break;                                            \
        default: fn(BIN_DIV, __VA_ARGS__); break;                                                 \
        }                                                                                         \
    } while (0)

/* Row kernels over n elements; a_bc / b_bc: that operand is one value broadcast over the row. */
#define A_(i) a[a_bc ? 0 : (i)]
#define B_(i) b[b_bc ? 0 : (i)]

ALWAYS_INLINE void row_fwd(const int op, const int a_bc, const int b_bc, const float *a,
                           const float *b, float *y, int64_t n) {
#pragma omp simd
    for (int64_t i = 0; i < n; i++) y[i] = bin_f(op, A_(i), B_(i));
}

/* gx[i] += d_which */
ALWAYS_INLINE void row_grad(const int op, const int which, const int a_bc, const int b_bc,
                            const float *a, const float *b, const float *g, float *gx, int64_t n) {
#pragma omp simd
    for (int64_t i = 0; i < n; i++) gx[i] += bin_d(op, which, A_(i), B_(i), g[i]);
}

/* ga[i] += d_a, gb[i] += d_b (same-shape operands) */
ALWAYS_INLINE void row_grad2(const int op, const int a_bc, const int b_bc, const float *a,
                             const float *b, const float *g, float *ga, float *gb, int64_t n) {
#pragma omp simd
    for (int64_t i = 0; i < n; i++) {
        ga[i] += bin_d(op, 0, A_(i), B_(i), g[i]);
        gb[i] += bin_d(op, 1, A_(i), B_(i), g[i]);
    }
}

/* *sum = sum_i d_which */
ALWAYS_INLINE void row_grad_sum(const int op, const int which, const int a_bc, const int b_bc,
                                const float *a, const float *b, const float *g, int64_t n,
                                float *sum) {
    float s = 0.f;
#pragma omp simd reduction(+ : s)
    for (int64_t i = 0; i < n; i++) s += bin_d(op, which, A_(i), B_(i), g[i]);
    *sum = s;
}

/* gx[i] += d_which (the row-sized operand), *sum = sum_i d_other (the broadcast one) */
ALWAYS_INLINE void row_grad_fused(const int op, const int which, const int a_bc, const int b_bc,
                                  const float *a, const float *b, const float *g, float *gx,
                                  int64_t n, float *sum) {
    float s = 0.f;
#pragma omp simd reduction(+ : s)
    for (int64_t i = 0; i < n; i++) {
        gx[i] += bin_d(op, which, A_(i), B_(i), g[i]);
        s += bin_d(op, !which, A_(i), B_(i), g[i]);
    }
    *sum = s;
}

#undef A_
#undef B_

/* The broadcast with 1-dims dropped and adjacent dims merged where all three tensors stay
 * contiguous across them: a view of at most ndim dims (at least one). The last dim's strides in
 * a and b are 0 or 1. */
typedef struct bview {
    int nd;
    int64_t d[SAL_MAX_DIMS];
    int64_t so[SAL_MAX_DIMS], sa[SAL_MAX_DIMS], sb[SAL_MAX_DIMS];   /* element strides */
} bview;

static void bview_make(const sal_bcast_params *p, bview *v) {
    int64_t so[SAL_MAX_DIMS], s = 1;
    for (int d = p->ndim - 1; d >= 0; d--) { so[d] = s; s *= p->out[d]; }
    v->nd = 0;
    for (int d = 0; d < p->ndim; d++) {
        int64_t n = p->out[d];
        if (n == 1) continue;
        int k = v->nd - 1;
        if (k >= 0 && v->so[k] == so[d] * n && v->sa[k] == p->sa[d] * n &&
            v->sb[k] == p->sb[d] * n) {
            v->d[k] *= n;
            v->so[k] = so[d];
            v->sa[k] = p->sa[d];
            v->sb[k] = p->sb[d];
            continue;
        }
        k = v->nd++;
        v->d[k] = n;
        v->so[k] = so[d];
        v->sa[k] = p->sa[d];
        v->sb[k] = p->sb[d];
    }
    if (v->nd == 0) {
        v->nd = 1;
        v->d[0] = 1;
        v->so[0] = 1;
        v->sa[0] = v->sb[0] = 0;
    }
}

/* Offsets of out row r (all dims but the last) in a and b. */
static inline void bview_row(const bview *v, int64_t r, int64_t *oa, int64_t *ob) {
    int64_t a = 0, b = 0;
    for (int k = v->nd - 2; k >= 0; k--) {
        int64_t q = r / v->d[k], i = r - q * v->d[k];
        a += i * v->sa[k];
        b += i * v->sb[k];
        r = q;
    }
    *oa = a;
    *ob = b;
}

static int64_t bcast_numel(const sal_bcast_params *p) {
    int64_t n = 1;
    for (int d = 0; d < p->ndim; d++) n *= p->out[d];
    return n;
}

static void bin_fwd(int op, const sal_bcast_params *p, const float *a, const float *b, float *y,
                    int nt) {
    const int64_t n = bcast_numel(p);
    if (n == 0) return;
    switch (p->mode) {
    case SAL_BC_SAME:
    case SAL_BC_SCALAR_A:
    case SAL_BC_SCALAR_B: {
        const int64_t nch = (n + BCHUNK - 1) / BCHUNK;
        const int mode = p->mode;
        /* a fused Relu / Clip (sal_bcast_params.act: same-shape Add only), on the chunk while it
         * is in cache; Relu through Relu's own element function, so fused equals unfused */
        const int act = mode == SAL_BC_SAME && op == BIN_ADD ? p->act : 0;
        const int relu = act && p->act_lo == 0.f && isinf(p->act_hi) && p->act_hi > 0;
        const float lo = p->act_lo, hi = p->act_hi;
#pragma omp parallel for num_threads(nt) if (parallel : n > PAR_MIN) schedule(static)
        for (int64_t t = 0; t < nch; t++) {
            const int64_t i0 = t * BCHUNK, cnt = n - i0 < BCHUNK ? n - i0 : BCHUNK;
            if (mode == SAL_BC_SAME) BIN_CALL(op, row_fwd, 0, 0, a + i0, b + i0, y + i0, cnt);
            else if (mode == SAL_BC_SCALAR_A) BIN_CALL(op, row_fwd, 1, 0, a, b + i0, y + i0, cnt);
            else BIN_CALL(op, row_fwd, 0, 1, a + i0, b, y + i0, cnt);
            float *yc = y + i0;
            if (relu) {
#pragma omp simd
                for (int64_t i = 0; i < cnt; i++) yc[i] = sal_act_relu(yc[i]);
            } else if (act) {
#pragma omp simd
                for (int64_t i = 0; i < cnt; i++) yc[i] = sal_act_clip(yc[i], lo, hi);
            }
        }
        return;
    }
    case SAL_BC_CHANNEL_A:
    case SAL_BC_CHANNEL_B: {
        /* y (outer, mid, inner); the small input is (mid) */
        const int small_a = p->mode == SAL_BC_CHANNEL_A;
        const float *big = small_a ? b : a, *sm = small_a ? a : b;
        const int64_t outer = p->outer, mid = p->mid, inner = p->inner;
        if (inner == 1) {   /* rows of mid against the small vector */
#pragma omp parallel for num_threads(nt) if (parallel : n > PAR_MIN) schedule(static)
            for (int64_t o = 0; o < outer; o++) {
                const float *bo = big + o * mid;
                float *yo = y + o * mid;
                if (small_a) BIN_CALL(op, row_fwd, 0, 0, sm, bo, yo, mid);
                else BIN_CALL(op, row_fwd, 0, 0, bo, sm, yo, mid);
            }
            return;
        }
        /* tasks: (row, chunk of the row); row r = (o, m) uses sm[m] */
        const int64_t cpr = (inner + BCHUNK - 1) / BCHUNK, tasks = outer * mid * cpr;
#pragma omp parallel for num_threads(nt) if (parallel : n > PAR_MIN) schedule(static)
        for (int64_t t = 0; t < tasks; t++) {
            const int64_t r = t / cpr, i0 = (t - r * cpr) * BCHUNK;
            const int64_t cnt = inner - i0 < BCHUNK ? inner - i0 : BCHUNK;
            const float *s = sm + r % mid, *br = big + r * inner + i0;
            float *yr = y + r * inner + i0;
            if (small_a) BIN_CALL(op, row_fwd, 1, 0, s, br, yr, cnt);
            else BIN_CALL(op, row_fwd, 0, 1, br, s, yr, cnt);
        }
        return;
    }
    default: {
        bview v;
        bview_make(p, &v);
        const int64_t len = v.d[v.nd - 1], rows = n / len;
        const int a_bc = v.sa[v.nd - 1] == 0, b_bc = v.sb[v.nd - 1] == 0;
#pragma omp parallel for num_threads(nt) if (parallel : n > PAR_MIN) schedule(static)
        for (int64_t r = 0; r < rows; r++) {
            int64_t oa, ob;
            bview_row(&v, r, &oa, &ob);
            if (a_bc) BIN_CALL(op, row_fwd, 1, 0, a + oa, b + ob, y + r * len, len);
            else if (b_bc) BIN_CALL(op, row_fwd, 0, 1, a + oa, b + ob, y + r * len, len);
            else BIN_CALL(op, row_fwd, 0, 0, a + oa, b + ob, y + r * len, len);
        }
        return;
    }
    }
}

/* Gradient of input `which` (0: a, 1: b) of the general broadcast. A y-sized input walks the
 * output rows; a broadcast one sums, for each of its elements, over the dims it is broadcast on
 * (one task per element of the input: no two tasks write the same gradient). */
static void bin_bwd_general(int op, int which, const bview *v, int64_t n, const float *a,
                            const float *b, const float *g, float *gx, int nt) {
    const int64_t *sx = which ? v->sb : v->sa;
    int keep[SAL_MAX_DIMS], red[SAL_MAX_DIMS], nk = 0, nr = 0;
    int64_t nx = 1, nred = 1;
    for (int k = 0; k < v->nd; k++) {
        if (sx[k] != 0) { keep[nk++] = k; nx *= v->d[k]; }
        else { red[nr++] = k; nred *= v->d[k]; }
    }
    if (nr == 0) {   /* y-sized: gx has y's layout */
        const int64_t len = v->d[v->nd - 1], rows = n / len;
        const int a_bc = v->sa[v->nd - 1] == 0, b_bc = v->sb[v->nd - 1] == 0;
#pragma omp parallel for num_threads(nt) if (parallel : n > PAR_MIN) schedule(static)
        for (int64_t r = 0; r < rows; r++) {
            int64_t oa, ob;
            bview_row(v, r, &oa, &ob);
            const float *ar = a + oa, *br = b + ob, *gr = g + r * len;
            float *gxr = gx + r * len;
            if (which) {
                if (a_bc) BIN_CALL(op, row_grad, 1, 1, 0, ar, br, gr, gxr, len);
                else BIN_CALL(op, row_grad, 1, 0, 0, ar, br, gr, gxr, len);
            } else {
                if (b_bc) BIN_CALL(op, row_grad, 0, 0, 1, ar, br, gr, gxr, len);
                else BIN_CALL(op, row_grad, 0, 0, 0, ar, br, gr, gxr, len);
            }
        }
        return;
    }
#pragma omp parallel for num_threads(nt) if (parallel : n > PAR_MIN) schedule(static)
    for (int64_t xi = 0; xi < nx; xi++) {
        int64_t oo = 0, oa = 0, ob = 0, ox = 0, r = xi;
        for (int t = nk - 1; t >= 0; t--) {
            int k = keep[t];
            int64_t q = r / v->d[k], i = r - q * v->d[k];
            oo += i * v->so[k];
            oa += i * v->sa[k];
            ob += i * v->sb[k];
            ox += i * sx[k];
            r = q;
        }
        int64_t cr[SAL_MAX_DIMS] = {0};
        double sum = 0;
        for (int64_t t = 0; t < nred; t++) {
            float d;
            if (which) BIN_CALL(op, d = bin_d, 1, a[oa], b[ob], g[oo]);
            else BIN_CALL(op, d = bin_d, 0, a[oa], b[ob], g[oo]);
            sum += d;
            for (int u = nr - 1; u >= 0; u--) {   /* odometer over the reduced dims */
                int k = red[u];
                oo += v->so[k];
                oa += v->sa[k];
                ob += v->sb[k];
                if (++cr[u] < v->d[k]) break;
                oo -= v->so[k] * v->d[k];
                oa -= v->sa[k] * v->d[k];
                ob -= v->sb[k] * v->d[k];
                cr[u] = 0;
            }
        }
        gx[ox] += (float)sum;
    }
}

static void bin_bwd(int op, const sal_bcast_params *p, const float *a, const float *b,
                    const float *g, float *ga, float *gb, int nt) {
    const int64_t n = bcast_numel(p);
    if (n == 0) return;
    const int64_t nch = (n + BCHUNK - 1) / BCHUNK;
    switch (p->mode) {
    case SAL_BC_SAME:
#pragma omp parallel for num_threads(nt) if (parallel : n > PAR_MIN) schedule(static)
        for (int64_t t = 0; t < nch; t++) {
            const int64_t i0 = t * BCHUNK, cnt = n - i0 < BCHUNK ? n - i0 : BCHUNK;
            if (ga && gb) BIN_CALL(op, row_grad2, 0, 0, a + i0, b + i0, g + i0, ga + i0, gb + i0, cnt);
            else if (ga) BIN_CALL(op, row_grad, 0, 0, 0, a + i0, b + i0, g + i0, ga + i0, cnt);
            else BIN_CALL(op, row_grad, 1, 0, 0, a + i0, b + i0, g + i0, gb + i0, cnt);
        }
        return;
    case SAL_BC_SCALAR_A:
    case SAL_BC_SCALAR_B: {
        /* the y-sized operand element-wise, the scalar summed (double across chunks) */
        const int sa_ = p->mode == SAL_BC_SCALAR_A;
        float *gbig = sa_ ? gb : ga, *gsc = sa_ ? ga : gb;
        double sum = 0;
#pragma omp parallel for num_threads(nt) if (parallel : n > PAR_MIN) schedule(static) \
    reduction(+ : sum)
        for (int64_t t = 0; t < nch; t++) {
            const int64_t i0 = t * BCHUNK, cnt = n - i0 < BCHUNK ? n - i0 : BCHUNK;
            const float *ac = sa_ ? a : a + i0, *bc = sa_ ? b + i0 : b;
            float part = 0.f;
            if (gbig && gsc) {
                if (sa_) BIN_CALL(op, row_grad_fused, 1, 1, 0, ac, bc, g + i0, gbig + i0, cnt, &part);
                else BIN_CALL(op, row_grad_fused, 0, 0, 1, ac, bc, g + i0, gbig + i0, cnt, &part);
            } else if (gbig) {
                if (sa_) BIN_CALL(op, row_grad, 1, 1, 0, ac, bc, g + i0, gbig + i0, cnt);
                else BIN_CALL(op, row_grad, 0, 0, 1, ac, bc, g + i0, gbig + i0, cnt);
            } else {
                if (sa_) BIN_CALL(op, row_grad_sum, 0, 1, 0, ac, bc, g + i0, cnt, &part);
                else BIN_CALL(op, row_grad_sum, 1, 0, 1, ac, bc, g + i0, cnt, &part);
            }
            sum += part;
        }
        if (gsc) gsc[0] += (float)sum;
        return;
    }
    case SAL_BC_CHANNEL_A:
    case SAL_BC_CHANNEL_B: {
        const int small_a = p->mode == SAL_BC_CHANNEL_A;
        const float *big = small_a ? b : a, *sm = small_a ? a : b;
        float *gbig = small_a ? gb : ga, *gsm = small_a ? ga : gb;
        const int64_t outer = p->outer, mid = p->mid, inner = p->inner;
        if (inner == 1) {
            if (gbig) {
#pragma omp parallel for num_threads(nt) if (parallel : n > PAR_MIN) schedule(static)
                for (int64_t o = 0; o < outer; o++) {
                    const float *bo = big + o * mid, *go = g + o * mid;
                    float *gxo = gbig + o * mid;
                    if (small_a) BIN_CALL(op, row_grad, 1, 0, 0, sm, bo, go, gxo, mid);
                    else BIN_CALL(op, row_grad, 0, 0, 0, bo, sm, go, gxo, mid);
                }
            }
            if (gsm) {   /* blocks of 64 channels, each accumulated over outer */
                const int64_t nblk = (mid + 63) / 64;
#pragma omp parallel for num_threads(nt) if (parallel : n > PAR_MIN) schedule(static)
                for (int64_t blk = 0; blk < nblk; blk++) {
                    const int64_t m0 = blk * 64, cnt = mid - m0 < 64 ? mid - m0 : 64;
                    float acc[64] = {0};
                    for (int64_t o = 0; o < outer; o++) {
                        const float *bo = big + o * mid + m0, *go = g + o * mid + m0;
                        if (small_a) BIN_CALL(op, row_grad, 0, 0, 0, sm + m0, bo, go, acc, cnt);
                        else BIN_CALL(op, row_grad, 1, 0, 0, bo, sm + m0, go, acc, cnt);
                    }
                    for (int64_t m = 0; m < cnt; m++) gsm[m0 + m] += acc[m];
                }
            }
            return;
        }
        if (gsm && mid >= nt) {
            /* one task per channel m: its rows (o, m) for every o, the big operand's gradient
             * and the channel's sum in one pass */
#pragma omp parallel for num_threads(nt) if (parallel : n > PAR_MIN) schedule(static)
            for (int64_t m = 0; m < mid; m++) {
                const float *s = sm + m;
                double acc = 0;
                for (int64_t o = 0; o < outer; o++) {
                    const int64_t r = o * mid + m;
                    const float *br = big + r * inner, *gr = g + r * inner;
                    float part = 0.f;
                    if (gbig) {
                        float *gxr = gbig + r * inner;
                        if (small_a) BIN_CALL(op, row_grad_fused, 1, 1, 0, s, br, gr, gxr, inner, &part);
                        else BIN_CALL(op, row_grad_fused, 0, 0, 1, br, s, gr, gxr, inner, &part);
                    } else {
                        if (small_a) BIN_CALL(op, row_grad_sum, 0, 1, 0, s, br, gr, inner, &part);
                        else BIN_CALL(op, row_grad_sum, 1, 0, 1, br, s, gr, inner, &part);
                    }
                    acc += part;
                }
                gsm[m] += (float)acc;
            }
            return;
        }
        if (gbig) {   /* tasks: (row, chunk of the row) */
            const int64_t cpr = (inner + BCHUNK - 1) / BCHUNK, tasks = outer * mid * cpr;
#pragma omp parallel for num_threads(nt) if (parallel : n > PAR_MIN) schedule(static)
            for (int64_t t = 0; t < tasks; t++) {
                const int64_t r = t / cpr, i0 = (t - r * cpr) * BCHUNK;
                const int64_t cnt = inner - i0 < BCHUNK ? inner - i0 : BCHUNK;
                const float *s = sm + r % mid, *br = big + r * inner + i0, *gr = g + r * inner + i0;
                float *gxr = gbig + r * inner + i0;
                if (small_a) BIN_CALL(op, row_grad, 1, 1, 0, s, br, gr, gxr, cnt);
                else BIN_CALL(op, row_grad, 0, 0, 1, br, s, gr, gxr, cnt);
            }
        }
        if (gsm) {   /* fewer channels than threads: each channel's rows in parallel */
            for (int64_t m = 0; m < mid; m++) {
                const float *s = sm + m;
                double acc = 0;
#pragma omp parallel for num_threads(nt) if (parallel : n > PAR_MIN) schedule(static) \
    reduction(+ : acc)
                for (int64_t o = 0; o < outer; o++) {
                    const int64_t r = o * mid + m;
                    const float *br = big + r * inner, *gr = g + r * inner;
                    float part = 0.f;
                    if (small_a) BIN_CALL(op, row_grad_sum, 0, 1, 0, s, br, gr, inner, &part);
                    else BIN_CALL(op, row_grad_sum, 1, 0, 1, br, s, gr, inner, &part);
                    acc += part;
                }
                gsm[m] += (float)acc;
            }
        }
        return;
    }
    default: {
        bview v;
        bview_make(p, &v);
        if (ga) bin_bwd_general(op, 0, &v, n, a, b, g, ga, nt);
        if (gb) bin_bwd_general(op, 1, &v, n, a, b, g, gb, nt);
        return;
    }
    }
}

/* Add's and Sub's backward without broadcasting when it writes a first contribution (gin_set,
 * ops.h; sal_cpu_backward sends only those here): the gradient or its negation, written to the
 * set operands and added to the others. */
static sal_status addsub_bwd_set(int op, const sal_op_call *c, int nt) {
    const int64_t n = bcast_numel(c->params);
    const float *g = c->gout[0];
    for (int k = 0; k < 2; k++) {
        float *gx = c->gin[k];
        if (!gx) continue;
        const float sg = op == BIN_SUB && k == 1 ? -1.f : 1.f;
        if (c->gin_set >> k & 1) {
#pragma omp parallel for simd num_threads(nt) if (parallel : n > PAR_MIN) schedule(static)
            for (int64_t i = 0; i < n; i++) gx[i] = sg * g[i];
        } else {
#pragma omp parallel for simd num_threads(nt) if (parallel : n > PAR_MIN) schedule(static)
            for (int64_t i = 0; i < n; i++) gx[i] += sg * g[i];
        }
    }
    return SAL_OK;
}

#define BINARY_KERNELS(name, OP)                                                                  \
    sal_status sal_cpu_##name##_fwd(const sal_op_call *c, sal_error *err) {                       \
        NEED_PARAMS(c, err);                                                                      \
        bin_fwd(OP, c->params, c->in[0], c->in[1], c->out[0], nthreads(c));                      \
        return SAL_OK;                                                                            \
    }                                                                                             \
    sal_status sal_cpu_##name##_bwd(const sal_op_call *c, sal_error *err) {                       \
        NEED_PARAMS(c, err);                                                                      \
        if (!c->gout[0] || (!c->gin[0] && !c->gin[1])) return SAL_OK;                            \
        if (c->gin_set) return addsub_bwd_set(OP, c, nthreads(c));                                \
        bin_bwd(OP, c->params, c->in[0], c->in[1], c->gout[0], c->gin[0], c->gin[1],             \
                nthreads(c));                                                                     \
        return SAL_OK;                                                                            \
    }

BINARY_KERNELS(add, BIN_ADD)
BINARY_KERNELS(sub, BIN_SUB)
BINARY_KERNELS(mul, BIN_MUL)
BINARY_KERNELS(div, BIN_DIV)

/* ------------------------------------------------------------------------------------------------ */
/* ReduceMean                                                                                       */

enum { CHUNK = 512 };   /* columns per task when reducing over a non-innermost axis */

/* Base offset (in x) of output element j of the general reduction, and the reduced dims' strides. */
typedef struct rview {
    int nk, nr;
    int64_t kd[SAL_MAX_DIMS], ks[SAL_MAX_DIMS];   /* kept dims: sizes, strides in x */
    int64_t rd[SAL_MAX_DIMS], rs[SAL_MAX_DIMS];   /* reduced dims */
} rview;

static void rview_make(const sal_axis_params *p, rview *v) {
    int64_t s = 1, st[SAL_MAX_DIMS];
    for (int d = p->rdim - 1; d >= 0; d--) { st[d] = s; s *= p->rdims[d]; }
    v->nk = v->nr = 0;
    for (int d = 0; d < p->rdim; d++) {
        if (p->rmask & (1u << d)) { v->rd[v->nr] = p->rdims[d]; v->rs[v->nr++] = st[d]; }
        else { v->kd[v->nk] = p->rdims[d]; v->ks[v->nk++] = st[d]; }
    }
}

static inline int64_t rview_base(const rview *v, int64_t j) {
    int64_t off = 0;
    for (int k = v->nk - 1; k >= 0; k--) {
        int64_t q = j / v->kd[k];
        off += (j - q * v->kd[k]) * v->ks[k];
        j = q;
    }
    return off;
}

/* Visit the x offsets reduced into one output: body(off). */
#define RVIEW_FOR(v, base, off, body)                                                             \
    do {                                                                                          \
        int64_t cr_[SAL_MAX_DIMS] = {0}, off = (base), total_ = 1;                                \
        for (int u_ = 0; u_ < (v)->nr; u_++) total_ *= (v)->rd[u_];                               \
        for (int64_t t_ = 0; t_ < total_; t_++) {                                                 \
            body;                                                                                 \
            for (int u_ = (v)->nr - 1; u_ >= 0; u_--) {                                           \
                off += (v)->rs[u_];                                                               \
                if (++cr_[u_] < (v)->rd[u_]) break;                                               \
                off -= (v)->rs[u_] * (v)->rd[u_];                                                 \
                cr_[u_] = 0;                                                                      \
            }                                                                                     \
        }                                                                                         \
    } while (0)

sal_status sal_cpu_reducemean_fwd(const sal_op_call *c, sal_error *err) {
    NEED_PARAMS(c, err);
    const sal_axis_params *p = c->params;
    const float *x = c->in[0];
    float *y = c->out[0];
    int nt = nthreads(c);
    const int64_t ny = numel(c->out_shape[0]), nx = numel(c->in_shape[0]);
    const float inv = p->count > 0 ? 1.f / (float)p->count : NAN;
    if (ny == 0) return SAL_OK;
    if (sal_tw__popcount(p->rmask) <= 1) {
        const int64_t outer = p->outer, len = p->axis_len, inner = p->inner;
        if (inner == 1) {   /* contiguous rows */
#pragma omp parallel for num_threads(nt) if (parallel : nx > PAR_MIN) schedule(static)
            for (int64_t o = 0; o < outer; o++) {
                const float *xr = x + o * len;
                float s = 0.f;
#pragma omp simd reduction(+ : s)
                for (int64_t k = 0; k < len; k++) s += xr[k];
                y[o] = s * inv;
            }
        } else {
            const int64_t nch = (inner + CHUNK - 1) / CHUNK;
#pragma omp parallel for num_threads(nt) if (parallel : nx > PAR_MIN) schedule(static)
            for (int64_t t = 0; t < outer * nch; t++) {
                const int64_t o = t / nch, i0 = (t - o * nch) * CHUNK;
                const int64_t cnt = inner - i0 < CHUNK ? inner - i0 : CHUNK;
                float *yr = y + o * inner + i0;
                for (int64_t i = 0; i < cnt; i++) yr[i] = 0.f;
                for (int64_t k = 0; k < len; k++) {
                    const float *xr = x + (o * len + k) * inner + i0;
#pragma omp simd
                    for (int64_t i = 0; i < cnt; i++) yr[i] += xr[i];
                }
#pragma omp simd
                for (int64_t i = 0; i < cnt; i++) yr[i] *= inv;
            }
        }
        return SAL_OK;
    }
    rview v;
    rview_make(p, &v);
#pragma omp parallel for num_threads(nt) if (parallel : nx > PAR_MIN) schedule(static)
    for (int64_t j = 0; j < ny; j++) {
        double s = 0;
        RVIEW_FOR(&v, rview_base(&v, j), off, s += x[off]);
        y[j] = (float)s * inv;
    }
    return SAL_OK;
}

sal_status sal_cpu_reducemean_bwd(const sal_op_call *c, sal_error *err) {
    NEED_PARAMS(c, err);
    const sal_axis_params *p = c->params;
    const float *g = c->gout[0];
    float *gx = c->gin[0];
    if (!gx || !g) return SAL_OK;
    int nt = nthreads(c);
    const int64_t ny = numel(c->out_shape[0]), nx = numel(c->in_shape[0]);
    if (ny == 0 || nx == 0) return SAL_OK;
    const float inv = 1.f / (float)p->count;
    if (sal_tw__popcount(p->rmask) <= 1) {
        const int64_t outer = p->outer, len = p->axis_len, inner = p->inner;
        if (inner == 1) {
#pragma omp parallel for num_threads(nt) if (parallel : nx > PAR_MIN) schedule(static)
            for (int64_t o = 0; o < outer; o++) {
                const float v = g[o] * inv;
                float *gr = gx + o * len;
#pragma omp simd
                for (int64_t k = 0; k < len; k++) gr[k] += v;
            }
        } else {
#pragma omp parallel for num_threads(nt) if (parallel : nx > PAR_MIN) schedule(static)
            for (int64_t r = 0; r < outer * len; r++) {
                const float *gr = g + (r / len) * inner;
                float *gxr = gx + r * inner;
#pragma omp simd
                for (int64_t i = 0; i < inner; i++) gxr[i] += gr[i] * inv;
            }
        }
        return SAL_OK;
    }
    rview v;
    rview_make(p, &v);
#pragma omp parallel for num_threads(nt) if (parallel : nx > PAR_MIN) schedule(static)
    for (int64_t j = 0; j < ny; j++) {
        const float gv = g[j] * inv;
        RVIEW_FOR(&v, rview_base(&v, j), off, gx[off] += gv);
    }
    return SAL_OK;
}

/* ------------------------------------------------------------------------------------------------ */
/* Softmax: x viewed as (outer, len, inner), normalized over len                                   */

enum { SM_COLS = 64 };   /* columns per task when inner > 1 */

sal_status sal_cpu_softmax_fwd(const sal_op_call *c, sal_error *err) {
    NEED_PARAMS(c, err);
    const sal_axis_params *p = c->params;
    const float *x = c->in[0];
    float *y = c->out[0];
    int nt = nthreads(c);
    const int64_t outer = p->outer, len = p->axis_len, inner = p->inner, n = outer * len * inner;
    if (n == 0) return SAL_OK;
    if (inner == 1) {
#pragma omp parallel for num_threads(nt) if (parallel : n > PAR_MIN) schedule(static)
        for (int64_t o = 0; o < outer; o++) {
            const float *xr = x + o * len;
            float *yr = y + o * len;
            float mx = -INFINITY;
            for (int64_t k = 0; k < len; k++) mx = xr[k] > mx ? xr[k] : mx;
            float s = 0.f;
#pragma omp simd reduction(+ : s)
            for (int64_t k = 0; k < len; k++) {
                yr[k] = exp_fast(xr[k] - mx);
                s += yr[k];
            }
            const float is = 1.f / s;
#pragma omp simd
            for (int64_t k = 0; k < len; k++) yr[k] *= is;
        }
        return SAL_OK;
    }
    const int64_t nch = (inner + SM_COLS - 1) / SM_COLS;
#pragma omp parallel for num_threads(nt) if (parallel : n > PAR_MIN) schedule(static)
    for (int64_t t = 0; t < outer * nch; t++) {
        const int64_t o = t / nch, i0 = (t - o * nch) * SM_COLS;
        const int64_t cnt = inner - i0 < SM_COLS ? inner - i0 : SM_COLS;
        const float *xb = x + o * len * inner + i0;
        float *yb = y + o * len * inner + i0;
        float mx[SM_COLS], s[SM_COLS];
        for (int64_t i = 0; i < cnt; i++) { mx[i] = -INFINITY; s[i] = 0.f; }
        for (int64_t k = 0; k < len; k++)
            for (int64_t i = 0; i < cnt; i++) mx[i] = xb[k * inner + i] > mx[i] ? xb[k * inner + i] : mx[i];
        for (int64_t k = 0; k < len; k++)
            for (int64_t i = 0; i < cnt; i++) {
                float e = exp_fast(xb[k * inner + i] - mx[i]);
                yb[k * inner + i] = e;
                s[i] += e;
            }
        for (int64_t i = 0; i < cnt; i++) s[i] = 1.f / s[i];
        for (int64_t k = 0; k < len; k++)
            for (int64_t i = 0; i < cnt; i++) yb[k * inner + i] *= s[i];
    }
    return SAL_OK;
}

/* dL/dx = y * (g - sum_k g_k y_k) */
sal_status sal_cpu_softmax_bwd(const sal_op_call *c, sal_error *err) {
    NEED_PARAMS(c, err);
    const sal_axis_params *p = c->params;
    const float *y = c->out[0], *g = c->gout[0];
    float *gx = c->gin[0];
    if (!gx || !g) return SAL_OK;
    int nt = nthreads(c);
    const int64_t outer = p->outer, len = p->axis_len, inner = p->inner, n = outer * len * inner;
    if (n == 0) return SAL_OK;
    if (inner == 1) {
#pragma omp parallel for num_threads(nt) if (parallel : n > PAR_MIN) schedule(static)
        for (int64_t o = 0; o < outer; o++) {
            const float *yr = y + o * len, *gr = g + o * len;
            float *gxr = gx + o * len;
            double dot = 0;
            for (int64_t k = 0; k < len; k++) dot += (double)gr[k] * yr[k];
            const float d = (float)dot;
#pragma omp simd
            for (int64_t k = 0; k < len; k++) gxr[k] += yr[k] * (gr[k] - d);
        }
        return SAL_OK;
    }
    const int64_t nch = (inner + SM_COLS - 1) / SM_COLS;
#pragma omp parallel for num_threads(nt) if (parallel : n > PAR_MIN) schedule(static)
    for (int64_t t = 0; t < outer * nch; t++) {
        const int64_t o = t / nch, i0 = (t - o * nch) * SM_COLS;
        const int64_t cnt = inner - i0 < SM_COLS ? inner - i0 : SM_COLS;
        const int64_t base = o * len * inner + i0;
        float dot[SM_COLS];
        for (int64_t i = 0; i < cnt; i++) dot[i] = 0.f;
        for (int64_t k = 0; k < len; k++)
            for (int64_t i = 0; i < cnt; i++) dot[i] += g[base + k * inner + i] * y[base + k * inner + i];
        for (int64_t k = 0; k < len; k++)
            for (int64_t i = 0; i < cnt; i++) {
                const int64_t e = base + k * inner + i;
                gx[e] += y[e] * (g[e] - dot[i]);
            }
    }
    return SAL_OK;
}

/* ------------------------------------------------------------------------------------------------ */
/* Concat: y (outer, axis_len, inner) is the inputs (outer, len_i, inner) side by side             */

/* Input holding row k of the axis, and k's index inside it. */
static inline int concat_find(const sal_op_call *c, int axis, int64_t k, int64_t *kk) {
    int i = 0;
    for (; i < c->n_in - 1; i++) {
        int64_t li = c->in_shape[i]->d[axis];
        if (k < li) break;
        k -= li;
    }
    *kk = k;
    return i;
}

sal_status sal_cpu_concat_fwd(const sal_op_call *c, sal_error *err) {
    NEED_PARAMS(c, err);
    const sal_axis_params *p = c->params;
    float *y = c->out[0];
    int nt = nthreads(c);
    const int64_t outer = p->outer, len = p->axis_len, inner = p->inner, n = outer * len * inner;
    if (n == 0) return SAL_OK;
    if (inner >= 16) {   /* one task per (outer, axis) row */
#pragma omp parallel for num_threads(nt) if (parallel : n > PAR_MIN) schedule(static)
        for (int64_t r = 0; r < outer * len; r++) {
            int64_t o = r / len, kk;
            int i = concat_find(c, p->axis, r - o * len, &kk);
            const int64_t li = c->in_shape[i]->d[p->axis];
            memcpy(y + r * inner, c->in[i] + (o * li + kk) * inner, sizeof(float) * (size_t)inner);
        }
        return SAL_OK;
    }
#pragma omp parallel for num_threads(nt) if (parallel : n > PAR_MIN) schedule(static)
    for (int64_t o = 0; o < outer; o++) {
        int64_t at = 0;
        for (int i = 0; i < c->n_in; i++) {
            const int64_t blk = c->in_shape[i]->d[p->axis] * inner;
            /* an empty input may have no data pointer at all */
            if (blk) memcpy(y + o * len * inner + at, c->in[i] + o * blk, sizeof(float) * (size_t)blk);
            at += blk;
        }
    }
    return SAL_OK;
}

sal_status sal_cpu_concat_bwd(const sal_op_call *c, sal_error *err) {
    NEED_PARAMS(c, err);
    const sal_axis_params *p = c->params;
    const float *g = c->gout[0];
    if (!g) return SAL_OK;
    int nt = nthreads(c);
    const int64_t outer = p->outer, len = p->axis_len, inner = p->inner, n = outer * len * inner;
    if (n == 0) return SAL_OK;
    if (inner >= 16) {
#pragma omp parallel for num_threads(nt) if (parallel : n > PAR_MIN) schedule(static)
        for (int64_t r = 0; r < outer * len; r++) {
            int64_t o = r / len, kk;
            int i = concat_find(c, p->axis, r - o * len, &kk);
            if (!c->gin[i]) continue;
            const int64_t li = c->in_shape[i]->d[p->axis];
            float *gxr = c->gin[i] + (o * li + kk) * inner;
            const float *gr = g + r * inner;
#pragma omp simd
            for (int64_t j = 0; j < inner; j++) gxr[j] += gr[j];
        }
        return SAL_OK;
    }
#pragma omp parallel for num_threads(nt) if (parallel : n > PAR_MIN) schedule(static)
    for (int64_t o = 0; o < outer; o++) {
        int64_t at = 0;
        for (int i = 0; i < c->n_in; i++) {
            const int64_t blk = c->in_shape[i]->d[p->axis] * inner;
            if (c->gin[i]) {
                float *gxr = c->gin[i] + o * blk;
                const float *gr = g + o * len * inner + at;
#pragma omp simd
                for (int64_t j = 0; j < blk; j++) gxr[j] += gr[j];
            }
            at += blk;
        }
    }
    return SAL_OK;
}

/* ------------------------------------------------------------------------------------------------ */
/* Transpose: y[c_0..c_r-1] = x at input coordinate c_k on dim perm[k]                             */

typedef struct tview {
    int nd;
    int64_t d[SAL_MAX_DIMS], sx[SAL_MAX_DIMS];   /* output dims (merged) and their strides in x */
} tview;

static void tview_make(const sal_transpose_params *p, const sal_shape *xs, tview *v) {
    int64_t st[SAL_MAX_DIMS], s = 1;
    for (int d = xs->ndim - 1; d >= 0; d--) { st[d] = s; s *= xs->d[d]; }
    v->nd = 0;
    for (int k = 0; k < p->ndim; k++) {
        int64_t n = xs->d[p->perm[k]], sk = st[p->perm[k]];
        if (n == 1) continue;
        if (v->nd > 0 && v->sx[v->nd - 1] == sk * n) {
            v->d[v->nd - 1] *= n;
            v->sx[v->nd - 1] = sk;
            continue;
        }
        v->d[v->nd] = n;
        v->sx[v->nd++] = sk;
    }
    if (v->nd == 0) { v->nd = 1; v->d[0] = 1; v->sx[0] = 1; }
}

static inline int64_t tview_row(const tview *v, int64_t r) {
    int64_t off = 0;
    for (int k = v->nd - 2; k >= 0; k--) {
        int64_t q = r / v->d[k];
        off += (r - q * v->d[k]) * v->sx[k];
        r = q;
    }
    return off;
}

sal_status sal_cpu_transpose_fwd(const sal_op_call *c, sal_error *err) {
    NEED_PARAMS(c, err);
    const float *x = c->in[0];
    float *y = c->out[0];
    int nt = nthreads(c);
    int64_t n = numel(c->out_shape[0]);
    if (n == 0) return SAL_OK;
    tview v;
    tview_make(c->params, c->in_shape[0], &v);
    const int64_t len = v.d[v.nd - 1], sl = v.sx[v.nd - 1], rows = n / len;
    if (sl == 1) {
#pragma omp parallel for num_threads(nt) if (parallel : n > PAR_MIN) schedule(static)
        for (int64_t r = 0; r < rows; r++)
            memcpy(y + r * len, x + tview_row(&v, r), sizeof(float) * (size_t)len);
    } else {
#pragma omp parallel for num_threads(nt) if (parallel : n > PAR_MIN) schedule(static)
        for (int64_t r = 0; r < rows; r++) {
            const float *xr = x + tview_row(&v, r);
            float *yr = y + r * len;
            for (int64_t j = 0; j < len; j++) yr[j] = xr[j * sl];
        }
    }
    return SAL_OK;
}

sal_status sal_cpu_transpose_bwd(const sal_op_call *c, sal_error *err) {
    NEED_PARAMS(c, err);
    const float *g = c->gout[0];
    float *gx = c->gin[0];
    if (!gx || !g) return SAL_OK;
    int nt = nthreads(c);
    int64_t n = numel(c->out_shape[0]);
    if (n == 0) return SAL_OK;
    tview v;
    tview_make(c->params, c->in_shape[0], &v);
    const int64_t len = v.d[v.nd - 1], sl = v.sx[v.nd - 1], rows = n / len;
#pragma omp parallel for num_threads(nt) if (parallel : n > PAR_MIN) schedule(static)
    for (int64_t r = 0; r < rows; r++) {   /* each x element is one y element: no races */
        float *gxr = gx + tview_row(&v, r);
        const float *gr = g + r * len;
        for (int64_t j = 0; j < len; j++) gxr[j * sl] += gr[j];
    }
    return SAL_OK;
}

/* ------------------------------------------------------------------------------------------------ */
/* Pad: per dim, crop (negative pads) then pad (constant, edge or reflect)                         */

typedef struct pview {
    int nd;
    int64_t xd[SAL_MAX_DIMS], yd[SAL_MAX_DIMS], xs[SAL_MAX_DIMS];  /* dims, x strides */
    int64_t lo[SAL_MAX_DIMS];     /* positive pad before */
    int64_t crop[SAL_MAX_DIMS];   /* elements cropped before */
    int64_t keep[SAL_MAX_DIMS];   /* elements of x kept */
    int mode;
} pview;

static void pview_make(const sal_pad_params *p, const sal_shape *xs, const sal_shape *ys,
                       pview *v) {
    v->nd = xs->ndim;
    v->mode = p->mode;
    int64_t s = 1;
    for (int d = xs->ndim - 1; d >= 0; d--) {
        v->xd[d] = xs->d[d];
        v->yd[d] = ys->d[d];
        v->xs[d] = s;
        s *= xs->d[d];
        v->lo[d] = p->before[d] > 0 ? p->before[d] : 0;
        v->crop[d] = p->before[d] < 0 ? -p->before[d] : 0;
        v->keep[d] = xs->d[d] - v->crop[d] - (p->after[d] < 0 ? -p->after[d] : 0);
    }
}

/* x index on dim d for y index o, or -1 for the constant. */
static inline int64_t pad_src(const pview *v, int d, int64_t o) {
    int64_t j = o - v->lo[d], L = v->keep[d];
    if (j >= 0 && j < L) return v->crop[d] + j;
    if (v->mode == SAL_PAD_CONSTANT) return -1;
    if (v->mode == SAL_PAD_EDGE) return v->crop[d] + (j < 0 ? 0 : L - 1);
    if (L == 1) return v->crop[d];
    int64_t per = 2 * (L - 1);   /* reflect without repeating the edge */
    j %= per;
    if (j < 0) j += per;
    return v->crop[d] + (j < L ? j : per - j);
}

/* x offset of y row r (all dims but the last), or -1 when the row lies in the constant border. */
static inline int64_t pad_row(const pview *v, int64_t r) {
    int64_t off = 0;
    for (int d = v->nd - 2; d >= 0; d--) {
        int64_t q = r / v->yd[d], s = pad_src(v, d, r - q * v->yd[d]);
        if (s < 0) return -1;
        off += s * v->xs[d];
        r = q;
    }
    return off;
}

sal_status sal_cpu_pad_fwd(const sal_op_call *c, sal_error *err) {
    NEED_PARAMS(c, err);
    const sal_pad_params *p = c->params;
    const float *x = c->in[0];
    float *y = c->out[0];
    int nt = nthreads(c);
    const int64_t n = numel(c->out_shape[0]);
    if (n == 0) return SAL_OK;
    if (c->in_shape[0]->ndim == 0) { y[0] = x[0]; return SAL_OK; }
    pview v;
    pview_make(p, c->in_shape[0], c->out_shape[0], &v);
    const int last = v.nd - 1;
    const int64_t len = v.yd[last], rows = n / len, lo = v.lo[last], keep = v.keep[last];
    const float value = p->value;
#pragma omp parallel for num_threads(nt) if (parallel : n > PAR_MIN) schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        float *yr = y + r * len;
        int64_t off = pad_row(&v, r);
        if (off < 0) {
            for (int64_t j = 0; j < len; j++) yr[j] = value;
            continue;
        }
        const float *xr = x + off;
        if (keep > 0) memcpy(yr + lo, xr + v.crop[last], sizeof(float) * (size_t)keep);
        if (v.mode == SAL_PAD_CONSTANT) {
            for (int64_t j = 0; j < lo; j++) yr[j] = value;
            for (int64_t j = lo + keep; j < len; j++) yr[j] = value;
        } else {
            for (int64_t j = 0; j < lo; j++) yr[j] = xr[pad_src(&v, last, j)];
            for (int64_t j = lo + keep; j < len; j++) yr[j] = xr[pad_src(&v, last, j)];
        }
    }
    return SAL_OK;
}

/* Constant mode: the gradient cropped back. Edge/reflect: border gradients also flow to the
 * x elements they copied; tasks are the leading unpadded dims, so no two tasks share an x. */
sal_status sal_cpu_pad_bwd(const sal_op_call *c, sal_error *err) {
    NEED_PARAMS(c, err);
    const sal_pad_params *p = c->params;
    const float *g = c->gout[0];
    float *gx = c->gin[0];
    if (!gx || !g) return SAL_OK;
    int nt = nthreads(c);
    const int64_t n = numel(c->out_shape[0]);
    if (n == 0 || numel(c->in_shape[0]) == 0) return SAL_OK;
    if (c->in_shape[0]->ndim == 0) { gx[0] += g[0]; return SAL_OK; }
    pview v;
    pview_make(p, c->in_shape[0], c->out_shape[0], &v);
    const int last = v.nd - 1;
    const int64_t len = v.yd[last], rows = n / len, lo = v.lo[last], keep = v.keep[last];
    const int64_t crop = v.crop[last];
    if (v.mode == SAL_PAD_CONSTANT) {
#pragma omp parallel for num_threads(nt) if (parallel : n > PAR_MIN) schedule(static)
        for (int64_t r = 0; r < rows; r++) {
            int64_t off = pad_row(&v, r);
            if (off < 0) continue;
            float *gxr = gx + off + crop;
            const float *gr = g + r * len + lo;
#pragma omp simd
            for (int64_t j = 0; j < keep; j++) gxr[j] += gr[j];
        }
        return SAL_OK;
    }
    int lead = 0;   /* leading dims without pads: y rows below them map into one x block */
    while (lead < last && p->before[lead] == 0 && p->after[lead] == 0) lead++;
    int64_t tasks = 1;
    for (int d = 0; d < lead; d++) tasks *= v.yd[d];
    const int64_t rows_per = rows / tasks;
#pragma omp parallel for num_threads(nt) if (parallel : n > PAR_MIN) schedule(static)
    for (int64_t t = 0; t < tasks; t++) {
        for (int64_t r = t * rows_per; r < (t + 1) * rows_per; r++) {
            float *gxr = gx + pad_row(&v, r);   /* never -1: edge/reflect always map */
            const float *gr = g + r * len;
            for (int64_t j = 0; j < lo; j++) gxr[pad_src(&v, last, j)] += gr[j];
#pragma omp simd
            for (int64_t j = 0; j < keep; j++) gxr[crop + j] += gr[lo + j];
            for (int64_t j = lo + keep; j < len; j++) gxr[pad_src(&v, last, j)] += gr[j];
        }
    }
    return SAL_OK;
}
