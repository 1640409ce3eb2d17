/* test_io.c — host/io: image decoding (and refusing damaged files), the preprocessing pipeline
 * against analytic results and an independent full-resize-then-crop reference, PNG writing,
 * .npy reading/writing against bytes written exactly as numpy.save writes them, class labels.
 * Every test works in its own mkdtemp directory, removed by the fixture. */
#include <criterion/criterion.h>

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <stb/stb_image_write.h>

#include "io/io.h"

/* ------------------------------------------------------------------------------------------------ */
/* Fixture and helpers                                                                              */

static char tmp_dir[64];

static void make_tmp_dir(void) {
    strcpy(tmp_dir, "/tmp/sal_test_io_XXXXXX");
    cr_assert_not_null(mkdtemp(tmp_dir), "mkdtemp failed");
}

static void remove_tmp_dir(void) {
    DIR *d = opendir(tmp_dir);
    if (!d) return;
    struct dirent *e;
    char p[512];
    while ((e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        snprintf(p, sizeof p, "%s/%s", tmp_dir, e->d_name);
        unlink(p);
    }
    closedir(d);
    rmdir(tmp_dir);
}

TestSuite(image, .init = make_tmp_dir, .fini = remove_tmp_dir);
TestSuite(preprocess);
TestSuite(npy, .init = make_tmp_dir, .fini = remove_tmp_dir);
TestSuite(labels, .init = make_tmp_dir, .fini = remove_tmp_dir);

/* Path of a file in the test's directory; a few rotating buffers so that calls can be nested. */
static const char *tpath(const char *name) {
    static char bufs[4][512];
    static int next;
    char *b = bufs[next++ % 4];
    snprintf(b, 512, "%s/%s", tmp_dir, name);
    return b;
}

static void write_bytes(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "cannot create %s", path);
    if (n) cr_assert_eq(fwrite(data, 1, n, f), n);
    cr_assert_eq(fclose(f), 0);
}

static uint8_t *read_bytes(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)len + 1);
    cr_assert_eq(fread(b, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    *n = (size_t)len;
    return b;
}

static int count_dir_entries(void) {
    DIR *d = opendir(tmp_dir);
    cr_assert_not_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) n++;
    closedir(d);
    return n;
}

/* Deterministic bytes (64-bit LCG, high bits). */
static uint8_t lcg_byte(uint64_t *s) {
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return (uint8_t)(*s >> 56);
}

/* CRC-32 of the PNG specification, bit by bit (independent of the library's table version). */
static uint32_t crc32_bits(const uint8_t *p, size_t n) {
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
    }
    return ~c;
}

static void put_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}

/* The image load must fail with a message naming the file, and leave the image empty. */
static sal_status expect_image_failure(const char *path) {
    sal_image img = {7, 7, 7, (uint8_t *)&img};
    sal_error e;
    memset(&e, 0, sizeof e);
    sal_status st = sal_image_load(path, &img, &e);
    cr_assert_neq(st, SAL_OK, "%s: load should fail", path);
    cr_assert_not_null(strstr(e.msg, path), "message '%s' does not name %s", e.msg, path);
    cr_assert_null(img.pix);
    cr_assert_eq(img.w, 0);
    sal_image_free(&img);
    return st;
}

/* A small PNG made by stb_image_write, in memory. */
static uint8_t *make_png(int w, int h, int comp, const uint8_t *pix, size_t *n) {
    const char *p = tpath("src.png");
    cr_assert(stbi_write_png(p, w, h, comp, pix, w * comp));
    uint8_t *b = read_bytes(p, n);
    unlink(p);
    return b;
}

/* ------------------------------------------------------------------------------------------------ */
/* Image loading                                                                                    */

Test(image, png_rgb_write_then_load_is_identical) {
    enum { W = 7, H = 5 };
    uint8_t rgb[H * W * 3];
    uint64_t s = 1;
    for (int i = 0; i < H * W * 3; i++) rgb[i] = lcg_byte(&s);
    sal_error e;
    const char *p = tpath("rgb.png");
    cr_assert_eq(sal_png_write_rgb(p, W, H, rgb, &e), SAL_OK, "%s", e.msg);
    cr_assert_eq(count_dir_entries(), 1, "temporary file left behind");
    sal_image img;
    cr_assert_eq(sal_image_load(p, &img, &e), SAL_OK, "%s", e.msg);
    cr_assert_eq(img.w, W);
    cr_assert_eq(img.h, H);
    cr_assert_eq(img.c, 3);
    cr_assert_eq(memcmp(img.pix, rgb, sizeof rgb), 0);
    sal_image_free(&img);
    sal_image_free(&img); /* idempotent */
    sal_image_free(NULL);
}

Test(image, png_rgba_drops_alpha) {
    enum { W = 4, H = 3 };
    uint8_t rgba[H * W * 4];
    uint64_t s = 2;
    for (int i = 0; i < H * W * 4; i++) rgba[i] = lcg_byte(&s);
    const char *p = tpath("rgba.png");
    cr_assert(stbi_write_png(p, W, H, 4, rgba, W * 4));
    sal_image img;
    sal_error e;
    cr_assert_eq(sal_image_load(p, &img, &e), SAL_OK, "%s", e.msg);
    cr_assert_eq(img.c, 3);
    for (int i = 0; i < W * H; i++)
        for (int c = 0; c < 3; c++) cr_assert_eq(img.pix[3 * i + c], rgba[4 * i + c]);
    sal_image_free(&img);
}

Test(image, png_gray_and_gray_alpha_give_one_channel) {
    enum { W = 5, H = 4 };
    uint8_t ga[H * W * 2];
    uint64_t s = 3;
    for (int i = 0; i < H * W * 2; i++) ga[i] = lcg_byte(&s);
    const char *p = tpath("ga.png");
    cr_assert(stbi_write_png(p, W, H, 2, ga, W * 2));
    sal_image img;
    sal_error e;
    cr_assert_eq(sal_image_load(p, &img, &e), SAL_OK, "%s", e.msg);
    cr_assert_eq(img.c, 1);
    for (int i = 0; i < W * H; i++) cr_assert_eq(img.pix[i], ga[2 * i]);
    sal_image_free(&img);

    uint8_t g[H * W];
    for (int i = 0; i < H * W; i++) g[i] = lcg_byte(&s);
    p = tpath("g.png");
    cr_assert(stbi_write_png(p, W, H, 1, g, W));
    cr_assert_eq(sal_image_load(p, &img, &e), SAL_OK, "%s", e.msg);
    cr_assert_eq(img.c, 1);
    cr_assert_eq(memcmp(img.pix, g, sizeof g), 0);
    sal_image_free(&img);
}

