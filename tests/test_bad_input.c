/* test_bad_input.c — robustness of the public API against bad files, bad models and bad
 * arguments: every case must return a non-OK status with a message naming the file, node, op or
 * size at fault — never crash, never leak (CI runs this under ASan/UBSan). Temporary files go to a
 * mkdtemp directory that each test removes.
 *
 * Small ONNX models are made here with protobuf-c (the same generated onnx.pb-c.h the loader
 * uses): x (N,3,H,W) -> GlobalAveragePool -> Flatten -> y (N,3), with fixed or symbolic H and W,
 * or with an unsupported op, or with a node reading a value nothing provides. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "onnx.pb-c.h"
#include "salient.h"
#include "testutil.h"

#define CONFORMANCE "/usr/share/libonnx-testdata/data/node"
#define EFFNET_REL "models/efficientnet_lite0.onnx"

/* ------------------------------------------------------------------------------------------------ */
/* Temporary directory (one per test, removed by the fini hook even when the test fails)            */

static char tmp_dir[512];

static void tmp_setup(void) {
    const char *base = getenv("TMPDIR");
    snprintf(tmp_dir, sizeof tmp_dir, "%s/salient-bad-XXXXXX", base && *base ? base : "/tmp");
    cr_assert_not_null(mkdtemp(tmp_dir), "mkdtemp(%s) failed", tmp_dir);
}

static void tmp_teardown(void) {
    if (!tmp_dir[0]) return;
    DIR *d = opendir(tmp_dir);
    if (d) {
        struct dirent *e;
        char path[1024];
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
            snprintf(path, sizeof path, "%s/%s", tmp_dir, e->d_name);
            unlink(path);
        }
        closedir(d);
    }
    rmdir(tmp_dir);
    tmp_dir[0] = 0;
}

TestSuite(bad_input, .init = tmp_setup, .fini = tmp_teardown);

/* Criterion does not run .fini after cr_skip_test: clean up first. */
#define SKIP_TEST(...) do { tmp_teardown(); cr_skip_test(__VA_ARGS__); } while (0)

/* Write data into tmp_dir/name; path receives the full path. */
static void tmp_write(const char *name, const void *data, size_t len, char *path, size_t pathlen) {
    snprintf(path, pathlen, "%s/%s", tmp_dir, name);
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "cannot create %s", path);
    if (len) cr_assert_eq(fwrite(data, 1, len, f), len);
    cr_assert_eq(fclose(f), 0);
}

static void *read_all(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    void *buf = malloc(n > 0 ? (size_t)n : 1);
    if (buf && n > 0 && fread(buf, 1, (size_t)n, f) != (size_t)n) { free(buf); buf = NULL; }
    fclose(f);
    *len = n > 0 ? (size_t)n : 0;
    return buf;
}

static int file_exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

/* Loading must fail: non-OK status, *out NULL, the message mentions each needle. */
static void expect_load_fails(const char *path, const char *what, const char *needle2) {
    sal_model *m = (sal_model *)(uintptr_t)1;   /* must be reset to NULL */
    sal_error err;
    memset(&err, 0, sizeof err);
    sal_status st = sal_model_load(path, &m, &err);
    cr_log_info("%s: %s: %s", what, sal_status_str(st), err.msg);
    cr_expect_neq(st, SAL_OK, "%s: loading %s succeeded", what, path);
    cr_expect_null(m, "%s: *out is not NULL after a failure", what);
    if (st == SAL_OK && m) sal_model_free(m);
    cr_expect(strstr(err.msg, path) != NULL, "%s: the message does not name the file: \"%s\"", what, err.msg);
    if (needle2)
        cr_expect(strstr(err.msg, needle2) != NULL, "%s: the message lacks \"%s\": \"%s\"", what,
                  needle2, err.msg);
    /* err == NULL is allowed */
    m = NULL;
    st = sal_model_load(path, &m, NULL);
    cr_expect_neq(st, SAL_OK);
    if (st == SAL_OK) sal_model_free(m);
}

