/* method_prims.h — the attribution methods' batch builders and accumulators, written once as
 * element functions (SAL_HD) and run by the session's backend: a host loop on the CPU backend
 * (host/backend/cpu/cpu_backend.c), one CUDA thread per element on the CUDA backend
 * (kernels/cuda_methods.cu). The methods (host/methods/) keep their batches, gradients
 * and accumulators in the backend's memory and call these through sal_backend_ops.prim, so on a
 * GPU only scores and finished maps cross the bus; on the CPU the same functions run on host
 * memory, which is how the method tests (Captum and pytorch-grad-cam fixtures, IG completeness,
 * finite differences) check the device code's arithmetic.
 *
 * Rules, as for the model-op twins (kernels/twin.h): element function `f` is called for
 * i = 0 .. count-1, the calls are independent, and each writes only what belongs to element i,
 * gathering (never scattering) every contribution in a fixed order, so the results are
 * deterministic and the same on every device. Accumulators are double.
 *
 * The header compiles as C11 and as CUDA C++. */
#ifndef SAL_METHOD_PRIMS_H
#define SAL_METHOD_PRIMS_H

#include "method_elem.h"
#include "post_elem.h"

/* Everything one launch reads (copied by value into the kernel's parameters). Pointers are the
 * backend's memory. Which fields a function uses is listed at the function. */
typedef struct sal_mp_args {
    const float *x;        /* the image (C,H,W) */
    const float *b;        /* its baseline or occlusion fill (C,H,W) */
    const float *in;       /* a batch: inputs or gradients (nb,C,H,W) */
    const float *in2;      /* a second batch (the inputs, when in holds gradients) */
    const float *wf;       /* per-item float values (IG alphas) */
    const double *wd;      /* per-item double values (quadrature weights, score drops) */
    const int *lab;        /* (H,W) feature of each pixel (KernelSHAP) */
    float *out;
    double *acc, *acc2;
    int64_t per, hw;       /* C*H*W and H*W */
    int c, h, w;           /* image channels and size */
    int k0, nb;            /* first item of this batch in the method's sequence, items in it */
    int kb;                /* the item that a per-batch buffer (masks, coalitions) starts at */
    int mode;              /* function-specific switch */
    float f0;              /* function-specific scalars */
    double d0;
    uint64_t seed;         /* the user's seed (Philox key) */
    uint32_t image;        /* image index (Philox counter) */
    /* occlusion: window size, strides, windows per row and column */
    int oh, ow, osh, osw, onx, ony;
    /* CAM: layer channels and plane */
    int lc;
    int64_t lhw;
    /* post-processing: the original image (oh, ow, oc) in u8in, pixels out in u8out, the colormap
     * table (256,3), the region of the original the map covers, the overlay's colour weight */
    const uint8_t *u8in, *table;
    uint8_t *u8out;
    int oh_, ow_, oc;
    float rect[4];
    float alpha;
    /* incremental inference (patch_rows): per-item overlay origins or rectangles, per-item tile
     * origins and their stride and offset, a tile's rows and columns, a patch's */
    const int *geo, *geo2;
    int gsy, gsx, gpy, gpx;
    int th, tw, ph, pw;
} sal_mp_args;

/* The function list: X(name) for each, in enum order (SAL_MP_<name>). */
#define SAL_MP_FUNCS(X) X(copy) X(ig_path) X(pair) X(wsum) X(ig_final) X(noise) X(moments_final) \
    X(mul) X(occ_batch) X(occ_acc) X(occ_final) X(cam_weights) X(cam_sum) X(rise_grid) X(rise_mask) \
    X(cam_up_ac) X(cam_nearest_mul) X(masked) X(mask_acc) X(scaled) X(gshap_point) X(gshap_acc) X(kshap_batch) \
    X(reduce) X(sort_keys) X(percentile) X(clip) X(range_part) X(range_join) X(normalize) X(heatmap) \
    X(overlay) X(patch_rows) X(to_planes) X(attn_eye) X(attn_fuse) X(attn_step) X(attn_discard)

/* count n. out = in. */
SAL_HD void sal_mp_copy(int64_t i, const sal_mp_args *a) { a->out[i] = a->in[i]; }