Test(image, jpeg_decodes_close_to_the_source) {
    enum { W = 24, H = 16 };
    uint8_t rgb[H * W * 3];
    for (int i = 0; i < W * H; i++) rgb[3 * i] = 200, rgb[3 * i + 1] = 100, rgb[3 * i + 2] = 50;
    const char *p = tpath("c.jpg");
    cr_assert(stbi_write_jpg(p, W, H, 3, rgb, 95));
    sal_image img;
    sal_error e;
    cr_assert_eq(sal_image_load(p, &img, &e), SAL_OK, "%s", e.msg);
    cr_assert_eq(img.w, W);
    cr_assert_eq(img.h, H);
    cr_assert_eq(img.c, 3);
    for (int i = 0; i < W * H * 3; i++)
        cr_assert(abs((int)img.pix[i] - (int)rgb[i]) <= 4, "pixel %d: %d vs %d", i, img.pix[i], rgb[i]);
    sal_image_free(&img);

    uint8_t g[H * W];
    memset(g, 77, sizeof g);
    p = tpath("g.jpg");
    cr_assert(stbi_write_jpg(p, W, H, 1, g, 95));
    cr_assert_eq(sal_image_load(p, &img, &e), SAL_OK, "%s", e.msg);
    cr_assert_eq(img.c, 3); /* stb_image_write always writes 3-component (YCbCr) JPEGs */
    for (int i = 0; i < W * H * 3; i++) cr_assert(abs((int)img.pix[i] - 77) <= 2);
    sal_image_free(&img);
}

Test(image, bmp_round_trip_with_row_padding) {
    enum { W = 5, H = 3 }; /* 15-byte rows are padded to 16 in the file */
    uint8_t rgb[H * W * 3];
    uint64_t s = 4;
    for (int i = 0; i < H * W * 3; i++) rgb[i] = lcg_byte(&s);
    const char *p = tpath("a.bmp");
    cr_assert(stbi_write_bmp(p, W, H, 3, rgb));
    sal_image img;
    sal_error e;
    cr_assert_eq(sal_image_load(p, &img, &e), SAL_OK, "%s", e.msg);
    cr_assert_eq(img.w, W);
    cr_assert_eq(img.h, H);
    cr_assert_eq(img.c, 3);
    cr_assert_eq(memcmp(img.pix, rgb, sizeof rgb), 0);
    sal_image_free(&img);
}

Test(image, pgm_and_ppm_binary_and_ascii) {
    sal_image img;
    sal_error e;
    const char *p = tpath("a.pgm");
    static const uint8_t p5[] = "P5\n# a comment\n3 2\n255\n\x00\x01\x7f\x80\xfe\xff";
    write_bytes(p, p5, sizeof p5 - 1);
    cr_assert_eq(sal_image_load(p, &img, &e), SAL_OK, "%s", e.msg);
    cr_assert_eq(img.w, 3);
    cr_assert_eq(img.h, 2);
    cr_assert_eq(img.c, 1);
    cr_assert_eq(memcmp(img.pix, "\x00\x01\x7f\x80\xfe\xff", 6), 0);
    sal_image_free(&img);

    p = tpath("a.ppm");
    static const uint8_t p6[] = "P6 2 1 255\n\x0a\x14\x1e\x28\x32\x3c";
    write_bytes(p, p6, sizeof p6 - 1);
    cr_assert_eq(sal_image_load(p, &img, &e), SAL_OK, "%s", e.msg);
    cr_assert_eq(img.w, 2);
    cr_assert_eq(img.h, 1);
    cr_assert_eq(img.c, 3);
    cr_assert_eq(memcmp(img.pix, "\x0a\x14\x1e\x28\x32\x3c", 6), 0);
    sal_image_free(&img);

    /* ASCII, maxval 15: samples are rescaled as round(v*255/15) = 17*v. */
    p = tpath("b.pgm");
    const char *p2 = "P2\n2 2 # size\n15\n0 15\n7 20\n";
    write_bytes(p, p2, strlen(p2));
    cr_assert_eq(sal_image_load(p, &img, &e), SAL_OK, "%s", e.msg);
    cr_assert_eq(img.pix[0], 0);
    cr_assert_eq(img.pix[1], 255);
    cr_assert_eq(img.pix[2], 119);
    cr_assert_eq(img.pix[3], 255); /* 20 > maxval is clamped */
    sal_image_free(&img);

    /* 16-bit big-endian samples, maxval 65535: round(v*255/65535). */
    p = tpath("c.pgm");
    static const uint8_t p5w[] = "P5 2 1 65535\n\xff\xff\x80\x00";
    write_bytes(p, p5w, sizeof p5w - 1);
    cr_assert_eq(sal_image_load(p, &img, &e), SAL_OK, "%s", e.msg);
    cr_assert_eq(img.pix[0], 255);
    cr_assert_eq(img.pix[1], 128); /* 32768*255/65535 = 127.5019 -> 128 */
    sal_image_free(&img);
}

Test(image, missing_empty_directory_and_random_bytes_fail) {
    cr_assert_eq(expect_image_failure(tpath("does-not-exist.png")), SAL_ERR_IO);
    cr_assert_eq(expect_image_failure(tmp_dir), SAL_ERR_IO); /* a directory */

    const char *p = tpath("empty.png");
    write_bytes(p, "", 0);
    cr_assert_eq(expect_image_failure(p), SAL_ERR_PARSE);

    uint8_t junk[1000];
    uint64_t s = 5;
    for (int seed = 0; seed < 20; seed++) {
        for (size_t i = 0; i < sizeof junk; i++) junk[i] = lcg_byte(&s);
        p = tpath("junk.png");
        write_bytes(p, junk, sizeof junk);
        expect_image_failure(p);
    }
    p = tpath("text.jpg");
    write_bytes(p, "hello, world\n", 13);
    cr_assert_eq(expect_image_failure(p), SAL_ERR_UNSUPPORTED);
    /* A format stb_image knows but we do not accept. */
    p = tpath("a.gif");
    write_bytes(p, "GIF89a\x01\x00\x01\x00\x00\x00\x00;", 14);
    cr_assert_eq(expect_image_failure(p), SAL_ERR_UNSUPPORTED);
}

Test(image, truncated_png_fails_at_every_cut) {
    enum { W = 16, H = 16 };
    uint8_t rgb[H * W * 3];
    uint64_t s = 6;
    for (int i = 0; i < H * W * 3; i++) rgb[i] = lcg_byte(&s);
    size_t n;
    uint8_t *png = make_png(W, H, 3, rgb, &n);
    const char *p = tpath("cut.png");
    for (size_t cut = 1; cut < n; cut += (cut < 64 ? 1 : 37)) {
        write_bytes(p, png, cut);
        expect_image_failure(p);
    }
    write_bytes(p, png, n - 1);
    cr_assert_eq(expect_image_failure(p), SAL_ERR_PARSE);
    write_bytes(p, png, n - 12); /* exactly the IEND chunk missing */
    cr_assert_eq(expect_image_failure(p), SAL_ERR_PARSE);
    write_bytes(p, png, n); /* and the whole file loads */
    sal_image img;
    sal_error e;
    cr_assert_eq(sal_image_load(p, &img, &e), SAL_OK, "%s", e.msg);
    sal_image_free(&img);
    free(png);
}

