/* twin.h — one body, two launchers, for every model op that is not cuDNN's or cuBLAS's.
 *
 * Each such op is written once as element functions (SAL_HD: compiled by gcc for the host and by
 * nvcc for the device), plus a host-side plan that turns a sal_op_call (ops.h) into a short list of
 * launches: (element function, element count, arguments). Element function `f` is called for
 * i = 0 .. count-1, each call independent of the others, and writes only what belongs to element i
 * (an output element, or a gradient element it ADDS to, gathering every contribution itself, so no
 * two calls write the same place and the result does not depend on the order: deterministic on
 * every device). Launches of one call run in order.
 *
 *   - the CUDA backend runs a launch as one kernel, one thread per element (kernels/cuda_twin.cu);
 *   - the host runner (host/backend/twin/twin.c: sal_twin_run) runs the same element functions in a
 *     plain loop, which is how the tests check the device code's math against the CPU backend
 *     without a GPU (tests/test_twins_*.c).
 *
 * Element function lists: kernels/twin_elem.h (activations, broadcasting binary ops, BatchNorm,
 * Softmax), kernels/twin_nn.h (pooling, ReduceMean, LRN, Concat, Transpose, Pad),
 * kernels/twin_math.h (Pow, Sqrt, Erf, Gelu, Selu, Elu, Softplus, LayerNormalization, ReduceSum,
 * ReduceMax) and kernels/twin_index.h (Slice, Gather, Expand, Tile, Where, DepthToSpace,
 * SpaceToDepth); the enum of all of them is in kernels/twin_all.h. */
#ifndef SAL_TWIN_H
#define SAL_TWIN_H

#include "sal_hd.h"
#include "ops/ops.h"

#define SAL_TW_MAX_IN 5   /* BatchNormalization's five inputs */

/* Everything one launch's element function reads: copied by value into the kernel's parameters
 * (about 1.1 KB), so it holds no host pointers except the backend-memory data pointers. */
typedef struct sal_tw_args {
    const float *in[SAL_TW_MAX_IN];   /* inputs of this launch (plans choose which) */
    float *out[3];                    /* outputs (LayerNorm has three) */
    const float *gout[2];             /* gradients w.r.t. the outputs (backward) */
    float *gin[SAL_TW_MAX_IN];        /* gradients w.r.t. the inputs: ADD here (backward) */
    sal_shape in_shape[SAL_TW_MAX_IN], out_shape[2];
    int guided;                       /* Guided Backprop rule for ReLU-family backward */
    int64_t k0, k1, k2, k3;           /* free for plans: offsets, lengths, which input ... */
    union {
        sal_scalar_params s;
        sal_bcast_params b;
        sal_pool_params pool;
        sal_axis_params ax;
        sal_transpose_params t;
        sal_pad_params pad;
        sal_lrn_params lrn;
        sal_bn_params bn;
        sal_pow_params pw;      /* twin_math.h */
        sal_conv_params cv;     /* ConvTranspose */
        sal_ln_params ln;
        sal_view_params v;      /* twin_index.h */
        sal_tile_params tile;
        sal_where_params wh;
    } p;
} sal_tw_args;

typedef struct sal_tw_launch {
    int fn;          /* SAL_TW_<name> (kernels/twin_all.h) */
    int64_t count;   /* number of elements: fn(i, args) for i in [0, count) */
} sal_tw_launch;

#endif /* SAL_TWIN_H */
