/* testproc.c — scratch folders, file reads and captured child processes for the tests that run
 * programs (testproc.h). */
#define _DEFAULT_SOURCE   /* setenv, unsetenv */
#include "testproc.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "io/io.h"
#include "testutil.h"

char *tp_slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 4096, n = 0, got;
    char *buf = malloc(cap + 1);
    while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            char *nb = realloc(buf, 2 * cap + 1);
            if (!nb) { free(buf); buf = NULL; break; }
            buf = nb;
            cap *= 2;
        }
    }
    fclose(f);
    if (!buf) return NULL;
    buf[n] = 0;
    if (len) *len = n;
    return buf;
}

int tp_exists(const char *path) {
    struct stat sb;
    return lstat(path, &sb) == 0;
}

void tp_remove_tree(const char *path) {
    struct stat sb;
    if (lstat(path, &sb)) return;
    if (S_ISDIR(sb.st_mode)) {
        chmod(path, 0700);   /* tests make folders read-only on purpose */
        DIR *d = opendir(path);
        struct dirent *e;
        while (d && (e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            char sub[4096];
            snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
            tp_remove_tree(sub);
        }
        if (d) closedir(d);
        rmdir(path);
    } else {
        unlink(path);
    }
}

void tp_make_tmp(char *dir, size_t len, const char *tag) {
    snprintf(dir, len, "/tmp/salient_%s_XXXXXX", tag);
    cr_assert_not_null(mkdtemp(dir), "mkdtemp: %s", strerror(errno));
}

const char *tp_join(char *buf, size_t len, const char *dir, const char *name) {
    snprintf(buf, len, "%s/%s", dir, name);
    return buf;
}

float *tp_load_npy(const char *rel, int64_t want) {
    char path[1024];
    tu_src_path(rel, path, sizeof path);
    float *d = NULL;
    int nd = 0;
    int64_t dims[SAL_MAX_DIMS];
    sal_error err = {0};
    cr_assert_eq(sal_npy_read(path, &d, &nd, dims, &err), SAL_OK, "%s: %s", rel, err.msg);
    int64_t n = 1;
    for (int i = 0; i < nd; i++) n *= dims[i];
    cr_assert_eq(n, want, "%s: %lld elements, expected %lld", rel, (long long)n, (long long)want);
    return d;
}

int tp_count_substr(const char *s, const char *needle) {
    int n = 0;
    size_t len = strlen(needle);
    if (!len) return 0;
    for (const char *p = strstr(s, needle); p; p = strstr(p + len, needle)) n++;
    return n;
}

pid_t tp_start(tp_run *r, const char *scratch, const char *prog, const char *const *env, const char *cwd,
               const char *const *argv) {
    static int counter;
    int k = counter++;
    snprintf(r->out_path, sizeof r->out_path, "%s/.run%d.out", scratch, k);
    snprintf(r->err_path, sizeof r->err_path, "%s/.run%d.err", scratch, k);
    r->out = r->err = NULL;
    const char *args[64];
    int n = 0;
    args[n++] = prog;
    const char *base = strrchr(prog, '/');
    size_t used = (size_t)snprintf(r->cmd, sizeof r->cmd, "%s", base ? base + 1 : prog);
    for (int i = 0; argv[i] && n < 63; i++) {
        args[n++] = argv[i];
        if (used < sizeof r->cmd) used += (size_t)snprintf(r->cmd + used, sizeof r->cmd - used, " %s", argv[i]);
    }
    args[n] = NULL;
    fflush(NULL);
    pid_t pid = fork();
    cr_assert_neq(pid, -1, "fork: %s", strerror(errno));
    if (pid == 0) {
        int fo = open(r->out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int fe = open(r->err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fo < 0 || fe < 0 || dup2(fo, 1) < 0 || dup2(fe, 2) < 0) _exit(127);
        close(fo);
        close(fe);
        for (int i = 0; env && env[i]; i++) {
            char name[256];
            const char *eq = strchr(env[i], '=');
            size_t nl = eq ? (size_t)(eq - env[i]) : strlen(env[i]);
            if (nl >= sizeof name) _exit(127);
            memcpy(name, env[i], nl);
            name[nl] = 0;
            if (eq) setenv(name, eq + 1, 1);
            else unsetenv(name);
        }
        if (cwd && chdir(cwd)) _exit(127);
        execv(prog, (char *const *)args);
        _exit(127);
    }
    return pid;
}

void tp_finish(tp_run *r, pid_t pid) {
    int ws = 0;
    while (waitpid(pid, &ws, 0) < 0 && errno == EINTR) {}
    r->status = WIFEXITED(ws) ? WEXITSTATUS(ws) : -1;
    r->out = tp_slurp(r->out_path, NULL);
    r->err = tp_slurp(r->err_path, NULL);
    if (!r->out) r->out = calloc(1, 1);
    if (!r->err) r->err = calloc(1, 1);
    unlink(r->out_path);
    unlink(r->err_path);
}

void tp_run_prog(tp_run *r, const char *scratch, const char *prog, const char *const *env,
                 const char *const *argv) {
    tp_finish(r, tp_start(r, scratch, prog, env, NULL, argv));
    cr_assert_neq(r->status, 127, "%s: could not run %s", r->cmd, prog);
    cr_assert_neq(r->status, -1, "%s: killed by a signal\nstderr: %s", r->cmd, r->err);
}

void tp_run_free(tp_run *r) {
    free(r->out);
    free(r->err);
    r->out = r->err = NULL;
}
