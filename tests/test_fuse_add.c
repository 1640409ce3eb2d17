/* test_fuse_add.c — a Relu or Clip that alone reads a same-shape Add runs inside the Add
 * (engine.c's fusion, sal_bcast_params.act, the CPU's bin_fwd; backends with fuse_add_act) against
 * the same plan with the fusion off: the graph's output and every value's gradient equal, value
 * for value, after a plain and a guided backward pass, in LAYOUT and GEMM convolution modes, on a
 * ResNet-50-shaped graph (every block closes with Add + Relu) and on a graph of the cases around
 * it: Add + Clip, an Add whose sum has a second reader, a broadcasting Add, a Sub, and a fused
 * Relu whose output is captured (what Grad-CAM reads at a ResNet's last block). Each check asserts
 * how many Adds the plan fused (and the reference none), so that none passes vacuously. */
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

static side open_side(const sal_graph *g, int impl, int fuse) {
    side s = {0};
    sal_error err = {0};
    cr_assert_eq(sal_backend_cpu_create(2, &s.be, &err), SAL_OK, "%s", err.msg);
    sal_backend_cpu_set_conv_impl(s.be, impl);
    s.be->fuse_add_act = fuse;
    cr_assert_eq(sal_engine_create(g, s.be, &s.e, &err), SAL_OK, "%s", err.msg);
    return s;
}

static void close_side(side *s) {
    sal_engine_free(s->e);
    s->be->ops->destroy(s->be);
}

static float *read_value(side *s, int v, int grad, int64_t *n) {
    sal_error err = {0};
    *n = sal_shape_numel(sal_engine_shape(s->e, v));
    float *h = malloc(sizeof(float) * (size_t)(*n + 1));
    cr_assert_eq(grad ? sal_engine_read_grad(s->e, v, h, &err) : sal_engine_read(s->e, v, h, &err), SAL_OK,
                 "%s", err.msg);
    return h;
}

static void expect_same(const sal_graph *g, side *a, side *b, int v, int grad, const char *what) {
    int64_t n, nb;
    float *x = read_value(a, v, grad, &n), *y = read_value(b, v, grad, &nb);
    cr_assert_eq(n, nb);
    int64_t bad = 0, first = -1;
    for (int64_t i = 0; i < n; i++)
        if (!(x[i] == y[i])) { if (first < 0) first = i; bad++; }
    cr_expect_eq(bad, 0, "%s: %s of '%s': %lld of %lld elements differ (first [%lld]: fused %g, unfused %g)", what,
                 grad ? "gradient" : "value", g->values[v].name, (long long)bad, (long long)n, (long long)first,
                 first >= 0 ? x[first] : 0.0, first >= 0 ? y[first] : 0.0);
    free(x); free(y);
}

static void check(const sal_graph *g, int impl, int B, int C, int H, int W, int cap, int want_fused,
                  const char *what) {
    side fu = open_side(g, impl, 1), ref = open_side(g, impl, 0);
    sal_shape xs = {4, {B, C, H, W}};
    uint64_t rng = 5;
    float *x = tu_rand_buf((int64_t)B * C * H * W, &rng, -2, 2);
    sal_error err = {0};
    side *sides[2] = {&fu, &ref};
    for (int k = 0; k < 2; k++) {
        cr_assert_eq(sal_engine_plan(sides[k]->e, &xs, SAL_PLAN_GRAD, cap, &err), SAL_OK, "%s", err.msg);
        const float *ins[1] = {x};
        cr_assert_eq(sal_engine_forward(sides[k]->e, ins, &err), SAL_OK, "%s", err.msg);
    }
    cr_assert_eq(sal_engine_n_fused_add(fu.e), want_fused, "%s: %d Adds fused, expected %d", what,
                 sal_engine_n_fused_add(fu.e), want_fused);
    cr_assert_eq(sal_engine_n_fused_add(ref.e), 0, "%s: fused without fuse_add_act", what);
    expect_same(g, &fu, &ref, g->outputs[0], 0, what);
    if (cap >= 0) expect_same(g, &fu, &ref, cap, 0, what);
    const int64_t no = sal_shape_numel(sal_engine_shape(fu.e, g->outputs[0]));
    for (int pass = 0; pass < 2; pass++) {
        float *seed = tu_rand_buf(no, &rng, -1, 1);
        for (int k = 0; k < 2; k++)
            cr_assert_eq(sal_engine_backward(sides[k]->e, seed, pass, 0, &err), SAL_OK, "%s", err.msg);
        char w[160];
        snprintf(w, sizeof w, "%s, pass %d%s", what, pass + 1, pass ? " (guided)" : "");
        for (int v = 0; v < g->n_values; v++)
            if (sal_engine_shape(fu.e, v)) expect_same(g, &fu, &ref, v, 1, w);
        free(seed);
    }
    /* a forward-only plan fuses the same Adds and gives the same output */
    for (int k = 0; k < 2; k++) {
        cr_assert_eq(sal_engine_plan(sides[k]->e, &xs, SAL_PLAN_FORWARD, -1, &err), SAL_OK, "%s", err.msg);
        const float *ins[1] = {x};
        cr_assert_eq(sal_engine_forward(sides[k]->e, ins, &err), SAL_OK, "%s", err.msg);
    }
    cr_expect_eq(sal_engine_n_fused_add(fu.e), want_fused, "%s, forward plan", what);
    expect_same(g, &fu, &ref, g->outputs[0], 0, what);
    free(x);
    close_side(&fu);
    close_side(&ref);
}

