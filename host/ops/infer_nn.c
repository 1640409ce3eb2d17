/* infer_nn.c — shape inference and parameter resolution for convolution, pooling, normalization
 * and matrix-product ops (ONNX default domain, opsets 7..18): Conv, BatchNormalization, MaxPool,
 * AveragePool, GlobalAveragePool, Gemm, MatMul, LRN.
 *
 * Every function checks attributes and input shapes, writes the output shapes, fills one
 * malloc'd parameter block (see the *_params structs in ops.h) and asks for scratch memory when
 * its kernels need it. Errors name the attribute or the shapes at fault: SAL_ERR_SHAPE for
 * inconsistent models, SAL_ERR_UNSUPPORTED for valid ONNX we do not handle (3-D convolution,
 * training-mode BatchNorm, MaxPool's Indices output, non-float tensors).
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "op_decls.h"

/* ------------------------------------------------------------------------------------------------ */
/* Helpers                                                                                          */

/* Input i is present and of type float. */
static sal_status need_f32(sal_op_ctx *ctx, int i, const char *what) {
    if (i >= ctx->n_in || !ctx->in_shape[i])
        return sal_op_fail(ctx, SAL_ERR_SHAPE, "input %d (%s) is required", i, what);
    if (ctx->in_dtype && ctx->in_dtype[i] && ctx->in_dtype[i] != SAL_F32)
        return sal_op_fail(ctx, SAL_ERR_UNSUPPORTED, "input %d (%s) has type %s; only float32 is supported",
                           i, what, sal_dtype_name(ctx->in_dtype[i]));
    for (int d = 0; d < ctx->in_shape[i]->ndim; d++)
        if (ctx->in_shape[i]->d[d] <= 0) {
            char buf[128];
            return sal_op_fail(ctx, SAL_ERR_SHAPE, "input %d (%s) has shape %s: every dimension must be > 0",
                               i, what, sal_shape_str(ctx->in_shape[i], buf, sizeof buf));
        }
    return SAL_OK;
}

/* Output i exists and something reads it (a node or the graph's outputs). */
static int output_used(const sal_op_ctx *ctx, int i) {
    if (i >= ctx->node->n_out) return 0;
    int v = ctx->node->out[i];
    if (v < 0) return 0;
    const sal_graph *g = ctx->g;
    if (!g) return 1;
    if (g->values[v].is_output) return 1;
    for (int k = 0; k < g->n_nodes; k++)
        for (int j = 0; j < g->nodes[k].n_in; j++)
            if (g->nodes[k].in[j] == v) return 1;
    return 0;
}

/* Zeroed parameter block stored in ctx->params (freed by the engine); NULL on OOM. */
static void *alloc_params(sal_op_ctx *ctx, size_t bytes) {
    void *p = calloc(1, bytes);
    ctx->params = p;
    return p;
}
#define OOM(ctx) sal_op_fail(ctx, SAL_ERR_NOMEM, "out of memory for op parameters")

static int fits_int(int64_t v) { return v >= 0 && v <= INT_MAX; }

/* Window geometry of a convolution or pooling over nsp (1 or 2) spatial dims. */
typedef struct window {
    int64_t k[2], s[2], d[2], pb[2], pe[2], out[2];
} window;

/* Read strides, dilations, pads / auto_pad (and ceil_mode for pools) into w, given the input's
 * spatial sizes in[] and the kernel w->k[]. The output size follows ONNX:
 *   NOTSET/VALID: floor or ceil((in + pb + pe - ek) / s) + 1, ek = (k-1)*d + 1; with ceil_mode a
 *                 last window that would start in the right padding is dropped;
 *   SAME_*:       ceil(in / s), total pad max(0, (out-1)*s + ek - in), the odd one at the end
 *                 (SAME_UPPER) or at the beginning (SAME_LOWER). */
