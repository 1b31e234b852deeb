// torch.nn.BatchNorm1d, BatchNorm2d, LayerNorm.
#include <algorithm>

#include "engine/graph/layers/common.h"
#include "engine/nn/layer_norm.h"
#include "engine/nn/norm.h"

namespace dl::layers {
namespace {

using A = AttrSchema;

std::vector<AttrSchema> batch_norm_attrs() {
  return {A::floating("eps", 1e-5).above(0).describe("added to the variance for stability"),
          A::floating("momentum", 0.1).range(0, 1).describe("running statistics update factor"),
          A::boolean("affine", true).describe("learnable weight and bias"),
          A::boolean("track_running_stats", true).describe("keep running mean/var for eval")};
}

LayerShapes batch_norm_shapes(const LayerSpec& s, const Shape& x) {
  LayerShapes r{x, {}, {}};
  const int64_t c = x[0];
  if (s.get_bool("affine")) r.params = {{"weight", {c}}, {"bias", {c}}};
  if (s.get_bool("track_running_stats"))
    r.buffers = {{"running_mean", {c}}, {"running_var", {c}}, {"num_batches_tracked", {}}};
  return r;
}

template <class BatchNorm>
LayerSchema::Builder batch_norm_builder() {
  return [](const LayerSpec& s, const std::vector<Shape>& in, Generator&) -> ModulePtr {
    return make<BatchNorm>(in[0][0], s.get_float("eps"), s.get_float("momentum"), s.get_bool("affine"),
                           s.get_bool("track_running_stats"));
  };
}

// (x - mean) / sqrt(var + eps) over `axes` of the layer's input (biased variance), written to
// `out` by the node `node_name`: batch norm on batch statistics, layer norm below opset 17.
void normalize_onnx(OnnxGraph& g, const OnnxLayer& io, const std::vector<int64_t>& axes, float eps,
                    const std::string& out, const std::string& node_name) {
  const std::string mean = io.sub("mean"), diff = io.sub("centered"), sq = io.sub("squared"), var = io.sub("var"),
                    vare = io.sub("var_eps"), sd = io.sub("std");
  g.node("ReduceMean", {io.inputs[0]}, mean, mean, {{"axes", axes}});
  g.node("Sub", {io.inputs[0], mean}, diff, diff);
  g.node("Mul", {diff, diff}, sq, sq);
  g.node("ReduceMean", {sq}, var, var, {{"axes", axes}});
  g.node("Add", {var, g.scalar(io.sub("eps"), eps)}, vare, vare);
  g.node("Sqrt", {vare}, sd, sd);
  g.node("Div", {diff, sd}, out, node_name);
}

// Inference form: BatchNormalization on the running statistics. Without running statistics
// PyTorch normalises with the batch's own statistics in eval mode too, written out as
// (x - mean) / sqrt(var + eps) over every axis but the channel one (biased variance).
void batch_norm_onnx(OnnxGraph& g, const OnnxLayer& io) {
  const auto& s = io.spec;
  const int64_t C = io.in_shapes[0].at(0);
  const bool affine = s.get_bool("affine");
  const float eps = static_cast<float>(s.get_float("eps"));
  if (s.get_bool("track_running_stats")) {
    std::string scale = affine ? g.weight(io, "weight") : g.floats(io.sub("scale"), std::vector<float>(C, 1.f), {C});
    std::string bias = affine ? g.weight(io, "bias") : g.floats(io.sub("bias"), std::vector<float>(C, 0.f), {C});
    g.node("BatchNormalization",
           {io.inputs[0], scale, bias, g.weight(io, "running_mean"), g.weight(io, "running_var")}, io.output, s.name,
           {{"epsilon", eps}});
    return;
  }
  std::vector<int64_t> axes = {0};
  for (int64_t a = 2; a < io.rank(); ++a) axes.push_back(a);
  Shape bshape = {C};  // a per-channel tensor broadcast against [N, C, ...]
  for (int64_t a = 2; a < io.rank(); ++a) bshape.push_back(1);
  if (!affine) {
    normalize_onnx(g, io, axes, eps, io.output, s.name);
    return;
  }
  const std::string norm = io.sub("normalized"), scaled = io.sub("scaled"), shape = g.ints(io.sub("shape"), bshape);
  const std::string w = io.sub("weight_c"), bi = io.sub("bias_c");
  normalize_onnx(g, io, axes, eps, norm, norm);
  g.node("Reshape", {g.weight(io, "weight"), shape}, w, w);
  g.node("Reshape", {g.weight(io, "bias"), shape}, bi, bi);
  g.node("Mul", {norm, w}, scaled, scaled);
  g.node("Add", {scaled, bi}, io.output, s.name);
}

const RegisterLayer batch_norm1d({
    .type = "batch_norm1d",
    .doc = "torch.nn.BatchNorm1d over [N, C] or [N, C, L]",
    .attrs = batch_norm_attrs(),
    .family = LayerFamily::Norm,
    .shapes = [](const LayerSpec& s, const std::vector<Shape>& in) {
      const Shape& x = single(s, in);
      if (x.empty() || x.size() > 2) fail(s, "expects [C] or [C, L] per sample, got " + shape_str(x));
      return batch_norm_shapes(s, x);
    },
    .build = batch_norm_builder<nn::BatchNorm1d>(),
    .onnx = batch_norm_onnx,
    .saved_copies = 2,
    .example = {{{3, 4}}, {}},
});

const RegisterLayer batch_norm2d({
    .type = "batch_norm2d",
    .doc = "torch.nn.BatchNorm2d over [N, C, H, W]",
    .attrs = batch_norm_attrs(),
    .family = LayerFamily::Norm,
    .shapes = [](const LayerSpec& s, const std::vector<Shape>& in) { return batch_norm_shapes(s, image_input(s, in)); },
    .build = batch_norm_builder<nn::BatchNorm2d>(),
    .onnx = batch_norm_onnx,
    .saved_copies = 2,
    .example = {{{3, 4, 4}}, {}},
});

// normalized_shape: the given one, else the input's last dim (LayerNorm(x.shape[-1])).
Shape normalized_shape_of(const LayerSpec& s, const Shape& x) {
  return s.has("normalized_shape") ? s.attr<std::vector<int64_t>>("normalized_shape") : Shape{x.back()};
}

// LayerNormalization (opset 17) over the trailing axes; below 17 the same written out.
void layer_norm_onnx(OnnxGraph& g, const OnnxLayer& io) {
  const auto& s = io.spec;
  const Shape ns = normalized_shape_of(s, io.in_shapes.at(0));
  const bool affine = s.get_bool("elementwise_affine");
  const float eps = static_cast<float>(s.get_float("eps"));
  const int64_t first = io.rank() - static_cast<int64_t>(ns.size());
  if (io.opset >= 17) {
    const std::vector<float> ones(static_cast<size_t>(shape_numel(ns)), 1.f);  // Scale is not optional
    std::vector<std::string> in = {io.inputs[0], affine ? g.weight(io, "weight") : g.floats(io.sub("scale"), ones, ns)};
    if (affine) in.push_back(g.weight(io, "bias"));
    g.node("LayerNormalization", in, io.output, s.name, {{"axis", first}, {"epsilon", eps}});
    return;
  }
  std::vector<int64_t> axes;
  for (int64_t a = first; a < io.rank(); ++a) axes.push_back(a);
  if (!affine) {
    normalize_onnx(g, io, axes, eps, io.output, s.name);
    return;
  }
  const std::string norm = io.sub("normalized"), scaled = io.sub("scaled");
  normalize_onnx(g, io, axes, eps, norm, norm);
  g.node("Mul", {norm, g.weight(io, "weight")}, scaled, scaled);  // [ns] broadcasts over the leading dims
  g.node("Add", {scaled, g.weight(io, "bias")}, io.output, s.name);
}

const RegisterLayer layer_norm({
    .type = "layer_norm",
    .doc = "torch.nn.LayerNorm over each sample's trailing dims",
    .attrs = {A::int_list("normalized_shape").optional().at_least(1).describe(
                  "the trailing dims of the input to normalise over; default: the last dim"),
              A::floating("eps", 1e-5).above(0).describe("added to the variance for stability"),
              A::boolean("elementwise_affine", true).describe("learnable weight and bias")},
    .family = LayerFamily::Norm,
    .shapes = [](const LayerSpec& s, const std::vector<Shape>& in) {
      const Shape& x = single(s, in);
      if (x.empty()) fail(s, "expects at least a 1-d input per sample");
      const Shape ns = normalized_shape_of(s, x);
      if (ns.empty() || ns.size() > x.size() || !std::equal(ns.begin(), ns.end(), x.end() - ns.size()))
        fail(s, "normalized_shape " + shape_str(ns) + " must be the trailing dims of the input " + shape_str(x) +
                    " (per sample), e.g. normalized_shape: [" + std::to_string(x.back()) + "]");
      LayerShapes r{x, {}, {}};
      if (s.get_bool("elementwise_affine")) r.params = {{"weight", ns}, {"bias", ns}};
      return r;
    },
    .build = [](const LayerSpec& s, const std::vector<Shape>& in, Generator&) -> ModulePtr {
      return make<nn::LayerNorm>(normalized_shape_of(s, in[0]), s.get_float("eps"), s.get_bool("elementwise_affine"));
    },
    .onnx = layer_norm_onnx,
    .saved_copies = 2,
    .example = {{{3, 4}}, {}},
});

}  // namespace
}  // namespace dl::layers
