/* audit_findings.c — what `salient audit` concludes from its records: per class and method the
 * mean of each mass column, accuracy, shortcut ratios (the class's mean mass in a region over the
 * other classes') and flags; the exports OUT/records.csv, OUT/records.jsonl, OUT/findings.json and
 * the mean maps OUT/mean/<method>.<class>.png / .npy. Everything is read back from the store, so
 * a resumed run's findings are those of an uninterrupted one. Files are written to a temporary
 * name and renamed into place. */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <sqlite3.h>

#include "cli.h"
#include "audit.h"
#include "post/post.h"

#define TOP_FILES 5

/* The rankings of findings.json: the records (file, method) with the most mass in any corner,
 * on the border, and the misclassified ones with the most mass off the object (outside the
 * --mask when there is one, else outside the centre box), AUDIT_RANKED of each. */
void audit_ranking_sql(int k, int have_mask, char *buf, size_t len) {
    const char *off = have_mask ? "1 - mass_mask" : "1 - mass_center";
    if (k == 0)
        snprintf(buf, len, "SELECT file, method, max(mass_tl, mass_tr, mass_bl, mass_br) AS v, predicted_label FROM records"
                 " WHERE v IS NOT NULL ORDER BY v DESC, file, method LIMIT %d", AUDIT_RANKED);
    else if (k == 1)
        snprintf(buf, len, "SELECT file, method, mass_border AS v, predicted_label FROM records WHERE v IS NOT NULL"
                 " ORDER BY v DESC, file, method LIMIT %d", AUDIT_RANKED);
    else
        snprintf(buf, len, "SELECT file, method, %s AS v, predicted_label FROM records WHERE correct = 0 AND v IS NOT NULL"
                 " ORDER BY v DESC, file, method LIMIT %d", off, AUDIT_RANKED);
}

static int write_rankings(FILE *f, audit_store *st, int have_mask) {
    static const char *const names[3] = {"corner", "border", "misclassified_off_object"};
    char sql[3][512];
    for (int k = 0; k < 3; k++) audit_ranking_sql(k, have_mask, sql[k], sizeof sql[k]);
    fprintf(f, ",\n\"rankings\":{\"off_object_is\":\"%s\"", have_mask ? "outside the mask" : "outside the centre box");
    for (int k = 0; k < 3; k++) {
        sqlite3_stmt *q = NULL;
        if (sqlite3_prepare_v2(st->db, sql[k], -1, &q, NULL) != SQLITE_OK) {
            cli_error("%s: %s", st->path, sqlite3_errmsg(st->db));
            return -1;
        }
        fprintf(f, ",\"%s\":[", names[k]);
        for (int j = 0; sqlite3_step(q) == SQLITE_ROW; j++) {
            fputs(j ? ",{\"file\":" : "{\"file\":", f);
            cli_json_string(f, (const char *)sqlite3_column_text(q, 0));
            fputs(",\"method\":", f);
            cli_json_string(f, (const char *)sqlite3_column_text(q, 1));
            fprintf(f, ",\"mass\":%.6g}", sqlite3_column_double(q, 2));
        }
        sqlite3_finalize(q);
        fputc(']', f);
    }
    fputc('}', f);
    return 0;
}

/* ------------------------------------------------------------------------------------------------ */
/* Atomic text files                                                                                */

typedef struct afile {
    FILE *f;
    char path[4200], tmp[4300];
} afile;

static int af_open(afile *a, const char *dir, const char *name) {
    snprintf(a->path, sizeof a->path, "%s/%s", dir, name);
    snprintf(a->tmp, sizeof a->tmp, "%s.tmp%ld", a->path, (long)getpid());
    if (!(a->f = fopen(a->tmp, "w"))) { cli_error("%s: cannot write: %s", a->tmp, strerror(errno)); return -1; }
    return 0;
}

