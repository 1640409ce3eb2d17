/* test_graph_grad.c — backward through the engine on small multi-node graphs built with the graph
 * builder: every graph's input gradient is compared with central finite differences of
 * sum(seed * output) computed with the engine's own forward pass (accumulated in double), plus
 * capture / stop-at-capture, Guided Backprop against a hand computation, BatchNorm folding against
 * double-precision math, plan-time folding of a shape subgraph across batch sizes, and forward-plan
 * memory reuse.
 *
 * Tolerances: the normalized error max|g - fd| / max|fd| must stay below GRAD_TOL = 2e-2.
 * Steps: EPS_SMOOTH = 1e-2 for smooth graphs, EPS_KINK = 1e-3 for graphs with ReLU / Clip /
 * MaxPool / HardSwish kinks. With float32 activations of order 1 the rounding noise of one
 * difference quotient is ~1e-7 / eps of the output scale, i.e. < 1e-3 of the gradient's scale
 * even at 1e-3, and the O(eps^2) truncation of smooth graphs is smaller still; observed errors
 * are 1e-5..1e-3, at most 6.5e-3 over 300 runs of every graph, so 2e-2 has margin while
 * a wrong factor, index or a missing path shows up at 1e-1 or more (the test
 * grad_check_detects_a_wrong_gradient shows the check failing on a 10% error).
 * Kinks: when +-eps carries a pre-activation (or a max-pool tie) across a kink, the central
 * difference is not the derivative. Such an element is recognised by its two one-sided
 * differences disagreeing by more than KINK_GAP = GRAD_TOL/2 of max|fd| (then the central
 * difference is within GRAD_TOL/4 of the one-sided slope at x), or (a kink on each side) by the
 * quotients at eps and eps/4 disagreeing as much; every element is measured at both steps, the
 * one at eps is used when it is clean, else the one at eps/4 when that is clean, else the element
 * is left out. When more than MAX_SKIP_FRAC = 25% of the checked
 * elements are left out (one ReLU unit within ~1e-4 of zero takes its whole receptive field with
 * it, and in the squeeze-excite block that is the whole image), the check is repeated on fresh
 * inputs, up to MAX_ATTEMPTS times; every attempt's kept elements must pass.
 * The skip decision reads only the finite differences, never the gradient under test, so it
 * cannot hide a bug. Every random number comes from tu_fresh_seed(), printed in each failure
 * message. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"
#include "testutil.h"

#define GRAD_TOL 2e-2
#define KINK_GAP (GRAD_TOL / 2)   /* one-sided differences further apart than this: a kink */
#define MAX_SKIP_FRAC 0.25
#define MAX_ATTEMPTS 3   /* fresh inputs when too many elements straddle kinks */
#define MAX_CHECK 400     /* elements checked per graph input (all of them when fewer) */
#define EPS_KINK 1e-3f    /* step for graphs with ReLU/Clip/MaxPool kinks */
#define EPS_SMOOTH 1e-2f  /* step for smooth graphs */

/* ------------------------------------------------------------------------------------------------ */
/* Graph building                                                                                   */

typedef struct gb {
    sal_graph *g;
    uint64_t rng;
    uint64_t seed;
} gb;

static gb gb_new(void) {
    gb b;
    b.seed = tu_fresh_seed();
    b.rng = b.seed;
    b.g = sal_graph_new("");
    cr_assert_not_null(b.g);
    b.g->opset = 13;
    return b;
}

static sal_shape shp(int ndim, ...) {
    sal_shape s = {0};
    va_list ap;
    va_start(ap, ndim);
    s.ndim = ndim;
    for (int i = 0; i < ndim; i++) s.d[i] = va_arg(ap, int64_t);
    va_end(ap);
    return s;
}
#define S1(a) shp(1, (int64_t)(a))
#define S2(a, b) shp(2, (int64_t)(a), (int64_t)(b))
#define S4(a, b, c, d) shp(4, (int64_t)(a), (int64_t)(b), (int64_t)(c), (int64_t)(d))

/* Random float constant, uniform in [lo, hi]. */
static void f_const(gb *b, const char *name, sal_shape s, float lo, float hi) {
    sal_tensor *t = sal_tensor_new(SAL_F32, &s);
    cr_assert_not_null(t);
    tu_fill(t->data, sal_shape_numel(&s), &b->rng, lo, hi);
    cr_assert_geq(sal_graph_add_const(b->g, name, t), 0);
}

static void f_const_data(gb *b, const char *name, sal_shape s, const float *v) {
    sal_tensor *t = sal_tensor_new(SAL_F32, &s);
    cr_assert_not_null(t);
    memcpy(t->data, v, sizeof(float) * (size_t)sal_shape_numel(&s));
    cr_assert_geq(sal_graph_add_const(b->g, name, t), 0);
}

static void i_const(gb *b, const char *name, sal_shape s, const int64_t *v) {
    sal_tensor *t = sal_tensor_new(SAL_I64, &s);
    cr_assert_not_null(t);
    memcpy(t->data, v, sizeof(int64_t) * (size_t)sal_shape_numel(&s));
    cr_assert_geq(sal_graph_add_const(b->g, name, t), 0);
}

/* Node with one output; inputs as a NULL-terminated list. Returns the node (valid until the next
 * node is added) for attributes. */
static sal_node *node(gb *b, const char *op, const char *out, ...) {
    const char *ins[16];
    int n = 0;
    va_list ap;
    va_start(ap, out);
    for (const char *s; (s = va_arg(ap, const char *)) != NULL && n < 16;) ins[n++] = s;
    va_end(ap);
    const char *outs[1] = {out};
    int k = sal_graph_add_node(b->g, op, out, n, ins, 1, outs);
    cr_assert_geq(k, 0, "adding %s node '%s'", op, out);
    return &b->g->nodes[k];
}

static void attr_ints(sal_node *n, const char *name, int count, ...) {
    int64_t v[8];
    va_list ap;
    va_start(ap, count);
    for (int i = 0; i < count; i++) v[i] = va_arg(ap, int64_t);
    va_end(ap);
    cr_assert_eq(sal_node_attr_ints(n, name, count, v), SAL_OK);
}

/* Conv with weights "<out>.w" uniform in +-gain*sqrt(3/fan_in) (unit variance for unit inputs
 * when gain is 1) and optionally a bias "<out>.b"; pads t,l,b,r. */
static void conv(gb *b, const char *in, const char *out, int cin, int cout, int k, int stride,
                 int pt, int pl, int pb, int pr, int group, int bias, float gain) {
    char wn[128], bn[128];
    snprintf(wn, sizeof wn, "%s.w", out);
    snprintf(bn, sizeof bn, "%s.b", out);
    float a = gain * sqrtf(3.f / (float)(cin / group * k * k));
    f_const(b, wn, S4(cout, cin / group, k, k), -a, a);
    if (bias) f_const(b, bn, S1(cout), -0.2f, 0.2f);
    sal_node *n = bias ? node(b, "Conv", out, in, wn, bn, NULL) : node(b, "Conv", out, in, wn, NULL);
    attr_ints(n, "kernel_shape", 2, (int64_t)k, (int64_t)k);
    attr_ints(n, "strides", 2, (int64_t)stride, (int64_t)stride);
    attr_ints(n, "pads", 4, (int64_t)pt, (int64_t)pl, (int64_t)pb, (int64_t)pr);
    if (group != 1) cr_assert_eq(sal_node_attr_int(n, "group", group), SAL_OK);
}

/* Gemm y = x W^T + c with W (nout, nin) "<out>.w", c (nout) "<out>.b". */
static void gemm(gb *b, const char *in, const char *out, int nin, int nout) {
    char wn[128], bn[128];
    snprintf(wn, sizeof wn, "%s.w", out);
    snprintf(bn, sizeof bn, "%s.b", out);
    float a = sqrtf(3.f / (float)nin);
    f_const(b, wn, S2(nout, nin), -a, a);
    f_const(b, bn, S1(nout), -0.2f, 0.2f);
    sal_node *n = node(b, "Gemm", out, in, wn, bn, NULL);
    cr_assert_eq(sal_node_attr_int(n, "transB", 1), SAL_OK);
}

static void finalize(gb *b) {
    sal_error err = {0};
    sal_status st = sal_graph_finalize(b->g, &err);
    cr_assert_eq(st, SAL_OK, "finalize: %s: %s (seed %llu)", sal_status_str(st), err.msg,
                 (unsigned long long)b->seed);
}

/* ------------------------------------------------------------------------------------------------ */
/* Engine + finite differences                                                                      */

typedef struct rig {
    sal_backend *be;
    sal_engine *e;
} rig;

static rig rig_new(const sal_graph *g) {
    rig r = {0};
    sal_error err = {0};
    cr_assert_eq(sal_backend_cpu_create(2, &r.be, &err), SAL_OK, "%s", err.msg);
    cr_assert_eq(sal_engine_create(g, r.be, &r.e, &err), SAL_OK, "%s", err.msg);
    return r;
}

static void rig_free(rig *r) {
    sal_engine_free(r->e);
    if (r->be) r->be->ops->destroy(r->be);
    r->e = NULL;
    r->be = NULL;
}

