/* post.c — CPU side of post-processing: argument checks, whole-map statistics (minimum,
 * maximum, percentiles by sorting a copy) and loops that map the element functions of
 * kernels/post_elem.h over maps and images. Contracts in post.h. */
#include "post/post.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "colormap_tables.h"
#include "model/graph.h"
#include "post_elem.h"

/* ------------------------------------------------------------------------------------------------ */
/* Names                                                                                            */

static int ascii_ieq(const char *a, const char *b) {
    for (;; a++, b++) {
        int ca = (unsigned char)*a, cb = (unsigned char)*b;
        if (ca >= 'A' && ca <= 'Z') ca += 'a' - 'A';
        if (cb >= 'A' && cb <= 'Z') cb += 'a' - 'A';
        if (ca != cb) return 0;
        if (ca == 0) return 1;
    }
}

static const char *const reduce_names[] = {"abs-max", "abs-sum", "sum", "none"};

sal_status sal_reduce_parse(const char *name, sal_reduce *out, sal_error *err) {
    if (!name || !out) return sal_fail(err, SAL_ERR_INVALID_ARG, "reduce: NULL name or output");
    int found = -1;
    for (int r = 0; r <= (int)SAL_REDUCE_NONE; r++)
        if (ascii_ieq(name, reduce_names[r])) found = r;
    if (ascii_ieq(name, "absmax")) found = SAL_REDUCE_ABS_MAX;
    if (ascii_ieq(name, "abssum")) found = SAL_REDUCE_ABS_SUM;
    if (found >= 0) {
        *out = (sal_reduce)found;
        return SAL_OK;
    }
    return sal_fail(err, SAL_ERR_INVALID_ARG,
                    "unknown channel reduction '%.200s' (expected abs-max, abs-sum, sum or none)",
                    name);
}

const char *sal_reduce_name(sal_reduce r) {
    return (int)r >= 0 && (int)r <= (int)SAL_REDUCE_NONE ? reduce_names[r] : "?";
}

static const char *const colormap_names[SAL_CMAP_COUNT] = {"jet",  "turbo", "viridis",
                                                           "inferno", "gray", "bwr"};

static const uint8_t *const colormap_tables[SAL_CMAP_COUNT] = {
    &sal_cmap_table_jet[0][0],     &sal_cmap_table_turbo[0][0], &sal_cmap_table_viridis[0][0],
    &sal_cmap_table_inferno[0][0], &sal_cmap_table_gray[0][0],  &sal_cmap_table_bwr[0][0]};

static int colormap_ok(sal_colormap cm) { return (int)cm >= 0 && (int)cm < (int)SAL_CMAP_COUNT; }

sal_status sal_colormap_parse(const char *name, sal_colormap *out, sal_error *err) {
    if (!name || !out) return sal_fail(err, SAL_ERR_INVALID_ARG, "colormap: NULL name or output");
    for (int c = 0; c < (int)SAL_CMAP_COUNT; c++)
        if (ascii_ieq(name, colormap_names[c])) {
            *out = (sal_colormap)c;
            return SAL_OK;
        }
    return sal_fail(err, SAL_ERR_INVALID_ARG,
                    "unknown colormap '%.200s' (expected jet, turbo, viridis, inferno, gray or bwr)",
                    name);
}

const char *sal_colormap_name(sal_colormap cm) { return colormap_ok(cm) ? colormap_names[cm] : "?"; }

const uint8_t *sal_colormap_table(sal_colormap cm) {
    return colormap_ok(cm) ? colormap_tables[cm] : NULL;
}

void sal_colormap_rgb(sal_colormap cm, float t, uint8_t rgb[3]) {
    if (!colormap_ok(cm)) {
        rgb[0] = rgb[1] = rgb[2] = 0;
        return;
    }
    sal_colormap_lookup(colormap_tables[cm], t, rgb);
}

/* ------------------------------------------------------------------------------------------------ */
/* Channel reduction                                                                                */

