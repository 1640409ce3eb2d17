/* image.c — image files in and out: format detection by magic bytes, structural checks that make
 * damaged PNG/JPEG/BMP files fail instead of decoding to garbage, decoding through stb_image, a
 * small PGM/PPM decoder of our own (stb_image ignores truncation and maxval there), the exact
 * preprocessing pipeline (bilinear resize, center crop, channel conversion, normalization). PNG
 * writing: png.c. */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <stb/stb_image.h>

#include "io/io.h"
#include "model/graph.h"

#define IMAGE_MAX_FILE_BYTES ((size_t)1 << 30) /* stb_image takes an int length */

void sal_image_free(sal_image *img) {
    if (!img) return;
    free(img->pix);
    memset(img, 0, sizeof *img);
}

/* ------------------------------------------------------------------------------------------------ */
/* Byte helpers                                                                                     */

static uint32_t be32(const uint8_t *b) {
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | (uint32_t)b[3];
}
static uint32_t le32(const uint8_t *b) {
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}
static unsigned be16(const uint8_t *b) { return (unsigned)b[0] << 8 | b[1]; }
static unsigned le16(const uint8_t *b) { return (unsigned)b[0] | (unsigned)b[1] << 8; }

typedef enum { FMT_UNKNOWN, FMT_PNG, FMT_JPEG, FMT_BMP, FMT_PNM } image_format;

static int pnm_space(uint8_t c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

static image_format detect_format(const uint8_t *b, size_t n) {
    if (n >= 8 && memcmp(b, "\x89PNG\r\n\x1a\n", 8) == 0) return FMT_PNG;
    if (n >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF) return FMT_JPEG;
    if (n >= 2 && b[0] == 'B' && b[1] == 'M') return FMT_BMP;
    if (n >= 3 && b[0] == 'P' && b[1] && strchr("2356", b[1]) && (pnm_space(b[2]) || b[2] == '#'))
        return FMT_PNM;
    return FMT_UNKNOWN;
}

static const char *format_name(image_format f) {
    switch (f) {
    case FMT_PNG: return "PNG";
    case FMT_JPEG: return "JPEG";
    case FMT_BMP: return "BMP";
    case FMT_PNM: return "PGM/PPM";
    default: return "image";
    }
}

/* ------------------------------------------------------------------------------------------------ */
/* Structural checks                                                                                */

/* PNG: walk the chunks; every critical chunk's CRC must match (as libpng requires), IHDR comes
 * first (after Apple's CgBI), at least one IDAT, and the file reaches IEND. */
static sal_status check_png(const char *path, const uint8_t *b, size_t n, sal_error *err) {
    uint32_t crc_table[256]; /* CRC-32, polynomial 0xEDB88320, as in the PNG specification */
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_table[i] = c;
    }
    size_t pos = 8;
    int index = 0, seen_ihdr = 0, seen_idat = 0;
    for (;; index++) {
        if (n - pos < 12)
            return sal_fail(err, SAL_ERR_PARSE, "%s: truncated PNG (file ends at byte %zu, before IEND)",
                            path, n);
        uint32_t len = be32(b + pos);
        const uint8_t *type = b + pos + 4;
        char tname[5];
        for (int k = 0; k < 4; k++) {
            uint8_t t = type[k];
            if (!((t >= 'A' && t <= 'Z') || (t >= 'a' && t <= 'z')))
                return sal_fail(err, SAL_ERR_PARSE, "%s: corrupt PNG (bad chunk type at byte %zu)",
                                path, pos + 4);
            tname[k] = (char)t;
        }
        tname[4] = 0;
        if (len > 0x7fffffffu)
            return sal_fail(err, SAL_ERR_PARSE, "%s: corrupt PNG (chunk '%s' has length %u)", path,
                            tname, len);
        if (len > n - pos - 12)
            return sal_fail(err, SAL_ERR_PARSE, "%s: truncated PNG (chunk '%s' is cut off)", path, tname);
        int critical = !(type[0] & 0x20);
        if (critical) {
            uint32_t c = 0xFFFFFFFFu;
            for (size_t k = 0; k < (size_t)len + 4; k++) c = crc_table[(c ^ type[k]) & 0xff] ^ (c >> 8);
            c ^= 0xFFFFFFFFu;
            if (c != be32(b + pos + 8 + len))
                return sal_fail(err, SAL_ERR_PARSE, "%s: corrupt PNG (CRC mismatch in chunk '%s')",
                                path, tname);
        }
        if (strcmp(tname, "IHDR") == 0) {
            if (seen_ihdr || len != 13)
                return sal_fail(err, SAL_ERR_PARSE, "%s: corrupt PNG (bad IHDR chunk)", path);
            seen_ihdr = 1;
            uint32_t w = be32(b + pos + 8), h = be32(b + pos + 12);
            if (w == 0 || h == 0)
                return sal_fail(err, SAL_ERR_PARSE, "%s: zero-size PNG (%ux%u)", path, w, h);
            if (w > SAL_IMAGE_MAX_SIDE || h > SAL_IMAGE_MAX_SIDE)
                return sal_fail(err, SAL_ERR_UNSUPPORTED, "%s: PNG is %ux%u, larger than %d per side",
                                path, w, h, SAL_IMAGE_MAX_SIDE);
        } else if (!seen_ihdr && !(index == 0 && strcmp(tname, "CgBI") == 0)) {
            return sal_fail(err, SAL_ERR_PARSE, "%s: corrupt PNG (first chunk is '%s', not IHDR)",
                            path, tname);
        } else if (strcmp(tname, "IDAT") == 0) {
            seen_idat = 1;
        } else if (strcmp(tname, "IEND") == 0) {
            if (!seen_idat)
                return sal_fail(err, SAL_ERR_PARSE, "%s: corrupt PNG (no IDAT chunk)", path);
            return SAL_OK;
        }
        pos += 12 + (size_t)len;
    }
}

