// Linear, Identity, Flatten, Reshape, Permute.
#pragma once
#include "engine/nn/module.h"

namespace dl::nn {

// y = x W^T + b. weight [out_features, in_features], bias [out_features].
// Init (PyTorch): weight kaiming_uniform_(a = sqrt(5)) = U(-1/sqrt(in), 1/sqrt(in)),
// bias U(-1/sqrt(in), 1/sqrt(in)).
class Linear : public Module {
 public:
  Linear(int64_t in_features, int64_t out_features, bool bias = true,
         Generator& gen = default_generator());
  using Module::forward;
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "Linear"; }
  std::string extra_repr() const override;
  // Re-draws weight and bias with the default initialisation.
  void reset_parameters(Generator& gen);

  int64_t in_features, out_features;
  Tensor weight;  // [out, in]
  Tensor bias;    // [out] or undefined
};

class Identity : public Module {
 public:
  using Module::forward;
  Tensor forward(const Tensor& x) override { return x; }
  std::string type_name() const override { return "Identity"; }
};

// Flattens dims start_dim..end_dim into one (a view when possible).
class Flatten : public Module {
 public:
  explicit Flatten(int64_t start_dim = 1, int64_t end_dim = -1) : start_dim(start_dim), end_dim(end_dim) {}
  using Module::forward;
  Tensor forward(const Tensor& x) override { return x.flatten(start_dim, end_dim); }
  std::string type_name() const override { return "Flatten"; }
  std::string extra_repr() const override;

  int64_t start_dim, end_dim;
};

// Reshapes each sample to `shape` (one entry may be -1, inferred), keeping the batch dim:
// x.reshape([N] + shape), a view when x's strides allow (torch.Tensor.view of the sample).
class Reshape : public Module {
 public:
  explicit Reshape(std::vector<int64_t> shape) : shape(std::move(shape)) {}
  using Module::forward;
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "Reshape"; }
  std::string extra_repr() const override { return "shape=" + shape_str(shape); }

  std::vector<int64_t> shape;
};

// torch.Tensor.permute: reorders the dims of x (batch dim included, so dims[0] is 0); a view.
class Permute : public Module {
 public:
  explicit Permute(std::vector<int64_t> dims) : dims(std::move(dims)) {}
  using Module::forward;
  Tensor forward(const Tensor& x) override { return x.permute(dims); }
  std::string type_name() const override { return "Permute"; }
  std::string extra_repr() const override { return "dims=" + shape_str(dims); }

  std::vector<int64_t> dims;
};

}  // namespace dl::nn
