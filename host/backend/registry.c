/* registry.c — which backends this build has. The CUDA entry points live in backend/cuda when
 * the CUDA backend is built (SAL_HAVE_CUDA); this file answers for a CPU-only build. */
#include "backend.h"

#ifndef SAL_HAVE_CUDA
int sal_backend_cuda_built(void) { return 0; }

sal_status sal_backend_cuda_create(sal_backend **out, sal_error *err) {
    *out = NULL;
    return sal_fail(err, SAL_ERR_DEVICE, "this salient was built without the CUDA backend");
}
#endif
