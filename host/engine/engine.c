/* engine.c — plans and runs a graph on a backend: shape inference, plan-time folding, memory
 * planning (one activation arena, one gradient arena, one scratch buffer per plan), forward, and
 * backward to the inputs with optional capture of a set of values (their activations kept, their
 * gradients complete when the backward pass stops early). */
#include "engine.h"

#include <stdlib.h>
#include <string.h>

#include "../model/fold.h"
#include "layout_pass.h"

/* ------------------------------------------------------------------------------------------------ */
/* Plan state                                                                                       */

typedef struct pvalue {
    sal_shape shape;
    int dtype;
    const sal_tensor *konst;  /* constant (graph's or plan-folded), host memory */
    sal_tensor *owned;        /* plan-folded constant owned by the plan */
    float *dconst;            /* device pointer of a float constant */
    sal_tensor *fcopy;        /* float32 copy of a non-float constant a kernel reads (Where's
                                 condition, Pow's exponent), owned by the plan; dconst points at
                                 its data */
    int runtime;              /* computed at run time, float32 */
    int storage;              /* alias root (value index) of its activation */
    int gstorage;             /* alias root of its gradient: storage's, except for the output of an
                                 activation fused into a Conv, whose gradient is its own */
    int64_t off;              /* floats into the activation arena (storage roots only) */
    int64_t goff;             /* floats into the gradient arena, -1: no gradient */
    int first, last;          /* lifetime in steps (storage roots only) */
    int producer_step;        /* step that writes it, -1 for inputs */
    int nhwc;                 /* held channels-last, (N, H, W, C), with its gradient (layout_pass.c) */
} pvalue;

typedef struct pnode {
    int node;
    void *params;
    int alias;     /* output 0 is input 0's memory: no forward kernel runs */
    int fused;     /* an alias that is a Relu/Clip fused into the Conv before it: its backward runs
                      (on the Conv's output, which holds the activation's; see plan_node) */
    double flops;  /* multiply-adds x 2 of a Conv/Gemm/MatMul (its backward-data costs the same) */
    unsigned gset; /* backward: bit i set, this step's contribution is the first to input i's
                      gradient, which it writes instead of adding to (sal_op_call.gin_set) */
    unsigned galias; /* bit i set: input i's gradient is the output's own memory (an Add operand
                        nothing else reads; plan_node): the backward pass passes no gin for it */
} pnode;

/* One plan: everything that depends on the input shapes, the mode and the captured values. */
typedef struct plan {
    int planned, mode;
    int *cap;             /* (n_cap) captured values, ascending, distinct; NULL when none */
    int n_cap;
    sal_shape *key;       /* (n_inputs) */
    pvalue *pv;           /* (n_values) */
    pnode *steps;
    int n_steps;
    float *arena, *garena, *scratch;
    size_t arena_floats, garena_floats, scratch_floats;
    const float **in_ptr;     /* call arrays sized to the widest node */
    const sal_shape **in_shp;
    float **out_ptr, **gin_ptr;
    const float **gout_ptr;
    const sal_shape **out_shp;
    int max_io;
    int n_nhwc;           /* values the layout pass made channels-last */
    int n_fused_add;      /* Relu / Clip steps run inside the Add before them (fuse_add_act) */
    int64_t *gzero;       /* (2 n_gzero) [offset, floats] of the gradient arena that a full backward
                             pass zeroes first: the gradients no step writes first (steps[].gset);
                             NULL on backends without grad_set (they zero the whole arena) */
    int n_gzero;
    unsigned long used;   /* for least-recently-used replacement */
    unsigned long stamp;  /* sal_engine_run_stamp: set by each forward and each (re)plan */
} plan;

/* Methods alternate between a few shapes (one image forward, a batch of path points, the last
 * partial batch): the engine keeps this many plans instead of replanning on every switch. */
#define SAL_PLAN_CACHE 3

struct sal_engine {
    const sal_graph *g;
    sal_backend *b;
    float **wdev;         /* (n_values): device copy of the graph's float constants */
    plan plans[SAL_PLAN_CACHE];
    plan *p;              /* the current plan */
    unsigned long tick;
    unsigned long runs;   /* forward passes and plans so far (run stamps) */
    unsigned long made;   /* plans made (not found among the cached ones) */
    size_t mem_limit;     /* bytes one plan's memory may take, 0 = no limit */
    int *uses;            /* (n_values): how many node inputs read each value */
    double flops;         /* Conv/Gemm/MatMul FLOPs run so far, forward and backward */
};

double sal_engine_flops(const sal_engine *e) { return e->flops; }

/* 2 x multiply-adds of the matrix-type ops (the element-wise rest is not counted). */
static double step_flops(const sal_node *n, const void *params) {
    if (!params) return 0;
    if (n->op == SAL_OP_CONV) {
        const sal_conv_params *p = (const sal_conv_params *)params;
        return 2.0 * p->n * p->m * p->oh * p->ow * (double)(p->c / p->group) * p->kh * p->kw;
    }
    if (n->op == SAL_OP_GEMM) {
        const sal_gemm_params *p = (const sal_gemm_params *)params;
        return 2.0 * p->m * p->n * (double)p->k;
    }
    if (n->op == SAL_OP_MATMUL) {
        const sal_matmul_params *p = (const sal_matmul_params *)params;
        return 2.0 * p->batch * p->m * p->n * (double)p->k;
    }
    return 0;
}

void sal_engine_set_mem_limit(sal_engine *e, size_t bytes) { e->mem_limit = bytes; }

static void plan_clear(sal_engine *e) {   /* clears e->p */
    if (e->p->pv) {
        for (int v = 0; v < e->g->n_values; v++) {
            if (e->p->pv[v].owned || e->p->pv[v].fcopy) {
                if (e->p->pv[v].dconst && !e->b->host_memory) e->b->ops->release(e->b, e->p->pv[v].dconst);
                sal_tensor_free(e->p->pv[v].owned);
                sal_tensor_free(e->p->pv[v].fcopy);
            }
        }
    }
    for (int i = 0; i < e->p->n_steps; i++) free(e->p->steps[i].params);
    free(e->p->steps);
    e->p->steps = NULL;
    e->p->n_steps = 0;
    free(e->p->pv);
    e->p->pv = NULL;
    if (e->p->arena) e->b->ops->release(e->b, e->p->arena);
    if (e->p->garena) e->b->ops->release(e->b, e->p->garena);
    if (e->p->scratch) e->b->ops->release(e->b, e->p->scratch);
    e->p->arena = e->p->garena = e->p->scratch = NULL;
    free(e->p->in_ptr); free(e->p->in_shp); free(e->p->out_ptr); free(e->p->gin_ptr); free(e->p->gout_ptr);
    free(e->p->out_shp);
    e->p->in_ptr = NULL; e->p->in_shp = NULL; e->p->out_ptr = NULL; e->p->gin_ptr = NULL; e->p->gout_ptr = NULL;
    e->p->out_shp = NULL;
    free(e->p->cap);
    e->p->cap = NULL;
    e->p->n_cap = 0;
    e->p->n_nhwc = 0;
    e->p->n_fused_add = 0;
    free(e->p->gzero);
    e->p->gzero = NULL;
    e->p->n_gzero = 0;
    e->p->planned = 0;
}

