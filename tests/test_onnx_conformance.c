/* test_onnx_conformance.c — ONNX's own conformance data (Debian's libonnx-testdata): every node,
 * pytorch-converted, pytorch-operator and simple model whose ops salient supports must reproduce
 * the stored outputs (forward, relative error under 1e-4). Models with unsupported ops or types
 * are skipped and listed with the reason; the counts are printed. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/engine.h"
#include "model/fold.h"
#include "testutil.h"

#define TESTDATA "/usr/share/libonnx-testdata/data"

static void *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    void *buf = malloc(n > 0 ? (size_t)n : 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) { free(buf); buf = NULL; }
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static sal_tensor *read_pb(const char *path) {
    size_t len;
    void *buf = read_file(path, &len);
    if (!buf) return NULL;
    sal_tensor *t = NULL;
    sal_error err;
    sal_tensor_from_onnx_pb(buf, len, &t, NULL, &err);
    free(buf);
    return t;
}

typedef enum { R_PASS, R_FAIL, R_SKIP } result;

/* Worst relative error of got against want (any types, compared as doubles; NaN matches NaN). */
static double worst_err(const sal_tensor *got, const sal_tensor *want, int64_t *at) {
    double worst = 0;
    *at = 0;
    int64_t n = sal_shape_numel(&want->shape);
    for (int64_t j = 0; j < n; j++) {
        double g = sal_tensor_f64(got, j), w = sal_tensor_f64(want, j);
        double d = fabs(g - w) / fmax(1.0, fabs(w));
        if (isnan(g) && isnan(w)) d = 0;
        if (!(d <= worst)) { worst = d; *at = j; }
    }
    return worst;
}

/* The constant path: every input bound as a constant, every node evaluated on host tensors by the
 * folder (sal_fold_node), as salient does for shape arithmetic (Shape, Equal, Where, Range...) and
 * for outputs of any type. */
static result run_folded(sal_graph *g, sal_tensor *const *ins, sal_tensor *const *outs, char *why,
                         size_t whylen) {
    sal_tensor **val = calloc((size_t)g->n_values, sizeof *val);
    result r = R_PASS;
    sal_error err = {0};
    if (!val) { snprintf(why, whylen, "out of memory"); return R_FAIL; }
    for (int i = 0; i < g->n_inputs; i++) val[g->inputs[i]] = sal_tensor_clone(ins[i]);
    for (int i = 0; i < g->n_nodes && r == R_PASS; i++) {
        const sal_node *n = &g->nodes[i];
        const sal_tensor *in[64];
        const sal_shape *shp[64];
        sal_tensor *o[8] = {0};
        if (n->n_in > 64 || n->n_out > 8) { snprintf(why, whylen, "node too wide"); r = R_SKIP; break; }
        for (int j = 0; j < n->n_in; j++) {
            int v = n->in[j];
            in[j] = v < 0 ? NULL : val[v] ? val[v] : g->values[v].konst;
            shp[j] = in[j] ? &in[j]->shape : NULL;
        }
        sal_status st = sal_fold_node(g, n, in, shp, o, &err);
        if (st == SAL_ERR_UNSUPPORTED) { snprintf(why, whylen, "%s", err.msg); r = R_SKIP; break; }
        if (st) { snprintf(why, whylen, "folding: %s: %s", sal_status_str(st), err.msg); r = R_FAIL; break; }
        for (int j = 0; j < n->n_out; j++) {
            if (n->out[j] >= 0 && !val[n->out[j]]) val[n->out[j]] = o[j];
            else sal_tensor_free(o[j]);
        }
    }
    for (int i = 0; i < g->n_outputs && r == R_PASS; i++) {
        int v = g->outputs[i];
        const sal_tensor *got = val[v] ? val[v] : g->values[v].konst;
        char a[128], c[128];
        if (!got || !sal_shape_eq(&got->shape, &outs[i]->shape)) {
            snprintf(why, whylen, "folded output %d shape %s, expected %s", i,
                     got ? sal_shape_str(&got->shape, a, sizeof a) : "?",
                     sal_shape_str(&outs[i]->shape, c, sizeof c));
            r = R_FAIL;
            break;
        }
        int64_t at;
        double w = worst_err(got, outs[i], &at);
        if (!(w < 1e-4)) {
            snprintf(why, whylen, "folded output %d element %lld: got %g, expected %g", i, (long long)at,
                     sal_tensor_f64(got, at), sal_tensor_f64(outs[i], at));
            r = R_FAIL;
        }
    }
    for (int v = 0; v < g->n_values; v++) sal_tensor_free(val[v]);
    free(val);
    return r;
}

