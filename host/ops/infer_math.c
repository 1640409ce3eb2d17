/* infer_math.c — shape inference and parameters of issue 13's math ops:
 *
 *   unary        Sqrt Erf Gelu (opset 20: approximate none|tanh) Selu Elu Softplus -> sal_scalar_params
 *   Pow          a constant one-element exponent: element-wise; else broadcast     -> sal_pow_params
 *   LayerNormalization (opset 17: axis, epsilon; Mean and InvStdDev outputs)       -> sal_ln_params
 *   ReduceSum (axes input from opset 13), ReduceMax (axes input from opset 18), GlobalMaxPool
 *                                                                                  -> sal_axis_params
 *   ConvTranspose (1-D, 2-D; groups, strides, dilations, pads, output_padding, output_shape,
 *   auto_pad)                                                                      -> sal_conv_params
 *
 * Kernels: kernels/twin_math.h (the CPU backend maps them too). Runtime inputs are float32. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "op_decls.h"

/* ------------------------------------------------------------------------------------------------ */
/* Helpers                                                                                          */

/* ------------------------------------------------------------------------------------------------ */
/* Unary math                                                                                       */

static sal_status unary(sal_op_ctx *ctx, const sal_scalar_params *p) {
    sal_status st = sal_op_float_input(ctx, 0, "X", 1);
    if (st) return st;
    ctx->out_shape[0] = *in_shape(ctx, 0);
    ctx->out_dtype[0] = SAL_F32;
    return sal_op_put_params(ctx, p, sizeof *p);
}

sal_status sal_infer_sqrt(sal_op_ctx *ctx) {
    sal_scalar_params p = {0};
    return unary(ctx, &p);
}

sal_status sal_infer_erf(sal_op_ctx *ctx) {
    sal_scalar_params p = {0};
    return unary(ctx, &p);
}

/* Gelu (opset 20): approximate "none" (erf) or "tanh"; alpha = 1 selects tanh. */
sal_status sal_infer_gelu(sal_op_ctx *ctx) {
    sal_scalar_params p = {0};
    const char *ap = sal_attr_str(ctx->node, "approximate", "none");
    if (strcmp(ap, "tanh") == 0) p.alpha = 1.f;
    else if (strcmp(ap, "none") != 0)
        return sal_op_fail(ctx, SAL_ERR_UNSUPPORTED, "approximate '%s' is not one of none, tanh", ap);
    return unary(ctx, &p);
}

/* Selu: y = gamma * (x > 0 ? x : alpha * (e^x - 1)); alpha, gamma -> alpha, beta. */
sal_status sal_infer_selu(sal_op_ctx *ctx) {
    sal_scalar_params p = {0};
    p.alpha = sal_attr_float(ctx->node, "alpha", 1.67326319217681884765625f);
    p.beta = sal_attr_float(ctx->node, "gamma", 1.05070102214813232421875f);
    return unary(ctx, &p);
}

sal_status sal_infer_elu(sal_op_ctx *ctx) {
    sal_scalar_params p = {0};
    p.alpha = sal_attr_float(ctx->node, "alpha", 1.f);
    return unary(ctx, &p);
}

sal_status sal_infer_softplus(sal_op_ctx *ctx) {
    sal_scalar_params p = {0};
    return unary(ctx, &p);
}

/* Pow: a constant exponent with one element (of any numeric type: exporters write x^2 with an
 * int64 or float 2) is a parameter; otherwise X and Y are broadcast tensors, X float32, Y float32
 * or a constant of any numeric type. */
