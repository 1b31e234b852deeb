// Kernel stubs of the NCHW neural-network ops (engine/ops/nn.h): convolution, pooling,
// batch norm and dropout, and of layer norm (engine/ops/layer_norm.h). Each backend registers
// its own (see engine/dispatch.h); a CUDA/cuDNN backend fills the same slots from kernels/cuda.
//
// Conventions shared by every stub:
//   - Tensors are contiguous (the op layer makes them so), NCHW, one dtype per call (f32/f64).
//   - Outputs are allocated by the op layer with the right shape; kernels write every element
//     (outputs are NOT zero-filled beforehand).
//   - Shapes and hyper-parameters arrive in a plain struct, so a backend can use it directly
//     as (part of) a primitive-cache key.
//
// CPU backend (kernels/cpu/conv.cpp, pool.cpp, norm.cpp):
//   f32 convolution uses oneDNN primitives, cached by shape (and by the OpenMP thread count,
//   which oneDNN fixes at primitive creation); oneDNN picks blocked layouts and cached reorders
//   convert from/to our plain NCHW. f32 average pooling and max-pooling inference use oneDNN
//   too; max-pooling training uses our loops (faster than oneDNN's on plain NCHW, measured).
//   f64 (gradient checks) and what oneDNN cannot express with PyTorch's semantics (avg pooling
//   with count_include_pad where ceil_mode adds right padding beyond `padding`) use our loops,
//   which are also the oracle the tests compare oneDNN against. Batch norm, layer norm,
//   adaptive pooling and dropout are our own loops for every dtype.
//
// Determinism: our loops compute each output element in one thread in a fixed order (batch
// statistics: per-(n, c) partial sums in double, combined over n in order), so results are
// bit-identical at any OMP_NUM_THREADS. oneDNN primitives are bit-identical run to run at a
// fixed thread count, but may differ in the last bits between thread counts:
//   - convolution backward-weights (and its bias gradient): the reduction over the minibatch
//     and spatial positions is split across threads;
//   - convolution forward / backward-data when oneDNN falls back to its gemm-based
//     implementation: sgemm's K-blocking may depend on the thread count (see kernels/gemm.h).
//   Pooling has no cross-thread reduction and is thread-count independent.
#pragma once
#include <cstdint>

#include "engine/dispatch.h"
#include "engine/tensor/tensor.h"

