/* test_ops_nn.c — Conv, BatchNormalization, MaxPool, AveragePool, GlobalAveragePool, Gemm, MatMul
 * and LRN on the CPU kernels: forward against naive double-precision references written here,
 * gradients against central finite differences (tu_grad_check; MaxPool with a harness of its own
 * whose inputs keep every window's maximum unique), statuses for bad attributes and shapes, and
 * the ONNX conformance cases of these ops (libonnx-testdata) run through one-node graphs.
 *
 * Every test draws a fresh seed (tu_fresh_seed) and prints it in its failure messages.
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "testutil.h"
#include "ops/op_decls.h"

/* ------------------------------------------------------------------------------------------------ */
/* Helpers                                                                                          */

#define ULL(s) ((unsigned long long)(s))

static sal_shape mkshape(int nd, const int64_t *d) {
    sal_shape s = {nd, {0}};
    for (int i = 0; i < nd; i++) s.d[i] = d[i];
    return s;
}
#define SHP(...) mkshape((int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), (int64_t[]){__VA_ARGS__})
static const sal_shape SHP0 = {0, {0}};         /* rank-0 (scalar) */
static const sal_shape ABSENT = {-1, {0}};       /* absent optional input */


/* max |y - ref| / max(1, max |ref|) */
static double rel_err(const float *y, const double *ref, int64_t n) {
    double md = 0, mr = 1;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)y[i] - ref[i]);
        if (d > md || isnan(d)) md = isnan(d) ? INFINITY : d;
        if (fabs(ref[i]) > mr) mr = fabs(ref[i]);
    }
    return md / mr;
}

static void set_ints(sal_graph *g, const char *name, int n, const int64_t *v) {
    cr_assert_eq(sal_node_attr_ints(&g->nodes[0], name, n, v), SAL_OK);
}
static void set_int(sal_graph *g, const char *name, int64_t v) {
    cr_assert_eq(sal_node_attr_int(&g->nodes[0], name, v), SAL_OK);
}
static void set_float(sal_graph *g, const char *name, float v) {
    cr_assert_eq(sal_node_attr_float(&g->nodes[0], name, v), SAL_OK);
}
static void set_str(sal_graph *g, const char *name, const char *v) {
    cr_assert_eq(sal_node_attr_str(&g->nodes[0], name, v), SAL_OK);
}

/* Infer status of node 0 (via a gradient-check run that stops at infer on failure). */
static sal_status infer_status(sal_graph *g, char *msg, size_t len) {
    tu_grad_result r = tu_grad_check(g, 1, -1.f, 1.f, 1e-2f, 4);
    snprintf(msg, len, "%s", r.msg);
    return r.st;
}

static void expect_shape(const sal_shape *got, const sal_shape *want, const char *what, uint64_t seed) {
    char a[128], b[128];
    cr_assert(sal_shape_eq(got, want), "%s: output shape %s, expected %s (seed %llu)", what,
              sal_shape_str(got, a, sizeof a), sal_shape_str(want, b, sizeof b), ULL(seed));
}

/* ------------------------------------------------------------------------------------------------ */
/* A harness of our own: infer + forward + backward of node 0 with given data and output gradient. */
/* ins[i]: data of every input (runtime or constant, NULL when absent); gin[i] receives a malloc'd */
/* gradient for runtime inputs (NULL for constants).                                              */

typedef struct nn_run {
    sal_shape out_shape;
    float *out;
    float *gin[8];
} nn_run;

static void nn_run_free(nn_run *r) {
    free(r->out);
    for (int i = 0; i < 8; i++) free(r->gin[i]);
}

static sal_status nn_run_node(sal_graph *g, const float *const *ins, const float *gout, nn_run *r,
                              sal_error *err) {
    memset(r, 0, sizeof *r);
    const sal_node *n = &g->nodes[0];
    const sal_op_def *def = sal_op_lookup(n->op_type);
    sal_shape in_shape[8], out_shape[4];
    const sal_shape *in_shape_p[8] = {0}, *out_shape_p[4] = {0};
    int in_dtype[8] = {0}, out_dtype[4] = {0};
    const sal_tensor *in_const[8] = {0};
    int runtime[8] = {0};
    for (int i = 0; i < n->n_in; i++) {
        if (n->in[i] < 0) continue;
        const sal_value *v = &g->values[n->in[i]];
        in_shape[i] = v->konst ? v->konst->shape : v->decl;
        in_dtype[i] = SAL_F32;
        in_const[i] = v->konst;
        runtime[i] = !v->konst;
        in_shape_p[i] = &in_shape[i];
    }
    sal_op_ctx ctx = {0};
    ctx.g = g;
    ctx.node = n;
    ctx.n_in = n->n_in;
    ctx.in_shape = in_shape_p;
    ctx.in_dtype = in_dtype;
    ctx.in_const = in_const;
    ctx.n_out = n->n_out;
    ctx.out_shape = out_shape;
    ctx.out_dtype = out_dtype;
    ctx.err = err;
    sal_status st = def->infer(&ctx);
    if (st) { free(ctx.params); return st; }
    float *outs[4] = {0}, *scratch = calloc(ctx.scratch_floats + 1, sizeof(float));
    for (int i = 0; i < n->n_out; i++) {
        outs[i] = calloc((size_t)sal_shape_numel(&out_shape[i]) + 1, sizeof(float));
        out_shape_p[i] = &out_shape[i];
    }
    const float *gouts[4] = {gout};
    sal_op_call c = {0};
    c.node = n;
    c.params = ctx.params;
    c.n_in = n->n_in;
    c.n_out = n->n_out;
    c.in = ins;
    c.in_shape = in_shape_p;
    c.out = outs;
    c.out_shape = out_shape_p;
    c.gout = gouts;
    c.gin = r->gin;
    c.scratch = scratch;
    c.threads = 2;
    st = sal_cpu_forward(&c, err);
    if (!st && gout) {
        for (int i = 0; i < n->n_in; i++)
            if (runtime[i]) r->gin[i] = calloc((size_t)sal_shape_numel(&in_shape[i]) + 1, sizeof(float));
        st = sal_cpu_backward(&c, err);
    }
    r->out_shape = out_shape[0];
    r->out = outs[0];
    for (int i = 1; i < n->n_out; i++) free(outs[i]);
    free(scratch);
    free(ctx.params);
    return st;
}

/* ------------------------------------------------------------------------------------------------ */
/* Conv                                                                                             */

typedef struct conv_case {
    char name[32];                /* arrays, not pointers: Criterion copies parameters into its workers */
    int nsp;                      /* 1 or 2 spatial dims (1-D: h = kh = 1) */
    int64_t n, c, h, w, m, kh, kw, group;
    int64_t sh, sw, dh, dw;
    int64_t pt, pl, pb, pr;       /* the padding the case means (for auto_pad: worked out by hand) */
    char auto_pad[16];            /* "": pads attribute */
    int bias;
    int64_t oh, ow;               /* expected output size (by hand) */
    int runtime_w;                /* W and B are runtime inputs: their gradients are checked too */
    int kernel_attr;              /* also set kernel_shape */
} conv_case;

static conv_case conv_cases[] = {
    /* name            nsp n  c  h   w   m  kh kw g  sh sw dh dw pt pl pb pr auto_pad      bias oh ow rw ka */
    {"plain3x3_pad1",   2, 2, 3, 7,  6,  4, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, "",          1, 7, 6, 0, 1},
    {"stride2",         2, 2, 3, 9,  8,  4, 3, 3, 1, 2, 2, 1, 1, 1, 1, 1, 1, "",          0, 5, 4, 0, 0},
    {"dilation2",       2, 1, 2, 9,  9,  3, 3, 3, 1, 1, 1, 2, 2, 2, 2, 2, 2, "",          1, 9, 9, 0, 1},
    {"groups2",         2, 2, 4, 6,  7,  6, 3, 3, 2, 1, 1, 1, 1, 1, 1, 1, 1, "",          1, 6, 7, 0, 0},
    {"dw3x3_s2",        2, 2, 5, 9,  10, 5, 3, 3, 5, 2, 2, 1, 1, 0, 0, 1, 1, "",          1, 4, 5, 0, 0},
    {"dw5x5_s2",        2, 2, 4, 11, 12, 4, 5, 5, 4, 2, 2, 1, 1, 1, 1, 2, 2, "",          0, 5, 6, 0, 1},
    {"dw3x3_s1",        2, 2, 3, 8,  8,  3, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, "",          1, 8, 8, 0, 0},
    {"dw5x5_s1",        2, 1, 3, 7,  9,  3, 5, 5, 3, 1, 1, 1, 1, 2, 2, 2, 2, "",          1, 7, 9, 0, 0},
    {"dw_multiplier2",  2, 2, 3, 7,  7,  6, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, "",          1, 7, 7, 0, 0},
    {"dw_dilation2",    2, 1, 2, 8,  8,  2, 3, 3, 2, 1, 1, 2, 2, 2, 2, 2, 2, "",          0, 8, 8, 0, 0},
    {"dw3x3_s2_oddw",   2, 2, 3, 9,  11, 3, 3, 3, 3, 2, 2, 1, 1, 0, 0, 1, 1, "",            1, 4, 5, 0, 0},
    {"dw5x5_s2_odd",    2, 1, 2, 9,  9,  4, 5, 5, 2, 2, 2, 1, 1, 1, 1, 1, 1, "",            1, 4, 4, 0, 0},
    {"dw_stride21",     2, 2, 3, 8,  7,  3, 3, 3, 3, 2, 1, 1, 1, 1, 1, 1, 1, "",            1, 4, 7, 0, 0},
    {"dw_stride12",     2, 2, 3, 7,  9,  3, 3, 3, 3, 1, 2, 1, 1, 1, 1, 1, 1, "",            1, 7, 5, 0, 0},
    {"dw_stride3",      2, 1, 3, 10, 10, 3, 3, 3, 3, 3, 3, 1, 1, 1, 1, 1, 1, "",            0, 4, 4, 0, 0},
    {"dw7x7",           2, 1, 2, 9,  9,  2, 7, 7, 2, 1, 1, 1, 1, 3, 3, 3, 3, "",            1, 9, 9, 0, 0},
    {"dw_single_chan",  2, 2, 1, 6,  6,  3, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, "",            1, 6, 6, 0, 0},
    {"pointwise",       2, 2, 5, 6,  7,  4, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, "",          1, 6, 7, 0, 1},
    {"pointwise_nobias",2, 2, 5, 6,  7,  4, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, "",            0, 6, 7, 0, 0},
    {"pointwise_g2",    2, 2, 4, 5,  5,  6, 1, 1, 2, 1, 1, 1, 1, 0, 0, 0, 0, "",          1, 5, 5, 0, 0},
    {"pointwise_s2",    2, 2, 3, 7,  7,  4, 1, 1, 1, 2, 2, 1, 1, 0, 0, 0, 0, "",          1, 4, 4, 0, 0},
    {"asym_pads",       2, 2, 2, 7,  5,  3, 3, 3, 1, 2, 1, 1, 1, 1, 0, 2, 1, "",          1, 4, 4, 0, 0},
    {"stem_pads0011",   2, 1, 3, 16, 16, 8, 3, 3, 1, 2, 2, 1, 1, 0, 0, 1, 1, "",          1, 8, 8, 0, 0},
    {"stride_gt_kernel",2, 1, 2, 8,  8,  3, 2, 2, 1, 3, 3, 1, 1, 0, 0, 0, 0, "",            1, 3, 3, 0, 0},
    {"same_upper",      2, 2, 3, 7,  8,  4, 3, 3, 1, 2, 2, 1, 1, 1, 0, 1, 1, "SAME_UPPER",  1, 4, 4, 0, 0},
    {"same_lower",      2, 2, 3, 7,  8,  4, 3, 3, 1, 2, 2, 1, 1, 1, 1, 1, 0, "SAME_LOWER",  1, 4, 4, 0, 0},
    {"same_upper_dw",   2, 2, 4, 7,  8,  4, 3, 3, 4, 2, 2, 1, 1, 1, 0, 1, 1, "SAME_UPPER",  0, 4, 4, 0, 0},
    {"valid",           2, 2, 3, 7,  8,  4, 3, 3, 1, 2, 2, 1, 1, 0, 0, 0, 0, "VALID",       1, 3, 3, 0, 0},
    {"conv1d",          1, 2, 3, 1,  10, 4, 1, 3, 1, 1, 2, 1, 1, 0, 1, 0, 2, "",          1, 1, 6, 0, 1},
    {"conv1d_dw_dil2",  1, 2, 4, 1,  12, 4, 1, 5, 4, 1, 1, 1, 2, 0, 4, 0, 4, "",          0, 1, 12, 0, 0},
    {"conv1d_same",     1, 1, 2, 1,  9,  3, 1, 4, 1, 1, 2, 1, 1, 0, 1, 0, 2, "SAME_UPPER",  1, 1, 5, 0, 0},
    /* large enough for the kernels' OpenMP loops to run on several threads */
    {"big_general",     2, 2, 8, 24, 20, 8, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, "",            1, 24, 20, 0, 0},
    {"big_depthwise",   2, 2, 16, 24, 24, 16, 3, 3, 16, 1, 1, 1, 1, 1, 1, 1, 1, "",         1, 24, 24, 0, 0},
    {"big_dw5x5_s2",    2, 2, 16, 24, 24, 16, 5, 5, 16, 2, 2, 1, 1, 1, 1, 2, 2, "",         1, 12, 12, 0, 0},
    {"rt_w_general",    2, 2, 4, 6,  5,  6, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 0, "",          1, 3, 4, 1, 0},
    {"rt_w_depthwise",  2, 2, 3, 7,  7,  6, 3, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, "",          1, 4, 4, 1, 0},
    {"rt_w_pointwise",  2, 2, 4, 5,  6,  3, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, "",          1, 5, 6, 1, 0},
};