/* sum(w * output 0) in double after a forward pass on x. */
static double weighted_out(rig *r, const sal_graph *g, const float *x, const float *w, float *ybuf,
                           int64_t ny) {
    sal_error err = {0};
    const float *ins[1] = {x};
    sal_status st = sal_engine_forward(r->e, ins, &err);
    cr_assert_eq(st, SAL_OK, "forward: %s", err.msg);
    st = sal_engine_read(r->e, g->outputs[0], ybuf, &err);
    cr_assert_eq(st, SAL_OK, "read: %s", err.msg);
    double s = 0;
    for (int64_t i = 0; i < ny; i++) s += (double)w[i] * (double)ybuf[i];
    return s;
}

/* Central difference of sum(w * y) at input element j, step eps, and the disagreement of the two
 * one-sided differences (s0: the unperturbed sum). x is restored. */
static void central_diff(rig *r, const sal_graph *g, float *x, const float *w, float *y, int64_t ny,
                         int64_t j, float eps, double s0, double *fd, double *gap) {
    float x0 = x[j];
    float xp = x0 + eps, xm = x0 - eps;
    x[j] = xp;
    double sp = weighted_out(r, g, x, w, y, ny);
    x[j] = xm;
    double sm = weighted_out(r, g, x, w, y, ny);
    x[j] = x0;
    /* the perturbed values are rounded to float: use the steps actually taken */
    double hp = (double)xp - (double)x0, hm = (double)x0 - (double)xm;
    *fd = (sp - sm) / (hp + hm);
    *gap = fabs((sp - s0) / hp - (s0 - sm) / hm);
}

typedef struct fd_result {
    double err;          /* max |g - fd| / max |fd| over the elements kept */
    double max_fd, max_g;
    int64_t checked, skipped, worst;
    double worst_g, worst_fd;
} fd_result;

/* Plan g for input shape xs (a gradient plan capturing value `capture`, or -1), fill x uniform in
 * [-1,1], seed the backward with uniform [-1,1] weights w (the analytic pass uses w * seed_scale:
 * 1 for a real check), and compare the input gradient with central differences of sum(w * y) at
 * steps eps and eps/4. */
static fd_result fd_check(rig *r, const sal_graph *g, sal_shape xs, uint64_t seed, float eps,
                          float seed_scale, int capture) {
    fd_result res = {0};
    sal_error err = {0};
    uint64_t rng = seed ^ 0x5a17e47ull;
    sal_status st = sal_engine_plan(r->e, &xs, SAL_PLAN_GRAD, capture, &err);
    cr_assert_eq(st, SAL_OK, "plan: %s: %s (seed %llu)", sal_status_str(st), err.msg,
                 (unsigned long long)seed);
    int64_t nx = sal_shape_numel(&xs);
    const sal_shape *ys = sal_engine_shape(r->e, g->outputs[0]);
    cr_assert_not_null(ys);
    int64_t ny = sal_shape_numel(ys);
    float *x = malloc(sizeof(float) * (size_t)nx), *gx = malloc(sizeof(float) * (size_t)nx);
    float *w = malloc(sizeof(float) * (size_t)ny), *ws = malloc(sizeof(float) * (size_t)ny);
    float *y = malloc(sizeof(float) * (size_t)ny);
    cr_assert(x && gx && w && ws && y);
    tu_fill(x, nx, &rng, -1.f, 1.f);
    tu_fill(w, ny, &rng, -1.f, 1.f);
    for (int64_t i = 0; i < ny; i++) ws[i] = w[i] * seed_scale;

    double s0 = weighted_out(r, g, x, w, y, ny);
    for (int64_t i = 0; i < ny; i++) cr_assert(isfinite(y[i]), "output %lld not finite (seed %llu)",
                                               (long long)i, (unsigned long long)seed);
    st = sal_engine_backward(r->e, ws, 0, 0, &err);
    cr_assert_eq(st, SAL_OK, "backward: %s: %s (seed %llu)", sal_status_str(st), err.msg,
                 (unsigned long long)seed);
    st = sal_engine_read_grad(r->e, g->inputs[0], gx, &err);
    cr_assert_eq(st, SAL_OK, "read_grad: %s", err.msg);
    for (int64_t i = 0; i < nx; i++) {
        cr_assert(isfinite(gx[i]), "gradient %lld not finite (seed %llu)", (long long)i,
                  (unsigned long long)seed);
        if (fabs(gx[i]) > res.max_g) res.max_g = fabs(gx[i]);
    }

    int64_t count = nx <= MAX_CHECK ? nx : MAX_CHECK;
    int64_t *idx = malloc(sizeof(int64_t) * (size_t)count);
    double *fd = malloc(sizeof(double) * (size_t)count), *gap = malloc(sizeof(double) * (size_t)count);
    double *fd4 = malloc(sizeof(double) * (size_t)count), *gap4 = malloc(sizeof(double) * (size_t)count);
    cr_assert(idx && fd && gap && fd4 && gap4);
    for (int64_t k = 0; k < count; k++) {
        idx[k] = nx <= MAX_CHECK ? k : (int64_t)(tu_next(&rng) % (uint64_t)nx);
        central_diff(r, g, x, w, y, ny, idx[k], eps, s0, &fd[k], &gap[k]);
        central_diff(r, g, x, w, y, ny, idx[k], eps / 4, s0, &fd4[k], &gap4[k]);
        if (fabs(fd[k]) > res.max_fd) res.max_fd = fabs(fd[k]);
    }
    double scale = res.max_fd > 1e-6 ? res.max_fd : 1e-6, thr = KINK_GAP * scale;
    double worst = 0;
    for (int64_t k = 0; k < count; k++) {
        res.checked++;
        /* Kinks within +-eps make the one-sided differences disagree, or (one on each side) the
         * quotients at eps and eps/4. Clean at eps: use it (less rounding noise); else clean at
         * eps/4: use that; else leave the element out. */
        double f;
        if (gap[k] <= thr && fabs(fd[k] - fd4[k]) <= thr) f = fd[k];
        else if (gap4[k] <= thr) f = fd4[k];
        else { res.skipped++; continue; }
        double d = fabs((double)gx[idx[k]] - f);
        if (!(d <= worst)) { worst = d; res.worst = idx[k]; res.worst_g = gx[idx[k]]; res.worst_fd = f; }
    }
    res.err = worst / scale;
    free(idx); free(fd); free(gap); free(fd4); free(gap4);
    free(x); free(gx); free(w); free(ws); free(y);
    return res;
}

/* The full check of one graph at one input shape. */
static void expect_grad_ok_capture(rig *r, const gb *b, sal_shape xs, float eps, int capture,
                                   const char *what) {
    char sb[64];
    sal_shape_str(&xs, sb, sizeof sb);
    for (int attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
        /* attempt k draws its input and seed from b->seed + k */
        fd_result res = fd_check(r, b->g, xs, b->seed + (uint64_t)attempt, eps, 1.f, capture);
        cr_log_info("%s %s: normalized error %.3g over %lld elements (%lld skipped at kinks), "
                    "max|fd| %.3g, seed %llu, attempt %d", what, sb, res.err, (long long)res.checked,
                    (long long)res.skipped, res.max_fd, (unsigned long long)b->seed, attempt);
        cr_expect(res.max_fd > 1e-4, "%s %s: the output does not depend on the input (max|fd| %g, "
                  "seed %llu)", what, sb, res.max_fd, (unsigned long long)b->seed);
        /* the elements compared must agree on every attempt */
        cr_expect(res.err < GRAD_TOL,
                  "%s %s: input gradient vs finite differences: normalized error %.4g >= %g; worst "
                  "element %lld: engine %.6g, finite difference %.6g (max|fd| %.4g, eps %g, seed "
                  "%llu, attempt %d)", what, sb, res.err, GRAD_TOL, (long long)res.worst, res.worst_g,
                  res.worst_fd, res.max_fd, eps, (unsigned long long)b->seed, attempt);
        if (res.skipped <= MAX_SKIP_FRAC * (double)res.checked) return;
    }
    cr_expect(0, "%s %s: more than %.0f%% of the elements straddled kinks on %d inputs in a row (seed "
              "%llu)", what, sb, 100 * MAX_SKIP_FRAC, MAX_ATTEMPTS, (unsigned long long)b->seed);
}

static void expect_grad_ok(rig *r, const gb *b, sal_shape xs, float eps, const char *what) {
    expect_grad_ok_capture(r, b, xs, eps, -1, what);
}

static void check_graph(gb *b, sal_shape xs, float eps, const char *what) {
    finalize(b);
    rig r = rig_new(b->g);
    expect_grad_ok(&r, b, xs, eps, what);
    rig_free(&r);
    sal_graph_free(b->g);
}

/* ------------------------------------------------------------------------------------------------ */
/* The graphs                                                                                       */

/* x (N,3,8,8) -> Conv 3x3 -> Relu -> MaxPool 2x2/2 -> Flatten -> Gemm -> y (N,5) */
static gb build_chain(void) {
    gb b = gb_new();
    sal_shape xs = S4(-1, 3, 8, 8);
    sal_graph_add_input(b.g, "x", &xs);
    conv(&b, "x", "c1", 3, 4, 3, 1, 1, 1, 1, 1, 1, 1, 1.f);
    node(&b, "Relu", "r1", "c1", NULL);
    sal_node *p = node(&b, "MaxPool", "p1", "r1", NULL);
    attr_ints(p, "kernel_shape", 2, (int64_t)2, (int64_t)2);
    attr_ints(p, "strides", 2, (int64_t)2, (int64_t)2);
    node(&b, "Flatten", "f1", "p1", NULL);
    gemm(&b, "f1", "y", 4 * 4 * 4, 5);
    sal_graph_mark_output(b.g, "y");
    return b;
}

