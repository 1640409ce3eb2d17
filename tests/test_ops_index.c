/* test_ops_index.c — issue 13's indexing and layout ops on activations (host/ops/infer_index.c,
 * kernels/twin_index.h as the CPU runs them): Slice, Gather (the class token x[:, 0], repeated
 * indices), Expand, Tile, Where, DepthToSpace, SpaceToDepth; and the shape arithmetic the folder
 * evaluates on constants (host/model/fold_shape.c: Equal, Less, Greater, Not, Mod, Range,
 * ScatterND, Where/Expand/Tile on int64). Forward values against hand-written index formulas and
 * hand-computed constants; input gradients against central differences (tu_grad_check: these ops
 * are linear, so the check is tight). Every run draws a fresh seed, printed on failure. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "model/fold.h"
#include "ops/op_decls.h"

typedef unsigned long long ull;

/* ------------------------------------------------------------------------------------------------ */
/* Helpers                                                                                          */

static int64_t numel(sal_shape s) {
    int64_t n = 1;
    for (int i = 0; i < s.ndim; i++) n *= s.d[i];
    return n;
}

static int shape_is(sal_shape s, sal_shape e) {
    if (s.ndim != e.ndim) return 0;
    for (int i = 0; i < s.ndim; i++)
        if (s.d[i] != e.d[i]) return 0;
    return 1;
}

static sal_graph *node(const char *op, int n_in, const tu_input *ins, int opset) {
    sal_graph *g = tu_op_graph(op, n_in, ins, 1, opset);
    cr_assert(g, "tu_op_graph(%s) failed", op);
    return g;
}

static sal_node *N0(sal_graph *g) { return &g->nodes[0]; }

/* The runtime inputs (node order) filled from seed in [-1, 1], and output 0 through the CPU. */
typedef struct run {
    int n;
    float *x[4];
    float *y;
    sal_shape ys;
} run;

static void run_fwd(sal_graph *g, uint64_t seed, run *r) {
    memset(r, 0, sizeof *r);
    const sal_node *n = &g->nodes[0];
    uint64_t s = seed;
    for (int i = 0; i < n->n_in; i++) {
        int v = n->in[i];
        if (v < 0 || g->values[v].konst) continue;
        r->x[r->n++] = tu_rand_buf(numel(g->values[v].decl), &s, -1.f, 1.f);
    }
    sal_error err = {0};
    sal_status st = tu_forward(g, (const float *const *)r->x, &r->y, &r->ys, &err);
    cr_assert(st == SAL_OK, "%s forward: %s (%s) (seed %llu)", n->op_type, sal_status_str(st),
              err.msg, (ull)seed);
}

static void run_free(run *r) {
    for (int i = 0; i < r->n; i++) free(r->x[i]);
    free(r->y);
}

static void check_grad(sal_graph *g, uint64_t seed, const char *what) {
    tu_grad_result gr = tu_grad_check(g, seed, -1.f, 1.f, 1e-2f, 400);
    cr_assert(gr.st == SAL_OK, "%s: gradient check: %s (%s)", what, sal_status_str(gr.st), gr.msg);
    cr_assert(gr.checked > 0, "%s: nothing checked", what);
    cr_assert(gr.max_err < 1e-4, "%s: gradient error %g (seed %llu)", what, gr.max_err, (ull)seed);
}

static sal_status status_of(sal_graph *g, sal_error *err) {
    run r;
    memset(&r, 0, sizeof r);
    const sal_node *n = &g->nodes[0];
    uint64_t s = 7;
    for (int i = 0; i < n->n_in; i++) {
        int v = n->in[i];
        if (v >= 0 && !g->values[v].konst) r.x[r.n++] = tu_rand_buf(numel(g->values[v].decl), &s, 0.f, 1.f);
    }
    sal_status st = tu_forward(g, (const float *const *)r.x, &r.y, &r.ys, err);
    run_free(&r);
    return st;
}

/* ------------------------------------------------------------------------------------------------ */
/* Slice                                                                                            */

/* x (4,6,5): rows 1..2, columns 4,2,0 (start -2, end past the front: clamped to -1, step -2),
 * all of dim 2 */
