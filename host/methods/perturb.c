/* perturb.c — the perturbation and Shapley methods: RISE, GradientSHAP and KernelSHAP, written
 * against the session's batched passes (sal_method_pass) and the per-element math and random
 * numbers of kernels/method_elem.h (the same Philox counters on every device, so the same seed
 * gives the same masks, samples and coalitions whatever the internal batch).
 *
 * RISE (Petsiuk, Das, Saenko 2018, "RISE: Randomized Input Sampling for Explanation of Black-box
 * Models", and its reference implementation's generate_masks/forward):
 *   N masks shared by all images of a run (see sal_rise_mask_value for the grid, the upsampling
 *   and the shift); masked input = x * mask on every channel; saliency = sum_k f(x * m_k) m_k /
 *   (N p). The score explained is the target's logit (or probability with explain_prob), where
 *   the reference applies the model's softmax output. The map is per pixel, written to every
 *   channel.
 *
 * GradientSHAP (Lundberg & Lee 2017; Captum's GradientShap = NoiseTunnel(smoothgrad) over
 * InputBaselineXGradient): for each of shap_samples samples, a baseline drawn uniformly from the
 * baselines (shap_baselines, or the two defaults: zeros and the preprocessed black image), the
 * input plus N(0, shap_stdev^2) noise (absolute stdev, as Captum's stdevs), alpha ~ U(0,1); the
 * attribution is the mean of grad f(alpha x_noisy + (1 - alpha) b) * (x_noisy - b).
 *
 * KernelSHAP (Lundberg & Lee 2017; the shap library's KernelExplainer for the exact efficiency
 * constraint, Captum's KernelShap for the sampling and the per-element output):
 *   features: the cells of a kshap_grid x kshap_grid grid (cell size floor(H/g) x floor(W/g), the
 *   last row and column of cells absorb the remainders), or kshap_superpixels > 0 SLIC-like
 *   superpixels (sal_kshap_superpixels below). A feature is "present" with the input's values and
 *   "absent" with the baseline's (baseline: zero, black, blur, uniform or user, as IG's).
 *   Features whose pixels equal the baseline everywhere cannot change f: they get 0 and are left
 *   out of the regression (shap's varying features). Over the M' others, kshap_coalitions
 *   coalitions are drawn from the Shapley kernel (sal_kshap_coalition; weight 1 each). The two
 *   infinite-weight rows (nobody: f(b); everybody: f(x)) are imposed exactly: phi_0 = f(b) and,
 *   eliminating the last feature, phi_last = delta - sum of the others with delta = f(x) - f(b);
 *   the reduced least squares (L rows, M'-1 unknowns) is solved by LAPACK's dgelsd (SVD, minimum
 *   norm where duplicate coalitions leave it rank-deficient). Each pixel gets its feature's phi
 *   on every channel (Captum's feature_mask convention), so sum(phi over FEATURES) = delta:
 *   out->delta = f(x) - f(b) and out->completeness = |sum_j phi_j - delta| (float rounding only).
 */
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "methods.h"
#include "method_elem.h"

/* ------------------------------------------------------------------------------------------------ */
/* Shared helpers                                                                                   */

/* A target repeated nb times. */
static void fill_targets(int *t, int nb, int target) {
    for (int k = 0; k < nb; k++) t[k] = target;
}

/* ------------------------------------------------------------------------------------------------ */
/* RISE                                                                                             */