static int captured(const plan *p, int v) {
    for (int i = 0; i < p->n_cap; i++)
        if (p->cap[i] == v) return 1;
    return 0;
}

/* Clear every cached plan (engine teardown). */
static void plans_clear_all(sal_engine *e) {
    for (int i = 0; i < SAL_PLAN_CACHE; i++) {
        e->p = &e->plans[i];
        plan_clear(e);
        free(e->p->key);
        e->p->key = NULL;
    }
}

sal_status sal_engine_create(const sal_graph *g, sal_backend *b, sal_engine **out, sal_error *err) {
    sal_engine *e = calloc(1, sizeof *e);
    if (!e) return sal_fail(err, SAL_ERR_NOMEM, "out of memory");
    e->g = g;
    e->b = b;
    e->wdev = calloc((size_t)g->n_values + 1, sizeof *e->wdev);
    e->uses = calloc((size_t)g->n_values + 1, sizeof *e->uses);
    e->p = &e->plans[0];
    int keys_ok = 1;
    for (int i = 0; i < SAL_PLAN_CACHE; i++) {
        e->plans[i].key = calloc((size_t)g->n_inputs + 1, sizeof *e->plans[i].key);
        keys_ok &= e->plans[i].key != NULL;
    }
    if (!e->wdev || !e->uses || !keys_ok) { sal_engine_free(e); return sal_fail(err, SAL_ERR_NOMEM, "out of memory"); }
    for (int i = 0; i < g->n_nodes; i++)
        for (int k = 0; k < g->nodes[i].n_in; k++)
            if (g->nodes[i].in[k] >= 0) e->uses[g->nodes[i].in[k]]++;
    for (int v = 0; v < g->n_values; v++) {
        const sal_tensor *t = g->values[v].konst;
        if (!t || t->dtype != SAL_F32) continue;
        if (b->host_memory) { e->wdev[v] = t->data; continue; }
        size_t bytes = (size_t)sal_shape_numel(&t->shape) * sizeof(float);
        e->wdev[v] = b->ops->alloc(b, bytes);
        if (!e->wdev[v]) {
            sal_engine_free(e);
            return sal_fail(err, SAL_ERR_NOMEM, "%s: out of %s memory uploading weights", g->path, b->ops->name);
        }
        sal_error e2 = {0};
        sal_status st = sal_backend_upload(b, e->wdev[v], t->data, bytes, &e2);
        if (st) { sal_engine_free(e); return sal_fail(err, st, "%s: uploading weights: %s", g->path, e2.msg); }
    }
    *out = e;
    return SAL_OK;
}

void sal_engine_free(sal_engine *e) {
    if (!e) return;
    plans_clear_all(e);
    if (e->wdev && !e->b->host_memory)
        for (int v = 0; v < e->g->n_values; v++)
            if (e->wdev[v]) e->b->ops->release(e->b, e->wdev[v]);
    free(e->wdev);
    free(e->uses);
    free(e);
}

static int root(const pvalue *pv, int v) {
    while (pv[v].storage != v) v = pv[v].storage;
    return v;
}

static int groot(const pvalue *pv, int v) {
    while (pv[v].gstorage != v) v = pv[v].gstorage;
    return v;
}

/* The gradient slot of value v: its gradient root, or -1 when it has no gradient. */
static int gslot(const pvalue *pv, int v) {
    if (v < 0 || !pv[v].runtime) return -1;
    int r = groot(pv, v);
    return pv[r].goff < 0 ? -1 : r;
}

/* The gradient slot the backward pass of step p gives input i (-1: none; an aliased operand's
 * is the output's own, which it does not touch). */
static int ginslot(const pvalue *pv, const pnode *p, const sal_node *n, int i) {
    return i < 32 && (p->galias >> i & 1) ? -1 : gslot(pv, n->in[i]);
}

/* First writes (backends with grad_set): walking the steps as a full backward pass does, the
 * first step to contribute to a gradient writes it (pnode.gset) instead of adding to zeros, and
 * only the gradients no step writes first are zeroed before the pass (plan.gzero): the output's
 * is the seed; a gradient read twice by its first step (Add(x, x)) is zeroed, and so is one
 * whose input index is past the mask's 32 bits. On ResNet-50 the zeroing was 3-4% of a pass. */
static sal_status plan_first_writes(sal_engine *e, sal_error *err) {
    const sal_graph *g = e->g;
    pvalue *pv = e->p->pv;
    char *written = calloc((size_t)g->n_values + 1, 1);   /* by gradient root */
    if (!written) return sal_fail(err, SAL_ERR_NOMEM, "out of memory");
    int r0 = gslot(pv, g->outputs[0]);
    if (r0 >= 0) written[r0] = 1;
    for (int s = e->p->n_steps - 1; s >= 0; s--) {
        pnode *p = &e->p->steps[s];
        p->gset = 0;
        if (p->alias && !p->fused) continue;
        const sal_node *n = &g->nodes[p->node];
        int any_out = 0, any_in = 0;   /* the conditions under which sal_engine_backward runs it */
        for (int j = 0; j < n->n_out; j++) any_out |= gslot(pv, n->out[j]) >= 0;
        for (int i = 0; i < n->n_in; i++) any_in |= ginslot(pv, p, n, i) >= 0;
        if (!any_out || !any_in) continue;
        for (int i = 0; i < n->n_in; i++) {
            int r = ginslot(pv, p, n, i), twice = 0;
            if (r < 0 || written[r]) continue;
            for (int k = 0; k < n->n_in; k++) twice |= k != i && ginslot(pv, p, n, k) == r;
            if (!twice && i < 32) p->gset |= 1u << i;
        }
        for (int i = 0; i < n->n_in; i++) {   /* after the loop above: Add(x, x) writes neither */
            int r = ginslot(pv, p, n, i);
            if (r >= 0) written[r] = 1;
        }
    }
    /* what is left, in arena order, runs of adjacent buffers merged */
    for (int s = 0; s < e->p->n_steps; s++) {
        const sal_node *n = &g->nodes[e->p->steps[s].node];
        for (int i = 0; i < n->n_in && i < 32; i++)
            if (e->p->steps[s].gset >> i & 1) written[gslot(pv, n->in[i])] = 2;
    }
    int nz = 0;
    for (int v = 0; v < g->n_values; v++) nz += pv[v].goff >= 0 && gslot(pv, v) == v && written[v] != 2 && v != r0;
    e->p->gzero = malloc(sizeof(int64_t) * 2 * (size_t)(nz + 1));
    if (!e->p->gzero) { free(written); return sal_fail(err, SAL_ERR_NOMEM, "out of memory"); }
    int64_t *z = e->p->gzero;
    int k = 0;
    for (int v = 0; v < g->n_values; v++) {   /* by value; sorted by offset below */
        if (pv[v].goff < 0 || gslot(pv, v) != v || written[v] == 2 || v == r0) continue;
        z[2 * k] = pv[v].goff;
        z[2 * k + 1] = (sal_shape_numel(&pv[v].shape) + 15) & ~(int64_t)15;
        k++;
    }
    for (int a = 1; a < k; a++)   /* insertion sort by offset (a few hundred ranges at most) */
        for (int b = a; b > 0 && z[2 * b - 2] > z[2 * b]; b--) {
            int64_t t0 = z[2 * b - 2], t1 = z[2 * b - 1];
            z[2 * b - 2] = z[2 * b]; z[2 * b - 1] = z[2 * b + 1];
            z[2 * b] = t0; z[2 * b + 1] = t1;
        }
    int m = 0;
    for (int a = 0; a < k; a++) {
        if (m > 0 && z[2 * m - 2] + z[2 * m - 1] == z[2 * a]) { z[2 * m - 1] += z[2 * a + 1]; continue; }
        z[2 * m] = z[2 * a];
        z[2 * m + 1] = z[2 * a + 1];
        m++;
    }
    e->p->n_gzero = m;
    free(written);
    return SAL_OK;
}