Test(slice, negative_step_and_clamping) {
    const int64_t st[] = {1, -2}, en[] = {3, -100}, ax[] = {0, 1}, sp[] = {1, -2};
    tu_input in[] = {tu_rt(tu_shape(3, 4, 6, 5)), tu_ci(tu_shape(1, 2), st), tu_ci(tu_shape(1, 2), en),
                     tu_ci(tu_shape(1, 2), ax), tu_ci(tu_shape(1, 2), sp)};
    sal_graph *g = node("Slice", 5, in, 13);
    uint64_t seed = tu_fresh_seed();
    run r;
    run_fwd(g, seed, &r);
    cr_assert(shape_is(r.ys, tu_shape(3, 2, 3, 5)), "shape");
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 3; j++)
            for (int k = 0; k < 5; k++)
                cr_assert(r.y[(i * 3 + j) * 5 + k] == r.x[0][((1 + i) * 6 + (4 - 2 * j)) * 5 + k],
                          "y[%d][%d][%d]", i, j, k);
    run_free(&r);
    check_grad(g, seed, "Slice negative step");
    sal_graph_free(g);
    /* a start before the front with a negative step clamps to -1: x[-100:-100:-1] is empty */
    const int64_t st2[] = {-100}, en2[] = {-100}, ax2[] = {0}, sp2[] = {-1};
    tu_input in2[] = {tu_rt(tu_shape(2, 4, 3)), tu_ci(tu_shape(1, 1), st2), tu_ci(tu_shape(1, 1), en2),
                      tu_ci(tu_shape(1, 1), ax2), tu_ci(tu_shape(1, 1), sp2)};
    g = node("Slice", 5, in2, 13);
    run_fwd(g, seed, &r);
    cr_assert(shape_is(r.ys, tu_shape(2, 0, 3)), "x[-100:-100:-1]: %lld rows", (long long)r.ys.d[0]);
    run_free(&r);
    sal_graph_free(g);
}

/* torch's chunk(2, dim=1) of (2,6,3) exports two Slices: the second half, axes negative; and
 * the opset-1 attribute form of the same. */
Test(slice, chunk_and_attribute_form) {
    const int64_t st[] = {3}, en[] = {6}, ax[] = {-2};
    tu_input in[] = {tu_rt(tu_shape(3, 2, 6, 3)), tu_ci(tu_shape(1, 1), st), tu_ci(tu_shape(1, 1), en),
                     tu_ci(tu_shape(1, 1), ax)};
    for (int form = 0; form < 2; form++) {
        sal_graph *g = form ? node("Slice", 1, in, 1) : node("Slice", 4, in, 13);
        if (form) {
            sal_node_attr_ints(N0(g), "starts", 1, st);
            sal_node_attr_ints(N0(g), "ends", 1, en);
            sal_node_attr_ints(N0(g), "axes", 1, ax);
        }
        uint64_t seed = tu_fresh_seed();
        run r;
        run_fwd(g, seed, &r);
        cr_assert(shape_is(r.ys, tu_shape(3, 2, 3, 3)), "form %d: shape", form);
        for (int n = 0; n < 2; n++)
            for (int c = 0; c < 3; c++)
                for (int k = 0; k < 3; k++)
                    cr_assert(r.y[(n * 3 + c) * 3 + k] == r.x[0][(n * 6 + 3 + c) * 3 + k], "form %d", form);
        run_free(&r);
        check_grad(g, seed, form ? "Slice-1 attributes" : "Slice chunk");
        sal_graph_free(g);
    }
}

Test(slice, bad) {
    const int64_t st[] = {0}, en[] = {2}, ax[] = {0}, zero[] = {0}, big[] = {3};
    tu_input in[] = {tu_rt(tu_shape(2, 4, 4)), tu_ci(tu_shape(1, 1), st), tu_ci(tu_shape(1, 1), en),
                     tu_ci(tu_shape(1, 1), ax), tu_ci(tu_shape(1, 1), zero)};
    sal_graph *g = node("Slice", 5, in, 13);
    sal_error err = {0};
    sal_status s = status_of(g, &err);
    cr_assert(s == SAL_ERR_SHAPE && strstr(err.msg, "step") && strstr(err.msg, "node0"), "step 0: %s", err.msg);
    sal_graph_free(g);
    in[3] = tu_ci(tu_shape(1, 1), big);
    g = node("Slice", 4, in, 13);
    s = status_of(g, &err);
    cr_assert(s == SAL_ERR_SHAPE && strstr(err.msg, "axis 3"), "axis 3 of rank 2: %s", err.msg);
    sal_graph_free(g);
    tu_input rt[] = {tu_rt(tu_shape(2, 4, 4)), tu_rt(tu_shape(1, 1)), tu_ci(tu_shape(1, 1), en)};
    g = node("Slice", 3, rt, 13);
    s = status_of(g, &err);
    cr_assert(s == SAL_ERR_UNSUPPORTED && strstr(err.msg, "starts"), "run-time starts: %s", err.msg);
    sal_graph_free(g);
}

