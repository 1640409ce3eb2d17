/* npy.c — NumPy .npy reading (format 1.0/2.0/3.0, '<f4' and '<f8', C order) and writing (1.0,
 * '<f4', byte-identical to numpy.save), plus the file helpers shared by host/io: whole-file
 * reading and atomic writing through a temporary file and rename(). */
#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/io.h"
#include "model/graph.h"

/* ------------------------------------------------------------------------------------------------ */
/* File helpers shared by the room                                                                  */

static const char *errno_str(int e, char *buf, size_t len) {
    if (strerror_r(e, buf, len) != 0) snprintf(buf, len, "error %d", e);
    return buf;
}

/* Open path for reading and get its size; only regular files are accepted. */
static sal_status open_regular(const char *path, FILE **out, size_t *size, sal_error *err) {
    char eb[128];
    *out = NULL;
    *size = 0;
    if (!path) return sal_fail(err, SAL_ERR_INVALID_ARG, "(null path): no file name given");
    FILE *f = fopen(path, "rb");
    if (!f) return sal_fail(err, SAL_ERR_IO, "%s: cannot open: %s", path, errno_str(errno, eb, sizeof eb));
    struct stat st;
    if (fstat(fileno(f), &st) != 0) {
        int e = errno;
        fclose(f);
        return sal_fail(err, SAL_ERR_IO, "%s: cannot stat: %s", path, errno_str(e, eb, sizeof eb));
    }
    if (!S_ISREG(st.st_mode)) {
        fclose(f);
        return sal_fail(err, SAL_ERR_IO, "%s: not a regular file", path);
    }
    *out = f;
    *size = (size_t)st.st_size;
    return SAL_OK;
}

sal_status sal_io_read_file(const char *path, size_t max_bytes, uint8_t **buf, size_t *len,
                            sal_error *err) {
    char eb[128];
    FILE *f;
    size_t size;
    *buf = NULL;
    *len = 0;
    sal_status st = open_regular(path, &f, &size, err);
    if (st != SAL_OK) return st;
    if (size > max_bytes) {
        fclose(f);
        return sal_fail(err, SAL_ERR_UNSUPPORTED, "%s: file too large (%zu bytes, limit %zu)", path,
                        size, max_bytes);
    }
    uint8_t *b = malloc(size + 1);
    if (!b) {
        fclose(f);
        return sal_fail(err, SAL_ERR_NOMEM, "%s: out of memory reading %zu bytes", path, size);
    }
    size_t got = fread(b, 1, size, f);
    int read_error = ferror(f);
    int e = errno;
    fclose(f);
    if (got != size) {
        free(b);
        if (read_error)
            return sal_fail(err, SAL_ERR_IO, "%s: read failed: %s", path, errno_str(e, eb, sizeof eb));
        return sal_fail(err, SAL_ERR_IO, "%s: file shrank while reading (%zu of %zu bytes)", path,
                        got, size);
    }
    b[size] = 0;
    *buf = b;
    *len = size;
    return SAL_OK;
}

sal_status sal_io_atomic_open(const char *path, sal_io_atomic *a, sal_error *err) {
    char eb[128];
    a->f = NULL;
    a->tmp_path = NULL;
    if (!path || !*path) return sal_fail(err, SAL_ERR_INVALID_ARG, "(null path): no file name given");
    size_t cap = strlen(path) + 48;
    char *tmp = malloc(cap);
    if (!tmp) return sal_fail(err, SAL_ERR_NOMEM, "%s: out of memory", path);
    for (int n = 0; n < 1000; n++) {
        snprintf(tmp, cap, "%s.salient-tmp%ld.%d", path, (long)getpid(), n);
        int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd < 0) {
            if (errno == EEXIST) continue;
            int e = errno;
            free(tmp);
            return sal_fail(err, SAL_ERR_IO, "%s: cannot create a temporary file next to it: %s",
                            path, errno_str(e, eb, sizeof eb));
        }
        FILE *f = fdopen(fd, "wb");
        if (!f) {
            int e = errno;
            close(fd);
            unlink(tmp);
            free(tmp);
            return sal_fail(err, SAL_ERR_IO, "%s: cannot open a temporary file: %s", path,
                            errno_str(e, eb, sizeof eb));
        }
        a->f = f;
        a->tmp_path = tmp;
        return SAL_OK;
    }
    free(tmp);
    return sal_fail(err, SAL_ERR_IO, "%s: cannot find a free temporary file name next to it", path);
}

