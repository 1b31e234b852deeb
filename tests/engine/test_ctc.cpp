// ctc_loss (engine/ops/ctc.h): PyTorch 1.13 parity (tests/fixtures/gen_ctc.py: several shapes,
// repeated labels, empty targets, padded and concatenated targets, every reduction, blank != 0,
// zero_infinity on impossible alignments, unbatched input), f64 finite-difference gradients
// through log_softmax, bad input, and the loss registration.
#include <catch2/catch.hpp>
#include <cmath>
#include <limits>

#include "engine/nn/loss_registry.h"
#include "engine/ops.h"
#include "tests/support/fixtures.h"
#include "tests/support/gradcheck.h"

using namespace dl;
using dl::test::FixtureCase;

namespace {

const std::vector<FixtureCase>& ctc_cases() {
  static const std::vector<FixtureCase> cases = dl::test::load_fixtures("ctc.txt");
  return cases;
}

Tensor run_case(const FixtureCase& c, const Tensor& lp) {
  return ctc_loss(lp, c.t("targets"), c.t("input_lengths"), c.t("target_lengths"), c.attr_i("blank"),
                  parse_reduction(c.attr("reduction")), c.attr_i("zero_infinity") != 0);
}

// Infinite losses must sit where torch's are; the finite ones are compared with allclose.
void check_loss(const Tensor& got, const Tensor& want, double rtol, double atol) {
  const std::vector<double> g = got.to_vector<double>(), w = want.to_vector<double>();
  REQUIRE(g.size() == w.size());
  for (size_t i = 0; i < g.size(); ++i) CHECK(std::isinf(g[i]) == std::isinf(w[i]));
  auto finite = [](const Tensor& t) {
    return where(eq(t, std::numeric_limits<double>::infinity()), zeros({}, t.options()), t);
  };
  CHECK_CLOSE(finite(got), finite(want), rtol, atol);
}

// [T, N, C] log-probabilities from random logits, in f64 (for gradcheck) as a leaf.
Tensor random_logits(const Shape& shape, uint64_t seed) {
  Generator g(seed);
  return randn(shape, g, DType::F64).detach().requires_grad_();
}

Tensor i64(const std::vector<int64_t>& v, const Shape& s) { return from_vector(v, s); }

}  // namespace

TEST_CASE("ctc_loss matches PyTorch: loss and gradient w.r.t. log_probs", "[ctc][loss]") {
  REQUIRE(ctc_cases().size() >= 10);
  for (const FixtureCase& c : ctc_cases()) {
    INFO("case " << c.name);
    const bool f64 = c.t("log_probs").dtype() == DType::F64;
    const double rtol = f64 ? 1e-10 : 1e-5, atol = f64 ? 1e-12 : 1e-5;
    Tensor lp = c.t("log_probs").clone().detach().requires_grad_();
    Tensor y = run_case(c, lp);
    check_loss(y, c.t("y"), rtol, atol);
    sum(mul(y, c.t("gy"))).backward();
    REQUIRE(lp.grad().defined());
    CHECK_CLOSE(lp.grad(), c.t("glp"), rtol, atol);  // NaN where torch's is NaN (infinite loss)
  }
}

TEST_CASE("ctc_loss: padded time steps and zeroed infinite samples get no gradient", "[ctc][loss]") {
  const FixtureCase& c = dl::test::find_case(ctc_cases(), "zero_infinity_none");
  Tensor lp = c.t("log_probs").clone().detach().requires_grad_();
  Tensor y = run_case(c, lp);
  CHECK(y.to_vector<double>()[0] == 0.0);  // [1, 1] in 2 steps: impossible, zeroed
  sum(y).backward();
  const std::vector<double> g = lp.grad().to_vector<double>();
  const int64_t T = lp.size(0), N = lp.size(1), C = lp.size(2);
  const std::vector<int64_t> il = c.t("input_lengths").to_vector<int64_t>();
  for (int64_t t = 0; t < T; ++t)
    for (int64_t b = 0; b < N; ++b)
      for (int64_t k = 0; k < C; ++k) {
        const double v = g[static_cast<size_t>((t * N + b) * C + k)];
        if (b < 2 || t >= il[static_cast<size_t>(b)]) CHECK(v == 0.0);
        else CHECK(std::isfinite(v));
      }
}

