// Colour transforms (torchvision names, arguments and defaults): color_jitter, grayscale,
// random_grayscale, and their functional forms (kernels.h) with torchvision's float32 steps:
// a u8 image is computed in float32 and truncated back (Tensor.to(torch.uint8)), a float image
// is clamped to [0, 1] by every blend.
#include <algorithm>
#include <array>
#include <cmath>
#include <stdexcept>
#include <string>

#include "datasets/transforms.h"
#include "datasets/transforms/kernels.h"

namespace dl::data::fn {
namespace {

void check_colour(const Tensor& x, const char* what) {
  check_image(x, what);
  if (x.size(0) != 1 && x.size(0) != 3)
    throw std::invalid_argument(std::string(what) + ": expected 1 or 3 channels, got " + std::to_string(x.size(0)) +
                                " (shape " + shape_str(x.shape()) + ")");
}

void check_factor(double factor, const char* what) {
  if (!(factor >= 0) || !std::isfinite(factor))
    throw std::invalid_argument(std::string(what) + ": the factor must be a finite number >= 0, got " +
                                std::to_string(factor));
}

inline float load(uint8_t v) { return static_cast<float>(v); }
inline float load(float v) { return v; }

// rgb_to_grayscale's weights, each product and sum rounded to float32 as torch's tensor ops do.
inline float grey(float r, float g, float b) { return (0.2989f * r + 0.587f * g) + 0.114f * b; }

// The grey plane of a 3-channel image in the image's dtype (u8: truncated).
template <class T>
void grey_plane(const T* in, int64_t n, T* out) {
  for (int64_t i = 0; i < n; ++i) out[i] = static_cast<T>(grey(load(in[i]), load(in[n + i]), load(in[2 * n + i])));
}

// _blend: ratio * img + (1 - ratio) * other, clamped to [0, 1] (float) or [0, 255] (u8,
// then truncated). other(c, i) gives the second image's value as float.
template <class T, class Other>
void blend(const T* in, int64_t channels, int64_t n, double ratio, Other other, T* out) {
  const auto r = static_cast<float>(ratio), s = static_cast<float>(1.0 - ratio);
  const float bound = std::is_same_v<T, uint8_t> ? 255.0f : 1.0f;
  for (int64_t c = 0; c < channels; ++c)
    for (int64_t i = 0; i < n; ++i) {
      float v = r * load(in[c * n + i]) + s * other(c, i);
      out[c * n + i] = static_cast<T>(std::clamp(v, 0.0f, bound));
    }
}

// Runs `f(in, out)` with typed pointers for a new tensor shaped like x.
template <class F>
Tensor with_typed(const Tensor& x, F f) {
  Tensor out = empty(x.shape(), x.dtype());
  if (x.dtype() == DType::U8)
    f(x.data<uint8_t>(), out.data<uint8_t>());
  else
    f(x.data<float>(), out.data<float>());
  return out;
}

}  // namespace

Tensor rgb_to_grayscale(const Tensor& x, int64_t num_output_channels) {
  check_colour(x, "rgb_to_grayscale");
  if (num_output_channels != 1 && num_output_channels != 3)
    throw std::invalid_argument("rgb_to_grayscale: num_output_channels must be 1 or 3, got " +
                                std::to_string(num_output_channels));
  const int64_t h = x.size(1), w = x.size(2), n = h * w;
  Tensor out = empty({num_output_channels, h, w}, x.dtype());
  auto run = [&](auto* in, auto* o) {
    if (x.size(0) == 3)
      grey_plane(in, n, o);
    else
      std::copy(in, in + n, o);
    for (int64_t c = 1; c < num_output_channels; ++c) std::copy(o, o + n, o + c * n);
  };
  if (x.dtype() == DType::U8)
    run(x.data<uint8_t>(), out.data<uint8_t>());
  else
    run(x.data<float>(), out.data<float>());
  return out;
}

Tensor adjust_brightness(const Tensor& x, double factor) {
  check_colour(x, "adjust_brightness");
  check_factor(factor, "adjust_brightness");
  const int64_t n = x.size(1) * x.size(2);
  return with_typed(x, [&](auto* in, auto* out) {
    blend(
        in, x.size(0), n, factor, [](int64_t, int64_t) { return 0.0f; }, out);
  });
}

Tensor adjust_contrast(const Tensor& x, double factor) {
  check_colour(x, "adjust_contrast");
  check_factor(factor, "adjust_contrast");
  const int64_t n = x.size(1) * x.size(2);
  // The mean of the grey image (u8: of the truncated grey values), as float32: sum / count.
  Tensor g = x.size(0) == 3 ? rgb_to_grayscale(x, 1) : x;
  double sum = 0;
  if (g.dtype() == DType::U8)
    for (int64_t i = 0; i < n; ++i) sum += g.data<uint8_t>()[i];
  else
    for (int64_t i = 0; i < n; ++i) sum += g.data<float>()[i];
  const float mean = n > 0 ? static_cast<float>(sum) / static_cast<float>(n) : 0.0f;
  return with_typed(x, [&](auto* in, auto* out) {
    blend(
        in, x.size(0), n, factor, [mean](int64_t, int64_t) { return mean; }, out);
  });
}

Tensor adjust_saturation(const Tensor& x, double factor) {
  check_colour(x, "adjust_saturation");
  check_factor(factor, "adjust_saturation");
  if (x.size(0) == 1) return x;  // torchvision (as PIL) leaves a 1-channel image
  const int64_t n = x.size(1) * x.size(2);
  Tensor g = rgb_to_grayscale(x, 1);
  return with_typed(x, [&](auto* in, auto* out) {
    const auto* gp = g.data<std::remove_const_t<std::remove_pointer_t<decltype(in)>>>();
    blend(
        in, 3, n, factor, [gp](int64_t, int64_t i) { return load(gp[i]); }, out);
  });
}

namespace {

// _rgb2hsv, one pixel, float32 step by step.
std::array<float, 3> rgb_to_hsv(float r, float g, float b) {
  const float maxc = std::max({r, g, b}), minc = std::min({r, g, b});
  const bool eqc = maxc == minc;
  const float cr = maxc - minc;
  const float s = cr / (eqc ? 1.0f : maxc);
  const float div = eqc ? 1.0f : cr;
  const float rc = (maxc - r) / div, gc = (maxc - g) / div, bc = (maxc - b) / div;
  const float hr = (maxc == r) ? (bc - gc) : 0.0f;
  const float hg = (maxc == g && maxc != r) ? (2.0f + rc) - bc : 0.0f;
  const float hb = (maxc != g && maxc != r) ? (4.0f + gc) - rc : 0.0f;
  float h = (hr + hg) + hb;
  h = std::fmod(h / 6.0f + 1.0f, 1.0f);
  return {h, s, maxc};
}

// _hsv2rgb, one pixel.
std::array<float, 3> hsv_to_rgb(float h, float s, float v) {
  const float i_f = std::floor(h * 6.0f);
  const float f = h * 6.0f - i_f;
  const int i = static_cast<int>(i_f) % 6;
  const float p = std::clamp(v * (1.0f - s), 0.0f, 1.0f);
  const float q = std::clamp(v * (1.0f - s * f), 0.0f, 1.0f);
  const float t = std::clamp(v * (1.0f - s * (1.0f - f)), 0.0f, 1.0f);
  switch (i) {
    case 0: return {v, t, p};
    case 1: return {q, v, p};
    case 2: return {p, v, t};
    case 3: return {p, q, v};
    case 4: return {t, p, v};
    default: return {v, p, q};
  }
}

// torch.remainder(a, 1.0) for float: the sign of the divisor.
inline float remainder1(float a) {
  float m = std::fmod(a, 1.0f);
  return (m != 0 && m < 0) ? m + 1.0f : m;
}

}  // namespace

Tensor adjust_hue(const Tensor& x, double factor) {
  check_colour(x, "adjust_hue");
  if (!(factor >= -0.5 && factor <= 0.5))
    throw std::invalid_argument("adjust_hue: the factor must be in [-0.5, 0.5], got " + std::to_string(factor));
  if (x.size(0) == 1) return x;  // as PIL
  const int64_t n = x.size(1) * x.size(2);
  const auto hue = static_cast<float>(factor);
  const bool u8 = x.dtype() == DType::U8;
  return with_typed(x, [&](auto* in, auto* out) {
    using T = std::remove_pointer_t<decltype(out)>;
    for (int64_t i = 0; i < n; ++i) {
      float rgb[3];
      for (int c = 0; c < 3; ++c) rgb[c] = u8 ? load(in[c * n + i]) / 255.0f : load(in[c * n + i]);
      auto hsv = rgb_to_hsv(rgb[0], rgb[1], rgb[2]);
      auto res = hsv_to_rgb(remainder1(hsv[0] + hue), hsv[1], hsv[2]);
      for (int c = 0; c < 3; ++c)
        out[c * n + i] = static_cast<T>(u8 ? res[static_cast<size_t>(c)] * 255.0f : res[static_cast<size_t>(c)]);
    }
  });
}

}  // namespace dl::data::fn

