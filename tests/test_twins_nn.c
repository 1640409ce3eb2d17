/* test_twins_nn.c — the CUDA backend's element functions of pooling, ReduceMean, LRN, Concat,
 * Transpose and Pad (kernels/twin_nn.h, plans in host/backend/twin/plan_nn.c), run on the host by
 * sal_twin_run, against the CPU kernels (the specification): forward outputs and backward
 * gradients (ADDED onto random starting values) of one-node graphs over many shapes and
 * attribute sets (tu_twin_check).
 *
 * Tolerance: 1e-5 of the largest reference magnitude. The twins repeat the CPU's arithmetic: same
 * window rules and tie-breaking, same accumulation type, and the same order of additions wherever
 * the CPU's order is fixed, so most results are bitwise equal on the host. The exceptions are the
 * CPU's vectorized reductions (`omp simd reduction`: GlobalAveragePool, ReduceMean over the
 * innermost axis), which sum in another order; for the sizes here that differs by a few float
 * roundings of the sums, far below 1e-5, while any wrong index, window, divisor, tie or missed
 * contribution gives errors of order 1e-2 or more.
 *
 * Every check draws a fresh seed (tu_fresh_seed), printed on failure.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "twin_all.h"

#define TOL 1e-5

typedef unsigned long long ull;

/* ------------------------------------------------------------------------------------------------ */
/* Helpers                                                                                          */


static sal_graph *node(const char *op, int n_in, const tu_input *ins, int opset) {
    sal_graph *g = tu_op_graph(op, n_in, ins, 1, opset);
    cr_assert(g, "tu_op_graph(%s) failed", op);
    return g;
}

static sal_node *N0(sal_graph *g) { return &g->nodes[0]; }

static void set_ints(sal_graph *g, const char *name, int n, const int64_t *v) {
    cr_assert_eq(sal_node_attr_ints(N0(g), name, n, v), SAL_OK);
}
static void set_int(sal_graph *g, const char *name, int64_t v) {
    cr_assert_eq(sal_node_attr_int(N0(g), name, v), SAL_OK);
}
static void set_float(sal_graph *g, const char *name, float v) {
    cr_assert_eq(sal_node_attr_float(N0(g), name, v), SAL_OK);
}
static void set_str(sal_graph *g, const char *name, const char *v) {
    cr_assert_eq(sal_node_attr_str(N0(g), name, v), SAL_OK);
}

/* Twin against CPU on random inputs in [lo, hi]; frees g. want_elems: expect something compared. */
static void twin_ok(sal_graph *g, const char *what, float lo, float hi, int want_elems) {
    uint64_t seed = tu_fresh_seed();
    tu_twin_result r = tu_twin_check(g, seed, lo, hi, 0);
    cr_expect(r.st == SAL_OK, "%s: status %s: %s (seed %llu)", what, sal_status_str(r.st), r.msg,
              (ull)seed);
    if (r.st == SAL_OK) {
        cr_expect(r.fwd_err < TOL, "%s: forward error %g (seed %llu)", what, r.fwd_err, (ull)seed);
        cr_expect(r.bwd_err < TOL, "%s: backward error %g (seed %llu)", what, r.bwd_err, (ull)seed);
        if (want_elems) cr_expect(r.n_checked > 0, "%s: nothing compared (seed %llu)", what, (ull)seed);
    }
    sal_graph_free(g);
}

/* ------------------------------------------------------------------------------------------------ */
/* Plan contract                                                                                    */

Test(twins_nn, has_op) {
    const int ops[] = {SAL_OP_MAXPOOL, SAL_OP_AVGPOOL, SAL_OP_GLOBALAVGPOOL, SAL_OP_REDUCEMEAN,
                       SAL_OP_LRN, SAL_OP_CONCAT, SAL_OP_TRANSPOSE, SAL_OP_PAD};
    for (size_t k = 0; k < sizeof ops / sizeof ops[0]; k++)
        cr_expect(sal_tw_has_op(ops[k]), "op kind %d has no twin", ops[k]);
    /* cuDNN / cuBLAS ops are nobody's twins */
    cr_expect(!sal_tw_has_op(SAL_OP_CONV) && !sal_tw_has_op(SAL_OP_GEMM) && !sal_tw_has_op(SAL_OP_MATMUL));
}

