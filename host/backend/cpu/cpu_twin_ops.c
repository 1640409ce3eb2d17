/* cpu_twin_ops.c — CPU kernels of the ops written only as twin element functions (issue 13's:
 * kernels/twin_math.h and kernels/twin_index.h): every launch of the op's plan
 * (host/backend/twin/plan_*.c), its element function mapped over OpenMP threads. The calls of a
 * launch are independent and each writes only its own elements, so the split over threads does
 * not change any result, and the CPU and CUDA backends run the same body of math. */
#include <omp.h>

#include "../backend.h"
#include "../../ops/op_decls.h"
#include "twin_all.h"

/* A launch goes parallel when the op touches at least this many elements (the larger of its first
 * input and output; per-row and per-output calls differ in cost, the tensors' sizes do not): the
 * same threshold as cpu_elem.c's loops. Small launches stay on one thread: each parallel region
 * costs a barrier, and on a loaded machine a barrier waits for a descheduled thread (a 32x32 ViT
 * explained by RISE took 14.5 s on 2 threads with a threshold of 2048 calls, 0.56 s on 1). */
enum { PAR_MIN_ELEMS = 1 << 15 };

static int64_t op_elems(const sal_op_call *c) {
    int64_t a = c->n_out > 0 && c->out_shape[0] ? sal_shape_numel(c->out_shape[0]) : 0;
    int64_t b = c->n_in > 0 && c->in_shape[0] ? sal_shape_numel(c->in_shape[0]) : 0;
    return a > b ? a : b;
}

static sal_status run_launch(void *ctx, const sal_op_call *c, int backward, const sal_tw_launch *l,
                             const sal_tw_args *a, sal_error *err) {
    (void)ctx; (void)backward;
    sal_tw_host_fn f = sal_twin_host_fn(l->fn);
    if (!f)
        return sal_fail(err, SAL_ERR_INTERNAL, "node '%s': element function %d does not exist",
                        c->node->name, l->fn);
    const int nt = c->threads > 0 ? c->threads : 1;
    const int64_t n = l->count;
    const int par = nt > 1 && n > 1 && op_elems(c) >= PAR_MIN_ELEMS;
#pragma omp parallel for num_threads(nt) if (par) schedule(static)
    for (int64_t i = 0; i < n; i++) f(i, a);
    return SAL_OK;
}

sal_status sal_cpu_twin_fwd(const sal_op_call *c, sal_error *err) {
    return sal_tw_each_launch(c, 0, run_launch, NULL, err);
}

sal_status sal_cpu_twin_bwd(const sal_op_call *c, sal_error *err) {
    if (!c->gout || !c->gin) return SAL_OK;
    return sal_tw_each_launch(c, 1, run_launch, NULL, err);
}
