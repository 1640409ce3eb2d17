/* test_ops_elem.c — element-wise, broadcasting and layout ops (infer_elem.c, cpu_elem.c):
 * forward against naive double-precision references written here, gradients against central
 * differences (tu_grad_check), guided-backprop rules, shape inference of the alias ops, and the
 * statuses of bad attributes and shapes. Every run draws a fresh seed, printed on failure. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "ops/op_decls.h"
#include "backend/backend.h"

/* ------------------------------------------------------------------------------------------------ */
/* Helpers                                                                                          */

typedef unsigned long long ull;

static int64_t numel(sal_shape s) {
    int64_t n = 1;
    for (int i = 0; i < s.ndim; i++) n *= s.d[i];
    return n;
}

static void unravel(int64_t i, const sal_shape *s, int64_t *idx) {
    for (int d = s->ndim - 1; d >= 0; d--) {
        idx[d] = s->d[d] ? i % s->d[d] : 0;
        i = s->d[d] ? i / s->d[d] : 0;
    }
}

static int64_t ravel(const int64_t *idx, const sal_shape *s) {
    int64_t off = 0;
    for (int d = 0; d < s->ndim; d++) off = off * s->d[d] + idx[d];
    return off;
}

static int shape_is(sal_shape s, sal_shape e) {
    if (s.ndim != e.ndim) return 0;
    for (int i = 0; i < s.ndim; i++)
        if (s.d[i] != e.d[i]) return 0;
    return 1;
}

static const char *sstr(sal_shape s, char *buf) { return sal_shape_str(&s, buf, 128); }

static sal_graph *node(const char *op, int n_in, const tu_input *ins, int n_out, int opset) {
    sal_graph *g = tu_op_graph(op, n_in, ins, n_out, opset);
    cr_assert(g, "tu_op_graph(%s) failed", op);
    return g;
}

static sal_node *N0(sal_graph *g) { return &g->nodes[0]; }

/* Infer only: status, output 0's shape and a copy of the params (caller frees). */
static sal_status infer(sal_graph *g, sal_shape *out, void **params, sal_error *err) {
    const sal_node *n = &g->nodes[0];
    const sal_op_def *def = sal_op_lookup(n->op_type);
    cr_assert(def && def->infer, "no infer for %s", n->op_type);
    sal_shape ins[16], outs[8];
    const sal_shape *insp[16];
    int idt[16], odt[8];
    const sal_tensor *kc[16];
    for (int i = 0; i < n->n_in; i++) {
        int v = n->in[i];
        insp[i] = NULL;
        kc[i] = NULL;
        idt[i] = 0;
        if (v < 0) continue;
        const sal_value *val = &g->values[v];
        if (val->konst) { ins[i] = val->konst->shape; idt[i] = val->konst->dtype; kc[i] = val->konst; }
        else { ins[i] = val->decl; idt[i] = SAL_F32; }
        insp[i] = &ins[i];
    }
    memset(outs, 0, sizeof outs);
    for (int i = 0; i < 8; i++) odt[i] = SAL_F32;
    sal_op_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    ctx.g = g;
    ctx.node = n;
    ctx.n_in = n->n_in;
    ctx.in_shape = insp;
    ctx.in_dtype = idt;
    ctx.in_const = kc;
    ctx.n_out = n->n_out;
    ctx.out_shape = outs;
    ctx.out_dtype = odt;
    ctx.err = err;
    sal_status st = def->infer(&ctx);
    if (out) *out = outs[0];
    if (params) *params = ctx.params;
    else free(ctx.params);
    return st;
}

static sal_status infer_st(sal_graph *g, sal_shape *out) {
    sal_error err = {0};
    return infer(g, out, NULL, &err);
}

/* Random runtime inputs in node-input order, forward through the CPU kernels. */
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
        int64_t k = numel(r->xs[r->n]);
        r->x[r->n] = malloc(sizeof(float) * (size_t)(k + 1));
        tu_fill(r->x[r->n], k, &s, lo, hi);
        r->n++;
    }
    sal_error err = {0};
    sal_status st = tu_forward(g, (const float *const *)r->x, &r->y, &r->ys, &err);
    cr_assert(st == SAL_OK, "%s forward: %s (%s) (seed %llu)", n->op_type, sal_status_str(st),
              err.msg, (ull)seed);
}

/* max |y - ref| / (1 + |ref|) */
static double max_err(const float *y, const double *ref, int64_t n) {
    double m = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)y[i] - ref[i]) / (1.0 + fabs(ref[i]));
        if (!(d <= m)) m = d;   /* NaN counts as a failure */
    }
    return m;
}

#define CHECK_FWD(r, ref, tol, seed, what)                                                        \
    do {                                                                                          \
        double e_ = max_err((r).y, (ref), numel((r).ys));                                         \
        cr_assert(e_ <= (tol), "%s: forward error %g > %g (seed %llu)", (what), e_, (double)(tol), \
                  (ull)(seed));                                                                   \
    } while (0)

/* Big tensors check fewer elements: each one costs two forward passes. */
static int64_t grad_samples(const sal_graph *g) {
    const sal_node *n = &g->nodes[0];
    int64_t big = 0;
    for (int i = 0; i < n->n_in; i++) {
        int v = n->in[i];
        if (v >= 0 && !g->values[v].konst && numel(g->values[v].decl) > big)
            big = numel(g->values[v].decl);
    }
    return big > 20000 ? 8 : 200;
}

#define CHECK_GRAD(g, seed, lo, hi, eps, tol, what)                                               \
    do {                                                                                          \
        tu_grad_result gr_ = tu_grad_check((g), (seed), (lo), (hi), (eps), grad_samples(g));      \
        cr_assert(gr_.st == SAL_OK, "%s: gradient check: %s (%s) (seed %llu)", (what),           \
                  sal_status_str(gr_.st), gr_.msg, (ull)(seed));                                  \
        cr_assert(gr_.checked > 0, "%s: nothing checked", (what));                                \
        cr_assert(gr_.max_err < (tol), "%s: gradient error %g >= %g (seed %llu)", (what),         \
                  gr_.max_err, (double)(tol), (ull)(seed));                                       \
    } while (0)

#define CHECK_SHAPE(got, exp, what)                                                               \
    do {                                                                                          \
        char b1_[128], b2_[128];                                                                  \
        cr_assert(shape_is((got), (exp)), "%s: shape %s, expected %s", (what), sstr((got), b1_),  \
                  sstr((exp), b2_));                                                              \
    } while (0)

/* A seed whose fill (the one tu_grad_check makes) keeps every runtime input at least `margin`
 * away from the op's kinks, so central differences never straddle one. */
static uint64_t kink_free_seed(const sal_graph *g, uint64_t seed, float lo, float hi,
                               const float *kinks, int nk, float margin) {
    const sal_node *n = &g->nodes[0];
    for (int tries = 0; tries < 100000; tries++) {
        uint64_t s = seed;
        int ok = 1;
        for (int i = 0; ok && i < n->n_in; i++) {
            int v = n->in[i];
            if (v < 0 || g->values[v].konst) continue;
            /* element-wise ops: only the elements tu_grad_check samples matter */
            int64_t k = numel(g->values[v].decl), m = grad_samples(g), step = k > m ? k / m : 1;
            for (int64_t j = 0; j < k; j++) {
                float x = tu_uniform(&s, lo, hi);
                for (int q = 0; j % step == 0 && q < nk; q++)
                    if (fabsf(x - kinks[q]) < margin) ok = 0;
            }
        }
        if (ok) return seed;
        uint64_t t = seed;
        seed = tu_next(&t);
    }
    cr_assert_fail("no kink-free seed found");
    return seed;
}

/* ------------------------------------------------------------------------------------------------ */
/* Activations                                                                                      */

typedef enum { A_RELU, A_LEAKY, A_CLIP, A_SIGMOID, A_HSIG, A_HSWISH, A_TANH } act_kind;

static double act_ref(act_kind k, double x, double alpha, double beta, double lo, double hi) {
    switch (k) {
    case A_RELU: return x > 0 ? x : 0;
    case A_LEAKY: return x >= 0 ? x : alpha * x;
    case A_CLIP: return fmin(fmax(x, lo), hi);
    case A_SIGMOID: return 1.0 / (1.0 + exp(-x));
    case A_HSIG: return fmax(0.0, fmin(1.0, alpha * x + beta));
    case A_HSWISH: return x * fmax(0.0, fmin(1.0, x / 6.0 + 0.5));
    case A_TANH: return tanh(x);
    }
    return 0;
}

/* Forward against act_ref and gradient check on a kink-free fill. */
static void check_act(sal_graph *g, act_kind k, double alpha, double beta, double lo, double hi,
                      float xlo, float xhi, const float *kinks, int nk, const char *what) {
    uint64_t seed = tu_fresh_seed();
    run r;
    run_fwd(g, seed, xlo, xhi, &r);
    CHECK_SHAPE(r.ys, r.xs[0], what);
    int64_t n = numel(r.ys);
    double *ref = malloc(sizeof(double) * (size_t)n);
    for (int64_t i = 0; i < n; i++) ref[i] = act_ref(k, r.x[0][i], alpha, beta, lo, hi);
    CHECK_FWD(r, ref, 1e-5, seed, what);
    free(ref);
    run_free(&r);
    const float eps = 1e-3f;
    uint64_t gs = kink_free_seed(g, seed, xlo, xhi, kinks, nk, 3 * eps);
    CHECK_GRAD(g, gs, xlo, xhi, eps, 1e-2, what);
}