Test(graph_grad, conv_relu_maxpool_gemm_chain) {
    gb b = build_chain();
    check_graph(&b, S4(2, 3, 8, 8), EPS_KINK, "conv-relu-maxpool-flatten-gemm");
}

/* x (N,4,7,7) -> Conv -> BatchNorm -> Relu -> Conv -> Add(x) -> y: a residual block (the BN is
 * folded into the first Conv at finalize). */
static gb build_residual(void) {
    gb b = gb_new();
    sal_shape xs = S4(-1, 4, 7, 7);
    sal_graph_add_input(b.g, "x", &xs);
    conv(&b, "x", "c1", 4, 4, 3, 1, 1, 1, 1, 1, 1, 0, 1.f);
    f_const(&b, "bn.scale", S1(4), 0.5f, 1.5f);
    f_const(&b, "bn.bias", S1(4), -0.3f, 0.3f);
    f_const(&b, "bn.mean", S1(4), -0.3f, 0.3f);
    f_const(&b, "bn.var", S1(4), 0.5f, 2.f);
    node(&b, "BatchNormalization", "bn", "c1", "bn.scale", "bn.bias", "bn.mean", "bn.var", NULL);
    node(&b, "Relu", "r1", "bn", NULL);
    conv(&b, "r1", "c2", 4, 4, 3, 1, 1, 1, 1, 1, 1, 1, 1.f);
    node(&b, "Add", "y", "c2", "x", NULL);
    sal_graph_mark_output(b.g, "y");
    return b;
}

Test(graph_grad, residual_block_with_batchnorm) {
    gb b = build_residual();
    finalize(&b);
    cr_expect_eq(b.g->bn_folded, 1, "the BatchNorm after the first Conv should be folded");
    rig r = rig_new(b.g);
    expect_grad_ok(&r, &b, S4(2, 4, 7, 7), EPS_KINK, "residual block");
    rig_free(&r);
    sal_graph_free(b.g);
}

/* x (N,3,8,8) -> [Conv 1x1 -> Relu] ++ [Conv 3x3 -> Sigmoid] (Concat axis 1) -> Conv 1x1 -> y */
Test(graph_grad, concat_of_two_branches) {
    gb b = gb_new();
    sal_shape xs = S4(-1, 3, 8, 8);
    sal_graph_add_input(b.g, "x", &xs);
    conv(&b, "x", "a1", 3, 2, 1, 1, 0, 0, 0, 0, 1, 1, 1.f);
    node(&b, "Relu", "a2", "a1", NULL);
    conv(&b, "x", "b1", 3, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1.f);
    node(&b, "Sigmoid", "b2", "b1", NULL);
    sal_node *c = node(&b, "Concat", "cat", "a2", "b2", NULL);
    cr_assert_eq(sal_node_attr_int(c, "axis", 1), SAL_OK);
    conv(&b, "cat", "y", 5, 2, 1, 1, 0, 0, 0, 0, 1, 1, 1.f);
    sal_graph_mark_output(b.g, "y");
    check_graph(&b, S4(2, 3, 8, 8), EPS_KINK, "concat of two branches");
}

/* Depthwise 3x3 stride 2 with TF-"SAME" asymmetric pads [0,0,1,1] (as in EfficientNet-Lite's
 * stride-2 blocks) -> Relu -> pointwise Conv. (N,4,8,8) -> (N,4,4,4) -> (N,3,4,4). */
Test(graph_grad, depthwise_stride2_asymmetric_pads) {
    gb b = gb_new();
    sal_shape xs = S4(-1, 4, 8, 8);
    sal_graph_add_input(b.g, "x", &xs);
    conv(&b, "x", "dw", 4, 4, 3, 2, 0, 0, 1, 1, 4, 1, 1.f);
    node(&b, "Relu", "r", "dw", NULL);
    conv(&b, "r", "y", 4, 3, 1, 1, 0, 0, 0, 0, 1, 0, 1.f);
    sal_graph_mark_output(b.g, "y");
    finalize(&b);
    rig r = rig_new(b.g);
    sal_error err = {0};
    sal_shape x2 = S4(2, 4, 8, 8);
    cr_assert_eq(sal_engine_plan(r.e, &x2, SAL_PLAN_GRAD, -1, &err), SAL_OK, "%s", err.msg);
    const sal_shape *dws = sal_engine_shape(r.e, sal_graph_find_value(b.g, "dw"));
    sal_shape want = S4(2, 4, 4, 4);
    char sb[64];
    cr_expect(dws && sal_shape_eq(dws, &want), "depthwise output shape %s, expected (2,4,4,4)",
              dws ? sal_shape_str(dws, sb, sizeof sb) : "?");
    expect_grad_ok(&r, &b, x2, EPS_KINK, "depthwise stride 2 pads [0,0,1,1]");
    rig_free(&r);
    sal_graph_free(b.g);
}

/* Squeeze-excite: x -> GlobalAveragePool -> Conv1x1 -> Relu -> Conv1x1 -> Sigmoid -> Mul with x,
 * broadcast (N,C,1,1) * (N,C,H,W); both operand orders. */
static void se_block(int gate_first) {
    gb b = gb_new();
    sal_shape xs = S4(-1, 4, 7, 7);
    sal_graph_add_input(b.g, "x", &xs);
    node(&b, "GlobalAveragePool", "gap", "x", NULL);
    conv(&b, "gap", "s1", 4, 2, 1, 1, 0, 0, 0, 0, 1, 1, 2.f);
    node(&b, "Relu", "s2", "s1", NULL);
    conv(&b, "s2", "s3", 2, 4, 1, 1, 0, 0, 0, 0, 1, 1, 2.f);
    node(&b, "Sigmoid", "gate", "s3", NULL);
    if (gate_first) node(&b, "Mul", "y", "gate", "x", NULL);
    else node(&b, "Mul", "y", "x", "gate", NULL);
    sal_graph_mark_output(b.g, "y");
    check_graph(&b, S4(2, 4, 7, 7), EPS_SMOOTH, gate_first ? "SE block, Mul(gate, x)" : "SE block, Mul(x, gate)");
}

Test(graph_grad, squeeze_excite_block) {
    se_block(0);
    se_block(1);
}

/* Conv -> Clip(0,6) (ReLU6 with constant min/max inputs, opset 13) -> Conv -> HardSwish ->
 * AveragePool 2x2/2 -> Flatten -> Gemm. The first Conv has gain 6 so that some pre-activations
 * pass 6 and the HardSwish inputs span its kinks at +-3. */
Test(graph_grad, relu6_hardswish_avgpool_gemm_head) {
    gb b = gb_new();
    sal_shape xs = S4(-1, 3, 8, 8);
    sal_graph_add_input(b.g, "x", &xs);
    conv(&b, "x", "c1", 3, 4, 3, 1, 1, 1, 1, 1, 1, 1, 6.f);
    float zero = 0.f, six = 6.f;
    f_const_data(&b, "relu6.min", shp(0), &zero);
    f_const_data(&b, "relu6.max", shp(0), &six);
    node(&b, "Clip", "r6", "c1", "relu6.min", "relu6.max", NULL);
    conv(&b, "r6", "c2", 4, 4, 3, 1, 1, 1, 1, 1, 1, 1, 1.f);
    node(&b, "HardSwish", "hs", "c2", NULL);
    sal_node *p = node(&b, "AveragePool", "ap", "hs", NULL);
    attr_ints(p, "kernel_shape", 2, (int64_t)2, (int64_t)2);
    attr_ints(p, "strides", 2, (int64_t)2, (int64_t)2);
    node(&b, "Flatten", "fl", "ap", NULL);
    gemm(&b, "fl", "y", 4 * 4 * 4, 5);
    sal_graph_mark_output(b.g, "y");
    finalize(&b);
    rig r = rig_new(b.g);
    expect_grad_ok(&r, &b, S4(2, 3, 8, 8), EPS_KINK, "relu6-hardswish-avgpool-gemm");
    /* the Clip saturated somewhere at 6 and at 0, and HardSwish saw both sides of its kinks (read
     * from the Clip's output: its Conv runs it fused, so c1's buffer holds the clipped values) */
    sal_error err = {0};
    float *c1 = malloc(sizeof(float) * 2 * 4 * 64), *c2 = malloc(sizeof(float) * 2 * 4 * 64);
    cr_assert_eq(sal_engine_read(r.e, sal_graph_find_value(b.g, "r6"), c1, &err), SAL_OK, "%s", err.msg);
    cr_assert_eq(sal_engine_read(r.e, sal_graph_find_value(b.g, "c2"), c2, &err), SAL_OK, "%s", err.msg);
    int above6 = 0, below0 = 0, hs_lo = 0, hs_mid = 0, hs_hi = 0;
    for (int i = 0; i < 2 * 4 * 64; i++) {
        above6 += c1[i] == 6.f;
        below0 += c1[i] == 0.f;
        hs_lo += c2[i] < -3.f;
        hs_mid += c2[i] > -3.f && c2[i] < 3.f;
        hs_hi += c2[i] > 3.f;
    }
    cr_log_info("relu6 outputs: %d at 6, %d at 0; hardswish inputs: %d < -3, %d inside, %d > 3 (seed %llu)",
                above6, below0, hs_lo, hs_mid, hs_hi, (unsigned long long)b.seed);
    cr_expect(above6 > 0 && below0 > 0 && hs_mid > 0,
              "the graph does not exercise Clip's both bounds (seed %llu)", (unsigned long long)b.seed);
    free(c1);
    free(c2);
    rig_free(&r);
    sal_graph_free(b.g);
}

