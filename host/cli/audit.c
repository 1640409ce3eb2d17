/* audit.c — `salient audit`: explain a whole dataset and say where the model looks. Walks DATA
 * (ImageFolder labels or --truth), explains each batch with every method, measures the region
 * masses of each map (host/post/regions.h), commits the batch's records and mean-map sums to
 * OUT/audit.sqlite in one transaction (audit_store.c: resumable, crash-safe), then writes the
 * findings and exports (audit_findings.c), a thumbnail of every record's overlay and the full-size
 * overlays asked for (audit_overlay.c). Three threads: the next batch is decoded ahead, this one
 * computes, the last one's pictures and commit are written behind. OUT is explain's fault-safe
 * folder (host/cli/outdir.c: locked, cleared of killed runs' temporaries); progress on stderr is
 * explain's (progress.c). */
#define _DEFAULT_SOURCE   /* realpath */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>

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
    "                       findings.json, report.html, mean/<method>.<class>.png and .npy,\n"
    "                       thumbs/ and overlays/<file>.<method>.png\n"
    "  -M, --methods LIST   comma-separated methods (default gradcam,saliency)\n"
    "  --truth FILE.csv     true labels: lines `file,label` (file relative to DATA, or its base\n"
    "                       name; label a class name or index). Default: DATA/<class>/... named\n"
    "                       after the model's classes (case ignored); neither: unlabelled\n"
    "  --mask FILE|DIR      a binary image (non-zero = inside) for every input, or a folder of\n"
    "                       masks matched by the input's path under DATA without extension\n"
    "                       (DIR/<class>/<stem>.png, else DIR/<stem>.png), each the size of its\n"
    "                       image: fills the mass_mask column (empty for an input with no mask)\n"
    "  --overlays WHICH     full-size overlays in OUT/overlays/: all, flagged (default: the images\n"
    "                       behind the findings' flags) or none; a thumbnail of every record's\n"
    "                       overlay is always kept in OUT/thumbs/ for the report\n"
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
    "  OUT/audit.sqlite (default OUT: the one DIR given) and write the findings; with the shards'\n"
    "  --overlays flagged, give the shards' preprocessing options to make the flags' overlays\n";

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

void audit_prep_desc(const cli_model *cm, char *buf, size_t len) {
    snprintf(buf, len, "size=%dx%d mean=%g,%g,%g std=%g,%g,%g scale=%g resize=%d gray=%d", cm->h, cm->w, cm->prep.mean[0],
             cm->prep.mean[1], cm->prep.mean[2], cm->prep.std[0], cm->prep.std[1], cm->prep.std[2], cm->prep.scale,
             cm->prep.resize_shorter, cm->gray_flag);
}

