// The model as data: what the YAML `model:` section becomes after validation, and what
// engine/graph builds modules from. Plain C++ — no YAML types — so the engine can also build a
// model from a spec written in code (tests, benchmarks):
//
//   dl::ModelSpec m;                                     // nn.Sequential(Linear(.., 10), ReLU())
//   m.nodes.push_back({"0", "linear", {"input"}, {{"out_features", int64_t{10}}}, {}});
//   m.nodes.push_back({"1", "relu", {"0"}, {}, {}});
//   m.output = "1";
//   auto problems = dl::resolve_layer_attrs(m.nodes[0]);  // fills defaults (layer_schema.h)
//
// A spec that came out of configs/ is already resolved: every attribute of the layer type is
// present (defaults filled), numbers have their schema kind (a Float attribute written as `1`
// holds the double 1.0) and pair attributes (kernel_size: 5) hold a 2-list ([5, 5]).
// Attribute names, meanings and defaults are PyTorch's; see layer_schema.h (the registry) and
// engine/graph/layers/ (one registration per layer type).
#pragma once
#include <array>
#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace dl {

// Where a value was written. line/col are 1-based; line 0 means "no position" (e.g. a value
// that came from a command-line override, whose `file` is "<override 1: train.epochs=3>").
struct SourceLoc {
  std::string file;
  int line = 0;
  int col = 0;

  std::string str() const {  // "recipes/lenet.yaml:12:7", or just the file when line == 0
    if (line <= 0) return file;
    return file + ":" + std::to_string(line) + ":" + std::to_string(col);
  }
  bool operator==(const SourceLoc&) const = default;
};

// One attribute value. The schema (layer_schema.h) says which alternative an attribute holds.
using AttrValue = std::variant<bool, int64_t, double, std::string, std::vector<int64_t>, std::vector<double>,
                               std::vector<std::string>>;
using AttrMap = std::map<std::string, AttrValue>;

// Name of the model's input in `inputs:` lists: the batch the data loader yields.
inline constexpr std::string_view kModelInput = "input";
// The lengths of padded sequences in the input (collate adds it to a batch of ragged samples):
// a second model input, e.g. for an LSTM's packed sequences (`inputs: [input, input_lengths]`).
inline constexpr std::string_view kInputLengths = "input_lengths";
// What an integer layer attribute holds when a recipe writes `num_classes` for it (linear's
// out_features, embedding's num_embeddings; an AttrSchema keyword): the data's number of
// classes (a text corpus's vocabulary size), which the app fills in before the model's shapes
// are inferred. No shape rule sees it.
inline constexpr std::string_view kNumClassesWord = "num_classes";
inline constexpr int64_t kNumClassesAttr = -(int64_t{1} << 40);

// One node of the model DAG: PyTorch's module name, its layer type and attributes.
struct LayerSpec {
  std::string name;                 // state_dict prefix: "0", "fc" -> "fc.weight"
  std::string type;                 // layer registry key: "conv2d", "relu", "add", ...
  std::vector<std::string> inputs;  // earlier node names or "input"; order matters (concat)
  AttrMap attrs;                    // attribute name -> value (resolved: defaults filled)
  SourceLoc loc;                    // where the node was written (for build-time errors)

  bool has(const std::string& key) const { return attrs.count(key) != 0; }

  // Typed access to a resolved attribute; throws std::logic_error naming the layer when the
  // attribute is missing or holds another kind (a schema/builder mismatch, i.e. a bug).
  template <class T>
  const T& attr(const std::string& key) const {
    auto it = attrs.find(key);
    if (it == attrs.end())
      throw std::logic_error("layer '" + name + "' (" + type + ") has no attribute '" + key + "'");
    if (const T* v = std::get_if<T>(&it->second)) return *v;
    throw std::logic_error("layer '" + name + "' (" + type + "): attribute '" + key +
                           "' holds another kind of value");
  }
  int64_t get_int(const std::string& key) const { return attr<int64_t>(key); }
  double get_float(const std::string& key) const { return attr<double>(key); }
  bool get_bool(const std::string& key) const { return attr<bool>(key); }
  const std::string& get_string(const std::string& key) const { return attr<std::string>(key); }
  // A pair attribute (kernel_size, stride, padding, ...) as (height, width).
  std::array<int64_t, 2> get_pair(const std::string& key) const {
    const auto& v = attr<std::vector<int64_t>>(key);
    if (v.size() != 2)
      throw std::logic_error("layer '" + name + "': attribute '" + key + "' is not a pair");
    return {v[0], v[1]};
  }

  // Equality compares the value, not where it was written (loc is ignored), so a config and
  // its resolved-YAML round trip compare equal.
  bool operator==(const LayerSpec& o) const {
    return name == o.name && type == o.type && inputs == o.inputs && attrs == o.attrs;
  }
};

// The whole model: nodes in topological order (every input names an earlier node or "input").
struct ModelSpec {
  std::vector<LayerSpec> nodes;
  std::string output;      // the node whose value the model returns (default: the last one)
  bool sequential = true;  // written as `layers:` (nn.Sequential), not as `nodes:`

  const LayerSpec* find(std::string_view node_name) const {
    for (const auto& n : nodes)
      if (n.name == node_name) return &n;
    return nullptr;
  }
  bool operator==(const ModelSpec&) const = default;
};

}  // namespace dl