/* --- Integrated Gradients --------------------------------------------------------------------- */

/* count nb*per. out = the path batch: item k is baseline + alpha_{k0+k} (x - baseline).
 * x, b, wf (alphas), out. */
SAL_HD void sal_mp_ig_path(int64_t i, const sal_mp_args *a) {
    int64_t k = i / a->per, j = i - k * a->per;
    a->out[i] = sal_ig_point(a->x[j], a->b[j], a->wf[a->k0 + k]);
}

/* count nb*per. out = item k: x when k0 + k == 0, else b (a batch of the image and its baseline).
 * x, b, out. */
SAL_HD void sal_mp_pair(int64_t i, const sal_mp_args *a) {
    int64_t k = i / a->per, j = i - k * a->per;
    a->out[i] = a->k0 + k == 0 ? a->x[j] : a->b[j];
}

/* count per. acc[i] += sum_k wd[k0+k] * in[k][i] (k ascending); mode 1 multiplies each gradient by
 * its input in2 first (Input x Gradient), in float as the gradient is. in, in2, wd (NULL: weight 1),
 * acc; when acc2 is set, acc2[i] += the squares (SmoothGrad's second moment). */
SAL_HD void sal_mp_wsum(int64_t i, const sal_mp_args *a) {
    double s = a->acc[i], s2 = a->acc2 ? a->acc2[i] : 0.0;
    for (int k = 0; k < a->nb; k++) {
        float g = a->in[(int64_t)k * a->per + i];
        if (a->mode == 1) g *= a->in2[(int64_t)k * a->per + i];
        double v = g;
        s += a->wd ? a->wd[a->k0 + k] * v : v;
        s2 += v * v;
    }
    a->acc[i] = s;
    if (a->acc2) a->acc2[i] = s2;
}

/* count per. out = (x - b) * acc: the IG attribution. x, b, acc, out. */
SAL_HD void sal_mp_ig_final(int64_t i, const sal_mp_args *a) {
    a->out[i] = (float)((a->x[i] - a->b[i]) * a->acc[i]);
}

/* --- SmoothGrad (noise tunnel) ---------------------------------------------------------------- */

/* count nb*per. out = item k: x + f0 * N(0,1), the normal number of (image, sample k0+k,
 * element j) of the SmoothGrad stream. x, f0 (sigma), seed, image, out. */
SAL_HD void sal_mp_noise(int64_t i, const sal_mp_args *a) {
    int64_t k = i / a->per, j = i - k * a->per;
    a->out[i] = a->x[j] + a->f0 * sal_normal(a->seed, SAL_RNG_SMOOTHGRAD, a->image,
                                             (uint32_t)(a->k0 + k), (uint64_t)j);
}

/* count per. From the sums over S = nb samples: mode 0 the mean, 1 the mean of squares, 2 the
 * variance (mean of squares - squared mean). acc, acc2 (modes 1 and 2), nb, out. */
SAL_HD void sal_mp_moments_final(int64_t i, const sal_mp_args *a) {
    double mean = a->acc[i] / a->nb, msq = a->mode ? a->acc2[i] / a->nb : 0.0;
    a->out[i] = (float)(a->mode == 0 ? mean : a->mode == 1 ? msq : msq - mean * mean);
}

/* count n. out = in * in2 (Input x Gradient of a batch). in, in2, out. */
SAL_HD void sal_mp_mul(int64_t i, const sal_mp_args *a) { a->out[i] = a->in[i] * a->in2[i]; }

/* --- Occlusion (Captum's Occlusion: windows over all channels) -------------------------------- */

/* Rows (or columns) r of windows covering pixel row y: r*stride <= y < r*stride + size, r in
 * [0, n). Writes the first and last (last < first: none). */
SAL_HD void sal_occ_cover(int y, int size, int stride, int n, int *first, int *last) {
    int lo = y - size + 1;
    int f = lo <= 0 ? 0 : (lo + stride - 1) / stride;
    int l = y / stride;
    if (l > n - 1) l = n - 1;
    *first = f;
    *last = l;
}

