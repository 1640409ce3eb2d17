/* fold_shape.c — constant evaluation of issue 13's shape-arithmetic ops on host tensors of any
 * type (int64 shapes, bool masks, float constants): Equal, Less, Greater, GreaterOrEqual,
 * LessOrEqual, And, Or, Not, Mod, Range,
 * ScatterND, Where, Expand and Tile when every input is a constant, and Transpose of integers.
 * sal_fold_node (fold.c) hands these ops here; exporters emit them to compute shapes (torch's
 * expand() and repeat() with -1 entries, Swin's window masks and relative position index), which
 * fold away at load or plan time. */
#include "fold.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "../ops/ops.h"

/* ------------------------------------------------------------------------------------------------ */
/* Helpers                                                                                          */

static int is_float(const sal_tensor *t) { return t->dtype == SAL_F32 || t->dtype == SAL_F64; }

/* The type results of arithmetic keep: float32 for float inputs, bool, else int64. */
static sal_dtype kept_type(const sal_tensor *t) {
    return is_float(t) ? SAL_F32 : t->dtype == SAL_BOOL ? SAL_BOOL : SAL_I64;
}

static void put(sal_tensor *t, int64_t i, double f, int64_t v) {
    switch (t->dtype) {
    case SAL_F32: ((float *)t->data)[i] = (float)f; break;
    case SAL_BOOL: ((uint8_t *)t->data)[i] = v != 0; break;
    default: ((int64_t *)t->data)[i] = v; break;
    }
}

/* Copy element j of src into element i of dst (same kept type). */
static void put_from(sal_tensor *dst, int64_t i, const sal_tensor *src, int64_t j) {
    put(dst, i, sal_tensor_f64(src, j), sal_tensor_i64(src, j));
}

static sal_status nomem(sal_error *err) { return sal_fail(err, SAL_ERR_NOMEM, "out of memory"); }

static sal_status need(const sal_node *n, const sal_tensor *const *in, int k, sal_error *err) {
    for (int i = 0; i < k; i++)
        if (i >= n->n_in || !in[i])
            return sal_fail(err, SAL_ERR_SHAPE, "node '%s' (%s): input %d is missing", n->name,
                            n->op_type, i);
    return SAL_OK;
}

/* Element strides of a (right-aligned) over out: 0 on broadcast dims. */
static void bstrides(const sal_shape *a, const sal_shape *out, int64_t *st) {
    int64_t s = 1;
    for (int d = out->ndim - 1; d >= 0; d--) {
        int ad = d - (out->ndim - a->ndim);
        int64_t dim = ad >= 0 ? a->d[ad] : 1;
        st[d] = dim == 1 ? 0 : s;
        s *= dim;
    }
}

static int64_t boff(const sal_shape *out, const int64_t *st, int64_t i) {
    int64_t o = 0;
    for (int d = out->ndim - 1; d >= 0; d--) {
        int64_t q = i / out->d[d];
        o += (i - q * out->d[d]) * st[d];
        i = q;
    }
    return o;
}

/* ------------------------------------------------------------------------------------------------ */
/* Element-wise: Equal Less Greater Not Mod Where                                                   */

static int64_t mod_int(int64_t a, int64_t b, int fmod_) {
    if (b == 0) return 0;
    int64_t r = a % b;
    if (!fmod_ && r != 0 && ((r < 0) != (b < 0))) r += b;   /* sign of the divisor */
    return r;
}