sal_status sal_reduce_channels(const float *attr, int c, int h, int w, sal_reduce mode, float *out,
                               sal_error *err) {
    if (!attr || !out) return sal_fail(err, SAL_ERR_INVALID_ARG, "reduce: NULL attribution or output");
    if (c < 1 || h < 1 || w < 1)
        return sal_fail(err, SAL_ERR_INVALID_ARG, "reduce: bad attribution shape (%d,%d,%d)", c, h, w);
    const size_t plane = (size_t)h * (size_t)w;
    switch (mode) {
    case SAL_REDUCE_ABS_MAX:
        for (size_t i = 0; i < plane; i++) out[i] = sal_reduce_absmax_at(attr, c, plane, i);
        return SAL_OK;
    case SAL_REDUCE_ABS_SUM:
        for (size_t i = 0; i < plane; i++) out[i] = sal_reduce_abssum_at(attr, c, plane, i);
        return SAL_OK;
    case SAL_REDUCE_SUM:
        for (size_t i = 0; i < plane; i++) out[i] = sal_reduce_sum_at(attr, c, plane, i);
        return SAL_OK;
    case SAL_REDUCE_NONE:
        if (out != attr) memmove(out, attr, sizeof(float) * (size_t)c * plane);
        return SAL_OK;
    }
    return sal_fail(err, SAL_ERR_INVALID_ARG, "reduce: bad mode %d", (int)mode);
}

/* ------------------------------------------------------------------------------------------------ */
/* Percentile, clipping, normalization                                                              */

static int cmp_float(const void *pa, const void *pb) {
    float a = *(const float *)pa, b = *(const float *)pb;
    return (a > b) - (a < b);
}

/* percentile of x (or of |x| when absolute), NaNs left out; *out = NaN when nothing is left */
static sal_status percentile_of(const float *x, size_t n, double q, int absolute, double *out,
                                sal_error *err) {
    if (!x || !out) return sal_fail(err, SAL_ERR_INVALID_ARG, "percentile: NULL input or output");
    if (n == 0) return sal_fail(err, SAL_ERR_INVALID_ARG, "percentile: empty map");
    if (!(q >= 0.0 && q <= 100.0))
        return sal_fail(err, SAL_ERR_INVALID_ARG, "percentile: q = %g is outside [0, 100]", q);
    if (n > SIZE_MAX / sizeof(float))
        return sal_fail(err, SAL_ERR_NOMEM, "percentile: %zu values are too many", n);
    float *sorted = malloc(sizeof(float) * n); /* (m) non-NaN values */
    if (!sorted) return sal_fail(err, SAL_ERR_NOMEM, "percentile: out of memory for %zu values", n);
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (!sal_pe_isnan(x[i])) sorted[m++] = absolute ? fabsf(x[i]) : x[i];
    if (m == 0) {
        *out = NAN;
    } else {
        qsort(sorted, m, sizeof(float), cmp_float);
        *out = sal_percentile_sorted(sorted, m, q);
    }
    free(sorted);
    return SAL_OK;
}

sal_status sal_percentile(const float *x, size_t n, double q, double *out, sal_error *err) {
    return percentile_of(x, n, q, 0, out, err);
}

sal_status sal_clip_percentile(float *map, size_t n, double q, int signed_map, float *threshold,
                               sal_error *err) {
    double p;
    sal_status st = percentile_of(map, n, q, signed_map, &p, err);
    if (st != SAL_OK) return st;
    const float pf = (float)p;
    if (threshold) *threshold = pf;
    if (isnan(pf)) return SAL_OK;
    if (signed_map)
        for (size_t i = 0; i < n; i++) map[i] = sal_clip_symmetric(map[i], pf);
    else
        for (size_t i = 0; i < n; i++) map[i] = sal_clip_upper(map[i], pf);
    return SAL_OK;
}

void sal_normalize(const float *in, size_t n, int signed_map, float *out) {
    if (!in || !out) return;
    float mn = INFINITY, mx = -INFINITY; /* over finite values (|x| when signed) */
    for (size_t i = 0; i < n; i++) sal_range_add(in[i], signed_map, &mn, &mx);
    sal_range_final(signed_map, &mn, &mx);
    for (size_t i = 0; i < n; i++)
        out[i] = signed_map ? sal_norm_signed(in[i], mx) : sal_norm_unsigned(in[i], mn, mx);
}

/* ------------------------------------------------------------------------------------------------ */
/* Geometry, upsampling, heatmaps and overlays                                                      */

