/* html.c — `salient explain --html`: OUTDIR/index.html, a page of the run's maps that opens
 * offline (plain HTML and CSS, no script, nothing fetched: the originals are copied into
 * OUTDIR/inputs/, the overlays are the run's own files beside the page). One section per input:
 * the original, then every method's overlay with its target, score, IG/KernelSHAP completeness gap
 * (also relative to f(x) - f(baseline)), CAM layer and time (the overlays carry their colour bars:
 * --html turns --colorbar on); a table of the methods' times heads the page. The page is made from
 * OUTDIR/summary.jsonl, the run's own record, so it shows exactly what the run wrote. */
#define _DEFAULT_SOURCE   /* getline, strdup */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"

/* ------------------------------------------------------------------------------------------------ */
/* One summary row                                                                                  */

typedef struct hrow {
    char *input, *stem, *method, *target_label, *predicted_label, *layer;
    int target, rank, predicted;
    double probability, score, gap, delta, seconds;
    int has_gap, has_delta, has_seconds, has_score, has_prob;
} hrow;

static void hrow_free(hrow *r) {
    free(r->input);
    free(r->stem);
    free(r->method);
    free(r->target_label);
    free(r->predicted_label);
    free(r->layer);
}

/* A JSON string at *p (after its opening quote) into a malloc'ed UTF-8 string; *p moves past the
 * closing quote. NULL on a malformed string or out of memory. */
static char *json_str(const char **p) {
    const char *s = *p;
    size_t cap = 64, n = 0;
    char *out = malloc(cap);
    if (!out) return NULL;
    for (;;) {
        unsigned char ch = (unsigned char)*s++;
        if (!ch) { free(out); return NULL; }
        if (ch == '"') break;
        unsigned cp = ch;
        if (ch == '\\') {
            char e = *s++;
            switch (e) {
            case 'n': cp = '\n'; break;
            case 't': cp = '\t'; break;
            case 'r': cp = '\r'; break;
            case 'b': cp = '\b'; break;
            case 'f': cp = '\f'; break;
            case 'u': {
                cp = 0;
                for (int k = 0; k < 4; k++) {
                    char h = *s++;
                    if (!isxdigit((unsigned char)h)) { free(out); return NULL; }
                    cp = cp * 16 + (unsigned)(isdigit((unsigned char)h) ? h - '0' : (tolower((unsigned char)h) - 'a' + 10));
                }
                break;
            }
            case 0: free(out); return NULL;
            default: cp = (unsigned char)e;   /* \" \\ \/ */
            }
        }
        if (n + 4 >= cap) {
            char *o = realloc(out, cap *= 2);
            if (!o) { free(out); return NULL; }
            out = o;
        }
        if (cp < 0x80) out[n++] = (char)cp;
        else if (cp < 0x800) { out[n++] = (char)(0xc0 | cp >> 6); out[n++] = (char)(0x80 | (cp & 0x3f)); }
        else { out[n++] = (char)(0xe0 | cp >> 12); out[n++] = (char)(0x80 | ((cp >> 6) & 0x3f)); out[n++] = (char)(0x80 | (cp & 0x3f)); }
    }
    out[n] = 0;
    *p = s;
    return out;
}

/* Skip one JSON value at *p (number, literal, string, array or object); 0 or -1 when malformed. */
static int json_skip(const char **p) {
    const char *s = *p;
    while (isspace((unsigned char)*s)) s++;
    if (*s == '"') {
        s++;
        char *t = json_str(&s);
        if (!t) return -1;
        free(t);
    } else if (*s == '[' || *s == '{') {
        int depth = 0;
        do {
            if (*s == '"') {
                s++;
                char *t = json_str(&s);
                if (!t) return -1;
                free(t);
                continue;
            }
            if (*s == '[' || *s == '{') depth++;
            else if (*s == ']' || *s == '}') depth--;
            else if (!*s) return -1;
            s++;
        } while (depth > 0);
    } else {
        while (*s && *s != ',' && *s != '}' && !isspace((unsigned char)*s)) s++;
    }
    *p = s;
    return 0;
}

