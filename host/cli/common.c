/* common.c — options shared by subcommands, model opening, input loading, labels. */
#define _DEFAULT_SOURCE   /* realpath */
#include <ctype.h>
#include <dirent.h>
#include <limits.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "post/post.h"

void cli_error(const char *fmt, ...) {
    char line[4600];   /* one write per message: lines from several threads never mix */
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line + 9, sizeof line - 10, fmt, ap);
    va_end(ap);
    memcpy(line, "salient: ", 9);
    size_t len = 9 + (n < 0 ? 0 : (size_t)n < sizeof line - 10 ? (size_t)n : sizeof line - 11);
    line[len++] = '\n';
    cli_progress_hold();   /* a progress bar leaves the line first */
    fwrite(line, 1, len, stderr);
    cli_progress_release();
}

void cli_json_string(FILE *f, const char *s) {
    fputc('"', f);
    for (; s && *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') fprintf(f, "\\%c", ch);
        else if (ch < 0x20) fprintf(f, "\\u%04x", ch);
        else fputc(ch, f);
    }
    fputc('"', f);
}

const char *cli_common_help =
    "  -m, --model FILE     ONNX model (required)\n"
    "  --labels FILE        class names, one per line (default: the model's own list, if any)\n"
    "  --device D           cpu, cuda or auto (default auto: the GPU when present)\n"
    "  --threads N          CPU threads (default: the cores this process may use)\n"
    "  --mem-limit MIB      device memory one batch may take; larger batches are split\n"
    "                       (default: what the device has)\n"
    "  --batch N            images per batch (default 8)\n"
    "  --max-pixels N       refuse larger images before decoding them (default 89478485, as\n"
    "                       Pillow's limit: decompression bombs)\n"
    "  --size HxW           input size, required when the model's is dynamic\n"
    "  --mean a[,b,c]       per-channel mean after scaling (default: the model's, else ImageNet)\n"
    "  --std a[,b,c]        per-channel std (default: the model's, else ImageNet)\n"
    "  --scale S            pixel scale before mean/std (default 1/255)\n"
    "  --crop R             resize the shorter side to size/R, then centre-crop (0 stretches the\n"
    "                       image to the input size). Default: the model's salient.resize, else\n"
    "                       0.875, never enlarging an image to crop it (one at the input size is\n"
    "                       taken whole); `salient info MODEL` shows what a model gets\n"
    "  --gray               convert images to grayscale first\n"
    "  --dicom-window C,W   DICOM (.dcm) inputs: this VOI window (center, width) of the\n"
    "                       modality values (CT: Hounsfield units) instead of the file's own\n"
    "                       (or, without one, the image's range)\n"
    "  --json               one JSON object per input on stdout\n"
    "  -q, --quiet          no progress report or notes on stderr (errors are still printed)\n";

void cli_common_init(cli_common *c) {
    memset(c, 0, sizeof *c);
    c->device = SAL_DEVICE_AUTO;
    c->batch = 8;
    c->crop = 0.875f;
    c->max_pixels = SAL_IMAGE_MAX_PIXELS;
}

static int parse_floats(const char *s, float *v, int max) {
    int n = 0;
    char *end;
    while (n < max) {
        v[n] = strtof(s, &end);
        if (end == s) return -1;
        n++;
        if (*end == 0) break;
        if (*end != ',') return -1;
        s = end + 1;
    }
    if (*end != 0) return -1;
    for (int i = n; i < max; i++) v[i] = v[n - 1];
    return n;
}

static int parse_int(const char *opt, const char *s, int lo, int *out) {
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == 0 || *end != 0 || v < lo || v > 1 << 20) {
        cli_error("%s: expected an integer >= %d, got '%s'", opt, lo, s);
        return -1;
    }
    *out = (int)v;
    return 0;
}

/* The common options: those taking a value first (N_COMMON_WITH_VALUE), then the flags. */
static const char *const common_options[] = {"-m", "--model", "--labels", "--device", "--threads", "--batch",
                                             "--mem-limit", "--size", "--mean", "--std", "--scale", "--crop",
                                             "--max-pixels", "--dicom-window", "--gray", "--json"};
#define N_COMMON_WITH_VALUE 14
#define N_COMMON_OPTIONS (sizeof common_options / sizeof *common_options)

