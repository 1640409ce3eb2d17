/* info.c — `salient info MODEL`: inputs, outputs, layers with output shapes, op counts. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char *help =
    "usage: salient info [--size HxW] MODEL.onnx\n"
    "Print the model's inputs and outputs, every layer (node) with its output shape for one\n"
    "image, and how many nodes of each op type it has. Layer names are what --layer takes.\n";

static void print_dims(const int64_t *d, int n) {
    putchar('(');
    for (int i = 0; i < n; i++) {
        if (d[i] < 0) printf("%s?", i ? "," : "");
        else printf("%s%lld", i ? "," : "", (long long)d[i]);
    }
    putchar(')');
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
    for (int i = 0; i < sal_model_num_outputs(m); i++) {
        sal_tensor_info t;
        sal_model_output(m, i, &t);
        printf("output %s ", t.name);
        print_dims(t.dims, t.ndim);
        printf("\n");
    }
    int folded, bns;
    sal_model_fold_stats(m, &folded, &bns);
    printf("folded at load: %d constant nodes, %d BatchNormalization into Conv\n", folded, bns);

    /* shapes for one image */
    sal_session_opts so = sal_session_opts_default();
    so.device = SAL_DEVICE_CPU;
    sal_session *s = NULL;
    int planned = 0;
    if (!sal_session_create(m, &so, &s, &err) && !sal_session_plan(s, 1, c.h, c.w)) planned = 1;
    else if (s) fprintf(stderr, "salient: note: no layer shapes (%s)\n", sal_session_error(s));
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
    sal_session_free(s);
    sal_model_free(m);
    return EXIT_OK;
}
