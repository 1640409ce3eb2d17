/* cpu_conv_dnnl.h — convolutions through oneDNN's primitives (cpu_conv_dnnl.c): a per-backend
 * cache of primitives and reordered weights, the per-node choice of implementation, and the
 * forward / backward-data calls. */
#ifndef SAL_CPU_CONV_DNNL_H
#define SAL_CPU_CONV_DNNL_H

#include "../backend.h"

/* Which convolution implementation the CPU backend uses (sal_backend_cpu_set_conv_impl):
 * AUTO = chosen per node by shape (sal_dnnl_conv_choose), GEMM = always cpu_nn.c's kernels
 * (im2col + sgemm, 1x1 GEMM, depthwise), DNNL = oneDNN's primitive wherever it applies. */
enum { SAL_CONV_IMPL_AUTO = 0, SAL_CONV_IMPL_GEMM = 1, SAL_CONV_IMPL_DNNL = 2, SAL_CONV_IMPL_LAYOUT = 3 };
/* LAYOUT = AUTO's per-node rule, plus the engine's layout pass (engine/layout_pass.c): in forward
 * and gradient plans, activations between convolutions that oneDNN takes (sal_dnnl_conv_nhwc_ok)
 * are held channels-last, so those convolutions run on them with no reorder. */

typedef struct sal_dnnl_conv_cache sal_dnnl_conv_cache;

sal_status sal_dnnl_conv_cache_create(sal_dnnl_conv_cache **out, sal_error *err);
void sal_dnnl_conv_cache_free(sal_dnnl_conv_cache *c);   /* NULL-safe */
/* bytes of reordered weights the cache holds */
size_t sal_dnnl_conv_cache_weight_bytes(const sal_dnnl_conv_cache *c);

/* 1 when convolution p should run through oneDNN under mode (SAL_CONV_IMPL_*). Only
 * convolutions whose weights and bias are constants (p->const_wb) may: the cache keeps their
 * reordered copy. */
int sal_dnnl_conv_choose(const sal_conv_params *p, int mode);
/* 1 when convolution p may have channels-last activations (p->nhwc_x / nhwc_y) under mode:
 * LAYOUT only, group-1 2-D convolutions with constant weights. */
int sal_dnnl_conv_nhwc_ok(const sal_conv_params *p, int mode);

/* y = conv(x) + bias, with the fused activation (call->params->act); like sal_cpu_conv_fwd. */
sal_status sal_dnnl_conv_fwd(sal_dnnl_conv_cache *c, const sal_op_call *call, sal_error *err);
/* gin[0] += backward-data(gout[0]); weight and bias gradients are not computed (constants). */
sal_status sal_dnnl_conv_bwd_data(sal_dnnl_conv_cache *c, const sal_op_call *call, sal_error *err);

#endif