/* ------------------------------------------------------------------------------------------------ */
/* MaxPool and AveragePool                                                                          */

typedef struct pool_case {
    const char *name;
    int nsp;
    int n, c, h, w, kh, kw, sh, sw, dh, dw;
    int pt, pl, pb, pr;        /* pads attribute (ignored with auto_pad) */
    const char *auto_pad;      /* NULL: pads attribute */
    int ceil_mode;
} pool_case;

static const pool_case POOLS[] = {
    /* name              nsp n  c  h   w   kh kw sh sw dh dw pt pl pb pr auto_pad   ceil */
    {"k2s2",              2, 2, 3, 8,  8,  2, 2, 2, 2, 1, 1, 0, 0, 0, 0, NULL,         0},
    {"k3s2_pads1",        2, 2, 2, 9,  8,  3, 3, 2, 2, 1, 1, 1, 1, 1, 1, NULL,         0},
    {"k3s1_pads2",        2, 1, 2, 7,  7,  3, 3, 1, 1, 1, 1, 2, 2, 2, 2, NULL,         0},
    {"k3s1_overlap",      2, 2, 2, 6,  9,  3, 3, 1, 1, 1, 1, 0, 0, 0, 0, NULL,         0},
    {"k2s3_gaps",         2, 1, 2, 8,  9,  2, 2, 3, 3, 1, 1, 0, 0, 0, 0, NULL,         0},
    {"ceil",              2, 1, 2, 8,  8,  3, 3, 2, 2, 1, 1, 0, 0, 0, 0, NULL,         1},
    {"ceil_drop",         2, 1, 2, 5,  7,  2, 2, 3, 3, 1, 1, 0, 0, 1, 0, NULL,         1},
    {"ceil_pads",         2, 2, 2, 6,  7,  3, 3, 2, 2, 1, 1, 1, 1, 1, 1, NULL,         1},
    {"k3s3_asym_pads",    2, 1, 2, 8,  8,  3, 3, 3, 3, 1, 1, 1, 2, 1, 2, NULL,         0},
    {"k3_s12",            2, 1, 2, 9,  8,  3, 3, 1, 2, 1, 1, 0, 0, 0, 0, NULL,         0},
    {"k2x4_s21_pads",     2, 1, 3, 7,  10, 2, 4, 2, 1, 1, 1, 1, 0, 0, 3, NULL,         0},
    {"dilation2",         2, 1, 2, 9,  9,  2, 2, 1, 1, 2, 2, 0, 0, 0, 0, NULL,         0},
    {"dil2_s2_pads",      2, 2, 2, 10, 9,  3, 3, 2, 2, 2, 2, 1, 1, 1, 1, NULL,         0},
    {"dil3x2_s3x1",       2, 1, 2, 11, 8,  2, 3, 3, 1, 3, 2, 1, 2, 0, 1, NULL,         0},
    {"ceil_pads_dil",     2, 1, 2, 10, 10, 3, 3, 2, 2, 2, 2, 2, 2, 2, 2, NULL,         1},
    {"same_upper",        2, 2, 2, 7,  8,  3, 3, 2, 2, 1, 1, 0, 0, 0, 0, "SAME_UPPER", 0},
    {"same_lower",        2, 2, 2, 7,  8,  3, 3, 2, 2, 1, 1, 0, 0, 0, 0, "SAME_LOWER", 0},
    {"same_upper_k2",     2, 1, 2, 5,  5,  2, 2, 1, 1, 1, 1, 0, 0, 0, 0, "SAME_UPPER", 0},
    {"same_lower_k4",     2, 1, 2, 6,  6,  4, 4, 1, 1, 1, 1, 0, 0, 0, 0, "SAME_LOWER", 0},
    {"valid",             2, 1, 2, 7,  8,  3, 3, 2, 2, 1, 1, 0, 0, 0, 0, "VALID",      0},
    {"global_window",     2, 2, 3, 5,  6,  5, 6, 1, 1, 1, 1, 0, 0, 0, 0, NULL,         0},
    {"big_k3s2_pads1",    2, 2, 16, 24, 24, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, NULL,        0},
    {"pool1d",            1, 2, 3, 1,  11, 1, 3, 1, 2, 1, 1, 0, 1, 0, 1, NULL,         0},
    {"pool1d_ceil",       1, 2, 3, 1,  10, 1, 3, 1, 2, 1, 1, 0, 1, 0, 1, NULL,         1},
    {"pool1d_dil",        1, 1, 2, 1,  13, 1, 3, 1, 2, 1, 3, 0, 2, 0, 1, NULL,         0},
};
#define NPOOLS (sizeof POOLS / sizeof POOLS[0])

