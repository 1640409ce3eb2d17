/* test_twins_elem.c — the CUDA backend's element functions of the element-wise family
 * (kernels/twin_elem.h, plans in host/backend/twin/plan_elem.c) run on the host (sal_twin_run)
 * against the CPU backend's kernels, their specification: activations (with and without the
 * Guided Backprop flag), Add/Sub/Mul/Div in every broadcast mode (SAL_BC_*) with runtime and
 * constant operands, BatchNormalization with constant and runtime statistics, Softmax on every
 * axis layout; plus the plan contract (probe, NULL gradients, launch lists).
 *
 * Tolerance: TOL = 1e-5 relative to the largest |CPU value| of each output / gradient
 * (tu_twin_check's measure). The twins compute every element with the CPU kernel's formula in
 * the same precision (the same float or double operations, exp_fast copied), so element-wise
 * results agree bit for bit on the host; what differs is the order of some sums (the CPU's SIMD
 * reductions over several lanes, the twin's one sequential sum per element): Softmax's
 * denominator and the broadcast gradients of Add/Sub/Mul/Div, a few float roundings of a sum,
 * ~1e-7 relative to the array's largest value. 1e-5 leaves two decades of headroom, while a wrong
 * formula, index, kink rule or a missing term (an error the size of one term, >= ~1e-3 of the
 * largest value in these cases) fails by orders of magnitude: every one of ~40 deliberate
 * one-line breaks of twin_elem.h / plan_elem.c fails this file.
 * The exception is a runtime input of ONE element broadcast over the output (SAL_BC_SCALAR_*):
 * its gradient is a single sum, which random signs can cancel to near zero while the reordering
 * error stays put, so relative to itself it is ill-conditioned (~1% of draws above 1e-5 with 120
 * terms); those cases are measured relative to the sum of the terms' magnitudes instead
 * (check_one_sum), with the same TOL.
 *
 * Every check draws a fresh seed (tu_fresh_seed), printed in its failure message. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "twin_all.h"

#define TOL 1e-5

typedef unsigned long long ull;

/* ------------------------------------------------------------------------------------------------ */
/* Helpers                                                                                          */


static int64_t numel(sal_shape s) {
    int64_t n = 1;
    for (int i = 0; i < s.ndim; i++) n *= s.d[i];
    return n;
}

static const char *sstr(sal_shape s, char *buf) { return sal_shape_str(&s, buf, 64); }

static sal_graph *node(const char *op, int n_in, const tu_input *ins, int opset) {
    sal_graph *g = tu_op_graph(op, n_in, ins, 1, opset);
    cr_assert(g, "tu_op_graph(%s) failed", op);
    return g;
}

static sal_node *N0(sal_graph *g) { return &g->nodes[0]; }


/* The twin check of node 0 of g (then freed) on a fresh seed; returns the result. */
static tu_twin_result twin(sal_graph *g, float lo, float hi, int guided, const char *what) {
    const uint64_t seed = tu_fresh_seed();
    tu_twin_result r = tu_twin_check(g, seed, lo, hi, guided);
    cr_assert(r.st == SAL_OK, "%s (guided %d): %s: %s (seed %llu)", what, guided,
              sal_status_str(r.st), r.msg, (ull)seed);
    cr_assert(r.fwd_err < TOL, "%s (guided %d): forward differs by %.3g (seed %llu)", what, guided,
              r.fwd_err, (ull)seed);
    cr_assert(r.bwd_err < TOL, "%s (guided %d): backward differs by %.3g (seed %llu)", what,
              guided, r.bwd_err, (ull)seed);
    sal_graph_free(g);
    return r;
}

/* ------------------------------------------------------------------------------------------------ */
/* Activations                                                                                      */

static const sal_shape *act_shapes(int *n) {
    static sal_shape s[6];
    s[0] = tu_shape(4, 2, 3, 4, 5);
    s[1] = tu_shape(1, 7);
    s[2] = tu_shape(0);                 /* a scalar */
    s[3] = tu_shape(4, 2, 16, 20, 20);
    s[4] = tu_shape(3, 3, 0, 2);        /* empty */
    s[5] = tu_shape(2, 1, 1);
    *n = 6;
    return s;
}

/* op on every shape, guided off and on (only Relu and Clip with lo >= 0 change with it). */
static void check_act(const char *op, int opset, const char *attr, float attr_v, const char *attr2,
                      float attr2_v, float lo, float hi) {
    int ns;
    const sal_shape *shapes = act_shapes(&ns);
    for (int k = 0; k < ns; k++)
        for (int guided = 0; guided < 2; guided++) {
            tu_input in[] = {tu_rt(shapes[k])};
            sal_graph *g = node(op, 1, in, opset);
            if (attr) sal_node_attr_float(N0(g), attr, attr_v);
            if (attr2) sal_node_attr_float(N0(g), attr2, attr2_v);
            char what[128], b[64];
            snprintf(what, sizeof what, "%s %s on [%g, %g]", op, sstr(shapes[k], b), lo, hi);
            twin(g, lo, hi, guided, what);
        }
}

