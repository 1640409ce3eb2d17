/* test_input_side.c — models as users bring them, on the input side (tests/fixtures/zoo/, written
 * by scripts/make-zoo-models.py):
 *  - a batch fixed at 1, by a Reshape that hard-codes it (cnn_view1: torch's x.view(1, -1)) or by
 *    the input's declaration (cnn_static1), runs pass by pass: forward, saliency, IG and occlusion
 *    on 3 images against the dynamic-batch twin with the same weights (cnn_dyn; its logits against
 *    onnxruntime's);
 *  - a channels-last (NHWC) input (nhwc: torch with a permute at the input, as Keras models come)
 *    is fed transposed: logits against onnxruntime's, the input gradient against torch autograd's
 *    (float64, transposed back to (C,H,W));
 *  - `salient info` says whether a model runs: exit 1 naming node and op for a Mod on run-time data
 *    and an op salient does not know, naming the layout for an input of neither layout; exit 0
 *    with the batch note and the layout otherwise; `salient predict` on a fixed-batch model says so
 *    once and gives the twin's classes.
 *
 * Tolerances: the twins run the same float32 arithmetic, except that a batch of 3 and three
 * batches of 1 may sum convolutions in other orders: 1e-5 of the largest value. NHWC: as
 * test_zoo's (logits 1e-5, gradient 1e-4 of the largest element; the model is smooth, GELU). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "io/io.h"
#include "testutil.h"
#include "testproc.h"

#define SALIENT SAL_BINARY_DIR "/salient"
#define TWIN_TOL 1e-5
enum { N = 3, K = 10, C = 3, HW = 32, IMG = C * HW * HW };

static void open_zoo(const char *stem, sal_model **m, sal_session **s) {
    char rel[256];
    snprintf(rel, sizeof rel, "tests/fixtures/zoo/%s.onnx", stem);
    sal_error err = {0};
    cr_assert_eq(tu_open(rel, SAL_DEVICE_CPU, m, s, &err), SAL_OK, "%s: %s", stem, err.msg);
}

/* ------------------------------------------------------------------------------------------------ */
/* A batch fixed at 1                                                                               */

static void explain_both(sal_session *fixed, sal_session *dyn, const float *x, sal_method method, int batch,
                         const char *what) {
    sal_explain_opts o = tu_quick_opts(method, 5);
    o.batch = batch;
    sal_maps a = {0}, b = {0};
    cr_assert_eq(sal_explain(dyn, &o, x, N, HW, HW, NULL, &b), SAL_OK, "%s twin: %s", what, sal_session_error(dyn));
    cr_assert_eq(sal_explain(fixed, &o, x, N, HW, HW, NULL, &a), SAL_OK, "%s %s (batch %d): %s", what,
                 sal_method_name(method), batch, sal_session_error(fixed));
    cr_expect_eq(a.batch, 1, "%s %s: the internal batch of a fixed-batch model is 1, not %d", what,
                 sal_method_name(method), a.batch);
    for (int i = 0; i < N; i++) cr_expect_eq(a.targets[i], b.targets[i], "%s image %d: target", what, i);
    double d = tu_rel_diff(a.attr, b.attr, N * sal_maps_per_image(&b), 1e-12);
    double ds = tu_rel_diff(a.scores, b.scores, N, 1e-12);
    cr_log_info("%s %s batch %d: maps rel diff %.3g, scores %.3g", what, sal_method_name(method), batch, d, ds);
    cr_expect(d < TWIN_TOL && ds < TWIN_TOL, "%s %s (batch %d): maps differ from the dynamic twin's by %.3g, "
              "scores by %.3g", what, sal_method_name(method), batch, d, ds);
    sal_maps_free(&a);
    sal_maps_free(&b);
}

