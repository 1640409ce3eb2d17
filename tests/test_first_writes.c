/* test_first_writes.c — first writes in backward passes (engine.c, plan_first_writes; the CPU's
 * Relu, Add/Sub and oneDNN backward-data kernels write a gradient's first contribution, every
 * other kernel is given zeros first; sal_op_call.gin_set) against the zero-then-add pass that
 * every backend without grad_set runs: every gradient of every value equal, value for value,
 * after two backward passes in a row on one forward (the second over the first's leftovers,
 * guided the second time), in GEMM and LAYOUT convolution modes, on a ResNet-50-shaped graph
 * and on a graph of the awkward cases: a value read twice by one node (Add(x, x), Mul(x, x)),
 * Add(m, m) as m's only reader, a Sub whose second operand's first contribution is negated, broadcasting, max pooling, a
 * Concat, a value with three readers, an Add operand that shares the Add's gradient memory and a
 * Sub operand that must not (negated). A pass that stops at a captured value still zeroes what
 * it does not reach. Each check asserts that the plan has first writes (and the reference
 * none), so that none passes vacuously. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/cpu_conv_dnnl.h"
#include "engine/engine.h"
#include "testgraph.h"
#include "testutil.h"

typedef struct side {
    sal_backend *be;
    sal_engine *e;
} side;

static side open_side(const sal_graph *g, int impl, int grad_set) {
    side s = {0};
    sal_error err = {0};
    cr_assert_eq(sal_backend_cpu_create(2, &s.be, &err), SAL_OK, "%s", err.msg);
    sal_backend_cpu_set_conv_impl(s.be, impl);
    s.be->grad_set = grad_set;
    cr_assert_eq(sal_engine_create(g, s.be, &s.e, &err), SAL_OK, "%s", err.msg);
    return s;
}

static void close_side(side *s) {
    sal_engine_free(s->e);
    s->be->ops->destroy(s->be);
}

static void plan_forward(side *s, const sal_shape *xs, int cap, const float *x) {
    sal_error err = {0};
    cr_assert_eq(sal_engine_plan(s->e, xs, SAL_PLAN_GRAD, cap, &err), SAL_OK, "%s", err.msg);
    const float *ins[1] = {x};
    cr_assert_eq(sal_engine_forward(s->e, ins, &err), SAL_OK, "%s", err.msg);
}

static void backward(side *s, const float *seed, int guided, int stop) {
    sal_error err = {0};
    cr_assert_eq(sal_engine_backward(s->e, seed, guided, stop, &err), SAL_OK, "%s", err.msg);
}

static float *read_grad(side *s, int v, int64_t *n) {
    sal_error err = {0};
    *n = sal_shape_numel(sal_engine_shape(s->e, v));
    float *h = malloc(sizeof(float) * (size_t)(*n + 1));
    cr_assert_eq(sal_engine_read_grad(s->e, v, h, &err), SAL_OK, "%s", err.msg);
    return h;
}

/* every value's gradient: equal (== : +0 written against -0 added to +0 is no difference) */
static void expect_same_grads(const sal_graph *g, side *a, side *b, const char *what) {
    int compared = 0;
    for (int v = 0; v < g->n_values; v++) {
        if (!sal_engine_shape(a->e, v)) continue;
        int64_t n, nb;
        float *ga = read_grad(a, v, &n), *gb = read_grad(b, v, &nb);
        cr_assert_eq(n, nb);
        int64_t bad = 0, first = -1;
        for (int64_t i = 0; i < n; i++)
            if (!(ga[i] == gb[i])) { if (first < 0) first = i; bad++; }
        cr_expect_eq(bad, 0, "%s: gradient of '%s': %lld of %lld elements differ (first [%lld]: %g, zero-then-add %g)",
                     what, g->values[v].name, (long long)bad, (long long)n, (long long)first,
                     first >= 0 ? ga[first] : 0.0, first >= 0 ? gb[first] : 0.0);
        compared++;
        free(ga); free(gb);
    }
    cr_assert_gt(compared, 0);
}