/* ------------------------------------------------------------------------------------------------ */
/* Planning                                                                                         */

/* Give constant value v, of another type than float32, a float32 copy in the backend's memory
 * (0/1 for bool), for the kernels that read it as floats (Where's condition, Pow's exponent). */
static sal_status const_as_float(sal_engine *e, int v, sal_error *err) {
    pvalue *p = &e->p->pv[v];
    if (!p->konst || p->konst->dtype == SAL_F32 || p->fcopy) return SAL_OK;
    const int64_t n = sal_shape_numel(&p->konst->shape);
    p->fcopy = sal_tensor_new(SAL_F32, &p->konst->shape);
    if (!p->fcopy) return sal_fail(err, SAL_ERR_NOMEM, "out of memory");
    for (int64_t i = 0; i < n; i++) ((float *)p->fcopy->data)[i] = (float)sal_tensor_f64(p->konst, i);
    const size_t bytes = (size_t)n * sizeof(float);
    if (e->b->host_memory) {
        p->dconst = p->fcopy->data;
        return SAL_OK;
    }
    p->dconst = e->b->ops->alloc(e->b, bytes ? bytes : 4);
    if (!p->dconst) return sal_fail(err, SAL_ERR_NOMEM, "out of %s memory", e->b->ops->name);
    return sal_backend_upload(e->b, p->dconst, p->fcopy->data, bytes, err);
}