static void check_fixed(const char *stem, const char *why_has) {
    sal_model *mf, *md;
    sal_session *sf, *sd;
    open_zoo(stem, &mf, &sf);
    open_zoo("cnn_dyn", &md, &sd);
    const char *why = NULL;
    cr_expect_eq(sal_model_max_batch(mf, &why), 1, "%s: max batch 1", stem);
    cr_expect(why && strstr(why, why_has), "%s: the reason names '%s': '%s'", stem, why_has, why ? why : "(null)");
    cr_expect_eq(sal_model_max_batch(md, NULL), 0, "cnn_dyn: any batch");
    cr_expect_eq(sal_session_max_batch(sf), 1, "%s: the session knows its maximum batch", stem);

    float *x = tp_load_npy("tests/fixtures/zoo/input3.npy", (int64_t)N * IMG);
    float *ort = tp_load_npy("tests/fixtures/zoo/cnn_dyn.logits.npy", N * K);
    float lf[N * K], ld[N * K];
    cr_assert_eq(sal_forward(sd, x, N, HW, HW, ld), SAL_OK, "twin forward: %s", sal_session_error(sd));
    cr_assert_eq(sal_forward(sf, x, N, HW, HW, lf), SAL_OK, "%s forward of 3 images: %s", stem, sal_session_error(sf));
    double e_ort = tu_rel_diff(ld, ort, N * K, 1.0), e_twin = tu_rel_diff(lf, ld, N * K, 1.0);
    cr_log_info("%s: twin vs onnxruntime %.3g, fixed vs twin %.3g", stem, e_ort, e_twin);
    cr_expect(e_ort < TWIN_TOL, "cnn_dyn's logits differ from onnxruntime's by %.3g", e_ort);
    cr_expect(e_twin < TWIN_TOL, "%s: logits of 3 images differ from the twin's by %.3g", stem, e_twin);

    /* the gradient API over 3 images with explicit targets: rows land where they belong */
    int tg[N] = {7, 2, 5};
    float *gf = malloc(sizeof(float) * N * IMG), *gd = malloc(sizeof(float) * N * IMG);
    float glf[N * K], gld[N * K];
    sal_grad_opts go = sal_grad_opts_default();
    go.targets = tg;
    sal_grad_out of = {glf, gf, NULL, NULL, NULL}, od = {gld, gd, NULL, NULL, NULL};
    cr_assert_eq(sal_gradient(sd, x, N, HW, HW, &go, &od), SAL_OK, "%s", sal_session_error(sd));
    cr_assert_eq(sal_gradient(sf, x, N, HW, HW, &go, &of), SAL_OK, "%s gradient: %s", stem, sal_session_error(sf));
    double eg = tu_rel_diff(gf, gd, (int64_t)N * IMG, 1e-12), egl = tu_rel_diff(glf, gld, N * K, 1.0);
    cr_expect(eg < TWIN_TOL && egl < TWIN_TOL, "%s: gradients differ from the twin's by %.3g, logits by %.3g",
              stem, eg, egl);

    explain_both(sf, sd, x, SAL_M_SALIENCY, 0, stem);
    explain_both(sf, sd, x, SAL_M_SALIENCY, 8, stem);   /* an explicit batch above the model's */
    explain_both(sf, sd, x, SAL_M_IG, 0, stem);
    explain_both(sf, sd, x, SAL_M_OCCLUSION, 0, stem);
    explain_both(sf, sd, x, SAL_M_OCCLUSION, 16, stem);
    free(x); free(ort); free(gf); free(gd);
    sal_session_free(sf); sal_session_free(sd);
    sal_model_free(mf); sal_model_free(md);
}

Test(fixed_batch, reshape_hard_codes_one, .timeout = 120) { check_fixed("cnn_view1", "Reshape"); }
Test(fixed_batch, input_declares_one, .timeout = 120) { check_fixed("cnn_static1", "declares a batch of 1"); }

/* ------------------------------------------------------------------------------------------------ */
/* Channels last                                                                                    */

Test(nhwc, fed_transposed_logits_and_gradient, .timeout = 60) {
    sal_model *m;
    sal_session *s;
    open_zoo("nhwc", &m, &s);
    cr_expect_str_eq(sal_model_input_layout(m), "NHWC");
    sal_tensor_info in, f;
    sal_model_input(m, 0, &in);
    sal_model_file_input(m, &f);
    cr_expect(in.ndim == 4 && in.dims[0] == -1 && in.dims[1] == C && in.dims[2] == HW && in.dims[3] == HW,
              "the session's input is (N,3,32,32)");
    cr_expect(f.ndim == 4 && f.dims[1] == HW && f.dims[2] == HW && f.dims[3] == C, "the file's is (N,32,32,3)");
    cr_expect_str_eq(f.name, "input_1");
    float *x = tp_load_npy("tests/fixtures/zoo/input3.npy", (int64_t)N * IMG);   /* (3,3,32,32) */
    float *ref_l = tp_load_npy("tests/fixtures/zoo/nhwc.logits.npy", N * K);
    float *ref_g = tp_load_npy("tests/fixtures/zoo/nhwc.grad.npy", (int64_t)N * IMG);
    float logits[N * K], *g = malloc(sizeof(float) * N * IMG);
    sal_grad_opts go = sal_grad_opts_default();
    sal_grad_out out = {logits, g, NULL, NULL, NULL};
    cr_assert_eq(sal_gradient(s, x, N, HW, HW, &go, &out), SAL_OK, "%s", sal_session_error(s));
    double le = tu_rel_diff(logits, ref_l, N * K, 1.0);
    cr_expect(le < 1e-5, "logits differ from onnxruntime's by %.3g", le);
    for (int i = 0; i < N; i++) {
        double ge = tu_rel_diff(g + i * IMG, ref_g + i * IMG, IMG, 1e-12);
        cr_log_info("nhwc image %d: logits %.3g, gradient %.3g", i, le, ge);
        cr_expect(ge < 1e-4, "image %d: the (C,H,W) gradient differs from torch's by %.3g", i, ge);
    }
    /* the maps come back (C,H,W), the saliency map the gradient's magnitude */
    sal_explain_opts o = sal_explain_opts_default(SAL_M_SALIENCY);
    sal_maps mp = {0};
    cr_assert_eq(sal_explain(s, &o, x, 1, HW, HW, NULL, &mp), SAL_OK, "%s", sal_session_error(s));
    cr_expect(mp.ndim == 3 && mp.dims[0] == C && mp.dims[1] == HW && mp.dims[2] == HW, "saliency map (3,32,32)");
    free(x); free(ref_l); free(ref_g); free(g);
    sal_maps_free(&mp);
    sal_session_free(s);
    sal_model_free(m);
}

