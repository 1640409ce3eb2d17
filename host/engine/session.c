/* session.c — the public model/session API over the engine: backend choice, planning by
 * (n, h, w), forward, gradient with one-hot or arbitrary seeds, layer capture. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "methods/methods.h"

struct sal_session {
    const sal_model *m;
    sal_backend *b;
    sal_engine *e;
    char note[SAL_ERROR_LEN + 64];
    sal_error err;
    int n, h, w, mode;   /* current plan (n 0: none yet) */
    int *caps, n_caps;   /* its captured values (as given to the engine) */
    size_t mem_limit;
    /* the methods' and post-processing's buffers in the backend's memory, kept for reuse between
     * calls (a GPU's cudaMalloc/cudaFree cost milliseconds and synchronize) */
    struct scratch { void *p; size_t bytes; int used; } scratch[SAL_SCRATCH_MAX];
    int n_scratch;
    /* sal_session_auto_batch's measure for input size ab_h x ab_w (ab_ok): bytes per image and
     * fixed, from plans of batch 1 and 2 made once (planning again on every call evicted the
     * method's own cached plans) */
    int ab_ok, ab_h, ab_w;
    size_t ab_per, ab_fixed;
};

static void scratch_drop_free(sal_session *s);
static int scratch_has_free(const sal_session *s) {
    for (int i = 0; i < s->n_scratch; i++)
        if (!s->scratch[i].used) return 1;
    return 0;
}

/* ------------------------------------------------------------------------------------------------ */
/* Model queries                                                                                    */

int sal_model_num_inputs(const sal_model *m) { return m ? m->g->n_inputs : 0; }
int sal_model_num_outputs(const sal_model *m) { return m ? m->g->n_outputs : 0; }

static void value_info(const sal_graph *g, int v, sal_tensor_info *info) {
    const sal_value *val = &g->values[v];
    info->name = val->name;
    info->ndim = val->decl.ndim;
    for (int i = 0; i < val->decl.ndim; i++) info->dims[i] = val->decl.d[i] > 0 ? val->decl.d[i] : -1;
}

void sal_model_input(const sal_model *m, int i, sal_tensor_info *info) {
    memset(info, 0, sizeof *info);
    if (m && i >= 0 && i < m->g->n_inputs) value_info(m->g, m->g->inputs[i], info);
}

void sal_model_output(const sal_model *m, int i, sal_tensor_info *info) {
    memset(info, 0, sizeof *info);
    if (m && i >= 0 && i < m->g->n_outputs) value_info(m->g, m->g->outputs[i], info);
}

int sal_model_num_layers(const sal_model *m) { return m ? m->g->n_nodes : 0; }

void sal_model_layer(const sal_model *m, int i, sal_layer_info *info) {
    memset(info, 0, sizeof *info);
    if (!m || i < 0 || i >= m->g->n_nodes) return;
    const sal_node *n = &m->g->nodes[i];
    info->name = n->name;
    info->op_type = n->op_type;
    info->output = n->n_out > 0 && n->out[0] >= 0 ? m->g->values[n->out[0]].name : "";
}

const char *sal_model_metadata(const sal_model *m, const char *key) {
    if (!m || !key) return NULL;
    for (int i = 0; i < m->g->n_meta; i++)
        if (strcmp(m->g->meta_keys[i], key) == 0) return m->g->meta_values[i];
    return NULL;
}

void sal_model_fold_stats(const sal_model *m, int *constants_folded, int *batchnorms_folded) {
    if (constants_folded) *constants_folded = m ? m->g->consts_folded : 0;
    if (batchnorms_folded) *batchnorms_folded = m ? m->g->bn_folded : 0;
}

const char *sal_model_input_layout(const sal_model *m) {
    return m && m->g->layout == SAL_LAYOUT_NHWC ? "NHWC" : "NCHW";
}

void sal_model_file_input(const sal_model *m, sal_tensor_info *info) {
    memset(info, 0, sizeof *info);
    if (!m || m->g->n_inputs < 1) return;
    const int v = m->g->layout == SAL_LAYOUT_NHWC ? m->g->file_input : m->g->inputs[0];
    if (v >= 0 && v < m->g->n_values) value_info(m->g, v, info);
}

