/* salient.h — the only public header of salient, a toolkit that explains image classifiers.
 *
 * Usage (error handling elided, see below):
 *
 *     sal_error err;
 *     sal_model *m;
 *     sal_model_load("model.onnx", &m, &err);            // parse, fold constants, fold BatchNorm
 *     sal_session_opts o = sal_session_opts_default();
 *     sal_session *s;
 *     sal_session_create(m, &o, &s, &err);               // picks a backend
 *     sal_forward(s, x, n, h, w, logits);                // x: (n,C,h,w) float32, logits: (n,K)
 *     sal_grad_opts g = sal_grad_opts_default();
 *     sal_gradient(s, x, n, h, w, &g, &out);             // d(seed . logits)/d(input)
 *     sal_session_free(s);
 *     sal_model_free(m);
 *
 * Contract:
 *  - Every fallible call returns a sal_status; SAL_OK is 0. On failure a message naming the file,
 *    node, op or option at fault is left in the caller's sal_error (calls without a session) or in
 *    the session (sal_session_error). Passing err == NULL is allowed.
 *  - The library never exits, never prints and keeps no global mutable state: sessions on
 *    different threads are independent. A model may be shared by sessions once loaded.
 *  - Whoever allocates frees; every *_free(NULL) is a no-op.
 *  - Tensors are float32, row-major, NCHW for images, whatever the model's own layout: a
 *    channels-last (NHWC) model is fed transposed (sal_model_input_layout). The batch dimension
 *    of the model's input is treated as dynamic unless the model fixes it at 1
 *    (sal_model_max_batch): then every call runs one image per pass, whatever n it is given.
 */
#ifndef SALIENT_H
#define SALIENT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SAL_VERSION_STRING "0.1.0"
#define SAL_MAX_DIMS 8

/* ------------------------------------------------------------------------------------------------ */
/* Status codes and errors                                                                          */

typedef enum sal_status {
    SAL_OK = 0,
    SAL_ERR_INVALID_ARG,   /* a caller's argument or option is wrong */
    SAL_ERR_IO,            /* a file could not be opened, read or written */
    SAL_ERR_PARSE,         /* a file is malformed: ONNX, image, .npy */
    SAL_ERR_UNSUPPORTED,   /* an op, attribute, data type or layout we do not handle */
    SAL_ERR_SHAPE,         /* shapes do not agree */
    SAL_ERR_NOMEM,         /* host or device allocation failed */
    SAL_ERR_DEVICE,        /* a backend call failed, or the requested device is absent */
    SAL_ERR_NOT_FOUND,     /* a named layer, class or input does not exist */
    SAL_ERR_INTERNAL,      /* a bug in salient */
    SAL_ERR_CANCELLED      /* a progress callback asked to stop (sal_explain_opts.progress) */
} sal_status;

#define SAL_ERROR_LEN 1024
typedef struct sal_error {
    sal_status status;
    char msg[SAL_ERROR_LEN];
} sal_error;

const char *sal_status_str(sal_status st);

/* ------------------------------------------------------------------------------------------------ */
/* Models                                                                                           */

typedef struct sal_model sal_model;

typedef struct sal_tensor_info {
    const char *name;           /* owned by the model */
    int ndim;
    int64_t dims[SAL_MAX_DIMS]; /* -1 where the model leaves a dimension dynamic */
} sal_tensor_info;

typedef struct sal_layer_info {
    const char *name;     /* node name (or its first output's name when the node is unnamed) */
    const char *op_type;  /* ONNX op type */
    const char *output;   /* name of the node's first output value */
} sal_layer_info;

sal_status sal_model_load(const char *path, sal_model **out, sal_error *err);
sal_status sal_model_load_buffer(const void *data, size_t len, const char *name, sal_model **out,
                                 sal_error *err);
void sal_model_free(sal_model *m);

