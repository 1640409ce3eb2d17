/* audit_report.c — OUT/report.html of `salient audit`: one self-contained page (mean maps inlined
 * as data: URIs, no external script, style or font) with the findings first (flags in plain
 * words), the mean maps per class with a colour bar, the per-class accuracy and mass table, the
 * rankings (findings.json's, with thumbnails), then a sortable, filterable table of every record
 * with its thumbnail, linked to its full-size overlay where there is one. Opened with #selftest, its script checks itself
 * (every image decoded; a click on a column sorts the table) and writes the result into
 * <pre id="selftest">, which tests read back from headless chromium. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sqlite3.h>

#include "cli.h"
#include "audit.h"
#include "post/post.h"

static const char *method_words(const char *m) {
    if (!strcmp(m, "gradcam")) return "Grad-CAM";
    if (!strcmp(m, "gradcam++")) return "Grad-CAM++";
    if (!strcmp(m, "ig")) return "Integrated Gradients";
    return m;
}

/* The file's bytes as base64 on f; -1 when it cannot be read. */
static int base64_file(FILE *f, const char *path) {
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    FILE *in = fopen(path, "rb");
    if (!in) return -1;
    unsigned char b[3];
    size_t n;
    while ((n = fread(b, 1, 3, in)) > 0) {
        unsigned v = (unsigned)b[0] << 16 | (n > 1 ? (unsigned)b[1] << 8 : 0) | (n > 2 ? b[2] : 0);
        char o[4] = {tab[v >> 18 & 63], tab[v >> 12 & 63], n > 1 ? tab[v >> 6 & 63] : '=', n > 2 ? tab[v & 63] : '='};
        fwrite(o, 1, 4, f);
        if (n < 3) break;
    }
    int bad = ferror(in);
    fclose(in);
    return bad ? -1 : 0;
}

/* A relative path as a URL: bytes other than letters, digits, - . _ ~ / percent-encoded. */
static void url_path(FILE *f, const char *s) {
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || strchr("-._~/", *p))
            fputc(*p, f);
        else
            fprintf(f, "%%%02X", *p);
    }
}

/* The record's thumbnail (OUT/thumbs/), linked to its full-size overlay (OUT/overlays/) when
 * there is one; an empty cell when there is no thumbnail (an audit made before they existed). */
static void picture_cell(FILE *f, const char *out_dir, const char *file, const char *method) {
    char path[4400], rel[4300];
    fputs("<td>", f);
    audit_picture_path(path, sizeof path, out_dir, "thumbs", file, method);
    if (access(path, R_OK) == 0) {
        audit_picture_path(path, sizeof path, out_dir, "overlays", file, method);
        int full = access(path, R_OK) == 0;
        if (full) {
            snprintf(rel, sizeof rel, "overlays/%s.%s.png", file, method);
            fputs("<a class=\"full\" href=\"", f);
            url_path(f, rel);
            fputs("\">", f);
        }
        snprintf(rel, sizeof rel, "thumbs/%s.%s.png", file, method);
        fputs("<img class=\"thumb\" alt=\"\" src=\"", f);
        url_path(f, rel);
        fputs("\">", f);
        if (full) fputs("</a>", f);
    }
    fputs("</td>", f);
}

/* The records with the most mass in a corner, on the border, and the misclassified ones with the
 * most mass off the object (outside the mask, else outside the centre box): the lists of
 * findings.json's "rankings", RANKED each, with their thumbnails. */
static int write_rankings(FILE *f, audit_store *st, const audit_findings_opts *o) {
    static const char *const titles[3] = {"Most mass in a corner", "Most mass on the border",
                                          "Misclassified, most mass off the object"};
    char sql[3][512];
    for (int k = 0; k < 3; k++) audit_ranking_sql(k, o->have_mask, sql[k], sizeof sql[k]);
    fprintf(f, "<h2>Rankings</h2>\n<p>The records whose maps sit most at the edges (off the object: %s).</p>\n"
               "<div class=\"rankings\">\n", o->have_mask ? "outside the mask" : "outside the centre box");
    for (int k = 0; k < 3; k++) {
        sqlite3_stmt *q = NULL;
        if (sqlite3_prepare_v2(st->db, sql[k], -1, &q, NULL) != SQLITE_OK) {
            cli_error("%s: %s", st->path, sqlite3_errmsg(st->db));
            return -1;
        }
        fprintf(f, "<table class=\"ranking\" id=\"ranking%d\"><caption>%s</caption><tr><th>file</th><th>map</th>"
                   "<th>method</th><th>predicted</th><th>share</th></tr>\n", k, titles[k]);
        int rows = 0;
        while (sqlite3_step(q) == SQLITE_ROW) {
            const char *file = (const char *)sqlite3_column_text(q, 0), *method = (const char *)sqlite3_column_text(q, 1);
            fputs("<tr><td>", f);
            cli_html_text(f, file);
            fputs("</td>", f);
            picture_cell(f, o->out_dir, file, method);
            fputs("<td>", f);
            cli_html_text(f, method);
            fputs("</td><td>", f);
            cli_html_text(f, (const char *)sqlite3_column_text(q, 3));
            fprintf(f, "</td><td>%.3f</td></tr>\n", sqlite3_column_double(q, 2));
            rows++;
        }
        if (!rows) fputs("<tr><td colspan=\"5\">none</td></tr>\n", f);
        sqlite3_finalize(q);
        fputs("</table>\n", f);
    }
    fputs("</div>\n", f);
    return 0;
}

