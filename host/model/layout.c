/* layout.c — the image input of a loaded model: its layout (channels first, or channels last as
 * TF/Keras exports through tf2onnx have it) and the largest batch its graph runs (a batch fixed
 * at 1 by the input's declaration or by a Reshape that hard-codes it).
 *
 * A channels-last input (N,H,W,C) is adapted once, at load: a new graph input (N,C,H,W) named
 * "<input>.nchw" feeds a Transpose (perm 0,2,3,1) that produces the file's input value, so the
 * engine, the methods and the maps all work in (C,H,W) as for any other model, and gradients flow
 * back through the Transpose to the (N,C,H,W) input. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph.h"
#include "../ops/ops.h"

static int is_channels(int64_t d) { return d == 1 || d == 3; }

static const char *dims_str(const sal_shape *s, char *buf, size_t len) {
    /* dynamic dimensions print as '?' */
    size_t k = (size_t)snprintf(buf, len, "(");
    for (int i = 0; i < s->ndim && k < len; i++) {
        if (s->d[i] > 0) k += (size_t)snprintf(buf + k, len - k, "%s%lld", i ? "," : "", (long long)s->d[i]);
        else k += (size_t)snprintf(buf + k, len - k, "%s?", i ? "," : "");
    }
    if (k < len) snprintf(buf + k, len - k, ")");
    return buf;
}

/* Which layout the input declared `decl` has: the model's metadata salient.layout when present,
 * else channels last when the last dimension is 1 or 3 and the second is not (an image's channels
 * are 1 or 3; ONNX's own convention wins a tie). */
static sal_status choose_layout(const sal_graph *g, const sal_value *in, int *layout, sal_error *err) {
    *layout = SAL_LAYOUT_NCHW;
    for (int i = 0; i < g->n_meta; i++) {
        if (strcmp(g->meta_keys[i], "salient.layout") != 0) continue;
        const char *v = g->meta_values[i];
        if (!strcmp(v, "NCHW") || !strcmp(v, "nchw")) *layout = SAL_LAYOUT_NCHW;
        else if (!strcmp(v, "NHWC") || !strcmp(v, "nhwc")) *layout = SAL_LAYOUT_NHWC;
        else
            return sal_fail(err, SAL_ERR_PARSE, "%s: metadata salient.layout is '%.64s'; expected NCHW or "
                            "NHWC", g->path, v);
        return SAL_OK;
    }
    const sal_shape *d = &in->decl;
    if (d->ndim == 4 && is_channels(d->d[3]) && !is_channels(d->d[1])) *layout = SAL_LAYOUT_NHWC;
    return SAL_OK;
}

/* The new (N,C,H,W) graph input in front of a channels-last one. */
static sal_status adapt_nhwc(sal_graph *g, sal_error *err) {
    const int vin = g->inputs[0];
    char name[512];
    snprintf(name, sizeof name, "%s.nchw", g->values[vin].name);
    if (sal_graph_find_value(g, name) >= 0)
        return sal_fail(err, SAL_ERR_UNSUPPORTED, "%s: input '%s' is channels-last (NHWC) but the name "
                        "'%s' that salient gives its channels-first twin is taken", g->path,
                        g->values[vin].name, name);
    const int vnew = sal_graph_value(g, name);   /* may move g->values */
    if (vnew < 0) return sal_fail(err, SAL_ERR_NOMEM, "%s: out of memory", g->path);
    sal_value *old = &g->values[vin], *nv = &g->values[vnew];
    const sal_shape *d = &old->decl;
    nv->is_input = 1;
    nv->elem_type = old->elem_type;
    nv->decl.ndim = 4;
    nv->decl.d[0] = d->d[0];
    nv->decl.d[1] = d->d[3];
    nv->decl.d[2] = d->d[1];
    nv->decl.d[3] = d->d[2];
    old->is_input = 0;   /* its decl stays: the file's declaration, for messages and `info` */
    g->inputs[0] = vnew;
    const char *ins[1] = {name}, *outs[1] = {old->name};
    int ni = sal_graph_add_node(g, "Transpose", "salient.nhwc_input", 1, ins, 1, outs);
    if (ni < 0) return sal_fail(err, SAL_ERR_NOMEM, "%s: out of memory", g->path);
    static const int64_t perm[4] = {0, 2, 3, 1};
    if (sal_node_attr_ints(&g->nodes[ni], "perm", 4, perm))
        return sal_fail(err, SAL_ERR_NOMEM, "%s: out of memory", g->path);
    const sal_op_def *def = sal_op_lookup("Transpose");
    if (!def) return sal_fail(err, SAL_ERR_INTERNAL, "Transpose is not in the op registry");
    g->nodes[ni].op = (int)def->kind;
    /* first in execution order: it reads only the graph input */
    sal_node t = g->nodes[ni];
    memmove(&g->nodes[1], &g->nodes[0], sizeof(sal_node) * (size_t)ni);
    g->nodes[0] = t;
    for (int v = 0; v < g->n_values; v++) g->values[v].producer = -1;
    for (int i = 0; i < g->n_nodes; i++)
        for (int j = 0; j < g->nodes[i].n_out; j++)
            if (g->nodes[i].out[j] >= 0) g->values[g->nodes[i].out[j]].producer = i;
    return SAL_OK;
}

