// Conv2d.
#pragma once
#include "engine/nn/module.h"

namespace dl::nn {

// 2-d convolution over NCHW input. weight [out, in/groups, kh, kw], bias [out].
// Init (PyTorch): weight kaiming_uniform_(a = sqrt(5)) = U(-1/sqrt(fan_in), 1/sqrt(fan_in)),
// bias U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = in/groups * kh * kw. Zero padding only.
class Conv2d : public Module {
 public:
  Conv2d(int64_t in_channels, int64_t out_channels, Size2 kernel_size, Size2 stride = 1,
         Size2 padding = 0, Size2 dilation = 1, int64_t groups = 1, bool bias = true,
         Generator& gen = default_generator());
  using Module::forward;
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "Conv2d"; }
  std::string extra_repr() const override;
  void reset_parameters(Generator& gen);

  int64_t in_channels, out_channels;
  Size2 kernel_size, stride, padding, dilation;
  int64_t groups;
  Tensor weight;  // [out, in/groups, kh, kw]
  Tensor bias;    // [out] or undefined
};

}  // namespace dl::nn
