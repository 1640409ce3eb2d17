/* test_model.c — the real model: EfficientNet-Lite0 (models/efficientnet_lite0.onnx, made by
 * scripts/fetch-models) through the public API.
 *
 *  - structure: 143 ONNX nodes, 49 BatchNorms folded into their convolutions, layer names;
 *  - logits of the 7 sample photos (samples-npy/<stem>.npy) in one batch against onnxruntime's
 *    (tests/fixtures/effnet_lite0_ref.txt): max |diff| <= LOGIT_TOL * max(1, max|ref|) per photo,
 *    and the same top-1 class; the cat photo (chelsea) lands in ImageNet's cats 281..285;
 *  - input gradients (batch 2): finite, non-zero, and matching finite differences of the target
 *    logit (accumulated in double) along coordinate directions and along random directions;
 *  - batch independence: photo i's logits and gradient in a batch of 7 equal those of a batch of 1;
 *  - capture of layer 'head.conv' (by name), with the backward stopped there: shape
 *    (n,1280,7,7) and a gradient that equals the closed form W_fc[t,c] / 49 * (0 < act < 6)
 *    (head.conv -> ReLU6 -> global average pool -> Gemm).
 * Without the model every test is skipped with a message saying to run scripts/fetch-models.
 *
 * Tolerances (why):
 *  - LOGIT_TOL 1e-3: onnxruntime and salient sum the same float32 products in different orders
 *    through 49 convolutions; observed differences are <= 3.5e-5 absolute (logits up to 11.4),
 *    the fixture prints 6 significant digits, so 1e-3 is loose yet catches any wrong padding,
 *    fold or activation (those move logits by 1e-1 or more).
 *  - Finite differences: the model is piecewise linear with millions of ReLU6 kinks and
 *    BN-folded depthwise weights, and it is far from linear even at small scales: along a random
 *    direction of unit RMS, a step of 1e-2 per element (about one grey level) gives a difference
 *    quotient unrelated to the gradient (it even has the other sign), and only for steps
 *    <= 1e-4 does it converge to g.d. (Checked by hand: the quotient tends to g.d as the step
 *    shrinks, both along random directions and along single pixels, so the gradient is right and
 *    the step was the problem.) Hence:
 *      * coordinate directions: NCOORD elements among the NTOP largest |g|, step 3e-4 (the best
 *        compromise between kinks and float32 rounding of the logits), sum|g - fd| / sum|g| <
 *        DIRDERIV_TOL = 5e-2 (observed 0.3%..2%);
 *      * random directions (uniform per element), step 3e-5, 8 directions per photo evaluated in
 *        one batch; the float32 logit changes are ~1e-4 so rounding costs a few percent per
 *        direction: sum|df - dd| / sum|df| over all 16 < RANDDIR_TOL = 1e-1 (observed 1%..6%).
 *    A wrong gradient (scale, sign, position, a missing path) is off by far more.
 *  - BATCH_TOL 1e-4 relative to the largest element: the kernels should not depend on the batch
 *    (observed: gradients bit-identical, logits within 1.5e-6).
 * No test here sets Criterion's .timeout: with --jobs 2 (as ctest runs it) Criterion 2.4.1 then
 * leaks 48 bytes per test in the runner, which LeakSanitizer turns into a failing exit status.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "io/io.h"
#include "model/graph.h"
#include "testutil.h"

#define MODEL_REL "models/efficientnet_lite0.onnx"
#define FIXTURE_REL "tests/fixtures/effnet_lite0_ref.txt"
#define NPHOTOS 7
#define K 1000
#define C 3
#define HW 224
#define IMG (C * HW * HW)

#define LOGIT_TOL 1e-3
#define DIRDERIV_TOL 5e-2
#define RANDDIR_TOL 1e-1
#define BATCH_TOL 1e-4

/* ------------------------------------------------------------------------------------------------ */
/* Fixtures                                                                                         */

typedef struct ref_photo {
    char stem[64];
    int top1;
    float logits[K];
} ref_photo;

