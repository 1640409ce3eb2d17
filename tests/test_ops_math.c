/* test_ops_math.c — issue 13's math ops (host/ops/infer_math.c, kernels/twin_math.h as the CPU
 * runs them): Sqrt, Erf, Gelu, Selu, Elu, Softplus, Pow, LayerNormalization, ReduceSum, ReduceMax,
 * GlobalMaxPool. Forward against naive double-precision references written here from the ONNX
 * definitions; input gradients against central differences (tu_grad_check), except ReduceMax's,
 * checked by its defining property (the gradient lands on the first maximum); statuses of bad
 * attributes and shapes. Every run draws a fresh seed, printed on failure. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "ops/op_decls.h"
#include "backend/backend.h"

typedef unsigned long long ull;

/* ------------------------------------------------------------------------------------------------ */
/* Helpers                                                                                          */

static int64_t numel(sal_shape s) {
    int64_t n = 1;
    for (int i = 0; i < s.ndim; i++) n *= s.d[i];
    return n;
}

static sal_graph *node(const char *op, int n_in, const tu_input *ins, int n_out, int opset) {
    sal_graph *g = tu_op_graph(op, n_in, ins, n_out, opset);
    cr_assert(g, "tu_op_graph(%s) failed", op);
    return g;
}

static sal_node *N0(sal_graph *g) { return &g->nodes[0]; }

/* Random runtime inputs (node-input order) in [lo, hi], forward through the CPU kernels. */
typedef struct run {
    int n;
    float *x[8];
    sal_shape xs[8];
    float *y;
    sal_shape ys;
} run;

static void run_free(run *r) {
    for (int i = 0; i < r->n; i++) free(r->x[i]);
    free(r->y);
    memset(r, 0, sizeof *r);
}

static void run_fwd(sal_graph *g, uint64_t seed, float lo, float hi, run *r) {
    memset(r, 0, sizeof *r);
    const sal_node *n = &g->nodes[0];
    uint64_t s = seed;
    for (int i = 0; i < n->n_in; i++) {
        int v = n->in[i];
        if (v < 0 || g->values[v].konst) continue;
        r->xs[r->n] = g->values[v].decl;
        r->x[r->n] = tu_rand_buf(numel(r->xs[r->n]), &s, lo, hi);
        r->n++;
    }
    sal_error err = {0};
    sal_status st = tu_forward(g, (const float *const *)r->x, &r->y, &r->ys, &err);
    cr_assert(st == SAL_OK, "%s forward: %s (%s) (seed %llu)", n->op_type, sal_status_str(st),
              err.msg, (ull)seed);
}

/* max |y - ref| / (1 + |ref|); NaN counts as a failure */
static double max_err(const float *y, const double *ref, int64_t n) {
    double m = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)y[i] - ref[i]) / (1.0 + fabs(ref[i]));
        if (!(d <= m)) m = d;
    }
    return m;
}

#define CHECK_GRAD(g, seed, lo, hi, eps, tol, what)                                               \
    do {                                                                                          \
        tu_grad_result gr_ = tu_grad_check((g), (seed), (lo), (hi), (eps), 200);                  \
        cr_assert(gr_.st == SAL_OK, "%s: gradient check: %s (%s) (seed %llu)", (what),           \
                  sal_status_str(gr_.st), gr_.msg, (ull)(seed));                                  \
        cr_assert(gr_.checked > 0, "%s: nothing checked", (what));                                \
        cr_assert(gr_.max_err < (tol), "%s: gradient error %g >= %g (seed %llu)", (what),         \
                  gr_.max_err, (double)(tol), (ull)(seed));                                       \
    } while (0)

static sal_status infer_status(sal_graph *g, sal_error *err) {
    float *y = NULL;
    sal_shape ys;
    const sal_node *n = &g->nodes[0];
    float *x[8] = {0};
    int k = 0;
    uint64_t s = 1;
    for (int i = 0; i < n->n_in; i++) {
        int v = n->in[i];
        if (v >= 0 && !g->values[v].konst) x[k++] = tu_rand_buf(numel(g->values[v].decl), &s, 0.f, 1.f);
    }
    sal_status st = tu_forward(g, (const float *const *)x, &y, &ys, err);
    for (int i = 0; i < k; i++) free(x[i]);
    free(y);
    return st;
}

/* ------------------------------------------------------------------------------------------------ */
/* Unary math                                                                                       */

