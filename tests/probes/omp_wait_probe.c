/* omp_wait_probe.c — a helper program for tests/test_threads.c: what a fresh process linked with
 * salient_lib gets from OpenMP. It prints one line
 *   threads T cpu C wall W
 * T = sal_cpu_threads_default(); C and W = process CPU seconds and wall seconds over 200 rounds of
 * (a tiny 2-thread parallel loop, then 2 ms asleep on the main thread). A worker that spins
 * after each loop (libgomp's active or default waiting) burns CPU time through the sleeps; a
 * passive one sleeps too, so C stays near 0. */
#define _DEFAULT_SOURCE
#include <omp.h>
#include <stdio.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "salient.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int main(void) {
    const int threads = sal_cpu_threads_default();
    volatile double sink = 0;
    const double t0 = now();
    for (int round = 0; round < 200; round++) {
        double s = 0;
#pragma omp parallel for num_threads(2) reduction(+ : s)
        for (int i = 0; i < 1000; i++) s += i;
        sink += s;
        usleep(2000);
    }
    const double wall = now() - t0;
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    const double cpu = (double)u.ru_utime.tv_sec + 1e-6 * (double)u.ru_utime.tv_usec +
                       (double)u.ru_stime.tv_sec + 1e-6 * (double)u.ru_stime.tv_usec;
    printf("threads %d cpu %.4f wall %.4f\n", threads, cpu, wall);
    return sink > 0 ? 0 : 1;
}