int sal_model_max_batch(const sal_model *m, const char **why) {
    if (why) *why = m && m->g->max_batch ? m->g->batch_why : "";
    return m ? m->g->max_batch : 0;
}

/* ------------------------------------------------------------------------------------------------ */
/* Sessions                                                                                         */

sal_session_opts sal_session_opts_default(void) {
    sal_session_opts o = {SAL_DEVICE_AUTO, 0, 0};
    return o;
}

sal_grad_opts sal_grad_opts_default(void) {
    sal_grad_opts o = {NULL, NULL, NULL, 1, 0};
    return o;
}

static sal_status sfail(sal_session *s, sal_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static sal_status sfail(sal_session *s, sal_status st, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    sal_vfail(&s->err, st, fmt, ap);
    va_end(ap);
    return st;
}

sal_status sal_session_create(const sal_model *m, const sal_session_opts *o, sal_session **out,
                              sal_error *err) {
    if (!m || !out) return sal_fail(err, SAL_ERR_INVALID_ARG, "sal_session_create: NULL argument");
    *out = NULL;
    sal_session_opts d = sal_session_opts_default();
    if (!o) o = &d;
    sal_backend *b = NULL;
    char note[sizeof ((sal_session *)0)->note] = "";
    if (o->device == SAL_DEVICE_CUDA || o->device == SAL_DEVICE_AUTO) {
        sal_error cerr = {0};
        sal_status st = sal_backend_cuda_built()
                            ? sal_backend_cuda_create(&b, &cerr)
                            : sal_fail(&cerr, SAL_ERR_DEVICE, "this salient was built without the CUDA backend");
        if (st && o->device == SAL_DEVICE_CUDA) return sal_fail(err, st, "--device cuda: %s", cerr.msg);
        if (st && sal_backend_cuda_built()) snprintf(note, sizeof note, "%s; running on the CPU", cerr.msg);
    }
    if (!b) {
        sal_status st = sal_backend_cpu_create(o->threads, &b, err);
        if (st) return st;
    }
    sal_status st = sal_session_create_on(m, b, o, out, err);
    if (!st) snprintf((*out)->note, sizeof (*out)->note, "%s", note);
    return st;
}

sal_status sal_session_create_on(const sal_model *m, sal_backend *b, const sal_session_opts *o,
                                 sal_session **out, sal_error *err) {
    if (!m || !b || !out) {
        if (b) b->ops->destroy(b);
        return sal_fail(err, SAL_ERR_INVALID_ARG, "sal_session_create_on: NULL argument");
    }
    *out = NULL;
    if (m->g->n_inputs < 1) {
        b->ops->destroy(b);
        return sal_fail(err, SAL_ERR_UNSUPPORTED, "%s: the model has no run-time input", m->g->path);
    }
    sal_session_opts d = sal_session_opts_default();
    if (!o) o = &d;
    sal_session *s = calloc(1, sizeof *s);
    if (!s) { b->ops->destroy(b); return sal_fail(err, SAL_ERR_NOMEM, "out of memory"); }
    s->m = m;
    s->b = b;
    s->mem_limit = o->mem_limit;
    sal_status st = sal_engine_create(m->g, b, &s->e, err);
    if (st) {
        sal_session_free(s);
        return st;
    }
    sal_engine_set_mem_limit(s->e, o->mem_limit);
    *out = s;
    return SAL_OK;
}

static void scratch_drop_free(sal_session *s) {
    int k = 0;
    for (int i = 0; i < s->n_scratch; i++) {
        if (s->scratch[i].used) s->scratch[k++] = s->scratch[i];
        else s->b->ops->release(s->b, s->scratch[i].p);
    }
    s->n_scratch = k;
}

void sal_session_free(sal_session *s) {
    if (!s) return;
    for (int i = 0; i < s->n_scratch; i++) s->b->ops->release(s->b, s->scratch[i].p);
    sal_engine_free(s->e);
    if (s->b) s->b->ops->destroy(s->b);
    free(s->caps);
    free(s);
}

const char *sal_session_error(const sal_session *s) { return s ? s->err.msg : ""; }
const char *sal_session_device(const sal_session *s) { return s && s->b ? s->b->ops->name : ""; }
const char *sal_session_device_note(const sal_session *s) { return s ? s->note : ""; }

int sal_session_max_batch(const sal_session *s) { return s ? s->m->g->max_batch : 0; }

static sal_status plan(sal_session *s, int n, int h, int w, int mode, const int *caps, int n_caps) {
    const sal_graph *g = s->m->g;
    if (n <= 0) return sfail(s, SAL_ERR_INVALID_ARG, "batch size must be positive (got %d)", n);
    if (g->max_batch > 0 && n > g->max_batch)   /* the callers split: this is a bug's guard */
        return sfail(s, SAL_ERR_INVALID_ARG, "%s: a batch of %d images, but the model runs %d at a time "
                     "(%s)", g->path, n, g->max_batch, g->batch_why);
    if (g->n_inputs != 1)
        return sfail(s, SAL_ERR_UNSUPPORTED, "%s: the model has %d inputs; salient explains "
                     "single-input image models", g->path, g->n_inputs);
    const sal_value *in = &g->values[g->inputs[0]];
    sal_shape shape = in->decl;
    if (shape.ndim != 4)
        return sfail(s, SAL_ERR_UNSUPPORTED, "%s: input '%s' has rank %d; salient expects an "
                     "image batch (N,C,H,W)", g->path, in->name, shape.ndim);
    if (shape.d[1] <= 0)
        return sfail(s, SAL_ERR_UNSUPPORTED, "%s: input '%s' has a dynamic channel count", g->path, in->name);
    shape.d[0] = n;
    int want[2] = {h, w};
    for (int k = 0; k < 2; k++) {
        int64_t *d = &shape.d[2 + k];
        if (*d <= 0) {
            if (want[k] <= 0)
                return sfail(s, SAL_ERR_INVALID_ARG, "%s: input '%s' has a dynamic %s: give the "
                             "input size (--size HxW)", g->path, in->name, k ? "width" : "height");
            *d = want[k];
        } else if (want[k] > 0 && want[k] != *d) {
            return sfail(s, SAL_ERR_SHAPE, "%s: the model takes %lldx%lld inputs, got %dx%d", g->path,
                         (long long)shape.d[2], (long long)shape.d[3], h, w);
        }
    }
    int same = n_caps == s->n_caps && (!n_caps || !memcmp(caps, s->caps, sizeof(int) * (size_t)n_caps));
    int *keep = NULL;
    if (!same && n_caps > 0) {
        if (!(keep = malloc(sizeof(int) * (size_t)n_caps))) return sfail(s, SAL_ERR_NOMEM, "out of memory");
        memcpy(keep, caps, sizeof(int) * (size_t)n_caps);
    }
    sal_status st = sal_engine_plan_set(s->e, &shape, mode, caps, n_caps, &s->err);
    if (st == SAL_ERR_NOMEM && scratch_has_free(s)) {   /* give the cached buffers back first */
        scratch_drop_free(s);
        st = sal_engine_plan_set(s->e, &shape, mode, caps, n_caps, &s->err);
    }
    if (st) { free(keep); return st; }
    s->n = n;
    s->h = (int)shape.d[2];
    s->w = (int)shape.d[3];
    s->mode = mode;
    if (!same) {
        free(s->caps);
        s->caps = keep;
        s->n_caps = n_caps;
    }
    return SAL_OK;
}

static sal_status plan1(sal_session *s, int n, int h, int w, int mode, int capture) {
    return plan(s, n, h, w, mode, &capture, capture >= 0);
}

sal_status sal_session_auto_batch(sal_session *s, int h, int w, size_t budget, int cap, int *batch,
                                  size_t *bytes_per_image, size_t *bytes_fixed) {
    if (!s || !batch) return SAL_ERR_INVALID_ARG;
    if (cap <= 0) cap = s->b->ops->max_batch > 0 ? s->b->ops->max_batch : 16;
    const int maxb = s->m->g->max_batch;
    if (maxb > 0 && cap > maxb) cap = maxb;
    if (!budget) {
        size_t avail = 0, total = 0;
        if (!s->b->ops->mem_info || s->b->ops->mem_info(s->b, &avail, &total))
            return sfail(s, SAL_ERR_UNSUPPORTED, "the %s backend cannot report its free memory: give "
                         "the internal batch size", s->b->ops->name);
        budget = avail / 2;
        if (s->mem_limit && budget > s->mem_limit) budget = s->mem_limit;
    }
    /* plans of batch 1 and 2 measure the memory per image and the part that does not grow with
     * the batch, once per input size; planning makes them current: restore the previous plan
     * after */
    size_t per = s->ab_per, fixed = s->ab_fixed;
    if (!s->ab_ok || s->ab_h != h || s->ab_w != w) {
        int pn = s->n, ph = s->h, pw = s->w, pmode = s->mode, pncap = s->n_caps;
        int *pcap = NULL;
        if (pncap && !(pcap = malloc(sizeof(int) * (size_t)pncap))) return sfail(s, SAL_ERR_NOMEM, "out of memory");
        if (pncap) memcpy(pcap, s->caps, sizeof(int) * (size_t)pncap);
        sal_status st = plan1(s, 1, h, w, SAL_PLAN_GRAD, -1);
        if (st) { free(pcap); return st; }
        size_t b1 = sal_engine_plan_bytes(s->e), b2 = 0;
        if ((maxb <= 0 || maxb >= 2) && plan1(s, 2, h, w, SAL_PLAN_GRAD, -1) == SAL_OK)
            b2 = sal_engine_plan_bytes(s->e);
        per = b2 > b1 ? b2 - b1 : b1;
        fixed = b1 > per ? b1 - per : 0;
        if (per == 0) per = 1;
        if (pn > 0) st = plan(s, pn, ph, pw, pmode, pcap, pncap);
        free(pcap);
        if (st) return st;
        s->ab_ok = 1;
        s->ab_h = h;
        s->ab_w = w;
        s->ab_per = per;
        s->ab_fixed = fixed;
    }
    size_t fit = budget > fixed ? (budget - fixed) / per : 0;
    *batch = fit < 1 ? 1 : fit > (size_t)cap ? cap : (int)fit;
    if (bytes_per_image) *bytes_per_image = per;
    if (bytes_fixed) *bytes_fixed = fixed;
    return SAL_OK;
}

void sal_session_transfers(const sal_session *s, uint64_t *to_device, uint64_t *from_device) {
    if (to_device) *to_device = s && s->b ? s->b->bytes_up : 0;
    if (from_device) *from_device = s && s->b ? s->b->bytes_down : 0;
}

double sal_session_flops(const sal_session *s) { return s && s->e ? sal_engine_flops(s->e) : 0; }

sal_status sal_session_peak_gflops(sal_session *s, int n, double *gflops) {
    if (!s || !gflops || n < 0) return SAL_ERR_INVALID_ARG;
    if (!s->b->ops->peak_gflops)
        return sfail(s, SAL_ERR_UNSUPPORTED, "the %s backend cannot measure its peak", s->b->ops->name);
    return s->b->ops->peak_gflops(s->b, n, gflops, &s->err);
}

sal_status sal_session_mem_info(const sal_session *s, size_t *avail, size_t *total) {
    if (!s || !avail || !total || !s->b->ops->mem_info) return SAL_ERR_INVALID_ARG;
    return s->b->ops->mem_info(s->b, avail, total);
}

sal_status sal_session_plan(sal_session *s, int n, int h, int w) {
    if (!s) return SAL_ERR_INVALID_ARG;
    return plan1(s, n, h, w, SAL_PLAN_FORWARD, -1);
}

int sal_session_num_classes(const sal_session *s) {
    if (!s || s->n <= 0) return 0;
    const sal_shape *o = sal_engine_shape(s->e, s->m->g->outputs[0]);
    return o ? (int)(sal_shape_numel(o) / s->n) : 0;
}

sal_status sal_session_layer_shape(sal_session *s, int layer, int *ndim, int64_t dims[SAL_MAX_DIMS]) {
    if (!s || layer < 0 || layer >= s->m->g->n_nodes)
        return s ? sfail(s, SAL_ERR_INVALID_ARG, "layer index %d out of range", layer) : SAL_ERR_INVALID_ARG;
    const sal_node *n = &s->m->g->nodes[layer];
    const sal_shape *sh = n->n_out > 0 ? sal_engine_shape(s->e, n->out[0]) : NULL;
    if (!sh) return sfail(s, SAL_ERR_INVALID_ARG, "layer '%s' has no planned shape", n->name);
    *ndim = sh->ndim;
    for (int i = 0; i < sh->ndim; i++) dims[i] = sh->d[i];
    return SAL_OK;
}

/* A layer by node name or value name; -1 when absent. */
static int find_layer_value(const sal_graph *g, const char *name) {
    for (int i = 0; i < g->n_nodes; i++)
        if (strcmp(g->nodes[i].name, name) == 0 && g->nodes[i].n_out > 0) return g->nodes[i].out[0];
    return sal_graph_find_value(g, name);
}

sal_status sal_session_value_shape(sal_session *s, const char *layer, int *ndim,
                                   int64_t dims[SAL_MAX_DIMS]) {
    if (!s || !layer) return SAL_ERR_INVALID_ARG;
    int v = find_layer_value(s->m->g, layer);
    if (v < 0) return sfail(s, SAL_ERR_NOT_FOUND, "%s: no layer named '%s' (see `salient info`)",
                            s->m->g->path, layer);
    const sal_shape *sh = sal_engine_shape(s->e, v);
    if (!sh) return sfail(s, SAL_ERR_INVALID_ARG, "layer '%s': plan the session first", layer);
    *ndim = sh->ndim;
    for (int i = 0; i < sh->ndim; i++) dims[i] = sh->d[i];
    return SAL_OK;
}

static sal_status forward_once(sal_session *s, const float *x, int n, int h, int w, float *logits) {
    if (!s) return SAL_ERR_INVALID_ARG;
    if (!x || !logits) return sfail(s, SAL_ERR_INVALID_ARG, "sal_forward: NULL input or output");
    float *din;
    sal_status st = sal_session_dev_plan(s, n, h, w, 0, -1, &din);
    if (st) return st;
    /* logits holds n * sal_session_num_classes floats: an output that is not n rows of them
     * (a model that mixes the batch) would be written past its end */
    const sal_shape *o = sal_engine_shape(s->e, s->m->g->outputs[0]);
    int64_t numel = o ? sal_shape_numel(o) : -1;
    if (numel <= 0 || numel % n != 0) {
        char buf[160];
        return sfail(s, SAL_ERR_SHAPE, "%s: output '%s' has shape %s, not %d rows of classes (one per "
                     "image of the batch)", s->m->g->path, s->m->g->values[s->m->g->outputs[0]].name,
                     o ? sal_shape_str(o, buf, sizeof buf) : "(none)", n);
    }
    const float *ins[1] = {x};
    st = sal_engine_forward(s->e, ins, &s->err);
    if (!st) st = sal_engine_read(s->e, s->m->g->outputs[0], logits, &s->err);
    return st;
}

/* Floats of one image of the session's input at h x w (the model's own size where it fixes it). */
static int64_t image_floats(const sal_session *s, int h, int w) {
    const sal_shape *d = &s->m->g->values[s->m->g->inputs[0]].decl;
    return d->d[1] * (d->d[2] > 0 ? d->d[2] : h) * (d->d[3] > 0 ? d->d[3] : w);
}

sal_status sal_forward(sal_session *s, const float *x, int n, int h, int w, float *logits) {
    const int maxb = s ? s->m->g->max_batch : 0;
    if (maxb > 0 && n > maxb && x && logits) {   /* a model of fixed batch: pass by pass */
        const int64_t per = image_floats(s, h, w);
        sal_status st = SAL_OK;
        for (int i = 0, nb = 0; !st && i < n; i += nb) {
            nb = n - i < maxb ? n - i : maxb;
            st = sal_forward(s, x + i * per, nb, h, w, logits + (int64_t)i * sal_session_num_classes(s));
            /* (num_classes is that of the plan the first pass made) */
        }
        return st;
    }
    sal_status st = forward_once(s, x, n, h, w, logits);
    if (st != SAL_ERR_NOMEM || n < 2) return st;
    /* out of memory: the first half, then (its plan has set the shapes) the second */
    const int n1 = n / 2;
    if ((st = sal_forward(s, x, n1, h, w, logits))) return st;
    const int64_t per = s->m->g->values[s->m->g->inputs[0]].decl.d[1] * (int64_t)s->h * s->w;
    return sal_forward(s, x + n1 * per, n - n1, h, w, logits + (int64_t)n1 * sal_session_num_classes(s));
}

static sal_status gradient_once(sal_session *s, const float *x, int n, int h, int w,
                                const sal_grad_opts *o, sal_grad_out *out);

sal_status sal_gradient(sal_session *s, const float *x, int n, int h, int w,
                        const sal_grad_opts *o, sal_grad_out *out) {
    const int maxb = s ? s->m->g->max_batch : 0;
    if (maxb <= 0 || n <= maxb || !x || !o || !out) return gradient_once(s, x, n, h, w, o, out);
    /* a model of fixed batch: pass by pass, each writing its rows of every output */
    const int64_t per = image_floats(s, h, w);
    sal_status st = SAL_OK;
    int64_t k = 0, lay = 0;   /* classes, and floats of one image's captured layer: from the first pass */
    for (int i = 0, nb = 0; !st && i < n; i += nb) {
        nb = n - i < maxb ? n - i : maxb;
        sal_grad_opts oi = *o;
        sal_grad_out po = {0};
        if (o->targets) oi.targets = o->targets + i;
        if (o->seed) oi.seed = o->seed + i * k;   /* k is known from the first pass on (i > 0) */
        if (i > 0) {
            if (out->logits) po.logits = out->logits + i * k;
            if (out->input_grad) po.input_grad = out->input_grad + i * per;
            if (out->layer_act) po.layer_act = out->layer_act + i * lay;
            if (out->layer_grad) po.layer_grad = out->layer_grad + i * lay;
            if (out->targets_out) po.targets_out = out->targets_out + i;
        } else {
            po = *out;
        }
        st = gradient_once(s, x + i * per, nb, h, w, &oi, &po);
        if (!st && i == 0) {
            k = sal_session_num_classes(s);
            int c = o->layer && *o->layer ? find_layer_value(s->m->g, o->layer) : -1;
            const sal_shape *ls = c >= 0 ? sal_engine_shape(s->e, c) : NULL;
            lay = ls ? sal_shape_numel(ls) / nb : 0;
        }
    }
    return st;
}

static sal_status gradient_once(sal_session *s, const float *x, int n, int h, int w,
                                const sal_grad_opts *o, sal_grad_out *out) {
    if (!s) return SAL_ERR_INVALID_ARG;
    if (!x || !o || !out) return sfail(s, SAL_ERR_INVALID_ARG, "sal_gradient: NULL argument");
    const sal_graph *g = s->m->g;
    int capture = -1;
    if (o->layer && *o->layer) {
        capture = find_layer_value(g, o->layer);
        if (capture < 0)
            return sfail(s, SAL_ERR_NOT_FOUND, "%s: no layer named '%s' (see `salient info`)",
                         g->path, o->layer);
    }
    if (!o->need_input_grad && capture < 0)
        return sfail(s, SAL_ERR_INVALID_ARG, "sal_gradient: stopping early needs a layer to capture");
    sal_status st = plan1(s, n, h, w, SAL_PLAN_GRAD, capture);
    if (st) return st;
    const float *ins[1] = {x};
    st = sal_engine_forward(s->e, ins, &s->err);
    if (st) return st;
    int out0 = g->outputs[0];
    int64_t total = sal_shape_numel(sal_engine_shape(s->e, out0));
    int64_t k = total / n;
    float *logits = malloc(sizeof(float) * (size_t)total);
    float *seed = calloc((size_t)total, sizeof(float));
    if (!logits || !seed) { free(logits); free(seed); return sfail(s, SAL_ERR_NOMEM, "out of memory"); }
    st = sal_engine_read(s->e, out0, logits, &s->err);
    if (!st && o->seed) {
        memcpy(seed, o->seed, sizeof(float) * (size_t)total);
    } else if (!st) {
        for (int i = 0; i < n && !st; i++) {
            int64_t t = 0;
            if (o->targets) {
                t = o->targets[i];
                if (t < 0 || t >= k)
                    st = sfail(s, SAL_ERR_INVALID_ARG, "target class %lld out of range [0, %lld)",
                               (long long)t, (long long)k);
            } else {
                for (int64_t j = 1; j < k; j++) if (logits[i * k + j] > logits[i * k + t]) t = j;
            }
            if (!st) {
                seed[i * k + t] = 1.f;
                if (out->targets_out) out->targets_out[i] = (int)t;
            }
        }
    }
    if (!st && out->logits) memcpy(out->logits, logits, sizeof(float) * (size_t)total);
    if (!st) st = sal_engine_backward(s->e, seed, o->guided_relu, !o->need_input_grad, &s->err);
    if (!st && out->input_grad && o->need_input_grad)
        st = sal_engine_read_grad(s->e, g->inputs[0], out->input_grad, &s->err);
    if (!st && capture >= 0 && out->layer_act) st = sal_engine_read(s->e, capture, out->layer_act, &s->err);
    if (!st && capture >= 0 && out->layer_grad) st = sal_engine_read_grad(s->e, capture, out->layer_grad, &s->err);
    free(logits);
    free(seed);
    return st;
}

/* ------------------------------------------------------------------------------------------------ */
/* Passes on batches held in the backend's memory (host/methods: declared in methods.h)             */

sal_backend *sal_session_backend(sal_session *s) { return s->b; }
sal_engine *sal_session_engine(sal_session *s) { return s->e; }

void *sal_session_scratch(sal_session *s, size_t bytes) {
    if (!bytes) bytes = 4;
    int best = -1;   /* the smallest free block that fits and wastes at most half of itself */
    for (int i = 0; i < s->n_scratch; i++) {
        struct scratch *c = &s->scratch[i];
        if (!c->used && c->bytes >= bytes && c->bytes / 2 <= bytes && (best < 0 || c->bytes < s->scratch[best].bytes))
            best = i;
    }
    if (best >= 0) { s->scratch[best].used = 1; return s->scratch[best].p; }
    if (s->n_scratch == SAL_SCRATCH_MAX) scratch_drop_free(s);
    void *p = s->n_scratch < SAL_SCRATCH_MAX ? s->b->ops->alloc(s->b, bytes) : NULL;
    if (!p && s->n_scratch > 0) {   /* give the cached free blocks back and try again */
        scratch_drop_free(s);
        if (s->n_scratch < SAL_SCRATCH_MAX) p = s->b->ops->alloc(s->b, bytes);
    }
    if (!p) {
        sfail(s, SAL_ERR_NOMEM, "out of %s memory for a %zu-byte buffer", s->b->ops->name, bytes);
        return NULL;
    }
    s->scratch[s->n_scratch].p = p;
    s->scratch[s->n_scratch].bytes = bytes;
    s->scratch[s->n_scratch].used = 1;
    s->n_scratch++;
    return p;
}

void sal_session_scratch_put(sal_session *s, const void *p) {
    for (int i = 0; p && i < s->n_scratch; i++)
        if (s->scratch[i].p == p) {
            /* an upload_async into it may still be in flight: whatever is queued after this
             * (the buffer's next user) waits for it (a failure surfaces at the next call) */
            sal_error ignored = {0};
            s->b->ops->wait_uploads(s->b, &ignored);
            s->scratch[i].used = 0;
            return;
        }
}
sal_error *sal_session_err(sal_session *s) { return &s->err; }
const sal_model *sal_session_model(const sal_session *s) { return s->m; }

int sal_session_find_layer(sal_session *s, const char *layer) {
    return layer && *layer ? find_layer_value(s->m->g, layer) : -1;
}

sal_status sal_session_dev_plan(sal_session *s, int n, int h, int w, int grad, int capture, float **dev_in) {
    return sal_session_dev_plan_set(s, n, h, w, grad, &capture, capture >= 0, dev_in);
}

sal_status sal_session_dev_plan_set(sal_session *s, int n, int h, int w, int grad, const int *caps, int n_caps,
                                    float **dev_in) {
    /* a gradient plan also serves forward passes of the same shape (keeping its captures) */
    int mode = grad || (s->mode == SAL_PLAN_GRAD && s->n == n) ? SAL_PLAN_GRAD : SAL_PLAN_FORWARD;
    sal_status st;
    if (mode == SAL_PLAN_GRAD && !grad && n_caps == 0) st = plan(s, n, h, w, mode, s->caps, s->n_caps);
    else st = plan(s, n, h, w, mode, caps, n_caps);   /* a forward plan keeps its captured values too */
    if (st) return st;
    *dev_in = sal_engine_input_dev(s->e, 0);
    return *dev_in ? SAL_OK : sfail(s, SAL_ERR_INTERNAL, "the plan has no input buffer");
}

sal_status sal_session_dev_launch(sal_session *s) { return sal_engine_forward(s->e, NULL, &s->err); }

sal_status sal_session_dev_logits(sal_session *s, float *logits) {
    return sal_engine_read(s->e, s->m->g->outputs[0], logits, &s->err);
}

sal_status sal_session_dev_forward(sal_session *s, float *logits) {
    sal_status st = sal_session_dev_launch(s);
    if (!st) st = sal_session_dev_logits(s, logits);
    return st;
}

sal_status sal_session_dev_backward(sal_session *s, const float *seed, int guided, int stop_at_capture) {
    return sal_engine_backward(s->e, seed, guided, stop_at_capture, &s->err);
}

const float *sal_session_dev_input_grad(sal_session *s) {
    return sal_engine_grad_dev(s->e, s->m->g->inputs[0]);
}

const float *sal_session_dev_capture(sal_session *s, int grad) {
    return s->n_caps ? sal_session_dev_captured(s, s->caps[0], grad) : NULL;
}

const float *sal_session_dev_captured(sal_session *s, int value, int grad) {
    int in_set = 0;
    for (int i = 0; i < s->n_caps; i++) in_set |= s->caps[i] == value;
    if (!in_set) return NULL;
    return grad ? sal_engine_grad_dev(s->e, value) : sal_engine_value_dev(s->e, value);
}

/* ------------------------------------------------------------------------------------------------ */
/* Attribution methods (host/methods)                                                               */

sal_status sal_explain(sal_session *s, const sal_explain_opts *o, const float *x, int n, int h,
                       int w, const int *targets, sal_maps *out) {
    if (!s) return SAL_ERR_INVALID_ARG;
    if (!out) return sfail(s, SAL_ERR_INVALID_ARG, "sal_explain: out is NULL");
    sal_error err = {0};
    sal_status st = sal_explain_impl(s, s->m, o, x, n, h, w, targets, out, &err);
    if (st) s->err = err;
    return st;
}

sal_status sal_explain_many(sal_session *s, const sal_explain_opts *o, const sal_method *methods, int nm,
                            const float *x, int n, int h, int w, const int *targets, sal_maps *out) {
    if (!s) return SAL_ERR_INVALID_ARG;
    if (!out) return sfail(s, SAL_ERR_INVALID_ARG, "sal_explain_many: out is NULL");
    sal_error err = {0};
    sal_status st = sal_explain_many_impl(s, s->m, o, methods, nm, x, n, h, w, targets, out, &err);
    if (st) s->err = err;
    return st;
}
