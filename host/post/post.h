/* post.h — salient's post-processing room (CPU side): channel reduction of attributions,
 * percentile clipping, normalization, colormaps, bilinear upsampling, and heatmaps and overlays
 * drawn at the original image's resolution. The per-element math lives in kernels/post_elem.h
 * (host+device functions) so that the CUDA path computes exactly the same thing.
 *
 * Usage (one gradient map; errors elided):
 *
 *     float *m = malloc(sizeof(float) * h * w);                        // (h,w)
 *     sal_reduce_channels(grad, 3, h, w, SAL_REDUCE_ABS_MAX, m, &err); // (3,h,w) -> (h,w)
 *     sal_clip_percentile(m, h * w, 99.0, 0, NULL, &err);              // unsigned map
 *     sal_normalize(m, h * w, 0, m);                                    // -> [0,1]
 *     float rect[4];
 *     sal_prep_rect(img.w, img.h, &prep, rect);                        // what the model saw
 *     uint8_t *rgb = malloc(img.h * img.w * 3);                         // (img.h,img.w,3)
 *     sal_overlay(&img, m, h, w, rect, SAL_CMAP_JET, SAL_OVERLAY_ALPHA, 0, rgb);
 *     sal_png_write_rgb("out.png", img.w, img.h, rgb, &err);
 *
 * Signed maps (SAL_REDUCE_SUM, or attributions kept with their sign) go through the same calls
 * with signed_map = 1: symmetric clipping, normalization to [-1,1], and colour lookup at
 * t = (v + 1) / 2 (use SAL_CMAP_BWR: blue negative, white zero, red positive).
 *
 * Contract (as everywhere in salient): fallible functions return a sal_status (SAL_OK = 0); those
 * taking a sal_error (may be NULL) fill it with a message naming the argument or value at fault.
 * The geometry and drawing functions (sal_prep_rect, sal_upsample_bilinear, sal_heatmap_rgb,
 * sal_overlay) fail only on arguments the caller has already validated and return the status
 * alone. Nothing here prints, exits or keeps global state; the caller owns every buffer.
 * NaN in a map: reductions propagate it, percentiles ignore it, normalization turns it into 0,
 * colour lookup into index 0.
 */
#ifndef SAL_POST_H
#define SAL_POST_H

#include <stddef.h>
#include <stdint.h>

#include "salient.h"
#include "io/io.h"

#define SAL_CLIP_PERCENTILE_DEFAULT 99.0 /* for gradient maps; the caller passes it */
#define SAL_OVERLAY_ALPHA 0.5f           /* default weight of the colour in overlays */
#define SAL_OVERLAY_ALPHA_BY_VALUE 0.8f  /* ... and its default peak with SAL_OVERLAY_BY_VALUE (the weight
                                            falls with the map, so the peak can be higher; chosen
                                            by eye on the sample photos) */
/* sal_overlay's flags (the same values as kernels/post_elem.h's, which the device code sees) */
#ifndef SAL_OVERLAY_SIGNED
#define SAL_OVERLAY_SIGNED 1             /* a signed map in [-1,1] */
#define SAL_OVERLAY_BY_VALUE 2           /* the colour's opacity scaled by the map's value */
#endif

/* ------------------------------------------------------------------------------------------------ */
/* Channel reduction                                                                                */

typedef enum sal_reduce {
    SAL_REDUCE_ABS_MAX = 0, /* max over channels of |a|: the default for gradient methods */
    SAL_REDUCE_ABS_SUM,     /* sum over channels of |a| */
    SAL_REDUCE_SUM,         /* signed sum over channels: gives a signed map */
    SAL_REDUCE_NONE         /* keep (C,H,W) as is: for --raw only */
} sal_reduce;

/* "abs-max" (or "absmax"), "abs-sum" ("abssum"), "sum", "none"; ASCII case ignored. Another
 * name is SAL_ERR_INVALID_ARG with a message naming it. */
