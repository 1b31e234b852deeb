#include "engine/optim/registry.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <stdexcept>

#include "engine/graph/named_registry.h"

namespace dl::optim {
namespace {

NamedRegistry<OptimizerDef>& table() {
  static NamedRegistry<OptimizerDef> t("optimizer");
  return t;
}

// A double that converts to int64 exactly (no NaN, fraction or overflow).
bool is_integral(double v) {
  return std::isfinite(v) && v >= -9.2e18 && v <= 9.2e18 && v == std::trunc(v);
}

}  // namespace

RegisterOptimizer::RegisterOptimizer(OptimizerDef def) { table().add(std::move(def)); }

const std::vector<OptimizerDef>& optimizer_defs() { return table().all(); }

const OptimizerDef* find_optimizer_def(std::string_view name) { return table().find(name); }

std::vector<std::string> optimizer_names() { return table().names(); }

const OptimizerDef& optimizer_def(std::string_view name) { return table().get(name); }

Options to_options(const std::vector<AttrSchema>& hyper, const AttrMap& values) {
  Options o;
  for (const auto& [key, v] : values) {
    const AttrSchema* a = find_attr(hyper, key);
    if (!a) {
      std::string valid;
      for (const AttrSchema& s : hyper) valid += (valid.empty() ? "" : ", ") + s.name;
      throw std::invalid_argument("unknown option '" + key + "' (valid: " + valid + ")");
    }
    if (const auto* b = std::get_if<bool>(&v)) {
      o[key] = *b ? 1.0 : 0.0;
    } else if (const auto* i = std::get_if<int64_t>(&v)) {
      o[key] = static_cast<double>(*i);
    } else if (const auto* d = std::get_if<double>(&v)) {
      o[key] = *d;
    } else if (const auto* s = std::get_if<std::string>(&v)) {
      auto it = std::find(a->choices.begin(), a->choices.end(), *s);
      if (it == a->choices.end()) throw std::invalid_argument("option '" + key + "': '" + *s + "' is not a valid choice");
      o[key] = static_cast<double>(it - a->choices.begin());
    } else {
      std::vector<double> xs;
      if (const auto* fl = std::get_if<std::vector<double>>(&v)) xs = *fl;
      else for (int64_t x : std::get<std::vector<int64_t>>(v)) xs.push_back(static_cast<double>(x));
      if (a->components.size() != xs.size())
        throw std::invalid_argument("option '" + key + "' needs " + std::to_string(a->components.size()) +
                                    " values, got " + std::to_string(xs.size()));
      for (size_t k = 0; k < xs.size(); ++k) o[a->components[k]] = xs[k];
    }
  }
  return o;
}

AttrMap from_options(const std::vector<AttrSchema>& hyper, const Options& options) {
  AttrMap m;
  for (const AttrSchema& a : hyper) {
    if (!a.components.empty()) {
      std::vector<double> xs;
      for (const std::string& c : a.components) {
        auto it = options.find(c);
        if (it == options.end()) break;
        xs.push_back(it->second);
      }
      if (xs.size() == a.components.size()) m[a.name] = xs;
      continue;
    }
    auto it = options.find(a.name);
    if (it == options.end()) continue;
    const double v = it->second;
    switch (a.kind) {
      case AttrKind::Bool: m[a.name] = v != 0.0; break;
      case AttrKind::Int:
        if (is_integral(v)) m[a.name] = static_cast<int64_t>(v);  // else left out: check_options says why
        break;
      case AttrKind::String: {
        if (is_integral(v) && v >= 0 && v < static_cast<double>(a.choices.size()))
          m[a.name] = a.choices[static_cast<size_t>(v)];
        break;
      }
      default: m[a.name] = v; break;
    }
  }
  return m;
}

Options default_options(const OptimizerDef& def) {
  AttrMap m;
  fill_attr_defaults(def.hyper, m);
  return to_options(def.hyper, m);
}

std::string check_options(const OptimizerDef& def, const Options& options) {
  for (const auto& [key, v] : options) {
    if (key == "initial_lr") continue;
    bool known = false;
    for (const AttrSchema& a : def.hyper)
      known |= a.name == key || std::find(a.components.begin(), a.components.end(), key) != a.components.end();
    if (!known) {
      std::string valid;
      for (const AttrSchema& s : def.hyper) valid += (valid.empty() ? "" : ", ") + s.name;
      return "unknown option '" + key + "' (valid: " + valid + ")";
    }
    (void)v;
  }
  for (const AttrSchema& a : def.hyper) {
    auto it = options.find(a.name);
    if (it == options.end()) continue;
    if (a.kind == AttrKind::Bool && it->second != 0.0 && it->second != 1.0)
      return a.name + ": expected 0 or 1 (false/true), got " + option_str(it->second);
    if ((a.kind == AttrKind::Int || a.kind == AttrKind::String) && !is_integral(it->second))
      return a.name + ": expected an integer, got " + option_str(it->second);
  }
  AttrMap m = from_options(def.hyper, options);
  for (const AttrSchema& a : def.hyper) {
    auto it = m.find(a.name);
    if (it == m.end()) {
      if (a.required || a.default_value) return a.name + ": missing";
      continue;
    }
    if (std::string p = check_attr(a, it->second); !p.empty()) return a.name + ": " + p;
  }
  if (def.rule)
    if (std::string p = def.rule(m); !p.empty()) return p;
  return "";
}

}  // namespace dl::optim
