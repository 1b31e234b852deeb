// SparseAdam — torch 1.13 torch.optim.SparseAdam (torch.optim._functional.sparse_adam) for the
// dense gradients dltool has. torch needs sparse gradients (nn.Embedding(sparse=True)) and
// updates only the rows they hold, so rows not looked up keep their moments and values. Here
// a row (index along dim 0; a 1-d parameter's element; a 0-dim parameter as a whole) counts as
// touched when its gradient row is not all zero — exactly what an embedding's sparse gradient
// holds, so the numbers equal torch's with nn.Embedding(sparse=True). The one difference: a
// row that was looked up but whose summed gradient is exactly zero is left alone, where torch
// would decay its moments. Per touched row:
//   step += 1                                          (per parameter, every step())
//   exp_avg += (1 - beta1) * (g - exp_avg)
//   exp_avg_sq += (1 - beta2) * (g * g - exp_avg_sq)
//   p -= lr * sqrt(1 - beta2^step) / (1 - beta1^step) * exp_avg / (sqrt(exp_avg_sq) + eps)
// Options: lr (1e-3, > 0), betas (0.9, 0.999) stored as beta1/beta2, eps (1e-8, > 0).
// Slots: exp_avg, exp_avg_sq. The update costs O(parameter size) per step (dense masks), not
// O(touched rows).
#pragma once
#include "engine/optim/optimizer.h"

namespace dl::optim {

class SparseAdam : public Optimizer {
 public:
  // `options` not given take the registered defaults; unknown keys throw.
  explicit SparseAdam(std::vector<ParamGroup> groups, const Options& options = {});
  explicit SparseAdam(const NamedTensors& params, const Options& options = {});
  using Optimizer::step;
  void step() override;
  std::vector<std::string> slot_names(const Options& group) const override;

 protected:
  void validate(const Options& o) const override;
};

}  // namespace dl::optim
