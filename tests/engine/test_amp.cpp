// Mixed precision (engine/amp): autocast against PyTorch's CPU autocast with bfloat16
// (tests/fixtures/gen_amp.py), low-precision CPU kernels, GradScaler's scale sequence and the
// training step's loss scaling (skipped steps, unscaled gradients).
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>

#include "engine/amp/autocast.h"
#include "engine/amp/grad_scaler.h"
#include "engine/autograd/autograd.h"
#include "engine/ops.h"
#include "engine/optim/optim.h"
#include "engine/train/step.h"
#include "tests/support/fixtures.h"

using namespace dl;
using dl::test::find_case;
using dl::test::load_fixtures;
using dl::test::allclose;

namespace {

const std::vector<test::FixtureCase>& amp_cases() {
  static const std::vector<test::FixtureCase> c = load_fixtures("amp.txt");
  return c;
}

Tensor leaf(const test::FixtureCase& c, const std::string& key) {
  Tensor t = c.t(key).detach().contiguous();
  t.requires_grad_();
  return t;
}

// One bfloat16 ulp relative (2^-7): a result rounded to bf16 from an f32 sum whose last bits
// depend on the summation order (oneDNN's vs ours) may land on the neighbouring bf16 value.
constexpr double kBf16Rtol = 1.0 / 128;

// Forward under autocast, dtype check, then sum(y.float() * g).backward() outside it.
void check_lowered(const std::string& name, const std::function<Tensor(const std::vector<Tensor>&)>& fn, size_t n_in) {
  const auto& c = find_case(amp_cases(), name);
  std::vector<Tensor> in;
  for (size_t i = 0; i < n_in; ++i) in.push_back(leaf(c, "in" + std::to_string(i)));
  Tensor y;
  {
    amp::AutocastGuard ac(DType::BF16);
    y = fn(in);
  }
  CHECK(y.dtype() == DType::BF16);
  CHECK_CLOSE(y.to(DType::F32), c.t("y"), kBf16Rtol, 1e-6);
  sum(mul(y.to(DType::F32), c.t("g"))).backward();
  for (size_t i = 0; i < n_in; ++i) {
    INFO("gradient of input " << i);
    REQUIRE(in[i].grad().defined());
    CHECK(in[i].grad().dtype() == DType::F32);  // f32 master weights get f32 gradients
    CHECK_CLOSE(in[i].grad(), c.t("grad" + std::to_string(i)), kBf16Rtol, 1e-5);
  }
}

}  // namespace

TEST_CASE("amp: linear, conv2d and matmul under bf16 autocast match torch.autocast('cpu')", "[amp]") {
  check_lowered("linear", [](const std::vector<Tensor>& v) { return linear(v[0], v[1], v[2]); }, 3);
  check_lowered("conv2d", [](const std::vector<Tensor>& v) { return conv2d(v[0], v[1], v[2], {1, 1}, {1, 1}); }, 3);
  check_lowered("matmul", [](const std::vector<Tensor>& v) { return matmul(v[0], v[1]); }, 2);
}

TEST_CASE("amp: softmax, log_softmax and cross_entropy of bf16 inputs compute in f32", "[amp]") {
  amp::AutocastGuard ac(DType::BF16);
  for (const char* name : {"softmax", "log_softmax"}) {
    INFO(name);
    const auto& c = find_case(amp_cases(), name);
    Tensor x = c.t("x").to(DType::BF16);  // exact: the fixture holds bf16 values
    Tensor y = std::string(name) == "softmax" ? softmax(x, 1) : log_softmax(x, 1);
    CHECK(y.dtype() == DType::F32);
    CHECK_CLOSE(y, c.t("y"), 1e-6, 1e-6);
  }
  const auto& c = find_case(amp_cases(), "cross_entropy");
  Tensor loss = cross_entropy(c.t("x").to(DType::BF16), c.t("arg0"), Tensor(), -100, Reduction::Mean, 0.1);
  CHECK(loss.dtype() == DType::F32);
  CHECK_CLOSE(loss, c.t("y"), 1e-6, 1e-6);
}