static sal_status window_attrs(sal_op_ctx *ctx, int nsp, const int64_t *in, int ceil_mode,
                               int pool, window *w) {
    const sal_node *node = ctx->node;
    const int64_t *v;
    int n;
    for (int i = 0; i < nsp; i++) {
        w->s[i] = 1;
        w->d[i] = 1;
        w->pb[i] = w->pe[i] = 0;
        if (w->k[i] <= 0 || w->k[i] > SAL_EXTENT_MAX)
            return sal_op_fail(ctx, SAL_ERR_SHAPE, "kernel size %lld must be in 1..2^24", (long long)w->k[i]);
        if (in[i] < 0 || in[i] > SAL_DIM_MAX)
            return sal_op_fail(ctx, SAL_ERR_SHAPE, "spatial size %lld is out of range", (long long)in[i]);
    }
    if ((n = sal_attr_ints(node, "strides", &v)) >= 0) {
        if (n != nsp) return sal_op_fail(ctx, SAL_ERR_SHAPE, "strides has %d values, expected %d", n, nsp);
        for (int i = 0; i < nsp; i++) {
            if (v[i] <= 0 || v[i] > SAL_EXTENT_MAX)
                return sal_op_fail(ctx, SAL_ERR_SHAPE, "strides[%d] = %lld must be in 1..2^24", i, (long long)v[i]);
            w->s[i] = v[i];
        }
    }
    if ((n = sal_attr_ints(node, "dilations", &v)) >= 0) {
        if (n != nsp) return sal_op_fail(ctx, SAL_ERR_SHAPE, "dilations has %d values, expected %d", n, nsp);
        for (int i = 0; i < nsp; i++) {
            if (v[i] <= 0 || v[i] > SAL_EXTENT_MAX)
                return sal_op_fail(ctx, SAL_ERR_SHAPE, "dilations[%d] = %lld must be in 1..2^24", i,
                                   (long long)v[i]);
            w->d[i] = v[i];
        }
    }
    const char *auto_pad = sal_attr_str(node, "auto_pad", "NOTSET");
    int same_upper = strcmp(auto_pad, "SAME_UPPER") == 0, same_lower = strcmp(auto_pad, "SAME_LOWER") == 0;
    int valid = strcmp(auto_pad, "VALID") == 0, notset = strcmp(auto_pad, "NOTSET") == 0 || !*auto_pad;
    if (!same_upper && !same_lower && !valid && !notset)
        return sal_op_fail(ctx, SAL_ERR_UNSUPPORTED,
                           "auto_pad '%s' is not one of NOTSET, SAME_UPPER, SAME_LOWER, VALID", auto_pad);
    if (notset && (n = sal_attr_ints(node, "pads", &v)) >= 0) {
        if (n != 2 * nsp)
            return sal_op_fail(ctx, SAL_ERR_SHAPE, "pads has %d values, expected %d", n, 2 * nsp);
        for (int i = 0; i < 2 * nsp; i++)
            if (v[i] < 0 || v[i] > SAL_EXTENT_MAX)   /* bounded: in + pb + pe cannot overflow */
                return sal_op_fail(ctx, SAL_ERR_SHAPE, "pads[%d] = %lld must be in 0..2^24", i, (long long)v[i]);
        for (int i = 0; i < nsp; i++) {
            w->pb[i] = v[i];
            w->pe[i] = v[i + nsp];
            if (pool && (w->pb[i] >= w->k[i] || w->pe[i] >= w->k[i]))
                return sal_op_fail(ctx, SAL_ERR_SHAPE,
                                   "pads (%lld, %lld) on spatial axis %d must be smaller than "
                                   "kernel_shape %lld",
                                   (long long)w->pb[i], (long long)w->pe[i], i, (long long)w->k[i]);
        }
    }
    for (int i = 0; i < nsp; i++) {
        int64_t ek = (w->k[i] - 1) * w->d[i] + 1;
        if (same_upper || same_lower) {
            w->out[i] = (in[i] + w->s[i] - 1) / w->s[i];
            int64_t total = (w->out[i] - 1) * w->s[i] + ek - in[i];
            if (total < 0) total = 0;
            int64_t small = total / 2;
            w->pb[i] = same_upper ? small : total - small;
            w->pe[i] = total - w->pb[i];
            continue;
        }
        int64_t span = in[i] + w->pb[i] + w->pe[i];
        if (span < ek)
            return sal_op_fail(ctx, SAL_ERR_SHAPE,
                               "kernel extent %lld (kernel %lld, dilation %lld) is larger than the padded "
                               "input %lld on spatial axis %d",
                               (long long)ek, (long long)w->k[i], (long long)w->d[i], (long long)span, i);
        if (ceil_mode) {
            w->out[i] = (span - ek + w->s[i] - 1) / w->s[i] + 1;
            if ((w->out[i] - 1) * w->s[i] >= in[i] + w->pb[i]) w->out[i]--;
        } else {
            w->out[i] = (span - ek) / w->s[i] + 1;
        }
    }
    return SAL_OK;
}