static sal_status fold_binary(const sal_node *n, const sal_tensor *a, const sal_tensor *b,
                              sal_tensor **out, sal_error *err) {
    sal_shape os;
    if (sal_broadcast(&a->shape, &b->shape, &os, NULL))
        return sal_fail(err, SAL_ERR_SHAPE, "node '%s' (%s): shapes do not broadcast", n->name, n->op_type);
    int64_t sa[SAL_MAX_DIMS], sb[SAL_MAX_DIMS];
    bstrides(&a->shape, &os, sa);
    bstrides(&b->shape, &os, sb);
    const int fl = is_float(a) || is_float(b);
    sal_dtype dt = n->op == SAL_OP_MOD ? (fl ? SAL_F32 : SAL_I64) : SAL_BOOL;
    sal_tensor *t = sal_tensor_new(dt, &os);
    if (!t) return nomem(err);
    const int fmod_ = sal_attr_int(n, "fmod", 0) != 0;
    const int64_t total = sal_shape_numel(&os);
    for (int64_t i = 0; i < total; i++) {
        const int64_t ia = boff(&os, sa, i), ib = boff(&os, sb, i);
        const double x = sal_tensor_f64(a, ia), y = sal_tensor_f64(b, ib);
        const int64_t u = sal_tensor_i64(a, ia), v = sal_tensor_i64(b, ib);
        int64_t r = 0;
        double f = 0;
        switch (n->op) {
        case SAL_OP_EQUAL: r = fl ? x == y : u == v; break;
        case SAL_OP_LESS: r = fl ? x < y : u < v; break;
        case SAL_OP_GREATER: r = fl ? x > y : u > v; break;
        case SAL_OP_GREATEROREQUAL: r = fl ? x >= y : u >= v; break;
        case SAL_OP_LESSOREQUAL: r = fl ? x <= y : u <= v; break;
        case SAL_OP_AND: r = (x != 0) && (y != 0); break;
        case SAL_OP_OR: r = (x != 0) || (y != 0); break;
        default:   /* Mod */
            if (fl) {
                f = fmod(x, y);
                if (!fmod_ && f != 0 && ((f < 0) != (y < 0))) f += y;
            } else {
                r = mod_int(u, v, fmod_);
            }
        }
        put(t, i, f, r);
    }
    *out = t;
    return SAL_OK;
}

static sal_status fold_not(const sal_tensor *x, sal_tensor **out, sal_error *err) {
    sal_tensor *t = sal_tensor_new(SAL_BOOL, &x->shape);
    if (!t) return nomem(err);
    const int64_t total = sal_shape_numel(&x->shape);
    for (int64_t i = 0; i < total; i++) ((uint8_t *)t->data)[i] = sal_tensor_f64(x, i) == 0;
    *out = t;
    return SAL_OK;
}

static sal_status fold_where(const sal_node *n, const sal_tensor *c, const sal_tensor *x,
                             const sal_tensor *y, sal_tensor **out, sal_error *err) {
    sal_shape t0, os;
    if (sal_broadcast(&c->shape, &x->shape, &t0, NULL) || sal_broadcast(&t0, &y->shape, &os, NULL))
        return sal_fail(err, SAL_ERR_SHAPE, "node '%s' (Where): shapes do not broadcast", n->name);
    int64_t sc[SAL_MAX_DIMS], sx[SAL_MAX_DIMS], sy[SAL_MAX_DIMS];
    bstrides(&c->shape, &os, sc);
    bstrides(&x->shape, &os, sx);
    bstrides(&y->shape, &os, sy);
    sal_dtype dt = is_float(x) || is_float(y) ? SAL_F32 : kept_type(x);
    sal_tensor *t = sal_tensor_new(dt, &os);
    if (!t) return nomem(err);
    const int64_t total = sal_shape_numel(&os);
    for (int64_t i = 0; i < total; i++) {
        if (sal_tensor_f64(c, boff(&os, sc, i)) != 0) put_from(t, i, x, boff(&os, sx, i));
        else put_from(t, i, y, boff(&os, sy, i));
    }
    *out = t;
    return SAL_OK;
}

/* ------------------------------------------------------------------------------------------------ */
/* Expand, Tile, Range, ScatterND                                                                   */

static sal_status int_list(const sal_node *n, const sal_tensor *t, const char *what, int64_t *v,
                           int *k, sal_error *err) {
    int64_t m = sal_shape_numel(&t->shape);
    if (is_float(t) || m > SAL_MAX_DIMS)
        return sal_fail(err, SAL_ERR_SHAPE, "node '%s' (%s): %s must be at most %d integers",
                        n->name, n->op_type, what, SAL_MAX_DIMS);
    for (int64_t i = 0; i < m; i++) v[i] = sal_tensor_i64(t, i);
    *k = (int)m;
    return SAL_OK;
}