static void check(const sal_graph *g, int impl, int B, int C, int H, int W, const char *what) {
    side fw = open_side(g, impl, 1), ref = open_side(g, impl, 0);
    sal_shape xs = {4, {B, C, H, W}};
    uint64_t rng = 31;
    float *x = tu_rand_buf((int64_t)B * C * H * W, &rng, -2, 2);
    plan_forward(&fw, &xs, -1, x);
    plan_forward(&ref, &xs, -1, x);
    cr_assert_gt(sal_engine_n_first_writes(fw.e), 0, "%s: no first writes planned", what);
    cr_assert_eq(sal_engine_n_first_writes(ref.e), 0, "%s: first writes without grad_set", what);
    /* an Add operand only that Add reads shares the output's gradient memory (NCHW values:
     * their pointers are given out), never without grad_set */
    int shared = 0;
    for (int k = 0; k < g->n_nodes; k++) {
        const sal_node *n = &g->nodes[k];
        if (n->op != SAL_OP_ADD || n->n_in != 2 || n->in[0] == n->in[1]) continue;
        const float *go = sal_engine_grad_dev(fw.e, n->out[0]);
        for (int i = 0; i < 2; i++) {
            const float *gi = sal_engine_grad_dev(fw.e, n->in[i]);
            shared += go && gi == go;
            cr_expect(!sal_engine_grad_dev(ref.e, n->out[0]) ||
                      sal_engine_grad_dev(ref.e, n->in[i]) != sal_engine_grad_dev(ref.e, n->out[0]));
        }
    }
    if (impl == SAL_CONV_IMPL_GEMM) cr_expect_gt(shared, 0, "%s: no Add operand shares its output's gradient", what);
    const int64_t no = sal_shape_numel(sal_engine_shape(fw.e, g->outputs[0]));
    for (int pass = 0; pass < 2; pass++) {   /* the second over the first's gradients */
        float *seed = tu_rand_buf(no, &rng, -1, 1);
        backward(&fw, seed, pass, 0);
        backward(&ref, seed, pass, 0);
        char w[160];
        snprintf(w, sizeof w, "%s, pass %d%s", what, pass + 1, pass ? " (guided)" : "");
        expect_same_grads(g, &fw, &ref, w);
        free(seed);
    }
    free(x);
    close_side(&fw);
    close_side(&ref);
}

/* The awkward cases, on an (N, 4, H, W) input with even H, W. */
static sal_graph *odd_graph(void) {
    tg_builder b = {sal_graph_new("first_writes"), 11, 0};
    sal_shape xs = {4, {-1, 4, -1, -1}};
    sal_graph_add_input(b.g, "x", &xs);
    char c1[64], a[64], m[64], d[64], r[64], s[64], bc[64], bb[64], p[64], c2[64], e[64], cat[64], c3[64], c4[64],
        q[64];
    tg_conv(&b, "x", c1, 4, 8, 3, 1, 1, 1, 1, 1);
    const char *i_aa[2] = {c1, c1};
    tg_op(&b, "Add", 2, i_aa, a);          /* one value read twice: no first write, zeroed */
    const char *i_mm[2] = {a, a};
    tg_op(&b, "Mul", 2, i_mm, m);          /* the same, through a kernel that only adds */
    const char *i_dd[2] = {m, m};
    tg_op(&b, "Add", 2, i_dd, d);          /* m's only reader, twice: no first write either */
    const char *i_r[1] = {d};
    tg_op(&b, "Relu", 1, i_r, r);          /* a Relu no Conv fuses */
    const char *i_s[2] = {r, c1};
    tg_op(&b, "Sub", 2, i_s, s);           /* c1's first write, negated; Add(c1, c1) adds */
    tg_nm(&b, "bias", bc);
    tg_const(&b, bc, tu_shape(4, 1, 8, 1, 1), 0.5f);
    const char *i_b[2] = {s, bc};
    tg_op(&b, "Add", 2, i_b, bb);          /* broadcasting: zeroed first */
    tg_pool(&b, "MaxPool", bb, p, 2, 2, 0, 0, 0);
    tg_conv(&b, p, c2, 8, 8, 1, 1, 0, 1, 1, 0);
    const char *i_e[2] = {c2, p};
    tg_op(&b, "Add", 2, i_e, e);           /* p: three readers */
    const char *i_c[2] = {e, p};
    sal_node *cn = tg_op(&b, "Concat", 2, i_c, cat);
    sal_node_attr_int(cn, "axis", 1);
    tg_conv(&b, cat, c3, 16, 8, 3, 1, 1, 1, 1, 1);
    tg_conv(&b, c3, c4, 8, 8, 1, 1, 0, 1, 1, 0);
    const char *i_q[2] = {c3, c4};
    tg_op(&b, "Sub", 2, i_q, q);           /* c4 read only here, but negated: never aliased */
    tg_head(&b, q, 8, 5);
    return tg_finish(&b);
}

