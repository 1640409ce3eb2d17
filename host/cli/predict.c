/* predict.c — `salient predict -m MODEL INPUT...`: top-k classes per input, in batches. A bad
 * input is reported and skipped; the others are still predicted (exit status 1 at the end). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char *help_head =
    "usage: salient predict -m MODEL.onnx [options] INPUT...\n"
    "Top-k classes for each input (image or preprocessed .npy (C,H,W) float32; a folder stands for\n"
    "the images and .npy files under it, in path order).\n"
    "options:\n"
    "  --topk K             classes to show (default 5)\n";

static void softmax(const float *z, int k, double *p) {
    double mx = z[0], sum = 0;
    for (int i = 1; i < k; i++) if (z[i] > mx) mx = z[i];
    for (int i = 0; i < k; i++) sum += (p[i] = exp((double)z[i] - mx));
    for (int i = 0; i < k; i++) p[i] /= sum;
}

static void report(const cli_model *cm, const cli_common *c, const char *path, const float *z,
                   int k, int topk) {
    double *p = malloc(sizeof(double) * (size_t)k);
    int *idx = malloc(sizeof(int) * (size_t)k);
    if (!p || !idx) { free(p); free(idx); cli_error("out of memory"); return; }
    softmax(z, k, p);
    for (int i = 0; i < k; i++) idx[i] = i;
    if (topk > k) topk = k;
    for (int i = 0; i < topk; i++)          /* partial selection sort */
        for (int j = i + 1; j < k; j++)
            if (p[idx[j]] > p[idx[i]]) { int t = idx[i]; idx[i] = idx[j]; idx[j] = t; }
    if (c->json) {
        printf("{\"input\": ");
        cli_json_string(stdout, path);
        printf(", \"top\": [");
        for (int i = 0; i < topk; i++) {
            printf("%s{\"class\": %d, \"label\": ", i ? ", " : "", idx[i]);
            cli_json_string(stdout, cli_label(cm, idx[i]));
            printf(", \"prob\": %.6g, \"logit\": %.7g}", p[idx[i]], z[idx[i]]);
        }
        printf("], \"logits\": [");
        for (int i = 0; i < k; i++) printf("%s%.7g", i ? ", " : "", z[i]);
        printf("]}\n");
    } else {
        printf("%s\n", path);
        for (int i = 0; i < topk; i++)
            printf("  %d. %4d %-32s %6.2f%%\n", i + 1, idx[i], cli_label(cm, idx[i]), 100 * p[idx[i]]);
    }
    fflush(stdout);
    free(p);
    free(idx);
}

int cmd_predict(int argc, char **argv) {
    cli_common c;
    cli_common_init(&c);
    int topk = 5;
    char **inputs = calloc((size_t)argc, sizeof(char *));
    int n_inputs = 0;
    if (!inputs) return EXIT_FAIL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(help_head, stdout);
            fputs(cli_common_help, stdout);
            free(inputs);
            return EXIT_OK;
        }
        if (!strcmp(argv[i], "--topk")) {
            char *end;
            long v = i + 1 < argc ? strtol(argv[i + 1], &end, 10) : 0;
            if (i + 1 >= argc || *end || v < 1) { cli_error("--topk: expected a positive integer"); free(inputs); return EXIT_USAGE; }
            topk = (int)v;
            i++;
            continue;
        }
        int r = cli_common_parse(&c, argc, argv, &i);
        if (r < 0) { free(inputs); return EXIT_USAGE; }
        if (r > 0) continue;
        if (argv[i][0] == '-' && argv[i][1]) {
            static const char *const own[] = {"--topk", "--help"};
            cli_unknown_option("predict", argv[i], own, 2);
            free(inputs);
            return EXIT_USAGE;
        }
        inputs[n_inputs++] = argv[i];
    }
    if (!c.model || n_inputs == 0) {
        cli_error("predict: needs -m MODEL.onnx and at least one input (see salient predict --help)");
        free(inputs);
        return EXIT_USAGE;
    }
    char **files;
    int n_files, n_bad;
    if (cli_expand_inputs(inputs, n_inputs, NULL, &files, &n_files, &n_bad)) { free(inputs); return EXIT_FAIL; }
    free(inputs);   /* folders stand for the inputs in them */
    inputs = files;
    n_inputs = n_files;
    cli_model cm;
    if (cli_model_open(&cm, &c)) { cli_free_inputs(inputs, n_inputs); return EXIT_FAIL; }
    /* plan before allocating: a model whose input is too big for memory is refused by the plan's
     * memory cap with a clear message, instead of a huge malloc here */
    if (n_inputs > 0 && n_inputs < c.batch) c.batch = n_inputs;   /* no room for absent inputs */
    if (n_inputs > 0 && sal_session_plan(cm.s, 1, cm.h, cm.w)) {   /* larger batches: sal_forward halves them */
        cli_error("%s", sal_session_error(cm.s));
        cli_free_inputs(inputs, n_inputs);
        cli_model_close(&cm);
        return EXIT_FAIL;
    }
    size_t per = (size_t)cm.c * cm.h * cm.w;
    float *x = malloc(sizeof(float) * per * (size_t)c.batch);
    const char **names = calloc((size_t)c.batch, sizeof(char *));
    float *logits = NULL;
    int failed = n_bad, k = 0;
    if (!x || !names) { cli_error("out of memory"); failed = 1; goto out; }
    cli_device_note(&cm);
    for (int start = 0; start < n_inputs;) {
        int n = 0;
        while (start < n_inputs && n < c.batch) {   /* fill a batch with inputs that load */
            if (cli_load_input(&cm, inputs[start], x + per * (size_t)n, NULL, NULL, 0) == 0) names[n++] = inputs[start];
            else failed++;
            start++;
        }
        if (n == 0) continue;
        if (!logits) {
            if (sal_session_plan(cm.s, 1, cm.h, cm.w)) { cli_error("%s", sal_session_error(cm.s)); failed = 1; goto out; }
            k = sal_session_num_classes(cm.s);
            logits = malloc(sizeof(float) * (size_t)k * (size_t)c.batch);
            if (!logits) { cli_error("out of memory"); failed = 1; goto out; }
        }
        if (sal_forward(cm.s, x, n, cm.h, cm.w, logits)) {
            cli_error("%s", sal_session_error(cm.s));
            failed = 1;
            goto out;
        }
        for (int i = 0; i < n; i++) report(&cm, &c, names[i], logits + (size_t)i * k, k, topk);
    }
out:
    free(x);
    free(names);
    free(logits);
    cli_free_inputs(inputs, n_inputs);
    cli_model_close(&cm);
    return failed ? EXIT_FAIL : EXIT_OK;
}