// ---- the registered transforms --------------------------------------------------------------
namespace dl::data {
namespace {

using A = AttrSchema;

void check_colour_shape(const Shape& in, const char* what) {
  if (in.size() != 3 || (in[0] != 1 && in[0] != 3))
    throw std::invalid_argument(std::string(what) + ": expected an image with 1 or 3 channels, got shape " +
                                shape_str(in));
}

// ColorJitter._check_input: a single value v gives [max(center - v, 0), center + v] (hue:
// [-v, v]), a pair is [min, max] within the bound; nullopt when it is the identity.
struct Range {
  double lo = 0, hi = 0;
  bool on = false;
};
Range jitter_range(const std::vector<double>& v, double center, bool clip_at_zero) {
  Range r;
  if (v.size() == 1) {
    r.lo = center - v[0];
    r.hi = center + v[0];
    if (clip_at_zero) r.lo = std::max(r.lo, 0.0);
  } else {
    r.lo = v[0];
    r.hi = v[1];
  }
  r.on = !(r.lo == center && r.hi == center);
  return r;
}

A jitter_attr(const char* name, double lo_bound, double hi_bound, const char* doc) {
  return A::float_list(name)
      .def(std::vector<double>{0.0})
      .length(1, 2)
      .check(
          [lo_bound, hi_bound](const AttrValue& value) {
            const auto& v = std::get<std::vector<double>>(value);
            bool ok = v.size() == 1 ? v[0] >= 0 && (hi_bound > 1 || v[0] <= hi_bound)
                                    : lo_bound <= v[0] && v[0] <= v[1] && v[1] <= hi_bound;
            return ok ? std::string() : std::string("bad");
          },
          hi_bound > 1 ? "a number >= 0, or [min, max] with 0 <= min <= max"
                       : "a number in [0, 0.5], or [min, max] with -0.5 <= min <= max <= 0.5")
      .describe(doc);
}

class ColorJitter final : public Transform {
 public:
  ColorJitter(Range b, Range c, Range s, Range h) : ranges_{b, c, s, h} {}
  // ColorJitter.forward: a random order of the four (torch.randperm(4)), then each factor
  // drawn in the order brightness, contrast, saturation, hue (only for those switched on).
  Tensor apply(const Tensor& x, Generator& rng) const override {
    std::array<int, 4> order{0, 1, 2, 3};
    for (int i = 3; i > 0; --i)
      std::swap(order[static_cast<size_t>(i)], order[static_cast<size_t>(fn::randint(rng, i + 1))]);
    std::array<double, 4> factor{};
    for (size_t k = 0; k < 4; ++k)
      if (ranges_[k].on) factor[k] = fn::uniform(rng, ranges_[k].lo, ranges_[k].hi);
    Tensor y = x;
    for (int k : order) {
      if (!ranges_[static_cast<size_t>(k)].on) continue;
      const double f = factor[static_cast<size_t>(k)];
      switch (k) {
        case 0: y = fn::adjust_brightness(y, f); break;
        case 1: y = fn::adjust_contrast(y, f); break;
        case 2: y = fn::adjust_saturation(y, f); break;
        default: y = fn::adjust_hue(y, f); break;
      }
    }
    return y;
  }
  Shape out_shape(const Shape& in) const override {
    check_colour_shape(in, "color_jitter");
    return in;
  }

