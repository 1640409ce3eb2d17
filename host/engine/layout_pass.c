/* layout_pass.c — the engine's layout pass: which activations of a forward or gradient plan are
 * held channels-last, (N, H, W, C), between convolutions the backend runs on channels-last data
 * in place (the CPU's oneDNN jit kernels: no reorder in and out around each call).
 *
 * 1. Values are grouped (union-find) across layout-agnostic steps, whose kernels treat their
 *    operands as flat arrays of one shape: Relu and Clip (fused into the Conv before them or not),
 *    Add / Sub / Mul whose run-time inputs all have the output's shape (no broadcast), Identity,
 *    Dropout and float-to-float Cast (aliases of an unchanged shape). Every run-time input and
 *    output of such a step is in one group: they must share a layout.
 * 2. A group may be channels-last only if every member is a run-time rank-4 value that is not
 *    pinned (graph input or output, captured), and every step that reads or writes a member is an
 *    agnostic step (hence of the group) or a Conv the backend accepts (ops->conv_nhwc) touching it
 *    through X (input 0) or Y (output 0).
 * 3. Cost rule: a group goes channels-last only if at least one Conv touching it has its other
 *    side in a channels-last candidate too (an "interior" Conv, whose both reorders go). A group
 *    touched only by boundary Convs would trade our kernels for oneDNN's plus a reorder: that is
 *    EfficientNet-Lite0's residual streams, bounded by depthwise convolutions (measured: README,
 *    "CPU math library"). Dropping a group can leave a neighbour without an interior Conv, so the
 *    rule runs to a fixed point.
 *
 * The gradient of a value has its value's layout (the agnostic steps' backward passes are
 * element-wise too; a Conv's backward-data reads dY and writes dX in Y's and X's layouts). */
#include "layout_pass.h"

#include <stdlib.h>
#include <string.h>

static int find(int *parent, int v) {
    while (parent[v] != v) {
        parent[v] = parent[parent[v]];
        v = parent[v];
    }
    return v;
}

static void unite(int *parent, int a, int b) {
    a = find(parent, a);
    b = find(parent, b);
    if (a != b) parent[a < b ? b : a] = a < b ? a : b;
}

enum { K_FOREIGN = 0, K_AGNOSTIC = 1, K_CONV = 2 };

static int rt(const sal_layout_view *v, int x) { return x >= 0 && v->shape[x] != NULL; }

/* K_AGNOSTIC, K_CONV (a Conv the backend takes channels-last) or K_FOREIGN. */
static int kind_of(const sal_layout_view *v, int s) {
    const sal_node *n = &v->g->nodes[v->step_node[s]];
    if (n->n_out < 1 || !rt(v, n->out[0])) return K_FOREIGN;
    for (int j = 1; j < n->n_out; j++)
        if (n->out[j] >= 0) return K_FOREIGN;
    const sal_shape *ys = v->shape[n->out[0]];
    switch (n->op) {
    case SAL_OP_CONV: {
        const sal_conv_params *p = v->step_params[s];
        if (v->step_alias[s] || !p || !rt(v, n->in[0]) || v->shape[n->in[0]]->ndim != 4 || ys->ndim != 4)
            return K_FOREIGN;
        for (int i = 1; i < n->n_in; i++)
            if (rt(v, n->in[i])) return K_FOREIGN;   /* run-time weights or bias */
        return v->b->ops->conv_nhwc && v->b->ops->conv_nhwc(v->b, p) ? K_CONV : K_FOREIGN;
    }
    case SAL_OP_ADD:
    case SAL_OP_SUB:
    case SAL_OP_MUL:
        if (v->step_alias[s]) return K_FOREIGN;
        for (int i = 0; i < n->n_in; i++)   /* a constant operand has its own (N, C, H, W) layout */
            if (!rt(v, n->in[i]) || !sal_shape_eq(v->shape[n->in[i]], ys)) return K_FOREIGN;
        return K_AGNOSTIC;
    case SAL_OP_RELU:
    case SAL_OP_CLIP:   /* its min / max inputs are constants */
    case SAL_OP_IDENTITY:
    case SAL_OP_DROPOUT:
    case SAL_OP_CAST:   /* only float-to-float reaches a plan's steps, as an alias */
        if (n->n_in < 1 || !rt(v, n->in[0]) || !sal_shape_eq(v->shape[n->in[0]], ys)) return K_FOREIGN;
        for (int i = 1; i < n->n_in; i++)
            if (rt(v, n->in[i])) return K_FOREIGN;
        if (n->op == SAL_OP_CAST && !v->step_alias[s]) return K_FOREIGN;
        return K_AGNOSTIC;
    default:
        return K_FOREIGN;
    }
}

