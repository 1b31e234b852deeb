#include "engine/nn/container.h"

#include <stdexcept>

#include "engine/ops/elementwise.h"
#include "engine/ops/shape.h"

namespace dl::nn {

Sequential::Sequential(std::initializer_list<ModulePtr> modules) {
  for (const ModulePtr& m : modules) push_back(m);
}

std::shared_ptr<Sequential> sequential(std::initializer_list<ModulePtr> modules) {
  return std::make_shared<Sequential>(modules);
}

void Sequential::push_back(ModulePtr m) { push_back(std::to_string(size()), std::move(m)); }

void Sequential::push_back(const std::string& name, ModulePtr m) { add_child(name, std::move(m)); }

const ModulePtr& Sequential::operator[](size_t i) const {
  if (i >= size())
    throw std::out_of_range("Sequential: index " + std::to_string(i) + " out of range (size " +
                            std::to_string(size()) + ")");
  return own_children()[i].second;
}

Tensor Sequential::forward(const Tensor& x) {
  Tensor h = x;
  for (const auto& kv : own_children()) h = kv.second->forward(h);
  return h;
}

Tensor Add::forward(const TensorList& xs) {
  if (xs.empty()) throw std::invalid_argument("Add: expected at least one input");
  Tensor out = xs[0];
  for (size_t i = 1; i < xs.size(); ++i) out = add(out, xs[i]);
  return out;
}

Tensor Concat::forward(const TensorList& xs) {
  if (xs.empty()) throw std::invalid_argument("Concat: expected at least one input");
  if (xs.size() == 1) return xs[0];
  return cat(xs, dim);
}

}  // namespace dl::nn
