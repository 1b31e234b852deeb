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
  if (std::string p = resolve_attrs(def.attrs, attrs, "option", def.rule); !p.empty())
    throw std::invalid_argument(def.name + ": " + p);
  return def.make(attrs);
}

AttrSchema reduction_attr() {
  return AttrSchema::choice("reduction", {"none", "mean", "sum"}, "mean")
      .describe("how per-element losses combine");
}

}  // namespace dl::nn