/* y (N, M, OH, OW) in double, straight from the definition. */
static void ref_conv(const conv_case *cc, const float *x, const float *w, const float *b, double *y) {
    int64_t cg = cc->c / cc->group, mg = cc->m / cc->group;
    for (int64_t n = 0; n < cc->n; n++)
        for (int64_t m = 0; m < cc->m; m++)
            for (int64_t oy = 0; oy < cc->oh; oy++)
                for (int64_t ox = 0; ox < cc->ow; ox++) {
                    double acc = b ? b[m] : 0.0;
                    int64_t g = m / mg;
                    for (int64_t cl = 0; cl < cg; cl++)
                        for (int64_t ky = 0; ky < cc->kh; ky++)
                            for (int64_t kx = 0; kx < cc->kw; kx++) {
                                int64_t iy = oy * cc->sh - cc->pt + ky * cc->dh;
                                int64_t ix = ox * cc->sw - cc->pl + kx * cc->dw;
                                if (iy < 0 || iy >= cc->h || ix < 0 || ix >= cc->w) continue;
                                double xv = x[((n * cc->c + g * cg + cl) * cc->h + iy) * cc->w + ix];
                                double wv = w[((m * cg + cl) * cc->kh + ky) * cc->kw + kx];
                                acc += xv * wv;
                            }
                    y[((n * cc->m + m) * cc->oh + oy) * cc->ow + ox] = acc;
                }
}

static sal_shape conv_x_shape(const conv_case *cc) {
    return cc->nsp == 2 ? SHP(cc->n, cc->c, cc->h, cc->w) : SHP(cc->n, cc->c, cc->w);
}
static sal_shape conv_w_shape(const conv_case *cc) {
    int64_t cg = cc->c / cc->group;
    return cc->nsp == 2 ? SHP(cc->m, cg, cc->kh, cc->kw) : SHP(cc->m, cg, cc->kw);
}
static sal_shape conv_y_shape(const conv_case *cc) {
    return cc->nsp == 2 ? SHP(cc->n, cc->m, cc->oh, cc->ow) : SHP(cc->n, cc->m, cc->ow);
}

static void conv_attrs(sal_graph *g, const conv_case *cc) {
    if (cc->group != 1) set_int(g, "group", cc->group);
    if (cc->nsp == 2) {
        int64_t st[2] = {cc->sh, cc->sw}, dl[2] = {cc->dh, cc->dw};
        int64_t pads[4] = {cc->pt, cc->pl, cc->pb, cc->pr};
        int64_t ks[2] = {cc->kh, cc->kw};
        set_ints(g, "strides", 2, st);
        set_ints(g, "dilations", 2, dl);
        if (!cc->auto_pad[0]) set_ints(g, "pads", 4, pads);
        if (cc->kernel_attr) set_ints(g, "kernel_shape", 2, ks);
    } else {
        int64_t st[1] = {cc->sw}, dl[1] = {cc->dw}, pads[2] = {cc->pl, cc->pr}, ks[1] = {cc->kw};
        set_ints(g, "strides", 1, st);
        set_ints(g, "dilations", 1, dl);
        if (!cc->auto_pad[0]) set_ints(g, "pads", 2, pads);
        if (cc->kernel_attr) set_ints(g, "kernel_shape", 1, ks);
    }
    if (cc->auto_pad[0]) set_str(g, "auto_pad", cc->auto_pad);
}

static sal_graph *conv_graph(const conv_case *cc, const float *w, const float *b) {
    tu_input ins[3] = {{conv_x_shape(cc), NULL, NULL},
                       {conv_w_shape(cc), cc->runtime_w ? NULL : w, NULL},
                       {cc->bias ? SHP(cc->m) : ABSENT, cc->runtime_w ? NULL : b, NULL}};
    sal_graph *g = tu_node_graph("Conv", cc->bias ? 3 : 2, ins, 1);
    cr_assert(g);
    conv_attrs(g, cc);
    return g;
}

ParameterizedTestParameters(conv, forward) {
    return cr_make_param_array(conv_case, conv_cases, sizeof conv_cases / sizeof conv_cases[0]);
}

ParameterizedTest(conv_case *cc, conv, forward) {
    uint64_t seed = tu_fresh_seed(), s = seed;
    sal_shape xs = conv_x_shape(cc), ws = conv_w_shape(cc);
    float *x = tu_rand_buf(sal_shape_numel(&xs), &s, -1.f, 1.f);
    float *w = tu_rand_buf(sal_shape_numel(&ws), &s, -1.f, 1.f);
    float *b = tu_rand_buf(cc->m, &s, -1.f, 1.f);
    sal_graph *g = conv_graph(cc, w, cc->bias ? b : NULL);
    const float *rt[3] = {x, w, b};
    float *y = NULL;
    sal_shape ys;
    sal_error err = {0};
    sal_status st = tu_forward(g, rt, &y, &ys, &err);
    cr_assert_eq(st, SAL_OK, "conv %s: %s (seed %llu)", cc->name, err.msg, ULL(seed));
    sal_shape want = conv_y_shape(cc);
    expect_shape(&ys, &want, cc->name, seed);
    int64_t ny = sal_shape_numel(&want);
    double *ref = malloc(sizeof(double) * (size_t)ny);
    ref_conv(cc, x, w, cc->bias ? b : NULL, ref);
    double e = rel_err(y, ref, ny);
    cr_expect_lt(e, 1e-5, "conv %s: forward error %g (seed %llu)", cc->name, e, ULL(seed));
    free(ref); free(y); free(x); free(w); free(b);
    sal_graph_free(g);
}

ParameterizedTestParameters(conv, gradient) {
    return cr_make_param_array(conv_case, conv_cases, sizeof conv_cases / sizeof conv_cases[0]);
}

ParameterizedTest(conv_case *cc, conv, gradient) {
    uint64_t seed = tu_fresh_seed(), s = seed;
    sal_shape ws = conv_w_shape(cc);
    float *w = tu_rand_buf(sal_shape_numel(&ws), &s, -1.f, 1.f);
    float *b = tu_rand_buf(cc->m, &s, -1.f, 1.f);
    sal_graph *g = conv_graph(cc, w, b);
    sal_shape xs = conv_x_shape(cc);
    int64_t samples = sal_shape_numel(&xs) > 2000 ? 60 : 300;   /* the big cases: fewer, to stay quick */
    tu_grad_result r = tu_grad_check(g, seed, -1.f, 1.f, 1e-2f, samples);
    cr_assert_eq(r.st, SAL_OK, "conv %s: %s (seed %llu)", cc->name, r.msg, ULL(seed));
    cr_expect_lt(r.max_err, 1e-2, "conv %s: gradient error %g over %lld elements (seed %llu)", cc->name,
                 r.max_err, (long long)r.checked, ULL(seed));
    cr_expect_gt(r.checked, 0);
    free(w); free(b);
    sal_graph_free(g);
}

