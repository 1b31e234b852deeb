// LayerNorm (torch.nn.LayerNorm): normalises over the trailing dims `normalized_shape`.
#pragma once
#include "engine/nn/module.h"

namespace dl::nn {

// Input [*, normalized_shape], output the same shape (engine/ops/layer_norm.h). State when
// elementwise_affine: weight (= 1) and bias (= 0), both of shape normalized_shape.
class LayerNorm : public Module {
 public:
  explicit LayerNorm(Shape normalized_shape, double eps = 1e-5, bool elementwise_affine = true);
  using Module::forward;
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "LayerNorm"; }
  std::string extra_repr() const override;  // "(10,), eps=1e-05, elementwise_affine=True"
  void reset_parameters();

  Shape normalized_shape;
  double eps;
  bool elementwise_affine;
  Tensor weight, bias;  // normalized_shape, or undefined
};

}  // namespace dl::nn
