/* cpu_conv_dnnl.c — the CPU backend's convolutions through oneDNN's primitives (Debian libdnnl
 * 2.6, C API): dnnl_convolution_forward (bias and the fused Relu/Clip as post-ops) and
 * dnnl_convolution_backward_data, in the blocked layouts the library chooses (format_tag any for
 * weights, source and destination), with our plain NCHW tensors reordered in and out around each
 * call. A side the engine's layout pass holds channels-last (sal_conv_params.nhwc_x / nhwc_y)
 * is given to the primitive as tag nhwc, in place, with no reorder (oneDNN's jit:avx2 and
 * jit_1x1:avx2 kernels take nhwc directly). Weights are reordered once, at the first call of a
 * shape, and kept with the backend (shared by every plan of that weight tensor in that layout).
 *
 * One cache per CPU backend (no global state): entries keyed by the convolution's whole geometry,
 * its fused activation and its weight/bias pointers (constants: stable for the model's life), one
 * per direction. Calls on one backend are sequential (a session is used by one thread at a time),
 * so the workspace for blocked copies is one growable buffer of the cache.
 *
 * Backward-data computes dX into the workspace and ADDS it into gin[0] with a reorder whose
 * post-op is a sum (the engine's contract: gradients accumulate), in one pass; the first
 * contribution to a gradient (sal_op_call.gin_set) the primitive writes there directly when
 * diff_src is already in gin's layout.
 *
 * Which convolutions go here is sal_dnnl_conv_choose()'s rule (measured: README, "CPU math
 * library"); the im2col/depthwise kernels of cpu_nn.c keep the rest. */
#include "cpu_conv_dnnl.h"
#include "cpu_mem.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include <oneapi/dnnl/dnnl.h>

/* ------------------------------------------------------------------------------------------------ */
/* Cache                                                                                            */

typedef struct wcache {   /* a weight tensor reordered into one layout */
    const float *src;     /* the plain (M, C/G, kh, kw) weights it came from */
    dnnl_memory_desc_t md;
    float *data;
} wcache;

typedef struct centry {
    sal_conv_params key;   /* geometry + act (dw_slot zeroed) */
    const float *w, *b;
    int dir;               /* 0 forward, 1 backward-data */
    dnnl_primitive_t prim;
    dnnl_primitive_t in_reorder;    /* plain -> the primitive's src / diff_dst layout, or NULL */
    dnnl_primitive_t out_reorder;   /* the primitive's dst layout -> plain (forward, or NULL);
                                       backward: diff_src layout -> plain with a sum */
    int add_out;                    /* backward, diff_src already in our layout: added to gin by a
                                       loop of ours (oneDNN's same-layout sum reorder is its slow
                                       "simple:any" one) */
    dnnl_memory_desc_t plain_in, plain_out, in_md, out_md;
    size_t in_bytes, out_bytes;     /* workspace bytes for the blocked copies (0: none) */
    float *weights;                 /* in the primitive's layout (owned by a wcache) */
    dnnl_memory_t m_in, m_w, m_b, m_out, m_pin, m_pout;   /* handles set per call */
} centry;

struct sal_dnnl_conv_cache {
    dnnl_engine_t eng;
    dnnl_stream_t stream;
    centry *e;
    int n, cap;
    wcache *wc;
    int nw, wcap;
    float *ws;       /* workspace: blocked input copy, then blocked output */
    size_t ws_bytes;
};

#define DN(call, what)                                                                              \
    do {                                                                                            \
        dnnl_status_t s_ = (call);                                                                  \
        if (s_ != dnnl_success) {                                                                   \
            st = sal_fail(err, s_ == dnnl_out_of_memory ? SAL_ERR_NOMEM : SAL_ERR_UNSUPPORTED,       \
                          "node '%s' (Conv): oneDNN %s failed (status %d)", name, what, (int)s_);   \
            goto done;                                                                              \
        }                                                                                           \
    } while (0)

sal_status sal_dnnl_conv_cache_create(sal_dnnl_conv_cache **out, sal_error *err) {
    sal_dnnl_conv_cache *c = calloc(1, sizeof *c);
    if (!c) return sal_fail(err, SAL_ERR_NOMEM, "out of memory for the oneDNN convolution cache");
    if (dnnl_engine_create(&c->eng, dnnl_cpu, 0) != dnnl_success ||
        dnnl_stream_create(&c->stream, c->eng, dnnl_stream_default_flags) != dnnl_success) {
        sal_dnnl_conv_cache_free(c);
        return sal_fail(err, SAL_ERR_UNSUPPORTED, "oneDNN: cannot create the CPU engine or stream");
    }
    *out = c;
    return SAL_OK;
}

