/* test_twins_ops13.c — the CUDA backend's element functions and launch plans of issue 13's ops
 * (kernels/twin_math.h, twin_index.h; host/backend/twin/plan_math.c, plan_index.c), run on the
 * host by sal_twin_run, against the CPU kernels (tu_twin_check), forward and backward, on fresh
 * random inputs. The CPU maps the same element functions over threads (cpu_twin_ops.c), so this
 * checks the device path's plans and argument packing (one launch at a time, no threads) against
 * the CPU's, including empty and scalar shapes. Every check draws a fresh seed, printed on
 * failure. */
#include <criterion/criterion.h>
#include <stdio.h>

#include "testutil.h"

#define TOL 1e-6

typedef unsigned long long ull;

static sal_node *N0(sal_graph *g) { return &g->nodes[0]; }

static sal_graph *node(const char *op, int n_in, const tu_input *ins, int n_out, int opset) {
    sal_graph *g = tu_op_graph(op, n_in, ins, n_out, opset);
    cr_assert(g, "tu_op_graph(%s) failed", op);
    return g;
}

static void twin(sal_graph *g, float lo, float hi, const char *what) {
    const uint64_t seed = tu_fresh_seed();
    tu_twin_result r = tu_twin_check(g, seed, lo, hi, 0);
    cr_assert(r.st == SAL_OK, "%s: %s: %s (seed %llu)", what, sal_status_str(r.st), r.msg, (ull)seed);
    cr_assert(r.fwd_err < TOL, "%s: forward differs by %.3g (seed %llu)", what, r.fwd_err, (ull)seed);
    cr_assert(r.bwd_err < TOL, "%s: backward differs by %.3g (seed %llu)", what, r.bwd_err, (ull)seed);
    sal_graph_free(g);
}

Test(twins13, unary) {
    const sal_shape shapes[] = {tu_shape(3, 2, 5, 7), tu_shape(0), tu_shape(2, 0, 3)};
    static const char *const ops[] = {"Sqrt", "Erf", "Gelu", "Selu", "Elu", "Softplus"};
    for (int s = 0; s < 3; s++)
        for (int k = 0; k < 6; k++) {
            tu_input in[] = {tu_rt(shapes[s])};
            sal_graph *g = node(ops[k], 1, in, 1, 20);
            twin(g, k == 0 ? 0.1f : -3.f, 3.f, ops[k]);
        }
    tu_input in[] = {tu_rt(tu_shape(2, 4, 9))};
    sal_graph *g = node("Gelu", 1, in, 1, 20);
    sal_node_attr_str(N0(g), "approximate", "tanh");
    twin(g, -3.f, 3.f, "Gelu tanh");
}

Test(twins13, pow) {
    const int64_t two = 2;
    tu_input sc[] = {tu_rt(tu_shape(2, 3, 8)), tu_ci(tu_shape(0), &two)};
    twin(node("Pow", 2, sc, 1, 13), -2.f, 2.f, "Pow x^2");
    tu_input bc[] = {tu_rt(tu_shape(3, 2, 3, 1)), tu_rt(tu_shape(2, 1, 5))};
    twin(node("Pow", 2, bc, 1, 13), 0.2f, 2.f, "Pow broadcast");
}

Test(twins13, layernorm) {
    const sal_shape ps = tu_shape(1, 12);
    tu_input rt[] = {tu_rt(tu_shape(3, 2, 5, 12)), tu_rt(ps), tu_rt(ps)};
    twin(node("LayerNormalization", 3, rt, 1, 17), -2.f, 2.f, "LayerNorm runtime Scale, B");
    const float one = 1.5f;
    tu_input sc1[] = {tu_rt(tu_shape(4, 2, 3, 4, 5)), tu_cf(tu_shape(1, 1), &one)};
    sal_graph *g = node("LayerNormalization", 2, sc1, 3, 17);   /* with Mean and InvStdDev */
    sal_node_attr_int(N0(g), "axis", 1);
    twin(g, -2.f, 2.f, "LayerNorm axis 1, one-element Scale, three outputs");
}

