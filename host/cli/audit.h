/* audit.h — the pieces of `salient audit` shared by its files: the record store (audit_store.c,
 * OUT/audit.sqlite), the findings and exports (audit_findings.c) and the command (audit.c). */
#ifndef SAL_CLI_AUDIT_H
#define SAL_CLI_AUDIT_H

#include <stddef.h>
#include <stdint.h>

#include "salient.h"
#include "io/io.h"
#include "post/regions.h"

typedef struct sqlite3 sqlite3;

/* One row of the records table (and of records.csv / records.jsonl): one image, method and
 * target. Absent values: label -1 (unlabelled), NaN for numbers. */
typedef struct audit_record {
    const char *file;        /* relative to DATA */
    int label;               /* true class, -1 when unknown */
    int predicted;
    const char *predicted_label;
    double probability;
    const char *method;
    int target;
    double score;
    double mass[SAL_RM_COUNT];
    double concentration, entropy, completeness_gap, seconds;
} audit_record;

/* The mean-map accumulators: per method, kind (all, true class, predicted class) and class, the
 * sum of normalized maps at (mh,mw) and their count. Kept in the store with the records, in the
 * same transaction, so a resumed run's means equal an uninterrupted one's. */
enum { AUDIT_KIND_ALL = 0, AUDIT_KIND_TRUE, AUDIT_KIND_PRED, AUDIT_KINDS };
typedef struct audit_sum {
    int method, kind, cls;   /* cls -1 for AUDIT_KIND_ALL */
    int64_t n;
    double *sum;             /* (mh,mw) */
    int dirty;               /* changed since the last commit */
} audit_sum;

typedef struct audit_sums {
    int mh, mw;
    audit_sum *v;
    int n, cap;
} audit_sums;

/* audit_sums_get: the accumulator for (method, kind, cls), created (zero) when absent; NULL when
 * out of memory. */
audit_sum *audit_sums_get(audit_sums *s, int method, int kind, int cls);
void audit_sums_free(audit_sums *s);

/* ------------------------------------------------------------------------------------------------ */
/* The store: OUT/audit.sqlite                                                                      */

typedef struct audit_store {
    sqlite3 *db;
    char path[4096];
    char msg[12288];         /* the last failure, "path: why" */
} audit_store;

/* The run's identity: a rerun into the same OUT must match every key. */
typedef struct audit_identity {
    const char *keys[8];
    const char *values[8];
    int n;
} audit_identity;

/* Open (creating) OUT/audit.sqlite in WAL mode and check the identity: a new store records it;
 * an existing one must hold the same values, or -2 with msg naming the key that changed and both
 * values. -1 on other failures (msg). */
int audit_store_open(audit_store *st, const char *out_dir, const audit_identity *id);
void audit_store_close(audit_store *st);
/* 1 when file (relative) has records or an error already, 0 when not, -1 on failure. The whole
 * set is read once into a sorted list by audit_store_done_list. */
int audit_store_done_list(audit_store *st, char ***files, int *n);
/* One batch: its records, errors and the dirty accumulators, in one transaction. -1 (msg) on
 * failure, nothing of the batch kept. */
int audit_store_commit(audit_store *st, const audit_record *recs, int n_recs, char *const *err_files,
                       char *const *err_reasons, int n_errs, audit_sums *sums, char *const *method_names);
/* Add the accumulators stored so far (after open) into sums, for methods named
 * method_names[0..n_methods); a row of another method or size is an error. */
int audit_store_load_sums(audit_store *st, audit_sums *sums, char *const *method_names, int n_methods);
int audit_store_count_errors(audit_store *st, int *n);
/* A note in table run that is not part of the identity (rewritten by every run; a merge does not
 * compare it): "data" (DATA's real path) and "overlays" (the --overlays mode). -1 (msg) on failure. */
int audit_store_set_note(audit_store *st, const char *key, const char *value);
/* The preprocessing part of the identity's options: "size=HxW mean=... gray=G". */
struct cli_model;
void audit_prep_desc(const struct cli_model *cm, char *buf, size_t len);

/* The shard of a relative path: FNV-1a 64 of its bytes, modulo n (adding files does not move
 * the others). */
int audit_shard_of(const char *rel, int n);

/* `salient audit --merge`: combine the stores of sources[0..n) (folders holding audit.sqlite, or
 * holding shard-K-of-N/ folders that do) into out_dir/audit.sqlite and write the findings.
 * model: the opened model (its sha256 must match the stores'). Returns an exit status. */
struct cli_model;
int audit_merge(struct cli_model *cm, const char *model_path, char *const *sources, int n, const char *out_dir,
                double threshold, double area_ratio);

/* ------------------------------------------------------------------------------------------------ */
/* Pictures (audit_overlay.c)                                                                        */

/* --overlays: full-size overlays for no record, the records behind the findings' flags, or all. */
typedef enum audit_overlays { AUDIT_OVERLAYS_NONE = 0, AUDIT_OVERLAYS_FLAGGED, AUDIT_OVERLAYS_ALL } audit_overlays;
#define AUDIT_THUMB_MAX 96   /* a thumbnail's longer side at most, in pixels (never enlarged) */

/* The non-negative (h,w) map of image j's attribution that the metrics measure: a CAM's upsampled
 * map, occlusion's drop (channel 0), the other methods' channel abs-max; ReLU. */
