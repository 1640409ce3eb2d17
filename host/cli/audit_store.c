/* audit_store.c — `salient audit`'s record store, OUT/audit.sqlite (SQLite in WAL mode): the
 * run's identity (model sha256, methods, options), one row per image, method and target
 * (records), unreadable inputs (errors), and the mean-map accumulators (mean_sums). One
 * transaction per batch: a kill at any moment loses at most the batches in flight, and the
 * database is also the manifest a rerun resumes from. Also SHA-256 (FIPS 180-4) of the model. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sqlite3.h>

#include "cli.h"
#include "audit.h"

/* ------------------------------------------------------------------------------------------------ */
/* SHA-256                                                                                          */

static const uint32_t sha_k[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

#define ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void sha_block(uint32_t h[8], const uint8_t *p) {
    uint32_t w[64];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = ROR(w[i - 15], 7) ^ ROR(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ROR(w[i - 2], 17) ^ ROR(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
    for (int i = 0; i < 64; i++) {
        uint32_t t1 = hh + (ROR(e, 6) ^ ROR(e, 11) ^ ROR(e, 25)) + ((e & f) ^ (~e & g)) + sha_k[i] + w[i];
        uint32_t t2 = (ROR(a, 2) ^ ROR(a, 13) ^ ROR(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        hh = g; g = f; f = e; e = d + t1; d = c; c = b; b = a; a = t1 + t2;
    }
    h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e; h[5] += f; h[6] += g; h[7] += hh;
}

int audit_sha256_file(const char *path, char hex[65]) {
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    uint32_t h[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    uint8_t buf[64 * 1024 + 128];
    uint64_t total = 0;
    size_t got;
    int failed = 0;
    for (;;) {
        got = fread(buf, 1, 64 * 1024, f);
        total += got;
        if (got < 64 * 1024) { failed = ferror(f); break; }
        for (size_t i = 0; i < got; i += 64) sha_block(h, buf + i);
    }
    fclose(f);
    if (failed) return -1;
    size_t full = got / 64 * 64;   /* the last, short read: whole blocks, then the padding */
    for (size_t i = 0; i < full; i += 64) sha_block(h, buf + i);
    size_t rest = got - full;
    memmove(buf, buf + full, rest);
    buf[rest++] = 0x80;
    size_t padded = rest <= 56 ? 64 : 128;
    memset(buf + rest, 0, padded - rest);
    uint64_t bits = total * 8;
    for (int i = 0; i < 8; i++) buf[padded - 1 - i] = (uint8_t)(bits >> (8 * i));
    for (size_t i = 0; i < padded; i += 64) sha_block(h, buf + i);
    for (int i = 0; i < 8; i++) snprintf(hex + 8 * i, 9, "%08x", h[i]);
    return 0;
}

/* ------------------------------------------------------------------------------------------------ */
/* Accumulators                                                                                     */

audit_sum *audit_sums_get(audit_sums *s, int method, int kind, int cls) {
    for (int i = 0; i < s->n; i++)
        if (s->v[i].method == method && s->v[i].kind == kind && s->v[i].cls == cls) return &s->v[i];
    if (s->n == s->cap) {
        int cap = s->cap ? 2 * s->cap : 32;
        audit_sum *v = realloc(s->v, sizeof *v * (size_t)cap);
        if (!v) return NULL;
        s->v = v;
        s->cap = cap;
    }
    audit_sum *a = &s->v[s->n];
    memset(a, 0, sizeof *a);
    a->method = method;
    a->kind = kind;
    a->cls = cls;
    if (!(a->sum = calloc((size_t)s->mh * (size_t)s->mw, sizeof(double)))) return NULL;
    s->n++;
    return a;
}

void audit_sums_free(audit_sums *s) {
    for (int i = 0; s && i < s->n; i++) free(s->v[i].sum);
    if (s) free(s->v);
}

/* ------------------------------------------------------------------------------------------------ */
/* The store                                                                                        */

static int fail_db(audit_store *st, const char *what) {
    snprintf(st->msg, sizeof st->msg, "%s: %s: %s", st->path, what, st->db ? sqlite3_errmsg(st->db) : "cannot open");
    return -1;
}

static int exec(audit_store *st, const char *sql) {
    char *e = NULL;
    if (sqlite3_exec(st->db, sql, NULL, NULL, &e) != SQLITE_OK) {
        snprintf(st->msg, sizeof st->msg, "%s: %s", st->path, e ? e : "failed");
        sqlite3_free(e);
        return -1;
    }
    return 0;
}

static const char *schema =
    "CREATE TABLE IF NOT EXISTS run(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS records(file TEXT NOT NULL, label INTEGER, predicted INTEGER NOT NULL,"
    " predicted_label TEXT, probability REAL, correct INTEGER, method TEXT NOT NULL, target INTEGER NOT NULL,"
    " score REAL, mass_center REAL, mass_border REAL, mass_tl REAL, mass_tr REAL, mass_bl REAL, mass_br REAL,"
    " mass_mask REAL, concentration REAL, entropy REAL, completeness_gap REAL, seconds REAL,"
    " PRIMARY KEY(file, method, target));"
    "CREATE TABLE IF NOT EXISTS errors(file TEXT PRIMARY KEY, reason TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS mean_sums(method TEXT NOT NULL, kind INTEGER NOT NULL, class INTEGER NOT NULL,"
    " n INTEGER NOT NULL, h INTEGER NOT NULL, w INTEGER NOT NULL, sum BLOB NOT NULL,"
    " PRIMARY KEY(method, kind, class));";

int audit_store_open(audit_store *st, const char *out_dir, const audit_identity *id) {
    memset(st, 0, sizeof *st);
    snprintf(st->path, sizeof st->path, "%s/audit.sqlite", out_dir);
    if (sqlite3_open_v2(st->path, &st->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) != SQLITE_OK) {
        fail_db(st, "cannot open the record store");
        audit_store_close(st);
        return -1;
    }
    sqlite3_busy_timeout(st->db, 10000);
    if (exec(st, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;") || exec(st, schema)) {
        audit_store_close(st);
        return -1;
    }
    /* identity: recorded by the first run, compared by every later one */
    sqlite3_stmt *q = NULL, *ins = NULL;
    int rc = -1;
    if (sqlite3_prepare_v2(st->db, "SELECT value FROM run WHERE key = ?", -1, &q, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(st->db, "INSERT INTO run(key, value) VALUES(?, ?)", -1, &ins, NULL) != SQLITE_OK) {
        fail_db(st, "reading the run's identity");
        goto out;
    }
    if (exec(st, "BEGIN IMMEDIATE")) goto out;
    for (int i = 0; i < id->n; i++) {
        sqlite3_reset(q);
        sqlite3_bind_text(q, 1, id->keys[i], -1, SQLITE_STATIC);
        int s = sqlite3_step(q);
        if (s == SQLITE_ROW) {
            const char *was = (const char *)sqlite3_column_text(q, 0);
            if (strcmp(was ? was : "", id->values[i])) {
                snprintf(st->msg, sizeof st->msg,
                         "%s was made by a run with a different %s: '%s' then, '%s' now; resume with the "
                         "same model, methods and options, or write to another folder (-o)",
                         st->path, id->keys[i], was ? was : "", id->values[i]);
                exec(st, "ROLLBACK");
                rc = -2;
                goto out;
            }
        } else if (s == SQLITE_DONE) {
            sqlite3_reset(ins);
            sqlite3_bind_text(ins, 1, id->keys[i], -1, SQLITE_STATIC);
            sqlite3_bind_text(ins, 2, id->values[i], -1, SQLITE_STATIC);
            if (sqlite3_step(ins) != SQLITE_DONE) { fail_db(st, "recording the run's identity"); exec(st, "ROLLBACK"); goto out; }
        } else {
            fail_db(st, "reading the run's identity");
            exec(st, "ROLLBACK");
            goto out;
        }
    }
    if (exec(st, "COMMIT")) goto out;
    rc = 0;
out:
    sqlite3_finalize(q);
    sqlite3_finalize(ins);
    if (rc) {
        char keep[sizeof st->msg];
        memcpy(keep, st->msg, sizeof keep);
        audit_store_close(st);
        memcpy(st->msg, keep, sizeof keep);
    }
    return rc;
}

void audit_store_close(audit_store *st) {
    if (st->db) sqlite3_close(st->db);
    st->db = NULL;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int audit_store_done_list(audit_store *st, char ***files, int *n) {
    sqlite3_stmt *q = NULL;
    char **v = NULL;
    int cnt = 0, cap = 0;
    if (sqlite3_prepare_v2(st->db, "SELECT DISTINCT file FROM records UNION SELECT file FROM errors", -1, &q, NULL) != SQLITE_OK)
        return fail_db(st, "listing the recorded files");
    int s;
    while ((s = sqlite3_step(q)) == SQLITE_ROW) {
        if (cnt == cap) {
            cap = cap ? 2 * cap : 256;
            char **nv = realloc(v, sizeof *nv * (size_t)cap);
            if (!nv) goto nomem;
            v = nv;
        }
        if (!(v[cnt] = strdup((const char *)sqlite3_column_text(q, 0)))) goto nomem;
        cnt++;
    }
    sqlite3_finalize(q);
    if (s != SQLITE_DONE) { cli_free_inputs(v, cnt); return fail_db(st, "listing the recorded files"); }
    if (cnt) qsort(v, (size_t)cnt, sizeof *v, cmp_str);
    *files = v;
    *n = cnt;
    return 0;
nomem:
    sqlite3_finalize(q);
    cli_free_inputs(v, cnt);
    snprintf(st->msg, sizeof st->msg, "out of memory listing the recorded files");
    return -1;
}

static void bind_real(sqlite3_stmt *q, int i, double v) {
    if (isnan(v)) sqlite3_bind_null(q, i);
    else sqlite3_bind_double(q, i, v);
}

int audit_store_commit(audit_store *st, const audit_record *recs, int n_recs, char *const *err_files,
                       char *const *err_reasons, int n_errs, audit_sums *sums, char *const *method_names) {
    sqlite3_stmt *r = NULL, *e = NULL, *m = NULL;
    if (exec(st, "BEGIN IMMEDIATE")) return -1;
    if (sqlite3_prepare_v2(st->db,
                           "INSERT OR REPLACE INTO records VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", -1, &r,
                           NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(st->db, "INSERT OR REPLACE INTO errors VALUES(?,?)", -1, &e, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(st->db, "INSERT OR REPLACE INTO mean_sums VALUES(?,?,?,?,?,?,?)", -1, &m, NULL) != SQLITE_OK)
        goto fail;
    for (int i = 0; i < n_recs; i++) {
        const audit_record *a = &recs[i];
        sqlite3_reset(r);
        sqlite3_bind_text(r, 1, a->file, -1, SQLITE_STATIC);
        if (a->label >= 0) sqlite3_bind_int(r, 2, a->label);
        else sqlite3_bind_null(r, 2);
        sqlite3_bind_int(r, 3, a->predicted);
        sqlite3_bind_text(r, 4, a->predicted_label, -1, SQLITE_STATIC);
        bind_real(r, 5, a->probability);
        if (a->label >= 0) sqlite3_bind_int(r, 6, a->label == a->predicted);
        else sqlite3_bind_null(r, 6);
        sqlite3_bind_text(r, 7, a->method, -1, SQLITE_STATIC);
        sqlite3_bind_int(r, 8, a->target);
        bind_real(r, 9, a->score);
        for (int k = 0; k < SAL_RM_COUNT; k++) bind_real(r, 10 + k, a->mass[k]);
        bind_real(r, 17, a->concentration);
        bind_real(r, 18, a->entropy);
        bind_real(r, 19, a->completeness_gap);
        bind_real(r, 20, a->seconds);
        if (sqlite3_step(r) != SQLITE_DONE) goto fail;
    }
    for (int i = 0; i < n_errs; i++) {
        sqlite3_reset(e);
        sqlite3_bind_text(e, 1, err_files[i], -1, SQLITE_STATIC);
        sqlite3_bind_text(e, 2, err_reasons[i], -1, SQLITE_STATIC);
        if (sqlite3_step(e) != SQLITE_DONE) goto fail;
    }
    for (int i = 0; sums && i < sums->n; i++) {
        audit_sum *a = &sums->v[i];
        if (!a->dirty) continue;
        sqlite3_reset(m);
        sqlite3_bind_text(m, 1, method_names[a->method], -1, SQLITE_STATIC);
        sqlite3_bind_int(m, 2, a->kind);
        sqlite3_bind_int(m, 3, a->cls);
        sqlite3_bind_int64(m, 4, a->n);
        sqlite3_bind_int(m, 5, sums->mh);
        sqlite3_bind_int(m, 6, sums->mw);
        sqlite3_bind_blob(m, 7, a->sum, (int)(sizeof(double) * (size_t)sums->mh * (size_t)sums->mw), SQLITE_STATIC);
        if (sqlite3_step(m) != SQLITE_DONE) goto fail;
    }
    sqlite3_finalize(r);
    sqlite3_finalize(e);
    sqlite3_finalize(m);
    if (exec(st, "COMMIT")) { exec(st, "ROLLBACK"); return -1; }
    for (int i = 0; sums && i < sums->n; i++) sums->v[i].dirty = 0;
    return 0;
fail:
    fail_db(st, "writing a batch of records");
    sqlite3_finalize(r);
    sqlite3_finalize(e);
    sqlite3_finalize(m);
    exec(st, "ROLLBACK");
    return -1;
}

int audit_store_load_sums(audit_store *st, audit_sums *sums, char *const *method_names, int n_methods) {
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(st->db, "SELECT method, kind, class, n, h, w, sum FROM mean_sums", -1, &q, NULL) != SQLITE_OK)
        return fail_db(st, "reading the mean maps' sums");
    int s, rc = 0;
    while ((s = sqlite3_step(q)) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(q, 0);
        int mi = -1;
        for (int k = 0; k < n_methods; k++)
            if (name && !strcmp(name, method_names[k])) mi = k;
        int h = sqlite3_column_int(q, 4), w = sqlite3_column_int(q, 5);
        int bytes = sqlite3_column_bytes(q, 6);
        if (mi < 0 || h != sums->mh || w != sums->mw || bytes != (int)(sizeof(double) * (size_t)h * (size_t)w)) {
            snprintf(st->msg, sizeof st->msg, "%s: table mean_sums holds a row (%s, %dx%d) this run cannot use",
                     st->path, name ? name : "?", h, w);
            rc = -1;
            break;
        }
        audit_sum *a = audit_sums_get(sums, mi, sqlite3_column_int(q, 1), sqlite3_column_int(q, 2));
        if (!a) { snprintf(st->msg, sizeof st->msg, "out of memory reading the mean maps' sums"); rc = -1; break; }
        a->n += sqlite3_column_int64(q, 3);   /* added: a merge reads several stores into one */
        const double *blob = sqlite3_column_blob(q, 6);
        for (int p = 0; p < h * w; p++) a->sum[p] += blob[p];
        a->dirty = 1;
    }
    if (!rc && s != SQLITE_DONE) rc = fail_db(st, "reading the mean maps' sums");
    sqlite3_finalize(q);
    return rc;
}

int audit_store_set_note(audit_store *st, const char *key, const char *value) {
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(st->db, "INSERT OR REPLACE INTO run(key, value) VALUES(?, ?)", -1, &q, NULL) != SQLITE_OK)
        return fail_db(st, "recording the run's notes");
    sqlite3_bind_text(q, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, value, -1, SQLITE_STATIC);
    int rc = sqlite3_step(q) == SQLITE_DONE ? 0 : fail_db(st, "recording the run's notes");
    sqlite3_finalize(q);
    return rc;
}

int audit_store_count_errors(audit_store *st, int *n) {
    sqlite3_stmt *q = NULL;
    *n = 0;
    if (sqlite3_prepare_v2(st->db, "SELECT COUNT(*) FROM errors", -1, &q, NULL) != SQLITE_OK)
        return fail_db(st, "counting the errors");
    int rc = sqlite3_step(q) == SQLITE_ROW ? (*n = sqlite3_column_int(q, 0), 0) : fail_db(st, "counting the errors");
    sqlite3_finalize(q);
    return rc;
}