int sal_layout_pass(const sal_layout_view *v, char *nhwc) {
    const sal_graph *g = v->g;
    const int nv = g->n_values;
    int *parent = malloc(sizeof(int) * (size_t)(nv + 1));
    char *kind = malloc((size_t)v->n_steps + 1);
    char *ok = malloc((size_t)nv + 1);   /* by group root: still a candidate */
    if (!parent || !kind || !ok) {
        free(parent); free(kind); free(ok);
        return -1;
    }
    for (int x = 0; x < nv; x++) parent[x] = x;
    for (int s = 0; s < v->n_steps; s++) {
        kind[s] = (char)kind_of(v, s);
        if (kind[s] != K_AGNOSTIC) continue;
        const sal_node *n = &g->nodes[v->step_node[s]];
        for (int i = 0; i < n->n_in; i++)
            if (rt(v, n->in[i])) unite(parent, n->in[i], n->out[0]);
    }
    /* structural test, by group */
    for (int x = 0; x < nv; x++) ok[x] = 1;
    for (int x = 0; x < nv; x++)
        if (!rt(v, x) || v->shape[x]->ndim != 4 || v->pinned[x]) ok[find(parent, x)] = 0;
    for (int s = 0; s < v->n_steps; s++) {
        const sal_node *n = &g->nodes[v->step_node[s]];
        for (int i = 0; i < n->n_in; i++) {
            if (!rt(v, n->in[i])) continue;
            if (kind[s] == K_FOREIGN || (kind[s] == K_CONV && i > 0)) ok[find(parent, n->in[i])] = 0;
        }
        for (int j = 0; j < n->n_out; j++)
            if (rt(v, n->out[j]) && kind[s] == K_FOREIGN) ok[find(parent, n->out[j])] = 0;
    }
    /* cost rule, to a fixed point: keep a group only with an interior Conv touching it */
    char *interior = calloc((size_t)nv + 1, 1);
    if (!interior) {
        free(parent); free(kind); free(ok);
        return -1;
    }
    for (int changed = 1; changed;) {
        changed = 0;
        memset(interior, 0, (size_t)nv);
        for (int s = 0; s < v->n_steps; s++) {
            if (kind[s] != K_CONV) continue;
            const sal_node *n = &g->nodes[v->step_node[s]];
            int rx = find(parent, n->in[0]), ry = find(parent, n->out[0]);
            if (ok[rx] && ok[ry]) interior[rx] = interior[ry] = 1;
        }
        for (int x = 0; x < nv; x++)
            if (rt(v, x) && parent[x] == x && ok[x] && !interior[x]) {
                ok[x] = 0;
                changed = 1;
            }
    }
    int count = 0;
    for (int x = 0; x < nv; x++) {
        nhwc[x] = (char)(rt(v, x) && ok[find(parent, x)]);
        count += nhwc[x];
    }
    for (int s = 0; s < v->n_steps; s++) {
        if (kind[s] != K_CONV) continue;
        const sal_node *n = &g->nodes[v->step_node[s]];
        sal_conv_params *p = v->step_params[s];
        p->nhwc_x = nhwc[n->in[0]];
        p->nhwc_y = nhwc[n->out[0]];
    }
    free(interior);
    free(parent);
    free(kind);
    free(ok);
    return count;
}
