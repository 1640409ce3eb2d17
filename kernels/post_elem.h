/* post_elem.h — element functions of post-processing, shared by the CPU (host/post/post.c maps
 * them over loops) and, later, CUDA kernels (a launcher maps them over a grid): channel
 * reduction at one pixel, numpy's linear percentile on sorted data, clipping, normalization,
 * colormap lookup, bilinear sampling with half-pixel centres, blending and the overlay of one
 * original-image pixel. See DESIGN.md, "The two-device rule".
 *
 * The header compiles as C11 and as CUDA C++ (nvcc): no compound literals, designated
 * initializers or implicit void* conversions here. Math is float except the percentile, which
 * interpolates in double as numpy does. NaN tests are written x != x (no -ffast-math anywhere).
 *
 * Conventions used below:
 *   - Attributions are (C,H,W) float32; plane = H*W; pixel i = y*W + x.
 *   - Colormap tables are (256,3) uint8 RGB, see colormap_tables.h.
 *   - Bilinear sampling uses half-pixel centres and clamps at the edges: a continuous coordinate
 *     u in edge units (pixel k spans [k, k+1), its centre is k + 0.5) samples at s = u - 0.5,
 *     clamped to [0, n-1]; i0 = floor(s), i1 = min(i0 + 1, n - 1), f = s - i0. Resizing length
 *     n to length r evaluates output d at u = (d + 0.5) * n / r. This is OpenCV's cv2.resize
 *     INTER_LINEAR rule (which pytorch-grad-cam uses to upsample CAMs) and the rule of
 *     sal_preprocess in host/io/image.c.
 */
#ifndef SAL_POST_ELEM_H
#define SAL_POST_ELEM_H

#include "sal_hd.h"

#include <math.h>
#include <stddef.h>
#include <stdint.h>

/* ------------------------------------------------------------------------------------------------ */
/* Small helpers                                                                                    */

SAL_HD int sal_pe_isnan(float x) { return x != x; }

/* round half up to uint8, clamped to [0,255]; NaN -> 0 */
SAL_HD uint8_t sal_pe_u8(float v) {
    if (!(v > 0.0f)) return 0;
    if (v >= 255.0f) return 255;
    return (uint8_t)(v + 0.5f);
}

/* ------------------------------------------------------------------------------------------------ */
/* Channel reduction at pixel i of attr (C,H,W): the (H,W) value                                   */

/* max_c |attr[c][i]|; NaN propagates */
SAL_HD float sal_reduce_absmax_at(const float *attr, int c, size_t plane, size_t i) {
    float m = fabsf(attr[i]);
    for (int k = 1; k < c; k++) {
        float a = fabsf(attr[(size_t)k * plane + i]);
        if (sal_pe_isnan(a)) return a;
        if (a > m) m = a;
    }
    return m;
}

/* sum_c |attr[c][i]| */
SAL_HD float sal_reduce_abssum_at(const float *attr, int c, size_t plane, size_t i) {
    float s = 0.0f;
    for (int k = 0; k < c; k++) s += fabsf(attr[(size_t)k * plane + i]);
    return s;
}

/* sum_c attr[c][i] (signed) */
SAL_HD float sal_reduce_sum_at(const float *attr, int c, size_t plane, size_t i) {
    float s = 0.0f;
    for (int k = 0; k < c; k++) s += attr[(size_t)k * plane + i];
    return s;
}

/* ------------------------------------------------------------------------------------------------ */
/* Percentile, clipping, normalization                                                              */

/* q-th percentile (0 <= q <= 100) of sorted[0..n), n >= 1, by numpy's default 'linear' method:
 * position p = q/100 * (n-1), lo = floor(p), hi = min(lo+1, n-1), g = p - lo, and numpy's lerp
 *     g < 0.5:  sorted[lo] + (sorted[hi] - sorted[lo]) * g
 *     g >= 0.5: sorted[hi] - (sorted[hi] - sorted[lo]) * (1 - g)
 * (e.g. [1,2,3,4] at q = 99: p = 2.97 -> 3.97). One thread evaluates it after a sort. */
SAL_HD double sal_percentile_sorted(const float *sorted, size_t n, double q) {
    double p = q / 100.0 * (double)(n - 1);
    if (!(p > 0.0)) p = 0.0;
    if (p > (double)(n - 1)) p = (double)(n - 1);
    size_t lo = (size_t)floor(p);
    size_t hi = lo + 1 < n ? lo + 1 : n - 1;
    double g = p - (double)lo;
    double a = sorted[lo], b = sorted[hi], d = b - a;
    return g >= 0.5 ? b - d * (1.0 - g) : a + d * g;
}

