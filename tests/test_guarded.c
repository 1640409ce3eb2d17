/* test_guarded.c — the GPU's rules on a machine without one: every method, with logits and with
 * probabilities, and the post-processing run on the guarded CPU backend (backend/cpu/cpu_guard.c:
 * weights uploaded as on a GPU, and every backend byte unreadable to the host outside the
 * backend's own operations, so a host access to device memory faults here instead of crashing
 * on a GPU), and must give the maps of the plain CPU session. */
#include <criterion/criterion.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/io.h"
#include "methods/methods.h"
#include "post/post.h"
#include "testutil.h"

static sal_model *model;
static sal_session *plain, *guarded;
static float *input;   /* (2,3,32,32) */

static void load(void) {
    char path[1024];
    sal_error err = {0};
    cr_assert_eq(tu_open("tests/fixtures/methods/tinycnn.onnx", SAL_DEVICE_CPU, &model, &plain, &err), SAL_OK, "%s", err.msg);
    sal_backend *b = NULL;
    cr_assert_eq(sal_backend_cpu_guarded_create(0, &b, &err), SAL_OK, "%s", err.msg);
    cr_assert_eq(sal_session_create_on(model, b, NULL, &guarded, &err), SAL_OK, "%s", err.msg);
    int nd;
    int64_t d[SAL_MAX_DIMS];
    cr_assert_eq(sal_npy_read(tu_src_path("tests/fixtures/methods/input.npy", path, sizeof path), &input, &nd, d, &err),
                 SAL_OK, "%s", err.msg);
}

static void unload(void) {
    sal_session_free(plain);
    sal_session_free(guarded);
    sal_model_free(model);
    free(input);
}

TestSuite(guarded, .init = load, .fini = unload, .timeout = 300);

static double rel_diff(const float *a, const float *ref, int64_t n) { return tu_rel_diff(a, ref, n, 1e-12); }

Test(guarded, backend_memory_is_unreadable_outside_its_operations) {
    sal_backend *b = sal_session_backend(guarded);
    cr_assert_eq(b->host_memory, 0);
    float *p = b->ops->alloc(b, 64);
    cr_assert_not_null(p);
    float one = 1.0f, back = 0.0f;
    cr_assert_eq(sal_backend_upload(b, p, &one, sizeof one, NULL), SAL_OK);
    cr_assert_eq(sal_backend_download(b, &back, p, sizeof back, NULL), SAL_OK);
    cr_expect_eq(back, 1.0f);
    b->ops->release(b, p);
}

/* A deliberate host read of backend memory must fault: the guard works. */
#ifdef SAL_SANITIZED
#define FAULTS .signal = SIGABRT   /* AddressSanitizer reports the SEGV itself, then aborts
                                     (abort_on_error=1: tests/testutil.c, scripts/test) */
#else
#define FAULTS .signal = SIGSEGV
#endif
Test(guarded, a_host_read_of_backend_memory_faults, FAULTS) {
    sal_backend *b = sal_session_backend(guarded);
    volatile float *p = b->ops->alloc(b, 64);
    cr_assert_not_null((void *)p);
    float v = p[0];
    cr_log_error("read %g without a fault", (double)v);
}

Test(guarded, every_method_gives_the_plain_cpu_maps) {
    for (int prob = 0; prob < 2; prob++)
        for (int m = 0; m < SAL_M_COUNT; m++) {
            if (m == SAL_M_ROLLOUT || m == SAL_M_CHEFER) continue;   /* a transformer's: below */
            sal_explain_opts o = tu_quick_opts((sal_method)m, 3);
            o.batch = 3;
            o.explain_prob = prob;
            sal_maps a, b;
            cr_assert_eq(sal_explain(plain, &o, input, 2, 0, 0, NULL, &a), SAL_OK, "%s", sal_session_error(plain));
            cr_assert_eq(sal_explain(guarded, &o, input, 2, 0, 0, NULL, &b), SAL_OK, "%s (guarded): %s",
                         sal_method_name((sal_method)m), sal_session_error(guarded));
            int64_t n = sal_maps_per_image(&a);
            double e = rel_diff(b.attr, a.attr, 2 * n);
            cr_expect_leq(e, 1e-6, "%s (prob %d): guarded map differs by %g", sal_method_name((sal_method)m), prob, e);
            for (int i = 0; i < 2; i++)
                cr_expect(fabsf(a.scores[i] - b.scores[i]) <= 1e-6f * fmaxf(1.0f, fabsf(a.scores[i])),
                          "%s: score %d: %g vs %g", sal_method_name((sal_method)m), i, (double)b.scores[i], (double)a.scores[i]);
            if (a.upsampled) cr_expect_leq(rel_diff(b.upsampled, a.upsampled, 2 * 32 * 32), 1e-6);
            sal_maps_free(&a);
            sal_maps_free(&b);
        }
}

