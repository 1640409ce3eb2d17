/* plan_elem.c — launch plans of kernels/twin_elem.h's ops: activations, Add/Sub/Mul/Div,
 * BatchNormalization (inference) and Softmax. Contract: kernels/twin_all.h (sal_tw_plan).
 *
 * Forward: one launch over the output's elements (Softmax: over its rows).
 * Backward: nothing when gout[0] is NULL; otherwise one launch per input whose gin is not NULL:
 * activations over x's elements; a binary op's output-sized input over its elements, a broadcast
 * one over ITS elements, each call summing every output position that read it (deterministic,
 * no atomics); BatchNorm one launch for dx and one over the channels for the statistics. */
#include "plan_util.h"

static int64_t numel(const sal_shape *s) { return sal_shape_numel(s); }

static int bin_code(int op) {
    switch (op) {
    case SAL_OP_ADD: return SAL_TW_BIN_ADD;
    case SAL_OP_SUB: return SAL_TW_BIN_SUB;
    case SAL_OP_MUL: return SAL_TW_BIN_MUL;
    default: return SAL_TW_BIN_DIV;
    }
}

/* Activations: element functions fwd/bwd, params copied when the op has them. */
static int plan_act(const sal_op_call *c, int backward, int k, sal_tw_launch *l, sal_tw_args *a,
                    sal_error *err, int fwd, int bwd, int need_params) {
    if (need_params && !c->params) return fail(c, err, "no parameters from infer");
    if (c->n_in < 1 || c->n_out < 1 || !c->in_shape[0] || !c->out_shape[0])
        return fail(c, err, "missing input or output");
    if (k > 0) return 0;
    if (c->params) a->p.s = *(const sal_scalar_params *)c->params;
    a->in[0] = c->in[0];
    if (!backward) {
        a->out[0] = c->out[0];
        return launch(l, fwd, numel(c->out_shape[0]));
    }
    if (!c->gout[0] || !c->gin[0]) return 0;
    a->in[1] = c->out[0];   /* y, for Sigmoid and Tanh */
    a->gout[0] = c->gout[0];
    a->gin[0] = c->gin[0];
    a->guided = c->guided;
    return launch(l, bwd, numel(c->in_shape[0]));
}

static int plan_binary(const sal_op_call *c, int backward, int k, sal_tw_launch *l,
                       sal_tw_args *a, sal_error *err) {
    if (!c->params) return fail(c, err, "no parameters from infer");
    if (c->n_in < 2 || c->n_out < 1 || !c->in_shape[0] || !c->in_shape[1])
        return fail(c, err, "missing input");
    const sal_bcast_params *p = c->params;
    if (p->ndim < 0 || p->ndim > SAL_MAX_DIMS || p->mode < SAL_BC_GENERAL ||
        p->mode > SAL_BC_CHANNEL_B)
        return fail(c, err, "bad broadcast parameters");
    int64_t n = 1;
    for (int d = 0; d < p->ndim; d++) n *= p->out[d];
    if (n == 0) return 0;
    a->p.b = *p;
    a->k0 = bin_code(c->node->op);
    a->in[0] = c->in[0];
    a->in[1] = c->in[1];
    if (!backward) {
        if (k > 0) return 0;
        a->out[0] = c->out[0];
        return launch(l, SAL_TW_bin_fwd, n);
    }
    if (!c->gout[0]) return 0;
    /* launch k: the k-th input (of a, b) whose gradient is wanted */
    int which = -1;
    for (int i = 0, seen = 0; i < 2; i++)
        if (c->gin[i] && seen++ == k) { which = i; break; }
    if (which < 0) return 0;
    const int64_t nx = numel(c->in_shape[which]);
    a->k1 = which;
    a->k2 = nx;
    a->k3 = n;
    a->gout[0] = c->gout[0];
    a->gin[0] = c->gin[which];
    if (nx == n) return launch(l, SAL_TW_bin_bwd_full, n);
    /* a broadcast input: the modes' own layouts of the small input */
    if ((p->mode == SAL_BC_SCALAR_A || p->mode == SAL_BC_SCALAR_B) && nx != 1)
        return fail(c, err, "scalar broadcast of an input with several elements");
    if ((p->mode == SAL_BC_CHANNEL_A || p->mode == SAL_BC_CHANNEL_B) && nx != p->mid)
        return fail(c, err, "channel broadcast of an input that is not (mid)");
    if (p->mode == SAL_BC_SAME) return fail(c, err, "same-size broadcast of a smaller input");
    if (p->mode != SAL_BC_GENERAL &&
        (p->mode == SAL_BC_SCALAR_A || p->mode == SAL_BC_CHANNEL_A) != (which == 0))
        return fail(c, err, "broadcast mode does not match the smaller input");
    return launch(l, SAL_TW_bin_bwd_reduce, nx);
}