namespace dl {

// ---- convolution -------------------------------------------------------------------------
// x [n, c, h, w], weight [o, c / groups, kh, kw], bias [o], y [n, o, oh, ow].
// Padding is symmetric (PyTorch); dilation 1 = dense.
struct Conv2dShape {
  int64_t n = 0, c = 0, h = 0, w = 0;
  int64_t o = 0, kh = 0, kw = 0;
  int64_t oh = 0, ow = 0;
  int64_t sh = 1, sw = 1, ph = 0, pw = 0, dh = 1, dw = 1;
  int64_t groups = 1;
};

// y = conv(x, weight) + bias (bias undefined: none).
using conv2d_fwd_fn = void (*)(const Conv2dShape& s, const Tensor& x, const Tensor& weight,
                               const Tensor& bias, Tensor& y);
// gx [n, c, h, w] = d(sum(y * gy)) / dx.
using conv2d_bwd_data_fn = void (*)(const Conv2dShape& s, const Tensor& gy, const Tensor& weight,
                                    Tensor& gx);
// gw [o, c / groups, kh, kw]; gb [o] when defined (else no bias gradient).
using conv2d_bwd_weights_fn = void (*)(const Conv2dShape& s, const Tensor& x, const Tensor& gy,
                                       Tensor& gw, Tensor& gb);

DL_DECLARE_STUB(conv2d_fwd_stub, conv2d_fwd_fn);
DL_DECLARE_STUB(conv2d_bwd_data_stub, conv2d_bwd_data_fn);
DL_DECLARE_STUB(conv2d_bwd_weights_stub, conv2d_bwd_weights_fn);

// ---- pooling -----------------------------------------------------------------------------
enum class PoolKind { Max, AvgIncludePad, AvgExcludePad };

// x [n, c, h, w] -> y [n, c, oh, ow]. oh/ow already follow PyTorch's rule (ceil_mode applied,
// the last window starts inside the input or the left padding), so windows may extend past
// w + pw on the right. Average divisors follow PyTorch: AvgIncludePad counts the window
// clipped to [-p, size + p), AvgExcludePad counts the window clipped to the input.
struct Pool2dShape {
  int64_t n = 0, c = 0, h = 0, w = 0;
  int64_t oh = 0, ow = 0;
  int64_t kh = 1, kw = 1, sh = 1, sw = 1, ph = 0, pw = 0;
  PoolKind kind = PoolKind::Max;
};

// `workspace`: null when no backward will run (inference); otherwise the kernel stores in it
// whatever its backward needs (max pooling: backend-specific argmax data; avg: may stay
// undefined). It is opaque to the op layer and passed back unchanged to pool2d_bwd.
using pool2d_fwd_fn = void (*)(const Pool2dShape& s, const Tensor& x, Tensor& y, Tensor* workspace);
// gx [n, c, h, w] from gy [n, c, oh, ow].
using pool2d_bwd_fn = void (*)(const Pool2dShape& s, const Tensor& gy, const Tensor& workspace,
                               Tensor& gx);
// PyTorch's adaptive windows: rows floor(i * h / oh) .. ceil((i + 1) * h / oh), same for cols.
// The Pool2dShape uses n, c, h, w, oh, ow only.
using adaptive_avg_pool2d_fwd_fn = void (*)(const Pool2dShape& s, const Tensor& x, Tensor& y);
using adaptive_avg_pool2d_bwd_fn = void (*)(const Pool2dShape& s, const Tensor& gy, Tensor& gx);

DL_DECLARE_STUB(pool2d_fwd_stub, pool2d_fwd_fn);
DL_DECLARE_STUB(pool2d_bwd_stub, pool2d_bwd_fn);
DL_DECLARE_STUB(adaptive_avg_pool2d_fwd_stub, adaptive_avg_pool2d_fwd_fn);
DL_DECLARE_STUB(adaptive_avg_pool2d_bwd_stub, adaptive_avg_pool2d_bwd_fn);

// ---- batch norm --------------------------------------------------------------------------
// x is viewed as [n, c, s] (s = product of the dims after 1; 1 for [N, C] input).
// weight/bias [c] or undefined (affine = false). mean/var [c] in x's dtype; var is the BIASED
// (population) variance.
//   training: the kernel computes mean/var of the batch into `mean`/`var`;
//   eval:     `mean`/`var` are inputs (running statistics).
// y = (x - mean) / sqrt(var + eps) * weight + bias; with relu, y = max(that, 0) (batch norm
// followed by ReLU in one pass, bit-identical to the two ops).
using batch_norm_fwd_fn = void (*)(const Tensor& x, const Tensor& weight, const Tensor& bias,
                                   Tensor& mean, Tensor& var, bool training, double eps, bool relu,
                                   Tensor& y);
// Gradients of the forward above with the same mean/var. In training mode gx includes the
// terms through the batch statistics. gx/gw/gb are skipped where undefined. relu_y: undefined,
// or the fused forward's output: gy then counts only where relu_y > 0 (ReLU's backward).
using batch_norm_bwd_fn = void (*)(const Tensor& x, const Tensor& gy, const Tensor& relu_y,
                                   const Tensor& weight, const Tensor& mean, const Tensor& var,
                                   bool training, double eps, Tensor& gx, Tensor& gw, Tensor& gb);

DL_DECLARE_STUB(batch_norm_fwd_stub, batch_norm_fwd_fn);
DL_DECLARE_STUB(batch_norm_bwd_stub, batch_norm_bwd_fn);

// ---- layer norm (kernels/cpu/layer_norm.cpp) ---------------------------------------------
// x is viewed as [m, n] (n = product of normalized_shape); weight/bias [n] or undefined.
// Writes y [m, n] = (x - mean) * rstd * weight + bias and, per row, mean [m] and rstd [m] =
// 1 / sqrt(biased var + eps), both float64 whatever x's dtype (what the backward reads: a
// float32 mean would round away the digits of x - mean for rows with a large mean). n > 0.
using layer_norm_fwd_fn = void (*)(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps,
                                   Tensor& y, Tensor& mean, Tensor& rstd);
// gx [m, n], gw [n], gb [n]; each skipped where undefined. gw/gb sum over rows in row order.
using layer_norm_bwd_fn = void (*)(const Tensor& x, const Tensor& gy, const Tensor& weight, const Tensor& mean,
                                   const Tensor& rstd, Tensor& gx, Tensor& gw, Tensor& gb);

DL_DECLARE_STUB(layer_norm_fwd_stub, layer_norm_fwd_fn);
DL_DECLARE_STUB(layer_norm_bwd_stub, layer_norm_bwd_fn);

// ---- dropout -----------------------------------------------------------------------------
// Element i (row-major) uses Philox counter `offset + i` (like kernels/random.h): it is
// dropped when u_i < p, u_i being the value rand() would draw there for x's dtype. So the mask
// does not depend on the thread count or the device. Writes mask (x's dtype) = 0 or 1/(1-p)
// and y = x * mask. 0 < p < 1.
using dropout_fn = void (*)(const Tensor& x, double p, uint64_t seed, uint64_t offset,
                            Tensor& y, Tensor& mask);
DL_DECLARE_STUB(dropout_stub, dropout_fn);

}  // namespace dl
