/* testgraph.h — building small graphs in tests (test_incremental.c, test_layout.c): convolutions
 * with random weights, other nodes, a classifier head, and a ResNet-50-shaped model. Failures are
 * Criterion assertions. */
#ifndef SAL_TESTGRAPH_H
#define SAL_TESTGRAPH_H

#include <stdint.h>

#include "model/graph.h"

typedef struct tg_builder {
    sal_graph *g;
    uint64_t rng;   /* weights' random state */
    int count;      /* names made so far */
} tg_builder;

/* a fresh name p<count> in buf (64 chars), returned */
const char *tg_nm(tg_builder *b, const char *p, char *buf);
/* a constant of shape s, uniform in [-scale, scale] */
void tg_const(tg_builder *b, const char *name, sal_shape s, float scale);
/* Conv (+ Relu when relu) of x into a new value, returned in out (64 chars); pad -1: SAME_UPPER */
void tg_conv(tg_builder *b, const char *x, char *out, int cin, int cout, int k, int stride, int pad, int dil,
             int group, int relu);
/* a node of op with inputs ins into a new value out (64 chars) */
sal_node *tg_op(tg_builder *b, const char *type, int n_in, const char **ins, char *out);
void tg_pool(tg_builder *b, const char *type, const char *x, char *out, int k, int s, int pad, int ceil, int cip);
/* global pool, flatten, Gemm to `classes` logits named "y" (the graph's output) */
void tg_head(tg_builder *b, const char *x, int c, int classes);
sal_graph *tg_finish(tg_builder *b);
/* ResNet-50's shape, narrow and shallow: input x (N, C, H, W), stem 7x7/2 (8 channels) + max pool
 * 3x3/2, bottleneck stages of [2, 1, 1] blocks of widths widths[0..2] (x4 out; NULL: 4, 8, 8),
 * strided 3x3 and strided 1x1 projections, 10 logits. */
sal_graph *tg_mini_resnet(int C, const int *widths);

#endif