/* JPEG: follow the marker segments and the entropy-coded data after each SOS up to the EOI
 * marker, and check the frame size. stb_image already rejects the truncated baseline files we
 * tried, but its decoder reads zeros past the end of its buffer, so a file that does not reach
 * EOI is refused here, before decoding, with a message that says "truncated". Stray bytes between
 * segments are skipped as libjpeg does. */
static sal_status check_jpeg(const char *path, const uint8_t *b, size_t n, sal_error *err) {
    size_t pos = 2;
    int seen_sos = 0;
    for (;;) {
        if (pos >= n) goto truncated;
        if (b[pos] != 0xFF) {
            pos++;
            continue;
        }
        while (pos < n && b[pos] == 0xFF) pos++;
        if (pos >= n) goto truncated;
        uint8_t m = b[pos++];
        if (m == 0xD9) {
            if (!seen_sos)
                return sal_fail(err, SAL_ERR_PARSE, "%s: corrupt JPEG (no image data before EOI)", path);
            return SAL_OK;
        }
        if (m == 0x00 || m == 0x01 || m == 0xD8 || (m >= 0xD0 && m <= 0xD7)) continue;
        if (n - pos < 2) goto truncated;
        size_t len = be16(b + pos);
        if (len < 2)
            return sal_fail(err, SAL_ERR_PARSE, "%s: corrupt JPEG (segment length %zu)", path, len);
        if (len > n - pos) goto truncated;
        int sof = m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC;
        if (sof && len >= 7) { /* precision, height, width */
            unsigned h = be16(b + pos + 3), w = be16(b + pos + 5);
            if (w == 0 || h == 0)
                return sal_fail(err, SAL_ERR_PARSE, "%s: zero-size JPEG (%ux%u)", path, w, h);
            if (w > SAL_IMAGE_MAX_SIDE || h > SAL_IMAGE_MAX_SIDE)
                return sal_fail(err, SAL_ERR_UNSUPPORTED, "%s: JPEG is %ux%u, larger than %d per side",
                                path, w, h, SAL_IMAGE_MAX_SIDE);
        }
        pos += len;
        if (m != 0xDA) continue;
        seen_sos = 1;
        for (;;) { /* entropy-coded data: 0xFF is stuffed as FF00; RSTn markers live inside it */
            const uint8_t *ff = memchr(b + pos, 0xFF, n - pos);
            if (!ff) goto truncated;
            pos = (size_t)(ff - b);
            if (pos + 1 >= n) goto truncated;
            uint8_t next = b[pos + 1];
            if (next == 0x00 || (next >= 0xD0 && next <= 0xD7)) {
                pos += 2;
                continue;
            }
            break; /* a marker (possibly after fill bytes) */
        }
    }
truncated:
    return sal_fail(err, SAL_ERR_PARSE, "%s: truncated JPEG (no end-of-image marker)", path);
}

