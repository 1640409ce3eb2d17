/* cam_layer.c — where the CAM methods read and how that layer's output maps to a grid: (N,C,h,w)
 * feature maps, channels-last (N,h,w,C) ones (Swin's stage outputs, ConvNeXt's permuted
 * LayerNorms), and a transformer's (N,T,D) tokens (a class token first or not); the default layer
 * rule; the attention layers (Softmax outputs) of attention rollout and Chefer's relevance, found
 * by pattern. Library code: errors name the layer and say what would fit. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"
#include "methods.h"

/* ------------------------------------------------------------------------------------------------ */
/* Layouts                                                                                          */

/* An h x w plane has the input's proportions (within a factor 1.5: strided convolutions round). */
static int aspect_ok(int64_t h, int64_t w, int in_h, int in_w) {
    if (h < 2 || w < 2) return 0;
    double r = ((double)h / (double)w) / ((double)in_h / (double)in_w);
    return r > 1 / 1.5 && r < 1.5;
}

/* The grid of T tokens on an in_h x in_w input: T - 1 (a class token first) or T patches, each
 * an equal square patch of the input (ViT's patch embedding), else a square number of them on a
 * square input. 0 when none fits. */
int sal_token_grid(int64_t T, int in_h, int in_w, int *gh, int *gw, int *skip) {
    for (int sk = 1; sk >= 0; sk--) {
        int64_t t = T - sk;
        for (int64_t a = 2; t >= 4 && a <= t / 2; a++) {
            if (t % a) continue;
            int64_t b = t / a;
            if (b < 2 || in_h % a || in_w % b || in_h / a != in_w / b) continue;
            *gh = (int)a, *gw = (int)b, *skip = sk;
            return 1;
        }
    }
    for (int sk = 1; in_h == in_w && sk >= 0; sk--) {
        int64_t t = T - sk, g = (int64_t)llround(sqrt((double)(t > 0 ? t : 0)));
        if (g >= 2 && g * g == t) {
            *gh = *gw = (int)g, *skip = sk;
            return 1;
        }
    }
    return 0;
}

/* A session call's failure, its message passed on to err (which may be the session's own). */
static sal_status pass_on(sal_session *s, sal_status st, sal_error *err) {
    if (err && err != sal_session_err(s)) sal_fail(err, st, "%s", sal_session_error(s));
    return st;
}

static const char *shape_str(int nd, const int64_t *d, char *buf, size_t len) {
    sal_shape s = {nd, {0}};
    for (int i = 0; i < nd && i < SAL_MAX_DIMS; i++) s.d[i] = d[i];
    return sal_shape_str(&s, buf, len);
}

/* How a layer output of shape d (batch 1) maps to a grid; th x tw (0: from the shape) is the
 * caller's --tokens. SAL_ERR_SHAPE with a message naming the layer when no grid fits. */
static sal_status classify(const char *name, int nd, const int64_t *d, int in_h, int in_w, int th, int tw,
                           sal_cam_layer *out, sal_error *err) {
    char sh[96];
    shape_str(nd, d, sh, sizeof sh);
    out->skip = 0;
    if (nd == 4) {
        int nchw = d[2] > 1 && d[3] > 1, nhwc = d[1] > 1 && d[2] > 1;
        if (th > 0) {
            nchw = d[2] == th && d[3] == tw;
            nhwc = !nchw && d[1] == th && d[2] == tw;
            if (!nchw && !nhwc)
                return sal_fail(err, SAL_ERR_SHAPE, "layer '%s': its output %s has no %dx%d grid (--tokens %dx%d): "
                                "neither (N,C,%d,%d) nor (N,%d,%d,C)", name, sh, th, tw, th, tw, th, tw, th, tw);
        } else if (nchw && !aspect_ok(d[2], d[3], in_h, in_w) && nhwc && aspect_ok(d[1], d[2], in_h, in_w)) {
            nchw = 0;   /* (N,h,w,C): only that reading has the input's proportions */
        } else if (!nchw && !(nhwc && aspect_ok(d[1], d[2], in_h, in_w))) {
            return sal_fail(err, SAL_ERR_SHAPE, "layer '%s': its output %s has a spatial side of 1: its CAM would "
                            "be a stripe, not a map; choose a layer whose output has both sides above 1 (see "
                            "`salient info`)", name, sh);
        }
        out->layout = nchw ? SAL_LAYOUT_NCHW : SAL_LAYOUT_NHWC;
        out->channels = (int)(nchw ? d[1] : d[3]);
        out->h = (int)(nchw ? d[2] : d[1]);
        out->w = (int)(nchw ? d[3] : d[2]);
        return SAL_OK;
    }
    if (nd == 3) {
        int gh = th, gw = tw, skip = 0;
        if (th > 0) {
            if (d[1] == (int64_t)th * tw + 1) skip = 1;
            else if (d[1] != (int64_t)th * tw)
                return sal_fail(err, SAL_ERR_SHAPE, "layer '%s': its output %s has %lld tokens; --tokens %dx%d needs "
                                "%d (a grid) or %d (a class token and the grid)", name, sh, (long long)d[1], th, tw,
                                th * tw, th * tw + 1);
        } else if (!sal_token_grid(d[1], in_h, in_w, &gh, &gw, &skip)) {
            return sal_fail(err, SAL_ERR_SHAPE, "layer '%s': its output %s, read as (N, tokens, channels), has %lld "
                            "tokens: no grid of equal patches of the %dx%d input has %lld or %lld; give the grid "
                            "with --tokens HxW", name, sh, (long long)d[1], in_h, in_w, (long long)d[1],
                            (long long)d[1] - 1);
        }
        out->layout = SAL_LAYOUT_TOKENS;
        out->channels = (int)d[2];
        out->h = gh;
        out->w = gw;
        out->skip = skip;
        return SAL_OK;
    }
    return sal_fail(err, SAL_ERR_SHAPE, "layer '%s': its output %s has %d dimensions; CAM methods need a "
                    "(N,C,H,W) or (N,H,W,C) feature map or (N,tokens,channels) tokens (see `salient info`)",
                    name, sh, nd);
}