/* ------------------------------------------------------------------------------------------------ */
/* Gather                                                                                           */

/* ViT's class token: x (2, 5, 8)[:, 0] -> (2, 8) */
Test(gather, class_token) {
    const int64_t zero = 0;
    tu_input in[] = {tu_rt(tu_shape(3, 2, 5, 8)), tu_ci(tu_shape(0), &zero)};
    sal_graph *g = node("Gather", 2, in, 13);
    sal_node_attr_int(N0(g), "axis", 1);
    uint64_t seed = tu_fresh_seed();
    run r;
    run_fwd(g, seed, &r);
    cr_assert(shape_is(r.ys, tu_shape(2, 2, 8)), "shape");
    for (int n = 0; n < 2; n++)
        for (int c = 0; c < 8; c++) cr_assert(r.y[n * 8 + c] == r.x[0][n * 40 + c], "y[%d][%d]", n, c);
    run_free(&r);
    check_grad(g, seed, "Gather class token");
    sal_graph_free(g);
}

/* indices (2,2) = [[3,-1],[3,0]] on the last axis of (2,3,5): 4 repeated, negative; the backward
 * sums the repeated reads (scatter-add). */
Test(gather, repeated_negative_indices_2d) {
    const int64_t idx[] = {3, -1, 3, 0};
    tu_input in[] = {tu_rt(tu_shape(3, 2, 3, 5)), tu_ci(tu_shape(2, 2, 2), idx)};
    sal_graph *g = node("Gather", 2, in, 13);
    sal_node_attr_int(N0(g), "axis", -1);
    uint64_t seed = tu_fresh_seed();
    run r;
    run_fwd(g, seed, &r);
    cr_assert(shape_is(r.ys, tu_shape(4, 2, 3, 2, 2)), "shape");
    const int src[4] = {3, 4, 3, 0};
    for (int o = 0; o < 6; o++)
        for (int t = 0; t < 4; t++) cr_assert(r.y[o * 4 + t] == r.x[0][o * 5 + src[t]], "y[%d][%d]", o, t);
    run_free(&r);
    check_grad(g, seed, "Gather repeated");
    sal_graph_free(g);
}

Test(gather, bad) {
    const int64_t out_of_range = 5;
    tu_input in[] = {tu_rt(tu_shape(2, 3, 5)), tu_ci(tu_shape(0), &out_of_range)};
    sal_graph *g = node("Gather", 2, in, 13);
    sal_error err = {0};
    sal_status s = status_of(g, &err);
    cr_assert(s == SAL_ERR_SHAPE && strstr(err.msg, "index 5"), "index 5 of 3: %s", err.msg);
    sal_graph_free(g);
    tu_input rt[] = {tu_rt(tu_shape(2, 3, 5)), tu_rt(tu_shape(1, 2))};
    g = node("Gather", 2, rt, 13);
    s = status_of(g, &err);
    cr_assert(s == SAL_ERR_UNSUPPORTED && strstr(err.msg, "indices"), "run-time indices: %s", err.msg);
    sal_graph_free(g);
}

/* ------------------------------------------------------------------------------------------------ */
/* Expand, Tile                                                                                     */

