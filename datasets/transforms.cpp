#include "datasets/transforms.h"

#include <cmath>
#include <sstream>
#include <stdexcept>

namespace dl::data {
namespace {

std::string list_str(const std::vector<double>& v) {
  std::ostringstream s;
  s << '[';
  for (size_t i = 0; i < v.size(); ++i) s << (i ? ", " : "") << v[i];
  s << ']';
  return s.str();
}

// 1/scale when it is (to double precision) a positive integer, else 0. torchvision's ToTensor
// divides by 255; dividing matches it bit for bit where multiplying by (1/255) would not.
double integer_divisor(double scale) {
  double inv = 1.0 / scale;
  double r = std::round(inv);
  return (r >= 1.0 && std::fabs(inv - r) <= 1e-9 * r) ? r : 0.0;
}

// Value of per-channel parameter `v` for channel c (a single value applies to all channels).
float channel_value(const std::vector<double>& v, int64_t c) {
  return static_cast<float>(v.size() == 1 ? v[0] : v[static_cast<size_t>(c)]);
}

}  // namespace

TransformPipeline& TransformPipeline::to_float(double scale) { return add(ToFloat{scale}); }

TransformPipeline& TransformPipeline::normalize(std::vector<double> mean, std::vector<double> std) {
  return add(Normalize{std::move(mean), std::move(std)});
}

TransformPipeline& TransformPipeline::add(PixelStep step) {
  steps_.push_back(std::move(step));
  return *this;
}

std::string TransformPipeline::str() const {
  std::ostringstream s;
  for (size_t i = 0; i < steps_.size(); ++i) {
    if (i) s << " -> ";
    if (auto* f = std::get_if<ToFloat>(&steps_[i])) {
      s << "to_float(scale=" << f->scale << ')';
    } else {
      const auto& n = std::get<Normalize>(steps_[i]);
      s << "normalize(mean=" << list_str(n.mean) << ", std=" << list_str(n.std) << ')';
    }
  }
  return steps_.empty() ? "cast" : s.str();
}

BatchTransform TransformPipeline::compile(int64_t channels) const {
  if (channels <= 0) throw std::invalid_argument("transforms: channel count must be positive");
  bool seen_float = false, seen_normalize = false;
  for (const PixelStep& step : steps_) {
    if (auto* f = std::get_if<ToFloat>(&step)) {
      if (seen_float) throw std::invalid_argument("transforms: to_float appears more than once");
      if (seen_normalize) throw std::invalid_argument("transforms: normalize must come after to_float");
      if (!std::isfinite(f->scale) || f->scale <= 0)
        throw std::invalid_argument("transforms: to_float scale must be a positive number, got " +
                                    std::to_string(f->scale));
      seen_float = true;
      continue;
    }
    const auto& n = std::get<Normalize>(step);
    seen_normalize = true;
    for (const auto* v : {&n.mean, &n.std}) {
      const char* name = v == &n.mean ? "mean" : "std";
      if (v->size() != 1 && static_cast<int64_t>(v->size()) != channels)
        throw std::invalid_argument(std::string("transforms: normalize ") + name + " has " +
                                    std::to_string(v->size()) + " values for " + std::to_string(channels) +
                                    " channel(s) (give 1 or " + std::to_string(channels) + ")");
      for (double x : *v)
        if (!std::isfinite(x)) throw std::invalid_argument(std::string("transforms: normalize ") + name + " is not finite");
    }
    for (double x : n.std)
      if (x <= 0) throw std::invalid_argument("transforms: normalize std must be > 0, got " + list_str(n.std));
  }

  BatchTransform t;
  t.channels_ = channels;
  t.lut_.assign(static_cast<size_t>(channels) * 256, 0.0f);
  for (int64_t c = 0; c < channels; ++c) {
    for (int x = 0; x < 256; ++x) {
      float v = static_cast<float>(x);
      for (const PixelStep& step : steps_) {
        if (auto* f = std::get_if<ToFloat>(&step)) {
          double d = integer_divisor(f->scale);
          v = d > 0 ? v / static_cast<float>(d) : v * static_cast<float>(f->scale);
        } else {
          const auto& n = std::get<Normalize>(step);
          v = (v - channel_value(n.mean, c)) / channel_value(n.std, c);  // float32, as torch does
        }
      }
      t.lut_[static_cast<size_t>(c) * 256 + x] = v;
    }
  }
  return t;
}

std::vector<float> BatchTransform::identity_lut() {
  std::vector<float> lut(256);
  for (int x = 0; x < 256; ++x) lut[x] = static_cast<float>(x);
  return lut;
}

void BatchTransform::apply_sample(const uint8_t* src, int64_t hw, float* dst) const {
  const float* lut = lut_.data();
  for (int64_t c = 0; c < channels_; ++c, lut += 256, src += hw, dst += hw)
    for (int64_t p = 0; p < hw; ++p) dst[p] = lut[src[p]];
}

void BatchTransform::gather(const Tensor& images, const int64_t* rows, int64_t count, float* out) const {
  if (images.dtype() != DType::U8 || images.dim() != 4 || !images.is_contiguous())
    throw std::invalid_argument("BatchTransform::gather: images must be contiguous u8 [N, C, H, W], got " + images.str());
  if (images.size(1) != channels_)
    throw std::invalid_argument("BatchTransform::gather: transform compiled for " + std::to_string(channels_) +
                                " channel(s), images have " + std::to_string(images.size(1)));
  const int64_t n = images.size(0);
  const int64_t hw = images.size(2) * images.size(3);
  const int64_t sample = channels_ * hw;
  const uint8_t* base = images.data<uint8_t>();
  for (int64_t b = 0; b < count; ++b) {
    if (rows[b] < 0 || rows[b] >= n)
      throw std::out_of_range("BatchTransform::gather: row " + std::to_string(rows[b]) + " out of range for " +
                              std::to_string(n) + " samples");
    // The rows are scattered over the dataset (shuffled): fetch the next sample's bytes while
    // this one is converted, instead of stalling on each of its cache lines.
    if (b + 1 < count && rows[b + 1] >= 0 && rows[b + 1] < n) {
      const uint8_t* nxt = base + rows[b + 1] * sample;
      for (int64_t off = 0; off < sample; off += 64) __builtin_prefetch(nxt + off);
    }
    apply_sample(base + rows[b] * sample, hw, out + b * sample);
  }
}

Tensor BatchTransform::operator()(const Tensor& images_u8) const {
  if (images_u8.dtype() != DType::U8 || (images_u8.dim() != 3 && images_u8.dim() != 4))
    throw std::invalid_argument("BatchTransform: expected u8 [B, C, H, W] or [C, H, W], got " + images_u8.str());
  Tensor src = images_u8.contiguous();
  Tensor x = src.dim() == 3 ? src.unsqueeze(0) : src;
  if (x.size(1) != channels_)
    throw std::invalid_argument("BatchTransform: compiled for " + std::to_string(channels_) + " channel(s), got " +
                                images_u8.str());
  Tensor out = empty(images_u8.shape(), DType::F32);
  const int64_t hw = x.size(2) * x.size(3);
  const uint8_t* s = x.data<uint8_t>();
  float* d = out.data<float>();
  for (int64_t b = 0; b < x.size(0); ++b) apply_sample(s + b * channels_ * hw, hw, d + b * channels_ * hw);
  return out;
}

}  // namespace dl::data
