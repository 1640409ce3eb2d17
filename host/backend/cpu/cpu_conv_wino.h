/* cpu_conv_wino.h — 3x3 stride-1 convolutions on channels-last activations by Winograd's
 * F(2x2, 3x3) (cpu_conv_wino.c): a per-backend cache of transformed kernels, the rule for which
 * convolutions take it, and the forward / backward-data calls (the contracts of
 * cpu_conv_dnnl.h's). */
#ifndef SAL_CPU_CONV_WINO_H
#define SAL_CPU_CONV_WINO_H

#include "../backend.h"

typedef struct sal_wino_cache sal_wino_cache;

sal_status sal_wino_cache_create(sal_wino_cache **out, sal_error *err);
void sal_wino_cache_free(sal_wino_cache *c);   /* NULL-safe */
/* bytes of transformed kernels the cache holds */
size_t sal_wino_cache_weight_bytes(const sal_wino_cache *c);

/* 1 when convolution p may run here: group 1, 3x3, stride 1, dilation 1, pads 0 or 1, at least 16
 * channels in and out, an output plane of at least 7x7, constant weights, channels-last X and Y.
 * The rule reads no batch size: an image's convolutions run the same code in any batch. */
int sal_wino_choose(const sal_conv_params *p);

/* y = conv(x) + bias, with the fused activation; like sal_dnnl_conv_fwd. */
sal_status sal_wino_conv_fwd(sal_wino_cache *c, const sal_op_call *call, sal_error *err);
/* gin[0] += backward-data(gout[0]) (written instead with sal_op_call.gin_set bit 0). */
sal_status sal_wino_conv_bwd_data(sal_wino_cache *c, const sal_op_call *call, sal_error *err);

#endif
