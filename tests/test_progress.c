/* test_progress.c — sal_explain_opts.progress, the library's progress callback: for every method,
 * called first with done 0, then with counts that never shrink against a total that never
 * changes, and last with done == total (the count of model passes each method's loops make, so a
 * method whose passes are miscounted fails here); results unchanged by watching them; a nonzero
 * return cancels the call cleanly (SAL_ERR_CANCELLED, no maps, no further calls, the session
 * still usable). Model: the tiny fixture CNN of tests/fixtures/methods (input (N,3,32,32)). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/io.h"
#include "testutil.h"

#define FIX "tests/fixtures/methods/"

static sal_model *model;
static sal_session *sess;
static float *input;   /* (2,3,32,32) */

static void load(void) {
    char path[1024];
    sal_error err = {0};
    cr_assert_eq(sal_model_load(tu_src_path(FIX "tinycnn.onnx", path, sizeof path), &model, &err), SAL_OK, "%s", err.msg);
    sal_session_opts o = sal_session_opts_default();
    o.device = SAL_DEVICE_CPU;
    cr_assert_eq(sal_session_create(model, &o, &sess, &err), SAL_OK, "%s", err.msg);
    int nd;
    int64_t d[SAL_MAX_DIMS];
    cr_assert_eq(sal_npy_read(tu_src_path(FIX "input.npy", path, sizeof path), &input, &nd, d, &err), SAL_OK, "%s", err.msg);
    cr_assert(nd == 4 && d[0] == 2 && d[1] == 3 && d[2] == 32 && d[3] == 32);
}

static void unload(void) {
    sal_session_free(sess);
    sal_model_free(model);
    free(input);
}

TestSuite(progress, .init = load, .fini = unload, .timeout = 600);

/* Every call the callback saw. */
typedef struct seen {
    int calls;
    sal_progress first, last;
    int shrank, total_changed, wrong_method, wrong_n, intermediate;
    int64_t cancel_at;   /* return 1 once done >= this (0: never) */
    int after_cancel;    /* calls after returning 1 */
    int cancelled;
    sal_method method;
} seen;

static int watch(const sal_progress *p, void *user) {
    seen *s = user;
    if (s->cancelled) s->after_cancel++;
    if (s->calls == 0) s->first = *p;
    else {
        if (p->done < s->last.done) s->shrank++;
        if (p->total != s->first.total) s->total_changed++;
    }
    if (p->method != s->method) s->wrong_method++;
    if (p->n_images != 2) s->wrong_n++;
    if (p->done > 0 && p->done < p->total) s->intermediate++;
    s->last = *p;
    s->calls++;
    if (s->cancel_at > 0 && p->done >= s->cancel_at) { s->cancelled = 1; return 1; }
    return 0;
}

/* Small settings, so every method runs in well under a second on the tiny CNN. */
static sal_explain_opts small_opts(sal_method m) {
    sal_explain_opts o = sal_explain_opts_default(m);
    o.nt_samples = 3;
    o.ig_steps = 4;
    o.occ_h = o.occ_w = 8;
    o.occ_stride_h = o.occ_stride_w = 8;
    o.rise_masks = 20;
    o.shap_samples = 3;
    o.kshap_grid = 4;
    o.kshap_coalitions = 20;
    o.batch = 3;   /* several internal batches per image */
    return o;
}

static void check_method(sal_explain_opts o, const char *what) {
    sal_maps plain, watched;
    cr_assert_eq(sal_explain(sess, &o, input, 2, 32, 32, NULL, &plain), SAL_OK, "%s: %s", what, sal_session_error(sess));
    seen s = {0};
    s.method = o.method;
    o.progress = watch;
    o.progress_user = &s;
    cr_assert_eq(sal_explain(sess, &o, input, 2, 32, 32, NULL, &watched), SAL_OK, "%s: %s", what, sal_session_error(sess));
    cr_expect_geq(s.calls, 2, "%s: a first and a last call, got %d", what, s.calls);
    cr_expect_eq(s.first.done, 0, "%s: the first call has done 0, got %lld", what, (long long)s.first.done);
    cr_expect_gt(s.first.total, 0, "%s: a total", what);
    cr_expect_eq(s.shrank, 0, "%s: done never shrinks", what);
    cr_expect_eq(s.total_changed, 0, "%s: the total never changes", what);
    cr_expect_eq(s.wrong_method, 0, "%s: the method is named", what);
    cr_expect_eq(s.wrong_n, 0, "%s: n_images is the call's 2", what);
    cr_expect_eq(s.last.done, s.last.total, "%s: the last call has done == total: %lld of %lld", what,
                 (long long)s.last.done, (long long)s.last.total);
    /* watching changes nothing */
    int64_t per = sal_maps_per_image(&plain);
    cr_assert_eq(sal_maps_per_image(&watched), per, "%s", what);
    cr_expect_eq(memcmp(plain.attr, watched.attr, sizeof(float) * (size_t)(2 * per)), 0, "%s: same maps", what);
    sal_maps_free(&plain);
    sal_maps_free(&watched);
}