/* Run one test directory; *why explains a skip or failure. */
static result run_case(const char *dir, char *why, size_t whylen) {
    char path[2200];
    snprintf(path, sizeof path, "%s/model.onnx", dir);
    sal_error err = {0};
    sal_model *m = NULL;
    sal_status st = sal_model_load_ex(path, SAL_LOAD_RAW, &m, &err);
    if (st == SAL_ERR_UNSUPPORTED) { snprintf(why, whylen, "%s", err.msg); return R_SKIP; }
    if (st) { snprintf(why, whylen, "load: %s", err.msg); return R_FAIL; }
    sal_graph *g = m->g;
    result r = R_PASS;
    sal_backend *b = NULL;
    sal_engine *e = NULL;
    sal_tensor *ins[16] = {0}, *outs[16] = {0};
    sal_shape shapes[16];
    const float *in_ptr[16];
    sal_tensor *kept_t[16];   /* the inputs left as graph inputs (float tensors), in order */
    if (g->n_inputs > 16 || g->n_outputs > 16) { snprintf(why, whylen, "too many inputs"); r = R_SKIP; goto done; }
    for (int i = 0; i < g->n_inputs; i++) {
        snprintf(path, sizeof path, "%s/test_data_set_0/input_%d.pb", dir, i);
        ins[i] = read_pb(path);
        if (!ins[i]) { snprintf(why, whylen, "input %d not readable/supported type", i); r = R_SKIP; goto done; }
    }
    /* Integer and bool inputs (shapes, axes, pads, indices, masks) and float scalars (Clip bounds, Pad value) are
     * known constants in these tests: salient computes in float32, evaluates integer tensors only
     * at plan time and takes such parameters as constants, so bind them. */
    int kept = 0;
    for (int i = 0; i < g->n_inputs; i++) {
        int v = g->inputs[i];
        int et = g->values[v].elem_type;
        if (et != SAL_F32 && et != SAL_I64 && et != SAL_I32 && et != SAL_BOOL) {
            snprintf(why, whylen, "input '%s' is %s", g->values[v].name, sal_dtype_name(et));
            r = R_SKIP;
            goto done;
        }
        if (et == SAL_F32 && (i == 0 || sal_shape_numel(&ins[i]->shape) != 1 || ins[i]->shape.ndim != 0)) {
            shapes[kept] = ins[i]->shape;
            in_ptr[kept] = ins[i]->data;
            kept_t[kept] = ins[i];
            g->inputs[kept++] = v;
        } else {
            g->values[v].konst = sal_tensor_clone(ins[i]);
            g->values[v].is_input = 0;
        }
    }
    g->n_inputs = kept;
    int float_outs = 1;
    for (int i = 0; i < g->n_outputs; i++) {
        snprintf(path, sizeof path, "%s/test_data_set_0/output_%d.pb", dir, i);
        outs[i] = read_pb(path);
        if (!outs[i]) {
            snprintf(why, whylen, "output %d is not readable", i);
            r = R_SKIP;
            goto done;
        }
        float_outs &= outs[i]->dtype == SAL_F32;
    }
    if (!float_outs) {   /* bool or integer results: shape arithmetic, evaluated by the folder */
        r = run_folded(g, kept_t, outs, why, whylen);
        goto done;
    }
    sal_backend_cpu_create(2, &b, &err);
    st = sal_engine_create(g, b, &e, &err);
    if (!st) st = sal_engine_plan(e, shapes, SAL_PLAN_FORWARD, -1, &err);
    if (st == SAL_ERR_UNSUPPORTED && strstr(err.msg, "computes on run-time data")) {
        /* an op salient evaluates only on constants (Range, ScatterND, Mod): check it there */
        r = run_folded(g, kept_t, outs, why, whylen);
        goto done;
    }
    if (st == SAL_ERR_UNSUPPORTED) { snprintf(why, whylen, "%s", err.msg); r = R_SKIP; goto done; }
    if (!st) st = sal_engine_forward(e, in_ptr, &err);
    if (st) { snprintf(why, whylen, "%s: %s", sal_status_str(st), err.msg); r = R_FAIL; goto done; }
    for (int i = 0; i < g->n_outputs && r == R_PASS; i++) {
        const sal_shape *os = sal_engine_shape(e, g->outputs[i]);
        int64_t n = sal_shape_numel(&outs[i]->shape);
        if (!os || sal_shape_numel(os) != n) {
            char a[128], c[128];
            snprintf(why, whylen, "output %d shape %s, expected %s", i,
                     os ? sal_shape_str(os, a, sizeof a) : "?", sal_shape_str(&outs[i]->shape, c, sizeof c));
            r = R_FAIL;
            break;
        }
        float *got = malloc(sizeof(float) * (size_t)(n + 1));
        sal_engine_read(e, g->outputs[i], got, &err);
        const float *want = outs[i]->data;
        double worst = 0;
        int64_t at = 0;
        for (int64_t j = 0; j < n; j++) {
            double d = fabs((double)got[j] - want[j]) / fmax(1.0, fabs(want[j]));
            if (isnan(got[j]) && isnan(want[j])) d = 0;   /* NaN where the reference has one (Sqrt of -1) */
            if (!(d <= worst)) { worst = d; at = j; }   /* NaN counts as worst */
        }
        if (!(worst < 1e-4)) {
            snprintf(why, whylen, "output %d element %lld: got %g, expected %g (rel err %.3g)", i,
                     (long long)at, got[at], want[at], worst);
            r = R_FAIL;
        }
        free(got);
    }
done:
    for (int i = 0; i < 16; i++) { sal_tensor_free(ins[i]); sal_tensor_free(outs[i]); }
    sal_engine_free(e);
    if (b) b->ops->destroy(b);
    sal_model_free(m);
    return r;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

Test(onnx_conformance, all_supported_models_match_reference_outputs, .timeout = 600) {
    static const char *suites[] = {"node", "pytorch-converted", "pytorch-operator", "simple"};
    struct stat sb;
    if (stat(TESTDATA, &sb) != 0) cr_skip_test("libonnx-testdata is not installed (" TESTDATA ")");
    int pass = 0, fail = 0, skip = 0;
    char why[SAL_ERROR_LEN + 256];
    for (size_t s = 0; s < sizeof suites / sizeof suites[0]; s++) {
        char root[512];
        snprintf(root, sizeof root, "%s/%s", TESTDATA, suites[s]);
        DIR *d = opendir(root);
        if (!d) continue;
        char *names[2048];
        int count = 0;
        struct dirent *ent;
        while ((ent = readdir(d)) && count < 2048)
            if (strncmp(ent->d_name, "test_", 5) == 0) names[count++] = strdup(ent->d_name);
        closedir(d);
        qsort(names, (size_t)count, sizeof names[0], cmp_str);
        for (int i = 0; i < count; i++) {
            char dir[1024];
            snprintf(dir, sizeof dir, "%s/%s", root, names[i]);
            why[0] = 0;
            result r = run_case(dir, why, sizeof why);
            /* drop the directory prefix from messages */
            char *p = strstr(why, "model.onnx: ");
            const char *msg = p ? p + 12 : why;
            if (r == R_PASS) pass++;
            else if (r == R_SKIP) { skip++; printf("conformance skip %s/%s: %s\n", suites[s], names[i], msg); }
            else { fail++; printf("conformance FAIL %s/%s: %s\n", suites[s], names[i], msg); }
            free(names[i]);
        }
    }
    printf("ONNX conformance: %d passed, %d failed, %d skipped (unsupported op or type)\n", pass, fail, skip);
    fflush(stdout);
    cr_expect(pass > 0, "no conformance model passed");
    cr_assert_eq(fail, 0, "%d conformance models failed (see the FAIL lines above)", fail);
}
