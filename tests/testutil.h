/* testutil.h — helpers shared by the Criterion tests: a counter-based random generator, one-node
 * graphs, and the gradient check of a single op's CPU kernels against central finite differences.
 */
#ifndef SAL_TESTUTIL_H
#define SAL_TESTUTIL_H

#include <stdint.h>

#include "model/graph.h"
#include "ops/ops.h"
#include "backend/backend.h"
#include "salient.h"

/* SplitMix64: deterministic per seed, no global state. */
uint64_t tu_next(uint64_t *state);
float tu_uniform(uint64_t *state, float lo, float hi);
void tu_fill(float *x, int64_t n, uint64_t *state, float lo, float hi);
/* A malloc'ed buffer of n (at least 1) uniforms in [lo, hi); NULL when out of memory. */
float *tu_rand_buf(int64_t n, uint64_t *state, float lo, float hi);
/* A seed that differs per run (fresh random inputs), printed by the test on failure. */
uint64_t tu_fresh_seed(void);

/* One input of a one-node graph. */
typedef struct tu_input {
    sal_shape shape;
    const float *f32;     /* constant float data, or NULL */
    const int64_t *i64;   /* constant int64 data, or NULL; both NULL: random runtime input */
} tu_input;

/* Shapes and inputs for one-node graphs: tu_shape(3, 2, 4, 5); a random runtime input; a constant
 * float or int64 input; an absent optional input. */
sal_shape tu_shape(int ndim, ...);
tu_input tu_rt(sal_shape s);
tu_input tu_cf(sal_shape s, const float *v);
tu_input tu_ci(sal_shape s, const int64_t *v);
tu_input tu_absent(void);

/* Graph with a single node (index 0) of op_type; inputs named "x0".."xN", outputs "y0"..;
 * a tu_input with shape.ndim < 0 is an absent optional input. Add attributes on
 * &g->nodes[0] afterwards. */
sal_graph *tu_node_graph(const char *op_type, int n_in, const tu_input *ins, int n_out);
/* tu_node_graph with the graph's opset set. NULL on failure. */
sal_graph *tu_op_graph(const char *op_type, int n_in, const tu_input *ins, int n_out, int opset);
/* A one-node Pad graph of x (xs) with pads (ONNX order: the begins, then the ends, per dim), mode
 * tu_pad_modes[mode] and the constant value, in one of its three forms: 0 the attributes
 * (opset 6), 1 the pads and value as inputs (opset 13), 2 also the axes input (opset 18), listing
 * only the padded dims, in negative form for odd ones. NULL on failure. */
extern const char *const tu_pad_modes[3];
sal_graph *tu_pad_graph(sal_shape xs, const int64_t *pads, int mode, float value, int form);

typedef struct tu_grad_result {
    sal_status st;          /* infer/forward/backward status */
    char msg[SAL_ERROR_LEN];
    double max_err;         /* max |analytic - numeric| / max(|numeric|_inf, 1e-3) */
    int64_t checked;        /* number of input elements checked */
    sal_shape out_shape;    /* output 0 */
} tu_grad_result;

/* Run node 0 of g forward and backward on the CPU kernels with random runtime inputs in
 * [lo, hi], seed the backward with random weights over output 0, and compare every runtime
 * input's gradient (at most max_elems sampled per input) with central differences of the
 * weighted sum (accumulated in double), step eps. */
tu_grad_result tu_grad_check(sal_graph *g, uint64_t seed, float lo, float hi, float eps,
                             int64_t max_elems);

/* Run node 0 forward with the given runtime input data (in order of runtime inputs).
 * *out receives a malloc'd copy of output 0 and its shape. */
sal_status tu_forward(sal_graph *g, const float *const *runtime_inputs, float **out,
                      sal_shape *out_shape, sal_error *err);

/* The twin check (kernels/twin.h): node 0 of g forward and backward with the CPU kernels and
 * with the CUDA backend's element functions run on the host (sal_twin_run), on the same random
 * runtime inputs in [lo, hi] and a random seed over output 0; gradients are ADDED onto the same
 * random starting values on both sides. guided: the call's Guided Backprop flag. */
typedef struct tu_twin_result {
    sal_status st;             /* a CPU or twin failure */
    char msg[SAL_ERROR_LEN];
    double fwd_err;            /* max |twin - cpu| / max(max |cpu|, 1e-6) over the float outputs */
    double bwd_err;            /* the same over every runtime input's gradient */
    int64_t n_checked;         /* elements compared */
} tu_twin_result;
tu_twin_result tu_twin_check(sal_graph *g, uint64_t seed, float lo, float hi, int guided);

/* Path of a file under the source tree ($SAL_SOURCE_DIR when set, else the configured one). */
const char *tu_src_path(const char *rel, char *buf, int len);

/* max |a - ref| / max(max |ref|, floor); a NaN difference counts as the worst. */
double tu_rel_diff(const float *a, const float *ref, int64_t n, double floor);
/* Method m's defaults with its sample counts cut (RISE masks, KernelSHAP coalitions on a 4x4
 * grid, noise samples, IG steps, GradientSHAP samples) so that every method runs in a moment on
 * the fixture CNN, with the given seed. */
sal_explain_opts tu_quick_opts(sal_method m, uint64_t seed);
/* Load the model at `rel` (from the source tree) and open a session on `dev`. */
sal_status tu_open(const char *rel, sal_device dev, sal_model **m, sal_session **s, sal_error *err);

#endif
