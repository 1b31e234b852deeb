#include "engine/optim/optimizer.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <stdexcept>

#include "engine/autograd/autograd.h"
#include "engine/optim/registry.h"

namespace dl::optim {

std::string option_str(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof(buf), v);
  return std::string(buf, r.ptr);
}

double ParamGroup::get(const std::string& key) const {
  auto it = options.find(key);
  if (it == options.end()) throw std::out_of_range("param group has no option '" + key + "'");
  return it->second;
}

ParamGroup ParamGroup::from(const NamedTensors& named, Options overrides) {
  ParamGroup g;
  for (const auto& [name, t] : named) {
    g.names.push_back(name);
    g.params.push_back(t);
  }
  g.options = std::move(overrides);
  return g;
}

Optimizer::Optimizer(std::string type, Options defaults)
    : type_(std::move(type)), defaults_(std::move(defaults)) {}

void Optimizer::init_groups(std::vector<ParamGroup> groups) {
  size_t total = 0;
  for (const ParamGroup& g : groups) total += g.params.size();
  if (total == 0) throw std::invalid_argument(type_ + ": optimizer got an empty parameter list");
  for (ParamGroup& g : groups) add_param_group(std::move(g));
}

void Optimizer::add_param_group(ParamGroup g) {
  if (g.names.size() != g.params.size())
    throw std::invalid_argument(type_ + ": param group has " + std::to_string(g.names.size()) +
                                " names for " + std::to_string(g.params.size()) + " parameters");
  for (size_t i = 0; i < g.params.size(); ++i) {
    const std::string& name = g.names[i];
    const Tensor& p = g.params[i];
    if (!p.defined()) throw std::invalid_argument(type_ + ": parameter '" + name + "' is undefined");
    if (!is_floating(p.dtype()))
      throw std::invalid_argument(type_ + ": parameter '" + name + "' is not floating point");
    if (!p.is_leaf()) throw std::invalid_argument(type_ + ": can't optimize a non-leaf Tensor ('" + name + "')");
    auto dup = [&](const std::string& n, const Tensor& t) { return n == name || t.same(p); };
    for (size_t j = 0; j < i; ++j)
      if (dup(g.names[j], g.params[j]))
        throw std::invalid_argument(type_ + ": parameter '" + name + "' appears twice in a param group");
    for (const ParamGroup& other : groups_)
      for (size_t j = 0; j < other.params.size(); ++j)
        if (dup(other.names[j], other.params[j]))
          throw std::invalid_argument(type_ + ": some parameters appear in more than one parameter group ('" +
                                      name + "')");
  }
  for (const auto& [key, value] : g.options) {
    (void)value;
    if (key != "initial_lr" && !defaults_.count(key)) {
      std::string valid;
      for (const auto& kv : defaults_) valid += (valid.empty() ? "" : ", ") + kv.first;
      throw std::invalid_argument(type_ + ": unknown option '" + key + "' (valid: " + valid + ")");
    }
  }
  for (const auto& [key, value] : defaults_)
    if (!g.options.count(key)) g.options[key] = value;
  validate(g.options);
  groups_.push_back(std::move(g));
}

std::string Optimizer::check_slot(const std::string&, const Tensor& t, const Tensor& p) const {
  if (!is_floating(t.dtype())) return "is " + std::string(dtype_name(t.dtype())) + ", expected a floating-point tensor";
  if (t.shape() != p.shape())
    return "has shape " + shape_str(t.shape()) + ", parameter has shape " + shape_str(p.shape());
  return "";
}

DType Optimizer::slot_dtype(const std::string&, const Tensor& param) const { return param.dtype(); }

double Optimizer::step(const Closure& closure) {
  double loss = closure();
  step();
  return loss;
}

void Optimizer::validate(const Options& o) const {
  if (std::string p = check_options(optimizer_def(type_), o); !p.empty())
    throw std::invalid_argument(type_ + ": " + p);
}

void Optimizer::zero_grad(bool set_to_none) {
  for (ParamGroup& g : groups_)
    for (Tensor& p : g.params) p.zero_grad(set_to_none);
}

OptimizerState Optimizer::state_dict() const {
  OptimizerState s;
  s.type = type_;
  s.defaults = defaults_;
  for (const ParamGroup& g : groups_) s.param_groups.push_back({g.names, g.options});
  s.state = state_;
  return s;
}

