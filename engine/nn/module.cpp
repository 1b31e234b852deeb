#include "engine/nn/module.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <stdexcept>

#include "engine/ops/elementwise.h"

namespace dl::nn {

const Tensor* find_tensor(const StateDict& sd, const std::string& key) {
  for (const auto& kv : sd)
    if (kv.first == key) return &kv.second;
  return nullptr;
}

std::string Size2::str() const { return h == w ? std::to_string(h) : tuple_str(); }
std::string Size2::tuple_str() const {
  return "(" + std::to_string(h) + ", " + std::to_string(w) + ")";
}

std::string py_float(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof(buf), v, std::chars_format::scientific);
  std::string s(buf, res.ptr);  // shortest round-trip: "-1.25e-05"
  std::string sign;
  if (s[0] == '-') {
    sign = "-";
    s.erase(0, 1);
  }
  size_t e = s.find('e');
  std::string mant = s.substr(0, e);
  int exp = std::stoi(s.substr(e + 1));
  std::string digits;
  for (char c : mant)
    if (c != '.') digits.push_back(c);
  if (exp >= -4 && exp < 16) {
    std::string out;
    if (exp >= 0) {
      std::string ip = digits.substr(0, std::min<size_t>(digits.size(), exp + 1));
      while (static_cast<int>(ip.size()) < exp + 1) ip.push_back('0');
      std::string fp = static_cast<int>(digits.size()) > exp + 1 ? digits.substr(exp + 1) : "0";
      out = ip + "." + fp;
    } else {
      out = "0." + std::string(static_cast<size_t>(-exp - 1), '0') + digits;
    }
    return sign + out;
  }
  std::string out = digits.substr(0, 1);
  if (digits.size() > 1) out += "." + digits.substr(1);
  char eb[16];
  std::snprintf(eb, sizeof(eb), "e%c%02d", exp < 0 ? '-' : '+', std::abs(exp));
  return sign + out + eb;
}

// ---------------------------------------------------------------------------
// forward / printing / mode
// ---------------------------------------------------------------------------
Tensor Module::forward(const Tensor&) {
  throw std::logic_error(type_name() + " has no single-input forward()");
}

Tensor Module::forward(const TensorList& xs) {
  if (xs.size() != 1)
    throw std::invalid_argument(type_name() + " takes exactly one input, got " +
                                std::to_string(xs.size()));
  return forward(xs[0]);
}

TensorList Module::forward_tuple(const TensorList& xs) { return {forward(xs)}; }

void Module::repr_into(std::string& out, int indent) const {
  out += type_name() + "(";
  if (children_.empty()) {
    out += extra_repr() + ")";
    return;
  }
  std::string pad(static_cast<size_t>(indent + 2), ' ');
  std::string extra = extra_repr();
  if (!extra.empty()) out += "\n" + pad + extra;
  for (const auto& [name, child] : children_) {
    out += "\n" + pad + "(" + name + "): ";
    child->repr_into(out, indent + 2);
  }
  out += "\n" + std::string(static_cast<size_t>(indent), ' ') + ")";
}

std::string Module::repr() const {
  std::string out;
  repr_into(out, 0);
  return out;
}

void Module::train(bool on) {
  training_ = on;
  for (auto& kv : children_) kv.second->train(on);
}

// ---------------------------------------------------------------------------
// registration
// ---------------------------------------------------------------------------
void Module::check_new_name(const std::string& name, const char* what) const {
  if (name.empty()) throw std::invalid_argument(std::string(what) + " name can't be empty");
  if (name.find('.') != std::string::npos)
    throw std::invalid_argument(std::string(what) + " name can't contain \".\": \"" + name + "\"");
  bool taken = std::any_of(params_.begin(), params_.end(), [&](auto& p) { return p.first == name; }) ||
               std::any_of(buffers_.begin(), buffers_.end(), [&](auto& b) { return b.name == name; }) ||
               std::any_of(children_.begin(), children_.end(), [&](auto& c) { return c.first == name; });
  if (taken)
    throw std::invalid_argument(type_name() + ": attribute \"" + name + "\" already exists");
}