/* op: "MaxPool" or "AveragePool"; cip < 0: no count_include_pad attribute. */
static sal_graph *pool_graph(const pool_case *pc, const char *op, int cip) {
    tu_input in[1] = {tu_rt(pc->nsp == 2 ? tu_shape(4, pc->n, pc->c, pc->h, pc->w) : tu_shape(3, pc->n, pc->c, pc->w))};
    sal_graph *g = node(op, 1, in, 13);
    const int ns = pc->nsp, o = 2 - ns;   /* 1-D: the w entries */
    const int64_t ks[2] = {pc->kh, pc->kw}, st[2] = {pc->sh, pc->sw}, dl[2] = {pc->dh, pc->dw};
    const int64_t pads2[4] = {pc->pt, pc->pl, pc->pb, pc->pr}, pads1[2] = {pc->pl, pc->pr};
    set_ints(g, "kernel_shape", ns, ks + o);
    set_ints(g, "strides", ns, st + o);
    if (pc->dh != 1 || pc->dw != 1) set_ints(g, "dilations", ns, dl + o);
    if (pc->auto_pad) set_str(g, "auto_pad", pc->auto_pad);
    else set_ints(g, "pads", 2 * ns, ns == 2 ? pads2 : pads1);
    if (pc->ceil_mode) set_int(g, "ceil_mode", 1);
    if (cip >= 0) set_int(g, "count_include_pad", cip);
    return g;
}

Test(twins_nn, maxpool) {
    char what[96];
    for (size_t k = 0; k < NPOOLS; k++) {
        snprintf(what, sizeof what, "MaxPool %s", POOLS[k].name);
        twin_ok(pool_graph(&POOLS[k], "MaxPool", -1), what, -1.f, 1.f, 1);
    }
}

/* All inputs equal: every window's maximum is a tie, which the CPU gives to the first valid tap
 * in row-major order; the twin's gather must credit the same element. */
Test(twins_nn, maxpool_ties) {
    char what[96];
    for (size_t k = 0; k < NPOOLS; k++) {
        snprintf(what, sizeof what, "MaxPool ties %s", POOLS[k].name);
        twin_ok(pool_graph(&POOLS[k], "MaxPool", -1), what, 0.25f, 0.25f, 1);
    }
}

Test(twins_nn, avgpool) {
    char what[96];
    for (size_t k = 0; k < NPOOLS; k++)
        for (int cip = -1; cip <= 1; cip++) {
            snprintf(what, sizeof what, "AveragePool %s count_include_pad %d", POOLS[k].name, cip);
            twin_ok(pool_graph(&POOLS[k], "AveragePool", cip), what, -1.f, 1.f, 1);
        }
}

/* MaxPool's window argmax (kernels/twin_nn.h: a maximum scan, then the first equal tap) against
 * the rule written as one scan: the first tap strictly greater than every earlier one. Windows of
 * 0-2 x 0-2 taps with dilation 1-2 over values drawn from a set with ties, signed zeros, NaN and
 * infinities, where a two-scan shortcut could pick another tap. */
static int64_t argmax_one_scan(const float *plane, int64_t W, int64_t ylo, int64_t yhi, int64_t xlo,
                               int64_t xhi, int64_t dh, int64_t dw) {
    int64_t best = -1;
    float bv = 0.f;
    for (int64_t ky = ylo; ky < yhi; ky++)
        for (int64_t kx = xlo; kx < xhi; kx++) {
            const int64_t at = ky * dh * W + kx * dw;
            if (best < 0 || plane[at] > bv) {
                bv = plane[at];
                best = at;
            }
        }
    return best;
}