typedef enum { U_SQRT, U_ERF, U_GELU, U_GELU_TANH, U_SELU, U_ELU, U_SOFTPLUS } un_kind;

static double un_ref(un_kind k, double x, double alpha, double gamma) {
    switch (k) {
    case U_SQRT: return sqrt(x);
    case U_ERF: return erf(x);
    case U_GELU: return 0.5 * x * (1.0 + erf(x / sqrt(2.0)));
    case U_GELU_TANH: return 0.5 * x * (1.0 + tanh(sqrt(2.0 / 3.14159265358979323846) * (x + 0.044715 * x * x * x)));
    case U_SELU: return gamma * (x > 0 ? x : alpha * (exp(x) - 1.0));
    case U_ELU: return x > 0 ? x : alpha * (exp(x) - 1.0);
    case U_SOFTPLUS: return log1p(exp(x));
    }
    return 0;
}

/* Forward against un_ref on [lo, hi], gradient by central differences. Selu and Elu have a kink
 * at 0 (their derivative jumps): their ranges keep clear of it. */
static void check_unary(sal_graph *g, un_kind k, double alpha, double gamma, float lo, float hi,
                        const char *what) {
    uint64_t seed = tu_fresh_seed();
    run r;
    run_fwd(g, seed, lo, hi, &r);
    int64_t n = numel(r.ys);
    cr_assert_eq(n, numel(r.xs[0]), "%s: output size", what);
    double *ref = malloc(sizeof(double) * (size_t)n);
    for (int64_t i = 0; i < n; i++) ref[i] = un_ref(k, r.x[0][i], alpha, gamma);
    double e = max_err(r.y, ref, n);
    cr_assert(e < 5e-7, "%s: forward error %g (seed %llu)", what, e, (ull)seed);
    free(ref);
    run_free(&r);
    CHECK_GRAD(g, seed, lo, hi, 1e-3f, 2e-3, what);
}

Test(unary, sqrt_erf_softplus) {
    tu_input in[] = {tu_rt(tu_shape(3, 2, 7, 9))};
    sal_graph *g = node("Sqrt", 1, in, 1, 13);
    check_unary(g, U_SQRT, 0, 0, 0.2f, 4.f, "Sqrt");
    sal_graph_free(g);
    g = node("Erf", 1, in, 1, 13);
    check_unary(g, U_ERF, 0, 0, -3.f, 3.f, "Erf");
    sal_graph_free(g);
    g = node("Softplus", 1, in, 1, 1);
    check_unary(g, U_SOFTPLUS, 0, 0, -30.f, 30.f, "Softplus wide");   /* no overflow either side */
    check_unary(g, U_SOFTPLUS, 0, 0, -2.f, 2.f, "Softplus");
    sal_graph_free(g);
}

Test(unary, gelu_opset20) {
    tu_input in[] = {tu_rt(tu_shape(2, 5, 33))};
    sal_graph *g = node("Gelu", 1, in, 1, 20);
    check_unary(g, U_GELU, 0, 0, -4.f, 4.f, "Gelu");
    sal_graph_free(g);
    g = node("Gelu", 1, in, 1, 20);
    sal_node_attr_str(N0(g), "approximate", "tanh");
    check_unary(g, U_GELU_TANH, 0, 0, -4.f, 4.f, "Gelu tanh");
    sal_graph_free(g);
    g = node("Gelu", 1, in, 1, 20);
    sal_node_attr_str(N0(g), "approximate", "fast");
    sal_error err = {0};
    sal_status st = infer_status(g, &err);
    cr_assert(st == SAL_ERR_UNSUPPORTED && strstr(err.msg, "fast") && strstr(err.msg, "node0"),
              "approximate=fast: %s (%s)", sal_status_str(st), err.msg);
    sal_graph_free(g);
}

