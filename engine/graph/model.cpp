#include "engine/graph/model.h"

#include <functional>
#include <iomanip>
#include <map>
#include <sstream>

#include "engine/nn/nn.h"
#include "engine/ops.h"

namespace dl {
namespace {

using nn::ModulePtr;

// Builds one layer from its resolved spec and input shapes (without the batch dim).
using LayerBuilder = std::function<ModulePtr(const LayerSpec&, const std::vector<Shape>&, Generator&)>;

[[noreturn]] void fail(const LayerSpec& s, const std::string& what) {
  std::string where = s.loc.line > 0 ? s.loc.str() + ": " : "";
  throw GraphError(where + "layer '" + s.name + "' (" + s.type + "): " + what);
}

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

// The layer registry: YAML type -> builder. A new layer type is one line here plus its entry
// in engine/graph/layer_schema.cpp (attributes) and its module in engine/nn/.
const std::map<std::string, LayerBuilder>& builders() {
  static const std::map<std::string, LayerBuilder> table = {
      {"linear", [](const LayerSpec& s, const std::vector<Shape>& in, Generator& g) {
         const Shape& x = single(s, in);
         if (x.empty()) fail(s, "expects at least a 1-d input per sample");
         return make<nn::Linear>(x.back(), s.get_int("out_features"), s.get_bool("bias"), g);
       }},
      {"conv2d", [](const LayerSpec& s, const std::vector<Shape>& in, Generator& g) {
         const Shape& x = image_input(s, in);
         int64_t groups = s.get_int("groups");
         if (x[0] % groups != 0)
           fail(s, "input channels (" + std::to_string(x[0]) + ") must be divisible by groups (" +
                       std::to_string(groups) + ")");
         return make<nn::Conv2d>(x[0], s.get_int("out_channels"), size2(s, "kernel_size"),
                                 size2(s, "stride"), size2(s, "padding"), size2(s, "dilation"),
                                 groups, s.get_bool("bias"), g);
       }},
      {"max_pool2d", [](const LayerSpec& s, const std::vector<Shape>& in, Generator&) {
         image_input(s, in);
         return make<nn::MaxPool2d>(size2(s, "kernel_size"), size2(s, "stride"),
                                    size2(s, "padding"), s.get_bool("ceil_mode"));
       }},
      {"avg_pool2d", [](const LayerSpec& s, const std::vector<Shape>& in, Generator&) {
         image_input(s, in);
         return make<nn::AvgPool2d>(size2(s, "kernel_size"), size2(s, "stride"), size2(s, "padding"),
                                    s.get_bool("ceil_mode"), s.get_bool("count_include_pad"));
       }},
      {"adaptive_avg_pool2d", [](const LayerSpec& s, const std::vector<Shape>& in, Generator&) {
         image_input(s, in);
         return make<nn::AdaptiveAvgPool2d>(size2(s, "output_size"));
       }},
      {"batch_norm1d", [](const LayerSpec& s, const std::vector<Shape>& in, Generator&) {
         const Shape& x = single(s, in);
         if (x.empty() || x.size() > 2) fail(s, "expects [C] or [C, L] per sample, got " + shape_str(x));
         return make<nn::BatchNorm1d>(x[0], s.get_float("eps"), s.get_float("momentum"),
                                      s.get_bool("affine"), s.get_bool("track_running_stats"));
       }},
      {"batch_norm2d", [](const LayerSpec& s, const std::vector<Shape>& in, Generator&) {
         const Shape& x = image_input(s, in);
         return make<nn::BatchNorm2d>(x[0], s.get_float("eps"), s.get_float("momentum"),
                                      s.get_bool("affine"), s.get_bool("track_running_stats"));
       }},
      {"dropout", [](const LayerSpec& s, const std::vector<Shape>& in, Generator&) {
         single(s, in);
         return make<nn::Dropout>(s.get_float("p"));
       }},
      {"flatten", [](const LayerSpec& s, const std::vector<Shape>& in, Generator&) {
         single(s, in);
         return make<nn::Flatten>(s.get_int("start_dim"), s.get_int("end_dim"));
       }},
      {"relu", [](const LayerSpec&, const std::vector<Shape>&, Generator&) { return make<nn::ReLU>(); }},
      {"leaky_relu", [](const LayerSpec& s, const std::vector<Shape>&, Generator&) {
         return make<nn::LeakyReLU>(s.get_float("negative_slope"));
       }},
      {"elu", [](const LayerSpec& s, const std::vector<Shape>&, Generator&) { return make<nn::ELU>(s.get_float("alpha")); }},
      {"gelu", [](const LayerSpec& s, const std::vector<Shape>&, Generator&) {
         return make<nn::GELU>(s.get_string("approximate"));
       }},
      {"sigmoid", [](const LayerSpec&, const std::vector<Shape>&, Generator&) { return make<nn::Sigmoid>(); }},
      {"tanh", [](const LayerSpec&, const std::vector<Shape>&, Generator&) { return make<nn::Tanh>(); }},
      {"softplus", [](const LayerSpec& s, const std::vector<Shape>&, Generator&) {
         return make<nn::Softplus>(s.get_float("beta"), s.get_float("threshold"));
       }},
      {"softmax", [](const LayerSpec& s, const std::vector<Shape>&, Generator&) { return make<nn::Softmax>(s.get_int("dim")); }},
      {"log_softmax", [](const LayerSpec& s, const std::vector<Shape>&, Generator&) {
         return make<nn::LogSoftmax>(s.get_int("dim"));
       }},
      {"identity", [](const LayerSpec&, const std::vector<Shape>&, Generator&) { return make<nn::Identity>(); }},
      {"add", [](const LayerSpec& s, const std::vector<Shape>& in, Generator&) {
         for (const Shape& x : in)
           if (x != in[0])
             fail(s, "all inputs of add must have the same shape, got " + shape_str(in[0]) + " and " + shape_str(x));
         return make<nn::Add>();
       }},
      {"concat", [](const LayerSpec& s, const std::vector<Shape>&, Generator&) {
         return make<nn::Concat>(s.get_int("dim"));
       }},
  };
  return table;
}

}  // namespace

bool has_layer_builder(const std::string& type) { return builders().count(type) != 0; }

ModulePtr build_layer(const LayerSpec& spec, const std::vector<Shape>& input_shapes, Generator& gen) {
  auto it = builders().find(spec.type);
  if (it == builders().end()) fail(spec, "no builder for this layer type");
  return it->second(spec, input_shapes, gen);
}

GraphModel::GraphModel(const ModelSpec& spec, const Shape& sample_shape, Generator& gen)
    : sample_shape_(sample_shape) {
  if (spec.nodes.empty()) throw GraphError("model has no layers");
  std::map<std::string, int> index;  // node name -> value index
  std::vector<Shape> shapes;          // per node output shape (without batch)
  // Shape inference: each layer is run once on a zero batch of 1 in eval mode, without grad.
  NoGradGuard no_grad;
  std::vector<Tensor> probe_values;
  Tensor probe_input = zeros([&] { Shape s{1}; s.insert(s.end(), sample_shape.begin(), sample_shape.end()); return s; }());
  for (const LayerSpec& ls : spec.nodes) {
    NodeRef ref;
    ref.name = ls.name;
    ref.type = ls.type;
    std::vector<Shape> in_shapes;
    TensorList in_values;
    for (const std::string& in : ls.inputs) {
      if (in == kModelInput) {
        ref.inputs.push_back(-1);
        in_shapes.push_back(sample_shape);
        in_values.push_back(probe_input);
        continue;
      }
      auto f = index.find(in);
      if (f == index.end()) fail(ls, "input '" + in + "' is not an earlier node");
      ref.inputs.push_back(f->second);
      in_shapes.push_back(shapes[f->second]);
      in_values.push_back(probe_values[f->second]);
    }
    ref.module = build_layer(ls, in_shapes, gen);
    ref.module->eval();
    Tensor out;
    try {
      out = in_values.size() == 1 ? ref.module->forward(in_values[0]) : ref.module->forward(in_values);
    } catch (const GraphError&) {
      throw;
    } catch (const std::exception& e) {
      fail(ls, std::string("cannot be applied to input shape(s)") + [&] {
        std::string s;
        for (const Shape& x : in_shapes) s += " " + shape_str(x);
        return s;
      }() + ": " + e.what());
    }
    Shape out_shape(out.shape().begin() + 1, out.shape().end());
    for (int64_t d : out_shape)
      if (d <= 0) fail(ls, "output shape " + shape_str(out_shape) + " is empty: the input " +
                           shape_str(in_shapes[0]) + " is too small for this layer");
    index[ls.name] = static_cast<int>(nodes_.size());
    shapes.push_back(out_shape);
    probe_values.push_back(out);
    register_module(ls.name, ref.module);
    NodeSummary sum{ls.name, ls.type, ls.inputs, out_shape, ref.module->num_parameters()};
    summary_.push_back(sum);
    nodes_.push_back(ref);
  }
  std::string out_name = spec.output.empty() ? spec.nodes.back().name : spec.output;
  auto f = index.find(out_name);
  if (f == index.end()) throw GraphError("model output '" + out_name + "' is not a node");
  output_index_ = f->second;
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

std::string format_summary(const GraphModel& model) {
  std::ostringstream os;
  size_t wn = 4, wt = 4;
  for (const auto& s : model.summary()) {
    wn = std::max(wn, s.name.size());
    wt = std::max(wt, s.type.size());
  }
  os << std::left << std::setw(int(wn) + 2) << "Node" << std::setw(int(wt) + 2) << "Type"
     << std::setw(18) << "Output shape" << std::right << std::setw(12) << "Params" << "\n";
  os << std::string(wn + wt + 4 + 18 + 12, '-') << "\n";
  os << std::left << std::setw(int(wn) + 2) << "input" << std::setw(int(wt) + 2) << "-"
     << std::setw(18) << shape_str(model.sample_shape()) << std::right << std::setw(12) << 0 << "\n";
  int64_t total = 0;
  for (const auto& s : model.summary()) {
    os << std::left << std::setw(int(wn) + 2) << s.name << std::setw(int(wt) + 2) << s.type
       << std::setw(18) << shape_str(s.output_shape) << std::right << std::setw(12) << s.num_params << "\n";
    total += s.num_params;
  }
  os << std::string(wn + wt + 4 + 18 + 12, '-') << "\n";
  os << "Total parameters: " << total << "\n";
  return os.str();
}

}  // namespace dl