void audit_metric_map(sal_method m, const sal_maps *mp, int j, int h, int w, float *map /* (h,w) */);
/* OUT/<sub>/<rel>.<method>.png (sub: "thumbs" or "overlays"). */
void audit_picture_path(char *buf, size_t len, const char *out_dir, const char *sub, const char *rel, const char *method);
/* The pictures of one record from its map (h,w): with thumb, OUT/thumbs/<rel>.<method>.png (the
 * overlay at most AUDIT_THUMB_MAX a side); with full, OUT/overlays/<rel>.<method>.png (the overlay
 * on the original, at its size). orig NULL (.npy inputs): the bare heatmap instead of an overlay.
 * rect: sal_prep_rect's part of the original the map covers. Folders made as needed; each file
 * written to a temporary name and renamed. 0, or -1 with "file: why" in msg. */
int audit_write_pictures(sal_session *s, sal_method m, const float *map, int h, int w, const sal_image *orig,
                         const float rect[4], const char *out_dir, const char *rel, const char *method, int thumb,
                         int full, char *msg, size_t len);
/* What --overlays flagged needs to explain a flag's image again. */
struct cli_model;
typedef struct audit_overlay_ctx {
    struct cli_model *cm;
    const char *data;      /* DATA, the folder records' files are relative to */
    const char *out_dir;
    const char *layer;     /* --layer, or NULL */
} audit_overlay_ctx;
/* An audit_findings_opts.flagged callback (user: an audit_overlay_ctx): OUT/overlays/<rel>.<method>.png
 * unless it exists; 0, or -1 (reported) when it cannot be written. An input gone since its record
 * is reported and skipped (0). */
int audit_overlay_flagged(void *user, const char *rel, const char *method);
/* Remove the temporary files (sal_io_atomic_open's "<file>.salient-tmp<pid>.<n>") of dead processes
 * under dir, recursively; returns how many. */
int audit_clean_tree(const char *dir);
/* Hard-link (else copy) every file under from/ to the same path under to/; files already there are
 * kept. 0, or -1 (reported). */
int audit_gather_tree(const char *from, const char *to);

/* SHA-256 of a file as 64 hex digits + NUL; -1 when it cannot be read. */
int audit_sha256_file(const char *path, char hex[65]);

/* ------------------------------------------------------------------------------------------------ */
/* Findings and exports                                                                              */

typedef struct audit_findings_opts {
    const char *out_dir;
    const char *model;           /* as given, for findings.json */
    char *const *labels;         /* the model's class names (may be NULL) */
    int n_labels;
    char *const *methods;        /* method names */
    int n_methods;
    double threshold;            /* flag at ratio >= threshold ... */
    double min_area_ratio;       /* ... and mean mass >= min_area_ratio x the region's pixel share */
    int labelled;                /* classes are true labels (1) or predicted classes (0) */
    int h, w;                    /* the model's input size (region areas) */
    int have_mask;
    /* called for each file behind a flag (the flag's strongest files) before the report is
     * written, or NULL: --overlays flagged makes their overlays. Nonzero stops the findings. */
    int (*flagged)(void *user, const char *file, const char *method);
    void *flagged_user;
    int quiet;                   /* --quiet: no flags or summary on stderr (errors only) */
} audit_findings_opts;

/* The findings' numbers, per class and method. */
enum { AUDIT_N_STATS = SAL_RM_COUNT + 2 };   /* the masses, concentration, entropy */
#define N_STATS AUDIT_N_STATS
const char *audit_stat_col(int k);           /* "mass_center" ... "entropy" */
typedef struct audit_class_acc {
    int64_t n, n_correct, n_known;
    double sum[AUDIT_N_STATS];
    int64_t cnt[AUDIT_N_STATS];
} audit_class_acc;
typedef struct audit_flag {
    int cls, method, region;
    double ratio, mass;
} audit_flag;
typedef struct audit_report_data {
    const audit_class_acc *acc;   /* (M,K) per class, then (M) per method */
    int K;
    const audit_flag *flags;      /* sorted by ratio */
    int n_flags;
    int images, failed;
} audit_report_data;
/* The class's name, or "class K"; a name as a file name (letters, digits, - _ . kept). */
void audit_class_name(const audit_findings_opts *o, int k, char *buf, size_t len);
void audit_file_safe(char *s);
/* The rankings (findings.json's and the report's): SQL selecting (file, method, share,
 * predicted_label) of the AUDIT_RANKED records with the most mass in a corner (k 0), on the
 * border (1), and misclassified with the most off the object (2: outside the mask when have_mask,
 * else outside the centre box). */
#define AUDIT_RANKED 10
void audit_ranking_sql(int k, int have_mask, char *buf, size_t len);
/* OUT/report.html (audit_report.c): one self-contained page. 0, or -1 reported. */
int audit_write_report(audit_store *st, const audit_findings_opts *o, const audit_report_data *d);

/* Read every record from the store and write OUT/records.csv, OUT/records.jsonl,
 * OUT/findings.json and OUT/mean/ (PNG + .npy per method and class), each to a temporary name
 * renamed into place. Prints the flags on stderr. Returns 0, or -1 with the failure reported. */
int audit_write_findings(audit_store *st, const audit_findings_opts *o, audit_sums *sums);

#endif
