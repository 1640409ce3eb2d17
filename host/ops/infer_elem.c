/* infer_elem.c — shape inference and parameters of the element-wise, broadcasting and layout ops:
 *
 *   activations   Relu LeakyRelu Clip Sigmoid HardSigmoid HardSwish Tanh  -> sal_scalar_params
 *   broadcasting  Add Sub Mul Div (numpy rules, fast-path class)          -> sal_bcast_params
 *   reductions    ReduceMean, Softmax, Concat                              -> sal_axis_params
 *   layout        Transpose -> sal_transpose_params, Pad -> sal_pad_params
 *   alias ops     Flatten Reshape Squeeze Unsqueeze Dropout Identity (no parameters: the engine
 *                 reuses input 0's memory, so only the output shape is computed)
 *
 * Opset-dependent forms (ONNX opsets 6..18) follow ctx->g->opset: Clip min/max (attributes before
 * 11, constant inputs from 11), Pad pads/value (attributes before 11, inputs from 11, axes input
 * at 18), Squeeze/Unsqueeze axes (attribute before 13, input from 13), ReduceMean axes (attribute
 * before 18, input from 18), Softmax (2-D coercion before 13, single axis from 13). Where the
 * other form is present instead, it is accepted too. Inputs that must be known at plan time
 * (Clip bounds, Pad pads, Reshape shape, axes inputs) are SAL_ERR_UNSUPPORTED when they are
 * runtime values.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "op_decls.h"

/* ------------------------------------------------------------------------------------------------ */
/* Helpers                                                                                          */

static sal_status need_input(sal_op_ctx *ctx, int i, const char *what) {
    if (!in_shape(ctx, i))
        return sal_op_fail(ctx, SAL_ERR_SHAPE, "input %d (%s) is missing", i, what);
    return SAL_OK;
}

/* The kernels compute in float32. When any of inputs [0, n) is a runtime value, every present one
 * must be float32; all-constant inputs of another type (shape arithmetic) keep their type.
 * Output 0's type is set to input 0's. */
static sal_status float_inputs(sal_op_ctx *ctx, int n) {
    int runtime = 0;
    for (int i = 0; i < n; i++)
        if (in_shape(ctx, i) && !in_const(ctx, i)) runtime = 1;
    for (int i = 0; runtime && i < n; i++) {
        int t = in_dtype(ctx, i);
        if (in_shape(ctx, i) && t != 0 && t != SAL_F32)
            return sal_op_fail(ctx, SAL_ERR_UNSUPPORTED,
                               "input %d has type %s: only float32 is supported", i,
                               sal_dtype_name(t));
    }
    int t0 = in_dtype(ctx, 0);
    ctx->out_dtype[0] = t0 ? t0 : SAL_F32;
    return SAL_OK;
}

/* axis in [-r, r - 1 + extra] -> [0, r - 1 + extra]. */
static sal_status norm_axis(sal_op_ctx *ctx, const char *what, int64_t axis, int r, int extra,
                            int *out) {
    *out = 0;
    if (axis < -(int64_t)r || axis > (int64_t)r - 1 + extra)
        return sal_op_fail(ctx, SAL_ERR_SHAPE, "%s %lld is out of range for rank %d", what,
                           (long long)axis, r);
    *out = (int)(axis < 0 ? axis + r : axis);
    return SAL_OK;
}

/* An integer list given as attribute `name` (opset < input_opset) or as constant input `idx`
 * (opset >= input_opset); the other form is accepted when the expected one is absent.
 * *n = -1 when neither is present. At most cap entries. */
