/* test_zoo.c — small transformer-era models end to end (tests/fixtures/zoo/, written by
 * scripts/make-zoo-models.py with torchvision 0.14's own VisionTransformer and ConvNeXt classes and
 * torch's exporter at opsets 13 and 17, dynamic batch): salient's logits on two images against
 * onnxruntime's, and its input gradient of each image's top-1 logit against torch autograd's (in
 * float64), through the public API on the CPU.
 *
 * Tolerances: LOGIT_TOL 1e-5 of max(1, max |logit|): the same float32 products summed in another
 * order through a dozen layers (onnxruntime vs torch: <= 6.2e-7; salient vs onnxruntime: <= 4.2e-7
 * seen). GRAD_TOL 1e-4 of the largest |gradient| element-wise: these models are smooth (GELU,
 * LayerNorm, softmax: no ReLU kinks to flip), so float32 against float64 differs only by rounding
 * (<= 9.1e-7 seen); a wrong op gradient (a missing term of LayerNorm's, a Gather that drops the
 * class token's) is off by 1e-2 or more. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "io/io.h"
#include "testutil.h"
#include "testproc.h"

#define LOGIT_TOL 1e-5
#define GRAD_TOL 1e-4
enum { N = 2, K = 10, C = 3, HW = 32, IMG = C * HW * HW };

/* tests/fixtures/zoo/STEM.onnx and a CPU session on it. */
static void open_zoo(const char *stem, sal_model **m, sal_session **s) {
    char rel[256], path[1024];
    snprintf(rel, sizeof rel, "tests/fixtures/zoo/%s.onnx", stem);
    tu_src_path(rel, path, sizeof path);
    sal_error err = {0};
    *m = NULL;
    *s = NULL;
    cr_assert_eq(sal_model_load(path, m, &err), SAL_OK, "%s: load: %s", stem, err.msg);
    sal_session_opts o = sal_session_opts_default();
    o.device = SAL_DEVICE_CPU;
    cr_assert_eq(sal_session_create(*m, &o, s, &err), SAL_OK, "%s: session: %s", stem, err.msg);
}

static void check_model(const char *stem) {
    char rel[256];
    sal_model *m = NULL;
    sal_session *s = NULL;
    open_zoo(stem, &m, &s);
    sal_status st;

    float *x = tp_load_npy("tests/fixtures/zoo/input.npy", (int64_t)N * IMG);
    snprintf(rel, sizeof rel, "tests/fixtures/zoo/%s.logits.npy", stem);
    float *ref_logits = tp_load_npy(rel, N * K);
    snprintf(rel, sizeof rel, "tests/fixtures/zoo/%s.grad.npy", stem);
    float *ref_grad = tp_load_npy(rel, (int64_t)N * IMG);

    float logits[N * K], *g = malloc(sizeof(float) * N * IMG);
    int targets[N];
    sal_grad_opts go = sal_grad_opts_default();
    sal_grad_out out = {0};
    out.logits = logits;
    out.input_grad = g;
    out.targets_out = targets;
    st = sal_gradient(s, x, N, HW, HW, &go, &out);
    cr_assert_eq(st, SAL_OK, "%s: gradient: %s", stem, sal_session_error(s));

    float fwd[N * K];
    st = sal_forward(s, x, N, HW, HW, fwd);
    cr_assert_eq(st, SAL_OK, "%s: forward: %s", stem, sal_session_error(s));
    double le = tu_rel_diff(fwd, ref_logits, N * K, 1.0), le2 = tu_rel_diff(logits, ref_logits, N * K, 1.0);
    for (int i = 0; i < N; i++) {
        const float *gi = g + (size_t)i * IMG, *ri = ref_grad + (size_t)i * IMG;
        double ge = tu_rel_diff(gi, ri, IMG, 1e-12);
        cr_log_info("%s image %d: target %d, logits rel err %.3g, gradient rel err %.3g", stem, i,
                    targets[i], le, ge);
        cr_expect(ge < GRAD_TOL, "%s image %d: input gradient differs from torch's by %.3g of its "
                  "largest element (>= %g)", stem, i, ge, GRAD_TOL);
    }
    cr_expect(le < LOGIT_TOL && le2 < LOGIT_TOL, "%s: logits differ from onnxruntime's by %.3g "
              "(forward) / %.3g (gradient pass)", stem, le, le2);
    free(x); free(ref_logits); free(ref_grad); free(g);
    sal_session_free(s);
    sal_model_free(m);
}

