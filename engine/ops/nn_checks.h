// Argument checks and small helpers shared by the NCHW ops (nn.cpp, conv_transpose.cpp,
// interpolate.cpp). Internal to engine/ops: messages name the op and what was wrong.
#pragma once
#include <stdexcept>
#include <string>

#include "engine/ops/nn.h"
#include "engine/tensor/tensor.h"

namespace dl::nn_checks {

// "(3, 2)"
inline std::string pair_str(Pair p) { return "(" + std::to_string(p[0]) + ", " + std::to_string(p[1]) + ")"; }

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