/* Batch of 2 through the general path with a batch of 1 each: images are independent. */
Test(conv, batch_images_independent) {
    uint64_t seed = tu_fresh_seed(), s = seed;
    conv_case cc = conv_cases[3];   /* groups2 */
    sal_shape xs = conv_x_shape(&cc), ws = conv_w_shape(&cc);
    float *x = tu_rand_buf(sal_shape_numel(&xs), &s, -1.f, 1.f);
    float *w = tu_rand_buf(sal_shape_numel(&ws), &s, -1.f, 1.f);
    float *b = tu_rand_buf(cc.m, &s, -1.f, 1.f);
    sal_graph *g2 = conv_graph(&cc, w, b);
    float *y2, *y1;
    sal_shape sh;
    sal_error err = {0};
    const float *rt[1] = {x};
    cr_assert_eq(tu_forward(g2, rt, &y2, &sh, &err), SAL_OK, "%s", err.msg);
    cc.n = 1;
    sal_graph *g1 = conv_graph(&cc, w, b);
    int64_t per_x = sal_shape_numel(&xs) / 2, per_y = sal_shape_numel(&sh) / 2;
    const float *rt1[1] = {x + per_x};
    cr_assert_eq(tu_forward(g1, rt1, &y1, &sh, &err), SAL_OK, "%s", err.msg);
    for (int64_t i = 0; i < per_y; i++)
        cr_assert_float_eq(y1[i], y2[per_y + i], 1e-5, "image 1 differs at %lld (seed %llu)", (long long)i,
                           ULL(seed));
    free(y1); free(y2); free(x); free(w); free(b);
    sal_graph_free(g1);
    sal_graph_free(g2);
}

/* Bad inputs give the right status and a message naming the problem. */
Test(conv, bad_inputs) {
    char msg[SAL_ERROR_LEN];
    float w[4 * 2 * 3 * 3] = {0};
    {   /* weight channel mismatch: X has 3 channels, W expects 2 per group with group 1 */
        tu_input ins[2] = {{SHP(1, 3, 8, 8), NULL, NULL}, {SHP(4, 2, 3, 3), w, NULL}};
        sal_graph *g = tu_node_graph("Conv", 2, ins, 1);
        cr_expect_eq(infer_status(g, msg, sizeof msg), SAL_ERR_SHAPE, "%s", msg);
        cr_expect(strstr(msg, "channel") != NULL, "%s", msg);
        sal_graph_free(g);
    }
    {   /* group does not divide the channels */
        tu_input ins[2] = {{SHP(1, 4, 8, 8), NULL, NULL}, {SHP(4, 2, 3, 3), w, NULL}};
        sal_graph *g = tu_node_graph("Conv", 2, ins, 1);
        set_int(g, "group", 3);
        cr_expect_eq(infer_status(g, msg, sizeof msg), SAL_ERR_SHAPE, "%s", msg);
        sal_graph_free(g);
    }
    {   /* kernel larger than the padded input */
        float w5[25] = {0};
        tu_input ins[2] = {{SHP(1, 1, 3, 3), NULL, NULL}, {SHP(1, 1, 5, 5), w5, NULL}};
        sal_graph *g = tu_node_graph("Conv", 2, ins, 1);
        int64_t pads[4] = {0, 1, 0, 1};
        set_ints(g, "pads", 4, pads);
        cr_expect_eq(infer_status(g, msg, sizeof msg), SAL_ERR_SHAPE, "%s", msg);
        cr_expect(strstr(msg, "larger") != NULL, "%s", msg);
        sal_graph_free(g);
    }
    {   /* 3-D convolution */
        float w3[27] = {0};
        tu_input ins[2] = {{SHP(1, 1, 4, 4, 4), NULL, NULL}, {SHP(1, 1, 3, 3, 3), w3, NULL}};
        sal_graph *g = tu_node_graph("Conv", 2, ins, 1);
        cr_expect_eq(infer_status(g, msg, sizeof msg), SAL_ERR_UNSUPPORTED, "%s", msg);
        cr_expect(strstr(msg, "3-D") != NULL, "%s", msg);
        sal_graph_free(g);
    }
    {   /* kernel_shape disagrees with W */
        tu_input ins[2] = {{SHP(1, 2, 8, 8), NULL, NULL}, {SHP(4, 2, 3, 3), w, NULL}};
        sal_graph *g = tu_node_graph("Conv", 2, ins, 1);
        int64_t ks[2] = {5, 5};
        set_ints(g, "kernel_shape", 2, ks);
        cr_expect_eq(infer_status(g, msg, sizeof msg), SAL_ERR_SHAPE, "%s", msg);
        sal_graph_free(g);
    }
    {   /* unknown auto_pad */
        tu_input ins[2] = {{SHP(1, 2, 8, 8), NULL, NULL}, {SHP(4, 2, 3, 3), w, NULL}};
        sal_graph *g = tu_node_graph("Conv", 2, ins, 1);
        set_str(g, "auto_pad", "SAME_MIDDLE");
        cr_expect_eq(infer_status(g, msg, sizeof msg), SAL_ERR_UNSUPPORTED, "%s", msg);
        cr_expect(strstr(msg, "auto_pad") != NULL, "%s", msg);
        sal_graph_free(g);
    }
    {   /* bias of the wrong length; W of the wrong rank; wrong pads count; zero stride */
        float b[3] = {0};
        tu_input ins[3] = {{SHP(1, 2, 8, 8), NULL, NULL}, {SHP(4, 2, 3, 3), w, NULL}, {SHP(3), b, NULL}};
        sal_graph *g = tu_node_graph("Conv", 3, ins, 1);
        cr_expect_eq(infer_status(g, msg, sizeof msg), SAL_ERR_SHAPE, "%s", msg);
        sal_graph_free(g);
        tu_input ins2[2] = {{SHP(1, 2, 8, 8), NULL, NULL}, {SHP(4, 2, 9), w, NULL}};
        g = tu_node_graph("Conv", 2, ins2, 1);
        cr_expect_eq(infer_status(g, msg, sizeof msg), SAL_ERR_SHAPE, "%s", msg);
        sal_graph_free(g);
        tu_input ins3[2] = {{SHP(1, 2, 8, 8), NULL, NULL}, {SHP(4, 2, 3, 3), w, NULL}};
        g = tu_node_graph("Conv", 2, ins3, 1);
        int64_t pads[2] = {1, 1};
        set_ints(g, "pads", 2, pads);
        cr_expect_eq(infer_status(g, msg, sizeof msg), SAL_ERR_SHAPE, "%s", msg);
        sal_graph_free(g);
        g = tu_node_graph("Conv", 2, ins3, 1);
        int64_t st[2] = {0, 1};
        set_ints(g, "strides", 2, st);
        cr_expect_eq(infer_status(g, msg, sizeof msg), SAL_ERR_SHAPE, "%s", msg);
        sal_graph_free(g);
    }
}

/* ------------------------------------------------------------------------------------------------ */
/* BatchNormalization                                                                               */

static void ref_bn(const float *x, const sal_shape *xs, const float *sc, const float *bi, const float *mu,
                   const float *var, double eps, double *y) {
    int64_t N = xs->d[0], C = xs->d[1], inner = sal_shape_numel(xs) / (N * C);
    for (int64_t n = 0; n < N; n++)
        for (int64_t c = 0; c < C; c++)
            for (int64_t i = 0; i < inner; i++) {
                int64_t k = (n * C + c) * inner + i;
                y[k] = ((double)x[k] - mu[c]) / sqrt((double)var[c] + eps) * sc[c] + bi[c];
            }
}

static sal_graph *bn_graph(sal_shape xs, const float *p[4], int runtime_params) {
    int64_t C = xs.d[1];
    tu_input ins[5] = {{xs, NULL, NULL}};
    for (int i = 0; i < 4; i++) ins[1 + i] = (tu_input){SHP(C), runtime_params ? NULL : p[i], NULL};
    sal_graph *g = tu_node_graph("BatchNormalization", 5, ins, 1);
    cr_assert(g);
    return g;
}

Test(batchnorm, forward_and_gradient) {
    uint64_t seed = tu_fresh_seed(), s = seed;
    sal_shape shapes[3] = {SHP(2, 3, 4, 5), SHP(4, 3), SHP(2, 3, 7)};
    float epss[3] = {1e-5f, 1e-2f, 1e-3f};
    for (int k = 0; k < 3; k++) {
        sal_shape xs = shapes[k];
        int64_t C = xs.d[1], nx = sal_shape_numel(&xs);
        float *x = tu_rand_buf(nx, &s, -2.f, 2.f);
        float *sc = tu_rand_buf(C, &s, -1.5f, 1.5f), *bi = tu_rand_buf(C, &s, -1.f, 1.f);
        float *mu = tu_rand_buf(C, &s, -0.5f, 0.5f), *var = tu_rand_buf(C, &s, 0.1f, 2.f);
        const float *p[4] = {sc, bi, mu, var};
        sal_graph *g = bn_graph(xs, p, 0);
        if (k != 0) set_float(g, "epsilon", epss[k]);
        float *y;
        sal_shape ys;
        sal_error err = {0};
        const float *rt[1] = {x};
        cr_assert_eq(tu_forward(g, rt, &y, &ys, &err), SAL_OK, "%s (seed %llu)", err.msg, ULL(seed));
        expect_shape(&ys, &xs, "batchnorm", seed);
        double *ref = malloc(sizeof(double) * (size_t)nx);
        ref_bn(x, &xs, sc, bi, mu, var, epss[k], ref);
        double e = rel_err(y, ref, nx);
        cr_expect_lt(e, 1e-5, "batchnorm case %d: forward error %g (seed %llu)", k, e, ULL(seed));
        tu_grad_result r = tu_grad_check(g, seed + (uint64_t)k, -2.f, 2.f, 1e-2f, 200);
        cr_assert_eq(r.st, SAL_OK, "%s (seed %llu)", r.msg, ULL(seed));
        cr_expect_lt(r.max_err, 1e-2, "batchnorm case %d: gradient error %g (seed %llu)", k, r.max_err,
                     ULL(seed));
        free(ref); free(y); free(x); free(sc); free(bi); free(mu); free(var);
        sal_graph_free(g);
    }
}

/* scale, B, mean and var fed at run time (values in [0.5, 1.5] so that var > 0): every input's
 * gradient is checked. */
Test(batchnorm, runtime_parameters_gradient) {
    uint64_t seed = tu_fresh_seed();
    const float *p[4] = {0};
    sal_graph *g = bn_graph(SHP(2, 3, 3, 2), p, 1);
    tu_grad_result r = tu_grad_check(g, seed, 0.5f, 1.5f, 1e-3f, 200);
    cr_assert_eq(r.st, SAL_OK, "%s (seed %llu)", r.msg, ULL(seed));
    cr_expect_lt(r.max_err, 1e-2, "gradient error %g (seed %llu)", r.max_err, ULL(seed));
    sal_graph_free(g);
}

