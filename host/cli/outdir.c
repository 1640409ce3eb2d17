/* outdir.c — an output folder that survives faults, for every command that writes one (explain;
 * later audit): created with its parents, locked against a second run (flock on OUT/.salient.lock,
 * which holds the owner's pid), cleared of the temporary files of earlier runs that were killed
 * (only names salient makes: "<file>.salient-tmp<pid>.<n>", see sal_io_atomic_open), and record
 * files (summary.csv, summary.jsonl) appended a batch of whole lines at a time, flushed to disk,
 * so a killed run keeps every line it finished and no half line. */
#define _DEFAULT_SOURCE   /* flock */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

#define LOCK_NAME ".salient.lock"

/* Remove the directories outdir_create made (leaf first, up to `created`), when they are empty. */
static void remove_created_dirs(const char *dir, const char *created) {
    char path[4096];
    snprintf(path, sizeof path, "%s", dir);
    for (int guard = 0; *created && guard < 256; guard++) {
        rmdir(path);
        if (!strcmp(path, created)) break;
        char *slash = strrchr(path, '/');
        if (!slash || slash == path) break;
        *slash = 0;
    }
}

/* Create dir and its parents; created receives the topmost directory this call created ("" if
 * none). */
static int create_dirs(const char *dir, char *created, size_t len) {
    char path[4096];
    snprintf(path, sizeof path, "%s", dir);
    created[0] = 0;
    for (char *p = path + 1;; p++) {
        if (*p && *p != '/') continue;
        char saved = *p;
        *p = 0;
        if (mkdir(path, 0777) == 0) {
            if (!created[0]) snprintf(created, len, "%s", path);
        } else if (errno != EEXIST) {
            cli_error("%s: cannot create: %s", path, strerror(errno));
            if (created[0]) remove_created_dirs(path, created);
            return -1;
        }
        *p = saved;
        if (!saved) break;
    }
    struct stat sb;
    if (stat(path, &sb) || !S_ISDIR(sb.st_mode)) { cli_error("%s: not a directory", path); return -1; }
    if (access(path, W_OK)) { cli_error("%s: not writable: %s", path, strerror(errno)); return -1; }
    return 0;
}

/* The lock: OUT/.salient.lock held with flock for the run. A lock file that a finishing run
 * removed while we opened it is not the lock any more: take it again (same inode on disk). */
static int take_lock(cli_outdir *od) {
    char path[4200];
    snprintf(path, sizeof path, "%s/" LOCK_NAME, od->path);
    for (int attempt = 0; attempt < 20; attempt++) {
        int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
        if (fd < 0) { cli_error("%s: cannot create the folder's lock file: %s", path, strerror(errno)); return -1; }
        if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
            int e = errno;
            char pid[32] = "";
            ssize_t n = pread(fd, pid, sizeof pid - 1, 0);
            close(fd);
            if (e == EWOULDBLOCK) {
                pid[n > 0 ? n : 0] = 0;
                pid[strcspn(pid, "\n")] = 0;
                cli_error("%s: another salient run%s%s%s is writing into this folder: wait for it to finish, or "
                          "give another -o", od->path, pid[0] ? " (pid " : "", pid, pid[0] ? ")" : "");
            } else {
                cli_error("%s: cannot lock: %s", path, strerror(e));
            }
            return -1;
        }
        struct stat a, b;
        if (fstat(fd, &a) == 0 && stat(path, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino) {
            char pid[32];
            int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
            if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)n, 0) != n) {
                /* the lock holds without its note: the other run's message just names no pid */
            }
            od->lock_fd = fd;
            return 0;
        }
        close(fd);   /* removed or replaced meanwhile */
    }
    cli_error("%s: cannot lock: the lock file keeps changing", path);
    return -1;
}

/* "<anything>.salient-tmp<pid>.<n>": the pid, else 0. */
static long temp_owner(const char *name) {
    const char *t = strstr(name, ".salient-tmp");
    if (!t) return 0;
    for (const char *u; (u = strstr(t + 1, ".salient-tmp"));) t = u;
    char *end;
    long pid = strtol(t + 12, &end, 10);
    if (pid <= 0 || *end != '.' || !end[1]) return 0;
    for (const char *d = end + 1; *d; d++)
        if (*d < '0' || *d > '9') return 0;
    return pid;
}

