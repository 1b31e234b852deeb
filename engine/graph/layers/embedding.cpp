// torch.nn.Embedding.
#include "engine/graph/layers/common.h"
#include "engine/nn/embedding.h"

namespace dl::layers {
namespace {

using A = AttrSchema;

std::optional<int64_t> padding_idx_of(const LayerSpec& s) {
  return s.has("padding_idx") ? std::optional<int64_t>(s.get_int("padding_idx")) : std::nullopt;
}
std::optional<double> max_norm_of(const LayerSpec& s) {
  return s.has("max_norm") ? std::optional<double>(s.get_float("max_norm")) : std::nullopt;
}

// Gather of the table's rows. The indices go through Cast(to int64) so the mapping does not
// depend on how the exporter declares the model input (int64 token ids, or float holding
// integers); for an int64 input the Cast is a no-op. With max_norm, the gathered rows are
// scaled as torch.embedding_renorm_ scales the table's rows before the lookup:
//   rows * (norm > max_norm ? max_norm / (norm + 1e-7) : 1),  norm = sum(|rows|^p, -1)^(1/p).
void embedding_onnx(OnnxGraph& g, const OnnxLayer& io) {
  const auto& s = io.spec;
  const std::string idx = io.sub("indices");
  g.node("Cast", {io.inputs[0]}, idx, idx, {{"to", int64_t{7}}});  // TensorProto INT64
  const std::string table = g.weight(io, "weight");
  if (!s.has("max_norm")) {
    g.node("Gather", {table, idx}, io.output, s.name, {{"axis", int64_t{0}}});
    return;
  }
  const float p = static_cast<float>(s.get_float("norm_type"));
  const std::string limit = g.scalar(io.sub("max_norm"), static_cast<float>(s.get_float("max_norm")));
  const std::string rows = io.sub("rows"), mag = io.sub("abs"), pw = io.sub("pow"), total = io.sub("sum"),
                    norm = io.sub("norm"), over = io.sub("over_max"), shifted = io.sub("norm_eps"),
                    ratio = io.sub("ratio"), scale = io.sub("scale");
  g.node("Gather", {table, idx}, rows, rows, {{"axis", int64_t{0}}});
  g.node("Abs", {rows}, mag, mag);
  g.node("Pow", {mag, g.scalar(io.sub("p"), p)}, pw, pw);
  g.node("ReduceSum", {pw, g.ints(io.sub("axes"), {-1})}, total, total, {{"keepdims", int64_t{1}}});
  g.node("Pow", {total, g.scalar(io.sub("inv_p"), 1.0f / p)}, norm, norm);
  g.node("Greater", {norm, limit}, over, over);
  g.node("Add", {norm, g.scalar(io.sub("eps"), 1e-7f)}, shifted, shifted);
  g.node("Div", {limit, shifted}, ratio, ratio);
  g.node("Where", {over, ratio, g.scalar(io.sub("one"), 1.0f)}, scale, scale);
  g.node("Mul", {rows, scale}, io.output, s.name);
}

const RegisterLayer embedding({
    .type = "embedding",
    .doc = "torch.nn.Embedding: int64 token indices [*] per sample -> their vectors [*, embedding_dim]",
    .attrs = {A::integer("num_embeddings").at_least(1).keyword(std::string(kNumClassesWord), kNumClassesAttr)
                  .describe("size of the table (the vocabulary size; num_classes: the data's, e.g. a text corpus's)"),
              A::integer("embedding_dim").at_least(1).describe("size of each vector"),
              A::integer("padding_idx").optional().describe(
                  "row that gets no gradient and starts at zero (negative counts from the end); default: none"),
              A::floating("max_norm").optional().above(0).describe(
                  "rows looked up with a larger norm are renormalised to this norm; default: none"),
              A::floating("norm_type", 2.0).above(0).describe("p of the p-norm for max_norm")},
    .rule = [](const AttrMap& m) -> std::string {
      const int64_t v = attr_int(m, "num_embeddings");
      if (!m.count("padding_idx") || v == kNumClassesAttr) return "";  // num_classes: checked when built
      const int64_t p = attr_int(m, "padding_idx");
      if (p < -v || p >= v)
        return "padding_idx (" + std::to_string(p) + ") must be within num_embeddings (in [" + std::to_string(-v) +
               ", " + std::to_string(v - 1) + "])";
      return "";
    },
    .family = LayerFamily::Embedding,
    .shapes = [](const LayerSpec& s, const std::vector<Shape>& in) {
      Shape out = single(s, in);
      const int64_t dim = s.get_int("embedding_dim");
      out.push_back(dim);
      return weight_bias(out, {s.get_int("num_embeddings"), dim}, false);
    },
    .build = [](const LayerSpec& s, const std::vector<Shape>&, Generator& g) {
      return make<nn::Embedding>(s.get_int("num_embeddings"), s.get_int("embedding_dim"), padding_idx_of(s),
                                 max_norm_of(s), s.get_float("norm_type"), g);
    },
    .onnx = embedding_onnx,
    .example = {{{4}}, {{"num_embeddings", int64_t{10}}, {"embedding_dim", int64_t{3}}}, DType::I64},
});

}  // namespace
}  // namespace dl::layers
