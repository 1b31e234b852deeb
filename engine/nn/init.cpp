#include "engine/nn/init.h"

#include <cmath>
#include <stdexcept>

#include "engine/autograd/autograd.h"
#include "engine/ops/elementwise.h"

namespace dl::nn::init {
namespace {

int64_t fan(const Tensor& t, const std::string& mode) {
  auto [fan_in, fan_out] = calculate_fan_in_and_fan_out(t);
  if (mode == "fan_in") return fan_in;
  if (mode == "fan_out") return fan_out;
  throw std::invalid_argument("Mode " + mode + " not supported, please use one of fan_in, fan_out");
}

}  // namespace

std::pair<int64_t, int64_t> calculate_fan_in_and_fan_out(const Tensor& t) {
  if (t.dim() < 2)
    throw std::invalid_argument(
        "Fan in and fan out can not be computed for tensor with fewer than 2 dimensions");
  int64_t receptive = 1;
  for (int64_t d = 2; d < t.dim(); ++d) receptive *= t.size(d);
  return {t.size(1) * receptive, t.size(0) * receptive};
}

double calculate_gain(const std::string& nl, std::optional<double> param) {
  if (nl == "linear" || nl == "conv1d" || nl == "conv2d" || nl == "conv3d" ||
      nl == "conv_transpose1d" || nl == "conv_transpose2d" || nl == "conv_transpose3d" ||
      nl == "sigmoid")
    return 1.0;
  if (nl == "tanh") return 5.0 / 3.0;
  if (nl == "relu") return std::sqrt(2.0);
  if (nl == "leaky_relu") {
    double slope = param.value_or(0.01);
    return std::sqrt(2.0 / (1.0 + slope * slope));
  }
  if (nl == "selu") return 3.0 / 4.0;
  throw std::invalid_argument("Unsupported nonlinearity " + nl);
}

void uniform_(Tensor& t, Generator& gen, double a, double b) {
  NoGradGuard ng;
  dl::uniform_(t, a, b, gen);
}

void normal_(Tensor& t, Generator& gen, double mean, double std) {
  NoGradGuard ng;
  dl::normal_(t, mean, std, gen);
}

void constant_(Tensor& t, double value) {
  NoGradGuard ng;
  fill_(t, value);
}
void zeros_(Tensor& t) { constant_(t, 0.0); }
void ones_(Tensor& t) { constant_(t, 1.0); }

void xavier_uniform_(Tensor& t, Generator& gen, double gain) {
  auto [fi, fo] = calculate_fan_in_and_fan_out(t);
  double std = gain * std::sqrt(2.0 / static_cast<double>(fi + fo));
  double a = std::sqrt(3.0) * std;
  uniform_(t, gen, -a, a);
}

void xavier_normal_(Tensor& t, Generator& gen, double gain) {
  auto [fi, fo] = calculate_fan_in_and_fan_out(t);
  normal_(t, gen, 0.0, gain * std::sqrt(2.0 / static_cast<double>(fi + fo)));
}

void kaiming_uniform_(Tensor& t, Generator& gen, double a, const std::string& mode,
                      const std::string& nonlinearity) {
  if (t.numel() == 0) return;  // PyTorch warns and does nothing
  double gain = calculate_gain(nonlinearity, a);
  double std = gain / std::sqrt(static_cast<double>(fan(t, mode)));
  double bound = std::sqrt(3.0) * std;
  uniform_(t, gen, -bound, bound);
}

void kaiming_normal_(Tensor& t, Generator& gen, double a, const std::string& mode,
                     const std::string& nonlinearity) {
  if (t.numel() == 0) return;
  double gain = calculate_gain(nonlinearity, a);
  normal_(t, gen, 0.0, gain / std::sqrt(static_cast<double>(fan(t, mode))));
}

}  // namespace dl::nn::init
