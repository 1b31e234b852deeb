// Argument checks and small helpers shared by the NCHW ops (nn.cpp, conv_transpose.cpp,
// interpolate.cpp). Internal to engine/ops: messages name the op and what was wrong.
#pragma once
#include <stdexcept>
#include <string>

#include "engine/ops/nn.h"
#include "engine/tensor/tensor.h"
#include "kernels/nn.h"

namespace dl::nn_checks {

// "(3, 2)"
inline std::string pair_str(Pair p) { return "(" + std::to_string(p[0]) + ", " + std::to_string(p[1]) + ")"; }

// The window of a convolution geometry both conv2d and conv_transpose2d fill the same way: kernel
// (weight's last two dims), stride, padding, dilation, groups. The image sides are the caller's.
inline void set_conv_window(Conv2dShape& s, const Tensor& weight, Pair stride, Pair padding, Pair dilation,
                            int64_t groups) {
  s.kh = weight.size(2);
  s.kw = weight.size(3);
  s.sh = stride[0];
  s.sw = stride[1];
  s.ph = padding[0];
  s.pw = padding[1];
  s.dh = dilation[0];
  s.dw = dilation[1];
  s.groups = groups;
}

inline void check_float(const Tensor& t, const char* op, const char* what) {
  if (!is_floating(t.dtype()))
    throw std::invalid_argument(std::string(op) + ": " + what + " must be a floating tensor, got " +
                                dtype_name(t.dtype()));
}

// `t` (when defined) has x's dtype and device.
inline void check_match(const Tensor& x, const Tensor& t, const char* op, const char* what) {
  if (!t.defined()) return;
  if (t.dtype() != x.dtype())
    throw std::invalid_argument(std::string(op) + ": " + what + " dtype " + dtype_name(t.dtype()) +
                                " does not match input dtype " + dtype_name(x.dtype()));
  if (t.device() != x.device())
    throw std::invalid_argument(std::string(op) + ": " + what + " is on " + t.device().str() +
                                " but input is on " + x.device().str());
}

// Accepts [N, C, H, W] or unbatched [C, H, W] (PyTorch); returns the 4-d view.
inline Tensor as_batched(const Tensor& x, const char* op) {
  if (x.dim() == 4) return x;
  if (x.dim() == 3) return x.unsqueeze(0);
  throw std::invalid_argument(std::string(op) + ": expected a 3-d [C, H, W] or 4-d [N, C, H, W] input, got " +
                              shape_str(x.shape()));
}
// The op's 4-d result `y` as 3-d again when the input `x` was unbatched.
inline Tensor unbatch_like(const Tensor& y, const Tensor& x) { return x.dim() == 3 ? y.squeeze(0) : y; }

// A contiguous tensor outside the autograd graph (undefined stays undefined): what kernels get.
inline Tensor contig(const Tensor& t) { return t.defined() ? t.detach().contiguous() : Tensor(); }

}  // namespace dl::nn_checks