Test(twins_nn, window_argmax_first_maximum) {
    const float vals[] = {0.f, -0.f, 1.f, -1.f, 2.f, NAN, -INFINITY, INFINITY};
    uint64_t seed = tu_fresh_seed(), r = seed;
    float p[64];
    int bad = 0;
    for (int it = 0; it < 200000 && bad < 3; it++) {
        for (int i = 0; i < 64; i++) {
            r = r * 6364136223846793005ULL + 1442695040888963407ULL;
            p[i] = vals[(r >> 33) % 8];
        }
        r = r * 6364136223846793005ULL + 1442695040888963407ULL;
        const int64_t ylo = (r >> 33) % 3, yhi = ylo + (r >> 40) % 3, xlo = (r >> 45) % 3,
                      xhi = xlo + (r >> 50) % 3, dh = 1 + (r >> 55) % 2, dw = 1 + (r >> 60) % 2;
        const int64_t want = argmax_one_scan(p, 8, ylo, yhi, xlo, xhi, dh, dw),
                      got = sal_tw__window_argmax(p, 8, ylo, yhi, xlo, xhi, 0, 0, dh, dw);
        if (got != want) {
            bad++;
            cr_expect_eq(got, want, "window [%lld,%lld)x[%lld,%lld) dil %lld,%lld: tap %lld, want %lld (seed %llu)",
                         (long long)ylo, (long long)yhi, (long long)xlo, (long long)xhi, (long long)dh,
                         (long long)dw, (long long)got, (long long)want, (ull)seed);
        }
    }
}

Test(twins_nn, globalavgpool) {
    const sal_shape xs[] = {tu_shape(4, 2, 3, 5, 7), tu_shape(3, 1, 4, 9), tu_shape(5, 2, 2, 3, 4, 5),
                            tu_shape(4, 2, 3, 1, 1), tu_shape(4, 1, 8, 64, 64)};
    char what[96], b[64];
    for (size_t k = 0; k < sizeof xs / sizeof xs[0]; k++) {
        tu_input in[1] = {tu_rt(xs[k])};
        snprintf(what, sizeof what, "GlobalAveragePool %s", sal_shape_str(&xs[k], b, sizeof b));
        /* zero-mean inputs over 4096 pixels make tiny means, relative to which the reordered
         * sum's rounding approaches the tolerance: the big plane gets positive inputs only */
        if (sal_shape_numel(&xs[k]) < 4096)
            twin_ok(node("GlobalAveragePool", 1, in, 13), what, -1.f, 1.f, 1);
        twin_ok(node("GlobalAveragePool", 1, in, 13), what, 0.f, 1.f, 1);
    }
}

/* ------------------------------------------------------------------------------------------------ */
/* ReduceMean                                                                                       */

/* naxes < 0: no axes; opset 18 takes the axes as a constant input, earlier as an attribute;
 * keepdims < 0: default; noop: noop_with_empty_axes = 1. */
static void reducemean(sal_shape xs, int naxes, const int64_t *axes, int keepdims, int opset,
                       int noop) {
    char what[128], b[64];
    snprintf(what, sizeof what, "ReduceMean %s axes %d [%lld,...] keepdims %d opset %d noop %d",
             sal_shape_str(&xs, b, sizeof b), naxes, naxes > 0 ? (long long)axes[0] : 0LL, keepdims,
             opset, noop);
    tu_input in[2] = {tu_rt(xs), tu_ci(tu_shape(1, naxes > 0 ? naxes : 0), axes)};
    sal_graph *g;
    if (opset >= 18) {
        g = node("ReduceMean", naxes >= 0 ? 2 : 1, in, opset);
    } else {
        g = node("ReduceMean", 1, in, opset);
        if (naxes >= 0) set_ints(g, "axes", naxes, axes);
    }
    if (keepdims >= 0) set_int(g, "keepdims", keepdims);
    if (noop) set_int(g, "noop_with_empty_axes", 1);
    /* positive inputs: a signed mean of 120 values (the "everything" cases) can land near zero,
     * and relative to it the CPU's reordered (vectorized) sum differs by ~1e-5 (seen in CI: 1.04e-5,
     * a few roundings of a sum near 5 over a mean near 1e-3). On [0.25, 1] there is no cancellation,
     * while a wrong divisor or a missed element still moves a mean by >= 2e-3 of itself. */
    twin_ok(g, what, 0.25f, 1.f, 1);
}

