/* test_cli_messages.c — what the `salient` program says when a user slips: misspelled methods,
 * options, commands and class labels get "did you mean 'x'?" (by edit distance) and the list of
 * choices; --target with --topk is refused; `bench --help` is bench's usage alone; the GPU note is
 * absent with --device cpu, one line at most otherwise, and never before the error of a command
 * that fails. Usage errors exit 2 and write nothing. The program runs in a child process with
 * stdout and stderr captured; the model is the tiny fixture CNN of tests/fixtures/methods (input
 * (N,3,32,32), 10 classes, no labels of its own). */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "salient.h"
#include "backend/backend.h"
#include "io/io.h"
#include "post/post.h"

#define SALIENT SAL_BINARY_DIR "/salient"
#define TINYCNN SAL_SOURCE_DIR "/tests/fixtures/methods/tinycnn.onnx"

/* ------------------------------------------------------------------------------------------------ */
/* Running the program                                                                              */

typedef struct run_result {
    int status;       /* exit status; -1 when killed */
    char out[65536];  /* stdout, NUL-terminated (truncated) */
    char err[65536];  /* stderr */
} run_result;

static void slurp_into(const char *path, char *buf, size_t len) {
    buf[0] = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return;
    size_t n = fread(buf, 1, len - 1, f);
    buf[n] = 0;
    fclose(f);
}

/* run(r, dir, "arg", ..., NULL): salient with these arguments, output captured in files of dir. */
static void run(run_result *r, const char *dir, ...) {
    const char *argv[64] = {SALIENT};
    int n = 1;
    va_list ap;
    va_start(ap, dir);
    const char *a;
    while ((a = va_arg(ap, const char *)) && n < 63) argv[n++] = a;
    va_end(ap);
    argv[n] = NULL;
    char po[512], pe[512];
    snprintf(po, sizeof po, "%s/.out", dir);
    snprintf(pe, sizeof pe, "%s/.err", dir);
    fflush(NULL);
    pid_t pid = fork();
    cr_assert_neq(pid, -1, "fork: %s", strerror(errno));
    if (pid == 0) {
        int fo = open(po, O_WRONLY | O_CREAT | O_TRUNC, 0644), fe = open(pe, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fo < 0 || fe < 0 || dup2(fo, 1) < 0 || dup2(fe, 2) < 0) _exit(127);
        execv(SALIENT, (char *const *)argv);
        _exit(127);
    }
    int ws = 0;
    while (waitpid(pid, &ws, 0) < 0 && errno == EINTR) {}
    r->status = WIFEXITED(ws) ? WEXITSTATUS(ws) : -1;
    slurp_into(po, r->out, sizeof r->out);
    slurp_into(pe, r->err, sizeof r->err);
    unlink(po);
    unlink(pe);
    cr_assert_neq(r->status, 127, "could not run %s", SALIENT);
    cr_assert_neq(r->status, -1, "killed by a signal: %s", r->err);
}

static void make_tmp(char *dir, size_t len) {
    snprintf(dir, len, "/tmp/salient_msg_XXXXXX");
    cr_assert_not_null(mkdtemp(dir), "mkdtemp: %s", strerror(errno));
}

static void remove_flat(const char *dir) {   /* the scratch folders here hold files only */
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

/* A (3,32,32) float32 .npy input for the fixture CNN. */
static void write_input(const char *path) {
    static float x[3 * 32 * 32];
    for (int i = 0; i < 3 * 32 * 32; i++) x[i] = (float)((i * 37) % 101) / 50.0f - 1.0f;
    int64_t dims[3] = {3, 32, 32};
    sal_error err = {0};
    cr_assert_eq(sal_npy_write(path, x, 3, dims, &err), SAL_OK, "%s", err.msg);
}

static int n_entries(const char *dir) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "ls -A '%s' | grep -v '^\\.out$\\|^\\.err$\\|^in.npy$\\|^labels.txt$' | wc -l", dir);
    FILE *p = popen(cmd, "r");
    int n = -1;
    if (p) { if (fscanf(p, "%d", &n) != 1) n = -1; pclose(p); }
    return n;
}

/* ------------------------------------------------------------------------------------------------ */
/* Did you mean                                                                                     */

