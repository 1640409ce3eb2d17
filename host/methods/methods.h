/* methods.h — internal entry points of the attribution methods (host/methods). */
#ifndef SAL_METHODS_H
#define SAL_METHODS_H

#include "model/graph.h"

/* Quadrature points and weights of an Integrated Gradients rule on [0,1] (Captum's rules). */
sal_status sal_ig_rule_points(sal_ig_rule rule, int n, double *alpha, double *weight);

sal_status sal_explain_impl(sal_session *s, const sal_model *m, const sal_explain_opts *o,
                            const float *x, int n, int h, int w, const int *targets, sal_maps *out,
                            sal_error *err);

#endif
