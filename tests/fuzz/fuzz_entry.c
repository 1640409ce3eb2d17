/* fuzz_entry.c — one input through salient's loaders (see fuzz_entry.h). Shared by the libFuzzer
 * harnesses and the Criterion regression replay, so that a crash file replays exactly. */
#include "fuzz_entry.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/io.h"
#include "salient.h"

#define FUZZ_MEM_LIMIT ((size_t)64 << 20)
#define FUZZ_MAX_INPUT_FLOATS ((int64_t)1 << 16)   /* forward only on small inputs */

int sal_fuzz_onnx_one(const uint8_t *data, size_t size) {
    sal_error err;
    return sal_fuzz_onnx_run(data, size, &err);
}

int sal_fuzz_onnx_run(const uint8_t *data, size_t size, sal_error *err_out) {
    sal_error local, *errp = err_out ? err_out : &local;
    sal_error err = {0};
    sal_model *m = NULL;
    sal_status st = sal_model_load_buffer(data, size, "fuzz.onnx", &m, &err);
    if (st) { err.status = st; *errp = err; return (int)st; }
    sal_session_opts o = sal_session_opts_default();
    o.device = SAL_DEVICE_CPU;
    o.threads = 1;
    o.mem_limit = FUZZ_MEM_LIMIT;
    sal_session *s = NULL;
    st = sal_session_create(m, &o, &s, &err);
    int h = 16, w = 16;   /* the model's own sides when it fixes them, else 16x16 */
    sal_tensor_info in = {0};
    if (!st && sal_model_num_inputs(m) >= 1) {
        sal_model_input(m, 0, &in);
        if (in.ndim == 4 && in.dims[2] > 0 && in.dims[2] <= (1 << 20)) h = (int)in.dims[2];
        if (in.ndim == 4 && in.dims[3] > 0 && in.dims[3] <= (1 << 20)) w = (int)in.dims[3];
    }
    /* a batch of 2 (1 for a model that runs one image at a time; sal_forward splits the 2) */
    if (!st) st = sal_session_plan(s, sal_session_max_batch(s) == 1 ? 1 : 2, h, w);
    if (!st && sal_model_num_inputs(m) == 1) {
        int64_t numel = 2;
        int ok = in.ndim == 4;
        for (int i = 1; ok && i < in.ndim; i++) {
            int64_t d = in.dims[i] > 0 ? in.dims[i] : i == 2 ? h : i == 3 ? w : 16;
            ok = d > 0 && d <= FUZZ_MAX_INPUT_FLOATS && numel * d <= FUZZ_MAX_INPUT_FLOATS;
            numel *= d;
        }
        int k = sal_session_num_classes(s);
        if (ok && k > 0 && k <= (1 << 20)) {
            float *x = calloc((size_t)numel, sizeof(float));   /* (2,C,H,W) */
            float *logits = calloc((size_t)k * 2, sizeof(float));   /* (2,K) */
            if (x && logits) st = sal_forward(s, x, 2, h, w, logits);
            free(x);
            free(logits);
        }
    }
    err.status = st;
    if (st && s && *sal_session_error(s))
        snprintf(err.msg, sizeof err.msg, "%s", sal_session_error(s));
    *errp = err;
    sal_session_free(s);
    sal_model_free(m);
    return (int)st;
}

/* Write the bytes to a file private to this process; returns its path (static per process:
 * harnesses run one input at a time). */
static const char *scratch_file(const char *ext, const uint8_t *data, size_t size) {
    static char path[256];
    const char *dir = getenv("TMPDIR");
    if (!dir || !*dir) dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(path, sizeof path, "%s/salient-fuzz-%ld%s", dir, (long)getpid(), ext);
    FILE *f = fopen(path, "wb");
    if (!f) return NULL;
    int ok = size == 0 || fwrite(data, 1, size, f) == size;
    if (fclose(f) != 0 || !ok) { unlink(path); return NULL; }
    return path;
}

int sal_fuzz_image_one(const uint8_t *data, size_t size) {
    const char *path = scratch_file(".img", data, size);
    if (!path) return -1;
    sal_error err;
    sal_image img;
    sal_status st = sal_image_load(path, &img, &err);
    unlink(path);
    if (st) return (int)st;
    float out[3 * 24 * 24];   /* (3,24,24) */
    sal_prep_opts p = sal_prep_opts_imagenet(24, 24);
    st = sal_preprocess(&img, &p, out, &err);
    if (!st) {
        sal_prep_opts g = sal_prep_opts_gray(17, 13);   /* (1,17,13) */
        st = sal_preprocess(&img, &g, out, &err);
    }
    sal_image_free(&img);
    return (int)st;
}

int sal_fuzz_npy_one(const uint8_t *data, size_t size) {
    const char *path = scratch_file(".npy", data, size);
    if (!path) return -1;
    sal_error err;
    float *x = NULL;
    int ndim = 0;
    int64_t dims[SAL_MAX_DIMS];
    sal_status st = sal_npy_read(path, &x, &ndim, dims, &err);
    unlink(path);
    free(x);
    return (int)st;
}