Test(messages, misspelled_names_get_a_suggestion, .timeout = 60) {
    char tmp[64], in[128], out[128], labels[128];
    make_tmp(tmp, sizeof tmp);
    snprintf(in, sizeof in, "%s/in.npy", tmp);
    snprintf(out, sizeof out, "%s/out", tmp);
    snprintf(labels, sizeof labels, "%s/labels.txt", tmp);
    write_input(in);
    FILE *f = fopen(labels, "w");
    cr_assert_not_null(f);
    fputs("tench\ngoldfish\ngreat white shark\ntiger shark\nhammerhead\nelectric ray\nstingray\ncock\nhen\nostrich\n", f);
    fclose(f);
    static run_result r;
    /* a method: the near one and every choice */
    run(&r, tmp, "explain", "-m", TINYCNN, "-M", "saliency,gradcm", in, "-o", out, NULL);
    cr_expect_eq(r.status, 2, "exit %d", r.status);
    cr_expect(strstr(r.err, "'gradcm'") && strstr(r.err, "did you mean 'gradcam'?"), "stderr: %s", r.err);
    cr_expect(strstr(r.err, "kernelshap") && strstr(r.err, "saliency"), "the choices are listed: %s", r.err);
    /* a word that is no typo of any method gets the list only */
    run(&r, tmp, "explain", "-m", TINYCNN, "-M", "lime", in, "-o", out, NULL);
    cr_expect_eq(r.status, 2);
    cr_expect(strstr(r.err, "'lime'") && !strstr(r.err, "did you mean") && strstr(r.err, "gradcam"), "stderr: %s", r.err);
    /* an option of explain, of predict, a common option, and a command */
    run(&r, tmp, "explain", "-m", TINYCNN, "--tagret", "3", in, "-o", out, NULL);
    cr_expect_eq(r.status, 2);
    cr_expect(strstr(r.err, "unknown option '--tagret'") && strstr(r.err, "did you mean '--target'?"), "stderr: %s", r.err);
    run(&r, tmp, "predict", "-m", TINYCNN, "--tpok", "3", in, NULL);
    cr_expect_eq(r.status, 2);
    cr_expect(strstr(r.err, "did you mean '--topk'?"), "stderr: %s", r.err);
    run(&r, tmp, "explain", "-m", TINYCNN, "--lables", labels, in, "-o", out, NULL);
    cr_expect_eq(r.status, 2);
    cr_expect(strstr(r.err, "did you mean '--labels'?"), "stderr: %s", r.err);
    run(&r, tmp, "explian", NULL);
    cr_expect_eq(r.status, 2);
    cr_expect(strstr(r.err, "did you mean 'explain'?"), "stderr: %s", r.err);
    /* a class label, and the noise tunnel's inner method */
    run(&r, tmp, "explain", "-m", TINYCNN, "--labels", labels, "--target", "tigre shark", in, "-o", out, NULL);
    cr_expect_eq(r.status, 2);
    cr_expect(strstr(r.err, "tigre shark") && strstr(r.err, "did you mean 'tiger shark'?"), "stderr: %s", r.err);
    run(&r, tmp, "explain", "-m", TINYCNN, "--labels", labels, "--target", "zebra", in, "-o", out, NULL);
    cr_expect_eq(r.status, 2);
    cr_expect(strstr(r.err, "zebra") && !strstr(r.err, "did you mean"), "no suggestion for no near name: %s", r.err);
    run(&r, tmp, "explain", "-m", TINYCNN, "-M", "smoothgrad", "--nt-inner", "saliancy", in, "-o", out, NULL);
    cr_expect_eq(r.status, 2);
    cr_expect(strstr(r.err, "did you mean 'saliency'?"), "stderr: %s", r.err);
    cr_expect_eq(n_entries(tmp), 0, "usage errors wrote files");
    remove_flat(tmp);
}

/* ------------------------------------------------------------------------------------------------ */
/* Conflicting options, help                                                                        */

Test(messages, target_with_topk_is_refused, .timeout = 60) {
    char tmp[64], in[128], out[128];
    make_tmp(tmp, sizeof tmp);
    snprintf(in, sizeof in, "%s/in.npy", tmp);
    snprintf(out, sizeof out, "%s/out", tmp);
    write_input(in);
    static run_result r;
    run(&r, tmp, "explain", "-m", TINYCNN, "--target", "3", "--topk", "2", in, "-o", out, NULL);
    cr_expect_eq(r.status, 2, "exit %d: %s", r.status, r.err);
    cr_expect(strstr(r.err, "--target") && strstr(r.err, "--topk"), "stderr names both: %s", r.err);
    cr_expect_eq(n_entries(tmp), 0, "nothing written");
    /* each alone is fine; --topk names the files .topN */
    run(&r, tmp, "explain", "-m", TINYCNN, "--topk", "2", in, "-o", out, NULL);
    cr_expect_eq(r.status, 0, "exit %d: %s", r.status, r.err);
    char p[256];
    snprintf(p, sizeof p, "%s/in.saliency.top2.png", out);
    cr_expect_eq(access(p, F_OK), 0, "%s written", p);
    remove_flat(tmp);
}

