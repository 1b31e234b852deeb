#include "engine/sched/registry.h"

#include <algorithm>
#include <cctype>
#include <stdexcept>

namespace dl::sched {
namespace {

std::vector<SchedulerDef>& table() {
  static std::vector<SchedulerDef> t;
  return t;
}

std::string lower(std::string_view s) {
  std::string r(s);
  std::transform(r.begin(), r.end(), r.begin(), [](unsigned char c) { return std::tolower(c); });
  return r;
}

}  // namespace

RegisterScheduler::RegisterScheduler(SchedulerDef def) {
  auto& t = table();
  for (const SchedulerDef& d : t)
    if (lower(d.name) == lower(def.name)) throw std::logic_error("scheduler '" + def.name + "' registered twice");
  t.push_back(std::move(def));
  std::sort(t.begin(), t.end(), [](const SchedulerDef& a, const SchedulerDef& b) { return a.name < b.name; });
}

const std::vector<SchedulerDef>& scheduler_defs() { return table(); }

const SchedulerDef* find_scheduler_def(std::string_view name) {
  const std::string n = lower(name);
  for (const SchedulerDef& d : table())
    if (lower(d.name) == n || lower(d.torch_name) == n) return &d;
  return nullptr;
}

std::vector<std::string> scheduler_names() {
  std::vector<std::string> r;
  for (const SchedulerDef& d : table()) r.push_back(d.name);
  return r;
}

const SchedulerDef& scheduler_def(std::string_view name) {
  if (const SchedulerDef* d = find_scheduler_def(name)) return *d;
  std::string valid;
  for (const SchedulerDef& d : table()) valid += (valid.empty() ? "" : ", ") + d.name;
  throw std::invalid_argument("unknown scheduler '" + std::string(name) + "' (valid: " + valid + ")");
}

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
  for (const auto& [key, v] : full.attrs) {
    (void)v;
    if (!find_attr(def.attrs, key))
      throw std::invalid_argument(def.name + ": unknown attribute '" + key + "'");
  }
  fill_attr_defaults(def.attrs, full.attrs);
  for (const AttrSchema& a : def.attrs) {
    auto it = full.attrs.find(a.name);
    if (it == full.attrs.end()) {
      if (a.required) throw std::invalid_argument(def.name + ": " + a.name + " is required");
      continue;
    }
    if (!coerce_attr(a, it->second)) throw std::invalid_argument(def.name + ": " + a.name + " has the wrong kind of value");
    if (std::string p = check_attr(a, it->second); !p.empty()) {
      if (std::string why = a.rule ? a.rule(it->second) : ""; !why.empty()) p += " (" + why + ")";
      throw std::invalid_argument(def.name + ": " + a.name + ": " + p);
    }
  }
  if (def.rule)
    if (std::string p = def.rule(full.attrs); !p.empty()) throw std::invalid_argument(def.name + ": " + p);
  if (!def.takes_children && !full.children.empty())
    throw std::invalid_argument(def.name + " takes no `schedulers:` list");
  if (!def.make) return nullptr;  // "none"
  return def.make(opt, full, ctx);
}

}  // namespace dl::sched
