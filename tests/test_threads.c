/* test_threads.c — the CPU backend's OpenMP defaults (host/backend/cpu/cpu_threads.c): the default
 * thread count follows the affinity mask (taskset) and the cgroup CPU quota, the user's
 * OMP_NUM_THREADS wins, and a fresh process linked with the library spins only briefly (GOMP_SPINCOUNT
 * 3000, then sleeps) unless the
 * user chose OMP_WAIT_POLICY / GOMP_SPINCOUNT (measured by build/omp_wait_probe's CPU time, not
 * read back from our own setting). */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend/cpu/cpu_threads.h"
#include "salient.h"

/* ------------------------------------------------------------------------------------------------ */
/* Probe runs                                                                                       */

typedef struct probe_out {
    int threads;
    double cpu, wall;
} probe_out;

/* Runs `env -u OMP_WAIT_POLICY -u GOMP_SPINCOUNT -u OMP_NUM_THREADS ENVSET PREFIX probe` and
 * parses its line (CTest sets OMP_WAIT_POLICY=passive for the tests: the probe must not inherit
 * it). */
static probe_out run_probe(const char *envset, const char *prefix) {
    char cmd[2048];
    int n = snprintf(cmd, sizeof cmd,
                     "env -u OMP_WAIT_POLICY -u GOMP_SPINCOUNT -u OMP_NUM_THREADS %s %s %s/omp_wait_probe",
                     envset, prefix, SAL_BINARY_DIR);
    cr_assert(n > 0 && n < (int)sizeof cmd);
    FILE *f = popen(cmd, "r");
    cr_assert(f, "cannot run %s", cmd);
    probe_out o = {-1, -1, -1};
    char line[256] = "";
    char *got = fgets(line, sizeof line, f);
    int rc = pclose(f);
    cr_assert(got && rc == 0, "%s: exit %d, output '%s'", cmd, rc, line);
    cr_assert_eq(sscanf(line, "threads %d cpu %lf wall %lf", &o.threads, &o.cpu, &o.wall), 3,
                 "%s printed '%s'", cmd, line);
    return o;
}

static int have_two_cpus(void) { return sal_cpu_affinity_cpus() >= 2; }

/* ------------------------------------------------------------------------------------------------ */
/* Thread count                                                                                     */

Test(threads, taskset_one_core_gives_one_thread) {
    probe_out o = run_probe("", "taskset -c 0");
    cr_assert_eq(o.threads, 1, "under taskset -c 0 the default is %d threads", o.threads);
    if (!have_two_cpus()) cr_skip_test("one CPU: the unrestricted count cannot differ");
    probe_out all = run_probe("", "");
    cr_assert_eq(all.threads, sal_cpu_affinity_cpus() < sal_cpu_quota_cpus(NULL, NULL) ||
                                      !sal_cpu_quota_cpus(NULL, NULL)
                                  ? sal_cpu_affinity_cpus()
                                  : sal_cpu_quota_cpus(NULL, NULL));
}

Test(threads, affinity_mask_in_process) {
    unsetenv("OMP_NUM_THREADS");
    cpu_set_t set;
    CPU_ZERO(&set);
    cr_assert_eq(sched_getaffinity(0, sizeof set, &set), 0);
    int first = -1;
    for (int c = 0; c < CPU_SETSIZE && first < 0; c++)
        if (CPU_ISSET(c, &set)) first = c;
    cr_assert_geq(first, 0);
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(first, &one);
    cr_assert_eq(sched_setaffinity(0, sizeof one, &one), 0);   /* Criterion's forked worker only */
    cr_assert_eq(sal_cpu_affinity_cpus(), 1);
    cr_assert_eq(sal_cpu_threads_default(), 1);
}

Test(threads, omp_num_threads_wins) {
    probe_out o = run_probe("OMP_NUM_THREADS=3", "taskset -c 0");
    cr_assert_eq(o.threads, 3, "OMP_NUM_THREADS=3 gave %d threads", o.threads);
}

/* ------------------------------------------------------------------------------------------------ */
/* cgroup quota (fake trees under a temporary folder)                                               */

static void put(const char *dir, const char *rel, const char *text) {
    char path[1024];
    cr_assert(snprintf(path, sizeof path, "%s/%s", dir, rel) < (int)sizeof path);
    /* mkdir -p of the file's folder */
    for (char *s = path + strlen(dir) + 1; (s = strchr(s, '/')); s++) {
        *s = '\0';
        mkdir(path, 0755);
        *s = '/';
    }
    FILE *f = fopen(path, "w");
    cr_assert(f, "cannot write %s", path);
    fputs(text, f);
    fclose(f);
}