/* out[d] reads x at coordinate o_d mod x_d (x right-aligned): Expand and Tile. */
static sal_status fold_tile_to(const sal_tensor *x, const sal_shape *os, sal_tensor **out, sal_error *err) {
    sal_tensor *t = sal_tensor_new(kept_type(x), os);
    if (!t) return nomem(err);
    const int64_t total = sal_shape_numel(os);
    for (int64_t i = 0; i < total; i++) {
        int64_t r = i, off = 0, st = 1;
        for (int d = os->ndim - 1; d >= 0; d--) {
            int xd = d - (os->ndim - x->shape.ndim);
            int64_t dim = xd >= 0 ? x->shape.d[xd] : 1, q = r / os->d[d];
            off += ((r - q * os->d[d]) % dim) * st;
            st *= dim;
            r = q;
        }
        put_from(t, i, x, off);
    }
    *out = t;
    return SAL_OK;
}

static sal_status fold_expand(const sal_node *n, const sal_tensor *x, const sal_tensor *shape,
                              sal_tensor **out, sal_error *err) {
    int64_t v[SAL_MAX_DIMS];
    int k;
    sal_status st = int_list(n, shape, "shape", v, &k, err);
    if (st) return st;
    sal_shape s = {k, {0}}, os;
    for (int i = 0; i < k; i++) s.d[i] = v[i];
    if (sal_broadcast(&x->shape, &s, &os, NULL))
        return sal_fail(err, SAL_ERR_SHAPE, "node '%s' (Expand): input does not broadcast to the shape", n->name);
    return fold_tile_to(x, &os, out, err);
}

static sal_status fold_tile(const sal_node *n, const sal_tensor *x, const sal_tensor *rep,
                            sal_tensor **out, sal_error *err) {
    int64_t v[SAL_MAX_DIMS];
    int k;
    sal_status st = int_list(n, rep, "repeats", v, &k, err);
    if (st) return st;
    if (k != x->shape.ndim)
        return sal_fail(err, SAL_ERR_SHAPE, "node '%s' (Tile): %d repeats for rank %d", n->name, k, x->shape.ndim);
    sal_shape os = x->shape;
    for (int d = 0; d < k; d++) {
        if (v[d] < 0) return sal_fail(err, SAL_ERR_SHAPE, "node '%s' (Tile): negative repeats", n->name);
        os.d[d] *= v[d];
    }
    return fold_tile_to(x, &os, out, err);
}

static sal_status fold_range(const sal_node *n, const sal_tensor *const *in, sal_tensor **out,
                             sal_error *err) {
    for (int i = 0; i < 3; i++)
        if (sal_shape_numel(&in[i]->shape) != 1)
            return sal_fail(err, SAL_ERR_SHAPE, "node '%s' (Range): start, limit and delta must be scalars", n->name);
    const int fl = is_float(in[0]) || is_float(in[1]) || is_float(in[2]);
    const double s = sal_tensor_f64(in[0], 0), l = sal_tensor_f64(in[1], 0), d = sal_tensor_f64(in[2], 0);
    if (d == 0) return sal_fail(err, SAL_ERR_SHAPE, "node '%s' (Range): delta is 0", n->name);
    double cnt = ceil((l - s) / d);
    if (!(cnt >= 0)) cnt = 0;
    if (cnt > (double)(1 << 24))
        return sal_fail(err, SAL_ERR_UNSUPPORTED, "node '%s' (Range): %.0f elements", n->name, cnt);
    sal_shape os = {1, {(int64_t)cnt}};
    sal_tensor *t = sal_tensor_new(fl ? SAL_F32 : SAL_I64, &os);
    if (!t) return nomem(err);
    const int64_t si = sal_tensor_i64(in[0], 0), di = sal_tensor_i64(in[2], 0);
    for (int64_t i = 0; i < os.d[0]; i++) put(t, i, s + (double)i * d, si + i * di);
    *out = t;
    return SAL_OK;
}

