/* cpu_threads.h — the CPU backend's OpenMP defaults: the default thread count from the CPUs the
 * process may use (cpu_threads.c), and the passive wait policy that libsalient_ompenv.so sets
 * before libgomp starts (ompenv/sal_ompenv.c). */
#ifndef SAL_CPU_THREADS_H
#define SAL_CPU_THREADS_H

/* What OMP_WAIT_POLICY becomes while the process loads when the user set neither
 * OMP_WAIT_POLICY nor GOMP_SPINCOUNT ("passive"); defined in libsalient_ompenv.so. */
const char *sal_ompenv_default_policy(void);

/* Default thread count: omp_get_max_threads() when the user set OMP_NUM_THREADS, else the CPUs
 * in the affinity mask (taskset, cpuset), capped by the cgroup CPU quota (v2 cpu.max, v1
 * cpu.cfs_quota_us / cpu.cfs_period_us, rounded up); at least 1. */
int sal_cpu_default_threads(void);

/* CPUs in this thread's affinity mask (0 if unknown). */
int sal_cpu_affinity_cpus(void);

/* CPUs allowed by the cgroup CPU quota, 0 when there is none. cgroup_root (NULL:
 * /sys/fs/cgroup) and proc_self_cgroup (NULL: /proc/self/cgroup) let tests point at a fake tree. */
int sal_cpu_quota_cpus(const char *cgroup_root, const char *proc_self_cgroup);

#endif