static int stale_cleanup(const cli_outdir *od, int quiet) {
    DIR *d = opendir(od->path);
    if (!d) return 0;
    int removed = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        long pid = temp_owner(e->d_name);
        if (!pid || pid == (long)getpid()) continue;
        /* the folder is ours (locked): a temporary file of another process is left from a run that
         * was killed, unless that process still lives (a run that did not lock: older salient) */
        if (kill((pid_t)pid, 0) == 0) continue;
        char path[4400];
        snprintf(path, sizeof path, "%s/%s", od->path, e->d_name);
        struct stat sb;
        if (lstat(path, &sb) == 0 && S_ISREG(sb.st_mode) && unlink(path) == 0) removed++;
    }
    closedir(d);
    if (removed && !quiet)
        cli_error("note: %s: removed %d temporary file%s left by an earlier run that was stopped", od->path, removed,
                  removed == 1 ? "" : "s");
    return removed;
}

int cli_outdir_open(cli_outdir *od, const char *dir, int quiet) {
    memset(od, 0, sizeof *od);
    od->lock_fd = -1;
    snprintf(od->path, sizeof od->path, "%s", dir);
    if (create_dirs(dir, od->created, sizeof od->created)) return -1;
    if (take_lock(od)) {
        if (od->created[0]) remove_created_dirs(od->path, od->created);
        return -1;
    }
    stale_cleanup(od, quiet);
    return 0;
}

void cli_outdir_close(cli_outdir *od, int remove_if_unused) {
    if (od->lock_fd >= 0) {
        char path[4200];
        snprintf(path, sizeof path, "%s/" LOCK_NAME, od->path);
        unlink(path);   /* while held: a run that opened it meanwhile sees the inode change, retries */
        close(od->lock_fd);
        od->lock_fd = -1;
    }
    if (remove_if_unused && od->created[0]) remove_created_dirs(od->path, od->created);
}

/* ------------------------------------------------------------------------------------------------ */
/* Record files appended as the run goes                                                            */

void cli_records_init(cli_records *r, const char *path, const char *header) {
    memset(r, 0, sizeof *r);
    r->fd = -1;
    snprintf(r->path, sizeof r->path, "%s", path);
    r->header = header;
}

static int write_all(int fd, const char *data, size_t len) {
    while (len) {
        ssize_t n = write(fd, data, len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) { if (n == 0) errno = EIO; return -1; }
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

int cli_records_append(cli_records *r, const char *data, size_t len) {
    if (!len) return 0;
    if (r->fd < 0) {
        /* the first lines: header and lines into a temporary file, renamed over an earlier run's
         * file, then appended to */
        sal_io_atomic a;
        sal_error err = {0};
        if (sal_io_atomic_open(r->path, &a, &err)) { cli_error("%s", err.msg); return -1; }
        if (r->header) fputs(r->header, a.f);
        fwrite(data, 1, len, a.f);
        if (fflush(a.f) != 0 || fsync(fileno(a.f)) != 0) {
            cli_error("%s: write failed: %s", r->path, strerror(errno));
            sal_io_atomic_commit(r->path, &a, 0, NULL);
            return -1;
        }
        if (sal_io_atomic_commit(r->path, &a, 1, &err)) { cli_error("%s", err.msg); return -1; }
        r->fd = open(r->path, O_WRONLY | O_APPEND | O_CLOEXEC);
        if (r->fd < 0) { cli_error("%s: cannot reopen to append: %s", r->path, strerror(errno)); return -1; }
        r->last_start = -1;
        return 0;
    }
    off_t before = lseek(r->fd, 0, SEEK_END);
    if (write_all(r->fd, data, len) != 0 || fdatasync(r->fd) != 0) {
        int e = errno;
        if (before >= 0 && ftruncate(r->fd, before) != 0) { /* the half line stays; readers drop it */ }
        cli_error("%s: write failed: %s", r->path, strerror(e));
        return -1;
    }
    r->last_start = before;
    return 0;
}

void cli_records_undo(cli_records *r) {
    if (r->fd < 0) return;
    if (r->last_start >= 0) {
        if (ftruncate(r->fd, r->last_start) == 0) fdatasync(r->fd);
    } else {   /* the first append made the file: it goes */
        close(r->fd);
        r->fd = -1;
        unlink(r->path);
    }
    r->last_start = 0;
}

void cli_records_close(cli_records *r) {
    if (r->fd >= 0) close(r->fd);
    r->fd = -1;
}