static sal_model *load_model(void) {
    char path[1024];
    tu_src_path(MODEL_REL, path, sizeof path);
    struct stat sb;
    if (stat(path, &sb) != 0)
        cr_skip_test("%s is missing: run scripts/fetch-models to download the model and make the samples",
                     path);
    sal_model *m = NULL;
    sal_error err = {0};
    sal_status st = sal_model_load(path, &m, &err);
    cr_assert_eq(st, SAL_OK, "loading %s: %s: %s", path, sal_status_str(st), err.msg);
    return m;
}

static sal_session *cpu_session(const sal_model *m) {
    sal_session_opts o = sal_session_opts_default();
    o.device = SAL_DEVICE_CPU;
    sal_session *s = NULL;
    sal_error err = {0};
    sal_status st = sal_session_create(m, &o, &s, &err);
    cr_assert_eq(st, SAL_OK, "session: %s", err.msg);
    return s;
}

/* Parse the reference file: '#' lines are comments, then "<stem> <top1> <1000 logits>". */
static int load_refs(ref_photo *refs, int max) {
    char path[1024];
    tu_src_path(FIXTURE_REL, path, sizeof path);
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "cannot open %s", path);
    int n = 0;
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) > 0) {
        if (line[0] == '#' || line[0] == '\n') continue;
        cr_assert_lt(n, max, "%s: more than %d photos", path, max);
        ref_photo *r = &refs[n];
        char *p = line, *end;
        int used = 0;
        cr_assert_eq(sscanf(p, "%63s %d%n", r->stem, &r->top1, &used), 2, "%s: bad line %d", path, n + 1);
        p += used;
        for (int k = 0; k < K; k++) {
            r->logits[k] = strtof(p, &end);
            cr_assert(end != p, "%s: photo %s has only %d logits", path, r->stem, k);
            p = end;
        }
        n++;
    }
    free(line);
    fclose(f);
    return n;
}

/* The preprocessed photo samples-npy/<stem>.npy, (3,224,224), copied into dst. */
static void load_photo(const char *stem, float *dst) {
    char rel[256], path[1024];
    snprintf(rel, sizeof rel, "samples-npy/%s.npy", stem);
    tu_src_path(rel, path, sizeof path);
    float *data = NULL;
    int ndim = 0;
    int64_t dims[SAL_MAX_DIMS];
    sal_error err = {0};
    sal_status st = sal_npy_read(path, &data, &ndim, dims, &err);
    if (st == SAL_ERR_IO)
        cr_skip_test("%s is missing: run scripts/fetch-models", path);
    cr_assert_eq(st, SAL_OK, "%s: %s", path, err.msg);
    cr_assert(ndim == 3 && dims[0] == C && dims[1] == HW && dims[2] == HW,
              "%s: expected shape (3,224,224)", path);
    memcpy(dst, data, sizeof(float) * IMG);
    free(data);
}

static int argmax(const float *v, int n) {
    int a = 0;
    for (int i = 1; i < n; i++)
        if (v[i] > v[a]) a = i;
    return a;
}

static double max_abs(const float *v, int64_t n) {
    double m = 0;
    for (int64_t i = 0; i < n; i++) m = fmax(m, fabs(v[i]));
    return m;
}

static double max_abs_diff(const float *a, const float *b, int64_t n, int64_t *at) {
    double m = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (!(d <= m)) { m = d; if (at) *at = i; }   /* NaN counts as worst */
    }
    return m;
}

/* ------------------------------------------------------------------------------------------------ */
/* Structure                                                                                        */