Test(activation, relu) {
    const sal_shape shapes[] = {tu_shape(4, 2, 3, 4, 5), tu_shape(1, 7), tu_shape(0), tu_shape(4, 2, 16, 40, 40)};
    const float kinks[] = {0.f};
    for (int i = 0; i < 4; i++) {
        tu_input in[] = {tu_rt(shapes[i])};
        sal_graph *g = node("Relu", 1, in, 1, 13);
        check_act(g, A_RELU, 0, 0, 0, 0, -1.f, 1.f, kinks, 1, "Relu");
        sal_graph_free(g);
    }
}

Test(activation, leakyrelu) {
    const float kinks[] = {0.f};
    tu_input in[] = {tu_rt(tu_shape(3, 2, 3, 7))};
    sal_graph *g = node("LeakyRelu", 1, in, 1, 13);
    check_act(g, A_LEAKY, 0.01, 0, 0, 0, -1.f, 1.f, kinks, 1, "LeakyRelu default alpha");
    sal_graph_free(g);
    g = node("LeakyRelu", 1, in, 1, 6);
    sal_node_attr_float(N0(g), "alpha", 0.3f);
    check_act(g, A_LEAKY, 0.3f, 0, 0, 0, -1.f, 1.f, kinks, 1, "LeakyRelu alpha 0.3");
    sal_graph_free(g);
}

Test(activation, clip_inputs) {
    const float lo = -0.5f, hi = 0.6f;
    const float kinks[] = {lo, hi};
    const sal_shape x = tu_shape(3, 2, 5, 6), sc = tu_shape(0);
    /* opset 13: min and max inputs */
    tu_input both[] = {tu_rt(x), tu_cf(sc, &lo), tu_cf(sc, &hi)};
    sal_graph *g = node("Clip", 3, both, 1, 13);
    check_act(g, A_CLIP, 0, 0, lo, hi, -1.f, 1.f, kinks, 2, "Clip min,max");
    sal_graph_free(g);
    /* only min */
    tu_input only_min[] = {tu_rt(x), tu_cf(sc, &lo)};
    g = node("Clip", 2, only_min, 1, 12);
    check_act(g, A_CLIP, 0, 0, lo, INFINITY, -1.f, 1.f, kinks, 1, "Clip min");
    sal_graph_free(g);
    /* only max: min absent */
    tu_input only_max[] = {tu_rt(x), tu_absent(), tu_cf(sc, &hi)};
    g = node("Clip", 3, only_max, 1, 11);
    check_act(g, A_CLIP, 0, 0, -INFINITY, hi, -1.f, 1.f, kinks + 1, 1, "Clip max");
    sal_graph_free(g);
    /* neither: identity */
    tu_input none[] = {tu_rt(x)};
    g = node("Clip", 1, none, 1, 13);
    check_act(g, A_CLIP, 0, 0, -INFINITY, INFINITY, -1.f, 1.f, NULL, 0, "Clip no bounds");
    sal_graph_free(g);
    /* min > max: everything becomes max */
    const float big = 0.7f, small = -0.2f;
    tu_input swapped[] = {tu_rt(x), tu_cf(sc, &big), tu_cf(sc, &small)};
    g = node("Clip", 3, swapped, 1, 13);
    uint64_t seed = tu_fresh_seed();
    run r;
    run_fwd(g, seed, -1.f, 1.f, &r);
    for (int64_t i = 0; i < numel(r.ys); i++)
        cr_assert(r.y[i] == small, "Clip min > max: y[%lld] = %g (seed %llu)", (long long)i, r.y[i],
                  (ull)seed);
    run_free(&r);
    sal_graph_free(g);
}

Test(activation, clip_attributes_opset6) {
    const float kinks[] = {-0.25f, 0.5f};
    tu_input in[] = {tu_rt(tu_shape(2, 4, 9))};
    sal_graph *g = node("Clip", 1, in, 1, 6);
    sal_node_attr_float(N0(g), "min", -0.25f);
    sal_node_attr_float(N0(g), "max", 0.5f);
    check_act(g, A_CLIP, 0, 0, -0.25, 0.5, -1.f, 1.f, kinks, 2, "Clip-6 attributes");
    sal_graph_free(g);
    g = node("Clip", 1, in, 1, 6);
    sal_node_attr_float(N0(g), "max", 0.5f);
    check_act(g, A_CLIP, 0, 0, -INFINITY, 0.5, -1.f, 1.f, kinks + 1, 1, "Clip-6 max only");
    sal_graph_free(g);
}

Test(activation, clip_runtime_bound_unsupported) {
    const float hi = 1.f;
    tu_input in[] = {tu_rt(tu_shape(2, 3, 4)), tu_rt(tu_shape(0)), tu_cf(tu_shape(0), &hi)};
    sal_graph *g = node("Clip", 3, in, 1, 13);
    sal_error err = {0};
    sal_status st = infer(g, NULL, NULL, &err);
    cr_assert(st == SAL_ERR_UNSUPPORTED, "runtime min: %s", sal_status_str(st));
    cr_assert(strstr(err.msg, "min") && strstr(err.msg, "node0"), "message: %s", err.msg);
    sal_graph_free(g);
}

Test(activation, sigmoid_tanh) {
    tu_input in[] = {tu_rt(tu_shape(4, 2, 3, 4, 5))};
    sal_graph *g = node("Sigmoid", 1, in, 1, 13);
    check_act(g, A_SIGMOID, 0, 0, 0, 0, -6.f, 6.f, NULL, 0, "Sigmoid");
    sal_graph_free(g);
    g = node("Tanh", 1, in, 1, 13);
    check_act(g, A_TANH, 0, 0, 0, 0, -3.f, 3.f, NULL, 0, "Tanh");
    sal_graph_free(g);
    /* extreme inputs stay finite */
    g = node("Sigmoid", 1, in, 1, 13);
    run r;
    run_fwd(g, 1, -200.f, 200.f, &r);
    for (int64_t i = 0; i < numel(r.ys); i++) cr_assert(r.y[i] >= 0.f && r.y[i] <= 1.f);
    run_free(&r);
    sal_graph_free(g);
}

Test(activation, hardsigmoid_hardswish) {
    tu_input in[] = {tu_rt(tu_shape(3, 3, 5, 8))};
    sal_graph *g = node("HardSigmoid", 1, in, 1, 13);
    const float k1[] = {-2.5f, 2.5f};
    check_act(g, A_HSIG, 0.2, 0.5, 0, 0, -4.f, 4.f, k1, 2, "HardSigmoid default");
    sal_graph_free(g);
    g = node("HardSigmoid", 1, in, 1, 6);
    sal_node_attr_float(N0(g), "alpha", 0.5f);
    sal_node_attr_float(N0(g), "beta", 0.6f);
    const float k2[] = {-1.2f, 0.8f};
    check_act(g, A_HSIG, 0.5, 0.6, 0, 0, -3.f, 3.f, k2, 2, "HardSigmoid alpha 0.5 beta 0.6");
    sal_graph_free(g);
    g = node("HardSwish", 1, in, 1, 14);
    const float k3[] = {-3.f, 3.f};
    check_act(g, A_HSWISH, 0, 0, 0, 0, -5.f, 5.f, k3, 2, "HardSwish");
    sal_graph_free(g);
}

/* Infer, forward and backward through the CPU kernels directly (guided flag and thread count
 * chosen here). x[k]: the k-th runtime input's data; y (may be NULL) receives output 0; when gout
 * is not NULL, gin[k] (NULL entries allowed) receives += the k-th runtime input's gradient. */
static void run_direct(sal_graph *g, float *const *x, float *y, const float *gout,
                       float *const *gin, int guided, int threads) {
    sal_error err = {0};
    void *params = NULL;
    sal_shape ys;
    sal_status st = infer(g, &ys, &params, &err);
    cr_assert(st == SAL_OK, "%s", err.msg);
    const sal_node *n = &g->nodes[0];
    const sal_shape *insp[16];
    const float *in[16];
    float *gins[16];
    for (int i = 0, k = 0; i < n->n_in; i++) {
        int v = n->in[i];
        insp[i] = NULL;
        in[i] = NULL;
        gins[i] = NULL;
        if (v < 0) continue;
        const sal_value *val = &g->values[v];
        if (val->konst) {
            insp[i] = &val->konst->shape;
            in[i] = val->konst->dtype == SAL_F32 ? val->konst->data : NULL;
        } else {
            insp[i] = &val->decl;
            in[i] = x[k];
            gins[i] = gin ? gin[k] : NULL;
            k++;
        }
    }
    float *yb = calloc((size_t)numel(ys) + 1, sizeof(float));
    float *outs[1] = {yb};
    const sal_shape *outsp[1] = {&ys};
    const float *gouts[1] = {gout};
    sal_op_call c;
    memset(&c, 0, sizeof c);
    c.node = n;
    c.params = params;
    c.n_in = n->n_in;
    c.n_out = 1;
    c.in = in;
    c.in_shape = insp;
    c.out = outs;
    c.out_shape = outsp;
    c.gout = gouts;
    c.gin = gins;
    c.guided = guided;
    c.threads = threads;
    st = sal_cpu_forward(&c, &err);
    cr_assert(st == SAL_OK, "%s", err.msg);
    if (y) memcpy(y, yb, sizeof(float) * (size_t)numel(ys));
    if (gout) {
        st = sal_cpu_backward(&c, &err);
        cr_assert(st == SAL_OK, "%s", err.msg);
    }
    free(yb);
    free(params);
}

