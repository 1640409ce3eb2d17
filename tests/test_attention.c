/* test_attention.c — CAM methods on transformers and the default CAM layer, on the model zoo's
 * small ViT, Swin and ConvNeXt (tests/fixtures/zoo/, scripts/make-zoo-models.py), against
 * references written by scripts/make-attention-fixtures.py:
 *  - Grad-CAM on a ViT's tokens (class token dropped, 4x4 grid) and on a Swin's channels-last
 *    (N,H,W,C) stage output, against pytorch-grad-cam 1.5.7 with its tutorials' reshape
 *    transforms (float64 runs of the same weights): the layer map and the final 32x32 map;
 *  - attention rollout and Chefer's relevance on the ViT against the script's PyTorch
 *    implementation (a functional ViT forward keeping every attention's probabilities, float64),
 *    the attention layers found by pattern or named;
 *  - the default CAM layer rule: a ViT's last block's first LayerNorm, a ConvNeXt's last stage
 *    rather than its classifier's (N,1,1,C) LayerNorm, the fixture CNN's head.relu; a named layer
 *    with a side of 1, or tokens no grid fits, refused with a message naming it.
 *
 * Tolerance 1e-4 of the map's largest value: float32 against float64 through two transformer
 * blocks (the zoo measured gradients within 9.1e-7 of torch's). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/io.h"
#include "testutil.h"
#include "testproc.h"

#define MAP_TOL 1e-4
enum { N = 2, C = 3, HW = 32, IMG = C * HW * HW, G = 4 };

typedef struct zoo_model {
    sal_model *m;
    sal_session *s;
    float *x;
} zoo_model;

static zoo_model open_zoo(const char *stem) {
    zoo_model z = {0};
    char rel[256];
    sal_error err = {0};
    snprintf(rel, sizeof rel, "tests/fixtures/zoo/%s.onnx", stem);
    cr_assert_eq(tu_open(rel, SAL_DEVICE_CPU, &z.m, &z.s, &err), SAL_OK, "%s: %s", stem, err.msg);
    z.x = tp_load_npy("tests/fixtures/zoo/input.npy", (int64_t)N * IMG);
    return z;
}

static void close_zoo(zoo_model *z) {
    sal_session_free(z->s);
    sal_model_free(z->m);
    free(z->x);
}

/* Explain both images (top-1 targets, as the fixtures) with o; compare the raw (G,G) maps with
 * `layer_ref` and, when given, the upsampled ones with `final_ref`. */
static void check_maps(zoo_model *z, sal_explain_opts o, const char *what, const char *layer_ref,
                       const char *final_ref, const char *expect_layer) {
    sal_maps m;
    cr_assert_eq(sal_explain(z->s, &o, z->x, N, 0, 0, NULL, &m), SAL_OK, "%s: %s", what, sal_session_error(z->s));
    cr_assert(m.ndim == 2 && m.dims[0] == G && m.dims[1] == G, "%s: map %lldx%lld, expected %dx%d", what,
              (long long)m.dims[0], (long long)m.dims[1], G, G);
    if (expect_layer) cr_expect_str_eq(m.layer, expect_layer, "%s: layer '%s', expected '%s'", what, m.layer, expect_layer);
    float *want = tp_load_npy(layer_ref, N * G * G);
    for (int i = 0; i < N; i++) {
        double e = tu_rel_diff(m.attr + i * G * G, want + i * G * G, G * G, 1e-12);
        cr_log_info("%s image %d: layer map error %.3g of its max", what, i, e);
        cr_expect(e < MAP_TOL, "%s image %d: the layer map differs from the reference by %.3g of its max", what, i, e);
    }
    free(want);
    if (final_ref) {
        float *fin = tp_load_npy(final_ref, N * HW * HW);
        double e = tu_rel_diff(m.upsampled, fin, N * HW * HW, 1.0);
        cr_expect(e < MAP_TOL, "%s: the final map differs from pytorch-grad-cam's by %.3g", what, e);
        free(fin);
    }
    sal_maps_free(&m);
}