int sal_model_num_inputs(const sal_model *m);   /* graph inputs that are not weights */
int sal_model_num_outputs(const sal_model *m);
void sal_model_input(const sal_model *m, int i, sal_tensor_info *info);
void sal_model_output(const sal_model *m, int i, sal_tensor_info *info);
int sal_model_num_layers(const sal_model *m);   /* nodes left after folding, in execution order */
void sal_model_layer(const sal_model *m, int i, sal_layer_info *info);
/* A metadata_props value of the ONNX file ("salient.mean", "salient.std", "salient.resize",
 * "salient.labels" set preprocessing defaults), or NULL. */
const char *sal_model_metadata(const sal_model *m, const char *key);
/* Number of nodes removed at load: constants folded, BatchNorms folded into convolutions. */
void sal_model_fold_stats(const sal_model *m, int *constants_folded, int *batchnorms_folded);
/* The layout of the image input as the file declares it: "NCHW", or "NHWC" (channels last, as
 * TF/Keras exports have it: the metadata salient.layout, or a last dimension of 1 or 3 and a
 * second that is not). For an NHWC model, salient puts a Transpose in front at load, so
 * sal_model_input(m, 0) and every call take (N,C,H,W) as for any model (the input is named
 * "<file's input>.nchw"), and maps come back as (C,H,W); sal_model_file_input gives the file's
 * own declaration. */
const char *sal_model_input_layout(const sal_model *m);
void sal_model_file_input(const sal_model *m, sal_tensor_info *info);
/* The largest batch the model runs: 0 for any, 1 when its input declares a batch of 1 or a Reshape
 * of its activations hard-codes 1 as the batch (an exported x.view(1, -1)); found at load. *why
 * (may be NULL) receives a sentence naming the input or node ("" when 0). Sessions then run every
 * forward, gradient and method pass one image at a time. */
int sal_model_max_batch(const sal_model *m, const char **why);

/* ------------------------------------------------------------------------------------------------ */
/* Sessions: a model bound to a backend with its planned memory                                     */

typedef enum sal_device { SAL_DEVICE_AUTO = 0, SAL_DEVICE_CPU, SAL_DEVICE_CUDA } sal_device;

typedef struct sal_session_opts {
    sal_device device;  /* AUTO: the GPU when the CUDA backend is built and a GPU is present */
    int threads;        /* CPU threads, 0 = sal_cpu_threads_default() */
    size_t mem_limit;   /* bytes of device memory one batch's plan may take (activations, gradients,
                           scratch); 0 = whatever the device has. Explanations that hit it (or a
                           real out-of-memory) retry with smaller internal batches */
} sal_session_opts;

sal_session_opts sal_session_opts_default(void);

/* The CPU thread count a session with threads = 0 uses: OMP_NUM_THREADS when the user set it,
 * else the CPUs this process may run on (its affinity mask: taskset, cpusets), capped by its
 * cgroup's CPU quota (containers); not the machine's count. Linking the library also links
 * libsalient_ompenv.so, which makes OpenMP's idle threads spin only briefly before they sleep
 * (libgomp's own long spin collapses on a shared machine; sleeping at once makes a pass wake its
 * workers at every parallel region) unless the user set OMP_WAIT_POLICY or GOMP_SPINCOUNT: it
 * sets GOMP_SPINCOUNT=3000 while the process loads, before libgomp reads it (libgomp reads it
 * only then). */
int sal_cpu_threads_default(void);

typedef struct sal_session sal_session;

sal_status sal_session_create(const sal_model *m, const sal_session_opts *o, sal_session **out,
                              sal_error *err);
void sal_session_free(sal_session *s);
const char *sal_session_error(const sal_session *s);  /* last failure's message, "" if none */
const char *sal_session_device(const sal_session *s); /* "cpu" or "cuda" */
/* Why AUTO chose the CPU when the CUDA backend is built ("" otherwise): for a one-line note. */
const char *sal_session_device_note(const sal_session *s);

/* The model's maximum batch (sal_model_max_batch): 0 for any. Forward and gradient calls split
 * larger n into passes of this many images; sal_explain's internal batches never exceed it. */
int sal_session_max_batch(const sal_session *s);
/* Plan the session for input (n, C, h, w); called implicitly by forward/gradient when the shape
 * changes. h/w are ignored (may be 0) when the model fixes them. n above the maximum batch is
 * refused (SAL_ERR_INVALID_ARG). */
