// Adadelta — torch 1.13 torch.optim.Adadelta (_single_tensor_adadelta), per parameter:
//   g = grad + weight_decay * p
//   square_avg = rho * square_avg + (1 - rho) * g * g
//   delta = sqrt(acc_delta + eps) / sqrt(square_avg + eps) * g
//   acc_delta = rho * acc_delta + (1 - rho) * delta * delta
//   p -= lr * delta
// Options: lr (1.0), rho (0.9), eps (1e-6), weight_decay (0). Slots: square_avg, acc_delta.
#pragma once
#include "engine/optim/optimizer.h"

namespace dl::optim {

class Adadelta : public Optimizer {
 public:
  // `options` not given take the registered defaults; unknown keys throw.
  explicit Adadelta(std::vector<ParamGroup> groups, const Options& options = {});
  explicit Adadelta(const NamedTensors& params, const Options& options = {});
  using Optimizer::step;
  void step() override;
  std::vector<std::string> slot_names(const Options& group) const override;

 protected:
  void validate(const Options& o) const override;
};

}  // namespace dl::optim