/* Conv -> Tanh -> ReduceMean over H,W with keepdims -> (N,6,1,1). Smooth on purpose: the mean
 * divides each input's effect by 49 while float rounding stays relative to the outputs, so the
 * difference quotient needs a large step, which ReLU kinks would not allow. */
Test(graph_grad, reducemean_over_hw_keepdims) {
    gb b = gb_new();
    sal_shape xs = S4(-1, 3, 7, 7);
    sal_graph_add_input(b.g, "x", &xs);
    conv(&b, "x", "c1", 3, 6, 3, 1, 1, 1, 1, 1, 1, 1, 1.f);
    node(&b, "Tanh", "r1", "c1", NULL);
    sal_node *m = node(&b, "ReduceMean", "y", "r1", NULL);
    attr_ints(m, "axes", 2, (int64_t)2, (int64_t)3);
    cr_assert_eq(sal_node_attr_int(m, "keepdims", 1), SAL_OK);
    sal_graph_mark_output(b.g, "y");
    finalize(&b);
    rig r = rig_new(b.g);
    sal_error err = {0};
    sal_shape x2 = S4(2, 3, 7, 7);
    cr_assert_eq(sal_engine_plan(r.e, &x2, SAL_PLAN_GRAD, -1, &err), SAL_OK, "%s", err.msg);
    sal_shape want = S4(2, 6, 1, 1);
    const sal_shape *ys = sal_engine_shape(r.e, b.g->outputs[0]);
    cr_expect(ys && sal_shape_eq(ys, &want), "ReduceMean keepdims output should be (2,6,1,1)");
    expect_grad_ok(&r, &b, x2, EPS_SMOOTH, "reducemean over H,W");
    rig_free(&r);
    sal_graph_free(b.g);
}

/* A Reshape whose shape is computed from the input's shape:
 *   x (N,3,6,6) -> Conv -> Tanh -> t (N,2,6,6)
 *   Shape(x) -> Gather(0) -> Unsqueeze(axes [0]) -> Concat([N], [-1]) -> Reshape(t) -> (N,72)
 *   -> Gemm -> y (N,4)
 * The shape subgraph can only be evaluated at plan time; one engine runs batch 2, 3 and 2. */
Test(graph_grad, reshape_from_shape_subgraph_across_batch_sizes) {
    gb b = gb_new();
    sal_shape xs = S4(-1, 3, 6, 6);
    sal_graph_add_input(b.g, "x", &xs);
    conv(&b, "x", "c1", 3, 2, 3, 1, 1, 1, 1, 1, 1, 1, 1.f);
    node(&b, "Tanh", "t", "c1", NULL);
    node(&b, "Shape", "xshape", "x", NULL);
    int64_t zero = 0, minus1 = -1;
    i_const(&b, "idx0", shp(0), &zero);
    sal_node *ga = node(&b, "Gather", "batch", "xshape", "idx0", NULL);
    cr_assert_eq(sal_node_attr_int(ga, "axis", 0), SAL_OK);
    i_const(&b, "axes0", S1(1), &zero);
    node(&b, "Unsqueeze", "batch1", "batch", "axes0", NULL);
    i_const(&b, "minus1", S1(1), &minus1);
    sal_node *cc = node(&b, "Concat", "newshape", "batch1", "minus1", NULL);
    cr_assert_eq(sal_node_attr_int(cc, "axis", 0), SAL_OK);
    node(&b, "Reshape", "flat", "t", "newshape", NULL);
    gemm(&b, "flat", "y", 72, 4);
    sal_graph_mark_output(b.g, "y");
    finalize(&b);
    /* Shape(x) has a dynamic batch: it must survive load-time folding */
    int shape_nodes = 0;
    for (int i = 0; i < b.g->n_nodes; i++) shape_nodes += strcmp(b.g->nodes[i].op_type, "Shape") == 0;
    cr_expect_eq(shape_nodes, 1, "Shape of an input with a dynamic batch was folded at load time");
    rig r = rig_new(b.g);
    int batches[3] = {2, 3, 2};
    for (int k = 0; k < 3; k++) {
        sal_shape x = S4(batches[k], 3, 6, 6);
        char what[64];
        snprintf(what, sizeof what, "shape-subgraph reshape, run %d", k + 1);
        expect_grad_ok(&r, &b, x, EPS_SMOOTH, what);
        const sal_shape *fs = sal_engine_shape(r.e, sal_graph_find_value(b.g, "flat"));
        const sal_shape *ys = sal_engine_shape(r.e, b.g->outputs[0]);
        sal_shape wf = S2(batches[k], 72), wy = S2(batches[k], 4);
        char s1[64], s2[64];
        cr_expect(fs && sal_shape_eq(fs, &wf), "batch %d: Reshape output %s, expected (%d,72)",
                  batches[k], fs ? sal_shape_str(fs, s1, sizeof s1) : "?", batches[k]);
        cr_expect(ys && sal_shape_eq(ys, &wy), "batch %d: output %s, expected (%d,4)", batches[k],
                  ys ? sal_shape_str(ys, s2, sizeof s2) : "?", batches[k]);
    }
    rig_free(&r);
    sal_graph_free(b.g);
}

/* The checker itself: a gradient 10% off must be reported. */
Test(graph_grad, grad_check_detects_a_wrong_gradient) {
    gb b = build_chain();
    finalize(&b);
    rig r = rig_new(b.g);
    fd_result res = fd_check(&r, b.g, S4(2, 3, 8, 8), b.seed, EPS_KINK, 1.1f, -1);
    cr_expect(res.err > GRAD_TOL, "a 10%% wrong gradient passed the check (error %.3g, seed %llu)",
              res.err, (unsigned long long)b.seed);
    rig_free(&r);
    sal_graph_free(b.g);
}

/* ------------------------------------------------------------------------------------------------ */
/* Capture and stop-at-capture                                                                      */

/* skip_to_input: the input also feeds a node after the capture through an identity path
 * (y = ... + x): with stop_at_capture its gradient is then exactly the seed, else zero. */
static void capture_case(gb *b, sal_shape xs, const char *capture_name, int skip_to_input) {
    finalize(b);
    rig r = rig_new(b->g);
    sal_error err = {0};
    int cv = sal_graph_find_value(b->g, capture_name);
    cr_assert_geq(cv, 0, "no value '%s'", capture_name);
    sal_status st = sal_engine_plan(r.e, &xs, SAL_PLAN_GRAD, cv, &err);
    cr_assert_eq(st, SAL_OK, "plan with capture '%s': %s", capture_name, err.msg);
    const sal_shape *cs = sal_engine_shape(r.e, cv), *ys = sal_engine_shape(r.e, b->g->outputs[0]);
    int64_t nx = sal_shape_numel(&xs), nc = sal_shape_numel(cs), ny = sal_shape_numel(ys);
    uint64_t rng = b->seed ^ 0xc0ffee;
    float *x = malloc(sizeof(float) * (size_t)nx), *w = malloc(sizeof(float) * (size_t)ny);
    float *act = malloc(sizeof(float) * (size_t)nc), *act2 = malloc(sizeof(float) * (size_t)nc);
    float *g_full = malloc(sizeof(float) * (size_t)nc), *g_stop = malloc(sizeof(float) * (size_t)nc);
    float *gx_full = malloc(sizeof(float) * (size_t)nx), *gx_stop = malloc(sizeof(float) * (size_t)nx);
    tu_fill(x, nx, &rng, -1.f, 1.f);
    tu_fill(w, ny, &rng, -1.f, 1.f);
    const float *ins[1] = {x};
    cr_assert_eq(sal_engine_forward(r.e, ins, &err), SAL_OK, "%s", err.msg);
    cr_assert_eq(sal_engine_read(r.e, cv, act, &err), SAL_OK, "%s", err.msg);
    cr_assert_eq(sal_engine_backward(r.e, w, 0, 0, &err), SAL_OK, "%s", err.msg);
    cr_assert_eq(sal_engine_read_grad(r.e, cv, g_full, &err), SAL_OK, "%s", err.msg);
    cr_assert_eq(sal_engine_read_grad(r.e, b->g->inputs[0], gx_full, &err), SAL_OK, "%s", err.msg);
    cr_assert_eq(sal_engine_backward(r.e, w, 0, 1, &err), SAL_OK, "%s", err.msg);
    cr_assert_eq(sal_engine_read_grad(r.e, cv, g_stop, &err), SAL_OK, "%s", err.msg);
    cr_assert_eq(sal_engine_read_grad(r.e, b->g->inputs[0], gx_stop, &err), SAL_OK, "%s", err.msg);
    cr_assert_eq(sal_engine_read(r.e, cv, act2, &err), SAL_OK, "%s", err.msg);
    double gmax = 0, dmax = 0;
    for (int64_t i = 0; i < nc; i++) {
        gmax = fmax(gmax, fabs(g_full[i]));
        dmax = fmax(dmax, fabs((double)g_full[i] - g_stop[i]));
    }
    cr_expect(gmax > 0, "captured gradient of '%s' is all zero (seed %llu)", capture_name,
              (unsigned long long)b->seed);
    /* the same ops run in the same order after the capture: the results are identical */
    cr_expect(dmax == 0, "captured gradient of '%s' with stop_at_capture differs from the full "
              "backward by %g (max %g, seed %llu)", capture_name, dmax, gmax, (unsigned long long)b->seed);
    cr_expect(memcmp(act, act2, sizeof(float) * (size_t)nc) == 0,
              "backward changed the captured activation");
    /* nothing before the capture ran: the input gradient holds only what nodes after the
     * capture gave it (the residual Add's identity path: the seed itself), or nothing */
    double xmax_full = 0, xdiff_stop = 0;
    for (int64_t i = 0; i < nx; i++) {
        xmax_full = fmax(xmax_full, fabs(gx_full[i]));
        xdiff_stop = fmax(xdiff_stop, fabs(gx_stop[i] - (skip_to_input ? w[i] : 0.f)));
    }
    cr_expect(xmax_full > 0, "the full backward left the input gradient zero");
    cr_expect(xdiff_stop == 0, "stop_at_capture: the input gradient should be %s, it is off by %g "
              "(seed %llu)", skip_to_input ? "the seed (identity path only)" : "zero", xdiff_stop,
              (unsigned long long)b->seed);
    /* a gradient plan with capture still gives the right input gradient */
    expect_grad_ok_capture(&r, b, xs, EPS_KINK, cv, capture_name);
    free(x); free(w); free(act); free(act2); free(g_full); free(g_stop); free(gx_full); free(gx_stop);
    rig_free(&r);
    sal_graph_free(b->g);
}