Test(messages, bench_help_is_bench_usage_only) {
    char tmp[64];
    make_tmp(tmp, sizeof tmp);
    static run_result r;
    run(&r, tmp, "bench", "--help", NULL);
    cr_expect_eq(r.status, 0);
    cr_expect(strstr(r.out, "usage: salient bench"), "bench's usage: %s", r.out);
    cr_expect(!strstr(r.out, "usage: salient explain"), "not explain's usage: %s", r.out);
    cr_expect(!strstr(r.out, "--heatmap") && !strstr(r.out, "--raw") && !strstr(r.out, "--topk"),
              "no explain-only options: %s", r.out);
    cr_expect(strstr(r.out, "--images") && strstr(r.out, "--steps") && strstr(r.out, "--device"),
              "bench's, the methods' and the common options: %s", r.out);
    run(&r, tmp, "explain", "--help", NULL);
    cr_expect(strstr(r.out, "usage: salient explain") && !strstr(r.out, "usage: salient bench") &&
              strstr(r.out, "--heatmap") && strstr(r.out, ".top1"), "explain --help: %s", r.out);
    remove_flat(tmp);
}

/* ------------------------------------------------------------------------------------------------ */
/* The GPU note                                                                                     */

Test(messages, gpu_note_only_when_a_gpu_was_expected, .timeout = 60) {
    char tmp[64], in[128], out[128];
    make_tmp(tmp, sizeof tmp);
    snprintf(in, sizeof in, "%s/in.npy", tmp);
    snprintf(out, sizeof out, "%s/out", tmp);
    write_input(in);
    static run_result r;
    /* --device cpu: nothing about GPUs */
    run(&r, tmp, "predict", "-m", TINYCNN, "--device", "cpu", in, NULL);
    cr_expect_eq(r.status, 0, "%s", r.err);
    cr_expect(!strstr(r.err, "GPU") && !strstr(r.err, "NVIDIA") && !strstr(r.err, "CUDA") && !strstr(r.err, "note"),
              "--device cpu says nothing about GPUs: %s", r.err);
    /* auto: at most one short line; on a machine without a driver, the plain words */
    run(&r, tmp, "predict", "-m", TINYCNN, in, NULL);
    cr_expect_eq(r.status, 0, "%s", r.err);
    const char *note = strstr(r.err, "note:");
    int cuda_machine = sal_backend_cuda_built();
    if (note) {
        cr_expect(!strstr(note + 1, "note:"), "one note: %s", r.err);
        const char *eol = strchr(note, '\n');
        cr_expect(eol && eol - note < 160, "one short line: %s", r.err);
        cr_expect(strstr(note, "running on the CPU"), "says what happens: %s", r.err);
        if (access("/proc/driver/nvidia/version", F_OK) != 0)
            cr_expect(strstr(note, "no NVIDIA driver found; running on the CPU"), "plain words: %s", r.err);
    } else {
        cr_expect(!cuda_machine || access("/proc/driver/nvidia/version", F_OK) == 0,
                  "a CUDA build without a driver notes the fallback: %s", r.err);
    }
    /* a command that fails its checks prints its error, and no note before it */
    run(&r, tmp, "explain", "-m", TINYCNN, "--target", "99", in, "-o", out, NULL);
    cr_expect_eq(r.status, 2, "%s", r.err);
    cr_expect(strncmp(r.err, "salient: --target 99", 20) == 0, "the error comes first: %s", r.err);
    cr_expect(!strstr(r.err, "note:"), "no note for a command that did not run: %s", r.err);
    remove_flat(tmp);
}

/* ------------------------------------------------------------------------------------------------ */
/* info: the preprocessing a model gets, its labels, its default CAM layer                          */