/* ScatterND (reduction none, add, mul, max, min): data with updates written at the index tuples
 * (the last dim of indices), in order. */
static sal_status fold_scatternd(const sal_node *n, const sal_tensor *data, const sal_tensor *idx,
                                 const sal_tensor *upd, sal_tensor **out, sal_error *err) {
    const sal_shape *ds = &data->shape, *is = &idx->shape;
    if (is_float(idx) || is->ndim < 1)
        return sal_fail(err, SAL_ERR_SHAPE, "node '%s' (ScatterND): indices must be integers of rank >= 1", n->name);
    const int q = is->ndim, k = (int)is->d[q - 1];
    if (k > ds->ndim)
        return sal_fail(err, SAL_ERR_SHAPE, "node '%s' (ScatterND): index tuples of %d for rank %d", n->name, k, ds->ndim);
    int64_t slice = 1, ntup = 1;
    for (int d = k; d < ds->ndim; d++) slice *= ds->d[d];
    for (int d = 0; d < q - 1; d++) ntup *= is->d[d];
    if (sal_shape_numel(&upd->shape) != ntup * slice)
        return sal_fail(err, SAL_ERR_SHAPE, "node '%s' (ScatterND): updates have %lld elements, need %lld",
                        n->name, (long long)sal_shape_numel(&upd->shape), (long long)(ntup * slice));
    const char *red = sal_attr_str(n, "reduction", "none");
    int mode = strcmp(red, "none") == 0 ? 0 : strcmp(red, "add") == 0 ? 1 : strcmp(red, "mul") == 0 ? 2
               : strcmp(red, "max") == 0 ? 3 : strcmp(red, "min") == 0 ? 4 : -1;
    if (mode < 0)
        return sal_fail(err, SAL_ERR_UNSUPPORTED, "node '%s' (ScatterND): reduction '%s'", n->name, red);
    sal_tensor *t = sal_tensor_new(kept_type(data), ds);
    if (!t) return nomem(err);
    const int64_t total = sal_shape_numel(ds);
    for (int64_t i = 0; i < total; i++) put_from(t, i, data, i);
    for (int64_t u = 0; u < ntup; u++) {
        int64_t base = 0;
        for (int d = 0; d < k; d++) {
            int64_t c = sal_tensor_i64(idx, u * k + d);
            if (c < 0) c += ds->d[d];
            if (c < 0 || c >= ds->d[d]) {
                sal_tensor_free(t);
                return sal_fail(err, SAL_ERR_SHAPE, "node '%s' (ScatterND): index out of range", n->name);
            }
            base = base * ds->d[d] + c;
        }
        base *= slice;
        for (int64_t j = 0; j < slice; j++) {
            const int64_t o = base + j, s = u * slice + j;
            const double a = sal_tensor_f64(t, o), b = sal_tensor_f64(upd, s);
            const int64_t ai = sal_tensor_i64(t, o), bi = sal_tensor_i64(upd, s);
            switch (mode) {
            case 0: put_from(t, o, upd, s); break;
            case 1: put(t, o, a + b, ai + bi); break;
            case 2: put(t, o, a * b, ai * bi); break;
            case 3: put(t, o, fmax(a, b), ai > bi ? ai : bi); break;
            default: put(t, o, fmin(a, b), ai < bi ? ai : bi); break;
            }
        }
    }
    *out = t;
    return SAL_OK;
}