static void centry_free(centry *e) {
    dnnl_primitive_t ps[] = {e->prim, e->in_reorder, e->out_reorder};
    for (int i = 0; i < 3; i++)
        if (ps[i]) dnnl_primitive_destroy(ps[i]);
    dnnl_memory_t ms[] = {e->m_in, e->m_w, e->m_b, e->m_out, e->m_pin, e->m_pout};
    for (int i = 0; i < 6; i++)
        if (ms[i]) dnnl_memory_destroy(ms[i]);
}

void sal_dnnl_conv_cache_free(sal_dnnl_conv_cache *c) {
    if (!c) return;
    for (int i = 0; i < c->n; i++) centry_free(&c->e[i]);
    for (int i = 0; i < c->nw; i++) free(c->wc[i].data);
    free(c->e);
    free(c->wc);
    free(c->ws);
    if (c->stream) dnnl_stream_destroy(c->stream);
    if (c->eng) dnnl_engine_destroy(c->eng);
    free(c);
}

size_t sal_dnnl_conv_cache_weight_bytes(const sal_dnnl_conv_cache *c) {
    size_t s = 0;
    for (int i = 0; c && i < c->nw; i++) s += dnnl_memory_desc_get_size(&c->wc[i].md);
    return s;
}

/* ------------------------------------------------------------------------------------------------ */
/* Choice                                                                                           */

int sal_dnnl_conv_nhwc_ok(const sal_conv_params *p, int mode) {
    return mode == SAL_CONV_IMPL_LAYOUT && p->const_wb && p->spatial == 2 && p->group == 1;
}

int sal_dnnl_conv_choose(const sal_conv_params *p, int mode) {
    /* channels-last activations: only this path reads them (whatever the mode is now: a plan made
     * under LAYOUT keeps its layouts) */
    if ((p->nhwc_x || p->nhwc_y) && p->const_wb) return 1;
    if (mode == SAL_CONV_IMPL_GEMM || !p->const_wb) return 0;
    if (p->spatial != 2 && p->spatial != 1) return 0;
    if (mode == SAL_CONV_IMPL_DNNL) return 1;
    /* auto (and layout, for convolutions the layout pass left in NCHW): group-1 convolutions
     * other than 1x1 stride 1 (ResNet's 3x3s, its 7x7 stem and strided 1x1s; EfficientNet's stem); grouped/depthwise ones stay on our kernels (the depthwise ones
     * win there), and so do 1x1 stride-1 ones (one plain GEMM, no im2col to save; through oneDNN
     * they measured no faster on EfficientNet-Lite0). The rule reads neither the batch nor the
     * spatial size, so an image's convolutions run the same code at any batch and on an
     * incremental tile as on the whole plane. */
    if (p->group != 1) return 0;
    const int pointwise = p->kh == 1 && p->kw == 1 && p->sh == 1 && p->sw == 1 && !p->pt && !p->pl &&
                          !p->pb && !p->pr;
    return !pointwise;
}

/* ------------------------------------------------------------------------------------------------ */
/* Entries                                                                                          */

static sal_conv_params key_of(const sal_conv_params *p) {
    sal_conv_params k;
    memset(&k, 0, sizeof k);
    k.spatial = p->spatial; k.n = p->n; k.c = p->c; k.h = p->h; k.w = p->w; k.m = p->m;
    k.oh = p->oh; k.ow = p->ow; k.kh = p->kh; k.kw = p->kw; k.sh = p->sh; k.sw = p->sw;
    k.dh = p->dh; k.dw = p->dw; k.pt = p->pt; k.pl = p->pl; k.pb = p->pb; k.pr = p->pr;
    k.group = p->group; k.has_bias = p->has_bias; k.act = p->act;
    k.act_lo = p->act ? p->act_lo : 0.f; k.act_hi = p->act ? p->act_hi : 0.f;
    k.nhwc_x = p->nhwc_x; k.nhwc_y = p->nhwc_y;
    return k;
}