Test(unary, selu_elu) {
    tu_input in[] = {tu_rt(tu_shape(2, 4, 25))};
    const double sa = 1.67326319217681884765625, sg = 1.05070102214813232421875;
    sal_graph *g = node("Selu", 1, in, 1, 6);
    check_unary(g, U_SELU, sa, sg, 0.01f, 2.f, "Selu default, x > 0");
    check_unary(g, U_SELU, sa, sg, -3.f, -0.01f, "Selu default, x < 0");
    sal_graph_free(g);
    g = node("Selu", 1, in, 1, 6);
    sal_node_attr_float(N0(g), "alpha", 2.f);
    sal_node_attr_float(N0(g), "gamma", 3.f);
    check_unary(g, U_SELU, 2.0, 3.0, -3.f, -0.01f, "Selu alpha 2 gamma 3");
    sal_graph_free(g);
    g = node("Elu", 1, in, 1, 6);
    check_unary(g, U_ELU, 1.0, 0, -3.f, -0.01f, "Elu default, x < 0");
    check_unary(g, U_ELU, 1.0, 0, 0.01f, 3.f, "Elu default, x > 0");
    sal_graph_free(g);
    g = node("Elu", 1, in, 1, 6);
    sal_node_attr_float(N0(g), "alpha", 0.5f);
    check_unary(g, U_ELU, 0.5, 0, -3.f, -0.01f, "Elu alpha 0.5");
    sal_graph_free(g);
}

/* ------------------------------------------------------------------------------------------------ */
/* Pow                                                                                              */

static void check_pow_scalar(tu_input e, double ev, float lo, float hi, const char *what) {
    tu_input in[] = {tu_rt(tu_shape(3, 2, 3, 11)), e};
    sal_graph *g = node("Pow", 2, in, 1, 15);
    uint64_t seed = tu_fresh_seed();
    run r;
    run_fwd(g, seed, lo, hi, &r);
    int64_t n = numel(r.ys);
    double *ref = malloc(sizeof(double) * (size_t)n);
    for (int64_t i = 0; i < n; i++) ref[i] = pow(r.x[0][i], ev);
    double err = max_err(r.y, ref, n);
    cr_assert(err < 2e-6, "%s: forward error %g (seed %llu)", what, err, (ull)seed);
    free(ref);
    run_free(&r);
    CHECK_GRAD(g, seed, lo, hi, 1e-3f, 2e-3, what);
    sal_graph_free(g);
}

Test(pow, scalar_exponents) {
    const int64_t two = 2, three = 3;
    const float half = 0.5f, mhalf = -1.5f, f2 = 2.f;
    check_pow_scalar(tu_ci(tu_shape(0), &two), 2.0, -2.f, 2.f, "x^2 (int64 exponent)");
    check_pow_scalar(tu_ci(tu_shape(1, 1), &three), 3.0, -2.f, 2.f, "x^3 (int64 (1) exponent)");
    check_pow_scalar(tu_cf(tu_shape(0), &f2), 2.0, -2.f, 2.f, "x^2 (float exponent)");
    check_pow_scalar(tu_cf(tu_shape(0), &half), 0.5, 0.1f, 3.f, "x^0.5");
    check_pow_scalar(tu_cf(tu_shape(0), &mhalf), -1.5, 0.2f, 3.f, "x^-1.5");
}

/* Both runtime, broadcast (3,1) ^ (4): gradients of x and of the exponent. */
Test(pow, broadcast_tensors) {
    tu_input in[] = {tu_rt(tu_shape(2, 3, 1)), tu_rt(tu_shape(1, 4))};
    sal_graph *g = node("Pow", 2, in, 1, 13);
    uint64_t seed = tu_fresh_seed();
    run r;
    run_fwd(g, seed, 0.3f, 2.f, &r);
    cr_assert(r.ys.ndim == 2 && r.ys.d[0] == 3 && r.ys.d[1] == 4, "output shape");
    double ref[12];
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 4; j++) ref[i * 4 + j] = pow(r.x[0][i], r.x[1][j]);
    double e = max_err(r.y, ref, 12);
    cr_assert(e < 2e-6, "forward error %g (seed %llu)", e, (ull)seed);
    run_free(&r);
    CHECK_GRAD(g, seed, 0.3f, 2.f, 1e-3f, 2e-3, "Pow broadcast");
    sal_graph_free(g);
    tu_input bad[] = {tu_rt(tu_shape(2, 3, 2)), tu_rt(tu_shape(1, 4))};
    g = node("Pow", 2, bad, 1, 13);
    sal_error err = {0};
    sal_status st = infer_status(g, &err);
    cr_assert(st == SAL_ERR_SHAPE && strstr(err.msg, "broadcast"), "(3,2)^(4): %s (%s)",
              sal_status_str(st), err.msg);
    sal_graph_free(g);
}

/* ------------------------------------------------------------------------------------------------ */
/* LayerNormalization                                                                               */

