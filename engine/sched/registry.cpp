#include "engine/sched/registry.h"

#include <algorithm>
#include <cctype>
#include <stdexcept>

#include "engine/graph/named_registry.h"

namespace dl::sched {
namespace {

NamedRegistry<SchedulerDef>& table() {
  static NamedRegistry<SchedulerDef> t("scheduler");
  return t;
}

}  // namespace

RegisterScheduler::RegisterScheduler(SchedulerDef def) { table().add(std::move(def)); }

const std::vector<SchedulerDef>& scheduler_defs() { return table().all(); }

const SchedulerDef* find_scheduler_def(std::string_view name) { return table().find(name); }

std::vector<std::string> scheduler_names() { return table().names(); }

const SchedulerDef& scheduler_def(std::string_view name) { return table().get(name); }

std::string strictly_increasing(const AttrMap& m, const std::string& key) {
  const auto& v = attr_ints(m, key);
  for (size_t i = 1; i < v.size(); ++i)
    if (v[i] <= v[i - 1])
      return key + ": expected strictly increasing values, got " + std::to_string(v[i - 1]) + " then " +
             std::to_string(v[i]);
  return "";
}

std::unique_ptr<LRScheduler> make_scheduler(optim::Optimizer& opt, const SchedulerConfig& c,
                                            const SchedulerContext& ctx) {
  const SchedulerDef& def = scheduler_def(c.type);
  SchedulerConfig full = c;
  full.type = def.name;
  if (std::string p = resolve_attrs(def.attrs, full.attrs, "attribute", def.rule); !p.empty())
    throw std::invalid_argument(def.name + ": " + p);
  if (!def.takes_children && !full.children.empty())
    throw std::invalid_argument(def.name + " takes no `schedulers:` list");
  if (!def.make) return nullptr;  // "none"
  return def.make(opt, full, ctx);
}

}  // namespace dl::sched