static void num(FILE *f, double v, const char *fmt) {
    if (isfinite(v)) fprintf(f, fmt, v);
}

static const char *style =
    "body{font:14px/1.4 sans-serif;margin:1.5em;color:#222}h1{font-size:1.5em}h2{margin-top:1.6em}"
    "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}"
    "td:first-child,th:first-child{text-align:left}th{background:#eee;cursor:pointer}"
    ".maps img{width:112px;height:112px;image-rendering:pixelated}.flag{color:#a00;font-weight:bold}"
    ".cbar{display:inline-block;width:240px;height:12px;vertical-align:middle;margin:0 6px}"
    "#filter{margin:0.5em 0;width:24em}.thumb{height:48px;image-rendering:pixelated;vertical-align:middle}"
    "a.full .thumb{outline:2px solid #a00}.rankings{display:flex;flex-wrap:wrap;gap:1.5em;align-items:flex-start}"
    "caption{font-weight:bold;text-align:left;padding:4px 0}";

static const char *script =
    "function sortBy(th){const t=th.closest('table'),i=[...th.parentNode.children].indexOf(th),"
    "b=t.tBodies[0],num=th.dataset.type==='num',asc=th.dataset.dir!=='asc';th.dataset.dir=asc?'asc':'desc';"
    "const rows=[...b.rows];rows.sort((x,y)=>{let p=x.cells[i].textContent,q=y.cells[i].textContent;"
    "if(num){p=p===''?-Infinity:+p;q=q===''?-Infinity:+q;return asc?p-q:q-p}"
    "return asc?p.localeCompare(q):q.localeCompare(p)});rows.forEach(r=>b.appendChild(r))}\n"
    "document.querySelectorAll('table.sortable th').forEach(th=>th.addEventListener('click',()=>sortBy(th)));\n"
    "const filt=document.getElementById('filter');filt.addEventListener('input',()=>{const s=filt.value.toLowerCase();"
    "for(const r of document.getElementById('images').tBodies[0].rows)"
    "r.style.display=r.textContent.toLowerCase().includes(s)?'':'none'});\n"
    "window.addEventListener('load',()=>{if(location.hash!=='#selftest')return;"
    "const imgs=[...document.images],ok=imgs.filter(i=>i.complete&&i.naturalWidth>0).length;"
    "const t=document.getElementById('images'),first=()=>t.tBodies[0].rows.length?t.tBodies[0].rows[0].cells[0].textContent:'';"
    "const before=[...t.tBodies[0].rows].map(r=>r.cells[0].textContent).join('|');"
    "const th=[...t.tHead.rows[0].cells].find(c=>c.textContent==='bl');th.click();th.click();"
    "const vals=[...t.tBodies[0].rows].map(r=>r.cells[th.cellIndex].textContent===''?-Infinity:+r.cells[th.cellIndex].textContent);"
    "let desc=true;for(let k=1;k<vals.length;k++)if(vals[k]>vals[k-1])desc=false;"
    "const after=[...t.tBodies[0].rows].map(r=>r.cells[0].textContent).join('|');"
    "const th2=[...document.querySelectorAll('#images img.thumb')],ranked=document.querySelectorAll('.ranking img').length,tok=th2.filter(i=>i.complete&&i.naturalWidth>0).length,"
    "links=document.querySelectorAll('#images a.full').length;"
    "document.getElementById('selftest').textContent='SELFTEST images='+imgs.length+' loaded='+ok+' rows='+vals.length+"
    "' sorted_desc='+desc+' order_changed='+(before!==after)+' thumbs='+th2.length+' thumbs_loaded='+tok+' ranked='+ranked+' overlays='+links+"
    "' first='+first();});\n";