Test(expand, both_ways) {
    /* (3,1) to (2,3,4): y[a][b][c] = x[b] */
    const int64_t s1[] = {2, 3, 4};
    tu_input in[] = {tu_rt(tu_shape(2, 3, 1)), tu_ci(tu_shape(1, 3), s1)};
    sal_graph *g = node("Expand", 2, in, 13);
    uint64_t seed = tu_fresh_seed();
    run r;
    run_fwd(g, seed, &r);
    cr_assert(shape_is(r.ys, tu_shape(3, 2, 3, 4)), "shape");
    for (int i = 0; i < 24; i++) cr_assert(r.y[i] == r.x[0][(i / 4) % 3], "y[%d]", i);
    run_free(&r);
    check_grad(g, seed, "Expand (3,1) -> (2,3,4)");
    sal_graph_free(g);
    /* (1,4) with shape (3,1): numpy's both-way broadcast gives (3,4) */
    const int64_t s2[] = {3, 1};
    tu_input in2[] = {tu_rt(tu_shape(2, 1, 4)), tu_ci(tu_shape(1, 2), s2)};
    g = node("Expand", 2, in2, 8);
    seed = tu_fresh_seed();
    run_fwd(g, seed, &r);
    cr_assert(shape_is(r.ys, tu_shape(2, 3, 4)), "shape (3,4)");
    for (int i = 0; i < 12; i++) cr_assert(r.y[i] == r.x[0][i % 4], "y[%d]", i);
    run_free(&r);
    check_grad(g, seed, "Expand (1,4) by (3,1)");
    sal_graph_free(g);
    const int64_t s3[] = {3, 3};
    tu_input bad[] = {tu_rt(tu_shape(2, 2, 4)), tu_ci(tu_shape(1, 2), s3)};
    g = node("Expand", 2, bad, 13);
    sal_error err = {0};
    cr_assert(status_of(g, &err) == SAL_ERR_SHAPE && strstr(err.msg, "broadcast"), "(2,4) to (3,3): %s", err.msg);
    sal_graph_free(g);
}

Test(tile, repeats) {
    const int64_t rep[] = {2, 3};
    tu_input in[] = {tu_rt(tu_shape(2, 2, 3)), tu_ci(tu_shape(1, 2), rep)};
    sal_graph *g = node("Tile", 2, in, 13);
    uint64_t seed = tu_fresh_seed();
    run r;
    run_fwd(g, seed, &r);
    cr_assert(shape_is(r.ys, tu_shape(2, 4, 9)), "shape");
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 9; j++) cr_assert(r.y[i * 9 + j] == r.x[0][(i % 2) * 3 + j % 3], "y[%d][%d]", i, j);
    run_free(&r);
    check_grad(g, seed, "Tile");
    sal_graph_free(g);
    const int64_t one[] = {2};
    tu_input bad[] = {tu_rt(tu_shape(2, 2, 3)), tu_ci(tu_shape(1, 1), one)};
    g = node("Tile", 2, bad, 13);
    sal_error err = {0};
    cr_assert(status_of(g, &err) == SAL_ERR_SHAPE && strstr(err.msg, "repeats"), "1 repeat for rank 2: %s", err.msg);
    sal_graph_free(g);
}

/* ------------------------------------------------------------------------------------------------ */
/* Where                                                                                            */

/* cond (1,4) (the kernels read it as 0/1 floats; the engine converts ONNX's bool), X (3,4) and
 * Y (3,1) runtime: both gradients, Y's summed over the positions that pick it. */
Test(where, broadcast_and_gradients) {
    const float cond[4] = {1.f, 0.f, 0.f, 1.f};
    tu_input in[] = {tu_cf(tu_shape(2, 1, 4), cond), tu_rt(tu_shape(2, 3, 4)), tu_rt(tu_shape(2, 3, 1))};
    sal_graph *g = node("Where", 3, in, 16);
    uint64_t seed = tu_fresh_seed();
    run r;
    run_fwd(g, seed, &r);
    cr_assert(shape_is(r.ys, tu_shape(2, 3, 4)), "shape");
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 4; j++)
            cr_assert(r.y[i * 4 + j] == (cond[j] != 0.f ? r.x[0][i * 4 + j] : r.x[1][i]), "y[%d][%d]", i, j);
    run_free(&r);
    check_grad(g, seed, "Where");
    sal_graph_free(g);
    tu_input rt[] = {tu_rt(tu_shape(2, 1, 4)), tu_rt(tu_shape(2, 3, 4)), tu_rt(tu_shape(2, 3, 1))};
    g = node("Where", 3, rt, 16);
    sal_error err = {0};
    cr_assert(status_of(g, &err) == SAL_ERR_UNSUPPORTED && strstr(err.msg, "condition"),
              "run-time condition: %s", err.msg);
    sal_graph_free(g);
}

