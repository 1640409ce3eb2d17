/* infer_index.c — shape inference and parameters of issue 13's indexing and layout ops on
 * activations (on constants, host/model/fold.c and fold_shape.c evaluate them instead):
 *
 *   Slice (attributes before opset 10, constant inputs from 10), Gather (constant indices, at most
 *   SAL_VIEW_MAX_IDX), DepthToSpace (DCR | CRD), SpaceToDepth              -> sal_view_params
 *   Expand (constant shape, numpy broadcast both ways), Tile (constant repeats) -> sal_tile_params
 *   Where (constant condition; X and Y float32)                            -> sal_where_params
 *
 * Kernels: kernels/twin_index.h (the CPU backend maps them too). */
#include <stdlib.h>
#include <string.h>

#include "op_decls.h"

/* ------------------------------------------------------------------------------------------------ */
/* Helpers                                                                                          */

/* Constant integer input idx, at most cap entries, into v; *n its count. */
static sal_status const_ints(sal_op_ctx *ctx, int idx, const char *what, int64_t *v, int cap, int *n) {
    const sal_tensor *t = in_const(ctx, idx);
    if (!in_shape(ctx, idx))
        return sal_op_fail(ctx, SAL_ERR_SHAPE, "input %d (%s) is missing", idx, what);
    if (!t)
        return sal_op_fail(ctx, SAL_ERR_UNSUPPORTED,
                           "input %d (%s) must be a constant when the model is planned", idx, what);
    if (t->dtype != SAL_I64 && t->dtype != SAL_I32)
        return sal_op_fail(ctx, SAL_ERR_SHAPE, "input %d (%s) has type %s, expected int64", idx,
                           what, sal_dtype_name(t->dtype));
    int64_t k = sal_shape_numel(&t->shape);
    if (k > cap)
        return sal_op_fail(ctx, SAL_ERR_UNSUPPORTED, "input %d (%s) has %lld entries (at most %d)",
                           idx, what, (long long)k, cap);
    for (int64_t i = 0; i < k; i++) v[i] = sal_tensor_i64(t, i);
    *n = (int)k;
    return SAL_OK;
}

static void row_strides(const sal_shape *s, int64_t *st) {
    int64_t k = 1;
    for (int d = s->ndim - 1; d >= 0; d--) { st[d] = k; k *= s->d[d]; }
}

/* ------------------------------------------------------------------------------------------------ */
/* Slice                                                                                            */

/* numpy's slice rules: negative starts/ends count from the end, both clamped (to [0, dim] for a
 * positive step, [-1, dim - 1] for a negative one). */