/* ------------------------------------------------------------------------------------------------ */
/* Small ONNX models made with protobuf-c                                                           */

typedef struct onnx_spec {
    const char *op0;       /* first node's op (GlobalAveragePool) */
    const char *name0;     /* its name */
    const char *input0;    /* its input ("x") */
    int64_t dims[4];       /* input shape; -1: symbolic */
} onnx_spec;

static onnx_spec spec_default(void) {
    onnx_spec s = {"GlobalAveragePool", "gap_node", "x", {-1, 3, 8, 8}};
    return s;
}

/* A model x (dims) -> op0 -> "gap" -> Flatten -> "y"; returns malloc'ed bytes. */
static uint8_t *make_onnx(const onnx_spec *sp, size_t *len) {
    static const char *sym[4] = {"N", "C", "H", "W"};
    Onnx__TensorShapeProto__Dimension dim[4], *dimp[4];
    for (int i = 0; i < 4; i++) {
        Onnx__TensorShapeProto__Dimension d = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__INIT;
        if (sp->dims[i] >= 0) {
            d.value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
            d.dim_value = sp->dims[i];
        } else {
            d.value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
            d.dim_param = (char *)sym[i];
        }
        dim[i] = d;
        dimp[i] = &dim[i];
    }
    Onnx__TensorShapeProto shape = ONNX__TENSOR_SHAPE_PROTO__INIT;
    shape.n_dim = 4;
    shape.dim = dimp;
    Onnx__TypeProto__Tensor tt = ONNX__TYPE_PROTO__TENSOR__INIT;
    tt.has_elem_type = 1;
    tt.elem_type = 1;   /* FLOAT */
    tt.shape = &shape;
    Onnx__TypeProto type = ONNX__TYPE_PROTO__INIT;
    type.value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    type.tensor_type = &tt;
    Onnx__ValueInfoProto in = ONNX__VALUE_INFO_PROTO__INIT;
    in.name = "x";
    in.type = &type;
    Onnx__ValueInfoProto out = ONNX__VALUE_INFO_PROTO__INIT;
    out.name = "y";
    Onnx__ValueInfoProto *inp[1] = {&in}, *outp[1] = {&out};

    char *n0_in[1] = {(char *)sp->input0}, *n0_out[1] = {"gap"};
    Onnx__NodeProto n0 = ONNX__NODE_PROTO__INIT;
    n0.n_input = 1;
    n0.input = n0_in;
    n0.n_output = 1;
    n0.output = n0_out;
    n0.name = (char *)sp->name0;
    n0.op_type = (char *)sp->op0;
    char *n1_in[1] = {"gap"}, *n1_out[1] = {"y"};
    Onnx__NodeProto n1 = ONNX__NODE_PROTO__INIT;
    n1.n_input = 1;
    n1.input = n1_in;
    n1.n_output = 1;
    n1.output = n1_out;
    n1.name = "flatten_node";
    n1.op_type = "Flatten";
    Onnx__NodeProto *nodes[2] = {&n0, &n1};

    Onnx__GraphProto graph = ONNX__GRAPH_PROTO__INIT;
    graph.name = "bad_input_test";
    graph.n_node = 2;
    graph.node = nodes;
    graph.n_input = 1;
    graph.input = inp;
    graph.n_output = 1;
    graph.output = outp;
    Onnx__OperatorSetIdProto opset = ONNX__OPERATOR_SET_ID_PROTO__INIT;
    opset.domain = "";
    opset.has_version = 1;
    opset.version = 13;
    Onnx__OperatorSetIdProto *opsets[1] = {&opset};
    Onnx__ModelProto model = ONNX__MODEL_PROTO__INIT;
    model.has_ir_version = 1;
    model.ir_version = 8;
    model.n_opset_import = 1;
    model.opset_import = opsets;
    model.producer_name = "salient-tests";
    model.graph = &graph;
    *len = onnx__model_proto__get_packed_size(&model);
    uint8_t *buf = malloc(*len);
    cr_assert_not_null(buf);
    cr_assert_eq(onnx__model_proto__pack(&model, buf), *len);
    return buf;
}