sal_status sal_explain_rise(sal_method_ctx *cx, const float *x, int n, const int *tg, sal_maps *out) {
    const sal_explain_opts *o = cx->o;
    int N = o->rise_masks, s = o->rise_grid, B = cx->batch;
    float p = o->rise_p;
    if (N < 1 || s < 1 || !(p > 0.0f && p <= 1.0f) || B < 1) return SAL_ERR_INVALID_ARG;
    int64_t per = cx->per, hw = (int64_t)cx->h * cx->w;
    size_t pbytes = sizeof(float) * (size_t)per;
    /* backend: the images, a batch of grids and masks, per-image accumulators, the scores */
    float *dx = sal_dalloc(cx, pbytes * (size_t)n), *dattr = sal_dalloc(cx, pbytes);
    float *dgrid = sal_dalloc(cx, sizeof(float) * (size_t)B * (size_t)(s * s + 2));
    float *dmask = sal_dalloc(cx, sizeof(float) * (size_t)B * (size_t)hw);
    double *dacc = sal_dalloc(cx, sizeof(double) * (size_t)n * (size_t)hw), *dsc = sal_dalloc(cx, sizeof(double) * (size_t)B);
    float *sc = malloc(sizeof(float) * (size_t)B);
    double *scd = malloc(sizeof(double) * (size_t)B);
    int *t1 = malloc(sizeof(int) * (size_t)B);
    sal_status st = SAL_OK;
    if (!dx || !dattr || !dgrid || !dmask || !dacc || !dsc) st = SAL_ERR_NOMEM;
    else if (!sc || !scd || !t1) st = SAL_ERR_NOMEM;
    if (!st) st = sal_dput(cx, dx, x, pbytes * (size_t)n);
    if (!st) st = sal_method_scores(cx, dx, n, tg, out->scores);
    sal_mp_args a = sal_mp_base(cx);
    a.mode = s;
    a.f0 = p;
    sal_prim_io io = {cx, a, SAL_MP_masked, -1};
    io.a.in = dmask;
    sal_dev_io dio = {sal_prim_fill, NULL, &io, NULL};
    for (int m0 = 0, NB = 0; !st && m0 < N; m0 += NB) {
        /* the masks of this batch, once for every image */
        NB = N - m0 < cx->batch ? N - m0 : cx->batch;
        sal_mp_args g = a;
        g.k0 = m0;
        g.out = dgrid;
        st = sal_mp(cx, SAL_MP_rise_grid, (int64_t)NB * (s * s + 2), &g);
        g.in = dgrid;
        g.out = dmask;
        if (!st) st = sal_mp(cx, SAL_MP_rise_mask, (int64_t)NB * hw, &g);
        for (int i = 0; !st && i < n; i++) {
            io.a.x = dx + (int64_t)i * per;
            io.a.kb = m0;
            fill_targets(t1, NB, tg[i]);
            st = sal_method_pass_dev(cx, m0, NB, t1, 0, &dio, sc);
            for (int k = 0; k < NB; k++) scd[k] = sc[k];
            if (!st) st = sal_dput(cx, dsc, scd, sizeof(double) * (size_t)NB);
            sal_mp_args m = a;
            m.in = dmask;
            m.wd = dsc;
            m.acc = dacc + (int64_t)i * hw;
            m.k0 = m.kb = m0;
            m.nb = NB;
            if (!st) st = sal_mp(cx, SAL_MP_mask_acc, hw, &m);
        }
    }
    for (int i = 0; !st && i < n; i++) {
        sal_mp_args f = a;
        f.acc = dacc + (int64_t)i * hw;
        f.d0 = (double)N * p;
        f.out = dattr;
        st = sal_mp(cx, SAL_MP_scaled, per, &f);
        if (!st) st = sal_dget(cx, out->attr + (int64_t)i * per, dattr, pbytes);
    }
    free(sc); free(scd); free(t1);
    sal_dfree(cx, dx); sal_dfree(cx, dattr); sal_dfree(cx, dgrid); sal_dfree(cx, dmask); sal_dfree(cx, dacc); sal_dfree(cx, dsc);
    return st;
}

/* ------------------------------------------------------------------------------------------------ */
/* GradientSHAP                                                                                     */