Test(activation, relu) { check_act("Relu", 13, NULL, 0, NULL, 0, -1.f, 1.f); }

Test(activation, leakyrelu) {
    check_act("LeakyRelu", 13, NULL, 0, NULL, 0, -1.f, 1.f);   /* alpha 0.01 */
    check_act("LeakyRelu", 6, "alpha", 0.3f, NULL, 0, -2.f, 2.f);
}

Test(activation, sigmoid) {
    check_act("Sigmoid", 13, NULL, 0, NULL, 0, -6.f, 6.f);
    check_act("Sigmoid", 13, NULL, 0, NULL, 0, -120.f, 120.f);   /* exp_fast's clamps */
}

Test(activation, tanh) {
    check_act("Tanh", 13, NULL, 0, NULL, 0, -3.f, 3.f);
    check_act("Tanh", 13, NULL, 0, NULL, 0, -30.f, 30.f);
}

Test(activation, hardsigmoid) {
    check_act("HardSigmoid", 13, NULL, 0, NULL, 0, -4.f, 4.f);   /* alpha 0.2, beta 0.5 */
    check_act("HardSigmoid", 6, "alpha", 0.5f, "beta", 0.6f, -3.f, 3.f);
}

Test(activation, hardswish) { check_act("HardSwish", 14, NULL, 0, NULL, 0, -5.f, 5.f); }

/* Clip's bounds: constant inputs (opset >= 11) or attributes (opset 6); lo >= 0 makes the guided
 * rule apply (ReLU6), lo < 0 not; lo > hi gives hi everywhere. */
Test(activation, clip) {
    static const float zero = 0.f, six = 6.f, m1 = -1.f, p1 = 1.f, half = 0.5f, big = 0.7f,
                       small = -0.2f;
    const sal_shape sc = tu_shape(0);
    const struct { const float *lo, *hi; float xlo, xhi; const char *what; } cases[] = {
        {&zero, &six, -8.f, 8.f, "Clip [0, 6]"},
        {&m1, &p1, -2.f, 2.f, "Clip [-1, 1]"},
        {&half, NULL, -1.f, 1.f, "Clip [0.5, inf)"},
        {NULL, &p1, -2.f, 2.f, "Clip (-inf, 1]"},
        {NULL, NULL, -2.f, 2.f, "Clip no bounds"},
        {&big, &small, -1.f, 1.f, "Clip min > max"},
    };
    int ns;
    const sal_shape *shapes = act_shapes(&ns);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
        for (int k = 0; k < ns; k++)
            for (int guided = 0; guided < 2; guided++) {
                tu_input in[3] = {tu_rt(shapes[k]), cases[c].lo ? tu_cf(sc, cases[c].lo) : tu_absent(),
                                  cases[c].hi ? tu_cf(sc, cases[c].hi) : tu_absent()};
                int n_in = cases[c].hi ? 3 : cases[c].lo ? 2 : 1;
                sal_graph *g = node("Clip", n_in, in, 13);
                char what[128], b[64];
                snprintf(what, sizeof what, "%s %s", cases[c].what, sstr(shapes[k], b));
                twin(g, cases[c].xlo, cases[c].xhi, guided, what);
            }
    for (int guided = 0; guided < 2; guided++) {   /* opset 6 attributes */
        tu_input in[] = {tu_rt(tu_shape(2, 4, 9))};
        sal_graph *g = node("Clip", 1, in, 6);
        sal_node_attr_float(N0(g), "min", 0.f);
        sal_node_attr_float(N0(g), "max", 0.5f);
        twin(g, -1.f, 1.f, guided, "Clip-6 [0, 0.5]");
        g = node("Clip", 1, in, 6);
        sal_node_attr_float(N0(g), "min", -0.25f);
        twin(g, -1.f, 1.f, guided, "Clip-6 [-0.25, inf)");
    }
}

/* Every input exactly at a kink (lo == hi: tu_fill gives lo itself), where the CPU's strict or
 * non-strict comparisons decide the gradient. */
