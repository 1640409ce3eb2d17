/* incremental.c — incremental inference on patches over a base pass's cached activations (see
 * incremental.h): region propagation per layer, batched tiles cut through the backend's
 * patch_rows primitive, layers run by the backend's forward on tile shapes, whole-layer fallback
 * past a threshold. */
#include "incremental.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "method_prims.h"

/* ------------------------------------------------------------------------------------------------ */
/* State                                                                                            */

/* What a value holds in the current batch. */
enum { V_BASE = 0,   /* the same for every variant: read the base activation */
       V_PATCH = 1,  /* 4-D; variant k differs only in rows [oy, oy+ph) x cols [ox, ox+pw): buf
                        holds that patch of every variant (nb, C, ph, pw) */
       V_WHOLE = 2   /* buf holds every variant whole (nb, ...) */ };

typedef struct ival {
    int state;
    int ph, pw;        /* V_PATCH: the batch's patch size */
    int buf;           /* pool entry of V_PATCH / V_WHOLE data, -1 none */
    sal_shape shape;   /* V_WHOLE: the batch's shape */
} ival;

typedef struct pbuf {   /* a buffer of backend memory kept for reuse */
    float *p;
    size_t cap;         /* floats */
    int used;
    int last;           /* last step that reads it in this batch */
} pbuf;

struct sal_inc {
    sal_engine *e;
    sal_backend *b;
    const sal_graph *g;
    sal_inc_opts o;
    sal_shape in_shape;       /* the base input's (1,C,H,W) */
    unsigned long stamp;      /* the engine's run stamp after the base pass */
    sal_node *tnodes;         /* (n_nodes): each node without pads / auto_pad (tiles carry them) */
    int *last;                /* (n_values): last step reading each value; n_steps: graph output */
    ival *v;                  /* (n_values) */
    int *org;                 /* (n_values, cap_nb, 2): V_PATCH origins (oy, ox) per variant */
    int64_t *goff;            /* (n_values): where a V_PATCH value's origins are in the batch's
                                 geometry (hgeo / dgeo), -1 elsewhere */
    int *same;                /* (n_values): the value whose origins an alias shares, or itself */
    int *rect;                /* (cap_nb, 4): per-variant rectangles being propagated */
    int cap_nb;
    pbuf *pool;
    int n_pool, cap_pool;
    int *hgeo, *dgeo;         /* (cap_geo) host and backend copies of the batch's geometry: the
                                 input rectangles (nb, 4), then each V_PATCH value's origins
                                 (nb, 2), uploaded once per batch */
    size_t cap_geo;
    int scratch;              /* pool entry of the ops' scratch */
    double flops_ran, flops_full;
};

sal_inc_opts sal_inc_opts_default(void) {
    sal_inc_opts o;
    o.threshold = 0.5;
    return o;
}

/* ------------------------------------------------------------------------------------------------ */
/* Buffers                                                                                          */

/* A pool buffer of at least n floats, last used by step `last`; -1 (err set) when out of memory.
 * Entries keep their index for the batch (values refer to them by index). */
static int pool_get(sal_inc *s, size_t n, int last, sal_error *err) {
    if (n == 0) n = 1;
    int best = -1, hole = -1;
    for (int i = 0; i < s->n_pool; i++) {
        if (s->pool[i].used) continue;
        if (!s->pool[i].p) { if (hole < 0) hole = i; continue; }
        if (s->pool[i].cap >= n && (best < 0 || s->pool[i].cap < s->pool[best].cap)) best = i;
    }
    if (best < 0) {
        if (hole < 0 && s->n_pool == s->cap_pool) {
            int cap = s->cap_pool ? 2 * s->cap_pool : 32;
            pbuf *np = realloc(s->pool, sizeof *np * (size_t)cap);
            if (!np) { sal_fail(err, SAL_ERR_NOMEM, "incremental inference: out of host memory"); return -1; }
            s->pool = np;
            s->cap_pool = cap;
        }
        float *p = s->b->ops->alloc(s->b, (n + 16) * sizeof(float));
        if (!p) {   /* give back the free buffers (all too small) and try again */
            for (int i = 0; i < s->n_pool; i++)
                if (!s->pool[i].used && s->pool[i].p) {
                    s->b->ops->release(s->b, s->pool[i].p);
                    s->pool[i].p = NULL;
                    s->pool[i].cap = 0;
                    if (hole < 0) hole = i;
                }
            p = s->b->ops->alloc(s->b, (n + 16) * sizeof(float));
        }
        if (!p) {
            sal_fail(err, SAL_ERR_NOMEM, "incremental inference: out of %s memory for a %zu MiB tile",
                     s->b->ops->name, (n * sizeof(float)) >> 20);
            return -1;
        }
        best = hole >= 0 ? hole : s->n_pool++;
        s->pool[best].p = p;
        s->pool[best].cap = n;
    }
    s->pool[best].used = 1;
    s->pool[best].last = last;
    return best;
}

