/* audit_overlay.c — the pictures of `salient audit`: the map each record measures (audit_metric_map),
 * a small thumbnail of its overlay for every record (OUT/thumbs/<file>.<method>.png, always) and the
 * full-size overlay (OUT/overlays/<file>.<method>.png: every record with --overlays all, the
 * images behind the findings' flags with --overlays flagged, made again from the image once the
 * flags are known). <file> is the input's path relative to DATA, so the names are the same in every
 * shard and a merge can gather them. Every file is written to a temporary name and renamed (a
 * killed run leaves no truncated picture; audit_clean_tree removes the temporaries it left). */
#define _DEFAULT_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "audit.h"
#include "post/post.h"

void audit_metric_map(sal_method m, const sal_maps *mp, int j, int h, int w, float *map /* (h,w) */) {
    const size_t hw = (size_t)h * (size_t)w;
    if (sal_method_is_cam(m) && mp->upsampled) {
        memcpy(map, mp->upsampled + j * hw, sizeof(float) * hw);
    } else if (m == SAL_M_OCCLUSION) {
        memcpy(map, mp->attr + (size_t)j * (size_t)sal_maps_per_image(mp), sizeof(float) * hw);
    } else {
        int c = (int)mp->dims[0];
        sal_reduce_channels(mp->attr + (size_t)j * (size_t)sal_maps_per_image(mp), c, h, w, SAL_REDUCE_ABS_MAX, map, NULL);
    }
    for (size_t i = 0; i < hw; i++) map[i] = map[i] > 0 ? map[i] : 0;   /* ReLU (NaN -> 0) */
}

void audit_picture_path(char *buf, size_t len, const char *out_dir, const char *sub, const char *rel, const char *method) {
    snprintf(buf, len, "%s/%s/%s.%s.png", out_dir, sub, rel, method);
}

/* Create the folders above path (mkdir -p of its dirname). */
static int make_parents(const char *path, char *msg, size_t len) {
    char p[4400];
    snprintf(p, sizeof p, "%s", path);
    char *slash = strrchr(p, '/');
    if (!slash) return 0;
    *slash = 0;
    for (char *c = p + 1;; c++) {
        if (*c && *c != '/') continue;
        char saved = *c;
        *c = 0;
        if (mkdir(p, 0777) && errno != EEXIST) {
            snprintf(msg, len, "%s: cannot create this folder: %s", p, strerror(errno));
            return -1;
        }
        *c = saved;
        if (!saved) break;
    }
    return 0;
}

/* Area-average src (h,w,c) uint8 into dst (th,tw,c). */
static void downscale(const uint8_t *src, int w, int h, int c, uint8_t *dst, int tw, int th) {
    for (int Y = 0; Y < th; Y++) {
        int y0 = (int)((int64_t)Y * h / th), y1 = (int)((int64_t)(Y + 1) * h / th);
        if (y1 <= y0) y1 = y0 + 1;
        for (int X = 0; X < tw; X++) {
            int x0 = (int)((int64_t)X * w / tw), x1 = (int)((int64_t)(X + 1) * w / tw);
            if (x1 <= x0) x1 = x0 + 1;
            for (int k = 0; k < c; k++) {
                uint32_t s = 0;
                for (int y = y0; y < y1; y++)
                    for (int x = x0; x < x1; x++) s += src[((size_t)y * w + x) * c + k];
                uint32_t n = (uint32_t)(y1 - y0) * (uint32_t)(x1 - x0);
                dst[((size_t)Y * tw + X) * c + k] = (uint8_t)((s + n / 2) / n);
            }
        }
    }
}

static int write_png(const char *path, int w, int h, const uint8_t *rgb, char *msg, size_t len) {
    if (make_parents(path, msg, len)) return -1;
    sal_error err = {0};
    if (sal_png_write_rgb(path, w, h, rgb, &err)) {
        snprintf(msg, len, "%s", err.msg);
        return -1;
    }
    return 0;
}