Test(activation, kinks) {
    static const float zero = 0.f, six = 6.f, m1 = -1.f, p1 = 1.f;
    const sal_shape sc = tu_shape(0), xs = tu_shape(3, 2, 3, 5);
    for (int guided = 0; guided < 2; guided++) {
        const struct { const char *op; int opset; float x; } one[] = {
            {"Relu", 13, 0.f}, {"LeakyRelu", 13, 0.f}, {"HardSwish", 14, -3.f},
            {"HardSwish", 14, 3.f}, {"HardSigmoid", 13, -2.5f}, {"HardSigmoid", 13, 2.5f},
            {"HardSigmoid", 13, 0.f}, {"Sigmoid", 13, 0.f}, {"Tanh", 13, 0.f},
        };
        for (size_t k = 0; k < sizeof one / sizeof one[0]; k++) {
            tu_input in[] = {tu_rt(xs)};
            char what[64];
            snprintf(what, sizeof what, "%s at x = %g", one[k].op, one[k].x);
            twin(node(one[k].op, 1, in, one[k].opset), one[k].x, one[k].x, guided, what);
        }
        const struct { const float *lo, *hi; float x; } clip[] = {
            {&zero, &six, 0.f}, {&zero, &six, 6.f}, {&m1, &p1, -1.f}, {&m1, &p1, 1.f},
        };
        for (size_t k = 0; k < sizeof clip / sizeof clip[0]; k++) {
            tu_input in[3] = {tu_rt(xs), tu_cf(sc, clip[k].lo), tu_cf(sc, clip[k].hi)};
            char what[64];
            snprintf(what, sizeof what, "Clip [%g, %g] at x = %g", *clip[k].lo, *clip[k].hi,
                     clip[k].x);
            twin(node("Clip", 3, in, 13), clip[k].x, clip[k].x, guided, what);
        }
    }
}

/* ------------------------------------------------------------------------------------------------ */
/* Broadcasting binary ops                                                                          */

static const char *const BIN_OPS[4] = {"Add", "Sub", "Mul", "Div"};

/* Every fast-path class and general broadcasts (the mode each gets is asserted below). Scalar
 * broadcasts reduce over <= 120 terms (see the header comment). */
static const struct { sal_shape a, b; int mode; } BIN_CASES[] = {
    {{4, {2, 3, 4, 5}}, {4, {2, 3, 4, 5}}, SAL_BC_SAME},
    {{1, {1}}, {0, {0}}, SAL_BC_SAME},
    {{4, {2, 3, 4, 5}}, {1, {5}}, SAL_BC_CHANNEL_B},
    {{4, {2, 3, 4, 5}}, {3, {3, 1, 1}}, SAL_BC_CHANNEL_B},
    {{4, {2, 3, 4, 5}}, {4, {1, 3, 1, 1}}, SAL_BC_CHANNEL_B},
    {{4, {2, 3, 4, 5}}, {4, {2, 3, 1, 1}}, SAL_BC_CHANNEL_B},
    {{4, {2, 3, 4, 5}}, {2, {4, 5}}, SAL_BC_CHANNEL_B},
    {{2, {60, 70}}, {1, {70}}, SAL_BC_CHANNEL_B},
    {{4, {2, 16, 20, 20}}, {4, {1, 16, 1, 1}}, SAL_BC_CHANNEL_B},
    {{3, {3, 1, 1}}, {4, {2, 3, 4, 5}}, SAL_BC_CHANNEL_A},
    {{2, {3, 1}}, {4, {2, 1, 3, 4}}, SAL_BC_CHANNEL_A},
    {{1, {6}}, {3, {4, 5, 6}}, SAL_BC_CHANNEL_A},
    {{4, {2, 3, 4, 5}}, {0, {0}}, SAL_BC_SCALAR_B},
    {{2, {3, 4}}, {1, {1}}, SAL_BC_SCALAR_B},
    {{0, {0}}, {2, {2, 3}}, SAL_BC_SCALAR_A},
    {{3, {1, 1, 1}}, {3, {2, 5, 7}}, SAL_BC_SCALAR_A},
    {{4, {2, 1, 4, 1}}, {3, {3, 1, 5}}, SAL_BC_GENERAL},
    {{3, {2, 1, 4}}, {3, {1, 3, 1}}, SAL_BC_GENERAL},
    {{4, {2, 3, 4, 5}}, {3, {3, 1, 5}}, SAL_BC_GENERAL},
    {{4, {1, 3, 1, 5}}, {4, {2, 1, 4, 1}}, SAL_BC_GENERAL},
    {{3, {5, 1, 6}}, {3, {5, 4, 6}}, SAL_BC_GENERAL},
    {{3, {24, 20, 20}}, {3, {24, 1, 20}}, SAL_BC_GENERAL},
    {{3, {2, 0, 3}}, {1, {3}}, SAL_BC_CHANNEL_B},   /* empty output */
};
#define N_BIN_CASES ((int)(sizeof BIN_CASES / sizeof BIN_CASES[0]))