/* ------------------------------------------------------------------------------------------------ */
/* CAM on tokens and channels-last layers                                                           */

Test(attention, gradcam_on_vit_tokens_matches_pytorch_grad_cam) {
    static const char *stems[2] = {"vit_op13", "vit_op17"};
    static const char *layers[2] = {"/encoder/layers/encoder_layer_1/ln_1/Add_1",
                                    "/encoder/layers/encoder_layer_1/ln_1/LayerNormalization"};
    for (int k = 0; k < 2; k++) {
        zoo_model z = open_zoo(stems[k]);
        /* the default layer (found from the shapes and the attention), then named with --tokens */
        sal_explain_opts o = sal_explain_opts_default(SAL_M_GRADCAM);
        check_maps(&z, o, stems[k], "tests/fixtures/zoo/vit_gradcam_layer.npy", "tests/fixtures/zoo/vit_gradcam.npy",
                   layers[k]);
        o.layer = layers[k];
        o.tokens_h = o.tokens_w = G;
        check_maps(&z, o, stems[k], "tests/fixtures/zoo/vit_gradcam_layer.npy", "tests/fixtures/zoo/vit_gradcam.npy",
                   layers[k]);
        close_zoo(&z);
    }
}

/* Grad-CAM on tokens inside the shared pass of several methods (sal_explain_many): the same maps. */
Test(attention, gradcam_on_vit_tokens_in_a_shared_pass) {
    zoo_model z = open_zoo("vit_op13");
    sal_explain_opts o = sal_explain_opts_default(SAL_M_GRADCAM);
    const sal_method ms[3] = {SAL_M_SALIENCY, SAL_M_GRADCAM, SAL_M_LAYERCAM};
    sal_maps out[3];
    cr_assert_eq(sal_explain_many(z.s, &o, ms, 3, z.x, N, 0, 0, NULL, out), SAL_OK, "%s", sal_session_error(z.s));
    cr_expect_str_eq(out[1].layer, "/encoder/layers/encoder_layer_1/ln_1/Add_1");
    cr_assert(out[1].ndim == 2 && out[1].dims[0] == G && out[1].dims[1] == G);
    float *want = tp_load_npy("tests/fixtures/zoo/vit_gradcam_layer.npy", N * G * G);
    double e = tu_rel_diff(out[1].attr, want, N * G * G, 1e-12);
    cr_expect(e < MAP_TOL, "shared pass: Grad-CAM differs from pytorch-grad-cam's by %.3g", e);
    free(want);
    for (int j = 0; j < 3; j++) sal_maps_free(&out[j]);
    close_zoo(&z);
}

Test(attention, gradcam_on_swin_channels_last_matches_pytorch_grad_cam) {
    zoo_model z = open_zoo("swin_op13");
    sal_explain_opts o = sal_explain_opts_default(SAL_M_GRADCAM);
    o.layer = "/features/features.3/features.3.1/Add_1";   /* (1,4,4,32): read as (N,H,W,C) */
    sal_cam_layer cl;
    cr_assert_eq(sal_session_cam_layer(z.s, 0, 0, o.layer, 0, 0, &cl), SAL_OK, "%s", sal_session_error(z.s));
    cr_expect(cl.layout == SAL_LAYOUT_NHWC && cl.h == G && cl.w == G && cl.channels == 32,
              "layout %d, %dx%d, %d channels", (int)cl.layout, cl.h, cl.w, cl.channels);
    check_maps(&z, o, "swin", "tests/fixtures/zoo/swin_gradcam_layer.npy", "tests/fixtures/zoo/swin_gradcam.npy", NULL);
    close_zoo(&z);
}

/* ------------------------------------------------------------------------------------------------ */
/* The default CAM layer                                                                            */