Test(batchnorm, bad_inputs) {
    char msg[SAL_ERROR_LEN];
    float one[3] = {1, 1, 1};
    const float *p[4] = {one, one, one, one};
    sal_graph *g = bn_graph(SHP(2, 3, 4, 4), p, 0);
    set_int(g, "training_mode", 1);
    cr_expect_eq(infer_status(g, msg, sizeof msg), SAL_ERR_UNSUPPORTED, "%s", msg);
    cr_expect(strstr(msg, "training_mode") != NULL, "%s", msg);
    sal_graph_free(g);
    {   /* running statistics requested as outputs (and graph outputs): training mode */
        tu_input ins[5] = {{SHP(2, 3, 4, 4), NULL, NULL}, {SHP(3), one, NULL}, {SHP(3), one, NULL},
                           {SHP(3), one, NULL}, {SHP(3), one, NULL}};
        g = tu_node_graph("BatchNormalization", 5, ins, 3);
        cr_expect_eq(infer_status(g, msg, sizeof msg), SAL_ERR_UNSUPPORTED, "%s", msg);
        sal_graph_free(g);
    }
    {   /* parameters of the wrong length */
        float four[4] = {1, 1, 1, 1};
        tu_input ins[5] = {{SHP(2, 3, 4, 4), NULL, NULL}, {SHP(3), one, NULL}, {SHP(4), four, NULL},
                           {SHP(3), one, NULL}, {SHP(3), one, NULL}};
        g = tu_node_graph("BatchNormalization", 5, ins, 1);
        cr_expect_eq(infer_status(g, msg, sizeof msg), SAL_ERR_SHAPE, "%s", msg);
        sal_graph_free(g);
    }
}

/* ------------------------------------------------------------------------------------------------ */
/* MaxPool and AveragePool                                                                          */

typedef struct pool_case {
    char name[32];
    int nsp;
    int64_t n, c, h, w, kh, kw, sh, sw, dh, dw;
    int64_t pt, pl, pb, pr;       /* meant padding (auto_pad: by hand) */
    char auto_pad[16];            /* "": pads attribute */
    int ceil_mode, count_include_pad;
    int64_t oh, ow;               /* expected (by hand) */
} pool_case;

static pool_case pool_cases[] = {
    /* name              nsp n  c  h   w   kh kw sh sw dh dw pt pl pb pr auto_pad      ceil cip oh ow */
    {"k2s2",              2, 2, 3, 8,  8,  2, 2, 2, 2, 1, 1, 0, 0, 0, 0, "",          0, 0, 4, 4},
    {"k3s2_pads1",        2, 2, 2, 9,  8,  3, 3, 2, 2, 1, 1, 1, 1, 1, 1, "",          0, 0, 5, 4},
    {"k3s2_pads1_cip",    2, 2, 2, 9,  8,  3, 3, 2, 2, 1, 1, 1, 1, 1, 1, "",          0, 1, 5, 4},
    {"pads2_k3",          2, 1, 2, 7,  7,  3, 3, 1, 1, 1, 1, 2, 2, 2, 2, "",          0, 0, 9, 9},
    {"pads2_k3_cip",      2, 1, 2, 7,  7,  3, 3, 1, 1, 1, 1, 2, 2, 2, 2, "",          0, 1, 9, 9},
    {"ceil",              2, 1, 2, 8,  8,  3, 3, 2, 2, 1, 1, 0, 0, 0, 0, "",          1, 0, 4, 4},
    {"ceil_onnx4x4",      2, 1, 1, 4,  4,  3, 3, 2, 2, 1, 1, 0, 0, 0, 0, "",          1, 0, 2, 2},
    {"ceil_drop",         2, 1, 2, 5,  7,  2, 2, 3, 3, 1, 1, 0, 0, 1, 0, "",          1, 0, 2, 3},
    {"ceil_drop_cip",     2, 1, 2, 5,  7,  2, 2, 3, 3, 1, 1, 0, 0, 1, 0, "",          1, 1, 2, 3},
    {"ceil_pads_cip",     2, 2, 2, 6,  7,  3, 3, 2, 2, 1, 1, 1, 1, 1, 1, "",          1, 1, 4, 4},
    {"ceil_pads_cip0",    2, 2, 2, 6,  7,  3, 3, 2, 2, 1, 1, 1, 1, 1, 1, "",          1, 0, 4, 4},
    {"k2s1",              2, 1, 2, 9,  9,  2, 2, 1, 1, 1, 1, 0, 0, 0, 0, "",          0, 0, 8, 8},
    {"k3s3_asym_pads",    2, 1, 2, 8,  8,  3, 3, 3, 3, 1, 1, 1, 2, 1, 2, "",          0, 1, 3, 4},
    {"k3_s12",            2, 1, 2, 9,  8,  3, 3, 1, 2, 1, 1, 0, 0, 0, 0, "",          0, 0, 7, 3},
    {"dilation2",         2, 1, 2, 9,  9,  2, 2, 1, 1, 2, 2, 0, 0, 0, 0, "",          0, 0, 7, 7},
    {"dilation2_s2_pads", 2, 2, 2, 10, 9,  3, 3, 2, 2, 2, 2, 1, 1, 1, 1, "",          0, 0, 4, 4},
    {"ceil_pads_dil",     2, 1, 2, 10, 10, 3, 3, 2, 2, 2, 2, 2, 2, 2, 2, "",          1, 0, 6, 6},
    {"same_upper",        2, 2, 2, 7,  8,  3, 3, 2, 2, 1, 1, 1, 0, 1, 1, "SAME_UPPER",  0, 0, 4, 4},
    {"same_lower",        2, 2, 2, 7,  8,  3, 3, 2, 2, 1, 1, 1, 1, 1, 0, "SAME_LOWER",  0, 0, 4, 4},
    {"same_upper_k2",     2, 1, 2, 5,  5,  2, 2, 1, 1, 1, 1, 0, 0, 1, 1, "SAME_UPPER",  0, 1, 5, 5},
    {"same_lower_k2_cip", 2, 1, 2, 5,  5,  2, 2, 1, 1, 1, 1, 1, 1, 0, 0, "SAME_LOWER",  0, 1, 5, 5},
    {"valid",             2, 1, 2, 7,  8,  3, 3, 2, 2, 1, 1, 0, 0, 0, 0, "VALID",       0, 0, 3, 3},
    {"big_k3s2_pads1",    2, 2, 16, 24, 24, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, "",            0, 1, 12, 12},
    {"pool1d",            1, 2, 3, 1,  11, 1, 3, 1, 2, 1, 1, 0, 1, 0, 1, "",          0, 0, 1, 6},
    {"pool1d_ceil_cip",   1, 2, 3, 1,  10, 1, 3, 1, 2, 1, 1, 0, 1, 0, 1, "",          1, 1, 1, 6},
};

/* Pool reference: the window's taps inside the input; average divisor = taps inside the input
 * (count_include_pad 0) or inside the padded input [-pad_begin, in + pad_end) (count_include_pad 1). */
static void ref_pool(const pool_case *pc, int is_max, const float *x, double *y) {
    for (int64_t nc = 0; nc < pc->n * pc->c; nc++)
        for (int64_t oy = 0; oy < pc->oh; oy++)
            for (int64_t ox = 0; ox < pc->ow; ox++) {
                double acc = is_max ? -INFINITY : 0.0;
                int64_t valid = 0, padded = 0;
                for (int64_t ky = 0; ky < pc->kh; ky++)
                    for (int64_t kx = 0; kx < pc->kw; kx++) {
                        int64_t iy = oy * pc->sh - pc->pt + ky * pc->dh;
                        int64_t ix = ox * pc->sw - pc->pl + kx * pc->dw;
                        if (iy >= -pc->pt && iy < pc->h + pc->pb && ix >= -pc->pl && ix < pc->w + pc->pr)
                            padded++;
                        if (iy < 0 || iy >= pc->h || ix < 0 || ix >= pc->w) continue;
                        double v = x[(nc * pc->h + iy) * pc->w + ix];
                        valid++;
                        if (is_max) acc = v > acc ? v : acc;
                        else acc += v;
                    }
                if (!is_max) acc /= (double)(pc->count_include_pad ? padded : valid);
                y[(nc * pc->oh + oy) * pc->ow + ox] = acc;
            }
}

static sal_shape pool_x_shape(const pool_case *pc) {
    return pc->nsp == 2 ? SHP(pc->n, pc->c, pc->h, pc->w) : SHP(pc->n, pc->c, pc->w);
}
static sal_shape pool_y_shape(const pool_case *pc) {
    return pc->nsp == 2 ? SHP(pc->n, pc->c, pc->oh, pc->ow) : SHP(pc->n, pc->c, pc->ow);
}

static sal_graph *pool_graph(const pool_case *pc, int is_max) {
    tu_input ins[1] = {{pool_x_shape(pc), NULL, NULL}};
    sal_graph *g = tu_node_graph(is_max ? "MaxPool" : "AveragePool", 1, ins, 1);
    cr_assert(g);
    if (pc->nsp == 2) {
        int64_t ks[2] = {pc->kh, pc->kw}, st[2] = {pc->sh, pc->sw};
        int64_t pads[4] = {pc->pt, pc->pl, pc->pb, pc->pr};
        set_ints(g, "kernel_shape", 2, ks);
        set_ints(g, "strides", 2, st);
        if (pc->dh != 1 || pc->dw != 1) {
            int64_t dl[2] = {pc->dh, pc->dw};
            set_ints(g, "dilations", 2, dl);
        }
        if (!pc->auto_pad[0]) set_ints(g, "pads", 4, pads);
    } else {
        int64_t ks[1] = {pc->kw}, st[1] = {pc->sw}, pads[2] = {pc->pl, pc->pr};
        set_ints(g, "kernel_shape", 1, ks);
        set_ints(g, "strides", 1, st);
        if (!pc->auto_pad[0]) set_ints(g, "pads", 2, pads);
    }
    if (pc->auto_pad[0]) set_str(g, "auto_pad", pc->auto_pad);
    if (pc->ceil_mode) set_int(g, "ceil_mode", 1);
    if (!is_max && pc->count_include_pad) set_int(g, "count_include_pad", 1);
    return g;
}

