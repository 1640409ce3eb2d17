/* ops.h — the supported ONNX ops: their kinds, shape inference and parameter resolution (device
 * independent), and the call record every backend's kernels receive.
 *
 * Life of a node: at plan time the engine calls def->infer with concrete input shapes (and the
 * host data of constant inputs). infer checks attributes and shapes, writes output shapes and
 * may allocate op parameters (ctx->params, freed by the engine with free()) and request scratch
 * memory. At run time the backend receives a sal_op_call with device pointers.
 */
#ifndef SAL_OPS_H
#define SAL_OPS_H

#include "../model/graph.h"

typedef enum sal_op_kind {
    SAL_OP_CONV = 0,
    SAL_OP_BATCHNORM,
    SAL_OP_RELU,
    SAL_OP_LEAKYRELU,
    SAL_OP_CLIP,
    SAL_OP_SIGMOID,
    SAL_OP_HARDSIGMOID,
    SAL_OP_HARDSWISH,
    SAL_OP_TANH,
    SAL_OP_ADD,
    SAL_OP_SUB,
    SAL_OP_MUL,
    SAL_OP_DIV,
    SAL_OP_MAXPOOL,
    SAL_OP_AVGPOOL,
    SAL_OP_GLOBALAVGPOOL,
    SAL_OP_REDUCEMEAN,
    SAL_OP_FLATTEN,
    SAL_OP_RESHAPE,
    SAL_OP_TRANSPOSE,
    SAL_OP_SQUEEZE,
    SAL_OP_UNSQUEEZE,
    SAL_OP_GEMM,
    SAL_OP_MATMUL,
    SAL_OP_SOFTMAX,
    SAL_OP_CONCAT,
    SAL_OP_PAD,
    SAL_OP_DROPOUT,
    SAL_OP_IDENTITY,
    SAL_OP_LRN,
    /* shape-computation ops: only ever evaluated on constants at load or plan time (fold.c) */
    SAL_OP_CONSTANT,
    SAL_OP_SHAPE,
    SAL_OP_GATHER,
    SAL_OP_SLICE,
    SAL_OP_CAST,
    SAL_OP_CONSTANTOFSHAPE,
    /* issue 13's ops: element-wise math, normalization and reductions (infer_math.c) */
    SAL_OP_POW,
    SAL_OP_SQRT,
    SAL_OP_ERF,
    SAL_OP_GELU,
    SAL_OP_SELU,
    SAL_OP_ELU,
    SAL_OP_SOFTPLUS,
    SAL_OP_LAYERNORM,
    SAL_OP_REDUCESUM,
    SAL_OP_REDUCEMAX,
    SAL_OP_GLOBALMAXPOOL,
    SAL_OP_CONVTRANSPOSE,
    /* ... indexing and layout (infer_index.c; Gather and Slice above run there too) */
    SAL_OP_EXPAND,
    SAL_OP_TILE,
    SAL_OP_WHERE,
    SAL_OP_DEPTHTOSPACE,
    SAL_OP_SPACETODEPTH,
    /* ... shape arithmetic, evaluated only on constants (host/model/fold_shape.c) */
    SAL_OP_EQUAL,
    SAL_OP_LESS,
    SAL_OP_GREATER,
    SAL_OP_NOT,
    SAL_OP_MOD,
    SAL_OP_RANGE,
    SAL_OP_SCATTERND,
    SAL_OP_GREATEROREQUAL,
    SAL_OP_LESSOREQUAL,
    SAL_OP_AND,
    SAL_OP_OR,
    SAL_OP_COUNT
} sal_op_kind;

/* Flags of an op definition. */
enum {
    SAL_OPF_ALIAS = 1,      /* output 0 is input 0's memory reinterpreted (Reshape, Identity...) */
    SAL_OPF_FOLD_ONLY = 2,  /* runs only on constants (Shape, Gather...): never on a backend */
};

/* ------------------------------------------------------------------------------------------------ */
/* Plan-time context                                                                                */

typedef struct sal_op_ctx {
    const sal_graph *g;
    const sal_node *node;
    int n_in;
    const sal_shape *const *in_shape;   /* (n_in): NULL for an absent optional input */
    const int *in_dtype;                /* (n_in) */
    const sal_tensor *const *in_const;  /* (n_in): host data when the input is constant */
    int n_out;
    sal_shape *out_shape;               /* (n_out): infer writes */
    int *out_dtype;                     /* (n_out): infer writes (defaults to SAL_F32) */
    void *params;                       /* infer may malloc op parameters here */
    size_t scratch_floats;              /* infer may request float scratch for fwd/bwd kernels */
    sal_error *err;
} sal_op_ctx;