 private:
  std::array<Range, 4> ranges_;  // brightness, contrast, saturation, hue
};

class Grayscale final : public Transform {
 public:
  Grayscale(int64_t channels, double p) : channels_(channels), p_(p) {}
  // p < 0: always (grayscale); else random_grayscale, keeping the channel count.
  Tensor apply(const Tensor& x, Generator& rng) const override {
    if (p_ < 0) return fn::rgb_to_grayscale(x, channels_);
    fn::check_image(x, "random_grayscale");
    if (rng.next_double() >= p_ || x.size(0) == 1) return x;
    return fn::rgb_to_grayscale(x, x.size(0));
  }
  Shape out_shape(const Shape& in) const override {
    check_colour_shape(in, p_ < 0 ? "grayscale" : "random_grayscale");
    return {p_ < 0 ? channels_ : in[0], in[1], in[2]};
  }

 private:
  int64_t channels_;
  double p_;
};

const RegisterTransform color_jitter_reg({
    "color_jitter",
    "torchvision.transforms.ColorJitter",
    "random brightness, contrast, saturation and hue, applied in a random order",
    {jitter_attr("brightness", 0, INFINITY, "v: a factor in [max(0, 1 - v), 1 + v]; or [min, max]"),
     jitter_attr("contrast", 0, INFINITY, "v: a factor in [max(0, 1 - v), 1 + v]; or [min, max]"),
     jitter_attr("saturation", 0, INFINITY, "v: a factor in [max(0, 1 - v), 1 + v]; or [min, max]"),
     jitter_attr("hue", -0.5, 0.5, "v: a hue shift in [-v, v] (v <= 0.5); or [min, max] within [-0.5, 0.5]")},
    nullptr,
    true,
    [](const AttrMap& a) -> TransformPtr {
      return std::make_shared<ColorJitter>(
          jitter_range(attr_floats(a, "brightness"), 1, true), jitter_range(attr_floats(a, "contrast"), 1, true),
          jitter_range(attr_floats(a, "saturation"), 1, true), jitter_range(attr_floats(a, "hue"), 0, false));
    },
    "{type: color_jitter, brightness: 0.4, contrast: 0.4, saturation: 0.4, hue: 0.1}",
});

const RegisterTransform grayscale_reg({
    "grayscale",
    "torchvision.transforms.Grayscale",
    "0.2989 R + 0.587 G + 0.114 B, as 1 or 3 channels",
    {A::integer("num_output_channels", 1)
         .check(
             [](const AttrValue& v) {
               int64_t n = std::get<int64_t>(v);
               return n == 1 || n == 3 ? "" : "bad";
             },
             "1 or 3")
         .describe("1 or 3 (the grey value repeated)")},
    nullptr,
    false,
    [](const AttrMap& a) -> TransformPtr {
      return std::make_shared<Grayscale>(attr_int(a, "num_output_channels"), -1.0);
    },
    "{type: grayscale, num_output_channels: 1}",
});

const RegisterTransform random_grayscale_reg({
    "random_grayscale",
    "torchvision.transforms.RandomGrayscale",
    "grayscale with probability p, keeping the channel count",
    {A::floating("p", 0.1).range(0, 1).describe("probability of converting")},
    nullptr,
    true,
    [](const AttrMap& a) -> TransformPtr { return std::make_shared<Grayscale>(0, attr_float(a, "p")); },
    "{type: random_grayscale, p: 0.2}",
});

}  // namespace
}  // namespace dl::data