static sal_model *load_spec(const onnx_spec *sp, const char *name) {
    size_t len;
    uint8_t *buf = make_onnx(sp, &len);
    sal_model *m = NULL;
    sal_error err = {0};
    sal_status st = sal_model_load_buffer(buf, len, name, &m, &err);
    free(buf);
    cr_assert_eq(st, SAL_OK, "%s: %s", name, err.msg);
    return m;
}

static sal_session *cpu_session(const sal_model *m) {
    sal_session_opts o = sal_session_opts_default();
    o.device = SAL_DEVICE_CPU;
    o.threads = 1;
    sal_session *s = NULL;
    sal_error err = {0};
    cr_assert_eq(sal_session_create(m, &o, &s, &err), SAL_OK, "%s", err.msg);
    return s;
}

/* ------------------------------------------------------------------------------------------------ */
/* Files that are not models                                                                        */

Test(bad_input, missing_file) {
    char path[1024];
    snprintf(path, sizeof path, "%s/does-not-exist.onnx", tmp_dir);
    sal_error err = {0};
    sal_model *m = NULL;
    cr_expect_eq(sal_model_load(path, &m, &err), SAL_ERR_IO, "a missing file should be SAL_ERR_IO: %s", err.msg);
    expect_load_fails(path, "missing file", NULL);
}

Test(bad_input, empty_file) {
    char path[1024];
    tmp_write("empty.onnx", "", 0, path, sizeof path);
    expect_load_fails(path, "empty file", NULL);
}

Test(bad_input, random_bytes) {
    uint64_t seed = tu_fresh_seed(), rng = seed;
    static const size_t sizes[] = {1, 2, 7, 64, 1000, 4096, 65536};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        uint8_t *buf = malloc(sizes[k]);
        for (size_t i = 0; i < sizes[k]; i++) buf[i] = (uint8_t)(tu_next(&rng) >> 56);
        char name[64], path[1024], what[128];
        snprintf(name, sizeof name, "random-%zu.onnx", sizes[k]);
        tmp_write(name, buf, sizes[k], path, sizeof path);
        snprintf(what, sizeof what, "%zu random bytes (seed %llu)", sizes[k], (unsigned long long)seed);
        expect_load_fails(path, what, NULL);
        /* the same bytes from memory */
        sal_model *m = NULL;
        sal_error err = {0};
        sal_status st = sal_model_load_buffer(buf, sizes[k], "random.bin", &m, &err);
        cr_expect_neq(st, SAL_OK, "%s loaded from memory", what);
        cr_expect(strstr(err.msg, "random.bin") != NULL, "the message does not name the buffer: %s", err.msg);
        if (st == SAL_OK) sal_model_free(m);
        free(buf);
    }
}

Test(bad_input, truncated_onnx) {
    char src[1024];
    tu_src_path(EFFNET_REL, src, sizeof src);
    if (!file_exists(src)) snprintf(src, sizeof src, "%s/test_conv_with_strides_padding/model.onnx", CONFORMANCE);
    if (!file_exists(src)) SKIP_TEST("neither %s nor the ONNX conformance data is present", EFFNET_REL);
    size_t len;
    uint8_t *buf = read_all(src, &len);
    cr_assert(buf && len > 16, "cannot read %s", src);
    /* the intact file loads */
    sal_model *m = NULL;
    sal_error err = {0};
    cr_assert_eq(sal_model_load(src, &m, &err), SAL_OK, "%s: %s", src, err.msg);
    sal_model_free(m);
    size_t cuts[3] = {len / 2, len / 3, len - 1};
    for (int k = 0; k < 3; k++) {
        char name[64], path[1024], what[1200];
        snprintf(name, sizeof name, "truncated-%zu.onnx", cuts[k]);
        tmp_write(name, buf, cuts[k], path, sizeof path);
        snprintf(what, sizeof what, "%s cut to %zu of %zu bytes", src, cuts[k], len);
        expect_load_fails(path, what, NULL);
    }
    free(buf);
}