sal_status sal_infer_pow(sal_op_ctx *ctx) {
    sal_status st = sal_op_float_input(ctx, 0, "X", 1);
    if (st) return st;
    if (!in_shape(ctx, 1)) return sal_op_fail(ctx, SAL_ERR_SHAPE, "input 1 (Y) is missing");
    const sal_shape *x = in_shape(ctx, 0), *e = in_shape(ctx, 1);
    const sal_tensor *ec = in_const(ctx, 1);
    sal_pow_params p;
    memset(&p, 0, sizeof p);
    ctx->out_dtype[0] = SAL_F32;
    if (ec && sal_shape_numel(&ec->shape) == 1 && ec->shape.ndim <= x->ndim) {
        p.scalar = 1;
        p.e = (float)sal_tensor_f64(ec, 0);
        ctx->out_shape[0] = *x;
        return sal_op_put_params(ctx, &p, sizeof p);
    }
    /* a constant exponent of another type reaches the kernels as a float32 copy (engine.c) */
    if ((st = sal_op_float_input(ctx, 1, "Y", 0))) return st;
    char sa[128], sb[128];
    st = sal_broadcast(x, e, &ctx->out_shape[0], &p.b);
    if (st)
        return sal_op_fail(ctx, SAL_ERR_SHAPE, "shapes %s and %s do not broadcast",
                           sal_shape_str(x, sa, sizeof sa), sal_shape_str(e, sb, sizeof sb));
    p.b.mode = SAL_BC_GENERAL;
    return sal_op_put_params(ctx, &p, sizeof p);
}

/* ------------------------------------------------------------------------------------------------ */
/* LayerNormalization                                                                               */

/* X normalized over dims axis.. (default -1); Scale and B hold those dims' elements (or one);
 * outputs Y, and optionally Mean and InvStdDev shaped as X with the normalized dims set to 1. */
sal_status sal_infer_layernorm(sal_op_ctx *ctx) {
    sal_status st = sal_op_float_input(ctx, 0, "X", 1);
    if (!st) st = sal_op_float_input(ctx, 1, "Scale", 1);
    if (!st && in_shape(ctx, 2)) st = sal_op_float_input(ctx, 2, "B", 1);
    if (st) return st;
    const sal_shape *x = in_shape(ctx, 0);
    int64_t axis = sal_attr_int(ctx->node, "axis", -1);
    if (x->ndim < 1 || axis < -(int64_t)x->ndim || axis >= x->ndim)
        return sal_op_fail(ctx, SAL_ERR_SHAPE, "axis %lld is out of range for rank %d",
                           (long long)axis, x->ndim);
    int ax = (int)(axis < 0 ? axis + x->ndim : axis);
    sal_ln_params p;
    memset(&p, 0, sizeof p);
    p.rows = sal_dims_prod(x->d, 0, ax);
    p.len = sal_dims_prod(x->d, ax, x->ndim);
    p.epsilon = sal_attr_float(ctx->node, "epsilon", 1e-5f);
    if (!(p.epsilon >= 0.f))
        return sal_op_fail(ctx, SAL_ERR_UNSUPPORTED, "epsilon %g is negative or NaN", p.epsilon);
    p.scale_n = sal_shape_numel(in_shape(ctx, 1));
    p.bias_n = in_shape(ctx, 2) ? sal_shape_numel(in_shape(ctx, 2)) : 0;
    char sx[128];
    if ((p.scale_n != p.len && p.scale_n != 1) || (in_shape(ctx, 2) && p.bias_n != p.len && p.bias_n != 1))
        return sal_op_fail(ctx, SAL_ERR_SHAPE, "Scale has %lld and B %lld elements: X %s normalized "
                           "from axis %d needs %lld (or 1)", (long long)p.scale_n,
                           (long long)p.bias_n, sal_shape_str(x, sx, sizeof sx), ax,
                           (long long)p.len);
    for (int j = 0; j < ctx->n_out && j < 3; j++) {
        ctx->out_shape[j] = *x;
        ctx->out_dtype[j] = SAL_F32;
        if (j > 0)
            for (int d = ax; d < x->ndim; d++) ctx->out_shape[j].d[d] = 1;
    }
    if (ctx->n_out > 3) return sal_op_fail(ctx, SAL_ERR_SHAPE, "%d outputs (at most 3)", ctx->n_out);
    return sal_op_put_params(ctx, &p, sizeof p);
}

/* ------------------------------------------------------------------------------------------------ */
/* Reductions                                                                                       */

/* ReduceSum and ReduceMax share ReduceMean's axes forms, keepdims and noop_with_empty_axes (its
 * infer reads the axes attribute, or the constant axes input wherever it is present). */
