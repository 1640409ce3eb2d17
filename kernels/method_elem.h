/* method_elem.h — per-element math of the attribution methods, shared by the CPU loops in
 * host/methods and the CUDA kernels (SAL_HD: host+device inline). Random numbers are Random123's
 * Philox4x32-10 keyed by the user's seed and countered by (stream, image, sample, element), so
 * the same seed gives the same noise on every device and in every batch order. */
#ifndef SAL_METHOD_ELEM_H
#define SAL_METHOD_ELEM_H

#include "sal_hd.h"

#include <math.h>
#include <stdint.h>
#include <Random123/philox.h>

/* Streams of random numbers, one per use. */
enum { SAL_RNG_SMOOTHGRAD = 1, SAL_RNG_BASELINE = 2, SAL_RNG_RISE = 3, SAL_RNG_SHAP = 4 };

/* 4 uniform 32-bit words for counter (stream, image, sample, block). */
SAL_HD philox4x32_ctr_t sal_philox(uint64_t seed, uint32_t stream, uint32_t image, uint32_t sample,
                                   uint32_t block) {
    philox4x32_ctr_t c = {{stream, image, sample, block}};
    philox4x32_key_t k = {{(uint32_t)seed, (uint32_t)(seed >> 32)}};
    return philox4x32(c, k);
}

/* Uniform in (0,1) from a 32-bit word (never 0 or 1). */
SAL_HD float sal_u01(uint32_t v) { return ((float)(v >> 8) + 0.5f) * (1.0f / 16777216.0f); }

/* Standard normal number `elem` of (image, sample): Box-Muller on one Philox block gives 4
 * uniforms -> 2 pairs -> 4 normals (cos and sin of each pair). */
SAL_HD float sal_normal(uint64_t seed, uint32_t stream, uint32_t image, uint32_t sample,
                        uint64_t elem) {
    philox4x32_ctr_t r = sal_philox(seed, stream, image, sample, (uint32_t)(elem >> 2));
    int pair = (int)((elem >> 1) & 1);
    float u1 = sal_u01(r.v[2 * pair]), u2 = sal_u01(r.v[2 * pair + 1]);
    float rad = sqrtf(-2.0f * logf(u1));
    float ang = 6.2831853071795864f * u2;
    return (elem & 1) ? rad * sinf(ang) : rad * cosf(ang);
}

/* Uniform in (0,1), element `elem` of (image, sample). */
SAL_HD float sal_uniform(uint64_t seed, uint32_t stream, uint32_t image, uint32_t sample,
                         uint64_t elem) {
    philox4x32_ctr_t r = sal_philox(seed, stream, image, sample, (uint32_t)(elem >> 2));
    return sal_u01(r.v[elem & 3]);
}

/* A point on the straight path from baseline b to input x. */
SAL_HD float sal_ig_point(float x, float b, float alpha) { return b + alpha * (x - b); }

/* Bilinear sample with align_corners=True (torch's UpsamplingBilinear2d, used for Score-CAM
 * masks): output (y, x) of (oh, ow) reads input (ih, iw) at (y*(ih-1)/(oh-1), x*(iw-1)/(ow-1)). */
SAL_HD float sal_bilinear_ac(const float *in, int ih, int iw, int oh, int ow, int y, int x) {
    float sy = oh > 1 ? (float)y * (float)(ih - 1) / (float)(oh - 1) : 0.0f;
    float sx = ow > 1 ? (float)x * (float)(iw - 1) / (float)(ow - 1) : 0.0f;
    int y0 = (int)sy, x0 = (int)sx;
    int y1 = y0 + 1 < ih ? y0 + 1 : ih - 1, x1 = x0 + 1 < iw ? x0 + 1 : iw - 1;
    float fy = sy - (float)y0, fx = sx - (float)x0;
    float top = in[y0 * iw + x0] * (1.0f - fx) + in[y0 * iw + x1] * fx;
    float bot = in[y1 * iw + x0] * (1.0f - fx) + in[y1 * iw + x1] * fx;
    return top * (1.0f - fy) + bot * fy;
}

/* Is (y, x) inside the window starting at (y0, x0) of size (wh, ww)? */
SAL_HD int sal_in_window(int y, int x, int y0, int x0, int wh, int ww) {
    return y >= y0 && y < y0 + wh && x >= x0 && x < x0 + ww;
}

/* Grad-CAM++ weight of one gradient element (pytorch-grad-cam's formula):
 * alpha = g^2 / (2 g^2 + sum_A g^3 + 1e-6), zero where g == 0; weight = relu(g) * alpha. */
SAL_HD float sal_gradcampp_elem(float g, float sum_a) {
    float g2 = g * g, g3 = g2 * g;
    if (g == 0.0f) return 0.0f;
    float a = g2 / (2.0f * g2 + sum_a * g3 + 1e-6f);
    return (g > 0.0f ? g : 0.0f) * a;
}

#endif