static int af_close(afile *a) {
    int bad = ferror(a->f) | (fflush(a->f) != 0) | (fsync(fileno(a->f)) != 0);
    int e = errno;
    bad |= fclose(a->f) != 0;
    a->f = NULL;
    if (bad || rename(a->tmp, a->path)) {
        cli_error("%s: writing failed: %s", a->path, strerror(bad ? e : errno));
        remove(a->tmp);
        return -1;
    }
    return 0;
}

/* Temporary files a killed run left behind in dir ("records.csv.tmp1234"...): removed. */
static void remove_stale_tmp(const char *dir) {
    static const char *const ours[] = {"records.csv.tmp", "records.jsonl.tmp", "findings.json.tmp", "report.html.tmp"};
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        for (size_t k = 0; k < sizeof ours / sizeof *ours; k++) {
            size_t n = strlen(ours[k]);
            if (strncmp(e->d_name, ours[k], n) || !e->d_name[n] || strspn(e->d_name + n, "0123456789") != strlen(e->d_name + n))
                continue;
            char path[4400];
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            remove(path);
        }
    }
    if (d) closedir(d);
}

static void af_abort(afile *a) {
    if (a->f) fclose(a->f);
    a->f = NULL;
    remove(a->tmp);
}

/* ------------------------------------------------------------------------------------------------ */
/* Exports: records.csv and records.jsonl                                                           */

static void csv_field(FILE *f, const char *s) {
    if (!strpbrk(s, ",\"\n\r")) { fputs(s, f); return; }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"') fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

static int write_exports(audit_store *st, const char *out_dir) {
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(st->db, "SELECT * FROM records ORDER BY file, method, target", -1, &q, NULL) != SQLITE_OK) {
        cli_error("%s: %s", st->path, sqlite3_errmsg(st->db));
        return -1;
    }
    afile csv = {0}, jl = {0};
    if (af_open(&csv, out_dir, "records.csv") || af_open(&jl, out_dir, "records.jsonl")) {
        af_abort(&csv);
        sqlite3_finalize(q);
        return -1;
    }
    const int nc = sqlite3_column_count(q);
    for (int k = 0; k < nc; k++) fprintf(csv.f, "%s%s", k ? "," : "", sqlite3_column_name(q, k));
    fputc('\n', csv.f);
    int s;
    while ((s = sqlite3_step(q)) == SQLITE_ROW) {
        fputc('{', jl.f);
        for (int k = 0; k < nc; k++) {
            if (k) fputc(',', csv.f);
            fprintf(jl.f, "%s\"%s\":", k ? "," : "", sqlite3_column_name(q, k));
            switch (sqlite3_column_type(q, k)) {
            case SQLITE_NULL: fputs("null", jl.f); break;
            case SQLITE_INTEGER:
                fprintf(csv.f, "%lld", (long long)sqlite3_column_int64(q, k));
                fprintf(jl.f, "%lld", (long long)sqlite3_column_int64(q, k));
                break;
            case SQLITE_FLOAT:
                fprintf(csv.f, "%.9g", sqlite3_column_double(q, k));
                fprintf(jl.f, "%.9g", sqlite3_column_double(q, k));
                break;
            default: {
                const char *t = (const char *)sqlite3_column_text(q, k);
                csv_field(csv.f, t ? t : "");
                cli_json_string(jl.f, t ? t : "");
            }
            }
        }
        fputc('\n', csv.f);
        fputs("}\n", jl.f);
    }
    sqlite3_finalize(q);
    if (s != SQLITE_DONE) {
        cli_error("%s: reading the records: %s", st->path, sqlite3_errmsg(st->db));
        af_abort(&csv);
        af_abort(&jl);
        return -1;
    }
    int r1 = af_close(&csv), r2 = af_close(&jl);
    return r1 || r2 ? -1 : 0;
}

/* ------------------------------------------------------------------------------------------------ */
/* Mean maps                                                                                        */

void audit_class_name(const audit_findings_opts *o, int k, char *buf, size_t len) {
    if (o->labels && k >= 0 && k < o->n_labels && o->labels[k][0]) snprintf(buf, len, "%s", o->labels[k]);
    else snprintf(buf, len, "class %d", k);
}

