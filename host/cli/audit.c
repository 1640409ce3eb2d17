/* audit.c — `salient audit`: explain a whole dataset and say where the model looks. Walks DATA
 * (ImageFolder labels or --truth), explains each batch with every method, measures the region
 * masses of each map (host/post/regions.h), commits the batch's records and mean-map sums to
 * OUT/audit.sqlite in one transaction (audit_store.c: resumable, crash-safe), then writes the
 * findings and exports (audit_findings.c). Single-threaded decoding for now; the shared progress
 * and fault-safe output code of `explain` is to be wired in later. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

#include "cli.h"
#include "audit.h"
#include "post/post.h"

#define AUDIT_MAX_METHODS 8
#define AUDIT_MEAN_MAX 64   /* mean maps are kept at most this many pixels a side */

static const char *audit_help =
    "usage: salient audit -m MODEL.onnx DATA -o OUT [options]\n"
    "\n"
    "Explain every image under the folder DATA and find where the model looks, per class: the\n"
    "share of each map's mass in the centre, the border band, each corner and a mask; mean maps per\n"
    "class; flags for classes whose maps sit in a corner or on the border far more than the other\n"
    "classes' (a watermark, a ruler, a tag). Records go to OUT/audit.sqlite, one transaction per\n"
    "batch: a rerun of the same command into the same OUT resumes where the last one stopped.\n"
    "\n"
    "  -o, --out DIR        output folder (required): audit.sqlite, records.csv, records.jsonl,\n"
    "                       findings.json, report.html, mean/<method>.<class>.png and .npy\n"
    "  -M, --methods LIST   comma-separated methods (default gradcam,saliency)\n"
    "  --truth FILE.csv     true labels: lines `file,label` (file relative to DATA, or its base\n"
    "                       name; label a class name or index). Default: DATA/<class>/... named\n"
    "                       after the model's classes (case ignored); neither: unlabelled\n"
    "  --mask FILE          a binary image (non-zero = inside): fills the mass_mask column\n"
    "  --threshold R        flag a class whose mean mass in a corner or the border is at least R\n"
    "                       times the other classes' (default 3)\n"
    "  --area-ratio R       ... and at least R times the region's share of the pixels, the mass a\n"
    "                       uniform map puts there (default 2)\n"
    "  --layer NAME         the CAM methods' layer (default: the last 4-D layer)\n"
    "  --resume             accepted for clarity: a rerun always resumes\n"
    "  --shard K/N          process the files whose relative path hashes to K (0 <= K < N) into\n"
    "                       OUT/shard-K-of-N/; default: from a Slurm job array\n"
    "                       (SLURM_ARRAY_TASK_ID, SLURM_ARRAY_TASK_COUNT) or an MPI launcher\n"
    "                       (OMPI_COMM_WORLD_RANK/SIZE, PMI_RANK/SIZE), else the whole of DATA\n"
    "\n"
    "usage: salient audit -m MODEL.onnx --merge DIR... [-o OUT] [--threshold R] [--area-ratio R]\n"
    "  combine the records of DIR/shard-*-of-*/ (or of folders holding audit.sqlite) into\n"
    "  OUT/audit.sqlite (default OUT: the one DIR given) and write the findings\n";

/* K/N from a Slurm job array (K = the task's ID less the array's first ID) or an MPI launcher:
 * 1 when one says, 0 when none does, -1 (reported) when its numbers make no shard. */
