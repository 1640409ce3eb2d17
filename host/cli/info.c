/* info.c — `salient info MODEL`: inputs, outputs, layers with output shapes, op counts. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char *help =
    "usage: salient info [--size HxW] [preprocessing options] MODEL.onnx\n"
    "Print the model's inputs and outputs, every layer (node) with its output shape for one\n"
    "image, and how many nodes of each op type it has (layer names are what --layer takes); then\n"
    "the preprocessing predict and explain give its images (the model's embedded salient.mean,\n"
    "salient.std, salient.resize and salient.labels, else the field's defaults, else the flags given\n"
    "here: --mean, --std, --scale, --crop, --labels), its class names, and the default CAM layer.\n"
    "Last, whether predict and explain can run it: one image, forward and backward to the input,\n"
    "on the CPU. Exit status 1, with the reason (the node and op at fault), when it cannot; 0 when\n"
    "it runs, or when that cannot be told (a dynamic input size without --size).\n";

static void print_dims(const int64_t *d, int n) {
    putchar('(');
    for (int i = 0; i < n; i++) {
        if (d[i] < 0) printf("%s?", i ? "," : "");
        else printf("%s%lld", i ? "," : "", (long long)d[i]);
    }
    putchar(')');
}

/* What predict and explain do with this model by default (or with the preprocessing flags given
 * to info): the preprocessing, the class names, the CAM layer. */
static void print_defaults(const cli_common *c, const char *model, const sal_model *m, sal_session *s, int planned) {
    sal_tensor_info in;
    if (sal_model_num_inputs(m) != 1 || (sal_model_input(m, 0, &in), in.ndim != 4) || (in.dims[1] != 1 && in.dims[1] != 3)) {
        printf("preprocessing: none (not one (N,1|3,H,W) image input: predict and explain cannot take this model)\n");
        return;
    }
    const int ch = (int)in.dims[1];
    const int h = in.dims[2] > 0 ? (int)in.dims[2] : c->h, w = in.dims[3] > 0 ? (int)in.dims[3] : c->w;
    printf("preprocessing (what predict and explain do to an image for this model; .npy inputs skip it):\n");
    if (h <= 0 || w <= 0) {
        printf("  size: dynamic: give --size HxW\n");
    } else {
        sal_prep_opts p;
        cli_prep_source from;
        cli_prep_choose(c, m, ch, h, w, &p, &from);
        if (p.resize_shorter > 0)
            printf("  resize: the shorter side to %d, then centre-crop %dx%d (%s)%s\n", p.resize_shorter, h, w,
                   from.resize, p.crop_no_enlarge ? "; an image is never enlarged to be cropped: one at "
                   "the input size is taken whole, a smaller one stretched" : "");
        else
            printf("  resize: stretched to %dx%d, no crop (%s)\n", h, w, from.resize);
        const char *names = ch == 3 ? "RGB" : "gray";
        printf("  pixels (%s, 0..255): x * %.6g (%s), minus mean (", names, p.scale, from.scale);
        for (int k = 0; k < ch; k++) printf("%s%.6g", k ? ", " : "", p.mean[k]);
        printf(") (%s), divided by std (", from.mean);
        for (int k = 0; k < ch; k++) printf("%s%.6g", k ? ", " : "", p.std[k]);
        printf(") (%s)\n", from.std);
    }
    char buf[4096];
    const char *lp = cli_labels_path(c->labels, model, m, buf, sizeof buf);
    char **labels = NULL;
    int n = 0;
    sal_error err = {0};
    if (!lp) printf("  labels: none (class numbers only; --labels FILE names them)\n");
    else if (sal_labels_load(lp, &labels, &n, &err)) printf("  labels: %s: %s\n", lp, err.msg);
    else {
        printf("  labels: %s (%d classes, %s)", lp, n, c->labels ? "--labels" : "the model's salient.labels");
        for (int k = 0; k < n && k < 3; k++) printf("%s%s", k ? ", " : ": ", labels[k]);
        printf("%s\n", n > 3 ? ", ..." : "");
        sal_labels_free(labels, n);
    }
    sal_cam_layer cl;
    char desc[512];
    if (!planned) {
        printf("default CAM layer: unknown (no layer shapes: give --size HxW)\n");
    } else if (sal_session_cam_layer(s, h, w, NULL, 0, 0, &cl) == SAL_OK) {
        printf("default CAM layer: %s (the last feature map with both sides above 1, or a transformer's last token "
               "layer before its last attention; --layer NAME for another)\n", cli_cam_layer_desc(s, &cl, desc, sizeof desc));
    } else {
        printf("default CAM layer: none (%s): CAM methods need --layer\n", sal_session_error(s));
    }
    sal_attention_info ai;
    if (planned && sal_session_attention(s, h, w, NULL, 0, 0, &ai) == SAL_OK)
        printf("attention layers (rollout, chefer): %d, %s ... %s, %d heads over %d tokens (a class token and a %dx%d "
               "grid)\n", ai.layers, ai.first, ai.last, ai.heads, ai.tokens, ai.h, ai.w);
}

/* Whether predict and explain can run this model: one zero image through the CLI's usual CPU
 * session, forward and backward to the input (the planner checks every op and shape; the run
 * checks every kernel, backward ones included). Returns 1 when it runs, 0 when it cannot (why
 * in why), -1 when it cannot be told (a dynamic input size without --size). */