sal_status sal_explain_gradshap(sal_method_ctx *cx, const float *x, int n, const int *tg, sal_maps *out) {
    const sal_explain_opts *o = cx->o;
    int S = o->shap_samples, B = cx->batch;
    float sd = o->shap_stdev;
    if (S < 1 || !(sd >= 0.0f) || isinf(sd) || B < 1) return SAL_ERR_INVALID_ARG;
    if (o->shap_baselines && o->shap_n_baselines < 1) return SAL_ERR_INVALID_ARG;
    int64_t per = cx->per, hw = (int64_t)cx->h * cx->w;
    size_t pbytes = sizeof(float) * (size_t)per;
    int nbase = o->shap_baselines ? o->shap_n_baselines : 2;
    float *defaults = NULL;   /* (2,C,H,W): zeros, preprocessed black */
    const float *bases = o->shap_baselines;
    float *sc = malloc(sizeof(float) * (size_t)(B > S ? B : S));
    int *t1 = malloc(sizeof(int) * (size_t)(B > S ? B : S));
    float *dx = sal_dalloc(cx, pbytes), *dbases = sal_dalloc(cx, pbytes * (size_t)nbase), *dattr = sal_dalloc(cx, pbytes);
    double *dacc = sal_dalloc(cx, sizeof(double) * (size_t)per);
    sal_status st = SAL_OK;
    if (!dx || !dbases || !dattr || !dacc || !sc || !t1) st = SAL_ERR_NOMEM;
    if (!st && !bases) {
        defaults = calloc(2 * (size_t)per, sizeof(float));
        if (!defaults) st = SAL_ERR_NOMEM;
        for (int64_t j = 0; !st && j < per; j++)
            defaults[per + j] = o->black_value[cx->c == 3 ? j / hw : 0];
        bases = defaults;
    }
    if (!st) st = sal_dput(cx, dbases, bases, pbytes * (size_t)nbase);
    /* gradient points built, and gradient x (noisy input - baseline) gathered, on the backend */
    sal_prim_io io = {cx, sal_mp_base(cx), SAL_MP_gshap_point, SAL_MP_gshap_acc};
    io.a.x = dx;
    io.a.b = dbases;
    io.a.mode = nbase;
    io.a.f0 = sd;
    io.a.acc = dacc;
    sal_dev_io dio = {sal_prim_fill, sal_prim_take, &io, NULL};
    for (int i = 0; !st && i < n; i++) {
        io.a.image = (uint32_t)i;
        fill_targets(t1, B > S ? B : S, tg[i]);
        st = sal_dput(cx, dx, x + (int64_t)i * per, pbytes);
        if (!st) st = sal_method_scores(cx, dx, 1, tg + i, out->scores + i);
        if (!st) st = sal_dzero(cx, dacc, sizeof(double) * (size_t)per);
        if (!st) st = sal_method_passes(cx, S, t1, 0, &dio, sc, 0);
        sal_mp_args f = io.a;
        f.nb = S;
        f.mode = 0;   /* the mean */
        f.out = dattr;
        if (!st) st = sal_mp(cx, SAL_MP_moments_final, per, &f);
        if (!st) st = sal_dget(cx, out->attr + (int64_t)i * per, dattr, pbytes);
    }
    free(defaults); free(sc); free(t1);
    sal_dfree(cx, dx); sal_dfree(cx, dbases); sal_dfree(cx, dattr); sal_dfree(cx, dacc);
    return st;
}

/* ------------------------------------------------------------------------------------------------ */
/* KernelSHAP: features                                                                             */

/* Grid features: cell (gy, gx) of a g x g grid, cells floor(H/g) x floor(W/g), the last row and
 * column absorbing the remainders. labels: (H,W). */
static void grid_labels(int H, int W, int g, int *labels) {
    int chh = H / g, cww = W / g;
    for (int y = 0; y < H; y++)
        for (int xx = 0; xx < W; xx++) {
            int gy = y / chh, gx = xx / cww;
            if (gy > g - 1) gy = g - 1;
            if (gx > g - 1) gx = g - 1;
            labels[y * W + xx] = gy * g + gx;
        }
}

/* SLIC-like superpixels of one image x (C,H,W) (Achanta et al. 2012, simplified):
 *  - about K clusters seeded on a regular ky x kx grid (ky*kx <= K, ky <= H, kx <= W) with
 *    spacing S = sqrt(H*W / (ky*kx)), each seeded with its centre pixel's values;
 *  - 10 k-means iterations on (y, x, values), distance
 *        D = mean_c ((x_c - mu_c) / sigma)^2 + ((y - cy)^2 + (x - cx)^2) / S^2
 *    with sigma the image's standard deviation over all its values (so one standard deviation
 *    of colour weighs as much as one grid step), each pixel comparing only the centres within
 *    2S of it on both axes (SLIC's window; every pixel has its own seed within S), empty
 *    clusters keeping their centre;
 *  - no connectivity enforcement (a label may hold a few disconnected pieces: Shapley values are
 *    well defined for any partition); labels renumbered 0..M-1 in raster order of first
 *    appearance, dropping empty clusters.
 * labels: (H,W); *m: number of superpixels M (1 <= M <= K). Deterministic. */
