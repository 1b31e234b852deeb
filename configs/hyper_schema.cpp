// find_hyper_schema: the optimizer/scheduler tables of schema.cpp looked up by name, for code
// outside configs/ that must apply the config's rules to values from elsewhere (a checkpoint).
#include "configs/detail.h"

namespace dl {

namespace {
template <class E>
const AttrSchema* find_in(const std::vector<E>& types, const std::string& type, const std::string& key) {
  const E* e = config_detail::find_type(types, type);
  if (!e) return nullptr;
  for (const auto& f : e->fields)
    if (f.attr.name == key) return &f.attr;
  return nullptr;
}
}  // namespace

const AttrSchema* find_hyper_schema(const std::string& section, const std::string& type, const std::string& key) {
  if (section == "optimizer") return find_in(config_detail::optimizer_types(), type, key);
  if (section == "scheduler") return find_in(config_detail::scheduler_types(), type, key);
  return nullptr;
}

}  // namespace dl