/* a constant scalar (shape ()) of value v */
static void scalar(tg_builder *b, const char *name, float v) {
    sal_shape s = {0, {0}};
    sal_tensor *t = sal_tensor_new(SAL_F32, &s);
    cr_assert_not_null(t);
    ((float *)t->data)[0] = v;
    cr_assert_geq(sal_graph_add_const(b->g, name, t), 0);
}

/* The cases around the fusion, on an (N, 4, H, W) input. Fused: Add + Clip, Add + Relu whose
 * output is the captured value; not fused: an Add whose sum has a second reader, a broadcasting
 * Add, a Sub + Relu. */
static sal_graph *cases_graph(int *captured) {
    tg_builder b = {sal_graph_new("fuse_add"), 17, 0};
    sal_shape xs = {4, {-1, 4, -1, -1}};
    sal_graph_add_input(b.g, "x", &xs);
    char c1[64], c2[64], a1[64], k1[64], c3[64], a2[64], r2[64], m2[64], bc[64], a3[64], r3[64], s4[64], r4[64],
        c5[64], a5[64], r5[64];
    tg_conv(&b, "x", c1, 4, 8, 3, 1, 1, 1, 1, 1);
    tg_conv(&b, c1, c2, 8, 8, 3, 1, 1, 1, 1, 0);
    const char *i1[2] = {c2, c1};
    tg_op(&b, "Add", 2, i1, a1);
    char lo[64], hi[64];
    scalar(&b, tg_nm(&b, "lo", lo), 0.f);
    scalar(&b, tg_nm(&b, "hi", hi), 0.5f);
    const char *ik[3] = {a1, lo, hi};
    tg_op(&b, "Clip", 3, ik, k1);                      /* fused: a ReLU6-like Clip [0, 0.5] */
    tg_conv(&b, k1, c3, 8, 8, 1, 1, 0, 1, 1, 0);
    const char *i2[2] = {c3, k1};
    tg_op(&b, "Add", 2, i2, a2);
    const char *ir2[1] = {a2};
    tg_op(&b, "Relu", 1, ir2, r2);                     /* not fused: the sum has a second reader */
    const char *im2[2] = {r2, a2};
    tg_op(&b, "Mul", 2, im2, m2);
    tg_nm(&b, "bias", bc);
    tg_const(&b, bc, tu_shape(4, 1, 8, 1, 1), 0.5f);
    const char *i3[2] = {m2, bc};
    tg_op(&b, "Add", 2, i3, a3);                       /* not fused: broadcasting */
    const char *ir3[1] = {a3};
    tg_op(&b, "Relu", 1, ir3, r3);
    const char *i4[2] = {r3, k1};
    tg_op(&b, "Sub", 2, i4, s4);                       /* not fused: a Sub */
    const char *ir4[1] = {s4};
    tg_op(&b, "Relu", 1, ir4, r4);
    tg_conv(&b, r4, c5, 8, 8, 3, 1, 1, 1, 1, 0);
    const char *i5[2] = {c5, r4};
    tg_op(&b, "Add", 2, i5, a5);
    const char *ir5[1] = {a5};
    tg_op(&b, "Relu", 1, ir5, r5);                     /* fused, and captured */
    tg_head(&b, r5, 8, 5);
    sal_graph *g = tg_finish(&b);
    *captured = -1;
    for (int v = 0; v < g->n_values; v++)
        if (!strcmp(g->values[v].name, r5)) *captured = v;
    cr_assert_geq(*captured, 0);
    return g;
}

TestSuite(fuse_add, .timeout = 300);

Test(fuse_add, resnet_shaped_equals_unfused) {
    static const int wide[3] = {16, 32, 32};
    sal_graph *g = tg_mini_resnet(3, wide);
    int blocks = 0;   /* every bottleneck block closes with Add + Relu */
    for (int k = 0; k < g->n_nodes; k++) blocks += g->nodes[k].op == SAL_OP_ADD;
    cr_assert_gt(blocks, 0);
    check(g, SAL_CONV_IMPL_LAYOUT, 2, 3, 48, 48, -1, blocks, "mini ResNet, LAYOUT");
    check(g, SAL_CONV_IMPL_GEMM, 2, 3, 48, 48, -1, blocks, "mini ResNet, GEMM");
    sal_graph_free(g);
}

Test(fuse_add, cases_equal_unfused) {
    int cap;
    sal_graph *g = cases_graph(&cap);
    check(g, SAL_CONV_IMPL_LAYOUT, 2, 4, 12, 10, cap, 2, "cases, LAYOUT, captured");
    check(g, SAL_CONV_IMPL_GEMM, 2, 4, 12, 10, -1, 2, "cases, GEMM");
    check(g, SAL_CONV_IMPL_DNNL, 1, 4, 9, 13, cap, 2, "cases, DNNL, captured");
    sal_graph_free(g);
}
