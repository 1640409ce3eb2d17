/* engine.h — plans and runs batched forward and backward-to-input passes of a graph on a backend.
 *
 * A plan is made for concrete input shapes: shape inference, plan-time folding of shape
 * subgraphs, one activation arena with lifetimes (forward plans reuse memory, gradient plans keep
 * every activation for the backward pass), one gradient arena, one scratch buffer. Nothing is
 * allocated per op. Backward seeds output 0 and propagates to the inputs only (never to weights);
 * it can capture a set of values (activations and gradients) and stop once their gradients are
 * complete. */
#ifndef SAL_ENGINE_H
#define SAL_ENGINE_H

#include "../backend/backend.h"

typedef struct sal_engine sal_engine;

/* FORWARD reuses activation memory; GRAD keeps every activation and adds gradients; KEEP keeps
 * every activation without gradients (the base pass of incremental inference, incremental.h). */
enum { SAL_PLAN_FORWARD = 0, SAL_PLAN_GRAD = 1, SAL_PLAN_KEEP = 2 };

sal_status sal_engine_create(const sal_graph *g, sal_backend *b, sal_engine **out, sal_error *err);
void sal_engine_free(sal_engine *e);

/* in_shapes: one per graph input (g->inputs order). captures: n_captures value indices (any
 * order, repeats and negative entries ignored) whose activations the plan keeps (never fused
 * away, alive to the end of a forward plan) and whose gradients a gradient plan completes before
 * a backward pass that stops early (stop_at_capture). Replans only when something changed (the
 * shapes, the mode or the set). */
sal_status sal_engine_plan_set(sal_engine *e, const sal_shape *in_shapes, int mode, const int *captures,
                               int n_captures, sal_error *err);
/* The same with one captured value (capture_value: a value index, or -1 for none). */
sal_status sal_engine_plan(sal_engine *e, const sal_shape *in_shapes, int mode, int capture_value,
                           sal_error *err);
/* Shape of a value under the current plan (NULL when unknown). */
const sal_shape *sal_engine_shape(const sal_engine *e, int value);
/* Conv/Gemm/MatMul FLOPs (2 x multiply-adds) run since creation, forward and backward-data. */
double sal_engine_flops(const sal_engine *e);
/* Refuse (SAL_ERR_NOMEM) plans whose memory would exceed `bytes` (0 = no limit). */
void sal_engine_set_mem_limit(sal_engine *e, size_t bytes);
/* Bytes of the plan's activation, gradient and scratch memory. */
size_t sal_engine_plan_bytes(const sal_engine *e);
/* How many plans the engine has made so far (a plan found in its cache is not made again). */
unsigned long sal_engine_plans_made(const sal_engine *e);

/* inputs: host data, one per graph input, uploaded first; NULL runs on what the backend's input
 * buffers already hold (see sal_engine_input_dev). */
sal_status sal_engine_forward(sal_engine *e, const float *const *inputs, sal_error *err);
/* Backend memory of the current plan: graph input i (write a batch here, then forward with
 * inputs NULL), a value's activation (NULL for constants), a value's gradient (gradient plans;
 * NULL when the value does not reach the output). Valid until the next plan. */
float *sal_engine_input_dev(sal_engine *e, int i);
const float *sal_engine_value_dev(sal_engine *e, int value);
const float *sal_engine_grad_dev(sal_engine *e, int value);
sal_status sal_engine_read(sal_engine *e, int value, float *host, sal_error *err);
/* The layout pass (layout_pass.c: on backends with layout_nhwc, forward and gradient plans): 1
 * when the current plan holds this value (and its gradient) channels-last, (N, H, W, C). Such a
 * value is never a graph input or output nor captured; sal_engine_value_dev / grad_dev /
 * data_dev give NULL for it, and sal_engine_read / read_grad convert it to (N, C, H, W).
 * sal_engine_n_nhwc: how many values the current plan holds so. */
int sal_engine_nhwc(const sal_engine *e, int value);
int sal_engine_n_nhwc(const sal_engine *e);
/* First writes (backends with grad_set, gradient plans): how many gradients a full backward pass
 * of the current plan has a step write first (sal_op_call.gin_set) rather than zero beforehand. */
int sal_engine_n_first_writes(const sal_engine *e);
/* Add + Relu fusion (backends with fuse_add_act): how many Relu / Clip steps of the current plan
 * run inside the same-shape Add before them (sal_bcast_params.act). */
int sal_engine_n_fused_add(const sal_engine *e);
/* seed: host (shape of output 0). stop_at_capture: skip the steps before the earliest captured
 * value's producer (every captured value's gradient is then complete; nothing earlier is). */
sal_status sal_engine_backward(sal_engine *e, const float *seed, int guided, int stop_at_capture,
                               sal_error *err);
sal_status sal_engine_read_grad(sal_engine *e, int value, float *host, sal_error *err);

/* The current plan's steps, for incremental inference (incremental.c), valid until the next plan:
 * step s runs graph node sal_engine_step(e, s, ...) with the params its infer made (*params;
 * NULL for a plan-folded constant); *alias: output 0 is input 0's memory and no kernel runs;
 * *fused: that alias is a Relu/Clip running inside the Conv before it (that Conv's params carry
 * act). Steps that plan-time folding evaluated are not in the list. */
int sal_engine_n_steps(const sal_engine *e);
sal_backend *sal_engine_backend(const sal_engine *e);
const sal_graph *sal_engine_graph(const sal_engine *e);
int sal_engine_step(const sal_engine *e, int s, const void **params, int *alias, int *fused);
/* Backend memory of a value under the current plan: its activation, or a float constant's
 * device copy; NULL for anything else. */
const float *sal_engine_data_dev(sal_engine *e, int value);
/* Host data of a value that is constant under the current plan (the graph's or plan-folded),
 * NULL for a run-time value. */
const sal_tensor *sal_engine_konst(const sal_engine *e, int value);
/* A number that changes whenever the current plan's activations are rewritten (a forward pass,
 * a replan): incremental inference checks with it that its base activations are still there. */
unsigned long sal_engine_run_stamp(const sal_engine *e);

#endif