Test(image, corrupt_png_bytes_fail) {
    enum { W = 16, H = 16 };
    uint8_t rgb[H * W * 3];
    uint64_t s = 7;
    for (int i = 0; i < H * W * 3; i++) rgb[i] = lcg_byte(&s);
    size_t n;
    uint8_t *png = make_png(W, H, 3, rgb, &n);
    cr_assert_eq(memcmp(png + 12, "IHDR", 4), 0);
    const char *p = tpath("bad.png");
    /* IHDR: width, height, bit depth, colour type, each flipped (CRC no longer matches). */
    size_t ihdr_bytes[] = {16 + 2, 16 + 3, 20 + 3, 24, 25};
    for (size_t k = 0; k < sizeof ihdr_bytes / sizeof *ihdr_bytes; k++) {
        uint8_t *b = malloc(n);
        memcpy(b, png, n);
        b[ihdr_bytes[k]] ^= 0x5a;
        write_bytes(p, b, n);
        cr_assert_eq(expect_image_failure(p), SAL_ERR_PARSE);
        free(b);
    }
    /* IDAT data: flip bytes at several places inside the compressed stream. */
    size_t pos = 8, idat = 0, idat_len = 0;
    while (pos + 8 <= n) {
        uint32_t len = (uint32_t)png[pos] << 24 | png[pos + 1] << 16 | png[pos + 2] << 8 | png[pos + 3];
        if (memcmp(png + pos + 4, "IDAT", 4) == 0) {
            idat = pos + 8;
            idat_len = len;
            break;
        }
        pos += 12 + len;
    }
    cr_assert(idat_len > 8, "no IDAT found");
    for (size_t off = 0; off < idat_len; off += idat_len / 7 + 1) {
        uint8_t *b = malloc(n);
        memcpy(b, png, n);
        b[idat + off] ^= 0xff;
        write_bytes(p, b, n);
        cr_assert_eq(expect_image_failure(p), SAL_ERR_PARSE);
        free(b);
    }
    /* Flipped signature byte: no longer recognised as PNG at all. */
    uint8_t *b = malloc(n);
    memcpy(b, png, n);
    b[1] ^= 0x20;
    write_bytes(p, b, n);
    expect_image_failure(p);
    free(b);
    free(png);
}

/* A PNG whose IHDR says width x height, with a valid CRC (so only the size is wrong). */
static void write_png_with_size(const char *p, const uint8_t *png, size_t n, uint32_t w, uint32_t h) {
    uint8_t *b = malloc(n);
    memcpy(b, png, n);
    put_be32(b + 16, w);
    put_be32(b + 20, h);
    put_be32(b + 29, crc32_bits(b + 12, 17)); /* type + 13 data bytes */
    write_bytes(p, b, n);
    free(b);
}

Test(image, png_zero_and_absurd_sizes_fail) {
    uint8_t px[4 * 4 * 3] = {0};
    size_t n;
    uint8_t *png = make_png(4, 4, 3, px, &n);
    /* The unmodified header's CRC matches our independent CRC: the helper is right. */
    cr_assert_eq(crc32_bits(png + 12, 17),
                 (uint32_t)png[29] << 24 | png[30] << 16 | png[31] << 8 | png[32]);
    const char *p = tpath("size.png");
    write_png_with_size(p, png, n, 0, 4);
    cr_assert_eq(expect_image_failure(p), SAL_ERR_PARSE);
    write_png_with_size(p, png, n, 20000, 4);
    cr_assert_eq(expect_image_failure(p), SAL_ERR_UNSUPPORTED);
    write_png_with_size(p, png, n, 4, 100000);
    cr_assert_eq(expect_image_failure(p), SAL_ERR_UNSUPPORTED);
    free(png);
}

Test(image, truncated_and_corrupt_jpeg_fail) {
    enum { W = 32, H = 32 };
    uint8_t rgb[H * W * 3];
    uint64_t s = 8;
    for (int i = 0; i < H * W * 3; i++) rgb[i] = lcg_byte(&s);
    const char *src = tpath("src.jpg");
    cr_assert(stbi_write_jpg(src, W, H, 3, rgb, 90));
    size_t n;
    uint8_t *jpg = read_bytes(src, &n);
    cr_assert_eq(jpg[n - 2], 0xFF);
    cr_assert_eq(jpg[n - 1], 0xD9);
    const char *p = tpath("cut.jpg");
    size_t cuts[] = {1, 2, 3, 4, 10, 50, 100, n / 3, n / 2, n - 50, n - 3, n - 2, n - 1};
    for (size_t k = 0; k < sizeof cuts / sizeof *cuts; k++) {
        write_bytes(p, jpg, cuts[k]);
        expect_image_failure(p);
    }
    /* Cut inside the last scan or before EOI: our structural check names the problem. */
    size_t late_cuts[] = {n / 2, n - 2};
    for (size_t k = 0; k < 2; k++) {
        write_bytes(p, jpg, late_cuts[k]);
        sal_image img;
        sal_error e;
        cr_assert_eq(sal_image_load(p, &img, &e), SAL_ERR_PARSE);
        cr_assert_not_null(strstr(e.msg, "truncated JPEG"), "%s", e.msg);
    }
    /* A declared segment length running past the end of the file. */
    uint8_t *b = malloc(n);
    memcpy(b, jpg, n);
    cr_assert_eq(b[2], 0xFF);
    b[4] = 0xFF, b[5] = 0xF0;
    write_bytes(p, b, n);
    cr_assert_eq(expect_image_failure(p), SAL_ERR_PARSE);
    free(b);
    free(jpg);
}

Test(image, truncated_bmp_and_pnm_fail) {
    enum { W = 9, H = 7 };
    uint8_t rgb[H * W * 3];
    memset(rgb, 100, sizeof rgb);
    const char *src = tpath("src.bmp");
    cr_assert(stbi_write_bmp(src, W, H, 3, rgb));
    size_t n;
    uint8_t *bmp = read_bytes(src, &n);
    const char *p = tpath("cut.bmp");
    size_t cuts[] = {1, 2, 10, 20, 30, 54, n / 2, n - 1};
    for (size_t k = 0; k < sizeof cuts / sizeof *cuts; k++) {
        write_bytes(p, bmp, cuts[k]);
        expect_image_failure(p);
    }
    free(bmp);

    p = tpath("cut.pgm");
    const char *cut_pnm[] = {"P5\n", "P5\n3 2", "P5\n3 2\n255\n\x01\x02", "P5\n3 2\n255",
                             "P6 2 2 255\n\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b",
                             "P2 2 2 255 1 2 3", "P2 2 2 255 1 2 x 4", "P5 0 4 255\n",
                             "P5 3 2 0\n\x01\x02\x03\x04\x05\x06", "P5 99999 2 255\n"};
    for (size_t k = 0; k < sizeof cut_pnm / sizeof *cut_pnm; k++) {
        write_bytes(p, cut_pnm[k], strlen(cut_pnm[k]));
        expect_image_failure(p);
    }
}