int cli_common_parse(cli_common *c, int argc, char **argv, int *i) {
    const char *a = argv[*i];
    int takes = 0;
    for (size_t k = 0; k < N_COMMON_WITH_VALUE; k++) takes |= strcmp(a, common_options[k]) == 0;
    if (!takes) {
        if (strcmp(a, "--gray") == 0) { c->gray = 1; return 1; }
        if (strcmp(a, "--json") == 0) { c->json = 1; return 1; }
        if (strcmp(a, "-q") == 0 || strcmp(a, "--quiet") == 0) { c->quiet = 1; return 1; }
        return 0;
    }
    if (*i + 1 >= argc) { cli_error("%s needs a value", a); return -1; }
    const char *v = argv[++*i];
    if (!strcmp(a, "-m") || !strcmp(a, "--model")) c->model = v;
    else if (!strcmp(a, "--labels")) c->labels = v;
    else if (!strcmp(a, "--device")) {
        if (!strcmp(v, "cpu")) c->device = SAL_DEVICE_CPU;
        else if (!strcmp(v, "cuda")) c->device = SAL_DEVICE_CUDA;
        else if (!strcmp(v, "auto")) c->device = SAL_DEVICE_AUTO;
        else { cli_error("--device: expected cpu, cuda or auto, got '%s'", v); return -1; }
    } else if (!strcmp(a, "--threads")) { if (parse_int(a, v, 0, &c->threads)) return -1; }
    else if (!strcmp(a, "--mem-limit")) { if (parse_int(a, v, 1, &c->mem_limit_mib)) return -1; }
    else if (!strcmp(a, "--max-pixels")) {   /* decompression-bomb limit (host/io/image.c) */
        char *end;
        long long mp = strtoll(v, &end, 10);
        if (end == v || *end || mp < 1) { cli_error("--max-pixels: expected a positive integer, got '%s'", v); return -1; }
        c->max_pixels = mp;
    }
    else if (!strcmp(a, "--dicom-window")) {
        float cw[2];
        if (parse_floats(v, cw, 2) != 2 || !(cw[1] >= 1)) {
            cli_error("--dicom-window: expected CENTER,WIDTH with a width of at least 1 (e.g. 40,400), got '%s'", v);
            return -1;
        }
        c->dicom_center = cw[0];
        c->dicom_width = cw[1];
    }
    else if (!strcmp(a, "--batch")) { if (parse_int(a, v, 1, &c->batch)) return -1; }
    else if (!strcmp(a, "--size")) {
        char *x;
        long h = strtol(v, &x, 10), w = h;
        if (*x == 'x' || *x == 'X') w = strtol(x + 1, &x, 10);
        if (*x != 0 || h <= 0 || w <= 0 || h > 16384 || w > 16384) {
            cli_error("--size: expected HxW (e.g. 224x224), got '%s'", v);
            return -1;
        }
        c->h = (int)h;
        c->w = (int)w;
    } else if (!strcmp(a, "--mean") || !strcmp(a, "--std")) {
        float *dst = a[2] == 'm' ? c->mean : c->std;
        if (parse_floats(v, dst, 3) < 0) { cli_error("%s: expected 1 or 3 numbers, got '%s'", a, v); return -1; }
        if (a[2] == 's') {
            for (int k = 0; k < 3; k++)
                if (!(dst[k] > 0)) { cli_error("--std: values must be positive"); return -1; }
            c->have_std = 1;
        } else {
            c->have_mean = 1;
        }
    } else if (!strcmp(a, "--scale")) {
        if (parse_floats(v, &c->scale, 1) < 0 || !(c->scale > 0)) { cli_error("--scale: expected a positive number, got '%s'", v); return -1; }
        c->have_scale = 1;
    } else if (!strcmp(a, "--crop")) {
        if (parse_floats(v, &c->crop, 1) < 0 || c->crop < 0 || c->crop > 1) {
            cli_error("--crop: expected a ratio in (0,1], or 0 to stretch, got '%s'", v);
            return -1;
        }
        c->have_crop = 1;
    }
    return 1;
}

/* ------------------------------------------------------------------------------------------------ */
/* Suggestions for misspelled names                                                                 */

/* Levenshtein distance between a and b, case aside (strings longer than 63 bytes: a large number). */
static int edit_distance(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    if (la > 63 || lb > 63) return 1 << 20;
    int row[64];
    for (size_t j = 0; j <= lb; j++) row[j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        int diag = row[0];
        row[0] = (int)i;
        for (size_t j = 1; j <= lb; j++) {
            int up = row[j];
            int sub = diag + (tolower((unsigned char)a[i - 1]) != tolower((unsigned char)b[j - 1]));
            int best = up + 1 < row[j - 1] + 1 ? up + 1 : row[j - 1] + 1;
            row[j] = sub < best ? sub : best;
            diag = up;
        }
    }
    return row[lb];
}

const char *cli_closest(const char *got, const char *const *choices, int n) {
    const char *best = NULL;
    int best_d = 1 << 20;
    size_t len = strlen(got);
    for (int k = 0; k < n; k++) {
        if (!choices[k] || !*choices[k]) continue;
        int d = edit_distance(got, choices[k]);
        if (d < best_d) { best_d = d; best = choices[k]; }
    }
    /* a typo, not another word: at most a third of the name's letters changed (at least 1, at most 3) */
    int limit = (int)(len / 3) < 1 ? 1 : (int)(len / 3) > 3 ? 3 : (int)(len / 3);
    return best && best_d <= limit ? best : NULL;
}

