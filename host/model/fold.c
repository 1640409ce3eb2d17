/* fold.c — graph finalization: topological order, op resolution, constant folding (at load and,
 * for shape subgraphs that need concrete input shapes, again at plan time), BatchNorm folding into
 * the preceding Conv, and dead node removal.
 *
 * sal_fold_node evaluates one node on host tensors. Float ops run through their infer and CPU
 * kernel; integer shape arithmetic (Shape, Gather, Slice, Cast, Concat, Unsqueeze, Add...) is
 * evaluated here on any dtype. */
#include "fold.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../backend/backend.h"
#include "../ops/ops.h"

/* ------------------------------------------------------------------------------------------------ */
/* Evaluating one node on host tensors                                                              */

static int64_t norm_axis(int64_t a, int rank) { return a < 0 ? a + rank : a; }

/* Folded constants are sized by numbers from the file (ConstantOfShape's shape, broadcasts of
 * constants): none may exceed SAL_FOLD_MAX_NUMEL elements (1 GiB of float32, beyond any real
 * model's constants), so that a hostile file cannot make folding allocate terabytes. Every
 * allocation of this file goes through here; a refusal reads as "out of memory" at its site. */
#define SAL_FOLD_MAX_NUMEL (INT64_C(1) << 28)
static sal_tensor *fold_tensor_new(sal_dtype dtype, const sal_shape *shape) {
    int64_t n = sal_shape_numel(shape);
    if (n < 0 || n > SAL_FOLD_MAX_NUMEL) return NULL;
    return sal_tensor_new(dtype, shape);
}
#define sal_tensor_new fold_tensor_new

static sal_status fold_elementwise(const sal_node *n, const sal_tensor *a, const sal_tensor *b,
                                   sal_tensor **out, sal_error *err) {
    sal_shape os;
    sal_bcast_params p;
    if (sal_broadcast(&a->shape, &b->shape, &os, &p))
        return sal_fail(err, SAL_ERR_SHAPE, "node '%s' (%s): shapes do not broadcast", n->name, n->op_type);
    int isint = a->dtype != SAL_F32 && b->dtype != SAL_F32;
    sal_tensor *t = sal_tensor_new(isint ? SAL_I64 : SAL_F32, &os);
    if (!t) return sal_fail(err, SAL_ERR_NOMEM, "out of memory");
    int64_t total = sal_shape_numel(&os);
    for (int64_t i = 0; i < total; i++) {
        int64_t ia = 0, ib = 0, r = i;
        for (int d = os.ndim - 1; d >= 0; d--) {
            int64_t c = r % os.d[d];
            r /= os.d[d];
            ia += c * p.sa[d];
            ib += c * p.sb[d];
        }
        int k = n->op;
        if (isint) {
            int64_t x = sal_tensor_i64(a, ia), y = sal_tensor_i64(b, ib), z;
            z = k == SAL_OP_ADD ? x + y : k == SAL_OP_SUB ? x - y : k == SAL_OP_MUL ? x * y
                : (y ? x / y : 0);
            ((int64_t *)t->data)[i] = z;
        } else {
            double x = sal_tensor_f64(a, ia), y = sal_tensor_f64(b, ib), z;
            z = k == SAL_OP_ADD ? x + y : k == SAL_OP_SUB ? x - y : k == SAL_OP_MUL ? x * y : x / y;
            ((float *)t->data)[i] = (float)z;
        }
    }
    *out = t;
    return SAL_OK;
}

/* Copy of `in` with another shape (Reshape, Flatten, Squeeze, Unsqueeze, Identity, Dropout). */
static sal_status fold_reshape(const sal_tensor *in, const sal_shape *s, sal_tensor **out, sal_error *err) {
    if (sal_shape_numel(s) != sal_shape_numel(&in->shape))
        return sal_fail(err, SAL_ERR_SHAPE, "reshape changes the element count");
    sal_tensor *t = sal_tensor_clone(in);
    if (!t) return sal_fail(err, SAL_ERR_NOMEM, "out of memory");
    t->shape = *s;
    *out = t;
    return SAL_OK;
}

