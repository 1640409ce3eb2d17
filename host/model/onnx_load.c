/* onnx_load.c — ONNX file -> graph IR, through protobuf-c and the onnx.proto of the system's
 * libonnx-dev (compiled at build time). Weights come from initializers and from Constant nodes;
 * sal_graph_finalize then folds constants and BatchNorms. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "graph.h"
#include "onnx.pb-c.h"

#define SAL_ONNX_IR_MAX 11      /* ONNX 1.18 */
#define SAL_ONNX_OPSET_MAX 23   /* ONNX 1.18's default domain */

/* ------------------------------------------------------------------------------------------------ */
/* TensorProto -> host tensor                                                                       */

static sal_status tensor_from_proto(const Onnx__TensorProto *tp, const char *what, sal_tensor **out,
                                    sal_error *err) {
    *out = NULL;
    if (tp->has_data_location && tp->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL)
        return sal_fail(err, SAL_ERR_UNSUPPORTED, "%s: tensor '%s' keeps its data in an external "
                        "file, which salient does not read", what, tp->name ? tp->name : "");
    if (tp->n_dims > SAL_MAX_DIMS)
        return sal_fail(err, SAL_ERR_UNSUPPORTED, "%s: tensor '%s' has %zu dimensions (max %d)",
                        what, tp->name ? tp->name : "", tp->n_dims, SAL_MAX_DIMS);
    sal_shape shape = {(int)tp->n_dims, {0}};
    for (size_t i = 0; i < tp->n_dims; i++) shape.d[i] = tp->dims[i];
    int64_t numel;
    if (sal_ck_numel(shape.d, shape.ndim, &numel)) {
        char buf[160];
        return sal_fail(err, SAL_ERR_PARSE, "%s: tensor '%s' has an invalid shape %s (a negative "
                        "dimension, or more than 2^40 elements)", what, tp->name ? tp->name : "",
                        sal_shape_str(&shape, buf, sizeof buf));
    }
    int dt = tp->data_type;
    sal_dtype keep;
    switch (dt) {
    case SAL_F32: case SAL_F64: keep = SAL_F32; break;
    case SAL_I64: case SAL_I32: case 2 /*uint8*/: case 3 /*int8*/: case 4: case 5: keep = SAL_I64; break;
    case SAL_BOOL: keep = SAL_BOOL; break;
    default:
        return sal_fail(err, SAL_ERR_UNSUPPORTED, "%s: tensor '%s' has data type %s, which "
                        "salient does not support", what, tp->name ? tp->name : "",
                        sal_dtype_name(dt));
    }
    size_t esize = dt == SAL_F32 || dt == SAL_I32 ? 4 : dt == SAL_F64 || dt == SAL_I64 ? 8
                 : dt == 4 || dt == 5 ? 2 : 1;
    /* the bytes present, checked against the declared size before anything is allocated */
    size_t have;
    if (tp->has_raw_data) have = tp->raw_data.len / esize;
    else if (dt == SAL_F32) have = tp->n_float_data;
    else if (dt == SAL_F64) have = tp->n_double_data;
    else if (dt == SAL_I64) have = tp->n_int64_data;
    else have = tp->n_int32_data;   /* int32, int16, int8, uint8, bool live in int32_data */
    if ((tp->has_raw_data && tp->raw_data.len != (size_t)numel * esize) ||
        (!tp->has_raw_data && have != (size_t)numel))
        return sal_fail(err, SAL_ERR_PARSE, "%s: tensor '%s' declares %lld elements but the file "
                        "holds %zu", what, tp->name ? tp->name : "", (long long)numel, have);
    sal_tensor *t = sal_tensor_new(keep, &shape);
    if (!t) return sal_fail(err, SAL_ERR_NOMEM, "%s: out of memory for tensor '%s'", what,
                            tp->name ? tp->name : "");
    const uint8_t *raw = tp->has_raw_data ? tp->raw_data.data : NULL;
    for (int64_t i = 0; i < numel; i++) {
        if (keep == SAL_F32) {
            float v;
            if (raw && dt == SAL_F32) memcpy(&v, raw + i * 4, 4);
            else if (raw) { double d; memcpy(&d, raw + i * 8, 8); v = (float)d; }
            else v = dt == SAL_F32 ? tp->float_data[i] : (float)tp->double_data[i];
            ((float *)t->data)[i] = v;
        } else if (keep == SAL_I64) {
            int64_t v;
            if (raw) {
                switch (dt) {
                case SAL_I64: memcpy(&v, raw + i * 8, 8); break;
                case SAL_I32: { int32_t x; memcpy(&x, raw + i * 4, 4); v = x; break; }
                case 4: { uint16_t x; memcpy(&x, raw + i * 2, 2); v = x; break; }
                case 5: { int16_t x; memcpy(&x, raw + i * 2, 2); v = x; break; }
                case 3: v = (int8_t)raw[i]; break;
                default: v = raw[i]; break;
                }
            } else {
                v = dt == SAL_I64 ? tp->int64_data[i] : tp->int32_data[i];
            }
            ((int64_t *)t->data)[i] = v;
        } else {
            ((uint8_t *)t->data)[i] = raw ? raw[i] != 0 : tp->int32_data[i] != 0;
        }
    }
    *out = t;
    return SAL_OK;
}