Test(model, structure_folding_and_layer_names) {
    sal_model *m = load_model();
    int consts = -1, bns = -1;
    sal_model_fold_stats(m, &consts, &bns);
    cr_expect_eq(bns, 49, "BatchNorms folded: %d, expected 49", bns);
    cr_expect_geq(consts, 0);
    /* 143 nodes in the file, 49 BatchNorms gone */
    int nl = sal_model_num_layers(m);
    cr_expect_eq(nl, 143 - 49, "layers after folding: %d, expected 94", nl);
    cr_expect_eq(sal_model_num_inputs(m), 1);
    cr_expect_eq(sal_model_num_outputs(m), 1);
    sal_tensor_info in, out;
    sal_model_input(m, 0, &in);
    sal_model_output(m, 0, &out);
    cr_expect_str_eq(in.name, "input");
    cr_expect(in.ndim == 4 && in.dims[1] == 3 && in.dims[2] == 224 && in.dims[3] == 224,
              "input shape (%d dims) should be (N,3,224,224)", in.ndim);
    cr_expect_str_eq(out.name, "logits");
    cr_expect(out.ndim == 2 && out.dims[1] == K);
    int convs = 0, clips = 0, head_conv = -1, bn_left = 0;
    for (int i = 0; i < nl; i++) {
        sal_layer_info li;
        sal_model_layer(m, i, &li);
        cr_assert(li.name && *li.name && li.op_type && li.output, "layer %d has no name", i);
        convs += strcmp(li.op_type, "Conv") == 0;
        clips += strcmp(li.op_type, "Clip") == 0;
        bn_left += strcmp(li.op_type, "BatchNormalization") == 0;
        if (strcmp(li.name, "head.conv") == 0) head_conv = i;
        for (int j = 0; j < i; j++) {
            sal_layer_info lj;
            sal_model_layer(m, j, &lj);
            cr_expect_str_neq(li.name, lj.name, "layers %d and %d share the name '%s'", j, i, li.name);
        }
    }
    cr_expect_eq(convs, 49);
    cr_expect_eq(clips, 33);
    cr_expect_eq(bn_left, 0);
    cr_assert_geq(head_conv, 0, "no layer named 'head.conv'");
    sal_layer_info hc;
    sal_model_layer(m, head_conv, &hc);
    cr_expect_str_eq(hc.op_type, "Conv");
    /* its output is now the folded BatchNorm's */
    cr_expect_str_eq(hc.output, "head.bn");
    sal_layer_info none;
    sal_model_layer(m, nl, &none);
    cr_expect_null(none.name, "a layer index past the end should give an empty info");
    sal_model_free(m);
}

/* ------------------------------------------------------------------------------------------------ */
/* Logits against onnxruntime                                                                       */

Test(model, logits_match_onnxruntime_for_seven_photos) {
    sal_model *m = load_model();
    ref_photo *refs = malloc(sizeof(ref_photo) * NPHOTOS);
    int n = load_refs(refs, NPHOTOS);
    cr_assert_eq(n, NPHOTOS, "the fixture lists %d photos, expected %d", n, NPHOTOS);
    float *x = malloc(sizeof(float) * (size_t)n * IMG), *logits = malloc(sizeof(float) * (size_t)n * K);
    for (int i = 0; i < n; i++) load_photo(refs[i].stem, x + (size_t)i * IMG);
    sal_session *s = cpu_session(m);
    sal_status st = sal_forward(s, x, n, HW, HW, logits);
    cr_assert_eq(st, SAL_OK, "forward: %s", sal_session_error(s));
    cr_expect_eq(sal_session_num_classes(s), K);
    int chelsea = -1;
    for (int i = 0; i < n; i++) {
        const float *got = logits + (size_t)i * K;
        int64_t at = 0;
        double diff = max_abs_diff(got, refs[i].logits, K, &at);
        double scale = fmax(1.0, max_abs(refs[i].logits, K));
        int top = argmax(got, K);
        cr_log_info("%-10s top-1 %3d (ref %3d), max |logit - onnxruntime| = %.3g (max |ref| %.3g)",
                    refs[i].stem, top, refs[i].top1, diff, scale);
        cr_expect(diff <= LOGIT_TOL * scale, "%s: logit %lld is %.6g, onnxruntime says %.6g "
                  "(max abs diff %.3g > %.1g * %.3g)", refs[i].stem, (long long)at, got[at],
                  refs[i].logits[at], diff, LOGIT_TOL, scale);
        cr_expect_eq(top, refs[i].top1, "%s: top-1 %d, onnxruntime says %d", refs[i].stem, top,
                     refs[i].top1);
        if (strcmp(refs[i].stem, "chelsea") == 0) chelsea = i;
    }
    cr_assert_geq(chelsea, 0, "the fixture has no 'chelsea' photo");
    int cat = argmax(logits + (size_t)chelsea * K, K);
    cr_expect(cat >= 281 && cat <= 285, "chelsea (a cat) is class %d, not one of ImageNet's cats 281..285", cat);
    sal_session_free(s);
    free(x);
    free(logits);
    free(refs);
    sal_model_free(m);
}

