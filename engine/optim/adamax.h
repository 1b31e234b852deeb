// Adamax — torch 1.13 torch.optim.Adamax (_single_tensor_adamax), per parameter:
//   step += 1
//   g = grad + weight_decay * p
//   exp_avg = beta1 * exp_avg + (1 - beta1) * g
//   exp_inf = max(beta2 * exp_inf, |g| + eps)
//   p -= lr / (1 - beta1^step) * exp_avg / exp_inf
// Options: lr (2e-3), betas (0.9, 0.999) stored as beta1/beta2, eps (1e-8), weight_decay (0).
// Slots: exp_avg, exp_inf.
#pragma once
#include "engine/optim/optimizer.h"

namespace dl::optim {

class Adamax : public Optimizer {
 public:
  // `options` not given take the registered defaults; unknown keys throw.
  explicit Adamax(std::vector<ParamGroup> groups, const Options& options = {});
  explicit Adamax(const NamedTensors& params, const Options& options = {});
  using Optimizer::step;
  void step() override;
  std::vector<std::string> slot_names(const Options& group) const override;

 protected:
  void validate(const Options& o) const override;
};

}  // namespace dl::optim