sal_status sal_session_plan(sal_session *s, int n, int h, int w);
/* The internal batch for gradient passes on (C,h,w) inputs that fits in `budget` bytes of the
 * backend's memory (0 = half of what it reports available now, at most the session's mem_limit).
 * The gradient plan's memory (activations kept for the backward pass, gradients, scratch) is
 * measured by planning batches 1 and 2: bytes_per_image (may be NULL) receives the growth per
 * image, bytes_fixed (may be NULL) the rest. At most `cap` images (0 = the backend's maximum: 16
 * on the CPU, where larger batches stop paying off; 256 on a GPU), at least 1. */
sal_status sal_session_auto_batch(sal_session *s, int h, int w, size_t budget, int cap, int *batch,
                                  size_t *bytes_per_image, size_t *bytes_fixed);
/* FLOPs (2 x multiply-adds) of the convolutions and matrix products this session has run, forward
 * and backward-data, since it was created (element-wise ops are not counted). */
double sal_session_flops(const sal_session *s);
/* The device's measured FP32 matrix-product rate: a square SGEMM of side n (0 = 2048 on the CPU,
 * 8192 on a GPU) with the session's threads, best of a few runs, in GFLOP/s. */
sal_status sal_session_peak_gflops(sal_session *s, int n, double *gflops);
/* Bytes copied to and from the session's device since the session was created (weights, inputs,
 * seeds, logits, maps; on the CPU the same copies between host buffers): what crosses the bus on
 * a GPU. Either pointer may be NULL. */
void sal_session_transfers(const sal_session *s, uint64_t *to_device, uint64_t *from_device);
/* Memory the session's device can still allocate, and its total (host RAM on the CPU). */
sal_status sal_session_mem_info(const sal_session *s, size_t *avail, size_t *total);
/* Shape of a layer's first output under the current plan. */
sal_status sal_session_layer_shape(sal_session *s, int layer, int *ndim, int64_t dims[SAL_MAX_DIMS]);
/* Number of classes (size of the last output dimension) under the current plan. */
int sal_session_num_classes(const sal_session *s);

/* Forward pass. x: (n,C,h,w); logits: (n, num_classes) for the model's first output. A batch
 * that does not fit in memory (a real out-of-memory, or the session's mem_limit) runs in halves. */
sal_status sal_forward(sal_session *s, const float *x, int n, int h, int w, float *logits);

/* ------------------------------------------------------------------------------------------------ */
/* Gradients to the input (never to the weights)                                                     */

typedef struct sal_grad_opts {
    const int *targets;     /* (n): one-hot seed on this class per image; NULL = top-1 */
    const float *seed;      /* (n, K): arbitrary seed over the outputs; overrides targets */
    const char *layer;      /* capture this layer's activation and gradient (node or value name) */
    int need_input_grad;    /* 0: stop the backward pass at `layer` */
    int guided_relu;        /* Guided Backprop: ReLU passes only positive gradients */
} sal_grad_opts;

sal_grad_opts sal_grad_opts_default(void);

typedef struct sal_grad_out {
    float *logits;      /* (n, K) or NULL */
    float *input_grad;  /* (n, C, h, w) or NULL */
    float *layer_act;   /* (n, c, lh, lw) of the captured layer, or NULL */
    float *layer_grad;  /* same shape, or NULL */
    int *targets_out;   /* (n): the class each seed used when seed == NULL, or NULL */
} sal_grad_out;

sal_status sal_gradient(sal_session *s, const float *x, int n, int h, int w,
                        const sal_grad_opts *o, sal_grad_out *out);

/* Shape of a captured layer's output for input (n,C,h,w) (plans if needed). */
sal_status sal_session_value_shape(sal_session *s, const char *layer, int *ndim,
                                   int64_t dims[SAL_MAX_DIMS]);

/* ------------------------------------------------------------------------------------------------ */
/* CAM layers: where the CAM methods read, and how that layer's output maps to a grid              */