Tensor Module::register_parameter(const std::string& name, Tensor t) {
  check_new_name(name, "parameter");
  if (!t.defined()) throw std::invalid_argument("register_parameter(\"" + name + "\"): undefined tensor");
  if (!t.is_leaf()) t = t.detach();
  t.requires_grad_(true);
  params_.emplace_back(name, t);
  return t;
}

Tensor Module::register_buffer(const std::string& name, Tensor t, bool persistent) {
  check_new_name(name, "buffer");
  if (!t.defined()) throw std::invalid_argument("register_buffer(\"" + name + "\"): undefined tensor");
  buffers_.push_back({name, t, persistent});
  return t;
}

void Module::add_child(const std::string& name, std::shared_ptr<Module> m) {
  check_new_name(name, "module");
  if (!m) throw std::invalid_argument("register_module(\"" + name + "\"): null module");
  children_.emplace_back(name, std::move(m));
}

// ---------------------------------------------------------------------------
// traversal
// ---------------------------------------------------------------------------
void Module::collect_params(const std::string& prefix, NamedTensors& out, bool recurse,
                            std::vector<const TensorImpl*>& seen) const {
  for (const auto& [name, t] : params_) {
    if (std::find(seen.begin(), seen.end(), t.impl()) != seen.end()) continue;
    seen.push_back(t.impl());
    out.emplace_back(prefix + name, t);
  }
  if (!recurse) return;
  for (const auto& [name, child] : children_) child->collect_params(prefix + name + ".", out, true, seen);
}

NamedTensors Module::named_parameters(bool recurse) const {
  NamedTensors out;
  std::vector<const TensorImpl*> seen;
  collect_params("", out, recurse, seen);
  return out;
}

std::vector<Tensor> Module::parameters(bool recurse) const {
  std::vector<Tensor> out;
  for (auto& kv : named_parameters(recurse)) out.push_back(kv.second);
  return out;
}

void Module::collect_buffers(const std::string& prefix, NamedTensors& out, bool recurse) const {
  for (const auto& b : buffers_) out.emplace_back(prefix + b.name, b.tensor);
  if (!recurse) return;
  for (const auto& [name, child] : children_) child->collect_buffers(prefix + name + ".", out, true);
}

NamedTensors Module::named_buffers(bool recurse) const {
  NamedTensors out;
  collect_buffers("", out, recurse);
  return out;
}

std::vector<Tensor> Module::buffers(bool recurse) const {
  std::vector<Tensor> out;
  for (auto& kv : named_buffers(recurse)) out.push_back(kv.second);
  return out;
}

std::vector<std::pair<std::string, std::shared_ptr<Module>>> Module::named_children() const {
  return children_;
}

std::vector<std::shared_ptr<Module>> Module::children() const {
  std::vector<std::shared_ptr<Module>> out;
  for (auto& kv : children_) out.push_back(kv.second);
  return out;
}

void Module::collect_modules(const std::string& prefix,
                             std::vector<std::pair<std::string, std::shared_ptr<Module>>>& out) {
  for (auto& [name, child] : children_) {
    std::string full = prefix.empty() ? name : prefix + "." + name;
    out.emplace_back(full, child);
    child->collect_modules(full, out);
  }
}

std::vector<std::pair<std::string, std::shared_ptr<Module>>> Module::named_modules() {
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> out;
  std::shared_ptr<Module> self;
  try {
    self = shared_from_this();
  } catch (const std::bad_weak_ptr&) {
    // Not held by a shared_ptr (a stack-allocated module): list it with a non-owning pointer.
    self = std::shared_ptr<Module>(this, [](Module*) {});
  }
  out.emplace_back("", self);
  collect_modules("", out);
  return out;
}

std::shared_ptr<Module> Module::child(const std::string& name) const {
  for (auto& kv : children_)
    if (kv.first == name) return kv.second;
  return nullptr;
}

int64_t Module::num_parameters(bool trainable_only) const {
  int64_t n = 0;
  for (auto& kv : named_parameters())
    if (!trainable_only || kv.second.requires_grad()) n += kv.second.numel();
  return n;
}