static sal_status fold_gather(const sal_node *n, const sal_tensor *data, const sal_tensor *idx,
                              sal_tensor **out, sal_error *err) {
    int r = data->shape.ndim;
    int64_t axis = norm_axis(sal_attr_int(n, "axis", 0), r);
    if (axis < 0 || axis >= r || r + idx->shape.ndim - 1 > SAL_MAX_DIMS)
        return sal_fail(err, SAL_ERR_SHAPE, "node '%s' (Gather): bad axis", n->name);
    sal_shape os = {0, {0}};
    for (int i = 0; i < axis; i++) os.d[os.ndim++] = data->shape.d[i];
    for (int i = 0; i < idx->shape.ndim; i++) os.d[os.ndim++] = idx->shape.d[i];
    for (int i = (int)axis + 1; i < r; i++) os.d[os.ndim++] = data->shape.d[i];
    sal_tensor *t = sal_tensor_new(data->dtype, &os);
    if (!t) return sal_fail(err, SAL_ERR_NOMEM, "out of memory");
    int64_t outer = 1, inner = 1, len = data->shape.d[axis], ni = sal_shape_numel(&idx->shape);
    for (int i = 0; i < axis; i++) outer *= data->shape.d[i];
    for (int i = (int)axis + 1; i < r; i++) inner *= data->shape.d[i];
    size_t es = sal_dtype_size(data->dtype);
    for (int64_t o = 0; o < outer; o++)
        for (int64_t j = 0; j < ni; j++) {
            int64_t k = sal_tensor_i64(idx, j);
            if (k < 0) k += len;
            if (k < 0 || k >= len) {
                sal_tensor_free(t);
                return sal_fail(err, SAL_ERR_SHAPE, "node '%s' (Gather): index out of range", n->name);
            }
            memcpy((char *)t->data + ((o * ni + j) * inner) * es,
                   (const char *)data->data + ((o * len + k) * inner) * es, (size_t)inner * es);
        }
    *out = t;
    return SAL_OK;
}

static sal_status fold_slice(const sal_node *n, int opset, const sal_tensor *const *in, int n_in,
                             sal_tensor **out, sal_error *err) {
    const sal_tensor *data = in[0];
    int r = data->shape.ndim;
    int64_t starts[SAL_MAX_DIMS], ends[SAL_MAX_DIMS], axes[SAL_MAX_DIMS], steps[SAL_MAX_DIMS];
    int k;
    if (opset < 10) {
        const int64_t *s, *e, *a;
        k = sal_attr_ints(n, "starts", &s);
        if (k < 0 || sal_attr_ints(n, "ends", &e) != k)
            return sal_fail(err, SAL_ERR_PARSE, "node '%s' (Slice): starts/ends missing", n->name);
        int na = sal_attr_ints(n, "axes", &a);
        for (int i = 0; i < k && i < SAL_MAX_DIMS; i++) {
            starts[i] = s[i]; ends[i] = e[i]; axes[i] = na > 0 ? a[i] : i; steps[i] = 1;
        }
    } else {
        if (n_in < 3 || !in[1] || !in[2])
            return sal_fail(err, SAL_ERR_PARSE, "node '%s' (Slice): starts/ends missing", n->name);
        k = (int)sal_shape_numel(&in[1]->shape);
        if (sal_shape_numel(&in[2]->shape) != k)
            return sal_fail(err, SAL_ERR_SHAPE, "node '%s' (Slice): starts and ends differ in length", n->name);
        for (int i = 0; i < k && i < SAL_MAX_DIMS; i++) {
            starts[i] = sal_tensor_i64(in[1], i);
            ends[i] = sal_tensor_i64(in[2], i);
            axes[i] = n_in > 3 && in[3] ? sal_tensor_i64(in[3], i) : i;
            steps[i] = n_in > 4 && in[4] ? sal_tensor_i64(in[4], i) : 1;
        }
    }
    if (k > r) return sal_fail(err, SAL_ERR_SHAPE, "node '%s' (Slice): too many axes", n->name);
    int64_t st[SAL_MAX_DIMS], sp[SAL_MAX_DIMS];
    sal_shape os = data->shape;
    for (int d = 0; d < r; d++) { st[d] = 0; sp[d] = 1; }
    for (int i = 0; i < k; i++) {
        int64_t ax = norm_axis(axes[i], r), dim = data->shape.d[ax], s = starts[i], e = ends[i],
                step = steps[i];
        if (ax < 0 || ax >= r || step == 0)
            return sal_fail(err, SAL_ERR_SHAPE, "node '%s' (Slice): bad axis or step", n->name);
        if (s < 0) s += dim;
        if (e < 0) e += dim;
        if (step > 0) {
            s = s < 0 ? 0 : s > dim ? dim : s;
            e = e < 0 ? 0 : e > dim ? dim : e;
            os.d[ax] = e > s ? (e - s + step - 1) / step : 0;
        } else {
            s = s < 0 ? -1 : s > dim - 1 ? dim - 1 : s;
            e = e < -1 ? -1 : e > dim - 1 ? dim - 1 : e;
            os.d[ax] = s > e ? (s - e + (-step) - 1) / (-step) : 0;
        }
        st[ax] = s;
        sp[ax] = step;
    }
    sal_tensor *t = sal_tensor_new(data->dtype, &os);
    if (!t) return sal_fail(err, SAL_ERR_NOMEM, "out of memory");
    size_t es = sal_dtype_size(data->dtype);
    int64_t total = sal_shape_numel(&os);
    for (int64_t i = 0; i < total; i++) {
        int64_t rem = i, src = 0, stride = 1;
        int64_t coord[SAL_MAX_DIMS];
        for (int d = r - 1; d >= 0; d--) { coord[d] = rem % os.d[d]; rem /= os.d[d]; }
        for (int d = r - 1; d >= 0; d--) {
            src += (st[d] + coord[d] * sp[d]) * stride;
            stride *= data->shape.d[d];
        }
        memcpy((char *)t->data + i * es, (const char *)data->data + src * es, es);
    }
    *out = t;
    return SAL_OK;
}