Test(attention, default_cam_layer_rule) {
    static const struct { const char *rel, *layer; sal_layout layout; int h, w, skip; } cases[] = {
        /* ViT: no feature map after the patch embedding; the last token layer feeding the last
         * attention's queries and keys (after it only the class token reaches the head) */
        {"tests/fixtures/zoo/vit_op13.onnx", "/encoder/layers/encoder_layer_1/ln_1/Add_1", SAL_LAYOUT_TOKENS, 4, 4, 1},
        /* ConvNeXt: its classifier's LayerNorm2d permutes to (1,1,1,32), the last 4-D value; the
         * rule takes the last stage's (1,32,4,4) instead */
        {"tests/fixtures/zoo/convnext_op13.onnx", "/features/features.3/features.3.0/Add", SAL_LAYOUT_NCHW, 4, 4, 0},
        /* Swin: the permute back to (N,C,H,W) after the last stage comes after every attention */
        {"tests/fixtures/zoo/swin_op13.onnx", "/permute/Transpose", SAL_LAYOUT_NCHW, 4, 4, 0},
        /* the fixture CNN: the last 4-D layer larger than 1x1, as before */
        {"tests/fixtures/methods/tinycnn.onnx", "head.relu", SAL_LAYOUT_NCHW, 16, 16, 0},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        sal_model *m;
        sal_session *s;
        sal_error err = {0};
        cr_assert_eq(tu_open(cases[k].rel, SAL_DEVICE_CPU, &m, &s, &err), SAL_OK, "%s", err.msg);
        sal_cam_layer cl;
        cr_assert_eq(sal_session_cam_layer(s, 0, 0, NULL, 0, 0, &cl), SAL_OK, "%s: %s", cases[k].rel, sal_session_error(s));
        cr_expect_str_eq(cl.name, cases[k].layer, "%s: default layer '%s', expected '%s'", cases[k].rel, cl.name,
                         cases[k].layer);
        cr_expect(cl.is_default && cl.layout == cases[k].layout && cl.h == cases[k].h && cl.w == cases[k].w &&
                  cl.skip == cases[k].skip, "%s: layout %d %dx%d skip %d", cases[k].rel, (int)cl.layout, cl.h, cl.w,
                  cl.skip);
        sal_session_free(s);
        sal_model_free(m);
    }
}

Test(attention, cam_layers_without_a_map_are_refused_by_name) {
    zoo_model z = open_zoo("convnext_op13");
    sal_cam_layer cl;
    /* (1,1,1,32): a side of 1 in both readings */
    const char *stripe = "/classifier/classifier.0/Add_1";
    cr_expect_eq(sal_session_cam_layer(z.s, 0, 0, stripe, 0, 0, &cl), SAL_ERR_SHAPE);
    cr_expect(strstr(sal_session_error(z.s), stripe) && strstr(sal_session_error(z.s), "side of 1"), "%s",
              sal_session_error(z.s));
    sal_explain_opts o = sal_explain_opts_default(SAL_M_GRADCAM);
    o.layer = stripe;
    sal_maps m;
    cr_expect_eq(sal_explain(z.s, &o, z.x, 1, 0, 0, NULL, &m), SAL_ERR_SHAPE);
    cr_expect(strstr(sal_session_error(z.s), stripe), "%s", sal_session_error(z.s));
    /* a 2-D layer */
    cr_expect_eq(sal_session_cam_layer(z.s, 0, 0, "/classifier/classifier.2/Gemm", 0, 0, &cl), SAL_ERR_SHAPE);
    cr_expect(strstr(sal_session_error(z.s), "2 dimensions"), "%s", sal_session_error(z.s));
    close_zoo(&z);

    z = open_zoo("vit_op13");
    const char *tok = "/encoder/layers/encoder_layer_1/ln_1/Add_1";
    cr_expect_eq(sal_session_cam_layer(z.s, 0, 0, tok, 3, 3, &cl), SAL_ERR_SHAPE);
    cr_expect(strstr(sal_session_error(z.s), tok) && strstr(sal_session_error(z.s), "17 tokens"), "%s",
              sal_session_error(z.s));
    cr_expect_eq(sal_session_cam_layer(z.s, 0, 0, tok, 4, 0, &cl), SAL_ERR_INVALID_ARG);
    /* the same layer with its grid from its shape alone: a class token and 4x4 patches of 8x8 */
    cr_assert_eq(sal_session_cam_layer(z.s, 0, 0, tok, 0, 0, &cl), SAL_OK, "%s", sal_session_error(z.s));
    cr_expect(cl.layout == SAL_LAYOUT_TOKENS && cl.skip == 1 && cl.h == G && cl.w == G && cl.channels == 32 &&
              !cl.is_default, "layout %d skip %d %dx%d %d channels", (int)cl.layout, cl.skip, cl.h, cl.w, cl.channels);
    close_zoo(&z);
}