sal_status sal_infer_reducesum(sal_op_ctx *ctx) { return sal_infer_reducemean(ctx); }
sal_status sal_infer_reducemax(sal_op_ctx *ctx) { return sal_infer_reducemean(ctx); }

/* GlobalMaxPool: x (N, C, spatial...) -> (N, C, 1, ...): a max over the spatial dims. */
sal_status sal_infer_globalmaxpool(sal_op_ctx *ctx) {
    sal_status st = sal_op_float_input(ctx, 0, "X", 1);
    if (st) return st;
    const sal_shape *x = in_shape(ctx, 0);
    char sx[128];
    if (x->ndim < 3)
        return sal_op_fail(ctx, SAL_ERR_SHAPE, "input %s is not (N, C, spatial...)",
                           sal_shape_str(x, sx, sizeof sx));
    sal_shape *y = &ctx->out_shape[0];
    *y = *x;
    for (int d = 2; d < x->ndim; d++) y->d[d] = 1;
    ctx->out_dtype[0] = SAL_F32;
    sal_axis_params p;
    memset(&p, 0, sizeof p);
    const int64_t nc = x->d[0] * x->d[1], s = sal_dims_prod(x->d, 2, x->ndim);
    p.count = s;
    p.keepdims = 1;
    p.axis = -1;
    if (nc != 1) p.rdims[p.rdim++] = nc;
    if (s != 1) { p.rmask |= 1u << p.rdim; p.rdims[p.rdim++] = s; }
    p.outer = nc;
    p.axis_len = s;
    p.inner = 1;
    return sal_op_put_params(ctx, &p, sizeof p);
}

/* ------------------------------------------------------------------------------------------------ */
/* ConvTranspose                                                                                    */

/* x (N, C, [H,] W), W (C, M/group, [kH,] kW), B (M); strides, dilations, pads, output_padding,
 * output_shape and auto_pad as ONNX defines them: the output side is
 *   s*(in-1) + output_padding + (k-1)*d + 1 - pad_begin - pad_end,
 * and with output_shape (or auto_pad SAME_*, which asks for in*s) the total padding is derived,
 * its odd unit at the end for SAME_UPPER and at the beginning otherwise. 1-D is H = 1. */
