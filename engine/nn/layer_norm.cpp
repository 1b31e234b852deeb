#include "engine/nn/layer_norm.h"

#include <stdexcept>

#include "engine/nn/init.h"
#include "engine/ops/layer_norm.h"

namespace dl::nn {

LayerNorm::LayerNorm(Shape shape, double eps_, bool affine)
    : normalized_shape(std::move(shape)), eps(eps_), elementwise_affine(affine) {
  for (int64_t d : normalized_shape)
    if (d < 0) throw std::invalid_argument("LayerNorm: negative size in normalized_shape " + shape_str(normalized_shape));
  if (affine) {
    weight = register_parameter("weight", empty(normalized_shape));
    bias = register_parameter("bias", empty(normalized_shape));
  }
  reset_parameters();
}

void LayerNorm::reset_parameters() {
  if (!elementwise_affine) return;
  init::ones_(weight);
  init::zeros_(bias);
}

Tensor LayerNorm::forward(const Tensor& x) { return layer_norm(x, normalized_shape, weight, bias, eps); }

std::string LayerNorm::extra_repr() const {
  std::string t = "(";  // Python's tuple repr: "(10,)", "(4, 5)"
  for (size_t i = 0; i < normalized_shape.size(); ++i) t += (i ? ", " : "") + std::to_string(normalized_shape[i]);
  t += normalized_shape.size() == 1 ? ",)" : ")";
  return t + ", eps=" + py_float(eps) + ", elementwise_affine=" + py_bool(elementwise_affine);
}

}  // namespace dl::nn
