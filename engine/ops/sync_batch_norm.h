// Synchronised batch norm (torch.nn.SyncBatchNorm's training-mode function): batch_norm in
// training mode whose batch statistics are those of every rank's batch together.
//
// Forward: each rank sums its per-channel [sum(x), sum(x^2)] and its count (float64), one
// all-reduce of that [2C + 1] tensor gives the global mean and biased variance; y is batch
// norm with them (relu: fused ReLU, as batch_norm_relu). The running statistics are updated
// like batch_norm's, the variance unbiased over the GLOBAL count, identically on every rank.
// Backward: one all-reduce of the per-channel [sum(dy), sum(dy * xhat)] (dy after the ReLU
// mask) gives the input gradient through the global statistics:
//   dx = weight * invstd * (dy - sum(dy) / count - xhat * sum(dy * xhat) / count)
// weight's and bias's gradients are this rank's own sums (data-parallel training averages
// them with every other gradient), as in PyTorch. Every rank calls it with the same C, dtype
// and requires-grad pattern (the same model); a rank's batch may be empty. In a world of one
// the result equals batch_norm's up to rounding (nn::BatchNorm* call batch_norm there).
#pragma once
#include <memory>

#include "engine/tensor/tensor.h"

namespace dl {

namespace dist { class ProcessGroup; }

Tensor sync_batch_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, Tensor running_mean,
                       Tensor running_var, double momentum, double eps,
                       const std::shared_ptr<dist::ProcessGroup>& group, bool relu = false);

}  // namespace dl