static void pool_forward_case(const pool_case *pc, int is_max) {
    uint64_t seed = tu_fresh_seed(), s = seed;
    sal_shape xs = pool_x_shape(pc);
    float *x = tu_rand_buf(sal_shape_numel(&xs), &s, -1.f, 1.f);
    sal_graph *g = pool_graph(pc, is_max);
    float *y;
    sal_shape ys;
    sal_error err = {0};
    const float *rt[1] = {x};
    cr_assert_eq(tu_forward(g, rt, &y, &ys, &err), SAL_OK, "%s: %s", pc->name, err.msg);
    sal_shape want = pool_y_shape(pc);
    expect_shape(&ys, &want, pc->name, seed);
    int64_t ny = sal_shape_numel(&want);
    double *ref = malloc(sizeof(double) * (size_t)ny);
    ref_pool(pc, is_max, x, ref);
    double e = rel_err(y, ref, ny);
    cr_expect_lt(e, 1e-5, "%s %s: forward error %g (seed %llu)", is_max ? "maxpool" : "avgpool", pc->name, e,
                 ULL(seed));
    free(ref); free(y); free(x);
    sal_graph_free(g);
}

ParameterizedTestParameters(maxpool, forward) {
    return cr_make_param_array(pool_case, pool_cases, sizeof pool_cases / sizeof pool_cases[0]);
}
ParameterizedTest(pool_case *pc, maxpool, forward) { pool_forward_case(pc, 1); }

ParameterizedTestParameters(avgpool, forward) {
    return cr_make_param_array(pool_case, pool_cases, sizeof pool_cases / sizeof pool_cases[0]);
}
ParameterizedTest(pool_case *pc, avgpool, forward) { pool_forward_case(pc, 0); }

ParameterizedTestParameters(avgpool, gradient) {
    return cr_make_param_array(pool_case, pool_cases, sizeof pool_cases / sizeof pool_cases[0]);
}
ParameterizedTest(pool_case *pc, avgpool, gradient) {
    uint64_t seed = tu_fresh_seed();
    sal_graph *g = pool_graph(pc, 0);
    sal_shape xs = pool_x_shape(pc);
    tu_grad_result r = tu_grad_check(g, seed, -1.f, 1.f, 1e-2f, sal_shape_numel(&xs) > 2000 ? 60 : 300);
    cr_assert_eq(r.st, SAL_OK, "%s: %s (seed %llu)", pc->name, r.msg, ULL(seed));
    cr_expect_lt(r.max_err, 1e-2, "avgpool %s: gradient error %g (seed %llu)", pc->name, r.max_err,
                 ULL(seed));
    sal_graph_free(g);
}

/* MaxPool's gradient: inputs are a random permutation of distinct values 0.01 apart, so that a
 * finite-difference step of 1e-3 never changes which tap is a window's maximum. Checked against
 * central differences and against the reference routing (each window's gradient to its first
 * maximum) computed here. */
ParameterizedTestParameters(maxpool, gradient) {
    return cr_make_param_array(pool_case, pool_cases, sizeof pool_cases / sizeof pool_cases[0]);
}
ParameterizedTest(pool_case *pc, maxpool, gradient) {
    uint64_t seed = tu_fresh_seed(), s = seed;
    sal_shape xs = pool_x_shape(pc), ysh = pool_y_shape(pc);
    int64_t nx = sal_shape_numel(&xs), ny = sal_shape_numel(&ysh);
    float *x = malloc(sizeof(float) * (size_t)nx);
    for (int64_t i = 0; i < nx; i++) x[i] = 0.01f * (float)i - 0.005f * (float)nx;
    for (int64_t i = nx - 1; i > 0; i--) {   /* Fisher-Yates */
        int64_t j = (int64_t)(tu_next(&s) % (uint64_t)(i + 1));
        float t = x[i]; x[i] = x[j]; x[j] = t;
    }
    float *gy = tu_rand_buf(ny, &s, -1.f, 1.f);
    sal_graph *g = pool_graph(pc, 1);
    const float *ins[1] = {x};
    nn_run r;
    sal_error err = {0};
    cr_assert_eq(nn_run_node(g, ins, gy, &r, &err), SAL_OK, "%s: %s", pc->name, err.msg);
    /* reference routing */
    double *gref = calloc((size_t)nx, sizeof(double));
    for (int64_t nc = 0; nc < pc->n * pc->c; nc++)
        for (int64_t oy = 0; oy < pc->oh; oy++)
            for (int64_t ox = 0; ox < pc->ow; ox++) {
                int64_t best = -1;
                for (int64_t ky = 0; ky < pc->kh; ky++)
                    for (int64_t kx = 0; kx < pc->kw; kx++) {
                        int64_t iy = oy * pc->sh - pc->pt + ky * pc->dh;
                        int64_t ix = ox * pc->sw - pc->pl + kx * pc->dw;
                        if (iy < 0 || iy >= pc->h || ix < 0 || ix >= pc->w) continue;
                        int64_t k = (nc * pc->h + iy) * pc->w + ix;
                        if (best < 0 || x[k] > x[best]) best = k;
                    }
                if (best >= 0) gref[best] += gy[(nc * pc->oh + oy) * pc->ow + ox];
            }
    double e = rel_err(r.gin[0], gref, nx);
    cr_expect_lt(e, 1e-5, "maxpool %s: gradient vs reference routing %g (seed %llu)", pc->name, e, ULL(seed));
    /* central differences on a sample */
    double max_fd = 0, max_diff = 0;
    const float eps = 1e-3f;
    int64_t step = nx > 2000 ? nx / 60 : nx > 150 ? nx / 150 : 1;
    for (int64_t j = 0; j < nx; j += step) {
        double l[2];
        float x0 = x[j];
        for (int k = 0; k < 2; k++) {
            x[j] = k == 0 ? x0 + eps : x0 - eps;
            nn_run rr;
            cr_assert_eq(nn_run_node(g, ins, NULL, &rr, &err), SAL_OK);
            l[k] = 0;
            for (int64_t i = 0; i < ny; i++) l[k] += (double)gy[i] * rr.out[i];
            nn_run_free(&rr);
        }
        x[j] = x0;
        double fd = (l[0] - l[1]) / ((double)(x0 + eps) - (double)(x0 - eps));
        if (fabs(fd) > max_fd) max_fd = fabs(fd);
        if (fabs(fd - r.gin[0][j]) > max_diff) max_diff = fabs(fd - r.gin[0][j]);
    }
    double fe = max_diff / (max_fd > 1e-3 ? max_fd : 1e-3);
    cr_expect_lt(fe, 1e-2, "maxpool %s: finite-difference error %g (seed %llu)", pc->name, fe, ULL(seed));
    nn_run_free(&r);
    free(gref); free(gy); free(x);
    sal_graph_free(g);
}

/* Ties: the whole gradient of a window goes to its first maximum (row-major order). */
Test(maxpool, ties_route_to_first_maximum) {
    pool_case pc = {"ties", 2, 1, 1, 4, 4, 2, 2, 2, 2, 1, 1, 0, 0, 0, 0, "", 0, 0, 2, 2};
    float x[16] = {0};
    float gy[4] = {1, 2, 3, 4};
    sal_graph *g = pool_graph(&pc, 1);
    const float *ins[1] = {x};
    nn_run r;
    sal_error err = {0};
    cr_assert_eq(nn_run_node(g, ins, gy, &r, &err), SAL_OK, "%s", err.msg);
    float want[16] = {1, 0, 2, 0, 0, 0, 0, 0, 3, 0, 4, 0, 0, 0, 0, 0};
    for (int i = 0; i < 16; i++) cr_expect_float_eq(r.gin[0][i], want[i], 1e-7, "at %d", i);
    nn_run_free(&r);
    sal_graph_free(g);
}

/* Rows wide enough for the CPU's vectorized path (windows wholly inside the input in x, 64 at a
 * time, cpu_nn.c maxpool_chunk) and its seams with the per-window path at the edges: forward
 * values and routed gradients bit for bit the one-scan rule's (the first tap strictly greater
 * than every earlier one; a NaN first tap keeps the window), on values with ties, signed zeros,
 * NaN and infinities; the gradient summed in window order, as the kernel must. */
