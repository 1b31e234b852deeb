// Recurrent layers (engine/ops/rnn.h, engine/nn/rnn.h): PyTorch parity of outputs and every
// gradient (tests/fixtures/gen_rnn.py: each mode, 2 layers, bidirectional, batch_first both
// ways, unsorted lengths, h0/c0 given), f64 gradient checks, dropout between layers, the
// graph-facing forward_tuple layout and bad-input errors.
#include <catch2/catch.hpp>
#include <cmath>

#include "engine/nn/rnn.h"
#include "engine/ops.h"
#include "tests/support/fixtures.h"
#include "tests/support/op_fixture.h"
#include "tests/support/gradcheck.h"

using namespace dl;
using dl::test::FixtureCase;

namespace {

constexpr double kRtol = 1e-5;

double scaled_atol(const Tensor& ref) {
  double m = ref.numel() > 0 ? max(abs(ref)).item() : 0.0;
  return 1e-6 * std::max(1.0, 4.0 * m);
}

Tensor opt(const FixtureCase& c, const std::string& key) { return c.has(key) ? c.t(key) : Tensor(); }
using dl::test::leaf;

std::shared_ptr<nn::RNNBase> module_of(const FixtureCase& c, int64_t input_size, double dropout = 0.0) {
  const std::string mode = c.attr("mode");
  const int64_t L = c.attr_i("layers"), H = c.attr_i("hidden");
  const bool bias = c.attr_i("bias") != 0, bf = c.attr_i("batch_first") != 0, bi = c.attr_i("bidirectional") != 0;
  if (mode == "lstm") return std::make_shared<nn::LSTM>(input_size, H, L, bias, bf, dropout, bi);
  if (mode == "gru") return std::make_shared<nn::GRU>(input_size, H, L, bias, bf, dropout, bi);
  return std::make_shared<nn::RNN>(input_size, H, L, mode.substr(4), bias, bf, dropout, bi);
}

Tensor weighted_sum(const TensorList& outs, const FixtureCase& c, DType dtype) {
  Tensor loss = sum(mul(outs[0], c.t("gy").to(dtype))) + sum(mul(outs[1], c.t("ghn").to(dtype)));
  if (outs.size() > 2) loss = loss + sum(mul(outs[2], c.t("gcn").to(dtype)));
  return loss;
}

}  // namespace

TEST_CASE("LSTM, GRU and RNN match PyTorch: outputs and gradients of x, h0, c0 and every weight",
          "[rnn][nn]") {
  auto cases = dl::test::load_fixtures("rnn.txt");
  REQUIRE(cases.size() == 7);
  for (const FixtureCase& c : cases) {
    for (DType dtype : {DType::F32, DType::F64}) {
      INFO("case " << c.name << " dtype " << dtype_name(dtype));
      auto m = module_of(c, c.t("x").size(2));
      m->to(dtype);
      nn::StateDict sd;
      for (auto& [key, t] : m->state_dict()) sd.emplace_back(key, c.t(key));
      m->load_state_dict(sd);
      Tensor x = leaf(c.t("x"), dtype), h0 = leaf(opt(c, "h0"), dtype), c0 = leaf(opt(c, "c0"), dtype);
      TensorList outs = m->forward_full(x, opt(c, "lengths"), h0, c0);
      REQUIRE(outs.size() == (c.attr("mode") == "lstm" ? 3u : 2u));
      CHECK_CLOSE(outs[0].to(DType::F32), c.t("y"), kRtol, scaled_atol(c.t("y")));
      CHECK_CLOSE(outs[1].to(DType::F32), c.t("hn"), kRtol, scaled_atol(c.t("hn")));
      if (outs.size() > 2) CHECK_CLOSE(outs[2].to(DType::F32), c.t("cn"), kRtol, scaled_atol(c.t("cn")));
      weighted_sum(outs, c, dtype).backward();
      CHECK_CLOSE(x.grad().to(DType::F32), c.t("g_x"), kRtol, scaled_atol(c.t("g_x")));
      if (h0.defined()) CHECK_CLOSE(h0.grad().to(DType::F32), c.t("g_h0"), kRtol, scaled_atol(c.t("g_h0")));
      if (c0.defined()) CHECK_CLOSE(c0.grad().to(DType::F32), c.t("g_c0"), kRtol, scaled_atol(c.t("g_c0")));
      for (auto& [key, p] : m->named_parameters()) {
        INFO("parameter " << key);
        REQUIRE(p.grad().defined());
        CHECK_CLOSE(p.grad().to(DType::F32), c.t("g_" + key), kRtol, scaled_atol(c.t("g_" + key)));
      }
    }
  }
}

