#include "engine/optim/ema.h"

#include <algorithm>
#include <set>
#include <stdexcept>
#include <utility>

#include "engine/autograd/autograd.h"
#include "engine/ops/elementwise.h"
#include "engine/optim/optimizer.h"

namespace dl::optim {
namespace {

const char* const kWho = "ExponentialMovingAverage";

// The model's state_dict, each tensor once (a shared parameter under its first name).
nn::StateDict unique_state(const nn::Module& model) {
  nn::StateDict out;
  std::set<const TensorImpl*> seen;
  for (auto& [name, t] : model.state_dict())
    if (seen.insert(t.impl()).second) out.emplace_back(name, t);
  return out;
}

std::string describe(const Tensor& t) {
  return shape_str(t.shape()) + " " + dtype_name(t.dtype()) + " on " + t.device().str();
}

}  // namespace

ExponentialMovingAverage::ExponentialMovingAverage(const nn::Module& model, double decay) : decay_(decay) {
  if (!(decay >= 0 && decay <= 1))
    throw std::invalid_argument(std::string(kWho) + ": decay must be in [0, 1], got " + option_str(decay));
  std::set<const TensorImpl*> params;
  for (const Tensor& p : model.parameters()) params.insert(p.impl());
  NoGradGuard ng;
  for (auto& [name, t] : unique_state(model))
    entries_.push_back({name, t.detach().clone(), params.count(t.impl()) > 0});
}

std::vector<Tensor> ExponentialMovingAverage::match(const nn::Module& model, const char* what) const {
  nn::StateDict sd = unique_state(model);
  std::vector<Tensor> out;
  out.reserve(entries_.size());
  size_t hint = 0;  // the model lists its tensors in the entries' order: search from there
  for (const Entry& e : entries_) {
    size_t j = hint;
    while (j < sd.size() && sd[j].first != e.name) ++j;
    if (j == sd.size()) {
      auto it = std::find_if(sd.begin(), sd.end(), [&](const auto& kv) { return kv.first == e.name; });
      if (it == sd.end())
        throw std::invalid_argument(std::string(kWho) + "::" + what + ": the model has no '" + e.name +
                                    "' (the average was built from another model)");
      j = static_cast<size_t>(it - sd.begin());
    }
    const Tensor& m = sd[j].second;
    if (m.shape() != e.shadow.shape() || m.dtype() != e.shadow.dtype() || m.device() != e.shadow.device())
      throw std::invalid_argument(std::string(kWho) + "::" + what + ": '" + e.name + "' is " + describe(m) +
                                  ", the average holds " + describe(e.shadow));
    out.push_back(m);
    hint = j + 1;
  }
  if (sd.size() != entries_.size())
    throw std::invalid_argument(std::string(kWho) + "::" + what + ": the model has " + std::to_string(sd.size()) +
                                " tensors, the average tracks " + std::to_string(entries_.size()));
  return out;
}

void ExponentialMovingAverage::update(const nn::Module& model) {
  if (applied_)
    throw std::logic_error(std::string(kWho) + "::update: the averaged weights are applied to the model (call restore first)");
  std::vector<Tensor> current = match(model, "update");
  NoGradGuard ng;
  for (size_t i = 0; i < entries_.size(); ++i) {
    Entry& e = entries_[i];
    if (!e.averaged || num_updates_ == 0) {
      e.shadow.copy_(current[i]);
    } else {  // avg_fn: decay * avg + (1 - decay) * p
      mul_(e.shadow, decay_);
      add_(e.shadow, current[i], 1.0 - decay_);
    }
  }
  ++num_updates_;
}

void ExponentialMovingAverage::swap_storage(nn::Module& model, const char* what) {
  std::vector<Tensor> current = match(model, what);
  for (size_t i = 0; i < entries_.size(); ++i) {
    TensorImpl* a = current[i].impl();
    TensorImpl* b = entries_[i].shadow.impl();
    std::swap(a->storage, b->storage);
    std::swap(a->strides, b->strides);
    std::swap(a->offset, b->offset);
    current[i].bump_version();
    entries_[i].shadow.bump_version();
  }
  applied_to_ = std::move(current);
}

void ExponentialMovingAverage::apply_to(nn::Module& model) {
  if (applied_) throw std::logic_error(std::string(kWho) + "::apply_to: the averaged weights are already applied");
  swap_storage(model, "apply_to");
  applied_ = true;
}

void ExponentialMovingAverage::restore(nn::Module& model) {
  if (!applied_) throw std::logic_error(std::string(kWho) + "::restore: the averaged weights are not applied");
  swap_storage(model, "restore");
  applied_to_.clear();
  applied_ = false;
}

nn::StateDict ExponentialMovingAverage::state_dict() const {
  nn::StateDict sd;
  for (size_t i = 0; i < entries_.size(); ++i)
    sd.emplace_back(entries_[i].name, applied_ ? applied_to_[i] : entries_[i].shadow);
  return sd;
}

void ExponentialMovingAverage::load_state_dict(const nn::StateDict& sd, int64_t num_updates) {
  if (applied_)
    throw std::logic_error(std::string(kWho) + "::load_state_dict: the averaged weights are applied (call restore first)");
  if (num_updates < 0)
    throw std::invalid_argument(std::string(kWho) + ": num_updates must be >= 0, got " + std::to_string(num_updates));
  // Check everything first so that a failing load changes nothing.
  std::vector<const Tensor*> src;
  for (const Entry& e : entries_) {
    const Tensor* t = nn::find_tensor(sd, e.name);
    if (!t) throw std::invalid_argument(std::string(kWho) + ": the state has no '" + e.name + "'");
    if (t->shape() != e.shadow.shape())
      throw std::invalid_argument(std::string(kWho) + ": '" + e.name + "' has shape " + shape_str(t->shape()) +
                                  ", the average holds " + shape_str(e.shadow.shape()));
    src.push_back(t);
  }
  for (const auto& kv : sd) {
    const std::string& name = kv.first;  // clang 14 (the sanitizer build) cannot capture a structured binding
    auto known = [&](const Entry& e) { return e.name == name; };
    if (std::none_of(entries_.begin(), entries_.end(), known))
      throw std::invalid_argument(std::string(kWho) + ": unexpected key '" + name + "' in the state");
  }
  NoGradGuard ng;
  for (size_t i = 0; i < entries_.size(); ++i) entries_[i].shadow.copy_(src[i]->detach());
  num_updates_ = num_updates;
}

}  // namespace dl::optim