Test(maxpool, wide_rows_bitwise) {
    static const pool_case wide[] = {
        /* name            nsp n  c  h  w    kh kw sh sw dh dw pt pl pb pr      ceil cip oh ow */
        {"wide_k3s2_p1",    2, 1, 2, 9, 150, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, "", 0, 0, 5, 75},
        {"wide_k3s1",       2, 1, 2, 5, 133, 3, 3, 1, 1, 1, 1, 0, 0, 0, 0, "", 0, 0, 3, 131},
        {"wide_k2s2",       2, 2, 1, 6, 140, 2, 2, 2, 2, 1, 1, 0, 0, 0, 0, "", 0, 0, 3, 70},
        {"wide_k3s3_d2_p1", 2, 1, 2, 9, 131, 3, 3, 3, 3, 2, 2, 1, 1, 1, 1, "", 0, 0, 3, 43},
        {"wide_k5s2_p2",    2, 1, 1, 7, 200, 5, 5, 2, 2, 1, 1, 2, 2, 2, 2, "", 0, 0, 4, 100},
        {"wide_asym_pr2",   2, 1, 2, 5, 129, 3, 3, 2, 2, 1, 1, 0, 0, 0, 2, "", 0, 0, 2, 65},
    };
    static const float special[] = {0.f, -0.f, 1.f, -1.f, 2.f, NAN, -INFINITY, INFINITY};
    for (size_t k = 0; k < sizeof wide / sizeof wide[0]; k++) {
        const pool_case *pc = &wide[k];
        uint64_t seed = tu_fresh_seed(), s = seed;
        sal_shape xs = pool_x_shape(pc), ysh = pool_y_shape(pc);
        const int64_t nx = sal_shape_numel(&xs), ny = sal_shape_numel(&ysh);
        float *x = malloc(sizeof(float) * (size_t)nx);
        for (int64_t i = 0; i < nx; i++) {
            uint64_t r = tu_next(&s);
            x[i] = r % 5 < 2 ? special[(r >> 8) % 8] : 0.25f * (float)((int)((r >> 16) % 17) - 8);
        }
        float *gy = tu_rand_buf(ny, &s, -1.f, 1.f);
        float *yref = malloc(sizeof(float) * (size_t)ny), *gref = calloc((size_t)nx, sizeof(float));
        for (int64_t nc = 0; nc < pc->n * pc->c; nc++)
            for (int64_t oy = 0; oy < pc->oh; oy++)
                for (int64_t ox = 0; ox < pc->ow; ox++) {
                    int64_t best = -1;
                    for (int64_t ky = 0; ky < pc->kh; ky++)
                        for (int64_t kx = 0; kx < pc->kw; kx++) {
                            int64_t iy = oy * pc->sh - pc->pt + ky * pc->dh, ix = ox * pc->sw - pc->pl + kx * pc->dw;
                            if (iy < 0 || iy >= pc->h || ix < 0 || ix >= pc->w) continue;
                            int64_t at = (nc * pc->h + iy) * pc->w + ix;
                            if (best < 0 || x[at] > x[best]) best = at;
                        }
                    cr_assert_geq(best, 0);
                    const int64_t o = (nc * pc->oh + oy) * pc->ow + ox;
                    yref[o] = x[best];
                    gref[best] += gy[o];
                }
        sal_graph *g = pool_graph(pc, 1);
        const float *ins[1] = {x};
        nn_run r;
        sal_error err = {0};
        cr_assert_eq(nn_run_node(g, ins, gy, &r, &err), SAL_OK, "%s: %s", pc->name, err.msg);
        cr_assert_eq(sal_shape_numel(&r.out_shape), ny, "%s: output size", pc->name);
        int64_t bad_y = 0, bad_g = 0, fy = -1, fg = -1;
        for (int64_t i = 0; i < ny; i++)
            if (memcmp(&r.out[i], &yref[i], sizeof(float))) { bad_y++; if (fy < 0) fy = i; }
        for (int64_t i = 0; i < nx; i++)
            if (memcmp(&r.gin[0][i], &gref[i], sizeof(float))) { bad_g++; if (fg < 0) fg = i; }
        cr_expect_eq(bad_y, 0, "maxpool %s: %lld outputs differ, first [%lld] %g against %g (seed %llu)", pc->name,
                     (long long)bad_y, (long long)fy, fy >= 0 ? r.out[fy] : 0.0, fy >= 0 ? yref[fy] : 0.0, ULL(seed));
        cr_expect_eq(bad_g, 0, "maxpool %s: %lld gradient elements differ, first [%lld] %g against %g (seed %llu)",
                     pc->name, (long long)bad_g, (long long)fg, fg >= 0 ? r.gin[0][fg] : 0.0,
                     fg >= 0 ? gref[fg] : 0.0, ULL(seed));
        nn_run_free(&r);
        sal_graph_free(g);
        free(x); free(gy); free(yref); free(gref);
    }
}

/* The ONNX examples with ceil_mode: x = 1..16 in 4x4, kernel 3, stride 2. */
Test(pool, onnx_ceil_examples) {
    pool_case pc = pool_cases[6];
    float x[16];
    for (int i = 0; i < 16; i++) x[i] = (float)(i + 1);
    const float *rt[1] = {x};
    float want_max[4] = {11, 12, 15, 16}, want_avg[4] = {6, 7.5f, 12, 13.5f};
    for (int is_max = 0; is_max < 2; is_max++) {
        sal_graph *g = pool_graph(&pc, is_max);
        float *y;
        sal_shape ys;
        sal_error err = {0};
        cr_assert_eq(tu_forward(g, rt, &y, &ys, &err), SAL_OK, "%s", err.msg);
        for (int i = 0; i < 4; i++)
            cr_expect_float_eq(y[i], is_max ? want_max[i] : want_avg[i], 1e-5, "%s y[%d] = %g",
                               is_max ? "max" : "avg", i, y[i]);
        free(y);
        sal_graph_free(g);
    }
}

Test(pool, bad_inputs) {
    char msg[SAL_ERROR_LEN];
    tu_input ins[1] = {{SHP(1, 2, 6, 6), NULL, NULL}};
    sal_graph *g = tu_node_graph("MaxPool", 1, ins, 1);   /* no kernel_shape */
    cr_expect_eq(infer_status(g, msg, sizeof msg), SAL_ERR_SHAPE, "%s", msg);
    sal_graph_free(g);
    int64_t k2[2] = {2, 2}, k3[3] = {2, 2, 2}, big[2] = {8, 8};
    g = tu_node_graph("MaxPool", 1, ins, 2);   /* Indices requested */
    set_ints(g, "kernel_shape", 2, k2);
    cr_expect_eq(infer_status(g, msg, sizeof msg), SAL_ERR_UNSUPPORTED, "%s", msg);
    cr_expect(strstr(msg, "Indices") != NULL, "%s", msg);
    sal_graph_free(g);
    tu_input ins3[1] = {{SHP(1, 2, 4, 4, 4), NULL, NULL}};
    g = tu_node_graph("AveragePool", 1, ins3, 1);   /* 3-D */
    set_ints(g, "kernel_shape", 3, k3);
    cr_expect_eq(infer_status(g, msg, sizeof msg), SAL_ERR_UNSUPPORTED, "%s", msg);
    sal_graph_free(g);
    g = tu_node_graph("AveragePool", 1, ins, 1);   /* kernel larger than the input */
    set_ints(g, "kernel_shape", 2, big);
    cr_expect_eq(infer_status(g, msg, sizeof msg), SAL_ERR_SHAPE, "%s", msg);
    sal_graph_free(g);
    g = tu_node_graph("AveragePool", 1, ins, 1);   /* pads not smaller than the kernel */
    int64_t pads[4] = {2, 2, 2, 2};
    set_ints(g, "kernel_shape", 2, k2);
    set_ints(g, "pads", 4, pads);
    cr_expect_eq(infer_status(g, msg, sizeof msg), SAL_ERR_SHAPE, "%s", msg);
    sal_graph_free(g);
    g = tu_node_graph("MaxPool", 1, ins, 1);   /* kernel_shape of the wrong length */
    set_ints(g, "kernel_shape", 3, k3);
    cr_expect_eq(infer_status(g, msg, sizeof msg), SAL_ERR_SHAPE, "%s", msg);
    sal_graph_free(g);
}

/* ------------------------------------------------------------------------------------------------ */
/* GlobalAveragePool                                                                                */

Test(globalavgpool, forward_and_gradient) {
    uint64_t seed = tu_fresh_seed(), s = seed;
    sal_shape shapes[3] = {SHP(2, 3, 5, 4), SHP(2, 4, 7), SHP(1, 3, 2, 2, 3)};
    for (int k = 0; k < 3; k++) {
        sal_shape xs = shapes[k];
        int64_t nx = sal_shape_numel(&xs), nc = xs.d[0] * xs.d[1], S = nx / nc;
        float *x = tu_rand_buf(nx, &s, -1.f, 1.f);
        tu_input ins[1] = {{xs, NULL, NULL}};
        sal_graph *g = tu_node_graph("GlobalAveragePool", 1, ins, 1);
        float *y;
        sal_shape ys;
        sal_error err = {0};
        const float *rt[1] = {x};
        cr_assert_eq(tu_forward(g, rt, &y, &ys, &err), SAL_OK, "%s", err.msg);
        sal_shape want = xs;
        for (int d = 2; d < xs.ndim; d++) want.d[d] = 1;
        expect_shape(&ys, &want, "globalavgpool", seed);
        double *ref = malloc(sizeof(double) * (size_t)nc);
        for (int64_t i = 0; i < nc; i++) {
            ref[i] = 0;
            for (int64_t j = 0; j < S; j++) ref[i] += x[i * S + j];
            ref[i] /= (double)S;
        }
        double e = rel_err(y, ref, nc);
        cr_expect_lt(e, 1e-5, "globalavgpool case %d: forward error %g (seed %llu)", k, e, ULL(seed));
        tu_grad_result r = tu_grad_check(g, seed + (uint64_t)k, -1.f, 1.f, 1e-2f, 200);
        cr_assert_eq(r.st, SAL_OK, "%s", r.msg);
        cr_expect_lt(r.max_err, 1e-2, "globalavgpool case %d: gradient error %g (seed %llu)", k, r.max_err,
                     ULL(seed));
        free(ref); free(y); free(x);
        sal_graph_free(g);
    }
}

/* ------------------------------------------------------------------------------------------------ */
/* Gemm                                                                                             */

enum { C_NONE, C_N, C_1N, C_M1, C_MN, C_SCALAR, C_1 };
static const char *c_kind_name[] = {"none", "(N)", "(1,N)", "(M,1)", "(M,N)", "scalar", "(1)"};

static sal_shape gemm_c_shape(int kind, int64_t M, int64_t N) {
    switch (kind) {
    case C_N: return SHP(N);
    case C_1N: return SHP(1, N);
    case C_M1: return SHP(M, 1);
    case C_MN: return SHP(M, N);
    case C_SCALAR: return SHP0;
    case C_1: return SHP(1);
    default: return ABSENT;
    }
}
static double gemm_c_at(int kind, const float *c, int64_t i, int64_t j, int64_t N) {
    switch (kind) {
    case C_N: case C_1N: return c[j];
    case C_M1: return c[i];
    case C_MN: return c[i * N + j];
    case C_SCALAR: case C_1: return c[0];
    default: return 0;
    }
}

/* rt: 0 = A runtime only; 1 = A, B, C runtime */
static void gemm_case(int ta, int tb, int kind, int rt, float alpha, float beta) {
    uint64_t seed = tu_fresh_seed(), s = seed;
    const int64_t M = 3, N = 5, K = 4;
    sal_shape as = ta ? SHP(K, M) : SHP(M, K), bs = tb ? SHP(N, K) : SHP(K, N), cs = gemm_c_shape(kind, M, N);
    float *a = tu_rand_buf(M * K, &s, -1.f, 1.f), *b = tu_rand_buf(K * N, &s, -1.f, 1.f);
    float *c = tu_rand_buf(M * N, &s, -1.f, 1.f);
    tu_input ins[3] = {{as, NULL, NULL}, {bs, rt ? NULL : b, NULL}, {cs, rt ? NULL : c, NULL}};
    sal_graph *g = tu_node_graph("Gemm", kind == C_NONE ? 2 : 3, ins, 1);
    if (ta) set_int(g, "transA", 1);
    if (tb) set_int(g, "transB", 1);
    if (alpha != 1.f) set_float(g, "alpha", alpha);
    if (beta != 1.f) set_float(g, "beta", beta);
    const float *rtin[3] = {a, b, c};
    float *y;
    sal_shape ys;
    sal_error err = {0};
    cr_assert_eq(tu_forward(g, rtin, &y, &ys, &err), SAL_OK, "%s", err.msg);
    sal_shape want = SHP(M, N);
    expect_shape(&ys, &want, "gemm", seed);
    double ref[15];
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            double acc = 0;
            for (int64_t k = 0; k < K; k++)
                acc += (double)(ta ? a[k * M + i] : a[i * K + k]) *
                       (double)(tb ? b[j * K + k] : b[k * N + j]);
            ref[i * N + j] = alpha * acc + (kind == C_NONE ? 0.0 : beta * gemm_c_at(kind, c, i, j, N));
        }
    double e = rel_err(y, ref, M * N);
    cr_expect_lt(e, 1e-5, "gemm tA=%d tB=%d C=%s rt=%d: forward error %g (seed %llu)", ta, tb,
                 c_kind_name[kind], rt, e, ULL(seed));
    tu_grad_result r = tu_grad_check(g, seed, -1.f, 1.f, 1e-2f, 100);
    cr_assert_eq(r.st, SAL_OK, "%s", r.msg);
    cr_expect_lt(r.max_err, 1e-2, "gemm tA=%d tB=%d C=%s rt=%d: gradient error %g (seed %llu)", ta, tb,
                 c_kind_name[kind], rt, r.max_err, ULL(seed));
    free(y); free(a); free(b); free(c);
    sal_graph_free(g);
}

