#include "datasets/transforms.h"

#include <map>
#include <mutex>
#include <stdexcept>
#include <tuple>

#include "engine/graph/named_registry.h"

namespace dl::data {
namespace {

NamedRegistry<TransformDef>& registry() {
  static NamedRegistry<TransformDef> r("transform");
  return r;
}

std::string describe(const std::string& name, const AttrMap& attrs) {
  std::string s = name + "(";
  bool first = true;
  for (const auto& [k, v] : attrs) {
    s += (first ? "" : ", ") + k + "=" + format_attr(v);
    first = false;
  }
  return s + ")";
}

}  // namespace

RegisterTransform::RegisterTransform(TransformDef def) { registry().add(std::move(def)); }
const std::vector<TransformDef>& transform_defs() { return registry().all(); }
const TransformDef* find_transform_def(std::string_view name) { return registry().find(name); }
const TransformDef& transform_def(std::string_view name) { return registry().get(name); }

TransformPtr make_transform(std::string_view name, const AttrMap& attrs) {
  const TransformDef& def = transform_def(name);
  AttrMap a = attrs;
  std::string problem = resolve_attrs(def.attrs, a, "option", def.rule);
  if (!problem.empty()) throw std::invalid_argument("transform '" + def.name + "': " + problem);
  return def.make(a);
}

// ---- PixelMap -------------------------------------------------------------------------------

Tensor PixelMap::apply(const Tensor& x, Generator&) const {
  // Any [C, ...]: an image [C, H, W], or features [F] (F channels of one value each).
  if (!x.defined() || x.dim() < 1 || !x.device().is_cpu() || (x.dtype() != DType::U8 && x.dtype() != DType::F32))
    throw std::invalid_argument("expected a u8 or f32 [C, ...] cpu tensor (an image [C, H, W] or features [F]), got " +
                                (x.defined() ? x.str() : std::string("undefined")));
  check_channels(x.size(0));
  const Tensor src = x.contiguous();
  Tensor out = empty(src.shape(), DType::F32);
  const int64_t hw = src.size(0) ? src.numel() / src.size(0) : 0;
  float* o = out.data<float>();
  for (int64_t c = 0; c < src.size(0); ++c) {
    if (src.dtype() == DType::U8) {
      float lut[256];
      for (int v = 0; v < 256; ++v) lut[v] = map(c, static_cast<float>(v));
      const uint8_t* s = src.data<uint8_t>() + c * hw;
      for (int64_t p = 0; p < hw; ++p) o[c * hw + p] = lut[s[p]];
    } else {
      const float* s = src.data<float>() + c * hw;
      for (int64_t p = 0; p < hw; ++p) o[c * hw + p] = map(c, s[p]);
    }
  }
  return out;
}

Shape PixelMap::out_shape(const Shape& in) const {
  if (in.empty()) throw std::invalid_argument("expected a shape [C, ...], got " + shape_str(in));
  check_channels(in[0]);
  return in;
}

// ---- TransformPipeline ----------------------------------------------------------------------

TransformPipeline& TransformPipeline::add(TransformPtr t, std::string description) {
  if (!t) throw std::invalid_argument("TransformPipeline::add: null transform");
  if (!luts_) luts_ = std::make_shared<LutCache>();
  steps_.push_back({std::move(t), std::move(description)});
  return *this;
}

TransformPipeline& TransformPipeline::add(std::string_view name, const AttrMap& attrs) {
  const TransformDef& def = transform_def(name);
  AttrMap a = attrs;
  fill_attr_defaults(def.attrs, a);
  return add(make_transform(def.name, attrs), describe(def.name, a));
}

TransformPipeline& TransformPipeline::to_float(double scale) { return add("to_float", {{"scale", scale}}); }

TransformPipeline& TransformPipeline::normalize(std::vector<double> mean, std::vector<double> std) {
  return add("normalize", {{"mean", std::move(mean)}, {"std", std::move(std)}});
}

std::string TransformPipeline::str() const {
  if (steps_.empty()) return "none";
  std::string s;
  for (const Step& st : steps_) s += (s.empty() ? "" : " -> ") + st.description;
  return s;
}

Shape TransformPipeline::out_shape(const Shape& in) const {
  Shape s = in;
  for (const Step& st : steps_) {
    try {
      s = st.t->out_shape(s);
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument(st.description + ": " + e.what());
    }
  }
  return s;
}

DType TransformPipeline::out_dtype(DType in) const {
  for (const Step& st : steps_) in = st.t->out_dtype(in);
  return in;
}

// Lookup tables of pixel-map runs: (first step, run length, channels) -> float [channels * 256].
// Filled once per key. Copies of a pipeline share it: their steps are the same immutable objects
// (a copy can only append, which makes longer runs: other keys).
struct TransformPipeline::LutCache {
  std::mutex mu;
  std::map<std::tuple<size_t, size_t, int64_t>, std::shared_ptr<const std::vector<float>>> tables;
};

Tensor TransformPipeline::operator()(const Tensor& input, Generator& rng) const {
  Tensor x = input;
  size_t i = 0;
  while (i < steps_.size()) {
    const auto* pm = dynamic_cast<const PixelMap*>(steps_[i].t.get());
    if (!pm || x.dtype() != DType::U8) {
      try {
        x = steps_[i].t->apply(x.is_contiguous() ? x : x.contiguous(), rng);
      } catch (const std::invalid_argument& e) {
        throw std::invalid_argument(steps_[i].description + ": " + e.what());
      }
      ++i;
      continue;
    }
    if (x.dim() < 1) throw std::invalid_argument(steps_[i].description + ": expected [C, ...], got " + x.str());
    size_t j = i;
    std::vector<const PixelMap*> run;
    for (; j < steps_.size(); ++j) {
      const auto* p = dynamic_cast<const PixelMap*>(steps_[j].t.get());
      if (!p) break;
      p->check_channels(x.size(0));
      run.push_back(p);
    }
    const int64_t channels = x.size(0);
    std::shared_ptr<const std::vector<float>> lut;
    {
      std::lock_guard<std::mutex> lock(luts_->mu);
      auto& slot = luts_->tables[{i, j, channels}];
      if (!slot) {
        auto t = std::make_shared<std::vector<float>>(static_cast<size_t>(channels) * 256);
        for (int64_t c = 0; c < channels; ++c)
          for (int v = 0; v < 256; ++v) {
            float f = static_cast<float>(v);
            for (const PixelMap* p : run) f = p->map(c, f);
            (*t)[static_cast<size_t>(c * 256 + v)] = f;
          }
        slot = std::move(t);
      }
      lut = slot;
    }
    const Tensor src = x.contiguous();
    Tensor out = dl::empty(src.shape(), DType::F32);
    const int64_t hw = channels ? src.numel() / channels : 0;
    const uint8_t* s = src.data<uint8_t>();
    float* o = out.data<float>();
    const float* table = lut->data();
    for (int64_t c = 0; c < channels; ++c, table += 256, s += hw, o += hw)
      for (int64_t p = 0; p < hw; ++p) o[p] = table[s[p]];
    x = std::move(out);
    i = j;
  }
  return x;
}

}  // namespace dl::data