Test(activation, guided_rules) {
    uint64_t seed = tu_fresh_seed(), s = seed;
    const sal_shape xs = tu_shape(3, 4, 8, 9);
    const int64_t n = numel(xs);
    float *x = malloc(sizeof(float) * (size_t)n), *gout = malloc(sizeof(float) * (size_t)n);
    float *gin = malloc(sizeof(float) * (size_t)n);
    tu_fill(x, n, &s, -8.f, 8.f);
    tu_fill(gout, n, &s, -1.f, 1.f);
    const float zero = 0.f, six = 6.f, m1 = -1.f, p1 = 1.f;
    struct { const char *op; int n_in; float lo, hi; int guided; } cases[] = {
        {"Relu", 1, 0.f, INFINITY, 1},   {"Relu", 1, 0.f, INFINITY, 0},
        {"Clip", 3, 0.f, 6.f, 1},        {"Clip", 3, 0.f, 6.f, 0},
        {"Clip", 3, -1.f, 1.f, 1},   /* lo < 0: guided rule does not apply */
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        tu_input in[3] = {tu_rt(xs), tu_cf(tu_shape(0), cases[k].lo == 0.f ? &zero : &m1),
                          tu_cf(tu_shape(0), cases[k].hi == 6.f ? &six : &p1)};
        sal_graph *g = node(cases[k].op, cases[k].n_in, in, 1, 13);
        for (int64_t i = 0; i < n; i++) gin[i] = 0.25f;   /* backward must add */
        run_direct(g, &x, NULL, gout, &gin, cases[k].guided, 2);
        int guided_rule = cases[k].guided && cases[k].lo >= 0.f;
        for (int64_t i = 0; i < n; i++) {
            int pass = x[i] > cases[k].lo && x[i] < cases[k].hi && (!guided_rule || gout[i] > 0.f);
            float e = 0.25f + (pass ? gout[i] : 0.f);
            cr_assert(gin[i] == e, "%s [%g,%g] guided %d: gin[%lld] = %g, expected %g (x %g, g %g) "
                      "(seed %llu)", cases[k].op, cases[k].lo, cases[k].hi, cases[k].guided,
                      (long long)i, gin[i], e, x[i], gout[i], (ull)seed);
        }
        sal_graph_free(g);
    }
    free(x);
    free(gout);
    free(gin);
}

/* ------------------------------------------------------------------------------------------------ */
/* Broadcasting binary ops                                                                          */

static const char *const BIN_OPS[] = {"Add", "Sub", "Mul", "Div"};

static double bin_ref1(int op, double a, double b) {
    switch (op) {
    case 0: return a + b;
    case 1: return a - b;
    case 2: return a * b;
    default: return a / b;
    }
}

/* numpy broadcasting, straight from the definition */
static sal_shape bcast_shape(sal_shape a, sal_shape b) {
    sal_shape y;
    memset(&y, 0, sizeof y);
    y.ndim = a.ndim > b.ndim ? a.ndim : b.ndim;
    for (int d = 0; d < y.ndim; d++) {
        int ia = d - (y.ndim - a.ndim), ib = d - (y.ndim - b.ndim);
        int64_t da = ia >= 0 ? a.d[ia] : 1, db = ib >= 0 ? b.d[ib] : 1;
        y.d[d] = da == 1 ? db : da;
    }
    return y;
}

static int64_t bcast_index(const int64_t *yidx, sal_shape y, sal_shape a) {
    int64_t off = 0;
    for (int d = 0; d < a.ndim; d++) {
        int64_t c = a.d[d] == 1 ? 0 : yidx[d + y.ndim - a.ndim];
        off = off * a.d[d] + c;
    }
    return off;
}

static void bin_ref(int op, const float *a, sal_shape as, const float *b, sal_shape bs, sal_shape ys,
                    double *ref) {
    int64_t idx[SAL_MAX_DIMS];
    for (int64_t i = 0; i < numel(ys); i++) {
        unravel(i, &ys, idx);
        ref[i] = bin_ref1(op, a[bcast_index(idx, ys, as)], b[bcast_index(idx, ys, bs)]);
    }
}

static void check_binary(int op, sal_shape as, sal_shape bs, int b_const, int a_const) {
    char what[160], b1[64], b2[64];
    snprintf(what, sizeof what, "%s %s%s %s%s", BIN_OPS[op], sstr(as, b1), a_const ? "(const)" : "",
             sstr(bs, b2), b_const ? "(const)" : "");
    uint64_t seed = tu_fresh_seed(), s = seed;
    /* inputs in [0.5, 2]: Div's denominator stays away from zero */
    const float lo = 0.5f, hi = 2.f;
    float *ka = NULL, *kb = NULL;
    if (a_const) { ka = malloc(sizeof(float) * (size_t)numel(as)); tu_fill(ka, numel(as), &s, lo, hi); }
    if (b_const) { kb = malloc(sizeof(float) * (size_t)numel(bs)); tu_fill(kb, numel(bs), &s, lo, hi); }
    tu_input in[2] = {a_const ? tu_cf(as, ka) : tu_rt(as), b_const ? tu_cf(bs, kb) : tu_rt(bs)};
    sal_graph *g = node(BIN_OPS[op], 2, in, 1, 13);
    run r;
    run_fwd(g, seed, lo, hi, &r);
    sal_shape ys = bcast_shape(as, bs);
    CHECK_SHAPE(r.ys, ys, what);
    const float *a = a_const ? ka : r.x[0], *b = b_const ? kb : r.x[a_const ? 0 : 1];
    double *ref = malloc(sizeof(double) * (size_t)(numel(ys) + 1));
    bin_ref(op, a, as, b, bs, ys, ref);
    CHECK_FWD(r, ref, 1e-6, seed, what);
    free(ref);
    run_free(&r);
    CHECK_GRAD(g, seed, lo, hi, 1e-2f, 1e-2, what);
    sal_graph_free(g);
    free(ka);
    free(kb);
}

/* Shapes: same, per-last-dim, per-channel (C,1,1), SE (N,C,1,1), scalar, (1,), both broadcast,
 * the small input first, partial broadcasts that need the general path. */
static const struct { sal_shape a, b; int mode; } BIN_CASES[] = {
    {{4, {2, 3, 4, 5}}, {4, {2, 3, 4, 5}}, SAL_BC_SAME},
    {{4, {2, 3, 4, 5}}, {1, {5}}, SAL_BC_CHANNEL_B},
    {{4, {2, 3, 4, 5}}, {3, {3, 1, 1}}, SAL_BC_CHANNEL_B},
    {{4, {2, 3, 4, 5}}, {4, {1, 3, 1, 1}}, SAL_BC_CHANNEL_B},
    {{4, {2, 3, 4, 5}}, {4, {2, 3, 1, 1}}, SAL_BC_CHANNEL_B},
    {{4, {2, 3, 4, 5}}, {0, {0}}, SAL_BC_SCALAR_B},
    {{4, {2, 3, 4, 5}}, {1, {1}}, SAL_BC_SCALAR_B},
    {{3, {2, 1, 4}}, {3, {1, 3, 1}}, SAL_BC_GENERAL},
    {{3, {3, 1, 1}}, {4, {2, 3, 4, 5}}, SAL_BC_CHANNEL_A},
    {{0, {0}}, {2, {2, 3}}, SAL_BC_SCALAR_A},
    {{4, {2, 3, 4, 5}}, {3, {3, 1, 5}}, SAL_BC_GENERAL},
    {{4, {1, 3, 1, 5}}, {4, {2, 1, 4, 1}}, SAL_BC_GENERAL},
    {{4, {2, 3, 4, 5}}, {2, {4, 5}}, SAL_BC_CHANNEL_B},
    {{2, {3, 1}}, {4, {2, 1, 3, 4}}, SAL_BC_CHANNEL_A},
    {{4, {2, 16, 40, 40}}, {4, {1, 16, 1, 1}}, SAL_BC_CHANNEL_B},   /* big: threaded paths */
    {{4, {2, 16, 40, 40}}, {4, {2, 16, 1, 1}}, SAL_BC_CHANNEL_B},
    {{4, {2, 16, 40, 40}}, {4, {2, 16, 40, 40}}, SAL_BC_SAME},
    {{3, {64, 40, 40}}, {3, {64, 1, 40}}, SAL_BC_GENERAL},
    {{2, {600, 70}}, {1, {70}}, SAL_BC_CHANNEL_B},
};
#define N_BIN_CASES ((int)(sizeof BIN_CASES / sizeof BIN_CASES[0]))

Test(binary, fast_path_classes) {
    for (int k = 0; k < N_BIN_CASES; k++) {
        tu_input in[2] = {tu_rt(BIN_CASES[k].a), tu_rt(BIN_CASES[k].b)};
        sal_graph *g = node("Mul", 2, in, 1, 13);
        sal_error err = {0};
        void *params = NULL;
        cr_assert(infer(g, NULL, &params, &err) == SAL_OK, "%s", err.msg);
        const sal_bcast_params *p = params;
        char b1[64], b2[64];
        cr_assert(p->mode == BIN_CASES[k].mode, "%s x %s: mode %d, expected %d",
                  sstr(BIN_CASES[k].a, b1), sstr(BIN_CASES[k].b, b2), p->mode, BIN_CASES[k].mode);
        free(params);
        sal_graph_free(g);
    }
}