/* One-element broadcast inputs (SAL_BC_SCALAR_*): their gradient is ONE sum over the whole
 * output, which random signs may cancel to near zero while the two summation orders (the CPU's
 * SIMD lanes, the twin's sequential chunks: the same float-per-chunk, double-across precision)
 * still differ by float roundings of the terms; relative to the sum itself (tu_twin_check's
 * measure, one element) that is unbounded (~1% of draws above 1e-5 measured with 120 terms). The
 * well-conditioned measure of a sum's error is relative to the sum of its terms' magnitudes:
 * |twin - cpu| / max(|cpu|, |start| + sum_i |term_i|) < TOL, still ~1e-2 for one wrong term of
 * 120 and ~2e-5 for one of 51200. This harness runs the call itself (the same data on both
 * sides), checks the output and any output-sized gradient element-wise as tu_twin_check does,
 * and the one-element gradient by that measure. */
static double max_rel(const float *x, const float *ref, int64_t n) { return tu_rel_diff(x, ref, n, 1e-6); }

/* d(a op b)/da (which 0) or /db (which 1) times g, in double */
static double bin_d_ref(int op, int which, double a, double b, double g) {
    switch (op) {
    case 0: return g;
    case 1: return which ? -g : g;
    case 2: return which ? g * a : g * b;
    default: return which ? -g * a / (b * b) : g / b;
    }
}

/* infer's broadcast parameters (caller frees) and output shape */
static sal_bcast_params *infer_bcast(sal_graph *g, sal_shape a, sal_shape b, sal_shape *ys) {
    const sal_op_def *def = sal_op_lookup(N0(g)->op_type);
    const sal_shape *insp[2] = {&a, &b};
    int idt[2] = {SAL_F32, SAL_F32}, odt[1] = {SAL_F32};
    const sal_tensor *kc[2] = {NULL, NULL};
    sal_error err = {0};
    sal_op_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    ctx.g = g;
    ctx.node = N0(g);
    ctx.n_in = 2;
    ctx.in_shape = insp;
    ctx.in_dtype = idt;
    ctx.in_const = kc;
    ctx.n_out = 1;
    ctx.out_shape = ys;
    ctx.out_dtype = odt;
    ctx.err = &err;
    cr_assert(def->infer(&ctx) == SAL_OK, "%s", err.msg);
    return ctx.params;
}

