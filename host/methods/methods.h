/* methods.h — internal entry points of the attribution methods (host/methods). */
#ifndef SAL_METHODS_H
#define SAL_METHODS_H

#include "model/graph.h"

/* Quadrature points and weights of an Integrated Gradients rule on [0,1] (Captum's rules). */
sal_status sal_ig_rule_points(sal_ig_rule rule, int n, double *alpha, double *weight);

/* What every method needs: the session, options, input geometry, internal batch size. */
typedef struct sal_method_ctx {
    sal_session *s;
    const sal_explain_opts *o;
    int c, h, w, k;      /* input channels and size, number of classes */
    int64_t per;         /* c*h*w */
    int batch;           /* internal batch */
} sal_method_ctx;

/* Scores (logit, or probability with explain_prob) of targets tg for nb images xb (nb,C,H,W), and
 * their input gradients into grad (nb,C,H,W) unless grad is NULL (forward only). */
sal_status sal_method_pass(sal_method_ctx *cx, const float *xb, int nb, const int *tg, int guided,
                           float *grad, float *scores);
/* The baseline o->baseline (zero, black, blur, uniform from the seed, user) of image `image`,
 * x (C,H,W), into b (C,H,W). */
sal_status sal_method_baseline(sal_method_ctx *cx, const float *x, int image, float *b);
/* Separable box blur of radius r of x (c,h,w) into out. */
void sal_box_blur(const float *x, int c, int h, int w, int r, float *out);

/* Perturbation and Shapley methods (host/methods/perturb.c): fill out->attr (n,C,H,W) and
 * out->scores; out->attr is allocated and zeroed by the caller. */
sal_status sal_explain_rise(sal_method_ctx *cx, const float *x, int n, const int *tg, sal_maps *out);
sal_status sal_explain_gradshap(sal_method_ctx *cx, const float *x, int n, const int *tg, sal_maps *out);
sal_status sal_explain_kernelshap(sal_method_ctx *cx, const float *x, int n, const int *tg, sal_maps *out);

/* KernelSHAP's superpixels: a SLIC-like k-means of x (C,H,W) into about K labels (H,W); *m
 * receives the number of superpixels. */
sal_status sal_kshap_superpixels(const float *x, int C, int H, int W, int K, int *labels, int *m);

sal_status sal_explain_impl(sal_session *s, const sal_model *m, const sal_explain_opts *o,
                            const float *x, int n, int h, int w, const int *targets, sal_maps *out,
                            sal_error *err);

#endif
