// Layer normalisation (torch.nn.functional.layer_norm): each sample normalised over its trailing
// dims with its own mean and biased variance, then scaled and shifted elementwise.
#pragma once
#include "engine/tensor/tensor.h"

namespace dl {

// x [*, normalized_shape] (f32/f64) -> same shape:
//   y = (x - mean) / sqrt(var + eps) * weight + bias
// with mean and biased var over the trailing dims given by `normalized_shape` (at least one
// dim); weight/bias have shape `normalized_shape`, or are undefined (no affine). Backward
// reaches x, weight and bias; deterministic at any thread count (kernels/cpu/layer_norm.cpp).
Tensor layer_norm(const Tensor& x, const Shape& normalized_shape, const Tensor& weight = Tensor(),
                  const Tensor& bias = Tensor(), double eps = 1e-5);

}  // namespace dl
