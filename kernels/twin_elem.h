/* twin_elem.h — twin element functions (kernels/twin.h) of the activations, the broadcasting
 * binary ops, BatchNorm and Softmax; their plans are in host/backend/twin/plan_elem.c.
 *
 * The specification is the CPU backend (host/backend/cpu/cpu_elem.c, cpu_nn.c): every function
 * here computes its element with the same formula, in the same precision (float, or double where
 * the CPU accumulates in double), so the two agree to float rounding (summation order aside).
 *
 * Arguments (sal_tw_args) by family:
 *   activations  in[0] = x, in[1] = y (backward), out[0] = y, gout[0], gin[0]; p.s; guided
 *   binary       in[0] = a, in[1] = b, out[0] = y, gout[0]; p.b; k0 = op (SAL_TW_BIN_*);
 *                backward: k1 = which input (0: a, 1: b), gin[0] = its gradient,
 *                k2 = that input's element count, k3 = the output's element count
 *   BatchNorm    in[0..4] = x, scale, B, mean, var (SAL_TW_BN_VAR); out[0] = y;
 *                gout[0]; p.bn; bn_bwd_x: gin[0] = dx; bn_bwd_stats: gin[0..3] = d scale, d B,
 *                d mean, d var (NULL entries skipped)
 *   Softmax      in[0] = x, in[1] = y (backward), out[0] = y, gout[0], gin[0]; p.ax;
 *                one element per (outer, inner) row of axis_len values */
#ifndef SAL_TWIN_ELEM_H
#define SAL_TWIN_ELEM_H

#include "twin.h"

#include <math.h>
#include <stdint.h>

#define SAL_TW_ELEM_FUNCS(X)                                                                      \
    X(relu_fwd) X(relu_bwd) X(leakyrelu_fwd) X(leakyrelu_bwd) X(clip_fwd) X(clip_bwd)              \
    X(sigmoid_fwd) X(sigmoid_bwd) X(hardsigmoid_fwd) X(hardsigmoid_bwd) X(hardswish_fwd)          \
    X(hardswish_bwd) X(tanh_fwd) X(tanh_bwd)                                                      \
    X(bin_fwd) X(bin_bwd_full) X(bin_bwd_reduce)                                                  \
    X(bn_fwd) X(bn_bwd_x) X(bn_bwd_stats)                                                         \
    X(softmax_fwd) X(softmax_bwd)

/* Binary op codes (args k0). */
enum { SAL_TW_BIN_ADD = 0, SAL_TW_BIN_SUB, SAL_TW_BIN_MUL, SAL_TW_BIN_DIV };

/* BatchNorm's input_var, its 5th input. */
#define SAL_TW_BN_VAR(a) ((a)->in[4])

/* The float chunk of the scalar-broadcast gradient sum (cpu_elem.c uses it too): partial sums in
 * float per chunk, added in double. */
#define SAL_TW_BCHUNK 8192

/* ------------------------------------------------------------------------------------------------ */
/* Helpers                                                                                          */

/* e^x within 2 ulp (Cephes expf's range reduction and polynomial) in branch-free code that
 * vectorizes; x clamped to [-87, 88] (1.6e-38 instead of a denormal or 0 below, 1.65e38 instead
 * of inf above); NaN gives NaN. The CPU kernels use it too (cpu_elem.c); nvcc may fuse multiply-adds: within an ulp. */
SAL_HD float sal_tw_exp(float x) {
    const float x_in = x;
    x = x == x ? x : 0.f;   /* NaN: evaluated at 0 and returned as NaN (a NaN converted to int is UB) */
    x = x < -87.f ? -87.f : x;
    x = x > 88.f ? 88.f : x;
    const float fn = x * 1.44269504088896341f;
    const int32_t n = (int32_t)(fn + (fn >= 0.f ? 0.5f : -0.5f));
    const float nf = (float)n;
    float r = x - nf * 0.693359375f;
    r = r + nf * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.f;
#ifdef __CUDA_ARCH__
    const float y = p * __int_as_float((n + 127) << 23);
#else
    union { int32_t i; float f; } two_n;
    two_n.i = (n + 127) << 23;   /* 2^n, n in [-126, 127] */
    const float y = p * two_n.f;
#endif
    return x_in == x_in ? y : x_in;
}