Test(zoo, vit_opset13) { check_model("vit_op13"); }
Test(zoo, vit_opset17) { check_model("vit_op17"); }
Test(zoo, convnext_opset13) { check_model("convnext_op13"); }
Test(zoo, convnext_opset17) { check_model("convnext_op17"); }
Test(zoo, swin_opset13) { check_model("swin_op13"); }
Test(zoo, swin_opset17) { check_model("swin_op17"); }
Test(zoo, shufflenet_opset13) { check_model("shufflenet_op13"); }

/* The same models on the GPU (CUDA backend against the same references); skipped without one. */
static void check_model_cuda(const char *stem) {
    sal_backend *b = NULL;
    sal_error err = {0};
    if (sal_backend_cuda_create(&b, &err)) cr_skip_test("no usable GPU: %s", err.msg);
    b->ops->destroy(b);
    char rel[256], path[1024];
    snprintf(rel, sizeof rel, "tests/fixtures/zoo/%s.onnx", stem);
    tu_src_path(rel, path, sizeof path);
    sal_model *m = NULL;
    cr_assert_eq(sal_model_load(path, &m, &err), SAL_OK, "%s: load: %s", stem, err.msg);
    sal_session_opts o = sal_session_opts_default();
    o.device = SAL_DEVICE_CUDA;
    sal_session *s = NULL;
    cr_assert_eq(sal_session_create(m, &o, &s, &err), SAL_OK, "%s: cuda session: %s", stem, err.msg);
    float *x = tp_load_npy("tests/fixtures/zoo/input.npy", (int64_t)N * IMG);
    snprintf(rel, sizeof rel, "tests/fixtures/zoo/%s.logits.npy", stem);
    float *ref_logits = tp_load_npy(rel, N * K);
    snprintf(rel, sizeof rel, "tests/fixtures/zoo/%s.grad.npy", stem);
    float *ref_grad = tp_load_npy(rel, (int64_t)N * IMG);
    float logits[N * K], *g = malloc(sizeof(float) * N * IMG);
    sal_grad_opts go = sal_grad_opts_default();
    sal_grad_out out = {0};
    out.logits = logits;
    out.input_grad = g;
    cr_assert_eq(sal_gradient(s, x, N, HW, HW, &go, &out), SAL_OK, "%s: cuda gradient: %s", stem,
                 sal_session_error(s));
    double le = tu_rel_diff(logits, ref_logits, N * K, 1.0), ge = tu_rel_diff(g, ref_grad, (int64_t)N * IMG, 1e-12);
    cr_log_info("%s on CUDA: logits rel err %.3g, gradient rel err %.3g", stem, le, ge);
    /* cuDNN/cuBLAS sum in other orders than the CPU: 10x the CPU's tolerances */
    cr_expect(le < 10 * LOGIT_TOL, "%s on CUDA: logits differ from onnxruntime's by %.3g", stem, le);
    cr_expect(ge < 10 * GRAD_TOL, "%s on CUDA: gradient differs from torch's by %.3g", stem, ge);
    free(x); free(ref_logits); free(ref_grad); free(g);
    sal_session_free(s);
    sal_model_free(m);
}

Test(zoo_cuda, every_model) {
    static const char *stems[] = {"vit_op13", "vit_op17", "convnext_op13", "convnext_op17", "swin_op13",
                                  "swin_op17", "shufflenet_op13"};
    for (size_t i = 0; i < sizeof stems / sizeof stems[0]; i++) check_model_cuda(stems[i]);
}

/* ------------------------------------------------------------------------------------------------ */
/* The methods end to end on the small transformers and ConvNeXt, checked by their own properties: */
/* IG's completeness (the sum of the attributions is f(x) - f(0)), KernelSHAP's efficiency (the     */
/* same for its feature values), SmoothGrad with no noise being the plain gradient, incremental     */
/* occlusion equal to full passes, and RISE's map finite and not constant.                          */

