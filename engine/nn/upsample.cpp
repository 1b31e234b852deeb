#include "engine/nn/upsample.h"

#include <stdexcept>

#include "engine/ops/interpolate.h"

namespace dl::nn {

Upsample::Upsample(std::optional<Size2> size_, std::optional<std::array<double, 2>> scale_factor_, std::string mode_,
                   std::optional<bool> align_corners_)
    : size(size_), scale_factor(scale_factor_), mode(std::move(mode_)), align_corners(align_corners_) {
  if (size.has_value() == scale_factor.has_value())
    throw std::invalid_argument("Upsample: give exactly one of size and scale_factor");
  if (mode != "nearest" && mode != "bilinear" && mode != "bicubic")
    throw std::invalid_argument("Upsample: mode must be 'nearest', 'bilinear' or 'bicubic', got '" + mode + "'");
  if (align_corners.has_value() && mode == "nearest")
    throw std::invalid_argument("Upsample: align_corners option can only be set with the interpolating modes: "
                                "bilinear | bicubic");
}

Tensor Upsample::forward(const Tensor& x) {
  std::optional<Pair> out;
  if (size) out = size->pair();
  return interpolate(x, out, scale_factor, mode, align_corners);
}

// As torch prints it: "scale_factor=(2.0, 1.5), mode='bilinear'" or "size=(8, 8), mode='nearest'".
std::string Upsample::extra_repr() const {
  auto num = [](double v) {
    std::string s = std::to_string(v);
    s.erase(s.find_last_not_of('0') + 1);
    if (s.back() == '.') s += '0';
    return s;
  };
  std::string s;
  if (scale_factor) {
    const auto& f = *scale_factor;
    s = "scale_factor=" + (f[0] == f[1] ? num(f[0]) : "(" + num(f[0]) + ", " + num(f[1]) + ")");
  } else {
    s = "size=" + size->str();
  }
  return s + ", mode='" + mode + "'";
}

}  // namespace dl::nn