static sal_status int_list(sal_op_ctx *ctx, const char *name, int idx, int input_opset,
                           int64_t *v, int cap, int *n) {
    *n = -1;
    const int64_t *a = NULL;
    int na = sal_attr_ints(ctx->node, name, &a);
    int use_input = in_shape(ctx, idx) && (ctx->g->opset >= input_opset || na < 0);
    if (!use_input) {
        if (na < 0) return SAL_OK;
        if (na > cap)
            return sal_op_fail(ctx, SAL_ERR_UNSUPPORTED, "attribute %s has %d entries (at most %d)",
                               name, na, cap);
        if (na) memcpy(v, a, sizeof *v * (size_t)na);
        *n = na;
        return SAL_OK;
    }
    const sal_tensor *t = in_const(ctx, idx);
    if (!t)
        return sal_op_fail(ctx, SAL_ERR_UNSUPPORTED,
                           "input %d (%s) must be a constant when the model is planned", idx, name);
    if (t->dtype != SAL_I64 && t->dtype != SAL_I32)
        return sal_op_fail(ctx, SAL_ERR_SHAPE, "input %d (%s) has type %s, expected int64", idx,
                           name, sal_dtype_name(t->dtype));
    int64_t k = sal_shape_numel(&t->shape);
    if (k > cap)
        return sal_op_fail(ctx, SAL_ERR_UNSUPPORTED, "input %d (%s) has %lld entries (at most %d)",
                           idx, name, (long long)k, cap);
    for (int64_t i = 0; i < k; i++) v[i] = sal_tensor_i64(t, i);
    *n = (int)k;
    return SAL_OK;
}

/* A scalar from constant input idx (Clip bounds, Pad constant_value). */
static sal_status const_scalar(sal_op_ctx *ctx, int idx, const char *what, float *out) {
    const sal_tensor *t = in_const(ctx, idx);
    if (!t)
        return sal_op_fail(ctx, SAL_ERR_UNSUPPORTED,
                           "input %d (%s) must be a constant when the model is planned", idx, what);
    if (sal_shape_numel(&t->shape) != 1)
        return sal_op_fail(ctx, SAL_ERR_SHAPE, "input %d (%s) must hold one value, not %lld", idx,
                           what, (long long)sal_shape_numel(&t->shape));
    *out = (float)sal_tensor_f64(t, 0);
    return SAL_OK;
}

/* ------------------------------------------------------------------------------------------------ */
/* Activations                                                                                      */

static sal_status activation(sal_op_ctx *ctx, const sal_scalar_params *p) {
    sal_status st = need_input(ctx, 0, "X");
    if (!st) st = float_inputs(ctx, 1);
    if (st) return st;
    ctx->out_shape[0] = *in_shape(ctx, 0);
    return sal_op_put_params(ctx, p, sizeof *p);
}

sal_status sal_infer_relu(sal_op_ctx *ctx) {
    sal_scalar_params p = {0};
    p.lo = 0.f;
    p.hi = INFINITY;
    return activation(ctx, &p);
}

sal_status sal_infer_leakyrelu(sal_op_ctx *ctx) {
    sal_scalar_params p = {0};
    p.alpha = sal_attr_float(ctx->node, "alpha", 0.01f);
    return activation(ctx, &p);
}

/* Clip: y = min(max(x, lo), hi) (hi wins when lo > hi, as ONNX says). Backward follows PyTorch's
 * hardtanh: the gradient passes where lo < x < hi strictly, zero elsewhere. */
sal_status sal_infer_clip(sal_op_ctx *ctx) {
    sal_scalar_params p = {0};
    p.lo = -INFINITY;
    p.hi = INFINITY;
    if (ctx->g->opset < 11 && !in_shape(ctx, 1) && !in_shape(ctx, 2)) {
        p.lo = sal_attr_float(ctx->node, "min", -INFINITY);
        p.hi = sal_attr_float(ctx->node, "max", INFINITY);
    } else {
        sal_status st;
        if (in_shape(ctx, 1) && (st = const_scalar(ctx, 1, "min", &p.lo))) return st;
        if (in_shape(ctx, 2) && (st = const_scalar(ctx, 2, "max", &p.hi))) return st;
    }
    if (isnan(p.lo) || isnan(p.hi))
        return sal_op_fail(ctx, SAL_ERR_UNSUPPORTED, "min/max is NaN");
    return activation(ctx, &p);
}

sal_status sal_infer_sigmoid(sal_op_ctx *ctx) {
    sal_scalar_params p = {0};
    return activation(ctx, &p);
}

sal_status sal_infer_hardsigmoid(sal_op_ctx *ctx) {
    sal_scalar_params p = {0};
    p.alpha = sal_attr_float(ctx->node, "alpha", 0.2f);
    p.beta = sal_attr_float(ctx->node, "beta", 0.5f);
    return activation(ctx, &p);
}