static int plan_bn(const sal_op_call *c, int backward, int k, sal_tw_launch *l, sal_tw_args *a,
                   sal_error *err) {
    if (!c->params) return fail(c, err, "no parameters from infer");
    if (c->n_in < 5) return fail(c, err, "needs 5 inputs");
    for (int i = 0; i < 5; i++)
        if (!c->in[i]) return fail(c, err, "missing input");
    const sal_bn_params *p = c->params;
    a->p.bn = *p;
    for (int i = 0; i < 5; i++) a->in[i] = c->in[i];   /* in[4]: SAL_TW_BN_VAR */
    const int64_t n = p->n * p->c * p->inner;
    if (!backward) {
        if (k > 0) return 0;
        a->out[0] = c->out[0];
        return launch(l, SAL_TW_bn_fwd, n);
    }
    if (!c->gout[0]) return 0;
    a->gout[0] = c->gout[0];
    int stats = c->gin[1] || c->gin[2] || c->gin[3] || c->gin[4];
    int step = k;
    if (c->gin[0]) {
        if (step == 0) {
            a->gin[0] = c->gin[0];
            return launch(l, SAL_TW_bn_bwd_x, n);
        }
        step--;
    }
    if (stats && step == 0) {
        for (int i = 1; i < 5; i++) a->gin[i - 1] = c->gin[i];
        return launch(l, SAL_TW_bn_bwd_stats, p->c);
    }
    return 0;
}

static int plan_softmax(const sal_op_call *c, int backward, int k, sal_tw_launch *l,
                        sal_tw_args *a, sal_error *err) {
    if (!c->params) return fail(c, err, "no parameters from infer");
    const sal_axis_params *p = c->params;
    if (k > 0 || p->outer * p->axis_len * p->inner == 0) return 0;
    a->p.ax = *p;
    a->in[0] = c->in[0];
    if (!backward) {
        a->out[0] = c->out[0];
        return launch(l, SAL_TW_softmax_fwd, p->outer * p->inner);
    }
    if (!c->gout[0] || !c->gin[0]) return 0;
    a->in[1] = c->out[0];
    a->gout[0] = c->gout[0];
    a->gin[0] = c->gin[0];
    return launch(l, SAL_TW_softmax_bwd, p->outer * p->inner);
}

/* The activations: op, element functions' name, whether they read scalar parameters. */
#define SAL_TW_ACTS(X) X(RELU, relu, 0) X(LEAKYRELU, leakyrelu, 1) X(CLIP, clip, 1) X(SIGMOID, sigmoid, 0) \
    X(HARDSIGMOID, hardsigmoid, 1) X(HARDSWISH, hardswish, 0) X(TANH, tanh, 0)
#define ACT_CASE(OP, f, np) case SAL_OP_##OP:
#define ACT_PLAN(OP, f, np) \
    case SAL_OP_##OP: return plan_act(c, backward, k, l, a, err, SAL_TW_##f##_fwd, SAL_TW_##f##_bwd, np);

int sal_tw_plan_elem(const sal_op_call *c, int backward, int k, sal_tw_launch *l, sal_tw_args *a,
                     sal_error *err) {
    const int op = c->node->op;
    switch (op) {
    SAL_TW_ACTS(ACT_CASE)
    case SAL_OP_ADD: case SAL_OP_SUB: case SAL_OP_MUL: case SAL_OP_DIV:
    case SAL_OP_BATCHNORM: case SAL_OP_SOFTMAX:
        break;
    default:
        return -2;
    }
    if (backward == -1) return 0;   /* probe: the family's op */
    if (backward && (!c->gout || !c->gout[0])) return 0;   /* zero incoming gradient */
    switch (op) {
    SAL_TW_ACTS(ACT_PLAN)
    case SAL_OP_BATCHNORM:
        return plan_bn(c, backward, k, l, a, err);
    case SAL_OP_SOFTMAX:
        return plan_softmax(c, backward, k, l, a, err);
    default:
        return plan_binary(c, backward, k, l, a, err);
    }
}
