/* twin_all.h — the enum of every twin element function (kernels/twin.h), and the plans. */
#ifndef SAL_TWIN_ALL_H
#define SAL_TWIN_ALL_H

#include "twin.h"
#include "twin_elem.h"
#include "twin_nn.h"
#include "twin_math.h"
#include "twin_index.h"

#define SAL_TW_ENUM(name) SAL_TW_##name,
enum { SAL_TW_ELEM_FUNCS(SAL_TW_ENUM) SAL_TW_NN_FUNCS(SAL_TW_ENUM) SAL_TW_MATH_FUNCS(SAL_TW_ENUM)
       SAL_TW_INDEX_FUNCS(SAL_TW_ENUM) SAL_TW_NFUNCS };
#undef SAL_TW_ENUM

#ifdef __cplusplus
extern "C" {
#endif

/* Launch k (0, 1, ...) of node c->node's forward (backward = 0) or backward (1) pass: fills *l and
 * *a and returns 1; returns 0 when there is no launch k (the pass is complete), -1 when the call
 * is not supported (err says why, naming the node), -2 when the op has no twin at all (conv, gemm,
 * matmul: cuDNN/cuBLAS). Plans are host code (host/backend/twin/plan_*.c): deterministic in k, so
 * a runner calls plan(k = 0, 1, ...) until it returns 0. A backward plan makes no launch for an
 * input whose gin is NULL, and none at all (returns 0 at k = 0) when nothing is needed.
 * A plan first switches on c->node->op and returns -2 for ops outside its family before reading
 * anything else; backward == -1 is a probe (sal_tw_has_op): return 0 for the family's ops
 * without reading the call. */
int sal_tw_plan(const sal_op_call *c, int backward, int k, sal_tw_launch *l, sal_tw_args *a,
                sal_error *err);
int sal_tw_plan_elem(const sal_op_call *c, int backward, int k, sal_tw_launch *l, sal_tw_args *a,
                     sal_error *err);   /* twin_elem.h's ops; -2 for others */
int sal_tw_plan_nn(const sal_op_call *c, int backward, int k, sal_tw_launch *l, sal_tw_args *a,
                   sal_error *err);     /* twin_nn.h's ops; -2 for others */
int sal_tw_plan_math(const sal_op_call *c, int backward, int k, sal_tw_launch *l, sal_tw_args *a,
                     sal_error *err);   /* twin_math.h's ops; -2 for others */
int sal_tw_plan_index(const sal_op_call *c, int backward, int k, sal_tw_launch *l, sal_tw_args *a,
                      sal_error *err);  /* twin_index.h's ops; -2 for others */
/* Does op kind have a twin? */
int sal_tw_has_op(int op_kind);

/* Every launch of the pass in order, handed to run (the host loop below, or the CUDA launcher);
 * stops at the first failure. */
typedef sal_status (*sal_tw_runner)(void *ctx, const sal_op_call *c, int backward, const sal_tw_launch *l,
                                    const sal_tw_args *a, sal_error *err);
sal_status sal_tw_each_launch(const sal_op_call *c, int backward, sal_tw_runner run, void *ctx,
                              sal_error *err);

/* The host runner: every launch of the pass, each a plain loop over its elements. */
sal_status sal_twin_run(const sal_op_call *c, int backward, sal_error *err);
/* One launch on the host: fn(i, a) for i in [0, count). */
void sal_twin_run_one(int fn, int64_t count, const sal_tw_args *a);
/* Element function fn's host body (NULL when fn is out of range): the CPU backend's kernels of
 * the ops written only as twins (backend/cpu/cpu_twin_ops.c) map it over OpenMP threads. */
typedef void (*sal_tw_host_fn)(int64_t i, const sal_tw_args *a);
sal_tw_host_fn sal_twin_host_fn(int fn);

/* The arguments of a zero Pad of (n, c, h, w) by (pt, pl) before and (pb, pr) after the spatial
 * dims (the CUDA backend's padded copy for convolutions with asymmetric pads): forward copies x
 * into y (n, c, h + pt + pb, w + pl + pr), count y's size; backward adds gy's interior into gx,
 * count x's size. Set in[0]/out[0] (forward) or gout[0]/gin[0] (backward) after. */
void sal_tw_pad_nchw_args(sal_tw_args *a, int64_t n, int64_t c, int64_t h, int64_t w, int64_t pt, int64_t pl,
                          int64_t pb, int64_t pr);

#ifdef __cplusplus
}
#endif

#endif