sal_status sal_io_atomic_commit(const char *path, sal_io_atomic *a, int ok, sal_error *err) {
    char eb[128];
    sal_status st = SAL_OK;
    if (!a->f) return SAL_OK;
    int write_failed = ferror(a->f) || fflush(a->f) != 0;
    int e = errno;
    if (fclose(a->f) != 0 && !write_failed) {
        write_failed = 1;
        e = errno;
    }
    a->f = NULL;
    if (ok && write_failed) {
        st = sal_fail(err, SAL_ERR_IO, "%s: write failed: %s", path, errno_str(e, eb, sizeof eb));
        ok = 0;
    }
    if (ok && rename(a->tmp_path, path) != 0) {
        e = errno;
        st = sal_fail(err, SAL_ERR_IO, "%s: cannot rename the temporary file into place: %s", path,
                      errno_str(e, eb, sizeof eb));
        ok = 0;
    }
    if (!ok) unlink(a->tmp_path);
    free(a->tmp_path);
    a->tmp_path = NULL;
    return st;
}

/* ------------------------------------------------------------------------------------------------ */
/* Header parsing                                                                                   */

#define NPY_MAX_HEADER (1u << 20)   /* NumPy itself refuses headers over 10000 bytes by default */
#define NPY_MAX_DIM ((int64_t)1 << 53)

typedef struct npy_header {
    char descr[16];
    int have_descr, have_fortran, have_shape;
    int fortran_order;
    int ndim;
    int64_t dims[SAL_MAX_DIMS];
} npy_header;

typedef struct npy_cursor {
    const char *p, *end;
    const char *path;
    sal_error *err;
} npy_cursor;

static void skip_ws(npy_cursor *c) {
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
        c->p++;
}

static sal_status bad_header(npy_cursor *c, const char *what) {
    return sal_fail(c->err, SAL_ERR_PARSE, "%s: malformed .npy header: %s", c->path, what);
}

/* A Python string literal without escapes, '...' or "...". */
static sal_status parse_str(npy_cursor *c, char *out, size_t cap) {
    if (c->p >= c->end || (*c->p != '\'' && *c->p != '"')) return bad_header(c, "expected a string");
    char q = *c->p++;
    size_t n = 0;
    while (c->p < c->end && *c->p != q) {
        if (*c->p == '\\') return bad_header(c, "escapes in strings are not supported");
        if (n + 1 >= cap) return bad_header(c, "string too long");
        out[n++] = *c->p++;
    }
    if (c->p >= c->end) return bad_header(c, "unterminated string");
    c->p++;
    out[n] = 0;
    return SAL_OK;
}

static int take_word(npy_cursor *c, const char *w) {
    size_t n = strlen(w);
    if ((size_t)(c->end - c->p) >= n && memcmp(c->p, w, n) == 0) {
        c->p += n;
        return 1;
    }
    return 0;
}

/* A Python tuple of non-negative ints: (), (5,), (2, 3), (2L, 3L) from Python 2. */
static sal_status parse_shape(npy_cursor *c, npy_header *h) {
    if (c->p >= c->end || *c->p != '(') return bad_header(c, "'shape' is not a tuple");
    c->p++;
    h->ndim = 0;
    skip_ws(c);
    if (c->p < c->end && *c->p == ')') {
        c->p++;
        return SAL_OK;
    }
    int trailing_comma = 0;
    for (;;) {
        skip_ws(c);
        if (c->p < c->end && *c->p == '-')
            return sal_fail(c->err, SAL_ERR_PARSE, "%s: .npy shape has a negative dimension", c->path);
        if (c->p >= c->end || *c->p < '0' || *c->p > '9') return bad_header(c, "bad shape entry");
        int64_t v = 0;
        while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
            v = v * 10 + (*c->p++ - '0');
            if (v > NPY_MAX_DIM)
                return sal_fail(c->err, SAL_ERR_PARSE, "%s: .npy shape has an absurd dimension",
                                c->path);
        }
        if (c->p < c->end && *c->p == 'L') c->p++;
        if (h->ndim >= SAL_MAX_DIMS)
            return sal_fail(c->err, SAL_ERR_UNSUPPORTED, "%s: .npy array has more than %d dimensions",
                            c->path, SAL_MAX_DIMS);
        h->dims[h->ndim++] = v;
        skip_ws(c);
        trailing_comma = 0;
        if (c->p < c->end && *c->p == ',') {
            c->p++;
            trailing_comma = 1;
            skip_ws(c);
        }
        if (c->p < c->end && *c->p == ')') {
            c->p++;
            break;
        }
        if (!trailing_comma) return bad_header(c, "expected ',' or ')' in shape");
    }
    if (h->ndim == 1 && !trailing_comma) return bad_header(c, "'shape' is not a tuple");
    return SAL_OK;
}

