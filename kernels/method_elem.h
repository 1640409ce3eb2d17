/* method_elem.h — per-element math of the attribution methods, shared by the CPU loops in
 * host/methods and the CUDA kernels (SAL_HD: host+device inline). Random numbers are Random123's
 * Philox4x32-10 keyed by the user's seed and countered by (stream, image, sample, element), so
 * the same seed gives the same random words on every device and in every batch order. Normal
 * numbers pass those words through logf, sinf and cosf, whose CUDA versions may differ from
 * glibc's by an ulp or two: the same noise on every device to within that rounding. */
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


/* Grad-CAM++ weight of one gradient element (pytorch-grad-cam's formula):
 * alpha = g^2 / (2 g^2 + sum_A g^3 + 1e-6), zero where g == 0; weight = relu(g) * alpha. */
SAL_HD float sal_gradcampp_elem(float g, float sum_a) {
    float g2 = g * g, g3 = g2 * g;
    if (g == 0.0f) return 0.0f;
    float a = g2 / (2.0f * g2 + sum_a * g3 + 1e-6f);
    return (g > 0.0f ? g : 0.0f) * a;
}

/* ------------------------------------------------------------------------------------------------ */
/* RISE masks (Petsiuk et al. 2018; the reference implementation's generate_masks)                  */
/*
 * Mask `mask` of a run: an s x s grid of cells, each kept (1) with probability p, upsampled
 * bilinearly to ((s+1)*cell_h, (s+1)*cell_w) with cell = ceil(size / s), then cropped at a random
 * shift (dy, dx) in [0,cell_h) x [0,cell_w) to (H, W). The masks are the same for every image of a
 * run (as in RISE), so the Philox counter is (SAL_RNG_RISE, image 0, sample = mask index):
 * elements 0 and 1 are the row and column shifts, element 4 + gy*s + gx is cell (gy, gx).
 * The upsampling is skimage.transform.resize(order=1, mode='reflect', anti_aliasing=False), the
 * reference's call: half-pixel centres (output o reads source (o + 0.5) * s / up - 0.5) and, where
 * that falls outside [0, s-1], neighbours mirrored about the edge cell (ndimage's 'mirror':
 * -1 -> 1, s -> s-2). A device kernel computes any mask value from (seed, mask, y, x) alone with
 * sal_rise_mask_value; the CPU loop draws each mask's grid once and uses sal_rise_mask_from_grid,
 * which does the same arithmetic (bitwise the same values on one device). */

/* Cell (gy, gx) of mask `mask`: 1 with probability p, else 0. */
SAL_HD float sal_rise_cell(uint64_t seed, uint32_t mask, int gy, int gx, int s, float p) {
    return sal_uniform(seed, SAL_RNG_RISE, 0, mask, 4u + (uint64_t)gy * (uint64_t)s + (uint64_t)gx) < p
               ? 1.0f : 0.0f;
}

/* Cell size of the RISE grid along an axis of `size` pixels: ceil(size / s). */
SAL_HD int sal_rise_cell_size(int size, int s) { return (size + s - 1) / s; }

/* Shift of mask `mask` along axis 0 (rows) or 1 (columns), uniform in [0, cell). */
SAL_HD int sal_rise_shift(uint64_t seed, uint32_t mask, int axis, int cell) {
    int d = (int)(sal_uniform(seed, SAL_RNG_RISE, 0, mask, (uint64_t)axis) * (float)cell);
    return d < cell ? d : cell - 1;   /* u * cell may round up to cell */
}

/* One axis of the half-pixel, mirror-mode linear resize of n cells to `up` pixels: output pixel o
 * reads cells *i0 and *i1 with weights (1 - *f) and *f. */
SAL_HD void sal_rise_axis(int o, int n, int up, int *i0, int *i1, float *f) {
    float src = ((float)o + 0.5f) * (float)n / (float)up - 0.5f;
    float fl = floorf(src);
    int a = (int)fl, b = a + 1;
    *f = src - fl;
    if (n == 1) { *i0 = *i1 = 0; return; }
    if (a < 0) a = -a;
    if (b < 0) b = -b;
    if (a > n - 1) a = 2 * (n - 1) - a;
    if (b > n - 1) b = 2 * (n - 1) - b;
    *i0 = a;
    *i1 = b;
}

/* Bilinear blend of four cell values (the shared arithmetic of the two mask functions). */
SAL_HD float sal_rise_blend(float v00, float v01, float v10, float v11, float fy, float fx) {
    float top = v00 * (1.0f - fx) + v01 * fx;
    float bot = v10 * (1.0f - fx) + v11 * fx;
    return top * (1.0f - fy) + bot * fy;
}

/* Mask value at (y, x) of an (H, W) mask from its grid (s*s cells, row-major) and shift. */
SAL_HD float sal_rise_mask_from_grid(const float *grid, int s, int H, int W, int dy, int dx, int y,
                                     int x) {
    int ch = sal_rise_cell_size(H, s), cw = sal_rise_cell_size(W, s);
    int y0, y1, x0, x1;
    float fy, fx;
    sal_rise_axis(y + dy, s, (s + 1) * ch, &y0, &y1, &fy);
    sal_rise_axis(x + dx, s, (s + 1) * cw, &x0, &x1, &fx);
    return sal_rise_blend(grid[y0 * s + x0], grid[y0 * s + x1], grid[y1 * s + x0], grid[y1 * s + x1],
                          fy, fx);
}

