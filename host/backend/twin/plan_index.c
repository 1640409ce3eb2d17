/* plan_index.c — launch plans of kernels/twin_index.h's ops: Slice, Gather, DepthToSpace and
 * SpaceToDepth (gather views), Expand and Tile (tile views), Where. Contract: kernels/twin_all.h
 * (sal_tw_plan).
 *
 * Forward: one launch over the output's elements. Backward: nothing when gout[0] is NULL; a gather
 * view scatters each output's gradient into the one input element it read (one launch over the
 * output: the view is injective), except a Gather with repeated indices, which gathers per input
 * element; tile views and Where gather per element of each input whose gin is not NULL (Where's
 * condition has no gradient). */
#include "plan_util.h"

static int plan_view(const sal_op_call *c, int backward, int k, sal_tw_launch *l, sal_tw_args *a) {
    if (k > 0) return 0;
    const sal_view_params *p = c->params;
    a->p.v = *p;
    a->in[0] = c->in[0];
    if (!backward) {
        a->out[0] = c->out[0];
        return launch(l, SAL_TW_view_fwd, sal_shape_numel(c->out_shape[0]));
    }
    if (!c->gin[0]) return 0;
    a->gout[0] = c->gout[0];
    a->gin[0] = c->gin[0];
    if (p->dup) return launch(l, SAL_TW_view_bwd_dup, sal_shape_numel(c->in_shape[0]));
    return launch(l, SAL_TW_view_bwd, sal_shape_numel(c->out_shape[0]));
}

static int plan_tile(const sal_op_call *c, int backward, int k, sal_tw_launch *l, sal_tw_args *a) {
    if (k > 0) return 0;
    a->p.tile = *(const sal_tile_params *)c->params;
    a->in[0] = c->in[0];
    if (!backward) {
        a->out[0] = c->out[0];
        return launch(l, SAL_TW_tile_fwd, sal_shape_numel(c->out_shape[0]));
    }
    if (!c->gin[0]) return 0;
    a->gout[0] = c->gout[0];
    a->gin[0] = c->gin[0];
    return launch(l, SAL_TW_tile_bwd, sal_shape_numel(c->in_shape[0]));
}

static int plan_where(const sal_op_call *c, int backward, int k, sal_tw_launch *l, sal_tw_args *a,
                      sal_error *err) {
    if (c->n_in < 3 || !c->in[0] || !c->in[1] || !c->in[2] || !c->in_shape[1] || !c->in_shape[2])
        return fail(c, err, "needs cond, X and Y");
    const sal_where_params *p = c->params;
    a->p.wh = *p;
    for (int i = 0; i < 3; i++) a->in[i] = c->in[i];
    if (!backward) {
        if (k > 0) return 0;
        a->out[0] = c->out[0];
        return launch(l, SAL_TW_where_fwd, sal_shape_numel(c->out_shape[0]));
    }
    int which = -1;
    for (int i = 1, seen = 0; i < 3; i++)
        if (c->gin[i] && seen++ == k) { which = i; break; }
    if (which < 0) return 0;
    a->k1 = which - 1;
    a->gout[0] = c->gout[0];
    a->gin[0] = c->gin[which];
    return launch(l, SAL_TW_where_bwd, which == 1 ? p->nx : p->ny);
}

int sal_tw_plan_index(const sal_op_call *c, int backward, int k, sal_tw_launch *l, sal_tw_args *a,
                      sal_error *err) {
    const int op = c->node->op;
    switch (op) {
    case SAL_OP_SLICE: case SAL_OP_GATHER: case SAL_OP_DEPTHTOSPACE: case SAL_OP_SPACETODEPTH:
    case SAL_OP_EXPAND: case SAL_OP_TILE: case SAL_OP_WHERE:
        break;
    default:
        return -2;
    }
    if (backward == -1) return 0;   /* probe: the family's op */
    if (!c->params) return fail(c, err, "no parameters from infer");
    if (c->n_in < 1 || c->n_out < 1 || !c->in_shape[0] || !c->out_shape[0])
        return fail(c, err, "missing input or output");
    if (backward && (!c->gout || !c->gout[0])) return 0;   /* zero incoming gradient */
    switch (op) {
    case SAL_OP_EXPAND: case SAL_OP_TILE: return plan_tile(c, backward, k, l, a);
    case SAL_OP_WHERE: return plan_where(c, backward, k, l, a, err);
    default: return plan_view(c, backward, k, l, a);
    }
}