typedef enum sal_layout {
    SAL_LAYOUT_NCHW = 0,   /* (N, C, h, w) feature maps */
    SAL_LAYOUT_NHWC,       /* (N, h, w, C): channels last (Swin's stages, ConvNeXt's permuted norms) */
    SAL_LAYOUT_TOKENS      /* (N, T, D) transformer tokens: `skip` leading ones (a class token),
                              then the h x w grid, row-major */
} sal_layout;

typedef struct sal_cam_layer {
    char name[256];     /* the layer: its node's name, or the name it was given by */
    sal_layout layout;
    int channels;       /* C, or D for tokens */
    int h, w;           /* the map's grid */
    int skip;           /* tokens before the grid (1: a class token); 0 for feature maps */
    int is_default;     /* chosen by the default rule */
} sal_cam_layer;

/* The layer CAM methods read on (C,h,w) inputs (h, w: 0 when the model fixes them) and its grid.
 * `layer` (node or value name; NULL or "" for the default rule): a 4-D output is (N,C,h,w), or
 * (N,h,w,C) when only that reading has the input's proportions (within 1.5x); a 3-D output is
 * (N,T,D) tokens whose grid is found from the input (equal square patches: T = gh*gw, or
 * gh*gw + 1 with a class token first), or given as tokens_h x tokens_w (0 x 0: from the shape;
 * with 4-D outputs it picks the reading with that grid). The default rule: the last layer that
 * is a feature map with both sides above 1, or, when it comes later, the last token layer that
 * feeds both the queries and the keys of the model's last attention (its first LayerNorm's output
 * in a ViT block: after the last attention only the class token reaches a ViT's head, so the patch
 * tokens' gradients are zero there; pytorch-grad-cam's ViT recipe takes the same layer). A layer
 * whose map would have a side of 1, a token count no grid fits, or another rank fails
 * (SAL_ERR_SHAPE) with a message naming the layer; no candidate at all: SAL_ERR_NOT_FOUND. */
sal_status sal_session_cam_layer(sal_session *s, int h, int w, const char *layer, int tokens_h,
                                 int tokens_w, sal_cam_layer *out);

/* The attention layers that attention rollout and Chefer's relevance read, on (C,h,w) inputs:
 * `layers` (comma-separated node or value names; NULL or "": every Softmax over the last axis of
 * a (N, heads, T, T) or (N*heads, T, T) value, in execution order), each with the same heads and
 * T tokens: a class token and an h x w grid of patches (tokens_h x tokens_w, or 0 x 0 to find it
 * from the input: equal square patches). Failures name the layer. */
typedef struct sal_attention_info {
    int layers;                  /* how many */
    int heads, tokens;           /* each one's heads and tokens (T) */
    int h, w;                    /* the patch grid: T = 1 + h*w */
    char first[256], last[256];  /* the first and the last layer's names */
} sal_attention_info;
sal_status sal_session_attention(sal_session *s, int h, int w, const char *layers, int tokens_h,
                                 int tokens_w, sal_attention_info *out);


/* ------------------------------------------------------------------------------------------------ */
/* Attribution methods                                                                              */

typedef enum sal_method {
    SAL_M_SALIENCY = 0,   /* gradient of the target score w.r.t. the input */
    SAL_M_INPUTXGRAD,     /* input * gradient */
    SAL_M_SMOOTHGRAD,     /* mean of the inner method over noisy copies */
    SAL_M_SMOOTHGRAD_SQ,  /* mean of squares */
    SAL_M_VARGRAD,        /* variance */
    SAL_M_IG,             /* Integrated Gradients */
    SAL_M_GUIDED,         /* Guided Backprop */
    SAL_M_OCCLUSION,      /* sliding-window occlusion (Captum's Occlusion semantics) */
    SAL_M_GRADCAM,
    SAL_M_GRADCAMPP,
    SAL_M_HIRESCAM,
    SAL_M_XGRADCAM,
    SAL_M_LAYERCAM,
    SAL_M_SCORECAM,
    SAL_M_GUIDED_GRADCAM,
    SAL_M_RISE,           /* random masks on a coarse grid, score-weighted (Petsiuk et al.) */
    SAL_M_GRADSHAP,       /* GradientSHAP (Captum's GradientShap) */
    SAL_M_KERNELSHAP,     /* KernelSHAP over grid cells or superpixels */
    SAL_M_ROLLOUT,        /* attention rollout (Abnar & Zuidema 2020), transformers with a class token */
    SAL_M_CHEFER,         /* gradient-weighted attention relevance (Chefer et al. 2021) */
    SAL_M_COUNT
} sal_method;

