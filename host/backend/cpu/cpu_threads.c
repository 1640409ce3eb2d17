/* cpu_threads.c — OpenMP defaults for a shared machine: the default thread count from the CPUs
 * this process may actually use (its affinity mask and its cgroup's CPU quota), not the machine's
 * count. The default wait (a short spin, GOMP_SPINCOUNT=3000) is set by libsalient_ompenv.so (ompenv/sal_ompenv.c), which must
 * run before libgomp's constructor: see there. */
#define _GNU_SOURCE
#include "cpu_threads.h"
#include "salient.h"

#include <omp.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------------------------------ */
/* CPU quota                                                                                        */

/* The first line of a small file into buf; 0 on success. */
static int read_line(const char *path, char *buf, size_t size) {
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char *ok = fgets(buf, (int)size, f);
    fclose(f);
    return ok ? 0 : -1;
}

/* CPUs allowed by a quota/period pair (rounded up), 0 for none. */
static int quota_cpus(long long quota, long long period) {
    if (quota <= 0 || period <= 0) return 0;
    long long n = (quota + period - 1) / period;
    return n > 4096 ? 4096 : (int)n;
}

/* cgroup v2: cpu.max ("max 100000" or "200000 100000") in dir and each of its parents up to root,
 * the smallest limit wins. */
static int v2_quota(const char *root, const char *rel) {
    char dir[4096], path[4200], line[128];
    if (snprintf(dir, sizeof dir, "%s%s", root, rel) >= (int)sizeof dir) return 0;
    size_t rootlen = strlen(root);
    int best = 0;
    for (;;) {
        size_t len = strlen(dir);
        while (len > rootlen && dir[len - 1] == '/') dir[--len] = '\0';
        if (snprintf(path, sizeof path, "%s/cpu.max", dir) < (int)sizeof path &&
            !read_line(path, line, sizeof line)) {
            long long q, p;
            if (sscanf(line, "%lld %lld", &q, &p) == 2) {
                int n = quota_cpus(q, p);
                if (n && (!best || n < best)) best = n;
            }
        }
        if (len <= rootlen) break;
        char *slash = strrchr(dir + rootlen, '/');
        if (!slash) break;
        *slash = '\0';
    }
    return best;
}

/* cgroup v1: cpu.cfs_quota_us / cpu.cfs_period_us (quota -1 = none) under the cpu controller's
 * mount, at the process's cgroup and at the mount's root (where a container's own limit sits when
 * /proc/self/cgroup names the host's path). */
static int v1_quota(const char *root, const char *rel) {
    static const char *mounts[] = {"/cpu,cpuacct", "/cpu", "/cpuacct,cpu"};
    int best = 0;
    for (size_t m = 0; m < sizeof mounts / sizeof *mounts; m++)
        for (int at_root = 0; at_root < 2; at_root++) {
            char qpath[4200], ppath[4200], line[64];
            const char *r = at_root ? "" : rel;
            if (snprintf(qpath, sizeof qpath, "%s%s%s/cpu.cfs_quota_us", root, mounts[m], r) >= (int)sizeof qpath ||
                snprintf(ppath, sizeof ppath, "%s%s%s/cpu.cfs_period_us", root, mounts[m], r) >= (int)sizeof ppath)
                continue;
            long long q, p;
            if (read_line(qpath, line, sizeof line) || sscanf(line, "%lld", &q) != 1) continue;
            if (read_line(ppath, line, sizeof line) || sscanf(line, "%lld", &p) != 1) continue;
            int n = quota_cpus(q, p);
            if (n && (!best || n < best)) best = n;
        }
    return best;
}

int sal_cpu_quota_cpus(const char *cgroup_root, const char *proc_self_cgroup) {
    if (!cgroup_root) cgroup_root = "/sys/fs/cgroup";
    if (!proc_self_cgroup) proc_self_cgroup = "/proc/self/cgroup";
    FILE *f = fopen(proc_self_cgroup, "r");
    if (!f) return 0;
    char line[4096], root2[4200];
    int best = 0;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        /* "ID:CONTROLLERS:PATH"; v2's unified line is "0::PATH" */
        char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (!c2) continue;
        const char *ctrls = c1 + 1, *rel = c2 + 1;
        *c1 = '\0';
        *c2 = '\0';
        int n = 0;
        if (!strcmp(line, "0") && !*ctrls) {
            /* pure v2 mounts at the root; hybrid v1/v2 systems mount it at unified/ */
            n = v2_quota(cgroup_root, !strcmp(rel, "/") ? "" : rel);
            if (snprintf(root2, sizeof root2, "%s/unified", cgroup_root) < (int)sizeof root2) {
                int u = v2_quota(root2, !strcmp(rel, "/") ? "" : rel);
                if (u && (!n || u < n)) n = u;
            }
        } else {
            char list[256];
            snprintf(list, sizeof list, ",%s,", ctrls);
            if (strstr(list, ",cpu,")) n = v1_quota(cgroup_root, !strcmp(rel, "/") ? "" : rel);
        }
        if (n && (!best || n < best)) best = n;
    }
    fclose(f);
    return best;
}

/* ------------------------------------------------------------------------------------------------ */
/* Default thread count                                                                             */

int sal_cpu_affinity_cpus(void) {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) != 0) return 0;
    return CPU_COUNT(&set);
}

int sal_cpu_default_threads(void) {
    (void)sal_ompenv_default_policy();   /* keeps libsalient_ompenv.so linked (--as-needed) */
    /* the user's OMP_NUM_THREADS first, as every OpenMP program reads it */
    const char *env = getenv("OMP_NUM_THREADS");
    if (env && *env) {
        int n = omp_get_max_threads();
        if (n > 0) return n;
    }
    int n = sal_cpu_affinity_cpus();
    if (n <= 0) n = omp_get_num_procs();
    int q = sal_cpu_quota_cpus(NULL, NULL);
    if (q > 0 && q < n) n = q;
    return n > 0 ? n : 1;
}

int sal_cpu_threads_default(void) { return sal_cpu_default_threads(); }