/* ------------------------------------------------------------------------------------------------ */
/* Attention layers                                                                                 */

/* Whether node i is an attention's Softmax under the current plan (batch 1): over the last axis
 * of a (1, heads, T, T) or (heads, T, T) run-time value, T > 1; *heads receives the head count. */
static int is_attention(sal_session *s, const sal_graph *g, int i, int *heads, int *T) {
    const sal_node *n = &g->nodes[i];
    if (n->op != SAL_OP_SOFTMAX || n->n_out < 1 || n->out[0] < 0) return 0;
    if (sal_engine_konst(sal_session_engine(s), n->out[0])) return 0;
    int nd;
    int64_t d[SAL_MAX_DIMS];
    if (sal_session_layer_shape(s, i, &nd, d) || (nd != 3 && nd != 4)) return 0;
    int64_t axis = sal_attr_int(n, "axis", -1);
    if (axis != -1 && axis != nd - 1) return 0;
    if (d[nd - 1] != d[nd - 2] || d[nd - 1] < 2 || (nd == 4 && d[0] != 1)) return 0;
    *heads = (int)d[nd - 3];
    *T = (int)d[nd - 1];
    return 1;
}

/* mark[v] = 1 for v and every run-time value it is computed from. */
static void ancestors(const sal_graph *g, int v, char *mark, int *stack) {
    int top = 0;
    if (v < 0 || mark[v]) return;
    mark[v] = 1;
    stack[top++] = v;
    while (top) {
        int u = stack[--top], p = g->values[u].producer;
        if (p < 0) continue;
        for (int k = 0; k < g->nodes[p].n_in; k++) {
            int w = g->nodes[p].in[k];
            if (w >= 0 && !mark[w] && !g->values[w].konst) {
                mark[w] = 1;
                stack[top++] = w;
            }
        }
    }
}

/* The values that feed both the queries and the keys of attention node `sm` (the two inputs of
 * the MatMul its scores come from, through the element-wise scaling, bias and mask ops between);
 * the Softmax's own ancestors when no such MatMul is found. */
static sal_status qk_ancestors(const sal_graph *g, int sm, char *qk, sal_error *err) {
    size_t nv = (size_t)g->n_values + 1;
    char *a = calloc(nv, 1), *b = calloc(nv, 1);
    int *stack = malloc(sizeof(int) * nv);
    if (!a || !b || !stack) {
        free(a); free(b); free(stack);
        return sal_fail(err, SAL_ERR_NOMEM, "out of memory");
    }
    int v = g->nodes[sm].in[0], mm = -1;
    for (int hop = 0; hop < 8 && v >= 0 && mm < 0; hop++) {
        int p = g->values[v].producer;
        if (p < 0) break;
        const sal_node *n = &g->nodes[p];
        int nrt = 0, first = -1;
        for (int k = 0; k < n->n_in; k++)
            if (n->in[k] >= 0 && !g->values[n->in[k]].konst) { nrt++; if (first < 0) first = n->in[k]; }
        if (n->op == SAL_OP_MATMUL && nrt == 2) mm = p;
        else v = first;
    }
    if (mm >= 0) {
        ancestors(g, g->nodes[mm].in[0], a, stack);
        ancestors(g, g->nodes[mm].in[1], b, stack);
        for (int u = 0; u < g->n_values; u++) qk[u] = a[u] && b[u];
    } else {
        ancestors(g, g->nodes[sm].in[0], qk, stack);
    }
    free(a); free(b); free(stack);
    return SAL_OK;
}

