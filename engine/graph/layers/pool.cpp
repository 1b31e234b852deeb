// torch.nn.MaxPool2d, AvgPool2d, AdaptiveAvgPool2d.
#include <algorithm>

#include "engine/graph/layers/common.h"
#include "engine/nn/pooling.h"

namespace dl::layers {
namespace {

using A = AttrSchema;

// PyTorch: "pad should be at most half of effective kernel size".
std::string pool_padding_rule(const AttrMap& m) {
  const auto& k = std::get<std::vector<int64_t>>(m.at("kernel_size"));
  const auto& p = std::get<std::vector<int64_t>>(m.at("padding"));
  for (int i = 0; i < 2; ++i)
    if (p[i] > k[i] / 2)
      return "padding " + format_attr(p) + " must be at most half of kernel_size " + format_attr(k);
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

LayerShapes pool_shapes(const LayerSpec& s, const std::vector<Shape>& in) {
  const Shape& x = image_input(s, in);
  auto k = s.get_pair("kernel_size"), st = s.get_pair("stride"), p = s.get_pair("padding");
  const bool ceil_mode = s.get_bool("ceil_mode");
  return {window_output(s, x, x[0],
                        [&](int64_t size, int i) { return pool_out_size(size, k[i], p[i], st[i], ceil_mode); }),
          {}, {}};
}

// PyTorch's ceil_mode lets the last window hang over the end (if it starts inside the input or
// the left padding); ONNX's ceil_mode rule differs between runtimes. Exported exactly instead:
// floor mode with the end padding that yields PyTorch's output size.
void pool_onnx(OnnxGraph& g, const OnnxLayer& io, bool is_max) {
  const auto& s = io.spec;
  auto k = s.get_pair("kernel_size"), st = s.get_pair("stride"), p = s.get_pair("padding");
  const Shape& x = io.in_shapes[0];
  std::vector<int64_t> pads = {p[0], p[1], p[0], p[1]};
  for (int i = 0; i < 2; ++i) {
    const int64_t in = x[1 + i], out = io.out_shape[1 + i];
    const int64_t end = std::max<int64_t>(0, (out - 1) * st[i] + k[i] - in - p[i]);
    if ((in + p[i] + end - k[i]) / st[i] + 1 != out)
      throw std::logic_error("ONNX export: pooling size arithmetic disagrees for node '" + s.name + "'");
    if (!is_max && s.get_bool("count_include_pad") && end > p[i])
      io.refuse("ceil_mode with count_include_pad averages its last window over fewer cells than "
                "its padding, which ONNX AveragePool cannot express; set count_include_pad: false "
                "or ceil_mode: false");
    pads[2 + i] = end;
  }
  std::vector<OnnxAttr> attrs = {{"kernel_shape", std::vector<int64_t>{k[0], k[1]}},
                                 {"strides", std::vector<int64_t>{st[0], st[1]}},
                                 {"pads", pads}};
  if (!is_max) attrs.push_back({"count_include_pad", int64_t{s.get_bool("count_include_pad") ? 1 : 0}});
  g.node(is_max ? "MaxPool" : "AveragePool", {io.inputs[0]}, io.output, s.name, attrs);
}

const RegisterLayer max_pool2d({
    .type = "max_pool2d",
    .doc = "torch.nn.MaxPool2d",
    .attrs = pool_attrs(),
    .rule = pool_padding_rule,
    .family = LayerFamily::Pool,
    .shapes = pool_shapes,
    .build = from_attrs([](const LayerSpec& s) {
      return make<nn::MaxPool2d>(size2(s, "kernel_size"), size2(s, "stride"), size2(s, "padding"),
                                 s.get_bool("ceil_mode"));
    }),
    .onnx = [](OnnxGraph& g, const OnnxLayer& io) { pool_onnx(g, io, /*is_max=*/true); },
    .saved_copies = 2,
    .example = {{{2, 6, 6}}, {{"kernel_size", int64_t{2}}}},
});

const RegisterLayer avg_pool2d({
    .type = "avg_pool2d",
    .doc = "torch.nn.AvgPool2d",
    .attrs = avg_pool_attrs(),
    .rule = pool_padding_rule,
    .family = LayerFamily::Pool,
    .shapes = pool_shapes,
    .build = from_attrs([](const LayerSpec& s) {
      return make<nn::AvgPool2d>(size2(s, "kernel_size"), size2(s, "stride"), size2(s, "padding"),
                                 s.get_bool("ceil_mode"), s.get_bool("count_include_pad"));
    }),
    .onnx = [](OnnxGraph& g, const OnnxLayer& io) { pool_onnx(g, io, /*is_max=*/false); },
    .example = {{{2, 6, 6}}, {{"kernel_size", int64_t{2}}}},
});

const RegisterLayer adaptive_avg_pool2d({
    .type = "adaptive_avg_pool2d",
    .doc = "torch.nn.AdaptiveAvgPool2d: average to a fixed output size",
    .attrs = {A::pair("output_size").at_least(1).describe("target output size (h, w)")},
    .family = LayerFamily::Pool,
    .shapes = [](const LayerSpec& s, const std::vector<Shape>& in) {
      const Shape& x = image_input(s, in);
      auto o = s.get_pair("output_size");
      return LayerShapes{{x[0], o[0], o[1]}, {}, {}};
    },
    .build = from_attrs([](const LayerSpec& s) { return make<nn::AdaptiveAvgPool2d>(size2(s, "output_size")); }),
    .onnx = [](OnnxGraph& g, const OnnxLayer& io) {
      const Shape& x = io.in_shapes[0];
      auto o = io.spec.get_pair("output_size");
      if (o[0] == 1 && o[1] == 1) {
        g.op(io, "GlobalAveragePool");
        return;
      }
      if (x[1] % o[0] != 0 || x[2] % o[1] != 0)
        io.refuse("ONNX has no adaptive pooling; output_size (" + std::to_string(o[0]) + ", " +
                  std::to_string(o[1]) + ") must divide the input size (" + std::to_string(x[1]) + ", " +
                  std::to_string(x[2]) + ") to become an AveragePool (or be (1, 1): GlobalAveragePool)");
      std::vector<int64_t> k = {x[1] / o[0], x[2] / o[1]};
      g.node("AveragePool", {io.inputs[0]}, io.output, io.spec.name, {{"kernel_shape", k}, {"strides", k}});
    },
    .example = {{{2, 6, 6}}, {{"output_size", int64_t{3}}}},
});

}  // namespace
}  // namespace dl::layers