/* Batches of one over two images: the second image is staged (upload_async) during the first
 * pass and copied into the input on the backend. */
Test(guarded, staged_uploads_give_the_plain_cpu_maps) {
    sal_explain_opts o = sal_explain_opts_default(SAL_M_INPUTXGRAD);
    o.batch = 1;
    sal_maps a, b;
    cr_assert_eq(sal_explain(plain, &o, input, 2, 0, 0, NULL, &a), SAL_OK, "%s", sal_session_error(plain));
    cr_assert_eq(sal_explain(guarded, &o, input, 2, 0, 0, NULL, &b), SAL_OK, "%s", sal_session_error(guarded));
    cr_expect_leq(rel_diff(b.attr, a.attr, 2 * 3 * 32 * 32), 1e-6);
    sal_maps_free(&a);
    sal_maps_free(&b);
}

Test(guarded, render_gives_the_plain_cpu_pixels) {
    sal_image orig = {40, 30, 3, malloc(40 * 30 * 3)};
    for (int j = 0; j < 40 * 30 * 3; j++) orig.pix[j] = (uint8_t)(j * 5);
    const float rect[4] = {4.0f, 0.0f, 36.0f, 30.0f};
    sal_render_opts ro = {SAL_REDUCE_ABS_MAX, 0, 99.0, SAL_CMAP_JET, 0.5f, 1, NULL};
    float ma[32 * 32], mb[32 * 32];
    uint8_t ha[32 * 32 * 3], hb[32 * 32 * 3], oa[40 * 30 * 3], ob[40 * 30 * 3];
    sal_error err = {0};
    cr_assert_eq(sal_render(plain, input, 3, 32, 32, &ro, &orig, rect, ma, ha, oa, &err), SAL_OK, "%s", err.msg);
    cr_assert_eq(sal_render(guarded, input, 3, 32, 32, &ro, &orig, rect, mb, hb, ob, &err), SAL_OK, "%s", err.msg);
    cr_expect_eq(memcmp(ma, mb, sizeof ma), 0);
    cr_expect_eq(memcmp(ha, hb, sizeof ha), 0);
    cr_expect_eq(memcmp(oa, ob, sizeof oa), 0);
    free(orig.pix);
}

/* A real network (EfficientNet-Lite0: padding, depthwise convolutions, squeeze-and-excitation
 * multiplies, Clip) under the same rules: its gradient methods and Grad-CAM, on one photo. */
