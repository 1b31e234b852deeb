// Gradient clipping, torch.nn.utils semantics. Parameters without a gradient are ignored.
#pragma once
#include <limits>
#include <vector>

#include "engine/tensor/tensor.h"

namespace dl::optim {

// Scales all gradients by min(1, max_norm / (total_norm + 1e-6)), where total_norm is the
// norm_type-norm of the per-parameter gradient norms (= the norm of all gradients
// concatenated); norm_type = infinity uses the largest |g|. Returns total_norm (0 when no
// parameter has a gradient). error_if_nonfinite throws when total_norm is NaN/Inf.
double clip_grad_norm_(const std::vector<Tensor>& params, double max_norm, double norm_type = 2.0,
                       bool error_if_nonfinite = false);
// The same scaling without a host read (what clip_grad_norm_ runs): the total norm stays a
// 0-dim float64 tensor on the gradients' device, and the gradients are multiplied by
// clamp(max_norm / (total_norm + 1e-6), max=1), as torch does, so nothing waits for the
// device. Returns an undefined tensor when no parameter has a gradient.
Tensor clip_grad_norm_async_(const std::vector<Tensor>& params, double max_norm, double norm_type = 2.0);
// Clamps every gradient element to [-clip_value, clip_value] in place.
void clip_grad_value_(const std::vector<Tensor>& params, double clip_value);

constexpr double kInfNorm = std::numeric_limits<double>::infinity();

}  // namespace dl::optim