sal_status sal_prep_rect(int img_w, int img_h, const sal_prep_opts *o, float rect[4]) {
    if (!o || !rect) return SAL_ERR_INVALID_ARG;
    if (img_w < 1 || img_h < 1 || img_w > SAL_IMAGE_MAX_SIDE || img_h > SAL_IMAGE_MAX_SIDE)
        return SAL_ERR_INVALID_ARG;
    if (o->out_h < 1 || o->out_w < 1 || o->out_h > SAL_IMAGE_MAX_SIDE || o->out_w > SAL_IMAGE_MAX_SIDE)
        return SAL_ERR_INVALID_ARG;
    if (o->resize_shorter < 0 || o->resize_shorter > 4 * SAL_IMAGE_MAX_SIDE) return SAL_ERR_INVALID_ARG;
    const int H = img_h, W = img_w, oh = o->out_h, ow = o->out_w;
    int RH, RW, top, left;   /* exactly as sal_preprocess resizes and crops */
    if (sal_prep_geometry(W, H, o, &RH, &RW, &top, &left)) return SAL_ERR_SHAPE;
    const double sx = (double)W / (double)RW, sy = (double)H / (double)RH;
    rect[0] = (float)((double)left * sx);
    rect[1] = (float)((double)top * sy);
    rect[2] = (float)((double)(left + ow) * sx);
    rect[3] = (float)((double)(top + oh) * sy);
    return SAL_OK;
}

sal_status sal_upsample_bilinear(const float *in, int ih, int iw, float *out, int oh, int ow) {
    if (!in || !out || ih < 1 || iw < 1 || oh < 1 || ow < 1) return SAL_ERR_INVALID_ARG;
    for (int y = 0; y < oh; y++)
        for (int x = 0; x < ow; x++)
            out[(size_t)y * (size_t)ow + (size_t)x] = sal_upsample_at(in, ih, iw, oh, ow, y, x);
    return SAL_OK;
}

sal_status sal_heatmap_rgb(const float *map, int h, int w, sal_colormap cm, int signed_map,
                           uint8_t *out) {
    if (!map || !out || h < 1 || w < 1 || !colormap_ok(cm)) return SAL_ERR_INVALID_ARG;
    const uint8_t *table = colormap_tables[cm];
    const size_t n = (size_t)h * (size_t)w;
    for (size_t i = 0; i < n; i++) sal_heatmap_pixel(map, i, table, signed_map, out);
    return SAL_OK;
}

sal_status sal_overlay_check(const sal_image *orig, const float rect[4], sal_colormap cm, float alpha,
                             sal_error *err) {
    if (!orig || !orig->pix || orig->w < 1 || orig->h < 1 || orig->w > SAL_IMAGE_MAX_SIDE ||
        orig->h > SAL_IMAGE_MAX_SIDE || (orig->c != 1 && orig->c != 3))
        return sal_fail(err, SAL_ERR_INVALID_ARG, "overlay: bad original image");
    if (!rect) return sal_fail(err, SAL_ERR_INVALID_ARG, "overlay: no rect");
    for (int k = 0; k < 4; k++)
        if (!isfinite(rect[k])) return sal_fail(err, SAL_ERR_INVALID_ARG, "overlay: the rect is not finite");
    if (!(rect[2] > rect[0]) || !(rect[3] > rect[1])) return sal_fail(err, SAL_ERR_INVALID_ARG, "overlay: empty rect");
    if (!(alpha >= 0.0f && alpha <= 1.0f))
        return sal_fail(err, SAL_ERR_INVALID_ARG, "overlay: --alpha %g is outside [0,1]", (double)alpha);
    if (!colormap_ok(cm)) return sal_fail(err, SAL_ERR_INVALID_ARG, "overlay: colormap %d does not exist", (int)cm);
    return SAL_OK;
}

sal_status sal_overlay(const sal_image *orig, const float *map, int h, int w, const float rect[4],
                       sal_colormap cm, float alpha, int flags, uint8_t *out_rgb) {
    if (!map || !out_rgb || h < 1 || w < 1) return SAL_ERR_INVALID_ARG;
    sal_status st = sal_overlay_check(orig, rect, cm, alpha, NULL);
    if (st) return st;
    const uint8_t *table = colormap_tables[cm];
    for (int Y = 0; Y < orig->h; Y++)
        for (int X = 0; X < orig->w; X++)
            sal_overlay_pixel(orig->pix, orig->w, orig->c, map, h, w, rect, table, alpha, flags,
                              X, Y, out_rgb);
    return SAL_OK;
}
