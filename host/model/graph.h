/* graph.h — salient's graph IR: values (tensors by name), nodes (ONNX ops with attributes) and
 * host tensors for constants. The ONNX loader fills it through the builder functions below, and
 * tests use the same builder to make small graphs without an ONNX file.
 *
 * Conventions: a value is identified by its index in graph->values; a node input of -1 is an
 * absent optional input. Constant values (initializers, Constant nodes, folded subgraphs) carry a
 * host tensor in value->konst. All allocations belong to the graph and go with sal_graph_free.
 */
#ifndef SAL_GRAPH_H
#define SAL_GRAPH_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "salient.h"
#include "checked.h"

/* ------------------------------------------------------------------------------------------------ */
/* Shapes, host tensors, errors                                                                     */

/* ONNX TensorProto data type codes for the types we keep. */
typedef enum sal_dtype { SAL_F32 = 1, SAL_I32 = 6, SAL_I64 = 7, SAL_BOOL = 9, SAL_F64 = 11 } sal_dtype;

typedef struct sal_shape {
    int ndim;
    int64_t d[SAL_MAX_DIMS];
} sal_shape;

/* Element count; -1 when a dimension is negative or beyond SAL_DIM_MAX, or the count is beyond
 * SAL_NUMEL_MAX (see checked.h): callers refuse such shapes instead of computing with them. */
int64_t sal_shape_numel(const sal_shape *s);
int sal_shape_eq(const sal_shape *a, const sal_shape *b);
/* "(1,3,224,224)" into buf; returns buf. */
const char *sal_shape_str(const sal_shape *s, char *buf, size_t len);
size_t sal_dtype_size(sal_dtype t);
const char *sal_dtype_name(int t);

typedef struct sal_tensor {  /* host tensor with owned data */
    sal_dtype dtype;
    sal_shape shape;
    void *data;  /* numel * sal_dtype_size(dtype) bytes; may be NULL when numel == 0 */
} sal_tensor;

sal_tensor *sal_tensor_new(sal_dtype dtype, const sal_shape *shape); /* zeroed; NULL on OOM */
sal_tensor *sal_tensor_clone(const sal_tensor *t);
void sal_tensor_free(sal_tensor *t);
/* Element i as int64 / double whatever the dtype (for shape arithmetic and scalars). */
int64_t sal_tensor_i64(const sal_tensor *t, int64_t i);
double sal_tensor_f64(const sal_tensor *t, int64_t i);