/* a op b, gradients wanted for a (ga_on) and/or b (gb_on): random data in [lo, hi]. */
static void check_one_sum(int op, sal_shape as, sal_shape bs, int ga_on, int gb_on, float lo,
                          float hi, const char *what) {
    const uint64_t seed = tu_fresh_seed();
    uint64_t s = seed;
    tu_input in[2] = {tu_rt(as), tu_rt(bs)};
    sal_graph *g = node(BIN_OPS[op], 2, in, 13);
    sal_shape ys;
    sal_bcast_params *p = infer_bcast(g, as, bs, &ys);
    const int64_t n = numel(ys), nx[2] = {numel(as), numel(bs)};
    float *x[2] = {tu_rand_buf(nx[0], &s, lo, hi), tu_rand_buf(nx[1], &s, lo, hi)};
    float *gy = tu_rand_buf(n, &s, -1.f, 1.f);
    float *y_cpu = tu_rand_buf(n, &s, 0.f, 1.f), *y_tw = tu_rand_buf(n, &s, 0.f, 1.f);
    for (int64_t i = 0; i < n; i++) y_tw[i] = NAN;   /* the twin must write every element */
    float *g0[2], *g_cpu[2], *g_tw[2];
    for (int k = 0; k < 2; k++) {   /* gradients ADDED onto the same random start */
        g0[k] = tu_rand_buf(nx[k], &s, -0.5f, 0.5f);
        g_cpu[k] = tu_rand_buf(nx[k], &s, 0.f, 1.f);
        g_tw[k] = tu_rand_buf(nx[k], &s, 0.f, 1.f);
        memcpy(g_cpu[k], g0[k], sizeof(float) * (size_t)nx[k]);
        memcpy(g_tw[k], g0[k], sizeof(float) * (size_t)nx[k]);
    }
    const int on[2] = {ga_on, gb_on};
    const float *ins[2] = {x[0], x[1]}, *gouts[1] = {gy};
    const sal_shape *insp[2] = {&as, &bs}, *outsp[1] = {&ys};
    float *outs[1] = {y_cpu};
    float *gins_cpu[2] = {ga_on ? g_cpu[0] : NULL, gb_on ? g_cpu[1] : NULL};
    float *gins_tw[2] = {ga_on ? g_tw[0] : NULL, gb_on ? g_tw[1] : NULL};
    sal_op_call c;
    memset(&c, 0, sizeof c);
    c.node = N0(g);
    c.params = p;
    c.n_in = 2;
    c.n_out = 1;
    c.in = ins;
    c.in_shape = insp;
    c.out = outs;
    c.out_shape = outsp;
    c.gout = gouts;
    c.threads = 2;
    sal_error err = {0};
    cr_assert(sal_cpu_forward(&c, &err) == SAL_OK, "%s: %s", what, err.msg);
    outs[0] = y_tw;
    cr_assert(sal_twin_run(&c, 0, &err) == SAL_OK, "%s: %s", what, err.msg);
    double e = max_rel(y_tw, y_cpu, n);
    cr_assert(e < TOL, "%s: forward differs by %.3g (seed %llu)", what, e, (ull)seed);
    outs[0] = y_cpu;
    c.gin = gins_cpu;
    cr_assert(sal_cpu_backward(&c, &err) == SAL_OK, "%s: %s", what, err.msg);
    c.gin = gins_tw;
    cr_assert(sal_twin_run(&c, 1, &err) == SAL_OK, "%s: %s", what, err.msg);
    for (int k = 0; k < 2; k++) {
        if (!on[k]) continue;
        if (nx[k] == n) {
            e = max_rel(g_tw[k], g_cpu[k], n);
        } else {
            cr_assert(nx[k] == 1, "%s: input %d is not a scalar broadcast", what, k);
            double mag = fabs((double)g0[k][0]);
            for (int64_t i = 0; i < n; i++)
                mag += fabs(bin_d_ref(op, k, x[0][nx[0] == 1 ? 0 : i], x[1][nx[1] == 1 ? 0 : i],
                                      gy[i]));
            double ref = fabs((double)g_cpu[k][0]);
            e = fabs((double)g_tw[k][0] - (double)g_cpu[k][0]) / (ref > mag ? ref : mag);
        }
        cr_assert(e < TOL, "%s: gradient of input %d differs by %.3g (seed %llu)", what, k, e,
                  (ull)seed);
    }
    for (int k = 0; k < 2; k++) {
        free(x[k]);
        free(g0[k]);
        free(g_cpu[k]);
        free(g_tw[k]);
    }
    free(gy);
    free(y_cpu);
    free(y_tw);
    free(p);
    sal_graph_free(g);
}

/* a op b with a and/or b constant (random data in [lo, hi] drawn here); a runtime one-element
 * broadcast input goes to check_one_sum (its gradient is one sum: see there). */
static void check_binary(int op, sal_shape as, sal_shape bs, int a_const, int b_const, float lo,
                         float hi) {
    char what[160], b1[64], b2[64];
    snprintf(what, sizeof what, "%s %s%s x %s%s on [%g, %g]", BIN_OPS[op], sstr(as, b1),
             a_const ? " (const)" : "", sstr(bs, b2), b_const ? " (const)" : "", lo, hi);
    sal_shape ys;
    cr_assert(sal_broadcast(&as, &bs, &ys, NULL) == SAL_OK, "%s", what);
    const int64_t n = numel(ys);
    if (n > 1 && ((!a_const && numel(as) == 1) || (!b_const && numel(bs) == 1))) {
        check_one_sum(op, as, bs, !a_const, !b_const, lo, hi, what);
        return;
    }
    uint64_t s = tu_fresh_seed();
    float *ka = a_const ? tu_rand_buf(numel(as), &s, lo, hi) : NULL;
    float *kb = b_const ? tu_rand_buf(numel(bs), &s, lo, hi) : NULL;
    tu_input in[2] = {a_const ? tu_cf(as, ka) : tu_rt(as), b_const ? tu_cf(bs, kb) : tu_rt(bs)};
    sal_graph *g = node(BIN_OPS[op], 2, in, 13);
    twin(g, lo, hi, 0, what);
    free(ka);
    free(kb);
}

/* Mode infer gives (a, b): the cases must cover what they claim. */
static int bcast_mode(sal_shape a, sal_shape b) {
    tu_input in[2] = {tu_rt(a), tu_rt(b)};
    sal_graph *g = node("Mul", 2, in, 13);
    sal_shape ys;
    sal_bcast_params *p = infer_bcast(g, a, b, &ys);
    int mode = p->mode;
    free(p);
    sal_graph_free(g);
    return mode;
}