/* BMP: the uncompressed pixel array must fit in the file (stb_image reads zeros past the end). */
static sal_status check_bmp(const char *path, const uint8_t *b, size_t n, sal_error *err) {
    if (n < 26) return sal_fail(err, SAL_ERR_PARSE, "%s: truncated BMP (header cut off)", path);
    uint32_t offset = le32(b + 10), hsz = le32(b + 14);
    int64_t w, h;
    unsigned bpp;
    uint32_t compression = 0;
    if (hsz == 12) {
        w = le16(b + 18);
        h = le16(b + 20);
        bpp = le16(b + 24);
    } else {
        if (n < 34) return sal_fail(err, SAL_ERR_PARSE, "%s: truncated BMP (header cut off)", path);
        w = (int32_t)le32(b + 18);
        h = (int32_t)le32(b + 22);
        bpp = le16(b + 28);
        compression = le32(b + 30);
    }
    if (h < 0) h = -h;
    if (w <= 0 || h == 0)
        return sal_fail(err, SAL_ERR_PARSE, "%s: zero-size or corrupt BMP (%lldx%lld)", path,
                        (long long)w, (long long)h);
    if (w > SAL_IMAGE_MAX_SIDE || h > SAL_IMAGE_MAX_SIDE)
        return sal_fail(err, SAL_ERR_UNSUPPORTED, "%s: BMP is %lldx%lld, larger than %d per side",
                        path, (long long)w, (long long)h, SAL_IMAGE_MAX_SIDE);
    int uncompressed = compression == 0 || compression == 3 || compression == 6;
    if (uncompressed && bpp >= 1 && bpp <= 32) {
        uint64_t row = ((uint64_t)w * bpp + 31) / 32 * 4;
        if ((uint64_t)offset + row * (uint64_t)h > n)
            return sal_fail(err, SAL_ERR_PARSE, "%s: truncated BMP (pixel data cut off)", path);
    }
    return SAL_OK;
}

/* ------------------------------------------------------------------------------------------------ */
/* PGM / PPM (P2 P3 ASCII, P5 P6 binary; 8 or 16 bits)                                              */

typedef struct pnm_cursor {
    const uint8_t *b;
    size_t n, pos;
} pnm_cursor;

/* Next unsigned decimal after whitespace and '#' comments; -1 at the end, -2 when malformed or
 * above 65535 (no PNM field here may be larger than that... except sizes, checked by caller). */
static long pnm_int(pnm_cursor *c) {
    for (;;) {
        while (c->pos < c->n && pnm_space(c->b[c->pos])) c->pos++;
        if (c->pos < c->n && c->b[c->pos] == '#') {
            while (c->pos < c->n && c->b[c->pos] != '\n' && c->b[c->pos] != '\r') c->pos++;
            continue;
        }
        break;
    }
    if (c->pos >= c->n) return -1;
    if (c->b[c->pos] < '0' || c->b[c->pos] > '9') return -2;
    long v = 0;
    while (c->pos < c->n && c->b[c->pos] >= '0' && c->b[c->pos] <= '9') {
        v = v * 10 + (c->b[c->pos++] - '0');
        if (v > 1000000) return -2;
    }
    if (c->pos < c->n && !pnm_space(c->b[c->pos]) && c->b[c->pos] != '#') return -2;
    return v;
}