static sal_status plan_node(sal_engine *e, int ni, sal_error *err) {
    const sal_graph *g = e->g;
    const sal_node *n = &g->nodes[ni];
    pvalue *pv = e->p->pv;
    enum { MAXIO = 64 };
    if (n->n_in > MAXIO || n->n_out > 8)
        return sal_fail(err, SAL_ERR_UNSUPPORTED, "%s: node '%s' has too many inputs or outputs",
                        g->path, n->name);
    const sal_tensor *in_const[MAXIO];
    const sal_shape *in_shape[MAXIO];
    int in_dtype[MAXIO];
    int all_const = 1;
    for (int i = 0; i < n->n_in; i++) {
        int v = n->in[i];
        in_const[i] = v >= 0 ? pv[v].konst : NULL;
        in_shape[i] = v >= 0 ? &pv[v].shape : NULL;
        in_dtype[i] = v >= 0 ? pv[v].dtype : 0;
        if (v >= 0 && !pv[v].konst) all_const = 0;
        if (v >= 0 && !pv[v].konst && !pv[v].runtime)
            return sal_fail(err, SAL_ERR_INTERNAL, "%s: node '%s' input '%s' has no value", g->path,
                            n->name, g->values[v].name);
    }
    const sal_op_def *def = sal_op_def_of((sal_op_kind)n->op);
    /* plan-time folding: constants, and Shape of anything whose shape is now known */
    if ((all_const && n->n_in > 0) || n->op == SAL_OP_SHAPE) {
        sal_tensor *outs[8] = {0};
        sal_status st = sal_fold_node(g, n, in_const, in_shape, outs, err);
        if (st) return sal_fail_prefix(err, st, g->path);
        for (int j = 0; j < n->n_out; j++) {
            int v = n->out[j];
            if (v < 0) { sal_tensor_free(outs[j]); continue; }
            pv[v].owned = outs[j];
            pv[v].konst = outs[j];
            pv[v].shape = outs[j]->shape;
            pv[v].dtype = outs[j]->dtype;
            if (outs[j]->dtype == SAL_F32) {
                size_t bytes = (size_t)sal_shape_numel(&outs[j]->shape) * sizeof(float);
                if (e->b->host_memory) pv[v].dconst = outs[j]->data;
                else {
                    pv[v].dconst = e->b->ops->alloc(e->b, bytes ? bytes : 4);
                    if (!pv[v].dconst) return sal_fail(err, SAL_ERR_NOMEM, "out of device memory");
                    st = sal_backend_upload(e->b, pv[v].dconst, outs[j]->data, bytes, err);
                    if (st) return st;
                }
            }
        }
        return SAL_OK;
    }
    int alias = def && (def->flags & SAL_OPF_ALIAS);
    if (def && (def->flags & SAL_OPF_FOLD_ONLY)) {
        int64_t to = sal_attr_int(n, "to", 0);
        if (n->op == SAL_OP_CAST && (to == SAL_F32 || to == SAL_F64 || to == 10) && in_dtype[0] == SAL_F32)
            alias = 1;   /* float -> float: nothing to do */
        else
            return sal_fail(err, SAL_ERR_UNSUPPORTED, "%s: node '%s' (%s) computes on run-time data; "
                            "salient evaluates %s only on constants and shapes", g->path, n->name,
                            n->op_type, n->op_type);
    }
    for (int i = 0; i < n->n_in; i++)
        if (n->in[i] >= 0 && !pv[n->in[i]].konst && pv[n->in[i]].dtype != SAL_F32)
            return sal_fail(err, SAL_ERR_UNSUPPORTED, "%s: node '%s' (%s): input '%s' is %s at run "
                            "time; salient runs float32 only", g->path, n->name, n->op_type,
                            g->values[n->in[i]].name, sal_dtype_name(pv[n->in[i]].dtype));
    sal_shape out_shape[8];
    memset(out_shape, 0, sizeof out_shape);   /* outputs an op leaves unset are checked below too */
    int out_dtype[8];
    for (int j = 0; j < 8; j++) out_dtype[j] = SAL_F32;
    void *params = NULL;
    size_t scratch = 0;
    if (n->op == SAL_OP_CAST) {
        out_shape[0] = *in_shape[0];
    } else {
        sal_op_ctx ctx = {0};
        ctx.g = g; ctx.node = n; ctx.n_in = n->n_in; ctx.in_shape = in_shape; ctx.in_dtype = in_dtype;
        ctx.in_const = in_const; ctx.n_out = n->n_out; ctx.out_shape = out_shape;
        ctx.out_dtype = out_dtype; ctx.err = err;
        sal_status st = def->infer(&ctx);
        if (st) { free(ctx.params); return sal_fail_prefix(err, st, g->path); }
        params = ctx.params;
        scratch = ctx.scratch_floats;
        /* a Conv's weights may be kept reordered by the backend for the model's life (the CPU's
         * oneDNN cache, keyed by address): only for the model's own constants, never for ones
         * folded by this plan, whose memory goes (and may be reused) when the plan does */
        if (n->op == SAL_OP_CONV && params)
            for (int i = 1; i < n->n_in && i < 3; i++)
                if (n->in[i] >= 0 && pv[n->in[i]].owned) ((sal_conv_params *)params)->const_wb = 0;
        if (!alias && !e->b->ops->supports(e->b, n)) {
            free(params);
            return sal_fail(err, SAL_ERR_UNSUPPORTED, "%s: node '%s': op %s is not supported by the "
                            "%s backend", g->path, n->name, n->op_type, e->b->ops->name);
        }
        const int fin = n->op == SAL_OP_WHERE ? 0 : n->op == SAL_OP_POW ? 1 : -1;
        if (fin >= 0 && fin < n->n_in && n->in[fin] >= 0 && (st = const_as_float(e, n->in[fin], err))) {
            free(params);
            return sal_fail_prefix(err, st, g->path);
        }
    }
    for (int j = 0; j < n->n_out; j++) {
        int v = n->out[j];
        if (v < 0) continue;
        if (sal_shape_numel(&out_shape[j]) < 0) {   /* checked.h: no size computed from a wrapped number */
            char buf[160];
            free(params);
            return sal_fail(err, SAL_ERR_SHAPE, "%s: node '%s' (%s): output '%s' would have shape %s: "
                            "a dimension beyond 2^32 or more than 2^40 elements", g->path, n->name,
                            n->op_type, g->values[v].name, sal_shape_str(&out_shape[j], buf, sizeof buf));
        }
        if (out_dtype[j] != SAL_F32) {
            free(params);
            return sal_fail(err, SAL_ERR_UNSUPPORTED, "%s: node '%s' (%s): output '%s' is %s; salient "
                            "runs float32 only", g->path, n->name, n->op_type, g->values[v].name,
                            sal_dtype_name(out_dtype[j]));
        }
        pv[v].shape = out_shape[j];
        pv[v].dtype = SAL_F32;
        pv[v].runtime = 1;
        pv[v].producer_step = e->p->n_steps;
    }
    /* On a backend that fuses: a Relu or Clip that is the only reader of a Conv's output runs
     * inside that Conv (sal_conv_params.act), its output aliasing the Conv's. In gradient plans
     * too: the activation's backward then reads the Conv's buffer, which holds the activation's
     * output y = clamp(x, lo, hi) instead of x, and its mask is the same from either
     * (lo < x < hi exactly when lo < y < hi; x > 0 exactly when y > 0), while its gradient keeps
     * its own memory (gstorage). Nothing else reads the Conv's output (uses == 1, not a graph
     * output, not a captured value), and Conv's backward-data does not need it. */
    int fused = 0;
    if (!alias && params && (e->b->fuse_conv_act || e->b->fuse_add_act) &&
        (n->op == SAL_OP_RELU || n->op == SAL_OP_CLIP) && n->in[0] >= 0 && n->out[0] >= 0) {
        int xv = n->in[0];
        int ps = pv[xv].runtime ? pv[xv].producer_step : -1;
        if (ps >= 0 && e->uses[xv] == 1 && !g->values[xv].is_output && !captured(e->p, xv) &&
            pv[xv].storage == xv) {
            pnode *cs = &e->p->steps[ps];
            sal_conv_params *cp = (sal_conv_params *)cs->params;
            const sal_node *cn = &g->nodes[cs->node];
            const sal_scalar_params *sp = (const sal_scalar_params *)params;
            if (cn->op == SAL_OP_CONV && e->b->fuse_conv_act && cp && !cp->act && cn->out[0] == xv) {
                cp->act = 1;
                cp->act_lo = sp->lo;
                cp->act_hi = sp->hi;
                alias = fused = 1;
            }
            /* the same after a same-shape Add (a residual block's closing Relu), on a backend
             * whose Add applies it: the Add's backward reads no value, only dL/dy */
            sal_bcast_params *bp = (sal_bcast_params *)cs->params;
            if (cn->op == SAL_OP_ADD && e->b->fuse_add_act && bp && !cs->alias && bp->mode == SAL_BC_SAME &&
                !bp->act && cn->out[0] == xv) {
                bp->act = 1;
                bp->act_lo = sp->lo;
                bp->act_hi = sp->hi;
                alias = fused = 1;
                e->p->n_fused_add++;
            }
        }
    }
    if (alias && n->out[0] >= 0) {
        pv[n->out[0]].storage = root(pv, n->in[0]);
        pv[n->out[0]].gstorage = fused ? n->out[0] : groot(pv, n->in[0]);
    }
    if (scratch > (size_t)SAL_NUMEL_MAX) {
        free(params);
        return sal_fail(err, SAL_ERR_SHAPE, "%s: node '%s' (%s) asks for %zu floats of scratch memory "
                        "(over 2^40)", g->path, n->name, n->op_type, scratch);
    }
    if (scratch > e->p->scratch_floats) e->p->scratch_floats = scratch;
    /* Add, or Sub's first operand, without broadcasting, on a backend with grad_set: an operand
     * that only this node reads, produced by a step and neither an output nor captured, has the
     * output's gradient (dL/da = dL/dy), so it shares the output's gradient memory and the
     * backward pass leaves it alone (pnode.galias): no copy. One operand: the other gets the copy. */
    unsigned galias = 0;
    if (!alias && e->b->grad_set && params && (n->op == SAL_OP_ADD || n->op == SAL_OP_SUB) && n->out[0] >= 0 &&
        ((const sal_bcast_params *)params)->mode == SAL_BC_SAME)
        for (int i = 0; i < (n->op == SAL_OP_SUB ? 1 : n->n_in); i++) {
            int v = n->in[i];
            if (v < 0 || !pv[v].runtime || pv[v].producer_step < 0 || e->uses[v] != 1 || g->values[v].is_output ||
                captured(e->p, v) || pv[v].gstorage != v || sal_shape_numel(&pv[v].shape) != sal_shape_numel(&out_shape[0]))
                continue;
            pv[v].gstorage = n->out[0];
            galias = 1u << i;
            break;
        }
    pnode *p = &e->p->steps[e->p->n_steps++];
    p->node = ni;
    p->params = params;
    p->alias = alias;
    p->fused = fused;
    p->galias = galias;
    p->flops = alias ? 0 : step_flops(n, params);
    if (n->n_in > e->p->max_io) e->p->max_io = n->n_in;
    if (n->n_out > e->p->max_io) e->p->max_io = n->n_out;
    return SAL_OK;
}