Test(binary, cases_cover_every_mode) {
    int seen[SAL_BC_CHANNEL_B + 1] = {0};
    for (int k = 0; k < N_BIN_CASES; k++) {
        int m = bcast_mode(BIN_CASES[k].a, BIN_CASES[k].b);
        char b1[64], b2[64];
        cr_assert(m == BIN_CASES[k].mode, "%s x %s: mode %d, expected %d",
                  sstr(BIN_CASES[k].a, b1), sstr(BIN_CASES[k].b, b2), m, BIN_CASES[k].mode);
        seen[m]++;
    }
    for (int m = 0; m <= SAL_BC_CHANNEL_B; m++) cr_assert(seen[m] > 0, "no case of mode %d", m);
}

/* Both operands runtime: both gradients. Inputs in [0.5, 2] (Div's denominator away from 0),
 * and Add/Sub/Mul also on mixed signs. */
Test(binary, runtime_operands) {
    for (int op = 0; op < 4; op++)
        for (int k = 0; k < N_BIN_CASES; k++) {
            check_binary(op, BIN_CASES[k].a, BIN_CASES[k].b, 0, 0, 0.5f, 2.f);
            if (op != 3) check_binary(op, BIN_CASES[k].a, BIN_CASES[k].b, 0, 0, -2.f, 2.f);
        }
}

/* One operand constant: its gradient is not wanted (gin NULL), the other's is. */
Test(binary, constant_operand) {
    for (int op = 0; op < 4; op++)
        for (int k = 0; k < N_BIN_CASES; k++) {
            check_binary(op, BIN_CASES[k].a, BIN_CASES[k].b, 0, 1, 0.5f, 2.f);
            check_binary(op, BIN_CASES[k].a, BIN_CASES[k].b, 1, 0, 0.5f, 2.f);
        }
}

/* opset < 7: B aligned at `axis` (its in_shape is (3,4), the broadcast (1,3,4,1)). */
Test(binary, legacy_broadcast_axis_opset6) {
    for (int op = 0; op < 4; op++) {
        tu_input in[2] = {tu_rt(tu_shape(4, 2, 3, 4, 5)), tu_rt(tu_shape(2, 3, 4))};
        sal_graph *g = node(BIN_OPS[op], 2, in, 6);
        sal_node_attr_int(N0(g), "broadcast", 1);
        sal_node_attr_int(N0(g), "axis", 1);
        twin(g, 0.5f, 2.f, 0, BIN_OPS[op]);
    }
}

/* Scalar broadcasts up to a (2,16,40,40) tensor: a sum of 51200 terms per gradient. */
Test(binary, scalar_broadcast_sums) {
    const sal_shape big[] = {tu_shape(4, 2, 16, 40, 40), tu_shape(3, 3, 2, 5), tu_shape(1, 9000)};
    const sal_shape one[] = {tu_shape(0), tu_shape(1, 1), tu_shape(4, 1, 1, 1, 1)};
    for (int op = 0; op < 4; op++)
        for (int k = 0; k < 3; k++)
            for (int order = 0; order < 2; order++)
                for (int wanted = 1; wanted < 4; wanted++) {   /* bit 0: a's gradient, 1: b's */
                    const sal_shape as = order ? one[k] : big[k], bs = order ? big[k] : one[k];
                    char what[160], b1[64], b2[64];
                    snprintf(what, sizeof what, "%s %s x %s gradients %d", BIN_OPS[op],
                             sstr(as, b1), sstr(bs, b2), wanted);
                    check_one_sum(op, as, bs, wanted & 1, wanted >> 1, 0.5f, 2.f, what);
                }
}

/* ------------------------------------------------------------------------------------------------ */
/* BatchNormalization                                                                               */

/* Statistics constant (the exported-model case: only dx), some or all runtime (their per-channel
 * gradients; runtime inputs then in [0.5, 2] so the variance is positive), and x constant with
 * runtime statistics (the statistics' launch alone). */