/* ------------------------------------------------------------------------------------------------ */
/* Gradients                                                                                        */

/* Directional derivatives along coordinate directions: for each of two photos, NCOORD input
 * elements drawn at random among the NTOP largest |gradient| ones; both photos are perturbed at
 * once (they are independent in the batch). The finite difference of the target logit (in double)
 * must match the gradient, in aggregate: sum|g - fd| / sum|g| < DIRDERIV_TOL. See the file
 * comment for the choice of step. */
static const float *sort_key;
static int by_abs_desc(const void *a, const void *b) {
    float x = fabsf(sort_key[*(const int *)a]), y = fabsf(sort_key[*(const int *)b]);
    return x < y ? 1 : x > y ? -1 : 0;
}

Test(model, input_gradient_matches_finite_differences) {
    sal_model *m = load_model();
    enum { N = 2, NTOP = 32, NCOORD = 16 };
    static const char *stems[N] = {"chelsea", "dog"};
    uint64_t seed = tu_fresh_seed(), rng = seed;
    float *x = malloc(sizeof(float) * N * IMG), *g = malloc(sizeof(float) * N * IMG);
    int *order = malloc(sizeof(int) * IMG);
    float logits[N * K], lp[N * K], lm[N * K];
    int targets[N], coord[N][NCOORD];
    for (int i = 0; i < N; i++) load_photo(stems[i], x + (size_t)i * IMG);
    sal_session *s = cpu_session(m);
    sal_grad_opts o = sal_grad_opts_default();
    sal_grad_out out = {0};
    out.logits = logits;
    out.input_grad = g;
    out.targets_out = targets;
    sal_status st = sal_gradient(s, x, N, HW, HW, &o, &out);
    cr_assert_eq(st, SAL_OK, "gradient: %s", sal_session_error(s));

    for (int i = 0; i < N; i++) {
        const float *gi = g + (size_t)i * IMG;
        int finite = 1;
        for (int j = 0; j < IMG; j++) finite &= isfinite(gi[j]);
        cr_assert(finite, "%s: the input gradient has non-finite values", stems[i]);
        cr_assert(max_abs(gi, IMG) > 0, "%s: the input gradient is zero", stems[i]);
        cr_expect_eq(targets[i], argmax(logits + i * K, K), "%s: targets_out is not the top-1", stems[i]);
        /* NCOORD distinct picks among the NTOP most salient elements */
        for (int j = 0; j < IMG; j++) order[j] = j;
        sort_key = gi;
        qsort(order, IMG, sizeof *order, by_abs_desc);
        for (int k = 0; k < NCOORD; k++) {
            int pick = k + (int)(tu_next(&rng) % (uint64_t)(NTOP - k));
            int t = order[k]; order[k] = order[pick]; order[pick] = t;
            coord[i][k] = order[k];
        }
    }
    const float eps = 3e-4f;
    double sum_err[N] = {0}, sum_g[N] = {0}, worst[N] = {0};
    for (int k = 0; k < NCOORD; k++) {
        float x0[N], xp[N], xm[N];
        for (int i = 0; i < N; i++) {
            float *xi = &x[(size_t)i * IMG + coord[i][k]];
            x0[i] = *xi;
            xp[i] = x0[i] + eps;
            xm[i] = x0[i] - eps;
            *xi = xp[i];
        }
        cr_assert_eq(sal_forward(s, x, N, HW, HW, lp), SAL_OK, "%s", sal_session_error(s));
        for (int i = 0; i < N; i++) x[(size_t)i * IMG + coord[i][k]] = xm[i];
        cr_assert_eq(sal_forward(s, x, N, HW, HW, lm), SAL_OK, "%s", sal_session_error(s));
        for (int i = 0; i < N; i++) {
            x[(size_t)i * IMG + coord[i][k]] = x0[i];
            int t = targets[i];
            double h = (double)xp[i] - (double)xm[i];   /* the step actually taken in float */
            double fd = ((double)lp[i * K + t] - (double)lm[i * K + t]) / h;
            double gv = g[(size_t)i * IMG + coord[i][k]];
            sum_err[i] += fabs(gv - fd);
            sum_g[i] += fabs(gv);
            worst[i] = fmax(worst[i], fabs(gv - fd) / fabs(gv));
        }
    }
    for (int i = 0; i < N; i++) {
        double rel = sum_err[i] / sum_g[i];
        cr_log_info("%s: class %d, %d coordinates among the %d most salient: aggregate rel err %.3g "
                    "(worst single %.3g), eps %g, seed %llu", stems[i], targets[i], NCOORD, NTOP,
                    rel, worst[i], eps, (unsigned long long)seed);
        cr_expect(rel < DIRDERIV_TOL, "%s: input gradient vs finite differences of logit %d: "
                  "sum|g - fd| / sum|g| = %.3g >= %g over %d coordinates (worst %.3g, eps %g, seed %llu)",
                  stems[i], targets[i], rel, DIRDERIV_TOL, NCOORD, worst[i], eps,
                  (unsigned long long)seed);
    }
    sal_session_free(s);
    free(x); free(g); free(order);
    sal_model_free(m);
}