Test(twins_nn, reducemean) {
    const sal_shape x = tu_shape(4, 2, 3, 4, 5);
    const int64_t hw[] = {2, 3}, last[] = {-1}, c[] = {1}, n0[] = {0}, gen[] = {0, 2},
                  gen2[] = {1, 3}, negs[] = {-3, -1}, three[] = {0, 1, 3}, alt[] = {0, 3};
    for (int keep = 0; keep <= 1; keep++) {
        reducemean(x, 2, hw, keep, 13, 0);     /* (outer, len, 1) */
        reducemean(x, 1, last, keep, 13, 0);
        reducemean(x, 1, c, keep, 13, 0);      /* (outer, len, inner) */
        reducemean(x, 1, n0, keep, 13, 0);     /* (1, len, inner) */
        reducemean(x, 2, gen, keep, 13, 0);    /* general: two reduced dims */
        reducemean(x, 2, gen2, keep, 13, 0);
        reducemean(x, 2, negs, keep, 13, 0);
        reducemean(x, 3, three, keep, 13, 0);
        reducemean(x, 2, alt, keep, 13, 0);
        reducemean(x, -1, NULL, keep, 13, 0);  /* everything */
    }
    reducemean(x, 2, hw, -1, 13, 0);
    const int64_t one3[] = {1, 3}, mid[] = {1, 2};
    reducemean(tu_shape(4, 2, 1, 3, 1), 2, one3, 1, 13, 0);   /* only 1-dims reduced */
    reducemean(tu_shape(5, 2, 1, 3, 4, 1), 2, mid, 0, 13, 0); /* a 1-dim merged away */
    reducemean(tu_shape(5, 3, 2, 1, 4, 2), 2, gen, 1, 13, 0);
    reducemean(tu_shape(1, 7), 1, n0, 0, 13, 0);
    reducemean(tu_shape(4, 4, 64, 12, 12), 2, hw, 1, 13, 0);
    reducemean(tu_shape(3, 16, 40, 70), 1, n0, 0, 13, 0);
    const int64_t a18[] = {-1, 0};
    const sal_shape x3 = tu_shape(3, 3, 4, 5);
    reducemean(x3, 2, a18, 1, 18, 0);
    reducemean(x3, 2, a18, 0, 18, 0);
    reducemean(x3, -1, NULL, 0, 18, 0);
    reducemean(x3, -1, NULL, 1, 18, 1);   /* noop_with_empty_axes: y = x */
    reducemean(x3, 0, a18, 0, 18, 0);     /* empty axes: everything */
}

/* ------------------------------------------------------------------------------------------------ */
/* LRN                                                                                              */

Test(twins_nn, lrn) {
    struct { sal_shape x; int size; float alpha, beta, bias; int defaults; } cases[] = {
        {tu_shape(4, 2, 5, 3, 4), 3, 0, 0, 0, 1},
        {tu_shape(4, 2, 5, 3, 4), 1, 0.5f, 0.9f, 2.f, 0},
        {tu_shape(4, 2, 5, 3, 4), 2, 0.5f, 0.75f, 1.f, 0},
        {tu_shape(4, 2, 5, 3, 4), 3, 0.8f, 0.6f, 1.5f, 0},
        {tu_shape(4, 2, 5, 3, 4), 4, 1.f, 0.75f, 0.5f, 0},
        {tu_shape(4, 1, 6, 2, 3), 5, 0.3f, 1.2f, 1.f, 0},
        {tu_shape(4, 1, 4, 3, 3), 7, 0.4f, 0.75f, 1.f, 0},   /* window wider than C */
        {tu_shape(3, 2, 8, 6), 5, 2e-2f, 0.75f, 1.f, 0},
        {tu_shape(2, 3, 6), 3, 0.5f, 0.75f, 1.f, 0},
        {tu_shape(5, 1, 3, 2, 2, 3), 2, 0.5f, 0.5f, 1.f, 0},
        {tu_shape(4, 2, 16, 12, 12), 5, 1e-2f, 0.75f, 1.f, 0},
    };
    char what[128], b[64];
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        snprintf(what, sizeof what, "LRN %s size %d alpha %g beta %g bias %g",
                 sal_shape_str(&cases[k].x, b, sizeof b), cases[k].size, cases[k].alpha,
                 cases[k].beta, cases[k].bias);
        tu_input in[1] = {tu_rt(cases[k].x)};
        sal_graph *g = node("LRN", 1, in, 13);
        set_int(g, "size", cases[k].size);
        if (!cases[k].defaults) {
            set_float(g, "alpha", cases[k].alpha);
            set_float(g, "beta", cases[k].beta);
            set_float(g, "bias", cases[k].bias);
        }
        twin_ok(g, what, -2.f, 2.f, 1);
    }
}