static sal_status fold_concat(const sal_node *n, const sal_tensor *const *in, int n_in,
                              sal_tensor **out, sal_error *err) {
    const sal_tensor *first = NULL;
    for (int i = 0; i < n_in; i++) if (in[i]) { first = in[i]; break; }
    if (!first) return sal_fail(err, SAL_ERR_PARSE, "node '%s' (Concat): no inputs", n->name);
    int r = first->shape.ndim;
    int64_t axis = norm_axis(sal_attr_int(n, "axis", 0), r);
    if (axis < 0 || axis >= r) return sal_fail(err, SAL_ERR_SHAPE, "node '%s' (Concat): bad axis", n->name);
    sal_shape os = first->shape;
    os.d[axis] = 0;
    int isf = 0;
    for (int i = 0; i < n_in; i++) {
        if (!in[i]) continue;
        if (in[i]->shape.ndim != r)
            return sal_fail(err, SAL_ERR_SHAPE, "node '%s' (Concat): ranks differ", n->name);
        for (int d = 0; d < r; d++)
            if (d != axis && in[i]->shape.d[d] != first->shape.d[d])
                return sal_fail(err, SAL_ERR_SHAPE, "node '%s' (Concat): shapes differ", n->name);
        os.d[axis] += in[i]->shape.d[axis];
        isf |= in[i]->dtype == SAL_F32;
    }
    sal_tensor *t = sal_tensor_new(isf ? SAL_F32 : first->dtype, &os);
    if (!t) return sal_fail(err, SAL_ERR_NOMEM, "out of memory");
    int64_t outer = 1, inner = 1;
    for (int d = 0; d < axis; d++) outer *= os.d[d];
    for (int d = (int)axis + 1; d < r; d++) inner *= os.d[d];
    int64_t off = 0;
    for (int i = 0; i < n_in; i++) {
        if (!in[i]) continue;
        int64_t len = in[i]->shape.d[axis];
        for (int64_t o = 0; o < outer; o++)
            for (int64_t j = 0; j < len * inner; j++) {
                int64_t dst = (o * os.d[axis] + off) * inner + j, src = o * len * inner + j;
                if (t->dtype == SAL_F32) ((float *)t->data)[dst] = (float)sal_tensor_f64(in[i], src);
                else if (t->dtype == SAL_I64) ((int64_t *)t->data)[dst] = sal_tensor_i64(in[i], src);
                else ((uint8_t *)t->data)[dst] = (uint8_t)sal_tensor_i64(in[i], src);
            }
        off += len;
    }
    *out = t;
    return SAL_OK;
}