/* Random directions over the whole photo (uniform noise in [-1,1] per element): the gradient's
 * prediction g.(x+ - x-) of the change of the target logit against the change itself. The model is
 * so kinked that the step must be tiny (3e-5 per element, 1/250 of a grey level; see the file
 * comment), where float32 rounding of the logits costs a few percent per direction, so the check
 * is in aggregate over NDIR directions for each of two photos, evaluated in one batch (+ and -
 * for each): sum|df - dd| / sum|df| < RANDDIR_TOL over all of them. */
Test(model, input_gradient_matches_random_direction_derivatives) {
    sal_model *m = load_model();
    enum { N = 2, NDIR = 8, NB = N * NDIR * 2 };
    static const char *stems[N] = {"coffee", "eagle"};
    uint64_t seed = tu_fresh_seed(), rng = seed;
    float *x = malloc(sizeof(float) * N * IMG), *g = malloc(sizeof(float) * N * IMG);
    float *xb = malloc(sizeof(float) * (size_t)NB * IMG), *lb = malloc(sizeof(float) * (size_t)NB * K);
    float logits[N * K];
    int targets[N];
    double dd[N][NDIR];
    for (int i = 0; i < N; i++) load_photo(stems[i], x + (size_t)i * IMG);
    sal_session *s = cpu_session(m);
    sal_grad_opts o = sal_grad_opts_default();
    sal_grad_out out = {0};
    out.logits = logits;
    out.input_grad = g;
    out.targets_out = targets;
    cr_assert_eq(sal_gradient(s, x, N, HW, HW, &o, &out), SAL_OK, "%s", sal_session_error(s));
    const float eps = 3e-5f;
    for (int i = 0; i < N; i++)
        for (int k = 0; k < NDIR; k++) {
            float *xp = xb + (size_t)((i * NDIR + k) * 2) * IMG, *xm = xp + IMG;
            const float *xi = x + (size_t)i * IMG, *gi = g + (size_t)i * IMG;
            dd[i][k] = 0;
            for (int j = 0; j < IMG; j++) {
                float d = tu_uniform(&rng, -1.f, 1.f);
                xp[j] = xi[j] + eps * d;
                xm[j] = xi[j] - eps * d;
                /* the step actually taken in float, in double */
                dd[i][k] += (double)gi[j] * ((double)xp[j] - (double)xm[j]);
            }
        }
    cr_assert_eq(sal_forward(s, xb, NB, HW, HW, lb), SAL_OK, "%s", sal_session_error(s));
    double se_all = 0, sf_all = 0;
    for (int i = 0; i < N; i++) {
        int t = targets[i];
        double se = 0, sf = 0, worst = 0;
        for (int k = 0; k < NDIR; k++) {
            const float *lp = lb + (size_t)((i * NDIR + k) * 2) * K, *lm = lp + K;
            double df = (double)lp[t] - (double)lm[t];
            se += fabs(df - dd[i][k]);
            sf += fabs(df);
            worst = fmax(worst, fabs(df - dd[i][k]) / fabs(df));
        }
        se_all += se;
        sf_all += sf;
        cr_log_info("%s: class %d, %d random directions: aggregate rel err %.3g (worst single %.3g), "
                    "eps %g, seed %llu", stems[i], t, NDIR, se / fmax(sf, 1e-30), worst, eps,
                    (unsigned long long)seed);
    }
    double rel = se_all / fmax(sf_all, 1e-30);
    cr_log_info("all %d random directions: aggregate rel err %.3g", N * NDIR, rel);
    cr_expect(rel < RANDDIR_TOL, "along %d random directions (%s, %s) the logit changes differ from "
              "the gradient's prediction by %.3g in aggregate (>= %g, eps %g, seed %llu)", N * NDIR,
              stems[0], stems[1], rel, RANDDIR_TOL, eps, (unsigned long long)seed);
    sal_session_free(s);
    free(x); free(g); free(xb); free(lb);
    sal_model_free(m);
}

