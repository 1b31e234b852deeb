// Sequential, and the multi-input graph nodes Add and Concat.
#pragma once
#include <initializer_list>

#include "engine/nn/module.h"

namespace dl::nn {

// Runs its children in order. Children are named "0", "1", ... unless given names.
class Sequential : public Module {
 public:
  Sequential() = default;
  Sequential(std::initializer_list<ModulePtr> modules);
  // Appends under the name "<size()>".
  void push_back(ModulePtr m);
  void push_back(const std::string& name, ModulePtr m);
  size_t size() const { return own_children().size(); }
  bool empty() const { return own_children().empty(); }
  const ModulePtr& operator[](size_t i) const;
  using Module::forward;
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "Sequential"; }
};

// std::make_shared<Sequential> of a list: nn::sequential({conv, relu, ...}).
std::shared_ptr<Sequential> sequential(std::initializer_list<ModulePtr> modules);

// Sums its inputs (residual connections); broadcasting like dl::add.
class Add : public Module {
 public:
  Tensor forward(const Tensor& x) override { return x; }
  Tensor forward(const TensorList& xs) override;
  std::string type_name() const override { return "Add"; }
};

// Concatenates its inputs along `dim` (dim 1 = channels for NCHW).
class Concat : public Module {
 public:
  explicit Concat(int64_t dim = 1) : dim(dim) {}
  Tensor forward(const Tensor& x) override { return x; }
  Tensor forward(const TensorList& xs) override;
  std::string type_name() const override { return "Concat"; }
  std::string extra_repr() const override { return "dim=" + std::to_string(dim); }
  int64_t dim;
};

}  // namespace dl::nn
