/* test_batch_repro.c — an image's results do not depend on the batch it is computed in: its
 * logits (sal_forward), its saliency map and its Grad-CAM map at batch 1, 8 and 32 (the image at
 * several positions of the batch, among other images) are bit for bit those of the image alone.
 * This is what same-seed reproducibility and incremental occlusion rest on (a CPU kernel whose
 * summation order follows the batch size breaks both: oneDNN's matrix-vector kernel for one
 * column, its row blocking for Gemm's rows; host/backend/cpu/gemm.c). Models: the fixture CNN
 * (1x1 convolutions on 1x1 planes, Gemm head) and EfficientNet-Lite0 (skipped visibly without
 * models/, scripts/fetch-models). */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/io.h"
#include "salient.h"
#include "testutil.h"

static const int batches[] = {1, 8, 32};

/* x: n_src images (per floats each). Image q of a batch of B is source (q * 3 + B) % n_src, so
 * each source sits at a different position in each batch. For every batch size, the logits and
 * the maps of every image must equal those of the same source computed alone (batch 1). */
static void check_model(const char *what, sal_session *s, const float *src, int n_src, int c, int h, int w) {
    const int64_t per = (int64_t)c * h * w;
    cr_assert_eq(sal_session_plan(s, 1, h, w), SAL_OK, "%s", sal_session_error(s));
    const int K = sal_session_num_classes(s);
    float *ref_lg = malloc(sizeof(float) * (size_t)n_src * K);
    sal_maps ref_sal[8], ref_cam[8];
    cr_assert(n_src <= 8);
    sal_explain_opts os = sal_explain_opts_default(SAL_M_SALIENCY), oc = sal_explain_opts_default(SAL_M_GRADCAM);
    for (int i = 0; i < n_src; i++) {   /* each source alone */
        cr_assert_eq(sal_forward(s, src + i * per, 1, h, w, ref_lg + i * K), SAL_OK, "%s", sal_session_error(s));
        os.batch = oc.batch = 1;
        cr_assert_eq(sal_explain(s, &os, src + i * per, 1, h, w, NULL, &ref_sal[i]), SAL_OK, "%s", sal_session_error(s));
        cr_assert_eq(sal_explain(s, &oc, src + i * per, 1, h, w, NULL, &ref_cam[i]), SAL_OK, "%s", sal_session_error(s));
    }
    const int64_t cam_per = sal_maps_per_image(&ref_cam[0]);
    for (size_t bi = 0; bi < sizeof batches / sizeof *batches; bi++) {
        const int B = batches[bi];
        float *x = malloc(sizeof(float) * (size_t)B * (size_t)per), *lg = malloc(sizeof(float) * (size_t)B * K);
        int *which = malloc(sizeof(int) * (size_t)B);
        for (int q = 0; q < B; q++) {
            which[q] = (q * 3 + B) % n_src;
            memcpy(x + q * per, src + which[q] * per, sizeof(float) * (size_t)per);
        }
        cr_assert_eq(sal_forward(s, x, B, h, w, lg), SAL_OK, "%s", sal_session_error(s));
        os.batch = B;
        sal_maps ms;
        cr_assert_eq(sal_explain(s, &os, x, B, h, w, NULL, &ms), SAL_OK, "%s", sal_session_error(s));
        int bad_lg = 0, bad_sal = 0;
        for (int q = 0; q < B; q++) {
            const int i = which[q];
            if (memcmp(lg + q * K, ref_lg + i * K, sizeof(float) * (size_t)K)) bad_lg++;
            if (memcmp(ms.attr + q * per, ref_sal[i].attr, sizeof(float) * (size_t)per) ||
                ms.targets[q] != ref_sal[i].targets[0] || ms.scores[q] != ref_sal[i].scores[0])
                bad_sal++;
        }
        cr_expect_eq(bad_lg, 0, "%s, batch %d: %d of %d images' logits differ from the image alone", what, B, bad_lg, B);
        cr_expect_eq(bad_sal, 0, "%s, batch %d: %d of %d saliency maps (or scores) differ from the image alone", what,
                     B, bad_sal, B);
        sal_maps_free(&ms);
        if (B <= 8) {   /* Grad-CAM runs one image per pass: the plan of batch 1 among the others' */
            sal_maps mc;
            oc.batch = B;
            cr_assert_eq(sal_explain(s, &oc, x, B, h, w, NULL, &mc), SAL_OK, "%s", sal_session_error(s));
            int bad_cam = 0;
            for (int q = 0; q < B; q++)
                if (memcmp(mc.attr + q * cam_per, ref_cam[which[q]].attr, sizeof(float) * (size_t)cam_per)) bad_cam++;
            cr_expect_eq(bad_cam, 0, "%s, batch %d: %d Grad-CAM maps differ", what, B, bad_cam);
            sal_maps_free(&mc);
        }
        free(x); free(lg); free(which);
    }
    for (int i = 0; i < n_src; i++) { sal_maps_free(&ref_sal[i]); sal_maps_free(&ref_cam[i]); }
    free(ref_lg);
}

TestSuite(batch_repro, .timeout = 600);

Test(batch_repro, fixture_cnn) {
    sal_model *m;
    sal_session *s;
    sal_error err = {0};
    cr_assert_eq(tu_open("tests/fixtures/methods/tinycnn.onnx", SAL_DEVICE_CPU, &m, &s, &err), SAL_OK, "%s", err.msg);
    uint64_t seed = 12345;
    float *x = tu_rand_buf(5 * 3 * 32 * 32, &seed, -2.0f, 2.0f);   /* (5,3,32,32) */
    check_model("fixture CNN", s, x, 5, 3, 32, 32);
    free(x);
    sal_session_free(s);
    sal_model_free(m);
}

Test(batch_repro, efficientnet_lite0) {
    char path[1024];
    if (access(tu_src_path("models/efficientnet_lite0.onnx", path, sizeof path), R_OK))
        cr_skip_test("models/efficientnet_lite0.onnx missing (scripts/fetch-models)");
    static const char *names[] = {"chelsea", "coffee", "astronaut"};
    const int64_t per = 3 * 224 * 224;
    float *src = malloc(sizeof(float) * 3 * (size_t)per);
    for (int i = 0; i < 3; i++) {
        char rel[128];
        snprintf(rel, sizeof rel, "samples-npy/%s.npy", names[i]);
        float *d = NULL;
        int nd;
        int64_t dims[SAL_MAX_DIMS];
        sal_error e = {0};
        if (sal_npy_read(tu_src_path(rel, path, sizeof path), &d, &nd, dims, &e))
            cr_skip_test("%s missing (scripts/fetch-models)", rel);
        memcpy(src + i * per, d, sizeof(float) * (size_t)per);
        free(d);
    }
    sal_model *m;
    sal_session *s;
    sal_error err = {0};
    cr_assert_eq(tu_open("models/efficientnet_lite0.onnx", SAL_DEVICE_CPU, &m, &s, &err), SAL_OK, "%s", err.msg);
    check_model("EfficientNet-Lite0", s, src, 3, 3, 224, 224);
    free(src);
    sal_session_free(s);
    sal_model_free(m);
}
