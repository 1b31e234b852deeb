// torch.nn.LSTM, GRU and RNN, and last_step (the output at each sequence's last valid step).
// Inputs: x [N, T, I] per batch (graph values are batch-first, so batch_first: true is required)
// and optionally lengths i64 [N] (packed-sequence semantics, engine/ops/rnn.h). The value is the
// tuple {output [N, T, D*H], h_n [N, L*D, H], c_n (lstm)}: `inputs: [lstm.1]` picks h_n.
//
// ONNX: one LSTM/GRU/RNN node per layer (time-major, so Transposes around it), both directions
// in one node; PyTorch's gate rows are reordered with a Gather on the state_dict tensors (LSTM
// i f g o -> ONNX i o f c, GRU r z n -> z r h with linear_before_reset = 1), biases concatenated
// [Wb, Rb]; lengths become sequence_lens (int32).
#include <functional>

#include "engine/graph/layers/common.h"
#include "engine/nn/rnn.h"

namespace dl::layers {
namespace {

using A = AttrSchema;

bool is_lstm(const LayerSpec& s) { return s.type == "lstm"; }

RnnMode mode_of(const LayerSpec& s) {
  if (s.type == "lstm") return RnnMode::LSTM;
  if (s.type == "gru") return RnnMode::GRU;
  return s.get_string("nonlinearity") == "relu" ? RnnMode::RNN_RELU : RnnMode::RNN_TANH;
}

// PyTorch's arguments after input_size (inferred) in its order; rnn adds nonlinearity after
// num_layers.
std::vector<AttrSchema> rnn_attrs(bool with_nonlinearity) {
  std::vector<AttrSchema> a = {
      A::integer("hidden_size").at_least(1).describe("number of features in the hidden state h"),
      A::integer("num_layers", 1).at_least(1).describe("number of stacked recurrent layers")};
  if (with_nonlinearity)
    a.push_back(A::choice("nonlinearity", {"tanh", "relu"}, "tanh").describe("the non-linearity of each step"));
  a.push_back(A::boolean("bias", true).describe("use the biases b_ih and b_hh"));
  a.push_back(A::boolean("batch_first", false)
                  .describe("input and output are [N, T, F]; must be true in a graph (its values are batch-first)"));
  a.push_back(A::floating("dropout", 0.0).range(0, 1).describe(
      "dropout on the outputs of each layer except the last, while training"));
  a.push_back(A::boolean("bidirectional", false).describe("a second, reverse direction per layer"));
  return a;
}

std::string batch_first_rule(const AttrMap& m) {
  if (!std::get<bool>(m.at("batch_first")))
    return "batch_first: false is not supported in a graph: the graph's values are batch-first; set batch_first: true";
  return "";
}

// Inputs: x [T, I] per sample and optionally lengths (a scalar per sample).
LayerShapes rnn_shapes(const LayerSpec& s, const std::vector<Shape>& in) {
  const Shape& x = in[0];
  if (x.size() != 2)
    fail(s, "expected an input [N, T, input_size] (batch-first, [T, input_size] per sample), got " + shape_str(x) +
                " per sample");
  if (in.size() == 2 && !in[1].empty())
    fail(s, "the second input must be the sequence lengths (one integer per sample), got " + shape_str(in[1]) +
                " per sample");
  const int64_t H = s.get_int("hidden_size"), L = s.get_int("num_layers"), D = s.get_bool("bidirectional") ? 2 : 1;
  const int64_t GH = checked_mul(rnn_gate_count(mode_of(s)), H, "the gate size");
  LayerShapes r{{x[0], checked_mul(D, H, "the output size")}, {}, {}};
  for (int64_t l = 0; l < L; ++l)
    for (int64_t d = 0; d < D; ++d) {
      const std::string sfx = "_l" + std::to_string(l) + (d == 1 ? "_reverse" : "");
      r.params.push_back({"weight_ih" + sfx, {GH, l == 0 ? x[1] : D * H}});
      r.params.push_back({"weight_hh" + sfx, {GH, H}});
      if (s.get_bool("bias")) {
        r.params.push_back({"bias_ih" + sfx, {GH}});
        r.params.push_back({"bias_hh" + sfx, {GH}});
      }
    }
  r.extra_outputs.push_back({L * D, H});
  if (is_lstm(s)) r.extra_outputs.push_back({L * D, H});
  return r;
}

nn::ModulePtr build_rnn(const LayerSpec& s, const std::vector<Shape>& in, Generator& g) {
  const int64_t I = in[0][1], H = s.get_int("hidden_size"), L = s.get_int("num_layers");
  const bool bias = s.get_bool("bias"), bf = s.get_bool("batch_first"), bi = s.get_bool("bidirectional");
  const double p = s.get_float("dropout");
  if (s.type == "lstm") return make<nn::LSTM>(I, H, L, bias, bf, p, bi, g);
  if (s.type == "gru") return make<nn::GRU>(I, H, L, bias, bf, p, bi, g);
  return make<nn::RNN>(I, H, L, s.get_string("nonlinearity"), bias, bf, p, bi, g);
}

// ONNX gate row order as indices into PyTorch's rows (blocks of H).
std::vector<int64_t> onnx_gate_rows(RnnMode mode, int64_t H) {
  std::vector<int64_t> blocks = mode == RnnMode::LSTM ? std::vector<int64_t>{0, 3, 1, 2}   // i o f c
                                : mode == RnnMode::GRU ? std::vector<int64_t>{1, 0, 2}     // z r h
                                                       : std::vector<int64_t>{0};
  std::vector<int64_t> rows;
  for (int64_t b : blocks)
    for (int64_t j = 0; j < H; ++j) rows.push_back(b * H + j);
  return rows;
}

void rnn_onnx(OnnxGraph& g, const OnnxLayer& io) {
  const LayerSpec& s = io.spec;
  const RnnMode mode = mode_of(s);
  const int64_t H = s.get_int("hidden_size"), L = s.get_int("num_layers"), D = s.get_bool("bidirectional") ? 2 : 1;
  const char* op = mode == RnnMode::LSTM ? "LSTM" : mode == RnnMode::GRU ? "GRU" : "RNN";
  const std::string rows = g.ints(io.sub("gate_rows"), onnx_gate_rows(mode, H));
  const std::string axis0 = g.ints(io.sub("axis0"), {0});
  const std::string flat = g.ints(io.sub("merge_dirs"), {0, 0, -1});
  // A state_dict tensor with its gate rows in ONNX's order and a leading direction axis.
  auto reordered = [&](const std::string& key) {
    g.node("Gather", {g.weight(io, key), rows}, io.sub(key + "_onnx"), io.sub(key + "_onnx"), {{"axis", int64_t{0}}});
    return io.sub(key + "_onnx");
  };
  auto unsqueeze0 = [&](const std::string& v) {
    g.node("Unsqueeze", {v, axis0}, v + "_dir", v + "_dir");
    return v + "_dir";
  };
  auto per_direction = [&](int64_t l, const std::string& what, const std::function<std::string(const std::string&)>& one) {
    std::vector<std::string> dirs;
    for (int64_t d = 0; d < D; ++d) dirs.push_back(unsqueeze0(one("_l" + std::to_string(l) + (d ? "_reverse" : ""))));
    if (D == 1) return dirs[0];
    const std::string v = io.sub(what + "_l" + std::to_string(l));
    g.node("Concat", dirs, v, v, {{"axis", int64_t{0}}});
    return v;
  };
  std::string lens;
  if (io.inputs.size() == 2) {
    lens = io.sub("sequence_lens");
    g.node("Cast", {io.inputs[1]}, lens, lens, {{"to", int64_t{6}}});  // int32
  }
  std::string x = io.sub("x_time_major");
  g.node("Transpose", {io.inputs[0]}, x, x, {{"perm", std::vector<int64_t>{1, 0, 2}}});
  std::vector<std::string> hs, cs;
  std::string y;
  for (int64_t l = 0; l < L; ++l) {
    const std::string ls = "_l" + std::to_string(l);
    std::vector<std::string> in = {x, per_direction(l, "W", [&](const std::string& sfx) { return reordered("weight_ih" + sfx); }),
                                   per_direction(l, "R", [&](const std::string& sfx) { return reordered("weight_hh" + sfx); })};
    if (s.get_bool("bias")) {
      in.push_back(per_direction(l, "B", [&](const std::string& sfx) {
        const std::string v = io.sub("bias" + sfx);
        g.node("Concat", {reordered("bias_ih" + sfx), reordered("bias_hh" + sfx)}, v, v, {{"axis", int64_t{0}}});
        return v;
      }));
    } else if (!lens.empty()) {
      in.push_back("");
    }
    if (!lens.empty()) in.push_back(lens);
    std::vector<OnnxAttr> attrs = {{"direction", std::string(D == 2 ? "bidirectional" : "forward")},
                                   {"hidden_size", H}};
    if (mode == RnnMode::GRU) attrs.push_back({"linear_before_reset", int64_t{1}});
    if (mode == RnnMode::RNN_RELU) attrs.push_back({"activations", std::vector<std::string>(D, "Relu")});
    y = io.sub("Y" + ls);  // [T, D, N, H]
    std::vector<std::string> outs = {y, io.sub("Y_h" + ls)};
    if (mode == RnnMode::LSTM) outs.push_back(io.sub("Y_c" + ls));
    g.node(op, in, outs, io.sub(op + ls), attrs);
    hs.push_back(outs[1]);
    if (mode == RnnMode::LSTM) cs.push_back(outs[2]);
    if (l + 1 < L) {  // next layer's input [T, N, D*H]
      g.node("Transpose", {y}, y + "_tnd", y + "_tnd", {{"perm", std::vector<int64_t>{0, 2, 1, 3}}});
      x = y + "_tnh";
      g.node("Reshape", {y + "_tnd", flat}, x, x);
    }
  }
  // h_n, c_n: [L*D, N, H] -> the graph's [N, L*D, H].
  auto state = [&](const std::vector<std::string>& per_layer, const std::string& out, const std::string& what) {
    std::string all = per_layer[0];
    if (per_layer.size() > 1) {
      all = io.sub(what + "_layers");
      g.node("Concat", per_layer, all, all, {{"axis", int64_t{0}}});
    }
    g.node("Transpose", {all}, out, io.sub(what), {{"perm", std::vector<int64_t>{1, 0, 2}}});
  };
  if (io.extra_outputs.size() > 0) state(hs, io.extra_outputs[0], "h_n");
  if (io.extra_outputs.size() > 1) state(cs, io.extra_outputs[1], "c_n");
  g.node("Transpose", {y}, io.sub("Y_ntd"), io.sub("Y_ntd"), {{"perm", std::vector<int64_t>{2, 0, 1, 3}}});
  g.node("Reshape", {io.sub("Y_ntd"), flat}, io.output, s.name);
}

// lstm, gru and rnn differ only in their name, doc, the nonlinearity attribute (rnn), the
// activations kept for backward and the registry walk's example.
LayerSchema recurrent_schema(std::string type, std::string doc, bool nonlinearity, int saved_copies, AttrMap example) {
  return {.type = std::move(type),
          .doc = std::move(doc),
          .attrs = rnn_attrs(nonlinearity),
          .min_inputs = 1,
          .max_inputs = 2,
          .rule = batch_first_rule,
          .family = LayerFamily::Recurrent,
          .shapes = rnn_shapes,
          .build = build_rnn,
          .onnx = rnn_onnx,
          .saved_copies = saved_copies,
          .example = {{{5, 3}}, std::move(example)}};
}

const RegisterLayer lstm(recurrent_schema(
    "lstm", "torch.nn.LSTM over [N, T, I] (+ optional lengths [N]); value (output [N, T, D*H], h_n, c_n [N, L*D, H])",
    false, 2, {{"hidden_size", int64_t{4}}, {"batch_first", true}}));

const RegisterLayer gru(recurrent_schema(
    "gru", "torch.nn.GRU over [N, T, I] (+ optional lengths [N]); value (output [N, T, D*H], h_n [N, L*D, H])", false,
    2, {{"hidden_size", int64_t{4}}, {"batch_first", true}, {"bidirectional", true}}));

const RegisterLayer rnn(recurrent_schema(
    "rnn", "torch.nn.RNN (tanh or relu) over [N, T, I] (+ optional lengths [N]); value (output, h_n [N, L*D, H])",
    true, 1, {{"hidden_size", int64_t{4}}, {"batch_first", true}, {"num_layers", int64_t{2}}}));

const RegisterLayer last_step({
    .type = "last_step",
    .doc = "the output at each sequence's last valid step: [N, T, F] (+ optional lengths [N]) -> [N, F]",
    .min_inputs = 1,
    .max_inputs = 2,
    .family = LayerFamily::Recurrent,
    .shapes = [](const LayerSpec& s, const std::vector<Shape>& in) {
      if (in[0].size() != 2 || in[0][0] < 1)
        fail(s, "expected an input [N, T, F] with T >= 1 ([T, F] per sample), got " + shape_str(in[0]) +
                    " per sample");
      if (in.size() == 2 && !in[1].empty())
        fail(s, "the second input must be the sequence lengths (one integer per sample), got " + shape_str(in[1]) +
                    " per sample");
      return LayerShapes{{in[0][1]}, {}, {}};
    },
    .build = from_attrs([](const LayerSpec&) { return make<nn::LastStep>(); }),
    .onnx = [](OnnxGraph& g, const OnnxLayer& io) {
      if (io.inputs.size() == 1) {  // step T - 1
        g.node("Gather", {io.inputs[0], g.initializer(io.sub("last"), scalar_tensor(double(io.in_shapes[0][0] - 1),
                                                                                       DType::I64))},
               io.output, io.spec.name, {{"axis", int64_t{1}}});
        return;
      }
      // GatherND(x, lengths - 1 as [N, 1], batch_dims = 1) -> [N, F]
      const std::string one = g.initializer(io.sub("one"), scalar_tensor(1.0, DType::I64));
      g.node("Sub", {io.inputs[1], one}, io.sub("index"), io.sub("index"));
      g.node("Unsqueeze", {io.sub("index"), g.ints(io.sub("axis1"), {1})}, io.sub("index_n1"), io.sub("index_n1"));
      g.node("GatherND", {io.inputs[0], io.sub("index_n1")}, io.output, io.spec.name, {{"batch_dims", int64_t{1}}});
    },
    .saved_copies = 0,
    .example = {{{5, 3}}, {}},
});

}  // namespace
}  // namespace dl::layers