static int key_eq(const sal_conv_params *a, const sal_conv_params *b) {
    return a->spatial == b->spatial && a->n == b->n && a->c == b->c && a->h == b->h && a->w == b->w &&
           a->m == b->m && a->oh == b->oh && a->ow == b->ow && a->kh == b->kh && a->kw == b->kw &&
           a->sh == b->sh && a->sw == b->sw && a->dh == b->dh && a->dw == b->dw && a->pt == b->pt &&
           a->pl == b->pl && a->pb == b->pb && a->pr == b->pr && a->group == b->group &&
           a->has_bias == b->has_bias && a->act == b->act && a->nhwc_x == b->nhwc_x && a->nhwc_y == b->nhwc_y &&
           (!a->act || (a->act_lo == b->act_lo && a->act_hi == b->act_hi));
}

static sal_status grow_ws(sal_dnnl_conv_cache *c, size_t bytes, const char *name, sal_error *err) {
    if (bytes <= c->ws_bytes) return SAL_OK;
    void *p = NULL;
    if (!(p = sal_cpu_alloc(bytes)))
        return sal_fail(err, SAL_ERR_NOMEM, "node '%s' (Conv): out of memory for a %zu-byte oneDNN "
                        "workspace", name, bytes);
    free(c->ws);
    c->ws = p;
    c->ws_bytes = bytes;
    return SAL_OK;
}

/* The weights w (plain, tag oihw or goihw) in layout md, reordered once per (w, md). */
static sal_status weights_in(sal_dnnl_conv_cache *c, const float *w, const dnnl_memory_desc_t *plain,
                             const dnnl_memory_desc_t *md, const char *name, float **out, sal_error *err) {
    sal_status st = SAL_OK;
    for (int i = 0; i < c->nw; i++)
        if (c->wc[i].src == w && dnnl_memory_desc_equal(&c->wc[i].md, md)) {
            *out = c->wc[i].data;
            return SAL_OK;
        }
    if (c->nw == c->wcap) {
        int cap = c->wcap ? 2 * c->wcap : 32;
        wcache *n = realloc(c->wc, sizeof *n * (size_t)cap);
        if (!n) return sal_fail(err, SAL_ERR_NOMEM, "node '%s' (Conv): out of memory", name);
        c->wc = n;
        c->wcap = cap;
    }
    void *data = NULL;
    size_t bytes = dnnl_memory_desc_get_size(md);
    if (!(data = sal_cpu_alloc(bytes)))
        return sal_fail(err, SAL_ERR_NOMEM, "node '%s' (Conv): out of memory for reordered weights", name);
    dnnl_memory_t ms = NULL, md_ = NULL;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_primitive_t r = NULL;
    DN(dnnl_memory_create(&ms, plain, c->eng, (void *)w), "weight memory");
    DN(dnnl_memory_create(&md_, md, c->eng, data), "weight memory");
    DN(dnnl_reorder_primitive_desc_create(&pd, plain, c->eng, md, c->eng, NULL), "weight reorder");
    DN(dnnl_primitive_create(&r, pd), "weight reorder");
    {
        dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, ms}, {DNNL_ARG_TO, md_}};
        DN(dnnl_primitive_execute(r, c->stream, 2, args), "weight reorder");
        DN(dnnl_stream_wait(c->stream), "weight reorder");
    }
    c->wc[c->nw].src = w;
    c->wc[c->nw].md = *md;
    c->wc[c->nw].data = data;
    c->nw++;
    *out = data;
    data = NULL;
done:
    if (r) dnnl_primitive_destroy(r);
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (ms) dnnl_memory_destroy(ms);
    if (md_) dnnl_memory_destroy(md_);
    free(data);
    return st;
}

/* A reorder primitive from -> to (with a sum post-op when accumulate), or NULL when the layouts
 * are equal and no sum is wanted. */
static dnnl_status_t make_reorder(sal_dnnl_conv_cache *c, const dnnl_memory_desc_t *from,
                                  const dnnl_memory_desc_t *to, int accumulate, dnnl_primitive_t *out) {
    *out = NULL;
    if (!accumulate && dnnl_memory_desc_equal(from, to)) return dnnl_success;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t po = NULL;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_status_t s = dnnl_success;
    if (accumulate) {
        if ((s = dnnl_primitive_attr_create(&attr)) || (s = dnnl_post_ops_create(&po)) ||
            (s = dnnl_post_ops_append_sum(po, 1.f)) || (s = dnnl_primitive_attr_set_post_ops(attr, po)))
            goto done;
    }
    if ((s = dnnl_reorder_primitive_desc_create(&pd, from, c->eng, to, c->eng, attr))) goto done;
    s = dnnl_primitive_create(out, pd);
done:
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (po) dnnl_post_ops_destroy(po);
    if (attr) dnnl_primitive_attr_destroy(attr);
    return s;
}