Test(graph_grad, capture_stop_matches_full_backward_chain) {
    gb b = build_chain();
    capture_case(&b, S4(2, 3, 8, 8), "r1", 0);
}

Test(graph_grad, capture_stop_matches_full_backward_residual) {
    gb b = build_residual();
    capture_case(&b, S4(2, 4, 7, 7), "r1", 1);
}

/* Several values captured in one gradient plan (sal_engine_plan_set), backward stopped early: the
 * residual block's bn (the Conv output the BatchNorm folded into, which the Relu after it would
 * otherwise be fused into), r1 and c2. Every captured activation and gradient equals what a full backward of an unfused plan
 * without captures gives (the same ops in the same order: bit for bit); bn keeps its negative
 * pre-activations; its gradient is r1's masked by bn > 0 (the Relu's derivative, by hand); the
 * pass stopped at the earliest capture (bn's Conv did not run: the input gradient is the residual
 * path's seed only); the set is order- and repeat-blind (a cached plan is reused for {c2, r1, bn,
 * bn}); and a single-capture plan still stops at its own value. */
Test(graph_grad, capture_set_in_one_pass) {
    gb b = build_residual();
    finalize(&b);
    rig r = rig_new(b.g), u = rig_new(b.g);
    u.be->fuse_conv_act = 0;   /* the reference: every value its own */
    sal_error err = {0};
    enum { N = 2, C = 4, HW = 7, NX = N * C * HW * HW };
    sal_shape xs = S4(N, C, HW, HW);
    const char *names[3] = {"bn", "r1", "c2"};   /* bn: the Conv that the BatchNorm was folded into */
    int caps[3], vx = b.g->inputs[0];
    for (int k = 0; k < 3; k++) {
        caps[k] = sal_graph_find_value(b.g, names[k]);
        cr_assert_geq(caps[k], 0, "no value '%s'", names[k]);
    }
    float x[NX], w[NX], act[3][NX], grad[3][NX], ref_act[3][NX], ref_grad[3][NX], gx[NX];
    tu_fill(x, NX, &b.rng, -1.f, 1.f);
    tu_fill(w, NX, &b.rng, -1.f, 1.f);
    const float *ins[1] = {x};
    cr_assert_eq(sal_engine_plan(u.e, &xs, SAL_PLAN_GRAD, -1, &err), SAL_OK, "%s", err.msg);
    cr_assert_eq(sal_engine_forward(u.e, ins, &err), SAL_OK, "%s", err.msg);
    cr_assert_eq(sal_engine_backward(u.e, w, 0, 0, &err), SAL_OK, "%s", err.msg);
    for (int k = 0; k < 3; k++) {
        cr_assert_eq(sal_engine_read(u.e, caps[k], ref_act[k], &err), SAL_OK, "%s", err.msg);
        cr_assert_eq(sal_engine_read_grad(u.e, caps[k], ref_grad[k], &err), SAL_OK, "%s", err.msg);
    }
    cr_assert_eq(sal_engine_plan_set(r.e, &xs, SAL_PLAN_GRAD, caps, 3, &err), SAL_OK, "%s", err.msg);
    cr_assert_eq(sal_engine_forward(r.e, ins, &err), SAL_OK, "%s", err.msg);
    cr_assert_eq(sal_engine_backward(r.e, w, 0, 1, &err), SAL_OK, "%s", err.msg);
    for (int k = 0; k < 3; k++) {
        cr_assert_eq(sal_engine_read(r.e, caps[k], act[k], &err), SAL_OK, "%s", err.msg);
        cr_assert_eq(sal_engine_read_grad(r.e, caps[k], grad[k], &err), SAL_OK, "%s", err.msg);
        int64_t bad_a = -1, bad_g = -1, nz = 0;
        for (int64_t i = 0; i < NX; i++) {
            if (bad_a < 0 && act[k][i] != ref_act[k][i]) bad_a = i;
            if (bad_g < 0 && grad[k][i] != ref_grad[k][i]) bad_g = i;
            nz += grad[k][i] != 0;
        }
        cr_expect(bad_a < 0, "%s: activation %lld differs from the unfused plan's", names[k], (long long)bad_a);
        cr_expect(bad_g < 0, "%s: gradient %lld is %g, the full backward's %g", names[k], (long long)bad_g,
                  bad_g < 0 ? 0.0 : (double)grad[k][bad_g], bad_g < 0 ? 0.0 : (double)ref_grad[k][bad_g]);
        cr_expect(nz > NX / 4, "%s: only %lld nonzero gradient elements", names[k], (long long)nz);
    }
    int neg = 0, bad_mask = 0;
    for (int64_t i = 0; i < NX; i++) {
        neg += act[0][i] < 0;
        bad_mask += grad[0][i] != (act[0][i] > 0 ? grad[1][i] : 0.0f);
    }
    cr_expect(neg > 0, "bn lost its negative values: the Relu was fused into it despite the capture");
    cr_expect(bad_mask == 0, "bn's gradient is not r1's masked by bn > 0 at %d elements", bad_mask);
    cr_assert_eq(sal_engine_read_grad(r.e, vx, gx, &err), SAL_OK, "%s", err.msg);
    for (int64_t i = 0; i < NX; i++)
        cr_expect(gx[i] == w[i], "input gradient %lld: %g, expected the residual path's seed %g (the pass "
                  "should stop at bn)", (long long)i, gx[i], w[i]);
    /* the same set in another order, with a repeat and a negative entry: the same (cached) plan */
    const float *act_dev = sal_engine_value_dev(r.e, caps[0]);
    int again[5] = {caps[2], caps[1], -1, caps[0], caps[0]};
    cr_assert_eq(sal_engine_plan_set(r.e, &xs, SAL_PLAN_GRAD, again, 5, &err), SAL_OK, "%s", err.msg);
    cr_expect(sal_engine_value_dev(r.e, caps[0]) == act_dev, "an equal capture set made a new plan");
    /* one capture (c2): the pass stops there, r1's gradient is then complete and c1's untouched */
    cr_assert_eq(sal_engine_plan(r.e, &xs, SAL_PLAN_GRAD, caps[2], &err), SAL_OK, "%s", err.msg);
    cr_assert_eq(sal_engine_forward(r.e, ins, &err), SAL_OK, "%s", err.msg);
    cr_assert_eq(sal_engine_backward(r.e, w, 0, 1, &err), SAL_OK, "%s", err.msg);
    cr_assert_eq(sal_engine_read_grad(r.e, caps[2], grad[2], &err), SAL_OK, "%s", err.msg);
    cr_assert_eq(sal_engine_read_grad(r.e, caps[1], grad[1], &err), SAL_OK, "%s", err.msg);
    cr_expect(memcmp(grad[2], ref_grad[2], sizeof grad[2]) == 0, "c2's gradient with a single capture");
    int64_t r1_nz = 0;
    for (int64_t i = 0; i < NX; i++) r1_nz += grad[1][i] != 0;
    cr_expect(r1_nz == 0, "single capture at c2: r1's gradient has %lld nonzero elements (the pass "
              "should have stopped at c2's Conv)", (long long)r1_nz);
    /* another set of the same size ({r1} after {c2}) is another plan: it stops at r1 */
    cr_assert_eq(sal_engine_plan(r.e, &xs, SAL_PLAN_GRAD, caps[1], &err), SAL_OK, "%s", err.msg);
    cr_assert_eq(sal_engine_forward(r.e, ins, &err), SAL_OK, "%s", err.msg);
    cr_assert_eq(sal_engine_backward(r.e, w, 0, 1, &err), SAL_OK, "%s", err.msg);
    cr_assert_eq(sal_engine_read_grad(r.e, caps[1], grad[1], &err), SAL_OK, "%s", err.msg);
    cr_expect(memcmp(grad[1], ref_grad[1], sizeof grad[1]) == 0, "r1's gradient with a single capture at r1");
    rig_free(&r);
    rig_free(&u);
    sal_graph_free(b.g);
}