/* Give back every buffer whose last reader is step `step` or earlier (all with step = INT_MAX). */
static void pool_expire(sal_inc *s, int step) {
    for (int i = 0; i < s->n_pool; i++)
        if (s->pool[i].used && s->pool[i].last <= step && i != s->scratch) s->pool[i].used = 0;
}

static void pool_free_all(sal_inc *s) {
    for (int i = 0; i < s->n_pool; i++)
        if (s->pool[i].p) s->b->ops->release(s->b, s->pool[i].p);
    free(s->pool);
    s->pool = NULL;
    s->n_pool = s->cap_pool = 0;
}

/* ------------------------------------------------------------------------------------------------ */
/* Create, base pass                                                                                */

sal_status sal_inc_create(sal_engine *e, const sal_inc_opts *o, sal_inc **out, sal_error *err) {
    *out = NULL;
    sal_backend *b = sal_engine_backend(e);
    if (!b->incremental)
        return sal_fail(err, SAL_ERR_UNSUPPORTED, "incremental inference is not enabled on the %s backend",
                        b->ops->name);
    sal_inc *s = calloc(1, sizeof *s);
    if (!s) return sal_fail(err, SAL_ERR_NOMEM, "out of memory");
    s->e = e;
    s->b = b;
    s->g = sal_engine_graph(e);
    s->o = o ? *o : sal_inc_opts_default();
    s->scratch = -1;
    const sal_graph *g = s->g;
    s->tnodes = calloc((size_t)g->n_nodes + 1, sizeof *s->tnodes);
    s->last = calloc((size_t)g->n_values + 1, sizeof *s->last);
    s->v = calloc((size_t)g->n_values + 1, sizeof *s->v);
    s->goff = calloc((size_t)g->n_values + 1, sizeof *s->goff);
    s->same = calloc((size_t)g->n_values + 1, sizeof *s->same);
    if (!s->tnodes || !s->last || !s->v || !s->goff || !s->same) { sal_inc_free(s); return sal_fail(err, SAL_ERR_NOMEM, "out of memory"); }
    for (int i = 0; i < g->n_nodes; i++) {
        const sal_node *n = &g->nodes[i];
        sal_node *t = &s->tnodes[i];
        *t = *n;
        t->attrs = calloc((size_t)n->n_attr + 1, sizeof *t->attrs);
        if (!t->attrs) { sal_inc_free(s); return sal_fail(err, SAL_ERR_NOMEM, "out of memory"); }
        t->n_attr = 0;
        for (int a = 0; a < n->n_attr; a++)   /* shallow copies: the strings stay the graph's */
            if (strcmp(n->attrs[a].name, "pads") && strcmp(n->attrs[a].name, "auto_pad"))
                t->attrs[t->n_attr++] = n->attrs[a];
    }
    *out = s;
    return SAL_OK;
}

void sal_inc_free(sal_inc *s) {
    if (!s) return;
    if (s->tnodes)
        for (int i = 0; i < s->g->n_nodes; i++) free(s->tnodes[i].attrs);
    free(s->tnodes);
    pool_free_all(s);
    if (s->dgeo) s->b->ops->release(s->b, s->dgeo);
    free(s->hgeo);
    free(s->last);
    free(s->v);
    free(s->goff);
    free(s->same);
    free(s->org);
    free(s->rect);
    free(s);
}

sal_status sal_inc_base(sal_inc *s, const sal_shape *shape, const float *x, sal_error *err) {
    const sal_graph *g = s->g;
    if (shape->ndim != 4 || shape->d[0] != 1)
        return sal_fail(err, SAL_ERR_INVALID_ARG, "incremental inference: the base input must be one (1,C,H,W) image");
    sal_status st = sal_engine_plan(s->e, shape, SAL_PLAN_KEEP, -1, err);
    if (!st) {   /* copied on the backend: nothing crosses the bus */
        sal_mp_args a;
        memset(&a, 0, sizeof a);
        a.in = x;
        a.out = sal_engine_input_dev(s->e, 0);
        st = s->b->ops->prim(s->b, SAL_MP_copy, sal_shape_numel(shape), &a, err);
    }
    if (!st) st = sal_engine_forward(s->e, NULL, err);
    if (st) { s->stamp = 0; return st; }
    s->in_shape = *shape;
    s->stamp = sal_engine_run_stamp(s->e);
    int ns = sal_engine_n_steps(s->e);
    for (int v = 0; v < g->n_values; v++) s->last[v] = -1;
    for (int t = 0; t < ns; t++) {
        const void *params;
        int alias, fused;
        const sal_node *n = &g->nodes[sal_engine_step(s->e, t, &params, &alias, &fused)];
        for (int i = 0; i < n->n_in; i++)
            if (n->in[i] >= 0) s->last[n->in[i]] = t;
    }
    for (int i = 0; i < g->n_outputs; i++) s->last[g->outputs[i]] = ns;
    return SAL_OK;
}

/* ------------------------------------------------------------------------------------------------ */
/* Regions                                                                                          */

