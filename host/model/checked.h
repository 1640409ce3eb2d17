/* checked.h — checked 64-bit arithmetic for every size, dimension and attribute read from a file
 * (ONNX, images, .npy): one helper used everywhere, so that no allocation and no loop bound is
 * computed from a number that wrapped. Included by graph.h, so every room (ops, engine, io)
 * reaches it.
 *
 * Bounds: no single dimension beyond SAL_DIM_MAX, no tensor beyond SAL_NUMEL_MAX elements, no
 * spatial attribute (pads, strides, dilations, kernel) beyond SAL_EXTENT_MAX. Within them,
 * products such as (out - 1) * stride + (kernel - 1) * dilation + 1 fit in int64 without checks;
 * products of dimensions still go through sal_ck_mul. */
#ifndef SAL_CHECKED_H
#define SAL_CHECKED_H

#include <stdint.h>

#define SAL_DIM_MAX (INT64_C(1) << 32)      /* one dimension */
#define SAL_NUMEL_MAX (INT64_C(1) << 40)    /* elements of one tensor */
#define SAL_EXTENT_MAX (INT64_C(1) << 24)   /* pads, strides, dilations, kernel sizes */

/* *out = a * b; returns 0, or -1 (and *out = INT64_MAX) when it overflows int64. */
static inline int sal_ck_mul(int64_t a, int64_t b, int64_t *out) {
    if (__builtin_mul_overflow(a, b, out)) { *out = INT64_MAX; return -1; }
    return 0;
}

/* *out = a + b; returns 0, or -1 (and *out = INT64_MAX) when it overflows int64. */
static inline int sal_ck_add(int64_t a, int64_t b, int64_t *out) {
    if (__builtin_add_overflow(a, b, out)) { *out = INT64_MAX; return -1; }
    return 0;
}

/* Product of dims[0..n): 0 and *out when every dim is in [0, SAL_DIM_MAX] and the product is at
 * most SAL_NUMEL_MAX; -1 otherwise (*out then undefined). */
static inline int sal_ck_numel(const int64_t *dims, int n, int64_t *out) {
    int64_t p = 1;
    for (int i = 0; i < n; i++) {
        if (dims[i] < 0 || dims[i] > SAL_DIM_MAX) return -1;
        if (dims[i] == 0) p = 0;
    }
    for (int i = 0; i < n && p; i++)
        if (sal_ck_mul(p, dims[i], &p) || p > SAL_NUMEL_MAX) return -1;
    *out = p;
    return 0;
}

#endif
