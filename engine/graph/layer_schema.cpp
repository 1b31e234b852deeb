#include "engine/graph/layer_schema.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <stdexcept>

namespace dl {

const AttrSchema* LayerSchema::find_attr(std::string_view attr_name) const {
  for (const auto& a : attrs)
    if (a.name == attr_name) return &a;
  return nullptr;
}

// ---- The layer table ----------------------------------------------------------------------
// PyTorch's argument names, order and defaults. in_features / in_channels / num_features are
// never written: engine/graph infers them from the input shape.

namespace {
using A = AttrSchema;

// PyTorch: "pad should be at most half of effective kernel size".
std::string pool_padding_rule(const AttrMap& m) {
  const auto& k = std::get<std::vector<int64_t>>(m.at("kernel_size"));
  const auto& p = std::get<std::vector<int64_t>>(m.at("padding"));
  for (int i = 0; i < 2; ++i)
    if (p[i] > k[i] / 2)
      return "padding " + format_attr(p) + " must be at most half of kernel_size " +
             format_attr(k);
  return "";
}

std::vector<AttrSchema> pool_attrs() {
  return {A::pair("kernel_size").at_least(1).describe("size of the pooling window"),
          A::pair("stride").at_least(1).defaults_to("kernel_size")
              .describe("step of the window (default: kernel_size)"),
          A::pair("padding", 0).at_least(0).describe("implicit negative-infinity/zero padding"),
          A::boolean("ceil_mode", false).describe("use ceil instead of floor for output size")};
}

std::vector<AttrSchema> avg_pool_attrs() {
  auto attrs = pool_attrs();
  attrs.push_back(A::boolean("count_include_pad", true)
                      .describe("count the zero padding in the averaging divisor"));
  return attrs;
}

std::vector<AttrSchema> batch_norm_attrs() {
  return {A::floating("eps", 1e-5).above(0).describe("added to the variance for stability"),
          A::floating("momentum", 0.1).range(0, 1).describe("running statistics update factor"),
          A::boolean("affine", true).describe("learnable weight and bias"),
          A::boolean("track_running_stats", true).describe("keep running mean/var for eval")};
}

std::vector<LayerSchema> builtin_layers() {
  std::vector<LayerSchema> t = {
      {"linear", "torch.nn.Linear: y = x W^T + b over the last dim",
       {A::integer("out_features").at_least(1).describe("size of each output sample"),
        A::boolean("bias", true).describe("learn an additive bias")}},
      {"conv2d", "torch.nn.Conv2d over [N, C, H, W]",
       {A::integer("out_channels").at_least(1).describe("number of output channels"),
        A::pair("kernel_size").at_least(1).describe("size of the convolving kernel"),
        A::pair("stride", 1).at_least(1).describe("stride of the convolution"),
        A::pair("padding", 0).at_least(0).describe("zero padding on both sides"),
        A::pair("dilation", 1).at_least(1).describe("spacing between kernel elements"),
        A::integer("groups", 1).at_least(1).describe("blocked connections input -> output"),
        A::boolean("bias", true).describe("learn an additive bias")},
       1, 1,
       [](const AttrMap& m) -> std::string {
         int64_t out = std::get<int64_t>(m.at("out_channels"));
         int64_t groups = std::get<int64_t>(m.at("groups"));
         if (out % groups != 0)
           return "out_channels (" + std::to_string(out) + ") must be divisible by groups (" +
                  std::to_string(groups) + ")";
         return "";
       }},
      {"max_pool2d", "torch.nn.MaxPool2d", pool_attrs(), 1, 1, pool_padding_rule},
      {"avg_pool2d", "torch.nn.AvgPool2d", avg_pool_attrs(), 1, 1, pool_padding_rule},
      {"adaptive_avg_pool2d", "torch.nn.AdaptiveAvgPool2d: average to a fixed output size",
       {A::pair("output_size").at_least(1).describe("target output size (h, w)")}},
      {"batch_norm1d", "torch.nn.BatchNorm1d over [N, C] or [N, C, L]", batch_norm_attrs()},
      {"batch_norm2d", "torch.nn.BatchNorm2d over [N, C, H, W]", batch_norm_attrs()},
      {"dropout", "torch.nn.Dropout: zero elements with probability p while training",
       {A::floating("p", 0.5).range(0, 1, /*hi_open=*/true)
            .describe("probability of an element to be zeroed")}},
      {"flatten", "torch.nn.Flatten: merge dims start_dim..end_dim",
       {A::integer("start_dim", 1).describe("first dim to flatten"),
        A::integer("end_dim", -1).describe("last dim to flatten")}},
      {"relu", "torch.nn.ReLU", {}},
      {"leaky_relu", "torch.nn.LeakyReLU",
       {A::floating("negative_slope", 0.01).describe("slope for negative inputs")}},
      {"elu", "torch.nn.ELU", {A::floating("alpha", 1.0).describe("scale of the negative part")}},
      {"gelu", "torch.nn.GELU",
       {A::choice("approximate", {"none", "tanh"}, "none").describe("tanh approximation")}},
      {"sigmoid", "torch.nn.Sigmoid", {}},
      {"tanh", "torch.nn.Tanh", {}},
      {"softplus", "torch.nn.Softplus: log(1 + exp(beta x)) / beta",
       {A::floating("beta", 1.0).above(0).describe("sharpness"),
        A::floating("threshold", 20.0).describe("linear above beta*x > threshold")}},
      {"softmax", "torch.nn.Softmax", {A::integer("dim", 1).describe("dim to normalise over")}},
      {"log_softmax", "torch.nn.LogSoftmax",
       {A::integer("dim", 1).describe("dim to normalise over")}},
      {"identity", "torch.nn.Identity", {}},
      {"add", "element-wise sum of its inputs (residual connection)", {}, 2,
       LayerSchema::kUnbounded},
      {"concat", "torch.cat of its inputs along dim",
       {A::integer("dim", 1).describe("dim to concatenate along")}, 2, LayerSchema::kUnbounded},
  };
  return t;
}

std::vector<LayerSchema>& registry() {
  static std::vector<LayerSchema> r = builtin_layers();
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
  registry().push_back(std::move(schema));
}

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