TEST_CASE("ctc_loss gradients pass float64 gradcheck through log_softmax", "[ctc][loss][gradcheck]") {
  // Padded targets with a repeat, an empty target and a shorter input; every reduction.
  const Tensor targets = i64({2, 2, 1, 3, 1, 0, 0, 0, 3, 2, 1, 4}, {3, 4});
  const Tensor il = i64({7, 5, 6}, {3}), tl = i64({3, 0, 4}, {3});
  Tensor x = random_logits({7, 3, 5}, 5);
  for (Reduction r : {Reduction::None, Reduction::Mean, Reduction::Sum}) {
    REQUIRE_GRADCHECK([&](const TensorList& in) { return ctc_loss(log_softmax(in[0], 2), targets, il, tl, 0, r); },
                      TensorList{x});
  }
  // Concatenated targets, blank = C - 1, zero_infinity with one impossible sample.
  const Tensor cat = i64({0, 1, 1, 2, 3, 3}, {6});
  Tensor x2 = random_logits({4, 3, 5}, 6);
  REQUIRE_GRADCHECK(
      [&](const TensorList& in) {
        return ctc_loss(log_softmax(in[0], 2), cat, i64({4, 4, 4}, {3}), i64({3, 1, 2}, {3}), 4, Reduction::Mean,
                        true);
      },
      TensorList{x2});
  // Unbatched [T, C].
  Tensor x3 = random_logits({6, 4}, 7);
  REQUIRE_GRADCHECK(
      [&](const TensorList& in) {
        return ctc_loss(log_softmax(in[0], 1), i64({1, 3, 3}, {3}), i64({6}, {}), i64({3}, {}), 0, Reduction::None);
      },
      TensorList{x3});
}

TEST_CASE("ctc_loss: f32 and f64 agree on a longer sequence", "[ctc][loss]") {
  Tensor x = random_logits({40, 5, 12}, 9).detach();
  const Tensor lp64 = log_softmax(x, 2), lp32 = lp64.to(DType::F32);
  const Tensor targets = i64({1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 11, 11, 5, 5, 3, 4, 1, 2, 3}, {20});
  const Tensor il = i64({40, 33, 20, 40, 8}, {5}), tl = i64({6, 4, 5, 3, 2}, {5});
  Tensor a = ctc_loss(lp64, targets, il, tl, 0, Reduction::None);
  Tensor b = ctc_loss(lp32, targets, il, tl, 0, Reduction::None);
  CHECK_CLOSE(b.to(DType::F64), a, 1e-5, 1e-5);
}

TEST_CASE("ctc_loss refuses bad input with the sample and the values", "[ctc][loss][errors]") {
  Generator g(3);
  const Tensor lp = log_softmax(randn({5, 2, 4}, g), 2);
  const Tensor tg = i64({1, 2, 3, 1, 0, 0}, {2, 3});
  const Tensor il = i64({5, 4}, {2}), tl = i64({3, 1}, {2});
  using Catch::Contains;
  CHECK_NOTHROW(ctc_loss(lp, tg, il, tl));
  CHECK_THROWS_AS(ctc_loss(lp, tg, i64({6, 4}, {2}), tl), std::invalid_argument);
  CHECK_THROWS_WITH(ctc_loss(lp, tg, i64({6, 4}, {2}), tl), Contains("input_lengths[0] = 6") && Contains("[0, 5]"));
  CHECK_THROWS_WITH(ctc_loss(lp, tg, i64({5, -1}, {2}), tl), Contains("input_lengths[1] = -1"));
  CHECK_THROWS_WITH(ctc_loss(lp, tg, il, i64({4, 1}, {2})),
                    Contains("target_lengths[0] = 4") && Contains("padded target length S = 3"));
  CHECK_THROWS_WITH(ctc_loss(lp, tg, il, i64({3, -2}, {2})), Contains("target_lengths[1] = -2"));
  CHECK_THROWS_WITH(ctc_loss(lp, i64({1, 2, 3, 1, 4, 0}, {2, 3}), il, i64({3, 2}, {2})),
                    Contains("label 4 at position 1 of sample 1") && Contains("[0, 4)"));
  CHECK_THROWS_WITH(ctc_loss(lp, i64({1, -3, 3, 1, 0, 0}, {2, 3}), il, tl),
                    Contains("label -3 at position 1 of sample 0"));
  CHECK_THROWS_WITH(ctc_loss(lp, tg, il, i64({3, 2}, {2})), Contains("label 0") && Contains("blank"));
  CHECK_THROWS_WITH(ctc_loss(lp, tg, il, tl, 3), Contains("label 3 at position 2 of sample 0") && Contains("blank"));
  CHECK_THROWS_WITH(ctc_loss(lp, tg, il, tl, 4), Contains("blank (4)"));
  CHECK_THROWS_WITH(ctc_loss(lp, i64({1, 2, 3}, {3}), il, tl), Contains("sum(target_lengths) = 4"));
  CHECK_THROWS_WITH(ctc_loss(lp, i64({1, 2, 3}, {1, 3}), il, tl), Contains("one row per sample"));
  CHECK_THROWS_WITH(ctc_loss(lp, tg.to(DType::F32), il, tl), Contains("int64 targets"));
  CHECK_THROWS_WITH(ctc_loss(lp, tg, il.to(DType::F32), tl), Contains("int64 input_lengths"));
  CHECK_THROWS_WITH(ctc_loss(lp, tg, i64({5, 4, 4}, {3}), tl), Contains("input_lengths must have shape [2]"));
  CHECK_THROWS_WITH(ctc_loss(lp.reshape({40}), tg, il, tl), Contains("[T, N, C]"));
  CHECK_THROWS_WITH(ctc_loss(tg, tg, il, tl), Contains("floating-point log_probs"));
  // A target longer than its input is no error: an infinite loss (torch), 0 with zero_infinity.
  Tensor inf = ctc_loss(lp, tg, i64({2, 4}, {2}), tl, 0, Reduction::None);
  CHECK(std::isinf(inf.to_vector<double>()[0]));
  CHECK(ctc_loss(lp, tg, i64({2, 4}, {2}), tl, 0, Reduction::None, true).to_vector<double>()[0] == 0.0);
}