/* A class name as a file name: letters, digits, '-', '_' and '.' kept, the rest '_'. */
void audit_file_safe(char *s) {
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '-' ||
              *s == '_' || *s == '.'))
            *s = '_';
    }

static int write_mean_maps(const audit_findings_opts *o, audit_sums *sums) {
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/mean", o->out_dir);
    if (mkdir(dir, 0777) && errno != EEXIST) { cli_error("%s: cannot create this folder: %s", dir, strerror(errno)); return -1; }
    const int mh = sums->mh, mw = sums->mw;
    const int scale = (128 + (mh > mw ? mh : mw) - 1) / (mh > mw ? mh : mw);   /* PNGs at least 128 a side */
    float *mean = malloc(sizeof(float) * (size_t)mh * mw);                      /* (mh,mw) */
    float *norm = malloc(sizeof(float) * (size_t)mh * mw);                      /* (mh,mw) */
    uint8_t *rgb = malloc((size_t)mh * mw * 3);                                 /* (mh,mw,3) */
    uint8_t *big = malloc((size_t)mh * mw * 3 * (size_t)scale * scale);         /* (mh*s,mw*s,3) */
    int rc = 0;
    if (!mean || !norm || !rgb || !big) { cli_error("out of memory for the mean maps"); rc = -1; }
    for (int i = 0; !rc && i < sums->n; i++) {
        const audit_sum *a = &sums->v[i];
        if (!a->n) continue;
        for (int p = 0; p < mh * mw; p++) mean[p] = (float)(a->sum[p] / (double)a->n);
        char name[512], path[4800];
        audit_class_name(o, a->cls, name, sizeof name);
        audit_file_safe(name);
        const char *prefix = a->kind == AUDIT_KIND_PRED ? "pred-" : "";
        if (a->kind == AUDIT_KIND_ALL) snprintf(name, sizeof name, "all");
        sal_error err = {0};
        int64_t dims[2] = {mh, mw};
        snprintf(path, sizeof path, "%s/%s.%s%s.npy", dir, o->methods[a->method], prefix, name);
        if (sal_npy_write(path, mean, 2, dims, &err)) { cli_error("%s", err.msg); rc = -1; break; }
        sal_normalize(mean, (size_t)mh * mw, 0, norm);
        sal_heatmap_rgb(norm, mh, mw, SAL_CMAP_JET, 0, rgb);
        for (int y = 0; y < mh * scale; y++)
            for (int x = 0; x < mw * scale; x++)
                memcpy(big + ((size_t)y * mw * scale + x) * 3, rgb + ((size_t)(y / scale) * mw + x / scale) * 3, 3);
        snprintf(path, sizeof path, "%s/%s.%s%s.png", dir, o->methods[a->method], prefix, name);
        if (sal_png_write_rgb(path, mw * scale, mh * scale, big, &err)) { cli_error("%s", err.msg); rc = -1; break; }
    }
    free(mean);
    free(norm);
    free(rgb);
    free(big);
    return rc;
}

/* ------------------------------------------------------------------------------------------------ */
/* Findings                                                                                         */

const char *audit_stat_col(int k) {
    static const char *const cols[N_STATS] = {"mass_center", "mass_border", "mass_tl", "mass_tr", "mass_bl",
                                              "mass_br", "mass_mask", "concentration", "entropy"};
    return cols[k];
}

static int cmp_flag(const void *a, const void *b) {
    double x = ((const audit_flag *)a)->ratio, y = ((const audit_flag *)b)->ratio;
    return (x < y) - (x > y);
}

static void free_files(char **v, int n_flags) {
    for (size_t i = 0; v && i < (size_t)n_flags * TOP_FILES; i++) free(v[i]);
    free(v);
}

static void json_num(FILE *f, double v) {
    if (isfinite(v)) fprintf(f, "%.6g", v);
    else fputs("null", f);
}