Test(messages, info_shows_preprocessing_labels_and_cam_layer, .timeout = 60) {
    char tmp[64];
    make_tmp(tmp, sizeof tmp);
    static run_result r;
    /* the fixture has no metadata: ImageNet's conventions, no labels; its last 4-D layer larger
     * than 1x1 is head.relu, (1,32,16,16) (tests/fixtures/methods/README.md's layer table: the 1x1
     * head.conv keeps cam.relu's (N,32,16,16), head.pool follows) */
    run(&r, tmp, "info", TINYCNN, NULL);
    cr_expect_eq(r.status, 0, "%s", r.err);
    cr_expect(strstr(r.out, "shorter side to 37, then centre-crop 32x32 (the field's 0.875 crop ratio)"), "%s", r.out);
    cr_expect(strstr(r.out, "minus mean (0.485, 0.456, 0.406) (ImageNet's)"), "%s", r.out);
    cr_expect(strstr(r.out, "divided by std (0.229, 0.224, 0.225) (ImageNet's)"), "%s", r.out);
    cr_expect(strstr(r.out, "labels: none"), "%s", r.out);
    cr_expect(strstr(r.out, "default CAM layer: head.relu (1,32,16,16)"), "%s", r.out);
    /* flags given to info are what predict and explain would do with them */
    run(&r, tmp, "info", "--mean", "0.5", "--std", "0.25", "--crop", "0", TINYCNN, NULL);
    cr_expect_eq(r.status, 0, "%s", r.err);
    cr_expect(strstr(r.out, "stretched to 32x32, no crop (--crop)"), "%s", r.out);
    cr_expect(strstr(r.out, "minus mean (0.5, 0.5, 0.5) (--mean)") && strstr(r.out, "(0.25, 0.25, 0.25) (--std)"), "%s", r.out);
    /* a model carrying its own (EfficientNet-Lite0 from scripts/fetch-models: (x-127)/128, 256, labels) */
    const char *eff = SAL_SOURCE_DIR "/models/efficientnet_lite0.onnx";
    if (access(eff, R_OK) == 0) {
        run(&r, tmp, "info", eff, NULL);
        cr_expect_eq(r.status, 0, "%s", r.err);
        cr_expect(strstr(r.out, "shorter side to 256, then centre-crop 224x224 (the model's salient.resize)"), "%s", r.out);
        cr_expect(strstr(r.out, "(the model's salient.mean)") && strstr(r.out, "(the model's salient.std)"), "%s", r.out);
        cr_expect(strstr(r.out, "1000 classes, the model's salient.labels"), "%s", r.out);
        cr_expect(strstr(r.out, "default CAM layer: head.relu6 (1,1280,7,7)"), "%s", r.out);
    }
    remove_flat(tmp);
}

/* Transformers: the CAM layer info and explain name (tokens, a ConvNeXt's last stage rather than
 * its classifier's (N,1,1,C) norm), the attention layers of rollout and chefer, and the layers
 * refused by name before anything is written (tests/fixtures/zoo/, test_attention checks the maps). */
