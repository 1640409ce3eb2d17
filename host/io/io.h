/* io.h — salient's file room: image decoding (stb_image), the exact preprocessing pipeline
 * (resize, center crop, channel conversion, normalization), PNG writing (stb_image_write),
 * NumPy .npy reading/writing and class-label files.
 *
 * Usage:
 *
 *     sal_image img;
 *     sal_image_load("cat.jpg", &img, &err);                    // (h,w,c) uint8, c = 1 or 3
 *     sal_prep_opts p = sal_prep_opts_imagenet(224, 224);
 *     float *x = malloc(sizeof(float) * 3 * 224 * 224);         // (C,out_h,out_w)
 *     sal_preprocess(&img, &p, x, &err);
 *     sal_image_free(&img);
 *
 * Contract (as everywhere in salient): every fallible function returns a sal_status (SAL_OK = 0)
 * and, on failure, fills the caller's `sal_error *err` (may be NULL) with a message that starts
 * with the file's path and says what is wrong with it. Nothing here prints, exits or keeps global
 * mutable state; on failure no memory is leaked and the outputs are left empty (NULL / 0).
 * Writers never leave a partial file behind: they write a temporary file next to the target and
 * rename() it into place only when everything was written.
 */
#ifndef SAL_IO_H
#define SAL_IO_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "salient.h"

/* ------------------------------------------------------------------------------------------------ */
/* Images                                                                                           */

#define SAL_IMAGE_MAX_SIDE 16384 /* larger images are refused as absurd (SAL_ERR_UNSUPPORTED) */

typedef struct sal_image {
    int w, h, c;   /* c is 1 (gray) or 3 (RGB) */
    uint8_t *pix;  /* (h,w,c) interleaved, row-major; malloc'ed, freed by sal_image_free */
} sal_image;

/* Decode a PNG, JPEG, BMP or PGM/PPM (P2, P3, P5, P6) file; the format is told by the file's first
 * bytes, never by its name. Gray and gray+alpha give c = 1; RGB and RGBA give c = 3 (alpha is
 * dropped, not composited). 16-bit PNGs give round(v * 255/65535) (sal_image_load_full keeps
 * them at full precision too); PNM samples are
 * rescaled to 0..255 as round(v*255/maxval).
 * Before decoding the file's structure is checked so that damaged files fail instead of decoding
 * to garbage (stb_image alone would accept many of them): PNG chunk lengths and the CRC of every
 * critical chunk, the presence of IHDR, IDAT and IEND; the JPEG marker structure up to its
 * end-of-image marker; the BMP pixel array's size; the PNM sample count.
 * Errors: SAL_ERR_IO (cannot open/read), SAL_ERR_PARSE (empty, truncated, corrupt, zero-size),
 * SAL_ERR_UNSUPPORTED (unknown format, a side > SAL_IMAGE_MAX_SIDE), SAL_ERR_NOMEM.
 * On failure *img is zeroed. */
sal_status sal_image_load(const char *path, sal_image *img, sal_error *err);

/* Default pixel limit of sal_image_load: Pillow's MAX_IMAGE_PIXELS (about 89 million pixels,
 * 268 MB of RGB). Decompression bombs (a 16384x16384 PNG is under 1 MB on disk) are refused
 * from their header's size before anything is decoded. */
#define SAL_IMAGE_MAX_PIXELS INT64_C(89478485)

/* sal_image_load with another pixel limit (w*h > max_pixels is SAL_ERR_UNSUPPORTED, naming the
 * size and the limit; max_pixels <= 0: no limit beyond SAL_IMAGE_MAX_SIDE). */
sal_status sal_image_load_limit(const char *path, int64_t max_pixels, sal_image *img, sal_error *err);

/* sal_image_load_limit that also gives a 16-bit PNG's samples at full precision: *fpix (may be
 * NULL; the caller frees it) receives (h,w,c) floats v * 255/65535 (the 0..255 scale of pix, so
 * preprocessing's scale and mean apply unchanged), or NULL for 8-bit images. */
sal_status sal_image_load_full(const char *path, int64_t max_pixels, sal_image *img, float **fpix,
                               sal_error *err);

/* Free img->pix and zero *img; NULL and already-freed images are fine. */
void sal_image_free(sal_image *img);

/* ------------------------------------------------------------------------------------------------ */
/* DICOM (host/io/dicom.cpp through GDCM; dicom_gray.c)                                             */

typedef struct sal_dicom {
    int w, h;
    float *values;            /* (h,w): the first frame's stored values * slope + intercept (CT:
                                 Hounsfield units), at full precision; malloc'ed */
    double slope, intercept;  /* RescaleSlope, RescaleIntercept (1 and 0 when absent) */
    int has_window;           /* the file's first VOI window (WindowCenter, WindowWidth >= 1) */
    double window_center, window_width;
    int monochrome1;          /* MONOCHROME1: low values are bright (shown inverted) */
} sal_dicom;

