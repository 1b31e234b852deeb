// Layer schema registry: for every YAML layer type, its attributes (kind, default, allowed
// range or choices) and how many inputs it takes. configs/ validates `model:` against it,
// engine/graph builds from it, and configs/README.md's layer table is generated from it.
// Adding a layer type = one entry in the table in layer_schema.cpp (plus its module file):
//
//   {"dropout", "torch.nn.Dropout: zero inputs with probability p during training",
//    {AttrSchema::floating("p", 0.5).range(0.0, 1.0, /*max_open=*/true)
//         .describe("probability of an element to be zeroed")}},
//
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "engine/graph/attr_schema.h"
#include "engine/graph/spec.h"

namespace dl {

// One YAML layer type.
struct LayerSchema {
  static constexpr int kUnbounded = -1;

  std::string type;               // YAML name, snake_case of the PyTorch module: "max_pool2d"
  std::string doc;                // "torch.nn.MaxPool2d: ..." (one line)
  std::vector<AttrSchema> attrs;  // in PyTorch's argument order
  int min_inputs = 1;
  int max_inputs = 1;             // kUnbounded: any number >= min_inputs
  // Cross-attribute rule (e.g. groups divides out_channels); "" when fine, else the problem.
  std::function<std::string(const AttrMap&)> rule = nullptr;

  const AttrSchema* find_attr(std::string_view attr_name) const;
};

// ---- Registry -------------------------------------------------------------------------------
const std::vector<LayerSchema>& layer_schemas();            // in registration order
const LayerSchema* find_layer_schema(std::string_view type);  // nullptr when unknown
std::vector<std::string> layer_type_names();
// Adds a type at start-up (plugins, tests), before schemas are looked up: it may move the
// table, invalidating pointers from find_layer_schema. Throws std::invalid_argument when the
// type exists. unregister_layer_schema removes one (tests); false when it was not there.
void register_layer_schema(LayerSchema schema);
bool unregister_layer_schema(std::string_view type);

// ---- Layer attributes ------------------------------------------------------------------------
// "" when `n` inputs suit the layer type, else "add takes at least 2 inputs, got 1".
std::string check_input_count(const LayerSchema& schema, std::size_t n);
// For specs built in code: checks layer.type and layer.attrs against the registry, coerces
// values, fills defaults and checks the number of inputs and the layer's rule. Returns one
// line per problem ("kernel_size: required attribute is missing"); empty when the spec is fine.
std::vector<std::string> resolve_layer_attrs(LayerSpec& layer);

}  // namespace dl
