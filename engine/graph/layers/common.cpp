#include "engine/graph/layers/common.h"

namespace dl::layers {

std::string layer_label(const LayerSpec& s) {
  return (s.loc.line > 0 ? s.loc.str() + ": " : "") + "layer '" + s.name + "' (" + s.type + ")";
}

void fail(const LayerSpec& s, const std::string& what) { throw GraphError(layer_label(s) + ": " + what); }

const Shape& single(const LayerSpec& s, const std::vector<Shape>& in) {
  if (in.size() != 1) fail(s, "expects exactly one input, got " + std::to_string(in.size()));
  return in[0];
}

const Shape& image_input(const LayerSpec& s, const std::vector<Shape>& in) {
  const Shape& x = single(s, in);
  if (x.size() != 3)
    fail(s, "expects an input of shape [C, H, W] per sample, got " + shape_str(x) +
                (x.size() == 1 ? " (a flatten layer comes before it?)" : ""));
  return x;
}

Shape with_batch(const Shape& x) {
  Shape b{1};
  b.insert(b.end(), x.begin(), x.end());
  return b;
}

nn::Size2 size2(const LayerSpec& s, const char* key) {
  auto p = s.get_pair(key);
  return nn::Size2(p[0], p[1]);
}

LayerShapes same_shape(const LayerSpec& s, const std::vector<Shape>& in) { return {single(s, in), {}, {}}; }

LayerShapes weight_bias(Shape output, Shape weight, bool bias) {
  LayerShapes r{std::move(output), {{"weight", weight}}, {}};
  if (bias) r.params.push_back({"bias", {weight[0]}});
  return r;
}

OnnxMapping onnx_op(const char* op) {
  return [op](OnnxGraph& g, const OnnxLayer& io) { g.op(io, op); };
}

OnnxMapping onnx_op_along_dim(const char* op) {
  return [op](OnnxGraph& g, const OnnxLayer& io) {
    io.axis(io.spec.get_int("dim"));
    g.op(io, op, {{"axis", io.spec.get_int("dim")}});
  };
}

}  // namespace dl::layers