/* ------------------------------------------------------------------------------------------------ */
/* Attention rollout and Chefer's relevance                                                         */

Test(attention, rollout_and_chefer_match_the_pytorch_reference) {
    static const char *stems[2] = {"vit_op13", "vit_op17"};
    for (int k = 0; k < 2; k++) {
        zoo_model z = open_zoo(stems[k]);
        sal_attention_info ai;
        cr_assert_eq(sal_session_attention(z.s, 0, 0, NULL, 0, 0, &ai), SAL_OK, "%s", sal_session_error(z.s));
        cr_expect(ai.layers == 2 && ai.heads == 2 && ai.tokens == 17 && ai.h == G && ai.w == G,
                  "%s: %d layers, %d heads, %d tokens, %dx%d", stems[k], ai.layers, ai.heads, ai.tokens, ai.h, ai.w);
        cr_expect_str_eq(ai.first, "/encoder/layers/encoder_layer_0/self_attention/Softmax");
        cr_expect_str_eq(ai.last, "/encoder/layers/encoder_layer_1/self_attention/Softmax");
        char what[64];
        snprintf(what, sizeof what, "%s rollout", stems[k]);
        check_maps(&z, sal_explain_opts_default(SAL_M_ROLLOUT), what, "tests/fixtures/zoo/vit_rollout.npy", NULL, NULL);
        static const char *fusion_refs[2] = {"tests/fixtures/zoo/vit_rollout_max.npy", "tests/fixtures/zoo/vit_rollout_min.npy"};
        for (int f = 0; f < 2; f++) {   /* vit-explain's head fusions */
            sal_explain_opts r = sal_explain_opts_default(SAL_M_ROLLOUT);
            r.head_fusion = f ? SAL_FUSE_MIN : SAL_FUSE_MAX;
            snprintf(what, sizeof what, "%s rollout, heads' %s", stems[k], f ? "min" : "max");
            check_maps(&z, r, what, fusion_refs[f], NULL, NULL);
        }
        sal_explain_opts rd = sal_explain_opts_default(SAL_M_ROLLOUT);   /* vit-explain's defaults */
        rd.head_fusion = SAL_FUSE_MAX;
        rd.rollout_discard = 0.9f;
        snprintf(what, sizeof what, "%s rollout, max, discard 0.9", stems[k]);
        check_maps(&z, rd, what, "tests/fixtures/zoo/vit_rollout_max_discard09.npy", NULL, NULL);
        snprintf(what, sizeof what, "%s chefer", stems[k]);
        check_maps(&z, sal_explain_opts_default(SAL_M_CHEFER), what, "tests/fixtures/zoo/vit_chefer.npy", NULL, NULL);
        /* named (by value name for one, node name for the other), with the grid given */
        sal_explain_opts o = sal_explain_opts_default(SAL_M_CHEFER);
        o.attention_layers = "/encoder/layers/encoder_layer_0/self_attention/Softmax_output_0,"
                             "/encoder/layers/encoder_layer_1/self_attention/Softmax";
        o.tokens_h = o.tokens_w = G;
        snprintf(what, sizeof what, "%s chefer, named", stems[k]);
        check_maps(&z, o, what, "tests/fixtures/zoo/vit_chefer.npy", NULL, NULL);
        close_zoo(&z);
    }
}