static sal_status fold_cast(const sal_node *n, const sal_tensor *x, sal_tensor **out, sal_error *err) {
    int64_t to = sal_attr_int(n, "to", SAL_F32);
    sal_dtype dt;
    switch (to) {
    case SAL_F32: case SAL_F64: case 10 /*f16*/: dt = SAL_F32; break;
    case SAL_BOOL: dt = SAL_BOOL; break;
    case SAL_I64: case SAL_I32: case 2: case 3: case 4: case 5: case 12: case 13: dt = SAL_I64; break;
    default: return sal_fail(err, SAL_ERR_UNSUPPORTED, "node '%s' (Cast): to=%s", n->name, sal_dtype_name((int)to));
    }
    sal_tensor *t = sal_tensor_new(dt, &x->shape);
    if (!t) return sal_fail(err, SAL_ERR_NOMEM, "out of memory");
    int64_t total = sal_shape_numel(&x->shape);
    for (int64_t i = 0; i < total; i++) {
        if (dt == SAL_F32) ((float *)t->data)[i] = (float)sal_tensor_f64(x, i);
        else if (dt == SAL_I64) ((int64_t *)t->data)[i] = x->dtype == SAL_F32 ? (int64_t)sal_tensor_f64(x, i) : sal_tensor_i64(x, i);
        else ((uint8_t *)t->data)[i] = sal_tensor_f64(x, i) != 0;
    }
    *out = t;
    return SAL_OK;
}

/* Float op through its infer + CPU kernel on host memory. */
static sal_status fold_float_op(const sal_graph *g, const sal_node *n, const sal_tensor *const *in,
                                sal_tensor **outs, sal_error *err) {
    const sal_op_def *def = sal_op_def_of((sal_op_kind)n->op);
    if (!def || !def->infer)
        return sal_fail(err, SAL_ERR_UNSUPPORTED, "node '%s': op %s cannot be folded", n->name, n->op_type);
    enum { MAXIO = 64 };
    if (n->n_in > MAXIO || n->n_out > 8)
        return sal_fail(err, SAL_ERR_UNSUPPORTED, "node '%s': too many inputs to fold", n->name);
    const sal_shape *shp[MAXIO];
    int dts[MAXIO];
    const float *ptr[MAXIO];
    sal_shape oshape[8];
    memset(oshape, 0, sizeof oshape);   /* outputs an op leaves unset: scalars, not garbage sizes */
    int odt[8];
    for (int i = 0; i < n->n_in; i++) {
        shp[i] = in[i] ? &in[i]->shape : NULL;
        dts[i] = in[i] ? (int)in[i]->dtype : 0;
        ptr[i] = in[i] && in[i]->dtype == SAL_F32 ? (const float *)in[i]->data : NULL;
    }
    for (int i = 0; i < n->n_out; i++) odt[i] = SAL_F32;
    sal_op_ctx ctx = {0};
    ctx.g = g; ctx.node = n; ctx.n_in = n->n_in; ctx.in_shape = shp; ctx.in_dtype = dts;
    ctx.in_const = in; ctx.n_out = n->n_out; ctx.out_shape = oshape; ctx.out_dtype = odt;
    ctx.err = err;
    sal_status st = def->infer(&ctx);
    if (st) { free(ctx.params); return st; }
    if (def->flags & SAL_OPF_ALIAS) {
        st = fold_reshape(in[0], &oshape[0], &outs[0], err);
        free(ctx.params);
        return st;
    }
    float *scratch = calloc(ctx.scratch_floats + 1, sizeof(float));
    float *optr[8] = {0};
    const sal_shape *oshp[8];
    for (int i = 0; i < n->n_out; i++) {
        outs[i] = sal_tensor_new(SAL_F32, &oshape[i]);
        if (!outs[i]) st = SAL_ERR_NOMEM;
        else optr[i] = outs[i]->data;
        oshp[i] = &oshape[i];
    }
    if (!scratch || st) {
        st = sal_fail(err, SAL_ERR_NOMEM, "out of memory folding node '%s'", n->name);
    } else {
        sal_op_call c = {0};
        c.node = n; c.params = ctx.params; c.n_in = n->n_in; c.n_out = n->n_out; c.in = ptr;
        c.in_shape = shp; c.out = optr; c.out_shape = oshp; c.scratch = scratch; c.threads = 1;
        st = sal_cpu_forward(&c, err);
    }
    free(scratch);
    free(ctx.params);
    if (st)
        for (int i = 0; i < n->n_out; i++) { sal_tensor_free(outs[i]); outs[i] = NULL; }
    return st;
}

static int all_float(const sal_node *n, const sal_tensor *const *in) {
    for (int i = 0; i < n->n_in; i++)
        if (in[i] && in[i]->dtype != SAL_F32) return 0;
    return 1;
}

