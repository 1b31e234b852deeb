#include "engine/graph/model.h"

#include <functional>
#include <iomanip>
#include <map>
#include <sstream>

#include "engine/graph/layer_schema.h"
#include "engine/nn/nn.h"
#include "engine/ops.h"

namespace dl {
namespace {

using nn::ModulePtr;

// Builds one layer from its resolved spec and input shapes (without the batch dim).
using LayerBuilder = std::function<ModulePtr(const LayerSpec&, const std::vector<Shape>&, Generator&)>;

// "recipe.yaml:9:7: layer 'fc' (linear)": how errors name a node.
std::string layer_label(const LayerSpec& s) {
  return (s.loc.line > 0 ? s.loc.str() + ": " : "") + "layer '" + s.name + "' (" + s.type + ")";
}

[[noreturn]] void fail(const LayerSpec& s, const std::string& what) { throw GraphError(layer_label(s) + ": " + what); }

const Shape& single(const LayerSpec& s, const std::vector<Shape>& in) {
  if (in.size() != 1) fail(s, "expects exactly one input, got " + std::to_string(in.size()));
  return in[0];
}

// Requires an image-like input [C, H, W]; names the fix.
const Shape& image_input(const LayerSpec& s, const std::vector<Shape>& in) {
  const Shape& x = single(s, in);
  if (x.size() != 3)
    fail(s, "expects an input of shape [C, H, W] per sample, got " + shape_str(x) +
                (x.size() == 1 ? " (a flatten layer comes before it?)" : ""));
  return x;
}

nn::Size2 size2(const LayerSpec& s, const char* key) {
  auto p = s.get_pair(key);
  return nn::Size2(p[0], p[1]);
}

template <class M, class... Args>
ModulePtr make(Args&&... args) {
  return std::make_shared<M>(std::forward<Args>(args)...);
}

Shape with_batch(const Shape& x) {
  Shape b{1};
  b.insert(b.end(), x.begin(), x.end());
  return b;
}

// Output [C, oh, ow] of a 2-d window layer from the per-dim output size rule `size(dim, i)`.
template <class F>
Shape window_output(const LayerSpec& s, const Shape& x, int64_t channels, F size) {
  Shape out{channels, size(x[1], 0), size(x[2], 1)};
  if (out[1] <= 0 || out[2] <= 0)
    fail(s, "the input " + shape_str(x) + " is too small for kernel_size " + format_attr(s.attrs.at("kernel_size")) +
                ", padding " + format_attr(s.attrs.at("padding")) +
                (s.has("dilation") ? ", dilation " + format_attr(s.attrs.at("dilation")) : std::string()) +
                ": the output " + shape_str(out) + " would be empty");
  return out;
}

LayerShapes same_shape(const LayerSpec& s, const std::vector<Shape>& in) { return {single(s, in), {}, {}}; }

LayerShapes weight_bias(Shape output, Shape weight, bool bias) {
  LayerShapes r{std::move(output), {{"weight", weight}}, {}};
  if (bias) r.params.push_back({"bias", {weight[0]}});
  return r;
}

LayerShapes batch_norm_shapes(const LayerSpec& s, const Shape& x) {
  LayerShapes r{x, {}, {}};
  const int64_t c = x[0];
  if (s.get_bool("affine")) r.params = {{"weight", {c}}, {"bias", {c}}};
  if (s.get_bool("track_running_stats"))
    r.buffers = {{"running_mean", {c}}, {"running_var", {c}}, {"num_batches_tracked", {}}};
  return r;
}

LayerShapes pool_shapes(const LayerSpec& s, const std::vector<Shape>& in) {
  const Shape& x = image_input(s, in);
  auto k = s.get_pair("kernel_size"), st = s.get_pair("stride"), p = s.get_pair("padding");
  const bool ceil_mode = s.get_bool("ceil_mode");
  return {window_output(s, x, x[0], [&](int64_t size, int i) { return pool_out_size(size, k[i], p[i], st[i], ceil_mode); }),
          {}, {}};
}

LayerShapes softmax_shapes(const LayerSpec& s, const std::vector<Shape>& in) {
  const Shape& x = single(s, in);
  try {
    wrap_dim(s.get_int("dim"), static_cast<int64_t>(x.size()) + 1, "dim");
  } catch (const std::out_of_range& e) {
    fail(s, std::string(e.what()) + " (the input per sample is " + shape_str(x) + ", plus the batch dim)");
  }
  return {x, {}, {}};
}

std::string shapes_str(const std::vector<Shape>& shapes) {
  std::string s;
  for (const Shape& x : shapes) s += " " + shape_str(x);
  return s;
}

// A layer type: its shape rule and its builder, side by side so they cannot drift apart (the
// graph checks every built module against its rule). The rule checks the input shapes (the
// builder may rely on them) and allocates nothing: `dltool validate` and the memory estimate
// use it alone.
using ShapeRule = std::function<LayerShapes(const LayerSpec&, const std::vector<Shape>&)>;
struct LayerRule {
  ShapeRule shapes;
  LayerBuilder build;
};

LayerRule elementwise(std::function<ModulePtr(const LayerSpec&)> make_module) {
  return {same_shape, [make_module](const LayerSpec& s, const std::vector<Shape>&, Generator&) {
            return make_module(s);
          }};
}

// The layer registry: YAML type -> shape rule + builder. A new layer type is one entry here
// plus its entry in engine/graph/layer_schema.cpp (attributes) and its module in engine/nn/.
const std::map<std::string, LayerRule>& rules() {
  static const std::map<std::string, LayerRule> table = {
      {"linear",
       {[](const LayerSpec& s, const std::vector<Shape>& in) {
          Shape out = single(s, in);
          if (out.empty()) fail(s, "expects at least a 1-d input per sample");
          const int64_t in_features = out.back();
          out.back() = s.get_int("out_features");
          return weight_bias(out, {out.back(), in_features}, s.get_bool("bias"));
        },
        [](const LayerSpec& s, const std::vector<Shape>& in, Generator& g) {
          return make<nn::Linear>(in[0].back(), s.get_int("out_features"), s.get_bool("bias"), g);
        }}},
      {"conv2d",
       {[](const LayerSpec& s, const std::vector<Shape>& in) {
          const Shape& x = image_input(s, in);
          const int64_t groups = s.get_int("groups"), out_channels = s.get_int("out_channels");
          if (x[0] % groups != 0)
            fail(s, "input channels (" + std::to_string(x[0]) + ") must be divisible by groups (" +
                        std::to_string(groups) + ")");
          auto k = s.get_pair("kernel_size"), st = s.get_pair("stride"), p = s.get_pair("padding"),
               d = s.get_pair("dilation");
          Shape out = window_output(s, x, out_channels, [&](int64_t size, int i) {
            return conv_out_size(size, k[i], p[i], st[i], d[i]);
          });
          return weight_bias(out, {out_channels, x[0] / groups, k[0], k[1]}, s.get_bool("bias"));
        },
        [](const LayerSpec& s, const std::vector<Shape>& in, Generator& g) {
          return make<nn::Conv2d>(in[0][0], s.get_int("out_channels"), size2(s, "kernel_size"),
                                  size2(s, "stride"), size2(s, "padding"), size2(s, "dilation"),
                                  s.get_int("groups"), s.get_bool("bias"), g);
        }}},
      {"max_pool2d",
       {pool_shapes, [](const LayerSpec& s, const std::vector<Shape>&, Generator&) {
          return make<nn::MaxPool2d>(size2(s, "kernel_size"), size2(s, "stride"), size2(s, "padding"),
                                     s.get_bool("ceil_mode"));
        }}},
      {"avg_pool2d",
       {pool_shapes, [](const LayerSpec& s, const std::vector<Shape>&, Generator&) {
          return make<nn::AvgPool2d>(size2(s, "kernel_size"), size2(s, "stride"), size2(s, "padding"),
                                     s.get_bool("ceil_mode"), s.get_bool("count_include_pad"));
        }}},
      {"adaptive_avg_pool2d",
       {[](const LayerSpec& s, const std::vector<Shape>& in) {
          const Shape& x = image_input(s, in);
          auto o = s.get_pair("output_size");
          return LayerShapes{{x[0], o[0], o[1]}, {}, {}};
        },
        [](const LayerSpec& s, const std::vector<Shape>&, Generator&) {
          return make<nn::AdaptiveAvgPool2d>(size2(s, "output_size"));
        }}},
      {"batch_norm1d",
       {[](const LayerSpec& s, const std::vector<Shape>& in) {
          const Shape& x = single(s, in);
          if (x.empty() || x.size() > 2) fail(s, "expects [C] or [C, L] per sample, got " + shape_str(x));
          return batch_norm_shapes(s, x);
        },
        [](const LayerSpec& s, const std::vector<Shape>& in, Generator&) {
          return make<nn::BatchNorm1d>(in[0][0], s.get_float("eps"), s.get_float("momentum"),
                                       s.get_bool("affine"), s.get_bool("track_running_stats"));
        }}},
      {"batch_norm2d",
       {[](const LayerSpec& s, const std::vector<Shape>& in) { return batch_norm_shapes(s, image_input(s, in)); },
        [](const LayerSpec& s, const std::vector<Shape>& in, Generator&) {
          return make<nn::BatchNorm2d>(in[0][0], s.get_float("eps"), s.get_float("momentum"),
                                       s.get_bool("affine"), s.get_bool("track_running_stats"));
        }}},
      {"dropout", elementwise([](const LayerSpec& s) { return make<nn::Dropout>(s.get_float("p")); })},
      {"flatten",
       {[](const LayerSpec& s, const std::vector<Shape>& in) {
          // On the batched shape, like torch.nn.Flatten (start_dim 1 keeps the batch dim).
          const Shape b = with_batch(single(s, in));
          const int64_t n = static_cast<int64_t>(b.size());
          int64_t start = 0, end = 0;
          try {
            start = wrap_dim(s.get_int("start_dim"), n, "start_dim");
            end = wrap_dim(s.get_int("end_dim"), n, "end_dim");
          } catch (const std::out_of_range& e) {
            fail(s, std::string(e.what()) + " (the input per sample is " + shape_str(b) + " with the batch dim)");
          }
          if (start > end) fail(s, "start_dim must not come after end_dim");
          Shape out(b.begin(), b.begin() + start);
          out.push_back(checked_numel(Shape(b.begin() + start, b.begin() + end + 1)));
          out.insert(out.end(), b.begin() + end + 1, b.end());
          return LayerShapes{Shape(out.begin() + 1, out.end()), {}, {}};
        },
        [](const LayerSpec& s, const std::vector<Shape>&, Generator&) {
          return make<nn::Flatten>(s.get_int("start_dim"), s.get_int("end_dim"));
        }}},
      {"relu", elementwise([](const LayerSpec&) { return make<nn::ReLU>(); })},
      {"leaky_relu", elementwise([](const LayerSpec& s) { return make<nn::LeakyReLU>(s.get_float("negative_slope")); })},
      {"elu", elementwise([](const LayerSpec& s) { return make<nn::ELU>(s.get_float("alpha")); })},
      {"gelu", elementwise([](const LayerSpec& s) { return make<nn::GELU>(s.get_string("approximate")); })},
      {"sigmoid", elementwise([](const LayerSpec&) { return make<nn::Sigmoid>(); })},
      {"tanh", elementwise([](const LayerSpec&) { return make<nn::Tanh>(); })},
      {"softplus", elementwise([](const LayerSpec& s) {
         return make<nn::Softplus>(s.get_float("beta"), s.get_float("threshold"));
       })},
      {"softmax", {softmax_shapes, [](const LayerSpec& s, const std::vector<Shape>&, Generator&) {
                     return make<nn::Softmax>(s.get_int("dim"));
                   }}},
      {"log_softmax", {softmax_shapes, [](const LayerSpec& s, const std::vector<Shape>&, Generator&) {
                         return make<nn::LogSoftmax>(s.get_int("dim"));
                       }}},
      {"identity", elementwise([](const LayerSpec&) { return make<nn::Identity>(); })},
      {"add",
       {[](const LayerSpec& s, const std::vector<Shape>& in) {
          for (const Shape& x : in)
            if (x != in[0])
              fail(s, "all inputs of add must have the same shape, got " + shape_str(in[0]) + " and " + shape_str(x));
          return LayerShapes{in[0], {}, {}};
        },
        [](const LayerSpec&, const std::vector<Shape>&, Generator&) { return make<nn::Add>(); }}},
      {"concat",
       {[](const LayerSpec& s, const std::vector<Shape>& in) {
          // On the batched shapes, like torch.cat (dim 1 is the first per-sample dim).
          Shape out = with_batch(in[0]);
          int64_t dim = 0;
          try {
            dim = wrap_dim(s.get_int("dim"), static_cast<int64_t>(out.size()), "dim");
          } catch (const std::out_of_range& e) {
            fail(s, std::string(e.what()) + " (the inputs per sample are " + shape_str(in[0]) + " with the batch dim)");
          }
          for (size_t i = 1; i < in.size(); ++i) {
            const Shape b = with_batch(in[i]);
            bool match = b.size() == out.size();
            for (size_t d = 0; match && d < b.size(); ++d) match = static_cast<int64_t>(d) == dim || b[d] == out[d];
            if (!match)
              fail(s, "inputs must match in every dim except dim " + std::to_string(dim) + ", got " +
                          shape_str(in[0]) + " and " + shape_str(in[i]) + " per sample");
            out[dim] = checked_add(out[dim], b[dim], "the concatenated size");
          }
          return LayerShapes{Shape(out.begin() + 1, out.end()), {}, {}};
        },
        [](const LayerSpec& s, const std::vector<Shape>&, Generator&) {
          return make<nn::Concat>(s.get_int("dim"));
        }}},
  };
  return table;
}

const LayerRule& rule_of(const LayerSpec& spec) {
  auto it = rules().find(spec.type);
  if (it == rules().end()) fail(spec, "no builder for this layer type");
  return it->second;
}

}  // namespace

bool has_layer_builder(const std::string& type) { return rules().count(type) != 0; }

LayerShapes infer_layer_shapes(const LayerSpec& spec, const std::vector<Shape>& input_shapes) {
  const LayerRule& rule = rule_of(spec);
  LayerShapes r;
  try {
    r = rule.shapes(spec, input_shapes);
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
  return rule_of(spec).build(spec, input_shapes, gen);
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
  Tensor probe_input = zeros(with_batch(sample_shape));
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
      ref.module = rule_of(ls).build(ls, in_shapes, gen);
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

Tensor GraphModel::forward(const Tensor& x) {
  std::vector<Tensor> values(nodes_.size());
  TensorList args;
  for (size_t i = 0; i < nodes_.size(); ++i) {
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
      if (j >= 0 && last_use_[j] == static_cast<int>(i) && j != output_index_) values[j] = Tensor();
  }
  return values[output_index_];
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