/* ------------------------------------------------------------------------------------------------ */
/* Concat                                                                                           */

/* const_first: input 0 is a constant (no gradient). */
static void concat(int n_in, const sal_shape *xs, int axis, int const_first) {
    char what[96];
    snprintf(what, sizeof what, "Concat of %d on axis %d%s", n_in, axis,
             const_first ? " (input 0 constant)" : "");
    static float k0[4096];
    for (int i = 0; i < 4096; i++) k0[i] = (float)((i * 37) % 101) / 50.f - 1.f;
    cr_assert(!const_first || sal_shape_numel(&xs[0]) <= 4096);
    tu_input in[8];
    for (int i = 0; i < n_in; i++) in[i] = i == 0 && const_first ? tu_cf(xs[0], k0) : tu_rt(xs[i]);
    sal_graph *g = node("Concat", n_in, in, 13);
    set_int(g, "axis", axis);
    twin_ok(g, what, -1.f, 1.f, 1);
}

Test(twins_nn, concat) {
    const sal_shape a1[] = {tu_shape(3, 2, 1, 3), tu_shape(3, 2, 4, 3), tu_shape(3, 2, 2, 3)};
    concat(3, a1, 1, 0);
    concat(3, a1, -2, 1);
    concat(2, a1 + 1, 1, 0);
    const sal_shape al[] = {tu_shape(3, 2, 3, 1), tu_shape(3, 2, 3, 4), tu_shape(3, 2, 3, 2)};
    concat(3, al, -1, 0);
    concat(3, al, 2, 1);
    const sal_shape wide[] = {tu_shape(3, 2, 2, 20), tu_shape(3, 2, 1, 20), tu_shape(3, 2, 3, 20)};
    concat(3, wide, 1, 0);
    concat(3, wide, 1, 1);
    const sal_shape a0[] = {tu_shape(2, 1, 5), tu_shape(2, 3, 5)};
    concat(2, a0, 0, 0);
    concat(2, a0, -2, 1);
    const sal_shape one[] = {tu_shape(2, 3, 5)};
    concat(1, one, 1, 0);
    const sal_shape five[] = {tu_shape(1, 2), tu_shape(1, 1), tu_shape(1, 3), tu_shape(1, 1), tu_shape(1, 4)};
    concat(5, five, 0, 0);   /* more inputs than a launch's in[] holds */
    concat(5, five, 0, 1);
    const sal_shape big[] = {tu_shape(4, 2, 8, 30, 30), tu_shape(4, 2, 24, 30, 30)};
    concat(2, big, 1, 0);
    const sal_shape zero[] = {tu_shape(2, 2, 0), tu_shape(2, 2, 3), tu_shape(2, 2, 1)};
    concat(3, zero, 1, 0);
    concat(3, zero, 1, 1);
}

/* ------------------------------------------------------------------------------------------------ */
/* Transpose                                                                                        */

static void transpose(sal_shape xs, const int64_t *perm) {
    char what[96], b[64];
    snprintf(what, sizeof what, "Transpose %s perm %s [%lld,...]", sal_shape_str(&xs, b, sizeof b),
             perm ? "given" : "default", perm ? (long long)perm[0] : -1LL);
    tu_input in[1] = {tu_rt(xs)};
    sal_graph *g = node("Transpose", 1, in, 13);
    if (perm) set_ints(g, "perm", xs.ndim, perm);
    twin_ok(g, what, -1.f, 1.f, 1);
}