/* ------------------------------------------------------------------------------------------------ */
/* Guided Backprop                                                                                  */

/* y = W2 relu(W1 x + b1) + b2 with Gemm (transB): guided gradient
 *   W1^T [ (W1 x + b1 > 0) * (W2^T seed > 0) * W2^T seed ],
 * vanilla gradient without the (W2^T seed > 0) factor. */
Test(graph_grad, guided_backprop_matches_hand_computation) {
    enum { N = 4, D = 6, H = 16, K = 4 };
    gb b = gb_new();
    sal_shape xs = S2(-1, D);
    sal_graph_add_input(b.g, "x", &xs);
    gemm(&b, "x", "h", D, H);
    node(&b, "Relu", "hr", "h", NULL);
    gemm(&b, "hr", "y", H, K);
    sal_graph_mark_output(b.g, "y");
    finalize(&b);
    const float *W1 = b.g->values[sal_graph_find_value(b.g, "h.w")].konst->data;   /* (H,D) */
    const float *B1 = b.g->values[sal_graph_find_value(b.g, "h.b")].konst->data;   /* (H) */
    const float *W2 = b.g->values[sal_graph_find_value(b.g, "y.w")].konst->data;   /* (K,H) */
    float x[N * D], seed[N * K], g_guided[N * D], g_vanilla[N * D];
    tu_fill(x, N * D, &b.rng, -1.f, 1.f);
    tu_fill(seed, N * K, &b.rng, -1.f, 1.f);
    rig r = rig_new(b.g);
    sal_error err = {0};
    sal_shape x3 = S2(N, D);
    cr_assert_eq(sal_engine_plan(r.e, &x3, SAL_PLAN_GRAD, -1, &err), SAL_OK, "%s", err.msg);
    const float *ins[1] = {x};
    cr_assert_eq(sal_engine_forward(r.e, ins, &err), SAL_OK, "%s", err.msg);
    cr_assert_eq(sal_engine_backward(r.e, seed, 1, 0, &err), SAL_OK, "%s", err.msg);
    cr_assert_eq(sal_engine_read_grad(r.e, b.g->inputs[0], g_guided, &err), SAL_OK, "%s", err.msg);
    cr_assert_eq(sal_engine_backward(r.e, seed, 0, 0, &err), SAL_OK, "%s", err.msg);
    cr_assert_eq(sal_engine_read_grad(r.e, b.g->inputs[0], g_vanilla, &err), SAL_OK, "%s", err.msg);

    double worst_g = 0, worst_v = 0, scale = 0, differ = 0;
    for (int n = 0; n < N; n++) {
        double up[H], upg[H];   /* W2^T seed, gated */
        for (int j = 0; j < H; j++) {
            double pre = B1[j];
            for (int i = 0; i < D; i++) pre += (double)W1[j * D + i] * x[n * D + i];
            double gs = 0;
            for (int k = 0; k < K; k++) gs += (double)W2[k * H + j] * seed[n * K + k];
            up[j] = pre > 0 ? gs : 0;
            upg[j] = pre > 0 && gs > 0 ? gs : 0;
        }
        for (int i = 0; i < D; i++) {
            double gv = 0, gg = 0;
            for (int j = 0; j < H; j++) {
                gv += (double)W1[j * D + i] * up[j];
                gg += (double)W1[j * D + i] * upg[j];
            }
            scale = fmax(scale, fmax(fabs(gv), fabs(gg)));
            differ = fmax(differ, fabs(gv - gg));
            worst_g = fmax(worst_g, fabs(gg - g_guided[n * D + i]));
            worst_v = fmax(worst_v, fabs(gv - g_vanilla[n * D + i]));
        }
    }
    cr_assert(scale > 0);
    cr_expect(differ > 1e-3 * scale, "degenerate case: guided and vanilla gradients coincide (seed %llu)",
              (unsigned long long)b.seed);
    cr_expect(worst_g <= 1e-5 * scale, "guided gradient off by %g (scale %g, seed %llu)", worst_g,
              scale, (unsigned long long)b.seed);
    cr_expect(worst_v <= 1e-5 * scale, "vanilla gradient off by %g (scale %g, seed %llu)", worst_v,
              scale, (unsigned long long)b.seed);
    rig_free(&r);
    sal_graph_free(b.g);
}

/* ------------------------------------------------------------------------------------------------ */
/* BatchNorm folding                                                                                */

/* Direct convolution in double: x (N,C,H,W), w (M,C,K,K), stride 1, pad p, optional bias. */
static void conv_ref(const float *x, const float *w, const float *bias, double *y, int N, int C,
                     int H, int W, int M, int K, int p) {
    for (int n = 0; n < N; n++)
        for (int m = 0; m < M; m++)
            for (int oy = 0; oy < H; oy++)
                for (int ox = 0; ox < W; ox++) {
                    double s = bias ? bias[m] : 0;
                    for (int c = 0; c < C; c++)
                        for (int ky = 0; ky < K; ky++)
                            for (int kx = 0; kx < K; kx++) {
                                int iy = oy + ky - p, ix = ox + kx - p;
                                if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
                                s += (double)w[((m * C + c) * K + ky) * K + kx] *
                                     x[((n * C + c) * H + iy) * W + ix];
                            }
                    y[((n * M + m) * H + oy) * W + ox] = s;
                }
}

/* x (N,3,7,7) -> Conv 3x3 (bias or not) -> BatchNormalization (eps 1e-3) [-> Add(conv) when
 * shared: then the BN must not be folded] -> y. */
static void bn_case(int conv_bias, int shared) {
    enum { N = 2, C = 3, H = 7, W = 7, M = 4 };
    gb b = gb_new();
    sal_shape xs = S4(-1, C, H, W);
    sal_graph_add_input(b.g, "x", &xs);
    conv(&b, "x", "c1", C, M, 3, 1, 1, 1, 1, 1, 1, conv_bias, 1.f);
    f_const(&b, "bn.scale", S1(M), 0.5f, 1.5f);
    f_const(&b, "bn.bias", S1(M), -0.5f, 0.5f);
    f_const(&b, "bn.mean", S1(M), -0.5f, 0.5f);
    f_const(&b, "bn.var", S1(M), 0.2f, 2.f);
    sal_node *bn = node(&b, "BatchNormalization", shared ? "bn" : "y", "c1", "bn.scale", "bn.bias",
                        "bn.mean", "bn.var", NULL);
    cr_assert_eq(sal_node_attr_float(bn, "epsilon", 1e-3f), SAL_OK);
    if (shared) node(&b, "Add", "y", "bn", "c1", NULL);
    sal_graph_mark_output(b.g, "y");
    /* keep copies of the unfolded parameters for the reference */
    float wt[M * C * 9], bias[M], sc[M], sh[M], mu[M], var[M];
    memcpy(wt, b.g->values[sal_graph_find_value(b.g, "c1.w")].konst->data, sizeof wt);
    if (conv_bias) memcpy(bias, b.g->values[sal_graph_find_value(b.g, "c1.b")].konst->data, sizeof bias);
    memcpy(sc, b.g->values[sal_graph_find_value(b.g, "bn.scale")].konst->data, sizeof sc);
    memcpy(sh, b.g->values[sal_graph_find_value(b.g, "bn.bias")].konst->data, sizeof sh);
    memcpy(mu, b.g->values[sal_graph_find_value(b.g, "bn.mean")].konst->data, sizeof mu);
    memcpy(var, b.g->values[sal_graph_find_value(b.g, "bn.var")].konst->data, sizeof var);
    finalize(&b);
    int bn_nodes = 0;
    for (int i = 0; i < b.g->n_nodes; i++) bn_nodes += b.g->nodes[i].op == SAL_OP_BATCHNORM;
    if (shared) {
        cr_expect_eq(b.g->bn_folded, 0, "a BatchNorm whose Conv output is also used elsewhere was folded");
        cr_expect_eq(bn_nodes, 1);
    } else {
        cr_expect_eq(b.g->bn_folded, 1, "Conv -> BatchNormalization was not folded (bias %d)", conv_bias);
        cr_expect_eq(bn_nodes, 0);
        cr_expect_eq(b.g->n_nodes, 1, "after folding only the Conv should remain (%d nodes)", b.g->n_nodes);
    }
    float x[N * C * H * W], y[N * M * H * W];
    double ref[N * M * H * W];
    tu_fill(x, N * C * H * W, &b.rng, -1.f, 1.f);
    conv_ref(x, wt, conv_bias ? bias : NULL, ref, N, C, H, W, M, 3, 1);
    for (int n = 0; n < N; n++)
        for (int m = 0; m < M; m++)
            for (int i = 0; i < H * W; i++) {
                double *v = &ref[(n * M + m) * H * W + i];
                double c = *v;
                double bnv = (c - mu[m]) / sqrt((double)var[m] + (double)1e-3f) * sc[m] + sh[m];
                *v = shared ? bnv + c : bnv;
            }
    rig r = rig_new(b.g);
    sal_error err = {0};
    sal_shape x2 = S4(N, C, H, W);
    cr_assert_eq(sal_engine_plan(r.e, &x2, SAL_PLAN_FORWARD, -1, &err), SAL_OK, "%s", err.msg);
    const float *ins[1] = {x};
    cr_assert_eq(sal_engine_forward(r.e, ins, &err), SAL_OK, "%s", err.msg);
    cr_assert_eq(sal_engine_read(r.e, b.g->outputs[0], y, &err), SAL_OK, "%s", err.msg);
    double worst = 0;
    int at = 0;
    for (int i = 0; i < N * M * H * W; i++) {
        double d = fabs(y[i] - ref[i]) / fmax(1.0, fabs(ref[i]));
        if (!(d <= worst)) { worst = d; at = i; }
    }
    cr_expect(worst < 1e-5, "Conv%s + BatchNorm%s: element %d is %.7g, double math says %.7g "
              "(rel err %.3g, seed %llu)", conv_bias ? " with bias" : "", shared ? " (unfolded)" : "",
              at, y[at], ref[at], worst, (unsigned long long)b.seed);
    if (shared) expect_grad_ok(&r, &b, x2, EPS_SMOOTH, "unfolded BatchNorm");
    rig_free(&r);
    sal_graph_free(b.g);
}

