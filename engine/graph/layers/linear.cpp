// torch.nn.Linear.
#include "engine/graph/layers/common.h"
#include "engine/nn/linear.h"

namespace dl::layers {
namespace {

using A = AttrSchema;

const RegisterLayer linear({
    .type = "linear",
    .doc = "torch.nn.Linear: y = x W^T + b over the last dim",
    .attrs = {A::integer("out_features").at_least(1).keyword(std::string(kNumClassesWord), kNumClassesAttr)
                  .describe("size of each output sample (num_classes: the data's number of classes)"),
              A::boolean("bias", true).describe("learn an additive bias")},
    .family = LayerFamily::Linear,
    .shapes = [](const LayerSpec& s, const std::vector<Shape>& in) {
      Shape out = single(s, in);
      if (out.empty()) fail(s, "expects at least a 1-d input per sample");
      const int64_t in_features = out.back();
      out.back() = s.get_int("out_features");
      return weight_bias(out, {out.back(), in_features}, s.get_bool("bias"));
    },
    .build = [](const LayerSpec& s, const std::vector<Shape>& in, Generator& g) {
      return make<nn::Linear>(in[0].back(), s.get_int("out_features"), s.get_bool("bias"), g);
    },
    .onnx = [](OnnxGraph& g, const OnnxLayer& io) {
      const bool bias = io.spec.get_bool("bias");
      const std::string w = g.weight(io, "weight");
      if (io.rank() == 2) {  // Gemm: Y = X W^T + b, W stays in PyTorch's [out, in] layout
        std::vector<std::string> in = {io.inputs[0], w};
        if (bias) in.push_back(g.weight(io, "bias"));
        g.node("Gemm", in, io.output, io.spec.name, {{"transB", int64_t{1}}});
        return;
      }
      // Over the last dim of a higher-rank input: MatMul(X, W^T) (+ b).
      const std::string wt = io.sub("weight_t");
      g.node("Transpose", {w}, wt, wt, {{"perm", std::vector<int64_t>{1, 0}}});
      if (!bias) {
        g.node("MatMul", {io.inputs[0], wt}, io.output, io.spec.name);
        return;
      }
      const std::string mm = io.sub("matmul");
      g.node("MatMul", {io.inputs[0], wt}, mm, mm);
      g.node("Add", {mm, g.weight(io, "bias")}, io.output, io.spec.name);
    },
    .example = {{{2, 4}}, {{"out_features", int64_t{3}}}},
});

}  // namespace
}  // namespace dl::layers
