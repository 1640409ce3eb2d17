/* fold.h — evaluating nodes on host tensors (constant folding at load and plan time). */
#ifndef SAL_FOLD_H
#define SAL_FOLD_H

#include "graph.h"

/* Evaluate node n on host tensors in[] (NULL for absent inputs). For Shape, only in_shape[0] is
 * read and in[0] may be NULL. outs[] receives n->n_out new tensors. */
sal_status sal_fold_node(const sal_graph *g, const sal_node *n, const sal_tensor *const *in,
                         const sal_shape *const *in_shape, sal_tensor **outs, sal_error *err);

/* fold_shape.c: the shape-arithmetic ops (Equal, Less, Greater, Not, Mod, Range, ScatterND, and
 * Where, Expand, Tile on constants; Transpose of integers) on host tensors of any type;
 * sal_fold_node calls it. */
int sal_fold_shape_handles(const sal_node *n, const sal_tensor *const *in);
sal_status sal_fold_shape_op(const sal_node *n, const sal_tensor *const *in, sal_tensor **outs,
                             sal_error *err);

#endif