Test(model, batch_of_seven_equals_seven_batches_of_one) {
    sal_model *m = load_model();
    ref_photo *refs = malloc(sizeof(ref_photo) * NPHOTOS);
    int n = load_refs(refs, NPHOTOS);
    cr_assert_eq(n, NPHOTOS);
    float *x = malloc(sizeof(float) * (size_t)n * IMG), *g = malloc(sizeof(float) * (size_t)n * IMG);
    float *g1 = malloc(sizeof(float) * IMG);
    float *logits = malloc(sizeof(float) * (size_t)n * K), l1[K];
    int targets[NPHOTOS];
    for (int i = 0; i < n; i++) {
        load_photo(refs[i].stem, x + (size_t)i * IMG);
        targets[i] = refs[i].top1;
    }
    sal_session *s = cpu_session(m);
    sal_grad_opts o = sal_grad_opts_default();
    o.targets = targets;
    sal_grad_out out = {0};
    out.logits = logits;
    out.input_grad = g;
    cr_assert_eq(sal_gradient(s, x, n, HW, HW, &o, &out), SAL_OK, "%s", sal_session_error(s));
    for (int i = 0; i < n; i++) {
        sal_grad_out o1 = {0};
        o1.logits = l1;
        o1.input_grad = g1;
        sal_grad_opts oo = o;
        oo.targets = &targets[i];
        cr_assert_eq(sal_gradient(s, x + (size_t)i * IMG, 1, HW, HW, &oo, &o1), SAL_OK, "%s",
                     sal_session_error(s));
        int64_t at = 0;
        double dl = max_abs_diff(logits + (size_t)i * K, l1, K, &at);
        double sl = fmax(1.0, max_abs(l1, K));
        double dg = max_abs_diff(g + (size_t)i * IMG, g1, IMG, &at);
        double sg = max_abs(g1, IMG);
        cr_log_info("%-10s batch 7 vs 1: logits max diff %.3g (scale %.3g), gradient max diff %.3g "
                    "(scale %.3g)", refs[i].stem, dl, sl, dg, sg);
        cr_expect(dl <= BATCH_TOL * sl, "%s: logits differ between batch 7 and batch 1 by %.3g",
                  refs[i].stem, dl);
        cr_expect(sg > 0, "%s: zero gradient", refs[i].stem);
        cr_expect(dg <= BATCH_TOL * sg, "%s: gradient element %lld differs between batch 7 (%.6g) "
                  "and batch 1 (%.6g)", refs[i].stem, (long long)at, g[(size_t)i * IMG + at], g1[at]);
    }
    sal_session_free(s);
    free(x); free(g); free(g1); free(logits); free(refs);
    sal_model_free(m);
}

/* ------------------------------------------------------------------------------------------------ */
/* Layer capture                                                                                    */