Test(image, png_write_errors_leave_nothing_behind) {
    uint8_t rgb[3] = {1, 2, 3};
    sal_error e;
    const char *p = tpath("no-such-dir/x.png");
    cr_assert_eq(sal_png_write_rgb(p, 1, 1, rgb, &e), SAL_ERR_IO);
    cr_assert_not_null(strstr(e.msg, p), "%s", e.msg);
    p = tpath("x.png");
    cr_assert_eq(sal_png_write_rgb(p, 0, 1, rgb, &e), SAL_ERR_INVALID_ARG);
    cr_assert_not_null(strstr(e.msg, p), "%s", e.msg);
    cr_assert_eq(sal_png_write_rgb(p, 1, 1, NULL, NULL), SAL_ERR_INVALID_ARG);
    cr_assert_eq(count_dir_entries(), 0);
}

/* ------------------------------------------------------------------------------------------------ */
/* Preprocessing                                                                                    */

static sal_prep_opts plain_opts(int oh, int ow, int rs, int channels) {
    sal_prep_opts o = sal_prep_opts_gray(oh, ow);
    o.resize_shorter = rs;
    o.channels = channels;
    o.scale = 1.0f;
    return o;
}

/* (h,w,c) image with pixel value f(x,y,c). */
typedef int (*pix_fn)(int x, int y, int c);
static sal_image make_image(int w, int h, int c, pix_fn f) {
    sal_image img = {w, h, c, malloc((size_t)w * h * c)};
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int k = 0; k < c; k++) {
                int v = f(x, y, k);
                cr_assert(v >= 0 && v <= 255);
                img.pix[((size_t)y * w + x) * c + k] = (uint8_t)v;
            }
    return img;
}

/* The source coordinate of the half-pixel-centre map, clamped: the analytic position at which a
 * linear ramp is sampled. */
static double src_coord(int d, int in, int out) {
    double s = (d + 0.5) * in / out - 0.5;
    return s < 0 ? 0 : s > in - 1 ? in - 1 : s;
}

static int ramp_x3_10(int x, int y, int c) { (void)y, (void)c; return 3 * x + 10; }

Test(preprocess, constant_image_stays_constant) {
    static const int rgbv[3] = {10, 20, 230};
    sal_image img = {37, 23, 3, malloc(37 * 23 * 3)};
    for (int i = 0; i < 37 * 23; i++)
        for (int c = 0; c < 3; c++) img.pix[3 * i + c] = (uint8_t)rgbv[c];
    sal_prep_opts o = sal_prep_opts_imagenet(16, 16);
    float out[3 * 16 * 16];
    sal_error e;
    cr_assert_eq(sal_preprocess(&img, &o, out, &e), SAL_OK, "%s", e.msg);
    static const double mean[3] = {0.485, 0.456, 0.406}, std[3] = {0.229, 0.224, 0.225};
    for (int c = 0; c < 3; c++) {
        double want = (rgbv[c] / 255.0 - mean[c]) / std[c];
        for (int i = 0; i < 16 * 16; i++)
            cr_assert_float_eq(out[c * 256 + i], want, 1e-5, "c %d i %d: %f vs %f", c, i,
                               out[c * 256 + i], want);
    }
    sal_image_free(&img);
}

Test(preprocess, ramp_downsized_is_the_analytic_ramp) {
    sal_image img = make_image(64, 8, 1, ramp_x3_10);
    sal_prep_opts o = plain_opts(8, 16, 0, 1);
    float out[8 * 16];
    sal_error e;
    cr_assert_eq(sal_preprocess(&img, &o, out, &e), SAL_OK, "%s", e.msg);
    for (int y = 0; y < 8; y++)
        for (int x = 0; x < 16; x++) /* s = (x+0.5)*4-0.5 = 4x+1.5 */
            cr_assert_float_eq(out[y * 16 + x], 3 * (4 * x + 1.5) + 10, 1e-4);
    sal_image_free(&img);
}

Test(preprocess, ramp_upsized_is_the_clamped_analytic_ramp) {
    sal_image img = make_image(16, 3, 1, ramp_x3_10);
    sal_prep_opts o = plain_opts(5, 64, 0, 1);
    float out[5 * 64];
    sal_error e;
    cr_assert_eq(sal_preprocess(&img, &o, out, &e), SAL_OK, "%s", e.msg);
    for (int y = 0; y < 5; y++)
        for (int x = 0; x < 64; x++) {
            double want = 3 * src_coord(x, 16, 64) + 10;
            cr_assert_float_eq(out[y * 64 + x], want, 1e-4, "x %d: %f vs %f", x, out[y * 64 + x], want);
        }
    cr_assert_float_eq(out[0], 10.0, 1e-6);       /* left edge clamped to the first pixel */
    cr_assert_float_eq(out[63], 3 * 15 + 10, 1e-6); /* right edge clamped to the last */
    sal_image_free(&img);
}

static int ramp_2d(int x, int y, int c) { (void)c; return 2 * x + 5 * y + 1; }

Test(preprocess, two_dimensional_ramp_at_odd_ratios) {
    sal_image img = make_image(20, 12, 1, ramp_2d);
    int sizes[][2] = {{7, 9}, {12, 20}, {25, 31}, {1, 1}, {3, 40}};
    for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
        int oh = sizes[k][0], ow = sizes[k][1];
        sal_prep_opts o = plain_opts(oh, ow, 0, 1);
        float *out = malloc(sizeof(float) * oh * ow);
        sal_error e;
        cr_assert_eq(sal_preprocess(&img, &o, out, &e), SAL_OK, "%s", e.msg);
        for (int y = 0; y < oh; y++)
            for (int x = 0; x < ow; x++) {
                double want = 2 * src_coord(x, 20, ow) + 5 * src_coord(y, 12, oh) + 1;
                cr_assert_float_eq(out[y * ow + x], want, 1e-4, "%dx%d at (%d,%d)", oh, ow, y, x);
            }
        free(out);
    }
    sal_image_free(&img);
}

static int ramp_y3(int x, int y, int c) { (void)x, (void)c; return 3 * y; }

Test(preprocess, center_crop_offsets) {
    /* Wide 40x80, shorter side 40 -> 20: resized 20x40, crop 20x20 at left = 10:
     * s = (10+x+0.5)*80/40 - 0.5 = 2x + 20.5. */
    sal_image wide = make_image(80, 40, 1, ramp_x3_10);
    sal_prep_opts o = plain_opts(20, 20, 20, 1);
    float out[20 * 20];
    sal_error e;
    cr_assert_eq(sal_preprocess(&wide, &o, out, &e), SAL_OK, "%s", e.msg);
    for (int y = 0; y < 20; y++)
        for (int x = 0; x < 20; x++) cr_assert_float_eq(out[y * 20 + x], 3 * (2 * x + 20.5) + 10, 1e-4);
    sal_image_free(&wide);

    /* Tall 80x40: top = 10, s = 2y + 20.5. */
    sal_image tall = make_image(40, 80, 1, ramp_y3);
    cr_assert_eq(sal_preprocess(&tall, &o, out, &e), SAL_OK, "%s", e.msg);
    for (int y = 0; y < 20; y++)
        for (int x = 0; x < 20; x++) cr_assert_float_eq(out[y * 20 + x], 3 * (2 * y + 20.5), 1e-4);
    sal_image_free(&tall);

    /* Odd margin: 20x41 with shorter side kept at 20 -> resized 20x41, left = (41-20)/2 = 10,
     * s = (10+x+0.5)*41/41 - 0.5 = 10 + x exactly. */
    sal_image odd = make_image(41, 20, 1, ramp_x3_10);
    cr_assert_eq(sal_preprocess(&odd, &o, out, &e), SAL_OK, "%s", e.msg);
    for (int y = 0; y < 20; y++)
        for (int x = 0; x < 20; x++) cr_assert_float_eq(out[y * 20 + x], 3 * (10 + x) + 10, 1e-4);
    sal_image_free(&odd);
}

