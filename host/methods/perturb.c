/* perturb.c — RISE, GradientSHAP and KernelSHAP. (STUB: being written) */
#include "methods.h"

sal_status sal_explain_rise(sal_method_ctx *cx, const float *x, int n, const int *tg, sal_maps *out) {
    (void)cx; (void)x; (void)n; (void)tg; (void)out;
    return SAL_ERR_UNSUPPORTED;
}
sal_status sal_explain_gradshap(sal_method_ctx *cx, const float *x, int n, const int *tg, sal_maps *out) {
    (void)cx; (void)x; (void)n; (void)tg; (void)out;
    return SAL_ERR_UNSUPPORTED;
}
sal_status sal_explain_kernelshap(sal_method_ctx *cx, const float *x, int n, const int *tg, sal_maps *out) {
    (void)cx; (void)x; (void)n; (void)tg; (void)out;
    return SAL_ERR_UNSUPPORTED;
}