sal_status sal_fold_node(const sal_graph *g, const sal_node *n, const sal_tensor *const *in,
                         const sal_shape *const *in_shape, sal_tensor **outs, sal_error *err) {
    for (int i = 0; i < n->n_out; i++) outs[i] = NULL;
    /* the inputs read below must exist (in[] beyond n_in is not even initialized by callers) */
    int need = n->op == SAL_OP_GATHER || n->op == SAL_OP_ADD || n->op == SAL_OP_SUB ||
               n->op == SAL_OP_MUL || n->op == SAL_OP_DIV ? 2 : 1;
    if (n->n_in < need)
        return sal_fail(err, SAL_ERR_SHAPE, "node '%s' (%s) has %d inputs, needs %d", n->name,
                        n->op_type, n->n_in, need);
    for (int i = 0; i < need; i++)
        if (n->op == SAL_OP_SHAPE ? !in_shape[0] : !in[i])
            return sal_fail(err, SAL_ERR_SHAPE, "node '%s' (%s): input %d is required", n->name,
                            n->op_type, i);
    switch (n->op) {
    case SAL_OP_SHAPE: {
        const sal_shape *s = in_shape[0];
        int r = s->ndim;
        int64_t start = norm_axis(sal_attr_int(n, "start", 0), r), end = sal_attr_int(n, "end", r);
        end = norm_axis(end, r);
        start = start < 0 ? 0 : start > r ? r : start;
        end = end < 0 ? 0 : end > r ? r : end;
        sal_shape os = {1, {end > start ? end - start : 0}};
        sal_tensor *t = sal_tensor_new(SAL_I64, &os);
        if (!t) return sal_fail(err, SAL_ERR_NOMEM, "out of memory");
        for (int64_t i = start; i < end; i++) ((int64_t *)t->data)[i - start] = s->d[i];
        outs[0] = t;
        return SAL_OK;
    }
    case SAL_OP_CONSTANTOFSHAPE: {
        int64_t rank = sal_shape_numel(&in[0]->shape);
        sal_shape os = {rank < 0 || rank > SAL_MAX_DIMS ? SAL_MAX_DIMS + 1 : (int)rank, {0}};
        if (os.ndim > SAL_MAX_DIMS) return sal_fail(err, SAL_ERR_UNSUPPORTED, "node '%s': rank too high", n->name);
        for (int i = 0; i < os.ndim; i++) os.d[i] = sal_tensor_i64(in[0], i);
        /* a tensor made from nothing but a shape: 2^24 elements at most (64 MiB of float32) */
        int64_t want = sal_shape_numel(&os);
        if (want < 0 || want > (INT64_C(1) << 24)) {
            char buf[160];
            return sal_fail(err, SAL_ERR_UNSUPPORTED, "node '%s': ConstantOfShape of shape %s is over "
                            "2^24 elements", n->name, sal_shape_str(&os, buf, sizeof buf));
        }
        const sal_attr *a = sal_attr_find(n, "value");
        sal_dtype dt = a && a->t ? a->t->dtype : SAL_F32;
        sal_tensor *t = sal_tensor_new(dt, &os);
        if (!t) return sal_fail(err, SAL_ERR_NOMEM, "out of memory");
        int64_t total = sal_shape_numel(&os);
        size_t es = sal_dtype_size(dt);
        for (int64_t i = 0; a && a->t && a->t->data && i < total; i++)
            memcpy((char *)t->data + i * es, a->t->data, es);
        outs[0] = t;
        return SAL_OK;
    }
    case SAL_OP_GATHER: return fold_gather(n, in[0], in[1], outs, err);
    case SAL_OP_SLICE: return fold_slice(n, g->opset, in, n->n_in, outs, err);
    case SAL_OP_CAST: return fold_cast(n, in[0], outs, err);
    case SAL_OP_CONCAT:
        if (!all_float(n, in)) return fold_concat(n, in, n->n_in, outs, err);
        break;
    case SAL_OP_ADD: case SAL_OP_SUB: case SAL_OP_MUL: case SAL_OP_DIV:
        if (!all_float(n, in)) return fold_elementwise(n, in[0], in[1], outs, err);
        break;
    default:
        if (sal_fold_shape_handles(n, in)) return sal_fold_shape_op(n, in, outs, err);
        break;
    }
    if (!all_float(n, in)) {
        const sal_op_def *def = sal_op_def_of((sal_op_kind)n->op);
        if (def && (def->flags & SAL_OPF_ALIAS)) {
            /* shape ops on integer tensors: shapes from infer, data copied */
            sal_tensor *tmp = sal_tensor_new(SAL_F32, &in[0]->shape);
            if (!tmp) return sal_fail(err, SAL_ERR_NOMEM, "out of memory");
            const sal_tensor *in2[64];
            for (int i = 0; i < n->n_in && i < 64; i++) in2[i] = in[i];
            in2[0] = tmp;
            sal_tensor *o = NULL;
            sal_status st = fold_float_op(g, n, in2, &o, err);
            sal_tensor_free(tmp);
            if (st) return st;
            st = fold_reshape(in[0], &o->shape, outs, err);
            sal_tensor_free(o);
            return st;
        }
        return sal_fail(err, SAL_ERR_UNSUPPORTED, "node '%s': op %s on %s data is not supported",
                        n->name, n->op_type, sal_dtype_name(in[0] ? (int)in[0]->dtype : 0));
    }
    return fold_float_op(g, n, in, outs, err);
}

