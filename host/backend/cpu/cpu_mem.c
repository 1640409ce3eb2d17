/* cpu_mem.c — the CPU backend's large buffers (activation and gradient arenas, scratch, oneDNN's
 * reordered weights, Winograd's transformed kernels and workspace) on transparent huge pages.
 *
 * Where the kernel's THP mode is "madvise" (Debian's default), anonymous memory gets 2 MiB pages
 * only when asked: a buffer of at least 2 MiB is aligned to 2 MiB, rounded up to a whole number of
 * them and marked MADV_HUGEPAGE. A ResNet-50 gradient plan at batch 16 then sits on ~1,300 huge
 * pages instead of ~650,000 small ones: fewer TLB misses on every pass and one page fault per
 * 2 MiB when a plan is first touched (benchmarks/results/cpu-hugepages.md). Smaller buffers, and
 * every buffer when SAL_CPU_HUGEPAGES=0 is set (read once, for measurements), are plain 64-byte
 * aligned allocations. Everything returned is released with free(). */
#define _DEFAULT_SOURCE 1   /* madvise */
#include "cpu_mem.h"

#include <stdlib.h>
#include <sys/mman.h>

enum { HUGE_BYTES = 1 << 21 };

static int hugepages_on(void) {
    static int on = -1;   /* calls on one backend are sequential; a race would only read twice */
    if (on < 0) {
        const char *e = getenv("SAL_CPU_HUGEPAGES");
        on = !(e && e[0] == '0' && !e[1]);
    }
    return on;
}

void *sal_cpu_alloc(size_t bytes) {
    void *p = NULL;
    if (bytes >= HUGE_BYTES && hugepages_on()) {
        const size_t r = (bytes + HUGE_BYTES - 1) & ~(size_t)(HUGE_BYTES - 1);
        if (r < bytes || posix_memalign(&p, HUGE_BYTES, r) != 0) return NULL;
#ifdef MADV_HUGEPAGE
        (void)madvise(p, r, MADV_HUGEPAGE);   /* advice: refused (THP "never") is no error */
#endif
        return p;
    }
    if (posix_memalign(&p, 64, bytes ? bytes : 64) != 0) return NULL;
    return p;
}
