// RAdam (rectified Adam) — torch 1.13 torch.optim.RAdam (_single_tensor_radam), per parameter:
//   step += 1
//   g = grad + weight_decay * p
//   exp_avg = beta1 * exp_avg + (1 - beta1) * g
//   exp_avg_sq = beta2 * exp_avg_sq + (1 - beta2) * g * g
//   rho_inf = 2 / (1 - beta2) - 1;  rho_t = rho_inf - 2 step beta2^step / (1 - beta2^step)
//   rho_t > 5:  rect = sqrt((rho_t - 4)(rho_t - 2) rho_inf / ((rho_inf - 4)(rho_inf - 2) rho_t))
//               p -= exp_avg / (1 - beta1^step) * lr * sqrt(1 - beta2^step) / (sqrt(exp_avg_sq) + eps) * rect
//   else:       p -= exp_avg / (1 - beta1^step) * lr              (the variance is not tractable yet)
// Options: lr (1e-3), betas (0.9, 0.999) stored as beta1/beta2, eps (1e-8), weight_decay (0).
// Slots: exp_avg, exp_avg_sq.
#pragma once
#include "engine/optim/optimizer.h"

namespace dl::optim {

class RAdam : public Optimizer {
 public:
  // `options` not given take the registered defaults; unknown keys throw.
  explicit RAdam(std::vector<ParamGroup> groups, const Options& options = {});
  explicit RAdam(const NamedTensors& params, const Options& options = {});
  using Optimizer::step;
  void step() override;
  std::vector<std::string> slot_names(const Options& group) const override;

 protected:
  void validate(const Options& o) const override;
};

}  // namespace dl::optim
