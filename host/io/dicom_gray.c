/* dicom_gray.c — DICOM modality values to display gray levels (the part of DICOM input that needs
 * no DICOM library): the linear VOI window of DICOM PS3.3 C.11.2.1.2.1, MONOCHROME1 inversion,
 * and the build's answer when it has no GDCM (dicom.cpp is compiled only with it). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "io.h"
#include "model/graph.h"   /* sal_fail */

sal_status sal_dicom_to_gray(const sal_dicom *d, double center, double width, float *gray, uint8_t *pix,
                             sal_error *err) {
    if (!d || !d->values || d->w < 1 || d->h < 1)
        return sal_fail(err, SAL_ERR_INVALID_ARG, "sal_dicom_to_gray: no image");
    const int64_t n = (int64_t)d->w * d->h;
    if (!(width > 0)) {   /* no window: the image's own range */
        if (d->has_window) {
            center = d->window_center;
            width = d->window_width;
        } else {
            float lo = d->values[0], hi = d->values[0];
            for (int64_t i = 1; i < n; i++) {
                if (d->values[i] < lo) lo = d->values[i];
                if (d->values[i] > hi) hi = d->values[i];
            }
            /* the linear function's ends at lo - 0.5 and hi + 0.5: lo gives ~0, hi ~255 */
            center = ((double)lo + (double)hi + 1.0) / 2.0;
            width = (double)hi - (double)lo + 1.0;
        }
    }
    if (!(width >= 1) || !isfinite(center) || !isfinite(width))
        return sal_fail(err, SAL_ERR_INVALID_ARG, "DICOM window center %g width %g: the width must be at "
                        "least 1", center, width);
    const double lo = center - 0.5 - (width - 1) / 2, hi = center - 0.5 + (width - 1) / 2;
    for (int64_t i = 0; i < n; i++) {
        const double x = d->values[i];
        double y = x <= lo ? 0.0 : x > hi ? 255.0 : ((x - (center - 0.5)) / (width - 1) + 0.5) * 255.0;
        if (y < 0) y = 0;   /* width 1: the formula's division; clamp to the output range */
        if (y > 255) y = 255;
        if (d->monochrome1) y = 255.0 - y;
        if (gray) gray[i] = (float)y;
        if (pix) pix[i] = (uint8_t)lround(y);
    }
    return SAL_OK;
}

#ifndef SAL_HAVE_GDCM
sal_status sal_dicom_read(const char *path, int64_t max_pixels, sal_dicom *d, sal_error *err) {
    (void)max_pixels;
    if (d) memset(d, 0, sizeof *d);
    return sal_fail(err, SAL_ERR_UNSUPPORTED, "%s: this salient was built without DICOM support "
                    "(GDCM: Debian's libgdcm-dev)", path ? path : "(null)");
}

void sal_dicom_free(sal_dicom *d) {
    if (!d) return;
    free(d->values);
    memset(d, 0, sizeof *d);
}
#endif