/* "saliency", "ig", "gradcam++"...; SAL_ERR_INVALID_ARG for an unknown name. */
sal_status sal_method_parse(const char *name, sal_method *m);
const char *sal_method_name(sal_method m);
int sal_method_is_cam(sal_method m);   /* map at a layer's resolution (the CAM family; rollout and
                                          chefer at the token grid) */

typedef enum sal_ig_rule {
    SAL_IG_GAUSSLEGENDRE = 0, SAL_IG_RIEMANN_LEFT, SAL_IG_RIEMANN_RIGHT, SAL_IG_RIEMANN_MIDDLE,
    SAL_IG_RIEMANN_TRAPEZOID
} sal_ig_rule;

typedef enum sal_head_fusion { SAL_FUSE_MEAN = 0, SAL_FUSE_MAX, SAL_FUSE_MIN } sal_head_fusion;

typedef enum sal_baseline {
    SAL_BASELINE_ZERO = 0,  /* zeros in model-input space */
    SAL_BASELINE_BLACK,     /* a black image after preprocessing: black_value[c] per channel */
    SAL_BASELINE_BLUR,      /* the input blurred (box blur of radius blur_radius) */
    SAL_BASELINE_UNIFORM,   /* uniform noise in [min, max] of the input, from the seed */
    SAL_BASELINE_USER       /* baseline_data */
} sal_baseline;

/* Progress of one sal_explain call, for a progress bar. Units are model passes (one image through
 * the network, forward or forward and backward): an occlusion window, an IG step, a noise sample,
 * a Score-CAM channel, a RISE mask, a GradientSHAP sample, a KernelSHAP coalition, plus each
 * image's own pass. total is fixed before the work starts and the same on every call of one
 * sal_explain; done grows from 0 to total. */
typedef struct sal_progress {
    sal_method method;
    int n_images;               /* images in this sal_explain call */
    int64_t done, total;
} sal_progress;
/* Called on the thread that called sal_explain: once at the start (done 0), after internal
 * batches at most every SAL_PROGRESS_INTERVAL_MS milliseconds, and once at the end (done ==
 * total). Return 0 to go on; nonzero cancels: sal_explain stops after the pass at hand and returns
 * SAL_ERR_CANCELLED with no maps. */
typedef int (*sal_progress_fn)(const sal_progress *p, void *user);
#define SAL_PROGRESS_INTERVAL_MS 20