Test(binary, forward_and_gradients) {
    for (int op = 0; op < 4; op++)
        for (int k = 0; k < N_BIN_CASES; k++) check_binary(op, BIN_CASES[k].a, BIN_CASES[k].b, 0, 0);
}

Test(binary, constant_operand) {
    /* a constant operand gets no gradient (gin NULL) */
    for (int op = 0; op < 4; op++) {
        check_binary(op, tu_shape(4, 2, 3, 4, 5), tu_shape(3, 3, 1, 1), 1, 0);
        check_binary(op, tu_shape(4, 2, 3, 4, 5), tu_shape(0), 1, 0);
        check_binary(op, tu_shape(3, 3, 1, 1), tu_shape(4, 2, 3, 4, 5), 0, 1);
        check_binary(op, tu_shape(3, 2, 1, 4), tu_shape(3, 1, 3, 1), 1, 0);
    }
}

Test(binary, legacy_broadcast_axis_opset6) {
    uint64_t seed = tu_fresh_seed();
    tu_input in[2] = {tu_rt(tu_shape(4, 2, 3, 4, 5)), tu_rt(tu_shape(2, 3, 4))};
    sal_graph *g = node("Add", 2, in, 1, 6);
    sal_node_attr_int(N0(g), "broadcast", 1);
    sal_node_attr_int(N0(g), "axis", 1);
    run r;
    run_fwd(g, seed, -1.f, 1.f, &r);
    CHECK_SHAPE(r.ys, tu_shape(4, 2, 3, 4, 5), "Add-6 axis 1");
    double *ref = malloc(sizeof(double) * 120);
    int64_t idx[4];
    sal_shape ys = tu_shape(4, 2, 3, 4, 5);
    for (int64_t i = 0; i < 120; i++) {
        unravel(i, &ys, idx);
        ref[i] = (double)r.x[0][i] + r.x[1][idx[1] * 4 + idx[2]];
    }
    CHECK_FWD(r, ref, 1e-6, seed, "Add-6 axis 1");
    free(ref);
    run_free(&r);
    CHECK_GRAD(g, seed, -1.f, 1.f, 1e-2f, 1e-2, "Add-6 axis 1");
    sal_graph_free(g);
}

Test(binary, incompatible_shapes) {
    const struct { sal_shape a, b; } bad[] = {
        {{2, {2, 3}}, {1, {4}}},
        {{4, {2, 3, 4, 5}}, {3, {3, 4, 4}}},
        {{3, {2, 1, 4}}, {3, {3, 1, 5}}},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++)
        for (int op = 0; op < 4; op++) {
            tu_input in[2] = {tu_rt(bad[k].a), tu_rt(bad[k].b)};
            sal_graph *g = node(BIN_OPS[op], 2, in, 1, 13);
            sal_error err = {0};
            sal_status st = infer(g, NULL, NULL, &err);
            cr_assert(st == SAL_ERR_SHAPE, "%s: %s", BIN_OPS[op], sal_status_str(st));
            cr_assert(strstr(err.msg, "broadcast"), "message: %s", err.msg);
            sal_graph_free(g);
        }
}

/* ------------------------------------------------------------------------------------------------ */
/* ReduceMean                                                                                       */

static void reducemean_ref(const float *x, sal_shape xs, unsigned mask, double *ref, sal_shape ys) {
    int64_t idx[SAL_MAX_DIMS], count = 1;
    for (int d = 0; d < xs.ndim; d++)
        if (mask & (1u << d)) count *= xs.d[d];
    sal_shape keep = xs;   /* output with keepdims = 1: same layout as ys */
    for (int d = 0; d < xs.ndim; d++)
        if (mask & (1u << d)) keep.d[d] = 1;
    for (int64_t j = 0; j < numel(ys); j++) ref[j] = 0;
    for (int64_t i = 0; i < numel(xs); i++) {
        unravel(i, &xs, idx);
        for (int d = 0; d < xs.ndim; d++)
            if (mask & (1u << d)) idx[d] = 0;
        ref[ravel(idx, &keep)] += x[i];
    }
    for (int64_t j = 0; j < numel(ys); j++) ref[j] /= (double)count;
}

static void check_reducemean(sal_shape xs, int naxes, const int64_t *axes, int keepdims, int opset,
                             int noop, const char *what) {
    uint64_t seed = tu_fresh_seed();
    sal_graph *g;
    tu_input in[2] = {tu_rt(xs), tu_ci(tu_shape(1, naxes), axes)};
    if (opset >= 18) {
        g = node("ReduceMean", naxes >= 0 ? 2 : 1, in, 1, opset);
    } else {
        g = node("ReduceMean", 1, in, 1, opset);
        if (naxes >= 0) sal_node_attr_ints(N0(g), "axes", naxes, axes);
    }
    if (keepdims >= 0) sal_node_attr_int(N0(g), "keepdims", keepdims);
    if (noop) sal_node_attr_int(N0(g), "noop_with_empty_axes", 1);
    unsigned mask = 0;
    if (naxes <= 0) mask = noop ? 0u : (1u << xs.ndim) - 1u;
    for (int i = 0; i < naxes; i++) mask |= 1u << (axes[i] < 0 ? axes[i] + xs.ndim : axes[i]);
    sal_shape ys;
    memset(&ys, 0, sizeof ys);
    for (int d = 0; d < xs.ndim; d++) {
        if (!(mask & (1u << d))) ys.d[ys.ndim++] = xs.d[d];
        else if (keepdims != 0) ys.d[ys.ndim++] = 1;
    }
    run r;
    run_fwd(g, seed, -1.f, 1.f, &r);
    CHECK_SHAPE(r.ys, ys, what);
    double *ref = malloc(sizeof(double) * (size_t)(numel(ys) + 1));
    reducemean_ref(r.x[0], xs, mask, ref, ys);
    CHECK_FWD(r, ref, 1e-5, seed, what);
    free(ref);
    run_free(&r);
    CHECK_GRAD(g, seed, -1.f, 1.f, 1e-2f, 1e-2, what);
    sal_graph_free(g);
}

Test(reducemean, axes_and_keepdims) {
    const sal_shape x = tu_shape(4, 2, 3, 4, 5);
    const int64_t hw[] = {2, 3}, last[] = {-1}, c[] = {1}, n0[] = {0}, gen[] = {0, 2},
                  gen2[] = {1, 3}, negs[] = {-3, -1};
    for (int keep = 0; keep <= 1; keep++) {
        check_reducemean(x, 2, hw, keep, 13, 0, "ReduceMean (2,3)");
        check_reducemean(x, 1, last, keep, 13, 0, "ReduceMean (-1)");
        check_reducemean(x, 1, c, keep, 13, 0, "ReduceMean (1)");
        check_reducemean(x, 1, n0, keep, 13, 0, "ReduceMean (0)");
        check_reducemean(x, 2, gen, keep, 13, 0, "ReduceMean (0,2)");
        check_reducemean(x, 2, gen2, keep, 13, 0, "ReduceMean (1,3)");
        check_reducemean(x, 2, negs, keep, 13, 0, "ReduceMean (-3,-1)");
        check_reducemean(x, -1, NULL, keep, 13, 0, "ReduceMean all");
    }
    check_reducemean(x, 2, hw, -1, 13, 0, "ReduceMean keepdims default");
    check_reducemean(tu_shape(4, 2, 1, 3, 1), 2, gen2, 1, 13, 0, "ReduceMean over 1-dims");
    check_reducemean(tu_shape(4, 4, 64, 12, 12), 2, hw, 1, 13, 0, "ReduceMean big (2,3)");
    check_reducemean(tu_shape(3, 16, 40, 70), 1, n0, 0, 13, 0, "ReduceMean big (0)");
}

Test(reducemean, opset18_axes_input) {
    const sal_shape x = tu_shape(3, 3, 4, 5);
    const int64_t a[] = {-1, 0};
    check_reducemean(x, 2, a, 1, 18, 0, "ReduceMean-18 axes input");
    check_reducemean(x, 2, a, 0, 18, 0, "ReduceMean-18 axes input keepdims 0");
    check_reducemean(x, -1, NULL, 0, 18, 0, "ReduceMean-18 no axes");
    check_reducemean(x, -1, NULL, 1, 18, 1, "ReduceMean-18 noop_with_empty_axes");
    check_reducemean(x, 0, a, 1, 18, 1, "ReduceMean-18 empty axes noop");
    check_reducemean(x, 0, a, 0, 18, 0, "ReduceMean-18 empty axes");
}

Test(reducemean, bad_axes) {
    const sal_shape x = tu_shape(3, 3, 4, 5);
    const int64_t dup[] = {1, -2}, out[] = {3};
    tu_input in[2] = {tu_rt(x), tu_ci(tu_shape(1, 1), out)};
    sal_graph *g = node("ReduceMean", 1, in, 1, 13);
    sal_node_attr_ints(N0(g), "axes", 2, dup);
    cr_assert(infer_st(g, NULL) == SAL_ERR_SHAPE, "repeated axis");
    sal_graph_free(g);
    g = node("ReduceMean", 1, in, 1, 13);
    sal_node_attr_ints(N0(g), "axes", 1, out);
    cr_assert(infer_st(g, NULL) == SAL_ERR_SHAPE, "axis out of range");
    sal_graph_free(g);
    g = node("ReduceMean", 2, in, 1, 18);
    cr_assert(infer_st(g, NULL) == SAL_ERR_SHAPE, "axis input out of range");
    sal_graph_free(g);
    tu_input rin[2] = {tu_rt(x), tu_rt(tu_shape(1, 1))};
    g = node("ReduceMean", 2, rin, 1, 18);
    cr_assert(infer_st(g, NULL) == SAL_ERR_UNSUPPORTED, "runtime axes");
    sal_graph_free(g);
}