/* Fill err (may be NULL) with a formatted message; returns st for `return sal_fail(...)`. */
sal_status sal_fail(sal_error *err, sal_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Prefix the message already in err with "prefix: " (e.g. the model path). */
sal_status sal_fail_prefix(sal_error *err, sal_status st, const char *prefix);
sal_status sal_vfail(sal_error *err, sal_status st, const char *fmt, va_list ap);

/* ------------------------------------------------------------------------------------------------ */
/* Attributes and nodes                                                                             */

/* ONNX AttributeProto types. */
enum { SAL_ATTR_FLOAT = 1, SAL_ATTR_INT = 2, SAL_ATTR_STRING = 3, SAL_ATTR_TENSOR = 4,
       SAL_ATTR_FLOATS = 6, SAL_ATTR_INTS = 7 };

typedef struct sal_attr {
    char *name;
    int type;
    float f;
    int64_t i;
    char *s;
    sal_tensor *t;
    int n;          /* count of floats / ints */
    float *floats;
    int64_t *ints;
} sal_attr;

typedef struct sal_node {
    char *name;     /* never NULL: the loader names unnamed nodes after their first output */
    char *op_type;
    int op;         /* sal_op_kind from ops.h, -1 when unsupported */
    int n_in, n_out;
    int *in, *out;  /* value indices; in[i] == -1: absent optional input */
    int n_attr;
    sal_attr *attrs;
} sal_node;

const sal_attr *sal_attr_find(const sal_node *n, const char *name);
int64_t sal_attr_int(const sal_node *n, const char *name, int64_t dflt);
float sal_attr_float(const sal_node *n, const char *name, float dflt);
const char *sal_attr_str(const sal_node *n, const char *name, const char *dflt);
/* Number of ints (and *v), or -1 when absent. */
int sal_attr_ints(const sal_node *n, const char *name, const int64_t **v);
int sal_attr_floats(const sal_node *n, const char *name, const float **v);

/* ------------------------------------------------------------------------------------------------ */
/* Values and graph                                                                                 */

typedef struct sal_value {
    char *name;
    sal_tensor *konst;   /* non-NULL for constants */
    int producer;        /* node index, -1 for graph inputs and constants */
    int is_input;        /* a graph input fed at run time */
    int is_output;       /* a graph output */
    int elem_type;       /* declared element type for graph inputs/outputs (0 = unknown) */
    sal_shape decl;      /* declared shape of graph inputs/outputs, -1 for dynamic dims */
} sal_value;

typedef struct sal_graph {
    char *path;          /* file it came from, for messages ("" for built graphs) */
    int opset;           /* default-domain opset */
    int n_values, cap_values;
    sal_value *values;
    int n_nodes, cap_nodes;
    sal_node *nodes;
    int n_inputs, n_outputs;
    int *inputs, *outputs;   /* value indices of the runtime inputs (not weights) and outputs */
    int consts_folded, bn_folded;
    int n_meta;
    char **meta_keys, **meta_values;   /* the model's metadata_props */
    /* the image input (layout.c; zeros until sal_graph_adapt_image_input runs) */
    int layout;          /* SAL_LAYOUT_NCHW, or SAL_LAYOUT_NHWC as the file declares it */
    int file_input;      /* value of the input as the file declares it (NHWC: the Transpose's output) */
    int max_batch;       /* 0: any batch; 1: fixed at 1 (batch_why says by what) */
    char batch_why[400];
} sal_graph;

sal_graph *sal_graph_new(const char *path);
void sal_graph_free(sal_graph *g);
void sal_node_clear(sal_node *n);   /* free a node's contents (graph builder internals) */
int sal_graph_find_value(const sal_graph *g, const char *name);   /* -1 if absent */
/* Value by name, created when absent; -1 on OOM. */
int sal_graph_value(sal_graph *g, const char *name);
/* A constant value; takes ownership of t. Returns value index or -1. */
int sal_graph_add_const(sal_graph *g, const char *name, sal_tensor *t);
/* A runtime input with declared shape (dims -1 for dynamic). */
int sal_graph_add_input(sal_graph *g, const char *name, const sal_shape *decl);
int sal_graph_mark_output(sal_graph *g, const char *name);
/* Append a node; input/output names ("" for an absent optional input). Returns node index or -1.
 * Attributes are added with the sal_node_attr_* helpers on g->nodes[index]. */
int sal_graph_add_node(sal_graph *g, const char *op_type, const char *name, int n_in,
                       const char *const *inputs, int n_out, const char *const *outputs);
sal_status sal_node_attr_int(sal_node *n, const char *name, int64_t v);
sal_status sal_node_attr_float(sal_node *n, const char *name, float v);
sal_status sal_node_attr_str(sal_node *n, const char *name, const char *v);
sal_status sal_node_attr_ints(sal_node *n, const char *name, int count, const int64_t *v);
sal_status sal_node_attr_floats(sal_node *n, const char *name, int count, const float *v);

/* Finish a graph after building: sort nodes topologically, resolve op kinds (unsupported ops are
 * an error naming op and node), fold constant subgraphs and BatchNorm into Conv, drop dead nodes.
 * The loader calls this; tests that build graphs by hand call it too. */
sal_status sal_graph_finalize(sal_graph *g, sal_error *err);

/* The image input of a finalized graph (layout.c): a channels-last (N,H,W,C) input (the model's
 * metadata salient.layout = NHWC, or a last dimension of 1 or 3 and a second that is not) gets a
 * channels-first twin "<input>.nchw" as the graph's input, feeding a Transpose to the original;
 * and the largest batch is found (the input declares a batch of 1, or a Reshape of an activation
 * hard-codes 1 as its first dimension). sal_model_load runs it; SAL_LOAD_RAW leaves the graph as
 * the file has it (the ONNX conformance tests feed their inputs as declared). */
/* (layouts: SAL_LAYOUT_NCHW and SAL_LAYOUT_NHWC of include/salient.h's sal_layout) */
sal_status sal_graph_adapt_image_input(sal_graph *g, sal_error *err);
#define SAL_LOAD_RAW 1
sal_status sal_model_load_ex(const char *path, int flags, sal_model **out, sal_error *err);
sal_status sal_model_load_buffer_ex(const void *data, size_t len, const char *name, int flags,
                                    sal_model **out, sal_error *err);

/* Parse an ONNX TensorProto from bytes into a host tensor (used by the loader and by the
 * conformance tests for their input_N.pb / output_N.pb files). */
sal_status sal_tensor_from_onnx_pb(const void *data, size_t len, sal_tensor **out, char **name,
                                   sal_error *err);

/* The model handle of the public API is a finalized graph. */
struct sal_model {
    sal_graph *g;
};

#endif /* SAL_GRAPH_H */