Test(attention, attention_methods_refuse_what_they_cannot_read) {
    zoo_model z = open_zoo("vit_op13");
    sal_attention_info ai;
    cr_expect_eq(sal_session_attention(z.s, 0, 0, "/encoder/layers/encoder_layer_0/self_attention/Softmax,nope", 0, 0, &ai),
                 SAL_ERR_NOT_FOUND);
    cr_expect(strstr(sal_session_error(z.s), "'nope'"), "%s", sal_session_error(z.s));
    /* a layer that is not attention probabilities */
    cr_expect_eq(sal_session_attention(z.s, 0, 0, "/encoder/layers/encoder_layer_1/ln_1/Add_1", 0, 0, &ai), SAL_ERR_SHAPE);
    cr_expect(strstr(sal_session_error(z.s), "ln_1/Add_1"), "%s", sal_session_error(z.s));
    sal_explain_opts hf = sal_explain_opts_default(SAL_M_CHEFER);
    hf.head_fusion = SAL_FUSE_MAX;   /* Chefer's rule is the mean */
    sal_maps hm;
    cr_expect_eq(sal_explain(z.s, &hf, z.x, 1, 0, 0, NULL, &hm), SAL_ERR_INVALID_ARG);
    cr_expect(strstr(sal_session_error(z.s), "head fusion"), "%s", sal_session_error(z.s));
    hf = sal_explain_opts_default(SAL_M_ROLLOUT);
    hf.rollout_discard = 1.0f;
    cr_expect_eq(sal_explain(z.s, &hf, z.x, 1, 0, 0, NULL, &hm), SAL_ERR_INVALID_ARG);
    cr_expect(strstr(sal_session_error(z.s), "discard ratio"), "%s", sal_session_error(z.s));
    cr_expect_eq(sal_session_attention(z.s, 0, 0, NULL, 3, 3, &ai), SAL_ERR_SHAPE);
    cr_expect(strstr(sal_session_error(z.s), "17 tokens"), "%s", sal_session_error(z.s));
    close_zoo(&z);
    /* no attention at all */
    z = open_zoo("convnext_op13");
    sal_explain_opts o = sal_explain_opts_default(SAL_M_ROLLOUT);
    sal_maps m;
    cr_expect_eq(sal_explain(z.s, &o, z.x, 1, 0, 0, NULL, &m), SAL_ERR_NOT_FOUND);
    cr_expect(strstr(sal_session_error(z.s), "no attention layer"), "%s", sal_session_error(z.s));
    close_zoo(&z);
    /* Swin: windows of 16 tokens, no class token */
    z = open_zoo("swin_op13");
    cr_expect_eq(sal_session_attention(z.s, 0, 0, NULL, 0, 0, &ai), SAL_ERR_SHAPE);
    cr_expect(strstr(sal_session_error(z.s), "class token"), "%s", sal_session_error(z.s));
    close_zoo(&z);
}

/* Progress: one model pass per image, reported from 0 to the total. */
typedef struct seen { int calls; int64_t first_done, last_done, total; } seen;
static int watch(const sal_progress *p, void *user) {
    seen *s = user;
    if (!s->calls++) s->first_done = p->done;
    s->last_done = p->done;
    s->total = p->total;
    return 0;
}

Test(attention, attention_methods_report_progress) {
    zoo_model z = open_zoo("vit_op13");
    for (int k = 0; k < 2; k++) {
        sal_explain_opts o = sal_explain_opts_default(k ? SAL_M_CHEFER : SAL_M_ROLLOUT);
        seen s = {0};
        o.progress = watch;
        o.progress_user = &s;
        sal_maps m;
        cr_assert_eq(sal_explain(z.s, &o, z.x, N, 0, 0, NULL, &m), SAL_OK, "%s", sal_session_error(z.s));
        cr_expect(s.calls >= 2 && s.first_done == 0 && s.total == N && s.last_done == N,
                  "%s: %d calls, first done %lld, last %lld of %lld", sal_method_name(o.method), s.calls,
                  (long long)s.first_done, (long long)s.last_done, (long long)s.total);
        sal_maps_free(&m);
    }
    close_zoo(&z);
}