static sal_status entry_make(sal_dnnl_conv_cache *c, const sal_conv_params *p, const float *w, const float *b,
                             int dir, const char *name, centry **out, sal_error *err) {
    sal_status st = SAL_OK;
    if (c->n == c->cap) {
        int cap = c->cap ? 2 * c->cap : 32;
        centry *n = realloc(c->e, sizeof *n * (size_t)cap);
        if (!n) return sal_fail(err, SAL_ERR_NOMEM, "node '%s' (Conv): out of memory", name);
        c->e = n;
        c->cap = cap;
    }
    centry *e = &c->e[c->n];
    memset(e, 0, sizeof *e);
    e->key = key_of(p);
    e->w = w;
    e->b = b;
    e->dir = dir;

    const int64_t G = p->group;
    dnnl_dims_t xd = {p->n, p->c, p->h, p->w}, yd = {p->n, p->m, p->oh, p->ow};
    dnnl_dims_t wd = {p->m, p->c / G, p->kh, p->kw}, gwd = {G, p->m / G, p->c / G, p->kh, p->kw};
    dnnl_dims_t bd = {p->m};
    dnnl_dims_t strides = {p->sh, p->sw}, dil = {p->dh - 1, p->dw - 1};
    dnnl_dims_t pad_l = {p->pt, p->pl}, pad_r = {p->pb, p->pr};
    dnnl_memory_desc_t x_any, y_any, w_any, w_plain, b_md;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t po = NULL;
    dnnl_primitive_desc_t pd = NULL, hint = NULL;
    dnnl_convolution_desc_t cd;
    /* our memory: (N, C, H, W), or (N, H, W, C) on a side the layout pass made channels-last */
    const dnnl_format_tag_t x_tag = p->nhwc_x ? dnnl_nhwc : dnnl_nchw, y_tag = p->nhwc_y ? dnnl_nhwc : dnnl_nchw;
    DN(dnnl_memory_desc_init_by_tag(&e->plain_in, 4, dir ? yd : xd, dnnl_f32, dir ? y_tag : x_tag), "descriptor");
    DN(dnnl_memory_desc_init_by_tag(&e->plain_out, 4, dir ? xd : yd, dnnl_f32, dir ? x_tag : y_tag), "descriptor");
    /* format any: the blocked layouts (nhwc, nChw16c) are where oneDNN's fast kernels are; with
     * plain nchw it falls back to its own im2col + GEMM ("gemm:jit"), which is what cpu_nn.c does.
     * With a channels-last side, both sides are nhwc: the primitive reads or writes our memory in
     * place there, and the other side is reordered from or to (N, C, H, W) (an nhwc side beside a
     * format-any one made oneDNN 2.6 fall back to its reference kernel for 1x1 convolutions). */
    const dnnl_format_tag_t act_tag = p->nhwc_x || p->nhwc_y ? dnnl_nhwc : dnnl_format_tag_any;
    DN(dnnl_memory_desc_init_by_tag(&x_any, 4, xd, dnnl_f32, act_tag), "descriptor");
    DN(dnnl_memory_desc_init_by_tag(&y_any, 4, yd, dnnl_f32, act_tag), "descriptor");
    if (G == 1) {
        DN(dnnl_memory_desc_init_by_tag(&w_any, 4, wd, dnnl_f32, dnnl_format_tag_any), "descriptor");
        DN(dnnl_memory_desc_init_by_tag(&w_plain, 4, wd, dnnl_f32, dnnl_oihw), "descriptor");
    } else {
        DN(dnnl_memory_desc_init_by_tag(&w_any, 5, gwd, dnnl_f32, dnnl_format_tag_any), "descriptor");
        DN(dnnl_memory_desc_init_by_tag(&w_plain, 5, gwd, dnnl_f32, dnnl_goihw), "descriptor");
    }
    DN(dnnl_memory_desc_init_by_tag(&b_md, 1, bd, dnnl_f32, dnnl_a), "descriptor");
    const int with_bias = b != NULL;
    DN(dnnl_dilated_convolution_forward_desc_init(&cd, dir ? dnnl_forward_training : dnnl_forward_inference,
                                                  dnnl_convolution_direct, &x_any, &w_any,
                                                  with_bias ? &b_md : NULL, &y_any, strides, dil, pad_l, pad_r),
       "forward descriptor");
    if (!dir && p->act) {
        DN(dnnl_primitive_attr_create(&attr), "attributes");
        DN(dnnl_post_ops_create(&po), "post-ops");
        if (p->act_lo == 0.f && isinf(p->act_hi) && p->act_hi > 0)
            DN(dnnl_post_ops_append_eltwise(po, 1.f, dnnl_eltwise_relu, 0.f, 0.f), "ReLU post-op");
        else
            DN(dnnl_post_ops_append_eltwise(po, 1.f, dnnl_eltwise_clip, p->act_lo, p->act_hi), "Clip post-op");
        DN(dnnl_primitive_attr_set_post_ops(attr, po), "post-ops");
    }
    DN(dnnl_primitive_desc_create(dir ? &hint : &pd, &cd, attr, c->eng, NULL), "forward primitive descriptor");
    if (dir) {
        dnnl_convolution_desc_t bdsc;
        DN(dnnl_dilated_convolution_backward_data_desc_init(&bdsc, dnnl_convolution_direct, &x_any, &w_any, &y_any,
                                                            strides, dil, pad_l, pad_r),
           "backward-data descriptor");
        DN(dnnl_primitive_desc_create(&pd, &bdsc, NULL, c->eng, hint), "backward-data primitive descriptor");
    }
    DN(dnnl_primitive_create(&e->prim, pd), "convolution primitive");
    /* the layouts it chose */
    e->in_md = *dnnl_primitive_desc_query_md(pd, dir ? dnnl_query_diff_dst_md : dnnl_query_src_md, 0);
    e->out_md = *dnnl_primitive_desc_query_md(pd, dir ? dnnl_query_diff_src_md : dnnl_query_dst_md, 0);
    const dnnl_memory_desc_t wmd = *dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    if ((st = weights_in(c, w, &w_plain, &wmd, name, &e->weights, err))) goto done;
    DN(make_reorder(c, &e->plain_in, &e->in_md, 0, &e->in_reorder), "input reorder");
    e->add_out = dir && dnnl_memory_desc_equal(&e->out_md, &e->plain_out);
    if (!e->add_out) DN(make_reorder(c, &e->out_md, &e->plain_out, dir, &e->out_reorder), "output reorder");
    e->in_bytes = e->in_reorder ? dnnl_memory_desc_get_size(&e->in_md) : 0;
    e->out_bytes = e->out_reorder || e->add_out ? dnnl_memory_desc_get_size(&e->out_md) : 0;
    DN(dnnl_memory_create(&e->m_in, &e->in_md, c->eng, DNNL_MEMORY_NONE), "memory");
    DN(dnnl_memory_create(&e->m_out, &e->out_md, c->eng, DNNL_MEMORY_NONE), "memory");
    DN(dnnl_memory_create(&e->m_w, &wmd, c->eng, e->weights), "memory");
    if (with_bias && !dir) DN(dnnl_memory_create(&e->m_b, &b_md, c->eng, (void *)b), "memory");
    DN(dnnl_memory_create(&e->m_pin, &e->plain_in, c->eng, DNNL_MEMORY_NONE), "memory");
    DN(dnnl_memory_create(&e->m_pout, &e->plain_out, c->eng, DNNL_MEMORY_NONE), "memory");
    c->n++;
    *out = e;
done:
    if (st) centry_free(e);
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (hint) dnnl_primitive_desc_destroy(hint);
    if (po) dnnl_post_ops_destroy(po);
    if (attr) dnnl_primitive_attr_destroy(attr);
    return st;
}

