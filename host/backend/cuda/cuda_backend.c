/* cuda_backend.c — the CUDA backend (built when nvcc is found): device memory, one stream, cuDNN
 * for convolution (forward and backward-data), cuBLAS for Gemm/MatMul, and the twin element
 * kernels (kernels/twin.h, kernels/cuda_twin.cu) for every other op. The CPU backend is the
 * specification; tests/test_cuda_parity.c compares the two on a GPU.
 *
 * FP32 throughout: cuDNN's convolutions are restricted to FMA math (no TF32 tensor cores) and
 * cuBLAS runs its default FP32 math, so results match the CPU to float rounding.
 *
 * Every CUDA, cuDNN and cuBLAS call is checked; a failure names the node (or the operation) and the
 * failing call. Status: compiled and linked in CI; not yet run on a GPU by this project (see
 * README: "CUDA backend: unverified" until scripts/gpu-check passes on a real card). */
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../backend.h"
#include "../blas_drive.h"
#include "twin_all.h"

int sal_cuda_probe_launch(void);
sal_status sal_cuda_twin_run(const sal_op_call *c, int backward, cudaStream_t s, sal_error *err);
sal_status sal_cuda_prim(int fn, int64_t count, const struct sal_mp_args *a, cudaStream_t s, sal_error *err);
size_t sal_cuda_sort_scratch(int64_t n);
sal_status sal_cuda_sort(float *data, int64_t n, void *scratch, cudaStream_t s, sal_error *err);
int sal_cuda_fill_random(float *x, int64_t n, unsigned seed, cudaStream_t s);
sal_status sal_cuda_twin_launch(int fn, int64_t count, const sal_tw_args *a, cudaStream_t s, const char *node,
                                const char *op, const char *pass, sal_error *err);

int sal_backend_cuda_built(void) { return 1; }

/* ------------------------------------------------------------------------------------------------ */
/* State                                                                                            */

/* One convolution shape: descriptors and the algorithms chosen for it (once, then cached). */
typedef struct conv_entry {
    const sal_node *node;
    int64_t n, c, h, w, m;
    /* asymmetric ONNX pads: cuDNN's legacy descriptor pads symmetrically, so the input is copied
     * into a zero-padded (n, c, hp, wp) buffer and convolved with pad 0 */
    int padded;
    int64_t hp, wp, pt, pl;
    cudnnTensorDescriptor_t xd, yd, bd;
    cudnnFilterDescriptor_t fd;
    cudnnConvolutionDescriptor_t cd;
    cudnnConvolutionFwdAlgo_t fwd_algo;
    size_t fwd_ws;
    int bwd_ready;
    cudnnConvolutionBwdDataAlgo_t bwd_algo;
    size_t bwd_ws;
} conv_entry;

typedef struct cu_impl {
    int device;
    cudaStream_t stream;
    cudnnHandle_t dnn;
    cublasHandle_t blas;
    void *ws;            /* cuDNN workspace, grown on demand */
    size_t ws_bytes;
    float *pad;          /* zero-padded copies for asymmetric-pad convolutions, grown on demand */
    size_t pad_bytes;
    conv_entry *conv;
    int n_conv, cap_conv;
    /* uploads that overlap compute: a copy stream fed from two pinned chunks */
    cudaStream_t copy;
    void *pin[2];
    cudaEvent_t pin_free[2], copied;
    int pin_used[2], pin_next, have_copied;
} cu_impl;

static cu_impl *impl_of(sal_backend *b) { return (cu_impl *)b->impl; }

/* the most workspace a convolution algorithm may ask for */
#define SAL_CUDA_MAX_WS ((size_t)1 << 30)

/* Errors that a kernel leaves behind for every later call (the call that reports one is seldom
 * the one at fault): said so in the message. */
static const char *cu_sticky_note(cudaError_t e) {
    switch (e) {
    case cudaErrorIllegalAddress: case cudaErrorLaunchFailure: case cudaErrorHardwareStackError:
    case cudaErrorIllegalInstruction: case cudaErrorMisalignedAddress: case cudaErrorInvalidAddressSpace:
    case cudaErrorInvalidPc: case cudaErrorAssert: case cudaErrorLaunchTimeout:
        return " (a fault of earlier GPU work, reported at this call; compute-sanitizer finds the kernel)";
    default: return "";
    }
}

#define CU_TRY(what, call)                                                                         \
    do {                                                                                           \
        cudaError_t e_ = (call);                                                                   \
        if (e_ != cudaSuccess)                                                                     \
            return sal_fail(err, SAL_ERR_DEVICE, "%s: %s failed: %s%s", what, #call,               \
                            cudaGetErrorString(e_), cu_sticky_note(e_));                           \
    } while (0)
