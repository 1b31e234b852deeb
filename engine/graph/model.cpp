#include "engine/graph/model.h"

#include <algorithm>
#include <cctype>
#include <optional>
#include <iomanip>
#include <map>
#include <sstream>
#include <stdexcept>

#include "engine/graph/fuse.h"
#include "engine/graph/layer_schema.h"
#include "engine/graph/layers/common.h"
#include "engine/ops.h"

namespace dl {
namespace {

using layers::fail;
using layers::layer_label;
using nn::ModulePtr;

std::string shapes_str(const std::vector<Shape>& shapes) {
  std::string s;
  for (const Shape& x : shapes) s += " " + shape_str(x);
  return s;
}

// The registration of `type` when it has a shape rule and a builder, else nullptr.
const LayerSchema* buildable(const std::string& type) {
  const LayerSchema* s = find_layer_schema(type);
  return s && s->shapes && s->build ? s : nullptr;
}

const LayerSchema& schema_of(const LayerSpec& spec) {
  const LayerSchema* s = buildable(spec.type);
  if (!s) fail(spec, "no builder for this layer type");
  return *s;
}

}  // namespace

bool has_layer_builder(const std::string& type) { return buildable(type) != nullptr; }

LayerShapes infer_layer_shapes(const LayerSpec& spec, const std::vector<Shape>& input_shapes) {
  const LayerSchema& schema = schema_of(spec);
  LayerShapes r;
  try {
    r = schema.shapes(spec, input_shapes);
  } catch (const ShapeOverflowError& e) {
    fail(spec, std::string(e.what()) + " for input shape(s)" + shapes_str(input_shapes) +
                   ": reduce the layer's sizes (or the input size)");
  }
  for (int64_t d : r.output)
    if (d <= 0)
      fail(spec, "output shape " + shape_str(r.output) + " is empty: the input" + shapes_str(input_shapes) +
                     " is too small for this layer");
  try {
    checked_numel(r.output);
    for (const auto& [name, shape] : r.params) checked_numel(shape);
  } catch (const ShapeOverflowError& e) {
    fail(spec, std::string(e.what()) + ": reduce the layer's sizes (or the input size)");
  }
  return r;
}

ModulePtr build_layer(const LayerSpec& spec, const std::vector<Shape>& input_shapes, Generator& gen) {
  infer_layer_shapes(spec, input_shapes);  // checks the inputs the builder relies on
  return schema_of(spec).build(spec, input_shapes, gen);
}

namespace {

// The model's nodes with their inputs resolved to values, their shapes inferred, and the
// output: everything but the modules, and nothing allocated.
struct ModelPlan {
  std::vector<NodeSummary> nodes;
  std::vector<std::vector<ValueRef>> inputs;
  ValueRef output;
  std::vector<bool> input_used;  // per model input
};

// "lstm.1" -> ("lstm", 1); nullopt unless the text ends in '.' and digits.
std::optional<std::pair<std::string, int>> split_element(const std::string& ref) {
  size_t dot = ref.rfind('.');
  if (dot == std::string::npos || dot == 0 || dot + 1 == ref.size() || ref.size() - dot > 4) return std::nullopt;
  for (size_t i = dot + 1; i < ref.size(); ++i)
    if (!std::isdigit(static_cast<unsigned char>(ref[i]))) return std::nullopt;
  return std::make_pair(ref.substr(0, dot), std::stoi(ref.substr(dot + 1)));
}

ModelPlan plan_model(const ModelSpec& spec, const std::vector<ModelInput>& model_inputs) {
  if (spec.nodes.empty()) throw GraphError("model has no layers");
  if (model_inputs.empty() || model_inputs[0].name != kModelInput)
    throw std::logic_error("plan_model: the first model input must be 'input'");
  ModelPlan plan;
  plan.input_used.assign(model_inputs.size(), false);
  std::map<std::string, int> node_index;  // node name -> index
  // A value by name: a model input, a node (element 0) or "node.k" (element k of its tuple).
  // nullopt when nothing has that name; the error text when the element does not exist.
  auto resolve = [&](const std::string& ref, std::string& error) -> std::optional<ValueRef> {
    for (size_t k = 0; k < model_inputs.size(); ++k)
      if (model_inputs[k].name == ref) return ValueRef{-1, static_cast<int>(k)};
    if (auto f = node_index.find(ref); f != node_index.end()) return ValueRef{f->second, 0};
    if (auto el = split_element(ref)) {
      if (auto f = node_index.find(el->first); f != node_index.end()) {
        const NodeSummary& n = plan.nodes[f->second];
        const int count = 1 + static_cast<int>(n.extra_outputs.size());
        if (el->second < count) return ValueRef{f->second, el->second};
        error = "'" + ref + "': node '" + el->first + "' (" + n.type + ") has " +
                (count == 1 ? std::string("one value (") + el->first + ")"
                            : std::to_string(count) + " values (" + el->first + ".0 to " + el->first + "." +
                                  std::to_string(count - 1) + ")");
      }
    }
    return std::nullopt;
  };
  auto shape_of = [&](ValueRef v) -> const Shape& {
    return v.node < 0 ? model_inputs[v.index].shape : plan.nodes[v.node].element_shape(v.index);
  };
  int64_t total_params = 0;
  for (const LayerSpec& ls : spec.nodes) {
    std::vector<Shape> in_shapes;
    std::vector<ValueRef> inputs;
    for (const std::string& in : ls.inputs) {
      std::string error;
      std::optional<ValueRef> v = resolve(in, error);
      if (!v) {
        if (!error.empty()) fail(ls, "input " + error);
        std::string names;
        for (const auto& mi : model_inputs) names += (names.empty() ? "" : ", ") + mi.name;
        fail(ls, "input '" + in + "' is not an earlier node nor a model input (" + names + ")");
      }
      if (v->node < 0) plan.input_used[v->index] = true;
      inputs.push_back(*v);
      in_shapes.push_back(shape_of(*v));
    }
    LayerShapes shapes = infer_layer_shapes(ls, in_shapes);
    NodeSummary sum{ls.name, ls.type, ls.inputs, shapes.output, 0, shapes.params, shapes.buffers,
                    shapes.extra_outputs};
    try {
      for (const auto& [name, shape] : shapes.params)
        sum.num_params = checked_add(sum.num_params, shape_numel(shape), "the layer's parameter count");
      total_params = checked_add(total_params, sum.num_params, "the model's parameter count");
    } catch (const ShapeOverflowError& e) {
      fail(ls, std::string(e.what()) + ": reduce the layer's sizes");
    }
    node_index[ls.name] = static_cast<int>(plan.nodes.size());
    plan.nodes.push_back(std::move(sum));
    plan.inputs.push_back(std::move(inputs));
  }
  std::string out_name = spec.output.empty() ? spec.nodes.back().name : spec.output;
  std::string error;
  std::optional<ValueRef> out = resolve(out_name, error);
  if (!out || out->node < 0)
    throw GraphError("model output '" + out_name + "' is not a node" + (error.empty() ? "" : ": " + error));
  plan.output = *out;
  return plan;
}

// A module that disagrees with its layer's shape rule is a bug in one of them: say which.
void check_against_rule(const LayerSpec& ls, nn::Module& m, const NodeSummary& rule, const TensorList& probed) {
  auto shapes_of = [](const nn::NamedTensors& ts) {
    NamedShapes out;
    for (const auto& [name, t] : ts) out.push_back({name, t.shape()});
    return out;
  };
  bool outputs_agree = probed.size() == 1 + rule.extra_outputs.size();
  for (size_t k = 0; outputs_agree && k < probed.size(); ++k)
    outputs_agree = Shape(probed[k].shape().begin() + 1, probed[k].shape().end()) ==
                    rule.element_shape(static_cast<int>(k));
  if (shapes_of(m.named_parameters(false)) != rule.params || shapes_of(m.named_buffers(false)) != rule.buffers ||
      !outputs_agree)
    throw std::logic_error(layer_label(ls) + ": the module's parameters, buffers or " +
                           std::to_string(probed.size()) + " output(s) (first " +
                           shape_str(probed.empty() ? Shape{} : probed[0].shape()) +
                           ") disagree with the layer type's shape rule (output " + shape_str(rule.output_shape) +
                           ", " + std::to_string(rule.extra_outputs.size()) + " more)");
}

std::vector<ModelInput> sample_input(const Shape& sample_shape) { return {ModelInput{std::string(kModelInput), sample_shape}}; }

// Holds the modules of dotted node names' prefixes ("layer1" and "layer1.0" for the node
// "layer1.0.conv1"), like the nn.Module attributes of a PyTorch model class.
class Block final : public nn::Module {
 public:
  std::string type_name() const override { return "Block"; }
};

}  // namespace

std::vector<NodeSummary> infer_model_shapes(const ModelSpec& spec, const Shape& sample_shape) {
  return plan_model(spec, sample_input(sample_shape)).nodes;
}

std::vector<NodeSummary> infer_model_shapes_of_inputs(const ModelSpec& spec, const std::vector<ModelInput>& inputs) {
  return plan_model(spec, inputs).nodes;
}

GraphModel::GraphModel(const ModelSpec& spec, const Shape& sample_shape, Generator& gen)
    : GraphModel(spec, gen, sample_input(sample_shape)) {}

GraphModel::GraphModel(const ModelSpec& spec, Generator& gen, const std::vector<ModelInput>& inputs) {
  ModelPlan plan = plan_model(spec, inputs);  // every shape check, before any allocation
  summary_ = plan.nodes;
  output_ = plan.output;
  // Keep the model inputs some node reads ("input" always); renumber the references.
  std::vector<int> renumber(inputs.size(), -1);
  for (size_t k = 0; k < inputs.size(); ++k)
    if (k == 0 || plan.input_used[k]) {
      renumber[k] = static_cast<int>(inputs_.size());
      inputs_.push_back(inputs[k]);
    }
  for (auto& refs : plan.inputs)
    for (ValueRef& v : refs)
      if (v.node < 0) v.index = renumber[v.index];
  // Each module is built, then run once on a zero batch of 1 (eval mode, no grad) to check it
  // against its shape rule.
  NoGradGuard no_grad;
  std::vector<TensorList> probe_values;
  TensorList probe_inputs;
  for (const ModelInput& mi : inputs_) {
    // Token indices: 0 is in every table. Lengths: 1 is valid for any padded length.
    const bool lengths = mi.name == kInputLengths;
    probe_inputs.push_back(lengths ? ones(layers::with_batch(mi.shape), mi.dtype)
                                   : zeros(layers::with_batch(mi.shape), mi.dtype));
  }
  for (size_t i = 0; i < spec.nodes.size(); ++i) {
    const LayerSpec& ls = spec.nodes[i];
    NodeRef ref{ls.name, ls.type, nullptr, plan.inputs[i]};
    std::vector<Shape> in_shapes;
    TensorList in_values;
    for (ValueRef v : ref.inputs) {
      in_shapes.push_back(value_shape(v));
      in_values.push_back(v.node < 0 ? probe_inputs[v.index] : probe_values[v.node][v.index]);
    }
    TensorList out;
    try {
      ref.module = schema_of(ls).build(ls, in_shapes, gen);
      ref.module->eval();
      out = ref.module->forward_tuple(in_values);
    } catch (const OutOfMemoryError& e) {
      throw e.with_context(layer_label(ls));
    } catch (const std::bad_alloc&) {
      throw OutOfMemoryError(layer_label(ls) + ": out of memory while building it");
    } catch (const std::logic_error& e) {  // an op refused what the shape rule let through
      fail(ls, "cannot be applied to input shape(s)" + shapes_str(in_shapes) + ": " + e.what());
    }
    check_against_rule(ls, *ref.module, summary_[i], out);
    probe_values.push_back(std::move(out));
    add_node_module(ls.name, ref.module);
    nodes_.push_back(ref);
  }
  last_use_.assign(nodes_.size(), -1);
  for (size_t i = 0; i < nodes_.size(); ++i)
    for (ValueRef v : nodes_[i].inputs)
      if (v.node >= 0) last_use_[v.node] = static_cast<int>(i);
  fuse_relu_ = plan_bn_relu_fusion(nodes_, output_);
  train(true);
}

void GraphModel::add_node_module(const std::string& name, const nn::ModulePtr& m) {
  size_t dot = name.find('.');
  if (dot == std::string::npos) {
    register_module(name, m);
    return;
  }
  // Walk (creating) the containers of the prefixes, then register under the last part.
  nn::Module* parent = this;
  size_t start = 0;
  while (dot != std::string::npos) {
    std::string part = name.substr(start, dot - start);
    nn::ModulePtr c = parent->child(part);
    if (!c) {
      c = parent->register_module(part, std::make_shared<Block>());
    }
    auto* as_block = dynamic_cast<Block*>(c.get());
    if (!as_block)
      throw GraphError("node '" + name + "': '" + name.substr(0, dot) +
                       "' is a layer, so no node can be named inside it; rename one of them");
    parent = as_block;
    start = dot + 1;
    dot = name.find('.', start);
  }
  parent->register_module(name.substr(start), m);
}

const Shape& GraphModel::value_shape(ValueRef v) const {
  return v.node < 0 ? inputs_.at(v.index).shape : summary_.at(v.node).element_shape(v.index);
}

Tensor GraphModel::forward(const Tensor& x) { return run({x}, {output_}).front(); }

Tensor GraphModel::forward(const TensorList& inputs) { return run(inputs, {output_}).front(); }

std::vector<Tensor> GraphModel::forward_nodes(const Tensor& x, const std::vector<std::string>& names) {
  return forward_nodes(TensorList{x}, names);
}

std::vector<Tensor> GraphModel::forward_nodes(const TensorList& inputs, const std::vector<std::string>& names) {
  std::vector<ValueRef> want;
  for (const std::string& name : names) {
    if (name.empty()) {
      want.push_back(output_);
      continue;
    }
    std::optional<ValueRef> found;
    for (size_t i = 0; i < nodes_.size() && !found; ++i)
      if (nodes_[i].name == name) found = ValueRef{static_cast<int>(i), 0};
    if (auto el = split_element(name); el && !found)
      for (size_t i = 0; i < nodes_.size() && !found; ++i)
        if (nodes_[i].name == el->first && el->second <= static_cast<int>(summary_[i].extra_outputs.size()))
          found = ValueRef{static_cast<int>(i), el->second};
    if (!found) throw std::invalid_argument("the model has no node '" + name + "'");
    want.push_back(*found);
  }
  return run(inputs, want);
}

std::vector<Tensor> GraphModel::run(const TensorList& inputs, const std::vector<ValueRef>& want) {
  if (inputs.size() != inputs_.size()) {
    std::string names;
    for (const auto& mi : inputs_) names += (names.empty() ? "" : ", ") + mi.name;
    throw std::invalid_argument("the model takes " + std::to_string(inputs_.size()) + " input(s) (" + names +
                                "), got " + std::to_string(inputs.size()));
  }
  std::vector<TensorList> values(nodes_.size());
  std::vector<bool> keep(nodes_.size(), false);
  int last = 0;
  for (ValueRef w : want) {
    keep[w.node] = true;
    last = std::max(last, w.node);
  }
  TensorList args;
  for (size_t i = 0; i <= static_cast<size_t>(last); ++i) {
    const NodeRef& n = nodes_[i];
    if (!values[i].empty()) continue;  // a ReLU already run fused with its batch norm
    args.clear();
    for (ValueRef v : n.inputs) args.push_back(v.node < 0 ? inputs[v.index] : values[v.node][v.index]);
    try {
      if (const int j = fuse_relu_[i]; j >= 0 && !keep[i])
        values[j] = {run_bn_relu(n, args.front())};  // node i's own value is never needed
      else
        values[i] = n.module->forward_tuple(args);
    } catch (const OutOfMemoryError& e) {
      throw e.with_context("layer '" + n.name + "' (" + n.type + ")");
    }
    // Drop values no later node reads (autograd keeps what backward needs).
    for (ValueRef v : n.inputs)
      if (v.node >= 0 && last_use_[v.node] == static_cast<int>(i) && !keep[v.node]) values[v.node].clear();
  }
  std::vector<Tensor> out;
  for (ValueRef w : want) out.push_back(values[w.node][w.index]);
  return out;
}

std::string format_summary(const GraphModel& model) { return format_summary(model.summary(), model.sample_shape()); }

std::string format_summary(const std::vector<NodeSummary>& summary, const Shape& sample_shape) {
  std::ostringstream os;
  size_t wn = 4, wt = 4;
  for (const auto& s : summary) {
    wn = std::max(wn, s.name.size());
    wt = std::max(wt, s.type.size());
  }
  os << std::left << std::setw(int(wn) + 2) << "Node" << std::setw(int(wt) + 2) << "Type"
     << std::setw(18) << "Output shape" << std::right << std::setw(12) << "Params" << "\n";
  os << std::string(wn + wt + 4 + 18 + 12, '-') << "\n";
  os << std::left << std::setw(int(wn) + 2) << "input" << std::setw(int(wt) + 2) << "-"
     << std::setw(18) << shape_str(sample_shape) << std::right << std::setw(12) << 0 << "\n";
  int64_t total = 0;
  for (const auto& s : summary) {
    os << std::left << std::setw(int(wn) + 2) << s.name << std::setw(int(wt) + 2) << s.type
       << std::setw(18) << shape_str(s.output_shape) << std::right << std::setw(12) << s.num_params << "\n";
    total += s.num_params;
  }
  os << std::string(wn + wt + 4 + 18 + 12, '-') << "\n";
  os << "Total parameters: " << total << "\n";
  return os.str();
}

}  // namespace dl