/* y = a op b (also the CPU kernels') */
SAL_HD float sal_tw_bin_f(int op, float a, float b) {
    switch (op) {
    case SAL_TW_BIN_ADD: return a + b;
    case SAL_TW_BIN_SUB: return a - b;
    case SAL_TW_BIN_MUL: return a * b;
    default: return a / b;
    }
}

/* dL/da (which = 0) or dL/db (which = 1) of y = a op b for incoming gradient g (also the CPU's) */
SAL_HD float sal_tw_bin_d(int op, int which, float a, float b, float g) {
    if (!which) {
        switch (op) {
        case SAL_TW_BIN_ADD: case SAL_TW_BIN_SUB: return g;
        case SAL_TW_BIN_MUL: return g * b;
        default: return g / b;
        }
    }
    switch (op) {
    case SAL_TW_BIN_ADD: return g;
    case SAL_TW_BIN_SUB: return -g;
    case SAL_TW_BIN_MUL: return g * a;
    default: return -g * a / (b * b);
    }
}

/* Offsets in a and b of output element i of the broadcast. */
SAL_HD void sal_tw_bc_index(const sal_bcast_params *p, int64_t i, int64_t *oa, int64_t *ob) {
    switch (p->mode) {
    case SAL_BC_SAME: *oa = i; *ob = i; return;
    case SAL_BC_SCALAR_A: *oa = 0; *ob = i; return;
    case SAL_BC_SCALAR_B: *oa = i; *ob = 0; return;
    case SAL_BC_CHANNEL_A: *oa = (i / p->inner) % p->mid; *ob = i; return;
    case SAL_BC_CHANNEL_B: *oa = i; *ob = (i / p->inner) % p->mid; return;
    default: {
        int64_t a = 0, b = 0, r = i;
        for (int d = p->ndim - 1; d >= 0; d--) {
            const int64_t q = r / p->out[d], c = r - q * p->out[d];
            a += c * p->sa[d];
            b += c * p->sb[d];
            r = q;
        }
        *oa = a;
        *ob = b;
        return;
    }
    }
}

/* ------------------------------------------------------------------------------------------------ */
/* Activations: the scalar math (shared with the CPU kernels' loops in cpu_elem.c and the fused
 * Conv activation in cpu_nn.c), then the element functions over element i of x / y             */

SAL_HD float sal_act_relu(float x) { return x > 0.f ? x : 0.f; }
/* Guided Backprop: also zero where the incoming gradient g is negative. */
SAL_HD float sal_act_relu_d(float x, float g, int guided) {
    return guided ? ((x > 0.f) & (g > 0.f) ? g : 0.f) : (x > 0.f ? g : 0.f);
}
SAL_HD float sal_act_leaky(float x, float alpha) { return x > 0.f ? x : alpha * x; }
SAL_HD float sal_act_leaky_d(float x, float g, float alpha) { return x > 0.f ? g : alpha * g; }
SAL_HD float sal_act_clip(float x, float lo, float hi) {
    x = x < lo ? lo : x;
    return x > hi ? hi : x;
}
/* Passes where lo < x < hi strictly; Guided Backprop (only when lo >= 0, a ReLU6-like clip) also
 * zeroes negative incoming gradients. */
SAL_HD float sal_act_clip_d(float x, float g, float lo, float hi, int guided) {
    return guided && lo >= 0.f ? ((x > lo) & (x < hi) & (g > 0.f) ? g : 0.f) : ((x > lo) & (x < hi) ? g : 0.f);
}
SAL_HD float sal_act_sigmoid(float x) { return 1.f / (1.f + sal_tw_exp(-x)); }
SAL_HD float sal_act_sigmoid_d(float y, float g) { return g * y * (1.f - y); }   /* from y */
SAL_HD float sal_act_hardsigmoid(float x, float alpha, float beta) { return sal_act_clip(alpha * x + beta, 0.f, 1.f); }
SAL_HD float sal_act_hardsigmoid_d(float x, float g, float alpha, float beta) {
    const float t = alpha * x + beta;
    return (t > 0.f) & (t < 1.f) ? alpha * g : 0.f;
}
SAL_HD float sal_act_hardswish(float x) { return x * sal_act_clip(x * (1.f / 6.f) + 0.5f, 0.f, 1.f); }
/* PyTorch's hardswish_backward: 0 below -3, x/3 + 1/2 on [-3, 3], 1 above. */
SAL_HD float sal_act_hardswish_d(float x, float g) {
    float d = x * (1.f / 3.f) + 0.5f;
    d = x < -3.f ? 0.f : d;
    d = x > 3.f ? 1.f : d;
    return g * d;
}
SAL_HD float sal_act_tanh_d(float y, float g) { return g * (1.f - y * y); }   /* from y */