sal_status sal_infer_slice(sal_op_ctx *ctx) {
    sal_status st = sal_op_float_input(ctx, 0, "data", 1);
    if (st) return st;
    const sal_shape *x = in_shape(ctx, 0);
    const int r = x->ndim;
    int64_t starts[SAL_MAX_DIMS], ends[SAL_MAX_DIMS], axes[SAL_MAX_DIMS], steps[SAL_MAX_DIMS];
    int k, ke, na = -1, ns = -1;
    if (ctx->g->opset < 10 && !in_shape(ctx, 1)) {
        const int64_t *s, *e, *a;
        k = sal_attr_ints(ctx->node, "starts", &s);
        ke = sal_attr_ints(ctx->node, "ends", &e);
        if (k < 0 || ke != k)
            return sal_op_fail(ctx, SAL_ERR_SHAPE, "attributes starts and ends are missing or differ in length");
        if (k > r) return sal_op_fail(ctx, SAL_ERR_SHAPE, "%d starts for rank %d", k, r);
        na = sal_attr_ints(ctx->node, "axes", &a);
        if (na >= 0 && na != k) return sal_op_fail(ctx, SAL_ERR_SHAPE, "%d axes for %d starts", na, k);
        for (int i = 0; i < k; i++) {
            starts[i] = s[i];
            ends[i] = e[i];
            axes[i] = na >= 0 ? a[i] : i;
            steps[i] = 1;
        }
    } else {
        if ((st = const_ints(ctx, 1, "starts", starts, SAL_MAX_DIMS, &k))) return st;
        if ((st = const_ints(ctx, 2, "ends", ends, SAL_MAX_DIMS, &ke))) return st;
        if (ke != k) return sal_op_fail(ctx, SAL_ERR_SHAPE, "%d starts but %d ends", k, ke);
        if (in_shape(ctx, 3) && (st = const_ints(ctx, 3, "axes", axes, SAL_MAX_DIMS, &na))) return st;
        if (in_shape(ctx, 4) && (st = const_ints(ctx, 4, "steps", steps, SAL_MAX_DIMS, &ns))) return st;
        if ((na >= 0 && na != k) || (ns >= 0 && ns != k))
            return sal_op_fail(ctx, SAL_ERR_SHAPE, "starts, axes and steps differ in length");
        for (int i = 0; i < k; i++) {
            if (na < 0) axes[i] = i;
            if (ns < 0) steps[i] = 1;
        }
    }
    int64_t xs[SAL_MAX_DIMS];
    row_strides(x, xs);
    sal_view_params p;
    memset(&p, 0, sizeof p);
    p.ndim = r;
    p.idx_dim = -1;
    sal_shape *y = &ctx->out_shape[0];
    *y = *x;
    for (int d = 0; d < r; d++) p.stride[d] = xs[d];
    unsigned seen = 0;
    for (int i = 0; i < k; i++) {
        int64_t ax = axes[i] < 0 ? axes[i] + r : axes[i];
        if (ax < 0 || ax >= r)
            return sal_op_fail(ctx, SAL_ERR_SHAPE, "axis %lld is out of range for rank %d",
                               (long long)axes[i], r);
        if (seen & (1u << ax))
            return sal_op_fail(ctx, SAL_ERR_SHAPE, "axis %lld is repeated", (long long)axes[i]);
        seen |= 1u << ax;
        const int64_t dim = x->d[ax], step = steps[i];
        int64_t s = starts[i], e = ends[i], len;
        if (step == 0) return sal_op_fail(ctx, SAL_ERR_SHAPE, "step on axis %lld is 0", (long long)ax);
        if (s < 0) s += dim;
        if (e < 0) e += dim;
        if (step > 0) {
            s = s < 0 ? 0 : s > dim ? dim : s;
            e = e < 0 ? 0 : e > dim ? dim : e;
            len = e > s ? (e - s + step - 1) / step : 0;
        } else {
            s = s < 0 ? -1 : s > dim - 1 ? dim - 1 : s;
            e = e < -1 ? -1 : e > dim - 1 ? dim - 1 : e;
            len = s > e ? (s - e + (-step) - 1) / (-step) : 0;
        }
        y->d[ax] = len;
        if (len > 0) p.base += s * xs[ax];
        p.stride[ax] = step * xs[ax];
    }
    for (int d = 0; d < r; d++) p.out[d] = y->d[d];
    ctx->out_dtype[0] = SAL_F32;
    return sal_op_put_params(ctx, &p, sizeof p);
}

/* ------------------------------------------------------------------------------------------------ */
/* Gather                                                                                           */