/* ------------------------------------------------------------------------------------------------ */
/* Conv                                                                                             */

sal_status sal_infer_conv(sal_op_ctx *ctx) {
    sal_status st;
    if ((st = need_f32(ctx, 0, "X")) || (st = need_f32(ctx, 1, "W"))) return st;
    const sal_shape *x = ctx->in_shape[0], *wt = ctx->in_shape[1];
    const sal_shape *b = ctx->n_in > 2 ? ctx->in_shape[2] : NULL;
    if (b && (st = need_f32(ctx, 2, "B"))) return st;
    if (x->ndim == 5)
        return sal_op_fail(ctx, SAL_ERR_UNSUPPORTED, "3-D convolution (5-D input) is not supported");
    if (x->ndim > 5)
        return sal_op_fail(ctx, SAL_ERR_UNSUPPORTED, "%d-D convolution is not supported", x->ndim - 2);
    if (x->ndim < 3)
        return sal_op_fail(ctx, SAL_ERR_SHAPE, "X has rank %d, expected 3 (N,C,L) or 4 (N,C,H,W)", x->ndim);
    if (wt->ndim != x->ndim)
        return sal_op_fail(ctx, SAL_ERR_SHAPE, "W has rank %d but X has rank %d", wt->ndim, x->ndim);
    int nsp = x->ndim - 2;
    int64_t group = sal_attr_int(ctx->node, "group", 1);
    int64_t C = x->d[1], M = wt->d[0];
    if (group <= 0) return sal_op_fail(ctx, SAL_ERR_SHAPE, "group = %lld must be > 0", (long long)group);
    if (C % group != 0 || wt->d[1] * group != C)
        return sal_op_fail(ctx, SAL_ERR_SHAPE,
                           "weight channel mismatch: X has %lld channels, W has %lld input channels per "
                           "group, group = %lld",
                           (long long)C, (long long)wt->d[1], (long long)group);
    if (M % group != 0)
        return sal_op_fail(ctx, SAL_ERR_SHAPE, "W has %lld output channels, not a multiple of group = %lld",
                           (long long)M, (long long)group);
    if (b && (b->ndim != 1 || b->d[0] != M)) {
        char buf[128];
        return sal_op_fail(ctx, SAL_ERR_SHAPE, "bias B has shape %s, expected (%lld)",
                           sal_shape_str(b, buf, sizeof buf), (long long)M);
    }
    window w;
    const int64_t *ks;
    int nk = sal_attr_ints(ctx->node, "kernel_shape", &ks);
    if (nk >= 0 && nk != nsp)
        return sal_op_fail(ctx, SAL_ERR_SHAPE, "kernel_shape has %d values, expected %d", nk, nsp);
    for (int i = 0; i < nsp; i++) {
        w.k[i] = wt->d[2 + i];
        if (nk >= 0 && ks[i] != w.k[i])
            return sal_op_fail(ctx, SAL_ERR_SHAPE, "kernel_shape[%d] = %lld but W's kernel is %lld", i,
                               (long long)ks[i], (long long)w.k[i]);
    }
    if ((st = window_attrs(ctx, nsp, &x->d[2], 0, 0, &w))) return st;

    sal_conv_params *p;
    if (!(p = alloc_params(ctx, sizeof *p))) return OOM(ctx);
    p->spatial = nsp;
    p->n = x->d[0];
    p->c = C;
    p->m = M;
    p->group = group;
    p->has_bias = b != NULL;
    p->const_wb = ctx->in_const && ctx->in_const[1] && (!b || ctx->in_const[2]);
    if (nsp == 2) {
        p->h = x->d[2]; p->w = x->d[3]; p->oh = w.out[0]; p->ow = w.out[1];
        p->kh = w.k[0]; p->kw = w.k[1]; p->sh = w.s[0]; p->sw = w.s[1]; p->dh = w.d[0]; p->dw = w.d[1];
        p->pt = w.pb[0]; p->pl = w.pb[1]; p->pb = w.pe[0]; p->pr = w.pe[1];
    } else {   /* 1-D: H = 1 */
        p->h = 1; p->w = x->d[2]; p->oh = 1; p->ow = w.out[0];
        p->kh = 1; p->kw = w.k[0]; p->sh = 1; p->sw = w.s[0]; p->dh = 1; p->dw = w.d[0];
        p->pt = 0; p->pl = w.pb[0]; p->pb = 0; p->pr = w.pe[0];
    }
    int64_t cg = C / group, mg = M / group, kk, ohw, hw, col;   /* products checked (checked.h) */
    int wrap = sal_ck_mul(cg, p->kh, &kk) | sal_ck_mul(kk, p->kw, &kk) | sal_ck_mul(p->oh, p->ow, &ohw) |
               sal_ck_mul(p->h, p->w, &hw) | sal_ck_mul(kk, ohw, &col);
    if (wrap || !fits_int(kk) || !fits_int(ohw) || !fits_int(mg) || !fits_int(hw) || !fits_int(col))
        return sal_op_fail(ctx, SAL_ERR_UNSUPPORTED, "convolution too large for 32-bit BLAS sizes");
    int pointwise = p->kh == 1 && p->kw == 1 && p->sh == 1 && p->sw == 1 && p->pt == 0 && p->pl == 0 &&
                    p->pb == 0 && p->pr == 0;
    int depthwise = cg == 1 && group == C;
    if (depthwise) {
        /* Per thread, the CPU kernel keeps a plane zero-padded to every tap's reach (or its four
         * stride-2 phases), the same for dY in the backward, and an accumulator: all within
         * 3 * E * F floats, E and F bounding the padded extents. */
        int64_t e = p->h + p->pt + p->pb + p->kh * p->dh, f = p->w + p->pl + p->pr + p->kw * p->dw;
        if (p->oh * p->sh + p->kh * p->dh > e) e = p->oh * p->sh + p->kh * p->dh;
        if (p->ow * p->sw + p->kw * p->dw > f) f = p->ow * p->sw + p->kw * p->dw;
        int64_t ef;
        if (sal_ck_mul(e + 8, f + 8, &ef) || ef > SAL_NUMEL_MAX / (4 * SAL_CONV_DW_SLOTS))
            return sal_op_fail(ctx, SAL_ERR_UNSUPPORTED, "depthwise convolution too large (padded plane "
                               "%lld x %lld)", (long long)e, (long long)f);
        p->dw_slot = (3 * ef + 64 + 15) / 16 * 16;   /* 64-byte aligned slots */
        ctx->scratch_floats = (size_t)(SAL_CONV_DW_SLOTS * p->dw_slot);
    } else {
        /* im2col / col2im buffer (Cg*kh*kw, OH*OW) of one image and group (forward and backward) */
        ctx->scratch_floats = pointwise ? 0 : (size_t)(kk * ohw);
        /* no GEMM spans several images: a GEMM's columns round differently for another column
         * count (host/backend/cpu/gemm.c), and an image's result must not depend on its batch */
    }

    ctx->out_shape[0].ndim = x->ndim;
    ctx->out_shape[0].d[0] = x->d[0];
    ctx->out_shape[0].d[1] = M;
    for (int i = 0; i < nsp; i++) ctx->out_shape[0].d[2 + i] = w.out[i];
    ctx->out_dtype[0] = SAL_F32;
    return SAL_OK;
}

