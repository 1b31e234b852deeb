// Layers of several inputs: element-wise sum (residual connections) and torch.cat.
#include "engine/graph/layers/common.h"
#include "engine/nn/container.h"

namespace dl::layers {
namespace {

using A = AttrSchema;

const RegisterLayer add({
    .type = "add",
    .doc = "element-wise sum of its inputs (residual connection)",
    .min_inputs = 2,
    .max_inputs = LayerSchema::kUnbounded,
    .family = LayerFamily::Merge,
    .shapes = [](const LayerSpec& s, const std::vector<Shape>& in) {
      for (const Shape& x : in)
        if (x != in[0])
          fail(s, "all inputs of add must have the same shape, got " + shape_str(in[0]) + " and " + shape_str(x));
      return LayerShapes{in[0], {}, {}};
    },
    .build = from_attrs([](const LayerSpec&) { return make<nn::Add>(); }),
    .onnx = [](OnnxGraph& g, const OnnxLayer& io) { g.op(io, io.inputs.size() == 2 ? "Add" : "Sum"); },
    .example = {{{3}, {3}}, {}},
});

const RegisterLayer concat({
    .type = "concat",
    .doc = "torch.cat of its inputs along dim",
    .attrs = {A::integer("dim", 1).describe("dim to concatenate along")},
    .min_inputs = 2,
    .max_inputs = LayerSchema::kUnbounded,
    .family = LayerFamily::Merge,
    .shapes = [](const LayerSpec& s, const std::vector<Shape>& in) {
      // On the batched shapes, like torch.cat (dim 1 is the first per-sample dim).
      Shape out = with_batch(in[0]);
      int64_t dim = 0;
      try {
        dim = wrap_dim(s.get_int("dim"), static_cast<int64_t>(out.size()), "dim");
      } catch (const std::out_of_range& e) {
        fail(s, std::string(e.what()) + " (the inputs per sample are " + shape_str(in[0]) + " with the batch dim)");
      }
      for (size_t i = 1; i < in.size(); ++i) {
        const Shape b = with_batch(in[i]);
        bool match = b.size() == out.size();
        for (size_t d = 0; match && d < b.size(); ++d) match = static_cast<int64_t>(d) == dim || b[d] == out[d];
        if (!match)
          fail(s, "inputs must match in every dim except dim " + std::to_string(dim) + ", got " + shape_str(in[0]) +
                      " and " + shape_str(in[i]) + " per sample");
        out[dim] = checked_add(out[dim], b[dim], "the concatenated size");
      }
      return LayerShapes{Shape(out.begin() + 1, out.end()), {}, {}};
    },
    .build = from_attrs([](const LayerSpec& s) { return make<nn::Concat>(s.get_int("dim")); }),
    .onnx = onnx_op_along_dim("Concat"),
    .example = {{{2, 3}, {2, 3}}, {}},
});

}  // namespace
}  // namespace dl::layers
