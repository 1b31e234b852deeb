// Reduction and softmax kernel stubs. Every reduction here has a fixed evaluation order that
// does not depend on the number of threads (each output is produced by one thread; a
// single-output reduction is split into fixed 4096-element blocks combined in order), so
// results are bit-identical at any OMP_NUM_THREADS. Accumulation is in double for f32 inputs.
//
// All kernels see their input as a contiguous [outer, reduce, inner] block: the op layer
// (engine/ops/reduce.cpp) permutes the reduced dims together and makes the input contiguous.
// Outputs are contiguous [outer, inner] (or [outer, reduce, inner] for softmax).
#pragma once
#include "engine/dispatch.h"
#include "engine/tensor/tensor.h"

namespace dl {

// x [outer, reduce, inner]: out[o, i] = sum_r x[o, r, i]. f32/f64.
using sum_fn = void (*)(const Tensor& x, int64_t outer, int64_t reduce, int64_t inner, Tensor& out);
DL_DECLARE_STUB(sum_stub, sum_fn);

// x [outer, reduce, inner], reduce > 0: indices[o, i] (i64) = the r of the max/min of
// x[o, :, i]; values[o, i] (x's dtype) = that element, unless `values` is undefined
// (argmax/argmin). Ties pick the first occurrence; NaN counts as the extreme (the first NaN
// wins), like PyTorch. Any dtype.
enum class ArgReduceOp { Max, Min };
using arg_reduce_fn = void (*)(ArgReduceOp op, const Tensor& x, int64_t outer, int64_t reduce,
                               int64_t inner, Tensor& values, Tensor& indices);
DL_DECLARE_STUB(arg_reduce_stub, arg_reduce_fn);

// x [outer, reduce, inner]: out[o, i] = sum_r (x[o, r, i] - mean)^2 / max(0, reduce - correction)
// (two passes in double: mean, then squared deviations), or its square root when `take_sqrt`.
// f32/f64. reduce == 0 gives NaN.
using var_fn = void (*)(const Tensor& x, int64_t outer, int64_t reduce, int64_t inner,
                        int64_t correction, bool take_sqrt, Tensor& out);
DL_DECLARE_STUB(var_stub, var_fn);

// Softmax over the middle dim of x [outer, dim, inner] into out (same shape), numerically
// stable (max subtracted). `log` selects log_softmax. f32/f64.
using softmax_fn = void (*)(const Tensor& x, int64_t outer, int64_t dim, int64_t inner, bool log,
                            Tensor& out);
// Fused backward from the forward output y and the incoming gradient g (both contiguous
// [outer, dim, inner]):  softmax: gx = y * (g - sum_d(g * y));  log_softmax: gx = g - exp(y) * sum_d(g).
using softmax_backward_fn = void (*)(const Tensor& grad, const Tensor& y, int64_t outer,
                                     int64_t dim, int64_t inner, bool log, Tensor& grad_in);
DL_DECLARE_STUB(softmax_stub, softmax_fn);
DL_DECLARE_STUB(softmax_backward_stub, softmax_backward_fn);

}  // namespace dl
