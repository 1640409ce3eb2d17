/* plan_math.c — launch plans of kernels/twin_math.h's ops: Sqrt, Erf, Gelu, Selu, Elu, Softplus,
 * Pow, LayerNormalization, ReduceSum, ReduceMax, GlobalMaxPool and ConvTranspose. Contract: kernels/twin_all.h
 * (sal_tw_plan).
 *
 * Forward: one launch (unary and Pow over the output's elements, LayerNorm over its rows, the
 * reductions over the output's elements). Backward: nothing when gout[0] is NULL; otherwise one
 * launch per input whose gin is not NULL (LayerNorm: x over rows, then Scale and B over their
 * elements). LayerNorm's Mean and InvStdDev outputs carry no gradient: a gradient arriving on
 * them is refused. */
#include "plan_util.h"

static int un_code(const sal_op_call *c) {
    const sal_scalar_params *s = c->params;
    switch (c->node->op) {
    case SAL_OP_SQRT: return SAL_TW_UN_SQRT;
    case SAL_OP_ERF: return SAL_TW_UN_ERF;
    case SAL_OP_GELU: return s->alpha != 0.f ? SAL_TW_UN_GELU_TANH : SAL_TW_UN_GELU;
    case SAL_OP_SELU: return SAL_TW_UN_SELU;
    case SAL_OP_ELU: return SAL_TW_UN_ELU;
    case SAL_OP_SOFTPLUS: return SAL_TW_UN_SOFTPLUS;
    default: return SAL_TW_UN_POWS;
    }
}

/* Element-wise in x: the unary ops and Pow by a scalar (s: their parameters). */
static int plan_unary(const sal_op_call *c, int backward, int k, sal_tw_launch *l, sal_tw_args *a,
                      int code, const sal_scalar_params *s) {
    if (k > 0) return 0;
    a->k0 = code;
    a->p.s = *s;
    a->in[0] = c->in[0];
    if (!backward) {
        a->out[0] = c->out[0];
        return launch(l, SAL_TW_un_fwd, sal_shape_numel(c->out_shape[0]));
    }
    if (!c->gin[0]) return 0;
    a->in[1] = c->out[0];   /* y, for Sqrt */
    a->gout[0] = c->gout[0];
    a->gin[0] = c->gin[0];
    return launch(l, SAL_TW_un_bwd, sal_shape_numel(c->in_shape[0]));
}

static int plan_pow(const sal_op_call *c, int backward, int k, sal_tw_launch *l, sal_tw_args *a,
                    sal_error *err) {
    const sal_pow_params *p = c->params;
    if (p->scalar) {
        sal_scalar_params s = {0};
        s.alpha = p->e;
        return plan_unary(c, backward, k, l, a, SAL_TW_UN_POWS, &s);
    }
    if (c->n_in < 2 || !c->in[1] || !c->in_shape[1]) return fail(c, err, "missing exponent");
    a->p.pw = *p;
    a->in[0] = c->in[0];
    a->in[1] = c->in[1];
    if (!backward) {
        if (k > 0) return 0;
        a->out[0] = c->out[0];
        return launch(l, SAL_TW_pow_fwd, sal_shape_numel(c->out_shape[0]));
    }
    int which = -1;
    for (int i = 0, seen = 0; i < 2; i++)
        if (c->gin[i] && seen++ == k) { which = i; break; }
    if (which < 0) return 0;
    a->k1 = which;
    a->gout[0] = c->gout[0];
    a->gin[0] = c->gin[which];
    return launch(l, SAL_TW_pow_bwd, sal_shape_numel(c->in_shape[which]));
}

static int plan_ln(const sal_op_call *c, int backward, int k, sal_tw_launch *l, sal_tw_args *a,
                   sal_error *err) {
    const sal_ln_params *p = c->params;
    if (c->n_in < 2 || !c->in[1]) return fail(c, err, "missing Scale");
    if (p->bias_n && (c->n_in < 3 || !c->in[2])) return fail(c, err, "missing B");
    a->p.ln = *p;
    a->in[0] = c->in[0];
    a->in[1] = c->in[1];
    a->in[2] = p->bias_n ? c->in[2] : NULL;
    if (!backward) {
        if (k > 0) return 0;
        a->out[0] = c->out[0];
        a->out[1] = c->n_out > 1 ? c->out[1] : NULL;
        a->out[2] = c->n_out > 2 ? c->out[2] : NULL;
        return launch(l, SAL_TW_ln_fwd, p->rows);
    }
    for (int j = 1; j < c->n_out && j < 3; j++)
        if (c->gout[j]) return fail(c, err, "a gradient through the Mean or InvStdDev output is not supported");
    a->gout[0] = c->gout[0];
    /* launches: x, then Scale, then B, each only when its gradient is wanted */
    int step = k;
    if (c->gin[0]) {
        if (step == 0) {
            a->gin[0] = c->gin[0];
            return launch(l, SAL_TW_ln_bwd_x, p->rows);
        }
        step--;
    }
    for (int which = 0; which < 2; which++) {
        const int in = which + 1;
        const int64_t n = which ? p->bias_n : p->scale_n;
        if (n == 0 || in >= c->n_in || !c->gin[in]) continue;
        if (step == 0) {
            a->k1 = which;
            a->gin[0] = c->gin[in];
            return launch(l, SAL_TW_ln_bwd_param, n);
        }
        step--;
    }
    return 0;
}

