/* sal_ompenv.c — libsalient_ompenv.so: OpenMP's idle threads spin briefly, then sleep, by default
 * (GOMP_SPINCOUNT=3000: about 150 us of `pause`s on this project's AMD EPYC, against libgomp's
 * own 300000, while passive waiting sleeps at once). Measured (README, "Threads on a shared
 * machine"): on an idle 2-core machine a ResNet-50 batch-1 pass wakes a sleeping worker at each of
 * its ~150 parallel regions, which passive waiting paid with ~25% of the pass's time; the short
 * spin keeps the worker awake between regions, and beside CPU-bound processes it costs 0-12%
 * (one hog) or gains (two), where libgomp's default spin collapsed by 3-11x.
 *
 * libgomp reads OMP_WAIT_POLICY and GOMP_SPINCOUNT once, in its own ELF constructor
 * (initialize_env), and never again. To set a default, something must write the environment
 * after libc has set up `environ` and before libgomp's constructor runs:
 *   - a constructor in salient_lib (a static library, so part of the executable) runs last, after
 *     every shared library's: too late;
 *   - an entry in the executable's .preinit_array runs first, but before libc's own initializer,
 *     which then sets environ to the original array again: the variable is lost (tried);
 *   - a constructor in a small shared library of its own, with no dependency but libc, listed in
 *     the executable's DT_NEEDED after libgomp: the loader runs libc's initializer first (a
 *     dependency), then, among unrelated libraries, the later-listed first. CMake's link line puts
 *     it after OpenMP's library (CMakeLists.txt), and tests/test_threads.c checks the effect on a
 *     fresh process, by the CPU time its idle worker burns.
 * It writes the environment once, while the process loads and has no other thread, only when the
 * user set neither variable (the user's choice always wins). Nothing is written at call time. */
#include <stdlib.h>

#define SAL_OMP_SPIN_DEFAULT "3000"

__attribute__((constructor)) static void sal_ompenv_default(void) {
    if (getenv("OMP_WAIT_POLICY") || getenv("GOMP_SPINCOUNT")) return;
    setenv("GOMP_SPINCOUNT", SAL_OMP_SPIN_DEFAULT, 0);
}

/* Referenced by the CPU backend (cpu_threads.c) so that --as-needed linkers keep the library. */
const char *sal_ompenv_default_policy(void) { return "GOMP_SPINCOUNT=" SAL_OMP_SPIN_DEFAULT; }
