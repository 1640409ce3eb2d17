/* cli.h — shared pieces of the `salient` program: options common to subcommands, input loading
 * (images and .npy) into model-ready tensors, labels, messages. Only the CLI prints. */
#ifndef SAL_CLI_H
#define SAL_CLI_H

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
    char **labels;
    int n_labels;
    int note_shown;         /* cli_device_note printed */
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
void cli_json_string(FILE *f, const char *s);

/* explain --html (html.c): OUTDIR/index.html from OUTDIR/summary.jsonl, the originals copied into
 * OUTDIR/inputs/. Returns 0, or -1 (reported). */
int cli_html_write(const char *outdir);

int cmd_info(int argc, char **argv);
int cmd_predict(int argc, char **argv);
int cmd_explain(int argc, char **argv);
int cmd_bench(int argc, char **argv);

#endif