void cli_unknown(const char *what, const char *got, const char *const *choices, int n, const char *more) {
    char hint[256] = "", list[2048] = "";
    const char *near = cli_closest(got, choices, n);
    if (near) snprintf(hint, sizeof hint, ": did you mean '%s'?", near);
    if (more) snprintf(list, sizeof list, " (%s)", more);
    else {
        size_t len = snprintf(list, sizeof list, " (choices:");
        for (int k = 0; k < n && len < sizeof list - 8; k++)
            len += (size_t)snprintf(list + len, sizeof list - len, "%s %s", k ? "," : "", choices[k]);
        if (len < sizeof list - 2) snprintf(list + len, sizeof list - len, ")");
        else snprintf(list + sizeof list - 6, 6, "...)");
    }
    cli_error("unknown %s '%s'%s%s", what, got, hint, list);
}

void cli_unknown_option(const char *cmd, const char *got, const char *const *own, int n_own) {
    const char *all[128];
    int n = 0;
    for (int k = 0; k < n_own && n < 128; k++) all[n++] = own[k];
    for (size_t k = 0; k < N_COMMON_OPTIONS && n < 128; k++) all[n++] = common_options[k];
    const char *near = cli_closest(got, all, n);
    char hint[256] = "";
    if (near) snprintf(hint, sizeof hint, ": did you mean '%s'?", near);
    cli_error("%s: unknown option '%s'%s (see salient %s --help)", cmd, got, hint, cmd);
}

/* ------------------------------------------------------------------------------------------------ */
/* Preprocessing                                                                                    */

void cli_prep_choose(const cli_common *c, const sal_model *m, int ch, int h, int w, sal_prep_opts *out,
                     cli_prep_source *src) {
    /* flags, else the model's metadata, else the field's conventions (ImageNet for 3 channels) */
    sal_prep_opts p = ch == 3 ? sal_prep_opts_imagenet(h, w) : sal_prep_opts_gray(h, w);
    const char *mv = sal_model_metadata(m, "salient.mean");
    const char *sv = sal_model_metadata(m, "salient.std");
    const char *rv = sal_model_metadata(m, "salient.resize");
    cli_prep_source from = {ch == 3 ? "ImageNet's" : "the default", ch == 3 ? "ImageNet's" : "the default",
                            "the default, 1/255", "the field's 0.875 crop ratio"};
    if (mv && parse_floats(mv, p.mean, 3) > 0) from.mean = "the model's salient.mean";
    if (sv && parse_floats(sv, p.std, 3) > 0) from.std = "the model's salient.std";
    if (rv && !c->have_crop) {
        p.resize_shorter = atoi(rv);
        from.resize = "the model's salient.resize";
    }
    if (c->have_mean) memcpy(p.mean, c->mean, sizeof p.mean), from.mean = "--mean";
    if (c->have_std) memcpy(p.std, c->std, sizeof p.std), from.std = "--std";
    if (c->have_scale) p.scale = c->scale, from.scale = "--scale";
    if (c->have_crop || !rv) {
        int shorter = h < w ? h : w;
        p.resize_shorter = c->crop > 0 ? (int)(shorter / c->crop + 0.5f) : 0;
        if (c->have_crop) from.resize = "--crop";
    }
    /* a default crop (ImageNet's, or the model's salient.resize) never enlarges an image to crop
     * it: an image at the input size is taken whole; --crop R is applied as given */
    p.crop_no_enlarge = !c->have_crop && p.resize_shorter > 0;
    *out = p;
    if (src) *src = from;
}

const char *cli_labels_path(const char *given, const char *model_path, const sal_model *m, char *buf, size_t len) {
    if (given) return given;
    const char *lm = sal_model_metadata(m, "salient.labels");
    if (!lm) return NULL;
    const char *slash = strrchr(model_path, '/');
    int dirlen = slash ? (int)(slash - model_path + 1) : 0;
    snprintf(buf, len, "%.*s%s", dirlen, model_path, lm);
    FILE *f = fopen(buf, "r");
    if (!f) return NULL;
    fclose(f);
    return buf;
}

/* ------------------------------------------------------------------------------------------------ */
/* Model                                                                                            */

