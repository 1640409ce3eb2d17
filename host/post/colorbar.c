/* colorbar.c — a colour bar strip for overlays (sal_colorbar in post.h): the colormap as a bar and
 * the values its ends stand for, written with a 5x7 pixel font of our own (digits, '.', '-', '+',
 * 'e'). Drawn on the host: the strip depends on the colormap and two numbers, not on the map. */
#include <stdio.h>
#include <string.h>

#include "post/post.h"

/* 5x7 glyphs, one byte per row, bit 4 the leftmost pixel. */
static const char glyph_chars[] = "0123456789.-+e";
static const uint8_t glyphs[][7] = {
    {0x0e, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0e},   /* 0 */
    {0x04, 0x0c, 0x04, 0x04, 0x04, 0x04, 0x0e},   /* 1 */
    {0x0e, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1f},   /* 2 */
    {0x1f, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0e},   /* 3 */
    {0x02, 0x06, 0x0a, 0x12, 0x1f, 0x02, 0x02},   /* 4 */
    {0x1f, 0x10, 0x1e, 0x01, 0x01, 0x11, 0x0e},   /* 5 */
    {0x06, 0x08, 0x10, 0x1e, 0x11, 0x11, 0x0e},   /* 6 */
    {0x1f, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08},   /* 7 */
    {0x0e, 0x11, 0x11, 0x0e, 0x11, 0x11, 0x0e},   /* 8 */
    {0x0e, 0x11, 0x11, 0x0f, 0x01, 0x02, 0x0c},   /* 9 */
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x0c, 0x0c},   /* . */
    {0x00, 0x00, 0x00, 0x1f, 0x00, 0x00, 0x00},   /* - */
    {0x00, 0x04, 0x04, 0x1f, 0x04, 0x04, 0x00},   /* + */
    {0x00, 0x00, 0x0e, 0x11, 0x1f, 0x10, 0x0e},   /* e */
};

/* about 1/26 of the width per line of text: readable also when a page shows the picture small */
static int font_scale(int w) { return (w + 90) / 180 > 1 ? (w + 90) / 180 : 1; }

int sal_colorbar_height(int w) {
    const int s = font_scale(w);
    return 4 * s + 10 * s + 3 * s + 7 * s + 4 * s;   /* margin, bar, gap, text, margin */
}

/* text at (x, y) (its top left), scale s, black, clipped to the strip (w, h) */
static void draw_text(uint8_t *out, int w, int h, int x, int y, int s, const char *text) {
    for (const char *c = text; *c; c++, x += 6 * s) {
        const char *at = strchr(glyph_chars, *c);
        if (!at || !*c) continue;   /* a character without a glyph: a space */
        const uint8_t *g = glyphs[at - glyph_chars];
        for (int row = 0; row < 7; row++)
            for (int col = 0; col < 5; col++) {
                if (!(g[row] >> (4 - col) & 1)) continue;
                for (int dy = 0; dy < s; dy++)
                    for (int dx = 0; dx < s; dx++) {
                        int X = x + col * s + dx, Y = y + row * s + dy;
                        if (X >= 0 && X < w && Y >= 0 && Y < h) memset(out + 3 * ((size_t)Y * w + X), 0, 3);
                    }
            }
    }
}

static int text_width(const char *t, int s) { return (int)strlen(t) * 6 * s - s; }

sal_status sal_colorbar(uint8_t *out, int w, sal_colormap cm, int signed_map, float lo, float hi) {
    const uint8_t *table = sal_colormap_table(cm);
    if (!out || w < 32 || !table) return SAL_ERR_INVALID_ARG;
    const int s = font_scale(w), h = sal_colorbar_height(w);
    const int margin = 4 * s, bar_top = 4 * s, bar_h = 10 * s, text_top = bar_top + bar_h + 3 * s;
    memset(out, 255, (size_t)h * w * 3);
    const int x0 = margin, x1 = w - margin;   /* the bar spans [x0, x1) */
    for (int x = x0; x < x1; x++) {
        /* pixel centre x + 0.5 along the bar: t from 0 at its left edge to 1 at its right */
        float t = ((float)(x - x0) + 0.5f) / (float)(x1 - x0);
        uint8_t rgb[3];
        sal_colormap_rgb(cm, t, rgb);
        for (int y = bar_top; y < bar_top + bar_h; y++) memcpy(out + 3 * ((size_t)y * w + x), rgb, 3);
    }
    char a[32], b[32];
    snprintf(a, sizeof a, "%.3g", (double)lo);
    snprintf(b, sizeof b, "%.3g", (double)hi);
    if (signed_map && hi > 0) snprintf(b, sizeof b, "+%.3g", (double)hi);
    draw_text(out, w, h, x0, text_top, s, a);
    draw_text(out, w, h, x1 - text_width(b, s), text_top, s, b);
    if (signed_map) draw_text(out, w, h, (x0 + x1) / 2 - text_width("0", s) / 2, text_top, s, "0");
    return SAL_OK;
}
