// The ONNX half of a layer registration (layer_schema.h), written without ONNX: a layer type's
// mapping adds nodes and initializers through OnnxGraph, which exporters/onnx_export.cpp
// implements with ONNX's protobuf (the engine links no protobuf). A mapping for a layer that is
// one ONNX operator:
//
//   .onnx = [](OnnxGraph& g, const OnnxLayer& io) {
//     g.node("LeakyRelu", io.inputs, io.output, io.spec.name,
//            {{"alpha", static_cast<float>(io.spec.get_float("negative_slope"))}});
//   },
//
// Value names: the layer's node writes `io.output`; helper nodes and constants are named
// `io.sub("step")` ("fc/weight_t"); weights are initializers under their state_dict key
// (g.weight(io, "bias") -> "fc.bias"). Attributes are written in the order given. A mapping
// that cannot express a configuration calls io.refuse("why, and what to change"), which the
// exporter reports as "cannot export node 'fc' (type linear) at ONNX opset 17: why".
#pragma once
#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>
#include <variant>
#include <vector>

#include "engine/graph/spec.h"
#include "engine/nn/module.h"

namespace dl {

// A node attribute: ONNX's INT, FLOAT, INTS, STRING ({"mode", "linear"}) or STRINGS
// ({"activations", std::vector<std::string>{"Relu"}}).
struct OnnxAttr {
  std::string name;
  std::variant<int64_t, float, std::vector<int64_t>, std::string, std::vector<std::string>> value;
};

// A configuration the layer's mapping cannot express (OnnxLayer::refuse).
class OnnxUnmappable : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// What a mapping sees of the layer it exports.
struct OnnxLayer {
  const LayerSpec& spec;            // resolved attributes
  const nn::Module& module;         // the weights
  std::vector<std::string> inputs;  // ONNX value names of the layer's inputs
  std::vector<Shape> in_shapes;     // per sample (no batch dim)
  Shape out_shape;                  // per sample
  std::string output;               // the value name this layer must produce
  int64_t opset;
  // Tuple-valued layers (LayerShapes::extra_outputs): the value names of elements 1.., which
  // the mapping must produce too ("lstm.1", "lstm.2").
  std::vector<std::string> extra_outputs = {};

  // "<layer>/<step>": the name of a helper node, its value or a constant.
  std::string sub(const std::string& step) const { return spec.name + "/" + step; }
  // Rank of the first input with the batch dim.
  int64_t rank() const { return 1 + static_cast<int64_t>(in_shapes.at(0).size()); }
  // `dim` of a batched input as a non-negative ONNX axis; refuses one out of range.
  int64_t axis(int64_t dim) const;
  // Throws OnnxUnmappable naming the node, its type, the opset and `why`.
  [[noreturn]] void refuse(const std::string& why) const;
};

// The graph being written.
class OnnxGraph {
 public:
  virtual ~OnnxGraph() = default;
  // Adds the node `name`: op(inputs) -> output. A value name used twice is an export error.
  virtual void node(const std::string& op, const std::vector<std::string>& inputs, const std::string& output,
                    const std::string& name, const std::vector<OnnxAttr>& attrs = {}) = 0;
  // A node of several outputs (LSTM: Y, Y_h, Y_c); "" leaves an optional output out.
  virtual void node(const std::string& op, const std::vector<std::string>& inputs,
                    const std::vector<std::string>& outputs, const std::string& name,
                    const std::vector<OnnxAttr>& attrs = {}) = 0;
  // Adds an initializer holding `t` (float32 or int64, contiguous, on the CPU); returns `name`.
  virtual std::string initializer(const std::string& name, const Tensor& t) = 0;

  // The layer's state_dict tensor `key` as a float32 initializer named "<layer>.<key>".
  std::string weight(const OnnxLayer& io, const std::string& key);
  std::string floats(const std::string& name, const std::vector<float>& v, const Shape& shape);
  std::string ints(const std::string& name, const std::vector<int64_t>& v);  // 1-d
  std::string scalar(const std::string& name, float v);                     // 0-d float
  // The layer as the single operator `op` on its inputs.
  void op(const OnnxLayer& io, const std::string& op_type, const std::vector<OnnxAttr>& attrs = {}) {
    node(op_type, io.inputs, io.output, io.spec.name, attrs);
  }
};

using OnnxMapping = std::function<void(OnnxGraph&, const OnnxLayer&)>;

}  // namespace dl