sal_status sal_infer_gather(sal_op_ctx *ctx) {
    sal_status st = sal_op_float_input(ctx, 0, "data", 1);
    if (st) return st;
    const sal_shape *x = in_shape(ctx, 0);
    const int r = x->ndim;
    int64_t idx[SAL_VIEW_MAX_IDX];
    int ni;
    if ((st = const_ints(ctx, 1, "indices", idx, SAL_VIEW_MAX_IDX, &ni))) return st;
    const sal_shape *is = in_shape(ctx, 1);
    int64_t axis = sal_attr_int(ctx->node, "axis", 0);
    if (r < 1 || axis < -(int64_t)r || axis >= r)
        return sal_op_fail(ctx, SAL_ERR_SHAPE, "axis %lld is out of range for rank %d",
                           (long long)axis, r);
    const int ax = (int)(axis < 0 ? axis + r : axis);
    if (r - 1 + is->ndim > SAL_MAX_DIMS)
        return sal_op_fail(ctx, SAL_ERR_UNSUPPORTED, "output rank %d is above %d", r - 1 + is->ndim,
                           SAL_MAX_DIMS);
    sal_view_params p;
    memset(&p, 0, sizeof p);
    p.gouter = 1;
    p.ginner = 1;
    for (int d = 0; d < ax; d++) p.gouter *= x->d[d];
    for (int d = ax + 1; d < r; d++) p.ginner *= x->d[d];
    p.glen = x->d[ax];
    for (int i = 0; i < ni; i++) {
        int64_t v = idx[i] < 0 ? idx[i] + p.glen : idx[i];
        if (v < 0 || v >= p.glen)
            return sal_op_fail(ctx, SAL_ERR_SHAPE, "index %lld is out of range for axis %d of "
                               "length %lld", (long long)idx[i], ax, (long long)p.glen);
        p.idx[i] = (int32_t)v;
        for (int j = 0; j < i; j++) p.dup |= p.idx[j] == p.idx[i];
    }
    p.ndim = 3;
    p.out[0] = p.gouter;
    p.out[1] = ni;
    p.out[2] = p.ginner;
    p.stride[0] = p.glen * p.ginner;
    p.stride[1] = p.ginner;
    p.stride[2] = 1;
    p.idx_dim = 1;
    sal_shape *y = &ctx->out_shape[0];
    y->ndim = 0;
    for (int d = 0; d < ax; d++) y->d[y->ndim++] = x->d[d];
    for (int d = 0; d < is->ndim; d++) y->d[y->ndim++] = is->d[d];
    for (int d = ax + 1; d < r; d++) y->d[y->ndim++] = x->d[d];
    ctx->out_dtype[0] = SAL_F32;
    return sal_op_put_params(ctx, &p, sizeof p);
}

/* ------------------------------------------------------------------------------------------------ */
/* DepthToSpace, SpaceToDepth: x (N, C, H, W), blocksize b                                          */

static sal_status block_input(sal_op_ctx *ctx, int64_t *b) {
    sal_status st = sal_op_float_input(ctx, 0, "input", 1);
    if (st) return st;
    const sal_shape *x = in_shape(ctx, 0);
    char sx[128];
    if (x->ndim != 4)
        return sal_op_fail(ctx, SAL_ERR_SHAPE, "input %s is not (N, C, H, W)",
                           sal_shape_str(x, sx, sizeof sx));
    if (!sal_attr_find(ctx->node, "blocksize"))
        return sal_op_fail(ctx, SAL_ERR_SHAPE, "attribute blocksize is missing");
    *b = sal_attr_int(ctx->node, "blocksize", 0);
    if (*b < 1) return sal_op_fail(ctx, SAL_ERR_SHAPE, "blocksize %lld is below 1", (long long)*b);
    return SAL_OK;
}

/* y (N, C/b^2, H*b, W*b) viewed as (N, C', H, b, W, b) at (n, c, h, i, w, j) reads channel
 * (i*b + j)*C' + c (DCR) or c*b*b + i*b + j (CRD) at (h, w). */