TestSuite(first_writes, .timeout = 300);

Test(first_writes, resnet_shaped_equals_zero_then_add) {
    static const int wide[3] = {16, 32, 32};
    sal_graph *g = tg_mini_resnet(3, wide);
    check(g, SAL_CONV_IMPL_LAYOUT, 2, 3, 48, 48, "mini ResNet, LAYOUT");
    check(g, SAL_CONV_IMPL_GEMM, 2, 3, 48, 48, "mini ResNet, GEMM");
    sal_graph_free(g);
}

Test(first_writes, awkward_graph_equals_zero_then_add) {
    sal_graph *g = odd_graph();
    check(g, SAL_CONV_IMPL_LAYOUT, 2, 4, 16, 12, "awkward graph, LAYOUT");
    check(g, SAL_CONV_IMPL_GEMM, 2, 4, 16, 12, "awkward graph, GEMM");
    check(g, SAL_CONV_IMPL_DNNL, 1, 4, 10, 14, "awkward graph, DNNL");
    sal_graph_free(g);
}

/* A pass that stops at a captured value after a full one: the captured gradient equals the
 * reference's, and the input's, never reached, reads as zeros (not the full pass's leftovers). */
Test(first_writes, early_stop_zeroes_what_it_skips) {
    sal_graph *g = odd_graph();
    int cap = -1;
    for (int v = 0; v < g->n_values; v++)
        if (!strncmp(g->values[v].name, "MaxPool", 7)) cap = v;
    cr_assert_geq(cap, 0);
    side fw = open_side(g, SAL_CONV_IMPL_LAYOUT, 1), ref = open_side(g, SAL_CONV_IMPL_LAYOUT, 0);
    sal_shape xs = {4, {1, 4, 16, 16}};
    uint64_t rng = 8;
    float *x = tu_rand_buf(4 * 16 * 16, &rng, -2, 2), *seed = tu_rand_buf(5, &rng, -1, 1);
    plan_forward(&fw, &xs, cap, x);
    plan_forward(&ref, &xs, cap, x);
    cr_assert_gt(sal_engine_n_first_writes(fw.e), 0);
    backward(&fw, seed, 0, 0);
    backward(&fw, seed, 0, 1);
    backward(&ref, seed, 0, 1);
    int64_t n, nr;
    float *gc = read_grad(&fw, cap, &n), *gr = read_grad(&ref, cap, &nr);
    cr_assert_eq(n, nr);
    int nz = 0;
    for (int64_t i = 0; i < n; i++) {
        cr_expect(gc[i] == gr[i], "captured gradient [%lld]: %g against %g", (long long)i, gc[i], gr[i]);
        nz += gc[i] != 0;
    }
    cr_assert_gt(nz, 0, "the captured gradient is all zeros");
    free(gc); free(gr);
    float *gx = read_grad(&fw, g->inputs[0], &n);
    int64_t left = 0;
    for (int64_t i = 0; i < n; i++) left += gx[i] != 0;
    cr_expect_eq(left, 0, "%lld input-gradient elements kept the full pass's values", (long long)left);
    free(gx); free(x); free(seed);
    close_side(&fw);
    close_side(&ref);
    sal_graph_free(g);
}
