/* regions.h — region metrics of one attribution map, for `salient audit`: where the map's mass
 * lies (centre box, border band, the four corner squares, a user mask), how concentrated it is,
 * and its entropy. The per-pixel rules live in kernels/region_elem.h (host+device functions);
 * this is the host loop over them.
 *
 * Usage:
 *
 *     sal_region_stats st;
 *     sal_region_metrics(map, h, w, mask, &st, &err);   // map (h,w) >= 0 at input resolution
 *     printf("%.3f of the mass in the top-left corner\n", st.mass[SAL_RM_TL]);
 *
 * Definitions (mass = the map's value where positive, 0 for negatives and NaN; total = its sum):
 *   mass[r]       the share of the total in region r (pixel membership by pixel centre, see
 *                 region_elem.h): the centred box covering the middle 50% of each side, the
 *                 border band of 10% width, each corner square of 15% of the side, the mask's
 *                 non-zero pixels (NaN when there is no mask);
 *   concentration the share of the total in the k = ceil(0.05 h w) largest pixels;
 *   entropy       Shannon entropy, in bits, of p = mass / total: log2(h w) for a uniform map,
 *                 0 for a single hot pixel.
 * A map with no mass (total 0) has every metric NaN: it says nothing about where the model looks.
 */
#ifndef SAL_REGIONS_H
#define SAL_REGIONS_H

#include <stdint.h>

#include "salient.h"

typedef enum sal_region_metric {
    SAL_RM_CENTER = 0, SAL_RM_BORDER, SAL_RM_TL, SAL_RM_TR, SAL_RM_BL, SAL_RM_BR, SAL_RM_MASK,
    SAL_RM_COUNT
} sal_region_metric;

/* "center", "border", "tl", "tr", "bl", "br", "mask"; "?" when out of range. */
const char *sal_region_name(sal_region_metric r);
/* Plain words for reports: "centre", "border", "top-left corner", ...; "?" when out of range. */
const char *sal_region_words(sal_region_metric r);

#define SAL_CONCENTRATION_TOP 0.05   /* the share of pixels concentration looks at */

typedef struct sal_region_stats {
    double mass[SAL_RM_COUNT];   /* shares of the total in [0,1]; NaN as described above */
    double concentration;
    double entropy;              /* bits */
    double total;                /* the map's mass */
} sal_region_stats;

/* Metrics of map (h,w); mask (h,w) may be NULL (non-zero = inside). Errors: SAL_ERR_INVALID_ARG
 * (NULL map or stats, sizes < 1), SAL_ERR_NOMEM (the top-5% selection's copy); err may be NULL. */
sal_status sal_region_metrics(const float *map, int h, int w, const uint8_t *mask,
                              sal_region_stats *out, sal_error *err);

#endif /* SAL_REGIONS_H */