/* ------------------------------------------------------------------------------------------------ */
/* Finalize: order, resolve, fold                                                                  */

static sal_status topo_sort(sal_graph *g, sal_error *err) {
    int nn = g->n_nodes;
    if (nn == 0) return SAL_OK;
    int *producer = malloc(sizeof(int) * (size_t)g->n_values);
    int *order = malloc(sizeof(int) * (size_t)nn);
    char *done = calloc((size_t)nn, 1);
    sal_node *sorted = malloc(sizeof(sal_node) * (size_t)nn);
    sal_status st = SAL_OK;
    if (!producer || !order || !done || !sorted) {
        st = sal_fail(err, SAL_ERR_NOMEM, "%s: out of memory", g->path);
        goto out;
    }
    for (int v = 0; v < g->n_values; v++) producer[v] = -1;
    for (int i = 0; i < nn; i++)
        for (int j = 0; j < g->nodes[i].n_out; j++) {
            int v = g->nodes[i].out[j];
            if (v < 0) continue;
            if (producer[v] >= 0 || g->values[v].konst || g->values[v].is_input) {
                st = sal_fail(err, SAL_ERR_PARSE, "%s: value '%s' is produced twice (node '%s')",
                              g->path, g->values[v].name, g->nodes[i].name);
                goto out;
            }
            producer[v] = i;
        }
    for (int i = 0; i < nn; i++)   /* dangling inputs: read, but never provided */
        for (int j = 0; j < g->nodes[i].n_in; j++) {
            int v = g->nodes[i].in[j];
            if (v >= 0 && producer[v] < 0 && !g->values[v].konst && !g->values[v].is_input) {
                st = sal_fail(err, SAL_ERR_PARSE, "%s: node '%s' reads '%s', which no node, "
                              "initializer or graph input provides", g->path, g->nodes[i].name,
                              g->values[v].name);
                goto out;
            }
        }
    /* repeated passes: graphs are nearly always already ordered, so this is linear in practice */
    int count = 0, progress = 1;
    while (count < nn && progress) {
        progress = 0;
        for (int i = 0; i < nn; i++) {
            if (done[i]) continue;
            int ready = 1;
            for (int j = 0; j < g->nodes[i].n_in && ready; j++) {
                int v = g->nodes[i].in[j];
                if (v >= 0 && producer[v] >= 0 && !done[producer[v]]) ready = 0;
            }
            if (ready) { done[i] = 1; order[count++] = i; progress = 1; }
        }
    }
    if (count < nn) {
        for (int i = 0; i < nn; i++)
            if (!done[i]) {
                st = sal_fail(err, SAL_ERR_PARSE, "%s: the graph has a cycle through node '%s'",
                              g->path, g->nodes[i].name);
                break;
            }
        goto out;
    }
    for (int i = 0; i < nn; i++) sorted[i] = g->nodes[order[i]];
    memcpy(g->nodes, sorted, sizeof(sal_node) * (size_t)nn);
out:
    free(producer); free(order); free(done); free(sorted);
    return st;
}

static void set_producers(sal_graph *g) {
    for (int v = 0; v < g->n_values; v++) g->values[v].producer = -1;
    for (int i = 0; i < g->n_nodes; i++)
        for (int j = 0; j < g->nodes[i].n_out; j++)
            if (g->nodes[i].out[j] >= 0) g->values[g->nodes[i].out[j]].producer = i;
}

static void remove_node(sal_graph *g, int i) {
    sal_node_clear(&g->nodes[i]);
    memmove(&g->nodes[i], &g->nodes[i + 1], sizeof(sal_node) * (size_t)(g->n_nodes - i - 1));
    g->n_nodes--;
}

