/* dicom.cpp — DICOM input through GDCM (Debian's libgdcm-dev; GDCM is C++, so this one file of
 * salient is too, behind the C interface of io.h): the first frame of a single-sample image,
 * its modality values (stored * RescaleSlope + RescaleIntercept: Hounsfield units for CT) kept
 * as floats, the file's first VOI window (WindowCenter/WindowWidth) and whether it is
 * MONOCHROME1. Nothing here prints or throws past the C boundary. */
#include <gdcmImage.h>
#include <gdcmImageReader.h>
#include <gdcmPhotometricInterpretation.h>
#include <gdcmPixelFormat.h>
#include <gdcmTrace.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

extern "C" {
#include "io.h"
#include "model/graph.h"   /* sal_fail */
}

/* The first number of a DS (decimal string) element such as "40\400"; 0 when absent. */
static int first_number(const gdcm::DataSet &ds, uint16_t group, uint16_t elem, double *v) {
    const gdcm::Tag tag(group, elem);
    if (!ds.FindDataElement(tag)) return 0;
    const gdcm::ByteValue *bv = ds.GetDataElement(tag).GetByteValue();
    if (!bv || bv->GetLength() == 0 || bv->GetLength() > 1024) return 0;
    std::string s(bv->GetPointer(), bv->GetLength());
    char *end = nullptr;
    double d = std::strtod(s.c_str(), &end);
    if (end == s.c_str() || !(d == d)) return 0;
    *v = d;
    return 1;
}

template <typename T> static void to_float(const char *raw, size_t n, double slope, double inter, float *out) {
    for (size_t i = 0; i < n; i++) {
        T t;
        std::memcpy(&t, raw + i * sizeof(T), sizeof(T));
        out[i] = (float)((double)t * slope + inter);
    }
}