/* The decompression-bomb check, made from the header's size before anything is decoded. */
static sal_status check_pixels(const char *path, const char *fname, int64_t w, int64_t h,
                               int64_t max_pixels, sal_error *err) {
    if (max_pixels > 0 && w * h > max_pixels)   /* w, h <= SAL_IMAGE_MAX_SIDE: no overflow */
        return sal_fail(err, SAL_ERR_UNSUPPORTED, "%s: %s is %lldx%lld = %lld pixels, over the limit of "
                        "%lld (a decompression bomb?); raise it with --max-pixels", path, fname,
                        (long long)w, (long long)h, (long long)(w * h), (long long)max_pixels);
    return SAL_OK;
}

static sal_status load_pnm(const char *path, const uint8_t *b, size_t n, int64_t max_pixels,
                           sal_image *img, sal_error *err) {
    char kind = (char)b[1];
    int comp = (kind == '3' || kind == '6') ? 3 : 1;
    int ascii = (kind == '2' || kind == '3');
    pnm_cursor c = {b, n, 2};
    long w = pnm_int(&c), h = pnm_int(&c), maxval = pnm_int(&c);
    if (w == -1 || h == -1 || maxval == -1)
        return sal_fail(err, SAL_ERR_PARSE, "%s: truncated PGM/PPM (header cut off)", path);
    if (w < 0 || h < 0 || maxval < 0)
        return sal_fail(err, SAL_ERR_PARSE, "%s: corrupt PGM/PPM header", path);
    if (w == 0 || h == 0)
        return sal_fail(err, SAL_ERR_PARSE, "%s: zero-size PGM/PPM (%ldx%ld)", path, w, h);
    if (w > SAL_IMAGE_MAX_SIDE || h > SAL_IMAGE_MAX_SIDE)
        return sal_fail(err, SAL_ERR_UNSUPPORTED, "%s: PGM/PPM is %ldx%ld, larger than %d per side",
                        path, w, h, SAL_IMAGE_MAX_SIDE);
    if (maxval < 1 || maxval > 65535)
        return sal_fail(err, SAL_ERR_PARSE, "%s: corrupt PGM/PPM (maxval %ld)", path, maxval);
    sal_status pst = check_pixels(path, "PGM/PPM", w, h, max_pixels, err);
    if (pst != SAL_OK) return pst;
    size_t count = (size_t)w * (size_t)h * (size_t)comp;
    int wide = maxval > 255;
    if (!ascii) {
        /* exactly one whitespace byte after maxval (pnm_int stopped on it), then the samples */
        if (c.pos < n && !pnm_space(b[c.pos]))
            return sal_fail(err, SAL_ERR_PARSE, "%s: corrupt PGM/PPM header", path);
        c.pos++;
        if (c.pos > n || n - c.pos < count * (wide ? 2 : 1))
            return sal_fail(err, SAL_ERR_PARSE, "%s: truncated PGM/PPM (pixel data cut off)", path);
    }
    uint8_t *pix = malloc(count);
    if (!pix) return sal_fail(err, SAL_ERR_NOMEM, "%s: out of memory for a %ldx%ld image", path, w, h);
    for (size_t i = 0; i < count; i++) {
        long v;
        if (ascii) {
            v = pnm_int(&c);
            if (v < 0) {
                free(pix);
                return sal_fail(err, SAL_ERR_PARSE, "%s: %s PGM/PPM (pixel data)", path,
                                v == -1 ? "truncated" : "corrupt");
            }
        } else if (wide) {
            v = (long)be16(b + c.pos + 2 * i);
        } else {
            v = b[c.pos + i];
        }
        if (v > maxval) v = maxval;
        pix[i] = (uint8_t)((v * 255 + maxval / 2) / maxval);
    }
    img->w = (int)w;
    img->h = (int)h;
    img->c = comp;
    img->pix = pix;
    return SAL_OK;
}