sal_status sal_tensor_from_onnx_pb(const void *data, size_t len, sal_tensor **out, char **name,
                                   sal_error *err) {
    Onnx__TensorProto *tp = onnx__tensor_proto__unpack(NULL, len, data);
    if (!tp) return sal_fail(err, SAL_ERR_PARSE, "not a valid ONNX TensorProto");
    sal_status st = tensor_from_proto(tp, "TensorProto", out, err);
    if (!st && name) *name = strdup(tp->name ? tp->name : "");
    onnx__tensor_proto__free_unpacked(tp, NULL);
    return st;
}

/* ------------------------------------------------------------------------------------------------ */
/* Graph                                                                                            */

static sal_status add_constant_node(sal_graph *g, const Onnx__NodeProto *np, sal_error *err) {
    const char *path = g->path;
    if (np->n_output < 1 || np->n_attribute < 1)
        return sal_fail(err, SAL_ERR_PARSE, "%s: Constant node '%s' has no output or no value",
                        path, np->name ? np->name : "");
    const Onnx__AttributeProto *a = np->attribute[0];
    if (!a->name || !np->output[0] || !*np->output[0])
        return sal_fail(err, SAL_ERR_PARSE, "%s: Constant node '%s' has an unnamed attribute or output",
                        path, np->name ? np->name : "");
    sal_tensor *t = NULL;
    sal_status st = SAL_OK;
    sal_shape scalar = {0, {0}};
    if (strcmp(a->name, "value") == 0 && a->t) {
        st = tensor_from_proto(a->t, path, &t, err);
        if (st) return st;
    } else if (strcmp(a->name, "value_float") == 0 || strcmp(a->name, "value_int") == 0) {
        int isf = a->name[6] == 'f';
        t = sal_tensor_new(isf ? SAL_F32 : SAL_I64, &scalar);
        if (t && isf) *(float *)t->data = a->f;
        else if (t) *(int64_t *)t->data = a->i;
    } else if (strcmp(a->name, "value_floats") == 0 || strcmp(a->name, "value_ints") == 0) {
        int isf = a->name[6] == 'f';
        sal_shape s = {1, {isf ? (int64_t)a->n_floats : (int64_t)a->n_ints}};
        t = sal_tensor_new(isf ? SAL_F32 : SAL_I64, &s);
        if (t && s.d[0]) memcpy(t->data, isf ? (void *)a->floats : (void *)a->ints,
                                (size_t)s.d[0] * (isf ? 4 : 8));
    } else {
        return sal_fail(err, SAL_ERR_UNSUPPORTED, "%s: Constant node '%s': attribute '%s' is not "
                        "supported", path, np->name ? np->name : "", a->name);
    }
    if (!t) return sal_fail(err, SAL_ERR_NOMEM, "%s: out of memory", path);
    if (sal_graph_add_const(g, np->output[0], t) < 0)
        return sal_fail(err, SAL_ERR_NOMEM, "%s: out of memory", path);
    return SAL_OK;
}

