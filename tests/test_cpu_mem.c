/* test_cpu_mem.c — the CPU backend's large buffers (cpu_mem.c): from 2 MiB up a buffer is 2 MiB
 * aligned and its mapping carries the kernel's huge-page advice (VmFlags "hg" in
 * /proc/self/smaps, Linux); below, a plain 64-byte-aligned allocation without it. Both are
 * usable to their last byte and released with free(). */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/cpu_mem.h"

/* 1 when the mapping holding p has VmFlags "hg", 0 when not, -1 when smaps cannot be read */
static int advised(const void *p) {
    FILE *f = fopen("/proc/self/smaps", "r");
    if (!f) return -1;
    char line[512];
    int in = 0, found = -1;
    const uintptr_t a = (uintptr_t)p;
    while (fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' ')) {
            in = a >= lo && a < hi;
            continue;
        }
        if (in && !strncmp(line, "VmFlags:", 8)) {
            found = strstr(line, " hg") != NULL;
            break;
        }
    }
    fclose(f);
    return found;
}

Test(cpu_mem, large_buffers_are_advised_onto_huge_pages) {
    cr_assert_null(getenv("SAL_CPU_HUGEPAGES"), "run without SAL_CPU_HUGEPAGES set");
    const size_t big = (5u << 20) + 12345, small = 100000;
    char *b = sal_cpu_alloc(big), *s = sal_cpu_alloc(small);
    cr_assert(b && s);
    cr_expect_eq((uintptr_t)b % (1u << 21), 0, "a %zu-byte buffer is not 2 MiB aligned", big);
    cr_expect_eq((uintptr_t)s % 64, 0);
    memset(b, 1, big);   /* usable to its last byte */
    memset(s, 2, small);
    cr_expect_eq(b[big - 1], 1);
    const int hb = advised(b), hs = advised(s);
    if (hb < 0) cr_skip_test("/proc/self/smaps unreadable");
    cr_expect_eq(hb, 1, "the large buffer's mapping has no huge-page advice");
    cr_expect_eq(hs, 0, "a small buffer's mapping has huge-page advice");
    free(b);
    free(s);
}