/* ------------------------------------------------------------------------------------------------ */
/* BatchNormalization (inference mode)                                                              */

sal_status sal_infer_batchnorm(sal_op_ctx *ctx) {
    sal_status st;
    static const char *names[5] = {"X", "scale", "B", "input_mean", "input_var"};
    for (int i = 0; i < 5; i++)
        if ((st = need_f32(ctx, i, names[i]))) return st;
    const sal_shape *x = ctx->in_shape[0];
    if (x->ndim < 2)
        return sal_op_fail(ctx, SAL_ERR_SHAPE, "X has rank %d, expected >= 2 (N,C,...)", x->ndim);
    if (sal_attr_int(ctx->node, "training_mode", 0) != 0)
        return sal_op_fail(ctx, SAL_ERR_UNSUPPORTED, "training_mode = 1 is not supported (inference only)");
    if (ctx->g && ctx->g->opset < 9 && sal_attr_int(ctx->node, "spatial", 1) == 0 && x->ndim > 2)
        return sal_op_fail(ctx, SAL_ERR_UNSUPPORTED, "spatial = 0 is not supported");
    for (int i = 1; i < ctx->node->n_out; i++)
        if (output_used(ctx, i))
            return sal_op_fail(ctx, SAL_ERR_UNSUPPORTED,
                               "output %d (running or saved statistics) is used: training mode is not "
                               "supported", i);
    int64_t C = x->d[1];
    for (int i = 1; i < 5; i++) {
        const sal_shape *s = ctx->in_shape[i];
        if (s->ndim != 1 || s->d[0] != C) {
            char buf[128];
            return sal_op_fail(ctx, SAL_ERR_SHAPE, "%s has shape %s, expected (%lld)", names[i],
                               sal_shape_str(s, buf, sizeof buf), (long long)C);
        }
    }
    sal_bn_params *p;
    if (!(p = alloc_params(ctx, sizeof *p))) return OOM(ctx);
    p->n = x->d[0];
    p->c = C;
    p->inner = 1;
    for (int d = 2; d < x->ndim; d++) p->inner *= x->d[d];
    p->epsilon = sal_attr_float(ctx->node, "epsilon", 1e-5f);
    ctx->out_shape[0] = *x;
    ctx->out_dtype[0] = SAL_F32;
    for (int i = 1; i < ctx->n_out; i++) {   /* unused statistics outputs: (C), never written */
        ctx->out_shape[i].ndim = 1;
        ctx->out_shape[i].d[0] = C;
        ctx->out_dtype[i] = SAL_F32;
    }
    return SAL_OK;
}

