// The table behind the optimizer, scheduler and loss registries: definitions with a YAML
// `name` and a `torch_name`, filled by static registrations, sorted by name, looked up by
// either name case-insensitively ("adamw", "AdamW").
#pragma once
#include <algorithm>
#include <cctype>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace dl {

template <class Def>
class NamedRegistry {
 public:
  explicit NamedRegistry(const char* what) : what_(what) {}

  // std::logic_error when the name, or a non-empty torch name, is already registered.
  void add(Def def) {
    for (const Def& d : defs_)
      if (lower(d.name) == lower(def.name) || (!def.torch_name.empty() && lower(d.torch_name) == lower(def.torch_name)))
        throw std::logic_error(what_ + " '" + def.name + "' registered twice");
    defs_.push_back(std::move(def));
    std::sort(defs_.begin(), defs_.end(), [](const Def& a, const Def& b) { return a.name < b.name; });
  }
  const std::vector<Def>& all() const { return defs_; }
  const Def* find(std::string_view name) const {
    const std::string n = lower(name);
    for (const Def& d : defs_)
      if (lower(d.name) == n || lower(d.torch_name) == n) return &d;
    return nullptr;
  }
  // std::invalid_argument listing the valid names when unknown.
  const Def& get(std::string_view name) const {
    if (const Def* d = find(name)) return *d;
    throw std::invalid_argument("unknown " + what_ + " '" + std::string(name) + "' (valid: " + joined_names() + ")");
  }
  std::vector<std::string> names() const {
    std::vector<std::string> r;
    for (const Def& d : defs_) r.push_back(d.name);
    return r;
  }

 private:
  static std::string lower(std::string_view s) {
    std::string r(s);
    std::transform(r.begin(), r.end(), r.begin(), [](unsigned char c) { return std::tolower(c); });
    return r;
  }
  std::string joined_names() const {
    std::string valid;
    for (const Def& d : defs_) valid += (valid.empty() ? "" : ", ") + d.name;
    return valid;
  }

  std::string what_;
  std::vector<Def> defs_;
};

}  // namespace dl