sal_status sal_reduce_parse(const char *name, sal_reduce *out, sal_error *err);
const char *sal_reduce_name(sal_reduce r); /* canonical name, "?" when out of range */

/* attr (c,h,w) -> out (h,w): out[i] = max_k |attr[k][i]|, sum_k |attr[k][i]| or sum_k attr[k][i];
 * SAL_REDUCE_NONE copies all (c,h,w) values to out. out must not overlap attr (except that
 * NONE allows out == attr). Errors: SAL_ERR_INVALID_ARG (NULL buffers, sizes < 1, bad mode). */
sal_status sal_reduce_channels(const float *attr, int c, int h, int w, sal_reduce mode, float *out,
                               sal_error *err);

/* ------------------------------------------------------------------------------------------------ */
/* Percentile, clipping, normalization                                                              */

/* q-th percentile (0 <= q <= 100) of x[0..n) by numpy's default 'linear' method: for the sorted
 * values s of length m (NaNs left out, as np.nanpercentile does), position p = q/100 * (m-1) and
 * linear interpolation between s[floor(p)] and s[floor(p)+1] (np.percentile([1,2,3,4], 99) is
 * 3.97). Sorts a copy: x is not modified. All-NaN input gives *out = NaN and SAL_OK.
 * Errors: SAL_ERR_INVALID_ARG (NULL, n == 0, q outside [0,100] or NaN), SAL_ERR_NOMEM. */
sal_status sal_percentile(const float *x, size_t n, double q, double *out, sal_error *err);

/* Clip map[0..n) in place at its q-th percentile P:
 *   unsigned (signed_map == 0): P = percentile(x, q); x > P becomes P (the lower end stays at the
 *     map's minimum, i.e. the map is clipped to [min, P]);
 *   signed: P = percentile(|x|, q); x is clipped to [-P, P].
 * *threshold (may be NULL) receives P (NaN when the map is all NaN: nothing is clipped then).
 * Errors: as sal_percentile. */
sal_status sal_clip_percentile(float *map, size_t n, double q, int signed_map, float *threshold,
                               sal_error *err);

/* Normalize in[0..n) into out[0..n) (out may equal in). Over the non-NaN values, with +-inf
 * taking part in neither the minimum nor the maximum but clamped afterwards:
 *   unsigned: out = (x - min) / (max - min), clamped to [0,1]; a constant map (max == min), or one
 *     with no finite value, gives all zeros;
 *   signed:   out = x / max|x|, clamped to [-1,1]; a zero map gives all zeros.
 * NaN becomes 0. The result never contains NaN. */
void sal_normalize(const float *in, size_t n, int signed_map, float *out);

/* ------------------------------------------------------------------------------------------------ */
/* Colormaps                                                                                        */

/* Tables in kernels/colormap_tables.h, generated by scripts/gen-colormaps.py (jet defined there;
 * the others from matplotlib). */
typedef enum sal_colormap {
    SAL_CMAP_JET = 0, /* classic piecewise-linear jet: (0,0,128) dark blue -> (128,0,0) dark red */
    SAL_CMAP_TURBO,   /* Google's improved rainbow */
    SAL_CMAP_VIRIDIS, /* perceptually uniform, (68,1,84) -> (253,231,37) */
    SAL_CMAP_INFERNO, /* perceptually uniform, black -> yellow-white */
    SAL_CMAP_GRAY,    /* t * 255 on all three channels */
    SAL_CMAP_BWR,     /* diverging blue -> white -> red, for signed maps */
    SAL_CMAP_COUNT
} sal_colormap;

/* "jet", "turbo", "viridis", "inferno", "gray", "bwr" (ASCII case ignored); another name is
 * SAL_ERR_INVALID_ARG with a message naming it and listing the valid ones. */
sal_status sal_colormap_parse(const char *name, sal_colormap *out, sal_error *err);
const char *sal_colormap_name(sal_colormap cm); /* "?" when out of range */
/* The (256,3) uint8 RGB table, or NULL when cm is out of range. */
const uint8_t *sal_colormap_table(sal_colormap cm);
/* rgb = table[round(t*255) clamped to [0,255]], NaN -> entry 0; black when cm is out of range. */
void sal_colormap_rgb(sal_colormap cm, float t, uint8_t rgb[3]);