TEST_CASE("RNN modules: PyTorch's parameter names, order, init range and repr", "[rnn][nn]") {
  Generator gen(3);
  nn::LSTM lstm(3, 5, 2, true, true, 0.25, true, gen);
  std::vector<std::string> keys;
  for (auto& [k, t] : lstm.named_parameters()) keys.push_back(k);
  CHECK(keys == std::vector<std::string>{
                    "weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0", "weight_ih_l0_reverse",
                    "weight_hh_l0_reverse", "bias_ih_l0_reverse", "bias_hh_l0_reverse", "weight_ih_l1",
                    "weight_hh_l1", "bias_ih_l1", "bias_hh_l1", "weight_ih_l1_reverse", "weight_hh_l1_reverse",
                    "bias_ih_l1_reverse", "bias_hh_l1_reverse"});
  CHECK(lstm.flat_weights[0].shape() == Shape{20, 3});
  CHECK(lstm.flat_weights[8].shape() == Shape{20, 10});  // weight_ih_l1 takes both directions
  CHECK(lstm.flat_weights[9].shape() == Shape{20, 5});
  const double bound = 1.0 / std::sqrt(5.0);
  for (auto& [k, t] : lstm.named_parameters()) {
    CHECK(max(abs(t)).item() <= bound);
    CHECK(max(abs(t)).item() > 0.5 * bound);
  }
  CHECK(lstm.repr() == "LSTM(3, 5, num_layers=2, batch_first=True, dropout=0.25, bidirectional=True)");
  nn::GRU gru(4, 6, 1, false);
  CHECK(gru.named_parameters().size() == 2);
  CHECK(gru.repr() == "GRU(4, 6, bias=False)");
  nn::RNN rnn(2, 3, 1, "relu");
  CHECK(rnn.mode == RnnMode::RNN_RELU);
  CHECK_THROWS_WITH(nn::RNN(2, 3, 1, "sigmoid"), "Unknown nonlinearity 'sigmoid'. Select from 'tanh' or 'relu'.");
}

TEST_CASE("rnn op gradcheck in f64: every mode, 2 layers, bidirectional, lengths, h0/c0", "[rnn][gradcheck]") {
  Generator gen(21);
  const int64_t T = 4, N = 3, I = 2, H = 3;
  for (RnnMode mode : {RnnMode::LSTM, RnnMode::GRU, RnnMode::RNN_TANH, RnnMode::RNN_RELU}) {
    for (bool with_lengths : {false, true}) {
      INFO("mode " << rnn_mode_name(mode) << " lengths " << with_lengths);
      const int64_t G = rnn_gate_count(mode), L = 2, D = 2;
      TensorList inputs = {randn({T, N, I}, gen, DType::F64), randn({L * D, N, H}, gen, DType::F64)};
      if (mode == RnnMode::LSTM) inputs.push_back(randn({L * D, N, H}, gen, DType::F64));
      const size_t first_weight = inputs.size();
      for (int64_t l = 0; l < L; ++l)
        for (int64_t d = 0; d < D; ++d) {
          inputs.push_back(mul(randn({G * H, l == 0 ? I : D * H}, gen, DType::F64), 0.6));
          inputs.push_back(mul(randn({G * H, H}, gen, DType::F64), 0.6));
          inputs.push_back(mul(randn({G * H}, gen, DType::F64), 0.3));
          inputs.push_back(mul(randn({G * H}, gen, DType::F64), 0.3));
        }
      for (Tensor& t : inputs) t.requires_grad_();
      Tensor lengths = with_lengths ? from_vector<int64_t>({2, 4, 1}, {N}) : Tensor();
      RnnOptions o;
      o.mode = mode;
      o.num_layers = L;
      o.bidirectional = true;
      auto f = [&](const TensorList& in) {
        TensorList w(in.begin() + static_cast<std::ptrdiff_t>(first_weight), in.end());
        TensorList out = rnn(in[0], w, in[1], mode == RnnMode::LSTM ? in[2] : Tensor(), lengths, o);
        TensorList flat;
        for (const Tensor& t : out) flat.push_back(t.reshape({-1}));
        return cat(flat);
      };
      REQUIRE_GRADCHECK(f, inputs);
    }
  }
}