sal_status sal_infer_depthtospace(sal_op_ctx *ctx) {
    int64_t b;
    sal_status st = block_input(ctx, &b);
    if (st) return st;
    const sal_shape *x = in_shape(ctx, 0);
    const int64_t N = x->d[0], C = x->d[1], H = x->d[2], W = x->d[3];
    if (C % (b * b) != 0)
        return sal_op_fail(ctx, SAL_ERR_SHAPE, "%lld channels are not a multiple of blocksize^2 = %lld",
                           (long long)C, (long long)(b * b));
    const char *mode = sal_attr_str(ctx->node, "mode", "DCR");
    int crd = strcmp(mode, "CRD") == 0;
    if (!crd && strcmp(mode, "DCR") != 0)
        return sal_op_fail(ctx, SAL_ERR_UNSUPPORTED, "mode '%s' is not DCR or CRD", mode);
    const int64_t c2 = C / (b * b), hw = H * W;
    sal_view_params p;
    memset(&p, 0, sizeof p);
    p.ndim = 6;
    p.idx_dim = -1;
    const int64_t out[6] = {N, c2, H, b, W, b};
    const int64_t dcr[6] = {C * hw, hw, W, b * c2 * hw, 1, c2 * hw};
    const int64_t crdv[6] = {C * hw, b * b * hw, W, b * hw, 1, hw};
    for (int d = 0; d < 6; d++) {
        p.out[d] = out[d];
        p.stride[d] = crd ? crdv[d] : dcr[d];
    }
    ctx->out_shape[0] = (sal_shape){4, {N, c2, H * b, W * b}};
    ctx->out_dtype[0] = SAL_F32;
    return sal_op_put_params(ctx, &p, sizeof p);
}

/* y (N, C*b*b, H/b, W/b) viewed as (N, b, b, C, H/b, W/b) at (n, i, j, c, h, w) reads x at
 * (n, c, h*b + i, w*b + j). */
sal_status sal_infer_spacetodepth(sal_op_ctx *ctx) {
    int64_t b;
    sal_status st = block_input(ctx, &b);
    if (st) return st;
    const sal_shape *x = in_shape(ctx, 0);
    const int64_t N = x->d[0], C = x->d[1], H = x->d[2], W = x->d[3];
    if (H % b != 0 || W % b != 0)
        return sal_op_fail(ctx, SAL_ERR_SHAPE, "H %lld and W %lld are not multiples of blocksize %lld",
                           (long long)H, (long long)W, (long long)b);
    sal_view_params p;
    memset(&p, 0, sizeof p);
    p.ndim = 6;
    p.idx_dim = -1;
    const int64_t out[6] = {N, b, b, C, H / b, W / b};
    const int64_t stv[6] = {C * H * W, W, 1, H * W, b * W, b};
    for (int d = 0; d < 6; d++) {
        p.out[d] = out[d];
        p.stride[d] = stv[d];
    }
    ctx->out_shape[0] = (sal_shape){4, {N, C * b * b, H / b, W / b}};
    ctx->out_dtype[0] = SAL_F32;
    return sal_op_put_params(ctx, &p, sizeof p);
}

/* ------------------------------------------------------------------------------------------------ */
/* Expand, Tile                                                                                     */

static sal_status tile_params(sal_op_ctx *ctx, const sal_shape *x, const sal_shape *y) {
    sal_tile_params p;
    memset(&p, 0, sizeof p);
    p.ndim = y->ndim;
    for (int d = 0; d < y->ndim; d++) {
        int xd = d - (y->ndim - x->ndim);
        p.out[d] = y->d[d];
        p.in[d] = xd >= 0 ? x->d[xd] : 1;
    }
    ctx->out_shape[0] = *y;
    ctx->out_dtype[0] = SAL_F32;
    return sal_op_put_params(ctx, &p, sizeof p);
}

/* Expand: y = x broadcast with the constant shape (numpy rules both ways: a 1 in shape keeps x's
 * dim). */