static sal_status add_node(sal_graph *g, const Onnx__NodeProto *np, sal_error *err) {
    const char *path = g->path;
    const char *name = np->name && *np->name ? np->name : NULL;
    if (np->domain && *np->domain && strcmp(np->domain, "ai.onnx") != 0)
        return sal_fail(err, SAL_ERR_UNSUPPORTED, "%s: node '%s': op %s of domain '%s' is not "
                        "supported", path, name ? name : (np->n_output ? np->output[0] : "?"),
                        np->op_type ? np->op_type : "?", np->domain);
    if (!np->op_type)
        return sal_fail(err, SAL_ERR_PARSE, "%s: a node has no op_type", path);
    if (strcmp(np->op_type, "Constant") == 0) return add_constant_node(g, np, err);
    int k = sal_graph_add_node(g, np->op_type, name, (int)np->n_input,
                               (const char *const *)np->input, (int)np->n_output,
                               (const char *const *)np->output);
    if (k < 0) return sal_fail(err, SAL_ERR_NOMEM, "%s: out of memory", path);
    sal_node *n = &g->nodes[k];
    for (size_t i = 0; i < np->n_attribute; i++) {
        const Onnx__AttributeProto *a = np->attribute[i];
        if (!a->name) continue;
        sal_status st = SAL_OK;
        switch (a->type) {
        case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT: st = sal_node_attr_float(n, a->name, a->f); break;
        case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT: st = sal_node_attr_int(n, a->name, a->i); break;
        case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING: {
            char *s = malloc(a->s.len + 1);
            if (!s) return sal_fail(err, SAL_ERR_NOMEM, "%s: out of memory", path);
            if (a->s.len) memcpy(s, a->s.data, a->s.len);
            s[a->s.len] = 0;
            st = sal_node_attr_str(n, a->name, s);
            free(s);
            break;
        }
        case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS:
            st = sal_node_attr_floats(n, a->name, (int)a->n_floats, a->floats);
            break;
        case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS:
            st = sal_node_attr_ints(n, a->name, (int)a->n_ints, a->ints);
            break;
        case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR: {
            sal_tensor *t = NULL;
            if (a->t) {
                st = tensor_from_proto(a->t, path, &t, err);
                if (st) return st;
            }
            sal_attr *grown = realloc(n->attrs, sizeof *grown * (size_t)(n->n_attr + 1));
            if (!grown) { sal_tensor_free(t); return sal_fail(err, SAL_ERR_NOMEM, "%s: out of memory", path); }
            n->attrs = grown;
            memset(&n->attrs[n->n_attr], 0, sizeof n->attrs[0]);
            n->attrs[n->n_attr].name = strdup(a->name);
            n->attrs[n->n_attr].type = SAL_ATTR_TENSOR;
            n->attrs[n->n_attr].t = t;
            n->n_attr++;
            break;
        }
        default: break;   /* graphs, sparse tensors, strings lists: no supported op uses them */
        }
        if (st) return sal_fail(err, st, "%s: out of memory", path);
    }
    return SAL_OK;
}

static void decl_shape(const Onnx__ValueInfoProto *vi, sal_value *v) {
    v->decl.ndim = 0;
    if (!vi->type || vi->type->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE ||
        !vi->type->tensor_type)
        return;
    const Onnx__TypeProto__Tensor *tt = vi->type->tensor_type;
    v->elem_type = tt->elem_type;
    if (!tt->shape) { v->decl.ndim = -1; return; }   /* rank unknown */
    int nd = (int)tt->shape->n_dim;
    v->decl.ndim = nd > SAL_MAX_DIMS ? SAL_MAX_DIMS : nd;
    for (int i = 0; i < v->decl.ndim; i++) {
        const Onnx__TensorShapeProto__Dimension *d = tt->shape->dim[i];
        v->decl.d[i] = d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE
                           ? d->dim_value : -1;
    }
}