/* One line of summary.jsonl (a flat object) into r; 0, or -1 when it is not such an object. */
static int parse_row(const char *line, hrow *r) {
    memset(r, 0, sizeof *r);
    r->rank = 1;
    const char *s = line;
    while (isspace((unsigned char)*s)) s++;
    if (*s++ != '{') return -1;
    for (;;) {
        while (isspace((unsigned char)*s) || *s == ',') s++;
        if (*s == '}') break;
        if (*s++ != '"') return -1;
        char *key = json_str(&s);
        if (!key) return -1;
        while (isspace((unsigned char)*s)) s++;
        if (*s++ != ':') { free(key); return -1; }
        while (isspace((unsigned char)*s)) s++;
        char **str = !strcmp(key, "input") ? &r->input : !strcmp(key, "stem") ? &r->stem
                   : !strcmp(key, "method") ? &r->method : !strcmp(key, "target_label") ? &r->target_label
                   : !strcmp(key, "predicted_label") ? &r->predicted_label : !strcmp(key, "layer") ? &r->layer : NULL;
        if (str && *s == '"') {
            s++;
            free(*str);
            if (!(*str = json_str(&s))) { free(key); return -1; }
        } else if (*s == '-' || isdigit((unsigned char)*s)) {
            char *end;
            double v = strtod(s, &end);
            s = end;
            if (!strcmp(key, "target")) r->target = (int)v;
            else if (!strcmp(key, "rank")) r->rank = (int)v;
            else if (!strcmp(key, "predicted")) r->predicted = (int)v;
            else if (!strcmp(key, "probability")) r->probability = v, r->has_prob = 1;
            else if (!strcmp(key, "score")) r->score = v, r->has_score = 1;
            else if (!strcmp(key, "completeness_gap")) r->gap = v, r->has_gap = 1;
            else if (!strcmp(key, "delta")) r->delta = v, r->has_delta = 1;
            else if (!strcmp(key, "seconds")) r->seconds = v, r->has_seconds = 1;
        } else if (json_skip(&s)) {
            free(key);
            return -1;
        }
        free(key);
    }
    return r->input && r->method ? 0 : -1;
}

/* ------------------------------------------------------------------------------------------------ */
/* Writing                                                                                          */

void cli_html_text(FILE *f, const char *s) {
    for (; s && *s; s++) {
        switch (*s) {
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '&': fputs("&amp;", f); break;
        case '"': fputs("&quot;", f); break;
        default: fputc(*s, f);
        }
    }
}

/* A relative file name as a URL path: unreserved bytes kept, '/' kept, the rest %-encoded. */
static void html_url(FILE *f, const char *s) {
    for (; s && *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (isalnum(ch) || strchr("-._~/", ch)) fputc(ch, f);
        else fprintf(f, "%%%02X", ch);
    }
}

static const char *base_name(const char *p) {
    const char *b = strrchr(p, '/');
    return b ? b + 1 : p;
}

static int ends_with_ci(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    if (a < b) return 0;
    for (size_t i = 0; i < b; i++)
        if (tolower((unsigned char)s[a - b + i]) != tolower((unsigned char)suf[i])) return 0;
    return 1;
}

/* Copy src to dst (whole, or not at all); 0 or -1 with errno's reason in why. */
static int copy_file(const char *src, const char *dst, char *why, size_t len) {
    FILE *in = fopen(src, "rb");
    if (!in) { snprintf(why, len, "%s: %s", src, strerror(errno)); return -1; }
    sal_io_atomic a = {0};
    sal_error err = {0};
    if (sal_io_atomic_open(dst, &a, &err)) { fclose(in); snprintf(why, len, "%s", err.msg); return -1; }
    char buf[1 << 16];
    size_t n;
    int ok = 1;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        if (fwrite(buf, 1, n, a.f) != n) { ok = 0; break; }
    if (ferror(in)) ok = 0;
    fclose(in);
    if (sal_io_atomic_commit(dst, &a, ok, &err) || !ok) {
        snprintf(why, len, "%.3000s: %.1000s", dst, err.msg[0] ? err.msg : "copy failed");
        return -1;
    }
    return 0;
}