static sal_status parse_header(const char *path, const char *text, size_t len, npy_header *h,
                               sal_error *err) {
    npy_cursor c = {text, text + len, path, err};
    sal_status st;
    memset(h, 0, sizeof *h);
    skip_ws(&c);
    if (c.p >= c.end || *c.p != '{') return bad_header(&c, "not a dict");
    c.p++;
    for (;;) {
        skip_ws(&c);
        if (c.p < c.end && *c.p == '}') break;
        char key[32];
        if ((st = parse_str(&c, key, sizeof key)) != SAL_OK) return st;
        skip_ws(&c);
        if (c.p >= c.end || *c.p != ':') return bad_header(&c, "expected ':'");
        c.p++;
        skip_ws(&c);
        if (strcmp(key, "descr") == 0) {
            if (h->have_descr) return bad_header(&c, "duplicate key 'descr'");
            h->have_descr = 1;
            if ((st = parse_str(&c, h->descr, sizeof h->descr)) != SAL_OK) {
                if (c.p < c.end && (*c.p == '[' || *c.p == '('))
                    return sal_fail(err, SAL_ERR_UNSUPPORTED,
                                    "%s: structured .npy dtypes are not supported", path);
                return st;
            }
        } else if (strcmp(key, "fortran_order") == 0) {
            if (h->have_fortran) return bad_header(&c, "duplicate key 'fortran_order'");
            h->have_fortran = 1;
            if (take_word(&c, "True")) h->fortran_order = 1;
            else if (take_word(&c, "False")) h->fortran_order = 0;
            else return bad_header(&c, "'fortran_order' is not True or False");
        } else if (strcmp(key, "shape") == 0) {
            if (h->have_shape) return bad_header(&c, "duplicate key 'shape'");
            h->have_shape = 1;
            if ((st = parse_shape(&c, h)) != SAL_OK) return st;
        } else {
            return sal_fail(err, SAL_ERR_PARSE, "%s: malformed .npy header: unexpected key '%s'",
                            path, key);
        }
        skip_ws(&c);
        if (c.p < c.end && *c.p == ',') {
            c.p++;
            continue;
        }
        if (c.p < c.end && *c.p == '}') break;
        return bad_header(&c, "expected ',' or '}'");
    }
    c.p++; /* '}' */
    skip_ws(&c);
    while (c.p < c.end && *c.p == 0) c.p++; /* some writers pad with NULs */
    if (c.p != c.end) return bad_header(&c, "trailing characters after the dict");
    if (!h->have_descr || !h->have_fortran || !h->have_shape)
        return bad_header(&c, "keys 'descr', 'fortran_order' and 'shape' are all required");
    return SAL_OK;
}

/* ------------------------------------------------------------------------------------------------ */
/* Reading                                                                                          */