int cli_model_open(cli_model *cm, const cli_common *c) {
    memset(cm, 0, sizeof *cm);
    if (!c->model) { cli_error("no model given (-m MODEL.onnx)"); return -1; }
    sal_error err = {0};
    if (sal_model_load(c->model, &cm->m, &err)) { cli_error("%s", err.msg); return -1; }
    sal_tensor_info in;
    sal_model_input(cm->m, 0, &in);
    if (sal_model_num_inputs(cm->m) != 1 || in.ndim != 4) {
        cli_error("%s: expected one image input (N,C,H,W), found %d inputs", c->model,
                  sal_model_num_inputs(cm->m));
        goto fail;
    }
    if (in.dims[1] != 1 && in.dims[1] != 3) {   /* neither layout has an image's channels */
        char why[700];
        cli_error("%s: %s", c->model, cli_layout_problem(cm->m, why, sizeof why));
        goto fail;
    }
    if (in.dims[2] > SAL_IMAGE_MAX_SIDE || in.dims[3] > SAL_IMAGE_MAX_SIDE) {
        cli_error("%s: input '%s' is (N,%lld,%lld,%lld): images give 1 or 3 channels and at most "
                  "%d pixels per side", c->model, in.name, (long long)in.dims[1],
                  (long long)in.dims[2], (long long)in.dims[3], SAL_IMAGE_MAX_SIDE);
        goto fail;
    }
    cm->c = (int)in.dims[1];
    cm->h = in.dims[2] > 0 ? (int)in.dims[2] : c->h;
    cm->w = in.dims[3] > 0 ? (int)in.dims[3] : c->w;
    if (cm->h <= 0 || cm->w <= 0) {
        cli_error("%s: the model's input size is dynamic: give --size HxW", c->model);
        goto fail;
    }
    if (c->h && (c->h != cm->h || c->w != cm->w)) {
        cli_error("%s: the model takes %dx%d inputs; --size %dx%d does not match", c->model,
                  cm->h, cm->w, c->h, c->w);
        goto fail;
    }
    sal_session_opts so = sal_session_opts_default();
    so.device = c->device;
    so.threads = c->threads;
    so.mem_limit = (size_t)c->mem_limit_mib << 20;
    if (sal_session_create(cm->m, &so, &cm->s, &err)) { cli_error("%s", err.msg); goto fail; }

    cli_prep_choose(c, cm->m, cm->c, cm->h, cm->w, &cm->prep, NULL);
    cm->gray_flag = c->gray;
    cm->quiet = c->quiet;
    cm->max_pixels = c->max_pixels;
    cm->dicom_center = c->dicom_center;
    cm->dicom_width = c->dicom_width;

    char path[4096];
    const char *lp = cli_labels_path(c->labels, c->model, cm->m, path, sizeof path);
    if (lp && sal_labels_load(lp, &cm->labels, &cm->n_labels, &err)) {
        cli_error("%s", err.msg);
        goto fail;
    }
    return 0;
fail:
    cli_model_close(cm);
    return -1;
}

void cli_device_note(cli_model *cm) {
    if (cm->note_shown || !cm->s) return;
    cm->note_shown = 1;
    if (cm->quiet) return;   /* --quiet: errors only */
    if (*sal_session_device_note(cm->s)) fprintf(stderr, "salient: note: %s\n", sal_session_device_note(cm->s));
    const char *why = "";
    if (sal_model_max_batch(cm->m, &why) == 1)
        fprintf(stderr, "salient: note: running one image per pass: %s\n", why);
}

const char *cli_layout_problem(const sal_model *m, char *buf, size_t len) {
    sal_tensor_info f;
    sal_model_file_input(m, &f);
    char dims[200];
    size_t k = (size_t)snprintf(dims, sizeof dims, "(");
    for (int i = 0; i < f.ndim && k < sizeof dims; i++)
        k += (size_t)snprintf(dims + k, sizeof dims - k, f.dims[i] < 0 ? "%s?" : "%s%lld", i ? "," : "",
                              (long long)f.dims[i]);
    if (k < sizeof dims) snprintf(dims + k, sizeof dims - k, ")");
    snprintf(buf, len, "input '%s' is %s: neither channels-first (N,C,H,W) nor channels-last (N,H,W,C) "
             "with an image's 1 or 3 channels (the model's metadata salient.layout = NCHW or NHWC "
             "settles the layout)", f.name ? f.name : "?", dims);
    return buf;
}

void cli_model_close(cli_model *cm) {
    sal_session_free(cm->s);
    sal_model_free(cm->m);
    if (cm->labels) sal_labels_free(cm->labels, cm->n_labels);
    memset(cm, 0, sizeof *cm);
}

const char *cli_label(const cli_model *cm, int k) {
    return cm->labels && k >= 0 && k < cm->n_labels ? cm->labels[k] : "";
}

static int ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcasecmp(s + a - b, suffix) == 0;
}

/* cli_error into msg (len bytes) when there is one, else on stderr. */
static void load_error(char *msg, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void load_error(char *msg, size_t len, const char *fmt, ...) {
    char line[4500];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg ? msg : line, msg ? len : sizeof line, fmt, ap);
    va_end(ap);
    if (!msg) cli_error("%s", line);
}