Test(messages, transformer_cam_and_attention_layers, .timeout = 60) {
    char tmp[64], in[128], out[128];
    make_tmp(tmp, sizeof tmp);
    snprintf(in, sizeof in, "%s/in.npy", tmp);
    snprintf(out, sizeof out, "%s/out", tmp);
    write_input(in);
    const char *vit = SAL_SOURCE_DIR "/tests/fixtures/zoo/vit_op13.onnx";
    const char *cnx = SAL_SOURCE_DIR "/tests/fixtures/zoo/convnext_op13.onnx";
    static run_result r;
    run(&r, tmp, "info", vit, NULL);
    cr_expect_eq(r.status, 0, "%s", r.err);
    cr_expect(strstr(r.out, "default CAM layer: /encoder/layers/encoder_layer_1/ln_1/Add_1 (1,17,32): tokens on a 4x4 "
                     "grid after a class token"), "%s", r.out);
    cr_expect(strstr(r.out, "attention layers (rollout, chefer): 2, /encoder/layers/encoder_layer_0/self_attention/Softmax"),
              "%s", r.out);
    run(&r, tmp, "info", cnx, NULL);
    cr_expect(strstr(r.out, "default CAM layer: /features/features.3/features.3.0/Add (1,32,4,4): a 4x4 map"), "%s", r.out);
    cr_expect(!strstr(r.out, "attention layers"), "%s", r.out);
    /* explain notes the layers it chose, once each */
    run(&r, tmp, "explain", "-m", vit, "-M", "gradcam,gradcam++,rollout,chefer", in, "-o", out, NULL);
    cr_expect_eq(r.status, 0, "%s", r.err);
    const char *note = strstr(r.err, "note: CAM layer /encoder/layers/encoder_layer_1/ln_1/Add_1");
    cr_expect(note && !strstr(note + 1, "note: CAM layer"), "one CAM layer note: %s", r.err);
    note = strstr(r.err, "note: attention layers: 2 ");
    cr_expect(note && !strstr(note + 1, "note: attention layers"), "one attention note: %s", r.err);
    run(&r, tmp, "explain", "-q", "-m", vit, "-M", "gradcam,rollout", in, "-o", out, NULL);
    cr_expect(!strstr(r.err, "note"), "--quiet: %s", r.err);
    /* refused by name, exit 2, nothing written */
    char out2[160];
    snprintf(out2, sizeof out2, "%s/out2", tmp);
    run(&r, tmp, "explain", "-m", cnx, "-M", "gradcam", "--layer", "/classifier/classifier.0/Add_1", in, "-o", out2, NULL);
    cr_expect_eq(r.status, 2, "%s", r.err);
    cr_expect(strstr(r.err, "/classifier/classifier.0/Add_1") && strstr(r.err, "side of 1"), "%s", r.err);
    run(&r, tmp, "explain", "-m", vit, "-M", "gradcam", "--tokens", "3x3", in, "-o", out2, NULL);
    cr_expect_eq(r.status, 2, "%s", r.err);
    cr_expect(strstr(r.err, "--tokens 3x3") && strstr(r.err, "9 or 10 tokens"), "%s", r.err);
    run(&r, tmp, "explain", "-m", cnx, "-M", "rollout", in, "-o", out2, NULL);
    cr_expect_eq(r.status, 2, "%s", r.err);
    cr_expect(strstr(r.err, "no attention layer"), "%s", r.err);
    run(&r, tmp, "explain", "-m", vit, "-M", "chefer", "--attention-layers", "nope", in, "-o", out2, NULL);
    cr_expect_eq(r.status, 2, "%s", r.err);
    cr_expect(strstr(r.err, "--attention-layers") && strstr(r.err, "'nope'"), "%s", r.err);
    run(&r, tmp, "explain", "-m", vit, "-M", "rollout,chefer", "--head-fusion", "max", in, "-o", out2, NULL);
    cr_expect_eq(r.status, 2, "%s", r.err);
    cr_expect(strstr(r.err, "--head-fusion") && strstr(r.err, "rollout's option"), "%s", r.err);
    run(&r, tmp, "explain", "-m", vit, "-M", "rollout", "--discard", "1.5", in, "-o", out2, NULL);
    cr_expect_eq(r.status, 2, "%s", r.err);
    cr_expect(strstr(r.err, "--discard"), "%s", r.err);
    cr_expect(access(out2, F_OK) != 0, "a refused run wrote %s", out2);
    remove_flat(out);
    remove_flat(tmp);
}

/* ------------------------------------------------------------------------------------------------ */
/* Pictures: the overlay's default opacity                                                          */

/* The overlay explain writes, recomputed on the host from its --raw array with the documented
 * defaults: gradient methods (saliency) abs-max, clipped at the 99th percentile, jet, opacity by
 * value with alpha 0.8; occlusion signed, unclipped, bwr, opacity by value with alpha 0.8 (the
 * post functions are checked by hand in test_post). */
