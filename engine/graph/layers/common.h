// Helpers shared by the layer registrations in this folder (and engine/graph/model.cpp): how a
// shape rule refuses an input, common shape rules and builder shorthands. Internal to
// engine/graph.
#pragma once
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/graph/layer_schema.h"
#include "engine/graph/model.h"
#include "engine/ops.h"

namespace dl::layers {

using nn::ModulePtr;

// "recipe.yaml:9:7: layer 'fc' (linear)": how errors name a node.
std::string layer_label(const LayerSpec& s);
// Throws GraphError "<layer_label>: <what>".
[[noreturn]] void fail(const LayerSpec& s, const std::string& what);

// The one input of a single-input layer.
const Shape& single(const LayerSpec& s, const std::vector<Shape>& in);
// The one input, which must be image-like [C, H, W]; names the fix otherwise.
const Shape& image_input(const LayerSpec& s, const std::vector<Shape>& in);
// `x` with a batch dim of 1 in front.
Shape with_batch(const Shape& x);
// A pair attribute as nn::Size2 (height, width).
nn::Size2 size2(const LayerSpec& s, const char* key);

// Output [channels, oh, ow] of a 2-d window layer (conv, pooling) on input `x` [C, H, W], from
// the per-dim output size rule `size(dim_size, i)`; refuses an empty output naming the window.
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

// Shape rule of a layer whose output has its single input's shape and that owns no tensors.
LayerShapes same_shape(const LayerSpec& s, const std::vector<Shape>& in);
// `output`, a parameter "weight" of shape `weight` and, when `bias`, "bias" [weight[0]].
LayerShapes weight_bias(Shape output, Shape weight, bool bias);

template <class M, class... Args>
ModulePtr make(Args&&... args) {
  return std::make_shared<M>(std::forward<Args>(args)...);
}

// A builder for a module made from the attributes alone (no input shapes, no parameters):
//   .build = from_attrs([](const LayerSpec& s) { return make<nn::ELU>(s.get_float("alpha")); }),
template <class F>
LayerSchema::Builder from_attrs(F make_module) {
  return [make_module](const LayerSpec& s, const std::vector<Shape>&, Generator&) -> ModulePtr {
    return make_module(s);
  };
}

// ONNX mappings: the layer as the single operator `op` on its inputs, without attributes, or
// with the attribute axis = the layer's `dim` (refused when out of range; written as given).
OnnxMapping onnx_op(const char* op);
OnnxMapping onnx_op_along_dim(const char* op);

}  // namespace dl::layers