Test(graph_grad, batchnorm_folded_into_conv_matches_unfolded_math) {
    bn_case(1, 0);
    bn_case(0, 0);
}

Test(graph_grad, batchnorm_not_folded_when_conv_output_is_shared) {
    bn_case(1, 1);
}

/* ------------------------------------------------------------------------------------------------ */
/* Forward-plan memory reuse                                                                        */

/* A deep chain: 12 x (Conv 3x3 -> Relu) with a long skip (Add of layer 2's and layer 10's outputs),
 * GlobalAveragePool, Flatten, Gemm. The forward plan reuses activation memory; its output must be
 * bit-identical to the gradient plan's, which keeps everything. */
Test(graph_grad, forward_plan_memory_reuse_gives_identical_output) {
    enum { C = 4, HW = 8, L = 12 };
    gb b = gb_new();
    sal_shape xs = S4(-1, 3, HW, HW);
    sal_graph_add_input(b.g, "x", &xs);
    char prev[32] = "x", cname[32], rname[32];
    for (int l = 0; l < L; l++) {
        snprintf(cname, sizeof cname, "c%d", l);
        snprintf(rname, sizeof rname, "r%d", l);
        conv(&b, prev, cname, l ? C : 3, C, 3, 1, 1, 1, 1, 1, 1, 1, 1.f);
        node(&b, "Relu", rname, cname, NULL);
        snprintf(prev, sizeof prev, "%s", rname);
        if (l == 10) {
            node(&b, "Add", "skip", rname, "r2", NULL);
            snprintf(prev, sizeof prev, "skip");
        }
    }
    node(&b, "GlobalAveragePool", "gap", prev, NULL);
    node(&b, "Flatten", "fl", "gap", NULL);
    gemm(&b, "fl", "y", C, 10);
    sal_graph_mark_output(b.g, "y");
    finalize(&b);
    rig r = rig_new(b.g);
    sal_error err = {0};
    enum { N = 2 };
    sal_shape x2 = S4(N, 3, HW, HW);
    float x[N * 3 * HW * HW], y_fwd[N * 10], y_grad[N * 10], y_fwd2[N * 10];
    tu_fill(x, N * 3 * HW * HW, &b.rng, -1.f, 1.f);
    const float *ins[1] = {x};

    cr_assert_eq(sal_engine_plan(r.e, &x2, SAL_PLAN_FORWARD, -1, &err), SAL_OK, "%s", err.msg);
    size_t fwd_bytes = sal_engine_plan_bytes(r.e);
    cr_assert_eq(sal_engine_forward(r.e, ins, &err), SAL_OK, "%s", err.msg);
    cr_assert_eq(sal_engine_read(r.e, b.g->outputs[0], y_fwd, &err), SAL_OK, "%s", err.msg);

    cr_assert_eq(sal_engine_plan(r.e, &x2, SAL_PLAN_GRAD, -1, &err), SAL_OK, "%s", err.msg);
    size_t act_bytes = 0;   /* every activation, as the gradient plan keeps them */
    for (int i = 0; i < b.g->n_nodes; i++) {
        const sal_shape *s = sal_engine_shape(r.e, b.g->nodes[i].out[0]);
        if (s && strcmp(b.g->nodes[i].op_type, "Flatten") != 0)
            act_bytes += (size_t)sal_shape_numel(s) * sizeof(float);
    }
    cr_assert_eq(sal_engine_forward(r.e, ins, &err), SAL_OK, "%s", err.msg);
    cr_assert_eq(sal_engine_read(r.e, b.g->outputs[0], y_grad, &err), SAL_OK, "%s", err.msg);

    cr_assert_eq(sal_engine_plan(r.e, &x2, SAL_PLAN_FORWARD, -1, &err), SAL_OK, "%s", err.msg);
    cr_assert_eq(sal_engine_forward(r.e, ins, &err), SAL_OK, "%s", err.msg);
    cr_assert_eq(sal_engine_read(r.e, b.g->outputs[0], y_fwd2, &err), SAL_OK, "%s", err.msg);

    for (int i = 0; i < N * 10; i++) {
        cr_expect(isfinite(y_fwd[i]));
        cr_expect(y_fwd[i] == y_grad[i], "output %d: forward plan %.9g, gradient plan %.9g (seed %llu)",
                  i, y_fwd[i], y_grad[i], (unsigned long long)b.seed);
        cr_expect(y_fwd[i] == y_fwd2[i], "output %d: forward plan not reproducible", i);
    }
    cr_log_info("forward plan %zu bytes (activations alone: %zu bytes)", fwd_bytes, act_bytes);
    cr_expect(fwd_bytes < act_bytes, "the forward plan (%zu bytes) does not reuse memory: the "
              "activations alone take %zu bytes", fwd_bytes, act_bytes);
    rig_free(&r);
    sal_graph_free(b.g);
}

/* Plans run a Relu/Clip that alone reads a Conv's output inside that Conv (the CPU backend's fused
 * activation), forward and gradient plans alike; in gradient plans the activation's backward then
 * reads the activation's output instead of its input. Against the same graph on a backend that
 * does not fuse (every activation a kernel of its own): the same outputs and the same input
 * gradients (plain and guided), bit for bit, also where fusion must not happen: a Conv output read
 * twice, a Conv output that is the captured layer, a Clip whose output is a graph output. */
