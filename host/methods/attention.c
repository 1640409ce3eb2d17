/* attention.c — methods made for transformers, from the attention probabilities (each block's
 * Softmax output) captured in one forward pass, and one backward pass for the gradient-weighted
 * one:
 *  - attention rollout (Abnar & Zuidema, "Quantifying Attention Flow in Transformers", ACL 2020):
 *    per layer the heads' mean attention A (or their max or min: head_fusion; optionally with its
 *    lowest values set to 0: rollout_discard, as jacobgil's vit-explain), M = (A + I)/2 with
 *    rows renormalized, the product R = M_L ... M_1;
 *  - gradient-weighted attention relevance (Chefer, Gur & Wolf, "Transformer Interpretability
 *    Beyond Attention Visualization", CVPR 2021; the rule of their "Generic Attention-model
 *    Explainability", ICCV 2021, for a ViT's self-attention): R = I, then per layer
 *    R += mean_heads((dy/dA * A)^+) R, y the explained score.
 * The map is the class token's row of R over the patch tokens, on the patch grid. The products
 * run on the session's backend through method primitives (kernels/method_prims.h: attn_eye,
 * attn_fuse, attn_step), so only the grid comes home. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"
#include "methods.h"

/* ------------------------------------------------------------------------------------------------ */
/* The attention layers                                                                             */

/* Node of a layer named by its node or its first output's name; -1 when absent. */
static int node_of(const sal_graph *g, const char *name, size_t len) {
    for (int i = 0; i < g->n_nodes; i++)
        if (strlen(g->nodes[i].name) == len && !strncmp(g->nodes[i].name, name, len)) return i;
    for (int i = 0; i < g->n_nodes; i++)
        if (g->nodes[i].n_out > 0 && g->nodes[i].out[0] >= 0) {
            const char *v = g->values[g->nodes[i].out[0]].name;
            if (strlen(v) == len && !strncmp(v, name, len)) return i;
        }
    return -1;
}

/* The layers (found, or the comma-separated names), their heads and tokens, and the patch grid.
 * *nodes is malloc'd. */
static sal_status resolve(sal_session *s, const sal_model *m, int h, int w, const char *names, int th, int tw,
                          int **nodes, sal_attention_info *info, sal_error *err) {
    const sal_graph *g = m->g;
    memset(info, 0, sizeof *info);
    *nodes = NULL;
    if ((th > 0) != (tw > 0) || th < 0 || tw < 0)
        return sal_fail(err, SAL_ERR_INVALID_ARG, "--tokens %dx%d: both sides must be positive", th, tw);
    int *list = NULL, n = 0, heads = 0, T = 0;
    sal_status st;
    if (!names || !*names) {
        st = sal_attention_layers(s, m, h, w, &list, &n, &heads, &T, err);
        if (st) return st;
    } else {
        if ((st = sal_session_plan(s, 1, h, w))) {
            if (err != sal_session_err(s)) sal_fail(err, st, "%s", sal_session_error(s));
            return st;
        }
        if (!(list = malloc(sizeof(int) * (strlen(names) + 1)))) return sal_fail(err, SAL_ERR_NOMEM, "out of memory");
        for (const char *p = names; *p;) {
            size_t len = strcspn(p, ",");
            int i = len ? node_of(g, p, len) : -1;
            int nd = 0;
            int64_t d[SAL_MAX_DIMS];
            if (i < 0) {
                free(list);
                return sal_fail(err, SAL_ERR_NOT_FOUND, "%s: no layer named '%.*s' (see `salient info`)", g->path,
                                (int)len, p);
            }
            if (sal_session_layer_shape(s, i, &nd, d) || (nd != 3 && nd != 4) || d[nd - 1] != d[nd - 2] ||
                (nd == 4 && d[0] != 1) || (n && (d[nd - 3] != heads || d[nd - 1] != T))) {
                free(list);
                return sal_fail(err, SAL_ERR_SHAPE, "attention layer '%s': its output is not (N, heads, T, T) or "
                                "(N*heads, T, T)%s", g->nodes[i].name, n ? " with the heads and tokens of the first" : "");
            }
            heads = (int)d[nd - 3];
            T = (int)d[nd - 1];
            list[n++] = i;
            p += len + (p[len] == ',');
        }
        if (!n) {
            free(list);
            return sal_fail(err, SAL_ERR_INVALID_ARG, "--attention-layers: no layer named");
        }
    }
    int gh = th, gw = tw, skip = 1;
    if (th > 0 ? (int64_t)th * tw + 1 != T : !sal_token_grid(T, h, w, &gh, &gw, &skip) || skip != 1) {
        int first = list[0];
        free(list);
        if (th > 0)
            return sal_fail(err, SAL_ERR_SHAPE, "attention layer '%s' has %d tokens; --tokens %dx%d needs %d (a "
                            "class token and the grid)", g->nodes[first].name, T, th, tw, th * tw + 1);
        return sal_fail(err, SAL_ERR_SHAPE, "attention layer '%s' has %d tokens: not a class token followed by a "
                        "grid of equal patches of the %dx%d input; rollout and chefer read the class token's row "
                        "(a ViT's; --tokens HxW gives the grid)", g->nodes[first].name, T, h, w);
    }
    info->layers = n;
    info->heads = heads;
    info->tokens = T;
    info->h = gh;
    info->w = gw;
    snprintf(info->first, sizeof info->first, "%s", g->nodes[list[0]].name);
    snprintf(info->last, sizeof info->last, "%s", g->nodes[list[n - 1]].name);
    *nodes = list;
    return SAL_OK;
}