static uint32_t le32(const uint8_t *b) {
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static uint64_t le64(const uint8_t *b) { return (uint64_t)le32(b) | (uint64_t)le32(b + 4) << 32; }

static float f64_to_f32(double d) {
    if (d > FLT_MAX) return INFINITY;
    if (d < -FLT_MAX) return -INFINITY;
    return (float)d;
}

/* Read n little-endian float32 or float64 values into out, in chunks. */
static sal_status read_values(const char *path, FILE *f, int itemsize, size_t n, float *out,
                              sal_error *err) {
    uint8_t chunk[8192];
    size_t per = sizeof chunk / (size_t)itemsize;
    size_t done = 0;
    while (done < n) {
        size_t want = n - done < per ? n - done : per;
        if (fread(chunk, (size_t)itemsize, want, f) != want)
            return sal_fail(err, SAL_ERR_IO, "%s: read failed in the .npy data", path);
        for (size_t i = 0; i < want; i++) {
            if (itemsize == 4) {
                uint32_t u = le32(chunk + 4 * i);
                memcpy(&out[done + i], &u, 4);
            } else {
                uint64_t u = le64(chunk + 8 * i);
                double d;
                memcpy(&d, &u, 8);
                out[done + i] = f64_to_f32(d);
            }
        }
        done += want;
    }
    return SAL_OK;
}

sal_status sal_npy_read(const char *path, float **data, int *ndim, int64_t dims[SAL_MAX_DIMS],
                        sal_error *err) {
    if (!data || !ndim || !dims)
        return sal_fail(err, SAL_ERR_INVALID_ARG, "%s: sal_npy_read: NULL output", path ? path : "(null)");
    *data = NULL;
    *ndim = 0;
    FILE *f;
    size_t size;
    sal_status st = open_regular(path, &f, &size, err);
    if (st != SAL_OK) return st;

    uint8_t pre[12];
    char *text = NULL;
    float *out = NULL;
    if (size == 0) {
        st = sal_fail(err, SAL_ERR_PARSE, "%s: empty file, not a .npy file", path);
        goto done;
    }
    if (size < 10 || fread(pre, 1, 10, f) != 10 || memcmp(pre, "\x93NUMPY", 6) != 0) {
        st = sal_fail(err, SAL_ERR_PARSE, "%s: not a .npy file (bad magic)", path);
        goto done;
    }
    int major = pre[6], minor = pre[7];
    size_t prefix, hlen;
    if (major == 1 && minor == 0) {
        prefix = 10;
        hlen = (size_t)pre[8] | (size_t)pre[9] << 8;
    } else if ((major == 2 || major == 3) && minor == 0) {
        prefix = 12;
        if (size < 12 || fread(pre + 10, 1, 2, f) != 2) {
            st = sal_fail(err, SAL_ERR_PARSE, "%s: .npy file truncated in its header", path);
            goto done;
        }
        hlen = le32(pre + 8);
    } else {
        st = sal_fail(err, SAL_ERR_UNSUPPORTED, "%s: unsupported .npy format version %d.%d", path,
                      major, minor);
        goto done;
    }
    if (hlen > NPY_MAX_HEADER) {
        st = sal_fail(err, SAL_ERR_PARSE, "%s: .npy header length %zu is absurd", path, hlen);
        goto done;
    }
    if (hlen > size - prefix) {
        st = sal_fail(err, SAL_ERR_PARSE,
                      "%s: .npy header length %zu runs past the end of the file (%zu bytes)", path,
                      hlen, size);
        goto done;
    }
    text = malloc(hlen + 1);
    if (!text) {
        st = sal_fail(err, SAL_ERR_NOMEM, "%s: out of memory", path);
        goto done;
    }
    if (fread(text, 1, hlen, f) != hlen) {
        st = sal_fail(err, SAL_ERR_IO, "%s: read failed in the .npy header", path);
        goto done;
    }
    text[hlen] = 0;

    npy_header h;
    if ((st = parse_header(path, text, hlen, &h, err)) != SAL_OK) goto done;
    int itemsize;
    if (strcmp(h.descr, "<f4") == 0) itemsize = 4;
    else if (strcmp(h.descr, "<f8") == 0) itemsize = 8;
    else {
        st = sal_fail(err, SAL_ERR_UNSUPPORTED,
                      "%s: unsupported .npy dtype '%s' (only '<f4' and '<f8' are read)", path, h.descr);
        goto done;
    }
    if (h.fortran_order) {
        st = sal_fail(err, SAL_ERR_UNSUPPORTED,
                      "%s: .npy array is in Fortran order; save it in C order "
                      "(numpy.ascontiguousarray)", path);
        goto done;
    }
    /* Element count with overflow checks: everything must fit the file anyway. */
    uint64_t count = 1;
    size_t avail = size - prefix - hlen;
    for (int i = 0; i < h.ndim; i++) {
        uint64_t d = (uint64_t)h.dims[i];
        if (d != 0 && count > (uint64_t)SIZE_MAX / 8 / d) {
            st = sal_fail(err, SAL_ERR_PARSE, "%s: .npy shape is too large", path);
            goto done;
        }
        count *= d;
    }
    uint64_t need = count * (uint64_t)itemsize;
    if (need != avail) {
        st = sal_fail(err, SAL_ERR_PARSE,
                      "%s: .npy data is %zu bytes but its shape and dtype need %llu (%s)", path,
                      avail, (unsigned long long)need, need > avail ? "truncated" : "trailing bytes");
        goto done;
    }
    out = malloc(count ? (size_t)count * sizeof(float) : 1);
    if (!out) {
        st = sal_fail(err, SAL_ERR_NOMEM, "%s: out of memory for %llu floats", path,
                      (unsigned long long)count);
        goto done;
    }
    if ((st = read_values(path, f, itemsize, (size_t)count, out, err)) != SAL_OK) goto done;

    *data = out;
    out = NULL;
    *ndim = h.ndim;
    for (int i = 0; i < h.ndim; i++) dims[i] = h.dims[i];
done:
    free(out);
    free(text);
    fclose(f);
    return st;
}

/* ------------------------------------------------------------------------------------------------ */
/* Writing                                                                                          */

#define NPY_GROWTH_AXIS_MAX_DIGITS 21 /* numpy.lib.format: room to rewrite axis 0 in place */

sal_status sal_npy_write(const char *path, const float *data, int ndim, const int64_t *dims,
                         sal_error *err) {
    const char *name = path ? path : "(null path)";
    if (ndim < 0 || ndim > SAL_MAX_DIMS)
        return sal_fail(err, SAL_ERR_INVALID_ARG, "%s: cannot write a .npy array of %d dimensions",
                        name, ndim);
    if (ndim > 0 && !dims)
        return sal_fail(err, SAL_ERR_INVALID_ARG, "%s: NULL shape for the .npy array", name);
    uint64_t count = 1;
    for (int i = 0; i < ndim; i++) {
        if (dims[i] < 0 || dims[i] > NPY_MAX_DIM)
            return sal_fail(err, SAL_ERR_INVALID_ARG, "%s: bad .npy dimension %lld", name,
                            (long long)dims[i]);
        if (dims[i] != 0 && count > (uint64_t)SIZE_MAX / 8 / (uint64_t)dims[i])
            return sal_fail(err, SAL_ERR_INVALID_ARG, "%s: .npy shape is too large", name);
        count *= (uint64_t)dims[i];
    }
    if (count > 0 && !data)
        return sal_fail(err, SAL_ERR_INVALID_ARG, "%s: NULL data for the .npy array", name);

    /* Header: dict, growth room, padding, '\n'; its length is well under the 1.0 limit. */
    char hdr[512];
    int n = snprintf(hdr, sizeof hdr, "{'descr': '<f4', 'fortran_order': False, 'shape': (");
    for (int i = 0; i < ndim; i++)
        n += snprintf(hdr + n, sizeof hdr - (size_t)n, "%s%lld", i ? ", " : "", (long long)dims[i]);
    n += snprintf(hdr + n, sizeof hdr - (size_t)n, "%s), }", ndim == 1 ? "," : "");
    if (ndim > 0) {
        char digits[32];
        int nd = snprintf(digits, sizeof digits, "%lld", (long long)dims[0]);
        for (int i = nd; i < NPY_GROWTH_AXIS_MAX_DIGITS; i++) hdr[n++] = ' ';
    }
    int pad = 64 - (10 + n + 1) % 64;
    for (int i = 0; i < pad; i++) hdr[n++] = ' ';
    hdr[n++] = '\n';
    uint8_t pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (uint8_t)(n & 0xff), (uint8_t)(n >> 8)};

    sal_io_atomic a;
    sal_status st = sal_io_atomic_open(path, &a, err);
    if (st != SAL_OK) return st;
    int ok = fwrite(pre, 1, sizeof pre, a.f) == sizeof pre && fwrite(hdr, 1, (size_t)n, a.f) == (size_t)n;
    /* Data: little-endian float32, converted in chunks so that any host byte order works. */
    uint8_t chunk[8192];
    size_t done = 0;
    while (ok && done < count) {
        size_t want = count - done < sizeof chunk / 4 ? (size_t)(count - done) : sizeof chunk / 4;
        for (size_t i = 0; i < want; i++) {
            uint32_t u;
            memcpy(&u, &data[done + i], 4);
            chunk[4 * i] = (uint8_t)u;
            chunk[4 * i + 1] = (uint8_t)(u >> 8);
            chunk[4 * i + 2] = (uint8_t)(u >> 16);
            chunk[4 * i + 3] = (uint8_t)(u >> 24);
        }
        ok = fwrite(chunk, 4, want, a.f) == want;
        done += want;
    }
    if (!ok) {
        char eb[128];
        int e = errno;
        sal_io_atomic_commit(path, &a, 0, NULL);
        return sal_fail(err, SAL_ERR_IO, "%s: write failed: %s", path, errno_str(e, eb, sizeof eb));
    }
    return sal_io_atomic_commit(path, &a, 1, err);
}