SAL_HD void sal_tw_relu_fwd(int64_t i, const sal_tw_args *a) { a->out[0][i] = sal_act_relu(a->in[0][i]); }
SAL_HD void sal_tw_relu_bwd(int64_t i, const sal_tw_args *a) {
    a->gin[0][i] += sal_act_relu_d(a->in[0][i], a->gout[0][i], a->guided);
}
SAL_HD void sal_tw_leakyrelu_fwd(int64_t i, const sal_tw_args *a) { a->out[0][i] = sal_act_leaky(a->in[0][i], a->p.s.alpha); }
SAL_HD void sal_tw_leakyrelu_bwd(int64_t i, const sal_tw_args *a) {
    a->gin[0][i] += sal_act_leaky_d(a->in[0][i], a->gout[0][i], a->p.s.alpha);
}
SAL_HD void sal_tw_clip_fwd(int64_t i, const sal_tw_args *a) { a->out[0][i] = sal_act_clip(a->in[0][i], a->p.s.lo, a->p.s.hi); }
SAL_HD void sal_tw_clip_bwd(int64_t i, const sal_tw_args *a) {
    a->gin[0][i] += sal_act_clip_d(a->in[0][i], a->gout[0][i], a->p.s.lo, a->p.s.hi, a->guided);
}
SAL_HD void sal_tw_sigmoid_fwd(int64_t i, const sal_tw_args *a) { a->out[0][i] = sal_act_sigmoid(a->in[0][i]); }
/* from y = in[1] */
SAL_HD void sal_tw_sigmoid_bwd(int64_t i, const sal_tw_args *a) { a->gin[0][i] += sal_act_sigmoid_d(a->in[1][i], a->gout[0][i]); }
SAL_HD void sal_tw_hardsigmoid_fwd(int64_t i, const sal_tw_args *a) {
    a->out[0][i] = sal_act_hardsigmoid(a->in[0][i], a->p.s.alpha, a->p.s.beta);
}
SAL_HD void sal_tw_hardsigmoid_bwd(int64_t i, const sal_tw_args *a) {
    a->gin[0][i] += sal_act_hardsigmoid_d(a->in[0][i], a->gout[0][i], a->p.s.alpha, a->p.s.beta);
}
SAL_HD void sal_tw_hardswish_fwd(int64_t i, const sal_tw_args *a) { a->out[0][i] = sal_act_hardswish(a->in[0][i]); }
SAL_HD void sal_tw_hardswish_bwd(int64_t i, const sal_tw_args *a) { a->gin[0][i] += sal_act_hardswish_d(a->in[0][i], a->gout[0][i]); }
SAL_HD void sal_tw_tanh_fwd(int64_t i, const sal_tw_args *a) { a->out[0][i] = tanhf(a->in[0][i]); }
/* from y = in[1] */
SAL_HD void sal_tw_tanh_bwd(int64_t i, const sal_tw_args *a) { a->gin[0][i] += sal_act_tanh_d(a->in[1][i], a->gout[0][i]); }

/* ------------------------------------------------------------------------------------------------ */
/* Broadcasting binary ops                                                                          */

/* Output element i. */
SAL_HD void sal_tw_bin_fwd(int64_t i, const sal_tw_args *a) {
    int64_t oa, ob;
    sal_tw_bc_index(&a->p.b, i, &oa, &ob);
    a->out[0][i] = sal_tw_bin_f((int)a->k0, a->in[0][oa], a->in[1][ob]);
}

/* Gradient element i of an input with the output's size (no broadcast on it): gin[0] has the
 * output's layout. */
SAL_HD void sal_tw_bin_bwd_full(int64_t i, const sal_tw_args *a) {
    int64_t oa, ob;
    sal_tw_bc_index(&a->p.b, i, &oa, &ob);
    a->gin[0][i] += sal_tw_bin_d((int)a->k0, (int)a->k1, a->in[0][oa], a->in[1][ob],
                                 a->gout[0][i]);
}

/* Gradient element j of a broadcast input (fewer elements than the output): the sum over every
 * output element that read it, in the CPU's precision for the mode (SCALAR: float per chunk of
 * SAL_TW_BCHUNK, double across; CHANNEL with inner == 1: float; CHANNEL: float per row, double
 * across rows; GENERAL: double). */