Test(bad_input, directory) {
    expect_load_fails(tmp_dir, "a directory", NULL);
    sal_model *m = NULL;
    sal_error err = {0};
    cr_expect_eq(sal_model_load(tmp_dir, &m, &err), SAL_ERR_IO, "a directory should be SAL_ERR_IO: %s", err.msg);
}

/* ------------------------------------------------------------------------------------------------ */
/* Models salient cannot run                                                                        */

Test(bad_input, unsupported_op_names_op_and_node) {
    /* ONNX's own test model: one unnamed Atanh node (the loader names it after its output 'y') */
    char path[1024];
    snprintf(path, sizeof path, "%s/test_atanh/model.onnx", CONFORMANCE);
    size_t len;
    uint8_t *buf = file_exists(path) ? read_all(path, &len) : NULL;
    if (buf) {
        sal_model *m = NULL;
        sal_error err = {0};
        sal_status st = sal_model_load_buffer(buf, len, "test_atanh.onnx", &m, &err);
        cr_log_info("Atanh: %s: %s", sal_status_str(st), err.msg);
        cr_expect_eq(st, SAL_ERR_UNSUPPORTED, "Atanh: %s", err.msg);
        cr_expect_null(m);
        cr_expect(strstr(err.msg, "Atanh") != NULL, "the message does not name the op: %s", err.msg);
        cr_expect(strstr(err.msg, "'y'") != NULL, "the message does not name the node: %s", err.msg);
        cr_expect(strstr(err.msg, "test_atanh.onnx") != NULL, "the message does not name the model: %s", err.msg);
        if (m) sal_model_free(m);
        free(buf);
    } else {
        cr_log_warn("%s is absent: only the synthetic unsupported op is checked", path);
    }
    /* a made-up op in a named node, from a file */
    onnx_spec sp = spec_default();
    sp.op0 = "FancyPool";
    sp.name0 = "my_fancy_node";
    uint8_t *mb = make_onnx(&sp, &len);
    tmp_write("fancy.onnx", mb, len, path, sizeof path);
    free(mb);
    expect_load_fails(path, "unsupported op", "FancyPool");
    sal_model *m = NULL;
    sal_error err = {0};
    cr_expect_eq(sal_model_load(path, &m, &err), SAL_ERR_UNSUPPORTED);
    cr_expect(strstr(err.msg, "my_fancy_node") != NULL, "the message does not name the node: %s", err.msg);
}

Test(bad_input, node_reading_a_missing_value) {
    onnx_spec sp = spec_default();
    sp.input0 = "nobody_makes_this";
    size_t len;
    uint8_t *mb = make_onnx(&sp, &len);
    char path[1024];
    tmp_write("dangling.onnx", mb, len, path, sizeof path);
    free(mb);
    expect_load_fails(path, "dangling input", "gap_node");
    sal_error err = {0};
    sal_model *m = NULL;
    sal_model_load(path, &m, &err);
    cr_expect(strstr(err.msg, "nobody_makes_this") != NULL, "the message does not name the value: %s", err.msg);
}

/* ------------------------------------------------------------------------------------------------ */
/* Shapes                                                                                           */