sal_status sal_kshap_superpixels(const float *x, int C, int H, int W, int K, int *labels, int *m) {
    if (K < 1 || C < 1 || H < 1 || W < 1) return SAL_ERR_INVALID_ARG;
    int64_t hw = (int64_t)H * W;
    int ky = (int)floor(sqrt((double)K * H / W));
    if (ky < 1) ky = 1;
    if (ky > H) ky = H;
    if (ky > K) ky = K;
    int kx = K / ky;
    if (kx > W) kx = W;
    if (kx < 1) kx = 1;
    int nk = ky * kx, D = 2 + C;
    double S = sqrt((double)hw / nk);
    double *cen = malloc(sizeof(double) * (size_t)nk * (size_t)D);  /* (nk, y x c...) */
    double *sum = malloc(sizeof(double) * (size_t)nk * (size_t)D);
    int64_t *cnt = malloc(sizeof(int64_t) * (size_t)nk);
    int *remap = malloc(sizeof(int) * (size_t)nk);
    if (!cen || !sum || !cnt || !remap) { free(cen); free(sum); free(cnt); free(remap); return SAL_ERR_NOMEM; }
    double mean = 0, var = 0;
    for (int64_t j = 0; j < (int64_t)C * hw; j++) mean += x[j];
    mean /= (double)C * hw;
    for (int64_t j = 0; j < (int64_t)C * hw; j++) var += (x[j] - mean) * (x[j] - mean);
    var /= (double)C * hw;
    double inv_var = var > 1e-20 ? 1.0 / var : 1.0, inv_s2 = 1.0 / (S * S);
    for (int a = 0; a < ky; a++)
        for (int b = 0; b < kx; b++) {
            double *c = cen + (int64_t)(a * kx + b) * D;
            int py = (int)(((double)a + 0.5) * H / ky), px = (int)(((double)b + 0.5) * W / kx);
            c[0] = py;
            c[1] = px;
            for (int q = 0; q < C; q++) c[2 + q] = x[q * hw + (int64_t)py * W + px];
        }
    for (int it = 0; it < 10; it++) {
        memset(sum, 0, sizeof(double) * (size_t)nk * (size_t)D);
        memset(cnt, 0, sizeof(int64_t) * (size_t)nk);
        for (int y = 0; y < H; y++)
            for (int xx = 0; xx < W; xx++) {
                int best = -1;
                double bd = 0;
                for (int k = 0; k < nk; k++) {
                    const double *c = cen + (int64_t)k * D;
                    double dy = y - c[0], dx = xx - c[1];
                    if (fabs(dy) > 2 * S || fabs(dx) > 2 * S) continue;
                    double dc = 0;
                    for (int q = 0; q < C; q++) {
                        double v = x[q * hw + (int64_t)y * W + xx] - c[2 + q];
                        dc += v * v;
                    }
                    double d = dc * inv_var / C + (dy * dy + dx * dx) * inv_s2;
                    if (best < 0 || d < bd) { bd = d; best = k; }
                }
                if (best < 0) {   /* no centre in the window (centres drifted away): nearest one */
                    for (int k = 0; k < nk; k++) {
                        const double *c = cen + (int64_t)k * D;
                        double d = (y - c[0]) * (y - c[0]) + (xx - c[1]) * (xx - c[1]);
                        if (best < 0 || d < bd) { bd = d; best = k; }
                    }
                }
                labels[(int64_t)y * W + xx] = best;
                double *sm = sum + (int64_t)best * D;
                sm[0] += y;
                sm[1] += xx;
                for (int q = 0; q < C; q++) sm[2 + q] += x[q * hw + (int64_t)y * W + xx];
                cnt[best]++;
            }
        for (int k = 0; k < nk; k++)
            if (cnt[k])
                for (int q = 0; q < D; q++) cen[(int64_t)k * D + q] = sum[(int64_t)k * D + q] / (double)cnt[k];
    }
    int M = 0;
    for (int k = 0; k < nk; k++) remap[k] = -1;
    for (int64_t j = 0; j < hw; j++) {
        if (remap[labels[j]] < 0) remap[labels[j]] = M++;
        labels[j] = remap[labels[j]];
    }
    *m = M;
    free(cen); free(sum); free(cnt); free(remap);
    return SAL_OK;
}