static int check_runs(const cli_common *c, const sal_model *m, sal_session *s, char *why, size_t len) {
    sal_tensor_info in;
    sal_model_input(m, 0, &in);
    if (sal_model_num_inputs(m) != 1 || in.ndim != 4) {
        snprintf(why, len, "the model has %d inputs%s; salient explains models of one image input",
                 sal_model_num_inputs(m), sal_model_num_inputs(m) == 1 ? " of rank other than 4" : "");
        return 0;
    }
    if (in.dims[1] != 1 && in.dims[1] != 3) {
        cli_layout_problem(m, why, len);
        return 0;
    }
    const int h = in.dims[2] > 0 ? (int)in.dims[2] : c->h, w = in.dims[3] > 0 ? (int)in.dims[3] : c->w;
    if (h <= 0 || w <= 0) {
        snprintf(why, len, "the input size is dynamic: give --size HxW to check");
        return -1;
    }
    if (!s) { snprintf(why, len, "no CPU session"); return 0; }
    const int64_t per = in.dims[1] * (int64_t)h * w;
    float *x = calloc((size_t)per, sizeof(float)), *g = malloc(sizeof(float) * (size_t)per);
    if (!x || !g) { free(x); free(g); snprintf(why, len, "out of memory"); return 0; }
    sal_grad_opts go = sal_grad_opts_default();
    sal_grad_out out = {0};
    out.input_grad = g;
    int ok = sal_session_plan(s, 1, h, w) == SAL_OK && sal_gradient(s, x, 1, h, w, &go, &out) == SAL_OK;
    if (!ok) snprintf(why, len, "%s", sal_session_error(s));
    free(x);
    free(g);
    return ok;
}

int cmd_info(int argc, char **argv) {
    cli_common c;
    cli_common_init(&c);
    const char *model = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) { fputs(help, stdout); return EXIT_OK; }
        int r = cli_common_parse(&c, argc, argv, &i);
        if (r < 0) return EXIT_USAGE;
        if (r > 0) continue;
        if (argv[i][0] == '-') {
            static const char *const own[] = {"--size", "--help"};
            cli_unknown_option("info", argv[i], own, 2);
            return EXIT_USAGE;
        }
        if (model) { cli_error("info: one model at a time"); return EXIT_USAGE; }
        model = argv[i];
    }
    if (!model) model = c.model;
    if (!model) { fputs(help, stderr); return EXIT_USAGE; }
    sal_error err = {0};
    sal_model *m = NULL;
    if (sal_model_load(model, &m, &err)) { cli_error("%s", err.msg); return EXIT_FAIL; }
    printf("model: %s\n", model);
    for (int i = 0; i < sal_model_num_inputs(m); i++) {
        sal_tensor_info t;
        sal_model_input(m, i, &t);
        printf("input  %s ", t.name);
        print_dims(t.dims, t.ndim);
        printf(" float32\n");
    }
    if (!strcmp(sal_model_input_layout(m), "NHWC")) {
        sal_tensor_info f;
        sal_model_file_input(m, &f);
        printf("layout: channels-last (NHWC): the file's input %s is ", f.name);
        print_dims(f.dims, f.ndim);
        printf("; salient feeds it (N,C,H,W) through a Transpose (node salient.nhwc_input) and its "
               "maps are (C,H,W)\n");
    }
    for (int i = 0; i < sal_model_num_outputs(m); i++) {
        sal_tensor_info t;
        sal_model_output(m, i, &t);
        printf("output %s ", t.name);
        print_dims(t.dims, t.ndim);
        printf("\n");
    }
    const char *batch_why = "";
    if (sal_model_max_batch(m, &batch_why) == 1)
        printf("batch: one image per pass (%s); predict and explain run batch by batch\n", batch_why);
    else
        printf("batch: any\n");
    int folded, bns;
    sal_model_fold_stats(m, &folded, &bns);
    printf("folded at load: %d constant nodes, %d BatchNormalization into Conv\n", folded, bns);

    /* shapes for one image */
    sal_session_opts so = sal_session_opts_default();
    so.device = SAL_DEVICE_CPU;
    so.threads = c.threads;
    sal_session *s = NULL;
    int planned = 0;
    if (sal_session_create(m, &so, &s, &err)) fprintf(stderr, "salient: note: no layer shapes (%s)\n", err.msg);
    else if (!sal_session_plan(s, 1, c.h, c.w)) planned = 1;
    int nl = sal_model_num_layers(m);
    printf("layers: %d\n", nl);
    const char *types[256];
    int counts[256], nt = 0;
    for (int i = 0; i < nl; i++) {
        sal_layer_info L;
        sal_model_layer(m, i, &L);
        printf("  %4d %-40s %-20s ", i, L.name, L.op_type);
        int nd;
        int64_t dims[SAL_MAX_DIMS];
        if (planned && !sal_session_layer_shape(s, i, &nd, dims)) print_dims(dims, nd);
        putchar('\n');
        int k = 0;
        while (k < nt && strcmp(types[k], L.op_type)) k++;
        if (k == nt && nt < 256) { types[nt] = L.op_type; counts[nt++] = 0; }
        if (k < nt) counts[k]++;
    }
    printf("op counts:");
    for (int k = 0; k < nt; k++) printf(" %s=%d", types[k], counts[k]);
    printf("\n");
    print_defaults(&c, model, m, s, planned);
    char why[1200];
    int runs = check_runs(&c, m, s, why, sizeof why);
    if (runs > 0) printf("runs: yes (one image, forward and backward to the input, on the CPU)\n");
    else if (runs < 0) printf("runs: not checked (%s)\n", why);
    else {
        printf("runs: no (%s)\n", why);
        /* the library's messages already begin with the model's path */
        if (!strncmp(why, model, strlen(model))) cli_error("cannot run %s", why);
        else cli_error("cannot run %s: %s", model, why);
    }
    sal_session_free(s);
    sal_model_free(m);
    return runs == 0 ? EXIT_FAIL : EXIT_OK;
}