static void ln_ref(const float *x, int64_t rows, int64_t len, const float *s, int64_t ns,
                   const float *b, int64_t nb, double eps, double *y) {
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * len;
        double m = 0, v = 0;
        for (int64_t k = 0; k < len; k++) m += xr[k];
        m /= (double)len;
        for (int64_t k = 0; k < len; k++) v += (xr[k] - m) * (xr[k] - m);
        v /= (double)len;
        for (int64_t k = 0; k < len; k++)
            y[r * len + k] = (xr[k] - m) / sqrt(v + eps) * s[ns == 1 ? 0 : k] +
                             (nb ? b[nb == 1 ? 0 : k] : 0.0);
    }
}

/* x (runtime) normalized from `axis`; Scale and B runtime when `rt_params` (their gradients are
 * checked too), else constants. */
static void check_ln(sal_shape xs, int axis, int has_axis, int with_b, int rt_params, float eps,
                     int has_eps) {
    int ax = axis < 0 ? axis + xs.ndim : axis;
    int64_t rows = 1, len = 1;
    for (int d = 0; d < xs.ndim; d++) *(d < ax ? &rows : &len) *= xs.d[d];
    sal_shape ps = {xs.ndim - ax, {0}};
    for (int d = ax; d < xs.ndim; d++) ps.d[d - ax] = xs.d[d];
    uint64_t seed = tu_fresh_seed(), s = seed ^ 0x5bd1e995;
    float *sc = tu_rand_buf(len, &s, 0.5f, 1.5f), *bi = tu_rand_buf(len, &s, -1.f, 1.f);
    tu_input in[3] = {tu_rt(xs), rt_params ? tu_rt(ps) : tu_cf(ps, sc),
                      rt_params ? tu_rt(ps) : tu_cf(ps, bi)};
    sal_graph *g = node("LayerNormalization", with_b ? 3 : 2, in, 1, 17);
    if (has_axis) sal_node_attr_int(N0(g), "axis", axis);
    if (has_eps) sal_node_attr_float(N0(g), "epsilon", eps);
    char what[96];
    snprintf(what, sizeof what, "LayerNorm rank %d axis %d%s%s", xs.ndim, axis, with_b ? " +B" : "",
             rt_params ? " runtime Scale/B" : "");
    run r;
    run_fwd(g, seed, -2.f, 3.f, &r);
    const float *S = rt_params ? r.x[1] : sc, *B = rt_params ? (with_b ? r.x[2] : NULL) : bi;
    double *ref = malloc(sizeof(double) * (size_t)(rows * len));
    ln_ref(r.x[0], rows, len, S, len, B, with_b ? len : 0, has_eps ? eps : 1e-5, ref);
    double e = max_err(r.y, ref, rows * len);
    cr_assert(e < 1e-5, "%s: forward error %g (seed %llu)", what, e, (ull)seed);
    free(ref);
    run_free(&r);
    CHECK_GRAD(g, seed, -2.f, 3.f, 1e-3f, 5e-3, what);
    sal_graph_free(g);
    free(sc);
    free(bi);
}

Test(layernorm, axes_scale_bias) {
    check_ln(tu_shape(3, 2, 5, 16), -1, 0, 1, 0, 0, 0);     /* ViT's (N, tokens, width) */
    check_ln(tu_shape(4, 2, 3, 4, 5), 1, 1, 1, 0, 1e-3f, 1);
    check_ln(tu_shape(4, 2, 3, 4, 5), -2, 1, 0, 0, 0, 0);
    check_ln(tu_shape(2, 3, 7), 0, 1, 1, 0, 0, 0);
    check_ln(tu_shape(3, 2, 3, 6), -1, 1, 1, 1, 0, 0);
}

Test(layernorm, bad) {
    tu_input in[] = {tu_rt(tu_shape(2, 3, 4)), tu_rt(tu_shape(1, 5))};
    sal_graph *g = node("LayerNormalization", 2, in, 1, 17);
    sal_error err = {0};
    sal_status st = infer_status(g, &err);
    cr_assert(st == SAL_ERR_SHAPE && strstr(err.msg, "Scale"), "Scale (5) for (3,4): %s (%s)",
              sal_status_str(st), err.msg);
    sal_graph_free(g);
    tu_input in2[] = {tu_rt(tu_shape(2, 3, 4)), tu_rt(tu_shape(1, 4))};
    g = node("LayerNormalization", 2, in2, 1, 17);
    sal_node_attr_int(N0(g), "axis", 2);
    st = infer_status(g, &err);
    cr_assert(st == SAL_ERR_SHAPE && strstr(err.msg, "axis 2"), "axis 2 of rank 2: %s (%s)",
              sal_status_str(st), err.msg);
    sal_graph_free(g);
}