Test(graph_grad, fused_conv_activation_matches_unfused) {
    enum { C = 8, HW = 10 };
    gb b = gb_new();
    sal_shape xs = S4(-1, 3, HW, HW);
    sal_graph_add_input(b.g, "x", &xs);
    const float lo = 0.f, hi = 0.3f;   /* low cap: many saturated units */
    f_const_data(&b, "lo", shp(0), &lo);
    f_const_data(&b, "hi", shp(0), &hi);
    conv(&b, "x", "c0", 3, C, 3, 1, 1, 1, 1, 1, 1, 1, 1.f);
    node(&b, "Clip", "a0", "c0", "lo", "hi", NULL);              /* fused (pointwise-free 3x3) */
    conv(&b, "a0", "c1", C, C, 3, 2, 1, 1, 1, 1, C, 1, 1.f);     /* depthwise, stride 2 */
    node(&b, "Relu", "a1", "c1", NULL);                          /* fused (depthwise) */
    conv(&b, "a1", "c2", C, C, 1, 1, 0, 0, 0, 0, 1, 1, 1.f);     /* pointwise */
    node(&b, "Relu", "a2", "c2", NULL);                          /* not fused: c2 read twice */
    node(&b, "Add", "s", "a2", "c2", NULL);
    conv(&b, "s", "c3", C, C, 3, 1, 1, 1, 1, 1, 1, 1, 4.f);   /* gain 4: spans both sides of the cap */
    node(&b, "Clip", "a3", "c3", "lo", "hi", NULL);              /* fused; also a graph output */
    node(&b, "GlobalAveragePool", "gap", "a3", NULL);
    node(&b, "Flatten", "fl", "gap", NULL);
    gemm(&b, "fl", "y", C, 10);
    sal_graph_mark_output(b.g, "y");
    sal_graph_mark_output(b.g, "a3");
    finalize(&b);
    rig r = rig_new(b.g), u = rig_new(b.g);
    u.be->fuse_conv_act = 0;   /* the reference */
    sal_error err = {0};
    enum { N = 3 };
    sal_shape x2 = S4(N, 3, HW, HW);
    const int64_t nx = (int64_t)N * 3 * HW * HW;
    float x[N * 3 * HW * HW], seed[N * 10], y_ref[N * 10], y[N * 10];
    tu_fill(x, nx, &b.rng, -1.f, 1.f);
    tu_fill(seed, N * 10, &b.rng, -1.f, 1.f);
    const float *ins[1] = {x};
    int vy = b.g->outputs[0], va3 = sal_graph_find_value(b.g, "a3"), vc1 = sal_graph_find_value(b.g, "c1");
    int vx = b.g->inputs[0], vc0 = sal_graph_find_value(b.g, "c0"), va0 = sal_graph_find_value(b.g, "a0");
    const int64_t n0 = (int64_t)N * C * HW * HW;
    float *c0 = malloc(sizeof(float) * (size_t)n0), *a0 = malloc(sizeof(float) * (size_t)n0);
    int64_t na3 = (int64_t)N * C * (HW / 2) * (HW / 2), nc1 = na3;
    float *a3_ref = malloc(sizeof(float) * (size_t)na3), *a3 = malloc(sizeof(float) * (size_t)na3);
    float *c1_ref = malloc(sizeof(float) * (size_t)nc1), *c1 = malloc(sizeof(float) * (size_t)nc1);
    float *gx_ref = malloc(sizeof(float) * (size_t)nx), *gx = malloc(sizeof(float) * (size_t)nx);

    for (int guided = 0; guided < 2; guided++) {
        /* reference: unfused gradient plan, every value readable */
        cr_assert_eq(sal_engine_plan(u.e, &x2, SAL_PLAN_GRAD, -1, &err), SAL_OK, "%s", err.msg);
        cr_assert_eq(sal_engine_forward(u.e, ins, &err), SAL_OK, "%s", err.msg);
        cr_assert_eq(sal_engine_read(u.e, vy, y_ref, &err), SAL_OK, "%s", err.msg);
        cr_assert_eq(sal_engine_read(u.e, va3, a3_ref, &err), SAL_OK, "%s", err.msg);
        cr_assert_eq(sal_engine_read(u.e, vc1, c1_ref, &err), SAL_OK, "%s", err.msg);
        /* unfused: the Conv's output keeps values the Clip changes */
        cr_assert_eq(sal_engine_read(u.e, vc0, c0, &err), SAL_OK, "%s", err.msg);
        cr_assert_eq(sal_engine_read(u.e, va0, a0, &err), SAL_OK, "%s", err.msg);
        cr_expect_neq(memcmp(c0, a0, sizeof(float) * (size_t)n0), 0, "the reference fused the Clip after all");
        cr_assert_eq(sal_engine_backward(u.e, seed, guided, 0, &err), SAL_OK, "%s", err.msg);
        cr_assert_eq(sal_engine_read_grad(u.e, vx, gx_ref, &err), SAL_OK, "%s", err.msg);
        for (int mode = 0; mode < 2; mode++) {   /* fused forward plan, fused gradient plan */
            cr_assert_eq(sal_engine_plan(r.e, &x2, mode ? SAL_PLAN_GRAD : SAL_PLAN_FORWARD, -1, &err), SAL_OK, "%s", err.msg);
            cr_assert_eq(sal_engine_forward(r.e, ins, &err), SAL_OK, "%s", err.msg);
            cr_assert_eq(sal_engine_read(r.e, vy, y, &err), SAL_OK, "%s", err.msg);
            cr_assert_eq(sal_engine_read(r.e, va3, a3, &err), SAL_OK, "%s", err.msg);
            for (int i = 0; i < N * 10; i++)
                cr_expect(y[i] == y_ref[i], "plan %d output %d: fused %.9g, unfused %.9g (seed %llu)", mode, i, y[i],
                          y_ref[i], (unsigned long long)b.seed);
            for (int64_t i = 0; i < na3; i++)
                cr_expect(a3[i] == a3_ref[i], "plan %d a3[%lld]: fused %.9g, unfused %.9g", mode, (long long)i, a3[i],
                          a3_ref[i]);
            /* fused: the Clip ran inside the Conv, whose buffer it shares (the Conv's output reads
             * as clipped), in forward and gradient plans alike */
            cr_assert_eq(sal_engine_read(r.e, vc0, c0, &err), SAL_OK, "%s", err.msg);
            cr_assert_eq(sal_engine_read(r.e, va0, a0, &err), SAL_OK, "%s", err.msg);
            cr_expect_eq(memcmp(c0, a0, sizeof(float) * (size_t)n0), 0, "plan %d: the Clip after c0 was not fused", mode);
            if (!mode) continue;
            cr_assert_eq(sal_engine_backward(r.e, seed, guided, 0, &err), SAL_OK, "%s", err.msg);
            cr_assert_eq(sal_engine_read_grad(r.e, vx, gx, &err), SAL_OK, "%s", err.msg);
            int64_t bad = -1, nz = 0;
            for (int64_t i = 0; i < nx; i++) {
                if (bad < 0 && gx[i] != gx_ref[i]) bad = i;
                nz += gx_ref[i] != 0;
            }
            cr_expect(bad < 0, "guided %d: input gradient %lld: fused %.9g, unfused %.9g (seed %llu)", guided,
                      (long long)bad, bad < 0 ? 0.0 : (double)gx[bad], bad < 0 ? 0.0 : (double)gx_ref[bad],
                      (unsigned long long)b.seed);
            cr_expect(nz > 0, "the input gradient is all zero");
        }
    }
    int sat = 0;
    for (int64_t i = 0; i < na3; i++) sat += a3_ref[i] == hi;
    cr_expect(sat > 0 && sat < na3, "the Clip should saturate some units, not all (%d of %lld)", sat, (long long)na3);
    /* a captured Conv output keeps its pre-activation values, in both kinds of plans */
    for (int mode = 0; mode < 2; mode++) {
        cr_assert_eq(sal_engine_plan(r.e, &x2, mode ? SAL_PLAN_GRAD : SAL_PLAN_FORWARD, vc1, &err), SAL_OK, "%s", err.msg);
        cr_assert_eq(sal_engine_forward(r.e, ins, &err), SAL_OK, "%s", err.msg);
        cr_assert_eq(sal_engine_read(r.e, vc1, c1, &err), SAL_OK, "%s", err.msg);
        int neg = 0;
        for (int64_t i = 0; i < nc1; i++) {
            cr_expect(c1[i] == c1_ref[i], "plan %d c1[%lld]: %.9g vs %.9g", mode, (long long)i, c1[i], c1_ref[i]);
            neg += c1[i] < 0;
        }
        cr_expect(neg > 0, "plan %d: the captured conv output lost its negative values (ReLU applied?)", mode);
    }
    free(a3_ref); free(a3); free(c1_ref); free(c1); free(gx_ref); free(gx); free(c0); free(a0);
    rig_free(&r);
    rig_free(&u);
    sal_graph_free(b.g);
}

/* FLOP accounting (salient bench's GFLOP/s): 2 x multiply-adds of every Conv/Gemm run, forward,
 * and again for each backward-data pass; element-wise ops are not counted. */
Test(graph_grad, flops_count_convolutions_and_matrix_products) {
    gb b = gb_new();
    sal_shape xs = S4(-1, 3, 8, 8);
    sal_graph_add_input(b.g, "x", &xs);
    conv(&b, "x", "c0", 3, 4, 3, 1, 1, 1, 1, 1, 1, 1, 1.f);      /* (N,4,8,8), 3x3 over 3 channels */
    node(&b, "Relu", "r0", "c0", NULL);
    conv(&b, "r0", "c1", 4, 4, 3, 2, 1, 1, 1, 1, 4, 0, 1.f);     /* depthwise, stride 2: (N,4,4,4) */
    node(&b, "GlobalAveragePool", "gap", "c1", NULL);
    node(&b, "Flatten", "fl", "gap", NULL);
    gemm(&b, "fl", "y", 4, 10);
    sal_graph_mark_output(b.g, "y");
    finalize(&b);
    rig r = rig_new(b.g);
    sal_error err = {0};
    enum { N = 2 };
    sal_shape x2 = S4(N, 3, 8, 8);
    float x[N * 3 * 8 * 8], seed[N * 10];
    tu_fill(x, N * 3 * 8 * 8, &b.rng, -1.f, 1.f);
    tu_fill(seed, N * 10, &b.rng, -1.f, 1.f);
    const float *ins[1] = {x};
    const double fwd = 2.0 * N * 4 * 8 * 8 * 3 * 3 * 3   /* c0 */
                     + 2.0 * N * 4 * 4 * 4 * 1 * 3 * 3   /* c1: one input channel per group */
                     + 2.0 * N * 10 * 4;                 /* gemm */
    cr_expect_eq(sal_engine_flops(r.e), 0.0);
    cr_assert_eq(sal_engine_plan(r.e, &x2, SAL_PLAN_GRAD, -1, &err), SAL_OK, "%s", err.msg);
    cr_assert_eq(sal_engine_forward(r.e, ins, &err), SAL_OK, "%s", err.msg);
    cr_expect_eq(sal_engine_flops(r.e), fwd, "forward: %.0f FLOPs, expected %.0f", sal_engine_flops(r.e), fwd);
    cr_assert_eq(sal_engine_backward(r.e, seed, 0, 0, &err), SAL_OK, "%s", err.msg);
    cr_expect_eq(sal_engine_flops(r.e), 2 * fwd, "forward + backward: %.0f, expected %.0f", sal_engine_flops(r.e), 2 * fwd);
    rig_free(&r);
    sal_graph_free(b.g);
}
