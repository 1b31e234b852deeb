// to_float and normalize: the pixel maps every image recipe ends with (torchvision ToTensor's
// scaling and Normalize). On u8 input they fold into a lookup table (transforms.h).
#include <cmath>

#include "datasets/transforms.h"

namespace dl::data {
namespace {

using A = AttrSchema;

class ToFloat final : public PixelMap {
 public:
  explicit ToFloat(double scale) : scale_(scale), divisor_(integer_divisor(scale)) {}
  // torchvision divides by 255; dividing matches it bit for bit where multiplying by (1/255)
  // would not, so an integer 1/scale divides.
  float map(int64_t, float v) const override {
    return divisor_ > 0 ? v / static_cast<float>(divisor_) : v * static_cast<float>(scale_);
  }

 private:
  // 1/scale when it is (to double precision) a positive integer, else 0.
  static double integer_divisor(double scale) {
    double inv = 1.0 / scale;
    double r = std::round(inv);
    return (r >= 1.0 && std::fabs(inv - r) <= 1e-9 * r) ? r : 0.0;
  }
  double scale_, divisor_;
};

class Normalize final : public PixelMap {
 public:
  Normalize(std::vector<double> mean, std::vector<double> std) : mean_(std::move(mean)), std_(std::move(std)) {}
  float map(int64_t c, float v) const override { return (v - value(mean_, c)) / value(std_, c); }  // f32, as torch
  void check_channels(int64_t channels) const override {
    for (const auto* v : {&mean_, &std_})
      if (v->size() != 1 && static_cast<int64_t>(v->size()) != channels)
        throw std::invalid_argument(std::string("normalize ") + (v == &mean_ ? "mean" : "std") + " has " +
                                    std::to_string(v->size()) + " values for " + std::to_string(channels) +
                                    " channel(s) (give 1 or " + std::to_string(channels) + ")");
  }

 private:
  // A single value applies to every channel.
  static float value(const std::vector<double>& v, int64_t c) {
    return static_cast<float>(v.size() == 1 ? v[0] : v[static_cast<size_t>(c)]);
  }
  std::vector<double> mean_, std_;
};

std::string same_length(const AttrMap& a) {
  const size_t m = attr_floats(a, "mean").size(), s = attr_floats(a, "std").size();
  return m == s ? "" : "mean has " + std::to_string(m) + " values but std has " + std::to_string(s);
}

const RegisterTransform to_float_reg({
    "to_float", "torchvision.transforms.ToTensor",
    "pixels to float32 times scale (ToTensor: 1/255)",
    {A::floating("scale", 1.0 / 255).above(0).describe("multiplier")},
    nullptr, false,
    [](const AttrMap& a) -> TransformPtr { return std::make_shared<ToFloat>(attr_float(a, "scale")); },
    "{type: to_float}",
});

const RegisterTransform normalize_reg({
    "normalize", "torchvision.transforms.Normalize",
    "(x - mean[c]) / std[c] per channel",
    {A::float_list("mean").length(1, 4096).describe("per-channel mean (one value: every channel)"),
     A::float_list("std").length(1, 4096).above(0).describe("per-channel std, each > 0")},
    same_length, false,
    [](const AttrMap& a) -> TransformPtr {
      return std::make_shared<Normalize>(attr_floats(a, "mean"), attr_floats(a, "std"));
    },
    "{type: normalize, mean: [0.286], std: [0.353]}",
});

}  // namespace
}  // namespace dl::data
