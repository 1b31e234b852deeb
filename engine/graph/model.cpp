#include "engine/graph/model.h"

#include <algorithm>
#include <iomanip>
#include <map>
#include <sstream>
#include <stdexcept>

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

// The model's nodes with their inputs resolved to value indices (-1 = the model input), their
// shapes inferred, and the output node: everything but the modules, and nothing allocated.
struct ModelPlan {
  std::vector<NodeSummary> nodes;
  std::vector<std::vector<int>> inputs;
  int output = -1;
};

ModelPlan plan_model(const ModelSpec& spec, const Shape& sample_shape) {
  if (spec.nodes.empty()) throw GraphError("model has no layers");
  ModelPlan plan;
  std::map<std::string, int> index;  // node name -> value index
  int64_t total_params = 0;
  for (const LayerSpec& ls : spec.nodes) {
    std::vector<Shape> in_shapes;
    std::vector<int> inputs;
    for (const std::string& in : ls.inputs) {
      auto f = index.find(in);
      if (in == kModelInput) {
        inputs.push_back(-1);
        in_shapes.push_back(sample_shape);
      } else if (f != index.end()) {
        inputs.push_back(f->second);
        in_shapes.push_back(plan.nodes[f->second].output_shape);
      } else {
        fail(ls, "input '" + in + "' is not an earlier node");
      }
    }
    LayerShapes shapes = infer_layer_shapes(ls, in_shapes);
    NodeSummary sum{ls.name, ls.type, ls.inputs, shapes.output, 0, shapes.params, shapes.buffers};
    try {
      for (const auto& [name, shape] : shapes.params)
        sum.num_params = checked_add(sum.num_params, shape_numel(shape), "the layer's parameter count");
      total_params = checked_add(total_params, sum.num_params, "the model's parameter count");
    } catch (const ShapeOverflowError& e) {
      fail(ls, std::string(e.what()) + ": reduce the layer's sizes");
    }
    index[ls.name] = static_cast<int>(plan.nodes.size());
    plan.nodes.push_back(std::move(sum));
    plan.inputs.push_back(std::move(inputs));
  }
  std::string out_name = spec.output.empty() ? spec.nodes.back().name : spec.output;
  auto f = index.find(out_name);
  if (f == index.end()) throw GraphError("model output '" + out_name + "' is not a node");
  plan.output = f->second;
  return plan;
}

// A module that disagrees with its layer's shape rule is a bug in one of them: say which.
void check_against_rule(const LayerSpec& ls, nn::Module& m, const NodeSummary& rule, const Shape& probed) {
  auto shapes_of = [](const nn::NamedTensors& ts) {
    NamedShapes out;
    for (const auto& [name, t] : ts) out.push_back({name, t.shape()});
    return out;
  };
  if (shapes_of(m.named_parameters(false)) != rule.params || shapes_of(m.named_buffers(false)) != rule.buffers ||
      probed != rule.output_shape)
    throw std::logic_error(layer_label(ls) + ": the module's parameters, buffers or output " +
                           shape_str(probed) + " disagree with the layer type's shape rule (output " +
                           shape_str(rule.output_shape) + ")");
}

}  // namespace

std::vector<NodeSummary> infer_model_shapes(const ModelSpec& spec, const Shape& sample_shape) {
  return plan_model(spec, sample_shape).nodes;
}

GraphModel::GraphModel(const ModelSpec& spec, const Shape& sample_shape, Generator& gen)
    : sample_shape_(sample_shape) {
  ModelPlan plan = plan_model(spec, sample_shape);  // every shape check, before any allocation
  summary_ = plan.nodes;
  output_index_ = plan.output;
  // Each module is built, then run once on a zero batch of 1 (eval mode, no grad) to check it
  // against its shape rule.
  NoGradGuard no_grad;
  std::vector<Tensor> probe_values;
  Tensor probe_input = zeros(layers::with_batch(sample_shape));
  for (size_t i = 0; i < spec.nodes.size(); ++i) {
    const LayerSpec& ls = spec.nodes[i];
    NodeRef ref{ls.name, ls.type, nullptr, plan.inputs[i]};
    std::vector<Shape> in_shapes;
    TensorList in_values;
    for (int j : ref.inputs) {
      in_shapes.push_back(j < 0 ? sample_shape : summary_[j].output_shape);
      in_values.push_back(j < 0 ? probe_input : probe_values[j]);
    }
    Tensor out;
    try {
      ref.module = schema_of(ls).build(ls, in_shapes, gen);
      ref.module->eval();
      out = in_values.size() == 1 ? ref.module->forward(in_values[0]) : ref.module->forward(in_values);
    } catch (const OutOfMemoryError& e) {
      throw e.with_context(layer_label(ls));
    } catch (const std::bad_alloc&) {
      throw OutOfMemoryError(layer_label(ls) + ": out of memory while building it");
    } catch (const std::logic_error& e) {  // an op refused what the shape rule let through
      fail(ls, "cannot be applied to input shape(s)" + shapes_str(in_shapes) + ": " + e.what());
    }
    check_against_rule(ls, *ref.module, summary_[i], Shape(out.shape().begin() + 1, out.shape().end()));
    probe_values.push_back(out);
    register_module(ls.name, ref.module);
    nodes_.push_back(ref);
  }
  last_use_.assign(nodes_.size(), -1);
  for (size_t i = 0; i < nodes_.size(); ++i)
    for (int j : nodes_[i].inputs)
      if (j >= 0) last_use_[j] = static_cast<int>(i);
  train(true);
}

Tensor GraphModel::forward(const Tensor& x) { return run(x, {output_index_}).front(); }

std::vector<Tensor> GraphModel::forward_nodes(const Tensor& x, const std::vector<std::string>& names) {
  std::vector<int> want;
  for (const std::string& name : names) {
    if (name.empty()) {
      want.push_back(output_index_);
      continue;
    }
    int found = -1;
    for (size_t i = 0; i < nodes_.size(); ++i)
      if (nodes_[i].name == name) found = static_cast<int>(i);
    if (found < 0) throw std::invalid_argument("the model has no node '" + name + "'");
    want.push_back(found);
  }
  return run(x, want);
}

std::vector<Tensor> GraphModel::run(const Tensor& x, const std::vector<int>& want) {
  std::vector<Tensor> values(nodes_.size());
  std::vector<bool> keep(nodes_.size(), false);
  int last = 0;
  for (int w : want) {
    keep[w] = true;
    last = std::max(last, w);
  }
  TensorList args;
  for (size_t i = 0; i <= static_cast<size_t>(last); ++i) {
    const NodeRef& n = nodes_[i];
    if (n.inputs.size() == 1) {
      const Tensor& in = n.inputs[0] < 0 ? x : values[n.inputs[0]];
      values[i] = n.module->forward(in);
    } else {
      args.clear();
      for (int j : n.inputs) args.push_back(j < 0 ? x : values[j]);
      values[i] = n.module->forward(args);
    }
    // Drop values no later node reads (autograd keeps what backward needs).
    for (int j : n.inputs)
      if (j >= 0 && last_use_[j] == static_cast<int>(i) && !keep[j]) values[j] = Tensor();
  }
  std::vector<Tensor> out;
  for (int w : want) out.push_back(values[w]);
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
