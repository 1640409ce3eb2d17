/* methods.h — internal entry points of the attribution methods (host/methods). */
#ifndef SAL_METHODS_H
#define SAL_METHODS_H

#include "backend/backend.h"
#include "model/graph.h"
#include "method_prims.h"

/* Quadrature points and weights of an Integrated Gradients rule on [0,1] (Captum's rules). */
sal_status sal_ig_rule_points(sal_ig_rule rule, int n, double *alpha, double *weight);

/* What every method needs: the session, options, input geometry, internal batch size. */
typedef struct sal_method_ctx {
    sal_session *s;
    const sal_explain_opts *o;
    int c, h, w, k;      /* input channels and size, number of classes */
    int64_t per;         /* c*h*w */
    int batch;           /* internal batch */
    /* targets NULL on a method whose passes start with the image itself (saliency, input x
     * gradient, guided backprop, the gradient CAMs): the call's targets (n), -1 until the image's
     * own pass picks its top-1 class from the logits it computed (no separate forward pass);
     * NULL otherwise */
    int *top1_out;
    /* Guided Grad-CAM: the ReLU'd Grad-CAM maps of the call's images (n, cam_lh, cam_lhw / cam_lh)
     * in the backend's memory, multiplied (nearest-upsampled) into the guided gradients; NULL
     * otherwise */
    const float *cam;
    int cam_lh;
    int64_t cam_lhw;
    /* progress (sal_explain_opts.progress): model passes done of prog.total, and when the caller
     * last heard of them (seconds, monotonic clock) */
    sal_progress prog;
    double prog_last;
} sal_method_ctx;

/* Progress: sal_method_progress_start fixes the call's total (once; later calls are ignored) and
 * reports done 0; sal_method_progress adds `passes` done and reports when SAL_PROGRESS_INTERVAL_MS
 * have passed since the last report (always when force). Both return SAL_ERR_CANCELLED, with the
 * session's error set, when the callback asks to stop. No callback: nothing, SAL_OK. */
sal_status sal_method_progress_start(sal_method_ctx *cx, int64_t total);
sal_status sal_method_progress(sal_method_ctx *cx, int64_t passes, int force);

/* The session's backend and plans on batches held in its memory (host/engine/session.c).
 * dev_plan plans n images (a gradient plan when grad, capturing value `capture` or -1) and
 * returns the backend buffer where the batch goes; dev_forward runs it and downloads the logits
 * (n, k); dev_backward seeds the output with seed (host, (n, k)); then dev_input_grad and
 * dev_capture (the captured value's activation, or with grad its gradient) point at the results
 * in the backend's memory, NULL where the value does not reach the output. */
/* A session on a backend made by the caller (tests: sal_backend_cpu_guarded_create); it takes
 * ownership of b, also on failure. */
sal_status sal_session_create_on(const sal_model *m, sal_backend *b, const sal_session_opts *o,
                                 sal_session **out, sal_error *err);
sal_backend *sal_session_backend(sal_session *s);
/* The session's engine (incremental inference plans and runs it directly: engine/incremental.h). */
struct sal_engine *sal_session_engine(sal_session *s);
sal_error *sal_session_err(sal_session *s);
/* Buffers of the session backend's memory that the session keeps for reuse (not zeroed): get one
 * of at least `bytes` (NULL, with the session's error set, when there is none), put it back. */
#define SAL_SCRATCH_MAX 32
void *sal_session_scratch(sal_session *s, size_t bytes);
void sal_session_scratch_put(sal_session *s, const void *p);
int sal_session_find_layer(sal_session *s, const char *layer);
sal_status sal_session_dev_plan(sal_session *s, int n, int h, int w, int grad, int capture, float **dev_in);
/* dev_plan capturing a set of values (n_caps of them; one forward and one backward pass then give
 * all of their activations and gradients: dev_captured) */
sal_status sal_session_dev_plan_set(sal_session *s, int n, int h, int w, int grad, const int *caps, int n_caps,
                                    float **dev_in);
sal_status sal_session_dev_forward(sal_session *s, float *logits);
/* dev_forward in two steps: queue the forward pass, then wait for it and download the logits */
sal_status sal_session_dev_launch(sal_session *s);
sal_status sal_session_dev_logits(sal_session *s, float *logits);
sal_status sal_session_dev_backward(sal_session *s, const float *seed, int guided, int stop_at_capture);
const float *sal_session_dev_input_grad(sal_session *s);
const float *sal_session_dev_capture(sal_session *s, int grad);   /* the lowest captured value's */
/* A captured value's activation (grad 0) or gradient (grad 1) in the backend's memory; NULL when
 * the current plan does not capture it, or (gradient) when it does not reach the output. */