/* ------------------------------------------------------------------------------------------------ */
/* Loading                                                                                          */

/* A 16-bit PNG: pix holds v * 255/65535 rounded, and *fpix (when fpix is not NULL) the same at
 * full precision (the 8-bit scale, so preprocessing's scale and mean apply unchanged). */
static sal_status load_png16(const char *path, const uint8_t *b, size_t n, int want, int x, int y,
                             sal_image *img, float **fpix_out, sal_error *err) {
    int x2 = 0, y2 = 0, comp2 = 0;
    stbi_us *p = stbi_load_16_from_memory(b, (int)n, &x2, &y2, &comp2, want);
    if (!p)
        return sal_fail(err, SAL_ERR_PARSE, "%s: cannot decode 16-bit PNG: %s", path,
                        stbi_failure_reason() ? stbi_failure_reason() : "unknown reason");
    if (x2 != x || y2 != y) {
        stbi_image_free(p);
        return sal_fail(err, SAL_ERR_PARSE, "%s: inconsistent PNG header (%dx%d vs %dx%d)", path, x, y, x2, y2);
    }
    const size_t count = (size_t)x * (size_t)y * (size_t)want;   /* (h,w,c) */
    uint8_t *pix = malloc(count);
    float *fpix = fpix_out ? malloc(count * sizeof(float)) : NULL;
    if (!pix || (fpix_out && !fpix)) {
        stbi_image_free(p);
        free(pix);
        free(fpix);
        return sal_fail(err, SAL_ERR_NOMEM, "%s: out of memory for a %dx%d image", path, x, y);
    }
    for (size_t i = 0; i < count; i++) {
        if (fpix) fpix[i] = (float)((double)p[i] * 255.0 / 65535.0);
        pix[i] = (uint8_t)((p[i] * 255u + 32767u) / 65535u);
    }
    stbi_image_free(p);
    img->w = x;
    img->h = y;
    img->c = want;
    img->pix = pix;
    if (fpix_out) *fpix_out = fpix;
    return SAL_OK;
}

static sal_status load_stb(const char *path, image_format fmt, const uint8_t *b, size_t n,
                           int64_t max_pixels, sal_image *img, float **fpix, sal_error *err) {
    const char *fname = format_name(fmt);
    int x = 0, y = 0, comp = 0;
    if (!stbi_info_from_memory(b, (int)n, &x, &y, &comp))
        return sal_fail(err, SAL_ERR_PARSE, "%s: corrupt or unsupported %s: %s", path, fname,
                        stbi_failure_reason() ? stbi_failure_reason() : "unknown reason");
    if (x <= 0 || y <= 0)
        return sal_fail(err, SAL_ERR_PARSE, "%s: zero-size %s (%dx%d)", path, fname, x, y);
    if (x > SAL_IMAGE_MAX_SIDE || y > SAL_IMAGE_MAX_SIDE)
        return sal_fail(err, SAL_ERR_UNSUPPORTED, "%s: %s is %dx%d, larger than %d per side", path,
                        fname, x, y, SAL_IMAGE_MAX_SIDE);
    if (comp < 1 || comp > 4)
        return sal_fail(err, SAL_ERR_UNSUPPORTED, "%s: %s with %d channels", path, fname, comp);
    sal_status pst = check_pixels(path, fname, x, y, max_pixels, err);   /* stbi_info: not decoded yet */
    if (pst != SAL_OK) return pst;
    int want = comp <= 2 ? 1 : 3; /* gray+alpha -> gray, RGBA -> RGB: alpha dropped */
    int x2 = 0, y2 = 0, comp2 = 0;
    if (fmt == FMT_PNG && stbi_is_16_bit_from_memory(b, (int)n)) return load_png16(path, b, n, want, x, y, img, fpix, err);
    stbi_uc *p = stbi_load_from_memory(b, (int)n, &x2, &y2, &comp2, want);
    if (!p)
        return sal_fail(err, SAL_ERR_PARSE, "%s: cannot decode %s: %s", path, fname,
                        stbi_failure_reason() ? stbi_failure_reason() : "unknown reason");
    if (x2 != x || y2 != y) {
        stbi_image_free(p);
        return sal_fail(err, SAL_ERR_PARSE, "%s: inconsistent %s header (%dx%d vs %dx%d)", path,
                        fname, x, y, x2, y2);
    }
    size_t bytes = (size_t)x * (size_t)y * (size_t)want;
    uint8_t *pix = malloc(bytes); /* ours, so that sal_image_free is a plain free() */
    if (!pix) {
        stbi_image_free(p);
        return sal_fail(err, SAL_ERR_NOMEM, "%s: out of memory for a %dx%d image", path, x, y);
    }
    memcpy(pix, p, bytes);
    stbi_image_free(p);
    img->w = x;
    img->h = y;
    img->c = want;
    img->pix = pix;
    return SAL_OK;
}