// ---------------------------------------------------------------------------
// state_dict
// ---------------------------------------------------------------------------
void Module::collect_state(const std::string& prefix, StateDict& out) const {
  for (const auto& [name, t] : params_) out.emplace_back(prefix + name, t);
  for (const auto& b : buffers_)
    if (b.persistent) out.emplace_back(prefix + b.name, b.tensor);
  for (const auto& [name, child] : children_) child->collect_state(prefix + name + ".", out);
}

StateDict Module::state_dict() const {
  StateDict out;
  collect_state("", out);
  return out;
}

LoadResult Module::load_state_dict(const StateDict& sd, bool strict) {
  StateDict own = state_dict();
  LoadResult result;
  std::vector<std::string> errors;
  // Pass 1: check everything so that a failing load changes nothing.
  std::vector<std::pair<Tensor, Tensor>> copies;  // (destination, source)
  for (auto& [key, dst] : own) {
    const Tensor* src = find_tensor(sd, key);
    if (!src) {
      result.missing_keys.push_back(key);
      continue;
    }
    Tensor s = *src;
    // PyTorch loads a 1-element 1-d tensor into a 0-d one (checkpoints from torch 0.3).
    if (dst.dim() == 0 && s.dim() == 1 && s.numel() == 1) s = s.reshape({});
    if (s.shape() != dst.shape()) {
      errors.push_back("size mismatch for " + key + ": copying a param with shape " +
                       shape_str(s.shape()) + " from checkpoint, the shape in current model is " +
                       shape_str(dst.shape()) + ".");
      continue;
    }
    copies.emplace_back(dst, s);
  }
  for (auto& [key, t] : sd)
    if (!find_tensor(own, key)) result.unexpected_keys.push_back(key);

  auto quoted = [](const std::vector<std::string>& keys) {
    std::string s;
    for (size_t i = 0; i < keys.size(); ++i) s += (i ? ", \"" : "\"") + keys[i] + "\"";
    return s;
  };
  if (strict) {
    if (!result.unexpected_keys.empty())
      errors.insert(errors.begin(), "Unexpected key(s) in state_dict: " + quoted(result.unexpected_keys) + ". ");
    if (!result.missing_keys.empty())
      errors.insert(errors.begin(), "Missing key(s) in state_dict: " + quoted(result.missing_keys) + ". ");
  }
  if (!errors.empty()) {
    std::string msg = "Error(s) in loading state_dict for " + type_name() + ":";
    for (auto& e : errors) msg += "\n\t" + e;
    throw std::runtime_error(msg);
  }
  NoGradGuard ng;
  for (auto& [dst, src] : copies) {
    Tensor d = dst;
    d.copy_(src.detach());
  }
  return result;
}

// ---------------------------------------------------------------------------
// devices, dtypes, grads
// ---------------------------------------------------------------------------
namespace {

// Re-points `t`'s TensorImpl at `moved` (a contiguous tensor of the same shape), so every
// handle to `t` sees the new storage/dtype.
void rebind(const Tensor& t, const Tensor& moved) {
  if (moved.storage() == t.storage() && moved.dtype() == t.dtype()) return;
  TensorImpl* impl = t.impl();
  impl->storage = moved.storage();
  impl->strides = moved.strides();
  impl->offset = moved.offset();
  impl->dtype = moved.dtype();
  ++impl->version;
}

template <class Convert>
void convert_all(Module& m, Convert&& convert) {
  NoGradGuard ng;
  for (const Tensor& t : m.parameters()) {
    rebind(t, convert(t.detach()));
    if (t.impl()->grad) {
      Tensor g(t.impl()->grad);
      t.impl()->grad = convert(g).impl_ptr();
    }
  }
  for (const Tensor& t : m.buffers()) rebind(t, convert(t.detach()));
}

}  // namespace

void Module::to(Device d) {
  convert_all(*this, [d](const Tensor& t) { return t.device() == d ? t : t.to(d); });
}

void Module::to(DType dt) {
  if (!is_floating(dt)) throw std::invalid_argument("Module::to: expected a floating dtype");
  convert_all(*this, [dt](const Tensor& t) {
    return (!is_floating(t.dtype()) || t.dtype() == dt) ? t : t.to(dt);
  });
}

void Module::zero_grad(bool set_to_none) {
  for (Tensor& t : parameters()) t.zero_grad(set_to_none);
}

}  // namespace dl::nn