/* A DICOM file as a gray image: modality values (rescale slope and intercept applied) through the
 * window (--dicom-window, else the file's, else the image's range) to 0..255 at full precision
 * (*fpix), MONOCHROME1 inverted; img->pix the same rounded, for overlays. */
static sal_status load_dicom(const cli_model *cm, const char *path, sal_image *img, float **fpix, sal_error *err) {
    sal_dicom d;
    sal_status st = sal_dicom_read(path, cm->max_pixels, &d, err);
    if (st) return st;
    const size_t n = (size_t)d.w * (size_t)d.h;
    img->w = d.w;
    img->h = d.h;
    img->c = 1;
    img->pix = malloc(n);
    *fpix = malloc(n * sizeof(float));
    if (!img->pix || !*fpix) {
        st = err->status = SAL_ERR_NOMEM;
        snprintf(err->msg, sizeof err->msg, "%.200s: out of memory", path);
    }
    if (!st) st = sal_dicom_to_gray(&d, cm->dicom_center, cm->dicom_width, *fpix, img->pix, err);
    if (st) {
        if (strncmp(err->msg, path, strlen(path))) {   /* name the file */
            char why[SAL_ERROR_LEN];
            snprintf(why, sizeof why, "%s", err->msg);
            snprintf(err->msg, sizeof err->msg, "%.200s: %.800s", path, why);
        }
        sal_image_free(img);
        free(*fpix);
        *fpix = NULL;
    }
    sal_dicom_free(&d);
    return st;
}

int cli_load_input(const cli_model *cm, const char *path, float *out, sal_image *keep, char *msg, size_t msg_len) {
    sal_error err = {0};
    if (ends_with(path, ".npy")) {
        float *data = NULL;
        int ndim = 0;
        int64_t dims[SAL_MAX_DIMS];
        if (sal_npy_read(path, &data, &ndim, dims, &err)) { load_error(msg, msg_len, "%s", err.msg); return -1; }
        int off = ndim == 4 && dims[0] == 1 ? 1 : 0;
        if (ndim - off != 3 || dims[off] != cm->c || dims[off + 1] != cm->h || dims[off + 2] != cm->w) {
            char shape[256] = "";
            for (int k = 0, len = 0; k < ndim && len < (int)sizeof shape - 24; k++)
                len += snprintf(shape + len, sizeof shape - (size_t)len, "%s%lld", k ? "," : "", (long long)dims[k]);
            load_error(msg, msg_len, "%s: array has shape (%s), the model takes (%d,%d,%d) float32 (C,H,W)", path, shape,
                      cm->c, cm->h, cm->w);
            free(data);
            return -1;
        }
        const int64_t n = (int64_t)cm->c * cm->h * cm->w;
        int64_t bad = 0;
        for (int64_t i = 0; i < n; i++) bad += !isfinite(data[i]);
        if (bad) {   /* the maps of such an input would be NaN throughout */
            load_error(msg, msg_len, "%s: %lld of its %lld values are NaN or infinite", path, (long long)bad, (long long)n);
            free(data);
            return -1;
        }
        memcpy(out, data, sizeof(float) * (size_t)n);
        free(data);
        return 0;
    }
    sal_image img = {0};
    float *fpix = NULL;   /* a 16-bit PNG's or a DICOM file's samples at full precision */
    if (ends_with(path, ".dcm")) {
        if (load_dicom(cm, path, &img, &fpix, &err)) { load_error(msg, msg_len, "%s", err.msg); return -1; }
    } else if (sal_image_load_full(path, cm->max_pixels, &img, &fpix, &err)) {
        load_error(msg, msg_len, "%s", err.msg);
        return -1;
    }
    sal_status st = SAL_OK;
    sal_image g = {0};
    if (cm->gray_flag && img.c == 3) {
        g = (sal_image){img.w, img.h, 1, malloc((size_t)img.w * img.h)};
        if (!g.pix) st = SAL_ERR_NOMEM;
        for (int64_t i = 0; g.pix && i < (int64_t)img.w * img.h; i++)
            g.pix[i] = (uint8_t)(0.299f * img.pix[3 * i] + 0.587f * img.pix[3 * i + 1] + 0.114f * img.pix[3 * i + 2] + 0.5f);
    }
    if (!st) st = g.pix ? sal_preprocess(&g, &cm->prep, out, &err) : sal_preprocess_full(&img, fpix, &cm->prep, out, &err);
    free(fpix);
    sal_image_free(&g);
    if (!st && keep) *keep = img;   /* the decoded original, for the caller's overlays */
    else sal_image_free(&img);
    if (st) { load_error(msg, msg_len, "%s: %s", path, err.msg[0] ? err.msg : sal_status_str(st)); return -1; }
    return 0;
}