sal_status sal_infer_hardswish(sal_op_ctx *ctx) {   /* x * max(0, min(1, x/6 + 1/2)) */
    sal_scalar_params p = {0};
    p.alpha = 1.f / 6.f;
    p.beta = 0.5f;
    return activation(ctx, &p);
}

sal_status sal_infer_tanh(sal_op_ctx *ctx) {
    sal_scalar_params p = {0};
    return activation(ctx, &p);
}

/* ------------------------------------------------------------------------------------------------ */
/* Broadcasting binary ops                                                                          */

/* Sort the broadcast into one of the kernels' fast paths (see SAL_BC_* in ops.h). */
static void bcast_classify(sal_bcast_params *p, int64_t na, int64_t nb) {
    int64_t n = sal_dims_prod(p->out, 0, p->ndim);
    p->mode = SAL_BC_GENERAL;
    p->outer = p->mid = p->inner = 1;
    if (na == n && nb == n) { p->mode = SAL_BC_SAME; return; }
    if (na == 1 && nb == n) { p->mode = SAL_BC_SCALAR_A; return; }
    if (nb == 1 && na == n) { p->mode = SAL_BC_SCALAR_B; return; }
    if (na != n && nb != n) return;
    const int64_t *s = na == n ? p->sb : p->sa;   /* strides of the small input */
    int first = -1, last = -1;
    for (int d = 0; d < p->ndim; d++)
        if (p->out[d] > 1 && s[d] != 0) {
            if (first < 0) first = d;
            last = d;
        }
    if (first < 0) return;
    for (int d = first; d <= last; d++)
        if (p->out[d] > 1 && s[d] == 0) return;   /* the small input is not one block */
    p->mode = na == n ? SAL_BC_CHANNEL_B : SAL_BC_CHANNEL_A;
    p->outer = sal_dims_prod(p->out, 0, first);
    p->mid = sal_dims_prod(p->out, first, last + 1);
    p->inner = sal_dims_prod(p->out, last + 1, p->ndim);
}

static sal_status binary(sal_op_ctx *ctx) {
    sal_status st = need_input(ctx, 0, "A");
    if (!st) st = need_input(ctx, 1, "B");
    if (!st) st = float_inputs(ctx, 2);
    if (st) return st;
    const sal_shape *a = in_shape(ctx, 0);
    sal_shape b = *in_shape(ctx, 1);
    char sa[128], sb[128];
    /* opset < 7: broadcasting only with broadcast=1, B aligned at `axis` (default: suffix) */
    if (ctx->g->opset < 7) {
        if (sal_attr_int(ctx->node, "broadcast", 0) == 0) {
            if (!sal_shape_eq(a, &b))
                return sal_op_fail(ctx, SAL_ERR_SHAPE, "shapes %s and %s differ and broadcast=0",
                                   sal_shape_str(a, sa, sizeof sa), sal_shape_str(&b, sb, sizeof sb));
        } else if (sal_attr_find(ctx->node, "axis")) {
            int axis;
            if ((st = norm_axis(ctx, "axis", sal_attr_int(ctx->node, "axis", 0), a->ndim, 0, &axis)))
                return st;
            if (axis + b.ndim > a->ndim)
                return sal_op_fail(ctx, SAL_ERR_SHAPE, "B %s does not fit A %s at axis %d",
                                   sal_shape_str(&b, sb, sizeof sb), sal_shape_str(a, sa, sizeof sa),
                                   axis);
            sal_shape bb = {a->ndim, {0}};
            for (int d = 0; d < a->ndim; d++)
                bb.d[d] = d >= axis && d < axis + b.ndim ? b.d[d - axis] : 1;
            b = bb;
        }
    }
    sal_bcast_params p;
    memset(&p, 0, sizeof p);
    st = sal_broadcast(a, &b, &ctx->out_shape[0], &p);
    if (st == SAL_ERR_SHAPE)
        return sal_op_fail(ctx, SAL_ERR_SHAPE, "shapes %s and %s do not broadcast",
                           sal_shape_str(a, sa, sizeof sa), sal_shape_str(&b, sb, sizeof sb));
    if (st)
        return sal_op_fail(ctx, st, "cannot broadcast %s with %s (rank above %d?)",
                           sal_shape_str(a, sa, sizeof sa), sal_shape_str(&b, sb, sizeof sb),
                           SAL_MAX_DIMS);
    bcast_classify(&p, sal_shape_numel(a), sal_shape_numel(&b));
    return sal_op_put_params(ctx, &p, sizeof p);
}

