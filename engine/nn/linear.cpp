#include "engine/nn/linear.h"

#include <cmath>
#include <stdexcept>

#include "engine/nn/init.h"
#include "engine/ops/linalg.h"

namespace dl::nn {

Linear::Linear(int64_t in, int64_t out, bool has_bias, Generator& gen)
    : in_features(in), out_features(out) {
  if (in < 0 || out < 0)
    throw std::invalid_argument("Linear: negative size (in_features=" + std::to_string(in) +
                                ", out_features=" + std::to_string(out) + ")");
  weight = register_parameter("weight", empty({out, in}));
  if (has_bias) bias = register_parameter("bias", empty({out}));
  reset_parameters(gen);
}

void Linear::reset_parameters(Generator& gen) {
  init::kaiming_uniform_(weight, gen, std::sqrt(5.0));
  if (bias.defined()) {
    int64_t fan_in = init::calculate_fan_in_and_fan_out(weight).first;
    double bound = fan_in > 0 ? 1.0 / std::sqrt(static_cast<double>(fan_in)) : 0.0;
    init::uniform_(bias, gen, -bound, bound);
  }
}

Tensor Linear::forward(const Tensor& x) { return linear(x, weight, bias); }

std::string Linear::extra_repr() const {
  return "in_features=" + std::to_string(in_features) + ", out_features=" +
         std::to_string(out_features) + ", bias=" + py_bool(bias.defined());
}

std::string Flatten::extra_repr() const {
  return "start_dim=" + std::to_string(start_dim) + ", end_dim=" + std::to_string(end_dim);
}

Tensor Reshape::forward(const Tensor& x) {
  Shape s{x.dim() > 0 ? x.size(0) : 1};
  s.insert(s.end(), shape.begin(), shape.end());
  return x.reshape(s);
}

}  // namespace dl::nn