SAL_HD void sal_tw_bin_bwd_reduce(int64_t j, const sal_tw_args *a) {
    const sal_bcast_params *p = &a->p.b;
    const int op = (int)a->k0, which = (int)a->k1;
    const float *A = a->in[0], *B = a->in[1], *g = a->gout[0];
    float *gx = a->gin[0];
    switch (p->mode) {
    case SAL_BC_SCALAR_A:
    case SAL_BC_SCALAR_B: {   /* j == 0: the scalar; the other input is output-sized */
        const int64_t n = a->k3;
        double sum = 0;
        for (int64_t i0 = 0; i0 < n; i0 += SAL_TW_BCHUNK) {
            const int64_t end = n - i0 < SAL_TW_BCHUNK ? n : i0 + SAL_TW_BCHUNK;
            float part = 0.f;
            if (which)
                for (int64_t i = i0; i < end; i++) part += sal_tw_bin_d(op, 1, A[i], B[0], g[i]);
            else
                for (int64_t i = i0; i < end; i++) part += sal_tw_bin_d(op, 0, A[0], B[i], g[i]);
            sum += part;
        }
        gx[j] += (float)sum;
        return;
    }
    case SAL_BC_CHANNEL_A:
    case SAL_BC_CHANNEL_B: {   /* j = channel m of y viewed as (outer, mid, inner) */
        const int64_t outer = p->outer, mid = p->mid, inner = p->inner;
        const float *big = which ? A : B;
        const float s = which ? B[j] : A[j];
        if (inner == 1) {
            float acc = 0.f;
            for (int64_t o = 0; o < outer; o++) {
                const int64_t e = o * mid + j;
                acc += which ? sal_tw_bin_d(op, 1, big[e], s, g[e])
                             : sal_tw_bin_d(op, 0, s, big[e], g[e]);
            }
            gx[j] += acc;
            return;
        }
        double acc = 0;
        for (int64_t o = 0; o < outer; o++) {
            const int64_t r = (o * mid + j) * inner;
            float part = 0.f;
            if (which)
                for (int64_t i = 0; i < inner; i++) part += sal_tw_bin_d(op, 1, big[r + i], s, g[r + i]);
            else
                for (int64_t i = 0; i < inner; i++) part += sal_tw_bin_d(op, 0, s, big[r + i], g[r + i]);
            acc += part;
        }
        gx[j] += (float)acc;
        return;
    }
    default: {
        /* j's coordinates on the input's own dims (stride != 0), the rest summed by an odometer
         * over the dims the input is broadcast on, in row-major order (as the CPU's) */
        const int64_t *sx = which ? p->sb : p->sa;
        int64_t so[SAL_MAX_DIMS];
        int red[SAL_MAX_DIMS], nr = 0;
        int64_t s = 1, nred = 1;
        for (int d = p->ndim - 1; d >= 0; d--) { so[d] = s; s *= p->out[d]; }
        int64_t oo = 0, oa = 0, ob = 0, r = j;
        for (int d = p->ndim - 1; d >= 0; d--) {
            if (sx[d] == 0) continue;
            const int64_t q = r / p->out[d], c = r - q * p->out[d];
            oo += c * so[d];
            oa += c * p->sa[d];
            ob += c * p->sb[d];
            r = q;
        }
        for (int d = 0; d < p->ndim; d++)
            if (sx[d] == 0 && p->out[d] > 1) { red[nr++] = d; nred *= p->out[d]; }
        int64_t cr[SAL_MAX_DIMS];
        for (int u = 0; u < nr; u++) cr[u] = 0;
        double sum = 0;
        for (int64_t t = 0; t < nred; t++) {
            sum += sal_tw_bin_d(op, which, A[oa], B[ob], g[oo]);
            for (int u = nr - 1; u >= 0; u--) {
                const int d = red[u];
                oo += so[d];
                oa += p->sa[d];
                ob += p->sb[d];
                if (++cr[u] < p->out[d]) break;
                oo -= so[d] * p->out[d];
                oa -= p->sa[d] * p->out[d];
                ob -= p->sb[d] * p->out[d];
                cr[u] = 0;
            }
        }
        gx[j] += (float)sum;
        return;
    }
    }
}

/* ------------------------------------------------------------------------------------------------ */
/* BatchNormalization (inference): y = x * s[c] + t[c], s = scale / sqrt(var + eps),               */
/* t = B - mean * s; x viewed as (n, c, inner)                                                      */

