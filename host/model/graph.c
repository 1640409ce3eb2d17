/* graph.c — the graph IR: host tensors, errors, attributes, and the builder used by the ONNX
 * loader and by tests. */
#include "graph.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------------------------------ */
/* Errors                                                                                           */

const char *sal_status_str(sal_status st) {
    switch (st) {
    case SAL_OK: return "ok";
    case SAL_ERR_INVALID_ARG: return "invalid argument";
    case SAL_ERR_IO: return "I/O error";
    case SAL_ERR_PARSE: return "parse error";
    case SAL_ERR_UNSUPPORTED: return "unsupported";
    case SAL_ERR_SHAPE: return "shape mismatch";
    case SAL_ERR_NOMEM: return "out of memory";
    case SAL_ERR_DEVICE: return "device error";
    case SAL_ERR_NOT_FOUND: return "not found";
    case SAL_ERR_INTERNAL: return "internal error";
    case SAL_ERR_CANCELLED: return "cancelled";
    }
    return "unknown status";
}

sal_status sal_vfail(sal_error *err, sal_status st, const char *fmt, va_list ap) {
    if (err) {
        err->status = st;
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    }
    return st;
}

sal_status sal_fail(sal_error *err, sal_status st, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    sal_vfail(err, st, fmt, ap);
    va_end(ap);
    return st;
}

sal_status sal_fail_prefix(sal_error *err, sal_status st, const char *prefix) {
    if (err) {
        char tmp[SAL_ERROR_LEN];
        snprintf(tmp, sizeof tmp, "%s", err->msg);
        snprintf(err->msg, sizeof err->msg, "%.120s: %.900s", prefix, tmp);
        err->status = st;
    }
    return st;
}

/* ------------------------------------------------------------------------------------------------ */
/* Shapes and host tensors                                                                          */

int64_t sal_shape_numel(const sal_shape *s) {
    int64_t n;
    if (s->ndim < 0 || s->ndim > SAL_MAX_DIMS || sal_ck_numel(s->d, s->ndim, &n)) return -1;
    return n;
}

int sal_shape_eq(const sal_shape *a, const sal_shape *b) {
    if (a->ndim != b->ndim) return 0;
    for (int i = 0; i < a->ndim; i++)
        if (a->d[i] != b->d[i]) return 0;
    return 1;
}

const char *sal_shape_str(const sal_shape *s, char *buf, size_t len) {
    size_t k = 0;
    k += (size_t)snprintf(buf + k, k < len ? len - k : 0, "(");
    for (int i = 0; i < s->ndim; i++)
        k += (size_t)snprintf(buf + k, k < len ? len - k : 0, "%s%lld", i ? "," : "",
                              (long long)s->d[i]);
    snprintf(buf + k, k < len ? len - k : 0, ")");
    return buf;
}

size_t sal_dtype_size(sal_dtype t) {
    switch (t) {
    case SAL_F32: case SAL_I32: return 4;
    case SAL_I64: case SAL_F64: return 8;
    case SAL_BOOL: return 1;
    }
    return 0;
}

const char *sal_dtype_name(int t) {
    static const char *names[] = {"undefined", "float32", "uint8", "int8", "uint16", "int16",
                                  "int32", "int64", "string", "bool", "float16", "float64",
                                  "uint32", "uint64", "complex64", "complex128", "bfloat16"};
    return t >= 0 && t < (int)(sizeof names / sizeof names[0]) ? names[t] : "unknown";
}

sal_tensor *sal_tensor_new(sal_dtype dtype, const sal_shape *shape) {
    sal_tensor *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    t->dtype = dtype;
    t->shape = *shape;
    int64_t n = sal_shape_numel(shape);
    if (n < 0) { free(t); return NULL; }
    if (n > 0) {
        t->data = calloc((size_t)n, sal_dtype_size(dtype));
        if (!t->data) { free(t); return NULL; }
    }
    return t;
}

sal_tensor *sal_tensor_clone(const sal_tensor *t) {
    sal_tensor *c = sal_tensor_new(t->dtype, &t->shape);
    if (c && t->data) memcpy(c->data, t->data, (size_t)sal_shape_numel(&t->shape) * sal_dtype_size(t->dtype));
    return c;
}

void sal_tensor_free(sal_tensor *t) {
    if (!t) return;
    free(t->data);
    free(t);
}

/* A float read as an integer, saturated: NaN is 0 and values past int64's range are its ends
 * (a bare cast of -inf or 1e300 is undefined behaviour; a file may hold either). */
static int64_t sat_i64(double v) {
    if (!(v == v)) return 0;
    if (v >= 9223372036854775807.0) return INT64_MAX;
    if (v <= -9223372036854775808.0) return INT64_MIN;
    return (int64_t)v;
}