Test(gemm, all_transposes_and_bias_shapes) {
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++)
            for (int kind = C_NONE; kind <= C_1; kind++)
                for (int rt = 0; rt < 2; rt++) gemm_case(ta, tb, kind, rt, 1.f, 1.f);
}

Test(gemm, alpha_beta) {
    gemm_case(0, 0, C_MN, 1, 0.25f, 0.35f);
    gemm_case(1, 1, C_1N, 1, 0.25f, 0.35f);
    gemm_case(0, 1, C_M1, 1, -1.5f, 2.f);
    gemm_case(1, 0, C_SCALAR, 1, 0.5f, 0.f);
}

Test(gemm, bad_inputs) {
    char msg[SAL_ERROR_LEN];
    tu_input ins[3] = {{SHP(3, 4), NULL, NULL}, {SHP(5, 6), NULL, NULL}, {ABSENT, NULL, NULL}};
    sal_graph *g = tu_node_graph("Gemm", 2, ins, 1);   /* K mismatch */
    cr_expect_eq(infer_status(g, msg, sizeof msg), SAL_ERR_SHAPE, "%s", msg);
    sal_graph_free(g);
    tu_input ins2[3] = {{SHP(3, 4), NULL, NULL}, {SHP(4, 5), NULL, NULL}, {SHP(4, 5), NULL, NULL}};
    g = tu_node_graph("Gemm", 3, ins2, 1);   /* C does not broadcast to (3,5) */
    cr_expect_eq(infer_status(g, msg, sizeof msg), SAL_ERR_SHAPE, "%s", msg);
    sal_graph_free(g);
    tu_input ins3[2] = {{SHP(2, 3, 4), NULL, NULL}, {SHP(4, 5), NULL, NULL}};
    g = tu_node_graph("Gemm", 2, ins3, 1);   /* A not 2-D */
    cr_expect_eq(infer_status(g, msg, sizeof msg), SAL_ERR_SHAPE, "%s", msg);
    sal_graph_free(g);
}

/* ------------------------------------------------------------------------------------------------ */
/* MatMul                                                                                           */

typedef struct matmul_case {
    char name[32];
    int ra, rb;                    /* ranks */
    int64_t a[4], b[4];            /* shapes */
    int b_const;                   /* B a constant (its gradient is not requested) */
    int ry;
    int64_t y[5];                  /* expected output shape */
} matmul_case;

static matmul_case matmul_cases[] = {
    {"2d",              2, 2, {3, 4},       {4, 5},       0, 2, {3, 5}},
    {"2d_const_b",      2, 2, {3, 4},       {4, 5},       1, 2, {3, 5}},
    {"batched",         3, 3, {2, 3, 4},    {2, 4, 5},    0, 3, {2, 3, 5}},
    {"batched_4d",      4, 4, {1, 2, 3, 4}, {1, 2, 4, 3}, 0, 4, {1, 2, 3, 3}},
    {"shared_b",        3, 2, {2, 3, 4},    {4, 5},       0, 3, {2, 3, 5}},
    {"shared_b_const",  3, 2, {2, 3, 4},    {4, 5},       1, 3, {2, 3, 5}},
    {"shared_a",        2, 3, {3, 4},       {2, 4, 5},    0, 3, {2, 3, 5}},
    {"broadcast_both",  4, 3, {2, 1, 3, 4}, {3, 4, 2},    0, 4, {2, 3, 3, 2}},
    {"broadcast_1",     3, 3, {1, 3, 4},    {3, 4, 2},    0, 3, {3, 3, 2}},
    {"a_1d",            1, 3, {4},          {2, 4, 5},    0, 2, {2, 5}},
    {"b_1d",            3, 1, {2, 3, 4},    {4},          0, 2, {2, 3}},
    {"both_1d",         1, 1, {4},          {4},          0, 0, {0}},
    {"a_1d_b_2d",       1, 2, {4},          {4, 3},       0, 1, {3}},
};

/* numpy matmul in double: batch dims broadcast, 1-D operands promoted then squeezed. */
static void ref_matmul(const matmul_case *mc, const float *a, const float *b, double *y, int64_t *ny) {
    int64_t M = mc->ra == 1 ? 1 : mc->a[mc->ra - 2], K = mc->a[mc->ra - 1];
    int64_t N = mc->rb == 1 ? 1 : mc->b[mc->rb - 1];
    int na = mc->ra > 2 ? mc->ra - 2 : 0, nb = mc->rb > 2 ? mc->rb - 2 : 0, nd = na > nb ? na : nb;
    int64_t bshape[4], astr[4], bstr[4], batch = 1;
    int64_t sa = 1, sb = 1;
    for (int d = nd - 1; d >= 0; d--) {
        int ia = d - (nd - na), ib = d - (nd - nb);
        int64_t da = ia >= 0 ? mc->a[ia] : 1, db = ib >= 0 ? mc->b[ib] : 1;
        bshape[d] = da > db ? da : db;
        astr[d] = da == 1 ? 0 : sa;
        bstr[d] = db == 1 ? 0 : sb;
        sa *= da;
        sb *= db;
        batch *= bshape[d];
    }
    for (int64_t bi = 0; bi < batch; bi++) {
        int64_t r = bi, ia = 0, ib = 0;
        for (int d = nd - 1; d >= 0; d--) {
            ia += (r % bshape[d]) * astr[d];
            ib += (r % bshape[d]) * bstr[d];
            r /= bshape[d];
        }
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++) {
                double acc = 0;
                for (int64_t k = 0; k < K; k++)
                    acc += (double)a[ia * M * K + i * K + k] * b[ib * K * N + k * N + j];
                y[(bi * M + i) * N + j] = acc;
            }
    }
    *ny = batch * M * N;
}

ParameterizedTestParameters(matmul, forward_and_gradient) {
    return cr_make_param_array(matmul_case, matmul_cases, sizeof matmul_cases / sizeof matmul_cases[0]);
}

ParameterizedTest(matmul_case *mc, matmul, forward_and_gradient) {
    uint64_t seed = tu_fresh_seed(), s = seed;
    sal_shape as = mkshape(mc->ra, mc->a), bs = mkshape(mc->rb, mc->b), want = mkshape(mc->ry, mc->y);
    float *a = tu_rand_buf(sal_shape_numel(&as), &s, -1.f, 1.f);
    float *b = tu_rand_buf(sal_shape_numel(&bs), &s, -1.f, 1.f);
    tu_input ins[2] = {{as, NULL, NULL}, {bs, mc->b_const ? b : NULL, NULL}};
    sal_graph *g = tu_node_graph("MatMul", 2, ins, 1);
    const float *rt[2] = {a, b};
    float *y;
    sal_shape ys;
    sal_error err = {0};
    cr_assert_eq(tu_forward(g, rt, &y, &ys, &err), SAL_OK, "%s: %s", mc->name, err.msg);
    expect_shape(&ys, &want, mc->name, seed);
    double ref[256];
    int64_t ny;
    ref_matmul(mc, a, b, ref, &ny);
    cr_assert_eq(ny, sal_shape_numel(&want));
    double e = rel_err(y, ref, ny);
    cr_expect_lt(e, 1e-5, "matmul %s: forward error %g (seed %llu)", mc->name, e, ULL(seed));
    tu_grad_result r = tu_grad_check(g, seed, -1.f, 1.f, 1e-2f, 200);
    cr_assert_eq(r.st, SAL_OK, "%s", r.msg);
    cr_expect_lt(r.max_err, 1e-2, "matmul %s: gradient error %g (seed %llu)", mc->name, r.max_err, ULL(seed));
    free(y); free(a); free(b);
    sal_graph_free(g);
}

Test(matmul, bad_inputs) {
    char msg[SAL_ERROR_LEN];
    tu_input ins[2] = {{SHP(3, 4), NULL, NULL}, {SHP(5, 6), NULL, NULL}};
    sal_graph *g = tu_node_graph("MatMul", 2, ins, 1);
    cr_expect_eq(infer_status(g, msg, sizeof msg), SAL_ERR_SHAPE, "%s", msg);
    sal_graph_free(g);
    tu_input ins2[2] = {{SHP(2, 3, 4), NULL, NULL}, {SHP(3, 4, 5), NULL, NULL}};
    g = tu_node_graph("MatMul", 2, ins2, 1);
    cr_expect_eq(infer_status(g, msg, sizeof msg), SAL_ERR_SHAPE, "%s", msg);
    sal_graph_free(g);
}

/* ------------------------------------------------------------------------------------------------ */
/* LRN                                                                                              */

static void ref_lrn(const float *x, const sal_shape *xs, int64_t size, double alpha, double beta, double bias,
                    double *y) {
    int64_t N = xs->d[0], C = xs->d[1], S = sal_shape_numel(xs) / (N * C);
    int64_t lo = (size - 1) / 2, hi = size / 2;   /* floor((size-1)/2), ceil((size-1)/2) */
    for (int64_t n = 0; n < N; n++)
        for (int64_t c = 0; c < C; c++)
            for (int64_t i = 0; i < S; i++) {
                double sq = 0;
                for (int64_t j = c - lo; j <= c + hi; j++)
                    if (j >= 0 && j < C) {
                        double v = x[(n * C + j) * S + i];
                        sq += v * v;
                    }
                double v = x[(n * C + c) * S + i];
                y[(n * C + c) * S + i] = v / pow(bias + alpha / (double)size * sq, beta);
            }
}