TEST_CASE("ctc_loss: input length 0 and empty batches", "[ctc][loss]") {
  Generator g(4);
  const Tensor lp = log_softmax(randn({3, 2, 4}, g), 2);
  Tensor y = ctc_loss(lp, i64({1, 0}, {2, 1}), i64({0, 0}, {2}), i64({1, 0}, {2}), 0, Reduction::None);
  const std::vector<double> v = y.to_vector<double>();
  CHECK(std::isinf(v[0]));
  CHECK(v[1] == 0.0);
  // T = 0 with zero input lengths.
  Tensor e = ctc_loss(zeros({0, 2, 4}), i64({}, {2, 0}), i64({0, 0}, {2}), i64({0, 0}, {2}), 0, Reduction::Sum);
  CHECK(e.item() == 0.0);
}

TEST_CASE("ctc_loss is registered as a loss with its four roles", "[ctc][loss][registry]") {
  const nn::LossDef& def = nn::loss_def("CTCLoss");
  CHECK(def.name == "ctc_loss");
  CHECK(def.inputs == std::vector<std::string>{"log_probs", "targets", "input_lengths", "target_lengths"});
  CHECK(def.class_target == nn::ClassTarget::none);
  const FixtureCase& c = dl::test::find_case(ctc_cases(), "f64_blank_last");
  nn::LossFn fn = nn::make_loss("ctc_loss", {{"blank", int64_t(9)}, {"reduction", std::string("mean")}});
  Tensor y = fn({c.t("log_probs"), c.t("targets"), c.t("input_lengths"), c.t("target_lengths")});
  CHECK_CLOSE(y, c.t("y"), 1e-10, 1e-12);
}

TEST_CASE("ctc_greedy_decode: best path, repeats merged, blanks dropped, up to each input length", "[ctc]") {
  // Step argmaxes per sample (C = 4, blank 0): b0 = 0 1 1 0 1 2 2, b1 = 3 3 3 0 0 2 1 (length 5).
  const std::vector<std::vector<int64_t>> best = {{0, 1, 1, 0, 1, 2, 2}, {3, 3, 3, 0, 0, 2, 1}};
  const int64_t T = 7, N = 2, C = 4;
  std::vector<float> v(static_cast<size_t>(T * N * C), -3.0f);
  for (int64_t t = 0; t < T; ++t)
    for (int64_t b = 0; b < N; ++b) v[static_cast<size_t>((t * N + b) * C + best[b][t])] = -0.1f;
  const Tensor lp = from_vector(v, {T, N, C});
  using Seqs = std::vector<std::vector<int64_t>>;
  CHECK(ctc_greedy_decode(lp, i64({7, 5}, {2})) == Seqs{{1, 1, 2}, {3}});
  CHECK(ctc_greedy_decode(lp, i64({3, 7}, {2})) == Seqs{{1}, {3, 2, 1}});
  // Another blank: label 0 becomes a class, 3 the blank.
  CHECK(ctc_greedy_decode(lp, i64({7, 7}, {2}), 3) == Seqs{{0, 1, 0, 1, 2}, {0, 2, 1}});
  CHECK_THROWS_WITH(ctc_greedy_decode(lp, i64({8, 7}, {2})), Catch::Contains("input_lengths[0] = 8"));
}
