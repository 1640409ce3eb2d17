/* regions.c — the host loop of the audit's region metrics (regions.h) over the element
 * functions of kernels/region_elem.h. */
#include "post/regions.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "region_elem.h"

static const char *const region_names[SAL_RM_COUNT] = {"center", "border", "tl", "tr", "bl", "br", "mask"};
static const char *const region_words[SAL_RM_COUNT] = {
    "centre", "border", "top-left corner", "top-right corner", "bottom-left corner",
    "bottom-right corner", "mask"};

const char *sal_region_name(sal_region_metric r) {
    return (int)r >= 0 && r < SAL_RM_COUNT ? region_names[r] : "?";
}

const char *sal_region_words(sal_region_metric r) {
    return (int)r >= 0 && r < SAL_RM_COUNT ? region_words[r] : "?";
}

static void set_err(sal_error *err, sal_status st, const char *msg) {
    if (!err) return;
    err->status = st;
    snprintf(err->msg, sizeof err->msg, "%s", msg);
}

/* Reorder v[0..n) so that v[0..k) hold its k largest values (in no particular order): quickselect
 * with a median-of-three pivot, O(n) on average; a full sort of a 224x224 map per record cost
 * ~8 ms, as much as the rest of the metrics together. */
static void select_largest(float *v, size_t n, size_t k) {
    size_t lo = 0, hi = n;   /* the k-th largest lies in [lo, hi) */
    while (hi - lo > 1) {
        const size_t mid = lo + (hi - lo) / 2;
        float a = v[lo], b = v[mid], c = v[hi - 1];
        const float pivot = a < b ? (b < c ? b : a < c ? c : a) : (a < c ? a : b < c ? c : b);
        /* three-way partition, descending: [lo, gt) > pivot, [gt, i) == pivot, [lt, hi) < pivot */
        size_t gt = lo, i = lo, lt = hi;
        while (i < lt) {
            if (v[i] > pivot) { float t = v[i]; v[i] = v[gt]; v[gt] = t; gt++; i++; }
            else if (v[i] < pivot) { lt--; float t = v[i]; v[i] = v[lt]; v[lt] = t; }
            else i++;
        }
        if (k <= gt) hi = gt;          /* the k largest end inside the greater part */
        else if (k <= lt) return;      /* ... among the values equal to the pivot: done */
        else lo = lt;
    }
}

sal_status sal_region_metrics(const float *map, int h, int w, const uint8_t *mask,
                              sal_region_stats *out, sal_error *err) {
    if (!map || !out || h < 1 || w < 1) {
        set_err(err, SAL_ERR_INVALID_ARG, "sal_region_metrics: NULL map or stats, or a size below 1");
        return SAL_ERR_INVALID_ARG;
    }
    const size_t n = (size_t)h * (size_t)w;
    float *sorted = malloc(sizeof(float) * n);   /* (h*w) masses, the top 5% selected to the front */
    if (!sorted) {
        set_err(err, SAL_ERR_NOMEM, "sal_region_metrics: out of memory for the map's copy");
        return SAL_ERR_NOMEM;
    }
    double total = 0, in[SAL_RM_COUNT] = {0};
    static const int bit_of[SAL_RM_MASK] = {SAL_REGION_CENTER, SAL_REGION_BORDER, SAL_REGION_TL,
                                            SAL_REGION_TR, SAL_REGION_BL, SAL_REGION_BR};
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            const size_t i = (size_t)y * w + x;
            const float v = sal_region_mass(map[i]);
            sorted[i] = v;
            total += v;
            const int bits = sal_region_bits(y, x, h, w);
            for (int r = 0; r < SAL_RM_MASK; r++)
                if (bits & bit_of[r]) in[r] += v;
            if (mask && mask[i]) in[SAL_RM_MASK] += v;
        }
    out->total = total;
    if (!(total > 0)) {
        for (int r = 0; r < SAL_RM_COUNT; r++) out->mass[r] = NAN;
        out->concentration = out->entropy = NAN;
        free(sorted);
        return SAL_OK;
    }
    for (int r = 0; r < SAL_RM_COUNT; r++) out->mass[r] = in[r] / total;
    if (!mask) out->mass[SAL_RM_MASK] = NAN;
    double ent = 0;
    for (size_t i = 0; i < n; i++) ent += sal_region_entropy_term(map[i], total);
    out->entropy = ent;
    size_t k = (size_t)ceil(SAL_CONCENTRATION_TOP * (double)n - 1e-9);
    if (k < 1) k = 1;
    select_largest(sorted, n, k);
    double top = 0;
    for (size_t i = 0; i < k; i++) top += sorted[i];
    out->concentration = top / total;
    free(sorted);
    return SAL_OK;
}