static int ramp_x10_7(int x, int y, int c) { (void)y, (void)c; return 10 * x + 7; }

Test(preprocess, other_side_rounds_half_away_from_zero) {
    /* 4x6, shorter side 4 -> 3: other side 6*3/4 = 4.5 -> 5 (not 4, as round-half-even would
     * give); crop 3x3 at left = (5-3)/2 = 1: s = (1+x+0.5)*6/5 - 0.5. */
    sal_image img = make_image(6, 4, 1, ramp_x10_7);
    sal_prep_opts o = plain_opts(3, 3, 3, 1);
    float out[9];
    sal_error e;
    cr_assert_eq(sal_preprocess(&img, &o, out, &e), SAL_OK, "%s", e.msg);
    for (int y = 0; y < 3; y++)
        for (int x = 0; x < 3; x++)
            cr_assert_float_eq(out[y * 3 + x], 10 * src_coord(1 + x, 6, 5) + 7, 1e-4, "x %d", x);
    sal_image_free(&img);
}

/* Independent reference: resize the whole image to (RH,RW) with the written-out formula, then
 * crop and normalize. */
static void reference_preprocess(const sal_image *img, const sal_prep_opts *o, float *out) {
    int H = img->h, W = img->w, S = H < W ? H : W, rs = o->resize_shorter;
    int RH = H == S ? rs : (int)lround((double)H * rs / S);
    int RW = H == S ? (int)lround((double)W * rs / S) : rs;
    double *full = malloc(sizeof(double) * RH * RW * img->c); /* (RH,RW,c) */
    for (int y = 0; y < RH; y++)
        for (int x = 0; x < RW; x++) {
            double sy = src_coord(y, H, RH), sx = src_coord(x, W, RW);
            int ya = (int)floor(sy), xa = (int)floor(sx);
            int yb = ya + 1 < H ? ya + 1 : H - 1, xb = xa + 1 < W ? xa + 1 : W - 1;
            double fy = sy - ya, fx = sx - xa;
            for (int c = 0; c < img->c; c++) {
#define P(yy, xx) ((double)img->pix[((size_t)(yy) * W + (xx)) * img->c + c])
                double v = (1 - fy) * ((1 - fx) * P(ya, xa) + fx * P(ya, xb)) +
                           fy * ((1 - fx) * P(yb, xa) + fx * P(yb, xb));
#undef P
                full[((size_t)y * RW + x) * img->c + c] = v;
            }
        }
    int top = (RH - o->out_h) / 2, left = (RW - o->out_w) / 2;
    for (int c = 0; c < o->channels; c++)
        for (int y = 0; y < o->out_h; y++)
            for (int x = 0; x < o->out_w; x++) {
                const double *px = &full[((size_t)(y + top) * RW + (x + left)) * img->c];
                double v = img->c == o->channels ? px[c]
                           : o->channels == 1    ? 0.299 * px[0] + 0.587 * px[1] + 0.114 * px[2]
                                                 : px[0];
                out[((size_t)c * o->out_h + y) * o->out_w + x] =
                    (float)((v * o->scale - o->mean[c]) / o->std[c]);
            }
    free(full);
}

Test(preprocess, crop_region_resize_matches_full_resize_then_crop) {
    uint64_t s = 9;
    int shapes[][5] = {/* h, w, rs, out_h, out_w */
                       {29, 43, 24, 20, 22}, {43, 29, 24, 22, 20}, {64, 64, 73, 64, 64},
                       {17, 100, 16, 16, 16}, {10, 10, 40, 33, 35}};
    for (size_t k = 0; k < sizeof shapes / sizeof *shapes; k++) {
        for (int cin = 1; cin <= 3; cin += 2)
            for (int cout = 1; cout <= 3; cout += 2) {
                int h = shapes[k][0], w = shapes[k][1];
                sal_image img = {w, h, cin, malloc((size_t)w * h * cin)};
                for (int i = 0; i < w * h * cin; i++) img.pix[i] = lcg_byte(&s);
                sal_prep_opts o = sal_prep_opts_imagenet(shapes[k][3], shapes[k][4]);
                o.resize_shorter = shapes[k][2];
                o.channels = cout;
                size_t n = (size_t)cout * o.out_h * o.out_w;
                float *got = malloc(sizeof(float) * n), *want = malloc(sizeof(float) * n);
                sal_error e;
                cr_assert_eq(sal_preprocess(&img, &o, got, &e), SAL_OK, "%s", e.msg);
                reference_preprocess(&img, &o, want);
                for (size_t i = 0; i < n; i++)
                    cr_assert_float_eq(got[i], want[i], 1e-5, "shape %zu cin %d cout %d at %zu: %f vs %f",
                                       k, cin, cout, i, got[i], want[i]);
                free(got);
                free(want);
                sal_image_free(&img);
            }
    }
}

Test(preprocess, rgb_to_gray_uses_bt601_luma) {
    static const int colors[][3] = {{255, 0, 0}, {0, 255, 0}, {0, 0, 255}, {12, 200, 99}};
    for (size_t k = 0; k < 4; k++) {
        sal_image img = {3, 2, 3, malloc(18)};
        for (int i = 0; i < 6; i++)
            for (int c = 0; c < 3; c++) img.pix[3 * i + c] = (uint8_t)colors[k][c];
        sal_prep_opts o = plain_opts(4, 5, 0, 1);
        float out[20];
        sal_error e;
        cr_assert_eq(sal_preprocess(&img, &o, out, &e), SAL_OK, "%s", e.msg);
        double want = 0.299 * colors[k][0] + 0.587 * colors[k][1] + 0.114 * colors[k][2];
        for (int i = 0; i < 20; i++) cr_assert_float_eq(out[i], want, 1e-4);
        sal_image_free(&img);
    }
}

Test(preprocess, gray_to_rgb_repeats_the_plane) {
    sal_image img = make_image(20, 12, 1, ramp_2d);
    sal_prep_opts o1 = plain_opts(9, 7, 0, 1), o3 = plain_opts(9, 7, 0, 3);
    o3.mean[0] = 1, o3.mean[1] = 2, o3.mean[2] = 3;
    o3.std[0] = 1, o3.std[1] = 2, o3.std[2] = 4;
    float gray[63], rgb[3 * 63];
    sal_error e;
    cr_assert_eq(sal_preprocess(&img, &o1, gray, &e), SAL_OK, "%s", e.msg);
    cr_assert_eq(sal_preprocess(&img, &o3, rgb, &e), SAL_OK, "%s", e.msg);
    for (int c = 0; c < 3; c++)
        for (int i = 0; i < 63; i++)
            cr_assert_float_eq(rgb[c * 63 + i], (gray[i] - o3.mean[c]) / o3.std[c], 1e-5);
    sal_image_free(&img);
}

