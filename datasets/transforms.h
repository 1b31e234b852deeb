// Per-pixel transforms from u8 images to the f32 the model consumes, applied per batch.
//
//   TransformPipeline t;
//   t.to_float().normalize({0.2860}, {0.3530});    // torchvision: ToTensor(), Normalize(m, s)
//   BatchTransform bt = t.compile(/*channels=*/1);
//   bt.gather(images_u8, rows, 128, out);           // f32 [128, 1, 28, 28]
//
// Every step here maps one u8 value of one channel to one float, so the whole chain folds
// into a 256-entry lookup table per channel: a batch of 128x784 costs one table lookup per
// pixel (tens of microseconds), and gather + convert + normalize is a single fused loop.
// The table is filled by running the steps in float32 in the order torchvision does
// (x.float().div(255), then sub_(mean).div_(std)), so the values match PyTorch bit for bit.
// A future non-pointwise transform (random crop, flip) belongs beside this, not inside it.
#pragma once
#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "engine/tensor/tensor.h"

namespace dl::data {

struct ToFloat {
  double scale = 1.0 / 255.0;  // x_f32 = x_u8 * scale (a division when 1/scale is an integer)
};
struct Normalize {
  std::vector<double> mean;    // per channel, or a single value for every channel
  std::vector<double> std;     // idem; each > 0
};
using PixelStep = std::variant<ToFloat, Normalize>;

class BatchTransform;

// An ordered list of steps (what a config's `transforms:` list maps to). Without a to_float
// step the u8 values are cast unscaled (0..255). to_float may appear at most once and must
// come before any normalize.
class TransformPipeline {
 public:
  TransformPipeline& to_float(double scale = 1.0 / 255.0);
  TransformPipeline& normalize(std::vector<double> mean, std::vector<double> std);
  TransformPipeline& add(PixelStep step);
  const std::vector<PixelStep>& steps() const { return steps_; }
  std::string str() const;  // "to_float(scale=0.00392157) -> normalize(mean=[0.286], std=[0.353])"

  // Checks the steps against the channel count (std::invalid_argument naming the step) and
  // builds the lookup tables.
  BatchTransform compile(int64_t channels) const;

 private:
  std::vector<PixelStep> steps_;
};

// The compiled form: lut[c * 256 + x] = value of byte x in channel c.
class BatchTransform {
 public:
  BatchTransform() = default;  // identity cast, one channel
  int64_t channels() const { return channels_; }
  float value(int64_t channel, uint8_t x) const { return lut_[static_cast<size_t>(channel) * 256 + x]; }

  // The fused loop: out[b] = T(images[rows[b]]) for b in [0, count).
  // images: u8 [N, C, H, W] contiguous (C == channels()); out: f32 [count, C, H, W] storage.
  void gather(const Tensor& images, const int64_t* rows, int64_t count, float* out) const;
  // Applies to a whole u8 [B, C, H, W] (or [C, H, W]) tensor; returns f32 of the same shape.
  Tensor operator()(const Tensor& images_u8) const;

 private:
  friend class TransformPipeline;
  void apply_sample(const uint8_t* src, int64_t hw, float* dst) const;
  int64_t channels_ = 1;
  std::vector<float> lut_ = identity_lut();  // [channels_, 256]
  static std::vector<float> identity_lut();
};

}  // namespace dl::data