static sal_status entry_get(sal_dnnl_conv_cache *c, const sal_conv_params *p, const float *w, const float *b,
                            int dir, const char *name, centry **out, sal_error *err) {
    const sal_conv_params k = key_of(p);
    for (int i = 0; i < c->n; i++) {
        centry *e = &c->e[i];
        if (e->dir == dir && e->w == w && (dir || e->b == b) && key_eq(&e->key, &k)) {
            *out = e;
            return SAL_OK;
        }
    }
    return entry_make(c, p, w, b, dir, name, out, err);
}

/* ------------------------------------------------------------------------------------------------ */
/* Calls                                                                                            */

/* in (plain) -> [reorder] -> prim -> [reorder (+ sum)] -> out (plain) */
/* One call; backward with set: out's content is garbage and dX is written there, not added
 * (straight from the primitive when diff_src is in out's layout, else into zeros). */
static sal_status run(sal_dnnl_conv_cache *c, centry *e, const float *in, float *out, int set, const char *name,
                      sal_error *err) {
    sal_status st = SAL_OK;
    if ((st = grow_ws(c, e->in_bytes + e->out_bytes + 64, name, err))) return st;
    char *ws = (char *)c->ws;
    const int add_out = e->add_out && !set;
    if (set && e->out_reorder) {   /* the reorder adds (a sum post-op) */
        const int64_t n = (int64_t)(dnnl_memory_desc_get_size(&e->plain_out) / sizeof(float)), piece = 1 << 16;
#pragma omp parallel for schedule(static) if (n > 4 * piece)
        for (int64_t a = 0; a < n; a += piece) memset(out + a, 0, sizeof(float) * (size_t)(n - a < piece ? n - a : piece));
    }
    void *in_h = e->in_reorder ? (void *)ws : (void *)in;
    void *out_h = e->out_reorder || add_out ? (void *)(ws + ((e->in_bytes + 63) / 64) * 64) : (void *)out;
    DN(dnnl_memory_set_data_handle(e->m_pin, (void *)in), "memory");
    DN(dnnl_memory_set_data_handle(e->m_pout, out), "memory");
    DN(dnnl_memory_set_data_handle(e->m_in, in_h), "memory");
    DN(dnnl_memory_set_data_handle(e->m_out, out_h), "memory");
    if (e->in_reorder) {
        dnnl_exec_arg_t a[2] = {{DNNL_ARG_FROM, e->m_pin}, {DNNL_ARG_TO, e->m_in}};
        DN(dnnl_primitive_execute(e->in_reorder, c->stream, 2, a), "input reorder");
    }
    if (e->dir == 0) {
        dnnl_exec_arg_t a[4] = {{DNNL_ARG_SRC, e->m_in}, {DNNL_ARG_WEIGHTS, e->m_w}, {DNNL_ARG_DST, e->m_out},
                                {DNNL_ARG_BIAS, e->m_b}};
        DN(dnnl_primitive_execute(e->prim, c->stream, e->m_b ? 4 : 3, a), "convolution");
    } else {
        dnnl_exec_arg_t a[3] = {{DNNL_ARG_DIFF_DST, e->m_in}, {DNNL_ARG_WEIGHTS, e->m_w},
                                {DNNL_ARG_DIFF_SRC, e->m_out}};
        DN(dnnl_primitive_execute(e->prim, c->stream, 3, a), "convolution backward-data");
    }
    if (e->out_reorder) {
        dnnl_exec_arg_t a[2] = {{DNNL_ARG_FROM, e->m_out}, {DNNL_ARG_TO, e->m_pout}};
        DN(dnnl_primitive_execute(e->out_reorder, c->stream, 2, a), "output reorder");
    }
    DN(dnnl_stream_wait(c->stream), "stream wait");
    if (add_out) {   /* gin += dX, in the same layout; on the caller's OpenMP team */
        const int64_t n = (int64_t)(e->out_bytes / sizeof(float));
        const float *d = out_h;
#pragma omp parallel for schedule(static) if (n > 32768)
        for (int64_t i = 0; i < n; i++) out[i] += d[i];
    }
done:
    return st;
}

sal_status sal_dnnl_conv_fwd(sal_dnnl_conv_cache *c, const sal_op_call *call, sal_error *err) {
    const sal_conv_params *p = call->params;
    const char *name = call->node->name;
    const float *b = p->has_bias && call->n_in > 2 ? call->in[2] : NULL;
    centry *e = NULL;
    sal_status st = entry_get(c, p, call->in[1], b, 0, name, &e, err);
    if (st) return st;
    return run(c, e, call->in[0], call->out[0], 0, name, err);
}

sal_status sal_dnnl_conv_bwd_data(sal_dnnl_conv_cache *c, const sal_op_call *call, sal_error *err) {
    const sal_conv_params *p = call->params;
    const char *name = call->node->name;
    if (!call->gout[0] || !call->gin[0]) return SAL_OK;
    centry *e = NULL;
    sal_status st = entry_get(c, p, call->in[1], NULL, 1, name, &e, err);
    if (st) return st;
    return run(c, e, call->gout[0], call->gin[0], call->gin_set & 1, name, err);
}