/* ------------------------------------------------------------------------------------------------ */
/* ReduceSum, ReduceMax, GlobalMaxPool                                                              */

/* Naive reduction of x over the dims in mask (sum or max), output in x's order of kept dims. */
static void reduce_ref(const float *x, sal_shape xs, unsigned mask, int is_max, double *y, int64_t ny) {
    for (int64_t j = 0; j < ny; j++) y[j] = is_max ? -INFINITY : 0.0;
    int64_t n = numel(xs);
    for (int64_t i = 0; i < n; i++) {
        int64_t r = i, j = 0, mul = 1;
        for (int d = xs.ndim - 1; d >= 0; d--) {
            int64_t c = r % xs.d[d];
            r /= xs.d[d];
            if (!(mask & (1u << d))) { j += c * mul; mul *= xs.d[d]; }
        }
        if (is_max) y[j] = fmax(y[j], x[i]);
        else y[j] += x[i];
    }
}

/* ReduceSum / ReduceMax with axes (na of them; na < 0: none given) as attribute (opset < 13 for
 * Sum, < 18 for Max) or input. */
static sal_graph *reduce_graph(const char *op, sal_shape xs, int na, const int64_t *axes, int keepdims,
                               int opset, int as_input) {
    static const int64_t none[1] = {0};   /* an empty constant still needs a data pointer */
    tu_input in[2] = {tu_rt(xs), tu_ci(tu_shape(1, na < 0 ? 0 : na), axes ? axes : none)};
    sal_graph *g = node(op, as_input && na >= 0 ? 2 : 1, in, 1, opset);
    if (!as_input && na >= 0) sal_node_attr_ints(N0(g), "axes", na, axes);
    if (keepdims >= 0) sal_node_attr_int(N0(g), "keepdims", keepdims);
    return g;
}

static void check_reduce(const char *op, sal_shape xs, int na, const int64_t *axes, int keepdims,
                         int opset, int as_input) {
    int is_max = strcmp(op, "ReduceMax") == 0;
    sal_graph *g = reduce_graph(op, xs, na, axes, keepdims, opset, as_input);
    unsigned mask = 0;
    for (int i = 0; i < na; i++) mask |= 1u << (axes[i] < 0 ? axes[i] + xs.ndim : axes[i]);
    if (na <= 0) mask = (1u << xs.ndim) - 1u;
    char what[128];
    snprintf(what, sizeof what, "%s-%d mask %#x keepdims %d %s", op, opset, mask, keepdims,
             as_input ? "axes input" : "axes attribute");
    uint64_t seed = tu_fresh_seed();
    run r;
    run_fwd(g, seed, -1.f, 1.f, &r);
    int64_t ny = 1;
    int kd = keepdims != 0;
    int rank = 0;
    for (int d = 0; d < xs.ndim; d++) {
        if (!(mask & (1u << d))) { ny *= xs.d[d]; rank++; }
        else if (kd) rank++;
    }
    cr_assert_eq(r.ys.ndim, rank, "%s: output rank %d, expected %d", what, r.ys.ndim, rank);
    cr_assert_eq(numel(r.ys), ny, "%s: output size", what);
    double *ref = malloc(sizeof(double) * (size_t)ny);
    reduce_ref(r.x[0], xs, mask, is_max, ref, ny);
    double e = max_err(r.y, ref, ny);
    cr_assert(e < 1e-6, "%s: forward error %g (seed %llu)", what, e, (ull)seed);
    free(ref);
    run_free(&r);
    if (!is_max) CHECK_GRAD(g, seed, -1.f, 1.f, 1e-3f, 1e-3, what);
    sal_graph_free(g);
}

Test(reduce, sum_axes_forms) {
    const int64_t a1[] = {1}, a13[] = {1, 3}, aneg[] = {-1, 0};
    sal_shape xs = tu_shape(4, 2, 3, 4, 5);
    check_reduce("ReduceSum", xs, 1, a1, -1, 11, 0);
    check_reduce("ReduceSum", xs, 2, a13, 0, 11, 0);
    check_reduce("ReduceSum", xs, 2, a13, 1, 13, 1);
    check_reduce("ReduceSum", xs, 2, aneg, 0, 13, 1);
    check_reduce("ReduceSum", xs, -1, NULL, 1, 13, 1);   /* no axes: everything */
}