/* ------------------------------------------------------------------------------------------------ */
/* Softmax                                                                                          */

/* Softmax over groups: element i belongs to the group (outer, inner) and runs over len. */
static void softmax_ref(const float *x, int64_t outer, int64_t len, int64_t inner, double *ref) {
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < inner; i++) {
            double mx = -INFINITY, s = 0;
            for (int64_t k = 0; k < len; k++) mx = fmax(mx, x[(o * len + k) * inner + i]);
            for (int64_t k = 0; k < len; k++) s += exp(x[(o * len + k) * inner + i] - mx);
            for (int64_t k = 0; k < len; k++)
                ref[(o * len + k) * inner + i] = exp(x[(o * len + k) * inner + i] - mx) / s;
        }
}

static void check_softmax(sal_shape xs, int has_axis, int axis, int opset, float shift) {
    char what[96], b[64];
    snprintf(what, sizeof what, "Softmax-%d %s axis %s%d", opset, sstr(xs, b), has_axis ? "" : "default ",
             axis);
    uint64_t seed = tu_fresh_seed();
    tu_input in[1] = {tu_rt(xs)};
    sal_graph *g = node("Softmax", 1, in, 1, opset);
    if (has_axis) sal_node_attr_int(N0(g), "axis", axis);
    int a = axis < 0 ? axis + xs.ndim : axis;
    int64_t outer = 1, len = 1, inner = 1;
    for (int d = 0; d < xs.ndim; d++) {
        if (d < a) outer *= xs.d[d];
        else if (d == a || opset < 13) len *= xs.d[d];
        else inner *= xs.d[d];
    }
    run r;
    run_fwd(g, seed, -3.f + shift, 3.f + shift, &r);
    CHECK_SHAPE(r.ys, xs, what);
    double *ref = malloc(sizeof(double) * (size_t)numel(xs));
    softmax_ref(r.x[0], outer, len, inner, ref);
    CHECK_FWD(r, ref, 1e-5, seed, what);
    free(ref);
    run_free(&r);
    if (shift == 0.f) CHECK_GRAD(g, seed, -3.f, 3.f, 1e-2f, 1e-2, what);
    sal_graph_free(g);
}

Test(softmax, opset13_axes) {
    const sal_shape x = tu_shape(3, 3, 4, 5);
    for (int a = -3; a <= 2; a++) check_softmax(x, 1, a, 13, 0.f);
    check_softmax(x, 0, -1, 13, 0.f);
    check_softmax(tu_shape(3, 2, 3, 70), 1, 1, 13, 0.f);     /* inner 70: two column blocks */
    check_softmax(tu_shape(2, 8, 1000), 1, -1, 13, 0.f);
    check_softmax(tu_shape(3, 3, 4, 5), 1, 1, 13, 1000.f);   /* large numbers */
}

Test(softmax, opset11_coerced_2d) {
    const sal_shape x = tu_shape(3, 3, 4, 5);
    for (int a = -3; a <= 2; a++) check_softmax(x, 1, a, 11, 0.f);
    check_softmax(x, 0, 1, 11, 0.f);
    check_softmax(x, 1, 0, 1 + 10, 1000.f);
    check_softmax(tu_shape(2, 6, 10), 0, 1, 6, 0.f);
}

Test(softmax, bad_axis) {
    tu_input in[1] = {tu_rt(tu_shape(2, 3, 4))};
    sal_graph *g = node("Softmax", 1, in, 1, 13);
    sal_node_attr_int(N0(g), "axis", 2);
    cr_assert(infer_st(g, NULL) == SAL_ERR_SHAPE);
    sal_graph_free(g);
    g = node("Softmax", 1, in, 1, 11);
    sal_node_attr_int(N0(g), "axis", -3);
    cr_assert(infer_st(g, NULL) == SAL_ERR_SHAPE);
    sal_graph_free(g);
}

/* ------------------------------------------------------------------------------------------------ */
/* Concat                                                                                           */

static void check_concat(int n_in, const sal_shape *xs, int axis, int const_first) {
    char what[96];
    snprintf(what, sizeof what, "Concat of %d on axis %d%s", n_in, axis, const_first ? " (const)" : "");
    uint64_t seed = tu_fresh_seed(), s = seed ^ 0x5bd1e995u;
    float *k0 = malloc(sizeof(float) * (size_t)(numel(xs[0]) + 1));
    tu_fill(k0, numel(xs[0]), &s, -1.f, 1.f);
    tu_input in[8];
    for (int i = 0; i < n_in; i++) in[i] = i == 0 && const_first ? tu_cf(xs[0], k0) : tu_rt(xs[i]);
    sal_graph *g = node("Concat", n_in, in, 1, 13);
    sal_node_attr_int(N0(g), "axis", axis);
    int r = xs[0].ndim, a = axis < 0 ? axis + r : axis;
    sal_shape ys = xs[0];
    for (int i = 1; i < n_in; i++) ys.d[a] += xs[i].d[a];
    run rr;
    run_fwd(g, seed, -1.f, 1.f, &rr);
    CHECK_SHAPE(rr.ys, ys, what);
    const float *src[8];
    for (int i = 0, k = 0; i < n_in; i++) src[i] = i == 0 && const_first ? k0 : rr.x[k++];
    double *ref = malloc(sizeof(double) * (size_t)numel(ys));
    int64_t idx[SAL_MAX_DIMS];
    for (int64_t j = 0; j < numel(ys); j++) {
        unravel(j, &ys, idx);
        int i = 0;
        while (idx[a] >= xs[i].d[a]) idx[a] -= xs[i++].d[a];
        ref[j] = src[i][ravel(idx, &xs[i])];
    }
    CHECK_FWD(rr, ref, 0, seed, what);
    free(ref);
    run_free(&rr);
    CHECK_GRAD(g, seed, -1.f, 1.f, 1e-2f, 1e-2, what);
    sal_graph_free(g);
    free(k0);
}

Test(concat, axes) {
    const sal_shape a1[] = {tu_shape(3, 2, 1, 3), tu_shape(3, 2, 4, 3), tu_shape(3, 2, 2, 3)};
    check_concat(3, a1, 1, 0);
    check_concat(3, a1, -2, 1);
    const sal_shape al[] = {tu_shape(3, 2, 3, 1), tu_shape(3, 2, 3, 4), tu_shape(3, 2, 3, 2)};
    check_concat(3, al, -1, 0);
    check_concat(3, al, 2, 1);
    const sal_shape wide[] = {tu_shape(3, 2, 2, 20), tu_shape(3, 2, 1, 20), tu_shape(3, 2, 3, 20)};
    check_concat(3, wide, 1, 0);
    check_concat(3, wide, 1, 1);
    const sal_shape a0[] = {tu_shape(2, 1, 5), tu_shape(2, 3, 5)};
    check_concat(2, a0, 0, 0);
    check_concat(2, a0, -2, 0);
    const sal_shape one[] = {tu_shape(2, 3, 5)};
    check_concat(1, one, 1, 0);
    const sal_shape big[] = {tu_shape(4, 2, 8, 30, 30), tu_shape(4, 2, 24, 30, 30)};
    check_concat(2, big, 1, 0);
    const sal_shape zero[] = {tu_shape(2, 2, 0), tu_shape(2, 2, 3)};
    check_concat(2, zero, 1, 0);
}

Test(concat, bad_shapes) {
    tu_input in[2] = {tu_rt(tu_shape(3, 2, 3, 4)), tu_rt(tu_shape(3, 2, 5, 5))};
    sal_graph *g = node("Concat", 2, in, 1, 13);
    sal_node_attr_int(N0(g), "axis", 1);
    cr_assert(infer_st(g, NULL) == SAL_ERR_SHAPE, "off-axis mismatch");
    sal_graph_free(g);
    tu_input in2[2] = {tu_rt(tu_shape(3, 2, 3, 4)), tu_rt(tu_shape(2, 2, 3))};
    g = node("Concat", 2, in2, 1, 13);
    sal_node_attr_int(N0(g), "axis", 0);
    cr_assert(infer_st(g, NULL) == SAL_ERR_SHAPE, "rank mismatch");
    sal_graph_free(g);
    g = node("Concat", 2, in, 1, 13);
    cr_assert(infer_st(g, NULL) == SAL_ERR_SHAPE, "missing axis");
    sal_graph_free(g);
    g = node("Concat", 2, in, 1, 13);
    sal_node_attr_int(N0(g), "axis", 3);
    cr_assert(infer_st(g, NULL) == SAL_ERR_SHAPE, "axis out of range");
    sal_graph_free(g);
}

/* ------------------------------------------------------------------------------------------------ */
/* Transpose                                                                                        */