Test(bad_input, wrong_input_size_on_fixed_size_model) {
    sal_model *m = load_spec(&(onnx_spec){"GlobalAveragePool", "gap_node", "x", {-1, 3, 8, 8}}, "fixed8.onnx");
    sal_session *s = cpu_session(m);
    float x[3 * 10 * 10] = {0}, y[3];
    sal_status st = sal_forward(s, x, 1, 10, 10, y);
    const char *msg = sal_session_error(s);
    cr_log_info("wrong size: %s: %s", sal_status_str(st), msg);
    cr_expect_eq(st, SAL_ERR_SHAPE, "10x10 into an 8x8 model: %s", msg);
    cr_expect(strstr(msg, "8x8") != NULL, "the message does not give the expected size: %s", msg);
    cr_expect(strstr(msg, "fixed8.onnx") != NULL, "the message does not name the model: %s", msg);
    /* only one side wrong */
    cr_expect_eq(sal_forward(s, x, 1, 8, 10, y), SAL_ERR_SHAPE);
    /* the right size, given or left to the model, works after the failures */
    for (int i = 0; i < 3 * 64; i++) x[i] = (float)(i / 64);
    cr_expect_eq(sal_forward(s, x, 1, 8, 8, y), SAL_OK, "%s", sal_session_error(s));
    cr_expect(y[0] == 0.f && y[1] == 1.f && y[2] == 2.f, "GlobalAveragePool gave %g %g %g", y[0], y[1], y[2]);
    cr_expect_eq(sal_forward(s, x, 1, 0, 0, y), SAL_OK, "%s", sal_session_error(s));
    /* batch size */
    cr_expect_eq(sal_forward(s, x, 0, 8, 8, y), SAL_ERR_INVALID_ARG);
    cr_expect_eq(sal_forward(s, x, -3, 8, 8, y), SAL_ERR_INVALID_ARG);
    sal_session_free(s);
    sal_model_free(m);
}

Test(bad_input, wrong_input_size_on_effnet) {
    char path[1024];
    tu_src_path(EFFNET_REL, path, sizeof path);
    if (!file_exists(path)) SKIP_TEST("%s is missing: run scripts/fetch-models", path);
    sal_model *m = NULL;
    sal_error err = {0};
    cr_assert_eq(sal_model_load(path, &m, &err), SAL_OK, "%s", err.msg);
    sal_session *s = cpu_session(m);
    enum { H = 200 };
    float *x = calloc(3 * H * H, sizeof(float)), y[1000];
    sal_status st = sal_forward(s, x, 1, H, H, y);
    cr_log_info("effnet at 200x200: %s: %s", sal_status_str(st), sal_session_error(s));
    cr_expect_eq(st, SAL_ERR_SHAPE);
    cr_expect(strstr(sal_session_error(s), "224x224") != NULL, "%s", sal_session_error(s));
    free(x);
    sal_session_free(s);
    sal_model_free(m);
}

Test(bad_input, dynamic_size_model_without_size) {
    sal_model *m = load_spec(&(onnx_spec){"GlobalAveragePool", "gap_node", "x", {-1, 3, -1, -1}}, "dynamic.onnx");
    sal_tensor_info in;
    sal_model_input(m, 0, &in);
    cr_expect(in.ndim == 4 && in.dims[2] == -1 && in.dims[3] == -1, "H and W should be dynamic");
    sal_session *s = cpu_session(m);
    float x[3 * 5 * 6], y[3];
    for (int i = 0; i < 3 * 30; i++) x[i] = 1.f;
    sal_status st = sal_forward(s, x, 1, 0, 0, y);
    const char *msg = sal_session_error(s);
    cr_log_info("no size: %s: %s", sal_status_str(st), msg);
    cr_expect_neq(st, SAL_OK);
    cr_expect_eq(st, SAL_ERR_INVALID_ARG);
    cr_expect(strstr(msg, "dynamic") != NULL && strstr(msg, "'x'") != NULL,
              "the message should say the input 'x' is dynamic: %s", msg);
    cr_expect_eq(sal_forward(s, x, 1, 5, 0, y), SAL_ERR_INVALID_ARG, "width missing");
    sal_grad_opts go = sal_grad_opts_default();
    sal_grad_out out = {0};
    cr_expect_eq(sal_gradient(s, x, 1, 0, 0, &go, &out), SAL_ERR_INVALID_ARG);
    cr_expect_eq(sal_session_plan(s, 1, 0, 0), SAL_ERR_INVALID_ARG);
    /* with a size it runs */
    cr_expect_eq(sal_forward(s, x, 1, 5, 6, y), SAL_OK, "%s", sal_session_error(s));
    cr_expect(y[0] == 1.f && y[1] == 1.f && y[2] == 1.f);
    sal_session_free(s);
    sal_model_free(m);
}