static int make_dir(const char *d) {
    if (mkdir(d, 0777) && errno != EEXIST) { cli_error("%s: cannot create this folder: %s", d, strerror(errno)); return -1; }
    struct stat st;
    if (stat(d, &st) || !S_ISDIR(st.st_mode)) { cli_error("%s: not a folder", d); return -1; }
    return 0;
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

/* --mask DIR: the mask of the input rel (its path under DATA), DIR/<rel less its extension>.<ext>,
 * else DIR/<base name less its extension>.<ext>, for an image extension ext; read into out (H,W)
 * through the preprocessing's geometry (a pixel is inside when the mask pixel under its centre is
 * non-zero in any channel). The mask must have its image's size (a .npy input's: the model's
 * input). 1 when found, 0 when there is none, -1 (reported) when it cannot be read or its size is
 * wrong. */
static int mask_for(const char *dir, const char *rel, const sal_image *orig, const cli_model *cm, uint8_t *out) {
    static const char *const exts[] = {"png", "bmp", "pgm", "ppm", "pbm", "jpg", "jpeg", "PNG", "BMP", "JPG"};
    char stem[4200], path[4400];
    snprintf(stem, sizeof stem, "%s", rel);
    char *dot = strrchr(stem, '.'), *slash = strrchr(stem, '/');
    if (dot && (!slash || dot > slash)) *dot = 0;
    const char *base = strrchr(stem, '/') ? strrchr(stem, '/') + 1 : NULL;
    int found = 0;
    for (int pass = 0; pass < (base ? 2 : 1) && !found; pass++)
        for (size_t k = 0; k < sizeof exts / sizeof *exts && !found; k++) {
            snprintf(path, sizeof path, "%s/%s.%s", dir, pass ? base : stem, exts[k]);
            found = access(path, F_OK) == 0;
        }
    if (!found) return 0;
    sal_image mi = {0};
    sal_error err = {0};
    if (sal_image_load(path, &mi, &err)) { cli_error("--mask: %s (the mask of %s)", err.msg, rel); return -1; }
    const int H = cm->h, W = cm->w;
    const int want_w = orig->pix ? orig->w : W, want_h = orig->pix ? orig->h : H;
    if (mi.w != want_w || mi.h != want_h) {
        cli_error("--mask: %s is %dx%d pixels but its input %s is %dx%d: a mask must have the size of its image; "
                  "fix the mask and rerun to resume", path, mi.w, mi.h, rel, want_w, want_h);
        sal_image_free(&mi);
        return -1;
    }
    float rect[4] = {0, 0, (float)W, (float)H};
    if (orig->pix) sal_prep_rect(orig->w, orig->h, &cm->prep, rect);
    for (int y = 0; y < H; y++) {
        int sy = (int)floor(rect[1] + (y + 0.5) * (rect[3] - rect[1]) / H);
        sy = sy < 0 ? 0 : sy >= mi.h ? mi.h - 1 : sy;
        for (int xx = 0; xx < W; xx++) {
            int sx = (int)floor(rect[0] + (xx + 0.5) * (rect[2] - rect[0]) / W);
            sx = sx < 0 ? 0 : sx >= mi.w ? mi.w - 1 : sx;
            const uint8_t *p = mi.pix + ((size_t)sy * mi.w + sx) * (size_t)mi.c;
            int on = 0;
            for (int k = 0; k < mi.c; k++) on |= p[k] != 0;
            out[(size_t)y * W + xx] = (uint8_t)on;
        }
    }
    sal_image_free(&mi);
    return 1;
}

/* ------------------------------------------------------------------------------------------------ */
/* Reading ahead: the next batch is decoded on a thread of its own while this one computes          */

/* One batch's inputs, decoded. */
typedef struct audit_batch {
    float *x;                 /* (B,C,H,W) the images that loaded, packed to the front */
    sal_image *origs;         /* (B) their decoded pixels, for the pictures (NULL pix: .npy) */
    uint8_t *masks;           /* (B,H,W) --mask DIR's masks, or NULL */
    char *has_mask;           /* (B) */
    int *slot_input;          /* (B) index into inputs of each packed image */
    char **err_files, **err_reasons;   /* (B) the files that did not load, and why (malloc'ed) */
    int g, n_errs;            /* images loaded; files that did not */
    int fatal, usage;         /* reading cannot go on (usage: a mask of the wrong size, exit 2) */
    double secs;              /* time spent reading */
} audit_batch;

typedef struct audit_reader {
    const cli_model *cm;
    char **inputs;
    const int *batch_idx;
    size_t data_len, chw, hw;
    const char *mask_dir;     /* --mask DIR, or NULL */
    int b0, nb;               /* the batch: batch_idx[b0 .. b0+nb) */
    audit_batch *b;
} audit_reader;

static void read_batch(audit_reader *r) {
    audit_batch *b = r->b;
    const double t0 = now_s();
    b->g = b->n_errs = b->fatal = b->usage = 0;
    for (int j = 0; j < r->nb; j++) {
        int i = r->batch_idx[r->b0 + j];
        const char *rel = r->inputs[i] + r->data_len + (r->inputs[i][r->data_len] == '/');
        char msg[4096];
        sal_image_free(&b->origs[b->g]);
        if (cli_load_input(r->cm, r->inputs[i], b->x + r->chw * b->g, &b->origs[b->g], msg, sizeof msg)) {
            cli_error("%s (recorded in the errors table, skipped)", msg);
            b->err_files[b->n_errs] = (char *)rel;
            b->err_reasons[b->n_errs] = strdup(msg);
            if (!b->err_reasons[b->n_errs]) { cli_error("out of memory"); b->fatal = 1; break; }
            b->n_errs++;
            continue;
        }
        if (r->mask_dir) {
            int m = mask_for(r->mask_dir, rel, &b->origs[b->g], r->cm, b->masks + r->hw * b->g);
            if (m < 0) { b->fatal = b->usage = 1; break; }
            b->has_mask[b->g] = (char)m;
        }
        b->slot_input[b->g++] = i;
    }
    b->secs = now_s() - t0;
}

static void *read_batch_thread(void *arg) {
    read_batch(arg);
    return NULL;
}

static int batch_alloc(audit_batch *b, int B, size_t chw, size_t hw, int with_masks) {
    memset(b, 0, sizeof *b);
    b->x = malloc(sizeof(float) * chw * (size_t)B);
    b->origs = calloc((size_t)B, sizeof *b->origs);
    b->masks = with_masks ? malloc(hw * (size_t)B) : NULL;
    b->has_mask = calloc((size_t)B, 1);
    b->slot_input = malloc(sizeof(int) * (size_t)B);
    b->err_files = calloc((size_t)B, sizeof *b->err_files);
    b->err_reasons = calloc((size_t)B, sizeof *b->err_reasons);
    return b->x && b->origs && (!with_masks || b->masks) && b->has_mask && b->slot_input && b->err_files && b->err_reasons
               ? 0 : -1;
}

static void batch_free(audit_batch *b, int B) {
    if (b->origs)
        for (int j = 0; j < B; j++) sal_image_free(&b->origs[j]);
    for (int k = 0; b->err_reasons && k < b->n_errs; k++) free(b->err_reasons[k]);
    free(b->x);
    free(b->origs);
    free(b->masks);
    free(b->has_mask);
    free(b->slot_input);
    free(b->err_files);
    free(b->err_reasons);
    memset(b, 0, sizeof *b);
}

/* ------------------------------------------------------------------------------------------------ */
/* Writing behind: a finished batch's pictures, then its commit, on a thread of their own while the */
/* next batch computes (one batch at a time: the compute thread waits for it before handing on the  */
/* next, so batches commit in order and at most two are in flight when the process dies)            */

/* What every batch's writing shares. The writer has a session of its own for sal_render (a
 * session's scratch buffers serve one thread), and the store is used by one thread at a time: the
 * writer while a job runs, the compute thread before the loop and after the last job. */
typedef struct audit_writer {
    sal_session *s;
    const sal_method *methods;
    char *const *method_names;
    const sal_prep_opts *prep;
    const char *out_dir;
    int H, W, full;           /* full: --overlays all */
    audit_store *st;
} audit_writer;

/* One finished batch, handed to the writer. */
typedef struct audit_job {
    const audit_writer *w;
    audit_batch *bt;          /* the batch's inputs: originals for the pictures, unreadable files */
    audit_record *recs;       /* (B*M) */
    int *rec_slot;            /* (B*M) each record's image in bt (packed index) */
    int *rec_method;          /* (B*M) each record's method index */
    float *maps;              /* (B*M,H,W) each record's metric map */
    int n_recs, nb, n_errs;   /* records; files of the batch; unreadable ones */
    audit_sums sums;          /* copies of the accumulators after this batch, those it changed */
    int failed;
    char msg[16384];          /* the failure, "file: why" */
    double t_pictures, t_commit;
} audit_job;

static int job_alloc(audit_job *jb, int n, size_t hw) {
    memset(jb, 0, sizeof *jb);
    jb->recs = calloc((size_t)n, sizeof *jb->recs);
    jb->rec_slot = malloc(sizeof(int) * (size_t)n);
    jb->rec_method = malloc(sizeof(int) * (size_t)n);
    jb->maps = malloc(sizeof(float) * hw * (size_t)n);
    return jb->recs && jb->rec_slot && jb->rec_method && jb->maps ? 0 : -1;
}

static void job_free(audit_job *jb) {
    free(jb->recs);
    free(jb->rec_slot);
    free(jb->rec_method);
    free(jb->maps);
    audit_sums_free(&jb->sums);
    memset(jb, 0, sizeof *jb);
}

/* Copy the accumulators changed since the last copy (dirty in live) into jb->sums, and mark them
 * clean in live: the job commits the sums as they stood after its batch. -1 when out of memory. */
static int job_take_sums(audit_job *jb, audit_sums *live) {
    audit_sums_free(&jb->sums);
    memset(&jb->sums, 0, sizeof jb->sums);
    jb->sums.mh = live->mh;
    jb->sums.mw = live->mw;
    const size_t cells = (size_t)live->mh * (size_t)live->mw;
    for (int i = 0; i < live->n; i++) {
        audit_sum *a = &live->v[i];
        if (!a->dirty) continue;
        audit_sum *c = audit_sums_get(&jb->sums, a->method, a->kind, a->cls);
        if (!c) return -1;
        c->n = a->n;
        memcpy(c->sum, a->sum, sizeof(double) * cells);
        c->dirty = 1;
        a->dirty = 0;
    }
    return 0;
}

/* The batch's pictures, each in place before the commit of the rows naming it; then the commit.
 * The unreadable files' reasons are freed either way. */
static void job_run(audit_job *jb) {
    const audit_writer *w = jb->w;
    audit_batch *bt = jb->bt;
    const size_t hw = (size_t)w->H * (size_t)w->W;
    double t0 = now_s();
    jb->failed = 0;
    for (int r = 0; r < jb->n_recs && !jb->failed; r++) {
        const int j = jb->rec_slot[r], mi = jb->rec_method[r];
        const sal_image *og = bt->origs[j].pix ? &bt->origs[j] : NULL;
        float rect[4] = {0, 0, (float)w->W, (float)w->H};
        if (og) sal_prep_rect(og->w, og->h, w->prep, rect);
        if (audit_write_pictures(w->s, w->methods[mi], jb->maps + hw * (size_t)r, w->H, w->W, og, rect, w->out_dir,
                                 jb->recs[r].file, w->method_names[mi], 1, w->full, jb->msg, sizeof jb->msg))
            jb->failed = 1;
    }
    double t1 = now_s();
    jb->t_pictures = t1 - t0;
    if (!jb->failed && audit_store_commit(w->st, jb->recs, jb->n_recs, bt->err_files, bt->err_reasons, jb->n_errs,
                                          &jb->sums, w->method_names)) {
        snprintf(jb->msg, sizeof jb->msg, "%s", w->st->msg);
        jb->failed = 1;
    }
    jb->t_commit = now_s() - t1;
    for (int k = 0; k < bt->n_errs; k++) free(bt->err_reasons[k]);
    bt->n_errs = 0;
}

/* A written batch into the run's totals: its times, and its rows and errors as done, or its
 * message as the run's fatal error. */
static void job_collect(const audit_job *jb, double *t_pictures, double *t_commit, int *fatal, int *done,
                        int *failed) {
    *t_pictures += jb->t_pictures;
    *t_commit += jb->t_commit;
    if (jb->failed) { cli_error("%s", jb->msg); *fatal = 1; }
    else { *done += jb->nb; *failed += jb->n_errs; }
}

static void *job_thread(void *arg) {
    job_run(arg);
    return NULL;
}

/* Wait for the writer thread th (writing jb) and collect jb; *t_wait: the time waited. */
static void writer_join(pthread_t th, audit_job *jb, double *t_wait, double *t_pictures, double *t_commit,
                        int *fatal, int *done, int *failed) {
    double tw = now_s();
    pthread_join(th, NULL);
    *t_wait += now_s() - tw;
    job_collect(jb, t_pictures, t_commit, fatal, done, failed);
}

int cmd_audit(int argc, char **argv) {
    cli_common c;
    cli_common_init(&c);
    const char *out_dir = NULL, *data = NULL, *methods_arg = "gradcam,saliency", *truth_path = NULL,
               *mask_path = NULL, *layer = NULL;
    double threshold = 3.0, area_ratio = 2.0;
    int shard_k = -1, shard_n = 0, merge = 0, n_pos = 0;
    audit_overlays overlays = AUDIT_OVERLAYS_FLAGGED;
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
        const char *with_value[] = {"-o", "--out", "-M", "--methods", "--truth", "--mask", "--threshold", "--area-ratio", "--layer", "--shard", "--overlays"};
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
            else if (!strcmp(a, "--overlays")) {
                if (!strcmp(v, "all")) overlays = AUDIT_OVERLAYS_ALL;
                else if (!strcmp(v, "flagged")) overlays = AUDIT_OVERLAYS_FLAGGED;
                else if (!strcmp(v, "none")) overlays = AUDIT_OVERLAYS_NONE;
                else {
                    cli_error("--overlays: expected all, flagged or none, got '%s'", v);
                    free(pos);
                    return EXIT_USAGE;
                }
            }
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
        if (!c.quiet) fprintf(stderr, "salient: shard %d of %d (%s): writing %s\n", shard_k, shard_n, shard_who, shard_dir);
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
    cli_outdir od;
    int od_open = 0;
    char thumbs_dir[4300], overlays_dir[4300];
    snprintf(thumbs_dir, sizeof thumbs_dir, "%s/thumbs", out_dir);
    snprintf(overlays_dir, sizeof overlays_dir, "%s/overlays", out_dir);
    float *logits = NULL;
    sal_session *writer_s = NULL;   /* the writer thread's, for its pictures */
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
    struct stat mst;
    const int mask_dir = mask_path && !stat(mask_path, &mst) && S_ISDIR(mst.st_mode);
    if (mask_dir) {   /* a folder of masks: its path stands for it (the masks are read as the run goes) */
        char *real = realpath(mask_path, NULL);
        snprintf(mask_sha, sizeof mask_sha, "dir:%.60s", real ? real : mask_path);
        if (real && strlen(real) > 60) {   /* a long path: its sha256 */
            uint64_t h = 1469598103934665603ull;
            for (const unsigned char *q = (const unsigned char *)real; *q; q++) h = (h ^ *q) * 1099511628211ull;
            snprintf(mask_sha, sizeof mask_sha, "dir-fnv:%016llx", (unsigned long long)h);
        }
        free(real);
    } else if (mask_path && audit_sha256_file(mask_path, mask_sha)) {
        cli_error("--mask %s: cannot read: %s", mask_path, strerror(errno));
        rc = EXIT_USAGE;
        goto out;
    }
    if (truth_path && audit_sha256_file(truth_path, truth_sha)) { cli_error("--truth %s: cannot read: %s", truth_path, strerror(errno)); rc = EXIT_USAGE; goto out; }
    {
        char prep[512];
        audit_prep_desc(&cm, prep, sizeof prep);
        snprintf(opts_desc, sizeof opts_desc, "%s layer=%s mask=%s truth=%s", prep, layer ? layer : "", mask_sha, truth_sha);
    }
    char methods_desc[512] = "";
    for (int k = 0; k < n_methods; k++)
        snprintf(methods_desc + strlen(methods_desc), sizeof methods_desc - strlen(methods_desc), "%s%s", k ? "," : "", method_names[k]);
    audit_identity id = {{"format", "model sha256", "methods", "options"}, {"salient-audit-1", sha, methods_desc, opts_desc}, 4};

    if (truth_path && load_truth(truth_path, &cm, &truth, &n_truth)) { rc = EXIT_USAGE; goto out; }
    if (mask_path && !mask_dir) {
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

    if (cli_outdir_open(&od, out_dir, c.quiet)) goto out;
    od_open = 1;
    audit_clean_tree(thumbs_dir);
    audit_clean_tree(overlays_dir);
    {
        int r = audit_store_open(&st, out_dir, &id);
        if (r) { cli_error("%s", st.msg); rc = r == -2 ? EXIT_USAGE : EXIT_FAIL; goto out; }
    }
    {   /* where DATA is and which overlays were asked for: a merge makes the flags' overlays from them */
        char *real = realpath(data, NULL);
        static const char *const mode_names[] = {"none", "flagged", "all"};
        if (audit_store_set_note(&st, "data", real ? real : data) || audit_store_set_note(&st, "overlays", mode_names[overlays])) {
            free(real);
            cli_error("%s", st.msg);
            goto out;
        }
        free(real);
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
    if (!labelled && !c.quiet)
        fprintf(stderr, "salient: note: no true labels (%s): the audit runs unlabelled, classes are the predicted ones\n",
                truth ? "no file of DATA is in --truth" : !cm.labels ? "the model has no class names; give --labels or --truth"
                : "DATA's folders are not named after the model's classes; give --truth");
    else if (n_labelled < n_inputs && !c.quiet)
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
    if (n_done && !c.quiet) fprintf(stderr, "salient: %s: %d of %d files recorded already; resuming with the other %d\n", st.path,
                        n_mine - n_todo, n_mine, n_todo);

    const int B = c.batch;
    logits = malloc(sizeof(float) * (size_t)K * (size_t)B);   /* (B,K) */
    preds = malloc(sizeof(int) * (size_t)B);
    float *norm = malloc(sizeof(float) * hw);
    /* three batches of inputs: the one computing, the next one read ahead, and the last one while
     * the writer draws its pictures; two jobs: the one computing and the one being written */
    audit_batch bufs[3];
    audit_job jobs[2];
    int bufs_ok = 1;
    for (int k = 0; k < 3; k++) bufs_ok &= !batch_alloc(&bufs[k], B, chw, hw, mask_dir);
    for (int k = 0; k < 2; k++) bufs_ok &= !job_alloc(&jobs[k], B * n_methods, hw);
    /* SALIENT_AUDIT_READ_AHEAD=0: read each batch in turn; SALIENT_AUDIT_WRITE_BEHIND=0: write each
     * batch's pictures and commit it before the next computes (to measure what each gains) */
    const char *ra_env = getenv("SALIENT_AUDIT_READ_AHEAD"), *wb_env = getenv("SALIENT_AUDIT_WRITE_BEHIND");
    const int read_ahead = !(ra_env && !strcmp(ra_env, "0"));
    const int write_behind = !(wb_env && !strcmp(wb_env, "0"));
    audit_writer writer = {cm.s, methods, method_names, &cm.prep, out_dir, H, W, overlays == AUDIT_OVERLAYS_ALL, &st};
    if (!logits || !preds || !norm || !bufs_ok) {
        free(norm);
        for (int k = 0; k < 3; k++) batch_free(&bufs[k], B);
        for (int k = 0; k < 2; k++) job_free(&jobs[k]);
        cli_error("out of memory for a batch of %d images", B);
        goto out;
    }
    if (write_behind && n_todo > B) {   /* the writer's own session for its pictures */
        sal_session_opts so = sal_session_opts_default();
        so.device = c.device;
        so.threads = 1;
        so.mem_limit = (size_t)c.mem_limit_mib << 20;
        sal_error serr = {0};
        if (sal_session_create(cm.m, &so, &writer_s, &serr)) {
            cli_error("%s (the session that draws the pictures)", serr.msg);
            free(norm);
            for (int k = 0; k < 3; k++) batch_free(&bufs[k], B);
            for (int k = 0; k < 2; k++) job_free(&jobs[k]);
            goto out;
        }
        writer.s = writer_s;
    }
    for (int k = 0; k < 2; k++) jobs[k].w = &writer;
    audit_reader reader = {&cm, inputs, batch_idx, data_len, chw, hw, mask_dir ? mask_path : NULL, 0,
                           n_todo < B ? n_todo : B, &bufs[0]};
    if (n_todo) read_batch(&reader);
    int failed_now = 0, done_now = 0;
    double t_start = now_s();
    int fatal = 0, stopped = 0;
    /* where the time goes: decoding, the model (forward and methods, with the metrics and mean
     * maps), the pictures, the database's commits (the findings are timed below) */
    double t_read = 0, t_compute = 0, t_metrics = 0, t_pictures = 0, t_commit = 0, t_write_wait = 0;
    pthread_t writing;
    audit_job *in_write = NULL;   /* the job on the writer thread */
    cli_device_note(&cm);
    cli_progress pg;
    cli_progress_start(&pg, "audit", "images", n_todo, c.quiet);
    cli_interrupt_catch();   /* Ctrl-C: stop at the next pass; the batches recorded so far stay */
    for (int b0 = 0, bi = 0; b0 < n_todo && !fatal && !stopped; b0 += B, bi++) {
        audit_batch *bt = &bufs[bi % 3];
        audit_job *jb = &jobs[bi % 2];   /* batch bi-2's job, written and joined already */
        int nb = n_todo - b0 < B ? n_todo - b0 : B, n_recs = 0;
        const int g = bt->g, n_errs = bt->n_errs;
        float *x = bt->x;
        uint8_t *masks = bt->masks;
        const char *has_mask = bt->has_mask;
        const int *slot_input = bt->slot_input;
        t_read += bt->secs;
        if (bt->fatal) {
            if (bt->usage) rc = EXIT_USAGE;
            fatal = 1;
            break;
        }
        /* the next batch, read while this one computes, into the buffer of batch bi-2 (its job
         * was joined before batch bi-1 was handed to the writer) */
        audit_reader next = reader;
        next.b0 = b0 + B;
        next.nb = n_todo - next.b0 < B ? n_todo - next.b0 : B;
        next.b = &bufs[(bi + 1) % 3];
        pthread_t reading;
        int ahead = 0, has_next = next.b0 < n_todo;
        if (has_next && read_ahead) ahead = pthread_create(&reading, NULL, read_batch_thread, &next) == 0;
        double tp = now_s();
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
        for (int mi = 0; mi < n_methods && !fatal && !stopped && g; mi++) {
            sal_explain_opts o = sal_explain_opts_default(methods[mi]);
            o.layer = layer;
            o.progress = cli_progress_sal;   /* the bar moves inside the call */
            o.progress_user = &pg;
            cli_progress_stage(&pg, "%s", method_names[mi]);
            cli_progress_span(&pg, (double)nb * mi / n_methods, (double)nb / n_methods);
            sal_maps mp = {0};
            double t0 = now_s();
            sal_status est = sal_explain(cm.s, &o, x, g, H, W, preds, &mp);
            if (est == SAL_ERR_CANCELLED && cli_interrupted()) {   /* the batch is not recorded */
                sal_maps_free(&mp);
                stopped = 1;
                break;
            }
            if (est) {
                cli_error("%s on %s and the other images of its batch: %s", method_names[mi], inputs[slot_input[0]],
                          sal_session_error(cm.s));
                sal_maps_free(&mp);
                fatal = 1;
                break;
            }
            double secs = (now_s() - t0) / g;
            t_compute += now_s() - tp;
            const double tl = now_s();
            for (int j = 0; j < g; j++) {
                int i = slot_input[j];
                const char *rel = inputs[i] + data_len + (inputs[i][data_len] == '/');
                const float *lg = logits + (size_t)j * K;
                double zsum = 0;
                for (int k = 0; k < K; k++) zsum += exp((double)lg[k] - lg[preds[j]]);
                float *map = jb->maps + hw * (size_t)n_recs;   /* (H,W) kept for the record's pictures */
                audit_metric_map(methods[mi], &mp, j, H, W, map);
                sal_region_stats rs;
                sal_error err = {0};
                const uint8_t *mk = mask_dir ? (has_mask[j] ? masks + hw * j : NULL) : mask;
                if (sal_region_metrics(map, H, W, mk, &rs, &err)) { cli_error("%s", err.msg); fatal = 1; break; }
                jb->rec_slot[n_recs] = j;
                jb->rec_method[n_recs] = mi;
                audit_record *r = &jb->recs[n_recs++];
                r->file = rel;
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
                if (fatal) break;
            }
            t_metrics += now_s() - tl;
            sal_maps_free(&mp);
            tp = now_s();   /* the next method's time */
        }
        /* the last batch's writing must be over (committed) before this one is handed on */
        if (in_write) {
            writer_join(writing, in_write, &t_write_wait, &t_pictures, &t_commit, &fatal, &done_now, &failed_now);
            in_write = NULL;
        }
        if (!fatal && !stopped) {
            jb->bt = bt;
            jb->n_recs = n_recs;
            jb->nb = nb;
            jb->n_errs = n_errs;
            if (job_take_sums(jb, &sums)) { cli_error("out of memory for the mean maps"); fatal = 1; }
        }
        if (!fatal && !stopped) {
            if (writer_s && pthread_create(&writing, NULL, job_thread, jb) == 0) {
                in_write = jb;
            } else {   /* in turn, on this thread */
                job_run(jb);
                job_collect(jb, &t_pictures, &t_commit, &fatal, &done_now, &failed_now);
            }
        }
        if (ahead) pthread_join(reading, NULL);
        else if (has_next && !fatal && !stopped) {
            cli_progress_stage(&pg, "reading");
            read_batch(&next);
        }
        if (fatal || stopped) break;
        cli_progress_add(&pg, nb, n_errs);
    }
    if (in_write) {   /* the last batch's writing */
        writer_join(writing, in_write, &t_write_wait, &t_pictures, &t_commit, &fatal, &done_now, &failed_now);
        in_write = NULL;
    }
    cli_progress_end(&pg);
    free(norm);
    for (int k = 0; k < 3; k++) batch_free(&bufs[k], B);
    for (int k = 0; k < 2; k++) job_free(&jobs[k]);
    if (stopped || cli_interrupted()) {
        cli_error("audit: interrupted (signal %d): %d of %d files recorded in %s; rerun the same command to resume",
                  cli_interrupted(), n_mine - n_todo + done_now, n_mine, st.path);
        rc = 128 + cli_interrupted();
        goto out;
    }
    if (fatal) {
        cli_error("audit stopped: the batches recorded so far are kept in %s; rerun the same command to resume", st.path);
        goto out;
    }
    if (!c.quiet && done_now) {
        double secs = now_s() - t_start;
        char behind[128] = "";
        if (writer_s)
            snprintf(behind, sizeof behind, " (both on a writer thread, behind the model; the model waited %.1f s for it)",
                     t_write_wait);
        fprintf(stderr, "salient: audited %d files with %d method%s in %.1f s (%.2f images/s), %d unreadable; time: reading "
                "%.1f s%s, model %.1f s, metrics and mean maps %.1f s, thumbnails%s %.1f s, records %.1f s%s\n", done_now,
                n_methods, n_methods == 1 ? "" : "s", secs, secs > 0 ? done_now / secs : 0.0, failed_now, t_read,
                read_ahead ? " (a batch ahead, beside the model)" : "",
                t_compute, t_metrics, overlays == AUDIT_OVERLAYS_ALL ? " and overlays" : "", t_pictures, t_commit,
                behind);
    }
    double t_find = now_s();

    audit_overlay_ctx octx = {&cm, data, out_dir, layer};
    audit_findings_opts fo = {out_dir, c.model, cm.labels, cm.n_labels, method_names, n_methods, threshold,
                              area_ratio, labelled, H, W, mask != NULL || mask_dir,
                              overlays == AUDIT_OVERLAYS_FLAGGED ? audit_overlay_flagged : NULL, &octx, c.quiet};
    if (audit_write_findings(&st, &fo, &sums)) goto out;
    if (!c.quiet)
        fprintf(stderr, "salient: findings, exports, report%s: %.1f s\n",
                overlays == AUDIT_OVERLAYS_FLAGGED ? " and the flags' overlays" : "", now_s() - t_find);
    int n_err_total = 0;
    if (audit_store_count_errors(&st, &n_err_total)) { cli_error("%s", st.msg); goto out; }
    if (n_err_total || n_bad)
        cli_error("%d input%s could not be read (table errors of %s)", n_err_total + n_bad, n_err_total + n_bad == 1 ? "" : "s", st.path);
    rc = n_err_total || n_bad ? EXIT_FAIL : EXIT_OK;
out:
    audit_store_close(&st);
    if (od_open) cli_outdir_close(&od, 0);
    audit_sums_free(&sums);
    cli_free_inputs(inputs, n_inputs);
    cli_free_inputs(done, n_done);
    for (int i = 0; i < n_truth; i++) free(truth[i].file);
    free(truth);
    free(mask);
    free(logits);
    sal_session_free(writer_s);
    free(labels);
    free(preds);
    free(batch_idx);
    cli_model_close(&cm);
    return rc;
}