Test(batchnorm, constant_and_runtime_statistics) {
    const sal_shape shapes[] = {tu_shape(4, 2, 3, 4, 5), tu_shape(2, 4, 3), tu_shape(3, 2, 3, 7),
                                tu_shape(4, 1, 16, 8, 8)};   /* (infer rejects empty dims) */
    const float epss[] = {1e-5f, 1e-2f, 1e-3f, 1e-5f};
    for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++) {
        const sal_shape xs = shapes[k];
        const int64_t C = xs.d[1];
        uint64_t s = tu_fresh_seed();
        float *sc = tu_rand_buf(C, &s, -1.5f, 1.5f), *bi = tu_rand_buf(C, &s, -1.f, 1.f);
        float *mu = tu_rand_buf(C, &s, -0.5f, 0.5f), *var = tu_rand_buf(C, &s, 0.1f, 2.f);
        const float *p[4] = {sc, bi, mu, var};
        char what[128], b[64];
        float *kx = tu_rand_buf(numel(xs), &s, 0.5f, 2.f);
        /* bit 0: x runtime, bits 1-4: scale, B, mean, var runtime */
        const int masks[] = {1, 1 | 2, 1 | 4 | 16, 1 | 8, 31, 30, 16, 2 | 8};
        for (size_t m = 0; m < sizeof masks / sizeof masks[0]; m++) {
            const int mask = masks[m];
            tu_input ins[5] = {mask & 1 ? tu_rt(xs) : tu_cf(xs, kx)};
            for (int i = 0; i < 4; i++)
                ins[1 + i] = (mask >> (i + 1)) & 1 ? tu_rt(tu_shape(1, (int)C)) : tu_cf(tu_shape(1, (int)C), p[i]);
            sal_graph *g = node("BatchNormalization", 5, ins, 15);
            if (epss[k] != 1e-5f) sal_node_attr_float(N0(g), "epsilon", epss[k]);
            snprintf(what, sizeof what, "BatchNormalization %s runtime mask %d", sstr(xs, b), mask);
            twin(g, mask & 16 ? 0.5f : -2.f, 2.f, 0, what);   /* runtime var > 0 */
        }
        free(kx);
        free(sc);
        free(bi);
        free(mu);
        free(var);
    }
}

/* ------------------------------------------------------------------------------------------------ */
/* Softmax                                                                                          */

static void check_softmax(sal_shape xs, int opset, int has_axis, int axis, float lo, float hi) {
    tu_input in[] = {tu_rt(xs)};
    sal_graph *g = node("Softmax", 1, in, opset);
    if (has_axis) sal_node_attr_int(N0(g), "axis", axis);
    char what[128], b[64];
    snprintf(what, sizeof what, "Softmax-%d %s axis %d on [%g, %g]", opset, sstr(xs, b),
             has_axis ? axis : opset < 13 ? 1 : -1, lo, hi);
    twin(g, lo, hi, 0, what);
}

/* inner == 1 (last axis, opset < 13's coerced tail) and inner > 1 (the CPU's column path),
 * rows of one and of a thousand values, inputs that saturate exp. */
Test(softmax, axes) {
    /* [-200, 200] and [-300, -100]: exp overflows or underflows unless the row's own maximum
     * is subtracted */
    const float ranges[][2] = {{-5.f, 5.f}, {-60.f, 60.f}, {-200.f, 200.f}, {-300.f, -100.f},
                               {-0.01f, 0.01f}};
    for (size_t r = 0; r < sizeof ranges / sizeof ranges[0]; r++) {
        const float lo = ranges[r][0], hi = ranges[r][1];
        check_softmax(tu_shape(3, 2, 3, 10), 13, 0, 0, lo, hi);
        check_softmax(tu_shape(4, 2, 5, 4, 3), 13, 1, 1, lo, hi);
        check_softmax(tu_shape(4, 2, 5, 4, 3), 13, 1, -2, lo, hi);
        check_softmax(tu_shape(2, 6, 7), 13, 1, 0, lo, hi);
        check_softmax(tu_shape(2, 3, 1000), 13, 0, 0, lo, hi);
        check_softmax(tu_shape(3, 200, 1, 70), 13, 1, 0, lo, hi);   /* inner 70 > the CPU's 64 columns */
        check_softmax(tu_shape(2, 4, 1), 13, 0, 0, lo, hi);          /* rows of one */
        check_softmax(tu_shape(1, 9), 13, 0, 0, lo, hi);
        check_softmax(tu_shape(3, 2, 3, 4), 11, 0, 0, lo, hi);       /* coerced: (2, 12) */
        check_softmax(tu_shape(3, 2, 3, 4), 11, 1, 2, lo, hi);       /* coerced: (6, 4) */
        check_softmax(tu_shape(3, 2, 3, 4), 11, 1, 0, lo, hi);       /* coerced: (1, 24) */
        check_softmax(tu_shape(3, 2, 0, 4), 13, 1, 2, lo, hi);       /* empty */
    }
}

/* ------------------------------------------------------------------------------------------------ */
/* Plan contract                                                                                    */