Test(preprocess, default_options) {
    sal_prep_opts o = sal_prep_opts_imagenet(224, 224);
    cr_assert_eq(o.out_h, 224);
    cr_assert_eq(o.out_w, 224);
    cr_assert_eq(o.resize_shorter, 256);
    cr_assert_eq(o.channels, 3);
    cr_assert_float_eq(o.scale, 1.0f / 255.0f, 1e-9);
    cr_assert_float_eq(o.mean[0], 0.485f, 1e-7);
    cr_assert_float_eq(o.mean[1], 0.456f, 1e-7);
    cr_assert_float_eq(o.mean[2], 0.406f, 1e-7);
    cr_assert_float_eq(o.std[0], 0.229f, 1e-7);
    cr_assert_float_eq(o.std[1], 0.224f, 1e-7);
    cr_assert_float_eq(o.std[2], 0.225f, 1e-7);
    cr_assert_eq(sal_prep_opts_imagenet(112, 112).resize_shorter, 128);
    cr_assert_eq(sal_prep_opts_imagenet(299, 299).resize_shorter, 342); /* 341.71 */
    sal_prep_opts g = sal_prep_opts_gray(28, 28);
    cr_assert_eq(g.channels, 1);
    cr_assert_eq(g.resize_shorter, 0);
    cr_assert_float_eq(g.mean[0], 0.0f, 0);
    cr_assert_float_eq(g.std[0], 1.0f, 0);
}

Test(preprocess, bad_arguments_fail_cleanly) {
    sal_image img = make_image(16, 16, 1, ramp_x3_10);
    float out[3 * 32 * 32];
    sal_error e;
    sal_prep_opts o = plain_opts(8, 8, 0, 2);
    cr_assert_eq(sal_preprocess(&img, &o, out, &e), SAL_ERR_INVALID_ARG);
    cr_assert_not_null(strstr(e.msg, "channels"), "%s", e.msg);
    o = plain_opts(8, 8, 0, 1);
    o.std[0] = 0;
    cr_assert_eq(sal_preprocess(&img, &o, out, &e), SAL_ERR_INVALID_ARG);
    o = plain_opts(0, 8, 0, 1);
    cr_assert_eq(sal_preprocess(&img, &o, out, &e), SAL_ERR_INVALID_ARG);
    o = plain_opts(16, 16, 10, 1); /* resized 10x10 < 16x16 crop */
    cr_assert_eq(sal_preprocess(&img, &o, out, &e), SAL_ERR_SHAPE);
    o = plain_opts(8, 8, 0, 1);
    cr_assert_eq(sal_preprocess(NULL, &o, out, NULL), SAL_ERR_INVALID_ARG);
    sal_image bad = img;
    bad.c = 2;
    cr_assert_eq(sal_preprocess(&bad, &o, out, &e), SAL_ERR_INVALID_ARG);
    sal_image_free(&img);
}

/* ------------------------------------------------------------------------------------------------ */
/* .npy                                                                                             */

/* The bytes numpy.save writes for np.arange(6, dtype='<f4').reshape(2, 3) (NumPy >= 1.24, format
 * 1.0): magic "\x93NUMPY", version 1 0, header length 118 as <u2 (0x76 0x00), then the header
 *     "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }"   (59 characters)
 * followed by 21 - len('2') = 20 spaces of growth room, 38 spaces of padding and '\n', so that
 * 10 + 118 = 128 is a multiple of 64; then 0.0 .. 5.0 as little-endian float32. */
static const char numpy_dict_2x3[] = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
static const uint8_t f32_0_to_5[24] = {0, 0, 0, 0,    0, 0, 0x80, 0x3f, 0, 0, 0, 0x40,
                                       0, 0, 0x40, 0x40, 0, 0, 0x80, 0x40, 0, 0, 0xa0, 0x40};

static size_t numpy_2x3_bytes(uint8_t *b) {
    memcpy(b, "\x93NUMPY\x01\x00\x76\x00", 10);
    cr_assert_eq(strlen(numpy_dict_2x3), 59);
    memcpy(b + 10, numpy_dict_2x3, 59);
    memset(b + 69, ' ', 20 + 38);
    b[127] = '\n';
    memcpy(b + 128, f32_0_to_5, 24);
    return 152;
}

/* A .npy file with header text `dict` (padded to 64 like numpy, version major.0) and `data`. */
static void write_npy_raw(const char *p, int major, const char *dict, const void *data, size_t n) {
    size_t prefix = major == 1 ? 10 : 12, dl = strlen(dict);
    size_t hlen = dl + 1, pad = (64 - (prefix + hlen) % 64) % 64;
    hlen += pad;
    uint8_t *b = malloc(prefix + hlen + n);
    memcpy(b, "\x93NUMPY", 6);
    b[6] = (uint8_t)major, b[7] = 0;
    b[8] = (uint8_t)hlen, b[9] = (uint8_t)(hlen >> 8);
    if (major != 1) b[10] = (uint8_t)(hlen >> 16), b[11] = (uint8_t)(hlen >> 24);
    memcpy(b + prefix, dict, dl);
    memset(b + prefix + dl, ' ', pad);
    b[prefix + hlen - 1] = '\n';
    if (n) memcpy(b + prefix + hlen, data, n);
    write_bytes(p, b, prefix + hlen + n);
    free(b);
}

static sal_status expect_npy_failure(const char *p) {
    float *data = (float *)&data;
    int ndim = 5;
    int64_t dims[SAL_MAX_DIMS];
    sal_error e;
    memset(&e, 0, sizeof e);
    sal_status st = sal_npy_read(p, &data, &ndim, dims, &e);
    cr_assert_neq(st, SAL_OK, "%s: read should fail", p);
    cr_assert_null(data);
    cr_assert_eq(ndim, 0);
    cr_assert_not_null(strstr(e.msg, p), "message '%s' does not name %s", e.msg, p);
    return st;
}

Test(npy, reads_the_bytes_numpy_writes) {
    uint8_t b[152];
    size_t n = numpy_2x3_bytes(b);
    const char *p = tpath("numpy.npy");
    write_bytes(p, b, n);
    float *data;
    int ndim;
    int64_t dims[SAL_MAX_DIMS];
    sal_error e;
    cr_assert_eq(sal_npy_read(p, &data, &ndim, dims, &e), SAL_OK, "%s", e.msg);
    cr_assert_eq(ndim, 2);
    cr_assert_eq(dims[0], 2);
    cr_assert_eq(dims[1], 3);
    for (int i = 0; i < 6; i++) cr_assert_eq(data[i], (float)i);
    free(data);
}

Test(npy, writes_exactly_the_bytes_numpy_writes) {
    uint8_t want[152];
    size_t n = numpy_2x3_bytes(want);
    float x[6] = {0, 1, 2, 3, 4, 5};
    int64_t dims[2] = {2, 3};
    const char *p = tpath("ours.npy");
    sal_error e;
    cr_assert_eq(sal_npy_write(p, x, 2, dims, &e), SAL_OK, "%s", e.msg);
    size_t got_n;
    uint8_t *got = read_bytes(p, &got_n);
    cr_assert_eq(got_n, n);
    cr_assert_eq(memcmp(got, want, n), 0, "header: %.118s", (char *)got + 10);
    free(got);
    cr_assert_eq(count_dir_entries(), 1, "temporary file left behind");
}

