/* test_render.c — sal_render, the post-processing chain run as backend primitives (what a GPU
 * session runs on the device), against the host functions of host/post (whose values
 * tests/test_post.c checks by hand): the normalized map, the heatmap and the overlay must be the
 * same, value for value, for every reduction, signed and unsigned maps, with and without
 * percentile clipping, gray and RGB originals, and maps holding NaN and infinities. Both sides
 * evaluate the per-pixel element functions of kernels/post_elem.h, so what this checks
 * independently is the orchestration: the backend sort and percentile, the range in parts, the
 * order of the steps, the buffers. The CPU
 * session runs the primitives' host loops; tests/test_cuda_parity.c runs them on a GPU. */
#include <criterion/criterion.h>

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "post/post.h"
#include "testutil.h"

static sal_model *model;
static sal_session *sess;

static void load(void) {
    sal_error err = {0};
    cr_assert_eq(tu_open("tests/fixtures/methods/tinycnn.onnx", SAL_DEVICE_CPU, &model, &sess, &err), SAL_OK, "%s", err.msg);
}

static void unload(void) {
    sal_session_free(sess);
    sal_model_free(model);
}

TestSuite(render, .init = load, .fini = unload, .timeout = 120);

/* xorshift: reproducible values in [-2, 2), a few of them NaN or +-inf when special */
static float next(uint32_t *s, int special) {
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    if (special && *s % 97 == 0) return NAN;
    if (special && *s % 89 == 0) return (*s & 1) ? INFINITY : -INFINITY;
    return (float)(*s % 40000) / 10000.0f - 2.0f;
}

/* the host chain, as the CLI ran it before sal_render existed */
static void host_chain(const float *attr, int c, int h, int w, const sal_render_opts *ro, const sal_image *orig,
                       const float rect[4], float *map, uint8_t *heat, uint8_t *over, float range[2]) {
    sal_error err = {0};
    if (c > 1) cr_assert_eq(sal_reduce_channels(attr, c, h, w, ro->reduce, map, &err), SAL_OK, "%s", err.msg);
    else memcpy(map, attr, sizeof(float) * (size_t)h * w);
    if (ro->clip < 100.0)
        cr_assert_eq(sal_clip_percentile(map, (size_t)h * w, ro->clip, ro->signed_map, NULL, &err), SAL_OK, "%s", err.msg);
    /* the colour scale's ends: the finite extremes (unsigned; none: 0, 0), or -+max|x| (signed) */
    float mn = INFINITY, mx = -INFINITY;
    for (int i = 0; i < h * w; i++)
        if (isfinite(map[i])) {
            float v = ro->signed_map ? fabsf(map[i]) : map[i];
            mn = fminf(mn, v);
            mx = fmaxf(mx, v);
        }
    if (ro->signed_map) range[0] = mx > 0 ? -mx : -0.0f, range[1] = mx > 0 ? mx : 0.0f;
    else if (mx >= mn) range[0] = mn, range[1] = mx;
    else range[0] = range[1] = 0.0f;
    sal_normalize(map, (size_t)h * w, ro->signed_map, map);
    cr_assert_eq(sal_heatmap_rgb(map, h, w, ro->cmap, ro->signed_map, heat), SAL_OK);
    cr_assert_eq(sal_overlay(orig, map, h, w, rect, ro->cmap, ro->alpha,
                             (ro->signed_map ? SAL_OVERLAY_SIGNED : 0) | (ro->alpha_by_value ? SAL_OVERLAY_BY_VALUE : 0),
                             over), SAL_OK);
}