TEST_CASE("rnn dropout between layers: inverted-dropout statistics, a fixed mask per generator state, "
          "none after the last layer, backward through the mask",
          "[rnn][dropout]") {
  // Layer 0: relu(x W^T) with W_hh = 0; layer 1: relu(identity . dropout(y0)) with W_hh = 0, so the
  // output divided by y0 is the dropout mask itself.
  const int64_t T = 5, N = 4, I = 3, H = 256;
  const double p = 0.3;
  Generator init(5);
  Tensor x = rand({T, N, I}, init);
  TensorList w = {randn({H, I}, init), zeros({H, H}), Tensor(), Tensor(),
                  zeros({H, H}), zeros({H, H}), Tensor(), Tensor()};
  for (int64_t j = 0; j < H; ++j) w[4].select(0, j).select(0, j).copy_(scalar_tensor(1.0));
  RnnOptions o;
  o.mode = RnnMode::RNN_RELU;
  o.num_layers = 2;
  o.dropout = p;
  Tensor y_eval = rnn(x, w, Tensor(), Tensor(), Tensor(), o)[0];
  RnnOptions one = o;
  one.num_layers = 1;
  Tensor y0 = rnn(x, {w[0], w[1], w[2], w[3]}, Tensor(), Tensor(), Tensor(), one)[0];
  CHECK_CLOSE(y_eval, y0, 0.0, 0.0);  // eval: no dropout; layer 1 copies layer 0

  Generator g(77);
  o.training = true;
  o.generator = &g;
  Tensor y_train = rnn(x, w, Tensor(), Tensor(), Tensor(), o)[0];
  auto yt = y_train.to_vector<float>(), yv = y0.to_vector<float>();
  int64_t positive = 0, dropped = 0;
  for (size_t i = 0; i < yt.size(); ++i) {
    if (yv[i] <= 0.f) continue;
    ++positive;
    if (yt[i] == 0.f) ++dropped;
    else CHECK(yt[i] == Approx(yv[i] / (1.0 - p)).epsilon(1e-6));
  }
  REQUIRE(positive > 2000);
  CHECK(static_cast<double>(dropped) / static_cast<double>(positive) == Approx(p).margin(0.03));
  // The same generator state gives the same mask; the next draw a different one.
  g.manual_seed(77);
  CHECK_CLOSE(rnn(x, w, Tensor(), Tensor(), Tensor(), o)[0], y_train, 0.0, 0.0);
  CHECK_FALSE(dl::test::allclose(rnn(x, w, Tensor(), Tensor(), Tensor(), o)[0], y_train, 0.0, 0.0));
  // A single layer has nothing to drop between layers: training == eval, no draw.
  one.training = true;
  one.dropout = p;
  one.generator = &g;
  const uint64_t before = g.offset();
  CHECK_CLOSE(rnn(x, {w[0], w[1], w[2], w[3]}, Tensor(), Tensor(), Tensor(), one)[0], y0, 0.0, 0.0);
  CHECK(g.offset() == before);

  // Backward goes through the same mask: gradcheck with the generator reset before each call.
  Generator g2(9);
  RnnOptions small;
  small.mode = RnnMode::GRU;
  small.num_layers = 2;
  small.dropout = 0.5;
  small.training = true;
  small.generator = &g2;
  Generator init2(4);
  TensorList in = {randn({3, 2, 2}, init2, DType::F64)};
  for (int64_t l = 0; l < 2; ++l) {
    in.push_back(randn({9, l == 0 ? 2 : 3}, init2, DType::F64));
    in.push_back(randn({9, 3}, init2, DType::F64));
    in.push_back(randn({9}, init2, DType::F64));
    in.push_back(randn({9}, init2, DType::F64));
  }
  for (Tensor& t : in) t.requires_grad_();
  auto f = [&](const TensorList& v) {
    g2.manual_seed(9);
    return rnn(v[0], TensorList(v.begin() + 1, v.end()), Tensor(), Tensor(), Tensor(), small)[0];
  };
  REQUIRE_GRADCHECK(f, in);
}