Test(reduce, sum_noop_with_empty_axes) {
    sal_graph *g = reduce_graph("ReduceSum", tu_shape(2, 3, 4), 0, NULL, 1, 13, 1);
    sal_node_attr_int(N0(g), "noop_with_empty_axes", 1);
    uint64_t seed = tu_fresh_seed();
    run r;
    run_fwd(g, seed, -1.f, 1.f, &r);
    cr_assert(numel(r.ys) == 12, "noop: output size %lld", (long long)numel(r.ys));
    for (int i = 0; i < 12; i++) cr_assert(r.y[i] == r.x[0][i], "noop: y[%d] changed", i);
    run_free(&r);
    sal_graph_free(g);
}

Test(reduce, max_axes_forms) {
    const int64_t a2[] = {2}, a02[] = {0, 2}, a3[] = {-1};
    sal_shape xs = tu_shape(4, 3, 2, 5, 4);
    check_reduce("ReduceMax", xs, 1, a2, -1, 13, 0);
    check_reduce("ReduceMax", xs, 2, a02, 0, 13, 0);
    check_reduce("ReduceMax", xs, 1, a3, 1, 18, 1);
    check_reduce("ReduceMax", xs, -1, NULL, 0, 18, 1);
}

/* The gradient of a max is the incoming gradient at the (first) maximum, 0 elsewhere; the input
 * has a tie so "first" matters (PyTorch's max(dim) convention). */
Test(reduce, max_gradient_goes_to_first_maximum) {
    const int64_t ax[] = {0};
    sal_graph *g = reduce_graph("ReduceMax", tu_shape(2, 3, 4), 1, ax, 0, 13, 0);
    float x[12] = {0.1f, 0.9f, 0.3f, 0.4f, /* */ 0.5f, 0.9f, 0.2f, 0.8f, /* */ 0.7f, -1.f, 0.2f, 0.1f};
    /* columns: max of {0.1,0.5,0.7} row 2; {0.9,0.9,-1} rows 0 and 1 tie: row 0;
     * {0.3,0.2,0.2} row 0; {0.4,0.8,0.1} row 1 */
    const int arg[4] = {2, 0, 0, 1};
    const float gy[4] = {1.f, -2.f, 3.f, 0.5f};
    sal_error err = {0};
    const sal_op_def *def = sal_op_lookup("ReduceMax");
    sal_shape xs = tu_shape(2, 3, 4), ys;
    const sal_shape *insp[2] = {&xs, NULL};
    int idt[2] = {SAL_F32, 0}, odt[1] = {SAL_F32};
    const sal_tensor *kc[2] = {NULL, NULL};
    sal_op_ctx ctx = {0};
    ctx.g = g; ctx.node = N0(g); ctx.n_in = 1; ctx.in_shape = insp; ctx.in_dtype = idt;
    ctx.in_const = kc; ctx.n_out = 1; ctx.out_shape = &ys; ctx.out_dtype = odt; ctx.err = &err;
    cr_assert(def->infer(&ctx) == SAL_OK, "infer: %s", err.msg);
    float y[4], gx[12] = {0};
    const float *in[1] = {x};
    float *out[1] = {y};
    const float *gout[1] = {gy};
    float *gin[1] = {gx};
    const sal_shape *oshp[1] = {&ys};
    sal_op_call c = {0};
    c.node = N0(g); c.params = ctx.params; c.n_in = 1; c.n_out = 1; c.in = in; c.in_shape = insp;
    c.out = out; c.out_shape = oshp; c.gout = gout; c.gin = gin; c.threads = 1;
    cr_assert(sal_cpu_forward(&c, &err) == SAL_OK, "forward: %s", err.msg);
    cr_assert(sal_cpu_backward(&c, &err) == SAL_OK, "backward: %s", err.msg);
    for (int col = 0; col < 4; col++) {
        cr_assert(y[col] == x[arg[col] * 4 + col], "y[%d] = %g", col, y[col]);
        for (int row = 0; row < 3; row++) {
            float want = row == arg[col] ? gy[col] : 0.f;
            cr_assert(gx[row * 4 + col] == want, "gx[%d][%d] = %g, expected %g", row, col,
                      gx[row * 4 + col], want);
        }
    }
    free(ctx.params);
    sal_graph_free(g);
}