/* Occlusion on the CPU runs by incremental inference, whose patches must follow the Transpose in
 * front (or fall back to full passes): the maps of full passes (occ_full) are the reference. */
Test(nhwc, occlusion_incremental_matches_full_passes, .timeout = 60) {
    sal_model *m;
    sal_session *s;
    open_zoo("nhwc", &m, &s);
    float *x = tp_load_npy("tests/fixtures/zoo/input3.npy", (int64_t)N * IMG);
    sal_explain_opts o = sal_explain_opts_default(SAL_M_OCCLUSION);
    sal_maps inc = {0}, full = {0};
    cr_assert_eq(sal_explain(s, &o, x, 2, HW, HW, NULL, &inc), SAL_OK, "%s", sal_session_error(s));
    o.occ_full = 1;
    cr_assert_eq(sal_explain(s, &o, x, 2, HW, HW, NULL, &full), SAL_OK, "%s", sal_session_error(s));
    double d = tu_rel_diff(inc.attr, full.attr, 2 * sal_maps_per_image(&full), 1e-12);
    cr_log_info("nhwc occlusion incremental vs full: %.3g", d);
    cr_expect(d < 1e-5, "incremental occlusion differs from full passes by %.3g", d);
    free(x);
    sal_maps_free(&inc);
    sal_maps_free(&full);
    sal_session_free(s);
    sal_model_free(m);
}

Test(nhwc, conformance_load_is_raw) {
    char path[1024];
    tu_src_path("tests/fixtures/zoo/nhwc.onnx", path, sizeof path);
    sal_model *m = NULL;
    sal_error err = {0};
    cr_assert_eq(sal_model_load_ex(path, SAL_LOAD_RAW, &m, &err), SAL_OK, "%s", err.msg);
    cr_expect_str_eq(sal_model_input_layout(m), "NCHW", "a raw load leaves the input as declared");
    sal_tensor_info in;
    sal_model_input(m, 0, &in);
    cr_expect(in.dims[3] == C, "raw input keeps (N,32,32,3)");
    sal_model_free(m);
}

/* ------------------------------------------------------------------------------------------------ */
/* The command line                                                                                 */

typedef struct run_result {
    int status;
    char out[65536], err[16384];
} run_result;

static void slurp(const char *path, char *buf, size_t len) {
    FILE *f = fopen(path, "rb");
    size_t n = f ? fread(buf, 1, len - 1, f) : 0;
    buf[n] = 0;
    if (f) fclose(f);
}

/* salient argv... (NULL-terminated) with stdout and stderr captured */
static void run(run_result *r, const char *tmp, const char *const *argv) {
    char po[512], pe[512];
    snprintf(po, sizeof po, "%s/out.txt", tmp);
    snprintf(pe, sizeof pe, "%s/err.txt", tmp);
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        if (!freopen(po, "w", stdout) || !freopen(pe, "w", stderr)) _exit(127);
        execv(SALIENT, (char *const *)argv);
        _exit(127);
    }
    int ws = 0;
    waitpid(pid, &ws, 0);
    r->status = WIFEXITED(ws) ? WEXITSTATUS(ws) : -1;
    slurp(po, r->out, sizeof r->out);
    slurp(pe, r->err, sizeof r->err);
}

static void zoo_path(const char *stem, char *buf, size_t len) {
    char rel[256];
    snprintf(rel, sizeof rel, "tests/fixtures/zoo/%s.onnx", stem);
    tu_src_path(rel, buf, (int)len);
}