/* ------------------------------------------------------------------------------------------------ */
/* DepthToSpace, SpaceToDepth                                                                       */

Test(depthtospace, dcr_crd) {
    const int b = 2, C = 8, H = 2, W = 3, c2 = C / (b * b);
    tu_input in[] = {tu_rt(tu_shape(4, 2, C, H, W))};
    for (int crd = 0; crd < 2; crd++) {
        sal_graph *g = node("DepthToSpace", 1, in, 13);
        sal_node_attr_int(N0(g), "blocksize", b);
        if (crd) sal_node_attr_str(N0(g), "mode", "CRD");
        uint64_t seed = tu_fresh_seed();
        run r;
        run_fwd(g, seed, &r);
        cr_assert(shape_is(r.ys, tu_shape(4, 2, c2, H * b, W * b)), "shape");
        for (int n = 0; n < 2; n++)
            for (int c = 0; c < c2; c++)
                for (int y = 0; y < H * b; y++)
                    for (int x = 0; x < W * b; x++) {
                        int h = y / b, i = y % b, w = x / b, j = x % b;
                        int ch = crd ? c * b * b + i * b + j : (i * b + j) * c2 + c;
                        float want = r.x[0][((n * C + ch) * H + h) * W + w];
                        cr_assert(r.y[((n * c2 + c) * H * b + y) * W * b + x] == want,
                                  "%s y[%d][%d][%d][%d]", crd ? "CRD" : "DCR", n, c, y, x);
                    }
        run_free(&r);
        check_grad(g, seed, crd ? "DepthToSpace CRD" : "DepthToSpace DCR");
        sal_graph_free(g);
    }
    tu_input bad[] = {tu_rt(tu_shape(4, 1, 6, 2, 2))};
    sal_graph *g = node("DepthToSpace", 1, bad, 13);
    sal_node_attr_int(N0(g), "blocksize", 2);
    sal_error err = {0};
    cr_assert(status_of(g, &err) == SAL_ERR_SHAPE && strstr(err.msg, "6 channels"), "6 channels: %s", err.msg);
    sal_graph_free(g);
}

Test(spacetodepth, layout) {
    const int b = 2, C = 3, H = 4, W = 6;
    tu_input in[] = {tu_rt(tu_shape(4, 2, C, H, W))};
    sal_graph *g = node("SpaceToDepth", 1, in, 13);
    sal_node_attr_int(N0(g), "blocksize", b);
    uint64_t seed = tu_fresh_seed();
    run r;
    run_fwd(g, seed, &r);
    cr_assert(shape_is(r.ys, tu_shape(4, 2, C * b * b, H / b, W / b)), "shape");
    for (int n = 0; n < 2; n++)
        for (int c = 0; c < C; c++)
            for (int i = 0; i < b; i++)
                for (int j = 0; j < b; j++)
                    for (int h = 0; h < H / b; h++)
                        for (int w = 0; w < W / b; w++) {
                            int oc = (i * b + j) * C + c;
                            float got = r.y[((n * C * b * b + oc) * (H / b) + h) * (W / b) + w];
                            cr_assert(got == r.x[0][((n * C + c) * H + h * b + i) * W + w * b + j], "oc %d", oc);
                        }
    run_free(&r);
    check_grad(g, seed, "SpaceToDepth");
    sal_graph_free(g);
}

/* ------------------------------------------------------------------------------------------------ */
/* Shape arithmetic on constants (fold_shape.c): hand-computed results                              */

/* Fold node 0 of g (all inputs constants); returns output 0 (caller frees). */
static sal_tensor *fold0(sal_graph *g) {
    const sal_node *n = &g->nodes[0];
    const sal_tensor *in[8];
    const sal_shape *shp[8];
    for (int i = 0; i < n->n_in; i++) {
        in[i] = n->in[i] >= 0 ? g->values[n->in[i]].konst : NULL;
        shp[i] = in[i] ? &in[i]->shape : NULL;
    }
    sal_tensor *out[8] = {0};
    sal_error err = {0};
    sal_status st = sal_fold_node(g, n, in, shp, out, &err);
    cr_assert(st == SAL_OK, "%s: %s", n->op_type, err.msg);
    return out[0];
}