sal_status sal_attention_layers(sal_session *s, const sal_model *m, int h, int w, int **nodes, int *count,
                                int *heads, int *tokens, sal_error *err) {
    const sal_graph *g = m->g;
    *nodes = NULL;
    *count = 0;
    sal_status st = sal_session_plan(s, 1, h, w);
    if (st) return pass_on(s, st, err);
    int *list = malloc(sizeof(int) * ((size_t)g->n_nodes + 1));
    if (!list) return sal_fail(err, SAL_ERR_NOMEM, "out of memory");
    int n = 0, H0 = 0, T0 = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        int hh, tt;
        if (!is_attention(s, g, i, &hh, &tt)) continue;
        if (n && (hh != H0 || tt != T0)) {
            int first = list[0];
            free(list);
            return sal_fail(err, SAL_ERR_UNSUPPORTED, "%s: attention '%s' has %d heads over %d tokens, attention "
                            "'%s' %d over %d: rollout needs one token set through every layer (a ViT, not a "
                            "windowed or pooled transformer)", g->path, g->nodes[i].name, hh, tt,
                            g->nodes[first].name, H0, T0);
        }
        H0 = hh, T0 = tt;
        list[n++] = i;
    }
    if (!n) {
        free(list);
        return sal_fail(err, SAL_ERR_NOT_FOUND, "%s: no attention layer (a Softmax over the last axis of a "
                        "(N, heads, T, T) or (N*heads, T, T) value)", g->path);
    }
    *nodes = list;
    *count = n;
    *heads = H0;
    *tokens = T0;
    return SAL_OK;
}

/* ------------------------------------------------------------------------------------------------ */
/* The CAM layer                                                                                    */

sal_status sal_session_cam_layer(sal_session *s, int h, int w, const char *layer, int tokens_h, int tokens_w,
                                 sal_cam_layer *out) {
    if (!s || !out) return SAL_ERR_INVALID_ARG;
    return sal_cam_layer_resolve(s, sal_session_model(s), h, w, layer, tokens_h, tokens_w, out, sal_session_err(s));
}

sal_status sal_cam_layer_resolve(sal_session *s, const sal_model *m, int h, int w, const char *layer, int th,
                                 int tw, sal_cam_layer *out, sal_error *err) {
    const sal_graph *g = m->g;
    memset(out, 0, sizeof *out);
    if ((th > 0) != (tw > 0) || th < 0 || tw < 0)
        return sal_fail(err, SAL_ERR_INVALID_ARG, "--tokens %dx%d: both sides must be positive", th, tw);
    sal_status st = sal_session_plan(s, 1, h, w);
    if (st) return pass_on(s, st, err);
    if (!h || !w) {   /* the model's fixed size */
        const sal_value *in = &g->values[g->inputs[0]];
        h = (int)in->decl.d[2];
        w = (int)in->decl.d[3];
    }
    int nd;
    int64_t d[SAL_MAX_DIMS];
    if (layer && *layer) {
        st = sal_session_value_shape(s, layer, &nd, d);
        if (st) return pass_on(s, st, err);
        snprintf(out->name, sizeof out->name, "%s", layer);
        return classify(layer, nd, d, h, w, th, tw, out, err);
    }
    /* the default: the last feature map with both sides above 1, or a token layer that feeds the
     * queries and keys of the last attention when that comes later (after the last attention,
     * only the class token reaches a ViT's head: the patch tokens' gradients are zero there) */
    char *qk = calloc((size_t)g->n_values + 1, 1);
    if (!qk) return sal_fail(err, SAL_ERR_NOMEM, "out of memory");
    for (int i = g->n_nodes - 1; i >= 0; i--) {
        int hh, tt;
        if (is_attention(s, g, i, &hh, &tt)) {
            st = qk_ancestors(g, i, qk, err);
            break;
        }
    }
    for (int i = g->n_nodes - 1; i >= 0 && !st; i--) {
        const sal_node *n = &g->nodes[i];
        if (n->n_out < 1 || n->out[0] < 0 || sal_engine_konst(sal_session_engine(s), n->out[0])) continue;
        if (sal_session_layer_shape(s, i, &nd, d) || nd < 3 || d[0] != 1) continue;
        if (nd == 3 && !qk[n->out[0]]) continue;
        sal_error quiet = {0};
        if ((nd == 3 || nd == 4) && classify(n->name, nd, d, h, w, th, tw, out, &quiet) == SAL_OK) {
            snprintf(out->name, sizeof out->name, "%s", n->name);
            out->is_default = 1;
            free(qk);
            return SAL_OK;
        }
    }
    free(qk);
    if (st) return st;
    memset(out, 0, sizeof *out);
    if (th > 0)
        return sal_fail(err, SAL_ERR_NOT_FOUND, "%s: no layer with a %dx%d grid (--tokens %dx%d): no (N,C,%d,%d) or "
                        "(N,%d,%d,C) feature map and no layer of %d or %d tokens before an attention; give --layer "
                        "(see `salient info`)", g->path, th, tw, th, tw, th, tw, th, tw, th * tw, th * tw + 1);
    return sal_fail(err, SAL_ERR_NOT_FOUND, "%s: no layer for CAM methods: no feature map with both sides above 1 "
                    "and no token layer before an attention; give --layer (see `salient info`)", g->path);
}