Test(npy, older_numpy_header_and_versions_2_and_3) {
    /* NumPy before 1.24 wrote no growth room: "(3,)" header padded straight to 64 bytes. */
    const char *p = tpath("old.npy");
    write_npy_raw(p, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }", f32_0_to_5, 12);
    float *data;
    int ndim;
    int64_t dims[SAL_MAX_DIMS];
    sal_error e;
    cr_assert_eq(sal_npy_read(p, &data, &ndim, dims, &e), SAL_OK, "%s", e.msg);
    cr_assert_eq(ndim, 1);
    cr_assert_eq(dims[0], 3);
    cr_assert_eq(data[2], 2.0f);
    free(data);
    /* Key order and quoting as other writers produce, Python 2 long suffixes, format 2.0 / 3.0. */
    const char *dicts[] = {"{\"shape\": (3L,), \"fortran_order\": False, \"descr\": \"<f4\"}",
                           "{'descr':'<f4','fortran_order':False,'shape':(3,)}"};
    for (int major = 1; major <= 3; major++)
        for (int k = 0; k < 2; k++) {
            write_npy_raw(p, major, dicts[k], f32_0_to_5, 12);
            cr_assert_eq(sal_npy_read(p, &data, &ndim, dims, &e), SAL_OK, "v%d %s: %s", major,
                         dicts[k], e.msg);
            cr_assert_eq(ndim, 1);
            cr_assert_eq(data[1], 1.0f);
            free(data);
        }
}

Test(npy, float64_is_converted) {
    /* 1.5, -2.25, 1e300 (beyond float: +inf) as little-endian float64. */
    static const uint8_t f64[24] = {0, 0, 0, 0, 0, 0, 0xf8, 0x3f, 0, 0, 0, 0, 0, 0, 0x02, 0xc0,
                                    0x9c, 0x75, 0x00, 0x88, 0x3c, 0xe4, 0x37, 0x7e};
    const char *p = tpath("f8.npy");
    write_npy_raw(p, 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }", f64, 24);
    float *data;
    int ndim;
    int64_t dims[SAL_MAX_DIMS];
    sal_error e;
    cr_assert_eq(sal_npy_read(p, &data, &ndim, dims, &e), SAL_OK, "%s", e.msg);
    cr_assert_eq(data[0], 1.5f);
    cr_assert_eq(data[1], -2.25f);
    cr_assert(isinf(data[2]) && data[2] > 0);
    free(data);
}

Test(npy, round_trip_including_scalar_and_empty) {
    uint64_t s = 10;
    float x[2 * 3 * 4];
    for (int i = 0; i < 24; i++) x[i] = (float)((int)lcg_byte(&s) - 128) / 7.0f;
    x[5] = INFINITY;
    x[6] = -0.0f;
    x[7] = NAN;
    int64_t shapes[][4] = {{2, 3, 4}, {24}, {1, 1, 24, 1}, {0, 3}, {0}};
    int ndims[] = {3, 1, 4, 2, 0};
    const char *p = tpath("rt.npy");
    for (size_t k = 0; k < 5; k++) {
        sal_error e;
        cr_assert_eq(sal_npy_write(p, x, ndims[k], shapes[k], &e), SAL_OK, "%s", e.msg);
        float *y;
        int nd;
        int64_t dims[SAL_MAX_DIMS];
        cr_assert_eq(sal_npy_read(p, &y, &nd, dims, &e), SAL_OK, "%s", e.msg);
        cr_assert_not_null(y);
        cr_assert_eq(nd, ndims[k]);
        int64_t count = 1;
        for (int i = 0; i < nd; i++) {
            cr_assert_eq(dims[i], shapes[k][i]);
            count *= dims[i];
        }
        cr_assert_eq(memcmp(x, y, sizeof(float) * (size_t)count), 0); /* bitwise, NaN included */
        free(y);
    }
    /* The file is 64-byte aligned before its data for every shape, like numpy's. */
    int64_t big[8] = {1, 2, 1, 2, 1, 3, 1, 2};
    cr_assert_eq(sal_npy_write(p, x, 8, big, NULL), SAL_OK);
    size_t n;
    uint8_t *b = read_bytes(p, &n);
    cr_assert_eq((n - 24 * 4) % 64, 0);
    free(b);
}

Test(npy, malformed_files_fail_with_the_file_named) {
    const char *p = tpath("bad.npy");
    cr_assert_eq(expect_npy_failure(tpath("missing.npy")), SAL_ERR_IO);
    write_bytes(p, "", 0);
    cr_assert_eq(expect_npy_failure(p), SAL_ERR_PARSE);

    uint8_t good[152];
    numpy_2x3_bytes(good);
    uint8_t b[160];
    memcpy(b, good, 152);
    b[1] = 'n'; /* wrong magic */
    write_bytes(p, b, 152);
    cr_assert_eq(expect_npy_failure(p), SAL_ERR_PARSE);
    write_bytes(p, good, 151); /* truncated data */
    cr_assert_eq(expect_npy_failure(p), SAL_ERR_PARSE);
    write_bytes(p, good, 100); /* truncated header */
    cr_assert_eq(expect_npy_failure(p), SAL_ERR_PARSE);
    write_bytes(p, good, 9); /* truncated prefix */
    cr_assert_eq(expect_npy_failure(p), SAL_ERR_PARSE);
    memcpy(b, good, 152);
    b[152] = 0, b[153] = 0, b[154] = 0, b[155] = 0; /* trailing bytes */
    write_bytes(p, b, 156);
    cr_assert_eq(expect_npy_failure(p), SAL_ERR_PARSE);
    memcpy(b, good, 152);
    b[6] = 4; /* version 4.0 */
    write_bytes(p, b, 152);
    cr_assert_eq(expect_npy_failure(p), SAL_ERR_UNSUPPORTED);
    memcpy(b, good, 152);
    b[8] = 0xff, b[9] = 0x7f; /* header length past the end of the file */
    write_bytes(p, b, 152);
    cr_assert_eq(expect_npy_failure(p), SAL_ERR_PARSE);

    static const uint8_t zeros[64] = {0};
    struct { const char *dict; sal_status st; size_t bytes; } cases[] = {
        {"{'descr': '<i4', 'fortran_order': False, 'shape': (3,), }", SAL_ERR_UNSUPPORTED, 12},
        {"{'descr': '>f4', 'fortran_order': False, 'shape': (3,), }", SAL_ERR_UNSUPPORTED, 12},
        {"{'descr': '<f2', 'fortran_order': False, 'shape': (3,), }", SAL_ERR_UNSUPPORTED, 6},
        {"{'descr': [('x', '<f4')], 'fortran_order': False, 'shape': (3,), }", SAL_ERR_UNSUPPORTED, 12},
        {"{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", SAL_ERR_UNSUPPORTED, 24},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, -3), }", SAL_ERR_PARSE, 24},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2 3), }", SAL_ERR_PARSE, 24},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (6), }", SAL_ERR_PARSE, 24},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': [2, 3], }", SAL_ERR_PARSE, 24},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3)", SAL_ERR_PARSE, 24},
        {"{'descr': '<f4', 'fortran_order': 0, 'shape': (2, 3), }", SAL_ERR_PARSE, 24},
        {"{'descr': '<f4', 'shape': (2, 3), }", SAL_ERR_PARSE, 24},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), 'extra': 1}", SAL_ERR_PARSE, 24},
        {"{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (6,), }", SAL_ERR_PARSE, 24},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (1,1,1,1,1,1,1,1,1), }",
         SAL_ERR_UNSUPPORTED, 4},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,), }", SAL_ERR_PARSE, 4},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296), }",
         SAL_ERR_PARSE, 4},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), } x", SAL_ERR_PARSE, 24},
        {"{'descr': '<f4\\n', 'fortran_order': False, 'shape': (2, 3), }", SAL_ERR_PARSE, 24},
        {"{'descr': '<f4, 'fortran_order': False, 'shape': (2, 3), }", SAL_ERR_PARSE, 24},
        {"not a dict", SAL_ERR_PARSE, 24},
        {"", SAL_ERR_PARSE, 24},
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        write_npy_raw(p, 1, cases[k].dict, zeros, cases[k].bytes);
        sal_status st = expect_npy_failure(p);
        cr_assert_eq(st, cases[k].st, "%s: status %d, expected %d", cases[k].dict, st, cases[k].st);
    }
    /* Random bytes after a valid magic. */
    uint64_t s = 11;
    for (int t = 0; t < 50; t++) {
        memcpy(b, "\x93NUMPY\x01\x00", 8);
        for (int i = 8; i < 160; i++) b[i] = lcg_byte(&s);
        b[9] = 0; /* keep header lengths within the file half of the time */
        write_bytes(p, b, 160);
        expect_npy_failure(p);
    }
}