Test(model, capture_head_conv_by_name_without_input_gradient) {
    sal_model *m = load_model();
    enum { N = 2, CH = 1280, LH = 7 };
    static const char *stems[N] = {"chelsea", "coffee"};
    float *x = malloc(sizeof(float) * N * IMG);
    float *act = malloc(sizeof(float) * N * CH * LH * LH), *grad = malloc(sizeof(float) * N * CH * LH * LH);
    float *grad_full = malloc(sizeof(float) * N * CH * LH * LH), *gin = malloc(sizeof(float) * N * IMG);
    float logits[N * K];
    int targets[N];
    for (int i = 0; i < N; i++) load_photo(stems[i], x + (size_t)i * IMG);
    sal_session *s = cpu_session(m);

    sal_grad_opts o = sal_grad_opts_default();
    o.layer = "head.conv";
    o.need_input_grad = 0;
    sal_grad_out out = {0};
    out.logits = logits;
    out.layer_act = act;
    out.layer_grad = grad;
    out.targets_out = targets;
    sal_status st = sal_gradient(s, x, N, HW, HW, &o, &out);
    cr_assert_eq(st, SAL_OK, "gradient at head.conv: %s: %s", sal_status_str(st), sal_session_error(s));
    int ndim = 0;
    int64_t dims[SAL_MAX_DIMS];
    st = sal_session_value_shape(s, "head.conv", &ndim, dims);
    cr_assert_eq(st, SAL_OK, "%s", sal_session_error(s));
    cr_expect(ndim == 4 && dims[0] == N && dims[1] == CH && dims[2] == LH && dims[3] == LH,
              "head.conv shape should be (2,1280,7,7), got %d dims (%lld,%lld,...)", ndim,
              (long long)dims[0], (long long)dims[1]);

    /* closed form: logit_t = sum_c W[t,c] * mean_yx relu6(act) + b_t */
    const sal_graph *gr = m->g;
    int wv = sal_graph_find_value(gr, "classifier.weight");
    cr_assert_geq(wv, 0, "no 'classifier.weight' in the model");
    const sal_tensor *W = gr->values[wv].konst;
    cr_assert(W && W->shape.ndim == 2 && W->shape.d[0] == K && W->shape.d[1] == CH);
    const float *w = W->data;
    double worst = 0, scale = 0;
    int64_t passing = 0;
    for (int i = 0; i < N; i++)
        for (int c = 0; c < CH; c++)
            for (int p = 0; p < LH * LH; p++) {
                size_t k = ((size_t)(i * CH + c)) * LH * LH + (size_t)p;
                float a = act[k];
                double want = (a > 0.f && a < 6.f) ? (double)w[(size_t)targets[i] * CH + c] / (LH * LH) : 0.0;
                passing += a > 0.f && a < 6.f;
                scale = fmax(scale, fabs(want));
                worst = fmax(worst, fabs(want - grad[k]));
            }
    cr_expect(passing > 0, "no head.conv unit is inside ReLU6's linear range");
    cr_expect(worst <= 1e-6 * scale, "head.conv gradient differs from W[t,c]/49 * (0<act<6) by %.3g "
              "(scale %.3g)", worst, scale);

    /* the same capture with the full backward pass gives the same gradient */
    o.need_input_grad = 1;
    out.layer_grad = grad_full;
    out.input_grad = gin;
    st = sal_gradient(s, x, N, HW, HW, &o, &out);
    cr_assert_eq(st, SAL_OK, "%s", sal_session_error(s));
    cr_expect(memcmp(grad, grad_full, sizeof(float) * N * CH * LH * LH) == 0,
              "head.conv gradient differs between need_input_grad 0 and 1");
    cr_expect(max_abs(gin, N * IMG) > 0, "no input gradient with need_input_grad = 1");

    /* a layer may also be named by its output value */
    o.layer = "head.relu6";
    o.need_input_grad = 0;
    out.input_grad = NULL;
    out.layer_grad = grad_full;
    st = sal_gradient(s, x, N, HW, HW, &o, &out);
    cr_expect_eq(st, SAL_OK, "capture by value name 'head.relu6': %s", sal_session_error(s));
    sal_session_free(s);
    free(x); free(act); free(grad); free(grad_full); free(gin);
    sal_model_free(m);
}