/* Read a single-sample (MONOCHROME1/2) DICOM image: 8, 16 or 32-bit, signed or not, any transfer
 * syntax GDCM decodes. Errors name the file: SAL_ERR_IO, SAL_ERR_PARSE, SAL_ERR_UNSUPPORTED
 * (color, a side > SAL_IMAGE_MAX_SIDE, more than max_pixels pixels when max_pixels > 0, a build
 * without GDCM), SAL_ERR_NOMEM. On failure *d is zeroed. */
sal_status sal_dicom_read(const char *path, int64_t max_pixels, sal_dicom *d, sal_error *err);
void sal_dicom_free(sal_dicom *d);
/* Display gray levels on the 0..255 scale: DICOM's linear VOI function (PS3.3 C.11.2.1.2.1) of
 * window (center, width): x <= c - 0.5 - (w-1)/2 gives 0, x > c - 0.5 + (w-1)/2 gives 255, else
 * ((x - (c - 0.5)) / (w - 1) + 0.5) * 255; then 255 - y for MONOCHROME1. width <= 0: the file's
 * window, else the image's range (center (min+max+1)/2, width max-min+1). gray (h,w) floats and
 * pix (h,w) rounded bytes: either may be NULL. */
sal_status sal_dicom_to_gray(const sal_dicom *d, double center, double width, float *gray, uint8_t *pix,
                             sal_error *err);

/* ------------------------------------------------------------------------------------------------ */
/* Preprocessing                                                                                    */

typedef struct sal_prep_opts {
    int out_h, out_w;    /* model input size */
    int resize_shorter;  /* 0: resize straight to (out_h,out_w);
                            >0: resize the shorter side to this, then center-crop (out_h,out_w) */
    int crop_no_enlarge; /* with resize_shorter > 0: never enlarge an image in order to crop it:
                            the shorter side goes to min(resize_shorter, its own length), but to
                            no less than what covers (out_h,out_w). An image at the input size is
                            then taken as it is, a smaller one stretched to it, and only larger
                            ones cropped (salient's CLI default; 0 is the plain convention) */
    int channels;        /* model channels, 1 or 3 */
    float scale;         /* applied to 0..255 values before mean/std; default 1/255 */
    float mean[3], std[3]; /* per model channel; with channels == 1 only [0] is used */
} sal_prep_opts;

/* ImageNet convention: channels 3, resize the shorter side to round(max(h,w)*256/224) (256 for
 * 224x224; using the larger side keeps non-square crops inside the resized image), center-crop
 * (h,w), scale 1/255, mean (0.485,0.456,0.406), std (0.229,0.224,0.225). */
sal_prep_opts sal_prep_opts_imagenet(int h, int w);

/* One-channel models (MNIST-like): channels 1, resize straight to (h,w) (resize_shorter 0),
 * scale 1/255, mean 0 and std 1 (so inputs are in [0,1]); set mean/std yourself when the model
 * was trained with another normalization. */
sal_prep_opts sal_prep_opts_gray(int h, int w);

/* image -> (C,out_h,out_w) float32 with C = opts->channels. The exact pipeline (a NumPy reference
 * reproduces it; all arithmetic below is done in double and rounded to float once, at the end):
 *
 *  1. Resized size (RH,RW): resize_shorter == 0: (out_h,out_w). Otherwise the shorter side S of the
 *     image becomes R = resize_shorter and the other side O becomes lround(O*R/S) (round
 *     half away from zero); a square image becomes (R,R). With crop_no_enlarge, R is
 *     min(resize_shorter, S), raised by ones until (RH,RW) covers (out_h,out_w).
 *  2. Crop window: top = (RH-out_h)/2, left = (RW-out_w)/2 (integer division); (0,0) when
 *     resize_shorter == 0. RH < out_h or RW < out_w is SAL_ERR_SHAPE.
 *  3. Bilinear resize, half-pixel centres, no antialiasing, evaluated only inside the crop window
 *     (identical to resizing everything and cropping): for a resized coordinate d along an axis
 *     of input length n and resized length r, s = (d+0.5)*n/r - 0.5 clamped to [0,n-1],
 *     i0 = floor(s), i1 = min(i0+1, n-1), f = s - i0. Along x first then y:
 *         top = (1-fx)*p[y0][x0] + fx*p[y0][x1],  bot = (1-fx)*p[y1][x0] + fx*p[y1][x1],
 *         v = (1-fy)*top + fy*bot                  (p are the uint8 samples, per image channel;
 *                                                   sal_preprocess_full's fpix where given)
 *  4. Channels, on the resized values: 3 -> 1: 0.299*R + 0.587*G + 0.114*B (ITU-R 601 luma);
 *     1 -> 3: the gray value repeated.
 *  5. out[c][y][x] = (v*scale - mean[c]) / std[c].
 *
 * Errors: SAL_ERR_INVALID_ARG for a bad image or options (sizes < 1 or > 16384, channels not 1 or
 * 3, std 0 or not finite), SAL_ERR_SHAPE for a crop larger than the resized image, SAL_ERR_NOMEM.
 * Messages here name the option at fault (there is no file). */