/* ------------------------------------------------------------------------------------------------ */
/* Geometry, upsampling, heatmaps and overlays                                                      */

/* The region of an img_w x img_h original that the model input made by sal_preprocess(opts)
 * covers: rect = {x0, y0, x1, y1} in original pixel units, pixel edges (the whole image is
 * {0, 0, img_w, img_h}). With the resized size (RH,RW) and crop offsets (top,left) computed
 * exactly as sal_preprocess does (resize_shorter == 0: (out_h,out_w) and (0,0)), half-pixel
 * centres make the map from resized to original edge coordinates linear, x -> x * img_w / RW, so
 *     x0 = left * img_w / RW,  x1 = (left + out_w) * img_w / RW,
 *     y0 = top * img_h / RH,   y1 = (top + out_h) * img_h / RH          (in double, then float).
 * Returns SAL_ERR_INVALID_ARG (bad sizes or options, as sal_preprocess) or SAL_ERR_SHAPE (the
 * crop is larger than the resized image) without a message: sal_preprocess, run on the same
 * image and options first, reports the same faults with one. */
sal_status sal_prep_rect(int img_w, int img_h, const sal_prep_opts *opts, float rect[4]);

/* Bilinear resize in (ih,iw) -> out (oh,ow) with half-pixel centres and edge clamp, the rule of
 * OpenCV's cv2.resize(..., interpolation=INTER_LINEAR) (what pytorch-grad-cam uses for CAMs):
 * output x samples the input at s = (x + 0.5) * iw / ow - 0.5 clamped to [0, iw-1],
 * x0 = floor(s), x1 = min(x0 + 1, iw - 1), f = s - x0, value (1-f)*in[x0] + f*in[x1]; along x
 * first, then the same along y. E.g. 2 -> 4 samples at s = 0, 0.25, 0.75, 1.
 * Works for downsampling too (without antialiasing). out must not overlap in.
 * Returns SAL_ERR_INVALID_ARG for NULL buffers or sizes < 1 (nothing is written). */
sal_status sal_upsample_bilinear(const float *in, int ih, int iw, float *out, int oh, int ow);

/* The bare coloured map at map resolution: map (h,w) in [0,1] (or [-1,1] when signed_map) ->
 * out (h,w,3) uint8 RGB. Returns SAL_ERR_INVALID_ARG for NULL buffers, sizes < 1 or a bad
 * colormap (nothing is written). */
sal_status sal_heatmap_rgb(const float *map, int h, int w, sal_colormap cm, int signed_map,
                           uint8_t *out);

/* Overlay of a normalized map (h,w) on the original image, at the original's resolution:
 * out_rgb (orig->h, orig->w, 3). rect (from sal_prep_rect) is the part of the original the map
 * covers. flags: SAL_OVERLAY_SIGNED (a signed map, [-1,1]) and SAL_OVERLAY_BY_VALUE (the
 * colour's opacity scaled by the map's value). For each original pixel
 * whose centre (X+0.5, Y+0.5) lies in [x0,x1) x [y0,y1), the map is
 * sampled bilinearly (half-pixel centres, edge clamp) at map coordinates
 * ((X+0.5-x0) * w/(x1-x0), (Y+0.5-y0) * h/(y1-y0)), coloured with cm (signed maps at
 * t = (v+1)/2), and blended: out = round((1-a) * orig + a * colour), a = alpha, or with
 * SAL_OVERLAY_BY_VALUE a = alpha * min(|value|, 1): the photo shows through where the map is low
 * (and at a signed map's zero, which bwr's white would wash out). Pixels outside the
 * rect (cropped away: the model never saw them) are the original darkened to 50%,
 * round(orig / 2). Gray originals are expanded to RGB. alpha in [0,1]; SAL_OVERLAY_ALPHA is the
 * default; alpha 0 reproduces the original inside the rect.
 * Returns SAL_ERR_INVALID_ARG (nothing is written) for NULL buffers, a bad image, sizes < 1, a
 * rect that is not finite or empty, alpha outside [0,1] or a bad colormap. */
