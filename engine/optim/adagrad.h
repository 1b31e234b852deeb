// Adagrad — torch 1.13 torch.optim.Adagrad (_single_tensor_adagrad, dense gradients), per
// parameter:
//   step += 1
//   g = grad + weight_decay * p
//   clr = lr / (1 + (step - 1) * lr_decay)
//   sum += g * g
//   p -= clr * g / (sqrt(sum) + eps)
// Options: lr (1e-2), lr_decay (0), weight_decay (0), initial_accumulator_value (0), eps (1e-10).
// Slot: sum, which starts at the OPTIMIZER's initial_accumulator_value like torch (torch fills
// every state at construction from the constructor argument, so a group's own value is unused).
// The slot is created at the parameter's first update instead: same numbers.
#pragma once
#include "engine/optim/optimizer.h"

namespace dl::optim {

class Adagrad : public Optimizer {
 public:
  // `options` not given take the registered defaults; unknown keys throw.
  explicit Adagrad(std::vector<ParamGroup> groups, const Options& options = {});
  explicit Adagrad(const NamedTensors& params, const Options& options = {});
  using Optimizer::step;
  void step() override;
  std::vector<std::string> slot_names(const Options& group) const override;

 protected:
  void validate(const Options& o) const override;
};

}  // namespace dl::optim