sal_status sal_image_load(const char *path, sal_image *img, sal_error *err) {
    return sal_image_load_limit(path, SAL_IMAGE_MAX_PIXELS, img, err);
}

sal_status sal_image_load_limit(const char *path, int64_t max_pixels, sal_image *img, sal_error *err) {
    return sal_image_load_full(path, max_pixels, img, NULL, err);
}

sal_status sal_image_load_full(const char *path, int64_t max_pixels, sal_image *img, float **fpix,
                               sal_error *err) {
    if (!img)
        return sal_fail(err, SAL_ERR_INVALID_ARG, "%s: sal_image_load: NULL image", path ? path : "(null)");
    memset(img, 0, sizeof *img);
    if (fpix) *fpix = NULL;
    uint8_t *b;
    size_t n;
    sal_status st = sal_io_read_file(path, IMAGE_MAX_FILE_BYTES, &b, &n, err);
    if (st != SAL_OK) return st;
    if (n == 0) {
        free(b);
        return sal_fail(err, SAL_ERR_PARSE, "%s: empty file, not an image", path);
    }
    image_format fmt = detect_format(b, n);
    switch (fmt) {
    case FMT_PNG: st = check_png(path, b, n, err); break;
    case FMT_JPEG: st = check_jpeg(path, b, n, err); break;
    case FMT_BMP: st = check_bmp(path, b, n, err); break;
    case FMT_PNM: st = SAL_OK; break;
    default:
        st = sal_fail(err, SAL_ERR_UNSUPPORTED,
                      "%s: not a PNG, JPEG, BMP, PGM or PPM file (unrecognized first bytes)", path);
    }
    if (st == SAL_OK)
        st = fmt == FMT_PNM ? load_pnm(path, b, n, max_pixels, img, err)
                            : load_stb(path, fmt, b, n, max_pixels, img, fpix, err);
    free(b);
    if (st != SAL_OK) memset(img, 0, sizeof *img);
    return st;
}

/* ------------------------------------------------------------------------------------------------ */
/* Preprocessing                                                                                    */

sal_prep_opts sal_prep_opts_imagenet(int h, int w) {
    sal_prep_opts o;
    memset(&o, 0, sizeof o);
    o.out_h = h;
    o.out_w = w;
    o.resize_shorter = (int)lround((double)(h > w ? h : w) * 256.0 / 224.0);
    o.channels = 3;
    o.scale = 1.0f / 255.0f;
    o.mean[0] = 0.485f, o.mean[1] = 0.456f, o.mean[2] = 0.406f;
    o.std[0] = 0.229f, o.std[1] = 0.224f, o.std[2] = 0.225f;
    return o;
}