int audit_write_pictures(sal_session *s, sal_method m, const float *map, int h, int w, const sal_image *orig,
                         const float rect[4], const char *out_dir, const char *rel, const char *method, int thumb,
                         int full, char *msg, size_t len) {
    sal_render_opts ro;   /* the non-negative map the metrics measure, with explain's defaults */
    cli_render_defaults(m, 0, &ro);
    sal_error err = {0};
    char path[4400];
    int rc = -1;
    uint8_t *pic = NULL, *small = NULL, *thumb_rgb = NULL;
    /* the picture at full size: the overlay on the original, or (.npy inputs) the bare heatmap */
    const int pw = orig ? orig->w : w, ph = orig ? orig->h : h;
    const double f = pw > ph ? (double)AUDIT_THUMB_MAX / pw : (double)AUDIT_THUMB_MAX / ph;
    const int tw = f < 1 ? (int)lround(pw * f) > 0 ? (int)lround(pw * f) : 1 : pw;
    const int th = f < 1 ? (int)lround(ph * f) > 0 ? (int)lround(ph * f) : 1 : ph;
    if (full || !orig) {
        if (!(pic = malloc((size_t)pw * ph * 3))) { snprintf(msg, len, "%s: out of memory for its overlay", rel); goto out; }
        if (sal_render(s, map, 1, h, w, &ro, orig, rect, NULL, orig ? NULL : pic, orig ? pic : NULL, &err)) {
            snprintf(msg, len, "%s: %s", rel, err.msg);
            goto out;
        }
        if (full) {
            audit_picture_path(path, sizeof path, out_dir, "overlays", rel, method);
            if (write_png(path, pw, ph, pic, msg, len)) goto out;
        }
    }
    if (thumb) {
        if (!(thumb_rgb = malloc((size_t)tw * th * 3))) { snprintf(msg, len, "%s: out of memory for its thumbnail", rel); goto out; }
        if (pic) {
            downscale(pic, pw, ph, 3, thumb_rgb, tw, th);
        } else {   /* the overlay drawn on the original made small: cheaper than the full one */
            sal_image sm = {tw, th, orig->c, NULL};
            if (!(small = malloc((size_t)tw * th * (size_t)orig->c))) { snprintf(msg, len, "%s: out of memory", rel); goto out; }
            downscale(orig->pix, orig->w, orig->h, orig->c, small, tw, th);
            sm.pix = small;
            const float sx = (float)tw / orig->w, sy = (float)th / orig->h;
            const float r2[4] = {rect[0] * sx, rect[1] * sy, rect[2] * sx, rect[3] * sy};
            if (sal_render(s, map, 1, h, w, &ro, &sm, r2, NULL, NULL, thumb_rgb, &err)) {
                snprintf(msg, len, "%s: %s", rel, err.msg);
                goto out;
            }
        }
        audit_picture_path(path, sizeof path, out_dir, "thumbs", rel, method);
        if (write_png(path, tw, th, thumb_rgb, msg, len)) goto out;
    }
    rc = 0;
out:
    free(pic);
    free(small);
    free(thumb_rgb);
    return rc;
}

/* ------------------------------------------------------------------------------------------------ */
/* --overlays flagged: the flags' images explained again, one at a time                             */