/* ------------------------------------------------------------------------------------------------ */
/* MaxPool, AveragePool, GlobalAveragePool                                                          */

static sal_status infer_pool(sal_op_ctx *ctx, int is_max) {
    sal_status st;
    if ((st = need_f32(ctx, 0, "X"))) return st;
    const sal_shape *x = ctx->in_shape[0];
    if (x->ndim == 5)
        return sal_op_fail(ctx, SAL_ERR_UNSUPPORTED, "3-D pooling (5-D input) is not supported");
    if (x->ndim > 5)
        return sal_op_fail(ctx, SAL_ERR_UNSUPPORTED, "%d-D pooling is not supported", x->ndim - 2);
    if (x->ndim < 3)
        return sal_op_fail(ctx, SAL_ERR_SHAPE, "X has rank %d, expected 3 (N,C,L) or 4 (N,C,H,W)", x->ndim);
    if (is_max && output_used(ctx, 1))
        return sal_op_fail(ctx, SAL_ERR_UNSUPPORTED, "the Indices output (output 1) is not supported");
    int nsp = x->ndim - 2;
    const int64_t *ks;
    int nk = sal_attr_ints(ctx->node, "kernel_shape", &ks);
    if (nk < 0) return sal_op_fail(ctx, SAL_ERR_SHAPE, "kernel_shape is required");
    if (nk != nsp) return sal_op_fail(ctx, SAL_ERR_SHAPE, "kernel_shape has %d values, expected %d", nk, nsp);
    window w;
    for (int i = 0; i < nsp; i++) w.k[i] = ks[i];
    int ceil_mode = (int)sal_attr_int(ctx->node, "ceil_mode", 0);
    if ((st = window_attrs(ctx, nsp, &x->d[2], ceil_mode, 1, &w))) return st;

    sal_pool_params *p;
    if (!(p = alloc_params(ctx, sizeof *p))) return OOM(ctx);
    p->n = x->d[0];
    p->c = x->d[1];
    p->count_include_pad = is_max ? 0 : (int)sal_attr_int(ctx->node, "count_include_pad", 0);
    p->has_indices = 0;
    if (nsp == 2) {
        p->h = x->d[2]; p->w = x->d[3]; p->oh = w.out[0]; p->ow = w.out[1];
        p->kh = w.k[0]; p->kw = w.k[1]; p->sh = w.s[0]; p->sw = w.s[1]; p->dh = w.d[0]; p->dw = w.d[1];
        p->pt = w.pb[0]; p->pl = w.pb[1]; p->pb = w.pe[0]; p->pr = w.pe[1];
    } else {
        p->h = 1; p->w = x->d[2]; p->oh = 1; p->ow = w.out[0];
        p->kh = 1; p->kw = w.k[0]; p->sh = 1; p->sw = w.s[0]; p->dh = 1; p->dw = w.d[0];
        p->pt = 0; p->pl = w.pb[0]; p->pb = 0; p->pr = w.pe[0];
    }
    ctx->out_shape[0].ndim = x->ndim;
    ctx->out_shape[0].d[0] = x->d[0];
    ctx->out_shape[0].d[1] = x->d[1];
    for (int i = 0; i < nsp; i++) ctx->out_shape[0].d[2 + i] = w.out[i];
    ctx->out_dtype[0] = SAL_F32;
    for (int i = 1; i < ctx->n_out; i++) {   /* unused Indices: same shape, never written */
        ctx->out_shape[i] = ctx->out_shape[0];
        ctx->out_dtype[i] = SAL_I64;
    }
    return SAL_OK;
}