/* The range a normalization divides by, over the finite values: add v to [*mn, *mx] (start from
 * +inf, -inf), as is (signed_map 0) or as |v| (1); then sal_range_final: unsigned, (0, 0) when no
 * value was finite; signed, (0, max |x|) with max |x| >= 0. */
SAL_HD void sal_range_add(float v, int signed_map, float *mn, float *mx) {
    if (signed_map) v = fabsf(v);
    if (!(v - v == 0.0f)) return;   /* NaN or inf */
    if (v < *mn) *mn = v;
    if (v > *mx) *mx = v;
}

SAL_HD void sal_range_final(int signed_map, float *mn, float *mx) {
    if (signed_map) {
        *mn = 0.0f;
        if (!(*mx > 0.0f)) *mx = 0.0f;
    } else if (!(*mx >= *mn)) {
        *mn = *mx = 0.0f;
    }
}

/* unsigned maps: values above hi become hi (the lower end is left at the map's minimum) */
SAL_HD float sal_clip_upper(float x, float hi) { return x > hi ? hi : x; }

/* signed maps: clip to [-p, p] */
SAL_HD float sal_clip_symmetric(float x, float p) { return x > p ? p : (x < -p ? -p : x); }

/* unsigned: (x - mn) / (mx - mn) clamped to [0,1]; 0 when mx <= mn (constant map) or x is NaN */
SAL_HD float sal_norm_unsigned(float x, float mn, float mx) {
    if (sal_pe_isnan(x) || !(mx > mn)) return 0.0f;
    float t = (x - mn) / (mx - mn);
    if (!(t > 0.0f)) return 0.0f;
    return t < 1.0f ? t : 1.0f;
}

/* signed: x / m clamped to [-1,1] with m = max|x|; 0 when m <= 0 (zero map) or x is NaN */
SAL_HD float sal_norm_signed(float x, float m) {
    if (sal_pe_isnan(x) || !(m > 0.0f)) return 0.0f;
    float t = x / m;
    if (t > 1.0f) return 1.0f;
    if (t < -1.0f) return -1.0f;
    return t;
}

/* ------------------------------------------------------------------------------------------------ */
/* Colormaps                                                                                        */

/* t in [0,1] -> table index round(t*255) (half up), clamped to [0,255]; NaN -> 0 */
SAL_HD int sal_colormap_index(float t) {
    if (!(t > 0.0f)) return 0;
    if (t >= 1.0f) return 255;
    return (int)(t * 255.0f + 0.5f);
}

/* a value of a map: signed maps in [-1,1] are looked up at t = (v + 1) / 2, unsigned at t = v */
SAL_HD float sal_colormap_t(float v, int signed_map) { return signed_map ? 0.5f * (v + 1.0f) : v; }

/* rgb[0..3) = table (256,3) at t */
SAL_HD void sal_colormap_lookup(const uint8_t *table, float t, uint8_t *rgb) {
    const uint8_t *e = table + 3 * sal_colormap_index(t);
    rgb[0] = e[0];
    rgb[1] = e[1];
    rgb[2] = e[2];
}

/* pixel i of the bare heatmap: out (H,W,3) */
SAL_HD void sal_heatmap_pixel(const float *map, size_t i, const uint8_t *table, int signed_map,
                              uint8_t *out) {
    sal_colormap_lookup(table, sal_colormap_t(map[i], signed_map), out + 3 * i);
}

/* ------------------------------------------------------------------------------------------------ */
/* Bilinear sampling (half-pixel centres, edge clamp)                                               */

typedef struct sal_lerp1 {
    int i0, i1;  /* the two source indices */
    float f;     /* weight of i1 */
} sal_lerp1;

/* Along one axis of length n: the taps for edge coordinate u (see the rule at the top). */
SAL_HD sal_lerp1 sal_bilinear_taps(float u, int n) {
    sal_lerp1 r;
    float s = u - 0.5f;
    if (!(s > 0.0f)) s = 0.0f;
    if (s > (float)(n - 1)) s = (float)(n - 1);
    r.i0 = (int)s;  /* s >= 0: truncation is floor */
    if (r.i0 > n - 1) r.i0 = n - 1;
    r.i1 = r.i0 + 1 < n ? r.i0 + 1 : n - 1;
    r.f = s - (float)r.i0;
    return r;
}

/* map (h,w) at edge coordinates (u along x, v along y): along x first, then y */
SAL_HD float sal_bilinear_sample(const float *map, int h, int w, float u, float v) {
    sal_lerp1 tx = sal_bilinear_taps(u, w), ty = sal_bilinear_taps(v, h);
    const float *r0 = map + (size_t)ty.i0 * (size_t)w, *r1 = map + (size_t)ty.i1 * (size_t)w;
    float top = (1.0f - tx.f) * r0[tx.i0] + tx.f * r0[tx.i1];
    float bot = (1.0f - tx.f) * r1[tx.i0] + tx.f * r1[tx.i1];
    return (1.0f - ty.f) * top + ty.f * bot;
}