static int shard_from_env(int *k, int *n, const char **who) {
    static const char *const pairs[][3] = {
        {"SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT", "Slurm job array"},
        {"OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "Open MPI"},
        {"PMI_RANK", "PMI_SIZE", "MPI (PMI)"}};
    for (size_t i = 0; i < sizeof pairs / sizeof *pairs; i++) {
        const char *a = getenv(pairs[i][0]), *b = getenv(pairs[i][1]);
        if (!a) continue;
        const char *lo = i == 0 ? getenv("SLURM_ARRAY_TASK_MIN") : NULL;
        const char *hi = i == 0 ? getenv("SLURM_ARRAY_TASK_MAX") : NULL;
        if (!b && !hi) continue;
        *k = atoi(a) - (lo ? atoi(lo) : 0);
        *n = b ? atoi(b) : atoi(hi) - (lo ? atoi(lo) : 0) + 1;   /* older Slurm: no COUNT */
        *who = pairs[i][2];
        if (*n < 1 || *k < 0 || *k >= *n) {
            cli_error("%s: %s=%s, %s=%s make no shard K/N with 0 <= K < N (a Slurm array must be one "
                      "contiguous range: --array=0-N); give --shard K/N", *who, pairs[i][0], a, b ? pairs[i][1] : "SLURM_ARRAY_TASK_MAX",
                      b ? b : hi);
            return -1;
        }
        return *n > 1;
    }
    return 0;
}

int audit_shard_of(const char *rel, int n) {
    uint64_t h = 1469598103934665603ull;
    for (const unsigned char *p = (const unsigned char *)rel; *p; p++) h = (h ^ *p) * 1099511628211ull;
    return (int)(h % (uint64_t)n);
}

typedef struct truth_row {
    char *file;
    int label;
} truth_row;

static int cmp_truth(const void *a, const void *b) {
    return strcmp(((const truth_row *)a)->file, ((const truth_row *)b)->file);
}

static int cmp_cstr(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* --truth FILE: `file,label` lines; a first line whose label is no class is a header. */
static int load_truth(const char *path, const cli_model *cm, truth_row **out, int *n_out) {
    FILE *f = fopen(path, "r");
    if (!f) { cli_error("--truth %s: %s", path, strerror(errno)); return -1; }
    truth_row *v = NULL;
    int n = 0, cap = 0, line_no = 0, rc = 0;
    char line[8192];
    while (fgets(line, sizeof line, f)) {
        line_no++;
        size_t len = strlen(line);
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = 0;
        if (!len) continue;
        char *comma = strrchr(line, ',');
        if (!comma) { cli_error("--truth %s:%d: expected `file,label`", path, line_no); rc = -1; break; }
        *comma = 0;
        const char *lab = comma + 1;
        int k = sal_labels_find(cm->labels, cm->n_labels, lab);
        if (k < 0) {
            char *end;
            long x = strtol(lab, &end, 10);
            if (*lab && !*end && x >= 0 && x < sal_session_num_classes(cm->s)) k = (int)x;
        }
        if (k < 0) {
            if (line_no == 1) continue;   /* a header */
            cli_error("--truth %s:%d: '%s' is neither a class name nor a class index of the model", path, line_no, lab);
            rc = -1;
            break;
        }
        if (n == cap) {
            cap = cap ? 2 * cap : 256;
            truth_row *nv = realloc(v, sizeof *nv * (size_t)cap);
            if (!nv) { cli_error("out of memory reading --truth"); rc = -1; break; }
            v = nv;
        }
        if (!(v[n].file = strdup(line))) { cli_error("out of memory reading --truth"); rc = -1; break; }
        v[n++].label = k;
    }
    fclose(f);
    if (rc) {
        for (int i = 0; i < n; i++) free(v[i].file);
        free(v);
        return -1;
    }
    if (n) qsort(v, (size_t)n, sizeof *v, cmp_truth);
    *out = v;
    *n_out = n;
    return 0;
}

static int truth_find(const truth_row *v, int n, const char *file) {
    truth_row key = {(char *)file, 0};
    const truth_row *t = n ? bsearch(&key, v, (size_t)n, sizeof *v, cmp_truth) : NULL;
    return t ? t->label : -1;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int make_dir(const char *d) {
    if (mkdir(d, 0777) && errno != EEXIST) { cli_error("%s: cannot create this folder: %s", d, strerror(errno)); return -1; }
    struct stat st;
    if (stat(d, &st) || !S_ISDIR(st.st_mode)) { cli_error("%s: not a folder", d); return -1; }
    return 0;
}

/* The non-negative (h,w) map of one image's attribution that the metrics measure: a CAM's
 * upsampled map, occlusion's drop (channel 0) and the other methods' channel abs-max. */
static void metric_map(sal_method m, const sal_maps *mp, int j, int h, int w, float *map /* (h,w) */) {
    const size_t hw = (size_t)h * (size_t)w;
    if (sal_method_is_cam(m) && mp->upsampled) {
        memcpy(map, mp->upsampled + j * hw, sizeof(float) * hw);
    } else if (m == SAL_M_OCCLUSION) {
        memcpy(map, mp->attr + (size_t)j * (size_t)sal_maps_per_image(mp), sizeof(float) * hw);
    } else {
        int c = (int)mp->dims[0];
        sal_reduce_channels(mp->attr + (size_t)j * (size_t)sal_maps_per_image(mp), c, h, w, SAL_REDUCE_ABS_MAX, map, NULL);
    }
    for (size_t i = 0; i < hw; i++) map[i] = map[i] > 0 ? map[i] : 0;   /* ReLU (NaN -> 0) */
}

/* Area-average map (h,w) into the mean map's (mh,mw) grid and add it to acc. */
static void accumulate(double *acc, int mh, int mw, const float *map, int h, int w) {
    for (int y = 0; y < h; y++) {
        int Y = (int)((int64_t)y * mh / h);
        for (int x = 0; x < w; x++) {
            int X = (int)((int64_t)x * mw / w);
            int cy = (int)(((int64_t)Y + 1) * h / mh) - (int)((int64_t)Y * h / mh);   /* pixels per cell */
            int cx = (int)(((int64_t)X + 1) * w / mw) - (int)((int64_t)X * w / mw);
            acc[(size_t)Y * mw + X] += (double)map[(size_t)y * w + x] / ((double)cy * cx);
        }
    }
}

int cmd_audit(int argc, char **argv) {
    cli_common c;
    cli_common_init(&c);
    const char *out_dir = NULL, *data = NULL, *methods_arg = "gradcam,saliency", *truth_path = NULL,
               *mask_path = NULL, *layer = NULL;
    double threshold = 3.0, area_ratio = 2.0;
    int shard_k = -1, shard_n = 0, merge = 0, n_pos = 0;
    char **pos = calloc((size_t)argc, sizeof *pos);   /* the positional arguments */
    if (!pos) { cli_error("out of memory"); return EXIT_FAIL; }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(audit_help, stdout);
            fputs("\ncommon options:\n", stdout);
            fputs(cli_common_help, stdout);
            return EXIT_OK;
        }
        int r = cli_common_parse(&c, argc, argv, &i);
        if (r < 0) return EXIT_USAGE;
        if (r > 0) continue;
        const char *with_value[] = {"-o", "--out", "-M", "--methods", "--truth", "--mask", "--threshold", "--area-ratio", "--layer", "--shard"};
        int takes = 0;
        for (size_t k = 0; k < sizeof with_value / sizeof *with_value; k++) takes |= !strcmp(a, with_value[k]);
        if (takes) {
            if (i + 1 >= argc) { cli_error("%s needs a value", a); return EXIT_USAGE; }
            const char *v = argv[++i];
            if (!strcmp(a, "-o") || !strcmp(a, "--out")) out_dir = v;
            else if (!strcmp(a, "-M") || !strcmp(a, "--methods")) methods_arg = v;
            else if (!strcmp(a, "--truth")) truth_path = v;
            else if (!strcmp(a, "--mask")) mask_path = v;
            else if (!strcmp(a, "--layer")) layer = v;
            else if (!strcmp(a, "--shard")) {
                char *end;
                long k = strtol(v, &end, 10), n = -1;
                if (*end == '/') n = strtol(end + 1, &end, 10);
                if (*end || end == v || n < 1 || n > 1 << 20 || k < 0 || k >= n) {
                    cli_error("--shard: expected K/N with 0 <= K < N, got '%s'", v);
                    free(pos);
                    return EXIT_USAGE;
                }
                shard_k = (int)k;
                shard_n = (int)n;
            }
            else {
                char *end;
                double *dst = !strcmp(a, "--threshold") ? &threshold : &area_ratio;
                *dst = strtod(v, &end);
                if (*end || end == v || !(*dst >= 0) || !isfinite(*dst)) {
                    cli_error("%s: expected a non-negative ratio, got '%s'", a, v);
                    free(pos);
                    return EXIT_USAGE;
                }
            }
        } else if (!strcmp(a, "--resume")) {
        } else if (!strcmp(a, "--merge")) {
            merge = 1;
        } else if (a[0] == '-' && a[1]) {
            cli_error("audit: unknown option '%s' (try salient audit --help)", a);
            free(pos);
            return EXIT_USAGE;
        } else {
            pos[n_pos++] = argv[i];
        }
    }
    if (merge) {
        if (!n_pos) { cli_error("--merge: no folder given (salient audit -m MODEL --merge OUT)"); free(pos); return EXIT_USAGE; }
        if (!out_dir && n_pos > 1) { cli_error("--merge of several folders: give the output folder (-o OUT)"); free(pos); return EXIT_USAGE; }
        if (shard_n) { cli_error("--merge and --shard do not go together"); free(pos); return EXIT_USAGE; }
        cli_model mcm;
        if (cli_model_open(&mcm, &c)) { free(pos); return EXIT_FAIL; }
        int r = audit_merge(&mcm, c.model, pos, n_pos, out_dir ? out_dir : pos[0], threshold, area_ratio);
        cli_model_close(&mcm);
        free(pos);
        return r;
    }
    if (n_pos > 1) { cli_error("audit: one DATA folder, got '%s' and '%s'", pos[0], pos[1]); free(pos); return EXIT_USAGE; }
    data = n_pos ? pos[0] : NULL;
    free(pos);
    const char *shard_who = "--shard";
    if (!shard_n) {
        int e = shard_from_env(&shard_k, &shard_n, &shard_who);
        if (e < 0) return EXIT_USAGE;
        if (e == 0) shard_n = 0;
    }
    char shard_dir[4200];
    if (shard_n && out_dir) {
        if (make_dir(out_dir)) return EXIT_FAIL;
        snprintf(shard_dir, sizeof shard_dir, "%s/shard-%d-of-%d", out_dir, shard_k, shard_n);
        fprintf(stderr, "salient: shard %d of %d (%s): writing %s\n", shard_k, shard_n, shard_who, shard_dir);
    }
    if (!data) { cli_error("audit: no DATA folder given (salient audit -m MODEL DATA -o OUT)"); return EXIT_USAGE; }
    if (!out_dir) { cli_error("audit: no output folder given (-o OUT)"); return EXIT_USAGE; }
    if (!c.model) { cli_error("audit: no model given (-m MODEL.onnx)"); return EXIT_USAGE; }
    const char *out_top = out_dir;   /* the folder not to read as input */
    if (shard_n) out_dir = shard_dir;
    struct stat dst;
    if (stat(data, &dst) || !S_ISDIR(dst.st_mode)) {
        cli_error("%s: %s", data, stat(data, &dst) ? strerror(errno) : "not a folder: audit takes a folder of images");
        return EXIT_USAGE;
    }

    /* methods */
    sal_method methods[AUDIT_MAX_METHODS];
    char *method_names[AUDIT_MAX_METHODS];
    int n_methods = 0;
    {
        char list[1024];
        snprintf(list, sizeof list, "%s", methods_arg);
        for (char *save = NULL, *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
            sal_method m;
            if (sal_method_parse(t, &m)) { cli_error("-M: unknown method '%s' (see salient explain --help)", t); return EXIT_USAGE; }
            if (n_methods == AUDIT_MAX_METHODS) { cli_error("-M: at most %d methods", AUDIT_MAX_METHODS); return EXIT_USAGE; }
            for (int k = 0; k < n_methods; k++)
                if (methods[k] == m) { cli_error("-M: %s given twice", t); return EXIT_USAGE; }
            methods[n_methods] = m;
            method_names[n_methods++] = (char *)sal_method_name(m);
        }
        if (!n_methods) { cli_error("-M: no method given"); return EXIT_USAGE; }
    }

    int rc = EXIT_FAIL;
    cli_model cm;
    char **inputs = NULL, **done = NULL;
    int n_inputs = 0, n_done = 0, n_bad = 0;
    truth_row *truth = NULL;
    int n_truth = 0;
    uint8_t *mask = NULL;
    audit_store st = {0};
    audit_sums sums = {0};
    float *x = NULL, *logits = NULL, *map = NULL;
    audit_record *recs = NULL;
    char **err_files = NULL, **err_reasons = NULL;
    int *labels = NULL, *preds = NULL, *batch_idx = NULL;
    if (cli_model_open(&cm, &c)) return EXIT_FAIL;
    if (sal_session_plan(cm.s, 1, cm.h, cm.w)) {
        cli_error("%s", sal_session_error(cm.s));
        cli_model_close(&cm);
        return EXIT_FAIL;
    }
    const int K = sal_session_num_classes(cm.s);
    const int H = cm.h, W = cm.w, C = cm.c;
    const size_t chw = (size_t)C * H * W, hw = (size_t)H * W;

    /* the run's identity: model, methods, and every option that changes a record */
    char sha[65], opts_desc[1024], mask_sha[65] = "", truth_sha[65] = "";
    if (audit_sha256_file(c.model, sha)) { cli_error("%s: cannot read: %s", c.model, strerror(errno)); goto out; }
    if (mask_path && audit_sha256_file(mask_path, mask_sha)) { cli_error("--mask %s: cannot read: %s", mask_path, strerror(errno)); rc = EXIT_USAGE; goto out; }
    if (truth_path && audit_sha256_file(truth_path, truth_sha)) { cli_error("--truth %s: cannot read: %s", truth_path, strerror(errno)); rc = EXIT_USAGE; goto out; }
    snprintf(opts_desc, sizeof opts_desc,
             "size=%dx%d mean=%g,%g,%g std=%g,%g,%g scale=%g resize=%d gray=%d layer=%s mask=%s truth=%s",
             H, W, cm.prep.mean[0], cm.prep.mean[1], cm.prep.mean[2], cm.prep.std[0], cm.prep.std[1], cm.prep.std[2],
             cm.prep.scale, cm.prep.resize_shorter, c.gray, layer ? layer : "", mask_sha, truth_sha);
    char methods_desc[512] = "";
    for (int k = 0; k < n_methods; k++)
        snprintf(methods_desc + strlen(methods_desc), sizeof methods_desc - strlen(methods_desc), "%s%s", k ? "," : "", method_names[k]);
    audit_identity id = {{"format", "model sha256", "methods", "options"}, {"salient-audit-1", sha, methods_desc, opts_desc}, 4};

    if (truth_path && load_truth(truth_path, &cm, &truth, &n_truth)) { rc = EXIT_USAGE; goto out; }
    if (mask_path) {
        sal_image mi = {0};
        sal_error err = {0};
        if (sal_image_load(mask_path, &mi, &err)) { cli_error("--mask: %s", err.msg); rc = EXIT_USAGE; goto out; }
        if (!(mask = malloc(hw))) { sal_image_free(&mi); cli_error("out of memory"); goto out; }
        for (int y = 0; y < H; y++)   /* nearest pixel, any size; inside where any channel is non-zero */
            for (int xx = 0; xx < W; xx++) {
                int sy = (int)((int64_t)y * mi.h / H), sx = (int)((int64_t)xx * mi.w / W);
                const uint8_t *p = mi.pix + ((size_t)sy * mi.w + sx) * (size_t)mi.c;
                int on = 0;
                for (int k = 0; k < mi.c; k++) on |= p[k] != 0;
                mask[(size_t)y * W + xx] = (uint8_t)on;
            }
        sal_image_free(&mi);
    }

    if (make_dir(out_dir)) goto out;
    {
        int r = audit_store_open(&st, out_dir, &id);
        if (r) { cli_error("%s", st.msg); rc = r == -2 ? EXIT_USAGE : EXIT_FAIL; goto out; }
    }
    char *data_arg = (char *)data;
    {
        int r = cli_expand_inputs(&data_arg, 1, out_top, &inputs, &n_inputs, &n_bad);
        if (r) { rc = r == -2 ? EXIT_USAGE : EXIT_FAIL; goto out; }
    }
    if (audit_store_done_list(&st, &done, &n_done)) { cli_error("%s", st.msg); goto out; }
    sums.mh = H < AUDIT_MEAN_MAX ? H : AUDIT_MEAN_MAX;
    sums.mw = W < AUDIT_MEAN_MAX ? W : AUDIT_MEAN_MAX;
    if (audit_store_load_sums(&st, &sums, method_names, n_methods)) { cli_error("%s", st.msg); goto out; }

    /* labels: --truth, else the ImageFolder layout when every first-level folder names a class */
    const size_t data_len = strlen(data);
    labels = malloc(sizeof(int) * (size_t)(n_inputs ? n_inputs : 1));
    if (!labels) { cli_error("out of memory"); goto out; }
    int n_labelled = 0, n_folder = 0;
    for (int i = 0; i < n_inputs; i++) {
        const char *rel = inputs[i] + data_len + (inputs[i][data_len] == '/');
        labels[i] = -1;
        if (truth) {
            labels[i] = truth_find(truth, n_truth, rel);
            if (labels[i] < 0) {
                const char *base = strrchr(rel, '/');
                labels[i] = truth_find(truth, n_truth, base ? base + 1 : rel);
            }
        } else if (strchr(rel, '/')) {
            n_folder++;
            char cls[1024];
            snprintf(cls, sizeof cls, "%.*s", (int)(strchr(rel, '/') - rel), rel);
            labels[i] = sal_labels_find(cm.labels, cm.n_labels, cls);
        }
        n_labelled += labels[i] >= 0;
    }
    const int labelled = n_labelled > 0;
    if (!labelled)
        fprintf(stderr, "salient: note: no true labels (%s): the audit runs unlabelled, classes are the predicted ones\n",
                truth ? "no file of DATA is in --truth" : !cm.labels ? "the model has no class names; give --labels or --truth"
                : "DATA's folders are not named after the model's classes; give --truth");
    else if (n_labelled < n_inputs)
        fprintf(stderr, "salient: note: %d of %d files have no true label (%s)\n", n_inputs - n_labelled, n_inputs,
                truth ? "not in --truth" : "in folders named after no class");

    /* the files still to do */
    batch_idx = malloc(sizeof(int) * (size_t)(n_inputs ? n_inputs : 1));
    if (!batch_idx) { cli_error("out of memory"); goto out; }
    int n_todo = 0;
    for (int i = 0; i < n_inputs; i++) {
        const char *rel = inputs[i] + data_len + (inputs[i][data_len] == '/');
        if (shard_n && audit_shard_of(rel, shard_n) != shard_k) continue;
        if (!(n_done && bsearch(&rel, done, (size_t)n_done, sizeof *done, cmp_cstr))) batch_idx[n_todo++] = i;
    }
    int n_mine = n_inputs;   /* this shard's files */
    if (shard_n) {
        n_mine = 0;
        for (int i = 0; i < n_inputs; i++)
            n_mine += audit_shard_of(inputs[i] + data_len + (inputs[i][data_len] == '/'), shard_n) == shard_k;
    }
    if (n_done) fprintf(stderr, "salient: %s: %d of %d files recorded already; resuming with the other %d\n", st.path,
                        n_mine - n_todo, n_mine, n_todo);

    const int B = c.batch;
    x = malloc(sizeof(float) * chw * (size_t)B);          /* (B,C,H,W) */
    logits = malloc(sizeof(float) * (size_t)K * (size_t)B);   /* (B,K) */
    map = malloc(sizeof(float) * hw);                     /* (H,W) */
    recs = calloc((size_t)B * (size_t)n_methods, sizeof *recs);
    err_files = calloc((size_t)B, sizeof *err_files);
    err_reasons = calloc((size_t)B, sizeof *err_reasons);
    preds = malloc(sizeof(int) * (size_t)B);
    int *slot_input = malloc(sizeof(int) * (size_t)B);
    float *norm = malloc(sizeof(float) * hw);
    if (!x || !logits || !map || !recs || !err_files || !err_reasons || !preds || !slot_input || !norm) {
        free(slot_input);
        free(norm);
        cli_error("out of memory for a batch of %d images", B);
        goto out;
    }
    int failed_now = 0, done_now = 0;
    double t_start = now_s(), last_note = t_start;
    int fatal = 0;
    for (int b0 = 0; b0 < n_todo && !fatal; b0 += B) {
        int nb = n_todo - b0 < B ? n_todo - b0 : B, g = 0, n_errs = 0, n_recs = 0;
        for (int j = 0; j < nb; j++) {
            int i = batch_idx[b0 + j];
            const char *rel = inputs[i] + data_len + (inputs[i][data_len] == '/');
            char msg[4096];
            if (cli_load_input(&cm, inputs[i], x + chw * g, NULL, msg, sizeof msg)) {
                cli_error("%s (recorded in the errors table, skipped)", msg);
                err_files[n_errs] = (char *)rel;
                err_reasons[n_errs] = strdup(msg);
                if (!err_reasons[n_errs]) { cli_error("out of memory"); fatal = 1; break; }
                n_errs++;
                continue;
            }
            slot_input[g++] = i;
        }
        if (fatal) { for (int k = 0; k < n_errs; k++) free(err_reasons[k]); break; }
        if (g && sal_forward(cm.s, x, g, H, W, logits)) {
            cli_error("%s and the other images of its batch: %s", inputs[slot_input[0]], sal_session_error(cm.s));
            fatal = 1;
        }
        for (int j = 0; j < g && !fatal; j++) {
            const float *lg = logits + (size_t)j * K;
            int p = 0;
            for (int k = 1; k < K; k++) if (lg[k] > lg[p]) p = k;
            preds[j] = p;
        }
        for (int mi = 0; mi < n_methods && !fatal && g; mi++) {
            sal_explain_opts o = sal_explain_opts_default(methods[mi]);
            o.layer = layer;
            sal_maps mp = {0};
            double t0 = now_s();
            if (sal_explain(cm.s, &o, x, g, H, W, preds, &mp)) {
                cli_error("%s on %s and the other images of its batch: %s", method_names[mi], inputs[slot_input[0]],
                          sal_session_error(cm.s));
                sal_maps_free(&mp);
                fatal = 1;
                break;
            }
            double secs = (now_s() - t0) / g;
            for (int j = 0; j < g; j++) {
                int i = slot_input[j];
                const float *lg = logits + (size_t)j * K;
                double zsum = 0;
                for (int k = 0; k < K; k++) zsum += exp((double)lg[k] - lg[preds[j]]);
                metric_map(methods[mi], &mp, j, H, W, map);
                sal_region_stats rs;
                sal_error err = {0};
                if (sal_region_metrics(map, H, W, mask, &rs, &err)) { cli_error("%s", err.msg); fatal = 1; break; }
                audit_record *r = &recs[n_recs++];
                r->file = inputs[i] + data_len + (inputs[i][data_len] == '/');
                r->label = labels[i];
                r->predicted = preds[j];
                r->predicted_label = cli_label(&cm, preds[j]);
                r->probability = 1.0 / zsum;
                r->method = method_names[mi];
                r->target = mp.targets[j];
                r->score = mp.scores[j];
                memcpy(r->mass, rs.mass, sizeof r->mass);
                r->concentration = rs.concentration;
                r->entropy = rs.entropy;
                r->completeness_gap = mp.completeness ? mp.completeness[j] : NAN;
                r->seconds = secs;
                /* mean maps: each image's map normalized to [0,1] */
                sal_normalize(map, hw, 0, norm);
                int kinds[AUDIT_KINDS] = {-1, labels[i], preds[j]};
                for (int kd = 0; kd < AUDIT_KINDS; kd++) {
                    if (kd != AUDIT_KIND_ALL && kinds[kd] < 0) continue;
                    audit_sum *a = audit_sums_get(&sums, mi, kd, kinds[kd]);
                    if (!a) { cli_error("out of memory for the mean maps"); fatal = 1; break; }
                    accumulate(a->sum, sums.mh, sums.mw, norm, H, W);
                    a->n++;
                    a->dirty = 1;
                }
            }
            sal_maps_free(&mp);
        }
        if (!fatal && audit_store_commit(&st, recs, n_recs, err_files, err_reasons, n_errs, &sums, method_names)) {
            cli_error("%s", st.msg);
            fatal = 1;
        }
        for (int k = 0; k < n_errs; k++) free(err_reasons[k]);
        failed_now += n_errs;
        done_now += nb;
        double t = now_s();
        if (t - last_note >= 1.0 || b0 + nb >= n_todo) {
            last_note = t;
            fprintf(stderr, "salient: audit [%d/%d] %.1f images/s, %d failed\n", n_mine - n_todo + done_now, n_mine,
                    done_now / (t - t_start > 0 ? t - t_start : 1e-9), failed_now);
        }
    }
    free(slot_input);
    free(norm);
    if (fatal) {
        cli_error("audit stopped: the batches recorded so far are kept in %s; rerun the same command to resume", st.path);
        goto out;
    }

    audit_findings_opts fo = {out_dir, c.model, cm.labels, cm.n_labels, method_names, n_methods, threshold,
                              area_ratio, labelled, H, W, mask != NULL};
    if (audit_write_findings(&st, &fo, &sums)) goto out;
    int n_err_total = 0;
    if (audit_store_count_errors(&st, &n_err_total)) { cli_error("%s", st.msg); goto out; }
    if (n_err_total || n_bad)
        cli_error("%d input%s could not be read (table errors of %s)", n_err_total + n_bad, n_err_total + n_bad == 1 ? "" : "s", st.path);
    rc = n_err_total || n_bad ? EXIT_FAIL : EXIT_OK;
out:
    audit_store_close(&st);
    audit_sums_free(&sums);
    cli_free_inputs(inputs, n_inputs);
    cli_free_inputs(done, n_done);
    for (int i = 0; i < n_truth; i++) free(truth[i].file);
    free(truth);
    free(mask);
    free(x);
    free(logits);
    free(map);
    free(recs);
    free(err_files);
    free(err_reasons);
    free(labels);
    free(preds);
    free(batch_idx);
    cli_model_close(&cm);
    return rc;
}