Test(twins13, reductions) {
    const int64_t ax[] = {1, -1};
    tu_input in[] = {tu_rt(tu_shape(4, 2, 3, 4, 5)), tu_ci(tu_shape(1, 2), ax)};
    twin(node("ReduceSum", 2, in, 1, 13), -1.f, 1.f, "ReduceSum axes 1,-1");
    sal_graph *g = node("ReduceMax", 1, in, 1, 13);
    sal_node_attr_ints(N0(g), "axes", 2, ax);
    sal_node_attr_int(N0(g), "keepdims", 0);
    twin(g, -1.f, 1.f, "ReduceMax axes 1,-1");
    tu_input gp[] = {tu_rt(tu_shape(4, 2, 3, 6, 7))};
    twin(node("GlobalMaxPool", 1, gp, 1, 1), -1.f, 1.f, "GlobalMaxPool");
}

Test(twins13, index_ops) {
    const int64_t st[] = {1, -1}, en[] = {4, -100}, ax[] = {1, 2}, sp[] = {2, -2};
    tu_input sl[] = {tu_rt(tu_shape(3, 2, 6, 5)), tu_ci(tu_shape(1, 2), st), tu_ci(tu_shape(1, 2), en),
                     tu_ci(tu_shape(1, 2), ax), tu_ci(tu_shape(1, 2), sp)};
    twin(node("Slice", 5, sl, 1, 13), -1.f, 1.f, "Slice");
    const int64_t idx[] = {2, 0, 2};
    tu_input ga[] = {tu_rt(tu_shape(3, 2, 4, 3)), tu_ci(tu_shape(1, 3), idx)};
    sal_graph *g = node("Gather", 2, ga, 1, 13);
    sal_node_attr_int(N0(g), "axis", 1);
    twin(g, -1.f, 1.f, "Gather repeated");
    const int64_t one = 0;
    tu_input g1[] = {tu_rt(tu_shape(3, 2, 4, 3)), tu_ci(tu_shape(0), &one)};
    g = node("Gather", 2, g1, 1, 13);
    sal_node_attr_int(N0(g), "axis", 1);
    twin(g, -1.f, 1.f, "Gather class token");
    const int64_t shape[] = {2, 3, 4};
    tu_input ex[] = {tu_rt(tu_shape(2, 3, 1)), tu_ci(tu_shape(1, 3), shape)};
    twin(node("Expand", 2, ex, 1, 13), -1.f, 1.f, "Expand");
    const int64_t rep[] = {2, 1, 3};
    tu_input ti[] = {tu_rt(tu_shape(3, 2, 3, 2)), tu_ci(tu_shape(1, 3), rep)};
    twin(node("Tile", 2, ti, 1, 13), -1.f, 1.f, "Tile");
    const float cond[] = {1.f, 0.f, 1.f};
    tu_input wh[] = {tu_cf(tu_shape(1, 3), cond), tu_rt(tu_shape(2, 4, 3)), tu_rt(tu_shape(2, 4, 1))};
    twin(node("Where", 3, wh, 1, 16), -1.f, 1.f, "Where");
    tu_input d2s[] = {tu_rt(tu_shape(4, 2, 8, 3, 2))};
    g = node("DepthToSpace", 1, d2s, 1, 13);
    sal_node_attr_int(N0(g), "blocksize", 2);
    sal_node_attr_str(N0(g), "mode", "CRD");
    twin(g, -1.f, 1.f, "DepthToSpace CRD");
    tu_input s2d[] = {tu_rt(tu_shape(4, 2, 3, 4, 6))};
    g = node("SpaceToDepth", 1, s2d, 1, 13);
    sal_node_attr_int(N0(g), "blocksize", 2);
    twin(g, -1.f, 1.f, "SpaceToDepth");
}

Test(twins13, convtranspose) {
    static float w[4 * 3 * 3 * 2];
    static const float b[6] = {0.1f, -0.2f, 0.3f, 0.f, 1.f, -1.f};
    for (int i = 0; i < 72; i++) w[i] = (float)((i * 37) % 11) / 11.f - 0.5f;
    tu_input in[] = {tu_rt(tu_shape(4, 2, 4, 5, 4)), tu_cf(tu_shape(4, 4, 3, 3, 2), w), tu_cf(tu_shape(1, 6), b)};
    sal_graph *g = node("ConvTranspose", 3, in, 1, 11);
    const int64_t st[] = {2, 1}, dl[] = {1, 2}, pads[] = {1, 0, 0, 1};
    sal_node_attr_ints(N0(g), "strides", 2, st);
    sal_node_attr_ints(N0(g), "dilations", 2, dl);
    sal_node_attr_ints(N0(g), "pads", 4, pads);
    sal_node_attr_int(N0(g), "group", 2);
    twin(g, -1.f, 1.f, "ConvTranspose groups 2");
}
