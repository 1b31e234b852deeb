// torch.nn.Upsample (interpolate as a layer), listed with the pooling layers: both resample
// [N, C, H, W] without parameters.
#include <cmath>

#include "engine/graph/layers/common.h"
#include "engine/nn/upsample.h"

namespace dl::layers {
namespace {

using A = AttrSchema;

// The scale_factor attribute as (height, width): one number scales both dims.
std::array<double, 2> scale_pair(const LayerSpec& s) {
  const auto& f = s.attr<std::vector<double>>("scale_factor");
  return {f.front(), f.back()};
}

// The output [oh, ow] of input [C, H, W] (size, or floor(in * scale_factor) like PyTorch).
std::array<int64_t, 2> output_hw(const LayerSpec& s, const Shape& x) {
  if (s.has("size")) return s.get_pair("size");
  const auto f = scale_pair(s);
  return {interpolate_out_size(x[1], f[0]), interpolate_out_size(x[2], f[1])};
}

// ONNX Resize scales one dim by: torch copies when out == in (nearest, bilinear) and halves the
// index when out == 2 * in (nearest), whatever the scale factor; otherwise the coordinates use
// the scale factor when one was given, else out / in. ONNX Resize's output size is
// floor(in * scale) in float32, so the float scale is nudged up (by ulps, never visibly) until
// that product reaches `out`.
float onnx_scale(const LayerSpec& s, int64_t in, int64_t out, double scale_factor) {
  const std::string& mode = s.get_string("mode");
  double exact = static_cast<double>(out) / static_cast<double>(in);
  if (s.has("scale_factor") && !(mode != "bicubic" && out == in) && !(mode == "nearest" && out == 2 * in))
    exact = scale_factor;
  float f = static_cast<float>(exact);
  auto size_of = [in](float sc) {
    const double d = std::floor(static_cast<double>(in) * static_cast<double>(sc));
    const double fl = std::floor(static_cast<float>(in) * sc);
    return std::min(d, fl);
  };
  while (size_of(f) < static_cast<double>(out)) f = std::nextafter(f, 2.0f * f + 1.0f);
  return f;
}

const RegisterLayer upsample({
    .type = "upsample",
    .doc = "torch.nn.Upsample over [N, C, H, W]: nearest, bilinear or bicubic resizing to size or by scale_factor",
    .attrs = {A::pair("size").optional().at_least(1).describe("output [H, W] (or one number for both); "
                                                              "give size or scale_factor"),
              A::float_list("scale_factor").optional().above(0).length(1, 2).describe(
                  "multiplier of [H, W] (or one number for both); the output is floor(in * scale_factor)"),
              A::choice("mode", {"nearest", "bilinear", "bicubic"}, "nearest").describe(
                  "nearest: PyTorch's legacy rule src = floor(dst * in / out); bicubic: A = -0.75"),
              A::boolean("align_corners", false).optional().describe(
                  "bilinear/bicubic only: align the centres of the corner pixels (unset: false)")},
    .rule = [](const AttrMap& m) -> std::string {
      if (m.count("size") == m.count("scale_factor")) return "give exactly one of size and scale_factor";
      if (m.count("align_corners") && std::get<std::string>(m.at("mode")) == "nearest")
        return "align_corners can only be set with the interpolating modes bilinear and bicubic (mode is nearest)";
      return "";
    },
    .family = LayerFamily::Pool,
    .shapes = [](const LayerSpec& s, const std::vector<Shape>& in) {
      const Shape& x = image_input(s, in);
      const auto hw = output_hw(s, x);
      if (hw[0] <= 0 || hw[1] <= 0)
        fail(s, "the output of input " + shape_str(x) + " would be empty (" + std::to_string(hw[0]) + "x" +
                    std::to_string(hw[1]) + "): use a larger scale_factor or size");
      return LayerShapes{{x[0], hw[0], hw[1]}, {}, {}};
    },
    .build = from_attrs([](const LayerSpec& s) {
      std::optional<nn::Size2> size;
      std::optional<std::array<double, 2>> scale;
      if (s.has("size")) size = size2(s, "size");
      else scale = scale_pair(s);
      std::optional<bool> ac;
      if (s.has("align_corners")) ac = s.get_bool("align_corners");
      return make<nn::Upsample>(size, scale, s.get_string("mode"), ac);
    }),
    .onnx = [](OnnxGraph& g, const OnnxLayer& io) {
      const auto& s = io.spec;
      const Shape& x = io.in_shapes.at(0);
      const Shape& y = io.out_shape;
      // Opset 13's shape inference cannot carry the batch dim through the Reshape below.
      if (io.opset < 14) io.refuse("upsample needs ONNX opset 14 or later (Resize drops the batch dim's name in "
                                   "shape inference and opset 13 cannot restore it)");
      const std::string& mode = s.get_string("mode");
      if (mode == "bicubic" && s.has("scale_factor") && y == x)
        io.refuse("bicubic with a scale_factor that keeps the size " + shape_str(x) + ": PyTorch interpolates by " +
                  "1 / scale_factor there, ONNX Runtime copies the input; give size: or another scale_factor");
      const std::array<double, 2> f = s.has("scale_factor") ? scale_pair(s) : std::array<double, 2>{0.0, 0.0};
      const float sh = onnx_scale(s, x[1], y[1], f[0]), sw = onnx_scale(s, x[2], y[2], f[1]);
      const std::string roi = g.floats(io.sub("roi"), {}, {0});  // unused by these modes
      const std::string scales = g.floats(io.sub("scales"), {1.0f, 1.0f, sh, sw}, {4});
      const bool ac = s.has("align_corners") && s.get_bool("align_corners");
      // half_pixel is torch's (dst + 0.5) * in / out - 0.5 at every output size (pytorch_half_pixel
      // maps a size-1 output to 0, which torch 1.13 does not); linear clamps it at 0 like torch.
      const std::string coords = mode == "nearest" ? "asymmetric" : ac ? "align_corners" : "half_pixel";
      std::vector<OnnxAttr> attrs = {{"coordinate_transformation_mode", coords},
                                     {"mode", mode == "nearest" ? "nearest" : mode == "bilinear" ? "linear" : "cubic"}};
      if (mode == "nearest") attrs.push_back({"nearest_mode", std::string("floor")});
      if (mode == "bicubic") attrs.push_back({"cubic_coeff_a", -0.75f});
      const std::string resized = io.sub("resize"), batch = io.sub("batch"), shape = io.sub("shape");
      g.node("Resize", {io.inputs[0], roi, scales}, resized, resized, attrs);
      // [batch, C, oh, ow]: the batch dim taken from the input, so shape inference keeps its name
      g.node("Shape", {io.inputs[0]}, io.sub("input_shape"), io.sub("input_shape"));
      g.node("Gather", {io.sub("input_shape"), g.ints(io.sub("dim0"), {0})}, batch, batch, {{"axis", int64_t{0}}});
      g.node("Concat", {batch, g.ints(io.sub("chw"), {y[0], y[1], y[2]})}, shape, shape, {{"axis", int64_t{0}}});
      g.node("Reshape", {resized, shape}, io.output, s.name);
    },
    .example = {{{2, 3, 4}}, {{"scale_factor", std::vector<double>{2.0, 1.5}}, {"mode", std::string("bilinear")}}},
});

}  // namespace
}  // namespace dl::layers