#define DNN_TRY(what, call)                                                                        \
    do {                                                                                           \
        cudnnStatus_t e_ = (call);                                                                 \
        if (e_ != CUDNN_STATUS_SUCCESS)                                                            \
            return sal_fail(err, e_ == CUDNN_STATUS_ALLOC_FAILED ? SAL_ERR_NOMEM : SAL_ERR_DEVICE,  \
                            "%s: %s failed: %s", what, #call, cudnnGetErrorString(e_));            \
    } while (0)
#define BLAS_TRY(what, call)                                                                       \
    do {                                                                                           \
        cublasStatus_t e_ = (call);                                                                \
        if (e_ != CUBLAS_STATUS_SUCCESS)                                                           \
            return sal_fail(err, e_ == CUBLAS_STATUS_ALLOC_FAILED ? SAL_ERR_NOMEM : SAL_ERR_DEVICE, \
                            "%s: %s failed: %s", what, #call, cublasGetStatusString(e_));          \
    } while (0)

/* ------------------------------------------------------------------------------------------------ */
/* Memory                                                                                           */

static void *cu_alloc(sal_backend *b, size_t bytes) {
    void *p = NULL;
    if (cudaSetDevice(impl_of(b)->device) != cudaSuccess) return NULL;
    if (cudaMalloc(&p, bytes ? bytes : 4) != cudaSuccess) {
        cudaGetLastError();   /* an allocation failure is not sticky: clear it */
        return NULL;
    }
    return p;
}

static void cu_release(sal_backend *b, void *p) {
    if (!p) return;
    cu_impl *u = impl_of(b);
    cudaSetDevice(u->device);   /* release cannot fail: a stale error surfaces at the next call */
    cudaStreamSynchronize(u->stream);              /* nothing queued may still use it, */
    if (u->copy) cudaStreamSynchronize(u->copy);   /* nor an upload still write it */
    cudaFree(p);
}

/* Copies are synchronous for the caller: the host buffer may be reused on return. A failure of
 * work queued before them (a kernel's illegal access, say) surfaces here, named by CUDA. */
static sal_status cu_copy(sal_backend *b, void *dst, const void *src, size_t bytes, enum cudaMemcpyKind kind,
                          const char *what, sal_error *err) {
    cu_impl *u = impl_of(b);
    CU_TRY(what, cudaSetDevice(u->device));
    CU_TRY(what, cudaMemcpyAsync(dst, src, bytes, kind, u->stream));
    CU_TRY(what, cudaStreamSynchronize(u->stream));
    return SAL_OK;
}

static sal_status cu_upload(sal_backend *b, void *dst, const void *src, size_t bytes, sal_error *err) {
    return cu_copy(b, dst, src, bytes, cudaMemcpyHostToDevice, "uploading", err);
}

static sal_status cu_download(sal_backend *b, void *dst, const void *src, size_t bytes, sal_error *err) {
    return cu_copy(b, dst, src, bytes, cudaMemcpyDeviceToHost, "downloading", err);
}

/* Asynchronous upload on the copy stream, through two pinned chunks: the host copies chunk i into
 * one pinned buffer while the DMA of chunk i-1 runs from the other. Returns once src has been
 * read (the last chunk may still be in flight); cu_wait_uploads makes the compute stream wait for
 * it. Contract (backend.h): no queued work may still use dst. */
#define SAL_PIN_CHUNK ((size_t)8 << 20)

static sal_status ensure_copy_stream(cu_impl *u, sal_error *err) {
    if (u->copy) return SAL_OK;   /* set last: everything below exists once it is */
    for (int k = 0; k < 2; k++) {
        if (!u->pin[k])
            CU_TRY("allocating a pinned upload buffer", cudaHostAlloc(&u->pin[k], SAL_PIN_CHUNK, cudaHostAllocDefault));
        if (!u->pin_free[k])
            CU_TRY("creating an upload event", cudaEventCreateWithFlags(&u->pin_free[k], cudaEventDisableTiming));
    }
    if (!u->copied) CU_TRY("creating an upload event", cudaEventCreateWithFlags(&u->copied, cudaEventDisableTiming));
    cudaStream_t c = NULL;
    CU_TRY("creating the upload stream", cudaStreamCreateWithFlags(&c, cudaStreamNonBlocking));
    u->copy = c;
    return SAL_OK;
}

static sal_status cu_upload_async(sal_backend *b, void *dst, const void *src, size_t bytes, sal_error *err) {
    cu_impl *u = impl_of(b);
    CU_TRY("uploading", cudaSetDevice(u->device));
    sal_status st = ensure_copy_stream(u, err);
    if (st) return st;
    for (size_t off = 0; off < bytes; off += SAL_PIN_CHUNK) {
        size_t len = bytes - off < SAL_PIN_CHUNK ? bytes - off : SAL_PIN_CHUNK;
        int k = u->pin_next;
        if (u->pin_used[k]) CU_TRY("waiting for a pinned upload buffer", cudaEventSynchronize(u->pin_free[k]));
        memcpy(u->pin[k], (const char *)src + off, len);
        CU_TRY("uploading", cudaMemcpyAsync((char *)dst + off, u->pin[k], len, cudaMemcpyHostToDevice, u->copy));
        CU_TRY("uploading", cudaEventRecord(u->pin_free[k], u->copy));
        u->pin_used[k] = 1;
        u->pin_next = 1 - k;
    }
    CU_TRY("uploading", cudaEventRecord(u->copied, u->copy));
    u->have_copied = 1;
    return SAL_OK;
}

static sal_status cu_wait_uploads(sal_backend *b, sal_error *err) {
    cu_impl *u = impl_of(b);
    if (!u->have_copied) return SAL_OK;
    CU_TRY("ordering compute after uploads", cudaSetDevice(u->device));
    CU_TRY("ordering compute after uploads", cudaStreamWaitEvent(u->stream, u->copied, 0));
    return SAL_OK;
}

static sal_status cu_zero(sal_backend *b, void *dst, size_t bytes, sal_error *err) {
    CU_TRY("clearing GPU memory", cudaSetDevice(impl_of(b)->device));
    CU_TRY("clearing GPU memory", cudaMemsetAsync(dst, 0, bytes, impl_of(b)->stream));
    return SAL_OK;
}

static sal_status cu_sync(sal_backend *b, sal_error *err) {
    CU_TRY("synchronizing the GPU", cudaSetDevice(impl_of(b)->device));
    CU_TRY("synchronizing the GPU", cudaStreamSynchronize(impl_of(b)->stream));
    return SAL_OK;
}

static sal_status cu_mem_info(sal_backend *b, size_t *avail, size_t *total) {
    if (cudaSetDevice(impl_of(b)->device) != cudaSuccess) return SAL_ERR_DEVICE;
    return cudaMemGetInfo(avail, total) == cudaSuccess ? SAL_OK : SAL_ERR_DEVICE;
}

static sal_status ensure_ws(cu_impl *u, size_t bytes, const char *what, sal_error *err) {
    if (bytes <= u->ws_bytes) return SAL_OK;
    CU_TRY(what, cudaStreamSynchronize(u->stream));
    cudaFree(u->ws);
    u->ws = NULL;
    u->ws_bytes = 0;
    if (cudaMalloc(&u->ws, bytes) != cudaSuccess) {
        cudaGetLastError();
        return sal_fail(err, SAL_ERR_NOMEM, "%s: out of GPU memory for a %zu MiB cuDNN workspace", what,
                        bytes >> 20);
    }
    u->ws_bytes = bytes;
    return SAL_OK;
}

static sal_status ensure_pad(cu_impl *u, size_t bytes, const char *what, sal_error *err) {
    if (bytes <= u->pad_bytes) return SAL_OK;
    CU_TRY(what, cudaStreamSynchronize(u->stream));
    cudaFree(u->pad);
    u->pad = NULL;
    u->pad_bytes = 0;
    if (cudaMalloc((void **)&u->pad, bytes) != cudaSuccess) {
        cudaGetLastError();
        return sal_fail(err, SAL_ERR_NOMEM, "%s: out of GPU memory for a %zu MiB padded input", what, bytes >> 20);
    }
    u->pad_bytes = bytes;
    return SAL_OK;
}

/* ------------------------------------------------------------------------------------------------ */
/* Convolution (cuDNN)                                                                              */

static int tensor_core_math(cudnnMathType_t m) {
    return m == CUDNN_TENSOR_OP_MATH || m == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION;
}

static void conv_entry_free(conv_entry *ce) {
    if (ce->xd) cudnnDestroyTensorDescriptor(ce->xd);
    if (ce->yd) cudnnDestroyTensorDescriptor(ce->yd);
    if (ce->bd) cudnnDestroyTensorDescriptor(ce->bd);
    if (ce->fd) cudnnDestroyFilterDescriptor(ce->fd);
    if (ce->cd) cudnnDestroyConvolutionDescriptor(ce->cd);
    memset(ce, 0, sizeof *ce);
}

/* The cached descriptors and forward algorithm of this node at this shape, made on first use. */
static sal_status conv_lookup(cu_impl *u, const sal_op_call *c, conv_entry **out, sal_error *err) {
    const sal_conv_params *p = (const sal_conv_params *)c->params;
    const char *nm = c->node->name;
    for (int i = 0; i < u->n_conv; i++) {
        conv_entry *ce = &u->conv[i];
        if (ce->node == c->node && ce->n == p->n && ce->c == p->c && ce->h == p->h && ce->w == p->w &&
            ce->m == p->m) {
            *out = ce;
            return SAL_OK;
        }
    }
    /* cuDNN's descriptor pads symmetrically; other pads go through an explicit zero-padded copy */
    int padded = p->pt != p->pb || p->pl != p->pr;
    int64_t ph = padded ? 0 : p->pt, pw = padded ? 0 : p->pl;
    int64_t hp = padded ? p->h + p->pt + p->pb : p->h, wp = padded ? p->w + p->pl + p->pr : p->w;
    if (p->n > 0x7fffffff || p->c > 0x7fffffff || p->h > 0x7fffffff || p->w > 0x7fffffff)
        return sal_fail(err, SAL_ERR_UNSUPPORTED, "node '%s': Conv input too large for cuDNN", nm);
    if (u->n_conv == u->cap_conv) {
        int cap = u->cap_conv ? 2 * u->cap_conv : 64;
        conv_entry *nc = (conv_entry *)realloc(u->conv, sizeof *nc * (size_t)cap);
        if (!nc) return sal_fail(err, SAL_ERR_NOMEM, "out of memory");
        u->conv = nc;
        u->cap_conv = cap;
    }
    conv_entry *ce = &u->conv[u->n_conv];
    memset(ce, 0, sizeof *ce);
    ce->node = c->node;
    ce->n = p->n; ce->c = p->c; ce->h = p->h; ce->w = p->w; ce->m = p->m;
    ce->padded = padded; ce->hp = hp; ce->wp = wp; ce->pt = p->pt; ce->pl = p->pl;
    sal_status st = SAL_OK;
#define CE_TRY(call)                                                                               \
    do {                                                                                           \
        cudnnStatus_t e_ = (call);                                                                 \
        if (e_ != CUDNN_STATUS_SUCCESS) {                                                          \
            st = sal_fail(err, SAL_ERR_DEVICE, "node '%s': %s failed: %s", nm, #call,              \
                          cudnnGetErrorString(e_));                                                \
            goto fail;                                                                             \
        }                                                                                          \
    } while (0)
    CE_TRY(cudnnCreateTensorDescriptor(&ce->xd));
    CE_TRY(cudnnCreateTensorDescriptor(&ce->yd));
    CE_TRY(cudnnCreateTensorDescriptor(&ce->bd));
    CE_TRY(cudnnCreateFilterDescriptor(&ce->fd));
    CE_TRY(cudnnCreateConvolutionDescriptor(&ce->cd));
    CE_TRY(cudnnSetTensor4dDescriptor(ce->xd, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, (int)p->n, (int)p->c,
                                      (int)hp, (int)wp));
    CE_TRY(cudnnSetTensor4dDescriptor(ce->yd, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, (int)p->n, (int)p->m,
                                      (int)p->oh, (int)p->ow));
    CE_TRY(cudnnSetTensor4dDescriptor(ce->bd, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 1, (int)p->m, 1, 1));
    CE_TRY(cudnnSetFilter4dDescriptor(ce->fd, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, (int)p->m,
                                      (int)(p->c / p->group), (int)p->kh, (int)p->kw));
    CE_TRY(cudnnSetConvolution2dDescriptor(ce->cd, (int)ph, (int)pw, (int)p->sh, (int)p->sw, (int)p->dh,
                                           (int)p->dw, CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
    CE_TRY(cudnnSetConvolutionGroupCount(ce->cd, (int)p->group));
    CE_TRY(cudnnSetConvolutionMathType(ce->cd, CUDNN_FMA_MATH));
    {
        int n_out = (int)p->n, c_out = 0, h_out = 0, w_out = 0;
        CE_TRY(cudnnGetConvolution2dForwardOutputDim(ce->cd, ce->xd, ce->fd, &n_out, &c_out, &h_out, &w_out));
        if (c_out != p->m || h_out != p->oh || w_out != p->ow) {
            st = sal_fail(err, SAL_ERR_INTERNAL, "node '%s': cuDNN's output %dx%dx%d differs from the "
                          "plan's %lldx%lldx%lld", nm, c_out, h_out, w_out, (long long)p->m,
                          (long long)p->oh, (long long)p->ow);
            goto fail;
        }
        cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
        int got = 0, chosen = -1;
        CE_TRY(cudnnGetConvolutionForwardAlgorithm_v7(u->dnn, ce->xd, ce->fd, ce->cd, ce->yd,
                                                      CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &got, perf));
        for (int i = 0; i < got && chosen < 0; i++)
            if (perf[i].status == CUDNN_STATUS_SUCCESS && !tensor_core_math(perf[i].mathType) &&
                perf[i].memory <= SAL_CUDA_MAX_WS)
                chosen = i;
        if (chosen < 0) {
            st = sal_fail(err, SAL_ERR_UNSUPPORTED, "node '%s': cuDNN offers no FP32 forward algorithm "
                          "for this convolution", nm);
            goto fail;
        }
        ce->fwd_algo = perf[chosen].algo;
        /* FMA math whatever the heuristic listed (CUDNN_DEFAULT_MATH may use TF32 on Ampere+), and
         * the workspace that math needs */
        CE_TRY(cudnnGetConvolutionForwardWorkspaceSize(u->dnn, ce->xd, ce->fd, ce->cd, ce->yd, ce->fwd_algo,
                                                       &ce->fwd_ws));
    }
    u->n_conv++;
    *out = ce;
    return SAL_OK;
fail:
    conv_entry_free(ce);
    return st;
#undef CE_TRY
}

static sal_status conv_bwd_algo(cu_impl *u, conv_entry *ce, const char *nm, sal_error *err) {
    if (ce->bwd_ready) return SAL_OK;
    cudnnConvolutionBwdDataAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
    int got = 0, chosen = -1;
    DNN_TRY(nm, cudnnGetConvolutionBackwardDataAlgorithm_v7(u->dnn, ce->fd, ce->yd, ce->cd, ce->xd,
                                                            CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &got, perf));
    /* deterministic algorithms first (no atomics: the same gradients on every run) */
    for (int pass = 0; pass < 2 && chosen < 0; pass++)
        for (int i = 0; i < got && chosen < 0; i++)
            if (perf[i].status == CUDNN_STATUS_SUCCESS && !tensor_core_math(perf[i].mathType) &&
                perf[i].memory <= SAL_CUDA_MAX_WS && (pass || perf[i].determinism == CUDNN_DETERMINISTIC))
                chosen = i;
    if (chosen < 0)
        return sal_fail(err, SAL_ERR_UNSUPPORTED, "node '%s': cuDNN offers no FP32 backward-data "
                        "algorithm for this convolution", nm);
    ce->bwd_algo = perf[chosen].algo;
    DNN_TRY(nm, cudnnGetConvolutionBackwardDataWorkspaceSize(u->dnn, ce->fd, ce->yd, ce->cd, ce->xd, ce->bwd_algo,
                                                             &ce->bwd_ws));
    ce->bwd_ready = 1;
    return SAL_OK;
}

/* Asymmetric pads (cuDNN's legacy descriptor pads symmetrically): the input (n, c, h, w) is copied
 * into the zero-padded buffer u->pad (n, c, hp, wp) at (pt, pl), and backward adds that buffer's
 * interior gradient to gx: the twin Pad's forward and backward (constant mode, value 0), the same
 * element functions the Pad op runs. */
static sal_status pad_twin(cu_impl *u, const conv_entry *ce, int backward, const float *x, float *gx,
                           const char *nm, sal_error *err) {
    sal_tw_args a;
    sal_tw_pad_nchw_args(&a, ce->n, ce->c, ce->h, ce->w, ce->pt, ce->pl, ce->hp - ce->h - ce->pt, ce->wp - ce->w - ce->pl);
    if (!backward) {
        a.in[0] = x;
        a.out[0] = u->pad;
        return sal_cuda_twin_launch(SAL_TW_pad_fwd, ce->n * ce->c * ce->hp * ce->wp, &a, u->stream, nm, "Conv",
                                    "input padding", err);
    }
    a.gout[0] = u->pad;
    a.gin[0] = gx;
    return sal_cuda_twin_launch(SAL_TW_pad_bwd, ce->n * ce->c * ce->h * ce->w, &a, u->stream, nm, "Conv",
                                "padding gradient", err);
}

static sal_status conv_fwd(cu_impl *u, const sal_op_call *c, sal_error *err) {
    const sal_conv_params *p = (const sal_conv_params *)c->params;
    const char *nm = c->node->name;
    conv_entry *ce;
    sal_status st = conv_lookup(u, c, &ce, err);
    if (st) return st;
    if ((st = ensure_ws(u, ce->fwd_ws, nm, err))) return st;
    const float *x = c->in[0];
    if (ce->padded) {
        if ((st = ensure_pad(u, (size_t)(ce->n * ce->c * ce->hp * ce->wp) * sizeof(float), nm, err))) return st;
        if ((st = pad_twin(u, ce, 0, x, NULL, nm, err))) return st;
        x = u->pad;
    }
    const float one = 1.f, zero = 0.f;
    DNN_TRY(nm, cudnnConvolutionForward(u->dnn, &one, ce->xd, x, ce->fd, c->in[1], ce->cd,
                                        ce->fwd_algo, u->ws, ce->fwd_ws, &zero, ce->yd, c->out[0]));
    if (p->has_bias && c->n_in > 2 && c->in[2])
        DNN_TRY(nm, cudnnAddTensor(u->dnn, &one, ce->bd, c->in[2], &one, ce->yd, c->out[0]));
    return SAL_OK;
}

static sal_status conv_bwd(cu_impl *u, const sal_op_call *c, sal_error *err) {
    const char *nm = c->node->name;
    if ((c->n_in > 1 && c->gin[1]) || (c->n_in > 2 && c->gin[2]))
        return sal_fail(err, SAL_ERR_UNSUPPORTED, "node '%s': the CUDA backend computes no weight or "
                        "bias gradients (Conv weights must be constants)", nm);
    if (!c->gout[0] || !c->gin[0]) return SAL_OK;
    conv_entry *ce;
    sal_status st = conv_lookup(u, c, &ce, err);
    if (!st) st = conv_bwd_algo(u, ce, nm, err);
    if (!st) st = ensure_ws(u, ce->bwd_ws, nm, err);
    if (st) return st;
    const float one = 1.f, zero = 0.f;
    if (!ce->padded) {   /* beta = 1: ADD into gin */
        DNN_TRY(nm, cudnnConvolutionBackwardData(u->dnn, &one, ce->fd, c->in[1], ce->yd, c->gout[0], ce->cd,
                                                 ce->bwd_algo, u->ws, ce->bwd_ws, &one, ce->xd, c->gin[0]));
        return SAL_OK;
    }
    /* the gradient of the padded copy, then its interior added into gin */
    if ((st = ensure_pad(u, (size_t)(ce->n * ce->c * ce->hp * ce->wp) * sizeof(float), nm, err))) return st;
    DNN_TRY(nm, cudnnConvolutionBackwardData(u->dnn, &one, ce->fd, c->in[1], ce->yd, c->gout[0], ce->cd,
                                             ce->bwd_algo, u->ws, ce->bwd_ws, &zero, ce->xd, u->pad));
    return pad_twin(u, ce, 1, NULL, c->gin[0], nm, err);
}

/* ------------------------------------------------------------------------------------------------ */
/* Gemm and MatMul: host/backend/blas_drive.c over cuBLAS (the CPU backend drives oneDNN through   */
/* the same code, so the CPU tests check these arguments)                                          */

static int fits_int(int64_t v) { return v >= 0 && v <= 0x7fffffff; }

/* Row-major C (M,N) = alpha op(A) op(B) + beta C, as sal_sgemm (host/backend/cpu/gemm.h): cuBLAS is
 * column-major, so compute C^T = op(B)^T op(A)^T. */
static sal_status sgemm(cu_impl *u, const char *nm, int ta, int tb, int M, int N, int K, float alpha,
                        const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc,
                        sal_error *err) {
    BLAS_TRY(nm, cublasSgemm(u->blas, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N,
                             N, M, K, &alpha, B, ldb, A, lda, &beta, C, ldc));
    return SAL_OK;
}

/* sal_blas.gemm: one cublasSgemm, or count of them at strides as one strided-batched call. */
static sal_status blas_gemm(void *ctx, const char *nm, int ta, int tb, int64_t M, int64_t N, int64_t K,
                            float alpha, const float *A, int64_t lda, int64_t sa, const float *B, int64_t ldb,
                            int64_t sb, float beta, float *C, int64_t ldc, int64_t sc, int64_t count,
                            sal_error *err) {
    cu_impl *u = ctx;
    if (!fits_int(M) || !fits_int(N) || !fits_int(K) || !fits_int(lda) || !fits_int(ldb) || !fits_int(ldc) ||
        !fits_int(count))
        return sal_fail(err, SAL_ERR_UNSUPPORTED, "node '%s': matrix product too large for cuBLAS "
                        "(%lld x %lld x %lld, %lld of them)", nm, (long long)M, (long long)N, (long long)K,
                        (long long)count);
    if (count == 1)
        return sgemm(u, nm, ta, tb, (int)M, (int)N, (int)K, alpha, A, (int)lda, B, (int)ldb, beta, C, (int)ldc, err);
    BLAS_TRY(nm, cublasSgemmStridedBatched(u->blas, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N,
                                           (int)N, (int)M, (int)K, &alpha, B, (int)ldb, sb, A, (int)lda, sa, &beta,
                                           C, (int)ldc, sc, (int)count));
    return SAL_OK;
}

static sal_status blas_twin(void *ctx, const char *nm, int fn, int64_t count, const sal_tw_args *a,
                            sal_error *err) {
    return sal_cuda_twin_launch(fn, count, a, ((cu_impl *)ctx)->stream, nm, "Gemm", "C operand", err);
}

static sal_status blas_zero(void *ctx, const char *nm, float *p, int64_t n, sal_error *err) {
    CU_TRY(nm, cudaMemsetAsync(p, 0, sizeof(float) * (size_t)n, ((cu_impl *)ctx)->stream));
    return SAL_OK;
}

/* ------------------------------------------------------------------------------------------------ */
/* Dispatch                                                                                         */

static int cu_supports(sal_backend *b, const sal_node *node) {
    (void)b;
    if (node->op == SAL_OP_CONV || node->op == SAL_OP_GEMM || node->op == SAL_OP_MATMUL) return 1;
    return sal_tw_has_op(node->op);
}

static sal_status run(sal_backend *b, const sal_op_call *call, int backward, sal_error *err) {
    cu_impl *u = impl_of(b);
    CU_TRY(call->node->name, cudaSetDevice(u->device));
    const sal_blas blas = {u, blas_gemm, blas_twin, blas_zero};
    if (!call->params && call->node->op == SAL_OP_CONV)
        return sal_fail(err, SAL_ERR_INTERNAL, "node '%s': no parameters", call->node->name);
    switch (call->node->op) {
    case SAL_OP_CONV: return backward ? conv_bwd(u, call, err) : conv_fwd(u, call, err);
    case SAL_OP_GEMM: return sal_blas_gemm(&blas, call, backward, err);
    case SAL_OP_MATMUL: return sal_blas_matmul(&blas, call, backward, err);
    default: return sal_cuda_twin_run(call, backward, u->stream, err);
    }
}

static sal_status cu_fwd(sal_backend *b, const sal_op_call *call, sal_error *err) { return run(b, call, 0, err); }
static sal_status cu_bwd(sal_backend *b, const sal_op_call *call, sal_error *err) { return run(b, call, 1, err); }

static void cu_destroy(sal_backend *b) {
    if (!b) return;
    cu_impl *u = impl_of(b);
    if (u) {
        if (u->stream) cudaStreamSynchronize(u->stream);
        if (u->copy) {
            cudaStreamSynchronize(u->copy);
            cudaStreamDestroy(u->copy);
        }
        for (int k = 0; k < 2; k++) {
            if (u->pin[k]) cudaFreeHost(u->pin[k]);
            if (u->pin_free[k]) cudaEventDestroy(u->pin_free[k]);
        }
        if (u->copied) cudaEventDestroy(u->copied);
        for (int i = 0; i < u->n_conv; i++) conv_entry_free(&u->conv[i]);
        free(u->conv);
        cudaFree(u->ws);
        cudaFree(u->pad);
        if (u->blas) cublasDestroy(u->blas);
        if (u->dnn) cudnnDestroy(u->dnn);
        if (u->stream) cudaStreamDestroy(u->stream);
        free(u);
    }
    free(b);
}

/* Square FP32 SGEMM of side n (default 8192) through cuBLAS on the session's stream, timed with
 * events, best of 3 after one warm-up; operands filled on the device (not zeros: those run faster). */
static sal_status cu_peak_gflops(sal_backend *b, int n, double *gflops, sal_error *err) {
    cu_impl *u = impl_of(b);
    if (n <= 0) n = 8192;
    size_t bytes = sizeof(float) * (size_t)n * (size_t)n;
    float *a = NULL, *m = NULL, *c = NULL;
    cudaEvent_t e0 = NULL, e1 = NULL;
    sal_status st = SAL_OK;
    const char *what = "measuring the GPU's SGEMM rate";
    CU_TRY(what, cudaSetDevice(u->device));
    if (cudaMalloc((void **)&a, bytes) != cudaSuccess || cudaMalloc((void **)&m, bytes) != cudaSuccess ||
        cudaMalloc((void **)&c, bytes) != cudaSuccess) {
        cudaGetLastError();
        st = sal_fail(err, SAL_ERR_NOMEM, "%s: out of GPU memory for %dx%d matrices", what, n, n);
        goto done;
    }
    if (sal_cuda_fill_random(a, (int64_t)n * n, 1, u->stream) || sal_cuda_fill_random(m, (int64_t)n * n, 2, u->stream)) {
        st = sal_fail(err, SAL_ERR_DEVICE, "%s: filling the operands failed", what);
        goto done;
    }
    if (cudaEventCreate(&e0) != cudaSuccess || cudaEventCreate(&e1) != cudaSuccess) {
        st = sal_fail(err, SAL_ERR_DEVICE, "%s: cudaEventCreate failed", what);
        goto done;
    }
    float best = 1e30f;
    for (int r = 0; r < 4 && !st; r++) {
        cudaEventRecord(e0, u->stream);
        st = sgemm(u, what, 0, 0, n, n, n, 1.f, a, n, m, n, 0.f, c, n, err);
        cudaEventRecord(e1, u->stream);
        float ms = 0;
        if (!st && (cudaEventSynchronize(e1) != cudaSuccess || cudaEventElapsedTime(&ms, e0, e1) != cudaSuccess))
            st = sal_fail(err, SAL_ERR_DEVICE, "%s: timing failed", what);
        if (!st && r > 0 && ms < best) best = ms;
    }
    if (!st) *gflops = 2.0 * n * (double)n * n / (best * 1e-3) * 1e-9;
done:
    if (e0) cudaEventDestroy(e0);
    if (e1) cudaEventDestroy(e1);
    cudaFree(a); cudaFree(m); cudaFree(c);
    return st;
}

/* max_batch 256: a GPU needs large batches to fill; memory decides below that */
static sal_status cu_prim(sal_backend *b, int fn, int64_t count, const struct sal_mp_args *a,
                         sal_error *err) {
    CU_TRY("method primitive", cudaSetDevice(impl_of(b)->device));
    return sal_cuda_prim(fn, count, a, impl_of(b)->stream, err);
}

static size_t cu_sort_scratch(sal_backend *b, int64_t n) {
    cudaSetDevice(impl_of(b)->device);
    return sal_cuda_sort_scratch(n);
}

static sal_status cu_sort(sal_backend *b, float *data, int64_t n, void *scratch, sal_error *err) {
    CU_TRY("sorting", cudaSetDevice(impl_of(b)->device));
    return sal_cuda_sort(data, n, scratch, impl_of(b)->stream, err);
}

static const sal_backend_ops cuda_ops = {
    "cuda", cu_destroy, cu_supports, cu_alloc, cu_release, cu_upload, cu_download, cu_zero,
    cu_fwd, cu_bwd, cu_sync, cu_mem_info, 256, cu_peak_gflops, cu_prim, cu_sort_scratch, cu_sort, cu_upload_async, cu_wait_uploads,
    NULL,
};

sal_status sal_backend_cuda_create(sal_backend **out, sal_error *err) {
    *out = NULL;
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess || count == 0) {
        /* no kernel driver at all (most machines without a GPU) is said plainly; otherwise the
         * driver's own reason */
        if (access("/proc/driver/nvidia/version", F_OK) != 0)
            return sal_fail(err, SAL_ERR_DEVICE, "no NVIDIA driver found");
        return sal_fail(err, SAL_ERR_DEVICE, "no usable CUDA device: %s",
                        e != cudaSuccess ? cudaGetErrorString(e) : "the driver reports 0 devices");
    }
    if (sal_cuda_probe_launch() != 0)
        return sal_fail(err, SAL_ERR_DEVICE, "the CUDA device cannot run this build's kernels "
                        "(built for sm_80/sm_90?)");
    sal_backend *b = (sal_backend *)calloc(1, sizeof *b);
    cu_impl *u = (cu_impl *)calloc(1, sizeof *u);
    if (!b || !u) {
        free(b);
        free(u);
        return sal_fail(err, SAL_ERR_NOMEM, "out of memory creating the CUDA backend");
    }
    b->ops = &cuda_ops;
    b->impl = u;
    b->host_memory = 0;
    b->threads = 1;
    sal_status st = SAL_OK;
    const char *what = "creating the CUDA backend";
    cudnnStatus_t ds;
    cublasStatus_t bs;
    if ((e = cudaGetDevice(&u->device)) != cudaSuccess ||
        (e = cudaStreamCreateWithFlags(&u->stream, cudaStreamNonBlocking)) != cudaSuccess) {
        st = sal_fail(err, SAL_ERR_DEVICE, "%s: %s", what, cudaGetErrorString(e));
    } else if ((ds = cudnnCreate(&u->dnn)) != CUDNN_STATUS_SUCCESS ||
               (ds = cudnnSetStream(u->dnn, u->stream)) != CUDNN_STATUS_SUCCESS) {
        st = sal_fail(err, SAL_ERR_DEVICE, "%s: cuDNN: %s (cuDNN %zu loaded, built against %d)", what,
                      cudnnGetErrorString(ds), cudnnGetVersion(), CUDNN_VERSION);
    } else if ((bs = cublasCreate(&u->blas)) != CUBLAS_STATUS_SUCCESS ||
               (bs = cublasSetStream(u->blas, u->stream)) != CUBLAS_STATUS_SUCCESS ||
               (bs = cublasSetMathMode(u->blas, CUBLAS_DEFAULT_MATH)) != CUBLAS_STATUS_SUCCESS) {
        st = sal_fail(err, SAL_ERR_DEVICE, "%s: cuBLAS: %s", what, cublasGetStatusString(bs));
    }
    if (st) {
        cu_destroy(b);
        return st;
    }
    *out = b;
    return SAL_OK;
}
