/* render.c — post-processing on the session's backend: sal_render (post.h) runs the chain of
 * kernels/post_elem.h's element functions as method primitives (kernels/method_prims.h), so a GPU
 * session returns finished pixels, and the CPU backend runs the very same functions. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "post/post.h"
#include "methods/methods.h"


typedef struct rctx {
    sal_session *s;
    sal_backend *b;
    sal_error *err;
    void *bufs[12];
    int nbufs;
} rctx;

/* a buffer from the session's reusable ones, given back at the end of the call */
static void *ralloc(rctx *r, size_t bytes) {
    void *p = sal_session_scratch(r->s, bytes);
    if (!p) sal_fail(r->err, SAL_ERR_NOMEM, "render: %s", sal_session_error(r->s));
    else r->bufs[r->nbufs++] = p;
    return p;
}

static sal_status rprim(rctx *r, int fn, int64_t count, const sal_mp_args *a) {
    return r->b->ops->prim(r->b, fn, count, a, r->err);
}

static sal_status rcopy(rctx *r, int up, void *dst, const void *src, size_t bytes) {
    sal_error e = {0};
    sal_status st = up ? sal_backend_upload(r->b, dst, src, bytes, &e) : sal_backend_download(r->b, dst, src, bytes, &e);
    return st ? sal_fail(r->err, st, "render: copying %zu bytes %s the %s backend: %s", bytes, up ? "to" : "from",
                         r->b->ops->name, e.msg[0] ? e.msg : sal_status_str(st)) : SAL_OK;
}

static sal_status check(const float *attr, int c, int h, int w, const sal_render_opts *ro,
                        const sal_image *orig, const float rect[4], uint8_t *overlay, sal_error *err) {
    if (!attr || !ro) return sal_fail(err, SAL_ERR_INVALID_ARG, "render: NULL attribution or options");
    if (c < 1 || h < 1 || w < 1) return sal_fail(err, SAL_ERR_INVALID_ARG, "render: bad map size %dx%dx%d", c, h, w);
    if (c > 1 && (ro->reduce < SAL_REDUCE_ABS_MAX || ro->reduce > SAL_REDUCE_SUM))
        return sal_fail(err, SAL_ERR_INVALID_ARG, "render: channel reduction %d is not abs-max, abs-sum or sum", (int)ro->reduce);
    if (!(ro->clip >= 0.0)) return sal_fail(err, SAL_ERR_INVALID_ARG, "render: clip percentile %g is below 0", ro->clip);
    if (!sal_colormap_table(ro->cmap)) return sal_fail(err, SAL_ERR_INVALID_ARG, "render: colormap %d does not exist", (int)ro->cmap);
    return overlay ? sal_overlay_check(orig, rect, ro->cmap, ro->alpha, err) : SAL_OK;
}

