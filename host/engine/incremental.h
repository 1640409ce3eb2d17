/* incremental.h — incremental inference (Krypton: Nakandala, Kumar, Papakonstantinou, "Incremental
 * and Approximate Inference for Faster Occlusion-based Deep CNN Explanations", SIGMOD 2019).
 *
 * Occlusion-like methods run many variants of one input that each differ from it only inside a
 * small rectangle. After one pass over the base input with every activation kept (a KEEP plan of
 * the engine), a batch of variants is run layer by layer on patches: each value's changed region
 * is propagated through the graph (a Conv or pooling grows it by its kernel, dilation and
 * padding and shrinks it by its stride; element-wise ops, BatchNorm and channel Concat keep the
 * union of their inputs'; anything else, global pooling, Gemm/MatMul on flattened features,
 * makes it the whole tensor), and only that patch of each layer's output is recomputed, from a
 * tile cut out of the base activation with the input's patch laid over it. Once a layer's patch
 * would cover more than `threshold` of its plane, that layer and everything that reads it are
 * recomputed whole for the batch. Exact by construction: a recomputed patch is the same
 * arithmetic on the same numbers as in a full pass (differences, if any, come only from the
 * backend's kernels choosing another blocking for the smaller shapes; tests/test_incremental.c
 * bounds them against full passes).
 *
 * Batching: the variants of a batch share one patch size per value (the largest of the batch;
 * a window clipped by the border gets the same size, moved inside), so each layer runs as one
 * batched kernel over (nb, C, ph, pw) tiles. The tiles are cut by the method primitive
 * patch_rows (kernels/method_prims.h) through the backend table, and the layers run through the
 * backend's forward with parameters made by the ops' own infer for the tile's shape (a Conv or
 * pool tile carries its padding explicitly, so its node is planned without pads). Backends that
 * do not set sal_backend.incremental (CUDA for now) are refused with SAL_ERR_UNSUPPORTED: the
 * caller recomputes whole passes there.
 *
 * Usage: sal_inc_create once per engine; sal_inc_base per base input; sal_inc_forward per batch
 * of variants. The engine must not plan or run anything else between sal_inc_base and the last
 * sal_inc_forward of that base (checked: SAL_ERR_INTERNAL). */
#ifndef SAL_INCREMENTAL_H
#define SAL_INCREMENTAL_H

#include "engine.h"

typedef struct sal_inc sal_inc;

typedef struct sal_inc_opts {
    /* a value whose batch patch (rows x columns) covers more than this fraction of its plane is
     * recomputed whole: 0 recomputes every layer whole (a full pass over each variant, through
     * this code); 1 keeps patches as long as they fit. Default 0.5. */
    double threshold;
} sal_inc_opts;

sal_inc_opts sal_inc_opts_default(void);

/* SAL_ERR_UNSUPPORTED when the engine's backend does not do incremental inference. */
sal_status sal_inc_create(sal_engine *e, const sal_inc_opts *o, sal_inc **out, sal_error *err);
void sal_inc_free(sal_inc *s);

/* The base input x (backend memory, shape (1,C,H,W)): plans the engine (SAL_PLAN_KEEP) and runs
 * it. */
sal_status sal_inc_base(sal_inc *s, const sal_shape *shape, const float *x, sal_error *err);

/* nb variants of the base input: variant k is the base with the rectangle rows [r[0], r[2]) x
 * columns [r[1], r[3]) of rects + 4k (clipped to the input; empty: the base itself) replaced by
 * the same pixels of repl (C,H,W, backend memory). Writes output 0 of each variant to out (host,
 * (nb, ...)). */
sal_status sal_inc_forward(sal_inc *s, int nb, const int *rects, const float *repl, float *out,
                           sal_error *err);

/* Conv/Gemm/MatMul FLOPs (2 x multiply-adds) that sal_inc_forward ran, and what full passes over
 * the same variants would have run, since sal_inc_create. */
void sal_inc_flops(const sal_inc *s, double *ran, double *full);

#endif
