// Spatial transformer layers: affine_theta (a localisation network's identity-initialised last
// linear), affine_grid and grid_sample (torch.nn.functional's, as graph nodes).
#include "engine/graph/layers/common.h"
#include "engine/nn/spatial.h"

namespace dl::layers {
namespace {

using A = AttrSchema;

AttrSchema align_corners_attr() {
  return A::boolean("align_corners", false)
      .describe("-1 and 1 are the centres of the corner pixels (true) or their outer edges (false)");
}

const RegisterLayer affine_theta({
    .type = "affine_theta",
    .doc = "torch.nn.Linear(in, 6) viewed as theta [2, 3], initialised to the identity transform (weight 0, "
           "bias [1, 0, 0, 0, 1, 0]): a spatial transformer's localisation head",
    .family = LayerFamily::Spatial,
    .shapes = [](const LayerSpec& s, const std::vector<Shape>& in) {
      const Shape& x = single(s, in);
      if (x.size() != 1) fail(s, "expects a flat [features] input per sample, got " + shape_str(x) + " (add a flatten)");
      return weight_bias({2, 3}, {6, x[0]}, true);
    },
    .build = [](const LayerSpec&, const std::vector<Shape>& in, Generator& g) {
      return make<nn::AffineTheta>(in[0][0], g);
    },
    .onnx = [](OnnxGraph& g, const OnnxLayer& io) {
      const std::string gemm = io.sub("gemm");
      g.node("Gemm", {io.inputs[0], g.weight(io, "weight"), g.weight(io, "bias")}, gemm, gemm, {{"transB", int64_t{1}}});
      g.node("Reshape", {gemm, g.ints(io.sub("shape"), {0, 2, 3})}, io.output, io.spec.name);
    },
    .example = {{{5}}, {}},
});

const RegisterLayer affine_grid_layer({
    .type = "affine_grid",
    .doc = "torch.nn.functional.affine_grid: the sampling grid [H, W, 2] of theta [2, 3] for an output of "
           "[H, W] (attribute size, or a second input's trailing [H, W], e.g. the image to sample)",
    .attrs = {A::pair("size").optional().describe("output [H, W]; omit it to take them from the second input"),
              align_corners_attr()},
    .max_inputs = 2,
    .family = LayerFamily::Spatial,
    .shapes = [](const LayerSpec& s, const std::vector<Shape>& in) {
      if (in[0] != Shape{2, 3})
        fail(s, "expects theta [2, 3] per sample (a batch of 2-d affine matrices), got " + shape_str(in[0]));
      Shape hw;
      if (in.size() == 2) {
        if (s.has("size")) fail(s, "give the output size as attribute size or as a second input, not both");
        if (in[1].size() < 2)
          fail(s, "reads the output [H, W] from the second input's last two dims (e.g. an image [C, H, W]), got " +
                      shape_str(in[1]));
        hw = {in[1][in[1].size() - 2], in[1].back()};
      } else {
        if (!s.has("size"))
          fail(s, "needs the output size: a second input (the image to sample, inputs: [theta, image]) or "
                  "attribute size: [H, W]");
        const auto p = s.get_pair("size");
        hw = {p[0], p[1]};
      }
      if (hw[0] <= 0 || hw[1] <= 0) fail(s, "the output size " + shape_str(hw) + " must be positive");
      return LayerShapes{{hw[0], hw[1], 2}, {}, {}};
    },
    .build = [](const LayerSpec& s, const std::vector<Shape>&, Generator&) {
      std::optional<nn::Size2> size;
      if (s.has("size")) size = nn::Size2(s.get_pair("size")[0], s.get_pair("size")[1]);
      return make<nn::AffineGrid>(s.get_bool("align_corners"), size);
    },
    .onnx = [](OnnxGraph& g, const OnnxLayer& io) {
      // grid = base [H * W, 3] x theta^T [N, 3, 2] -> [N, H * W, 2] -> [N, H, W, 2]
      const int64_t h = io.out_shape[0], w = io.out_shape[1];
      const Tensor base = affine_grid_base(h, w, io.spec.get_bool("align_corners"));
      const std::string theta_t = io.sub("theta_t"), flat = io.sub("grid_flat");
      g.node("Transpose", {io.inputs[0]}, theta_t, theta_t, {{"perm", std::vector<int64_t>{0, 2, 1}}});
      g.node("MatMul", {g.floats(io.sub("base"), base.to_vector<float>(), {h * w, 3}), theta_t}, flat, flat);
      g.node("Reshape", {flat, g.ints(io.sub("shape"), {0, h, w, 2})}, io.output, io.spec.name);
    },
    .example = {{{2, 3}}, {{"size", std::vector<int64_t>{4, 5}}}},
});

const RegisterLayer grid_sample_layer({
    .type = "grid_sample",
    .doc = "torch.nn.functional.grid_sample: inputs (input [C, H, W], grid [Ho, Wo, 2]) -> [C, Ho, Wo]",
    .attrs = {A::choice("mode", {"bilinear", "nearest"}, "bilinear").describe("interpolation"),
              A::choice("padding_mode", {"zeros", "border", "reflection"}, "zeros")
                  .describe("what points outside the input read"),
              align_corners_attr()},
    .min_inputs = 2,
    .max_inputs = 2,
    .family = LayerFamily::Spatial,
    .shapes = [](const LayerSpec& s, const std::vector<Shape>& in) {
      const Shape &x = in[0], &grid = in[1];
      if (x.size() != 3) fail(s, "expects its first input [C, H, W] per sample, got " + shape_str(x));
      if (grid.size() != 3 || grid[2] != 2)
        fail(s, "expects its second input (the grid) [H_out, W_out, 2] per sample, got " + shape_str(grid));
      if (x[1] == 0 || x[2] == 0) fail(s, "the input " + shape_str(x) + " has an empty spatial dim");
      return LayerShapes{{x[0], grid[0], grid[1]}, {}, {}};
    },
    .build = from_attrs([](const LayerSpec& s) {
      return make<nn::GridSample>(s.get_string("mode"), s.get_string("padding_mode"), s.get_bool("align_corners"));
    }),
    .onnx = [](OnnxGraph& g, const OnnxLayer& io) {
      if (io.opset < 16) io.refuse("GridSample needs ONNX opset 16 or newer (export with --opset 16 or 17)");
      g.op(io, "GridSample", {{"align_corners", int64_t{io.spec.get_bool("align_corners") ? 1 : 0}},
                              {"mode", io.spec.get_string("mode")},
                              {"padding_mode", io.spec.get_string("padding_mode")}});
    },
    .example = {{{2, 3, 2}, {2, 3, 2}}, {}},  // input [C=2, H=3, W=2], grid [Ho=2, Wo=3, 2]
});

}  // namespace
}  // namespace dl::layers
