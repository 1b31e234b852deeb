// NAdam (Adam with Nesterov momentum) — torch 1.13 torch.optim.NAdam (_single_tensor_nadam),
// per parameter:
//   step += 1
//   g = grad + weight_decay * p
//   mu = beta1 * (1 - 0.5 * 0.96^(step * momentum_decay)),  mu_next the same at step + 1
//   mu_product *= mu                                     (float32, as torch keeps it)
//   exp_avg = beta1 * exp_avg + (1 - beta1) * g
//   exp_avg_sq = beta2 * exp_avg_sq + (1 - beta2) * g * g
//   denom = sqrt(exp_avg_sq / (1 - beta2^step)) + eps
//   p -= lr * (1 - mu) / (1 - mu_product) * g / denom
//   p -= lr * mu_next / (1 - mu_product * mu_next) * exp_avg / denom
// Options: lr (2e-3), betas (0.9, 0.999) stored as beta1/beta2, eps (1e-8), weight_decay (0),
// momentum_decay (4e-3). Slots: mu_product (a 0-dim float32 tensor: torch.tensor(1.) in torch,
// whose float32 rounding we reproduce), exp_avg, exp_avg_sq.
#pragma once
#include "engine/optim/optimizer.h"

namespace dl::optim {

class NAdam : public Optimizer {
 public:
  // `options` not given take the registered defaults; unknown keys throw.
  explicit NAdam(std::vector<ParamGroup> groups, const Options& options = {});
  explicit NAdam(const NamedTensors& params, const Options& options = {});
  using Optimizer::step;
  void step() override;
  std::vector<std::string> slot_names(const Options& group) const override;
  std::string check_slot(const std::string& slot, const Tensor& value, const Tensor& param) const override;
  DType slot_dtype(const std::string& slot, const Tensor& param) const override;  // the scalars stay float32

 protected:
  void validate(const Options& o) const override;
};

}  // namespace dl::optim
