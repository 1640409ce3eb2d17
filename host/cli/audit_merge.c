/* audit_merge.c — `salient audit --merge`: the stores of the shards of one audit (OUT/shard-K-of-N/
 * audit.sqlite, or any folders holding an audit.sqlite) combined into one OUT/audit.sqlite, with
 * the findings written from it as after a single run. Every store must come from the same model,
 * methods and options (table run); a file recorded by two stores is kept once. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <sqlite3.h>

#include "cli.h"
#include "audit.h"

#define MAX_IDENTITY 8
#define MERGE_MAX_METHODS 8

static int is_file(const char *p) {
    struct stat st;
    return !stat(p, &st) && S_ISREG(st.st_mode);
}

/* The run table's notes (audit_store_set_note), not part of a run's identity. */
static int is_note(const char *key) { return !strcmp(key, "data") || !strcmp(key, "overlays"); }

static int cmp_cstr(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* The stores a folder stands for: audit.sqlite in each of its shard-K-of-N folders when it has
 * any, else its own audit.sqlite. Appends malloc'ed paths to *v. -1 out of memory. */
static int stores_of(const char *dir, char ***v, int *n, int *cap) {
    DIR *d = opendir(dir);
    char path[4400];
    int found = 0, first = *n;
    struct dirent *e;
    while (d && (e = readdir(d))) {
        int k, nn;
        char tail;
        if (sscanf(e->d_name, "shard-%d-of-%d%c", &k, &nn, &tail) != 2) continue;
        snprintf(path, sizeof path, "%s/%s/audit.sqlite", dir, e->d_name);
        if (!is_file(path)) continue;
        if (*n == *cap) {
            char **nv = realloc(*v, sizeof *nv * (size_t)(*cap = *cap ? 2 * *cap : 16));
            if (!nv) { closedir(d); return -1; }
            *v = nv;
        }
        if (!((*v)[(*n)++] = strdup(path))) { closedir(d); return -1; }
        found++;
    }
    if (d) closedir(d);
    if (found) {
        qsort(*v + first, (size_t)found, sizeof **v, cmp_cstr);
        return 0;
    }
    snprintf(path, sizeof path, "%s/audit.sqlite", dir);
    if (!is_file(path)) return 0;
    if (*n == *cap) {
        char **nv = realloc(*v, sizeof *nv * (size_t)(*cap = *cap ? 2 * *cap : 16));
        if (!nv) return -1;
        *v = nv;
    }
    return ((*v)[(*n)++] = strdup(path)) ? 0 : -1;
}

typedef struct identity_buf {
    char *keys[MAX_IDENTITY], *values[MAX_IDENTITY];
    int n;
} identity_buf;

static void identity_free(identity_buf *b) {
    for (int i = 0; i < b->n; i++) { free(b->keys[i]); free(b->values[i]); }
    b->n = 0;
}

static int read_identity(sqlite3 *db, identity_buf *b) {
    sqlite3_stmt *q = NULL;
    b->n = 0;
    if (sqlite3_prepare_v2(db, "SELECT key, value FROM run ORDER BY key", -1, &q, NULL) != SQLITE_OK) return -1;
    while (sqlite3_step(q) == SQLITE_ROW && b->n < MAX_IDENTITY) {
        b->keys[b->n] = strdup((const char *)sqlite3_column_text(q, 0));
        b->values[b->n] = strdup((const char *)sqlite3_column_text(q, 1));
        b->n++;
    }
    sqlite3_finalize(q);
    return 0;
}

static const char *identity_get(const identity_buf *b, const char *key) {
    for (int i = 0; i < b->n; i++)
        if (b->keys[i] && !strcmp(b->keys[i], key)) return b->values[i];
    return NULL;
}

int audit_merge(cli_model *cm, const char *model_path, char *const *sources, int n_sources, const char *out_dir,
                double threshold, double area_ratio) {
    char **stores = NULL;
    int n = 0, cap = 0, rc = EXIT_FAIL;
    identity_buf first = {0}, other = {0};
    audit_store out = {0};
    audit_sums sums = {0};
    char *method_names[MERGE_MAX_METHODS];
    int n_methods = 0;
    char out_db[4200];
    snprintf(out_db, sizeof out_db, "%s/audit.sqlite", out_dir);
    for (int i = 0; i < n_sources; i++) {
        int before = n;
        if (stores_of(sources[i], &stores, &n, &cap)) { cli_error("out of memory"); goto out; }
        if (n == before) { cli_error("--merge %s: no audit.sqlite in it or in its shard-K-of-N/ folders", sources[i]); rc = EXIT_USAGE; goto out; }
    }
    for (int i = 0; i < n; i++) {
        struct stat a, b;
        if (!stat(stores[i], &a) && !stat(out_db, &b) && a.st_dev == b.st_dev && a.st_ino == b.st_ino) {
            cli_error("--merge: %s is both a source and the output; merge into another folder (-o)", stores[i]);
            rc = EXIT_USAGE;
            goto out;
        }
    }
    /* every store: the same identity, and the model given */
    for (int i = 0; i < n; i++) {
        sqlite3 *db = NULL;
        identity_buf *b = i ? &other : &first;
        if (sqlite3_open_v2(stores[i], &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK || read_identity(db, b)) {
            cli_error("%s: cannot read: %s", stores[i], db ? sqlite3_errmsg(db) : "cannot open");
            sqlite3_close(db);
            goto out;
        }
        sqlite3_close(db);
        if (i) {
            for (int k = 0; k < first.n; k++) {
                if (is_note(first.keys[k])) continue;
                const char *v = identity_get(&other, first.keys[k]);
                if (!v || strcmp(v, first.values[k])) {
                    cli_error("--merge: %s and %s come from different runs: %s '%s' vs '%s'", stores[0], stores[i],
                              first.keys[k], first.values[k], v ? v : "");
                    rc = EXIT_USAGE;
                    goto out;
                }
            }
            identity_free(&other);
        }
    }
    char sha[65];
    const char *want = identity_get(&first, "model sha256");
    if (audit_sha256_file(model_path, sha)) { cli_error("%s: cannot read: %s", model_path, strerror(errno)); goto out; }
    if (!want || strcmp(want, sha)) {
        cli_error("--merge: %s has sha256 %s; the audit was made with %s", model_path, sha, want ? want : "(none)");
        rc = EXIT_USAGE;
        goto out;
    }
    const char *methods = identity_get(&first, "methods");
    char methods_buf[512];
    snprintf(methods_buf, sizeof methods_buf, "%s", methods ? methods : "");
    for (char *save = NULL, *t = strtok_r(methods_buf, ",", &save); t && n_methods < MERGE_MAX_METHODS;
         t = strtok_r(NULL, ",", &save))
        method_names[n_methods++] = t;

    /* a fresh output store with the same identity */
    if (mkdir(out_dir, 0777) && errno != EEXIST) { cli_error("%s: cannot create this folder: %s", out_dir, strerror(errno)); goto out; }
    const char *suffix[3] = {"", "-wal", "-shm"};
    for (int k = 0; k < 3; k++) {
        char p[4300];
        snprintf(p, sizeof p, "%s%s", out_db, suffix[k]);
        if (unlink(p) && errno != ENOENT) { cli_error("%s: cannot replace: %s", p, strerror(errno)); goto out; }
    }
    audit_identity id = {{0}, {0}, first.n};
    for (int k = 0; k < first.n; k++) { id.keys[k] = first.keys[k]; id.values[k] = first.values[k]; }
    if (audit_store_open(&out, out_dir, &id)) { cli_error("%s", out.msg); goto out; }
    sums.mh = cm->h < 64 ? cm->h : 64;
    sums.mw = cm->w < 64 ? cm->w : 64;
    int labelled = 0, have_mask = 0;
    for (int i = 0; i < n; i++) {
        char sql[4600];
        char *e = NULL;
        char *quoted = sqlite3_mprintf("%Q", stores[i]);
        snprintf(sql, sizeof sql,
                 "ATTACH %s AS src; BEGIN; INSERT OR IGNORE INTO records SELECT * FROM src.records;"
                 " INSERT OR IGNORE INTO errors SELECT * FROM src.errors; COMMIT; DETACH src;", quoted);
        sqlite3_free(quoted);
        if (sqlite3_exec(out.db, sql, NULL, NULL, &e) != SQLITE_OK) {
            cli_error("--merge: %s: %s", stores[i], e ? e : "failed");
            sqlite3_free(e);
            goto out;
        }
        audit_store src = {0};
        snprintf(src.path, sizeof src.path, "%s", stores[i]);
        if (sqlite3_open_v2(stores[i], &src.db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK ||
            audit_store_load_sums(&src, &sums, method_names, n_methods)) {
            cli_error("%s", src.msg[0] ? src.msg : "cannot read the mean maps' sums");
            audit_store_close(&src);
            goto out;
        }
        audit_store_close(&src);
    }
    if (audit_store_commit(&out, NULL, 0, NULL, NULL, 0, &sums, method_names)) { cli_error("%s", out.msg); goto out; }
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(out.db, "SELECT COUNT(label), COUNT(mass_mask) FROM records", -1, &q, NULL) == SQLITE_OK &&
        sqlite3_step(q) == SQLITE_ROW) {
        labelled = sqlite3_column_int(q, 0) > 0;
        have_mask = sqlite3_column_int(q, 1) > 0;
    }
    sqlite3_finalize(q);
    if (!cm->quiet) fprintf(stderr, "salient: merged %d store%s into %s\n", n, n == 1 ? "" : "s", out.path);
    /* the shards' thumbnails, gathered under OUT (hard links where they can be) */
    for (int i = 0; i < n; i++) {
        char src_dir[4400], from[4500], to[4500];
        snprintf(src_dir, sizeof src_dir, "%s", stores[i]);
        char *slash = strrchr(src_dir, '/');
        if (slash) *slash = 0;
        else snprintf(src_dir, sizeof src_dir, ".");
        /* the overlays too with --overlays all; with flagged they are made below for the merged
         * flags (a shard's own flags are not the merge's) */
        const char *subs[2] = {"thumbs", "overlays"}, *shard_mode = identity_get(&first, "overlays");
        for (int k = 0; k < (shard_mode && !strcmp(shard_mode, "all") ? 2 : 1); k++) {
            snprintf(from, sizeof from, "%s/%s", src_dir, subs[k]);
            snprintf(to, sizeof to, "%s/%s", out_dir, subs[k]);
            if (audit_gather_tree(from, to)) goto out;
        }
    }
    audit_findings_opts fo = {out_dir, model_path, cm->labels, cm->n_labels, method_names, n_methods, threshold,
                              area_ratio, labelled, cm->h, cm->w, have_mask, NULL, NULL, cm->quiet};
    /* --overlays flagged: the merged flags' images explained again, as a single run would, when
     * DATA is where the shards read it and this merge preprocesses as they did */
    const char *mode = identity_get(&first, "overlays"), *data = identity_get(&first, "data");
    const char *options = identity_get(&first, "options");
    char layer[512] = "";
    audit_overlay_ctx octx = {cm, data, out_dir, NULL};
    if (mode && !strcmp(mode, "flagged")) {
        char prep[512];
        audit_prep_desc(cm, prep, sizeof prep);
        const size_t pl = strlen(prep);
        const char *lay = options ? strstr(options, " layer=") : NULL, *lay_end = lay ? strstr(lay, " mask=") : NULL;
        struct stat dsb;
        if (!data || stat(data, &dsb) || !S_ISDIR(dsb.st_mode)) {
            cli_error("note: the overlays of the flags' images are not made: the shards' DATA (%s) is not here",
                      data ? data : "not recorded");
        } else if (!options || strncmp(options, prep, pl) || options[pl] != ' ' || !lay || !lay_end) {
            cli_error("note: the overlays of the flags' images are not made: give the merge the shards' preprocessing "
                      "options (theirs: %.200s; the merge's: %s)", options ? options : "?", prep);
        } else {
            snprintf(layer, sizeof layer, "%.*s", (int)(lay_end - lay - 7), lay + 7);
            octx.layer = layer[0] ? layer : NULL;
            fo.flagged = audit_overlay_flagged;
            fo.flagged_user = &octx;
        }
    }
    if (audit_write_findings(&out, &fo, &sums)) goto out;
    int n_err = 0;
    audit_store_count_errors(&out, &n_err);
    rc = n_err ? EXIT_FAIL : EXIT_OK;
out:
    audit_store_close(&out);
    audit_sums_free(&sums);
    identity_free(&first);
    identity_free(&other);
    cli_free_inputs(stores, n);
    return rc;
}
