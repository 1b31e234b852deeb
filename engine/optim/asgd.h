// ASGD (averaged SGD) — torch 1.13 torch.optim.ASGD (_single_tensor_asgd), per parameter:
//   step += 1
//   g = grad + weight_decay * p
//   p *= 1 - lambd * eta
//   p -= eta * g
//   ax = mu == 1 ? p : ax + mu * (p - ax)          (the average, ax, is what ASGD is for)
//   eta = lr / (1 + lambd * lr * step)^alpha
//   mu = 1 / max(1, step - t0)
// Options: lr (1e-2), lambd (1e-4), alpha (0.75), t0 (1e6), weight_decay (0).
// Slots: eta and mu are 0-dim float32 tensors, as torch keeps them (torch.tensor(lr)): their
// values are rounded to float32 whatever the parameter's dtype; ax is shaped like the parameter.
#pragma once
#include "engine/optim/optimizer.h"

namespace dl::optim {

class ASGD : public Optimizer {
 public:
  // `options` not given take the registered defaults; unknown keys throw.
  explicit ASGD(std::vector<ParamGroup> groups, const Options& options = {});
  explicit ASGD(const NamedTensors& params, const Options& options = {});
  using Optimizer::step;
  void step() override;
  std::vector<std::string> slot_names(const Options& group) const override;
  std::string check_slot(const std::string& slot, const Tensor& value, const Tensor& param) const override;
  DType slot_dtype(const std::string& slot, const Tensor& param) const override;  // the scalars stay float32

 protected:
  void validate(const Options& o) const override;
};

}  // namespace dl::optim