sal_status sal_preprocess(const sal_image *img, const sal_prep_opts *opts, float *out,
                          sal_error *err);
/* sal_preprocess reading the samples from fpix ((h,w,c) floats on the 0..255 scale, from
 * sal_image_load_full) instead of img->pix when fpix is not NULL: 16-bit data at full precision. */
sal_status sal_preprocess_full(const sal_image *img, const float *fpix, const sal_prep_opts *opts,
                               float *out, sal_error *err);

/* The resize and crop sal_preprocess applies to an img_w x img_h image: resized size (rh, rw)
 * and crop offsets (top, left) in resized pixels. SAL_ERR_SHAPE when the crop does not fit. */
sal_status sal_prep_geometry(int img_w, int img_h, const sal_prep_opts *o, int *rh, int *rw,
                             int *top, int *left);

/* ------------------------------------------------------------------------------------------------ */
/* PNG output                                                                                       */

/* Write (h,w,3) uint8 RGB as an 8-bit PNG (stbi_write_png), atomically (temporary file + rename). */
sal_status sal_png_write_rgb(const char *path, int w, int h, const uint8_t *rgb, sal_error *err);

/* ------------------------------------------------------------------------------------------------ */
/* NumPy .npy                                                                                       */

/* Read a .npy file (format versions 1.0, 2.0, 3.0). dtype '<f4' is read as is, '<f8' is converted
 * to float (values beyond float's range become +-inf); any other dtype, a big-endian one included,
 * is SAL_ERR_UNSUPPORTED, and so is fortran_order True. The header is validated strictly: magic,
 * version, header length against the file size, a Python dict literal with exactly the keys
 * 'descr', 'fortran_order' and 'shape', a shape of at most SAL_MAX_DIMS non-negative ints, and a
 * data section whose size is exactly prod(shape) * itemsize (trailing bytes are an error).
 * On success *data (malloc'ed, (prod(shape)) floats, C order; never NULL, even for 0 elements) is
 * the caller's to free(); *ndim is 0 for a scalar; dims[i] for i < *ndim.
 * On failure *data = NULL and *ndim = 0. Errors: SAL_ERR_IO, SAL_ERR_PARSE, SAL_ERR_UNSUPPORTED,
 * SAL_ERR_NOMEM. */
sal_status sal_npy_read(const char *path, float **data, int *ndim, int64_t dims[SAL_MAX_DIMS],
                        sal_error *err);

/* Write a float32 array of shape dims[0..ndim) (0 <= ndim <= SAL_MAX_DIMS; ndim 0 is a scalar)
 * in C order as format 1.0 with dtype '<f4', byte for byte as numpy.save writes it: the header
 * "{'descr': '<f4', 'fortran_order': False, 'shape': (...), }", then 21 - len(str(dims[0])) spaces
 * (NumPy's room to grow axis 0; none for a scalar), then spaces and '\n' so that magic + version +
 * length + header is a multiple of 64 bytes. Atomic (temporary file + rename). */
sal_status sal_npy_write(const char *path, const float *data, int ndim, const int64_t *dims,
                         sal_error *err);

/* ------------------------------------------------------------------------------------------------ */
/* Class labels                                                                                     */

/* One class name per line, UTF-8 (a leading BOM is skipped). "\n" and "\r\n" line ends are both
 * stripped; empty lines are kept as "" so that line i is class i; a final line end does not start
 * another class. An empty file, or one containing a NUL byte, is SAL_ERR_PARSE.
 * On success *names is an array of *count malloc'ed strings; free with sal_labels_free. */
sal_status sal_labels_load(const char *path, char ***names, int *count, sal_error *err);
void sal_labels_free(char **names, int count);

/* Index of the class whose name equals label ignoring ASCII case, or -1 (also for NULLs). */
int sal_labels_find(char *const *names, int count, const char *label);

/* ------------------------------------------------------------------------------------------------ */
/* Room-internal helpers (defined in npy.c, shared by the files of host/io)                         */

/* Read a whole file into a malloc'ed buffer (with one extra NUL byte after the content).
 * Files larger than max_bytes are refused (SAL_ERR_UNSUPPORTED). */
sal_status sal_io_read_file(const char *path, size_t max_bytes, uint8_t **buf, size_t *len,
                            sal_error *err);

/* Atomic writing: sal_io_atomic_open creates a new temporary file next to `path`
 * ("<path>.salient-tmp<pid>.<n>": a name salient's output folders clean up after a killed run, created exclusively, mode 0666 less the umask); sal_io_atomic_commit
 * closes it and renames it onto `path` when ok is nonzero and every write succeeded, and otherwise
 * removes it. Commit must be called exactly once after a successful open. */
typedef struct sal_io_atomic {
    FILE *f;
    char *tmp_path;  /* malloc'ed */
} sal_io_atomic;

sal_status sal_io_atomic_open(const char *path, sal_io_atomic *a, sal_error *err);
sal_status sal_io_atomic_commit(const char *path, sal_io_atomic *a, int ok, sal_error *err);

#endif /* SAL_IO_H */
