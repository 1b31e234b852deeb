// Rprop (resilient backpropagation) — torch 1.13 torch.optim.Rprop (_single_tensor_rprop), per
// element of each parameter:
//   s = sign(grad * prev)
//   step_size = clamp(step_size * (s > 0 ? etaplus : s < 0 ? etaminus : 1), step_size_min, step_size_max)
//   g = s < 0 ? 0 : grad
//   p -= sign(g) * step_size
//   prev = g
// Options: lr (1e-2, the initial step_size; later lr changes have no effect, as in torch),
// etas (0.5, 1.2) stored as etaminus/etaplus, step_sizes (1e-6, 50) stored as
// step_size_min/step_size_max. Slots: prev, step_size.
#pragma once
#include "engine/optim/optimizer.h"

namespace dl::optim {

class Rprop : public Optimizer {
 public:
  // `options` not given take the registered defaults; unknown keys throw.
  explicit Rprop(std::vector<ParamGroup> groups, const Options& options = {});
  explicit Rprop(const NamedTensors& params, const Options& options = {});
  using Optimizer::step;
  void step() override;
  std::vector<std::string> slot_names(const Options& group) const override;

 protected:
  void validate(const Options& o) const override;
};

}  // namespace dl::optim