TEST_CASE("amp: a bf16 mlp's loss and f32 weight gradients match PyTorch", "[amp]") {
  const auto& c = find_case(amp_cases(), "mlp");
  Tensor w1 = leaf(c, "w1"), b1 = leaf(c, "b1"), w2 = leaf(c, "w2"), b2 = leaf(c, "b2");
  Tensor logits, loss;
  {
    amp::AutocastGuard ac(DType::BF16);
    logits = linear(relu(linear(c.t("x"), w1, b1)), w2, b2);
    loss = cross_entropy(logits, c.t("target"));
  }
  CHECK(logits.dtype() == DType::BF16);
  CHECK(loss.dtype() == DType::F32);
  CHECK_CLOSE(logits.to(DType::F32), c.t("logits"), kBf16Rtol, 1e-6);
  CHECK_CLOSE(loss, c.t("loss"), 1e-5, 1e-6);
  loss.backward();
  const std::pair<Tensor, const char*> grads[] = {{w1, "gw1"}, {b1, "gb1"}, {w2, "gw2"}, {b2, "gb2"}};
  for (const auto& [p, key] : grads) {
    INFO(key);
    CHECK(p.grad().dtype() == DType::F32);
    CHECK_CLOSE(p.grad(), c.t(key), kBf16Rtol, 1e-5);
  }
}

TEST_CASE("amp: autocast leaves f64 and integer tensors alone and restores the previous state", "[amp]") {
  Generator g(3);
  Tensor a = randn({2, 3}, g, DType::F64), b = randn({3, 2}, g, DType::F64);
  CHECK_FALSE(amp::autocast_enabled());
  {
    amp::AutocastGuard ac(DType::F16);
    CHECK(amp::autocast_enabled());
    CHECK(mm(a, b).dtype() == DType::F64);
    {
      amp::AutocastGuard off(std::nullopt);
      CHECK_FALSE(amp::autocast_enabled());
      CHECK(mm(a.to(DType::F32), b.to(DType::F32)).dtype() == DType::F32);
    }
    CHECK(amp::autocast_dtype() == DType::F16);
    Tensor h = mm(a.to(DType::F32), b.to(DType::F32));
    CHECK(h.dtype() == DType::F16);
    CHECK(sum(h).dtype() == DType::F32);  // reductions in f32
  }
  CHECK_FALSE(amp::autocast_enabled());
  CHECK_THROWS_AS(amp::AutocastGuard(DType::F32), std::invalid_argument);
}

TEST_CASE("amp: f16/bf16 CPU kernels compute in f32 and round once", "[amp]") {
  // relu, add and a gemm on half tensors equal the f32 results rounded to the half type.
  Generator g(11);
  Tensor a = randn({5, 6}, g), b = randn({6, 4}, g);
  for (DType t : {DType::F16, DType::BF16}) {
    INFO(dtype_name(t));
    Tensor ah = a.to(t), bh = b.to(t);
    Tensor af = ah.to(DType::F32), bf = bh.to(DType::F32);
    CHECK(relu(ah).dtype() == t);
    CHECK(allclose(relu(ah).to(DType::F32), relu(af).to(t).to(DType::F32), 0, 0));
    CHECK(allclose(add(ah, ah).to(DType::F32), add(af, af).to(t).to(DType::F32), 0, 0));
    CHECK(allclose(mm(ah, bh).to(DType::F32), mm(af, bf).to(t).to(DType::F32), 0, 0));
    CHECK(allclose(sum(ah.t().contiguous().t(), {0}).to(DType::F32), sum(af, {0}).to(t).to(DType::F32), 0, 0));
  }
}

TEST_CASE("amp: GradScaler's scale and growth tracker follow PyTorch's update rule", "[amp][grad_scaler]") {
  for (const char* name : {"scaler_pow2", "scaler_odd", "scaler_overflow"}) {
    INFO(name);
    const auto& c = find_case(amp_cases(), name);
    amp::GradScaler s({c.attr_f("init_scale"), c.attr_f("growth_factor"), c.attr_f("backoff_factor"),
                       c.attr_i("growth_interval"), true});
    const auto found = c.t("found_inf").to(DType::I64).to_vector<int64_t>();
    const auto scales = c.t("scale").to_vector<double>();
    const auto trackers = c.t("growth_tracker").to_vector<int64_t>();
    for (size_t i = 0; i < found.size(); ++i) {
      INFO("step " << i);
      s.update(found[i] != 0);
      CHECK(static_cast<double>(s.scale()) == scales[i]);
      CHECK(s.growth_tracker() == trackers[i]);
    }
  }
  CHECK_THROWS_AS(amp::GradScaler({0.0, 2.0, 0.5, 10, true}), std::invalid_argument);
  CHECK_THROWS_AS(amp::GradScaler({1.0, 1.0, 0.5, 10, true}), std::invalid_argument);
  CHECK_THROWS_AS(amp::GradScaler({1.0, 2.0, 1.0, 10, true}), std::invalid_argument);
  CHECK_THROWS_AS(amp::GradScaler({1.0, 2.0, 0.5, 0, true}), std::invalid_argument);
}