/* Input i's shape, constant data and dtype as infer functions read them: NULL / NULL / 0 for an
 * input past n_in (an absent optional input). */
static inline const sal_shape *in_shape(const sal_op_ctx *ctx, int i) {
    return i < ctx->n_in ? ctx->in_shape[i] : NULL;
}
static inline const sal_tensor *in_const(const sal_op_ctx *ctx, int i) {
    return i < ctx->n_in && ctx->in_const ? ctx->in_const[i] : NULL;
}
static inline int in_dtype(const sal_op_ctx *ctx, int i) {
    return i < ctx->n_in && ctx->in_dtype ? ctx->in_dtype[i] : 0;
}

typedef struct sal_op_def {
    const char *onnx_name;
    sal_op_kind kind;
    unsigned flags;
    /* Check attributes and input shapes, compute output shapes; SAL_ERR_SHAPE /
     * SAL_ERR_UNSUPPORTED with a message naming the node on failure. */
    sal_status (*infer)(sal_op_ctx *ctx);
} sal_op_def;

/* The definition for an ONNX op type (default domain), or NULL when unsupported. */
const sal_op_def *sal_op_lookup(const char *onnx_name);
const sal_op_def *sal_op_def_of(sal_op_kind kind);

/* ------------------------------------------------------------------------------------------------ */
/* Run-time call record (pointers are in the backend's memory)                                      */

typedef struct sal_op_call {
    const sal_node *node;
    const void *params;          /* from infer */
    int n_in, n_out;
    const float *const *in;      /* (n_in): NULL for absent optional inputs */
    const sal_shape *const *in_shape;
    float *const *out;           /* (n_out) */
    const sal_shape *const *out_shape;
    /* backward only */
    const float *const *gout;    /* (n_out): gradient w.r.t. each output (NULL: zero) */
    float *const *gin;           /* (n_in): ADD the gradient w.r.t. input i here; NULL: not needed */
    unsigned gin_set;            /* bit i set: WRITE it into gin[i] instead, whose content is
                                    garbage (the first contribution to that gradient; only on
                                    backends with grad_set, backend.h) */
    int guided;                  /* ReLU-family ops apply the Guided Backprop rule */
    float *scratch;              /* ctx->scratch_floats floats */
    int threads;
} sal_op_call;

/* ------------------------------------------------------------------------------------------------ */
/* Parameters resolved by infer (shared by the backends)                                            */

typedef struct sal_conv_params {
    int spatial;          /* 1 or 2 spatial dims (1-D is treated as H=1) */
    int64_t n, c, h, w;   /* input */
    int64_t m, oh, ow;    /* output channels and size */
    int64_t kh, kw, sh, sw, dh, dw;
    int64_t pt, pl, pb, pr;  /* pads top, left, bottom, right */
    int64_t group;
    int has_bias;
    int const_wb;         /* W (and B, when present) are the model's constants, unchanged and
                             at the same address for the model's life (the engine clears it for
                             constants folded per plan): a backend may keep them reordered into
                             its own layout, keyed by address (the CPU's oneDNN path) */
    /* Fused activation (set by the engine, in forward and gradient plans, on backends with
     * fuse_conv_act: a Relu/Clip that alone reads this output runs inside the convolution):
     * y = min(max(y, lo), hi) */
    int act;
    float act_lo, act_hi;
    /* Physical layout of the activations (set by the engine's layout pass, engine/layout_pass.c,
     * on backends that ask for it; 0 elsewhere): 1 = X (and its gradient) is held channels-last,
     * (N, H, W, C), instead of (N, C, H, W); the same for Y. Only the CPU's oneDNN path takes
     * them (sal_dnnl_conv_choose sends any Conv with a flag set there). */
    int nhwc_x, nhwc_y;
    /* CPU depthwise kernel (group == c): floats of one thread's zero-padded plane buffer; the
     * scratch holds SAL_CONV_DW_SLOTS of them (threads beyond that are not used). */
    int64_t dw_slot;
} sal_conv_params;
#define SAL_CONV_DW_SLOTS 32

