// Argument checks and small helpers shared by the NCHW ops (nn.cpp, sync_batch_norm.cpp, conv_transpose.cpp,
// interpolate.cpp). Internal to engine/ops: messages name the op and what was wrong.
#pragma once
#include <stdexcept>
#include <string>

#include "engine/autograd/autograd.h"
#include "engine/ops/elementwise.h"
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

// batch_norm's and sync_batch_norm's arguments: x [N, C] or [N, C, *] floating; weight, bias,
// running_mean, running_var [C] or undefined, weight and bias of x's dtype and device. Returns C.
inline int64_t check_batch_norm_args(const char* op, const Tensor& x, const Tensor& weight, const Tensor& bias,
                                     const Tensor& running_mean, const Tensor& running_var) {
  check_float(x, op, "input");
  check_match(x, weight, op, "weight");
  check_match(x, bias, op, "bias");
  if (x.dim() < 2)
    throw std::invalid_argument(std::string(op) + ": expected input [N, C] or [N, C, *], got " + shape_str(x.shape()));
  const int64_t C = x.size(1);
  auto check_c = [&](const Tensor& t, const char* what) {
    if (t.defined() && (t.dim() != 1 || t.size(0) != C))
      throw std::invalid_argument(std::string(op) + ": " + what + " " + shape_str(t.shape()) + " does not match " +
                                  std::to_string(C) + " channels of input " + shape_str(x.shape()));
  };
  check_c(weight, "weight");
  check_c(bias, "bias");
  check_c(running_mean, "running_mean");
  check_c(running_var, "running_var");
  return C;
}

// running = (1 - momentum) * running + momentum * batch statistic, for each one defined; `var`
// is the biased variance over `count` values per channel, the running one unbiased (PyTorch).
inline void update_running_stats(Tensor& running_mean, Tensor& running_var, const Tensor& mean, const Tensor& var,
                                 double momentum, int64_t count) {
  NoGradGuard ng;
  const double unbias = static_cast<double>(count) / static_cast<double>(count - 1);
  if (running_mean.defined()) {
    mul_(running_mean, 1.0 - momentum);
    add_(running_mean, mean.to(running_mean.dtype()), momentum);
  }
  if (running_var.defined()) {
    mul_(running_var, 1.0 - momentum);
    add_(running_var, var.to(running_var.dtype()), momentum * unbias);
  }
}

// A contiguous tensor outside the autograd graph (undefined stays undefined): what kernels get.
inline Tensor contig(const Tensor& t) { return t.defined() ? t.detach().contiguous() : Tensor(); }

}  // namespace dl::nn_checks
