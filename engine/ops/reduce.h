// Reductions. Our reductions use a fixed summation order that does not depend on the thread
// count (blocked pairwise sums), so results are bit-identical at any OMP_NUM_THREADS.
#pragma once
#include <utility>
#include <vector>

#include "engine/tensor/tensor.h"

namespace dl {

Tensor sum(const Tensor& x);  // all elements -> 0-dim
Tensor sum(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim = false);
Tensor mean(const Tensor& x);
Tensor mean(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim = false);
// Values and indices (i64) of the max/min along `dim`; grad flows to the selected elements.
std::pair<Tensor, Tensor> max(const Tensor& x, int64_t dim, bool keepdim = false);
std::pair<Tensor, Tensor> min(const Tensor& x, int64_t dim, bool keepdim = false);
Tensor max(const Tensor& x);  // all elements -> 0-dim
Tensor min(const Tensor& x);
Tensor argmax(const Tensor& x, int64_t dim, bool keepdim = false);  // no grad
Tensor argmin(const Tensor& x, int64_t dim, bool keepdim = false);  // no grad
// correction = 1 is the unbiased estimator (torch default), 0 the population one.
Tensor var(const Tensor& x, const std::vector<int64_t>& dims, int64_t correction = 1, bool keepdim = false);
Tensor std(const Tensor& x, const std::vector<int64_t>& dims, int64_t correction = 1, bool keepdim = false);
Tensor var(const Tensor& x, int64_t correction = 1);
Tensor std(const Tensor& x, int64_t correction = 1);

Tensor softmax(const Tensor& x, int64_t dim);
Tensor log_softmax(const Tensor& x, int64_t dim);

}  // namespace dl
