// torch.nn.Conv2d and torch.nn.ConvTranspose2d.
#include "engine/graph/layers/common.h"
#include "engine/nn/conv.h"
#include "engine/nn/conv_transpose.h"

namespace dl::layers {
namespace {

using A = AttrSchema;

// The rule of both convolutions: out_channels divisible by groups.
std::string out_channels_rule(const AttrMap& m) {
  int64_t out = std::get<int64_t>(m.at("out_channels"));
  int64_t groups = std::get<int64_t>(m.at("groups"));
  if (out % groups != 0)
    return "out_channels (" + std::to_string(out) + ") must be divisible by groups (" + std::to_string(groups) + ")";
  return "";
}

// Both convolutions' input [C, H, W], with C divisible by groups.
const Shape& grouped_input(const LayerSpec& s, const std::vector<Shape>& in) {
  const Shape& x = image_input(s, in);
  const int64_t groups = s.get_int("groups");
  if (x[0] % groups != 0)
    fail(s, "input channels (" + std::to_string(x[0]) + ") must be divisible by groups (" + std::to_string(groups) + ")");
  return x;
}

// ONNX Conv / ConvTranspose: inputs (x, W[, B]) and the window attributes both share; `extra`
// adds the op's own (ConvTranspose's output_padding).
void emit_conv(OnnxGraph& g, const OnnxLayer& io, const char* op_type, std::vector<OnnxAttr> extra = {}) {
  const auto& s = io.spec;
  std::vector<std::string> in = {io.inputs[0], g.weight(io, "weight")};
  if (s.get_bool("bias")) in.push_back(g.weight(io, "bias"));
  auto k = s.get_pair("kernel_size"), st = s.get_pair("stride"), p = s.get_pair("padding"), d = s.get_pair("dilation");
  std::vector<OnnxAttr> attrs = {{"kernel_shape", std::vector<int64_t>{k[0], k[1]}},
                     {"strides", std::vector<int64_t>{st[0], st[1]}},
                     {"pads", std::vector<int64_t>{p[0], p[1], p[0], p[1]}},
                     {"dilations", std::vector<int64_t>{d[0], d[1]}},
                     {"group", s.get_int("groups")}};
  attrs.insert(attrs.end(), extra.begin(), extra.end());
  g.node(op_type, in, io.output, s.name, attrs);
}

const RegisterLayer conv2d({
    .type = "conv2d",
    .doc = "torch.nn.Conv2d over [N, C, H, W]",
    .attrs = {A::integer("out_channels").at_least(1).describe("number of output channels"),
              A::pair("kernel_size").at_least(1).describe("size of the convolving kernel"),
              A::pair("stride", 1).at_least(1).describe("stride of the convolution"),
              A::pair("padding", 0).at_least(0).describe("zero padding on both sides"),
              A::pair("dilation", 1).at_least(1).describe("spacing between kernel elements"),
              A::integer("groups", 1).at_least(1).describe("blocked connections input -> output"),
              A::boolean("bias", true).describe("learn an additive bias")},
    .rule = out_channels_rule,
    .family = LayerFamily::Conv,
    .shapes = [](const LayerSpec& s, const std::vector<Shape>& in) {
      const Shape& x = grouped_input(s, in);
      const int64_t groups = s.get_int("groups"), out_channels = s.get_int("out_channels");
      auto k = s.get_pair("kernel_size"), st = s.get_pair("stride"), p = s.get_pair("padding"),
           d = s.get_pair("dilation");
      Shape out = window_output(s, x, out_channels, [&](int64_t size, int i) {
        return conv_out_size(size, k[i], p[i], st[i], d[i]);
      });
      return weight_bias(out, {out_channels, x[0] / groups, k[0], k[1]}, s.get_bool("bias"));
    },
    .build = [](const LayerSpec& s, const std::vector<Shape>& in, Generator& g) {
      return make<nn::Conv2d>(in[0][0], s.get_int("out_channels"), size2(s, "kernel_size"), size2(s, "stride"),
                              size2(s, "padding"), size2(s, "dilation"), s.get_int("groups"), s.get_bool("bias"), g);
    },
    .onnx = [](OnnxGraph& g, const OnnxLayer& io) { emit_conv(g, io, "Conv"); },
    .example = {{{2, 5, 5}}, {{"out_channels", int64_t{4}}, {"kernel_size", int64_t{3}}}},
});

const RegisterLayer conv_transpose2d({
    .type = "conv_transpose2d",
    .doc = "torch.nn.ConvTranspose2d over [N, C, H, W] (decoders, learned upsampling)",
    .attrs = {A::integer("out_channels").at_least(1).describe("number of output channels"),
              A::pair("kernel_size").at_least(1).describe("size of the convolving kernel"),
              A::pair("stride", 1).at_least(1).describe("stride of the convolution"),
              A::pair("padding", 0).at_least(0).describe("dilation * (kernel_size - 1) - padding zero padding "
                                                         "on both sides of the input"),
              A::pair("output_padding", 0).at_least(0).describe("size added to one side of the output "
                                                                "(smaller than stride or dilation)"),
              A::integer("groups", 1).at_least(1).describe("blocked connections input -> output"),
              A::boolean("bias", true).describe("learn an additive bias"),
              A::pair("dilation", 1).at_least(1).describe("spacing between kernel elements")},
    .rule = [](const AttrMap& m) -> std::string {
      if (std::string r = out_channels_rule(m); !r.empty()) return r;
      const auto& op = std::get<std::vector<int64_t>>(m.at("output_padding"));
      const auto& st = std::get<std::vector<int64_t>>(m.at("stride"));
      const auto& d = std::get<std::vector<int64_t>>(m.at("dilation"));
      for (int i = 0; i < 2; ++i)
        if (op[i] >= st[i] && op[i] >= d[i])
          return "output_padding " + format_attr(m.at("output_padding")) +
                 " must be smaller than either stride " + format_attr(m.at("stride")) + " or dilation " +
                 format_attr(m.at("dilation"));
      return "";
    },
    .family = LayerFamily::Conv,
    .shapes = [](const LayerSpec& s, const std::vector<Shape>& in) {
      const Shape& x = grouped_input(s, in);
      const int64_t groups = s.get_int("groups"), out_channels = s.get_int("out_channels");
      auto k = s.get_pair("kernel_size"), st = s.get_pair("stride"), p = s.get_pair("padding"),
           op = s.get_pair("output_padding"), d = s.get_pair("dilation");
      Shape out = window_output(s, x, out_channels, [&](int64_t size, int i) {
        return conv_transpose_out_size(size, k[i], p[i], st[i], d[i], op[i]);
      });
      LayerShapes r = weight_bias(out, {x[0], out_channels / groups, k[0], k[1]}, false);
      if (s.get_bool("bias")) r.params.push_back({"bias", {out_channels}});
      return r;
    },
    .build = [](const LayerSpec& s, const std::vector<Shape>& in, Generator& g) {
      return make<nn::ConvTranspose2d>(in[0][0], s.get_int("out_channels"), size2(s, "kernel_size"),
                                       size2(s, "stride"), size2(s, "padding"), size2(s, "output_padding"),
                                       s.get_int("groups"), s.get_bool("bias"), size2(s, "dilation"), g);
    },
    .onnx = [](OnnxGraph& g, const OnnxLayer& io) {
      auto op = io.spec.get_pair("output_padding");
      emit_conv(g, io, "ConvTranspose", {{"output_padding", std::vector<int64_t>{op[0], op[1]}}});
    },
    .example = {{{4, 3, 4}},
                {{"out_channels", int64_t{6}}, {"kernel_size", int64_t{3}}, {"stride", int64_t{2}},
                 {"padding", int64_t{1}}, {"output_padding", int64_t{1}}, {"groups", int64_t{2}}}},
});

}  // namespace
}  // namespace dl::layers
