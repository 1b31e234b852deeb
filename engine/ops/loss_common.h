// Argument checks and the reduction step shared by the loss files (engine/ops/loss*.cpp).
// Internal to engine/ops.
#pragma once
#include "engine/ops/loss.h"

namespace dl::loss_detail {

// std::invalid_argument "<op>: expected a floating-point <what>, got <dtype>".
void check_floating(const Tensor& x, const char* op, const char* what);
// std::invalid_argument when `b` is defined and on another device than `a`.
void check_same_device(const Tensor& a, const Tensor& b, const char* op);
// None: the per-element tensor; Mean / Sum over all of its elements (0-dim).
Tensor apply_reduction(const Tensor& loss, Reduction r);

}  // namespace dl::loss_detail