Test(guarded, efficientnet_lite0_gives_the_plain_cpu_maps) {
    char path[1024];
    FILE *f = fopen(tu_src_path("models/efficientnet_lite0.onnx", path, sizeof path), "rb");
    if (!f) cr_skip_test("%s is missing: run scripts/fetch-models", path);
    fclose(f);
    sal_error err = {0};
    sal_model *m = NULL;
    sal_session *p = NULL, *g = NULL;
    cr_assert_eq(tu_open("models/efficientnet_lite0.onnx", SAL_DEVICE_CPU, &m, &p, &err), SAL_OK, "%s", err.msg);
    sal_backend *b = NULL;
    cr_assert_eq(sal_backend_cpu_guarded_create(0, &b, &err), SAL_OK, "%s", err.msg);
    cr_assert_eq(sal_session_create_on(m, b, NULL, &g, &err), SAL_OK, "%s", err.msg);
    float *x = NULL;
    int nd;
    int64_t d[SAL_MAX_DIMS];
    cr_assert_eq(sal_npy_read(tu_src_path("samples-npy/chelsea.npy", path, sizeof path), &x, &nd, d, &err), SAL_OK, "%s", err.msg);
    static const sal_method ms[] = {SAL_M_SALIENCY, SAL_M_IG, SAL_M_GRADCAM};
    for (size_t i = 0; i < sizeof ms / sizeof *ms; i++) {
        sal_explain_opts o = sal_explain_opts_default(ms[i]);
        o.ig_steps = 4;
        o.batch = 2;
        sal_maps a, c;
        cr_assert_eq(sal_explain(p, &o, x, 1, 224, 224, NULL, &a), SAL_OK, "%s", sal_session_error(p));
        cr_assert_eq(sal_explain(g, &o, x, 1, 224, 224, NULL, &c), SAL_OK, "%s (guarded): %s", sal_method_name(ms[i]),
                     sal_session_error(g));
        int64_t n = sal_maps_per_image(&a);
        double e = rel_diff(c.attr, a.attr, n);
        cr_expect_leq(e, 1e-6, "%s: guarded map differs by %g", sal_method_name(ms[i]), e);
        sal_maps_free(&a);
        sal_maps_free(&c);
    }
    free(x);
    sal_session_free(p);
    sal_session_free(g);
    sal_model_free(m);
}

/* The transformer methods and CAM on tokens, on the zoo's small ViT: attention rollout and Chefer's
 * relevance (every attention captured in one pass, products on the backend) and Grad-CAM on the
 * default token layer (tokens read as planes on the backend). */
Test(guarded, transformer_methods_give_the_plain_cpu_maps) {
    sal_model *vm = NULL;
    sal_session *vp = NULL, *vg = NULL;
    sal_error err = {0};
    cr_assert_eq(tu_open("tests/fixtures/zoo/vit_op13.onnx", SAL_DEVICE_CPU, &vm, &vp, &err), SAL_OK, "%s", err.msg);
    sal_backend *b = NULL;
    cr_assert_eq(sal_backend_cpu_guarded_create(0, &b, &err), SAL_OK, "%s", err.msg);
    cr_assert_eq(sal_session_create_on(vm, b, NULL, &vg, &err), SAL_OK, "%s", err.msg);
    char path[1024];
    float *x = NULL;
    int nd;
    int64_t d[SAL_MAX_DIMS];
    cr_assert_eq(sal_npy_read(tu_src_path("tests/fixtures/zoo/input.npy", path, sizeof path), &x, &nd, d, &err), SAL_OK,
                 "%s", err.msg);
    /* the last: rollout with max fusion and 90% discarded (the backend's sort) */
    static const sal_method ms[] = {SAL_M_ROLLOUT, SAL_M_CHEFER, SAL_M_GRADCAM, SAL_M_SCORECAM, SAL_M_ROLLOUT};
    for (int prob = 0; prob < 2; prob++)
        for (size_t k = 0; k < sizeof ms / sizeof ms[0]; k++) {
            sal_explain_opts o = sal_explain_opts_default(ms[k]);
            o.explain_prob = prob;
            if (k == 4) {
                o.head_fusion = SAL_FUSE_MAX;
                o.rollout_discard = 0.9f;
            }
            sal_maps a, c;
            cr_assert_eq(sal_explain(vp, &o, x, 2, 0, 0, NULL, &a), SAL_OK, "%s", sal_session_error(vp));
            cr_assert_eq(sal_explain(vg, &o, x, 2, 0, 0, NULL, &c), SAL_OK, "%s (guarded): %s", sal_method_name(ms[k]),
                         sal_session_error(vg));
            int64_t n = sal_maps_per_image(&a);
            cr_expect_gt(n, 1);
            cr_expect_leq(rel_diff(c.attr, a.attr, 2 * n), 1e-6, "%s (prob %d): guarded map differs", sal_method_name(ms[k]), prob);
            cr_expect_leq(rel_diff(c.upsampled, a.upsampled, 2 * 32 * 32), 1e-6);
            sal_maps_free(&a);
            sal_maps_free(&c);
        }
    free(x);
    sal_session_free(vg);
    sal_session_free(vp);
    sal_model_free(vm);
}