/* The layout pass (layout_pass.c) on the current plan: pv[].nhwc and the Convs' nhwc_x / nhwc_y. */
static sal_status layout(sal_engine *e, sal_error *err) {
    const sal_graph *g = e->g;
    plan *p = e->p;
    const int ns = p->n_steps;
    int *node = malloc(sizeof(int) * (size_t)(ns + 1)), *alias = malloc(sizeof(int) * (size_t)(ns + 1));
    void **params = malloc(sizeof(void *) * (size_t)(ns + 1));
    const sal_shape **shape = malloc(sizeof(sal_shape *) * (size_t)(g->n_values + 1));
    char *pinned = calloc((size_t)g->n_values + 1, 1), *nhwc = calloc((size_t)g->n_values + 1, 1);
    int count = -1;
    if (node && alias && params && shape && pinned && nhwc) {
        for (int s = 0; s < ns; s++) {
            node[s] = p->steps[s].node;
            alias[s] = p->steps[s].alias;
            params[s] = p->steps[s].params;
        }
        for (int v = 0; v < g->n_values; v++) {
            shape[v] = p->pv[v].runtime ? &p->pv[v].shape : NULL;
            pinned[v] = (char)(g->values[v].is_output || captured(p, v));
        }
        for (int i = 0; i < g->n_inputs; i++) pinned[g->inputs[i]] = 1;
        sal_layout_view view = {g, e->b, ns, node, params, alias, shape, pinned};
        count = sal_layout_pass(&view, nhwc);
        for (int v = 0; count >= 0 && v < g->n_values; v++) p->pv[v].nhwc = nhwc[v];
        p->n_nhwc = count;
    }
    free(node); free(alias); free(params); free(shape); free(pinned); free(nhwc);
    return count < 0 ? sal_fail(err, SAL_ERR_NOMEM, "out of memory") : SAL_OK;
}

/* Greedy first-fit placement of storage roots by lifetime. */
static int64_t place(pvalue *pv, int n_values, int *order, int count) {
    typedef struct { int64_t off, size; int last; } blk;
    blk *live = malloc(sizeof(blk) * (size_t)(count + 1));
    if (!live) return -1;
    int nlive = 0;
    int64_t top = 0;
    (void)n_values;
    for (int k = 0; k < count; k++) {
        pvalue *p = &pv[order[k]];
        int64_t size = (sal_shape_numel(&p->shape) + 15) & ~(int64_t)15;   /* checked in plan_node */
        if (size == 0) size = 16;
        if (size > SAL_NUMEL_MAX + 16) { free(live); return -1; }
        int w = 0;
        for (int i = 0; i < nlive; i++)   /* expire */
            if (live[i].last >= p->first) live[w++] = live[i];
        nlive = w;
        /* sort live by offset (insertion) and find the first gap */
        for (int i = 1; i < nlive; i++) {
            blk t = live[i];
            int j = i - 1;
            while (j >= 0 && live[j].off > t.off) { live[j + 1] = live[j]; j--; }
            live[j + 1] = t;
        }
        int64_t at = 0;
        for (int i = 0; i < nlive; i++) {
            if (live[i].off - at >= size) break;
            if (live[i].off + live[i].size > at) at = live[i].off + live[i].size;
        }
        if (at > (INT64_C(1) << 62) - size) { free(live); return -1; }   /* the sum cannot wrap */
        p->off = at;
        live[nlive++] = (blk){at, size, p->last};
        if (at + size > top) top = at + size;
    }
    free(live);
    return top;
}

