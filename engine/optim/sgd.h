// SGD with momentum, dampening, Nesterov and (L2) weight decay — torch 1.13 semantics:
//   d = grad + weight_decay * p
//   buf = d (first step) | momentum * buf + (1 - dampening) * d
//   d = nesterov ? d + momentum * buf : buf        (when momentum != 0)
//   p -= lr * d
#pragma once
#include <limits>

#include "engine/optim/optimizer.h"

namespace dl::optim {

struct SGDOptions {
  double lr = std::numeric_limits<double>::quiet_NaN();  // required
  double momentum = 0.0;
  double dampening = 0.0;
  double weight_decay = 0.0;
  bool nesterov = false;

  Options to_map() const;
  static SGDOptions from_map(const Options& m);  // unknown keys throw
};

class SGD : public Optimizer {
 public:
  SGD(const NamedTensors& params, const SGDOptions& options);
  SGD(std::vector<ParamGroup> groups, const SGDOptions& options);
  using Optimizer::step;
  void step() override;
  std::vector<std::string> slot_names(const Options& group) const override;

 protected:
  void validate(const Options& o) const override;
};

}  // namespace dl::optim