/* Mask value at (y, x) of mask `mask` of an (H, W) run, from the seed alone (no stored masks). */
SAL_HD float sal_rise_mask_value(uint64_t seed, uint32_t mask, int y, int x, int H, int W, int s,
                                 float p) {
    int ch = sal_rise_cell_size(H, s), cw = sal_rise_cell_size(W, s);
    int dy = sal_rise_shift(seed, mask, 0, ch), dx = sal_rise_shift(seed, mask, 1, cw);
    int y0, y1, x0, x1;
    float fy, fx;
    sal_rise_axis(y + dy, s, (s + 1) * ch, &y0, &y1, &fy);
    sal_rise_axis(x + dx, s, (s + 1) * cw, &x0, &x1, &fx);
    return sal_rise_blend(sal_rise_cell(seed, mask, y0, x0, s, p), sal_rise_cell(seed, mask, y0, x1, s, p),
                          sal_rise_cell(seed, mask, y1, x0, s, p), sal_rise_cell(seed, mask, y1, x1, s, p),
                          fy, fx);
}

/* ------------------------------------------------------------------------------------------------ */
/* GradientSHAP (Captum's GradientShap: NoiseTunnel(smoothgrad) over InputBaselineXGradient)        */
/*
 * Sample j of image i: the noisy input x + stdev * N(0,1) (Philox SAL_RNG_SHAP, image i, sample
 * 2j, element e), a baseline drawn uniformly and alpha ~ U(0,1) (sample 2j+1, elements 0 and 1);
 * the gradient is taken at alpha * x_noisy + (1 - alpha) * baseline (Captum's _scale_input) and
 * multiplied by (x_noisy - baseline). */

SAL_HD float sal_gradshap_noisy(uint64_t seed, uint32_t image, uint32_t sample, uint64_t elem, float x,
                                float stdev) {
    return stdev == 0.0f ? x : x + stdev * sal_normal(seed, SAL_RNG_SHAP, image, 2u * sample, elem);
}

SAL_HD int sal_gradshap_baseline(uint64_t seed, uint32_t image, uint32_t sample, int n_baselines) {
    int b = (int)(sal_uniform(seed, SAL_RNG_SHAP, image, 2u * sample + 1u, 0) * (float)n_baselines);
    return b < n_baselines ? b : n_baselines - 1;
}

SAL_HD float sal_gradshap_alpha(uint64_t seed, uint32_t image, uint32_t sample) {
    return sal_uniform(seed, SAL_RNG_SHAP, image, 2u * sample + 1u, 1);
}

/* The point where the gradient is taken (Captum: rand * input + (1 - rand) * baseline). */
SAL_HD float sal_gradshap_point(float x_noisy, float b, float alpha) {
    return alpha * x_noisy + (1.0f - alpha) * b;
}

/* ------------------------------------------------------------------------------------------------ */
/* KernelSHAP coalitions (Lundberg & Lee 2017; Captum's kernel_shap_perturb_generator)               */
/*
 * A coalition over M features: its size k in 1..M-1 drawn with probability proportional to the
 * Shapley kernel's mass at that size, (M-1) / (k (M-k)), then k features uniformly without
 * replacement (a partial Fisher-Yates shuffle). Philox SAL_RNG_SHAP, image i, sample = coalition
 * index: element 0 picks the size, element 1+t the t-th swap. Every sampled coalition has weight 1
 * in the regression: the kernel is the sampling distribution. */

/* Size k in 1..M-1 (M >= 2) for a uniform u in (0,1), by the inverse CDF. */
SAL_HD int sal_kshap_size(float u, int M) {
    double total = 0, acc = 0;
    for (int k = 1; k < M; k++) total += 1.0 / ((double)k * (double)(M - k));
    double target = (double)u * total;
    for (int k = 1; k < M - 1; k++) {
        acc += 1.0 / ((double)k * (double)(M - k));
        if (target < acc) return k;
    }
    return M - 1;
}

/* Coalition `sample` of image `image` over M >= 2 features into z (M bytes, 1 = present);
 * perm is scratch of M ints. Returns its size. */
SAL_HD int sal_kshap_coalition(uint64_t seed, uint32_t image, uint32_t sample, int M, int *perm,
                               unsigned char *z) {
    int k = sal_kshap_size(sal_uniform(seed, SAL_RNG_SHAP, image, sample, 0), M);
    for (int j = 0; j < M; j++) { perm[j] = j; z[j] = 0; }
    for (int t = 0; t < k; t++) {
        int r = t + (int)(sal_uniform(seed, SAL_RNG_SHAP, image, sample, 1u + (uint64_t)t) * (float)(M - t));
        if (r > M - 1) r = M - 1;
        int tmp = perm[t];
        perm[t] = perm[r];
        perm[r] = tmp;
        z[perm[t]] = 1;
    }
    return k;
}

#endif