sal_status sal_infer_maxpool(sal_op_ctx *ctx) { return infer_pool(ctx, 1); }
sal_status sal_infer_avgpool(sal_op_ctx *ctx) { return infer_pool(ctx, 0); }

/* GlobalAveragePool: x (N,C,spatial...) -> (N,C,1,...,1); params as a pool whose window is the
 * whole plane: h = product of the spatial dims, w = 1, oh = ow = 1. */
sal_status sal_infer_globalavgpool(sal_op_ctx *ctx) {
    sal_status st;
    if ((st = need_f32(ctx, 0, "X"))) return st;
    const sal_shape *x = ctx->in_shape[0];
    if (x->ndim < 3)
        return sal_op_fail(ctx, SAL_ERR_SHAPE, "X has rank %d, expected >= 3 (N,C,spatial...)", x->ndim);
    sal_pool_params *p;
    if (!(p = alloc_params(ctx, sizeof *p))) return OOM(ctx);
    p->n = x->d[0];
    p->c = x->d[1];
    p->h = 1;
    for (int d = 2; d < x->ndim; d++) p->h *= x->d[d];
    p->w = 1;
    p->oh = p->ow = 1;
    p->kh = p->h;
    p->kw = p->sh = p->sw = p->dh = p->dw = 1;
    p->count_include_pad = 1;
    ctx->out_shape[0] = *x;
    for (int d = 2; d < x->ndim; d++) ctx->out_shape[0].d[d] = 1;
    ctx->out_dtype[0] = SAL_F32;
    return SAL_OK;
}

/* ------------------------------------------------------------------------------------------------ */
/* Gemm                                                                                             */