Test(reduce, globalmaxpool) {
    tu_input in[] = {tu_rt(tu_shape(4, 2, 3, 5, 6))};
    sal_graph *g = node("GlobalMaxPool", 1, in, 1, 1);
    uint64_t seed = tu_fresh_seed();
    run r;
    run_fwd(g, seed, -1.f, 1.f, &r);
    cr_assert(r.ys.ndim == 4 && r.ys.d[0] == 2 && r.ys.d[1] == 3 && r.ys.d[2] == 1 && r.ys.d[3] == 1,
              "output shape");
    double ref[6];
    reduce_ref(r.x[0], r.xs[0], 0xcu, 1, ref, 6);
    double e = max_err(r.y, ref, 6);
    cr_assert(e == 0, "forward error %g (seed %llu)", e, (ull)seed);
    run_free(&r);
    sal_graph_free(g);
    tu_input ok1[] = {tu_rt(tu_shape(3, 2, 3, 5))};
    sal_graph *g1 = node("GlobalMaxPool", 1, ok1, 1, 1);
    sal_error err = {0};
    cr_assert(infer_status(g1, &err) == SAL_OK, "1-D spatial: %s", err.msg);
    sal_graph_free(g1);
    tu_input bad2[] = {tu_rt(tu_shape(2, 3, 5))};
    sal_graph *g2 = node("GlobalMaxPool", 1, bad2, 1, 1);
    cr_assert(infer_status(g2, &err) == SAL_ERR_SHAPE && strstr(err.msg, "(N, C, spatial"),
              "rank 2: %s", err.msg);
    sal_graph_free(g2);
}

/* ------------------------------------------------------------------------------------------------ */
/* ConvTranspose                                                                                    */

/* The scatter form (each input element spreads x * W over the output), in double: the kernels use
 * the gather form, so the two are written independently. */
static void convt_ref(const float *x, const float *w, const float *b, int64_t N, int64_t C, int64_t H,
                      int64_t W, int64_t M, int64_t G, int64_t KH, int64_t KW, int64_t sh, int64_t sw,
                      int64_t dh, int64_t dw, int64_t pt, int64_t pl, int64_t OH, int64_t OW, double *y) {
    const int64_t mg = M / G, cg = C / G;
    for (int64_t i = 0; i < N * M * OH * OW; i++) y[i] = b ? b[(i / (OH * OW)) % M] : 0.0;
    for (int64_t n = 0; n < N; n++)
        for (int64_t c = 0; c < C; c++)
            for (int64_t iy = 0; iy < H; iy++)
                for (int64_t ix = 0; ix < W; ix++)
                    for (int64_t ml = 0; ml < mg; ml++)
                        for (int64_t ky = 0; ky < KH; ky++)
                            for (int64_t kx = 0; kx < KW; kx++) {
                                int64_t oy = iy * sh - pt + ky * dh, ox = ix * sw - pl + kx * dw;
                                if (oy < 0 || oy >= OH || ox < 0 || ox >= OW) continue;
                                int64_t m = (c / cg) * mg + ml;
                                y[((n * M + m) * OH + oy) * OW + ox] +=
                                    (double)x[((n * C + c) * H + iy) * W + ix] * w[((c * mg + ml) * KH + ky) * KW + kx];
                            }
}

/* x (2, C, 5, 4) runtime, W (C, M/G, 3, 2) and B constants; strides, dilations, pads,
 * output_padding; output (2, M, OH, OW) with OH, OW computed here from ONNX's formula. */