sal_status sal_session_attention(sal_session *s, int h, int w, const char *layers, int tokens_h, int tokens_w,
                                 sal_attention_info *out) {
    if (!s || !out) return SAL_ERR_INVALID_ARG;
    const sal_model *m = sal_session_model(s);
    if (!h || !w) {   /* the model's fixed size */
        const sal_value *in = &m->g->values[m->g->inputs[0]];
        if (!h) h = (int)in->decl.d[2];
        if (!w) w = (int)in->decl.d[3];
    }
    int *nodes = NULL;
    sal_status st = resolve(s, m, h, w, layers, tokens_h, tokens_w, &nodes, out, sal_session_err(s));
    free(nodes);
    return st;
}

/* ------------------------------------------------------------------------------------------------ */
/* The methods                                                                                      */

sal_status sal_explain_attention(sal_method_ctx *cx, const sal_model *m, const float *x, int n, const int *tg,
                                 sal_maps *out) {
    const sal_explain_opts *o = cx->o;
    const int chefer = o->method == SAL_M_CHEFER;
    int *nodes = NULL;
    sal_attention_info ai;
    sal_status st = resolve(cx->s, m, cx->h, cx->w, o->attention_layers, o->tokens_h, o->tokens_w, &nodes, &ai,
                            sal_session_err(cx->s));
    if (st) return st;
    if (o->head_fusion < SAL_FUSE_MEAN || o->head_fusion > SAL_FUSE_MIN || (chefer && o->head_fusion != SAL_FUSE_MEAN)) {
        free(nodes);
        return sal_fail(sal_session_err(cx->s), SAL_ERR_INVALID_ARG, "head fusion %d: rollout takes mean, max or "
                        "min; chefer's rule is the mean", (int)o->head_fusion);
    }
    if (!(o->rollout_discard >= 0.0f && o->rollout_discard < 1.0f) || (chefer && o->rollout_discard != 0.0f)) {
        free(nodes);
        return sal_fail(sal_session_err(cx->s), SAL_ERR_INVALID_ARG, "discard ratio %g: rollout takes [0, 1); "
                        "chefer discards nothing", (double)o->rollout_discard);
    }
    const int L = ai.layers, H = ai.heads;
    const int64_t T = ai.tokens, TT = T * T, lhw = (int64_t)ai.h * ai.w;
    if (L == 1) snprintf(out->layer, sizeof out->layer, "%s", ai.first);
    else snprintf(out->layer, sizeof out->layer, "%d attention layers: %.100s ... %.100s", L, ai.first, ai.last);
    out->ndim = 2;
    out->dims[0] = ai.h;
    out->dims[1] = ai.w;
    out->dims[2] = 0;
    free(out->attr);
    out->attr = calloc((size_t)n * (size_t)lhw, sizeof(float));
    out->upsampled = calloc((size_t)n * (size_t)cx->h * cx->w, sizeof(float));
    int *vals = malloc(sizeof(int) * (size_t)L);
    float *lg = malloc(sizeof(float) * (size_t)cx->k), *seed = malloc(sizeof(float) * (size_t)cx->k);
    float *dF = sal_dalloc(cx, sizeof(float) * (size_t)TT);   /* (T,T) the fused attention */
    float *dR = sal_dalloc(cx, sizeof(float) * (size_t)TT);   /* (T,T) the product so far */
    float *dR2 = sal_dalloc(cx, sizeof(float) * (size_t)TT);
    /* discarding: the fused attention's values sorted (T*T), and the sort's scratch */
    const int64_t discard = (int64_t)((double)TT * o->rollout_discard);
    sal_backend *be = sal_session_backend(cx->s);
    size_t sort_bytes = discard ? be->ops->sort_scratch(be, TT) : 0;
    float *dK = discard ? sal_dalloc(cx, sizeof(float) * (size_t)TT) : NULL;
    void *dsort = sort_bytes ? sal_dalloc(cx, sort_bytes) : NULL;
    if (!out->attr || !out->upsampled || !vals || !lg || !seed || !dF || !dR || !dR2 ||
        (discard && !dK) || (sort_bytes && !dsort))
        st = SAL_ERR_NOMEM;
    for (int l = 0; !st && l < L; l++) vals[l] = m->g->nodes[nodes[l]].out[0];
    if (!st) st = sal_method_progress_start(cx, n);   /* one pass per image */
    for (int i = 0; i < n && !st; i++) {
        /* the image's pass, every attention captured; Chefer's backward stops at the first one */
        float *din = NULL;
        st = sal_session_dev_plan_set(cx->s, 1, cx->h, cx->w, chefer, vals, L, &din);
        if (!st) st = sal_dput(cx, din, x + i * cx->per, sizeof(float) * (size_t)cx->per);
        if (!st) st = sal_session_dev_forward(cx->s, lg);
        if (!st) {
            memset(seed, 0, sizeof(float) * (size_t)cx->k);
            if (o->explain_prob) out->scores[i] = sal_prob_seed(lg, cx->k, tg[i], seed);
            else { out->scores[i] = lg[tg[i]]; seed[tg[i]] = 1.0f; }
        }
        if (!st && chefer) st = sal_session_dev_backward(cx->s, seed, 0, 1);
        if (!st) st = sal_method_progress(cx, 1, 0);
        sal_mp_args a = sal_mp_base(cx);
        a.lc = (int)T;
        a.out = dR;
        if (!st) st = sal_mp(cx, SAL_MP_attn_eye, TT, &a);
        for (int l = 0; l < L && !st; l++) {
            const float *A = sal_session_dev_captured(cx->s, vals[l], 0);
            const float *G = chefer ? sal_session_dev_captured(cx->s, vals[l], 1) : NULL;
            if (!A) {
                st = sal_fail(sal_session_err(cx->s), SAL_ERR_INTERNAL, "attention layer '%s': not captured", m->g->nodes[nodes[l]].name);
                break;
            }
            if (chefer && !G) continue;   /* the score does not depend on this layer: R += 0 */
            sal_mp_args f = sal_mp_base(cx);
            f.in = A;
            f.in2 = G;
            f.lc = H;
            f.lhw = TT;
            f.mode = chefer ? 1 : o->head_fusion == SAL_FUSE_MAX ? 2 : o->head_fusion == SAL_FUSE_MIN ? 3 : 0;
            f.out = dF;
            st = sal_mp(cx, SAL_MP_attn_fuse, TT, &f);
            if (!st && discard) {   /* the `discard` smallest to 0 (torch.topk's k = int(T*T*ratio)) */
                sal_mp_args d = sal_mp_base(cx);
                d.in = dF;
                d.out = dK;
                st = sal_mp(cx, SAL_MP_copy, TT, &d);
                if (!st) st = be->ops->sort(be, dK, TT, dsort, sal_session_err(cx->s));
                d.in2 = dK;
                d.out = dF;
                d.k0 = (int)discard;
                if (!st) st = sal_mp(cx, SAL_MP_attn_discard, TT, &d);
            }
            sal_mp_args p = sal_mp_base(cx);
            p.in = dF;
            p.in2 = dR;
            p.lc = (int)T;
            p.mode = chefer;
            p.out = dR2;
            if (!st) st = sal_mp(cx, SAL_MP_attn_step, TT, &p);
            float *t = dR;
            dR = dR2;
            dR2 = t;
        }
        /* the class token's row over the patches: R[0][1..T-1], the (gh, gw) map */
        if (!st) st = sal_dget(cx, out->attr + i * lhw, dR + 1, sizeof(float) * (size_t)lhw);
        if (!st) st = sal_cam_final(out->attr + i * lhw, ai.h, ai.w, out->upsampled + (int64_t)i * cx->h * cx->w,
                                    cx->h, cx->w, 1);
    }
    free(nodes);
    free(vals);
    free(lg);
    free(seed);
    sal_dfree(cx, dF);
    sal_dfree(cx, dR);
    sal_dfree(cx, dR2);
    sal_dfree(cx, dK);
    sal_dfree(cx, dsort);
    return st;
}
