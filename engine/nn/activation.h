// Activation modules (stateless wrappers of engine/ops functions), Dropout and Dropout2d.
#pragma once
#include <string>

#include "engine/nn/module.h"

namespace dl::nn {

#define DL_NN_SIMPLE_ACTIVATION(Name, fn)                                  \
  class Name : public Module {                                             \
   public:                                                                 \
    using Module::forward;                                                 \
    Tensor forward(const Tensor& x) override;                              \
    std::string type_name() const override { return #Name; }              \
  };

DL_NN_SIMPLE_ACTIVATION(ReLU, relu)
DL_NN_SIMPLE_ACTIVATION(Sigmoid, sigmoid)
DL_NN_SIMPLE_ACTIVATION(Tanh, tanh)
#undef DL_NN_SIMPLE_ACTIVATION

class LeakyReLU : public Module {
 public:
  explicit LeakyReLU(double negative_slope = 0.01) : negative_slope(negative_slope) {}
  using Module::forward;
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "LeakyReLU"; }
  std::string extra_repr() const override { return "negative_slope=" + py_float(negative_slope); }
  double negative_slope;
};

class ELU : public Module {
 public:
  explicit ELU(double alpha = 1.0) : alpha(alpha) {}
  using Module::forward;
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "ELU"; }
  std::string extra_repr() const override { return "alpha=" + py_float(alpha); }
  double alpha;
};

// approximate: "none" (erf) or "tanh".
class GELU : public Module {
 public:
  explicit GELU(std::string approximate = "none");
  using Module::forward;
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "GELU"; }
  std::string extra_repr() const override { return "approximate='" + approximate + "'"; }
  std::string approximate;
};

class Softplus : public Module {
 public:
  explicit Softplus(double beta = 1.0, double threshold = 20.0) : beta(beta), threshold(threshold) {}
  using Module::forward;
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "Softplus"; }
  std::string extra_repr() const override;
  double beta, threshold;
};

class Softmax : public Module {
 public:
  explicit Softmax(int64_t dim) : dim(dim) {}
  using Module::forward;
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "Softmax"; }
  std::string extra_repr() const override { return "dim=" + std::to_string(dim); }
  int64_t dim;
};

class LogSoftmax : public Module {
 public:
  explicit LogSoftmax(int64_t dim) : dim(dim) {}
  using Module::forward;
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "LogSoftmax"; }
  std::string extra_repr() const override { return "dim=" + std::to_string(dim); }
  int64_t dim;
};

// Inverted dropout in training mode, identity in eval mode. Draws from
// dl::default_generator(x.device()) at forward time, so the RNG state that checkpoints save
// (the default generators) covers dropout masks.
class Dropout : public Module {
 public:
  explicit Dropout(double p = 0.5);
  using Module::forward;
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "Dropout"; }
  std::string extra_repr() const override { return "p=" + py_float(p) + ", inplace=False"; }
  double p;
};

// torch.nn.Dropout2d: zeroes whole channels of [N, C, H, W] or [C, H, W] (engine/ops/nn.h).
class Dropout2d : public Dropout {
 public:
  explicit Dropout2d(double p = 0.5) : Dropout(p) {}
  using Module::forward;
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "Dropout2d"; }
};

}  // namespace dl::nn
