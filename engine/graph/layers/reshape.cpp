// torch.nn.Flatten, a per-sample reshape (torch.Tensor.view) and torch.Tensor.permute.
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

// `dims` of a permute layer on per-sample input `x`, checked to be a permutation of the batched
// input's dims that keeps the batch dim first, made non-negative.
std::vector<int64_t> resolve_permute(const LayerSpec& s, const Shape& x) {
  const std::vector<int64_t> given = s.attr<std::vector<int64_t>>("dims");
  const int64_t n = static_cast<int64_t>(x.size()) + 1;
  const std::string input = " (the input per sample is " + shape_str(x) + ", " + std::to_string(n) +
                            " dims with the batch dim)";
  if (static_cast<int64_t>(given.size()) != n)
    fail(s, "dims " + shape_str(given) + " has " + std::to_string(given.size()) + " entries, expected " +
                std::to_string(n) + input);
  std::vector<int64_t> dims(given.size());
  std::vector<bool> seen(given.size(), false);
  for (size_t i = 0; i < given.size(); ++i) {
    if (given[i] < -n || given[i] >= n)
      fail(s, "dims " + shape_str(given) + ": dim " + std::to_string(given[i]) + " is out of range [" +
                  std::to_string(-n) + ", " + std::to_string(n - 1) + "]" + input);
    dims[i] = given[i] < 0 ? given[i] + n : given[i];
    if (seen[static_cast<size_t>(dims[i])])
      fail(s, "dims " + shape_str(given) + " is not a permutation: dim " + std::to_string(dims[i]) + " repeats");
    seen[static_cast<size_t>(dims[i])] = true;
  }
  if (dims[0] != 0)
    fail(s, "dims " + shape_str(given) + " moves the batch dim: dims[0] must be 0 (dims count the batch dim, "
                "as torch.Tensor.permute does)");
  return dims;
}

const RegisterLayer permute({
    .type = "permute",
    .doc = "torch.Tensor.permute: reorder the dims, the batch dim included and kept first (dims[0] = 0)",
    .attrs = {A::int_list("dims").describe("a permutation of the input's dims counting the batch dim, e.g. "
                                           "[0, 3, 1, 2] turns [N, C, H, W] into [N, W, C, H]")},
    .family = LayerFamily::Reshape,
    .shapes = [](const LayerSpec& s, const std::vector<Shape>& in) {
      const Shape& x = single(s, in);
      const std::vector<int64_t> dims = resolve_permute(s, x);
      Shape out;
      for (size_t i = 1; i < dims.size(); ++i) out.push_back(x[static_cast<size_t>(dims[i] - 1)]);
      return LayerShapes{out, {}, {}};
    },
    .build = [](const LayerSpec& s, const std::vector<Shape>& in, Generator&) {
      return make<nn::Permute>(resolve_permute(s, in[0]));
    },
    .onnx = [](OnnxGraph& g, const OnnxLayer& io) {
      g.op(io, "Transpose", {{"perm", resolve_permute(io.spec, io.in_shapes[0])}});
    },
    .saved_copies = 0,  // a view
    .example = {{{2, 3, 4}}, {{"dims", std::vector<int64_t>{0, 3, 1, 2}}}},
});

}  // namespace
}  // namespace dl::layers