sal_status sal_render(sal_session *s, const float *attr, int c, int h, int w, const sal_render_opts *ro,
                      const sal_image *orig, const float rect[4], float *map, uint8_t *heat,
                      uint8_t *overlay, sal_error *err) {
    sal_status st = check(attr, c, h, w, ro, orig, rect, overlay, err);
    if (st) return st;
    if (!s) return sal_fail(err, SAL_ERR_INVALID_ARG, "render: no session");
    rctx r = {s, sal_session_backend(s), err, {0}, 0};
    int64_t hw = (int64_t)h * w;
    size_t fb = sizeof(float) * (size_t)hw;
    float *dattr = ralloc(&r, fb * (size_t)c), *dmap = c > 1 ? ralloc(&r, fb) : dattr;
    float *dsmall = ralloc(&r, sizeof(float) * (4 + 2 * SAL_MP_PARTS));   /* threshold, range, parts */
    st = dattr && dmap && dsmall ? SAL_OK : SAL_ERR_NOMEM;
    if (!st) st = rcopy(&r, 1, dattr, attr, fb * (size_t)c);
    sal_mp_args a;
    memset(&a, 0, sizeof a);
    a.c = c;
    a.h = h;
    a.w = w;
    a.hw = hw;
    a.per = hw;
    if (!st && c > 1) {
        a.in = dattr;
        a.out = dmap;
        a.mode = ro->reduce == SAL_REDUCE_ABS_MAX ? 0 : ro->reduce == SAL_REDUCE_ABS_SUM ? 1 : 2;
        st = rprim(&r, SAL_MP_reduce, hw, &a);
    }
    if (!st && ro->clip < 100.0) {
        float *dkeys = ralloc(&r, fb);
        if (!dkeys) st = SAL_ERR_NOMEM;
        a.mode = ro->signed_map;
        a.in = dmap;
        a.out = dkeys;
        if (!st) st = rprim(&r, SAL_MP_sort_keys, hw, &a);
        size_t sb = r.b->ops->sort_scratch(r.b, hw);
        void *dsort = sb && !st ? ralloc(&r, sb) : NULL;
        if (sb && !dsort) st = SAL_ERR_NOMEM;
        if (!st) st = r.b->ops->sort(r.b, dkeys, hw, dsort, err);
        a.in = dkeys;
        a.out = dsmall;
        a.d0 = ro->clip;
        if (!st) st = rprim(&r, SAL_MP_percentile, 1, &a);
        a.in = dmap;
        a.in2 = dsmall;
        a.out = dmap;
        if (!st) st = rprim(&r, SAL_MP_clip, hw, &a);
    }
    if (!st) {
        a.mode = ro->signed_map;
        a.in = dmap;
        a.out = dsmall + 4;
        st = rprim(&r, SAL_MP_range_part, SAL_MP_PARTS, &a);
        a.in = dsmall + 4;
        a.out = dsmall + 2;
        if (!st) st = rprim(&r, SAL_MP_range_join, 1, &a);
        a.in = dmap;
        a.in2 = dsmall + 2;
        a.out = dmap;
        if (!st) st = rprim(&r, SAL_MP_normalize, hw, &a);
    }
    if (!st && ro->range_out) {   /* the colour scale's ends, for a colour bar */
        float rg[2];
        st = rcopy(&r, 0, rg, dsmall + 2, sizeof rg);
        if (!st) {
            ro->range_out[0] = ro->signed_map ? -rg[1] : rg[0];
            ro->range_out[1] = rg[1];
        }
    }
    uint8_t *dtable = (heat || overlay) && !st ? ralloc(&r, 768) : NULL;
    if ((heat || overlay) && !st) st = dtable ? rcopy(&r, 1, dtable, sal_colormap_table(ro->cmap), 768) : SAL_ERR_NOMEM;
    a.in = dmap;
    a.table = dtable;
    a.mode = ro->signed_map;
    if (!st && heat) {
        uint8_t *dheat = ralloc(&r, (size_t)hw * 3);
        a.u8out = dheat;
        st = dheat ? rprim(&r, SAL_MP_heatmap, hw, &a) : SAL_ERR_NOMEM;
        if (!st) st = rcopy(&r, 0, heat, dheat, (size_t)hw * 3);
    }
    if (!st && overlay) {
        size_t on = (size_t)orig->w * (size_t)orig->h;
        uint8_t *dorig = ralloc(&r, on * (size_t)orig->c), *dover = ralloc(&r, on * 3);
        st = dorig && dover ? rcopy(&r, 1, dorig, orig->pix, on * (size_t)orig->c) : SAL_ERR_NOMEM;
        a.u8in = dorig;
        a.u8out = dover;
        a.oh_ = orig->h;
        a.ow_ = orig->w;
        a.oc = orig->c;
        memcpy(a.rect, rect, sizeof a.rect);
        a.alpha = ro->alpha;
        a.mode = (ro->signed_map ? SAL_OVERLAY_SIGNED : 0) | (ro->alpha_by_value ? SAL_OVERLAY_BY_VALUE : 0);
        if (!st) st = rprim(&r, SAL_MP_overlay, (int64_t)on, &a);
        if (!st) st = rcopy(&r, 0, overlay, dover, on * 3);
    }
    if (!st && map) st = rcopy(&r, 0, map, dmap, fb);
    for (int i = 0; i < r.nbufs; i++) sal_session_scratch_put(s, r.bufs[i]);
    return st;
}
