/* cli.h — shared pieces of the `salient` program: options common to subcommands, input loading
 * (images and .npy) into model-ready tensors, labels, messages. Only the CLI prints. */
#ifndef SAL_CLI_H
#define SAL_CLI_H

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>

#include "salient.h"
#include "io/io.h"

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };

typedef struct cli_common {
    const char *model;
    const char *labels;     /* NULL: the model's salient.labels beside it, if present */
    sal_device device;
    int threads;
    int mem_limit_mib;      /* --mem-limit; 0 = none */
    int batch;
    int h, w;               /* --size; 0 = from the model */
    float mean[3], std[3], scale;
    int have_mean, have_std, have_scale;
    float crop;             /* resize shorter side to size/crop, then centre-crop; 0 = stretch */
    int have_crop;
    int gray;
    int json;
    int quiet;              /* -q, --quiet: no progress report */
    long long max_pixels;   /* --max-pixels: larger images are refused before decoding */
    double dicom_center, dicom_width;   /* --dicom-window C,W; width 0: the file's window */
} cli_common;

void cli_common_init(cli_common *c);
/* Parse one common option at argv[*i]; returns 1 if consumed (advancing *i), 0 if not an
 * option of ours, -1 on a usage error (message printed). */
int cli_common_parse(cli_common *c, int argc, char **argv, int *i);
extern const char *cli_common_help;

/* An opened model with its session and preprocessing. */
typedef struct cli_model {
    sal_model *m;
    sal_session *s;
    int c, h, w;            /* model input */
    sal_prep_opts prep;
    int gray_flag;          /* --gray */
    long long max_pixels;   /* --max-pixels */
    double dicom_center, dicom_width;   /* --dicom-window */
    char **labels;
    int n_labels;
    int note_shown;         /* cli_device_note printed */
    int quiet;              /* --quiet: no note either */
} cli_model;

/* Where each part of the preprocessing came from, in words ("--mean", "the model's salient.mean",
 * "ImageNet's" ...), for `salient info`. */
typedef struct cli_prep_source {
    const char *mean, *std, *scale, *resize;
} cli_prep_source;
/* The preprocessing images get for a model with ch channels and an h x w input: the flags in c,
 * else the model's metadata (salient.mean, salient.std, salient.resize), else the field's
 * conventions; src (may be NULL) receives where each part came from. */
void cli_prep_choose(const cli_common *c, const sal_model *m, int ch, int h, int w, sal_prep_opts *out,
                     cli_prep_source *src);
/* The class names file: `given` (--labels), else the model's salient.labels beside the model file
 * (written into buf) when it exists, else NULL. */
const char *cli_labels_path(const char *given, const char *model_path, const sal_model *m, char *buf, size_t len);
int cli_model_open(cli_model *cm, const cli_common *c);
/* The session's device note ("no NVIDIA driver found; running on the CPU"), once, on stderr: called
 * when the command's checks have passed and its work begins, so the note never comes before the
 * error of a command that fails; nothing when the device is the one asked for. */
void cli_device_note(cli_model *cm);
void cli_model_close(cli_model *cm);
/* Why a model's input is no image batch of either layout, naming the input and its declared shape
 * (into buf, len bytes; returns buf). */
const char *cli_layout_problem(const sal_model *m, char *buf, size_t len);
/* Load an image or .npy into out (C,h,w). Returns 0, or -1 and prints "salient: FILE: why" (or,
 * when msg is not NULL, writes "FILE: why" into msg, msg_len bytes, for the caller to print). keep
 * (may be NULL) receives an image input's decoded pixels, for overlays (the caller frees them);
 * a .npy input leaves it as it was. Safe to call from several threads at once. */
int cli_load_input(const cli_model *cm, const char *path, float *out, sal_image *keep, char *msg, size_t msg_len);
const char *cli_label(const cli_model *cm, int k);
/* INPUT arguments to input paths: a folder stands for the image and .npy files under it (by
 * extension, recursively, hidden entries and the folder `skip` (the output; may be NULL) left
 * out, sorted by path; a folder reached twice, through a link or two arguments, is listed once);
 * other arguments are kept as given. A folder with no inputs, or one that cannot be read, is
 * reported and counted in *n_bad. *out: n_out strings, freed by cli_free_inputs. Returns 0; -1
 * (reported) when out of memory; -2 (reported) when a folder argument is `skip` itself. */
int cli_expand_inputs(char *const *args, int n, const char *skip, char ***out, int *n_out, int *n_bad);
void cli_free_inputs(char **v, int n);
/* Refuses (reported; -1) an output folder `out` that is an input folder or lies inside one, or is
 * the folder holding an input file: its maps would be mixed with the inputs (and a folder walk
 * would read them as inputs). Links are followed; out need not exist yet. 0 when out is fine. */
int cli_check_output(const char *out, char *const *args, int n);

/* Misspellings. cli_closest: the choice nearest to `got` by edit distance (case aside) when it is
 * near enough to be a typo, else NULL. cli_unknown: "salient: unknown WHAT 'got': did you mean
 * 'x'? (choices: ...)", the list replaced by "(more)" when more is not NULL. cli_unknown_option:
 * "CMD: unknown option 'got': did you mean ...? (see salient CMD --help)", among the command's own
 * options and the common ones. */
const char *cli_closest(const char *got, const char *const *choices, int n);
void cli_unknown(const char *what, const char *got, const char *const *choices, int n, const char *more);
void cli_unknown_option(const char *cmd, const char *got, const char *const *own, int n_own);

