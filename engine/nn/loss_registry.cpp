#include "engine/nn/loss_registry.h"

#include <algorithm>
#include <cctype>
#include <stdexcept>

namespace dl::nn {
namespace {

std::vector<LossDef>& table() {
  static std::vector<LossDef> t;
  return t;
}

std::string lower(std::string_view s) {
  std::string r(s);
  std::transform(r.begin(), r.end(), r.begin(), [](unsigned char c) { return std::tolower(c); });
  return r;
}

}  // namespace

RegisterLoss::RegisterLoss(LossDef def) {
  auto& t = table();
  for (const LossDef& d : t)
    if (lower(d.name) == lower(def.name)) throw std::logic_error("loss '" + def.name + "' registered twice");
  t.push_back(std::move(def));
  std::sort(t.begin(), t.end(), [](const LossDef& a, const LossDef& b) { return a.name < b.name; });
}

const std::vector<LossDef>& loss_defs() { return table(); }

const LossDef* find_loss_def(std::string_view name) {
  const std::string n = lower(name);
  for (const LossDef& d : table())
    if (lower(d.name) == n || lower(d.torch_name) == n) return &d;
  return nullptr;
}

const LossDef& loss_def(std::string_view name) {
  if (const LossDef* d = find_loss_def(name)) return *d;
  std::string valid;
  for (const LossDef& d : table()) valid += (valid.empty() ? "" : ", ") + d.name;
  throw std::invalid_argument("unknown loss '" + std::string(name) + "' (valid: " + valid + ")");
}

std::vector<std::string> loss_names() {
  std::vector<std::string> r;
  for (const LossDef& d : table()) r.push_back(d.name);
  return r;
}

LossFn make_loss(std::string_view name, const AttrMap& attrs_in) {
  const LossDef& def = loss_def(name);
  AttrMap attrs = attrs_in;
  for (const auto& [key, v] : attrs) {
    (void)v;
    if (!find_attr(def.attrs, key)) throw std::invalid_argument(def.name + ": unknown option '" + key + "'");
  }
  fill_attr_defaults(def.attrs, attrs);
  for (const AttrSchema& a : def.attrs) {
    auto it = attrs.find(a.name);
    if (it == attrs.end()) {
      if (a.required) throw std::invalid_argument(def.name + ": " + a.name + " is required");
      continue;
    }
    if (!coerce_attr(a, it->second)) throw std::invalid_argument(def.name + ": " + a.name + " has the wrong kind of value");
    if (std::string p = check_attr(a, it->second); !p.empty()) throw std::invalid_argument(def.name + ": " + a.name + ": " + p);
  }
  if (def.rule)
    if (std::string p = def.rule(attrs); !p.empty()) throw std::invalid_argument(def.name + ": " + p);
  return def.make(attrs);
}

AttrSchema reduction_attr() {
  return AttrSchema::choice("reduction", {"none", "mean", "sum"}, "mean")
      .describe("how per-element losses combine");
}

}  // namespace dl::nn