sal_status sal_infer_add(sal_op_ctx *ctx) { return binary(ctx); }
sal_status sal_infer_sub(sal_op_ctx *ctx) { return binary(ctx); }
sal_status sal_infer_mul(sal_op_ctx *ctx) { return binary(ctx); }
sal_status sal_infer_div(sal_op_ctx *ctx) { return binary(ctx); }

/* ------------------------------------------------------------------------------------------------ */
/* ReduceMean, Softmax, Concat                                                                      */

/* ReduceMean: axes attribute (opset < 18) or constant input 1 (opset 18); empty or absent axes
 * reduce everything unless noop_with_empty_axes = 1 (then y = x); keepdims default 1. */
sal_status sal_infer_reducemean(sal_op_ctx *ctx) {
    sal_status st = need_input(ctx, 0, "data");
    if (!st) st = float_inputs(ctx, 1);
    if (st) return st;
    const sal_shape *x = in_shape(ctx, 0);
    int r = x->ndim;
    int64_t axes[SAL_MAX_DIMS];
    int na;
    if ((st = int_list(ctx, "axes", 1, 18, axes, SAL_MAX_DIMS, &na))) return st;
    int keepdims = sal_attr_int(ctx->node, "keepdims", 1) != 0;
    int noop = sal_attr_int(ctx->node, "noop_with_empty_axes", 0) != 0;
    unsigned mask = 0;   /* bit d: input dim d is reduced */
    if (na <= 0) {
        mask = noop ? 0u : (1u << r) - 1u;
    } else {
        for (int i = 0; i < na; i++) {
            int a;
            if ((st = norm_axis(ctx, "axis", axes[i], r, 0, &a))) return st;
            if (mask & (1u << a))
                return sal_op_fail(ctx, SAL_ERR_SHAPE, "axis %lld is repeated", (long long)axes[i]);
            mask |= 1u << a;
        }
    }
    sal_shape *y = &ctx->out_shape[0];
    y->ndim = 0;
    for (int d = 0; d < r; d++) {
        if (!(mask & (1u << d))) y->d[y->ndim++] = x->d[d];
        else if (keepdims) y->d[y->ndim++] = 1;
    }

    sal_axis_params p;
    memset(&p, 0, sizeof p);
    p.keepdims = keepdims;
    p.axis = -1;
    p.count = 1;
    int kind[SAL_MAX_DIMS];
    for (int d = 0; d < r; d++) {
        int red = (mask >> d) & 1u;
        if (red) p.count *= x->d[d];
        if (x->d[d] == 1) continue;   /* reduced or kept, a 1-dim changes nothing */
        if (p.rdim > 0 && kind[p.rdim - 1] == red) {
            p.rdims[p.rdim - 1] *= x->d[d];
        } else {
            kind[p.rdim] = red;
            p.rdims[p.rdim++] = x->d[d];
        }
    }
    int nred = 0, at = -1;
    for (int d = 0; d < p.rdim; d++)
        if (kind[d]) { p.rmask |= 1u << d; nred++; at = d; }
    if (nred <= 1) {
        if (at < 0) {   /* nothing reduced: y is x */
            p.outer = sal_dims_prod(p.rdims, 0, p.rdim);
            p.axis_len = 1;
            p.inner = 1;
        } else {
            p.outer = sal_dims_prod(p.rdims, 0, at);
            p.axis_len = p.rdims[at];
            p.inner = sal_dims_prod(p.rdims, at + 1, p.rdim);
            p.axis = at;
        }
    }
    return sal_op_put_params(ctx, &p, sizeof p);
}

/* Softmax: opset < 13 coerces x to 2-D at `axis` (default 1) and normalizes over the flattened
 * tail; opset >= 13 normalizes over the single dim `axis` (default -1). */