sal_status sal_infer_convtranspose(sal_op_ctx *ctx) {
    sal_status st = sal_op_float_input(ctx, 0, "X", 1);
    if (!st) st = sal_op_float_input(ctx, 1, "W", 1);
    if (!st && in_shape(ctx, 2)) st = sal_op_float_input(ctx, 2, "B", 1);
    if (st) return st;
    const sal_shape *x = in_shape(ctx, 0), *w = in_shape(ctx, 1);
    char sx[128], sw[128];
    if ((x->ndim != 3 && x->ndim != 4) || w->ndim != x->ndim)
        return sal_op_fail(ctx, SAL_ERR_UNSUPPORTED, "X %s and W %s: only 1-D and 2-D ConvTranspose "
                           "are supported", sal_shape_str(x, sx, sizeof sx), sal_shape_str(w, sw, sizeof sw));
    const int nsp = x->ndim - 2;
    sal_conv_params p;
    memset(&p, 0, sizeof p);
    p.spatial = nsp;
    p.group = sal_attr_int(ctx->node, "group", 1);
    p.n = x->d[0];
    p.c = x->d[1];
    p.h = nsp == 2 ? x->d[2] : 1;
    p.w = x->d[x->ndim - 1];
    if (p.group < 1 || p.c % p.group != 0 || w->d[0] != p.c)
        return sal_op_fail(ctx, SAL_ERR_SHAPE, "W %s does not fit X %s with group %lld",
                           sal_shape_str(w, sw, sizeof sw), sal_shape_str(x, sx, sizeof sx), (long long)p.group);
    p.m = w->d[1] * p.group;
    p.kh = nsp == 2 ? w->d[2] : 1;
    p.kw = w->d[w->ndim - 1];
    if (in_shape(ctx, 2)) {
        if (sal_shape_numel(in_shape(ctx, 2)) != p.m)
            return sal_op_fail(ctx, SAL_ERR_SHAPE, "B has %lld elements for %lld output channels",
                               (long long)sal_shape_numel(in_shape(ctx, 2)), (long long)p.m);
        p.has_bias = 1;
    }
    /* per spatial axis i (0 = H, 1 = W; 1-D uses axis 1 only) */
    int64_t in[2] = {p.h, p.w}, k[2] = {p.kh, p.kw}, s[2] = {1, 1}, d[2] = {1, 1}, pb[2] = {0, 0},
            pe[2] = {0, 0}, op[2] = {0, 0}, out[2];
    const int base = 2 - nsp;   /* first axis the attributes describe */
    const char *names[4] = {"strides", "dilations", "output_padding", "pads"};
    int64_t *dst[3] = {s, d, op};
    for (int a = 0; a < 4; a++) {
        const int64_t *v;
        int n = sal_attr_ints(ctx->node, names[a], &v);
        if (n < 0) continue;
        if (n != (a == 3 ? 2 * nsp : nsp))
            return sal_op_fail(ctx, SAL_ERR_SHAPE, "%s has %d values for %d spatial dims", names[a], n, nsp);
        for (int i = 0; i < nsp; i++) {
            if (a == 3) {
                pb[base + i] = v[i];
                pe[base + i] = v[i + nsp];
            } else {
                dst[a][base + i] = v[i];
            }
        }
    }
    const int64_t *os;
    int nos = sal_attr_ints(ctx->node, "output_shape", &os);
    const char *auto_pad = sal_attr_str(ctx->node, "auto_pad", "NOTSET");
    int upper = strcmp(auto_pad, "SAME_UPPER") == 0, lower = strcmp(auto_pad, "SAME_LOWER") == 0;
    if (!upper && !lower && strcmp(auto_pad, "NOTSET") != 0 && strcmp(auto_pad, "VALID") != 0 && *auto_pad)
        return sal_op_fail(ctx, SAL_ERR_UNSUPPORTED, "auto_pad '%s' is not one of NOTSET, SAME_UPPER, "
                           "SAME_LOWER, VALID", auto_pad);
    if (nos >= 0 && nos != nsp && nos != x->ndim)
        return sal_op_fail(ctx, SAL_ERR_SHAPE, "output_shape has %d values for %d spatial dims", nos, nsp);
    for (int i = 0; i < 2; i++) {   /* 1-D: axis 0 is the H = 1 of defaults, output 1 */
        if (s[i] < 1 || d[i] < 1 || pb[i] < 0 || pe[i] < 0 || op[i] < 0)
            return sal_op_fail(ctx, SAL_ERR_SHAPE, "strides, dilations, pads and output_padding must "
                               "be positive (spatial axis %d)", i - base);
        const int64_t full = s[i] * (in[i] - 1) + op[i] + (k[i] - 1) * d[i] + 1;
        int64_t want = -1;
        if (i >= base && nos >= 0) want = os[nos - nsp + (i - base)];
        else if (i >= base && (upper || lower)) want = in[i] * s[i];
        if (want >= 0) {
            /* a negative total (output_shape above the full output) leaves output cells no input
             * reaches: a negative pad; the halves as ONNX's reference computes them (floor) */
            const int64_t total = full - want, half = total >= 0 ? total / 2 : -((-total + 1) / 2);
            pb[i] = upper ? half : total - half;
            pe[i] = total - pb[i];
        }
        out[i] = full - pb[i] - pe[i];
        if (out[i] < 1)
            return sal_op_fail(ctx, SAL_ERR_SHAPE, "the output is empty on spatial axis %d", i - base);
    }
    p.sh = s[0]; p.sw = s[1]; p.dh = d[0]; p.dw = d[1];
    p.pt = pb[0]; p.pl = pb[1]; p.pb = pe[0]; p.pr = pe[1];
    p.oh = out[0];
    p.ow = out[1];
    sal_shape *y = &ctx->out_shape[0];
    y->ndim = x->ndim;
    y->d[0] = p.n;
    y->d[1] = p.m;
    if (nsp == 2) y->d[2] = p.oh;
    y->d[x->ndim - 1] = p.ow;
    ctx->out_dtype[0] = SAL_F32;
    return sal_op_put_params(ctx, &p, sizeof p);
}