Test(progress, every_method_counts_its_passes_to_the_total) {
    for (int m = 0; m < SAL_M_COUNT; m++)   /* rollout and chefer need a transformer: test_attention */
        if (m != SAL_M_ROLLOUT && m != SAL_M_CHEFER) check_method(small_opts((sal_method)m), sal_method_name((sal_method)m));
    /* the variants whose loops differ: IG under the noise tunnel, KernelSHAP on superpixels */
    sal_explain_opts o = small_opts(SAL_M_SMOOTHGRAD);
    o.nt_inner = SAL_M_IG;
    check_method(o, "smoothgrad over ig");
    o = small_opts(SAL_M_KERNELSHAP);
    o.kshap_superpixels = 6;
    check_method(o, "kernelshap on superpixels");
}

/* The known totals: occlusion's windows plus the image's own pass, IG's steps plus f(x) and
 * f(baseline), Score-CAM's one pass per channel of the layer plus the capture. */
Test(progress, totals_are_the_passes_of_the_options) {
    struct { sal_method m; int64_t per_image; } cases[] = {
        {SAL_M_OCCLUSION, 4 * 4 + 1},   /* 32x32, window 8, stride 8: 4x4 windows */
        {SAL_M_IG, 4 + 2},
        {SAL_M_RISE, 20 + 1},
        {SAL_M_SALIENCY, 1},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        sal_explain_opts o = small_opts(cases[k].m);
        seen s = {0};
        s.method = o.method;
        o.progress = watch;
        o.progress_user = &s;
        sal_maps mp;
        cr_assert_eq(sal_explain(sess, &o, input, 2, 32, 32, NULL, &mp), SAL_OK, "%s", sal_session_error(sess));
        cr_expect_eq(s.first.total, 2 * cases[k].per_image, "%s: total %lld, expected %lld", sal_method_name(o.method),
                     (long long)s.first.total, (long long)(2 * cases[k].per_image));
        sal_maps_free(&mp);
    }
}

/* A long method reports along the way, not only at its ends: 15x15 windows of stride 2, one
 * window per pass. */
Test(progress, a_long_method_reports_while_it_runs, .timeout = 600) {
    sal_explain_opts o = small_opts(SAL_M_OCCLUSION);
    o.occ_h = o.occ_w = 4;
    o.occ_stride_h = o.occ_stride_w = 2;
    o.batch = 1;
    seen s = {0};
    s.method = o.method;
    o.progress = watch;
    o.progress_user = &s;
    sal_maps mp;
    cr_assert_eq(sal_explain(sess, &o, input, 2, 32, 32, NULL, &mp), SAL_OK, "%s", sal_session_error(sess));
    cr_expect_eq(s.last.total, 2 * (15 * 15 + 1));
    cr_expect_gt(s.intermediate, 0, "calls between 0 and the total: %d calls", s.calls);
    cr_expect_leq(s.calls, s.last.total + 2, "at most a call per pass and the ends");
    sal_maps_free(&mp);
}

Test(progress, nonzero_cancels_cleanly) {
    const sal_method ms[] = {SAL_M_OCCLUSION, SAL_M_IG, SAL_M_SCORECAM, SAL_M_RISE, SAL_M_KERNELSHAP};
    for (size_t k = 0; k < sizeof ms / sizeof ms[0]; k++) {
        sal_explain_opts o = small_opts(ms[k]);
        o.batch = 1;
        seen s = {0};
        s.method = o.method;
        s.cancel_at = 1;   /* at the first report after a pass (the last one, when every pass is quicker
                              than SAL_PROGRESS_INTERVAL_MS: cancelled all the same) */
        o.progress = watch;
        o.progress_user = &s;
        sal_maps mp;
        memset(&mp, 0xff, sizeof mp);
        sal_status st = sal_explain(sess, &o, input, 2, 32, 32, NULL, &mp);
        cr_expect_eq(st, SAL_ERR_CANCELLED, "%s: cancelled, got %s", sal_method_name(o.method), sal_status_str(st));
        cr_expect(strstr(sal_session_error(sess), "cancelled"), "%s: says so: %s", sal_method_name(o.method),
                  sal_session_error(sess));
        cr_expect(mp.attr == NULL && mp.upsampled == NULL && mp.targets == NULL, "%s: no maps", sal_method_name(o.method));
        cr_expect_eq(s.after_cancel, 0, "%s: no call after the cancel", sal_method_name(o.method));
        /* the session goes on as before */
        o.progress = NULL;
        cr_expect_eq(sal_explain(sess, &o, input, 2, 32, 32, NULL, &mp), SAL_OK, "%s", sal_session_error(sess));
        sal_maps_free(&mp);
    }
}
