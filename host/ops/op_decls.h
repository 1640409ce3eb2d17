/* op_decls.h — the per-op functions behind ops.h's registry and the CPU backend's dispatch.
 * infer: host/ops/infer_*.c; CPU kernels: host/backend/cpu/cpu_*.c. */
#ifndef SAL_OP_DECLS_H
#define SAL_OP_DECLS_H

#include "ops.h"

#define SAL_OP_LIST(X)                                                                            \
    X(conv) X(batchnorm) X(maxpool) X(avgpool) X(globalavgpool) X(gemm) X(matmul) X(lrn)          \
    X(relu) X(leakyrelu) X(clip) X(sigmoid) X(hardsigmoid) X(hardswish) X(tanh)                   \
    X(add) X(sub) X(mul) X(div) X(reducemean) X(softmax) X(concat) X(transpose) X(pad)

#define SAL_ALIAS_OP_LIST(X) X(flatten) X(reshape) X(squeeze) X(unsqueeze) X(dropout) X(identity)

#define SAL_DECL_INFER(op) sal_status sal_infer_##op(sal_op_ctx *ctx);
#define SAL_DECL_CPU(op)                                                                          \
    sal_status sal_cpu_##op##_fwd(const sal_op_call *c, sal_error *err);                          \
    sal_status sal_cpu_##op##_bwd(const sal_op_call *c, sal_error *err);

SAL_OP_LIST(SAL_DECL_INFER)
SAL_ALIAS_OP_LIST(SAL_DECL_INFER)
SAL_OP_LIST(SAL_DECL_CPU)

/* Issue 13's ops: infer in host/ops/infer_math.c and infer_index.c; on the CPU their kernels are
 * the twin element functions in OpenMP loops (host/backend/cpu/cpu_twin_ops.c). */
#define SAL_TWIN_OP_LIST(X)                                                                       \
    X(pow) X(sqrt) X(erf) X(gelu) X(selu) X(elu) X(softplus) X(layernorm) X(reducesum)           \
    X(reducemax) X(globalmaxpool) X(slice) X(gather) X(expand) X(tile) X(where) X(depthtospace)    \
    X(spacetodepth) X(convtranspose)
SAL_TWIN_OP_LIST(SAL_DECL_INFER)
sal_status sal_cpu_twin_fwd(const sal_op_call *c, sal_error *err);
sal_status sal_cpu_twin_bwd(const sal_op_call *c, sal_error *err);

/* Helpers for infer functions (registry.c). Fail naming the node and op: */
sal_status sal_op_fail(sal_op_ctx *ctx, sal_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* A malloc'ed copy of the op's parameters into ctx->params. */
sal_status sal_op_put_params(sal_op_ctx *ctx, const void *p, size_t size);
/* Input i (named `what` in messages) is present and, when a run-time value or whenever `always`,
 * float32. */
sal_status sal_op_float_input(sal_op_ctx *ctx, int i, const char *what, int always);
/* d[from] * ... * d[to - 1] (1 when from >= to). */
int64_t sal_dims_prod(const int64_t *d, int from, int to);

#endif