sal_status sal_infer_gemm(sal_op_ctx *ctx) {
    sal_status st;
    if ((st = need_f32(ctx, 0, "A")) || (st = need_f32(ctx, 1, "B"))) return st;
    const sal_shape *a = ctx->in_shape[0], *b = ctx->in_shape[1];
    const sal_shape *c = ctx->n_in > 2 ? ctx->in_shape[2] : NULL;
    if (c && (st = need_f32(ctx, 2, "C"))) return st;
    if (a->ndim != 2 || b->ndim != 2)
        return sal_op_fail(ctx, SAL_ERR_SHAPE, "A and B must be 2-D (ranks %d and %d)", a->ndim, b->ndim);
    int ta = sal_attr_int(ctx->node, "transA", 0) != 0, tb = sal_attr_int(ctx->node, "transB", 0) != 0;
    int64_t M = ta ? a->d[1] : a->d[0], K = ta ? a->d[0] : a->d[1];
    int64_t Kb = tb ? b->d[1] : b->d[0], N = tb ? b->d[0] : b->d[1];
    if (K != Kb)
        return sal_op_fail(ctx, SAL_ERR_SHAPE,
                           "inner dimensions differ: op(A) is (%lld,%lld), op(B) is (%lld,%lld)",
                           (long long)M, (long long)K, (long long)Kb, (long long)N);
    if (!fits_int(M) || !fits_int(N) || !fits_int(K))
        return sal_op_fail(ctx, SAL_ERR_UNSUPPORTED, "matrix too large for 32-bit BLAS sizes");
    sal_gemm_params *p;
    if (!(p = alloc_params(ctx, sizeof *p))) return OOM(ctx);
    p->m = M;
    p->n = N;
    p->k = K;
    p->trans_a = ta;
    p->trans_b = tb;
    p->alpha = sal_attr_float(ctx->node, "alpha", 1.0f);
    p->beta = sal_attr_float(ctx->node, "beta", 1.0f);
    p->has_c = c != NULL;
    sal_shape mn = {2, {M, N}};
    if (c) {
        sal_shape out;
        char buf[128];
        if (c->ndim > 2 || sal_broadcast(&mn, c, &out, &p->c) != SAL_OK || !sal_shape_eq(&out, &mn))
            return sal_op_fail(ctx, SAL_ERR_SHAPE, "C of shape %s does not broadcast to (%lld,%lld)",
                               sal_shape_str(c, buf, sizeof buf), (long long)M, (long long)N);
        /* p->c.sb: C's element strides over (M,N), 0 on broadcast dims */
    }
    ctx->out_shape[0] = mn;
    ctx->out_dtype[0] = SAL_F32;
    return SAL_OK;
}

/* ------------------------------------------------------------------------------------------------ */
/* MatMul (numpy semantics)                                                                         */

sal_status sal_infer_matmul(sal_op_ctx *ctx) {
    sal_status st;
    if ((st = need_f32(ctx, 0, "A")) || (st = need_f32(ctx, 1, "B"))) return st;
    const sal_shape *a = ctx->in_shape[0], *b = ctx->in_shape[1];
    if (a->ndim < 1 || b->ndim < 1)
        return sal_op_fail(ctx, SAL_ERR_SHAPE, "operands must have rank >= 1 (ranks %d and %d)", a->ndim,
                           b->ndim);
    int64_t M = a->ndim == 1 ? 1 : a->d[a->ndim - 2], K = a->d[a->ndim - 1];
    int64_t Kb = b->ndim == 1 ? b->d[0] : b->d[b->ndim - 2], N = b->ndim == 1 ? 1 : b->d[b->ndim - 1];
    char ba[128], bb[128];
    if (K != Kb)
        return sal_op_fail(ctx, SAL_ERR_SHAPE, "inner dimensions differ: A %s, B %s",
                           sal_shape_str(a, ba, sizeof ba), sal_shape_str(b, bb, sizeof bb));
    /* batch dims */
    sal_shape abat = {0, {0}}, bbat = {0, {0}}, obat;
    if (a->ndim > 2) { abat.ndim = a->ndim - 2; memcpy(abat.d, a->d, sizeof(int64_t) * (size_t)abat.ndim); }
    if (b->ndim > 2) { bbat.ndim = b->ndim - 2; memcpy(bbat.d, b->d, sizeof(int64_t) * (size_t)bbat.ndim); }
    sal_bcast_params bp;
    if (sal_broadcast(&abat, &bbat, &obat, &bp) != SAL_OK)
        return sal_op_fail(ctx, SAL_ERR_SHAPE, "batch dimensions of A %s and B %s do not broadcast",
                           sal_shape_str(a, ba, sizeof ba), sal_shape_str(b, bb, sizeof bb));
    int out_nd = obat.ndim + (a->ndim > 1) + (b->ndim > 1);
    if (out_nd > SAL_MAX_DIMS)
        return sal_op_fail(ctx, SAL_ERR_UNSUPPORTED, "output rank %d too large", out_nd);
    if (!fits_int(M) || !fits_int(N) || !fits_int(K))
        return sal_op_fail(ctx, SAL_ERR_UNSUPPORTED, "matrix too large for 32-bit BLAS sizes");

    sal_matmul_params *p;
    if (!(p = alloc_params(ctx, sizeof *p))) return OOM(ctx);
    p->m = M;
    p->n = N;
    p->k = K;
    p->batch = sal_shape_numel(&obat);
    p->batch_ndim = obat.ndim;
    for (int i = 0; i < obat.ndim; i++) {
        p->batch_shape[i] = obat.d[i];
        p->a_bstride[i] = bp.sa[i];
        p->b_bstride[i] = bp.sb[i];
    }
    int64_t na = sal_shape_numel(&abat), nb = sal_shape_numel(&bbat);
    p->batch_general = !((na == 1 || na == p->batch) && (nb == 1 || nb == p->batch));
    p->a_batch_stride = na == 1 ? 0 : M * K;
    p->b_batch_stride = nb == 1 ? 0 : K * N;

    sal_shape *o = &ctx->out_shape[0];
    o->ndim = 0;
    for (int i = 0; i < obat.ndim; i++) o->d[o->ndim++] = obat.d[i];
    if (a->ndim > 1) o->d[o->ndim++] = M;
    if (b->ndim > 1) o->d[o->ndim++] = N;
    ctx->out_dtype[0] = SAL_F32;
    return SAL_OK;
}