static void check_transpose(sal_shape xs, const int64_t *perm) {
    char what[96], b[64];
    int r = xs.ndim;
    int64_t pm[SAL_MAX_DIMS];
    for (int d = 0; d < r; d++) pm[d] = perm ? perm[d] : r - 1 - d;
    snprintf(what, sizeof what, "Transpose %s perm %s", sstr(xs, b), perm ? "given" : "default");
    uint64_t seed = tu_fresh_seed();
    tu_input in[1] = {tu_rt(xs)};
    sal_graph *g = node("Transpose", 1, in, 1, 13);
    if (perm) sal_node_attr_ints(N0(g), "perm", r, perm);
    sal_shape ys = xs;
    for (int d = 0; d < r; d++) ys.d[d] = xs.d[pm[d]];
    run rr;
    run_fwd(g, seed, -1.f, 1.f, &rr);
    CHECK_SHAPE(rr.ys, ys, what);
    double *ref = malloc(sizeof(double) * (size_t)numel(ys));
    int64_t yi[SAL_MAX_DIMS], xi[SAL_MAX_DIMS];
    for (int64_t j = 0; j < numel(ys); j++) {
        unravel(j, &ys, yi);
        for (int d = 0; d < r; d++) xi[pm[d]] = yi[d];
        ref[j] = rr.x[0][ravel(xi, &xs)];
    }
    CHECK_FWD(rr, ref, 0, seed, what);
    free(ref);
    run_free(&rr);
    CHECK_GRAD(g, seed, -1.f, 1.f, 1e-2f, 1e-2, what);
    sal_graph_free(g);
}

Test(transpose, perms) {
    const int64_t p3[6][3] = {{0, 1, 2}, {0, 2, 1}, {1, 0, 2}, {1, 2, 0}, {2, 0, 1}, {2, 1, 0}};
    for (int k = 0; k < 6; k++) check_transpose(tu_shape(3, 2, 3, 4), p3[k]);
    check_transpose(tu_shape(3, 2, 3, 4), NULL);
    const int64_t nhwc[] = {0, 2, 3, 1}, nchw[] = {0, 3, 1, 2}, mid[] = {1, 0, 2, 3};
    check_transpose(tu_shape(4, 2, 3, 4, 5), nhwc);
    check_transpose(tu_shape(4, 2, 5, 3, 4), nchw);
    check_transpose(tu_shape(4, 1, 3, 1, 5), nhwc);
    check_transpose(tu_shape(4, 2, 32, 24, 24), mid);
    check_transpose(tu_shape(4, 2, 32, 24, 24), nhwc);
    check_transpose(tu_shape(1, 7), NULL);
}

Test(transpose, bad_perm) {
    const int64_t dup[] = {0, 0, 1}, shortp[] = {1, 0}, range[] = {0, 1, 3}, neg[] = {-1, 0, 1};
    const int64_t *bad[] = {dup, shortp, range, neg};
    const int len[] = {3, 2, 3, 3};
    for (int k = 0; k < 4; k++) {
        tu_input in[1] = {tu_rt(tu_shape(3, 2, 3, 4))};
        sal_graph *g = node("Transpose", 1, in, 1, 13);
        sal_node_attr_ints(N0(g), "perm", len[k], bad[k]);
        sal_error err = {0};
        sal_status st = infer(g, NULL, NULL, &err);
        cr_assert(st == SAL_ERR_SHAPE, "bad perm %d: %s", k, sal_status_str(st));
        cr_assert(strstr(err.msg, "perm"), "message: %s", err.msg);
        sal_graph_free(g);
    }
}

/* ------------------------------------------------------------------------------------------------ */
/* Pad                                                                                              */

/* numpy semantics after cropping: index j of the kept range [0, L). */
static int64_t pad_ref_src(int mode, int64_t j, int64_t L) {
    if (j >= 0 && j < L) return j;
    if (mode == 0) return -1;
    if (mode == 1) return j < 0 ? 0 : L - 1;
    if (L == 1) return 0;
    while (j < 0 || j >= L) {
        if (j < 0) j = -j;
        if (j >= L) j = 2 * (L - 1) - j;
    }
    return j;
}


/* pads: 2*r values (before..., after...) over all dims. form: 0 = attributes (opset 6),
 * 1 = inputs (opset 13), 2 = inputs with an axes input (opset 18, axes = the non-zero dims). */
static void check_pad(sal_shape xs, const int64_t *pads, int mode, float value, int form) {
    char what[128], b[64];
    int r = xs.ndim;
    snprintf(what, sizeof what, "Pad %s %s form %d pads %lld,%lld,...", tu_pad_modes[mode],
             sstr(xs, b), form, (long long)pads[0], (long long)pads[1]);
    uint64_t seed = tu_fresh_seed();
    sal_graph *g = tu_pad_graph(xs, pads, mode, value, form);
    cr_assert(g, "%s: no graph", what);
    sal_shape ys = xs;
    for (int d = 0; d < r; d++) ys.d[d] += pads[d] + pads[d + r];
    run rr;
    run_fwd(g, seed, -1.f, 1.f, &rr);
    CHECK_SHAPE(rr.ys, ys, what);
    double *ref = malloc(sizeof(double) * (size_t)(numel(ys) + 1));
    int64_t yi[SAL_MAX_DIMS], xi[SAL_MAX_DIMS];
    for (int64_t j = 0; j < numel(ys); j++) {
        unravel(j, &ys, yi);
        int inside = 1;
        for (int d = 0; d < r; d++) {
            int64_t crop = pads[d] < 0 ? -pads[d] : 0, lo = pads[d] > 0 ? pads[d] : 0;
            int64_t L = xs.d[d] - crop - (pads[d + r] < 0 ? -pads[d + r] : 0);
            int64_t s = pad_ref_src(mode, yi[d] - lo, L);
            if (s < 0) inside = 0;
            xi[d] = crop + s;
        }
        ref[j] = inside ? rr.x[0][ravel(xi, &xs)] : value;
    }
    CHECK_FWD(rr, ref, 0, seed, what);
    free(ref);
    run_free(&rr);
    CHECK_GRAD(g, seed, -1.f, 1.f, 1e-2f, 1e-2, what);
    sal_graph_free(g);
}

Test(pad, constant) {
    const sal_shape x = tu_shape(4, 2, 3, 4, 5);
    const int64_t p1[] = {0, 0, 1, 2, 0, 0, 2, 1};
    const int64_t crop[] = {0, 0, -1, 1, 0, 1, 1, -2};
    const int64_t all[] = {1, 0, 2, 0, 0, 2, 0, 3};
    for (int form = 0; form < 3; form++) {
        check_pad(x, p1, 0, 0.5f, form);
        check_pad(x, crop, 0, -1.f, form);
        check_pad(x, all, 0, 0.f, form);
    }
    const int64_t big[] = {0, 0, 1, 1, 0, 0, 1, 1};
    check_pad(tu_shape(4, 2, 16, 40, 40), big, 0, 0.f, 1);
    const int64_t p2[] = {2, -1, 0, 3};
    check_pad(tu_shape(2, 3, 4), p2, 0, 2.f, 1);
}

Test(pad, edge_reflect) {
    const sal_shape x = tu_shape(4, 2, 3, 4, 5);
    const int64_t p1[] = {0, 0, 2, 3, 0, 0, 3, 2};
    const int64_t crop[] = {0, 0, -1, 2, 0, 0, 1, -1};
    const int64_t lead[] = {0, 1, 1, 0, 1, 0, 0, 2};
    const int64_t far[] = {0, 0, 7, 9, 0, 0, 5, 11};   /* beyond one reflection */
    for (int mode = 1; mode <= 2; mode++) {
        check_pad(x, p1, mode, 0.f, 1);
        check_pad(x, crop, mode, 0.f, 1);
        check_pad(x, lead, mode, 0.f, 1);
        check_pad(x, far, mode, 0.f, 1);
        check_pad(x, p1, mode, 0.f, 0);
        check_pad(x, p1, mode, 0.f, 2);
    }
    const int64_t one[] = {0, 2, 0, 3};
    check_pad(tu_shape(2, 3, 1), one, 2, 0.f, 1);   /* reflect of a length-1 dim */
}

Test(pad, bad) {
    const sal_shape x = tu_shape(2, 3, 4);
    const int64_t ok[] = {0, 1, 0, 1}, over[] = {0, -3, 0, -2}, odd[] = {1, 1, 1};
    tu_input in[2] = {tu_rt(x), tu_ci(tu_shape(1, 4), ok)};
    sal_graph *g = node("Pad", 2, in, 1, 13);
    sal_node_attr_str(N0(g), "mode", "wrap");
    sal_error err = {0};
    cr_assert(infer(g, NULL, NULL, &err) == SAL_ERR_UNSUPPORTED);
    cr_assert(strstr(err.msg, "wrap"), "message: %s", err.msg);
    sal_graph_free(g);
    tu_input inover[2] = {tu_rt(x), tu_ci(tu_shape(1, 4), over)};
    g = node("Pad", 2, inover, 1, 13);
    cr_assert(infer_st(g, NULL) == SAL_ERR_SHAPE, "crop beyond the dim");
    sal_graph_free(g);
    tu_input inodd[2] = {tu_rt(x), tu_ci(tu_shape(1, 3), odd)};
    g = node("Pad", 2, inodd, 1, 13);
    cr_assert(infer_st(g, NULL) == SAL_ERR_SHAPE, "odd number of pads");
    sal_graph_free(g);
    tu_input inrt[2] = {tu_rt(x), tu_rt(tu_shape(1, 4))};
    g = node("Pad", 2, inrt, 1, 13);
    cr_assert(infer_st(g, NULL) == SAL_ERR_UNSUPPORTED, "runtime pads");
    sal_graph_free(g);
    g = node("Pad", 1, in, 1, 6);
    cr_assert(infer_st(g, NULL) == SAL_ERR_SHAPE, "no pads attribute");
    sal_graph_free(g);
    const float v = 1.f;
    tu_input inv[3] = {tu_rt(x), tu_ci(tu_shape(1, 4), ok), tu_rt(tu_shape(0))};
    (void)v;
    g = node("Pad", 3, inv, 1, 13);
    cr_assert(infer_st(g, NULL) == SAL_ERR_UNSUPPORTED, "runtime constant_value");
    sal_graph_free(g);
}

