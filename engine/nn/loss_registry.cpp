#include "engine/nn/loss_registry.h"

#include <algorithm>
#include <cctype>
#include <stdexcept>

#include "engine/graph/named_registry.h"

namespace dl::nn {
namespace {

NamedRegistry<LossDef>& table() {
  static NamedRegistry<LossDef> t("loss");
  return t;
}

}  // namespace

RegisterLoss::RegisterLoss(LossDef def) { table().add(std::move(def)); }

const std::vector<LossDef>& loss_defs() { return table().all(); }

const LossDef* find_loss_def(std::string_view name) { return table().find(name); }

const LossDef& loss_def(std::string_view name) { return table().get(name); }

std::vector<std::string> loss_names() { return table().names(); }

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