static void expect_i64(const sal_tensor *t, int dtype, sal_shape s, const int64_t *v, const char *what) {
    cr_assert(t->dtype == (sal_dtype)dtype, "%s: dtype %s", what, sal_dtype_name(t->dtype));
    cr_assert(shape_is(t->shape, s), "%s: shape", what);
    for (int64_t i = 0; i < numel(s); i++)
        cr_assert(sal_tensor_i64(t, i) == v[i], "%s: [%lld] = %lld, expected %lld", what, (long long)i,
                  (long long)sal_tensor_i64(t, i), (long long)v[i]);
}

static sal_tensor *fold_op(const char *op, int n_in, const tu_input *in, int opset) {
    sal_graph *g = node(op, n_in, in, opset);
    sal_tensor *t = fold0(g);
    sal_graph_free(g);
    return t;
}

Test(fold, compare_not_where) {
    /* torch's expand() with -1 entries exports Where(Equal(shape, -1), ones, shape) */
    const int64_t a[] = {1, -1, 3, 4}, m1[] = {-1}, three[] = {3}, one[] = {1};
    tu_input in[] = {tu_ci(tu_shape(1, 4), a), tu_ci(tu_shape(0), m1)};
    sal_tensor *eq = fold_op("Equal", 2, in, 13);
    const int64_t eqv[] = {0, 1, 0, 0};
    expect_i64(eq, SAL_BOOL, tu_shape(1, 4), eqv, "Equal(shape, -1)");
    sal_graph *g = node("Where", 3, (tu_input[]){tu_ci(tu_shape(1, 4), eqv), tu_ci(tu_shape(0), one),
                                                 tu_ci(tu_shape(1, 4), a)}, 16);
    sal_tensor_free(g->values[g->nodes[0].in[0]].konst);
    g->values[g->nodes[0].in[0]].konst = sal_tensor_clone(eq);   /* a real bool condition */
    sal_tensor *w = fold0(g);
    const int64_t wv[] = {1, 1, 3, 4};
    expect_i64(w, SAL_I64, tu_shape(1, 4), wv, "Where(cond, 1, shape)");
    sal_graph_free(g);
    sal_tensor_free(w);
    g = node("Not", 1, (tu_input[]){tu_ci(tu_shape(1, 4), eqv)}, 1);
    sal_tensor_free(g->values[g->nodes[0].in[0]].konst);
    g->values[g->nodes[0].in[0]].konst = eq;
    sal_tensor *nt = fold0(g);
    const int64_t nv[] = {1, 0, 1, 1};
    expect_i64(nt, SAL_BOOL, tu_shape(1, 4), nv, "Not");
    sal_graph_free(g);
    sal_tensor_free(nt);
    tu_input in3[] = {tu_ci(tu_shape(1, 4), a), tu_ci(tu_shape(0), three)};
    const int64_t eq3[] = {0, 0, 1, 0}, lt[] = {1, 1, 0, 0}, gt[] = {0, 0, 0, 1};
    sal_tensor *t = fold_op("Equal", 2, in3, 13);
    expect_i64(t, SAL_BOOL, tu_shape(1, 4), eq3, "Equal(a, 3)");
    sal_tensor_free(t);
    t = fold_op("Less", 2, in3, 13);
    expect_i64(t, SAL_BOOL, tu_shape(1, 4), lt, "Less");
    sal_tensor_free(t);
    t = fold_op("Greater", 2, in3, 13);
    expect_i64(t, SAL_BOOL, tu_shape(1, 4), gt, "Greater");
    sal_tensor_free(t);
    const int64_t ge[] = {0, 0, 1, 1}, le[] = {1, 1, 1, 0};
    t = fold_op("GreaterOrEqual", 2, in3, 16);
    expect_i64(t, SAL_BOOL, tu_shape(1, 4), ge, "GreaterOrEqual");
    sal_tensor_free(t);
    t = fold_op("LessOrEqual", 2, in3, 16);
    expect_i64(t, SAL_BOOL, tu_shape(1, 4), le, "LessOrEqual");
    sal_tensor_free(t);
    /* And / Or of (4) with (2,1): a (2,4) table */
    const int64_t p[] = {0, 1, 0, 1}, q[] = {0, 1}, andv[] = {0, 0, 0, 0, 0, 1, 0, 1},
                  orv[] = {0, 1, 0, 1, 1, 1, 1, 1};
    tu_input lg[] = {tu_ci(tu_shape(1, 4), p), tu_ci(tu_shape(2, 2, 1), q)};
    t = fold_op("And", 2, lg, 7);
    expect_i64(t, SAL_BOOL, tu_shape(2, 2, 4), andv, "And");
    sal_tensor_free(t);
    t = fold_op("Or", 2, lg, 7);
    expect_i64(t, SAL_BOOL, tu_shape(2, 2, 4), orv, "Or");
    sal_tensor_free(t);
}