Test(twins_nn, transpose) {
    const int64_t p3[6][3] = {{0, 1, 2}, {0, 2, 1}, {1, 0, 2}, {1, 2, 0}, {2, 0, 1}, {2, 1, 0}};
    for (int k = 0; k < 6; k++) transpose(tu_shape(3, 2, 3, 4), p3[k]);
    transpose(tu_shape(3, 2, 3, 4), NULL);
    const int64_t nhwc[] = {0, 2, 3, 1}, nchw[] = {0, 3, 1, 2}, mid[] = {1, 0, 2, 3},
                  rev[] = {3, 2, 1, 0}, swap[] = {2, 3, 0, 1};
    transpose(tu_shape(4, 2, 3, 4, 5), nhwc);
    transpose(tu_shape(4, 2, 5, 3, 4), nchw);
    transpose(tu_shape(4, 1, 3, 1, 5), nhwc);
    transpose(tu_shape(4, 2, 3, 4, 5), rev);
    transpose(tu_shape(4, 2, 3, 4, 5), swap);
    transpose(tu_shape(4, 2, 32, 24, 24), mid);
    transpose(tu_shape(4, 2, 32, 24, 24), nhwc);
    const int64_t p5[] = {4, 1, 3, 0, 2};
    transpose(tu_shape(5, 2, 3, 2, 4, 3), p5);
    transpose(tu_shape(1, 7), NULL);
    transpose(tu_shape(2, 1, 1), NULL);
    transpose(tu_shape(0), NULL);   /* a scalar */
}

/* ------------------------------------------------------------------------------------------------ */
/* Pad                                                                                              */


/* pads: 2*r values (before..., after...) over all dims. form: 0 = attributes (opset 6),
 * 1 = inputs (opset 13), 2 = inputs with an axes input (opset 18; axes = the padded dims, every
 * other one written negative). */
static void pad(sal_shape xs, const int64_t *pads, int mode, float value, int form) {
    char what[160], b[64];
    const int r = xs.ndim;
    int n = snprintf(what, sizeof what, "Pad %s %s form %d pads", tu_pad_modes[mode],
                     sal_shape_str(&xs, b, sizeof b), form);
    for (int i = 0; i < 2 * r && n < (int)sizeof what - 8; i++)
        n += snprintf(what + n, sizeof what - (size_t)n, " %lld", (long long)pads[i]);
    sal_graph *g = tu_pad_graph(xs, pads, mode, value, form);
    cr_assert(g, "%s: no graph", what);
    twin_ok(g, what, -1.f, 1.f, 0);
}

Test(twins_nn, pad_constant) {
    const sal_shape x = tu_shape(4, 2, 3, 4, 5);
    const int64_t p1[] = {0, 0, 1, 2, 0, 0, 2, 1};
    const int64_t crop[] = {0, 0, -1, 1, 0, 1, 1, -2};
    const int64_t all[] = {1, 0, 2, 0, 0, 2, 0, 3};
    const int64_t crops[] = {-1, 0, -2, -1, 0, -1, -1, -3};
    for (int form = 0; form < 3; form++) {
        pad(x, p1, 0, 0.5f, form);
        pad(x, crop, 0, -1.f, form);
        pad(x, all, 0, 0.f, form);
        pad(x, crops, 0, 0.f, form);
    }
    const int64_t p2[] = {2, -1, 0, 3};
    pad(tu_shape(2, 3, 4), p2, 0, 2.f, 1);
    const int64_t gone[] = {0, -3, 0, 0, 2, 0};   /* dim 1 cropped away, then refilled */
    pad(tu_shape(3, 2, 3, 4), gone, 0, 1.5f, 1);
    const int64_t empty[] = {0, -2, 0, 0, -1, 0};   /* y is empty */
    pad(tu_shape(3, 2, 3, 4), empty, 0, 0.f, 1);
    const int64_t big[] = {0, 0, 1, 1, 0, 0, 1, 1};
    pad(tu_shape(4, 2, 16, 40, 40), big, 0, 0.f, 1);
    const int64_t one[] = {3, 2};
    pad(tu_shape(1, 4), one, 0, -0.5f, 1);
    const int64_t none[1] = {0};
    pad(tu_shape(0), none, 0, 1.f, 1);   /* a scalar: no pads */
}

