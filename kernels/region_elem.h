/* region_elem.h — element functions of the audit's region metrics, shared by the CPU
 * (host/post/regions.c maps them over a loop) and, later, CUDA kernels: which named regions of
 * an (h,w) map one pixel belongs to, and one pixel's term of the map's Shannon entropy.
 * See DESIGN.md, "The two-device rule", and host/post/regions.h for the metrics themselves.
 *
 * Membership is decided by the pixel's centre, c = y + 0.5 (rows) and x + 0.5 (columns), in edge
 * units (the map spans [0,h) x [0,w)), so that it is symmetric and defined for every size:
 *   centre box:  |cy - h/2| <= h/4  and  |cx - w/2| <= w/4         (the middle 50% of each side)
 *   border band: min(cy, h - cy) < 0.10 h  or  min(cx, w - cx) < 0.10 w      (10% width)
 *   corner tl:   cy < 0.15 h  and  cx < 0.15 w  (tr, bl, br mirrored)     (15% of each side)
 * E.g. h = 28: the box holds rows 7..20 (14 of 28), the band rows 0..2 and 25..27, the corner
 * squares rows 0..3 and 24..27.
 *
 * The header compiles as C11 and as CUDA C++ (nvcc).
 */
#ifndef SAL_REGION_ELEM_H
#define SAL_REGION_ELEM_H

#include "sal_hd.h"

#include <math.h>

enum {
    SAL_REGION_CENTER = 1 << 0,
    SAL_REGION_BORDER = 1 << 1,
    SAL_REGION_TL = 1 << 2,
    SAL_REGION_TR = 1 << 3,
    SAL_REGION_BL = 1 << 4,
    SAL_REGION_BR = 1 << 5
};

#define SAL_REGION_CENTER_HALF 0.25f  /* half the centre box's side, as a fraction of the side */
#define SAL_REGION_BORDER_FRAC 0.10f
#define SAL_REGION_CORNER_FRAC 0.15f

/* The SAL_REGION_* bits of pixel (y,x) of an (h,w) map. */
SAL_HD int sal_region_bits(int y, int x, int h, int w) {
    const float cy = (float)y + 0.5f, cx = (float)x + 0.5f;
    const float fh = (float)h, fw = (float)w;
    const float dy = fminf(cy, fh - cy), dx = fminf(cx, fw - cx);   /* distance to the nearest edge */
    int bits = 0;
    if (fabsf(cy - 0.5f * fh) <= SAL_REGION_CENTER_HALF * fh && fabsf(cx - 0.5f * fw) <= SAL_REGION_CENTER_HALF * fw)
        bits |= SAL_REGION_CENTER;
    if (dy < SAL_REGION_BORDER_FRAC * fh || dx < SAL_REGION_BORDER_FRAC * fw) bits |= SAL_REGION_BORDER;
    if (dy < SAL_REGION_CORNER_FRAC * fh && dx < SAL_REGION_CORNER_FRAC * fw) {
        const int top = cy < 0.5f * fh, left = cx < 0.5f * fw;
        bits |= top ? (left ? SAL_REGION_TL : SAL_REGION_TR) : (left ? SAL_REGION_BL : SAL_REGION_BR);
    }
    return bits;
}

/* The mass a map value counts for: negatives and NaN count as 0 (the metrics take non-negative
 * maps; a stray negative value does not cancel mass elsewhere). */
SAL_HD float sal_region_mass(float v) { return v > 0.0f ? v : 0.0f; }

/* -p log2 p for p = v / total (0 for p == 0): one pixel's term of the entropy in bits. */
SAL_HD double sal_region_entropy_term(float v, double total) {
    const double p = (double)sal_region_mass(v) / total;
    return p > 0.0 ? -p * log2(p) : 0.0;
}

#endif /* SAL_REGION_ELEM_H */