/* ------------------------------------------------------------------------------------------------ */
/* Alias ops: shape inference                                                                       */

static sal_status alias_shape(const char *op, int opset, int n_in, const tu_input *in, int n_out,
                              const char *attr, int nattr, const int64_t *attrv, sal_shape *ys) {
    sal_graph *g = node(op, n_in, in, n_out, opset);
    if (attr && nattr == 1 && !attrv) sal_node_attr_int(N0(g), attr, 0);
    if (attr && attrv) {
        if (nattr < 0) sal_node_attr_int(N0(g), attr, attrv[0]);
        else sal_node_attr_ints(N0(g), attr, nattr, attrv);
    }
    sal_status st = infer_st(g, ys);
    sal_graph_free(g);
    return st;
}

Test(alias, flatten) {
    const sal_shape x = tu_shape(4, 2, 3, 4, 5);
    tu_input in[1] = {tu_rt(x)};
    sal_shape ys;
    const struct { int64_t axis; sal_shape y; } cases[] = {
        {0, {2, {1, 120}}},  {1, {2, {2, 60}}},  {2, {2, {6, 20}}},   {3, {2, {24, 5}}},
        {4, {2, {120, 1}}},  {-1, {2, {24, 5}}}, {-2, {2, {6, 20}}}, {-3, {2, {2, 60}}},
        {-4, {2, {1, 120}}},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        cr_assert(alias_shape("Flatten", 13, 1, in, 1, "axis", -1, &cases[k].axis, &ys) == SAL_OK);
        CHECK_SHAPE(ys, cases[k].y, "Flatten");
    }
    cr_assert(alias_shape("Flatten", 13, 1, in, 1, NULL, 0, NULL, &ys) == SAL_OK);
    CHECK_SHAPE(ys, tu_shape(2, 2, 60), "Flatten default axis");
    const int64_t bad[] = {5, -5};
    for (int k = 0; k < 2; k++)
        cr_assert(alias_shape("Flatten", 13, 1, in, 1, "axis", -1, &bad[k], &ys) == SAL_ERR_SHAPE);
}

static sal_status reshape_to(sal_shape xs, int n, const int64_t *shape, int allowzero, sal_shape *ys) {
    tu_input in[2] = {tu_rt(xs), tu_ci(tu_shape(1, n), shape)};
    const int64_t az = allowzero;
    return alias_shape("Reshape", 14, 2, in, 1, allowzero >= 0 ? "allowzero" : NULL, -1, &az, ys);
}

Test(alias, reshape) {
    const sal_shape x = tu_shape(3, 2, 3, 4);
    sal_shape ys;
    const int64_t s1[] = {0, -1}, s2[] = {-1}, s3[] = {2, 0, 2, 2}, s4[] = {4, 3, 2},
                  s5[] = {-1, 2, 0}, s6[] = {1, 1, 24, 1, 1};
    cr_assert(reshape_to(x, 2, s1, -1, &ys) == SAL_OK);
    CHECK_SHAPE(ys, tu_shape(2, 2, 12), "Reshape 0,-1");
    cr_assert(reshape_to(x, 1, s2, -1, &ys) == SAL_OK);
    CHECK_SHAPE(ys, tu_shape(1, 24), "Reshape -1");
    cr_assert(reshape_to(x, 4, s3, 0, &ys) == SAL_OK);
    CHECK_SHAPE(ys, tu_shape(4, 2, 3, 2, 2), "Reshape 2,0,2,2");
    cr_assert(reshape_to(x, 3, s4, -1, &ys) == SAL_OK);
    CHECK_SHAPE(ys, tu_shape(3, 4, 3, 2), "Reshape 4,3,2");
    cr_assert(reshape_to(x, 3, s5, -1, &ys) == SAL_OK);
    CHECK_SHAPE(ys, tu_shape(3, 3, 2, 4), "Reshape -1,2,0");
    cr_assert(reshape_to(x, 5, s6, -1, &ys) == SAL_OK);
    CHECK_SHAPE(ys, tu_shape(5, 1, 1, 24, 1, 1), "Reshape extended");
    const int64_t one[] = {1};
    cr_assert(reshape_to(tu_shape(0), 1, one, -1, &ys) == SAL_OK);
    CHECK_SHAPE(ys, tu_shape(1, 1), "Reshape scalar");
    const int64_t none[1] = {0};
    cr_assert(reshape_to(tu_shape(3, 1, 1, 1), 0, none, -1, &ys) == SAL_OK);
    CHECK_SHAPE(ys, tu_shape(0), "Reshape to a scalar");
    /* allowzero = 1: a 0 is a real zero-length dim */
    const int64_t z[] = {3, 4, 0};
    cr_assert(reshape_to(tu_shape(3, 0, 3, 4), 3, z, 1, &ys) == SAL_OK);
    CHECK_SHAPE(ys, tu_shape(3, 3, 4, 0), "Reshape allowzero");
    /* errors */
    const int64_t two[] = {-1, -1}, bad[] = {5, -1}, mism[] = {5, 5}, far[] = {2, 3, 4, 0},
                  neg[] = {-2, 12}, zneg[] = {0, -1};
    cr_assert(reshape_to(x, 2, two, -1, &ys) == SAL_ERR_SHAPE, "two -1");
    cr_assert(reshape_to(x, 2, bad, -1, &ys) == SAL_ERR_SHAPE, "-1 not integral");
    cr_assert(reshape_to(x, 2, mism, -1, &ys) == SAL_ERR_SHAPE, "element count");
    cr_assert(reshape_to(x, 4, far, -1, &ys) == SAL_ERR_SHAPE, "0 past the input rank");
    cr_assert(reshape_to(x, 2, neg, -1, &ys) == SAL_ERR_SHAPE, "-2");
    cr_assert(reshape_to(tu_shape(2, 0, 3), 2, zneg, 1, &ys) == SAL_ERR_SHAPE, "allowzero 0 and -1");
    tu_input rin[2] = {tu_rt(x), tu_rt(tu_shape(1, 2))};
    cr_assert(alias_shape("Reshape", 13, 2, rin, 1, NULL, 0, NULL, &ys) == SAL_ERR_UNSUPPORTED,
              "runtime shape");
}

Test(alias, squeeze_unsqueeze) {
    const sal_shape x = tu_shape(4, 1, 3, 1, 5);
    sal_shape ys;
    tu_input in1[1] = {tu_rt(x)};
    cr_assert(alias_shape("Squeeze", 13, 1, in1, 1, NULL, 0, NULL, &ys) == SAL_OK);
    CHECK_SHAPE(ys, tu_shape(2, 3, 5), "Squeeze all");
    const int64_t a0[] = {0}, am2[] = {-2}, a02[] = {0, 2}, a1[] = {1};
    tu_input in2[2] = {tu_rt(x), tu_ci(tu_shape(1, 1), a0)};
    cr_assert(alias_shape("Squeeze", 13, 2, in2, 1, NULL, 0, NULL, &ys) == SAL_OK);
    CHECK_SHAPE(ys, tu_shape(3, 3, 1, 5), "Squeeze input 0");
    tu_input in3[2] = {tu_rt(x), tu_ci(tu_shape(1, 1), am2)};
    cr_assert(alias_shape("Squeeze", 13, 2, in3, 1, NULL, 0, NULL, &ys) == SAL_OK);
    CHECK_SHAPE(ys, tu_shape(3, 1, 3, 5), "Squeeze input -2");
    cr_assert(alias_shape("Squeeze", 11, 1, in1, 1, "axes", 2, a02, &ys) == SAL_OK);
    CHECK_SHAPE(ys, tu_shape(2, 3, 5), "Squeeze-11 attribute");
    cr_assert(alias_shape("Squeeze", 11, 1, in1, 1, "axes", 1, a1, &ys) == SAL_ERR_SHAPE,
              "squeeze a dim of 3");
    tu_input in4[2] = {tu_rt(x), tu_ci(tu_shape(1, 1), a1)};
    cr_assert(alias_shape("Squeeze", 13, 2, in4, 1, NULL, 0, NULL, &ys) == SAL_ERR_SHAPE);
    const int64_t a4[] = {4};
    cr_assert(alias_shape("Squeeze", 11, 1, in1, 1, "axes", 1, a4, &ys) == SAL_ERR_SHAPE);

    const sal_shape u = tu_shape(2, 3, 4);
    tu_input uin[1] = {tu_rt(u)};
    const struct { int n; int64_t axes[4]; sal_shape y; } ok[] = {
        {1, {0}, {3, {1, 3, 4}}},        {1, {-1}, {3, {3, 4, 1}}},
        {2, {0, 3}, {4, {1, 3, 4, 1}}},  {2, {3, 0}, {4, {1, 3, 4, 1}}},
        {3, {1, 2, 4}, {5, {3, 1, 1, 4, 1}}}, {1, {1}, {3, {3, 1, 4}}},
        {2, {-1, -2}, {4, {3, 4, 1, 1}}},
    };
    for (size_t k = 0; k < sizeof ok / sizeof ok[0]; k++) {
        tu_input in[2] = {tu_rt(u), tu_ci(tu_shape(1, ok[k].n), ok[k].axes)};
        cr_assert(alias_shape("Unsqueeze", 13, 2, in, 1, NULL, 0, NULL, &ys) == SAL_OK);
        CHECK_SHAPE(ys, ok[k].y, "Unsqueeze");
        cr_assert(alias_shape("Unsqueeze", 11, 1, uin, 1, "axes", ok[k].n, ok[k].axes, &ys) == SAL_OK);
        CHECK_SHAPE(ys, ok[k].y, "Unsqueeze-11");
    }
    const int64_t dup[] = {0, 0}, range[] = {3}, nrange[] = {-4};
    cr_assert(alias_shape("Unsqueeze", 11, 1, uin, 1, "axes", 2, dup, &ys) == SAL_ERR_SHAPE);
    cr_assert(alias_shape("Unsqueeze", 11, 1, uin, 1, "axes", 1, range, &ys) == SAL_ERR_SHAPE);
    cr_assert(alias_shape("Unsqueeze", 11, 1, uin, 1, "axes", 1, nrange, &ys) == SAL_ERR_SHAPE);
    cr_assert(alias_shape("Unsqueeze", 13, 1, uin, 1, NULL, 0, NULL, &ys) == SAL_ERR_SHAPE,
              "missing axes");
    tu_input rin[2] = {tu_rt(u), tu_rt(tu_shape(1, 1))};
    cr_assert(alias_shape("Unsqueeze", 13, 2, rin, 1, NULL, 0, NULL, &ys) == SAL_ERR_UNSUPPORTED);
}

