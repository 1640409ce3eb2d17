/* registry.c — the table of supported ONNX ops (default domain) and shared infer helpers. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "op_decls.h"

/* ------------------------------------------------------------------------------------------------ */
/* The table                                                                                        */

static const sal_op_def op_table[] = {
    {"Conv", SAL_OP_CONV, 0, sal_infer_conv},
    {"BatchNormalization", SAL_OP_BATCHNORM, 0, sal_infer_batchnorm},
    {"Relu", SAL_OP_RELU, 0, sal_infer_relu},
    {"LeakyRelu", SAL_OP_LEAKYRELU, 0, sal_infer_leakyrelu},
    {"Clip", SAL_OP_CLIP, 0, sal_infer_clip},
    {"Sigmoid", SAL_OP_SIGMOID, 0, sal_infer_sigmoid},
    {"HardSigmoid", SAL_OP_HARDSIGMOID, 0, sal_infer_hardsigmoid},
    {"HardSwish", SAL_OP_HARDSWISH, 0, sal_infer_hardswish},
    {"Tanh", SAL_OP_TANH, 0, sal_infer_tanh},
    {"Add", SAL_OP_ADD, 0, sal_infer_add},
    {"Sub", SAL_OP_SUB, 0, sal_infer_sub},
    {"Mul", SAL_OP_MUL, 0, sal_infer_mul},
    {"Div", SAL_OP_DIV, 0, sal_infer_div},
    {"MaxPool", SAL_OP_MAXPOOL, 0, sal_infer_maxpool},
    {"AveragePool", SAL_OP_AVGPOOL, 0, sal_infer_avgpool},
    {"GlobalAveragePool", SAL_OP_GLOBALAVGPOOL, 0, sal_infer_globalavgpool},
    {"ReduceMean", SAL_OP_REDUCEMEAN, 0, sal_infer_reducemean},
    {"Flatten", SAL_OP_FLATTEN, SAL_OPF_ALIAS, sal_infer_flatten},
    {"Reshape", SAL_OP_RESHAPE, SAL_OPF_ALIAS, sal_infer_reshape},
    {"Transpose", SAL_OP_TRANSPOSE, 0, sal_infer_transpose},
    {"Squeeze", SAL_OP_SQUEEZE, SAL_OPF_ALIAS, sal_infer_squeeze},
    {"Unsqueeze", SAL_OP_UNSQUEEZE, SAL_OPF_ALIAS, sal_infer_unsqueeze},
    {"Gemm", SAL_OP_GEMM, 0, sal_infer_gemm},
    {"MatMul", SAL_OP_MATMUL, 0, sal_infer_matmul},
    {"Softmax", SAL_OP_SOFTMAX, 0, sal_infer_softmax},
    {"Concat", SAL_OP_CONCAT, 0, sal_infer_concat},
    {"Pad", SAL_OP_PAD, 0, sal_infer_pad},
    {"Dropout", SAL_OP_DROPOUT, SAL_OPF_ALIAS, sal_infer_dropout},
    {"Identity", SAL_OP_IDENTITY, SAL_OPF_ALIAS, sal_infer_identity},
    {"LRN", SAL_OP_LRN, 0, sal_infer_lrn},
    {"Constant", SAL_OP_CONSTANT, SAL_OPF_FOLD_ONLY, NULL},
    {"Shape", SAL_OP_SHAPE, SAL_OPF_FOLD_ONLY, NULL},
    {"Gather", SAL_OP_GATHER, 0, sal_infer_gather},
    {"Slice", SAL_OP_SLICE, 0, sal_infer_slice},
    {"Cast", SAL_OP_CAST, SAL_OPF_FOLD_ONLY, NULL},
    {"ConstantOfShape", SAL_OP_CONSTANTOFSHAPE, SAL_OPF_FOLD_ONLY, NULL},
    /* issue 13 */
    {"Pow", SAL_OP_POW, 0, sal_infer_pow},
    {"Sqrt", SAL_OP_SQRT, 0, sal_infer_sqrt},
    {"Erf", SAL_OP_ERF, 0, sal_infer_erf},
    {"Gelu", SAL_OP_GELU, 0, sal_infer_gelu},
    {"Selu", SAL_OP_SELU, 0, sal_infer_selu},
    {"Elu", SAL_OP_ELU, 0, sal_infer_elu},
    {"Softplus", SAL_OP_SOFTPLUS, 0, sal_infer_softplus},
    {"LayerNormalization", SAL_OP_LAYERNORM, 0, sal_infer_layernorm},
    {"ReduceSum", SAL_OP_REDUCESUM, 0, sal_infer_reducesum},
    {"ReduceMax", SAL_OP_REDUCEMAX, 0, sal_infer_reducemax},
    {"GlobalMaxPool", SAL_OP_GLOBALMAXPOOL, 0, sal_infer_globalmaxpool},
    {"ConvTranspose", SAL_OP_CONVTRANSPOSE, 0, sal_infer_convtranspose},
    {"Expand", SAL_OP_EXPAND, 0, sal_infer_expand},
    {"Tile", SAL_OP_TILE, 0, sal_infer_tile},
    {"Where", SAL_OP_WHERE, 0, sal_infer_where},
    {"DepthToSpace", SAL_OP_DEPTHTOSPACE, 0, sal_infer_depthtospace},
    {"SpaceToDepth", SAL_OP_SPACETODEPTH, 0, sal_infer_spacetodepth},
    {"Equal", SAL_OP_EQUAL, SAL_OPF_FOLD_ONLY, NULL},
    {"Less", SAL_OP_LESS, SAL_OPF_FOLD_ONLY, NULL},
    {"Greater", SAL_OP_GREATER, SAL_OPF_FOLD_ONLY, NULL},
    {"Not", SAL_OP_NOT, SAL_OPF_FOLD_ONLY, NULL},
    {"Mod", SAL_OP_MOD, SAL_OPF_FOLD_ONLY, NULL},
    {"Range", SAL_OP_RANGE, SAL_OPF_FOLD_ONLY, NULL},
    {"ScatterND", SAL_OP_SCATTERND, SAL_OPF_FOLD_ONLY, NULL},
    {"GreaterOrEqual", SAL_OP_GREATEROREQUAL, SAL_OPF_FOLD_ONLY, NULL},
    {"LessOrEqual", SAL_OP_LESSOREQUAL, SAL_OPF_FOLD_ONLY, NULL},
    {"And", SAL_OP_AND, SAL_OPF_FOLD_ONLY, NULL},
    {"Or", SAL_OP_OR, SAL_OPF_FOLD_ONLY, NULL},
};

