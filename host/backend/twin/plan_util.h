/* plan_util.h — what every launch-plan file of the twin ops (plan_*.c) returns through: a failure
 * naming the node and op (-1), and one launch of element function fn over count elements (1).
 * Contract of the plans: kernels/twin_all.h (sal_tw_plan). */
#ifndef SAL_TWIN_PLAN_UTIL_H
#define SAL_TWIN_PLAN_UTIL_H

#include "twin_all.h"

static inline int fail(const sal_op_call *c, sal_error *err, const char *why) {
    sal_fail(err, SAL_ERR_UNSUPPORTED, "node '%s' (%s): %s", c->node->name, c->node->op_type, why);
    return -1;
}

static inline int launch(sal_tw_launch *l, int fn, int64_t count) {
    l->fn = fn;
    l->count = count;
    return 1;
}

#endif
