// Joining and splitting (the view ops are Tensor methods).
#pragma once
#include <vector>

#include "engine/tensor/tensor.h"

namespace dl {

Tensor cat(const std::vector<Tensor>& tensors, int64_t dim = 0);
Tensor stack(const std::vector<Tensor>& tensors, int64_t dim = 0);
// Gathers rows of `x` along dim 0 at `indices` (i64, 1-d): x[indices].
Tensor index_select(const Tensor& x, int64_t dim, const Tensor& indices);
// one_hot(labels[N] i64, C) -> [N, C] of `dtype`.
Tensor one_hot(const Tensor& labels, int64_t num_classes, DType dtype = DType::F32);

}  // namespace dl