const sal_op_def *sal_op_lookup(const char *onnx_name) {
    for (size_t i = 0; i < sizeof op_table / sizeof op_table[0]; i++)
        if (strcmp(op_table[i].onnx_name, onnx_name) == 0) return &op_table[i];
    return NULL;
}

const sal_op_def *sal_op_def_of(sal_op_kind kind) {
    for (size_t i = 0; i < sizeof op_table / sizeof op_table[0]; i++)
        if (op_table[i].kind == kind) return &op_table[i];
    return NULL;
}

sal_status sal_op_fail(sal_op_ctx *ctx, sal_status st, const char *fmt, ...) {
    char msg[SAL_ERROR_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return sal_fail(ctx->err, st, "node '%s' (%s): %s", ctx->node->name, ctx->node->op_type, msg);
}

sal_status sal_op_put_params(sal_op_ctx *ctx, const void *p, size_t size) {
    void *m = malloc(size);
    if (!m) return sal_op_fail(ctx, SAL_ERR_NOMEM, "out of memory for the op's parameters");
    memcpy(m, p, size);
    ctx->params = m;
    return SAL_OK;
}

sal_status sal_op_float_input(sal_op_ctx *ctx, int i, const char *what, int always) {
    if (!in_shape(ctx, i))
        return sal_op_fail(ctx, SAL_ERR_SHAPE, "input %d (%s) is missing", i, what);
    int t = in_dtype(ctx, i);
    if ((always || !in_const(ctx, i)) && t != 0 && t != SAL_F32)
        return sal_op_fail(ctx, SAL_ERR_UNSUPPORTED, "input %d (%s) has type %s: only float32 is "
                           "supported", i, what, sal_dtype_name(t));
    return SAL_OK;
}

int64_t sal_dims_prod(const int64_t *d, int from, int to) {
    int64_t p = 1;
    for (int i = from; i < to; i++) p *= d[i];
    return p;
}

/* ------------------------------------------------------------------------------------------------ */
/* numpy broadcasting                                                                               */

sal_status sal_broadcast(const sal_shape *a, const sal_shape *b, sal_shape *out,
                         sal_bcast_params *p) {
    int nd = a->ndim > b->ndim ? a->ndim : b->ndim;
    if (nd > SAL_MAX_DIMS) return SAL_ERR_UNSUPPORTED;
    int64_t da[SAL_MAX_DIMS], db[SAL_MAX_DIMS];
    for (int i = 0; i < nd; i++) {
        int ia = i - (nd - a->ndim), ib = i - (nd - b->ndim);
        da[i] = ia >= 0 ? a->d[ia] : 1;
        db[i] = ib >= 0 ? b->d[ib] : 1;
    }
    out->ndim = nd;
    for (int i = 0; i < nd; i++) {
        if (da[i] != db[i] && da[i] != 1 && db[i] != 1) return SAL_ERR_SHAPE;
        out->d[i] = da[i] == 1 ? db[i] : da[i];
    }
    if (p) {
        p->ndim = nd;
        int64_t stra = 1, strb = 1;
        for (int i = nd - 1; i >= 0; i--) {
            p->out[i] = out->d[i];
            p->sa[i] = da[i] == 1 ? 0 : stra;
            p->sb[i] = db[i] == 1 ? 0 : strb;
            stra *= da[i];
            strb *= db[i];
        }
    }
    return SAL_OK;
}
