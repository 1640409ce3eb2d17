/* testproc.h — helpers for the tests that run programs and look at the files they leave: scratch
 * folders, whole-file reads, and a child process (fork/exec) with stdout and stderr captured into
 * files of a scratch folder. Each test's own run wrappers (the program, the environment) stay in
 * the test; what every such test needs is here once. */
#ifndef SAL_TESTPROC_H
#define SAL_TESTPROC_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Whole file, NUL-terminated; *len (if given) receives its size. NULL when it cannot be read. */
char *tp_slurp(const char *path, size_t *len);
int tp_exists(const char *path);   /* lstat succeeds */
/* Remove a file or a folder with everything below it (making folders writable first). */
void tp_remove_tree(const char *path);
/* A fresh scratch folder /tmp/salient_TAG_XXXXXX into dir (asserts on failure). */
void tp_make_tmp(char *dir, size_t len, const char *tag);
/* dir/name into buf; returns buf. */
const char *tp_join(char *buf, size_t len, const char *dir, const char *name);
/* A float32 .npy of the source tree (path relative to it) holding exactly `want` values (asserts
 * otherwise); malloc'ed. */
float *tp_load_npy(const char *rel, int64_t want);
/* Non-overlapping occurrences of needle in s. */
int tp_count_substr(const char *s, const char *needle);

/* One run of a program. */
typedef struct tp_run {
    int status;        /* exit status; -1 when it did not exit normally (killed) */
    char *out, *err;   /* stdout, stderr: NUL-terminated (empty, never NULL, after tp_finish) */
    char cmd[2048];    /* the command line, for messages */
    char out_path[4096], err_path[4096];
} tp_run;

/* Start `prog argv...` (argv NULL-terminated, without the program's name) with stdout and stderr
 * into files of scratch. env: NULL or NULL-terminated "NAME=VALUE" entries set in the child
 * ("NAME" alone unsets it); cwd: NULL or the child's folder. Returns the child's pid (asserts on
 * fork failure). */
pid_t tp_start(tp_run *r, const char *scratch, const char *prog, const char *const *env, const char *cwd,
               const char *const *argv);
/* Wait for pid and read its output into r (no assertion on the status). */
void tp_finish(tp_run *r, pid_t pid);
/* tp_start + tp_finish, asserting that the program ran and was not killed. */
void tp_run_prog(tp_run *r, const char *scratch, const char *prog, const char *const *env,
                 const char *const *argv);
void tp_run_free(tp_run *r);

#endif