/* ------------------------------------------------------------------------------------------------ */
/* Inputs: files, and directories standing for the files under them                                 */

typedef struct strvec {
    char **v;
    int n, cap;
} strvec;

static int sv_push(strvec *sv, const char *s) {
    if (sv->n == sv->cap) {
        int cap = sv->cap ? 2 * sv->cap : 64;
        char **v = realloc(sv->v, sizeof(char *) * (size_t)cap);
        if (!v) return -1;
        sv->v = v;
        sv->cap = cap;
    }
    if (!(sv->v[sv->n] = strdup(s))) return -1;
    sv->n++;
    return 0;
}

/* The file names a folder stands for (case aside). */
static const char *const input_ext[] = {".png", ".jpg", ".jpeg", ".bmp", ".pgm", ".ppm", ".pnm", ".npy", ".dcm"};
#define N_INPUT_EXT (sizeof input_ext / sizeof *input_ext)

static int is_input_name(const char *name) {
    for (size_t k = 0; k < N_INPUT_EXT; k++)
        if (strlen(name) > strlen(input_ext[k]) && ends_with(name, input_ext[k])) return 1;
    return 0;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* A folder, by identity: the same folder reached twice (through a link, or two arguments) is
 * listed once. */
typedef struct dir_id {
    dev_t dev;
    ino_t ino;
} dir_id;

#define WALK_MAX_DEPTH 64

typedef struct walk {
    strvec *sv;
    dir_id *seen;   /* every folder listed so far */
    int n_seen, cap_seen;
    int has_skip;
    dir_id skip;    /* the output folder, when it exists: never read as input */
    int bad;        /* folders reported and skipped */
} walk;

/* 1 when folder id was listed already, else records it (0); -1 out of memory. */
static int seen_before(walk *w, dir_id id) {
    for (int k = 0; k < w->n_seen; k++)
        if (w->seen[k].dev == id.dev && w->seen[k].ino == id.ino) return 1;
    if (w->n_seen == w->cap_seen) {
        int cap = w->cap_seen ? 2 * w->cap_seen : 64;
        dir_id *v = realloc(w->seen, sizeof(dir_id) * (size_t)cap);
        if (!v) return -1;
        w->seen = v;
        w->cap_seen = cap;
    }
    w->seen[w->n_seen++] = id;
    return 0;
}

static int walk_dir(walk *w, const char *dir, int depth);

/* Folder `dir` (identity id, depth folders below its argument) unless it is the output folder
 * (left out), was listed already (a note: through a link, or given twice) or lies too deep
 * (reported). -1 out of memory. */
static int visit_dir(walk *w, const char *dir, dir_id id, int depth) {
    if (w->has_skip && id.dev == w->skip.dev && id.ino == w->skip.ino) return 0;
    int again = seen_before(w, id);
    if (again) {
        if (again > 0) fprintf(stderr, "salient: note: %s: not listed again: the same folder as one listed before\n", dir);
        return again < 0 ? -1 : 0;
    }
    if (depth > WALK_MAX_DEPTH) {
        cli_error("%s: skipped: more than %d folders deep", dir, WALK_MAX_DEPTH);
        w->bad++;
        return 0;
    }
    return walk_dir(w, dir, depth);
}

/* A sub-folder met in a listing: its path and identity (from the one stat). */
typedef struct sub_dir {
    char *path;
    dir_id id;
} sub_dir;

static int cmp_sub(const void *a, const void *b) {
    return strcmp(((const sub_dir *)a)->path, ((const sub_dir *)b)->path);
}

/* The input files under dir, then its sub-folders' in name order (visit_dir: a folder reached
 * again through a link keeps the path met first); -1 out of memory. A folder that cannot be read
 * is reported and skipped (w->bad counts it). */
static int walk_dir(walk *w, const char *dir, int depth) {
    DIR *d = opendir(dir);
    if (!d) {
        cli_error("%s: cannot read this folder: %s", dir, strerror(errno));
        w->bad++;
        return 0;
    }
    strvec files = {0};
    sub_dir *dirs = NULL;
    int rc = 0, n_dirs = 0, cap_dirs = 0;
    for (;;) {
        errno = 0;
        struct dirent *e = readdir(d);
        if (!e) {
            if (errno) {
                cli_error("%s: reading this folder failed: %s", dir, strerror(errno));
                w->bad++;
            }
            break;
        }
        if (e->d_name[0] == '.') continue;   /* hidden entries, "." and ".." */
        size_t len = strlen(dir) + strlen(e->d_name) + 2;
        char *path = malloc(len);
        if (!path) { rc = -1; break; }
        snprintf(path, len, "%s%s%s", dir, dir[strlen(dir) - 1] == '/' ? "" : "/", e->d_name);
        struct stat st;
        if (!stat(path, &st)) {
            if (S_ISREG(st.st_mode) && is_input_name(e->d_name)) rc = sv_push(&files, path);
            else if (S_ISDIR(st.st_mode)) {
                sub_dir *v = n_dirs < cap_dirs ? dirs : realloc(dirs, sizeof(sub_dir) * (size_t)(cap_dirs = cap_dirs ? 2 * cap_dirs : 16));
                if (!v) rc = -1;
                else {
                    dirs = v;
                    dirs[n_dirs++] = (sub_dir){path, {st.st_dev, st.st_ino}};
                    path = NULL;   /* kept */
                }
            }
        }
        free(path);
        if (rc) break;
    }
    closedir(d);
    for (int i = 0; !rc && i < files.n; i++) rc = sv_push(w->sv, files.v[i]);
    if (n_dirs) qsort(dirs, (size_t)n_dirs, sizeof *dirs, cmp_sub);
    for (int i = 0; !rc && i < n_dirs; i++) rc = visit_dir(w, dirs[i].path, dirs[i].id, depth + 1);
    for (int i = 0; i < n_dirs; i++) free(dirs[i].path);
    free(dirs);
    cli_free_inputs(files.v, files.n);
    return rc;
}

int cli_expand_inputs(char *const *args, int n, const char *skip, char ***out, int *n_out, int *n_bad) {
    strvec sv = {0};
    walk w = {0};
    w.sv = &sv;
    struct stat st;
    if (skip && !stat(skip, &st) && S_ISDIR(st.st_mode)) {
        w.has_skip = 1;
        w.skip = (dir_id){st.st_dev, st.st_ino};
    }
    *n_bad = 0;
    for (int i = 0; i < n; i++) {
        if (stat(args[i], &st) || !S_ISDIR(st.st_mode)) {   /* a file, or a bad path: load reports it */
            if (sv_push(&sv, args[i])) goto nomem;
            continue;
        }
        dir_id id = {st.st_dev, st.st_ino};
        if (w.has_skip && id.dev == w.skip.dev && id.ino == w.skip.ino) {
            cli_error("%s: the input folder is also the output folder (-o): its maps would be read as "
                      "inputs by the next run; write them elsewhere", args[i]);
            cli_free_inputs(sv.v, sv.n);
            free(w.seen);
            return -2;
        }
        int before = sv.n, bad = w.bad, listed = w.n_seen;
        if (visit_dir(&w, args[i], id, 0)) goto nomem;
        if (w.n_seen == listed) continue;   /* given before: noted */
        /* in path order, as `sort` lists them */
        qsort(sv.v + before, (size_t)(sv.n - before), sizeof(char *), cmp_str);
        if (sv.n == before && w.bad == bad) {
            char exts[128] = "";
            for (size_t k = 0; k < N_INPUT_EXT; k++)
                snprintf(exts + strlen(exts), sizeof exts - strlen(exts), "%s%s", k ? " " : "", input_ext[k]);
            cli_error("%s: a folder with no images or .npy files (%s) in it", args[i], exts);
            w.bad++;
        }
    }
    free(w.seen);
    *n_bad = w.bad;
    if (!sv.v && !(sv.v = malloc(sizeof(char *)))) goto nomem;   /* no inputs: an empty list, not NULL */
    *out = sv.v;
    *n_out = sv.n;
    return 0;
nomem:
    cli_free_inputs(sv.v, sv.n);
    free(w.seen);
    cli_error("out of memory listing the inputs");
    return -1;
}

void cli_free_inputs(char **v, int n) {
    for (int i = 0; v && i < n; i++) free(v[i]);
    free(v);
}

/* ------------------------------------------------------------------------------------------------ */
/* The output folder against the inputs                                                             */

/* p made absolute and free of links, "." and "..", also when its last parts do not exist yet
 * (the output folder before it is created): the longest existing prefix through realpath, the rest
 * appended lexically. -1 when it cannot be resolved. */
static int resolve_path(const char *p, char *out, size_t len) {
    char buf[PATH_MAX], head[PATH_MAX];
    if (p[0] == '/') snprintf(buf, sizeof buf, "%s", p);
    else {
        if (!getcwd(head, sizeof head)) return -1;
        if ((size_t)snprintf(buf, sizeof buf, "%s/%s", head, p) >= sizeof buf) return -1;
    }
    /* the longest prefix (cut at a '/') that exists */
    size_t cut = strlen(buf);
    for (;;) {
        char saved = buf[cut];
        buf[cut] = 0;
        char *r = realpath(cut ? buf : "/", head);
        buf[cut] = saved;
        if (r) break;
        while (cut > 0 && buf[cut - 1] != '/') cut--;
        if (cut == 0) return -1;
        cut--;   /* drop the '/' too */
    }
    size_t n = (size_t)snprintf(out, len, "%s", head);
    if (n >= len) return -1;
    /* the rest, part by part */
    for (char *part = buf + cut; *part;) {
        while (*part == '/') part++;
        if (!*part) break;
        char *end = part;
        while (*end && *end != '/') end++;
        size_t pl = (size_t)(end - part);
        if (pl == 1 && part[0] == '.') {}
        else if (pl == 2 && part[0] == '.' && part[1] == '.') {
            char *slash = strrchr(out, '/');
            if (slash && slash != out) *slash = 0, n = (size_t)(slash - out);
            else out[1] = 0, n = 1;
        } else {
            if (n + 1 + pl >= len) return -1;
            n += (size_t)snprintf(out + n, len - n, "%s%.*s", n > 1 ? "/" : "", (int)pl, part);
        }
        part = end;
    }
    return 0;
}

/* 1 when path is dir or lies inside it (both resolved). */
static int is_within(const char *path, const char *dir) {
    size_t n = strlen(dir);
    if (strncmp(path, dir, n)) return 0;
    return path[n] == 0 || path[n] == '/' || (n == 1 && dir[0] == '/');
}

int cli_check_output(const char *out, char *const *args, int n) {
    char ro[PATH_MAX], ra[PATH_MAX];
    if (resolve_path(out, ro, sizeof ro)) return 0;   /* ensure_dir will say what is wrong */
    for (int i = 0; i < n; i++) {
        struct stat st;
        if (stat(args[i], &st) || !realpath(args[i], ra)) continue;   /* a missing input is reported when loaded */
        if (S_ISDIR(st.st_mode)) {
            if (is_within(ro, ra)) {
                cli_error("-o %s: the output folder %s the input folder %s: its maps would be mixed with the "
                          "inputs and read as inputs by the next run; write them elsewhere", out,
                          strcmp(ro, ra) ? "lies inside" : "is", args[i]);
                return -1;
            }
        } else {
            char *slash = strrchr(ra, '/');
            if (slash) *slash = 0;
            if (!strcmp(ro, ra[0] ? ra : "/")) {
                cli_error("-o %s: the output folder is the folder of the input %s: its maps would be mixed with "
                          "the inputs; write them elsewhere", out, args[i]);
                return -1;
            }
        }
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------------ */
/* Overlays                                                                                         */

static int opacity_by_value_default(sal_method m, int signed_map) {
    if (signed_map) return 1;
    switch (m) {
    case SAL_M_SALIENCY: case SAL_M_INPUTXGRAD: case SAL_M_SMOOTHGRAD: case SAL_M_SMOOTHGRAD_SQ: case SAL_M_VARGRAD:
    case SAL_M_IG: case SAL_M_GUIDED: case SAL_M_GUIDED_GRADCAM: case SAL_M_GRADSHAP: return 1;
    default: return 0;
    }
}

void cli_render_defaults(sal_method m, int signed_map, sal_render_opts *ro) {
    memset(ro, 0, sizeof *ro);
    ro->reduce = SAL_REDUCE_ABS_MAX;
    ro->signed_map = signed_map;
    ro->clip = sal_method_is_cam(m) || m == SAL_M_OCCLUSION ? 100.0 : SAL_CLIP_PERCENTILE_DEFAULT;
    ro->cmap = signed_map ? SAL_CMAP_BWR : SAL_CMAP_JET;
    ro->alpha_by_value = opacity_by_value_default(m, signed_map);
    ro->alpha = ro->alpha_by_value ? SAL_OVERLAY_ALPHA_BY_VALUE : SAL_OVERLAY_ALPHA;
}

/* ------------------------------------------------------------------------------------------------ */
/* CAM layers                                                                                       */

const char *cli_cam_layer_desc(sal_session *s, const sal_cam_layer *cl, char *buf, size_t len) {
    int nd = 0;
    int64_t d[SAL_MAX_DIMS];
    char shape[96] = "";
    if (!sal_session_value_shape(s, cl->name, &nd, d)) {
        size_t at = 0;
        for (int i = 0; i < nd && at < sizeof shape; i++)
            at += (size_t)snprintf(shape + at, sizeof shape - at, "%s%lld", i ? "," : "(", (long long)d[i]);
        if (at < sizeof shape) snprintf(shape + at, sizeof shape - at, ")");
    }
    if (cl->layout == SAL_LAYOUT_TOKENS)
        snprintf(buf, len, "%s %s: tokens on a %dx%d grid%s", cl->name, shape, cl->h, cl->w,
                 cl->skip == 1 ? " after a class token" : cl->skip ? " after leading tokens" : "");
    else
        snprintf(buf, len, "%s %s: a %dx%d map%s", cl->name, shape, cl->h, cl->w,
                 cl->layout == SAL_LAYOUT_NHWC ? ", channels last" : "");
    return buf;
}