int audit_write_findings(audit_store *st, const audit_findings_opts *o, audit_sums *sums) {
    remove_stale_tmp(o->out_dir);
    if (write_exports(st, o->out_dir) || write_mean_maps(o, sums)) return -1;
    int K = 0;
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(st->db, "SELECT MAX(label), MAX(predicted) FROM records", -1, &q, NULL) != SQLITE_OK ||
        sqlite3_step(q) != SQLITE_ROW) {
        cli_error("%s: %s", st->path, sqlite3_errmsg(st->db));
        sqlite3_finalize(q);
        return -1;
    }
    K = 1 + (sqlite3_column_int(q, 0) > sqlite3_column_int(q, 1) ? sqlite3_column_int(q, 0) : sqlite3_column_int(q, 1));
    sqlite3_finalize(q);
    if (o->n_labels > K) K = o->n_labels;
    const int M = o->n_methods;
    audit_class_acc *acc = calloc((size_t)K * M + M, sizeof *acc);   /* (M,K) per class, then (M) per method */
    audit_flag *flags = calloc((size_t)K * M * SAL_RM_COUNT + 1, sizeof *flags);
    int n_flags = 0, rc = -1;
    if (!acc || !flags) { cli_error("out of memory for the findings"); goto out; }
    if (sqlite3_prepare_v2(st->db,
                           "SELECT method, label, predicted, correct, mass_center, mass_border, mass_tl, mass_tr,"
                           " mass_bl, mass_br, mass_mask, concentration, entropy FROM records",
                           -1, &q, NULL) != SQLITE_OK) {
        cli_error("%s: %s", st->path, sqlite3_errmsg(st->db));
        goto out;
    }
    int s, images_max = 0;
    while ((s = sqlite3_step(q)) == SQLITE_ROW) {
        const char *mname = (const char *)sqlite3_column_text(q, 0);
        int mi = -1;
        for (int k = 0; k < M; k++)
            if (mname && !strcmp(mname, o->methods[k])) mi = k;
        if (mi < 0) continue;
        int cls = o->labelled ? (sqlite3_column_type(q, 1) == SQLITE_NULL ? -1 : sqlite3_column_int(q, 1))
                              : sqlite3_column_int(q, 2);
        if (cls < 0 || cls >= K) continue;
        audit_class_acc *a = &acc[(size_t)mi * K + cls], *t = &acc[(size_t)K * M + mi];
        a->n++;
        t->n++;
        if (sqlite3_column_type(q, 3) != SQLITE_NULL) {
            a->n_known++;
            a->n_correct += sqlite3_column_int(q, 3);
        }
        for (int k = 0; k < N_STATS; k++) {
            if (sqlite3_column_type(q, 4 + k) == SQLITE_NULL) continue;
            double v = sqlite3_column_double(q, 4 + k);
            a->sum[k] += v;
            a->cnt[k]++;
            t->sum[k] += v;
            t->cnt[k]++;
        }
    }
    sqlite3_finalize(q);
    q = NULL;
    if (s != SQLITE_DONE) { cli_error("%s: %s", st->path, sqlite3_errmsg(st->db)); goto out; }
    for (int mi = 0; mi < M; mi++)
        if (acc[(size_t)K * M + mi].n > images_max) images_max = (int)acc[(size_t)K * M + mi].n;

    /* each region's share of the pixels: the metrics of a uniform map */
    sal_region_stats area;
    {
        float *u = malloc(sizeof(float) * (size_t)o->h * o->w);
        if (!u) { cli_error("out of memory"); goto out; }
        for (int i = 0; i < o->h * o->w; i++) u[i] = 1;
        sal_region_metrics(u, o->h, o->w, NULL, &area, NULL);
        free(u);
    }

    /* ratios and flags */
    double *ratio = calloc((size_t)K * M * SAL_RM_COUNT, sizeof *ratio);   /* (M,K,regions) */
    if (!ratio) { cli_error("out of memory"); goto out; }
    for (int mi = 0; mi < M; mi++)
        for (int k = 0; k < K; k++) {
            const audit_class_acc *a = &acc[(size_t)mi * K + k], *t = &acc[(size_t)K * M + mi];
            for (int r = 0; r < SAL_RM_COUNT; r++) {
                double *out = &ratio[((size_t)mi * K + k) * SAL_RM_COUNT + r];
                int64_t oc = t->cnt[r] - a->cnt[r];
                double mine = a->cnt[r] ? a->sum[r] / a->cnt[r] : NAN;
                double others = oc ? (t->sum[r] - a->sum[r]) / oc : NAN;
                *out = others > 0 ? mine / others : NAN;
                int flaggable = r != SAL_RM_CENTER && (r != SAL_RM_MASK || o->have_mask);
                /* a shortcut: far more than the other classes, and far more than the region's
                 * share of the pixels (a uniform map's); the mask's share is not known here */
                int hot = r == SAL_RM_MASK || mine >= o->min_area_ratio * area.mass[r];
                if (flaggable && hot && isfinite(*out) && *out >= o->threshold)
                    flags[n_flags++] = (audit_flag){k, mi, r, *out, mine};
            }
        }
    if (n_flags) qsort(flags, (size_t)n_flags, sizeof *flags, cmp_flag);

    afile fj = {0};
    if (af_open(&fj, o->out_dir, "findings.json")) { free(ratio); goto out; }
    FILE *f = fj.f;
    int n_failed = 0;
    audit_store_count_errors(st, &n_failed);
    fputs("{\"model\":", f);
    cli_json_string(f, o->model);
    fprintf(f, ",\"images\":%d,\"failed\":%d,\"labelled\":%s,\"threshold\":%g,\"min_area_ratio\":%g,\"methods\":[",
            images_max, n_failed, o->labelled ? "true" : "false", o->threshold, o->min_area_ratio);
    for (int mi = 0; mi < M; mi++) { if (mi) fputc(',', f); cli_json_string(f, o->methods[mi]); }
    fputs("],\"area\":{", f);
    for (int r = 0; r < SAL_RM_MASK; r++) {
        fprintf(f, "%s\"%s\":", r ? "," : "", sal_region_name((sal_region_metric)r));
        json_num(f, area.mass[r]);
    }
    fputs("},\n\"classes\":[", f);
    int first = 1;
    char name[512];
    for (int k = 0; k < K; k++) {
        if (!acc[k].n) continue;   /* method 0 saw every image the others saw */
        audit_class_name(o, k, name, sizeof name);
        fprintf(f, "%s\n{\"class\":", first ? "" : ",");
        first = 0;
        cli_json_string(f, name);
        fprintf(f, ",\"index\":%d,\"n\":%lld,\"accuracy\":", k, (long long)acc[k].n);
        json_num(f, acc[k].n_known ? (double)acc[k].n_correct / acc[k].n_known : NAN);
        fputs(",\"methods\":{", f);
        for (int mi = 0; mi < M; mi++) {
            const audit_class_acc *a = &acc[(size_t)mi * K + k];
            fprintf(f, "%s\"%s\":{", mi ? "," : "", o->methods[mi]);
            for (int r = 0; r < N_STATS; r++) {
                fprintf(f, "%s\"%s\":", r ? "," : "", audit_stat_col(r));
                json_num(f, a->cnt[r] ? a->sum[r] / a->cnt[r] : NAN);
            }
            for (int r = 0; r < SAL_RM_COUNT; r++) {
                fprintf(f, ",\"ratio_%s\":", sal_region_name((sal_region_metric)r));
                json_num(f, ratio[((size_t)mi * K + k) * SAL_RM_COUNT + r]);
            }
            for (int r = 0; r < SAL_RM_MASK; r++) {   /* mass over the region's share of the pixels */
                fprintf(f, ",\"area_ratio_%s\":", sal_region_name((sal_region_metric)r));
                json_num(f, a->cnt[r] && area.mass[r] > 0 ? a->sum[r] / a->cnt[r] / area.mass[r] : NAN);
            }
            fputc('}', f);
        }
        fputs("}}", f);
    }
    fputs("],\n\"flags\":[", f);
    char **flag_files = o->flagged && n_flags ? calloc((size_t)n_flags * TOP_FILES, sizeof *flag_files) : NULL;   /* (flags,TOP_FILES) */
    int oom = o->flagged && n_flags && !flag_files;
    for (int i = 0; i < n_flags; i++) {
        const audit_flag *fl = &flags[i];
        audit_class_name(o, fl->cls, name, sizeof name);
        fprintf(f, "%s\n{\"class\":", i ? "," : "");
        cli_json_string(f, name);
        fprintf(f, ",\"method\":\"%s\",\"region\":\"%s\",\"ratio\":", o->methods[fl->method], sal_region_name((sal_region_metric)fl->region));
        json_num(f, fl->ratio);
        fputs(",\"mass\":", f);
        json_num(f, fl->mass);
        fputs(",\"images\":[", f);
        char sql[256];
        snprintf(sql, sizeof sql, "SELECT file FROM records WHERE method = ? AND %s = ? AND %s IS NOT NULL ORDER BY %s DESC, file LIMIT %d",
                 o->labelled ? "label" : "predicted", audit_stat_col(fl->region), audit_stat_col(fl->region), TOP_FILES);
        if (sqlite3_prepare_v2(st->db, sql, -1, &q, NULL) == SQLITE_OK) {
            sqlite3_bind_text(q, 1, o->methods[fl->method], -1, SQLITE_STATIC);
            sqlite3_bind_int(q, 2, fl->cls);
            for (int j = 0; sqlite3_step(q) == SQLITE_ROW; j++) {
                if (j) fputc(',', f);
                cli_json_string(f, (const char *)sqlite3_column_text(q, 0));
                if (flag_files && j < TOP_FILES) {   /* for the overlays of the flags' images */
                    flag_files[(size_t)i * TOP_FILES + j] = strdup((const char *)sqlite3_column_text(q, 0));
                    if (!flag_files[(size_t)i * TOP_FILES + j]) oom = 1;
                }
            }
        }
        sqlite3_finalize(q);
        q = NULL;
        fputs("]}", f);
        if (!o->quiet) fprintf(stderr, "salient: flag: %s: %.1fx more %s mass in the %s than the other classes (mean share %.3f)\n",
                name, fl->ratio, o->methods[fl->method], sal_region_words((sal_region_metric)fl->region), fl->mass);
    }
    fputc(']', f);
    if (write_rankings(f, st, o->have_mask)) { af_abort(&fj); free(ratio); free_files(flag_files, n_flags); goto out; }
    fputs("}\n", f);
    free(ratio);
    if (af_close(&fj)) { free_files(flag_files, n_flags); goto out; }
    if (oom) { cli_error("out of memory for the flags' files"); free_files(flag_files, n_flags); goto out; }
    /* the flags' images' overlays (--overlays flagged), before the report links them */
    for (int i = 0; i < n_flags && flag_files; i++)
        for (int j = 0; j < TOP_FILES; j++) {
            const char *file = flag_files[(size_t)i * TOP_FILES + j];
            if (file && o->flagged(o->flagged_user, file, o->methods[flags[i].method])) {
                free_files(flag_files, n_flags);
                goto out;
            }
        }
    free_files(flag_files, n_flags);
    {
        audit_report_data rd = {acc, K, flags, n_flags, images_max, n_failed};
        if (audit_write_report(st, o, &rd)) goto out;
    }
    if (!n_flags && !o->quiet)
        fprintf(stderr, "salient: no flags: no class holds %gx more mass in a corner or the border than the others "
                "and %gx that region's share of the pixels\n", o->threshold, o->min_area_ratio);
    if (!o->quiet) fprintf(stderr, "salient: audit written to %s (report.html, findings.json, records.csv, records.jsonl, mean/)\n", o->out_dir);
    rc = 0;
out:
    free(acc);
    free(flags);
    return rc;
}