/* Transpose of an integer or bool tensor (Swin's relative position index). */
static sal_status fold_transpose(const sal_node *n, const sal_tensor *x, sal_tensor **out, sal_error *err) {
    const int r = x->shape.ndim;
    int64_t perm[SAL_MAX_DIMS];
    const int64_t *pa;
    int np = sal_attr_ints(n, "perm", &pa);
    unsigned seen = 0;
    for (int d = 0; d < r; d++) {
        perm[d] = np < 0 ? r - 1 - d : d < np ? pa[d] : -1;
        if (np >= 0 && np != r) perm[d] = -1;
        if (perm[d] < 0 || perm[d] >= r || (seen & (1u << perm[d])))
            return sal_fail(err, SAL_ERR_SHAPE, "node '%s' (Transpose): perm is not a permutation of "
                            "0..%d", n->name, r - 1);
        seen |= 1u << perm[d];
    }
    sal_shape os = {r, {0}};
    int64_t xs[SAL_MAX_DIMS], s = 1;
    for (int d = r - 1; d >= 0; d--) { xs[d] = s; s *= x->shape.d[d]; }
    for (int d = 0; d < r; d++) os.d[d] = x->shape.d[perm[d]];
    sal_tensor *t = sal_tensor_new(kept_type(x), &os);
    if (!t) return nomem(err);
    const int64_t total = sal_shape_numel(&os);
    for (int64_t i = 0; i < total; i++) {
        int64_t q = i, off = 0;
        for (int d = r - 1; d >= 0; d--) {
            int64_t c = q % os.d[d];
            q /= os.d[d];
            off += c * xs[perm[d]];
        }
        put_from(t, i, x, off);
    }
    *out = t;
    return SAL_OK;
}

/* ------------------------------------------------------------------------------------------------ */

int sal_fold_shape_handles(const sal_node *n, const sal_tensor *const *in) {
    switch (n->op) {
    case SAL_OP_EQUAL: case SAL_OP_LESS: case SAL_OP_GREATER: case SAL_OP_NOT: case SAL_OP_MOD:
    case SAL_OP_RANGE: case SAL_OP_SCATTERND: case SAL_OP_WHERE: case SAL_OP_EXPAND: case SAL_OP_TILE:
    case SAL_OP_GREATEROREQUAL: case SAL_OP_LESSOREQUAL: case SAL_OP_AND: case SAL_OP_OR:
        return 1;
    case SAL_OP_TRANSPOSE:   /* on floats, the CPU kernel */
        return n->n_in >= 1 && in[0] && !is_float(in[0]);
    default:
        return 0;
    }
}

sal_status sal_fold_shape_op(const sal_node *n, const sal_tensor *const *in, sal_tensor **outs,
                             sal_error *err) {
    sal_status st;
    switch (n->op) {
    case SAL_OP_EQUAL: case SAL_OP_LESS: case SAL_OP_GREATER: case SAL_OP_MOD:
    case SAL_OP_GREATEROREQUAL: case SAL_OP_LESSOREQUAL: case SAL_OP_AND: case SAL_OP_OR:
        if ((st = need(n, in, 2, err))) return st;
        return fold_binary(n, in[0], in[1], outs, err);
    case SAL_OP_NOT:
        if ((st = need(n, in, 1, err))) return st;
        return fold_not(in[0], outs, err);
    case SAL_OP_WHERE:
        if ((st = need(n, in, 3, err))) return st;
        return fold_where(n, in[0], in[1], in[2], outs, err);
    case SAL_OP_EXPAND:
        if ((st = need(n, in, 2, err))) return st;
        return fold_expand(n, in[0], in[1], outs, err);
    case SAL_OP_TILE:
        if ((st = need(n, in, 2, err))) return st;
        return fold_tile(n, in[0], in[1], outs, err);
    case SAL_OP_RANGE:
        if ((st = need(n, in, 3, err))) return st;
        return fold_range(n, in, outs, err);
    case SAL_OP_SCATTERND:
        if ((st = need(n, in, 3, err))) return st;
        return fold_scatternd(n, in[0], in[1], in[2], outs, err);
    case SAL_OP_TRANSPOSE:
        if ((st = need(n, in, 1, err))) return st;
        return fold_transpose(n, in[0], outs, err);
    default:
        return sal_fail(err, SAL_ERR_INTERNAL, "node '%s': op %s is not a shape op", n->name, n->op_type);
    }
}
