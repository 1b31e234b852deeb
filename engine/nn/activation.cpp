#include "engine/nn/activation.h"

#include <cmath>
#include <stdexcept>

#include "engine/ops/elementwise.h"
#include "engine/ops/nn.h"
#include "engine/ops/random.h"
#include "engine/ops/reduce.h"

namespace dl::nn {

Tensor ReLU::forward(const Tensor& x) { return relu(x); }
Tensor Sigmoid::forward(const Tensor& x) { return sigmoid(x); }
Tensor Tanh::forward(const Tensor& x) { return tanh(x); }
Tensor LeakyReLU::forward(const Tensor& x) { return leaky_relu(x, negative_slope); }
Tensor ELU::forward(const Tensor& x) { return elu(x, alpha); }

GELU::GELU(std::string approx) : approximate(std::move(approx)) {
  if (approximate != "none" && approximate != "tanh")
    throw std::invalid_argument("GELU: approximate must be 'none' or 'tanh', got '" + approximate + "'");
}
Tensor GELU::forward(const Tensor& x) { return gelu(x, approximate); }

Tensor Softplus::forward(const Tensor& x) { return softplus(x, beta, threshold); }
std::string Softplus::extra_repr() const {
  // PyTorch's defaults are the ints 1 and 20 and print without ".0".
  auto num = [](double v) {
    return v == std::floor(v) && std::abs(v) < 1e15 ? std::to_string(static_cast<int64_t>(v)) : py_float(v);
  };
  return "beta=" + num(beta) + ", threshold=" + num(threshold);
}

Tensor Softmax::forward(const Tensor& x) { return softmax(x, dim); }
Tensor LogSoftmax::forward(const Tensor& x) { return log_softmax(x, dim); }

Dropout::Dropout(double p_) : p(p_) {
  if (!(p >= 0.0 && p <= 1.0))
    throw std::invalid_argument("dropout probability has to be between 0 and 1, but got " + py_float(p));
}

Tensor Dropout::forward(const Tensor& x) {
  if (!training_ || p == 0.0) return x;
  return dropout(x, p, training_, default_generator(x.device()));
}

Tensor Dropout2d::forward(const Tensor& x) { return dropout2d(x, p, training_, default_generator(x.device())); }

}  // namespace dl::nn