sal_status sal_infer_softmax(sal_op_ctx *ctx) {
    sal_status st = need_input(ctx, 0, "input");
    if (!st) st = float_inputs(ctx, 1);
    if (st) return st;
    const sal_shape *x = in_shape(ctx, 0);
    if (x->ndim < 1) return sal_op_fail(ctx, SAL_ERR_SHAPE, "input is a scalar");
    int old = ctx->g->opset < 13;
    int axis;
    if ((st = norm_axis(ctx, "axis", sal_attr_int(ctx->node, "axis", old ? 1 : -1), x->ndim, 0,
                        &axis)))
        return st;
    sal_axis_params p;
    memset(&p, 0, sizeof p);
    p.axis = axis;
    p.outer = sal_dims_prod(x->d, 0, axis);
    if (old) {
        p.axis_len = sal_dims_prod(x->d, axis, x->ndim);
        p.inner = 1;
    } else {
        p.axis_len = x->d[axis];
        p.inner = sal_dims_prod(x->d, axis + 1, x->ndim);
    }
    p.count = p.axis_len;
    ctx->out_shape[0] = *x;
    return sal_op_put_params(ctx, &p, sizeof p);
}

sal_status sal_infer_concat(sal_op_ctx *ctx) {
    if (ctx->n_in < 1) return sal_op_fail(ctx, SAL_ERR_SHAPE, "no inputs");
    sal_status st;
    for (int i = 0; i < ctx->n_in; i++)
        if ((st = need_input(ctx, i, "inputs"))) return st;
    if ((st = float_inputs(ctx, ctx->n_in))) return st;
    const sal_shape *x0 = in_shape(ctx, 0);
    if (!sal_attr_find(ctx->node, "axis"))
        return sal_op_fail(ctx, SAL_ERR_SHAPE, "attribute axis is missing");
    int axis;
    if ((st = norm_axis(ctx, "axis", sal_attr_int(ctx->node, "axis", 0), x0->ndim, 0, &axis)))
        return st;
    sal_shape y = *x0;
    char s0[128], si[128];
    for (int i = 1; i < ctx->n_in; i++) {
        const sal_shape *xi = in_shape(ctx, i);
        int ok = xi->ndim == x0->ndim;
        for (int d = 0; ok && d < x0->ndim; d++)
            if (d != axis && xi->d[d] != x0->d[d]) ok = 0;
        if (!ok)
            return sal_op_fail(ctx, SAL_ERR_SHAPE, "input %d %s does not match input 0 %s off axis %d",
                               i, sal_shape_str(xi, si, sizeof si), sal_shape_str(x0, s0, sizeof s0),
                               axis);
        y.d[axis] += xi->d[axis];
    }
    ctx->out_shape[0] = y;
    sal_axis_params p;
    memset(&p, 0, sizeof p);
    p.axis = axis;
    p.outer = sal_dims_prod(y.d, 0, axis);
    p.axis_len = y.d[axis];
    p.inner = sal_dims_prod(y.d, axis + 1, y.ndim);
    return sal_op_put_params(ctx, &p, sizeof p);
}

/* ------------------------------------------------------------------------------------------------ */
/* Transpose, Pad                                                                                   */

sal_status sal_infer_transpose(sal_op_ctx *ctx) {
    sal_status st = need_input(ctx, 0, "data");
    if (!st) st = float_inputs(ctx, 1);
    if (st) return st;
    const sal_shape *x = in_shape(ctx, 0);
    sal_transpose_params p;
    memset(&p, 0, sizeof p);
    p.ndim = x->ndim;
    const int64_t *perm;
    int np = sal_attr_ints(ctx->node, "perm", &perm);
    if (np < 0) {
        for (int d = 0; d < x->ndim; d++) p.perm[d] = x->ndim - 1 - d;
    } else {
        if (np != x->ndim)
            return sal_op_fail(ctx, SAL_ERR_SHAPE, "perm has %d entries for rank %d", np, x->ndim);
        unsigned seen = 0;
        for (int d = 0; d < np; d++) {
            if (perm[d] < 0 || perm[d] >= x->ndim || (seen & (1u << perm[d])))
                return sal_op_fail(ctx, SAL_ERR_SHAPE,
                                   "perm is not a permutation of 0..%d (entry %d is %lld)",
                                   x->ndim - 1, d, (long long)perm[d]);
            seen |= 1u << perm[d];
            p.perm[d] = perm[d];
        }
    }
    sal_shape *y = &ctx->out_shape[0];
    y->ndim = x->ndim;
    for (int d = 0; d < x->ndim; d++) y->d[d] = x->d[p.perm[d]];
    return sal_op_put_params(ctx, &p, sizeof p);
}