static sal_status read_dicom(const char *path, int64_t max_pixels, sal_dicom *d, sal_error *err) {
    gdcm::ImageReader reader;
    reader.SetFileName(path);
    if (!reader.Read())
        return sal_fail(err, SAL_ERR_PARSE, "%s: not a DICOM image GDCM can read (no pixel data, or a "
                        "damaged or unsupported file)", path);
    const gdcm::Image &im = reader.GetImage();
    const unsigned int *dims = im.GetDimensions();
    const gdcm::PixelFormat pf = im.GetPixelFormat();
    if (!dims || dims[0] == 0 || dims[1] == 0)
        return sal_fail(err, SAL_ERR_PARSE, "%s: DICOM image of zero size", path);
    if (dims[0] > SAL_IMAGE_MAX_SIDE || dims[1] > SAL_IMAGE_MAX_SIDE)
        return sal_fail(err, SAL_ERR_UNSUPPORTED, "%s: DICOM image is %ux%u, larger than %d per side", path,
                        dims[1], dims[0], SAL_IMAGE_MAX_SIDE);
    const int64_t npix = (int64_t)dims[0] * dims[1];
    if (max_pixels > 0 && npix > max_pixels)
        return sal_fail(err, SAL_ERR_UNSUPPORTED, "%s: DICOM image of %lld pixels, over the limit of %lld "
                        "(--max-pixels)", path, (long long)npix, (long long)max_pixels);
    if (pf.GetSamplesPerPixel() != 1)
        return sal_fail(err, SAL_ERR_UNSUPPORTED, "%s: DICOM image with %d samples per pixel (%s); salient "
                        "reads grayscale (MONOCHROME1/2) images", path, (int)pf.GetSamplesPerPixel(),
                        gdcm::PhotometricInterpretation::GetPIString(im.GetPhotometricInterpretation()));
    const gdcm::PhotometricInterpretation::PIType pi = im.GetPhotometricInterpretation();
    if (pi != gdcm::PhotometricInterpretation::MONOCHROME1 && pi != gdcm::PhotometricInterpretation::MONOCHROME2)
        return sal_fail(err, SAL_ERR_UNSUPPORTED, "%s: DICOM photometric interpretation %s; salient reads "
                        "MONOCHROME1 and MONOCHROME2", path, gdcm::PhotometricInterpretation::GetPIString(pi));
    const size_t len = im.GetBufferLength();
    std::vector<char> raw;
    try { raw.resize(len); } catch (...) { return sal_fail(err, SAL_ERR_NOMEM, "%s: out of memory", path); }
    if (!im.GetBuffer(raw.data()))
        return sal_fail(err, SAL_ERR_PARSE, "%s: cannot decode the DICOM pixel data", path);
    const double slope = im.GetSlope(), inter = im.GetIntercept();
    float *v = (float *)std::malloc(sizeof(float) * (size_t)npix);
    if (!v) return sal_fail(err, SAL_ERR_NOMEM, "%s: out of memory for %lld pixels", path, (long long)npix);
    const size_t n = (size_t)npix;   /* the first frame */
    size_t need = 0;
    switch (pf.GetScalarType()) {
    case gdcm::PixelFormat::UINT8: need = n; if (len >= need) to_float<uint8_t>(raw.data(), n, slope, inter, v); break;
    case gdcm::PixelFormat::INT8: need = n; if (len >= need) to_float<int8_t>(raw.data(), n, slope, inter, v); break;
    case gdcm::PixelFormat::UINT16: need = 2 * n; if (len >= need) to_float<uint16_t>(raw.data(), n, slope, inter, v); break;
    case gdcm::PixelFormat::INT16: need = 2 * n; if (len >= need) to_float<int16_t>(raw.data(), n, slope, inter, v); break;
    case gdcm::PixelFormat::UINT32: need = 4 * n; if (len >= need) to_float<uint32_t>(raw.data(), n, slope, inter, v); break;
    case gdcm::PixelFormat::INT32: need = 4 * n; if (len >= need) to_float<int32_t>(raw.data(), n, slope, inter, v); break;
    default:
        std::free(v);
        return sal_fail(err, SAL_ERR_UNSUPPORTED, "%s: DICOM pixel type %s is not supported", path,
                        pf.GetScalarTypeAsString());
    }
    if (len < need) {
        std::free(v);
        return sal_fail(err, SAL_ERR_PARSE, "%s: DICOM pixel data holds %zu bytes, %zu needed", path, len, need);
    }
    d->w = (int)dims[0];
    d->h = (int)dims[1];
    d->values = v;
    d->slope = slope;
    d->intercept = inter;
    d->monochrome1 = pi == gdcm::PhotometricInterpretation::MONOCHROME1;
    const gdcm::DataSet &ds = reader.GetFile().GetDataSet();
    double c = 0, w = 0;
    d->has_window = first_number(ds, 0x0028, 0x1050, &c) && first_number(ds, 0x0028, 0x1051, &w) && w >= 1;
    d->window_center = d->has_window ? c : 0;
    d->window_width = d->has_window ? w : 0;
    return SAL_OK;
}

extern "C" sal_status sal_dicom_read(const char *path, int64_t max_pixels, sal_dicom *d, sal_error *err) {
    if (!d) return sal_fail(err, SAL_ERR_INVALID_ARG, "sal_dicom_read: NULL output");
    std::memset(d, 0, sizeof *d);
    if (!path) return sal_fail(err, SAL_ERR_INVALID_ARG, "sal_dicom_read: NULL path");
    std::FILE *f = std::fopen(path, "rb");   /* GDCM says little about a missing file */
    if (!f) return sal_fail(err, SAL_ERR_IO, "%s: cannot open: %s", path, std::strerror(errno));
    std::fclose(f);
    /* GDCM writes its warnings to stderr by default; the library never prints. Its switches are
     * GDCM's process-wide settings: turned off here, the same value from every thread */
    gdcm::Trace::WarningOff();
    gdcm::Trace::ErrorOff();
    gdcm::Trace::DebugOff();
    try {
        sal_status st = read_dicom(path, max_pixels, d, err);
        if (st) sal_dicom_free(d);
        return st;
    } catch (const std::bad_alloc &) {
        sal_dicom_free(d);
        return sal_fail(err, SAL_ERR_NOMEM, "%s: out of memory", path);
    } catch (...) {
        sal_dicom_free(d);
        return sal_fail(err, SAL_ERR_PARSE, "%s: GDCM failed reading the file", path);
    }
}

extern "C" void sal_dicom_free(sal_dicom *d) {
    if (!d) return;
    std::free(d->values);
    std::memset(d, 0, sizeof *d);
}