/* output pixel (y,x) of resizing in (ih,iw) to (oh,ow): u = (x + 0.5) * iw / ow, likewise v */
SAL_HD float sal_upsample_at(const float *in, int ih, int iw, int oh, int ow, int y, int x) {
    float u = ((float)x + 0.5f) * (float)iw / (float)ow;
    float v = ((float)y + 0.5f) * (float)ih / (float)oh;
    return sal_bilinear_sample(in, ih, iw, u, v);
}

/* ------------------------------------------------------------------------------------------------ */
/* Blending and overlay                                                                             */

/* (1 - alpha) * o + alpha * c, rounded half up; alpha 0 returns o exactly, alpha 1 returns c */
SAL_HD uint8_t sal_blend_u8(uint8_t o, uint8_t c, float alpha) {
    return sal_pe_u8((1.0f - alpha) * (float)o + alpha * (float)c);
}

/* the original at 50%: round(o / 2), half up (255 -> 128) */
SAL_HD uint8_t sal_darken_u8(uint8_t o) { return sal_pe_u8(0.5f * (float)o); }

/* Overlay flags: bit 0 a signed map ([-1,1], coloured at (v+1)/2), bit 1 the colour's opacity
 * scaled by the map's value (SAL_OVERLAY_BY_VALUE). */
#ifndef SAL_OVERLAY_SIGNED   /* also in host/post/post.h, for callers that do not see kernels/ */
#define SAL_OVERLAY_SIGNED 1
#define SAL_OVERLAY_BY_VALUE 2
#endif

/* The colour's weight at normalized map value v: alpha; with by_value, alpha * min(|v|, 1), so the
 * photo shows through where the map is low (zero for v = 0, also the middle of a signed map, which
 * would otherwise wash the photo out to the colormap's white); NaN weighs 0. */
SAL_HD float sal_overlay_weight(float v, float alpha, int by_value) {
    if (!by_value) return alpha;
    float m = fabsf(v);
    if (!(m > 0.0f)) return 0.0f;
    return m < 1.0f ? alpha * m : alpha;
}

/* Original pixel (X,Y) of the overlay. orig (H,W,c) with c 1 or 3 (gray is expanded to RGB);
 * map (h,w) normalized ([0,1], or [-1,1] when flags has SAL_OVERLAY_SIGNED); rect (4) =
 * x0,y0,x1,y1, the region of the original (pixel edges) that the map covers; out (H,W,3).
 * When the pixel's centre (X+0.5, Y+0.5) lies in [x0,x1) x [y0,y1), the map is sampled
 * bilinearly at edge coordinates u = (X + 0.5 - x0) * w / (x1 - x0), v likewise, coloured
 * through table and blended: out = (1 - a) * orig + a * colour with a = sal_overlay_weight(value,
 * alpha, flags & SAL_OVERLAY_BY_VALUE). Otherwise (the model never saw the pixel) out = the
 * original darkened to 50%. */
SAL_HD void sal_overlay_pixel(const uint8_t *orig, int W, int c, const float *map, int h, int w,
                              const float *rect, const uint8_t *table, float alpha,
                              int flags, int X, int Y, uint8_t *out) {
    const int signed_map = flags & SAL_OVERLAY_SIGNED;
    const size_t at = (size_t)Y * (size_t)W + (size_t)X;
    const uint8_t *o = orig + at * (size_t)c;
    uint8_t rgb_orig[3];
    rgb_orig[0] = o[0];
    rgb_orig[1] = c == 3 ? o[1] : o[0];
    rgb_orig[2] = c == 3 ? o[2] : o[0];
    uint8_t *d = out + 3 * at;
    const float cx = (float)X + 0.5f, cy = (float)Y + 0.5f;
    if (cx >= rect[0] && cx < rect[2] && cy >= rect[1] && cy < rect[3]) {
        float u = (cx - rect[0]) * (float)w / (rect[2] - rect[0]);
        float v = (cy - rect[1]) * (float)h / (rect[3] - rect[1]);
        float val = sal_bilinear_sample(map, h, w, u, v);
        uint8_t col[3];
        sal_colormap_lookup(table, sal_colormap_t(val, signed_map), col);
        const float a = sal_overlay_weight(val, alpha, flags & SAL_OVERLAY_BY_VALUE);
        for (int k = 0; k < 3; k++) d[k] = sal_blend_u8(rgb_orig[k], col[k], a);
    } else {
        for (int k = 0; k < 3; k++) d[k] = sal_darken_u8(rgb_orig[k]);
    }
}

#endif /* SAL_POST_ELEM_H */