typedef struct sal_pool_params {
    int64_t n, c, h, w, oh, ow;
    int64_t kh, kw, sh, sw, dh, dw;
    int64_t pt, pl, pb, pr;
    int count_include_pad;
    int has_indices;      /* MaxPool's optional second output */
} sal_pool_params;

/* Broadcasting binary ops: both inputs broadcast to the output shape (numpy rules). */
typedef struct sal_bcast_params {
    int ndim;
    int64_t out[SAL_MAX_DIMS];
    int64_t sa[SAL_MAX_DIMS], sb[SAL_MAX_DIMS];  /* element strides of a and b, 0 on broadcast dims */
    /* Fast-path class of Add/Sub/Mul/Div, filled by their infer (sal_broadcast leaves these 0):
     *   SAL_BC_SAME:      a, b and y have the same number of elements
     *   SAL_BC_SCALAR_A/B: a (resp. b) has one element, the other is y-sized
     *   SAL_BC_CHANNEL_A/B: y viewed as (outer, mid, inner); the small input a (resp. b) is (mid)
     *                      broadcast over outer and inner, the other is y-sized: (1,C,1,1) or
     *                      (C,1,1) with outer = N, inner = H*W; (N,C,1,1) with outer = 1;
     *                      (W) with inner = 1
     *   SAL_BC_GENERAL:   anything else: use ndim/out/sa/sb */
    int mode;
    int64_t outer, mid, inner;
    /* Add only, SAL_BC_SAME only: a Relu or Clip that alone reads the sum runs inside the Add,
     * y = clamp(a + b, act_lo, act_hi) (set by the engine on backends with fuse_add_act, like
     * sal_conv_params.act; 0: none) */
    int act;
    float act_lo, act_hi;
} sal_bcast_params;

enum { SAL_BC_GENERAL = 0, SAL_BC_SAME, SAL_BC_SCALAR_A, SAL_BC_SCALAR_B, SAL_BC_CHANNEL_A,
       SAL_BC_CHANNEL_B };

typedef struct sal_gemm_params {
    int64_t m, n, k;
    int trans_a, trans_b;
    float alpha, beta;
    int has_c;
    sal_bcast_params c;   /* C broadcast to (m,n) */
} sal_gemm_params;

typedef struct sal_matmul_params {  /* batched matmul with broadcast batch dims */
    int64_t batch, m, n, k;     /* 1-D A: m = 1; 1-D B: n = 1 (numpy) */
    int64_t a_batch_stride, b_batch_stride;  /* 0 when broadcast; valid when !batch_general */
    /* General numpy broadcast of the batch dims, e.g. A (2,1,m,k) x B (3,k,n): output batch
     * index (i0,i1,..) reads matrix sum(i_d * a_bstride[d]) of A (in matrices, 0 on broadcast
     * dims), likewise B. batch_general = 0 when a/b_batch_stride describe the mapping. */
    int batch_ndim;
    int batch_general;
    int64_t batch_shape[SAL_MAX_DIMS];
    int64_t a_bstride[SAL_MAX_DIMS], b_bstride[SAL_MAX_DIMS];
} sal_matmul_params;

/* Element offsets of output batch bi's A and B matrices. */
void sal_matmul_offsets(const sal_matmul_params *p, int64_t bi, int64_t *ao, int64_t *bo);
/* B shared by every batch and A's batches contiguous: the batch folds into M (one GEMM). */
int sal_matmul_foldable(const sal_matmul_params *p);

/* Every activation (Relu, LeakyRelu, Clip, Sigmoid, HardSigmoid, HardSwish, Tanh) gets one:
 * LeakyRelu alpha, Clip [lo, hi] (+-INFINITY when absent), HardSigmoid alpha/beta; unused fields
 * are 0 (Relu: lo = 0, hi = INFINITY). */
typedef struct sal_scalar_params {
    float alpha, beta;
    float lo, hi;
} sal_scalar_params;