/* count nb*per. Item k: the image with window k0+k (row-major over onx columns of windows,
 * clipped at the border) taken from the fill b. x, b, oh, ow, osh, osw, onx, out. */
SAL_HD void sal_mp_occ_batch(int64_t i, const sal_mp_args *a) {
    int64_t k = i / a->per, j = i - k * a->per;
    int64_t p = j % a->hw;
    int y = (int)(p / a->w), x = (int)(p - (int64_t)y * a->w);
    int win = a->k0 + (int)k;
    int y0 = (win / a->onx) * a->osh, x0 = (win % a->onx) * a->osw;
    int inside = y >= y0 && y < y0 + a->oh && x >= x0 && x < x0 + a->ow;
    a->out[i] = inside ? a->b[j] : a->x[j];
}

/* count hw. acc[p] += the score drops wd[k] of this batch's windows (k0 .. k0+nb-1) that cover
 * pixel p, in window order. wd (nb drops, indexed from 0), acc, occlusion geometry. */
SAL_HD void sal_mp_occ_acc(int64_t i, const sal_mp_args *a) {
    int y = (int)(i / a->w), x = (int)(i - (int64_t)y * a->w);
    int r0, r1, q0, q1;
    sal_occ_cover(y, a->oh, a->osh, a->ony, &r0, &r1);
    sal_occ_cover(x, a->ow, a->osw, a->onx, &q0, &q1);
    double s = a->acc[i];
    for (int r = r0; r <= r1; r++)
        for (int q = q0; q <= q1; q++) {
            int win = r * a->onx + q;
            if (win >= a->k0 && win < a->k0 + a->nb) s += a->wd[win - a->k0];
        }
    a->acc[i] = s;
}

/* count per. out = the mean drop over the windows covering the pixel (0 where none do), the same
 * for every channel. acc, occlusion geometry, out. */
SAL_HD void sal_mp_occ_final(int64_t i, const sal_mp_args *a) {
    int64_t p = i % a->hw;
    int y = (int)(p / a->w), x = (int)(p - (int64_t)y * a->w);
    int r0, r1, q0, q1;
    sal_occ_cover(y, a->oh, a->osh, a->ony, &r0, &r1);
    sal_occ_cover(x, a->ow, a->osw, a->onx, &q0, &q1);
    int cnt = (r1 >= r0 && q1 >= q0) ? (r1 - r0 + 1) * (q1 - q0 + 1) : 0;
    a->out[i] = cnt ? (float)(a->acc[p] / cnt) : 0.0f;
}

/* --- CAM family (pytorch-grad-cam's weightings) ----------------------------------------------- */

enum { SAL_CAM_W_MEAN = 0, SAL_CAM_W_X = 1, SAL_CAM_W_PP = 2, SAL_CAM_W_NONE = 3 };
enum { SAL_CAM_S_WEIGHTED = 0, SAL_CAM_S_HIRES = 1, SAL_CAM_S_LAYER = 2 };

/* count lc. out[c] = channel c's weight from activations in (lc, lhw) and gradients in2:
 * mode SAL_CAM_W_MEAN (Grad-CAM) the spatial mean of the gradient; SAL_CAM_W_X (XGrad-CAM)
 * sum(G A) / (sum(A) + 1e-7); SAL_CAM_W_PP (Grad-CAM++) sum of sal_gradcampp_elem; else 0. */
SAL_HD void sal_mp_cam_weights(int64_t c, const sal_mp_args *a) {
    const float *A = a->in + c * a->lhw, *G = a->in2 + c * a->lhw;
    double wsum = 0, asum = 0;
    float w = 0.0f;
    if (a->mode == SAL_CAM_W_MEAN) {
        for (int64_t j = 0; j < a->lhw; j++) wsum += G[j];
        w = (float)(wsum / (double)a->lhw);
    } else if (a->mode == SAL_CAM_W_X) {
        for (int64_t j = 0; j < a->lhw; j++) { wsum += (double)G[j] * A[j]; asum += A[j]; }
        w = (float)(wsum / (asum + 1e-7));
    } else if (a->mode == SAL_CAM_W_PP) {
        for (int64_t j = 0; j < a->lhw; j++) asum += A[j];
        for (int64_t j = 0; j < a->lhw; j++) wsum += sal_gradcampp_elem(G[j], (float)asum);
        w = (float)wsum;
    }
    a->out[c] = w;
}

