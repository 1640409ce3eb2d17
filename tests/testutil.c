/* testutil.c — shared test helpers: random numbers, one-node graphs, single-op gradient check. */
#include "testutil.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------------------------------------ */
/* Comparisons and sessions                                                                         */

double tu_rel_diff(const float *a, const float *ref, int64_t n, double floor) {
    double d = 0, m = 0;
    for (int64_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - (double)ref[i]);
        if (!(e <= d)) d = e;   /* NaN propagates as the worst */
        if (fabs((double)ref[i]) > m) m = fabs((double)ref[i]);
    }
    return d / (m > floor ? m : floor);
}

static double tu_rel_diff_1e6(const float *a, const float *ref, int64_t n) { return tu_rel_diff(a, ref, n, 1e-6); }

sal_status tu_open(const char *rel, sal_device dev, sal_model **m, sal_session **s, sal_error *err) {
    char path[1024];
    *m = NULL;
    *s = NULL;
    sal_status st = sal_model_load(tu_src_path(rel, path, sizeof path), m, err);
    if (st) return st;
    sal_session_opts o = sal_session_opts_default();
    o.device = dev;
    st = sal_session_create(*m, &o, s, err);
    if (st) { sal_model_free(*m); *m = NULL; }
    return st;
}

/* ------------------------------------------------------------------------------------------------ */
/* Random numbers                                                                                   */

