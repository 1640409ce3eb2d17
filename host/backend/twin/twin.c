/* twin.c — the twins' plan dispatch and their host runner (kernels/twin.h): the CUDA backend's
 * element functions executed in plain loops, so the CPU-only build can test the device math. */
#include <string.h>

#include "twin_all.h"

typedef void (*tw_host_fn)(int64_t i, const sal_tw_args *a);

#define SAL_TW_HOSTFN(name) [SAL_TW_##name] = sal_tw_##name,
static const tw_host_fn host_fns[SAL_TW_NFUNCS + 1] = {
    SAL_TW_ELEM_FUNCS(SAL_TW_HOSTFN) SAL_TW_NN_FUNCS(SAL_TW_HOSTFN) SAL_TW_MATH_FUNCS(SAL_TW_HOSTFN)
    SAL_TW_INDEX_FUNCS(SAL_TW_HOSTFN)
};
#undef SAL_TW_HOSTFN

/* The families in turn: -2 from all of them means the op has no twin. */
static int plan_family(const sal_op_call *c, int backward, int k, sal_tw_launch *l, sal_tw_args *a, sal_error *err) {
    int r = sal_tw_plan_elem(c, backward, k, l, a, err);
    if (r == -2) r = sal_tw_plan_nn(c, backward, k, l, a, err);
    if (r == -2) r = sal_tw_plan_math(c, backward, k, l, a, err);
    if (r == -2) r = sal_tw_plan_index(c, backward, k, l, a, err);
    return r;
}

int sal_tw_plan(const sal_op_call *c, int backward, int k, sal_tw_launch *l, sal_tw_args *a,
                sal_error *err) {
    memset(a, 0, sizeof *a);
    memset(l, 0, sizeof *l);
    int r = plan_family(c, backward, k, l, a, err);
    if (r == -2)
        sal_fail(err, SAL_ERR_UNSUPPORTED, "node '%s': op %s has no twin kernels", c->node->name,
                 c->node->op_type);
    if (r == 1 && (l->fn < 0 || l->fn >= SAL_TW_NFUNCS || l->count < 0)) {
        sal_fail(err, SAL_ERR_INTERNAL, "node '%s': bad twin launch %d (fn %d, count %lld)",
                 c->node->name, k, l->fn, (long long)l->count);
        return -1;
    }
    return r;
}

int sal_tw_has_op(int op_kind) {
    sal_node node;
    memset(&node, 0, sizeof node);
    node.op = op_kind;
    node.name = (char *)"probe";
    node.op_type = (char *)"probe";
    sal_op_call c;
    memset(&c, 0, sizeof c);
    c.node = &node;
    /* plans answer -2 from the op kind alone, before looking at the call */
    sal_tw_launch l;
    sal_tw_args a;
    sal_error err = {0};
    return plan_family(&c, -1, 0, &l, &a, &err) != -2;
}

sal_status sal_tw_each_launch(const sal_op_call *c, int backward, sal_tw_runner run, void *ctx,
                              sal_error *err) {
    for (int k = 0;; k++) {
        sal_tw_launch l;
        sal_tw_args a;
        int r = sal_tw_plan(c, backward, k, &l, &a, err);
        if (r == 0) return SAL_OK;
        if (r < 0) return err->status ? err->status : SAL_ERR_UNSUPPORTED;
        if (l.count == 0) continue;
        sal_status st = run(ctx, c, backward, &l, &a, err);
        if (st) return st;
    }
}

static sal_status host_launch(void *ctx, const sal_op_call *c, int backward, const sal_tw_launch *l,
                              const sal_tw_args *a, sal_error *err) {
    (void)ctx; (void)c; (void)backward; (void)err;
    sal_twin_run_one(l->fn, l->count, a);
    return SAL_OK;
}

sal_tw_host_fn sal_twin_host_fn(int fn) {
    return fn >= 0 && fn < SAL_TW_NFUNCS ? host_fns[fn] : NULL;
}

void sal_twin_run_one(int fn, int64_t count, const sal_tw_args *a) {
    tw_host_fn f = host_fns[fn];
    for (int64_t i = 0; i < count; i++) f(i, a);
}

sal_status sal_twin_run(const sal_op_call *c, int backward, sal_error *err) {
    return sal_tw_each_launch(c, backward, host_launch, NULL, err);
}