sal_status sal_infer_expand(sal_op_ctx *ctx) {
    sal_status st = sal_op_float_input(ctx, 0, "input", 1);
    if (st) return st;
    const sal_shape *x = in_shape(ctx, 0);
    int64_t sv[SAL_MAX_DIMS];
    int ns;
    if ((st = const_ints(ctx, 1, "shape", sv, SAL_MAX_DIMS, &ns))) return st;
    sal_shape s = {ns, {0}}, y;
    for (int i = 0; i < ns; i++) {
        if (sv[i] < 0) return sal_op_fail(ctx, SAL_ERR_SHAPE, "shape[%d] = %lld", i, (long long)sv[i]);
        s.d[i] = sv[i];
    }
    char sa[128], sb[128];
    if (sal_broadcast(x, &s, &y, NULL))
        return sal_op_fail(ctx, SAL_ERR_SHAPE, "input %s does not broadcast to shape %s",
                           sal_shape_str(x, sa, sizeof sa), sal_shape_str(&s, sb, sizeof sb));
    return tile_params(ctx, x, &y);
}

sal_status sal_infer_tile(sal_op_ctx *ctx) {
    sal_status st = sal_op_float_input(ctx, 0, "input", 1);
    if (st) return st;
    const sal_shape *x = in_shape(ctx, 0);
    int64_t rep[SAL_MAX_DIMS];
    int nr;
    if ((st = const_ints(ctx, 1, "repeats", rep, SAL_MAX_DIMS, &nr))) return st;
    if (nr != x->ndim)
        return sal_op_fail(ctx, SAL_ERR_SHAPE, "%d repeats for rank %d", nr, x->ndim);
    sal_shape y = *x;
    for (int d = 0; d < nr; d++) {
        if (rep[d] < 0) return sal_op_fail(ctx, SAL_ERR_SHAPE, "repeats[%d] = %lld", d, (long long)rep[d]);
        y.d[d] = x->d[d] * rep[d];
    }
    return tile_params(ctx, x, &y);
}

/* ------------------------------------------------------------------------------------------------ */
/* Where                                                                                            */

/* cond must be a constant at plan time (the engine hands the kernels a 0/1 float copy); X and Y
 * are float32. All three broadcast to the output. */
sal_status sal_infer_where(sal_op_ctx *ctx) {
    if (!in_shape(ctx, 0)) return sal_op_fail(ctx, SAL_ERR_SHAPE, "input 0 (condition) is missing");
    if (!in_const(ctx, 0))
        return sal_op_fail(ctx, SAL_ERR_UNSUPPORTED, "the condition must be a constant when the "
                           "model is planned (salient computes run-time data in float32 only)");
    sal_status st = sal_op_float_input(ctx, 1, "X", 1);
    if (!st) st = sal_op_float_input(ctx, 2, "Y", 1);
    if (st) return st;
    const sal_shape *c = in_shape(ctx, 0), *x = in_shape(ctx, 1), *yv = in_shape(ctx, 2);
    sal_shape t, out;
    char s0[128], s1[128], s2[128];
    if (sal_broadcast(c, x, &t, NULL) || sal_broadcast(&t, yv, &out, NULL))
        return sal_op_fail(ctx, SAL_ERR_SHAPE, "condition %s, X %s and Y %s do not broadcast",
                           sal_shape_str(c, s0, sizeof s0), sal_shape_str(x, s1, sizeof s1),
                           sal_shape_str(yv, s2, sizeof s2));
    sal_where_params p;
    memset(&p, 0, sizeof p);
    p.ndim = out.ndim;
    const sal_shape *ins[3] = {c, x, yv};
    int64_t *strides[3] = {p.sc, p.sx, p.sy};
    for (int k = 0; k < 3; k++) {
        int64_t s = 1;
        for (int d = out.ndim - 1; d >= 0; d--) {
            int id = d - (out.ndim - ins[k]->ndim);
            int64_t dim = id >= 0 ? ins[k]->d[id] : 1;
            strides[k][d] = dim == 1 ? 0 : s;
            s *= dim;
        }
    }
    for (int d = 0; d < out.ndim; d++) p.out[d] = out.d[d];
    p.nx = sal_shape_numel(x);
    p.ny = sal_shape_numel(yv);
    ctx->out_shape[0] = out;
    ctx->out_dtype[0] = SAL_F32;
    return sal_op_put_params(ctx, &p, sizeof p);
}