static int64_t floor_div(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

/* The base (batch 1) shape of value v viewed as (c, h, w) planes: 4-D (1,C,H,W) -> C,H,W; any
 * other -> 1, 1, elements. */
static void planes(const sal_shape *sh, int *c, int *h, int *w) {
    if (sh->ndim == 4) { *c = (int)sh->d[1]; *h = (int)sh->d[2]; *w = (int)sh->d[3]; return; }
    *c = 1; *h = 1; *w = (int)sal_shape_numel(sh);
}

/* Value v's per-variant rectangles in s->rect (nb, 4: y0 x0 y1 x1, empty when y1 <= y0 or
 * x1 <= x0) become its state: V_BASE when every one is empty, else one patch size for the batch
 * (the largest), or V_WHOLE past the threshold. Origins into s->org. */
static void decide(sal_inc *s, int v, int nb, const sal_shape *base) {
    ival *iv = &s->v[v];
    int H = (int)base->d[2], W = (int)base->d[3], ph = 0, pw = 0;
    for (int k = 0; k < nb; k++) {
        const int *r = s->rect + 4 * k;
        if (r[2] <= r[0] || r[3] <= r[1]) continue;
        if (r[2] - r[0] > ph) ph = r[2] - r[0];
        if (r[3] - r[1] > pw) pw = r[3] - r[1];
    }
    iv->buf = -1;
    if (!ph) { iv->state = V_BASE; return; }
    if ((double)ph * pw > s->o.threshold * (double)H * W) { iv->state = V_WHOLE; return; }
    iv->state = V_PATCH;
    iv->ph = ph;
    iv->pw = pw;
    int *o = s->org + (int64_t)v * s->cap_nb * 2;
    for (int k = 0; k < nb; k++) {
        const int *r = s->rect + 4 * k;
        int empty = r[2] <= r[0] || r[3] <= r[1];
        int oy = empty ? 0 : r[0], ox = empty ? 0 : r[1];
        o[2 * k] = oy < H - ph ? oy : H - ph;
        o[2 * k + 1] = ox < W - pw ? ox : W - pw;
    }
}

/* ------------------------------------------------------------------------------------------------ */
/* How layers move a region                                                                         */

enum { K_OTHER = 0, K_WINDOW, K_POINTWISE };

/* How a node moves a changed region: K_WINDOW (Conv, pools: grows by the kernel), K_POINTWISE
 * (the union of the inputs'), K_OTHER (the whole tensor). */
static int kind_of(sal_inc *s, const sal_node *n, const void *params) {
    for (int j = 1; j < n->n_out; j++)   /* a second output that someone reads: whole */
        if (n->out[j] >= 0 && s->last[n->out[j]] >= 0) return K_OTHER;
    const sal_shape *out = n->out[0] >= 0 ? sal_engine_shape(s->e, n->out[0]) : NULL;
    if (!out || out->ndim != 4) return K_OTHER;
    switch (n->op) {
    case SAL_OP_CONV: {
        const sal_conv_params *p = params;
        if (!p || p->spatial != 2) return K_OTHER;
        for (int i = 1; i < n->n_in; i++)   /* weights and bias must be constants */
            if (n->in[i] >= 0 && !sal_engine_konst(s->e, n->in[i])) return K_OTHER;
        return K_WINDOW;
    }
    case SAL_OP_MAXPOOL: return params ? K_WINDOW : K_OTHER;
    case SAL_OP_AVGPOOL: {   /* a tile's zero padding is right only where padding is counted */
        const sal_pool_params *p = params;
        if (!p || sal_attr_int(n, "ceil_mode", 0)) return K_OTHER;
        int padded = p->pt || p->pl || p->pb || p->pr;
        return padded && !p->count_include_pad ? K_OTHER : K_WINDOW;
    }
    case SAL_OP_CONCAT:
        if (sal_attr_int(n, "axis", 1) != 1 && sal_attr_int(n, "axis", 1) != -3) return K_OTHER;
        /* fallthrough - a channel Concat is then like the element-wise ops */
    case SAL_OP_RELU: case SAL_OP_LEAKYRELU: case SAL_OP_CLIP: case SAL_OP_SIGMOID:
    case SAL_OP_HARDSIGMOID: case SAL_OP_HARDSWISH: case SAL_OP_TANH: case SAL_OP_BATCHNORM:
    case SAL_OP_ADD: case SAL_OP_SUB: case SAL_OP_MUL: case SAL_OP_DIV: case SAL_OP_DROPOUT:
    case SAL_OP_IDENTITY: case SAL_OP_LRN:
        /* every run-time input spans the output's plane (no spatial broadcast) */
        for (int i = 0; i < n->n_in; i++) {
            int v = n->in[i];
            if (v < 0 || sal_engine_konst(s->e, v)) continue;
            const sal_shape *sh = sal_engine_shape(s->e, v);
            if (!sh || sh->ndim != 4 || sh->d[2] != out->d[2] || sh->d[3] != out->d[3]) return K_OTHER;
            if (n->op != SAL_OP_CONCAT && sh->d[1] != out->d[1]) return K_OTHER;
        }
        return K_POINTWISE;
    default: return K_OTHER;
    }
}

/* A Conv's or pool's window: kernel, stride, dilation, leading padding. */
typedef struct win { int64_t kh, kw, sh, sw, dh, dw, pt, pl, oh, ow; } win;

static win win_of(const sal_node *n, const void *params) {
    win w;
    if (n->op == SAL_OP_CONV) {
        const sal_conv_params *p = params;
        w = (win){p->kh, p->kw, p->sh, p->sw, p->dh, p->dw, p->pt, p->pl, p->oh, p->ow};
    } else {
        const sal_pool_params *p = params;
        w = (win){p->kh, p->kw, p->sh, p->sw, p->dh, p->dw, p->pt, p->pl, p->oh, p->ow};
    }
    return w;
}

/* The step's outputs' states for this batch (host only: the geometry is known before anything
 * runs, so the batch's geometry goes to the backend in one upload). */
static void plan_step(sal_inc *s, int step, int nb) {
    const sal_graph *g = s->g;
    const void *bp;
    int alias, fused;
    const sal_node *n = &g->nodes[sal_engine_step(s->e, step, &bp, &alias, &fused)];
    int any_changed = 0, any_whole = 0;
    for (int i = 0; i < n->n_in; i++) {
        int v = n->in[i];
        if (v < 0 || sal_engine_konst(s->e, v)) continue;
        any_changed |= s->v[v].state != V_BASE;
        any_whole |= s->v[v].state == V_WHOLE;
    }
    for (int j = 0; j < n->n_out; j++)
        if (n->out[j] >= 0) s->v[n->out[j]].state = V_BASE;
    int vo = n->out[0];
    if (!any_changed || vo < 0) return;   /* the same for every variant: the base is right */
    if (alias) {   /* the fused activation and the identities keep the region; reshapes need it whole */
        int vi = n->in[0];
        int keeps = fused || n->op == SAL_OP_IDENTITY || n->op == SAL_OP_DROPOUT || n->op == SAL_OP_CAST;
        if (keeps && s->v[vi].state == V_PATCH) {
            s->v[vo] = s->v[vi];
            s->same[vo] = s->same[vi];
            memcpy(s->org + (int64_t)vo * s->cap_nb * 2, s->org + (int64_t)vi * s->cap_nb * 2,
                   sizeof(int) * 2 * (size_t)nb);
        } else {
            s->v[vo].state = V_WHOLE;
        }
        return;
    }
    int kind = kind_of(s, n, bp);
    if (kind == K_OTHER || any_whole) { s->v[vo].state = V_WHOLE; return; }
    for (int k = 0; k < nb; k++) {
        int *r = s->rect + 4 * k;
        r[0] = r[1] = 1 << 30;
        r[2] = r[3] = -(1 << 30);
    }
    win w = kind == K_WINDOW ? win_of(n, bp) : (win){0};
    for (int i = 0; i < (kind == K_WINDOW ? 1 : n->n_in); i++) {
        int v = n->in[i];
        if (v < 0 || s->v[v].state != V_PATCH) continue;
        const int *po = s->org + (int64_t)v * s->cap_nb * 2;
        for (int k = 0; k < nb; k++) {
            int *r = s->rect + 4 * k;
            int64_t y0 = po[2 * k], x0 = po[2 * k + 1], y1 = y0 + s->v[v].ph, x1 = x0 + s->v[v].pw;
            if (kind == K_WINDOW) {   /* outputs o whose taps o*s - pad + [0, (k-1)*d] meet [y0, y1) */
                int64_t a0 = -floor_div(-(y0 + w.pt - (w.kh - 1) * w.dh), w.sh), a1 = floor_div(y1 - 1 + w.pt, w.sh) + 1;
                int64_t b0 = -floor_div(-(x0 + w.pl - (w.kw - 1) * w.dw), w.sw), b1 = floor_div(x1 - 1 + w.pl, w.sw) + 1;
                y0 = a0 < 0 ? 0 : a0; y1 = a1 > w.oh ? w.oh : a1;
                x0 = b0 < 0 ? 0 : b0; x1 = b1 > w.ow ? w.ow : b1;
                if (y1 <= y0 || x1 <= x0) continue;
            }
            if (y0 < r[0]) r[0] = (int)y0;
            if (x0 < r[1]) r[1] = (int)x0;
            if (y1 > r[2]) r[2] = (int)y1;
            if (x1 > r[3]) r[3] = (int)x1;
        }
    }
    decide(s, vo, nb, sal_engine_shape(s->e, vo));   /* V_BASE: e.g. a strided 1x1 Conv skipping them */
}

/* ------------------------------------------------------------------------------------------------ */
/* Tiles                                                                                            */

/* nb tiles (nb, c, th, tw) of value v into dst: variant k's tile starts at (org[2k] * sy - py,
 * org[2k+1] * sx - px) of its plane (org: the backend's copy of a value's origins; NULL: at 0, 0),
 * pad outside the plane. */
static sal_status cut(sal_inc *s, int v, int nb, int th, int tw, const int *org, int sy, int sx, int py,
                      int px, float pad, float *dst, sal_error *err) {
    const sal_shape *base = sal_engine_shape(s->e, v);
    const ival *iv = &s->v[v];
    sal_mp_args a;
    memset(&a, 0, sizeof a);
    planes(base, &a.c, &a.h, &a.w);
    a.x = sal_engine_data_dev(s->e, v);
    if (iv->state == V_PATCH) {
        a.in = s->pool[iv->buf].p;
        a.geo = s->dgeo + s->goff[v];
        a.ph = iv->ph;
        a.pw = iv->pw;
    }
    a.geo2 = org;
    a.gsy = sy; a.gsx = sx; a.gpy = py; a.gpx = px;
    a.th = th; a.tw = tw;
    a.nb = nb;
    a.mode = 0;
    a.f0 = pad;
    a.out = dst;
    return s->b->ops->prim(s->b, SAL_MP_patch_rows, (int64_t)nb * a.c * th, &a, err);
}

/* ------------------------------------------------------------------------------------------------ */
/* Running one step                                                                                 */

/* The op's infer for the given input shapes (as the planner calls it). */
static sal_status infer(sal_inc *s, const sal_node *n, const sal_shape **shp, sal_shape *out_shape,
                        void **params, size_t *scratch, sal_error *err) {
    enum { MAXIO = 64 };
    const sal_tensor *kon[MAXIO];
    int dt[MAXIO];
    int out_dt[8];
    if (n->n_in > MAXIO || n->n_out > 8)
        return sal_fail(err, SAL_ERR_UNSUPPORTED, "node '%s': too many inputs or outputs", n->name);
    for (int i = 0; i < n->n_in; i++) {
        kon[i] = n->in[i] >= 0 ? sal_engine_konst(s->e, n->in[i]) : NULL;
        dt[i] = kon[i] ? kon[i]->dtype : SAL_F32;
    }
    for (int j = 0; j < 8; j++) out_dt[j] = SAL_F32;
    const sal_op_def *def = sal_op_def_of((sal_op_kind)n->op);
    if (!def || !def->infer) return sal_fail(err, SAL_ERR_UNSUPPORTED, "node '%s': no op definition", n->name);
    sal_op_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    ctx.g = s->g; ctx.node = n; ctx.n_in = n->n_in; ctx.in_shape = shp; ctx.in_dtype = dt;
    ctx.in_const = kon; ctx.n_out = n->n_out; ctx.out_shape = out_shape; ctx.out_dtype = out_dt;
    ctx.err = err;
    sal_status st = def->infer(&ctx);
    if (st) {   /* shapes the full plan accepted, refused for a batch of windows or a patch: a shape
                 * computed for one image (a Reshape target folded from the base plan's Shape) does not
                 * follow the batch. Full passes then do the work (the caller's fallback) */
        free(ctx.params);
        sal_fail_prefix(err, st, "incremental inference");
        return st == SAL_ERR_NOMEM ? st : SAL_ERR_UNSUPPORTED;
    }
    *params = ctx.params;
    *scratch = ctx.scratch_floats;
    return SAL_OK;
}

/* Value v whole for every variant, for a reader at `step`: constants as they are, whole values as
 * they are, the others cut whole from base + patch into a new pool buffer (*tmp, else -1). */
static sal_status whole_input(sal_inc *s, int v, int nb, int step, const float **data, sal_shape *shape,
                              int *tmp, sal_error *err) {
    *tmp = -1;
    const sal_tensor *k = sal_engine_konst(s->e, v);
    if (k) { *data = sal_engine_data_dev(s->e, v); *shape = k->shape; return SAL_OK; }
    const ival *iv = &s->v[v];
    if (iv->state == V_WHOLE) { *data = s->pool[iv->buf].p; *shape = iv->shape; return SAL_OK; }
    const sal_shape *base = sal_engine_shape(s->e, v);
    int c, h, w;
    planes(base, &c, &h, &w);
    *shape = *base;
    shape->d[0] = nb;
    int b = pool_get(s, (size_t)nb * (size_t)sal_shape_numel(base), step, err);
    if (b < 0) return SAL_ERR_NOMEM;
    *tmp = b;
    *data = s->pool[b].p;
    return cut(s, v, nb, h, w, NULL, 0, 0, 0, 0, 0.0f, s->pool[b].p, err);
}

static sal_status exec_step(sal_inc *s, int step, int nb, sal_error *err) {
    const sal_graph *g = s->g;
    const void *bparams;
    int alias, fused;
    const sal_node *n = &g->nodes[sal_engine_step(s->e, step, &bparams, &alias, &fused)];
    enum { MAXIO = 64 };
    int vo = n->out[0];
    if (vo < 0 || s->v[vo].state == V_BASE) return SAL_OK;   /* nothing changed, or nobody reads it */
    if (n->n_in > MAXIO || n->n_out > 8)
        return sal_fail(err, SAL_ERR_UNSUPPORTED, "node '%s': too many inputs or outputs", n->name);
    ival *oo = &s->v[vo];
    sal_status st = SAL_OK;

    /* --- aliases: share the input's patch, or its whole form reinterpreted --- */
    if (alias) {
        int vi = n->in[0];
        if (oo->state == V_PATCH) {
            oo->buf = s->v[vi].buf;
        } else {
            const float *d;
            sal_shape ws;
            int t;
            st = whole_input(s, vi, nb, step, &d, &ws, &t, err);
            if (st) return st;
            oo->buf = t >= 0 ? t : s->v[vi].buf;
            oo->shape = ws;
            if (n->op != SAL_OP_CAST) {   /* the output's shape, from its infer */
                const sal_shape *shp[MAXIO];
                sal_shape outs[8];
                void *pp = NULL;
                size_t sc = 0;
                for (int i = 0; i < n->n_in; i++) {
                    int v = n->in[i];
                    const sal_tensor *k = v >= 0 ? sal_engine_konst(s->e, v) : NULL;
                    shp[i] = i == 0 ? &ws : v < 0 ? NULL : k ? &k->shape : sal_engine_shape(s->e, v);
                }
                st = infer(s, n, shp, outs, &pp, &sc, err);
                free(pp);
                if (st) return st;
                oo->shape = outs[0];
            }
        }
        if (oo->buf >= 0 && s->pool[oo->buf].last < s->last[vo]) s->pool[oo->buf].last = s->last[vo];
        return SAL_OK;
    }

    /* --- the inputs, cut to what the output's patch needs --- */
    int kind = oo->state == V_WHOLE ? K_OTHER : kind_of(s, n, bparams);
    const float *in[MAXIO];
    sal_shape ishape[MAXIO];
    const sal_shape *ishp[MAXIO];
    int tmp[MAXIO];
    for (int i = 0; i < n->n_in; i++) { tmp[i] = -1; in[i] = NULL; ishp[i] = NULL; }
    const sal_node *rn = n;   /* the node infer plans: the pad-free copy for a window's tile */
    const int *oorg = s->org + (int64_t)vo * s->cap_nb * 2;
    for (int i = 0; !st && i < n->n_in; i++) {
        int v = n->in[i];
        if (v < 0) continue;
        const sal_tensor *k = sal_engine_konst(s->e, v);
        if (k) { in[i] = sal_engine_data_dev(s->e, v); ishp[i] = &k->shape; continue; }
        ishp[i] = &ishape[i];
        if (oo->state == V_WHOLE) {
            st = whole_input(s, v, nb, step, &in[i], &ishape[i], &tmp[i], err);
            continue;
        }
        const ival *iv = &s->v[v];
        ishape[i] = *sal_engine_shape(s->e, v);
        ishape[i].d[0] = nb;
        int th = oo->ph, tw = oo->pw, sy = 1, sx = 1, py = 0, px = 0;
        float pad = 0.0f;
        if (kind == K_WINDOW) {   /* the taps of the output patch: (ph-1)*s + (k-1)*d + 1 rows */
            win w = win_of(n, bparams);
            th = (int)((oo->ph - 1) * w.sh + (w.kh - 1) * w.dh + 1);
            tw = (int)((oo->pw - 1) * w.sw + (w.kw - 1) * w.dw + 1);
            sy = (int)w.sh; sx = (int)w.sw; py = (int)w.pt; px = (int)w.pl;
            pad = n->op == SAL_OP_MAXPOOL ? -INFINITY : 0.0f;
            rn = &s->tnodes[n - g->nodes];
        } else if (iv->state == V_PATCH && iv->ph == th && iv->pw == tw &&
                   !memcmp(s->org + (int64_t)v * s->cap_nb * 2, oorg, sizeof(int) * 2 * (size_t)nb)) {
            in[i] = s->pool[iv->buf].p;   /* already the output's patch */
            ishape[i].d[2] = th;
            ishape[i].d[3] = tw;
            continue;
        }
        ishape[i].d[2] = th;
        ishape[i].d[3] = tw;
        tmp[i] = pool_get(s, (size_t)sal_shape_numel(&ishape[i]), step, err);
        if (tmp[i] < 0) { st = SAL_ERR_NOMEM; break; }
        in[i] = s->pool[tmp[i]].p;
        st = cut(s, v, nb, th, tw, s->dgeo + s->goff[vo], sy, sx, py, px, pad, s->pool[tmp[i]].p, err);
    }

    /* --- plan the op for these shapes and run it --- */
    sal_shape outs[8];
    void *params = NULL;
    size_t scratch = 0;
    if (!st) st = infer(s, rn, ishp, outs, &params, &scratch, err);
    if (!st) {
        sal_shape want = *sal_engine_shape(s->e, vo);
        want.d[0] = nb;
        if (oo->state == V_PATCH) { want.d[2] = oo->ph; want.d[3] = oo->pw; }
        if (!sal_shape_eq(&outs[0], &want)) {
            char a[96], b[96];
            st = sal_fail(err, SAL_ERR_UNSUPPORTED, "incremental inference: node '%s' (%s) gives %s for a "
                          "batch of %d, expected %s (its output does not follow the batch)", n->name,
                          n->op_type, sal_shape_str(&outs[0], a, sizeof a), nb, sal_shape_str(&want, b, sizeof b));
        }
    }
    if (!st && n->op == SAL_OP_CONV && bparams) {   /* the activation the engine fused into it */
        const sal_conv_params *bp = bparams;
        sal_conv_params *p = params;
        p->act = bp->act;
        p->act_lo = bp->act_lo;
        p->act_hi = bp->act_hi;
    }
    if (!st && n->op == SAL_OP_ADD && bparams && ((const sal_bcast_params *)bparams)->act) {
        /* the Relu / Clip the engine fused into it (its operands' tiles share one shape) */
        const sal_bcast_params *bp = bparams;
        sal_bcast_params *p = params;
        p->act = bp->act;
        p->act_lo = bp->act_lo;
        p->act_hi = bp->act_hi;
        if (p->mode != SAL_BC_SAME)
            st = sal_fail(err, SAL_ERR_INTERNAL, "incremental inference: node '%s' (Add with a fused "
                          "activation) broadcasts its operands' tiles", n->name);
    }
    float *outp[8] = {0};
    const sal_shape *oshp[8] = {0};
    for (int j = 0; !st && j < n->n_out; j++) {
        int v = n->out[j];
        if (v < 0) continue;
        /* outputs after the first are unread (kind_of) or the step is whole: theirs too */
        int b = pool_get(s, (size_t)sal_shape_numel(&outs[j]), s->last[v] > step ? s->last[v] : step, err);
        if (b < 0) { st = SAL_ERR_NOMEM; break; }
        outp[j] = s->pool[b].p;
        oshp[j] = &outs[j];
        s->v[v].buf = b;
        s->v[v].shape = outs[j];
        if (j > 0) s->v[v].state = V_WHOLE;
    }
    if (!st && s->scratch >= 0 && s->pool[s->scratch].cap < scratch + 16) {
        s->pool[s->scratch].used = 0;
        s->scratch = -1;
    }
    if (!st && s->scratch < 0) {
        s->scratch = pool_get(s, scratch + 16, 1 << 30, err);
        if (s->scratch < 0) st = SAL_ERR_NOMEM;
    }
    if (!st) {
        sal_op_call c;
        memset(&c, 0, sizeof c);
        c.node = rn;
        c.params = params;
        c.n_in = n->n_in;
        c.n_out = n->n_out;
        c.in = in;
        c.in_shape = ishp;
        c.out = outp;
        c.out_shape = oshp;
        c.scratch = s->pool[s->scratch].p;
        c.threads = s->b->threads;
        st = s->b->ops->forward(s->b, &c, err);
    }
    if (!st && n->op == SAL_OP_CONV) {
        const sal_conv_params *p = params, *bp = bparams;
        s->flops_ran += 2.0 * p->n * p->m * p->oh * p->ow * (double)(p->c / p->group) * p->kh * p->kw;
        s->flops_full += 2.0 * nb * bp->m * bp->oh * bp->ow * (double)(bp->c / bp->group) * bp->kh * bp->kw;
    } else if (!st && n->op == SAL_OP_GEMM) {
        const sal_gemm_params *p = params;
        s->flops_ran += 2.0 * p->m * p->n * (double)p->k;
        s->flops_full += 2.0 * p->m * p->n * (double)p->k;
    } else if (!st && n->op == SAL_OP_MATMUL) {
        const sal_matmul_params *p = params;
        s->flops_ran += 2.0 * p->batch * p->m * p->n * (double)p->k;
        s->flops_full += 2.0 * p->batch * p->m * p->n * (double)p->k;
    }
    free(params);
    for (int i = 0; i < n->n_in; i++)
        if (tmp[i] >= 0) s->pool[tmp[i]].used = 0;
    return st;
}

/* ------------------------------------------------------------------------------------------------ */
/* A batch of variants                                                                              */

sal_status sal_inc_forward(sal_inc *s, int nb, const int *rects, const float *repl, float *out,
                           sal_error *err) {
    const sal_graph *g = s->g;
    if (nb < 1) return sal_fail(err, SAL_ERR_INVALID_ARG, "incremental inference: no variants");
    if (!s->stamp) return sal_fail(err, SAL_ERR_INVALID_ARG, "incremental inference: no base pass");
    sal_status st = sal_engine_plan(s->e, &s->in_shape, SAL_PLAN_KEEP, -1, err);
    if (st) return st;
    if (sal_engine_run_stamp(s->e) != s->stamp)
        return sal_fail(err, SAL_ERR_INTERNAL, "incremental inference: the base pass's activations were "
                        "replaced (the engine ran something else since sal_inc_base)");
    int ns = sal_engine_n_steps(s->e);
    if (nb > s->cap_nb) {   /* room for this batch size */
        free(s->org);
        free(s->rect);
        s->org = malloc(sizeof(int) * 2 * (size_t)nb * (size_t)(g->n_values + 1));
        s->rect = malloc(sizeof(int) * 4 * (size_t)nb);
        if (!s->org || !s->rect) { s->cap_nb = 0; return sal_fail(err, SAL_ERR_NOMEM, "out of memory"); }
        s->cap_nb = nb;
    }
    for (int v = 0; v < g->n_values; v++) {
        s->v[v].state = V_BASE;
        s->v[v].buf = -1;
        s->goff[v] = -1;
        s->same[v] = v;
    }

    /* the input: each variant's rectangle, clipped; its patch */
    int vin = g->inputs[0];
    int C = (int)s->in_shape.d[1], H = (int)s->in_shape.d[2], W = (int)s->in_shape.d[3];
    for (int k = 0; k < nb; k++) {
        const int *r = rects + 4 * k;
        int *c = s->rect + 4 * k;
        c[0] = r[0] < 0 ? 0 : r[0] > H ? H : r[0];
        c[1] = r[1] < 0 ? 0 : r[1] > W ? W : r[1];
        c[2] = r[2] < 0 ? 0 : r[2] > H ? H : r[2];
        c[3] = r[3] < 0 ? 0 : r[3] > W ? W : r[3];
    }
    size_t need = 4 * (size_t)nb;
    if (need > s->cap_geo) {
        int *h = realloc(s->hgeo, sizeof(int) * need);
        if (!h) return sal_fail(err, SAL_ERR_NOMEM, "out of memory");
        s->hgeo = h;
    }
    memcpy(s->hgeo, s->rect, sizeof(int) * 4 * (size_t)nb);   /* (before decide reuses s->rect) */
    decide(s, vin, nb, &s->in_shape);

    /* every layer's region: host only, before anything runs */
    for (int t = 0; t < ns; t++) plan_step(s, t, nb);

    /* the batch's geometry, one upload: the rectangles, then each patch value's origins */
    size_t used = 4 * (size_t)nb;
    for (int v = 0; v < g->n_values; v++)   /* (an alias's root comes first: it is made earlier) */
        if (s->v[v].state == V_PATCH && s->same[v] == v) { s->goff[v] = (int64_t)used; used += 2 * (size_t)nb; }
    for (int v = 0; v < g->n_values; v++)
        if (s->v[v].state == V_PATCH && s->same[v] != v) s->goff[v] = s->goff[s->same[v]];
    if (used > s->cap_geo) {
        int *h = realloc(s->hgeo, sizeof(int) * used);
        if (!h) return sal_fail(err, SAL_ERR_NOMEM, "out of memory");
        s->hgeo = h;
        if (s->dgeo) s->b->ops->release(s->b, s->dgeo);
        s->dgeo = s->b->ops->alloc(s->b, sizeof(int) * used);
        if (!s->dgeo) { s->cap_geo = 0; return sal_fail(err, SAL_ERR_NOMEM, "out of %s memory", s->b->ops->name); }
        s->cap_geo = used;
    }
    for (int v = 0; v < g->n_values; v++)
        if (s->goff[v] >= 0 && s->same[v] == v)
            memcpy(s->hgeo + s->goff[v], s->org + (int64_t)v * s->cap_nb * 2, sizeof(int) * 2 * (size_t)nb);
    st = sal_backend_upload(s->b, s->dgeo, s->hgeo, sizeof(int) * used, err);

    /* the input's patch (or all of it): the base with each variant's rectangle from repl */
    ival *iv = &s->v[vin];
    if (!st && iv->state != V_BASE) {
        int whole = iv->state == V_WHOLE;
        int th = whole ? H : iv->ph, tw = whole ? W : iv->pw;
        iv->shape = s->in_shape;
        iv->shape.d[0] = nb;
        iv->buf = pool_get(s, (size_t)nb * C * th * tw, s->last[vin], err);
        if (iv->buf < 0) st = SAL_ERR_NOMEM;
        sal_mp_args a;
        memset(&a, 0, sizeof a);
        a.x = sal_engine_data_dev(s->e, vin);
        a.b = repl;
        a.geo = s->dgeo;
        a.geo2 = whole ? NULL : s->dgeo + s->goff[vin];
        a.gsy = a.gsx = 1;
        a.c = C; a.h = H; a.w = W;
        a.th = th; a.tw = tw;
        a.nb = nb;
        a.mode = 1;
        if (!st) {
            a.out = s->pool[iv->buf].p;
            st = s->b->ops->prim(s->b, SAL_MP_patch_rows, (int64_t)nb * C * th, &a, err);
        }
    }

    /* the layers */
    for (int t = 0; !st && t < ns; t++) {
        st = exec_step(s, t, nb, err);
        pool_expire(s, t);
    }

    /* output 0 of every variant */
    int vo = g->outputs[0];
    if (!st) {
        const float *d;
        sal_shape ws;
        int tmp;
        st = whole_input(s, vo, nb, ns, &d, &ws, &tmp, err);
        if (!st) st = sal_backend_download(s->b, out, d, sizeof(float) * (size_t)sal_shape_numel(&ws), err);
    }
    pool_expire(s, 1 << 30);
    for (int v = 0; v < g->n_values; v++) s->v[v].buf = -1;
    return st;
}

void sal_inc_flops(const sal_inc *s, double *ran, double *full) {
    *ran = s->flops_ran;
    *full = s->flops_full;
}
