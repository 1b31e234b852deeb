// RMSprop — torch 1.13 torch.optim.RMSprop (_single_tensor_rmsprop), per parameter:
//   g = grad + weight_decay * p
//   square_avg = alpha * square_avg + (1 - alpha) * g * g
//   centered:  grad_avg = alpha * grad_avg + (1 - alpha) * g
//              avg = sqrt(square_avg - grad_avg * grad_avg) + eps
//   else:      avg = sqrt(square_avg) + eps
//   momentum > 0:  momentum_buffer = momentum * momentum_buffer + g / avg;  p -= lr * momentum_buffer
//   else:          p -= lr * g / avg
// Options: lr (1e-2), alpha (0.99), eps (1e-8), weight_decay (0), momentum (0), centered (0/1).
// Slots: square_avg [, momentum_buffer when momentum > 0] [, grad_avg when centered].
#pragma once
#include "engine/optim/optimizer.h"

namespace dl::optim {

class RMSprop : public Optimizer {
 public:
  // `options` not given take the registered defaults; unknown keys throw.
  explicit RMSprop(std::vector<ParamGroup> groups, const Options& options = {});
  explicit RMSprop(const NamedTensors& params, const Options& options = {});
  using Optimizer::step;
  void step() override;
  std::vector<std::string> slot_names(const Options& group) const override;

 protected:
  void validate(const Options& o) const override;
};

}  // namespace dl::optim