int audit_overlay_flagged(void *user, const char *rel, const char *method) {
    audit_overlay_ctx *ctx = user;
    char path[4400], msg[4600];
    audit_picture_path(path, sizeof path, ctx->out_dir, "overlays", rel, method);
    if (access(path, F_OK) == 0) return 0;   /* made already (an earlier run, another flag) */
    cli_model *cm = ctx->cm;
    sal_method m;
    if (sal_method_parse(method, &m)) return 0;
    const int H = cm->h, W = cm->w;
    if (sal_session_plan(cm->s, 1, H, W)) {   /* a merge's session has not run yet: the classes come with a plan */
        cli_error("%s", sal_session_error(cm->s));
        return -1;
    }
    const int K = sal_session_num_classes(cm->s);
    float *x = malloc(sizeof(float) * (size_t)cm->c * H * W);   /* (1,C,H,W) */
    float *logits = malloc(sizeof(float) * (size_t)K), *map = malloc(sizeof(float) * (size_t)H * W);
    sal_image orig = {0};
    sal_maps mp = {0};
    int rc = -1;
    char in[4400];
    snprintf(in, sizeof in, "%s/%s", ctx->data, rel);
    if (!x || !logits || !map) { cli_error("out of memory for an overlay"); goto out; }
    if (cli_load_input(cm, in, x, &orig, msg, sizeof msg)) {
        cli_error("%s (no overlay)", msg);
        rc = 0;   /* the input went away since its record: its row stays, without a picture */
        goto out;
    }
    if (sal_forward(cm->s, x, 1, H, W, logits)) { cli_error("%s: %s", in, sal_session_error(cm->s)); goto out; }
    int pred = 0;
    for (int k = 1; k < K; k++) if (logits[k] > logits[pred]) pred = k;
    sal_explain_opts o = sal_explain_opts_default(m);
    o.layer = ctx->layer;
    if (sal_explain(cm->s, &o, x, 1, H, W, &pred, &mp)) { cli_error("%s on %s: %s", method, in, sal_session_error(cm->s)); goto out; }
    audit_metric_map(m, &mp, 0, H, W, map);
    float rect[4] = {0, 0, (float)W, (float)H};
    if (orig.pix) sal_prep_rect(orig.w, orig.h, &cm->prep, rect);
    if (audit_write_pictures(cm->s, m, map, H, W, orig.pix ? &orig : NULL, rect, ctx->out_dir, rel, method, 0, 1, msg,
                             sizeof msg)) {
        cli_error("%s", msg);
        goto out;
    }
    rc = 0;
out:
    sal_maps_free(&mp);
    sal_image_free(&orig);
    free(x);
    free(logits);
    free(map);
    return rc;
}

/* ------------------------------------------------------------------------------------------------ */
/* Folders of pictures: temporaries of killed runs; a merge's gathering                            */

/* "<anything>.salient-tmp<pid>.<n>": the pid, else 0 (sal_io_atomic_open's names). */
static long temp_owner(const char *name) {
    const char *t = strstr(name, ".salient-tmp");
    if (!t) return 0;
    char *end;
    long pid = strtol(t + 12, &end, 10);
    if (pid <= 0 || *end != '.' || !end[1]) return 0;
    return pid;
}

int audit_clean_tree(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    int removed = 0;
    struct dirent *e;
    char path[4400];
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' && (!e->d_name[1] || (e->d_name[1] == '.' && !e->d_name[2]))) continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat sb;
        if (lstat(path, &sb)) continue;
        if (S_ISDIR(sb.st_mode)) {
            removed += audit_clean_tree(path);
            continue;
        }
        long pid = temp_owner(e->d_name);
        if (pid && pid != (long)getpid() && kill((pid_t)pid, 0) != 0 && S_ISREG(sb.st_mode) && unlink(path) == 0) removed++;
    }
    closedir(d);
    return removed;
}

/* Link (else copy) every file under from/ to the same place under to/ (existing files kept). */
int audit_gather_tree(const char *from, const char *to) {
    DIR *d = opendir(from);
    if (!d) return 0;
    int rc = 0;
    struct dirent *e;
    char src[4400], dst[4400], msg[4600];
    while (!rc && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        snprintf(src, sizeof src, "%s/%s", from, e->d_name);
        snprintf(dst, sizeof dst, "%s/%s", to, e->d_name);
        struct stat sb;
        if (lstat(src, &sb)) continue;
        if (S_ISDIR(sb.st_mode)) {
            rc = audit_gather_tree(src, dst);
            continue;
        }
        if (!S_ISREG(sb.st_mode) || temp_owner(e->d_name) || access(dst, F_OK) == 0) continue;
        if (make_parents(dst, msg, sizeof msg)) { cli_error("%s", msg); rc = -1; break; }
        if (link(src, dst) == 0) continue;
        sal_io_atomic a;
        sal_error err = {0};
        FILE *in = fopen(src, "rb");
        if (!in) { cli_error("%s: cannot read: %s", src, strerror(errno)); rc = -1; break; }
        if (sal_io_atomic_open(dst, &a, &err)) { fclose(in); cli_error("%s", err.msg); rc = -1; break; }
        char buf[65536];
        size_t n;
        while ((n = fread(buf, 1, sizeof buf, in)) > 0) fwrite(buf, 1, n, a.f);
        int ok = !ferror(in);
        fclose(in);
        if (sal_io_atomic_commit(dst, &a, ok, &err)) { cli_error("%s", err.msg[0] ? err.msg : dst); rc = -1; }
    }
    closedir(d);
    return rc;
}