static sal_status build_graph(sal_graph *g, const Onnx__ModelProto *mp, sal_error *err) {
    const char *path = g->path;
    const Onnx__GraphProto *gp = mp->graph;
    if (!gp) return sal_fail(err, SAL_ERR_PARSE, "%s: the ONNX model has no graph", path);
    g->opset = 0;
    for (size_t i = 0; i < mp->n_opset_import; i++) {
        const Onnx__OperatorSetIdProto *o = mp->opset_import[i];
        if (!o->domain || !*o->domain || strcmp(o->domain, "ai.onnx") == 0)
            g->opset = o->version < 0 || o->version > INT32_MAX ? -1 : (int)o->version;
    }
    /* versions: an IR or opset newer than salient knows is refused rather than misread */
    if (mp->has_ir_version && (mp->ir_version < 1 || mp->ir_version > SAL_ONNX_IR_MAX))
        return sal_fail(err, SAL_ERR_UNSUPPORTED, "%s: ONNX IR version %lld is not supported (1 to %d)",
                        path, (long long)mp->ir_version, SAL_ONNX_IR_MAX);
    if (g->opset < 0 || g->opset > SAL_ONNX_OPSET_MAX)
        return sal_fail(err, SAL_ERR_UNSUPPORTED, "%s: the model imports opset %d of the default domain; "
                        "salient knows opsets 1 to %d", path, g->opset, SAL_ONNX_OPSET_MAX);
    if (g->opset == 0) g->opset = 1;
    if (mp->n_metadata_props) {
        g->meta_keys = calloc(mp->n_metadata_props, sizeof(char *));
        g->meta_values = calloc(mp->n_metadata_props, sizeof(char *));
        if (!g->meta_keys || !g->meta_values) return sal_fail(err, SAL_ERR_NOMEM, "%s: out of memory", path);
        for (size_t i = 0; i < mp->n_metadata_props; i++) {
            const Onnx__StringStringEntryProto *kv = mp->metadata_props[i];
            g->meta_keys[g->n_meta] = strdup(kv->key ? kv->key : "");
            g->meta_values[g->n_meta] = strdup(kv->value ? kv->value : "");
            g->n_meta++;
            if (!g->meta_keys[g->n_meta - 1] || !g->meta_values[g->n_meta - 1])
                return sal_fail(err, SAL_ERR_NOMEM, "%s: out of memory", path);
        }
    }
    for (size_t i = 0; i < gp->n_initializer; i++) {
        sal_tensor *t = NULL;
        if (!gp->initializer[i]->name || !*gp->initializer[i]->name)
            return sal_fail(err, SAL_ERR_PARSE, "%s: initializer %zu has no name", path, i);
        sal_status st = tensor_from_proto(gp->initializer[i], path, &t, err);
        if (st) return st;
        if (sal_graph_add_const(g, gp->initializer[i]->name, t) < 0)   /* frees t on failure */
            return sal_fail(err, SAL_ERR_NOMEM, "%s: out of memory", path);
    }
    for (size_t i = 0; i < gp->n_input; i++) {
        const Onnx__ValueInfoProto *vi = gp->input[i];
        if (!vi->name) return sal_fail(err, SAL_ERR_PARSE, "%s: graph input %zu has no name", path, i);
        int v = sal_graph_find_value(g, vi->name);
        if (v >= 0 && g->values[v].konst) continue;   /* an initializer listed as input */
        v = sal_graph_add_input(g, vi->name, NULL);
        if (v < 0) return sal_fail(err, SAL_ERR_NOMEM, "%s: out of memory", path);
        decl_shape(vi, &g->values[v]);
        if (g->values[v].decl.ndim < 0)
            return sal_fail(err, SAL_ERR_UNSUPPORTED, "%s: graph input '%s' has no shape", path, vi->name);
    }
    for (size_t i = 0; i < gp->n_node; i++) {
        sal_status st = add_node(g, gp->node[i], err);
        if (st) return st;
    }
    for (size_t i = 0; i < gp->n_output; i++) {
        const Onnx__ValueInfoProto *vi = gp->output[i];
        if (!vi->name) return sal_fail(err, SAL_ERR_PARSE, "%s: graph output %zu has no name", path, i);
        int v = sal_graph_mark_output(g, vi->name);
        if (v < 0) return sal_fail(err, SAL_ERR_NOMEM, "%s: out of memory", path);
        decl_shape(vi, &g->values[v]);
    }
    if (g->n_outputs == 0) return sal_fail(err, SAL_ERR_PARSE, "%s: the graph has no outputs", path);
    return SAL_OK;
}