static void info_expect(const char *tmp, const char *stem, int status, const char *in_out, const char *in_err) {
    static run_result r;
    char model[1024];
    zoo_path(stem, model, sizeof model);
    const char *argv[] = {SALIENT, "info", model, NULL};
    run(&r, tmp, argv);
    cr_expect_eq(r.status, status, "info %s: exit %d, expected %d\n%s\n%s", stem, r.status, status, r.out, r.err);
    if (in_out) cr_expect(strstr(r.out, in_out), "info %s: stdout has '%s':\n%s", stem, in_out, r.out);
    if (in_err) cr_expect(strstr(r.err, in_err), "info %s: stderr has '%s':\n%s", stem, in_err, r.err);
}

Test(cli_input_side, info_says_whether_the_model_runs, .timeout = 60) {
    char tmp[] = "/tmp/salient-input-side-XXXXXX";
    cr_assert_not_null(mkdtemp(tmp));
    info_expect(tmp, "runtime_mod", 1, "runs: no", "node 'mod_on_activations' (Mod) computes on run-time data");
    info_expect(tmp, "unknown_op", 1, NULL, "node 'det': op Det");
    info_expect(tmp, "bad_layout", 1, "runs: no", "input 'x' is (?,8,8,5): neither channels-first (N,C,H,W) nor channels-last");
    info_expect(tmp, "cnn_dyn", 0, "runs: yes", NULL);
    info_expect(tmp, "cnn_dyn", 0, "batch: any", NULL);
    info_expect(tmp, "cnn_view1", 0, "batch: one image per pass (node '/Reshape' (Reshape) hard-codes a batch of 1", NULL);
    info_expect(tmp, "cnn_static1", 0, "batch: one image per pass (input 'input' declares a batch of 1 (1,3,32,32))", NULL);
    info_expect(tmp, "nhwc", 0, "layout: channels-last (NHWC): the file's input input_1 is (?,32,32,3)", NULL);
    info_expect(tmp, "nhwc", 0, "runs: yes", NULL);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    cr_expect_eq(system(cmd), 0);
}

/* predict on 3 .npy inputs: the fixed-batch model says once that it runs one image per pass and
 * gives the classes its dynamic twin gives */
Test(cli_input_side, predict_on_a_fixed_batch_model, .timeout = 60) {
    char tmp[] = "/tmp/salient-input-side-XXXXXX";
    cr_assert_not_null(mkdtemp(tmp));
    float *x = tp_load_npy("tests/fixtures/zoo/input3.npy", (int64_t)N * IMG);
    char npy[N][600];
    int64_t dims[3] = {C, HW, HW};
    sal_error err = {0};
    for (int i = 0; i < N; i++) {
        snprintf(npy[i], sizeof npy[i], "%s/img%d.npy", tmp, i);
        cr_assert_eq(sal_npy_write(npy[i], x + i * IMG, 3, dims, &err), SAL_OK, "%s", err.msg);
    }
    char fixed[1024], dyn[1024];
    zoo_path("cnn_view1", fixed, sizeof fixed);
    zoo_path("cnn_dyn", dyn, sizeof dyn);
    static run_result a, b;
    const char *av[] = {SALIENT, "predict", "--device", "cpu", "--json", "-m", fixed, npy[0], npy[1], npy[2], NULL};
    run(&a, tmp, av);
    const char *bv[] = {SALIENT, "predict", "--device", "cpu", "--json", "-m", dyn, npy[0], npy[1], npy[2], NULL};
    run(&b, tmp, bv);
    cr_expect_eq(a.status, 0, "predict on cnn_view1: exit %d\n%s", a.status, a.err);
    cr_expect_eq(b.status, 0, "predict on cnn_dyn: exit %d\n%s", b.status, b.err);
    const char *note = strstr(a.err, "note: running one image per pass: node '/Reshape' (Reshape)");
    cr_expect(note, "the note: %s", a.err);
    cr_expect(!note || !strstr(note + 40, "one image per pass"), "the note comes once: %s", a.err);
    cr_expect(!strstr(b.err, "one image per pass"), "no note for the twin: %s", b.err);
    /* the same top-1 per input, in the same order */
    const char *pa = a.out, *pb = b.out;
    for (int i = 0; i < N; i++) {
        static const char key[] = "\"top\": [{\"class\": ";
        pa = strstr(pa, key);
        pb = strstr(pb, key);
        cr_assert(pa && pb, "a predicted class per input:\n%s\n%s", a.out, b.out);
        const size_t o = sizeof key - 1;
        cr_expect_eq(atoi(pa + o), atoi(pb + o), "input %d: class %d vs the twin's %d", i, atoi(pa + o), atoi(pb + o));
        pa++, pb++;
    }
    free(x);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    cr_expect_eq(system(cmd), 0);
}
