// Model graph: builds a Module DAG from a ModelSpec (the `model:` section of a recipe).
//
// Nodes are evaluated in the order given; each reads the outputs of its `inputs` (the model
// input is called "input"). Layer input sizes are inferred from the sample shape: each layer
// type's registration (layer_schema.h) has a shape rule (output, parameter and buffer shapes
// from its input shapes) next to its builder, so a whole model's shapes and parameter count
// are known without allocating (infer_model_shapes); the builder then constructs each layer
// for its input shapes. Children are registered under the node names, so state_dict keys are
// "0.weight" for the `layers:` shorthand (like nn.Sequential) or "conv1.weight".
#pragma once
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/graph/layer_schema.h"
#include "engine/graph/spec.h"
#include "engine/nn/module.h"
#include "engine/ops/random.h"

namespace dl {

struct NodeSummary {
  std::string name;
  std::string type;
  std::vector<std::string> inputs;
  Shape output_shape;  // without the batch dim
  int64_t num_params = 0;
  NamedShapes params, buffers;
};

class GraphModel final : public nn::Module {
 public:
  // Throws GraphError (naming the node, its source location and the problem) when a layer
  // cannot be built for its input shapes.
  GraphModel(const ModelSpec& spec, const Shape& sample_shape, Generator& gen);

  Tensor forward(const Tensor& x) override;
  // The values of the named nodes ("" = the model's output) from one forward pass, e.g. the
  // embeddings a loss with several inputs reads (`loss.inputs:`). Nodes after the last one
  // asked for are not run. std::invalid_argument for an unknown name.
  std::vector<Tensor> forward_nodes(const Tensor& x, const std::vector<std::string>& names);
  std::string type_name() const override { return "GraphModel"; }

  const std::vector<NodeSummary>& summary() const { return summary_; }
  const Shape& output_shape() const { return summary_.back().output_shape; }
  const Shape& sample_shape() const { return sample_shape_; }
  // Per-node forward, for `dltool bench`: runs node i on its inputs' cached outputs.
  struct NodeRef {
    std::string name;
    std::string type;
    std::shared_ptr<nn::Module> module;
    std::vector<int> inputs;  // indices into the value table; -1 = model input
  };
  const std::vector<NodeRef>& nodes() const { return nodes_; }
  int output_index() const { return output_index_; }

 private:
  std::vector<Tensor> run(const Tensor& x, const std::vector<int>& want);
  std::vector<NodeRef> nodes_;
  std::vector<NodeSummary> summary_;
  Shape sample_shape_;
  int output_index_ = -1;
  std::vector<int> last_use_;  // per node: index of the last node reading its value
};

class GraphError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Shape inference without building anything: one summary per node (output shape, parameter
// and buffer shapes, parameter count) from the layer types' shape rules. Throws GraphError
// (node, source location, problem and fix) for inputs a layer cannot take, empty outputs and
// sizes that overflow int64. `dltool validate` and the memory estimate use it alone;
// GraphModel runs it before allocating and checks every module it builds against it.
std::vector<NodeSummary> infer_model_shapes(const ModelSpec& spec, const Shape& sample_shape);
// The shape rule of one layer (input shapes without the batch dim). Throws GraphError.
LayerShapes infer_layer_shapes(const LayerSpec& spec, const std::vector<Shape>& input_shapes);

// Builds one layer module for `spec` given its input shapes (without batch). Used by
// GraphModel; exposed for tests. Throws GraphError for unknown types or bad shapes.
std::shared_ptr<nn::Module> build_layer(const LayerSpec& spec, const std::vector<Shape>& input_shapes,
                                    Generator& gen);

// True when `type` is registered with a builder (every registered type must have one).
bool has_layer_builder(const std::string& type);

// "Node  Type  Output shape  Params" table with a total line.
std::string format_summary(const GraphModel& model);
std::string format_summary(const std::vector<NodeSummary>& summary, const Shape& sample_shape);

}  // namespace dl