static int cmp_int(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

sal_status sal_engine_plan(sal_engine *e, const sal_shape *in_shapes, int mode, int capture_value,
                           sal_error *err) {
    return sal_engine_plan_set(e, in_shapes, mode, &capture_value, capture_value >= 0, err);
}

sal_status sal_engine_plan_set(sal_engine *e, const sal_shape *in_shapes, int mode, const int *captures,
                               int n_captures, sal_error *err) {
    const sal_graph *g = e->g;
    e->tick++;
    /* the set, ascending and distinct, negative entries dropped */
    int *cset = n_captures > 0 ? malloc(sizeof(int) * (size_t)n_captures) : NULL, n_cap = 0;
    if (n_captures > 0 && !cset) return sal_fail(err, SAL_ERR_NOMEM, "out of memory");
    for (int i = 0; i < n_captures; i++) {
        if (captures[i] >= g->n_values) {
            free(cset);
            return sal_fail(err, SAL_ERR_INVALID_ARG, "%s: capture of value %d: the graph has %d values", g->path,
                            captures[i], g->n_values);
        }
        if (captures[i] >= 0) cset[n_cap++] = captures[i];
    }
    if (n_cap > 1) qsort(cset, (size_t)n_cap, sizeof *cset, cmp_int);
    int nu = 0;
    for (int i = 0; i < n_cap; i++)
        if (!nu || cset[nu - 1] != cset[i]) cset[nu++] = cset[i];
    n_cap = nu;
    if (!n_cap) { free(cset); cset = NULL; }
    for (int k = 0; k < SAL_PLAN_CACHE; k++) {
        plan *c = &e->plans[k];
        if (!c->planned || c->mode != mode || c->n_cap != n_cap) continue;
        int same = !n_cap || !memcmp(c->cap, cset, sizeof(int) * (size_t)n_cap);
        for (int i = 0; i < g->n_inputs; i++) same &= sal_shape_eq(&c->key[i], &in_shapes[i]);
        if (same) { free(cset); e->p = c; c->used = e->tick; return SAL_OK; }
    }
    /* a free slot, else the least recently used plan */
    plan *victim = &e->plans[0];
    for (int k = 0; k < SAL_PLAN_CACHE; k++) {
        plan *c = &e->plans[k];
        if (!c->planned) { victim = c; break; }
        if (c->used < victim->used) victim = c;
    }
    e->p = victim;
    plan_clear(e);
    e->p->cap = cset;   /* owned by the plan from here: plan_clear frees it */
    e->p->n_cap = n_cap;
    e->made++;
    e->p->used = e->tick;
    sal_status st = SAL_OK;
    e->p->pv = calloc((size_t)g->n_values + 1, sizeof *e->p->pv);
    e->p->steps = calloc((size_t)g->n_nodes + 1, sizeof *e->p->steps);
    if (!e->p->pv || !e->p->steps) { plan_clear(e); return sal_fail(err, SAL_ERR_NOMEM, "out of memory"); }
    e->p->scratch_floats = 0;
    e->p->max_io = 1;
    pvalue *pv = e->p->pv;
    for (int v = 0; v < g->n_values; v++) {
        pv[v].storage = pv[v].gstorage = v;
        pv[v].off = pv[v].goff = -1;
        pv[v].producer_step = -1;
        pv[v].first = 1 << 30;
        pv[v].last = -1;
        if (g->values[v].konst) {
            pv[v].konst = g->values[v].konst;
            pv[v].shape = g->values[v].konst->shape;
            pv[v].dtype = g->values[v].konst->dtype;
            pv[v].dconst = e->wdev[v];
        }
    }
    for (int i = 0; i < g->n_inputs; i++) {
        int v = g->inputs[i];
        const sal_value *val = &g->values[v];
        if (val->elem_type && val->elem_type != SAL_F32) {
            plan_clear(e);
            return sal_fail(err, SAL_ERR_UNSUPPORTED, "%s: input '%s' is %s; salient takes float32 inputs",
                            g->path, val->name, sal_dtype_name(val->elem_type));
        }
        const sal_shape *s = &in_shapes[i];
        if (s->ndim != val->decl.ndim) {
            plan_clear(e);
            return sal_fail(err, SAL_ERR_SHAPE, "%s: input '%s' has rank %d, the model expects %d",
                            g->path, val->name, s->ndim, val->decl.ndim);
        }
        for (int d = 0; d < s->ndim; d++) {
            if (s->d[d] == 0) {
                plan_clear(e);
                return sal_fail(err, SAL_ERR_UNSUPPORTED, "%s: input '%s' is empty (a zero-size "
                                "dimension)", g->path, val->name);
            }
            if (s->d[d] < 0 || (d > 0 && val->decl.d[d] > 0 && val->decl.d[d] != s->d[d])) {
                char a[96], b[96];
                plan_clear(e);
                return sal_fail(err, SAL_ERR_SHAPE, "%s: input '%s' has shape %s, the model expects %s",
                                g->path, val->name, sal_shape_str(s, a, sizeof a),
                                sal_shape_str(&val->decl, b, sizeof b));
            }
        }
        pv[v].shape = *s;
        pv[v].dtype = SAL_F32;
        pv[v].runtime = 1;
        e->p->key[i] = *s;
    }
    /* plan_node reads e->p->cap (fusion: not into a captured value) */
    for (int i = 0; i < g->n_nodes && !st; i++) st = plan_node(e, i, err);
    if (st) { plan_clear(e); return st; }
    for (int i = 0; i < n_cap; i++)
        if (!pv[cset[i]].runtime) {
            int cv = cset[i];
            plan_clear(e);
            return sal_fail(err, SAL_ERR_INVALID_ARG, "%s: value '%s' is a constant, not a layer output",
                            g->path, g->values[cv].name);
        }

    /* channels-last activations between the backend's convolutions, where it asks for them; never
     * in KEEP plans (incremental inference reads tiles of (N, C, H, W) activations) */
    if (e->b->layout_nhwc && (mode == SAL_PLAN_FORWARD || mode == SAL_PLAN_GRAD) &&
        (st = layout(e, err))) {
        plan_clear(e);
        return st;
    }

    /* lifetimes of storage roots */
    int end = e->p->n_steps;
    for (int v = 0; v < g->n_values; v++) {
        if (!pv[v].runtime) continue;
        int r = root(pv, v);
        int first = pv[v].producer_step < 0 ? 0 : pv[v].producer_step;
        if (first < pv[r].first) pv[r].first = first;
        if (first > pv[r].last) pv[r].last = first;
        if (g->values[v].is_output || captured(e->p, v) || mode != SAL_PLAN_FORWARD) pv[r].last = end;
    }
    for (int s = 0; s < e->p->n_steps; s++) {
        const sal_node *n = &g->nodes[e->p->steps[s].node];
        for (int i = 0; i < n->n_in; i++)
            if (n->in[i] >= 0 && pv[n->in[i]].runtime) {
                int r = root(pv, n->in[i]);
                if (s > pv[r].last) pv[r].last = s;
            }
    }
    int *order = malloc(sizeof(int) * (size_t)(g->n_values + 1));
    int count = 0;
    if (!order) { plan_clear(e); return sal_fail(err, SAL_ERR_NOMEM, "out of memory"); }
    for (int s = -1; s < e->p->n_steps; s++)     /* storage roots in order of first use */
        for (int v = 0; v < g->n_values; v++)
            if (pv[v].runtime && pv[v].storage == v && pv[v].producer_step == s) order[count++] = v;
    int64_t arena = place(pv, g->n_values, order, count);

    /* gradients: values that reach output 0 */
    int64_t garena = 0;
    if (mode == SAL_PLAN_GRAD) {
        char *need = calloc((size_t)g->n_values + 1, 1);
        if (!need) { free(order); plan_clear(e); return sal_fail(err, SAL_ERR_NOMEM, "out of memory"); }
        need[g->outputs[0]] = 1;
        for (int s = e->p->n_steps - 1; s >= 0; s--) {
            const sal_node *n = &g->nodes[e->p->steps[s].node];
            int any = 0;
            for (int j = 0; j < n->n_out; j++) any |= n->out[j] >= 0 && need[n->out[j]];
            if (!any) continue;
            for (int i = 0; i < n->n_in; i++)
                if (n->in[i] >= 0 && pv[n->in[i]].runtime) need[n->in[i]] = 1;
        }
        char *gneed = calloc((size_t)g->n_values + 1, 1);   /* gradient roots that hold one */
        if (!gneed) { free(need); free(order); plan_clear(e); return sal_fail(err, SAL_ERR_NOMEM, "out of memory"); }
        for (int v = 0; v < g->n_values; v++)
            if (need[v] && pv[v].runtime) gneed[groot(pv, v)] = 1;
        for (int k = 0; k < count; k++) {   /* in the order of the activations' first use */
            int r = order[k];
            for (int v = 0; v < g->n_values; v++) {
                if (!gneed[v] || root(pv, v) != r) continue;
                gneed[v] = 0;
                pv[v].goff = garena;
                garena += (sal_shape_numel(&pv[v].shape) + 15) & ~(int64_t)15;
                if (garena > (INT64_C(1) << 62)) garena = INT64_C(1) << 62;   /* refused below */
            }
        }
        free(gneed);
        free(need);
    }
    free(order);
    if (arena < 0) {
        plan_clear(e);
        return sal_fail(err, SAL_ERR_NOMEM, "%s: this batch's activations would take more than 2^62 "
                        "floats (or memory ran out placing them)", g->path);
    }
    /* The memory cap, checked before anything is allocated: the session's limit, or else all
     * the device has (a plan that asks for terabytes is refused, not attempted). Sums in 64 bits:
     * each term is below 2^62 floats, so none wraps. */
    uint64_t need_floats = (uint64_t)arena + (uint64_t)garena + (uint64_t)e->p->scratch_floats + 48;
    uint64_t need = need_floats > (UINT64_C(1) << 61) ? UINT64_MAX : need_floats * sizeof(float);
    size_t cap = e->mem_limit, avail = 0, total = 0;
    if (!cap && e->b->ops->mem_info && e->b->ops->mem_info(e->b, &avail, &total) == SAL_OK) cap = total;
    if (cap && need > cap) {
        plan_clear(e);
        return sal_fail(err, SAL_ERR_NOMEM, "%s: this batch needs %llu MiB of %s memory, over %s of "
                        "%zu MiB", g->path, (unsigned long long)(need >> 20), e->b->ops->name,
                        e->mem_limit ? "the session's limit" : "the device's total", cap >> 20);
    }
    e->p->arena_floats = (size_t)arena;
    e->p->garena_floats = (size_t)garena;
    for (int attempt = 0; attempt < 2; attempt++) {
        e->p->arena = e->b->ops->alloc(e->b, (e->p->arena_floats + 16) * sizeof(float));
        e->p->garena = e->b->ops->alloc(e->b, (e->p->garena_floats + 16) * sizeof(float));
        e->p->scratch = e->b->ops->alloc(e->b, (e->p->scratch_floats + 16) * sizeof(float));
        if ((e->p->arena && e->p->garena && e->p->scratch) || attempt) break;
        /* out of memory: give back the other cached plans' memory, and try once more */
        plan *cur = e->p;
        for (int k = 0; k < SAL_PLAN_CACHE; k++) {
            if (&e->plans[k] == cur || !e->plans[k].planned) continue;
            e->p = &e->plans[k];
            plan_clear(e);
        }
        e->p = cur;
        if (e->p->arena) e->b->ops->release(e->b, e->p->arena);
        if (e->p->garena) e->b->ops->release(e->b, e->p->garena);
        if (e->p->scratch) e->b->ops->release(e->b, e->p->scratch);
        e->p->arena = e->p->garena = e->p->scratch = NULL;
    }
    size_t mio = (size_t)e->p->max_io + 1;
    e->p->in_ptr = calloc(mio, sizeof *e->p->in_ptr);
    e->p->in_shp = calloc(mio, sizeof *e->p->in_shp);
    e->p->out_ptr = calloc(mio, sizeof *e->p->out_ptr);
    e->p->out_shp = calloc(mio, sizeof *e->p->out_shp);
    e->p->gin_ptr = calloc(mio, sizeof *e->p->gin_ptr);
    e->p->gout_ptr = calloc(mio, sizeof *e->p->gout_ptr);
    if (!e->p->arena || !e->p->garena || !e->p->scratch || !e->p->in_ptr || !e->p->in_shp || !e->p->out_ptr ||
        !e->p->out_shp || !e->p->gin_ptr || !e->p->gout_ptr) {
        size_t mb = (e->p->arena_floats + e->p->garena_floats + e->p->scratch_floats) * 4 >> 20;
        plan_clear(e);
        return sal_fail(err, SAL_ERR_NOMEM, "out of %s memory planning %zu MiB for this batch",
                        e->b->ops->name, mb);
    }
    if (mode == SAL_PLAN_GRAD && e->b->grad_set && (st = plan_first_writes(e, err))) {
        plan_clear(e);
        return st;
    }
    e->p->planned = 1;
    e->p->mode = mode;
    e->p->stamp = ++e->runs;
    return SAL_OK;
}

const sal_shape *sal_engine_shape(const sal_engine *e, int value) {
    if (!e->p->planned || value < 0 || value >= e->g->n_values) return NULL;
    if (!e->p->pv[value].runtime && !e->p->pv[value].konst) return NULL;
    return &e->p->pv[value].shape;
}

unsigned long sal_engine_plans_made(const sal_engine *e) { return e ? e->made : 0; }

size_t sal_engine_plan_bytes(const sal_engine *e) {
    return (e->p->arena_floats + e->p->garena_floats + e->p->scratch_floats) * sizeof(float);
}

/* ------------------------------------------------------------------------------------------------ */
/* Running                                                                                          */

static float *act_ptr(sal_engine *e, int v) {
    if (!e->p->pv[v].runtime) return e->p->pv[v].dconst;
    return e->p->arena + e->p->pv[root(e->p->pv, v)].off;
}

static float *grad_ptr(sal_engine *e, int v) {
    if (!e->p->pv[v].runtime) return NULL;
    int r = groot(e->p->pv, v);
    return e->p->pv[r].goff < 0 ? NULL : e->p->garena + e->p->pv[r].goff;
}

static sal_op_call make_call(sal_engine *e, const pnode *p) {
    const sal_node *n = &e->g->nodes[p->node];
    for (int i = 0; i < n->n_in; i++) {
        int v = n->in[i];
        e->p->in_ptr[i] = v >= 0 ? act_ptr(e, v) : NULL;
        e->p->in_shp[i] = v >= 0 ? &e->p->pv[v].shape : NULL;
    }
    for (int j = 0; j < n->n_out; j++) {
        int v = n->out[j];
        e->p->out_ptr[j] = v >= 0 ? act_ptr(e, v) : NULL;
        e->p->out_shp[j] = v >= 0 ? &e->p->pv[v].shape : NULL;
    }
    sal_op_call c = {0};
    c.node = n;
    c.params = p->params;
    c.n_in = n->n_in;
    c.n_out = n->n_out;
    c.in = e->p->in_ptr;
    c.in_shape = e->p->in_shp;
    c.out = e->p->out_ptr;
    c.out_shape = e->p->out_shp;
    c.gout = e->p->gout_ptr;
    c.gin = e->p->gin_ptr;
    c.scratch = e->p->scratch;
    c.threads = e->b->threads;
    return c;
}

float *sal_engine_input_dev(sal_engine *e, int i) {
    if (!e->p || !e->p->planned || i < 0 || i >= e->g->n_inputs) return NULL;
    return act_ptr(e, e->g->inputs[i]);
}

/* Values held channels-last are the engine's business: no pointer to them leaves it (their
 * readers outside, methods and captures, see (N, C, H, W) values only; sal_engine_read converts). */
const float *sal_engine_value_dev(sal_engine *e, int value) {
    if (!e->p || !e->p->planned || value < 0 || !e->p->pv[value].runtime || e->p->pv[value].nhwc) return NULL;
    return act_ptr(e, value);
}

const float *sal_engine_grad_dev(sal_engine *e, int value) {
    if (!e->p || !e->p->planned || e->p->mode != SAL_PLAN_GRAD || value < 0 || e->p->pv[value].nhwc) return NULL;
    return grad_ptr(e, value);
}

int sal_engine_nhwc(const sal_engine *e, int value) {
    if (!e->p || !e->p->planned || value < 0 || value >= e->g->n_values) return 0;
    return e->p->pv[value].nhwc;
}

int sal_engine_n_nhwc(const sal_engine *e) { return e->p && e->p->planned ? e->p->n_nhwc : 0; }

int sal_engine_n_fused_add(const sal_engine *e) { return e->p && e->p->planned ? e->p->n_fused_add : 0; }

int sal_engine_n_first_writes(const sal_engine *e) {
    int k = 0;
    for (int s = 0; e->p && e->p->planned && e->p->gzero && s < e->p->n_steps; s++)
        for (unsigned m = e->p->steps[s].gset; m; m &= m - 1) k++;
    return k;
}

/* host (N, C, H, W) <- src (N, H, W, C) of shape s (the logical (N, C, H, W) one), downloaded
 * through a temporary copy */
static sal_status read_nhwc(sal_engine *e, const sal_shape *s, const float *src, float *host, sal_error *err) {
    const int64_t N = s->d[0], C = s->d[1], HW = s->d[2] * s->d[3];
    const size_t n = (size_t)(N * C * HW);
    float *t = malloc(n * sizeof(float) + 1);
    if (!t) return sal_fail(err, SAL_ERR_NOMEM, "out of memory");
    sal_status st = sal_backend_download(e->b, t, src, n * sizeof(float), err);
    for (int64_t b = 0; !st && b < N; b++)
        for (int64_t c = 0; c < C; c++)
            for (int64_t i = 0; i < HW; i++) host[(b * C + c) * HW + i] = t[(b * HW + i) * C + c];
    free(t);
    return st;
}

sal_status sal_engine_forward(sal_engine *e, const float *const *inputs, sal_error *err) {
    if (!e->p->planned) return sal_fail(err, SAL_ERR_INVALID_ARG, "engine: forward before plan");
    const sal_graph *g = e->g;
    e->p->stamp = ++e->runs;   /* the activations change from here on, even if a step fails */
    for (int i = 0; inputs && i < g->n_inputs; i++) {
        int v = g->inputs[i];
        sal_error e2 = {0};
        sal_status st = sal_backend_upload(e->b, act_ptr(e, v), inputs[i],
                                          (size_t)sal_shape_numel(&e->p->pv[v].shape) * sizeof(float), &e2);
        if (st) return sal_fail(err, st, "%s: uploading input '%s': %s", g->path, g->values[v].name, e2.msg);
    }
    for (int s = 0; s < e->p->n_steps; s++) {
        const pnode *p = &e->p->steps[s];
        if (p->alias) continue;
        sal_op_call c = make_call(e, p);
        sal_status st = e->b->ops->forward(e->b, &c, err);
        if (st) return st;
        e->flops += p->flops;
    }
    e->p->stamp = ++e->runs;
    return SAL_OK;
}

sal_status sal_engine_read(sal_engine *e, int value, float *host, sal_error *err) {
    if (!e->p->planned || value < 0) return sal_fail(err, SAL_ERR_INVALID_ARG, "engine: nothing planned");
    const pvalue *p = &e->p->pv[value];
    size_t n = (size_t)sal_shape_numel(&p->shape);
    if (!p->runtime) {
        if (!p->konst || p->konst->dtype != SAL_F32)
            return sal_fail(err, SAL_ERR_UNSUPPORTED, "value '%s' is not float32", e->g->values[value].name);
        memcpy(host, p->konst->data, n * sizeof(float));
        return SAL_OK;
    }
    if (p->nhwc) return read_nhwc(e, &p->shape, act_ptr(e, value), host, err);
    return sal_backend_download(e->b, host, act_ptr(e, value), n * sizeof(float), err);
}

sal_status sal_engine_read_grad(sal_engine *e, int value, float *host, sal_error *err) {
    if (!e->p->planned || e->p->mode != SAL_PLAN_GRAD || value < 0)
        return sal_fail(err, SAL_ERR_INVALID_ARG, "engine: no gradient plan");
    size_t n = (size_t)sal_shape_numel(&e->p->pv[value].shape);
    float *gp = grad_ptr(e, value);
    if (!gp) { memset(host, 0, n * sizeof(float)); return SAL_OK; }   /* does not reach the output */
    if (e->p->pv[value].nhwc) return read_nhwc(e, &e->p->pv[value].shape, gp, host, err);
    return sal_backend_download(e->b, host, gp, n * sizeof(float), err);
}

sal_status sal_engine_backward(sal_engine *e, const float *seed, int guided, int stop_at_capture,
                               sal_error *err) {
    if (!e->p->planned || e->p->mode != SAL_PLAN_GRAD)
        return sal_fail(err, SAL_ERR_INVALID_ARG, "engine: backward needs a gradient plan");
    const sal_graph *g = e->g;
    /* stopping early: every step after the earliest captured value's producer runs, so each captured
     * value's gradient has all of its readers' contributions */
    int stop = -1;
    for (int i = 0; stop_at_capture && i < e->p->n_cap; i++) {
        int ps = e->p->pv[e->p->cap[i]].producer_step;
        if (i == 0 || ps < stop) stop = ps;
    }
    /* a full pass writes each gradient first (plan_first_writes) and zeroes only the rest; one
     * that stops early zeroes everything, so that the gradients it never reaches read as zeros */
    const int first_writes = e->p->gzero && stop < 0;
    sal_status st = SAL_OK;
    if (!first_writes) st = e->b->ops->zero(e->b, e->p->garena, e->p->garena_floats * sizeof(float), err);
    for (int k = 0; first_writes && !st && k < e->p->n_gzero; k++)
        st = e->b->ops->zero(e->b, e->p->garena + e->p->gzero[2 * k], (size_t)e->p->gzero[2 * k + 1] * sizeof(float), err);
    if (st) return st;
    int out0 = g->outputs[0];
    float *gseed = grad_ptr(e, out0);
    if (!gseed) return SAL_OK;   /* output does not depend on the input */
    st = sal_backend_upload(e->b, gseed, seed, (size_t)sal_shape_numel(&e->p->pv[out0].shape) * sizeof(float), err);
    if (st) return st;
    for (int s = e->p->n_steps - 1; s > stop; s--) {
        const pnode *p = &e->p->steps[s];
        if (p->alias && !p->fused) continue;
        const sal_node *n = &g->nodes[p->node];
        int any_out = 0, any_in = 0;
        for (int j = 0; j < n->n_out; j++) {
            e->p->gout_ptr[j] = n->out[j] >= 0 ? grad_ptr(e, n->out[j]) : NULL;
            any_out |= e->p->gout_ptr[j] != NULL;
        }
        for (int i = 0; i < n->n_in; i++) {
            e->p->gin_ptr[i] = n->in[i] >= 0 && !(i < 32 && (p->galias >> i & 1)) ? grad_ptr(e, n->in[i]) : NULL;
            any_in |= e->p->gin_ptr[i] != NULL;
        }
        if (!any_out || !any_in) continue;
        sal_op_call c = make_call(e, p);
        c.guided = guided;
        c.gin_set = first_writes ? p->gset : 0;
        st = e->b->ops->backward(e->b, &c, err);
        if (st) return st;
        if (e->p->gin_ptr[0]) e->flops += p->flops;   /* backward-data: the forward's count */
    }
    return SAL_OK;
}

/* ------------------------------------------------------------------------------------------------ */
/* The plan's steps, for incremental inference (incremental.c)                                      */

sal_backend *sal_engine_backend(const sal_engine *e) { return e->b; }
const sal_graph *sal_engine_graph(const sal_engine *e) { return e->g; }

int sal_engine_n_steps(const sal_engine *e) { return e->p && e->p->planned ? e->p->n_steps : 0; }

int sal_engine_step(const sal_engine *e, int s, const void **params, int *alias, int *fused) {
    const pnode *p = &e->p->steps[s];
    *params = p->params;
    *alias = p->alias;
    *fused = p->fused;
    return p->node;
}

const float *sal_engine_data_dev(sal_engine *e, int value) {
    if (!e->p || !e->p->planned || value < 0 || value >= e->g->n_values || e->p->pv[value].nhwc) return NULL;
    return act_ptr(e, value);
}

const sal_tensor *sal_engine_konst(const sal_engine *e, int value) {
    if (!e->p || !e->p->planned || value < 0 || value >= e->g->n_values) return NULL;
    return e->p->pv[value].konst;
}

unsigned long sal_engine_run_stamp(const sal_engine *e) { return e->p && e->p->planned ? e->p->stamp : 0; }