Test(twins_nn, pad_edge_reflect) {
    const sal_shape x = tu_shape(4, 2, 3, 4, 5);
    const int64_t p1[] = {0, 0, 2, 3, 0, 0, 3, 2};
    const int64_t crop[] = {0, 0, -1, 2, 0, 0, 1, -1};
    const int64_t lead[] = {0, 1, 1, 0, 1, 0, 0, 2};
    const int64_t far[] = {0, 0, 7, 9, 0, 0, 5, 11};   /* beyond one reflection */
    const int64_t every[] = {1, 2, 2, 3, 2, 1, 3, 2};
    const int64_t mixed[] = {-1, 2, -1, 4, 0, -1, 3, -2};
    for (int mode = 1; mode <= 2; mode++) {
        pad(x, p1, mode, 0.f, 1);
        pad(x, crop, mode, 0.f, 1);
        pad(x, lead, mode, 0.f, 1);
        pad(x, far, mode, 0.f, 1);
        pad(x, every, mode, 0.f, 1);
        pad(x, mixed, mode, 0.f, 1);
        pad(x, p1, mode, 0.f, 0);
        pad(x, p1, mode, 0.f, 2);
        const int64_t one[] = {0, 2, 0, 3};
        pad(tu_shape(2, 3, 1), one, mode, 0.f, 1);   /* a length-1 dim */
        const int64_t two[] = {5, 6};
        pad(tu_shape(1, 2), two, mode, 0.f, 1);      /* a length-2 dim, far */
        const int64_t cropped1[] = {0, -2, 0, 4, 0, 2, 0, 3};   /* cropped to length 1, padded */
        pad(tu_shape(4, 2, 3, 4, 5), cropped1, mode, 0.f, 1);
    }
}

/* The CUDA backend's padded copy for convolutions with asymmetric pads runs the twin Pad with the
 * arguments of sal_tw_pad_nchw_args: forward must place x at (pt, pl) in zeros, backward must add
 * exactly the interior of gy to gx. The expected values are indexed here by hand. */
Test(twins_nn, pad_nchw_args_copy_and_crop_add) {
    enum { N = 2, C = 3, H = 4, W = 5, PT = 1, PL = 0, PB = 2, PR = 3, HP = H + PT + PB, WP = W + PL + PR };
    uint64_t seed = tu_fresh_seed(), s = seed;
    static float x[N * C * H * W], y[N * C * HP * WP], gy[N * C * HP * WP], gx[N * C * H * W], gx0[N * C * H * W];
    tu_fill(x, N * C * H * W, &s, -1.f, 1.f);
    tu_fill(gy, N * C * HP * WP, &s, -1.f, 1.f);
    tu_fill(gx0, N * C * H * W, &s, -1.f, 1.f);
    memcpy(gx, gx0, sizeof gx);
    sal_tw_args a;
    sal_tw_pad_nchw_args(&a, N, C, H, W, PT, PL, PB, PR);
    a.in[0] = x;
    a.out[0] = y;
    sal_twin_run_one(SAL_TW_pad_fwd, N * C * HP * WP, &a);
    sal_tw_pad_nchw_args(&a, N, C, H, W, PT, PL, PB, PR);
    a.gout[0] = gy;
    a.gin[0] = gx;
    sal_twin_run_one(SAL_TW_pad_bwd, N * C * H * W, &a);
    for (int q = 0; q < N * C; q++)
        for (int yy = 0; yy < HP; yy++)
            for (int xx = 0; xx < WP; xx++) {
                int iy = yy - PT, ix = xx - PL, in = iy >= 0 && iy < H && ix >= 0 && ix < W;
                float want = in ? x[(q * H + iy) * W + ix] : 0.f;
                cr_expect_eq(y[(q * HP + yy) * WP + xx], want, "y[%d,%d,%d] (seed %llu)", q, yy, xx,
                             (unsigned long long)seed);
                if (in)
                    cr_expect_eq(gx[(q * H + iy) * W + ix], gx0[(q * H + iy) * W + ix] + gy[(q * HP + yy) * WP + xx],
                                 "gx[%d,%d,%d] (seed %llu)", q, iy, ix, (unsigned long long)seed);
            }
}