static void check_convt(int64_t C, int64_t M, int64_t G, int64_t sh, int64_t sw, int64_t dh, int64_t dw,
                        int64_t pt, int64_t pl, int64_t pb, int64_t pr, int64_t oph, int64_t opw, int bias) {
    const int64_t N = 2, H = 5, W = 4, KH = 3, KW = 2;
    const int64_t OH = sh * (H - 1) + oph + (KH - 1) * dh + 1 - pt - pb;
    const int64_t OW = sw * (W - 1) + opw + (KW - 1) * dw + 1 - pl - pr;
    uint64_t seed = tu_fresh_seed(), s = seed ^ 0x9e37;
    float *w = tu_rand_buf(C * (M / G) * KH * KW, &s, -1.f, 1.f), *b = tu_rand_buf(M, &s, -1.f, 1.f);
    tu_input in[3] = {tu_rt(tu_shape(4, N, C, H, W)), tu_cf(tu_shape(4, C, M / G, KH, KW), w),
                      tu_cf(tu_shape(1, M), b)};
    sal_graph *g = node("ConvTranspose", bias ? 3 : 2, in, 1, 11);
    const int64_t st[] = {sh, sw}, dl[] = {dh, dw}, pads[] = {pt, pl, pb, pr}, op[] = {oph, opw};
    sal_node_attr_ints(N0(g), "strides", 2, st);
    sal_node_attr_ints(N0(g), "dilations", 2, dl);
    sal_node_attr_ints(N0(g), "pads", 4, pads);
    sal_node_attr_ints(N0(g), "output_padding", 2, op);
    sal_node_attr_int(N0(g), "group", G);
    char what[160];
    snprintf(what, sizeof what, "ConvTranspose C %lld M %lld G %lld s %lld,%lld d %lld,%lld pads %lld,%lld,%lld,%lld op %lld,%lld%s",
             (long long)C, (long long)M, (long long)G, (long long)sh, (long long)sw, (long long)dh,
             (long long)dw, (long long)pt, (long long)pl, (long long)pb, (long long)pr, (long long)oph,
             (long long)opw, bias ? " +B" : "");
    run r;
    run_fwd(g, seed, -1.f, 1.f, &r);
    cr_assert(r.ys.ndim == 4 && r.ys.d[0] == N && r.ys.d[1] == M && r.ys.d[2] == OH && r.ys.d[3] == OW,
              "%s: output shape", what);
    double *ref = malloc(sizeof(double) * (size_t)(N * M * OH * OW));
    convt_ref(r.x[0], w, bias ? b : NULL, N, C, H, W, M, G, KH, KW, sh, sw, dh, dw, pt, pl, OH, OW, ref);
    double e = max_err(r.y, ref, N * M * OH * OW);
    cr_assert(e < 1e-6, "%s: forward error %g (seed %llu)", what, e, (ull)seed);
    free(ref);
    run_free(&r);
    CHECK_GRAD(g, seed, -1.f, 1.f, 1e-2f, 1e-4, what);   /* linear in x: tight */
    sal_graph_free(g);
    free(w);
    free(b);
}

Test(convtranspose, geometry) {
    check_convt(3, 4, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 1);
    check_convt(3, 2, 1, 2, 3, 1, 1, 1, 0, 0, 1, 1, 2, 0);   /* strides, pads, output_padding */
    check_convt(4, 6, 2, 2, 1, 2, 1, 0, 1, 1, 0, 0, 0, 1);   /* groups, dilations */
}

Test(convtranspose, output_shape_and_bad) {
    /* output_shape asks for (7, 9) from x (1,1,3,4), W (1,1,3,3), strides 2: full 7 x 9, no pads */
    const float w9[18] = {0};   /* big enough for both weights below */
    tu_input in[] = {tu_rt(tu_shape(4, 1, 1, 3, 4)), tu_cf(tu_shape(4, 1, 1, 3, 3), w9)};
    sal_graph *g = node("ConvTranspose", 2, in, 1, 11);
    const int64_t st[] = {2, 2}, os[] = {6, 8};
    sal_node_attr_ints(N0(g), "strides", 2, st);
    sal_node_attr_ints(N0(g), "output_shape", 2, os);
    run r;
    run_fwd(g, tu_fresh_seed(), -1.f, 1.f, &r);
    cr_assert(r.ys.ndim == 4 && r.ys.d[2] == 6 && r.ys.d[3] == 8, "output_shape (6, 8): got %lld x %lld",
              (long long)r.ys.d[2], (long long)r.ys.d[3]);
    run_free(&r);
    sal_graph_free(g);
    tu_input bad[] = {tu_rt(tu_shape(4, 1, 3, 3, 4)), tu_cf(tu_shape(4, 2, 1, 3, 3), w9)};
    g = node("ConvTranspose", 2, bad, 1, 11);
    sal_error err = {0};
    cr_assert(infer_status(g, &err) == SAL_ERR_SHAPE && strstr(err.msg, "W (2,1,3,3)"),
              "W for 2 channels on 3: %s", err.msg);
    sal_graph_free(g);
}