/* count lhw. out[j] = sum_c of: wf[c] A_c (mode SAL_CAM_S_WEIGHTED), G_c A_c (HiResCAM), or
 * relu(G_c) A_c (LayerCAM), in double, channels ascending; then ReLU when f0 != 0.
 * in (activations), in2 (gradients; not read by WEIGHTED), wf (weights), lc, lhw, out. */
SAL_HD void sal_mp_cam_sum(int64_t j, const sal_mp_args *a) {
    double v = 0;
    for (int c = 0; c < a->lc; c++) {
        float A = a->in[(int64_t)c * a->lhw + j];
        if (a->mode == SAL_CAM_S_WEIGHTED) { v += (double)a->wf[c] * A; continue; }
        float G = a->in2[(int64_t)c * a->lhw + j];
        v += a->mode == SAL_CAM_S_HIRES ? (double)G * A : (double)(G > 0 ? G : 0) * A;
    }
    float r = (float)v;
    a->out[j] = a->f0 != 0.0f && r < 0 ? 0.0f : r;
}

/* count lc*lhw: a channels-last layer as planes, out (lc, lhw): out[c*lhw + j] = in[(k0 + j)*lc + c]:
 * an (h,w,C) feature map (k0 = 0) or (T,D) tokens whose grid starts after k0 leading ones (a class
 * token: pytorch-grad-cam's ViT reshape_transform). in, lc, lhw, k0, out. */
SAL_HD void sal_mp_to_planes(int64_t i, const sal_mp_args *a) {
    int64_t c = i / a->lhw, j = i - c * a->lhw;
    a->out[i] = a->in[(a->k0 + j) * a->lc + c];
}

/* --- Attention rollout and Chefer's relevance (host/methods/attention.c) ------------------------ */

/* count T*T: out = the (T,T) identity, T = lc. */
SAL_HD void sal_mp_attn_eye(int64_t i, const sal_mp_args *a) {
    int64_t r = i / a->lc, c = i - r * a->lc;
    a->out[i] = r == c ? 1.0f : 0.0f;
}

/* count T*T: out (T,T) = one layer's attention fused over its heads, in (heads, T, T) with
 * heads = lc and T*T = lhw, heads in order, in double: mode 0 the mean of the probabilities A
 * (rollout), 2 their max, 3 their min (vit-explain's head fusions); mode 1 the mean of
 * max(0, G*A) with G = in2 their gradients (Chefer's rule). */
SAL_HD void sal_mp_attn_fuse(int64_t i, const sal_mp_args *a) {
    double s = 0;
    for (int h = 0; h < a->lc; h++) {
        float A = a->in[(int64_t)h * a->lhw + i];
        if (a->mode == 1) {
            float v = a->in2[(int64_t)h * a->lhw + i] * A;
            s += v > 0 ? v : 0;
        } else if (a->mode == 2) {
            s = h == 0 || A > s ? A : s;
        } else if (a->mode == 3) {
            s = h == 0 || A < s ? A : s;
        } else {
            s += A;
        }
    }
    a->out[i] = (float)(a->mode >= 2 ? s : s / a->lc);
}

/* count T*T: vit-explain's discarding in the fused attention `out` (T,T), in place: element i
 * becomes 0 when it is among the k0 smallest, that is at most in2[k0 - 1] (in2: the T*T values
 * sorted ascending), except element 0 (the class token's attention to itself); k0 == 0: none. */
SAL_HD void sal_mp_attn_discard(int64_t i, const sal_mp_args *a) {
    if (a->k0 > 0 && i != 0 && a->out[i] <= a->in2[a->k0 - 1]) a->out[i] = 0.0f;
}

/* count T*T: one layer's step of the product over layers, out = M R with R = in2 (T,T) so far
 * and M from the fused attention in (T,T), T = lc, in double, k ascending: mode 0 (rollout)
 * M = (A + I)/2 with its rows renormalized to sum 1; mode 1 (Chefer) M = I + A, so out = R + A R. */
