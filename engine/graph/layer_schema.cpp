#include "engine/graph/layer_schema.h"

#include <algorithm>
#include <stdexcept>

namespace dl {

const AttrSchema* LayerSchema::find_attr(std::string_view attr_name) const {
  for (const auto& a : attrs)
    if (a.name == attr_name) return &a;
  return nullptr;
}

namespace {

std::vector<LayerSchema>& registry() {
  static std::vector<LayerSchema> r;
  return r;
}

}  // namespace

const std::vector<LayerSchema>& layer_schemas() { return registry(); }

const LayerSchema* find_layer_schema(std::string_view type) {
  for (const auto& s : registry())
    if (s.type == type) return &s;
  return nullptr;
}

std::vector<std::string> layer_type_names() {
  std::vector<std::string> names;
  for (const auto& s : registry()) names.push_back(s.type);
  return names;
}

void register_layer_schema(LayerSchema schema) {
  if (find_layer_schema(schema.type))
    throw std::invalid_argument("layer type '" + schema.type + "' is already registered");
  // After the last type of its family or an earlier one: families in enum order, and within a
  // family the order of its file's registrations (static initialisers run in declaration order
  // within a translation unit; the order between files is unspecified).
  auto& r = registry();
  auto at = std::upper_bound(r.begin(), r.end(), schema.family,
                             [](LayerFamily f, const LayerSchema& s) { return f < s.family; });
  r.insert(at, std::move(schema));
}

RegisterLayer::RegisterLayer(LayerSchema schema) { register_layer_schema(std::move(schema)); }

bool unregister_layer_schema(std::string_view type) {
  auto& r = registry();
  auto it = std::find_if(r.begin(), r.end(), [&](const LayerSchema& s) { return s.type == type; });
  if (it == r.end()) return false;
  r.erase(it);
  return true;
}


std::string check_input_count(const LayerSchema& s, std::size_t n) {
  const auto count = static_cast<int64_t>(n);
  const bool unbounded = s.max_inputs == LayerSchema::kUnbounded;
  if (count >= s.min_inputs && (unbounded || count <= s.max_inputs)) return "";
  std::string want = s.min_inputs == s.max_inputs ? "exactly " + std::to_string(s.min_inputs)
                     : unbounded ? "at least " + std::to_string(s.min_inputs)
                                 : std::to_string(s.min_inputs) + " to " +
                                       std::to_string(s.max_inputs);
  return s.type + " takes " + want + (s.max_inputs == 1 ? " input" : " inputs") + ", got " +
         std::to_string(n);
}


std::vector<std::string> resolve_layer_attrs(LayerSpec& layer) {
  std::vector<std::string> problems;
  const LayerSchema* s = find_layer_schema(layer.type);
  if (!s) return {"unknown layer type '" + layer.type + "'"};
  for (auto& [key, value] : layer.attrs) {
    const AttrSchema* a = s->find_attr(key);
    if (!a) {
      problems.push_back(key + ": not an attribute of " + layer.type);
      continue;
    }
    std::string err = coerce_attr(*a, value) ? check_attr(*a, value)
                                             : "expected " + describe_expected(*a) + ", got " +
                                                   format_attr(value);
    if (!err.empty()) problems.push_back(key + ": " + err);
  }
  for (const auto& a : s->attrs)
    if (a.required && !layer.attrs.count(a.name))
      problems.push_back(a.name + ": required attribute is missing");
  fill_attr_defaults(s->attrs, layer.attrs);
  std::string inputs = check_input_count(*s, layer.inputs.size());
  if (!inputs.empty()) problems.push_back("inputs: " + inputs);
  if (problems.empty() && s->rule) {
    std::string err = s->rule(layer.attrs);
    if (!err.empty()) problems.push_back(err);
  }
  return problems;
}

}  // namespace dl