SAL_HD void sal_tw_bn_fwd(int64_t i, const sal_tw_args *a) {
    const int64_t ch = (i / a->p.bn.inner) % a->p.bn.c;
    const float s = a->in[1][ch] / sqrtf(SAL_TW_BN_VAR(a)[ch] + a->p.bn.epsilon);
    const float t = a->in[2][ch] - a->in[3][ch] * s;
    a->out[0][i] = a->in[0][i] * s + t;
}

SAL_HD void sal_tw_bn_bwd_x(int64_t i, const sal_tw_args *a) {
    const int64_t ch = (i / a->p.bn.inner) % a->p.bn.c;
    const float s = a->in[1][ch] / sqrtf(SAL_TW_BN_VAR(a)[ch] + a->p.bn.epsilon);
    a->gin[0][i] += a->gout[0][i] * s;
}

/* Channel ch's gradients of scale, B, mean and var (runtime statistics or affine parameters):
 * exact, in double, of y = (x - mean) * rsqrt(var + eps) * scale + B. */
SAL_HD void sal_tw_bn_bwd_stats(int64_t ch, const sal_tw_args *a) {
    const sal_bn_params *p = &a->p.bn;
    const float *x = a->in[0], *scale = a->in[1], *mean = a->in[3], *var = SAL_TW_BN_VAR(a);
    const float *gy = a->gout[0];
    const int64_t C = p->c, inner = p->inner;
    double inv = 1.0 / sqrt((double)var[ch] + (double)p->epsilon);
    double sum_g = 0, sum_gxc = 0;   /* sum g, sum g * (x - mean) */
    for (int64_t n = 0; n < p->n; n++) {
        const float *g = gy + (n * C + ch) * inner, *xs = x + (n * C + ch) * inner;
        for (int64_t i = 0; i < inner; i++) {
            sum_g += g[i];
            sum_gxc += (double)g[i] * ((double)xs[i] - mean[ch]);
        }
    }
    if (a->gin[0]) a->gin[0][ch] += (float)(sum_gxc * inv);
    if (a->gin[1]) a->gin[1][ch] += (float)sum_g;
    if (a->gin[2]) a->gin[2][ch] += (float)(-sum_g * scale[ch] * inv);
    if (a->gin[3]) a->gin[3][ch] += (float)(-0.5 * sum_gxc * scale[ch] * inv * inv * inv);
}

/* ------------------------------------------------------------------------------------------------ */
/* Softmax over axis_len of x viewed as (outer, axis_len, inner): element t is row (o, i)          */

SAL_HD void sal_tw_softmax_fwd(int64_t t, const sal_tw_args *a) {
    const int64_t len = a->p.ax.axis_len, inner = a->p.ax.inner;
    const int64_t o = t / inner, base = o * len * inner + (t - o * inner);
    const float *x = a->in[0] + base;
    float *y = a->out[0] + base;
    float mx = -INFINITY;
    for (int64_t k = 0; k < len; k++) mx = x[k * inner] > mx ? x[k * inner] : mx;
    float s = 0.f;
    for (int64_t k = 0; k < len; k++) {
        const float e = sal_tw_exp(x[k * inner] - mx);
        y[k * inner] = e;
        s += e;
    }
    const float is = 1.f / s;
    for (int64_t k = 0; k < len; k++) y[k * inner] *= is;
}

/* dL/dx = y * (g - sum_k g_k y_k); the dot in double when inner == 1, float otherwise (as the
 * CPU's two paths). y = in[1]. */
SAL_HD void sal_tw_softmax_bwd(int64_t t, const sal_tw_args *a) {
    const int64_t len = a->p.ax.axis_len, inner = a->p.ax.inner;
    const int64_t o = t / inner, base = o * len * inner + (t - o * inner);
    const float *y = a->in[1] + base, *g = a->gout[0] + base;
    float *gx = a->gin[0] + base;
    float d;
    if (inner == 1) {
        double dot = 0;
        for (int64_t k = 0; k < len; k++) dot += (double)g[k] * y[k];
        d = (float)dot;
    } else {
        d = 0.f;
        for (int64_t k = 0; k < len; k++) d += g[k * inner] * y[k * inner];
    }
    for (int64_t k = 0; k < len; k++) gx[k * inner] += y[k * inner] * (g[k * inner] - d);
}

#endif /* SAL_TWIN_ELEM_H */
