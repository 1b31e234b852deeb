// ConvTranspose2d.
#pragma once
#include "engine/nn/module.h"

namespace dl::nn {

// Transposed 2-d convolution over NCHW input (engine/ops/conv_transpose.h).
// weight [in, out/groups, kh, kw], bias [out]. Init (PyTorch's _ConvNd.reset_parameters):
// weight kaiming_uniform_(a = sqrt(5)), bias U(-1/sqrt(fan_in), 1/sqrt(fan_in)), where fan_in is
// computed from the weight as for any conv, from dim 1: out/groups * kh * kw.
class ConvTranspose2d : public Module {
 public:
  ConvTranspose2d(int64_t in_channels, int64_t out_channels, Size2 kernel_size, Size2 stride = 1,
                  Size2 padding = 0, Size2 output_padding = 0, int64_t groups = 1, bool bias = true,
                  Size2 dilation = 1, Generator& gen = default_generator());
  using Module::forward;
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "ConvTranspose2d"; }
  std::string extra_repr() const override;
  void reset_parameters(Generator& gen);

  int64_t in_channels, out_channels;
  Size2 kernel_size, stride, padding, output_padding;
  int64_t groups;
  Size2 dilation;
  Tensor weight;  // [in, out/groups, kh, kw]
  Tensor bias;    // [out] or undefined
};

}  // namespace dl::nn