/* Fold every node whose inputs are all constants (at load: no shapes of runtime values known). */
static sal_status fold_constants(sal_graph *g, sal_error *err) {
    for (int i = 0; i < g->n_nodes;) {
        sal_node *n = &g->nodes[i];
        int all_const = 1, any_in = 0;
        const sal_tensor *in[64];
        const sal_shape *shp[64];
        if (n->n_in > 64) { i++; continue; }
        for (int j = 0; j < n->n_in; j++) {
            int v = n->in[j];
            in[j] = v >= 0 ? g->values[v].konst : NULL;
            shp[j] = in[j] ? &in[j]->shape : NULL;
            if (v >= 0) { any_in = 1; if (!in[j]) all_const = 0; }
        }
        /* Shape of a runtime input with a fully static declared shape folds too, except the
         * batch dimension which is always dynamic. */
        if (!all_const || !any_in) { i++; continue; }
        for (int j = 0; j < n->n_out; j++)
            if (n->out[j] >= 0 && g->values[n->out[j]].is_output) all_const = 0;
        if (!all_const) { i++; continue; }
        sal_tensor *outs[8] = {0};
        if (n->n_out > 8) { i++; continue; }
        sal_status st = sal_fold_node(g, n, in, shp, outs, err);
        if (st) return sal_fail_prefix(err, st, g->path);
        for (int j = 0; j < n->n_out; j++) {
            if (n->out[j] >= 0) g->values[n->out[j]].konst = outs[j];
            else sal_tensor_free(outs[j]);
        }
        g->consts_folded++;
        remove_node(g, i);
    }
    return SAL_OK;
}

static int count_consumers(const sal_graph *g, int v) {
    int c = 0;
    for (int i = 0; i < g->n_nodes; i++)
        for (int j = 0; j < g->nodes[i].n_in; j++) c += g->nodes[i].in[j] == v;
    return c;
}

/* Conv -> BatchNormalization with constant parameters: scale the weights, shift the bias. */
static sal_status fold_batchnorms(sal_graph *g, sal_error *err) {
    for (int i = 0; i < g->n_nodes; i++) {
        sal_node *bn = &g->nodes[i];
        if (bn->op != SAL_OP_BATCHNORM || bn->n_in < 5 || bn->in[0] < 0) continue;
        if (sal_attr_int(bn, "training_mode", 0)) continue;
        int extra = 0;
        for (int j = 1; j < bn->n_out; j++) extra |= bn->out[j] >= 0;
        if (extra) continue;
        int x = bn->in[0], p = g->values[x].producer;
        if (p < 0 || g->nodes[p].op != SAL_OP_CONV || g->values[x].is_output ||
            count_consumers(g, x) != 1)
            continue;
        sal_node *conv = &g->nodes[p];
        if (conv->n_in < 2 || conv->in[1] < 0 || !g->values[conv->in[1]].konst) continue;
        const sal_tensor *w = g->values[conv->in[1]].konst;
        const sal_tensor *b = conv->n_in > 2 && conv->in[2] >= 0 ? g->values[conv->in[2]].konst : NULL;
        if (conv->n_in > 2 && conv->in[2] >= 0 && !b) continue;
        const sal_tensor *prm[4];
        int ok = w->dtype == SAL_F32 && w->shape.ndim >= 3;
        for (int k = 0; k < 4 && ok; k++) {
            int v = bn->in[k + 1];
            prm[k] = v >= 0 ? g->values[v].konst : NULL;
            ok = prm[k] && prm[k]->dtype == SAL_F32 && sal_shape_numel(&prm[k]->shape) == w->shape.d[0];
        }
        if (!ok) continue;
        int64_t m = w->shape.d[0], per = sal_shape_numel(&w->shape) / m;
        float eps = sal_attr_float(bn, "epsilon", 1e-5f);
        sal_tensor *w2 = sal_tensor_clone(w);
        sal_shape bs = {1, {m}};
        sal_tensor *b2 = sal_tensor_new(SAL_F32, &bs);
        if (!w2 || !b2) { sal_tensor_free(w2); sal_tensor_free(b2); return sal_fail(err, SAL_ERR_NOMEM, "out of memory"); }
        const float *scale = prm[0]->data, *shift = prm[1]->data, *mean = prm[2]->data, *var = prm[3]->data;
        for (int64_t c = 0; c < m; c++) {
            double s = (double)scale[c] / sqrt((double)var[c] + (double)eps);
            for (int64_t k = 0; k < per; k++) ((float *)w2->data)[c * per + k] = (float)(((float *)w->data)[c * per + k] * s);
            double b0 = b ? ((const float *)b->data)[c] : 0.0;
            ((float *)b2->data)[c] = (float)((b0 - mean[c]) * s + shift[c]);
        }
        char name[512];
        snprintf(name, sizeof name, "%s/bnfold_w", bn->name);
        int wv = sal_graph_add_const(g, name, w2);
        snprintf(name, sizeof name, "%s/bnfold_b", bn->name);
        int bv = sal_graph_add_const(g, name, b2);
        if (wv < 0 || bv < 0) return sal_fail(err, SAL_ERR_NOMEM, "out of memory");
        conv = &g->nodes[p];
        bn = &g->nodes[i];
        if (conv->n_in < 3) {
            int *grown = realloc(conv->in, sizeof(int) * 3);
            if (!grown) return sal_fail(err, SAL_ERR_NOMEM, "out of memory");
            conv->in = grown;
            conv->n_in = 3;
        }
        conv->in[1] = wv;
        conv->in[2] = bv;
        conv->out[0] = bn->out[0];
        remove_node(g, i);
        set_producers(g);
        g->bn_folded++;
        i--;
    }
    return SAL_OK;
}