Test(render, equals_the_host_chain_value_for_value) {
    const int h = 23, w = 31;
    const sal_reduce reds[] = {SAL_REDUCE_ABS_MAX, SAL_REDUCE_ABS_SUM, SAL_REDUCE_SUM};
    const double clips[] = {100.0, 99.0, 97.3, 50.0};
    for (int special = 0; special < 2; special++)
        for (int c = 1; c <= 3; c += 2)
            for (int ri = 0; ri < 3; ri++)
                for (int ci = 0; ci < 4; ci++)
                    for (int oc = 1; oc <= 3; oc += 2) {
                        uint32_t seed = 12345u + (uint32_t)(special * 1000 + c * 100 + ri * 10 + ci + oc * 7);
                        float *attr = malloc(sizeof(float) * (size_t)c * h * w);
                        for (int j = 0; j < c * h * w; j++) attr[j] = next(&seed, special);
                        sal_image orig = {37, 29, oc, malloc((size_t)37 * 29 * oc)};
                        for (int j = 0; j < 37 * 29 * oc; j++) orig.pix[j] = (uint8_t)(next(&seed, 0) * 60 + 128);
                        const float rect[4] = {2.5f, 1.0f, 35.0f, 27.25f};
                        sal_render_opts ro = {reds[ri], reds[ri] == SAL_REDUCE_SUM, clips[ci],
                                              (sal_colormap)((ri + ci) % SAL_CMAP_COUNT), 0.4f,
                                              (ci + oc) % 2 /* opacity by value, in half the cases */, NULL};
                        float want_range[2], got_range[2] = {NAN, NAN};
                        ro.range_out = got_range;
                        float *want = malloc(sizeof(float) * (size_t)h * w), *got = malloc(sizeof(float) * (size_t)h * w);
                        uint8_t *wh = malloc((size_t)h * w * 3), *gh = malloc((size_t)h * w * 3);
                        uint8_t *wo = malloc((size_t)37 * 29 * 3), *go = malloc((size_t)37 * 29 * 3);
                        host_chain(attr, c, h, w, &ro, &orig, rect, want, wh, wo, want_range);
                        sal_error err = {0};
                        cr_assert_eq(sal_render(sess, attr, c, h, w, &ro, &orig, rect, got, gh, go, &err), SAL_OK,
                                     "%s", err.msg);
                        int bad = -1;
                        for (int j = 0; j < h * w && bad < 0; j++)
                            if (memcmp(&got[j], &want[j], sizeof(float)) != 0) bad = j;
                        cr_expect(bad < 0, "case c=%d reduce=%d clip=%g special=%d: map[%d] = %.9g, host %.9g", c, ri,
                                  clips[ci], special, bad, bad < 0 ? 0.0 : (double)got[bad], bad < 0 ? 0.0 : (double)want[bad]);
                        cr_expect(got_range[0] == want_range[0] && got_range[1] == want_range[1],
                                  "case c=%d reduce=%d clip=%g special=%d: range %g %g, host %g %g", c, ri, clips[ci], special,
                                  (double)got_range[0], (double)got_range[1], (double)want_range[0], (double)want_range[1]);
                        cr_expect_eq(memcmp(gh, wh, (size_t)h * w * 3), 0, "heatmap differs (c=%d reduce=%d clip=%g)", c, ri, clips[ci]);
                        cr_expect_eq(memcmp(go, wo, (size_t)37 * 29 * 3), 0, "overlay differs (c=%d reduce=%d clip=%g oc=%d)", c, ri,
                                     clips[ci], oc);
                        free(attr); free(orig.pix); free(want); free(got); free(wh); free(gh); free(wo); free(go);
                    }
}

Test(render, optional_outputs_and_bad_arguments) {
    float attr[12] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}, map[4];
    sal_render_opts ro = {SAL_REDUCE_ABS_MAX, 0, 100.0, SAL_CMAP_JET, 0.5f, 0, NULL};
    sal_error err = {0};
    /* (3,2,2) abs-max is the last channel: 8..11 -> 0, 1/3, 2/3, 1 */
    cr_assert_eq(sal_render(sess, attr, 3, 2, 2, &ro, NULL, NULL, map, NULL, NULL, &err), SAL_OK, "%s", err.msg);
    cr_expect(fabsf(map[0]) < 1e-7f && fabsf(map[1] - 1.0f / 3) < 1e-6f && fabsf(map[2] - 2.0f / 3) < 1e-6f &&
              fabsf(map[3] - 1.0f) < 1e-7f, "map %g %g %g %g", map[0], map[1], map[2], map[3]);
    ro.cmap = (sal_colormap)99;
    cr_expect_eq(sal_render(sess, attr, 3, 2, 2, &ro, NULL, NULL, map, NULL, NULL, &err), SAL_ERR_INVALID_ARG);
    cr_expect(strstr(err.msg, "colormap"), "message: %s", err.msg);
    ro.cmap = SAL_CMAP_JET;
    uint8_t over[12];
    cr_expect_eq(sal_render(sess, attr, 3, 2, 2, &ro, NULL, NULL, map, NULL, over, &err), SAL_ERR_INVALID_ARG);
    cr_expect(strstr(err.msg, "original"), "message: %s", err.msg);
    ro.reduce = SAL_REDUCE_NONE;
    cr_expect_eq(sal_render(sess, attr, 3, 2, 2, &ro, NULL, NULL, map, NULL, NULL, &err), SAL_ERR_INVALID_ARG);
    cr_expect(strstr(err.msg, "reduction"), "message: %s", err.msg);
    ro.reduce = SAL_REDUCE_ABS_MAX;
    cr_expect_eq(sal_render(sess, attr, 0, 2, 2, &ro, NULL, NULL, map, NULL, NULL, &err), SAL_ERR_INVALID_ARG);
    cr_expect(strstr(err.msg, "size"), "message: %s", err.msg);
}