static void fake_root(char *dir, size_t size) {
    snprintf(dir, size, "/tmp/sal_cgroup_XXXXXX");
    cr_assert(mkdtemp(dir));
}

Test(threads, cgroup_v2_quota) {
    char root[256], self[300];
    fake_root(root, sizeof root);
    snprintf(self, sizeof self, "%s/self_cgroup", root);
    put(root, "self_cgroup", "0::/job/step\n");
    put(root, "job/step/cpu.max", "max 100000\n");
    cr_assert_eq(sal_cpu_quota_cpus(root, self), 0, "'max' is no limit");
    put(root, "job/cpu.max", "150000 100000\n");   /* 1.5 CPUs on the parent: rounds up to 2 */
    cr_assert_eq(sal_cpu_quota_cpus(root, self), 2);
    put(root, "job/step/cpu.max", "50000 100000\n");   /* the tighter child wins */
    cr_assert_eq(sal_cpu_quota_cpus(root, self), 1);
    put(root, "cpu.max", "max 100000\n");   /* the root's own file: no limit */
    cr_assert_eq(sal_cpu_quota_cpus(root, self), 1);
}

Test(threads, cgroup_v1_quota) {
    char root[256], self[300];
    fake_root(root, sizeof root);
    snprintf(self, sizeof self, "%s/self_cgroup", root);
    put(root, "self_cgroup", "4:memory:/a\n3:cpu,cpuacct:/docker/abc\n0::/\n");
    put(root, "cpu,cpuacct/docker/abc/cpu.cfs_quota_us", "-1\n");
    put(root, "cpu,cpuacct/docker/abc/cpu.cfs_period_us", "100000\n");
    cr_assert_eq(sal_cpu_quota_cpus(root, self), 0, "quota -1 is no limit");
    put(root, "cpu,cpuacct/docker/abc/cpu.cfs_quota_us", "300000\n");
    cr_assert_eq(sal_cpu_quota_cpus(root, self), 3);
    put(root, "cpu,cpuacct/cpu.cfs_quota_us", "200000\n");   /* the mount's root (a container's view) */
    put(root, "cpu,cpuacct/cpu.cfs_period_us", "100000\n");
    cr_assert_eq(sal_cpu_quota_cpus(root, self), 2);
}

Test(threads, no_cgroup_files_no_limit) {
    char root[256], self[300];
    fake_root(root, sizeof root);
    snprintf(self, sizeof self, "%s/self_cgroup", root);
    cr_assert_eq(sal_cpu_quota_cpus(root, self), 0, "no /proc/self/cgroup");
    put(root, "self_cgroup", "0::/\n");
    cr_assert_eq(sal_cpu_quota_cpus(root, self), 0);
}

/* ------------------------------------------------------------------------------------------------ */
/* Wait policy: a fresh process, measured                                                           */

/* The probe sleeps 200 x 2 ms between parallel loops. Workers that spin long burn CPU through the
 * sleeps (libgomp's default spins about 300000 pauses, ~15 ms here; active waiting, minutes); the
 * library's bounded spin (3000 pauses, ~150 us on this project's EPYC) and passive waiting do
 * not. The active run is the control that the probe can see spinning at all. */
Test(threads, bounded_wait_by_default_user_choice_respected, .timeout = 120) {
    if (!have_two_cpus()) cr_skip_test("one CPU: libgomp throttles spinning by itself");
    probe_out def = run_probe("", "");
    probe_out act = run_probe("OMP_WAIT_POLICY=active", "");
    cr_assert_lt(def.cpu, 0.25 * def.wall,
                 "default: %.3f s CPU over %.3f s wall: the idle worker spins", def.cpu, def.wall);
    cr_assert_gt(act.cpu, 3.0 * def.cpu + 0.05,
                 "OMP_WAIT_POLICY=active (%.3f s CPU) not honoured: no more than the default (%.3f s)",
                 act.cpu, def.cpu);
    /* GOMP_SPINCOUNT alone is also the user's choice: a long spin count must spin */
    probe_out spin = run_probe("GOMP_SPINCOUNT=infinite", "");
    cr_assert_gt(spin.cpu, 3.0 * def.cpu + 0.05,
                 "GOMP_SPINCOUNT=infinite (%.3f s CPU) overridden by the library's default (%.3f s)",
                 spin.cpu, def.cpu);
}