/* Drop nodes none of whose outputs reach a graph output. */
static void drop_dead(sal_graph *g) {
    char *live = calloc((size_t)g->n_values, 1);
    if (!live) return;
    for (int i = 0; i < g->n_outputs; i++) live[g->outputs[i]] = 1;
    for (int i = g->n_nodes - 1; i >= 0; i--) {
        sal_node *n = &g->nodes[i];
        int used = 0;
        for (int j = 0; j < n->n_out; j++) used |= n->out[j] >= 0 && live[n->out[j]];
        if (!used) { remove_node(g, i); continue; }
        for (int j = 0; j < n->n_in; j++)
            if (n->in[j] >= 0) live[n->in[j]] = 1;
    }
    free(live);
}

/* Secondary outputs (j >= 1) that no node reads and the graph does not output become absent
 * (-1): torch exports Dropout with its mask, MaxPool with indices, nobody using them. */
static void drop_unused_outputs(sal_graph *g) {
    for (int i = 0; i < g->n_nodes; i++) {
        sal_node *n = &g->nodes[i];
        for (int j = 1; j < n->n_out; j++) {
            int v = n->out[j];
            if (v < 0 || g->values[v].is_output) continue;
            if (count_consumers(g, v) == 0) n->out[j] = -1;
        }
    }
}

sal_status sal_graph_finalize(sal_graph *g, sal_error *err) {
    sal_status st = topo_sort(g, err);
    if (st) return st;
    for (int i = 0; i < g->n_nodes; i++) {
        sal_node *n = &g->nodes[i];
        const sal_op_def *def = sal_op_lookup(n->op_type);
        if (!def)
            return sal_fail(err, SAL_ERR_UNSUPPORTED, "%s: node '%s': op %s (opset %d) is not "
                            "supported by salient", g->path, n->name, n->op_type, g->opset);
        n->op = (int)def->kind;
        for (int j = 0; j < n->n_in; j++) {
            int v = n->in[j];
            if (v < 0) continue;
            const sal_value *val = &g->values[v];
            int produced = 0;
            for (int k = 0; k < i && !produced; k++)
                for (int q = 0; q < g->nodes[k].n_out; q++) produced |= g->nodes[k].out[q] == v;
            if (!produced && !val->konst && !val->is_input)
                return sal_fail(err, SAL_ERR_PARSE, "%s: node '%s' reads '%s', which no node, "
                                "initializer or graph input provides", g->path, n->name, val->name);
        }
    }
    for (int i = 0; i < g->n_outputs; i++) {
        const sal_value *val = &g->values[g->outputs[i]];
        int produced = val->konst || val->is_input;
        for (int k = 0; k < g->n_nodes && !produced; k++)
            for (int q = 0; q < g->nodes[k].n_out; q++) produced |= g->nodes[k].out[q] == g->outputs[i];
        if (!produced)
            return sal_fail(err, SAL_ERR_PARSE, "%s: graph output '%s' is not produced by any node",
                            g->path, val->name);
    }
    drop_dead(g);
    drop_unused_outputs(g);
    st = fold_constants(g, err);
    if (st) return st;
    set_producers(g);
    st = fold_batchnorms(g, err);
    if (st) return st;
    set_producers(g);
    return SAL_OK;
}
