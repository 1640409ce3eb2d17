/* plan_nn.c — launch plans of kernels/twin_nn.h's ops: MaxPool, AveragePool, GlobalAveragePool,
 * ReduceMean, LRN, Concat, Transpose, Pad (contract: kernels/twin_all.h, sal_tw_plan).
 *
 * Every op but Concat is one launch: the forward over the elements of y, the backward (a gather)
 * over the elements of x. Concat makes one launch per input: the forward copies the input into its
 * slice of y, the backward gathers its slice of the gradient (inputs whose gin is NULL get none).
 */
#include <string.h>
#include "twin_all.h"

static int plan_fail(const sal_op_call *c, sal_status st, const char *what, sal_error *err) {
    sal_fail(err, st, "node '%s' (%s): %s", c->node->name, c->node->op_type, what);
    return -1;
}

/* The one launch of a single-input op: fn over y (forward) or x (backward). */
static int one_launch(const sal_op_call *c, int backward, int fn, sal_tw_launch *l,
                      sal_tw_args *a) {
    a->in[0] = c->in[0];
    a->in_shape[0] = *c->in_shape[0];
    a->out_shape[0] = *c->out_shape[0];
    l->fn = fn;
    if (!backward) {
        a->out[0] = c->out[0];
        l->count = sal_shape_numel(c->out_shape[0]);
    } else {
        a->gout[0] = c->gout[0];
        a->gin[0] = c->gin[0];
        l->count = sal_shape_numel(c->in_shape[0]);
    }
    return 1;
}

/* Launch k of Concat: the k-th input (forward) or the k-th input with a gin (backward). */
static int concat_launch(const sal_op_call *c, int backward, int k, sal_tw_launch *l,
                         sal_tw_args *a) {
    const sal_axis_params *p = (const sal_axis_params *)c->params;
    int64_t at = 0;
    int seen = 0;
    for (int i = 0; i < c->n_in; i++) {
        const int64_t li = c->in_shape[i]->d[p->axis];
        if (backward && !c->gin[i]) {
            at += li;
            continue;
        }
        if (seen++ < k) {
            at += li;
            continue;
        }
        l->fn = backward ? SAL_TW_concat_bwd : SAL_TW_concat_fwd;
        l->count = sal_shape_numel(c->in_shape[i]);
        a->in_shape[0] = *c->in_shape[i];
        a->out_shape[0] = *c->out_shape[0];
        a->k0 = at;
        a->k1 = li;
        a->k2 = p->inner;
        a->k3 = p->axis_len;
        if (!backward) {
            a->in[0] = c->in[i];
            a->out[0] = c->out[0];
        } else {
            a->gout[0] = c->gout[0];
            a->gin[0] = c->gin[i];
        }
        return 1;
    }
    return 0;
}

int sal_tw_plan_nn(const sal_op_call *c, int backward, int k, sal_tw_launch *l, sal_tw_args *a,
                   sal_error *err) {
    int fwd_fn, bwd_fn;
    switch (c->node->op) {
    case SAL_OP_MAXPOOL: fwd_fn = SAL_TW_maxpool_fwd; bwd_fn = SAL_TW_maxpool_bwd; break;
    case SAL_OP_AVGPOOL: fwd_fn = SAL_TW_avgpool_fwd; bwd_fn = SAL_TW_avgpool_bwd; break;
    case SAL_OP_GLOBALAVGPOOL: fwd_fn = SAL_TW_gavgpool_fwd; bwd_fn = SAL_TW_gavgpool_bwd; break;
    case SAL_OP_REDUCEMEAN: fwd_fn = SAL_TW_reducemean_fwd; bwd_fn = SAL_TW_reducemean_bwd; break;
    case SAL_OP_LRN: fwd_fn = SAL_TW_lrn_fwd; bwd_fn = SAL_TW_lrn_bwd; break;
    case SAL_OP_CONCAT: fwd_fn = SAL_TW_concat_fwd; bwd_fn = SAL_TW_concat_bwd; break;
    case SAL_OP_TRANSPOSE: fwd_fn = SAL_TW_transpose_fwd; bwd_fn = SAL_TW_transpose_bwd; break;
    case SAL_OP_PAD: fwd_fn = SAL_TW_pad_fwd; bwd_fn = SAL_TW_pad_bwd; break;
    default: return -2;
    }
    if (backward < 0) return 0;   /* probe: the family's op, the call is not to be read */
    if (!c->params) return plan_fail(c, SAL_ERR_INTERNAL, "twin plan called without parameters", err);
    if (backward && (!c->gout || !c->gout[0])) return 0;   /* zero gradient: nothing to add */

    switch (c->node->op) {
    case SAL_OP_MAXPOOL:
    case SAL_OP_AVGPOOL:
    case SAL_OP_GLOBALAVGPOOL: {
        const sal_pool_params *p = (const sal_pool_params *)c->params;
        if (p->has_indices)
            return plan_fail(c, SAL_ERR_UNSUPPORTED, "MaxPool's Indices output has no twin", err);
        a->p.pool = *p;
        break;
    }
    case SAL_OP_REDUCEMEAN: a->p.ax = *(const sal_axis_params *)c->params; break;
    case SAL_OP_LRN: a->p.lrn = *(const sal_lrn_params *)c->params; break;
    case SAL_OP_CONCAT: return concat_launch(c, backward, k, l, a);
    case SAL_OP_TRANSPOSE: a->p.t = *(const sal_transpose_params *)c->params; break;
    case SAL_OP_PAD: a->p.pad = *(const sal_pad_params *)c->params; break;
    default: break;
    }
    if (k > 0) return 0;
    if (backward && !c->gin[0]) return 0;   /* x's gradient is not needed */
    return one_launch(c, backward, backward ? bwd_fn : fwd_fn, l, a);
}

void sal_tw_pad_nchw_args(sal_tw_args *a, int64_t n, int64_t c, int64_t h, int64_t w, int64_t pt, int64_t pl,
                          int64_t pb, int64_t pr) {
    memset(a, 0, sizeof *a);
    const int64_t xd[4] = {n, c, h, w}, yd[4] = {n, c, h + pt + pb, w + pl + pr};
    a->in_shape[0].ndim = a->out_shape[0].ndim = 4;
    for (int d = 0; d < 4; d++) {
        a->in_shape[0].d[d] = xd[d];
        a->out_shape[0].d[d] = yd[d];
    }
    a->p.pad.ndim = 4;
    a->p.pad.before[2] = pt;
    a->p.pad.before[3] = pl;
    a->p.pad.after[2] = pb;
    a->p.pad.after[3] = pr;
    a->p.pad.mode = SAL_PAD_CONSTANT;
    a->p.pad.value = 0.f;
}
