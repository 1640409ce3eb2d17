/* sal_hd.h — marks element functions shared by the CPU backend and CUDA kernels: one body, two
 * launchers (see DESIGN.md, "The two-device rule"). Include it first in every kernels/ headers. */
#ifndef SAL_HD_H
#define SAL_HD_H

#ifdef __CUDACC__
#define SAL_HD __host__ __device__ static inline
#else
#define SAL_HD static inline
#endif

#endif