/* Pad: modes constant, edge, reflect. Negative pads crop; edge/reflect pad the cropped tensor.
 * opset < 11: attributes pads and value; opset >= 11: constant inputs pads, constant_value
 * (optional) and, from opset 18, axes (optional). */
sal_status sal_infer_pad(sal_op_ctx *ctx) {
    sal_status st = need_input(ctx, 0, "data");
    if (!st) st = float_inputs(ctx, 1);
    if (st) return st;
    const sal_shape *x = in_shape(ctx, 0);
    int r = x->ndim;
    sal_pad_params p;
    memset(&p, 0, sizeof p);
    p.ndim = r;
    const char *mode = sal_attr_str(ctx->node, "mode", "constant");
    if (strcmp(mode, "constant") == 0) p.mode = SAL_PAD_CONSTANT;
    else if (strcmp(mode, "edge") == 0) p.mode = SAL_PAD_EDGE;
    else if (strcmp(mode, "reflect") == 0) p.mode = SAL_PAD_REFLECT;
    else return sal_op_fail(ctx, SAL_ERR_UNSUPPORTED, "mode '%s' is not supported", mode);

    int64_t pads[2 * SAL_MAX_DIMS];
    int npads;
    if ((st = int_list(ctx, "pads", 1, 11, pads, 2 * SAL_MAX_DIMS, &npads))) return st;
    if (npads < 0) return sal_op_fail(ctx, SAL_ERR_SHAPE, "pads are missing");
    p.value = 0.f;
    if (ctx->g->opset < 11 && !in_shape(ctx, 2)) p.value = sal_attr_float(ctx->node, "value", 0.f);
    else if (in_shape(ctx, 2) && (st = const_scalar(ctx, 2, "constant_value", &p.value))) return st;

    int axes[SAL_MAX_DIMS], naxes = r;
    for (int d = 0; d < r; d++) axes[d] = d;
    if (in_shape(ctx, 3)) {
        int64_t av[SAL_MAX_DIMS];
        int na;
        if ((st = int_list(ctx, "axes", 3, 18, av, SAL_MAX_DIMS, &na))) return st;
        unsigned seen = 0;
        for (int i = 0; i < na; i++) {
            if ((st = norm_axis(ctx, "axis", av[i], r, 0, &axes[i]))) return st;
            if (seen & (1u << axes[i]))
                return sal_op_fail(ctx, SAL_ERR_SHAPE, "axis %lld is repeated", (long long)av[i]);
            seen |= 1u << axes[i];
        }
        naxes = na;
    }
    if (npads != 2 * naxes)
        return sal_op_fail(ctx, SAL_ERR_SHAPE, "%d pads for %d axes (need %d)", npads, naxes,
                           2 * naxes);
    for (int i = 0; i < npads; i++)   /* bounded (checked.h): the sums below cannot overflow */
        if (pads[i] < -SAL_DIM_MAX || pads[i] > SAL_DIM_MAX)
            return sal_op_fail(ctx, SAL_ERR_SHAPE, "pads[%d] = %lld is beyond +-2^32", i, (long long)pads[i]);
    for (int i = 0; i < naxes; i++) {
        p.before[axes[i]] = pads[i];
        p.after[axes[i]] = pads[i + naxes];
    }
    sal_shape *y = &ctx->out_shape[0];
    y->ndim = r;
    for (int d = 0; d < r; d++) {
        y->d[d] = x->d[d] + p.before[d] + p.after[d];
        int64_t kept = x->d[d] - (p.before[d] < 0 ? -p.before[d] : 0) -
                       (p.after[d] < 0 ? -p.after[d] : 0);
        if (y->d[d] < 0 || kept < 0)
            return sal_op_fail(ctx, SAL_ERR_SHAPE, "pads %lld,%lld crop more than dim %d (%lld)",
                               (long long)p.before[d], (long long)p.after[d], d,
                               (long long)x->d[d]);
        if (p.mode != SAL_PAD_CONSTANT && kept == 0 && y->d[d] > 0)
            return sal_op_fail(ctx, SAL_ERR_SHAPE, "mode '%s' cannot pad the empty dim %d", mode, d);
    }
    return sal_op_put_params(ctx, &p, sizeof p);
}