static void expect_overlay(const char *dir, const char *method, int c_used, int signed_map, double clip,
                           sal_colormap cm, float alpha, int flags) {
    char p[512];
    snprintf(p, sizeof p, "%s/out/photo.%s.npy", dir, method);
    float *raw = NULL;
    int nd = 0;
    int64_t d[SAL_MAX_DIMS];
    sal_error err = {0};
    cr_assert_eq(sal_npy_read(p, &raw, &nd, d, &err), SAL_OK, "%s", err.msg);
    const int h = (int)d[nd - 2], w = (int)d[nd - 1];
    float *map = malloc(sizeof(float) * (size_t)h * w);
    if (c_used > 1) cr_assert_eq(sal_reduce_channels(raw, c_used, h, w, SAL_REDUCE_ABS_MAX, map, &err), SAL_OK);
    else memcpy(map, raw, sizeof(float) * (size_t)h * w);
    if (clip < 100) cr_assert_eq(sal_clip_percentile(map, (size_t)h * w, clip, signed_map, NULL, &err), SAL_OK);
    sal_normalize(map, (size_t)h * w, signed_map, map);
    snprintf(p, sizeof p, "%s/photo.png", dir);
    sal_image orig;
    cr_assert_eq(sal_image_load(p, &orig, &err), SAL_OK, "%s", err.msg);
    sal_prep_opts prep = sal_prep_opts_imagenet(32, 32);
    prep.resize_shorter = 37;   /* 32 / 0.875, the CLI's default crop, never enlarging */
    prep.crop_no_enlarge = 1;
    float rect[4];
    cr_assert_eq(sal_prep_rect(orig.w, orig.h, &prep, rect), SAL_OK);
    uint8_t *want = malloc((size_t)orig.w * orig.h * 3), *other = malloc((size_t)orig.w * orig.h * 3);
    cr_assert_eq(sal_overlay(&orig, map, h, w, rect, cm, alpha, flags, want), SAL_OK);
    /* the other opacity, for contrast: the test can tell them apart */
    cr_assert_eq(sal_overlay(&orig, map, h, w, rect, cm, flags & SAL_OVERLAY_BY_VALUE ? 0.5f : 0.8f,
                             flags ^ SAL_OVERLAY_BY_VALUE, other), SAL_OK);
    snprintf(p, sizeof p, "%s/out/photo.%s.png", dir, method);
    sal_image got;
    cr_assert_eq(sal_image_load(p, &got, &err), SAL_OK, "%s", err.msg);
    cr_assert(got.w == orig.w && got.h == orig.h && got.c == 3);
    size_t n = (size_t)orig.w * orig.h * 3, bad = 0, differ = 0;
    for (size_t i = 0; i < n; i++) {
        bad += abs((int)got.pix[i] - (int)want[i]) > 1;   /* the device's rounding may differ by 1 */
        differ += want[i] != other[i];
    }
    cr_expect_eq(bad, 0, "%s: %zu of %zu bytes differ from the documented default overlay", method, bad, n);
    cr_expect_gt(differ, n / 10, "%s: the two opacities differ in only %zu bytes", method, differ);
    free(raw); free(map); free(want); free(other);
    sal_image_free(&orig);
    sal_image_free(&got);
}