/* ------------------------------------------------------------------------------------------------ */
/* Gradient options                                                                                 */

Test(bad_input, gradient_bad_target_and_unknown_layer) {
    sal_model *m = load_spec(&(onnx_spec){"GlobalAveragePool", "gap_node", "x", {-1, 3, 4, 4}}, "small.onnx");
    sal_session *s = cpu_session(m);
    enum { N = 2 };
    float x[N * 3 * 16], g[N * 3 * 16], logits[N * 3];
    for (int i = 0; i < N * 48; i++) x[i] = (float)i / 10.f;
    sal_grad_opts o = sal_grad_opts_default();
    sal_grad_out out = {0};
    out.input_grad = g;
    out.logits = logits;

    int bad[3][N] = {{0, 3}, {-1, 0}, {1000000, 1}};
    for (int k = 0; k < 3; k++) {
        o.targets = bad[k];
        sal_status st = sal_gradient(s, x, N, 4, 4, &o, &out);
        const char *msg = sal_session_error(s);
        cr_log_info("targets {%d,%d}: %s: %s", bad[k][0], bad[k][1], sal_status_str(st), msg);
        cr_expect_eq(st, SAL_ERR_INVALID_ARG, "targets {%d,%d} on 3 classes: %s", bad[k][0], bad[k][1], msg);
        char want[32];
        snprintf(want, sizeof want, "%d", bad[k][0] != 0 ? bad[k][0] : bad[k][1]);
        cr_expect(strstr(msg, want) != NULL, "the message does not give the bad target %s: %s", want, msg);
    }
    int good[N] = {2, 0};
    o.targets = good;
    cr_expect_eq(sal_gradient(s, x, N, 4, 4, &o, &out), SAL_OK, "%s", sal_session_error(s));
    cr_expect(g[0] == 0.f && g[48] == 1.f / 16.f, "GlobalAveragePool gradient: %g %g", g[0], g[48]);

    o.layer = "no.such.layer";
    sal_status st = sal_gradient(s, x, N, 4, 4, &o, &out);
    cr_log_info("unknown layer: %s: %s", sal_status_str(st), sal_session_error(s));
    cr_expect_eq(st, SAL_ERR_NOT_FOUND);
    cr_expect(strstr(sal_session_error(s), "no.such.layer") != NULL, "%s", sal_session_error(s));
    int nd;
    int64_t dims[SAL_MAX_DIMS];
    cr_expect_eq(sal_session_value_shape(s, "no.such.layer", &nd, dims), SAL_ERR_NOT_FOUND);
    /* stopping early without a layer */
    o.layer = NULL;
    o.need_input_grad = 0;
    cr_expect_eq(sal_gradient(s, x, N, 4, 4, &o, &out), SAL_ERR_INVALID_ARG);
    /* a known layer works, by node or by value name */
    o.layer = "gap_node";
    cr_expect_eq(sal_gradient(s, x, N, 4, 4, &o, &out), SAL_OK, "%s", sal_session_error(s));
    o.layer = "gap";
    cr_expect_eq(sal_gradient(s, x, N, 4, 4, &o, &out), SAL_OK, "%s", sal_session_error(s));
    cr_expect_eq(sal_session_layer_shape(s, 99, &nd, dims), SAL_ERR_INVALID_ARG);
    cr_expect_eq(sal_session_layer_shape(s, -1, &nd, dims), SAL_ERR_INVALID_ARG);
    sal_session_free(s);
    sal_model_free(m);
}