SAL_HD void sal_mp_attn_step(int64_t i, const sal_mp_args *a) {
    int64_t T = a->lc, r = i / T, c = i - r * T;
    const float *A = a->in + r * T, *R = a->in2;
    double s = 0;
    if (a->mode == 0) {
        double rs = 0;
        for (int64_t k = 0; k < T; k++) rs += ((double)A[k] + (k == r)) * 0.5;
        for (int64_t k = 0; k < T; k++) s += ((double)A[k] + (k == r)) * 0.5 / rs * R[k * T + c];
    } else {
        s = R[i];
        for (int64_t k = 0; k < T; k++) s += (double)A[k] * R[k * T + c];
    }
    a->out[i] = (float)s;
}

/* --- Masks: RISE, Score-CAM ------------------------------------------------------------------- */

/* count nb*(g*g+2), g = mode: mask k0+k's RISE grid cells (kept with probability f0) and its row
 * and column shifts (small integers, exact in float), into out (nb, g*g+2). seed, h, w. */
SAL_HD void sal_mp_rise_grid(int64_t i, const sal_mp_args *a) {
    int g = a->mode, n = g * g + 2;
    int64_t k = i / n;
    int e = (int)(i - k * n);
    uint32_t mk = (uint32_t)(a->k0 + k);
    float v;
    if (e < g * g) v = sal_rise_cell(a->seed, mk, e / g, e % g, g, a->f0);
    else if (e == g * g) v = (float)sal_rise_shift(a->seed, mk, 0, sal_rise_cell_size(a->h, g));
    else v = (float)sal_rise_shift(a->seed, mk, 1, sal_rise_cell_size(a->w, g));
    a->out[i] = v;
}

/* count nb*hw: the (H,W) RISE masks of the nb grids in `in` (nb, g*g+2), into out (nb, H,W). */
SAL_HD void sal_mp_rise_mask(int64_t i, const sal_mp_args *a) {
    int g = a->mode;
    int64_t k = i / a->hw, p = i - k * a->hw;
    const float *gr = a->in + k * (int64_t)(g * g + 2);
    int y = (int)(p / a->w), x = (int)(p - (int64_t)y * a->w);
    a->out[i] = sal_rise_mask_from_grid(gr, g, a->h, a->w, (int)gr[g * g], (int)gr[g * g + 1], y, x);
}

/* count nb*hw: channels k0 .. k0+nb-1 of the layer activation `in` (lc, lh, lw), with lh = mode
 * and lw = lhw / lh, upsampled to (H,W) with align_corners (Score-CAM), into out (nb, H,W). */
SAL_HD void sal_mp_cam_up_ac(int64_t i, const sal_mp_args *a) {
    int64_t k = i / a->hw, p = i - k * a->hw;
    int lh = a->mode, lw = (int)(a->lhw / lh);
    int y = (int)(p / a->w), x = (int)(p - (int64_t)y * a->w);
    a->out[i] = sal_bilinear_ac(a->in + (a->k0 + k) * a->lhw, lh, lw, a->h, a->w, y, x);
}

/* count nb*per. out = in (the gradients of images k0 + k) times their CAM, nearest-upsampled:
 * in2 (n, lh, lw) with lh = mode, lw = lhw / lh, source pixel (y * lh / H, x * lw / W) (Captum's
 * GuidedGradCam). */
SAL_HD void sal_mp_cam_nearest_mul(int64_t i, const sal_mp_args *a) {
    int64_t k = i / a->per, p = (i - k * a->per) % a->hw;
    int lh = a->mode, lw = (int)(a->lhw / lh);
    int y = (int)(p / a->w), x = (int)(p - (int64_t)y * a->w);
    a->out[i] = a->in[i] * a->in2[(a->k0 + k) * a->lhw + (int64_t)(y * lh / a->h) * lw + x * lw / a->w];
}

/* count nb*per: item k: the image times mask (k0 - kb + k) of `in` (masks (NB, H,W) starting at
 * item kb); with in2 (min, max per mask) the mask is first rescaled to
 * (m - min) / (max - min + 1e-8) (Score-CAM). x, in, in2, kb, out. */