/* ------------------------------------------------------------------------------------------------ */
/* Public entry points                                                                              */

sal_status sal_model_load_buffer(const void *data, size_t len, const char *name, sal_model **out,
                                 sal_error *err) {
    return sal_model_load_buffer_ex(data, len, name, 0, out, err);
}

sal_status sal_model_load_buffer_ex(const void *data, size_t len, const char *name, int flags,
                                    sal_model **out, sal_error *err) {
    if (!out) return sal_fail(err, SAL_ERR_INVALID_ARG, "sal_model_load: out is NULL");
    *out = NULL;
    if (!name) name = "<buffer>";
    if (!data || len == 0) return sal_fail(err, SAL_ERR_PARSE, "%s: empty file", name);
    Onnx__ModelProto *mp = onnx__model_proto__unpack(NULL, len, data);
    if (!mp)
        return sal_fail(err, SAL_ERR_PARSE, "%s: not a valid ONNX model (protobuf parsing failed: "
                        "truncated or not an ONNX file)", name);
    sal_graph *g = sal_graph_new(name);
    sal_model *m = calloc(1, sizeof *m);
    sal_status st = (!g || !m) ? sal_fail(err, SAL_ERR_NOMEM, "%s: out of memory", name) : SAL_OK;
    if (!st) st = build_graph(g, mp, err);
    onnx__model_proto__free_unpacked(mp, NULL);
    if (!st) st = sal_graph_finalize(g, err);
    if (!st && !(flags & SAL_LOAD_RAW)) st = sal_graph_adapt_image_input(g, err);
    if (st) {
        sal_graph_free(g);
        free(m);
        return st;
    }
    m->g = g;
    *out = m;
    return SAL_OK;
}

sal_status sal_model_load(const char *path, sal_model **out, sal_error *err) {
    return sal_model_load_ex(path, 0, out, err);
}

sal_status sal_model_load_ex(const char *path, int flags, sal_model **out, sal_error *err) {
    if (!path || !out) return sal_fail(err, SAL_ERR_INVALID_ARG, "sal_model_load: NULL argument");
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return sal_fail(err, SAL_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;   /* a directory opens, and may then seek to a huge "size" (ext4/overlayfs) */
    if (fstat(fileno(f), &sb) == 0 && S_ISDIR(sb.st_mode)) { fclose(f); return sal_fail(err, SAL_ERR_IO, "%s: is a directory", path); }
    if (fseek(f, 0, SEEK_END) != 0) { fclose(f); return sal_fail(err, SAL_ERR_IO, "%s: cannot seek", path); }
    long len = ftell(f);
    rewind(f);
    if (len < 0) { fclose(f); return sal_fail(err, SAL_ERR_IO, "%s: cannot read (is it a directory?)", path); }
    if (len == 0) { fclose(f); return sal_fail(err, SAL_ERR_PARSE, "%s: empty file", path); }
    void *buf = malloc((size_t)len);
    if (!buf) { fclose(f); return sal_fail(err, SAL_ERR_NOMEM, "%s: out of memory reading %ld bytes", path, len); }
    size_t got = fread(buf, 1, (size_t)len, f);
    fclose(f);
    if (got != (size_t)len) {
        free(buf);
        return sal_fail(err, SAL_ERR_IO, "%s: short read (%zu of %ld bytes)", path, got, len);
    }
    sal_status st = sal_model_load_buffer_ex(buf, (size_t)len, path, flags, out, err);
    free(buf);
    return st;
}

void sal_model_free(sal_model *m) {
    if (!m) return;
    sal_graph_free(m->g);
    free(m);
}