/* ------------------------------------------------------------------------------------------------ */
/* Alias ops: output 0 is input 0's memory under another shape                                    */

static sal_status alias_input(sal_op_ctx *ctx) {
    sal_status st = need_input(ctx, 0, "data");
    if (st) return st;
    int t = in_dtype(ctx, 0);
    ctx->out_dtype[0] = t ? t : SAL_F32;
    return SAL_OK;
}

sal_status sal_infer_flatten(sal_op_ctx *ctx) {
    sal_status st = alias_input(ctx);
    if (st) return st;
    const sal_shape *x = in_shape(ctx, 0);
    int axis;
    if ((st = norm_axis(ctx, "axis", sal_attr_int(ctx->node, "axis", 1), x->ndim, 1, &axis)))
        return st;
    sal_shape *y = &ctx->out_shape[0];
    y->ndim = 2;
    y->d[0] = sal_dims_prod(x->d, 0, axis);
    y->d[1] = sal_dims_prod(x->d, axis, x->ndim);
    return SAL_OK;
}

/* Reshape: 0 copies the input's dim at that index (unless allowzero = 1: a real 0), one -1 is
 * inferred. The shape must be a constant at plan time. */
sal_status sal_infer_reshape(sal_op_ctx *ctx) {
    sal_status st = alias_input(ctx);
    if (st) return st;
    const sal_shape *x = in_shape(ctx, 0);
    int64_t shape[SAL_MAX_DIMS];
    int ns;
    if ((st = int_list(ctx, "shape", 1, 5, shape, SAL_MAX_DIMS, &ns))) return st;
    if (ns < 0) return sal_op_fail(ctx, SAL_ERR_SHAPE, "the shape input is missing");
    int allowzero = sal_attr_int(ctx->node, "allowzero", 0) != 0;
    sal_shape *y = &ctx->out_shape[0];
    y->ndim = ns;
    int infer_at = -1, has_zero = 0;
    int64_t known = 1;
    char sx[128];
    for (int i = 0; i < ns; i++) {
        int64_t v = shape[i];
        if (v == -1) {
            if (infer_at >= 0)
                return sal_op_fail(ctx, SAL_ERR_SHAPE, "shape has more than one -1");
            infer_at = i;
            y->d[i] = 1;
            continue;
        }
        if (v < -1 || v > SAL_DIM_MAX)   /* bounded (checked.h); the product is checked below */
            return sal_op_fail(ctx, SAL_ERR_SHAPE, "shape[%d] = %lld", i, (long long)v);
        if (v == 0 && !allowzero) {
            if (i >= x->ndim)
                return sal_op_fail(ctx, SAL_ERR_SHAPE, "shape[%d] = 0 copies a dim input %s lacks",
                                   i, sal_shape_str(x, sx, sizeof sx));
            v = x->d[i];
        } else if (v == 0) {
            has_zero = 1;
        }
        y->d[i] = v;
        if (sal_ck_mul(known, v, &known) || known > SAL_NUMEL_MAX)
            return sal_op_fail(ctx, SAL_ERR_SHAPE, "shape has more than 2^40 elements");
    }
    if (allowzero && has_zero && infer_at >= 0)
        return sal_op_fail(ctx, SAL_ERR_SHAPE, "allowzero=1 with both 0 and -1 in shape");
    int64_t n = sal_shape_numel(x);
    if (infer_at >= 0) {
        if (known == 0 || n % known != 0)
            return sal_op_fail(ctx, SAL_ERR_SHAPE, "cannot infer the -1 of shape[%d]: input %s "
                               "has %lld elements, the other dims %lld", infer_at,
                               sal_shape_str(x, sx, sizeof sx), (long long)n, (long long)known);
        y->d[infer_at] = n / known;
    }
    if (sal_shape_numel(y) != n) {
        char sy[128];
        return sal_op_fail(ctx, SAL_ERR_SHAPE, "cannot reshape %s (%lld elements) to %s",
                           sal_shape_str(x, sx, sizeof sx), (long long)n,
                           sal_shape_str(y, sy, sizeof sy));
    }
    return SAL_OK;
}