static void explain_one(sal_session *s, sal_explain_opts *o, const float *x, const int *t, sal_maps *out,
                        const char *stem) {
    cr_assert_eq(sal_explain(s, o, x, N, HW, HW, t, out), SAL_OK, "%s %s: %s", stem, sal_method_name(o->method),
                 sal_session_error(s));
}

static void check_methods(const char *stem) {
    sal_model *m = NULL;
    sal_session *s = NULL;
    open_zoo(stem, &m, &s);
    float *x = tp_load_npy("tests/fixtures/zoo/input.npy", (int64_t)N * IMG);
    int t[N] = {3, 7};   /* not the top class: a target that is not the easy one */

    sal_explain_opts o = sal_explain_opts_default(SAL_M_IG);
    o.ig_steps = 128;
    sal_maps ig;
    explain_one(s, &o, x, t, &ig, stem);
    for (int i = 0; i < N; i++) {
        double gap = ig.completeness[i], d = fabs(ig.delta[i]);
        cr_log_info("%s IG image %d: gap %.3g of delta %.3g", stem, i, gap, ig.delta[i]);
        cr_expect(gap <= 0.01 * d + 1e-4, "%s IG image %d: |sum - (f(x) - f(0))| = %.3g, over 1%% of %.3g", stem,
                  i, gap, d);
    }
    sal_maps_free(&ig);

    o = sal_explain_opts_default(SAL_M_KERNELSHAP);
    o.kshap_coalitions = 200;
    o.kshap_grid = 4;
    sal_maps ks;
    explain_one(s, &o, x, t, &ks, stem);
    for (int i = 0; i < N; i++)
        cr_expect(ks.completeness[i] <= 1e-3 * fabs(ks.delta[i]) + 1e-5, "%s KernelSHAP image %d: efficiency "
                  "gap %.3g of %.3g", stem, i, ks.completeness[i], ks.delta[i]);
    sal_maps_free(&ks);

    o = sal_explain_opts_default(SAL_M_SMOOTHGRAD);
    o.nt_samples = 4;
    o.nt_sigma = 0.f;
    sal_maps sg, sal;
    explain_one(s, &o, x, t, &sg, stem);
    o = sal_explain_opts_default(SAL_M_SALIENCY);
    explain_one(s, &o, x, t, &sal, stem);
    double e = tu_rel_diff(sg.attr, sal.attr, N * sal_maps_per_image(&sal), 1e-12);
    cr_expect(e <= 1e-6, "%s: SmoothGrad without noise differs from the gradient by %.3g", stem, e);
    sal_maps_free(&sg);
    sal_maps_free(&sal);

    o = sal_explain_opts_default(SAL_M_OCCLUSION);
    o.occ_h = o.occ_w = 8;
    o.occ_stride_h = o.occ_stride_w = 4;
    sal_maps inc, full;
    explain_one(s, &o, x, t, &inc, stem);
    o.occ_full = 1;
    explain_one(s, &o, x, t, &full, stem);
    e = tu_rel_diff(inc.attr, full.attr, N * sal_maps_per_image(&full), 1e-12);
    cr_expect(e <= 1e-5, "%s: incremental occlusion differs from full passes by %.3g", stem, e);
    sal_maps_free(&inc);
    sal_maps_free(&full);

    o = sal_explain_opts_default(SAL_M_RISE);
    o.rise_masks = 200;
    sal_maps r;
    explain_one(s, &o, x, t, &r, stem);
    int64_t per = sal_maps_per_image(&r);
    for (int i = 0; i < N; i++) {
        const float *a = r.attr + (size_t)i * (size_t)per;
        float lo = a[0], hi = a[0];
        int finite = 1;
        for (int64_t k = 0; k < per; k++) {
            finite &= isfinite(a[k]);
            if (a[k] < lo) lo = a[k];
            if (a[k] > hi) hi = a[k];
        }
        cr_expect(finite && hi > lo, "%s RISE image %d: map finite and not constant (%g..%g)", stem, i, lo, hi);
    }
    sal_maps_free(&r);
    free(x);
    sal_session_free(s);
    sal_model_free(m);
}

Test(zoo_methods, vit, .timeout = 900) { check_methods("vit_op17"); }
Test(zoo_methods, swin, .timeout = 900) { check_methods("swin_op17"); }
Test(zoo_methods, convnext, .timeout = 900) { check_methods("convnext_op17"); }