/* A batch fixed at 1: the input declares it, or a Reshape of an activation (a value computed from
 * the input's data, not from its Shape) to a constant shape whose first dimension is 1 (torch's
 * x.view(1, -1), exported as a constant even with a dynamic batch). */
static void find_batch_limit(sal_graph *g) {
    const sal_value *in = &g->values[g->file_input];
    char buf[160];
    if (in->decl.ndim >= 1 && in->decl.d[0] == 1) {
        g->max_batch = 1;
        snprintf(g->batch_why, sizeof g->batch_why, "input '%.100s' declares a batch of 1 %s",
                 in->name, dims_str(&in->decl, buf, sizeof buf));
        return;
    }
    char *act = calloc((size_t)g->n_values + 1, 1);
    if (!act) return;   /* out of memory: no limit found (a batch > 1 then fails at plan, as before) */
    act[g->inputs[0]] = 1;
    for (int i = 0; i < g->n_nodes && !g->max_batch; i++) {
        const sal_node *n = &g->nodes[i];
        int any = 0;
        for (int k = 0; k < n->n_in; k++) any |= n->in[k] >= 0 && act[n->in[k]];
        if (!any || n->op == SAL_OP_SHAPE) continue;
        for (int j = 0; j < n->n_out; j++)
            if (n->out[j] >= 0) act[n->out[j]] = 1;
        if (n->op != SAL_OP_RESHAPE || n->n_in < 2 || n->in[0] < 0 || !act[n->in[0]] || n->in[1] < 0) continue;
        const sal_tensor *shape = g->values[n->in[1]].konst;
        if (!shape || sal_shape_numel(&shape->shape) < 1 || sal_tensor_i64(shape, 0) != 1) continue;
        sal_shape s = {0};
        s.ndim = (int)(sal_shape_numel(&shape->shape) < SAL_MAX_DIMS ? sal_shape_numel(&shape->shape) : SAL_MAX_DIMS);
        for (int k = 0; k < s.ndim; k++) s.d[k] = sal_tensor_i64(shape, k);
        g->max_batch = 1;
        snprintf(g->batch_why, sizeof g->batch_why, "node '%.100s' (Reshape) hard-codes a batch of 1 in "
                 "its target shape %s", n->name, sal_shape_str(&s, buf, sizeof buf));
    }
    free(act);
}

sal_status sal_graph_adapt_image_input(sal_graph *g, sal_error *err) {
    g->layout = SAL_LAYOUT_NCHW;
    g->max_batch = 0;
    g->batch_why[0] = 0;
    g->file_input = g->n_inputs > 0 ? g->inputs[0] : -1;
    if (g->n_inputs != 1) return SAL_OK;   /* not an image model: sessions say so */
    const sal_value *in = &g->values[g->inputs[0]];
    if (in->decl.ndim != 4) return SAL_OK;
    int layout;
    sal_status st = choose_layout(g, in, &layout, err);
    if (st) return st;
    if (layout == SAL_LAYOUT_NHWC && (st = adapt_nhwc(g, err))) return st;
    g->layout = layout;
    find_batch_limit(g);
    return SAL_OK;
}