static int plan_reduce(const sal_op_call *c, int backward, int k, sal_tw_launch *l, sal_tw_args *a) {
    if (k > 0) return 0;
    a->p.ax = *(const sal_axis_params *)c->params;
    a->k0 = c->node->op != SAL_OP_REDUCESUM;   /* ReduceMax, GlobalMaxPool */
    a->in[0] = c->in[0];
    const int64_t n = sal_shape_numel(c->out_shape[0]);
    if (!backward) {
        a->out[0] = c->out[0];
        return launch(l, SAL_TW_red_fwd, n);
    }
    if (!c->gin[0]) return 0;
    a->gout[0] = c->gout[0];
    a->gin[0] = c->gin[0];
    return launch(l, SAL_TW_red_bwd, n);
}

/* ConvTranspose: forward over y; backward-data over x (weights and bias have no gradient here:
 * salient never needs them, and a run-time weight's gradient is refused). */
static int plan_convt(const sal_op_call *c, int backward, int k, sal_tw_launch *l, sal_tw_args *a,
                      sal_error *err) {
    const sal_conv_params *p = c->params;
    if (c->n_in < 2 || !c->in[1]) return fail(c, err, "missing W");
    if (p->has_bias && (c->n_in < 3 || !c->in[2])) return fail(c, err, "missing B");
    if (k > 0) return 0;
    a->p.cv = *p;
    a->in[0] = c->in[0];
    a->in[1] = c->in[1];
    a->in[2] = p->has_bias ? c->in[2] : NULL;
    if (!backward) {
        a->out[0] = c->out[0];
        return launch(l, SAL_TW_convt_fwd, p->n * p->m * p->oh * p->ow);
    }
    if ((c->n_in > 1 && c->gin[1]) || (c->n_in > 2 && c->gin[2]))
        return fail(c, err, "the gradient of a run-time W or B is not supported");
    if (!c->gin[0]) return 0;
    a->gout[0] = c->gout[0];
    a->gin[0] = c->gin[0];
    return launch(l, SAL_TW_convt_bwd, p->n * p->c * p->h * p->w);
}

int sal_tw_plan_math(const sal_op_call *c, int backward, int k, sal_tw_launch *l, sal_tw_args *a,
                     sal_error *err) {
    const int op = c->node->op;
    switch (op) {
    case SAL_OP_SQRT: case SAL_OP_ERF: case SAL_OP_GELU: case SAL_OP_SELU: case SAL_OP_ELU:
    case SAL_OP_SOFTPLUS: case SAL_OP_POW: case SAL_OP_LAYERNORM: case SAL_OP_REDUCESUM:
    case SAL_OP_REDUCEMAX: case SAL_OP_GLOBALMAXPOOL: case SAL_OP_CONVTRANSPOSE:
        break;
    default:
        return -2;
    }
    if (backward == -1) return 0;   /* probe: the family's op */
    if (!c->params) return fail(c, err, "no parameters from infer");
    if (c->n_in < 1 || c->n_out < 1 || !c->in_shape[0] || !c->out_shape[0])
        return fail(c, err, "missing input or output");
    if (backward && (!c->gout || !c->gout[0])) {
        if (op == SAL_OP_LAYERNORM && c->gout)
            for (int j = 1; j < c->n_out && j < 3; j++)
                if (c->gout[j]) return fail(c, err, "a gradient through the Mean or InvStdDev output is not supported");
        return 0;   /* zero incoming gradient */
    }
    switch (op) {
    case SAL_OP_POW: return plan_pow(c, backward, k, l, a, err);
    case SAL_OP_LAYERNORM: return plan_ln(c, backward, k, l, a, err);
    case SAL_OP_CONVTRANSPOSE: return plan_convt(c, backward, k, l, a, err);
    case SAL_OP_REDUCESUM: case SAL_OP_REDUCEMAX: case SAL_OP_GLOBALMAXPOOL:
        return plan_reduce(c, backward, k, l, a);
    default:
        return plan_unary(c, backward, k, l, a, un_code(c), c->params);
    }
}