/* ------------------------------------------------------------------------------------------------ */
/* LRN                                                                                              */

sal_status sal_infer_lrn(sal_op_ctx *ctx) {
    sal_status st;
    if ((st = need_f32(ctx, 0, "X"))) return st;
    const sal_shape *x = ctx->in_shape[0];
    if (x->ndim < 2)
        return sal_op_fail(ctx, SAL_ERR_SHAPE, "X has rank %d, expected >= 2 (N,C,...)", x->ndim);
    int64_t size = sal_attr_int(ctx->node, "size", 0);
    if (size <= 0)
        return sal_op_fail(ctx, SAL_ERR_SHAPE, "size = %lld must be given and > 0", (long long)size);
    sal_lrn_params *p;
    if (!(p = alloc_params(ctx, sizeof *p))) return OOM(ctx);
    p->size = size;
    p->alpha = sal_attr_float(ctx->node, "alpha", 1e-4f);
    p->beta = sal_attr_float(ctx->node, "beta", 0.75f);
    p->bias = sal_attr_float(ctx->node, "bias", 1.0f);
    p->n = x->d[0];
    p->c = x->d[1];
    p->inner = 1;
    for (int d = 2; d < x->ndim; d++) p->inner *= x->d[d];
    /* backward: per-element g * x * s^(-beta-1), (N,C,inner) */
    ctx->scratch_floats = (size_t)sal_shape_numel(x);
    ctx->out_shape[0] = *x;
    ctx->out_dtype[0] = SAL_F32;
    return SAL_OK;
}

/* Element offsets of batch bi's A and B matrices (used by every backend's MatMul). */
void sal_matmul_offsets(const sal_matmul_params *p, int64_t bi, int64_t *ao, int64_t *bo) {
    if (!p->batch_general) {
        *ao = bi * p->a_batch_stride;
        *bo = bi * p->b_batch_stride;
        return;
    }
    int64_t ia = 0, ib = 0, r = bi;
    for (int d = p->batch_ndim - 1; d >= 0; d--) {
        int64_t idx = r % p->batch_shape[d];
        r /= p->batch_shape[d];
        ia += idx * p->a_bstride[d];
        ib += idx * p->b_bstride[d];
    }
    *ao = ia * p->m * p->k;
    *bo = ib * p->k * p->n;
}

/* B shared by every batch and A's batches contiguous: the batch folds into M, one GEMM
 * (A' (batch*M, K), Y' (batch*M, N)). */
int sal_matmul_foldable(const sal_matmul_params *p) {
    return !p->batch_general && p->b_batch_stride == 0 && (p->a_batch_stride != 0 || p->batch == 1) &&
           p->batch * p->m <= 0x7fffffff;
}