Test(bad_input, gradient_bad_target_and_unknown_layer_on_effnet) {
    char path[1024];
    tu_src_path(EFFNET_REL, path, sizeof path);
    if (!file_exists(path)) SKIP_TEST("%s is missing: run scripts/fetch-models", path);
    sal_model *m = NULL;
    sal_error err = {0};
    cr_assert_eq(sal_model_load(path, &m, &err), SAL_OK, "%s", err.msg);
    sal_session *s = cpu_session(m);
    float *x = calloc(3 * 224 * 224, sizeof(float));
    sal_grad_opts o = sal_grad_opts_default();
    sal_grad_out out = {0};
    int t = 1000;
    o.targets = &t;
    cr_expect_eq(sal_gradient(s, x, 1, 224, 224, &o, &out), SAL_ERR_INVALID_ARG);
    cr_expect(strstr(sal_session_error(s), "1000") != NULL, "%s", sal_session_error(s));
    o.targets = NULL;
    o.layer = "blocks.9.9.dw";
    cr_expect_eq(sal_gradient(s, x, 1, 224, 224, &o, &out), SAL_ERR_NOT_FOUND);
    cr_expect(strstr(sal_session_error(s), "blocks.9.9.dw") != NULL, "%s", sal_session_error(s));
    cr_expect(strstr(sal_session_error(s), path) != NULL, "the message does not name the model: %s",
              sal_session_error(s));
    free(x);
    sal_session_free(s);
    sal_model_free(m);
}

/* ------------------------------------------------------------------------------------------------ */
/* NULL arguments                                                                                   */

Test(bad_input, null_arguments) {
    sal_error err = {0};
    sal_model *m = NULL;
    cr_expect_eq(sal_model_load(NULL, &m, &err), SAL_ERR_INVALID_ARG);
    cr_expect_neq(err.msg[0], 0, "no message for a NULL path");
    char path[1024];
    snprintf(path, sizeof path, "%s/x.onnx", tmp_dir);
    cr_expect_eq(sal_model_load(path, NULL, &err), SAL_ERR_INVALID_ARG);
    cr_expect_eq(sal_model_load(NULL, NULL, NULL), SAL_ERR_INVALID_ARG);
    cr_expect_neq(sal_model_load_buffer(NULL, 10, "buf", &m, &err), SAL_OK);
    cr_expect_null(m);
    cr_expect_neq(sal_model_load_buffer("abc", 0, "buf", &m, &err), SAL_OK);
    cr_expect_neq(sal_model_load_buffer("abc", 3, NULL, &m, NULL), SAL_OK);
    cr_expect_eq(sal_model_load_buffer("abc", 3, "buf", NULL, &err), SAL_ERR_INVALID_ARG);

    /* model queries on NULL */
    cr_expect_eq(sal_model_num_inputs(NULL), 0);
    cr_expect_eq(sal_model_num_outputs(NULL), 0);
    cr_expect_eq(sal_model_num_layers(NULL), 0);
    sal_tensor_info ti;
    sal_layer_info li;
    sal_model_input(NULL, 0, &ti);
    cr_expect_null(ti.name);
    sal_model_output(NULL, 0, &ti);
    sal_model_layer(NULL, 0, &li);
    cr_expect_null(li.name);
    int a = -1, b = -1;
    sal_model_fold_stats(NULL, &a, &b);
    cr_expect(a == 0 && b == 0);
    sal_model_fold_stats(NULL, NULL, NULL);

    /* sessions */
    sal_session *s = NULL;
    cr_expect_eq(sal_session_create(NULL, NULL, &s, &err), SAL_ERR_INVALID_ARG);
    cr_expect_null(s);
    m = load_spec(&(onnx_spec){"GlobalAveragePool", "gap_node", "x", {-1, 3, 4, 4}}, "small.onnx");
    sal_model_input(m, 5, &ti);
    cr_expect_null(ti.name, "input index out of range");
    cr_expect_eq(sal_session_create(m, NULL, NULL, &err), SAL_ERR_INVALID_ARG);
    cr_expect_eq(sal_session_create(m, NULL, &s, &err), SAL_OK, "NULL options mean the defaults: %s", err.msg);
    float x[48] = {0}, y[3];
    sal_grad_opts o = sal_grad_opts_default();
    sal_grad_out out = {0};
    cr_expect_eq(sal_forward(NULL, x, 1, 4, 4, y), SAL_ERR_INVALID_ARG);
    cr_expect_eq(sal_forward(s, NULL, 1, 4, 4, y), SAL_ERR_INVALID_ARG);
    cr_expect_neq(sal_session_error(s)[0], 0, "no message for a NULL input");
    cr_expect_eq(sal_forward(s, x, 1, 4, 4, NULL), SAL_ERR_INVALID_ARG);
    cr_expect_eq(sal_gradient(NULL, x, 1, 4, 4, &o, &out), SAL_ERR_INVALID_ARG);
    cr_expect_eq(sal_gradient(s, NULL, 1, 4, 4, &o, &out), SAL_ERR_INVALID_ARG);
    cr_expect_eq(sal_gradient(s, x, 1, 4, 4, NULL, &out), SAL_ERR_INVALID_ARG);
    cr_expect_eq(sal_gradient(s, x, 1, 4, 4, &o, NULL), SAL_ERR_INVALID_ARG);
    /* all outputs NULL: nothing to write, still fine */
    cr_expect_eq(sal_gradient(s, x, 1, 4, 4, &o, &out), SAL_OK, "%s", sal_session_error(s));
    cr_expect_eq(sal_session_plan(NULL, 1, 4, 4), SAL_ERR_INVALID_ARG);
    int nd;
    int64_t dims[SAL_MAX_DIMS];
    cr_expect_eq(sal_session_value_shape(NULL, "gap", &nd, dims), SAL_ERR_INVALID_ARG);
    cr_expect_eq(sal_session_value_shape(s, NULL, &nd, dims), SAL_ERR_INVALID_ARG);
    cr_expect_eq(sal_session_layer_shape(NULL, 0, &nd, dims), SAL_ERR_INVALID_ARG);
    cr_expect_str_eq(sal_session_error(NULL), "");
    cr_expect_str_eq(sal_session_device(NULL), "");
    cr_expect_str_eq(sal_session_device_note(NULL), "");
    cr_expect_eq(sal_session_num_classes(NULL), 0);
    cr_expect_str_eq(sal_session_device(s), "cpu");
    cr_expect_not_null(sal_status_str(SAL_ERR_SHAPE));
    cr_expect_not_null(sal_status_str((sal_status)12345), "an unknown status must still give a string");
    sal_session_free(s);
    sal_model_free(m);
}