Test(plan, probe_claims_the_family) {
    const int mine[] = {SAL_OP_RELU, SAL_OP_LEAKYRELU, SAL_OP_CLIP, SAL_OP_SIGMOID,
                        SAL_OP_HARDSIGMOID, SAL_OP_HARDSWISH, SAL_OP_TANH, SAL_OP_ADD, SAL_OP_SUB,
                        SAL_OP_MUL, SAL_OP_DIV, SAL_OP_BATCHNORM, SAL_OP_SOFTMAX};
    for (size_t i = 0; i < sizeof mine / sizeof mine[0]; i++)
        cr_assert(sal_tw_has_op(mine[i]), "op %d has no twin", mine[i]);
    cr_assert(!sal_tw_has_op(SAL_OP_CONV) && !sal_tw_has_op(SAL_OP_GEMM) &&
              !sal_tw_has_op(SAL_OP_MATMUL), "cuDNN/cuBLAS ops claimed");
    /* outside the family: -2 before reading the call (a call with only the node) */
    sal_node nd;
    memset(&nd, 0, sizeof nd);
    nd.name = (char *)"n";
    nd.op_type = (char *)"MaxPool";
    nd.op = SAL_OP_MAXPOOL;
    sal_op_call c;
    memset(&c, 0, sizeof c);
    c.node = &nd;
    sal_tw_launch l;
    sal_tw_args a;
    sal_error err = {0};
    cr_assert(sal_tw_plan_elem(&c, 0, 0, &l, &a, &err) == -2);
    cr_assert(sal_tw_plan_elem(&c, 1, 0, &l, &a, &err) == -2);
}

/* A hand-made backward call of Mul (2,3) x (3): launches for exactly the gradients wanted, none
 * when gout is NULL; the broadcast input's launch runs over ITS elements. */
Test(plan, backward_launches) {
    sal_node nd;
    memset(&nd, 0, sizeof nd);
    nd.name = (char *)"mul";
    nd.op_type = (char *)"Mul";
    nd.op = SAL_OP_MUL;
    sal_shape as = tu_shape(2, 2, 3), bs = tu_shape(1, 3), ys;
    sal_bcast_params p;
    memset(&p, 0, sizeof p);
    cr_assert(sal_broadcast(&as, &bs, &ys, &p) == SAL_OK);
    p.mode = SAL_BC_CHANNEL_B;
    p.outer = 2;
    p.mid = 3;
    p.inner = 1;
    float A[6] = {1, 2, 3, 4, 5, 6}, B[3] = {1, 2, 3}, Y[6], G[6] = {1, 1, 1, 1, 1, 1};
    float GA[6] = {0}, GB[3] = {0};
    const float *in[2] = {A, B}, *gout[1] = {G}, *gout_null[1] = {NULL};
    float *out[1] = {Y}, *gin[2] = {GA, GB}, *gin_b[2] = {NULL, GB}, *gin_none[2] = {NULL, NULL};
    const sal_shape *insp[2] = {&as, &bs}, *outsp[1] = {&ys};
    sal_op_call c;
    memset(&c, 0, sizeof c);
    c.node = &nd;
    c.params = &p;
    c.n_in = 2;
    c.n_out = 1;
    c.in = in;
    c.in_shape = insp;
    c.out = out;
    c.out_shape = outsp;
    c.gout = gout;
    c.gin = gin;
    sal_tw_launch l;
    sal_tw_args a;
    sal_error err = {0};
    cr_assert(sal_tw_plan(&c, 1, 0, &l, &a, &err) == 1 && l.fn == SAL_TW_bin_bwd_full && l.count == 6);
    cr_assert(sal_tw_plan(&c, 1, 1, &l, &a, &err) == 1 && l.fn == SAL_TW_bin_bwd_reduce && l.count == 3);
    cr_assert(sal_tw_plan(&c, 1, 2, &l, &a, &err) == 0);
    c.gin = gin_b;
    cr_assert(sal_tw_plan(&c, 1, 0, &l, &a, &err) == 1 && l.fn == SAL_TW_bin_bwd_reduce);
    cr_assert(sal_tw_plan(&c, 1, 1, &l, &a, &err) == 0);
    c.gin = gin_none;
    cr_assert(sal_tw_plan(&c, 1, 0, &l, &a, &err) == 0);
    c.gin = gin;
    c.gout = gout_null;
    cr_assert(sal_tw_plan(&c, 1, 0, &l, &a, &err) == 0);
    /* and the numbers: dB[m] = sum_o A[o, m], dA = B broadcast */
    c.gout = gout;
    cr_assert(sal_twin_run(&c, 1, &err) == SAL_OK, "%s", err.msg);
    for (int m = 0; m < 3; m++) cr_assert(GB[m] == A[m] + A[3 + m], "dB[%d] = %g", m, GB[m]);
    for (int i = 0; i < 6; i++) cr_assert(GA[i] == B[i % 3], "dA[%d] = %g", i, GA[i]);
    cr_assert(sal_twin_run(&c, 0, &err) == SAL_OK, "%s", err.msg);
    for (int i = 0; i < 6; i++) cr_assert(Y[i] == A[i] * B[i % 3], "y[%d] = %g", i, Y[i]);
}