TEST_CASE("RNN forward_tuple: graph layout (batch-first h_n, c_n) and lengths as the second input", "[rnn][nn]") {
  auto cases = dl::test::load_fixtures("rnn.txt");
  const FixtureCase& c = dl::test::find_case(cases, "lstm_bf_lengths_nobias");
  auto m = module_of(c, c.t("x").size(2));
  nn::StateDict sd;
  for (auto& [key, t] : m->state_dict()) sd.emplace_back(key, c.t(key));
  m->load_state_dict(sd);
  // c0 was given in the fixture; compare with forward_full(x, lengths, undefined, c0) below
  // through the layout only: forward_tuple has zero states.
  TensorList full = m->forward_full(c.t("x"), c.t("lengths"));
  TensorList tup = m->forward_tuple({c.t("x"), c.t("lengths")});
  REQUIRE(tup.size() == 3);
  CHECK(tup[0].shape() == Shape{4, 5, 4});  // batch_first output [N, T, H]
  CHECK(tup[1].shape() == Shape{4, 1, 4});  // h_n [N, L*D, H]
  CHECK_CLOSE(tup[0], full[0], 0.0, 0.0);
  CHECK_CLOSE(tup[1], full[1].transpose(0, 1), 0.0, 0.0);
  CHECK_CLOSE(tup[2], full[2].transpose(0, 1), 0.0, 0.0);
  CHECK_CLOSE(m->forward(c.t("x")), m->forward_full(c.t("x"))[0], 0.0, 0.0);
  // Outputs past each length are zero.
  auto y = tup[0].to_vector<float>();
  const int64_t len[4] = {2, 5, 5, 3};
  for (int64_t n = 0; n < 4; ++n)
    for (int64_t t = len[n]; t < 5; ++t)
      for (int64_t j = 0; j < 4; ++j) CHECK(y[static_cast<size_t>((n * 5 + t) * 4 + j)] == 0.f);
  // Unbatched [T, I] input.
  nn::GRU gru(3, 2);
  Generator gen(1);
  Tensor xu = randn({5, 3}, gen);
  TensorList u = gru.forward_full(xu);
  CHECK(u[0].shape() == Shape{5, 2});
  CHECK(u[1].shape() == Shape{1, 2});
  CHECK_CLOSE(u[0], gru.forward_full(xu.unsqueeze(1))[0].squeeze(1), 0.0, 0.0);
}