/* The longest folder prefix ("a/b/") all inputs share, for headings relative to it. */
static size_t common_dir(hrow *rows, int n) {
    if (n == 0) return 0;
    size_t len = strlen(rows[0].input);
    for (int i = 1; i < n; i++) {
        size_t k = 0;
        while (k < len && rows[i].input[k] && rows[i].input[k] == rows[0].input[k]) k++;
        len = k;
    }
    while (len > 0 && rows[0].input[len - 1] != '/') len--;
    return len;
}

static const char *css =
    "body{font-family:system-ui,sans-serif;margin:1.5em;background:#fafafa;color:#222}\n"
    "h1{font-size:1.4em;margin-bottom:.2em}\n"
    "p.note{color:#555;margin-top:0}\n"
    "table.times{border-collapse:collapse;margin:.6em 0 1em;font-size:.9em}\n"
    "table.times td,table.times th{border:1px solid #ddd;padding:.2em .6em;text-align:right}\n"
    "table.times td:first-child,table.times th:first-child{text-align:left}\n"
    "section.input{background:#fff;border:1px solid #ddd;border-radius:6px;padding:.8em 1em;margin:1em 0}\n"
    "section.input h2{font-size:1.05em;margin:0 0 .6em;font-weight:600}\n"
    "section.input h2 span.pred{font-weight:normal;color:#555}\n"
    "div.row{display:flex;flex-wrap:wrap;gap:12px;align-items:flex-start}\n"
    "figure{margin:0;width:224px}\n"
    "figure img{width:224px;height:auto;display:block;border:1px solid #ccc;background:#eee}\n"
    "figure.original img{border-color:#333}\n"
    "figure div.missing{width:222px;height:160px;border:1px dashed #bbb;color:#888;display:flex;"
    "align-items:center;justify-content:center;text-align:center;font-size:.85em}\n"
    "figcaption{font-size:.8em;line-height:1.35;margin-top:4px;word-break:break-word}\n"
    "figcaption b{font-size:1.1em}\n"
    "figcaption span.extra{color:#666}\n";

static void class_text(FILE *f, int k, const char *label) {
    if (label && *label) { cli_html_text(f, label); fprintf(f, " (%d)", k); }
    else fprintf(f, "class %d", k);
}