const float *sal_session_dev_captured(sal_session *s, int value, int grad);

/* The session's backend and error of a method call (shorthands for every method file). */
static inline sal_backend *bk(sal_method_ctx *cx) { return sal_session_backend(cx->s); }
static inline sal_error *serr(sal_method_ctx *cx) { return sal_session_err(cx->s); }
/* The class of the largest logit of z (k); ties: the lower class. */
int sal_top1_of(const float *z, int k);

/* Scores (logit, or probability with explain_prob) of targets tg for n images already in the
 * backend's memory, one after the other from d (n, C,H,W): forward passes in batches. */
sal_status sal_method_scores(sal_method_ctx *cx, const float *d, int n, const int *tg, float *scores);
/* A batched pass whose images are built, and whose gradients are consumed, in the backend's
 * memory: fill writes items [first, first + nb) of the method's sequence into dev_in (nb,C,H,W);
 * take (NULL: forward only) reads their input gradients dev_grad (NULL: the output does not
 * depend on the input) next to the batch dev_in. tg: the items' targets (tg[0] is item first).
 * Out of memory halves the internal batch and runs the items in two halves. */
typedef struct sal_dev_io {
    sal_status (*fill)(void *ctx, float *dev_in, int first, int nb);
    sal_status (*take)(void *ctx, const float *dev_grad, const float *dev_in, int first, int nb);
    void *ctx;
    /* optional: called once the batch's forward pass is queued, before the host waits for it (a
     * GPU computes meanwhile): the place to start uploading the next batch */
    sal_status (*launched)(void *ctx, int first, int nb);
} sal_dev_io;
sal_status sal_method_pass_dev(sal_method_ctx *cx, int first, int nb, const int *tg, int guided,
                               const sal_dev_io *io, float *scores);
/* Items [0, n) of io's sequence, a pass of the internal batch at a time (a retry may shrink it).
 * per_item: tg and scores run along the items (item i: tg[i], scores[i]); else every pass reads
 * the same targets tg[0 .. batch) and overwrites scores[0 .. batch) (one target; scores unused). */
sal_status sal_method_passes(sal_method_ctx *cx, int n, const int *tg, int guided, const sal_dev_io *io,
                             float *scores, int per_item);

/* The backend's memory and the method primitives (kernels/method_prims.h) for the methods:
 * failures set the session's error (sal_session_err). sal_dalloc returns zeroed memory or NULL. */
sal_status sal_mp(sal_method_ctx *cx, int fn, int64_t count, const sal_mp_args *a);
void *sal_dalloc(sal_method_ctx *cx, size_t bytes);
void sal_dfree(sal_method_ctx *cx, const void *p);
sal_status sal_dput(sal_method_ctx *cx, void *dst, const void *src, size_t bytes);
sal_status sal_dget(sal_method_ctx *cx, void *dst, const void *src, size_t bytes);
sal_status sal_dzero(sal_method_ctx *cx, void *dst, size_t bytes);
/* Arguments with the input geometry and the seed filled in. */
sal_mp_args sal_mp_base(const sal_method_ctx *cx);

/* A batch builder and an accumulator that are one primitive each, for sal_dev_io: fill runs
 * fill_fn over the nb items (count nb*per, out = the batch, k0 = first, nb); take runs take_fn
 * over the pixels (count per, in = the gradients, in2 = the batch, k0 = first, nb). */
typedef struct sal_prim_io {
    sal_method_ctx *cx;
    sal_mp_args a;
    int fill_fn, take_fn;
} sal_prim_io;
sal_status sal_prim_fill(void *ctx, float *dev_in, int first, int nb);
sal_status sal_prim_take(void *ctx, const float *dev_grad, const float *dev_in, int first, int nb);

/* The baseline o->baseline (zero, black, blur, uniform from the seed, user) of image `image`,
 * x (C,H,W), into b (C,H,W). */
sal_status sal_method_baseline(sal_method_ctx *cx, const float *x, int image, float *b);
/* Separable box blur of radius r of x (c,h,w) into out. */
void sal_box_blur(const float *x, int c, int h, int w, int r, float *out);