Test(fold, mod_range) {
    const int64_t a[] = {-7, 7, -7, 7}, b[] = {3, -3, -3, 3};
    tu_input in[] = {tu_ci(tu_shape(1, 4), a), tu_ci(tu_shape(1, 4), b)};
    sal_graph *g = node("Mod", 2, in, 13);
    sal_tensor *t = fold0(g);
    const int64_t py[] = {2, -2, -1, 1};   /* Python's %: the sign of the divisor */
    expect_i64(t, SAL_I64, tu_shape(1, 4), py, "Mod");
    sal_tensor_free(t);
    sal_node_attr_int(N0(g), "fmod", 1);
    t = fold0(g);
    const int64_t c[] = {-1, 1, -1, 1};    /* C's fmod: the sign of the dividend */
    expect_i64(t, SAL_I64, tu_shape(1, 4), c, "Mod fmod");
    sal_tensor_free(t);
    sal_graph_free(g);
    const int64_t s = 2, l = 10, d = 3, s2 = 5, l2 = 1, d2 = -2;
    tu_input r1[] = {tu_ci(tu_shape(0), &s), tu_ci(tu_shape(0), &l), tu_ci(tu_shape(0), &d)};
    t = fold_op("Range", 3, r1, 11);
    const int64_t rv[] = {2, 5, 8};
    expect_i64(t, SAL_I64, tu_shape(1, 3), rv, "Range 2..10 by 3");
    sal_tensor_free(t);
    tu_input r2[] = {tu_ci(tu_shape(0), &s2), tu_ci(tu_shape(0), &l2), tu_ci(tu_shape(0), &d2)};
    t = fold_op("Range", 3, r2, 11);
    const int64_t rv2[] = {5, 3};
    expect_i64(t, SAL_I64, tu_shape(1, 2), rv2, "Range 5..1 by -2");
    sal_tensor_free(t);
}

Test(fold, scatternd_expand_tile) {
    /* data (4,2); rows 3 and 0 replaced */
    const int64_t data[] = {1, 2, 3, 4, 5, 6, 7, 8}, idx[] = {3, 0}, upd[] = {-1, -2, -3, -4};
    tu_input in[] = {tu_ci(tu_shape(2, 4, 2), data), tu_ci(tu_shape(2, 2, 1), idx), tu_ci(tu_shape(2, 2, 2), upd)};
    sal_tensor *t = fold_op("ScatterND", 3, in, 16);
    const int64_t sv[] = {-3, -4, 3, 4, 5, 6, -1, -2};
    expect_i64(t, SAL_I64, tu_shape(2, 4, 2), sv, "ScatterND");
    sal_tensor_free(t);
    const int64_t x[] = {1, 2}, shape[] = {2, 1, 2};
    tu_input ex[] = {tu_ci(tu_shape(1, 2), x), tu_ci(tu_shape(1, 3), shape)};
    t = fold_op("Expand", 2, ex, 13);
    const int64_t evv[] = {1, 2, 1, 2};
    expect_i64(t, SAL_I64, tu_shape(3, 2, 1, 2), evv, "Expand int64");
    sal_tensor_free(t);
    const int64_t rep[] = {3};
    tu_input ti[] = {tu_ci(tu_shape(1, 2), x), tu_ci(tu_shape(1, 1), rep)};
    t = fold_op("Tile", 2, ti, 13);
    const int64_t tv[] = {1, 2, 1, 2, 1, 2};
    expect_i64(t, SAL_I64, tu_shape(1, 6), tv, "Tile int64");
    sal_tensor_free(t);
}