TEST_CASE("amp: the train step scales the loss, unscales before clipping and skips inf steps", "[amp][grad_scaler]") {
  // loss = sum(w * x): the true gradient is x. An inf is injected into the gradient at steps
  // 2 and 3 (0-based) from a before_update hook, where the all-reduce of data-parallel
  // training sits: the scaled gradient is what the hook sees.
  Tensor w = from_vector(std::vector<float>{1.f, -2.f, 0.5f}, {3});
  w.requires_grad_();
  const Tensor x = from_vector(std::vector<float>{0.25f, 1.f, -3.f}, {3});
  auto opt = optim::make_optimizer("sgd", {{"w", w}}, {{"lr", 0.1}});
  amp::GradScaler scaler({1024.0, 2.0, 0.5, 2, true});
  train::TrainStep step(*opt, {.clip_grad_norm = 100.0});
  step.set_grad_scaler(&scaler);
  int n = 0;
  std::vector<double> seen_grad0;  // the hook's view of the gradient
  step.add_before_update([&] {
    seen_grad0.push_back(w.grad().to_vector<double>()[0]);
    if (n == 2 || n == 3) {
      NoGradGuard ng;
      Tensor gr = w.grad();
      fill_(gr, std::numeric_limits<double>::infinity());
    }
  });
  const std::vector<bool> expect_skip = {false, false, true, true, false, false, false};
  const std::vector<double> expect_scale = {1024, 2048, 1024, 512, 512, 1024, 1024};
  for (n = 0; n < 7; ++n) {
    INFO("step " << n);
    const std::vector<double> before = w.detach().to_vector<double>();
    train::StepResult r = step.run([&] { return sum(mul(w, x)); });
    CHECK(r.updated);
    CHECK(r.skipped == expect_skip[static_cast<size_t>(n)]);
    CHECK(step.last_update_skipped() == r.skipped);
    CHECK(static_cast<double>(scaler.scale()) == expect_scale[static_cast<size_t>(n)]);
    const std::vector<double> after = w.detach().to_vector<double>(), xs = x.to_vector<double>();
    for (size_t i = 0; i < 3; ++i) {
      if (r.skipped) CHECK(after[i] == before[i]);
      else CHECK(after[i] == Approx(before[i] - 0.1 * xs[i]).epsilon(1e-6));  // unscaled gradient
    }
    // The loss reported is the unscaled one.
    double l = 0;
    for (size_t i = 0; i < 3; ++i) l += before[i] * xs[i];
    CHECK(r.loss == Approx(l).epsilon(1e-6));
  }
  CHECK(seen_grad0[0] == 0.25 * 1024);  // hooks see the scaled gradient
  // Closure optimizers cannot scale (torch's GradScaler cannot either).
  auto lbfgs = optim::make_optimizer("lbfgs", {{"w", w}}, {{"lr", 0.1}});
  train::TrainStep closure_step(*lbfgs);
  CHECK_THROWS_AS(closure_step.set_grad_scaler(&scaler), std::invalid_argument);
}

