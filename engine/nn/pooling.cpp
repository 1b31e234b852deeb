#include "engine/nn/pooling.h"

#include <stdexcept>

#include "engine/ops/nn.h"

namespace dl::nn {
namespace {

void check_pool(const char* what, const Size2& k, const Size2& s, const Size2& p) {
  if (k.h <= 0 || k.w <= 0 || s.h <= 0 || s.w <= 0 || p.h < 0 || p.w < 0)
    throw std::invalid_argument(std::string(what) + ": kernel_size and stride must be positive, "
                                "padding non-negative (got kernel_size=" + k.tuple_str() +
                                ", stride=" + s.tuple_str() + ", padding=" + p.tuple_str() + ")");
  if (2 * p.h > k.h || 2 * p.w > k.w)
    throw std::invalid_argument(std::string(what) +
                                ": pad should be at most half of kernel size, but got pad=" +
                                p.str() + " and kernel_size=" + k.str());
}

}  // namespace

MaxPool2d::MaxPool2d(Size2 k, std::optional<Size2> s, Size2 p, bool ceil)
    : kernel_size(k), stride(s.value_or(k)), padding(p), ceil_mode(ceil) {
  check_pool("MaxPool2d", kernel_size, stride, padding);
}

Tensor MaxPool2d::forward(const Tensor& x) {
  return max_pool2d(x, kernel_size.pair(), stride.pair(), padding.pair(), ceil_mode);
}

std::string MaxPool2d::extra_repr() const {
  return "kernel_size=" + kernel_size.str() + ", stride=" + stride.str() + ", padding=" +
         padding.str() + ", dilation=1, ceil_mode=" + py_bool(ceil_mode);
}

AvgPool2d::AvgPool2d(Size2 k, std::optional<Size2> s, Size2 p, bool ceil, bool include_pad)
    : kernel_size(k), stride(s.value_or(k)), padding(p), ceil_mode(ceil),
      count_include_pad(include_pad) {
  check_pool("AvgPool2d", kernel_size, stride, padding);
}

Tensor AvgPool2d::forward(const Tensor& x) {
  return avg_pool2d(x, kernel_size.pair(), stride.pair(), padding.pair(), ceil_mode, count_include_pad);
}

std::string AvgPool2d::extra_repr() const {
  return "kernel_size=" + kernel_size.str() + ", stride=" + stride.str() + ", padding=" + padding.str();
}

Tensor AdaptiveAvgPool2d::forward(const Tensor& x) { return adaptive_avg_pool2d(x, output_size.pair()); }

}  // namespace dl::nn