void Optimizer::load_state_dict(const OptimizerState& s) {
  if (s.type != type_)
    throw std::invalid_argument("optimizer state is for " + s.type + " but this optimizer is " + type_);
  if (s.param_groups.size() != groups_.size())
    throw std::invalid_argument("loaded optimizer state has " + std::to_string(s.param_groups.size()) +
                                " parameter groups, this optimizer has " + std::to_string(groups_.size()));
  std::map<std::string, const Tensor*> by_name;
  std::map<std::string, size_t> group_of;
  for (size_t gi = 0; gi < groups_.size(); ++gi) {
    const auto& want = groups_[gi].names;
    const auto& got = s.param_groups[gi].names;
    if (want.size() != got.size())
      throw std::invalid_argument("loaded state dict contains a parameter group that doesn't match the size "
                                  "of optimizer's group " + std::to_string(gi) + " (" +
                                  std::to_string(got.size()) + " vs " + std::to_string(want.size()) + ")");
    for (size_t i = 0; i < want.size(); ++i) {
      if (want[i] != got[i])
        throw std::invalid_argument("loaded optimizer state: group " + std::to_string(gi) + " parameter " +
                                    std::to_string(i) + " is '" + got[i] + "', expected '" + want[i] + "'");
      by_name[want[i]] = &groups_[gi].params[i];
      group_of[want[i]] = gi;
    }
    validate(s.param_groups[gi].options);
  }
  std::map<std::string, ParamState> restored;
  NoGradGuard ng;
  for (const auto& [name, ps] : s.state) {
    auto it = by_name.find(name);
    if (it == by_name.end())
      throw std::invalid_argument("loaded optimizer state has state for unknown parameter '" + name + "'");
    const Tensor& p = *it->second;
    if (ps.step < 0)
      throw std::invalid_argument("loaded optimizer state: " + name + " has step " + std::to_string(ps.step) +
                                  ", expected an integer >= 0");
    std::vector<std::string> want = slot_names(s.param_groups[group_of.at(name)].options);
    std::vector<std::string> got;
    for (const auto& [slot, t] : ps.slots)
      if (t.defined()) got.push_back(slot);
    std::sort(want.begin(), want.end());
    if (got != want) {
      auto list = [](const std::vector<std::string>& v) {
        std::string out;
        for (const auto& x : v) out += (out.empty() ? "" : ", ") + x;
        return out.empty() ? std::string("none") : out;
      };
      throw std::invalid_argument("loaded optimizer state: " + name + " has slots [" + list(got) + "], " + type_ +
                                  " with these options keeps [" + list(want) + "]");
    }
    ParamState out;
    out.step = ps.step;
    for (const auto& [slot, t] : ps.slots) {
      if (!t.defined()) continue;
      if (std::string problem = check_slot(slot, t, p); !problem.empty())
        throw std::invalid_argument("loaded optimizer state: " + name + "/" + slot + " " + problem);
      Tensor c = empty(t.shape(), p.options().with_dtype(slot_dtype(slot, p)));
      c.copy_(t.detach());
      out.slots[slot] = c;
    }
    restored[name] = std::move(out);
  }
  for (size_t gi = 0; gi < groups_.size(); ++gi) groups_[gi].options = s.param_groups[gi].options;
  state_ = std::move(restored);
}

// ---------------------------------------------------------------------------
// factory
// ---------------------------------------------------------------------------
std::unique_ptr<Optimizer> make_optimizer(const std::string& type, std::vector<ParamGroup> groups,
                                          const Options& options) {
  const OptimizerDef& def = optimizer_def(type);
  Options defaults = default_options(def);
  for (const auto& [k, v] : options) {
    if (!defaults.count(k)) {
      std::string valid;
      for (const auto& kv : defaults) valid += (valid.empty() ? "" : ", ") + kv.first;
      throw std::invalid_argument(def.torch_name + ": unknown option '" + k + "' (valid: " + valid + ")");
    }
    defaults[k] = v;
  }
  return def.make(std::move(groups), defaults);
}

std::unique_ptr<Optimizer> make_optimizer(const std::string& type, const NamedTensors& params,
                                          const Options& options) {
  return make_optimizer(type, std::vector<ParamGroup>{ParamGroup::from(params)}, options);
}

}  // namespace dl::optim