int cli_html_write(const char *outdir) {
    char path[4200], why[6000];
    snprintf(path, sizeof path, "%s/summary.jsonl", outdir);
    FILE *in = fopen(path, "r");
    if (!in) { cli_error("--html: %s: %s", path, strerror(errno)); return -1; }
    hrow *rows = NULL;
    int n = 0, cap = 0, rc = -1, lineno = 0;
    char *line = NULL;
    size_t lcap = 0;
    ssize_t got;
    while ((got = getline(&line, &lcap, in)) > 0) {
        lineno++;
        if (got <= 1) continue;
        if (n == cap) {
            hrow *v = realloc(rows, sizeof(hrow) * (size_t)(cap = cap ? 2 * cap : 64));
            if (!v) { cli_error("--html: out of memory"); goto done; }
            rows = v;
        }
        if (parse_row(line, &rows[n])) {
            hrow_free(&rows[n]);
            cli_error("--html: %s:%d: not a summary row", path, lineno);
            goto done;
        }
        if (!rows[n].stem) rows[n].stem = strdup(base_name(rows[n].input));
        n++;
    }
    if (n == 0) { cli_error("--html: %s: no rows", path); goto done; }

    /* the originals, copied beside the page (inputs/<name>, unique), for the inputs browsers show */
    char **orig = calloc((size_t)n, sizeof(char *));
    if (!orig) { cli_error("--html: out of memory"); goto done; }
    snprintf(path, sizeof path, "%s/inputs", outdir);
    int made_dir = 0;
    for (int i = 0; i < n; i++) {
        const char *inp = rows[i].input;
        int first = 1;
        for (int j = 0; j < i && first; j++) first = strcmp(rows[j].input, inp) || strcmp(rows[j].stem, rows[i].stem);
        if (!first) continue;
        if (!(ends_with_ci(inp, ".png") || ends_with_ci(inp, ".jpg") || ends_with_ci(inp, ".jpeg") ||
              ends_with_ci(inp, ".bmp")))
            continue;
        if (!made_dir && mkdir(path, 0777) && errno != EEXIST) {
            cli_error("--html: %s: cannot create: %s", path, strerror(errno));
            break;
        }
        made_dir = 1;
        /* named after the stem, which is unique within the run */
        const char *dot = strrchr(inp, '.');
        char rel[1200], dst[5400];
        snprintf(rel, sizeof rel, "inputs/%s%s", rows[i].stem, dot ? dot : "");
        snprintf(dst, sizeof dst, "%s/%s", outdir, rel);
        if (copy_file(inp, dst, why, sizeof why)) { cli_error("--html: note: original not shown: %s", why); continue; }
        orig[i] = strdup(rel);
    }

    snprintf(path, sizeof path, "%s/index.html", outdir);
    sal_io_atomic page = {0};
    sal_error err = {0};
    if (sal_io_atomic_open(path, &page, &err)) { cli_error("--html: %s", err.msg); goto done_orig; }
    FILE *f = page.f;
    const size_t common = common_dir(rows, n);
    fputs("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>salient explain — ", f);
    cli_html_text(f, base_name(outdir));
    fprintf(f, "</title>\n<style>\n%s</style>\n</head>\n<body>\n<h1>salient explain — ", css);
    cli_html_text(f, base_name(outdir));
    fputs("</h1>\n<p class=\"note\">", f);
    int n_inputs = 0;
    for (int i = 0; i < n; i++) {
        int first = 1;
        for (int j = 0; j < i && first; j++) first = strcmp(rows[j].input, rows[i].input) || strcmp(rows[j].stem, rows[i].stem);
        n_inputs += first;
    }
    fprintf(f, "%d input%s", n_inputs, n_inputs == 1 ? "" : "s");
    if (common) {
        fputs(" from <code>", f);
        char dir[4096];
        snprintf(dir, sizeof dir, "%.*s", (int)common, rows[0].input);
        cli_html_text(f, dir);
        fputs("</code> (headings are relative to it)", f);
    }
    fputs(". Overlays: the map over the photo at the photo's resolution (the part the model's centre "
          "crop cut away is darkened); each map is scaled to its own range, whose values the bar under it "
          "gives. "
          "Numbers: summary.csv, summary.jsonl.</p>\n", f);

    /* the methods' times */
    fputs("<table class=\"times\"><tr><th>method</th><th>maps</th><th>seconds</th><th>s per map</th></tr>\n", f);
    for (int i = 0; i < n; i++) {
        int first = 1;
        for (int j = 0; j < i && first; j++) first = strcmp(rows[j].method, rows[i].method);
        if (!first) continue;
        double total = 0;
        int count = 0;
        for (int j = i; j < n; j++)
            if (!strcmp(rows[j].method, rows[i].method)) { total += rows[j].seconds; count++; }
        fputs("<tr><td>", f);
        cli_html_text(f, rows[i].method);
        fprintf(f, "</td><td>%d</td><td>%.2f</td><td>%.3f</td></tr>\n", count, total, total / count);
    }
    fputs("</table>\n", f);

    /* one section per input, in the summary's order */
    for (int i = 0; i < n; i++) {
        int first = 1;
        for (int j = 0; j < i && first; j++) first = strcmp(rows[j].input, rows[i].input) || strcmp(rows[j].stem, rows[i].stem);
        if (!first) continue;
        int topk = 0;
        for (int j = i; j < n; j++)
            if (!strcmp(rows[j].input, rows[i].input) && !strcmp(rows[j].stem, rows[i].stem) && rows[j].rank > 1) topk = 1;
        fputs("<section class=\"input\"><h2>", f);
        cli_html_text(f, rows[i].input + common);
        fputs(" <span class=\"pred\">— predicted ", f);
        class_text(f, rows[i].predicted, rows[i].predicted_label);
        if (rows[i].has_prob) fprintf(f, ", p = %.3f", rows[i].probability);
        fputs("</span></h2>\n<div class=\"row\">\n<figure class=\"original\">", f);
        if (orig[i]) {
            fputs("<img src=\"", f);
            html_url(f, orig[i]);
            fputs("\" alt=\"input\">", f);
        } else {
            fprintf(f, "<div class=\"missing\">%s</div>",
                    ends_with_ci(rows[i].input, ".npy") ? "preprocessed .npy input (no photo)" : "original not shown");
        }
        fputs("<figcaption><b>input</b><br>", f);
        cli_html_text(f, base_name(rows[i].input));
        fputs("</figcaption></figure>\n", f);
        for (int j = i; j < n; j++) {
            hrow *r = &rows[j];
            if (strcmp(r->input, rows[i].input) || strcmp(r->stem, rows[i].stem)) continue;
            char name[2400], file[6800];
            snprintf(name, sizeof name, "%s.%s", r->stem, r->method);
            if (topk) snprintf(name + strlen(name), sizeof name - strlen(name), ".top%d", r->rank);
            snprintf(name + strlen(name), sizeof name - strlen(name), ".png");
            snprintf(file, sizeof file, "%s/%s", outdir, name);
            struct stat sb;
            fputs("<figure>", f);
            if (!stat(file, &sb)) {
                fputs("<img src=\"", f);
                html_url(f, name);
                fputs("\" alt=\"", f);
                cli_html_text(f, r->method);
                fputs("\">", f);
            } else {
                fputs("<div class=\"missing\">overlay missing</div>", f);
            }
            fputs("<figcaption><b>", f);
            cli_html_text(f, r->method);
            fputs("</b><br>target ", f);
            class_text(f, r->target, r->target_label);
            if (r->has_score) fprintf(f, "<br>score %.4g", r->score);
            fputs("<br><span class=\"extra\">", f);
            if (r->has_gap) {
                fprintf(f, "completeness gap %.3g", r->gap);
                if (r->has_delta && r->delta != 0)
                    fprintf(f, " (%.1f%% of f(x) − f(baseline) = %.4g)", 100.0 * fabs(r->gap / r->delta), r->delta);
                fputs("<br>", f);
            }
            if (r->layer && *r->layer) { fputs("layer ", f); cli_html_text(f, r->layer); fputs("<br>", f); }
            if (r->has_seconds) fprintf(f, "%.2f s", r->seconds);
            fputs("</span></figcaption></figure>\n", f);
        }
        fputs("</div></section>\n", f);
    }
    fputs("</body>\n</html>\n", f);
    int ok = !ferror(f);
    if (sal_io_atomic_commit(path, &page, ok, &err) || !ok) {
        cli_error("--html: %s: %s", path, err.msg[0] ? err.msg : "write failed");
        goto done_orig;
    }
    rc = 0;
done_orig:
    for (int i = 0; i < n; i++) free(orig[i]);
    free(orig);
done:
    fclose(in);
    free(line);
    for (int i = 0; i < n; i++) hrow_free(&rows[i]);
    free(rows);
    return rc;
}