/* The method families, called by sal_explain_impl (methods.c) with the call's context, its n images
 * x (host, (n,C,H,W)) and targets tg (n; -1: the image's own pass picks its top-1 class where
 * cx->top1_out is set). Input-space methods (gradient.c: saliency, input x gradient, guided
 * backprop, IG, the NoiseTunnel family) and occlusion (occlusion.c) fill out->attr (n,C,H,W),
 * allocated and zeroed by the caller, and out->scores; the CAM family (cam.c) allocates out->attr
 * (n, lh, lw) and out->upsampled (n, H, W) and names out->layer. sal_explain_shared (cam.c): every
 * method of ms (nm, each sal_method_shares_pass) from one forward and one backward pass per image,
 * out[j] the maps of ms[j]. */
sal_status sal_explain_gradient(sal_method_ctx *cx, const float *x, int n, const int *tg, sal_maps *out);
sal_status sal_explain_occlusion(sal_method_ctx *cx, const float *x, int n, const int *tg, sal_maps *out);
sal_status sal_explain_cam(sal_method_ctx *cx, const sal_model *m, const float *x, int n, const int *tg,
                           sal_maps *out);
sal_status sal_explain_shared(sal_method_ctx *cx, const sal_model *m, const sal_method *ms, int nm,
                              const float *x, int n, int *tg, sal_maps *out);

/* Perturbation and Shapley methods (host/methods/perturb.c): fill out->attr (n,C,H,W) and
 * out->scores; out->attr is allocated and zeroed by the caller. */
sal_status sal_explain_rise(sal_method_ctx *cx, const float *x, int n, const int *tg, sal_maps *out);
sal_status sal_explain_gradshap(sal_method_ctx *cx, const float *x, int n, const int *tg, sal_maps *out);
sal_status sal_explain_kernelshap(sal_method_ctx *cx, const float *x, int n, const int *tg, sal_maps *out);

/* KernelSHAP's superpixels: a SLIC-like k-means of x (C,H,W) into about K labels (H,W); *m
 * receives the number of superpixels. */
sal_status sal_kshap_superpixels(const float *x, int C, int H, int W, int K, int *labels, int *m);

/* The softmax probability of class t from logits z (k of them); with seed, its gradient w.r.t.
 * the logits into seed (k) (explain_prob). */
float sal_prob_seed(const float *z, int k, int t, float *seed);
/* pytorch-grad-cam's presentation of a layer map L (lh, lw) as an (h, w) map (min-max, bilinear,
 * ReLU, min-max; relu 0: divided by max |L|). */
sal_status sal_cam_final(const float *L, int lh, int lw, float *out, int h, int w, int relu);
/* The grid of T tokens on an in_h x in_w input (cam_layer.c): T - 1 (*skip 1: a class token
 * first) or T (*skip 0) equal square patches; 0 when none fits. */
int sal_token_grid(int64_t T, int in_h, int in_w, int *gh, int *gw, int *skip);
/* Attention rollout and Chefer's relevance (host/methods/attention.c): out->attr (n, gh, gw),
 * out->upsampled (n, H, W), out->scores, out->layer. */
sal_status sal_explain_attention(sal_method_ctx *cx, const sal_model *m, const float *x, int n, const int *tg,
                                 sal_maps *out);

/* CAM layers and attention layers (host/methods/cam_layer.c). resolve: sal_session_cam_layer's
 * rule with the message in err. attention_layers: the nodes (*nodes, malloc'd, in execution
 * order; *count of them) whose outputs are attention probabilities, every one over the same
 * *heads heads and *tokens tokens (planned for one (C,h,w) image). */
sal_status sal_cam_layer_resolve(sal_session *s, const sal_model *m, int h, int w, const char *layer, int th,
                                 int tw, sal_cam_layer *out, sal_error *err);
sal_status sal_attention_layers(sal_session *s, const sal_model *m, int h, int w, int **nodes, int *count,
                                int *heads, int *tokens, sal_error *err);
const sal_model *sal_session_model(const sal_session *s);

sal_status sal_explain_impl(sal_session *s, const sal_model *m, const sal_explain_opts *o,
                            const float *x, int n, int h, int w, const int *targets, sal_maps *out,
                            sal_error *err);
/* sal_explain_many: nm methods (o->method ignored), out[j] the maps of ms[j]. */
sal_status sal_explain_many_impl(sal_session *s, const sal_model *m, const sal_explain_opts *o,
                                 const sal_method *ms, int nm, const float *x, int n, int h, int w,
                                 const int *targets, sal_maps *out, sal_error *err);

#endif