TEST_CASE("amp: a bf16 train step keeps f32 master weights and tracks the f32 step closely", "[amp]") {
  Generator g(21);
  Tensor x = randn({16, 10}, g);
  Tensor y = from_vector(std::vector<int64_t>{0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3}, {16});
  Tensor w0 = mul(randn({4, 10}, g), 0.3), b0 = zeros({4});
  auto run = [&](std::optional<DType> low) {
    Tensor w = w0.detach().clone(), b = b0.detach().clone();  // fresh storage: the optimizer updates in place
    w.requires_grad_();
    b.requires_grad_();
    auto opt = optim::make_optimizer("sgd", {{"w", w}, {"b", b}}, {{"lr", 0.5}});
    train::TrainStep step(*opt, {.autocast = low});
    std::vector<double> losses;
    for (int i = 0; i < 10; ++i) losses.push_back(step.run([&] { return cross_entropy(linear(x, w, b), y); }).loss);
    CHECK(w.dtype() == DType::F32);
    return losses;
  };
  const std::vector<double> f32 = run(std::nullopt), bf16 = run(DType::BF16);
  CHECK(bf16.back() < bf16.front() * 0.8);
  for (size_t i = 0; i < f32.size(); ++i) CHECK(bf16[i] == Approx(f32[i]).epsilon(0.02));
}

TEST_CASE("amp: the losses of loss_more.cpp compute in f32 under autocast (PyTorch's f32 list)", "[amp]") {
  // Each loss of bf16 inputs under bf16 autocast: an f32 result equal to the same loss of the
  // inputs converted to f32 outside autocast (exact: the casts are exact and both run in f32).
  Generator g(17);
  auto bf = [&](const Shape& s) { return randn(s, g).to(DType::BF16); };
  const Tensor a = bf({4, 5}), b = bf({4, 5}), c = bf({4, 5}), pos = rand({4, 5}, g).to(DType::BF16);
  const Tensor sign = from_vector<float>({1, -1, 1, -1}, {4}).to(DType::BF16);
  const Tensor sign2d = from_vector<float>({1, -1, 1, -1, 1, 1, -1, -1, 1, 1, -1, 1, 1, -1, -1, 1, 1, 1, -1, -1},
                                           {4, 5}).to(DType::BF16);
  const Tensor labels = from_vector<int64_t>({0, 3, 4, 1}, {4});
  const Tensor multilabel = from_vector<int64_t>({0, 2, -1, 0, 0, 4, -1, 0, 0, 0, 1, 3, 4, -1, 0, 2, -1, 0, 0, 0}, {4, 5});
  const Tensor multihot = gt(rand({4, 5}, g), 0.5).to(DType::BF16);
  const std::vector<std::pair<std::string, std::function<Tensor(const std::vector<Tensor>&)>>> losses = {
      {"poisson_nll_loss", [&](const std::vector<Tensor>& t) { return poisson_nll_loss(t[0], t[3]); }},
      {"kl_div", [&](const std::vector<Tensor>& t) { return kl_div(log_softmax(t[0], 1), t[3], "batchmean"); }},
      {"margin_ranking_loss", [&](const std::vector<Tensor>& t) { return margin_ranking_loss(t[0], t[1], t[5], 0.1); }},
      {"hinge_embedding_loss", [&](const std::vector<Tensor>& t) { return hinge_embedding_loss(t[0], t[5]); }},
      {"multilabel_margin_loss", [&](const std::vector<Tensor>& t) { return multilabel_margin_loss(t[0], multilabel); }},
      {"soft_margin_loss", [&](const std::vector<Tensor>& t) { return soft_margin_loss(t[0], t[5]); }},
      {"multilabel_soft_margin_loss", [&](const std::vector<Tensor>& t) { return multilabel_soft_margin_loss(t[0], t[6]); }},
      {"cosine_embedding_loss", [&](const std::vector<Tensor>& t) { return cosine_embedding_loss(t[0], t[1], t[4]); }},
      {"multi_margin_loss", [&](const std::vector<Tensor>& t) { return multi_margin_loss(t[0], labels); }},
      {"triplet_margin_loss", [&](const std::vector<Tensor>& t) { return triplet_margin_loss(t[0], t[1], t[2]); }},
  };
  const std::vector<Tensor> low = {a, b, c, pos, sign, sign2d, multihot};
  std::vector<Tensor> f32;
  for (const Tensor& t : low) f32.push_back(t.to(DType::F32));
  for (const auto& [name, fn] : losses) {
    INFO(name);
    Tensor under;
    {
      amp::AutocastGuard ac(DType::BF16);
      under = fn(low);
    }
    CHECK(under.dtype() == DType::F32);
    const Tensor plain = fn(f32);
    REQUIRE(plain.dtype() == DType::F32);
    CHECK(under.item() == plain.item());
  }
}