uint64_t tu_next(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

float tu_uniform(uint64_t *s, float lo, float hi) {
    return lo + (hi - lo) * (float)((tu_next(s) >> 40) * (1.0 / 16777216.0));
}

void tu_fill(float *x, int64_t n, uint64_t *s, float lo, float hi) {
    for (int64_t i = 0; i < n; i++) x[i] = tu_uniform(s, lo, hi);
}

float *tu_rand_buf(int64_t n, uint64_t *state, float lo, float hi) {
    float *p = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
    if (p) tu_fill(p, n, state, lo, hi);
    return p;
}

uint64_t tu_fresh_seed(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t s = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^ ((uint64_t)getpid() << 40);
    return tu_next(&s);
}

const char *tu_src_path(const char *rel, char *buf, int len) {
    /* SAL_SOURCE_DIR in the environment: the tests run from a copied tree (scripts/gpu-check) */
    const char *root = getenv("SAL_SOURCE_DIR");
    snprintf(buf, (size_t)len, "%s/%s", root && *root ? root : SAL_SOURCE_DIR, rel);
    return buf;
}

/* ------------------------------------------------------------------------------------------------ */
/* One-node graphs                                                                                  */

sal_shape tu_shape(int ndim, ...) {
    sal_shape s;
    memset(&s, 0, sizeof s);
    s.ndim = ndim;
    va_list ap;
    va_start(ap, ndim);
    for (int i = 0; i < ndim; i++) s.d[i] = va_arg(ap, int);
    va_end(ap);
    return s;
}

tu_input tu_rt(sal_shape s) { tu_input t = {s, NULL, NULL}; return t; }
tu_input tu_cf(sal_shape s, const float *v) { tu_input t = {s, v, NULL}; return t; }
tu_input tu_ci(sal_shape s, const int64_t *v) { tu_input t = {s, NULL, v}; return t; }
tu_input tu_absent(void) { tu_input t; memset(&t, 0, sizeof t); t.shape.ndim = -1; return t; }

sal_graph *tu_node_graph(const char *op_type, int n_in, const tu_input *ins, int n_out) {
    sal_graph *g = sal_graph_new("");
    if (!g) return NULL;
    char names[16][8], outs[8][8];
    const char *in_names[16], *out_names[8];
    for (int i = 0; i < n_in && i < 16; i++) {
        snprintf(names[i], sizeof names[i], "x%d", i);
        in_names[i] = ins[i].shape.ndim < 0 ? "" : names[i];
        if (ins[i].shape.ndim < 0) continue;
        if (ins[i].f32 || ins[i].i64) {
            sal_tensor *t = sal_tensor_new(ins[i].f32 ? SAL_F32 : SAL_I64, &ins[i].shape);
            int64_t n = sal_shape_numel(&ins[i].shape);
            if (t && n) memcpy(t->data, ins[i].f32 ? (const void *)ins[i].f32 : (const void *)ins[i].i64,
                               (size_t)n * sal_dtype_size(t->dtype));
            sal_graph_add_const(g, names[i], t);
        } else {
            sal_graph_add_input(g, names[i], &ins[i].shape);
        }
    }
    for (int i = 0; i < n_out && i < 8; i++) {
        snprintf(outs[i], sizeof outs[i], "y%d", i);
        out_names[i] = outs[i];
    }
    int k = sal_graph_add_node(g, op_type, "node0", n_in, in_names, n_out, out_names);
    if (k < 0) { sal_graph_free(g); return NULL; }
    const sal_op_def *def = sal_op_lookup(op_type);
    g->nodes[k].op = def ? (int)def->kind : -1;
    for (int i = 0; i < n_out; i++) sal_graph_mark_output(g, out_names[i]);
    return g;
}

/* Everything a single-node run needs. */
typedef struct node_run {
    sal_graph *g;
    const sal_node *node;
    sal_shape in_shape[16], out_shape[8];
    const sal_shape *in_shape_p[16];
    const sal_shape *out_shape_p[8];
    int in_dtype[16], out_dtype[8];
    const sal_tensor *in_const[16];
    float *in[16], *out[8], *gin[16];
    const float *in_c[16], *gout_c[8];
    void *params;
    float *scratch;
    int runtime[16];     /* input i is a random runtime input */
} node_run;

static void node_run_free(node_run *r) {
    for (int i = 0; i < 16; i++) { free(r->gin[i]); if (r->runtime[i]) free(r->in[i]); }
    for (int i = 0; i < 8; i++) free(r->out[i]);
    free(r->params);
    free(r->scratch);
}

static sal_status node_run_setup(node_run *r, sal_graph *g, sal_error *err) {
    memset(r, 0, sizeof *r);
    r->g = g;
    r->node = &g->nodes[0];
    const sal_node *n = r->node;
    const sal_op_def *def = sal_op_lookup(n->op_type);
    if (!def || !def->infer)
        return sal_fail(err, SAL_ERR_UNSUPPORTED, "op %s unsupported", n->op_type);
    for (int i = 0; i < n->n_in; i++) {
        int v = n->in[i];
        if (v < 0) { r->in_shape_p[i] = NULL; r->in_dtype[i] = 0; continue; }
        const sal_value *val = &g->values[v];
        if (val->konst) {
            r->in_shape[i] = val->konst->shape;
            r->in_dtype[i] = val->konst->dtype;
            r->in_const[i] = val->konst;
            r->in[i] = val->konst->dtype == SAL_F32 ? (float *)val->konst->data : NULL;
        } else {
            r->in_shape[i] = val->decl;
            r->in_dtype[i] = SAL_F32;
            r->runtime[i] = 1;
            r->in[i] = calloc((size_t)sal_shape_numel(&val->decl) + 1, sizeof(float));
        }
        r->in_shape_p[i] = &r->in_shape[i];
    }
    sal_op_ctx ctx = {0};
    ctx.g = g;
    ctx.node = n;
    ctx.n_in = n->n_in;
    ctx.in_shape = r->in_shape_p;
    ctx.in_dtype = r->in_dtype;
    ctx.in_const = r->in_const;
    ctx.n_out = n->n_out;
    ctx.out_shape = r->out_shape;
    ctx.out_dtype = r->out_dtype;
    ctx.err = err;
    for (int i = 0; i < n->n_out; i++) r->out_dtype[i] = SAL_F32;
    sal_status st = def->infer(&ctx);
    r->params = ctx.params;
    if (st) return st;
    r->scratch = calloc(ctx.scratch_floats + 1, sizeof(float));
    for (int i = 0; i < n->n_out; i++) {
        r->out[i] = calloc((size_t)sal_shape_numel(&r->out_shape[i]) + 1, sizeof(float));
        r->out_shape_p[i] = &r->out_shape[i];
    }
    for (int i = 0; i < n->n_in; i++) r->in_c[i] = r->in[i];
    return SAL_OK;
}

static sal_op_call node_call(node_run *r) {
    sal_op_call c = {0};
    c.node = r->node;
    c.params = r->params;
    c.n_in = r->node->n_in;
    c.n_out = r->node->n_out;
    c.in = r->in_c;
    c.in_shape = r->in_shape_p;
    c.out = r->out;
    c.out_shape = r->out_shape_p;
    c.gout = r->gout_c;
    c.gin = r->gin;
    c.scratch = r->scratch;
    c.threads = 2;
    return c;
}

static sal_status run_fwd(node_run *r, sal_error *err) {
    const sal_op_def *def = sal_op_lookup(r->node->op_type);
    sal_op_call c = node_call(r);
    if (def->flags & SAL_OPF_ALIAS) {   /* the engine aliases these: a copy is the same thing */
        memcpy(r->out[0], r->in[0], sizeof(float) * (size_t)sal_shape_numel(&r->out_shape[0]));
        return SAL_OK;
    }
    return sal_cpu_forward(&c, err);
}

sal_status tu_forward(sal_graph *g, const float *const *runtime_inputs, float **out,
                      sal_shape *out_shape, sal_error *err) {
    node_run r;
    sal_status st = node_run_setup(&r, g, err);
    if (st) { node_run_free(&r); return st; }
    int k = 0;
    for (int i = 0; i < r.node->n_in; i++)
        if (r.runtime[i])
            memcpy(r.in[i], runtime_inputs[k++], sizeof(float) * (size_t)sal_shape_numel(&r.in_shape[i]));
    st = run_fwd(&r, err);
    if (!st) {
        *out_shape = r.out_shape[0];
        *out = r.out[0];
        r.out[0] = NULL;
    }
    node_run_free(&r);
    return st;
}

/* ------------------------------------------------------------------------------------------------ */
/* Gradient check                                                                                   */

static double weighted_sum(const node_run *r, const float *w) {
    double s = 0;
    int64_t n = sal_shape_numel(&r->out_shape[0]);
    for (int64_t i = 0; i < n; i++) s += (double)w[i] * (double)r->out[0][i];
    return s;
}

tu_grad_result tu_grad_check(sal_graph *g, uint64_t seed, float lo, float hi, float eps,
                             int64_t max_elems) {
    tu_grad_result res = {0};
    sal_error err = {0};
    node_run r;
    uint64_t s = seed;
    res.st = node_run_setup(&r, g, &err);
    if (res.st) goto done;
    res.out_shape = r.out_shape[0];
    for (int i = 0; i < r.node->n_in; i++)
        if (r.runtime[i]) tu_fill(r.in[i], sal_shape_numel(&r.in_shape[i]), &s, lo, hi);
    res.st = run_fwd(&r, &err);
    if (res.st) goto done;

    int64_t nout = sal_shape_numel(&r.out_shape[0]);
    float *w = malloc(sizeof(float) * (size_t)(nout + 1));
    tu_fill(w, nout, &s, -1.f, 1.f);
    r.gout_c[0] = w;
    for (int i = 0; i < r.node->n_in; i++)
        if (r.runtime[i]) r.gin[i] = calloc((size_t)sal_shape_numel(&r.in_shape[i]) + 1, sizeof(float));
    const sal_op_def *def = sal_op_lookup(r.node->op_type);
    if (def->flags & SAL_OPF_ALIAS) {
        for (int64_t j = 0; j < nout; j++) r.gin[0][j] += w[j];
    } else {
        sal_op_call c = node_call(&r);
        res.st = sal_cpu_backward(&c, &err);
        if (res.st) { free(w); goto done; }
    }

    /* numeric gradients */
    double max_fd = 0, max_diff = 0;
    for (int i = 0; i < r.node->n_in; i++) {
        if (!r.runtime[i]) continue;
        int64_t n = sal_shape_numel(&r.in_shape[i]);
        int64_t step = n > max_elems ? n / max_elems : 1;
        for (int64_t j = 0; j < n; j += step) {
            float x0 = r.in[i][j];
            r.in[i][j] = x0 + eps;
            run_fwd(&r, &err);
            double lp = weighted_sum(&r, w);
            r.in[i][j] = x0 - eps;
            run_fwd(&r, &err);
            double lm = weighted_sum(&r, w);
            r.in[i][j] = x0;
            /* the perturbed values are rounded to float: use the actual step taken */
            double h = (double)(x0 + eps) - (double)(x0 - eps);
            double fd = (lp - lm) / h;
            double d = fabs(fd - (double)r.gin[i][j]);
            if (fabs(fd) > max_fd) max_fd = fabs(fd);
            if (d > max_diff) max_diff = d;
            res.checked++;
        }
    }
    res.max_err = max_diff / (max_fd > 1e-3 ? max_fd : 1e-3);
    free(w);
done:
    snprintf(res.msg, sizeof res.msg, "%s", err.msg);
    node_run_free(&r);
    return res;
}

/* ------------------------------------------------------------------------------------------------ */
/* Twin check: the CUDA backend's element functions, run on the host, against the CPU kernels      */

#include "twin_all.h"


tu_twin_result tu_twin_check(sal_graph *g, uint64_t seed, float lo, float hi, int guided) {
    tu_twin_result res = {0};
    sal_error err = {0};
    node_run r;
    uint64_t s = seed;
    float *ref_out[8] = {0}, *ref_gin[16] = {0}, *gin0[16] = {0}, *w = NULL;
    res.st = node_run_setup(&r, g, &err);
    if (res.st) goto done;
    for (int i = 0; i < r.node->n_in; i++)
        if (r.runtime[i]) tu_fill(r.in[i], sal_shape_numel(&r.in_shape[i]), &s, lo, hi);
    sal_op_call c = node_call(&r);
    c.guided = guided;
    res.st = sal_cpu_forward(&c, &err);
    if (res.st) goto done;
    /* forward: every float output, the twin writing over a NaN-filled buffer */
    for (int o = 0; o < r.node->n_out; o++) {
        int64_t n = sal_shape_numel(&r.out_shape[o]);
        ref_out[o] = malloc(sizeof(float) * (size_t)(n + 1));
        memcpy(ref_out[o], r.out[o], sizeof(float) * (size_t)n);
        for (int64_t j = 0; j < n; j++) r.out[o][j] = NAN;
    }
    res.st = sal_twin_run(&c, 0, &err);
    if (res.st) goto done;
    for (int o = 0; o < r.node->n_out; o++) {
        int64_t n = sal_shape_numel(&r.out_shape[o]);
        if (r.out_dtype[o] != SAL_F32) { memcpy(r.out[o], ref_out[o], sizeof(float) * (size_t)n); continue; }
        double e = tu_rel_diff_1e6(r.out[o], ref_out[o], n);
        if (!(e <= res.fwd_err)) res.fwd_err = e;
        res.n_checked += n;
        memcpy(r.out[o], ref_out[o], sizeof(float) * (size_t)n);   /* backward sees the CPU's y */
    }
    /* backward: random seed on output 0, gradients ADDED onto random starting values */
    int64_t nout = sal_shape_numel(&r.out_shape[0]);
    w = malloc(sizeof(float) * (size_t)(nout + 1));
    tu_fill(w, nout, &s, -1.f, 1.f);
    r.gout_c[0] = w;
    for (int i = 0; i < r.node->n_in; i++) {
        if (!r.runtime[i]) continue;
        int64_t n = sal_shape_numel(&r.in_shape[i]);
        r.gin[i] = malloc(sizeof(float) * (size_t)(n + 1));
        gin0[i] = malloc(sizeof(float) * (size_t)(n + 1));
        ref_gin[i] = malloc(sizeof(float) * (size_t)(n + 1));
        tu_fill(gin0[i], n, &s, -0.5f, 0.5f);
        memcpy(r.gin[i], gin0[i], sizeof(float) * (size_t)n);
    }
    c = node_call(&r);
    c.guided = guided;
    res.st = sal_cpu_backward(&c, &err);
    if (res.st) goto done;
    for (int i = 0; i < r.node->n_in; i++) {
        if (!r.runtime[i]) continue;
        int64_t n = sal_shape_numel(&r.in_shape[i]);
        memcpy(ref_gin[i], r.gin[i], sizeof(float) * (size_t)n);
        memcpy(r.gin[i], gin0[i], sizeof(float) * (size_t)n);
    }
    res.st = sal_twin_run(&c, 1, &err);
    if (res.st) goto done;
    for (int i = 0; i < r.node->n_in; i++) {
        if (!r.runtime[i]) continue;
        int64_t n = sal_shape_numel(&r.in_shape[i]);
        double e = tu_rel_diff_1e6(r.gin[i], ref_gin[i], n);
        if (!(e <= res.bwd_err)) res.bwd_err = e;
        res.n_checked += n;
    }
done:
    snprintf(res.msg, sizeof res.msg, "%s", err.msg);
    for (int o = 0; o < 8; o++) free(ref_out[o]);
    for (int i = 0; i < 16; i++) { free(ref_gin[i]); free(gin0[i]); }
    free(w);
    node_run_free(&r);
    return res;
}

/* ------------------------------------------------------------------------------------------------ */
/* Graphs of one op, with their opset                                                               */

sal_graph *tu_op_graph(const char *op_type, int n_in, const tu_input *ins, int n_out, int opset) {
    sal_graph *g = tu_node_graph(op_type, n_in, ins, n_out);
    if (g) g->opset = opset;
    return g;
}

const char *const tu_pad_modes[3] = {"constant", "edge", "reflect"};

sal_graph *tu_pad_graph(sal_shape xs, const int64_t *pads, int mode, float value, int form) {
    const int r = xs.ndim;
    int64_t sel[2 * SAL_MAX_DIMS], axes[SAL_MAX_DIMS];
    int na = 0;
    for (int d = 0; d < r; d++)
        if (form < 2 || pads[d] || pads[d + r]) axes[na++] = d - (form == 2 && d % 2 ? r : 0);
    for (int i = 0; i < na; i++) {
        int d = (int)(axes[i] < 0 ? axes[i] + r : axes[i]);
        sel[i] = pads[d];
        sel[i + na] = pads[d + r];
    }
    sal_graph *g;
    if (form == 0) {
        tu_input in[1] = {tu_rt(xs)};
        g = tu_op_graph("Pad", 1, in, 1, 6);
        if (g) sal_node_attr_ints(&g->nodes[0], "pads", 2 * r, pads);
        if (g && mode == 0) sal_node_attr_float(&g->nodes[0], "value", value);
    } else {
        tu_input in[4] = {tu_rt(xs), tu_ci(tu_shape(1, 2 * na), sel), tu_cf(tu_shape(0), &value),
                          tu_ci(tu_shape(1, na), axes)};
        g = tu_op_graph("Pad", form == 2 ? 4 : 3, in, 1, form == 2 ? 18 : 13);
    }
    if (g) sal_node_attr_str(&g->nodes[0], "mode", tu_pad_modes[mode]);
    return g;
}

sal_explain_opts tu_quick_opts(sal_method m, uint64_t seed) {
    sal_explain_opts o = sal_explain_opts_default(m);
    o.seed = seed;
    o.rise_masks = 40;
    o.kshap_coalitions = 40;
    o.kshap_grid = 4;
    o.nt_samples = 4;
    o.ig_steps = 7;
    o.shap_samples = 5;
    return o;
}

#ifdef SAL_SANITIZED
/* The sanitizer build's defaults (ASAN_OPTIONS still overrides them), the same as scripts/test's:
 * LeakSanitizer reports when a Criterion worker exits, after its result was sent, so only an
 * abort there fails the test; malloc_context_size=2 keeps tests/lsan.supp's Criterion pattern
 * from matching salient's allocations. */
const char *__asan_default_options(void);
const char *__asan_default_options(void) { return "detect_leaks=1:abort_on_error=1:malloc_context_size=2"; }
#endif