typedef struct sal_explain_opts {
    sal_method method;
    int explain_prob;           /* 0: explain logits (default); 1: softmax probabilities */
    uint64_t seed;              /* Philox key: same seed, same maps */
    int batch;                  /* internal batch size; 0 = automatic (sal_session_auto_batch) */
    /* SmoothGrad / SmoothGrad^2 / VarGrad */
    sal_method nt_inner;        /* saliency (default), inputxgrad, ig or guided */
    int nt_samples;             /* 50 */
    float nt_sigma;             /* noise std as a fraction of (max - min) of the input: 0.15 */
    /* Integrated Gradients (also the inner IG of the noise tunnel) */
    int ig_steps;               /* 50 */
    sal_ig_rule ig_rule;        /* gausslegendre */
    sal_baseline baseline;      /* zero */
    const float *baseline_data; /* (C,H,W) for SAL_BASELINE_USER */
    float black_value[3];       /* preprocessed black per channel (SAL_BASELINE_BLACK) */
    int blur_radius;            /* 10 */
    /* Occlusion */
    int occ_h, occ_w;           /* window, 15x15 */
    int occ_stride_h, occ_stride_w;  /* 8 */
    int occ_fill;               /* 0: zero in model-input space, 1: per-image mean, 2: blurred input */
    int occ_full;               /* 1: recompute the whole network for every window; 0 (default):
                                   incremental inference where the backend has it (the CPU), which
                                   recomputes only each layer's patch that the window reaches */
    /* CAM family */
    const char *layer;          /* NULL: the default rule of sal_session_cam_layer */
    int tokens_h, tokens_w;     /* the layer's token grid; 0: from its shape (sal_session_cam_layer);
                                   rollout and chefer: the patch grid after the class token */
    /* Attention rollout and Chefer's relevance */
    const char *attention_layers; /* comma-separated names of the attention probability layers
                                   (Softmax nodes or values); NULL: found by pattern
                                   (sal_session_attention) */
    sal_head_fusion head_fusion;  /* rollout: the heads' mean (default, the paper's), max or min */
    float rollout_discard;        /* rollout: the fraction of each layer's fused attention set to 0,
                                     lowest first, the class token's own kept (vit-explain's
                                     discard_ratio); 0 (default): none */
    int cam_relu;               /* 1: ReLU on the map (default) */
    /* RISE */
    int rise_masks;             /* 4000 */
    int rise_grid;              /* 7: masks are made on a 7x7 grid, upsampled with random shifts */
    float rise_p;               /* 0.5: probability that a grid cell is kept */
    /* GradientSHAP */
    int shap_samples;           /* 50 */
    float shap_stdev;           /* 0.0: noise added to each sample (Captum's stdevs) */
    const float *shap_baselines;  /* (shap_n_baselines, C,H,W); NULL: zero and black baselines */
    int shap_n_baselines;
    /* KernelSHAP */
    int kshap_grid;             /* 8: features are grid cells of an 8x8 grid */
    int kshap_superpixels;      /* 0; > 0: this many SLIC-like superpixels instead of the grid */
    int kshap_coalitions;       /* 1000 */
    /* Progress (see sal_progress_fn); NULL: none */
    sal_progress_fn progress;
    void *progress_user;
} sal_explain_opts;

sal_explain_opts sal_explain_opts_default(sal_method m);

typedef struct sal_maps {
    int n;
    int ndim;                   /* per image: 3 (C,H,W) for input-space methods, 2 (h,w) for CAM */
    int64_t dims[3];
    float *attr;                /* (n, dims...) raw attribution before any reduction */
    float *upsampled;           /* CAM methods: (n, H, W) bilinear to the input size; else NULL */
    int *targets;               /* (n) class explained */
    float *scores;              /* (n) the explained output f(x) */
    float *completeness;        /* (n) IG and KernelSHAP: |sum - (f(x) - f(baseline))| (IG sums
                                   attr, KernelSHAP its per-feature values); else NULL */
    float *delta;               /* (n) IG and KernelSHAP: f(x) - f(baseline); else NULL */
    char layer[256];            /* CAM methods: the layer used */
    int batch;                  /* the internal batch used */
} sal_maps;

void sal_maps_free(sal_maps *m);   /* frees the arrays, not the struct */
/* Floats of one image's raw attribution: the product of dims over ndim (attr holds n of them). */
int64_t sal_maps_per_image(const sal_maps *m);

/* Explain n images x (n,C,h,w) for targets (NULL = top-1). */
sal_status sal_explain(sal_session *s, const sal_explain_opts *o, const float *x, int n, int h,
                       int w, const int *targets, sal_maps *out);

/* Several methods on the same images x (n,C,h,w) for targets (NULL = top-1): out[j] (nm of them)
 * gets the maps of methods[j] (o->method is ignored; o's other options apply to each), the same
 * maps as sal_explain of each. Methods that need nothing but one forward and one backward pass of
 * an image (saliency, input x gradient and the gradient CAM family on one layer: see
 * sal_method_shares_pass) share those passes when two or more of them are asked: one forward pass
 * capturing the CAM layer and one backward pass per image serve them all. The others run one after
 * the other. On failure every out[j] is freed. */
int sal_method_shares_pass(sal_method m);
sal_status sal_explain_many(sal_session *s, const sal_explain_opts *o, const sal_method *methods, int nm,
                            const float *x, int n, int h, int w, const int *targets, sal_maps *out);

#ifdef __cplusplus
}
#endif
#endif /* SALIENT_H */
