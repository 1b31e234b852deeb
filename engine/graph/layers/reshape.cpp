// torch.nn.Flatten and a per-sample reshape (torch.Tensor.view).
#include "engine/graph/layers/common.h"
#include "engine/nn/linear.h"

namespace dl::layers {
namespace {

using A = AttrSchema;

const RegisterLayer flatten({
    .type = "flatten",
    .doc = "torch.nn.Flatten: merge dims start_dim..end_dim",
    .attrs = {A::integer("start_dim", 1).describe("first dim to flatten"),
              A::integer("end_dim", -1).describe("last dim to flatten")},
    .family = LayerFamily::Reshape,
    .shapes = [](const LayerSpec& s, const std::vector<Shape>& in) {
      // On the batched shape, like torch.nn.Flatten (start_dim 1 keeps the batch dim).
      const Shape b = with_batch(single(s, in));
      const int64_t n = static_cast<int64_t>(b.size());
      int64_t start = 0, end = 0;
      try {
        start = wrap_dim(s.get_int("start_dim"), n, "start_dim");
        end = wrap_dim(s.get_int("end_dim"), n, "end_dim");
      } catch (const std::out_of_range& e) {
        fail(s, std::string(e.what()) + " (the input per sample is " + shape_str(b) + " with the batch dim)");
      }
      if (start > end) fail(s, "start_dim must not come after end_dim");
      Shape out(b.begin(), b.begin() + start);
      out.push_back(checked_numel(Shape(b.begin() + start, b.begin() + end + 1)));
      out.insert(out.end(), b.begin() + end + 1, b.end());
      return LayerShapes{Shape(out.begin() + 1, out.end()), {}, {}};
    },
    .build = from_attrs([](const LayerSpec& s) {
      return make<nn::Flatten>(s.get_int("start_dim"), s.get_int("end_dim"));
    }),
    .onnx = [](OnnxGraph& g, const OnnxLayer& io) {
      const int64_t start = io.axis(io.spec.get_int("start_dim")), end = io.axis(io.spec.get_int("end_dim"));
      if (start == 0)
        io.refuse("start_dim 0 merges the batch dimension into the features; an exported model keeps "
                  "dim 0 as the batch (use start_dim: 1)");
      if (start == 1 && end == io.rank() - 1) {
        g.op(io, "Flatten", {{"axis", int64_t{1}}});
        return;
      }
      std::vector<int64_t> shape = {0};  // 0: copy the (possibly dynamic) batch dim
      shape.insert(shape.end(), io.out_shape.begin(), io.out_shape.end());
      g.node("Reshape", {io.inputs[0], g.ints(io.sub("shape"), shape)}, io.output, io.spec.name);
    },
    .saved_copies = 0,  // a view
    .example = {{{2, 3, 4}}, {}},
});

// The per-sample shape `shape` asks for, its -1 resolved against an input of `numel` elements.
Shape resolve_reshape(const LayerSpec& s, const Shape& x) {
  Shape out = s.attr<std::vector<int64_t>>("shape");
  const int64_t numel = checked_numel(x);
  int64_t known = 1, infer = -1;
  for (size_t i = 0; i < out.size(); ++i) {
    if (out[i] == -1) {
      if (infer >= 0) fail(s, "only one dim of shape may be -1, got " + shape_str(out));
      infer = static_cast<int64_t>(i);
    } else if (out[i] < 0) {
      fail(s, "shape " + shape_str(out) + " has a negative size other than -1");
    } else {
      known = checked_mul(known, out[i], "the reshaped size");
    }
  }
  if (infer >= 0) {
    if (known == 0 || numel % known != 0)
      fail(s, "shape " + shape_str(out) + " is invalid for an input of " + std::to_string(numel) + " elements " +
                  shape_str(x) + " per sample");
    out[static_cast<size_t>(infer)] = numel / known;
  } else if (known != numel) {
    fail(s, "shape " + shape_str(out) + " is invalid for an input of " + std::to_string(numel) + " elements " +
                shape_str(x) + " per sample");
  }
  return out;
}

const RegisterLayer reshape({
    .type = "reshape",
    .doc = "torch.Tensor.view of each sample: x.view(N, *shape), the batch dim kept",
    .attrs = {A::int_list("shape").describe("the per-sample shape; one dim may be -1 (inferred)")},
    .family = LayerFamily::Reshape,
    .shapes = [](const LayerSpec& s, const std::vector<Shape>& in) {
      return LayerShapes{resolve_reshape(s, single(s, in)), {}, {}};
    },
    .build = [](const LayerSpec& s, const std::vector<Shape>& in, Generator&) {
      return make<nn::Reshape>(resolve_reshape(s, in[0]));
    },
    .onnx = [](OnnxGraph& g, const OnnxLayer& io) {
      std::vector<int64_t> shape = {0};  // 0: copy the (possibly dynamic) batch dim
      shape.insert(shape.end(), io.out_shape.begin(), io.out_shape.end());
      g.node("Reshape", {io.inputs[0], g.ints(io.sub("shape"), shape)}, io.output, io.spec.name);
    },
    .saved_copies = 0,  // a view
    .example = {{{2, 3, 4}}, {{"shape", std::vector<int64_t>{4, -1}}}},
});

}  // namespace
}  // namespace dl::layers
