/* testgraph.c — building small graphs in tests (testgraph.h). */
#include "testgraph.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "testutil.h"

const char *tg_nm(tg_builder *b, const char *p, char *buf) {
    snprintf(buf, 64, "%s%d", p, b->count++);
    return buf;
}

void tg_const(tg_builder *b, const char *name, sal_shape s, float scale) {
    sal_tensor *t = sal_tensor_new(SAL_F32, &s);
    cr_assert_not_null(t);
    tu_fill(t->data, sal_shape_numel(&s), &b->rng, -scale, scale);
    cr_assert_geq(sal_graph_add_const(b->g, name, t), 0);
}

void tg_conv(tg_builder *b, const char *x, char *out, int cin, int cout, int k, int stride, int pad, int dil,
             int group, int relu) {
    char w[64], bi[64], y[64];
    tg_nm(b, "w", w);
    tg_nm(b, "b", bi);
    tg_nm(b, "conv", y);
    tg_const(b, w, tu_shape(4, cout, cin / group, k, k), sqrtf(6.0f / (cin / group * k * k)));
    tg_const(b, bi, tu_shape(1, cout), 0.1f);
    const char *ins[3] = {x, w, bi}, *outs[1] = {y};
    int n = sal_graph_add_node(b->g, "Conv", y, 3, ins, 1, outs);
    cr_assert_geq(n, 0);
    int64_t ks[2] = {k, k}, st[2] = {stride, stride}, pads[4] = {pad, pad, pad, pad}, dl[2] = {dil, dil};
    sal_node_attr_ints(&b->g->nodes[n], "kernel_shape", 2, ks);
    sal_node_attr_ints(&b->g->nodes[n], "strides", 2, st);
    if (pad >= 0) sal_node_attr_ints(&b->g->nodes[n], "pads", 4, pads);
    else sal_node_attr_str(&b->g->nodes[n], "auto_pad", "SAME_UPPER");
    if (dil > 1) sal_node_attr_ints(&b->g->nodes[n], "dilations", 2, dl);
    if (group > 1) sal_node_attr_int(&b->g->nodes[n], "group", group);
    if (!relu) { strcpy(out, y); return; }
    char r[64];
    tg_nm(b, "relu", r);
    const char *ri[1] = {y}, *ro[1] = {r};
    cr_assert_geq(sal_graph_add_node(b->g, "Relu", r, 1, ri, 1, ro), 0);
    strcpy(out, r);
}

sal_node *tg_op(tg_builder *b, const char *type, int n_in, const char **ins, char *out) {
    tg_nm(b, type, out);
    const char *outs[1] = {out};
    int n = sal_graph_add_node(b->g, type, out, n_in, ins, 1, outs);
    cr_assert_geq(n, 0);
    return &b->g->nodes[n];
}

void tg_pool(tg_builder *b, const char *type, const char *x, char *out, int k, int s, int pad, int ceil, int cip) {
    const char *ins[1] = {x};
    sal_node *n = tg_op(b, type, 1, ins, out);
    int64_t ks[2] = {k, k}, st[2] = {s, s}, pads[4] = {pad, pad, pad, pad};
    sal_node_attr_ints(n, "kernel_shape", 2, ks);
    sal_node_attr_ints(n, "strides", 2, st);
    sal_node_attr_ints(n, "pads", 4, pads);
    if (ceil) sal_node_attr_int(n, "ceil_mode", 1);
    if (cip) sal_node_attr_int(n, "count_include_pad", 1);
}

void tg_head(tg_builder *b, const char *x, int c, int classes) {
    char gp[64], fl[64], w[64], bi[64];
    const char *i1[1] = {x};
    tg_op(b, "GlobalAveragePool", 1, i1, gp);
    const char *i2[1] = {gp};
    tg_op(b, "Flatten", 1, i2, fl);
    tg_nm(b, "fcw", w);
    tg_nm(b, "fcb", bi);
    tg_const(b, w, tu_shape(2, classes, c), sqrtf(3.0f / c));
    tg_const(b, bi, tu_shape(1, classes), 0.1f);
    const char *gi[3] = {fl, w, bi}, *go[1] = {"y"};
    int n = sal_graph_add_node(b->g, "Gemm", "fc", 3, gi, 1, go);
    sal_node_attr_int(&b->g->nodes[n], "transB", 1);
    sal_graph_mark_output(b->g, "y");
}

sal_graph *tg_finish(tg_builder *b) {
    sal_error err = {0};
    cr_assert_eq(sal_graph_finalize(b->g, &err), SAL_OK, "%s", err.msg);
    return b->g;
}

sal_graph *tg_mini_resnet(int C, const int *widths) {
    tg_builder b = {sal_graph_new("mini_resnet"), 7, 0};
    sal_shape xs = {4, {-1, C, -1, -1}};
    sal_graph_add_input(b.g, "x", &xs);
    char x[64], y[64], z[64], sc[64], s[64], r[64];
    tg_conv(&b, "x", x, C, 8, 7, 2, 3, 1, 1, 1);
    tg_pool(&b, "MaxPool", x, y, 3, 2, 1, 0, 0);
    strcpy(x, y);
    static const int narrow[3] = {4, 8, 8};
    if (!widths) widths = narrow;
    int cin = 8, blocks[3] = {2, 1, 1};
    for (int stage = 0; stage < 3; stage++)
        for (int i = 0; i < blocks[stage]; i++) {
            int stride = i == 0 && stage > 0 ? 2 : 1, wd = widths[stage];
            tg_conv(&b, x, y, cin, wd, 1, 1, 0, 1, 1, 1);
            tg_conv(&b, y, z, wd, wd, 3, stride, 1, 1, 1, 1);
            tg_conv(&b, z, y, wd, wd * 4, 1, 1, 0, 1, 1, 0);
            if (i == 0) tg_conv(&b, x, sc, cin, wd * 4, 1, stride, 0, 1, 1, 0);
            else strcpy(sc, x);
            const char *ai[2] = {y, sc};
            tg_op(&b, "Add", 2, ai, s);
            const char *ri[1] = {s};
            tg_op(&b, "Relu", 1, ri, r);
            strcpy(x, r);
            cin = wd * 4;
        }
    tg_head(&b, x, cin, 10);
    return tg_finish(&b);
}