sal_status sal_overlay(const sal_image *orig, const float *map, int h, int w, const float rect[4],
                       sal_colormap cm, float alpha, int flags, uint8_t *out_rgb);
/* sal_overlay's checks of its original, rect, colormap and alpha, with a message in err (may be
 * NULL): SAL_OK or SAL_ERR_INVALID_ARG. */
sal_status sal_overlay_check(const sal_image *orig, const float rect[4], sal_colormap cm, float alpha,
                             sal_error *err);

/* ------------------------------------------------------------------------------------------------ */
/* The whole chain on the session's device                                                          */

/* What sal_render does to one attribution, in this order: reduce the channels (c > 1), clip at
 * the clip-th percentile (clip < 100), normalize, then colour. */
typedef struct sal_render_opts {
    sal_reduce reduce;   /* ABS_MAX, ABS_SUM or SUM (c > 1) */
    int signed_map;      /* symmetric clipping, [-1,1] normalization, colour at (v + 1) / 2 */
    double clip;         /* percentile in [0,100]; 100 or more: no clipping */
    sal_colormap cmap;
    float alpha;         /* overlay colour weight in [0,1] (the largest, with alpha_by_value) */
    int alpha_by_value;  /* overlay: the colour's opacity scaled by the map's value (|value| for
                            signed maps): SAL_OVERLAY_BY_VALUE */
    float *range_out;    /* (2), or NULL: receives the values the colour scale's ends stand for,
                            after reduction and clipping: the finite minimum and maximum (unsigned;
                            (0,0) when none is finite), or -max|x| and +max|x| (signed); for a
                            colour bar (sal_colorbar) */
} sal_render_opts;

/* Post-process attr (c,h,w) of one image on the session's backend (the GPU when the session has
 * one), with the element functions above run as backend primitives (kernels/method_prims.h), so
 * only finished pixels come back: map (h,w) the normalized map, heat (h,w,3) the bare heatmap,
 * overlay (orig->h, orig->w, 3) the overlay on orig over rect; any of the three may be NULL.
 * Equal, value for value, to sal_reduce_channels + sal_clip_percentile + sal_normalize +
 * sal_heatmap_rgb / sal_overlay on the host (tests/test_render.c checks this on the CPU backend;
 * the CUDA kernels are compiled without FMA contraction so that they round the same way).
 * Errors: SAL_ERR_INVALID_ARG (as those functions; err names the argument), SAL_ERR_NOMEM,
 * SAL_ERR_DEVICE. */
sal_status sal_render(sal_session *s, const float *attr, int c, int h, int w, const sal_render_opts *ro,
                      const sal_image *orig, const float rect[4], float *map, uint8_t *heat,
                      uint8_t *overlay, sal_error *err);

/* ------------------------------------------------------------------------------------------------ */
/* Colour bar                                                                                       */

/* The height of sal_colorbar's strip for an image w pixels wide: the bar and one line of labels,
 * scaled with the width (a 5x7 pixel font at scale max(1, round(w / 180))). */
int sal_colorbar_height(int w);
/* A colour bar strip out (sal_colorbar_height(w), w, 3) uint8 RGB, to go under an overlay: on white,
 * the colormap cm from left (t = 0) to right (t = 1) over the width less a margin, and under it the
 * values the ends stand for, lo at the left and hi at the right ("%.3g"; signed maps also 0 in
 * the middle), in black. SAL_ERR_INVALID_ARG for a NULL buffer, w < 32 or a bad colormap. */
sal_status sal_colorbar(uint8_t *out, int w, sal_colormap cm, int signed_map, float lo, float hi);

#endif /* SAL_POST_H */