sal_prep_opts sal_prep_opts_gray(int h, int w) {
    sal_prep_opts o;
    memset(&o, 0, sizeof o);
    o.out_h = h;
    o.out_w = w;
    o.resize_shorter = 0;
    o.channels = 1;
    o.scale = 1.0f / 255.0f;
    for (int c = 0; c < 3; c++) o.mean[c] = 0.0f, o.std[c] = 1.0f;
    return o;
}

/* One axis of the bilinear map: for resized coordinates first..first+count-1 of a resize from
 * length n to length r, the two source indices and the weight of the second. */
static void bilinear_axis(int n, int r, int first, int count, int *i0, int *i1, double *frac) {
    for (int k = 0; k < count; k++) {
        double s = ((double)(first + k) + 0.5) * (double)n / (double)r - 0.5;
        if (s < 0.0) s = 0.0;
        if (s > (double)(n - 1)) s = (double)(n - 1);
        int a = (int)floor(s);
        i0[k] = a;
        i1[k] = a + 1 < n ? a + 1 : n - 1;
        frac[k] = s - (double)a;
    }
}

sal_status sal_prep_geometry(int img_w, int img_h, const sal_prep_opts *o, int *rh, int *rw,
                             int *top, int *left) {
    const int H = img_h, W = img_w, oh = o->out_h, ow = o->out_w;
    *rh = oh;
    *rw = ow;
    *top = *left = 0;
    if (o->resize_shorter <= 0) return SAL_OK;
    int rs = o->resize_shorter;
    const int shorter = H <= W ? H : W;
    if (o->crop_no_enlarge && rs > shorter) rs = shorter;   /* no enlarging just to crop */
    for (;;) {
        if (H <= W) {
            *rh = rs;
            *rw = (int)lround((double)W * (double)rs / (double)H);
        } else {
            *rw = rs;
            *rh = (int)lround((double)H * (double)rs / (double)W);
        }
        /* crop_no_enlarge: the least shorter side that still covers the crop */
        if (!o->crop_no_enlarge || (*rh >= oh && *rw >= ow) || rs >= 4 * SAL_IMAGE_MAX_SIDE) break;
        rs++;
    }
    if (*rh < oh || *rw < ow) return SAL_ERR_SHAPE;
    *top = (*rh - oh) / 2;
    *left = (*rw - ow) / 2;
    return SAL_OK;
}

sal_status sal_preprocess(const sal_image *img, const sal_prep_opts *o, float *out, sal_error *err) {
    return sal_preprocess_full(img, NULL, o, out, err);
}