SAL_HD void sal_mp_masked(int64_t i, const sal_mp_args *a) {
    int64_t k = i / a->per, j = i - k * a->per, p = j % a->hw, m = a->k0 - a->kb + k;
    float v = a->in[m * a->hw + p];
    if (a->in2) v = (v - a->in2[2 * m]) / (a->in2[2 * m + 1] - a->in2[2 * m] + 1e-8f);
    a->out[i] = a->x[j] * v;
}

/* count hw: acc[p] += sum_k wd[k] * mask (k0 - kb + k)[p] over the nb items (RISE). */
SAL_HD void sal_mp_mask_acc(int64_t i, const sal_mp_args *a) {
    double s = a->acc[i];
    for (int k = 0; k < a->nb; k++) s += a->wd[k] * (double)a->in[(int64_t)(a->k0 - a->kb + k) * a->hw + i];
    a->acc[i] = s;
}

/* count per: out = acc[pixel] / d0, the same for every channel. */
SAL_HD void sal_mp_scaled(int64_t i, const sal_mp_args *a) {
    a->out[i] = (float)(a->acc[i % a->hw] / a->d0);
}

/* --- GradientSHAP ----------------------------------------------------------------------------- */

/* count nb*per: item k = sample k0+k of image `image`: the point where the gradient is taken,
 * between the noisy image and a drawn baseline of b (mode baselines, (mode, C,H,W)).
 * x, b, mode, f0 (stdev), seed, image, out. */
SAL_HD void sal_mp_gshap_point(int64_t i, const sal_mp_args *a) {
    int64_t k = i / a->per, j = i - k * a->per;
    uint32_t smp = (uint32_t)(a->k0 + k);
    int bi = sal_gradshap_baseline(a->seed, a->image, smp, a->mode);
    float xn = sal_gradshap_noisy(a->seed, a->image, smp, (uint64_t)j, a->x[j], a->f0);
    a->out[i] = sal_gradshap_point(xn, a->b[(int64_t)bi * a->per + j], sal_gradshap_alpha(a->seed, a->image, smp));
}

/* count per: acc[j] += sum_k gradient in[k][j] * (noisy x - baseline) of sample k0+k. */
SAL_HD void sal_mp_gshap_acc(int64_t j, const sal_mp_args *a) {
    double s = a->acc[j];
    for (int k = 0; k < a->nb; k++) {
        uint32_t smp = (uint32_t)(a->k0 + k);
        int bi = sal_gradshap_baseline(a->seed, a->image, smp, a->mode);
        float xn = sal_gradshap_noisy(a->seed, a->image, smp, (uint64_t)j, a->x[j], a->f0);
        float d = xn - a->b[(int64_t)bi * a->per + j];
        s += (double)a->in[(int64_t)k * a->per + j] * d;
    }
    a->acc[j] = s;
}

/* --- KernelSHAP ------------------------------------------------------------------------------- */

/* count nb*per: item k: x where coalition (k0 - kb + k) of wf ((NB, mode) presence, 1 or 0 per
 * feature) has the pixel's feature lab[p] present, else the baseline b. */
SAL_HD void sal_mp_kshap_batch(int64_t i, const sal_mp_args *a) {
    int64_t k = i / a->per, j = i - k * a->per, p = j % a->hw;
    float z = a->wf[(int64_t)(a->k0 - a->kb + k) * a->mode + a->lab[p]];
    a->out[i] = z != 0.0f ? a->x[j] : a->b[j];
}

/* --- Post-processing (host/post/render.c; the math of kernels/post_elem.h) -------------------- */

/* count hw: out = attr in (c, h,w) reduced over channels at pixel i: mode 0 abs-max, 1 abs-sum,
 * 2 signed sum (sal_reduce's order). */
SAL_HD void sal_mp_reduce(int64_t i, const sal_mp_args *a) {
    a->out[i] = a->mode == 0 ? sal_reduce_absmax_at(a->in, a->c, (size_t)a->hw, (size_t)i)
              : a->mode == 1 ? sal_reduce_abssum_at(a->in, a->c, (size_t)a->hw, (size_t)i)
                             : sal_reduce_sum_at(a->in, a->c, (size_t)a->hw, (size_t)i);
}

