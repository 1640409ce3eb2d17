/* layout_pass.h — the engine's layout pass (layout_pass.c): which run-time values of a forward or
 * gradient plan are held channels-last, (N, H, W, C), so that the convolutions between them run
 * on them in place (the CPU's oneDNN kernels under SAL_CONV_IMPL_LAYOUT). The engine's own
 * bookkeeping stays in engine.c: the pass sees the plan through this view. */
#ifndef SAL_LAYOUT_PASS_H
#define SAL_LAYOUT_PASS_H

#include "../backend/backend.h"

typedef struct sal_layout_view {
    const sal_graph *g;
    sal_backend *b;                  /* asked, per Conv, through b->ops->conv_nhwc */
    int n_steps;
    const int *step_node;            /* (n_steps) the graph node each step runs */
    void *const *step_params;        /* (n_steps) its params (NULL: none); a Conv's nhwc_x/nhwc_y are
                                        set here */
    const int *step_alias;           /* (n_steps) 1: output 0 is input 0's memory (no kernel) */
    const sal_shape *const *shape;   /* (n_values) each run-time value's shape, NULL for others */
    const char *pinned;              /* (n_values) 1: must stay (N, C, H, W) (a graph input or
                                        output, a captured value: read from outside the engine) */
} sal_layout_view;

/* Sets nhwc[v] (n_values, zeroed by the caller) to 1 for each value the plan should hold
 * channels-last, and nhwc_x / nhwc_y in the params of the Convs that read or write them. Returns
 * how many values it chose, or -1 when memory ran out (nothing is then changed). */
int sal_layout_pass(const sal_layout_view *v, char *nhwc);

#endif
