// torch.nn.Conv2d.
#include "engine/graph/layers/common.h"
#include "engine/nn/conv.h"

namespace dl::layers {
namespace {

using A = AttrSchema;

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
    .rule = [](const AttrMap& m) -> std::string {
      int64_t out = std::get<int64_t>(m.at("out_channels"));
      int64_t groups = std::get<int64_t>(m.at("groups"));
      if (out % groups != 0)
        return "out_channels (" + std::to_string(out) + ") must be divisible by groups (" + std::to_string(groups) +
               ")";
      return "";
    },
    .family = LayerFamily::Conv,
    .shapes = [](const LayerSpec& s, const std::vector<Shape>& in) {
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
    .build = [](const LayerSpec& s, const std::vector<Shape>& in, Generator& g) {
      return make<nn::Conv2d>(in[0][0], s.get_int("out_channels"), size2(s, "kernel_size"), size2(s, "stride"),
                              size2(s, "padding"), size2(s, "dilation"), s.get_int("groups"), s.get_bool("bias"), g);
    },
    .onnx = [](OnnxGraph& g, const OnnxLayer& io) {
      const auto& s = io.spec;
      std::vector<std::string> in = {io.inputs[0], g.weight(io, "weight")};
      if (s.get_bool("bias")) in.push_back(g.weight(io, "bias"));
      auto k = s.get_pair("kernel_size"), st = s.get_pair("stride"), p = s.get_pair("padding"),
           d = s.get_pair("dilation");
      g.node("Conv", in, io.output, s.name,
             {{"kernel_shape", std::vector<int64_t>{k[0], k[1]}},
              {"strides", std::vector<int64_t>{st[0], st[1]}},
              {"pads", std::vector<int64_t>{p[0], p[1], p[0], p[1]}},
              {"dilations", std::vector<int64_t>{d[0], d[1]}},
              {"group", s.get_int("groups")}});
    },
    .example = {{{2, 5, 5}}, {{"out_channels", int64_t{4}}, {"kernel_size", int64_t{3}}}},
});

}  // namespace
}  // namespace dl::layers