int64_t sal_tensor_i64(const sal_tensor *t, int64_t i) {
    switch (t->dtype) {
    case SAL_I64: return ((const int64_t *)t->data)[i];
    case SAL_I32: return ((const int32_t *)t->data)[i];
    case SAL_F32: return sat_i64(((const float *)t->data)[i]);
    case SAL_F64: return sat_i64(((const double *)t->data)[i]);
    case SAL_BOOL: return ((const uint8_t *)t->data)[i];
    }
    return 0;
}

double sal_tensor_f64(const sal_tensor *t, int64_t i) {
    switch (t->dtype) {
    case SAL_I64: return (double)((const int64_t *)t->data)[i];
    case SAL_I32: return ((const int32_t *)t->data)[i];
    case SAL_F32: return ((const float *)t->data)[i];
    case SAL_F64: return ((const double *)t->data)[i];
    case SAL_BOOL: return ((const uint8_t *)t->data)[i];
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------------ */
/* Attributes                                                                                       */

const sal_attr *sal_attr_find(const sal_node *n, const char *name) {
    for (int i = 0; i < n->n_attr; i++)
        if (strcmp(n->attrs[i].name, name) == 0) return &n->attrs[i];
    return NULL;
}

int64_t sal_attr_int(const sal_node *n, const char *name, int64_t dflt) {
    const sal_attr *a = sal_attr_find(n, name);
    return a && a->type == SAL_ATTR_INT ? a->i : dflt;
}

float sal_attr_float(const sal_node *n, const char *name, float dflt) {
    const sal_attr *a = sal_attr_find(n, name);
    if (a && a->type == SAL_ATTR_FLOAT) return a->f;
    if (a && a->type == SAL_ATTR_INT) return (float)a->i;
    return dflt;
}

const char *sal_attr_str(const sal_node *n, const char *name, const char *dflt) {
    const sal_attr *a = sal_attr_find(n, name);
    return a && a->type == SAL_ATTR_STRING && a->s ? a->s : dflt;
}

int sal_attr_ints(const sal_node *n, const char *name, const int64_t **v) {
    const sal_attr *a = sal_attr_find(n, name);
    if (!a || a->type != SAL_ATTR_INTS) return -1;
    *v = a->ints;
    return a->n;
}

int sal_attr_floats(const sal_node *n, const char *name, const float **v) {
    const sal_attr *a = sal_attr_find(n, name);
    if (!a || a->type != SAL_ATTR_FLOATS) return -1;
    *v = a->floats;
    return a->n;
}

static sal_attr *attr_add(sal_node *n, const char *name, int type) {
    sal_attr *grown = realloc(n->attrs, sizeof *grown * (size_t)(n->n_attr + 1));
    if (!grown) return NULL;
    n->attrs = grown;
    sal_attr *a = &n->attrs[n->n_attr];
    memset(a, 0, sizeof *a);
    a->name = strdup(name);
    if (!a->name) return NULL;
    a->type = type;
    n->n_attr++;
    return a;
}

sal_status sal_node_attr_int(sal_node *n, const char *name, int64_t v) {
    sal_attr *a = attr_add(n, name, SAL_ATTR_INT);
    if (!a) return SAL_ERR_NOMEM;
    a->i = v;
    return SAL_OK;
}

sal_status sal_node_attr_float(sal_node *n, const char *name, float v) {
    sal_attr *a = attr_add(n, name, SAL_ATTR_FLOAT);
    if (!a) return SAL_ERR_NOMEM;
    a->f = v;
    return SAL_OK;
}

sal_status sal_node_attr_str(sal_node *n, const char *name, const char *v) {
    sal_attr *a = attr_add(n, name, SAL_ATTR_STRING);
    if (!a || !(a->s = strdup(v))) return SAL_ERR_NOMEM;
    return SAL_OK;
}

sal_status sal_node_attr_ints(sal_node *n, const char *name, int count, const int64_t *v) {
    sal_attr *a = attr_add(n, name, SAL_ATTR_INTS);
    if (!a) return SAL_ERR_NOMEM;
    a->n = count;
    if (count > 0) {
        if (!(a->ints = malloc(sizeof *a->ints * (size_t)count))) return SAL_ERR_NOMEM;
        memcpy(a->ints, v, sizeof *a->ints * (size_t)count);
    }
    return SAL_OK;
}

sal_status sal_node_attr_floats(sal_node *n, const char *name, int count, const float *v) {
    sal_attr *a = attr_add(n, name, SAL_ATTR_FLOATS);
    if (!a) return SAL_ERR_NOMEM;
    a->n = count;
    if (count > 0) {
        if (!(a->floats = malloc(sizeof *a->floats * (size_t)count))) return SAL_ERR_NOMEM;
        memcpy(a->floats, v, sizeof *a->floats * (size_t)count);
    }
    return SAL_OK;
}

/* ------------------------------------------------------------------------------------------------ */
/* Graph builder                                                                                    */

sal_graph *sal_graph_new(const char *path) {
    sal_graph *g = calloc(1, sizeof *g);
    if (!g) return NULL;
    g->path = strdup(path ? path : "");
    g->opset = 13;
    if (!g->path) { free(g); return NULL; }
    return g;
}

void sal_node_clear(sal_node *n) {
    free(n->name);
    free(n->op_type);
    free(n->in);
    free(n->out);
    for (int j = 0; j < n->n_attr; j++) {
        sal_attr *a = &n->attrs[j];
        free(a->name);
        free(a->s);
        sal_tensor_free(a->t);
        free(a->floats);
        free(a->ints);
    }
    free(n->attrs);
    memset(n, 0, sizeof *n);
}

void sal_graph_free(sal_graph *g) {
    if (!g) return;
    for (int i = 0; i < g->n_values; i++) {
        free(g->values[i].name);
        sal_tensor_free(g->values[i].konst);
    }
    for (int i = 0; i < g->n_nodes; i++) sal_node_clear(&g->nodes[i]);
    free(g->values);
    free(g->nodes);
    free(g->inputs);
    free(g->outputs);
    for (int i = 0; i < g->n_meta; i++) { free(g->meta_keys[i]); free(g->meta_values[i]); }
    free(g->meta_keys);
    free(g->meta_values);
    free(g->path);
    free(g);
}

int sal_graph_find_value(const sal_graph *g, const char *name) {
    for (int i = g->n_values - 1; i >= 0; i--)
        if (strcmp(g->values[i].name, name) == 0) return i;
    return -1;
}

int sal_graph_value(sal_graph *g, const char *name) {
    int v = sal_graph_find_value(g, name);
    if (v >= 0) return v;
    if (g->n_values == g->cap_values) {
        int cap = g->cap_values ? g->cap_values * 2 : 64;
        sal_value *grown = realloc(g->values, sizeof *grown * (size_t)cap);
        if (!grown) return -1;
        g->values = grown;
        g->cap_values = cap;
    }
    sal_value *val = &g->values[g->n_values];
    memset(val, 0, sizeof *val);
    if (!(val->name = strdup(name))) return -1;
    val->producer = -1;
    return g->n_values++;
}

static int push_index(int **arr, int *n, int v) {
    int *grown = realloc(*arr, sizeof *grown * (size_t)(*n + 1));
    if (!grown) return -1;
    grown[(*n)++] = v;
    *arr = grown;
    return 0;
}

int sal_graph_add_const(sal_graph *g, const char *name, sal_tensor *t) {
    int v = sal_graph_value(g, name);
    if (v < 0) { sal_tensor_free(t); return -1; }
    sal_tensor_free(g->values[v].konst);
    g->values[v].konst = t;
    return v;
}

int sal_graph_add_input(sal_graph *g, const char *name, const sal_shape *decl) {
    int v = sal_graph_value(g, name);
    if (v < 0) return -1;
    g->values[v].is_input = 1;
    g->values[v].elem_type = SAL_F32;
    if (decl) g->values[v].decl = *decl;
    if (push_index(&g->inputs, &g->n_inputs, v) < 0) return -1;
    return v;
}

int sal_graph_mark_output(sal_graph *g, const char *name) {
    int v = sal_graph_value(g, name);
    if (v < 0) return -1;
    g->values[v].is_output = 1;
    if (push_index(&g->outputs, &g->n_outputs, v) < 0) return -1;
    return v;
}

int sal_graph_add_node(sal_graph *g, const char *op_type, const char *name, int n_in,
                       const char *const *inputs, int n_out, const char *const *outputs) {
    if (g->n_nodes == g->cap_nodes) {
        int cap = g->cap_nodes ? g->cap_nodes * 2 : 64;
        sal_node *grown = realloc(g->nodes, sizeof *grown * (size_t)cap);
        if (!grown) return -1;
        g->nodes = grown;
        g->cap_nodes = cap;
    }
    int idx = g->n_nodes;
    sal_node *n = &g->nodes[idx];
    memset(n, 0, sizeof *n);
    n->op = -1;
    n->op_type = strdup(op_type);
    const char *nm = name && *name ? name : (n_out > 0 ? outputs[0] : op_type);
    n->name = strdup(nm);
    n->in = malloc(sizeof *n->in * (size_t)(n_in > 0 ? n_in : 1));
    n->out = malloc(sizeof *n->out * (size_t)(n_out > 0 ? n_out : 1));
    if (!n->op_type || !n->name || !n->in || !n->out) { sal_node_clear(n); return -1; }
    g->n_nodes++;   /* counted now so that sal_graph_free releases it on later failure */
    for (int i = 0; i < n_in; i++) {
        int v = inputs[i] && *inputs[i] ? sal_graph_value(g, inputs[i]) : -1;
        if (inputs[i] && *inputs[i] && v < 0) return -1;
        n = &g->nodes[idx];
        n->in[n->n_in++] = v;
    }
    for (int i = 0; i < n_out; i++) {
        int v = outputs[i] && *outputs[i] ? sal_graph_value(g, outputs[i]) : -1;
        if (outputs[i] && *outputs[i] && v < 0) return -1;
        n = &g->nodes[idx];
        n->out[n->n_out++] = v;
    }
    return idx;
}