void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Progress of long work on stderr (host/cli/progress.c), for any command that walks many units
 * (explain's inputs, bench's methods, audit's images): "12/100 inputs (12%), 0.83 inputs/s, ETA
 * 1m46s, 2 failed, gradcam" (below one a second: "12.5 s/input"). On a terminal a bar redrawn in place twice a second; elsewhere
 * a plain line every CLI_PROGRESS_LINE_SECONDS (environment SALIENT_PROGRESS_SECONDS sets either
 * pace: a test hook). A thread draws it, so it moves while one long call runs; cli_error clears
 * the bar before its message. Usage:
 *     cli_progress pg;
 *     cli_progress_start(&pg, "explain", "inputs", n, quiet);
 *     cli_progress_stage(&pg, "%s", method);       // what runs now
 *     cli_progress_span(&pg, 0.5, 0.25);           // the next call covers units [done+0.5, +0.25)
 *     o.progress = cli_progress_sal; o.progress_user = &pg;   // sal_explain moves within it
 *     cli_progress_add(&pg, units_finished, units_failed);
 *     cli_progress_end(&pg);                       // clears the bar; stdout is never touched
 * With quiet nothing is drawn (the counts are still kept). */
#define CLI_PROGRESS_LINE_SECONDS 5.0
typedef struct cli_progress {
    char what[32], unit[16];
    char stage[96];           /* what runs now: a method's name */
    int64_t total, done, failed;
    double part;              /* fraction of units in flight counted as done */
    double span_base, span;   /* the current call covers units [done + span_base, + span) */
    double t0, last_draw, interval;
    int quiet, tty, on_line, ticking, stop;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t thread;
} cli_progress;
int cli_progress_start(cli_progress *p, const char *what, const char *unit, int64_t total, int quiet);
void cli_progress_stage(cli_progress *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void cli_progress_span(cli_progress *p, double base, double span);
void cli_progress_add(cli_progress *p, int64_t done, int64_t failed);
/* A sal_progress_fn: moves the report within the span; cancels once SIGINT or SIGTERM came (after
 * cli_interrupt_catch), also with quiet. */
int cli_progress_sal(const sal_progress *sp, void *user);
/* Catch SIGINT and SIGTERM for a clean stop: cli_interrupted() then returns the signal (0 before);
 * a second signal ends the program as usual. */
void cli_interrupt_catch(void);
int cli_interrupted(void);
void cli_progress_end(cli_progress *p);
/* Around any other write to stderr while a report may be drawn (cli_error does this). */
void cli_progress_hold(void);
void cli_progress_release(void);
void cli_json_string(FILE *f, const char *s);
/* The field's picture defaults for method m's map (common.c; explain's and audit's pictures):
 * channels reduced by abs-max; gradient maps clipped at the 99th percentile, CAMs and occlusion
 * unclipped; jet, or bwr for a signed map; opacity by value for signed maps and the sparse
 * gradient maps (whose few strong pixels would otherwise sit in a uniform colour wash), a
 * constant blend for CAMs and the perturbation methods' smooth maps. */
struct sal_render_opts;   /* post/post.h */
void cli_render_defaults(sal_method m, int signed_map, struct sal_render_opts *ro);

/* An output folder that survives faults (host/cli/outdir.c): cli_outdir_open creates it (and its
 * parents), locks it for this run (OUT/.salient.lock, flock: a second run into the same folder is
 * refused with a message naming the folder and the other run's pid) and removes temporary files
 * that killed runs left in it (only salient's "<file>.salient-tmp<pid>.<n>"). Returns 0, or -1
 * with the reason printed. cli_outdir_close releases the lock (and removes its file); with
 * remove_if_unused, also the folders the open created, when they are empty. */
typedef struct cli_outdir {
    char path[4096];
    char created[4096];   /* topmost folder the open created, "" if none */
    int lock_fd;
} cli_outdir;
int cli_outdir_open(cli_outdir *od, const char *dir, int quiet);
void cli_outdir_close(cli_outdir *od, int remove_if_unused);

/* A record file (summary.csv, summary.jsonl) written as the run goes: the first append writes the
 * header and the lines to a temporary file renamed over any earlier run's file; later appends add
 * whole lines with one write and fdatasync, and a failed append is cut back off the file. So the
 * file always holds the lines of finished work, whatever stops the run. Returns 0, or -1 with the
 * file and the reason printed. */
typedef struct cli_records {
    char path[4200];
    const char *header;
    int fd;
    long long last_start;   /* where the last append began; -1: it made the file */
} cli_records;
void cli_records_init(cli_records *r, const char *path, const char *header);
int cli_records_append(cli_records *r, const char *data, size_t len);
/* Take the last append back off (when its twin file's append failed: the two files keep the same
 * rows). */
void cli_records_undo(cli_records *r);
void cli_records_close(cli_records *r);

/* explain --html (html.c): OUTDIR/index.html from OUTDIR/summary.jsonl, the originals copied into
 * OUTDIR/inputs/. Returns 0, or -1 (reported). */
int cli_html_write(const char *outdir);
/* s written into HTML text or an attribute value: < > & " escaped. */
void cli_html_text(FILE *f, const char *s);

/* "NAME (1,17,32): tokens on a 4x4 grid after a class token" and the like: what a CAM layer is
 * and how its map is read (sal_session_cam_layer), for notes and `salient info`. */
const char *cli_cam_layer_desc(sal_session *s, const sal_cam_layer *cl, char *buf, size_t len);

int cmd_info(int argc, char **argv);
int cmd_predict(int argc, char **argv);
int cmd_explain(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_audit(int argc, char **argv);

#endif