Test(messages, overlay_opacity_defaults, .timeout = 120) {
    char tmp[64], png[128], out[128];
    make_tmp(tmp, sizeof tmp);
    snprintf(png, sizeof png, "%s/photo.png", tmp);
    snprintf(out, sizeof out, "%s/out", tmp);
    static uint8_t rgb[50 * 40 * 3];   /* 50 wide, 40 high: cropped to the model's 32x32 */
    for (int i = 0; i < 50 * 40; i++)
        for (int k = 0; k < 3; k++) rgb[3 * i + k] = (uint8_t)((i % 50) * 4 + (i / 50) * 3 * (k + 1) + 60 * k);
    sal_error err = {0};
    cr_assert_eq(sal_png_write_rgb(png, 50, 40, rgb, &err), SAL_OK, "%s", err.msg);
    static run_result r;
    run(&r, tmp, "explain", "-m", TINYCNN, "-M", "saliency,occlusion", "--window", "8", "--stride", "4", "--raw",
        png, "-o", out, NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    expect_overlay(tmp, "saliency", 3, 0, 99.0, SAL_CMAP_JET, 0.8f, SAL_OVERLAY_BY_VALUE);
    expect_overlay(tmp, "occlusion", 1, 1, 100.0, SAL_CMAP_BWR, 0.8f, SAL_OVERLAY_SIGNED | SAL_OVERLAY_BY_VALUE);
    /* --opacity overrides the default, --alpha the peak */
    run(&r, tmp, "explain", "-m", TINYCNN, "-M", "saliency", "--opacity", "constant", "--alpha", "0.5", "--raw", png,
        "-o", out, NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    expect_overlay(tmp, "saliency", 3, 0, 99.0, SAL_CMAP_JET, 0.5f, 0);
    run(&r, tmp, "explain", "-m", TINYCNN, "-M", "saliency", "--opacity", "mapp", png, "-o", out, NULL);
    cr_expect_eq(r.status, 2);
    cr_expect(strstr(r.err, "did you mean 'map'?"), "%s", r.err);
    remove_flat(tmp);
}

/* --colorbar: the overlay gains a strip of sal_colorbar_height(width) rows under it (the picture
 * above unchanged), whose labels are the values of --raw's map at the colour scale's ends. */
Test(messages, colorbar_under_the_overlay, .timeout = 120) {
    char tmp[64], png[128], out[128], p[256];
    make_tmp(tmp, sizeof tmp);
    snprintf(png, sizeof png, "%s/photo.png", tmp);
    static uint8_t rgb[64 * 48 * 3];
    for (int i = 0; i < 64 * 48 * 3; i++) rgb[i] = (uint8_t)(i * 7 % 251);
    sal_error err = {0};
    cr_assert_eq(sal_png_write_rgb(png, 64, 48, rgb, &err), SAL_OK, "%s", err.msg);
    static run_result r;
    snprintf(out, sizeof out, "%s/plain", tmp);
    run(&r, tmp, "explain", "-m", TINYCNN, "-M", "gradcam", png, "-o", out, NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    snprintf(out, sizeof out, "%s/bar", tmp);
    run(&r, tmp, "explain", "-m", TINYCNN, "-M", "gradcam", "--colorbar", "--heatmap", png, "-o", out, NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    sal_image a, b, hm;
    snprintf(p, sizeof p, "%s/plain/photo.gradcam.png", tmp);
    cr_assert_eq(sal_image_load(p, &a, &err), SAL_OK, "%s", err.msg);
    snprintf(p, sizeof p, "%s/bar/photo.gradcam.png", tmp);
    cr_assert_eq(sal_image_load(p, &b, &err), SAL_OK, "%s", err.msg);
    cr_expect(a.w == 64 && a.h == 48, "plain overlay %dx%d", a.w, a.h);
    cr_expect(b.w == 64 && b.h == 48 + sal_colorbar_height(64), "overlay with its bar %dx%d", b.w, b.h);
    cr_expect_eq(memcmp(a.pix, b.pix, (size_t)64 * 48 * 3), 0, "the picture above the bar is the same");
    /* the strip is sal_colorbar's for the CAM's range: min-max normalized CAMs go from 0 to 1 */
    uint8_t *strip = malloc((size_t)64 * sal_colorbar_height(64) * 3);
    cr_assert_eq(sal_colorbar(strip, 64, SAL_CMAP_JET, 0, 0.0f, 1.0f), SAL_OK);
    cr_expect_eq(memcmp(strip, b.pix + (size_t)64 * 48 * 3, (size_t)64 * sal_colorbar_height(64) * 3), 0,
                 "the strip is the jet bar labelled 0 and 1");
    snprintf(p, sizeof p, "%s/bar/photo.gradcam.heatmap.png", tmp);
    cr_assert_eq(sal_image_load(p, &hm, &err), SAL_OK, "%s", err.msg);
    cr_expect(hm.w == 32 && hm.h == 32 + sal_colorbar_height(32), "heatmap with its bar %dx%d", hm.w, hm.h);
    free(strip);
    sal_image_free(&a);
    sal_image_free(&b);
    sal_image_free(&hm);
    remove_flat(tmp);
}

/* ------------------------------------------------------------------------------------------------ */
/* The sample photos and their preprocessed copies live apart                                       */

/* scripts/fetch-models keeps the .npy fixtures in samples-npy/, so a folder walk over samples/
 * lists each photo once (it used to list chelsea.png and chelsea.npy, with different numbers). */
Test(messages, samples_folder_lists_each_photo_once, .timeout = 60) {
    const char *samples = SAL_SOURCE_DIR "/samples", *npy = SAL_SOURCE_DIR "/samples-npy/chelsea.npy";
    if (access(SAL_SOURCE_DIR "/samples/chelsea.png", R_OK)) cr_skip_test("no samples/: run scripts/fetch-models");
    cr_expect_eq(access(npy, R_OK), 0, "the fixtures are in samples-npy/");
    char tmp[64];
    make_tmp(tmp, sizeof tmp);
    static run_result r;
    run(&r, tmp, "predict", "-m", TINYCNN, samples, NULL);
    cr_expect_eq(r.status, 0, "%s", r.err);
    int photos = 0;
    for (const char *p = strstr(r.out, "/samples/"); p; p = strstr(p + 1, "/samples/")) photos++;
    cr_expect_eq(photos, 7, "seven photos, each once: %s", r.out);
    cr_expect(!strstr(r.out, ".npy"), "no preprocessed copy among them: %s", r.out);
    remove_flat(tmp);
}