sal_status sal_preprocess_full(const sal_image *img, const float *fpix, const sal_prep_opts *o, float *out,
                               sal_error *err) {
    if (!img || !o || !out)
        return sal_fail(err, SAL_ERR_INVALID_ARG, "preprocess: NULL image, options or output");
    if (!img->pix || img->w < 1 || img->h < 1 || img->w > SAL_IMAGE_MAX_SIDE ||
        img->h > SAL_IMAGE_MAX_SIDE || (img->c != 1 && img->c != 3))
        return sal_fail(err, SAL_ERR_INVALID_ARG, "preprocess: bad image (%dx%d, %d channels)",
                        img->w, img->h, img->c);
    if (o->out_h < 1 || o->out_w < 1 || o->out_h > SAL_IMAGE_MAX_SIDE || o->out_w > SAL_IMAGE_MAX_SIDE)
        return sal_fail(err, SAL_ERR_INVALID_ARG, "preprocess: bad output size %dx%d", o->out_h,
                        o->out_w);
    if (o->channels != 1 && o->channels != 3)
        return sal_fail(err, SAL_ERR_INVALID_ARG, "preprocess: channels must be 1 or 3, not %d",
                        o->channels);
    if (o->resize_shorter < 0 || o->resize_shorter > 4 * SAL_IMAGE_MAX_SIDE)
        return sal_fail(err, SAL_ERR_INVALID_ARG, "preprocess: bad resize_shorter %d",
                        o->resize_shorter);
    if (!isfinite(o->scale))
        return sal_fail(err, SAL_ERR_INVALID_ARG, "preprocess: scale is not finite");
    for (int c = 0; c < o->channels; c++)
        if (!isfinite(o->mean[c]) || !isfinite(o->std[c]) || o->std[c] == 0.0f)
            return sal_fail(err, SAL_ERR_INVALID_ARG,
                            "preprocess: mean/std of channel %d must be finite with std != 0", c);

    const int H = img->h, W = img->w, C_in = img->c, C = o->channels;
    const int oh = o->out_h, ow = o->out_w;
    int RH, RW, top, left;
    if (sal_prep_geometry(W, H, o, &RH, &RW, &top, &left))
        return sal_fail(err, SAL_ERR_SHAPE,
                        "preprocess: image %dx%d resized to %dx%d (shorter side %d) is smaller "
                        "than the %dx%d crop", H, W, RH, RW, o->resize_shorter, oh, ow);

    /* Bilinear tables for the crop window only: (ow) and (oh). */
    int *x0 = malloc(sizeof(int) * (size_t)ow), *x1 = malloc(sizeof(int) * (size_t)ow);
    int *y0 = malloc(sizeof(int) * (size_t)oh), *y1 = malloc(sizeof(int) * (size_t)oh);
    double *fx = malloc(sizeof(double) * (size_t)ow), *fy = malloc(sizeof(double) * (size_t)oh);
    sal_status st = SAL_OK;
    if (!x0 || !x1 || !y0 || !y1 || !fx || !fy) {
        st = sal_fail(err, SAL_ERR_NOMEM, "preprocess: out of memory");
        goto done;
    }
    bilinear_axis(W, RW, left, ow, x0, x1, fx);
    bilinear_axis(H, RH, top, oh, y0, y1, fy);

    const double scale = o->scale;
    double mean[3], std[3];
    for (int c = 0; c < 3; c++) mean[c] = o->mean[c], std[c] = o->std[c];
    const size_t plane = (size_t)oh * (size_t)ow;
    const size_t stride = (size_t)W * (size_t)C_in;
    for (int y = 0; y < oh; y++) {
        const uint8_t *r0 = img->pix + (size_t)y0[y] * stride;
        const uint8_t *r1 = img->pix + (size_t)y1[y] * stride;
        /* full-precision samples (16-bit PNG) where the image has them */
        const float *f0 = fpix ? fpix + (size_t)y0[y] * stride : NULL;
        const float *f1 = fpix ? fpix + (size_t)y1[y] * stride : NULL;
        const double wy = fy[y];
        for (int x = 0; x < ow; x++) {
            const double wx = fx[x];
            const size_t a = (size_t)x0[x] * (size_t)C_in, b = (size_t)x1[x] * (size_t)C_in;
            double v[3]; /* (C_in) resized values */
            for (int c = 0; c < C_in; c++) {
                double t, u;
                if (f0) {
                    t = (1.0 - wx) * f0[a + c] + wx * f0[b + c];
                    u = (1.0 - wx) * f1[a + c] + wx * f1[b + c];
                } else {
                    t = (1.0 - wx) * r0[a + c] + wx * r0[b + c];
                    u = (1.0 - wx) * r1[a + c] + wx * r1[b + c];
                }
                v[c] = (1.0 - wy) * t + wy * u;
            }
            double m[3]; /* (C) model-channel values */
            if (C == C_in) {
                for (int c = 0; c < C; c++) m[c] = v[c];
            } else if (C == 1) {
                m[0] = 0.299 * v[0] + 0.587 * v[1] + 0.114 * v[2];
            } else {
                m[0] = m[1] = m[2] = v[0];
            }
            const size_t at = (size_t)y * (size_t)ow + (size_t)x;
            for (int c = 0; c < C; c++)
                out[(size_t)c * plane + at] = (float)((m[c] * scale - mean[c]) / std[c]);
        }
    }
done:
    free(x0);
    free(x1);
    free(y0);
    free(y1);
    free(fx);
    free(fy);
    return st;
}