typedef struct sal_axis_params {    /* Softmax, Concat, ReduceMean */
    int64_t outer, axis_len, inner; /* Softmax: (outer, axis_len, inner) */
    int axis;
    int keepdims;
    /* Concat: outer = prod(dims before axis), inner = prod(dims after), axis_len = output's
     * length on axis; each input's own length is in_shape[i]->d[axis].
     * ReduceMean: the input with 1-dims dropped and adjacent dims of the same kind merged:
     * rdims[rdim], bit d of rmask set where merged dim d is reduced; count = reduced elements
     * per output. When at most one merged dim is reduced, (outer, axis_len, inner) is the input
     * viewed as (kept, reduced, kept) and axis_len == count. */
    int rdim;
    int64_t rdims[SAL_MAX_DIMS];
    unsigned rmask;
    int64_t count;
} sal_axis_params;

typedef struct sal_transpose_params {
    int ndim;
    int64_t perm[SAL_MAX_DIMS];
} sal_transpose_params;

typedef struct sal_pad_params {
    int ndim;
    int64_t before[SAL_MAX_DIMS], after[SAL_MAX_DIMS];  /* per input dim; negative = crop */
    float value;
    int mode;   /* SAL_PAD_CONSTANT, SAL_PAD_EDGE, SAL_PAD_REFLECT: applied after the crops */
} sal_pad_params;

enum { SAL_PAD_CONSTANT = 0, SAL_PAD_EDGE, SAL_PAD_REFLECT };

typedef struct sal_lrn_params {
    int64_t size;
    float alpha, beta, bias;
    int64_t n, c, inner;           /* x viewed as (n, c, inner) */
} sal_lrn_params;

typedef struct sal_bn_params {     /* BatchNormalization (inference mode) */
    int64_t n, c, inner;           /* x viewed as (n, c, inner) */
    float epsilon;                 /* y = (x - mean[c]) / sqrt(var[c] + eps) * scale[c] + B[c] */
} sal_bn_params;

/* Pow: y = x ^ e. A constant one-element exponent (x^2 of a decomposed LayerNorm, x^0.5) makes
 * it element-wise in x (scalar = 1, e); otherwise both are float32 tensors broadcast as in b. */
typedef struct sal_pow_params {
    int scalar;
    float e;
    sal_bcast_params b;
} sal_pow_params;

typedef struct sal_ln_params {     /* LayerNormalization (opset 17) */
    int64_t rows, len;             /* x viewed as (rows, len): normalized over len */
    float epsilon;
    int64_t scale_n, bias_n;       /* Scale / B elements: len or 1 (bias_n 0: no B) */
} sal_ln_params;

/* A gather view (Slice, Gather with constant indices, DepthToSpace, SpaceToDepth): output element
 * i, at coordinates o_d in out[0..ndim), reads input element base + sum_d o_d * stride_d, except
 * on dim `idx_dim` (>= 0) where the term is stride * idx[o_d] (Gather's index list). Every plan
 * of this kind is injective (no two outputs read the same input) unless `dup` is set (Gather with
 * repeated indices), whose backward then sums per input element. */
#define SAL_VIEW_MAX_IDX 64
typedef struct sal_view_params {
    int ndim;
    int64_t out[SAL_MAX_DIMS];
    int64_t stride[SAL_MAX_DIMS];
    int64_t base;
    int idx_dim, dup;
    int64_t gouter, glen, ginner;  /* Gather: data viewed as (outer, len, inner) */
    int32_t idx[SAL_VIEW_MAX_IDX];
} sal_view_params;

/* A tile view (Expand, Tile): input dims in[d] (right-aligned to the output's rank, 1s before),
 * each dividing out[d]; output coordinate o_d reads input coordinate o_d mod in[d]. */
typedef struct sal_tile_params {
    int ndim;
    int64_t out[SAL_MAX_DIMS], in[SAL_MAX_DIMS];
} sal_tile_params;

/* Where(cond, x, y): the three broadcast to the output; cond (as 0/1 floats) ignores its own
 * gradient. */
typedef struct sal_where_params {
    int ndim;
    int64_t out[SAL_MAX_DIMS];
    int64_t sc[SAL_MAX_DIMS], sx[SAL_MAX_DIMS], sy[SAL_MAX_DIMS];  /* element strides, 0 on broadcast */
    int64_t nx, ny;                /* elements of x and y */
} sal_where_params;

/* Compute numpy broadcast of a and b into p (and out shape); SAL_ERR_SHAPE when incompatible. */
sal_status sal_broadcast(const sal_shape *a, const sal_shape *b, sal_shape *out,
                         sal_bcast_params *p);

#endif /* SAL_OPS_H */