/* count hw: the values the percentile sorts: x (mode 0) or |x| (mode 1), NaN as a positive quiet
 * NaN (sorted last by the backend's sort). */
SAL_HD void sal_mp_sort_keys(int64_t i, const sal_mp_args *a) {
    float v = a->in[i];
    a->out[i] = sal_pe_isnan(v) ? NAN : a->mode ? fabsf(v) : v;
}

/* count 1: out[0] = the d0-th percentile (numpy's linear rule) of the sorted keys in (hw values,
 * NaNs last and left out); NaN when every value is NaN. */
SAL_HD void sal_mp_percentile(int64_t i, const sal_mp_args *a) {
    (void)i;
    size_t m = (size_t)a->hw;
    while (m > 0 && sal_pe_isnan(a->in[m - 1])) m--;
    a->out[0] = m ? (float)sal_percentile_sorted(a->in, m, a->d0) : NAN;
}

/* count hw: out = in clipped at the threshold in2[0] (mode 0: above it; 1: to [-P, P]); a NaN
 * threshold (an all-NaN map) clips nothing. */
SAL_HD void sal_mp_clip(int64_t i, const sal_mp_args *a) {
    float p = a->in2[0], v = a->in[i];
    a->out[i] = sal_pe_isnan(p) ? v : a->mode ? sal_clip_symmetric(v, p) : sal_clip_upper(v, p);
}

/* The range of planes, in two steps (one thread per plane would read a whole plane alone):
 * SAL_MP_PARTS parts per plane, then a join per plane. Over the finite values (mode 0) or their
 * absolute values (mode 1), as sal_normalize (sal_range_add in post_elem.h). Used by Score-CAM's
 * masks (one plane per channel) and by the normalization of rendered maps (one plane). */
#define SAL_MP_PARTS 64

/* count planes*SAL_MP_PARTS: part q of plane k of `in` (planes, hw) -> out[2i], out[2i+1] (i =
 * k*SAL_MP_PARTS + q) = its min and max; +inf, -inf when it has no finite value. */
SAL_HD void sal_mp_range_part(int64_t i, const sal_mp_args *a) {
    int64_t k = i / SAL_MP_PARTS, q = i - k * SAL_MP_PARTS;
    int64_t lo = q * a->hw / SAL_MP_PARTS, hi = (q + 1) * a->hw / SAL_MP_PARTS;
    const float *v = a->in + k * a->hw;
    float mn = INFINITY, mx = -INFINITY;
    for (int64_t j = lo; j < hi; j++) sal_range_add(v[j], a->mode, &mn, &mx);
    a->out[2 * i] = mn;
    a->out[2 * i + 1] = mx;
}

/* count planes: out[2k], out[2k+1] = the range of plane k from its parts in `in` (range_part's
 * output); mode 0: min and max (both 0 when no value was finite); mode 1: 0 and max |x|. */
SAL_HD void sal_mp_range_join(int64_t k, const sal_mp_args *a) {
    const float *p = a->in + 2 * k * SAL_MP_PARTS;
    float mn = INFINITY, mx = -INFINITY;
    for (int q = 0; q < SAL_MP_PARTS; q++) {
        if (p[2 * q] < mn) mn = p[2 * q];
        if (p[2 * q + 1] > mx) mx = p[2 * q + 1];
    }
    sal_range_final(a->mode, &mn, &mx);
    a->out[2 * k] = mn;
    a->out[2 * k + 1] = mx;
}

/* count hw: out = in normalized with the range in2 (range_join's): mode 0 to [0,1], 1 to [-1,1]. */
SAL_HD void sal_mp_normalize(int64_t i, const sal_mp_args *a) {
    a->out[i] = a->mode ? sal_norm_signed(a->in[i], a->in2[1]) : sal_norm_unsigned(a->in[i], a->in2[0], a->in2[1]);
}

/* count hw: u8out (h,w,3) = the colour of the normalized map in (signed when mode). */
SAL_HD void sal_mp_heatmap(int64_t i, const sal_mp_args *a) {
    sal_heatmap_pixel(a->in, (size_t)i, a->table, a->mode, a->u8out);
}

