// Model graph: builds a Module DAG from a ModelSpec (the `model:` section of a recipe).
//
// Nodes are evaluated in the order given; each reads the values of its `inputs`: earlier nodes
// or the model's inputs, tensors of the batch by name ("input", and e.g. "input_lengths" that
// collate adds to padded sequences). A node's value is a tuple: one tensor for most layers,
// several for tuple-valued ones (an LSTM's output, h_n, c_n); `lstm` names element 0 and
// `lstm.1` element 1. Every value is batch-first. Layer input sizes are inferred from the
// sample shapes: each layer type's registration (layer_schema.h) has a shape rule (output,
// parameter and buffer shapes from its input shapes) next to its builder, so a whole model's
// shapes and parameter count are known without allocating (infer_model_shapes); the builder
// then constructs each layer for its input shapes. Children are registered under the node
// names, so state_dict keys are "0.weight" for the `layers:` shorthand (like nn.Sequential) or
// "conv1.weight"; a dotted node name ("layer1.0.conv1", from a recipe's `blocks:`) nests the
// module in containers named by its prefixes, as PyTorch's submodules are.
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
  std::vector<Shape> extra_outputs = {};  // tuple elements 1.. (LayerShapes::extra_outputs)

  // Per-sample shape of tuple element `k` (0 = output_shape).
  const Shape& element_shape(int k) const { return k == 0 ? output_shape : extra_outputs.at(k - 1); }
};

// One input of the model: a tensor of the batch, by name, with its per-sample shape and dtype.
struct ModelInput {
  std::string name = std::string(kModelInput);
  Shape shape;
  DType dtype = DType::F32;
};

// Where a node reads a value: element `index` of node `node`'s tuple, or, with node == -1,
// model input `index`.
struct ValueRef {
  int node = -1;
  int index = 0;
  bool operator==(const ValueRef&) const = default;
};

class GraphModel final : public nn::Module {
 public:
  // Throws GraphError (naming the node, its source location and the problem) when a layer
  // cannot be built for its input shapes.
  GraphModel(const ModelSpec& spec, const Shape& sample_shape, Generator& gen);
  // Several model inputs (inputs[0] is the sample, "input"); the ones no node reads are dropped.
  // (The generator comes second so that a braced shape, GraphModel(spec, {4}, gen), is never
  // read as a list of inputs.)
  GraphModel(const ModelSpec& spec, Generator& gen, const std::vector<ModelInput>& inputs);

  Tensor forward(const Tensor& x) override;
  // Inputs in the order of model_inputs().
  Tensor forward(const TensorList& inputs) override;
  // The values of the named nodes ("" = the model's output) from one forward pass, e.g. the
  // embeddings a loss with several inputs reads (`loss.inputs:`). Nodes after the last one
  // asked for are not run. std::invalid_argument for an unknown name.
  std::vector<Tensor> forward_nodes(const Tensor& x, const std::vector<std::string>& names);
  std::vector<Tensor> forward_nodes(const TensorList& inputs, const std::vector<std::string>& names);
  // The model inputs its nodes read, "input" first: what forward(TensorList) takes.
  const std::vector<ModelInput>& model_inputs() const { return inputs_; }
  std::string type_name() const override { return "GraphModel"; }

  const std::vector<NodeSummary>& summary() const { return summary_; }
  const Shape& output_shape() const { return summary_[output_.node].element_shape(output_.index); }
  const Shape& sample_shape() const { return inputs_.front().shape; }
  // Per-sample shape of a value (a node's tuple element or a model input).
  const Shape& value_shape(ValueRef v) const;
  // Per-node forward, for `dltool bench`: runs node i on its inputs' cached outputs.
  struct NodeRef {
    std::string name;
    std::string type;
    std::shared_ptr<nn::Module> module;
    std::vector<ValueRef> inputs;
  };
  const std::vector<NodeRef>& nodes() const { return nodes_; }
  // The model's output: a node's tuple element.
  ValueRef output() const { return output_; }
  int output_index() const { return output_.node; }

 private:
  std::vector<Tensor> run(const TensorList& inputs, const std::vector<ValueRef>& want);
  void add_node_module(const std::string& name, const nn::ModulePtr& m);
  std::vector<NodeRef> nodes_;
  std::vector<NodeSummary> summary_;
  std::vector<ModelInput> inputs_;
  ValueRef output_;
  std::vector<int> last_use_;  // per node: index of the last node reading its value
  std::vector<int> fuse_relu_;  // per node: the ReLU node it runs fused with, or -1 (fuse.h)
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
std::vector<NodeSummary> infer_model_shapes_of_inputs(const ModelSpec& spec, const std::vector<ModelInput>& inputs);
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