TEST_CASE("rnn bad input: clear errors naming the values", "[rnn][errors]") {
  nn::LSTM lstm(3, 4, 1, true, true);
  Generator gen(2);
  Tensor x = randn({2, 5, 3}, gen);
  CHECK_THROWS_WITH(lstm.forward_tuple({x, from_vector<int64_t>({6, 2}, {2})}),
                    Catch::Contains("lengths[0] = 6 is out of range") && Catch::Contains("[1, 5]"));
  CHECK_THROWS_WITH(lstm.forward_tuple({x, from_vector<int64_t>({3, 0}, {2})}),
                    Catch::Contains("lengths[1] = 0 is out of range"));
  CHECK_THROWS_WITH(lstm.forward_tuple({x, from_vector<int64_t>({3, 2, 1}, {3})}),
                    Catch::Contains("lengths must be an int64 tensor [2]") && Catch::Contains("[3]"));
  CHECK_THROWS_WITH(lstm.forward_tuple({x, from_vector<float>({3, 2}, {2})}),
                    Catch::Contains("lengths must be an int64 tensor [2]") && Catch::Contains("float32"));
  CHECK_THROWS_WITH(lstm.forward(randn({2, 5, 4}, gen)),
                    "lstm: input.size(-1) must be equal to input_size. Expected 3, got 4");
  CHECK_THROWS_WITH(lstm.forward(randn({2, 3, 5, 3}, gen)), Catch::Contains("Expected input to be 2D or 3D, got 4D"));
  CHECK_THROWS_WITH(lstm.forward_full(x, Tensor(), zeros({1, 3, 4})),
                    "lstm: Expected hidden size [1, 2, 4], got [1, 3, 4]");
  CHECK_THROWS_WITH(lstm.forward_full(x, Tensor(), Tensor(), zeros({2, 2, 4})),
                    "lstm: Expected hidden[1] size [1, 2, 4], got [2, 2, 4]");
  CHECK_THROWS_WITH(lstm.forward_tuple({x, x, x}), Catch::Contains("expected inputs (x) or (x, lengths), got 3"));
  RnnOptions o;
  CHECK_THROWS_WITH(rnn(randn({2, 2, 3}, gen), {randn({16, 3}, gen)}, Tensor(), Tensor(), Tensor(), o),
                    Catch::Contains("expected 4 weight tensors"));
  CHECK_THROWS_WITH(rnn(randn({2, 2, 3}, gen), {randn({16, 3}, gen), randn({16, 5}, gen), Tensor(), Tensor()},
                        Tensor(), Tensor(), Tensor(), o),
                    "lstm: weight_ih_l0 has shape [16, 3], expected [20, 3]");
  CHECK_THROWS_WITH(parse_rnn_mode("lstmx"), Catch::Contains("unknown mode 'lstmx'"));
}

TEST_CASE("last_step: each sequence's output at its last valid step, gradient only there", "[rnn][last_step]") {
  Generator gen(8);
  Tensor x = randn({3, 4, 2}, gen).requires_grad_();
  Tensor lengths = from_vector<int64_t>({2, 4, 1}, {3});
  Tensor y = last_step(x, lengths);
  REQUIRE(y.shape() == Shape{3, 2});
  const int64_t len[3] = {2, 4, 1};
  for (int64_t n = 0; n < 3; ++n) CHECK_CLOSE(y.select(0, n), x.detach().select(0, n).select(0, len[n] - 1), 0.0, 0.0);
  Tensor gy = randn({3, 2}, gen);
  sum(mul(y, gy)).backward();
  auto g = x.grad().to_vector<float>(), gv = gy.to_vector<float>();
  for (int64_t n = 0; n < 3; ++n)
    for (int64_t t = 0; t < 4; ++t)
      for (int64_t f = 0; f < 2; ++f)
        CHECK(g[static_cast<size_t>((n * 4 + t) * 2 + f)] == (t == len[n] - 1 ? gv[static_cast<size_t>(n * 2 + f)] : 0.f));
  CHECK_CLOSE(last_step(x.detach()), x.detach().select(1, 3), 0.0, 0.0);  // no lengths: step T - 1
  nn::LastStep m;
  CHECK_CLOSE(m.forward(TensorList{x.detach(), lengths}), y.detach(), 0.0, 0.0);
  CHECK_THROWS_WITH(last_step(x, from_vector<int64_t>({2, 5, 1}, {3})),
                    Catch::Contains("last_step: lengths[1] = 5 is out of range"));
  CHECK_THROWS_WITH(last_step(x, from_vector<int64_t>({2, 1}, {2})), Catch::Contains("lengths must be an int64 tensor [3]"));
  CHECK_THROWS_WITH(last_step(randn({3, 4}, gen)), Catch::Contains("expected an input [N, T, F]"));
}
