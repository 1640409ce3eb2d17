/* cpu_mem.h — large CPU buffers on transparent huge pages (cpu_mem.c). */
#ifndef SAL_CPU_MEM_H
#define SAL_CPU_MEM_H

#include <stddef.h>

/* bytes of memory, 64-byte aligned; from 2 MiB up, 2 MiB-aligned and advised onto huge pages
 * (unless SAL_CPU_HUGEPAGES=0). NULL when out of memory. Release with free(). */
void *sal_cpu_alloc(size_t bytes);

#endif