/* Squeeze: axes attribute (opset < 13) or constant input 1; without axes every 1-dim goes. */
sal_status sal_infer_squeeze(sal_op_ctx *ctx) {
    sal_status st = alias_input(ctx);
    if (st) return st;
    const sal_shape *x = in_shape(ctx, 0);
    int64_t axes[SAL_MAX_DIMS];
    int na;
    if ((st = int_list(ctx, "axes", 1, 13, axes, SAL_MAX_DIMS, &na))) return st;
    unsigned drop = 0;
    if (na < 0) {
        for (int d = 0; d < x->ndim; d++)
            if (x->d[d] == 1) drop |= 1u << d;
    } else {
        for (int i = 0; i < na; i++) {
            int a;
            if ((st = norm_axis(ctx, "axis", axes[i], x->ndim, 0, &a))) return st;
            if (x->d[a] != 1)
                return sal_op_fail(ctx, SAL_ERR_SHAPE, "cannot squeeze dim %d of size %lld", a,
                                   (long long)x->d[a]);
            drop |= 1u << a;
        }
    }
    sal_shape *y = &ctx->out_shape[0];
    y->ndim = 0;
    for (int d = 0; d < x->ndim; d++)
        if (!(drop & (1u << d))) y->d[y->ndim++] = x->d[d];
    return SAL_OK;
}

/* Unsqueeze: axes (attribute before opset 13, constant input from 13) index the output. */
sal_status sal_infer_unsqueeze(sal_op_ctx *ctx) {
    sal_status st = alias_input(ctx);
    if (st) return st;
    const sal_shape *x = in_shape(ctx, 0);
    int64_t axes[SAL_MAX_DIMS];
    int na;
    if ((st = int_list(ctx, "axes", 1, 13, axes, SAL_MAX_DIMS, &na))) return st;
    if (na < 0) return sal_op_fail(ctx, SAL_ERR_SHAPE, "axes are missing");
    int r = x->ndim + na;
    if (r > SAL_MAX_DIMS)
        return sal_op_fail(ctx, SAL_ERR_UNSUPPORTED, "output rank %d is above %d", r, SAL_MAX_DIMS);
    unsigned ins = 0;
    for (int i = 0; i < na; i++) {
        int a;
        if ((st = norm_axis(ctx, "axis", axes[i], r, 0, &a))) return st;
        if (ins & (1u << a))
            return sal_op_fail(ctx, SAL_ERR_SHAPE, "axis %lld is repeated", (long long)axes[i]);
        ins |= 1u << a;
    }
    sal_shape *y = &ctx->out_shape[0];
    y->ndim = r;
    for (int d = 0, k = 0; d < r; d++) y->d[d] = (ins & (1u << d)) ? 1 : x->d[k++];
    return SAL_OK;
}

/* Dropout in inference: y = x. The mask output and training mode (unless the ratio is a constant
 * 0) are unsupported. */
sal_status sal_infer_dropout(sal_op_ctx *ctx) {
    sal_status st = alias_input(ctx);
    if (st) return st;
    if (ctx->n_out > 1 && ctx->node->n_out > 1 && ctx->node->out[1] >= 0)
        return sal_op_fail(ctx, SAL_ERR_UNSUPPORTED, "the mask output is not supported");
    if (in_shape(ctx, 2)) {
        const sal_tensor *t = in_const(ctx, 2);
        if (!t)
            return sal_op_fail(ctx, SAL_ERR_UNSUPPORTED,
                               "input 2 (training_mode) must be a constant when planned");
        /* training with ratio 0 is still y = x (torchvision 0.14's Swin attention exports it) */
        const sal_tensor *ratio = in_const(ctx, 1);
        int ratio0 = ratio && sal_shape_numel(&ratio->shape) == 1 && sal_tensor_f64(ratio, 0) == 0.0;
        if (sal_shape_numel(&t->shape) > 0 && sal_tensor_i64(t, 0) != 0 && !ratio0)
            return sal_op_fail(ctx, SAL_ERR_UNSUPPORTED, "training_mode = true is not supported "
                               "(with a ratio other than a constant 0)");
    }
    ctx->out_shape[0] = *in_shape(ctx, 0);
    return SAL_OK;
}

sal_status sal_infer_identity(sal_op_ctx *ctx) {
    sal_status st = alias_input(ctx);
    if (st) return st;
    ctx->out_shape[0] = *in_shape(ctx, 0);
    return SAL_OK;
}
