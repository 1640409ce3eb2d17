/* sal_ompenv.c — libsalient_ompenv.so: OpenMP's idle threads wait passively by default.
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

#define SAL_OMP_WAIT_DEFAULT "passive"

__attribute__((constructor)) static void sal_ompenv_default(void) {
    if (getenv("OMP_WAIT_POLICY") || getenv("GOMP_SPINCOUNT")) return;
    setenv("OMP_WAIT_POLICY", SAL_OMP_WAIT_DEFAULT, 0);
}

/* Referenced by the CPU backend (cpu_threads.c) so that --as-needed linkers keep the library. */
const char *sal_ompenv_default_policy(void) { return SAL_OMP_WAIT_DEFAULT; }