Test(alias, dropout_identity) {
    const sal_shape x = tu_shape(3, 2, 3, 4);
    sal_shape ys;
    tu_input in[1] = {tu_rt(x)};
    cr_assert(alias_shape("Dropout", 13, 1, in, 1, NULL, 0, NULL, &ys) == SAL_OK);
    CHECK_SHAPE(ys, x, "Dropout");
    cr_assert(alias_shape("Dropout", 7, 1, in, 1, NULL, 0, NULL, &ys) == SAL_OK);
    cr_assert(alias_shape("Dropout", 13, 1, in, 2, NULL, 0, NULL, &ys) == SAL_ERR_UNSUPPORTED,
              "mask output");
    const float ratio = 0.3f;
    const int64_t yes = 1, no = 0;
    tu_input tm[3] = {tu_rt(x), tu_cf(tu_shape(0), &ratio), tu_ci(tu_shape(0), &yes)};
    cr_assert(alias_shape("Dropout", 13, 3, tm, 1, NULL, 0, NULL, &ys) == SAL_ERR_UNSUPPORTED,
              "training_mode");
    tu_input tn[3] = {tu_rt(x), tu_cf(tu_shape(0), &ratio), tu_ci(tu_shape(0), &no)};
    cr_assert(alias_shape("Dropout", 13, 3, tn, 1, NULL, 0, NULL, &ys) == SAL_OK);
    cr_assert(alias_shape("Identity", 13, 1, in, 1, NULL, 0, NULL, &ys) == SAL_OK);
    CHECK_SHAPE(ys, x, "Identity");
}

Test(alias, gradient_passes_through) {
    uint64_t seed = tu_fresh_seed();
    const int64_t shape[] = {6, -1};
    tu_input in[2] = {tu_rt(tu_shape(3, 2, 3, 4)), tu_ci(tu_shape(1, 2), shape)};
    sal_graph *g = node("Reshape", 2, in, 1, 13);
    CHECK_GRAD(g, seed, -1.f, 1.f, 1e-2f, 1e-3, "Reshape");
    sal_graph_free(g);
}

/* ------------------------------------------------------------------------------------------------ */
/* Thread counts: every kernel path gives the same results on 1, 3 and 16 threads                  */

static sal_graph *graph_of(const char *op, int n_in, const tu_input *in, int opset) {
    return node(op, n_in, in, 1, opset);
}

Test(threads, results_do_not_depend_on_thread_count) {
    uint64_t seed = tu_fresh_seed(), s = seed;
    const int64_t hw[] = {2, 3}, gen[] = {0, 2}, pads[] = {0, 0, 2, 1, 0, 0, 1, 3},
                  perm[] = {0, 2, 3, 1};
    const sal_shape big = tu_shape(4, 4, 3, 64, 64), wide = tu_shape(4, 4, 16, 24, 24);
    sal_graph *gs[16];
    int ng = 0;
    tu_input b1[2] = {tu_rt(big), tu_rt(tu_shape(4, 1, 3, 1, 1))};           /* 3 channels: mid < threads */
    gs[ng++] = graph_of("Add", 2, b1, 13);
    gs[ng++] = graph_of("Div", 2, b1, 13);
    tu_input b2[2] = {tu_rt(tu_shape(4, 4, 3, 1, 1)), tu_rt(big)};           /* small operand first */
    gs[ng++] = graph_of("Sub", 2, b2, 13);
    tu_input b3[2] = {tu_rt(wide), tu_rt(tu_shape(4, 4, 16, 1, 1))};         /* squeeze-excitation */
    gs[ng++] = graph_of("Mul", 2, b3, 13);
    tu_input b4[2] = {tu_rt(tu_shape(2, 600, 70)), tu_rt(tu_shape(1, 70))};
    gs[ng++] = graph_of("Div", 2, b4, 13);
    tu_input b5[2] = {tu_rt(tu_shape(3, 64, 1, 40)), tu_rt(tu_shape(3, 1, 30, 40))};   /* general */
    gs[ng++] = graph_of("Mul", 2, b5, 13);
    tu_input b6[2] = {tu_rt(wide), tu_rt(tu_shape(0))};
    gs[ng++] = graph_of("Mul", 2, b6, 13);
    tu_input u1[1] = {tu_rt(wide)};
    gs[ng] = graph_of("ReduceMean", 1, u1, 13);
    sal_node_attr_ints(N0(gs[ng++]), "axes", 2, hw);
    gs[ng] = graph_of("ReduceMean", 1, u1, 13);
    sal_node_attr_ints(N0(gs[ng++]), "axes", 2, gen);
    gs[ng] = graph_of("Softmax", 1, u1, 13);
    sal_node_attr_int(N0(gs[ng++]), "axis", 1);
    gs[ng] = graph_of("Transpose", 1, u1, 13);
    sal_node_attr_ints(N0(gs[ng++]), "perm", 4, perm);
    gs[ng] = graph_of("Pad", 1, u1, 6);
    sal_node_attr_ints(N0(gs[ng]), "pads", 8, pads);
    sal_node_attr_str(N0(gs[ng++]), "mode", "reflect");
    gs[ng] = graph_of("Pad", 1, u1, 6);
    sal_node_attr_ints(N0(gs[ng++]), "pads", 8, pads);
    gs[ng++] = graph_of("Sigmoid", 1, u1, 13);
    tu_input c1[2] = {tu_rt(wide), tu_rt(tu_shape(4, 4, 2, 24, 24))};
    gs[ng] = graph_of("Concat", 2, c1, 13);
    sal_node_attr_int(N0(gs[ng++]), "axis", 1);
    const int threads[] = {1, 3, 16};
    for (int k = 0; k < ng; k++) {
        sal_graph *g = gs[k];
        const sal_node *n = &g->nodes[0];
        sal_shape ys;
        cr_assert(infer_st(g, &ys) == SAL_OK);
        float *x[4], *gin[3][4], *y[3];
        int64_t nx[4];
        int nr = 0;
        for (int i = 0; i < n->n_in; i++) {
            int v = n->in[i];
            if (v < 0 || g->values[v].konst) continue;
            nx[nr] = numel(g->values[v].decl);
            x[nr] = malloc(sizeof(float) * (size_t)nx[nr]);
            tu_fill(x[nr], nx[nr], &s, 0.5f, 2.f);
            nr++;
        }
        float *gout = malloc(sizeof(float) * (size_t)numel(ys));
        tu_fill(gout, numel(ys), &s, -1.f, 1.f);
        for (int t = 0; t < 3; t++) {
            y[t] = malloc(sizeof(float) * (size_t)numel(ys));
            for (int i = 0; i < nr; i++) gin[t][i] = calloc((size_t)nx[i], sizeof(float));
            run_direct(g, x, y[t], gout, gin[t], 0, threads[t]);
        }
        for (int t = 1; t < 3; t++) {
            for (int64_t j = 0; j < numel(ys); j++)
                cr_assert(fabsf(y[t][j] - y[0][j]) <= 1e-5f * (1.f + fabsf(y[0][j])),
                          "%s: y[%lld] %g on %d threads, %g on 1 (seed %llu)", n->op_type,
                          (long long)j, y[t][j], threads[t], y[0][j], (ull)seed);
            for (int i = 0; i < nr; i++)
                for (int64_t j = 0; j < nx[i]; j++)
                    cr_assert(fabsf(gin[t][i][j] - gin[0][i][j]) <= 1e-4f * (1.f + fabsf(gin[0][i][j])),
                              "%s: gin%d[%lld] %g on %d threads, %g on 1 (seed %llu)", n->op_type, i,
                              (long long)j, gin[t][i][j], threads[t], gin[0][i][j], (ull)seed);
        }
        for (int t = 0; t < 3; t++) {
            free(y[t]);
            for (int i = 0; i < nr; i++) free(gin[t][i]);
        }
        for (int i = 0; i < nr; i++) free(x[i]);
        free(gout);
        sal_graph_free(g);
    }
}