Test(bad_input, free_null_is_safe) {
    sal_model_free(NULL);
    sal_session_free(NULL);
    cr_expect(1);
}

/* A session outlives nothing: create and free many, interleaved with failures (leaks show under
 * ASan). */
Test(bad_input, repeated_failures_do_not_leak_or_break_the_session) {
    sal_model *m = load_spec(&(onnx_spec){"GlobalAveragePool", "gap_node", "x", {-1, 3, 4, 4}}, "small.onnx");
    sal_session *s = cpu_session(m);
    float x[2 * 48], y[6], g[2 * 48];
    for (int i = 0; i < 96; i++) x[i] = (float)i;
    sal_grad_opts o = sal_grad_opts_default();
    sal_grad_out out = {0};
    out.input_grad = g;
    for (int k = 0; k < 20; k++) {
        cr_expect_eq(sal_forward(s, x, 1, 5, 5, y), SAL_ERR_SHAPE);
        o.layer = "missing";
        cr_expect_eq(sal_gradient(s, x, 2, 4, 4, &o, &out), SAL_ERR_NOT_FOUND);
        o.layer = NULL;
        cr_expect_eq(sal_forward(s, x, 1 + k % 2, 4, 4, y), SAL_OK, "%s", sal_session_error(s));
        cr_expect_eq(sal_gradient(s, x, 1 + k % 2, 4, 4, &o, &out), SAL_OK, "%s", sal_session_error(s));
    }
    cr_expect(y[0] == 7.5f, "mean of 0..15 is 7.5, got %g", y[0]);
    sal_session_free(s);
    sal_model_free(m);
}
