// Per-sample transforms (torchvision.transforms names and semantics) and their registry.
//
//   data:
//     augment:    [{type: random_crop, size: 28, padding: 4}, {type: random_horizontal_flip}]
//     transforms: [{type: to_float}, {type: normalize, mean: [0.286], std: [0.353]}]
//
// `augment` runs on the training split only, before `transforms`, which runs on every split
// (random transforms are refused there). A transform sees one sample's image, [C, H, W],
// u8 (decoded pixels) or f32 (after to_float), and returns a new tensor; random ones draw from
// the sample's own Generator (DataLoader: seeded from (seed, epoch, position in the epoch), so
// the numbers do not depend on the worker count and resume exactly).
//
// A run of pixel maps (to_float, normalize) on u8 input folds into one 256-entry lookup
// table per channel, filled by running the steps in float32 in torchvision's order
// (x.float().div(255), then sub_(mean).div_(std)): one table lookup per pixel, bit-identical
// to PyTorch.
//
// Adding a transform = a class deriving from Transform and one RegisterTransform (examples:
// datasets/transforms/pixel.cpp); tests/app/test_transform_registry.cpp walks the registry.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "engine/graph/attr_schema.h"
#include "engine/ops/random.h"
#include "engine/tensor/tensor.h"

namespace dl::data {

class Transform {
 public:
  virtual ~Transform() = default;
  // x: [C, H, W] contiguous cpu, u8 or f32. Returns a new tensor (never modifies x).
  virtual Tensor apply(const Tensor& x, Generator& rng) const = 0;
  // The output shape for an input of shape `in` ({C, H, W}); std::invalid_argument when the
  // transform cannot apply to it (a crop larger than the image, 2 channels for grayscale).
  virtual Shape out_shape(const Shape& in) const { return in; }
  virtual DType out_dtype(DType in) const { return in; }
};

// A transform that maps each value of channel c independently: v -> map(c, v). Runs of these
// on u8 input fold into a lookup table (see above). apply() maps element by element.
class PixelMap : public Transform {
 public:
  virtual float map(int64_t channel, float v) const = 0;
  // std::invalid_argument when the map has per-channel values that do not fit `channels`.
  virtual void check_channels(int64_t channels) const { (void)channels; }
  Tensor apply(const Tensor& x, Generator& rng) const override;
  Shape out_shape(const Shape& in) const override;
  DType out_dtype(DType) const override { return DType::F32; }
};

using TransformPtr = std::shared_ptr<const Transform>;

struct TransformDef {
  std::string name;        // `type:` in data.transforms / data.augment ("random_crop")
  std::string torch_name;  // "torchvision.transforms.RandomCrop"
  std::string doc;         // one line for the reference
  std::vector<AttrSchema> attrs;                     // torchvision's arguments, names and defaults
  std::function<std::string(const AttrMap&)> rule;   // cross-attribute rule; "" when fine
  bool random = false;     // draws from the sample's generator: allowed in data.augment only
  std::function<TransformPtr(const AttrMap& attrs)> make;  // attrs resolved (defaults filled)
  std::string example;     // a YAML flow map that builds it, for docs and the registry test
};

struct RegisterTransform {
  explicit RegisterTransform(TransformDef def);  // std::logic_error on a duplicate
};

const std::vector<TransformDef>& transform_defs();  // sorted by name
const TransformDef* find_transform_def(std::string_view name);
const TransformDef& transform_def(std::string_view name);  // std::invalid_argument listing names
// Builds `name` with `attrs` (unset ones default; std::invalid_argument on a problem).
TransformPtr make_transform(std::string_view name, const AttrMap& attrs);

// An ordered list of transforms: data.augment + data.transforms of a split.
class TransformPipeline {
 public:
  TransformPipeline& add(TransformPtr t, std::string description);
  TransformPipeline& add(std::string_view name, const AttrMap& attrs);  // via the registry
  TransformPipeline& to_float(double scale = 1.0 / 255.0);
  TransformPipeline& normalize(std::vector<double> mean, std::vector<double> std);

  bool empty() const { return steps_.empty(); }
  size_t size() const { return steps_.size(); }
  std::string str() const;  // "random_crop(size=28, padding=4) -> to_float(scale=0.00392157)"
  // Output shape / dtype for an input of `in` / `dtype`; std::invalid_argument naming the step
  // that cannot apply.
  Shape out_shape(const Shape& in) const;
  DType out_dtype(DType in) const;

  // Runs the steps on one sample's image (see Transform::apply). Folds pixel-map runs on u8
  // input into lookup tables (cached per channel count; thread-safe).
  Tensor operator()(const Tensor& x, Generator& rng) const;

 private:
  struct Step {
    TransformPtr t;
    std::string description;
  };
  struct LutCache;  // lookup tables of pixel-map runs, shared by copies and worker threads
  std::vector<Step> steps_;
  std::shared_ptr<LutCache> luts_;
};

}  // namespace dl::data