Test(npy, write_errors_leave_nothing_behind) {
    float x[4] = {1, 2, 3, 4};
    int64_t dims[9] = {4, 1, 1, 1, 1, 1, 1, 1, 1};
    sal_error e;
    const char *p = tpath("no-such-dir/x.npy");
    cr_assert_eq(sal_npy_write(p, x, 1, dims, &e), SAL_ERR_IO);
    cr_assert_not_null(strstr(e.msg, p), "%s", e.msg);
    p = tpath("x.npy");
    cr_assert_eq(sal_npy_write(p, x, 9, dims, &e), SAL_ERR_INVALID_ARG);
    cr_assert_not_null(strstr(e.msg, p), "%s", e.msg);
    int64_t neg[1] = {-1};
    cr_assert_eq(sal_npy_write(p, x, 1, neg, &e), SAL_ERR_INVALID_ARG);
    cr_assert_eq(sal_npy_write(p, NULL, 1, dims, NULL), SAL_ERR_INVALID_ARG);
    cr_assert_eq(count_dir_entries(), 0);
    /* Overwriting replaces the file whole. */
    cr_assert_eq(sal_npy_write(p, x, 1, dims, &e), SAL_OK, "%s", e.msg);
    int64_t two[1] = {2};
    cr_assert_eq(sal_npy_write(p, x + 2, 1, two, &e), SAL_OK, "%s", e.msg);
    cr_assert_eq(count_dir_entries(), 1);
    float *y;
    int nd;
    int64_t d[SAL_MAX_DIMS];
    cr_assert_eq(sal_npy_read(p, &y, &nd, d, &e), SAL_OK, "%s", e.msg);
    cr_assert_eq(d[0], 2);
    cr_assert_eq(y[0], 3.0f);
    free(y);
}

/* ------------------------------------------------------------------------------------------------ */
/* Labels                                                                                           */

Test(labels, lines_crlf_empty_lines_and_case_insensitive_find) {
    const char *p = tpath("labels.txt");
    const char *text = "cat\r\ndog\n\nBird\nlast";
    write_bytes(p, text, strlen(text));
    char **names;
    int count;
    sal_error e;
    cr_assert_eq(sal_labels_load(p, &names, &count, &e), SAL_OK, "%s", e.msg);
    cr_assert_eq(count, 5);
    const char *want[] = {"cat", "dog", "", "Bird", "last"};
    for (int i = 0; i < 5; i++) cr_assert_str_eq(names[i], want[i]);
    cr_assert_eq(sal_labels_find(names, count, "DOG"), 1);
    cr_assert_eq(sal_labels_find(names, count, "bird"), 3);
    cr_assert_eq(sal_labels_find(names, count, "cat"), 0);
    cr_assert_eq(sal_labels_find(names, count, ""), 2);
    cr_assert_eq(sal_labels_find(names, count, "ca"), -1);
    cr_assert_eq(sal_labels_find(names, count, "cats"), -1);
    cr_assert_eq(sal_labels_find(names, count, "fish"), -1);
    cr_assert_eq(sal_labels_find(names, count, NULL), -1);
    cr_assert_eq(sal_labels_find(NULL, 0, "cat"), -1);
    sal_labels_free(names, count);
    sal_labels_free(NULL, 0);
}

Test(labels, final_newline_and_bom) {
    const char *p = tpath("l.txt");
    const char *text = "\xEF\xBB\xBF" "a b\r\ntench, Tinca tinca\n";
    write_bytes(p, text, strlen(text));
    char **names;
    int count;
    sal_error e;
    cr_assert_eq(sal_labels_load(p, &names, &count, &e), SAL_OK, "%s", e.msg);
    cr_assert_eq(count, 2);
    cr_assert_str_eq(names[0], "a b");
    cr_assert_str_eq(names[1], "tench, Tinca tinca");
    sal_labels_free(names, count);

    write_bytes(p, "\n", 1); /* one empty class name */
    cr_assert_eq(sal_labels_load(p, &names, &count, &e), SAL_OK, "%s", e.msg);
    cr_assert_eq(count, 1);
    cr_assert_str_eq(names[0], "");
    sal_labels_free(names, count);
}

Test(labels, bad_files_fail) {
    char **names = (char **)&names;
    int count = 3;
    sal_error e;
    const char *p = tpath("missing.txt");
    cr_assert_eq(sal_labels_load(p, &names, &count, &e), SAL_ERR_IO);
    cr_assert_not_null(strstr(e.msg, p), "%s", e.msg);
    cr_assert_null(names);
    cr_assert_eq(count, 0);
    p = tpath("empty.txt");
    write_bytes(p, "", 0);
    cr_assert_eq(sal_labels_load(p, &names, &count, &e), SAL_ERR_PARSE);
    cr_assert_not_null(strstr(e.msg, p), "%s", e.msg);
    p = tpath("nul.txt");
    write_bytes(p, "a\0b\n", 4);
    cr_assert_eq(sal_labels_load(p, &names, &count, &e), SAL_ERR_PARSE);
    cr_assert_not_null(strstr(e.msg, p), "%s", e.msg);
}