int audit_write_report(audit_store *st, const audit_findings_opts *o, const audit_report_data *d) {
    char path[4200], tmp[4300];
    snprintf(path, sizeof path, "%s/report.html", o->out_dir);
    snprintf(tmp, sizeof tmp, "%s.tmp%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "w");
    if (!f) { cli_error("%s: cannot write: %s", tmp, strerror(errno)); return -1; }
    const int M = o->n_methods, K = d->K;
    char name[512];
    fputs("<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>salient audit: ", f);
    cli_html_text(f, o->model);
    fprintf(f, "</title><style>%s</style></head><body>\n<h1>Audit of ", style);
    cli_html_text(f, o->model);
    fprintf(f, "</h1>\n<p>%d images, %d unreadable; methods:", d->images, d->failed);
    for (int mi = 0; mi < M; mi++) fprintf(f, " %s", method_words(o->methods[mi]));
    fprintf(f, "; classes are the %s.</p>\n", o->labelled ? "true labels" : "predicted classes (no labels were given)");

    /* findings */
    fputs("<h2>Findings</h2>\n<ul id=\"flags\">\n", f);
    for (int i = 0; i < d->n_flags; i++) {
        const audit_flag *fl = &d->flags[i];
        audit_class_name(o, fl->cls, name, sizeof name);
        fputs("<li class=\"flag\">", f);
        cli_html_text(f, name);
        fprintf(f, ": %.1fx more %s mass in the %s than other classes (mean share %.3f)</li>\n", fl->ratio,
                method_words(o->methods[fl->method]), sal_region_words((sal_region_metric)fl->region), fl->mass);
    }
    if (!d->n_flags)
        fprintf(f, "<li>No flags: no class holds %gx more mass in a corner or on the border than the other classes "
                   "(and %gx the region's share of the pixels).</li>\n", o->threshold, o->min_area_ratio);
    fputs("</ul>\n", f);

    /* mean maps, with the colour bar of the jet colormap */
    fputs("<h2>Mean maps per class</h2>\n<p>Each image's map normalized to [0,1], averaged over the class. 0 ", f);
    fputs("<span class=\"cbar\" style=\"background:linear-gradient(to right", f);
    for (int k = 0; k <= 10; k++) {
        uint8_t rgb[3];
        sal_colormap_rgb(SAL_CMAP_JET, k / 10.0f, rgb);
        fprintf(f, ",rgb(%d,%d,%d)", rgb[0], rgb[1], rgb[2]);
    }
    fputs(")\"></span> 1 (each map scaled to its own range)</p>\n<table class=\"maps\"><tr><th>class</th>", f);
    for (int mi = 0; mi < M; mi++) fprintf(f, "<th>%s</th>", method_words(o->methods[mi]));
    fputs("</tr>\n", f);
    for (int k = -1; k < K; k++) {
        if (k >= 0 && !d->acc[k].n) continue;
        if (k >= 0) audit_class_name(o, k, name, sizeof name);
        else snprintf(name, sizeof name, "all");
        fputs("<tr><td>", f);
        cli_html_text(f, name);
        fprintf(f, " (n=%lld)</td>", (long long)(k >= 0 ? d->acc[k].n : d->acc[(size_t)K * M].n));
        char fname[512];
        snprintf(fname, sizeof fname, "%s", name);
        if (k >= 0) audit_file_safe(fname);
        for (int mi = 0; mi < M; mi++) {
            char png[4800];
            snprintf(png, sizeof png, "%s/mean/%s.%s%s.png", o->out_dir, o->methods[mi],
                     k >= 0 && !o->labelled ? "pred-" : "", fname);
            fputs("<td><img alt=\"mean map\" src=\"data:image/png;base64,", f);
            if (base64_file(f, png)) {
                fclose(f);
                remove(tmp);
                cli_error("%s: cannot read: %s", png, strerror(errno));
                return -1;
            }
            fputs("\"></td>", f);
        }
        fputs("</tr>\n", f);
    }
    fputs("</table>\n", f);

    /* per-class table */
    fputs("<h2>Per class</h2>\n<table class=\"sortable\" id=\"classes\"><thead><tr><th>class</th><th data-type=\"num\">n</th>"
          "<th data-type=\"num\">accuracy</th>", f);
    for (int mi = 0; mi < M; mi++)
        for (int r = 0; r < SAL_RM_MASK + (o->have_mask ? 1 : 0); r++)
            fprintf(f, "<th data-type=\"num\">%s %s</th>", method_words(o->methods[mi]), sal_region_name((sal_region_metric)r));
    fputs("</tr></thead><tbody>\n", f);
    for (int k = 0; k < K; k++) {
        if (!d->acc[k].n) continue;
        audit_class_name(o, k, name, sizeof name);
        fputs("<tr><td>", f);
        cli_html_text(f, name);
        fprintf(f, "</td><td>%lld</td><td>", (long long)d->acc[k].n);
        if (d->acc[k].n_known) fprintf(f, "%.3f", (double)d->acc[k].n_correct / d->acc[k].n_known);
        fputs("</td>", f);
        for (int mi = 0; mi < M; mi++) {
            const audit_class_acc *a = &d->acc[(size_t)mi * K + k];
            for (int r = 0; r < SAL_RM_MASK + (o->have_mask ? 1 : 0); r++) {
                fputs("<td>", f);
                if (a->cnt[r]) num(f, a->sum[r] / a->cnt[r], "%.3f");
                fputs("</td>", f);
            }
        }
        fputs("</tr>\n", f);
    }
    fputs("</tbody></table>\n", f);

    /* rankings: findings.json's, with their pictures */
    if (write_rankings(f, st, o)) {
        fclose(f);
        remove(tmp);
        return -1;
    }

    /* every record */
    fputs("<h2>Images</h2>\n<p>Each record with a thumbnail of its overlay; a framed one links to the full-size overlay.</p>\n<input id=\"filter\" placeholder=\"filter rows (file, class, method...)\">\n"
          "<table class=\"sortable\" id=\"images\"><thead><tr><th>file</th><th>map</th><th>label</th><th>predicted</th>"
          "<th data-type=\"num\">probability</th><th>method</th>",
          f);
    for (int r = 0; r < SAL_RM_COUNT + 2; r++)
        fprintf(f, "<th data-type=\"num\">%s</th>", r < SAL_RM_COUNT ? sal_region_name((sal_region_metric)r) : audit_stat_col(r));
    fputs("</tr></thead><tbody>\n", f);
    sqlite3_stmt *q = NULL;
    int rc = 0;
    if (sqlite3_prepare_v2(st->db,
                           "SELECT file, label, predicted_label, probability, method, mass_center, mass_border, mass_tl,"
                           " mass_tr, mass_bl, mass_br, mass_mask, concentration, entropy FROM records ORDER BY file, method",
                           -1, &q, NULL) != SQLITE_OK) {
        cli_error("%s: %s", st->path, sqlite3_errmsg(st->db));
        rc = -1;
    }
    while (!rc && sqlite3_step(q) == SQLITE_ROW) {
        fputs("<tr><td>", f);
        cli_html_text(f, (const char *)sqlite3_column_text(q, 0));
        fputs("</td>", f);
        picture_cell(f, o->out_dir, (const char *)sqlite3_column_text(q, 0), (const char *)sqlite3_column_text(q, 4));
        fputs("<td>", f);
        if (sqlite3_column_type(q, 1) != SQLITE_NULL) {
            audit_class_name(o, sqlite3_column_int(q, 1), name, sizeof name);
            cli_html_text(f, name);
        }
        fputs("</td><td>", f);
        cli_html_text(f, (const char *)sqlite3_column_text(q, 2));
        fprintf(f, "</td><td>%.3f</td><td>", sqlite3_column_double(q, 3));
        cli_html_text(f, (const char *)sqlite3_column_text(q, 4));
        fputs("</td>", f);
        for (int c = 5; c < 14; c++) {
            fputs("<td>", f);
            if (sqlite3_column_type(q, c) != SQLITE_NULL) fprintf(f, "%.4f", sqlite3_column_double(q, c));
            fputs("</td>", f);
        }
        fputs("</tr>\n", f);
    }
    sqlite3_finalize(q);
    fprintf(f, "</tbody></table>\n<pre id=\"selftest\"></pre>\n<script>\n%s</script>\n</body></html>\n", script);
    int bad = ferror(f) | (fflush(f) != 0) | (fsync(fileno(f)) != 0);
    bad |= fclose(f) != 0;
    if (rc || bad || rename(tmp, path)) {
        if (!rc) cli_error("%s: writing failed: %s", path, strerror(errno));
        remove(tmp);
        return -1;
    }
    return 0;
}