/* ------------------------------------------------------------------------------------------------ */
/* KernelSHAP                                                                                       */

sal_status sal_explain_kernelshap(sal_method_ctx *cx, const float *x, int n, const int *tg, sal_maps *out) {
    const sal_explain_opts *o = cx->o;
    int C = cx->c, H = cx->h, W = cx->w, B = cx->batch, L = o->kshap_coalitions;
    int g = o->kshap_grid, K = o->kshap_superpixels;
    int64_t per = cx->per, hw = (int64_t)H * W;
    if (B < 1 || L < 1 || K < 0 || (K == 0 && (g < 1 || g > H || g > W))) return SAL_ERR_INVALID_ARG;
    int Mmax = K > 0 ? K : g * g;   /* superpixels: M <= K */
    if (L < Mmax) return SAL_ERR_INVALID_ARG;
    int *labels = malloc(sizeof(int) * (size_t)hw);          /* (H,W) feature of each pixel */
    float *base = malloc(sizeof(float) * (size_t)per);       /* (C,H,W) */
    float *zf = malloc(sizeof(float) * (size_t)B * (size_t)Mmax);   /* (B, M) presence of a batch */
    /* backend: the image, its baseline, the labels and a batch's presence; batches built there */
    size_t pbytes = sizeof(float) * (size_t)per;
    float *dx = sal_dalloc(cx, pbytes), *db = sal_dalloc(cx, pbytes);
    float *dz = sal_dalloc(cx, sizeof(float) * (size_t)B * (size_t)Mmax);
    int *dlab = sal_dalloc(cx, sizeof(int) * (size_t)hw);
    float *fz = malloc(sizeof(float) * (size_t)L);           /* (L) f of each coalition */
    unsigned char *z = malloc((size_t)L * (size_t)Mmax);     /* (L, M') coalitions */
    int *perm = malloc(sizeof(int) * (size_t)Mmax);
    int *vidx = malloc(sizeof(int) * (size_t)Mmax);          /* feature -> varying index or -1 */
    int *vfeat = malloc(sizeof(int) * (size_t)Mmax);         /* varying index -> feature */
    double *phi = malloc(sizeof(double) * (size_t)Mmax);
    double *A = malloc(sizeof(double) * (size_t)L * (size_t)Mmax);   /* (L, M'-1) row-major */
    double *rhs = malloc(sizeof(double) * (size_t)(L > Mmax ? L : Mmax));
    double *sv = malloc(sizeof(double) * (size_t)Mmax);
    float sc2[2];
    int t2[2];
    int *t1 = malloc(sizeof(int) * (size_t)B);
    out->delta = calloc((size_t)n, sizeof(float));
    out->completeness = calloc((size_t)n, sizeof(float));
    sal_status st = labels && base && zf && fz && z && perm && vidx && vfeat && phi && A && rhs && sv &&
                    t1 && out->delta && out->completeness && dx && db && dz && dlab ? SAL_OK : SAL_ERR_NOMEM;
    int M = g * g;
    if (!st && K == 0) grid_labels(H, W, g, labels);
    if (!st && K == 0) st = sal_dput(cx, dlab, labels, sizeof(int) * (size_t)hw);
    sal_prim_io io = {cx, sal_mp_base(cx), SAL_MP_pair, -1};
    io.a.x = dx;
    io.a.b = db;
    io.a.wf = dz;
    io.a.lab = dlab;
    sal_dev_io dio = {sal_prim_fill, NULL, &io, NULL};
    for (int i = 0; !st && i < n; i++) {
        const float *xi = x + (int64_t)i * per;
        if (K > 0) st = sal_kshap_superpixels(xi, C, H, W, K, labels, &M);
        if (!st && K > 0) st = sal_dput(cx, dlab, labels, sizeof(int) * (size_t)hw);
        if (!st) st = sal_method_baseline(cx, xi, i, base);   /* absent features: the baseline */
        if (!st) st = sal_dput(cx, dx, xi, pbytes);
        if (!st) st = sal_dput(cx, db, base, pbytes);
        if (st) break;
        /* f(x) and f(baseline) */
        t2[0] = t2[1] = tg[i];
        io.fill_fn = SAL_MP_pair;
        st = sal_method_passes(cx, 2, t2, 0, &dio, sc2, 1);
        if (st) break;
        double fx = sc2[0], fb = sc2[1], delta = fx - fb;
        out->scores[i] = sc2[0];
        out->delta[i] = (float)delta;
        /* varying features: some pixel differs from the baseline */
        for (int j = 0; j < M; j++) vidx[j] = -1;
        for (int c = 0; c < C; c++)
            for (int64_t j = 0; j < hw; j++)
                if (xi[c * hw + j] != base[c * hw + j]) vidx[labels[j]] = 0;
        int Mv = 0;
        for (int j = 0; j < M; j++) {
            phi[j] = 0;
            if (vidx[j] >= 0) { vidx[j] = Mv; vfeat[Mv++] = j; }
        }
        if (Mv == 1) phi[vfeat[0]] = delta;
        if (Mv < 2) st = sal_method_progress(cx, L, 0);   /* no coalition to evaluate */
        if (st) break;
        if (Mv >= 2) {
            /* coalitions over the varying features, evaluated in batches */
            for (int l = 0; l < L; l++)
                sal_kshap_coalition(o->seed, (uint32_t)i, (uint32_t)l, Mv, perm, z + (int64_t)l * Mv);
            fill_targets(t1, B, tg[i]);
            io.fill_fn = SAL_MP_kshap_batch;
            io.a.mode = M;
            for (int l0 = 0, nb = 0; !st && l0 < L; l0 += nb) {
                nb = L - l0 < cx->batch ? L - l0 : cx->batch;
                /* each feature's presence in the batch's coalitions (non-varying features are
                 * present: x == baseline there anyway) */
                for (int k = 0; k < nb; k++) {
                    const unsigned char *zl = z + (int64_t)(l0 + k) * Mv;
                    for (int f = 0; f < M; f++) zf[(int64_t)k * M + f] = vidx[f] < 0 || zl[vidx[f]] ? 1.0f : 0.0f;
                }
                io.a.kb = l0;
                st = sal_dput(cx, dz, zf, sizeof(float) * (size_t)nb * (size_t)M);
                if (!st) st = sal_method_pass_dev(cx, l0, nb, t1, 0, &dio, fz + l0);
            }
            if (st) break;
            /* reduced least squares: y_l - z_l,last * delta = sum_{j<last} (z_lj - z_l,last) phi_j */
            int nu = Mv - 1;
            for (int l = 0; l < L; l++) {
                const unsigned char *zl = z + (int64_t)l * Mv;
                double zlast = zl[nu];
                for (int j = 0; j < nu; j++) A[(int64_t)l * nu + j] = (double)zl[j] - zlast;
                rhs[l] = ((double)fz[l] - fb) - zlast * delta;
            }
            lapack_int rank = 0;
            lapack_int info = LAPACKE_dgelsd(LAPACK_ROW_MAJOR, L, nu, 1, A, nu, rhs, 1, sv, 1e-10, &rank);
            if (info != 0) { st = info < 0 ? SAL_ERR_INTERNAL : SAL_ERR_INVALID_ARG; break; }
            double rest = 0;
            for (int j = 0; j < nu; j++) { phi[vfeat[j]] = rhs[j]; rest += rhs[j]; }
            phi[vfeat[nu]] = delta - rest;
        }
        double total = 0;
        for (int j = 0; j < M; j++) total += phi[j];
        out->completeness[i] = (float)fabs(total - delta);
        for (int c = 0; c < C; c++)
            for (int64_t j = 0; j < hw; j++) out->attr[(int64_t)i * per + c * hw + j] = (float)phi[labels[j]];
    }
    sal_dfree(cx, dx); sal_dfree(cx, db); sal_dfree(cx, dz); sal_dfree(cx, dlab);
    free(labels); free(base); free(zf); free(fz); free(z); free(perm); free(vidx); free(vfeat);
    free(phi); free(A); free(rhs); free(sv); free(t1);
    return st;
}