/* count oh_*ow_: u8out (oh_, ow_, 3) = original pixel i (u8in, oc channels) blended with the
 * colour of the normalized map in (h,w) over rect; mode: sal_overlay_pixel's flags (signed map,
 * opacity by value). */
SAL_HD void sal_mp_overlay(int64_t i, const sal_mp_args *a) {
    int Y = (int)(i / a->ow_), X = (int)(i - (int64_t)Y * a->ow_);
    sal_overlay_pixel(a->u8in, a->ow_, a->oc, a->in, a->h, a->w, a->rect, a->table, a->alpha, a->mode, X, Y,
                      a->u8out);
}

/* --- Incremental inference (host/engine/incremental.c) ------------------------------------------ */

/* count nb*c*th: one row of a tile (nb, c, th, tw) cut from a layer's value for nb variants of
 * one input; element i is (item k, channel, tile row ty). The value is its base activation x
 * (c, h, w) (the unmodified input's) overlaid, for item k, by what changed. The tile's origin in
 * the value's coordinates is (geo2[2k] * gsy - gpy, geo2[2k+1] * gsx - gpx) (a window layer's
 * output patch origin times its stride minus its padding; geo2 NULL: (0, 0)). The overlay:
 * mode 0 the item's patch `in` (nb, c, ph, pw) at origin (geo[2k], geo[2k+1]) (geo NULL: none);
 * mode 1 the replacement image b (c, h, w) inside the rectangle geo + 4k = [y0, y1) x [x0, x1)
 * (an occlusion window and its fill). Outside the value the tile holds f0 (the layer's padding:
 * 0, or -inf before a max pool). A 2-D or flat value is (c = 1, h = 1, w = its elements).
 * x, b or in, geo, geo2, gsy, gsx, gpy, gpx, c, h, w, th, tw, ph, pw, mode, f0, out. */
SAL_HD void sal_mp_patch_rows(int64_t i, const sal_mp_args *a) {
    int64_t crow = (int64_t)a->c * a->th;
    int64_t k = i / crow, r = i - k * crow;
    int ch = (int)(r / a->th), ty = (int)(r - (int64_t)ch * a->th);
    int gy0 = a->geo2 ? a->geo2[2 * k] * a->gsy - a->gpy : 0;
    int gx0 = a->geo2 ? a->geo2[2 * k + 1] * a->gsx - a->gpx : 0;
    int oy0 = 0, ox0 = 0, oy1 = 0, ox1 = 0;   /* the overlay */
    if (a->geo && a->mode) {
        oy0 = a->geo[4 * k]; ox0 = a->geo[4 * k + 1]; oy1 = a->geo[4 * k + 2]; ox1 = a->geo[4 * k + 3];
    } else if (a->geo) {
        oy0 = a->geo[2 * k]; ox0 = a->geo[2 * k + 1]; oy1 = oy0 + a->ph; ox1 = ox0 + a->pw;
    }
    int gy = gy0 + ty;
    float *o = a->out + i * a->tw;
    if (gy < 0 || gy >= a->h) {
        for (int tx = 0; tx < a->tw; tx++) o[tx] = a->f0;
        return;
    }
    int ov_row = gy >= oy0 && gy < oy1;
    const float *base = a->x + ((int64_t)ch * a->h + gy) * a->w;
    const float *rep = a->mode ? a->b + ((int64_t)ch * a->h + gy) * a->w : 0;
    const float *pat = a->mode || !ov_row ? 0 : a->in + ((k * a->c + ch) * a->ph + (gy - oy0)) * a->pw;
    for (int tx = 0; tx < a->tw; tx++) {
        int gx = gx0 + tx;
        float v;
        if (gx < 0 || gx >= a->w) v = a->f0;
        else if (ov_row && gx >= ox0 && gx < ox1) v = a->mode ? rep[gx] : pat[gx - ox0];
        else v = base[gx];
        o[tx] = v;
    }
}

#define SAL_MP_ENUM(name) SAL_MP_##name,
enum { SAL_MP_FUNCS(SAL_MP_ENUM) SAL_MP_NFUNCS };
#undef SAL_MP_ENUM

#endif
