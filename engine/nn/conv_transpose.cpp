#include "engine/nn/conv_transpose.h"

#include <cmath>
#include <stdexcept>

#include "engine/nn/init.h"
#include "engine/ops/conv_transpose.h"

namespace dl::nn {

ConvTranspose2d::ConvTranspose2d(int64_t in, int64_t out, Size2 k, Size2 s, Size2 p, Size2 op, int64_t g,
                                 bool has_bias, Size2 d, Generator& gen)
    : in_channels(in), out_channels(out), kernel_size(k), stride(s), padding(p), output_padding(op),
      groups(g), dilation(d) {
  if (g <= 0) throw std::invalid_argument("ConvTranspose2d: groups must be a positive integer");
  if (in % g != 0) throw std::invalid_argument("ConvTranspose2d: in_channels must be divisible by groups");
  if (out % g != 0) throw std::invalid_argument("ConvTranspose2d: out_channels must be divisible by groups");
  if (k.h <= 0 || k.w <= 0 || s.h <= 0 || s.w <= 0 || d.h <= 0 || d.w <= 0 || p.h < 0 || p.w < 0 || op.h < 0 ||
      op.w < 0)
    throw std::invalid_argument("ConvTranspose2d: kernel_size, stride and dilation must be positive, padding and "
                                "output_padding non-negative (got kernel_size=" + k.tuple_str() +
                                ", stride=" + s.tuple_str() + ", padding=" + p.tuple_str() +
                                ", output_padding=" + op.tuple_str() + ", dilation=" + d.tuple_str() + ")");
  if ((op.h >= s.h && op.h >= d.h) || (op.w >= s.w && op.w >= d.w))
    throw std::invalid_argument("ConvTranspose2d: output padding must be smaller than either stride or dilation, "
                                "got output_padding=" + op.tuple_str() + ", stride=" + s.tuple_str() +
                                ", dilation=" + d.tuple_str());
  weight = register_parameter("weight", empty({in, out / g, k.h, k.w}));
  if (has_bias) bias = register_parameter("bias", empty({out}));
  reset_parameters(gen);
}

void ConvTranspose2d::reset_parameters(Generator& gen) {
  init::kaiming_uniform_(weight, gen, std::sqrt(5.0));  // fan_in from dim 1, like torch
  if (bias.defined()) {
    int64_t fan_in = init::calculate_fan_in_and_fan_out(weight).first;
    double bound = fan_in > 0 ? 1.0 / std::sqrt(static_cast<double>(fan_in)) : 0.0;
    init::uniform_(bias, gen, -bound, bound);
  }
}

Tensor ConvTranspose2d::forward(const Tensor& x) {
  return conv_transpose2d(x, weight, bias, stride.pair(), padding.pair(), output_padding.pair(), groups,
                          dilation.pair());
}

std::string ConvTranspose2d::extra_repr() const {
  std::string s = std::to_string(in_channels) + ", " + std::to_string(out_channels) +
                  ", kernel_size=" + kernel_size.tuple_str() + ", stride=" + stride.tuple_str();
  if (!(padding == Size2(0))) s += ", padding=" + padding.tuple_str();
  if (!(dilation == Size2(1))) s += ", dilation=" + dilation.tuple_str();
  if (!(output_padding == Size2(0))) s += ", output_padding=" + output_padding.tuple_str();
  if (groups != 1) s += ", groups=" + std::to_string(groups);
  if (!bias.defined()) s += ", bias=False";
  return s;
}

}  // namespace dl::nn
