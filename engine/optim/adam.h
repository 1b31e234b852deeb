// Adam and AdamW (optionally AMSGrad) — torch 1.13 _single_tensor_adam / _single_tensor_adamw:
//   step += 1
//   Adam:  g = grad + weight_decay * p          AdamW: p *= 1 - lr * weight_decay
//   exp_avg = beta1 * exp_avg + (1 - beta1) * g
//   exp_avg_sq = beta2 * exp_avg_sq + (1 - beta2) * g * g
//   max_exp_avg_sq = max(max_exp_avg_sq, exp_avg_sq)                   (amsgrad)
//   denom = sqrt(exp_avg_sq or max_exp_avg_sq) / sqrt(1 - beta2^step) + eps
//   p -= lr / (1 - beta1^step) * exp_avg / denom
#pragma once
#include "engine/optim/optimizer.h"

namespace dl::optim {

struct AdamOptions {
  double lr = 1e-3;
  double beta1 = 0.9, beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;
  bool amsgrad = false;

  Options to_map() const;
  static AdamOptions from_map(const Options& m);  // unknown keys throw
};

// Same fields; AdamW's only different default is weight_decay = 1e-2.
struct AdamWOptions {
  double lr = 1e-3;
  double beta1 = 0.9, beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 1e-2;
  bool amsgrad = false;

  Options to_map() const;
  static AdamWOptions from_map(const Options& m);  // unknown keys throw
};

class Adam : public Optimizer {
 public:
  Adam(const NamedTensors& params, const AdamOptions& options = {});
  Adam(std::vector<ParamGroup> groups, const AdamOptions& options = {});
  using Optimizer::step;
  void step() override;
  std::vector<std::string> slot_names(const Options& group) const override;

 protected:
  Adam(std::string type, std::vector<ParamGroup> groups, Options defaults, bool decoupled);
  void validate(const Options& o) const override;

 private:
  bool decoupled_;
};

class AdamW : public Adam {
 public:
  AdamW(const NamedTensors& params, const AdamWOptions& options = {});
  AdamW(std::vector<ParamGroup> groups, const AdamWOptions& options = {});
};

}  // namespace dl::optim