Test(lrn, forward_and_gradient) {
    uint64_t seed = tu_fresh_seed(), s = seed;
    struct { sal_shape xs; int64_t size; float alpha, beta, bias; } cases[] = {
        {SHP(2, 5, 3, 4), 3, 0.5f, 0.75f, 1.f},
        {SHP(1, 6, 2, 3), 4, 0.8f, 0.6f, 2.f},     /* even size: window c-1 .. c+2 */
        {SHP(2, 3, 5), 5, 1e-1f, 0.75f, 1.f},      /* window wider than the channels */
        {SHP(1, 7, 3, 3), 1, 1.f, 0.5f, 0.5f},
        {SHP(2, 4, 2, 2), 3, 2e-4f, 0.5f, 2.f},    /* the ONNX test's values */
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        sal_shape xs = cases[k].xs;
        int64_t nx = sal_shape_numel(&xs);
        float *x = tu_rand_buf(nx, &s, -2.f, 2.f);
        tu_input ins[1] = {{xs, NULL, NULL}};
        sal_graph *g = tu_node_graph("LRN", 1, ins, 1);
        set_int(g, "size", cases[k].size);
        set_float(g, "alpha", cases[k].alpha);
        set_float(g, "beta", cases[k].beta);
        set_float(g, "bias", cases[k].bias);
        float *y;
        sal_shape ys;
        sal_error err = {0};
        const float *rt[1] = {x};
        cr_assert_eq(tu_forward(g, rt, &y, &ys, &err), SAL_OK, "%s", err.msg);
        expect_shape(&ys, &xs, "lrn", seed);
        double *ref = malloc(sizeof(double) * (size_t)nx);
        ref_lrn(x, &xs, cases[k].size, cases[k].alpha, cases[k].beta, cases[k].bias, ref);
        double e = rel_err(y, ref, nx);
        cr_expect_lt(e, 1e-5, "lrn case %zu: forward error %g (seed %llu)", k, e, ULL(seed));
        tu_grad_result r = tu_grad_check(g, seed + k, -2.f, 2.f, 1e-2f, 200);
        cr_assert_eq(r.st, SAL_OK, "%s", r.msg);
        cr_expect_lt(r.max_err, 1e-2, "lrn case %zu: gradient error %g (seed %llu)", k, r.max_err, ULL(seed));
        free(ref); free(y); free(x);
        sal_graph_free(g);
    }
}

Test(lrn, bad_inputs) {
    char msg[SAL_ERROR_LEN];
    tu_input ins[1] = {{SHP(1, 4, 3, 3), NULL, NULL}};
    sal_graph *g = tu_node_graph("LRN", 1, ins, 1);   /* size missing */
    cr_expect_eq(infer_status(g, msg, sizeof msg), SAL_ERR_SHAPE, "%s", msg);
    sal_graph_free(g);
}

/* ------------------------------------------------------------------------------------------------ */
/* ONNX conformance cases of these ops (one-node models from libonnx-testdata)                      */

#define ONNX_NODE_DIR "/usr/share/libonnx-testdata/data/node"

typedef struct onnx_case {
    char dir[64];
    sal_status expect;   /* SAL_OK, or the status the model must fail with (at load or infer) */
} onnx_case;

static onnx_case onnx_cases[] = {
    {"test_averagepool_1d_default", SAL_OK}, {"test_averagepool_2d_ceil", SAL_OK},
    {"test_averagepool_2d_default", SAL_OK}, {"test_averagepool_2d_pads", SAL_OK},
    {"test_averagepool_2d_pads_count_include_pad", SAL_OK}, {"test_averagepool_2d_precomputed_pads", SAL_OK},
    {"test_averagepool_2d_precomputed_pads_count_include_pad", SAL_OK},
    {"test_averagepool_2d_precomputed_same_upper", SAL_OK},
    {"test_averagepool_2d_precomputed_strides", SAL_OK},
    {"test_averagepool_2d_same_lower", SAL_OK}, {"test_averagepool_2d_same_upper", SAL_OK},
    {"test_averagepool_2d_strides", SAL_OK}, {"test_averagepool_3d_default", SAL_ERR_UNSUPPORTED},
    {"test_basic_conv_with_padding", SAL_OK}, {"test_basic_conv_without_padding", SAL_OK},
    {"test_conv_with_autopad_same", SAL_OK}, {"test_conv_with_strides_and_asymmetric_padding", SAL_OK},
    {"test_conv_with_strides_no_padding", SAL_OK}, {"test_conv_with_strides_padding", SAL_OK},
    {"test_batchnorm_epsilon", SAL_OK}, {"test_batchnorm_example", SAL_OK},
    {"test_batchnorm_epsilon_training_mode", SAL_ERR_UNSUPPORTED},
    {"test_batchnorm_example_training_mode", SAL_ERR_UNSUPPORTED},
    {"test_gemm_all_attributes", SAL_OK}, {"test_gemm_alpha", SAL_OK}, {"test_gemm_beta", SAL_OK},
    {"test_gemm_default_matrix_bias", SAL_OK}, {"test_gemm_default_no_bias", SAL_OK},
    {"test_gemm_default_scalar_bias", SAL_OK}, {"test_gemm_default_single_elem_vector_bias", SAL_OK},
    {"test_gemm_default_vector_bias", SAL_OK}, {"test_gemm_default_zero_bias", SAL_OK},
    {"test_gemm_transposeA", SAL_OK}, {"test_gemm_transposeB", SAL_OK},
    {"test_globalaveragepool", SAL_OK}, {"test_globalaveragepool_precomputed", SAL_OK},
    {"test_lrn", SAL_OK}, {"test_lrn_default", SAL_OK},
    {"test_matmul_2d", SAL_OK}, {"test_matmul_3d", SAL_OK}, {"test_matmul_4d", SAL_OK},
    {"test_maxpool_1d_default", SAL_OK}, {"test_maxpool_2d_ceil", SAL_OK},
    {"test_maxpool_2d_default", SAL_OK},
    {"test_maxpool_2d_dilations", SAL_OK}, {"test_maxpool_2d_pads", SAL_OK},
    {"test_maxpool_2d_precomputed_pads", SAL_OK}, {"test_maxpool_2d_precomputed_same_upper", SAL_OK},
    {"test_maxpool_2d_precomputed_strides", SAL_OK}, {"test_maxpool_2d_same_lower", SAL_OK},
    {"test_maxpool_2d_same_upper", SAL_OK}, {"test_maxpool_2d_strides", SAL_OK},
    {"test_maxpool_3d_default", SAL_ERR_UNSUPPORTED},
    {"test_maxpool_with_argmax_2d_precomputed_pads", SAL_ERR_UNSUPPORTED},
    {"test_maxpool_with_argmax_2d_precomputed_strides", SAL_ERR_UNSUPPORTED},
};

static sal_tensor *read_pb(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    rewind(f);
    void *buf = malloc((size_t)len + 1);
    size_t got = fread(buf, 1, (size_t)len, f);
    fclose(f);
    sal_tensor *t = NULL;
    char *name = NULL;
    sal_error err = {0};
    if (got != (size_t)len || sal_tensor_from_onnx_pb(buf, (size_t)len, &t, &name, &err) != SAL_OK) t = NULL;
    free(name);
    free(buf);
    return t;
}

ParameterizedTestParameters(onnx, conformance) {
    return cr_make_param_array(onnx_case, onnx_cases, sizeof onnx_cases / sizeof onnx_cases[0]);
}

ParameterizedTest(onnx_case *oc, onnx, conformance) {
    char path[512];
    struct stat sb;
    snprintf(path, sizeof path, "%s/%s/model.onnx", ONNX_NODE_DIR, oc->dir);
    if (stat(path, &sb) != 0) cr_skip_test("%s not installed (libonnx-testdata)", path);
    sal_model *m = NULL;
    sal_error err = {0};
    sal_status st = sal_model_load(path, &m, &err);
    sal_tensor *ins[8] = {0}, *want = NULL;
    float *y = NULL;
    if (st == SAL_OK) {
        sal_graph *g = m->g;
        cr_assert_eq(g->n_nodes, 1, "%s: %d nodes", oc->dir, g->n_nodes);
        /* input_i.pb is graph input i; hand them to tu_forward in the node's input order */
        const float *rt[8] = {0};
        int k = 0;
        for (int i = 0; i < g->n_inputs && i < 8; i++) {
            snprintf(path, sizeof path, "%s/%s/test_data_set_0/input_%d.pb", ONNX_NODE_DIR, oc->dir, i);
            ins[i] = read_pb(path);
            cr_assert(ins[i], "%s: cannot read %s", oc->dir, path);
        }
        const sal_node *n = &g->nodes[0];
        for (int j = 0; j < n->n_in; j++) {
            if (n->in[j] < 0 || g->values[n->in[j]].konst) continue;
            for (int i = 0; i < g->n_inputs; i++)
                if (g->inputs[i] == n->in[j]) rt[k++] = ins[i]->dtype == SAL_F32 ? ins[i]->data : NULL;
        }
        sal_shape ys;
        st = tu_forward(g, rt, &y, &ys, &err);
        if (st == SAL_OK) {
            snprintf(path, sizeof path, "%s/%s/test_data_set_0/output_0.pb", ONNX_NODE_DIR, oc->dir);
            want = read_pb(path);
            cr_assert(want, "%s: cannot read %s", oc->dir, path);
            char a[128], b[128];
            cr_assert(sal_shape_eq(&ys, &want->shape), "%s: shape %s, expected %s", oc->dir,
                      sal_shape_str(&ys, a, sizeof a), sal_shape_str(&want->shape, b, sizeof b));
            const float *w = want->data;
            for (int64_t i = 0; i < sal_shape_numel(&ys); i++)
                cr_assert(fabsf(y[i] - w[i]) <= 1e-5f + 1e-4f * fabsf(w[i]),
                          "%s: y[%lld] = %.7g, expected %.7g", oc->dir, (long long)i, y[i], w[i]);
        }
    }
    if (oc->expect == SAL_OK)
        cr_expect_eq(st, SAL_OK, "%s: %s", oc->dir, err.msg);
    else
        cr_expect_eq(st, oc->expect, "%s: status %s (%s), expected %s", oc->dir, sal_status_str(st), err.msg,
                     sal_status_str(oc->expect));
    free(y);
    for (int i = 0; i < 8; i++) sal_tensor_free(ins[i]);
    sal_tensor_free(want);
    sal_model_free(m);
}