/* Integrated Gradients' completeness axiom on the real model: sum(attr) = f(x) - f(baseline) up
 * to the quadrature error. EfficientNet-Lite0's ReLU6 kinks make the path integrand jagged, so
 * 50 Gauss-Legendre steps leave gaps of 2-26% on these photos. The reference is Captum's own
 * IntegratedGradients on the same model (tests/fixtures/effnet_lite0_ig_captum.txt, written by
 * scripts/make-ig-reference.py): salient's f(x) - f(0) and its gaps at 50 and 256 steps must be
 * Captum's, and the axiom's consequences hold: the gap shrinks with the step count and is under
 * 5% of |f(x) - f(0)| at 256 steps for every sample photo. */
#define IG_FIXTURE_REL "tests/fixtures/effnet_lite0_ig_captum.txt"
#define IG_GAP_TOL 0.005  /* |salient gap - Captum gap| <= 0.5% of |f(x) - f(0)| (seen: 0.22%) */

typedef struct { char stem[64]; int target; double delta, gap[2]; } ig_ref;

Test(model, ig_completeness_on_sample_photos_matches_captum) {
#ifdef SAL_SANITIZED
    cr_skip_test("2,000 gradient passes of EfficientNet-Lite0: run in the release build, too slow "
                 "under AddressSanitizer");
#endif
    char path[1024];
    tu_src_path(IG_FIXTURE_REL, path, sizeof path);
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "cannot open %s", path);
    ig_ref refs[16];
    int n = 0;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#' || line[0] == '\n') continue;
        cr_assert_lt(n, 16);
        ig_ref *r = &refs[n++];
        cr_assert_eq(sscanf(line, "%63s %d %lf %lf %lf", r->stem, &r->target, &r->delta, &r->gap[0], &r->gap[1]), 5,
                     "%s: bad line %d", path, n);
    }
    fclose(f);
    cr_assert_eq(n, NPHOTOS, "%s lists %d photos, expected %d", path, n, NPHOTOS);

    sal_model *m = load_model();
    sal_session *s = cpu_session(m);
    float *x = malloc(sizeof(float) * IMG);
    for (int i = 0; i < n; i++) {
        load_photo(refs[i].stem, x);
        double rel[2];
        int steps[2] = {50, 256};
        for (int k = 0; k < 2; k++) {
            sal_explain_opts o = sal_explain_opts_default(SAL_M_IG);
            o.ig_steps = steps[k];
            o.batch = 32;
            sal_maps mp;
            sal_status st = sal_explain(s, &o, x, 1, 0, 0, NULL, &mp);
            cr_assert_eq(st, SAL_OK, "%s: %s", refs[i].stem, sal_session_error(s));
            double d = mp.delta[0], gap = mp.completeness[0];
            rel[k] = gap / fabs(d);
            printf("IG completeness %-9s %3d steps: target %d, f(x)-f(0) = %.4f, gap %.4f (%5.2f%%); "
                   "Captum: f(x)-f(0) = %.4f, gap %.4f (%5.2f%%)\n", refs[i].stem, steps[k], mp.targets[0], d,
                   gap, 100 * rel[k], refs[i].delta, refs[i].gap[k], 100 * refs[i].gap[k] / fabs(refs[i].delta));
            cr_expect_eq(mp.targets[0], refs[i].target, "%s: top-1 %d, Captum's %d", refs[i].stem, mp.targets[0],
                         refs[i].target);
            cr_expect_leq(fabs(d - refs[i].delta), 1e-3 * fabs(refs[i].delta), "%s: f(x)-f(0) %.5f, Captum %.5f",
                          refs[i].stem, d, refs[i].delta);
            cr_expect_leq(fabs(gap - refs[i].gap[k]), IG_GAP_TOL * fabs(refs[i].delta),
                          "%s, %d steps: gap %.4f, Captum's %.4f (f(x)-f(0) = %.4f)", refs[i].stem, steps[k], gap,
                          refs[i].gap[k], refs[i].delta);
            sal_maps_free(&mp);
        }
        cr_expect_lt(rel[1], 0.05, "%s: IG completeness gap %.2f%% at 256 steps", refs[i].stem, 100 * rel[1]);
        cr_expect_lt(rel[1], rel[0] + 1e-3, "%s: the gap does not shrink with steps (%.2f%% -> %.2f%%)",
                     refs[i].stem, 100 * rel[0], 100 * rel[1]);
    }
    free(x);
    sal_session_free(s);
    sal_model_free(m);
}
