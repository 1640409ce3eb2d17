/* labels.c — class-label files: one class name per line, line i is class i. */
#include <stdlib.h>
#include <string.h>

#include "io/io.h"
#include "model/graph.h"

#define LABELS_MAX_FILE_BYTES ((size_t)256 << 20)

void sal_labels_free(char **names, int count) {
    if (!names) return;
    for (int i = 0; i < count; i++) free(names[i]);
    free(names);
}

sal_status sal_labels_load(const char *path, char ***names, int *count, sal_error *err) {
    if (!names || !count)
        return sal_fail(err, SAL_ERR_INVALID_ARG, "%s: sal_labels_load: NULL output",
                        path ? path : "(null)");
    *names = NULL;
    *count = 0;
    uint8_t *buf;
    size_t len;
    sal_status st = sal_io_read_file(path, LABELS_MAX_FILE_BYTES, &buf, &len, err);
    if (st != SAL_OK) return st;

    const char *text = (const char *)buf;
    size_t start = 0;
    if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0) start = 3;  /* UTF-8 BOM */
    if (memchr(text, 0, len)) {
        free(buf);
        return sal_fail(err, SAL_ERR_PARSE, "%s: labels file contains a NUL byte (binary file?)", path);
    }
    if (len == start) {
        free(buf);
        return sal_fail(err, SAL_ERR_PARSE, "%s: labels file is empty", path);
    }
    /* Lines: one per '\n', plus a last one when the file does not end with '\n'. */
    size_t lines = 0;
    for (size_t i = start; i < len; i++) lines += text[i] == '\n';
    if (text[len - 1] != '\n') lines++;
    if (lines > (size_t)INT32_MAX / 2) {
        free(buf);
        return sal_fail(err, SAL_ERR_UNSUPPORTED, "%s: too many labels", path);
    }
    char **out = calloc(lines, sizeof *out);
    if (!out) {
        free(buf);
        return sal_fail(err, SAL_ERR_NOMEM, "%s: out of memory for %zu labels", path, lines);
    }
    size_t pos = start;
    for (size_t k = 0; k < lines; k++) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - text) : len;
        size_t n = end - pos;
        if (n > 0 && text[pos + n - 1] == '\r') n--;
        out[k] = malloc(n + 1);
        if (!out[k]) {
            sal_labels_free(out, (int)k);
            free(buf);
            return sal_fail(err, SAL_ERR_NOMEM, "%s: out of memory", path);
        }
        memcpy(out[k], text + pos, n);
        out[k][n] = 0;
        pos = end + 1;
    }
    free(buf);
    *names = out;
    *count = (int)lines;
    return SAL_OK;
}

static int ascii_lower(int c) { return (c >= 'A' && c <= 'Z') ? c - 'A' + 'a' : c; }

int sal_labels_find(char *const *names, int count, const char *label) {
    if (!names || !label) return -1;
    for (int i = 0; i < count; i++) {
        const unsigned char *a = (const unsigned char *)names[i], *b = (const unsigned char *)label;
        if (!a) continue;
        while (*a && ascii_lower(*a) == ascii_lower(*b)) a++, b++;
        if (*a == 0 && *b == 0) return i;
    }
    return -1;
}
