#include "datasets/sample.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>

namespace dl::data {

void TensorDict::set(const std::string& name, Tensor t) {
  if (Tensor* p = find(name)) {
    *p = std::move(t);
    return;
  }
  items_.emplace_back(name, std::move(t));
}

const Tensor* TensorDict::find(std::string_view name) const {
  for (const auto& [n, t] : items_)
    if (n == name) return &t;
  return nullptr;
}

Tensor* TensorDict::find(std::string_view name) {
  for (auto& [n, t] : items_)
    if (n == name) return &t;
  return nullptr;
}

const Tensor& TensorDict::at(std::string_view name) const {
  if (const Tensor* t = find(name)) return *t;
  throw std::out_of_range("no tensor named '" + std::string(name) + "' (have: " + names() + ")");
}

Tensor& TensorDict::at(std::string_view name) {
  if (Tensor* t = find(name)) return *t;
  throw std::out_of_range("no tensor named '" + std::string(name) + "' (have: " + names() + ")");
}

std::string TensorDict::names() const {
  std::string s;
  for (const auto& [n, t] : items_) s += (s.empty() ? "" : ", ") + n;
  return s.empty() ? "none" : s;
}

const char* target_kind_name(TargetKind k) {
  switch (k) {
    case TargetKind::class_index: return "class_index";
    case TargetKind::regression: return "regression";
    case TargetKind::multi_hot: return "multi_hot";
    case TargetKind::sequence: return "sequence";
    case TargetKind::none: return "none";
  }
  return "?";
}

std::string DatasetInfo::class_name(int64_t c) const {
  if (c >= 0 && c < static_cast<int64_t>(class_names.size())) return class_names[static_cast<size_t>(c)];
  return std::to_string(c);
}

namespace {

// Copies `src` (contiguous, shape [n, rest...]) into row block `dst` of a [max_n, rest...] slot,
// filling rows n..max_n with pad_value.
void copy_padded(const Tensor& src, int64_t max_n, double pad_value, uint8_t* dst) {
  const size_t esize = dtype_size(src.dtype());
  const int64_t n = src.dim() == 0 ? 1 : src.size(0);
  const int64_t row = src.dim() == 0 ? 1 : (n == 0 ? 0 : src.numel() / n);
  const size_t used = static_cast<size_t>(src.numel()) * esize;
  if (used) std::memcpy(dst, src.raw_data(), used);
  const int64_t pad = (max_n - n) * row;
  if (pad <= 0) return;
  Tensor fill = full({pad}, pad_value, src.dtype());
  std::memcpy(dst + used, fill.raw_data(), static_cast<size_t>(pad) * esize);
}

}  // namespace

TensorDict collate(const std::vector<Sample>& samples, double pad_value) {
  if (samples.empty()) throw std::invalid_argument("collate: no samples");
  const Sample& first = samples.front();
  TensorDict out;
  for (const auto& [name, t0] : first.items()) {
    // Shapes: equal, or equal except dimension 0 (padded).
    bool ragged = false;
    int64_t max_n = t0.dim() == 0 ? 1 : t0.size(0);
    std::vector<const Tensor*> ts;
    ts.reserve(samples.size());
    for (size_t i = 0; i < samples.size(); ++i) {
      const Tensor* t = samples[i].find(name);
      if (!t)
        throw std::invalid_argument("collate: sample " + std::to_string(i) + " has no '" + name + "' (sample 0 has " +
                                    first.names() + ")");
      if (t->dtype() != t0.dtype())
        throw std::invalid_argument("collate: '" + name + "' is " + dtype_name(t->dtype()) + " in sample " +
                                    std::to_string(i) + " but " + dtype_name(t0.dtype()) + " in sample 0");
      if (t->shape() != t0.shape()) {
        const bool same_rest = t->dim() == t0.dim() && t0.dim() >= 1 &&
                               std::equal(t->shape().begin() + 1, t->shape().end(), t0.shape().begin() + 1);
        if (!same_rest)
          throw std::invalid_argument("collate: '" + name + "' of sample " + std::to_string(i) + " has shape " +
                                      shape_str(t->shape()) + " but sample 0's is " + shape_str(t0.shape()) +
                                      " (samples of one batch must have equal shapes; for images of different "
                                      "sizes add a resize or crop to data.transforms)");
        ragged = true;
        max_n = std::max(max_n, t->size(0));
      }
      ts.push_back(t);
    }
    Shape shape = t0.shape();
    if (ragged) shape[0] = max_n;
    Shape bshape = {static_cast<int64_t>(samples.size())};
    bshape.insert(bshape.end(), shape.begin(), shape.end());
    Tensor b = empty(bshape, t0.dtype());
    const size_t slot = static_cast<size_t>(shape_numel(shape)) * dtype_size(t0.dtype());
    uint8_t* dst = static_cast<uint8_t*>(b.raw_data());
    for (size_t i = 0; i < ts.size(); ++i) {
      const Tensor src = ts[i]->device().is_cpu() ? ts[i]->contiguous() : ts[i]->to(Device::cpu()).contiguous();
      if (ragged)
        copy_padded(src, max_n, pad_value, dst + i * slot);
      else if (slot)
        std::memcpy(dst + i * slot, src.raw_data(), slot);
    }
    out.set(name, std::move(b));
    if (ragged) {
      Tensor len = empty({static_cast<int64_t>(samples.size())}, DType::I64);
      int64_t* l = len.data<int64_t>();
      for (size_t i = 0; i < ts.size(); ++i) l[i] = ts[i]->size(0);
      out.set(name + "_lengths", std::move(len));
    }
  }
  return out;
}

}  // namespace dl::data
